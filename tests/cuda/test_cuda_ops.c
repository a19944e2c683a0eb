/* CUDA backend ops against the fp32 CPU reference backend. Exits 77 (skipped) without a GPU.
 *
 * Every case draws fresh random inputs, rounds them to bf16 on the host so both backends see the same values,
 * runs the op on the CPU backend (fp32) and on the CUDA backend (bf16 data, fp32 math) and compares every
 * output and every gradient. A comparison passes when the norm-wise relative error ||a-b|| / ||b|| is within
 * tol and every element satisfies |a-b| <= 8*tol*(|b| + rms(b)) (the rms is the absolute floor). bf16 paths
 * use tol ~1e-2, fp32 paths (AdamW state, sum of squares, statistics) ~1e-5. Gradients start at zero; the
 * CUDA backward is then run a second time and must give twice the result (backward ops accumulate).
 * Backward ops whose output may be a deferred memset0 (see src/backend/cuda/cuda.cu) are also run over
 * garbage that was just memset0'd: they then write instead of accumulating and must match the reference.
 * Shapes: small odd ones (ragged tiles, scalar code paths) and realistic ones (B=4, T=256, C=768, H=12, D=64;
 * GQA H=8, KVH=2, D=128).
 *
 * GV_CUDA_BENCH=1 also times attention (flash vs the naive fallback), the matmul and the cross-entropy at
 * training sizes and prints the results; GV_CUDA_BENCH=attn times only attention, own kernels vs cuDNN.
 * Attention runs through the own kernels (GV_CUDA_ATTN=own) and then through cuDNN (t_attention_dnn). */
#include "gv/backend.h"
#include "gv/rng.h"
#include "test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cuda-attention-cudnn.cu diagnostics: executions of the cuDNN attention plans (0 forward, 1 backward) and
 * the cuDNN version (0: built without cuDNN). */
long gv_cuda_cudnn_runs(gv_backend *b, int backward);
long gv_cuda_cudnn_version(void);

static gv_backend *cpu, *gpu;
static uint64_t rng_ctr;

static float runif(void) {
    return 2.0f * gv_rng_uniform(777u, 1, rng_ctr++) - 1.0f;
} /* [-1, 1) */
static float bfr(float x) {
    return gv_bf16_to_f32(gv_f32_to_bf16(x));
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of host memory\n");
        exit(2);
    }
    return p;
}

/* host array of n bf16-representable values, uniform in [-scale, scale) */
static float *hrand(size_t n, float scale) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = bfr(scale * runif());
    return p;
}

/* ---- buffers on both backends ---------------------------------------------------------------------------
 */

typedef struct {
    void *c, *g; /* cpu (f32 / i32) and cuda (gdt / i32) pointers */
    size_t n;
    gv_dtype gdt; /* dtype of the cuda buffer: GV_BF16, GV_F32 or GV_I32 */
} pair;

static void *alloc_on(gv_backend *b, size_t bytes) {
    void *p = NULL;
    if (gv_backend_alloc(b, &p, bytes) != GV_OK) {
        fprintf(stderr, "alloc failed: %s\n", gv_last_error());
        exit(2);
    }
    return p;
}

/* Both copies hold `host` (or zeros when host is NULL). */
static pair mk(const float *host, size_t n, gv_dtype gdt) {
    pair p = {alloc_on(cpu, n * 4 + 64), alloc_on(gpu, n * gv_dtype_size(gdt) + 64), n, gdt};
    if (host) {
        CHECK_OK(gv_backend_upload_f32(cpu, p.c, GV_F32, host, n));
        CHECK_OK(gv_backend_upload_f32(gpu, p.g, gdt, host, n));
    }
    return p;
}
static pair mk_i32(const int32_t *host, size_t n) {
    pair p = {alloc_on(cpu, n * 4 + 64), alloc_on(gpu, n * 4 + 64), n, GV_I32};
    CHECK_OK(gv_backend_upload(cpu, p.c, host, n * 4));
    CHECK_OK(gv_backend_upload(gpu, p.g, host, n * 4));
    return p;
}
static void pfree(pair p) {
    gv_backend_dealloc(cpu, p.c);
    gv_backend_dealloc(gpu, p.g);
}
static float *get_c(pair p) {
    float *h = xmalloc(p.n * sizeof(float));
    CHECK_OK(gv_backend_download_f32(cpu, h, p.c, GV_F32, p.n));
    return h;
}
static float *get_g(pair p) {
    float *h = xmalloc(p.n * sizeof(float));
    CHECK_OK(gv_backend_download_f32(gpu, h, p.g, p.gdt, p.n));
    return h;
}

/* ---- comparison -----------------------------------------------------------------------------------------
 */

static int ncmp, nfail;

static int cmp(const char *what, const float *a, const float *b, size_t n, double tol) {
    double d2 = 0.0, b2 = 0.0;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) && !(isinf(a[i]) && a[i] == b[i])) nan = 1;
        if (isinf(b[i]) && a[i] == b[i]) continue;
        double d = (double)a[i] - b[i];
        d2 += d * d;
        b2 += (double)b[i] * b[i];
    }
    double rms = n ? sqrt(b2 / n) : 0.0;
    double rel = b2 > 0.0 ? sqrt(d2 / b2) : sqrt(d2);
    size_t bad = 0, worst = 0;
    double worst_r = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isinf(b[i]) && a[i] == b[i]) continue;
        double e = fabs((double)a[i] - b[i]), lim = 8.0 * tol * (fabs(b[i]) + rms) + 1e-30;
        if (!(e <= lim)) bad++;
        if (e / lim > worst_r || e != e) worst_r = e / lim, worst = i;
    }
    int ok = !nan && rel <= tol && bad == 0;
    ncmp++;
    if (!ok) nfail++;
    printf("  %-44s n=%-9zu relerr=%.2e (tol %.0e) worst=%.2f%s\n", what, n, rel, tol, worst_r,
           ok ? "" : "  FAIL");
    if (!ok)
        fprintf(stderr, "    FAIL %s: %zu bad elements, e.g. [%zu] cuda=%.7g cpu=%.7g%s\n", what, bad, worst,
                (double)a[worst], (double)b[worst], nan ? " (non-finite values)" : "");
    CHECK(ok);
    return ok;
}

/* cuda copy vs cpu copy */
static int cmpp(const char *what, pair p, double tol) {
    float *a = get_g(p), *b = get_c(p);
    int ok = cmp(what, a, b, p.n, tol);
    free(a);
    free(b);
    return ok;
}

/* After a second identical backward call, the cuda buffer must hold twice the snapshot `first`. */
static int check_twice(const char *what, pair p, const float *first, double tol) {
    float *a = get_g(p), *b = xmalloc(p.n * sizeof(float));
    for (size_t i = 0; i < p.n; i++) b[i] = 2.0f * first[i];
    char name[128];
    snprintf(name, sizeof name, "%s accumulates (2x)", what);
    int ok = cmp(name, a, b, p.n, tol);
    free(a);
    free(b);
    return ok;
}

#define TOL_BF 1e-2
#define TOL_F32 1e-5

/* Fill the cuda copy of p (from element off, n elements) with garbage, then memset0 exactly that region:
 * the backend defers the memset, and the next backward op into the region may write instead of
 * accumulate (see cuda.cu). extra > 0 zeroes `extra` more elements so the region does NOT match the op's
 * output (the memset must then be issued before the op accumulates). */
static void garbage_then_zero(pair p, size_t off, size_t n, size_t extra) {
    float *h = hrand(p.n, 5.0f);
    CHECK_OK(gv_backend_upload_f32(gpu, p.g, p.gdt, h, p.n));
    size_t es = gv_dtype_size(p.gdt);
    CHECK_OK(gv_backend_memset0(gpu, (char *)p.g + off * es, (n + extra) * es));
    free(h);
}

/* ---- ops ------------------------------------------------------------------------------------------------
 */

/* neg: some tokens negative (outside this rank's vocab shard: zero row, no gradient) */
static void t_embedding(int B, int T, int C, int V, int use_wpe, int pos0, int neg) {
    printf("embedding B=%d T=%d C=%d V=%d wpe=%d pos0=%d negative tokens=%d\n", B, T, C, V, use_wpe, pos0,
           neg);
    size_t N = (size_t)B * T;
    int32_t *tok = xmalloc(N * 4);
    for (size_t i = 0; i < N; i++)
        tok[i] = (int)((runif() * 0.5f + 0.5f) * (V < 8 ? V : V / 4)) % V; /* repeats */
    tok[0] = V - 1;
    if (neg)
        for (size_t i = 1; i < N; i += 3) tok[i] = -1 - (int)(i % 5);
    float *hwte = hrand((size_t)V * C, 1.0f), *hwpe = hrand((size_t)(pos0 + T) * C, 1.0f),
          *hd = hrand(N * C, 1.0f);
    pair tk = mk_i32(tok, N), wte = mk(hwte, (size_t)V * C, GV_BF16),
         wpe = mk(hwpe, (size_t)(pos0 + T) * C, GV_BF16);
    pair out = mk(NULL, N * C, GV_BF16), dout = mk(hd, N * C, GV_BF16);
    pair dwte = mk(NULL, (size_t)V * C, GV_BF16), dwpe = mk(NULL, (size_t)(pos0 + T) * C, GV_BF16);
    CHECK_OK(gv_embedding_forward(cpu, out.c, tk.c, wte.c, use_wpe ? wpe.c : NULL, B, T, C, pos0));
    CHECK_OK(gv_embedding_forward(gpu, out.g, tk.g, wte.g, use_wpe ? wpe.g : NULL, B, T, C, pos0));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_embedding_backward(cpu, dwte.c, use_wpe ? dwpe.c : NULL, dout.c, tk.c, B, T, C, pos0));
    CHECK_OK(gv_embedding_backward(gpu, dwte.g, use_wpe ? dwpe.g : NULL, dout.g, tk.g, B, T, C, pos0));
    cmpp("dwte", dwte, TOL_BF);
    if (use_wpe) cmpp("dwpe", dwpe, TOL_BF);
    float *f1 = get_g(dwte), *f2 = get_g(dwpe);
    CHECK_OK(gv_embedding_backward(gpu, dwte.g, use_wpe ? dwpe.g : NULL, dout.g, tk.g, B, T, C, pos0));
    check_twice("dwte", dwte, f1, TOL_BF);
    if (use_wpe) check_twice("dwpe", dwpe, f2, TOL_BF);
    free(f1), free(f2), free(tok), free(hwte), free(hwpe), free(hd);
    pfree(tk), pfree(wte), pfree(wpe), pfree(out), pfree(dout), pfree(dwte), pfree(dwpe);
}

