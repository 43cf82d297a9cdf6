#!/bin/bash
# 30-restart.sh — the reason hermes-s6 exists (upstream #42675: the shutdown
# persisted `stopped`, so a routine `docker restart` left every gateway dark).
# Running gateways are killed only by real container restarts — SIGTERM from
# the shutdown, no marker, no state written by the test — and run again after
# the boot, with a gateway that knows nothing about markers (plain), one that
# behaves like hermes (mimic: unmarked SIGTERM → exit 1) and one that ignores
# SIGTERM (stubborn: must not hang the shutdown). An operator-stopped gateway
# stays down; a crashed one (kill -9) is revived by s6 and still autostarts.
# Three restarts: overlay stop (inspected between stop and boot), overlay
# stop as one `docker restart`, and s6-svscan's own (plain) stop.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

hermes_image
H=$CT_DIR/home
RUNNING='{"desired_state":"running"}'
profile default plain "$RUNNING"
profile coder mimic "$RUNNING"
profile crashy plain "$RUNNING"
profile stubborn ignoreterm "$RUNNING"
profile writer plain "$RUNNING"
UP="default coder crashy stubborn"

declare -A n       # expected number of starts of each gateway so far
pids=
all_up() {  # the running set is up, each with exactly the expected number of starts
  local p
  for p in $UP; do
    xh hermes-s6 pid "$p" > /dev/null 2>&1 || return 1
    [ "$(starts "$p")" = "${n[$p]}" ] || return 1
  done
}
remember_pids() { pids=; for p in $UP; do pids="$pids $p=$(gwpid "$p")"; done; }
no_marker() { [ -z "$(find "$H" -name .gateway-planned-stop.json)" ]; }

# after_boot TITLE: what every boot must end in
after_boot() {
  local p
  for p in $UP; do n[$p]=$(( ${n[$p]} + 1 )); done
  wait_for "$1: $UP run again, each started once more" 5000 all_up
  for p in $UP; do
    check_eq "$1: $p is up with desired_state=running gateway_state=running" "up running running" \
      sh -c "echo $(s6of "$p") $(jkey "$p" desired_state) $(jkey "$p" gateway_state)"
  done
  check_eq "$1: writer (stopped by the operator) stays down, desired_state=stopped" "down stopped" \
    sh -c "echo $(s6of writer) $(jkey writer desired_state)"
  check_eq "$1: writer was not started by the boot" "${n[writer]}" starts writer
  check_eq "$1: the boot log says so" \
    "profile=default prior_state=running action=started
profile=coder prior_state=running action=started
profile=crashy prior_state=running action=started
profile=stubborn prior_state=running action=started
profile=writer prior_state=stopped action=registered" \
    sh -c "tail -n 5 '$H/logs/container-boot.log' | cut -d' ' -f2-4"
}

# after_stop TITLE: what the shutdown left on the volume
after_stop() {
  local p
  for p in $UP; do
    check_eq "$1: $p's run-intent survived the shutdown (desired_state=running, gateway_state=running; upstream #42675 wrote stopped)" \
      "running running" sh -c "echo $(jkey "$p" desired_state) $(jkey "$p" gateway_state)"
  done
  check_eq "$1: writer's stop survived (desired_state=stopped)" stopped jkey writer desired_state
  check "$1: no marker is left anywhere on the volume" no_marker
}

section "boot, the operator stops writer"
check "the container boots" e2e_boot || exit 1
for p in $UP writer; do n[$p]=1; done
wait_for "first boot: every gateway is up, started once" 5000 all_up
wait_for "first boot: writer is up" 5000 xh hermes-s6 pid writer
check "the operator stops writer (as hermes, --wait)" xh hermes-s6 stop writer --wait
check "no marker is left after the stop" no_marker
refute "nothing else was stopped (no other desired_state=stopped)" \
  grep -qs '"desired_state":"stopped"' "$H/gateway_state.json" "$H"/profiles/{coder,crashy,stubborn}/gateway_state.json

section "docker stop (overlay: services down, kill -TERM -1), inspect, docker start"
remember_pids
cpid=$(gwpid coder)
e2e_stop > "$E2E_TMP/stop1.log" 2>&1
check_match "the container stopped gracefully although stubborn ignores SIGTERM" "stopped \(graceful\)" cat "$E2E_TMP/stop1.log"
check "the mimic gateway got SIGTERM without a marker (and exited 1, as hermes does)" \
  grep -qx "term marker=none exit=1 pid=$cpid" "$(home coder)/gw.log"
after_stop "after the stop"
check_eq "the plain gateway's death was classified as a shutdown (finish ran, s6 wanted it down)" "running shutdown" \
  sh -c "echo $(jkey default gateway_state) $(jkey default exit_reason)"
check_eq "the mimic gateway's exit 1 was a shutdown too, not a crash: run-intent kept" "running shutdown" \
  sh -c "echo $(jkey coder gateway_state) $(jkey coder exit_reason)"
check "docker start" e2e_boot || exit 1
after_boot "after the first restart"

section "a crash: kill -9 of a gateway inside the container"
old=$(gwpid crashy)
check "kill -9 the crashy gateway (as root)" xr kill -9 "$old"
wait_for "s6 revives it with a new pid" 5000 sh -c "p=\$('$CT/exec-as-hermes.sh' hermes-s6 pid crashy 2>/dev/null) && [ \"\$p\" != $old ]"
n[crashy]=$(( n[crashy] + 1 ))
check_eq "the crash kept the run-intent (desired_state=running, gateway_state=running)" "running running" \
  sh -c "echo $(jkey crashy desired_state) $(jkey crashy gateway_state)"
check_eq "...and the gateway started once more" "${n[crashy]}" starts crashy

section "docker restart (overlay stop; the next boot with SHUTDOWN_MODE=plain)"
remember_pids
cpid=$(gwpid coder)
check "docker restart" env SHUTDOWN_MODE=plain "$CT/restart.sh" || exit 1
check "the mimic gateway got SIGTERM without a marker again" \
  grep -qx "term marker=none exit=1 pid=$cpid" "$(home coder)/gw.log"
after_boot "after the second restart"

section "docker stop (plain: s6-svscan's own SIGTERM handling), inspect, docker start"
e2e_stop > "$E2E_TMP/stop3.log" 2>&1
check "the container stopped" grep -q "container stopped" "$E2E_TMP/stop3.log"
after_stop "after the plain stop"
check "docker start" e2e_boot || exit 1
after_boot "after the third restart"
refute "no gateway ever saw a marker for a container stop" grep -q "marker=match" "$(home coder)/gw.log"
