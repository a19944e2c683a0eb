/* Communicators: collectives and point-to-point messages between ranks, behind one opaque handle (NCCL-like
 * semantics, status codes and last-error text). A backend is chosen at run time by name:
 *   "local"  one rank; collectives are copies, send/recv to self go through a mailbox.
 *   "mpi"    host buffers through MPI (MPI_Init_thread in gv_comm_init_world, MPI_Finalize in gv_comm_free).
 *   "nccl"   device buffers through NCCL, one GPU per rank (built with GV_CUDA=ON and NCCL; see
 *            gv_comm_init_nccl for the bootstrap).
 *
 * Conventions for every call:
 *  - Buffers are host or device (CUDA) memory, whatever the backend: each backend works on one kind of
 *    memory (mpi and local: host; nccl: device) and the front end stages buffers of the other kind through
 *    a scratch buffer of the right kind (a copy each way, after a cudaDeviceSynchronize: the caller still
 *    syncs its backend first, which may defer work). Backends without a bf16 type (mpi, local) get bf16
 *    buffers converted to f32 (reduced in f32, rounded back to nearest even). Counts are elements of the
 *    given dtype, not bytes.
 *  - Collectives are called by every rank of the communicator, in the same order, with the same count, dtype,
 *    op and root. Calls on one world and its groups must be serialised by the caller (one thread at a time;
 *    MPI is initialised with MPI_THREAD_SERIALIZED).
 *  - In place: allreduce with send == recv; reduce_scatter with recv == send + rank * recvcount;
 *    allgather with send == recv + rank * sendcount; alltoall with send == recv. Any other overlap is
 *    an error.
 *  - Errors come back as statuses (MPI errors are set to return, never to abort) with a message such as
 *    "mpi allreduce (count 1024) on group [0,1]: MPI_ERR_TRUNCATE: message truncated".
 *  - A rank that cannot go on must call gv_comm_abort so that no other rank hangs in a collective. */
#ifndef GV_COMM_H
#define GV_COMM_H
#include <stddef.h>
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct gv_comm gv_comm;

typedef enum {
    GV_COMM_F32 = 0,
    GV_COMM_F64 = 1,
    GV_COMM_I32 = 2,
    GV_COMM_I64 = 3,
    GV_COMM_U8 = 4,
    GV_COMM_BF16 = 5 /* bfloat16 bits (uint16) */
} gv_comm_dtype;
typedef enum { GV_COMM_SUM = 0, GV_COMM_MAX = 1, GV_COMM_MIN = 2 } gv_comm_op;

#define GV_COMM_TAG_MAX 32767 /* user tags of send/recv are in [0, GV_COMM_TAG_MAX] */

size_t gv_comm_dtype_size(gv_comm_dtype dt); /* 0 for an unknown dtype */
const char *gv_comm_dtype_name(gv_comm_dtype dt);
const char *gv_comm_op_name(gv_comm_op op);

/* The world communicator of this process. kind: "local", "mpi", "nccl", "auto", or NULL = $GV_COMM if set,
 * else "mpi" when the process is a rank launched by mpirun or srun (see gv_launch_is_rank), else "local".
 * "nccl" is gv_comm_init_nccl with the options from the environment (gv_comm_nccl_opts_from_env). "auto" is
 * "nccl" when it is built, the process is one of several ranks and every rank of its host has a GPU of its
 * own (NCCL refuses two ranks on one GPU), else the NULL choice.
 * Under MPI, one world per process: MPI cannot be initialised again after gv_comm_free finalised it. If the
 * caller initialised MPI itself, gv_comm_init_world uses it and gv_comm_free leaves it initialised. */
gv_status gv_comm_init_world(gv_comm **out, const char *kind);
/* Frees a world with all the groups of its pool (and finalises MPI if gv_comm_init_world initialised it).
 * On a group this does nothing: groups belong to their world's pool. NULL is allowed. */
void gv_comm_free(gv_comm *c);

/* NCCL world bootstrap. The ncclUniqueId of the world (and of every group) is made by the first rank and
 * sent to the others through MPI when the process is a rank of an MPI job (gv_launch_is_rank), else
 * through files in `rendezvous_dir` (shared by all ranks: rank 0 writes each id atomically, the others wait
 * for it up to timeout_s). */
