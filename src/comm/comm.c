/* Communicator front end: argument checks, the group pool, then the backend's vtable. */
#include "comm-impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/launch.h"
#include "gv/tensor.h"

size_t gv_comm_dtype_size(gv_comm_dtype dt) {
    switch (dt) {
    case GV_COMM_F32:
        return 4;
    case GV_COMM_F64:
        return 8;
    case GV_COMM_I32:
        return 4;
    case GV_COMM_I64:
        return 8;
    case GV_COMM_U8:
        return 1;
    case GV_COMM_BF16:
        return 2;
    }
    return 0;
}

const char *gv_comm_dtype_name(gv_comm_dtype dt) {
    switch (dt) {
    case GV_COMM_F32:
        return "f32";
    case GV_COMM_F64:
        return "f64";
    case GV_COMM_I32:
        return "i32";
    case GV_COMM_I64:
        return "i64";
    case GV_COMM_U8:
        return "u8";
    case GV_COMM_BF16:
        return "bf16";
    }
    return "unknown";
}

const char *gv_comm_op_name(gv_comm_op op) {
    switch (op) {
    case GV_COMM_SUM:
        return "sum";
    case GV_COMM_MAX:
        return "max";
    case GV_COMM_MIN:
        return "min";
    }
    return "unknown";
}

gv_status gv_comm_new(gv_comm **out, const struct gv_comm_i *iface, void *context, int rank, int size,
                      const int *members) {
    *out = NULL;
    gv_comm *c = calloc(1, sizeof *c);
    int *m = malloc((size_t)size * sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        return gv_fail(GV_ERR_NOMEM, "comm: out of memory for a communicator of %d ranks", size);
    }
    for (int i = 0; i < size; i++) m[i] = members ? members[i] : i;
    c->iface = iface;
    c->context = context;
    c->rank = rank;
    c->size = size;
    c->members = m;
    c->world = c;
    *out = c;
    return GV_OK;
}

