/* LayerNorm and RMSNorm over the last dimension. Row statistics are computed in double and saved as F32;
 * w may be NULL (scale 1, dw skipped) and so may bias / dbias. Backward ops accumulate. */
#include "cpu-ops.h"

#include <math.h>

/* Column block for the parameter-gradient reductions (each thread owns whole columns). */
#define NORM_CBLOCK 64

static gv_status norm_check(const char *op, int N, int C) {
    if (N < 0 || C <= 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape N=%d C=%d (need N >= 0, C > 0)", op, N, C);
    return GV_OK;
}

/* ---- LayerNorm -------------------------------------------------------------------------------------- */

gv_status gv_cpu_layernorm_forward(gv_backend *b, void *out_, float *mean, float *rstd, const void *inp_,
                                   const void *w_, const void *bias_, int N, int C, float eps) {
    (void)b;
    GV_TRY(norm_check("layernorm_forward", N, C));
    float *out = out_;         /* [N, C] */
    const float *inp = inp_;   /* [N, C] */
    const float *w = w_;       /* [C] or NULL */
    const float *bias = bias_; /* [C] or NULL */
    /* mean, rstd: [N] or NULL */
#pragma omp parallel for if ((long)N * C > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += x[c];
        double m = s / C;
        double v = 0.0;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        float mf = (float)m, rs = (float)(1.0 / sqrt(v + (double)eps));
        for (int c = 0; c < C; c++) {
            float y = (x[c] - mf) * rs;
            if (w) y *= w[c];
            if (bias) y += bias[c];
            o[c] = y;
        }
        if (mean) mean[n] = mf;
        if (rstd) rstd[n] = rs;
    }
    return GV_OK;
}

gv_status gv_cpu_layernorm_backward(gv_backend *b, void *dinp_, void *dw_, void *dbias_, const void *dout_,
                                    const void *inp_, const void *w_, const float *mean, const float *rstd,
                                    int N, int C) {
    (void)b;
    GV_TRY(norm_check("layernorm_backward", N, C));
    if (!mean || !rstd)
        return gv_fail(GV_ERR_INVALID, "layernorm_backward: mean and rstd from the forward are required");
    float *dinp = dinp_;       /* [N, C] or NULL */
    float *dw = dw_;           /* [C] or NULL */
    float *dbias = dbias_;     /* [C] or NULL */
    const float *dout = dout_; /* [N, C] */
    const float *inp = inp_;   /* [N, C] */
    const float *w = w_;       /* [C] or NULL */
    /* mean, rstd: [N] from the forward */
    long work = (long)N * C;
    if (dinp) {
        /* dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w. */
#pragma omp parallel for if (work > GV_CPU_PAR_MIN)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float *dx = dinp + (long)n * C;
            float m = mean[n], rs = rstd[n];
            double sd = 0.0, sdn = 0.0;
            for (int c = 0; c < C; c++) {
                float dn = w ? d[c] * w[c] : d[c];
                sd += dn;
                sdn += (double)dn * ((x[c] - m) * rs);
            }
            float md = (float)(sd / C), mdn = (float)(sdn / C);
            for (int c = 0; c < C; c++) {
                float dn = w ? d[c] * w[c] : d[c];
                float norm = (x[c] - m) * rs;
                dx[c] += (dn - md - norm * mdn) * rs;
            }
        }
    }
    if ((dw && w) || dbias) {
        int nblk = (C + NORM_CBLOCK - 1) / NORM_CBLOCK;
#pragma omp parallel for if (work > GV_CPU_PAR_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * NORM_CBLOCK, c1 = c0 + NORM_CBLOCK < C ? c0 + NORM_CBLOCK : C;
            double gw[NORM_CBLOCK] = {0}, gb[NORM_CBLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (long)n * C, *d = dout + (long)n * C;
                float m = mean[n], rs = rstd[n];
                for (int c = c0; c < c1; c++) {
                    gw[c - c0] += (double)d[c] * ((x[c] - m) * rs);
                    gb[c - c0] += d[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dw && w) dw[c] += (float)gw[c - c0];
                if (dbias) dbias[c] += (float)gb[c - c0];
            }
        }
    }
    return GV_OK;
}

/* ---- RMSNorm ---------------------------------------------------------------------------------------- */

gv_status gv_cpu_rmsnorm_forward(gv_backend *b, void *out_, float *rstd, const void *inp_, const void *w_,
                                 int N, int C, float eps) {
    (void)b;
    GV_TRY(norm_check("rmsnorm_forward", N, C));
    float *out = out_;       /* [N, C] */
    const float *inp = inp_; /* [N, C] */
    const float *w = w_;     /* [C] or NULL */
    /* rstd: [N] or NULL */
#pragma omp parallel for if ((long)N * C > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (long)n * C;
        float *o = out + (long)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float rs = (float)(1.0 / sqrt(ss / C + (double)eps));
        for (int c = 0; c < C; c++) o[c] = w ? x[c] * rs * w[c] : x[c] * rs;
        if (rstd) rstd[n] = rs;
    }
    return GV_OK;
}

gv_status gv_cpu_rmsnorm_backward(gv_backend *b, void *dinp_, void *dw_, const void *dout_, const void *inp_,
                                  const void *w_, const float *rstd, int N, int C) {
    (void)b;
    GV_TRY(norm_check("rmsnorm_backward", N, C));
    if (!rstd) return gv_fail(GV_ERR_INVALID, "rmsnorm_backward: rstd from the forward is required");
    float *dinp = dinp_;       /* [N, C] or NULL */
    float *dw = dw_;           /* [C] or NULL */
    const float *dout = dout_; /* [N, C] */
    const float *inp = inp_;   /* [N, C] */
    const float *w = w_;       /* [C] or NULL */
    /* rstd: [N] from the forward */
    long work = (long)N * C;
    if (dinp) {
        /* dx = rstd * (dnorm - norm * mean(dnorm * norm)), norm = x * rstd, dnorm = dout * w. */
#pragma omp parallel for if (work > GV_CPU_PAR_MIN)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (long)n * C, *d = dout + (long)n * C;
            float *dx = dinp + (long)n * C;
            float rs = rstd[n];
            double sdn = 0.0;
            for (int c = 0; c < C; c++) {
                float dn = w ? d[c] * w[c] : d[c];
                sdn += (double)dn * (x[c] * rs);
            }
            float mdn = (float)(sdn / C);
            for (int c = 0; c < C; c++) {
                float dn = w ? d[c] * w[c] : d[c];
                dx[c] += (dn - x[c] * rs * mdn) * rs;
            }
        }
    }
    if (dw && w) {
        int nblk = (C + NORM_CBLOCK - 1) / NORM_CBLOCK;
#pragma omp parallel for if (work > GV_CPU_PAR_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * NORM_CBLOCK, c1 = c0 + NORM_CBLOCK < C ? c0 + NORM_CBLOCK : C;
            double gw[NORM_CBLOCK] = {0};
            for (int n = 0; n < N; n++) {
                const float *x = inp + (long)n * C, *d = dout + (long)n * C;
                float rs = rstd[n];
                for (int c = c0; c < c1; c++) gw[c - c0] += (double)d[c] * (x[c] * rs);
            }
            for (int c = c0; c < c1; c++) dw[c] += (float)gw[c - c0];
        }
    }
    return GV_OK;
}
