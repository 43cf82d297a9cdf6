#!/bin/bash
# 80-standby.sh — one gateway per profile across containers (SPEC §8): two
# containers (hostnames gw-a and gw-b) on one HERMES_HOME volume, stand-in
# gateways. A sampler on the host counts every profile's gateway processes in
# both containers during the whole script: never two, and for the profiles
# meant to run all along never none for more than 2 s. Failover after docker
# kill of the holder (timed), a gateway killed alone whose leftover child
# still held the lease, an operator stop on the holder (no failover),
# start/stop/restart from either side, `health`, loggers that never share a
# directory, a dashboard container that never takes a lease, a rolling
# restart of both containers.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

hermes_image || exit 1
install -D -m 0755 "$E2E_ROOT/tests/e2e/upstream/main-wrapper.sh" "$IMAGE_SRC/opt/hermes/docker/main-wrapper.sh"
A=$CT_DIR
B=/tmp/hermes-e2e.80-b.$$
C=/tmp/hermes-e2e.80-dashboard.$$
E2E_EXTRA_CT_DIRS="$B $C"
TAG=e2e80.$$
e2e_env "E2E_TAG=$TAG"
RUNNING='{"desired_state":"running"}'
profile default plain "$RUNNING"
profile coder plain "$RUNNING"
profile ops plain "$RUNNING"
profile writer mimic "$RUNNING"
profile lonely plain '{"desired_state":"stopped"}'
ALL="default coder ops writer lonely"
ALWAYS="default coder"   # meant to run from first to last: gaps are measured
FAILOVER_MS=2000

# on X: the hermes user's hermes-s6 in container X (A or B)
on() { local d=$1; shift; CT_DIR=$d "$CT/exec-as-hermes.sh" hermes-s6 "$@"; }
name_of() { case $1 in "$A") echo gw-a ;; "$B") echo gw-b ;; *) echo dashboard ;; esac; }
boot() { CT_DIR=$1 CT_NAME=$(name_of "$1") CT_VOLUME=$A/home "$CT/boot.sh"; }
restart() { CT_DIR=$1 CT_NAME=$(name_of "$1") CT_VOLUME=$A/home "$CT/restart.sh"; }
pid1_of() ( CT_DIR=$1; . "$CT/lib.sh"; ct_pid1 )
gone() ( CT_DIR=$1; . "$CT/lib.sh"; [ -z "$(ct_pid1)" ] && [ -z "$(ct_leftovers)" ] )
hline() { on "$1" status "$2" 2>/dev/null | sed -n 2p; }
health_in() { hline "$1" "$2" | sed -n 's/.* health=\([^ ]*\) .*/\1/p'; }
ready_in() { [ "$(health_in "$1" "$2")" = ready ]; }
standby_in() { [ "$(health_in "$1" "$2")" = standby ]; }
other() { if [ "$1" = "$A" ]; then echo "$B"; else echo "$A"; fi; }

