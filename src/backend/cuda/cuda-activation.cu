/* Activations: GELU (tanh approximation) and SwiGLU (silu(gate) * up), fp32 math on bf16 data. Backward ops
 * accumulate. VEC = 8 (16-byte accesses) when pointers and row lengths allow it, else scalar. */
#include "cuda-common.cuh"

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_C 0.044715f

/* ---- kernels ----------------------------------------------------------------------------------------- */

__device__ __forceinline__ float gelu_f(float x) {
    float u = GELU_K * (x + GELU_C * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_grad(float x) {
    float u = GELU_K * (x + GELU_C * x * x * x);
    float th = tanhf(u);
    float du = GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}
__device__ __forceinline__ float sigmoid_f(float x) {
    return 1.0f / (1.0f + expf(-x));
}

template <int VEC> __global__ void gelu_forward_kernel(bf16 *out, const bf16 *inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float x[VEC];
        gv_load_bf<VEC>(x, inp + i);
#pragma unroll
        for (int k = 0; k < VEC; k++) x[k] = gelu_f(x[k]);
        gv_store_bf<VEC>(out + i, x);
    } else {
        for (; i < n; i++) out[i] = gv_tobf(gelu_f(gv_bf(inp[i])));
    }
}

/* dinp (+)= dout * gelu'(inp); acc = 0: dinp is written (a claimed deferred zero, see cuda.cu). */
template <int VEC>
__global__ void gelu_backward_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n, int acc) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i + VEC <= n) {
        float x[VEC], d[VEC], g[VEC];
        gv_load_bf<VEC>(x, inp + i);
        gv_load_bf<VEC>(d, dout + i);
        if (acc) {
            gv_load_bf<VEC>(g, dinp + i);
        } else {
#pragma unroll
            for (int k = 0; k < VEC; k++) g[k] = 0.0f;
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) g[k] += d[k] * gelu_grad(x[k]);
        gv_store_bf<VEC>(dinp + i, g);
    } else {
        for (; i < n; i++)
            dinp[i] = gv_tobf((acc ? gv_bf(dinp[i]) : 0.0f) + gv_bf(dout[i]) * gelu_grad(gv_bf(inp[i])));
    }
}

/* dinp (+)= dout * gelu'(inp) over rows [N, C] (dinp may alias dout), and the column sums of what it adds
 * (the producing linear's bias gradient) as per-block partials part[blockIdx.y, C]: one read of the data
 * instead of a second pass over it. Block: 32 x GB_ROWS threads, a lane owns VEC columns of 32 * VEC. */
#define GB_ROWS 8
template <int VEC>
__global__ void gelu_backward_bias_kernel(bf16 *dinp, float *part, const bf16 *dout, const bf16 *inp, int N,
                                          int C, int rows_per_block, int acc) {
    __shared__ float sh[GB_ROWS][32 * VEC + 1];
    const int col = (blockIdx.x * 32 + threadIdx.x) * VEC;
    const int r0 = blockIdx.y * rows_per_block, r1 = min(N, r0 + rows_per_block);
    float s[VEC];
#pragma unroll
    for (int k = 0; k < VEC; k++) s[k] = 0.0f;
    if (col < C)
        for (int r = r0 + threadIdx.y; r < r1; r += GB_ROWS) {
            const size_t o = (size_t)r * C + col;
            float x[VEC], d[VEC], g[VEC];
            gv_load_bf<VEC>(x, inp + o);
            gv_load_bf<VEC>(d, dout + o);
            if (acc) {
                gv_load_bf<VEC>(g, dinp + o);
            } else {
#pragma unroll
                for (int k = 0; k < VEC; k++) g[k] = 0.0f;
            }
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                float v =
                    gv_bf(__float2bfloat16(d[k] * gelu_grad(x[k]))); /* the value the unfused pair sums */
                s[k] += v;
                g[k] += v;
            }
            gv_store_bf<VEC>(dinp + o, g);
        }
#pragma unroll
    for (int k = 0; k < VEC; k++) sh[threadIdx.y][threadIdx.x * VEC + k] = s[k];
    __syncthreads();
    for (int i = threadIdx.y * 32 + threadIdx.x; i < 32 * VEC; i += 32 * GB_ROWS) {
        float t = 0.0f;
#pragma unroll
        for (int y = 0; y < GB_ROWS; y++) t += sh[y][i];
        const int c = blockIdx.x * 32 * VEC + i;
        if (c < C) part[(size_t)blockIdx.y * C + c] = t;
    }
}

/* One thread per VEC consecutive outputs of a row (VEC divides F). */
template <int VEC> __global__ void swiglu_forward_kernel(bf16 *out, const bf16 *inp, int N, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    const bf16 *g = inp + n * 2 * F + f;
    float a[VEC], u[VEC];
    gv_load_bf<VEC>(a, g);
    gv_load_bf<VEC>(u, g + F);
#pragma unroll
    for (int k = 0; k < VEC; k++) a[k] = a[k] * sigmoid_f(a[k]) * u[k];
    gv_store_bf<VEC>(out + i, a);
}

