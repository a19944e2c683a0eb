/* Outer loops of the search (reference §3.2) and the per-task solve (§3.3): for every (global batch B,
 * micro-batches m, pp, tp/sp mode, global-buffer group g) task, the layer strategies of that task, one
 * stage DP per pipeline stage, every vocab strategy, and the pipeline formula on the result. The tasks of
 * one (B, m, pp) share their DPs (gv_group) and run on one thread of a pthread pool; the answer is reduced
 * in task order, so it does not depend on the thread count. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gv/search.h"

enum { GV_MODE_TP_ONLY = 0, GV_MODE_SP_ONLY = 1, GV_MODE_TP_WITH_SP = 2 };

typedef struct {
    int B, m, pp, mode, g;
    /* result */
    gv_status st;
    char err[256];
    int found;
    double step;
    gv_plan plan;
    gv_plan_cost cost;
    /* closest plan when nothing fits: largest stage memory need (incl. the reserve) */
    int have_close;
    double close_need;
    int close_stage;
    gv_plan close;
} gv_task;

typedef struct {
    const gv_cost_model *cm;
    const gv_search_opts *o;
    const gv_strategy *ls, *vs;
    int nls, nvs;
    gv_task *tasks;
    int ntasks;
    int *group_start, ngroups; /* tasks of one (B, m, pp) are consecutive */
    int NT, *ltype;            /* layer types, the type of each layer [n_layer] */
    atomic_int next;
} gv_search_ctx;

static double gv_now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Memory kept back for the allocator: Galvatron keeps 20% of a budget above 20 GB (integer GB test). */
static int gv_mem_cache(const gv_cost_model *cm, const gv_search_opts *o) {
    int budget = (int)o->memory_mb;
    if (cm->o.mem_reserve && budget / 1024 > 20) return (int)(budget * 0.2);
    return 0;
}

static int gv_task_keeps(const gv_search_ctx *c, const gv_task *t, const gv_strategy *s) {
    int max_dp = t->B / t->m < c->o->world / t->pp ? t->B / t->m : c->o->world / t->pp;
    if (max_dp < 1) max_dp = 1;
    if (s->pp != t->pp || gv_strategy_tsp(s) > t->g || s->dp > max_dp) return 0;
    if (t->mode == GV_MODE_TP_ONLY && s->sp > 1) return 0;
    if (t->mode == GV_MODE_SP_ONLY && s->tp > 1) return 0;
    /* own model: only plans the runtime can run (the micro-batch splits evenly over dp) */
    if (c->cm->o.mode == GV_COST_OWN && (t->B / t->m) % s->dp) return 0;
    return 1;
}

static gv_layer_strategy gv_to_layer(const gv_cost_model *cm, const gv_strategy *s) {
    gv_layer_strategy l;
    l.tp = gv_strategy_tsp(s);
    l.sp = s->sp > 1 ? GV_SP_ULYSSES : (s->tp > 1 && cm->o.sequence_parallel ? GV_SP_MEGATRON : GV_SP_NONE);
    l.zero = gv_strategy_sdp(s) > 1 ? s->zero : 0;
    l.ckpt = s->ckpt;
    return l;
}

/* Fills a plan for the task: layer strategies by index into ls, vocab strategy v, stage sizes n[]. */
static gv_status gv_make_plan(const gv_search_ctx *c, const gv_task *t, const int *idx, const int *n,
                              const gv_strategy *v, gv_plan *p) {
    const gv_search_opts *o = c->o;
    gv_layer_strategy one = {1, GV_SP_NONE, 0, 0};
    GV_TRY(gv_plan_uniform(p, o->world, t->pp, o->n_layer, one, one, c->cm->o.pipeline, t->B, t->m));
    for (int i = 0; i < o->n_layer; i++) p->layers[i] = gv_to_layer(c->cm, &c->ls[idx[i]]);
    for (int k = 0; k < t->pp; k++) p->stage_layers[k] = n[k];
    p->vocab = gv_to_layer(c->cm, v);
    p->vocab.ckpt = 0;
    return GV_OK;
}

/* Keeps plan p if it is better than the task's best (strict: the first of equals stays, as Galvatron). */
static gv_status gv_offer(const gv_search_ctx *c, gv_task *t, gv_plan *p) {
    gv_plan_cost pc;
    int gtp = t->mode == GV_MODE_SP_ONLY ? 0 : t->g;
    gv_status st = gv_cost_plan(c->cm, p, gtp, &pc);
    if (st != GV_OK) {
        gv_plan_free(p);
        return st;
    }
    if (!t->found || pc.step_s < t->step) {
        if (t->found) gv_plan_free(&t->plan);
        t->plan = *p;
        t->cost = pc;
        t->step = pc.step_s;
        t->found = 1;
    } else {
        gv_plan_free(p);
    }
    return GV_OK;
}

/* Remembers the smallest plan of the task (each stage at its least-memory layers) for the "no plan fits"
 * report. */
static void gv_offer_close(const gv_search_ctx *c, gv_task *t, const int *idx, const int *n,
                           const gv_strategy *v, double need, int stage) {
    if (t->have_close && need >= t->close_need) return;
    gv_plan p;
    if (gv_make_plan(c, t, idx, n, v, &p) != GV_OK) return;
    if (t->have_close) gv_plan_free(&t->close);
    t->close = p;
    t->close_need = need;
    t->close_stage = stage;
    t->have_close = 1;
}

/* Stage sizes for the own model: per stage k and count n the DP's best plan gives (r, c); choose the
 * composition minimising the pipeline formula's sum + (m-1) max part by enumerating the bottleneck bound,
 * then the exact formula decides between the candidates. */
typedef struct {
    int lo, hi;     /* counts considered */
    int nclass;     /* stage starts with different costs (one per distinct run of layer types) */
    const int *cls; /* [L] the class of a stage starting at layer l */
    double *r, *c;  /* [pp][nclass][hi+1], INFINITY = infeasible */
    int *xs, *nxs;  /* [nclass][hi+1], [nclass] scratch */
} gv_parts;

static int gv_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* f[k][l] = least sum of c over stages < k holding l layers with every stage's c <= tau; fills n[] with the
 * composition and returns the sum (INFINITY: none). */
static double gv_least_sum(const gv_parts *pt, int pp, int L, double tau, double *f, int *arg, int *n) {
    int W = pt->hi + 1, NC = pt->nclass;
    for (int i = 0; i < (pp + 1) * (L + 1); i++) f[i] = INFINITY;
    f[0] = 0;
    for (int k = 0; k < pp; k++) {
        /* layers after k stages that can still end at L with the other pp - k stages */
        int l0 = L - (pp - k) * pt->hi, l1 = L - (pp - k) * pt->lo;
        if (l0 < 0) l0 = 0;
        if (l1 > L) l1 = L;
        for (int q = 0; q < NC; q++) { /* the stage's counts within the bound, ascending, per start class */
            const double *cq = pt->c + ((size_t)k * NC + q) * W;
            int nx = 0;
            for (int x = pt->lo; x <= pt->hi; x++)
                if (isfinite(cq[x]) && cq[x] <= tau) pt->xs[q * W + nx++] = x;
            pt->nxs[q] = nx;
        }
        for (int l = l0; l <= l1; l++) {
            double base = f[k * (L + 1) + l];
            if (!isfinite(base)) continue;
            int q = NC > 1 ? pt->cls[l] : 0;
            const double *cq = pt->c + ((size_t)k * NC + q) * W;
            const int *xs = pt->xs + q * W;
            for (int i = 0; i < pt->nxs[q] && l + xs[i] <= L; i++) {
                int x = xs[i];
                double v = base + cq[x];
                if (v < f[(k + 1) * (L + 1) + l + x]) {
                    f[(k + 1) * (L + 1) + l + x] = v;
                    arg[(k + 1) * (L + 1) + l + x] = x;
                }
            }
        }
    }
    double r = f[pp * (L + 1) + L];
    if (!isfinite(r)) return r;
    for (int k = pp, l = L; k > 0; k--) {
        n[k - 1] = arg[k * (L + 1) + l];
        l -= n[k - 1];
    }
    return r;
}