typedef struct {
    const char *rendezvous_dir; /* $GV_RENDEZVOUS_DIR; a fresh directory per job (stale ids are refused) */
    int rank, size;             /* $GV_RANK, $GV_WORLD_SIZE: this process's rank without MPI */
    int device;                 /* CUDA ordinal; -1 ($GV_DEVICE unset) = local rank on the host */
    double timeout_s;           /* $GV_RENDEZVOUS_TIMEOUT, default 300 */
} gv_comm_nccl_opts;
/* Fills *o from the environment (the defaults above where unset; rank -1 and size 0 when unset). */
void gv_comm_nccl_opts_from_env(gv_comm_nccl_opts *o);
gv_status gv_comm_init_nccl(gv_comm **out, const gv_comm_nccl_opts *o);
/* 1 when the nccl backend is compiled in. */
int gv_comm_nccl_built(void);

const char *gv_comm_kind(const gv_comm *c); /* "local", "mpi" or "nccl" */
/* CUDA device the communicator's buffers live on (nccl), -1 for host communicators. */
int gv_comm_device(const gv_comm *c);
int gv_comm_rank(const gv_comm *c);
int gv_comm_size(const gv_comm *c);
/* World rank of the communicator's rank r (r itself on a world). */
int gv_comm_world_rank(const gv_comm *c, int r);
int gv_comm_is_world(const gv_comm *c);

/* Sub-communicators, pooled by rank set. `ranks` are n distinct ranks of c (world ranks when c is the world;
 * on a group they are mapped to world ranks, so groups can be carved out of groups); the new communicator's
 * rank i is c's rank ranks[i], so the order matters ([0,1] and [1,0] are different groups). Returns the
 * cached group for that exact ordered set of world ranks, creating it the first time; all of c in order
 * returns c itself, the whole world in order returns the world. A rank of c that is not in `ranks` gets
 * *out = NULL and GV_OK without communicating.
 *
 * Calling rule (as for MPI_Comm_create_group, which the mpi backend uses on the world's group): creating a
 * group is collective over its members only. The simple safe rule is that every rank of c calls
 * gv_comm_group with the same arguments in the same order; non-members return at once, and repeated calls
 * for an existing set are local look-ups. Calling only on members is also correct as long as any two ranks
 * create the groups they both belong to in the same order. Each distinct set makes one communicator, kept
 * in the world's pool and freed with the world. */
gv_status gv_comm_group(gv_comm *c, const int *ranks, int n, gv_comm **out);
/* Number of distinct groups created in the world's pool (the world itself not counted). */
int gv_comm_pool_count(const gv_comm *world);

/* recv[i] = op over ranks of send[i], i < count. */
gv_status gv_comm_allreduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                            gv_comm_op op);
/* send[size * recvcount] on every rank; rank r receives block r of the reduction: recv[i] = op over ranks of
 * send[r * recvcount + i]. */
gv_status gv_comm_reduce_scatter(gv_comm *c, const void *sendbuf, void *recvbuf, size_t recvcount,
                                 gv_comm_dtype dt, gv_comm_op op);
/* recv[size * sendcount]: block r = send of rank r. */
gv_status gv_comm_allgather(gv_comm *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                            gv_comm_dtype dt);
/* send and recv hold size blocks of count: block j of send goes to rank j, block j of recv came from rank j
 * (the transpose across ranks). */
gv_status gv_comm_alltoall(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count_per_peer,
                           gv_comm_dtype dt);
/* buf of `root` is copied into buf of every rank. */
gv_status gv_comm_broadcast(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root);
/* Blocking point-to-point messages; peer is a rank of c, tag in [0, GV_COMM_TAG_MAX]; the recv count must
 * equal the message's. A send may block until the matching recv is posted, so exchanges between two ranks
 * use gv_comm_sendrecv. */
gv_status gv_comm_send(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag);
gv_status gv_comm_recv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag);
/* Sends sendbuf to `dst` and receives recvbuf from `src` at once: deadlock-free rings and pipeline
 * shifts. Each receive must match its message's count exactly (a different size is GV_ERR_COMM). */
gv_status gv_comm_sendrecv(gv_comm *c, const void *sendbuf, size_t sendcount, int dst, void *recvbuf,
                           size_t recvcount, int src, gv_comm_dtype dt, int tag);
gv_status gv_comm_barrier(gv_comm *c);

/* Nonblocking collectives: start one, get a request, complete it with gv_comm_req_wait. Same arguments,
 * in-place forms and rules as the blocking calls (every rank of c issues the same collectives in the same
 * order, blocking and nonblocking ones alike); several requests may be outstanding at once and waited in any
 * order. Until the wait, the buffers belong to the communicator (not read, not written by the caller).
 *  - ready: NULL, or an event of the caller's compute stream recorded after the work that writes the send
 *    buffer and the last work that reads the receive buffer (gv_backend_event_record). nccl makes its comm
 *    stream wait for it and enqueues there: the call returns at once, no host wait; host communicators
 *    ignore it (host work is done when it returns).
 *  - mpi: MPI_Iallreduce etc. on host buffers. A call that needs staging (device buffers through mpi, bf16
 *    through mpi or local) runs the blocking form inside and returns a completed request: correct, not
 *    overlapped. local: always complete on return.
 * gv_comm_req_wait completes and frees req. done_event NULL: returns when the result is in place (nccl: a
 * host wait on the comm stream's event). Else *done_event = NULL when the result is in place (host
 * communicators), or an event of the comm stream the caller's stream must wait for before it reads the
 * result (gv_backend_event_wait); the event stays valid until the next nonblocking call on c's world. */
