/* The layer-wise dynamic program of one pipeline stage (reference §3.3). Galvatron's C++ core fills a dense
 * table f[v][s] = least cost of the layers so far with memory <= v MB ending in strategy s, O(layers x
 * budget x S^2). Here each column f[.][s] is kept as its step function: the breakpoints (memory, cost,
 * predecessor) where the value or the arg-min predecessor changes. That is the same function, queried and
 * backtracked exactly like the dense table (ties go to the lowest strategy index, as numpy's argmin), but
 * its size is the number of distinct memory totals that improve the cost, not the budget in MB. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gv/search.h"

typedef struct {
    int mem, owner;
    double cost;
} gv_pt;

struct gv_stage_dp {
    int S, L, cap;
    int *mem;
    double *cost, *inter;
    gv_pt **list; /* [L * S]: breakpoints of f after layer i for strategy s, memory ascending */
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

/* Lower envelope of step functions a (owners < k) and b (+ add, owner k): at every memory x the value is
 * the smaller one, ties to a. Writes to out (capacity na + nb), returns its length. */
static int gv_envelope(const gv_pt *a, int na, const gv_pt *b, int nb, double add, int k, gv_pt *out) {
    int i = 0, j = 0, n = 0;
    double va = INFINITY, vb = INFINITY;
    int oa = -1;
    while (i < na || j < nb) {
        int x;
        if (j >= nb || (i < na && a[i].mem <= b[j].mem))
            x = a[i].mem;
        else
            x = b[j].mem;
        while (i < na && a[i].mem == x) {
            va = a[i].cost;
            oa = a[i].owner;
            i++;
        }
        while (j < nb && b[j].mem == x) {
            vb = b[j].cost + add;
            j++;
        }
        double v;
        int o;
        if (vb < va) {
            v = vb;
            o = k;
        } else {
            v = va;
            o = oa;
        }
        if (o < 0) continue;
        if (n && out[n - 1].cost == v && out[n - 1].owner == o) continue;
        out[n].mem = x;
        out[n].cost = v;
        out[n].owner = o;
        n++;
    }
    return n;
}

gv_status gv_stage_dp_solve(gv_stage_dp **out, int S, const int *mem, const double *cost, const double *inter,
                            int L, int cap) {
    *out = NULL;
    if (S < 1 || L < 1) return gv_fail(GV_ERR_INVALID, "search: stage DP needs strategies and layers");
    gv_stage_dp *dp = calloc(1, sizeof *dp);
    if (!dp) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    dp->S = S;
    dp->L = L;
    dp->cap = cap;
    dp->mem = malloc(sizeof(int) * S);
    dp->cost = malloc(sizeof(double) * S);
    dp->inter = malloc(sizeof(double) * S * S);
    dp->list = calloc((size_t)L * S, sizeof *dp->list);
    dp->len = calloc((size_t)L * S, sizeof *dp->len);
    gv_pt *buf[2] = {NULL, NULL};
    size_t bufcap = 0;
    gv_status st = GV_OK;
    if (!dp->mem || !dp->cost || !dp->inter || !dp->list || !dp->len) goto nomem;
    memcpy(dp->mem, mem, sizeof(int) * S);
    memcpy(dp->cost, cost, sizeof(double) * S);
    memcpy(dp->inter, inter, sizeof(double) * S * S);
    for (int s = 0; s < S; s++) { /* layer 0: f = intra for v >= mem, predecessor 0 (all-zero start) */
        if (mem[s] > cap || mem[s] < 0) continue;
        dp->list[s] = malloc(sizeof(gv_pt));
        if (!dp->list[s]) goto nomem;
        dp->list[s][0] = (gv_pt){mem[s], 0, (0.0 + 0.0) + cost[s]};
        dp->len[s] = 1;
    }
    for (int i = 1; i < L; i++) {
        size_t total = 0;
        for (int s = 0; s < S; s++) total += dp->len[(i - 1) * S + s];
        if (total + 1 > bufcap) {
            bufcap = total + 1;
            for (int b = 0; b < 2; b++) {
                free(buf[b]);
                buf[b] = malloc(sizeof(gv_pt) * bufcap);
                if (!buf[b]) goto nomem;
            }
        }
        for (int s = 0; s < S; s++) {
            int limit = cap - mem[s];
            if (limit < 0 || mem[s] < 0) continue;
            int n = 0, cur = 0;
            for (int k = 0; k < S; k++) {
                const gv_pt *src = dp->list[(i - 1) * S + k];
                int ns = dp->len[(i - 1) * S + k];
                while (ns > 0 && src[ns - 1].mem > limit) ns--;
                if (!ns) continue;
                /* points of column k as predecessor: owner k */
                gv_pt *dst = buf[cur ^ 1];
                if (n == 0) {
                    for (int q = 0; q < ns; q++) {
                        dst[q].mem = src[q].mem;
                        dst[q].cost = src[q].cost + inter[k * S + s];
                        dst[q].owner = k;
                    }
                    n = 1;
                    /* drop steps that do not improve (a column is already non-increasing) */
                    for (int q = 1; q < ns; q++)
                        if (dst[q].cost != dst[n - 1].cost) dst[n++] = dst[q];
                } else {
                    n = gv_envelope(buf[cur], n, src, ns, inter[k * S + s], k, dst);
                }
                cur ^= 1;
            }
            if (!n) continue;
            gv_pt *l = malloc(sizeof(gv_pt) * n);
            if (!l) goto nomem;
            for (int q = 0; q < n; q++) {
                l[q].mem = buf[cur][q].mem + mem[s];
                l[q].cost = buf[cur][q].cost + cost[s];
                l[q].owner = buf[cur][q].owner;
            }
            dp->list[i * S + s] = l;
            dp->len[i * S + s] = n;
        }
    }
    free(buf[0]);
    free(buf[1]);
    *out = dp;
    return st;
nomem:
    free(buf[0]);
    free(buf[1]);
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
    if (n < 1 || n > dp->L || budget < 0) return INFINITY;
    if (budget > dp->cap) budget = dp->cap;
    int best = -1;
    double bv = INFINITY;
    for (int s = 0; s < dp->S; s++) {
        const gv_pt *p = gv_at(dp, n - 1, s, budget);
        if (p && p->cost < bv) {
            bv = p->cost;
            best = s;
        }
    }
    if (best < 0) return INFINITY;
    int v = budget, s = best, tot = 0;
    for (int i = n - 1; i >= 0; i--) {
        if (plan) plan[i] = s;
        tot += dp->mem[s];
        const gv_pt *p = gv_at(dp, i, s, v);
        v -= dp->mem[s];
        s = p ? p->owner : 0;
    }
    if (used) *used = tot;
    return bv;
}