static void t_norm(int rms, int N, int C, int use_w, int use_b) {
    printf("%s N=%d C=%d w=%d bias=%d\n", rms ? "rmsnorm" : "layernorm", N, C, use_w, use_b);
    size_t n = (size_t)N * C;
    float *hx = hrand(n, 2.0f), *hw = hrand(C, 1.0f), *hb = hrand(C, 1.0f), *hd = hrand(n, 1.0f);
    for (size_t i = 0; i < n; i++) hx[i] = bfr(hx[i] + 0.5f); /* nonzero mean */
    pair x = mk(hx, n, GV_BF16), w = mk(hw, C, GV_BF16), bias = mk(hb, C, GV_BF16),
         out = mk(NULL, n, GV_BF16);
    pair mean = mk(NULL, N, GV_F32), rstd = mk(NULL, N, GV_F32), dout = mk(hd, n, GV_BF16);
    pair dx = mk(NULL, n, GV_BF16), dw = mk(NULL, C, GV_BF16), db = mk(NULL, C, GV_BF16);
    void *wc = use_w ? w.c : NULL, *wg = use_w ? w.g : NULL;
    if (rms) {
        CHECK_OK(gv_rmsnorm_forward(cpu, out.c, rstd.c, x.c, wc, N, C, 1e-5f));
        CHECK_OK(gv_rmsnorm_forward(gpu, out.g, rstd.g, x.g, wg, N, C, 1e-5f));
    } else {
        CHECK_OK(
            gv_layernorm_forward(cpu, out.c, mean.c, rstd.c, x.c, wc, use_b ? bias.c : NULL, N, C, 1e-5f));
        CHECK_OK(
            gv_layernorm_forward(gpu, out.g, mean.g, rstd.g, x.g, wg, use_b ? bias.g : NULL, N, C, 1e-5f));
        cmpp("mean", mean, 1e-4);
    }
    cmpp("out", out, TOL_BF);
    cmpp("rstd", rstd, 1e-4);
    /* backward from the cpu statistics on both sides */
    float *hm = get_c(mean), *hr = get_c(rstd);
    CHECK_OK(gv_backend_upload_f32(gpu, mean.g, GV_F32, hm, N));
    CHECK_OK(gv_backend_upload_f32(gpu, rstd.g, GV_F32, hr, N));
    for (int rep = 0; rep < 2; rep++) {
        gv_backend *be = rep ? gpu : cpu;
        void *dxp = rep ? dx.g : dx.c, *dwp = rep ? dw.g : dw.c, *dbp = rep ? db.g : db.c;
        void *doutp = rep ? dout.g : dout.c, *xp = rep ? x.g : x.c, *wp = use_w ? (rep ? w.g : w.c) : NULL;
        float *mp = rep ? mean.g : mean.c, *rp = rep ? rstd.g : rstd.c;
        if (rms)
            CHECK_OK(gv_rmsnorm_backward(be, dxp, dwp, doutp, xp, wp, rp, N, C));
        else
            CHECK_OK(gv_layernorm_backward(be, dxp, dwp, use_b ? dbp : NULL, doutp, xp, wp, mp, rp, N, C));
    }
    cmpp("dinp", dx, TOL_BF);
    if (use_w) cmpp("dw", dw, TOL_BF);
    if (!rms && use_b) cmpp("dbias", db, TOL_BF);
    float *f1 = get_g(dx), *f2 = get_g(dw), *f3 = get_g(db);
    if (rms)
        CHECK_OK(gv_rmsnorm_backward(gpu, dx.g, dw.g, dout.g, x.g, wg, rstd.g, N, C));
    else
        CHECK_OK(gv_layernorm_backward(gpu, dx.g, dw.g, use_b ? db.g : NULL, dout.g, x.g, wg, mean.g, rstd.g,
                                       N, C));
    check_twice("dinp", dx, f1, TOL_BF);
    if (use_w) check_twice("dw", dw, f2, TOL_BF);
    if (!rms && use_b) check_twice("dbias", db, f3, TOL_BF);
    garbage_then_zero(dx, 0, n, 0);
    if (rms)
        CHECK_OK(gv_rmsnorm_backward(gpu, dx.g, NULL, dout.g, x.g, wg, rstd.g, N, C));
    else
        CHECK_OK(gv_layernorm_backward(gpu, dx.g, NULL, NULL, dout.g, x.g, wg, mean.g, rstd.g, N, C));
    cmpp("dinp over a deferred zero", dx, TOL_BF);
    if (use_w ||
        (!rms && use_b)) { /* weight gradients only (no dinp): the kernels skip the row's dinp pass */
        pair dw2 = mk(NULL, C, GV_BF16), db2 = mk(NULL, C, GV_BF16);
        for (int rep = 0; rep < 2; rep++) {
            gv_backend *be = rep ? gpu : cpu;
            void *dwp = use_w ? (rep ? dw2.g : dw2.c) : NULL, *dbp = rep ? db2.g : db2.c;
            void *doutp = rep ? dout.g : dout.c, *xp = rep ? x.g : x.c,
                 *wp = use_w ? (rep ? w.g : w.c) : NULL;
            if (rms)
                CHECK_OK(gv_rmsnorm_backward(be, NULL, dwp, doutp, xp, wp, rep ? rstd.g : rstd.c, N, C));
            else
                CHECK_OK(gv_layernorm_backward(be, NULL, dwp, use_b ? dbp : NULL, doutp, xp, wp,
                                               rep ? mean.g : mean.c, rep ? rstd.g : rstd.c, N, C));
        }
        if (use_w) cmpp("dw (no dinp)", dw2, TOL_BF);
        if (!rms && use_b) cmpp("dbias (no dinp)", db2, TOL_BF);
        pfree(dw2), pfree(db2);
    }
    free(f1), free(f2), free(f3), free(hm), free(hr), free(hx), free(hw), free(hb), free(hd);
    pfree(x), pfree(w), pfree(bias), pfree(out), pfree(mean), pfree(rstd), pfree(dout), pfree(dx), pfree(dw),
        pfree(db);
}

/* LayerNorm backward with the column sums of dinp added to a bias gradient (the CPU runs its fallback: the
 * norm, then the bias reduction of the matmul op). dinp accumulates onto random values, or is a pending
 * zero; dsum accumulates onto random values. */
static void t_norm_sum(int N, int C) {
    printf("layernorm_backward_sum N=%d C=%d\n", N, C);
    size_t n = (size_t)N * C;
    float *hx = hrand(n, 2.0f), *hw = hrand(C, 1.0f), *hb = hrand(C, 1.0f), *hd = hrand(n, 1.0f);
    float *hg = hrand(n, 1.0f), *hs = hrand(C, 1.0f);
    for (size_t i = 0; i < n; i++) hx[i] = bfr(hx[i] + 0.5f);
    pair x = mk(hx, n, GV_BF16), w = mk(hw, C, GV_BF16), bias = mk(hb, C, GV_BF16),
         out = mk(NULL, n, GV_BF16);
    pair mean = mk(NULL, N, GV_F32), rstd = mk(NULL, N, GV_F32), dout = mk(hd, n, GV_BF16);
    pair dx = mk(hg, n, GV_BF16), dw = mk(NULL, C, GV_BF16), db = mk(NULL, C, GV_BF16),
         ds = mk(hs, C, GV_BF16);
    CHECK_OK(gv_layernorm_forward(cpu, out.c, mean.c, rstd.c, x.c, w.c, bias.c, N, C, 1e-5f));
    float *hm = get_c(mean), *hr = get_c(rstd);
    CHECK_OK(gv_backend_upload_f32(gpu, mean.g, GV_F32, hm, N));
    CHECK_OK(gv_backend_upload_f32(gpu, rstd.g, GV_F32, hr, N));
    CHECK_OK(gv_layernorm_backward_sum(cpu, dx.c, dw.c, db.c, ds.c, dout.c, x.c, w.c, mean.c, rstd.c, N, C));
    CHECK_OK(gv_layernorm_backward_sum(gpu, dx.g, dw.g, db.g, ds.g, dout.g, x.g, w.g, mean.g, rstd.g, N, C));
    cmpp("dinp (accumulated)", dx, TOL_BF);
    cmpp("dw", dw, TOL_BF);
    cmpp("dbias", db, TOL_BF);
    cmpp("dsum (column sums of dinp, accumulated)", ds, TOL_BF);
    /* over a pending zero: dinp written, dsum = its column sums on top of the previous dsum */
    float *zero = xmalloc(n * sizeof(float));
    memset(zero, 0, n * sizeof(float));
    CHECK_OK(gv_backend_upload_f32(cpu, dx.c, GV_F32, zero, n));
    free(zero);
    garbage_then_zero(dx, 0, n, 0);
    CHECK_OK(gv_layernorm_backward_sum(cpu, dx.c, NULL, NULL, ds.c, dout.c, x.c, w.c, mean.c, rstd.c, N, C));
    CHECK_OK(gv_layernorm_backward_sum(gpu, dx.g, NULL, NULL, ds.g, dout.g, x.g, w.g, mean.g, rstd.g, N, C));
    cmpp("dinp over a deferred zero", dx, TOL_BF);
    cmpp("dsum over a deferred zero", ds, TOL_BF);
    free(hm), free(hr), free(hx), free(hw), free(hb), free(hd), free(hg), free(hs);
    pfree(x), pfree(w), pfree(bias), pfree(out), pfree(mean), pfree(rstd), pfree(dout), pfree(dx), pfree(dw),
        pfree(db), pfree(ds);
}

/* The fused residual add + norm against the CPU's add, then norm (its unfused fallback). */
static void t_add_norm(int rms, int N, int C) {
    printf("add_%s N=%d C=%d\n", rms ? "rmsnorm" : "layernorm", N, C);
    size_t n = (size_t)N * C;
    float *hx = hrand(n, 2.0f), *hy = hrand(n, 1.0f), *hw = hrand(C, 1.0f), *hb = hrand(C, 1.0f);
    for (size_t i = 0; i < n; i++) hx[i] = bfr(hx[i] + 0.5f); /* nonzero mean */
    pair x = mk(hx, n, GV_BF16), y = mk(hy, n, GV_BF16), w = mk(hw, C, GV_BF16), bias = mk(hb, C, GV_BF16);
    pair sum = mk(NULL, n, GV_BF16), out = mk(NULL, n, GV_BF16), mean = mk(NULL, N, GV_F32),
         rstd = mk(NULL, N, GV_F32);
    CHECK_OK(gv_add_norm_forward(cpu, sum.c, out.c, mean.c, rstd.c, x.c, y.c, w.c, rms ? NULL : bias.c, N, C,
                                 1e-5f, rms));
    CHECK_OK(gv_add_norm_forward(gpu, sum.g, out.g, mean.g, rstd.g, x.g, y.g, w.g, rms ? NULL : bias.g, N, C,
                                 1e-5f, rms));
    cmpp("sum", sum, TOL_BF);
    cmpp("out", out, TOL_BF);
    /* the statistics of the bf16-rounded sum (cuda) vs the fp32 sum (cpu) */
    cmpp("rstd", rstd, TOL_BF);
    if (!rms) cmpp("mean", mean, TOL_BF);
    pair ps[] = {x, y, w, bias, sum, out, mean, rstd};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) pfree(ps[i]);
    free(hx), free(hy), free(hw), free(hb);
}

