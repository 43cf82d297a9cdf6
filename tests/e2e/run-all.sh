#!/bin/bash
# run-all.sh — run every tests/e2e/[0-9]*.sh in name order, each with its own
# CT_DIR under /tmp and a time limit, then print one line per script and the
# total. Exits 1 when any script failed (a script that ends without its
# `e2e: N passed, M failed` line counts as failed).
#
# usage: run-all.sh
#   E2E_ONLY=ERE          run only the scripts whose file name matches ERE
#   E2E_SCRIPT_TIMEOUT=S  seconds one script may take (default 600)
#   E2E_KEEP=1            keep every container directory (default: failures only)
set -u
here=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" = 0 ] || { echo "run-all: must be run as root (namespaces, mounts)" >&2; exit 1; }
only=${E2E_ONLY:-}
limit=${E2E_SCRIPT_TIMEOUT:-600}
logdir=$(mktemp -d /tmp/hermes-e2e-logs.XXXXXX)

total_pass=0 total_fail=0 bad=0 n=0
summary=()
for t in "$here"/[0-9]*.sh; do
  [ -f "$t" ] || continue
  name=${t##*/}
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then continue; fi
  n=$((n + 1))
  echo "=== $name"
  t0=${EPOCHREALTIME/./}
  CT_DIR=/tmp/hermes-e2e.${name%.sh}.$$ timeout -s TERM -k 30 "$limit" bash "$t" 2>&1 | tee "$logdir/$name.log"
  rc=${PIPESTATUS[0]}
  ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
  line=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed$' "$logdir/$name.log" | tail -n 1)
  if [ -n "$line" ]; then
    read -r _ p _ f _ <<< "$line"
  else
    p=0 f=1
  fi
  total_pass=$((total_pass + p))
  total_fail=$((total_fail + f))
  if [ "$rc" -eq 0 ] && [ -n "$line" ] && [ "$f" -eq 0 ]; then
    summary+=("$(printf 'ok    %-32s %4d passed, %d failed  %6d ms' "$name" "$p" "$f" "$ms")")
  else
    bad=$((bad + 1))
    [ "$rc" -eq 124 ] && line="timed out after ${limit}s"
    summary+=("$(printf 'FAIL  %-32s %s (exit %d)  %6d ms' "$name" "${line:-no summary line}" "$rc" "$ms")")
  fi
done

echo
echo "=== e2e summary"
if [ "$n" -eq 0 ]; then
  rm -rf "$logdir"
  echo "no script matched E2E_ONLY='$only'"
  exit 1
fi
printf '%s\n' "${summary[@]}"
echo "e2e total: $total_pass passed, $total_fail failed; scripts: $((n - bad)) ok, $bad failed"
if [ "$bad" -eq 0 ] && [ "${E2E_KEEP:-0}" != 1 ]; then rm -rf "$logdir"; else echo "logs: $logdir"; fi
[ "$bad" -eq 0 ] && [ "$total_fail" -eq 0 ]
