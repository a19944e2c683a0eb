/* Token + position embedding: out[n] = wte[tokens[n]] + wpe[pos0 + n % T] (wpe may be NULL); a negative token
 * (outside this rank's vocab shard) contributes a zero row and gets no gradient.
 * Backward is deterministic and accumulates: dwpe rows sum over the batch in a fixed order; for dwte the
 * (token, row) pairs are radix-sorted (stable) and one block per distinct token sums its rows in fp32 and
 * adds the total once into the bf16 gradient row. */
#include "cuda-common.cuh"

#include <cub/cub.cuh>

/* ---- kernels ----------------------------------------------------------------------------------------- */

template <int VEC>
__global__ void embedding_forward_kernel(bf16 *out, const int32_t *tokens, const bf16 *wte, const bf16 *wpe,
                                         int T, int C, int pos0) {
    const size_t n = blockIdx.x;
    const int tok = tokens[n];
    const bf16 *e = tok >= 0 ? wte + (size_t)tok * C : NULL; /* negative: not in this vocab shard */
    const bf16 *p = wpe ? wpe + (size_t)(pos0 + (int)(n % (size_t)T)) * C : NULL;
    bf16 *o = out + n * C;
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float a[VEC], q[VEC];
        if (e) {
            gv_load_bf<VEC>(a, e + c);
        } else {
#pragma unroll
            for (int k = 0; k < VEC; k++) a[k] = 0.0f;
        }
        if (p) {
            gv_load_bf<VEC>(q, p + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) a[k] += q[k];
        }
        gv_store_bf<VEC>(o + c, a);
    }
}

/* dwpe[pos0 + t] += sum_b dout[b, t]: one block per t. */
template <int VEC>
__global__ void embedding_dwpe_kernel(bf16 *dwpe, const bf16 *dout, int B, int T, int C, int pos0) {
    const int t = blockIdx.x;
    bf16 *g = dwpe + (size_t)(pos0 + t) * C;
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float acc[VEC], d[VEC];
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] = 0.0f;
        for (int bb = 0; bb < B; bb++) {
            gv_load_bf<VEC>(d, dout + ((size_t)bb * T + t) * C + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) acc[k] += d[k];
        }
        gv_load_bf<VEC>(d, g + c);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += d[k];
        gv_store_bf<VEC>(g + c, acc);
    }
}

__global__ void iota_kernel(int32_t *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = i;
}

/* Block i: if sorted position i starts a run of equal tokens, sum the run's dout rows into dwte[token]. */
template <int VEC>
__global__ void embedding_dwte_kernel(bf16 *dwte, const bf16 *dout, const uint32_t *keys, const int32_t *rows,
                                      int N, int C) {
    const int i = blockIdx.x;
    const uint32_t tok = keys[i];
    if ((int32_t)tok < 0 || (i > 0 && keys[i - 1] == tok)) return; /* negative: not in this vocab shard */
    int end = i + 1;
    while (end < N && keys[end] == tok) end++;
    bf16 *g = dwte + (size_t)tok * C;
    for (int c = threadIdx.x * VEC; c < C; c += blockDim.x * VEC) {
        float acc[VEC], d[VEC];
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] = 0.0f;
        for (int r = i; r < end; r++) {
            gv_load_bf<VEC>(d, dout + (size_t)rows[r] * C + c);
#pragma unroll
            for (int k = 0; k < VEC; k++) acc[k] += d[k];
        }
        gv_load_bf<VEC>(d, g + c);
#pragma unroll
        for (int k = 0; k < VEC; k++) acc[k] += d[k];
        gv_store_bf<VEC>(g + c, acc);
    }
}

/* ---- launchers --------------------------------------------------------------------------------------- */

static gv_status emb_check(const char *op, int B, int T, int C, int pos0) {
    if (B < 0 || T < 0 || C < 0 || pos0 < 0)
        return gv_fail(GV_ERR_INVALID, "%s: negative size (B=%d T=%d C=%d pos0=%d)", op, B, T, C, pos0);
    return GV_OK;
}

