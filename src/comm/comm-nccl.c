/* The "nccl" communicator: device buffers through NCCL, one GPU per rank.
 *
 * Bootstrap: the world's ncclUniqueId is made by rank 0 and sent to the others through an MPI world when
 * the process is an MPI rank (that world stays alive underneath, for groups and for gv_comm_abort), else
 * through the shared-file rendezvous (rendezvous.c). Groups are carved the same way, collectively over their
 * members only (the gv_comm_group rule): the first member makes the group's id and shares it through the
 * MPI group of the same ranks or a rendezvous file keyed by the rank set; each group is one ncclComm, made
 * once and pooled by comm.c.
 *
 * Every rank of a world shares one comm stream (calls are serialised by the caller) and one completion
 * event. Synchronous mode (the default): a call enqueues its NCCL operations on the comm stream and waits
 * for them, so buffers are the caller's again on return; the caller has synchronised its own work on them
 * before (gv_backend_sync), as for every communicator. Async mode (gv_comm_set_async): calls return once
 * enqueued; the caller orders them against its compute stream with events (gv_comm_wait_event,
 * gv_comm_record).
 *
 * NCCL has no tags and no alltoall: messages between two ranks match in the order posted, so in
 * synchronous mode every message is preceded by a 16-byte header (tag, count) that the receiver checks,
 * turning a mismatch into an error instead of a hang or a corrupt buffer; alltoall is a group of
 * send/recv pairs. Paired exchanges (sendrecv: the 1F1B steady state) are one ncclGroupStart/End. */
#include "comm-impl.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef GV_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include "gv/launch.h"
#include "rendezvous.h"

typedef struct {
    int device;
    cudaStream_t stream;
    cudaEvent_t done;
    int async;
    gv_comm *boot;     /* the MPI world of the bootstrap, or NULL (file rendezvous) */
    gv_rendezvous rdv; /* without MPI */
    char *dir;
    void *scratch; /* device: headers (2 x 16 bytes), barrier word, alltoall copy */
    size_t nscratch;
    cudaEvent_t *evs; /* completion events of nonblocking calls not in use (a stack), made on demand */
    int nev, capev;
} gv_nccl_world;

typedef struct {
    ncclComm_t comm;
    gv_nccl_world *w;
    int owns_world;   /* the world's context */
    cudaStream_t p2p; /* nonblocking messages of this communicator (made at the first one) */
} gv_nccl_ctx;

static const struct gv_comm_i gv_nccl_iface;

static gv_nccl_ctx *gv_nx(const gv_comm *c) {
    return c->context;
}

static ncclDataType_t gv_nccl_dtype(gv_comm_dtype dt) {
    switch (dt) {
    case GV_COMM_F32:
        return ncclFloat32;
    case GV_COMM_F64:
        return ncclFloat64;
    case GV_COMM_I32:
        return ncclInt32;
    case GV_COMM_I64:
        return ncclInt64;
    case GV_COMM_U8:
        return ncclUint8;
    case GV_COMM_BF16:
        return ncclBfloat16;
    }
    return ncclUint8;
}

static ncclRedOp_t gv_nccl_op(gv_comm_op op) {
    return op == GV_COMM_MAX ? ncclMax : op == GV_COMM_MIN ? ncclMin : ncclSum;
}

static gv_status gv_nccl_fail(const gv_comm *c, ncclResult_t rc, const char *what, size_t count,
                              gv_comm_dtype dt) {
    char desc[96];
    const char *last = c && gv_nx(c)->comm ? ncclGetLastError(gv_nx(c)->comm) : NULL;
    return gv_fail(GV_ERR_COMM, "nccl %s (count %zu %s) on group %s: %s%s%s", what, count,
                   gv_comm_dtype_name(dt), c ? gv_comm_describe(c, desc, sizeof desc) : "[?]",
                   ncclGetErrorString(rc), last && *last ? ": " : "", last ? last : "");
}

static gv_status gv_cuda_fail(const gv_comm *c, cudaError_t e, const char *what) {
    char desc[96];
    return gv_fail(GV_ERR_COMM, "nccl %s on group %s: %s", what,
                   c ? gv_comm_describe(c, desc, sizeof desc) : "[?]", cudaGetErrorString(e));
}

