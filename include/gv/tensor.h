/* Tensor views: a pointer into memory someone else owns (an arena, a backend buffer), with dtype, shape,
 * strides (in elements) and the device the memory lives on. Views never own memory. */
#ifndef GV_TENSOR_H
#define GV_TENSOR_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define GV_MAX_DIMS 4

typedef enum { GV_F32 = 0, GV_BF16 = 1, GV_F16 = 2, GV_I32 = 3, GV_U16 = 4, GV_I64 = 5 } gv_dtype;
typedef enum { GV_DEV_CPU = 0, GV_DEV_CUDA = 1 } gv_device;

typedef struct {
    void *data;
    gv_dtype dtype;
    gv_device device;
    int ndim;
    int64_t shape[GV_MAX_DIMS];
    int64_t stride[GV_MAX_DIMS]; /* elements, row-major unless made otherwise */
} gv_tensor;

size_t gv_dtype_size(gv_dtype t);
const char *gv_dtype_name(gv_dtype t);
/* A contiguous row-major view of `data` with the given shape. */
gv_tensor gv_tensor_view(void *data, gv_dtype dt, gv_device dev, int ndim, const int64_t *shape);
int64_t gv_tensor_numel(const gv_tensor *t);
size_t gv_tensor_nbytes(const gv_tensor *t);
int gv_tensor_is_contiguous(const gv_tensor *t);
/* A view of rows [r0, r0+nr) along dim 0 (shares memory). */
gv_tensor gv_tensor_rows(const gv_tensor *t, int64_t r0, int64_t nr);
/* "[2, 3, 4]" into buf. */
const char *gv_tensor_shape_str(const gv_tensor *t, char *buf, size_t n);

/* bf16 <-> f32 on the host (round to nearest even). */
uint16_t gv_f32_to_bf16(float f);
float gv_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
