/* Profiles and the cost model: time and memory of one layer under a strategy, of the vocab layers
 * (embedding + LM head, Galvatron's "other"), and of a whole plan (pipeline step time, memory per stage by
 * category). Two models:
 *   GV_COST_GALVATRON  Hetu-Galvatron HEAD's formulas exactly, quirks included (reference §2, §10);
 *   GV_COST_OWN        the project's model: Ulysses all-to-alls and Megatron-SP collectives fully counted,
 *                      ZeRO-3 gathers every micro-batch, gradient sync where the runtime does it, optimizer
 *                      step and fixed per-step costs, uneven stages, memory per category incl. comm buffers.
 * Units: profile times ms, bandwidth coefficients ms/MB (1/bandwidth, MB = 2^20 bytes), memory MB; layer
 * times are seconds per layer per micro-batch, plan times seconds per step. */
#ifndef GV_COST_H
#define GV_COST_H
#include "gv/plan.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GV_COST_LOGS 11 /* degrees 1, 2, 4, ..., 1024 (index = log2) */

/* Latency table of one collective on one group size: time [ms] at profiled sizes [MB], and the
 * least-squares line ms = m * MB + c used between/after the profiled sizes (Galvatron's curve_fit). */
typedef struct {
    int n;
    double mb[32], ms[32];
    double m, c;
} gv_latency_table;

typedef struct {
    int world; /* the world size the files were read for */
    /* All-reduce: coe[log2 g][consec] = 1 / bus bandwidth [ms/MB]; 0 for g = 1; < 0 not profiled. The full
     * world has only a consecutive entry, used for both flags (Galvatron's "W", "W_0", "W_1"). */
    double coe[GV_COST_LOGS + 1][2];
    double p2p_coe[GV_COST_LOGS + 1]; /* by pp degree; < 0 not profiled */
    double overlap_coe;               /* >= 1 */
    /* sp_time tables by group size: all-gather (= half the measured all-reduce) and all-to-all. */
    gv_latency_table ag[GV_COST_LOGS + 1], a2a[GV_COST_LOGS + 1];
    int have_sp_time;
} gv_hw_profile;

typedef enum { GV_PROFILE_STATIC = 0, GV_PROFILE_BATCH = 1, GV_PROFILE_SEQUENCE = 2 } gv_profile_mode;

/* One layer type's profile (Galvatron's "layertype_{t}" keys). */
typedef struct {
    /* time: per-sample forward ms of one layer, x = samples per rank / tsp; static: m = 0, c = F */
    double fwd_m, fwd_c; /* layer:  ms(x) = fwd_m * x + fwd_c      (per sample: F = ms(x) / x ...) */
    int fwd_linear;      /* 1: batch mode (total ms of x samples = m x + c); 0: per-sample F = fwd_c */
    /* memory [MB]: Galvatron's parameter_size P (model states / 4) and activations per sample by tsp */
    double param_mb;
    double act_mb[GV_COST_LOGS + 1]; /* < 0: not profiled */
    double act_ckpt_mb;
} gv_layer_profile;

/* The layer types plus the vocab layers, at one sequence length. */
typedef struct {
    int seq;
    int n_types; /* layer types profiled (1, or 2 for T5's encoder and decoder layers) */
    gv_layer_profile lt[GV_MAX_LAYER_TYPES];
    double other_m, other_c; /* vocab layers, the form of gv_layer_profile's fwd_m, fwd_c */
    /* vocab layers: [0] pp off, [1] pp on first stage, [2] pp on last stage; by log2 tp */
    double other_ms_mb[3][GV_COST_LOGS + 1], other_act_mb[3][GV_COST_LOGS + 1];
    /* own-model extras, read when present in the computation profile (0 = not profiled):
     * "optimizer_time_per_mparam" ms per million local parameters, "step_fixed_ms" per step */
    double opt_ms_per_mparam, step_fixed_ms;
    /* own model, from the project's model_profile.json when the profile directory has one
     * (gv_own_profile_load): per profiled (degree, split) the lines ms = m x + c (least squares over the
     * profiled batches) of one layer's (per type) and of the vocab layers' forward and backward for a
     * micro-batch of x samples per replica, with the split's own communication inside. [0] = m, [1] = c. */
    struct {
        int tp, ckpt; /* ckpt: every layer recomputes (its backward line includes the recompute) */
        gv_sp_mode sp;
        double lf[GV_MAX_LAYER_TYPES][2], lb[GV_MAX_LAYER_TYPES][2], of[2], ob[2];
    } own_time[16];
    int n_own_time;
    /* own: share of the vocab layers' forward [0] and backward [1] time on a pipeline's first stage (the
     * embedding; the last stage has the head and loss), from model_profile.json's "pipeline_time";
     * have_vocab_split = 0: not profiled, half each */
    double vocab_first[2];
    int have_vocab_split;
} gv_model_profile;

