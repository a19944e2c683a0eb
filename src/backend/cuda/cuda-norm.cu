/* LayerNorm and RMSNorm over the last dimension (bf16 data, fp32 statistics). w may be NULL (scale 1, dw
 * skipped) and so may bias / dbias; mean and rstd may be NULL in the forward. Backward ops accumulate.
 *
 * Forward: one warp per row. Backward: a block per group of rows; each thread owns the same NCH chunks of
 * VEC channels for every row, so the row is read once into registers and the thread's dw / dbias partial
 * sums stay in registers. Per-block partials go to a scratch buffer and a second kernel reduces them in a
 * fixed order (deterministic) and adds them into dw / dbias. */
#include "cuda-common.cuh"

#include <stdlib.h>

/* ---- kernels ----------------------------------------------------------------------------------------- */

/* ADD: the row is sum = inp + y, rounded to bf16 and stored first (the fused residual add); the later passes
 * read back what this thread itself wrote, from L1/L2. */
template <int VEC, bool RMS, bool ADD>
__global__ void norm_forward_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *w,
                                    const bf16 *bias, int N, int C, float eps, bf16 *sum, const bf16 *y) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const bf16 *x = (ADD ? sum : inp) + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float a[VEC];
        if (ADD) {
            float b2[VEC];
            gv_load_bf<VEC>(a, inp + (size_t)row * C + c);
            gv_load_bf<VEC>(b2, y + (size_t)row * C + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) a[k] = gv_bf(__float2bfloat16(a[k] + b2[k]));
            gv_store_bf<VEC>(sum + (size_t)row * C + c, a);
        } else {
            gv_load_bf<VEC>(a, x + c);
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) s += RMS ? a[k] * a[k] : a[k];
    }
    s = gv_warp_sum(s);
    float m = 0.0f, var;
    if (RMS) {
        var = s / C;
    } else {
        m = s / C;
        float v = 0.0f;
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float a[VEC];
            gv_load_bf<VEC>(a, x + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) v += (a[k] - m) * (a[k] - m);
        }
        var = gv_warp_sum(v) / C;
    }
    const float rs = 1.0f / sqrtf(var + eps);
    bf16 *o = out + (size_t)row * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float a[VEC], wv[VEC], bv[VEC];
        gv_load_bf<VEC>(a, x + c);
        if (w) gv_load_bf<VEC>(wv, w + c);
        if (bias) gv_load_bf<VEC>(bv, bias + c);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float y = (a[k] - m) * rs;
            if (w) y *= wv[k];
            if (bias) y += bv[k];
            a[k] = y;
        }
        gv_store_bf<VEC>(o + c, a);
    }
    if (lane == 0) {
        if (!RMS && mean) mean[row] = m;
        if (rstd) rstd[row] = rs;
    }
}

/* part_dw / part_db: [gridDim.x, C] fp32 partial sums (NULL when not needed). At most NORM_BWD_THREADS
 * threads; a thread owns chunks threadIdx.x + j*blockDim.x (j < NCH) of VEC channels. When NCH*VEC <= 16 the
 * row's normalised input and weighted gradient stay in registers between the reduction and the dinp pass;
 * for wider rows they are recomputed from the (L1-resident) row instead. */
