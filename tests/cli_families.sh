#!/usr/bin/env bash
# The families beside GPT-2 and LLaMA through the CLI: `galvatron train --model bert-tiny` (masked LM on the
# built-in language), `--model vit-tiny` (the built-in image set; the sequence follows from the image) and
# `--model t5-tiny` (seq2seq; tp 2 x ZeRO-2, a pp 2 pipeline and Ulysses equal to one process), their
# presets in the models table, the metrics file, a 4-rank layer-wise run equal to one process, and that
# ViT learns (eval loss well under ln 16 = 2.77, the loss of guessing).
# usage: cli_families.sh GALVATRON_BINARY SOURCE_DIR
set -u
gv=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-families.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
check models "$gv" models >"$tmp/models"
check models-bert-base grep -q "bert-base .* 109.5M" "$tmp/models"
check models-vit-base grep -q "vit-base .* 86.6M" "$tmp/models"
check models-all test "$(grep -c -E '^(bert-(tiny|base|large)|vit-(tiny|base|large|huge)|t5-(tiny|small|base|large)) ' "$tmp/models")" -eq 11
check models-t5-small grep -q "t5-small .* 60.5M" "$tmp/models"

check bert-train "$gv" train --model bert-tiny --steps 20 --global-batch 8 --seq 32 --eval-every 10 \
    --metrics "$tmp/bert.jsonl" >"$tmp/bert.out" 2>"$tmp/bert.err"
check bert-metrics test "$(grep -c '"step": ' "$tmp/bert.jsonl")" -eq 20
check bert-summary grep -q "trained 20 steps: loss 6\.[0-9]* -> [0-9.]*, eval loss" "$tmp/bert.out"

check t5-train "$gv" train --model t5-tiny --steps 10 --global-batch 8 --seq 32 --eval-every 5 \
    --metrics "$tmp/t5.jsonl" >"$tmp/t5.out" 2>"$tmp/t5.err"
check t5-metrics test "$(grep -c '"step": ' "$tmp/t5.jsonl")" -eq 10
"$gv" train --model t5-tiny -n 4 --tp 2 --vocab-tp 2 --dp-type zero2 --steps 3 --global-batch 8 --seq 32 --eval-every 0 \
    --quiet >"$tmp/t5-4.out"
"$gv" train --model t5-tiny --steps 3 --global-batch 8 --seq 32 --eval-every 0 --quiet >"$tmp/t5-1.out"
check t5-4ranks-equals-single test "$(head -1 "$tmp/t5-4.out" | cut -d, -f1)" = "$(head -1 "$tmp/t5-1.out" | cut -d, -f1)"
"$gv" train --model t5-tiny -n 4 --pp 2 --tp 2 --schedule 1f1b --micro-batches 2 --steps 3 --global-batch 8 --seq 32 \
    --eval-every 0 --quiet >"$tmp/t5-pp.out"
check t5-pp2-equals-single test "$(head -1 "$tmp/t5-pp.out" | cut -d, -f1)" = "$(head -1 "$tmp/t5-1.out" | cut -d, -f1)"
"$gv" train --model t5-tiny -n 2 --tp 2 --sp ulysses --steps 3 --global-batch 8 --seq 32 --eval-every 0 --quiet \
    >"$tmp/t5-u.out"
check t5-ulysses-equals-single test "$(head -1 "$tmp/t5-u.out" | cut -d, -f1)" = "$(head -1 "$tmp/t5-1.out" | cut -d, -f1)"
check vit-train "$gv" train --model vit-tiny --steps 80 --global-batch 16 --eval-every 40 \
    --metrics "$tmp/vit.jsonl" >"$tmp/vit.out" 2>"$tmp/vit.err"
check vit-metrics test "$(grep -c '"step": ' "$tmp/vit.jsonl")" -eq 80
# eval loss at step 80 below 2.0 (measured 1.18 with the default seed)
check vit-learns awk '/trained 80 steps/ { gsub(",", "", $0); for (i = 1; i <= NF; i++) if ($i == "eval") v = $(i + 2) } END { exit !(v != "" && v + 0 < 2.0) }' "$tmp/vit.out"
check vit-seq-refused sh -c "! '$gv' train --model vit-tiny --seq 32 --steps 1 2>'$tmp/vit-seq.err'"
check vit-seq-message grep -q "max_seq" "$tmp/vit-seq.err"

# 4 ranks: tp 2 with Megatron-SP and vocab tp over 2 x ZeRO-1: the same losses as one process.
"$gv" train --model vit-tiny -n 4 --tp 2 --sp megatron --vocab-tp 2 --dp-type zero1 --steps 10 --global-batch 8 \
    --eval-every 0 --quiet >"$tmp/vit4.out"
"$gv" train --model vit-tiny --steps 10 --global-batch 8 --eval-every 0 --quiet >"$tmp/vit1.out"
check vit-4ranks-equals-single test "$(head -1 "$tmp/vit4.out" | cut -d, -f1)" = "$(head -1 "$tmp/vit1.out" | cut -d, -f1)"
"$gv" train --model bert-tiny -n 4 --tp 2 --sp ulysses --dp-type zero3 --steps 10 --global-batch 8 --seq 32 \
    --eval-every 0 --quiet >"$tmp/bert4.out"
"$gv" train --model bert-tiny --steps 10 --global-batch 8 --seq 32 --eval-every 0 --quiet >"$tmp/bert1.out"
check bert-4ranks-equals-single test "$(head -1 "$tmp/bert4.out" | cut -d, -f1)" = "$(head -1 "$tmp/bert1.out" | cut -d, -f1)"
# --plan auto on 2 ranks: the hardware and the model are profiled, the search picks a plan, it trains.
# T5 is profiled with two layer types (encoder, decoder).
for m in bert-tiny vit-tiny t5-tiny; do
    seq=32
    [ $m = vit-tiny ] && seq=10
    check "$m-plan-auto" "$gv" train --model $m --plan auto -n 2 --steps 3 --global-batch 8 --seq $seq --eval-every 0 \
        --profile-dir "$tmp/prof-$m" >"$tmp/auto-$m.out" 2>"$tmp/auto-$m.err"
    check "$m-plan-auto-searched" grep -q "^plan auto: predicted step [0-9.]* ms" "$tmp/auto-$m.err"
    check "$m-plan-auto-trained" grep -q "trained 3 steps" "$tmp/auto-$m.out"
done
# T5's profile for --plan auto has its two layer types (encoder, decoder) under Galvatron's per-type keys
t5p="$tmp/prof-t5-tiny"
check t5-profile-two-types grep -q '"layertype_1_sp"' "$t5p/memory_profiling_fp32_t5-tiny_all.json"
check t5-profile-runs grep -q '"layernum\[1,3\]_bsz1_seq32"' "$t5p/computation_profiling_fp32_t5-tiny_all.json"
echo "cli_families: $fails failure(s)"
[ $fails -eq 0 ]
