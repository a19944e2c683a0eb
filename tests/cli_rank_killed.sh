#!/usr/bin/env bash
# A rank of `galvatron train -n 4` killed mid-run (SIGKILL) takes the whole job down: the launcher exits
# non-zero within 30 s and no rank is left running.
# usage: cli_rank_killed.sh GALVATRON_BINARY SOURCE_DIR
set -u
gv=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-kill.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$gv" train -n 4 --steps 100000 --global-batch 8 --seq 32 --eval-every 0 --quiet >"$tmp/out" 2>&1 &
launcher=$!
ranks=""
for _ in $(seq 1 60); do # wait until the 4 ranks run
    ranks=$(pgrep -P "$launcher" -f galvatron | tr '\n' ' ')
    [ "$(echo $ranks | wc -w)" -ge 4 ] && break
    sleep 0.5
done
if [ "$(echo $ranks | wc -w)" -lt 4 ]; then
    echo "FAIL: the 4 ranks did not start (found: $ranks)"
    kill -9 "$launcher" 2>/dev/null
    cat "$tmp/out"
    exit 1
fi
sleep 2 # let them train a few steps
victim=$(echo $ranks | awk '{ print $2 }')
t0=$(date +%s.%N)
kill -9 "$victim"
for _ in $(seq 1 60); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.5; done
if kill -0 "$launcher" 2>/dev/null; then
    echo "FAIL: the job still runs 30 s after a rank was killed"
    pkill -9 -P "$launcher"
    kill -9 "$launcher"
    exit 1
fi
wait "$launcher"
rc=$?
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
left=""
for p in $ranks; do
    st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)
    [ -n "$st" ] && [ "$st" != Z ] && left="$left $p"
done
echo "rank $victim killed: launcher exit $rc after $elapsed s; ranks left:${left:- none}"
[ "$rc" -ne 0 ] && [ -z "$left" ] && awk -v e="$elapsed" 'BEGIN { exit !(e < 30) }'