const char *gv_comm_describe(const gv_comm *c, char *buf, size_t n) {
    size_t k = 0;
    int shown = c->size <= 8 ? c->size : 3;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < shown && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%d", i ? "," : "", c->members[i]);
    if (k < n && shown < c->size)
        k += (size_t)snprintf(buf + k, n - k, ",...,%d] (%d ranks)", c->members[c->size - 1], c->size);
    else if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

/* ---- world, groups, pool ---------------------------------------------------------------------------- */

gv_status gv_comm_init_world(gv_comm **out, const char *kind) {
    if (!out) return gv_fail(GV_ERR_INVALID, "comm init: out is NULL");
    *out = NULL;
    if (!kind) kind = getenv("GV_COMM");
    if (kind && !*kind) kind = NULL;
    if (kind && !strcmp(kind, "auto")) kind = gv_comm_nccl_auto_ok() ? "nccl" : NULL;
    if (!kind) kind = gv_launch_is_rank() ? "mpi" : "local";
    if (!strcmp(kind, "local")) return gv_comm_local_init(out);
    if (!strcmp(kind, "mpi")) return gv_comm_mpi_init(out);
    if (!strcmp(kind, "nccl")) {
        gv_comm_nccl_opts o;
        gv_comm_nccl_opts_from_env(&o);
        return gv_comm_nccl_init(out, &o);
    }
    return gv_fail(GV_ERR_INVALID, "comm '%s': unknown kind (expected local, mpi, nccl or auto)", kind);
}

gv_status gv_comm_init_nccl(gv_comm **out, const gv_comm_nccl_opts *o) {
    if (!out || !o) return gv_fail(GV_ERR_INVALID, "comm init nccl: out or options NULL");
    *out = NULL;
    return gv_comm_nccl_init(out, o);
}

void gv_comm_nccl_opts_from_env(gv_comm_nccl_opts *o) {
    const char *v;
    o->rendezvous_dir = getenv("GV_RENDEZVOUS_DIR");
    if (o->rendezvous_dir && !*o->rendezvous_dir) o->rendezvous_dir = NULL;
    o->rank = (v = getenv("GV_RANK")) && *v ? atoi(v) : -1;
    o->size = (v = getenv("GV_WORLD_SIZE")) && *v ? atoi(v) : 0;
    o->device = (v = getenv("GV_DEVICE")) && *v ? atoi(v) : -1;
    o->timeout_s = (v = getenv("GV_RENDEZVOUS_TIMEOUT")) && *v ? atof(v) : 300.0;
}

static void gv_comm_free_one(gv_comm *c) {
    c->iface->free(c);
    free(c->members);
    free(c);
}

void gv_comm_free(gv_comm *c) {
    if (!c || c->world != c) return;
    /* Groups before the world: the mpi world's free finalises MPI. */
    for (int i = c->npool - 1; i >= 0; i--) {
        gv_comm_free_one(c->pool[i].comm);
        free(c->pool[i].ranks);
    }
    free(c->pool);
    for (int k = 0; k < 2; k++) {
        gv_mem_free(c->stage[k], k);
        for (int i = 0; i < 4; i++) gv_mem_free(c->p2p_free[k][i], k);
    }
    gv_comm_free_one(c);
}

const char *gv_comm_kind(const gv_comm *c) {
    return c->iface->name;
}
int gv_comm_device(const gv_comm *c) {
    return c && c->iface->device ? c->iface->device(c) : -1;
}
int gv_comm_rank(const gv_comm *c) {
    return c->rank;
}
int gv_comm_size(const gv_comm *c) {
    return c->size;
}
int gv_comm_world_rank(const gv_comm *c, int r) {
    return r >= 0 && r < c->size ? c->members[r] : -1;
}
int gv_comm_is_world(const gv_comm *c) {
    return c->world == c;
}
int gv_comm_pool_count(const gv_comm *world) {
    return world->npool;
}

gv_status gv_comm_group(gv_comm *c, const int *ranks, int n, gv_comm **out) {
    if (!out) return gv_fail(GV_ERR_INVALID, "comm group: out is NULL");
    *out = NULL;
    if (!c) return gv_fail(GV_ERR_INVALID, "comm group: communicator is NULL");
    if (!ranks || n < 1 || n > c->size)
        return gv_fail(GV_ERR_INVALID, "comm group: %d ranks in a communicator of %d", n, c->size);
    gv_comm *world = c->world;
    int *wr = malloc((size_t)n * sizeof *wr); /* the set in world ranks: the pool's key */
    if (!wr) return gv_fail(GV_ERR_NOMEM, "comm group: out of memory");
    int me = -1, same = n == c->size, whole = n == world->size;
    for (int i = 0; i < n; i++) {
        if (ranks[i] < 0 || ranks[i] >= c->size) {
            free(wr);
            return gv_fail(GV_ERR_INVALID, "comm group: rank %d outside the communicator [0, %d)", ranks[i],
                           c->size);
        }
        for (int j = 0; j < i; j++)
            if (ranks[j] == ranks[i]) {
                free(wr);
                return gv_fail(GV_ERR_INVALID, "comm group: rank %d listed twice", ranks[i]);
            }
        wr[i] = c->members[ranks[i]];
        if (ranks[i] == c->rank) me = i;
        if (ranks[i] != i) same = 0;
        if (wr[i] != i) whole = 0;
    }
    /* not a member: nothing to create here; the whole communicator (or world) in order: itself */
    *out = me < 0 ? NULL : same ? c : whole ? world : NULL;
    if (me < 0 || *out) {
        free(wr);
        return GV_OK;
    }
    for (int i = 0; i < world->npool; i++) {
        gv_comm_pool_entry *e = &world->pool[i];
        if (e->n == n && !memcmp(e->ranks, wr, (size_t)n * sizeof *wr)) {
            free(wr);
            *out = e->comm;
            return GV_OK;
        }
    }
    if (world->npool == world->cappool) {
        int cap = world->cappool ? 2 * world->cappool : 16;
        gv_comm_pool_entry *p = realloc(world->pool, (size_t)cap * sizeof *p);
        if (!p) {
            free(wr);
            return gv_fail(GV_ERR_NOMEM, "comm group: out of memory for the pool");
        }
        world->pool = p;
        world->cappool = cap;
    }
    gv_comm *g = NULL;
    gv_status st = world->iface->group(world, wr, n, &g);
    if (st != GV_OK) {
        free(wr);
        return st;
    }
    g->world = world;
    world->pool[world->npool++] = (gv_comm_pool_entry){n, wr, g};
    *out = g;
    return GV_OK;
}

/* ---- argument checks --------------------------------------------------------------------------------- */

static gv_status gv_check(const gv_comm *c, const char *what, gv_comm_dtype dt, size_t count) {
    if (!c) return gv_fail(GV_ERR_INVALID, "comm %s: communicator is NULL", what);
    if (!gv_comm_dtype_size(dt)) return gv_fail(GV_ERR_INVALID, "comm %s: unknown dtype %d", what, (int)dt);
    if (count > SIZE_MAX / 8 / (size_t)c->size)
        return gv_fail(GV_ERR_INVALID, "comm %s: count %zu too large", what, count);
    return GV_OK;
}

static gv_status gv_check_op(const char *what, gv_comm_op op) {
    if (op != GV_COMM_SUM && op != GV_COMM_MAX && op != GV_COMM_MIN)
        return gv_fail(GV_ERR_INVALID, "comm %s: unknown op %d", what, (int)op);
    return GV_OK;
}

static gv_status gv_check_buf(const char *what, const void *p, const char *name) {
    if (!p) return gv_fail(GV_ERR_INVALID, "comm %s: %s is NULL", what, name);
    return GV_OK;
}

static int gv_overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + nb && y < x + na;
}

static gv_status gv_check_peer(const gv_comm *c, const char *what, const char *name, int peer) {
    if (peer < 0 || peer >= c->size)
        return gv_fail(GV_ERR_INVALID, "comm %s: %s %d outside the communicator [0, %d)", what, name, peer,
                       c->size);
    return GV_OK;
}

static gv_status gv_check_tag(const char *what, int tag) {
    if (tag < 0 || tag > GV_COMM_TAG_MAX)
        return gv_fail(GV_ERR_INVALID, "comm %s: tag %d outside [0, %d]", what, tag, GV_COMM_TAG_MAX);
    return GV_OK;
}

/* ---- staging ----------------------------------------------------------------------------------------- */