#define NORM_BWD_THREADS 256
template <int VEC, int NCH, bool RMS>
__global__ void __launch_bounds__(NORM_BWD_THREADS)
    norm_backward_kernel(bf16 *dinp, float *part_dw, float *part_db, const bf16 *dout, const bf16 *inp,
                         const bf16 *w, const float *mean, const float *rstd, int N, int C, int acc) {
    constexpr bool CACHE = NCH * VEC <= 16;
    constexpr int NC = CACHE ? NCH : 1;
    __shared__ float sh[64];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float gw[NCH][VEC], gb[NCH][VEC], xc[NC][VEC], dc[NC][VEC];
#pragma unroll
    for (int j = 0; j < NCH; j++)
#pragma unroll
        for (int k = 0; k < VEC; k++) gw[j][k] = gb[j][k] = 0.0f;
    const float invC = 1.0f / C;
    for (int row = blockIdx.x; row < N; row += gridDim.x) {
        const float m = RMS ? 0.0f : mean[row], rs = rstd[row];
        const bf16 *xr = inp + (size_t)row * C, *dr = dout + (size_t)row * C;
        float s1 = 0.0f, s2 = 0.0f;
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            int c = (threadIdx.x + j * blockDim.x) * VEC;
            if (c < C) {
                float a[VEC], d[VEC], wv[VEC];
                gv_load_bf<VEC>(a, xr + c);
                gv_load_bf<VEC>(d, dr + c);
                if (w) gv_load_bf<VEC>(wv, w + c);
#pragma unroll
                for (int k = 0; k < VEC; k++) {
                    float xh = (a[k] - m) * rs, dn = w ? d[k] * wv[k] : d[k];
                    s1 += dn;
                    s2 += dn * xh;
                    gw[j][k] += d[k] * xh;
                    gb[j][k] += d[k];
                    if constexpr (CACHE) {
                        xc[j][k] = xh;
                        dc[j][k] = dn;
                    }
                }
            }
        }
        if (dinp) {
            s1 = gv_warp_sum(s1);
            s2 = gv_warp_sum(s2);
            if (lane == 0) {
                sh[warp] = s1;
                sh[32 + warp] = s2;
            }
            __syncthreads();
            s1 = s2 = 0.0f;
            for (int i = 0; i < nw; i++) {
                s1 += sh[i];
                s2 += sh[32 + i];
            }
            __syncthreads();
            const float md = RMS ? 0.0f : s1 * invC, mdn = s2 * invC;
            bf16 *gr = dinp + (size_t)row * C;
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                int c = (threadIdx.x + j * blockDim.x) * VEC;
                if (c < C) {
                    float g[VEC], xh[VEC], dn[VEC];
                    if constexpr (CACHE) {
#pragma unroll
                        for (int k = 0; k < VEC; k++) xh[k] = xc[j][k], dn[k] = dc[j][k];
                    } else {
                        float wv[VEC];
                        gv_load_bf<VEC>(xh, xr + c);
                        gv_load_bf<VEC>(dn, dr + c);
                        if (w) gv_load_bf<VEC>(wv, w + c);
#pragma unroll
                        for (int k = 0; k < VEC; k++) {
                            xh[k] = (xh[k] - m) * rs;
                            if (w) dn[k] *= wv[k];
                        }
                    }
                    if (acc) {
                        gv_load_bf<VEC>(g, gr + c);
                    } else {
#pragma unroll
                        for (int k = 0; k < VEC; k++) g[k] = 0.0f;
                    }
#pragma unroll
                    for (int k = 0; k < VEC; k++) g[k] += (dn[k] - md - xh[k] * mdn) * rs;
                    gv_store_bf<VEC>(gr + c, g);
                }
            }
        }
    }
#pragma unroll
    for (int j = 0; j < NCH; j++) {
        int c = (threadIdx.x + j * blockDim.x) * VEC;
        if (c < C) {
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                if (part_dw) part_dw[(size_t)blockIdx.x * C + c + k] = gw[j][k];
                if (part_db) part_db[(size_t)blockIdx.x * C + c + k] = gb[j][k];
            }
        }
    }
}

/* Narrow rows (C <= 1024, C % 8 == 0): one warp per row, NW warps per block, no block barrier per row; a
 * lane owns chunks lane + 32 j (j < NCH) of 8 channels, and its dw / dbias partial sums stay in registers.
 * The row's x, dout and accumulated dinp come through shared memory by cp.async, the next row's copy issued
 * before the current row is worked on: a warp always has a row in flight (with its inputs read straight
 * from global memory the kernel waited on one row's latency at a time, 2.3 TB/s). Each lane copies and
 * reads only its own chunks, so no barrier orders them. The warps' partials are summed in shared memory
 * once per block, in a fixed order. */
#define NORM_WARP_NW 8
/* dynamic shared memory of the kernel: two row slots [2][3][NCH][32] x 16 B per warp, then (column sums
 * wanted) [NW][NCH * 8][32] floats */
#define NORM_WARP_SLOTS(nch) ((size_t)NORM_WARP_NW * 2 * 3 * (nch)*32 * 16)
#define NORM_WARP_DS(nch) ((size_t)NORM_WARP_NW * (nch)*256 * sizeof(float))

/* The "memory" clobbers keep the compiler from moving the slot's shared-memory reads across the copies and
 * the wait (volatile asm alone orders only against other volatile asm). */