static void t_matmul(int N, int C, int OC, int use_bias) {
    printf("matmul N=%d C=%d OC=%d bias=%d\n", N, C, OC, use_bias);
    float *hx = hrand((size_t)N * C, 1.0f), *hw = hrand((size_t)OC * C, 1.0f / sqrtf((float)C + 1));
    float *hb = hrand(OC, 1.0f), *hd = hrand((size_t)N * OC, 1.0f);
    pair x = mk(hx, (size_t)N * C, GV_BF16), w = mk(hw, (size_t)OC * C, GV_BF16), bias = mk(hb, OC, GV_BF16);
    pair out = mk(NULL, (size_t)N * OC, GV_BF16), dout = mk(hd, (size_t)N * OC, GV_BF16);
    pair dx = mk(NULL, (size_t)N * C, GV_BF16), dw = mk(NULL, (size_t)OC * C, GV_BF16),
         db = mk(NULL, OC, GV_BF16);
    CHECK_OK(gv_matmul_forward(cpu, out.c, x.c, w.c, use_bias ? bias.c : NULL, N, C, OC));
    CHECK_OK(gv_matmul_forward(gpu, out.g, x.g, w.g, use_bias ? bias.g : NULL, N, C, OC));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_matmul_backward(cpu, dx.c, dw.c, use_bias ? db.c : NULL, dout.c, x.c, w.c, N, C, OC));
    CHECK_OK(gv_matmul_backward(gpu, dx.g, dw.g, use_bias ? db.g : NULL, dout.g, x.g, w.g, N, C, OC));
    cmpp("dinp", dx, TOL_BF);
    cmpp("dw", dw, TOL_BF);
    if (use_bias) cmpp("dbias", db, TOL_BF);
    float *f1 = get_g(dx), *f2 = get_g(dw), *f3 = get_g(db);
    CHECK_OK(gv_matmul_backward(gpu, dx.g, dw.g, use_bias ? db.g : NULL, dout.g, x.g, w.g, N, C, OC));
    check_twice("dinp", dx, f1, TOL_BF);
    check_twice("dw", dw, f2, TOL_BF);
    if (use_bias) check_twice("dbias", db, f3, TOL_BF);
    for (int extra = 0; extra < 2; extra++) { /* written over the deferred zero; accumulated onto zeros */
        garbage_then_zero(dx, 0, (size_t)N * C, (size_t)extra * 5);
        CHECK_OK(gv_matmul_backward(gpu, dx.g, NULL, NULL, dout.g, x.g, w.g, N, C, OC));
        cmpp(extra ? "dinp onto a wider memset0" : "dinp over a deferred zero", dx, TOL_BF);
    }
    free(f1), free(f2), free(f3), free(hx), free(hw), free(hb), free(hd);
    pfree(x), pfree(w), pfree(bias), pfree(out), pfree(dout), pfree(dx), pfree(dw), pfree(db);
}

/* out = x @ w^T (+ bias) + resid in one product (the residual in cuBLASLt's C), against the cpu's matmul then
 * add; resid is left as it was. */
static void t_matmul_add(int N, int C, int OC, int use_bias) {
    printf("matmul_forward_add N=%d C=%d OC=%d bias=%d\n", N, C, OC, use_bias);
    float *hx = hrand((size_t)N * C, 1.0f), *hw = hrand((size_t)OC * C, 1.0f / sqrtf((float)C + 1));
    float *hb = hrand(OC, 1.0f), *hr = hrand((size_t)N * OC, 2.0f);
    pair x = mk(hx, (size_t)N * C, GV_BF16), w = mk(hw, (size_t)OC * C, GV_BF16), bias = mk(hb, OC, GV_BF16);
    pair r = mk(hr, (size_t)N * OC, GV_BF16), out = mk(NULL, (size_t)N * OC, GV_BF16);
    CHECK_OK(gv_matmul_forward_add(cpu, out.c, x.c, w.c, use_bias ? bias.c : NULL, r.c, N, C, OC));
    CHECK_OK(gv_matmul_forward_add(gpu, out.g, x.g, w.g, use_bias ? bias.g : NULL, r.g, N, C, OC));
    cmpp("out", out, TOL_BF);
    float *rg = get_g(r), *rc = get_c(r);
    cmp("resid unchanged", rg, rc, (size_t)N * OC, 0.0);
    free(rg), free(rc), free(hx), free(hw), free(hb), free(hr);
    pfree(x), pfree(w), pfree(bias), pfree(r), pfree(out);
}

/* The MLP pair: pre = x @ w1^T + b1, act = gelu(pre) (matmul_gelu_forward); backward of the second layer
 * through the GELU (matmul_backward_gelu) into dpre / db1 (its bias reduction) and dw2 / db2. dpre is
 * zeroed with memset0 first (the fused epilogue), then accumulated again (the unfused route). */
static void t_matmul_gelu(int N, int C, int F, int OC) {
    printf("matmul+gelu N=%d C=%d F=%d OC=%d\n", N, C, F, OC);
    float *hx = hrand((size_t)N * C, 1.0f), *hw1 = hrand((size_t)F * C, 2.0f / sqrtf((float)C + 1));
    float *hb1 = hrand(F, 1.0f), *hw2 = hrand((size_t)OC * F, 1.0f / sqrtf((float)F + 1));
    float *hd = hrand((size_t)N * OC, 1.0f);
    pair x = mk(hx, (size_t)N * C, GV_BF16), w1 = mk(hw1, (size_t)F * C, GV_BF16), b1 = mk(hb1, F, GV_BF16);
    pair w2 = mk(hw2, (size_t)OC * F, GV_BF16), dout = mk(hd, (size_t)N * OC, GV_BF16);
    pair pre = mk(NULL, (size_t)N * F, GV_BF16), act = mk(NULL, (size_t)N * F, GV_BF16);
    pair dpre = mk(NULL, (size_t)N * F, GV_BF16), db1 = mk(NULL, F, GV_BF16);
    pair dw2 = mk(NULL, (size_t)OC * F, GV_BF16), db2 = mk(NULL, OC, GV_BF16);
    CHECK_OK(gv_matmul_gelu_forward(cpu, act.c, pre.c, x.c, w1.c, b1.c, N, C, F));
    CHECK_OK(gv_matmul_gelu_forward(gpu, act.g, pre.g, x.g, w1.g, b1.g, N, C, F));
    cmpp("pre", pre, TOL_BF);
    cmpp("act", act, TOL_BF);
    /* backward from the same (cpu, bf16-rounded) pre and act on both sides */
    float *hp = get_c(pre), *ha = get_c(act);
    for (size_t i = 0; i < (size_t)N * F; i++) hp[i] = bfr(hp[i]), ha[i] = bfr(ha[i]);
    CHECK_OK(gv_backend_upload_f32(cpu, pre.c, GV_F32, hp, (size_t)N * F));
    CHECK_OK(gv_backend_upload_f32(gpu, pre.g, GV_BF16, hp, (size_t)N * F));
    CHECK_OK(gv_backend_upload_f32(cpu, act.c, GV_F32, ha, (size_t)N * F));
    CHECK_OK(gv_backend_upload_f32(gpu, act.g, GV_BF16, ha, (size_t)N * F));
    CHECK_OK(gv_matmul_backward_gelu(cpu, dpre.c, db1.c, dw2.c, db2.c, dout.c, act.c, pre.c, w2.c, N, F, OC));
    /* route 1: the DGELU_BGRAD epilogue (GV_CUDA_DGELU_EPI=1); 2: the DGELU epilogue and the bias reduction
     * (=2, the default); 3: GEMM, then the GELU gradient and its bias sums as two passes
     * (GV_CUDA_GELU_BIAS=0); 0: GEMM, then the in-place GELU gradient with its bias sums in one pass */
    static const char *route_name[] = {"GEMM + one-pass GELU gradient and bias", "DGELU_BGRAD epilogue",
                                       "DGELU epilogue", "two passes"};
    for (int route = 3; route >= 0; route--) {
        setenv("GV_CUDA_DGELU_EPI", route == 1 ? "1" : route == 2 ? "2" : "0", 1);
        if (route == 3) setenv("GV_CUDA_GELU_BIAS", "0", 1);
        CHECK_OK(gv_backend_memset0(gpu, db1.g, F * 2));
        CHECK_OK(gv_backend_memset0(gpu, dw2.g, (size_t)OC * F * 2));
        CHECK_OK(gv_backend_memset0(gpu, db2.g, OC * 2));
        garbage_then_zero(dpre, 0, (size_t)N * F, 0);
        CHECK_OK(
            gv_matmul_backward_gelu(gpu, dpre.g, db1.g, dw2.g, db2.g, dout.g, act.g, pre.g, w2.g, N, F, OC));
        printf("  route: %s\n", route_name[route]);
        cmpp("dpre", dpre, TOL_BF);
        cmpp("dpre_bias", db1, TOL_BF);
        cmpp("dw", dw2, TOL_BF);
        cmpp("dbias", db2, TOL_BF);
        unsetenv("GV_CUDA_DGELU_EPI");
        unsetenv("GV_CUDA_GELU_BIAS");
    }
    float *f1 = get_g(dpre), *f2 = get_g(db1), *f3 = get_g(dw2), *f4 = get_g(db2);
    CHECK_OK(gv_matmul_backward_gelu(gpu, dpre.g, db1.g, dw2.g, db2.g, dout.g, act.g, pre.g, w2.g, N, F, OC));
    check_twice("dpre", dpre, f1, TOL_BF);
    check_twice("dpre_bias", db1, f2, TOL_BF);
    check_twice("dw", dw2, f3, TOL_BF);
    check_twice("dbias", db2, f4, TOL_BF);
    free(f1), free(f2), free(f3), free(f4), free(hp), free(ha);
    free(hx), free(hw1), free(hb1), free(hw2), free(hd);
    pfree(x), pfree(w1), pfree(b1), pfree(w2), pfree(dout), pfree(pre), pfree(act), pfree(dpre), pfree(db1),
        pfree(dw2), pfree(db2);
}

/* mask_kind: 0 none, 1 random padding (~25%) with key 0 of batch 0 masked, 2 right padding per batch */
static void set_cfg(int cfg) {
    char v[16];
    snprintf(v, sizeof v, "%d", cfg);
    setenv("GV_ATTN_FWD_CFG", v, 1);
    setenv("GV_ATTN_BWD_CFG", v, 1);
}