static int gv_best_partition(const gv_cost_model *cm, const gv_parts *pt, int pp, int L, int m, int *best_n) {
    int W = pt->hi + 1, found = 0, nc = 0, NC = pt->nclass;
    double best = INFINITY;
    double *cand = malloc(sizeof(double) * pp * NC * W);
    double *f = malloc(sizeof(double) * (pp + 1) * (L + 1));
    int *arg = malloc(sizeof(int) * (pp + 1) * (L + 1));
    int *n = malloc(sizeof(int) * pp);
    if (!cand || !f || !arg || !n) goto done;
    for (int k = 0; k < pp * NC; k++)
        for (int x = pt->lo; x <= pt->hi; x++)
            if (isfinite(pt->c[k * W + x])) cand[nc++] = pt->c[k * W + x];
    qsort(cand, nc, sizeof(double), gv_cmp_double);
    /* every composition with bottleneck tau costs at least (m-1) tau + the unconstrained least sum */
    double least = gv_least_sum(pt, pp, L, INFINITY, f, arg, n);
    if (!isfinite(least)) goto done;
    /* feasibility grows with tau: the first feasible bound by bisection (the ones below it find nothing) */
    int first = 0, last = nc - 1;
    while (first < last) {
        int mid = (first + last) / 2;
        if (isfinite(gv_least_sum(pt, pp, L, cand[mid], f, arg, n)))
            last = mid;
        else
            first = mid + 1;
    }
    for (int ci = first; ci < nc; ci++) {
        double tau = cand[ci];
        if (ci + 1 < nc && cand[ci + 1] == tau) continue;
        if ((m - 1) * tau + least >= best) break;
        if (!isfinite(gv_least_sum(pt, pp, L, tau, f, arg, n))) continue;
        double R[64], C[64];
        for (int k = 0, l = 0; k < pp; l += n[k], k++) {
            size_t at = ((size_t)k * NC + (NC > 1 ? pt->cls[l] : 0)) * W + n[k];
            R[k] = pt->r[at];
            C[k] = pt->c[at];
        }
        double T = gv_cost_pipeline(cm, pp, m, R, C, 0);
        if (T < best) {
            best = T;
            memcpy(best_n, n, sizeof(int) * pp);
            found = 1;
        }
    }
done:
    free(cand);
    free(f);
    free(arg);
    free(n);
    return found;
}

/* DPs of one (B, m, pp) group, shared by its (mode, g) tasks and transient caps: a DP over all the group's
 * strategies answers first; if its optimum only uses strategies of the asked subset it is also the
 * subset's answer (the same plan the subset's own DP would give, ties included: every value on its path is
 * the same and every other candidate is no better), otherwise the subset's DP is built. With several layer
 * types a stage's DP depends on where it starts: one per (stage, start class), where starts whose next maxn
 * layers have the same types share a class (one type: one class); each is solved on first use and answers
 * every stage length from its start. Membership is per (type, strategy): a strategy's transient, which a
 * cap bounds, depends on the layer type. */
typedef struct {
    unsigned char *in; /* [NT * S] membership over (layer type, group strategy) */
    gv_stage_dp **dp;  /* [(ndps * nclass + q) * NE + entry class], NULL until used */
    int *sub, nsub;    /* strategies present for some type */
    int tried;         /* scratch of gv_group_query */
} gv_dpent;

typedef struct {
    int no_shortcut;
    int S, *gidx, *pos; /* group strategies (indices into the layer space); pos: space index -> group */
    int NT, L;          /* layer types, layers */
    const int *ltype;   /* [L] */
    int *cls, *cstart, nclass;     /* start class of each layer [L]; the first start of each class */
    int *mem;                      /* [(pp * NT + t) * S] */
    double *intra, *inter, *trans; /* [NT * S], [S * S], [NT * S] */
    const gv_strategy *ls;
    int shared, ndps, maxn, minn, max_mem;
    /* own: the vocab layers' redistribution to the first layer (entry, a first-layer cost row; row 0 = none)
     * and from the last (exit, added at query time), m x gv_cost_inter over the group strategies, one row per
     * distinct one; vent / vexit: the classes of each vocab strategy (index into the vocab space) */
    int NE, NX;
    double *erow, *xrow; /* [NE * S], [NX * S] */
    int *vent, *vexit;   /* [nvs]; vexit -1: none (Galvatron) */
    double *sexit;       /* [S] scratch */
    gv_dpent *ent;
    int nent, capent;
    int *tmp, *smem, *sgroup;
    double *sintra, *sinter, *sxrows;
    unsigned char *key;
} gv_group;

static void gv_dpent_free(gv_group *g, gv_dpent *e) {
    if (e->dp)
        for (int k = 0; k < g->ndps * g->nclass * g->NE; k++) gv_stage_dp_free(e->dp[k]);
    free(e->dp);
    free(e->sub);
    free(e->in);
    memset(e, 0, sizeof *e);
}

static void gv_group_free(gv_group *g) {
    for (int i = 0; i < g->nent; i++) gv_dpent_free(g, &g->ent[i]);
    free(g->ent);
    free(g->gidx);
    free(g->pos);
    free(g->mem);
    free(g->intra);
    free(g->inter);
    free(g->trans);
    free(g->tmp);
    free(g->smem);
    free(g->sgroup);
    free(g->sintra);
    free(g->sinter);
    free(g->sxrows);
    free(g->key);
    free(g->cls);
    free(g->cstart);
    free(g->erow);
    free(g->xrow);
    free(g->vent);
    free(g->vexit);
    free(g->sexit);
    memset(g, 0, sizeof *g);
}

/* The entry for membership `in` (its DPs are solved on first use, gv_dpent_dp). */
static gv_dpent *gv_group_entry(gv_group *g, const unsigned char *in, gv_status *st) {
    int S = g->S, NS = g->NT * S;
    for (int i = 0; i < g->nent; i++)
        if (!memcmp(g->ent[i].in, in, NS)) return &g->ent[i];
    if (g->nent == g->capent) {
        int nc = g->capent ? g->capent * 2 : 8;
        gv_dpent *ne = realloc(g->ent, sizeof *ne * nc);
        if (!ne) {
            *st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
            return NULL;
        }
        g->ent = ne;
        g->capent = nc;
    }
    gv_dpent *e = &g->ent[g->nent++];
    memset(e, 0, sizeof *e);
    e->in = malloc(NS);
    e->sub = malloc(sizeof(int) * S);
    e->dp = calloc((size_t)g->ndps * g->nclass * g->NE, sizeof *e->dp);
    if (!e->in || !e->sub || !e->dp) {
        *st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
        return NULL;
    }
    memcpy(e->in, in, NS);
    int n = 0;
    for (int a = 0; a < S; a++) {
        int any = 0;
        for (int t = 0; t < g->NT; t++) any |= in[t * S + a];
        if (any) e->sub[n++] = a;
    }
    e->nsub = n;
    return e;
}

/* The DP of entry e for stage kk (0 when shared), start class q and vocab entry class ve (0: none), solved
 * on first use: layer j of it is layer cstart[q] + j of the model (past the last layer: the last layer's
 * type; never queried); entry row ve is added to layer 0's costs. Its pruning allows for every exit row
 * (a DP that can answer the last stage). */
