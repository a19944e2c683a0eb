/* The CUDA backend: context (device, compute and comm streams, cuBLASLt handle and workspace), memory
 * functions, dtype conversion, and the small vector ops (add, accumulate, scale, AdamW, sum of squares).
 * The op families live in cuda-<family>.cu. Compute dtype BF16; fp32 arithmetic; F32 AdamW master weights
 * and moments. Every op is asynchronous on the compute stream; download and sync wait for it. */
#include "cuda-common.cuh"

#include <stdlib.h>
#include <string.h>

#define GV_CUDA_LT_WORKSPACE (32u << 20)
#define GV_SUMSQ_MAX_BLOCKS 1024

/* ---- kernels ----------------------------------------------------------------------------------------- */

template <typename T> __device__ __forceinline__ float gv_to_f32(T x);
template <> __device__ __forceinline__ float gv_to_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ float gv_to_f32<bf16>(bf16 x) {
    return __bfloat162float(x);
}
template <> __device__ __forceinline__ float gv_to_f32<__half>(__half x) {
    return __half2float(x);
}
template <typename T> __device__ __forceinline__ T gv_from_f32(float x);
template <> __device__ __forceinline__ float gv_from_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ bf16 gv_from_f32<bf16>(float x) {
    return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half gv_from_f32<__half>(float x) {
    return __float2half_rn(x);
}

template <typename TD, typename TS> __global__ void convert_kernel(TD *dst, const TS *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = gv_from_f32<TD>(gv_to_f32<TS>(src[i]));
}

/* out = x + y; VEC = 8 when every pointer is 16-byte aligned. The last thread takes the ragged tail. */
template <int VEC> __global__ void add_kernel(bf16 *out, const bf16 *x, const bf16 *y, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float a[VEC], c[VEC];
        gv_load_bf<VEC>(a, x + i);
        gv_load_bf<VEC>(c, y + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) a[k] += c[k];
        gv_store_bf<VEC>(out + i, a);
    } else {
        for (; i < n; i++) out[i] = gv_tobf(gv_bf(x[i]) + gv_bf(y[i]));
    }
}

template <int VEC> __global__ void scale_kernel(bf16 *x, float s, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float a[VEC];
        gv_load_bf<VEC>(a, x + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) a[k] *= s;
        gv_store_bf<VEC>(x + i, a);
    } else {
        for (; i < n; i++) x[i] = gv_tobf(gv_bf(x[i]) * s);
    }
}

/* PyTorch AdamW in its order of operations (see cpu.c):
 *   param *= 1 - lr*wd;  m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g*g;
 *   param -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps);  weight = bf16(param). */
__global__ void adamw_kernel(float *master, bf16 *weight, const bf16 *grad, float *m, float *v, size_t n,
                             float step_size, float bc2_sqrt, float decay, float beta2, float w1, float w2,
                             float eps, float grad_scale) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = gv_bf(grad[i]) * grad_scale;
    float p = master[i] * decay;
    float mo = m[i], vo = v[i];
    float mi = mo + w1 * (g - mo);
    float vi = beta2 * vo + w2 * g * g;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    p -= step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
    master[i] = p;
    if (weight) weight[i] = gv_tobf(p);
}

/* Multi-tensor AdamW: block i updates chunk i of a table of chunks (at most ADAM_CHUNK elements of one
 * segment each), 4 consecutive elements per thread with 16-byte fp32 and 8-byte bf16 accesses; the same
 * arithmetic as adamw_kernel. */
#define ADAM_CHUNK 32768
struct gv_adam_chunk {
    unsigned long long woff, poff, moff;
    unsigned n, decay;
};
struct __align__(8) gv_bf16x4 {
    bf16 v[4];
};
__global__ void adamw_multi_kernel(float *master, bf16 *weight, const bf16 *grad, float *m, float *v,
                                   const gv_adam_chunk *chunks, float step_size, float bc2_sqrt, float decay,
                                   float beta2, float w1, float w2, float eps, float grad_scale) {
    const gv_adam_chunk ch = chunks[blockIdx.x];
    const float dk = ch.decay ? decay : 1.0f;
    float *P = master + ch.poff, *M = m + ch.moff, *Vv = v + ch.moff;
    const bf16 *G = grad + ch.woff;
    bf16 *Wt = weight ? weight + ch.woff : NULL;
    const unsigned n4 = ch.n / 4;
    for (unsigned j = threadIdx.x; j < n4; j += blockDim.x) {
        float4 p = reinterpret_cast<float4 *>(P)[j], mo = reinterpret_cast<float4 *>(M)[j],
               vo = reinterpret_cast<float4 *>(Vv)[j];
        gv_bf16x4 gb = reinterpret_cast<const gv_bf16x4 *>(G)[j];
        float pa[4] = {p.x, p.y, p.z, p.w}, ma[4] = {mo.x, mo.y, mo.z, mo.w},
              va[4] = {vo.x, vo.y, vo.z, vo.w};
        gv_bf16x4 wb;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            float g = gv_bf(gb.v[k]) * grad_scale;
            float q = pa[k] * dk;
            float mi = ma[k] + w1 * (g - ma[k]);
            float vi = beta2 * va[k] + w2 * g * g;
            q -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
            pa[k] = q, ma[k] = mi, va[k] = vi;
            wb.v[k] = gv_tobf(q);
        }
        reinterpret_cast<float4 *>(P)[j] = make_float4(pa[0], pa[1], pa[2], pa[3]);
        reinterpret_cast<float4 *>(M)[j] = make_float4(ma[0], ma[1], ma[2], ma[3]);
        reinterpret_cast<float4 *>(Vv)[j] = make_float4(va[0], va[1], va[2], va[3]);
        if (Wt) reinterpret_cast<gv_bf16x4 *>(Wt)[j] = wb;
    }
    for (unsigned i = n4 * 4 + threadIdx.x; i < ch.n; i += blockDim.x) { /* tail */
        float g = gv_bf(G[i]) * grad_scale;
        float q = P[i] * dk;
        float mi = M[i] + w1 * (g - M[i]);
        float vi = beta2 * Vv[i] + w2 * g * g;
        q -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        P[i] = q, M[i] = mi, Vv[i] = vi;
        if (Wt) Wt[i] = gv_tobf(q);
    }
}

