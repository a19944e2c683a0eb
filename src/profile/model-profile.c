/* Model profiler: runs the runtime's own gv_model at two layer counts (Galvatron's layernum_min/max) and
 * takes the difference as one layer's cost — forward and backward time per sample at every (seq, tp, batch)
 * point, and memory per layer (model states, activations per sample, with and without recompute) from the
 * arenas' report. A model with several layer types (T5: encoder, decoder) runs the base (layernum_min of
 * every type) and, per type, the base with layernum_max of that type, as Galvatron's
 * get_layernum_list_for_profiling does, so each type's cost is a difference of measured runs. Every rank runs
 * the same sequence; tp consecutive ranks form one model replica (split by Megatron TP with or without
 * sequence parallelism, or by Ulysses), replicas run at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/hybrid.h"
#include "gv/layout.h"
#include "gv/log.h"
#include "gv/profiler.h"
#include "profile-util.h"

void gv_model_prof_config_defaults(gv_model_prof_config *c) {
    memset(c, 0, sizeof *c);
    c->mem_batch = 8;
    c->layers_min = 1;
    c->layers_max = 2;
    c->pp_memory = 1;
    c->time_ckpt = 1;
    c->time_step = 1;
    c->warmup = 1;
    c->iters = 5;
    c->seed = 1337;
}

void gv_model_prof_free(gv_model_prof *p) {
    if (!p) return;
    free(p->time);
    free(p->mem);
    memset(p, 0, sizeof *p);
}

static gv_status gv_mp_push(void **arr, int *n, size_t elem, const void *x) {
    void *a = realloc(*arr, (size_t)(*n + 1) * elem);
    if (!a) return gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    memcpy((char *)a + (size_t)*n * elem, x, elem);
    *arr = a;
    (*n)++;
    return GV_OK;
}

/* The tp group (consecutive ranks) and dp group (stride tp) of this rank; every rank creates every group
 * in the same order. NULL for a group of one. */
static gv_status gv_mp_groups(gv_comm *world, int tp, gv_comm **tpg, gv_comm **dpg) {
    int W = gv_comm_size(world);
    int *ranks = malloc((size_t)W * sizeof *ranks);
    if (!ranks) return gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    gv_status st = GV_OK;
    *tpg = *dpg = NULL;
    for (int pass = 0; pass < 2 && st == GV_OK; pass++) {
        int g = pass ? W / tp : tp;
        if (g == 1) continue;
        int n = gv_layout_block_groups(0, W, g, pass ? 0 : 1, ranks);
        for (int i = 0; i < n && st == GV_OK; i++) {
            gv_comm *c = NULL;
            st = gv_comm_group(world, ranks + (size_t)i * g, g, &c);
            if (c) *(pass ? dpg : tpg) = c;
        }
    }
    free(ranks);
    return st;
}

typedef struct {
    gv_comm *world;
    gv_backend *b;
    const gv_model_prof_config *c;
    gv_comm *tpg, *dpg; /* the tp (or Ulysses) group and the data-parallel group of this rank */
    int tp, vtp;
    gv_sp_mode sp;
} gv_mp_ctx;

/* Positions of a sequence on one rank. */
static int gv_mp_local_seq(const gv_mp_ctx *x, int T) {
    return x->sp == GV_SP_ULYSSES ? T / x->tp : T;
}

/* Runs of one configuration: the base and one per layer type. */
static int gv_mp_nrun(const gv_model_prof_config *c) {
    return 1 + gv_model_spec_layer_types(&c->spec, NULL, NULL);
}

/* Layers of run r (0: layers_min of every type; 1 + t: layers_max of type t): the model spec. */
static gv_model_spec gv_mp_spec(const gv_model_prof_config *c, int r) {
    gv_model_spec s = c->spec;
    int n[GV_MAX_LAYER_TYPES], nt = gv_model_spec_layer_types(&s, NULL, NULL);
    for (int t = 0; t < nt; t++) n[t] = r == 1 + t ? c->layers_max : c->layers_min;
    s.n_layer = 0;
    for (int t = 0; t < nt; t++) s.n_layer += n[t];
    if (s.arch == GV_ARCH_T5) s.n_dec_layer = n[1];
    return s;
}

/* The pipelined memory runs' model: L layers, one per stage (T5: L / 2 of each stack, so the first stage
 * holds an encoder layer and the last a decoder layer). */
static gv_model_spec gv_mp_pp_spec(const gv_model_spec *s, int L) {
    gv_model_spec r = *s;
    r.n_layer = L;
    if (r.arch == GV_ARCH_T5) r.n_dec_layer = L / 2;
    return r;
}

/* The models of one configuration (one per run), with random tokens. */
typedef struct {
    gv_model *m[GV_PROF_RUNS];
    int n;
    int32_t *tokens, *targets;
    int *ckpt;
} gv_mp_pair;

