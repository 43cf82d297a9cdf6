#!/bin/bash
# 00-harness.sh — self-test of the test container (tests/ct) with a tiny image
# made here: a services.d service running sleep (with a finish script), cont-init.d
# hooks (execline and sh) writing into the volume, a cont-finish.d script.
# Each check is named after what it proves.
# shellcheck disable=SC2016,SC2034 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"

# ---------------------------------------------------------------- the image
img=$E2E_TMP/image
mkdir -m 0700 "$img"   # 0700 on purpose: the harness must not copy it onto /
mkdir -p "$img/etc/cont-init.d" "$img/etc/cont-finish.d" "$img/etc/services.d/sleeper"
cat > "$img/etc/cont-init.d/10-volume" <<'EOF'
#!/command/execlineb -P
with-contenv
importas -i home HERMES_HOME
redirfd -a 1 ${home}/cont-init.log
id -u
EOF
cat > "$img/etc/cont-init.d/20-env" <<'EOF'
#!/command/with-contenv sh
set -e
printf 'E2E_DEMO=%s E2E_EMPTY=%s\n' "${E2E_DEMO-unset}" "${E2E_EMPTY-unset}" > "$HERMES_HOME/cont-init-env"
install -d -o hermes -g hermes -m 0755 /run/hermes
EOF
cat > "$img/etc/cont-finish.d/10-note" <<'EOF'
#!/bin/sh
echo "cont-finish ran" >> /opt/data/cont-finish.log
EOF
cat > "$img/etc/services.d/sleeper/run" <<'EOF'
#!/command/with-contenv sh
printf '%s\n' "${E2E_DEMO-unset}" > "$HERMES_HOME/sleeper-env"
exec sleep 100000
EOF
cat > "$img/etc/services.d/sleeper/finish" <<'EOF'
#!/bin/sh
echo "$1 $2" >> /opt/data/sleeper-finish.log
EOF
chmod 0755 "$img"/etc/cont-init.d/* "$img"/etc/cont-finish.d/* "$img"/etc/services.d/sleeper/*
printf '#!/bin/sh\necho tool v1\n' > "$E2E_TMP/tool"
chmod 0755 "$E2E_TMP/tool"
export IMAGE_SRC=$img CT_BINDS="$E2E_TMP/tool:/usr/local/bin/e2e-tool:ro"
e2e_env 'E2E_DEMO=hello world' 'E2E_EMPTY='
home=$CT_DIR/home
host_hostname=$(hostname)

# ---------------------------------------------------------------- boot
section "boot"
check "boot.sh creates and starts the container" e2e_boot || exit 1
check_eq "no cont-init.d hook failed" "" cat "$CT_DIR/cont-init.failed"
check_eq "PID 1 inside is s6-svscan" s6-svscan xr cat /proc/1/comm
check "hermes sees what 'hermes-s6 detect' needs: /proc/1/comm and /run/s6/basedir" \
  xh sh -c 'test "$(cat /proc/1/comm)" = s6-svscan && test -d /run/s6/basedir'
check_eq "PID 1 has PATH as its only variable (the supervision tree's environment)" \
  "PATH=/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  xr sh -c "tr '\\0' '\\n' < /proc/1/environ"
check_eq "the container has its own hostname (UTS namespace)" hermes xr hostname
check_eq "the host's hostname is untouched" "$host_hostname" hostname
refute "the container's mounts do not show on the host" grep -qF "$CT_DIR" /proc/self/mounts
pid1=$(e2e_pid1)
check "the container's PID 1 is in another PID namespace than the host" \
  test "$(readlink "/proc/$pid1/ns/pid")" != "$(readlink /proc/self/ns/pid)"

section "user, /command, image"
check_eq "hermes exists inside as uid 10000, gid 10000" 10000:10000 xh sh -c 'echo "$(id -u):$(id -g)"'
check_eq "exec -u hermes gets HOME from the container's passwd" /home/hermes xh printenv HOME
refute "the host has no user hermes" getent passwd hermes
check "/command has execlineb, execline's and s6's programs, with-contenv, printcontenv" \
  xr sh -c 'for c in execlineb importas redirfd s6-svscan s6-svc s6-svstat s6-setuidgid with-contenv printcontenv; do test -x /command/$c || { echo "missing $c"; exit 1; }; done'
refute "the host has no /command" test -e /command
check_match "PATH inside starts with /command" '^/command:' xh printenv PATH
check_eq "an image directory of mode 0700 leaves the container's / at 0755" 755 xr stat -c %a /
check "the image's files are owned by root inside" \
  xr sh -c 'test "$(stat -c %u /etc/cont-init.d/10-volume /etc/services.d/sleeper/run | sort -u)" = 0'

section "cont-init.d, with-contenv, volume"
check_eq "cont-init.d ran once, as root, and wrote into the volume" 0 cat "$home/cont-init.log"
check_eq "the volume is owned by 10000:10000 on the host" 10000:10000 stat -c %u:%g "$home"
check "hermes can write into the volume" xh touch /opt/data/hermes-was-here
check_eq "cont-init.d hooks resolve the hermes user (install -o hermes)" hermes xr stat -c %U /run/hermes
check_eq "with-contenv gives hooks the container environment; an empty variable is unset there" \
  "E2E_DEMO=hello world E2E_EMPTY=unset" cat "$home/cont-init-env"
wait_for "with-contenv gives a services.d service the container environment" 5000 \
  grep -qx 'hello world' "$home/sleeper-env"
check_eq "docker exec keeps an empty variable (set, empty)" "set:" xr sh -c 'echo "${E2E_EMPTY+set}:$E2E_EMPTY"'
check_eq "printcontenv prints a container variable" "hello world" xh printcontenv E2E_DEMO
refute "printcontenv fails for an empty variable" xh printcontenv E2E_EMPTY

section "services"
check_eq "the services.d service is supervised and up" true xr s6-svstat -o up /run/service/sleeper
check "services.d services are linked from /run/s6/legacy-services, as in s6-overlay" \
  xr sh -c 'test "$(readlink /run/service/sleeper)" = /run/s6/legacy-services/sleeper'
spid=$(xr s6-svstat -o pid /run/service/sleeper)
check_eq "the service's process is sleep" sleep xr cat "/proc/$spid/comm"
check "s6-overlay's own /run/service entries are there (symlinks)" \
  xr sh -c 'for s in s6-linux-init-shutdownd s6rc-fdholder s6rc-oneshot-runner; do test -L /run/service/$s || exit 1; done'
xr sh -c 'set -e; d=/run/service/rt; mkdir $d
  printf "#!/bin/sh\nexec sleep 100000\n" > $d/run
  printf "#!/bin/sh\necho \"\$1 \$2\" >> /opt/data/rt-finish.log\n" > $d/finish
  chmod 0755 $d/run $d/finish; s6-svscanctl -a /run/service'
wait_for "a service registered at run time in /run/service comes up" 5000 \
  xr sh -c 'test "$(s6-svstat -o up /run/service/rt)" = true'

section "exec"
check_eq "exec -w runs the command in that container directory" /opt/data xh -w /opt/data pwd
check_eq "exec -e adds a variable" val xr -e E2E_X=val printenv E2E_X
xr sh -c 'exit 7'
check_eq "exec passes the command's exit status through" 7 echo $?
refute "exec as hermes cannot write root's files" xh touch /etc/e2e-probe
check_eq "exec with a uid that has no passwd entry" 10001 xr -u 10001 id -u
check_eq "CT_BINDS: a host file shows up inside" "tool v1" xr e2e-tool
refute "CT_BINDS: ...read-only with :ro" xr sh -c 'echo x >> /usr/local/bin/e2e-tool'
printf '#!/bin/sh\necho tool v2\n' > "$E2E_TMP/tool"   # rewritten in place: same inode
check_eq "CT_BINDS: a bound file rewritten in place is seen at once" "tool v2" xr e2e-tool

section "a second container beside the first"
other=$CT_DIR.b
E2E_EXTRA_CT_DIRS=$other
check "a second container (own CT_DIR, no image) boots while the first runs" \
  env CT_DIR="$other" IMAGE_SRC= CT_BINDS= CT_ENV_FILE= "$CT/boot.sh"
check_eq "...its PID 1 is s6-svscan" s6-svscan env CT_DIR="$other" "$CT/exec.sh" cat /proc/1/comm
refute "...it does not see the first container's processes" \
  env CT_DIR="$other" "$CT/exec.sh" sh -c "ps -e -o args= | grep -qx 'sleep 100000'"
check "...the first still sees its own" xr sh -c "ps -e -o args= | grep -qx 'sleep 100000'"
check "...rm.sh stops and deletes it" env CT_DIR="$other" "$CT/rm.sh"
refute "...nothing of it is left" test -e "$other"

# ---------------------------------------------------------------- restart
section "docker restart (SHUTDOWN_MODE=overlay, RUN_MODE=layer)"
xh sh -c 'echo kept > /opt/data/e2e-volume-file'
xr sh -c 'echo kept > /tmp/e2e-layer-file; echo kept > /run/e2e-run-file; touch /run/service/e2e-marker'
printf '#!/bin/sh\necho tool v3\n' > "$E2E_TMP/tool.new"
chmod 0755 "$E2E_TMP/tool.new"
mv "$E2E_TMP/tool.new" "$E2E_TMP/tool"    # replaced: a new inode, as cargo does
check_eq "CT_BINDS: a bound file replaced by rename is NOT seen until a restart" "tool v2" xr e2e-tool
check "restart.sh stops and boots the container" e2e_restart
check "the container has a new PID 1" test "$(e2e_pid1)" != "$pid1"
check_eq "...and the replaced bound file is seen now" "tool v3" xr e2e-tool
check_eq "the volume is kept" kept xh cat /opt/data/e2e-volume-file
check_eq "the layer is kept (/tmp)" kept xr cat /tmp/e2e-layer-file
check_eq "/run outside /run/s6 and /run/service is kept (RUN_MODE=layer, like Docker)" kept xr cat /run/e2e-run-file
refute "/run/service is fresh" xr test -e /run/service/e2e-marker
refute "...the service registered at run time is gone" xr test -e /run/service/rt
check_eq "cont-init.d ran again" "0 0" sh -c "echo \$(cat '$home/cont-init.log')"
check_eq "the services.d service was stopped by SIGTERM (finish got 256 15)" "256 15" cat "$home/sleeper-finish.log"
check_eq "the service registered at run time was stopped by SIGTERM too" "256 15" sh -c "sort -u '$home/rt-finish.log'"
check_eq "cont-finish.d ran at the stop" "cont-finish ran" cat "$home/cont-finish.log"
check_match "stage 3 took S6_KILL_GRACETIME from the container environment" \
  "kill grace $S6_KILL_GRACETIME ms" cat "$CT_DIR/console.log"
wait_for "the services.d service is up again" 5000 xr sh -c 'test "$(s6-svstat -o up /run/service/sleeper)" = true'

section "docker restart into SHUTDOWN_MODE=plain, RUN_MODE=tmpfs"
check "restart.sh with other settings" env SHUTDOWN_MODE=plain RUN_MODE=tmpfs "$CT/restart.sh"
check_eq "the old container stopped the way it was booted (overlay: cont-finish.d ran)" \
  "cont-finish ran cont-finish ran" sh -c "echo \$(cat '$home/cont-finish.log')"
check_eq "/run is a tmpfs with RUN_MODE=tmpfs" tmpfs xr stat -f -c %T /run
refute "...so nothing of the old /run is left" xr test -e /run/e2e-run-file
check_eq "the stop sequence is s6-svscan's own with SHUTDOWN_MODE=plain" "" \
  xr find /run/service/.s6-svscan -name SIGTERM
wait_for "the services.d service is up" 5000 xr sh -c 'test "$(s6-svstat -o up /run/service/sleeper)" = true'
: > "$home/sleeper-finish.log"

# ---------------------------------------------------------------- stop
section "docker stop"
pid1=$(e2e_pid1)
check "stop.sh stops the container" e2e_stop
check_eq "plain mode: the service got SIGTERM (finish 256 15)" "256 15" cat "$home/sleeper-finish.log"
check_eq "plain mode: no cont-finish.d (only the two overlay stops ran it)" \
  "cont-finish ran cont-finish ran" sh -c "echo \$(cat '$home/cont-finish.log')"
check "PID 1 is gone" sh -c "! grep -qs . /proc/$pid1/stat || grep -q ') Z' /proc/$pid1/stat"
check_eq "stop leaves no process in the container's namespaces" "" e2e_leftovers
refute "stop leaves no mount of the container on the host" grep -qF "$CT_DIR" /proc/self/mounts
check "stop.sh on a stopped container is a no-op" e2e_stop