/* Sum of squares: per-block partial sums (fp32 inside a thread, block reduce), then one block adds the
 * partials in double. Deterministic for a given n and grid. */
template <int VEC> __global__ void sumsq_partial_kernel(double *partials, const bf16 *x, size_t n) {
    __shared__ float sh[32];
    float s = 0.0f;
    const size_t nv = n / VEC;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nv;
         i += (size_t)gridDim.x * blockDim.x) {
        float a[VEC];
        gv_load_bf<VEC>(a, x + i * VEC);
#pragma unroll
        for (int k = 0; k < VEC; k++) s += a[k] * a[k];
    }
    if (blockIdx.x == 0) /* ragged tail */
        for (size_t i = nv * VEC + threadIdx.x; i < n; i += blockDim.x) {
            float a = gv_bf(x[i]);
            s += a * a;
        }
    s = gv_block_sum(s, sh);
    if (threadIdx.x == 0) partials[blockIdx.x] = (double)s;
}
__global__ void sumsq_final_kernel(double *out, const double *partials, int np) {
    __shared__ double sh[32];
    double s = 0.0;
    for (int i = threadIdx.x; i < np; i += blockDim.x) s += partials[i];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh[w];
        *out = t;
    }
}

/* ---- memory ------------------------------------------------------------------------------------------ */

gv_status gv_cuda_tmp_alloc(gv_cuda_ctx *c, void **p, size_t bytes) {
    *p = NULL;
    GV_CUDA_TRY(cudaMallocAsync(p, bytes ? bytes : 16, c->stream));
    return GV_OK;
}
gv_status gv_cuda_tmp_free(gv_cuda_ctx *c, void *p) {
    if (p) GV_CUDA_TRY(cudaFreeAsync(p, c->stream));
    return GV_OK;
}

static void cuda_free(gv_backend *b) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (c) {
        cudaSetDevice(c->device);
        if (c->stream) cudaStreamSynchronize(c->stream);
        gv_cuda_prof_report_free(c);
        gv_cudnn_free(c);
        if (c->lt) cublasLtDestroy(c->lt);
        cudaFree(c->lt_ws);
        cudaFree(c->d_sumsq);
        cudaFree(c->adam_tab);
        free(c->adam_tab_host);
        if (c->stream) cudaStreamDestroy(c->stream);
        if (c->comm_stream) cudaStreamDestroy(c->comm_stream);
        if (c->ready) cudaEventDestroy(c->ready);
        free(c);
    }
    free(b);
}

static gv_status cuda_alloc(gv_backend *b, void **ptr, size_t bytes) {
    gv_cuda_ctx *c = gv_cuda(b);
    *ptr = NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return gv_fail(e == cudaErrorMemoryAllocation ? GV_ERR_NOMEM : GV_ERR_BACKEND,
                       "cuda alloc: %zu bytes: %s", bytes, cudaGetErrorString(e));
    }
    e = cudaMemsetAsync(p, 0, bytes, c->stream);
    if (e != cudaSuccess) {
        cudaFree(p);
        return gv_fail(GV_ERR_BACKEND, "cuda alloc: zeroing %zu bytes: %s", bytes, cudaGetErrorString(e));
    }
    *ptr = p;
    return GV_OK;
}

static void cuda_dealloc(gv_backend *b, void *ptr) {
    (void)b;
    cudaFree(ptr);
}

/* Deferred zeroing: the model zeroes an activation gradient right before the backward op that accumulates
 * into it (memset0(dinp); matmul_backward(dinp += ...)). Deferring the memset lets that op write instead,
 * which saves a pass over the buffer and the read of the zeros. Every other op, download and sync issue
 * the pending memset first, so the memory reads as zero whenever anything can look at it. */
gv_status gv_cuda_zero_flush(gv_cuda_ctx *c) {
    if (!c->zero_ptr) return GV_OK;
    void *p = c->zero_ptr;
    size_t n = c->zero_bytes;
    c->zero_ptr = NULL;
    c->zero_bytes = 0;
    int slot = gv_cuda_prof_begin(c);
    cudaError_t e = cudaMemsetAsync(p, 0, n, c->stream);
    gv_cuda_prof_end(c, slot, "memset0 (issued)", (long)n, 0, 0);
    if (e != cudaSuccess)
        return gv_fail(GV_ERR_BACKEND, "cuda: memset0 of %zu bytes failed: %s", n, cudaGetErrorString(e));
    return GV_OK;
}

static int ranges_overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return a && b && na && nb && x < y + nb && y < x + na;
}

