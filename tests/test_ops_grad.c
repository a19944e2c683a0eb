/* CPU backend ops: every backward op against central finite differences of its forward, on several small
 * shapes (odd sizes, GQA, causal / bidirectional, padding masks, with and without bias, padded vocab,
 * ignored rows), plus forward values against direct scalar formulas, the vector ops (AdamW, sumsq, scale,
 * add, accumulate), memory and dtype conversion, argument errors, and 1-thread vs 2-thread agreement.
 *
 * Gradient check: loss L = sum(out * R) for a fixed random R, accumulated in double. The analytic gradient
 * is the backward op called with dout = R into zeroed buffers; calling it a second time must give exactly
 * twice the first result (ops accumulate). The numeric gradient is a Richardson-extrapolated central
 * difference, (4 D(h/2) - D(h)) / 3 with D(h) = (L(x+h) - L(x-h)) / 2h and h = 1e-2, which has O(h^4)
 * truncation error, so the fp32 rounding noise of the forward (~1e-5 here) dominates. An element passes
 * when |analytic - numeric| <= GC_ATOL + GC_RTOL * max(|analytic|, |numeric|). Every check also verifies
 * the tolerance has teeth: the same comparison must reject the analytic gradient with its largest element
 * scaled by 1.05, and dedicated negative controls (a layernorm backward without its mean terms, a rope
 * backward that rotates the wrong way, a swiglu backward missing the silu-derivative term, an attention
 * backward without the softmax-normalisation term) must be rejected. */
#include "gv/backend.h"
#include "gv/rng.h"
#include "test.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GC_RTOL 2e-2
#define GC_ATOL 1e-3
#define GC_H 1e-2f
#define GC_MAXIN 4

static gv_backend *be;

/* ---- buffers and random numbers ------------------------------------------------------------------------ */

/* Backend allocations for the current case, released by pool_reset(). */
static void *pool[64];
static int npool;

static void *balloc(size_t bytes) {
    void *p = NULL;
    if (gv_backend_alloc(be, &p, bytes) != GV_OK || npool == 64) {
        fprintf(stderr, "allocation failed: %s\n", gv_last_error());
        exit(2);
    }
    pool[npool++] = p;
    return p;
}
static float *fbuf(size_t n) {
    return balloc(n * sizeof(float));
}
static int32_t *ibuf(size_t n) {
    return balloc(n * sizeof(int32_t));
}
static void pool_reset(void) {
    for (int i = 0; i < npool; i++) gv_backend_dealloc(be, pool[i]);
    npool = 0;
}

static uint64_t rng_ctr;
static float rnorm(void) {
    return gv_rng_normal(20240611u, 1, rng_ctr++);
}
static float runif(void) {
    return gv_rng_uniform(20240611u, 2, rng_ctr++);
}
/* uniform integer in [lo, hi] */
static int rint_(int lo, int hi) {
    return lo + (int)(runif() * (float)(hi - lo + 1)) % (hi - lo + 1);
}
static float *randn(size_t n, float std) {
    float *p = fbuf(n);
    for (size_t i = 0; i < n; i++) p[i] = std * rnorm();
    return p;
}

/* ---- the gradient checker --------------------------------------------------------------------------- */

typedef struct gcheck gcheck;
struct gcheck {
    char name[160];
    int nin;
    float *in[GC_MAXIN]; /* differentiable inputs (perturbed in place) */
    size_t n_in[GC_MAXIN];
    const char *in_name[GC_MAXIN];
    float *grad[GC_MAXIN]; /* analytic gradient buffers, same sizes */
    float *out;
    size_t n_out;
    float *R; /* [n_out] upstream gradient, fixed random */
    void (*fwd)(gcheck *g);
    void (*bwd)(gcheck *g); /* accumulates d(sum(out*R))/d(in) into grad[] */
    void *ctx;
};

static double gc_loss(gcheck *g) {
    g->fwd(g);
    double L = 0.0;
    for (size_t i = 0; i < g->n_out; i++) L += (double)g->out[i] * (double)g->R[i];
    return L;
}

static double gc_numeric(gcheck *g, float *x) {
    float save = *x;
    double d[2];
    for (int k = 0; k < 2; k++) {
        float h = k == 0 ? GC_H : GC_H / 2;
        *x = save + h;
        double lp = gc_loss(g);
        *x = save - h;
        double lm = gc_loss(g);
        *x = save;
        /* divide by the step actually taken in fp32 */
        d[k] = (lp - lm) / ((double)(save + h) - (double)(save - h));
    }
    return (4.0 * d[1] - d[0]) / 3.0;
}

static int gc_close(double a, double n) {
    return fabs(a - n) <= GC_ATOL + GC_RTOL * fmax(fabs(a), fabs(n));
}

/* Runs the check; returns the number of mismatching elements. quiet: report nothing (negative controls). */
static int gc_run(gcheck *g, int quiet) {
    int bad = 0;
    float *a1[GC_MAXIN];
    g->fwd(g);
    for (int i = 0; i < g->nin; i++) memset(g->grad[i], 0, g->n_in[i] * sizeof(float));
    g->bwd(g);
    for (int i = 0; i < g->nin; i++) {
        a1[i] = malloc(g->n_in[i] * sizeof(float) + 1);
        memcpy(a1[i], g->grad[i], g->n_in[i] * sizeof(float));
    }
    /* accumulation: a second call adds the same gradient again */
    g->bwd(g);
    for (int i = 0; i < g->nin; i++) {
        for (size_t j = 0; j < g->n_in[i]; j++) {
            double two = 2.0 * a1[i][j], got = g->grad[i][j];
            if (!(fabs(got - two) <= 1e-6 + 1e-5 * fabs(two))) {
                if (!quiet)
                    fprintf(stderr, "%s: d%s[%zu] second backward gave %.9g, expected 2 * %.9g\n", g->name,
                            g->in_name[i], j, got, (double)a1[i][j]);
                bad++;
                break;
            }
        }
    }
    double worst = 0.0;
    for (int i = 0; i < g->nin; i++) {
        size_t jmax = 0;
        double *num = malloc(g->n_in[i] * sizeof(double) + 1);
        for (size_t j = 0; j < g->n_in[i]; j++) {
            num[j] = gc_numeric(g, &g->in[i][j]);
            double a = a1[i][j];
            double err = fabs(a - num[j]) / (GC_ATOL + GC_RTOL * fmax(fabs(a), fabs(num[j])));
            if (err > worst) worst = err;
            if (!gc_close(a, num[j])) {
                if (!quiet && bad < 8)
                    fprintf(stderr, "%s: d%s[%zu] analytic %.7g numeric %.7g\n", g->name, g->in_name[i], j, a,
                            num[j]);
                bad++;
            }
            if (fabs(a1[i][j]) > fabs(a1[i][jmax])) jmax = j;
        }
        /* the tolerance must reject a 5% error in the largest gradient element */
        if (!quiet && g->n_in[i] > 0 && fabs(a1[i][jmax]) > 100 * GC_ATOL &&
            gc_close(1.05 * a1[i][jmax], num[jmax])) {
            fprintf(stderr, "%s: d%s: tolerance too loose to catch a 5%% error\n", g->name, g->in_name[i]);
            bad++;
        }
        free(num);
        free(a1[i]);
    }
    g->fwd(g); /* leave the forward state of the unperturbed inputs behind */
    if (getenv("GV_TEST_VERBOSE")) printf("  %-70s worst err/tol %.3f\n", g->name, worst);
    return bad;
}

static void gc_expect_pass(gcheck *g) {
    int bad = gc_run(g, 0);
    if (bad) {
        fprintf(stderr, "gradient check FAILED: %s (%d mismatches)\n", g->name, bad);
        gv_test_failures++;
    }
}

static void gc_expect_reject(gcheck *g) {
    if (gc_run(g, 1) == 0) {
        fprintf(stderr, "negative control NOT rejected: %s\n", g->name);
        gv_test_failures++;
    }
}

static void gc_add_in(gcheck *g, const char *name, float *x, size_t n) {
    g->in_name[g->nin] = name;
    g->in[g->nin] = x;
    g->n_in[g->nin] = n;
    g->grad[g->nin] = fbuf(n);
    g->nin++;
}

static void gc_set_out(gcheck *g, float *out, size_t n) {
    g->out = out;
    g->n_out = n;
    g->R = randn(n, 1.0f);
}

/* ---- embedding ------------------------------------------------------------------------------------ */