__device__ __forceinline__ void gv_cp16(void *smem, const void *gmem) {
    const unsigned a = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(a), "l"(gmem) : "memory");
}
__device__ __forceinline__ void gv_cp_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void gv_cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int NCH, bool RMS>
__global__ void __launch_bounds__(NORM_WARP_NW * 32)
    norm_backward_warp_kernel(bf16 *dinp, float *part_dw, float *part_db, float *part_ds, const bf16 *dout,
                              const bf16 *inp, const bf16 *w, const float *mean, const float *rstd, int N,
                              int C, int acc) {
    extern __shared__ __align__(16) unsigned char nsm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* this warp's slots: chunk j of tensor t (0 x, 1 dout, 2 dinp) of slot s at [(s*3 + t)*NCH + j][lane] */
    uint4 *sl = (uint4 *)nsm + (size_t)warp * (2 * 3 * NCH * 32);
    /* part_ds: each warp's column sums of dinp as written (registers are what limits the blocks per SM, so
     * these sums live here). Channel (lane + 32 j) * 8 + k sits at [j * 8 + k][lane]: a warp's 32 lanes hit
     * 32 banks (channel order made every add an 8-way bank conflict). */
    float *ds = (float *)(nsm + NORM_WARP_SLOTS(NCH)) + warp * (NCH * 256);
    if (part_ds) {
        for (int i = lane; i < NCH * 256; i += 32) ds[i] = 0.0f;
        __syncwarp();
    }
    float gw[NCH][8], gb[NCH][8];
#pragma unroll
    for (int j = 0; j < NCH; j++)
#pragma unroll
        for (int k = 0; k < 8; k++) gw[j][k] = gb[j][k] = 0.0f;
    const float invC = 1.0f / C;
    const bool rd_g = dinp && acc;
    const int stride = gridDim.x * NORM_WARP_NW;
    float m_nx = 0.0f, rs_nx = 0.0f;
    /* copies row r into slot s (nothing past N; the group is committed either way, so wait_group 1 always
     * means "all but the newest") and reads its statistics */
    auto fetch = [&](int r, int s) {
        if (r < N) {
            const size_t o = (size_t)r * C;
#pragma unroll
            for (int j = 0; j < NCH; j++) {
                const int c = (lane + 32 * j) * 8;
                if (c < C) {
                    gv_cp16(&sl[((s * 3 + 0) * NCH + j) * 32 + lane], inp + o + c);
                    gv_cp16(&sl[((s * 3 + 1) * NCH + j) * 32 + lane], dout + o + c);
                    if (rd_g) gv_cp16(&sl[((s * 3 + 2) * NCH + j) * 32 + lane], dinp + o + c);
                }
            }
            m_nx = RMS ? 0.0f : mean[r];
            rs_nx = rstd[r];
        }
        gv_cp_commit();
    };
    int row = blockIdx.x * NORM_WARP_NW + warp;
    fetch(row, 0);
    for (int it = 0; row < N; it++, row += stride) {
        const int s = it & 1;
        const float m = m_nx, rs = rs_nx;
        fetch(row + stride, s ^ 1);
        gv_cp_wait<1>(); /* this row's copies have landed */
        const bf16 *xs = (const bf16 *)&sl[(s * 3 + 0) * NCH * 32],
                   *dsm = (const bf16 *)&sl[(s * 3 + 1) * NCH * 32],
                   *gs = (const bf16 *)&sl[(s * 3 + 2) * NCH * 32];
        float s1 = 0.0f, s2 = 0.0f;
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            const int c = (lane + 32 * j) * 8, at = (j * 32 + lane) * 8;
            if (c < C) {
                float a[8], d[8], wv[8];
                gv_load_bf<8>(a, xs + at);
                gv_load_bf<8>(d, dsm + at);
                if (w) gv_load_bf<8>(wv, w + c);
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float xh = (a[k] - m) * rs, dn = w ? d[k] * wv[k] : d[k];
                    s1 += dn;
                    s2 += dn * xh;
                    gw[j][k] += d[k] * xh;
                    gb[j][k] += d[k];
                }
            }
        }
        if (!dinp) continue;
        s1 = gv_warp_sum(s1);
        s2 = gv_warp_sum(s2);
        const float md = RMS ? 0.0f : s1 * invC, mdn = s2 * invC;
        bf16 *gr = dinp + (size_t)row * C;
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            const int c = (lane + 32 * j) * 8, at = (j * 32 + lane) * 8;
            if (c < C) {
                float a[8], d[8], wv[8], g[8];
                gv_load_bf<8>(a, xs + at);
                gv_load_bf<8>(d, dsm + at);
                if (w) gv_load_bf<8>(wv, w + c);
                if (rd_g) {
                    gv_load_bf<8>(g, gs + at);
                } else {
#pragma unroll
                    for (int k = 0; k < 8; k++) g[k] = 0.0f;
                }
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float xh = (a[k] - m) * rs, dn = w ? d[k] * wv[k] : d[k];
                    g[k] += (dn - md - xh * mdn) * rs;
                }
                gv_store_bf<8>(gr + c, g);
                if (part_ds) /* the sums of the values as stored */
