/* Op profiler of the CUDA backend, for finding where a training step's GPU time goes without Nsight
 * Systems. GV_CUDA_PROFILE=1: every vtable op (see the wrappers in cuda.cu) records a CUDA event before and
 * after its launches on the compute stream; the elapsed times are added up per (op, shape) key and printed
 * to stderr as a table when the backend is freed. The first call of each key is reported apart (it pays
 * for cuBLASLt heuristics, attribute setting and pool growth). Events are read back in batches, which
 * costs one stream wait per PROF_SLOTS ops. */
#include "cuda-common.cuh"

#include <cuda_profiler_api.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROF_SLOTS 2048
#define PROF_KEYS 512

struct prof_key {
    const char *op;
    long d0, d1, d2;
    long calls;      /* after the first */
    double ms;       /* after the first */
    double ms_first; /* the first call */
};

struct gv_cuda_prof {
    cudaEvent_t ev0[PROF_SLOTS], ev1[PROF_SLOTS];
    int key_of[PROF_SLOTS];
    int used, depth, nkeys, dropped;
    struct prof_key keys[PROF_KEYS];
};

gv_status gv_cuda_prof_init(gv_cuda_ctx *c) {
    const char *k = getenv("GV_CUDA_CAPTURE");
    c->capture_at = k && k[0] ? atoi(k) : 0;
    const char *e = getenv("GV_CUDA_PROFILE");
    if (!e || !e[0] || e[0] == '0') return GV_OK;
    struct gv_cuda_prof *p = (struct gv_cuda_prof *)calloc(1, sizeof *p);
    if (!p) return gv_fail(GV_ERR_NOMEM, "cuda profiler: out of memory");
    for (int i = 0; i < PROF_SLOTS; i++) {
        if (cudaEventCreate(&p->ev0[i]) != cudaSuccess || cudaEventCreate(&p->ev1[i]) != cudaSuccess) {
            free(p);
            return gv_fail(GV_ERR_BACKEND, "cuda profiler: cudaEventCreate failed");
        }
    }
    c->prof = p;
    return GV_OK;
}

/* Read back the recorded slots into the keys. */
static void prof_harvest(struct gv_cuda_prof *p) {
    if (p->used == 0) return;
    cudaEventSynchronize(p->ev1[p->used - 1]);
    for (int i = 0; i < p->used; i++) {
        float ms = 0.0f;
        if (cudaEventElapsedTime(&ms, p->ev0[i], p->ev1[i]) != cudaSuccess) {
            cudaGetLastError();
            continue;
        }
        struct prof_key *k = &p->keys[p->key_of[i]];
        if (k->ms_first < 0) {
            k->ms_first = ms;
        } else {
            k->ms += ms;
            k->calls++;
        }
    }
    p->used = 0;
}

int gv_cuda_prof_begin(gv_cuda_ctx *c) {
    struct gv_cuda_prof *p = c->prof;
    if (!p) return -1;
    if (p->depth++ > 0) return -1; /* nested: counted in the outer op */
    if (p->used == PROF_SLOTS) prof_harvest(p);
    int s = p->used++;
    cudaEventRecord(p->ev0[s], c->stream);
    return s;
}

void gv_cuda_prof_end(gv_cuda_ctx *c, int slot, const char *op, long d0, long d1, long d2) {
    struct gv_cuda_prof *p = c->prof;
    if (!p) return;
    p->depth--;
    if (slot < 0) return;
    cudaEventRecord(p->ev1[slot], c->stream);
    int k = 0;
    while (k < p->nkeys &&
           !(p->keys[k].op == op && p->keys[k].d0 == d0 && p->keys[k].d1 == d1 && p->keys[k].d2 == d2))
        k++;
    if (k == p->nkeys) {
        if (k == PROF_KEYS) { /* table full: forget the slot */
            p->dropped++;
            p->used--;
            return;
        }
        struct prof_key nk = {op, d0, d1, d2, 0, 0.0, -1.0};
        p->keys[p->nkeys++] = nk;
    }
    p->key_of[slot] = k;
}

static int prof_cmp(const void *a, const void *b) {
    double x = ((const struct prof_key *)a)->ms, y = ((const struct prof_key *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

void gv_cuda_prof_report_free(gv_cuda_ctx *c) {
    struct gv_cuda_prof *p = c->prof;
    if (!p) return;
    prof_harvest(p);
    qsort(p->keys, (size_t)p->nkeys, sizeof p->keys[0], prof_cmp);
    double total = 0.0;
    for (int k = 0; k < p->nkeys; k++) total += p->keys[k].ms;
    fprintf(stderr, "gv-prof %-28s %8s %8s %8s %8s %10s %10s %6s %9s\n", "op", "d0", "d1", "d2", "calls",
            "total_ms", "mean_us", "share", "first_us");
    for (int k = 0; k < p->nkeys; k++) {
        const struct prof_key *e = &p->keys[k];
        fprintf(stderr, "gv-prof %-28s %8ld %8ld %8ld %8ld %10.3f %10.1f %5.1f%% %9.1f\n", e->op, e->d0,
                e->d1, e->d2, e->calls, e->ms, e->calls ? 1e3 * e->ms / e->calls : 0.0,
                total > 0 ? 100.0 * e->ms / total : 0.0, 1e3 * e->ms_first);
    }
    fprintf(stderr, "gv-prof total_ms %.3f (after the first call of each key)%s\n", total,
            p->dropped ? " (some keys dropped: table full)" : "");
    for (int i = 0; i < PROF_SLOTS; i++) {
        cudaEventDestroy(p->ev0[i]);
        cudaEventDestroy(p->ev1[i]);
    }
    free(p);
    c->prof = NULL;
}

void gv_cuda_capture_tick(gv_cuda_ctx *c) {
    if (c->capture_at <= 0) return;
    c->capture_n++;
    if (c->capture_n == c->capture_at) cudaProfilerStart();
    if (c->capture_n == c->capture_at + 1) cudaProfilerStop();
}