typedef struct {
    int B, T, C, V, pos0;
    int32_t *tok;
    float *wte, *wpe;
} emb_ctx;

static void emb_fwd(gcheck *g) {
    emb_ctx *c = g->ctx;
    CHECK_OK(gv_embedding_forward(be, g->out, c->tok, c->wte, c->wpe, c->B, c->T, c->C, c->pos0));
}
static void emb_bwd(gcheck *g) {
    emb_ctx *c = g->ctx;
    CHECK_OK(gv_embedding_backward(be, g->grad[0], c->wpe ? g->grad[1] : NULL, g->R, c->tok, c->B, c->T, c->C,
                                   c->pos0));
}

static void test_embedding_case(int B, int T, int C, int V, int pos0, int use_wpe) {
    emb_ctx c = {B, T, C, V, pos0, ibuf((size_t)B * T), randn((size_t)V * C, 1), NULL};
    if (use_wpe) c.wpe = randn((size_t)(pos0 + T) * C, 1);
    for (int i = 0; i < B * T; i++) c.tok[i] = rint_(0, V - 1); /* V small: tokens repeat */
    for (int i = 2; i < B * T; i += 5) c.tok[i] = -1;           /* not in this vocab shard */
    gcheck g = {.fwd = emb_fwd, .bwd = emb_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "embedding B=%d T=%d C=%d V=%d pos0=%d wpe=%d", B, T, C, V, pos0,
             use_wpe);
    gc_add_in(&g, "wte", c.wte, (size_t)V * C);
    if (use_wpe) gc_add_in(&g, "wpe", c.wpe, (size_t)(pos0 + T) * C);
    gc_set_out(&g, fbuf((size_t)B * T * C), (size_t)B * T * C);
    gc_expect_pass(&g);
    /* forward values */
    emb_fwd(&g);
    for (int n = 0; n < B * T; n++)
        for (int k = 0; k < C; k++) {
            float want = (c.tok[n] >= 0 ? c.wte[c.tok[n] * C + k] : 0.0f) +
                         (use_wpe ? c.wpe[(pos0 + n % T) * C + k] : 0.0f);
            CHECK(g.out[n * C + k] == want);
        }
    pool_reset();
}

static void test_embedding(void) {
    test_embedding_case(1, 1, 1, 1, 0, 1);
    test_embedding_case(2, 3, 5, 4, 0, 1);
    test_embedding_case(3, 5, 16, 3, 2, 1);
    test_embedding_case(2, 4, 7, 5, 0, 0);
    for (int r = 0; r < 2; r++)
        test_embedding_case(rint_(1, 5), rint_(1, 5), rint_(1, 16), rint_(1, 6), rint_(0, 3), r);
}

/* ---- layernorm / rmsnorm -------------------------------------------------------------------------- */

typedef struct {
    int N, C, rms;
    float eps;
    float *inp, *w, *bias, *mean, *rstd;
} norm_ctx;

static void norm_fwd(gcheck *g) {
    norm_ctx *c = g->ctx;
    if (c->rms)
        CHECK_OK(gv_rmsnorm_forward(be, g->out, c->rstd, c->inp, c->w, c->N, c->C, c->eps));
    else
        CHECK_OK(
            gv_layernorm_forward(be, g->out, c->mean, c->rstd, c->inp, c->w, c->bias, c->N, c->C, c->eps));
}
static void norm_bwd(gcheck *g) {
    norm_ctx *c = g->ctx;
    if (c->rms)
        CHECK_OK(gv_rmsnorm_backward(be, g->grad[0], g->grad[1], g->R, c->inp, c->w, c->rstd, c->N, c->C));
    else
        CHECK_OK(gv_layernorm_backward(be, g->grad[0], g->grad[1], c->bias ? g->grad[2] : NULL, g->R, c->inp,
                                       c->w, c->mean, c->rstd, c->N, c->C));
}
/* Negative control: layernorm input gradient without the two mean terms, dx = dout * w * rstd. */
static void norm_bwd_wrong(gcheck *g) {
    norm_ctx *c = g->ctx;
    float *dx = g->grad[0];
    for (int n = 0; n < c->N; n++)
        for (int k = 0; k < c->C; k++) dx[n * c->C + k] += g->R[n * c->C + k] * c->w[k] * c->rstd[n];
    CHECK_OK(gv_layernorm_backward(be, NULL, g->grad[1], c->bias ? g->grad[2] : NULL, g->R, c->inp, c->w,
                                   c->mean, c->rstd, c->N, c->C));
}

static void test_norm_case(int rms, int N, int C, int with_bias, int negative) {
    norm_ctx c = {N, C, rms, 1e-5f, randn((size_t)N * C, 1), NULL, NULL, fbuf(N), fbuf(N)};
    c.w = fbuf(C);
    for (int k = 0; k < C; k++) c.w[k] = 1.0f + 0.5f * rnorm();
    for (int i = 0; i < N * C; i++) c.inp[i] += 0.3f; /* nonzero row means */
    if (with_bias && !rms) c.bias = randn(C, 1);
    gcheck g = {.fwd = norm_fwd, .bwd = negative ? norm_bwd_wrong : norm_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "%s N=%d C=%d bias=%d%s", rms ? "rmsnorm" : "layernorm", N, C, with_bias,
             negative ? " (no mean terms)" : "");
    gc_add_in(&g, "inp", c.inp, (size_t)N * C);
    gc_add_in(&g, "w", c.w, C);
    if (c.bias) gc_add_in(&g, "bias", c.bias, C);
    gc_set_out(&g, fbuf((size_t)N * C), (size_t)N * C);
    if (negative) {
        gc_expect_reject(&g);
        pool_reset();
        return;
    }
    gc_expect_pass(&g);
    /* forward values against the scalar formula, computed in double */
    norm_fwd(&g);
    for (int n = 0; n < N; n++) {
        const float *x = c.inp + n * C;
        double m = 0, v = 0, ss = 0;
        for (int k = 0; k < C; k++) m += x[k], ss += (double)x[k] * x[k];
        m /= C;
        for (int k = 0; k < C; k++) v += (x[k] - m) * (x[k] - m);
        v /= C;
        double rs = rms ? 1.0 / sqrt(ss / C + 1e-5) : 1.0 / sqrt(v + 1e-5);
        CHECK_CLOSE(c.rstd[n], rs, 1e-5, 0);
        if (!rms) CHECK_CLOSE(c.mean[n], m, 1e-5, 1e-6);
        for (int k = 0; k < C; k++) {
            double want = rms ? x[k] * rs * c.w[k] : (x[k] - m) * rs * c.w[k] + (c.bias ? c.bias[k] : 0.0);
            CHECK_CLOSE(g.out[n * C + k], want, 1e-5, 1e-5);
        }
    }
    pool_reset();
}

/* LayerNorm without affine parameters normalises each row to mean 0, variance 1. */
static void test_layernorm_stats(void) {
    int N = 4, C = 37;
    float *x = randn((size_t)N * C, 3.0f), *y = fbuf((size_t)N * C), *w = fbuf(C);
    for (int k = 0; k < C; k++) w[k] = 1.0f;
    for (int i = 0; i < N * C; i++) x[i] += 5.0f;
    CHECK_OK(gv_layernorm_forward(be, y, NULL, NULL, x, w, NULL, N, C, 1e-5f));
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int k = 0; k < C; k++) m += y[n * C + k];
        m /= C;
        for (int k = 0; k < C; k++) v += (y[n * C + k] - m) * (y[n * C + k] - m);
        v /= C;
        CHECK_CLOSE(m, 0.0, 0, 1e-6);
        CHECK_CLOSE(v, 1.0, 1e-5, 0);
    }
    /* rmsnorm: mean of squares 1 */
    CHECK_OK(gv_rmsnorm_forward(be, y, NULL, x, w, N, C, 1e-6f));
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int k = 0; k < C; k++) ss += (double)y[n * C + k] * y[n * C + k];
        CHECK_CLOSE(ss / C, 1.0, 1e-5, 0);
    }
    pool_reset();
}

static void test_norm(void) {
    for (int rms = 0; rms < 2; rms++) {
        test_norm_case(rms, 1, 3, 1, 0);
        test_norm_case(rms, 4, 7, 1, 0);
        test_norm_case(rms, 5, 16, 0, 0);
        test_norm_case(rms, 3, 5, 0, 0);
        for (int r = 0; r < 2; r++) test_norm_case(rms, rint_(1, 5), rint_(3, 16), r, 0);
    }
    test_norm_case(0, 3, 6, 1, 1);
    test_layernorm_stats();
}

