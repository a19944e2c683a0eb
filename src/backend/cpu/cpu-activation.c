/* Activations: GELU (tanh approximation and exact erf form), ReLU and SwiGLU (silu(gate) * up). Backward
 * ops accumulate. */
#include "cpu-ops.h"

#include <math.h>

gv_status gv_cpu_gelu_forward(gv_backend *b, void *out_, const void *inp_, size_t n) {
    (void)b;
    float *out = out_;       /* [n] */
    const float *inp = inp_; /* [n] */
    /* out = 0.5 x (1 + tanh(k (x + c x^3))) */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = gv_cpu_gelu(inp[i]);
    return GV_OK;
}

gv_status gv_cpu_gelu_backward(gv_backend *b, void *dinp_, const void *dout_, const void *inp_, size_t n) {
    (void)b;
    float *dinp = dinp_;       /* [n] */
    const float *dout = dout_; /* [n] */
    const float *inp = inp_;   /* [n] */
    /* d/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) k (1 + 3 c x^2) */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * gv_cpu_gelu_grad(inp[i]);
    return GV_OK;
}

#define GELU_RSQRT2 0.7071067811865476   /* 1/sqrt(2) */
#define GELU_RSQRT2PI 0.3989422804014327 /* 1/sqrt(2 pi) */

gv_status gv_cpu_gelu_erf_forward(gv_backend *b, void *out_, const void *inp_, size_t n) {
    (void)b;
    float *out = out_;       /* [n] */
    const float *inp = inp_; /* [n] */
    /* out = 0.5 x (1 + erf(x / sqrt 2)), in double so that the reference is exact to fp32 rounding */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + erf(x * GELU_RSQRT2)));
    }
    return GV_OK;
}

gv_status gv_cpu_gelu_erf_backward(gv_backend *b, void *dinp_, const void *dout_, const void *inp_,
                                   size_t n) {
    (void)b;
    float *dinp = dinp_;       /* [n] */
    const float *dout = dout_; /* [n] */
    const float *inp = inp_;   /* [n] */
    /* d/dx = Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi) */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double g = 0.5 * (1.0 + erf(x * GELU_RSQRT2)) + x * exp(-0.5 * x * x) * GELU_RSQRT2PI;
        dinp[i] += (float)(dout[i] * g);
    }
    return GV_OK;
}

gv_status gv_cpu_relu_forward(gv_backend *b, void *out_, const void *inp_, size_t n) {
    (void)b;
    float *out = out_;       /* [n] */
    const float *inp = inp_; /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
    return GV_OK;
}

gv_status gv_cpu_relu_backward(gv_backend *b, void *dinp_, const void *dout_, const void *inp_, size_t n) {
    (void)b;
    float *dinp = dinp_;       /* [n] */
    const float *dout = dout_; /* [n] */
    const float *inp = inp_;   /* [n] */
#pragma omp parallel for if (n > GV_CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++)
        if (inp[i] > 0.0f) dinp[i] += dout[i];
    return GV_OK;
}

static inline float sigmoidf(float x) {
    return 1.0f / (1.0f + expf(-x));
}

gv_status gv_cpu_swiglu_forward(gv_backend *b, void *out_, const void *inp_, int N, int F) {
    (void)b;
    if (N < 0 || F < 0) return gv_fail(GV_ERR_INVALID, "swiglu_forward: negative size (N=%d F=%d)", N, F);
    float *out = out_;       /* [N, F] */
    const float *inp = inp_; /* [N, 2F]: gate then up */
#pragma omp parallel for if ((long)N * F > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (long)n * 2 * F, *u = g + F;
        float *o = out + (long)n * F;
        for (int f = 0; f < F; f++) o[f] = g[f] * sigmoidf(g[f]) * u[f];
    }
    return GV_OK;
}

gv_status gv_cpu_swiglu_backward(gv_backend *b, void *dinp_, const void *dout_, const void *inp_, int N,
                                 int F) {
    (void)b;
    if (N < 0 || F < 0) return gv_fail(GV_ERR_INVALID, "swiglu_backward: negative size (N=%d F=%d)", N, F);
    float *dinp = dinp_;       /* [N, 2F] */
    const float *dout = dout_; /* [N, F] */
    const float *inp = inp_;   /* [N, 2F] */
    /* d gate = dout * up * sig (1 + g (1 - sig));  d up = dout * silu(g) */
#pragma omp parallel for if ((long)N * F > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (long)n * 2 * F, *u = g + F;
        const float *d = dout + (long)n * F;
        float *dg = dinp + (long)n * 2 * F, *du = dg + F;
        for (int f = 0; f < F; f++) {
            float s = sigmoidf(g[f]);
            dg[f] += d[f] * u[f] * s * (1.0f + g[f] * (1.0f - s));
            du[f] += d[f] * g[f] * s;
        }
    }
    return GV_OK;
}
