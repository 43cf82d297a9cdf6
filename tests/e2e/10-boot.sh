#!/bin/bash
# 10-boot.sh — boot reconciliation in a real container (SPEC §5, §3.4, §4):
# a fresh volume registers gateway-default and every real profile, down; bad
# profile directories are skipped with a warning (or silently, without
# SOUL.md); the boot log has one line per profile; `reconcile --dry-run`
# changes nothing. Then a restart with state seeded on the volume: intents
# resolved, stale gateway.pid/processes.json swept (gateway.lock kept),
# prior_state/prior_exit right, a deleted profile's slot gone.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

hermes_image
H=$CT_DIR/home
TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{4}'

# ------------------------------------------------------------ a fresh volume
# real: default (no files at all), coder, writer, gone. Not real: BadName
# (invalid name), profiles/default (the root profile's name), nosoul (no
# SOUL.md), linked (a symlink to a directory with SOUL.md), notes.txt (a file).
profile coder
profile writer
profile gone
mkdir -p "$H/profiles/BadName" "$H/profiles/default" "$H/profiles/nosoul" "$H/elsewhere"
echo soul > "$H/profiles/BadName/SOUL.md"
echo soul > "$H/profiles/default/SOUL.md"
echo soul > "$H/elsewhere/SOUL.md"
ln -s ../elsewhere "$H/profiles/linked"
echo notes > "$H/profiles/notes.txt"
chown -R 10000:10000 "$H"

section "first boot on a fresh volume"
check "the container boots" e2e_boot || exit 1
check_eq "no cont-init.d hook failed" "" cat "$CT_DIR/cont-init.failed"
check_eq "gateway-default and every real profile have a slot (list is sorted)" \
  "$(printf '%s\n' coder default gone writer)" hs6 list
for p in default coder gone writer; do
  check_eq "gateway-$p is registered and down" down s6of "$p"
  check "gateway-$p has its down file (no autostart without a running intent)" \
    xh test -e "/run/hermes/service/gateway-$p/down"
done
check_eq "no gateway was started" "0 0 0 0" sh -c "echo $(starts default) $(starts coder) $(starts gone) $(starts writer)"
refute "reconcile wrote no state file for a profile without one" test -e "$H/gateway_state.json"
check_eq "the scandir is hermes-owned, 0755" "hermes 755" xr stat -c '%U %a' /run/hermes/service
check_eq "...under a root-owned parent only root can write" "root 755" xr stat -c '%U %a' /run/hermes

section "bad profile directories"
check "BadName (invalid name, with SOUL.md) is skipped with a warning" \
  grep -qF "hermes-s6: warning: skipping /opt/data/profiles/BadName: invalid profile name 'BadName'" "$CT_DIR/console.log"
check "profiles/default is skipped with a warning (default is \$HERMES_HOME)" \
  grep -qF "hermes-s6: warning: skipping /opt/data/profiles/default: 'default' is the root profile" "$CT_DIR/console.log"
check "a symlinked profile directory is skipped with a warning (not followed)" \
  grep -qF "hermes-s6: warning: skipping /opt/data/profiles/linked: a symbolic link" "$CT_DIR/console.log"
refute "a directory without SOUL.md is skipped silently" grep -q nosoul "$CT_DIR/console.log"
refute "a plain file in profiles/ is skipped silently" grep -q notes.txt "$CT_DIR/console.log"
refute "none of them got a slot" xr sh -c 'ls -a /run/hermes/service | grep -Ei "badname|linked|nosoul|notes"'
check_eq "reconcile printed one line per real profile, default first" \
  "reconcile: profile=default prior_state=None action=registered
reconcile: profile=coder prior_state=None action=registered
reconcile: profile=gone prior_state=None action=registered
reconcile: profile=writer prior_state=None action=registered" grep '^reconcile:' "$CT_DIR/console.log"

section "the boot log"
log=$H/logs/container-boot.log
check_eq "one line per profile, prior_state=None, registered, prior_exit=unknown" \
  "profile=default prior_state=None action=registered prior_exit=unknown
