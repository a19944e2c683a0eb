#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on the built-in default: trains gpt2-tiny on
# the built-in synthetic language, writing metrics and a checkpoint under runs/default/.
# Extra arguments go to `galvatron train` (e.g. ./scripts/run.sh --steps 500).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
mkdir -p runs/default
exec ./build/galvatron train --metrics runs/default/metrics.jsonl --out runs/default "$@"
