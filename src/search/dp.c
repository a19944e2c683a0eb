/* The layer-wise dynamic program of one pipeline stage (reference §3.3). Galvatron's C++ core fills a dense
 * table f[v][s] = least cost of the layers so far with memory <= v MB ending in strategy s, O(layers x
 * budget x S^2). Here each column f[.][s] is kept as its step function: the breakpoints (memory, cost,
 * predecessor) where the value or the arg-min predecessor changes. That is the same function, queried and
 * backtracked exactly like the dense table (ties go to the lowest strategy index, as numpy's argmin), but
 * its size is the number of distinct memory totals that improve the cost, not the budget in MB. Memory and
 * cost may differ per layer (a model with several layer types, T5's encoder and decoder layers); a memory
 * < 0 makes a strategy unavailable at that layer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gv/search.h"

typedef struct {
    int mem, owner;
    double cost;
} gv_pt;

struct gv_stage_dp {
    int S, L, cap, nmin;
    int *mem;             /* [L * S] */
    double *cost, *inter; /* [L * S], [S * S] */
    gv_pt **list;         /* [L * S]: breakpoints of f after layer i for strategy s, memory ascending */
    int *len;
};

void gv_stage_dp_free(gv_stage_dp *dp) {
    if (!dp) return;
    if (dp->list)
        for (int i = 0; i < dp->L * dp->S; i++) free(dp->list[i]);
    free(dp->list);
    free(dp->len);
    free(dp->mem);
    free(dp->cost);
    free(dp->inter);
    free(dp);
}

/* Lower envelope of step functions a and b + add: at every memory x the smaller value, ties to the lower
 * owner (numpy's argmin). b's points have owner k, or their own owner when k < 0. Writes to out (capacity
 * na + nb), returns its length. Every list here is non-increasing in cost along memory (an envelope of
 * non-increasing functions is one; shifts, truncation and the pruning below keep it), so once one input
 * is strictly below the other's last value, the rest of the output is the rest of that input. */
#define GV_ENV_PUT(x, v, o)                                                                                  \
    do {                                                                                                     \
        if (!(n && out[n - 1].cost == (v) && out[n - 1].owner == (o))) {                                     \
            out[n].mem = (x);                                                                                \
            out[n].cost = (v);                                                                               \
            out[n].owner = (o);                                                                              \
            n++;                                                                                             \
        }                                                                                                    \
    } while (0)
static int gv_envelope(const gv_pt *a, int na, const gv_pt *b, int nb, double add, int k, gv_pt *out) {
    int i = 0, j = 0, n = 0;
    if (na == 0) { /* the common first merge: a copy */
        for (; j < nb; j++) {
            double v = b[j].cost + add;
            int o = k >= 0 ? k : b[j].owner;
            GV_ENV_PUT(b[j].mem, v, o);
        }
        return n;
    }
    double va = INFINITY, vb = INFINITY;
    int oa = -1, ob = -1;
    /* breakpoints are unique per memory within each input */
    while (i < na && j < nb) {
        int x, am = a[i].mem, bm = b[j].mem;
        if (am <= bm) {
            x = am;
            va = a[i].cost;
            oa = a[i].owner;
            i++;
            if (bm == am) {
                vb = b[j].cost + add;
                ob = k >= 0 ? k : b[j].owner;
                j++;
            }
        } else {
            x = bm;
            vb = b[j].cost + add;
            ob = k >= 0 ? k : b[j].owner;
            j++;
        }
        if (vb < va || (vb == va && ob >= 0 && (oa < 0 || ob < oa))) {
            GV_ENV_PUT(x, vb, ob);
        } else if (oa >= 0) {
            GV_ENV_PUT(x, va, oa);
        }
    }
    for (; i < na; i++) { /* b is done: its last value stays */
        va = a[i].cost;
        oa = a[i].owner;
        if (vb < va || (vb == va && ob < oa)) continue; /* b's point already out */
        GV_ENV_PUT(a[i].mem, va, oa);
        if (va < vb) { /* a strictly below from here on */
            for (i++; i < na; i++) out[n++] = a[i];
            break;
        }
    }
    for (; j < nb; j++) { /* a is done */
        vb = b[j].cost + add;
        ob = k >= 0 ? k : b[j].owner;
        if (!(vb < va || (vb == va && (oa < 0 || ob < oa)))) continue;
        GV_ENV_PUT(b[j].mem, vb, ob);
        if (vb < va) {
            for (j++; j < nb; j++) GV_ENV_PUT(b[j].mem, b[j].cost + add, k >= 0 ? k : b[j].owner);
            break;
        }
    }
    return n;
}
#undef GV_ENV_PUT

