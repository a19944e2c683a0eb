/* The fp32 CPU reference backend: the vtable, memory functions and the small vector ops (add, accumulate,
 * AdamW, sum of squares, scale). The larger op families live in cpu-<family>.c. Device pointers are plain
 * host pointers; every op runs synchronously, so sync is a no-op. */
#include "cpu-ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GV_CPU_ALIGN 64

/* ---- memory ------------------------------------------------------------------------------------------ */

static void cpu_free(gv_backend *b) {
    free(b);
}

static gv_status cpu_alloc(gv_backend *b, void **ptr, size_t bytes) {
    (void)b;
    *ptr = NULL;
    /* aligned_alloc wants a multiple of the alignment; a zero-byte request still gets a valid pointer. */
    size_t rounded = (bytes + GV_CPU_ALIGN - 1) / GV_CPU_ALIGN * GV_CPU_ALIGN;
    if (rounded < bytes) return gv_fail(GV_ERR_NOMEM, "cpu alloc: %zu bytes overflows", bytes);
    if (rounded == 0) rounded = GV_CPU_ALIGN;
    void *p = aligned_alloc(GV_CPU_ALIGN, rounded);
    if (!p) return gv_fail(GV_ERR_NOMEM, "cpu alloc: out of memory allocating %zu bytes", bytes);
    memset(p, 0, rounded);
    *ptr = p;
    return GV_OK;
}

static void cpu_dealloc(gv_backend *b, void *ptr) {
    (void)b;
    free(ptr);
}

static gv_status cpu_memset0(gv_backend *b, void *ptr, size_t bytes) {
    (void)b;
    if (bytes) memset(ptr, 0, bytes);
    return GV_OK;
}

static gv_status cpu_upload(gv_backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    if (bytes) memmove(dst, src, bytes);
    return GV_OK;
}

static gv_status cpu_download(gv_backend *b, void *dst, const void *src, size_t bytes) {
    (void)b;
    if (bytes) memmove(dst, src, bytes);
    return GV_OK;
}

/* dst (ddt) = src (sdt) for n elements; F32 <-> BF16 convert, equal dtypes copy. */
static gv_status cpu_convert(gv_backend *b, void *dst, gv_dtype ddt, const void *src, gv_dtype sdt,
                             size_t n) {
    (void)b;
    if (ddt == sdt) {
        size_t es = gv_dtype_size(ddt);
        if (es == 0) return gv_fail(GV_ERR_INVALID, "cpu convert: unknown dtype %d", (int)ddt);
        if (n) memmove(dst, src, n * es);
        return GV_OK;
    }
    if (ddt == GV_BF16 && sdt == GV_F32) {
        uint16_t *d = dst;    /* [n] */
        const float *s = src; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = gv_f32_to_bf16(s[i]);
        return GV_OK;
    }
    if (ddt == GV_F32 && sdt == GV_BF16) {
        float *d = dst;          /* [n] */
        const uint16_t *s = src; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) d[i] = gv_bf16_to_f32(s[i]);
        return GV_OK;
    }
    return gv_fail(GV_ERR_UNSUPPORTED, "cpu convert: %s -> %s not supported (only f32 <-> bf16)",
                   gv_dtype_name(sdt), gv_dtype_name(ddt));
}

/* rows x width bytes, src rows spitch apart -> dst rows dpitch apart */
static gv_status cpu_copy2d(gv_backend *b, void *dst, size_t dpitch, const void *src, size_t spitch,
                            size_t width, size_t rows) {
    (void)b;
    for (size_t r = 0; r < rows; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return GV_OK;
}

static gv_status cpu_upload_f32(gv_backend *b, void *dst, gv_dtype dt, const float *src, size_t n) {
    if (dt != GV_F32 && dt != GV_BF16)
        return gv_fail(GV_ERR_UNSUPPORTED, "cpu upload_f32: destination dtype %s not supported (f32 or bf16)",
                       gv_dtype_name(dt));
    return cpu_convert(b, dst, dt, src, GV_F32, n);
}

static gv_status cpu_download_f32(gv_backend *b, float *dst, const void *src, gv_dtype dt, size_t n) {
    if (dt != GV_F32 && dt != GV_BF16)
        return gv_fail(GV_ERR_UNSUPPORTED, "cpu download_f32: source dtype %s not supported (f32 or bf16)",
                       gv_dtype_name(dt));
    return cpu_convert(b, dst, GV_F32, src, dt, n);
}

static gv_status cpu_sync(gv_backend *b) {
    (void)b;
    return GV_OK;
}

/* ---- small vector ops ------------------------------------------------------------------------------- */

static gv_status cpu_add_forward(gv_backend *b, void *out_, const void *x_, const void *y_, size_t n) {
    (void)b;
    float *out = out_;   /* [n], may alias x */
    const float *x = x_; /* [n] */
    const float *y = y_; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i];
    return GV_OK;
}

