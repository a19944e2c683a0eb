/* Small-file helpers. Every file the trainer writes (checkpoints, JSON state) goes through
 * gv_file_write_atomic*: contents go to "<path>.tmp.<pid>", are flushed and fsync'ed, then renamed over
 * `path`, so a crash or a failed write never leaves a half-written file where a good one was. On failure
 * the temp file is removed and an existing `path` is left untouched. */
#ifndef GV_FILEIO_H
#define GV_FILEIO_H
#include <stddef.h>
#include <stdio.h>
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Writes the whole contents to `f` (the open temp file, whose name is `tmp_path`). Returns GV_OK or a
 * gv_fail() status, which aborts the save. */
typedef gv_status (*gv_file_fill_fn)(FILE *f, const char *tmp_path, void *ctx);

/* Creates the temp file, calls fill, then fflush + fsync + rename over `path` (+ fsync of the directory). */
gv_status gv_file_write_atomic_fn(const char *path, gv_file_fill_fn fill, void *ctx);
/* The common case: the contents are one buffer. */
gv_status gv_file_write_atomic(const char *path, const void *data, size_t n);
/* fwrite that turns a short write into a gv_fail(GV_ERR_IO) naming `path` and the errno text. */
gv_status gv_file_fwrite(FILE *f, const void *data, size_t n, const char *path);
/* Reads a whole file into a malloc'ed buffer with a NUL appended (so text can be parsed in place); *n is
 * the size without the NUL. The caller frees *data. */
gv_status gv_file_read_all(const char *path, char **data, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
