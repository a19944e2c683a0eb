/* Token + position embedding: out[n] = wte[tokens[n]] + wpe[pos0 + n % T]; a negative token (not in this
 * rank's vocab shard) contributes no wte row and gets no gradient. */
#include "cpu-ops.h"

#include <string.h>

/* Channel block handled by one thread in the backward scatter-add (threads never share a channel). */
#define EMB_CBLOCK 64

static gv_status emb_check(const char *op, const int32_t *tokens, int B, int T, int C, int pos0) {
    if (B < 0 || T < 0 || C < 0 || pos0 < 0)
        return gv_fail(GV_ERR_INVALID, "%s: negative size (B=%d T=%d C=%d pos0=%d)", op, B, T, C, pos0);
    (void)tokens;
    return GV_OK;
}

gv_status gv_cpu_embedding_forward(gv_backend *b, void *out_, const int32_t *tokens, const void *wte_,
                                   const void *wpe_, int B, int T, int C, int pos0) {
    (void)b;
    GV_TRY(emb_check("embedding_forward", tokens, B, T, C, pos0));
    float *out = out_;       /* [B*T, C] */
    const float *wte = wte_; /* [V, C] */
    const float *wpe = wpe_; /* [pos0 + T, C] or NULL */
    /* tokens: [B*T] */
    long N = (long)B * T;
#pragma omp parallel for if (N * C > GV_CPU_PAR_MIN)
    for (long n = 0; n < N; n++) {
        float *o = out + n * C;
        if (tokens[n] >= 0)
            memcpy(o, wte + (long)tokens[n] * C, (size_t)C * sizeof(float));
        else
            memset(o, 0, (size_t)C * sizeof(float));
        if (wpe) {
            const float *p = wpe + (long)(pos0 + n % T) * C;
            for (int c = 0; c < C; c++) o[c] += p[c];
        }
    }
    return GV_OK;
}

gv_status gv_cpu_embedding_backward(gv_backend *b, void *dwte_, void *dwpe_, const void *dout_,
                                    const int32_t *tokens, int B, int T, int C, int pos0) {
    (void)b;
    GV_TRY(emb_check("embedding_backward", tokens, B, T, C, pos0));
    float *dwte = dwte_;       /* [V, C] or NULL */
    float *dwpe = dwpe_;       /* [pos0 + T, C] or NULL */
    const float *dout = dout_; /* [B*T, C] */
    /* tokens: [B*T] */
    long N = (long)B * T;
    int nblk = (C + EMB_CBLOCK - 1) / EMB_CBLOCK;
    /* Rows repeat (same token, same position across the batch), so parallelise over channel blocks. */
#pragma omp parallel for if (N * C > GV_CPU_PAR_MIN)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * EMB_CBLOCK, c1 = c0 + EMB_CBLOCK < C ? c0 + EMB_CBLOCK : C;
        for (long n = 0; n < N; n++) {
            const float *d = dout + n * C;
            if (dwte && tokens[n] >= 0) {
                float *g = dwte + (long)tokens[n] * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (long)(pos0 + n % T) * C;
                for (int c = c0; c < c1; c++) g[c] += d[c];
            }
        }
    }
    return GV_OK;
}
