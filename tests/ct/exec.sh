#!/bin/bash
# exec.sh — `docker exec [-u USER] [-w DIR] [-e K=V]... CONTAINER CMD...`
# Joins the container's PID, mount, UTS and IPC namespaces with PID 1's root
# (nsenter -r; nsenter --wd=DIR would open DIR on the host side, so the
# directory is changed afterwards with env -C). nsenter forks, so CMD really
# runs inside the PID namespace (as a child of pid 0). CMD starts from the
# container environment (what docker exec gives, NOT the with-contenv view of
# the supervision tree), plus HOME of USER; then setpriv drops to USER, whose
# name is resolved in the container's /etc/passwd. USER may be a name, a uid,
# or uid:gid (a uid without a passwd entry gets no supplementary groups).
# CMD's exit status is exec.sh's.
#
# usage: exec.sh [-u USER] [-w DIR] [-e K=V]... [--] CMD [ARG...]
set -eu -o pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need_root

user=root dir=/
extra=()
while [ $# -gt 0 ]; do
  case $1 in
    -u) [ $# -ge 2 ] || die "exec.sh: -u needs a user"; user=$2; shift 2 ;;
    -w) [ $# -ge 2 ] || die "exec.sh: -w needs a directory"; dir=$2; shift 2 ;;
    -e) [ $# -ge 2 ] || die "exec.sh: -e needs K=V"; extra+=("$2"); shift 2 ;;
    --) shift; break ;;
    -*) die "exec.sh: unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || die "usage: exec.sh [-u USER] [-w DIR] [-e K=V]... [--] CMD [ARG...]"
p=$(ct_pid1)
[ -n "$p" ] || die "container $CT_DIR is not running"
mapfile -t envv < "$ENVFILE"
enter=(nsenter -t "$p" -p -m -u -i -r -w --)

if [ "$user" = root ] || [ "$user" = 0 ] || [ "$user" = 0:0 ]; then
  exec "${enter[@]}" /usr/bin/env -i -C "$dir" "${envv[@]}" HOME=/root "${extra[@]}" "$@"
fi

name=${user%%:*} group=
case $user in *:*) group=${user#*:} ;; esac
pw=$(nsenter -t "$p" -m -r -- getent passwd "$name" || true)
if [ -n "$pw" ]; then
  IFS=: read -r pname _ uid gid _ home _ <<< "$pw"
  ids=(--reuid="$uid" --regid="${group:-$gid}" --init-groups)
  envu=(HOME="$home" USER="$pname" LOGNAME="$pname")
else
  case $name in ''|*[!0-9]*) die "exec.sh: no user '$name' in the container" ;; esac
  ids=(--reuid="$name" --regid="${group:-$name}" --clear-groups)
  envu=(HOME=/)
fi
exec "${enter[@]}" /usr/bin/env -i -C "$dir" "${envv[@]}" "${envu[@]}" "${extra[@]}" \
  setpriv "${ids[@]}" -- "$@"
