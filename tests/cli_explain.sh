#!/usr/bin/env bash
# galvatron explain on a searched plan over the fixture profiles (tests/profiles): the text report has a
# row per layer and per stage and agrees with the search's predicted step time; --html and --trace write
# a page and a Chrome trace with one box per forward/backward of each stage; bad input is one stderr line.
# usage: cli_explain.sh GALVATRON_BINARY SOURCE_DIR
set -u
source "$(dirname "$0")/lib_cli.sh" "$1" "$2" cli_explain
prof=$2/tests/profiles

m=(--model llama2-7b -n 8 --seq 2048 --profile-dir "$prof")
"$gv" search "${m[@]}" --memory 36 --global-batch 32 -o "$tmp/plan.json" >"$tmp/search.txt" 2>&1 ||
    { fail "search"; cat "$tmp/search.txt"; }
if "$gv" explain "$tmp/plan.json" "${m[@]}" --html "$tmp/p.html" --trace "$tmp/p.json" >"$tmp/out" 2>"$tmp/err"; then
    [ "$(grep -cE '^[0-9]+ +[0-9]+ +[0-9]+ ' "$tmp/out")" -ge 32 ] || fail "explain: fewer than 32 layer rows"
    want=$(grep -oE 'step [0-9.]+ s' "$tmp/search.txt" | head -1 | awk '{print $2}')
    got=$(grep -oE 'predicted step [0-9.]+ ms' "$tmp/out" | awk '{print $3}')
    # the search prints seconds to 4 decimals
    awk -v w="$want" -v g="$got" 'BEGIN { d = g / 1000 - w; exit !(w > 0 && d < 5e-5 && d > -5e-5) }' ||
        fail "explain: predicted step $got ms, search said $want s"
    pp=$(grep -oE 'pp [0-9]+' "$tmp/out" | head -1 | awk '{print $2}')
    mb=$(grep -oE '[0-9]+ micro-batches' "$tmp/out" | head -1 | awk '{print $1}')
    [ "$(grep -c '"ph": "X"' "$tmp/p.json")" -eq $((2 * pp * mb)) ] || fail "trace: not 2 x pp x m slices"
    grep -q '<svg' "$tmp/p.html" && [ "$(grep -c 'micro-batch ' "$tmp/p.html")" -eq $((2 * pp * mb)) ] ||
        fail "html: no timeline of 2 x pp x m boxes"
    echo "ok   explain: pp $pp, m $mb, $(grep 'predicted step' "$tmp/out")"
else
    fail "explain: rc=$?"
    cat "$tmp/err"
fi

expect_fail no-profiles "nope/allreduce_bandwidth_1nodes_8gpus_per_node.json" -- \
    explain "$tmp/plan.json" --model llama2-7b -n 8 --seq 2048 --profile-dir "$tmp/nope"
expect_fail no-plan "missing.json" -- explain "$tmp/missing.json" "${m[@]}"
expect_fail bad-html "cannot|No such file" -- explain "$tmp/plan.json" "${m[@]}" --html "$tmp/no/dir/p.html"
cli_done
