#!/bin/bash
# 60-real-gateway.sh — the gateway users run: hermes-agent 0.19.0 from PyPI
# (tools/venv.sh installs it; `make test` calls that), supervised for its
# whole life with no stand-in and no HERMES_GATEWAY_CMD: upstream's own
# command lines (`hermes gateway run --replace` for default, `hermes -p P …`
# for the others), readiness from the gateway's own state file, kill -9
# revival, container restarts and kills, a gateway that fails every start,
# one killed every 30 s, and the API server of three profiles on three ports.
#
# The gateway's own respawn-storm breaker (more than 5 starts in 120 s →
# sleep 10…300 s before starting) counts every start, container restarts
# included: the profiles restarted and killed here in quick succession turn it
# off in their config.yaml (upstream's `gateway.respawn_storm.max_starts: 0`),
# the failing one and the one killed every 30 s keep it.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

need_real_gateway
e2e_project_image || exit 1
# upstream's image has its venv on PATH; the container's PATH is the gateways'
export CT_PATH="$VENV/bin:/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
H=$CT_DIR/home
KEY=hermes-s6-e2e-0123456789abcdef0123
READY_MS=${READY_MS:-30000}   # a cold first start imports a lot of Python

# real P [STATE_JSON] [nobreaker] [api]: a profile for the real gateway
real() {
  local p=$1 st=${2:-} h
  profile "$p" "" "$st"
  h=$(home "$p")
  if [ "${3:-}" = nobreaker ]; then
    printf 'gateway:\n  respawn_storm:\n    max_starts: 0\n' > "$h/config.yaml"
  fi
  if [ "${4:-}" = api ]; then
    printf 'API_SERVER_ENABLED=true\nAPI_SERVER_KEY=%s\n' "$KEY" > "$h/.env"
  fi
  chown -R "$HERMES_UID_CT:$HERMES_UID_CT" "$h"
}

line() { xh hermes-s6 status "$1" 2>/dev/null | sed -n 2p; }
# ident P: "PID/START_TIME" of P's gateway, as its state file says (a pid
# alone is reused by the next boot's PID namespace)
ident() { echo "$(jkey "$1" pid)/$(jkey "$1" start_time)"; }
# ready P [NOT_IDENT]: s6 says ready, and the gateway itself wrote
# gateway_state=running with that very pid (and it is not NOT_IDENT)
ready() {
  local l pid
  l=$(line "$1")
  case $l in *" s6=up "*" health=ready "*) ;; *) return 1 ;; esac
  pid=$(sed -n 's/.* pid=\([0-9]*\) .*/\1/p' <<< "$l")
  [ -n "$pid" ] && [ "$(ident "$1")" != "${2:-}" ] &&
    [ "$(jkey "$1" pid)" = "$pid" ] && [ "$(jkey "$1" gateway_state)" = running ]
}
cmdline() { xr sh -c "tr '\\0' ' ' < /proc/$1/cmdline"; }
# kills P N PAUSE: N times, PAUSE s after the last start, kill -9 P's gateway
# and count how often it is running again (its own word, a new process)
# within 10 s; sets $revived
kills() {
  local p=$1 n=$2 pause=$3 i old t0
  revived=0
  for ((i = 1; i <= n; i++)); do
    old=$(ident "$p")
    sleep "$pause"
    xr kill -9 "${old%/*}"
    t0=$(_now_ms)
    if poll 10000 ready "$p" "$old"; then
      revived=$((revived + 1))
      note "kill $i: running again after $(( $(_now_ms) - t0 )) ms"
    else
      note "kill $i: not running after 10 s: $(line "$p")"
    fi
  done
}
listening() { ss -Hltn "sport = :$1" | grep -q .; }
gwstarts() { local f; f=$(home "$1")/gateway-starts.log; if [ -f "$f" ]; then grep -c . "$f"; else echo 0; fi; }

real default '{"desired_state":"running"}' nobreaker api
real coder '{"desired_state":"running"}' nobreaker api
real writer '{"desired_state":"stopped"}' nobreaker api
if listening 8642 || listening 9570 || listening 9543; then
  note "a port of this test (8642, 9570, 9543) is taken on this machine: API checks will fail"
fi

section "boot with mixed intents"
check "the container boots" e2e_boot || exit 1
wait_for "default is ready (its own gateway_state=running, its own pid)" "$READY_MS" ready default
wait_for "coder is ready" "$READY_MS" ready coder
check_eq "writer (stopped) stays down" "down stopped" sh -c "echo $(s6of writer) $(jkey writer desired_state)"
check_match "default runs upstream's command line, without -p (its liveness check rejects it)" \
  '/hermes gateway run --replace $' cmdline "$(gwpid default)"
check_match "coder runs hermes -p coder gateway run --replace" \
  '/hermes -p coder gateway run --replace $' cmdline "$(gwpid coder)"
check "its stdout reaches the log while it runs (PYTHONUNBUFFERED): the startup banner" \
  grep -q "Press Ctrl+C to stop" "$H/logs/gateways/default/current"

section "start --all --wait returns when every gateway is ready"
check "start --all --wait" xh hermes-s6 start --all --wait --timeout "$READY_MS"
p=$(gwpid writer)
check_eq "at that moment writer's state file already says running with its pid" "running $p" \
  sh -c "echo $(jkey writer gateway_state) $(jkey writer pid)"
check_match "s6's ready flag agrees (s6-svwait -U returns at once)" . \
  xh sh -c 's6-svwait -U -t 1000 /run/hermes/service/gateway-writer && echo ok'