#define GV_NCCL(c, what, count, dt, call)                                                                    \
    do {                                                                                                     \
        ncclResult_t gv_r_ = (call);                                                                         \
        if (gv_r_ != ncclSuccess && gv_r_ != ncclInProgress) return gv_nccl_fail(c, gv_r_, what, count, dt); \
    } while (0)
#define GV_CUDA(c, what, call)                                                                               \
    do {                                                                                                     \
        cudaError_t gv_e_ = (call);                                                                          \
        if (gv_e_ != cudaSuccess) return gv_cuda_fail(c, gv_e_, what);                                       \
    } while (0)

/* The end of a call: wait for the comm stream (synchronous mode) and surface asynchronous NCCL errors. */
static gv_status gv_nccl_finish(gv_comm *c, const char *what, size_t count, gv_comm_dtype dt) {
    gv_nccl_ctx *x = gv_nx(c);
    if (x->w->async) return GV_OK;
    cudaError_t e = cudaStreamSynchronize(x->w->stream);
    ncclResult_t ae = ncclSuccess;
    ncclCommGetAsyncError(x->comm, &ae);
    if (ae != ncclSuccess) return gv_nccl_fail(c, ae, what, count, dt);
    if (e != cudaSuccess) return gv_cuda_fail(c, e, what);
    return GV_OK;
}

static gv_status gv_nccl_scratch(gv_comm *c, size_t bytes) {
    gv_nccl_world *w = gv_nx(c)->w;
    if (w->nscratch >= bytes) return GV_OK;
    if (w->scratch) {
        GV_CUDA(c, "scratch", cudaStreamSynchronize(w->stream));
        cudaFree(w->scratch);
        w->scratch = NULL, w->nscratch = 0;
    }
    GV_CUDA(c, "scratch alloc", cudaMalloc(&w->scratch, bytes));
    w->nscratch = bytes;
    return GV_OK;
}

/* ---- bootstrap --------------------------------------------------------------------------------------- */

/* The unique id of a communicator of ranks[0..n) (world ranks; n = world size and ranks NULL for the world):
 * made by its first member, shared with the others. me: this rank's index in the set. */
static gv_status gv_nccl_share_id(gv_nccl_world *w, const int *ranks, int n, int me, ncclUniqueId *id) {
    struct {
        int32_t ok;
        char msg[124];
        ncclUniqueId id;
    } pkt;
    memset(&pkt, 0, sizeof pkt);
    if (me == 0) {
        ncclResult_t rc = ncclGetUniqueId(&pkt.id);
        pkt.ok = rc == ncclSuccess;
        if (!pkt.ok) snprintf(pkt.msg, sizeof pkt.msg, "ncclGetUniqueId: %s", ncclGetErrorString(rc));
    }
    if (w->boot) {
        gv_comm *g = w->boot;
        if (ranks) GV_TRY(gv_comm_group(w->boot, ranks, n, &g));
        GV_TRY(gv_comm_broadcast(g, &pkt, sizeof pkt, GV_COMM_U8, 0));
    } else if (n > 1) {
        char key[64];
        uint64_t h = 1469598103934665603ull;
        for (int i = 0; ranks && i < n; i++) h = (h ^ (uint64_t)(uint32_t)ranks[i]) * 1099511628211ull;
        if (ranks)
            snprintf(key, sizeof key, "group-%dr-%016llx", n, (unsigned long long)h);
        else
            snprintf(key, sizeof key, "world");
        if (me == 0 && !pkt.ok) return gv_fail(GV_ERR_COMM, "nccl bootstrap: %s", pkt.msg);
        GV_TRY(gv_rendezvous_share(&w->rdv, key, me == 0, &pkt, sizeof pkt));
    }
    if (!pkt.ok)
        return gv_fail(GV_ERR_COMM, "nccl bootstrap (first rank %d): %s", ranks ? ranks[0] : 0, pkt.msg);
    *id = pkt.id;
    return GV_OK;
}

/* After every member joined (ncclCommInitRank returned): the publisher removes its rendezvous file. */
static void gv_nccl_unpublish(gv_nccl_world *w, const int *ranks, int n, int me) {
    if (w->boot || n == 1 || me != 0) return;
    char key[64];
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; ranks && i < n; i++) h = (h ^ (uint64_t)(uint32_t)ranks[i]) * 1099511628211ull;
    if (ranks)
        snprintf(key, sizeof key, "group-%dr-%016llx", n, (unsigned long long)h);
    else
        snprintf(key, sizeof key, "world");
    gv_rendezvous_remove(&w->rdv, key);
}

