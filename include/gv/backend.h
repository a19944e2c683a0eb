/* Compute backends (cpu, cuda) behind one opaque handle. Shared code only calls these wrappers; a backend
 * is chosen at run time by name.
 *
 * Conventions for every op:
 *  - Buffers are device pointers of the backend. Activations, weights and gradients are in the backend's
 *    compute dtype (gv_backend_dtype: F32 on cpu, BF16 on cuda); statistics (mean, rstd, attention stash),
 *    losses, AdamW master weights and moments are F32; token ids and masks are I32.
 *  - Shapes: B batch, T sequence, C channels, H query heads, KVH key/value heads, D head size,
 *    N = rows (B*T), OC output channels, F FFN size, V vocab, Vp padded vocab (row stride of logits).
 *  - Backward ops ACCUMULATE (+=) into every gradient they write (input and parameter gradients), so the
 *    caller zeroes gradient buffers once and residual branches add up for free. A NULL gradient pointer
 *    means "not needed" and is skipped.
 *  - Ops are asynchronous on the backend's compute stream; gv_backend_sync waits. */
#ifndef GV_BACKEND_H
#define GV_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "gv/status.h"
#include "gv/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct gv_backend gv_backend;

/* name: "cpu" or "cuda". `device` selects the GPU ordinal (ignored on cpu). */
gv_status gv_backend_init(gv_backend **out, const char *name, int device);
void gv_backend_free(gv_backend *b);
const char *gv_backend_name(const gv_backend *b);
gv_device gv_backend_device(const gv_backend *b);
gv_dtype gv_backend_dtype(const gv_backend *b); /* compute dtype of activations, weights, gradients */
int gv_backend_available(const char *name);     /* 1 if the backend is compiled in and has a device */

/* Memory: zeroed allocations; bytes counted by the caller's arena. */
gv_status gv_backend_alloc(gv_backend *b, void **ptr, size_t bytes);
void gv_backend_dealloc(gv_backend *b, void *ptr);
/* memset0 is stream-ordered like every op; cuda defers it to the next backend call (a backward op that
 * accumulates into exactly that region then writes instead), so memory handed to anything outside the
 * backend (a communicator) right after memset0 needs a gv_backend_sync first, as after any op. */
gv_status gv_backend_memset0(gv_backend *b, void *ptr, size_t bytes);
gv_status gv_backend_upload(gv_backend *b, void *dst, const void *src_host, size_t bytes);
gv_status gv_backend_download(gv_backend *b, void *dst_host, const void *src, size_t bytes);
/* Host fp32 <-> device buffer of dtype dt (converting to/from bf16 where needed). */
gv_status gv_backend_upload_f32(gv_backend *b, void *dst, gv_dtype dt, const float *src_host, size_t n);
gv_status gv_backend_download_f32(gv_backend *b, float *dst_host, const void *src, gv_dtype dt, size_t n);
/* Device-side conversion: dst (dtype ddt) = src (dtype sdt), n elements. */
gv_status gv_backend_convert(gv_backend *b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt, size_t n);
/* Device-side strided copy (cudaMemcpy2D's form, bytes): rows of `width` bytes from src (rows `spitch` bytes
 * apart) to dst (rows `dpitch` apart); width <= both pitches, the regions must not overlap. Column slices
 * of a row-major matrix, stream-ordered like every op. */
gv_status gv_backend_copy2d(gv_backend *b, void *dst, size_t dpitch, const void *src, size_t spitch,
                            size_t width, size_t rows);
gv_status gv_backend_sync(gv_backend *b);
/* Stream order with a device communicator (the nonblocking collectives of gv/comm.h), without a host wait.
 * event_record: *event = an event of the compute stream after everything issued so far (a deferred memset0
 * included); NULL on host backends, whose work is done when each call returns. The event belongs to b and
 * stays valid until the next event_record on b. event_wait: the compute stream waits for `event` (someone
 * else's, e.g. gv_comm_req_wait's); NULL waits for nothing. */