gv_status gv_cuda_zero_claim(gv_cuda_ctx *c, int *claimed, const void *dst, size_t bytes,
                             const struct gv_range *in, int nin) {
    *claimed = 0;
    if (!c->zero_ptr) return GV_OK;
    int ok = dst && c->zero_ptr == dst && c->zero_bytes == bytes;
    for (int i = 0; ok && i < nin; i++)
        if (ranges_overlap(dst, bytes, in[i].p, in[i].bytes)) ok = 0;
    if (!ok) return gv_cuda_zero_flush(c);
    c->zero_ptr = NULL;
    c->zero_bytes = 0;
    *claimed = 1;
    return GV_OK;
}

static gv_status cuda_memset0(gv_backend *b, void *ptr, size_t bytes) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (!bytes) return GV_OK;
    if (c->lazy_zero) {
        if (c->zero_ptr == ptr && c->zero_bytes >= bytes) return GV_OK; /* already pending */
        GV_TRY(gv_cuda_zero_flush(c));
        c->zero_ptr = ptr;
        c->zero_bytes = bytes;
        return GV_OK;
    }
    GV_CUDA_TRY(cudaMemsetAsync(ptr, 0, bytes, c->stream));
    return GV_OK;
}

static gv_status cuda_upload(gv_backend *b, void *dst, const void *src, size_t bytes) {
    /* From pageable memory the source is staged before the call returns, so the caller may reuse it. */
    if (bytes) GV_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, gv_cuda(b)->stream));
    return GV_OK;
}

static gv_status cuda_download(gv_backend *b, void *dst, const void *src, size_t bytes) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (!bytes) return GV_OK;
    GV_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    GV_CUDA_TRY(cudaStreamSynchronize(c->stream));
    return GV_OK;
}

template <typename TD, typename TS>
static gv_status launch_convert(gv_cuda_ctx *c, void *dst, const void *src, size_t n) {
    convert_kernel<TD, TS><<<gv_cdiv(n, 256), 256, 0, c->stream>>>((TD *)dst, (const TS *)src, n);
    GV_CUDA_LAUNCHED("convert");
    return GV_OK;
}

/* dst (ddt) = src (sdt) on the device; F32, BF16, F16 in any combination, other equal dtypes copy. */
static gv_status cuda_convert(gv_backend *b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt,
                              size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (n == 0) return GV_OK;
    if (ddt == sdt) {
        size_t es = gv_dtype_size(ddt);
        if (es == 0) return gv_fail(GV_ERR_INVALID, "cuda convert: unknown dtype %d", (int)ddt);
        GV_CUDA_TRY(cudaMemcpyAsync(dst, src, n * es, cudaMemcpyDeviceToDevice, c->stream));
        return GV_OK;
    }
    if (ddt == GV_BF16 && sdt == GV_F32) return launch_convert<bf16, float>(c, dst, src, n);
    if (ddt == GV_F32 && sdt == GV_BF16) return launch_convert<float, bf16>(c, dst, src, n);
    if (ddt == GV_F16 && sdt == GV_F32) return launch_convert<__half, float>(c, dst, src, n);
    if (ddt == GV_F32 && sdt == GV_F16) return launch_convert<float, __half>(c, dst, src, n);
    if (ddt == GV_BF16 && sdt == GV_F16) return launch_convert<bf16, __half>(c, dst, src, n);
    if (ddt == GV_F16 && sdt == GV_BF16) return launch_convert<__half, bf16>(c, dst, src, n);
    return gv_fail(GV_ERR_UNSUPPORTED, "cuda convert: %s -> %s not supported (f32, bf16, f16 only)",
                   gv_dtype_name(sdt), gv_dtype_name(ddt));
}

/* rows x width bytes between device matrices of different pitches (column slices), on the stream */
static gv_status cuda_copy2d(gv_backend *b, void *dst, size_t dpitch, const void *src, size_t spitch,
                             size_t width, size_t rows) {
    GV_CUDA_TRY(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows, cudaMemcpyDeviceToDevice,
                                  gv_cuda(b)->stream));
    return GV_OK;
}

static int float_dtype(gv_dtype dt) {
    return dt == GV_F32 || dt == GV_BF16 || dt == GV_F16;
}

static gv_status cuda_upload_f32(gv_backend *b, void *dst, gv_dtype dt, const float *src, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (!float_dtype(dt))
        return gv_fail(GV_ERR_UNSUPPORTED, "cuda upload_f32: destination dtype %s not supported",
                       gv_dtype_name(dt));
    if (dt == GV_F32) return cuda_upload(b, dst, src, n * sizeof(float));
    if (n == 0) return GV_OK;
    void *tmp;
    GV_TRY(gv_cuda_tmp_alloc(c, &tmp, n * sizeof(float)));
    gv_status st = cuda_upload(b, tmp, src, n * sizeof(float));
    if (st == GV_OK) st = cuda_convert(b, dst, dt, tmp, GV_F32, n);
    gv_status st2 = gv_cuda_tmp_free(c, tmp);
    return st != GV_OK ? st : st2;
}

static gv_status cuda_download_f32(gv_backend *b, float *dst, const void *src, gv_dtype dt, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (!float_dtype(dt))
        return gv_fail(GV_ERR_UNSUPPORTED, "cuda download_f32: source dtype %s not supported",
                       gv_dtype_name(dt));
    if (dt == GV_F32) return cuda_download(b, dst, src, n * sizeof(float));
    if (n == 0) return GV_OK;
    void *tmp;
    GV_TRY(gv_cuda_tmp_alloc(c, &tmp, n * sizeof(float)));
    gv_status st = cuda_convert(b, tmp, GV_F32, src, dt, n);
    if (st == GV_OK) st = cuda_download(b, dst, tmp, n * sizeof(float));
    gv_status st2 = gv_cuda_tmp_free(c, tmp);
    return st != GV_OK ? st : st2;
}