/* ---- matmul ------------------------------------------------------------------------------------- */

typedef struct {
    int N, C, OC;
    float *inp, *w, *bias;
} mm_ctx;

static void mm_fwd(gcheck *g) {
    mm_ctx *c = g->ctx;
    CHECK_OK(gv_matmul_forward(be, g->out, c->inp, c->w, c->bias, c->N, c->C, c->OC));
}
static void mm_bwd(gcheck *g) {
    mm_ctx *c = g->ctx;
    CHECK_OK(gv_matmul_backward(be, g->grad[0], g->grad[1], c->bias ? g->grad[2] : NULL, g->R, c->inp, c->w,
                                c->N, c->C, c->OC));
}

static void test_matmul_case(int N, int C, int OC, int with_bias) {
    mm_ctx c = {N, C, OC, randn((size_t)N * C, 1), randn((size_t)OC * C, 1), with_bias ? randn(OC, 1) : NULL};
    gcheck g = {.fwd = mm_fwd, .bwd = mm_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "matmul N=%d C=%d OC=%d bias=%d", N, C, OC, with_bias);
    gc_add_in(&g, "inp", c.inp, (size_t)N * C);
    gc_add_in(&g, "w", c.w, (size_t)OC * C);
    if (with_bias) gc_add_in(&g, "bias", c.bias, OC);
    gc_set_out(&g, fbuf((size_t)N * OC), (size_t)N * OC);
    gc_expect_pass(&g);
    mm_fwd(&g);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            double s = with_bias ? c.bias[j] : 0.0;
            for (int k = 0; k < C; k++) s += (double)c.inp[n * C + k] * c.w[j * C + k];
            CHECK_CLOSE(g.out[n * OC + j], s, 1e-5, 1e-5);
        }
    /* gradients against the direct formulas (the check left them at twice the gradient) */
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            double s = 0;
            for (int j = 0; j < OC; j++) s += (double)g.R[n * OC + j] * c.w[j * C + k];
            CHECK_CLOSE(g.grad[0][n * C + k] / 2, s, 1e-5, 1e-5);
        }
    for (int j = 0; j < OC; j++) {
        for (int k = 0; k < C; k++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)g.R[n * OC + j] * c.inp[n * C + k];
            CHECK_CLOSE(g.grad[1][j * C + k] / 2, s, 1e-5, 1e-5);
        }
        if (with_bias) {
            double s = 0;
            for (int n = 0; n < N; n++) s += g.R[n * OC + j];
            CHECK_CLOSE(g.grad[2][j] / 2, s, 1e-5, 1e-6);
        }
    }
    /* NULL gradients are skipped: only dw requested leaves the others untouched */
    float *dw = fbuf((size_t)OC * C);
    CHECK_OK(gv_matmul_backward(be, NULL, dw, NULL, g.R, c.inp, c.w, N, C, OC));
    for (int i = 0; i < OC * C; i++) CHECK_CLOSE(dw[i], g.grad[1][i] / 2, 1e-5, 1e-6);
    pool_reset();
}

static void test_matmul(void) {
    test_matmul_case(1, 1, 1, 1);
    test_matmul_case(3, 5, 7, 1);
    test_matmul_case(5, 16, 3, 0);
    test_matmul_case(4, 13, 16, 1);
    for (int r = 0; r < 2; r++) test_matmul_case(rint_(1, 5), rint_(1, 16), rint_(1, 16), r);
}

/* ---- linear + GELU (the MLP pair) ---------------------------------------------------------------- */

/* out = act @ w2^T + b2 with act = gelu(pre), pre = inp @ w1^T + b1: the forward through
 * gv_matmul_gelu_forward, the gradients of (pre via b1, w2, b2) through gv_matmul_backward_gelu, the
 * gradients of (inp, w1) through gv_matmul_backward from dpre. */
typedef struct {
    int N, C, F, OC;
    float *inp, *w1, *b1, *w2, *b2, *pre, *act, *dpre;
} mg_ctx;

static void mg_fwd(gcheck *g) {
    mg_ctx *c = g->ctx;
    CHECK_OK(gv_matmul_gelu_forward(be, c->act, c->pre, c->inp, c->w1, c->b1, c->N, c->C, c->F));
    CHECK_OK(gv_matmul_forward(be, g->out, c->act, c->w2, c->b2, c->N, c->F, c->OC));
}
static void mg_bwd(gcheck *g) {
    mg_ctx *c = g->ctx;
    /* grad[0] inp, [1] w1, [2] b1, [3] w2; b2's gradient goes to dpre_bias's twin check below */
    memset(c->dpre, 0, (size_t)c->N * c->F * sizeof(float));
    CHECK_OK(gv_matmul_backward_gelu(be, c->dpre, g->grad[2], g->grad[3], NULL, g->R, c->act, c->pre, c->w2,
                                     c->N, c->F, c->OC));
    CHECK_OK(gv_matmul_backward(be, g->grad[0], g->grad[1], NULL, c->dpre, c->inp, c->w1, c->N, c->C, c->F));
}

static void test_matmul_gelu_case(int N, int C, int F, int OC) {
    mg_ctx c = {N,
                C,
                F,
                OC,
                randn((size_t)N * C, 1),
                randn((size_t)F * C, 1),
                randn(F, 1),
                randn((size_t)OC * F, 1),
                randn(OC, 1),
                fbuf((size_t)N * F),
                fbuf((size_t)N * F),
                fbuf((size_t)N * F)};
    gcheck g = {.fwd = mg_fwd, .bwd = mg_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "matmul+gelu N=%d C=%d F=%d OC=%d", N, C, F, OC);
    gc_add_in(&g, "inp", c.inp, (size_t)N * C);
    gc_add_in(&g, "w1", c.w1, (size_t)F * C);
    gc_add_in(&g, "b1", c.b1, F);
    gc_add_in(&g, "w2", c.w2, (size_t)OC * F);
    gc_set_out(&g, fbuf((size_t)N * OC), (size_t)N * OC);
    gc_expect_pass(&g);
    /* forward values: pre and act against the scalar formulas */
    mg_fwd(&g);
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double s = c.b1[f];
            for (int k = 0; k < C; k++) s += (double)c.inp[n * C + k] * c.w1[f * C + k];
            double x = s, want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
            CHECK_CLOSE(c.pre[n * F + f], s, 1e-5, 1e-5);
            CHECK_CLOSE(c.act[n * F + f], want, 1e-5, 1e-5);
        }
    /* dbias of the second layer equals matmul_backward's; dpre equals matmul_backward + gelu_backward */
    float *db_a = fbuf(OC), *db_b = fbuf(OC), *dp_a = fbuf((size_t)N * F), *dp_b = fbuf((size_t)N * F),
          *dx = fbuf((size_t)N * F);
    CHECK_OK(gv_matmul_backward_gelu(be, dp_a, NULL, NULL, db_a, g.R, c.act, c.pre, c.w2, N, F, OC));
    CHECK_OK(gv_matmul_backward(be, dx, NULL, db_b, g.R, c.act, c.w2, N, F, OC));
    CHECK_OK(gv_gelu_backward(be, dp_b, dx, c.pre, (size_t)N * F));
    for (int j = 0; j < OC; j++) CHECK_CLOSE(db_a[j], db_b[j], 1e-5, 1e-6);
    for (int i = 0; i < N * F; i++) CHECK_CLOSE(dp_a[i], dp_b[i], 1e-5, 1e-6);
    pool_reset();
}

static void test_matmul_gelu(void) {
    test_matmul_gelu_case(1, 1, 1, 1);
    test_matmul_gelu_case(3, 5, 8, 4);
    test_matmul_gelu_case(4, 6, 13, 7);
}

/* ---- attention ---------------------------------------------------------------------------------- */

typedef struct {
    int B, T, H, KVH, D, causal;
    float *qkv, *stash;
    int32_t *mask;
} attn_ctx;

static void attn_fwd(gcheck *g) {
    attn_ctx *c = g->ctx;
    CHECK_OK(gv_attention_forward(be, g->out, c->stash, c->qkv, c->mask, c->B, c->T, c->H, c->KVH, c->D,
                                  c->causal));
}
static void attn_bwd(gcheck *g) {
    attn_ctx *c = g->ctx;
    CHECK_OK(gv_attention_backward(be, g->grad[0], g->R, c->qkv, g->out, c->stash, c->mask, c->B, c->T, c->H,
                                   c->KVH, c->D, c->causal));
}
/* Negative control: a scalar attention backward that forgets the softmax-normalisation term of dS
 * (dS = P * dP instead of P * (dP - sum P dP)). */
