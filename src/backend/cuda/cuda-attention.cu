/* Fused scaled dot-product attention over packed qkv[B, T, (H + 2*KVH)*D] (q heads, then k heads, then v
 * heads; query head h reads kv head h / (H/KVH)). Causal or bidirectional, optional key padding mask[B, T]
 * (0 = padding key). A query that sees no key gets a zero output and a zero gradient (as on cpu).
 * The stash is the log-sum-exp of the scaled scores, lse[B, H, T] F32 (+inf for a query with no key);
 * without a stash (inference) a temporary one is used.
 *
 * Fast path (D = 64 or 128, 16-byte aligned buffers): FlashAttention-2 on tensor cores, mma.sync m16n8k16
 * bf16 with fp32 accumulators, ldmatrix from padded shared memory, cp.async double buffering; masking only
 * on the tiles that need it (padding mask, ragged end, causal diagonal).
 *   forward:  a block per (128 queries, b, h), 4 warps of 2 x 16 query rows; online softmax in registers;
 *             the score accumulators are re-used as the A operand of P @ V.
 *   backward: a block per (64 keys, b, kv head); it loops over the query heads of its group and the query
 *             blocks, keeps dK, dV in registers, writes dS^T to shared memory for dQ = dS @ K, and adds dQ
 *             into an fp32 buffer with float4 atomics; a last kernel adds that buffer into dqkv. A prologue
 *             computes D_i = rowsum(dO * O) and zeroes the dQ buffer.
 *   Blocks of one (b, head) are consecutive in the 1-D grid, so their K / V, Q / dO and dQ stay in L2.
 *   GV_ATTN_FWD_CFG / GV_ATTN_BWD_CFG pick other tile shapes (see the dispatch) for tuning.
 * Fallback (any D <= 256, any alignment; GV_ATTN_NAIVE=1 forces it): a warp per query row.
 * GV_CUDA_ATTN=cudnn (see attn_impl_cudnn) runs unmasked attention through cuDNN instead
 * (cuda-attention-cudnn.cu); both keep the same lse stash, so either backward follows either forward. */
#include "cuda-common.cuh"

#include <stdlib.h>
#include <string.h>

#define ATT_LOG2E 1.4426950408889634f
#define ATT_LN2 0.6931471805599453f
#define ATT_NAIVE_DMAX 256
#define GV_ATT_MAX_DEVICES 64

/* ---- PTX helpers -------------------------------------------------------------------------------------- */

__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16 *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const bf16 *p) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}
/* 16-byte global -> shared copy; zero-fills when !pred. */
__device__ __forceinline__ void cp_async16(bf16 *s, const bf16 *g, bool pred) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(s);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(g), "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* ROWS x D tile of rows [row0, row0 + ROWS) of a [T, stride] bf16 matrix into shared memory (row stride LDS);
 * rows >= T are zero-filled. */
template <int D, int ROWS, int NT>
__device__ __forceinline__ void load_tile(bf16 *s, const bf16 *g, int row0, int T, size_t stride) {
    constexpr int CPR = D / 8, LDS = D + 8;
#pragma unroll
    for (int i = threadIdx.x; i < ROWS * CPR; i += NT) {
        int r = i / CPR, cc = (i % CPR) * 8, row = row0 + r;
        bool ok = row < T;
        cp_async16(s + r * LDS + cc, g + (size_t)(ok ? row : 0) * stride + cc, ok);
    }
}

/* ---- forward (tensor cores) --------------------------------------------------------------------------- */

/* Forward configuration: NW warps, each owning MW m-tiles of 16 query rows (BR = 16*NW*MW query rows per
 * block), key tiles of BC, Q fragments held in registers (QREG) or re-read from shared memory per k-step.
 * More rows per warp amortise each K / V fragment read from shared memory over more MMAs. */
template <int D, int NW, int MW, int BC> constexpr size_t fwd_smem_bytes() {
    return (size_t)(16 * NW * MW + 4 * BC) * (D + 8) * sizeof(bf16) + 2 * BC * sizeof(int);
}

