/* Private: the fp32 CPU backend's op functions, one family per file (cpu-<family>.c). Only cpu*.c include
 * this. Every pointer is a host pointer; activations, weights and gradients are float (GV_F32). Argument
 * meanings and shapes are those of include/gv/backend.h. */
#ifndef GV_CPU_OPS_H
#define GV_CPU_OPS_H
#include "backend/backend-impl.h"

#include <math.h>

/* Below this many elements an elementwise loop runs on one thread (fork/join costs more than it saves). */
#define GV_CPU_PAR_MIN 16384

/* cpu-embedding.c */
gv_status gv_cpu_embedding_forward(gv_backend *b, void *out, const int32_t *tokens, const void *wte,
                                   const void *wpe, int B, int T, int C, int pos0);
gv_status gv_cpu_embedding_backward(gv_backend *b, void *dwte, void *dwpe, const void *dout,
                                    const int32_t *tokens, int B, int T, int C, int pos0);

/* cpu-norm.c */
gv_status gv_cpu_layernorm_forward(gv_backend *b, void *out, float *mean, float *rstd, const void *inp,
                                   const void *w, const void *bias, int N, int C, float eps);
gv_status gv_cpu_layernorm_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                    const void *inp, const void *w, const float *mean, const float *rstd,
                                    int N, int C);
gv_status gv_cpu_rmsnorm_forward(gv_backend *b, void *out, float *rstd, const void *inp, const void *w, int N,
                                 int C, float eps);
gv_status gv_cpu_rmsnorm_backward(gv_backend *b, void *dinp, void *dw, const void *dout, const void *inp,
                                  const void *w, const float *rstd, int N, int C);

/* cpu-matmul.c */
gv_status gv_cpu_matmul_forward(gv_backend *b, void *out, const void *inp, const void *w, const void *bias,
                                int N, int C, int OC);
gv_status gv_cpu_matmul_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                 const void *inp, const void *w, int N, int C, int OC);

gv_status gv_cpu_matmul_gelu_forward(gv_backend *b, void *out, void *pre, const void *inp, const void *w,
                                     const void *bias, int N, int C, int OC);
gv_status gv_cpu_matmul_backward_gelu(gv_backend *b, void *dpre, void *dpre_bias, void *dw, void *dbias,
                                      const void *dout, const void *act, const void *pre, const void *w,
                                      int N, int C, int OC);

/* GELU (tanh approximation) and its derivative, shared by cpu-activation.c and cpu-matmul.c. */
#define GV_GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GV_GELU_C 0.044715f
static inline float gv_cpu_gelu(float x) {
    float u = GV_GELU_K * (x + GV_GELU_C * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
/* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 c x^2) */
static inline float gv_cpu_gelu_grad(float x) {
    float u = GV_GELU_K * (x + GV_GELU_C * x * x * x);
    float th = tanhf(u);
    float du = GV_GELU_K * (1.0f + 3.0f * GV_GELU_C * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

/* cpu-attention.c */
size_t gv_cpu_attention_stash_bytes(gv_backend *b, int B, int T, int H);
gv_status gv_cpu_attention_forward(gv_backend *b, void *out, float *stash, const void *qkv,
                                   const int32_t *mask, int B, int T, int H, int KVH, int D, int causal);
gv_status gv_cpu_attention_backward(gv_backend *b, void *dqkv, const void *dout, const void *qkv,
                                    const void *out, const float *stash, const int32_t *mask, int B, int T,
                                    int H, int KVH, int D, int causal);

/* cpu-rope.c */
gv_status gv_cpu_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                              float theta, int pos0);
gv_status gv_cpu_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH,
                               int D, float theta, int pos0);

/* cpu-activation.c */
gv_status gv_cpu_gelu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cpu_gelu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
size_t gv_cpu_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a);
gv_status gv_cpu_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out, float *stash,
                                       const void *q, const void *k, const void *v, const float *bias);
gv_status gv_cpu_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq, void *dk, void *dv,
                                        float *dbias, const void *dout, const void *q, const void *k,
                                        const void *v, const float *stash);
gv_status gv_cpu_relu_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cpu_relu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
gv_status gv_cpu_gelu_erf_forward(gv_backend *b, void *out, const void *inp, size_t n);
gv_status gv_cpu_gelu_erf_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n);
gv_status gv_cpu_swiglu_forward(gv_backend *b, void *out, const void *inp, int N, int F);
gv_status gv_cpu_swiglu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, int N, int F);

/* cpu-crossentropy.c */
gv_status gv_cpu_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits,
                                          const int32_t *targets, int N, int V, int Vp, int v0,
                                          int ignore_index);
gv_status gv_cpu_crossentropy_shard_backward(gv_backend *b, void *dlogits, const void *logits,
                                             const int32_t *targets, const float *lse, float dloss, int N,
                                             int V, int Vp, int v0, int ignore_index);
gv_status gv_cpu_crossentropy_forward(gv_backend *b, float *losses, const void *logits,
                                      const int32_t *targets, int N, int V, int Vp, int ignore_index);
gv_status gv_cpu_crossentropy_backward(gv_backend *b, void *dlogits, const void *logits,
                                       const int32_t *targets, float dloss, int N, int V, int Vp,
                                       int ignore_index);

#endif
