/* Linear layer out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] through cuBLASLt: bf16 operands, fp32 compute,
 * bias in the forward epilogue. Backward: dinp += dout @ w and dw += dout^T @ inp as GEMMs with beta = 1
 * (accumulation for free); dbias += column sums of dout by a deterministic two-pass reduction.
 *
 * Row-major X[r,c] is column-major X^T, so out^T[OC,N] = w^T... in cuBLAS terms (column-major):
 *   forward: D(OC x N) = op_T(w: C x OC) * inp(C x N)
 *   dinp:    D(C x N)  = w(C x OC) * dout(OC x N)
 *   dw:      D(C x OC) = inp(C x N) * op_T(dout: OC x N)
 * Algorithms are chosen once per (shape, transposes, epilogue, beta, alignment) and cached. Where cuBLASLt
 * has no algorithm (odd leading dimensions, say) a simple tiled fp32-accumulating kernel takes over. */
#include "cuda-common.cuh"

#include <stdlib.h>
#include <string.h>

#define FB_TILE 16

/* ---- kernels ----------------------------------------------------------------------------------------- */

/* Fallback GEMM, column-major: D[i + j*ldd] = sum_l opA(i,l) opB(l,j) + beta*D + bias[i]. */
__global__ void gemm_fallback_kernel(bf16 *D, const bf16 *A, const bf16 *Bm, const bf16 *bias, int m, int n,
                                     int k, int ta, int tb, int lda, int ldb, int ldd, float beta) {
    __shared__ float As[FB_TILE][FB_TILE + 1], Bs[FB_TILE][FB_TILE + 1];
    const int i = blockIdx.x * FB_TILE + threadIdx.x; /* row of D */
    const int j = blockIdx.y * FB_TILE + threadIdx.y; /* column of D */
    float acc = 0.0f;
    for (int l0 = 0; l0 < k; l0 += FB_TILE) {
        /* As[x][y] = opA(blockrow + x, l0 + y); Bs[x][y] = opB(l0 + x, blockcol + y) */
        int ai = blockIdx.x * FB_TILE + threadIdx.x, al = l0 + threadIdx.y;
        float av = 0.0f;
        if (ai < m && al < k) av = gv_bf(ta ? A[al + (size_t)ai * lda] : A[ai + (size_t)al * lda]);
        As[threadIdx.x][threadIdx.y] = av;
        int bl = l0 + threadIdx.x, bj = blockIdx.y * FB_TILE + threadIdx.y;
        float bv = 0.0f;
        if (bl < k && bj < n) bv = gv_bf(tb ? Bm[bj + (size_t)bl * ldb] : Bm[bl + (size_t)bj * ldb]);
        Bs[threadIdx.x][threadIdx.y] = bv;
        __syncthreads();
#pragma unroll
        for (int l = 0; l < FB_TILE; l++) acc += As[threadIdx.x][l] * Bs[l][threadIdx.y];
        __syncthreads();
    }
    if (i < m && j < n) {
        size_t o = i + (size_t)j * ldd;
        if (beta != 0.0f) acc += beta * gv_bf(D[o]);
        if (bias) acc += gv_bf(bias[i]);
        D[o] = gv_tobf(acc);
    }
}

/* dst[i] += src[i], i < n (a bias gradient from the epilogue into the accumulated one). */
__global__ void vec_add_kernel(bf16 *dst, const bf16 *src, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = gv_tobf(gv_bf(dst[i]) + gv_bf(src[i]));
}

/* dst[i] += src[i], i < n (the unfused route of matmul_backward_gelu). */
__global__ void acc_kernel(bf16 *dst, const bf16 *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = gv_tobf(gv_bf(dst[i]) + gv_bf(src[i]));
}

/* out[n, :] = bias (or 0) when C == 0. */
__global__ void fill_bias_kernel(bf16 *out, const bf16 *bias, int N, int OC) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)N * OC) out[i] = bias ? bias[i % OC] : gv_tobf(0.0f);
}

