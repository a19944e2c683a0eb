#include "backend-impl.h"

#include <stdlib.h>
#include <string.h>

gv_status gv_backend_init(gv_backend **out, const char *name, int device) {
    *out = NULL;
    if (!name || !strcmp(name, "cpu")) return gv_backend_cpu_init(out);
    if (!strcmp(name, "cuda")) {
#ifdef GV_HAVE_CUDA
        return gv_backend_cuda_init(out, device);
#else
        (void)device;
        return gv_fail(GV_ERR_UNSUPPORTED,
                       "backend 'cuda': this build has no CUDA (configure with -DGV_CUDA=ON)");
#endif
    }
    return gv_fail(GV_ERR_INVALID, "backend '%s': unknown (expected cpu or cuda)", name);
}

int gv_backend_available(const char *name) {
    if (!strcmp(name, "cpu")) return 1;
#ifdef GV_HAVE_CUDA
    if (!strcmp(name, "cuda")) return gv_backend_cuda_available();
#endif
    return 0;
}

void gv_backend_free(gv_backend *b) {
    if (b) b->iface->free(b);
}
const char *gv_backend_name(const gv_backend *b) {
    return b->iface->name;
}
gv_device gv_backend_device(const gv_backend *b) {
    return b->device;
}
gv_dtype gv_backend_dtype(const gv_backend *b) {
    return b->dtype;
}

gv_status gv_backend_alloc(gv_backend *b, void **ptr, size_t bytes) {
    return b->iface->alloc(b, ptr, bytes);
}
void gv_backend_dealloc(gv_backend *b, void *ptr) {
    if (ptr) b->iface->dealloc(b, ptr);
}
gv_status gv_backend_memset0(gv_backend *b, void *ptr, size_t bytes) {
    return b->iface->memset0(b, ptr, bytes);
}
gv_status gv_backend_upload(gv_backend *b, void *dst, const void *src_host, size_t bytes) {
    return b->iface->upload(b, dst, src_host, bytes);
}
gv_status gv_backend_download(gv_backend *b, void *dst_host, const void *src, size_t bytes) {
    return b->iface->download(b, dst_host, src, bytes);
}
gv_status gv_backend_upload_f32(gv_backend *b, void *dst, gv_dtype dt, const float *src_host, size_t n) {
    return b->iface->upload_f32(b, dst, dt, src_host, n);
}
gv_status gv_backend_download_f32(gv_backend *b, float *dst_host, const void *src, gv_dtype dt, size_t n) {
    return b->iface->download_f32(b, dst_host, src, dt, n);
}
gv_status gv_backend_convert(gv_backend *b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt,
                             size_t n) {
    return b->iface->convert(b, dst, ddt, src, sdt, n);
}
gv_status gv_backend_copy2d(gv_backend *b, void *dst, size_t dpitch, const void *src, size_t spitch,
                            size_t width, size_t rows) {
    if (width > dpitch || width > spitch)
        return gv_fail(GV_ERR_INVALID, "copy2d: row width %zu bytes exceeds a pitch (dst %zu, src %zu)",
                       width, dpitch, spitch);
    if (!width || !rows) return GV_OK;
    return b->iface->copy2d(b, dst, dpitch, src, spitch, width, rows);
}
gv_status gv_backend_sync(gv_backend *b) {
    return b->iface->sync(b);
}
gv_status gv_backend_event_record(gv_backend *b, void **event) {
    *event = NULL;
    return b->iface->event_record ? b->iface->event_record(b, event) : GV_OK;
}
gv_status gv_backend_event_wait(gv_backend *b, void *event) {
    if (!event || !b->iface->event_wait) return GV_OK;
    return b->iface->event_wait(b, event);
}

gv_status gv_embedding_forward(gv_backend *b, void *out, const int32_t *tokens, const void *wte,
                               const void *wpe, int B, int T, int C, int pos0) {
    return b->iface->embedding_forward(b, out, tokens, wte, wpe, B, T, C, pos0);
}

gv_status gv_embedding_backward(gv_backend *b, void *dwte, void *dwpe, const void *dout,
                                const int32_t *tokens, int B, int T, int C, int pos0) {
    return b->iface->embedding_backward(b, dwte, dwpe, dout, tokens, B, T, C, pos0);
}

gv_status gv_layernorm_forward(gv_backend *b, void *out, float *mean, float *rstd, const void *inp,
                               const void *w, const void *bias, int N, int C, float eps) {
    return b->iface->layernorm_forward(b, out, mean, rstd, inp, w, bias, N, C, eps);
}