/* A call's buffers as regions of caller memory; a region the backend cannot take (the other memory kind,
 * or bf16 on a backend without it) is copied into the world's scratch of the backend's kind (as f32 when
 * converted) and back. In-place forms (send and recv overlapping) are one region. */
typedef struct {
    const char *lo;
    size_t bytes;                /* of the caller's region */
    char *t;                     /* what the backend gets */
    int in, out, staged, device; /* device: the caller's region is device memory */
} gv_region;

typedef struct {
    gv_comm *c;
    int conv; /* bf16 regions go as f32 */
    int n;
    gv_region r[2];
} gv_stage;

static void gv_bf16_expand(char *t, size_t n) { /* bf16 at t + 2n -> f32 at t, in place (forward) */
    const uint16_t *h = (const uint16_t *)(t + 2 * n);
    float *f = (float *)t;
    for (size_t i = 0; i < n; i++) {
        uint16_t x = h[i];
        f[i] = gv_bf16_to_f32(x);
    }
}

static void gv_bf16_shrink(char *t, size_t n) { /* f32 at t -> bf16 at t, in place (forward) */
    const float *f = (const float *)t;
    uint16_t *h = (uint16_t *)t;
    for (size_t i = 0; i < n; i++) {
        float x = f[i];
        h[i] = gv_f32_to_bf16(x);
    }
}

static gv_status gv_stage_begin(gv_stage *s, gv_comm *c, const char *what, gv_comm_dtype *dt,
                                const void *send, size_t ns, void *recv, size_t nr, int recv_out) {
    memset(s, 0, sizeof *s);
    s->c = c;
    s->conv = *dt == GV_COMM_BF16 && !c->iface->has_bf16;
    const char *a = send, *b = recv;
    if (a && b && a < b + nr && b < a + ns) { /* in place: one region */
        const char *lo = a < b ? a : b, *hi = a + ns > b + nr ? a + ns : b + nr;
        s->r[s->n++] = (gv_region){lo, (size_t)(hi - lo), NULL, 1, recv_out, 0, 0};
    } else {
        if (a && ns) s->r[s->n++] = (gv_region){a, ns, NULL, 1, 0, 0, 0};
        if (b && nr) s->r[s->n++] = (gv_region){b, nr, NULL, 0, recv_out, 0, 0};
    }
    int want = c->iface->device_mem;
    size_t need = 0;
    for (int i = 0; i < s->n; i++) {
        gv_region *g = &s->r[i];
        gv_mem_kind k = gv_mem_kind_of(g->lo);
        g->device = k == GV_MEM_DEVICE;
        g->staged = s->conv || (k != GV_MEM_MANAGED && g->device != want);
        if (g->staged)
            need += ((s->conv ? 2 : 1) * g->bytes + 255) / 256 * 256;
        else
            g->t = (char *)g->lo;
    }
    if (!need) return GV_OK;
    if (c->world->async)
        return gv_fail(GV_ERR_INVALID, "comm %s: a %s buffer in async mode (only device buffers can overlap)",
                       what, want ? "host" : "device");
    gv_comm *w = c->world;
    if (w->nstage[want] < need) {
        gv_mem_free(w->stage[want], want);
        w->stage[want] = NULL;
        w->nstage[want] = 0;
        GV_TRY(gv_mem_alloc(&w->stage[want], need, want));
        w->nstage[want] = need;
    }
    int synced = 0;
    char *at = w->stage[want];
    for (int i = 0; i < s->n; i++) {
        gv_region *g = &s->r[i];
        if (!g->staged) continue;
        g->t = at;
        at += ((s->conv ? 2 : 1) * g->bytes + 255) / 256 * 256;
        if (!g->in) continue;
        if (!synced && g->device) {
            GV_TRY(gv_mem_device_sync());
            synced = 1;
        }
        if (s->conv) {
            GV_TRY(gv_mem_copy(g->t + g->bytes, g->lo, g->bytes));
            gv_bf16_expand(g->t, g->bytes / 2);
        } else {
            GV_TRY(gv_mem_copy(g->t, g->lo, g->bytes));
        }
    }
    if (s->conv) *dt = GV_COMM_F32;
    return GV_OK;
}

/* What the backend gets for caller pointer p (inside one of the regions). */
static void *gv_stage_ptr(const gv_stage *s, const void *p) {
    if (!p) return NULL;
    const char *q = p;
    for (int i = 0; i < s->n; i++) {
        const gv_region *g = &s->r[i];
        if (q >= g->lo && q < g->lo + g->bytes) return g->t + (size_t)(q - g->lo) * (s->conv ? 2 : 1);
    }
    return (void *)p;
}

static gv_status gv_stage_end(gv_stage *s, gv_status st) {
    int to_device = 0;
    for (int i = 0; i < s->n && st == GV_OK; i++) {
        gv_region *g = &s->r[i];
        if (!g->staged || !g->out) continue;
        if (s->conv) gv_bf16_shrink(g->t, g->bytes / 2);
        st = gv_mem_copy((void *)g->lo, g->t, g->bytes);
        to_device |= g->device;
    }
    /* A copy from pageable host memory can return before its DMA lands, and the backends' streams do not
     * wait for the legacy stream that carries it: wait here, so the next kernel reads the result. */
    if (st == GV_OK && to_device) st = gv_mem_device_sync();
    return st;
}

/* ---- collectives ------------------------------------------------------------------------------------- */

