/* Helper of bench/calibrate.sh (cost model calibration on CPU ranks).
 *   bench_calib plan W PP SCHED B M STAGES LAYERS VOCAB OUT.json
 *       writes a plan in the project's form: STAGES "3,1" or "-" (even), LAYERS "t1 t2c m2 u2z1 ...",
 *       VOCAB "t2z3" (t|m|u + degree, zN = ZeRO stage, c = recompute).
 *   bench_calib compare NAME MODEL LAYERS SEQ W PROFILE_DIR PLAN.json METRICS.jsonl...
 *       evaluates the plan with the own cost model over the profiles (memory with the model, as --plan auto)
 *       and compares with the final records of the runs: the median of measured_step_ms over the runs,
 *       every rank's memory by category against its stage's prediction. Prints one table row and, on
 *       stderr, the runs' mean forward/backward split beside the prediction. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/backend.h"
#include "gv/cost.h"
#include "gv/hybrid.h"

static int cmd_plan(char **a) {
    int W = atoi(a[0]), pp = atoi(a[1]), B = atoi(a[3]), M = atoi(a[4]);
    gv_plan p;
    if (gv_plan_compact(&p, W, pp, !strcmp(a[2], "gpipe") ? GV_SCHED_GPIPE : GV_SCHED_1F1B, B, M, a[6], a[7],
                        strcmp(a[5], "-") ? a[5] : NULL) != GV_OK)
        goto fail;
    if (gv_plan_save(&p, a[8]) != GV_OK) goto fail;
    gv_plan_free(&p);
    return 0;
fail:
    fprintf(stderr, "bench_calib plan: %s\n", gv_last_error());
    return 1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The last line of a metrics file (the final record). */