#pragma unroll
                    for (int k = 0; k < 8; k++) ds[(j * 8 + k) * 32 + lane] += gv_bf(gv_tobf(g[k]));
            }
        }
    }
    gv_cp_wait<0>();
    __syncthreads(); /* the slots become the block's [NW][C] partial sums */
    float(*sh)[NCH * 256] = (float(*)[NCH * 256]) nsm;
    float *parts[2] = {part_dw, part_db};
#pragma unroll
    for (int p = 0; p < 2; p++) {
        if (!parts[p]) continue;
#pragma unroll
        for (int j = 0; j < NCH; j++) {
            const int c = (lane + 32 * j) * 8;
            if (c < C)
#pragma unroll
                for (int k = 0; k < 8; k++) sh[warp][c + k] = p == 0 ? gw[j][k] : gb[j][k];
        }
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float t = 0.0f;
#pragma unroll
            for (int i = 0; i < NORM_WARP_NW; i++) t += sh[i][c];
            parts[p][(size_t)blockIdx.x * C + c] = t;
        }
        __syncthreads();
    }
    if (part_ds) {
        __syncthreads();
        const float *ds0 = (const float *)(nsm + NORM_WARP_SLOTS(NCH));
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            const int q = c >> 3, at = ((q >> 5) * 8 + (c & 7)) * 32 + (q & 31);
            float t = 0.0f;
#pragma unroll
            for (int i = 0; i < NORM_WARP_NW; i++) t += ds0[i * (NCH * 256) + at];
            part_ds[(size_t)blockIdx.x * C + c] = t;
        }
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

template <int NCH, bool RMS> static cudaError_t norm_warp_occupancy(int *per_sm, size_t dyn_smem) {
    /* asked once per kernel and scratch size (with or without the column sums): a host call of
     * microseconds, 25 times a GPT-2 step otherwise */
    static int known[2] = {-1, -1};
    const int ki = dyn_smem > NORM_WARP_SLOTS(NCH);
    if (known[ki] >= 0) {
        *per_sm = known[ki];
        return cudaSuccess;
    }
    /* the row slots and column sums (up to 128 KB) need the opt-in, asked for what this launch needs (the
     * caller checked it against the device's limit) */
    static size_t opted;
    if (dyn_smem > opted) {
        cudaError_t e = cudaFuncSetAttribute(norm_backward_warp_kernel<NCH, RMS>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn_smem);
        if (e != cudaSuccess) return e;
        opted = dyn_smem;
    }
    cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(per_sm, norm_backward_warp_kernel<NCH, RMS>,
                                                                  NORM_WARP_NW * 32, dyn_smem);
    if (e == cudaSuccess) known[ki] = *per_sm;
    return e;
}

