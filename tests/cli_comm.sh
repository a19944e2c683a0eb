#!/usr/bin/env bash
# The communicator flags of `train` on CPU: bad values and combinations are refused with one line naming the
# flag, an mpi run reports its communicator, and two ranks started by hand with --rendezvous on the cpu
# backend are refused before any file is written (nccl moves device buffers).
# usage: cli_comm.sh GALVATRON_BINARY SOURCE_DIR
set -u
source "$(dirname "$0")/lib_cli.sh" "$1" "$2" cli_comm

mkdir "$tmp/rdv"
small=(train --quiet --steps 2 --global-batch 4 --seq 16 --eval-every 0)
expect_fail comm-unknown "--comm 'tcp': expected mpi, nccl or auto" -- "${small[@]}" --comm tcp
expect_fail comm-nccl-cpu "--comm nccl: needs --backend cuda" -- "${small[@]}" --comm nccl
expect_fail rank-alone "--rank and --world-size go with --rendezvous DIR" -- "${small[@]}" --rank 1
expect_fail rendezvous-n "--rendezvous starts no processes: give --world-size, not -n" -- "${small[@]}" \
    --rendezvous "$tmp/rdv" -n 2
expect_fail rendezvous-mpi "--rendezvous is the nccl bootstrap: not with --comm mpi" -- "${small[@]}" \
    --rendezvous "$tmp/rdv" --comm mpi
expect_fail rendezvous-cpu "--comm nccl: needs --backend cuda" -- "${small[@]}" --rendezvous "$tmp/rdv" --rank 0 \
    --world-size 2
expect_fail world-size-bad "--world-size '0': expected an integer >= 1" -- "${small[@]}" --rendezvous "$tmp/rdv" \
    --world-size 0
[ -z "$(ls -A "$tmp/rdv")" ] || fail "rendezvous: files written: $(ls "$tmp/rdv")"

# the banner names the communicator: none alone, mpi for ranks of the cpu backend (auto and mpi alike)
check_banner() {
    local name=$1 want=$2
    shift 2
    if "$gv" "$@" >"$tmp/out" 2>"$tmp/err" && grep -q "rank(s) ($want)" "$tmp/err"; then
        echo "ok   $name: $(grep -o '[0-9]* rank(s) ([a-z ]*)' "$tmp/err")"
    else
        fail "$name: want '($want)' in the banner:"
        grep -v '^step' "$tmp/err" | head -3 | sed 's/^/    /'
    fi
}
banner=(train --steps 2 --global-batch 4 --seq 16 --eval-every 0)
check_banner alone "comm none" "${banner[@]}"
check_banner auto-cpu-2 "comm mpi" "${banner[@]}" -n 2
check_banner mpi-2 "comm mpi" "${banner[@]}" -n 2 --comm mpi
cli_done
