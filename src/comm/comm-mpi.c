/* The "mpi" communicator: host buffers through MPI. The world is a duplicate of MPI_COMM_WORLD (so the
 * library's messages never mix with a caller's), groups come from MPI_Comm_create_group on the world's group,
 * and every communicator has MPI_ERRORS_RETURN so MPI failures come back as GV_ERR_COMM statuses.
 *
 * MPI counts are ints: allreduce, broadcast, send and recv split larger counts into chunks of at most
 * INT_MAX elements; the block collectives and sendrecv refuse counts above INT_MAX. (GV_COMM_MPI_MAX_COUNT
 * lowers the chunk size, for tests of the chunked paths.) */
#include "comm-impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

/* Tag of MPI_Comm_create_group: creations are ordered, so one tag is enough. */
#define GV_MPI_GROUP_TAG 7301

typedef struct {
    MPI_Comm comm;
    size_t max_count; /* largest count of one MPI call */
} gv_mpi_ctx;

/* Worlds alive in this process, and whether gv_comm_mpi_init called MPI_Init_thread (then the last world's
 * free calls MPI_Finalize). */
static int gv_mpi_worlds = 0;
static int gv_mpi_owns = 0;

static const struct gv_comm_i gv_mpi_iface;

static MPI_Datatype gv_mpi_dtype(gv_comm_dtype dt) {
    switch (dt) {
    case GV_COMM_F32:
        return MPI_FLOAT;
    case GV_COMM_F64:
        return MPI_DOUBLE;
    case GV_COMM_I32:
        return MPI_INT32_T;
    case GV_COMM_I64:
        return MPI_INT64_T;
    case GV_COMM_U8:
        return MPI_UINT8_T;
    case GV_COMM_BF16: /* comm.c hands this backend bf16 as f32 */
        return MPI_UINT16_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op gv_mpi_op(gv_comm_op op) {
    switch (op) {
    case GV_COMM_SUM:
        return MPI_SUM;
    case GV_COMM_MAX:
        return MPI_MAX;
    case GV_COMM_MIN:
        return MPI_MIN;
    }
    return MPI_OP_NULL;
}

static MPI_Comm gv_mpi_comm(const gv_comm *c) {
    return ((const gv_mpi_ctx *)c->context)->comm;
}
static size_t gv_mpi_max(const gv_comm *c) {
    return ((const gv_mpi_ctx *)c->context)->max_count;
}

static gv_status gv_mpi_fail(const gv_comm *c, int rc, const char *what, size_t count, gv_comm_dtype dt) {
    char err[MPI_MAX_ERROR_STRING] = "", desc[96];
    int len = 0;
    if (MPI_Error_string(rc, err, &len) != MPI_SUCCESS) snprintf(err, sizeof err, "MPI error code %d", rc);
    return gv_fail(GV_ERR_COMM, "mpi %s (count %zu %s) on group %s: %s", what, count, gv_comm_dtype_name(dt),
                   gv_comm_describe(c, desc, sizeof desc), err);
}

#define GV_MPI_CALL(c, what, count, dt, call)                                                                \
    do {                                                                                                     \
        int gv_rc_ = (call);                                                                                 \
        if (gv_rc_ != MPI_SUCCESS) return gv_mpi_fail(c, gv_rc_, what, count, dt);                           \
    } while (0)

static gv_status gv_mpi_int_count(const gv_comm *c, const char *what, size_t count, gv_comm_dtype dt) {
    if (count > gv_mpi_max(c)) {
        char desc[96];
        return gv_fail(GV_ERR_UNSUPPORTED,
                       "mpi %s (count %zu %s) on group %s: counts above %zu are not supported", what, count,
                       gv_comm_dtype_name(dt), gv_comm_describe(c, desc, sizeof desc), gv_mpi_max(c));
    }
    return GV_OK;
}

/* An exact-size receive: a message of another size is an error (as in NCCL), not a silent short read. */
static gv_status gv_mpi_check_count(const gv_comm *c, const MPI_Status *s, const char *what, size_t count,
                                    gv_comm_dtype dt) {
    int got = 0;
    GV_MPI_CALL(c, what, count, dt, MPI_Get_count(s, gv_mpi_dtype(dt), &got));
    if ((size_t)got != count) {
        char desc[96];
        return gv_fail(
            GV_ERR_COMM, "mpi %s (count %zu %s) on group %s: the message from rank %d has %d elements", what,
            count, gv_comm_dtype_name(dt), gv_comm_describe(c, desc, sizeof desc), s->MPI_SOURCE, got);
    }
    return GV_OK;
}

/* ---- lifetime ---------------------------------------------------------------------------------------- */

static void gv_mpi_free(gv_comm *c) {
    gv_mpi_ctx *x = c->context;
    if (x->comm != MPI_COMM_NULL) MPI_Comm_free(&x->comm);
    free(x);
    if (c->world == c && --gv_mpi_worlds == 0 && gv_mpi_owns) {
        MPI_Finalize();
        gv_mpi_owns = 0;
    }
}

static gv_status gv_mpi_group(gv_comm *world, const int *ranks, int n, gv_comm **out) {
    gv_mpi_ctx *wx = world->context;
    char desc[96];
    MPI_Group wg = MPI_GROUP_NULL, g = MPI_GROUP_NULL;
    MPI_Comm nc = MPI_COMM_NULL;
    int rc = MPI_Comm_group(wx->comm, &wg);
    if (rc == MPI_SUCCESS) rc = MPI_Group_incl(wg, n, ranks, &g);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_create_group(wx->comm, g, GV_MPI_GROUP_TAG, &nc);
    if (g != MPI_GROUP_NULL) MPI_Group_free(&g);
    if (wg != MPI_GROUP_NULL) MPI_Group_free(&wg);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN);
    int rank = -1, size = 0;
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(nc, &rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(nc, &size);
    if (rc != MPI_SUCCESS) {
        if (nc != MPI_COMM_NULL) MPI_Comm_free(&nc);
        char err[MPI_MAX_ERROR_STRING] = "";
        int len = 0;
        MPI_Error_string(rc, err, &len);
        return gv_fail(GV_ERR_COMM, "mpi comm_create_group of %d ranks (first %d) in world %s: %s", n,
                       ranks[0], gv_comm_describe(world, desc, sizeof desc), err);
    }
    gv_mpi_ctx *x = malloc(sizeof *x);
    if (!x) {
        MPI_Comm_free(&nc);
        return gv_fail(GV_ERR_NOMEM, "mpi comm group: out of memory");
    }
    x->comm = nc;
    x->max_count = wx->max_count;
    gv_status st = gv_comm_new(out, &gv_mpi_iface, x, rank, size, ranks);
    if (st != GV_OK) {
        MPI_Comm_free(&nc);
        free(x);
    }
    return st;
}

/* ---- collectives ------------------------------------------------------------------------------------- */

static gv_status gv_mpi_allreduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                  gv_comm_op op) {
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        char *r = (char *)recv + off * es;
        const void *s = send == recv ? MPI_IN_PLACE : (const char *)send + off * es;
        GV_MPI_CALL(c, "allreduce", count, dt,
                    MPI_Allreduce(s, r, n, gv_mpi_dtype(dt), gv_mpi_op(op), gv_mpi_comm(c)));
    }
    return GV_OK;
}