static void attn_bwd_wrong(gcheck *g) {
    attn_ctx *c = g->ctx;
    int B = c->B, T = c->T, H = c->H, KVH = c->KVH, D = c->D, G = H / KVH, R = (H + 2 * KVH) * D;
    float sc = 1.0f / sqrtf((float)D);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *P = c->stash + ((size_t)(b * H + h) * T + t) * T;
                const float *dO = g->R + (size_t)(b * T + t) * H * D + h * D;
                const float *q = c->qkv + (size_t)(b * T + t) * R + h * D;
                float *dq = g->grad[0] + (size_t)(b * T + t) * R + h * D;
                for (int t2 = 0; t2 < T; t2++) {
                    const float *k = c->qkv + (size_t)(b * T + t2) * R + (H + h / G) * D;
                    const float *v = k + KVH * D;
                    float *dk = g->grad[0] + (size_t)(b * T + t2) * R + (H + h / G) * D, *dv = dk + KVH * D;
                    float dp = 0;
                    for (int d = 0; d < D; d++) dp += dO[d] * v[d];
                    float ds = P[t2] * dp;
                    for (int d = 0; d < D; d++) {
                        dq[d] += sc * ds * k[d];
                        dk[d] += sc * ds * q[d];
                        dv[d] += P[t2] * dO[d];
                    }
                }
            }
}

/* Direct scalar attention in double; returns max |out - ref| and checks the stash probabilities. */
static void attn_reference_check(attn_ctx *c, const float *out) {
    int B = c->B, T = c->T, H = c->H, KVH = c->KVH, D = c->D, G = H / KVH, R = (H + 2 * KVH) * D;
    double *s = malloc(sizeof(double) * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const float *q = c->qkv + (size_t)(b * T + t) * R + h * D;
                const float *P = c->stash + ((size_t)(b * H + h) * T + t) * T;
                double mx = -INFINITY, sum = 0;
                for (int t2 = 0; t2 < T; t2++) {
                    int vis = (!c->causal || t2 <= t) && (!c->mask || c->mask[b * T + t2]);
                    s[t2] = -INFINITY;
                    if (!vis) continue;
                    const float *k = c->qkv + (size_t)(b * T + t2) * R + (H + h / G) * D;
                    double d = 0;
                    for (int i = 0; i < D; i++) d += (double)q[i] * k[i];
                    s[t2] = d / sqrt((double)D);
                    mx = fmax(mx, s[t2]);
                }
                for (int t2 = 0; t2 < T; t2++) sum += s[t2] == -INFINITY ? 0 : exp(s[t2] - mx);
                double psum = 0;
                for (int t2 = 0; t2 < T; t2++) {
                    double p = (s[t2] == -INFINITY) ? 0.0 : exp(s[t2] - mx) / sum;
                    if (p == 0.0)
                        CHECK(P[t2] == 0.0f); /* masked keys: exactly zero */
                    else
                        CHECK_CLOSE(P[t2], p, 1e-5, 1e-7);
                    psum += P[t2];
                }
                /* softmax rows sum to 1, or are all zero when every key is masked */
                if (mx == -INFINITY)
                    CHECK(psum == 0.0);
                else
                    CHECK_CLOSE(psum, 1.0, 1e-5, 0);
                for (int i = 0; i < D; i++) {
                    double o = 0;
                    for (int t2 = 0; t2 < T; t2++) {
                        if (s[t2] == -INFINITY) continue;
                        const float *v = c->qkv + (size_t)(b * T + t2) * R + (H + KVH + h / G) * D;
                        o += exp(s[t2] - mx) / sum * v[i];
                    }
                    float got = out[(size_t)(b * T + t) * H * D + h * D + i];
                    CHECK(isfinite(got));
                    if (mx == -INFINITY)
                        CHECK(got == 0.0f);
                    else
                        CHECK_CLOSE(got, o, 1e-5, 1e-5);
                }
            }
    free(s);
}

/* maskmode: 0 none, 1 random padding keys (at least one real key per sequence), 2 left padding so that
 * under causal attention the first query rows see no key at all. */
static void test_attention_case(int B, int T, int H, int KVH, int D, int causal, int maskmode, int negative) {
    int R = (H + 2 * KVH) * D;
    attn_ctx c = {B, T, H, KVH, D, causal, randn((size_t)B * T * R, 1), NULL, NULL};
    c.stash = balloc(gv_attention_stash_bytes(be, B, T, H));
    if (maskmode) {
        c.mask = ibuf((size_t)B * T);
        for (int b = 0; b < B; b++) {
            int pad = maskmode == 2 ? rint_(1, T > 1 ? T - 1 : 1) : 0;
            for (int t = 0; t < T; t++) c.mask[b * T + t] = maskmode == 2 ? t >= pad : runif() < 0.7f;
            if (maskmode == 1) c.mask[b * T + rint_(0, T - 1)] = 1;
        }
    }
    gcheck g = {.fwd = attn_fwd, .bwd = negative ? attn_bwd_wrong : attn_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "attention B=%d T=%d H=%d KVH=%d D=%d causal=%d mask=%d%s", B, T, H, KVH,
             D, causal, maskmode, negative ? " (no normalisation term)" : "");
    gc_add_in(&g, "qkv", c.qkv, (size_t)B * T * R);
    gc_set_out(&g, fbuf((size_t)B * T * H * D), (size_t)B * T * H * D);
    if (negative) {
        gc_expect_reject(&g);
        pool_reset();
        return;
    }
    gc_expect_pass(&g);
    attn_fwd(&g);
    attn_reference_check(&c, g.out);
    /* keys that are masked for every query get exactly zero dk and dv */
    if (c.mask) {
        memset(g.grad[0], 0, sizeof(float) * B * T * R);
        attn_bwd(&g);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                if (!c.mask[b * T + t])
                    for (int j = H * D; j < R; j++) CHECK(g.grad[0][(size_t)(b * T + t) * R + j] == 0.0f);
    }
    pool_reset();
}

/* General attention (T5): q with a padded row stride, k and v views into one packed kv buffer, Tq != Tk
 * (cross-attention) or causal self-attention, an additive bias [Tq, Tk, H] and a scale; gradients of q, kv
 * and the bias. Also: with q, k, v as views into a packed qkv, scale 1/sqrt(D) and no bias it equals
 * gv_attention_forward. Negative control: the backward run with another scale than the forward's. */
typedef struct {
    gv_attn_ext a;
    float *q, *kv, *bias, *stash;
} attx_ctx;

static void attx_fwd(gcheck *g) {
    attx_ctx *c = g->ctx;
    CHECK_OK(gv_attention_ext_forward(be, &c->a, g->out, c->stash, c->q, c->kv, c->kv + c->a.KVH * c->a.D,
                                      c->bias));
}
static void attx_bwd(gcheck *g) {
    attx_ctx *c = g->ctx;
    CHECK_OK(gv_attention_ext_backward(be, &c->a, g->grad[0], g->grad[1], g->grad[1] + c->a.KVH * c->a.D,
                                       g->grad[2], g->R, c->q, c->kv, c->kv + c->a.KVH * c->a.D, c->stash));
}
static void attx_bwd_wrong(gcheck *g) {
    attx_ctx *c = g->ctx;
    gv_attn_ext w = c->a;
    w.scale = 1.0f;
    CHECK_OK(gv_attention_ext_backward(be, &w, g->grad[0], g->grad[1], g->grad[1] + c->a.KVH * c->a.D,
                                       g->grad[2], g->R, c->q, c->kv, c->kv + c->a.KVH * c->a.D, c->stash));
}

