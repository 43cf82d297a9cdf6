#!/bin/bash
# The baseline of `make bench` item 3: what a script without hermes-s6 pays to
# learn the state of every slot — one s6-svstat process per service directory.
#
# usage: svstat-loop.sh SCANDIR
for d in "$1"/gateway-*; do
  s6-svstat -o up,pid "$d"
done
