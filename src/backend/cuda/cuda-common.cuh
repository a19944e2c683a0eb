/* Private to the CUDA backend: the context, error-checking macros, bf16 vector helpers and the op function
 * declarations shared by the .cu files of src/backend/cuda. One op family per file (cuda-<family>.cu):
 * kernels first, then their launchers. Every launch is checked with cudaGetLastError. Compute dtype is BF16
 * with fp32 arithmetic inside the kernels; statistics, losses and optimizer state are F32. */
#ifndef GV_CUDA_COMMON_CUH
#define GV_CUDA_COMMON_CUH
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublasLt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

extern "C" {
#include "backend/backend-impl.h"
}

typedef __nv_bfloat16 bf16;

/* cuBLASLt algorithm cache entry (see cuda-matmul.cu). */
struct gv_cuda_algo {
    int valid;
    int m, n, k, ta, tb, epi, beta1, align;
    cublasLtMatmulAlgo_t algo;
    int found; /* 0: cuBLASLt had no algorithm, use the fallback kernel */
};
#define GV_CUDA_ALGO_CACHE 128

typedef struct gv_cuda_ctx {
    int device;
    int num_sms;
    size_t smem_optin;        /* max dynamic shared memory per block after opt-in */
    cudaStream_t stream;      /* compute stream: every op runs here */
    cudaStream_t comm_stream; /* for overlapping communication later */
    cudaEvent_t ready;        /* event_record's event (made on first use) */
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    double *d_sumsq; /* [1] result slot for sumsq */
    struct gv_cuda_algo algo_cache[GV_CUDA_ALGO_CACHE];
    int algo_next;
    /* Deferred zeroing (cuda.cu): a memset0 not issued yet, GV_CUDA_LAZY_ZERO=0 turns it off. */
    int lazy_zero;
    void *zero_ptr;
    size_t zero_bytes;
    struct gv_cuda_prof *prof; /* op profiler, GV_CUDA_PROFILE=1 (cuda-profile.cu); NULL when off */
    int capture_at, capture_n; /* GV_CUDA_CAPTURE: the step an external profiler sees (cuda-profile.cu) */
    struct gv_cudnn *dnn; /* cuDNN handle and attention plans (cuda-attention-cudnn.cu), made on first use */
    /* multi-tensor AdamW's chunk table (cuda.cu): device copy, and the host copy it was uploaded from */
    void *adam_tab, *adam_tab_host;
    size_t adam_tab_bytes, adam_tab_cap;
} gv_cuda_ctx;

static inline gv_cuda_ctx *gv_cuda(gv_backend *b) {
    return (gv_cuda_ctx *)b->context;
}

/* Return GV_ERR_BACKEND from the enclosing function when a CUDA runtime call fails. */
#define GV_CUDA_TRY(call)                                                                                    \
    do {                                                                                                     \
        cudaError_t gv_ce_ = (call);                                                                         \
        if (gv_ce_ != cudaSuccess)                                                                           \
            return gv_fail(GV_ERR_BACKEND, "cuda: %s failed: %s (%s:%d)", #call, cudaGetErrorString(gv_ce_), \
                           __FILE__, __LINE__);                                                              \
    } while (0)

/* After a kernel launch: return GV_ERR_BACKEND naming the op when the launch failed. */
#define GV_CUDA_LAUNCHED(opname)                                                                             \
    do {                                                                                                     \
        cudaError_t gv_ce_ = cudaGetLastError();                                                             \
        if (gv_ce_ != cudaSuccess)                                                                           \
            return gv_fail(GV_ERR_BACKEND, "cuda: %s kernel launch failed: %s", opname,                      \
                           cudaGetErrorString(gv_ce_));                                                      \
    } while (0)

static inline unsigned gv_cdiv(size_t a, size_t b) {
    return (unsigned)((a + b - 1) / b);
}
static inline int gv_aligned16(const void *p) {
    return ((uintptr_t)p & 15) == 0;
}