profile=coder prior_state=None action=registered prior_exit=unknown
profile=gone prior_state=None action=registered prior_exit=unknown
profile=writer prior_state=None action=registered prior_exit=unknown" cut -d' ' -f2- "$log"
check_match "the lines share one %Y-%m-%dT%H:%M:%S%z timestamp" "^$TS\$" sh -c "cut -d' ' -f1 '$log' | sort -u"
check_eq "the log and logs/ belong to hermes" "hermes hermes" xr sh -c 'echo $(stat -c %U /opt/data/logs /opt/data/logs/container-boot.log)'

section "reconcile --dry-run as hermes"
xh hermes-s6 reconcile --dry-run > "$E2E_TMP/dry.out" 2> "$E2E_TMP/dry.err"
check_eq "--dry-run prints the same lines as the boot did" "$(grep '^reconcile:' "$CT_DIR/console.log")" cat "$E2E_TMP/dry.out"
check "...and the same warnings" grep -q "skipping /opt/data/profiles/BadName" "$E2E_TMP/dry.err"
check_eq "...and changes nothing: no boot-log line added" 4 sh -c "wc -l < '$log'"
check_eq "...no slot added or removed" "$(printf '%s\n' coder default gone writer)" hs6 list

# ------------------------------------------------------------ second boot
# intents: default desired running; coder desired stopped (gateway_state
# running: desired wins); writer only gateway_state=draining (counts as
# running); zeta new, no state; gone deleted. Stale runtime files of the
# previous container, lifecycle sentinels for prior_exit.
for p in default coder; do
  for f in gateway.pid processes.json gateway.lock; do echo 4242 > "$(home "$p")/$f"; done
done
mkdir -p "$H/state" "$H/profiles/coder/state"
echo '{"phase":"running","pid":4242}' > "$H/state/gateway.lifecycle.json"
echo '{"phase":"exited","exit_code":0}' > "$H/profiles/coder/state/gateway.lifecycle.json"
echo '{"desired_state":"running","platforms":{"discord":"on"}}' > "$H/gateway_state.json"
echo '{"desired_state":"stopped","gateway_state":"running"}' > "$H/profiles/coder/gateway_state.json"
echo '{"gateway_state":"draining"}' > "$H/profiles/writer/gateway_state.json"
profile zeta
rm -rf "$H/profiles/gone"
chown -R 10000:10000 "$H"

section "second boot: intents from the volume, stale files"
check "docker restart" e2e_restart || exit 1
wait_for "default (desired_state=running) is up" 5000 xh hermes-s6 pid default
wait_for "writer (gateway_state=draining, no desired_state) is up" 5000 xh hermes-s6 pid writer
check_eq "coder (desired_state=stopped overrides gateway_state=running) is down" down s6of coder
check_eq "zeta (a new profile, no state) is registered and down" down s6of zeta
check_eq "the deleted profile's slot did not come back" "$(printf '%s\n' coder default writer zeta)" hs6 list
refute "...nor its directory in the scandir" xr test -e /run/hermes/service/gateway-gone
for p in default coder; do
  refute "stale gateway.pid of $p swept" test -e "$(home "$p")/gateway.pid"
  refute "stale processes.json of $p swept" test -e "$(home "$p")/processes.json"
  check_eq "gateway.lock of $p kept" 4242 cat "$(home "$p")/gateway.lock"
done
check_eq "boot log: a second block, prior_state and prior_exit per profile (lifecycle phase running=unclean, exited=clean, none=unknown)" \
  "profile=default prior_state=running action=started prior_exit=unclean
profile=coder prior_state=stopped action=registered prior_exit=clean
profile=writer prior_state=running action=started prior_exit=unknown
profile=zeta prior_state=None action=registered prior_exit=unknown" sh -c "tail -n 4 '$log' | cut -d' ' -f2-"
check_eq "the first block is still there (appended, not rewritten)" 8 sh -c "wc -l < '$log'"
check_match "the second block shares one timestamp" "^$TS\$" sh -c "tail -n 4 '$log' | cut -d' ' -f1 | sort -u"
check_eq "run recorded the intent of writer (desired_state was absent)" running jkey writer desired_state
check_eq "coder's stopped intent is untouched" stopped jkey coder desired_state
check_eq "keys hermes-s6 does not own are kept (default's platforms)" 1 \
  grep -c '"platforms":{"discord":"on"}' "$H/gateway_state.json"
check_eq "the gateways started once each (default, writer)" "1 1" sh -c "echo $(starts default) $(starts writer)"
