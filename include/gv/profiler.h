/* Profiler: measures the hardware (collective and point-to-point bandwidth through gv_comm, the slowdown
 * of compute and communication running at once, matmul throughput through gv_backend) and the model (per
 * layer forward/backward time and memory, from runs of the runtime's own gv_model at two layer counts).
 *
 * Both profiles are collective over the world communicator: every rank calls the same function with the
 * same configuration; results are complete on rank 0 (the writer of the files). Files written by
 * gv_*_profile_save (rank 0 only):
 *   hardware: hardware_profile.json (the project's form, see docs/architecture.md "Profiler") and
 *             Hetu-Galvatron's allreduce_bandwidth_{N}nodes_{G}gpus_per_node.json,
 *             p2p_bandwidth_{N}nodes_{G}gpus_per_node.json, overlap_coefficient.json,
 *             sp_time_{N}nodes_{G}gpus_per_node.json
 *   model:    model_profile.json and Hetu-Galvatron's computation_profiling_{P}_{model}_all.json,
 *             memory_profiling_{P}_{model}_all.json, P = fp32 | bf16 (the backend's compute dtype)
 * Units in the project's files: bytes, milliseconds, GB/s (1e9 bytes/s, as nccl-tests). Units in Galvatron's
 * files are Galvatron's: MB = 2^20 bytes, ms, bandwidth in MB/ms. */
#ifndef GV_PROFILER_H
#define GV_PROFILER_H
#include <stddef.h>
#include <stdint.h>
#include "gv/backend.h"
#include "gv/comm.h"
#include "gv/model.h"
#include "gv/plan.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/* ---- hardware --------------------------------------------------------------------------------------- */

typedef enum {
    GV_COLL_ALLREDUCE = 0,
    GV_COLL_ALLGATHER = 1,
    GV_COLL_REDUCE_SCATTER = 2,
    GV_COLL_ALLTOALL = 3,
    GV_COLL_COUNT = 4
} gv_coll_op;
const char *gv_coll_op_name(gv_coll_op op); /* "allreduce", "allgather", "reduce_scatter", "alltoall" */
/* nccl-tests' bus-bandwidth factor for n ranks: 2(n-1)/n for all-reduce, (n-1)/n for the others. */
double gv_coll_busbw_factor(gv_coll_op op, int n);

typedef struct {
    int warmup, iters;        /* untimed and timed repetitions of every measured operation [1, 5] */
    size_t min_bytes;         /* bandwidth sweep: min_bytes, 2 min_bytes, ... max_bytes [64 KiB] */
    size_t max_bytes;         /* [4 MiB]; also the p2p message and the overlap all-reduce */
    int sp_max_mb;            /* Galvatron's sp_time tables at 1, 2, 4, ... sp_max_mb MiB [128] */
    int matmul_n;             /* matmul throughput and overlap compute: [n,n] x [n,n] [512] */
    double window_ms;         /* matmul and overlap timings: windows of about this long [20] */
    const char *backend_name; /* recorded in the profile ("cpu") */
} gv_hw_prof_config;
void gv_hw_prof_config_defaults(gv_hw_prof_config *c);

/* One collective at one size over all groups of one partition of the world, run at the same time.
 * bytes is nccl-tests' "size": the all-reduce buffer, the all-gather output, the reduce-scatter input,
 * the all-to-all send buffer of one rank. time_ms: per rank the median over iters, then the maximum over
 * the ranks of a group, then the mean over the groups. algbw = bytes / time, busbw = algbw * factor. */
typedef struct {
    gv_coll_op op;
    int group_size, consec, ngroups;
    size_t bytes;
    double time_ms, algbw_gbps, busbw_gbps;
} gv_coll_point;

/* Messages between pipeline neighbours: pp stages of world/pp consecutive ranks; every rank sends
 * `bytes` to the same position of the next stage while receiving from the previous one (all at once). */
typedef struct {
    int pp;
    size_t bytes;
    double time_ms, bw_gbps;
} gv_p2p_point;

/* Galvatron's sequence-parallel latency tables (consecutive groups): an all-reduce of mb MiB and an
 * all-to-all whose per-rank buffer is mb / group_size MiB (the slice of an mb-MiB activation). */
typedef struct {
    int group_size, mb;
    double allreduce_ms, alltoall_ms;
} gv_sp_point;

