#!/usr/bin/env bash
# A/B of backend switches in ONE device call: builds with -DGV_CUDA=ON (bench/build_cuda.sh), optionally
# runs the CUDA op tests (GV_AB_TESTS=1), then trains GPT-2 124M (T=1024) for GV_AB_STEPS (30) steps per
# variant and batch size and prints the median ms/step of steps 6.. and tokens/s. Variants are interleaved
# (all variants at one batch size, then the next) so drift on a shared machine hits them alike.
#   GV_AB="tag:VAR=value[,VAR=value] ..."  (the variant "base" with no changes always runs first)
#   GV_AB_B="64 16"                         batch sizes
#   a variant's GV_BIN=path runs that galvatron binary instead (e.g. an older tree built beside this one)
# usage (GPU machine, repo root): GV_AB="..." bench/cuda_ab.sh [OUT_DIR]
set -uo pipefail
out=${1:-${OUT:-/tmp/gv-ab}}
mkdir -p "$out/ab"
source bench/build_cuda.sh
if [ "${GV_AB_TESTS:-0}" = 1 ]; then
    ./build-cuda/test_cuda_ops >"$out/ab/cuda_ops.log" 2>&1
    echo "test_cuda_ops rc=$? $(grep -c FAIL "$out/ab/cuda_ops.log") FAIL lines"
    grep -E "FAIL" "$out/ab/cuda_ops.log" | head -20
fi
steps=${GV_AB_STEPS:-30}
for B in ${GV_AB_B:-64 16}; do
    for x in base:GV_X=1 ${GV_AB:-}; do
        tag=${x%%:*}
        IFS=, read -r -a vars <<<"${x#*:}"
        m=$out/ab/${tag}_B$B.jsonl
        bin=./build-cuda/galvatron
        for v in "${vars[@]}"; do [ "${v%%=*}" = GV_BIN ] && bin=${v#GV_BIN=}; done
        env "${vars[@]}" "$bin" train --backend cuda --model gpt2-124m --seq 1024 \
            --global-batch "$B" --steps "$steps" --warmup 5 --eval-every 0 --quiet --metrics "$m" \
            >/dev/null 2>"$out/ab/${tag}_B$B.err" || { echo "B=$B $tag failed: $(tail -1 "$out/ab/${tag}_B$B.err")"; continue; }
        python3 - "$m" "$B" "$tag" <<'PY'
import json, statistics as s, sys
r = [json.loads(l) for l in open(sys.argv[1])]
st = [x["step_ms"] for x in r if "step" in x and not x.get("final")][5:]
loss = [x["loss"] for x in r if "step" in x and not x.get("final")][-1]
ms = s.median(st)
print(f"ab B={sys.argv[2]} {sys.argv[3]:14s} {ms:7.2f} ms/step {int(sys.argv[2]) * 1024 / ms * 1e3:10,.0f} tokens/s  last loss {loss:.4f}")
PY
    done
done