gv_status gv_backend_event_record(gv_backend *b, void **event);
gv_status gv_backend_event_wait(gv_backend *b, void *event);

/* ---- ops ------------------------------------------------------------------------------------------- */

/* out[N,C] = wte[tokens[n]] + (wpe ? wpe[pos0 + n % T] : 0); N = B*T; tokens[N] I32. A negative token
 * (outside this rank's vocab shard under vocab parallelism) contributes a zero row and gets no gradient. */
gv_status gv_embedding_forward(gv_backend *b, void *out, const int32_t *tokens, const void *wte,
                               const void *wpe, int B, int T, int C, int pos0);
gv_status gv_embedding_backward(gv_backend *b, void *dwte, void *dwpe, const void *dout,
                                const int32_t *tokens, int B, int T, int C, int pos0);

/* out[N,C] = (inp - mean) * rstd * w + bias; mean[N], rstd[N] F32 saved for backward. */
gv_status gv_layernorm_forward(gv_backend *b, void *out, float *mean, float *rstd, const void *inp,
                               const void *w, const void *bias, int N, int C, float eps);
gv_status gv_layernorm_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                const void *inp, const void *w, const float *mean, const float *rstd, int N,
                                int C);
/* gv_layernorm_backward, then dsum[C] += the column sums of dinp as it leaves (the bias gradient of the
 * linear whose output gradient dinp is, taken in the same pass where the backend can). */
gv_status gv_layernorm_backward_sum(gv_backend *b, void *dinp, void *dw, void *dbias, void *dsum,
                                    const void *dout, const void *inp, const void *w, const float *mean,
                                    const float *rstd, int N, int C);

/* out[N,C] = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps). */
gv_status gv_rmsnorm_forward(gv_backend *b, void *out, float *rstd, const void *inp, const void *w, int N,
                             int C, float eps);
gv_status gv_rmsnorm_backward(gv_backend *b, void *dinp, void *dw, const void *dout, const void *inp,
                              const void *w, const float *rstd, int N, int C);

/* The residual add and the norm after it: sum[N,C] = x + y (rounded as gv_add_forward's), then
 * out[N,C] = LayerNorm(sum) with mean/rstd/bias as gv_layernorm_forward (rms = 0) or RMSNorm(sum) (rms = 1;
 * mean and bias unused). One pass over the rows where the backend fuses it. */
gv_status gv_add_norm_forward(gv_backend *b, void *sum, void *out, float *mean, float *rstd, const void *x,
                              const void *y, const void *w, const void *bias, int N, int C, float eps,
                              int rms);

/* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] (bias may be NULL). */
gv_status gv_matmul_forward(gv_backend *b, void *out, const void *inp, const void *w, const void *bias, int N,
                            int C, int OC);
gv_status gv_matmul_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                             const void *inp, const void *w, int N, int C, int OC);
/* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] + resid[N,OC]: a residual add in the product's epilogue (cuda;
 * one bf16 rounding instead of two). out may not alias inp or resid. Elsewhere matmul_forward, then out +=
 * resid, the same values as the unfused pair. */
gv_status gv_matmul_forward_add(gv_backend *b, void *out, const void *inp, const void *w, const void *bias,
                                const void *resid, int N, int C, int OC);

/* Linear + GELU (the MLP's first layer): pre[N,OC] = inp @ w^T + bias (kept for backward) and
 * out[N,OC] = gelu(pre); the same values as gv_matmul_forward into pre then gv_gelu_forward (on cuda the
 * GELU runs in the matmul's epilogue, saving a pass over both buffers). */
gv_status gv_matmul_gelu_forward(gv_backend *b, void *out, void *pre, const void *inp, const void *w,
                                 const void *bias, int N, int C, int OC);
