/* Rotary position embedding, Llama / Hugging Face "rotate_half" convention, on the q and k heads of packed
 * qkv rows [B, T, (H + 2*KVH)*D]; v heads pass through. Pair (x[i], x[i + D/2]), i < D/2, rotates by
 * angle = float(pos0 + t) * inv_freq_i, inv_freq_i = 1 / theta^(2i/D), all in fp32 as HF (and cpu-rope.c) do.
 * One block per row: the cos/sin table of the row goes to shared memory, then every head uses it. */
#include "cuda-common.cuh"

/* ---- kernels ----------------------------------------------------------------------------------------- */

/* dir > 0: out = rotate(inp, +angle) (forward, overwrite). dir < 0: out += rotate(inp, -angle) (backward). */
template <int DIR>
__global__ void rope_kernel(bf16 *out, const bf16 *inp, int T, int H, int KVH, int D, float theta, int pos0) {
    extern __shared__ float cs[]; /* [half] cos, then [half] sin */
    const int half = D / 2, nrot = H + KVH;
    const size_t n = blockIdx.x;
    const int t = (int)(n % (size_t)T);
    const size_t R = (size_t)(H + 2 * KVH) * D;
    float *co = cs, *si = cs + half;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)D);
        float ang = (float)(pos0 + t) * inv_freq;
        co[i] = cosf(ang);
        si[i] = sinf(ang);
    }
    __syncthreads();
    const bf16 *x = inp + n * R;
    bf16 *y = out + n * R;
    const int npairs = nrot * half;
    for (int p = threadIdx.x; p < npairs; p += blockDim.x) {
        int h = p / half, i = p - h * half;
        size_t o1 = (size_t)h * D + i, o2 = o1 + half;
        float x1 = gv_bf(x[o1]), x2 = gv_bf(x[o2]);
        float c = co[i], s = DIR > 0 ? si[i] : -si[i];
        float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
        if (DIR > 0) {
            y[o1] = gv_tobf(y1);
            y[o2] = gv_tobf(y2);
        } else {
            y[o1] = gv_tobf(gv_bf(y[o1]) + y1);
            y[o2] = gv_tobf(gv_bf(y[o2]) + y2);
        }
    }
    for (size_t j = (size_t)nrot * D + threadIdx.x; j < R; j += blockDim.x) { /* v heads */
        if (DIR > 0)
            y[j] = x[j];
        else
            y[j] = gv_tobf(gv_bf(y[j]) + gv_bf(x[j]));
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

static gv_status rope_check(const char *op, int B, int T, int H, int KVH, int D, float theta, int pos0) {
    if (B < 0 || T < 0 || H < 0 || KVH < 0 || D <= 0 || pos0 < 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape B=%d T=%d H=%d KVH=%d D=%d pos0=%d", op, B, T, H, KVH,
                       D, pos0);
    if (D % 2 != 0) return gv_fail(GV_ERR_INVALID, "%s: head size D=%d must be even", op, D);
    if (!(theta > 0.0f)) return gv_fail(GV_ERR_INVALID, "%s: theta=%g must be positive", op, (double)theta);
    if ((size_t)D * sizeof(float) > 48 * 1024)
        return gv_fail(GV_ERR_UNSUPPORTED, "%s: D=%d too large", op, D);
    return GV_OK;
}

gv_status gv_cuda_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                               float theta, int pos0) {
    GV_TRY(rope_check("rope_forward", B, T, H, KVH, D, theta, pos0));
    size_t rows = (size_t)B * T;
    if (rows == 0) return GV_OK;
    rope_kernel<1><<<(unsigned)rows, 128, D * sizeof(float), gv_cuda(b)->stream>>>(
        (bf16 *)out, (const bf16 *)inp, T, H, KVH, D, theta, pos0);
    GV_CUDA_LAUNCHED("rope_forward");
    return GV_OK;
}

gv_status gv_cuda_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH,
                                int D, float theta, int pos0) {
    GV_TRY(rope_check("rope_backward", B, T, H, KVH, D, theta, pos0));
    size_t rows = (size_t)B * T;
    if (rows == 0) return GV_OK;
    rope_kernel<-1><<<(unsigned)rows, 128, D * sizeof(float), gv_cuda(b)->stream>>>(
        (bf16 *)dinp, (const bf16 *)dout, T, H, KVH, D, theta, pos0);
    GV_CUDA_LAUNCHED("rope_backward");
    return GV_OK;
}