/* Drops breakpoints that can never be an arg-min: point (w, c) of column s goes when another column m of
 * its class has f_m(w) + D[m][s] < c, where D[m][s] = max(0, max_x inter[m][x] - inter[s][x]) bounds how
 * much more m pays than s to reach any next strategy x (or any exit row a query may add after the layer).
 * Then m beats s at every memory >= w for every successor and at the end, strictly, so no value, arg-min or
 * backtrack of the dense table changes. The class envelope g (least f over the class, with its owner) gives
 * the best such m; dmax[s] bounds D over the class. A dropped point never owns the envelope, so g stays valid
 * for the next layer. */
static void gv_prune_list(gv_pt *l, int *len, const gv_pt *g, int ng, int s, double dmax) {
    int n = *len, k = 0, j = 0;
    for (int q = 0; q < n; q++) {
        while (j < ng && g[j].mem <= l[q].mem) j++;
        int drop = j > 0 && g[j - 1].owner != s && g[j - 1].cost + dmax < l[q].cost - 1e-12 * fabs(l[q].cost);
        if (!drop) l[k++] = l[q];
    }
    *len = k;
}

gv_status gv_stage_dp_solve(gv_stage_dp **out, int S, const int *mem, const double *cost, const double *inter,
                            const int *group, int L, int cap) {
    return gv_stage_dp_solve_min(out, S, mem, cost, inter, group, L, 1, cap);
}

/* Every layer alike: the per-layer arrays repeat the one row. */
gv_status gv_stage_dp_solve_min(gv_stage_dp **out, int S, const int *mem, const double *cost,
                                const double *inter, const int *group, int L, int nmin, int cap) {
    *out = NULL;
    if (S < 1 || L < 1) return gv_fail(GV_ERR_INVALID, "search: stage DP needs strategies and layers");
    int *m = malloc(sizeof(int) * (size_t)L * S);
    double *c = malloc(sizeof(double) * (size_t)L * S);
    gv_status st = GV_OK;
    if (!m || !c) st = gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int i = 0; i < L && st == GV_OK; i++) {
        memcpy(m + (size_t)i * S, mem, sizeof(int) * S);
        memcpy(c + (size_t)i * S, cost, sizeof(double) * S);
    }
    if (st == GV_OK) st = gv_stage_dp_solve_layers(out, S, L, m, c, inter, group, nmin, cap);
    free(m);
    free(c);
    return st;
}

gv_status gv_stage_dp_solve_layers(gv_stage_dp **out, int S, int L, const int *mem, const double *cost,
                                   const double *inter, const int *group, int nmin, int cap) {
    return gv_stage_dp_solve_exits(out, S, L, mem, cost, inter, group, nmin, cap, NULL, 0);
}