static void gv_mp_pair_free(gv_mp_pair *q) {
    for (int k = 0; k < GV_PROF_RUNS; k++) gv_model_free(q->m[k]);
    free(q->tokens);
    free(q->targets);
    free(q->ckpt);
    memset(q, 0, sizeof *q);
}

static gv_status gv_mp_pair_init(gv_mp_pair *q, gv_mp_ctx *x, int B, int T, int ckpt) {
    const gv_model_prof_config *c = x->c;
    memset(q, 0, sizeof *q);
    size_t n = (size_t)B * T;
    q->tokens = malloc(n * (size_t)gv_model_spec_input_width(&c->spec) * sizeof *q->tokens);
    q->targets = malloc(n * sizeof *q->targets);
    int nt = gv_mp_nrun(c) - 1, maxl = c->layers_max + (nt - 1) * c->layers_min;
    q->n = nt + 1;
    q->ckpt = malloc((size_t)maxl * sizeof *q->ckpt);
    if (!q->tokens || !q->targets || !q->ckpt) {
        gv_mp_pair_free(q);
        return gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    }
    gv_model_spec_random_batch(&c->spec, c->seed, B, T, q->tokens, q->targets); /* any family's inputs */
    for (int l = 0; l < maxl; l++) q->ckpt[l] = ckpt;
    gv_model_dist d = {.dp = x->dpg,
                       .zero = 0,
                       .ckpt = q->ckpt,
                       .tp = x->tpg,
                       .vocab_parallel = x->vtp,
                       .megatron_sp = x->sp == GV_SP_MEGATRON};
    if (x->sp == GV_SP_ULYSSES) {
        /* The group shards the sequence; gradients are summed over every rank (the sdp group). */
        d.tp = NULL;
        d.sp = x->tpg;
        d.dp = gv_comm_size(x->world) > 1 ? x->world : NULL;
    }
    for (int k = 0; k < q->n; k++) {
        gv_model_spec s2 = gv_mp_spec(c, k);
        gv_status st = gv_model_init_dist(&q->m[k], &s2, x->b, B, T, &d);
        if (st == GV_OK) st = gv_model_init_weights(q->m[k], c->seed);
        if (st != GV_OK) {
            gv_mp_pair_free(q);
            return st;
        }
    }
    return GV_OK;
}

/* One forward and backward of model k; times in ms (NULL to skip). The world barrier first keeps the
 * replicas' and tp ranks' iterations together. */
static gv_status gv_mp_step(gv_mp_ctx *x, gv_mp_pair *q, int k, double *fwd, double *bwd) {
    float loss;
    GV_TRY(gv_model_zero_grad(q->m[k]));
    GV_TRY(gv_backend_sync(x->b));
    GV_TRY(gv_comm_barrier(x->world));
    double t0 = gv_prof_now_ms();
    GV_TRY(gv_model_forward(q->m[k], q->tokens, q->targets, &loss));
    GV_TRY(gv_backend_sync(x->b));
    double t1 = gv_prof_now_ms();
    GV_TRY(gv_model_backward(q->m[k], 1.0f));
    GV_TRY(gv_backend_sync(x->b));
    double t2 = gv_prof_now_ms();
    if (!isfinite(loss)) return gv_fail(GV_ERR_BACKEND, "profile model: non-finite loss %g", (double)loss);
    if (fwd) *fwd = t1 - t0;
    if (bwd) *bwd = t2 - t1;
    return GV_OK;
}

/* Medians of `n` alternating iterations of the models (so slow drift of the machine hits all alike),
 * maximum over the ranks (the same on every rank). */
static gv_status gv_mp_measure(gv_mp_ctx *x, gv_mp_pair *q, int n, gv_time_point *t) {
    int R = q->n;
    double *f = malloc(2 * (size_t)R * n * sizeof *f);
    if (!f) return gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    gv_status st = GV_OK;
    for (int i = 0; st == GV_OK && i < n; i++)
        for (int k = 0; k < R && st == GV_OK; k++)
            st = gv_mp_step(x, q, k, &f[k * n + i], &f[(R + k) * n + i]);
    for (int k = 0; k < R && st == GV_OK; k++) {
        t->fwd_ms[k] = gv_prof_median(f + k * n, n);
        t->bwd_ms[k] = gv_prof_median(f + (R + k) * n, n);
        st = gv_prof_max(x->world, &t->fwd_ms[k]);
        if (st == GV_OK) st = gv_prof_max(x->world, &t->bwd_ms[k]);
    }
    free(f);
    return st;
}

/* The optimizer's share of a step on model k: zero gradients, global norm, AdamW (what the trainer runs once
 * per step besides forward and backward), median of iters, maximum over ranks. */
