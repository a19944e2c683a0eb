/* General attention (T5: cross-attention, relative position bias, unscaled scores) on bf16 q/k/v with row
 * strides; fp32 arithmetic. A straightforward implementation that materialises the probabilities P
 * [B, H, Tq, Tk] (F32, the stash; then delta [B, H, Tq] = sum_j P dP per query row, written by backward):
 *   forward:    one block per query row (b, h, i): scores, softmax, P, output;
 *   backward 1: one block per query row: dP = dout . v, delta, dS = P (dP - delta) in shared memory, dbias
 *               (atomic over the batch), dq;
 *   backward 2: one block per key row (b, g, j): dk = scale sum_{h in g, i} dS_ij q_i, dv = sum P_ij dout_i.
 * Every output row is written by one block (no atomics on bf16). Shared memory: Tk floats (backward 1),
 * 2 Tq floats (backward 2). */
#include "cuda-common.cuh"

#define ATT_THREADS 128

/* Block-wide reduction of one float (op 0: sum, 1: max); every thread gets the result. */
__device__ float att_block_reduce(float x, int op) {
    __shared__ float red[ATT_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) {
        float y = __shfl_xor_sync(0xffffffffu, x, o);
        x = op ? fmaxf(x, y) : x + y;
    }
    int w = threadIdx.x / 32, l = threadIdx.x % 32;
    __syncthreads();
    if (l == 0) red[w] = x;
    __syncthreads();
    x = red[0];
    for (int k = 1; k < ATT_THREADS / 32; k++) x = op ? fmaxf(x, red[k]) : x + red[k];
    return x;
}

__global__ void att_ext_forward_kernel(gv_attn_ext a, bf16 *out, float *P, const bf16 *qa, const bf16 *ka,
                                       const bf16 *va, const float *bias) {
    long idx = blockIdx.x; /* (b, h, i) */
    int i = (int)(idx % a.Tq), h = (int)(idx / a.Tq % a.H), b = (int)(idx / ((long)a.Tq * a.H));
    int g = h / (a.H / a.KVH), D = a.D, Tk = a.Tk, nk = a.causal ? i + 1 : Tk;
    const bf16 *q = qa + ((long)b * a.Tq + i) * a.ldq + (long)h * D;
    float *p = P + idx * Tk;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) {
        if (j >= nk) {
            p[j] = 0.0f;
            continue;
        }
        const bf16 *k = ka + ((long)b * Tk + j) * a.ldk + (long)g * D;
        float s = 0.0f;
        for (int d = 0; d < D; d++) s += gv_bf(q[d]) * gv_bf(k[d]);
        s = s * a.scale + (bias ? bias[((long)i * Tk + j) * a.H + h] : 0.0f);
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = att_block_reduce(mx, 1);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        float e = expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    float inv = 1.0f / att_block_reduce(sum, 0);
    for (int j = threadIdx.x; j < nk; j += blockDim.x) p[j] *= inv;
    __syncthreads();
    bf16 *o = out + ((long)b * a.Tq + i) * a.H * D + (long)h * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < nk; j++) acc += p[j] * gv_bf(va[((long)b * Tk + j) * a.ldv + (long)g * D + d]);
        o[d] = gv_tobf(acc);
    }
}

__global__ void att_ext_backward_q_kernel(gv_attn_ext a, bf16 *dqa, float *dbias, float *delta,
                                          const bf16 *dout, const bf16 *ka, const bf16 *va, const float *P) {
    extern __shared__ float ds[]; /* [Tk] */
    long idx = blockIdx.x;        /* (b, h, i) */
    int i = (int)(idx % a.Tq), h = (int)(idx / a.Tq % a.H), b = (int)(idx / ((long)a.Tq * a.H));
    int g = h / (a.H / a.KVH), D = a.D, Tk = a.Tk, nk = a.causal ? i + 1 : Tk;
    const bf16 *dy = dout + ((long)b * a.Tq + i) * a.H * D + (long)h * D;
    const float *p = P + idx * Tk;
    float dot = 0.0f;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        const bf16 *v = va + ((long)b * Tk + j) * a.ldv + (long)g * D;
        float dp = 0.0f;
        for (int d = 0; d < D; d++) dp += gv_bf(dy[d]) * gv_bf(v[d]);
        ds[j] = dp;
        dot += p[j] * dp;
    }
    dot = att_block_reduce(dot, 0);
    if (threadIdx.x == 0) delta[idx] = dot;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        float s = p[j] * (ds[j] - dot);
        ds[j] = s;
        if (dbias) atomicAdd(&dbias[((long)i * Tk + j) * a.H + h], s);
    }
    __syncthreads();
    if (!dqa) return;
    bf16 *dq = dqa + ((long)b * a.Tq + i) * a.ldq + (long)h * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < nk; j++) acc += ds[j] * gv_bf(ka[((long)b * Tk + j) * a.ldk + (long)g * D + d]);
        dq[d] = gv_tobf(gv_bf(dq[d]) + a.scale * acc);
    }
}

