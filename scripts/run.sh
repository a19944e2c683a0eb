#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the main job on the built-in default: on 2 ranks, profiles
# the machine and gpt2-tiny, searches the fastest plan (--plan auto), trains it on the built-in synthetic
# language and reports measured vs predicted step time and memory; metrics, profiles and a checkpoint go
# under runs/default/. Extra arguments go to `galvatron train` (e.g. ./scripts/run.sh --steps 500, or -n 4).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
mkdir -p runs/default
exec ./build/galvatron train --plan auto -n 2 --profile-dir runs/default/profiles \
    --metrics runs/default/metrics.jsonl --out runs/default "$@"