static void gv_nccl_world_free(gv_nccl_world *w) {
    if (!w) return;
    if (w->stream) cudaStreamSynchronize(w->stream);
    if (w->scratch) cudaFree(w->scratch);
    if (w->done) cudaEventDestroy(w->done);
    for (int i = 0; i < w->nev; i++) cudaEventDestroy(w->evs[i]);
    free(w->evs);
    if (w->stream) cudaStreamDestroy(w->stream);
    if (w->boot) gv_comm_free(w->boot);
    free(w->dir);
    free(w);
}

static void gv_nccl_free(gv_comm *c) {
    gv_nccl_ctx *x = gv_nx(c);
    if (x->p2p) {
        cudaStreamSynchronize(x->p2p);
        cudaStreamDestroy(x->p2p);
    }
    if (x->comm) {
        ncclCommFinalize(x->comm);
        ncclCommDestroy(x->comm);
    }
    if (x->owns_world) gv_nccl_world_free(x->w);
    free(x);
}

/* The host's rank index and rank count: MPI's shared-memory split under MPI, else $GV_LOCAL_RANK /
 * $LOCAL_RANK (size unknown: -1). */
static void gv_nccl_local(const gv_nccl_world *w, int rank, int *lrank, int *lsize) {
    *lrank = rank, *lsize = -1;
    if (w->boot) {
        MPI_Comm node;
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) ==
            MPI_SUCCESS) {
            MPI_Comm_rank(node, lrank);
            MPI_Comm_size(node, lsize);
            MPI_Comm_free(&node);
        }
        return;
    }
    const char *v = getenv("GV_LOCAL_RANK");
    if (!v || !*v) v = getenv("LOCAL_RANK");
    if (v && *v) *lrank = atoi(v);
}

static gv_status gv_nccl_new(gv_comm **out, gv_nccl_world *w, int owns, ncclComm_t comm, int rank, int size,
                             const int *members) {
    gv_nccl_ctx *x = calloc(1, sizeof *x);
    if (!x) return gv_fail(GV_ERR_NOMEM, "nccl: out of memory");
    x->comm = comm, x->w = w, x->owns_world = owns;
    gv_status st = gv_comm_new(out, &gv_nccl_iface, x, rank, size, members);
    if (st != GV_OK) free(x);
    return st;
}

gv_status gv_comm_nccl_init(gv_comm **out, const gv_comm_nccl_opts *o) {
    *out = NULL;
    gv_nccl_world *w = calloc(1, sizeof *w);
    if (!w) return gv_fail(GV_ERR_NOMEM, "nccl: out of memory");
    int rank = 0, size = 1;
    gv_status st = GV_OK;
    if (gv_launch_is_rank()) {
        st = gv_comm_mpi_init(&w->boot);
        if (st == GV_OK) rank = gv_comm_rank(w->boot), size = gv_comm_size(w->boot);
    } else if (o->rendezvous_dir || o->size > 1) {
        rank = o->rank, size = o->size;
        w->dir = o->rendezvous_dir ? strdup(o->rendezvous_dir) : NULL;
        w->rdv = (gv_rendezvous){w->dir, rank, size, o->timeout_s};
        st = gv_rendezvous_check(&w->rdv);
    } else if (o->rank > 0) {
        st = gv_fail(GV_ERR_INVALID,
                     "nccl: rank %d without a world size (set GV_WORLD_SIZE and GV_RENDEZVOUS_DIR)", o->rank);
    }
    int ndev = 0, lrank = 0, lsize = -1;
    if (st == GV_OK) {
        cudaError_t e = cudaGetDeviceCount(&ndev);
        if (e != cudaSuccess || ndev < 1)
            st = gv_fail(GV_ERR_BACKEND, "nccl: no CUDA device (%s)",
                         e != cudaSuccess ? cudaGetErrorString(e) : "0 GPUs");
    }
    if (st == GV_OK) {
        gv_nccl_local(w, rank, &lrank, &lsize);
        w->device = o->device >= 0 ? o->device : lrank;
        if (o->device < 0 && lsize > ndev)
            st = gv_fail(GV_ERR_UNSUPPORTED,
                         "nccl: %d ranks on this host share %d GPU%s; NCCL needs a GPU per rank (use the mpi "
                         "communicator: --comm mpi)",
                         lsize, ndev, ndev == 1 ? "" : "s");
        else if (w->device >= ndev)
            st = gv_fail(GV_ERR_INVALID, "nccl: rank %d wants GPU %d of %d", rank, w->device, ndev);
    }
    if (st == GV_OK) {
        cudaError_t e = cudaSetDevice(w->device);
        if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&w->done, cudaEventDisableTiming);
        if (e != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "nccl: GPU %d: %s", w->device, cudaGetErrorString(e));
    }
    ncclUniqueId id;
    ncclComm_t comm = NULL;
    if (st == GV_OK) st = gv_nccl_share_id(w, NULL, size, rank, &id);
    if (st == GV_OK) {
        ncclResult_t rc = ncclCommInitRank(&comm, size, id, rank);
        /* joined or failed, every rank has read the id by now: the file must not outlive the job */
        gv_nccl_unpublish(w, NULL, size, rank);
        if (rc != ncclSuccess)
            st = gv_fail(GV_ERR_COMM, "nccl init of rank %d of %d on GPU %d: %s: %s", rank, size, w->device,
                         ncclGetErrorString(rc), ncclGetLastError(NULL));
    }
    if (st == GV_OK) st = gv_nccl_new(out, w, 1, comm, rank, size, NULL);
    if (st != GV_OK) {
        if (comm) ncclCommDestroy(comm);
        gv_nccl_world_free(w);
        return st;
    }
    st = gv_nccl_scratch(*out, 64);
    if (st != GV_OK) {
        gv_comm_free(*out);
        *out = NULL;
    }
    return st;
}