static const gv_stage_dp *gv_dpent_dp(gv_group *g, gv_dpent *e, int kk, int q, int ve, gv_status *st) {
    gv_stage_dp **d = &e->dp[((size_t)kk * g->nclass + q) * g->NE + ve];
    if (*d || *st != GV_OK || !e->nsub) return *d;
    int S = g->S, n = e->nsub, s0 = g->cstart[q];
    for (int i = 0; i < n; i++) {
        g->sgroup[i] = gv_strategy_tsp(&g->ls[g->gidx[e->sub[i]]]);
        for (int j = 0; j < n; j++) g->sinter[i * n + j] = g->inter[e->sub[i] * S + e->sub[j]];
    }
    for (int j = 0; j < g->maxn; j++) {
        int l = s0 + j < g->L ? s0 + j : g->L - 1, t = g->ltype[l];
        for (int i = 0; i < n; i++) {
            int a = e->sub[i];
            g->smem[j * n + i] = e->in[t * S + a] ? g->mem[((size_t)kk * g->NT + t) * S + a] : -1;
            g->sintra[j * n + i] = g->intra[t * S + a];
            if (j == 0 && ve) g->sintra[i] += g->erow[ve * S + a];
        }
    }
    /* the last layer a query ends at is pruned only when the DP goes on after it (queries of fewer layers
     * than it solves); only a DP that answers the last stage passes exits */
    int nx = (g->shared || kk == g->ndps - 1) && g->minn < g->maxn ? g->NX : 0;
    for (int r = 0; r < nx; r++)
        for (int i = 0; i < n; i++) g->sxrows[r * n + i] = g->xrow[r * S + e->sub[i]];
    *st = gv_stage_dp_solve_exits(d, n, g->maxn, g->smem, g->sintra, g->sinter, g->sgroup, g->minn,
                                  g->max_mem, g->sxrows, nx);
    return *st == GV_OK ? *d : NULL;
}

/* The task's (type, strategy) pairs under transient cap `cap` into g->key. */
static void gv_group_key(gv_group *g, const unsigned char *tin, double cap) {
    for (int t = 0; t < g->NT; t++)
        for (int x = 0; x < g->S; x++) g->key[t * g->S + x] = tin[x] && ceil(g->trans[t * g->S + x]) <= cap;
}

/* The exit row of class vx (-1: none) over the DP of entry e, into g->sexit; NULL for none. */
static const double *gv_group_exit(gv_group *g, const gv_dpent *e, int vx) {
    if (vx < 0) return NULL;
    for (int i = 0; i < e->nsub; i++) g->sexit[i] = g->xrow[vx * g->S + e->sub[i]];
    return g->sexit;
}

/* Best n layers of stage k starting at layer `start` for a task (its strategies: group positions with
 * tin[x] = 1, apos[x] = the task's index) under transient cap `cap` within `budget` (the cap still to be
 * taken off), with vocab entry class ve (0: none; the first stage) and exit class vx (-1: none; the last
 * stage) in the objective. */
static double gv_group_query(gv_group *g, const unsigned char *tin, const int *apos, double cap, int k,
                             int start, int n, int budget, int ve, int vx, int *plan, gv_status *st) {
    if (*st != GV_OK) return INFINITY;
    int kk = g->shared ? 0 : k, b = budget - (int)cap, q = g->cls[start], NS = g->NT * g->S;
    if (b < 0) return INFINITY;
    gv_group_key(g, tin, cap);
    /* a cached DP over a superset answers when its optimum stays inside the subset; smallest first */
    for (int tries = 0; tries < g->nent && !g->no_shortcut; tries++) {
        gv_dpent *best = NULL;
        for (int i = 0; i < g->nent; i++) {
            gv_dpent *e = &g->ent[i];
            if (e->tried || !e->nsub) continue;
            int sup = 1;
            for (int x = 0; x < NS && sup; x++) sup = !g->key[x] || e->in[x];
            if (sup && (!best || e->nsub < best->nsub)) best = e;
        }
        if (!best) break;
        best->tried = 1;
        const gv_stage_dp *d = gv_dpent_dp(g, best, kk, q, ve, st);
        double f = d ? gv_stage_dp_query_exit(d, n, b, gv_group_exit(g, best, vx), g->tmp, NULL) : INFINITY;
        if (!isfinite(f)) { /* a superset found nothing: neither will the subset */
            for (int i = 0; i < g->nent; i++) g->ent[i].tried = 0;
            return INFINITY;
        }
        int inside = 1;
        for (int j = 0; j < n && inside; j++) {
            int l = start + j < g->L ? start + j : g->L - 1; /* past the end: the DP's virtual layers */
            inside = g->key[g->ltype[l] * g->S + best->sub[g->tmp[j]]];
        }
        if (inside) {
            for (int i = 0; i < g->nent; i++) g->ent[i].tried = 0;
            for (int j = 0; j < n; j++) plan[j] = apos[best->sub[g->tmp[j]]];
            return f;
        }
    }
    for (int i = 0; i < g->nent; i++) g->ent[i].tried = 0;
    gv_dpent *e = gv_group_entry(g, g->key, st);
    if (!e || !e->nsub) return INFINITY;
    const gv_stage_dp *d = gv_dpent_dp(g, e, kk, q, ve, st);
    double f = d ? gv_stage_dp_query_exit(d, n, b, gv_group_exit(g, e, vx), g->tmp, NULL) : INFINITY;
    if (!isfinite(f)) return INFINITY;
    for (int j = 0; j < n; j++) plan[j] = apos[e->sub[g->tmp[j]]];
    return f;
}

/* A lower bound on gv_group_query's answer for a stage of n layers from layer 0 (pp = 1) without solving
 * a new DP: the smallest cached DP over a superset of the task's strategies under the cap (the group's
 * full DP at worst), at the same budget. */
static double gv_group_bound(gv_group *g, const unsigned char *tin, double cap, int n, int budget, int ve,
                             int vx, gv_status *st) {
    int b = budget - (int)cap, NS = g->NT * g->S;
    if (b < 0) return INFINITY;
    gv_group_key(g, tin, cap);
    gv_dpent *best = &g->ent[0];
    for (int i = 1; i < g->nent; i++) {
        gv_dpent *e = &g->ent[i];
        if (!e->nsub || e->nsub >= best->nsub) continue;
        int sup = 1;
        for (int x = 0; x < NS && sup; x++) sup = !g->key[x] || e->in[x];
        if (sup) best = e;
    }
    const gv_stage_dp *d = gv_dpent_dp(g, best, 0, g->cls[0], ve, st);
    return d ? gv_stage_dp_query_exit(d, n, b, gv_group_exit(g, best, vx), NULL, NULL) : INFINITY;
}

/* Memory of stage k holding layers [l, l + n) all at task strategy a: the layers' sum and the largest
 * transient once (mem [(k * NT + type) * S + a], trans [type * S + a]). */
static double gv_stage_mem_one(const gv_search_ctx *c, const int *mem, const double *trans, int S, int k,
                               int l, int n, int a) {
    int sum = 0;
    double tr = 0;
    for (int j = 0; j < n; j++) {
        int ty = c->ltype[l + j];
        sum += mem[((size_t)k * c->NT + ty) * S + a];
        tr = fmax(tr, ceil(trans[ty * S + a]));
    }
    return (double)sum + tr;
}

/* The least memory of stage k holding layers [l, l + n) (the layers' sum and the largest transient once),
 * its strategies (task indices) into a[n]: for every bound x on the transient, each layer at its least-memory
 * strategy with transient <= x, plus x; the least over x is the least over all plans. */
