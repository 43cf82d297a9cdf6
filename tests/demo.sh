#!/bin/bash
# demo.sh (`make demo`) — the main job in one minute: boot the test container
# (tests/ct: s6-svscan as PID 1, the hermes user uid 10000 only inside) with
# three profiles whose gateways should run, stop one of them as the hermes
# user, `docker restart` the container, and show that the stopped one stayed
# down while the others came back, and kill -9 one to show s6 bring it back.
# The gateway is the real one, hermes-agent 0.19.0 from the venv that
# tools/venv.sh installs (`make demo` runs it); only when that venv cannot be
# had, a stand-in (tests/e2e/gateways/gw: a process that runs until
# signalled), and the demo says so. Exits 1 when the outcome is not the
# expected one; the container is removed in every case. Needs root.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CT=$ROOT/tests/ct
export CT_DIR=/tmp/hermes-demo.$$
export S6_KILL_GRACETIME=1000
GW=/usr/local/lib/hermes-test
VENV=${HERMES_VENV:-/opt/hermes-agent-0.19.0}
REAL=0
if "$VENV/bin/hermes" --version 2>/dev/null | grep -q '^Hermes Agent v0\.19\.0 '; then REAL=1; fi
[ "$(id -u)" = 0 ] || { echo "demo: must be run as root (namespaces, mounts)" >&2; exit 1; }

if [ -t 1 ]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
title() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
hx() { "$CT/exec-as-hermes.sh" "$@"; }
# poll MS CMD...: until CMD succeeds, at most MS milliseconds
poll() {
  local end=$(( ${EPOCHREALTIME/./} / 1000 + $1 )); shift
  until "$@" > /dev/null 2>&1; do
    [ $(( ${EPOCHREALTIME/./} / 1000 )) -lt "$end" ] || return 1
    sleep 0.05
  done
}
ok=1
expect() {  # expect WHAT CMD...: note a failed expectation
  local what=$1; shift
  if "$@" > /dev/null 2>&1; then say "ok: $what"; else say "NOT OK: $what"; ok=0; fi
}
# how many times the gateway of the home $1 started: the real one keeps a
# ledger of its starts, the stand-in a log
starts() {
  local f=$1/gw.log
  [ "$REAL" = 0 ] || f=$1/gateway-starts.log
  if [ -f "$f" ]; then grep -c . "$f"; else echo 0; fi
}
ready() { hx hermes-s6 status "$1" 2>/dev/null | grep -q ' health=ready '; }
field() { hx hermes-s6 status "$1" 2>/dev/null | sed -n "2s/.* $2=\([^ ]*\).*/\1/p"; }
cleanup() {
  title "cleanup (docker rm -f -v)"
  "$CT/rm.sh" 2>&1 | sed 's/^/   /'
}
trap cleanup EXIT

title "hermes-s6 demo: an operator's stop survives docker restart, everything else comes back"
say "container: $CT_DIR (s6-svscan is PID 1; user hermes = uid 10000, inside only)"
say "profiles:  default, coder, writer, each with desired_state=running"
if [ "$REAL" = 1 ]; then
  say "gateway:   the real one, hermes-agent 0.19.0 ($VENV), upstream's command lines"
else
  say "gateway:   NOT the real one: $VENV/bin/hermes is missing (tools/venv.sh could not"
  say "           install hermes-agent 0.19.0), so HERMES_GATEWAY_CMD=$GW/gw {profile},"
  say "           a stand-in that runs until signalled"
fi

title "build the image (make install SERVICE_STYLE=services.d) and docker run"
img=$CT_DIR/image
mkdir -p "$CT_DIR"
make -s -C "$ROOT" install DESTDIR="$img" PREFIX=/usr/local SHEBANGDIR=/command SERVICE_STYLE=services.d > /dev/null 2>&1 ||
  { say "make install failed"; exit 1; }
