#!/usr/bin/env bash
# The 2-GPU bench of issue #7 (multi-GPU on NCCL), for a machine with two GPUs (kind nvidia-h200-x2).
# NOT RUN YET: it was written in a session that had one GPU only (NCCL refuses two ranks on one GPU), so
# every number it prints is still to be measured; nothing in docs/ quotes it.
#
# The device tool allows 10 minutes a command, so the work is split into parts, one device call each, chosen
# by GV_BENCH_PART (a comma list; default: all of them, for a machine without that limit):
#   tests      build + ctest -L cuda (~5 min)         dp        part 1 below (~5 min)
#   auto66     the 6.6B --plan auto + FSDP2 (~6 min)    grid66    the 6.6B grid without recompute (~6 min)
#   grid66ckpt the 6.6B grid with recompute (~7 min)    auto128   the 12.8B (40 x 5120) --plan auto, FSDP2
#   grid128    the 12.8B grid, with recompute           with full recompute (~8 min)
# Every part builds first (quick when build-cuda/ is there) and ends with the table of what its output folder
# holds; the grid parts profile into their folder first when the auto part's profiles are not there.
# What it does (about 40 minutes in all; GV_BENCH_SMALL=1 = tests,dp):
#  0. builds build-cuda (bench/build_cuda.sh) and runs the CUDA tests (ctest -L cuda: test_cuda_nccl,
#     test_cuda_plans, which on two GPUs also trains dp2 through nccl against the 1-GPU run).
#  1. GPT-2 124M, pure data parallelism at B=16 per GPU (T=1024, 50 steps): galvatron on 1 GPU, on 2 GPUs
#     through nccl, on 2 GPUs through mpi (device data staged through the host, for the price of staging),
#     and PyTorch DDP (bench/torch_gpt2.py --mode ddp, torchrun) on 1 and 2 GPUs. Scaling efficiency =
#     tokens/s on 2 GPUs / (2 x tokens/s on 1).
#  2. The 6.6B GPT (bench/gpt_6p6b.json: 32 layers, C=4096, T=4096, vocab 32000), global batch 8:
#     galvatron --plan auto (profiles the machine first, searches, trains 10 steps; its metrics' final record
#     has the predicted and the measured step time and memory), then the uniform-plan grid over 2 GPUs
#     (tp2, tp2 + Megatron-SP, pp2 1F1B, Ulysses 2, dp2, ZeRO-2 and ZeRO-3 over dp2, each with and without
#     recompute: 10 steps each; dp2 does not fit with AdamW and should fail with the allocator's out-of-memory
#     error), each plan's prediction from `galvatron explain` on the
#     profiles of the auto run beside its measurement, and PyTorch FSDP2 (--mode fsdp) at the same batch.
#  3. A table of everything (the last lines of the output, and summary.md in the output folder).
# usage (GPU machine, repo root): bench/nccl_2gpu.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-bench}}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "$ngpu" -lt 2 ]; then
    echo "nccl_2gpu.sh: needs 2 GPUs, this machine has $ngpu" >&2
    exit 1
fi
source bench/build_cuda.sh
gv=./build-cuda/galvatron
parts=${GV_BENCH_PART:-tests,dp,auto66,grid66,grid66ckpt,auto128,grid128}
[ "${GV_BENCH_SMALL:-0}" = 1 ] && parts=tests,dp
on() { [[ ",$parts," == *",$1,"* ]]; }

if on tests; then
    ctest --test-dir build-cuda -L cuda --output-on-failure >"$out/cuda_tests.log" 2>&1
    grep -E "tests passed|Failed|worst relative|^ok |^FAIL" "$out/cuda_tests.log" | head -40
fi

# ---- 1. GPT-2 124M data parallel, B=16 per GPU ----------------------------------------------------------
if on dp; then
    g2=(--backend cuda --model gpt2-124m --seq 1024 --steps 50 --warmup 5 --eval-every 0 --quiet)
    $gv train "${g2[@]}" --global-batch 16 --metrics "$out/gv124_1gpu.jsonl" 2>&1 | tail -1
    $gv train -n 2 --comm nccl "${g2[@]}" --global-batch 32 --metrics "$out/gv124_nccl.jsonl" 2>&1 | tail -1
    $gv train -n 2 --comm mpi --device 0 "${g2[@]}" --global-batch 32 --metrics "$out/gv124_mpi.jsonl" 2>&1 |
        tail -1
    python3 bench/torch_gpt2.py --batch 16 --seq 1024 --steps 50 | tee "$out/torch124_1gpu.jsonl"
    torchrun --standalone --nproc-per-node 2 bench/torch_gpt2.py --mode ddp --batch 16 --seq 1024 --steps 50 |
        tee "$out/torch124_ddp.jsonl"