# gateway processes of this test, from the host: "P PID" per gateway (the
# stand-ins end in `sleep 2147483647`, one per gateway)
gateways() {
  local pid env p
  for pid in $(pgrep -x sleep); do
    [ "$( { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null)" = "sleep 2147483647 " ] || continue
    env=$( { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null) || continue
    grep -qx "E2E_TAG=$TAG" <<< "$env" || continue
    p=$(sed -n 's/^HERMES_PROFILE=//p' <<< "$env")
    echo "$p $pid"
  done
}
count() { gateways | awk -v p="$1" '$1 == p' | wc -l; }
# which container runs P's gateway: A, B or nothing
where() {
  local pid ns
  pid=$(gateways | awk -v p="$1" '$1 == p { print $2; exit }')
  [ -n "$pid" ] || return 1
  ns=$(readlink "/proc/$pid/ns/pid")
  for d in "$A" "$B"; do
    [ "$(readlink "/proc/$(pid1_of "$d")/ns/pid" 2>/dev/null)" = "$ns" ] && { echo "$d"; return 0; }
  done
  return 1
}
both_run() { [ "$(count coder)" = 1 ] && [ "$(count default)" = 1 ]; }

SAMPLES=$E2E_TMP/samples
sampler() {
  local t line p
  while [ ! -e "$E2E_TMP/stop-sampling" ]; do
    t=$(_now_ms)
    line=$(gateways | awk '{ n[$1]++ } END { for (p in n) printf " %s=%d", p, n[p] }')
    echo "$t$line" >> "$SAMPLES"
  done
}

section "container A (gw-a) boots and runs every gateway meant to run"
check "A boots" boot "$A" || exit 1
for p in default coder ops writer; do wait_for "$p is ready in A" 10000 ready_in "$A" "$p"; done
check_eq "lonely (stopped) is down" down health_in "$A" lonely
sampler & SAMPLER=$!

section "container B (gw-b) on the same volume stands by"
check "B boots" boot "$B" || exit 1
for p in default coder ops writer; do wait_for "$p stands by in B" 5000 standby_in "$B" "$p"; done
check_match "B's status names the holder (gw-a)" '^profile=coder .* health=standby holder=gw-a/[0-9]+ port=' hline "$B" coder
check_match "...and so does --json" '"health":"standby".*"holder":"gw-a/[0-9]+"' on "$B" status coder --json
for p in default coder ops writer; do
  check_eq "$p: one gateway" 1 count "$p"
  check_eq "$p: it runs in A" "$A" where "$p"
done
check_match "B's standby wrote nothing into the state file (A's gateway's pid is there)" \
  "\"pid\":$(on "$A" pid coder)[,}]" cat "$(home coder)/gateway_state.json"
check "health in A: 0" on "$A" health
check_match "health in B: 0, the gateways run in another container" 'healthy: 0 gateways ready here, 4 in another' on "$B" health

section "loggers never share a log directory"
check "A's logger holds logs/gateways/coder, B's writes logs/gateways/coder@gw-b" \
  test -d "$A/home/logs/gateways/coder@gw-b"
check "s6-log's own lock file is never deleted" test -e "$A/home/logs/gateways/coder/lock"
dups=$(for p in $(pgrep -x s6-log); do { tr '\0' '\n' < "/proc/$p/cmdline"; } 2>/dev/null | tail -n 1; done | sort | uniq -d)
check_eq "no two s6-log processes write one directory" "" echo "$dups"
check_match "B's log says it stands by and where the gateway runs" 'standing by, its gateway runs on gw-a/' \
  cat "$A/home/logs/gateways/coder@gw-b/current"

section "docker kill of the holder: the standby takes over within ${FAILOVER_MS} ms"
for round in 1 2 3; do
  X=$(where coder) || { fail "round $round: coder runs somewhere"; break; }
  Y=$(other "$X")
  t0=$(_now_ms)
  kill -9 "$(pid1_of "$X")"
  poll 10000 both_run
  t1=$(_now_ms)
  ms=$(( t1 - t0 ))
  if [ "$ms" -le "$FAILOVER_MS" ]; then pass "round $round: $(name_of "$X") killed, coder and default run again in $ms ms"
  else fail "round $round: failover within $FAILOVER_MS ms" "took $ms ms"; fi
  check_eq "round $round: coder now runs in $(name_of "$Y")" "$Y" where coder
  wait_for "round $round: $(name_of "$X") is gone" 10000 gone "$X"
  check "round $round: $(name_of "$X") boots again" boot "$X"
  for p in default coder ops writer; do wait_for "round $round: $p stands by in $(name_of "$X")" 5000 standby_in "$X" "$p"; done
done

section "a gateway killed alone, its child still holding the lease: freed, one gateway"
X=$(where writer)
gw=$(on "$X" pid writer)
hostpid=$(gateways | awk '$1 == "writer" { print $2 }')
# the mimic gateway is a shell whose child is the sleep; kill the shell only
shell=$(awk '{ print $4 }' "/proc/$hostpid/stat")
kill -9 "$shell"
writer_back() { [ "$(count writer)" = 1 ] && ! kill -0 "$hostpid" 2>/dev/null; }
wait_for "writer runs again (one gateway) within 4 s" 4000 writer_back
check "finish said it freed the lease" grep -rq "still held by what the dead gateway (pid $gw) left behind" "$A/home/logs/gateways" "$X/console.log"

section "an operator stop on the holder never fails over"
X=$(where ops); Y=$(other "$X")
check "stop ops --wait in the holder ($(name_of "$X"))" on "$X" stop ops --wait
ops_runs() { [ "$(count ops)" != 0 ]; }
refute "no ops gateway anywhere for 3 s" poll 3000 ops_runs
check_eq "the other container still stands by" standby health_in "$Y" ops
check_match "with no holder to name" ' health=standby holder=- ' hline "$Y" ops
check_eq "desired_state=stopped" stopped jkey ops desired_state
check_eq "exit_reason=operator_stop (the holder's finish wrote it, under the lease)" operator_stop jkey ops exit_reason
check "health: 0 (ops is not meant to run)" on "$Y" health

section "start, stop and restart from either side"
check "start ops --wait in the standby container ($(name_of "$Y"))" on "$Y" start ops --wait
check_eq "ops runs there" "$Y" where ops
check "stop ops --wait from the other container ($(name_of "$X"), its slot down)" on "$X" stop ops --wait
check_eq "no ops gateway anywhere" 0 count ops
check_eq "the holder's slot is down (its watcher carried the stop out)" down health_in "$Y" ops
check_eq "exit_reason=operator_stop" operator_stop jkey ops exit_reason
check "start ops --wait in A" on "$A" start ops --wait
check "start ops --wait in B" on "$B" start ops --wait
X=$(where ops); Y=$(other "$X")
old=$(gateways | awk '$1 == "ops" { print $2 }')
restart_from_y() { on "$Y" restart ops --wait 2>&1; }
check "restart ops --wait from the standby side ($(name_of "$Y"))" restart_from_y
new_ops() { local n; n=$(gateways | awk '$1 == "ops" { print $2 }'); [ -n "$n" ] && [ "$n" != "$old" ]; }
check "ops runs again, a new process" new_ops
check_eq "...one" 1 count ops
check_eq "desired_state=running" running jkey ops desired_state

section "health: a profile meant to run that runs nowhere"
printf '%s\n' "$RUNNING" > "$(home lonely)/gateway_state.json"; chown "$HERMES_UID_CT:$HERMES_UID_CT" "$(home lonely)/gateway_state.json"
refute "health in A: 1" on "$A" health
health_lines() { on "$1" health; true; }
check_match "...one line naming lonely" '^profile=lonely health=down s6=down: meant to run' health_lines "$A"
check_eq "...and only that one" 1 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 health | wc -l"
check "start lonely --wait (from A)" on "$A" start lonely --wait
check "health in A: 0" on "$A" health
check "health in B: 0" on "$B" health

section "a dashboard container on the same volume never takes a lease"
check "the dashboard container boots" env CT_DIR="$C" CT_NAME=dashboard CT_VOLUME="$A/home" \
  CT_CMD="/opt/hermes/docker/main-wrapper.sh dashboard" "$CT/boot.sh"
check_eq "it has no slot" "" on "$C" list
check_match "its status names the holders" '^profile=coder slot=none .* health=dashboard holder=gw-[ab]/' on "$C" status
check "its health: 0" on "$C" health
CT_DIR=$C "$CT/rm.sh" > /dev/null 2>&1

section "rolling restart of both containers"
check "restart A" restart "$A"
one_of() { [ "$(count "$1")" = 1 ]; }
settled_in() { case $(health_in "$1" "$2") in ready|standby) ;; *) return 1 ;; esac; }
for p in default coder; do wait_for "$p runs (here or elsewhere) after A's restart" 5000 one_of "$p"; done
for p in default coder ops writer lonely; do wait_for "$p ready or standing by in A" 5000 settled_in "$A" "$p"; done
check "restart B" restart "$B"
for p in default coder ops writer lonely; do wait_for "$p ready or standing by in B" 5000 settled_in "$B" "$p"; done
check "health in A: 0" on "$A" health
check "health in B: 0" on "$B" health

section "the sampler's verdict: never two gateways, never none for more than 2 s"
touch "$E2E_TMP/stop-sampling"; wait "$SAMPLER"
n=$(wc -l < "$SAMPLES")
span=$(( $(tail -n 1 "$SAMPLES" | cut -d' ' -f1) - $(head -n 1 "$SAMPLES" | cut -d' ' -f1) ))
note "$n samples over $span ms"
check "a sample at least every 150 ms on average" test $(( n * 150 )) -ge "$span"
for p in $ALL; do
  check_eq "$p: never two gateways at once" 0 awk -v p="$p" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == p && kv[2] > 1) bad++ } } END { print bad + 0 }' "$SAMPLES"
done
for p in $ALWAYS; do
  gap=$(awk -v p="$p" '{ c = 0; for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == p) c = kv[2] }
    if (c > 0) { if (last != "" && $1 - last > max) max = $1 - last; last = $1 } } END { print max + 0 }' "$SAMPLES")
  note "$p: longest time without a gateway: $gap ms (between two samples that saw one)"
  if [ "$gap" -le 2000 ]; then pass "$p: never without a gateway for more than 2 s ($gap ms)"; else fail "$p: never without a gateway for more than 2 s" "longest gap $gap ms"; fi
done
