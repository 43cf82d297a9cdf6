#!/bin/bash
# 20-operate.sh — the operator's commands as the hermes user (docker exec -u
# hermes) in the default layout, the nested tree (SPEC §2, §4): detect,
# status, list, pid, start, stop, restart, --all, register, unregister; the
# privileges: hermes cannot touch root's scandir, the nested s6-svscan and
# every gateway run as hermes, nothing of it as root.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

rc() { "$@" > /dev/null 2>&1; echo $?; }
said() { "$@" 2>&1; true; }   # stdout+stderr of a command that may fail
gwlog() { cat "$(home "$1")/gw.log"; }

hermes_image
profile default
profile coder mimic '{"desired_state":"running"}'
profile writer plain '{"desired_state":"running"}'
profile stubborn ignoreterm

section "boot"
check "the container boots" e2e_boot || exit 1
wait_for "coder (mimic, desired running) is up" 5000 xh hermes-s6 pid coder
wait_for "writer (plain, desired running) is up" 5000 xh hermes-s6 pid writer

section "detect, status, list, pid, port as hermes"
check_eq "detect prints s6 as uid 10000" s6 hs6 detect
first_line() { "$@" 2>/dev/null | head -n 1; }
names() { "$@" 2>/dev/null | sed -n 's/^profile=\([^ ]*\) .*/\1/p' | paste -sd' '; }
check_eq "status: the first line is the manager" "Manager: s6 (container supervisor)" first_line xh hermes-s6 status
check_eq "status: one line per profile, default first, then by name" "default coder stubborn writer" \
  names xh hermes-s6 status
check_match "status: a running gateway's line (registered, up, pid, intent, port)" \
  "^profile=coder slot=registered s6=up pid=[0-9]+ seconds=[0-9]+ desired_state=running gateway_state=running .* port=9570$" \
  xh hermes-s6 status coder
check_match "status --json: one document with the manager and the profiles" \
  '^\{"manager":"s6",.*"profiles":\[\{"profile":"default",.*"profile":"coder","registered":true,"s6":"up","up":true,"pid":[0-9]+' \
  xh hermes-s6 status --json
check_eq "list: the profiles with a slot, sorted" "$(printf '%s\n' coder default stubborn writer)" hs6 list
check_eq "port: coder's is 9570" 9570 hs6 port coder
check_eq "pid of a down gateway exits 1" 1 rc xh hermes-s6 pid default
check_eq "an invalid profile name is bad usage (100)" 100 rc xh hermes-s6 start Coder
check_eq "an unknown profile is refused (1)" 1 rc xh hermes-s6 stop nosuch
check_match "...saying so" "no such gateway 'nosuch'" said xh hermes-s6 stop nosuch

section "privileges"
cpid=$(gwpid coder) wpid=$(gwpid writer)
check_eq "the coder gateway runs as hermes (real, effective, saved, fs uid)" "10000 10000 10000 10000" uids "$cpid"
check_eq "the writer gateway runs as hermes" "10000 10000 10000 10000" uids "$wpid"
check_eq "the nested s6-svscan runs as hermes" 10000 \
  xr sh -c 'ps -eo uid=,args= | awk "\$2 ~ /s6-svscan\$/ && \$NF == \"/run/hermes/service\" { print \$1 }"'
check_eq "every s6-supervise of a gateway slot runs as hermes" 10000 \
  xr sh -c 'ps -eo uid=,args= | awk "\$2 == \"s6-supervise\" && \$3 ~ /^gateway-/ { print \$1 }" | sort -u'
# root's processes: PID 1, the root tree's supervisors and the placeholder
# services of s6-overlay (sleep infinity), and this very ps.
check_eq "no process of the gateways' tree runs as root" "" \
  xr sh -c 'ps -eo uid=,args= | awk "\$1 == 0" | sed "s/^ *0 //" |
    grep -Ev "^(s6-svscan /run/service|s6-supervise (s6rc-oneshot-runner|s6-linux-init-shutdownd|s6rc-fdholder|hermes-svscan)|sleep infinity|ps -eo uid=,args=|sh -c ps -eo .*|awk .*|sed .*|grep .*)\$" || true'
check_match "the gateway got the supervised environment (uid, port, HERMES_S6_SUPERVISED_CHILD)" \
  "^start pid=$cpid profile=coder behaviour=mimic uid=10000 port=9570 supervised=1$" gwlog coder
refute "hermes cannot create anything in root's /run/service" xh mkdir /run/service/gateway-evil
refute "hermes cannot control root's services (hermes-svscan)" xh s6-svc -d /run/service/hermes-svscan
refute "hermes cannot tell PID 1 to rescan" xh s6-svscanctl -a /run/service
check "hermes owns its own scanner's control" xh s6-svscanctl -a /run/hermes/service