static gv_status gv_mpi_reduce_scatter(gv_comm *c, const void *send, void *recv, size_t recvcount,
                                       gv_comm_dtype dt, gv_comm_op op) {
    GV_TRY(gv_mpi_int_count(c, "reduce_scatter", recvcount, dt));
    size_t block = recvcount * gv_comm_dtype_size(dt);
    if ((char *)recv == (const char *)send + (size_t)c->rank * block) {
        /* In place: MPI reduces the whole buffer and leaves block r at its start. */
        void *all = (char *)recv - (size_t)c->rank * block;
        GV_MPI_CALL(c, "reduce_scatter", recvcount, dt,
                    MPI_Reduce_scatter_block(MPI_IN_PLACE, all, (int)recvcount, gv_mpi_dtype(dt),
                                             gv_mpi_op(op), gv_mpi_comm(c)));
        if (c->rank) memmove(recv, all, block);
        return GV_OK;
    }
    GV_MPI_CALL(c, "reduce_scatter", recvcount, dt,
                MPI_Reduce_scatter_block(send, recv, (int)recvcount, gv_mpi_dtype(dt), gv_mpi_op(op),
                                         gv_mpi_comm(c)));
    return GV_OK;
}

static gv_status gv_mpi_allgather(gv_comm *c, const void *send, void *recv, size_t sendcount,
                                  gv_comm_dtype dt) {
    GV_TRY(gv_mpi_int_count(c, "allgather", sendcount, dt));
    size_t block = sendcount * gv_comm_dtype_size(dt);
    int in_place = (const char *)send == (char *)recv + (size_t)c->rank * block;
    GV_MPI_CALL(c, "allgather", sendcount, dt,
                MPI_Allgather(in_place ? MPI_IN_PLACE : send, in_place ? 0 : (int)sendcount,
                              in_place ? MPI_DATATYPE_NULL : gv_mpi_dtype(dt), recv, (int)sendcount,
                              gv_mpi_dtype(dt), gv_mpi_comm(c)));
    return GV_OK;
}

