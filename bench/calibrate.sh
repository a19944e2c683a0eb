#!/usr/bin/env bash
# Cost model calibration on CPU ranks. For every world size: profiles the hardware and the model in the
# conditions of training (the same -n, every rank pinned to a physical core of its own, one thread per
# rank), then trains every plan of that world RUNS times with --metrics, repetitions round-robin over the
# plans (a burst of other jobs' load spreads over the plans instead of hitting every run of one), and
# compares the own cost model's prediction (memory with the model, as --plan auto) with the runs: the
# median measured step time with its range, and every rank's memory by category. Then profiles the model
# once more and predicts the first plan again (how far the machine drifted during the bench).
# Writes DIR/calibration.md (machine, settings, one table per world, counts within target) and logs.
# usage: bench/calibrate.sh [--out DIR] [RUNS [STEPS]]        (from the repository root, after a build)
# env:   GV_CALIB_WORLDS   world sizes ["2"]; each needs that many free physical cores
#        GV_CALIB_PARALLEL 1: the worlds' benches at once, on disjoint cores (needs the sum of the worlds)
#        GV_CALIB_ITERS    profile iterations [15]; GV_CALIB_WARMUP untimed ones [3]
#        GV_CALIB_ONLY     a regular expression: only the plans whose name matches (quick checks)
#        GV_CALIB_DEADLINE seconds: no further repetition (after the first) or drift profile once this long
#                          has passed since the start; GV_CALIB_DRIFT=0 skips the drift profile
set -euo pipefail
cd "$(dirname "$0")/.."
out=
[ "${1:-}" = "--out" ] && { out=$2; shift 2; }
runs=${1:-3}
steps=${2:-12}
gv=$PWD/build/galvatron
bc=$PWD/build/bench_calib
[ -x "$gv" ] && [ -x "$bc" ] || { echo "calibrate: build first (cmake --build build)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gv-calib.XXXXXX")
[ -n "$out" ] || out=$tmp/out
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 GV_MPIRUN=$PWD/bench/mpirun-bind.sh
worlds=${GV_CALIB_WORLDS:-2}
parallel=${GV_CALIB_PARALLEL:-0}
iters=${GV_CALIB_ITERS:-15}
warm=${GV_CALIB_WARMUP:-3}
model=gpt2-tiny
layers=4
seq=64

# Physical cores this process may use (first hardware thread of each core).
cores=0
while read -r c; do
    s=/sys/devices/system/cpu/cpu$c/topology/thread_siblings_list
    f=$c
    [ -r "$s" ] && { f=$(cut -d, -f1 "$s"); f=${f%-*}; }
    [ "$f" = "$c" ] && cores=$((cores + 1))
done < <(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr ',' '\n' |
    awk -F- '{ b = NF > 1 ? $2 : $1; for (i = $1; i <= b; i++) print i }')
need=0
for W in $worlds; do
    if [ "$parallel" = 1 ]; then need=$((need + W)); else [ "$W" -gt "$need" ] && need=$W; fi
done
[ "$need" -le "$cores" ] || { echo "calibrate: worlds '$worlds' need $need physical cores, $cores free" >&2; exit 1; }

