/* Private: the backend vtable. Only backends and backend.c include this. */
#ifndef GV_BACKEND_IMPL_H
#define GV_BACKEND_IMPL_H
#include "gv/backend.h"

struct gv_backend_i {
    const char *name;
    void (*free)(gv_backend *b);
    gv_status (*alloc)(gv_backend *b, void **ptr, size_t bytes);
    void (*dealloc)(gv_backend *b, void *ptr);
    gv_status (*memset0)(gv_backend *b, void *ptr, size_t bytes);
    gv_status (*upload)(gv_backend *b, void *dst, const void *src, size_t bytes);
    gv_status (*download)(gv_backend *b, void *dst, const void *src, size_t bytes);
    gv_status (*upload_f32)(gv_backend *b, void *dst, gv_dtype dt, const float *src, size_t n);
    gv_status (*download_f32)(gv_backend *b, float *dst, const void *src, gv_dtype dt, size_t n);
    gv_status (*convert)(gv_backend *b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt, size_t n);
    gv_status (*sync)(gv_backend *b);

    gv_status (*embedding_forward)(gv_backend *, void *, const int32_t *, const void *, const void *, int,
                                   int, int, int);
    gv_status (*embedding_backward)(gv_backend *, void *, void *, const void *, const int32_t *, int, int,
                                    int, int);
    gv_status (*layernorm_forward)(gv_backend *, void *, float *, float *, const void *, const void *,
                                   const void *, int, int, float);
    gv_status (*layernorm_backward)(gv_backend *, void *, void *, void *, const void *, const void *,
                                    const void *, const float *, const float *, int, int);
    gv_status (*rmsnorm_forward)(gv_backend *, void *, float *, const void *, const void *, int, int, float);
    gv_status (*rmsnorm_backward)(gv_backend *, void *, void *, const void *, const void *, const void *,
                                  const float *, int, int);
    gv_status (*matmul_forward)(gv_backend *, void *, const void *, const void *, const void *, int, int,
                                int);
    gv_status (*matmul_backward)(gv_backend *, void *, void *, void *, const void *, const void *,
                                 const void *, int, int, int);
    size_t (*attention_stash_bytes)(gv_backend *, int, int, int);
    gv_status (*attention_forward)(gv_backend *, void *, float *, const void *, const int32_t *, int, int,
                                   int, int, int, int);
    gv_status (*attention_backward)(gv_backend *, void *, const void *, const void *, const void *,
                                    const float *, const int32_t *, int, int, int, int, int, int);
    gv_status (*rope_forward)(gv_backend *, void *, const void *, int, int, int, int, int, float, int);
    gv_status (*rope_backward)(gv_backend *, void *, const void *, int, int, int, int, int, float, int);
    gv_status (*gelu_forward)(gv_backend *, void *, const void *, size_t);
    gv_status (*gelu_backward)(gv_backend *, void *, const void *, const void *, size_t);
    gv_status (*swiglu_forward)(gv_backend *, void *, const void *, int, int);
    gv_status (*swiglu_backward)(gv_backend *, void *, const void *, const void *, int, int);
    gv_status (*add_forward)(gv_backend *, void *, const void *, const void *, size_t);
    gv_status (*accumulate)(gv_backend *, void *, const void *, size_t);
    gv_status (*crossentropy_forward)(gv_backend *, float *, const void *, const int32_t *, int, int, int,
                                      int);
    gv_status (*crossentropy_backward)(gv_backend *, void *, const void *, const int32_t *, float, int, int,
                                       int, int);
    gv_status (*crossentropy_shard_stats)(gv_backend *, float *, float *, const void *, const int32_t *, int,
                                          int, int, int, int);
    gv_status (*crossentropy_shard_backward)(gv_backend *, void *, const void *, const int32_t *,
                                             const float *, float, int, int, int, int, int);
    gv_status (*adamw_update)(gv_backend *, float *, void *, const void *, float *, float *, size_t, float,
                              float, float, float, float, float, int);
    gv_status (*sumsq)(gv_backend *, double *, const void *, size_t);
    gv_status (*scale)(gv_backend *, void *, float, size_t);
    gv_status (*matmul_gelu_forward)(gv_backend *, void *, void *, const void *, const void *, const void *,
                                     int, int, int);
    gv_status (*matmul_backward_gelu)(gv_backend *, void *, void *, void *, void *, const void *,
                                      const void *, const void *, const void *, int, int, int);
    gv_status (*gelu_erf_forward)(gv_backend *, void *, const void *, size_t);
    gv_status (*gelu_erf_backward)(gv_backend *, void *, const void *, const void *, size_t);
    size_t (*attention_ext_stash_bytes)(gv_backend *, const gv_attn_ext *);
    gv_status (*attention_ext_forward)(gv_backend *, const gv_attn_ext *, void *, float *, const void *,
                                       const void *, const void *, const float *);
    gv_status (*attention_ext_backward)(gv_backend *, const gv_attn_ext *, void *, void *, void *, float *,
                                        const void *, const void *, const void *, const void *,
                                        const float *);
    gv_status (*relu_forward)(gv_backend *, void *, const void *, size_t);
    gv_status (*relu_backward)(gv_backend *, void *, const void *, const void *, size_t);
    /* optional (NULL: gv_add_norm_forward runs add_forward, then the norm) */
    gv_status (*add_norm_forward)(gv_backend *, void *, void *, float *, float *, const void *, const void *,
                                  const void *, const void *, int, int, float, int);
    /* optional (NULL: gv_crossentropy_forward_backward runs the forward, then the in-place backward) */
    gv_status (*crossentropy_forward_backward)(gv_backend *, float *, void *, const int32_t *, float, int,
                                               int, int, int);
    /* optional (NULL: gv_adamw_update_multi runs adamw_update per segment) */
    gv_status (*adamw_update_multi)(gv_backend *, float *, void *, const void *, float *, float *,
                                    const gv_adamw_seg *, int, float, float, float, float, float, float, int);
    gv_status (*copy2d)(gv_backend *, void *, size_t, const void *, size_t, size_t, size_t);
    /* optional (NULL: gv_layernorm_backward_sum runs layernorm_backward, then the column sums) */
    gv_status (*layernorm_backward_sum)(gv_backend *, void *, void *, void *, void *, const void *,
                                        const void *, const void *, const float *, const float *, int, int);
    /* optional (NULL: a host backend, its work is complete when each call returns) */
    gv_status (*event_record)(gv_backend *, void **event);
    gv_status (*event_wait)(gv_backend *, void *event);
    /* optional (NULL: gv_matmul_forward_add runs matmul_forward, then add_forward in place) */
    gv_status (*matmul_forward_add)(gv_backend *, void *, const void *, const void *, const void *,
                                    const void *, int, int, int);
};

struct gv_backend {
    const struct gv_backend_i *iface;
    void *context;
    gv_device device;
    gv_dtype dtype;
};

/* gv_adamw_update_multi as one adamw_update per segment: the front end's fallback, and a backend's own
 * route for tables its multi-tensor kernel cannot take. */
gv_status gv_adamw_update_each(gv_backend *b, float *master, void *weight, const void *grad, float *m,
                               float *v, const gv_adamw_seg *segs, int nseg, float lr, float beta1,
                               float beta2, float eps, float weight_decay, float grad_scale, int t);

/* Constructors of the compiled-in backends. */
gv_status gv_backend_cpu_init(gv_backend **out);
#ifdef GV_HAVE_CUDA
gv_status gv_backend_cuda_init(gv_backend **out, int device);
int gv_backend_cuda_available(void);
#endif

#endif