static double gv_stage_least(const gv_search_ctx *c, const int *mem, const double *trans, int S, int k, int l,
                             int n, int *a, int *tmp) {
    double best = INFINITY;
    for (int x = 0; x < S * c->NT; x++) {
        double cap = ceil(trans[x]), tr = 0;
        int sum = 0, ok = 1;
        for (int j = 0; j < n && ok; j++) {
            int ty = c->ltype[l + j], am = -1;
            for (int q = 0; q < S; q++)
                if (ceil(trans[ty * S + q]) <= cap && (am < 0 || mem[((size_t)k * c->NT + ty) * S + q] <
                                                                     mem[((size_t)k * c->NT + ty) * S + am]))
                    am = q;
            if (am < 0) {
                ok = 0;
                break;
            }
            tmp[j] = am;
            sum += mem[((size_t)k * c->NT + ty) * S + am];
            tr = fmax(tr, ceil(trans[ty * S + am]));
        }
        if (ok && sum + tr < best) {
            best = sum + tr;
            memcpy(a, tmp, sizeof(int) * n);
        }
    }
    return best;
}

static gv_status gv_task_run(gv_search_ctx *c, gv_task *t, gv_group *G) {
    const gv_cost_model *cm = c->cm;
    const gv_search_opts *o = c->o;
    int galv = cm->o.mode == GV_COST_GALVATRON, L = o->n_layer, pp = t->pp, NT = c->NT;
    gv_cost_batch b = {t->B, t->m};
    gv_status st = GV_OK;
    int S = 0, V = 0;
    int *sidx = malloc(sizeof(int) * (c->nls + 1)), *vidx = malloc(sizeof(int) * (c->nvs + 1));
    int *nk = malloc(sizeof(int) * pp), *plan = malloc(sizeof(int) * (L + 1)),
        *stage_plan = malloc(sizeof(int) * (L + 1));
    double *w = NULL, *ns = NULL, *intra = NULL, *inter = NULL, *trans = NULL, *ow = NULL, *on = NULL;
    int *mem = NULL, *omem = NULL;
    double *pr = NULL, *pc = NULL;
    /* uneven: stage queries of the cap, by (k, x) */
    int *mneed = NULL, *mb = NULL, *mv = NULL, *melig = NULL, *mplan = NULL, *qplan = NULL;
    double *mf = NULL;
    int *pxs = NULL, *pnxs = NULL;
    unsigned char *tin = NULL;
    int *apos = NULL;
    gv_cost_mem *om = NULL;
    double *least = NULL;
    if (!sidx || !vidx || !nk || !plan || !stage_plan) goto nomem;
    for (int i = 0; i < c->nls; i++)
        if (gv_task_keeps(c, t, &c->ls[i])) sidx[S++] = i;
    for (int i = 0; i < c->nvs; i++)
        if (gv_task_keeps(c, t, &c->vs[i])) vidx[V++] = i;
    if (!S || !V) goto out;
    for (int k = 0; k < pp; k++) nk[k] = k < pp - 1 ? L / pp : L - (pp - 1) * (L / pp);
    w = malloc(sizeof(double) * S * NT);
    ns = malloc(sizeof(double) * S * NT);
    intra = malloc(sizeof(double) * S * NT);
    trans = malloc(sizeof(double) * S * NT);
    inter = malloc(sizeof(double) * S * S);
    mem = malloc(sizeof(int) * S * pp * NT);
    ow = malloc(sizeof(double) * V * pp);
    on = malloc(sizeof(double) * V * pp);
    omem = malloc(sizeof(int) * V * pp);
    om = malloc(sizeof(gv_cost_mem) * pp);
    least = malloc(sizeof(double) * pp);
    if (!least || !w || !ns || !intra || !trans || !inter || !mem || !ow || !on || !omem || !om) goto nomem;
    for (int a = 0; a < S; a++) {
        const gv_strategy *s = &c->ls[sidx[a]];
        for (int ty = 0; ty < NT; ty++) {
            int x = ty * S + a;
            gv_cost_layer_time(cm, ty, s, &b, &w[x], &ns[x]);
            intra[x] = galv ? w[x] : (t->m - 1) * ns[x] + w[x];
            trans[x] = 0;
            for (int k = 0; k < pp; k++) {
                gv_cost_mem lm;
                double tr;
                gv_cost_layer_memory(cm, ty, s, &b, k, &lm, &tr);
                mem[(k * NT + ty) * S + a] = (int)ceil(gv_cost_mem_total(&lm));
                trans[x] = tr;
            }
        }
        for (int d = 0; d < S; d++) {
            double x = gv_cost_inter(cm, &c->ls[sidx[a]], &c->ls[sidx[d]], &b);
            inter[a * S + d] = galv ? x : x * t->m;
        }
    }
    double gbuf = gv_cost_global_buffer(cm, &b, pp, t->mode == GV_MODE_SP_ONLY ? 0 : t->g);
    for (int v = 0; v < V; v++) {
        const gv_strategy *s = &c->vs[vidx[v]];
        gv_cost_other_time(cm, s, &b, &ow[v * pp], &on[v * pp]);
        gv_cost_other_memory(cm, s, &b, om);
        for (int k = 0; k < pp; k++) omem[v * pp + k] = (int)ceil(gv_cost_mem_total(&om[k])) + (int)gbuf;
    }
    int cache = gv_mem_cache(cm, o);
    int max_mem = (int)o->memory_mb - cache;

    /* closest plan: each stage's least-memory layers (gv_stage_least), vocab at its least-memory one */
    {
        double need = INFINITY;
        int need_stage = 0, bv = 0;
        for (int k = 0, l = 0; k < pp; l += nk[k], k++) {
            least[k] = gv_stage_least(c, mem, trans, S, k, l, nk[k], plan + l, stage_plan);
            for (int j = 0; j < nk[k]; j++) plan[l + j] = sidx[plan[l + j]];
        }
        for (int v = 0; v < V; v++) {
            double worst = -1;
            int ws = 0;
            for (int k = 0; k < pp; k++) {
                double x = least[k] + omem[v * pp + k];
                if (x > worst) worst = x, ws = k;
            }
            if (worst < need) need = worst, need_stage = ws, bv = v;
        }
        gv_offer_close(c, t, plan, nk, &c->vs[vidx[bv]], need + cache, need_stage);
    }

    if (!o->fine_grained) { /* coarse: one strategy for all layers with its own vocab strategy */
        for (int a = 0; a < S; a++) {
            const gv_strategy *s = &c->ls[sidx[a]];
            gv_strategy vs = *s;
            vs.ckpt = 0;
            int fits = 1;
            gv_cost_mem vm[64];
            gv_cost_other_memory(cm, &vs, &b, vm);
            for (int k = 0, l = 0; k < pp && fits; l += nk[k], k++) {
                double used = ceil(gbuf) + ceil(gv_cost_mem_total(&vm[k])) +
                              gv_stage_mem_one(c, mem, trans, S, k, l, nk[k], a);
                if (used > max_mem) fits = 0;
            }
            if (!fits) continue;
            for (int i = 0; i < L; i++) plan[i] = sidx[a];
            gv_plan p;
            st = gv_make_plan(c, t, plan, nk, &vs, &p);
            if (st == GV_OK) st = gv_offer(c, t, &p);
            if (st != GV_OK) goto out;
        }
        goto out;
    }

    /* caps on the largest transient of a stage (own model): plans whose largest transient is tj are found
     * by the DP over strategies with transient <= tj, tj taken off the budget (cap q) */
    double caps[256];
    int ncap = 0;
    caps[ncap++] = 0;
    for (int a = 0; a < S * NT; a++) {
        double x = ceil(trans[a]);
        int seen = 0;
        for (int q = 0; q < ncap; q++) seen |= caps[q] == x;
        if (!seen && ncap < 256) caps[ncap++] = x;
    }
    qsort(caps, ncap, sizeof(double), gv_cmp_double);
    /* pp > 1: the per-stage objective only steers the pipeline formula, so a few caps (none, spread ones and
     * the largest) stand for all; pp = 1 keeps every cap (exact), skipping those that cannot win */
    if (pp > 1 && ncap > 4) {
        double keep[4];
        for (int i = 0; i < 4; i++) keep[i] = caps[(int)((ncap - 1) * (i / 3.0) + 0.5)];
        memcpy(caps, keep, sizeof keep);
        ncap = 4;
    }
    int uneven = !galv && o->uneven_stages && pp > 1;
    int lo = 1, hi = L;
    if (uneven) { /* stage sizes within half an even stage of even (the group's maxn covers them) */
        int e = L / pp, h = (L / pp + 1) / 2;
        lo = e - h > 1 ? e - h : 1;
        hi = (L + pp - 1) / pp + h;
        if (hi > L - (pp - 1)) hi = L - (pp - 1);
    }
    int NC = G->nclass;
    gv_parts pt = {lo, hi, NC, G->cls, NULL, NULL, NULL, NULL};
    /* this task's strategies as group positions */
    tin = calloc(G->S, 1);
    apos = malloc(sizeof(int) * G->S);
    if (!tin || !apos) goto nomem;
    for (int x = 0; x < G->S; x++) apos[x] = -1;
    for (int a2 = 0; a2 < S; a2++) {
        int x = G->pos[sidx[a2]];
        if (x < 0) {
            st = gv_fail(GV_ERR_INVALID, "search: internal: task strategy outside its group");
            goto out;
        }
        tin[x] = 1;
        apos[x] = a2;
    }
    if (uneven) {
        size_t nq = (size_t)pp * NC * (hi + 1);
        pr = malloc(sizeof(double) * nq);
        pc = malloc(sizeof(double) * nq);
        mneed = malloc(sizeof(int) * nq);
        mb = malloc(sizeof(int) * nq);
        mv = malloc(sizeof(int) * nq);
        melig = malloc(sizeof(int) * nq);
        mf = malloc(sizeof(double) * nq);
        mplan = malloc(sizeof(int) * nq * hi);
        qplan = malloc(sizeof(int) * hi);
        pxs = malloc(sizeof(int) * NC * (hi + 1));
        pnxs = malloc(sizeof(int) * NC);
        if (!pr || !pc || !mneed || !mb || !mv || !melig || !mf || !mplan || !qplan || !pxs || !pnxs)
            goto nomem;
        pt.xs = pxs;
        pt.nxs = pnxs;
        for (size_t i = 0; i < nq; i++) mv[i] = -1; /* no key answered yet (kv >= 0) */
        pt.r = pr;
        pt.c = pc;
    }
    /* largest cap first: its DP is the full one, and a larger cap's DP often answers a smaller one */
    for (int q = ncap - 1; q >= 0 && st == GV_OK; q--) {
        for (int v = 0; v < V && st == GV_OK; v++) {
            const gv_strategy *vs = &c->vs[vidx[v]];
            int ok = 1;
            /* the vocab strategy's entry (first stage) and exit (last stage) classes in the objective */
            int ve = G->vent[vidx[v]], vx = G->vexit[vidx[v]];
            if (pp == 1 && q < ncap - 1 && t->found && !galv) {
                /* pp 1: step = DP objective (with the vocab <-> layer redistribution) + the vocab layers'
                 * time + fixed, and a DP over more strategies (the cached one closest to the cap's) at this
                 * budget bounds the cap's objective from below */
                double f = gv_group_bound(G, tin, caps[q], L, max_mem - omem[v], ve, vx, &st);
                double lb = f + (t->m - 1) * on[v] + ow[v] + gv_cost_fixed(cm);
                if (!(lb * (1 - 1e-9) < t->step)) continue;
            }
            /* uneven stages at the largest cap only: each stage takes the best DP over every cap (below),
             * which covers what a smaller cap for all stages would offer */
            if (uneven && q == ncap - 1) {
                int W = hi + 1, nkey = pp * NC * W;
                /* 1: the (stage, start class, count) keys to answer; the same query as for an earlier vocab
                 * strategy (a stage whose vocab memory does not change with it) keeps its answer */
                for (int k = 0; k < pp; k++)
                    for (int cq = 0; cq < NC; cq++) {
                        /* a stage starting in class cq costs what one from the class's first start does (the
                         * same layer types); classes no start of this stage has stay infeasible */
                        int lmin = k * lo, lmax = k * hi;
                        if (L - (pp - k) * hi > lmin) lmin = L - (pp - k) * hi;
                        if (L - (pp - k) * lo < lmax) lmax = L - (pp - k) * lo;
                        int reach = NC == 1;
                        for (int s2 = lmin; s2 <= lmax && !reach; s2++) reach = G->cls[s2] == cq;
                        for (int x = 0; x <= hi; x++) {
                            int key = (k * NC + cq) * W + x;
                            mneed[key] = 0;
                            melig[key] = x >= lo && reach;
                            if (!melig[key]) continue;
                            int b = max_mem - omem[v * pp + k], ke = k == 0 ? ve : 0,
                                kx = k == pp - 1 ? vx : -1;
                            int kv = ke * (G->NX + 1) + kx + 1; /* the entry and exit classes asked */
                            if (mb[key] == b && mv[key] == kv) continue;
                            mb[key] = b;
                            mv[key] = kv;
                            mneed[key] = 1;
                            mf[key] = INFINITY;
                        }
                    }
                /* 2: each stage under its own cap (a stage's memory does not depend on the others'): the best
                 * of the caps' DPs; cap by cap, largest first, so that a larger cap's DP answers smaller ones
                 */
                for (int q2 = q; q2 >= 0 && st == GV_OK; q2--)
                    for (int key = 0; key < nkey && st == GV_OK; key++) {
                        if (!mneed[key]) continue;
                        int x = key % W, cq = key / W % NC, k = key / W / NC;
                        double f2 = gv_group_query(G, tin, apos, caps[q2], k, G->cstart[cq], x, mb[key],
                                                   k == 0 ? ve : 0, k == pp - 1 ? vx : -1, qplan, &st);
                        if (f2 < mf[key]) {
                            mf[key] = f2;
                            memcpy(mplan + (size_t)key * hi, qplan, sizeof(int) * (size_t)x);
                        }
                    }
                /* 3: each key's times for the partition */
                for (int key = 0; key < nkey && st == GV_OK; key++) {
                    pr[key] = pc[key] = INFINITY;
                    if (!melig[key] || !isfinite(mf[key])) continue;
                    int x = key % W, cq = key / W % NC, k = key / W / NC, l = G->cstart[cq];
                    int ke = k == 0 ? ve : 0, kx = k == pp - 1 ? vx : -1;
                    const int *sp = mplan + (size_t)key * hi;
                    double R = ow[v * pp + k], C = on[v * pp + k];
                    if (ke) { /* gv_cost_plan's vocab <-> layer terms */
                        R += G->erow[ke * G->S + G->pos[sidx[sp[0]]]] / t->m;
                        C += G->erow[ke * G->S + G->pos[sidx[sp[0]]]] / t->m;
                    }
                    if (kx >= 0) {
                        R += G->xrow[kx * G->S + G->pos[sidx[sp[x - 1]]]] / t->m;
                        C += G->xrow[kx * G->S + G->pos[sidx[sp[x - 1]]]] / t->m;
                    }
                    for (int j = 0; j < x; j++) {
                        int a = sp[j], ty = c->ltype[l + j < L ? l + j : L - 1];
                        R += w[ty * S + a];
                        C += ns[ty * S + a];
                        if (j) {
                            double xi = inter[sp[j - 1] * S + a] / t->m;
                            R += xi;
                            C += xi;
                        }
                    }
                    pr[key] = R;
                    pc[key] = C;
                }
                int bn[64];
                if (st == GV_OK && gv_best_partition(cm, &pt, pp, L, t->m, bn)) {
                    for (int k = 0, l = 0; k < pp; l += bn[k], k++) { /* the stage plans found above */
                        const int *sp =
                            mplan + (size_t)((k * NC + (NC > 1 ? G->cls[l] : 0)) * (hi + 1) + bn[k]) * hi;
                        for (int j = 0; j < bn[k]; j++) plan[l + j] = sidx[sp[j]];
                    }
                    gv_plan p;
                    if (st == GV_OK) st = gv_make_plan(c, t, plan, bn, vs, &p);
                    if (st == GV_OK) st = gv_offer(c, t, &p);
                }
                /* and the even split: the bound enumeration ignores the exposed-sync term */
            }
            for (int k = 0, l = 0; k < pp && ok && st == GV_OK; l += nk[k], k++) {
                double f = gv_group_query(G, tin, apos, caps[q], k, l, nk[k], max_mem - omem[v * pp + k],
                                          k == 0 ? ve : 0, k == pp - 1 ? vx : -1, stage_plan, &st);
                if (!isfinite(f)) {
                    ok = 0;
                    break;
                }
                for (int j = 0; j < nk[k]; j++) plan[l + j] = sidx[stage_plan[j]];
            }
            if (!ok || st != GV_OK) continue;
            gv_plan p;
            st = gv_make_plan(c, t, plan, nk, vs, &p);
            if (st == GV_OK) st = gv_offer(c, t, &p);
        }
    }
    goto out;
nomem:
    st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
out:
    free(sidx);
    free(vidx);
    free(nk);
    free(plan);
    free(stage_plan);
    free(w);
    free(ns);
    free(intra);
    free(trans);
    free(inter);
    free(mem);
    free(ow);
    free(on);
    free(omem);
    free(om);
    free(least);
    free(pr);
    free(pc);
    free(mneed);
    free(mf);
    free(qplan);
    free(mb);
    free(mv);
    free(melig);
    free(mplan);
    free(pxs);
    free(pnxs);
    free(tin);
    free(apos);
    if (st != GV_OK) snprintf(t->err, sizeof t->err, "%s", gv_last_error());
    t->st = st;
    return st;
}