static gv_status norm_check(const char *op, int N, int C) {
    if (N < 0 || C <= 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape N=%d C=%d (need N >= 0, C > 0)", op, N, C);
    return GV_OK;
}

template <int VEC, bool RMS>
static void launch_norm_forward(cudaStream_t s, bf16 *out, float *mean, float *rstd, const bf16 *inp,
                                const bf16 *w, const bf16 *bias, int N, int C, float eps, bf16 *sum,
                                const bf16 *y) {
    const int warps = 4;
    if (sum)
        norm_forward_kernel<VEC, RMS, true>
            <<<gv_cdiv(N, warps), 32 * warps, 0, s>>>(out, mean, rstd, inp, w, bias, N, C, eps, sum, y);
    else
        norm_forward_kernel<VEC, RMS, false>
            <<<gv_cdiv(N, warps), 32 * warps, 0, s>>>(out, mean, rstd, inp, w, bias, N, C, eps, sum, y);
}

/* sum and y both NULL: the plain norm of inp; both set: the norm of sum = inp + y. */
template <bool RMS>
static gv_status norm_forward(gv_backend *b, const char *op, void *out, float *mean, float *rstd,
                              const void *inp, const void *w, const void *bias, int N, int C, float eps,
                              void *sum = NULL, const void *y = NULL) {
    GV_TRY(norm_check(op, N, C));
    if (N == 0) return GV_OK;
    cudaStream_t s = gv_cuda(b)->stream;
    bool vec = C % 8 == 0 && gv_aligned16(out) && gv_aligned16(inp) && (!w || gv_aligned16(w)) &&
               (!bias || gv_aligned16(bias)) && (!sum || (gv_aligned16(sum) && gv_aligned16(y)));
    if (vec)
        launch_norm_forward<8, RMS>(s, (bf16 *)out, mean, rstd, (const bf16 *)inp, (const bf16 *)w,
                                    (const bf16 *)bias, N, C, eps, (bf16 *)sum, (const bf16 *)y);
    else
        launch_norm_forward<1, RMS>(s, (bf16 *)out, mean, rstd, (const bf16 *)inp, (const bf16 *)w,
                                    (const bf16 *)bias, N, C, eps, (bf16 *)sum, (const bf16 *)y);
    GV_CUDA_LAUNCHED(op);
    return GV_OK;
}

template <int VEC, int NCH, bool RMS>
static void launch_norm_backward(int G, int threads, cudaStream_t s, bf16 *dinp, float *pdw, float *pdb,
                                 const bf16 *dout, const bf16 *inp, const bf16 *w, const float *mean,
                                 const float *rstd, int N, int C, int acc) {
    norm_backward_kernel<VEC, NCH, RMS>
        <<<G, threads, 0, s>>>(dinp, pdw, pdb, dout, inp, w, mean, rstd, N, C, acc);
}

/* Threads per block and chunks per thread for `chunks` chunks of VEC channels: NCH a power of two with
 * NCH * VEC <= 64 (C <= 16384). Returns the block size, 0 when C is too large. */
template <int VEC> static int norm_bwd_shape(int chunks, int *nch_out) {
    int nch = 1;
    while (nch * NORM_BWD_THREADS < chunks) nch *= 2;
    if (nch * VEC > 64) return 0;
    *nch_out = nch;
    int threads = (chunks + nch - 1) / nch;
    return (threads + 31) / 32 * 32;
}

template <int VEC, bool RMS>
static bool dispatch_norm_backward(int G, int chunks, cudaStream_t s, bf16 *dinp, float *pdw, float *pdb,
                                   const bf16 *dout, const bf16 *inp, const bf16 *w, const float *mean,
                                   const float *rstd, int N, int C, int acc) {
    int nch = 0, threads = norm_bwd_shape<VEC>(chunks, &nch);
    if (!threads) return false;
#define GV_NB(NCH_)                                                                                          \
    launch_norm_backward<VEC, NCH_, RMS>(G, threads, s, dinp, pdw, pdb, dout, inp, w, mean, rstd, N, C,      \
                                         acc);                                                               \
    return true
    switch (nch) {
    case 1:
        GV_NB(1);
    case 2:
        GV_NB(2);
    case 4:
        GV_NB(4);
    case 8:
        GV_NB(8);
    }
    if constexpr (VEC == 1) {
        switch (nch) {
        case 16:
            GV_NB(16);
        case 32:
            GV_NB(32);
        case 64:
            GV_NB(64);
        }
    }
#undef GV_NB
    return false;
}

/* GV_CUDA_NORM_WARP=0: the block-per-row backward for every width (A/B). */
static int norm_warp_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_NORM_WARP", 1);
}

