#!/bin/bash
# demo.sh (`make demo`) — the main job in one minute: boot the test container
# (tests/ct: s6-svscan as PID 1, the hermes user uid 10000 only inside) with
# three profiles whose gateways should run, stop one of them as the hermes
# user, `docker restart` the container, and show that the stopped one stayed
# down while the others came back. The gateways are stand-ins
# (tests/e2e/gateways/gw: a process that runs until signalled), so no real
# hermes is needed. Exits 1 when the outcome is not the expected one; the
# container is removed in every case. Needs root (namespaces, mounts).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CT=$ROOT/tests/ct
export CT_DIR=/tmp/hermes-demo.$$
export S6_KILL_GRACETIME=1000
GW=/usr/local/lib/hermes-test
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
starts() { if [ -f "$1/gw.log" ]; then grep -c '^start ' "$1/gw.log"; else echo 0; fi; }
field() { hx hermes-s6 status "$1" 2>/dev/null | sed -n "2s/.* $2=\([^ ]*\).*/\1/p"; }
cleanup() {
  title "cleanup (docker rm -f -v)"
  "$CT/rm.sh" 2>&1 | sed 's/^/   /'
}
trap cleanup EXIT

title "hermes-s6 demo: an operator's stop survives docker restart, everything else comes back"
say "container: $CT_DIR (s6-svscan is PID 1; user hermes = uid 10000, inside only)"
say "profiles:  default, coder, writer, each with desired_state=running"
say "gateway:   HERMES_GATEWAY_CMD=$GW/gw {profile} (a stand-in that runs until signalled)"

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
echo "HERMES_GATEWAY_CMD=$GW/gw {profile}" > "$CT_DIR/demo.env"
export IMAGE_SRC=$img CT_ENV_FILE=$CT_DIR/demo.env CT_BINDS="$ROOT/tests/e2e/gateways:$GW:ro"
show "docker run -d --env-file demo.env -v volume:/opt/data image   (tests/ct/boot.sh)"
"$CT/boot.sh" 2>&1 | grep -v '^ct: creating' | sed 's/^/   /'
[ -n "$(CT_DIR=$CT_DIR bash -c ". '$CT/lib.sh'; ct_pid1")" ] || { say "the container did not boot"; exit 1; }
for p in default coder writer; do
  poll 10000 hx hermes-s6 pid "$p" || { say "gateway $p did not come up"; ok=0; }
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
  poll 10000 hx hermes-s6 pid "$p" || true
done

title "after the restart"
show "docker exec -u hermes ct hermes-s6 status"
hx hermes-s6 status 2>/dev/null
show "tail -n 3 /opt/data/logs/container-boot.log"
tail -n 3 "$vol/logs/container-boot.log"

title "result"
expect "default is up again: its gateway was started a second time, by the boot" \
  test "$(field default s6) $(starts "$vol")" = "up 2"
expect "coder is up again: its gateway was started a second time, by the boot" \
  test "$(field coder s6) $(starts "$vol/profiles/coder")" = "up 2"
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
