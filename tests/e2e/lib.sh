# tests/e2e/lib.sh — helpers for the end-to-end scenario scripts
# tests/e2e/NN-name.sh. Source it first thing:
#
#   . "$(dirname "$0")/lib.sh"
#
# It picks a container directory (CT_DIR, default /tmp/hermes-e2e.NAME.PID),
# a scratch directory ($E2E_TMP, inside CT_DIR) and an env file ($E2E_ENV_FILE,
# passed to the container as CT_ENV_FILE), and installs an EXIT trap that
# stops the container, checks that nothing of it is left on the host, prints
# `e2e: N passed, M failed` and exits non-zero when a check failed. On success
# CT_DIR is removed; on failure (or with E2E_KEEP=1) it is kept for a look.
#
# Checks (each prints PASS/FAIL with its name; a failure shows the output):
#   check NAME CMD...            CMD succeeds
#   refute NAME CMD...           CMD fails
#   check_eq NAME WANT CMD...    CMD succeeds and prints exactly WANT
#   check_match NAME ERE CMD...  CMD succeeds and its output matches ERE
#   wait_for NAME TIMEOUT_MS CMD...  CMD succeeds within TIMEOUT_MS (polled)
#   pass NAME / fail NAME [WHY]  record a result yourself
# Other helpers:
#   poll TIMEOUT_MS CMD...       quiet wait_for: status 0 iff CMD succeeded in time
#   xh CMD... / xr CMD...        docker exec -u hermes / docker exec (root);
#                                both take exec.sh's options (-w DIR, -e K=V)
#   e2e_env K=V...               add container variables (before boot)
#   e2e_boot / e2e_stop / e2e_restart   the harness' boot.sh, stop.sh, restart.sh
#   e2e_leftovers                host pids still in the container's namespaces
#   e2e_project_image            stage the project (make install) as IMAGE_SRC
#   E2E_EXTRA_CT_DIRS="dir..."   more containers the script boots: the trap removes them
#   section TITLE / note TEXT    transcript
# shellcheck shell=bash
set -u

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CT=$E2E_ROOT/tests/ct
E2E_NAME=$(basename "$0" .sh)
export CT_DIR=${CT_DIR:-/tmp/hermes-e2e.$E2E_NAME.$$}
case $CT_DIR in /tmp/?*) ;; *) echo "e2e: CT_DIR must be under /tmp" >&2; exit 1 ;; esac
export S6_KILL_GRACETIME=${S6_KILL_GRACETIME:-1000}   # stops in ~1 s instead of 3
E2E_TMP=$CT_DIR/e2e
E2E_ENV_FILE=$E2E_TMP/ct.env
export CT_ENV_FILE=$E2E_ENV_FILE
E2E_POLL=${E2E_POLL:-0.05}     # s between two tries of poll/wait_for
E2E_PASSED=0
E2E_FAILED=0
mkdir -p "$E2E_TMP"
[ -e "$E2E_ENV_FILE" ] || echo "HERMES_HOME=/opt/data" > "$E2E_ENV_FILE"

