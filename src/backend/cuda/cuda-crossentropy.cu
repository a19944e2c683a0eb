/* Fused softmax cross-entropy over the first V of Vp logit columns, one block per row (the loss + gradient
 * kernel on sm_90: a cluster of two blocks per row). Forward writes the per-row loss; backward recomputes
 * the row's log-sum-exp from the bf16 logits and writes dlogits += (softmax - onehot) * dloss without any
 * fp32 copy of the logits. Rows whose target is ignore_index get loss 0 and no gradient; columns >= V are
 * never touched. The vocab-parallel variants (shard_stats, shard_backward) work on a shard of global
 * columns [v0, v0 + V).
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

/* Row-in-shared-memory backward of the plain op (Vp % 8 == 0, 16-byte aligned): the row is read from global
 * memory once into shared memory while its max is found, the sum of exp is taken from shared memory (one ex2
 * per element: the online max/sum merge of row_lse costs 1.25 exp per element and made the two-pass kernel
 * exp-bound), each exp(x - max) in [0, 1] replacing its logit there as fp16 (relative error 2^-11, below the
 * bf16 gradient's own rounding), and the gradient is written from those (no second exp: the ex2 unit, not
 * memory, bounded the kernel): the logits are read once and written once. MODE 1: in place; 2: accumulating
 * into dlogits.
 * CLUSTER false: one block per row, Vp * 2 bytes of dynamic shared memory (two blocks per SM at GPT-2's
 * vocab, whose memory traffic then stops during the exp pass and the reductions). CLUSTER true (sm_90): a
 * cluster of two CTAs per row, rank 0 holding the row's first ceil(Vp / 16) 16-byte chunks, rank 1 the rest,
 * so each needs half the shared memory and four fit per SM, whose phases overlap; the two exchange their
 * half's max, then their half's sum of exp, through distributed shared memory. */
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
#define CE_CLUSTER_CTAS 4 /* cluster kernel: CTAs per SM its registers and shared memory are sized for */

/* Cluster barrier halves and the exchange of one float with the other CTA of a 2-CTA cluster. Only the
 * cluster kernel calls them, and the launcher runs it only where the device can launch clusters (sm_90+). */
__device__ __forceinline__ unsigned ce_cluster_rank() {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
    return __clusterRelativeBlockRank();
#else
    __trap();
    return 0;
#endif
}
__device__ __forceinline__ void ce_cluster_arrive_relaxed() {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
    __cluster_barrier_arrive_relaxed();
#endif
}
__device__ __forceinline__ void ce_cluster_wait() {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
    __cluster_barrier_wait();
#endif
}
/* Every thread calls it with this CTA's v; thread 0 stores v into the other CTA's *slot (a __shared__ float
 * written once per kernel), and after the barrier (arrive releases that store, wait acquires the other's)
 * the own *slot holds the other CTA's value, which is returned. */
__device__ __forceinline__ float ce_cluster_swap(float v, float *slot, unsigned rank) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
    if (threadIdx.x == 0) *(volatile float *)__cluster_map_shared_rank(slot, rank ^ 1u) = v;
    __cluster_barrier_arrive();
    __cluster_barrier_wait();
    return *(volatile float *)slot;
#else
    __trap();
    return v;
#endif
}

