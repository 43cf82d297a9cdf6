# tests/ct/lib.sh — settings and helpers of the test container, sourced by the
# other scripts of tests/ct.
#
# The container is an unshare(1) of new PID, mount, UTS and IPC namespaces.
# Its root is an overlayfs whose lower layer is the host's / and whose upper
# layer ($CT_DIR/layer/upper) plays Docker's writable container layer. PID 1 is
# s6-svscan on /run/service, as under s6-overlay v3. Everything the container
# needs (/command, the hermes user, /etc/services.d, ...) lives in the layer:
# nothing is created on the host outside $CT_DIR.
#
# Every setting below may be overridden from the environment.
# shellcheck shell=bash disable=SC2034

CT_HOME=${CT_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}

CT_DIR=${CT_DIR:-/tmp/hermes-ct}              # all the state of one container
CT_NAME=${CT_NAME:-hermes}                    # hostname inside (private UTS namespace)
HERMES_USER=${HERMES_USER:-hermes}            # created inside the layer only
HERMES_UID=${HERMES_UID:-10000}
HERMES_GID=${HERMES_GID:-10000}
HERMES_HOME_CT=${HERMES_HOME_CT:-/opt/data}   # where the volume $CT_DIR/home appears inside
IMAGE_SRC=${IMAGE_SRC:-}                      # tree copied into the layer at create time ("docker build")
RUN_MODE=${RUN_MODE:-layer}                   # layer: /run lives in the layer and survives restarts (Docker's
                                              #        default); tmpfs: a fresh tmpfs on /run at every boot
SHUTDOWN_MODE=${SHUTDOWN_MODE:-overlay}       # overlay: s6-overlay-like stage 3 on SIGTERM; plain: s6-svscan's own
S6_KILL_GRACETIME=${S6_KILL_GRACETIME:-3000}          # ms, s6-overlay's default
S6_SERVICES_GRACETIME=${S6_SERVICES_GRACETIME:-3000}  # ms, s6-overlay's default
S6_KEEP_ENV=${S6_KEEP_ENV:-0}                 # 1: the supervision tree inherits the container environment
FAKE_SYSTEM_SERVICES=${FAKE_SYSTEM_SERVICES:-1}  # 1: s6-overlay's own /run/service entries, as placeholders
STOP_TIMEOUT=${STOP_TIMEOUT:-10}              # s, like `docker stop -t`
BOOT_TIMEOUT=${BOOT_TIMEOUT:-30}              # s, how long boot.sh waits for stage 2
CT_PATH=${CT_PATH:-/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
CT_ENV_FILE=${CT_ENV_FILE:-}                  # KEY=VALUE lines, like `docker run --env-file`
CT_BINDS=${CT_BINDS:-}                        # "host:ct[:ro] ...", like `docker run -v`
CT_CMD=${CT_CMD:-}                            # the main command (`docker run IMAGE CMD…`), split on spaces

LAYER=$CT_DIR/layer           # upper/ and work/ of the overlay
ROOTFS=$CT_DIR/rootfs         # the overlay's mount point (mounted only inside the container)
VOLUME=${CT_VOLUME:-$CT_DIR/home}  # host side of the HERMES_HOME volume (CT_VOLUME: share another container's)
CONSOLE=$CT_DIR/console.log   # PID 1's stdout and stderr (`docker logs`)
PIDFILE=$CT_DIR/pid1          # host pid of the container's PID 1
UPIDFILE=$CT_DIR/unshare.pid  # host pid of unshare(1), PID 1's parent
NSFILE=$CT_DIR/ns             # "pidns-inode mntns-inode boot-ticks" of the last boot
STOPFILE=$CT_DIR/stop-ticks   # when the last stop began (clock ticks since the host booted)
ENVFILE=$CT_DIR/env           # the container environment, KEY=VALUE lines

# mount(8) would otherwise create /run/mount/utab on the host before pivot_root.
export LIBMOUNT_UTAB=$CT_DIR/utab

die() { echo "ct: fatal: $*" >&2; exit 1; }
log() { echo "ct: $*" >&2; }

need_root() { [ "$(id -u)" = 0 ] || die "must be run as root"; }

need_tools() {
  local t missing=
  for t in unshare nsenter setpriv mount pivot_root tar s6-svscan s6-svscanctl s6-svc s6-svstat s6-svwait s6-envdir; do
    command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
  done
  [ -x /usr/lib/execline/bin/execlineb ] || missing="$missing execlineb"
  [ -z "$missing" ] || die "missing:$missing (apt-get install s6 execline util-linux)"
}

# alive PID: the process exists and is not a zombie. kill -0 is true for
# zombies, and unshare(1) lingers as one (already without namespaces or
# mounts) until the host's init reaps it.
alive() {
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  case $st in ''|Z|X) return 1 ;; esac
}

# field 22 of /proc/PID/stat (start time in clock ticks); comm may hold spaces
starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $s
  echo "${20}"
}

now_ticks() {
  local up
  read -r up _ < /proc/uptime
  echo $(( ${up%.*} * 100 + 10#${up#*.} ))   # CLK_TCK is 100 on Linux
}

# host pid of the container's PID 1, or nothing when it is not running
ct_pid1() {
  local p u ns
  [ -s "$PIDFILE" ] && [ -s "$UPIDFILE" ] || return 0
  read -r p < "$PIDFILE"; read -r u < "$UPIDFILE"
  alive "$u" && alive "$p" || return 0
  # guard against pid reuse: p must still be pid 1 of a child namespace
  ns=$(sed -n 's/^NSpid:[[:space:]]*//p' "/proc/$p/status" 2>/dev/null)
  [ "${ns##*[[:space:]]}" = 1 ] && [ "$ns" != 1 ] || return 0
  echo "$p"
}

ct_running() { [ -n "$(ct_pid1)" ]; }

# Host pids still inside the container's namespaces (pid or mount): what a
# stop must leave empty. Zombies are ignored (they hold no namespace and no
# mount). The kernel reuses a freed namespace's inode number for the next new
# namespace, perhaps another container's: only processes started after the
# boot and before the stop began count.
ct_leftovers() {
  local pidns mntns t0 t1 path ino pid kind st
  [ -s "$NSFILE" ] || return 0
  read -r pidns mntns t0 < "$NSFILE"
  if [ -s "$STOPFILE" ] && [ -z "$(ct_pid1)" ]; then read -r t1 < "$STOPFILE"; else t1=$(( $(now_ticks) + 1 )); fi
  { stat -L -c '%n %i' /proc/[0-9]*/ns/pid /proc/[0-9]*/ns/mnt 2>/dev/null || true; } |
  while read -r path ino; do
    kind=${path##*/}
    if [ "$kind" = pid ]; then [ "$ino" = "$pidns" ] || continue; else [ "$ino" = "$mntns" ] || continue; fi
    pid=${path#/proc/}; pid=${pid%%/*}
    alive "$pid" || continue
    st=$(starttime "$pid") || continue
    if [ "$st" -ge "$t0" ] && [ "$st" -lt "$t1" ]; then echo "$pid"; fi
  done | sort -un
}
