#include "gv/arena.h"

#include "gv/backend.h"

void gv_arena_init(gv_arena *a, const char *category, struct gv_backend *backend) {
    a->category = category;
    a->backend = backend;
    a->base = NULL;
    a->size = 0;
    a->align = 256; /* keeps every view aligned for vector loads and cuBLASLt */
}

size_t gv_arena_reserve(gv_arena *a, size_t bytes) {
    size_t off = (a->size + a->align - 1) / a->align * a->align;
    a->size = off + bytes;
    return off;
}

gv_status gv_arena_commit(gv_arena *a) {
    if (a->size == 0) return GV_OK;
    gv_status st = gv_backend_alloc(a->backend, &a->base, a->size);
    if (st != GV_OK)
        return gv_fail(st, "%s: allocating %zu bytes failed: %s", a->category, a->size, gv_last_error());
    return GV_OK;
}

void *gv_arena_ptr(const gv_arena *a, size_t offset) {
    return a->base ? (char *)a->base + offset : NULL;
}

void gv_arena_free(gv_arena *a) {
    if (a->base) gv_backend_dealloc(a->backend, a->base);
    a->base = NULL;
    a->size = 0;
}
