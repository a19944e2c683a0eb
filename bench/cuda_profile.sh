#!/usr/bin/env bash
# Where a GPT-2 124M training step's GPU time goes, and what each backend-side optimisation is worth, in ONE
# device call: builds with -DGV_CUDA=ON, runs the CUDA tests, then
#  - profiles 20 steps at B=16 and B=64 with GV_CUDA_PROFILE=1 (per-op GPU time by CUDA events, printed as
#    "gv-prof" lines when the backend is freed; divide by the number of steps for ms per step),
#  - A/B runs at B=16 and B=64: everything on, everything off, and one switch off at a time
#    (GV_CUDA_LAZY_ZERO, GV_CUDA_BGRAD, GV_CUDA_CE_ONEPASS), median ms/step of steps 6-30.
# usage (GPU machine, repo root): bench/cuda_profile.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out"
source bench/build_cuda.sh
ctest --test-dir build-cuda -L cuda --output-on-failure >"$out/cuda_tests.log" 2>&1
grep -E "tests passed|tests failed|Failed|FAIL|comparisons" "$out/cuda_tests.log" | head -20

train() { # B steps metrics-file
    ./build-cuda/galvatron train --backend cuda --model gpt2-124m --seq 1024 --global-batch "$1" --steps "$2" \
        --warmup 5 --eval-every 0 --quiet --metrics "$3"
}
for B in 16 64; do
    GV_CUDA_PROFILE=1 train $B 20 "$out/prof_B$B.jsonl" >/dev/null 2>"$out/prof_B$B.txt"
    grep "gv-prof" "$out/prof_B$B.txt" | head -45
done
median() {
    python3 -c "import json,sys,statistics as s; r=[json.loads(l) for l in open(sys.argv[1])];" \
        "st=[x['step_ms'] for x in r if 'step' in x and not x.get('final')][5:]; print(f'{s.median(st):.2f}')" "$1"
}
ab() { # tag B env...
    local tag=$1 B=$2
    shift 2
    env "$@" ./build-cuda/galvatron train --backend cuda --model gpt2-124m --seq 1024 --global-batch "$B" \
        --steps 30 --warmup 5 --eval-every 0 --quiet --metrics "$out/ab_${tag}_B$B.jsonl" >/dev/null 2>&1
    echo "ab B=$B $tag ms/step $(median "$out/ab_${tag}_B$B.jsonl")"
}
for B in 16 64; do
    ab all_on $B GV_X=1
    ab all_off $B GV_CUDA_LAZY_ZERO=0 GV_CUDA_BGRAD=0 GV_CUDA_CE_ONEPASS=0
    ab no_lazy_zero $B GV_CUDA_LAZY_ZERO=0
    ab no_bgrad $B GV_CUDA_BGRAD=0
    ab no_ce_onepass $B GV_CUDA_CE_ONEPASS=0
done
