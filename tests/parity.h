/* Plan parity for the MPI tests: train a plan for 10 steps and compare with a single-process reference
 * (losses of every step, the last eval loss, the final weights). */
#ifndef GV_TEST_PARITY_H
#define GV_TEST_PARITY_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/comm.h"
#include "gv/safetensors.h"
#include "gv/train.h"
#include "test.h"

typedef struct {
    float losses[10], eval;
} parity_ref;

typedef struct {
    double losses, eval, weights; /* worst relative loss difference, eval difference, weights' relative L2 */
    float first, last;            /* the plan's first and last loss */
} parity_diff;

/* The single-process reference of config c (c->out_dir set): run on rank 0 of world, sent to every rank. */
static void parity_reference(gv_comm *world, gv_train_config *c, parity_ref *ref) {
    if (gv_comm_rank(world) == 0) {
        gv_train_result r;
        CHECK_OK(gv_train_run(c, &r));
        memcpy(ref->losses, r.losses, sizeof ref->losses);
        ref->eval = r.last_eval_loss;
        free(r.losses);
    }
    CHECK_OK(gv_comm_broadcast(world, ref, sizeof *ref / sizeof(float), GV_COMM_F32, 0));
}

/* Runs plan p with config c (10 steps, c->out_dir set, c->comm the plan's ranks). On rank 0 of c->comm fills
 * *d and returns 1; 0 elsewhere or when the run failed (a CHECK then says so). keep: NULL, or the run's
 * result on every rank (the caller frees its losses). */
static int parity_run_keep(gv_train_config *c, const gv_plan *p, const char *name, const parity_ref *ref,
                           const char *ref_dir, parity_diff *d, gv_train_result *keep) {
    gv_train_result r = {0};
    gv_status st = gv_plan_validate(p, &c->spec, c->seq, name);
    if (st == GV_OK) st = gv_train_config_from_plan(c, p, name);
    if (st == GV_OK) st = gv_train_run(c, &r);
    if (st != GV_OK) fprintf(stderr, "%s: %s\n", name, gv_last_error());
    CHECK(st == GV_OK);
    if (keep) *keep = r;
    if (st != GV_OK || (c->comm && gv_comm_rank(c->comm) != 0)) {
        if (!keep) free(r.losses);
        return 0;
    }
    d->losses = 0;
    for (int s = 0; s < 10; s++)
        d->losses = fmax(d->losses, fabs(r.losses[s] - ref->losses[s]) / ref->losses[s]);
    d->eval = fabs(r.last_eval_loss - ref->eval) / ref->eval;
    d->first = r.losses[0], d->last = r.losses[9];
    char a[512], b[512];
    double worst_tensor;
    snprintf(a, sizeof a, "%s/step-000010/model.safetensors", c->out_dir);
    snprintf(b, sizeof b, "%s/step-000010/model.safetensors", ref_dir);
    CHECK_OK(gv_st_diff(a, b, &d->weights, &worst_tensor, NULL));
    if (!keep) free(r.losses);
    return 1;
}

static inline int parity_run(gv_train_config *c, const gv_plan *p, const char *name, const parity_ref *ref,
                             const char *ref_dir, parity_diff *d) {
    return parity_run_keep(c, p, name, ref, ref_dir, d, NULL);
}
#endif