static gv_status cuda_sync(gv_backend *b) {
    GV_CUDA_TRY(cudaStreamSynchronize(gv_cuda(b)->stream));
    GV_CUDA_TRY(cudaGetLastError());
    return GV_OK;
}

/* ---- small vector ops -------------------------------------------------------------------------------- */

static gv_status cuda_add_forward(gv_backend *b, void *out, const void *x, const void *y, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (n == 0) return GV_OK;
    if (gv_aligned16(out) && gv_aligned16(x) && gv_aligned16(y))
        add_kernel<8>
            <<<gv_cdiv(n, 8 * 256), 256, 0, c->stream>>>((bf16 *)out, (const bf16 *)x, (const bf16 *)y, n);
    else
        add_kernel<1>
            <<<gv_cdiv(n, 256), 256, 0, c->stream>>>((bf16 *)out, (const bf16 *)x, (const bf16 *)y, n);
    GV_CUDA_LAUNCHED("add");
    return GV_OK;
}

static gv_status cuda_accumulate(gv_backend *b, void *dst, const void *src, size_t n) {
    return cuda_add_forward(b, dst, dst, src, n);
}

static gv_status cuda_scale(gv_backend *b, void *x, float s, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (n == 0) return GV_OK;
    if (gv_aligned16(x))
        scale_kernel<8><<<gv_cdiv(n, 8 * 256), 256, 0, c->stream>>>((bf16 *)x, s, n);
    else
        scale_kernel<1><<<gv_cdiv(n, 256), 256, 0, c->stream>>>((bf16 *)x, s, n);
    GV_CUDA_LAUNCHED("scale");
    return GV_OK;
}

static gv_status cuda_adamw_update(gv_backend *b, float *master, void *weight, const void *grad, float *m,
                                   float *v, size_t n, float lr, float beta1, float beta2, float eps,
                                   float weight_decay, float grad_scale, int t) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (t < 1) return gv_fail(GV_ERR_INVALID, "adamw: step t = %d, must be >= 1", t);
    if (n == 0) return GV_OK;
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * weight_decay;
    adamw_kernel<<<gv_cdiv(n, 256), 256, 0, c->stream>>>(master, (bf16 *)weight, (const bf16 *)grad, m, v, n,
                                                         step_size, bc2_sqrt, decay, beta2, 1.0f - beta1,
                                                         1.0f - beta2, eps, grad_scale);
    GV_CUDA_LAUNCHED("adamw");
    return GV_OK;
}

/* GV_CUDA_ADAM_MULTI=0: one launch per segment (A/B). */
static int adam_multi_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_ADAM_MULTI", 1);
}

/* The chunk table is the same every step for a model: it is uploaded when it changes, else reused. */
static gv_status cuda_adamw_update_multi(gv_backend *b, float *master, void *weight, const void *grad,
                                         float *m, float *v, const gv_adamw_seg *segs, int nseg, float lr,
                                         float beta1, float beta2, float eps, float weight_decay,
                                         float grad_scale, int t) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (t < 1) return gv_fail(GV_ERR_INVALID, "adamw: step t = %d, must be >= 1", t);
    gv_cuda_capture_tick(c);
    int vec_ok = adam_multi_on() && ((uintptr_t)master | (uintptr_t)m | (uintptr_t)v) % 16 == 0 &&
                 ((uintptr_t)grad | (uintptr_t)weight) % 8 == 0;
    size_t nch = 0;
    for (int i = 0; i < nseg && vec_ok; i++) {
        if ((segs[i].woff | segs[i].poff | segs[i].moff) % 4) vec_ok = 0;
        nch += (segs[i].n + ADAM_CHUNK - 1) / ADAM_CHUNK;
    }
    if (!vec_ok || nch > (size_t)INT32_MAX) /* unaligned views: one launch per segment */
        return gv_adamw_update_each(b, master, weight, grad, m, v, segs, nseg, lr, beta1, beta2, eps,
                                    weight_decay, grad_scale, t);
    if (nch == 0) return GV_OK;
    size_t bytes = nch * sizeof(gv_adam_chunk);
    gv_adam_chunk *h = (gv_adam_chunk *)malloc(bytes);
    if (!h) return gv_fail(GV_ERR_NOMEM, "adamw: out of host memory for %zu chunks", nch);
    size_t k = 0;
    for (int i = 0; i < nseg; i++)
        for (size_t o = 0; o < segs[i].n; o += ADAM_CHUNK, k++) {
            size_t n = segs[i].n - o < ADAM_CHUNK ? segs[i].n - o : ADAM_CHUNK;
            h[k] = gv_adam_chunk{segs[i].woff + o, segs[i].poff + o, segs[i].moff + o, (unsigned)n,
                                 (unsigned)(segs[i].decay != 0)};
        }
    if (bytes != c->adam_tab_bytes || memcmp(h, c->adam_tab_host, bytes)) {
        if (bytes > c->adam_tab_cap) {
            cudaFree(c->adam_tab);
            c->adam_tab = NULL;
            c->adam_tab_cap = 0;
            if (cudaMalloc(&c->adam_tab, bytes) != cudaSuccess) {
                cudaGetLastError();
                free(h);
                return gv_fail(GV_ERR_NOMEM, "adamw: out of device memory for the chunk table");
            }
            c->adam_tab_cap = bytes;
        }
        cudaError_t e = cudaMemcpyAsync(c->adam_tab, h, bytes, cudaMemcpyHostToDevice, c->stream);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream); /* h is freed below */
        if (e != cudaSuccess) {
            free(h);
            return gv_fail(GV_ERR_BACKEND, "cuda: adamw chunk table upload failed: %s",
                           cudaGetErrorString(e));
        }
        free(c->adam_tab_host);
        c->adam_tab_host = h;
        c->adam_tab_bytes = bytes;
        h = NULL;
    }
    free(h);
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    adamw_multi_kernel<<<(unsigned)nch, 256, 0, c->stream>>>(
        master, (bf16 *)weight, (const bf16 *)grad, m, v, (const gv_adam_chunk *)c->adam_tab,
        (float)((double)lr / bc1), (float)sqrt(bc2), 1.0f - lr * weight_decay, beta2, 1.0f - beta1,
        1.0f - beta2, eps, grad_scale);
    GV_CUDA_LAUNCHED("adamw_multi");
    return GV_OK;
}

