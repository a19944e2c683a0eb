/* Fused softmax cross-entropy over the first V of Vp logit columns, one block per row. Forward writes the
 * per-row loss; backward recomputes the row's log-sum-exp from the bf16 logits and writes
 * dlogits += (softmax - onehot) * dloss without any fp32 copy of the logits. Rows whose target is
 * ignore_index get loss 0 and no gradient; columns >= V are never touched. The vocab-parallel variants
 * (shard_stats, shard_backward) work on a shard of global columns [v0, v0 + V).
 * dlogits may alias logits: the gradient then replaces the logits (each element is read before its thread
 * writes it; rows with ignore_index and padding columns become 0), the usual in-place trick that saves a
 * [N, Vp] buffer. */
#include "cuda-common.cuh"

#include <cuda_fp16.h>

#include <stdlib.h>
#include <string.h>

#define CE_THREADS 512
#define CE1_THREADS 512

/* ---- kernels ----------------------------------------------------------------------------------------- */

/* Online (max, sum of exp) merge. */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float M = fmaxf(m, m2);
    if (M == -INFINITY) return; /* both empty */
    s = s * expf(m - M) + s2 * expf(m2 - M);
    m = M;
}

/* Log-sum-exp of x[0:V] over the block; every thread gets it. */
template <int VEC> __device__ float row_lse(const bf16 *x, int V) {
    __shared__ float shm[32], shs[32];
    float m = -INFINITY, s = 0.0f;
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        float a[VEC];
        if (c + VEC <= V) {
            gv_load_bf<VEC>(a, x + c);
        } else {
#pragma unroll
            for (int k = 0; k < VEC; k++) a[k] = c + k < V ? gv_bf(x[c + k]) : -INFINITY;
        }
        float cm = a[0];
#pragma unroll
        for (int k = 1; k < VEC; k++) cm = fmaxf(cm, a[k]);
        float cs = 0.0f;
#pragma unroll
        for (int k = 0; k < VEC; k++) cs += expf(a[k] - cm);
        lse_merge(m, s, cm, cs);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        shm[warp] = m;
        shs[warp] = s;
    }
    __syncthreads();
    m = lane < nw ? shm[lane] : -INFINITY;
    s = lane < nw ? shs[lane] : 0.0f;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    return m + logf(s);
}

