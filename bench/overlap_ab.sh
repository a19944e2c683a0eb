#!/usr/bin/env bash
# The A/B of issue #7's overlap (data-parallel communication during compute) on a machine with two GPUs
# (kind nvidia-h200-x2). NOT RUN YET: written in a session without a GPU, so every number it prints is
# still to be measured; nothing in docs/ quotes it.
#
# What it does, in one call (about 10 minutes: the device tool's per-command limit; GV_OVERLAP_PARTS, a comma
# list of ddp, zero1, zero2, zero3, 1f1b, gpipe, runs a subset, e.g. over two calls):
#  0. builds build-cuda (bench/build_cuda.sh) and runs test_cuda_nccl (the nonblocking requests on device
#     buffers, world size 1).
#  1. GPT-2 124M, dp 2 through nccl, T=1024, B=16 per GPU, 30 steps, --overlap on / off / on / off (the same
#     binary, alternating, so drift of the machine shows as on-on or off-off differences): median step time
#     (first step left out) and the last loss of each run. on and off run the same collectives in the same
#     buckets, so their losses must be equal; the step times are the A/B.
#  2. The same with ZeRO-1, ZeRO-2 and ZeRO-3 (--dp-type zero1 / zero2 / zero3; ZeRO-3 with overlap gathers
#     the next layer into a second slot while the current one computes).
#  3. Pipelines over the 2 GPUs (pp 2, 1F1B and GPipe, 8 micro-batches): with overlap the stage messages are
#     nonblocking on streams of their own; without, blocking (both send the device tensors in bf16; the
#     host F32 path is GV_HOST_REDIST=1). Same losses expected; the step times are the A/B.
# usage (GPU machine, repo root): bench/overlap_ab.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-overlap}}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "$ngpu" -lt 2 ]; then
    echo "overlap_ab.sh: needs 2 GPUs, this machine has $ngpu" >&2
    exit 1
fi
source bench/build_cuda.sh
gv=./build-cuda/galvatron
ctest --test-dir build-cuda -R test_cuda_nccl --output-on-failure >"$out/cuda_nccl.log" 2>&1
grep -E "tests passed|Failed|request result" "$out/cuda_nccl.log" | head -10

median() { # median step_ms of a metrics file, the first step left out; and the last loss
    python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [r for r in rows if "step_ms" in r and "loss" in r]
ms = sorted(r["step_ms"] for r in steps[1:])
print("median step %.2f ms over %d steps, last loss %.6f" % (ms[len(ms) // 2], len(ms), steps[-1]["loss"]))
EOF
}

g2=(--backend cuda --model gpt2-124m --seq 1024 --global-batch 32 --steps 30 --warmup 5 --eval-every 0
    --quiet -n 2 --comm nccl)
parts=${GV_OVERLAP_PARTS:-ddp,zero1,zero2,zero3,1f1b,gpipe}
on() { [[ ",$parts," == *",$1,"* ]]; }
for dp in ddp zero1 zero2 zero3; do
    on "$dp" || continue
    for run in on1 off1 on2 off2; do
        ov=${run%?}
        m="$out/$dp-$run.jsonl"
        if $gv train "${g2[@]}" --dp-type "$dp" --overlap "$ov" --metrics "$m" >"$out/$dp-$run.log" 2>&1; then
            echo "$dp overlap $run: $(median "$m")"
        else
            echo "$dp overlap $run: failed: $(tail -1 "$out/$dp-$run.log")"
            break
        fi
    done
done
for sched in 1f1b gpipe; do
    on "$sched" || continue
    for run in on1 off1 on2 off2; do
        ov=${run%?}
        m="$out/pp2-$sched-$run.jsonl"
        if $gv train "${g2[@]}" --pp 2 --schedule "$sched" --micro-batches 8 --overlap "$ov" --metrics "$m" \
            >"$out/pp2-$sched-$run.log" 2>&1; then
            echo "pp2 $sched overlap $run: $(median "$m")"
        else
            echo "pp2 $sched overlap $run: failed: $(tail -1 "$out/pp2-$sched-$run.log")"
            break
        fi
    done
done