/* Backward of a linear layer whose input act[N,C] = gelu(pre[N,C]) (the MLP's second layer), through the
 * GELU: dpre += gelu'(pre) * (dout @ w); dpre_bias[C] += column sums of that term (the bias gradient of the
 * layer that produced pre); dw += dout^T @ act; dbias += column sums of dout. Any gradient may be NULL.
 * The same as gv_matmul_backward into a zeroed scratch dinp, gv_gelu_backward(dpre, dinp, pre) and the
 * producer's bias reduction, without the scratch (on cuda: one GEMM with the GELU gradient and the bias
 * reduction in its epilogue when dpre was just zeroed with gv_backend_memset0). */
gv_status gv_matmul_backward_gelu(gv_backend *b, void *dpre, void *dpre_bias, void *dw, void *dbias,
                                  const void *dout, const void *act, const void *pre, const void *w, int N,
                                  int C, int OC);

/* Attention over packed qkv[B,T,(H+2*KVH)*D]: q heads first, then k heads, then v heads. Query head h
 * reads kv head h / (H/KVH). Scale 1/sqrt(D). causal: key t' <= t. mask[B,T] I32 (1 = real token,
 * 0 = padding key) or NULL. out[B,T,H*D]. stash: F32 scratch of gv_attention_stash_bytes() kept for
 * backward (probabilities on cpu, log-sum-exp on cuda). */
size_t gv_attention_stash_bytes(gv_backend *b, int B, int T, int H);
gv_status gv_attention_forward(gv_backend *b, void *out, float *stash, const void *qkv, const int32_t *mask,
                               int B, int T, int H, int KVH, int D, int causal);
gv_status gv_attention_backward(gv_backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                                const float *stash, const int32_t *mask, int B, int T, int H, int KVH, int D,
                                int causal);

/* General attention (T5: cross-attention, relative position bias, unscaled scores): queries and keys/values
 * from separate tensors with any row strides (views into packed or separate projections), Tq queries over
 * Tk keys. Query head h of row (b,i) is q[(b*Tq + i)*ldq + h*D ..]; kv head g of row (b,j) is
 * k[(b*Tk + j)*ldk + g*D ..] and v[(b*Tk + j)*ldv + g*D ..]; query head h reads kv head h / (H/KVH).
 * Scores s_ij = scale * q_i . k_j + bias[i, j, h] (bias: F32 [Tq, Tk, H], shared over the batch, or NULL);
 * causal: key j <= i (needs Tq == Tk). out [B, Tq, H*D]. stash: F32 of gv_attention_ext_stash_bytes
 * (probabilities and per-row scratch) kept for backward. Backward accumulates dq, dk, dv (laid out like q,
 * k, v; NULL = not needed) and dbias (F32 [Tq, Tk, H], summed over the batch; NULL = not needed). */
typedef struct {
    int B, Tq, Tk, H, KVH, D;
    int ldq, ldk, ldv; /* row strides in elements */
    float scale;
    int causal;
} gv_attn_ext;
size_t gv_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a);
gv_status gv_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out, float *stash,
                                   const void *q, const void *k, const void *v, const float *bias);
gv_status gv_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq, void *dk, void *dv,
                                    float *dbias, const void *dout, const void *q, const void *k,
                                    const void *v, const float *stash);

/* ReLU (T5's DenseReluDense): out = max(x, 0); backward: dinp += dout where x > 0. */
gv_status gv_relu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_relu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);

/* Rotary embedding (Llama "rotate half" convention) on the q and k heads of qkv[B,T,(H+2*KVH)*D]; v heads
 * are copied. Position of row t is pos0 + t. out and inp must not alias. */
gv_status gv_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                          float theta, int pos0);
gv_status gv_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH, int D,
                           float theta, int pos0);

/* GELU, tanh approximation. */
gv_status gv_gelu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_gelu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);

/* GELU, exact: out = 0.5 x (1 + erf(x / sqrt 2)) (BERT, ViT: HF's "gelu"). */
gv_status gv_gelu_erf_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_gelu_erf_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);

/* out[N,F] = silu(inp[:, :F]) * inp[:, F:2F]; inp[N,2F] holds gate then up. */
gv_status gv_swiglu_forward(gv_backend *b, void *out, const void *inp, int N, int F);
gv_status gv_swiglu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, int N, int F);