static gv_status gv_mp_opt(gv_mp_ctx *x, gv_mp_pair *q, int k, gv_model_prof *p) {
    int n = x->c->iters > 0 ? x->c->iters : 1;
    double *f = malloc((size_t)n * sizeof *f);
    if (!f) return gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    gv_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    gv_status st = GV_OK;
    for (int i = -1; i < n && st == GV_OK; i++) { /* one untimed */
        double norm;
        st = gv_comm_barrier(x->world);
        double t0 = gv_prof_now_ms();
        if (st == GV_OK) st = gv_model_grad_norm(q->m[k], &norm);
        if (st == GV_OK) st = gv_model_adamw_step(q->m[k], &cfg, 1e-6f, 1.0f, i + 2);
        if (st == GV_OK) st = gv_model_zero_grad(q->m[k]);
        if (st == GV_OK) st = gv_backend_sync(x->b);
        if (i >= 0) f[i] = gv_prof_now_ms() - t0;
    }
    if (st == GV_OK) {
        p->opt_ms = gv_prof_median(f, n);
        st = gv_prof_max(x->world, &p->opt_ms);
        gv_memory_report r;
        gv_model_memory(q->m[k], &r);
        p->opt_params = (double)r.parameters / (double)gv_dtype_size(gv_backend_dtype(x->b));
    }
    free(f);
    return st;
}

/* The per-step cost besides the model's parts: a training step as the trainer runs it (zero gradients,
 * the micro-batch through the layer-wise runtime gv_hybrid, gradient all-reduce, norm, AdamW) of a DDP
 * plan over the world with layers_min layers and B sequences per rank, minus what the cost model adds up
 * for it from the profile: forward + backward of the gv_model at the same point (t, measured just before),
 * the all-reduce and the optimizer work, both timed inside the same steps. Medians over iters, maximum
 * over ranks. What is left (runtime bookkeeping: batch split, loss, staging, per-step calls) is the own
 * model's step_fixed_ms. */
static gv_status gv_mp_step_fixed(gv_mp_ctx *x, int T, int B, const gv_time_point *t, gv_model_prof *p) {
    const gv_model_prof_config *c = x->c;
    int W = gv_comm_size(x->world), n = c->iters > 0 ? c->iters : 1;
    gv_model_spec s = gv_mp_spec(c, 0);
    gv_layer_strategy one = {1, GV_SP_NONE, 0, 0};
    gv_plan plan;
    GV_TRY(gv_plan_uniform(&plan, W, 1, s.n_layer, one, one, GV_SCHED_1F1B, B * W, 1));
    gv_hybrid *h = NULL;
    gv_status st = gv_hybrid_init(&h, &s, x->b, x->world, &plan, T, "profile model");
    gv_plan_free(&plan);
    if (st == GV_OK) st = gv_hybrid_init_weights(h, c->seed);
    size_t nt = (size_t)B * W * T;
    int32_t *tok = malloc(nt * (size_t)gv_model_spec_input_width(&s) * sizeof *tok),
            *tgt = malloc(nt * sizeof *tgt);
    double *f = malloc(3 * (size_t)n * sizeof *f);
    if (st == GV_OK && (!tok || !tgt || !f)) st = gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    if (st == GV_OK) gv_model_spec_random_batch(&s, c->seed, B * W, T, tok, tgt);
    gv_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int i = -c->warmup - 1; i < n && st == GV_OK; i++) { /* at least one untimed */
        float loss;
        double norm;
        st = gv_comm_barrier(x->world);
        double t0 = gv_prof_now_ms(), t1 = t0, t2 = t0;
        if (st == GV_OK) st = gv_hybrid_zero_grad(h);
        if (st == GV_OK) st = gv_hybrid_train_batch(h, tok, tgt, &loss);
        if (st == GV_OK) st = gv_backend_sync(x->b);
        if (st == GV_OK) t1 = gv_prof_now_ms();
        if (st == GV_OK) st = gv_hybrid_reduce_grads(h);
        if (st == GV_OK) st = gv_backend_sync(x->b);
        if (st == GV_OK) t2 = gv_prof_now_ms();
        if (st == GV_OK) st = gv_hybrid_grad_norm(h, &norm);
        if (st == GV_OK) st = gv_hybrid_adamw_step(h, &cfg, 1e-6f, 1.0f, i + c->warmup + 2);
        if (st == GV_OK) st = gv_backend_sync(x->b);
        double t3 = gv_prof_now_ms();
        if (i >= 0) f[i] = t3 - t0, f[n + i] = t2 - t1, f[2 * n + i] = t3 - t2;
    }
    double step = 0, red = 0, opt = 0;
    if (st == GV_OK) {
        step = gv_prof_median(f, n);
        red = gv_prof_median(f + n, n);
        opt = gv_prof_median(f + 2 * n, n);
        st = gv_prof_max(x->world, &step);
    }
    if (st == GV_OK) st = gv_prof_max(x->world, &red);
    if (st == GV_OK) st = gv_prof_max(x->world, &opt);
    free(tok);
    free(tgt);
    free(f);
    gv_hybrid_free(h);
    if (st != GV_OK) return st;
    p->step_ms = step;
    p->step_reduce_ms = red;
    p->step_opt_ms = opt;
    p->step_batch = B;
    p->step_seq = T;
    /* the zero_grad of the step is in the optimizer's measured share (gv_mp_opt), not here */
    p->step_fixed_ms = fmax(0.0, step - (t->fwd_ms[0] + t->bwd_ms[0]) - red - opt);
    if (gv_comm_rank(x->world) == 0)
        gv_info(
            "profile model: training step of %d layer(s), batch %d per rank: %.3f ms = forward + backward "
            "%.3f + all-reduce %.3f + optimizer %.3f + the rest %.3f ms",
            s.n_layer, B, step, t->fwd_ms[0] + t->bwd_ms[0], red, opt, p->step_fixed_ms);
    return GV_OK;
}