template <int VEC>
__global__ void swiglu_backward_kernel(bf16 *dinp, const bf16 *dout, const bf16 *inp, int N, int F) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    if (i >= (size_t)N * F) return;
    size_t n = i / F, f = i % F;
    const bf16 *gp = inp + n * 2 * F + f;
    bf16 *dgp = dinp + n * 2 * F + f;
    float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC];
    gv_load_bf<VEC>(g, gp);
    gv_load_bf<VEC>(u, gp + F);
    gv_load_bf<VEC>(d, dout + i);
    gv_load_bf<VEC>(dg, dgp);
    gv_load_bf<VEC>(du, dgp + F);
#pragma unroll
    for (int k = 0; k < VEC; k++) {
        float s = sigmoid_f(g[k]);
        dg[k] += d[k] * u[k] * s * (1.0f + g[k] * (1.0f - s));
        du[k] += d[k] * g[k] * s;
    }
    gv_store_bf<VEC>(dgp, dg);
    gv_store_bf<VEC>(dgp + F, du);
}

/* ---- launchers --------------------------------------------------------------------------------------- */

gv_status gv_cuda_gelu_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (n == 0) return GV_OK;
    if (gv_aligned16(out) && gv_aligned16(inp))
        gelu_forward_kernel<8><<<gv_cdiv(n, 8 * 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, n);
    else
        gelu_forward_kernel<1><<<gv_cdiv(n, 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, n);
    GV_CUDA_LAUNCHED("gelu_forward");
    return GV_OK;
}

gv_status gv_cuda_gelu_backward_into(gv_cuda_ctx *c, bf16 *dinp, const bf16 *dout, const bf16 *inp, size_t n,
                                     int acc) {
    if (n == 0) return GV_OK;
    if (gv_aligned16(dinp) && gv_aligned16(dout) && gv_aligned16(inp))
        gelu_backward_kernel<8><<<gv_cdiv(n, 8 * 256), 256, 0, c->stream>>>(dinp, dout, inp, n, acc);
    else
        gelu_backward_kernel<1><<<gv_cdiv(n, 256), 256, 0, c->stream>>>(dinp, dout, inp, n, acc);
    GV_CUDA_LAUNCHED("gelu_backward");
    return GV_OK;
}

gv_status gv_cuda_gelu_backward_bias_into(gv_cuda_ctx *c, bf16 *dinp, bf16 *dbias, const bf16 *dout,
                                          const bf16 *inp, int N, int C, int acc) {
    if (N == 0 || C == 0) return GV_OK;
    const int vec = C % 8 == 0 && gv_aligned16(dinp) && gv_aligned16(dout) && gv_aligned16(inp) ? 8 : 1;
    const unsigned colblocks = gv_cdiv((size_t)C, (size_t)32 * vec);
    int G = (int)((size_t)c->num_sms * 8 / colblocks); /* ~8 blocks of 256 threads per SM */
    if (G < 1) G = 1;
    int rows = (N + G - 1) / G;
    if (rows < GB_ROWS) rows = GB_ROWS;
    G = (N + rows - 1) / rows;
    float *part;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&part, (size_t)G * C * sizeof(float)));
    dim3 grid(colblocks, G), block(32, GB_ROWS);
    if (vec == 8)
        gelu_backward_bias_kernel<8><<<grid, block, 0, c->stream>>>(dinp, part, dout, inp, N, C, rows, acc);
    else
        gelu_backward_bias_kernel<1><<<grid, block, 0, c->stream>>>(dinp, part, dout, inp, N, C, rows, acc);
    return gv_cuda_partials_finish(c, "gelu_backward_bias", dbias, part, G, C);
}

gv_status gv_cuda_gelu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    gv_cuda_ctx *c = gv_cuda(b);
    int claimed = 0;
    const struct gv_range in[] = {{dout, n * sizeof(bf16)}, {inp, n * sizeof(bf16)}};
    GV_TRY(gv_cuda_zero_claim(c, &claimed, dinp, n * sizeof(bf16), in, 2));
    return gv_cuda_gelu_backward_into(c, (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, n, !claimed);
}

gv_status gv_cuda_swiglu_forward(gv_backend *b, void *out, const void *inp, int N, int F) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (N < 0 || F < 0) return gv_fail(GV_ERR_INVALID, "swiglu_forward: negative size (N=%d F=%d)", N, F);
    size_t n = (size_t)N * F;
    if (n == 0) return GV_OK;
    if (F % 8 == 0 && gv_aligned16(out) && gv_aligned16(inp))
        swiglu_forward_kernel<8><<<gv_cdiv(n, 8 * 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, N, F);
    else
        swiglu_forward_kernel<1><<<gv_cdiv(n, 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)inp, N, F);
    GV_CUDA_LAUNCHED("swiglu_forward");
    return GV_OK;
}

gv_status gv_cuda_swiglu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, int N,
                                  int F) {
    cudaStream_t s = gv_cuda(b)->stream;
    if (N < 0 || F < 0) return gv_fail(GV_ERR_INVALID, "swiglu_backward: negative size (N=%d F=%d)", N, F);
    size_t n = (size_t)N * F;
    if (n == 0) return GV_OK;
    if (F % 8 == 0 && gv_aligned16(dinp) && gv_aligned16(dout) && gv_aligned16(inp))
        swiglu_backward_kernel<8>
            <<<gv_cdiv(n, 8 * 256), 256, 0, s>>>((bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, N, F);
    else
        swiglu_backward_kernel<1>
            <<<gv_cdiv(n, 256), 256, 0, s>>>((bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, N, F);
    GV_CUDA_LAUNCHED("swiglu_backward");
    return GV_OK;
}