template <bool RMS>
static gv_status norm_backward(gv_backend *b, const char *op, void *dinp, void *dw, void *dbias,
                               const void *dout, const void *inp, const void *w, const float *mean,
                               const float *rstd, int N, int C, void *dsum = NULL) {
    GV_TRY(norm_check(op, N, C));
    if ((!RMS && !mean) || !rstd)
        return gv_fail(GV_ERR_INVALID, "%s: statistics from the forward are required", op);
    gv_cuda_ctx *c = gv_cuda(b);
    const size_t nb = (size_t)N * C * sizeof(bf16);
    int claimed = 0; /* dinp a pending zero: written, not accumulated */
    const struct gv_range in[] = {{dout, nb},
                                  {inp, nb},
                                  {w, w ? C * sizeof(bf16) : 0},
                                  {dw, dw ? C * sizeof(bf16) : 0},
                                  {dbias, dbias ? C * sizeof(bf16) : 0},
                                  {dsum, dsum ? C * sizeof(bf16) : 0}};
    GV_TRY(gv_cuda_zero_claim(c, &claimed, dinp, nb, in, 6));
    if (N == 0) return GV_OK;
    if (!dinp) dsum = NULL;
    if (!w) dw = NULL;
    if (!dinp && !dw && !dbias) return GV_OK;
    bool vec = C % 8 == 0 && gv_aligned16(inp) && gv_aligned16(dout) && (!dinp || gv_aligned16(dinp)) &&
               (!w || gv_aligned16(w));
    const int VECN = vec ? 8 : 1;
    const int chunks = (C + VECN - 1) / VECN;
    int nch_est = 1,
        threads_est = vec ? norm_bwd_shape<8>(chunks, &nch_est) : norm_bwd_shape<1>(chunks, &nch_est);
    if (threads_est == 0) return gv_fail(GV_ERR_UNSUPPORTED, "%s: C=%d too large (at most 16384)", op, C);
    /* ~1024 resident threads per SM; the partial sums are then reduced over G rows by 32 lanes per column */
    int G = c->num_sms * (1024 / threads_est > 0 ? 1024 / threads_est : 1);
    if (G > N) G = N;
    int nwarp = vec && C <= 1024 && norm_warp_on() ? (chunks + 31) / 32 : 0; /* chunks per lane */
    size_t ds_smem = nwarp ? NORM_WARP_SLOTS(nwarp) + (dsum ? NORM_WARP_DS(nwarp) : 0) : 0;
    if (ds_smem > c->smem_optin) /* (GPUs with ~99 KB a block at C > 768) the block kernel instead */
        nwarp = 0, ds_smem = 0;
    if (nwarp) { /* narrow rows: a warp per row, as many blocks as are resident at once (no tail wave) */
        int per_sm = 0;
        cudaError_t oe = nwarp == 1   ? norm_warp_occupancy<1, RMS>(&per_sm, ds_smem)
                         : nwarp == 2 ? norm_warp_occupancy<2, RMS>(&per_sm, ds_smem)
                         : nwarp == 3 ? norm_warp_occupancy<3, RMS>(&per_sm, ds_smem)
                                      : norm_warp_occupancy<4, RMS>(&per_sm, ds_smem);
        if (oe != cudaSuccess)
            return gv_fail(GV_ERR_BACKEND, "cuda: %s: occupancy query failed: %s", op,
                           cudaGetErrorString(oe));
        if (per_sm < 1) per_sm = 1;
        G = c->num_sms * per_sm;
        if (G > (N + NORM_WARP_NW - 1) / NORM_WARP_NW) G = (N + NORM_WARP_NW - 1) / NORM_WARP_NW;
        if (G < 1) G = 1;
    }
    float *part = NULL;
    size_t pn = (size_t)G * C;
    const int fuse_ds = dsum && nwarp; /* else the column sums run after the norm */
    if (dw || dbias || fuse_ds) GV_TRY(gv_cuda_tmp_alloc(c, (void **)&part, pn * sizeof(float) * 3));
    float *pdw = dw ? part : NULL, *pdb = dbias ? part + pn : NULL, *pds = fuse_ds ? part + 2 * pn : NULL;
    bool ok = true;
    if (nwarp) {
        const int T = NORM_WARP_NW * 32;
#define GV_NW(K_)                                                                                            \
    norm_backward_warp_kernel<K_, RMS>                                                                       \
        <<<G, T, ds_smem, c->stream>>>((bf16 *)dinp, pdw, pdb, pds, (const bf16 *)dout, (const bf16 *)inp,   \
                                       (const bf16 *)w, mean, rstd, N, C, !claimed)
        if (nwarp == 1)
            GV_NW(1);
        else if (nwarp == 2)
            GV_NW(2);
        else if (nwarp == 3)
            GV_NW(3);
        else
            GV_NW(4);
#undef GV_NW
    } else if (vec)
        ok = dispatch_norm_backward<8, RMS>(G, chunks, c->stream, (bf16 *)dinp, pdw, pdb, (const bf16 *)dout,
                                            (const bf16 *)inp, (const bf16 *)w, mean, rstd, N, C, !claimed);
    else
        ok = dispatch_norm_backward<1, RMS>(G, chunks, c->stream, (bf16 *)dinp, pdw, pdb, (const bf16 *)dout,
                                            (const bf16 *)inp, (const bf16 *)w, mean, rstd, N, C, !claimed);
    gv_status st = GV_OK;
    if (!ok) st = gv_fail(GV_ERR_UNSUPPORTED, "%s: C=%d too large (at most 16384)", op, C);
    cudaError_t e = cudaGetLastError();
    if (st == GV_OK && e != cudaSuccess)
        st = gv_fail(GV_ERR_BACKEND, "cuda: %s kernel launch failed: %s", op, cudaGetErrorString(e));
    dim3 rb(32, 32);
    if (st == GV_OK && pdw)
        gv_column_reduce_add_kernel<32><<<gv_cdiv(C, 32), rb, 0, c->stream>>>((bf16 *)dw, pdw, G, C);
    if (st == GV_OK && pdb)
        gv_column_reduce_add_kernel<32><<<gv_cdiv(C, 32), rb, 0, c->stream>>>((bf16 *)dbias, pdb, G, C);
    if (st == GV_OK && pds)
        gv_column_reduce_add_kernel<32><<<gv_cdiv(C, 32), rb, 0, c->stream>>>((bf16 *)dsum, pds, G, C);
    e = cudaGetLastError();
    if (st == GV_OK && e != cudaSuccess)
        st = gv_fail(GV_ERR_BACKEND, "cuda: %s reduce launch failed: %s", op, cudaGetErrorString(e));
    if (part) {
        gv_status st2 = gv_cuda_tmp_free(c, part);
        if (st == GV_OK) st = st2;
    }
    if (st == GV_OK && dsum && !fuse_ds) /* rows too wide for the warp kernel: a separate reduction */
        st = gv_cuda_matmul_backward(b, NULL, NULL, dsum, dinp, NULL, NULL, N, 0, C);
    return st;
}