/* The group's strategies (those of its tasks with any mode and g), their costs, and its full DP. */
static gv_status gv_group_init(gv_group *g, const gv_search_ctx *c, const gv_task *t0) {
    const gv_cost_model *cm = c->cm;
    const gv_search_opts *o = c->o;
    int galv = cm->o.mode == GV_COST_GALVATRON, pp = t0->pp, L = o->n_layer;
    gv_cost_batch b = {t0->B, t0->m};
    gv_task any = *t0;
    any.mode = GV_MODE_TP_WITH_SP;
    any.g = 1 << 30;
    memset(g, 0, sizeof *g);
    g->no_shortcut = o->no_shortcut;
    g->ls = c->ls;
    g->gidx = malloc(sizeof(int) * (c->nls + 1));
    g->pos = malloc(sizeof(int) * (c->nls + 1));
    if (!g->gidx || !g->pos) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int i = 0; i < c->nls; i++) {
        g->pos[i] = -1;
        if (gv_task_keeps(c, &any, &c->ls[i])) {
            g->pos[i] = g->S;
            g->gidx[g->S++] = i;
        }
    }
    int S = g->S;
    g->shared = cm->o.pipeline == GV_SCHED_GPIPE || pp == 1;
    g->ndps = g->shared ? 1 : pp;
    g->max_mem = (int)o->memory_mb - gv_mem_cache(cm, o);
    g->maxn = L - (pp - 1) * (L / pp);
    if (L / pp > g->maxn) g->maxn = L / pp;
    g->minn = L / pp; /* the fewest layers a stage query asks for (the DP keeps only what those need) */
    if (!galv && o->uneven_stages && pp > 1) {
        int e = L / pp, h = (L / pp + 1) / 2, hi = (L + pp - 1) / pp + h;
        if (hi > L - (pp - 1)) hi = L - (pp - 1);
        if (hi > g->maxn) g->maxn = hi;
        g->minn = e - h > 1 ? e - h : 1; /* gv_task_run's lo */
    }
    int NT = c->NT;
    g->NT = NT;
    g->L = L;
    g->ltype = c->ltype;
    /* start classes: starts whose next maxn layer types (the last type past the end) are the same */
    g->cls = malloc(sizeof(int) * L);
    g->cstart = malloc(sizeof(int) * L);
    if (!g->cls || !g->cstart) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int l = 0; l < L; l++) {
        int q = 0;
        for (; q < g->nclass && NT > 1; q++) {
            int eq = 1;
            for (int j = 0; j < g->maxn && eq; j++) {
                int a = l + j < L ? l + j : L - 1, z = g->cstart[q] + j < L ? g->cstart[q] + j : L - 1;
                eq = c->ltype[a] == c->ltype[z];
            }
            if (eq) break;
        }
        if (q == g->nclass) g->cstart[g->nclass++] = l;
        g->cls[l] = q;
    }
    if (!S) return GV_OK;
    g->mem = malloc(sizeof(int) * pp * NT * S);
    g->intra = malloc(sizeof(double) * NT * S);
    g->trans = malloc(sizeof(double) * NT * S);
    g->inter = malloc(sizeof(double) * S * S);
    g->tmp = malloc(sizeof(int) * (L + g->maxn + 1));
    g->smem = malloc(sizeof(int) * (size_t)S * g->maxn);
    g->sgroup = malloc(sizeof(int) * S);
    g->sintra = malloc(sizeof(double) * (size_t)S * g->maxn);
    g->sinter = malloc(sizeof(double) * S * S);
    g->key = malloc((size_t)NT * S);
    if (!g->mem || !g->intra || !g->trans || !g->inter || !g->tmp || !g->smem || !g->sgroup || !g->sintra ||
        !g->sinter || !g->key)
        return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int a = 0; a < S; a++) {
        const gv_strategy *s = &c->ls[g->gidx[a]];
        for (int ty = 0; ty < NT; ty++) {
            double w, n;
            gv_cost_layer_time(cm, ty, s, &b, &w, &n);
            g->intra[ty * S + a] = galv ? w : (t0->m - 1) * n + w;
            for (int k = 0; k < pp; k++) {
                gv_cost_mem lm;
                double tr;
                gv_cost_layer_memory(cm, ty, s, &b, k, &lm, &tr);
                g->mem[(k * NT + ty) * S + a] = (int)ceil(gv_cost_mem_total(&lm));
                g->trans[ty * S + a] = tr;
            }
        }
        for (int d = 0; d < S; d++) {
            double x = gv_cost_inter(cm, s, &c->ls[g->gidx[d]], &b);
            g->inter[a * S + d] = galv ? x : x * t0->m;
        }
    }
    /* own: entry / exit rows of the vocab strategies any task of the group keeps (row 0: no entry) */
    g->erow = calloc((size_t)(c->nvs + 1) * S, sizeof(double));
    g->xrow = malloc(sizeof(double) * (size_t)(c->nvs + 1) * S);
    g->vent = calloc(c->nvs + 1, sizeof(int));
    g->vexit = malloc(sizeof(int) * (c->nvs + 1));
    g->sexit = malloc(sizeof(double) * S);
    if (!g->erow || !g->xrow || !g->vent || !g->vexit || !g->sexit)
        return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    g->NE = 1;
    for (int i = 0; i < c->nvs; i++) {
        g->vexit[i] = -1;
        if (galv || !gv_task_keeps(c, &any, &c->vs[i])) continue;
        double *er = g->erow + (size_t)g->NE * S, *xr = g->xrow + (size_t)g->NX * S;
        for (int a = 0; a < S; a++) {
            const gv_strategy *s = &c->ls[g->gidx[a]];
            er[a] = gv_cost_inter(cm, &c->vs[i], s, &b) * t0->m;
            xr[a] = gv_cost_inter(cm, s, &c->vs[i], &b) * t0->m;
        }
        int e = 0, x = 0;
        while (e < g->NE && memcmp(g->erow + (size_t)e * S, er, sizeof(double) * S)) e++;
        while (x < g->NX && memcmp(g->xrow + (size_t)x * S, xr, sizeof(double) * S)) x++;
        if (e == g->NE) g->NE++;
        if (x == g->NX) g->NX++;
        g->vent[i] = e;
        g->vexit[i] = x;
    }
    g->sxrows = malloc(sizeof(double) * (size_t)(g->NX + 1) * S);
    if (!g->sxrows) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    memset(g->key, 1, (size_t)NT * S);
    gv_status st = GV_OK;
    gv_group_entry(g, g->key, &st);
    return st;
}