template <int VEC>
__global__ void crossentropy_forward_kernel(float *losses, const bf16 *logits, const int32_t *targets, int V,
                                            int Vp, int ignore_index) {
    const size_t n = blockIdx.x;
    const int tg = targets[n];
    if (tg == ignore_index) {
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const bf16 *x = logits + n * Vp;
    float lse = row_lse<VEC>(x, V);
    if (threadIdx.x == 0) losses[n] = lse - (tg >= 0 && tg < V ? gv_bf(x[tg]) : 0.0f);
}

/* Per-row stats of a vocab shard (global columns [v0, v0 + V)): lse of the shard's row, target logit if the
 * target is in the shard (else 0; 0 for ignored rows). */
template <int VEC>
__global__ void crossentropy_shard_stats_kernel(float *lse, float *tlogit, const bf16 *logits,
                                                const int32_t *targets, int V, int Vp, int v0,
                                                int ignore_index) {
    const size_t n = blockIdx.x;
    const int tg = targets[n], j = tg - v0;
    const bf16 *x = logits + n * Vp;
    float l = row_lse<VEC>(x, V);
    if (threadIdx.x == 0) {
        lse[n] = l;
        tlogit[n] = tg != ignore_index && j >= 0 && j < V ? gv_bf(x[j]) : 0.0f;
    }
}

/* dlogits += (softmax - onehot) * dloss. lse_in == NULL: the row's lse is computed here (plain op, v0 = 0);
 * else lse_in[n] is the full row's lse and the shard starts at global column v0. losses != NULL (plain op):
 * the row's loss too, the forward and backward in two reads of the row, the second mostly from L2. */
template <int VEC, bool INPLACE>
__global__ void crossentropy_backward_kernel(bf16 *dlogits, const bf16 *logits, const int32_t *targets,
                                             const float *lse_in, float dloss, int V, int Vp, int v0,
                                             int ignore_index, float *losses = NULL) {
    const size_t n = blockIdx.x;
    const int tg0 = targets[n];
    if (tg0 == ignore_index) {
        if (losses && threadIdx.x == 0) losses[n] = 0.0f;
        if (INPLACE) /* the row's gradient is zero: the logits must not stay behind as one */
            for (int c = threadIdx.x; c < Vp; c += blockDim.x) dlogits[n * Vp + c] = gv_tobf(0.0f);
        return;
    }
    const int tg = tg0 - v0;
    const bf16 *x = logits + n * Vp;
    bf16 *dx = dlogits + n * Vp;
    /* read before row_lse's barrier: in place, the target's column is overwritten after it */
    const float tlogit = losses && threadIdx.x == 0 && tg >= 0 && tg < V ? gv_bf(x[tg]) : 0.0f;
    const float lse = lse_in ? lse_in[n] : row_lse<VEC>(x, V);
    if (losses && threadIdx.x == 0) losses[n] = lse - tlogit;
    for (int c = threadIdx.x * VEC; c < V; c += blockDim.x * VEC) {
        if (c + VEC <= V) {
            float a[VEC], g[VEC];
            gv_load_bf<VEC>(a, x + c);
            if (!INPLACE) gv_load_bf<VEC>(g, dx + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                float d = (expf(a[k] - lse) - (c + k == tg ? 1.0f : 0.0f)) * dloss;
                g[k] = INPLACE ? d : g[k] + d;
            }
            gv_store_bf<VEC>(dx + c, g);
        } else {
            for (int j = c; j < V; j++) {
                float d = (expf(gv_bf(x[j]) - lse) - (j == tg ? 1.0f : 0.0f)) * dloss;
                dx[j] = gv_tobf(INPLACE ? d : gv_bf(dx[j]) + d);
            }
        }
    }
    if (INPLACE) /* padding columns get no gradient (row_lse never reads them) */
        for (int j = V + threadIdx.x; j < Vp; j += blockDim.x) dx[j] = gv_tobf(0.0f);
}

/* Row-in-shared-memory backward of the plain op (Vp % 8 == 0, 16-byte aligned, Vp * 2 bytes of dynamic
 * shared memory): the row is read from global memory once into shared memory while its max is found, the
 * sum of exp is taken from shared memory (one ex2 per element: the online max/sum merge of row_lse costs
 * 1.25 exp per element and made the two-pass kernel exp-bound), each exp(x - max) in [0, 1] replacing its
 * logit there as fp16 (relative error 2^-11, below the bf16 gradient's own rounding), and the gradient is
 * written from those (no second exp: the ex2 unit, not memory, bounded the kernel): the logits are read
 * once and written once. MODE 1: in place; 2: accumulating into dlogits. */
__device__ __forceinline__ float ce_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#define CE_LOG2E 1.4426950408889634f

/* 8 fp16 = 16 bytes: the exps that replace a row chunk in shared memory */
struct __align__(16) gv_f16x8 {
    __half v[8];
};
#define CE_UNROLL 4

template <int MODE>
__global__ void __launch_bounds__(CE1_THREADS)
    crossentropy_smem_kernel(bf16 *dlogits, float *losses, const bf16 *logits, const int32_t *targets,
                             float dloss, int V, int Vp, int ignore_index) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    gv_bf16x8 *row = (gv_bf16x8 *)smem_raw; /* [Vp / 8] */
    __shared__ float sh[32];
    const size_t n = blockIdx.x;
    const int tg = targets[n], nch = Vp / 8;
    const bf16 *x = logits + n * Vp;
    bf16 *dx = dlogits + n * Vp;
    if (tg == ignore_index) {
        if (losses && threadIdx.x == 0) losses[n] = 0.0f;
        if (MODE == 1) /* the row's gradient is zero */
            for (int j = threadIdx.x; j < nch; j += blockDim.x) {
                gv_bf16x8 z;
#pragma unroll
                for (int k = 0; k < 8; k++) z.v[k] = gv_tobf(0.0f);
                reinterpret_cast<gv_bf16x8 *>(dx)[j] = z;
            }
        return;
    }
    /* pass 1: global -> shared, row max; CE_UNROLL 16-byte loads in flight per thread */
    float m = -INFINITY;
    for (int j0 = threadIdx.x; j0 < nch; j0 += blockDim.x * CE_UNROLL) {
        gv_bf16x8 p[CE_UNROLL];
#pragma unroll
        for (int u = 0; u < CE_UNROLL; u++) {
            const int j = j0 + u * blockDim.x, c = j * 8;
            if (j >= nch) break;
            if (c + 8 <= V) {
                p[u] = reinterpret_cast<const gv_bf16x8 *>(x)[j];
            } else { /* past V: -inf, so exp gives 0 and no onehot matches */
#pragma unroll
                for (int k = 0; k < 8; k++) p[u].v[k] = c + k < V ? x[c + k] : __float2bfloat16(-INFINITY);
            }
        }
#pragma unroll
        for (int u = 0; u < CE_UNROLL; u++) {
            const int j = j0 + u * blockDim.x;
            if (j >= nch) break;
            row[j] = p[u];
#pragma unroll
            for (int k = 0; k < 8; k++) m = fmaxf(m, gv_bf(p[u].v[k]));
        }
    }
    m = gv_block_max(m, sh); /* syncs: the row is in shared memory */
    const float ml2 = m * CE_LOG2E;
    /* pass 2: sum of exp from shared memory; each thread overwrites only the chunks it reads, and the
     * owner of the target's chunk keeps the target logit for the loss first */
    __shared__ float target_logit;
    gv_f16x8 *ex = (gv_f16x8 *)smem_raw; /* [Vp / 8] exp(x - max), over the row */
    float s = 0.0f;
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        gv_bf16x8 p = row[j];
        /* from shared memory, before this thread overwrites the chunk: p.v[tg % 8] (a run-time index into
         * registers) put every thread's chunks through local memory */
        if (tg >= 0 && tg < V && tg / 8 == j) target_logit = gv_bf(((const bf16 *)row)[tg]);
        gv_f16x8 e;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float v = ce_ex2(fmaf(gv_bf(p.v[k]), CE_LOG2E, -ml2));
            s += v;
            e.v[k] = __float2half_rn(v);
        }
        ex[j] = e;
    }
    s = gv_block_sum(s, sh);        /* syncs: target_logit is written */
    if (losses && threadIdx.x == 0) /* the forward's loss too: lse - target logit */
        losses[n] = m + logf(s) - (tg >= 0 && tg < V ? target_logit : 0.0f);
    /* pass 3: dlogits (+)= (softmax - onehot) * dloss, softmax = exp(x - max) / sum */
    const float inv_s = 1.0f / s;
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        const int c = j * 8;
        if (MODE == 2 && c >= V) break;
        gv_f16x8 p = ex[j];
        float g[8];
        if (MODE == 2 && c + 8 <= V) gv_load_bf<8>(g, dx + c);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float d = (__half2float(p.v[k]) * inv_s - (c + k == tg ? 1.0f : 0.0f)) * dloss;
            g[k] = MODE == 1 || c + 8 > V ? d : g[k] + d;
        }
        if (MODE == 1 || c + 8 <= V) {
            gv_store_bf<8>(dx + c, g);
        } else {
            for (int k = 0; k < 8 && c + k < V; k++) dx[c + k] = gv_tobf(gv_bf(dx[c + k]) + g[k]);
        }
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