static gv_status gv_nccl_group(gv_comm *world, const int *ranks, int n, gv_comm **out) {
    gv_nccl_world *w = gv_nx(world)->w;
    int me = -1;
    for (int i = 0; i < n; i++)
        if (ranks[i] == world->rank) me = i;
    ncclUniqueId id;
    GV_TRY(gv_nccl_share_id(w, ranks, n, me, &id));
    ncclComm_t comm = NULL;
    ncclResult_t rc = ncclCommInitRank(&comm, n, id, me);
    gv_nccl_unpublish(w, ranks, n, me);
    if (rc != ncclSuccess) {
        char desc[96];
        return gv_fail(GV_ERR_COMM, "nccl group of %d ranks (first %d) in world %s: %s: %s", n, ranks[0],
                       gv_comm_describe(world, desc, sizeof desc), ncclGetErrorString(rc),
                       ncclGetLastError(NULL));
    }
    gv_status st = gv_nccl_new(out, w, 0, comm, me, n, ranks);
    if (st != GV_OK) ncclCommDestroy(comm);
    return st;
}

/* ---- collectives ------------------------------------------------------------------------------------- */

static gv_status gv_nccl_allreduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                   gv_comm_op op) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_NCCL(c, "allreduce", count, dt,
            ncclAllReduce(send, recv, count, gv_nccl_dtype(dt), gv_nccl_op(op), x->comm, x->w->stream));
    return gv_nccl_finish(c, "allreduce", count, dt);
}

/* NCCL's in-place forms are the front end's: recv = send + rank * recvcount, send = recv + rank * sendcount.
 */
static gv_status gv_nccl_reduce_scatter(gv_comm *c, const void *send, void *recv, size_t recvcount,
                                        gv_comm_dtype dt, gv_comm_op op) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_NCCL(
        c, "reduce_scatter", recvcount, dt,
        ncclReduceScatter(send, recv, recvcount, gv_nccl_dtype(dt), gv_nccl_op(op), x->comm, x->w->stream));
    return gv_nccl_finish(c, "reduce_scatter", recvcount, dt);
}

static gv_status gv_nccl_allgather(gv_comm *c, const void *send, void *recv, size_t sendcount,
                                   gv_comm_dtype dt) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_NCCL(c, "allgather", sendcount, dt,
            ncclAllGather(send, recv, sendcount, gv_nccl_dtype(dt), x->comm, x->w->stream));
    return gv_nccl_finish(c, "allgather", sendcount, dt);
}