static gv_status cpu_accumulate(gv_backend *b, void *dst_, const void *src_, size_t n) {
    (void)b;
    float *dst = dst_;       /* [n] */
    const float *src = src_; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
    return GV_OK;
}

/* PyTorch torch.optim.AdamW (foreach=False, amsgrad=False) step, in its order of operations:
 *   param *= 1 - lr*wd;  m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g*g;
 *   param -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps). */
static gv_status cpu_adamw_update(gv_backend *b, float *master, void *weight_, const void *grad_, float *m,
                                  float *v, size_t n, float lr, float beta1, float beta2, float eps,
                                  float weight_decay, float grad_scale, int t) {
    (void)b;
    if (t < 1) return gv_fail(GV_ERR_INVALID, "adamw: step t = %d, must be >= 1", t);
    float *weight = weight_;   /* [n] compute copy or NULL */
    const float *grad = grad_; /* [n] */
    /* master, m, v: [n] */
    double bc1 = 1.0 - pow((double)beta1, (double)t);
    double bc2 = 1.0 - pow((double)beta2, (double)t);
    float step_size = (float)((double)lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - lr * weight_decay;
    float w1 = 1.0f - beta1, w2 = 1.0f - beta2;
    int copy = weight && weight != master;
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float p = master[i] * decay;
        float mi = m[i] + w1 * (g - m[i]);
        float vi = beta2 * v[i] + w2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p -= step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
        master[i] = p;
        if (copy) weight[i] = p;
    }
    return GV_OK;
}

static gv_status cpu_sumsq(gv_backend *b, double *out, const void *x_, size_t n) {
    (void)b;
    const float *x = x_; /* [n] */
    double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    *out = s;
    return GV_OK;
}

static gv_status cpu_scale(gv_backend *b, void *x_, float s, size_t n) {
    (void)b;
    float *x = x_; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= s;
    return GV_OK;
}

/* ---- the vtable ------------------------------------------------------------------------------------- */

static const struct gv_backend_i gv_cpu_iface = {
    .name = "cpu",
    .free = cpu_free,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .memset0 = cpu_memset0,
    .upload = cpu_upload,
    .download = cpu_download,
    .upload_f32 = cpu_upload_f32,
    .download_f32 = cpu_download_f32,
    .convert = cpu_convert,
    .sync = cpu_sync,
    .embedding_forward = gv_cpu_embedding_forward,
    .embedding_backward = gv_cpu_embedding_backward,
    .layernorm_forward = gv_cpu_layernorm_forward,
    .layernorm_backward = gv_cpu_layernorm_backward,
    .rmsnorm_forward = gv_cpu_rmsnorm_forward,
    .rmsnorm_backward = gv_cpu_rmsnorm_backward,
    .matmul_forward = gv_cpu_matmul_forward,
    .matmul_backward = gv_cpu_matmul_backward,
    .attention_stash_bytes = gv_cpu_attention_stash_bytes,
    .attention_forward = gv_cpu_attention_forward,
    .attention_backward = gv_cpu_attention_backward,
    .rope_forward = gv_cpu_rope_forward,
    .rope_backward = gv_cpu_rope_backward,
    .gelu_forward = gv_cpu_gelu_forward,
    .gelu_backward = gv_cpu_gelu_backward,
    .swiglu_forward = gv_cpu_swiglu_forward,
    .swiglu_backward = gv_cpu_swiglu_backward,
    .add_forward = cpu_add_forward,
    .accumulate = cpu_accumulate,
    .crossentropy_forward = gv_cpu_crossentropy_forward,
    .crossentropy_backward = gv_cpu_crossentropy_backward,
    .crossentropy_shard_stats = gv_cpu_crossentropy_shard_stats,
    .crossentropy_shard_backward = gv_cpu_crossentropy_shard_backward,
    .adamw_update = cpu_adamw_update,
    .sumsq = cpu_sumsq,
    .scale = cpu_scale,
    .matmul_gelu_forward = gv_cpu_matmul_gelu_forward,
    .matmul_backward_gelu = gv_cpu_matmul_backward_gelu,
    .gelu_erf_forward = gv_cpu_gelu_erf_forward,
    .gelu_erf_backward = gv_cpu_gelu_erf_backward,
    .attention_ext_stash_bytes = gv_cpu_attention_ext_stash_bytes,
    .attention_ext_forward = gv_cpu_attention_ext_forward,
    .attention_ext_backward = gv_cpu_attention_ext_backward,
    .relu_forward = gv_cpu_relu_forward,
    .relu_backward = gv_cpu_relu_backward,
    .copy2d = cpu_copy2d,
};

gv_status gv_backend_cpu_init(gv_backend **out) {
    *out = NULL;
    gv_backend *b = calloc(1, sizeof *b);
    if (!b) return gv_fail(GV_ERR_NOMEM, "cpu backend: out of memory");
    b->iface = &gv_cpu_iface;
    b->context = NULL;
    b->device = GV_DEV_CPU;
    b->dtype = GV_F32;
    *out = b;
    return GV_OK;
}