static gv_status gv_mp_time_point(gv_mp_ctx *x, int T, int B, int ckpt, gv_model_prof *p) {
    const gv_model_prof_config *c = x->c;
    gv_mp_pair q;
    GV_TRY(gv_mp_pair_init(&q, x, B, gv_mp_local_seq(x, T), ckpt));
    gv_status st = GV_OK;
    for (int i = 0; st == GV_OK && i < c->warmup; i++)
        for (int k = 0; k < q.n && st == GV_OK; k++) st = gv_mp_step(x, &q, k, NULL, NULL);
    gv_time_point t;
    memset(&t, 0, sizeof t);
    t.seq = T, t.tp = x->tp, t.batch = B, t.sp = x->sp, t.vtp = x->vtp, t.ckpt = ckpt;
    int dL = c->layers_max - c->layers_min, n = c->iters, nt = q.n - 1;
    const char *names[GV_MAX_LAYER_TYPES];
    gv_model_spec_layer_types(&c->spec, NULL, names);
    /* A layer too small for the timer's noise can come out at <= 0: measure again with twice the
     * iterations (the decision is on rank-reduced values, so every rank takes it alike), then give up. */
    for (int attempt = 0; st == GV_OK; attempt++, n *= 2) {
        st = gv_mp_measure(x, &q, n, &t);
        if (st != GV_OK) break;
        int bad = -1;
        for (int ty = 0; ty < nt; ty++) {
            t.layer_fwd_ms[ty] = (t.fwd_ms[1 + ty] - t.fwd_ms[0]) / B / dL;
            t.layer_bwd_ms[ty] = (t.bwd_ms[1 + ty] - t.bwd_ms[0]) / B / dL;
            if (bad < 0 && !(t.layer_fwd_ms[ty] > 0 && t.layer_bwd_ms[ty] > 0)) bad = ty;
        }
        if (bad < 0) break;
        if (attempt == 2) {
            st = gv_fail(
                GV_ERR_BACKEND,
                "profile model: seq %d tp %d %s batch %d: %d %s layers were not slower than %d (forward "
                "%.3f vs %.3f ms, backward %.3f vs %.3f ms): timing noise, use more --iters, a larger "
                "--batch or --layers-max",
                T, x->tp, gv_sp_mode_name(x->sp), B, c->layers_max, names[bad], c->layers_min,
                t.fwd_ms[1 + bad], t.fwd_ms[0], t.bwd_ms[1 + bad], t.bwd_ms[0]);
            break;
        }
        if (gv_comm_rank(x->world) == 0)
            gv_warn(
                "profile model: seq %d tp %d %s batch %d: layer time not above the noise, measuring again "
                "with %d iterations",
                T, x->tp, gv_sp_mode_name(x->sp), B, 2 * n);
    }
    if (st == GV_OK && x->tp == 1 && !ckpt && B == c->batches[0]) st = gv_mp_opt(x, &q, 1, p);
    gv_mp_pair_free(&q);
    if (st == GV_OK && x->tp == 1 && !ckpt && B == c->batches[0] && c->time_step && p->step_ms == 0)
        st = gv_mp_step_fixed(x, T, B, &t, p);
    if (st != GV_OK) return st;
    /* the base run less its layers of every type */
    double lf = 0, lb = 0;
    for (int ty = 0; ty < nt; ty++) lf += t.layer_fwd_ms[ty], lb += t.layer_bwd_ms[ty];
    t.other_fwd_ms = fmax(0.0, (t.fwd_ms[0] - c->layers_min * lf * B) / B);
    t.other_bwd_ms = fmax(0.0, (t.bwd_ms[0] - c->layers_min * lb * B) / B);
    if (gv_comm_rank(x->world) == 0)
        for (int ty = 0; ty < nt; ty++)
            gv_info("profile model: seq %d tp %d %s%s batch %d%s%s: forward %.3f / %.3f ms, backward %.3f / "
                    "%.3f ms (%d / %d layers) -> per layer per sample %.4f + %.4f ms",
                    T, x->tp, gv_sp_mode_name(x->sp), ckpt ? " recompute" : "", B, nt > 1 ? " " : "",
                    nt > 1 ? names[ty] : "", t.fwd_ms[0], t.fwd_ms[1 + ty], t.bwd_ms[0], t.bwd_ms[1 + ty],
                    c->layers_min, c->layers_max, t.layer_fwd_ms[ty], t.layer_bwd_ms[ty]);
    return gv_mp_push((void **)&p->time, &p->ntime, sizeof t, &t);
}