/* cfg: tile configuration of the fast kernels (GV_ATTN_FWD_CFG / GV_ATTN_BWD_CFG), 0 = default */
static void t_attention_cfg(int B, int T, int H, int KVH, int D, int causal, int mask_kind, int naive,
                            int cfg) {
    const char *impl = getenv("GV_CUDA_ATTN");
    printf("attention B=%d T=%d H=%d KVH=%d D=%d causal=%d mask=%d%s cfg=%d impl=%s\n", B, T, H, KVH, D,
           causal, mask_kind, naive ? " (naive kernels)" : "", cfg, impl ? impl : "default");
    if (naive) setenv("GV_ATTN_NAIVE", "1", 1);
    set_cfg(cfg);
    size_t S = (size_t)(H + 2 * KVH) * D, n = (size_t)B * T * S, no = (size_t)B * T * H * D;
    float *hq = hrand(n, 1.0f), *hd = hrand(no, 1.0f);
    for (size_t i = 0; i < n; i++)
        if (i % S < (size_t)(H + KVH) * D) hq[i] = bfr(hq[i] * 2.0f); /* sharper softmax */
    int32_t *hm = xmalloc((size_t)B * T * 4);
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++) {
            int v = 1;
            if (mask_kind == 1) v = runif() > -0.5f;
            if (mask_kind == 2) v = t < T - (bb * 7 + 3) % (T / 2 + 1);
            hm[bb * T + t] = v;
        }
    if (mask_kind == 1) hm[0] = 0;
    pair qkv = mk(hq, n, GV_BF16), dout = mk(hd, no, GV_BF16), out = mk(NULL, no, GV_BF16),
         dqkv = mk(NULL, n, GV_BF16);
    pair mask = mk_i32(hm, (size_t)B * T);
    void *stc = alloc_on(cpu, gv_attention_stash_bytes(cpu, B, T, H));
    void *stg = alloc_on(gpu, gv_attention_stash_bytes(gpu, B, T, H));
    CHECK(gv_attention_stash_bytes(gpu, B, T, H) == (size_t)B * H * T * 4);
    const int32_t *mc = mask_kind ? mask.c : NULL, *mg = mask_kind ? mask.g : NULL;
    CHECK_OK(gv_attention_forward(cpu, out.c, stc, qkv.c, mc, B, T, H, KVH, D, causal));
    CHECK_OK(gv_attention_forward(gpu, out.g, stg, qkv.g, mg, B, T, H, KVH, D, causal));
    cmpp("out", out, TOL_BF);
    { /* without a stash (inference) the output is the same */
        void *o2 = alloc_on(gpu, no * 2);
        float *a2 = xmalloc(no * 4), *a1 = get_g(out);
        CHECK_OK(gv_attention_forward(gpu, o2, NULL, qkv.g, mg, B, T, H, KVH, D, causal));
        CHECK_OK(gv_backend_download_f32(gpu, a2, o2, GV_BF16, no));
        CHECK(memcmp(a1, a2, no * 4) == 0);
        free(a1), free(a2);
        gv_backend_dealloc(gpu, o2);
    }
    CHECK_OK(gv_attention_backward(cpu, dqkv.c, dout.c, qkv.c, out.c, stc, mc, B, T, H, KVH, D, causal));
    CHECK_OK(gv_attention_backward(gpu, dqkv.g, dout.g, qkv.g, out.g, stg, mg, B, T, H, KVH, D, causal));
    /* compare the q, k and v gradients separately (different scales) */
    float *a = get_g(dqkv), *b = get_c(dqkv);
    const char *names[3] = {"dq", "dk", "dv"};
    size_t lo[3] = {0, (size_t)H * D, (size_t)(H + KVH) * D},
           hi[3] = {(size_t)H * D, (size_t)(H + KVH) * D, S};
    for (int part = 0; part < 3; part++) {
        size_t w = hi[part] - lo[part], m = (size_t)B * T * w;
        float *pa = xmalloc(m * 4), *pb = xmalloc(m * 4);
        for (size_t r = 0; r < (size_t)B * T; r++) {
            memcpy(pa + r * w, a + r * S + lo[part], w * 4);
            memcpy(pb + r * w, b + r * S + lo[part], w * 4);
        }
        cmp(names[part], pa, pb, m, 2e-2);
        free(pa), free(pb);
    }
    CHECK_OK(gv_attention_backward(gpu, dqkv.g, dout.g, qkv.g, out.g, stg, mg, B, T, H, KVH, D, causal));
    check_twice("dqkv", dqkv, a, 2e-2);
    garbage_then_zero(dqkv, 0, n, 0);
    CHECK_OK(gv_attention_backward(gpu, dqkv.g, dout.g, qkv.g, out.g, stg, mg, B, T, H, KVH, D, causal));
    {
        float *a2 = get_g(dqkv);
        cmp("dqkv over a deferred zero", a2, a, n, TOL_BF);
        free(a2);
    }
    free(a), free(b), free(hq), free(hd), free(hm);
    gv_backend_dealloc(cpu, stc);
    gv_backend_dealloc(gpu, stg);
    pfree(qkv), pfree(dout), pfree(out), pfree(dqkv), pfree(mask);
    if (naive) unsetenv("GV_ATTN_NAIVE");
    set_cfg(0);
}
static void t_attention(int B, int T, int H, int KVH, int D, int causal, int mask_kind, int naive) {
    t_attention_cfg(B, T, H, KVH, D, causal, mask_kind, naive, 0);
}

/* The same cases through GV_CUDA_ATTN=cudnn. require: the cuDNN plans must have run (forward and
 * backward), else the case only reports whether cuDNN took it or refused it (the own kernel then ran, and
 * the comparisons hold either way). A padding mask always goes to the own kernel. */
static void t_attention_dnn(int B, int T, int H, int KVH, int D, int causal, int mask_kind, int require) {
    setenv("GV_CUDA_ATTN", "cudnn", 1);
    long f0 = gv_cuda_cudnn_runs(gpu, 0), b0 = gv_cuda_cudnn_runs(gpu, 1);
    t_attention_cfg(B, T, H, KVH, D, causal, mask_kind, 0, 0);
    long nf = gv_cuda_cudnn_runs(gpu, 0) - f0, nb = gv_cuda_cudnn_runs(gpu, 1) - b0;
    printf("  cuDNN %ld: %ld forward, %ld backward executions%s\n", gv_cuda_cudnn_version(), nf, nb,
           nf || nb ? "" : " (own kernels ran)");
    if (mask_kind) CHECK(nf == 0 && nb == 0);
    if (require && gv_cuda_cudnn_version() > 0) {
        if (!(nf >= 2 && nb >= 3)) fprintf(stderr, "    FAIL: the cuDNN path did not run\n");
        CHECK(nf >= 2 && nb >= 3);
    }
    setenv("GV_CUDA_ATTN", "own", 1);
}

/* General attention (T5): separate q and packed kv (row strides), Tq != Tk or causal, an F32 bias, a scale;
 * q, kv and bias gradients; accumulation. */
static void t_attention_ext(int B, int Tq, int Tk, int H, int KVH, int D, int causal, int use_bias) {
    printf("attention_ext B=%d Tq=%d Tk=%d H=%d KVH=%d D=%d causal=%d bias=%d\n", B, Tq, Tk, H, KVH, D,
           causal, use_bias);
    int ldq = H * D + 8, ldkv = 2 * KVH * D;
    gv_attn_ext a = {B, Tq, Tk, H, KVH, D, ldq, ldkv, ldkv, 1.0f, causal};
    size_t nq = (size_t)B * Tq * ldq, nkv = (size_t)B * Tk * ldkv, no = (size_t)B * Tq * H * D;
    size_t nb = (size_t)Tq * Tk * H;
    float *hq = hrand(nq, 0.5f), *hkv = hrand(nkv, 0.5f), *hd = hrand(no, 1.0f), *hb = hrand(nb, 1.0f);
    pair q = mk(hq, nq, GV_BF16), kv = mk(hkv, nkv, GV_BF16), dout = mk(hd, no, GV_BF16),
         out = mk(NULL, no, GV_BF16);
    pair dq = mk(NULL, nq, GV_BF16), dkv = mk(NULL, nkv, GV_BF16), bias = mk(hb, nb, GV_F32),
         dbias = mk(NULL, nb, GV_F32);
    void *stc = alloc_on(cpu, gv_attention_ext_stash_bytes(cpu, &a));
    void *stg = alloc_on(gpu, gv_attention_ext_stash_bytes(gpu, &a));
    size_t vo = (size_t)KVH * D;
    const float *bc = use_bias ? bias.c : NULL, *bg = use_bias ? bias.g : NULL;
    CHECK_OK(gv_attention_ext_forward(cpu, &a, out.c, stc, q.c, kv.c, (float *)kv.c + vo, bc));
    CHECK_OK(gv_attention_ext_forward(gpu, &a, out.g, stg, q.g, kv.g, (uint16_t *)kv.g + vo, bg));
    cmpp("out", out, TOL_BF);
    for (int rep = 0; rep < 2; rep++) {
        if (rep == 0)
            CHECK_OK(gv_attention_ext_backward(cpu, &a, dq.c, dkv.c, (float *)dkv.c + vo,
                                               use_bias ? dbias.c : NULL, dout.c, q.c, kv.c,
                                               (float *)kv.c + vo, stc));
        CHECK_OK(gv_attention_ext_backward(gpu, &a, dq.g, dkv.g, (uint16_t *)dkv.g + vo,
                                           use_bias ? dbias.g : NULL, dout.g, q.g, kv.g,
                                           (uint16_t *)kv.g + vo, stg));
        if (rep == 1) break;
        cmpp("dq", dq, 2e-2);
        cmpp("dkv", dkv, 2e-2);
        if (use_bias) cmpp("dbias", dbias, 2e-2);
    }
    float *c1 = get_c(dkv), *g2 = get_g(dkv);
    for (size_t i = 0; i < nkv; i++) c1[i] *= 2.0f;
    cmp("dkv accumulates (2x)", g2, c1, nkv, 2e-2);
    free(c1), free(g2), free(hq), free(hkv), free(hd), free(hb);
    gv_backend_dealloc(cpu, stc);
    gv_backend_dealloc(gpu, stg);
    pfree(q), pfree(kv), pfree(dout), pfree(out), pfree(dq), pfree(dkv), pfree(bias), pfree(dbias);
}

static void t_relu(size_t n) {
    printf("relu n=%zu\n", n);
    float *hx = hrand(n, 1.0f), *hd = hrand(n, 1.0f);
    pair x = mk(hx, n, GV_BF16), out = mk(NULL, n, GV_BF16), dout = mk(hd, n, GV_BF16),
         dx = mk(NULL, n, GV_BF16);
    CHECK_OK(gv_relu_forward(cpu, out.c, x.c, n));
    CHECK_OK(gv_relu_forward(gpu, out.g, x.g, n));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_relu_backward(cpu, dx.c, dout.c, x.c, n));
    CHECK_OK(gv_relu_backward(gpu, dx.g, dout.g, x.g, n));
    cmpp("dinp", dx, TOL_BF);
    float *f = get_g(dx);
    CHECK_OK(gv_relu_backward(gpu, dx.g, dout.g, x.g, n));
    check_twice("dinp", dx, f, TOL_BF);
    free(f), free(hx), free(hd);
    pfree(x), pfree(out), pfree(dout), pfree(dx);
}

static void t_rope(int B, int T, int H, int KVH, int D, float theta, int pos0) {
    printf("rope B=%d T=%d H=%d KVH=%d D=%d theta=%g pos0=%d\n", B, T, H, KVH, D, (double)theta, pos0);
    size_t n = (size_t)B * T * (H + 2 * KVH) * D;
    float *hx = hrand(n, 1.0f), *hd = hrand(n, 1.0f);
    pair x = mk(hx, n, GV_BF16), out = mk(NULL, n, GV_BF16), dout = mk(hd, n, GV_BF16),
         dx = mk(NULL, n, GV_BF16);
    CHECK_OK(gv_rope_forward(cpu, out.c, x.c, B, T, H, KVH, D, theta, pos0));
    CHECK_OK(gv_rope_forward(gpu, out.g, x.g, B, T, H, KVH, D, theta, pos0));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_rope_backward(cpu, dx.c, dout.c, B, T, H, KVH, D, theta, pos0));
    CHECK_OK(gv_rope_backward(gpu, dx.g, dout.g, B, T, H, KVH, D, theta, pos0));
    cmpp("dinp", dx, TOL_BF);
    float *f = get_g(dx);
    CHECK_OK(gv_rope_backward(gpu, dx.g, dout.g, B, T, H, KVH, D, theta, pos0));
    check_twice("dinp", dx, f, TOL_BF);
    free(f), free(hx), free(hd);
    pfree(x), pfree(out), pfree(dout), pfree(dx);
}

