#!/bin/bash
# 50-layouts.sh — the compatibility layout (SPEC §4: HERMES_S6_SCANDIR=/run/service,
# upstream's: the slots live in PID 1's scandir and root's s6-supervise runs
# them), then the same volume rebooted into the default nested tree. In the
# root scandir hermes registers, starts, stops, restarts and unregisters
# through the supervise/ files hermes-s6 seeds, uses .s6-svscan/control, and
# the gateway still runs as hermes (run drops privileges). The hazard SPEC §4
# says to document is shown by a test: there, root executes a run script that
# hermes can write; in the nested tree the same edit runs as hermes.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

rc() { "$@" > /dev/null 2>&1; echo $?; }
supervisor_uid() {  # uid of the s6-supervise process of slot $1
  xr sh -c "ps -eo uid=,args= | awk '\$2 == \"s6-supervise\" && \$3 == \"$1\" { print \$1 }'"
}
# hazard SCANDIR: as hermes, replace writer's run script with one that records
# its uid, then start writer; prints that uid
hazard() {
  rm -f "$CT_DIR/home/run-script-uid"
  xh sh -c "printf '#!/bin/sh\nid -u > /opt/data/run-script-uid\nexec sleep 2147483647\n' > $1/gateway-writer/run.new &&
    chmod 0755 $1/gateway-writer/run.new && mv $1/gateway-writer/run.new $1/gateway-writer/run" || return 1
  xh hermes-s6 start writer > /dev/null 2>&1 || return 1
  poll 5000 test -s "$CT_DIR/home/run-script-uid" || return 1
  cat "$CT_DIR/home/run-script-uid"
}

hermes_image
e2e_env HERMES_S6_SCANDIR=/run/service
RUNNING='{"desired_state":"running"}'
profile default plain "$RUNNING"
profile coder mimic "$RUNNING"
profile writer plain
S=/run/service

section "root-scandir layout: boot"
check "the container boots (HERMES_S6_SCANDIR=/run/service)" e2e_boot || exit 1
check_eq "no cont-init.d hook failed" "" cat "$CT_DIR/cont-init.failed"
wait_for "default is up" 5000 xh hermes-s6 pid default
wait_for "coder is up" 5000 xh hermes-s6 pid coder
check_eq "list shows the slots in /run/service, not root's services" "$(printf '%s\n' coder default writer)" hs6 list
check_eq "no nested scanner runs in this layout" "" \
  xr sh -c 'ps -eo args= | grep "s6-svscan .*-- /run/hermes/service$" || true'
check_eq "the scandir is root's, sticky, open to the hermes group" "root hermes 1775" xr stat -c '%U %G %a' $S
check_eq ".s6-svscan/control is a FIFO open to the hermes group" "root hermes 660 fifo" \
  xr stat -c '%U %G %a %F' $S/.s6-svscan/control
check_eq "the slot's supervise/control was seeded for hermes (FIFO, 0660)" "hermes 660 fifo" \
  xr stat -c '%U %a %F' $S/gateway-coder/supervise/control
check_eq "...and event/ (03730)" "hermes 3730" xr stat -c '%U %a' $S/gateway-coder/event
check_eq "root's s6-supervise runs the slot" 0 supervisor_uid gateway-coder
check_eq "the gateway itself runs as hermes (run drops privileges)" "10000 10000 10000 10000" uids "$(gwpid coder)"
check_eq "...and its logger" 10000 \
  xr sh -c 'ps -eo uid=,args= | awk "\$2 ~ /s6-log\$/ && \$NF == \"/opt/data/logs/gateways/coder\" { print \$1 }"'