gv_status gv_layernorm_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                                const void *inp, const void *w, const float *mean, const float *rstd, int N,
                                int C) {
    return b->iface->layernorm_backward(b, dinp, dw, dbias, dout, inp, w, mean, rstd, N, C);
}

/* GV_NO_FUSED=1: the fused entries run as their unfused pairs (A/B timing). */
static int gv_fused_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("GV_NO_FUSED");
        on = !(e && e[0] == '1');
    }
    return on;
}

gv_status gv_layernorm_backward_sum(gv_backend *b, void *dinp, void *dw, void *dbias, void *dsum,
                                    const void *dout, const void *inp, const void *w, const float *mean,
                                    const float *rstd, int N, int C) {
    if (b->iface->layernorm_backward_sum && gv_fused_on() && dsum && dinp)
        return b->iface->layernorm_backward_sum(b, dinp, dw, dbias, dsum, dout, inp, w, mean, rstd, N, C);
    GV_TRY(b->iface->layernorm_backward(b, dinp, dw, dbias, dout, inp, w, mean, rstd, N, C));
    if (!dsum || !dinp) return GV_OK;
    return b->iface->matmul_backward(b, NULL, NULL, dsum, dinp, NULL, NULL, N, 0, C); /* column sums */
}

gv_status gv_add_norm_forward(gv_backend *b, void *sum, void *out, float *mean, float *rstd, const void *x,
                              const void *y, const void *w, const void *bias, int N, int C, float eps,
                              int rms) {
    if (b->iface->add_norm_forward && gv_fused_on())
        return b->iface->add_norm_forward(b, sum, out, mean, rstd, x, y, w, bias, N, C, eps, rms);
    GV_TRY(b->iface->add_forward(b, sum, x, y, (size_t)N * C));
    if (rms) return b->iface->rmsnorm_forward(b, out, rstd, sum, w, N, C, eps);
    return b->iface->layernorm_forward(b, out, mean, rstd, sum, w, bias, N, C, eps);
}

gv_status gv_rmsnorm_forward(gv_backend *b, void *out, float *rstd, const void *inp, const void *w, int N,
                             int C, float eps) {
    return b->iface->rmsnorm_forward(b, out, rstd, inp, w, N, C, eps);
}

gv_status gv_rmsnorm_backward(gv_backend *b, void *dinp, void *dw, const void *dout, const void *inp,
                              const void *w, const float *rstd, int N, int C) {
    return b->iface->rmsnorm_backward(b, dinp, dw, dout, inp, w, rstd, N, C);
}

gv_status gv_matmul_forward(gv_backend *b, void *out, const void *inp, const void *w, const void *bias, int N,
                            int C, int OC) {
    return b->iface->matmul_forward(b, out, inp, w, bias, N, C, OC);
}

gv_status gv_matmul_forward_add(gv_backend *b, void *out, const void *inp, const void *w, const void *bias,
                                const void *resid, int N, int C, int OC) {
    if (b->iface->matmul_forward_add && gv_fused_on() && C > 0)
        return b->iface->matmul_forward_add(b, out, inp, w, bias, resid, N, C, OC);
    GV_TRY(b->iface->matmul_forward(b, out, inp, w, bias, N, C, OC));
    return b->iface->add_forward(b, out, resid, out, (size_t)N * OC); /* resid + product, as x + y */
}

gv_status gv_matmul_backward(gv_backend *b, void *dinp, void *dw, void *dbias, const void *dout,
                             const void *inp, const void *w, int N, int C, int OC) {
    return b->iface->matmul_backward(b, dinp, dw, dbias, dout, inp, w, N, C, OC);
}

gv_status gv_matmul_gelu_forward(gv_backend *b, void *out, void *pre, const void *inp, const void *w,
                                 const void *bias, int N, int C, int OC) {
    return b->iface->matmul_gelu_forward(b, out, pre, inp, w, bias, N, C, OC);
}

gv_status gv_matmul_backward_gelu(gv_backend *b, void *dpre, void *dpre_bias, void *dw, void *dbias,
                                  const void *dout, const void *act, const void *pre, const void *w, int N,
                                  int C, int OC) {
    return b->iface->matmul_backward_gelu(b, dpre, dpre_bias, dw, dbias, dout, act, pre, w, N, C, OC);
}

size_t gv_attention_stash_bytes(gv_backend *b, int B, int T, int H) {
    return b->iface->attention_stash_bytes(b, B, T, H);
}

gv_status gv_attention_forward(gv_backend *b, void *out, float *stash, const void *qkv, const int32_t *mask,
                               int B, int T, int H, int KVH, int D, int causal) {
    return b->iface->attention_forward(b, out, stash, qkv, mask, B, T, H, KVH, D, causal);
}

