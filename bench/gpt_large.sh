#!/usr/bin/env bash
# The larger-model check on one GPU: a 24-layer, C=2048 GPT (1.3B, bench/gpt_1p3b.json) at B=8, T=1024 for
# 30 steps with galvatron (--backend cuda) and with the PyTorch reference (bench/torch_gpt2.py, same shape),
# side by side. Also runs the CUDA test suite (op tests and the bf16-vs-fp32 training curve).
# usage (GPU machine, repo root): bench/gpt_large.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out"
source bench/build_cuda.sh
if [ "${GV_BENCH_NO_TESTS:-0}" != 1 ]; then # GV_BENCH_NO_TESTS=1: skip the tests (run beside another bench)
    ctest --test-dir build-cuda -L cuda --output-on-failure >"$out/cuda_tests.log" 2>&1
    grep -E "tests passed|Failed|worst relative" "$out/cuda_tests.log"
    grep -A1 "step 20:" "$out/cuda_tests.log" | head -2
fi
./build-cuda/galvatron train --backend cuda --model bench/gpt_1p3b.json --seq 1024 --global-batch 8 --steps 30 \
    --warmup 5 --eval-every 0 --quiet --metrics "$out/gv_1p3b.jsonl" 2>&1 | tail -2
python3 bench/torch_gpt2.py --batch 8 --seq 1024 --steps 30 --layers 24 --hidden 2048 --heads 16 | tee "$out/torch_1p3b.jsonl"
python3 - "$out" <<'PY'
import json, sys, statistics
out = sys.argv[1]
rows = [json.loads(l) for l in open(out + "/gv_1p3b.jsonl")]
steps = [r for r in rows if "step" in r and not r.get("final")]
final = [r for r in rows if r.get("final")][0]
t = [json.loads(l) for l in open(out + "/torch_1p3b.jsonl") if l.startswith("{")][0]
ms = statistics.median(r["step_ms"] for r in steps[10:])
tok = 8 * 1024 / (ms / 1e3)
P = t["params"]
fpt = 6 * P + 12 * 24 * 2048 * 1024
mem = sum(final["memory_bytes"].values()) / 2**30
print("| impl | ms/step | tokens/s | MFU | allocator GiB | ratio |")
print("|---|---|---|---|---|---|")
print(f"| galvatron | {ms:.1f} | {tok:,.0f} | {tok * fpt / 989.4e12:.1%} | {mem:.2f} | {tok / t['tokens_per_s']:.2f}x |")
print(f"| pytorch | {t['ms_per_step']:.1f} | {t['tokens_per_s']:,} | {t['mfu']:.1%} | {t['peak_mem_gib']:.2f} | 1.00x |")
PY
