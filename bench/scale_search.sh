#!/usr/bin/env bash
# Search at scale (issue #8's CPU part): the searched plan, its predicted throughput and the search time for
# 8 to 1024 ranks (nodes of 8 GPUs), from hardware profiles scaled from a measured 8-GPU node.
#
# Inputs: a profile directory with one node's Hetu-Galvatron files (allreduce_bandwidth_1nodes_8gpus_per_node,
# p2p_bandwidth_1nodes_8gpus_per_node, sp_time_1nodes_8gpus_per_node, overlap_coefficient) and the model's
# computation_/memory_profiling_* files [tests/profiles: the reference's llama2-7b measurements, seq 2048].
# Groups within a node keep the node's measured figures; a group that spans nodes (more than 8 consecutive
# ranks, a strided group wider than a node, pipeline neighbours on different nodes) runs at the inter-node
# bandwidth INTER_GBS (GB/s of bus bandwidth per GPU; an assumption, not a measurement: 40 is about what
# 8 x 400 Gb/s InfiniBand per node gives) and its sp_time latencies grow by the same ratio.
# usage: bench/scale_search.sh [PROFILE_DIR [INTER_GBS]]     (after a build; prints a markdown table)
# env: MODEL (llama2-7b), SEQ (2048), LAYERS (the model's), MEMORY GiB per GPU (80), PER_GPU_BATCH (8),
#      COST (own|galvatron, own), RANKS ("8 16 32 64 128 256 512 1024")
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-tests/profiles}
inter=${2:-40}
model=${MODEL:-llama2-7b}
seq=${SEQ:-2048}
mem=${MEMORY:-80}
pgb=${PER_GPU_BATCH:-8}
cost=${COST:-own}
ranks=${RANKS:-"8 16 32 64 128 256 512 1024"}
gv=./build/galvatron
[ -x "$gv" ] || { echo "scale_search: build first (cmake --build build)" >&2; exit 1; }
for f in allreduce_bandwidth_1nodes_8gpus_per_node.json p2p_bandwidth_1nodes_8gpus_per_node.json \
    sp_time_1nodes_8gpus_per_node.json overlap_coefficient.json; do
    [ -f "$base/$f" ] || { echo "scale_search: $base/$f: missing (one node's measured profile)" >&2; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-scale.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "| ranks | nodes | global batch | searched plan | predicted step | predicted samples/s | per GPU | search wall |"
echo "|---|---|---|---|---|---|---|---|"
for W in $ranks; do
    nodes=$(( W / 8 ))
    d=$tmp/w$W
    mkdir -p "$d"
    cp "$base"/computation_profiling_* "$base"/memory_profiling_* "$base/overlap_coefficient.json" "$d/"
    python3 - "$base" "$d" "$nodes" "$inter" <<'PY'
import json, sys
base, out, nodes, inter = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
world = nodes * 8
ar = json.load(open(f"{base}/allreduce_bandwidth_1nodes_8gpus_per_node.json"))
p2p = json.load(open(f"{base}/p2p_bandwidth_1nodes_8gpus_per_node.json"))
sp = json.load(open(f"{base}/sp_time_1nodes_8gpus_per_node.json"))
tag = f"{nodes}nodes_8gpus_per_node"
a = {}
g = 2
while g <= world:
    for c in (1, 0):
        if g == world and c == 0:
            continue
        within = g <= 8 if c == 1 else 2 * g <= 8  # a strided group of g spans at least 2g ranks
        key = f"allreduce_size_{g}_consec_{c}"
        a[key] = ar[key] if within and key in ar else min(inter, ar["allreduce_size_8_consec_1"])
    g *= 2
json.dump(a, open(f"{out}/allreduce_bandwidth_{tag}.json", "w"), indent=1)
p = {}
g = 2
while g <= world:
    p[f"pp_size_{g}"] = p2p[f"pp_size_{g}"] if world == 8 else min(inter, p2p["pp_size_8"])
    g *= 2
json.dump(p, open(f"{out}/p2p_bandwidth_{tag}.json", "w"), indent=1)
s = {}
slow = max(1.0, ar["allreduce_size_8_consec_1"] / inter)
for k, v in sp.items():
    op, _, gs, size, _ = k.split("_")
    s[k] = v
    if int(gs) == 8:
        g = 16
        while g <= world:
            s[f"{op}_size_{g}_{size}_time"] = v * slow * (g - 1) / g / (7 / 8)
            g *= 2
json.dump(s, open(f"{out}/sp_time_{tag}.json", "w"), indent=1)
PY
    printf '{"num_nodes": %d, "num_gpus_per_node": 8}\n' "$nodes" >"$d/opts.json"
    B=$(( W * pgb ))
    layers=()
    [ -n "${LAYERS:-}" ] && layers=(--layers "$LAYERS")
    t0=$(date +%s.%N)
    "$gv" search --model "$model" --seq "$seq" "${layers[@]}" -n "$W" --memory "$mem" --profile-dir "$d" \
        --options "$d/opts.json" --global-batch "$B" --cost-model "$cost" -o "$d/plan.json" >"$d/out.txt" 2>&1 ||
        { echo "| $W | $nodes | $B | search failed: $(tail -1 "$d/out.txt") | | | | |"; continue; }
    t1=$(date +%s.%N)
    plan=$(sed -n 's/^plan: [0-9]* ranks, //p' "$d/out.txt" | head -1)
    lay=$(sed -n 's/^layers: //p' "$d/out.txt" | head -1)
    step=$(sed -n 's/.*predicted.*: step \([0-9.]* s\), \([0-9.]*\) samples\/s.*/\1/p' "$d/out.txt")
    sps=$(sed -n 's/.*predicted.*: step \([0-9.]* s\), \([0-9.]*\) samples\/s.*/\2/p' "$d/out.txt")
    per=$(python3 -c "print(f'{$sps / $W:.3f}')")
    wall=$(python3 -c "print(f'{($t1 - $t0) * 1e3:.0f} ms')")
    echo "| $W | $nodes | $B | $plan; $lay | $step | $sps | $per | $wall |"
done
