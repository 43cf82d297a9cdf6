#!/bin/bash
# 70-upstream-dropin.sh — hermes-s6 in the deployment users already have
# (SPEC §8), with the real hermes-agent 0.19.0 CLI and gateway: the container's
# main command is upstream's `main-wrapper.sh gateway run` (seen in rc.init's
# argv, as under s6-overlay v3), the operator knows only upstream's `hermes`
# commands, a profile is deleted under its running gateway, a dashboard
# container shares the volume, and GATEWAY_MULTIPLEX_PROFILES keeps named
# profiles down.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

need_real_gateway
e2e_project_image || exit 1
install -D -m 0755 "$E2E_ROOT/tests/e2e/upstream/main-wrapper.sh" "$IMAGE_SRC/opt/hermes/docker/main-wrapper.sh"
# hermes-s6's front (/usr/local/bin/hermes) before upstream's CLI, as the
# image changes in docs/install.md say; upstream's CLI is the venv's.
export CT_PATH="/command:/usr/local/sbin:/usr/local/bin:$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin"
e2e_env "HERMES_S6_HERMES=$VENV/bin/hermes"
export CT_CMD="/opt/hermes/docker/main-wrapper.sh gateway run"
H=$CT_DIR/home
READY_MS=30000

line() { xh hermes-s6 status "$1" 2>/dev/null | sed -n 2p; }
ready() { line "$1" | grep -q ' s6=up .* health=ready '; }
registered() { xh hermes-s6 list | grep -qx "$1"; }
main_cmd_alive() { xr sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " < "$f" 2>/dev/null; echo; done' | grep -q '^hermes gateway run \|/hermes gateway run $'; }
chown "$HERMES_UID_CT:$HERMES_UID_CT" "$H" 2>/dev/null || { mkdir -p "$H"; chown "$HERMES_UID_CT:$HERMES_UID_CT" "$H"; }

section "boot with upstream's main command 'gateway run' and no state: the legacy seed"
check "the container boots" e2e_boot || exit 1
check_match "default was seeded like upstream (migrated_from=legacy-container-cmd)" \
  '"desired_state": "running".*"migrated_from": "legacy-container-cmd"|"migrated_from":"legacy-container-cmd"' cat "$H/gateway_state.json"
wait_for "default's gateway is ready" "$READY_MS" ready default
check "the main command ('hermes gateway run', the front) stays alive" main_cmd_alive
refute "...and never exited (it would stop the container)" grep -q "main command exited" "$CT_DIR/console.log"

section "upstream's commands, as the hermes user"
check_match "hermes --version reaches upstream's CLI" '^Hermes Agent v0\.19\.0 ' xh hermes --version
want=$("$VENV/bin/hermes" no-such-command > /dev/null 2>&1; echo $?)
check_eq "an unknown command gets upstream's own exit status ($want)" "$want" sh -c "'$CT/exec-as-hermes.sh' hermes no-such-command > /dev/null 2>&1; echo \$?"
check "hermes profile create coder" xh hermes profile create coder
check "...coder is registered" registered coder
check_eq "...and down (nobody asked to start it)" down s6of coder
check "hermes -p coder gateway start" xh hermes -p coder gateway start
wait_for "coder is ready" "$READY_MS" ready coder
check_eq "desired_state=running" running jkey coder desired_state
old=$(gwpid coder)
check "hermes -p coder gateway restart --wait" xh hermes -p coder gateway restart --wait --timeout "$READY_MS"
check "coder is ready with a new pid" sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status coder | grep -q ' health=ready ' && [ \"\$('$CT/exec-as-hermes.sh' hermes-s6 pid coder)\" != $old ]"
check "hermes -p coder gateway stop" xh hermes -p coder gateway stop
wait_for "coder is down, desired_state=stopped" 10000 sh -c "[ \"\$('$CT/exec-as-hermes.sh' hermes-s6 status coder | sed -n 's/.* s6=\([a-z]*\) .*/\1/p;')\" = down ] && grep -q '\"desired_state\":\"stopped\"' '$(home coder)/gateway_state.json'"
check_match "hermes gateway status shows both, through hermes-s6" '^profile=coder .* desired_state=stopped' xh hermes gateway status
check "hermes gateway stop --all" xh hermes gateway stop --all
wait_for "...every gateway goes down" 10000 sh -c "[ \"\$('$CT/exec-as-hermes.sh' hermes-s6 status | grep -c ' s6=down ')\" = 2 ]"
check "hermes gateway start --all --wait" xh hermes gateway start --all --wait --timeout "$READY_MS"
check "...every gateway is ready" sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status | grep -c ' health=ready ' | grep -qx 2"
refute "an option neither hermes-s6 nor upstream has is refused, not ignored" xh hermes gateway stop --bogus
check "upstream's own --system and hidden --platform X are accepted, as its s6 path does" \
  xh hermes gateway restart --system --platform telegram --wait --timeout "$READY_MS"
check "...default is ready again" sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status default | grep -q ' health=ready '"
check "hermes profile use coder (upstream's sticky profile)" xh hermes profile use coder
check_eq "hermes gateway status: the sticky profile's gateway alone" "coder" \
  sh -c "'$CT/exec-as-hermes.sh' hermes gateway status | sed -n 's/^profile=\([^ ]*\) .*/\1/p'"
check "hermes profile use default" xh hermes profile use default
check_eq "hermes gateway status: every profile again" "2" \
  sh -c "'$CT/exec-as-hermes.sh' hermes gateway status | grep -c '^profile='"

section "hermes profile delete while its gateway runs: unregistered first, no respawn"
pid=$(gwpid coder)
check "hermes profile delete coder -y" xh hermes profile delete coder -y
check "...coder has no slot any more" sh -c "! '$CT/exec-as-hermes.sh' hermes-s6 list | grep -qx coder"
check "...its home is gone" test ! -e "$(home coder)"
check "...its gateway is gone" sh -c "! '$CT/exec.sh' kill -0 $pid 2>/dev/null"

section "rm -rf of a running profile's home: down within 5 s, at most 1 respawn in 60 s"
profile writer "" '{"desired_state":"running"}'
check "start writer --wait" xh hermes-s6 start writer --wait --timeout "$READY_MS"
rm -rf "$(home writer)" 2> /dev/null   # the gateway writes on meanwhile: SOUL.md is gone all the same
check "writer's SOUL.md is gone" test ! -e "$(home writer)/SOUL.md"
wait_for "writer's slot is down within 5 s" 5000 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status writer | grep -q ' s6=down .* health=deleted '"
pids=" $(gwpid writer 2>/dev/null)"
t0=$(_now_ms)
while [ $(( $(_now_ms) - t0 )) -lt 60000 ]; do
  p=$(gwpid writer 2>/dev/null) && case $pids in *" $p"*) ;; *) pids="$pids $p" ;; esac
  sleep 0.5
