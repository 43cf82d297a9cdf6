#!/bin/bash
# bench/run.sh — `make bench`. Measures hermes-s6 against the tools it stands
# in for, on the same machine in the same run, and reports ratios (absolute
# times depend on the machine; docs/PERFORMANCE.md has one run's figures).
#
#   1. binary size (`make` and `make small`), `file`, `cargo tree`;
#      peak RSS of every command
#   2. `pid P` / `status P` vs `s6-svstat -o up,pid` on one live service
#   3. `status` / `list` vs a shell loop of s6-svstat, 10/100/1000 live slots
#   4. `reconcile` of 10/100/1000 profiles on a fresh tmpfs scandir, vs one
#      python3 start and vs `cp -a` of the tree it writes
#   5. test-container boot until all N autostart gateways are up (tests/ct)
#   6. strace: syscall counts of `finish` and `pid`; `pid`/`status`/`stop`
#      spawn no process
#   7. the real gateway (hermes-agent, tools/venv.sh): start → up → ready,
#      kill -9 → ready again
#   8. failover: two test containers on one volume, docker kill of the
#      holder 20 times, stand-in and real gateway: standby → gateway started
#      → ready
#
# Public tools only: hyperfine, GNU time, strace, s6, python3 (one baseline).
# Runs as root (a tmpfs is mounted under /tmp; the test container needs it).
# Everything lives in one directory under /tmp, removed at exit; every
# process started here is stopped (s6-svscanctl -t, bounded waits, then the
# leftovers by pid).
#
# Output: $BENCH_OUT/results.md (the tables of docs/PERFORMANCE.md) and
# $BENCH_OUT/raw/ (hyperfine CSVs and logs, strace outputs).
#
# Settings (environment):
#   BENCH_OUT         results directory (default target/bench)
#   BENCH_SLOTS       slot/profile counts of items 3 and 4 (default "10 100 1000")
#   BENCH_CT_N        gateway counts of item 5 (default "10 100"; 0 is always added)
#   BENCH_SKIP        items to skip, e.g. "3 5"
#   CT_HARNESS        directory of the test-container scripts (default tests/ct)
#   BENCH_UPDATE_DOC  1: also replace the generated part of docs/PERFORMANCE.md
set -eu -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=x86_64-unknown-linux-musl
# The binary every item measures: the default build (stable toolchain).
BIN_DEFAULT=$ROOT/target/$TARGET/release/hermes-s6
# `make small`, sized in item 1 only.
BIN_SMALL=$ROOT/target/small/$TARGET/release/hermes-s6
OUT=${BENCH_OUT:-$ROOT/target/bench}
RAW=$OUT/raw
SLOTS=${BENCH_SLOTS:-10 100 1000}
CT_NS=${BENCH_CT_N:-10 100}
SKIP=" ${BENCH_SKIP:-} "
CT=${CT_HARNESS:-$ROOT/tests/ct}
PY=/usr/bin/python3
VENV=${HERMES_VENV:-/opt/hermes-agent-0.19.0}   # the real gateway (tools/venv.sh)
[ -x "$PY" ] || PY=$(command -v python3 || true)

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: fatal: %s\n' "$*" >&2; exit 111; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
skipped() { [[ $SKIP == *" $1 "* ]]; }

# ---------------------------------------------------------------- tools
[ "$(id -u)" = 0 ] || die "run as root (tmpfs mount, s6 services as 0:0, test container)"
need=""
command -v hyperfine >/dev/null || need="$need hyperfine"
command -v strace >/dev/null || need="$need strace"
[ -x /usr/bin/time ] || need="$need time"
command -v file >/dev/null || need="$need file"
if [ -n "$need" ]; then
  say "apt-get install -y$need"
  DEBIAN_FRONTEND=noninteractive apt-get install -y $need >/dev/null 2>&1 || {
    apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y $need >/dev/null; }
fi
for t in s6-svscan s6-svscanctl s6-svstat execlineb; do
  command -v $t >/dev/null || die "$t missing (make deps)"
done
[ -x "$BIN_DEFAULT" ] || die "$BIN_DEFAULT missing (make build)"

# ---------------------------------------------------------------- workspace
W=$(mktemp -d /tmp/hermes-bench.XXXXXX)
TMPFS=no
if mount -t tmpfs -o size=1g,mode=0755 hermes-bench "$W" 2>/dev/null; then TMPFS=yes; fi
rm -rf "$RAW" "$OUT/results.md"
mkdir -p "$RAW" "$W/bin"
# A copy: the slot scripts name this path, and a rebuild during the run must
# not change the binary under the services.
cp "$BIN_DEFAULT" "$W/bin/hermes-s6"
HS=$W/bin/hermes-s6
SCANNERS=()     # "pid:scandir" of every s6-svscan started here
CT_BOOTED=""    # CT_DIR of a test container that may be running

alive() {
  local st
  st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
  case $st in '' | Z | X) return 1 ;; esac
}

# Host pids whose working directory is under $W: only processes started here
# (s6-supervise runs in its service directory, s6-log and gateways in $W too).
leftovers() {
  find /proc/[0-9]*/cwd -maxdepth 0 -lname "$W/*" 2>/dev/null | cut -d/ -f3 || true
}

start_scanner() { # SCANDIR
  (cd / && exec setsid s6-svscan -c 4000 "$1" < /dev/null >> "$RAW/svscan.log" 2>&1) &
  SCANNERS+=("$!:$1")
}

