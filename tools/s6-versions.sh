#!/bin/bash
# tools/s6-versions.sh — other s6 versions than the machine's, never
# installed: Debian's packages of a suite (trixie: s6 2.13.1 / execline
# 2.9.6, what s6-overlay 3.2.1.0 ships; sid: s6 2.15.1 / execline 2.9.9, as
# s6-overlay 3.2.3.x) fetched with `apt-get download` through a private apt
# configuration (its own sources.list, lists and cache; the system's sources
# are not touched), unpacked with dpkg-deb under a cache directory.
#
#   tools/s6-versions.sh fetch SUITE        unpack (cached); print the root
#   tools/s6-versions.sh run SUITE CMD...   CMD in a mount namespace where
#                                           SUITE's /usr lies over /usr
#
# Over /usr, not beside it: Debian's s6-svscan starts /usr/bin/s6-supervise
# by absolute path and execlineb lives in /usr/lib/execline/bin, so
# LD_LIBRARY_PATH or PATH alone would silently mix two versions. The
# namespace's /usr is an overlay (SUITE's files on top of the machine's),
# seen only by CMD and its children. Needs root; the archive keys are
# Debian's keyring on this machine.
set -eu
CACHE=${HERMES_S6_CACHE:-/tmp/hermes-s6-cache}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
die() { echo "s6-versions: $*" >&2; exit 111; }

# The cache is root's alone: its files are laid over /usr and run as root.
own_cache() {
  [ -e "$CACHE" ] || [ -L "$CACHE" ] || mkdir -m 0700 -p "$CACHE" || die "cannot create $CACHE"
  [ ! -L "$CACHE" ] && [ -d "$CACHE" ] && [ "$(stat -c %u "$CACHE")" = 0 ] ||
    die "$CACHE must be a directory of root's, not a link (remove it)"
  chmod 0700 "$CACHE"
}

fetch() {
  local suite=$1 d=$CACHE/s6-$1 o libs
  own_cache
  if [ -f "$d/complete" ]; then echo "$d/root"; return 0; fi
  case $suite in *[!a-z0-9-]*|'') die "bad suite name '$suite'" ;; esac
  [ -r "$KEYRING" ] || die "$KEYRING missing (apt-get install debian-archive-keyring)"
  rm -rf "$d"
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/debs" "$d/root"
  echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian $suite main" > "$d/sources.list"
  o=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o Debug::NoLocking=1
     -o APT::Sandbox::User=root)
  echo "s6-versions: fetching s6 and execline from Debian $suite" >&2
  apt-get "${o[@]}" -qq update >&2 || die "apt-get update of $suite failed"
  libs=$(apt-cache "${o[@]}" depends s6 execline | awk '/Depends: lib/ && $2 != "libc6" { print $2 }' | sort -u)
  # shellcheck disable=SC2086 # a list of package names
  (cd "$d/debs" && apt-get "${o[@]}" -qq download s6 execline $libs >&2) || die "apt-get download from $suite failed"
  for f in "$d"/debs/*.deb; do dpkg-deb -x "$f" "$d/root"; done
  dpkg-deb -f "$d"/debs/s6_*.deb Version > "$d/s6-version"
  dpkg-deb -f "$d"/debs/execline_*.deb Version > "$d/execline-version"
  rm -rf "$d/lists" "$d/cache"
  : > "$d/complete"
  echo "$d/root"
}

case ${1:-} in
  fetch) [ $# = 2 ] || die "usage: fetch SUITE"; fetch "$2" ;;
  run)
    [ $# -ge 3 ] || die "usage: run SUITE CMD..."
    root=$(fetch "$2")
    shift 2
    [ "$(id -u)" = 0 ] || die "must be run as root (a mount namespace)"
    exec unshare -m sh -c '
      mount --make-rprivate /
      mount -t overlay overlay -o "lowerdir=$0/usr:/usr" /usr || exit 111
      exec "$@"' "$root" "$@"
    ;;
  *) die "usage: $0 fetch SUITE | run SUITE CMD..." ;;
esac
