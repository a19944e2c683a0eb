#!/usr/bin/env bash
# mpirun with every rank pinned to a core of its own (bench/calibrate.sh points GV_MPIRUN here). The CLI
# launches "mpirun ... --bind-to none -n N EXE ARGS"; this starts EXE through bench/pin-rank.sh, which puts
# rank r on the (GV_PIN_BASE + r)-th physical core with taskset (so two benches can use disjoint cores;
# OpenMPI's own --bind-to core always starts at the first core), and drops --oversubscribe.
here=$(cd "$(dirname "$0")" && pwd)
args=()
seen=0
while [ $# -gt 0 ]; do
    if [ "$seen" = 0 ] && [ "${1:0:1}" = / ] && [ -x "$1" ] && [ -f "$1" ]; then # the rank's executable
        args+=("$here/pin-rank.sh")
        seen=1
    fi
    [ "$1" = --oversubscribe ] || args+=("$1")
    shift
done
exec mpirun --oversubscribe "${args[@]}"
