#!/usr/bin/env bash
# Where a GPT-2 124M training step's GPU time goes, and what each backend-side optimisation is worth, in ONE
# device call: builds with -DGV_CUDA=ON, runs the CUDA tests (GV_BENCH_NO_TESTS=1 skips them), then
#  - the op benchmarks of test_cuda_ops (GV_CUDA_BENCH=2: attention, matmuls, the MLP pair fused/unfused,
#    memory-bound ops; GV_CUDA_BENCH=attn: attention, own kernels vs cuDNN),
#  - profiles 20 steps at B=64 with GV_CUDA_PROFILE=1 (per-op GPU time by CUDA events, "gv-prof" lines
#    printed when the backend is freed; totals over 19 steps),
#  - A/B runs (median ms/step of steps 6-30): everything on, everything off, one switch off at a time
#    (GV_CUDA_LAZY_ZERO, GV_CUDA_CE_ONEPASS, GV_CUDA_LT_TUNE), GV_CUDA_BGRAD=1, the own attention kernels
#    instead of cuDNN (GV_CUDA_ATTN=own), and the extra variants named
#    in GV_AB_EXTRA ("tag:VAR=value[,VAR=value] ..." run at both batch sizes).
# Everything lands in OUT_DIR/profile.tar.gz.
# usage (GPU machine, repo root): bench/cuda_profile.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out/prof"
log=$out/prof
source bench/build_cuda.sh
if [ "${GV_BENCH_NO_TESTS:-0}" != 1 ]; then
    ctest --test-dir build-cuda -L cuda --output-on-failure >"$log/cuda_tests.log" 2>&1
    grep -E "tests passed|tests failed|FAIL" "$log/cuda_tests.log" | head -20
fi
GV_CUDA_BENCH=2 ./build-cuda/test_cuda_ops >"$log/op_bench.log" 2>&1
grep BENCH "$log/op_bench.log"
GV_CUDA_BENCH=attn ./build-cuda/test_cuda_ops >"$log/attn_bench.log" 2>&1 # own kernels vs cuDNN
grep BENCH "$log/attn_bench.log"

train() { # B steps metrics-file [env...]
    local B=$1 steps=$2 m=$3
    shift 3
    env "$@" ./build-cuda/galvatron train --backend cuda --model gpt2-124m --seq 1024 --global-batch "$B" \
        --steps "$steps" --warmup 5 --eval-every 0 --quiet --metrics "$m"
}
train 64 20 "$log/prof_B64.jsonl" GV_CUDA_PROFILE=1 >/dev/null 2>"$log/prof_B64.txt"
grep "gv-prof" "$log/prof_B64.txt" | head -24

median() {
    python3 -c 'import json, sys, statistics as s
r = [json.loads(l) for l in open(sys.argv[1])]
st = [x["step_ms"] for x in r if "step" in x and not x.get("final")][5:]
print(f"{s.median(st):.2f}")' "$1"
}
ab() { # tag B env...
    local tag=$1 B=$2
    shift 2
    train "$B" 30 "$log/ab_${tag}_B$B.jsonl" "$@" >/dev/null 2>&1
    echo "ab B=$B $tag ms/step $(median "$log/ab_${tag}_B$B.jsonl")"
}
for B in 64 16; do
    ab all_on $B GV_X=1
    ab all_off $B GV_CUDA_LAZY_ZERO=0 GV_CUDA_CE_ONEPASS=0 GV_CUDA_LT_TUNE=0
    ab attn_own $B GV_CUDA_ATTN=own
    if [ $B = 64 ]; then
        ab no_lazy_zero $B GV_CUDA_LAZY_ZERO=0
        ab no_ce_onepass $B GV_CUDA_CE_ONEPASS=0
        ab no_lt_tune $B GV_CUDA_LT_TUNE=0
        ab bgrad_on $B GV_CUDA_BGRAD=1
    fi
    for x in ${GV_AB_EXTRA:-}; do
        IFS=, read -r -a vars <<<"${x#*:}"
        ab "${x%%:*}" $B "${vars[@]}"
    done
done
tar czf "$out/profile.tar.gz" -C "$out" prof
