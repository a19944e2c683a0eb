#!/usr/bin/env bash
# Per-kernel GPU time of ONE GPT-2 124M training step, by Nsight Compute (ncu is on the GPU image; nsys is
# not usable there). GV_CUDA_CAPTURE=k makes the backend call cudaProfilerStart at step k's AdamW launch and
# Stop at step k+1's, so `ncu --profile-from-start off` sees exactly one step (its backward, optimizer and the
# next forward) after the cuBLASLt timing of step 1. Kernels run one at a time under ncu, so the sum is the
# step's GPU time without overlap. Prints kernels grouped by name and grid, the slowest first.
#   GV_KB="64 16" batch sizes; expects build-cuda/ (source bench/build_cuda.sh first) unless GV_KB_BUILD=1.
# usage (GPU machine, repo root): bench/cuda_kernels.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-kern}}
mkdir -p "$out/kern"
[ "${GV_KB_BUILD:-0}" = 1 ] && source bench/build_cuda.sh
for B in ${GV_KB:-64}; do
    csv=$out/kern/ncu_B$B.csv
    GV_CUDA_CAPTURE=3 ncu --profile-from-start off --clock-control none --cache-control none \
        --metrics gpu__time_duration.sum --csv --page raw \
        ./build-cuda/galvatron train --backend cuda --model gpt2-124m --seq 1024 --global-batch "$B" \
        --steps 4 --warmup 2 --eval-every 0 --quiet >"$csv" 2>"$out/kern/ncu_B$B.err" ||
        { echo "ncu B=$B failed: $(tail -3 "$out/kern/ncu_B$B.err")"; continue; }
    python3 - "$csv" "$B" <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
hdr = next(i for i, r in enumerate(rows) if r and r[0] == "ID")
h = rows[hdr]
name, grid, t = h.index("Kernel Name"), h.index("Grid Size"), h.index("gpu__time_duration.sum")
agg = collections.defaultdict(lambda: [0, 0.0])
tot = 0.0
for r in rows[hdr + 1:]:
    try:
        ns = float(r[t].replace(",", ""))
    except (ValueError, IndexError):
        continue  # the units row
    k = (r[name][:110], r[grid])
    agg[k][0] += 1
    agg[k][1] += ns
    tot += ns
print(f"kern B={sys.argv[2]} one step: {tot / 1e6:.2f} ms GPU time in {sum(v[0] for v in agg.values())} kernels")
for (n, g), (c, ns) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:45]:
    print(f"kern {ns / 1e6:8.3f} ms {100 * ns / tot:5.1f}% x{c:<3d} {ns / c / 1e3:9.1f} us  grid {g:16s} {n}")
PY
done