static gv_status cuda_sumsq(gv_backend *b, double *out, const void *x, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    *out = 0.0;
    if (n == 0) return GV_OK;
    unsigned nb = gv_cdiv(n, 256 * 32);
    unsigned cap = (unsigned)c->num_sms * 8;
    if (cap > GV_SUMSQ_MAX_BLOCKS) cap = GV_SUMSQ_MAX_BLOCKS;
    if (nb > cap) nb = cap;
    if (gv_aligned16(x))
        sumsq_partial_kernel<8><<<nb, 256, 0, c->stream>>>(c->d_sumsq + 1, (const bf16 *)x, n);
    else
        sumsq_partial_kernel<1><<<nb, 256, 0, c->stream>>>(c->d_sumsq + 1, (const bf16 *)x, n);
    GV_CUDA_LAUNCHED("sumsq");
    sumsq_final_kernel<<<1, 256, 0, c->stream>>>(c->d_sumsq, c->d_sumsq + 1, (int)nb);
    GV_CUDA_LAUNCHED("sumsq final");
    return cuda_download(b, out, c->d_sumsq, sizeof(double));
}

/* ---- the vtable -------------------------------------------------------------------------------------- */

/* Each entry goes through a wrapper: ops that do not consume a deferred zero issue it first (see
 * gv_cuda_zero_flush), and the op profiler brackets the op (no-op unless GV_CUDA_PROFILE is set). The
 * consumers (backward ops whose accumulated output may be the pending region) call gv_cuda_zero_claim. */
#define GV_OP(NAME, FN, CONSUMER, D0, D1, D2, PARAMS, ARGS)                                                  \
    static gv_status op_##NAME PARAMS {                                                                      \
        gv_cuda_ctx *c_ = gv_cuda(b);                                                                        \
        if (!(CONSUMER)) GV_TRY(gv_cuda_zero_flush(c_));                                                     \
        int slot_ = gv_cuda_prof_begin(c_);                                                                  \
        gv_status st_ = FN ARGS;                                                                             \
        gv_cuda_prof_end(c_, slot_, #NAME, (long)(D0), (long)(D1), (long)(D2));                              \
        return st_;                                                                                          \
    }
/* Memory entries: issue a pending zero, no profiling (host waits would be counted). */
#define GV_MEM(NAME, FN, PARAMS, ARGS)                                                                       \
    static gv_status mem_##NAME PARAMS {                                                                     \
        GV_TRY(gv_cuda_zero_flush(gv_cuda(b)));                                                              \
        return FN ARGS;                                                                                      \
    }

GV_MEM(alloc, cuda_alloc, (gv_backend * b, void **ptr, size_t bytes), (b, ptr, bytes))
GV_MEM(upload, cuda_upload, (gv_backend * b, void *dst, const void *src, size_t n), (b, dst, src, n))
GV_MEM(download, cuda_download, (gv_backend * b, void *dst, const void *src, size_t n), (b, dst, src, n))
GV_MEM(upload_f32, cuda_upload_f32, (gv_backend * b, void *dst, gv_dtype dt, const float *src, size_t n),
       (b, dst, dt, src, n))
GV_MEM(download_f32, cuda_download_f32, (gv_backend * b, float *dst, const void *src, gv_dtype dt, size_t n),
       (b, dst, src, dt, n))
GV_MEM(sync, cuda_sync, (gv_backend * b), (b))

/* An event after all work issued so far (the pending zero included: GV_MEM issues it first). One event,
 * re-recorded: a cudaStreamWaitEvent captures the record current at its call. */
static gv_status cuda_event_record(gv_backend *b, void **event) {
    gv_cuda_ctx *c = gv_cuda(b);
    if (!c->ready) GV_CUDA_TRY(cudaEventCreateWithFlags(&c->ready, cudaEventDisableTiming));
    GV_CUDA_TRY(cudaEventRecord(c->ready, c->stream));
    *event = c->ready;
    return GV_OK;
}
GV_MEM(event_record, cuda_event_record, (gv_backend * b, void **event), (b, event))

static gv_status mem_event_wait(gv_backend *b, void *event) {
    GV_CUDA_TRY(cudaStreamWaitEvent(gv_cuda(b)->stream, (cudaEvent_t)event, 0));
    return GV_OK;
}

