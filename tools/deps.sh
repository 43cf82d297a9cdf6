#!/bin/sh
# Install what `make`/`make test` need on a fresh Debian machine: s6 and
# execline from the distribution, the musl target for rustup. Not root: say
# exactly what to run instead.
set -eu
missing=""
for t in s6-svscan execlineb; do
  command -v "$t" >/dev/null 2>&1 || missing="s6 execline"
done
need_musl=0
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || need_musl=1
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "deps: apt-get install -y s6 execline" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y s6 execline >/dev/null 2>&1 || {
      apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y s6 execline >/dev/null; }
  else
    echo "deps: missing s6/execline; run: sudo apt-get install -y s6 execline" >&2; exit 111
  fi
fi
# rust-src: `make` rebuilds std without its panic/backtrace machinery.
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "deps: rustup component add rust-src" >&2
  rustup component add rust-src >/dev/null
fi
if [ "$need_musl" = 1 ]; then
  echo "deps: rustup target add x86_64-unknown-linux-musl" >&2
  rustup target add x86_64-unknown-linux-musl >/dev/null
fi