/* Reads allreduce_bandwidth_{N}nodes_{G}gpus_per_node.json, p2p_bandwidth_..., overlap_coefficient.json and
 * sp_time_... from dir (reference §4.1). A missing file or key gives an error naming both. */
gv_status gv_hw_profile_load(gv_hw_profile *hw, const char *dir, int num_nodes, int gpus_per_node);
/* Reads computation_profiling_* and memory_profiling_* files (reference §4.2) for sequence length seq;
 * sequence_parallel picks the "_sp" memory keys. Every "layertype_{t}[_sp]" of the memory file from t = 0
 * on is a layer type (mp->n_types), and the computation file must have its time keys. */
gv_status gv_model_profile_load(gv_model_profile *mp, const char *comp_path, const char *mem_path, int seq,
                                int sequence_parallel, gv_profile_mode time_mode, gv_profile_mode mem_mode);
/* Adds the own model's time lines from the project's model_profile.json (written by `galvatron profile
 * model`) at sequence length seq; a missing file is not an error (the lines stay unset). Its "layer_types"
 * must number mp->n_types (none: one type). */
gv_status gv_own_profile_load(gv_model_profile *mp, const char *path, int seq);
/* Value of a latency table at `mb` (exact profiled size, else the line). */
double gv_latency_at(const gv_latency_table *t, double mb);
/* The own model's reading: piecewise linear between profiled sizes, the last slope beyond them, and below
 * the smallest size the line (where it is positive) capped by that size's time; never negative. (A fit's
 * negative intercept otherwise makes small messages free.) */
double gv_latency_own(const gv_latency_table *t, double mb);

typedef enum { GV_COST_GALVATRON = 0, GV_COST_OWN = 1 } gv_cost_mode;

/* Everything that is fixed for a search besides the profiles. */
typedef struct {
    gv_cost_mode mode;
    int world, hidden, seq;
    int n_layer; /* layers of the model (Galvatron spreads the p2p time over a type's layers) */
    /* layer types in layer order (Galvatron's layernum_list): layers [0, type_layers[0]) are type 0, the
     * next type_layers[1] type 1, ...; n_types 1 (the default): every layer is type 0 */
    int n_types, type_layers[GV_MAX_LAYER_TYPES];
    int mixed_precision;      /* bf16/fp16 */
    int sequence_parallel;    /* Megatron-SP on TP layers */
    int global_memory_buffer; /* Galvatron's Megatron-SP gather buffer */
    int async_grad_reduce;    /* gradients accumulate unsharded over micro-batches (default 1) */
    gv_schedule pipeline;
    double costmodel_coe;  /* Galvatron's debug_costmodel_coe (1) */
    int mem_reserve;       /* Galvatron: keep 20% of a > 20 GB budget for the allocator (1) */
    double context_mb;     /* fixed per-stage memory (Galvatron: pytorch context 1024) */
    int overlap_grad_sync; /* own: DP/ZeRO communication runs concurrently with compute (the runtime's
                            * overlap on a device communicator: nccl's comm stream). 1: a layer's step sync
                            * (DDP/ZeRO-1/2 gradient sums) hides behind its last backward, ZeRO-3's gathers
                            * behind forward and backward, its reduce-scatters behind backward (with the
                            * overlap slowdown); ZeRO-1/2's weight gather after the optimizer stays apart;
                            * a pipeline stage's messages to and from its neighbours (nonblocking in the
                            * runtime, on streams of their own) overlap the stage's compute (the same
                            * slowdown). 0: everything adds up, as on mpi, whose nonblocking collectives and
                            * messages progress only inside MPI calls (default 0) */
    int overlap;           /* own: the runtime's overlap switch (gv_hybrid_opts, default 1): its ZeRO-3 part
                            * of 2+ layers holds a second layer slot (gv_cost_runtime_memory) */
    int host_redist;       /* own: the runtime's redistributions through host F32 (gv_hybrid_opts; default 0:
                            * on the device, its blocks in the compute dtype; gv_cost_runtime_memory) */
    /* own, optional: the model, so that a plan's memory is the runtime's by formula
     * (gv_cost_runtime_memory) instead of the profile's per-layer figures; and the backend whose
     * attention stash size it asks (NULL: the CPU backend's B H T^2 fp32). */
    const gv_model_spec *spec;
    gv_backend *backend;
} gv_cost_opts;
void gv_cost_opts_default(gv_cost_opts *o, gv_cost_mode mode, int world, int hidden, int seq);
/* The model's layer types (o->n_types, o->type_layers, summing to o->n_layer) against the profile's
 * (mp->n_types): an error naming `where` (the memory profile's path) when they differ. */
