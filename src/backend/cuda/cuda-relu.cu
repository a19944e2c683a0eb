/* ReLU (T5's DenseReluDense), bf16 data. Backward accumulates: dinp += dout where x > 0. */
#include "cuda-common.cuh"

/* ---- kernels ----------------------------------------------------------------------------------------- */

__global__ void relu_forward_kernel(bf16 *out, const bf16 *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = gv_tobf(fmaxf(gv_bf(inp[i]), 0.0f));
}

__global__ void relu_backward_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && gv_bf(inp[i]) > 0.0f) dinp[i] = gv_tobf(gv_bf(dinp[i]) + gv_bf(dout[i]));
}

/* ---- launchers --------------------------------------------------------------------------------------- */

gv_status gv_cuda_relu_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    if (n == 0) return GV_OK;
    relu_forward_kernel<<<gv_cdiv(n, 256), 256, 0, gv_cuda(b)->stream>>>((bf16 *)out, (const bf16 *)inp, n);
    GV_CUDA_LAUNCHED("relu_forward");
    return GV_OK;
}

gv_status gv_cuda_relu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    if (n == 0) return GV_OK;
    relu_backward_kernel<<<gv_cdiv(n, 256), 256, 0, gv_cuda(b)->stream>>>((bf16 *)dinp, (const bf16 *)dout,
                                                                          (const bf16 *)inp, n);
    GV_CUDA_LAUNCHED("relu_backward");
    return GV_OK;
}
