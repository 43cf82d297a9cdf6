#!/usr/bin/env bash
# tests/stress.sh — the robustness suite with its long counts (`make stress`).
#
# The same tests as `cargo test` runs (tests/robust_*.rs), built in release and with
# HERMES_S6_STRESS=1: 1,000 kill -9 rounds per crash test, 5 rounds of 2 × 500 concurrent
# updates, ~3.5 million hostile parser inputs. HERMES_S6_SEED=N replays a run (each test
# prints the seed it used). Needs root for the namespace/uid parts (they skip otherwise).
# Afterwards it checks that nothing was left behind: scratch directories, mounts, processes.
set -euo pipefail
cd "$(dirname "$0")/.."

export HERMES_S6_STRESS=1
tests=(robust_crash robust_concurrency robust_faults robust_fuzz robust_security)
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done

start=$(date +%s)
cargo test --release --locked "${args[@]}" -- --test-threads=2 --nocapture 2>&1 |
  grep -E '^(test |crash/|fuzz |concurrency|unlocked|caught|huge|weird|test result)|panicked|HANG' || true
status=${PIPESTATUS[0]}
end=$(date +%s)

left=0
if compgen -G "${TMPDIR:-/tmp}/hermes-s6-robust-*" >/dev/null; then
  echo "stress: scratch directories left behind:" >&2
  ls -d "${TMPDIR:-/tmp}"/hermes-s6-robust-* >&2
  left=1
fi
if grep -q 'hermes-s6-robust-' /proc/self/mountinfo; then
  echo "stress: mounts left behind:" >&2
  grep 'hermes-s6-robust-' /proc/self/mountinfo >&2
  left=1
fi
# the suite's processes: its gateways (`sleep 86399.4711`, see robust_util::SLEEPER) and
# anything running on its scratch dirs
if pgrep -f 'hermes-s6-robust-|^sleep 86399\.4711$' >/dev/null; then
  echo "stress: processes left behind:" >&2
  pgrep -af 'hermes-s6-robust-|^sleep 86399\.4711$' >&2
  left=1
fi

echo "stress: cargo test exit $status, $((end - start)) s"
[ "$status" -eq 0 ] && [ "$left" -eq 0 ]