/* out = x + y (n elements); gv_accumulate: dst += src. out may alias x. */
gv_status gv_add_forward(gv_backend *b, void *out, const void *x, const void *y, size_t n);
gv_status gv_accumulate(gv_backend *b, void *dst, const void *src, size_t n);

/* Softmax cross-entropy per row: logits[N,Vp] (first V columns are real), targets[N] I32.
 * losses[N] F32 = -log softmax(logits)[target], 0 where target == ignore_index.
 * Backward: dlogits += (softmax - onehot) * dloss for rows whose target != ignore_index; columns >= V
 * get no gradient. (dloss is the same scalar for every row, e.g. 1/number of counted rows.)
 * In place: with dlogits == logits the logits are REPLACED by their gradient (ignored rows and columns
 * >= V become 0) — saves the [N,Vp] gradient buffer. Same for gv_crossentropy_shard_backward. */
gv_status gv_crossentropy_forward(gv_backend *b, float *losses, const void *logits, const int32_t *targets,
                                  int N, int V, int Vp, int ignore_index);
gv_status gv_crossentropy_backward(gv_backend *b, void *dlogits, const void *logits, const int32_t *targets,
                                   float dloss, int N, int V, int Vp, int ignore_index);

/* Training's loss and gradient in one go: losses as gv_crossentropy_forward, then the logits are replaced
 * by their gradient as the in-place gv_crossentropy_backward with dloss (one read of the logits where the
 * backend fuses the two). */
gv_status gv_crossentropy_forward_backward(gv_backend *b, float *losses, void *logits, const int32_t *targets,
                                           float dloss, int N, int V, int Vp, int ignore_index);

/* Vocab-parallel cross-entropy: logits[N,Vp] hold the global vocab columns [v0, v0 + V) of this rank's
 * shard. Stats: lse[N] = log-sum-exp of the shard's row; tlogit[N] = the target's logit when the target is
 * in the shard (else 0; 0 for ignored rows). The caller combines shards (loss = log sum_r exp(lse_r) -
 * sum_r tlogit_r). Backward: dlogits += (exp(logits - lse) - onehot) * dloss with lse[N] the full row's
 * log-sum-exp; ignored rows get nothing. lse and tlogit are F32 device buffers. */
gv_status gv_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits,
                                      const int32_t *targets, int N, int V, int Vp, int v0, int ignore_index);
gv_status gv_crossentropy_shard_backward(gv_backend *b, void *dlogits, const void *logits,
                                         const int32_t *targets, const float *lse, float dloss, int N, int V,
                                         int Vp, int v0, int ignore_index);

/* AdamW on n elements. master, m, v: F32. grad: compute dtype, multiplied by grad_scale first (clipping,
 * accumulation averaging). weight: the compute-dtype copy written from master, may be NULL (cpu: master is
 * the weight). step t >= 1 for bias correction. */
gv_status gv_adamw_update(gv_backend *b, float *master, void *weight, const void *grad, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                          float grad_scale, int t);

/* One piece of a multi-tensor AdamW step: n elements at element offset woff of weight and grad, poff of
 * master, moff of m and v; decay: whether weight decay applies. */
typedef struct {
    size_t woff, poff, moff, n;
    int decay;
} gv_adamw_seg;

/* gv_adamw_update over every segment (weight decay weight_decay where seg.decay, else 0), in as few launches
 * as the backend can (cuda: one); backends without it run one update per segment. */
gv_status gv_adamw_update_multi(gv_backend *b, float *master, void *weight, const void *grad, float *m,
                                float *v, const gv_adamw_seg *segs, int nseg, float lr, float beta1,
                                float beta2, float eps, float weight_decay, float grad_scale, int t);

/* *out (host) = sum of squares of x[n] (compute dtype), accumulated in double on the host side. */
gv_status gv_sumsq(gv_backend *b, double *out, const void *x, size_t n);
/* x *= s. */
gv_status gv_scale(gv_backend *b, void *x, float s, size_t n);

#ifdef __cplusplus
}
#endif
#endif