typedef struct {
    int world, nodes, ranks_per_node; /* nodes = distinct host names */
    char date[32], host[64], comm[16], backend[16];
    gv_hw_prof_config cfg;
    gv_coll_point *coll;
    int ncoll;
    gv_p2p_point *p2p;
    int np2p;
    gv_sp_point *sp;
    int nsp;
    /* Matmul [n,n] x [n,n]^T through gv_matmul_forward, all ranks at once, timed in windows of
     * window_ms: per rank the median window / its matmuls, then the mean over ranks; GFLOP/s per rank =
     * 2 n^3 / that time. */
    int matmul_n;
    double matmul_ms, matmul_gflops;
    /* Overlap: a matmul loop on a second thread (which never calls the communicator) against all-reduces of
     * overlap_bytes over the world on the main thread, both timed in windows of window_ms. comm_delay =
     * all-reduce time with compute running / alone, comp_delay = matmul time with all-reduces running /
     * alone (per-operation times, means over ranks); overlap_coe = max(1, comm_delay, comp_delay) as
     * Galvatron's. */
    size_t overlap_bytes;
    double comm_alone_ms, comm_overlap_ms, comp_alone_ms, comp_overlap_ms;
    double comm_delay, comp_delay, overlap_coe;
} gv_hw_prof;

/* The reason a configuration cannot run on W ranks (GV_ERR_INVALID), without communicating. */
gv_status gv_hw_prof_config_check(const gv_hw_prof_config *c, int W);
/* Collective over world (size a power of two, at least 2). b computes the matmuls. Progress lines at info
 * level on rank 0. */
gv_status gv_hw_prof_run(gv_hw_prof *p, gv_comm *world, gv_backend *b, const gv_hw_prof_config *c);
void gv_hw_prof_free(gv_hw_prof *p);
/* The busbw (GB/s) of op at the largest measured size for (group_size, consec); NaN when not measured. */
double gv_hw_prof_busbw(const gv_hw_prof *p, gv_coll_op op, int group_size, int consec);
/* Writes the project's and Galvatron's hardware files into dir (which must exist); call on rank 0. */
gv_status gv_hw_prof_save(const gv_hw_prof *p, const char *dir);

/* ---- model ------------------------------------------------------------------------------------------ */

/* How a degree t > 1 splits a layer (at t = 1 the modes coincide: one run, GV_SP_NONE):
 *   GV_SP_MEGATRON  Megatron tensor parallelism with sequence parallelism; the vocab layers split too.
 *                   Galvatron's "sequence_parallel = True" profile ("_sp" keys).
 *   GV_SP_NONE      Megatron tensor parallelism without sequence parallelism, runs with the vocab
 *                   layers whole and split (Galvatron's "sequence_parallel = False" profile, no "_sp").
 *   GV_SP_ULYSSES   Ulysses over t ranks (the project's file only; Galvatron costs Ulysses from the tp
 *                   dictionary). */
typedef struct {
    gv_model_spec spec; /* n_layer is ignored: the runs use layers_min and layers_max per layer type */
    const int *seqs;    /* sequence lengths [nseq] */
    int nseq;
    const int *tps; /* degrees t, powers of two dividing the world; must include 1 [ntp] */
    int ntp;
    const gv_sp_mode *sps; /* split modes for t > 1 [nsps] */
    int nsps;
    const int *batches; /* time points: micro-batch sizes of one replica [nbatch] */
    int nbatch;
    int mem_batch; /* memory runs: global batch over the world (a multiple of the world) [8] */
    /* the two layer counts whose difference is one layer's cost [1, 2], per layer type: with several types
     * (T5: encoder, decoder) the runs are layers_min of every type (the base) and, for each type t, the
     * base with layers_max of type t, so each type's cost is a difference of measured runs */
    int layers_min, layers_max;
    int pp_memory;     /* also Galvatron's pipelined memory runs (pp 2, 4; vocab layers per stage) [1] */
    int time_ckpt;     /* also the time points with recompute of every layer (model_profile.json only) [1] */
    int time_step;     /* also a whole training step through the runtime (the fixed per-step cost) [1] */
    int warmup, iters; /* per time point [1, 5] */
    uint64_t seed;
} gv_model_prof_config;
/* Defaults for everything but spec and the lists. */
void gv_model_prof_config_defaults(gv_model_prof_config *c);

#define GV_PROF_RUNS (1 + GV_MAX_LAYER_TYPES) /* the base run, then one per layer type */

/* Forward and backward of one micro-batch of `batch` sequences per replica (the world runs world/tp
 * replicas at once, tp consecutive ranks each). *_ms[r]: median time of run r (maximum over the ranks):
 * r = 0 the base (layers_min of every type), r = 1 + t layers_max of type t (one type: [0] layers_min,
 * [1] layers_max). layer_*[t]: one layer of type t per sample; other_*: the rest (embedding, final norm,
 * head, loss) per sample, clamped at 0 as Galvatron does. */