# name pp schedule global_batch micro_batches stages layers vocab (compact notation of gv_plan_compact)
plans_2=(
    "ddp 1 1f1b 8 1 - t1_t1_t1_t1 t1"
    "ddp-m4 1 1f1b 8 4 - t1_t1_t1_t1 t1"
    "zero1-m2 1 1f1b 8 2 - t1z1_t1z1_t1z1_t1z1 t1z1"
    "zero2-m2 1 1f1b 8 2 - t1z2_t1z2_t1z2_t1z2 t1z2"
    "zero3 1 1f1b 8 1 - t1z3_t1z3_t1z3_t1z3 t1z3"
    "tp2 1 1f1b 8 1 - t2_t2_t2_t2 t2"
    "megatron-sp2 1 1f1b 8 1 - m2_m2_m2_m2 m2"
    "ulysses2 1 1f1b 8 1 - u2_u2_u2_u2 t1"
    "recompute 1 1f1b 8 1 - t1c_t1c_t1c_t1c t1"
    "pp2-1f1b-m4 2 1f1b 8 4 - t1_t1_t1_t1 t1"
    "pp2-gpipe-m4 2 gpipe 8 4 - t1_t1_t1_t1 t1"
    "pp2-uneven-3,1 2 1f1b 8 4 3,1 t1_t1_t1_t1 t1"
    "mix-tp2-zero2-ckpt 1 1f1b 8 2 - t2_t1_t1z2_t2c t2"
    "vocab-tp2-layers-dp 1 1f1b 8 1 - t1_t1_t1_t1 t2"
)
plans_4=(
    "4-ddp 1 1f1b 16 1 - t1_t1_t1_t1 t1"
    "4-tp4 1 1f1b 16 1 - t4_t4_t4_t4 t4"
    "4-ulysses2-zero2 1 1f1b 16 2 - u2z2_u2z2_u2z2_u2z2 t1z2"
    "4-pp2-tp2-mix 2 1f1b 16 4 - t2_t1c_t2_t1 t2"
    "4-tp2-zero3-mix 1 1f1b 16 2 - t2_t2_t1z3_t1z3 t1z3"
    "4-pp4-gpipe-m4 4 gpipe 16 4 - t1_t1_t1_t1 t1"
)

start_s=$(date +%s)
past_deadline() { [ -n "${GV_CALIB_DEADLINE:-}" ] && [ $(($(date +%s) - start_s)) -ge "$GV_CALIB_DEADLINE" ]; }

profile_model() { # W DIR [TPS SPS]
    local tps=1,2 sps=${4:-none,megatron,ulysses}
    [ "$1" -ge 4 ] && tps=1,2,4
    [ -n "${3:-}" ] && tps=$3
    "$gv" profile model --model "$model" --seq "$seq" --tp "$tps" --sp "$sps" --batch 1,2,4,8 \
        --iters "$iters" --warmup "$warm" -n "$1" -o "$2"
}

