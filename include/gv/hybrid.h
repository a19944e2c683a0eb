/* The layer-wise hybrid-parallel runtime: executes any valid plan — per-layer tensor / sequence parallelism
 * and ZeRO stage, a separate strategy for the vocab layers, pipeline stages (uneven allowed) under GPipe or
 * 1F1B — on this rank's stage. The stage is cut into parts (runs of layers with the same strategy, plus the
 * embedding and the head), each a gv_model with its own groups; activations and their gradients are
 * redistributed between parts whose layouts differ and sent between stages. The trainer and checkpoints see
 * one model with global (layout-free) tensors. */
#ifndef GV_HYBRID_H
#define GV_HYBRID_H
#include <stdint.h>
#include "gv/model.h"
#include "gv/plan.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct gv_hybrid gv_hybrid;
struct gv_comm;

/* world: the plan's plan->world ranks (NULL when it is 1). seq: T. The plan must have passed
 * gv_plan_validate; what the runtime cannot run gets the exact reason, prefixed by `where`. */
gv_status gv_hybrid_init(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be, struct gv_comm *world,
                         const gv_plan *plan, int seq, const char *where);
/* Runtime choices that are not the plan's. overlap: 1 on, -1 off, 0 = $GV_OVERLAP (1|on|0|off), else on.
 * With overlap the data-parallel collectives run while compute goes on (see gv_model_dist.no_overlap) and
 * the pipeline messages are nonblocking (gv_hybrid_p2p_stats); off waits for each collective where it is
 * issued and sends the pipeline's messages blocking, with the same results (the A/B switch). */
typedef struct {
    int overlap;
    /* 1: activations and gradients between parts with different layouts, and the messages of pipeline
     * cuts that change layout, go through host F32 blocks (download, redistribution on the host, upload);
     * -1: they stay on the device (backend buffers in the compute dtype, the redistribution's allgather
     * on them, strided device copies), with the same values; 0 = $GV_HOST_REDIST (1|on|0|off), else -1.
     * The A/B switch of the device redistribution; gv_hybrid_p2p_stats says which path ran. */
    int host_redist;
} gv_hybrid_opts;
/* gv_hybrid_init with options (NULL: all defaults). */
gv_status gv_hybrid_init_opts(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be,
                              struct gv_comm *world, const gv_plan *plan, int seq, const char *where,
                              const gv_hybrid_opts *opts);
/* The overlap switch an option value resolves to (0: $GV_OVERLAP); fails on a bad $GV_OVERLAP. */
gv_status gv_hybrid_overlap_resolve(int overlap, int *on);
int gv_hybrid_overlap(const gv_hybrid *h); /* 1 when this runtime overlaps */
/* The host-redistribution switch an option value resolves to (0: $GV_HOST_REDIST); fails on a bad value. */
gv_status gv_hybrid_host_redist_resolve(int host_redist, int *host);
int gv_hybrid_host_redist(const gv_hybrid *h); /* 1 when this runtime redistributes through the host */
/* gv_model_overlap_counts summed over this rank's parts. */
void gv_hybrid_overlap_counts(const gv_hybrid *h, int *buckets, long *early, long *prefetched);
/* What the runtime cannot run although the plan is valid (before launching ranks). */
gv_status gv_hybrid_check(const gv_model_spec *spec, const gv_plan *plan, const char *where);
void gv_hybrid_free(gv_hybrid *h);

/* Forward and backward of one global batch under the plan's schedule, accumulating gradients. tokens and
 * targets: host I32 [M][Bm * T * IW] and [M][Bm * T] (IW = gv_model_spec_input_width), the whole
 * micro-batches (every rank passes all of them; each part takes its rows and positions). *loss: the mean loss
 * over the micro-batches, the same on every rank. */