/* part[y, col] = sum of dout[r, col] over row block y; each thread owns VEC consecutive columns. */
template <int VEC>
__global__ void bias_partial_kernel(float *part, const bf16 *dout, int N, int OC, int rows_per_block) {
    const int col = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (col >= OC) return;
    const int r0 = blockIdx.y * rows_per_block;
    const int r1 = min(N, r0 + rows_per_block);
    float acc[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++) acc[k] = 0.0f;
    int r = r0;
    /* four rows' loads in flight before any add (the adds keep the row order) */
    for (; r + 4 <= r1; r += 4) {
        float d[4][VEC];
#pragma unroll
        for (int u = 0; u < 4; u++) gv_load_bf<VEC>(d[u], dout + (size_t)(r + u) * OC + col);
#pragma unroll
        for (int u = 0; u < 4; u++)
#pragma unroll
            for (int k = 0; k < VEC; k++) acc[k] += d[u][k];
    }
    for (; r < r1; r++) {
        float d[VEC];
        gv_load_bf<VEC>(d, dout + (size_t)r * OC + col);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += d[k];
    }
#pragma unroll
    for (int k = 0; k < VEC; k++) part[(size_t)blockIdx.y * OC + col + k] = acc[k];
}

/* ---- cuBLASLt ---------------------------------------------------------------------------------------- */

static int ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 2 && (a % al) != 0) al >>= 1;
    return al;
}

#define LT_TRY(call)                                                                                         \
    do {                                                                                                     \
        cublasStatus_t s_ = (call);                                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                                   \
            st = gv_fail(GV_ERR_BACKEND, "cublasLt: %s failed (%d)", #call, (int)s_);                        \
            goto done;                                                                                       \
        }                                                                                                    \
    } while (0)

/* Epilogues. NONE / BIAS fall back to the simple kernel when cuBLASLt has no algorithm; the others report
 * *fused = 0 instead and the caller takes the unfused route.
 *   BIAS:      D = AB + beta*D + vec[m]
 *   BGRADB:    D = AB + beta*D, vec[n] = column sums of op(B) over k (a bias gradient, written)
 *   GELU_AUX:  aux = AB + vec[m], D = gelu(aux) (beta 0)
 *   DGELU:     D = (AB) * gelu'(aux), vec[m] = row sums of D over n (beta 0; vec may be NULL) */
enum { EPI_NONE, EPI_BIAS, EPI_BGRADB, EPI_GELU_AUX, EPI_DGELU };

struct gemm_epi {
    int kind;
    const void *vec; /* bias (BIAS, GELU_AUX) or bias gradient output (BGRADB, DGELU) */
    const void *aux; /* pre-activation [n][ldaux] (GELU_AUX writes it, DGELU reads it) */
    int ldaux;
    const void *cin; /* C of D = AB + beta*C, laid out as D (NULL: D itself) */
};

/* Algorithm choice: cuBLASLt's heuristic proposes up to lt_candidates() algorithms; the first call of each
 * shape times them (one warm-up, then LT_TUNE_REPS runs each) and keeps the fastest. The products run on
 * the real operands: in place when beta = 0 (the real call overwrites D afterwards), on a scratch copy of D
 * when beta != 0 and D is small enough, else no timing (the heuristic's first). GV_CUDA_LT_TUNE=0: off.
 * The timing waits on the stream, so a first call must not happen inside a CUDA graph capture (run one
 * eager step first). */
#define LT_CANDIDATES_MAX 32
#define LT_TUNE_REPS 3
#define LT_TUNE_MAX_SCRATCH (256u << 20)

static int lt_tune_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_LT_TUNE", 1);
}

/* How many candidates to time: GV_CUDA_LT_CANDIDATES (1..32, default 32: on the H200, 2026-12-02, GPT-2
 * 124M at B=64, 112.7 ms/step with 32 against 113.6 with 8, mostly the weight-gradient GEMMs). */
static int lt_candidates(void) {
    static int n = 0;
    if (n == 0) {
        const char *e = getenv("GV_CUDA_LT_CANDIDATES");
        n = e && atoi(e) > 0 ? atoi(e) : 32;
        if (n > LT_CANDIDATES_MAX) n = LT_CANDIDATES_MAX;
    }
    return n;
}

