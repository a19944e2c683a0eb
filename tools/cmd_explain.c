/* `galvatron explain`: what the cost model predicts for a plan — per-layer table, per-stage time and memory
 * by category, the simulated pipeline timeline — as text, HTML/SVG and a Chrome trace. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/explain.h"
#include "gv/model.h"
#include "gv/plan.h"

static const char *gv_usage_explain =
    "usage: galvatron explain PLAN.json --model PRESET|FILE -n RANKS --profile-dir DIR [options]\n"
    "\n"
    "Predicts a plan's step time and memory per rank by category from the profiles in DIR (Hetu-Galvatron's\n"
    "files, as 'galvatron profile' writes them) and shows where the time goes in a simulated pipeline\n"
    "timeline of one step.\n"
    "\n"
    "  --layers N             override the model's number of layers\n"
    "  --seq T                sequence length [the model's max_seq]\n"
    "  --cost-model own|galvatron  [own]\n"
    "  --html FILE            an HTML page: plan table, memory per rank (stacked by category), timeline "
    "(SVG)\n"
    "  --trace FILE           Chrome-trace JSON of the timeline (opens in Perfetto / chrome://tracing)\n"
    "\n"
    "example:\n"
    "  galvatron explain plan.json --model llama2-7b -n 8 --profile-dir profiles --html plan.html "
    "--trace plan.trace.json\n";

static int gv_explain_fail(const char *what) {
    fprintf(stderr, "galvatron explain: %s\n", what);
    return 1;
}

int gv_cmd_explain(int argc, char **argv) {
    const char *plan_path = NULL, *model = NULL, *dir = NULL, *html = NULL, *trace = NULL;
    int world = 0, layers = 0, seq = 0;
    gv_cost_mode mode = GV_COST_OWN;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(gv_usage_explain, stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (plan_path) {
                fprintf(stderr, "galvatron explain: unexpected argument '%s' (one plan)\n", a);
                return 2;
            }
            plan_path = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "galvatron explain: option '%s' needs a value (see galvatron explain --help)\n",
                    a);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        long x = strtol(v, &end, 10);
        int is_int = *v && !*end && x > 0 && x < 1000000;
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--profile-dir"))
            dir = v;
        else if (!strcmp(a, "--html"))
            html = v;
        else if (!strcmp(a, "--trace"))
            trace = v;
        else if (!strcmp(a, "--cost-model") && (!strcmp(v, "own") || !strcmp(v, "galvatron")))
            mode = !strcmp(v, "own") ? GV_COST_OWN : GV_COST_GALVATRON;
        else if ((!strcmp(a, "-n") || !strcmp(a, "--layers") || !strcmp(a, "--seq")) && is_int)
            *(a[1] == 'n' ? &world : a[2] == 'l' ? &layers : &seq) = (int)x;
        else if (!strcmp(a, "-n") || !strcmp(a, "--layers") || !strcmp(a, "--seq") ||
                 !strcmp(a, "--cost-model")) {
            fprintf(stderr, "galvatron explain: %s '%s': expected %s\n", a, v,
                    a[2] == 'c' ? "own or galvatron" : "a positive integer");
            return 2;
        } else {
            fprintf(stderr, "galvatron explain: unknown option '%s' (see galvatron explain --help)\n", a);
            return 2;
        }
    }
    if (!plan_path || !model || !world || !dir) {
        fprintf(stderr, "galvatron explain: needs PLAN, --model, -n and --profile-dir\n");
        return 2;
    }
    gv_model_spec spec;
    if (gv_model_spec_resolve(&spec, model) != GV_OK) return gv_explain_fail(gv_last_error());
    if (layers) spec.n_layer = layers;
    if (!seq) seq = spec.max_seq;
    gv_plan p;
    if (gv_plan_load(&p, plan_path, spec.n_layer, world) != GV_OK) return gv_explain_fail(gv_last_error());
    static gv_cost_env env; /* large; env.cm points into it */
    gv_plan_cost c;
    gv_timeline_event *ev = NULL;
    int n = 0;
    double makespan = 0, fwd[64], bwd[64];
    gv_status st = gv_plan_validate(&p, &spec, seq, plan_path);
    if (st == GV_OK && p.pp > 64) st = gv_fail(GV_ERR_UNSUPPORTED, "%s: pp %d > 64", plan_path, p.pp);
    if (st == GV_OK) {
        gv_cost_opts co;
        gv_cost_opts_default(&co, mode, world, spec.n_embd, seq);
        gv_cost_opts_set_layers(&co, &spec); /* with the layer types (t5: encoder, decoder) */
        /* the profiles' precision: whichever computation profile the directory has, fp32 first */
        char comp[1200];
        snprintf(comp, sizeof comp, "%s/computation_profiling_fp32_%s_all.json", dir, spec.name);
        co.mixed_precision = access(comp, R_OK) != 0;
        /* fp32 profiles are this runtime's CPU ranks: memory by the runtime's own formula (exact) */
        if (!co.mixed_precision && mode == GV_COST_OWN) co.spec = &spec;
        st = gv_cost_env_load(&env, dir, spec.name, 1, world, &co, GV_PROFILE_STATIC, GV_PROFILE_STATIC);
    }
    if (st == GV_OK) st = gv_cost_plan(&env.cm, &p, 0, &c);
    if (st == GV_OK) {
        gv_explain_stage_times(&p, &c, fwd, bwd);
        double p2p = 0; /* the cost model folds the boundary messages into the stage times */
        st = gv_timeline_simulate(&p, fwd, bwd, p2p, &ev, &n, &makespan);
    }
    if (st != GV_OK) {
        gv_plan_free(&p);
        return gv_explain_fail(gv_last_error());
    }
    int S = world / p.pp;
    printf("plan %s for %s on %d ranks: pp %d (%s), global batch %d, %d micro-batches, cost model %s\n",
           plan_path, spec.name, world, p.pp, p.schedule == GV_SCHED_GPIPE ? "gpipe" : "1f1b", p.global_batch,
           p.micro_batches, mode == GV_COST_OWN ? "own" : "galvatron");
    /* a model with several layer types (t5: encoder, decoder) shows each layer's type */
    const char *tname[GV_MAX_LAYER_TYPES];
    int tl[GV_MAX_LAYER_TYPES], nt = gv_model_spec_layer_types(&spec, tl, tname);
    printf("%-6s %5s %4s %-8s %4s %-6s %s%s\n", "layer", "stage", "tp", "sp", "dp", "dp", "ckpt",
           nt > 1 ? " type" : "");
    for (int l = 0, s = 0, k = 0, t = 0, end = tl[0]; l < p.n_layer; l++, k++) {
        if (k == p.stage_layers[s]) s++, k = 0;
        while (l >= end && t < nt - 1) end += tl[++t];
        const gv_layer_strategy *x = &p.layers[l];
        printf("%-6d %5d %4d %-8s %4d %-6s ", l, s, x->tp, gv_sp_mode_name(x->sp), S / x->tp,
               gv_zero_name(x->zero));
        if (nt > 1)
            printf("%-4s %s\n", x->ckpt ? "yes" : "", tname[t]);
        else
            printf("%s\n", x->ckpt ? "yes" : "");
    }
    printf("%-6s %5s %4d %-8s %4d %-6s\n", "vocab", "first,last", p.vocab.tp, gv_sp_mode_name(p.vocab.sp),
           S / p.vocab.tp, gv_zero_name(p.vocab.zero));
    printf("\n%-5s %10s %10s %10s %10s %10s %10s %10s %10s\n", "stage", "fwd ms", "bwd ms", "params MB",
           "grads MB", "optim MB", "acts MB", "comm MB", "total MB");
    for (int s = 0; s < p.pp; s++) {
        const gv_cost_mem *m = &c.mem[s];
        printf("%-5d %10.3f %10.3f %10.1f %10.1f %10.1f %10.1f %10.1f %10.1f\n", s, fwd[s] * 1e3,
               bwd[s] * 1e3, m->parameters, m->gradients, m->optimizer, m->activations,
               m->comm + m->workspace, gv_cost_mem_total(m));
    }
    double busy = 0; /* the busiest stage's share of the step */
    for (int s = 0; s < p.pp; s++) busy = fmax(busy, (fwd[s] + bwd[s]) * p.micro_batches);
    printf("\npredicted step %.3f ms, %.3f samples/s; simulated timeline %.3f ms (bubble %.1f%% of the "
           "busiest stage)\n",
           c.step_s * 1e3, c.throughput, makespan * 1e3,
           makespan > 0 ? 100.0 * (1.0 - busy / makespan) : 0.0);
    int rc = 0;
    if (html && gv_explain_write_html(html, &spec, &p, &c, ev, n, makespan) != GV_OK)
        rc = gv_explain_fail(gv_last_error());
    else if (html)
        printf("wrote %s\n", html);
    if (trace && gv_explain_write_trace(trace, &p, ev, n) != GV_OK)
        rc = gv_explain_fail(gv_last_error());
    else if (trace)
        printf("wrote %s\n", trace);
    free(ev);
    gv_plan_free(&p);
    return rc;
}