template <int D, int NW, int MW, int BC, bool QREG>
__global__ void __launch_bounds__(NW * 32)
    flash_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ lse, const bf16 *__restrict__ qkv,
                     const int32_t *__restrict__ mask, int T, int H, int KVH, int causal, float sl2) {
    constexpr int BR = 16 * NW * MW, LDS = D + 8, NT = NW * 32;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = (bf16 *)smem_raw;          /* [BR][LDS] */
    bf16 *sK = sQ + BR * LDS;             /* [2][BC][LDS] */
    bf16 *sV = sK + 2 * BC * LDS;         /* [2][BC][LDS] */
    int *sM = (int *)(sV + 2 * BC * LDS); /* [2][BC] key visible (padding and T) */
    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t4 = lane & 3;
    /* 1-D grid, the query blocks of one (b, h) consecutive (its K / V stay in L2), heaviest causal first */
    const int nqb = (T + BR - 1) / BR;
    const int bh = blockIdx.x / nqb, b = bh / H, h = bh % H, kvh = h / (H / KVH);
    const int qb = nqb - 1 - (int)(blockIdx.x % nqb);
    const int q0 = qb * BR;
    const size_t S = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * S;
    const bf16 *qg = base + (size_t)h * D, *kg = base + (size_t)(H + kvh) * D;
    const bf16 *vg = base + (size_t)(H + KVH + kvh) * D;
    const int32_t *mb = mask ? mask + (size_t)b * T : nullptr;
    const int kend = causal ? min(T, q0 + BR) : T;
    const int nkt = (kend + BC - 1) / BC;

    load_tile<D, BR, NT>(sQ, qg, q0, T, S);
    load_tile<D, BC, NT>(sK, kg, 0, T, S);
    load_tile<D, BC, NT>(sV, vg, 0, T, S);
    for (int i = tid; i < BC; i += NT) sM[i] = i < T && (!mb || mb[i] != 0);
    cp_async_commit();

    float o[MW][D / 8][4];
    float m[MW][2], l[MW][2];
#pragma unroll
    for (int mw = 0; mw < MW; mw++) {
#pragma unroll
        for (int i = 0; i < D / 8; i++) o[mw][i][0] = o[mw][i][1] = o[mw][i][2] = o[mw][i][3] = 0.0f;
        m[mw][0] = m[mw][1] = -INFINITY;
        l[mw][0] = l[mw][1] = 0.0f;
    }
    uint32_t qf[QREG ? MW : 1][QREG ? D / 16 : 1][4];
    const int wr0 = w * 16 * MW; /* first query row of this warp in the block */

    for (int j = 0; j < nkt; j++) {
        const int buf = j & 1;
        if (j + 1 < nkt) {
            const int k1 = (j + 1) * BC;
            load_tile<D, BC, NT>(sK + (buf ^ 1) * BC * LDS, kg, k1, T, S);
            load_tile<D, BC, NT>(sV + (buf ^ 1) * BC * LDS, vg, k1, T, S);
            for (int i = tid; i < BC; i += NT)
                sM[(buf ^ 1) * BC + i] = k1 + i < T && (!mb || mb[k1 + i] != 0);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if constexpr (QREG) {
            if (j == 0) {
#pragma unroll
                for (int mw = 0; mw < MW; mw++)
#pragma unroll
                    for (int kk = 0; kk < D / 16; kk++)
                        ldsm_x4(qf[mw][kk],
                                sQ + (wr0 + mw * 16 + (lane & 15)) * LDS + kk * 16 + ((lane >> 4) << 3));
            }
        }
        const bf16 *Kb = sK + buf * BC * LDS, *Vb = sV + buf * BC * LDS;
        const int *Mb = sM + buf * BC;
        const int k0 = j * BC;

        float s[MW][BC / 8][4];
#pragma unroll
        for (int mw = 0; mw < MW; mw++)
#pragma unroll
            for (int i = 0; i < BC / 8; i++) s[mw][i][0] = s[mw][i][1] = s[mw][i][2] = s[mw][i][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t qa[MW][4];
#pragma unroll
            for (int mw = 0; mw < MW; mw++) {
                if constexpr (QREG) {
#pragma unroll
                    for (int e = 0; e < 4; e++) qa[mw][e] = qf[mw][kk][e];
                } else {
                    ldsm_x4(qa[mw], sQ + (wr0 + mw * 16 + (lane & 15)) * LDS + kk * 16 + ((lane >> 4) << 3));
                }
            }
#pragma unroll
            for (int np = 0; np < BC / 16; np++) {
                uint32_t kb[4];
                ldsm_x4(kb, Kb + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 +
                                (((lane >> 3) & 1) << 3));
#pragma unroll
                for (int mw = 0; mw < MW; mw++) {
                    mma16816(s[mw][2 * np], qa[mw], kb[0], kb[1]);
                    mma16816(s[mw][2 * np + 1], qa[mw], kb[2], kb[3]);
                }
            }
        }
#pragma unroll
        for (int mw = 0; mw < MW; mw++) {
            /* scale to log2 units, mask (only tiles that need it: padding mask, ragged end, causal diagonal),
             * row max over the quad */
            const int qr0 = q0 + wr0 + mw * 16 + g, qr1 = qr0 + 8;
            const bool need_mask = mb || k0 + BC > T || (causal && k0 + BC - 1 > q0 + wr0 + mw * 16);
            float mx0 = m[mw][0], mx1 = m[mw][1];
            if (need_mask) {
#pragma unroll
                for (int nt = 0; nt < BC / 8; nt++) {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int col = nt * 8 + 2 * t4 + e, key = k0 + col;
                        bool kv = Mb[col] != 0;
                        float x0 = s[mw][nt][e] * sl2, x1 = s[mw][nt][2 + e] * sl2;
                        if (!kv || (causal && key > qr0)) x0 = -INFINITY;
                        if (!kv || (causal && key > qr1)) x1 = -INFINITY;
                        s[mw][nt][e] = x0;
                        s[mw][nt][2 + e] = x1;
                        mx0 = fmaxf(mx0, x0);
                        mx1 = fmaxf(mx1, x1);
                    }
                }
            } else {
#pragma unroll
                for (int nt = 0; nt < BC / 8; nt++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) s[mw][nt][e] *= sl2;
                    mx0 = fmaxf(mx0, fmaxf(s[mw][nt][0], s[mw][nt][1]));
                    mx1 = fmaxf(mx1, fmaxf(s[mw][nt][2], s[mw][nt][3]));
                }
            }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mu0 = mx0 == -INFINITY ? 0.0f : mx0, mu1 = mx1 == -INFINITY ? 0.0f : mx1;
            const float a0 = ex2(m[mw][0] - mu0), a1 = ex2(m[mw][1] - mu1);
            m[mw][0] = mx0;
            m[mw][1] = mx1;
            l[mw][0] *= a0;
            l[mw][1] *= a1;
#pragma unroll
            for (int nt = 0; nt < BC / 8; nt++) {
                s[mw][nt][0] = ex2(s[mw][nt][0] - mu0);
                s[mw][nt][1] = ex2(s[mw][nt][1] - mu0);
                s[mw][nt][2] = ex2(s[mw][nt][2] - mu1);
                s[mw][nt][3] = ex2(s[mw][nt][3] - mu1);
                l[mw][0] += s[mw][nt][0] + s[mw][nt][1];
                l[mw][1] += s[mw][nt][2] + s[mw][nt][3];
            }
#pragma unroll
            for (int dt = 0; dt < D / 8; dt++) {
                o[mw][dt][0] *= a0;
                o[mw][dt][1] *= a0;
                o[mw][dt][2] *= a1;
                o[mw][dt][3] *= a1;
            }
        }
        /* O += P V: the score accumulators of two n-tiles form the A fragment of one k-step */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t pa[MW][4];
#pragma unroll
            for (int mw = 0; mw < MW; mw++) {
                pa[mw][0] = pack_bf16(s[mw][2 * kk][0], s[mw][2 * kk][1]);
                pa[mw][1] = pack_bf16(s[mw][2 * kk][2], s[mw][2 * kk][3]);
                pa[mw][2] = pack_bf16(s[mw][2 * kk + 1][0], s[mw][2 * kk + 1][1]);
                pa[mw][3] = pack_bf16(s[mw][2 * kk + 1][2], s[mw][2 * kk + 1][3]);
            }
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t vb[4];
                ldsm_x4_t(vb, Vb + (kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LDS + dp * 16 +
                                  ((lane >> 4) << 3));
#pragma unroll
                for (int mw = 0; mw < MW; mw++) {
                    mma16816(o[mw][2 * dp], pa[mw], vb[0], vb[1]);
                    mma16816(o[mw][2 * dp + 1], pa[mw], vb[2], vb[3]);
                }
            }
        }
        __syncthreads();
    }

    /* normalise, stage the warp's rows in its own rows of sQ, then 16-byte stores */
    const size_t HD = (size_t)H * D;
