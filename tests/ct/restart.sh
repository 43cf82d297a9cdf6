#!/bin/bash
# restart.sh — `docker restart`: stop.sh, then boot.sh.
# Kept: the layer ($CT_DIR/layer: /etc, /home, /tmp, and /run except /run/s6
# and /run/service unless RUN_MODE=tmpfs) and the volume ($CT_DIR/home).
# New: every process, /run/s6, /run/service. The shutdown follows the
# SHUTDOWN_MODE the running container was booted with; the new boot reads
# the settings afresh.
#
# usage: restart.sh
set -eu -o pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/stop.sh"
exec "$here/boot.sh"