gv_status gv_cuda_embedding_forward(gv_backend *b, void *out, const int32_t *tokens, const void *wte,
                                    const void *wpe, int B, int T, int C, int pos0) {
    GV_TRY(emb_check("embedding_forward", B, T, C, pos0));
    cudaStream_t s = gv_cuda(b)->stream;
    size_t N = (size_t)B * T;
    if (N == 0 || C == 0) return GV_OK;
    int vec = C % 8 == 0 && gv_aligned16(out) && gv_aligned16(wte) && (!wpe || gv_aligned16(wpe));
    if (vec)
        embedding_forward_kernel<8><<<(unsigned)N, 128, 0, s>>>((bf16 *)out, tokens, (const bf16 *)wte,
                                                                (const bf16 *)wpe, T, C, pos0);
    else
        embedding_forward_kernel<1><<<(unsigned)N, 256, 0, s>>>((bf16 *)out, tokens, (const bf16 *)wte,
                                                                (const bf16 *)wpe, T, C, pos0);
    GV_CUDA_LAUNCHED("embedding_forward");
    return GV_OK;
}

gv_status gv_cuda_embedding_backward(gv_backend *b, void *dwte, void *dwpe, const void *dout,
                                     const int32_t *tokens, int B, int T, int C, int pos0) {
    GV_TRY(emb_check("embedding_backward", B, T, C, pos0));
    gv_cuda_ctx *c = gv_cuda(b);
    cudaStream_t s = c->stream;
    int N = B * T;
    if (N == 0 || C == 0) return GV_OK;
    int vec = C % 8 == 0 && gv_aligned16(dout);
    if (dwpe) {
        if (vec && gv_aligned16(dwpe))
            embedding_dwpe_kernel<8><<<T, 128, 0, s>>>((bf16 *)dwpe, (const bf16 *)dout, B, T, C, pos0);
        else
            embedding_dwpe_kernel<1><<<T, 256, 0, s>>>((bf16 *)dwpe, (const bf16 *)dout, B, T, C, pos0);
        GV_CUDA_LAUNCHED("embedding_backward dwpe");
    }
    if (!dwte) return GV_OK;
    size_t cub_bytes = 0;
    cub::DeviceRadixSort::SortPairs(NULL, cub_bytes, (const uint32_t *)NULL, (uint32_t *)NULL,
                                    (const int32_t *)NULL, (int32_t *)NULL, N, 0, 32, s);
    size_t nb = (size_t)N * sizeof(int32_t);
    size_t off_vals = (nb + 255) / 256 * 256, off_out = 2 * off_vals, off_cub = 3 * off_vals;
    char *tmp;
    GV_TRY(gv_cuda_tmp_alloc(c, (void **)&tmp, off_cub + cub_bytes));
    uint32_t *keys_sorted = (uint32_t *)tmp;
    int32_t *rows = (int32_t *)(tmp + off_vals), *rows_sorted = (int32_t *)(tmp + off_out);
    gv_status st = GV_OK;
    iota_kernel<<<gv_cdiv(N, 256), 256, 0, s>>>(rows, N);
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        e = cub::DeviceRadixSort::SortPairs(tmp + off_cub, cub_bytes, (const uint32_t *)tokens, keys_sorted,
                                            rows, rows_sorted, N, 0, 32, s);
    if (e != cudaSuccess) {
        st = gv_fail(GV_ERR_BACKEND, "cuda: embedding_backward sort failed: %s", cudaGetErrorString(e));
    } else {
        if (vec && gv_aligned16(dwte))
            embedding_dwte_kernel<8>
                <<<N, 128, 0, s>>>((bf16 *)dwte, (const bf16 *)dout, keys_sorted, rows_sorted, N, C);
        else
            embedding_dwte_kernel<1>
                <<<N, 256, 0, s>>>((bf16 *)dwte, (const bf16 *)dout, keys_sorted, rows_sorted, N, C);
        e = cudaGetLastError();
        if (e != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "cuda: embedding_backward dwte kernel launch failed: %s",
                         cudaGetErrorString(e));
    }
    gv_status st2 = gv_cuda_tmp_free(c, tmp);
    return st != GV_OK ? st : st2;
}