static gv_status ce_check(const char *op, int N, int V, int Vp) {
    if (N < 0 || V <= 0 || Vp < V)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape N=%d V=%d Vp=%d (need V > 0, Vp >= V)", op, N, V, Vp);
    return GV_OK;
}

/* GV_CUDA_CE_ONEPASS=0: the older kernels only (A/B timing). */
static int ce_one_pass_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_CE_ONEPASS", 1);
}

/* GV_CUDA_CE_FB=2read: the loss and gradient kernel reads the row twice (online log-sum-exp, then the
 * gradient; many blocks per SM) instead of keeping it in shared memory (two blocks per SM). Read on every
 * call (tests switch it). */
static int ce_two_read_on(void) {
    const char *e = getenv("GV_CUDA_CE_FB");
    return e && !strcmp(e, "2read");
}

/* Launch crossentropy_smem_kernel<MODE> when the row fits (two blocks per SM); *done = 0 otherwise. */
template <int MODE>
static gv_status ce_smem(gv_backend *b, const char *op, int *done, void *dlogits, const void *logits,
                         const int32_t *targets, float dloss, int N, int V, int Vp, int ignore_index,
                         float *losses = NULL) {
    gv_cuda_ctx *c = gv_cuda(b);
    const size_t smem = (size_t)Vp * sizeof(bf16);
    *done = 0;
    if (Vp % 8 || !gv_aligned16(logits) || !gv_aligned16(dlogits) || smem > c->smem_optin / 2 ||
        !ce_one_pass_on())
        return GV_OK;
    static bool attr_set[64];
    if (c->device >= 64 || !attr_set[c->device]) {
        GV_CUDA_TRY(cudaFuncSetAttribute(crossentropy_smem_kernel<MODE>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)(c->smem_optin / 2)));
        if (c->device < 64) attr_set[c->device] = true;
    }
    crossentropy_smem_kernel<MODE><<<N, CE1_THREADS, smem, c->stream>>>(
        (bf16 *)dlogits, losses, (const bf16 *)logits, targets, dloss, V, Vp, ignore_index);
    GV_CUDA_LAUNCHED(op);
    *done = 1;
    return GV_OK;
}

