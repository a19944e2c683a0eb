/* Overlap of data-parallel communication with compute changes when collectives run, not what they compute:
 * DDP, ZeRO-1/2/3 (ZeRO-3 with and without recompute), Megatron-SP with ZeRO-2, a pipeline with the tied
 * embedding synced across stages and T5 (bias tables summed across parts) train 4 steps of 2 micro-batches
 * with overlap on and off on 2 and 4 CPU ranks, and the losses, the gradient norms and every final weight are
 * bit-for-bit the same. Buckets of one unit each ($GV_GRAD_BUCKET_ELEMS=1) so that tiny models have several;
 * the runtime's counts show that overlap on started buckets during the backward / served ZeRO-3 gathers from
 * a prefetch, and that overlap off did neither. Started as one process, it re-launches itself on 4 ranks;
 * 2-rank plans run on the halves of the world at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gv/comm.h"
#include "gv/hybrid.h"
#include "gv/launch.h"
#include "test.h"

typedef struct {
    const char *name, *model;
    int world, pp, micro;
    const char *layers; /* one strategy per layer: t|m|u + degree, zN, c = ckpt (see gv_plan_compact) */
    const char *vocab;
    int zero3; /* expects prefetched gathers (else early buckets) */
} ov_case;

static const ov_case cases[] = {
    {"ddp-dp2", "gpt2", 2, 1, 2, "t1 t1 t1 t1", "t1", 0},
    {"zero1-dp2", "llama", 2, 1, 2, "t1z1 t1z1 t1z1 t1z1", "t1z1", 0},
    {"zero2-dp2", "gpt2", 2, 1, 2, "t1z2 t1z2 t1z2 t1z2", "t1z2", 0},
    {"zero3-dp2", "llama", 2, 1, 2, "t1z3 t1z3 t1z3 t1z3", "t1z3", 1},
    {"ddp-dp4", "llama", 4, 1, 2, "t1 t1 t1 t1", "t1", 0},
    {"zero2-dp4", "llama", 4, 1, 2, "t1z2 t1z2 t1z2 t1z2", "t1z2", 0},
    {"zero3-dp4-ckpt", "gpt2", 4, 1, 2, "t1z3c t1z3 t1z3c t1z3", "t1z3", 1},
    {"msp2-zero2-dp2", "gpt2", 4, 1, 2, "m2z2 m2z2 m2z2 m2z2", "m2z2", 0},
    {"pp2-dp2-tied", "gpt2", 4, 2, 2, "t1 t1 t1 t1", "t1", 0},
    {"t5-dp4-layerwise", "t5", 4, 1, 2, "t1 t1 t1z2 t1z2", "t1", 0},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

enum { STEPS = 4, SEQ = 32, BATCH = 8 };

static void spec_of(const char *model, gv_model_spec *s) {
    gv_model_spec_preset(s, !strcmp(model, "gpt2") ? "gpt2-tiny"
                            : !strcmp(model, "t5") ? "t5-tiny"
                                                   : "llama-tiny");
    s->n_layer = 4;
}

typedef struct {
    float loss[STEPS];
    double norm[STEPS];
    float *weights; /* every HF tensor, concatenated (rank 0 of the case's communicator) */
    size_t nw;
    int buckets;
    long early, prefetched;
} ov_run;

static void run(const ov_case *oc, gv_comm *comm, gv_backend *be, int overlap, ov_run *out) {
    memset(out, 0, sizeof *out);
    gv_model_spec spec;
    spec_of(oc->model, &spec);
    gv_plan p;
    CHECK_OK(
        gv_plan_compact(&p, oc->world, oc->pp, GV_SCHED_1F1B, BATCH, oc->micro, oc->layers, oc->vocab, NULL));
    CHECK_OK(gv_plan_validate(&p, &spec, SEQ, oc->name));
    gv_hybrid *h = NULL;
    gv_hybrid_opts ho = {overlap ? 1 : -1};
    gv_status st = gv_hybrid_init_opts(&h, &spec, be, comm, &p, SEQ, oc->name, &ho);
    CHECK_OK(st);
    gv_plan_free(&p);
    if (st != GV_OK) return;
    CHECK(gv_hybrid_overlap(h) == overlap);
    CHECK_OK(gv_hybrid_init_weights(h, 1234));
    int IW = gv_model_spec_input_width(&spec);
    size_t per = (size_t)(BATCH / oc->micro) * SEQ;
    int32_t *tok = malloc(per * oc->micro * IW * sizeof *tok), *tgt = malloc(per * oc->micro * sizeof *tgt);
    gv_adamw_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int s = 0; s < STEPS; s++) {
        for (int mb = 0; mb < oc->micro; mb++)
            gv_model_spec_random_batch(&spec, 100 + s * 7 + mb, BATCH / oc->micro, SEQ, tok + mb * per * IW,
                                       tgt + mb * per);
        CHECK_OK(gv_hybrid_zero_grad(h));
        CHECK_OK(gv_hybrid_train_batch(h, tok, tgt, &out->loss[s]));
        CHECK_OK(gv_hybrid_reduce_grads(h));
        CHECK_OK(gv_hybrid_grad_norm(h, &out->norm[s]));
        CHECK_OK(gv_hybrid_adamw_step(h, &cfg, 3e-3f, 1.0f, s + 1));
    }
    int n = gv_hybrid_hf_count(h);
    for (int k = 0; k < n; k++) {
        const char *name;
        int nd;
        int64_t shape[4];
        CHECK_OK(gv_hybrid_hf_info(h, k, &name, &nd, shape));
        size_t e = 1;
        for (int d = 0; d < nd; d++) e *= (size_t)shape[d];
        out->weights = realloc(out->weights, (out->nw + e) * sizeof *out->weights);
        CHECK_OK(gv_hybrid_export_one(h, GV_BUF_WEIGHTS, k, out->weights + out->nw));
        out->nw += e;
    }
    gv_hybrid_overlap_counts(h, &out->buckets, &out->early, &out->prefetched);
    gv_hybrid_free(h);
    free(tok);
    free(tgt);
}

