/* Scaled dot-product attention over packed qkv, materialising the probabilities P[B,H,T,T] (the stash).
 * Row (b,t) of qkv holds H query heads, then KVH key heads, then KVH value heads, each D wide; query head h
 * reads key/value head h / (H/KVH) (grouped-query attention). A key t' is visible to query t when
 * (!causal || t' <= t) and (mask == NULL || mask[b,t'] != 0); invisible keys get probability exactly 0, and
 * a query that sees no key at all gets a zero probability row and a zero output. */
#include "cpu-ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static gv_status attn_check(const char *op, int B, int T, int H, int KVH, int D) {
    if (B < 0 || T < 0 || H <= 0 || KVH <= 0 || D <= 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape B=%d T=%d H=%d KVH=%d D=%d", op, B, T, H, KVH, D);
    if (H % KVH != 0)
        return gv_fail(GV_ERR_INVALID, "%s: H=%d query heads not divisible by KVH=%d kv heads", op, H, KVH);
    return GV_OK;
}

static inline int attn_visible(const int32_t *mask_b, int causal, int t, int t2) {
    return (!causal || t2 <= t) && (!mask_b || mask_b[t2] != 0);
}

size_t gv_cpu_attention_stash_bytes(gv_backend *b, int B, int T, int H) {
    (void)b;
    if (B <= 0 || T <= 0 || H <= 0) return 0;
    return (size_t)B * H * T * T * sizeof(float);
}

gv_status gv_cpu_attention_forward(gv_backend *b, void *out_, float *stash, const void *qkv_,
                                   const int32_t *mask, int B, int T, int H, int KVH, int D, int causal) {
    (void)b;
    GV_TRY(attn_check("attention_forward", B, T, H, KVH, D));
    float *out = out_;       /* [B, T, H*D] */
    const float *qkv = qkv_; /* [B, T, (H + 2*KVH)*D] */
    /* mask: [B, T] or NULL; stash: P [B, H, T, T] (or NULL: a temporary is used) */
    if (B == 0 || T == 0) return GV_OK;
    float *P = stash;
    if (!P) {
        P = malloc(gv_cpu_attention_stash_bytes(b, B, T, H));
        if (!P) return gv_fail(GV_ERR_NOMEM, "attention_forward: out of memory for probabilities");
    }
    const long R = (long)(H + 2 * KVH) * D; /* qkv row stride */
    const int G = H / KVH;                  /* query heads per kv head */
    const float scale = 1.0f / sqrtf((float)D);
    const long rows = (long)B * H * T;
#pragma omp parallel for if (rows * T * D > GV_CPU_PAR_MIN)
    for (long idx = 0; idx < rows; idx++) {
        int t = (int)(idx % T), h = (int)(idx / T % H), bb = (int)(idx / ((long)T * H));
        int kh = h / G;
        const int32_t *mb = mask ? mask + (long)bb * T : NULL;
        const float *q = qkv + ((long)bb * T + t) * R + (long)h * D; /* [D] */
        float *p = P + idx * T;                                      /* [T] */
        float *o = out + ((long)bb * T + t) * H * D + (long)h * D;   /* [D] */
        float mx = -INFINITY;
        int nvis = 0;
        for (int t2 = 0; t2 < T; t2++) {
            p[t2] = 0.0f;
            if (!attn_visible(mb, causal, t, t2)) continue;
            nvis++;
            const float *k = qkv + ((long)bb * T + t2) * R + (long)(H + kh) * D; /* [D] */
            float s = 0.0f;
            for (int d = 0; d < D; d++) s += q[d] * k[d];
            s *= scale;
            p[t2] = s;
            if (s > mx) mx = s;
        }
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        if (nvis == 0) continue; /* no visible key: zero probabilities, zero output */
        double sum = 0.0;
        for (int t2 = 0; t2 < T; t2++) {
            if (!attn_visible(mb, causal, t, t2)) continue;
            p[t2] = expf(p[t2] - mx);
            sum += p[t2];
        }
        float inv = (float)(1.0 / sum);
        for (int t2 = 0; t2 < T; t2++) {
            if (!attn_visible(mb, causal, t, t2)) continue;
            p[t2] *= inv;
            const float *v = qkv + ((long)bb * T + t2) * R + (long)(H + KVH + kh) * D; /* [D] */
            for (int d = 0; d < D; d++) o[d] += p[t2] * v[d];
        }
    }
    if (P != stash) free(P);
    return GV_OK;
}