#pragma unroll
    for (int mw = 0; mw < MW; mw++) {
        float l0 = l[mw][0], l1 = l[mw][1];
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
        l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
        bf16 *sO = sQ + (wr0 + mw * 16) * LDS;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            *reinterpret_cast<uint32_t *>(sO + g * LDS + dt * 8 + 2 * t4) =
                pack_bf16(o[mw][dt][0] * inv0, o[mw][dt][1] * inv0);
            *reinterpret_cast<uint32_t *>(sO + (g + 8) * LDS + dt * 8 + 2 * t4) =
                pack_bf16(o[mw][dt][2] * inv1, o[mw][dt][3] * inv1);
        }
        const int qr0 = q0 + wr0 + mw * 16 + g, qr1 = qr0 + 8;
        if (t4 == 0) {
            if (qr0 < T) lse[(size_t)bh * T + qr0] = l0 > 0.0f ? (m[mw][0] + log2f(l0)) * ATT_LN2 : INFINITY;
            if (qr1 < T) lse[(size_t)bh * T + qr1] = l1 > 0.0f ? (m[mw][1] + log2f(l1)) * ATT_LN2 : INFINITY;
        }
    }
    __syncwarp();
#pragma unroll
    for (int i = lane; i < 16 * MW * D / 8; i += 32) {
        int r = i / (D / 8), cc = (i % (D / 8)) * 8, q = q0 + wr0 + r;
        if (q < T)
            *reinterpret_cast<int4 *>(out + ((size_t)b * T + q) * HD + (size_t)h * D + cc) =
                *reinterpret_cast<const int4 *>(sQ + (wr0 + r) * LDS + cc);
    }
}

/* ---- backward (tensor cores) -------------------------------------------------------------------------- */

/* dvec[(b*H + h)*T + q] = sum_d dO * O for that row: a warp per row. */
__global__ void attn_dvec_kernel(float *dvec, const bf16 *dout, const bf16 *out, int B, int T, int H, int D) {
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)B * H * T) return;
    const int q = (int)(row % T), h = (int)(row / T % H);
    const size_t b = row / ((size_t)T * H);
    const size_t off = (b * T + q) * (size_t)H * D + (size_t)h * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += gv_bf(dout[off + d]) * gv_bf(out[off + d]);
    s = gv_warp_sum(s);
    if (lane == 0) dvec[row] = s;
}

/* Fast-path prologue: dvec as above, and zero the row's fp32 dQ accumulator dq_acc[(b*T + q)*H + h][D].
 * D/8 lanes per row, 16-byte loads. */