/* Milliseconds for reps products with algo (after the caller's warm-up); INFINITY when one fails. */
static float lt_time(gv_cuda_ctx *c, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la,
                     cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld, const void *A, const void *Bm,
                     void *Dt, float beta, const cublasLtMatmulAlgo_t *algo, int reps, cudaEvent_t e0,
                     cudaEvent_t e1) {
    const float alpha = 1.0f;
    cublasStatus_t s = CUBLAS_STATUS_SUCCESS;
    cudaEventRecord(e0, c->stream);
    for (int r = 0; r < reps && s == CUBLAS_STATUS_SUCCESS; r++)
        s = cublasLtMatmul(c->lt, op, &alpha, A, la, Bm, lb, &beta, Dt, ld, Dt, ld, algo, c->lt_ws,
                           c->lt_ws_bytes, c->stream);
    cudaEventRecord(e1, c->stream);
    float ms = INFINITY;
    if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
        cudaGetLastError();
        return INFINITY;
    }
    return s == CUBLAS_STATUS_SUCCESS ? ms : INFINITY;
}

static int lt_autotune(gv_cuda_ctx *c, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t la,
                       cublasLtMatrixLayout_t lb, cublasLtMatrixLayout_t ld, const void *A, const void *Bm,
                       void *D, float beta, size_t dbytes, const cublasLtMatmulHeuristicResult_t *cand,
                       int ncand) {
    const float alpha = 1.0f;
    void *Dt = D, *scratch = NULL;
    if (beta != 0.0f) {
        if (dbytes > LT_TUNE_MAX_SCRATCH || gv_cuda_tmp_alloc(c, &scratch, dbytes) != GV_OK) return 0;
        Dt = scratch;
    }
    cudaEvent_t e0 = NULL, e1 = NULL;
    int best = 0;
    float best_ms = INFINITY;
    /* Timing each candidate longer (top 4 again for ~20 ms each, in two interleaved rounds, for the speed at
     * the power cap) picked worse algorithms: 110.3 vs 107.8 ms/step at B=64 (H200, 2026-12-02). */
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) goto out;
    for (int i = 0; i < ncand; i++) {
        if (cand[i].state != CUBLAS_STATUS_SUCCESS) continue;
        if (cublasLtMatmul(c->lt, op, &alpha, A, la, Bm, lb, &beta, Dt, ld, Dt, ld, &cand[i].algo, c->lt_ws,
                           c->lt_ws_bytes, c->stream) != CUBLAS_STATUS_SUCCESS)
            continue; /* the warm-up */
        const float ms = lt_time(c, op, la, lb, ld, A, Bm, Dt, beta, &cand[i].algo, LT_TUNE_REPS, e0, e1);
        if (ms < best_ms) best_ms = ms, best = i;
    }
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaGetLastError();
    if (scratch) gv_cuda_tmp_free(c, scratch);
    return best;
}

/* D (m x n, ldd) = op(A) op(B) (+ beta*D) with epilogue e, column-major, all bf16. *fused: 1 when the
 * product and its epilogue ran (always for NONE / BIAS). */