static void *gv_worker(void *arg) {
    gv_search_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->ngroups) break;
        int lo = c->group_start[i], hi = c->group_start[i + 1];
        gv_group g;
        gv_status st =
            c->o->fine_grained ? gv_group_init(&g, c, &c->tasks[lo]) : (memset(&g, 0, sizeof g), GV_OK);
        /* last task first: the tasks of a group go from the fewest strategies (tp only, g = 1) to the most
         * (tp with sp, largest g), so DPs solved for later ones are supersets that answer the earlier
         * ones; each task keeps its own result, so the order changes no answer */
        for (int k = hi - 1; k >= lo; k--) {
            if (st != GV_OK) {
                c->tasks[k].st = st;
                snprintf(c->tasks[k].err, sizeof c->tasks[k].err, "%s", gv_last_error());
                continue;
            }
            gv_task_run(c, &c->tasks[k], &g);
        }
        gv_group_free(&g);
    }
    return NULL;
}

/* "24x 1-2*-4, 8x 1-2*-4-c" from a plan. */
static void gv_describe(const gv_search_ctx *c, const gv_plan *p, char *buf, int n) {
    gv_strategy ls[4096], vs;
    int nl = p->n_layer < 4096 ? p->n_layer : 4096;
    gv_plan_strategies(p, ls, &vs);
    buf[0] = '\0';
    int used = 0;
    for (int i = 0; i < nl;) {
        int j = i;
        while (j < nl && !memcmp(&ls[j], &ls[i], sizeof ls[i])) j++;
        char s[48];
        gv_strategy_str(&ls[i], s, sizeof s);
        int w = snprintf(buf + used, n - used, "%s%dx %s", used ? ", " : "", j - i, s);
        if (w < 0 || w >= n - used) {
            if (n > 4) strcpy(buf + n - 4, "...");
            return;
        }
        used += w;
        i = j;
    }
    (void)c;
}

