/* Linear layer: out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC], through OpenBLAS sgemm (row-major). */
#include "cpu-ops.h"

#include <cblas.h>
#include <stdlib.h>

#define MM_OCBLOCK 64

static gv_status mm_check(const char *op, int N, int C, int OC) {
    if (N < 0 || C < 0 || OC < 0)
        return gv_fail(GV_ERR_INVALID, "%s: negative size (N=%d C=%d OC=%d)", op, N, C, OC);
    return GV_OK;
}

gv_status gv_cpu_matmul_forward(gv_backend *b, void *out_, const void *inp_, const void *w_,
                                const void *bias_, int N, int C, int OC) {
    (void)b;
    GV_TRY(mm_check("matmul_forward", N, C, OC));
    float *out = out_;         /* [N, OC] */
    const float *inp = inp_;   /* [N, C] */
    const float *w = w_;       /* [OC, C] */
    const float *bias = bias_; /* [OC] or NULL */
    if (N == 0 || OC == 0) return GV_OK;
        /* Prefill out with the bias (or zero) and let sgemm add the product (beta = 1). */
#pragma omp parallel for if ((long)N * OC > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *o = out + (long)n * OC;
        for (int j = 0; j < OC; j++) o[j] = bias ? bias[j] : 0.0f;
    }
    if (C == 0) return GV_OK;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, 1.0f, out, OC);
    return GV_OK;
}

gv_status gv_cpu_matmul_backward(gv_backend *b, void *dinp_, void *dw_, void *dbias_, const void *dout_,
                                 const void *inp_, const void *w_, int N, int C, int OC) {
    (void)b;
    GV_TRY(mm_check("matmul_backward", N, C, OC));
    float *dinp = dinp_;       /* [N, C] or NULL */
    float *dw = dw_;           /* [OC, C] or NULL */
    float *dbias = dbias_;     /* [OC] or NULL */
    const float *dout = dout_; /* [N, OC] */
    const float *inp = inp_;   /* [N, C] */
    const float *w = w_;       /* [OC, C] */
    if (N == 0 || OC == 0) return GV_OK;
    if (C > 0) {
        /* dinp[N,C] += dout[N,OC] @ w[OC,C] */
        if (dinp)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp,
                        C);
        /* dw[OC,C] += dout[N,OC]^T @ inp[N,C] */
        if (dw)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw,
                        C);
    }
    if (dbias) {
        /* dbias[OC] += sum over rows of dout; each thread owns a block of output channels. */
        int nblk = (OC + MM_OCBLOCK - 1) / MM_OCBLOCK;
#pragma omp parallel for if ((long)N * OC > GV_CPU_PAR_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int j0 = blk * MM_OCBLOCK, j1 = j0 + MM_OCBLOCK < OC ? j0 + MM_OCBLOCK : OC;
            double acc[MM_OCBLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *d = dout + (long)n * OC;
                for (int j = j0; j < j1; j++) acc[j - j0] += d[j];
            }
            for (int j = j0; j < j1; j++) dbias[j] += (float)acc[j - j0];
        }
    }
    return GV_OK;
}

/* Linear + GELU: pre = inp @ w^T + bias, out = gelu(pre). */
gv_status gv_cpu_matmul_gelu_forward(gv_backend *b, void *out_, void *pre_, const void *inp, const void *w,
                                     const void *bias, int N, int C, int OC) {
    GV_TRY(gv_cpu_matmul_forward(b, pre_, inp, w, bias, N, C, OC));
    float *out = out_;       /* [N, OC] */
    const float *pre = pre_; /* [N, OC] */
    size_t n = (size_t)N * OC;
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = gv_cpu_gelu(pre[i]);
    return GV_OK;
}

/* Backward through a linear layer whose input was act = gelu(pre): the input gradient goes through the
 * GELU into dpre (and its column sums into dpre_bias); dw, dbias as in gv_cpu_matmul_backward. */
gv_status gv_cpu_matmul_backward_gelu(gv_backend *b, void *dpre_, void *dpre_bias_, void *dw, void *dbias,
                                      const void *dout_, const void *act, const void *pre_, const void *w_,
                                      int N, int C, int OC) {
    GV_TRY(mm_check("matmul_backward_gelu", N, C, OC));
    GV_TRY(gv_cpu_matmul_backward(b, NULL, dw, dbias, dout_, act, w_, N, C, OC));
    float *dpre = dpre_;           /* [N, C] or NULL */
    float *dpre_bias = dpre_bias_; /* [C] or NULL */
    const float *dout = dout_;     /* [N, OC] */
    const float *pre = pre_;       /* [N, C] */
    const float *w = w_;           /* [OC, C] */
    if ((!dpre && !dpre_bias) || N == 0 || C == 0 || OC == 0) return GV_OK;
    /* g[N,C] = (dout @ w) * gelu'(pre) */
    float *g = malloc((size_t)N * C * sizeof(float));
    if (!g) return gv_fail(GV_ERR_NOMEM, "matmul_backward_gelu: out of memory (%d x %d)", N, C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 0.0f, g, C);
    size_t n = (size_t)N * C;
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) g[i] *= gv_cpu_gelu_grad(pre[i]);
    if (dpre)
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) dpre[i] += g[i];
    if (dpre_bias)
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int r = 0; r < N; r++) s += g[(size_t)r * C + c];
            dpre_bias[c] += (float)s;
        }
    free(g);
    return GV_OK;
}