for pp in "default 8642" "coder 9570" "writer 9543"; do
  set -- $pp
  wait_for "$1's API server listens on $2" 10000 listening "$2"
  check_match "status shows $1's port as $2" " port=$2\$" line "$1"
done

section "stop and restart"
old=$(gwpid writer)
check "stop writer --wait" xh hermes-s6 stop writer --wait
check_eq "writer: down, desired_state=stopped, operator_stop, exit 0 (the gateway matched our marker)" \
  "down stopped operator_stop exitcode:0" \
  sh -c "echo $(s6of writer) $(jkey writer desired_state) $(jkey writer exit_reason) $(field writer last_exit)"
check "the gateway took the marker: none left" test ! -e "$(home writer)/.gateway-planned-stop.json"
old=$(ident coder)
check "restart coder --wait (from up)" xh hermes-s6 restart coder --wait --timeout "$READY_MS"
check "coder is ready with a new pid right away" ready coder "$old"
check "restart writer --wait (from down)" xh hermes-s6 restart writer --wait --timeout "$READY_MS"
check "writer is ready right away" ready writer

section "10 x kill -9 of a running gateway: back and running within 10 s, each time"
kills coder 10 0
check_eq "revived 10 times out of 10 (no 'PID file race lost')" 10 echo "$revived"
refute "the gateway never lost a race against its own dead pid" \
  grep -q "PID file race lost" "$H/logs/gateways/coder/current"
check_eq "crashes keep the run-intent" running jkey coder desired_state

section "docker stop: an unmarked SIGTERM keeps the run-intent (exit 1: a shutdown; exit 0: a deliberate exit)"
e2e_stop > "$E2E_TMP/stop.log" 2>&1
for p in default coder; do
  # The gateway exits 1 on an unmarked SIGTERM (SPEC §7: a shutdown); one
  # that lands before its startup returned makes it exit 0, which SPEC §3.3
  # parks as a deliberate exit. Either way desired_state keeps it running.
  check_match "$p: desired_state=running, and shutdown (exit 1) or a deliberate exit (exit 0)" \
    '^running (running shutdown|stopped clean_exit)$' \
    sh -c "echo $(jkey "$p" desired_state) $(jkey "$p" gateway_state) $(jkey "$p" exit_reason)"
done

section "10 container restarts"
ok=0
for i in 1 2 3 4 5 6 7 8 9 10; do
  if [ "$i" -gt 1 ]; then e2e_stop > "$E2E_TMP/stop.log" 2>&1; fi
  declare -A before=()
  for p in default coder writer; do before[$p]=$(ident "$p"); done
  e2e_boot > "$E2E_TMP/boot.log" 2>&1 || { note "boot $i failed"; continue; }
  t0=$(_now_ms)
  if poll "$READY_MS" ready default "${before[default]}" && poll "$READY_MS" ready coder "${before[coder]}" &&
     poll "$READY_MS" ready writer "${before[writer]}"; then
    ok=$((ok + 1))
    note "restart $i: all three ready after $(( $(_now_ms) - t0 )) ms"
  else
    note "restart $i: $(xh hermes-s6 status 2>&1 | tr '\n' ' ')"
  fi
done
check_eq "every gateway ran again after each of the 10 restarts" 10 echo "$ok"

section "docker kill (SIGKILL of the whole container), then docker start"
pid1=$(e2e_pid1)
kill -9 "$pid1"
wait_for "the container is gone" 10000 sh -c "[ -z \"\$(. '$CT/lib.sh'; ct_pid1)\" ] && [ -z \"\$(. '$CT/lib.sh'; ct_leftovers)\" ]"
check "gateway.pid of the killed gateway is still on the volume (what used to block every start)" \
  test -e "$H/profiles/coder/gateway.pid"
old=$(ident coder)
check "docker start" e2e_boot || exit 1
wait_for "default is ready again" "$READY_MS" ready default
wait_for "coder is ready again" "$READY_MS" ready coder "$old"
wait_for "writer is ready again" "$READY_MS" ready writer

section "a gateway that fails every start is parked, never shown ready"
real broken '{"desired_state":"running"}'
mkdir "$(home broken)/gateway.lock"   # its runtime lock: IsADirectoryError at every start
chown "$HERMES_UID_CT:$HERMES_UID_CT" "$(home broken)/gateway.lock"
check "start broken" xh hermes-s6 start broken
seen_ready=0 t0=$(_now_ms) parked=0
while [ $(( $(_now_ms) - t0 )) -lt 300000 ]; do
  l=$(line broken)
  case $l in *" health=ready "*|*" s6=up "*"gateway_state=running "*) seen_ready=1 ;; esac
  case $l in *" s6=down "*"gateway_state=startup_failed "*" health=down "*) parked=1; break ;; esac
  sleep 0.2
done
check_eq "parked as startup_failed (crash_loop) within 5 minutes" "1 crash_loop" \
  sh -c "echo $parked $(jkey broken exit_reason)"
note "parked after $(( $(_now_ms) - t0 )) ms"
check_eq "never shown ready or running while it failed" 0 echo "$seen_ready"
check_eq "after exactly 5 starts" 5 gwstarts broken
sleep 2
check_eq "and it stays down" "down 5" sh -c "echo $(s6of broken) $(gwstarts broken)"

section "one gateway killed every 30 s (its respawn-storm breaker on) is never parked"
real flaky '{"desired_state":"running"}'
check "start flaky --wait" xh hermes-s6 start flaky --wait --timeout "$READY_MS"
kills flaky 4 30
check_eq "revived 4 times out of 4, never parked" "4 running" sh -c "echo $revived $(jkey flaky desired_state)"