/* Temporary device memory, stream-ordered on the compute stream (the pool keeps it between calls). */
gv_status gv_cuda_tmp_alloc(gv_cuda_ctx *c, void **p, size_t bytes);
gv_status gv_cuda_tmp_free(gv_cuda_ctx *c, void *p);

/* Deferred zeroing. memset0 only records its region; the next backend call either claims it (a backward
 * op whose accumulated output is exactly that region then writes instead of accumulating, saving the
 * memset and the read of the zeros) or issues the memset first (every other op, download, sync).
 * gv_cuda_zero_claim: *claimed = 1 when dst[0:bytes) was the pending region and none of the op's inputs
 * in[0:nin) overlaps it: the caller must then write every byte of it. Otherwise the pending memset (if
 * any) is issued and *claimed = 0: accumulate as usual. */
struct gv_range {
    const void *p;
    size_t bytes;
};
gv_status gv_cuda_zero_flush(gv_cuda_ctx *c);
gv_status gv_cuda_zero_claim(gv_cuda_ctx *c, int *claimed, const void *dst, size_t bytes,
                             const struct gv_range *in, int nin);

/* Op profiler (cuda-profile.cu): with GV_CUDA_PROFILE=1 every vtable op is bracketed by CUDA events and
 * its GPU time added up per (op, shape); the table is printed to stderr when the backend is freed. */
gv_status gv_cuda_prof_init(gv_cuda_ctx *c);
int gv_cuda_prof_begin(gv_cuda_ctx *c);
void gv_cuda_prof_end(gv_cuda_ctx *c, int slot, const char *op, long d0, long d1, long d2);
void gv_cuda_prof_report_free(gv_cuda_ctx *c);
/* GV_CUDA_CAPTURE=k: cudaProfilerStart at the k-th optimizer step's AdamW launch, Stop at the next, so that
 * `ncu --profile-from-start off` times the kernels of one whole training step. */
void gv_cuda_capture_tick(gv_cuda_ctx *c);

/* ---- device helpers ---------------------------------------------------------------------------------- */

/* 8 bf16 = 16 bytes, the unit of vectorised loads and stores. */
struct __align__(16) gv_bf16x8 {
    bf16 v[8];
};

__device__ __forceinline__ float gv_bf(bf16 x) {
    return __bfloat162float(x);
}
__device__ __forceinline__ bf16 gv_tobf(float x) {
    return __float2bfloat16_rn(x);
}

/* Load VEC consecutive bf16 into floats (VEC = 8 needs 16-byte alignment, else VEC = 1). */
template <int VEC> __device__ __forceinline__ void gv_load_bf(float *dst, const bf16 *src) {
    if constexpr (VEC == 8) {
        gv_bf16x8 p = *reinterpret_cast<const gv_bf16x8 *>(src);
#pragma unroll
        for (int i = 0; i < 8; i++) dst[i] = gv_bf(p.v[i]);
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++) dst[i] = gv_bf(src[i]);
    }
}
template <int VEC> __device__ __forceinline__ void gv_store_bf(bf16 *dst, const float *src) {
    if constexpr (VEC == 8) {
        gv_bf16x8 p;
#pragma unroll
        for (int i = 0; i < 8; i++) p.v[i] = gv_tobf(src[i]);
        *reinterpret_cast<gv_bf16x8 *>(dst) = p;
    } else {
#pragma unroll
        for (int i = 0; i < VEC; i++) dst[i] = gv_tobf(src[i]);
    }
}

__device__ __forceinline__ float gv_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float gv_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. `sh` is
 * 32 floats of shared memory; the function syncs before returning so `sh` can be reused. */
__device__ __forceinline__ float gv_block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = gv_warp_sum(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    v = gv_warp_sum(v);
    __syncthreads();
    return v;
}
__device__ __forceinline__ float gv_block_max(float v, float *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = gv_warp_max(v);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    v = gv_warp_max(v);
    __syncthreads();
    return v;
}

/* dst[c] += sum_g part[g*C + c] for c < C: blocks of (32, 16) threads, 32 columns each, the G partial rows
 * summed in a fixed order (deterministic). A template so every file can use it without duplicate symbols. */