static void t_gelu(size_t n, int off) {
    printf("gelu n=%zu offset=%d\n", n, off);
    float *hx = hrand(n + off, 4.0f), *hd = hrand(n + off, 1.0f);
    pair x = mk(hx, n + off, GV_BF16), out = mk(NULL, n + off, GV_BF16), dout = mk(hd, n + off, GV_BF16);
    pair dx = mk(NULL, n + off, GV_BF16);
    CHECK_OK(gv_gelu_forward(cpu, (float *)out.c + off, (float *)x.c + off, n));
    CHECK_OK(gv_gelu_forward(gpu, (uint16_t *)out.g + off, (uint16_t *)x.g + off, n));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_gelu_backward(cpu, (float *)dx.c + off, (float *)dout.c + off, (float *)x.c + off, n));
    CHECK_OK(
        gv_gelu_backward(gpu, (uint16_t *)dx.g + off, (uint16_t *)dout.g + off, (uint16_t *)x.g + off, n));
    cmpp("dinp", dx, TOL_BF);
    float *f = get_g(dx);
    CHECK_OK(
        gv_gelu_backward(gpu, (uint16_t *)dx.g + off, (uint16_t *)dout.g + off, (uint16_t *)x.g + off, n));
    check_twice("dinp", dx, f, TOL_BF);
    garbage_then_zero(dx, off, n, 0);
    CHECK_OK(
        gv_gelu_backward(gpu, (uint16_t *)dx.g + off, (uint16_t *)dout.g + off, (uint16_t *)x.g + off, n));
    {
        float *a = get_g(dx);
        for (int i = 0; i < off; i++) a[i] = f[i]; /* the elements before the region hold garbage */
        cmp("dinp over a deferred zero", a, f, n + off, 1e-6);
        free(a);
    }
    free(f), free(hx), free(hd);
    pfree(x), pfree(out), pfree(dout), pfree(dx);
}

/* Exact GELU (BERT, ViT): against the cpu op, vector and scalar paths (odd offset), accumulation twice. */
static void t_gelu_erf(size_t n, int off) {
    printf("gelu_erf n=%zu offset=%d\n", n, off);
    float *hx = hrand(n + off, 4.0f), *hd = hrand(n + off, 1.0f);
    pair x = mk(hx, n + off, GV_BF16), out = mk(NULL, n + off, GV_BF16), dout = mk(hd, n + off, GV_BF16);
    pair dx = mk(NULL, n + off, GV_BF16);
    CHECK_OK(gv_gelu_erf_forward(cpu, (float *)out.c + off, (float *)x.c + off, n));
    CHECK_OK(gv_gelu_erf_forward(gpu, (uint16_t *)out.g + off, (uint16_t *)x.g + off, n));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_gelu_erf_backward(cpu, (float *)dx.c + off, (float *)dout.c + off, (float *)x.c + off, n));
    CHECK_OK(gv_gelu_erf_backward(gpu, (uint16_t *)dx.g + off, (uint16_t *)dout.g + off,
                                  (uint16_t *)x.g + off, n));
    cmpp("dinp", dx, TOL_BF);
    float *f = get_g(dx);
    CHECK_OK(gv_gelu_erf_backward(gpu, (uint16_t *)dx.g + off, (uint16_t *)dout.g + off,
                                  (uint16_t *)x.g + off, n));
    check_twice("dinp", dx, f, TOL_BF);
    free(f), free(hx), free(hd);
    pfree(x), pfree(out), pfree(dout), pfree(dx);
}

static void t_swiglu(int N, int F) {
    printf("swiglu N=%d F=%d\n", N, F);
    size_t n = (size_t)N * F;
    float *hx = hrand(2 * n, 3.0f), *hd = hrand(n, 1.0f);
    pair x = mk(hx, 2 * n, GV_BF16), out = mk(NULL, n, GV_BF16), dout = mk(hd, n, GV_BF16),
         dx = mk(NULL, 2 * n, GV_BF16);
    CHECK_OK(gv_swiglu_forward(cpu, out.c, x.c, N, F));
    CHECK_OK(gv_swiglu_forward(gpu, out.g, x.g, N, F));
    cmpp("out", out, TOL_BF);
    CHECK_OK(gv_swiglu_backward(cpu, dx.c, dout.c, x.c, N, F));
    CHECK_OK(gv_swiglu_backward(gpu, dx.g, dout.g, x.g, N, F));
    cmpp("dinp", dx, TOL_BF);
    float *f = get_g(dx);
    CHECK_OK(gv_swiglu_backward(gpu, dx.g, dout.g, x.g, N, F));
    check_twice("dinp", dx, f, TOL_BF);
    free(f), free(hx), free(hd);
    pfree(x), pfree(out), pfree(dout), pfree(dx);
}

static void t_vector_ops(size_t n, int off) {
    printf("add / accumulate / scale / sumsq n=%zu offset=%d\n", n, off);
    float *hx = hrand(n + off, 1.0f), *hy = hrand(n + off, 1.0f);
    pair x = mk(hx, n + off, GV_BF16), y = mk(hy, n + off, GV_BF16), out = mk(NULL, n + off, GV_BF16);
    CHECK_OK(gv_add_forward(cpu, (float *)out.c + off, (float *)x.c + off, (float *)y.c + off, n));
    CHECK_OK(gv_add_forward(gpu, (uint16_t *)out.g + off, (uint16_t *)x.g + off, (uint16_t *)y.g + off, n));
    cmpp("add", out, TOL_BF);
    CHECK_OK(gv_accumulate(cpu, (float *)x.c + off, (float *)y.c + off, n));
    CHECK_OK(gv_accumulate(gpu, (uint16_t *)x.g + off, (uint16_t *)y.g + off, n));
    cmpp("accumulate", x, TOL_BF);
    CHECK_OK(gv_scale(cpu, (float *)y.c + off, 0.37f, n));
    CHECK_OK(gv_scale(gpu, (uint16_t *)y.g + off, 0.37f, n));
    cmpp("scale", y, TOL_BF);
    /* sum of squares of identical bf16 values: an fp32 path */
    CHECK_OK(gv_backend_upload_f32(cpu, x.c, GV_F32, hx, n + off));
    CHECK_OK(gv_backend_upload_f32(gpu, x.g, GV_BF16, hx, n + off));
    double sc = 0.0, sg = 0.0;
    CHECK_OK(gv_sumsq(cpu, &sc, (float *)x.c + off, n));
    CHECK_OK(gv_sumsq(gpu, &sg, (uint16_t *)x.g + off, n));
    float fa = (float)sg, fb = (float)sc;
    cmp("sumsq", &fa, &fb, 1, TOL_F32);
    free(hx), free(hy);
    pfree(x), pfree(y), pfree(out);
}

static void t_crossentropy(int N, int V, int Vp, int inplace) {
    printf("crossentropy N=%d V=%d Vp=%d%s\n", N, V, Vp, inplace ? " (in place)" : "");
    const int ignore = -100;
    size_t n = (size_t)N * Vp;
    float *hl = hrand(n, 6.0f), *hg = hrand(n, 0.01f);
    int32_t *tg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) tg[i] = i % 5 == 3 ? ignore : (int)((runif() * 0.5f + 0.5f) * V) % V;
    tg[0] = V - 1;
    for (int i = 0; i < N; i++) /* make some targets the row max, some not */
        if (i % 3 == 1 && tg[i] != ignore) hl[(size_t)i * Vp + tg[i]] = 6.0f;
    pair lg = mk(hl, n, GV_BF16), t = mk_i32(tg, N), loss = mk(NULL, N, GV_F32);
    pair dl = mk(inplace ? NULL : hg, n, GV_BF16);
    CHECK_OK(gv_crossentropy_forward(cpu, loss.c, lg.c, t.c, N, V, Vp, ignore));
    CHECK_OK(gv_crossentropy_forward(gpu, loss.g, lg.g, t.g, N, V, Vp, ignore));
    cmpp("losses", loss, 1e-4);
    float dloss = 1.0f / N;
    if (!inplace) CHECK_OK(gv_crossentropy_backward(cpu, dl.c, lg.c, t.c, dloss, N, V, Vp, ignore));
    if (inplace) {
        /* the cpu backend's in-place result is the reference (same contract) */
        float *lc = xmalloc(n * 4);
        CHECK_OK(gv_crossentropy_backward(cpu, lg.c, lg.c, t.c, dloss, N, V, Vp, ignore));
        CHECK_OK(gv_backend_download_f32(cpu, lc, lg.c, GV_F32, n));
        CHECK_OK(gv_backend_upload_f32(cpu, dl.c, GV_F32, lc, n));
        free(lc);
        /* the gradient replaces the logits; rows with ignore_index and padding columns become 0 */
        CHECK_OK(gv_crossentropy_backward(gpu, lg.g, lg.g, t.g, dloss, N, V, Vp, ignore));
        float *a = get_g(lg), *b = get_c(dl);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < Vp; j++)
                if (tg[i] == ignore || j >= V) b[(size_t)i * Vp + j] = 0.0f;
        cmp("dlogits (in place)", a, b, n, TOL_BF);
        free(a), free(b);
    } else {
        CHECK_OK(gv_crossentropy_backward(gpu, dl.g, lg.g, t.g, dloss, N, V, Vp, ignore));
        cmpp("dlogits (incl. untouched padding)", dl, TOL_BF);
        /* accumulation: the second call adds the same gradient again */
        float *first = get_g(dl);
        CHECK_OK(gv_crossentropy_backward(gpu, dl.g, lg.g, t.g, dloss, N, V, Vp, ignore));
        float *a = get_g(dl), *b = get_c(dl);
        for (size_t i = 0; i < n; i++) b[i] = 2.0f * first[i] - hg[i];
        cmp("dlogits accumulates", a, b, n, TOL_BF);
        free(a), free(b), free(first);
    }
    free(hl), free(hg), free(tg);
    pfree(lg), pfree(t), pfree(loss), pfree(dl);
}

/* Loss and in-place gradient in one call vs the cpu's forward, then in-place backward. two_read: the
 * kernel that reads the row twice (GV_CUDA_CE_FB=2read) instead of keeping it in shared memory. */
static void t_ce_fused(int N, int V, int Vp, int two_read) {
    printf("crossentropy_forward_backward N=%d V=%d Vp=%d%s\n", N, V, Vp, two_read ? " (two reads)" : "");
    if (two_read) setenv("GV_CUDA_CE_FB", "2read", 1);
    const int ignore = -1;
    size_t n = (size_t)N * Vp;
    float *hl = hrand(n, 6.0f);
    int32_t *tg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) tg[i] = i % 7 == 2 ? ignore : (int)((runif() * 0.5f + 0.5f) * V) % V;
    pair lg = mk(hl, n, GV_BF16), t = mk_i32(tg, N), loss = mk(NULL, N, GV_F32);
    float dloss = 0.5f / N;
    CHECK_OK(gv_crossentropy_forward_backward(cpu, loss.c, lg.c, t.c, dloss, N, V, Vp, ignore));
    CHECK_OK(gv_crossentropy_forward_backward(gpu, loss.g, lg.g, t.g, dloss, N, V, Vp, ignore));
    cmpp("losses", loss, 1e-4);
    float *a = get_g(lg), *b = get_c(lg);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < Vp; j++)
            if (tg[i] == ignore || j >= V) b[(size_t)i * Vp + j] = 0.0f;
    cmp("dlogits (in place)", a, b, n, TOL_BF);
    unsetenv("GV_CUDA_CE_FB");
    free(a), free(b), free(hl), free(tg);
    pfree(lg), pfree(t), pfree(loss);
}