static gv_status gemm_epi(gv_cuda_ctx *c, bf16 *D, const bf16 *A, const bf16 *Bm, struct gemm_epi e, int m,
                          int n, int k, int ta, int tb, int lda, int ldb, int ldd, float beta, int *fused) {
    gv_status st = GV_OK;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    const float alpha = 1.0f;
    const bf16 *bias = e.kind == EPI_BIAS ? (const bf16 *)e.vec : NULL;
    if (e.kind == EPI_BIAS && !bias) e.kind = EPI_NONE;
    int align = ptr_align(A);
    if (ptr_align(Bm) < align) align = ptr_align(Bm);
    if (ptr_align(D) < align) align = ptr_align(D);
    if (e.vec && ptr_align(e.vec) < align) align = ptr_align(e.vec);
    if (e.aux && ptr_align(e.aux) < align) align = ptr_align(e.aux);
    if (e.cin && ptr_align(e.cin) < align) align = ptr_align(e.cin);
    const int epi = e.kind * 2 + (e.vec != NULL), beta1 = beta != 0.0f;
    *fused = 1;

    /* cached algorithm? */
    struct gv_cuda_algo *hit = NULL;
    for (int i = 0; i < GV_CUDA_ALGO_CACHE; i++) {
        struct gv_cuda_algo *ce = &c->algo_cache[i];
        if (ce->valid && ce->m == m && ce->n == n && ce->k == k && ce->ta == ta && ce->tb == tb &&
            ce->epi == epi && ce->beta1 == beta1 && ce->align == align) {
            hit = ce;
            break;
        }
    }
    if (hit && !hit->found) goto fallback;

    {
        cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        LT_TRY(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
        LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
        if (e.kind != EPI_NONE) {
            cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
            if (e.kind == EPI_BGRADB) ep = CUBLASLT_EPILOGUE_BGRADB;
            if (e.kind == EPI_GELU_AUX)
                ep = e.vec ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
            if (e.kind == EPI_DGELU) ep = e.vec ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
            cudaDataType_t bt = CUDA_R_16BF;
            LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
            if (e.vec) {
                LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &e.vec,
                                                      sizeof e.vec));
                LT_TRY(
                    cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
            }
            if (e.aux) {
                int64_t lda64 = e.ldaux;
                LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &e.aux,
                                                      sizeof e.aux));
                LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &lda64,
                                                      sizeof lda64));
                LT_TRY(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, &bt,
                                                      sizeof bt));
            }
        }
        LT_TRY(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda));
        LT_TRY(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb));
        LT_TRY(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, ldd));
        if (!hit) {
            uint32_t al = (uint32_t)align;
            LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                        &c->lt_ws_bytes, sizeof c->lt_ws_bytes));
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al,
                                                        sizeof al));
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al,
                                                        sizeof al));
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al,
                                                        sizeof al));
            LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al,
                                                        sizeof al));
            cublasLtMatmulHeuristicResult_t cand[LT_CANDIDATES_MAX];
            int nres = 0;
            cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(
                c->lt, op, la, lb, ld, ld, pref, lt_tune_on() ? lt_candidates() : 1, cand, &nres);
            int pick = 0;
            if (hs == CUBLAS_STATUS_SUCCESS && nres > 1)
                pick = lt_autotune(c, op, la, lb, ld, A, Bm, D, beta, (size_t)ldd * n * sizeof(bf16), cand,
                                   nres);
            cublasLtMatmulHeuristicResult_t res = cand[pick];
            struct gv_cuda_algo *ce = &c->algo_cache[c->algo_next];
            c->algo_next = (c->algo_next + 1) % GV_CUDA_ALGO_CACHE;
            memset(ce, 0, sizeof *ce);
            ce->valid = 1;
            ce->m = m, ce->n = n, ce->k = k, ce->ta = ta, ce->tb = tb, ce->epi = epi, ce->beta1 = beta1,
            ce->align = align;
            ce->found = hs == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS;
            if (ce->found) ce->algo = res.algo;
            hit = ce;
        }
        if (hit->found) {
            const void *Cm = e.cin ? e.cin : D;
            cublasStatus_t ms = cublasLtMatmul(c->lt, op, &alpha, A, la, Bm, lb, &beta, Cm, ld, D, ld,
                                               &hit->algo, c->lt_ws, c->lt_ws_bytes, c->stream);
            if (ms == CUBLAS_STATUS_SUCCESS) goto done;
            if (ms != CUBLAS_STATUS_NOT_SUPPORTED) {
                st = gv_fail(GV_ERR_BACKEND, "cublasLt: matmul m=%d n=%d k=%d epilogue %d failed (%d)", m, n,
                             k, e.kind, (int)ms);
                goto done;
            }
            hit->found = 0; /* remember: use the fallback for this shape */
        }
    }