gv_status gv_cuda_crossentropy_forward(gv_backend *b, float *losses, const void *logits,
                                       const int32_t *targets, int N, int V, int Vp, int ignore_index) {
    GV_TRY(ce_check("crossentropy_forward", N, V, Vp));
    cudaStream_t s = gv_cuda(b)->stream;
    if (N == 0) return GV_OK;
    /* the row-in-shared-memory kernel (MODE 0) was slower here: 2.79 vs 2.52 ms at N=65536 on the H200 (two
     * blocks per SM and nothing to overlap the reductions with); the online kernel stays */
    if (Vp % 8 == 0 && gv_aligned16(logits))
        crossentropy_forward_kernel<8>
            <<<N, CE_THREADS, 0, s>>>(losses, (const bf16 *)logits, targets, V, Vp, ignore_index);
    else
        crossentropy_forward_kernel<1>
            <<<N, CE_THREADS, 0, s>>>(losses, (const bf16 *)logits, targets, V, Vp, ignore_index);
    GV_CUDA_LAUNCHED("crossentropy_forward");
    return GV_OK;
}

static gv_status ce_backward(gv_backend *b, const char *op, void *dlogits, const void *logits,
                             const int32_t *targets, const float *lse, float dloss, int N, int V, int Vp,
                             int v0, int ignore_index) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (N == 0) return GV_OK;
    bf16 *dx = (bf16 *)dlogits;
    const bf16 *x = (const bf16 *)logits;
    bool vec = Vp % 8 == 0 && gv_aligned16(logits) && gv_aligned16(dlogits);
    bool inplace = dlogits == logits;
    /* plain op: the row-in-shared-memory kernel where the row fits */
    if (!lse) {
        int done = 0;
        if (inplace)
            GV_TRY(ce_smem<1>(b, op, &done, dlogits, logits, targets, dloss, N, V, Vp, ignore_index));
        else
            GV_TRY(ce_smem<2>(b, op, &done, dlogits, logits, targets, dloss, N, V, Vp, ignore_index));
        if (done) return GV_OK;
    }
    if (vec && inplace)
        crossentropy_backward_kernel<8, true>
            <<<N, CE_THREADS, 0, s>>>(dx, x, targets, lse, dloss, V, Vp, v0, ignore_index);
    else if (vec)
        crossentropy_backward_kernel<8, false>
            <<<N, CE_THREADS, 0, s>>>(dx, x, targets, lse, dloss, V, Vp, v0, ignore_index);
    else if (inplace)
        crossentropy_backward_kernel<1, true>
            <<<N, CE_THREADS, 0, s>>>(dx, x, targets, lse, dloss, V, Vp, v0, ignore_index);
    else
        crossentropy_backward_kernel<1, false>
            <<<N, CE_THREADS, 0, s>>>(dx, x, targets, lse, dloss, V, Vp, v0, ignore_index);
    GV_CUDA_LAUNCHED(op);
    return GV_OK;
}