typedef struct {
    int seq, tp, batch;
    gv_sp_mode sp;
    int vtp;  /* vocab layers split over the tp ranks */
    int ckpt; /* every layer recomputes its activations in backward (not in Galvatron's file) */
    double fwd_ms[GV_PROF_RUNS], bwd_ms[GV_PROF_RUNS];
    double layer_fwd_ms[GV_MAX_LAYER_TYPES], layer_bwd_ms[GV_MAX_LAYER_TYPES], other_fwd_ms, other_bwd_ms;
} gv_time_point;

/* Memory of one configuration (tp consecutive ranks split as `sp` says, DDP over the rest) in every run
 * (as gv_time_point's), as the runtime's arenas report it after one forward and backward, for rank 0
 * and rank world-1. global_batch sequences over world/tp replicas of local_batch. Derived as Galvatron
 * does: model states = parameters + gradients + optimizer; param_mb[t] = per-layer model states / 4 (MB);
 * act_mb[t] = per-layer activations per sample of a replica (MB), per layer type; other_ms_mb = model states
 * outside the layers (MB); other_act_mb = (activations + workspace + comm outside the layers) / (local_batch,
 * or local_batch / tp when the vocab layers are whole), MB. */
typedef struct {
    int seq, tp, ckpt, global_batch, local_batch;
    int pp; /* 1, or a pipelined run (layernum = pp, one layer per stage; mem[0] only, derived fields 0) */
    gv_sp_mode sp;
    int vtp;
    gv_memory_report mem[GV_PROF_RUNS][2]; /* [run (as gv_time_point's)][0 = rank 0, 1 = rank world-1] */
    double param_mb[GV_MAX_LAYER_TYPES], act_mb[GV_MAX_LAYER_TYPES]; /* per layer type */
    double other_ms_mb, other_act_mb;
} gv_mem_point;

typedef struct {
    char model[64], date[32];
    char precision[8], backend[16]; /* Galvatron's mixed_precision name ("fp32", "bf16"), backend name */
    int world, layers_min, layers_max, warmup, iters;
    gv_model_spec spec;
    int n_types;                                /* layer types (gv_model_spec_layer_types) */
    const char *type_names[GV_MAX_LAYER_TYPES]; /* "encoder", "decoder" */
    gv_time_point *time;
    int ntime;
    gv_mem_point *mem;
    int nmem;
    /* The per-step work on the parameters (zero gradients, gradient norm, AdamW) of the layers_max model at
     * tp 1, median over iters, maximum over ranks: opt_ms for opt_params local parameters (0 = not
     * measured). Written as Galvatron-ignored "optimizer_time_per_mparam" (ms per million parameters). */
    double opt_ms, opt_params;
    /* A training step of a DDP plan (layers_min layers, step_batch sequences per rank, one micro-batch)
     * through the runtime, as the trainer runs it: step_ms in all, of which step_reduce_ms the gradient
     * all-reduce and step_opt_ms norm + AdamW (medians, maximum over ranks); step_fixed_ms = step_ms - the
     * gv_model's forward + backward at that point - all-reduce - optimizer, at least 0 (0 = not measured).
     * Written as Galvatron-ignored "step_fixed_ms" (the own cost model adds it once per step). */
    double step_ms, step_reduce_ms, step_opt_ms, step_fixed_ms;
    int step_batch, step_seq; /* measured once, at the first seq */
    /* The pipelined run pp 2 (one layer per stage, tp 1, GPipe, one micro-batch of pipe_batch sequences
     * per stage) timed: the first stage's (embedding + a layer) and the last stage's (a layer + head and
     * loss) forward [0] and backward [1] compute per batch, means over iters (0 = not measured). The own
     * cost model splits the vocab layers' time between the pipeline's ends by them. */
    int pipe_batch;
    double pipe_first_ms[2], pipe_last_ms[2];
} gv_model_prof;

/* The reason a configuration cannot run on W ranks (GV_ERR_INVALID), without communicating. */
gv_status gv_model_prof_config_check(const gv_model_prof_config *c, int W);
/* Collective over world; b is this rank's backend. Every tp must divide the world, the heads, the kv heads,
 * the FFN size and each seq; every seq must be at most spec.max_seq. */
gv_status gv_model_prof_run(gv_model_prof *p, gv_comm *world, gv_backend *b, const gv_model_prof_config *c);
void gv_model_prof_free(gv_model_prof *p);
/* Writes model_profile.json and Galvatron's computation_profiling_* / memory_profiling_* into dir. */
gv_status gv_model_prof_save(const gv_model_prof *p, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