static void mem_dealloc(gv_backend *b, void *ptr) {
    /* issued while the memory is still ours (it may lie in the buffer being freed) */
    if (gv_cuda_zero_flush(gv_cuda(b)) != GV_OK) cudaGetLastError();
    cuda_dealloc(b, ptr);
}
static gv_status op_memset0(gv_backend *b, void *ptr, size_t bytes) {
    return cuda_memset0(b, ptr, bytes); /* deferred; profiled when issued */
}

GV_OP(copy2d, cuda_copy2d, 0, rows, width, 0,
      (gv_backend * b, void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t rows),
      (b, dst, dpitch, src, spitch, width, rows))
GV_OP(convert, cuda_convert, 0, n, 0, 0,
      (gv_backend * b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt, size_t n),
      (b, dst, ddt, src, sdt, n))
GV_OP(embedding_forward, gv_cuda_embedding_forward, 0, B *T, C, 0,
      (gv_backend * b, void *out, const int32_t *tokens, const void *wte, const void *wpe, int B, int T,
       int C, int pos0),
      (b, out, tokens, wte, wpe, B, T, C, pos0))
GV_OP(embedding_backward, gv_cuda_embedding_backward, 0, B *T, C, 0,
      (gv_backend * b, void *dwte, void *dwpe, const void *dout, const int32_t *tokens, int B, int T, int C,
       int pos0),
      (b, dwte, dwpe, dout, tokens, B, T, C, pos0))
GV_OP(layernorm_forward, gv_cuda_layernorm_forward, 0, N, C, 0,
      (gv_backend * b, void *out, float *mean, float *rstd, const void *inp, const void *w, const void *bias,
       int N, int C, float eps),
      (b, out, mean, rstd, inp, w, bias, N, C, eps))
GV_OP(layernorm_backward, gv_cuda_layernorm_backward, 1, N, C, 0,
      (gv_backend * b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp, const void *w,
       const float *mean, const float *rstd, int N, int C),
      (b, dinp, dw, dbias, dout, inp, w, mean, rstd, N, C))
GV_OP(layernorm_backward_sum, gv_cuda_layernorm_backward_sum, 1, N, C, 0,
      (gv_backend * b, void *dinp, void *dw, void *dbias, void *dsum, const void *dout, const void *inp,
       const void *w, const float *mean, const float *rstd, int N, int C),
      (b, dinp, dw, dbias, dsum, dout, inp, w, mean, rstd, N, C))
GV_OP(rmsnorm_forward, gv_cuda_rmsnorm_forward, 0, N, C, 0,
      (gv_backend * b, void *out, float *rstd, const void *inp, const void *w, int N, int C, float eps),
      (b, out, rstd, inp, w, N, C, eps))
GV_OP(rmsnorm_backward, gv_cuda_rmsnorm_backward, 1, N, C, 0,
      (gv_backend * b, void *dinp, void *dw, const void *dout, const void *inp, const void *w,
       const float *rstd, int N, int C),
      (b, dinp, dw, dout, inp, w, rstd, N, C))
GV_OP(crossentropy_forward_backward, gv_cuda_crossentropy_forward_backward, 0, N, Vp, 0,
      (gv_backend * b, float *losses, void *logits, const int32_t *targets, float dloss, int N, int V, int Vp,
       int ignore_index),
      (b, losses, logits, targets, dloss, N, V, Vp, ignore_index))
GV_OP(add_norm_forward, gv_cuda_add_norm_forward, 0, N, C, 0,
      (gv_backend * b, void *sum, void *out, float *mean, float *rstd, const void *x, const void *y,
       const void *w, const void *bias, int N, int C, float eps, int rms),
      (b, sum, out, mean, rstd, x, y, w, bias, N, C, eps, rms))
GV_OP(matmul_forward, gv_cuda_matmul_forward, 0, N, C, OC,
      (gv_backend * b, void *out, const void *inp, const void *w, const void *bias, int N, int C, int OC),
      (b, out, inp, w, bias, N, C, OC))
GV_OP(matmul_forward_add, gv_cuda_matmul_forward_add, 0, N, C, OC,
      (gv_backend * b, void *out, const void *inp, const void *w, const void *bias, const void *resid, int N,
       int C, int OC),
      (b, out, inp, w, bias, resid, N, C, OC))
GV_OP(matmul_backward, gv_cuda_matmul_backward, 1, N, C, OC,
      (gv_backend * b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp, const void *w,
       int N, int C, int OC),
      (b, dinp, dw, dbias, dout, inp, w, N, C, OC))
GV_OP(attention_forward, gv_cuda_attention_forward, 0, B *T, H, D,
      (gv_backend * b, void *out, float *stash, const void *qkv, const int32_t *mask, int B, int T, int H,
       int KVH, int D, int causal),
      (b, out, stash, qkv, mask, B, T, H, KVH, D, causal))
GV_OP(attention_backward, gv_cuda_attention_backward, 1, B *T, H, D,
      (gv_backend * b, void *dqkv, const void *dout, const void *qkv, const void *out, const float *stash,
       const int32_t *mask, int B, int T, int H, int KVH, int D, int causal),
      (b, dqkv, dout, qkv, out, stash, mask, B, T, H, KVH, D, causal))