# One world's bench on the physical cores from number $2 on.
bench_world() {
    local W=$1 row name pp sched B M stages lay vocab r
    export GV_PIN_BASE=$2
    local -n all=plans_$W
    local plans=()
    for row in "${all[@]}"; do [[ "${row%% *}" =~ ${GV_CALIB_ONLY:-.} ]] && plans+=("$row"); done
    local d=$tmp/w$W
    mkdir -p "$d"
    echo "calibrate: $W ranks: profiling the hardware and $model ($iters iterations)" >&2
    { "$gv" profile hardware -n "$W" -o "$d/prof" && profile_model "$W" "$d/prof"; } >"$d/prof.out" 2>&1 ||
        { tail -5 "$d/prof.out" >&2; return 1; }
    for row in "${plans[@]}"; do
        read -r name pp sched B M stages lay vocab <<<"$row"
        "$bc" plan "$W" "$pp" "$sched" "$B" "$M" "$stages" "${lay//_/ }" "$vocab" "$d/$name.json"
    done
    for r in $(seq 1 "$runs"); do
        if [ "$r" -gt 1 ] && past_deadline; then
            echo "calibrate: $W ranks: time limit, $((r - 1)) repetition(s)" >&2
            break
        fi
        for row in "${plans[@]}"; do
            read -r name pp sched B M stages lay vocab <<<"$row"
            "$gv" train --model "$model" --layers "$layers" --seq "$seq" --global-batch "$B" --steps "$steps" \
                --eval-every 0 --plan "$d/$name.json" -n "$W" --metrics "$d/$name.$r.jsonl" \
                >"$d/$name.$r.out" 2>&1 || { echo "calibrate: $name failed:" >&2; tail -3 "$d/$name.$r.out" >&2; }
        done
        echo "calibrate: $W ranks: repetition $r of $runs done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    done
    {
        echo "| plan | measured ms: median (runs, min-max) | predicted ms | error | memory error: params / grads / optimizer / activations / workspace / comm | within target |"
        echo "|---|---|---|---|---|---|"
    } >"$d/table.md"
    : >"$d/split.txt"
    for row in "${plans[@]}"; do
        read -r name _ <<<"$row"
        "$bc" compare "$name" "$model" "$layers" "$seq" "$W" "$d/prof" "$d/$name.json" "$d/$name".*.jsonl \
            >>"$d/table.md" 2>>"$d/split.txt" || echo "| $name | no result | | | | |" >>"$d/table.md"
    done
    # drift: the model profiled again after the runs at tp 1 (the first plan's; the hardware files kept),
    # the first plan predicted again
    read -r name _ <<<"${plans[0]}"
    mkdir -p "$d/prof-end"
    cp "$d"/prof/*bandwidth* "$d"/prof/sp_time_* "$d"/prof/overlap_coefficient.json "$d/prof-end/"
    if [ "${GV_CALIB_DRIFT:-1}" = 0 ] || past_deadline; then
        echo "Drift: not measured (time limit)." >"$d/drift.txt"
    elif profile_model "$W" "$d/prof-end" 1 megatron >"$d/prof-end.out" 2>&1; then
        local a b
        a=$(grep "^| $name |" "$d/table.md" | awk -F'|' '{print $4}' | xargs)
        b=$("$bc" compare "$name" "$model" "$layers" "$seq" "$W" "$d/prof-end" "$d/$name.json" "$d/$name".*.jsonl \
            2>/dev/null | awk -F'|' '{print $4}' | xargs)
        echo "Drift: \`$name\` predicted $a ms from the profile before the runs, $b ms from one after them." >"$d/drift.txt"
    else
        echo "Drift: the profile after the runs failed." >"$d/drift.txt"
    fi
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
base=0 pids=() fail=0
for W in $worlds; do
    if [ "$parallel" = 1 ]; then
        bench_world "$W" "$base" &
        pids+=($!)
        base=$((base + W))
    else
        bench_world "$W" 0 || fail=1
    fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
[ -n "$cpu" ] || cpu=$(grep -m1 "model name" /proc/cpuinfo | sed 's/.*: //')
{
    echo "\`bench/calibrate.sh $runs $steps\` (worlds: $worlds$([ "$parallel" = 1 ] && echo ", run at once on disjoint cores"))"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname): $cpu, $(getconf _NPROCESSORS_ONLN) CPUs ($cores physical cores"
    echo "usable); load average $load0 at the start, $load1 at the end; $(($(date +%s) - t0)) s in all."
    echo "$model, $layers layers, seq $seq. Every rank pinned to a physical core of its own (bench/mpirun-bind.sh),"
    echo "OMP_NUM_THREADS=1; profiles (\`profile hardware\`, \`profile model --sp none,megatron,ulysses --batch 1,2,4,8 --iters $iters --warmup $warm\`)"
    echo "taken the same way with the -n of training. Each plan trained $runs times for $steps steps, repetitions"
    echo "round-robin over the plans; measured = median over the runs of each run's median step time (first step"
    echo "dropped); memory error = worst rank's |predicted - measured| / measured per category."
    for W in $worlds; do
        d=$tmp/w$W
        [ -f "$d/table.md" ] || continue
        n=$(tail -n +3 "$d/table.md" | grep -c ' | [0-9]' || true)
        ok=$(tail -n +3 "$d/table.md" | awk -F'|' '{e = $5; gsub(/[ %+]/, "", e); if (e != "" && e + 0 <= 15 && e + 0 >= -15) k++} END {print k + 0}')
        okall=$(grep -c '| ok |$' "$d/table.md" || true)
        echo
        echo "$W ranks: $ok of $n plans within 15% in step time ($okall within both targets)."
        echo
        cat "$d/table.md"
        echo
        cat "$d/drift.txt" 2>/dev/null || true
    done
} >"$out/calibration.md"
for W in $worlds; do
    d=$tmp/w$W
    cp "$d/split.txt" "$out/split-$W.txt" 2>/dev/null || true
    cp -r "$d/prof" "$out/profile-$W" 2>/dev/null || true
    cp "$d/prof.out" "$out/profile-$W.log" 2>/dev/null || true
done
cat "$out/calibration.md"
echo "calibrate: wrote $out/calibration.md" >&2
rm -rf "$tmp/w"*
[ "$fail" = 0 ]
