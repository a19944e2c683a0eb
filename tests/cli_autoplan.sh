#!/usr/bin/env bash
# galvatron train --plan auto on 2 ranks: profiles the hardware and the model into the profile directory,
# searches, trains with the plan and reports measured vs predicted (stderr/stdout and the metrics' final
# record); a second run reuses the cached profiles; bad input is one stderr line.
# usage: cli_autoplan.sh GALVATRON_BINARY SOURCE_DIR
set -u
source "$(dirname "$0")/lib_cli.sh" "$1" "$2" cli_autoplan

run=(train --plan auto -n 2 --steps 6 --seq 32 --global-batch 8 --eval-every 0 --profile-dir "$tmp/prof")

"$gv" "${run[@]}" --metrics "$tmp/m.jsonl" >"$tmp/out" 2>"$tmp/err" || { fail "first run"; tail -5 "$tmp/err"; }
for f in allreduce_bandwidth_1nodes_2gpus_per_node.json p2p_bandwidth_1nodes_2gpus_per_node.json \
    sp_time_1nodes_2gpus_per_node.json overlap_coefficient.json computation_profiling_fp32_gpt2-tiny_all.json \
    memory_profiling_fp32_gpt2-tiny_all.json; do
    [ -s "$tmp/prof/$f" ] || fail "profile file $f missing"
done
grep -q "profiling the hardware of 2 ranks" "$tmp/err" || fail "first run did not profile"
grep -q "^plan auto: predicted step [0-9.]* ms" "$tmp/err" || fail "no predicted step time"
grep -q "^trained 6 steps" "$tmp/out" || fail "did not train 6 steps"
grep -qE "^measured vs predicted: step [0-9.]+ ms vs [0-9.]+ ms .*parameters [0-9.]+ / [0-9.]+" "$tmp/out" ||
    fail "no measured vs predicted line"
tail -1 "$tmp/m.jsonl" | grep -qE '"measured_step_ms": [0-9.]+, "predicted_step_ms": [0-9.]+, "predicted_mb_per_stage": \[\{"stage": 0, "parameters"' ||
    fail "final metrics record without the prediction"
echo "first run: $(grep '^plan auto: pp' "$tmp/err")"
# the cost model predicts the runtime's memory exactly: every measured / predicted pair of rank 0 agrees,
# also on the host redistribution path (its staging is host memory of the same size, GV_HOST_REDIST=1)
same_mem() {
    grep "^measured vs predicted" "$1" | grep -oE "[a-z]+ [0-9.]+ / [0-9.]+" |
        awk '$2 != $4 { bad = 1; print "  " $0 } END { exit bad }'
}
same_mem "$tmp/out" || fail "measured memory differs from the prediction"
GV_HOST_REDIST=1 "$gv" "${run[@]}" >"$tmp/out3" 2>"$tmp/err3" || { fail "host-path run"; tail -5 "$tmp/err3"; }
same_mem "$tmp/out3" || fail "measured memory differs from the prediction (GV_HOST_REDIST=1)"

"$gv" "${run[@]}" >"$tmp/out2" 2>"$tmp/err2" || { fail "second run"; tail -5 "$tmp/err2"; }
grep -q "plan auto: profiles of gpt2-tiny on 2 ranks from $tmp/prof" "$tmp/err2" || fail "second run did not reuse"
grep -q "profiling the hardware" "$tmp/err2" && fail "second run profiled again"
[ "$(grep '^plan auto: pp' "$tmp/err")" = "$(grep '^plan auto: pp' "$tmp/err2")" ] || fail "same profiles, other plan"

expect_fail_ranks no-fit "no plan fits: the smallest needs [0-9.]+ MiB on stage [0-9]" -- "${run[@]}" --memory 0.0001
expect_fail memory-alone "--memory, --profile-dir and --reprofile go with --plan auto" -- train --memory 4
touch "$tmp/afile"
expect_fail_ranks bad-dir "afile" -- "${run[@]}" --profile-dir "$tmp/afile/sub"
cli_done
