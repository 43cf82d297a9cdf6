#!/bin/sh
# The test image's /opt/hermes/docker/main-wrapper.sh: upstream's container
# main command, reduced to what the drop-in tests need. `dashboard` stands
# for upstream's dashboard (a web server; here it only idles), anything else
# goes to `hermes` (with hermes-s6 installed: its front, first on PATH).
case ${1:-} in
  dashboard) exec sleep 2147483647 ;;
esac
exec hermes "$@"