GV_OP(rope_forward, gv_cuda_rope_forward, 0, B *T, H, D,
      (gv_backend * b, void *out, const void *inp, int B, int T, int H, int KVH, int D, float theta,
       int pos0),
      (b, out, inp, B, T, H, KVH, D, theta, pos0))
GV_OP(rope_backward, gv_cuda_rope_backward, 0, B *T, H, D,
      (gv_backend * b, void *dinp, const void *dout, int B, int T, int H, int KVH, int D, float theta,
       int pos0),
      (b, dinp, dout, B, T, H, KVH, D, theta, pos0))
GV_OP(gelu_forward, gv_cuda_gelu_forward, 0, n, 0, 0, (gv_backend * b, void *out, const void *inp, size_t n),
      (b, out, inp, n))
GV_OP(gelu_backward, gv_cuda_gelu_backward, 1, n, 0, 0,
      (gv_backend * b, void *dinp, const void *dout, const void *inp, size_t n), (b, dinp, dout, inp, n))
GV_OP(swiglu_forward, gv_cuda_swiglu_forward, 0, N, F, 0,
      (gv_backend * b, void *out, const void *inp, int N, int F), (b, out, inp, N, F))
GV_OP(swiglu_backward, gv_cuda_swiglu_backward, 0, N, F, 0,
      (gv_backend * b, void *dinp, const void *dout, const void *inp, int N, int F),
      (b, dinp, dout, inp, N, F))
GV_OP(add_forward, cuda_add_forward, 0, n, 0, 0,
      (gv_backend * b, void *out, const void *x, const void *y, size_t n), (b, out, x, y, n))
GV_OP(accumulate, cuda_accumulate, 0, n, 0, 0, (gv_backend * b, void *dst, const void *src, size_t n),
      (b, dst, src, n))
GV_OP(crossentropy_forward, gv_cuda_crossentropy_forward, 0, N, Vp, 0,
      (gv_backend * b, float *losses, const void *logits, const int32_t *targets, int N, int V, int Vp,
       int ignore_index),
      (b, losses, logits, targets, N, V, Vp, ignore_index))
GV_OP(crossentropy_backward, gv_cuda_crossentropy_backward, 0, N, Vp, 0,
      (gv_backend * b, void *dlogits, const void *logits, const int32_t *targets, float dloss, int N, int V,
       int Vp, int ignore_index),
      (b, dlogits, logits, targets, dloss, N, V, Vp, ignore_index))
GV_OP(crossentropy_shard_stats, gv_cuda_crossentropy_shard_stats, 0, N, Vp, 0,
      (gv_backend * b, float *lse, float *tlogit, const void *logits, const int32_t *targets, int N, int V,
       int Vp, int v0, int ignore_index),
      (b, lse, tlogit, logits, targets, N, V, Vp, v0, ignore_index))
GV_OP(crossentropy_shard_backward, gv_cuda_crossentropy_shard_backward, 0, N, Vp, 0,
      (gv_backend * b, void *dlogits, const void *logits, const int32_t *targets, const float *lse,
       float dloss, int N, int V, int Vp, int v0, int ignore_index),
      (b, dlogits, logits, targets, lse, dloss, N, V, Vp, v0, ignore_index))
GV_OP(adamw_update, cuda_adamw_update, 0, n, 0, 0,
      (gv_backend * b, float *master, void *weight, const void *grad, float *m, float *v, size_t n, float lr,
       float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t),
      (b, master, weight, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, t))
GV_OP(adamw_update_multi, cuda_adamw_update_multi, 0, nseg, 0, 0,
      (gv_backend * b, float *master, void *weight, const void *grad, float *m, float *v,
       const gv_adamw_seg *segs, int nseg, float lr, float beta1, float beta2, float eps, float weight_decay,
       float grad_scale, int t),
      (b, master, weight, grad, m, v, segs, nseg, lr, beta1, beta2, eps, weight_decay, grad_scale, t))
GV_OP(sumsq, cuda_sumsq, 0, n, 0, 0, (gv_backend * b, double *out, const void *x, size_t n), (b, out, x, n))
GV_OP(scale, cuda_scale, 0, n, 0, 0, (gv_backend * b, void *x, float s, size_t n), (b, x, s, n))

GV_OP(matmul_gelu_forward, gv_cuda_matmul_gelu_forward, 0, N, C, OC,
      (gv_backend * b, void *out, void *pre, const void *inp, const void *w, const void *bias, int N, int C,
       int OC),
      (b, out, pre, inp, w, bias, N, C, OC))
GV_OP(matmul_backward_gelu, gv_cuda_matmul_backward_gelu, 1, N, C, OC,
      (gv_backend * b, void *dpre, void *dpre_bias, void *dw, void *dbias, const void *dout, const void *act,
       const void *pre, const void *w, int N, int C, int OC),
      (b, dpre, dpre_bias, dw, dbias, dout, act, pre, w, N, C, OC))

static size_t op_attention_stash_bytes(gv_backend *b, int B, int T, int H) {
    return gv_cuda_attention_stash_bytes(b, B, T, H);
}

