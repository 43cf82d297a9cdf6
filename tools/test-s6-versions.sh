#!/bin/bash
# tools/test-s6-versions.sh (`make test-s6-versions`, part of `make test`):
# the live s6 tests on every s6 that s6-overlay 3.x ships, besides the
# machine's own (Debian bookworm: 2.11): trixie's 2.13 (43-byte
# supervise/status) and sid's 2.15, each in a mount namespace where that
# version is /usr (tools/s6-versions.sh). Per version: the status decoder
# against that s6-svstat, control through its supervisors, the finish table,
# readiness, and the container's boot/restart scenarios.
#   S6_SUITES="trixie sid"   which Debian suites
set -u
cd "$(dirname "$0")/.."
suites=${S6_SUITES:-trixie sid}
tests=(--test svstat_live --test supervision --test finish_table --test readiness --test compat)
cargo test --locked "${tests[@]}" --no-run >&2 || exit 1
bad=0
for s in $suites; do
  root=$(tools/s6-versions.sh fetch "$s") || { bad=1; continue; }
  v=$(cat "${root%/root}/s6-version")
  echo "=== s6 $v, execline $(cat "${root%/root}/execline-version") (Debian $s)"
  tools/s6-versions.sh run "$s" sh -c '
    root=$1; shift
    cmp -s /usr/bin/s6-supervise "$root/usr/bin/s6-supervise" ||
      { echo "test-s6-versions: /usr/bin/s6-supervise is not $root'"'"'s" >&2; exit 1; }
    cargo test --locked "$@" -- --test-threads=4 || exit 1
    # the container sees them too (its root is the machine'"'"'s / without the
    # mounts on it; the image only adds /usr/local)
    lib=/usr/lib/x86_64-linux-gnu
    CT_BINDS="/usr/bin:/usr/bin:ro /usr/lib/execline:/usr/lib/execline:ro $lib:$lib:ro" \
      E2E_ONLY="^(10|30)-" bash tests/e2e/run-all.sh' - "$root" "${tests[@]}" || bad=1
done
[ "$bad" = 0 ] && echo "test-s6-versions: ok ($suites)"
exit "$bad"