fi

# ---- 2. the 6.6B and the 12.8B GPT -------------------------------------------------------------------------
# auto TAG MODEL STEPS: profile (into $out/profiles_TAG), search and train with --plan auto
auto() {
    local tag=$1 model=$2 steps=$3
    $gv train -n 2 --backend cuda --model "$model" --seq 4096 --global-batch 8 --steps "$steps" --warmup 2 \
        --eval-every 0 --quiet --plan auto --profile-dir "$out/profiles_$tag" --metrics "$out/gv${tag}_auto.jsonl" \
        >"$out/gv${tag}_auto.log" 2>&1 || echo "$tag auto: failed: $(tail -1 "$out/gv${tag}_auto.log")"
    tail -4 "$out/gv${tag}_auto.log"
}
# the uniform grid: name and GLOBAL-mode flags; a plan file of the same strategy for explain
grid=("tp2:--tp 2 --vocab-tp 2" "tp2-msp:--tp 2 --vocab-tp 2 --sp megatron"
      "pp2:--pp 2 --schedule 1f1b --micro-batches 8" "uly2:--tp 2 --sp ulysses" "dp2:"
      "zero2:--dp-type zero2" "zero3:--dp-type zero3")
# grid_runs TAG MODEL LAYERS STEPS CKPT(""|--ckpt): every grid plan trained, and explained on the profiles
grid_runs() {
    local tag=$1 model=$2 layers=$3 steps=$4 ck=$5 prof=$out/profiles_$1
    [ -d "$prof" ] || auto "$tag" "$model" 2 # the profiles for explain (this part's own call)
    for g in "${grid[@]}"; do
        name=${g%%:*}${ck:+-ckpt}
        flags=${g#*:}
        # shellcheck disable=SC2086
        timeout 900 $gv train -n 2 --backend cuda --model "$model" --seq 4096 --global-batch 8 --steps "$steps" \
            --warmup 2 --eval-every 0 --quiet $flags $ck --metrics "$out/gv${tag}_$name.jsonl" \
            >"$out/gv${tag}_$name.log" 2>&1 ||
            echo "$tag $name: failed: $(grep -v '^step' "$out/gv${tag}_$name.log" | tail -1)"
        python3 - "$name" "$flags $ck" "$out/plan_${tag}_$name.json" "$layers" <<'PY'
import json, sys
name, flags, path, layers = sys.argv[1], sys.argv[2].split(), sys.argv[3], int(sys.argv[4])
tp = int(flags[flags.index("--tp") + 1]) if "--tp" in flags else 1
pp = int(flags[flags.index("--pp") + 1]) if "--pp" in flags else 1
sp = flags[flags.index("--sp") + 1] if "--sp" in flags else "none"
m = int(flags[flags.index("--micro-batches") + 1]) if "--micro-batches" in flags else 1
vtp = tp if "--vocab-tp" in flags else 1
dpt = flags[flags.index("--dp-type") + 1] if "--dp-type" in flags else "ddp"
layer = {"tp": tp, "sp": sp, "dp_type": dpt, "ckpt": "--ckpt" in flags}
plan = {"format": "galvatron-c-plan/1", "world": 2, "pp": pp, "schedule": "1f1b", "global_batch": 8,
        "micro_batches": m, "vocab": {"tp": vtp, "sp": sp if vtp > 1 else "none", "dp_type": dpt},
        "layers": [layer] * layers}
json.dump(plan, open(path, "w"))
PY
        $gv explain "$out/plan_${tag}_$name.json" --model "$model" -n 2 --seq 4096 --profile-dir "$prof" \
            >"$out/explain_${tag}_$name.txt" 2>&1 ||
            echo "$tag $name: explain failed: $(tail -1 "$out/explain_${tag}_$name.txt")"
    done
}
fsdp() { # TAG LAYERS HIDDEN HEADS [--recompute]
    torchrun --standalone --nproc-per-node 2 bench/torch_gpt2.py --mode fsdp --batch 4 --seq 4096 --steps 8 \
        --warmup 3 --layers "$2" --hidden "$3" --heads "$4" --vocab 32000 --no-compile ${5:-} |
        tee "$out/torch$1_fsdp.jsonl"
}
if on auto66; then
    auto 66 bench/gpt_6p6b.json 10
    fsdp 66 32 4096 32
fi
on grid66 && grid_runs 66 bench/gpt_6p6b.json 32 10 ""
on grid66ckpt && grid_runs 66 bench/gpt_6p6b.json 32 10 --ckpt
if on auto128; then # the issue's reference: FSDP2 with full recompute
    auto 128 bench/gpt_12p8b.json 6
    fsdp 128 40 5120 40 --recompute
fi
on grid128 && grid_runs 128 bench/gpt_12p8b.json 40 6 --ckpt

# ---- 3. the table ------------------------------------------------------------------------------------------
python3 - "$out" <<'PY' | tee "$out/summary.md"
import glob, json, os, re, statistics, sys
out = sys.argv[1]

def gv(path, tokens_per_step):
    if not os.path.exists(path):
        return None
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    steps = [r for r in rows if "step" in r and not r.get("final")]
    final = [r for r in rows if r.get("final")]
    if not steps:
        return None
    ms = statistics.median(r["step_ms"] for r in steps[1:] or steps)
    f = final[0] if final else {}
    return {"ms": ms, "tok": tokens_per_step / (ms / 1e3), "loss": steps[-1]["loss"],
            "pred_ms": f.get("predicted_step_ms"), "mem_gib": sum(f.get("memory_bytes", {}).values()) / 2**30}

def torch(path):
    if not os.path.exists(path):
        return None
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    return rows[0] if rows else None

print("## GPT-2 124M, data parallel, B=16 per GPU, T=1024\n")
print("| run | GPUs | ms/step | tokens/s | scaling | last loss |")
print("|---|---|---|---|---|---|")
one = gv(f"{out}/gv124_1gpu.jsonl", 16 * 1024)
for name, path, n in [("galvatron", "gv124_1gpu", 1), ("galvatron nccl", "gv124_nccl", 2),
                      ("galvatron mpi (host staging)", "gv124_mpi", 2)]:
    r = gv(f"{out}/{path}.jsonl", 16 * 1024 * n)
    if r:
        sc = f"{r['tok'] / (n * one['tok']):.2f}" if one and n > 1 else "-"
        print(f"| {name} | {n} | {r['ms']:.1f} | {r['tok']:,.0f} | {sc} | {r['loss']:.4f} |")
t1, t2 = torch(f"{out}/torch124_1gpu.jsonl"), torch(f"{out}/torch124_ddp.jsonl")
for name, t, n in [("pytorch", t1, 1), ("pytorch DDP", t2, 2)]:
    if t:
        sc = f"{t['tokens_per_s'] / (2 * t1['tokens_per_s']):.2f}" if t1 and n > 1 else "-"
        print(f"| {name} | {n} | {t['ms_per_step']:.1f} | {t['tokens_per_s']:,} | {sc} | {t['final_loss']:.4f} |")

for tag, title in (("66", "GPT 6.6B (32 x 4096"), ("128", "GPT 12.8B (40 x 5120")):
    runs = sorted(glob.glob(f"{out}/gv{tag}_*.jsonl"))
    t = torch(f"{out}/torch{tag}_fsdp.jsonl")
    if not runs and not t:
        continue
    print(f"\n## {title}, T=4096, vocab 32000), global batch 8, 2 GPUs\n")
    print("| plan | predicted ms/step | measured ms/step | tokens/s | memory GiB (rank 0) |")
    print("|---|---|---|---|---|")
    for path in runs:
        name = os.path.basename(path)[len(tag) + 3:-6]
        r = gv(path, 8 * 4096)
        pred = r and r["pred_ms"]
        ex = f"{out}/explain_{tag}_{name}.txt"
        if not pred and os.path.exists(ex):
            m = re.search(r"predicted step ([0-9.]+) ms", open(ex).read())
            pred = float(m.group(1)) if m else None
        if r:
            print(f"| {name} | {pred if pred else '-'} | {r['ms']:.0f} | {r['tok']:,.0f} | {r['mem_gib']:.1f} |")
        else:
            print(f"| {name} | - | failed | - | - |")
    if t:
        rc = ", full recompute" if t.get("recompute") else ""
        print(f"| pytorch FSDP2 (batch {t['batch']} per GPU{rc}) | - | {t['ms_per_step']:.0f} | "
              f"{t['tokens_per_s']:,} | {t['peak_mem_gib']:.1f} |")
PY