section "stop, start, restart one gateway"
check "stop coder --wait (mimic gateway)" xh hermes-s6 stop coder --wait
check_eq "coder is down" down s6of coder
check_eq "coder: desired_state=stopped" stopped jkey coder desired_state
check_eq "coder: gateway_state=stopped, exit_reason=operator_stop" "stopped operator_stop" \
  sh -c "echo $(jkey coder gateway_state) $(jkey coder exit_reason)"
check "the gateway saw a marker for its own pid and exited 0" grep -qx "term marker=match exit=0 pid=$cpid" "$(home coder)/gw.log"
refute "no marker is left in coder's home" test -e "$(home coder)/.gateway-planned-stop.json"
refute "...nor in the slot" xr test -e /run/hermes/service/gateway-coder/data/.gateway-planned-stop.json
check "start coder --wait" xh hermes-s6 start coder --wait
check "coder is up with a new pid" test "$(gwpid coder)" != "$cpid"
check_eq "coder: desired_state=running" running jkey coder desired_state
cpid=$(gwpid coder)
check "restart coder --wait (mimic: consumes the restart marker, exits 0)" xh hermes-s6 restart coder --wait
check "coder is back with a new pid" test "$(gwpid coder)" != "$cpid"
check "...after a matching marker" grep -qx "term marker=match exit=0 pid=$cpid" "$(home coder)/gw.log"
check "restart writer --wait (plain)" xh hermes-s6 restart writer --wait
check "writer is back with a new pid" test "$(gwpid writer)" != "$wpid"
check "stop writer --wait" xh hermes-s6 stop writer --wait
check "restart of a stopped gateway brings it up" xh hermes-s6 restart writer --wait
check_eq "writer: desired_state=running" running jkey writer desired_state

section "--all"
check "start stubborn --wait (ignores SIGTERM)" xh hermes-s6 start stubborn --wait
check "stop --all --wait (stubborn needs timeout-kill's SIGKILL)" xh hermes-s6 stop --all --wait --timeout 10000
for p in default coder stubborn writer; do
  check_eq "$p is down, desired_state=stopped" "down stopped" sh -c "echo $(s6of $p) $(jkey $p desired_state)"
done
check_eq "stubborn was SIGKILLed by s6 after its timeout-kill" signal:SIGKILL field stubborn last_exit
check "start --all --wait" xh hermes-s6 start --all --wait
for p in default coder stubborn writer; do
  check_eq "$p is up, desired_state=running" "up running" sh -c "echo $(s6of $p) $(jkey $p desired_state)"
done
before=$(for p in default coder stubborn writer; do gwpid $p; done)
check "restart --all --wait" xh hermes-s6 restart --all --wait --timeout 10000
after=$(for p in default coder stubborn writer; do gwpid $p; done)
check_eq "every gateway has a new pid (stubborn too: restart arms timeout-kill)" "" echo "$(printf '%s\n' $before $after | sort | uniq -d)"

section "register, unregister, a profile created after the boot"
xh sh -c 'mkdir -p /opt/data/profiles/fresh /opt/data/profiles/later && echo soul > /opt/data/profiles/fresh/SOUL.md && echo soul > /opt/data/profiles/later/SOUL.md'
check "register fresh" xh hermes-s6 register fresh
check_eq "fresh is listed and down" "down" s6of fresh
check_eq "register again is refused (1)" 1 rc xh hermes-s6 register fresh
check_match "...as already registered" "already registered" said xh hermes-s6 register fresh
check "start fresh --wait" xh hermes-s6 start fresh --wait
check "unregister fresh" xh hermes-s6 unregister fresh
refute "fresh is no longer listed" sh -c "xh hermes-s6 list | grep -qx fresh"
wait_for "...and its supervisor is gone" 5000 \
  xr sh -c '! ps -eo args= | grep -q "^s6-supervise gateway-fresh"'
refute "...and no gateway of it runs" xr sh -c 'ps -eo args= | grep -q "[g]w fresh"'
check "its profile files are untouched (SOUL.md, desired_state)" \
  sh -c "test -f '$(home fresh)/SOUL.md' && grep -q '\"desired_state\":\"running\"' '$(home fresh)/gateway_state.json'"
check_eq "unregister of an unregistered profile is a no-op (0)" 0 rc xh hermes-s6 unregister fresh
check_match "start of a real profile without a slot registers it first" \
  "registered the s6 gateway slot for profile 'later'" said xh hermes-s6 start later --wait
check "later is up" xh hermes-s6 pid later
