#!/bin/bash
# boot.sh — `docker run -d` the first time, `docker start` afterwards.
#
# First call ("build" + "create"), written into $CT_DIR/layer/upper only:
#   * /command: symlinks to every s6 and execline program, plus the
#     with-contenv and printcontenv shims (so #!/command/execlineb works),
#   * group and user hermes ($HERMES_UID:$HERMES_GID) in the layer's /etc,
#   * the tree $IMAGE_SRC copied over / (owned by root, as `COPY` does),
#   * empty (opaque) /tmp and /run, and the HERMES_HOME volume $CT_DIR/home
#     owned by $HERMES_UID:$HERMES_GID.
# Every call: new namespaces, overlay root, volume and CT_BINDS, s6-svscan as
# PID 1, then stage 2 (cont-init.d, services.d). Returns once stage 2 is done;
# fails after BOOT_TIMEOUT seconds or when the container dies while booting.
#
# usage: boot.sh          (settings: lib.sh; all come from the environment)
set -eu -o pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

# Runs in a throw-away private mount namespace (see create_layer).
populate_layer() {
  local R=$ROOTFS f
  mount -t overlay overlay -o "lowerdir=/,upperdir=$LAYER/upper,workdir=$LAYER/work" "$R"
  mkdir -p "$R/command"
  for f in /usr/bin/s6-* /usr/bin/s6lockd /usr/bin/ucspilogd /usr/lib/execline/bin/*; do
    if [ -f "$f" ]; then ln -sfn "$f" "$R/command/${f##*/}"; fi
  done
  install -m 0755 "$CT_HOME/ct/with-contenv" "$CT_HOME/ct/printcontenv" "$R/command/"
  if [ -n "$IMAGE_SRC" ]; then
    # tar, not cp -a: directories that already exist (/, /etc, /usr/local/bin)
    # keep their modes, so a mktemp -d image (0700) cannot lock hermes out of /.
    tar -C "$IMAGE_SRC" --owner=0 --group=0 --numeric-owner -cf - . |
      tar -C "$R" --no-overwrite-dir -xpf -
  fi
  mkdir -p "$R$HERMES_HOME_CT"
  chroot "$R" /bin/sh -ec "
    getent group $HERMES_GID >/dev/null || groupadd -g $HERMES_GID $HERMES_USER
    getent passwd $HERMES_UID >/dev/null || useradd -u $HERMES_UID -g $HERMES_GID -m -d /home/$HERMES_USER -s /bin/sh $HERMES_USER"
  umount "$R"
}

if [ "${1:-}" = --populate-layer ]; then populate_layer; exit 0; fi

need_root
need_tools
[ -z "$(ct_pid1)" ] || die "container $CT_DIR already running (PID 1 = host pid $(ct_pid1))"
[ -z "$IMAGE_SRC" ] || [ -d "$IMAGE_SRC" ] || die "IMAGE_SRC=$IMAGE_SRC: not a directory"
[ -z "$CT_ENV_FILE" ] || [ -r "$CT_ENV_FILE" ] || die "CT_ENV_FILE=$CT_ENV_FILE: cannot read"
for b in $CT_BINDS; do
  IFS=: read -r hp cp opt <<< "$b"
  [ -e "$hp" ] && [ "${cp#/}" != "$cp" ] || die "CT_BINDS entry '$b': want HOST:/CT[:ro] with an existing HOST path"
  case ${opt:-} in ''|ro|rw) ;; *) die "CT_BINDS entry '$b': unknown option '$opt'" ;; esac
done
case $RUN_MODE in layer|tmpfs) ;; *) die "RUN_MODE must be layer or tmpfs" ;; esac
case $SHUTDOWN_MODE in overlay|plain) ;; *) die "SHUTDOWN_MODE must be overlay or plain" ;; esac
mkdir -p "$CT_DIR"
rm -f "$PIDFILE" "$UPIDFILE" "$NSFILE" "$STOPFILE"

export CT_HOME CT_DIR CT_NAME HERMES_USER HERMES_UID HERMES_GID HERMES_HOME_CT IMAGE_SRC \
       RUN_MODE SHUTDOWN_MODE FAKE_SYSTEM_SERVICES S6_KEEP_ENV CT_PATH CT_BINDS CT_CMD