fallback:
    if (e.kind != EPI_NONE && e.kind != EPI_BIAS) {
        *fused = 0; /* the caller does the epilogue's work itself */
        goto done;
    }
    if (e.cin && e.cin != D) { /* the simple kernel accumulates in place: D = C first */
        cudaError_t ce = cudaMemcpy2DAsync(D, (size_t)ldd * sizeof(bf16), e.cin, (size_t)ldd * sizeof(bf16),
                                           (size_t)m * sizeof(bf16), n, cudaMemcpyDeviceToDevice, c->stream);
        if (ce != cudaSuccess) {
            st = gv_fail(GV_ERR_BACKEND, "cuda: gemm fallback residual copy failed: %s",
                         cudaGetErrorString(ce));
            goto done;
        }
    }
    {
        dim3 grid(gv_cdiv(m, FB_TILE), gv_cdiv(n, FB_TILE)), block(FB_TILE, FB_TILE);
        gemm_fallback_kernel<<<grid, block, 0, c->stream>>>(D, A, Bm, bias, m, n, k, ta, tb, lda, ldb, ldd,
                                                            beta);
        cudaError_t ce = cudaGetLastError();
        if (ce != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "cuda: gemm fallback launch failed: %s", cudaGetErrorString(ce));
    }
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (op) cublasLtMatmulDescDestroy(op);
    return st;
}

/* D (m x n, ldd) = op(A) op(B) + beta*D (+ bias[m]), column-major, all bf16. */
static gv_status gemm(gv_cuda_ctx *c, bf16 *D, const bf16 *A, const bf16 *Bm, const bf16 *bias, int m, int n,
                      int k, int ta, int tb, int lda, int ldb, int ldd, float beta) {
    struct gemm_epi e = {bias ? EPI_BIAS : EPI_NONE, bias, NULL, 0, NULL};
    int fused;
    return gemm_epi(c, D, A, Bm, e, m, n, k, ta, tb, lda, ldb, ldd, beta, &fused);
}

/* ---- launchers --------------------------------------------------------------------------------------- */

static gv_status mm_check(const char *op, int N, int C, int OC) {
    if (N < 0 || C < 0 || OC < 0)
        return gv_fail(GV_ERR_INVALID, "%s: negative size (N=%d C=%d OC=%d)", op, N, C, OC);
    return GV_OK;
}

gv_status gv_cuda_matmul_forward(gv_backend *b, void *out, const void *inp, const void *w, const void *bias,
                                 int N, int C, int OC) {
    GV_TRY(mm_check("matmul_forward", N, C, OC));
    gv_cuda_ctx *c = gv_cuda(b);
    if (N == 0 || OC == 0) return GV_OK;
    if (C == 0) {
        size_t n = (size_t)N * OC;
        fill_bias_kernel<<<gv_cdiv(n, 256), 256, 0, c->stream>>>((bf16 *)out, (const bf16 *)bias, N, OC);
        GV_CUDA_LAUNCHED("matmul_forward fill");
        return GV_OK;
    }
    return gemm(c, (bf16 *)out, (const bf16 *)w, (const bf16 *)inp, (const bf16 *)bias, OC, N, C, 1, 0, C, C,
                OC, 0.0f);
}

/* out = inp @ w^T + bias + resid: C = resid in the product (beta 1), so the residual add costs the epilogue a
 * read instead of a pass of its own over three [N, OC] tensors. */
gv_status gv_cuda_matmul_forward_add(gv_backend *b, void *out, const void *inp, const void *w,
                                     const void *bias, const void *resid, int N, int C, int OC) {
    GV_TRY(mm_check("matmul_forward_add", N, C, OC));
    if (C == 0) return gv_fail(GV_ERR_INVALID, "matmul_forward_add: C = 0 (the front end adds instead)");
    gv_cuda_ctx *c = gv_cuda(b);
    if (N == 0 || OC == 0) return GV_OK;
    struct gemm_epi e = {bias ? EPI_BIAS : EPI_NONE, bias, NULL, 0, resid};
    int fused;
    return gemm_epi(c, (bf16 *)out, (const bf16 *)w, (const bf16 *)inp, e, OC, N, C, 1, 0, C, C, OC, 1.0f,
                    &fused);
}