/* vocab-parallel pieces on a shard [v0, v0 + V) of a global vocab */
static void t_ce_shard(int N, int V, int Vp, int v0) {
    printf("crossentropy shard N=%d V=%d Vp=%d v0=%d\n", N, V, Vp, v0);
    const int ignore = -100;
    size_t n = (size_t)N * Vp;
    float *hl = hrand(n, 6.0f), *hg = hrand(n, 0.01f), *hlse = xmalloc(N * 4);
    int32_t *tg = xmalloc(N * 4);
    for (int i = 0; i < N; i++) /* global targets in and outside the shard */
        tg[i] = i % 5 == 3 ? ignore : (int)((runif() * 0.5f + 0.5f) * (v0 + 2 * V)) % (v0 + 2 * V);
    tg[0] = v0;
    tg[N - 1] = v0 + V - 1;
    pair lg = mk(hl, n, GV_BF16), t = mk_i32(tg, N), lse = mk(NULL, N, GV_F32), tl = mk(NULL, N, GV_F32);
    pair dl = mk(hg, n, GV_BF16);
    CHECK_OK(gv_crossentropy_shard_stats(cpu, lse.c, tl.c, lg.c, t.c, N, V, Vp, v0, ignore));
    CHECK_OK(gv_crossentropy_shard_stats(gpu, lse.g, tl.g, lg.g, t.g, N, V, Vp, v0, ignore));
    cmpp("lse", lse, 1e-5);
    cmpp("tlogit", tl, 1e-5);
    /* backward with a "full-row" lse slightly above the shard's own, the same on both sides */
    float *l = get_c(lse);
    for (int i = 0; i < N; i++) hlse[i] = l[i] + 0.3f;
    CHECK_OK(gv_backend_upload_f32(cpu, lse.c, GV_F32, hlse, N));
    CHECK_OK(gv_backend_upload_f32(gpu, lse.g, GV_F32, hlse, N));
    CHECK_OK(gv_crossentropy_shard_backward(cpu, dl.c, lg.c, t.c, lse.c, 1.0f / N, N, V, Vp, v0, ignore));
    CHECK_OK(gv_crossentropy_shard_backward(gpu, dl.g, lg.g, t.g, lse.g, 1.0f / N, N, V, Vp, v0, ignore));
    cmpp("dlogits", dl, TOL_BF);
    free(l), free(hl), free(hg), free(hlse), free(tg);
    pfree(lg), pfree(t), pfree(lse), pfree(tl), pfree(dl);
}

static void t_adamw(size_t n) {
    printf("adamw n=%zu (3 steps)\n", n);
    float *hp = hrand(n, 1.0f), *hz = calloc(n, 4);
    pair master = mk(hp, n, GV_F32), m = mk(hz, n, GV_F32), v = mk(hz, n, GV_F32),
         weight = mk(NULL, n, GV_BF16);
    for (int t = 1; t <= 3; t++) {
        float *hgr = hrand(n, t == 2 ? 1e-3f : 1.0f);
        pair grad = mk(hgr, n, GV_BF16);
        CHECK_OK(gv_adamw_update(cpu, master.c, NULL, grad.c, m.c, v.c, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                                 0.5f, t));
        CHECK_OK(gv_adamw_update(gpu, master.g, weight.g, grad.g, m.g, v.g, n, 1e-2f, 0.9f, 0.95f, 1e-8f,
                                 0.1f, 0.5f, t));
        free(hgr);
        pfree(grad);
    }
    cmpp("master", master, TOL_F32);
    cmpp("m", m, TOL_F32);
    cmpp("v", v, TOL_F32);
    float *w = get_g(weight), *mg = get_g(master);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += w[i] != bfr(mg[i]);
    printf("  %-44s %zu mismatches\n", "weight == bf16(master)", bad);
    CHECK(bad == 0);
    free(w), free(mg), free(hp), free(hz);
    pfree(master), pfree(m), pfree(v), pfree(weight);
}

/* The multi-tensor AdamW against the cpu backend's per-segment updates: segments with their own weight,
 * master and moment offsets (as ZeRO pieces), tails that are not a multiple of 4, one crossing several
 * chunks, weight decay on some; steps 1-2 reuse the uploaded chunk table, step 3 changes it; an odd offset
 * takes the per-segment route. Elements outside every segment must stay as they were. */
static void t_adamw_multi(void) {
    const size_t n = 200000;
    printf("adamw_update_multi n=%zu (3 steps)\n", n);
    float *hp = hrand(n, 1.0f), *hz = calloc(n, 4);
    pair master = mk(hp, n, GV_F32), m = mk(hz, n, GV_F32), v = mk(hz, n, GV_F32),
         weight = mk(hp, n, GV_BF16);
    const gv_adamw_seg segs[4] = {{0, 0, 120000, 70001, 1},
                                  {70016, 70016, 0, 65539, 0},
                                  {140000, 140000, 70000, 40000, 1},
                                  {190001, 190001, 190001, 999, 1}};
    for (int t = 1; t <= 4; t++) {
        float *hgr = hrand(n, t == 2 ? 1e-3f : 1.0f);
        pair grad = mk(hgr, n, GV_BF16);
        /* steps 1-2: three segments, 3: two (a new table), 4: the odd offset alone */
        const gv_adamw_seg *sg = t == 4 ? segs + 3 : segs;
        int ns = t == 4 ? 1 : t == 3 ? 2 : 3;
        CHECK_OK(gv_adamw_update_multi(cpu, master.c, NULL, grad.c, m.c, v.c, sg, ns, 1e-2f, 0.9f, 0.95f,
                                       1e-8f, 0.1f, 0.5f, t));
        CHECK_OK(gv_adamw_update_multi(gpu, master.g, weight.g, grad.g, m.g, v.g, sg, ns, 1e-2f, 0.9f, 0.95f,
                                       1e-8f, 0.1f, 0.5f, t));
        free(hgr);
        pfree(grad);
    }
    cmpp("master", master, TOL_F32);
    cmpp("m", m, TOL_F32);
    cmpp("v", v, TOL_F32);
    float *w = get_g(weight), *mg = get_g(master);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += w[i] != bfr(mg[i]);
    printf("  %-44s %zu mismatches\n", "weight == bf16(master)", bad);
    CHECK(bad == 0);
    free(w), free(mg), free(hp), free(hz);
    pfree(master), pfree(m), pfree(v), pfree(weight);
}

static void t_memory(void) {
    printf("memory: upload_f32 / download_f32 / convert / memset0\n");
    size_t n = 1003;
    float *h = xmalloc(n * 4), *back = xmalloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = 3.0f * runif() + 1e-3f * (float)i;
    void *b16 = alloc_on(gpu, n * 2), *f32 = alloc_on(gpu, n * 4);
    CHECK_OK(gv_backend_upload_f32(gpu, b16, GV_BF16, h, n));
    CHECK_OK(gv_backend_download_f32(gpu, back, b16, GV_BF16, n));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += back[i] != bfr(h[i]);
    CHECK_OK(gv_backend_convert(gpu, f32, GV_F32, b16, GV_BF16, n));
    CHECK_OK(gv_backend_download(gpu, back, f32, n * 4));
    for (size_t i = 0; i < n; i++) bad += back[i] != bfr(h[i]);
    CHECK_OK(gv_backend_upload(gpu, f32, h, n * 4));
    CHECK_OK(gv_backend_convert(gpu, b16, GV_BF16, f32, GV_F32, n));
    CHECK_OK(gv_backend_download_f32(gpu, back, b16, GV_BF16, n));
    for (size_t i = 0; i < n; i++) bad += back[i] != bfr(h[i]);
    CHECK_OK(gv_backend_memset0(gpu, f32, n * 4));
    CHECK_OK(gv_backend_download_f32(gpu, back, f32, GV_F32, n));
    for (size_t i = 0; i < n; i++) bad += back[i] != 0.0f;
    printf("  %-44s %zu mismatches\n", "round trips (RNE) and zeroing", bad);
    CHECK(bad == 0);
    /* copy2d: bf16 columns [3, 7) of [R, 10] into columns [1, 5) of [R, 6], whose other columns were just
     * zeroed (a deferred memset0: the copy issues it first, as every op does) */
    size_t R = 97;
    void *s10 = alloc_on(gpu, R * 10 * 2), *d6 = alloc_on(gpu, R * 6 * 2);
    float *h10 = xmalloc(R * 10 * 4), *h6 = xmalloc(R * 6 * 4);
    for (size_t i = 0; i < R * 10; i++) h10[i] = runif();
    CHECK_OK(gv_backend_upload_f32(gpu, s10, GV_BF16, h10, R * 10));
    CHECK_OK(gv_backend_memset0(gpu, d6, R * 6 * 2));
    CHECK_OK(gv_backend_copy2d(gpu, (char *)d6 + 2, 6 * 2, (char *)s10 + 3 * 2, 10 * 2, 4 * 2, R));
    CHECK_OK(gv_backend_download_f32(gpu, h6, d6, GV_BF16, R * 6));
    bad = 0;
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < 6; c++)
            bad += h6[r * 6 + c] != (c >= 1 && c < 5 ? bfr(h10[r * 10 + 2 + c]) : 0.0f);
    printf("  %-44s %zu mismatches\n", "copy2d (column slice, after memset0)", bad);
    CHECK(bad == 0);
    gv_backend_dealloc(gpu, s10);
    gv_backend_dealloc(gpu, d6);
    free(h10), free(h6);
    CHECK(gv_backend_dtype(gpu) == GV_BF16);
    CHECK(gv_backend_device(gpu) == GV_DEV_CUDA);
    CHECK_OK(gv_backend_sync(gpu));
    gv_backend_dealloc(gpu, b16);
    gv_backend_dealloc(gpu, f32);
    free(h), free(back);
}

/* ---- timing (GV_CUDA_BENCH=1) -----------------------------------------------------------------------------
 */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void bench_attention(int B, int T, int H, int KVH, int D, int naive, int iters, int cfg) {
    if (naive) setenv("GV_ATTN_NAIVE", "1", 1);
    const char *impl = getenv("GV_CUDA_ATTN");
    long dnn0 = gv_cuda_cudnn_runs(gpu, 0);
    set_cfg(cfg);
    size_t S = (size_t)(H + 2 * KVH) * D, n = (size_t)B * T * S, no = (size_t)B * T * H * D;
    void *qkv = alloc_on(gpu, n * 2), *dqkv = alloc_on(gpu, n * 2), *out = alloc_on(gpu, no * 2),
         *dout = alloc_on(gpu, no * 2);
    void *st = alloc_on(gpu, gv_attention_stash_bytes(gpu, B, T, H));
    float *h = hrand(n > no ? n : no, 1.0f);
    CHECK_OK(gv_backend_upload_f32(gpu, qkv, GV_BF16, h, n));
    CHECK_OK(gv_backend_upload_f32(gpu, dout, GV_BF16, h, no));
    double tf = 0, tb = 0;
    for (int i = -1; i < iters; i++) { /* i = -1: warm-up */
        CHECK_OK(gv_backend_sync(gpu));
        double t0 = now_ms();
        CHECK_OK(gv_attention_forward(gpu, out, st, qkv, NULL, B, T, H, KVH, D, 1));
        CHECK_OK(gv_backend_sync(gpu));
        CHECK_OK(gv_backend_memset0(gpu, dqkv, n * 2)); /* as in training: the backward writes dqkv */
        double t1 = now_ms();
        CHECK_OK(gv_attention_backward(gpu, dqkv, dout, qkv, out, st, NULL, B, T, H, KVH, D, 1));
        CHECK_OK(gv_backend_sync(gpu));
        double t2 = now_ms();
        if (i >= 0) tf += t1 - t0, tb += t2 - t1;
    }
    tf /= iters, tb /= iters;
    double flops = 4.0 * B * H * (double)T * T * D / 2; /* causal forward */
    const int dnn = gv_cuda_cudnn_runs(gpu, 0) > dnn0;
    printf("BENCH attention %-5s cfg=%d B=%d T=%d H=%d KVH=%d D=%d causal: fwd %.3f ms (%.0f TFLOP/s) bwd "
           "%.3f ms "
           "(%.0f TFLOP/s) fwd+bwd %.3f ms\n",
           naive ? "naive"
           : dnn ? "cudnn"
                 : "own",
           cfg, B, T, H, KVH, D, tf, flops / tf * 1e-9, tb, 2.5 * flops / tb * 1e-9, tf + tb);
    (void)impl;
    set_cfg(0);
    free(h);
    gv_backend_dealloc(gpu, qkv), gv_backend_dealloc(gpu, dqkv), gv_backend_dealloc(gpu, out);
    gv_backend_dealloc(gpu, dout), gv_backend_dealloc(gpu, st);
    if (naive) unsetenv("GV_ATTN_NAIVE");
}