static void test_attention_ext_case(int B, int Tq, int Tk, int H, int KVH, int D, int causal, int negative) {
    int ldq = H * D + 3, ldkv = 2 * KVH * D;
    attx_ctx c = {{B, Tq, Tk, H, KVH, D, ldq, ldkv, ldkv, 0.5f, causal}, NULL, NULL, NULL, NULL};
    c.q = randn((size_t)B * Tq * ldq, 1);
    c.kv = randn((size_t)B * Tk * ldkv, 1);
    c.bias = randn((size_t)Tq * Tk * H, 1);
    c.stash = balloc(gv_attention_ext_stash_bytes(be, &c.a));
    gcheck g = {.fwd = attx_fwd, .bwd = negative ? attx_bwd_wrong : attx_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "attention_ext B=%d Tq=%d Tk=%d H=%d KVH=%d D=%d causal=%d%s", B, Tq, Tk,
             H, KVH, D, causal, negative ? " (wrong scale)" : "");
    gc_add_in(&g, "q", c.q, (size_t)B * Tq * ldq);
    gc_add_in(&g, "kv", c.kv, (size_t)B * Tk * ldkv);
    gc_add_in(&g, "bias", c.bias, (size_t)Tq * Tk * H);
    gc_set_out(&g, fbuf((size_t)B * Tq * H * D), (size_t)B * Tq * H * D);
    if (negative)
        gc_expect_reject(&g);
    else
        gc_expect_pass(&g);
    pool_reset();
}

static void test_attention_ext(void) {
    test_attention_ext_case(2, 3, 5, 2, 2, 3, 0, 0); /* cross-attention, Tq < Tk */
    test_attention_ext_case(1, 6, 2, 4, 2, 2, 0, 0); /* cross-attention, GQA, Tq > Tk */
    test_attention_ext_case(2, 4, 4, 2, 1, 3, 1, 0); /* causal self-attention, multi-query */
    test_attention_ext_case(2, 3, 4, 2, 2, 2, 0, 1);
    /* Equal to the packed self-attention op. */
    int B = 2, T = 5, H = 4, KVH = 2, D = 3, R = (H + 2 * KVH) * D;
    float *qkv = randn((size_t)B * T * R, 1), *o1 = fbuf((size_t)B * T * H * D),
          *o2 = fbuf((size_t)B * T * H * D);
    for (int causal = 0; causal < 2; causal++) {
        gv_attn_ext a = {B, T, T, H, KVH, D, R, R, R, 1.0f / sqrtf((float)D), causal};
        CHECK_OK(gv_attention_forward(be, o1, balloc(gv_attention_stash_bytes(be, B, T, H)), qkv, NULL, B, T,
                                      H, KVH, D, causal));
        CHECK_OK(gv_attention_ext_forward(be, &a, o2, balloc(gv_attention_ext_stash_bytes(be, &a)), qkv,
                                          qkv + H * D, qkv + (H + KVH) * D, NULL));
        for (int i = 0; i < B * T * H * D; i++) CHECK_CLOSE(o2[i], o1[i], 1e-6, 1e-6);
    }
    /* Shape errors name the op. */
    gv_attn_ext bad = {1, 2, 3, 2, 2, 2, 4, 8, 8, 1.0f, 1};
    CHECK(gv_attention_ext_forward(be, &bad, o1, NULL, qkv, qkv, qkv, NULL) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), "attention_ext_forward: causal") != NULL);
    bad.causal = 0, bad.ldk = 3;
    CHECK(gv_attention_ext_forward(be, &bad, o1, NULL, qkv, qkv, qkv, NULL) == GV_ERR_INVALID);
    pool_reset();
}

/* T = 1: the only key is the query's own, so out = v of the query head's kv head. */
static void test_attention_t1(void) {
    int B = 3, H = 4, KVH = 2, D = 5, R = (H + 2 * KVH) * D;
    float *qkv = randn((size_t)B * R, 2), *out = fbuf((size_t)B * H * D);
    float *stash = balloc(gv_attention_stash_bytes(be, B, 1, H));
    for (int causal = 0; causal < 2; causal++) {
        CHECK_OK(gv_attention_forward(be, out, stash, qkv, NULL, B, 1, H, KVH, D, causal));
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                CHECK(stash[b * H + h] == 1.0f);
                for (int d = 0; d < D; d++)
                    CHECK(out[(b * H + h) * D + d] == qkv[b * R + (H + KVH + h / (H / KVH)) * D + d]);
            }
    }
    pool_reset();
}

static void test_attention(void) {
    test_attention_case(1, 1, 1, 1, 2, 1, 0, 0);
    test_attention_case(2, 3, 2, 2, 4, 1, 0, 0); /* H == KVH, causal */
    test_attention_case(2, 5, 4, 2, 3, 0, 1, 0); /* GQA, bidirectional, padding mask, odd D */
    test_attention_case(2, 5, 4, 2, 4, 1, 1, 0); /* GQA, causal, padding mask */
    test_attention_case(1, 4, 4, 1, 2, 0, 0, 0); /* multi-query */
    test_attention_case(3, 5, 4, 4, 5, 1, 2, 0); /* left padding: fully masked query rows */
    test_attention_case(2, 4, 4, 2, 3, 0, 2, 0); /* left padding, bidirectional */
    for (int r = 0; r < 2; r++) {
        int KVH = rint_(1, 2), H = KVH * rint_(1, 2);
        test_attention_case(rint_(1, 4), rint_(1, 5), H, KVH, rint_(1, 6), r, rint_(0, 1), 0);
    }
    test_attention_case(2, 4, 4, 2, 3, 1, 0, 1);
    test_attention_t1();
}

/* ---- rope --------------------------------------------------------------------------------------- */

typedef struct {
    int B, T, H, KVH, D, pos0;
    float theta;
    float *inp;
} rope_ctx;

static void rope_fwd(gcheck *g) {
    rope_ctx *c = g->ctx;
    CHECK_OK(gv_rope_forward(be, g->out, c->inp, c->B, c->T, c->H, c->KVH, c->D, c->theta, c->pos0));
}
static void rope_bwd(gcheck *g) {
    rope_ctx *c = g->ctx;
    CHECK_OK(gv_rope_backward(be, g->grad[0], g->R, c->B, c->T, c->H, c->KVH, c->D, c->theta, c->pos0));
}
/* Negative control: rotating dout forward (+angle) instead of back. */
static void rope_bwd_wrong(gcheck *g) {
    rope_ctx *c = g->ctx;
    size_t n = (size_t)c->B * c->T * (c->H + 2 * c->KVH) * c->D;
    float *tmp = malloc(n * sizeof(float));
    CHECK_OK(gv_rope_forward(be, tmp, g->R, c->B, c->T, c->H, c->KVH, c->D, c->theta, c->pos0));
    CHECK_OK(gv_accumulate(be, g->grad[0], tmp, n));
    free(tmp);
}

static void test_rope_case(int B, int T, int H, int KVH, int D, int pos0, float theta, int negative) {
    size_t n = (size_t)B * T * (H + 2 * KVH) * D;
    rope_ctx c = {B, T, H, KVH, D, pos0, theta, randn(n, 1)};
    gcheck g = {.fwd = rope_fwd, .bwd = negative ? rope_bwd_wrong : rope_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "rope B=%d T=%d H=%d KVH=%d D=%d pos0=%d theta=%g%s", B, T, H, KVH, D,
             pos0, (double)theta, negative ? " (wrong rotation)" : "");
    gc_add_in(&g, "inp", c.inp, n);
    gc_set_out(&g, fbuf(n), n);
    if (negative) {
        gc_expect_reject(&g);
        pool_reset();
        return;
    }
    gc_expect_pass(&g);
    /* forward against the formula: pairs (i, i + D/2), angle = pos * theta^(-2i/D); v copied */
    rope_fwd(&g);
    int R = (H + 2 * KVH) * D, half = D / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *x = c.inp + (size_t)(b * T + t) * R;
            const float *y = g.out + (size_t)(b * T + t) * R;
            for (int hh = 0; hh < H + 2 * KVH; hh++)
                for (int i = 0; i < half; i++) {
                    double ang = (double)(pos0 + t) * pow(theta, -2.0 * i / D);
                    double x1 = x[hh * D + i], x2 = x[hh * D + i + half];
                    double y1 = x1, y2 = x2;
                    if (hh < H + KVH) {
                        y1 = x1 * cos(ang) - x2 * sin(ang);
                        y2 = x2 * cos(ang) + x1 * sin(ang);
                    }
                    /* fp32 angles (as HF computes them) lose ~pos*2^-24 rad */
                    double tol = 1e-5 + 1e-7 * (pos0 + t);
                    CHECK_CLOSE(y[hh * D + i], y1, 0, tol * (fabs(x1) + fabs(x2)));
                    CHECK_CLOSE(y[hh * D + i + half], y2, 0, tol * (fabs(x1) + fabs(x2)));
                    if (hh >= H + KVH) CHECK(y[hh * D + i] == x[hh * D + i] && y[hh * D + i + half] == x2);
                }
        }
    pool_reset();
}

