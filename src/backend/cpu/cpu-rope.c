/* Rotary position embedding, Llama / Hugging Face "rotate_half" convention, on the q and k heads of packed
 * qkv rows; v heads pass through. For each head the pair (x[i], x[i + D/2]), i < D/2, is rotated by
 * angle = pos * freq_i, freq_i = theta^(-2i/D), pos = pos0 + t:
 *   out[i] = x[i] cos - x[i+D/2] sin,   out[i+D/2] = x[i+D/2] cos + x[i] sin.
 * Frequencies and angles are computed in float the way HF does (inv_freq = 1 / theta^(2i/D) in fp32,
 * angle = float(pos) * inv_freq), so cos/sin tables match the reference model. */
#include "cpu-ops.h"

#include <math.h>
#include <stdlib.h>

static gv_status rope_check(const char *op, int B, int T, int H, int KVH, int D, float theta, int pos0) {
    if (B < 0 || T < 0 || H < 0 || KVH < 0 || D <= 0 || pos0 < 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape B=%d T=%d H=%d KVH=%d D=%d pos0=%d", op, B, T, H, KVH,
                       D, pos0);
    if (D % 2 != 0) return gv_fail(GV_ERR_INVALID, "%s: head size D=%d must be even", op, D);
    if (!(theta > 0.0f)) return gv_fail(GV_ERR_INVALID, "%s: theta=%g must be positive", op, (double)theta);
    return GV_OK;
}

/* cs[T, D/2, 2]: cos and sin of the rotation angle for row t and pair i. Caller frees. */
static float *rope_table(int T, int D, float theta, int pos0) {
    int half = D / 2;
    float *cs = malloc((size_t)(T > 0 ? T : 1) * half * 2 * sizeof(float));
    if (!cs) return NULL;
    for (int i = 0; i < half; i++) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        for (int t = 0; t < T; t++) {
            float ang = (float)(pos0 + t) * inv_freq;
            cs[((long)t * half + i) * 2 + 0] = cosf(ang);
            cs[((long)t * half + i) * 2 + 1] = sinf(ang);
        }
    }
    return cs;
}

/* dir = +1 rotates by +angle and overwrites dst (forward); dir = -1 rotates by -angle and accumulates
 * into dst (backward: the transpose of a rotation is the rotation by the opposite angle). */
static gv_status rope_apply(const char *op, float *dst, const float *src, int B, int T, int H, int KVH, int D,
                            float theta, int pos0, int dir) {
    GV_TRY(rope_check(op, B, T, H, KVH, D, theta, pos0));
    if (B == 0 || T == 0) return GV_OK;
    float *cs = rope_table(T, D, theta, pos0);
    if (!cs) return gv_fail(GV_ERR_NOMEM, "%s: out of memory for the cos/sin table", op);
    const int half = D / 2, nrot = H + KVH, nall = H + 2 * KVH;
    const long R = (long)nall * D;
    const long N = (long)B * T;
    const float sgn = (float)dir;
#pragma omp parallel for if (N * R > GV_CPU_PAR_MIN)
    for (long n = 0; n < N; n++) {
        int t = (int)(n % T);
        const float *c = cs + (long)t * half * 2; /* [D/2, 2] */
        const float *x = src + n * R;             /* [(H + 2*KVH)*D] */
        float *y = dst + n * R;                   /* [(H + 2*KVH)*D] */
        for (int hh = 0; hh < nrot; hh++) {
            const float *xh = x + (long)hh * D; /* [D] */
            float *yh = y + (long)hh * D;       /* [D] */
            for (int i = 0; i < half; i++) {
                float co = c[2 * i], si = sgn * c[2 * i + 1];
                float x1 = xh[i], x2 = xh[i + half];
                float y1 = x1 * co - x2 * si, y2 = x2 * co + x1 * si;
                if (dir > 0) {
                    yh[i] = y1;
                    yh[i + half] = y2;
                } else {
                    yh[i] += y1;
                    yh[i + half] += y2;
                }
            }
        }
        for (long j = (long)nrot * D; j < R; j++) { /* v heads */
            if (dir > 0)
                y[j] = x[j];
            else
                y[j] += x[j];
        }
    }
    free(cs);
    return GV_OK;
}

gv_status gv_cpu_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                              float theta, int pos0) {
    (void)b;
    /* out, inp: [B, T, (H + 2*KVH)*D], must not alias */
    return rope_apply("rope_forward", out, inp, B, T, H, KVH, D, theta, pos0, +1);
}

gv_status gv_cpu_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH,
                               int D, float theta, int pos0) {
    (void)b;
    /* dinp (accumulated), dout: [B, T, (H + 2*KVH)*D] */
    return rope_apply("rope_backward", dinp, dout, B, T, H, KVH, D, theta, pos0, -1);
}
