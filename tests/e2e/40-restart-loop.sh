#!/bin/bash
# 40-restart-loop.sh — 20 container restarts with profiles in every state;
# each boot must end in exactly the expected up/down set (SPEC §3.1, §3.3, §5):
#   default  plain gateway, desired running      → up, started once per boot
#   mimics   hermes-like gateway, desired running → up, started once per boot
#   stopped  stopped by the operator at boot 0    → down, never started again
#   never    no state file                        → registered, down, never started
#   loops    crashes at once, desired running     → started at every boot, parks
#            itself after 5 quick deaths: down, startup_failed (crash_loop)
#   cfg78    exits 78, desired running            → started at every boot, parks
#            at once: down, startup_failed (fatal_config)
#   corrupt  gateway_state.json is not JSON       → "no state": registered, down;
#            the file is never rewritten
# The stops alternate between the overlay stage 3 and s6-svscan's own (plain)
# SIGTERM handling; every 4th boot gets a fresh tmpfs /run.
export S6_KILL_GRACETIME=${S6_KILL_GRACETIME:-200}
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

ROUNDS=${E2E_RESTARTS:-20}
hermes_image
H=$CT_DIR/home
RUNNING='{"desired_state":"running"}'
profile default plain "$RUNNING"
profile mimics mimic "$RUNNING"
profile stopped plain "$RUNNING"
profile never plain
profile loops crashloop "$RUNNING"
profile cfg78 exit78 "$RUNNING"
profile corrupt plain
printf '{"desired_state": "running", "gateway_st' > "$(home corrupt)/gateway_state.json"
cp "$(home corrupt)/gateway_state.json" "$E2E_TMP/corrupt.orig"
ALL="default cfg78 corrupt loops mimics never stopped"

# expected I: the snapshot (s6/gateway_state/starts) after boot number I (0 = first)
expected() {
  local b=$(( $1 + 1 ))
  echo "default=up/running/$b cfg78=down/startup_failed/$b corrupt=down/-/0" \
       "loops=down/startup_failed/$(( 5 * b )) mimics=up/running/$b never=down/-/0 stopped=down/stopped/1"
}
is_expected() { [ "$(snapshot $ALL)" = "$(expected "$1")" ]; }

BLOCK="profile=default prior_state=running action=started
profile=cfg78 prior_state=running action=started
profile=corrupt prior_state=None action=registered
profile=loops prior_state=running action=started
profile=mimics prior_state=running action=started
profile=never prior_state=None action=registered
profile=stopped prior_state=stopped action=registered"

# round I: the checks every boot must pass
round() {
  local i=$1
  if ! wait_for "boot $i: exactly default and mimics up; loops parked after 5 deaths, cfg78 after 1; the rest down" 20000 is_expected "$i"; then
    note "wanted: $(expected "$i")"
    note "got:    $(snapshot $ALL)"
  fi
  check_eq "boot $i: loops parked as a crash loop, cfg78 as a fatal configuration" "crash_loop fatal_config" \
    sh -c "echo $(field loops exit_reason) $(field cfg78 exit_reason)"
  check_eq "boot $i: the intents are untouched (running, running, stopped)" "running running stopped" \
    sh -c "echo $(jkey loops desired_state) $(jkey cfg78 desired_state) $(jkey stopped desired_state)"
  check "boot $i: the corrupt state file was left as it was" cmp -s "$E2E_TMP/corrupt.orig" "$(home corrupt)/gateway_state.json"
  refute "boot $i: never has no state file (nothing wrote one)" test -e "$(home never)/gateway_state.json"
  check_eq "boot $i: the boot log's block" "$BLOCK" sh -c "tail -n 7 '$H/logs/container-boot.log' | cut -d' ' -f2-4"
}

section "boot 0"
check "the container boots" e2e_boot || exit 1
wait_for "stopped is up (desired running)" 5000 xh hermes-s6 pid stopped
check "the operator stops it (as hermes)" xh hermes-s6 stop stopped --wait
# boot 0's block differs only for `stopped` (running at that boot)
BLOCK0=${BLOCK/profile=stopped prior_state=stopped action=registered/profile=stopped prior_state=running action=started}
saved=$BLOCK; BLOCK=$BLOCK0; round 0; BLOCK=$saved

t0=$(_now_ms)
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then mode=overlay; else mode=plain; fi   # how boot i-1 was booted: how it stops now
  next=$([ $((i % 2)) = 1 ] && echo plain || echo overlay)
  run=$([ $((i % 4)) = 0 ] && echo tmpfs || echo layer)
  section "restart $i ($mode stop; boots with SHUTDOWN_MODE=$next RUN_MODE=$run)"
  check "restart $i: docker restart" env SHUTDOWN_MODE="$next" RUN_MODE="$run" "$CT/restart.sh" || exit 1
  round "$i"
done
note "$ROUNDS restarts in $(( ($(_now_ms) - t0) / 1000 )) s"

section "after $ROUNDS restarts"
check_eq "the boot log has one block of 7 lines per boot" $(( (ROUNDS + 1) * 7 )) sh -c "wc -l < '$H/logs/container-boot.log'"
refute "no container stop was ever taken for an operator stop by the mimic gateway" grep -q "marker=match" "$(home mimics)/gw.log"
check_eq "stopped never ran again" 1 starts stopped
