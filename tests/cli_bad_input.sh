#!/usr/bin/env bash
# Bad input through the CLI: each case must exit non-zero with exactly one line on stderr that names the
# file (or flag) and the problem, and must not change any existing checkpoint.
# usage: cli_bad_input.sh GALVATRON_BINARY SOURCE_DIR
set -u
source "$(dirname "$0")/lib_cli.sh" "$1" "$2" cli_bad_input


small=(train --quiet --steps 4 --global-batch 2 --seq 16 --eval-every 0)

# A good checkpoint to protect.
"$gv" "${small[@]}" --out "$tmp/ckpt" --save-every 2 >/dev/null 2>&1 || { echo "FAIL: could not train"; exit 1; }
good="$tmp/ckpt/step-000002"
sums_before=$(cd "$tmp/ckpt" && find . -type f | sort | xargs md5sum)

# Model files.
printf '{"arch": "gpt2", "n_layer": 2,' >"$tmp/malformed.json"
expect_fail malformed-json "malformed.json: malformed JSON" -- "${small[@]}" --model "$tmp/malformed.json"
printf '{"arch": "gpt2", "n_layer": 2, "n_embd": 64, "vocab": 512, "max_seq": 64}' >"$tmp/incomplete.json"
expect_fail incomplete-json "incomplete.json: missing field 'n_head'" -- "${small[@]}" --model "$tmp/incomplete.json"
GV_HOST_REDIST=maybe expect_fail host-redist-env "GV_HOST_REDIST 'maybe': expected on, off, 1 or 0" -- "${small[@]}"
printf '{"arch": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 5, "vocab": 512, "max_seq": 64}' >"$tmp/indiv.json"
expect_fail indivisible-heads "indiv.json: n_embd 64 is not divisible by n_head 5" -- "${small[@]}" --model "$tmp/indiv.json"
printf '{"arch": "gpt2", "n_layers": 2}' >"$tmp/typo.json"
expect_fail unknown-field "typo.json: unknown field 'n_layers'" -- "${small[@]}" --model "$tmp/typo.json"
printf '{"arch": "mamba", "n_layer": 2}' >"$tmp/arch.json"
expect_fail unknown-arch "arch.json: field 'arch': unknown value 'mamba'" -- "${small[@]}" --model "$tmp/arch.json"
printf '{"arch": "vit", "n_layer": 2, "n_embd": 32, "n_head": 4, "vocab": 10}' >"$tmp/vit.json"
expect_fail vit-no-image "vit.json: a vit model needs 'image_size' and 'patch_size'" -- "${small[@]}" --model "$tmp/vit.json"
printf '{"arch": "vit", "n_layer": 2, "n_embd": 32, "n_head": 4, "vocab": 10, "image_size": 20, "patch_size": 8}' >"$tmp/vit2.json"
expect_fail vit-patch "vit image_size 20 must be a positive multiple of patch_size 8" -- "${small[@]}" --model "$tmp/vit2.json"
printf '{"arch": "bert", "n_layer": 2, "n_embd": 32, "n_head": 4, "vocab": 10, "max_seq": 16, "mask_token": 10}' >"$tmp/bert.json"
expect_fail bert-mask "bert.json: bert needs type_vocab >= 1 .got 2. and mask_token in .0, 10. .got 10." -- "${small[@]}" --model "$tmp/bert.json"
expect_fail missing-model-file "nope.json: cannot open model file" -- "${small[@]}" --model "$tmp/nope.json"
expect_fail unknown-preset "unknown model preset 'gpt5-huge'" -- "${small[@]}" --model gpt5-huge

# Data.
expect_fail missing-data "missing.bin" -- "${small[@]}" --data "$tmp/missing.bin"
# perl is in every Debian base system (perl-base); python may not be.
perl -e 'print pack("l<256", 12345, 1, 100, (0) x 253), "\0\0" x 100' >"$tmp/magic.bin"
perl -e 'print pack("l<256", 20240520, 1, 100, (0) x 253), "\0\0" x 60' >"$tmp/short.bin"
expect_fail shard-magic "magic.bin.*magic" -- "${small[@]}" --data "$tmp/magic.bin"
expect_fail shard-size "short.bin.*100 tokens" -- "${small[@]}" --data "$tmp/short.bin"

# Checkpoints: truncated, corrupt, of another model, wrong shapes for --init-from.
cp -r "$good" "$tmp/trunc"
head -c 3000 "$good/model.safetensors" >"$tmp/trunc/model.safetensors"
expect_fail truncated-ckpt "trunc/model.safetensors" -- "${small[@]}" --resume "$tmp/trunc"
cp -r "$good" "$tmp/corrupt"
printf '\x20\x00\x00\x00\x00\x00\x00\x00{"a": [1, 2' >"$tmp/corrupt/optimizer.safetensors"
expect_fail corrupt-ckpt "corrupt/optimizer.safetensors" -- "${small[@]}" --resume "$tmp/corrupt"
expect_fail other-model-ckpt "step-000002/model.safetensors: .*another model" -- "${small[@]}" --model llama-tiny --resume "$good"
"$gv" train --quiet --steps 1 --global-batch 2 --seq 16 --eval-every 0 --layers 1 --model "$2/tests/models/gpt2-wide.json" \
    --out "$tmp/wide" >/dev/null 2>&1 || { echo "FAIL: could not train the wide model"; fails=$((fails + 1)); }