static double gv_mb(double bytes) {
    return bytes / 1048576.0;
}
static size_t gv_states(const gv_memory_report *r) {
    return r->parameters + r->gradients + r->optimizer;
}
static size_t gv_peak_act(const gv_memory_report *r) {
    return r->activations + r->workspace + r->comm;
}

static gv_status gv_mp_mem_point(gv_mp_ctx *x, int T, int ckpt, gv_model_prof *p) {
    const gv_model_prof_config *c = x->c;
    int W = gv_comm_size(x->world), lb = c->mem_batch / (W / x->tp);
    gv_mp_pair q;
    GV_TRY(gv_mp_pair_init(&q, x, lb, gv_mp_local_seq(x, T), ckpt));
    gv_mem_point m;
    memset(&m, 0, sizeof m);
    m.seq = T;
    m.tp = x->tp;
    m.pp = 1;
    m.sp = x->sp;
    m.vtp = x->vtp;
    m.ckpt = ckpt;
    m.global_batch = c->mem_batch;
    m.local_batch = lb;
    int64_t mine[6], *all = malloc((size_t)W * 6 * sizeof *all);
    gv_status st = all ? GV_OK : gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    int nt = q.n - 1;
    for (int k = 0; k < q.n && st == GV_OK; k++) {
        st = gv_mp_step(x, &q, k, NULL, NULL); /* measured after an iteration, as Galvatron does */
        gv_memory_report r;
        gv_model_memory(q.m[k], &r);
        int64_t v[6] = {(int64_t)r.parameters,  (int64_t)r.gradients, (int64_t)r.optimizer,
                        (int64_t)r.activations, (int64_t)r.workspace, (int64_t)r.comm};
        memcpy(mine, v, sizeof v);
        if (st == GV_OK) st = gv_comm_allgather(x->world, mine, all, 6, GV_COMM_I64);
        for (int e = 0; e < 2 && st == GV_OK; e++) {
            const int64_t *a = all + (size_t)(e ? W - 1 : 0) * 6;
            gv_memory_report *o = &m.mem[k][e];
            o->parameters = (size_t)a[0], o->gradients = (size_t)a[1], o->optimizer = (size_t)a[2];
            o->activations = (size_t)a[3], o->workspace = (size_t)a[4], o->comm = (size_t)a[5];
        }
    }
    free(all);
    gv_mp_pair_free(&q);
    if (st != GV_OK) return st;
    /* Galvatron's post-processing (pp = 1): rank 0, difference over the layer counts, per layer type. */
    double dL = c->layers_max - c->layers_min, ms_all = 0, act_all = 0;
    const char *names[GV_MAX_LAYER_TYPES];
    gv_model_spec_layer_types(&c->spec, NULL, names);
    const gv_memory_report *r0 = &m.mem[0][0];
    for (int ty = 0; ty < nt; ty++) {
        const gv_memory_report *r1 = &m.mem[1 + ty][0];
        double ms_layer = ((double)gv_states(r1) - (double)gv_states(r0)) / dL;
        double act_layer = ((double)r1->activations - (double)r0->activations) / dL;
        m.param_mb[ty] = gv_mb(ms_layer) / 4;
        m.act_mb[ty] = gv_mb(act_layer) / lb;
        ms_all += ms_layer;
        act_all += act_layer;
        if (gv_comm_rank(x->world) == 0)
            gv_info("profile model: memory seq %d tp %d %s%s%s, batch %d per replica%s%s: layer model states "
                    "%.4f MB, activations %.4f MB per sample",
                    T, x->tp, gv_sp_mode_name(x->sp), x->vtp ? " vocab-split" : "", ckpt ? " recompute" : "",
                    lb, nt > 1 ? ", " : "", nt > 1 ? names[ty] : "", gv_mb(ms_layer), m.act_mb[ty]);
    }
    m.other_ms_mb = gv_mb((double)gv_states(r0) - c->layers_min * ms_all);
    /* Galvatron divides by the local batch / tp when the vocab layers are whole on every tp rank. */
    m.other_act_mb = gv_mb((double)gv_peak_act(r0) - c->layers_min * act_all) /
                     (x->vtp || x->tp == 1 ? lb : (double)lb / x->tp);
    return gv_mp_push((void **)&p->mem, &p->nmem, sizeof m, &m);
}