template <int D>
__global__ void attn_dvec_zero_kernel(float *dvec, float *dq_acc, const bf16 *dout, const bf16 *out, int B,
                                      int T, int H) {
    constexpr int LPR = D / 8; /* lanes per row */
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / LPR;
    const int sub = threadIdx.x % LPR;
    const bool ok = row < (size_t)B * H * T; /* no early return: the shuffles need the whole warp */
    const size_t rr = ok ? row : 0;
    const int q = (int)(rr % T), h = (int)(rr / T % H);
    const size_t b = rr / ((size_t)T * H);
    const size_t off = (b * T + q) * (size_t)H * D + (size_t)h * D + sub * 8;
    float a[8], o[8], s = 0.0f;
    gv_load_bf<8>(a, dout + off);
    gv_load_bf<8>(o, out + off);
#pragma unroll
    for (int k = 0; k < 8; k++) s += a[k] * o[k];
#pragma unroll
    for (int m = LPR / 2; m > 0; m >>= 1) s += __shfl_xor_sync(0xffffffffu, s, m);
    if (!ok) return;
    if (sub == 0) dvec[row] = s;
    float4 *z = reinterpret_cast<float4 *>(dq_acc + ((b * T + q) * H + h) * D + sub * 8);
    z[0] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    z[1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

template <int D, int NW, int BR> constexpr size_t bwd_smem_bytes() {
    return (size_t)(2 * 16 * NW + 4 * BR) * (D + 8) * sizeof(bf16) +
           (size_t)16 * NW * (BR + 8) * sizeof(bf16) + 4 * BR * sizeof(float) + 16 * NW * sizeof(int);
}

template <int D, int NW, int BR>
__global__ void __launch_bounds__(NW * 32)
    flash_bwd_kernel(bf16 *__restrict__ dqkv, float *__restrict__ dq_acc, const bf16 *__restrict__ dout,
                     const bf16 *__restrict__ qkv, const float *__restrict__ lse,
                     const float *__restrict__ dvec, const int32_t *__restrict__ mask, int T, int H, int KVH,
                     int causal, float scale, float sl2, int acc) {
    constexpr int BC = 16 * NW, LDS = D + 8, LDSS = BR + 8, NT = NW * 32;
    constexpr int MT = BR / 16, WN = NW / MT, NTQ = (D / 8) / WN;
    static_assert(NW % MT == 0 && (D / 8) % WN == 0 && NTQ % 2 == 0, "bad backward tile configuration");
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = (bf16 *)smem_raw;           /* [BC][LDS] */
    bf16 *sV = sK + BC * LDS;              /* [BC][LDS] */
    bf16 *sQ = sV + BC * LDS;              /* [2][BR][LDS] */
    bf16 *sO = sQ + 2 * BR * LDS;          /* [2][BR][LDS]  dO */
    bf16 *sS = sO + 2 * BR * LDS;          /* [BC][LDSS]    dS^T */
    float *sL = (float *)(sS + BC * LDSS); /* [2][BR] lse * log2(e) */
    float *sD = sL + 2 * BR;               /* [2][BR] rowsum(dO * O) */
    int *sM = (int *)(sD + 2 * BR);        /* [BC] key visible */

    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t4 = lane & 3;
    /* 1-D grid, the key blocks of one (b, kv head) consecutive: they run together, so their dQ atomics and
     * Q / dO reads stay in L2 */
    const int nkb = (T + BC - 1) / BC;
    const int bg = blockIdx.x / nkb, b = bg / KVH, kvh = bg % KVH, G = H / KVH;
    const int k0 = (blockIdx.x % nkb) * BC;
    const size_t S = (size_t)(H + 2 * KVH) * D, HD = (size_t)H * D;
    const bf16 *base = qkv + (size_t)b * T * S;
    const bf16 *dob = dout + (size_t)b * T * HD;
    const int32_t *mb = mask ? mask + (size_t)b * T : nullptr;
    const int qb_start = causal ? k0 / BR : 0;
    const int nq = (T + BR - 1) / BR - qb_start;
    const int niter = G * nq;

    load_tile<D, BC, NT>(sK, base + (size_t)(H + kvh) * D, k0, T, S);
    load_tile<D, BC, NT>(sV, base + (size_t)(H + KVH + kvh) * D, k0, T, S);
    for (int i = tid; i < BC; i += NT) sM[i] = k0 + i < T && (!mb || mb[k0 + i] != 0);
    {
        const int hh = kvh * G, q0 = qb_start * BR;
        load_tile<D, BR, NT>(sQ, base + (size_t)hh * D, q0, T, S);
        load_tile<D, BR, NT>(sO, dob + (size_t)hh * D, q0, T, HD);
        for (int i = tid; i < BR; i += NT) {
            int q = q0 + i;
            sL[i] = q < T ? lse[((size_t)b * H + hh) * T + q] * ATT_LOG2E : INFINITY;
            sD[i] = q < T ? dvec[((size_t)b * H + hh) * T + q] : 0.0f;
        }
    }
    cp_async_commit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[i][e] = dv[i][e] = 0.0f;
    const int lr0 = w * 16 + g, lr1 = lr0 + 8; /* this thread's key rows in the block */
    const int kr0 = k0 + lr0, kr1 = k0 + lr1;

    for (int it = 0; it < niter; it++) {
        const int buf = it & 1;
        const int hh = kvh * G + it / nq, q0 = (qb_start + it % nq) * BR;
        const bool has_next = it + 1 < niter;
        float nL = INFINITY, nD = 0.0f;
        if (has_next) {
            const int hn = kvh * G + (it + 1) / nq, qn = (qb_start + (it + 1) % nq) * BR;
            load_tile<D, BR, NT>(sQ + (buf ^ 1) * BR * LDS, base + (size_t)hn * D, qn, T, S);
            load_tile<D, BR, NT>(sO + (buf ^ 1) * BR * LDS, dob + (size_t)hn * D, qn, T, HD);
            cp_async_commit();
            if (tid < BR && qn + tid < T) {
                nL = lse[((size_t)b * H + hn) * T + qn + tid] * ATT_LOG2E;
                nD = dvec[((size_t)b * H + hn) * T + qn + tid];
            }
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        const bf16 *Qb = sQ + buf * BR * LDS, *Ob = sO + buf * BR * LDS;
        const float *Lb = sL + buf * BR, *Db = sD + buf * BR;
        const bool kv0 = sM[lr0] != 0, kv1 = sM[lr1] != 0;

        /* S^T = K Q^T and dP^T = V dO^T for the warp's 16 keys x BR queries */
        float st[BR / 8][4], dpt[BR / 8][4];
#pragma unroll
        for (int i = 0; i < BR / 8; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) st[i][e] = dpt[i][e] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t ka[4], va[4];
            ldsm_x4(ka, sK + (w * 16 + (lane & 15)) * LDS + kk * 16 + ((lane >> 4) << 3));
            ldsm_x4(va, sV + (w * 16 + (lane & 15)) * LDS + kk * 16 + ((lane >> 4) << 3));
#pragma unroll
            for (int np = 0; np < BR / 16; np++) {
                uint32_t qbf[4], obf[4];
                const int off =
                    (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + kk * 16 + (((lane >> 3) & 1) << 3);
                ldsm_x4(qbf, Qb + off);
                ldsm_x4(obf, Ob + off);
                mma16816(st[2 * np], ka, qbf[0], qbf[1]);
                mma16816(st[2 * np + 1], ka, qbf[2], qbf[3]);
                mma16816(dpt[2 * np], va, obf[0], obf[1]);
                mma16816(dpt[2 * np + 1], va, obf[2], obf[3]);
            }
        }
        /* P = exp(s*scale - lse), dS = P (dP - D). Masking only where needed (queries >= T have lse = +inf,
         * so their P is 0 anyway). */
        const bool need_mask = mb || k0 + BC > T || (causal && k0 + w * 16 + 15 > q0);
#pragma unroll
        for (int nt = 0; nt < BR / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int c = nt * 8 + 2 * t4 + e, q = q0 + c;
                const float L = Lb[c], Dq = Db[c];
                float p0 = ex2(st[nt][e] * sl2 - L), p1 = ex2(st[nt][2 + e] * sl2 - L);
                if (need_mask) {
                    if (!(kv0 && (!causal || kr0 <= q))) p0 = 0.0f;
                    if (!(kv1 && (!causal || kr1 <= q))) p1 = 0.0f;
                }
                st[nt][e] = p0;
                st[nt][2 + e] = p1;
                dpt[nt][e] = p0 * (dpt[nt][e] - Dq);
                dpt[nt][2 + e] = p1 * (dpt[nt][2 + e] - Dq);
            }
        }
        /* dV += P^T dO, dK += dS^T Q; dS^T also goes to shared memory for dQ */
#pragma unroll
        for (int kq = 0; kq < BR / 16; kq++) {
            const uint32_t pa[4] = {pack_bf16(st[2 * kq][0], st[2 * kq][1]),
                                    pack_bf16(st[2 * kq][2], st[2 * kq][3]),
                                    pack_bf16(st[2 * kq + 1][0], st[2 * kq + 1][1]),
                                    pack_bf16(st[2 * kq + 1][2], st[2 * kq + 1][3])};
            const uint32_t sa[4] = {pack_bf16(dpt[2 * kq][0], dpt[2 * kq][1]),
                                    pack_bf16(dpt[2 * kq][2], dpt[2 * kq][3]),
                                    pack_bf16(dpt[2 * kq + 1][0], dpt[2 * kq + 1][1]),
                                    pack_bf16(dpt[2 * kq + 1][2], dpt[2 * kq + 1][3])};
            *reinterpret_cast<uint32_t *>(sS + lr0 * LDSS + kq * 16 + 2 * t4) = sa[0];
            *reinterpret_cast<uint32_t *>(sS + lr1 * LDSS + kq * 16 + 2 * t4) = sa[1];
            *reinterpret_cast<uint32_t *>(sS + lr0 * LDSS + kq * 16 + 8 + 2 * t4) = sa[2];
            *reinterpret_cast<uint32_t *>(sS + lr1 * LDSS + kq * 16 + 8 + 2 * t4) = sa[3];
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t ob[4], qb2[4];
                const int off =
                    (kq * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LDS + dp * 16 + ((lane >> 4) << 3);
                ldsm_x4_t(ob, Ob + off);
                ldsm_x4_t(qb2, Qb + off);
                mma16816(dv[2 * dp], pa, ob[0], ob[1]);
                mma16816(dv[2 * dp + 1], pa, ob[2], ob[3]);
                mma16816(dk[2 * dp], sa, qb2[0], qb2[1]);
                mma16816(dk[2 * dp + 1], sa, qb2[2], qb2[3]);
            }
        }
        __syncthreads();
        /* dQ (BR x D) = dS (BR x BC) K (BC x D): warp w takes m-tile w % MT and NTQ n-tiles */
        {
            const int mt = w % MT, d0 = (w / MT) * NTQ * 8;
            float dq[NTQ][4];
#pragma unroll
            for (int i = 0; i < NTQ; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++) {
                uint32_t a[4];
                ldsm_x4_t(a, sS + (kk * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDSS + mt * 16 +
                                 (((lane >> 3) & 1) << 3));
#pragma unroll
                for (int np = 0; np < NTQ / 2; np++) {
                    uint32_t kb[4];
                    ldsm_x4_t(kb, sK + (kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3)) * LDS + d0 +
                                      np * 16 + ((lane >> 4) << 3));
                    mma16816(dq[2 * np], a, kb[0], kb[1]);
                    mma16816(dq[2 * np + 1], a, kb[2], kb[3]);
                }
            }
            const int qa = q0 + mt * 16 + g, qc = qa + 8;
            float *rowa = dq_acc + (((size_t)b * T + qa) * H + hh) * D + d0 + 2 * t4;
            float *rowc = dq_acc + (((size_t)b * T + qc) * H + hh) * D + d0 + 2 * t4;
#pragma unroll
            for (int nt = 0; nt < NTQ; nt++) {
#if __CUDA_ARCH__ >= 900
                /* pair lanes t4, t4^1 swap halves so each adds one 16-byte float4: the even lane takes row
                 * qa, the odd lane row qc (half the atomics of float2) */
                const bool odd = t4 & 1;
                const float sx = odd ? dq[nt][0] : dq[nt][2], sy = odd ? dq[nt][1] : dq[nt][3];
                const float rx = __shfl_xor_sync(0xffffffffu, sx, 1),
                            ry = __shfl_xor_sync(0xffffffffu, sy, 1);
                if (!odd && qa < T)
                    atomicAdd(reinterpret_cast<float4 *>(rowa + nt * 8),
                              make_float4(dq[nt][0] * scale, dq[nt][1] * scale, rx * scale, ry * scale));
                if (odd && qc < T)
                    atomicAdd(reinterpret_cast<float4 *>(rowc - 2 + nt * 8),
                              make_float4(rx * scale, ry * scale, dq[nt][2] * scale, dq[nt][3] * scale));
#else
                if (qa < T) {
                    atomicAdd(rowa + nt * 8, dq[nt][0] * scale);
                    atomicAdd(rowa + nt * 8 + 1, dq[nt][1] * scale);
                }
                if (qc < T) {
                    atomicAdd(rowc + nt * 8, dq[nt][2] * scale);
                    atomicAdd(rowc + nt * 8 + 1, dq[nt][3] * scale);
                }
#endif
            }
        }
        if (has_next && tid < BR) {
            sL[(buf ^ 1) * BR + tid] = nL;
            sD[(buf ^ 1) * BR + tid] = nD;
        }
        __syncthreads();
    }

    /* dqkv k, v rows of this block += dK * scale, dV (written when !acc: a claimed deferred zero) */
    bf16 *dkb = dqkv + (size_t)b * T * S + (size_t)(H + kvh) * D,
         *dvb = dqkv + (size_t)b * T * S + (size_t)(H + KVH + kvh) * D;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
        const int col = dt * 8 + 2 * t4;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int kr = half ? kr1 : kr0;
            if (kr >= T) continue;
            __nv_bfloat162 *pk = reinterpret_cast<__nv_bfloat162 *>(dkb + (size_t)kr * S + col);
            __nv_bfloat162 *pv = reinterpret_cast<__nv_bfloat162 *>(dvb + (size_t)kr * S + col);
            float2 ok = make_float2(0.0f, 0.0f), ov = ok;
            if (acc) ok = __bfloat1622float2(*pk), ov = __bfloat1622float2(*pv);
            *pk = __floats2bfloat162_rn(ok.x + dk[dt][2 * half] * scale, ok.y + dk[dt][2 * half + 1] * scale);
            *pv = __floats2bfloat162_rn(ov.x + dv[dt][2 * half], ov.y + dv[dt][2 * half + 1]);
        }
    }
}

