/* Explaining a plan: the cost model's prediction for it from a profile directory, a simulated pipeline
 * timeline of one step, and reports — a text table (the CLI), an HTML page with SVG charts (memory per rank
 * by category, the timeline) and a Chrome-trace JSON that opens in Perfetto / chrome://tracing. */
#ifndef GV_EXPLAIN_H
#define GV_EXPLAIN_H
#include "gv/cost.h"
#include "gv/model.h"
#include "gv/plan.h"
#ifdef __cplusplus
extern "C" {
#endif

/* One box of the timeline: forward or backward of micro-batch mb on stage `stage`, [t0, t1) seconds. */
typedef struct {
    int stage, mb, backward;
    double t0, t1;
} gv_timeline_event;

/* Simulates one step of the plan's schedule (pp = 1: forward/backward per micro-batch; GPipe; 1F1B) from
 * per-stage forward and backward times of one micro-batch [s] and the p2p time of a boundary activation
 * [s]: each stage runs its operations in schedule order as soon as the neighbour's result has arrived.
 * *ev gets 2 * pp * m events (free()), *makespan the step's length. */
gv_status gv_timeline_simulate(const gv_plan *p, const double *fwd_s, const double *bwd_s, double p2p_s,
                               gv_timeline_event **ev, int *n, double *makespan);

/* Forward and backward per-stage times of one micro-batch from a plan's cost (its stage times split 1 : 2
 * as the cost model costs backward at twice the forward, 3 : 1 more with recompute on a stage's layers). */
void gv_explain_stage_times(const gv_plan *p, const gv_plan_cost *c, double *fwd_s, double *bwd_s);

/* Chrome trace: one process per stage, "F<mb>" / "B<mb>" slices in microseconds. Written atomically. */
gv_status gv_explain_write_trace(const char *path, const gv_plan *p, const gv_timeline_event *ev, int n);
/* HTML page: plan table, predicted step time and throughput, memory per rank by category (stacked bars,
 * one per stage with its ranks), and the timeline as SVG. Written atomically. */
gv_status gv_explain_write_html(const char *path, const gv_model_spec *spec, const gv_plan *p,
                                const gv_plan_cost *c, const gv_timeline_event *ev, int n, double makespan);

#ifdef __cplusplus
}
#endif
#endif