/* Galvatron's pipelined memory runs: pp stages of world/pp ranks, layernum = pp (one layer per stage),
 * the layers split over tp as `sp` says and the vocab layers over vtp ranks, DDP over the rest, one GPipe
 * micro-batch of the global batch, through the layer-wise runtime (gv_hybrid). Records rank 0 (first
 * stage) and rank world-1 (last stage). */
static gv_status gv_mp_pp_point(gv_mp_ctx *x, int T, int pp, gv_model_prof *p) {
    const gv_model_prof_config *c = x->c;
    int W = gv_comm_size(x->world), B = c->mem_batch;
    gv_model_spec s = gv_mp_pp_spec(&c->spec, pp);
    gv_layer_strategy l = {x->tp, x->tp > 1 ? x->sp : GV_SP_NONE, 0, 0};
    gv_layer_strategy v = {x->vtp ? x->tp : 1, x->vtp ? x->sp : GV_SP_NONE, 0, 0};
    gv_plan plan;
    GV_TRY(gv_plan_uniform(&plan, W, pp, pp, l, v, GV_SCHED_GPIPE, B, 1));
    gv_status st = gv_plan_validate(&plan, &s, T, "profile model");
    if (st == GV_OK) st = gv_hybrid_check(&s, &plan, "profile model");
    gv_hybrid *h = NULL;
    if (st == GV_OK) st = gv_hybrid_init(&h, &s, x->b, x->world, &plan, T, "profile model");
    gv_plan_free(&plan);
    if (st == GV_OK) st = gv_hybrid_init_weights(h, c->seed);
    size_t n = (size_t)B * T;
    int32_t *tok = malloc(n * (size_t)gv_model_spec_input_width(&s) * sizeof *tok),
            *tgt = malloc(n * sizeof *tgt);
    int64_t *all = malloc((size_t)W * 6 * sizeof *all);
    if (st == GV_OK && (!tok || !tgt || !all)) st = gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
    if (st == GV_OK) {
        gv_model_spec_random_batch(&s, c->seed, B, T, tok, tgt);
        float loss;
        st = gv_hybrid_zero_grad(h);
        if (st == GV_OK) st = gv_hybrid_train_batch(h, tok, tgt, &loss);
    }
    gv_mem_point m;
    memset(&m, 0, sizeof m);
    m.seq = T, m.tp = x->tp, m.pp = pp, m.sp = x->sp, m.vtp = x->vtp;
    m.global_batch = B;
    m.local_batch = B / (W / (pp * x->tp));
    if (st == GV_OK) {
        gv_memory_report r;
        gv_hybrid_memory(h, &r);
        int64_t v6[6] = {(int64_t)r.parameters,  (int64_t)r.gradients, (int64_t)r.optimizer,
                         (int64_t)r.activations, (int64_t)r.workspace, (int64_t)r.comm};
        st = gv_comm_allgather(x->world, v6, all, 6, GV_COMM_I64);
    }
    for (int e = 0; e < 2 && st == GV_OK; e++) {
        const int64_t *a = all + (size_t)(e ? W - 1 : 0) * 6;
        gv_memory_report *o = &m.mem[0][e];
        o->parameters = (size_t)a[0], o->gradients = (size_t)a[1], o->optimizer = (size_t)a[2];
        o->activations = (size_t)a[3], o->workspace = (size_t)a[4], o->comm = (size_t)a[5];
    }
    /* The first pipelined run (pp 2, one layer per stage, layers and vocab whole) also times the stages:
     * the first holds the embedding, the last the head and loss, so against one layer's time they give
     * how the vocab layers' time splits between the ends of a pipeline. */
    if (st == GV_OK && pp == 2 && x->tp == 1 && !x->vtp && p->pipe_batch == 0 && c->iters > 0) {
        gv_hybrid_times t0, t1;
        gv_hybrid_timing(h, &t0); /* mean over the one batch so far */
        float loss;
        for (int i = 0; i < c->warmup + c->iters && st == GV_OK; i++) {
            if (i == c->warmup) gv_hybrid_timing(h, &t0);
            st = gv_hybrid_zero_grad(h);
            if (st == GV_OK) st = gv_comm_barrier(x->world);
            if (st == GV_OK) st = gv_hybrid_train_batch(h, tok, tgt, &loss);
        }
        double v[2] = {0, 0}, *va = malloc((size_t)W * 2 * sizeof *va);
        if (st == GV_OK && !va) st = gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
        if (st == GV_OK) {
            gv_hybrid_timing(h, &t1); /* means over 1 + warmup + iters batches */
            int n1 = c->warmup + 1, n2 = n1 + c->iters;
            v[0] = (t1.forward_ms * n2 - t0.forward_ms * n1) / c->iters;
            v[1] = (t1.backward_ms * n2 - t0.backward_ms * n1) / c->iters;
            st = gv_comm_allgather(x->world, v, va, 2, GV_COMM_F64);
        }
        if (st == GV_OK) {
            p->pipe_batch = m.local_batch;
            p->pipe_first_ms[0] = va[0], p->pipe_first_ms[1] = va[1];
            p->pipe_last_ms[0] = va[(W - 1) * 2], p->pipe_last_ms[1] = va[(W - 1) * 2 + 1];
            if (gv_comm_rank(x->world) == 0)
                gv_info(
                    "profile model: pp 2, one layer per stage, batch %d: first stage forward %.3f backward "
                    "%.3f ms, last stage %.3f / %.3f ms",
                    p->pipe_batch, va[0], va[1], p->pipe_last_ms[0], p->pipe_last_ms[1]);
        }
        free(va);
    }
    free(tok);
    free(tgt);
    free(all);
    gv_hybrid_free(h);
    if (st != GV_OK) return st;
    if (gv_comm_rank(x->world) == 0)
        gv_info(
            "profile model: memory seq %d pp %d tp %d %s%s, batch %d per replica: first stage %.3f MB model "
            "states, last stage %.3f MB",
            T, pp, x->tp, gv_sp_mode_name(x->sp), x->vtp ? " vocab-split" : "", m.local_batch,
            gv_mb((double)gv_states(&m.mem[0][0])), gv_mb((double)gv_states(&m.mem[0][1])));
    return gv_mp_push((void **)&p->mem, &p->nmem, sizeof m, &m);
}