static cJSON *final_record(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char line[1 << 16], last[1 << 16];
    last[0] = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "\"final\"")) memcpy(last, line, sizeof line);
    fclose(f);
    return last[0] ? cJSON_Parse(last) : NULL;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int cmd_compare(int argc, char **a) {
    const char *name = a[0], *model = a[1], *dir = a[5], *plan_path = a[6];
    int layers = atoi(a[2]), seq = atoi(a[3]), W = atoi(a[4]);
    int nrun = argc - 7;
    gv_model_spec spec;
    gv_plan p;
    gv_backend *be = NULL;
    static gv_cost_env env;
    if (gv_model_spec_resolve(&spec, model) != GV_OK) goto fail;
    spec.n_layer = layers;
    if (gv_plan_load(&p, plan_path, layers, W) != GV_OK) goto fail;
    if (gv_backend_init(&be, "cpu", 0) != GV_OK) goto fail;
    gv_cost_opts co;
    gv_cost_opts_default(&co, GV_COST_OWN, W, spec.n_embd, seq);
    gv_cost_opts_set_layers(&co, &spec);
    co.mixed_precision = 0;
    co.pipeline = p.schedule;
    /* Megatron-SP or plain TP: the cost model takes one for all tensor-parallel layers (Galvatron's
     * sequence_parallel); the plans here use one of them (a layer's "m" or "t") throughout. Without TP
     * layers it does not matter for the time: the Megatron-SP files then (a tp 1 profile has only them). */
    co.sequence_parallel = 1;
    for (int i = 0; i <= p.n_layer; i++) {
        const gv_layer_strategy *l = i < p.n_layer ? &p.layers[i] : &p.vocab;
        if (l->tp > 1 && l->sp == GV_SP_NONE) co.sequence_parallel = 0;
    }
    co.spec = &spec;
    co.backend = be;
    /* the runs' overlap switch ($GV_OVERLAP, as galvatron train without --overlap): ZeRO-3's slots */
    if (gv_hybrid_overlap_resolve(0, &co.overlap) != GV_OK) goto fail;
    if (gv_cost_env_load(&env, dir, spec.name, 1, W, &co, GV_PROFILE_STATIC, GV_PROFILE_STATIC) != GV_OK)
        goto fail;
    gv_plan_cost pc;
    if (gv_cost_plan(&env.cm, &p, 0, &pc) != GV_OK) goto fail;
    double *steps = calloc((size_t)nrun, sizeof *steps);
    double fwd = 0, bwd = 0, red = 0, p2p = 0, merr[6] = {0};
    int nok = 0;
    static const char *cat[6] = {"parameters", "gradients", "optimizer", "activations", "workspace", "comm"};
    for (int r = 0; r < nrun; r++) {
        cJSON *f = final_record(a[7 + r]);
        if (!f) {
            fprintf(stderr, "bench_calib: %s: no final record\n", a[7 + r]);
            continue;
        }
        steps[nok++] = num(f, "measured_step_ms");
        const cJSON *ranks = cJSON_GetObjectItemCaseSensitive(f, "memory_bytes_per_rank"), *rk;
        cJSON_ArrayForEach(rk, ranks) {
            int rank = (int)num(rk, "rank"), stage = rank / (W / p.pp);
            const gv_cost_mem *m = &pc.mem[stage];
            double pm[6] = {m->parameters, m->gradients, m->optimizer, m->activations, m->workspace, m->comm};
            for (int k = 0; k < 6; k++) {
                double meas = num(rk, cat[k]) / 1048576.0;
                double e = meas > 0 ? fabs(pm[k] - meas) / meas : fabs(pm[k]) > 1e-9 ? INFINITY : 0;
                if (e > merr[k]) merr[k] = e;
            }
            fwd += num(rk, "forward_ms") / W / nrun;
            bwd += num(rk, "backward_ms") / W / nrun;
            red += num(rk, "redistribute_ms") / W / nrun;
            p2p += num(rk, "p2p_ms") / W / nrun;
        }
        cJSON_Delete(f);
    }
    if (!nok) return 1;
    qsort(steps, (size_t)nok, sizeof *steps, cmp_d);
    double med = nok % 2 ? steps[nok / 2] : 0.5 * (steps[nok / 2 - 1] + steps[nok / 2]);
    double pred = pc.step_s * 1e3, err = (pred - med) / med;
    double worst = 0;
    for (int k = 0; k < 6; k++) worst = fmax(worst, merr[k]);
    /* | plan | measured ms (median, runs) | predicted ms | error | memory error per category | */
    printf(
        "| %s | %.2f (%d, %.2f-%.2f) | %.2f | %+.1f%% | %.1f / %.1f / %.1f / %.1f / %.1f / %.1f%% | %s |\n",
        name, med, nok, steps[0], steps[nok - 1], pred, 100 * err, 100 * merr[0], 100 * merr[1],
        100 * merr[2], 100 * merr[3], 100 * merr[4], 100 * merr[5],
        fabs(err) <= 0.15 && worst <= 0.05 ? "ok"
        : fabs(err) > 0.15                 ? "time"
                                           : "memory");
    double sc = 0;
    for (int k = 0; k < p.pp; k++) sc = fmax(sc, pc.stage_c[k]);
    fprintf(
        stderr,
        "%s: measured per rank forward %.2f backward %.2f redistribute %.2f p2p %.2f ms per step; predicted "
        "slowest stage %.2f ms per micro-batch (%d micro-batches)\n",
        name, fwd, bwd, red, p2p, sc * 1e3, p.micro_batches);
    if (getenv("GV_CALIB_VERBOSE")) { /* the model's pieces for layer 0 and the vocab layers */
        gv_strategy ls[64], vs;
        gv_plan_strategies(&p, ls, &vs);
        gv_cost_batch cb = {p.global_batch, p.micro_batches};
        double w, n, ow[64], on[64];
        gv_cost_layer_time(&env.cm, 0, &ls[0], &cb, &w, &n);
        gv_cost_other_time(&env.cm, &vs, &cb, ow, on);
        fprintf(stderr,
                "  layer 0: %.3f ms per micro-batch, %.3f with the step's sync; vocab stage 0: %.3f / %.3f\n",
                n * 1e3, w * 1e3, on[0] * 1e3, ow[0] * 1e3);
        for (int k = 0; k < env.mp.n_own_time; k++)
            fprintf(stderr,
                    "  line tp %d sp %d: layer fwd %.4f x + %.4f, bwd %.4f x + %.4f; vocab fwd %.4f x + "
                    "%.4f, bwd %.4f x + %.4f\n",
                    env.mp.own_time[k].tp, env.mp.own_time[k].sp, env.mp.own_time[k].lf[0][0],
                    env.mp.own_time[k].lf[0][1], env.mp.own_time[k].lb[0][0], env.mp.own_time[k].lb[0][1],
                    env.mp.own_time[k].of[0], env.mp.own_time[k].of[1], env.mp.own_time[k].ob[0],
                    env.mp.own_time[k].ob[1]);
        fprintf(stderr, "  optimizer %.4f ms per Mparam\n", env.mp.opt_ms_per_mparam);
    }
    free(steps);
    gv_plan_free(&p);
    gv_backend_free(be);
    return 0;
fail:
    fprintf(stderr, "bench_calib compare %s: %s\n", name, gv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 11 && !strcmp(argv[1], "plan")) return cmd_plan(argv + 2);
    if (argc >= 10 && !strcmp(argv[1], "compare")) return cmd_compare(argc - 2, argv + 2);
    fprintf(stderr, "usage: bench_calib plan W PP gpipe|1f1b B M STAGES|- LAYERS VOCAB OUT.json\n"
                    "       bench_calib compare NAME MODEL LAYERS SEQ W PROFILE_DIR PLAN.json METRICS...\n");
    return 2;
}
