/* `--plan auto`: profile the hardware and the model on the job's own ranks (cached in a directory named by a
 * fingerprint of both), search the fastest plan that fits the memory budget with the project's cost model,
 * and hand every rank the plan and its prediction. */
#ifndef GV_AUTOPLAN_H
#define GV_AUTOPLAN_H
#include <stdio.h>
#include "gv/backend.h"
#include "gv/comm.h"
#include "gv/cost.h"
#include "gv/model.h"
#include "gv/plan.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *profile_dir; /* NULL: $GV_CACHE_DIR, else $XDG_CACHE_HOME/galvatron, else
                              * $HOME/.cache/galvatron, + /profiles/<model>-<ranks>r-<fingerprint> */
    double memory_gib; /* budget per rank; 0 = 80% of this machine's memory / ranks (CPU), of the GPU's */
    int global_batch;  /* the batch to plan for */
    int micro_batches; /* 0: the search chooses */
    int seq;
    gv_cost_mode mode;
    int reprofile;   /* measure again even when the directory has the profiles */
    int overlap;     /* the run's gv_hybrid_opts.overlap (memory of its ZeRO-3 slots; on an nccl world the
                      * cost model's overlap_grad_sync) */
    int host_redist; /* the run's gv_hybrid_opts.host_redist (memory of its staging buffers) */
} gv_autoplan_opts;

typedef struct {
    gv_plan plan;
    gv_plan_cost predicted; /* the cost model's step time and memory per stage for the plan */
    char dir[1024];         /* where the profiles are */
    int profiled;           /* 1: measured in this call; 0: read from the cache */
    double search_ms;
} gv_autoplan_result;

/* Collective over world (NULL = one process). Progress at info level on rank 0; the search report goes to
 * `report` on rank 0 (may be NULL). On one rank there is nothing to search: the plan is the single-process
 * one with the given batch. */
gv_status gv_autoplan_run(gv_comm *world, gv_backend *be, const gv_model_spec *spec,
                          const gv_autoplan_opts *o, FILE *report, gv_autoplan_result *out);
void gv_autoplan_result_free(gv_autoplan_result *r);

#ifdef __cplusplus
}
#endif
#endif