gv_status gv_attention_backward(gv_backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                                const float *stash, const int32_t *mask, int B, int T, int H, int KVH, int D,
                                int causal) {
    return b->iface->attention_backward(b, dqkv, dout, qkv, out, stash, mask, B, T, H, KVH, D, causal);
}

gv_status gv_rope_forward(gv_backend *b, void *out, const void *inp, int B, int T, int H, int KVH, int D,
                          float theta, int pos0) {
    return b->iface->rope_forward(b, out, inp, B, T, H, KVH, D, theta, pos0);
}

gv_status gv_rope_backward(gv_backend *b, void *dinp, const void *dout, int B, int T, int H, int KVH, int D,
                           float theta, int pos0) {
    return b->iface->rope_backward(b, dinp, dout, B, T, H, KVH, D, theta, pos0);
}

gv_status gv_gelu_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    return b->iface->gelu_forward(b, out, inp, n);
}

gv_status gv_gelu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    return b->iface->gelu_backward(b, dinp, dout, inp, n);
}

gv_status gv_swiglu_forward(gv_backend *b, void *out, const void *inp, int N, int F) {
    return b->iface->swiglu_forward(b, out, inp, N, F);
}

gv_status gv_swiglu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, int N, int F) {
    return b->iface->swiglu_backward(b, dinp, dout, inp, N, F);
}

gv_status gv_add_forward(gv_backend *b, void *out, const void *x, const void *y, size_t n) {
    return b->iface->add_forward(b, out, x, y, n);
}

gv_status gv_accumulate(gv_backend *b, void *dst, const void *src, size_t n) {
    return b->iface->accumulate(b, dst, src, n);
}

gv_status gv_crossentropy_forward(gv_backend *b, float *losses, const void *logits, const int32_t *targets,
                                  int N, int V, int Vp, int ignore_index) {
    return b->iface->crossentropy_forward(b, losses, logits, targets, N, V, Vp, ignore_index);
}

gv_status gv_crossentropy_backward(gv_backend *b, void *dlogits, const void *logits, const int32_t *targets,
                                   float dloss, int N, int V, int Vp, int ignore_index) {
    return b->iface->crossentropy_backward(b, dlogits, logits, targets, dloss, N, V, Vp, ignore_index);
}

gv_status gv_crossentropy_forward_backward(gv_backend *b, float *losses, void *logits, const int32_t *targets,
                                           float dloss, int N, int V, int Vp, int ignore_index) {
    if (b->iface->crossentropy_forward_backward && gv_fused_on())
        return b->iface->crossentropy_forward_backward(b, losses, logits, targets, dloss, N, V, Vp,
                                                       ignore_index);
    GV_TRY(b->iface->crossentropy_forward(b, losses, logits, targets, N, V, Vp, ignore_index));
    return b->iface->crossentropy_backward(b, logits, logits, targets, dloss, N, V, Vp, ignore_index);
}

gv_status gv_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits,
                                      const int32_t *targets, int N, int V, int Vp, int v0,
                                      int ignore_index) {
    if (!b->iface->crossentropy_shard_stats)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no vocab-parallel cross-entropy", b->iface->name);
    return b->iface->crossentropy_shard_stats(b, lse, tlogit, logits, targets, N, V, Vp, v0, ignore_index);
}

gv_status gv_crossentropy_shard_backward(gv_backend *b, void *dlogits, const void *logits,
                                         const int32_t *targets, const float *lse, float dloss, int N, int V,
                                         int Vp, int v0, int ignore_index) {
    if (!b->iface->crossentropy_shard_backward)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no vocab-parallel cross-entropy", b->iface->name);
    return b->iface->crossentropy_shard_backward(b, dlogits, logits, targets, lse, dloss, N, V, Vp, v0,
                                                 ignore_index);
}

gv_status gv_adamw_update(gv_backend *b, float *master, void *weight, const void *grad, float *m, float *v,
                          size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                          float grad_scale, int t) {
    return b->iface->adamw_update(b, master, weight, grad, m, v, n, lr, beta1, beta2, eps, weight_decay,
                                  grad_scale, t);
}

gv_status gv_adamw_update_multi(gv_backend *b, float *master, void *weight, const void *grad, float *m,
                                float *v, const gv_adamw_seg *segs, int nseg, float lr, float beta1,
                                float beta2, float eps, float weight_decay, float grad_scale, int t) {
    if (nseg < 0 || (nseg > 0 && !segs))
        return gv_fail(GV_ERR_INVALID, "adamw_update_multi: %d segments without a table", nseg);
    if (b->iface->adamw_update_multi && gv_fused_on())
        return b->iface->adamw_update_multi(b, master, weight, grad, m, v, segs, nseg, lr, beta1, beta2, eps,
                                            weight_decay, grad_scale, t);
    return gv_adamw_update_each(b, master, weight, grad, m, v, segs, nseg, lr, beta1, beta2, eps,
                                weight_decay, grad_scale, t);
}