gv_status gv_cuda_crossentropy_backward(gv_backend *b, void *dlogits, const void *logits,
                                        const int32_t *targets, float dloss, int N, int V, int Vp,
                                        int ignore_index) {
    GV_TRY(ce_check("crossentropy_backward", N, V, Vp));
    return ce_backward(b, "crossentropy_backward", dlogits, logits, targets, NULL, dloss, N, V, Vp, 0,
                       ignore_index);
}

gv_status gv_cuda_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits,
                                           const int32_t *targets, int N, int V, int Vp, int v0,
                                           int ignore_index) {
    if (N < 0 || V <= 0 || Vp < V || v0 < 0)
        return gv_fail(GV_ERR_INVALID, "crossentropy_shard_stats: bad shape N=%d V=%d Vp=%d v0=%d", N, V, Vp,
                       v0);
    cudaStream_t s = gv_cuda(b)->stream;
    if (N == 0) return GV_OK;
    if (Vp % 8 == 0 && gv_aligned16(logits))
        crossentropy_shard_stats_kernel<8>
            <<<N, CE_THREADS, 0, s>>>(lse, tlogit, (const bf16 *)logits, targets, V, Vp, v0, ignore_index);
    else
        crossentropy_shard_stats_kernel<1>
            <<<N, CE_THREADS, 0, s>>>(lse, tlogit, (const bf16 *)logits, targets, V, Vp, v0, ignore_index);
    GV_CUDA_LAUNCHED("crossentropy_shard_stats");
    return GV_OK;
}

gv_status gv_cuda_crossentropy_shard_backward(gv_backend *b, void *dlogits, const void *logits,
                                              const int32_t *targets, const float *lse, float dloss, int N,
                                              int V, int Vp, int v0, int ignore_index) {
    if (N < 0 || V <= 0 || Vp < V || v0 < 0)
        return gv_fail(GV_ERR_INVALID, "crossentropy_shard_backward: bad shape N=%d V=%d Vp=%d v0=%d", N, V,
                       Vp, v0);
    if (!lse) return gv_fail(GV_ERR_INVALID, "crossentropy_shard_backward: lse is required");
    return ce_backward(b, "crossentropy_shard_backward", dlogits, logits, targets, lse, dloss, N, V, Vp, v0,
                       ignore_index);
}

/* Loss and gradient in one pass (the row-in-shared-memory kernel): logits are read once and replaced by
 * their gradient. Where the row does not fit, the forward kernel and then the in-place backward. */
gv_status gv_cuda_crossentropy_forward_backward(gv_backend *b, float *losses, void *logits,
                                                const int32_t *targets, float dloss, int N, int V, int Vp,
                                                int ignore_index) {
    GV_TRY(ce_check("crossentropy_forward_backward", N, V, Vp));
    if (N == 0) return GV_OK;
    if (ce_two_read_on() && Vp % 8 == 0 && gv_aligned16(logits)) { /* GV_CUDA_CE_FB=2read */
        crossentropy_backward_kernel<8, true><<<N, CE_THREADS, 0, gv_cuda(b)->stream>>>(
            (bf16 *)logits, (const bf16 *)logits, targets, NULL, dloss, V, Vp, 0, ignore_index, losses);
        GV_CUDA_LAUNCHED("crossentropy_forward_backward");
        return GV_OK;
    }
    int done = 0;
    GV_TRY(ce_smem<1>(b, "crossentropy_forward_backward", &done, logits, logits, targets, dloss, N, V, Vp,
                      ignore_index, losses));
    if (done) return GV_OK;
    GV_TRY(gv_cuda_crossentropy_forward(b, losses, logits, targets, N, V, Vp, ignore_index));
    return ce_backward(b, "crossentropy_forward_backward", logits, logits, targets, NULL, dloss, N, V, Vp, 0,
                       ignore_index);
}
