# tests/e2e/gateways/hermes.sh — hermes-s6 helpers for the scenario scripts
# (tests/e2e/NN-*.sh) and tests/demo.sh. Source it after tests/e2e/lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/gateways/hermes.sh"
#
#   need_real_gateway        VENV = hermes-agent 0.19.0's venv, or fail the script
#   hermes_image             IMAGE_SRC = the project as `make install` stages it;
#                            the stand-in gateways of this directory bound
#                            read-only at $GW_DIR; HERMES_GATEWAY_CMD="$GW_DIR/gw {profile}"
#   profile P [BEHAVIOUR [STATE_JSON]]
#                            make P a real profile in the volume (host side; before
#                            or after the boot): SOUL.md, $HOME/behaviour (plain,
#                            mimic, exit78, crashloop, ignoreterm: see gw), the
#                            state file; everything owned by the hermes uid
#   home P                   host path of P's home ($CT_DIR/home[/profiles/P])
#   hs6 ARGS...              hermes-s6 ARGS as the hermes user (docker exec -u hermes)
#   gwpid P                  pid of P's gateway (hermes-s6 pid P), exit 1 when down
#   s6of P                   up | down | finishing | ... (hermes-s6 status P)
#   field P KEY              KEY of P's `status` line (desired_state, last_exit, …)
#   jkey P KEY               KEY of P's gateway_state.json (host side), "" if absent
#   starts P                 how many times P's stand-in gateway started (gw.log)
#   uids PID                 real, effective, saved and fs uid of a container pid
#   snapshot P...            "P=S6/GATEWAY_STATE/STARTS ..." in one status call
# shellcheck shell=bash

GW_DIR=/usr/local/lib/hermes-test

# need_real_gateway: VENV = the real gateway's venv (tools/venv.sh,
# hermes-agent 0.19.0), or the script fails here
need_real_gateway() {
  VENV=${HERMES_VENV:-/opt/hermes-agent-0.19.0}
  if ! "$VENV/bin/hermes" --version 2>/dev/null | grep -q '^Hermes Agent v0\.19\.0 '; then
    fail "the real gateway is installed in $VENV (run tools/venv.sh)"
    exit 1
  fi
}
HERMES_UID_CT=10000

hermes_image() {
  e2e_project_image || return 1
  export CT_BINDS="${CT_BINDS:+$CT_BINDS }$E2E_ROOT/tests/e2e/gateways:$GW_DIR:ro"
  e2e_env "HERMES_GATEWAY_CMD=$GW_DIR/gw {profile}"
}

home() {
  if [ "$1" = default ]; then echo "$CT_DIR/home"; else echo "$CT_DIR/home/profiles/$1"; fi
}

profile() {
  local p=$1 b=${2:-} st=${3:-} h
  h=$(home "$p")
  mkdir -p "$h"
  [ "$p" = default ] || echo "# soul of $p" > "$h/SOUL.md"
  if [ -n "$b" ]; then echo "$b" > "$h/behaviour"; fi
  if [ -n "$st" ]; then printf '%s\n' "$st" > "$h/gateway_state.json"; fi
  chown "$HERMES_UID_CT:$HERMES_UID_CT" "$CT_DIR/home"
  [ "$p" = default ] || chown "$HERMES_UID_CT:$HERMES_UID_CT" "$CT_DIR/home/profiles"
  chown -R "$HERMES_UID_CT:$HERMES_UID_CT" "$h"
}

hs6() { xh hermes-s6 "$@"; }
gwpid() { xh hermes-s6 pid "$1" 2>/dev/null; }
field() { xh hermes-s6 status "$1" 2>/dev/null | sed -n "2s/.* $2=\([^ ]*\).*/\1/p"; }
s6of() { field "$1" s6; }

jkey() {
  local f
  f=$(home "$1")/gateway_state.json
  [ -f "$f" ] || return 0
  sed -nE "s/.*\"$2\":(\"[^\"]*\"|-?[0-9]+).*/\1/p" "$f" | tr -d '"'
}

starts() {
  local f
  f=$(home "$1")/gw.log
  if [ -f "$f" ]; then grep -c '^start ' "$f"; else echo 0; fi
}

uids() { xr awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$1/status"; }

# snapshot P...: one `status` call; for each P "P=S6/GATEWAY_STATE/STARTS"
snapshot() {
  local st p out=
  st=$(xh hermes-s6 status 2>/dev/null) || return 1
  for p in "$@"; do
    out="$out $p=$(sed -n "s/^profile=$p .* s6=\([^ ]*\) .* gateway_state=\([^ ]*\) .*/\1\/\2/p" <<< "$st")/$(starts "$p")"
  done
  echo "${out# }"
}