/* dst[r*dst_stride + dst_off + i] += acc[r*width + i] for r < rows, i < width (= when !accum); VEC = 4
 * consecutive elements per thread (width, dst_stride and dst_off multiples of 4, 8-byte aligned dst) or 1. */
template <int VEC>
__global__ void add_acc_rows_kernel(bf16 *dst, const float *acc, size_t rows, int width, size_t dst_stride,
                                    size_t dst_off, int accum) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= rows * width) return;
    size_t r = i / width, c = i % width;
    bf16 *p = dst + r * dst_stride + dst_off + c;
    if constexpr (VEC == 4) {
        float4 a = *reinterpret_cast<const float4 *>(acc + i);
        __nv_bfloat162 *p2 = reinterpret_cast<__nv_bfloat162 *>(p);
        float2 x0 = make_float2(0.0f, 0.0f), x1 = x0;
        if (accum) x0 = __bfloat1622float2(p2[0]), x1 = __bfloat1622float2(p2[1]);
        p2[0] = __floats2bfloat162_rn(x0.x + a.x, x0.y + a.y);
        p2[1] = __floats2bfloat162_rn(x1.x + a.z, x1.y + a.w);
    } else {
        *p = gv_tobf((accum ? gv_bf(*p) : 0.0f) + acc[i]);
    }
}

/* ---- fallback: a warp per query row ------------------------------------------------------------------- */