gv_status gv_hybrid_train_batch(gv_hybrid *h, const int32_t *tokens, const int32_t *targets, float *loss);
/* Forward only (evaluation), same arguments. */
gv_status gv_hybrid_eval_batch(gv_hybrid *h, const int32_t *tokens, const int32_t *targets, float *loss);

gv_status gv_hybrid_zero_grad(gv_hybrid *h);
/* Gradient sums of every part (and of the tied embedding across the first and last stage). */
gv_status gv_hybrid_reduce_grads(gv_hybrid *h);
gv_status gv_hybrid_grad_norm(gv_hybrid *h, double *norm); /* global, the same on every rank */
gv_status gv_hybrid_adamw_step(gv_hybrid *h, const gv_adamw_cfg *cfg, float lr, float grad_scale, int t);
gv_status gv_hybrid_init_weights(gv_hybrid *h, uint64_t seed);

/* This rank's bytes by category (all parts plus the runtime's staging buffers). */
void gv_hybrid_memory(const gv_hybrid *h, gv_memory_report *r);
/* Activation sets this stage allocated and the most micro-batches it held in flight so far. */
void gv_hybrid_inflight(const gv_hybrid *h, int *slots, int *peak);
/* Where a training batch's time went on this rank, mean over the batches so far [ms]: the parts' forward
 * and backward compute, redistribution between parts (device copies and allgathers, or the host path's
 * downloads and uploads), and pipeline messages
 * (including the wait for a neighbour). */
typedef struct {
    double forward_ms, backward_ms, redistribute_ms, p2p_ms;
} gv_hybrid_times;
void gv_hybrid_timing(const gv_hybrid *h, gv_hybrid_times *t);
/* This rank's pipeline messages and redistributions since init (training and evaluation batches). With
 * overlap the messages are nonblocking (gv_comm_isend / irecv): receives posted as soon as their buffer is
 * free, sends waited only before their buffer is written again; without overlap they are blocking. A link
 * whose two sides share a layout sends the part's device tensor in the compute dtype; a link that changes
 * layout sends the sender's block, which the receiver redistributes: device blocks in the compute dtype,
 * or host F32 ones on the host path (gv_hybrid_opts.host_redist), as are the blocking messages. */
typedef struct {
    long nonblocking; /* messages sent or received nonblocking */
    long early;       /* receives that were in flight while a forward or backward ran (posted early) */
    long overlapped;  /* sends that were in flight while a forward or backward ran */
    long device;      /* messages (nonblocking or blocking) of device buffers */
    long host;        /* messages of host F32 blocks (the host path) */
    long blocking;    /* blocking messages (overlap off) */
    /* moves of one channel of an activation or gradient block into or out of a part, or the stage input's
     * gradient into the previous stage's layout (every part boundary and every cut that changes layout):
     * on the device or through host F32 (the host path) */
    long redist_device, redist_host;
} gv_hybrid_p2p_counts;
void gv_hybrid_p2p_stats(const gv_hybrid *h, gv_hybrid_p2p_counts *c);
int gv_hybrid_stage(const gv_hybrid *h);
/* Parts on this rank (for reports and tests). */
int gv_hybrid_num_parts(const gv_hybrid *h);

/* Checkpoint interface: the model's global HF tensors (a tied copy counted once). export_one is collective
 * over the world; the writer (world rank 0) receives every tensor. import_stream: every rank keeps what its
 * parts hold. */
const gv_model_spec *gv_hybrid_spec(const gv_hybrid *h);
int gv_hybrid_hf_count(const gv_hybrid *h);
gv_status gv_hybrid_hf_info(const gv_hybrid *h, int k, const char **name, int *ndim, int64_t shape[4]);
gv_status gv_hybrid_export_one(gv_hybrid *h, int which, int k, float *out);
gv_status gv_hybrid_import_stream(gv_hybrid *h, int which, gv_hf_reader read, void *ctx);
int gv_hybrid_is_writer(const gv_hybrid *h);

#ifdef __cplusplus
}
#endif
#endif
