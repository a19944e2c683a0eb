#!/usr/bin/env bash
# Runs one MPI rank on a core of its own (bench/mpirun-bind.sh puts this in front of the rank's command
# line): the (GV_PIN_BASE + local rank)-th of this process's allowed CPUs, counting only the first hardware
# thread of each physical core (SMT siblings would share a core's units). GV_PIN_BASE defaults to 0.
cpus=$(bench_cpus() {
    local list r a b c
    list=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
    for r in ${list//,/ }; do
        a=${r%-*}
        b=${r#*-}
        for ((c = a; c <= b; c++)); do
            local sib=/sys/devices/system/cpu/cpu$c/topology/thread_siblings_list first
            if [ -r "$sib" ]; then
                first=$(cut -d, -f1 "$sib")
                first=${first%-*}
                [ "$first" = "$c" ] || continue
            fi
            echo "$c"
        done
    done
}; bench_cpus)
i=$((${GV_PIN_BASE:-0} + ${OMPI_COMM_WORLD_LOCAL_RANK:-0}))
core=$(echo "$cpus" | sed -n "$((i + 1))p")
[ -n "$core" ] || { echo "pin-rank: no core number $i among $(echo $cpus | wc -w) (GV_PIN_BASE ${GV_PIN_BASE:-0})" >&2; exit 1; }
command -v taskset >/dev/null && exec taskset -c "$core" "$@"
command -v numactl >/dev/null && exec numactl --physcpubind="$core" "$@"
echo "pin-rank: neither taskset nor numactl: rank runs unpinned" >&2
exec "$@"