static void run_case(const ov_case *oc, gv_comm *comm, gv_backend *be, int print) {
    ov_run on, off;
    run(oc, comm, be, 1, &on);
    run(oc, comm, be, 0, &off);
    int rank = gv_comm_rank(comm);
    int same_loss = !memcmp(on.loss, off.loss, sizeof on.loss),
        same_norm = !memcmp(on.norm, off.norm, sizeof on.norm);
    int same_w = on.nw == off.nw && on.nw > 0 && (rank != 0 || !memcmp(on.weights, off.weights, on.nw * 4));
    CHECK(same_loss && same_norm && same_w);
    CHECK(isfinite(on.loss[STEPS - 1]) && on.norm[STEPS - 1] > 0);
    /* what overlap did on this rank: off starts nothing early and prefetches nothing */
    CHECK(off.early == 0 && off.prefetched == 0);
    if (oc->zero3)
        CHECK(on.prefetched > 0);
    else
        CHECK(on.buckets > 1 && on.early > 0);
    if (print)
        printf("%-18s losses %.6f .. %.6f, norm %.6f: on == off %s (weights %zu); buckets %d, started in "
               "backward %ld, prefetched gathers %ld (off: %ld, %ld)\n",
               oc->name, on.loss[0], on.loss[STEPS - 1], on.norm[STEPS - 1],
               same_loss && same_norm && same_w ? "bitwise" : "DIFFER", on.nw, on.buckets, on.early,
               on.prefetched, off.early, off.prefetched);
    free(on.weights);
    free(off.weights);
}

int main(int argc, char **argv) {
    if (!gv_launch_is_rank()) {
        setenv("OMP_NUM_THREADS", "1", 1);
        setenv("GV_GRAD_BUCKET_ELEMS", "1", 1); /* one bucket per unit: several even in tiny models */
        gv_launch_exec(4, argc, argv);
        fprintf(stderr, "test_overlap: cannot launch: %s\n", gv_last_error());
        return 1;
    }
    gv_comm *world;
    if (gv_comm_init_world(&world, "mpi") != GV_OK) gv_launch_die(NULL, 1, "%s", gv_last_error());
    int rank = gv_comm_rank(world);
    CHECK(gv_comm_size(world) == 4);
    int lo[2] = {0, 1}, hi[2] = {2, 3};
    gv_comm *a, *b;
    CHECK_OK(gv_comm_group(world, lo, 2, &a));
    CHECK_OK(gv_comm_group(world, hi, 2, &b));
    gv_comm *half = a ? a : b;
    gv_backend *be;
    CHECK_OK(gv_backend_init(&be, "cpu", 0));
    for (int i = 0; i < NCASES; i++)
        if (cases[i].world == 2) run_case(&cases[i], half, be, rank == 0); /* both halves: same plans */
    CHECK_OK(gv_comm_barrier(world));
    for (int i = 0; i < NCASES; i++)
        if (cases[i].world == 4) run_case(&cases[i], world, be, rank == 0);
    gv_backend_free(be);
    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0) printf("test_overlap: %d plans, overlap on == off, %s\n", NCASES, fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