static gv_status gv_mpi_alltoall(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt) {
    GV_TRY(gv_mpi_int_count(c, "alltoall", count, dt));
    int in_place = send == recv;
    GV_MPI_CALL(c, "alltoall", count, dt,
                MPI_Alltoall(in_place ? MPI_IN_PLACE : send, in_place ? 0 : (int)count,
                             in_place ? MPI_DATATYPE_NULL : gv_mpi_dtype(dt), recv, (int)count,
                             gv_mpi_dtype(dt), gv_mpi_comm(c)));
    return GV_OK;
}

static gv_status gv_mpi_broadcast(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root) {
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        GV_MPI_CALL(c, "broadcast", count, dt,
                    MPI_Bcast((char *)buf + off * es, n, gv_mpi_dtype(dt), root, gv_mpi_comm(c)));
    }
    return GV_OK;
}

static gv_status gv_mpi_send(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        GV_MPI_CALL(c, "send", count, dt,
                    MPI_Send((const char *)buf + off * es, n, gv_mpi_dtype(dt), peer, tag, gv_mpi_comm(c)));
    }
    return GV_OK;
}

static gv_status gv_mpi_recv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        MPI_Status s;
        GV_MPI_CALL(c, "recv", count, dt,
                    MPI_Recv((char *)buf + off * es, n, gv_mpi_dtype(dt), peer, tag, gv_mpi_comm(c), &s));
        GV_TRY(gv_mpi_check_count(c, &s, "recv", (size_t)n, dt));
    }
    return GV_OK;
}

static gv_status gv_mpi_sendrecv(gv_comm *c, const void *send, size_t sendcount, int dst, void *recv,
                                 size_t recvcount, int src, gv_comm_dtype dt, int tag) {
    GV_TRY(gv_mpi_int_count(c, "sendrecv", sendcount > recvcount ? sendcount : recvcount, dt));
    MPI_Status s;
    GV_MPI_CALL(c, "sendrecv", recvcount, dt,
                MPI_Sendrecv(send, (int)sendcount, gv_mpi_dtype(dt), dst, tag, recv, (int)recvcount,
                             gv_mpi_dtype(dt), src, tag, gv_mpi_comm(c), &s));
    return gv_mpi_check_count(c, &s, "sendrecv", recvcount, dt);
}

static gv_status gv_mpi_barrier(gv_comm *c) {
    GV_MPI_CALL(c, "barrier", 0, GV_COMM_U8, MPI_Barrier(gv_mpi_comm(c)));
    return GV_OK;
}

/* ---- nonblocking collectives ------------------------------------------------------------------------ */

/* MPI requests of one call (allreduce and reduce in chunks of at most max_count elements); an in-place
 * reduce-scatter moves this rank's block to its place once complete (MPI leaves it at the start). */
typedef struct {
    int n;
    int recv; /* irecv: each chunk's count is checked at the wait */
    char *move_dst;
    const char *move_src;
    size_t move_bytes;
    const char *what;
    size_t count;
    gv_comm_dtype dt;
    MPI_Request r[];
} gv_mpi_req;

static gv_status gv_mpi_req_new(gv_comm *c, size_t count, const char *what, gv_comm_dtype dt,
                                gv_mpi_req **out) {
    size_t max = gv_mpi_max(c), n = count ? (count + max - 1) / max : 1;
    gv_mpi_req *q = calloc(1, sizeof *q + n * sizeof(MPI_Request));
    if (!q) return gv_fail(GV_ERR_NOMEM, "mpi %s: out of memory for the request", what);
    for (size_t i = 0; i < n; i++) q->r[i] = MPI_REQUEST_NULL;
    q->what = what, q->count = count, q->dt = dt;
    *out = q;
    return GV_OK;
}

/* A failed start: the chunks already started are completed before the error returns (no request leaks). */
static gv_status gv_mpi_req_abandon(gv_comm *c, gv_mpi_req *q, int rc) {
    MPI_Waitall(q->n, q->r, MPI_STATUSES_IGNORE);
    gv_status st = gv_mpi_fail(c, rc, q->what, q->count, q->dt);
    free(q);
    return st;
}

static gv_status gv_mpi_iallreduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                   gv_comm_op op, void *ready, void **req) {
    (void)ready;
    gv_mpi_req *q;
    GV_TRY(gv_mpi_req_new(c, count, "iallreduce", dt, &q));
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        const void *sb = send == recv ? MPI_IN_PLACE : (const char *)send + off * es;
        int rc = MPI_Iallreduce(sb, (char *)recv + off * es, n, gv_mpi_dtype(dt), gv_mpi_op(op),
                                gv_mpi_comm(c), &q->r[q->n]);
        if (rc != MPI_SUCCESS) return gv_mpi_req_abandon(c, q, rc);
        q->n++;
    }
    *req = q;
    return GV_OK;
}