static gv_status gv_nccl_alltoall(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt) {
    gv_nccl_ctx *x = gv_nx(c);
    size_t blk = count * gv_comm_dtype_size(dt), all = blk * (size_t)c->size;
    if (send == recv) { /* in place: send from a copy */
        GV_TRY(gv_nccl_scratch(c, 64 + all));
        char *copy = (char *)x->w->scratch + 64;
        GV_CUDA(c, "alltoall copy", cudaMemcpyAsync(copy, send, all, cudaMemcpyDeviceToDevice, x->w->stream));
        send = copy;
    }
    GV_NCCL(c, "alltoall", count, dt, ncclGroupStart());
    for (int p = 0; p < c->size; p++) {
        ncclResult_t r1 = ncclSend((const char *)send + (size_t)p * blk, count, gv_nccl_dtype(dt), p, x->comm,
                                   x->w->stream);
        ncclResult_t r2 =
            ncclRecv((char *)recv + (size_t)p * blk, count, gv_nccl_dtype(dt), p, x->comm, x->w->stream);
        if (r1 != ncclSuccess || r2 != ncclSuccess) {
            ncclGroupEnd();
            return gv_nccl_fail(c, r1 != ncclSuccess ? r1 : r2, "alltoall", count, dt);
        }
    }
    GV_NCCL(c, "alltoall", count, dt, ncclGroupEnd());
    return gv_nccl_finish(c, "alltoall", count, dt);
}

static gv_status gv_nccl_broadcast(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_NCCL(c, "broadcast", count, dt,
            ncclBroadcast(buf, buf, count, gv_nccl_dtype(dt), root, x->comm, x->w->stream));
    return gv_nccl_finish(c, "broadcast", count, dt);
}

/* Message headers (synchronous mode): scratch[0..16) outgoing, [16..32) incoming. */
typedef struct {
    int64_t tag, count;
} gv_nccl_hdr;

static gv_status gv_nccl_headers(gv_comm *c, const char *what, int dst, int64_t stag, int64_t scount, int src,
                                 int64_t rtag, int64_t rcount, gv_comm_dtype dt) {
    gv_nccl_ctx *x = gv_nx(c);
    char *s = x->w->scratch, *r = s + 16;
    gv_nccl_hdr out = {stag, scount}, in = {-1, -1};
    if (dst >= 0) GV_CUDA(c, what, cudaMemcpyAsync(s, &out, 16, cudaMemcpyHostToDevice, x->w->stream));
    GV_NCCL(c, what, (size_t)scount, dt, ncclGroupStart());
    ncclResult_t r1 = dst >= 0 ? ncclSend(s, 16, ncclUint8, dst, x->comm, x->w->stream) : ncclSuccess;
    ncclResult_t r2 = src >= 0 ? ncclRecv(r, 16, ncclUint8, src, x->comm, x->w->stream) : ncclSuccess;
    ncclResult_t r3 = ncclGroupEnd();
    if (r1 != ncclSuccess || r2 != ncclSuccess || (r3 != ncclSuccess && r3 != ncclInProgress))
        return gv_nccl_fail(c,
                            r1 != ncclSuccess   ? r1
                            : r2 != ncclSuccess ? r2
                                                : r3,
                            what, (size_t)rcount, dt);
    if (src >= 0) GV_CUDA(c, what, cudaMemcpyAsync(&in, r, 16, cudaMemcpyDeviceToHost, x->w->stream));
    GV_CUDA(c, what, cudaStreamSynchronize(x->w->stream));
    if (src >= 0 && (in.tag != rtag || in.count != rcount)) {
        char desc[96];
        return gv_fail(GV_ERR_COMM,
                       "nccl %s (count %lld %s) on group %s: the message from rank %d has tag %lld and %lld "
                       "elements, expected tag %lld",
                       what, (long long)rcount, gv_comm_dtype_name(dt),
                       gv_comm_describe(c, desc, sizeof desc), src, (long long)in.tag, (long long)in.count,
                       (long long)rtag);
    }
    return GV_OK;
}

static gv_status gv_nccl_sendrecv(gv_comm *c, const void *send, size_t sendcount, int dst, void *recv,
                                  size_t recvcount, int src, gv_comm_dtype dt, int tag) {
    gv_nccl_ctx *x = gv_nx(c);
    if (!x->w->async)
        GV_TRY(
            gv_nccl_headers(c, "sendrecv", dst, tag, (int64_t)sendcount, src, tag, (int64_t)recvcount, dt));
    GV_NCCL(c, "sendrecv", recvcount, dt, ncclGroupStart());
    ncclResult_t r1 =
        sendcount ? ncclSend(send, sendcount, gv_nccl_dtype(dt), dst, x->comm, x->w->stream) : ncclSuccess;
    ncclResult_t r2 =
        recvcount ? ncclRecv(recv, recvcount, gv_nccl_dtype(dt), src, x->comm, x->w->stream) : ncclSuccess;
    ncclResult_t r3 = ncclGroupEnd();
    if (r1 != ncclSuccess || r2 != ncclSuccess || (r3 != ncclSuccess && r3 != ncclInProgress))
        return gv_nccl_fail(c,
                            r1 != ncclSuccess   ? r1
                            : r2 != ncclSuccess ? r2
                                                : r3,
                            "sendrecv", recvcount, dt);
    return gv_nccl_finish(c, "sendrecv", recvcount, dt);
}