gv_status gv_adamw_update_each(gv_backend *b, float *master, void *weight, const void *grad, float *m,
                               float *v, const gv_adamw_seg *segs, int nseg, float lr, float beta1,
                               float beta2, float eps, float weight_decay, float grad_scale, int t) {
    size_t es = gv_dtype_size(gv_backend_dtype(b));
    for (int i = 0; i < nseg; i++) {
        const gv_adamw_seg *g = &segs[i];
        GV_TRY(b->iface->adamw_update(b, master + g->poff, weight ? (char *)weight + g->woff * es : NULL,
                                      (const char *)grad + g->woff * es, m + g->moff, v + g->moff, g->n, lr,
                                      beta1, beta2, eps, g->decay ? weight_decay : 0.0f, grad_scale, t));
    }
    return GV_OK;
}

gv_status gv_sumsq(gv_backend *b, double *out, const void *x, size_t n) {
    return b->iface->sumsq(b, out, x, n);
}

gv_status gv_scale(gv_backend *b, void *x, float s, size_t n) {
    return b->iface->scale(b, x, s, n);
}

gv_status gv_gelu_erf_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    if (!b->iface->gelu_erf_forward)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no exact (erf) GELU", b->iface->name);
    return b->iface->gelu_erf_forward(b, out, inp, n);
}

gv_status gv_gelu_erf_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    if (!b->iface->gelu_erf_backward)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no exact (erf) GELU", b->iface->name);
    return b->iface->gelu_erf_backward(b, dinp, dout, inp, n);
}

/* The general attention's shape, checked once for every backend. */
static gv_status gv_attn_ext_check(const char *op, const gv_attn_ext *a) {
    if (a->B < 0 || a->Tq < 0 || a->Tk < 0 || a->H <= 0 || a->KVH <= 0 || a->D <= 0 || a->H % a->KVH)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape B=%d Tq=%d Tk=%d H=%d KVH=%d D=%d", op, a->B, a->Tq,
                       a->Tk, a->H, a->KVH, a->D);
    if (a->ldq < a->H * a->D || a->ldk < a->KVH * a->D || a->ldv < a->KVH * a->D)
        return gv_fail(GV_ERR_INVALID, "%s: row strides q %d, k %d, v %d are narrower than the heads", op,
                       a->ldq, a->ldk, a->ldv);
    if (a->causal && a->Tq != a->Tk)
        return gv_fail(GV_ERR_INVALID, "%s: causal attention needs Tq == Tk (got %d, %d)", op, a->Tq, a->Tk);
    return GV_OK;
}

size_t gv_attention_ext_stash_bytes(gv_backend *b, const gv_attn_ext *a) {
    return b->iface->attention_ext_stash_bytes ? b->iface->attention_ext_stash_bytes(b, a) : 0;
}

gv_status gv_attention_ext_forward(gv_backend *b, const gv_attn_ext *a, void *out, float *stash,
                                   const void *q, const void *k, const void *v, const float *bias) {
    if (!b->iface->attention_ext_forward)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no general attention", b->iface->name);
    GV_TRY(gv_attn_ext_check("attention_ext_forward", a));
    return b->iface->attention_ext_forward(b, a, out, stash, q, k, v, bias);
}

gv_status gv_attention_ext_backward(gv_backend *b, const gv_attn_ext *a, void *dq, void *dk, void *dv,
                                    float *dbias, const void *dout, const void *q, const void *k,
                                    const void *v, const float *stash) {
    if (!b->iface->attention_ext_backward)
        return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no general attention", b->iface->name);
    GV_TRY(gv_attn_ext_check("attention_ext_backward", a));
    return b->iface->attention_ext_backward(b, a, dq, dk, dv, dbias, dout, q, k, v, stash);
}

gv_status gv_relu_forward(gv_backend *b, void *out, const void *inp, size_t n) {
    if (!b->iface->relu_forward) return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no relu", b->iface->name);
    return b->iface->relu_forward(b, out, inp, n);
}

gv_status gv_relu_backward(gv_backend *b, void *dinp, const void *dout, const void *inp, size_t n) {
    if (!b->iface->relu_backward) return gv_fail(GV_ERR_UNSUPPORTED, "backend %s: no relu", b->iface->name);
    return b->iface->relu_backward(b, dinp, dout, inp, n);
}