static void gv_alt_of(const gv_search_ctx *c, const gv_task *x, gv_search_alt *a) {
    memset(a, 0, sizeof *a);
    a->global_batch = x->B;
    a->micro_batches = x->m;
    a->pp = x->pp;
    a->vocab_tp = x->plan.vocab.tp;
    a->vocab_sp = x->plan.vocab.sp == GV_SP_ULYSSES;
    a->vocab_zero3 = x->plan.vocab.zero == 3;
    gv_describe(c, &x->plan, a->layers, sizeof a->layers);
    a->step_s = x->step;
    a->throughput = x->cost.throughput;
}

static int gv_alt_same(const gv_search_alt *a, const gv_search_alt *b) {
    return a->global_batch == b->global_batch && a->micro_batches == b->micro_batches && a->pp == b->pp &&
           a->vocab_tp == b->vocab_tp && a->vocab_sp == b->vocab_sp && a->vocab_zero3 == b->vocab_zero3 &&
           !strcmp(a->layers, b->layers);
}

static void gv_add_task(gv_task **v, int *n, int *cap, int B, int m, int pp, int mode, int g) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        gv_task *nv = realloc(*v, sizeof **v * *cap);
        if (!nv) return;
        *v = nv;
    }
    gv_task *t = &(*v)[(*n)++];
    memset(t, 0, sizeof *t);
    t->B = B;
    t->m = m;
    t->pp = pp;
    t->mode = mode;
    t->g = g;
}

void gv_search_result_free(gv_search_result *r) {
    if (r->plan.layers || r->plan.stage_layers) gv_plan_free(&r->plan);
    memset(r, 0, sizeof *r);
}

