# Shared by the CLI tests (tests/cli_*.sh), sourced after `set -u` with the test's arguments:
#   source "$(dirname "$0")/lib_cli.sh" GALVATRON_BINARY SOURCE_DIR NAME
# sets gv (the binary), src (the source tree), tmp (a scratch directory removed at exit), fails (a count).
gv=$1
src=$2
cli_name=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-$cli_name.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_fail NAME PATTERN -- args...: non-zero exit, exactly one stderr line, matching PATTERN (grep -E).
expect_fail() {
    local name=$1 pat=$2
    shift 3
    "$gv" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 0 ] || [ "$lines" -ne 1 ] || ! grep -qE -e "$pat" "$tmp/err"; then
        fail "$name: rc=$rc, $lines stderr line(s), want /$pat/:"
        sed 's/^/    /' "$tmp/err" | head -5
    else
        echo "ok   $name: $(cat "$tmp/err")"
    fi
}

# expect_fail_ranks NAME PATTERN -- args...: a job of several ranks that must fail: non-zero exit and a
# stderr line matching PATTERN (mpirun adds its own lines when a rank takes the job down).
expect_fail_ranks() {
    local name=$1 pat=$2
    shift 3
    "$gv" "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    if [ $rc -eq 0 ] || ! grep -qE -e "$pat" "$tmp/err"; then
        fail "$name: rc=$rc, want /$pat/:"
        sed 's/^/    /' "$tmp/err" | head -5
    else
        echo "ok   $name: $(grep -m1 -E -e "$pat" "$tmp/err")"
    fi
}

# cli_done: the summary line and the exit status.
cli_done() {
    echo "$cli_name: $fails failure(s)"
    [ "$fails" -eq 0 ]
}
