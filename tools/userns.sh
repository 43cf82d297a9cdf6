#!/bin/bash
# usage: tools/userns.sh CMD... — run CMD as root of a new user namespace
# whose uids and gids 0-65535 are the host's own (identity map), with a mount
# namespace of its own. What it mounts (a binfmt_misc instance, since Linux
# 6.7 one per user namespace) stays inside; the host is not changed.
# Needs root (it writes the maps itself: no newuidmap, no /etc/subuid).
set -eu
[ "$(id -u)" = 0 ] || { echo "userns: must be run as root" >&2; exit 111; }
sync=$(mktemp -d /tmp/hermes-userns.XXXXXX)
trap 'rm -rf "$sync"' EXIT
# The child waits (bounded) until its maps are written, then execs CMD.
unshare -U -m sh -c '
  echo $$ > "$0/pid"
  i=0
  while [ ! -e "$0/mapped" ]; do
    i=$((i + 1)); [ "$i" -le 1000 ] || { echo "userns: never mapped" >&2; exit 111; }
    sleep 0.01
  done
  shift; exec "$@"' "$sync" - "$@" &
child=$!
i=0
until [ -s "$sync/pid" ]; do
  i=$((i + 1)); [ "$i" -le 1000 ] || { echo "userns: the namespace did not start" >&2; kill "$child" 2>/dev/null; exit 111; }
  sleep 0.01
done
pid=$(cat "$sync/pid")
echo "0 0 65536" > "/proc/$pid/uid_map"
echo "0 0 65536" > "/proc/$pid/gid_map"
: > "$sync/mapped"
wait "$child"
