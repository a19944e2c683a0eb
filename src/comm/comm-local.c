/* The "local" communicator: one rank. Collectives are copies (memmove: in-place calls are no-ops); messages
 * to self wait in a mailbox until received. */
#include "comm-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gv_local_msg {
    int tag;
    size_t bytes;
    struct gv_local_msg *next;
    unsigned char data[];
} gv_local_msg;

struct gv_local_req;
typedef struct {
    gv_local_msg *head;           /* FIFO: messages with one tag are received in the order sent, as in MPI */
    struct gv_local_req *pending; /* irecv requests not matched yet, in the order posted */
} gv_local_ctx;

static void gv_local_free(gv_comm *c) {
    gv_local_ctx *x = c->context;
    for (gv_local_msg *m = x->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    free(x);
}

static gv_status gv_local_group(gv_comm *world, const int *ranks, int n, gv_comm **out) {
    /* comm.c returns the world itself for the only possible set [0]. */
    (void)world, (void)ranks, (void)n, (void)out;
    return gv_fail(GV_ERR_INVALID, "local comm: a 1-rank world has no other group");
}

static gv_status gv_local_allreduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                    gv_comm_op op) {
    (void)c, (void)op;
    memmove(recv, send, count * gv_comm_dtype_size(dt));
    return GV_OK;
}

static gv_status gv_local_reduce_scatter(gv_comm *c, const void *send, void *recv, size_t recvcount,
                                         gv_comm_dtype dt, gv_comm_op op) {
    (void)c, (void)op;
    memmove(recv, send, recvcount * gv_comm_dtype_size(dt));
    return GV_OK;
}

static gv_status gv_local_allgather(gv_comm *c, const void *send, void *recv, size_t sendcount,
                                    gv_comm_dtype dt) {
    (void)c;
    memmove(recv, send, sendcount * gv_comm_dtype_size(dt));
    return GV_OK;
}

static gv_status gv_local_alltoall(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt) {
    (void)c;
    memmove(recv, send, count * gv_comm_dtype_size(dt));
    return GV_OK;
}

static gv_status gv_local_broadcast(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root) {
    (void)c, (void)buf, (void)count, (void)dt, (void)root;
    return GV_OK;
}

static gv_status gv_local_send(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer,
                               int tag) {
    (void)peer;
    gv_local_ctx *x = c->context;
    size_t bytes = count * gv_comm_dtype_size(dt);
    gv_local_msg *m = malloc(sizeof *m + bytes);
    if (!m) return gv_fail(GV_ERR_NOMEM, "local send (count %zu): out of memory for the message", count);
    m->tag = tag;
    m->bytes = bytes;
    m->next = NULL;
    memcpy(m->data, buf, bytes);
    gv_local_msg **p = &x->head;
    while (*p) p = &(*p)->next;
    *p = m;
    return GV_OK;
}

static gv_status gv_local_recv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    (void)peer;
    gv_local_ctx *x = c->context;
    size_t bytes = count * gv_comm_dtype_size(dt);
    for (gv_local_msg **p = &x->head; *p; p = &(*p)->next) {
        gv_local_msg *m = *p;
        if (m->tag != tag) continue;
        if (m->bytes != bytes)
            return gv_fail(GV_ERR_COMM,
                           "local recv (count %zu %s): the message with tag %d has %zu bytes, not %zu", count,
                           gv_comm_dtype_name(dt), tag, m->bytes, bytes);
        memcpy(buf, m->data, bytes);
        *p = m->next;
        free(m);
        return GV_OK;
    }
    return gv_fail(GV_ERR_COMM, "local recv (count %zu): no message with tag %d was sent (this would hang)",
                   count, tag);
}

static gv_status gv_local_sendrecv(gv_comm *c, const void *send, size_t sendcount, int dst, void *recv,
                                   size_t recvcount, int src, gv_comm_dtype dt, int tag) {
    GV_TRY(gv_local_send(c, send, sendcount, dt, dst, tag));
    return gv_local_recv(c, recv, recvcount, dt, src, tag);
}

/* Nonblocking messages to self, matched in the order posted as between two ranks: isend completes the
 * oldest pending receive of its tag, else queues the message; irecv takes the oldest queued message of
 * its tag, else waits in the pending list until an isend fills it. A wait on a receive nothing filled
 * fails (with one rank it would hang forever). */