template <int BY = 16>
__global__ void gv_column_reduce_add_kernel(bf16 *dst, const float *part, int G, int C) {
    __shared__ float sh[BY][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < C)
        for (int g = threadIdx.y; g < G; g += BY) s += part[(size_t)g * C + c];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t = 0.0f;
#pragma unroll
        for (int i = 0; i < BY; i++) t += sh[i][threadIdx.x];
        dst[c] = gv_tobf(gv_bf(dst[c]) + t);
    }
}

/* After a kernel that wrote G rows of column partial sums into part (a gv_cuda_tmp_alloc block): checks its
 * launch, adds the sums into dst[C] (gv_column_reduce_add_kernel) and frees part, naming op on failure. */
static inline gv_status gv_cuda_partials_finish(gv_cuda_ctx *c, const char *op, bf16 *dst, float *part, int G,
                                                int C) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) {
        gv_column_reduce_add_kernel<16><<<gv_cdiv(C, 32), dim3(32, 16), 0, c->stream>>>(dst, part, G, C);
        e = cudaGetLastError();
    }
    gv_status st = GV_OK;
    if (e != cudaSuccess)
        st = gv_fail(GV_ERR_BACKEND, "cuda: %s launch failed: %s", op, cudaGetErrorString(e));
    gv_status st2 = gv_cuda_tmp_free(c, part);
    return st != GV_OK ? st : st2;
}

/* A backend switch from the environment, read once into *cache (-1 = not read): unset or empty gives dflt,
 * a value starting with '0' off, anything else on. */
static inline int gv_cuda_env_switch(int *cache, const char *name, int dflt) {
    if (*cache < 0) {
        const char *e = getenv(name);
        *cache = e && e[0] ? e[0] != '0' : dflt;
    }
    return *cache;
}

/* ---- op functions (vtable entries), by file ---------------------------------------------------------- */

/* cuda-embedding.cu */
gv_status gv_cuda_embedding_forward(gv_backend *b, void *out, const int32_t *tokens, const void *wte,
                                    const void *wpe, int B, int T, int C, int pos0);
gv_status gv_cuda_embedding_backward(gv_backend *b, void *dwte, void *dwpe, const void *dout,
                                     const int32_t *tokens, int B, int T, int C, int pos0);
/* cuda-norm.cu */
gv_status gv_cuda_add_norm_forward(gv_backend *b, void *sum, void *out, float *mean, float *rstd,
                                   const void *x, const void *y, const void *w, const void *bias, int N,
                                   int C, float eps, int rms);
gv_status gv_cuda_layernorm_forward(gv_backend *b, void *out, float *mean, float *rstd, const void *inp,
                                    const void *w, const void *bias, int N, int C, float eps);
gv_status gv_cuda_layernorm_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                     const void *inp, const void *w, const float *mean, const float *rstd,
                                     int N, int C);
gv_status gv_cuda_layernorm_backward_sum(gv_backend *b, void *dinp, void *dw, void *dbias, void *dsum,
                                         const void *dout, const void *inp, const void *w, const float *mean,
                                         const float *rstd, int N, int C);
gv_status gv_cuda_rmsnorm_forward(gv_backend *b, void *out, float *rstd, const void *inp, const void *w,
                                  int N, int C, float eps);
gv_status gv_cuda_rmsnorm_backward(gv_backend *b, void *dinp, void *dw, const void *dout, const void *inp,
                                   const void *w, const float *rstd, int N, int C);
/* cuda-matmul.cu */
gv_status gv_cuda_matmul_forward_add(gv_backend *b, void *out, const void *inp, const void *w,
                                     const void *bias, const void *resid, int N, int C, int OC);
gv_status gv_cuda_matmul_forward(gv_backend *b, void *out, const void *inp, const void *w, const void *bias,
                                 int N, int C, int OC);
gv_status gv_cuda_matmul_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                  const void *inp, const void *w, int N, int C, int OC);
gv_status gv_cuda_matmul_gelu_forward(gv_backend *b, void *out, void *pre, const void *inp, const void *w,
                                      const void *bias, int N, int C, int OC);