gv_status gv_model_prof_config_check(const gv_model_prof_config *c, int W) {
    const gv_model_spec *s = &c->spec;
    if (W < 1 || (W & (W - 1)))
        return gv_fail(GV_ERR_INVALID, "profile model: the world has %d ranks: needs a power of two", W);
    if (c->nseq < 1 || c->ntp < 1 || c->nbatch < 1 || c->nsps < 1)
        return gv_fail(GV_ERR_INVALID, "profile model: needs at least one seq, tp, sp mode and batch");
    for (int i = 0; i < c->nsps; i++)
        if (c->sps[i] != GV_SP_NONE && c->sps[i] != GV_SP_MEGATRON && c->sps[i] != GV_SP_ULYSSES)
            return gv_fail(GV_ERR_INVALID, "profile model: unknown sp mode %d", (int)c->sps[i]);
    if (c->layers_min < 1 || c->layers_max <= c->layers_min)
        return gv_fail(GV_ERR_INVALID, "profile model: layer counts %d and %d: need 1 <= min < max",
                       c->layers_min, c->layers_max);
    if (c->iters < 1 || c->warmup < 0)
        return gv_fail(GV_ERR_INVALID, "profile model: iters %d, warmup %d", c->iters, c->warmup);
    if (c->mem_batch < 1 || c->mem_batch % W)
        return gv_fail(GV_ERR_INVALID, "--mem-batch %d: must be a multiple of the %d ranks", c->mem_batch, W);
    int has1 = 0;
    for (int i = 0; i < c->ntp; i++) {
        int t = c->tps[i];
        has1 |= t == 1;
        if (t < 1 || (t & (t - 1)) || W % t)
            return gv_fail(GV_ERR_INVALID, "--tp %d: must be a power of two that divides the %d ranks", t, W);
        if (s->n_head % t || s->n_kv_head % t || s->ffn % t)
            return gv_fail(GV_ERR_INVALID, "--tp %d: must divide n_head %d, n_kv_head %d and ffn %d of %s", t,
                           s->n_head, s->n_kv_head, s->ffn, s->name);
        for (int k = 0; k < c->nseq; k++)
            if (c->seqs[k] % t)
                return gv_fail(GV_ERR_INVALID, "--tp %d: does not divide seq %d (sequence parallelism)", t,
                               c->seqs[k]);
    }
    if (!has1)
        return gv_fail(GV_ERR_INVALID, "--tp: must include 1 (Galvatron's files are keyed on tp 1 runs)");
    for (int k = 0; k < c->nseq; k++)
        if (c->seqs[k] < 1 || c->seqs[k] > s->max_seq)
            return gv_fail(GV_ERR_INVALID, "--seq %d: must be in [1, %d] (max_seq of %s)", c->seqs[k],
                           s->max_seq, s->name);
    return gv_model_spec_validate(s, s->name);
}