gv_status gv_stage_dp_solve_exits(gv_stage_dp **out, int S, int L, const int *mem, const double *cost,
                                  const double *inter, const int *group, int nmin, int cap,
                                  const double *exits, int nexit) {
    *out = NULL;
    if (S < 1 || L < 1) return gv_fail(GV_ERR_INVALID, "search: stage DP needs strategies and layers");
    if (nmin < 1 || nmin > L)
        return gv_fail(GV_ERR_INVALID, "search: stage DP for at least %d of %d layers", nmin, L);
    gv_stage_dp *dp = calloc(1, sizeof *dp);
    if (!dp) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    dp->S = S;
    dp->L = L;
    dp->cap = cap;
    dp->nmin = nmin;
    /* after[i]: the least memory of layers i+1 .. nmin-1 (each at its least-memory strategy), which a
     * queried path of at least nmin layers still has to add after layer i */
    int *after = malloc(sizeof(int) * (size_t)(L + 1));
    if (!after) {
        free(dp);
        return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    }
    after[L] = 0;
    for (int i = L - 1, acc = 0; i >= 0; i--) { /* acc: the sum over layers i+1 .. nmin-1 */
        after[i] = acc;
        int least = -1;
        const int *mi = mem + (size_t)i * S;
        for (int s = 0; s < S; s++)
            if (mi[s] >= 0 && mi[s] <= cap && (least < 0 || mi[s] < least)) least = mi[s];
        if (least < 0) least = 0;
        if (i <= nmin - 1) acc += least;
    }
    dp->mem = malloc(sizeof(int) * (size_t)L * S);
    dp->cost = malloc(sizeof(double) * (size_t)L * S);
    dp->inter = malloc(sizeof(double) * S * S);
    dp->list = calloc((size_t)L * S, sizeof *dp->list);
    dp->len = calloc((size_t)L * S, sizeof *dp->len);
    gv_pt *buf[3] = {NULL, NULL, NULL}, *genv = NULL;
    size_t bufcap = 0;
    gv_status st = GV_OK;
    double *D = malloc(sizeof(double) * S * S);
    double *dmax = malloc(sizeof(double) * S);
    int *same = malloc(sizeof(int) * S);
    /* classes: cls[s]; members cmem[c * S + q]; uni[c * S + s] = every member of c switches to s at the
     * same cost */
    int *cls = malloc(sizeof(int) * S), *csize = calloc(S, sizeof(int)), *cmem = malloc(sizeof(int) * S * S);
    int *goff = malloc(sizeof(int) * S), *glen = malloc(sizeof(int) * S), *uni = malloc(sizeof(int) * S * S);
    int ncls = 0;
    if (!dp->mem || !dp->cost || !dp->inter || !dp->list || !dp->len || !D || !dmax || !same || !cls ||
        !csize || !cmem || !goff || !glen || !uni)
        goto nomem;
    for (int s = 0; s < S; s++) {
        int c = 0;
        while (c < ncls && (group ? group[cmem[c * S]] != group[s] : 0)) c++;
        if (c == ncls) ncls++;
        cls[s] = c;
        cmem[c * S + csize[c]++] = s;
    }
    for (int s = 0; s < S; s++) { /* first target with the same switch-cost column */
        same[s] = s;
        for (int s0 = 0; s0 < s && same[s] == s; s0++) {
            int eq = same[s0] == s0;
            for (int k = 0; k < S && eq; k++) eq = inter[k * S + s0] == inter[k * S + s];
            if (eq) same[s] = s0;
        }
    }
    for (int c = 0; c < ncls; c++)
        for (int s = 0; s < S; s++) {
            int u = 1;
            for (int q = 1; q < csize[c]; q++)
                u &= inter[cmem[c * S + q] * S + s] == inter[cmem[c * S] * S + s];
            uni[c * S + s] = u;
        }
    for (int m = 0; m < S; m++)
        for (int t = 0; t < S; t++) {
            double d = 0;
            for (int x = 0; x < S; x++) d = fmax(d, inter[m * S + x] - inter[t * S + x]);
            /* a query's exit cost is one more successor: m must beat t after it too */
            for (int r = 0; r < nexit; r++) d = fmax(d, exits[r * S + m] - exits[r * S + t]);
            D[m * S + t] = d;
        }
    for (int s = 0; s < S; s++) {
        dmax[s] = 0;
        for (int q = 0; q < csize[cls[s]]; q++) {
            int m = cmem[cls[s] * S + q];
            if (m != s) dmax[s] = fmax(dmax[s], D[m * S + s]);
        }
    }
    memcpy(dp->mem, mem, sizeof(int) * (size_t)L * S);
    memcpy(dp->cost, cost, sizeof(double) * (size_t)L * S);
    memcpy(dp->inter, inter, sizeof(double) * S * S);
    for (int s = 0; s < S; s++) { /* layer 0: f = intra for v >= mem, predecessor 0 (all-zero start) */
        if (mem[s] > cap - after[0] || mem[s] < 0) continue;
        dp->list[s] = malloc(sizeof(gv_pt));
        if (!dp->list[s]) goto nomem;
        dp->list[s][0] = (gv_pt){mem[s], 0, (0.0 + 0.0) + cost[s]};
        dp->len[s] = 1;
    }
    for (int i = 1; i < L; i++) {
        int lim = cap - after[i]; /* memory a queried path can have */
        const int *mi = mem + (size_t)i * S;
        const double *ci = cost + (size_t)i * S;
        size_t total = 0;
        for (int s = 0; s < S; s++) total += dp->len[(i - 1) * S + s];
        if (total + 1 > bufcap) {
            bufcap = total + 1;
            for (int b = 0; b < 3; b++) {
                free(buf[b]);
                buf[b] = malloc(sizeof(gv_pt) * bufcap);
                if (!buf[b]) goto nomem;
            }
        }
        genv = buf[2];
        for (int c = 0, off = 0; c < ncls; c++) { /* a class envelope is at most its columns' points */
            goff[c] = off;
            for (int q = 0; q < csize[c]; q++) off += dp->len[(i - 1) * S + cmem[c * S + q]];
        }
        /* class envelopes of the previous layer: columns of one class reach a strategy of another class
         * at one and the same switch cost, so they are merged once, not once per target */
        for (int c = 0; c < ncls; c++) {
            int n = 0, cur = 0;
            for (int q = 0; q < csize[c]; q++) {
                int k = cmem[c * S + q];
                const gv_pt *src = dp->list[(i - 1) * S + k];
                int ns = dp->len[(i - 1) * S + k];
                if (!ns) continue;
                n = gv_envelope(buf[cur], n, src, ns, 0.0, k, buf[cur ^ 1]);
                cur ^= 1;
            }
            gv_pt *g = genv + goff[c];
            memcpy(g, buf[cur], sizeof(gv_pt) * n);
            glen[c] = n;
            for (int q = 0; q < csize[c]; q++) {
                int k = cmem[c * S + q];
                gv_prune_list(dp->list[(i - 1) * S + k], &dp->len[(i - 1) * S + k], g, n, k, dmax[k]);
            }
        }
        /* targets with the same switch-cost column share one envelope (before their own cost and memory) */
        for (int s0 = 0; s0 < S; s0++) {
            if (same[s0] != s0) continue;
            int minmem = -1;
            for (int s = s0; s < S; s++)
                if (same[s] == s0 && mi[s] >= 0 && (minmem < 0 || mi[s] < minmem)) minmem = mi[s];
            int limit = lim - minmem;
            if (minmem < 0 || limit < 0) continue;
            int n = 0, cur = 0;
            for (int c = 0; c < ncls; c++) {
                if (uni[c * S + s0]) {
                    const gv_pt *g = genv + goff[c];
                    int ng = glen[c];
                    while (ng > 0 && g[ng - 1].mem > limit) ng--;
                    if (!ng) continue;
                    n = gv_envelope(buf[cur], n, g, ng, inter[cmem[c * S] * S + s0], -1, buf[cur ^ 1]);
                    cur ^= 1;
                    continue;
                }
                for (int q = 0; q < csize[c]; q++) {
                    int k = cmem[c * S + q];
                    const gv_pt *src = dp->list[(i - 1) * S + k];
                    int ns = dp->len[(i - 1) * S + k];
                    while (ns > 0 && src[ns - 1].mem > limit) ns--;
                    if (!ns) continue;
                    n = gv_envelope(buf[cur], n, src, ns, inter[k * S + s0], k, buf[cur ^ 1]);
                    cur ^= 1;
                }
            }
            for (int s = s0; s < S && n; s++) {
                if (same[s] != s0 || mi[s] < 0 || mi[s] > cap) continue;
                int ns = n;
                while (ns > 0 && buf[cur][ns - 1].mem > lim - mi[s]) ns--;
                if (!ns) continue;
                gv_pt *l = malloc(sizeof(gv_pt) * ns);
                if (!l) goto nomem;
                for (int q = 0; q < ns; q++) {
                    l[q].mem = buf[cur][q].mem + mi[s];
                    l[q].cost = buf[cur][q].cost + ci[s];
                    l[q].owner = buf[cur][q].owner;
                }
                dp->list[i * S + s] = l;
                dp->len[i * S + s] = ns;
            }
        }
    }
    *out = dp;
    dp = NULL; /* handed over */
nomem:         /* also the way out on success (dp == NULL then) */
    free(buf[0]);
    free(buf[1]);
    free(buf[2]);
    free(D);
    free(dmax);
    free(same);
    free(cls);
    free(csize);
    free(cmem);
    free(goff);
    free(glen);
    free(uni);
    free(after);
    if (!dp) return st;
    gv_stage_dp_free(dp);
    return gv_fail(GV_ERR_NOMEM, "search: out of host memory in the stage DP");
}