section "root-scandir layout: hermes operates the gateways"
check_eq "status as hermes" "Manager: s6 (container supervisor)" sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status 2>/dev/null | head -n 1"
check "hermes can use the scanner's control (s6-svscanctl -a)" xh s6-svscanctl -a $S
check "start writer --wait" xh hermes-s6 start writer --wait
check_eq "writer runs as hermes" "10000 10000 10000 10000" uids "$(gwpid writer)"
check "stop writer --wait" xh hermes-s6 stop writer --wait
check_eq "writer is down, desired_state=stopped" "down stopped" sh -c "echo $(s6of writer) $(jkey writer desired_state)"
old=$(gwpid coder)
check "restart coder --wait" xh hermes-s6 restart coder --wait
check "coder is back with a new pid, after a matching marker" \
  sh -c "test \"$(gwpid coder)\" != $old && grep -qx 'term marker=match exit=0 pid=$old' '$(home coder)/gw.log'"
xh sh -c 'mkdir -p /opt/data/profiles/extra && echo soul > /opt/data/profiles/extra/SOUL.md'
check "register extra" xh hermes-s6 register extra
check_eq "extra's slot is hermes-owned with seeded control files" "hermes hermes" \
  xr sh -c "echo \$(stat -c %U $S/gateway-extra $S/gateway-extra/log/supervise/control)"
wait_for "root's s6-svscan picked it up" 5000 xh s6-svok $S/gateway-extra
check "start extra --wait" xh hermes-s6 start extra --wait
check "unregister extra" xh hermes-s6 unregister extra
refute "extra's slot is gone" xr test -e $S/gateway-extra
wait_for "...and its supervisor too" 5000 sh -c "test -z \"\$(CT_DIR=$CT_DIR '$CT/exec.sh' sh -c 'ps -eo args= | grep \"^s6-supervise gateway-extra\"')\""
refute "hermes cannot remove root's services (sticky scandir)" xh rm -f $S/s6rc-fdholder
refute "...nor rename them" xh mv $S/hermes-svscan $S/.x
refute "...nor control them" xh s6-svc -d $S/s6rc-fdholder

section "root-scandir layout: docker restart"
pc=$(starts coder) pd=$(starts default)
check "docker restart" e2e_restart || exit 1
wait_for "default and coder run again" 5000 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 pid default && '$CT/exec-as-hermes.sh' hermes-s6 pid coder"
check_eq "...started once more each" "$((pd + 1)) $((pc + 1))" sh -c "echo $(starts default) $(starts coder)"
check_eq "writer (stopped by the operator) stays down" down s6of writer
check_eq "extra (unregistered, but still a real profile with desired_state=running) is back, up" up s6of extra

section "root-scandir layout: the documented hazard"
check_eq "HAZARD (SPEC §4, by design of this layout): a run script hermes can write is executed by root" 0 hazard $S
xh hermes-s6 stop writer --wait > /dev/null 2>&1

section "the same volume rebooted into the nested layout"
sed -i '/^HERMES_S6_SCANDIR=/d' "$E2E_ENV_FILE"
check "docker restart without HERMES_S6_SCANDIR" e2e_restart || exit 1
wait_for "default and coder run again" 5000 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 pid default && '$CT/exec-as-hermes.sh' hermes-s6 pid coder"
check_eq "the slots are in /run/hermes/service now" "$(printf 'gateway-%s\n' coder default extra writer)" xh ls /run/hermes/service
check_eq "...and no longer in /run/service" "" xr sh -c 'ls /run/service | grep gateway- || true'
check_eq "writer stays down (its stop survived the layout change)" down s6of writer
check_eq "the nested s6-svscan runs as hermes" 10000 \
  xr sh -c 'ps -eo uid=,args= | awk "\$2 ~ /s6-svscan\$/ && \$NF == \"/run/hermes/service\" { print \$1 }"'
check_eq "the slots' supervisors run as hermes" 10000 supervisor_uid gateway-coder
check_eq "the gateway runs as hermes" "10000 10000 10000 10000" uids "$(gwpid coder)"
check_eq "the same edit of a run script runs as hermes here, not root" 10000 hazard /run/hermes/service
