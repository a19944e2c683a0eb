/* The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 * (padded with spaces), then the byte buffer; offsets are relative to the buffer's start. The reader
 * validates the whole header on open (offsets in range, sized dtype*shape, contiguous and covering the
 * buffer, as the reference implementation requires), so later reads only fail on I/O. Every error is one
 * line naming the file and the problem. */
#ifndef GV_SAFETENSORS_H
#define GV_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "gv/status.h"
#include "gv/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Bytes per element of a dtype gv_st_* accepts (F32, BF16, F16, I32, U16, GV_I64); 0 otherwise. */
size_t gv_st_dtype_size(gv_dtype dt);
/* "F32", "I64", ...: the safetensors spelling. */
const char *gv_st_dtype_name(gv_dtype dt);

/* ---- reader ---- */
typedef struct gv_st_file gv_st_file;

gv_status gv_st_open(gv_st_file **f, const char *path);
void gv_st_close(gv_st_file *f);
const char *gv_st_path(const gv_st_file *f);
int gv_st_count(const gv_st_file *f);
/* Tensors are numbered in header order (for files this writer made: insertion order). */
const char *gv_st_name(const gv_st_file *f, int i);
int gv_st_find(const gv_st_file *f, const char *name); /* -1 if absent */
/* dt/ndim/shape may be NULL. GV_ERR_UNSUPPORTED for a dtype gv_dtype cannot express (F64, I8, BOOL, ...)
 * or more than GV_MAX_DIMS dims; such tensors can still be read with gv_st_read_raw. shape[k] for
 * k >= ndim is set to 1. */
gv_status gv_st_info(const gv_st_file *f, int i, gv_dtype *dt, int *ndim, int64_t shape[4]);
/* Bytes of tensor i's data (numel * dtype size); 0 for a bad index. */
size_t gv_st_nbytes(const gv_st_file *f, int i);
/* Reads a whole F32/BF16/F16 tensor as f32 into dst. GV_ERR_INVALID if its shape is not
 * expect_shape[0..ndim) (the message names file, tensor, expected and actual shapes); expect_shape NULL
 * skips the check, and dst must then hold every element. */
gv_status gv_st_read_f32(gv_st_file *f, const char *name, float *dst, int ndim, const int64_t *expect_shape);
/* Rows [row0, row0+nrows) along dim 0 as f32, reading only those bytes; dst holds nrows * (row numel). */
gv_status gv_st_read_f32_rows(gv_st_file *f, const char *name, int64_t row0, int64_t nrows, float *dst);
/* The tensor's bytes as stored (little-endian); `bytes` must equal its size exactly. */
gv_status gv_st_read_raw(gv_st_file *f, const char *name, void *dst, size_t bytes);
/* Compares two files tensor by tensor (same names, read as f32): *global = ||a - b|| / ||b|| over all
 * tensors, *worst = the largest per-tensor ||a - b|| / ||b|| (its name in worst_name[96] when not NULL).
 * A tensor of a missing in b, or of another size, is an error naming it. */
gv_status gv_st_diff(const char *a, const char *b, double *global, double *worst, char *worst_name);
/* The __metadata__ value for key, or NULL. Valid until gv_st_close. */
const char *gv_st_meta(const gv_st_file *f, const char *key);

/* ---- writer ---- */
typedef struct gv_st_writer gv_st_writer;

gv_status gv_st_writer_init(gv_st_writer **w);
/* Queues a tensor; `data` (little-endian, row-major, numel * dtype size bytes) is referenced, not copied,
 * and must live until gv_st_writer_save. Names must be unique and not "__metadata__". */
gv_status gv_st_writer_add(gv_st_writer *w, const char *name, gv_dtype dt, int ndim, const int64_t *shape,
                           const void *data);
/* Sets a __metadata__ entry (copied; a repeated key replaces the value). */
gv_status gv_st_writer_meta(gv_st_writer *w, const char *key, const char *value);
/* A tensor whose bytes are produced at save time, in insertion order, into a buffer of its size: saving
 * streams tensor by tensor instead of holding them all. */
typedef gv_status (*gv_st_produce_fn)(void *ctx, void *dst);
gv_status gv_st_writer_add_fn(gv_st_writer *w, const char *name, gv_dtype dt, int ndim, const int64_t *shape,
                              gv_st_produce_fn produce, void *ctx);
/* Writes the file atomically (temp + fsync + rename, see gv/fileio.h); tensors in insertion order. The
 * writer may be saved again or freed afterwards. */
gv_status gv_st_writer_save(gv_st_writer *w, const char *path);
void gv_st_writer_free(gv_st_writer *w);

/* IEEE half -> f32 (exact, subnormals, inf and NaN included). */
float gv_f16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