static gv_status gv_nccl_send(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer,
                              int tag) {
    gv_nccl_ctx *x = gv_nx(c);
    if (!x->w->async) GV_TRY(gv_nccl_headers(c, "send", peer, tag, (int64_t)count, -1, 0, 0, dt));
    GV_NCCL(c, "send", count, dt, ncclSend(buf, count, gv_nccl_dtype(dt), peer, x->comm, x->w->stream));
    return gv_nccl_finish(c, "send", count, dt);
}

static gv_status gv_nccl_recv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag) {
    gv_nccl_ctx *x = gv_nx(c);
    if (!x->w->async) GV_TRY(gv_nccl_headers(c, "recv", -1, 0, 0, peer, tag, (int64_t)count, dt));
    GV_NCCL(c, "recv", count, dt, ncclRecv(buf, count, gv_nccl_dtype(dt), peer, x->comm, x->w->stream));
    return gv_nccl_finish(c, "recv", count, dt);
}

static gv_status gv_nccl_barrier(gv_comm *c) {
    gv_nccl_ctx *x = gv_nx(c);
    int32_t *word = (int32_t *)((char *)x->w->scratch + 32);
    GV_NCCL(c, "barrier", 1, GV_COMM_I32,
            ncclAllReduce(word, word, 1, ncclInt32, ncclSum, x->comm, x->w->stream));
    GV_CUDA(c, "barrier", cudaStreamSynchronize(x->w->stream)); /* a barrier waits, also in async mode */
    return GV_OK;
}

/* ---- overlap ----------------------------------------------------------------------------------------- */

static gv_status gv_nccl_set_async(gv_comm *c, int on) {
    gv_nccl_world *w = gv_nx(c)->w;
    if (!on && w->async) GV_CUDA(c, "set_async", cudaStreamSynchronize(w->stream));
    w->async = on != 0;
    return GV_OK;
}

static gv_status gv_nccl_wait_event(gv_comm *c, void *ev) {
    if (!ev) return GV_OK;
    GV_CUDA(c, "wait_event", cudaStreamWaitEvent(gv_nx(c)->w->stream, (cudaEvent_t)ev, 0));
    return GV_OK;
}

static gv_status gv_nccl_record(gv_comm *c, void **ev) {
    gv_nccl_world *w = gv_nx(c)->w;
    GV_CUDA(c, "record", cudaEventRecord(w->done, w->stream));
    *ev = w->done;
    return GV_OK;
}

/* ---- nonblocking collectives ------------------------------------------------------------------------ */

/* A request: the event recorded on the comm stream after the call's operations. */
typedef struct {
    cudaEvent_t ev;
    const char *what;
    size_t count;
    gv_comm_dtype dt;
} gv_nccl_req;

/* Before a nonblocking call: the comm stream waits for the caller's event (its data is ready). */
static gv_status gv_nccl_istart(gv_comm *c, const char *what, void *ready) {
    if (ready) GV_CUDA(c, what, cudaStreamWaitEvent(gv_nx(c)->w->stream, (cudaEvent_t)ready, 0));
    return GV_OK;
}

/* After it: an event from the world's stack (or a new one) recorded on `stream`. */
static gv_status gv_nccl_iend_on(gv_comm *c, cudaStream_t stream, const char *what, size_t count,
                                 gv_comm_dtype dt, void **req) {
    gv_nccl_world *w = gv_nx(c)->w;
    gv_nccl_req *q = calloc(1, sizeof *q);
    if (!q) return gv_fail(GV_ERR_NOMEM, "nccl %s: out of memory for the request", what);
    if (w->nev > 0) {
        q->ev = w->evs[--w->nev];
    } else {
        cudaError_t e = cudaEventCreateWithFlags(&q->ev, cudaEventDisableTiming);
        if (e != cudaSuccess) {
            free(q);
            return gv_cuda_fail(c, e, what);
        }
    }
    cudaError_t e = cudaEventRecord(q->ev, stream);
    if (e != cudaSuccess) {
        cudaEventDestroy(q->ev);
        free(q);
        return gv_cuda_fail(c, e, what);
    }
    q->what = what, q->count = count, q->dt = dt;
    *req = q;
    return GV_OK;
}