vol=$CT_DIR/home
for p in coder writer; do mkdir -p "$vol/profiles/$p" && echo "# $p" > "$vol/profiles/$p/SOUL.md"; done
for h in "$vol" "$vol/profiles/coder" "$vol/profiles/writer"; do
  echo '{"desired_state":"running"}' > "$h/gateway_state.json"
done
chown -R 10000:10000 "$vol"
if [ "$REAL" = 1 ]; then
  : > "$CT_DIR/demo.env"
  export CT_PATH="$VENV/bin:/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  echo "HERMES_GATEWAY_CMD=$GW/gw {profile}" > "$CT_DIR/demo.env"
  export CT_BINDS="$ROOT/tests/e2e/gateways:$GW:ro"
fi
export IMAGE_SRC=$img CT_ENV_FILE=$CT_DIR/demo.env
show "docker run -d --env-file demo.env -v volume:/opt/data image   (tests/ct/boot.sh)"
"$CT/boot.sh" 2>&1 | grep -v '^ct: creating' | sed 's/^/   /'
[ -n "$(CT_DIR=$CT_DIR bash -c ". '$CT/lib.sh'; ct_pid1")" ] || { say "the container did not boot"; exit 1; }
for p in default coder writer; do
  poll 30000 ready "$p" || { say "gateway $p did not get ready"; ok=0; }
done

title "the gateways, as the hermes user"
show "docker exec -u hermes ct hermes-s6 status"
hx hermes-s6 status 2>/dev/null

title "the operator stops writer"
show "docker exec -u hermes ct hermes-s6 stop writer --wait"
if hx hermes-s6 stop writer --wait; then say "(exit 0)"; else say "(failed)"; ok=0; fi
show "docker exec -u hermes ct hermes-s6 status writer"
hx hermes-s6 status writer 2>/dev/null | tail -n 1

title "docker restart"
show "docker restart ct   (tests/ct/restart.sh: SIGTERM to PID 1, s6-overlay's shutdown, boot)"
"$CT/restart.sh" 2>&1 | sed 's/^/   /'
for p in default coder; do
  poll 30000 ready "$p" || true
done

title "after the restart"
show "docker exec -u hermes ct hermes-s6 status"
hx hermes-s6 status 2>/dev/null
show "tail -n 3 /opt/data/logs/container-boot.log"
tail -n 3 "$vol/logs/container-boot.log"

title "a crash: kill -9 of coder's gateway (as root), s6 brings it back"
old=$(hx hermes-s6 pid coder 2>/dev/null)
show "docker exec ct kill -9 $old"
"$CT/exec.sh" kill -9 "$old"
t0=${EPOCHREALTIME/./}
if poll 10000 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 status coder | grep -q ' health=ready ' && ! '$CT/exec-as-hermes.sh' hermes-s6 pid coder | grep -qx '$old'"; then
  say "ready again after $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms"
fi
show "docker exec -u hermes ct hermes-s6 status coder"
hx hermes-s6 status coder 2>/dev/null | tail -n 1

title "result"
expect "default is ready again: its gateway was started a second time, by the boot" \
  test "$(field default health) $(starts "$vol")" = "ready 2"
expect "coder is up again after the kill -9: started a third time, by s6" \
  test "$(field coder health) $(starts "$vol/profiles/coder")" = "ready 3"
expect "the shutdown kept their intent: desired_state=running" \
  test "$(field default desired_state) $(field coder desired_state)" = "running running"
expect "writer stayed down, desired_state=stopped, not started again" \
  test "$(field writer s6) $(field writer desired_state) $(starts "$vol/profiles/writer")" = "down stopped 1"
expect "the boot registered writer without starting it" \
  grep -q 'profile=writer prior_state=stopped action=registered' "$vol/logs/container-boot.log"
if [ "$ok" = 1 ]; then
  say "DEMO OK"
  exit 0
fi
say "DEMO FAILED (console log: $CT_DIR/console.log, removed at cleanup)"
exit 1