gv_status gv_search_run(const gv_cost_model *cm, const gv_search_opts *o, gv_search_result *out) {
    memset(out, 0, sizeof *out);
    double t0 = gv_now_ms();
    if (o->world < 1 || (o->world & (o->world - 1)))
        return gv_fail(GV_ERR_INVALID, "search: world %d is not a power of two", o->world);
    if (o->n_layer < 1) return gv_fail(GV_ERR_INVALID, "search: the model has no layers");
    if (o->memory_mb <= 0) return gv_fail(GV_ERR_INVALID, "search: memory budget must be positive");
    if (cm->o.world != o->world)
        return gv_fail(GV_ERR_INVALID, "search: cost model is for %d ranks, search for %d", cm->o.world,
                       o->world);
    if (cm->hw->world < o->world)
        return gv_fail(GV_ERR_INVALID, "search: the hardware profile covers %d ranks, the search needs %d",
                       cm->hw->world, o->world);
    gv_search_ctx c = {.cm = cm, .o = o};
    GV_TRY(gv_cost_check_types(&cm->o, cm->mp, "search: model profile"));
    if (cm->o.n_types > 1 && cm->o.n_layer != o->n_layer)
        return gv_fail(GV_ERR_INVALID, "search: %d layers, the cost model's layer types cover %d", o->n_layer,
                       cm->o.n_layer);
    c.NT = cm->o.n_types > 1 ? cm->o.n_types : 1;
    c.ltype = malloc(sizeof(int) * o->n_layer);
    if (!c.ltype) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int l = 0; l < o->n_layer; l++) c.ltype[l] = gv_cost_layer_type(&cm->o, l);
    gv_strategy *ls = NULL, *vs = NULL;
    gv_status st = gv_search_space(o, 0, &ls, &c.nls);
    if (st != GV_OK) {
        free(c.ltype);
        return st;
    }
    st = gv_search_space(o, 1, &vs, &c.nvs);
    if (st != GV_OK) {
        free(ls);
        free(c.ltype);
        return st;
    }
    c.ls = ls;
    c.vs = vs;
    /* the profile entries the space needs */
    for (int i = 0; i < c.nls && st == GV_OK; i++) {
        int t = gv_strategy_tsp(&ls[i]), lg = 0;
        while ((1 << lg) < t) lg++;
        for (int ty = 0; ty < c.NT && st == GV_OK; ty++)
            if (cm->mp->lt[ty].act_mb[lg] < 0 && !ls[i].ckpt)
                st = gv_fail(GV_ERR_FORMAT,
                             "memory profile: missing field 'layertype_%d.tp_activation_per_bsz_dict.%d' "
                             "(needed for tp/sp degree %d)",
                             ty, t, t);
        int mlg = 0;
        while ((1 << mlg) < ls[i].pp) mlg++;
        if (ls[i].pp > 1 && cm->hw->p2p_coe[mlg] < 0)
            st = gv_fail(GV_ERR_FORMAT, "hardware profile: missing field 'pp_size_%d'", ls[i].pp);
    }
    for (int i = 0; i < c.nvs && st == GV_OK; i++) {
        int lg = 0, tl = 0;
        while ((1 << lg) < vs[i].tp) lg++;
        while ((1 << tl) < gv_strategy_tsp(&vs[i])) tl++;
        int rows[3] = {0, 1, 2};
        for (int r = vs[i].pp == 1 ? 0 : 1; r < (vs[i].pp == 1 ? 1 : 3) && st == GV_OK; r++) {
            static const char *const nm[3] = {"other_memory_pp_off", "other_memory_pp_on_first",
                                              "other_memory_pp_on_last"};
            if (cm->mp->other_ms_mb[rows[r]][lg] < 0)
                st = gv_fail(GV_ERR_FORMAT, "memory profile: missing field '%s.model_states.%d'", nm[r],
                             vs[i].tp);
            else if (cm->mp->other_act_mb[rows[r]][tl] < 0)
                st = gv_fail(GV_ERR_FORMAT, "memory profile: missing field '%s.activation.%d'", nm[r],
                             gv_strategy_tsp(&vs[i]));
        }
    }
    gv_task *tasks = NULL;
    int nt = 0, cap = 0;
    if (st == GV_OK) {
        int bsz_lo, bsz_hi, bsz_step;
        if (o->settle_bsz > 0) {
            bsz_lo = bsz_hi = o->settle_bsz;
            bsz_step = 1;
        } else {
            bsz_step = o->bsz_scale > 0 ? o->bsz_scale : 8;
            bsz_lo = o->min_bsz > bsz_step ? o->min_bsz : bsz_step;
            bsz_hi = o->max_bsz;
        }
        for (int B = bsz_lo; B <= bsz_hi; B += bsz_step)
            for (int m = 1; m <= B; m++) {
                if (o->settle_chunk > 0 && m != o->settle_chunk) continue;
                if (B % m) continue;
                for (int pp = 1; pp <= o->world; pp *= 2) {
                    int have = 0;
                    for (int i = 0; i < c.nvs; i++) have |= vs[i].pp == pp;
                    if (!have || pp > m || pp > o->n_layer) continue;
                    int max_tp = o->world / pp < o->max_tp ? o->world / pp : o->max_tp;
                    int max_dp = B / m < o->world / pp ? B / m : o->world / pp;
                    if (max_dp < 1) max_dp = 1;
                    int min_tp = o->world / pp / max_dp;
                    if (min_tp < 1) min_tp = 1;
                    for (int mode = 0; mode < 3; mode++) {
                        if (mode == GV_MODE_SP_ONLY) {
                            gv_add_task(&tasks, &nt, &cap, B, m, pp, mode, max_tp);
                            continue;
                        }
                        for (int g = 1; g <= max_tp; g *= 2) {
                            /* tp_with_sp at g = 1 is the tp_only task at g = 1 again (same layers, buffer) */
                            if (mode == GV_MODE_TP_WITH_SP && g == 1) continue;
                            if (g >= min_tp && g * pp <= o->world)
                                gv_add_task(&tasks, &nt, &cap, B, m, pp, mode, g);
                        }
                    }
                }
            }
        if (nt && !tasks) st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    }
    if (st == GV_OK) {
        c.tasks = tasks;
        c.ntasks = nt;
        c.group_start = malloc(sizeof(int) * (nt + 1));
        if (!c.group_start) st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    }
    if (st == GV_OK) {
        for (int i = 0; i < nt; i++)
            if (!i || tasks[i].B != tasks[i - 1].B || tasks[i].m != tasks[i - 1].m ||
                tasks[i].pp != tasks[i - 1].pp)
                c.group_start[c.ngroups++] = i;
        c.group_start[c.ngroups] = nt;
        atomic_init(&c.next, 0);
        int nth = o->threads > 0 ? o->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
        if (nth < 1) nth = 1;
        if (nth > c.ngroups) nth = c.ngroups;
        if (nth > 64) nth = 64;
        pthread_t th[64];
        int started = 0;
        for (int i = 1; i < nth; i++)
            if (pthread_create(&th[started], NULL, gv_worker, &c) == 0) started++;
        gv_worker(&c);
        for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    }
    /* reduce in task order */
    int best = -1, close = -1;
    for (int i = 0; i < nt && st == GV_OK; i++) {
        gv_task *t = &tasks[i];
        if (t->st != GV_OK) {
            st = gv_fail(t->st, "%s", t->err);
            break;
        }
        /* tasks differ in global batch: the answer is the highest throughput (first of equals) */
        if (t->found && (best < 0 || t->cost.throughput > tasks[best].cost.throughput)) best = i;
        if (t->have_close && (close < 0 || t->close_need < tasks[close].close_need)) close = i;
    }
    if (st == GV_OK && best >= 0) {
        gv_task *t = &tasks[best];
        out->found = 1;
        out->plan = t->plan;
        out->cost = t->cost;
        out->global_buffer_tp = t->mode == GV_MODE_SP_ONLY ? 0 : t->g;
        /* alternatives: the next best tasks whose plan differs from the ones already listed */
        int k = o->top_k < 8 ? o->top_k : 8;
        gv_search_alt cur;
        gv_alt_of(&c, t, &cur);
        gv_search_alt seen[9];
        int nseen = 0;
        seen[nseen++] = cur;
        while (out->n_alt < k) {
            int pick = -1;
            gv_search_alt pa;
            for (int i = 0; i < nt; i++) {
                gv_task *x = &tasks[i];
                if (!x->found || (pick >= 0 && x->cost.throughput <= tasks[pick].cost.throughput)) continue;
                gv_search_alt xa;
                gv_alt_of(&c, x, &xa);
                int dup = 0;
                for (int q = 0; q < nseen && !dup; q++) dup = gv_alt_same(&seen[q], &xa);
                if (dup) continue;
                pick = i;
                pa = xa;
            }
            if (pick < 0) break;
            pa.gap = out->cost.throughput / pa.throughput - 1; /* time per sample, relative */
            out->alt[out->n_alt++] = pa;
            seen[nseen++] = pa;
        }
        t->found = 0; /* the plan now belongs to out */
    } else if (st == GV_OK && close >= 0) {
        gv_task *t = &tasks[close];
        out->found = 0;
        out->plan = t->close;
        t->have_close = 0;
        out->need_mb = t->close_need;
        out->need_stage = t->close_stage;
        out->global_buffer_tp = t->mode == GV_MODE_SP_ONLY ? 0 : t->g;
        gv_cost_plan(cm, &out->plan, out->global_buffer_tp, &out->cost);
        st =
            gv_fail(GV_ERR_INVALID, "no plan fits: the smallest needs %.0f MiB on stage %d (budget %.0f MiB)",
                    out->need_mb, out->need_stage, o->memory_mb);
    } else if (st == GV_OK) {
        st = gv_fail(GV_ERR_INVALID, "no plan fits: the strategy space is empty for %d ranks and %d layers",
                     o->world, o->n_layer);
    }
    for (int i = 0; i < nt; i++) {
        if (tasks[i].found) gv_plan_free(&tasks[i].plan);
        if (tasks[i].have_close) gv_plan_free(&tasks[i].close);
    }
    out->tasks = nt;
    free(c.group_start);
    free(tasks);
    free(ls);
    free(vs);
    free(c.ltype);
    out->ms = gv_now_ms() - t0;
    return st;
}
