#!/bin/bash
# stop.sh — `docker stop -t $STOP_TIMEOUT`: SIGTERM to the container's PID 1
# (s6-svscan), up to STOP_TIMEOUT seconds for it to end, then SIGKILL (the
# kernel then kills whatever is left in the PID namespace). The container's
# mounts go away with the last process of its mount namespace. The layer and
# the volume stay. Exits 1 if a process is still inside the container's
# namespaces afterwards.
#
# usage: stop.sh
set -eu -o pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need_root

p=$(ct_pid1)
if [ -z "$p" ]; then
  log "container $CT_DIR is not running"
  rm -f "$PIDFILE" "$UPIDFILE"
  exit 0
fi
read -r u < "$UPIDFILE"

echo "=== ct stop $(date -u +%FT%T.%3NZ) (SIGTERM to PID 1, timeout ${STOP_TIMEOUT}s)" >> "$CONSOLE"
now_ticks > "$STOPFILE"
t0=${EPOCHREALTIME/./}
kill -TERM "$p"
how=graceful
deadline=$(( t0 + STOP_TIMEOUT * 1000000 ))
while alive "$u"; do
  if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
    how="SIGKILL after the ${STOP_TIMEOUT}s timeout"
    echo "=== ct stop: timeout, SIGKILL to PID 1" >> "$CONSOLE"
    kill -KILL "$p" 2>/dev/null || true
    deadline=$(( ${EPOCHREALTIME/./} + 5000000 ))
    while alive "$u" && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do sleep 0.02; done
    break
  fi
  sleep 0.02
done
# `docker exec` processes outside the PID namespace (nsenter) may hold the
# mount namespace a moment longer, until their child inside is reaped.
deadline=$(( ${EPOCHREALTIME/./} + 2000000 ))
left=$(ct_leftovers)
while [ -n "$left" ] && [ "${EPOCHREALTIME/./}" -lt "$deadline" ]; do
  sleep 0.02
  left=$(ct_leftovers)
done
rm -f "$PIDFILE" "$UPIDFILE"
ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
echo "=== ct stopped ($how) after ${ms} ms" >> "$CONSOLE"
if [ -n "$left" ]; then
  log "container stopped ($how) after ${ms} ms, but these host pids are still in its namespaces: ${left//$'\n'/ }"
  exit 1
fi
log "container stopped ($how) after ${ms} ms"
