#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test: the CUDA suite first where the CUDA backend was
# built and a GPU is present, then the CPU suite. Without a GPU the CUDA tests are compiled (setup.sh) but not
# run: they need a device (bench/gpt2_cuda.sh runs them on the GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if [ -d build-cuda ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
        ctest --test-dir build-cuda --output-on-failure -L cuda
    else
        echo "test: CUDA backend and its tests built in build-cuda/; no GPU on this machine, so they are not run"
    fi
fi
ctest --test-dir build --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
