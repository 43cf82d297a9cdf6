#!/bin/bash
# 90-hostile.sh — the boot survives what the hermes user can plant, and the
# nested scanner is sized for the profiles (issue: hardening):
# * a chain of 1100 directories inside /run/hermes/service, then
#   `docker restart`: root never walks it (it moves it aside in one rename),
#   the boot succeeds, every gateway comes up, the hermes user's sweep empties
#   the old tree, the next boot removes it;
# * 520 profiles (past s6-svscan's default of 1000 supervisors, 2 per slot):
#   every slot is supervised, `default` runs, one more `register` works; and
#   with HERMES_S6_MAX_PROFILES below the count, the boot registers `default`
#   and the profiles meant to run first and says which it left out.
# shellcheck disable=SC2016 # single-quoted $... expand inside the container
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/gateways/hermes.sh"

hermes_image || exit 1
RUNNING='{"desired_state":"running"}'
profile default plain "$RUNNING"
profile coder plain "$RUNNING"
up_in() { [ "$(field "$1" s6)" = up ]; }

section "a 1100-deep directory chain planted in the scan directory, then docker restart"
check "the container boots" e2e_boot || exit 1
wait_for "coder is up" 5000 up_in coder
check "the hermes user plants the chain" xh sh -c 'cd /run/hermes/service && mkdir -p "$(printf "d/%.0s" $(seq 1100))" && touch d/d/d/file'
check "...1100 levels deep" xh sh -c 'test -d "/run/hermes/service/$(printf "d/%.0s" $(seq 1100))"'
check "docker restart" e2e_restart
check_eq "no cont-init.d hook failed" "" cat "$CT_DIR/cont-init.failed"
wait_for "default is up again" 5000 up_in default
wait_for "coder is up again" 5000 up_in coder
check_eq "the new scan directory has only the slots" "$(printf 'coder\ndefault')" xh hermes-s6 list
check_match "the old one was moved aside, root's directory of them is not writable by hermes" '^0 755 ' \
  xr stat -c '%u %a %n' /run/hermes/.old
emptied() { [ "$(xr sh -c 'find /run/hermes/.old -mindepth 2 | wc -l')" = 0 ]; }
wait_for "the hermes user's sweep emptied it (no walk by root)" 10000 emptied
check "docker restart again" e2e_restart
wait_for "coder is up" 5000 up_in coder
check_eq "the emptied old directory is gone; only this boot's is there" 1 sh -c "'$CT/exec.sh' sh -c 'ls /run/hermes/.old | wc -l'"

section "520 profiles: past s6-svscan's default limit, every slot is supervised"
e2e_stop > /dev/null 2>&1
for i in $(seq -w 1 520); do
  h=$CT_DIR/home/profiles/p$i
  mkdir -p "$h"
  echo "# soul" > "$h/SOUL.md"
  echo '{"desired_state":"stopped"}' > "$h/gateway_state.json"
done
chown -R "$HERMES_UID_CT:$HERMES_UID_CT" "$CT_DIR/home/profiles"
check "the container boots with 522 profiles" e2e_boot || exit 1
wait_for "default is up" 20000 up_in default
all_supervised() { [ "$(xh hermes-s6 status | grep -c ' s6=unsupervised ')" = 0 ] && [ "$(xh hermes-s6 status | grep -c '^profile=')" = 522 ]; }
wait_for "no profile is unsupervised (522 slots)" 60000 all_supervised
check_match "the scanner was started with room for 1000 profiles" 's6-svscan -[cC] 2008 -- /run/hermes/service' \
  xr sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " < "$f" 2>/dev/null; echo; done'
profile extra plain "$RUNNING"
check "one more register --start works" xh hermes-s6 register extra --start
wait_for "...and its gateway is up" 20000 up_in extra

section "HERMES_S6_MAX_PROFILES below the count: default and the running ones first, the rest said"
e2e_stop > /dev/null 2>&1
e2e_env "HERMES_S6_MAX_PROFILES=100"
echo "$RUNNING" > "$CT_DIR/home/profiles/p520/gateway_state.json"
chown "$HERMES_UID_CT:$HERMES_UID_CT" "$CT_DIR/home/profiles/p520/gateway_state.json"
check "the container boots" e2e_boot || exit 1
check_match "the boot says which profiles it left out" \
  'warning: 523 profiles, but the scanner supervises at most 100 gateways \(HERMES_S6_MAX_PROFILES\): not registered: p0[0-9]+' cat "$CT_DIR/console.log"
check_eq "100 slots" 100 sh -c "'$CT/exec-as-hermes.sh' hermes-s6 list | wc -l"
for p in default coder extra p520; do wait_for "$p (meant to run) is up" 20000 up_in "$p"; done
check_match "a 101st register is refused, naming the setting" 'at most 100 gateways' sh -c "'$CT/exec-as-hermes.sh' hermes-s6 register p300 2>&1; true"