gv_status gv_comm_allreduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                            gv_comm_op op) {
    GV_TRY(gv_check(c, "allreduce", dt, count));
    GV_TRY(gv_check_op("allreduce", op));
    if (!count) return GV_OK;
    GV_TRY(gv_check_buf("allreduce", sendbuf, "sendbuf"));
    GV_TRY(gv_check_buf("allreduce", recvbuf, "recvbuf"));
    size_t bytes = count * gv_comm_dtype_size(dt);
    if (sendbuf != recvbuf && gv_overlap(sendbuf, bytes, recvbuf, bytes))
        return gv_fail(GV_ERR_INVALID, "comm allreduce: send and recv buffers overlap without being equal");
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "allreduce", &dt, sendbuf, bytes, recvbuf, bytes, 1));
    return gv_stage_end(
        &g, c->iface->allreduce(c, gv_stage_ptr(&g, sendbuf), gv_stage_ptr(&g, recvbuf), count, dt, op));
}

gv_status gv_comm_reduce_scatter(gv_comm *c, const void *sendbuf, void *recvbuf, size_t recvcount,
                                 gv_comm_dtype dt, gv_comm_op op) {
    GV_TRY(gv_check(c, "reduce_scatter", dt, recvcount));
    GV_TRY(gv_check_op("reduce_scatter", op));
    if (!recvcount) return GV_OK;
    GV_TRY(gv_check_buf("reduce_scatter", sendbuf, "sendbuf"));
    GV_TRY(gv_check_buf("reduce_scatter", recvbuf, "recvbuf"));
    size_t block = recvcount * gv_comm_dtype_size(dt);
    if ((const char *)recvbuf != (const char *)sendbuf + (size_t)c->rank * block &&
        gv_overlap(sendbuf, block * (size_t)c->size, recvbuf, block))
        return gv_fail(GV_ERR_INVALID,
                       "comm reduce_scatter: recv overlaps send but is not send + rank * recvcount");
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "reduce_scatter", &dt, sendbuf, block * (size_t)c->size, recvbuf, block, 1));
    return gv_stage_end(&g, c->iface->reduce_scatter(c, gv_stage_ptr(&g, sendbuf), gv_stage_ptr(&g, recvbuf),
                                                     recvcount, dt, op));
}

gv_status gv_comm_allgather(gv_comm *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                            gv_comm_dtype dt) {
    GV_TRY(gv_check(c, "allgather", dt, sendcount));
    if (!sendcount) return GV_OK;
    GV_TRY(gv_check_buf("allgather", sendbuf, "sendbuf"));
    GV_TRY(gv_check_buf("allgather", recvbuf, "recvbuf"));
    size_t block = sendcount * gv_comm_dtype_size(dt);
    if ((const char *)sendbuf != (const char *)recvbuf + (size_t)c->rank * block &&
        gv_overlap(sendbuf, block, recvbuf, block * (size_t)c->size))
        return gv_fail(GV_ERR_INVALID,
                       "comm allgather: send overlaps recv but is not recv + rank * sendcount");
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "allgather", &dt, sendbuf, block, recvbuf, block * (size_t)c->size, 1));
    return gv_stage_end(
        &g, c->iface->allgather(c, gv_stage_ptr(&g, sendbuf), gv_stage_ptr(&g, recvbuf), sendcount, dt));
}

gv_status gv_comm_alltoall(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count_per_peer,
                           gv_comm_dtype dt) {
    GV_TRY(gv_check(c, "alltoall", dt, count_per_peer));
    if (!count_per_peer) return GV_OK;
    GV_TRY(gv_check_buf("alltoall", sendbuf, "sendbuf"));
    GV_TRY(gv_check_buf("alltoall", recvbuf, "recvbuf"));
    size_t bytes = count_per_peer * gv_comm_dtype_size(dt) * (size_t)c->size;
    if (sendbuf != recvbuf && gv_overlap(sendbuf, bytes, recvbuf, bytes))
        return gv_fail(GV_ERR_INVALID, "comm alltoall: send and recv buffers overlap without being equal");
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "alltoall", &dt, sendbuf, bytes, recvbuf, bytes, 1));
    return gv_stage_end(
        &g, c->iface->alltoall(c, gv_stage_ptr(&g, sendbuf), gv_stage_ptr(&g, recvbuf), count_per_peer, dt));
}

gv_status gv_comm_broadcast(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root) {
    GV_TRY(gv_check(c, "broadcast", dt, count));
    GV_TRY(gv_check_peer(c, "broadcast", "root", root));
    if (!count) return GV_OK;
    GV_TRY(gv_check_buf("broadcast", buf, "buf"));
    size_t bytes = count * gv_comm_dtype_size(dt);
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "broadcast", &dt, buf, bytes, buf, bytes, 1));
    return gv_stage_end(&g, c->iface->broadcast(c, gv_stage_ptr(&g, buf), count, dt, root));
}

gv_status gv_comm_send(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    GV_TRY(gv_check(c, "send", dt, count));
    GV_TRY(gv_check_peer(c, "send", "peer", peer));
    GV_TRY(gv_check_tag("send", tag));
    if (!count) return GV_OK;
    GV_TRY(gv_check_buf("send", buf, "buf"));
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "send", &dt, buf, count * gv_comm_dtype_size(dt), NULL, 0, 0));
    return gv_stage_end(&g, c->iface->send(c, gv_stage_ptr(&g, buf), count, dt, peer, tag));
}