static gv_status gv_mpi_ireduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                gv_comm_op op, int root, void *ready, void **req) {
    (void)ready;
    gv_mpi_req *q;
    GV_TRY(gv_mpi_req_new(c, count, "ireduce", dt, &q));
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    int me = c->rank == root;
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        const void *sb = me && send == recv ? MPI_IN_PLACE : (const char *)send + off * es;
        void *rb = me ? (char *)recv + off * es : NULL;
        int rc = MPI_Ireduce(sb, rb, n, gv_mpi_dtype(dt), gv_mpi_op(op), root, gv_mpi_comm(c), &q->r[q->n]);
        if (rc != MPI_SUCCESS) return gv_mpi_req_abandon(c, q, rc);
        q->n++;
    }
    *req = q;
    return GV_OK;
}

static gv_status gv_mpi_ireduce_scatter(gv_comm *c, const void *send, void *recv, size_t recvcount,
                                        gv_comm_dtype dt, gv_comm_op op, void *ready, void **req) {
    (void)ready;
    GV_TRY(gv_mpi_int_count(c, "ireduce_scatter", recvcount, dt));
    gv_mpi_req *q;
    GV_TRY(gv_mpi_req_new(c, 1, "ireduce_scatter", dt, &q));
    q->count = recvcount;
    size_t block = recvcount * gv_comm_dtype_size(dt);
    int rc;
    if ((char *)recv == (const char *)send + (size_t)c->rank * block) { /* in place, as the blocking form */
        char *all = (char *)recv - (size_t)c->rank * block;
        rc = MPI_Ireduce_scatter_block(MPI_IN_PLACE, all, (int)recvcount, gv_mpi_dtype(dt), gv_mpi_op(op),
                                       gv_mpi_comm(c), &q->r[0]);
        if (c->rank) q->move_dst = recv, q->move_src = all, q->move_bytes = block;
    } else {
        rc = MPI_Ireduce_scatter_block(send, recv, (int)recvcount, gv_mpi_dtype(dt), gv_mpi_op(op),
                                       gv_mpi_comm(c), &q->r[0]);
    }
    if (rc != MPI_SUCCESS) return gv_mpi_req_abandon(c, q, rc);
    q->n = 1;
    *req = q;
    return GV_OK;
}

static gv_status gv_mpi_iallgather(gv_comm *c, const void *send, void *recv, size_t sendcount,
                                   gv_comm_dtype dt, void *ready, void **req) {
    (void)ready;
    GV_TRY(gv_mpi_int_count(c, "iallgather", sendcount, dt));
    gv_mpi_req *q;
    GV_TRY(gv_mpi_req_new(c, 1, "iallgather", dt, &q));
    q->count = sendcount;
    size_t block = sendcount * gv_comm_dtype_size(dt);
    int in_place = (const char *)send == (char *)recv + (size_t)c->rank * block;
    int rc = MPI_Iallgather(in_place ? MPI_IN_PLACE : send, in_place ? 0 : (int)sendcount,
                            in_place ? MPI_DATATYPE_NULL : gv_mpi_dtype(dt), recv, (int)sendcount,
                            gv_mpi_dtype(dt), gv_mpi_comm(c), &q->r[0]);
    if (rc != MPI_SUCCESS) return gv_mpi_req_abandon(c, q, rc);
    q->n = 1;
    *req = q;
    return GV_OK;
}

/* Nonblocking messages, in chunks of at most max_count elements (each its own MPI message, in order). */
static gv_status gv_mpi_ip2p(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                             int recv, void **req) {
    const char *what = recv ? "irecv" : "isend";
    gv_mpi_req *q;
    GV_TRY(gv_mpi_req_new(c, count, what, dt, &q));
    q->recv = recv;
    size_t es = gv_comm_dtype_size(dt), max = gv_mpi_max(c);
    for (size_t off = 0; off < count; off += max) {
        int n = (int)(count - off < max ? count - off : max);
        char *p = (char *)buf + off * es;
        int rc = recv ? MPI_Irecv(p, n, gv_mpi_dtype(dt), peer, tag, gv_mpi_comm(c), &q->r[q->n])
                      : MPI_Isend(p, n, gv_mpi_dtype(dt), peer, tag, gv_mpi_comm(c), &q->r[q->n]);
        if (rc != MPI_SUCCESS) return gv_mpi_req_abandon(c, q, rc);
        q->n++;
    }
    *req = q;
    return GV_OK;
}