__global__ void att_ext_backward_kv_kernel(gv_attn_ext a, bf16 *dka, bf16 *dva, const bf16 *dout,
                                           const bf16 *qa, const bf16 *va, const float *P,
                                           const float *delta) {
    extern __shared__ float sm[]; /* [2 Tq]: dS and P of one head's column j */
    float *s_ds = sm, *s_p = sm + a.Tq;
    long idx = blockIdx.x; /* (b, g, j) */
    int j = (int)(idx % a.Tk), g = (int)(idx / a.Tk % a.KVH), b = (int)(idx / ((long)a.Tk * a.KVH));
    int G = a.H / a.KVH, D = a.D, Tq = a.Tq, Tk = a.Tk, i0 = a.causal ? j : 0;
    const bf16 *v = va + ((long)b * Tk + j) * a.ldv + (long)g * D;
    float accK[4] = {0, 0, 0, 0}, accV[4] = {0, 0, 0, 0}; /* d = threadIdx.x + 128 r, D <= 512 */
    for (int h = g * G; h < (g + 1) * G; h++) {
        __syncthreads();
        for (int i = i0 + threadIdx.x; i < Tq; i += blockDim.x) {
            long row = ((long)b * a.H + h) * Tq + i;
            const bf16 *dy = dout + ((long)b * Tq + i) * a.H * D + (long)h * D;
            float dp = 0.0f;
            for (int d = 0; d < D; d++) dp += gv_bf(dy[d]) * gv_bf(v[d]);
            float pij = P[row * Tk + j];
            s_p[i] = pij;
            s_ds[i] = pij * (dp - delta[row]);
        }
        __syncthreads();
        for (int r = 0; r < 4; r++) {
            int d = threadIdx.x + r * blockDim.x;
            if (d >= D) break;
            for (int i = i0; i < Tq; i++) {
                accK[r] += s_ds[i] * gv_bf(qa[((long)b * Tq + i) * a.ldq + (long)h * D + d]);
                accV[r] += s_p[i] * gv_bf(dout[((long)b * Tq + i) * a.H * D + (long)h * D + d]);
            }
        }
    }
    for (int r = 0; r < 4; r++) {
        int d = threadIdx.x + r * blockDim.x;
        if (d >= D) break;
        if (dka) {
            bf16 *dk = dka + ((long)b * Tk + j) * a.ldk + (long)g * D + d;
            *dk = gv_tobf(gv_bf(*dk) + a.scale * accK[r]);
        }
        if (dva) {
            bf16 *dv = dva + ((long)b * Tk + j) * a.ldv + (long)g * D + d;
            *dv = gv_tobf(gv_bf(*dv) + accV[r]);
        }
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

size_t gv_cuda_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a) {
    (void)b;
    return ((size_t)a->B * a->H * a->Tq * a->Tk + (size_t)a->B * a->H * a->Tq) * sizeof(float);
}

static gv_status att_ext_limits(const char *op, const gv_attn_ext *a) {
    if (a->D > 4 * ATT_THREADS)
        return gv_fail(GV_ERR_UNSUPPORTED, "%s: head size %d above %d", op, a->D, 4 * ATT_THREADS);
    if ((size_t)a->Tk * 4 > 48 * 1024 || (size_t)a->Tq * 8 > 48 * 1024)
        return gv_fail(GV_ERR_UNSUPPORTED, "%s: sequence lengths Tq %d / Tk %d above the shared-memory limit",
                       op, a->Tq, a->Tk);
    return GV_OK;
}

gv_status gv_cuda_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out, float *stash,
                                        const void *q, const void *k, const void *v, const float *bias) {
    GV_TRY(att_ext_limits("attention_ext_forward", a));
    long rows = (long)a->B * a->H * a->Tq;
    if (rows == 0 || a->Tk == 0) return GV_OK;
    att_ext_forward_kernel<<<(unsigned)rows, ATT_THREADS, 0, gv_cuda(b)->stream>>>(
        *a, (bf16 *)out, stash, (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, bias);
    GV_CUDA_LAUNCHED("attention_ext_forward");
    return GV_OK;
}

gv_status gv_cuda_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq, void *dk, void *dv,
                                         float *dbias, const void *dout, const void *q, const void *k,
                                         const void *v, const float *stash) {
    GV_TRY(att_ext_limits("attention_ext_backward", a));
    long rows = (long)a->B * a->H * a->Tq, krows = (long)a->B * a->KVH * a->Tk;
    if (rows == 0 || krows == 0) return GV_OK;
    cudaStream_t s = gv_cuda(b)->stream;
    float *delta = (float *)stash + (size_t)rows * a->Tk; /* [B, H, Tq] after P */
    att_ext_backward_q_kernel<<<(unsigned)rows, ATT_THREADS, (size_t)a->Tk * 4, s>>>(
        *a, (bf16 *)dq, dbias, delta, (const bf16 *)dout, (const bf16 *)k, (const bf16 *)v, stash);
    GV_CUDA_LAUNCHED("attention_ext_backward_q");
    if (!dk && !dv) return GV_OK;
    att_ext_backward_kv_kernel<<<(unsigned)krows, ATT_THREADS, (size_t)a->Tq * 8, s>>>(
        *a, (bf16 *)dk, (bf16 *)dv, (const bf16 *)dout, (const bf16 *)q, (const bf16 *)v, stash, delta);
    GV_CUDA_LAUNCHED("attention_ext_backward_kv");
    return GV_OK;
}