gv_status gv_comm_recv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    GV_TRY(gv_check(c, "recv", dt, count));
    GV_TRY(gv_check_peer(c, "recv", "peer", peer));
    GV_TRY(gv_check_tag("recv", tag));
    if (!count) return GV_OK;
    GV_TRY(gv_check_buf("recv", buf, "buf"));
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "recv", &dt, NULL, 0, buf, count * gv_comm_dtype_size(dt), 1));
    return gv_stage_end(&g, c->iface->recv(c, gv_stage_ptr(&g, buf), count, dt, peer, tag));
}

gv_status gv_comm_sendrecv(gv_comm *c, const void *sendbuf, size_t sendcount, int dst, void *recvbuf,
                           size_t recvcount, int src, gv_comm_dtype dt, int tag) {
    GV_TRY(gv_check(c, "sendrecv", dt, sendcount > recvcount ? sendcount : recvcount));
    GV_TRY(gv_check_peer(c, "sendrecv", "dst", dst));
    GV_TRY(gv_check_peer(c, "sendrecv", "src", src));
    GV_TRY(gv_check_tag("sendrecv", tag));
    if (sendcount) GV_TRY(gv_check_buf("sendrecv", sendbuf, "sendbuf"));
    if (recvcount) GV_TRY(gv_check_buf("sendrecv", recvbuf, "recvbuf"));
    size_t es = gv_comm_dtype_size(dt);
    if (sendcount && recvcount && gv_overlap(sendbuf, sendcount * es, recvbuf, recvcount * es))
        return gv_fail(GV_ERR_INVALID, "comm sendrecv: send and recv buffers overlap");
    gv_stage g;
    GV_TRY(gv_stage_begin(&g, c, "sendrecv", &dt, sendcount ? sendbuf : NULL, sendcount * es,
                          recvcount ? recvbuf : NULL, recvcount * es, 1));
    return gv_stage_end(&g, c->iface->sendrecv(c, gv_stage_ptr(&g, sendbuf), sendcount, dst,
                                               gv_stage_ptr(&g, recvbuf), recvcount, src, dt, tag));
}

gv_status gv_comm_barrier(gv_comm *c) {
    if (!c) return gv_fail(GV_ERR_INVALID, "comm barrier: communicator is NULL");
    return c->iface->barrier(c);
}

/* ---- nonblocking collectives ------------------------------------------------------------------------ */

/* Whether the backend would get a staged copy of a buffer (then the blocking call runs inside). */
static int gv_needs_stage(const gv_comm *c, gv_comm_dtype dt, const void *a, const void *b) {
    if (dt == GV_COMM_BF16 && !c->iface->has_bf16) return 1;
    const void *p[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (!p[i]) continue;
        gv_mem_kind k = gv_mem_kind_of(p[i]);
        if (k != GV_MEM_MANAGED && (k == GV_MEM_DEVICE) != c->iface->device_mem) return 1;
    }
    return 0;
}

static gv_status gv_req_new(gv_comm *c, gv_comm_req **req) {
    *req = calloc(1, sizeof **req);
    if (!*req) return gv_fail(GV_ERR_NOMEM, "comm: out of memory for a request");
    (*req)->c = c;
    return GV_OK;
}

/* Starts the backend's call, or runs the blocking one (st_blocking is its status) and completes. */
#define GV_ISTART(c, req, async_ok, backend_call, blocking_call)                                             \
    do {                                                                                                     \
        GV_TRY(gv_req_new(c, req));                                                                          \
        gv_status st_ = (async_ok) ? (backend_call) : (blocking_call);                                       \
        if (st_ != GV_OK) {                                                                                  \
            free(*req);                                                                                      \
            *req = NULL;                                                                                     \
        }                                                                                                    \
        return st_;                                                                                          \
    } while (0)

gv_status gv_comm_iallreduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                             gv_comm_op op, void *ready, gv_comm_req **req) {
    if (!req) return gv_fail(GV_ERR_INVALID, "comm iallreduce: req is NULL");
    *req = NULL;
    GV_TRY(gv_check(c, "iallreduce", dt, count));
    GV_TRY(gv_check_op("iallreduce", op));
    int async = count && c->iface->iallreduce && !gv_needs_stage(c, dt, sendbuf, recvbuf);
    if (async) {
        GV_TRY(gv_check_buf("iallreduce", sendbuf, "sendbuf"));
        GV_TRY(gv_check_buf("iallreduce", recvbuf, "recvbuf"));
        size_t bytes = count * gv_comm_dtype_size(dt);
        if (sendbuf != recvbuf && gv_overlap(sendbuf, bytes, recvbuf, bytes))
            return gv_fail(GV_ERR_INVALID,
                           "comm iallreduce: send and recv buffers overlap without being equal");
    }
    GV_ISTART(c, req, async, c->iface->iallreduce(c, sendbuf, recvbuf, count, dt, op, ready, &(*req)->b),
              gv_comm_allreduce(c, sendbuf, recvbuf, count, dt, op));
}