__global__ void attn_naive_fwd_kernel(bf16 *out, float *lse, const bf16 *qkv, const int32_t *mask, int B,
                                      int T, int H, int KVH, int D, int causal, float scale) {
    constexpr int NR = ATT_NAIVE_DMAX / 32;
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; /* (b*H + h)*T + q */
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)B * H * T) return;
    const int q = (int)(row % T), h = (int)(row / T % H), b = (int)(row / ((size_t)T * H));
    const int kvh = h / (H / KVH);
    const size_t S = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * S;
    float qv[NR], o[NR];
#pragma unroll
    for (int i = 0; i < NR; i++) {
        int d = lane + 32 * i;
        qv[i] = d < D ? gv_bf(base[(size_t)q * S + (size_t)h * D + d]) : 0.0f;
        o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int kend = causal ? q + 1 : T;
    for (int j = 0; j < kend; j++) {
        if (mask && mask[(size_t)b * T + j] == 0) continue;
        const bf16 *k = base + (size_t)j * S + (size_t)(H + kvh) * D,
                   *v = base + (size_t)j * S + (size_t)(H + KVH + kvh) * D;
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < NR; i++) {
            int d = lane + 32 * i;
            if (d < D) s += qv[i] * gv_bf(k[d]);
        }
        s = gv_warp_sum(s) * scale;
        float mn = fmaxf(m, s), a = expf(m - mn), p = expf(s - mn);
        l = l * a + p;
#pragma unroll
        for (int i = 0; i < NR; i++) {
            int d = lane + 32 * i;
            o[i] = o[i] * a + (d < D ? p * gv_bf(v[d]) : 0.0f);
        }
        m = mn;
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    bf16 *op = out + ((size_t)b * T + q) * H * D + (size_t)h * D;
#pragma unroll
    for (int i = 0; i < NR; i++) {
        int d = lane + 32 * i;
        if (d < D) op[d] = gv_tobf(o[i] * inv);
    }
    if (lane == 0) lse[row] = l > 0.0f ? m + logf(l) : INFINITY;
}

/* dq written directly; dK, dV into dkv_acc[B*T, 2*KVH, D] fp32 with atomics. */
__global__ void attn_naive_bwd_kernel(bf16 *dqkv, float *dkv_acc, const bf16 *dout, const bf16 *qkv,
                                      const float *lse, const float *dvec, const int32_t *mask, int B, int T,
                                      int H, int KVH, int D, int causal, float scale) {
    constexpr int NR = ATT_NAIVE_DMAX / 32;
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)B * H * T) return;
    const int q = (int)(row % T), h = (int)(row / T % H), b = (int)(row / ((size_t)T * H));
    const int kvh = h / (H / KVH);
    const size_t S = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * S;
    const bf16 *dop = dout + ((size_t)b * T + q) * H * D + (size_t)h * D;
    const float L = lse[row], Dq = dvec[row];
    float qv[NR], dov[NR], dq[NR];
#pragma unroll
    for (int i = 0; i < NR; i++) {
        int d = lane + 32 * i;
        qv[i] = d < D ? gv_bf(base[(size_t)q * S + (size_t)h * D + d]) : 0.0f;
        dov[i] = d < D ? gv_bf(dop[d]) : 0.0f;
        dq[i] = 0.0f;
    }
    const int kend = causal ? q + 1 : T;
    for (int j = 0; j < kend; j++) {
        if (mask && mask[(size_t)b * T + j] == 0) continue;
        const bf16 *k = base + (size_t)j * S + (size_t)(H + kvh) * D,
                   *v = base + (size_t)j * S + (size_t)(H + KVH + kvh) * D;
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int i = 0; i < NR; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                s += qv[i] * gv_bf(k[d]);
                dp += dov[i] * gv_bf(v[d]);
            }
        }
        s = gv_warp_sum(s) * scale;
        dp = gv_warp_sum(dp);
        const float p = expf(s - L), ds = p * (dp - Dq);
        float *ak = dkv_acc + (((size_t)b * T + j) * 2 * KVH + kvh) * D;
        float *av = dkv_acc + (((size_t)b * T + j) * 2 * KVH + KVH + kvh) * D;
#pragma unroll
        for (int i = 0; i < NR; i++) {
            int d = lane + 32 * i;
            if (d < D) {
                dq[i] += ds * gv_bf(k[d]);
                atomicAdd(ak + d, ds * qv[i] * scale);
                atomicAdd(av + d, p * dov[i]);
            }
        }
    }
    bf16 *dqp = dqkv + ((size_t)b * T + q) * S + (size_t)h * D;