static gv_status gv_nccl_iend(gv_comm *c, const char *what, size_t count, gv_comm_dtype dt, void **req) {
    return gv_nccl_iend_on(c, gv_nx(c)->w->stream, what, count, dt, req);
}

/* Nonblocking messages run on the communicator's own stream: a receive posted early waits there for its
 * sender without holding back the world's comm stream (the collectives); one communicator per direction
 * (gv/comm.h) keeps sends and receives off each other's way. No header: nothing here waits on the host. */
static gv_status gv_nccl_ip2p(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int recv,
                              void *ready, void **req) {
    gv_nccl_ctx *x = gv_nx(c);
    const char *what = recv ? "irecv" : "isend";
    if (peer == c->rank) { /* the send and the receive would queue on one stream, the first waiting forever */
        char desc[96];
        return gv_fail(
            GV_ERR_UNSUPPORTED,
            "nccl %s (count %zu %s) on group %s: a message to self is not supported (use gv_comm_sendrecv)",
            what, count, gv_comm_dtype_name(dt), gv_comm_describe(c, desc, sizeof desc));
    }
    if (!x->p2p) GV_CUDA(c, what, cudaStreamCreateWithFlags(&x->p2p, cudaStreamNonBlocking));
    if (ready) GV_CUDA(c, what, cudaStreamWaitEvent(x->p2p, (cudaEvent_t)ready, 0));
    if (recv)
        GV_NCCL(c, what, count, dt, ncclRecv(buf, count, gv_nccl_dtype(dt), peer, x->comm, x->p2p));
    else
        GV_NCCL(c, what, count, dt, ncclSend(buf, count, gv_nccl_dtype(dt), peer, x->comm, x->p2p));
    return gv_nccl_iend_on(c, x->p2p, what, count, dt, req);
}

static gv_status gv_nccl_isend(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                               void *ready, void **req) {
    (void)tag;
    return gv_nccl_ip2p(c, (void *)buf, count, dt, peer, 0, ready, req);
}

static gv_status gv_nccl_irecv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                               void *ready, void **req) {
    (void)tag;
    return gv_nccl_ip2p(c, buf, count, dt, peer, 1, ready, req);
}

static gv_status gv_nccl_iallreduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                    gv_comm_op op, void *ready, void **req) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_TRY(gv_nccl_istart(c, "iallreduce", ready));
    GV_NCCL(c, "iallreduce", count, dt,
            ncclAllReduce(send, recv, count, gv_nccl_dtype(dt), gv_nccl_op(op), x->comm, x->w->stream));
    return gv_nccl_iend(c, "iallreduce", count, dt, req);
}

static gv_status gv_nccl_ireduce_scatter(gv_comm *c, const void *send, void *recv, size_t recvcount,
                                         gv_comm_dtype dt, gv_comm_op op, void *ready, void **req) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_TRY(gv_nccl_istart(c, "ireduce_scatter", ready));
    GV_NCCL(
        c, "ireduce_scatter", recvcount, dt,
        ncclReduceScatter(send, recv, recvcount, gv_nccl_dtype(dt), gv_nccl_op(op), x->comm, x->w->stream));
    return gv_nccl_iend(c, "ireduce_scatter", recvcount, dt, req);
}

static gv_status gv_nccl_iallgather(gv_comm *c, const void *send, void *recv, size_t sendcount,
                                    gv_comm_dtype dt, void *ready, void **req) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_TRY(gv_nccl_istart(c, "iallgather", ready));
    GV_NCCL(c, "iallgather", sendcount, dt,
            ncclAllGather(send, recv, sendcount, gv_nccl_dtype(dt), x->comm, x->w->stream));
    return gv_nccl_iend(c, "iallgather", sendcount, dt, req);
}

static gv_status gv_nccl_ireduce(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                                 gv_comm_op op, int root, void *ready, void **req) {
    gv_nccl_ctx *x = gv_nx(c);
    GV_TRY(gv_nccl_istart(c, "ireduce", ready));
    GV_NCCL(c, "ireduce", count, dt,
            ncclReduce(send, c->rank == root ? recv : NULL, count, gv_nccl_dtype(dt), gv_nccl_op(op), root,
                       x->comm, x->w->stream));
    return gv_nccl_iend(c, "ireduce", count, dt, req);
}