create_layer() {
  log "creating the container layer in $LAYER${IMAGE_SRC:+ from $IMAGE_SRC}"
  rm -rf "$LAYER"
  mkdir -p "$LAYER/upper/tmp" "$LAYER/upper/run" "$LAYER/work" "$ROOTFS" "$VOLUME"
  chmod 0755 "$LAYER/upper"
  chmod 1777 "$LAYER/upper/tmp"
  chmod 0755 "$LAYER/upper/run"
  # the container's /tmp and /run start empty instead of showing the host's
  if command -v setfattr >/dev/null 2>&1; then
    setfattr -n trusted.overlay.opaque -v y "$LAYER/upper/tmp" "$LAYER/upper/run"
  else
    python3 -c 'import os, sys
for p in sys.argv[1:]: os.setxattr(p, "trusted.overlay.opaque", b"y")' "$LAYER/upper/tmp" "$LAYER/upper/run" ||
      die "cannot mark /tmp and /run opaque: install attr (setfattr) or python3"
  fi
  unshare --mount --propagation private "$CT_HOME/boot.sh" --populate-layer ||
    die "could not populate the layer"
  # like a fresh named volume; files seeded before the first boot keep their owner
  chown "$HERMES_UID:$HERMES_GID" "$VOLUME"
  : > "$LAYER/.created"
}
[ -e "$LAYER/.created" ] || create_layer

# The container environment: image ENV, then CT_ENV_FILE (`--env-file`), a later
# value replacing an earlier one. A line without '=' or with a bad name is skipped.
write_env() {
  local -A val=()
  local -a order=()
  local line k
  add() { k=${1%%=*}; [ -n "${val[$k]+x}" ] || order+=("$k"); val[$k]=${1#*=}; }
  add "PATH=$CT_PATH"
  add "HOSTNAME=$CT_NAME"
  add "HERMES_HOME=$HERMES_HOME_CT"
  add "S6_KILL_GRACETIME=$S6_KILL_GRACETIME"
  add "S6_SERVICES_GRACETIME=$S6_SERVICES_GRACETIME"
  add "S6_KEEP_ENV=$S6_KEEP_ENV"
  if [ -n "$CT_ENV_FILE" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
      [[ $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && add "$line"
    done < "$CT_ENV_FILE"
  fi
  for k in "${order[@]}"; do printf '%s=%s\n' "$k" "${val[$k]}"; done
}
write_env > "$ENVFILE.tmp"
mv "$ENVFILE.tmp" "$ENVFILE"

HOST_PIDNS=$(readlink /proc/self/ns/pid)
export HOST_PIDNS
echo "=== ct boot $(date -u +%FT%T.%3NZ) run=$RUN_MODE shutdown=$SHUTDOWN_MODE" >> "$CONSOLE"
t0=${EPOCHREALTIME/./}
(
  cd /
  # PID 1 must not inherit the caller's descriptors (a test's $(...) pipe would
  # never see EOF). List them first: a redirection on the loop itself would
  # make bash close its own saved copy of stderr.
  fds=$(ls "/proc/$BASHPID/fd")
  for fd in $fds; do if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi; done
  exec setsid unshare --pid --mount --uts --ipc --fork --kill-child --propagation private \
    "$CT_HOME/stage0.sh"
) < /dev/null >> "$CONSOLE" 2>&1 &
upid=$!

# stage0.sh writes the host pids of PID 1 and of unshare itself
deadline=$(( ${EPOCHREALTIME/./} + BOOT_TIMEOUT * 1000000 ))
until [ -s "$PIDFILE" ]; do
  alive "$upid" || { tail -n 20 "$CONSOLE" >&2; die "container exited during start; see $CONSOLE"; }
  [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || die "container did not start; see $CONSOLE"
  sleep 0.02
done
read -r p < "$PIDFILE"
read -r upid < "$UPIDFILE"
echo "$(stat -L -c %i "/proc/$p/ns/pid") $(stat -L -c %i "/proc/$p/ns/mnt") $(starttime "$upid")" > "$NSFILE"

done_file=/proc/$p/root/run/s6/harness/stage2-done
until [ "$(cat "/proc/$p/comm" 2>/dev/null)" = s6-svscan ] && [ -e "$done_file" ]; do
  alive "$p" || { tail -n 20 "$CONSOLE" >&2; die "container exited during boot; see $CONSOLE"; }
  if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
    tail -n 20 "$CONSOLE" >&2
    die "boot timed out after ${BOOT_TIMEOUT}s (container left running; stop.sh stops it); see $CONSOLE"
  fi
  sleep 0.02
done
failed=$(cat "$done_file")
printf '%s\n' "$failed" > "$CT_DIR/cont-init.failed"
log "container up in $(( (${EPOCHREALTIME/./} - t0) / 1000 )) ms: PID 1 = s6-svscan (host pid $p)${failed:+, FAILED cont-init:$failed}; logs: $CONSOLE"
