/* Search speed (docs/benchmarks.md "Search speed"): wall time of gv_search_run on
 *   1. the reference's measured case (§3.4): llama2-7b profile, 28 layers, 8 ranks, 36 GB, B 64, m 32 and
 *      m free (every divisor of 64), fine-grained;
 *   2. the full space, 32 layers on 8 ranks, fixed global batch (32), m free; and the reference's 32-layer,
 *      64 GB, B 64 case;
 *   3. 96 layers on 1024 ranks, fixed global batch (1024), m free, max degrees 8 (Galvatron's defaults).
 * Cases 1-2 read the fixture profiles in tests/profiles; case 3 uses a made-up 1024-rank hardware profile
 * (bandwidths only steer which plan wins; the work done does not depend on their values much).
 * usage: bench_search [REPEATS] [THREADS] [own|galvatron] [CASE]   prints the median of REPEATS runs per case
 * and cost model; a mode and a substring of a case's name run only those (for profilers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gv/search.h"

#ifndef GV_SOURCE_DIR
#define GV_SOURCE_DIR "."
#endif
#define PROF GV_SOURCE_DIR "/tests/profiles"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static const char *only_mode, *only_case;

static void run(const char *name, const gv_cost_model *cm, const gv_search_opts *o, int reps) {
    if (only_mode && strcmp(only_mode, cm->o.mode == GV_COST_OWN ? "own" : "galvatron")) return;
    if (only_case && !strstr(name, only_case)) return;
    double t[32], cpu[32];
    gv_search_result r;
    int tasks = 0, ok = 1;
    double thr = 0;
    char plan[64] = "";
    for (int i = 0; i < reps; i++) {
        double c0 = cpu_ms();
        gv_status st = gv_search_run(cm, o, &r);
        cpu[i] = cpu_ms() - c0;
        t[i] = r.ms;
        tasks = r.tasks;
        if (st != GV_OK) {
            fprintf(stderr, "%s: %s\n", name, gv_last_error());
            ok = 0;
        } else {
            thr = r.cost.throughput;
            snprintf(plan, sizeof plan, "B %d m %d pp %d", r.plan.global_batch, r.plan.micro_batches,
                     r.plan.pp);
            if (i == 0 && getenv("GV_BENCH_PLANS")) { /* the whole plan, to compare builds */
                printf("plan %s %s: stages", name, cm->o.mode == GV_COST_OWN ? "own" : "galvatron");
                for (int k = 0; k < r.plan.pp; k++) printf(" %d", r.plan.stage_layers[k]);
                printf(" layers");
                for (int l = 0; l <= r.plan.n_layer; l++) {
                    const gv_layer_strategy *x = l < r.plan.n_layer ? &r.plan.layers[l] : &r.plan.vocab;
                    printf(" %d%c%d%s", x->tp, "nmu"[x->sp], x -> zero, x -> ckpt ? "c" : "");
                }
                printf(" step %.17g\n", r.cost.step_s);
            }
        }
        gv_search_result_free(&r);
    }
    qsort(t, reps, sizeof t[0], cmp_d);
    qsort(cpu, reps, sizeof cpu[0], cmp_d);
    printf(
        "%-44s %-9s %4d tasks  wall median %8.1f ms (min %.1f)  cpu median %8.1f ms  %s%s %.3f samples/s\n",
        name, cm->o.mode == GV_COST_OWN ? "own" : "galvatron", tasks, t[reps / 2], t[0], cpu[reps / 2],
        ok ? "" : "FAILED ", plan, thr);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 0;
    if (reps < 1 || reps > 32) reps = 5;
    only_mode = argc > 3 ? argv[3] : NULL;
    only_case = argc > 4 ? argv[4] : NULL;
    gv_hw_profile hw8, hw1k;
    gv_model_profile mp;
    if (gv_hw_profile_load(&hw8, PROF, 1, 8) != GV_OK ||
        gv_model_profile_load(&mp, PROF "/computation_profiling_bf16_llama2-7b_all.json",
                              PROF "/memory_profiling_bf16_llama2-7b_all.json", 2048, 1, GV_PROFILE_STATIC,
                              GV_PROFILE_STATIC) != GV_OK) {
        fprintf(stderr, "bench_search: %s\n", gv_last_error());
        return 1;
    }
    /* 1024 ranks: 128 nodes of 8; groups within a node fast, across nodes slower */
    memset(&hw1k, 0, sizeof hw1k);
    hw1k.world = 1024;
    for (int i = 0; i <= GV_COST_LOGS; i++) {
        double bw = i <= 3 ? 150.0 : 40.0 - i;
        hw1k.coe[i][1] = 1 / bw;
        hw1k.coe[i][0] = i <= 3 ? 1 / (bw / 8) : 1 / (bw * 0.8);
        hw1k.p2p_coe[i] = 1 / (i <= 3 ? 140.0 : 25.0);
        hw1k.ag[i] = hw8.ag[i <= 3 ? i : 3];
        hw1k.a2a[i] = hw8.a2a[i <= 3 ? i : 3];
    }
    hw1k.coe[0][0] = hw1k.coe[0][1] = 0;
    hw1k.overlap_coe = hw8.overlap_coe;
    hw1k.have_sp_time = 1;
    printf("bench_search: %d repeats, %s threads\n", reps, threads ? argv[2] : "all");
    for (int mode = 0; mode < 2; mode++) {
        gv_cost_mode cmode = mode ? GV_COST_OWN : GV_COST_GALVATRON;
        gv_cost_model cm = {&hw8, &mp, {0}};
        gv_search_opts o;
        /* 1: the reference's measured case */
        gv_cost_opts_default(&cm.o, cmode, 8, 4096, 2048);
        cm.o.n_layer = 28;
        gv_search_opts_default(&o, 8, 28, 36 * 1024);
        o.threads = threads;
        o.settle_bsz = 64;
        o.settle_chunk = 32;
        run("28 layers, 8 ranks, 36 GB, B 64, m 32", &cm, &o, reps);
        o.settle_chunk = 0;
        run("28 layers, 8 ranks, 36 GB, B 64, m free", &cm, &o, reps);
        /* 2: 32 layers on 8 ranks, fixed batch */
        cm.o.n_layer = 32;
        gv_search_opts_default(&o, 8, 32, 36 * 1024);
        o.threads = threads;
        o.settle_bsz = 32;
        run("32 layers, 8 ranks, 36 GB, B 32, m free", &cm, &o, reps);
        o.memory_mb = 64 * 1024; /* the reference's other measured case */
        o.settle_bsz = 64;
        run("32 layers, 8 ranks, 64 GB, B 64, m free", &cm, &o, reps);
        /* 3: 96 layers on 1024 ranks */
        gv_cost_model big = {&hw1k, &mp, {0}};
        gv_cost_opts_default(&big.o, cmode, 1024, 4096, 2048);
        big.o.n_layer = 96;
        gv_search_opts_default(&o, 1024, 96, 80 * 1024);
        o.threads = threads;
        o.settle_bsz = 1024;
        run("96 layers, 1024 ranks, 80 GB, B 1024, m free", &big, &o, reps > 3 ? 3 : reps);
    }
    return 0;
}