expect_fail wrong-shape "wide/step-000001/model.safetensors: tensor 'wte.weight'.*shape" -- "${small[@]}" \
    --init-from "$tmp/wide/step-000001/model.safetensors"
expect_fail resume-done "step-000002: checkpoint is at step 2" -- "${small[@]}" --steps 2 --resume "$good"

# Flags.
expect_fail bad-int "--steps 'ten'" -- train --steps ten
expect_fail unknown-option "unknown option '--bogus'" -- train --bogus 1
expect_fail micro-batches "--micro-batches 3: must divide --global-batch 2" -- "${small[@]}" --micro-batches 3
expect_fail seq-too-long "--seq 4096: must be in \[1, 128\]" -- "${small[@]}" --seq 4096
expect_fail unknown-backend "backend 'tpu'" -- "${small[@]}" --backend tpu

# Parallel plans are checked before any rank starts.
expect_fail tp-kv-heads "plan: layer 0: tp 4 does not divide n_kv_head 2" -- "${small[@]}" --model llama-tiny -n 4 --tp 4
expect_fail tp-world "plan: layer 0: tp 2 does not divide the 3 ranks of a stage" -- "${small[@]}" -n 3 --tp 2
expect_fail dp-batch "dp 4 does not divide the micro-batch of 2 sequences" -- "${small[@]}" -n 4
expect_fail zero-alone "zero1 needs a data-parallel group larger than 1" -- "${small[@]}" -n 2 --tp 2 --dp-type zero1
expect_fail ulysses-seq "ulysses degree 2 does not divide the sequence length 15" -- "${small[@]}" -n 2 --tp 2 --sp ulysses --seq 15
expect_fail sp-mode "--sp 'ring': expected none, megatron or ulysses" -- "${small[@]}" --sp ring
expect_fail vocab-tp "--vocab-tp 4: must be 1 or equal to --tp 2" -- "${small[@]}" -n 2 --tp 2 --vocab-tp 4
expect_fail vocab-rows "vocab: tp 4 leaves rank 3 \(rows 480..639\) without real tokens" -- "${small[@]}" \
    --model "$2/tests/models/gpt2-padded.json" -n 4 --tp 4 --vocab-tp 4 --global-batch 4
expect_fail out-dir "--out $tmp/missing/run: cannot create the output directory" -- "${small[@]}" --out "$tmp/missing/run"

# A job whose rank count differs from -n is rejected (every rank says so, then the job is aborted).
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout 60 mpirun --allow-run-as-root --oversubscribe \
    --bind-to none -n 2 "$gv" "${small[@]}" -n 4 >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc -eq 0 ] || ! grep -q -e "-n 4: the job has 2 ranks" "$tmp/err"; then
    echo "FAIL world-mismatch: rc=$rc"
    head -3 "$tmp/err"
    fails=$((fails + 1))
else
    echo "ok   world-mismatch: $(grep -m1 -e '-n 4' "$tmp/err")"
fi

expect_fail resume-missing-ranks "--resume: cannot read $tmp/nope/model.safetensors" -- "${small[@]}" -n 2 \
    --resume "$tmp/nope"

# Plan files given to train: impossible plans are refused with the reason, before launch.
printf '{"pp_deg": 2, "tp_sizes_enc": "1,1,1,1", "tp_consecutive_flags": "1,1,1,1", "dp_types_enc": "0,0,0,0",
  "global_bsz": 8, "chunks": 2, "pp_division": "2,1", "world_size": 4}' >"$tmp/div.json"
expect_fail plan-division "div.json: pp_division sums to 3 layers, the model has 4" -- \
    "${small[@]}" --layers 4 --plan "$tmp/div.json"
sed 's/"chunks": 2/"chunks": 2, "pipeline_type": "zigzag"/; s/"2,1"/"2,2"/' "$tmp/div.json" >"$tmp/bad.json"
expect_fail plan-unknown "bad.json: .*'pipeline_type'.*" -- "${small[@]}" --layers 4 --plan "$tmp/bad.json"

# Plans.
expect_fail plan-world "galvatron_config_example.json: layer 1: zero3 needs a data-parallel group larger than 1" -- \
    plan check "$2/examples/plans/galvatron_config_example.json" --model gpt2-tiny --layers 4 -n 4
expect_fail plan-layers "galvatron_config_example.json: field 'tp_sizes_enc' has 4 entries, expected 2" -- \
    plan check "$2/examples/plans/galvatron_config_example.json" --model gpt2-tiny -n 8
"$gv" plan check "$2/examples/plans/galvatron_config_example.json" --model gpt2-tiny --layers 4 -n 8 >"$tmp/out" 2>&1 &&
    grep -q "^vocab .* zero3" "$tmp/out" || { echo "FAIL plan-table"; cat "$tmp/out"; fails=$((fails + 1)); }

sums_after=$(cd "$tmp/ckpt" && find . -type f | sort | xargs md5sum)
if [ "$sums_before" != "$sums_after" ]; then
    echo "FAIL: the good checkpoint changed"
    fails=$((fails + 1))
fi
[ -z "$(find "$tmp" -name '*.tmp.*')" ] || { echo "FAIL: temp files left behind"; fails=$((fails + 1)); }
cli_done