gv_status gv_cost_check_types(const gv_cost_opts *o, const gv_model_profile *mp, const char *where);
/* Sets n_layer and the layer types of a model (gv_model_spec_layer_types). */
void gv_cost_opts_set_layers(gv_cost_opts *o, const gv_model_spec *spec);
/* The type of layer l (0 .. n_layer - 1) under o. */
int gv_cost_layer_type(const gv_cost_opts *o, int l);

/* Galvatron's strategy of one layer (reference §2.0): tp and sp (Ulysses) are exclusive. zero: 0 DDP,
 * 1 ZeRO-1 (own model only), 2 ZeRO-2, 3 ZeRO-3. */
typedef struct {
    int pp, tp, sp, cp, dp, zero, ckpt;
} gv_strategy;
static inline int gv_strategy_tsp(const gv_strategy *s) {
    return s->tp > s->sp ? s->tp : s->sp;
}
static inline int gv_strategy_sdp(const gv_strategy *s) {
    return s->dp * s->sp * s->cp;
}
/* Galvatron's simple string "pp-tsp[*]-dp[f][-c][-sp]". */
void gv_strategy_str(const gv_strategy *s, char *buf, int n);

typedef struct {
    const gv_hw_profile *hw;
    const gv_model_profile *mp;
    gv_cost_opts o;
} gv_cost_model;

/* Batch geometry of one evaluation. */
typedef struct {
    int global_batch, chunks;
} gv_cost_batch;

/* Time of one layer of type `type` [s per micro-batch]: with the gradient synchronisation of the step's
 * last micro-batch, and without. */
void gv_cost_layer_time(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                        double *with_sync, double *no_sync);

/* Memory [MB] by category, per rank. */
typedef struct {
    double parameters, gradients, optimizer, activations, comm, workspace;
} gv_cost_mem;
static inline double gv_cost_mem_total(const gv_cost_mem *m) {
    return m->parameters + m->gradients + m->optimizer + m->activations + m->comm + m->workspace;
}
/* One layer of type `type` on stage `stage` (in-flight micro-batches depend on it under 1F1B). Own model:
 * `transient` receives what the layer needs only while it runs (recompute working set, ZeRO-3 gathered
 * slot); a stage's peak adds the largest transient of its layers. Galvatron: transient = 0. */
void gv_cost_layer_memory(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                          int stage, gv_cost_mem *m, double *transient);
/* Vocab layers (strategy without ckpt): per-stage time with and without sync [s], memory per stage [MB]
 * (incl. the fixed context memory); arrays of s->pp. */
void gv_cost_other_time(const gv_cost_model *cm, const gv_strategy *s, const gv_cost_batch *b,
                        double *with_sync, double *no_sync);
void gv_cost_other_memory(const gv_cost_model *cm, const gv_strategy *s, const gv_cost_batch *b,
                          gv_cost_mem *per_stage);