/* The breakpoint of a column in effect at memory v (last with mem <= v), or NULL. */
static const gv_pt *gv_at(const gv_stage_dp *dp, int i, int s, int v) {
    const gv_pt *l = dp->list[i * dp->S + s];
    int lo = 0, hi = dp->len[i * dp->S + s];
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (l[mid].mem <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? &l[lo - 1] : NULL;
}

double gv_stage_dp_query(const gv_stage_dp *dp, int n, int budget, int *plan, int *used) {
    return gv_stage_dp_query_exit(dp, n, budget, NULL, plan, used);
}

double gv_stage_dp_query_exit(const gv_stage_dp *dp, int n, int budget, const double *exit, int *plan,
                              int *used) {
    if (n < dp->nmin || n > dp->L || budget < 0) return INFINITY;
    if (budget > dp->cap) budget = dp->cap;
    int best = -1;
    double bv = INFINITY;
    for (int s = 0; s < dp->S; s++) {
        const gv_pt *p = gv_at(dp, n - 1, s, budget);
        if (!p) continue;
        double v = exit ? p->cost + exit[s] : p->cost; /* the cost after the last layer, by its strategy */
        if (v < bv) {
            bv = v;
            best = s;
        }
    }
    if (best < 0) return INFINITY;
    int v = budget, s = best, tot = 0;
    for (int i = n - 1; i >= 0; i--) {
        if (plan) plan[i] = s;
        tot += dp->mem[i * dp->S + s];
        const gv_pt *p = gv_at(dp, i, s, v);
        v -= dp->mem[i * dp->S + s];
        s = p ? p->owner : 0;
    }
    if (used) *used = tot;
    return bv;
}
