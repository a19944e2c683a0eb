#include "gv/tensor.h"

#include <stdio.h>
#include <string.h>

size_t gv_dtype_size(gv_dtype t) {
    switch (t) {
    case GV_F32:
        return 4;
    case GV_I32:
        return 4;
    case GV_BF16:
        return 2;
    case GV_F16:
        return 2;
    case GV_U16:
        return 2;
    case GV_I64:
        return 8;
    }
    return 0;
}

const char *gv_dtype_name(gv_dtype t) {
    switch (t) {
    case GV_F32:
        return "F32";
    case GV_I32:
        return "I32";
    case GV_BF16:
        return "BF16";
    case GV_F16:
        return "F16";
    case GV_U16:
        return "U16";
    case GV_I64:
        return "I64";
    }
    return "?";
}

gv_tensor gv_tensor_view(void *data, gv_dtype dt, gv_device dev, int ndim, const int64_t *shape) {
    gv_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device = dev;
    t.ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

int64_t gv_tensor_numel(const gv_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t gv_tensor_nbytes(const gv_tensor *t) {
    return (size_t)gv_tensor_numel(t) * gv_dtype_size(t->dtype);
}

int gv_tensor_is_contiguous(const gv_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

gv_tensor gv_tensor_rows(const gv_tensor *t, int64_t r0, int64_t nr) {
    gv_tensor v = *t;
    v.data = (char *)t->data + (size_t)(r0 * t->stride[0]) * gv_dtype_size(t->dtype);
    v.shape[0] = nr;
    return v;
}

const char *gv_tensor_shape_str(const gv_tensor *t, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

uint16_t gv_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float gv_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