static void bench_matmul(int N, int C, int OC, int iters) {
    void *x = alloc_on(gpu, (size_t)N * C * 2), *w = alloc_on(gpu, (size_t)OC * C * 2),
         *b = alloc_on(gpu, OC * 2);
    void *out = alloc_on(gpu, (size_t)N * OC * 2), *dx = alloc_on(gpu, (size_t)N * C * 2),
         *dw = alloc_on(gpu, (size_t)OC * C * 2);
    void *db = alloc_on(gpu, OC * 2);
    double tf = 0, tb = 0;
    for (int i = -1; i < iters; i++) {
        CHECK_OK(gv_backend_sync(gpu));
        double t0 = now_ms();
        CHECK_OK(gv_matmul_forward(gpu, out, x, w, b, N, C, OC));
        CHECK_OK(gv_backend_sync(gpu));
        double t1 = now_ms();
        CHECK_OK(gv_matmul_backward(gpu, dx, dw, db, out, x, w, N, C, OC));
        CHECK_OK(gv_backend_sync(gpu));
        double t2 = now_ms();
        if (i >= 0) tf += t1 - t0, tb += t2 - t1;
    }
    tf /= iters, tb /= iters;
    double flops = 2.0 * N * C * (double)OC;
    printf("BENCH matmul N=%d C=%d OC=%d: fwd %.3f ms (%.0f TFLOP/s) bwd %.3f ms (%.0f TFLOP/s)\n", N, C, OC,
           tf, flops / tf * 1e-9, tb, 2 * flops / tb * 1e-9);
    gv_backend_dealloc(gpu, x), gv_backend_dealloc(gpu, w), gv_backend_dealloc(gpu, b),
        gv_backend_dealloc(gpu, out);
    gv_backend_dealloc(gpu, dx), gv_backend_dealloc(gpu, dw), gv_backend_dealloc(gpu, db);
}

/* The MLP pair at training size: fused (matmul_gelu_forward; memset0 + matmul_backward_gelu) against the
 * unfused sequence model.c runs (matmul_forward + gelu_forward; memset0 + matmul_backward, memset0 +
 * gelu_backward, and the first layer's bias reduction inside its matmul_backward). */
static void bench_mlp_pair(int N, int C, int F, int iters) {
    void *x = alloc_on(gpu, (size_t)N * F * 2), *w = alloc_on(gpu, (size_t)C * F * 2),
         *b = alloc_on(gpu, F * 2);
    void *pre = alloc_on(gpu, (size_t)N * F * 2), *act = alloc_on(gpu, (size_t)N * F * 2),
         *dact = alloc_on(gpu, (size_t)N * F * 2), *dpre = alloc_on(gpu, (size_t)N * F * 2);
    void *dout = alloc_on(gpu, (size_t)N * C * 2), *dw = alloc_on(gpu, (size_t)C * F * 2),
         *db = alloc_on(gpu, C * 2), *db1 = alloc_on(gpu, F * 2);
    double t[4] = {0, 0, 0, 0};
    for (int i = -1; i < iters; i++) {
        double t0, t1;
        CHECK_OK(gv_backend_sync(gpu));
        t0 = now_ms();
        CHECK_OK(gv_matmul_forward(gpu, pre, x, w, b, N, C, F)); /* x [N, C] part of the buffer */
        CHECK_OK(gv_gelu_forward(gpu, act, pre, (size_t)N * F));
        CHECK_OK(gv_backend_sync(gpu));
        t1 = now_ms();
        if (i >= 0) t[0] += t1 - t0;
        CHECK_OK(gv_matmul_gelu_forward(gpu, act, pre, x, w, b, N, C, F));
        CHECK_OK(gv_backend_sync(gpu));
        t0 = now_ms();
        if (i >= 0) t[1] += t0 - t1;
        CHECK_OK(gv_backend_memset0(gpu, dact, (size_t)N * F * 2));
        CHECK_OK(gv_matmul_backward(gpu, dact, dw, db, dout, act, w, N, F, C));
        CHECK_OK(gv_backend_memset0(gpu, dpre, (size_t)N * F * 2));
        CHECK_OK(gv_gelu_backward(gpu, dpre, dact, pre, (size_t)N * F));
        CHECK_OK(gv_matmul_backward(gpu, NULL, NULL, db1, dpre, x, w, N, C, F)); /* the bias reduction */
        CHECK_OK(gv_backend_sync(gpu));
        t1 = now_ms();
        if (i >= 0) t[2] += t1 - t0;
        CHECK_OK(gv_backend_memset0(gpu, dpre, (size_t)N * F * 2));
        CHECK_OK(gv_matmul_backward_gelu(gpu, dpre, db1, dw, db, dout, act, pre, w, N, F, C));
        CHECK_OK(gv_backend_sync(gpu));
        t0 = now_ms();
        if (i >= 0) t[3] += t0 - t1;
    }
    printf("BENCH mlp pair N=%d C=%d F=%d: forward unfused %.3f ms fused %.3f ms; backward unfused %.3f ms "
           "fused %.3f ms\n",
           N, C, F, t[0] / iters, t[1] / iters, t[2] / iters, t[3] / iters);
    void *all[] = {x, w, b, pre, act, dact, dpre, dout, dw, db, db1};
    for (int i = 0; i < 11; i++) gv_backend_dealloc(gpu, all[i]);
}

/* Memory-bound ops at GPT-2 small training sizes (B*T = 16384 rows, C = 768): time and effective bandwidth
 * (bytes = the minimum traffic of the op). */
#define BENCH_OP(label, bytes, call)                                                                         \
    do {                                                                                                     \
        CHECK_OK(call);                                                                                      \
        CHECK_OK(gv_backend_sync(gpu));                                                                      \
        double t0_ = now_ms();                                                                               \
        for (int i_ = 0; i_ < 10; i_++) CHECK_OK(call);                                                      \
        CHECK_OK(gv_backend_sync(gpu));                                                                      \
        double ms_ = (now_ms() - t0_) / 10;                                                                  \
        printf("BENCH %-36s %8.3f ms %6.0f GB/s\n", label, ms_, (double)(bytes) / ms_ * 1e-6);               \
    } while (0)

static void bench_memory_ops(void) {
    const int N = 16384, C = 768, F = 3072, V = 50257, Vp = 50304, NC = 8192, BT = 16, T = 1024;
    const size_t P = 124000000; /* parameters for AdamW */
    void *x = alloc_on(gpu, (size_t)N * F * 2 * 2), *y = alloc_on(gpu, (size_t)N * F * 2 * 2);
    void *z = alloc_on(gpu, (size_t)N * F * 2 * 2), *w = alloc_on(gpu, (size_t)V * C * 2),
         *bias = alloc_on(gpu, C * 2);
    float *mean = alloc_on(gpu, N * 4), *rstd = alloc_on(gpu, N * 4);
    int32_t *tok = alloc_on(gpu, N * 4), *htok = xmalloc(N * 4);
    for (int i = 0; i < N; i++) htok[i] = (i * 7919) % V;
    CHECK_OK(gv_backend_upload(gpu, tok, htok, N * 4));
    const size_t nc = (size_t)N * C;
    BENCH_OP("layernorm_forward N=16384 C=768", 4 * nc,
             gv_layernorm_forward(gpu, y, mean, rstd, x, w, bias, N, C, 1e-5f));
    BENCH_OP("layernorm_backward", 8 * nc, gv_layernorm_backward(gpu, z, w, bias, y, x, w, mean, rstd, N, C));
    BENCH_OP("rmsnorm_forward", 4 * nc, gv_rmsnorm_forward(gpu, y, rstd, x, w, N, C, 1e-5f));
    BENCH_OP("rmsnorm_backward", 8 * nc, gv_rmsnorm_backward(gpu, z, w, y, x, w, rstd, N, C));
    BENCH_OP("gelu_forward n=16384*3072", 4 * (size_t)N * F, gv_gelu_forward(gpu, y, x, (size_t)N * F));
    BENCH_OP("gelu_backward", 8 * (size_t)N * F, gv_gelu_backward(gpu, z, y, x, (size_t)N * F));
    BENCH_OP("swiglu_forward N=16384 F=3072", 6 * (size_t)N * F, gv_swiglu_forward(gpu, y, x, N, F));
    BENCH_OP("swiglu_backward", 14 * (size_t)N * F, gv_swiglu_backward(gpu, z, y, x, N, F));
    BENCH_OP("add_forward n=16384*768", 6 * nc, gv_add_forward(gpu, z, x, y, nc));
    BENCH_OP("embedding_forward B=16 T=1024 C=768", 6 * nc,
             gv_embedding_forward(gpu, y, tok, w, x, BT, T, C, 0));
    BENCH_OP("embedding_backward (dwte + dwpe)", 6 * nc,
             gv_embedding_backward(gpu, z, x, y, tok, BT, T, C, 0));
    BENCH_OP("rope_forward B=16 T=1024 H=12 D=64", 4 * 3 * nc,
             gv_rope_forward(gpu, y, x, BT, T, 12, 12, 64, 1e4f, 0));
    BENCH_OP("rope_backward", 6 * 3 * nc, gv_rope_backward(gpu, z, y, BT, T, 12, 12, 64, 1e4f, 0));
    gv_backend_dealloc(gpu, x), gv_backend_dealloc(gpu, y), gv_backend_dealloc(gpu, z);
    /* cross-entropy over a GPT-2 vocab, 8192 rows */
    void *lg = alloc_on(gpu, (size_t)NC * Vp * 2), *dl = alloc_on(gpu, (size_t)NC * Vp * 2);
    float *loss = alloc_on(gpu, NC * 4);
    const size_t nl = (size_t)NC * Vp * 2;
    BENCH_OP("crossentropy_forward N=8192 V=50257", nl,
             gv_crossentropy_forward(gpu, loss, lg, tok, NC, V, Vp, -100));
    BENCH_OP("crossentropy_backward (accumulate)", 4 * nl,
             gv_crossentropy_backward(gpu, dl, lg, tok, 1e-4f, NC, V, Vp, -100));
    BENCH_OP("crossentropy_backward (in place)", 3 * nl,
             gv_crossentropy_backward(gpu, lg, lg, tok, 0.0f, NC, V, Vp, -100));
    gv_backend_dealloc(gpu, lg), gv_backend_dealloc(gpu, dl), gv_backend_dealloc(gpu, loss);
    /* AdamW and the gradient norm over 124M parameters */
    float *master = alloc_on(gpu, P * 4), *m = alloc_on(gpu, P * 4), *v = alloc_on(gpu, P * 4);
    void *grad = alloc_on(gpu, P * 2), *wt = alloc_on(gpu, P * 2);
    BENCH_OP("adamw_update n=124M", 28 * P,
             gv_adamw_update(gpu, master, wt, grad, m, v, P, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1));
    double ss;
    BENCH_OP("sumsq n=124M (with download)", 2 * P, gv_sumsq(gpu, &ss, grad, P));
    gv_backend_dealloc(gpu, master), gv_backend_dealloc(gpu, m), gv_backend_dealloc(gpu, v);
    gv_backend_dealloc(gpu, grad), gv_backend_dealloc(gpu, wt);
    gv_backend_dealloc(gpu, w), gv_backend_dealloc(gpu, bias), gv_backend_dealloc(gpu, mean);
    gv_backend_dealloc(gpu, rstd), gv_backend_dealloc(gpu, tok);
    free(htok);
}

