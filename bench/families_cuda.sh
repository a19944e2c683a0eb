#!/usr/bin/env bash
# BERT, ViT and T5 on one GPU (not run in CI): builds with -DGV_CUDA=ON, runs the CUDA op tests (the exact GELU
# among them), then trains the tiny presets on cuda and on cpu (same data and initial weights: the loss
# curves agree to bf16 precision) and a few steps of bert-base (T=128) and vit-base / vit-huge (224x224)
# with --metrics, for their step time and memory.
# usage (on the GPU machine, from the repo root): bench/families_cuda.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out"
source bench/build_cuda.sh
if [ "${GV_BENCH_NO_TESTS:-0}" != 1 ]; then # GV_BENCH_NO_TESTS=1: the CUDA tests ran before in the call
    ctest --test-dir build-cuda -L cuda --output-on-failure 2>&1 | tail -15 | tee "$out/cuda_tests.log"
fi
gv=build-cuda/galvatron
run() { # run TAG ARGS...: one training run, its summary lines into the log and on stdout
    local tag=$1
    shift
    echo "== $tag: $*"
    "$gv" train "$@" --quiet 2>&1 | tail -2 | tee "$out/$tag.log"
}
run bert-tiny-cpu --model bert-tiny --steps 100 --global-batch 16 --seq 64 --eval-every 50
run bert-tiny-cuda --model bert-tiny --backend cuda --steps 100 --global-batch 16 --seq 64 --eval-every 50
run vit-tiny-cpu --model vit-tiny --steps 80 --global-batch 16 --eval-every 40
run vit-tiny-cuda --model vit-tiny --backend cuda --steps 80 --global-batch 16 --eval-every 40
run bert-base-cuda --model bert-base --backend cuda --steps 30 --global-batch 32 --seq 128 --eval-every 0 \
    --metrics "$out/bert_base.jsonl"
run vit-base-cuda --model vit-base --backend cuda --steps 30 --global-batch 64 --eval-every 0 \
    --metrics "$out/vit_base.jsonl"
run t5-tiny-cpu --model t5-tiny --steps 60 --global-batch 16 --seq 32 --eval-every 30
run t5-tiny-cuda --model t5-tiny --backend cuda --steps 60 --global-batch 16 --seq 32 --eval-every 30
run t5-small-cuda --model t5-small --backend cuda --steps 20 --global-batch 32 --seq 128 --eval-every 0 \
    --metrics "$out/t5_small.jsonl"
run vit-huge-cuda --model vit-huge --backend cuda --steps 10 --global-batch 32 --eval-every 0 \
    --metrics "$out/vit_huge.jsonl"
# T5 on two ranks sharing the GPU (mpi), pipelined across the encoder/decoder boundary, vs the one-rank run
run t5-tiny-cuda-pp2 --model t5-tiny --backend cuda -n 2 --pp 2 --steps 60 --global-batch 16 --seq 32 \
    --eval-every 30