gv_status gv_cpu_attention_backward(gv_backend *b, void *dqkv_, const void *dout_, const void *qkv_,
                                    const void *out_, const float *stash, const int32_t *mask, int B, int T,
                                    int H, int KVH, int D, int causal) {
    (void)b;
    (void)out_; /* the probabilities in the stash are all the cpu backward needs */
    GV_TRY(attn_check("attention_backward", B, T, H, KVH, D));
    if (!stash) return gv_fail(GV_ERR_INVALID, "attention_backward: the stash from the forward is required");
    float *dqkv = dqkv_;       /* [B, T, (H + 2*KVH)*D] */
    const float *dout = dout_; /* [B, T, H*D] */
    const float *qkv = qkv_;   /* [B, T, (H + 2*KVH)*D] */
    const float *P = stash;    /* [B, H, T, T] */
    /* mask: [B, T] or NULL */
    if (B == 0 || T == 0) return GV_OK;
    float *dS = malloc(gv_cpu_attention_stash_bytes(b, B, T, H)); /* [B, H, T, T] score gradients */
    if (!dS) return gv_fail(GV_ERR_NOMEM, "attention_backward: out of memory for score gradients");
    const long R = (long)(H + 2 * KVH) * D;
    const int G = H / KVH;
    const float scale = 1.0f / sqrtf((float)D);
    const long rows = (long)B * H * T;
    const int par = rows * T * D > GV_CPU_PAR_MIN;

    /* Pass 1, per query row (b,h,t): dP[t'] = dO . v[t'];  dS = P * (dP - sum(P * dP));
     * dq += scale * sum_t' dS[t'] k[t']. */
#pragma omp parallel for if (par)
    for (long idx = 0; idx < rows; idx++) {
        int t = (int)(idx % T), h = (int)(idx / T % H), bb = (int)(idx / ((long)T * H));
        int kh = h / G;
        const int32_t *mb = mask ? mask + (long)bb * T : NULL;
        const float *p = P + idx * T;                                      /* [T] */
        float *ds = dS + idx * T;                                          /* [T] */
        const float *dO = dout + ((long)bb * T + t) * H * D + (long)h * D; /* [D] */
        float *dq = dqkv + ((long)bb * T + t) * R + (long)h * D;           /* [D] */
        double psum = 0.0;
        for (int t2 = 0; t2 < T; t2++) {
            ds[t2] = 0.0f;
            if (!attn_visible(mb, causal, t, t2) || p[t2] == 0.0f) continue;
            const float *v = qkv + ((long)bb * T + t2) * R + (long)(H + KVH + kh) * D; /* [D] */
            float dp = 0.0f;
            for (int d = 0; d < D; d++) dp += dO[d] * v[d];
            ds[t2] = dp;
            psum += (double)p[t2] * dp;
        }
        float acc[D];
        for (int d = 0; d < D; d++) acc[d] = 0.0f;
        for (int t2 = 0; t2 < T; t2++) {
            if (p[t2] == 0.0f) continue; /* invisible key: dS stays 0 */
            ds[t2] = p[t2] * (ds[t2] - (float)psum);
            const float *k = qkv + ((long)bb * T + t2) * R + (long)(H + kh) * D; /* [D] */
            for (int d = 0; d < D; d++) acc[d] += ds[t2] * k[d];
        }
        for (int d = 0; d < D; d++) dq[d] += scale * acc[d];
    }

    /* Pass 2, per key row (b,kh,t'): dk[t'] += scale * sum_{h in group, t} dS[t,t'] q[t];
     * dv[t'] += sum_{h in group, t} P[t,t'] dO[t]. Each iteration owns its dk and dv rows. */
    const long krows = (long)B * KVH * T;
#pragma omp parallel for if (par)
    for (long idx = 0; idx < krows; idx++) {
        int t2 = (int)(idx % T), kh = (int)(idx / T % KVH), bb = (int)(idx / ((long)T * KVH));
        float *dk = dqkv + ((long)bb * T + t2) * R + (long)(H + kh) * D;       /* [D] */
        float *dv = dqkv + ((long)bb * T + t2) * R + (long)(H + KVH + kh) * D; /* [D] */
        float ak[D], av[D];
        for (int d = 0; d < D; d++) ak[d] = av[d] = 0.0f;
        for (int h = kh * G; h < (kh + 1) * G; h++) {
            for (int t = causal ? t2 : 0; t < T; t++) {
                long prow = (((long)bb * H + h) * T + t) * T;
                float p = P[prow + t2], ds = dS[prow + t2];
                if (p == 0.0f && ds == 0.0f) continue;
                const float *q = qkv + ((long)bb * T + t) * R + (long)h * D;       /* [D] */
                const float *dO = dout + ((long)bb * T + t) * H * D + (long)h * D; /* [D] */
                for (int d = 0; d < D; d++) {
                    ak[d] += ds * q[d];
                    av[d] += p * dO[d];
                }
            }
        }
        for (int d = 0; d < D; d++) {
            dk[d] += scale * ak[d];
            dv[d] += av[d];
        }
    }
    free(dS);
    return GV_OK;
}