static gv_status gv_mpi_isend(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                              void *ready, void **req) {
    (void)ready;
    return gv_mpi_ip2p(c, (void *)buf, count, dt, peer, tag, 0, req);
}

static gv_status gv_mpi_irecv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                              void *ready, void **req) {
    (void)ready;
    return gv_mpi_ip2p(c, buf, count, dt, peer, tag, 1, req);
}

/* A receive's chunks one by one: an exact-size check on each (as gv_mpi_recv). */
static gv_status gv_mpi_recv_wait(gv_comm *c, gv_mpi_req *q) {
    gv_status st = GV_OK;
    size_t max = gv_mpi_max(c);
    for (int i = 0; i < q->n; i++) {
        MPI_Status s;
        int rc = MPI_Wait(&q->r[i], &s);
        size_t n = q->count - (size_t)i * max < max ? q->count - (size_t)i * max : max;
        if (st != GV_OK) continue; /* the rest still complete: no request leaks */
        if (rc != MPI_SUCCESS)
            st = gv_mpi_fail(c, rc, q->what, q->count, q->dt);
        else
            st = gv_mpi_check_count(c, &s, q->what, n, q->dt);
    }
    free(q);
    return st;
}

static gv_status gv_mpi_req_wait(gv_comm *c, void *req, void **done_event) {
    gv_mpi_req *q = req;
    *done_event = NULL;
    if (q->recv) return gv_mpi_recv_wait(c, q);
    int rc = MPI_Waitall(q->n, q->r, MPI_STATUSES_IGNORE);
    if (rc == MPI_SUCCESS && q->move_bytes) memmove(q->move_dst, q->move_src, q->move_bytes);
    gv_status st = rc == MPI_SUCCESS ? GV_OK : gv_mpi_fail(c, rc, q->what, q->count, q->dt);
    free(q);
    return st;
}

static const struct gv_comm_i gv_mpi_iface = {
    .name = "mpi",
    .free = gv_mpi_free,
    .group = gv_mpi_group,
    .allreduce = gv_mpi_allreduce,
    .reduce_scatter = gv_mpi_reduce_scatter,
    .allgather = gv_mpi_allgather,
    .alltoall = gv_mpi_alltoall,
    .broadcast = gv_mpi_broadcast,
    .send = gv_mpi_send,
    .recv = gv_mpi_recv,
    .sendrecv = gv_mpi_sendrecv,
    .barrier = gv_mpi_barrier,
    .iallreduce = gv_mpi_iallreduce,
    .ireduce_scatter = gv_mpi_ireduce_scatter,
    .iallgather = gv_mpi_iallgather,
    .ireduce = gv_mpi_ireduce,
    .isend = gv_mpi_isend,
    .irecv = gv_mpi_irecv,
    .req_wait = gv_mpi_req_wait,
};

static gv_status gv_mpi_init_fail(int rc, const char *what) {
    char err[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, err, &len);
    return gv_fail(GV_ERR_COMM, "mpi %s: %s", what, err);
}

gv_status gv_comm_mpi_init(gv_comm **out) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized)
        return gv_fail(GV_ERR_COMM,
                       "mpi init: MPI was already finalised in this process (one MPI world per process)");
    int owns = 0;
    if (!inited) {
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) return gv_mpi_init_fail(rc, "init");
        owns = 1;
    }
    MPI_Comm comm = MPI_COMM_NULL;
    int rank = 0, size = 0;
    int rc = MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &size);
    gv_mpi_ctx *x = rc == MPI_SUCCESS ? malloc(sizeof *x) : NULL;
    gv_status st = rc != MPI_SUCCESS ? gv_mpi_init_fail(rc, "world communicator")
                   : !x              ? gv_fail(GV_ERR_NOMEM, "mpi init: out of memory")
                                     : GV_OK;
    if (st == GV_OK) {
        x->comm = comm;
        x->max_count = INT_MAX;
        const char *mc = getenv("GV_COMM_MPI_MAX_COUNT");
        if (mc && atol(mc) > 0 && atol(mc) < INT_MAX) x->max_count = (size_t)atol(mc);
        st = gv_comm_new(out, &gv_mpi_iface, x, rank, size, NULL);
    }
    if (st != GV_OK) {
        free(x);
        if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
        if (owns && !gv_mpi_worlds) MPI_Finalize();
        return st;
    }
    gv_mpi_worlds++;
    gv_mpi_owns |= owns;
    return GV_OK;
}

void gv_comm_mpi_abort_world(int code) {
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
}