gv_status gv_cuda_layernorm_forward(gv_backend *b, void *out, float *mean, float *rstd, const void *inp,
                                    const void *w, const void *bias, int N, int C, float eps) {
    return norm_forward<false>(b, "layernorm_forward", out, mean, rstd, inp, w, bias, N, C, eps);
}
gv_status gv_cuda_layernorm_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                     const void *inp, const void *w, const float *mean, const float *rstd,
                                     int N, int C) {
    return norm_backward<false>(b, "layernorm_backward", dinp, dw, dbias, dout, inp, w, mean, rstd, N, C);
}
gv_status gv_cuda_layernorm_backward_sum(gv_backend *b, void *dinp, void *dw, void *dbias, void *dsum,
                                         const void *dout, const void *inp, const void *w, const float *mean,
                                         const float *rstd, int N, int C) {
    return norm_backward<false>(b, "layernorm_backward_sum", dinp, dw, dbias, dout, inp, w, mean, rstd, N, C,
                                dsum);
}
gv_status gv_cuda_rmsnorm_forward(gv_backend *b, void *out, float *rstd, const void *inp, const void *w,
                                  int N, int C, float eps) {
    return norm_forward<true>(b, "rmsnorm_forward", out, NULL, rstd, inp, w, NULL, N, C, eps);
}
gv_status gv_cuda_rmsnorm_backward(gv_backend *b, void *dinp, void *dw, const void *dout, const void *inp,
                                   const void *w, const float *rstd, int N, int C) {
    return norm_backward<true>(b, "rmsnorm_backward", dinp, dw, NULL, dout, inp, w, NULL, rstd, N, C);
}
gv_status gv_cuda_add_norm_forward(gv_backend *b, void *sum, void *out, float *mean, float *rstd,
                                   const void *x, const void *y, const void *w, const void *bias, int N,
                                   int C, float eps, int rms) {
    if (rms)
        return norm_forward<true>(b, "add_rmsnorm_forward", out, NULL, rstd, x, w, NULL, N, C, eps, sum, y);
    return norm_forward<false>(b, "add_layernorm_forward", out, mean, rstd, x, w, bias, N, C, eps, sum, y);
}
