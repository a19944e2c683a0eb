#!/usr/bin/env bash
# galvatron verify: Hetu-Galvatron's example plan (pp2, tp 1/2/4/2, ZeRO-2/3, Ulysses, recompute) on 8
# ranks passes against one process; the same check with an impossible tolerance fails with exit 1 (the
# comparison is real: reduction order differs between the plan and one process).
# usage: cli_verify.sh GALVATRON_BINARY SOURCE_DIR
set -u
gv=$1
plan=$2/examples/plans/galvatron_config_example.json
fails=0
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
out=$("$gv" verify --plan "$plan" --layers 4 -n 8 --steps 4 --seq 32 2>/dev/null)
rc=$?
echo "$out"
if [ $rc -ne 0 ] || ! grep -q '^PASS' <<<"$out" || [ "$(grep -cE '^[1-4] ' <<<"$out")" -ne 4 ]; then
    echo "FAIL verify: rc=$rc, expected PASS with 4 step rows"
    fails=$((fails + 1))
fi
out=$("$gv" verify --plan "$plan" --layers 4 -n 8 --steps 4 --seq 32 --tol 1e-14 2>/dev/null)
rc=$?
if [ $rc -ne 1 ] || ! grep -q '^FAIL' <<<"$out"; then
    echo "FAIL verify --tol 1e-14: rc=$rc, expected exit 1 and FAIL"
    fails=$((fails + 1))
fi
"$gv" verify --layers 4 -n 8 >/dev/null 2>&1 && { echo "FAIL: verify without --plan succeeded"; fails=$((fails + 1)); }
echo "cli_verify: $fails failure(s)"
[ $fails -eq 0 ]