gv_status gv_comm_ireduce_scatter(gv_comm *c, const void *sendbuf, void *recvbuf, size_t recvcount,
                                  gv_comm_dtype dt, gv_comm_op op, void *ready, gv_comm_req **req) {
    if (!req) return gv_fail(GV_ERR_INVALID, "comm ireduce_scatter: req is NULL");
    *req = NULL;
    GV_TRY(gv_check(c, "ireduce_scatter", dt, recvcount));
    GV_TRY(gv_check_op("ireduce_scatter", op));
    int async = recvcount && c->iface->ireduce_scatter && !gv_needs_stage(c, dt, sendbuf, recvbuf);
    if (async) {
        GV_TRY(gv_check_buf("ireduce_scatter", sendbuf, "sendbuf"));
        GV_TRY(gv_check_buf("ireduce_scatter", recvbuf, "recvbuf"));
        size_t block = recvcount * gv_comm_dtype_size(dt);
        if ((const char *)recvbuf != (const char *)sendbuf + (size_t)c->rank * block &&
            gv_overlap(sendbuf, block * (size_t)c->size, recvbuf, block))
            return gv_fail(GV_ERR_INVALID,
                           "comm ireduce_scatter: recv overlaps send but is not send + rank * recvcount");
    }
    GV_ISTART(c, req, async,
              c->iface->ireduce_scatter(c, sendbuf, recvbuf, recvcount, dt, op, ready, &(*req)->b),
              gv_comm_reduce_scatter(c, sendbuf, recvbuf, recvcount, dt, op));
}

gv_status gv_comm_iallgather(gv_comm *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                             gv_comm_dtype dt, void *ready, gv_comm_req **req) {
    if (!req) return gv_fail(GV_ERR_INVALID, "comm iallgather: req is NULL");
    *req = NULL;
    GV_TRY(gv_check(c, "iallgather", dt, sendcount));
    int async = sendcount && c->iface->iallgather && !gv_needs_stage(c, dt, sendbuf, recvbuf);
    if (async) {
        GV_TRY(gv_check_buf("iallgather", sendbuf, "sendbuf"));
        GV_TRY(gv_check_buf("iallgather", recvbuf, "recvbuf"));
        size_t block = sendcount * gv_comm_dtype_size(dt);
        if ((const char *)sendbuf != (const char *)recvbuf + (size_t)c->rank * block &&
            gv_overlap(sendbuf, block, recvbuf, block * (size_t)c->size))
            return gv_fail(GV_ERR_INVALID,
                           "comm iallgather: send overlaps recv but is not recv + rank * sendcount");
    }
    GV_ISTART(c, req, async, c->iface->iallgather(c, sendbuf, recvbuf, sendcount, dt, ready, &(*req)->b),
              gv_comm_allgather(c, sendbuf, recvbuf, sendcount, dt));
}

/* A staged or backend-less ireduce, complete on return. A host backend with a reduce (mpi) reduces a host
 * copy (as f32 when it has no bf16), the root copies the result back: the traffic of a reduce. Otherwise
 * (nccl given host buffers, one rank) an all-reduce of a host copy, the root keeping its result. */
static gv_status gv_reduce_fallback(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                    gv_comm_op op, int root) {
    size_t es = gv_comm_dtype_size(dt), bytes = count * es;
    if (c->size == 1) {
        if (recv != send) GV_TRY(gv_mem_copy(recv, send, bytes));
        return GV_OK;
    }
    int host = !c->iface->device_mem && c->iface->ireduce && c->iface->req_wait;
    int conv = host && dt == GV_COMM_BF16 && !c->iface->has_bf16;
    char *tmp = malloc(conv ? 2 * bytes : bytes);
    if (!tmp) return gv_fail(GV_ERR_NOMEM, "comm ireduce: out of host memory (%zu bytes)", bytes);
    gv_status st = gv_mem_copy(conv ? tmp + bytes : tmp, send, bytes);
    if (st == GV_OK && host) {
        if (conv) gv_bf16_expand(tmp, count);
        void *b = NULL, *ev = NULL;
        st = c->iface->ireduce(c, tmp, tmp, count, conv ? GV_COMM_F32 : dt, op, root, NULL, &b);
        if (st == GV_OK) st = c->iface->req_wait(c, b, &ev);
        if (st == GV_OK && conv && c->rank == root) gv_bf16_shrink(tmp, count);
    } else if (st == GV_OK) {
        st = gv_comm_allreduce(c, tmp, tmp, count, dt, op);
    }
    if (st == GV_OK && c->rank == root) st = gv_mem_copy(recv, tmp, bytes);
    if (st == GV_OK && c->rank == root && gv_mem_kind_of(recv) == GV_MEM_DEVICE) st = gv_mem_device_sync();
    free(tmp);
    return st;
}