/* Position 0 is the identity. */
static void test_rope_identity(void) {
    int H = 4, KVH = 2, D = 8;
    size_t n = (size_t)(H + 2 * KVH) * D;
    float *x = randn(n, 1), *y = fbuf(n);
    CHECK_OK(gv_rope_forward(be, y, x, 1, 1, H, KVH, D, 10000.0f, 0));
    for (size_t i = 0; i < n; i++) CHECK(y[i] == x[i]);
    pool_reset();
}

static void test_rope(void) {
    test_rope_case(1, 1, 1, 1, 2, 0, 10000.0f, 0);
    test_rope_case(2, 3, 2, 2, 4, 5, 10000.0f, 0);
    test_rope_case(2, 5, 4, 2, 6, 1, 10000.0f, 0);
    test_rope_case(1, 4, 4, 1, 8, 100, 500000.0f, 0);
    for (int r = 0; r < 2; r++) {
        int KVH = rint_(1, 2), H = KVH * rint_(1, 2);
        test_rope_case(rint_(1, 5), rint_(1, 5), H, KVH, 2 * rint_(1, 4), rint_(0, 50), 10000.0f, 0);
    }
    test_rope_case(2, 3, 2, 1, 4, 3, 10000.0f, 1);
    test_rope_identity();
}

/* ---- gelu / swiglu ------------------------------------------------------------------------------ */

typedef struct {
    int N, F;
    size_t n;
    float *inp;
} act_ctx;

static void gelu_fwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_gelu_forward(be, g->out, c->inp, c->n));
}
static void gelu_bwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_gelu_backward(be, g->grad[0], g->R, c->inp, c->n));
}
static void gelu_erf_fwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_gelu_erf_forward(be, g->out, c->inp, c->n));
}
static void gelu_erf_bwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_gelu_erf_backward(be, g->grad[0], g->R, c->inp, c->n));
}
/* Negative control: d/dx = Phi(x) only, dropping the x phi(x) term. */
static void gelu_erf_bwd_wrong(gcheck *g) {
    act_ctx *c = g->ctx;
    for (size_t i = 0; i < c->n; i++)
        g->grad[0][i] += g->R[i] * 0.5f * (1.0f + erff(c->inp[i] / sqrtf(2.0f)));
}
static void relu_fwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_relu_forward(be, g->out, c->inp, c->n));
}
static void relu_bwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_relu_backward(be, g->grad[0], g->R, c->inp, c->n));
}
static void swiglu_fwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_swiglu_forward(be, g->out, c->inp, c->N, c->F));
}
static void swiglu_bwd(gcheck *g) {
    act_ctx *c = g->ctx;
    CHECK_OK(gv_swiglu_backward(be, g->grad[0], g->R, c->inp, c->N, c->F));
}
/* Negative control: d gate = dout * up * sigmoid(g), dropping the g * sig * (1 - sig) term. */
static void swiglu_bwd_wrong(gcheck *g) {
    act_ctx *c = g->ctx;
    for (int n = 0; n < c->N; n++)
        for (int f = 0; f < c->F; f++) {
            float gt = c->inp[n * 2 * c->F + f], up = c->inp[n * 2 * c->F + c->F + f], d = g->R[n * c->F + f];
            float s = 1.0f / (1.0f + expf(-gt));
            g->grad[0][n * 2 * c->F + f] += d * up * s;
            g->grad[0][n * 2 * c->F + c->F + f] += d * gt * s;
        }
}

static void test_gelu_case(size_t n) {
    act_ctx c = {0, 0, n, randn(n, 2)};
    gcheck g = {.fwd = gelu_fwd, .bwd = gelu_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "gelu n=%zu", n);
    gc_add_in(&g, "inp", c.inp, n);
    gc_set_out(&g, fbuf(n), n);
    gc_expect_pass(&g);
    gelu_fwd(&g);
    for (size_t i = 0; i < n; i++) {
        double x = c.inp[i];
        double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        CHECK_CLOSE(g.out[i], want, 1e-5, 1e-6);
    }
    pool_reset();
}

static void test_gelu_erf_case(size_t n, int negative) {
    act_ctx c = {0, 0, n, randn(n, 2)};
    gcheck g = {.fwd = gelu_erf_fwd, .bwd = negative ? gelu_erf_bwd_wrong : gelu_erf_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "gelu_erf n=%zu%s", n, negative ? " (dropped term)" : "");
    gc_add_in(&g, "inp", c.inp, n);
    gc_set_out(&g, fbuf(n), n);
    if (negative) {
        gc_expect_reject(&g);
        pool_reset();
        return;
    }
    gc_expect_pass(&g);
    gelu_erf_fwd(&g);
    for (size_t i = 0; i < n; i++) {
        double x = c.inp[i];
        CHECK_CLOSE(g.out[i], 0.5 * x * (1 + erf(x / sqrt(2.0))), 1e-6, 1e-7);
    }
    pool_reset();
}

static void test_swiglu_case(int N, int F, int negative) {
    act_ctx c = {N, F, 0, randn((size_t)N * 2 * F, 1.5f)};
    gcheck g = {.fwd = swiglu_fwd, .bwd = negative ? swiglu_bwd_wrong : swiglu_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "swiglu N=%d F=%d%s", N, F, negative ? " (dropped term)" : "");
    gc_add_in(&g, "inp", c.inp, (size_t)N * 2 * F);
    gc_set_out(&g, fbuf((size_t)N * F), (size_t)N * F);
    if (negative) {
        gc_expect_reject(&g);
        pool_reset();
        return;
    }
    gc_expect_pass(&g);
    swiglu_fwd(&g);
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double gt = c.inp[n * 2 * F + f], up = c.inp[n * 2 * F + F + f];
            CHECK_CLOSE(g.out[n * F + f], gt / (1 + exp(-gt)) * up, 1e-5, 1e-6);
        }
    pool_reset();
}

static void test_activation(void) {
    test_gelu_case(1);
    test_gelu_case(7);
    test_gelu_case(33);
    float z = 0, gz = 1;
    CHECK_OK(gv_gelu_forward(be, &gz, &z, 1));
    CHECK(gz == 0.0f);
    {
        float x[5] = {-2.0f, -0.0f, 0.0f, 0.5f, 3.0f}, y[5], dy[5] = {1, 2, 3, 4, 5}, dx[5] = {1, 1, 1, 1, 1};
        CHECK_OK(gv_relu_forward(be, y, x, 5));
        CHECK_OK(gv_relu_backward(be, dx, dy, x, 5));
        float wy[5] = {0, 0, 0, 0.5f, 3.0f}, wdx[5] = {1, 1, 1, 5, 6}; /* backward accumulates; 0 at x <= 0 */
        for (int i = 0; i < 5; i++) CHECK(y[i] == wy[i] && dx[i] == wdx[i]);
        act_ctx rc = {0, 0, 40, randn(40, 2)};
        for (int i = 0; i < 40; i++)
            if (fabsf(rc.inp[i]) < 0.05f) rc.inp[i] = 0.3f; /* away from the kink for finite differences */
        gcheck g = {.fwd = relu_fwd, .bwd = relu_bwd, .ctx = &rc};
        snprintf(g.name, sizeof g.name, "relu n=40");
        gc_add_in(&g, "inp", rc.inp, 40);
        gc_set_out(&g, fbuf(40), 40);
        gc_expect_pass(&g);
        pool_reset();
    }
    test_gelu_erf_case(1, 0);
    test_gelu_erf_case(7, 0);
    test_gelu_erf_case(65, 0);
    test_gelu_erf_case(65, 1);
    gz = 1;
    CHECK_OK(gv_gelu_erf_forward(be, &gz, &z, 1));
    CHECK(gz == 0.0f);
    test_swiglu_case(1, 1, 0);
    test_swiglu_case(3, 5, 0);
    test_swiglu_case(5, 16, 0);
    test_swiglu_case(rint_(1, 5), rint_(1, 16), 0);
    test_swiglu_case(3, 4, 1);
}

/* ---- cross-entropy ------------------------------------------------------------------------------ */

typedef struct {
    int N, V, Vp, ignore;
    int32_t *tgt;
    float *logits;
} ce_ctx;