# Stop the scanner of SCANDIR (s6-svscanctl -t: every supervisor takes its
# service down and exits); bounded waits; STOP_MS = the milliseconds it took.
# Not in a subshell: it must reap the scanner and update SCANNERS.
stop_scanner() { # SCANDIR
  local i e pid scan t0 deadline keep=()
  t0=$(now_ms)
  for i in "${!SCANNERS[@]}"; do
    e=${SCANNERS[$i]}
    pid=${e%%:*} scan=${e#*:}
    if [ "$scan" != "$1" ]; then keep+=("$e"); continue; fi
    s6-svscanctl -t "$scan" 2> /dev/null || kill -TERM "$pid" 2> /dev/null || true
    deadline=$(($(now_ms) + 30000))
    while alive "$pid"; do
      if [ "$(now_ms)" -ge "$deadline" ]; then kill -KILL "$pid" 2> /dev/null || true; break; fi
      sleep 0.02
    done
    wait "$pid" 2> /dev/null || true
  done
  SCANNERS=(${keep[@]+"${keep[@]}"})
  # supervisors exit after their service is down: wait for them too
  deadline=$(($(now_ms) + 10000))
  while [ -n "$(find /proc/[0-9]*/cwd -maxdepth 0 -lname "$1/*" 2> /dev/null)" ]; do
    [ "$(now_ms)" -lt "$deadline" ] || break
    sleep 0.02
  done
  STOP_MS=$(($(now_ms) - t0))
}

cleanup() {
  local rc=$? e p left
  set +e
  trap - EXIT INT TERM
  for e in ${SCANNERS[@]+"${SCANNERS[@]}"}; do stop_scanner "${e#*:}"; done
  for e in $CT_BOOTED; do CT_DIR=$e "$CT/rm.sh" >> "$RAW/ct.log" 2>&1; done
  left=$(leftovers)
  if [ -n "$left" ]; then
    say "stopping leftover processes:" $left
    for p in $left; do kill -TERM "$p" 2> /dev/null; done
    sleep 1
    for p in $(leftovers); do kill -KILL "$p" 2> /dev/null; done
  fi
  if [ "$TMPFS" = yes ]; then umount "$W" 2> /dev/null || umount -l "$W"; fi
  rm -rf "$W"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stage_image: STAGE = the project as `make install` stages it for the test
# container (items 5 and 7), made once per run.
stage_image() {
  STAGE=$W/stage
  [ -d "$STAGE" ] && return 0
  make -C "$ROOT" --no-print-directory install DESTDIR="$STAGE" PREFIX=/usr/local SHEBANGDIR=/command \
    SERVICE_STYLE=services.d > "$RAW/install.log" 2>&1 || { tail -20 "$RAW/install.log" >&2; die "make install failed"; }
}

# wait_for TIMEOUT_MS CMD...: poll CMD until it succeeds; status 1 on timeout.
wait_for() {
  local deadline=$(($(now_ms) + $1))
  shift
  until "$@" > /dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}

# hf NAME HYPERFINE-ARGS...: hyperfine without a shell, CSV into raw/NAME.csv.
hf() {
  local name=$1
  shift
  hyperfine -N --style basic --export-csv "$RAW/$name.csv" "$@" > "$RAW/$name.txt" 2>&1 ||
    { cat "$RAW/$name.txt" >&2; die "hyperfine $name failed"; }
}
# stat NAME COMMAND-NAME COLUMN: mean|stddev|user|system of one command, in ms.
stat_ms() {
  local c
  case $3 in mean) c=2 ;; stddev) c=3 ;; median) c=4 ;; user) c=5 ;; system) c=6 ;; min) c=7 ;; *) c=8 ;; esac
  awk -F, -v n="$2" -v c=$c 'NR > 1 && $1 == n { printf "%.3f", $c * 1000 }' "$RAW/$1.csv"
}
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b > 0) printf f, a / b; else printf "n/a" }'; }
ms() { awk -v a="$1" 'BEGIN { if (a >= 100) printf "%.0f ms", a; else if (a >= 10) printf "%.1f ms", a; else printf "%.2f ms", a }'; }
msv() { case $1 in - | timeout) echo "$1" ;; *) echo "$1 ms" ;; esac; }
pm() { printf '%s ± %s' "$(ms "$1")" "$(ms "$2")"; }

# rss CMD...: peak resident set size (KiB, /usr/bin/time -v), the highest of 3 runs.
rss() {
  local best=0 k i
  for i in 1 2 3; do
    /usr/bin/time -v -o "$W/time.out" "$@" > /dev/null 2>&1 || true
    k=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$W/time.out")
    [ "${k:-0}" -gt "$best" ] && best=$k
  done
  echo "$best"
}

sec() { echo "$OUT/sec$1.md"; }

strace_c() { # NAME CMD...: strace -c -f; prints "calls errors distinct top"
  local n=$1
  shift
  strace -f -c -o "$RAW/strace-c-$n.txt" "$@" > /dev/null 2>&1 || true
  awk '
    /^-+/ { d++; next }
    d == 1 && NF >= 5 { name[++k] = $NF; calls[k] = $4 }
    $NF == "total" { tot = $4; err = (NF == 6 ? $5 : 0) }
    END {
      # top entries by count
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (calls[j] > calls[i]) {
        t = calls[i]; calls[i] = calls[j]; calls[j] = t; t = name[i]; name[i] = name[j]; name[j] = t }
      s = ""; for (i = 1; i <= k; i++) s = s (i > 1 ? ", " : "") name[i] " " calls[i]
      printf "%s|%s|%s|%s\n", tot, err, k, s
    }' "$RAW/strace-c-$n.txt"
}

# ---------------------------------------------------------------- environment
export HERMES_S6_SHEBANGDIR=/usr/bin HERMES_S6_USER=0:0 HERMES_GATEWAY_CMD="sleep 100000"
use_env() { # DIR: HERMES_HOME=DIR/home, HERMES_S6_SCANDIR=DIR/scan
  export HERMES_HOME=$1/home HERMES_S6_SCANDIR=$1/scan
  mkdir -p "$HERMES_HOME" "$HERMES_S6_SCANDIR"
}
# profiles HOME FROM TO [running-every-K]: real profiles pNNNN, FROM..TO;
# with K, every K-th has desired_state=running.
profiles() {
  local i n
  for ((i = $2; i <= $3; i++)); do
    printf -v n 'p%04d' "$i"
    mkdir -p "$1/profiles/$n"
    : > "$1/profiles/$n/SOUL.md"
    if [ -n "${4:-}" ] && ((i % $4 == 0)); then
      echo '{"desired_state":"running"}' > "$1/profiles/$n/gateway_state.json"
    fi
  done
}

T_START=$(now_ms)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
say "workspace $W (tmpfs: $TMPFS)"

# ================================================================ 1a. size
if ! skipped 1; then
  say "1: sizes (building make small)"
  make -C "$ROOT" --no-print-directory small > "$RAW/build-small.log" 2>&1 ||
    { tail -20 "$RAW/build-small.log" >&2; die "make small failed"; }
  sz_d=$(stat -c %s "$BIN_DEFAULT")
  sz_s=$(stat -c %s "$BIN_SMALL")
  (cd "$ROOT" && cargo tree --locked -e normal --target $TARGET) > "$RAW/cargo-tree.txt" 2>&1
  ndeps=$(cd "$ROOT" && cargo tree --locked -e normal --target $TARGET --depth 1 --prefix none 2> /dev/null |
    grep -vc '^hermes-s6 ' || true)
  verdict() { if [ "$1" -le $((300 * 1024)) ]; then echo "yes"; else echo "**no**"; fi; }
  {
    echo "### 1. Binary size"
    echo
    echo "| build | bytes | KiB | ≤ 300 KiB |"
    echo "|---|---:|---:|---|"
    echo "| \`make\` (the default: stable toolchain, prebuilt std) | $sz_d | $((sz_d / 1024)) | $(verdict "$sz_d") |"
    echo "| \`make small\` (opt-in: std rebuilt without its backtrace symbolizer, panic messages kept) | $sz_s | $((sz_s / 1024)) | $(verdict "$sz_s") |"
    echo
    echo "small / default = $(div "$sz_s" "$sz_d"). Every other figure below is the default build's."
    echo
    echo '```'
    echo "\$ file target/$TARGET/release/hermes-s6"
    file -b "$BIN_DEFAULT"
    echo "\$ cargo tree -e normal --target $TARGET      # $ndeps direct dependencies"
    cat "$RAW/cargo-tree.txt"
    echo '```'
  } > "$(sec 1a)"
fi

# ================================================================ live service (items 1b, 2, 6)
LIVE=$W/live
if ! skipped 2 || ! skipped 1 || ! skipped 6; then
  say "2: one live service (s6-svscan on $LIVE/scan)"
  use_env "$LIVE"
  mkdir -p "$HERMES_HOME/profiles/bench"
  : > "$HERMES_HOME/profiles/bench/SOUL.md"
  "$HS" register default --start 2>> "$RAW/live.log"
  "$HS" register bench 2>> "$RAW/live.log"
  start_scanner "$HERMES_S6_SCANDIR"
  wait_for 10000 "$HS" pid default || die "the live gateway did not come up"
  SVC=$HERMES_S6_SCANDIR/gateway-default
fi

# ================================================================ 2. pid/status vs s6-svstat
if ! skipped 2; then
  # hyperfine names are CSV keys: no commas
  hf live-read --warmup 100 --min-runs 1000 \
    -n "pid" "$HS pid default" \
    -n "status" "$HS status default" \
    -n "svstat" "s6-svstat -o up,pid $SVC" \
    -n "true" "/bin/true"
  row2() { # KEY LABEL
    local m s u y
    m=$(stat_ms live-read "$1" mean) s=$(stat_ms live-read "$1" stddev)
    u=$(stat_ms live-read "$1" user) y=$(stat_ms live-read "$1" system)
    echo "| $2 | $(pm "$m" "$s") | $(ms "$u") | $(ms "$y") | $(div "$m" "$(stat_ms live-read svstat mean)") |"
  }
  {
    echo "### 2. One live service: \`pid P\`, \`status P\` vs \`s6-svstat -o up,pid\`"
    echo
    echo "hyperfine -N, 100 warmup runs, ≥ 1000 runs each; the service is up (\`sleep 100000\` under s6-supervise)."
    echo
    echo "| command | mean ± σ | user | system | ÷ s6-svstat |"
    echo "|---|---:|---:|---:|---:|"
    row2 pid "\`hermes-s6 pid default\`"
    row2 status "\`hermes-s6 status default\`"
    row2 svstat "\`s6-svstat -o up,pid …/gateway-default\` (Debian, dynamically linked)"
    row2 true "\`/bin/true\` (Debian, dynamically linked)"
    echo
    echo "Target: \`pid P\` ÷ s6-svstat ≤ 1.0 → **$(div "$(stat_ms live-read pid mean)" "$(stat_ms live-read svstat mean)")**;" \
      "\`status P\` ÷ s6-svstat → **$(div "$(stat_ms live-read status mean)" "$(stat_ms live-read svstat mean)")**."
  } > "$(sec 2)"
fi

# ================================================================ 1b. peak RSS
if ! skipped 1; then
  say "1: peak RSS of every command"
  rss_row() { # LABEL CMD...
    local l=$1 k
    shift
    k=$(rss "$@")
    local ok="yes"
    [ "$k" -le 2048 ] || ok="**no**"
    echo "| \`$l\` | $k | $ok |"
  }
  {
    echo "### 1. Peak RSS (\`/usr/bin/time -v\`, maximum resident set size, highest of 3 runs)"
    echo
    echo "On the live service of item 2 (2 profiles: \`default\` up, \`bench\` down)."
    echo
    echo "| command | max RSS KiB | ≤ 2 MiB |"
    echo "|---|---:|---|"
    rss_row "detect" "$HS" detect
    rss_row "port default" "$HS" port default
    rss_row "list" "$HS" list
    rss_row "status" "$HS" status
    rss_row "status --json" "$HS" status --json
    rss_row "pid default" "$HS" pid default
    rss_row "run bench -- /bin/true" "$HS" run bench -- /bin/true
    rss_row "finish bench 256 15" "$HS" finish bench 256 15
    rss_row "reconcile --dry-run" "$HS" reconcile --dry-run
    rss_row "reconcile" "$HS" reconcile
    echo "| *reference:* \`s6-svstat -o up,pid\` (dynamic) | $(rss s6-svstat -o up,pid "$SVC") | |"
    echo "| *reference:* \`/bin/true\` (dynamic) | $(rss /bin/true) | |"
    echo
    echo "\`run\` execs \`/bin/true\`: its figure is the larger of the two images (Linux keeps the peak across exec)."
  } > "$(sec 1b)"
fi

# ================================================================ 6. strace
if ! skipped 6; then
  say "6: strace"
  strace_row() {
    local l=$1 r
    shift
    r=$(strace_c "$@")
    IFS='|' read -r tot err k list <<< "$r"
    echo "| \`$l\` | $tot | $err | $k | $list |"
  }
  # the same death as a container stop: SIGTERM, no marker; a fresh
  # crash-loop tally (the RSS runs above already counted deaths)
  "$HS" run bench -- /bin/true > /dev/null 2>&1 || true
  rm -f "$HERMES_S6_SCANDIR/gateway-bench/data/deaths"
  {
    echo "### 6. System calls (\`strace -f -c\`)"
    echo
    echo "| command | syscalls | failed | distinct | by count |"
    echo "|---|---:|---:|---:|---|"
    strace_row "hermes-s6 finish bench 256 15" finish "$HS" finish bench 256 15
    strace_row "hermes-s6 pid default" pid "$HS" pid default
    strace_row "hermes-s6 status default" status1 "$HS" status default
    strace_row "s6-svstat -o up,pid" svstat s6-svstat -o up,pid "$SVC"
    echo
    echo "\`finish\` here is the heaviest path: a signal death without a planned-stop marker (state read,"
    echo "marker check, crash-loop tally read and rewritten, /proc/stat for the lifetime, state rewritten under its lock)."
    echo
    echo "No process spawned (\`strace -f -e trace=process\`; the one execve is hermes-s6's own):"
    echo
    echo "| command | execve | clone/fork/vfork | effect checked |"
    echo "|---|---:|---:|---|"
  } > "$(sec 6)"
  proc_row() { # NAME CHECK CMD...
    local n=$1 chk=$2 ex cl
    shift 2
    strace -f -e trace=process -o "$RAW/strace-proc-$n.txt" "$@" > /dev/null 2>&1 || true
    ex=$(grep -c 'execve(' "$RAW/strace-proc-$n.txt" || true)
    cl=$(grep -cE '(clone3?|v?fork)\(' "$RAW/strace-proc-$n.txt" || true)
    echo "| \`hermes-s6 ${*:2}\` | $ex | $cl | $chk |" >> "$(sec 6)"
  }
  proc_row pid "prints the pid" "$HS" pid default
  proc_row status "prints every profile" "$HS" status
  t0=$(now_ms)
  proc_row stop "__STOP__" "$HS" stop default
  if wait_for 10000 sh -c "! '$HS' pid default"; then
    sed -i "s/__STOP__/gateway down $(($(now_ms) - t0)) ms later/" "$(sec 6)"
  else
    sed -i "s/__STOP__/**gateway still up after 10 s**/" "$(sec 6)"
  fi
fi

if [ -d "$LIVE/scan" ]; then stop_scanner "$LIVE/scan"; fi

# ================================================================ 4. reconcile
if ! skipped 4; then
  say "4: reconcile of $SLOTS profiles (fresh scandir per run, no scanner)"
  RC=$W/rc
  hf python --warmup 3 --runs 20 -n "python3 import" "$PY -c 'import json, pathlib, shutil, subprocess'"
  pym=$(stat_ms python "python3 import" mean)
  {
    echo "### 4. \`reconcile\` on a fresh tmpfs scandir (scanner not running)"
    echo
    echo "N real profiles (\`default\` + N−1; every second one has \`desired_state: running\`, so half the slots"
    echo "are published without \`down\`). Each run starts from an empty scandir (\`--prepare 'rm -rf scandir logs'\`)."
    echo "\`cp -a\` copies the tree reconcile wrote: the cost of the filesystem work alone. **upstream**: the"
    echo "reconciler hermes-s6 replaces, hermes-agent 0.19.0's own \`reconcile_profile_gateways\` (its venv's"
    echo "python, [bench/upstream-reconcile.py](../bench/upstream-reconcile.py)), on the same tree into its own fresh"
    echo "scandir, in the same hyperfine run."
    echo
    echo "| N | reconcile mean ± σ | per profile | user | system | upstream reconciler | upstream ÷ reconcile | ÷ python3 start | \`cp -a\` of the tree | ÷ cp -a | max RSS KiB |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  } > "$(sec 4)"
  for n in $SLOTS; do
    use_env "$RC/$n"
    profiles "$HERMES_HOME" 1 $((n - 1)) 2
    runs=$((n >= 1000 ? 10 : 20))
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import hermes_cli.container_boot' 2> /dev/null; then
      hf "reconcile-$n" --warmup 2 --runs $runs --prepare "rm -rf $HERMES_S6_SCANDIR $RC/$n/upscan $HERMES_HOME/logs" \
        -n "reconcile" "$HS reconcile" \
        -n "upstream" "$VENV/bin/python $ROOT/bench/upstream-reconcile.py $HERMES_HOME $RC/$n/upscan"
      u=$(stat_ms "reconcile-$n" upstream mean)
    else
      hf "reconcile-$n" --warmup 2 --runs $runs --prepare "rm -rf $HERMES_S6_SCANDIR $HERMES_HOME/logs" \
        -n "reconcile" "$HS reconcile"
      u=-
    fi
    rm -rf "$RC/$n/upscan"
    "$HS" reconcile > /dev/null 2>&1
    hf "cp-$n" --warmup 1 --runs $runs --prepare "rm -rf $RC/cp-$n" -n "cp -a" "cp -a $HERMES_S6_SCANDIR $RC/cp-$n"
    m=$(stat_ms "reconcile-$n" reconcile mean)
    c=$(stat_ms "cp-$n" "cp -a" mean)
    rm -rf "$HERMES_S6_SCANDIR" "$HERMES_HOME/logs"
    k=$(rss "$HS" reconcile)
    rm -rf "$HERMES_S6_SCANDIR" "$HERMES_HOME/logs"
    RC_STRACE=$n:$(strace_c "reconcile-$n" "$HS" reconcile)
    if [ "$u" = - ]; then uu="skipped: no venv at \`$VENV\`"; ur=-; else uu=$(ms "$u"); ur="**$(div "$u" "$m" "%.1f×")**"; fi
    echo "| $n | $(pm "$m" "$(stat_ms "reconcile-$n" reconcile stddev)") | $(div "$(awk -v m="$m" 'BEGIN{print m*1000}')" "$n" "%.0f µs") | $(ms "$(stat_ms "reconcile-$n" reconcile user)") | $(ms "$(stat_ms "reconcile-$n" reconcile system)") | $uu | $ur | $(div "$m" "$pym") | $(ms "$c") | $(div "$m" "$c") | $k |" >> "$(sec 4)"
    rm -rf "${RC:?}/$n" "$RC/cp-$n"
  done
  IFS='|' read -r tot err k list <<< "${RC_STRACE#*:}"
  {
    echo
    echo "\`strace -f -c hermes-s6 reconcile\` at N = ${RC_STRACE%%:*}: $tot syscalls ($(div "$tot" "${RC_STRACE%%:*}" "%.0f") per profile), $err failed: $list."
    echo
    echo "One \`$PY -c 'import json, pathlib, shutil, subprocess'\` ($("$PY" --version 2>&1)), what the upstream"
    echo "Python reconciler pays before doing any work: $(pm "$pym" "$(stat_ms python "python3 import" stddev)")."
  } >> "$(sec 4)"
fi

# ================================================================ 3. status/list at scale
if ! skipped 3; then
  say "3: status/list vs an s6-svstat loop, $SLOTS live slots"
  SC=$W/scale
  use_env "$SC"
  {
    echo "### 3. \`status\` and \`list\` vs a shell loop of \`s6-svstat\`, live slots"
    echo
    echo "N slots (\`default\` + N−1 profiles, all down; each slot and its \`log/\` supervised: 2N s6-supervise"
    echo "and N s6-log under one \`s6-svscan -c 4000\`). Baseline: [bench/svstat-loop.sh](../bench/svstat-loop.sh),"
    echo "one \`s6-svstat -o up,pid\` per slot."
    echo
    echo "| N | \`status\` | per slot | \`list\` | \`status --json\` | s6-svstat loop | loop ÷ status | loop ÷ list | status max RSS KiB | supervised in |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  } > "$(sec 3)"
  have=0
  for n in $SLOTS; do
    profiles "$HERMES_HOME" $((have + 1)) $((n - 1))
    have=$((n - 1))
    t0=$(now_ms)
    "$HS" reconcile > /dev/null
    [ ${#SCANNERS[@]} -gt 0 ] || start_scanner "$HERMES_S6_SCANDIR"
    # every slot supervised (status says down, not unsupervised) and every logger running
    ready() {
      [ "$("$HS" status | grep -c ' s6=down ')" -eq "$n" ] &&
        [ "$(find "$HERMES_HOME/logs/gateways" -mindepth 2 -maxdepth 2 -name current | wc -l)" -eq "$n" ]
    }
    wait_for 180000 ready || die "$n slots not supervised within 180 s"
    tsup=$(($(now_ms) - t0))
    lr=$((n >= 1000 ? 3 : n >= 100 ? 10 : 30))
    sr=$((n >= 1000 ? 20 : 50))
    hf "scale-$n" --warmup 2 --runs $sr \
      -n "status" "$HS status" \
      -n "list" "$HS list" \
      -n "status --json" "$HS status --json"
    hf "loop-$n" --warmup 1 --runs $lr -n "svstat loop" "bash $ROOT/bench/svstat-loop.sh $HERMES_S6_SCANDIR"
    s=$(stat_ms "scale-$n" status mean)
    l=$(stat_ms "scale-$n" list mean)
    j=$(stat_ms "scale-$n" "status --json" mean)
    lp=$(stat_ms "loop-$n" "svstat loop" mean)
    k=$(rss "$HS" status)
    echo "| $n | $(pm "$s" "$(stat_ms "scale-$n" status stddev)") | $(div "$(awk -v m="$s" 'BEGIN{print m*1000}')" "$n" "%.0f µs") | $(ms "$l") | $(ms "$j") | $(ms "$lp") | **$(div "$lp" "$s" "%.1f")×** | $(div "$lp" "$l" "%.0f")× | $k | $((tsup / 1000)).$(((tsup % 1000) / 100)) s |" >> "$(sec 3)"
  done
  stop_scanner "$HERMES_S6_SCANDIR"
  tstop=$STOP_MS
  {
    echo
    echo "Target: the loop ÷ \`status\` ≥ 20 at N = 1000. \"supervised in\": from \`reconcile\` (publishing the new"
    echo "slots) until every new slot and logger runs (s6's own start-up work, for scale). Stopping all"
    echo "of it (\`s6-svscanctl -t\` until every s6-supervise has exited): $tstop ms."
  } >> "$(sec 3)"
fi

# ================================================================ 5. container boot
if ! skipped 5; then
  {
    echo "### 5. Test container: boot until all N autostart gateways are up"
    echo
  } > "$(sec 5)"
  if [ ! -x "$CT/boot.sh" ] || [ ! -x "$CT/exec-as-hermes.sh" ] || [ ! -x "$CT/rm.sh" ]; then
    say "5: SKIPPED: no test-container harness at $CT (boot.sh, exec-as-hermes.sh, rm.sh)"
    echo "Skipped: no test-container harness at \`$CT\` (needs boot.sh, exec-as-hermes.sh, rm.sh)." >> "$(sec 5)"
  else
    say "5: container boot with 0 $CT_NS autostart gateways (harness: $CT)"
    stage_image
    echo "HERMES_GATEWAY_CMD=sleep 100000" > "$W/ct.env"
    export IMAGE_SRC=$STAGE CT_ENV_FILE=$W/ct.env S6_KILL_GRACETIME=200 S6_SERVICES_GRACETIME=3000
    # ct_boot N: boot.sh, then poll until N gateways say s6=up. Sets TB (boot.sh
    # returned) and TU (all up, or "timeout"), in ms since the call.
    ct_boot() {
      local t0
      t0=$(now_ms)
      "$CT/boot.sh" >> "$RAW/ct.log" 2>&1 || { tail -20 "$RAW/ct.log" >&2; die "container boot failed ($CT_DIR)"; }
      TB=$(($(now_ms) - t0))
      ct_up() { [ "$("$CT/exec-as-hermes.sh" hermes-s6 status 2> /dev/null | grep -c ' s6=up ')" -ge "$1" ]; }
      if wait_for 120000 ct_up "$1"; then TU=$(($(now_ms) - t0)); else TU=timeout; fi
    }
    base=""
    rows=""
    for n in 0 $CT_NS; do
      export CT_DIR=$W/ct-$n
      mkdir -p "$CT_DIR/home"
      for ((i = 1; i <= n; i++)); do
        printf -v p 'g%03d' "$i"
        mkdir -p "$CT_DIR/home/profiles/$p"
        : > "$CT_DIR/home/profiles/$p/SOUL.md"
        echo '{"desired_state":"running"}' > "$CT_DIR/home/profiles/$p/gateway_state.json"
      done
      chown -R 10000:10000 "$CT_DIR/home"
      CT_BOOTED=$CT_DIR
      ct_boot "$n"                 # docker run: creates the layer, then boots
      tb1=$TB tu1=$TU
      tb2=- tu2=-
      if [ -x "$CT/stop.sh" ] && [ "$tu1" != timeout ]; then
        "$CT/stop.sh" >> "$RAW/ct.log" 2>&1 || say "warning: stop.sh failed ($CT_DIR)"
        ct_boot "$n"               # docker restart: same layer and volume
        tb2=$TB tu2=$TU
      fi
      if [ "$n" = 0 ]; then
        tp=$(now_ms)
        for i in 1 2 3 4 5; do "$CT/exec-as-hermes.sh" hermes-s6 status > /dev/null 2>&1 || true; done
        poll=$((($(now_ms) - tp) / 5))
        base=$tu2
      fi
      extra=– per=–
      if [ "$n" -gt 0 ] && [ "$tu2" != timeout ] && [ "$tu2" != - ] && [ "$base" != - ]; then
        extra="$((tu2 - base)) ms"
        per=$(div $((tu2 - base)) "$n" "%.1f ms")
      fi
      rows="$rows| $n | $(msv "$tb1") | $(msv "$tu1") | $(msv "$tb2") | $(msv "$tu2") | $extra | $per |"$'\n'
      "$CT/rm.sh" >> "$RAW/ct.log" 2>&1 || say "warning: rm.sh failed for $CT_DIR (see $RAW/ct.log)"
      CT_BOOTED=""
    done
    unset CT_DIR IMAGE_SRC CT_ENV_FILE
    {
      echo "Harness: \`$CT\`$(git -C "$CT" log -1 --format=' (commit %h)' 2> /dev/null || true). Image: \`make install"
      echo "SERVICE_STYLE=services.d SHEBANGDIR=/command\`; N profiles with \`desired_state: running\` seeded in the"
      echo "volume; \`HERMES_GATEWAY_CMD=sleep 100000\`. \"boot.sh\": until it returns (stage 2 done: cont-init.d, with"
      echo "\`reconcile\` as hermes, and the nested scanner's service up). \"all up\": until"
      echo "\`exec-as-hermes.sh hermes-s6 status\` shows N lines \`s6=up\` (polled; one poll costs ~$poll ms)."
      echo "First boot = \`docker run\` (creates the layer); restart = \`stop.sh\` + \`boot.sh\` (\`docker restart\`;"
      echo "the gateways died by SIGTERM, so their intent is still \`running\`)."
      echo
      echo "| N | first boot: boot.sh | first boot: all up | restart: boot.sh | restart: all up | restart all up − N=0 | per gateway |"
      echo "|---:|---:|---:|---:|---:|---:|---:|"
      printf '%s' "$rows"
    } >> "$(sec 5)"
  fi
fi

# ---------------------------------------------------------------- 7
# The real gateway (hermes-agent, tools/venv.sh): how long from `start` to s6's
# "up" (what `--wait` used to mean) and to ready (its own
# gateway_state=running, what `--wait` means now), and from a kill -9 to ready
# again. One profile, its respawn-storm breaker off (config.yaml), so every
# start is measured and none is a deliberate back-off.
if ! skipped 7; then
  : # VENV: set at the top
  {
    echo "### 7. The real gateway: start → up → ready, kill -9 → ready"
    echo
  } > "$(sec 7)"
  if ! "$VENV/bin/hermes" --version > /dev/null 2>&1; then
    say "7: SKIPPED: no hermes-agent venv at $VENV (tools/venv.sh)"
    echo "Skipped: no hermes-agent venv at \`$VENV\` (\`make venv\`)." >> "$(sec 7)"
  else
    say "7: real gateway ($VENV): start → ready, 10 times; kill -9 → ready, 10 times"
    stage_image
    export CT_DIR=$W/ct-real IMAGE_SRC=$STAGE CT_ENV_FILE=$W/ct7.env S6_KILL_GRACETIME=200
    export CT_PATH="$VENV/bin:/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    : > "$CT_ENV_FILE"
    h=$CT_DIR/home/profiles/coder
    mkdir -p "$h"
    : > "$h/SOUL.md"
    echo '{"desired_state":"stopped"}' > "$h/gateway_state.json"
    printf 'gateway:\n  respawn_storm:\n    max_starts: 0\n' > "$h/config.yaml"
    chown -R 10000:10000 "$CT_DIR/home"
    CT_BOOTED=$CT_DIR
    "$CT/boot.sh" >> "$RAW/ct.log" 2>&1 || die "container boot failed ($CT_DIR)"
    x() { "$CT/exec-as-hermes.sh" "$@"; }
    health() { x hermes-s6 status coder 2> /dev/null | sed -n 's/.* pid=\([^ ]*\) .* health=\([^ ]*\) .*/\2 \1/p'; }
    ups=() readys=() waits=() kills=()
    x hermes-s6 start coder --wait --timeout 60000 > /dev/null 2>&1 || say "warning: first start failed"
    x hermes-s6 stop coder --wait > /dev/null 2>&1
    for i in 1 2 3 4 5 6 7 8 9 10; do
      t0=$(now_ms)
      x hermes-s6 start coder > /dev/null 2>&1
      tu=""
      while [ $(($(now_ms) - t0)) -lt 60000 ]; do
        read -r hs _ <<< "$(health)"
        if [ -z "$tu" ] && [ "$hs" != down ] && [ "$hs" != restarting ]; then tu=$(($(now_ms) - t0)); fi
        if [ "$hs" = ready ]; then readys+=($(($(now_ms) - t0))); break; fi
        sleep 0.02
      done
      ups+=("${tu:-60000}")
      x hermes-s6 stop coder --wait > /dev/null 2>&1
      t0=$(now_ms)
      x hermes-s6 start coder --wait --timeout 60000 > /dev/null 2>&1 && waits+=($(($(now_ms) - t0)))
      read -r _ pid <<< "$(health)"
      t0=$(now_ms)
      "$CT/exec.sh" kill -9 "$pid"
      while [ $(($(now_ms) - t0)) -lt 60000 ]; do
        read -r hs p2 <<< "$(health)"
        if [ "$hs" = ready ] && [ "$p2" != "$pid" ]; then kills+=($(($(now_ms) - t0))); break; fi
        sleep 0.02
      done
      x hermes-s6 stop coder --wait > /dev/null 2>&1
    done
    "$CT/rm.sh" >> "$RAW/ct.log" 2>&1 || say "warning: rm.sh failed for $CT_DIR"
    CT_BOOTED=""
    unset CT_DIR IMAGE_SRC CT_ENV_FILE CT_PATH
    # mmm NAME VALUES...: "min / median / max" of a list of ms, and how many
    mmm() {
      local n=$#
      if [ "$n" = 0 ]; then echo "none"; return; fi
      printf '%s\n' "$@" | sort -n | awk -v n="$n" '{ a[NR] = $1 } END { printf "%d / %d / %d ms (%d runs)", a[1], a[int((n + 1) / 2)], a[n], n }'
    }
    {
      echo "hermes-agent $("$VENV/bin/hermes" --version | head -1 | cut -d' ' -f3) in the test container, one named profile,"
      echo "no messaging platform (it idles as it does without credentials); \`status\` polled every ~20 ms from the"
      echo "host (one poll is a \`docker exec\`, ~5–10 ms). min / median / max:"
      echo
      echo "| from | to | time |"
      echo "|---|---|---:|"
      echo "| \`start coder\` | s6 says up (\`run\` recorded the pid: the old \`--wait\`) | $(mmm "${ups[@]}") |"
      echo "| \`start coder\` | ready: the gateway wrote \`gateway_state=running\` with its pid | $(mmm "${readys[@]}") |"
      echo "| \`start coder --wait\` called | it returned (ready) | $(mmm "${waits[@]}") |"
      echo "| \`kill -9\` of the ready gateway | ready again, new pid (s6's 1 s respawn floor included) | $(mmm "${kills[@]}") |"
    } >> "$(sec 7)"
  fi
fi

# ================================================== 8. failover (SPEC §8)
if ! skipped 8; then
  {
    echo "### 8. Failover: two containers on one volume, \`docker kill\` of the holder"
    echo
  } > "$(sec 8)"
  stage_image
  ROUNDS=${BENCH_FAILOVER_ROUNDS:-20}
  # p50max VALUES...: "p50 / max ms (n)"
  p50max() {
    local n=$#
    if [ "$n" = 0 ]; then echo "none"; return; fi
    printf '%s\n' "$@" | sort -n | awk -v n="$n" '{ a[NR] = $1 } END { printf "%d / %d ms (%d)", a[int((n + 1) / 2)], a[n], n }'
  }
  {
    echo "Profile \`coder\` (intent running) in two test containers (gw-a, gw-b) sharing one volume. Each round:"
    echo "SIGKILL to the holder's PID 1 (\`docker kill\`), then the other container's \`status coder\` is polled"
    echo "(~10 ms per poll); the killed one boots again and stands by. p50 / max (rounds):"
    echo
    echo "| gateway | kill → the standby runs the gateway (\`health\` leaves \`standby\`) | kill → ready there |"
    echo "|---|---:|---:|"
  } >> "$(sec 8)"
  for mode in stand-in real; do
    if [ "$mode" = real ] && ! "$VENV/bin/hermes" --version > /dev/null 2>&1; then
      echo "| real | skipped: no venv at \`$VENV\` | |" >> "$(sec 8)"
      continue
    fi
    say "8: failover, $mode gateway, $ROUNDS kills"
    A8=$W/ct8-$mode-a B8=$W/ct8-$mode-b
    export IMAGE_SRC=$STAGE CT_ENV_FILE=$W/ct8-$mode.env S6_KILL_GRACETIME=200
    : > "$CT_ENV_FILE"
    if [ "$mode" = real ]; then
      export CT_PATH="$VENV/bin:/command:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
      unset CT_BINDS
    else
      export CT_BINDS="$ROOT/tests/e2e/gateways:/usr/local/lib/hermes-test:ro"
      echo "HERMES_GATEWAY_CMD=/usr/local/lib/hermes-test/gw {profile}" >> "$CT_ENV_FILE"
      unset CT_PATH
    fi
    h=$A8/home/profiles/coder
    mkdir -p "$h"
    : > "$h/SOUL.md"
    echo '{"desired_state":"running"}' > "$h/gateway_state.json"
    printf 'gateway:\n  respawn_storm:\n    max_starts: 0\n' > "$h/config.yaml"
    chown -R 10000:10000 "$A8/home"
    CT_BOOTED="$A8 $B8"
    b8() { CT_DIR=$1 CT_NAME=$(basename "$1") CT_VOLUME=$A8/home "$CT/boot.sh" >> "$RAW/ct.log" 2>&1; }
    h8() { CT_DIR=$1 "$CT/exec-as-hermes.sh" hermes-s6 status coder 2> /dev/null | sed -n '2s/.* health=\([^ ]*\) .*/\1/p'; }
    is8() { [ "$(h8 "$1")" = "$2" ]; }
    gone8() ( CT_DIR=$1; . "$CT/lib.sh"; [ -z "$(ct_pid1)" ] && [ -z "$(ct_leftovers)" ] )
    pid8() ( CT_DIR=$1; . "$CT/lib.sh"; ct_pid1 )
    b8 "$A8" || die "container boot failed ($A8)"
    wait_for 60000 is8 "$A8" ready || say "warning: coder not ready in A"
    b8 "$B8" || die "container boot failed ($B8)"
    wait_for 10000 is8 "$B8" standby || say "warning: B does not stand by"
    takes=() readys=()
    for i in $(seq "$ROUNDS"); do
      if is8 "$A8" ready; then X=$A8 Y=$B8; else X=$B8 Y=$A8; fi
      t0=$(now_ms)
      kill -9 "$(pid8 "$X")"
      tt="" tr=""
      while [ $(($(now_ms) - t0)) -lt 60000 ]; do
        hs=$(h8 "$Y")
        if [ -z "$tt" ] && [ -n "$hs" ] && [ "$hs" != standby ]; then tt=$(($(now_ms) - t0)); fi
        if [ "$hs" = ready ]; then tr=$(($(now_ms) - t0)); break; fi
        sleep 0.01
      done
      [ -n "$tt" ] && takes+=("$tt")
      [ -n "$tr" ] && readys+=("$tr")
      wait_for 10000 gone8 "$X" || say "warning: $X not gone"
      b8 "$X" || die "container boot failed ($X)"
      wait_for 10000 is8 "$X" standby || say "warning: $X does not stand by"
    done
    for e in $A8 $B8; do CT_DIR=$e "$CT/rm.sh" >> "$RAW/ct.log" 2>&1 || say "warning: rm.sh failed for $e"; done
    CT_BOOTED=""
    unset IMAGE_SRC CT_ENV_FILE CT_PATH CT_BINDS
    echo "| $mode | $(p50max "${takes[@]}") | $(p50max "${readys[@]}") |" >> "$(sec 8)"
  done
  {
    echo
    echo "The standby tries the lease every 200 ms; the rest is \`run\` going on to exec the gateway, and for the real"
    echo "gateway its own startup to \`gateway_state=running\` (Python imports, warm cache here)."
  } >> "$(sec 8)"
fi

# ================================================================ results
T_TOTAL=$(($(now_ms) - T_START))
left=$(leftovers)
[ -z "$left" ] || say "warning: processes left before cleanup: $left"
{
  echo "<!-- generated by bench/run.sh; do not edit by hand -->"
  echo "Run: $(date -u +%FT%TZ), \`make bench\` in $((T_TOTAL / 1000)) s, commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD 2> /dev/null || echo "+dirty")."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPU | $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores |"
  echo "| memory | $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) |"
  echo "| OS | $(. /etc/os-release && echo "$PRETTY_NAME"), Linux $(uname -r) |"
  echo "| load average at start | $LOAD0 (other work on the machine makes absolute times noisy; ratios are taken within one hyperfine run) |"
  echo "| workspace | \`/tmp/hermes-bench.*\`, tmpfs: $TMPFS |"
  echo "| tools | $(rustc -V | cut -d' ' -f1-2), $(hyperfine --version), $(strace -V | head -1 | sed 's/ -- version//'), GNU time $(dpkg-query -W -f '${Version}' time 2> /dev/null || echo '?'), s6 $(dpkg-query -W -f '${Version}' s6 2> /dev/null || echo '?'), execline $(dpkg-query -W -f '${Version}' execline 2> /dev/null || echo '?'), $("$PY" --version 2>&1) |"
  echo
  for s in 1a 1b 2 3 4 5 6 7 8; do
    if [ -s "$(sec $s)" ]; then cat "$(sec $s)"; echo; fi
  done
} > "$OUT/results.md"
rm -f "$OUT"/sec*.md

if [ "${BENCH_UPDATE_DOC:-0}" = 1 ]; then
  doc=$ROOT/docs/PERFORMANCE.md
  grep -q '^<!-- bench:begin -->' "$doc" || die "$doc has no <!-- bench:begin --> marker"
  awk -v f="$OUT/results.md" '
    /^<!-- bench:begin -->/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
    /^<!-- bench:end -->/ { skip = 0 }
    !skip' "$doc" > "$doc.tmp" && mv "$doc.tmp" "$doc"
  say "updated $doc"
fi
cat "$OUT/results.md"
say "done in $((T_TOTAL / 1000)) s; results in $OUT/results.md, raw data in $RAW"