static const struct gv_backend_i gv_cuda_iface = {
    /* .name = */ "cuda",
    /* .free = */ cuda_free,
    /* .alloc = */ mem_alloc,
    /* .dealloc = */ mem_dealloc,
    /* .memset0 = */ op_memset0,
    /* .upload = */ mem_upload,
    /* .download = */ mem_download,
    /* .upload_f32 = */ mem_upload_f32,
    /* .download_f32 = */ mem_download_f32,
    /* .convert = */ op_convert,
    /* .sync = */ mem_sync,
    /* .embedding_forward = */ op_embedding_forward,
    /* .embedding_backward = */ op_embedding_backward,
    /* .layernorm_forward = */ op_layernorm_forward,
    /* .layernorm_backward = */ op_layernorm_backward,
    /* .rmsnorm_forward = */ op_rmsnorm_forward,
    /* .rmsnorm_backward = */ op_rmsnorm_backward,
    /* .matmul_forward = */ op_matmul_forward,
    /* .matmul_backward = */ op_matmul_backward,
    /* .attention_stash_bytes = */ op_attention_stash_bytes,
    /* .attention_forward = */ op_attention_forward,
    /* .attention_backward = */ op_attention_backward,
    /* .rope_forward = */ op_rope_forward,
    /* .rope_backward = */ op_rope_backward,
    /* .gelu_forward = */ op_gelu_forward,
    /* .gelu_backward = */ op_gelu_backward,
    /* .swiglu_forward = */ op_swiglu_forward,
    /* .swiglu_backward = */ op_swiglu_backward,
    /* .add_forward = */ op_add_forward,
    /* .accumulate = */ op_accumulate,
    /* .crossentropy_forward = */ op_crossentropy_forward,
    /* .crossentropy_backward = */ op_crossentropy_backward,
    /* .crossentropy_shard_stats = */ op_crossentropy_shard_stats,
    /* .crossentropy_shard_backward = */ op_crossentropy_shard_backward,
    /* .adamw_update = */ op_adamw_update,
    /* .sumsq = */ op_sumsq,
    /* .scale = */ op_scale,
    /* .matmul_gelu_forward = */ op_matmul_gelu_forward,
    /* .matmul_backward_gelu = */ op_matmul_backward_gelu,
    /* .gelu_erf_forward = */ gv_cuda_gelu_erf_forward,
    /* .gelu_erf_backward = */ gv_cuda_gelu_erf_backward,
    /* .attention_ext_stash_bytes = */ gv_cuda_attention_ext_stash_bytes,
    /* .attention_ext_forward = */ gv_cuda_attention_ext_forward,
    /* .attention_ext_backward = */ gv_cuda_attention_ext_backward,
    /* .relu_forward = */ gv_cuda_relu_forward,
    /* .relu_backward = */ gv_cuda_relu_backward,
    /* .add_norm_forward = */ op_add_norm_forward,
    /* .crossentropy_forward_backward = */ op_crossentropy_forward_backward,
    /* .adamw_update_multi = */ op_adamw_update_multi,
    /* .copy2d = */ op_copy2d,
    /* .layernorm_backward_sum = */ op_layernorm_backward_sum,
    /* .event_record = */ mem_event_record,
    /* .event_wait = */ mem_event_wait,
    /* .matmul_forward_add = */ op_matmul_forward_add,
};

extern "C" int gv_backend_cuda_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n > 0;
}

static gv_status cuda_ctx_init(gv_cuda_ctx *c, int device) {
    int n = 0;
    GV_CUDA_TRY(cudaGetDeviceCount(&n));
    if (device < 0 || device >= n)
        return gv_fail(GV_ERR_INVALID, "cuda backend: device %d does not exist (%d device(s))", device, n);
    c->device = device;
    GV_CUDA_TRY(cudaSetDevice(device));
    cudaDeviceProp prop;
    GV_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    c->num_sms = prop.multiProcessorCount;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    if (prop.major < 8)
        return gv_fail(GV_ERR_UNSUPPORTED, "cuda backend: %s has compute capability %d.%d, bf16 needs 8.0+",
                       prop.name, prop.major, prop.minor);
    GV_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    GV_CUDA_TRY(cudaStreamCreateWithFlags(&c->comm_stream, cudaStreamNonBlocking));
    /* Keep freed stream-ordered temporaries in the pool instead of returning them to the driver. */
    cudaMemPool_t pool;
    GV_CUDA_TRY(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    GV_CUDA_TRY(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    cublasStatus_t bs = cublasLtCreate(&c->lt);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return gv_fail(GV_ERR_BACKEND, "cuda backend: cublasLtCreate failed (%d)", (int)bs);
    c->lt_ws_bytes = GV_CUDA_LT_WORKSPACE;
    GV_CUDA_TRY(cudaMalloc(&c->lt_ws, c->lt_ws_bytes));
    GV_CUDA_TRY(cudaMalloc((void **)&c->d_sumsq, (GV_SUMSQ_MAX_BLOCKS + 1) * sizeof(double)));
    const char *lz = getenv("GV_CUDA_LAZY_ZERO");
    c->lazy_zero = !(lz && lz[0] == '0');
    return gv_cuda_prof_init(c);
}

extern "C" gv_status gv_backend_cuda_init(gv_backend **out, int device) {
    *out = NULL;
    gv_backend *b = (gv_backend *)calloc(1, sizeof *b);
    gv_cuda_ctx *c = (gv_cuda_ctx *)calloc(1, sizeof *c);
    if (!b || !c) {
        free(b);
        free(c);
        return gv_fail(GV_ERR_NOMEM, "cuda backend: out of memory");
    }
    b->iface = &gv_cuda_iface;
    b->context = c;
    b->device = GV_DEV_CUDA;
    b->dtype = GV_BF16;
    gv_status st = cuda_ctx_init(c, device);
    if (st != GV_OK) {
        cuda_free(b);
        return st;
    }
    *out = b;
    return GV_OK;
}
