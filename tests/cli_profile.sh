#!/usr/bin/env bash
# `galvatron profile` bad input: each case exits non-zero with one stderr line naming the flag, value or path.
# usage: cli_profile.sh GALVATRON_BINARY SOURCE_DIR
set -u
source "$(dirname "$0")/lib_cli.sh" "$1" "$2" cli_profile


touch "$tmp/file"
expect_fail unknown-subcommand "unknown subcommand 'network'" -- profile network
expect_fail unknown-flag "unknown option '--bogus'" -- profile hardware --bogus 1
expect_fail model-flag-on-hardware "'--seq' is not an option of profile hardware" -- profile hardware --seq 64
expect_fail hw-flag-on-model "'--max-size' is not an option of profile model" -- profile model --max-size 1M
expect_fail missing-value "option '-o' needs a value" -- profile hardware -o
expect_fail n-not-pow2 "-n 3: expected a power of two" -- profile hardware -n 3 -o "$tmp/o"
expect_fail n-zero "-n 0: expected a power of two" -- profile model -n 0 -o "$tmp/o"
expect_fail hw-one-rank "-n 1: profile hardware needs at least 2 ranks" -- profile hardware -n 1 -o "$tmp/o"
expect_fail bad-size "--max-size '3K': expected a power of two" -- profile hardware --max-size 3K
expect_fail min-over-max "--min-size 1048576 is larger than --max-size 65536" -- profile hardware --min-size 1M --max-size 64K
expect_fail bad-sp "--sp 'megatron,foo': expected a comma list of none, megatron, ulysses" -- profile model --sp megatron,foo
expect_fail bad-list "--seq '64,,128': expected a comma list" -- profile model --seq 64,,128
expect_fail unwritable-out "-o $tmp/file/sub: cannot create directory" -- profile hardware -n 2 -o "$tmp/file/sub"
expect_fail out-is-file "-o $tmp/file: not a directory" -- profile model -o "$tmp/file"
expect_fail unknown-model "unknown model preset 'gpt5-huge'" -- profile model --model gpt5-huge -o "$tmp/o"
expect_fail tp-not-dividing "--tp 3: must be a power of two that divides the 1 ranks" -- profile model --tp 1,3 -o "$tmp/o"
expect_fail tp-over-world "--tp 4: must be a power of two that divides the 2 ranks" -- profile model -n 2 --tp 1,4 -o "$tmp/o"
expect_fail seq-too-long "--seq 4096: must be in \[1, 128\]" -- profile model --seq 4096 -o "$tmp/o"
expect_fail layers-order "--layers-min 2 must be smaller than --layers-max 2" -- profile model --layers-min 2 --layers-max 2
expect_fail mem-batch "--mem-batch 3: must be a multiple of the 2 ranks" -- profile model -n 2 --mem-batch 3 -o "$tmp/o"
# Nothing was written by the failed runs.
if [ -n "$(ls -A "$tmp/o" 2>/dev/null)" ]; then echo "FAIL: files written by failed runs"; fails=$((fails + 1)); fi

"$gv" profile --help >"$tmp/help" || { echo "FAIL help"; fails=$((fails + 1)); }
grep -q "galvatron profile hardware" "$tmp/help" || { echo "FAIL help text"; fails=$((fails + 1)); }
"$gv" --help | grep -q "^  profile" || { echo "FAIL main help lists profile"; fails=$((fails + 1)); }

# The search reads what the profiler writes: hardware and model profiles of 2 ranks in one directory.
d="$tmp/prof"
if "$gv" profile hardware -n 2 -o "$d" --min-size 16K --max-size 256K --iters 2 --matmul-n 128 >/dev/null 2>&1 &&
    "$gv" profile model -n 2 --seq 32 --batch 2 --iters 3 -o "$d" >/dev/null 2>&1; then
    echo '{"mixed_precision": "fp32"}' >"$d/opts.json"
    for cm in galvatron own; do
        if "$gv" search --model gpt2-tiny --seq 32 -n 2 --memory 2 --profile-dir "$d" --cost-model $cm \
            --global-batch 4 --options "$d/opts.json" -o "$d/plan_$cm.json" --galvatron-out "$d/gc_$cm.json" \
            >"$tmp/search.out" 2>&1 &&
            [ -s "$d/plan_$cm.json" ]; then
            echo "ok   search-reads-profiles ($cm)"
        else
            echo "FAIL search-reads-profiles ($cm):"
            sed 's/^/    /' "$tmp/search.out" | tail -5
            fails=$((fails + 1))
        fi
    done
else
    echo "FAIL: profiling for the search"
    fails=$((fails + 1))
fi

# T5: two layer types (encoder, decoder) from the profiler to the search and explain, both cost models.
if "$gv" profile model --model t5-tiny -n 2 --seq 64 --batch 4 --iters 5 -o "$d" >/dev/null 2>&1; then
    for cm in galvatron own; do
        if "$gv" search --model t5-tiny --seq 64 -n 2 --memory 2 --profile-dir "$d" --cost-model $cm \
            --global-batch 4 --options "$d/opts.json" -o "$d/t5_$cm.json" --galvatron-out "$d/t5gc_$cm.json" \
            >"$tmp/search.out" 2>&1 &&
            [ -s "$d/t5_$cm.json" ]; then
            echo "ok   search-reads-t5-types ($cm)"
        else
            echo "FAIL search-reads-t5-types ($cm):"
            sed 's/^/    /' "$tmp/search.out" | tail -5
            fails=$((fails + 1))
        fi
    done
    if "$gv" explain "$d/t5_own.json" --model t5-tiny -n 2 --seq 64 --profile-dir "$d" --html "$tmp/t5.html" \
        >"$tmp/explain.out" 2>&1 &&
        [ "$(grep -cE '^[0-3] .* encoder$' "$tmp/explain.out")" -eq 2 ] &&
        [ "$(grep -cE '^[0-3] .* decoder$' "$tmp/explain.out")" -eq 2 ] &&
        [ "$(grep -o '<td>decoder</td>' "$tmp/t5.html" | wc -l)" -eq 2 ]; then
        echo "ok   explain-shows-layer-types"
    else
        echo "FAIL explain-shows-layer-types:"
        sed 's/^/    /' "$tmp/explain.out" | head -8
        fails=$((fails + 1))
    fi
    # a one-type profile for a two-type model: refused, naming the file
    e="$tmp/onetype"
    mkdir -p "$e"
    cp "$d"/*.json "$e"/
    cp "$d/computation_profiling_fp32_gpt2-tiny_all.json" "$e/computation_profiling_fp32_t5-tiny_all.json"
    cp "$d/memory_profiling_fp32_gpt2-tiny_all.json" "$e/memory_profiling_fp32_t5-tiny_all.json"
    expect_fail one-type-profile "memory_profiling_fp32_t5-tiny_all.json: 1 layer type\\(s\\) profiled" -- \
        search --model t5-tiny --seq 32 -n 2 --memory 2 --profile-dir "$e" --global-batch 4 --options "$d/opts.json"
else
    echo "FAIL: profiling t5 for the search"
    fails=$((fails + 1))
fi

cli_done
