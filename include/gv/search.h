/* The plan search: Galvatron's per-layer strategy space (reference §3.1), the layer-wise dynamic program
 * under a per-stage memory budget (§3.3), stage boundaries, and the outer loops over global batch,
 * micro-batches, pipeline degree, tp/sp mode, global-buffer group and the vocab layers' strategy (§3.2).
 * With GV_COST_GALVATRON every step follows Hetu-Galvatron HEAD (even stages, its tie-breaks); with
 * GV_COST_OWN the search also chooses uneven stage boundaries. */
#ifndef GV_SEARCH_H
#define GV_SEARCH_H
#include "gv/cost.h"
#include "gv/model.h"
#include "gv/plan.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int world, n_layer;
    double memory_mb; /* per-GPU budget (Galvatron: memory_constraint GB x 1024) */
    /* space (Galvatron's names) */
    int disable_dp, disable_tp, disable_sp, disable_cp, disable_pp, disable_ckpt, disable_fsdp;
    int disable_vtp, disable_vsp; /* embedding_lmhead tp / sp */
    int max_tp, max_pp, max_sp, max_cp;
    int default_dp_type; /* 0 ddp, 2 zero2 (Galvatron's default), 3 zero3 */
    /* batches */
    int settle_bsz, min_bsz, max_bsz, bsz_scale;
    int settle_chunk;          /* 0 = every divisor of the batch */
    int fine_grained;          /* 1: layer-wise DP; 0: one strategy for all layers */
    int uneven_stages;         /* own model: search stage boundaries (default 1) */
    int threads;               /* 0 = one per online CPU */
    int top_k;                 /* alternatives kept for the report (<= 8) */
    int no_shortcut;           /* testing: every task solves its own DPs (no answers from the shared one) */
    const gv_model_spec *spec; /* optional: drop degrees the model cannot run (heads, ffn, vocab, seq) */
} gv_search_opts;
void gv_search_opts_default(gv_search_opts *o, int world, int n_layer, double memory_mb);

/* The strategy list of §3.1 (sorted, deduplicated, filtered); vocab = 0 for layers, 1 for the
 * embedding / LM-head list (no recompute). Caller frees *out. */
gv_status gv_search_space(const gv_search_opts *o, int vocab, gv_strategy **out, int *n);

/* One stage's layer-wise DP (exposed for tests and the optimality check). n_strat strategies, each layer
 * costs mem[s] MB (integer) and cost[s]; switching a -> b between adjacent layers costs inter[a*S + b].
 * group (may be NULL = one group) says which strategies are compared for pruning (same tp/sp degree: their
 * switch costs to others are alike). Solves for up to max_layers layers with budgets up to cap MB. */
typedef struct gv_stage_dp gv_stage_dp;
gv_status gv_stage_dp_solve(gv_stage_dp **out, int n_strat, const int *mem, const double *cost,
                            const double *inter, const int *group, int max_layers, int cap);
/* The same for queries of at least min_layers layers only (smaller n answer INFINITY): after layer i a
 * memory above cap - (min_layers - 1 - i) x the least layer memory can be on no queried path, so it is not
 * kept. Same answers for n >= min_layers, fewer breakpoints. */
gv_status gv_stage_dp_solve_min(gv_stage_dp **out, int n_strat, const int *mem, const double *cost,
                                const double *inter, const int *group, int max_layers, int min_layers,
                                int cap);
/* The same with memory and cost per layer: mem[i * S + s], cost[i * S + s] of strategy s at layer i (a
 * model with several layer types; mem < 0: s is not available at layer i). */
gv_status gv_stage_dp_solve_layers(gv_stage_dp **out, int n_strat, int max_layers, const int *mem,
                                   const double *cost, const double *inter, const int *group, int min_layers,
                                   int cap);
/* The same for queries with exit costs (gv_stage_dp_query_exit): exits[r * S + s], nexit rows, are the
 * exit rows queries may pass (the pruning keeps every breakpoint one of them can make the best). */
gv_status gv_stage_dp_solve_exits(gv_stage_dp **out, int n_strat, int max_layers, const int *mem,
                                  const double *cost, const double *inter, const int *group, int min_layers,
                                  int cap, const double *exits, int nexit);
/* Best cost of n layers within budget (Galvatron's dense-DP semantics, ties to the lowest strategy index);
 * fills plan[n] with strategy indices and *used with their memory. Returns INFINITY when nothing fits. */
double gv_stage_dp_query(const gv_stage_dp *dp, int n, int budget, int *plan, int *used);
/* The same with exit[s] added to a path whose last layer has strategy s (the cost of what follows the
 * stage, e.g. the redistribution to the LM head's layout); NULL: none. Exact: a column's value at the
 * budget is its best path ending in s, so the least of value + exit is the best path with the exit. */
double gv_stage_dp_query_exit(const gv_stage_dp *dp, int n, int budget, const double *exit, int *plan,
                              int *used);
void gv_stage_dp_free(gv_stage_dp *dp);

typedef struct {
    int global_batch, micro_batches, pp, vocab_tp, vocab_sp, vocab_zero3;
    char layers[160];               /* short description: "24x 1-2*-4 + 8x 1-2*-4-c" */
    double step_s, throughput, gap; /* gap: time per sample relative to the best, minus 1 */
} gv_search_alt;

typedef struct {
    int found; /* 0: nothing fits; plan/cost then describe the closest (smallest) plan */
    gv_plan plan;
    gv_plan_cost cost;
    int global_buffer_tp;
    double need_mb; /* when nothing fits: the closest plan's largest stage memory and that stage */
    int need_stage;
    int n_alt;
    gv_search_alt alt[8];
    int tasks; /* (B, m, pp, mode, g) tasks evaluated */
    double ms; /* search wall time */
} gv_search_result;

/* Runs the search. Returns GV_OK with found = 1, or GV_ERR_INVALID with "no plan fits: the smallest needs X
 * MiB on stage k" and the closest plan in *out (found = 0); gv_search_result_free in both cases. */
gv_status gv_search_run(const gv_cost_model *cm, const gv_search_opts *o, gv_search_result *out);
void gv_search_result_free(gv_search_result *r);

/* Writes Hetu-Galvatron's galvatron_config (reference §5.1) for the result, plus "throughput". */
gv_status gv_search_save_galvatron(const gv_search_result *r, const gv_search_opts *o, const char *path);

#ifdef __cplusplus
}
#endif
#endif