gv_status gv_model_prof_run(gv_model_prof *p, gv_comm *world, gv_backend *b, const gv_model_prof_config *c) {
    memset(p, 0, sizeof *p);
    int W = gv_comm_size(world);
    const gv_model_spec *s = &c->spec;
    GV_TRY(gv_model_prof_config_check(c, W));
    snprintf(p->model, sizeof p->model, "%s", s->name);
    snprintf(p->precision, sizeof p->precision, "%s", gv_backend_dtype(b) == GV_BF16 ? "bf16" : "fp32");
    snprintf(p->backend, sizeof p->backend, "%s", gv_backend_name(b));
    gv_prof_date(p->date, sizeof p->date);
    p->world = W;
    p->layers_min = c->layers_min;
    p->layers_max = c->layers_max;
    p->warmup = c->warmup;
    p->iters = c->iters;
    p->spec = *s;
    p->n_types = gv_model_spec_layer_types(s, NULL, p->type_names);
    if (gv_comm_rank(world) == 0)
        gv_info(
            "profile model: %s, %d rank(s), layers %d and %d%s, %d seq x %d tp x %d batch point(s), %d+%d "
            "iterations",
            s->name, W, c->layers_min, c->layers_max,
            p->n_types > 1 ? " of each layer type (a base run and one per type)" : "", c->nseq, c->ntp,
            c->nbatch, c->warmup, c->iters);
    gv_status st = GV_OK;
    for (int k = 0; k < c->nseq && st == GV_OK; k++)
        for (int i = 0; i < c->ntp && st == GV_OK; i++) {
            int t = c->tps[i];
            gv_comm *tpg = NULL, *dpg = NULL;
            st = gv_mp_groups(world, t, &tpg, &dpg);
            /* At t = 1 every mode is the same run. Megatron-SP needs the vocab split; without SP Galvatron
             * profiles the vocab whole (the layer costs) and split (the vocab layers' cost per degree). */
            for (int mi = 0; mi < (t == 1 ? 1 : c->nsps) && st == GV_OK; mi++) {
                gv_sp_mode sp = t == 1 ? GV_SP_NONE : c->sps[mi];
                int vtp_lo = sp == GV_SP_MEGATRON,
                    vtp_hi = sp == GV_SP_MEGATRON || (sp == GV_SP_NONE && t > 1);
                for (int vtp = vtp_lo; vtp <= vtp_hi && st == GV_OK; vtp++) {
                    gv_mp_ctx x = {world, b, c, tpg, dpg, t, vtp, sp};
                    int extra = sp == GV_SP_NONE && vtp; /* the split-vocab run: memory, no ckpt */
                    /* Plain TP is timed with the vocab layers split, as the runtime's plain-TP plans run
                     * them (the layer costs are the same either way; the vocab layers' differ by the split;
                     * Galvatron's computation file has tp 1 points only) */
                    int timed = !(sp == GV_SP_NONE && t > 1) || vtp;
                    for (int ck = 0; ck <= (c->time_ckpt != 0) && timed; ck++)
                        for (int j = 0; j < c->nbatch && st == GV_OK; j++)
                            st = gv_mp_time_point(&x, c->seqs[k], c->batches[j], ck, p);
                    for (int ck = 0; ck < 2 - extra && st == GV_OK; ck++)
                        st = gv_mp_mem_point(&x, c->seqs[k], ck, p);
                }
            }
        }
    /* Pipelined memory runs, as Galvatron's profiler does them: pp 2 and 4 (within the world), layernum =
     * pp, every degree that fits, the vocab layers whole and split (split only, under Megatron-SP). */
    for (int k = 0; k < c->nseq && st == GV_OK && c->pp_memory; k++)
        for (int pp = 2; pp <= 4 && pp <= W && st == GV_OK; pp *= 2)
            for (int i = 0; i < c->ntp && st == GV_OK; i++) {
                int t = c->tps[i];
                if (pp * t > W) continue;
                for (int mi = 0; mi < (t == 1 ? 1 : c->nsps) && st == GV_OK; mi++) {
                    gv_sp_mode sp = t == 1 ? GV_SP_NONE : c->sps[mi];
                    if (sp == GV_SP_ULYSSES) continue;
                    int vtp_lo = sp == GV_SP_MEGATRON, vtp_hi = t > 1;
                    for (int vtp = vtp_lo; vtp <= vtp_hi && st == GV_OK; vtp++) {
                        gv_mp_ctx x = {world, b, c, NULL, NULL, t, vtp, sp};
                        st = gv_mp_pp_point(&x, c->seqs[k], pp, p);
                    }
                }
            }
    if (st != GV_OK) gv_model_prof_free(p);
    return st;
}
