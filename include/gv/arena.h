/* Arena: one allocation per memory category, handed out as aligned named views (llm.c style). Planning is
 * two-pass: gv_arena_reserve() records sizes, gv_arena_commit() allocates once through the backend, then
 * gv_arena_ptr() returns each view's address. Its byte count is what the memory report attributes to the
 * category. */
#ifndef GV_ARENA_H
#define GV_ARENA_H
#include <stddef.h>
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

struct gv_backend;

typedef struct gv_arena {
    const char *category; /* "parameters", "gradients", ... (static string) */
    struct gv_backend *backend;
    void *base;
    size_t size;  /* bytes reserved so far / allocated */
    size_t align; /* alignment of each view in bytes */
} gv_arena;

void gv_arena_init(gv_arena *a, const char *category, struct gv_backend *backend);
/* Reserves `bytes` and returns its offset (aligned). Only before commit. */
size_t gv_arena_reserve(gv_arena *a, size_t bytes);
gv_status gv_arena_commit(gv_arena *a); /* allocates `size` bytes zeroed */
void *gv_arena_ptr(const gv_arena *a, size_t offset);
void gv_arena_free(gv_arena *a);

#ifdef __cplusplus
}
#endif
#endif
