#!/usr/bin/env bash
# A rank that fails must take the whole job down: 4 ranks, the victim fails while the other three sit in an
# allreduce that can never complete. Variants: the victim calls gv_launch_die (message + MPI_Abort), is killed
# by SIGKILL, exits non-zero, or exits 0 without MPI_Finalize. Each variant must end with mpirun exiting non-zero
# within 30 s and no rank process left.
# usage: test_comm_abort.sh TEST_COMM_BINARY [MPIRUN]
set -u
bin=$1
mpirun=${2:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
    echo "FAIL [$variant]: $*" >&2
    failures=$((failures + 1))
}

# Running or sleeping; a zombie has exited (it waits for a lazy init to reap it after mpirun is gone).
alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

run_variant() {
    variant=$1
    local victim=$2 dir=$tmp/$1
    mkdir -p "$dir"
    local t0 t1 rc elapsed
    t0=$(date +%s.%N)
    timeout 60 "$mpirun" --allow-run-as-root --oversubscribe --bind-to none \
        --mca orte_abort_on_non_zero_status 1 -n 4 "$bin" "$variant" "$victim" "$dir" >"$dir/out" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    echo "$variant (victim rank $victim): mpirun exit $rc after $elapsed s"
    [ "$rc" -ne 0 ] || fail "mpirun exited 0"
    [ "$rc" -ne 124 ] || fail "the job hung until timeout 60 killed mpirun"
    awk -v e="$elapsed" 'BEGIN { exit !(e < 30) }' || fail "took $elapsed s (limit 30 s)"
    if grep -q "allreduce returned" "$dir/out"; then fail "a rank came out of the allreduce"; fi
    # every rank started, and none is left once mpirun has returned
    local n=0 alive=""
    for f in "$dir"/pid.*; do
        [ -e "$f" ] || continue
        n=$((n + 1))
        local pid
        pid=$(cat "$f")
        for _ in 1 2 3 4 5 6 7 8 9 10; do alive "$pid" || break; sleep 0.5; done
        if alive "$pid"; then
            alive="$alive $pid"
            kill -9 "$pid" 2>/dev/null # our own leftover rank, by its id
        fi
    done
    [ "$n" -eq 4 ] || fail "$n of 4 ranks wrote their pid"
    [ -z "$alive" ] || fail "rank processes still alive after mpirun returned:$alive"
    if [ "$variant" = abort ]; then
        grep -q "^rank $victim: injected failure on purpose" "$dir/out" || fail "no 'rank $victim: ...' message"
    fi
    if [ "$failures" -ne 0 ]; then sed 's/^/    | /' "$dir/out" >&2; fi
}

run_variant abort 2
run_variant kill 1
run_variant exit 3
run_variant exit0 1

if [ "$failures" -ne 0 ]; then
    echo "test_comm_abort: $failures failure(s)" >&2
    exit 1
fi
echo "test_comm_abort: ok"
