#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test: the CPU suite, then the CUDA suite where the
# CUDA backend was built (its tests report "skipped" on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ctest --test-dir build --output-on-failure -j"$(nproc 2>/dev/null || echo 2)"
if [ -d build-cuda ]; then
    ctest --test-dir build-cuda --output-on-failure -L cuda
fi