static gv_status bias_backward(gv_cuda_ctx *c, bf16 *dbias, const bf16 *dout, int N, int OC) {
    const int vec = OC % 8 == 0 && gv_aligned16(dout) ? 8 : 1;
    /* a thread per VEC columns, whole warps, at most 384 threads a block: no idle lanes for C, 3C, 4C */
    const size_t lanes = gv_cdiv((size_t)OC, (size_t)vec);
    unsigned colblocks = gv_cdiv(lanes, (size_t)384);
    const int threads = (int)((gv_cdiv(lanes, (size_t)colblocks) + 31) / 32 * 32);
    int rb = (int)((size_t)c->num_sms * 8 / colblocks);
    if (rb < 1) rb = 1;
    int rows_per_block = (N + rb - 1) / rb;
    if (rows_per_block < 16) rows_per_block = 16;
    int G = (N + rows_per_block - 1) / rows_per_block;
    float *part;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&part, (size_t)G * OC * sizeof(float)));
    dim3 grid(colblocks, G);
    if (vec == 8)
        bias_partial_kernel<8><<<grid, threads, 0, c->stream>>>(part, dout, N, OC, rows_per_block);
    else
        bias_partial_kernel<1><<<grid, threads, 0, c->stream>>>(part, dout, N, OC, rows_per_block);
    return gv_cuda_partials_finish(c, "matmul_backward dbias", dbias, part, G, OC);
}

/* GV_CUDA_BGRAD=1: bias gradients in the dW GEMM's epilogue (BGRADB) instead of the reduction kernels. Off
 * by default: on the H200 it was no faster (2026-12-01, GPT-2 124M: 126.9 vs 128.3 ms/step at B=64). */
static int bgrad_epilogue_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_BGRAD", 0);
}

gv_status gv_cuda_matmul_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                  const void *inp, const void *w, int N, int C, int OC) {
    GV_TRY(mm_check("matmul_backward", N, C, OC));
    gv_cuda_ctx *c = gv_cuda(b);
    const size_t es = sizeof(bf16);
    /* dinp written (beta 0) when it is a pending zero, else accumulated */
    int claimed = 0;
    if (dinp && N > 0 && C > 0 && OC > 0) {
        const struct gv_range in[] = {{dout, (size_t)N * OC * es},
                                      {inp, (size_t)N * C * es},
                                      {w, (size_t)OC * C * es},
                                      {dw, dw ? (size_t)OC * C * es : 0},
                                      {dbias, dbias ? (size_t)OC * es : 0}};
        GV_TRY(gv_cuda_zero_claim(c, &claimed, dinp, (size_t)N * C * es, in, 5));
    } else {
        GV_TRY(gv_cuda_zero_flush(c));
    }
    if (N == 0 || OC == 0) return GV_OK;
    if (C > 0) {
        if (dinp)
            GV_TRY(gemm(c, (bf16 *)dinp, (const bf16 *)w, (const bf16 *)dout, NULL, C, N, OC, 0, 0, C, OC, C,
                        claimed ? 0.0f : 1.0f));
        if (dw && dbias && bgrad_epilogue_on()) {
            /* dw GEMM with the bias gradient in its epilogue (written to a scratch vector, then added) */
            bf16 *db;
            GV_TRY(gv_cuda_tmp_alloc(c, (void **)&db, (size_t)OC * es));
            struct gemm_epi e = {EPI_BGRADB, db, NULL, 0, NULL};
            int fused = 0;
            gv_status st = gemm_epi(c, (bf16 *)dw, (const bf16 *)inp, (const bf16 *)dout, e, C, OC, N, 0, 1,
                                    C, OC, C, 1.0f, &fused);
            if (st == GV_OK && fused) {
                vec_add_kernel<<<gv_cdiv(OC, 256), 256, 0, c->stream>>>((bf16 *)dbias, db, OC);
                cudaError_t ce = cudaGetLastError();
                if (ce != cudaSuccess)
                    st = gv_fail(GV_ERR_BACKEND, "cuda: matmul_backward dbias add launch failed: %s",
                                 cudaGetErrorString(ce));
                dbias = NULL; /* done */
                dw = NULL;
            }
            gv_status st2 = gv_cuda_tmp_free(c, db);
            GV_TRY(st);
            GV_TRY(st2);
        }
        if (dw)
            GV_TRY(gemm(c, (bf16 *)dw, (const bf16 *)inp, (const bf16 *)dout, NULL, C, OC, N, 0, 1, C, OC, C,
                        1.0f));
    }
    if (dbias) GV_TRY(bias_backward(c, (bf16 *)dbias, (const bf16 *)dout, N, OC));
    return GV_OK;
}