static void ce_fwd(gcheck *g) {
    ce_ctx *c = g->ctx;
    CHECK_OK(gv_crossentropy_forward(be, g->out, c->logits, c->tgt, c->N, c->V, c->Vp, c->ignore));
}
static void ce_bwd(gcheck *g) {
    ce_ctx *c = g->ctx;
    CHECK_OK(
        gv_crossentropy_backward(be, g->grad[0], c->logits, c->tgt, g->R[0], c->N, c->V, c->Vp, c->ignore));
}

static void test_ce_case(int N, int V, int Vp, int ignore, int nignored) {
    ce_ctx c = {N, V, Vp, ignore, ibuf(N), randn((size_t)N * Vp, 2)};
    for (int n = 0; n < N; n++) {
        c.tgt[n] = rint_(0, V - 1);
        for (int j = V; j < Vp; j++) c.logits[n * Vp + j] = 50.0f + j; /* padding: would dominate if read */
    }
    for (int k = 0; k < nignored; k++) c.tgt[rint_(0, N - 1)] = ignore;
    gcheck g = {.fwd = ce_fwd, .bwd = ce_bwd, .ctx = &c};
    snprintf(g.name, sizeof g.name, "crossentropy N=%d V=%d Vp=%d ignore_index=%d", N, V, Vp, ignore);
    gc_add_in(&g, "logits", c.logits, (size_t)N * Vp);
    gc_set_out(&g, fbuf(N), N);
    float dloss = 0.37f; /* the backward takes one scalar dloss for every row */
    for (int n = 0; n < N; n++) g.R[n] = dloss;
    gc_expect_pass(&g);
    ce_fwd(&g);
    for (int n = 0; n < N; n++) {
        if (c.tgt[n] == ignore) {
            CHECK(g.out[n] == 0.0f);
            continue;
        }
        double s = 0;
        for (int j = 0; j < V; j++) s += exp((double)c.logits[n * Vp + j]);
        CHECK_CLOSE(g.out[n], log(s) - c.logits[n * Vp + c.tgt[n]], 1e-5, 1e-5);
    }
    /* padding columns and ignored rows get exactly no gradient; real rows' gradients sum to 0 */
    memset(g.grad[0], 0, sizeof(float) * N * Vp);
    ce_bwd(&g);
    for (int n = 0; n < N; n++) {
        double rs = 0;
        for (int j = 0; j < Vp; j++) {
            float d = g.grad[0][n * Vp + j];
            if (j >= V || c.tgt[n] == ignore) CHECK(d == 0.0f);
            rs += d;
        }
        CHECK_CLOSE(rs, 0.0, 0, 1e-6);
    }
    pool_reset();
}

static void test_crossentropy(void) {
    test_ce_case(1, 2, 2, -100, 0);
    test_ce_case(4, 5, 8, -100, 1);
    test_ce_case(5, 16, 16, -100, 2);
    test_ce_case(6, 7, 9, 3, 1); /* ignore_index inside the vocabulary range */
    test_ce_case(rint_(2, 5), rint_(1, 16), 17, -1, 1);
    /* uniform logits: loss = log V */
    int N = 2, V = 11, Vp = 16;
    float *lg = fbuf((size_t)N * Vp), *loss = fbuf(N);
    int32_t *tg = ibuf(N);
    tg[0] = 3, tg[1] = 10;
    for (int i = 0; i < N * Vp; i++) lg[i] = (i % Vp) < V ? 0.25f : 1e30f;
    CHECK_OK(gv_crossentropy_forward(be, loss, lg, tg, N, V, Vp, -100));
    CHECK_CLOSE(loss[0], log(11.0), 1e-6, 0);
    CHECK_CLOSE(loss[1], log(11.0), 1e-6, 0);
    /* large logits stay finite (max subtraction) */
    for (int i = 0; i < V; i++) lg[i] = 1000.0f + i;
    CHECK_OK(gv_crossentropy_forward(be, loss, lg, tg, N, V, Vp, -100));
    CHECK(isfinite(loss[0]));
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)i - 10);
    CHECK_CLOSE(loss[0], 10 + log(s) - 3, 1e-5, 0);
    pool_reset();
}

/* ---- vector ops, AdamW, memory ------------------------------------------------------------------ */

static void test_adamw(void) {
    const int n = 5;
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
    float *master = randn(n, 1), *m = randn(n, 0.1f), *v = fbuf(n), *grad = randn(n, 1), *w = fbuf(n);
    for (int i = 0; i < n; i++) v[i] = 0.01f * (1 + i);
    for (int mode = 0; mode < 3; mode++) { /* weight: separate copy, NULL, == master */
        for (int t = 1; t <= 3; t += 2) {
            double wm[5], mm[5], vv[5];
            for (int i = 0; i < n; i++) {
                double g = (double)grad[i] * gs;
                double p = (double)master[i] * (1 - (double)lr * wd);
                mm[i] = b1 * (double)m[i] + (1 - (double)b1) * g;
                vv[i] = b2 * (double)v[i] + (1 - (double)b2) * g * g;
                double mhat = mm[i] / (1 - pow(b1, t)), vhat = vv[i] / (1 - pow(b2, t));
                wm[i] = p - lr * mhat / (sqrt(vhat) + eps);
            }
            float *wt = mode == 0 ? w : mode == 1 ? NULL : master;
            CHECK_OK(gv_adamw_update(be, master, wt, grad, m, v, n, lr, b1, b2, eps, wd, gs, t));
            for (int i = 0; i < n; i++) {
                CHECK_CLOSE(master[i], wm[i], 1e-6, 1e-7);
                CHECK_CLOSE(m[i], mm[i], 1e-6, 1e-8);
                CHECK_CLOSE(v[i], vv[i], 1e-6, 1e-10);
                if (mode == 0) CHECK(w[i] == master[i]);
            }
        }
    }
    /* first step from zero moments moves every parameter by about lr (sign of the gradient), plus decay */
    float p1 = 1.0f, m1 = 0, v1 = 0, g1 = -3.0f;
    CHECK_OK(gv_adamw_update(be, &p1, NULL, &g1, &m1, &v1, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1));
    CHECK_CLOSE(p1, 1.1, 1e-6, 0);
    CHECK(gv_adamw_update(be, &p1, NULL, &g1, &m1, &v1, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 0) ==
          GV_ERR_INVALID);
    pool_reset();
}

static void test_vector_ops(void) {
    size_t sizes[2] = {1001, 100003}; /* below and above the parallel threshold */
    for (int k = 0; k < 2; k++) {
        size_t n = sizes[k];
        float *x = randn(n, 1), *y = randn(n, 1), *o = fbuf(n), *x0 = fbuf(n);
        memcpy(x0, x, n * sizeof(float));
        double want = 0, got = -1;
        for (size_t i = 0; i < n; i++) want += (double)x[i] * x[i];
        CHECK_OK(gv_sumsq(be, &got, x, n));
        CHECK_CLOSE(got, want, 1e-12, 0);
        CHECK_OK(gv_add_forward(be, o, x, y, n));
        for (size_t i = 0; i < n; i++) CHECK(o[i] == x[i] + y[i]);
        CHECK_OK(gv_add_forward(be, x, x, y, n)); /* out aliases x */
        for (size_t i = 0; i < n; i++) CHECK(x[i] == o[i]);
        CHECK_OK(gv_accumulate(be, o, y, n));
        for (size_t i = 0; i < n; i++) CHECK(o[i] == x[i] + y[i]);
        memcpy(x, x0, n * sizeof(float));
        CHECK_OK(gv_scale(be, x, -0.3f, n));
        for (size_t i = 0; i < n; i++) CHECK(x[i] == x0[i] * -0.3f);
        pool_reset();
    }
    double z = 5;
    CHECK_OK(gv_sumsq(be, &z, NULL, 0));
    CHECK(z == 0.0);
}

