#!/bin/sh
# Install the real gateway for the tests: hermes-agent (pinned, from PyPI, with
# its `messaging` extra as users run it: Telegram, Discord, the API server)
# into a venv made with Debian's /usr/bin/python3, outside the repository and
# readable and executable by every uid (the test container's hermes, 10000).
# Cached: a venv that already answers `hermes --version` with the pinned
# version is kept. Prints nothing on success but what it installs.
#
# usage: tools/venv.sh            (HERMES_VENV, HERMES_AGENT_VERSION from the environment)
# exit: 0 ready, 111 could not install (no python3-venv, no network, ...)
set -eu
ver=${HERMES_AGENT_VERSION:-0.19.0}
venv=${HERMES_VENV:-/opt/hermes-agent-$ver}
py=/usr/bin/python3
answers() {  # the venv's hermes says it is the pinned version
  case $("$venv/bin/hermes" --version 2>/dev/null || true) in
    *"Hermes Agent v$ver "*) return 0 ;;
  esac
  return 1
}
if [ -f "$venv/.hermes-s6-complete" ] && answers; then
  exit 0
fi
[ -x "$py" ] || { echo "venv: $py not found (apt-get install python3)" >&2; exit 111; }
if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "venv: apt-get install -y python3-venv" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >/dev/null 2>&1 || {
      apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >/dev/null; } ||
      { echo "venv: cannot install python3-venv" >&2; exit 111; }
  else
    echo "venv: missing python3-venv; run: sudo apt-get install -y python3-venv" >&2; exit 111
  fi
fi
echo "venv: installing hermes-agent[messaging]==$ver into $venv" >&2
# Built in place (a venv names its interpreter by absolute path); the stamp,
# written last, is what marks it complete.
umask 022
rm -rf "$venv"
if ! { "$py" -m venv "$venv" &&
       "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input \
         "hermes-agent[messaging]==$ver" >&2; }; then
  rm -rf "$venv"
  echo "venv: pip install hermes-agent[messaging]==$ver failed" >&2
  exit 111
fi
chmod -R a+rX "$venv"
answers ||
  { echo "venv: $venv/bin/hermes does not answer v$ver" >&2; exit 111; }
: > "$venv/.hermes-s6-complete"