/* GV_CUDA_GELU_EPI=0: matmul_gelu_forward without the GELU_AUX_BIAS epilogue (A/B timing).
 * GV_CUDA_DGELU_EPI=1: matmul_backward_gelu through the DGELU_BGRAD epilogue, =2: the DGELU epilogue and the
 * bias gradient by the reduction kernels. GV_CUDA_GELU_BIAS=0: the GELU gradient and the bias gradient as
 * two passes instead of one (A/B). The default is 2: on the H200 (2026-12-01, N=65536, C=768, F=3072) the
 * DGELU_BGRAD GEMM was far slower than GEMM + GELU-gradient kernel + bias reduction (the whole backward pair
 * 2.00 vs 1.19 ms), while the DGELU epilogue alone beat the GEMM + fused GELU-gradient-and-bias kernel
 * (2026-12-02, GPT-2 124M: 113.4 vs 113.6 ms/step at B=64, 29.7 vs 30.0 at B=16). The forward's GELU_AUX
 * epilogue beat GEMM + GELU kernel (0.53 vs 0.68 ms). Read on every call (tests switch them). */
static int env_flag(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && e[0] ? e[0] != '0' : dflt;
}
static int env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && e[0] ? atoi(e) : dflt;
}

gv_status gv_cuda_matmul_gelu_forward(gv_backend *b, void *out, void *pre, const void *inp, const void *w,
                                      const void *bias, int N, int C, int OC) {
    GV_TRY(mm_check("matmul_gelu_forward", N, C, OC));
    gv_cuda_ctx *c = gv_cuda(b);
    if (N == 0 || OC == 0) return GV_OK;
    if (C > 0 && env_flag("GV_CUDA_GELU_EPI", 1)) {
        /* pre (aux) = w^T.inp + bias, out = gelu(pre), in the epilogue; column-major pre is OC x N, ld OC */
        struct gemm_epi e = {EPI_GELU_AUX, bias, pre, OC, NULL};
        int fused = 0;
        GV_TRY(gemm_epi(c, (bf16 *)out, (const bf16 *)w, (const bf16 *)inp, e, OC, N, C, 1, 0, C, C, OC, 0.0f,
                        &fused));
        if (fused) return GV_OK;
    }
    GV_TRY(gv_cuda_matmul_forward(b, pre, inp, w, bias, N, C, OC));
    return gv_cuda_gelu_forward(b, out, pre, (size_t)N * OC);
}