template <int MODE, bool CLUSTER, int THREADS>
__global__ void __launch_bounds__(THREADS, CLUSTER ? CE_CLUSTER_CTAS : 0)
    crossentropy_smem_kernel(bf16 *dlogits, float *losses, const bf16 *logits, const int32_t *targets,
                             float dloss, int V, int Vp, int ignore_index) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    gv_bf16x8 *row = (gv_bf16x8 *)smem_raw; /* [nloc] this CTA's chunks of the row */
    __shared__ float sh[32];
    __shared__ float peer_max, peer_sum; /* cluster: written by the other CTA */
    const size_t n = CLUSTER ? blockIdx.x / 2 : blockIdx.x;
    const unsigned rank = CLUSTER ? ce_cluster_rank() : 0;
    const int tg = targets[n], nch = Vp / 8, h0 = CLUSTER ? (nch + 1) / 2 : nch;
    /* this CTA's chunks [lo, lo + nloc) of the row; Vl, tl: V and the target's column counted from the
     * first of them (tl < 0 or >= nloc * 8: the target is not here, or not in [0, V)) */
    const int lo = rank ? h0 : 0, nloc = rank ? nch - h0 : h0, Vl = V - lo * 8;
    const int tl = tg >= 0 && tg < V ? tg - lo * 8 : -1;
    const bf16 *x = logits + n * Vp + (size_t)lo * 8;
    bf16 *dx = dlogits + n * Vp + (size_t)lo * 8;
    if (tg == ignore_index) { /* both CTAs of a cluster return here, before any cluster barrier */
        if (losses && rank == 0 && threadIdx.x == 0) losses[n] = 0.0f;
        if (MODE == 1) /* the row's gradient is zero */
            for (int j = threadIdx.x; j < nloc; j += THREADS) {
                gv_bf16x8 z;
#pragma unroll
                for (int k = 0; k < 8; k++) z.v[k] = gv_tobf(0.0f);
                reinterpret_cast<gv_bf16x8 *>(dx)[j] = z;
            }
        return;
    }
    /* the first exchange waits for this phase: the other CTA has started, so its shared memory exists */
    if (CLUSTER) ce_cluster_arrive_relaxed();
    /* pass 1: global -> shared, the half's (or row's) max; UNR 16-byte loads in flight per thread (2 where
     * four CTAs of 512 threads leave 32 registers a thread: ptxas spilled with 3 or 4) */
    constexpr int UNR = THREADS * (CLUSTER ? CE_CLUSTER_CTAS : 1) > 1024 ? 2 : CE_UNROLL;
    float m = -INFINITY;
    for (int j0 = threadIdx.x; j0 < nloc; j0 += THREADS * UNR) {
        gv_bf16x8 p[UNR];
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int j = j0 + u * THREADS, c = j * 8;
            if (j >= nloc) break;
            if (c + 8 <= Vl) {
                p[u] = reinterpret_cast<const gv_bf16x8 *>(x)[j];
            } else { /* past V: -inf, so exp gives 0 and no onehot matches */
#pragma unroll
                for (int k = 0; k < 8; k++) p[u].v[k] = c + k < Vl ? x[c + k] : __float2bfloat16(-INFINITY);
            }
        }
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            const int j = j0 + u * THREADS;
            if (j >= nloc) break;
            row[j] = p[u];