#pragma unroll
    for (int i = 0; i < NR; i++) {
        int d = lane + 32 * i;
        if (d < D) dqp[d] = gv_tobf(gv_bf(dqp[d]) + dq[i] * scale);
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

static gv_status attn_check(const char *op, int B, int T, int H, int KVH, int D) {
    if (B < 0 || T < 0 || H <= 0 || KVH <= 0 || D <= 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape B=%d T=%d H=%d KVH=%d D=%d", op, B, T, H, KVH, D);
    if (H % KVH != 0)
        return gv_fail(GV_ERR_INVALID, "%s: H=%d query heads not divisible by KVH=%d kv heads", op, H, KVH);
    return GV_OK;
}

/* Tile configuration of the fast kernels: GV_ATTN_FWD_CFG / GV_ATTN_BWD_CFG = 0 (default, the fastest
 * measured), 1, 2, 3 select the alternatives listed at the dispatch below (for tuning and tests). */
static int attn_cfg(const char *name) {
    const char *e = getenv(name);
    return e ? atoi(e) : 0;
}

/* GV_CUDA_ATTN=own|cudnn: the own kernels below or cuDNN's fused attention (cuda-attention-cudnn.cu; it
 * takes no padding mask, and a shape it refuses falls back here). The default is the faster of the two for
 * GPT-2 124M on an H200 (docs/benchmarks.md). */
#define GV_CUDA_ATTN_DEFAULT_CUDNN 1
static gv_status attn_impl_cudnn(int *use) {
    const char *e = getenv("GV_CUDA_ATTN");
    *use = GV_CUDA_ATTN_DEFAULT_CUDNN;
    if (!e || !e[0]) return GV_OK;
    if (!strcmp(e, "cudnn"))
        *use = 1;
    else if (!strcmp(e, "own"))
        *use = 0;
    else
        return gv_fail(GV_ERR_INVALID, "GV_CUDA_ATTN=%s: expected own or cudnn", e);
    return GV_OK;
}

/* GV_ATTN_NAIVE=1 forces the fallback kernels (a baseline for timing and a cross-check). */
static int attn_naive_forced(void) {
    const char *e = getenv("GV_ATTN_NAIVE");
    return e && e[0] && e[0] != '0';
}

size_t gv_cuda_attention_stash_bytes(gv_backend *b, int B, int T, int H) {
    (void)b;
    if (B <= 0 || T <= 0 || H <= 0) return 0;
    return (size_t)B * H * T * sizeof(float);
}

template <int D, int NW, int MW, int BC, bool QREG>
static gv_status launch_fwd(gv_cuda_ctx *c, bf16 *out, float *lse, const bf16 *qkv, const int32_t *mask,
                            int B, int T, int H, int KVH, int causal, float sl2) {
    constexpr size_t smem = fwd_smem_bytes<D, NW, MW, BC>();
    static bool attr_set[GV_ATT_MAX_DEVICES]; /* the attribute is per device */
    if (c->device >= GV_ATT_MAX_DEVICES || !attr_set[c->device]) {
        GV_CUDA_TRY(cudaFuncSetAttribute(flash_fwd_kernel<D, NW, MW, BC, QREG>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        if (c->device < GV_ATT_MAX_DEVICES) attr_set[c->device] = true;
    }
    unsigned grid = (unsigned)B * H * gv_cdiv(T, 16 * NW * MW);
    flash_fwd_kernel<D, NW, MW, BC, QREG>
        <<<grid, NW * 32, smem, c->stream>>>(out, lse, qkv, mask, T, H, KVH, causal, sl2);
    GV_CUDA_LAUNCHED("attention_forward");
    return GV_OK;
}

template <int D, int NW, int BR>
static gv_status launch_bwd(gv_cuda_ctx *c, bf16 *dqkv, float *dq_acc, const bf16 *dout, const bf16 *qkv,
                            const float *lse, const float *dvec, const int32_t *mask, int B, int T, int H,
                            int KVH, int causal, float scale, int acc) {
    constexpr size_t smem = bwd_smem_bytes<D, NW, BR>();
    static bool attr_set[GV_ATT_MAX_DEVICES]; /* the attribute is per device */
    if (c->device >= GV_ATT_MAX_DEVICES || !attr_set[c->device]) {
        GV_CUDA_TRY(cudaFuncSetAttribute(flash_bwd_kernel<D, NW, BR>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        if (c->device < GV_ATT_MAX_DEVICES) attr_set[c->device] = true;
    }
    unsigned grid = (unsigned)B * KVH * gv_cdiv(T, 16 * NW);
    flash_bwd_kernel<D, NW, BR><<<grid, NW * 32, smem, c->stream>>>(
        dqkv, dq_acc, dout, qkv, lse, dvec, mask, T, H, KVH, causal, scale, scale * ATT_LOG2E, acc);
    GV_CUDA_LAUNCHED("attention_backward");
    return GV_OK;
}

static bool attn_fast(int D, const void *a, const void *b2) {
    return !attn_naive_forced() && (D == 64 || D == 128) && gv_aligned16(a) && gv_aligned16(b2);
}

static gv_status attn_forward(gv_backend *b, void *out, float *stash, const void *qkv, const int32_t *mask,
                              int B, int T, int H, int KVH, int D, int causal) {
    gv_cuda_ctx *c = gv_cuda(b);
    int cudnn = 0;
    GV_TRY(attn_impl_cudnn(&cudnn));
    if (cudnn && !mask && !attn_naive_forced()) {
        int done = 0;
        GV_TRY(gv_cudnn_attention_forward(c, &done, (bf16 *)out, stash, (const bf16 *)qkv, B, T, H, KVH, D,
                                          causal));
        if (done) return GV_OK;
    }
    const float scale = 1.0f / sqrtf((float)D);
    if (attn_fast(D, qkv, out)) {
        const float sl2 = scale * ATT_LOG2E;
        bf16 *o = (bf16 *)out;
        const bf16 *x = (const bf16 *)qkv;
        if (D == 64) {
            switch (attn_cfg("GV_ATTN_FWD_CFG")) {
            case 1:
                return launch_fwd<64, 4, 1, 64, true>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
            case 2:
                return launch_fwd<64, 8, 1, 64, true>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
            default:
                return launch_fwd<64, 4, 2, 64, true>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
            }
        }
        switch (attn_cfg("GV_ATTN_FWD_CFG")) {
        case 1:
            return launch_fwd<128, 4, 1, 64, true>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
        case 2:
            return launch_fwd<128, 8, 1, 64, true>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
        case 3:
            return launch_fwd<128, 4, 2, 32, false>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
        default:
            return launch_fwd<128, 4, 2, 64, false>(c, o, stash, x, mask, B, T, H, KVH, causal, sl2);
        }
    }
    if (D > ATT_NAIVE_DMAX)
        return gv_fail(GV_ERR_UNSUPPORTED, "attention_forward: head size D=%d > %d", D, ATT_NAIVE_DMAX);
    size_t rows = (size_t)B * H * T;
    attn_naive_fwd_kernel<<<gv_cdiv(rows * 32, 256), 256, 0, c->stream>>>(
        (bf16 *)out, stash, (const bf16 *)qkv, mask, B, T, H, KVH, D, causal, scale);
    GV_CUDA_LAUNCHED("attention_forward (naive)");
    return GV_OK;
}

gv_status gv_cuda_attention_forward(gv_backend *b, void *out, float *stash, const void *qkv,
                                    const int32_t *mask, int B, int T, int H, int KVH, int D, int causal) {
    GV_TRY(attn_check("attention_forward", B, T, H, KVH, D));
    if (B == 0 || T == 0) return GV_OK;
    if (stash) return attn_forward(b, out, stash, qkv, mask, B, T, H, KVH, D, causal);
    /* no stash (inference): a temporary lse */
    gv_cuda_ctx *c = gv_cuda(b);
    float *lse;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&lse, gv_cuda_attention_stash_bytes(b, B, T, H)));
    gv_status st = attn_forward(b, out, lse, qkv, mask, B, T, H, KVH, D, causal);
    gv_status st2 = gv_cuda_tmp_free(c, lse);
    return st != GV_OK ? st : st2;
}

gv_status gv_cuda_attention_backward(gv_backend *b, void *dqkv, const void *dout, const void *qkv,
                                     const void *out, const float *stash, const int32_t *mask, int B, int T,
                                     int H, int KVH, int D, int causal) {
    GV_TRY(attn_check("attention_backward", B, T, H, KVH, D));
    gv_cuda_ctx *c = gv_cuda(b);
    if (B == 0 || T == 0) return GV_OK;
    if (!stash)
        return gv_fail(GV_ERR_INVALID, "attention_backward: the stash (lse) from the forward is required");
    int cudnn = 0;
    GV_TRY(attn_impl_cudnn(&cudnn));
    if (cudnn && !mask && !attn_naive_forced()) {
        int done = 0;
        GV_TRY(gv_cudnn_attention_backward(c, &done, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv,
                                           (const bf16 *)out, stash, B, T, H, KVH, D, causal));
        if (done) return GV_OK;
    }
    if (D > ATT_NAIVE_DMAX)
        return gv_fail(GV_ERR_UNSUPPORTED, "attention_backward: head size D=%d > %d", D, ATT_NAIVE_DMAX);
    const float scale = 1.0f / sqrtf((float)D);
    const size_t rows = (size_t)B * H * T, S = (size_t)(H + 2 * KVH) * D;
    const bool fast = attn_fast(D, qkv, dqkv) && gv_aligned16(dout) && gv_aligned16(out);
    /* fast path: dqkv written instead of accumulated when it is a pending zero (every element is covered) */
    int claimed = 0;
    if (fast) {
        const size_t es = sizeof(bf16), HDb = (size_t)B * T * H * D * es;
        const struct gv_range in[] = {
            {dout, HDb}, {out, HDb}, {qkv, rows / H * S * es}, {stash, rows * sizeof(float)}};
        GV_TRY(gv_cuda_zero_claim(c, &claimed, dqkv, (size_t)B * T * S * es, in, 4));
    } else {
        GV_TRY(gv_cuda_zero_flush(c));
    }
    const int acc_out = !claimed;
    /* scratch: dvec [B*H*T], then the fp32 gradient accumulator (dQ [B*T, H, D] or dK/dV [B*T, 2*KVH, D]) */
    const size_t acc_w = fast ? (size_t)H * D : (size_t)2 * KVH * D;
    const size_t dv_bytes = (rows * sizeof(float) + 255) / 256 * 256;
    const size_t acc_n = (size_t)B * T * acc_w;
    char *tmp;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&tmp, dv_bytes + acc_n * sizeof(float)));
    float *dvec = (float *)tmp, *acc = (float *)(tmp + dv_bytes);
    gv_status st = GV_OK;
    cudaError_t e = cudaSuccess;
    if (fast && D == 64) {
        attn_dvec_zero_kernel<64><<<gv_cdiv(rows * 8, 256), 256, 0, c->stream>>>(
            dvec, acc, (const bf16 *)dout, (const bf16 *)out, B, T, H);
    } else if (fast) {
        attn_dvec_zero_kernel<128><<<gv_cdiv(rows * 16, 256), 256, 0, c->stream>>>(
            dvec, acc, (const bf16 *)dout, (const bf16 *)out, B, T, H);
    } else {
        e = cudaMemsetAsync(acc, 0, acc_n * sizeof(float), c->stream);
        if (e == cudaSuccess)
            attn_dvec_kernel<<<gv_cdiv(rows * 32, 256), 256, 0, c->stream>>>(dvec, (const bf16 *)dout,
                                                                             (const bf16 *)out, B, T, H, D);
    }
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess)
        st = gv_fail(GV_ERR_BACKEND, "cuda: attention_backward setup failed: %s", cudaGetErrorString(e));
    if (st == GV_OK) {
        const int cfg = attn_cfg("GV_ATTN_BWD_CFG");
        bf16 *dx = (bf16 *)dqkv;
        const bf16 *dO = (const bf16 *)dout, *x = (const bf16 *)qkv;
#define GV_BWD(D_, NW_, BR_)                                                                                 \
    launch_bwd<D_, NW_, BR_>(c, dx, acc, dO, x, stash, dvec, mask, B, T, H, KVH, causal, scale, acc_out)
        if (fast && D == 64) {
            switch (cfg) {
            case 1:
                st = GV_BWD(64, 8, 64);
                break;
            case 2:
                st = GV_BWD(64, 4, 32);
                break;
            case 3:
                st = GV_BWD(64, 8, 32);
                break;
            default:
                st = GV_BWD(64, 4, 64);
            }
        } else if (fast) {
            switch (cfg) {
            case 1:
                st = GV_BWD(128, 8, 32);
                break;
            case 2:
                st = GV_BWD(128, 8, 64);
                break;
            case 3:
                st = GV_BWD(128, 4, 32);
                break;
            default:
                st = GV_BWD(128, 4, 64);
            }
        } else {
            attn_naive_bwd_kernel<<<gv_cdiv(rows * 32, 256), 256, 0, c->stream>>>(
                (bf16 *)dqkv, acc, (const bf16 *)dout, (const bf16 *)qkv, stash, dvec, mask, B, T, H, KVH, D,
                causal, scale);
            e = cudaGetLastError();
            if (e != cudaSuccess)
                st = gv_fail(GV_ERR_BACKEND, "cuda: attention_backward (naive) launch failed: %s",
                             cudaGetErrorString(e));
        }
    }
    if (st == GV_OK) {
        /* fast: dq_acc -> q columns [0, H*D); naive: dk/dv acc -> k, v columns [H*D, S) */
        if (fast) /* D in {64, 128}: every width, stride and offset is a multiple of 4 */
            add_acc_rows_kernel<4><<<gv_cdiv(acc_n, 4 * 256), 256, 0, c->stream>>>(
                (bf16 *)dqkv, acc, (size_t)B * T, (int)acc_w, S, 0, acc_out);
        else
            add_acc_rows_kernel<1><<<gv_cdiv(acc_n, 256), 256, 0, c->stream>>>(
                (bf16 *)dqkv, acc, (size_t)B * T, (int)acc_w, S, (size_t)H * D, 1);
        e = cudaGetLastError();
        if (e != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "cuda: attention_backward accumulate launch failed: %s",
                         cudaGetErrorString(e));
    }
    gv_status st2 = gv_cuda_tmp_free(c, tmp);
    return st != GV_OK ? st : st2;
}
#undef GV_BWD