gv_status gv_cuda_matmul_backward_gelu(gv_backend *b, void *dpre, void *dpre_bias, void *dw, void *dbias,
                                       const void *dout, const void *act, const void *pre, const void *w,
                                       int N, int C, int OC) {
    GV_TRY(mm_check("matmul_backward_gelu", N, C, OC));
    gv_cuda_ctx *c = gv_cuda(b);
    const size_t es = sizeof(bf16), nc = (size_t)N * C;
    /* dpre written in place when it is a pending zero (no scratch; the epilogue cannot accumulate) */
    int claimed = 0;
    if (dpre && N > 0 && C > 0 && OC > 0) {
        const struct gv_range in[] = {{dout, (size_t)N * OC * es},
                                      {act, nc * es},
                                      {pre, nc * es},
                                      {w, (size_t)OC * C * es},
                                      {dw, dw ? (size_t)OC * C * es : 0},
                                      {dbias, dbias ? OC * es : 0},
                                      {dpre_bias, dpre_bias ? C * es : 0}};
        GV_TRY(gv_cuda_zero_claim(c, &claimed, dpre, nc * es, in, 7));
    } else {
        GV_TRY(gv_cuda_zero_flush(c));
    }
    /* the weight and bias gradients of this layer, as in matmul_backward */
    GV_TRY(gv_cuda_matmul_backward(b, NULL, dw, dbias, dout, act, w, N, C, OC));
    if ((!dpre && !dpre_bias) || N == 0 || C == 0 || OC == 0) return GV_OK;
    const int dgelu = env_int("GV_CUDA_DGELU_EPI", 2), fuse_bias = env_flag("GV_CUDA_GELU_BIAS", 1);
    if (claimed && dgelu) {
        /* dpre = (w.dout) * gelu'(pre) in the epilogue; mode 1 also the producer's bias gradient (row sums,
         * column-major C x N), mode 2 leaves it to the reduction kernels */
        bf16 *db = NULL;
        if (dpre_bias && dgelu == 1) GV_TRY(gv_cuda_tmp_alloc(c, (void **)&db, C * es));
        struct gemm_epi e = {EPI_DGELU, db, pre, C, NULL};
        int fused = 0;
        gv_status st = gemm_epi(c, (bf16 *)dpre, (const bf16 *)w, (const bf16 *)dout, e, C, N, OC, 0, 0, C,
                                OC, C, 0.0f, &fused);
        if (st == GV_OK && fused && db) {
            vec_add_kernel<<<gv_cdiv(C, 256), 256, 0, c->stream>>>((bf16 *)dpre_bias, db, C);
            cudaError_t ce = cudaGetLastError();
            if (ce != cudaSuccess)
                st = gv_fail(GV_ERR_BACKEND, "cuda: matmul_backward_gelu bias add launch failed: %s",
                             cudaGetErrorString(ce));
        }
        if (st == GV_OK && fused && dpre_bias && !db)
            st = bias_backward(c, (bf16 *)dpre_bias, (const bf16 *)dpre, N, C);
        gv_status st2 = db ? gv_cuda_tmp_free(c, db) : GV_OK;
        GV_TRY(st);
        GV_TRY(st2);
        if (fused) return GV_OK;
    }
    if (claimed) {
        /* dpre = dout @ w written in place (beta 0), times gelu'(pre) in place with its column sums in the
         * same pass: the unfused sequence without the [N, C] scratch and its memset */
        GV_TRY(
            gemm(c, (bf16 *)dpre, (const bf16 *)w, (const bf16 *)dout, NULL, C, N, OC, 0, 0, C, OC, C, 0.0f));
        if (dpre_bias && fuse_bias)
            return gv_cuda_gelu_backward_bias_into(c, (bf16 *)dpre, (bf16 *)dpre_bias, (const bf16 *)dpre,
                                                   (const bf16 *)pre, N, C, 0);
        GV_TRY(gv_cuda_gelu_backward_into(c, (bf16 *)dpre, (const bf16 *)dpre, (const bf16 *)pre, nc, 0));
        if (dpre_bias) GV_TRY(bias_backward(c, (bf16 *)dpre_bias, (const bf16 *)dpre, N, C));
        return GV_OK;
    }
    /* accumulating: g = dout @ w in a scratch, then dpre += g * gelu'(pre) and dpre_bias += its column sums
     */
    bf16 *g;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&g, nc * es));
    gv_status st = gemm(c, g, (const bf16 *)w, (const bf16 *)dout, NULL, C, N, OC, 0, 0, C, OC, C, 0.0f);
    if (st == GV_OK && dpre_bias && dpre && fuse_bias) {
        st = gv_cuda_gelu_backward_bias_into(c, (bf16 *)dpre, (bf16 *)dpre_bias, g, (const bf16 *)pre, N, C,
                                             1);
    } else {
        if (st == GV_OK) st = gv_cuda_gelu_backward_into(c, g, g, (const bf16 *)pre, nc, 0);
        if (st == GV_OK && dpre_bias) st = bias_backward(c, (bf16 *)dpre_bias, g, N, C);
        if (st == GV_OK && dpre) {
            acc_kernel<<<gv_cdiv(nc, 256), 256, 0, c->stream>>>((bf16 *)dpre, g, nc);
            cudaError_t ce = cudaGetLastError();
            if (ce != cudaSuccess)
                st = gv_fail(GV_ERR_BACKEND, "cuda: matmul_backward_gelu accumulate failed: %s",
                             cudaGetErrorString(ce));
        }
    }
    gv_status st2 = gv_cuda_tmp_free(c, g);
    return st != GV_OK ? st : st2;
}
