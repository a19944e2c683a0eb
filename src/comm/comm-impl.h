/* Private: the communicator vtable. Only comm backends and comm.c include this. comm.c validates arguments
 * (counts, ranks, tags, dtypes, buffer overlap) and handles count 0, so backends get checked calls only. */
#ifndef GV_COMM_IMPL_H
#define GV_COMM_IMPL_H
#include "gv/comm.h"

struct gv_comm_i {
    const char *name;
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
};

/* Allocates a communicator shell (members copied, or 0..size-1 when members is NULL). */
gv_status gv_comm_new(gv_comm **out, const struct gv_comm_i *iface, void *context, int rank, int size,
                      const int *members);
/* "[0,1,2,3]" (long sets shortened: "[0,1,2,...,63] (64 ranks)") into buf. */
const char *gv_comm_describe(const gv_comm *c, char *buf, size_t n);

gv_status gv_comm_local_init(gv_comm **out);
gv_status gv_comm_mpi_init(gv_comm **out);
/* MPI_Abort(MPI_COMM_WORLD, code) when MPI is initialised and not finalised; returns otherwise. */
void gv_comm_mpi_abort_world(int code);

#endif
