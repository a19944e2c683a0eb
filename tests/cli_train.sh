#!/usr/bin/env bash
# The CLI's normal paths: help texts, the progress lines, the JSONL metrics (one record per step with the
# documented fields, a final record with every rank's memory by category), and the models table.
# usage: cli_train.sh GALVATRON_BINARY SOURCE_DIR
set -u
gv=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-train.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME COMMAND...: the command must succeed
    local name=$1
    shift
    if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
check help "$gv" --help >"$tmp/help"
check help-lists-train grep -q "^  train" "$tmp/help"
check train-help "$gv" train --help >"$tmp/thelp"
check train-help-flags grep -q -e "--dp-type" "$tmp/thelp"
check plan-help "$gv" plan --help >/dev/null
check models "$gv" models >"$tmp/models"
check models-124m grep -q "gpt2-124m .* 124.4M" "$tmp/models"

# 20 steps, evaluated at 10 and 20: 20 progress lines with loss/tokens/ETA (not a terminal: one per step).
check train "$gv" train --steps 20 --global-batch 4 --seq 32 --eval-every 10 --metrics "$tmp/m.jsonl" \
    >"$tmp/out" 2>"$tmp/err"
check progress-lines test "$(grep -c '^step .* | loss .* tok/s .* ETA' "$tmp/err")" -eq 20
check progress-eval test "$(grep -c '| eval ' "$tmp/err")" -eq 2
check metrics-steps test "$(grep -c '"step": ' "$tmp/m.jsonl")" -eq 20
check metrics-fields grep -q '"step": 20, "loss": [0-9.e+-]*, "lr": [0-9.e+-]*, "grad_norm": [0-9.e+-]*, "step_ms": [0-9.]*, "tokens_per_s": [0-9.]*, "eval_loss"' "$tmp/m.jsonl"
check summary grep -q "trained 20 steps: loss" "$tmp/out"

# Two ranks: the final record has both ranks' memory by category and time split.
check train-2ranks "$gv" train -n 2 --dp-type zero1 --steps 2 --global-batch 4 --seq 32 --eval-every 0 --quiet \
    --metrics "$tmp/m2.jsonl" >/dev/null
check per-rank-memory grep -q '"memory_bytes_per_rank": \[{"rank": 0, "parameters": [0-9]*, "gradients": [0-9]*, "optimizer": [0-9]*, "activations": [0-9]*, "workspace": [0-9]*, "comm": [0-9]*, "forward_ms": [0-9.]*, "backward_ms": [0-9.]*, "redistribute_ms": [0-9.]*, "p2p_ms": [0-9.]*, "p2p_messages": {"nonblocking": 0, "early": 0, "device": 0, "host": 0, "blocking": 0, "redist_device": 0, "redist_host": 0}}, {"rank": 1,' "$tmp/m2.jsonl"
# A pipeline of 2 stages, 2 steps of 2 micro-batches: each rank's final record counts its messages (2 x 2
# out, 2 x 2 in): with overlap all nonblocking, device tensors (no layout change at the cut) and some
# received while compute ran; without, all blocking, device blocks too (the stage's blocks moved into and
# out of its part on the device), or host F32 blocks on the host path (GV_HOST_REDIST=1). The losses are
# the same on both paths.
for ov in on off; do
    check "train-pp2-overlap-$ov" "$gv" train -n 2 --pp 2 --micro-batches 2 --steps 2 --global-batch 4 --seq 32 \
        --eval-every 0 --quiet --overlap $ov --metrics "$tmp/pp-$ov.jsonl" >/dev/null
done
GV_HOST_REDIST=1 check "train-pp2-overlap-off-host" "$gv" train -n 2 --pp 2 --micro-batches 2 --steps 2 \
    --global-batch 4 --seq 32 --eval-every 0 --quiet --overlap off --metrics "$tmp/pp-host.jsonl" >/dev/null
check pp2-messages-on grep -q '"p2p_messages": {"nonblocking": 8, "early": [1-9][0-9]*, "device": 8, "host": 0, "blocking": 0, "redist_device": 0, "redist_host": 0}}, {"rank": 1, .*"p2p_messages": {"nonblocking": 8, "early": [1-9]' "$tmp/pp-on.jsonl"
check pp2-messages-off grep -q '"p2p_messages": {"nonblocking": 0, "early": 0, "device": 8, "host": 0, "blocking": 8, "redist_device": [1-9][0-9]*, "redist_host": 0}}, {"rank": 1, .*"device": 8, "host": 0, "blocking": 8, "redist_device": [1-9][0-9]*, "redist_host": 0}' "$tmp/pp-off.jsonl"
check pp2-messages-off-host grep -q '"p2p_messages": {"nonblocking": 0, "early": 0, "device": 0, "host": 8, "blocking": 8, "redist_device": 0, "redist_host": [1-9][0-9]*}}, {"rank": 1, .*"device": 0, "host": 8, "blocking": 8, "redist_device": 0, "redist_host": [1-9]' "$tmp/pp-host.jsonl"
check pp2-host-same-losses test "$(grep -o '"loss": [0-9.e+-]*' "$tmp/pp-off.jsonl")" = "$(grep -o '"loss": [0-9.e+-]*' "$tmp/pp-host.jsonl")"
# A plan file (4 ranks: tp 2 x ZeRO-1 over 2, recompute on layer 0 only) trains like one process (same
# losses to print precision at the last step).
check plan-train "$gv" train --plan "$2/tests/plans/tp2_zero1_half_ckpt.json" --steps 10 --seq 32 --eval-every 0 \
    --quiet >"$tmp/plan.out"
"$gv" train --global-batch 8 --micro-batches 2 --steps 10 --seq 32 --eval-every 0 --quiet >"$tmp/single.out"
check plan-equals-single test "$(head -1 "$tmp/plan.out" | cut -d, -f1)" = "$(head -1 "$tmp/single.out" | cut -d, -f1)"
echo "cli_train: $fails failure(s)"
[ $fails -eq 0 ]
