/* General attention (T5): separate q, k, v with row strides, Tq queries over Tk keys, an additive F32 bias
 * [Tq, Tk, H] shared over the batch, a given scale, optional causality; the probabilities P [B, H, Tq, Tk]
 * are the stash. Query head h reads kv head h / (H/KVH). Backward accumulates. */
#include "cpu-ops.h"

#include <math.h>
#include <stdlib.h>

size_t gv_cpu_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a) {
    (void)b;
    return (size_t)a->B * a->H * a->Tq * a->Tk * sizeof(float);
}

gv_status gv_cpu_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out_, float *stash,
                                       const void *q_, const void *k_, const void *v_, const float *bias) {
    (void)b;
    const int B = a->B, Tq = a->Tq, Tk = a->Tk, H = a->H, D = a->D, G = a->H / a->KVH;
    const float *qa = q_, *ka = k_, *va = v_; /* [B, Tq, ldq], [B, Tk, ldk], [B, Tk, ldv] */
    float *out = out_;                        /* [B, Tq, H*D] */
    float *P = stash;                         /* [B, H, Tq, Tk] */
    const long rows = (long)B * H * Tq;
#pragma omp parallel for if (rows * Tk * D > GV_CPU_PAR_MIN)
    for (long idx = 0; idx < rows; idx++) {
        int i = (int)(idx % Tq), h = (int)(idx / Tq % H), bb = (int)(idx / ((long)Tq * H)), g = h / G;
        const float *q = qa + ((long)bb * Tq + i) * a->ldq + (long)h * D; /* [D] */
        float *p = P + idx * Tk;                                          /* [Tk] */
        float *o = out + ((long)bb * Tq + i) * H * D + (long)h * D;       /* [D] */
        int nk = a->causal ? i + 1 : Tk;                                  /* visible keys: [0, nk) */
        float mx = -INFINITY;
        for (int j = 0; j < nk; j++) {
            const float *k = ka + ((long)bb * Tk + j) * a->ldk + (long)g * D; /* [D] */
            float s = 0.0f;
            for (int d = 0; d < D; d++) s += q[d] * k[d];
            s = s * a->scale + (bias ? bias[((long)i * Tk + j) * H + h] : 0.0f);
            p[j] = s;
            if (s > mx) mx = s;
        }
        double sum = 0.0;
        for (int j = 0; j < nk; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        for (int j = nk; j < Tk; j++) p[j] = 0.0f;
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < nk; j++) {
            p[j] *= inv;
            const float *v = va + ((long)bb * Tk + j) * a->ldv + (long)g * D; /* [D] */
            for (int d = 0; d < D; d++) o[d] += p[j] * v[d];
        }
    }
    return GV_OK;
}

gv_status gv_cpu_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq_, void *dk_, void *dv_,
                                        float *dbias, const void *dout_, const void *q_, const void *k_,
                                        const void *v_, const float *stash) {
    (void)b;
    const int B = a->B, Tq = a->Tq, Tk = a->Tk, H = a->H, D = a->D, KVH = a->KVH, G = a->H / a->KVH;
    const float *qa = q_, *ka = k_, *va = v_, *dout = dout_; /* like forward; dout [B, Tq, H*D] */
    float *dqa = dq_, *dka = dk_, *dva = dv_;                /* like q, k, v */
    const float *P = stash;                                  /* [B, H, Tq, Tk] */
    int nomem = 0;
    /* One (b, kv head) per iteration: it owns its dk / dv rows; the bias gradient is shared over the batch,
     * so with dbias everything runs serially. */
    const long units = (long)B * KVH;
#pragma omp parallel for if (units > 1 && (long)units * G * Tq * Tk * D > GV_CPU_PAR_MIN && !dbias)
    for (long u = 0; u < units; u++) {
        int bb = (int)(u / KVH), g = (int)(u % KVH);
        float *ds = malloc((size_t)Tk * sizeof(float) + 1); /* [Tk]: dP of one row */
        if (!ds) {
            nomem = 1;
            continue;
        }
        for (int h = g * G; h < (g + 1) * G; h++)
            for (int i = 0; i < Tq; i++) {
                const float *p = P + (((long)bb * H + h) * Tq + i) * Tk;          /* [Tk] */
                const float *q = qa + ((long)bb * Tq + i) * a->ldq + (long)h * D; /* [D] */
                const float *dy = dout + ((long)bb * Tq + i) * H * D + (long)h * D;
                int nk = a->causal ? i + 1 : Tk;
                double dot = 0.0; /* sum_j P_ij dP_ij */
                for (int j = 0; j < nk; j++) {
                    const float *v = va + ((long)bb * Tk + j) * a->ldv + (long)g * D;
                    float dp = 0.0f;
                    for (int d = 0; d < D; d++) dp += dy[d] * v[d];
                    ds[j] = dp;
                    dot += (double)p[j] * dp;
                    if (dva) {
                        float *dv = dva + ((long)bb * Tk + j) * a->ldv + (long)g * D;
                        for (int d = 0; d < D; d++) dv[d] += p[j] * dy[d];
                    }
                }
                for (int j = 0; j < nk; j++) {
                    float s = p[j] * (ds[j] - (float)dot); /* d score */
                    if (dbias) dbias[((long)i * Tk + j) * H + h] += s;
                    s *= a->scale;
                    const float *k = ka + ((long)bb * Tk + j) * a->ldk + (long)g * D;
                    if (dqa) {
                        float *dq = dqa + ((long)bb * Tq + i) * a->ldq + (long)h * D;
                        for (int d = 0; d < D; d++) dq[d] += s * k[d];
                    }
                    if (dka) {
                        float *dk = dka + ((long)bb * Tk + j) * a->ldk + (long)g * D;
                        for (int d = 0; d < D; d++) dk[d] += s * q[d];
                    }
                }
            }
        free(ds);
    }
    return nomem ? gv_fail(GV_ERR_NOMEM, "attention_ext_backward: out of memory") : GV_OK;
}
