#!/usr/bin/env bash
# GPT-2 124M on one GPU: galvatron (CUDA backend) vs the PyTorch reference (bench/torch_gpt2.py), in ONE run:
# builds with -DGV_CUDA=ON, runs the CUDA op tests, trains 50 steps at B=16 and B=64 (T=1024) with each, and
# prints a side-by-side table (tokens/s, ms/step, MFU, peak GPU memory by nvidia-smi and by the allocator).
# usage (on the GPU machine, from the repo root): bench/gpt2_cuda.sh [OUT_DIR]
# Environment: GV_BENCH_STEPS (default 50) steps per run; GV_BENCH_ATTN: the GV_CUDA_ATTN values galvatron
# runs with, e.g. "own cudnn" (default: one run with the built-in default); GV_BENCH_BIN: a folder with
# already built galvatron (the build is then skipped); GV_BENCH_NO_TESTS=1 skips the CUDA tests; GV_BENCH_B:
# the batch sizes (default "16 64").
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out"
steps=${GV_BENCH_STEPS:-50}
impls=${GV_BENCH_ATTN:-default}
batches=${GV_BENCH_B:-16 64}
bin=${GV_BENCH_BIN:-build-cuda}
[ -n "${GV_BENCH_BIN:-}" ] || source bench/build_cuda.sh
if [ "${GV_BENCH_NO_TESTS:-0}" != 1 ]; then
    ctest --test-dir build-cuda -L cuda --output-on-failure 2>&1 | tail -15 | tee "$out/cuda_tests.log"
fi

# peak GPU memory of a command by nvidia-smi sampling (MiB, includes the CUDA context)
run_peak() {
    local tag=$1
    shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/smi_$tag.log" 2>/dev/null &
    local smi=$!
    "$@"
    local rc=$?
    kill $smi 2>/dev/null
    wait $smi 2>/dev/null
    echo "$tag peak_smi_mib $(sort -n "$out/smi_$tag.log" | tail -1)" >>"$out/peaks.txt"
    return $rc
}
: >"$out/peaks.txt"
for B in $batches; do
    for impl in $impls; do
        attn=()
        [ "$impl" = default ] || attn=(GV_CUDA_ATTN="$impl")
        run_peak gv_${impl}_B$B env "${attn[@]}" "./$bin/galvatron" train --backend cuda --model gpt2-124m \
            --seq 1024 --global-batch "$B" --steps "$steps" --warmup 5 --eval-every 0 --quiet \
            --metrics "$out/gv_${impl}_B$B.jsonl" 2>&1 | tail -3
    done
done
run_peak torch python3 bench/torch_gpt2.py --batch $batches --seq 1024 --steps "$steps" | tee "$out/torch.jsonl"
GV_BENCH_BATCHES="$batches" python3 - "$out" $impls <<'PY'
import json, os, sys, statistics
out = sys.argv[1]
peaks = dict((l.split()[0], float(l.split()[2])) for l in open(out + "/peaks.txt") if len(l.split()) == 3)
P, L, C, T = 124475904, 12, 768, 1024  # gpt2-124m parameters with wpe, tied, as counted by the torch script
fpt = 6 * P + 12 * L * C * T
torch_rows = {r["batch"]: r for r in map(json.loads, open(out + "/torch.jsonl")) if r.get("impl") == "pytorch"}
print("| B | impl | ms/step | tokens/s | MFU | peak GPU MiB (nvidia-smi) | allocator GiB | ratio vs PyTorch |")
print("|---|---|---|---|---|---|---|---|")
for B in map(int, os.environ["GV_BENCH_BATCHES"].split()):
    t = torch_rows.get(B)
    for impl in sys.argv[2:]:
        try:
            rows = [json.loads(l) for l in open(f"{out}/gv_{impl}_B{B}.jsonl")]
        except OSError:
            print(f"| {B} | galvatron ({impl}) | no metrics | | | | | |")
            continue
        steps = [r for r in rows if "step" in r and not r.get("final")]
        final = [r for r in rows if r.get("final")]
        ms = statistics.median(r["step_ms"] for r in steps[10:])
        tok = B * T / (ms / 1e3)
        mem = sum(final[0]["memory_bytes"].values()) / 2**30 if final else float("nan")
        ratio = tok / t["tokens_per_s"] if t else float("nan")
        name = "galvatron" if impl == "default" else f"galvatron (attention: {impl})"
        print(f"| {B} | {name} | {ms:.1f} | {tok:,.0f} | {tok * fpt / 989.4e12:.1%} | {peaks.get(f'gv_{impl}_B{B}', float('nan')):.0f} | {mem:.2f} | {ratio:.2f}x |")
    if t:
        print(f"| {B} | pytorch (compile, bf16, SDPA, fused AdamW) | {t['ms_per_step']:.1f} | {t['tokens_per_s']:,} | {t['mfu']:.1%} | {peaks.get('torch', float('nan')):.0f} (both B) | {t['peak_mem_gib']:.2f} | 1.00x |")
PY