typedef struct gv_local_req {
    void *buf;
    size_t count;
    gv_comm_dtype dt;
    int tag, done;
    gv_status st; /* of the match (a count mismatch) */
    char err[256];
    struct gv_local_req *next; /* pending list */
} gv_local_req;

static gv_status gv_local_fill(gv_local_req *q, const void *data, size_t bytes) {
    size_t want = q->count * gv_comm_dtype_size(q->dt);
    q->done = 1;
    if (bytes != want) {
        snprintf(q->err, sizeof q->err,
                 "local irecv (count %zu %s): the message with tag %d has %zu bytes, not %zu", q->count,
                 gv_comm_dtype_name(q->dt), q->tag, bytes, want);
        q->st = GV_ERR_COMM;
        return GV_OK;
    }
    memcpy(q->buf, data, bytes);
    return GV_OK;
}

static gv_status gv_local_isend(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer,
                                int tag, void *ready, void **req) {
    (void)ready;
    gv_local_ctx *x = c->context;
    *req = NULL;
    for (gv_local_req **p = &x->pending; *p; p = &(*p)->next)
        if ((*p)->tag == tag) {
            gv_local_req *q = *p;
            *p = q->next;
            return gv_local_fill(q, buf, count * gv_comm_dtype_size(dt));
        }
    return gv_local_send(c, buf, count, dt, peer, tag);
}

static gv_status gv_local_irecv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                                void *ready, void **req) {
    (void)peer, (void)ready;
    gv_local_ctx *x = c->context;
    gv_local_req *q = calloc(1, sizeof *q);
    if (!q) return gv_fail(GV_ERR_NOMEM, "local irecv (count %zu): out of memory for the request", count);
    *q = (gv_local_req){.buf = buf, .count = count, .dt = dt, .tag = tag};
    *req = q;
    for (gv_local_msg **p = &x->head; *p; p = &(*p)->next)
        if ((*p)->tag == tag) {
            gv_local_msg *m = *p;
            *p = m->next;
            gv_local_fill(q, m->data, m->bytes);
            free(m);
            return GV_OK;
        }
    gv_local_req **p = &x->pending; /* after the receives posted before it */
    while (*p) p = &(*p)->next;
    *p = q;
    return GV_OK;
}

static gv_status gv_local_req_wait(gv_comm *c, void *req, void **done_event) {
    gv_local_ctx *x = c->context;
    gv_local_req *q = req;
    *done_event = NULL;
    gv_status st = GV_OK;
    if (!q->done) {
        for (gv_local_req **p = &x->pending; *p; p = &(*p)->next)
            if (*p == q) {
                *p = q->next;
                break;
            }
        st =
            gv_fail(GV_ERR_COMM, "local irecv (count %zu): no message with tag %d was sent (this would hang)",
                    q->count, q->tag);
    } else if (q->st != GV_OK) {
        st = gv_fail(q->st, "%s", q->err);
    }
    free(q);
    return st;
}

static gv_status gv_local_barrier(gv_comm *c) {
    (void)c;
    return GV_OK;
}

static const struct gv_comm_i gv_local_iface = {
    .name = "local",
    .free = gv_local_free,
    .group = gv_local_group,
    .allreduce = gv_local_allreduce,
    .reduce_scatter = gv_local_reduce_scatter,
    .allgather = gv_local_allgather,
    .alltoall = gv_local_alltoall,
    .broadcast = gv_local_broadcast,
    .send = gv_local_send,
    .recv = gv_local_recv,
    .sendrecv = gv_local_sendrecv,
    .barrier = gv_local_barrier,
    .isend = gv_local_isend,
    .irecv = gv_local_irecv,
    .req_wait = gv_local_req_wait,
};

gv_status gv_comm_local_init(gv_comm **out) {
    gv_local_ctx *x = calloc(1, sizeof *x);
    if (!x) return gv_fail(GV_ERR_NOMEM, "local comm: out of memory");
    gv_status st = gv_comm_new(out, &gv_local_iface, x, 0, 1, NULL);
    if (st != GV_OK) free(x);
    return st;
}
