/* Private: the communicator vtable. Only comm backends and comm.c include this. comm.c validates arguments
 * (counts, ranks, tags, dtypes, buffer overlap) and handles count 0, so backends get checked calls only. */
#ifndef GV_COMM_IMPL_H
#define GV_COMM_IMPL_H
#include "gv/comm.h"

struct gv_comm_i {
    const char *name;
    int device_mem; /* 1: buffers are device memory (nccl); 0: host memory (mpi, local) */
    int has_bf16;   /* 1: GV_COMM_BF16 natively; 0: comm.c converts bf16 buffers to f32 and back */
    /* Frees the backend context of c (a world after its pool, or a group). */
    void (*free)(gv_comm *c);
    /* Creates a group of world ranks[0..n) on a member of it (c->world filled in by comm.c after). */
    gv_status (*group)(gv_comm *world, const int *ranks, int n, gv_comm **out);
    gv_status (*allreduce)(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                           gv_comm_op op);
    gv_status (*reduce_scatter)(gv_comm *c, const void *send, void *recv, size_t recvcount, gv_comm_dtype dt,
                                gv_comm_op op);
    gv_status (*allgather)(gv_comm *c, const void *send, void *recv, size_t sendcount, gv_comm_dtype dt);
    gv_status (*alltoall)(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt);
    gv_status (*broadcast)(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int root);
    gv_status (*send)(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag);
    gv_status (*recv)(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag);
    gv_status (*sendrecv)(gv_comm *c, const void *send, size_t sendcount, int dst, void *recv,
                          size_t recvcount, int src, gv_comm_dtype dt, int tag);
    gv_status (*barrier)(gv_comm *c);
    /* Optional (NULL: host semantics, see gv_comm_set_async). */
    gv_status (*set_async)(gv_comm *c, int on);
    gv_status (*wait_event)(gv_comm *c, void *cuda_event);
    gv_status (*record)(gv_comm *c, void **cuda_event);
    int (*device)(const gv_comm *c);
    /* Optional nonblocking collectives (NULL: comm.c runs the blocking call and completes the request):
     * checked, unstaged buffers of the backend's kind; *req = the backend's request, completed (and freed)
     * by req_wait, which sets *done_event as gv_comm_req_wait (done_event never NULL here). */
    gv_status (*iallreduce)(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                            gv_comm_op op, void *ready, void **req);
    gv_status (*ireduce_scatter)(gv_comm *c, const void *send, void *recv, size_t recvcount, gv_comm_dtype dt,
                                 gv_comm_op op, void *ready, void **req);
    gv_status (*iallgather)(gv_comm *c, const void *send, void *recv, size_t sendcount, gv_comm_dtype dt,
                            void *ready, void **req);
    gv_status (*ireduce)(gv_comm *c, const void *send, void *recv, size_t count, gv_comm_dtype dt,
                         gv_comm_op op, int root, void *ready, void **req);
    /* Optional nonblocking messages (NULL: gv_comm_isend / irecv fail "not supported"), same form. */
    gv_status (*isend)(gv_comm *c, const void *buf, size_t count, gv_comm_dtype dt, int peer, int tag,
                       void *ready, void **req);
    gv_status (*irecv)(gv_comm *c, void *buf, size_t count, gv_comm_dtype dt, int peer, int tag, void *ready,
                       void **req);
    gv_status (*req_wait)(gv_comm *c, void *req, void **done_event);
    /* Waits for an event req_wait handed out (done_event NULL in gv_comm_req_wait). */
    gv_status (*event_sync)(gv_comm *c, void *event);
};

/* A request of the front end: the backend's, or none when the call completed inside (staged, local). */
struct gv_comm_req {
    gv_comm *c;
    void *b;
    /* isend / irecv of a buffer the backend cannot take: the request's own scratch of the backend's memory
     * kind (stage_kind), and for a receive where the message goes at the wait (conv: bf16 sent as f32). */
    void *stage;
    size_t stage_bytes;
    int stage_kind, conv;
    void *dst;
    size_t dst_bytes;
};

typedef struct {
    int n;
    int *ranks; /* world ranks, in group order */
    gv_comm *comm;
} gv_comm_pool_entry;

struct gv_comm {
    const struct gv_comm_i *iface;
    void *context;
    int rank, size;
    int *members;   /* members[r] = world rank of rank r (size entries) */
    gv_comm *world; /* the world this group belongs to; itself for a world */
    /* world only: the pool of groups */
    gv_comm_pool_entry *pool;
    int npool, cappool;
    /* world only: staging scratch of comm.c (host and device), grown on demand, freed with the world */
    void *stage[2];
    size_t nstage[2];
    int async; /* set_async is on (collectives must not be staged) */
    /* world only: scratch of staged isend / irecv requests not in use, by memory kind (a small cache, so
     * that a pipeline's messages do not allocate each time), freed with the world */
    void *p2p_free[2][4];
    size_t p2p_nfree[2][4];
};

/* Allocates a communicator shell (members copied, or 0..size-1 when members is NULL). */
gv_status gv_comm_new(gv_comm **out, const struct gv_comm_i *iface, void *context, int rank, int size,
                      const int *members);
/* "[0,1,2,3]" (long sets shortened: "[0,1,2,...,63] (64 ranks)") into buf. */
const char *gv_comm_describe(const gv_comm *c, char *buf, size_t n);

/* Memory of staged calls (src/comm/comm-stage.c; host-only without GV_HAVE_CUDA). */
typedef enum { GV_MEM_HOST = 0, GV_MEM_DEVICE = 1, GV_MEM_MANAGED = 2 } gv_mem_kind;
/* Kind of the memory at p; never creates a CUDA context (no CUDA in the process: host). */
gv_mem_kind gv_mem_kind_of(const void *p);
gv_status gv_mem_alloc(void **p, size_t bytes, int device);
void gv_mem_free(void *p, int device);
/* bytes from src to dst, each host or device (cudaMemcpy, cudaMemcpyDefault). */
gv_status gv_mem_copy(void *dst, const void *src, size_t bytes);
/* Waits for all work of the device (before staged buffers are read). */
gv_status gv_mem_device_sync(void);

gv_status gv_comm_local_init(gv_comm **out);
gv_status gv_comm_mpi_init(gv_comm **out);
/* MPI_Abort(MPI_COMM_WORLD, code) when MPI is initialised and not finalised; returns otherwise. */
void gv_comm_mpi_abort_world(int code);
/* src/comm/comm-nccl.c (GV_HAVE_NCCL), else a stub that fails "not built". */
gv_status gv_comm_nccl_init(gv_comm **out, const gv_comm_nccl_opts *o);
/* "auto": 1 when nccl is built, this is one of several MPI ranks and each rank of the host has a GPU. */
int gv_comm_nccl_auto_ok(void);

#endif
