/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (BERT, ViT), fp32 math on bf16 data. Backward accumulates.
 * VEC = 8 (16-byte accesses) when the pointers allow it, else scalar. */
#include "cuda-common.cuh"

#define GELU_RSQRT2 0.70710678118654752f   /* 1/sqrt(2) */
#define GELU_RSQRT2PI 0.39894228040143268f /* 1/sqrt(2 pi) */

/* ---- kernels ----------------------------------------------------------------------------------------- */

__device__ __forceinline__ float gelu_erf_f(float x) {
    return 0.5f * x * (1.0f + erff(x * GELU_RSQRT2));
}
/* d/dx = Phi(x) + x phi(x) */
__device__ __forceinline__ float gelu_erf_grad(float x) {
    return 0.5f * (1.0f + erff(x * GELU_RSQRT2)) + x * expf(-0.5f * x * x) * GELU_RSQRT2PI;
}

template <int VEC> __global__ void gelu_erf_forward_kernel(bf16 *out, const bf16 *inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float x[VEC];
        gv_load_bf<VEC>(x, inp + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[k] = gelu_erf_f(x[k]);
        gv_store_bf<VEC>(out + i, x);
    } else {
        for (; i < n; i++) out[i] = gv_tobf(gelu_erf_f(gv_bf(inp[i])));
    }
}

template <int VEC>
__global__ void gelu_erf_backward_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float x[VEC], d[VEC], g[VEC];
        gv_load_bf<VEC>(x, inp + i);
        gv_load_bf<VEC>(d, dout + i);
        gv_load_bf<VEC>(g, dinp + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) g[k] += d[k] * gelu_erf_grad(x[k]);
        gv_store_bf<VEC>(dinp + i, g);
    } else {
        for (; i < n; i++) dinp[i] = gv_tobf(gv_bf(dinp[i]) + gv_bf(dout[i]) * gelu_erf_grad(gv_bf(inp[i])));
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

gv_status gv_cuda_gelu_erf_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (n == 0) return GV_OK;
    if (gv_aligned16(out) && gv_aligned16(inp))
        gelu_erf_forward_kernel<8><<<gv_cdiv(n, 8 * 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, n);
    else
        gelu_erf_forward_kernel<1><<<gv_cdiv(n, 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, n);
    GV_CUDA_LAUNCHED("gelu_erf_forward");
    return GV_OK;
}

gv_status gv_cuda_gelu_erf_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (n == 0) return GV_OK;
    if (gv_aligned16(dinp) && gv_aligned16(dout) && gv_aligned16(inp))
        gelu_erf_backward_kernel<8>
            <<<gv_cdiv(n, 8 * 256), 256, 0, s>>>((bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, n);
    else
        gelu_erf_backward_kernel<1>
            <<<gv_cdiv(n, 256), 256, 0, s>>>((bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, n);
    GV_CUDA_LAUNCHED("gelu_erf_backward");
    return GV_OK;
}