gv_status gv_cuda_matmul_backward_gelu(gv_backend *b, void *dpre, void *dpre_bias, void *dw, void *dbias,
                                       const void *dout, const void *act, const void *pre, const void *w,
                                       int N, int C, int OC);
/* cuda-attention.cu */
size_t gv_cuda_attention_stash_bytes(gv_backend *b, int B, int T, int H);
gv_status gv_cuda_attention_forward(gv_backend *b, void *out, float *stash, const void *qkv,
                                    const int32_t *mask, int B, int T, int H, int KVH, int D, int causal);
gv_status gv_cuda_attention_backward(gv_backend *b, void *dqkv, const void *dout, const void *qkv,
                                     const void *out, const float *stash, const int32_t *mask, int B, int T,
                                     int H, int KVH, int D, int causal);
/* cuda-attention-cudnn.cu: the same op through cuDNN's fused attention (no padding mask). *done = 0 (and
 * GV_OK) when cuDNN is not built in or refuses the shape: the caller then runs the own kernel. */
gv_status gv_cudnn_attention_forward(gv_cuda_ctx *c, int *done, bf16 *out, float *lse, const bf16 *qkv, int B,
                                     int T, int H, int KVH, int D, int causal);
gv_status gv_cudnn_attention_backward(gv_cuda_ctx *c, int *done, bf16 *dqkv, const bf16 *dout,
                                      const bf16 *qkv, const bf16 *out, const float *lse, int B, int T, int H,
                                      int KVH, int D, int causal);
void gv_cudnn_free(gv_cuda_ctx *c);
/* cuda-rope.cu */
gv_status gv_cuda_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                               float theta, int pos0);
gv_status gv_cuda_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH,
                                int D, float theta, int pos0);
/* cuda-activation.cu */
gv_status gv_cuda_gelu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cuda_gelu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
/* dinp (+)= dout * gelu'(inp), acc = 0: written; dinp may alias dout (elementwise). */
gv_status gv_cuda_gelu_backward_into(gv_cuda_ctx *c, bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n,
                                     int acc);
/* dinp (+)= dout * gelu'(inp) over [N, C] and dbias += its column sums, in one pass (dinp may alias dout). */
gv_status gv_cuda_gelu_backward_bias_into(gv_cuda_ctx *c, bf16 *dinp, bf16 *dbias, const bf16 *dout,
                                          const bf16 *inp, int N, int C, int acc);
gv_status gv_cuda_swiglu_forward(gv_backend *b, void *out, const void *inp, int N, int F);
gv_status gv_cuda_swiglu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, int N, int F);
/* cuda-crossentropy.cu */
gv_status gv_cuda_crossentropy_forward_backward(gv_backend *b, float *losses, void *logits,
                                                const int32_t *targets, float dloss, int N, int V, int Vp,
                                                int ignore_index);
gv_status gv_cuda_crossentropy_forward(gv_backend *b, float *losses, const void *logits,
                                       const int32_t *targets, int N, int V, int Vp, int ignore_index);
gv_status gv_cuda_crossentropy_backward(gv_backend *b, void *dlogits, const void *logits,
                                        const int32_t *targets, float dloss, int N, int V, int Vp,
                                        int ignore_index);
gv_status gv_cuda_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits,
                                           const int32_t *targets, int N, int V, int Vp, int v0,
                                           int ignore_index);
gv_status gv_cuda_crossentropy_shard_backward(gv_backend *b, void *dlogits, const void *logits,
                                              const int32_t *targets, const float *lse, float dloss, int N,
                                              int V, int Vp, int v0, int ignore_index);
/* cuda-gelu-erf.cu */
gv_status gv_cuda_gelu_erf_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cuda_gelu_erf_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
gv_status gv_cuda_relu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cuda_relu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
/* cuda-attention-ext.cu */
size_t gv_cuda_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a);
gv_status gv_cuda_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out, float *stash,
                                        const void *q, const void *k, const void *v, const float *bias);
gv_status gv_cuda_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq, void *dk, void *dv,
                                         float *dbias, const void *dout, const void *q, const void *k,
                                         const void *v, const float *stash);

#endif