gv_status gv_comm_ireduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                          gv_comm_op op, int root, void *ready, gv_comm_req **req) {
    if (!req) return gv_fail(GV_ERR_INVALID, "comm ireduce: req is NULL");
    *req = NULL;
    GV_TRY(gv_check(c, "ireduce", dt, count));
    GV_TRY(gv_check_op("ireduce", op));
    GV_TRY(gv_check_peer(c, "ireduce", "root", root));
    if (count) {
        GV_TRY(gv_check_buf("ireduce", sendbuf, "sendbuf"));
        if (c->rank == root) GV_TRY(gv_check_buf("ireduce", recvbuf, "recvbuf"));
        size_t bytes = count * gv_comm_dtype_size(dt);
        if (c->rank == root && sendbuf != recvbuf && gv_overlap(sendbuf, bytes, recvbuf, bytes))
            return gv_fail(GV_ERR_INVALID, "comm ireduce: send and recv buffers overlap without being equal");
    }
    const void *rb = c->rank == root ? recvbuf : NULL;
    int async = count && c->iface->ireduce && !gv_needs_stage(c, dt, sendbuf, rb);
    if (!async && count && c->size > 1) GV_TRY(gv_mem_device_sync()); /* the fallback copies device memory */
    GV_ISTART(c, req, async,
              c->iface->ireduce(c, sendbuf, (void *)rb, count, dt, op, root, ready, &(*req)->b),
              count ? gv_reduce_fallback(c, sendbuf, recvbuf, count, dt, op, root) : GV_OK);
}

/* ---- nonblocking messages ---------------------------------------------------------------------------- */

/* Scratch of `kind` for a staged message: a cached buffer that is large enough, or a new one. */
static gv_status gv_p2p_scratch_get(gv_comm *w, int kind, size_t bytes, void **p, size_t *have) {
    for (int i = 0; i < 4; i++)
        if (w->p2p_free[kind][i] && w->p2p_nfree[kind][i] >= bytes) {
            *p = w->p2p_free[kind][i];
            *have = w->p2p_nfree[kind][i];
            w->p2p_free[kind][i] = NULL;
            w->p2p_nfree[kind][i] = 0;
            return GV_OK;
        }
    *have = bytes;
    return gv_mem_alloc(p, bytes, kind);
}

/* Back into the cache (replacing the smallest cached buffer when full). */
static void gv_p2p_scratch_put(gv_comm *w, int kind, void *p, size_t bytes) {
    if (!p) return;
    int k = 0;
    for (int i = 1; i < 4; i++)
        if (w->p2p_nfree[kind][i] < w->p2p_nfree[kind][k]) k = i;
    if (w->p2p_free[kind][k] && w->p2p_nfree[kind][k] >= bytes) {
        gv_mem_free(p, kind);
        return;
    }
    gv_mem_free(w->p2p_free[kind][k], kind);
    w->p2p_free[kind][k] = p;
    w->p2p_nfree[kind][k] = bytes;
}

static void gv_req_release(gv_comm_req *q) {
    if (q->stage) gv_p2p_scratch_put(q->c->world, q->stage_kind, q->stage, q->stage_bytes);
    free(q);
}

static gv_status gv_p2p_check(gv_comm *c, const char *what, gv_comm_dtype dt, size_t count, int peer, int tag,
                              const void *buf, gv_comm_req **req) {
    if (!req) return gv_fail(GV_ERR_INVALID, "comm %s: req is NULL", what);
    *req = NULL;
    GV_TRY(gv_check(c, what, dt, count));
    GV_TRY(gv_check_peer(c, what, "peer", peer));
    GV_TRY(gv_check_tag(what, tag));
    if (count) GV_TRY(gv_check_buf(what, buf, "buf"));
    if (count && !(c->iface->isend && c->iface->irecv && c->iface->req_wait))
        return gv_fail(GV_ERR_UNSUPPORTED, "comm %s: the %s communicator has no nonblocking messages", what,
                       c->iface->name);
    return GV_OK;
}

/* Staging of one message buffer: 1 when the backend cannot take it (the other memory kind, or bf16 on a
 * backend without it); then q gets scratch of the backend's kind sized for the message it sends. */
static gv_status gv_p2p_stage(gv_comm *c, const char *what, gv_comm_dtype dt, const void *buf, size_t bytes,
                              gv_comm_req *q, int *staged) {
    int want = c->iface->device_mem;
    gv_mem_kind k = gv_mem_kind_of(buf);
    q->conv = dt == GV_COMM_BF16 && !c->iface->has_bf16;
    *staged = q->conv || (k != GV_MEM_MANAGED && (k == GV_MEM_DEVICE) != want);
    if (!*staged) return GV_OK;
    if (c->world->async)
        return gv_fail(GV_ERR_INVALID, "comm %s: a %s buffer in async mode (only device buffers can overlap)",
                       what, want ? "host" : "device");
    q->stage_kind = want;
    return gv_p2p_scratch_get(c->world, want, q->conv ? 2 * bytes : bytes, &q->stage, &q->stage_bytes);
}

/* The common start of a nonblocking message: checks, the request, and whether buf is staged. *q is NULL
 * for an empty message, whose request (*req) is then complete already. */
static gv_status gv_p2p_begin(gv_comm *c, const char *what, const void *buf, size_t count, gv_comm_dtype dt,
                              int peer, int tag, gv_comm_req **req, gv_comm_req **q, int *staged) {
    *q = NULL;
    GV_TRY(gv_p2p_check(c, what, dt, count, peer, tag, buf, req));
    gv_comm_req *r;
    GV_TRY(gv_req_new(c, &r));
    if (!count) {
        *req = r;
        return GV_OK;
    }
    gv_status st = gv_p2p_stage(c, what, dt, buf, count * gv_comm_dtype_size(dt), r, staged);
    if (st != GV_OK) {
        gv_req_release(r);
        return st;
    }
    *q = r;
    return GV_OK;
}