/* No host wait: the event goes back on the stack (the caller's stream waits for it before the next
 * nonblocking call can record it again) and surfaces NCCL's asynchronous errors. */
static gv_status gv_nccl_req_wait(gv_comm *c, void *req, void **done_event) {
    gv_nccl_ctx *x = gv_nx(c);
    gv_nccl_world *w = x->w;
    gv_nccl_req *q = req;
    gv_status st = GV_OK;
    ncclResult_t ae = ncclSuccess;
    ncclCommGetAsyncError(x->comm, &ae);
    if (ae != ncclSuccess) st = gv_nccl_fail(c, ae, q->what, q->count, q->dt);
    if (w->nev == w->capev) {
        int cap = w->capev ? 2 * w->capev : 8;
        cudaEvent_t *e = realloc(w->evs, (size_t)cap * sizeof *e);
        if (e) w->evs = e, w->capev = cap;
    }
    *done_event = q->ev;
    if (w->nev < w->capev) {
        w->evs[w->nev++] = q->ev;
    } else { /* out of host memory for the stack: complete here, then release it */
        cudaError_t e = cudaEventSynchronize(q->ev);
        if (e != cudaSuccess && st == GV_OK) st = gv_cuda_fail(c, e, q->what);
        cudaEventDestroy(q->ev);
        *done_event = NULL;
    }
    free(q);
    return st;
}

static gv_status gv_nccl_event_sync(gv_comm *c, void *ev) {
    GV_CUDA(c, "req_wait", cudaEventSynchronize((cudaEvent_t)ev));
    return GV_OK;
}

static int gv_nccl_device(const gv_comm *c) {
    return gv_nx(c)->w->device;
}

static const struct gv_comm_i gv_nccl_iface = {
    .name = "nccl",
    .device_mem = 1,
    .has_bf16 = 1,
    .free = gv_nccl_free,
    .group = gv_nccl_group,
    .allreduce = gv_nccl_allreduce,
    .reduce_scatter = gv_nccl_reduce_scatter,
    .allgather = gv_nccl_allgather,
    .alltoall = gv_nccl_alltoall,
    .broadcast = gv_nccl_broadcast,
    .send = gv_nccl_send,
    .recv = gv_nccl_recv,
    .sendrecv = gv_nccl_sendrecv,
    .barrier = gv_nccl_barrier,
    .set_async = gv_nccl_set_async,
    .wait_event = gv_nccl_wait_event,
    .record = gv_nccl_record,
    .device = gv_nccl_device,
    .iallreduce = gv_nccl_iallreduce,
    .ireduce_scatter = gv_nccl_ireduce_scatter,
    .iallgather = gv_nccl_iallgather,
    .ireduce = gv_nccl_ireduce,
    .isend = gv_nccl_isend,
    .irecv = gv_nccl_irecv,
    .req_wait = gv_nccl_req_wait,
    .event_sync = gv_nccl_event_sync,
};

static int gv_env_int(const char *const *names, int fallback) {
    for (int i = 0; names[i]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return fallback;
}

int gv_comm_nccl_auto_ok(void) {
    if (!gv_launch_is_rank()) return 0;
    static const char *const world[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS", NULL};
    static const char *const local[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS",
                                        "SLURM_NTASKS_PER_NODE", NULL};
    int n = gv_env_int(world, 0), ln = gv_env_int(local, -1), ndev = 0;
    if (n < 2 || ln < 1) return 0; /* one rank, or the ranks per host unknown: mpi */
    if (cudaGetDeviceCount(&ndev) != cudaSuccess) return 0;
    return ln <= ndev;
}

int gv_comm_nccl_built(void) {
    return 1;
}

#else /* built without NCCL */

gv_status gv_comm_nccl_init(gv_comm **out, const gv_comm_nccl_opts *o) {
    (void)o;
    *out = NULL;
    return gv_fail(GV_ERR_UNSUPPORTED,
                   "comm 'nccl': not built (configure with -DGV_CUDA=ON where NCCL is installed)");
}

int gv_comm_nccl_auto_ok(void) {
    return 0;
}

int gv_comm_nccl_built(void) {
    return 0;
}
#endif
