#!/bin/bash
# 85-standby-real.sh — the lease with the real hermes-agent 0.19.0 gateway
# (SPEC §8): two containers on one volume run `default` and `coder` once
# between them; the gateway process itself holds the lease (an fd on
# gateway.lease in its home, nobody else's); docker kill of the holder → the
# standby starts the gateway within 2 s and it becomes ready; an operator
# stop on the holder → no failover; `restart` from the standby side; health
# on both sides.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

need_real_gateway
e2e_project_image || exit 1
export CT_PATH="$VENV/bin:/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
A=$CT_DIR
B=/tmp/hermes-e2e.85-b.$$
E2E_EXTRA_CT_DIRS=$B
TAG=e2e85.$$
e2e_env "E2E_TAG=$TAG"
READY_MS=30000
RUNNING='{"desired_state":"running"}'
for p in default coder; do
  profile "$p" "" "$RUNNING"
  # killed and restarted in quick succession: the gateway's own breaker off
  printf 'gateway:\n  respawn_storm:\n    max_starts: 0\n' > "$(home "$p")/config.yaml"
  chown "$HERMES_UID_CT:$HERMES_UID_CT" "$(home "$p")/config.yaml"
done

on() { local d=$1; shift; CT_DIR=$d "$CT/exec-as-hermes.sh" hermes-s6 "$@"; }
name_of() { if [ "$1" = "$A" ]; then echo gw-a; else echo gw-b; fi; }
boot() { CT_DIR=$1 CT_NAME=$(name_of "$1") CT_VOLUME=$A/home "$CT/boot.sh"; }
pid1_of() ( CT_DIR=$1; . "$CT/lib.sh"; ct_pid1 )
gone() ( CT_DIR=$1; . "$CT/lib.sh"; [ -z "$(ct_pid1)" ] && [ -z "$(ct_leftovers)" ] )
other() { if [ "$1" = "$A" ]; then echo "$B"; else echo "$A"; fi; }
health_in() { on "$1" status "$2" 2>/dev/null | sed -n '2s/.* health=\([^ ]*\) .*/\1/p'; }
ready_in() { [ "$(health_in "$1" "$2")" = ready ]; }
standby_in() { [ "$(health_in "$1" "$2")" = standby ]; }

# the real gateways of this test, from the host: "P HOSTPID" each
gateways() {
  local pid env p
  for pid in $(pgrep -f 'hermes.* gateway run'); do
    env=$( { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null) || continue
    grep -qx "E2E_TAG=$TAG" <<< "$env" || continue
    grep -qx "HERMES_S6_SUPERVISED_CHILD=1" <<< "$env" || continue
    p=$(sed -n 's/^HERMES_PROFILE=//p' <<< "$env")
    echo "$p $pid"
  done
}
count() { gateways | awk -v p="$1" '$1 == p' | wc -l; }
hostpid() { gateways | awk -v p="$1" '$1 == p { print $2; exit }'; }
where() {
  local pid ns d
  pid=$(hostpid "$1"); [ -n "$pid" ] || return 1
  ns=$(readlink "/proc/$pid/ns/pid")
  for d in "$A" "$B"; do
    [ "$(readlink "/proc/$(pid1_of "$d")/ns/pid" 2>/dev/null)" = "$ns" ] && { echo "$d"; return 0; }
  done
  return 1
}
# the host pids with an fd on P's gateway.lease (as the containers see it)
lease_fds() {
  local f want=/opt/data/gateway.lease
  [ "$1" = default ] || want=/opt/data/profiles/$1/gateway.lease
  for f in /proc/[0-9]*/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = "$want" ] || continue
    f=${f#/proc/}; echo "${f%%/*}"
  done | sort -u
}

SAMPLES=$E2E_TMP/samples
sampler() {
  while [ ! -e "$E2E_TMP/stop-sampling" ]; do
    echo "$(_now_ms)$(gateways | awk '{ n[$1]++ } END { for (p in n) printf " %s=%d", p, n[p] }')" >> "$SAMPLES"
    sleep 0.05
  done
}

section "A runs the real gateways; B on the same volume stands by"
check "A boots" boot "$A" || exit 1
for p in default coder; do wait_for "$p is ready in A" "$READY_MS" ready_in "$A" "$p"; done
sampler & SAMPLER=$!
check "B boots" boot "$B" || exit 1
for p in default coder; do wait_for "$p stands by in B" 5000 standby_in "$B" "$p"; done
check_eq "one coder gateway" 1 count coder
check_eq "...in A" "$A" where coder
check_eq "the gateway process itself, and only it, has coder's lease open" "$(hostpid coder)" lease_fds coder
check "health in A" on "$A" health
check "health in B" on "$B" health

section "docker kill of the holder: B's standby starts the real gateway within 2 s"
t0=$(_now_ms)
kill -9 "$(pid1_of "$A")"
coder_in_b() { [ "$(where coder)" = "$B" ]; }
poll 10000 coder_in_b
ms=$(( $(_now_ms) - t0 ))
if [ "$ms" -le 2000 ]; then pass "coder's gateway started in B $ms ms after the kill"; else fail "failover within 2 s" "took $ms ms"; fi
for p in default coder; do wait_for "$p is ready in B" "$READY_MS" ready_in "$B" "$p"; done
check_eq "one coder gateway" 1 count coder
check_eq "B's gateway, and only it, has the lease open" "$(hostpid coder)" lease_fds coder
wait_for "A is gone" 10000 gone "$A"
check "A boots again" boot "$A"
for p in default coder; do wait_for "$p stands by in A" 10000 standby_in "$A" "$p"; done
check "health in A" on "$A" health

section "an operator stop on the holder does not fail over; restart from the standby side"
check "hermes-s6 stop coder --wait in B (the holder)" on "$B" stop coder --wait --timeout 20000
no_coder() { [ "$(count coder)" = 0 ]; }
check "no coder gateway" no_coder
coder_runs() { [ "$(count coder)" != 0 ]; }
refute "and none for 5 s" poll 5000 coder_runs
check_eq "desired_state=stopped" stopped jkey coder desired_state
check_eq "A still stands by" standby health_in "$A" coder
check "start coder --wait from A (B's slot is down): ready on this side" on "$A" start coder --wait --timeout "$READY_MS"
check_eq "coder runs in A" "$A" where coder
check "start coder in B: it stands by" on "$B" start coder
old=$(hostpid coder)
# the new gateway runs in A (B's --wait says so) or B's standby took over
restart_from_b() {
  local out
  out=$(on "$B" restart coder --wait --timeout "$READY_MS" 2>&1) || return 1
  if [ "$(where coder)" = "$B" ]; then echo "taken over by B"; else echo "$out"; fi
}
check_match "restart coder --wait from B, the standby side: ready, and where" 'ready on gw-a/[0-9]+ |taken over by B' restart_from_b
new_coder() { local n; n=$(hostpid coder); [ -n "$n" ] && [ "$n" != "$old" ]; }
check "a new coder gateway" new_coder
check_eq "one" 1 count coder

touch "$E2E_TMP/stop-sampling"; wait "$SAMPLER"
for p in default coder; do
  check_eq "$p: never two real gateways at once ($(wc -l < "$SAMPLES") samples)" 0 awk -v p="$p" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == p && kv[2] > 1) bad++ } } END { print bad + 0 }' "$SAMPLES"
done
