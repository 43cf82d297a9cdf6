#!/bin/bash
# stage0.sh — the container runtime's part (what runc does). Started by boot.sh
# as PID 1 of the new PID namespace, in the new (private) mount namespace,
# still seeing the host's filesystem. It mounts the container's root, pivots
# into it and execs the container's init (/.ct/stage1), which execs s6-svscan:
# so /proc/1/comm reads "s6-svscan" inside. The host sees none of these mounts.
set -eu -o pipefail
if [ "${CT_TRACE:-0}" = 1 ]; then set -x; fi   # trace into console.log
. "$CT_HOME/lib.sh"

# Refuse to go on in the host's PID namespace: stage3 sends kill -1.
[ "$(readlink /proc/self/ns/pid)" != "$HOST_PIDNS" ] || die "stage0: not in a new PID namespace"
CT_PIDNS=$(readlink /proc/self/ns/pid)

# Tell boot.sh our host pid and unshare's. /proc is still the host's procfs;
# read it with a builtin, for /proc/self of a child would be the child.
hostpid='' ppid=''
while read -r k v _; do
  case $k in NSpid:) hostpid=$v ;; PPid:) ppid=$v ;; esac
done < /proc/self/status
echo "$ppid" > "$UPIDFILE"
echo "$hostpid" > "$PIDFILE.tmp"
mv "$PIDFILE.tmp" "$PIDFILE"

mapfile -t envv < "$ENVFILE"   # host paths are gone after pivot_root
R=$ROOTFS
mkdir -p "$R"

# 1. the root: the host's / (lower, read-only) under the persistent layer.
#    The upper dir lies inside the lower one; overlayfs accepts that and makes
#    $CT_DIR unreachable from inside (ELOOP), which is what we want anyway.
mount -t overlay overlay -o "lowerdir=/,upperdir=$LAYER/upper,workdir=$LAYER/work" "$R"

# 2. kernel filesystems: procfs of the NEW pid namespace, the host's /dev and
#    /sys, a private /dev/shm
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$R/dev/shm"
mount --rbind /sys "$R/sys"

# 3. volumes: HERMES_HOME, then CT_BINDS ("host:ct[:ro]"). A file is bound
#    onto a file, a directory onto a directory.
mkdir -p "$R$HERMES_HOME_CT"
mount --bind "$VOLUME" "$R$HERMES_HOME_CT"
for b in $CT_BINDS; do
  IFS=: read -r hp cp opt <<< "$b"
  [ -n "$hp" ] && [ -n "$cp" ] && [ -e "$hp" ] || die "CT_BINDS entry '$b': need host:ct[:ro] with an existing host path"
  case ${opt:-} in ''|ro|rw) ;; *) die "CT_BINDS entry '$b': unknown option '$opt'" ;; esac
  if [ -d "$hp" ]; then
    mkdir -p "$R$cp"
  else
    mkdir -p "$(dirname "$R$cp")"
    [ -e "$R$cp" ] || : > "$R$cp"
  fi
  mount --bind "$hp" "$R$cp"
  if [ "${opt:-}" = ro ]; then mount -o remount,bind,ro "$R$cp"; fi
done

# 4. the container-side scripts of the harness, read-only
mkdir -p "$R/.ct"
mount --bind "$CT_HOME/ct" "$R/.ct"
mount -o remount,bind,ro "$R/.ct"

hostname "$CT_NAME"

# 5. pivot into the overlay and drop the host's root
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot

# 6. the container's init, with exactly the container environment (plus the
#    harness' own settings, which stage1 keeps out of the container)
keys=
for kv in "${envv[@]}"; do keys="$keys ${kv%%=*}"; done
exec /usr/bin/env -i "${envv[@]}" \
  CT_ENV_KEYS="$keys" CT_RUN_MODE="$RUN_MODE" CT_SHUTDOWN_MODE="$SHUTDOWN_MODE" \
  CT_FAKE_SYSTEM_SERVICES="$FAKE_SYSTEM_SERVICES" CT_PIDNS="$CT_PIDNS" CT_CMD="$CT_CMD" \
  /.ct/stage1
