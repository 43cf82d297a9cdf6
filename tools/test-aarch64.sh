#!/bin/bash
# tools/test-aarch64.sh (`make test-aarch64`, part of `make test` when
# qemu-user is there): the unit and integration tests of the
# aarch64-unknown-linux-musl build, run under qemu-aarch64-static. The tests
# start real s6 (the host's) and the slots exec the aarch64 hermes-s6, so
# qemu is registered with binfmt_misc — in a binfmt_misc instance of a user
# namespace of our own (tools/userns.sh; Linux ≥ 6.7), never the host's.
# HERMES_S6_TEST_EMULATED=1 tells the tests that peak RSS is qemu's.
set -eu
cd "$(dirname "$0")/.."
QEMU=${QEMU_AARCH64:-/usr/bin/qemu-aarch64-static}
T=aarch64-unknown-linux-musl
[ -x "$QEMU" ] || { echo "test-aarch64: $QEMU missing (apt-get install qemu-user-static; make deps does)" >&2; exit 111; }
cargo test --locked --release --target "$T" --no-run >&2
exec tools/userns.sh sh -c '
  set -e
  # a binfmt_misc of our own needs Linux >= 6.7: on an older kernel, skip
  if ! mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null; then
    echo "test-aarch64: SKIPPED: no binfmt_misc in a user namespace here (Linux >= 6.7 needed)"
    exit 0
  fi
  # ELF64 little-endian, e_machine 0xb7 (AArch64); F: qemu opened now, so it
  # also runs inside the test container roots
  printf "%s" ":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$0:F" \
    > /proc/sys/fs/binfmt_misc/register
  echo "test-aarch64: $(uname -m) host, $(file -b "target/$1/release/hermes-s6" 2>/dev/null | cut -d, -f1-2 || echo aarch64 binary) under $0" >&2
  # qemu-user can leave a forked child stuck before its exec when the guest
  # has other threads (seen in ~1 of 10 runs: Command::spawn never returned;
  # either nothing bounded it, or a test whose bounded wait it outlasted
  # failed). The whole run is bounded (it takes ~3 min), and a failed or
  # stopped run is tried once more: a second failure fails. The same tests
  # have passed natively just before (make test), with no second chance.
  for try in 1 2; do
    rc=0
    HERMES_S6_TEST_EMULATED=1 timeout -k 30 600 \
      cargo test --locked --release --target "$1" --no-fail-fast -- --test-threads=4 || rc=$?
    case $rc in
      0) [ "$try" = 1 ] || echo "test-aarch64: run 2 passed (run 1 did not: see above)" >&2; exit 0 ;;
      124|137) echo "test-aarch64: run $try hung (stopped after 600 s): qemu-user fork deadlock?" >&2 ;;
      *) echo "test-aarch64: run $try failed (exit $rc)" >&2 ;;
    esac
  done
  exit 1' "$QEMU" "$T"
