#!/bin/sh
# `make deps`: install what building and testing need on a fresh Debian
# machine, and nothing that is already there: s6 and execline (the live
# tests), qemu-user-static (the arm64 tests) from the distribution; through
# rustup, the musl targets (x86_64 and aarch64) and rust-src (`make small`).
# Not root: say exactly what to run instead. `make` itself installs nothing.
set -eu
pkgs=""
for t in s6-svscan execlineb; do
  command -v "$t" >/dev/null 2>&1 || pkgs="s6 execline"
done
# qemu is for the arm64 tests only: without root it is a hint, not a failure
if [ ! -x /usr/bin/qemu-aarch64-static ]; then
  if [ "$(id -u)" = 0 ]; then pkgs="$pkgs qemu-user-static"
  else echo "deps: no qemu-user-static: the arm64 tests will be skipped (sudo apt-get install -y qemu-user-static)" >&2; fi
fi
if [ -n "$pkgs" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: apt-get install -y $pkgs" >&2
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >/dev/null 2>&1 || {
      apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y $pkgs >/dev/null; }
  else
    echo "deps: missing packages; run: sudo apt-get install -y $pkgs" >&2; exit 111
  fi
fi
have_target() { rustup target list --installed 2>/dev/null | grep -qx "$1"; }
for t in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  if ! have_target "$t"; then
    echo "deps: rustup target add $t" >&2
    rustup target add "$t" >/dev/null
  fi
done
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "deps: rustup component add rust-src" >&2
  rustup component add rust-src >/dev/null
fi