static void test_memory(void) {
    CHECK(!strcmp(gv_backend_name(be), "cpu"));
    CHECK(gv_backend_device(be) == GV_DEV_CPU);
    CHECK(gv_backend_dtype(be) == GV_F32);
    CHECK(gv_backend_available("cpu"));
    size_t sizes[3] = {0, 3, 1000};
    for (int k = 0; k < 3; k++) {
        unsigned char *p = balloc(sizes[k]);
        CHECK(p != NULL && ((uintptr_t)p % 64) == 0);
        for (size_t i = 0; i < sizes[k]; i++) CHECK(p[i] == 0);
    }
    /* upload/download/memset0 */
    float h[6] = {1, 2, 3, 4, 5, 6}, r[6] = {0};
    float *d = fbuf(6);
    CHECK_OK(gv_backend_upload(be, d, h, sizeof h));
    CHECK_OK(gv_backend_download(be, r, d, sizeof r));
    CHECK(!memcmp(h, r, sizeof h));
    CHECK_OK(gv_backend_memset0(be, d, sizeof h));
    CHECK(d[0] == 0 && d[5] == 0);
    CHECK_OK(gv_backend_sync(be));
    /* f32 and bf16 through upload_f32 / download_f32 / convert */
    const size_t n = 64;
    float *src = randn(n, 3), *back = fbuf(n);
    src[0] = 1.5f, src[1] = -2.25f, src[2] = 0.0f, src[3] = 65536.0f; /* exactly representable in bf16 */
    float *df = fbuf(n);
    CHECK_OK(gv_backend_upload_f32(be, df, GV_F32, src, n));
    CHECK_OK(gv_backend_download_f32(be, back, df, GV_F32, n));
    CHECK(!memcmp(src, back, n * sizeof(float)));
    uint16_t *db = balloc(n * 2);
    CHECK_OK(gv_backend_upload_f32(be, db, GV_BF16, src, n));
    CHECK_OK(gv_backend_download_f32(be, back, db, GV_BF16, n));
    for (size_t i = 0; i < n; i++) {
        CHECK(db[i] == gv_f32_to_bf16(src[i]));
        CHECK_CLOSE(back[i], src[i], 1.0 / 256, 0); /* 8 significant bits */
        if (i < 4) CHECK(back[i] == src[i]);
    }
    /* device-side convert: f32 -> bf16 -> f32 equals the host round trip; a bf16 value survives exactly */
    uint16_t *db2 = balloc(n * 2);
    float *df2 = fbuf(n);
    CHECK_OK(gv_backend_convert(be, db2, GV_BF16, df, GV_F32, n));
    CHECK(!memcmp(db, db2, n * 2));
    CHECK_OK(gv_backend_convert(be, df2, GV_F32, db2, GV_BF16, n));
    CHECK(!memcmp(df2, back, n * sizeof(float)));
    CHECK_OK(gv_backend_convert(be, df2, GV_F32, df, GV_F32, n));
    CHECK(!memcmp(df2, src, n * sizeof(float)));
    CHECK(gv_backend_upload_f32(be, df, GV_I32, src, n) == GV_ERR_UNSUPPORTED);
    CHECK(gv_backend_convert(be, df, GV_I32, db, GV_BF16, n) == GV_ERR_UNSUPPORTED);
    /* copy2d: columns [3, 7) of an [8, 10] matrix into columns [1, 5) of an [8, 6] one; the rest untouched */
    float *m10 = randn(80, 5), *m6 = fbuf(48);
    for (int i = 0; i < 48; i++) m6[i] = -1.0f;
    CHECK_OK(gv_backend_copy2d(be, m6 + 1, 6 * 4, m10 + 3, 10 * 4, 4 * 4, 8));
    int bad2d = 0;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 6; c++) bad2d += m6[r * 6 + c] != (c >= 1 && c < 5 ? m10[r * 10 + 2 + c] : -1.0f);
    CHECK(bad2d == 0);
    CHECK(gv_backend_copy2d(be, m6, 4 * 4, m10, 10 * 4, 5 * 4, 8) == GV_ERR_INVALID); /* width > dst pitch */
    pool_reset();
}

/* Bad arguments come back as GV_ERR_INVALID with a message, never a crash. */
static void test_errors(void) {
    float *x = fbuf(1024), *y = fbuf(1024), *st = fbuf(1024);
    int32_t *tok = ibuf(8);
    CHECK(gv_attention_forward(be, y, st, x, NULL, 1, 2, 3, 2, 4, 1) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), "divisible") != NULL);
    CHECK(gv_attention_backward(be, y, x, x, y, st, NULL, 1, 2, 4, 0, 4, 1) == GV_ERR_INVALID);
    CHECK(gv_rope_forward(be, y, x, 1, 2, 2, 1, 3, 10000.0f, 0) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), "even") != NULL);
    CHECK(gv_rope_backward(be, y, x, 1, 2, 2, 1, 4, -1.0f, 0) == GV_ERR_INVALID);
    CHECK(gv_matmul_forward(be, y, x, x, NULL, -1, 2, 2) == GV_ERR_INVALID);
    CHECK(gv_matmul_backward(be, y, y, NULL, x, x, x, 2, -2, 2) == GV_ERR_INVALID);
    CHECK(gv_layernorm_forward(be, y, NULL, NULL, x, x, NULL, 2, 0, 1e-5f) == GV_ERR_INVALID);
    CHECK(gv_rmsnorm_forward(be, y, NULL, x, x, -2, 4, 1e-5f) == GV_ERR_INVALID);
    CHECK(gv_swiglu_forward(be, y, x, 2, -1) == GV_ERR_INVALID);
    CHECK(gv_embedding_forward(be, y, tok, x, NULL, -1, 2, 4, 0) == GV_ERR_INVALID);
    tok[0] = 7, tok[1] = 0;
    CHECK(gv_crossentropy_forward(be, y, x, tok, 2, 5, 8, -100) == GV_ERR_INVALID); /* target 7 >= V */
    CHECK(strstr(gv_last_error(), "target 7") != NULL);
    CHECK(gv_crossentropy_backward(be, y, x, tok, 1.0f, 2, 8, 5, -100) == GV_ERR_INVALID); /* Vp < V */
    tok[0] = -100;
    CHECK_OK(gv_crossentropy_forward(be, y, x, tok, 2, 5, 8, -100));
    pool_reset();
}

/* The parallel paths (sizes above the threshold) agree bit for bit with one thread. */
static void test_threads(void) {
    int B = 2, T = 64, H = 4, KVH = 2, D = 16, R = (H + 2 * KVH) * D, C = 128, N = B * T, V = 50;
    float *qkv = randn((size_t)N * R, 1), *dout = randn((size_t)N * H * D, 1), *dC = randn((size_t)N * C, 1);
    float *x = randn((size_t)N * C, 1), *w = randn(C, 1);
    int32_t *mask = ibuf(N), *tok = ibuf(N);
    for (int i = 0; i < N; i++) mask[i] = (i % T) >= 3, tok[i] = rint_(0, V - 1);
    float *res[2][6];
    int threads = omp_get_max_threads();
    for (int run = 0; run < 2; run++) {
        omp_set_num_threads(run == 0 ? 1 : 2);
        float *out = fbuf((size_t)N * H * D), *st = balloc(gv_attention_stash_bytes(be, B, T, H));
        float *dqkv = fbuf((size_t)N * R), *y = fbuf((size_t)N * C), *mean = fbuf(N), *rstd = fbuf(N);
        float *dx = fbuf((size_t)N * C), *dw = fbuf(C), *db = fbuf(C), *dwte = fbuf((size_t)V * C);
        CHECK_OK(gv_attention_forward(be, out, st, qkv, mask, B, T, H, KVH, D, 1));
        CHECK_OK(gv_attention_backward(be, dqkv, dout, qkv, out, st, mask, B, T, H, KVH, D, 1));
        CHECK_OK(gv_layernorm_forward(be, y, mean, rstd, x, w, NULL, N, C, 1e-5f));
        CHECK_OK(gv_layernorm_backward(be, dx, dw, db, dC, x, w, mean, rstd, N, C));
        CHECK_OK(gv_embedding_backward(be, dwte, NULL, dC, tok, B, T, C, 0));
        res[run][0] = out, res[run][1] = dqkv, res[run][2] = dx, res[run][3] = dw, res[run][4] = db;
        res[run][5] = dwte;
    }
    size_t sz[6] = {(size_t)N * H * D, (size_t)N * R, (size_t)N * C, C, C, (size_t)V * C};
    for (int k = 0; k < 6; k++) CHECK(!memcmp(res[0][k], res[1][k], sz[k] * sizeof(float)));
    omp_set_num_threads(threads);
    pool_reset();
}

int main(void) {
    if (gv_backend_init(&be, "cpu", 0) != GV_OK) {
        fprintf(stderr, "cpu backend: %s\n", gv_last_error());
        return 1;
    }
    test_memory();
    test_vector_ops();
    test_adamw();
    test_errors();
    test_embedding();
    test_norm();
    test_matmul();
    test_matmul_gelu();
    test_attention();
    test_attention_ext();
    test_rope();
    test_activation();
    test_crossentropy();
    test_threads();
    gv_backend_free(be);
    return gv_test_result("test_ops_grad");
}