#pragma unroll
            for (int k = 0; k < 8; k++) m = fmaxf(m, gv_bf(p[u].v[k]));
        }
    }
    m = gv_block_max(m, sh); /* syncs: the chunks are in shared memory */
    if (CLUSTER) {           /* the row's max; rank 1 may hold only columns >= V (-inf) */
        ce_cluster_wait();
        m = fmaxf(m, ce_cluster_swap(m, &peer_max, rank));
    }
    const float ml2 = m * CE_LOG2E;
    /* pass 2: sum of exp from shared memory; each thread overwrites only the chunks it reads, and the
     * owner of the target's chunk keeps the target logit for the loss first */
    __shared__ float target_logit;
    gv_f16x8 *ex = (gv_f16x8 *)smem_raw; /* [nloc] exp(x - max), over the chunks */
    float s = 0.0f;
    for (int j = threadIdx.x; j < nloc; j += THREADS) {
        gv_bf16x8 p = row[j];
        /* from shared memory, not p.v[tl % 8]: a dynamic index put every chunk through local memory */
        if (tl >= 0 && tl / 8 == j) target_logit = gv_bf(((const bf16 *)row)[tl]);
        gv_f16x8 e;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float v = ce_ex2(fmaf(gv_bf(p.v[k]), CE_LOG2E, -ml2));
            s += v;
            e.v[k] = __float2half_rn(v);
        }
        ex[j] = e;
    }
    s = gv_block_sum(s, sh);                               /* syncs: target_logit is written */
    if (CLUSTER) s += ce_cluster_swap(s, &peer_sum, rank); /* the last access to the other's memory */
    /* the forward's loss too, lse - target logit, by the CTA that holds the target (rank 0 for a target
     * outside [0, V), whose logit counts as 0) */
    const bool tg_in = tg >= 0 && tg < V, has_tg = tg_in && tl >= 0 && tl < nloc * 8;
    if (losses && threadIdx.x == 0 && (has_tg || (!tg_in && rank == 0)))
        losses[n] = m + logf(s) - (has_tg ? target_logit : 0.0f);
    /* pass 3: dlogits (+)= (softmax - onehot) * dloss, softmax = exp(x - max) / sum */
    const float inv_s = 1.0f / s;
    for (int j = threadIdx.x; j < nloc; j += THREADS) {
        const int c = j * 8;
        if (MODE == 2 && c >= Vl) break;
        gv_f16x8 p = ex[j];
        float g[8];
        if (MODE == 2 && c + 8 <= Vl) gv_load_bf<8>(g, dx + c);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            float d = (__half2float(p.v[k]) * inv_s - (c + k == tl ? 1.0f : 0.0f)) * dloss;
            g[k] = MODE == 1 || c + 8 > Vl ? d : g[k] + d;
        }
        if (MODE == 1 || c + 8 <= Vl) {
            gv_store_bf<8>(dx + c, g);
        } else {
            for (int k = 0; k < 8 && c + k < Vl; k++) dx[c + k] = gv_tobf(gv_bf(dx[c + k]) + g[k]);
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

/* GV_CUDA_CE_CLUSTER=0: the one-block-per-row smem kernel instead of the 2-CTA cluster one (A/B timing);
 * =256: the cluster kernel with 256 threads per CTA instead of 512. Read on every call (tests switch it).
 * Returns the cluster kernel's threads per CTA, 0 for off. */
static int ce_cluster_threads(void) {
    const char *e = getenv("GV_CUDA_CE_CLUSTER");
    if (e && e[0] == '0') return 0;
    return e && !strcmp(e, "256") ? 256 : 512;
}

/* Whether the device launches thread-block clusters (sm_90+), asked once per device. */
static gv_status ce_cluster_ok(gv_cuda_ctx *c, int *ok) {
    static int known[64]; /* 0: not asked, 1: no, 2: yes */
    if (c->device < 64 && known[c->device]) {
        *ok = known[c->device] == 2;
        return GV_OK;
    }
    int v = 0;
    GV_CUDA_TRY(cudaDeviceGetAttribute(&v, cudaDevAttrClusterLaunch, c->device));
    if (c->device < 64) known[c->device] = v ? 2 : 1;
    *ok = v != 0;
    return GV_OK;
}

/* The dynamic shared memory limit of one kernel, raised once per device to `bytes` (the most it is ever
 * launched with). */
template <typename K> static gv_status ce_smem_attr(gv_cuda_ctx *c, bool *set, K kernel, size_t bytes) {
    if (c->device >= 64 || !set[c->device]) {
        GV_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
        if (c->device < 64) set[c->device] = true;
    }
    return GV_OK;
}

/* Launch crossentropy_smem_kernel<MODE, true, T> as 2 * N CTAs in clusters of two. */
template <int MODE, int T>
static gv_status ce_cluster_launch(gv_cuda_ctx *c, const char *op, void *dlogits, const void *logits,
                                   const int32_t *targets, float dloss, int N, int V, int Vp,
                                   int ignore_index, float *losses, size_t smem) {
    static bool attr_set[64];
    if (c->device >= 64 || !attr_set[c->device]) /* four CTAs' shared memory needs the largest carveout */
        GV_CUDA_TRY(cudaFuncSetAttribute(crossentropy_smem_kernel<MODE, true, T>,
                                         cudaFuncAttributePreferredSharedMemoryCarveout,
                                         (int)cudaSharedmemCarveoutMaxShared));
    GV_TRY(
        ce_smem_attr(c, attr_set, crossentropy_smem_kernel<MODE, true, T>, c->smem_optin / CE_CLUSTER_CTAS));
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(2u * (unsigned)N);
    cfg.blockDim = dim3(T);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = 2;
    at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    cudaError_t e = cudaLaunchKernelEx(&cfg, crossentropy_smem_kernel<MODE, true, T>, (bf16 *)dlogits, losses,
                                       (const bf16 *)logits, targets, dloss, V, Vp, ignore_index);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* not left behind for the next op's launch check */
        return gv_fail(GV_ERR_BACKEND, "cuda: %s cluster launch failed: %s", op, cudaGetErrorString(e));
    }
    GV_CUDA_LAUNCHED(op);
    return GV_OK;
}

/* Launch crossentropy_smem_kernel<MODE> when the row fits: the cluster kernel where half a row fits four
 * times per SM (sm_90), else the one-block kernel where the row fits twice; *done = 0 otherwise. */
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
    /* rank 0 holds the larger half: ceil(Vp / 16) chunks of 16 bytes */
    const size_t smem2 = (size_t)(Vp / 8 + 1) / 2 * sizeof(gv_bf16x8);
    const int ct = ce_cluster_threads();
    int cl_ok = 0;
    if (ct && smem2 <= c->smem_optin / CE_CLUSTER_CTAS && N <= 0x3fffffff) GV_TRY(ce_cluster_ok(c, &cl_ok));
    if (cl_ok) {
        if (ct == 256)
            GV_TRY((ce_cluster_launch<MODE, 256>(c, op, dlogits, logits, targets, dloss, N, V, Vp,
                                                 ignore_index, losses, smem2)));
        else
            GV_TRY((ce_cluster_launch<MODE, 512>(c, op, dlogits, logits, targets, dloss, N, V, Vp,
                                                 ignore_index, losses, smem2)));
        *done = 1;
        return GV_OK;
    }
    static bool attr_set[64];
    GV_TRY(ce_smem_attr(c, attr_set, crossentropy_smem_kernel<MODE, false, CE1_THREADS>, c->smem_optin / 2));
    crossentropy_smem_kernel<MODE, false, CE1_THREADS><<<N, CE1_THREADS, smem, c->stream>>>(
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
