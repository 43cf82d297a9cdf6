#!/bin/bash
# rm.sh — `docker rm -f -v`: stop the container if it runs, then delete all of
# $CT_DIR (layer, volume, logs). Deletes only under /tmp.
#
# usage: rm.sh
set -eu -o pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need_root
real=$(readlink -m "$CT_DIR")
case $real in /tmp/?*) ;; *) die "refusing to delete $CT_DIR (not under /tmp)" ;; esac
"$CT_HOME/stop.sh" || die "the container did not stop cleanly; $CT_DIR kept"
rm -rf -- "$real"
log "removed $CT_DIR"