/* The common end: the request is the caller's once the backend took the message, else released. */
static gv_status gv_p2p_end(gv_comm_req *q, gv_status st, gv_comm_req **req) {
    if (st != GV_OK) {
        gv_req_release(q);
        return st;
    }
    *req = q;
    return GV_OK;
}

gv_status gv_comm_isend(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                        void *ready, gv_comm_req **req) {
    gv_comm_req *q;
    int staged = 0;
    GV_TRY(gv_p2p_begin(c, "isend", buf, count, dt, peer, tag, req, &q, &staged));
    if (!q) return GV_OK;
    size_t bytes = count * gv_comm_dtype_size(dt);
    gv_status st = GV_OK;
    const void *from = buf;
    if (staged) { /* the message is copied now: buf is the caller's again on return */
        char *t = q->stage;
        if (gv_mem_kind_of(buf) == GV_MEM_DEVICE) st = gv_mem_device_sync(); /* covers `ready` */
        if (st == GV_OK) st = gv_mem_copy(q->conv ? t + bytes : t, buf, bytes);
        if (st == GV_OK && q->conv) gv_bf16_expand(t, count);
        /* a copy from pageable memory into the device may still be in flight: the send must read it */
        if (st == GV_OK && q->stage_kind == GV_MEM_DEVICE) st = gv_mem_device_sync();
        from = t;
        ready = NULL;
    }
    if (st == GV_OK)
        st = c->iface->isend(c, from, count, q->conv ? GV_COMM_F32 : dt, peer, tag, ready, &q->b);
    return gv_p2p_end(q, st, req);
}

gv_status gv_comm_irecv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag, void *ready,
                        gv_comm_req **req) {
    gv_comm_req *q;
    int staged = 0;
    GV_TRY(gv_p2p_begin(c, "irecv", buf, count, dt, peer, tag, req, &q, &staged));
    if (!q) return GV_OK;
    void *into = buf;
    if (staged) { /* lands in the scratch; the wait copies it to buf */
        into = q->stage;
        q->dst = buf;
        q->dst_bytes = count * gv_comm_dtype_size(dt);
        ready = NULL; /* buf is written on the host at the wait, after a device sync */
    }
    return gv_p2p_end(q, c->iface->irecv(c, into, count, q->conv ? GV_COMM_F32 : dt, peer, tag, ready, &q->b),
                      req);
}

/* A staged receive after its message arrived: scratch -> the caller's buffer (bf16 rounded back). */
static gv_status gv_p2p_unstage(gv_comm_req *q) {
    char *t = q->stage;
    size_t n = q->dst_bytes;
    int dev = gv_mem_kind_of(q->dst) == GV_MEM_DEVICE;
    gv_status st = dev ? gv_mem_device_sync() : GV_OK; /* the caller's last reader of dst is done */
    if (st == GV_OK && q->conv) gv_bf16_shrink(t, n / 2);
    if (st == GV_OK) st = gv_mem_copy(q->dst, t, n);
    if (st == GV_OK && dev) st = gv_mem_device_sync(); /* see gv_stage_end */
    return st;
}

gv_status gv_comm_req_wait(gv_comm_req *req, void **done_event) {
    if (done_event) *done_event = NULL;
    if (!req) return gv_fail(GV_ERR_INVALID, "comm req_wait: request is NULL");
    gv_comm *c = req->c;
    void *b = req->b, *ev = NULL;
    gv_status st = GV_OK;
    if (b) st = c->iface->req_wait(c, b, &ev); /* else completed inside the call */
    /* staged: a receive copies on the host, a send's scratch goes back to the cache: both once it is done */
    if (st == GV_OK && ev && (!done_event || req->stage)) {
        st = c->iface->event_sync(c, ev);
        ev = NULL;
    }
    if (st == GV_OK && req->dst) st = gv_p2p_unstage(req);
    if (st == GV_OK && done_event) *done_event = ev;
    gv_req_release(req);
    return st;
}

gv_status gv_comm_set_async(gv_comm *c, int on) {
    if (!c) return gv_fail(GV_ERR_INVALID, "comm set_async: communicator is NULL");
    if (c->iface->set_async) GV_TRY(c->iface->set_async(c, on));
    c->world->async = c->iface->set_async ? on != 0 : 0;
    return GV_OK;
}

gv_status gv_comm_wait_event(gv_comm *c, void *cuda_event) {
    if (!c) return gv_fail(GV_ERR_INVALID, "comm wait_event: communicator is NULL");
    return c->iface->wait_event ? c->iface->wait_event(c, cuda_event) : GV_OK;
}

gv_status gv_comm_record(gv_comm *c, void **cuda_event) {
    if (!c || !cuda_event) return gv_fail(GV_ERR_INVALID, "comm record: communicator or event is NULL");
    *cuda_event = NULL;
    return c->iface->record ? c->iface->record(c, cuda_event) : GV_OK;
}

_Noreturn void gv_comm_abort(gv_comm *c, int code) {
    (void)c; /* MPI_Abort always goes to MPI_COMM_WORLD: a group's abort must take the whole job down too */
    if (code == 0) code = 1;
    fflush(stdout);
    fflush(stderr);
    gv_comm_mpi_abort_world(code); /* returns when MPI is not running */
    exit(code);
}