done
n=$(wc -w <<< "$pids")
check_eq "no gateway of writer ran in those 60 s" 0 echo "$n"
check_eq "one clear warning in its log" 1 sh -c "grep -c \"profile 'writer'.*gone\" '$H/logs/gateways/writer/current'"
check_match "status says what happened" ' health=deleted ' line writer

section "docker restart: the deleted profile's slot is removed; the seed is not repeated"
check "docker restart" e2e_restart || exit 1
check "writer has no slot" sh -c "! '$CT/exec-as-hermes.sh' hermes-s6 list | grep -qx writer"
wait_for "default is ready again" "$READY_MS" ready default
check_eq "the legacy seed happened once (the state file existed this time)" 1 sh -c "grep -c 'seeded desired_state=running' '$CT_DIR/console.log'"

section "a dashboard container on the same volume reconciles nothing"
A=$CT_DIR
B=/tmp/hermes-e2e.70-dashboard.$$
E2E_EXTRA_CT_DIRS=$B
mkdir -p "$B/home"
chown "$HERMES_UID_CT:$HERMES_UID_CT" "$B/home"
a_default=$(gwpid default)
check "the dashboard container boots" env CT_DIR="$B" CT_NAME=dashboard CT_CMD="/opt/hermes/docker/main-wrapper.sh dashboard" \
  CT_BINDS="$A/home:/opt/data" "$CT/boot.sh"
check "it says so" grep -q "reconcile: skipping (dashboard container" "$B/console.log"
check_eq "it has no slot" "" env CT_DIR="$B" "$CT/exec-as-hermes.sh" hermes-s6 list
check_match "its status says why nothing runs" '^profile=default slot=none .* health=dashboard ' \
  env CT_DIR="$B" "$CT/exec-as-hermes.sh" hermes-s6 status
check_eq "the gateway container's default gateway is untouched" "$a_default" gwpid default
CT_DIR=$B "$CT/rm.sh" > /dev/null 2>&1

section "GATEWAY_MULTIPLEX_PROFILES=1: named profiles registered, never started"
profile multi "" '{"desired_state":"running"}'
e2e_env GATEWAY_MULTIPLEX_PROFILES=1
check "docker restart" e2e_restart || exit 1
wait_for "default is ready" "$READY_MS" ready default
check "multi is registered" registered multi
check_eq "...and down although its intent is running" "down running" sh -c "echo $(s6of multi) $(jkey multi desired_state)"
check_match "status says why" ' health=multiplexed ' line multi
check "the boot said so" grep -q "GATEWAY_MULTIPLEX_PROFILES is set" "$CT_DIR/console.log"