static void run_tests(int big) {
    t_memory();

    t_vector_ops(1001, 0);
    t_vector_ops(big ? 1 << 20 : 5000, 3);
    t_adamw(1001);
    t_adamw_multi();
    if (big) t_adamw(1 << 20);
    t_gelu(1001, 0);
    if (big) t_gelu(4 * 256 * 3072, 0);
    t_gelu(777, 1);
    t_gelu_erf(1001, 0);
    if (big) t_gelu_erf(4 * 256 * 3072, 0);
    t_gelu_erf(777, 1);
    t_relu(1001);
    t_attention_ext(2, 7, 13, 4, 2, 16, 0, 1);  /* cross-attention with bias, GQA */
    t_attention_ext(2, 33, 33, 4, 4, 64, 1, 1); /* causal self-attention with bias */
    t_attention_ext(1, 200, 150, 8, 8, 64, 0, 0);
    t_swiglu(7, 13);
    t_swiglu(big ? 1024 : 16, 2048);
    t_embedding(2, 7, 37, 11, 1, 3, 0);
    t_embedding(2, 9, 40, 13, 1, 0, 1);
    t_embedding(3, 5, 16, 9, 0, 0, 1);
    if (big) t_embedding(4, 256, 768, 1000, 1, 0, 0);
    t_norm(0, 5, 37, 1, 1);
    t_norm(0, 9, 40, 0, 0);
    if (big) t_norm(0, 1024, 768, 1, 1);
    t_norm(0, 64, 3000, 1, 1);
    t_norm(0, 5, 1024, 1, 1); /* the warp-per-row backward: 4, 2 and 1 chunks per lane */
    t_norm(1, 300, 512, 1, 0);
    t_norm(0, 3, 256, 1, 0);
    t_norm(0, 8, 16384, 1, 0);
    t_norm(1, 6, 5001, 1, 0);
    t_norm(1, 5, 37, 1, 0);
    if (big) t_norm(1, 1024, 768, 1, 0);
    t_norm(1, 16, 4096, 0, 0);
    /* many rows per warp (both cp.async slots in turn), C not a multiple of 256 */
    t_norm(0, 20000, 40, 1, 1);
    t_norm(1, 20000, 1000, 1, 0);
    t_norm_sum(1000, 768); /* the warp-per-row kernel, rows not a multiple of its warps */
    t_norm_sum(20000, 640);
    t_norm_sum(big ? 8192 : 512, 1024);
    t_norm_sum(300, 2048); /* wider rows: the norm, then a separate reduction */
    t_add_norm(0, 5, 37);
    t_add_norm(0, big ? 1024 : 64, 768);
    t_add_norm(1, 9, 40);
    t_add_norm(1, 64, 4096);
    t_matmul(7, 13, 9, 1);
    t_matmul(100, 36, 50, 1);
    if (big) {
        t_matmul(1024, 768, 2304, 1);
        t_matmul(256, 768, 3072, 0);
        t_matmul(1024, 3072, 768, 1);
    }
    t_matmul_add(7, 13, 9, 1);
    t_matmul_add(100, 36, 50, 0);
    t_matmul_add(big ? 4096 : 256, 768, 768, 1);
    if (big) t_matmul_add(1024, 3072, 768, 1);
    t_matmul_gelu(7, 13, 24, 9);
    t_matmul_gelu(64, 40, 96, 24);
    if (big) t_matmul_gelu(1024, 768, 3072, 768);
    t_rope(2, 5, 3, 1, 8, 10000.0f, 3);
    if (big) t_rope(4, 256, 12, 12, 64, 10000.0f, 0);
    t_rope(2, 64, 8, 2, 128, 500000.0f, 100);
    t_crossentropy(5, 11, 16, 0);
    t_ce_fused(5, 11, 16, 0); /* Vp % 8 == 0: the one-pass kernel */
    t_ce_fused(5, 11, 16, 1); /* the two-read kernel */
    t_ce_fused(6, 13, 13, 0); /* the two-kernel route */
    t_ce_fused(big ? 4096 : 64, 50257, 50304, 0);
    t_ce_fused(big ? 4096 : 64, 50257, 50304, 1);
    t_crossentropy(3, 7, 7, 0);
    t_crossentropy(big ? 64 : 4, 50257, 50304, 0);
    t_crossentropy(big ? 16 : 3, 50257, 50304, 1);
    t_ce_shard(7, 13, 16, 26);
    t_ce_shard(5, 11, 11, 0);
    t_ce_shard(big ? 32 : 3, 25129, 25152, 25128);
    /* attention: ragged tiles, masks, GQA, both head sizes, the naive fallback (any D), realistic shapes;
     * the own kernels first, then the cuDNN path */
    setenv("GV_CUDA_ATTN", "own", 1);
    t_attention(2, 37, 4, 4, 64, 1, 0, 0);
    t_attention(2, 37, 4, 2, 64, 0, 1, 0);
    t_attention(2, 37, 4, 2, 64, 1, 1, 0);
    t_attention(1, 70, 2, 1, 128, 1, 2, 0);
    t_attention(2, 100, 4, 2, 128, 0, 2, 0);
    t_attention(2, 33, 3, 1, 40, 1, 1, 0);
    t_attention(2, 37, 4, 2, 64, 1, 1, 1);
    for (int cfg = 1; cfg < 4; cfg++) { /* the alternative tile configurations */
        t_attention_cfg(2, 150, 4, 2, 64, 1, 1, 0, cfg);
        t_attention_cfg(2, 150, 4, 2, 128, 1, 1, 0, cfg);
        t_attention_cfg(1, 77, 2, 2, 128, 0, 2, 0, cfg);
    }
    if (big) {
        t_attention(4, 256, 12, 12, 64, 1, 0, 0);
        t_attention(4, 256, 12, 12, 64, 0, 2, 0);
        t_attention(4, 256, 8, 2, 128, 1, 0, 0);
        t_attention(2, 256, 8, 2, 128, 0, 1, 0);
    }
    t_attention_dnn(2, 64, 4, 4, 64, 1, 0, 1); /* causal */
    t_attention_dnn(2, 64, 4, 4, 64, 0, 0, 1); /* bidirectional */
    t_attention_dnn(2, 37, 4, 4, 64, 1, 0, 0); /* ragged T */
    t_attention_dnn(2, 64, 4, 2, 64, 1, 0, 0); /* GQA */
    t_attention_dnn(2, 100, 4, 2, 128, 0, 0, 0);
    t_attention_dnn(2, 37, 4, 2, 64, 1, 1, 0); /* padding mask: the own kernel */
    t_attention_dnn(2, 33, 3, 1, 40, 1, 0, 0); /* D = 40: the own (naive) kernel */
    if (big) {
        t_attention_dnn(4, 256, 12, 12, 64, 1, 0, 1);
        t_attention_dnn(4, 256, 12, 12, 64, 0, 0, 1);
        t_attention_dnn(4, 256, 8, 2, 128, 1, 0, 0);
        t_attention_dnn(2, 1024, 12, 12, 64, 1, 0, 1); /* GPT-2 124M's attention */
    }
    unsetenv("GV_CUDA_ATTN");
    printf("\n%d comparisons, %d failed\n", ncmp, nfail);
}

int main(void) {
    if (!gv_backend_available("cuda")) {
        printf("test_cuda_ops: no CUDA device, skipped\n");
        return 77;
    }
    if (gv_backend_init(&cpu, "cpu", 0) != GV_OK || gv_backend_init(&gpu, "cuda", 0) != GV_OK) {
        fprintf(stderr, "backend init failed: %s\n", gv_last_error());
        return 1;
    }
    /* GV_CUDA_SMALL=1: small shapes only (for compute-sanitizer runs) */
    const char *small = getenv("GV_CUDA_SMALL"), *bench = getenv("GV_CUDA_BENCH");
    const int big = !(small && small[0] == '1');
    const int bench_only = bench && (bench[0] == '2' || !strcmp(bench, "ncu") || !strcmp(bench, "attn"));
    if (!bench_only) run_tests(big);
    /* GV_CUDA_BENCH=1: also time; 2: time only (the tests are skipped); ncu: one launch per kernel */
    if (bench && !strcmp(bench, "attn")) { /* GV_CUDA_BENCH=attn: attention only, own vs cuDNN */
        const char *impls[2] = {"own", "cudnn"};
        for (int i = 0; i < 2; i++) {
            setenv("GV_CUDA_ATTN", impls[i], 1);
            bench_attention(16, 1024, 12, 12, 64, 0, 10, 0);
            bench_attention(64, 1024, 12, 12, 64, 0, 10, 0);
            bench_attention(8, 2048, 16, 4, 128, 0, 5, 0);
        }
        unsetenv("GV_CUDA_ATTN");
    } else if (bench && !strcmp(bench, "ncu")) { /* one launch of each kernel per shape, for a profiler */
        bench_attention(16, 1024, 12, 12, 64, 0, 1, 0);
        bench_attention(8, 2048, 16, 4, 128, 0, 1, 0);
    } else if (bench_only || (bench && bench[0] == '1')) {
        setenv("GV_CUDA_ATTN", "own",
               1); /* the own kernels' tile configurations (GV_CUDA_BENCH=attn: cuDNN) */
        for (int cfg = 0; cfg < 4; cfg++) bench_attention(16, 1024, 12, 12, 64, 0, 10, cfg);
        bench_attention(2, 1024, 12, 12, 64, 0, 10, 0);
        bench_attention(2, 1024, 12, 12, 64, 1, 1, 0);
        for (int cfg = 0; cfg < 4; cfg++) bench_attention(8, 2048, 16, 4, 128, 0, 5, cfg);
        bench_matmul(16384, 768, 3072, 10);
        bench_matmul(16384, 3072, 768, 10);
        bench_matmul(16384, 768, 2304, 10);
        bench_mlp_pair(16384, 768, 3072, 10);
        bench_mlp_pair(65536, 768, 3072, 5);
        bench_memory_ops();
    }
    gv_backend_free(gpu);
    gv_backend_free(cpu);
    return gv_test_result("test_cuda_ops");
}