typedef struct gv_comm_req gv_comm_req;
gv_status gv_comm_iallreduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                             gv_comm_op op, void *ready, gv_comm_req **req);
gv_status gv_comm_ireduce_scatter(gv_comm *c, const void *sendbuf, void *recvbuf, size_t recvcount,
                                  gv_comm_dtype dt, gv_comm_op op, void *ready, gv_comm_req **req);
gv_status gv_comm_iallgather(gv_comm *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                             gv_comm_dtype dt, void *ready, gv_comm_req **req);
/* recv[i] on rank `root` = op over ranks of send[i] (ZeRO-2's gradient bucket to the rank owning it); recv is
 * unused (may be NULL) on the other ranks; in place: send == recv. */
gv_status gv_comm_ireduce(gv_comm *c, const void *sendbuf, void *recvbuf, size_t count, gv_comm_dtype dt,
                          gv_comm_op op, int root, void *ready, gv_comm_req **req);
gv_status gv_comm_req_wait(gv_comm_req *req, void **done_event);

/* Nonblocking point-to-point messages: the forms of gv_comm_send / gv_comm_recv that return a request
 * (completed by gv_comm_req_wait as above; until then the buffer belongs to the communicator). Messages
 * between two ranks of c match in the order posted (as MPI's for one tag; NCCL has no tags), so the
 * receiver posts its receives in the order the sender posts its sends, and the counts must be equal.
 * Neither call blocks: receives can be posted long before the message is sent, which is what makes
 * exchanges in both directions deadlock-free without pairing them.
 *  - ready: as for the collectives (isend: after the work that writes buf; irecv: after the last work that
 *    reads buf).
 *  - mpi: MPI_Isend / MPI_Irecv on host buffers (chunked as the blocking calls); the receive's count is
 *    checked at the wait. A device buffer or bf16 goes through a host copy owned by the request: isend
 *    copies (and converts) at the call, irecv copies back at the wait, so it still overlaps.
 *  - nccl: ncclSend / ncclRecv on a stream of c's own (not the world's comm stream: a receive posted early
 *    must not hold back the collectives queued after it), ordered after `ready`; no host wait. Unlike the
 *    blocking calls there is no header, so a count mismatch is not detected: use one communicator per
 *    direction of a pair (a group [a, b] for a -> b, [b, a] for b -> a), so that each stream carries one
 *    direction and a receive never waits behind a send. A host buffer goes through a device copy owned by
 *    the request. A message to self is refused (its send and receive would queue on one stream).
 *  - local: isend to self queues the message (complete at once); irecv completes at the wait, which fails
 *    if no such message was sent by then. */
gv_status gv_comm_isend(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                        void *ready, gv_comm_req **req);
gv_status gv_comm_irecv(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag, void *ready,
                        gv_comm_req **req);

/* Overlap with compute (device communicators; on host ones every call completes before it returns and
 * these succeed without effect). Async is a property of c's world, whose groups share one comm stream:
 * while it is on, collectives and messages (device buffers only: a host buffer is an error) are enqueued on
 * that stream and return at once. The caller hands its data
 * over with gv_comm_wait_event (a cudaEvent_t recorded on its compute stream after the producing work: the
 * comm stream waits for it) and takes results back with gv_comm_record (an event of c, recorded after what
 * was enqueued; the caller's stream waits on it with cudaStreamWaitEvent, or the host with
 * cudaEventSynchronize). Turning async off waits for the comm stream. */
gv_status gv_comm_set_async(gv_comm *c, int on);
gv_status gv_comm_wait_event(gv_comm *c, void *cuda_event);
/* *cuda_event = NULL on host communicators (nothing to wait for). The event belongs to c. */
gv_status gv_comm_record(gv_comm *c, void **cuda_event);

/* Takes the whole job down with exit status `code` (1 if code is 0): MPI_Abort on MPI_COMM_WORLD under MPI
 * (whatever communicator c is), exit(code) on the local backend. c may be NULL (before or without a world):
 * aborts MPI if it is initialised, else exits. Never returns. */
_Noreturn void gv_comm_abort(gv_comm *c, int code);

#ifdef __cplusplus
}
#endif
#endif