section() { printf '### %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
pass() { E2E_PASSED=$((E2E_PASSED + 1)); printf '  PASS: %s\n' "$1"; }
fail() {
  E2E_FAILED=$((E2E_FAILED + 1))
  printf '  FAIL: %s\n' "$1"
  shift
  if [ $# -gt 0 ]; then printf '%s\n' "$@" | sed 's/^/        /'; fi
}

_now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
_out=$E2E_TMP/last-output

# _run CMD...: run CMD with its stdout in $_out (stderr in $_out.err); its status
_run() { "$@" > "$_out" 2> "$_out.err"; }
_why() {  # what to show under a FAIL line
  echo "command: $*"
  [ -s "$_out" ] && { echo "stdout:"; tail -n 15 "$_out"; }
  [ -s "$_out.err" ] && { echo "stderr:"; tail -n 15 "$_out.err"; }
  return 0
}

check() {
  local name=$1 rc; shift
  _run "$@"; rc=$?
  if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name" "$(_why "$@"; echo "exit status: $rc")"; fi
  return "$rc"
}

refute() {
  local name=$1 rc; shift
  _run "$@"; rc=$?
  if [ "$rc" -ne 0 ]; then pass "$name"; return 0; fi
  fail "$name" "$(_why "$@"; echo "exit status: 0, expected a failure")"
  return 1
}

check_eq() {
  local name=$1 want=$2 rc got; shift 2
  _run "$@"; rc=$?
  got=$(cat "$_out")
  if [ "$rc" -eq 0 ] && [ "$got" = "$want" ]; then pass "$name"; return 0; fi
  fail "$name" "$(_why "$@"; echo "exit status: $rc"; echo "wanted: $want"; echo "got:    $got")"
  return 1
}

check_match() {
  local name=$1 re=$2 rc; shift 2
  _run "$@"; rc=$?
  if [ "$rc" -eq 0 ] && grep -Eq -- "$re" "$_out"; then pass "$name"; return 0; fi
  fail "$name" "$(_why "$@"; echo "exit status: $rc"; echo "wanted a match for: $re")"
  return 1
}

poll() {
  local deadline=$(( $(_now_ms) + $1 )); shift
  until _run "$@"; do
    [ "$(_now_ms)" -lt "$deadline" ] || return 1
    sleep "$E2E_POLL"
  done
}

wait_for() {
  local name=$1 ms=$2 t0; shift 2
  t0=$(_now_ms)
  if poll "$ms" "$@"; then pass "$name ($(( $(_now_ms) - t0 )) ms)"; return 0; fi
  fail "$name" "$(_why "$@"; echo "still failing after $ms ms")"
  return 1
}

xh() { "$CT/exec-as-hermes.sh" "$@"; }
xr() { "$CT/exec.sh" "$@"; }

e2e_env() { printf '%s\n' "$@" >> "$E2E_ENV_FILE"; }
e2e_boot() { "$CT/boot.sh"; }
e2e_stop() { "$CT/stop.sh"; }
e2e_restart() { "$CT/restart.sh"; }
e2e_leftovers() ( . "$CT/lib.sh"; ct_leftovers )
e2e_pid1() ( . "$CT/lib.sh"; ct_pid1 )

# e2e_project_image: IMAGE_SRC = the project as `make install` stages it for
# the test container (or $E2E_IMAGE when the caller staged it already).
e2e_project_image() {
  if [ -n "${E2E_IMAGE:-}" ]; then
    export IMAGE_SRC=$E2E_IMAGE
    return 0
  fi
  export IMAGE_SRC=$E2E_TMP/image
  rm -rf "$IMAGE_SRC"
  make -s -C "$E2E_ROOT" install DESTDIR="$IMAGE_SRC" PREFIX=/usr/local SHEBANGDIR=/command \
    SERVICE_STYLE=services.d >&2
}

# more containers a script boots (each with its own CT_DIR under /tmp): the
# EXIT trap stops and removes them too
E2E_EXTRA_CT_DIRS=

# A trap runs inside the redirections of the command it interrupted (e.g.
# _run's): keep the script's own stdout/stderr to print the summary on.
exec {_E2E_OUT}>&1 {_E2E_ERR}>&2

_e2e_finish() {
  local rc=$? left d
  trap - EXIT INT TERM HUP
  exec 1>&"$_E2E_OUT" 2>&"$_E2E_ERR"
  for d in $E2E_EXTRA_CT_DIRS; do CT_DIR=$d "$CT/rm.sh" > /dev/null 2>&1 || note "could not remove $d"; done
  if [ -n "$(e2e_pid1)" ]; then
    "$CT/stop.sh" > "$E2E_TMP/final-stop.log" 2>&1 || note "stop.sh: $(tail -n 1 "$E2E_TMP/final-stop.log")"
  fi
  left=$(e2e_leftovers)
  if [ -z "$left" ]; then
    pass "cleanup: no process of the container is left on the host"
  else
    fail "cleanup: no process of the container is left on the host" "$(ps -o pid,stat,comm,args -p "${left//$'\n'/,}")"
  fi
  if grep -qF "$CT_DIR" /proc/self/mounts; then
    fail "cleanup: no mount of the container on the host" "$(grep -F "$CT_DIR" /proc/self/mounts)"
  else
    pass "cleanup: no mount of the container on the host"
  fi
  if [ "$rc" -ne 0 ] && [ "$E2E_FAILED" -eq 0 ]; then
    fail "the script ran to its end" "it exited with status $rc (interrupted or aborted)"
  fi
  echo "e2e: $E2E_PASSED passed, $E2E_FAILED failed"
  if [ "$E2E_FAILED" -eq 0 ] && [ "${E2E_KEEP:-0}" != 1 ]; then
    "$CT/rm.sh" > /dev/null 2>&1 || echo "e2e: could not remove $CT_DIR" >&2
  else
    echo "e2e: container directory kept: $CT_DIR (console: $CT_DIR/console.log; remove with CT_DIR=$CT_DIR $CT/rm.sh)"
  fi
  # an explicit status: a bare `exit` in a trap reuses the interrupted one's
  if [ "$E2E_FAILED" -eq 0 ]; then exit 0; fi
  exit 1
}
trap _e2e_finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