/* Galvatron's Megatron-SP global gather buffer [MB] for global_buffer_tp g (0 if not applicable). */
double gv_cost_global_buffer(const gv_cost_model *cm, const gv_cost_batch *b, int pp, int g);
/* Switch cost entering a layer with strategy `to` after one with `from` [s]. Galvatron: its 1e-7-scaled
 * redistribution penalty and tie-break biases (it only steers the DP); own: the real activation
 * redistribution time (forward + backward) per micro-batch. */
double gv_cost_inter(const gv_cost_model *cm, const gv_strategy *from, const gv_strategy *to,
                     const gv_cost_batch *b);
/* Own model: a layer's with_sync time includes its share of the optimizer step (profiled
 * optimizer_time_per_mparam), and the vocab layers' with_sync their share; this is the fixed per-step
 * time [s] (profiled step_fixed_ms; 0 under Galvatron). */
double gv_cost_fixed(const gv_cost_model *cm);

/* Whole-plan evaluation. */
typedef struct {
    int pp;
    double step_s;      /* predicted time of one optimizer step */
    double throughput;  /* samples / s */
    double stage_c[64]; /* per-micro-batch stage time without sync [s] */
    double stage_r[64]; /* same with the step's gradient sync */
    gv_cost_mem mem[64];
    double mem_total[64]; /* incl. Galvatron's global buffer; rounded up as Galvatron does in its mode */
} gv_plan_cost;
/* Pipeline formula on per-stage times (reference §2.3 for Galvatron; own: fill/drain + steady state +
 * exposed sync). */
double gv_cost_pipeline(const gv_cost_model *cm, int pp, int chunks, const double *stage_r,
                        const double *stage_c, double fixed_s);
/* Layers as gv_strategy (pp, dp, cp filled in) of a plan. */
void gv_plan_strategies(const gv_plan *p, gv_strategy *layers, gv_strategy *vocab);
/* Evaluates a plan: step time, throughput, memory per stage by category. global_buffer_tp: Galvatron's
 * buffer group size (0 = none). */
gv_status gv_cost_plan(const gv_cost_model *cm, const gv_plan *p, int global_buffer_tp, gv_plan_cost *out);

/* What the runtime allocates on a rank of `stage` under plan p (bytes by category, as gv_hybrid_memory
 * reports it): model.c's arenas of every part of the stage and hybrid.c's host staging, by the same
 * reservations (parameter table, 64-element views, ZeRO padding to dp x 64 and units, activation sets per
 * micro-batch in flight, backward scratch, Ulysses / Megatron-SP and redistribution / p2p staging).
 * Uses o->seq, o->mixed_precision (2-byte compute dtype) and o->backend. */
gv_status gv_cost_runtime_memory(const gv_cost_opts *o, const gv_model_spec *spec, const gv_plan *p,
                                 int stage, gv_memory_report *out);

/* MB of backward scratch (workspace) and sequence-parallel staging (comm) of a runtime part of strategy st
 * on a stage of stage_ranks ranks, micro-batches of micro_rows sequences: what a stage holds once per part
 * (the search's per-layer transient when the model is given). */
double gv_cost_runtime_scratch(const gv_cost_opts *o, const gv_model_spec *spec, const gv_layer_strategy *st,
                               int stage_ranks, int micro_rows);

/* Profiles of one (cluster, model) pair and the cost model over them, read from a profile directory under
 * Galvatron's file names: allreduce_bandwidth_{N}nodes_{G}gpus_per_node.json, p2p_bandwidth_..., sp_time_...,
 * overlap_coefficient.json, computation_profiling_{bf16|fp32}_{model}_all.json and memory_profiling_....
 * o gives the mode, shapes and options (o->world must be N x G); the time and memory profile modes pick how
 * the model profile is read. cm points into the struct: keep it in place. */
typedef struct {
    gv_hw_profile hw;
    gv_model_profile mp;
    gv_cost_model cm;
} gv_cost_env;
gv_status gv_cost_env_load(gv_cost_env *e, const char *dir, const char *model_name, int num_nodes,
                           int gpus_per_node, const gv_cost_opts *o, gv_profile_mode time_mode,
                           gv_profile_mode mem_mode);

#ifdef __cplusplus
}
#endif
#endif
