#!/bin/bash
# exec-as-hermes.sh — `docker exec -u hermes CONTAINER CMD...`:
# exec.sh -u $HERMES_USER (uid 10000, groups from the container's /etc/group,
# HOME from its /etc/passwd).
#
# usage: exec-as-hermes.sh [-w DIR] [-e K=V]... [--] CMD [ARG...]
exec "$(cd "$(dirname "$0")" && pwd)/exec.sh" -u "${HERMES_USER:-hermes}" "$@"
