/* Overlap of communication with compute changes when messages and collectives run, not what they compute:
 * DDP, ZeRO-1/2/3 (ZeRO-3 with and without recompute), Megatron-SP with ZeRO-2, pipelines and T5 (bias
 * tables summed across parts) train 4 steps of 2 or 4 micro-batches with overlap on and off on 2 and 4 CPU
 * ranks, and the losses, the gradient norms and every final weight are bit-for-bit the same. Buckets of one
 * unit each ($GV_GRAD_BUCKET_ELEMS=1) so that tiny models have several; the runtime's counts show that
 * overlap on started buckets during the backward / served ZeRO-3 gathers from a prefetch, and that overlap
 * off did neither. The pipelines (pp 2 and 4, GPipe and 1F1B, dp or tp inside the stages, links that keep
 * their layout and links that redistribute, the tied embedding, T5's two channels) also match a 1-rank run
 * (losses 1e-5 relative, weights 1e-4 relative L2, as test_layerwise), and their message counts show the
 * path that ran: with overlap every pipeline message nonblocking, receives in flight during compute, and
 * device tensors on every link (host F32 blocks on links that change layout only on the host path);
 * without, all blocking. Every plan with several parts or stages also runs on the host redistribution
 * path (gv_hybrid_opts.host_redist, overlap on and off): bitwise the same losses, norms and weights as the
 * device path, and the counts show which path ran (the device path moved every block between layouts on
 * the device, as many moves as the host path made through host F32, and sent no host message). Started as one
 * process, it re-launches itself on 4 ranks; 2-rank plans run on the halves of the world at once. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gv/comm.h"
#include "gv/hybrid.h"
#include "gv/launch.h"
#include "test.h"

typedef struct {
    const char *name, *model;
    int world, pp, micro, gpipe;
    const char *layers; /* one strategy per layer: t|m|u + degree, zN, c = ckpt (see gv_plan_compact) */
    const char *vocab;
    /* what overlap does over dp on every rank: 'z' prefetched ZeRO-3 gathers, 'b' buckets started in the
     * backward, 0 nothing to check (some rank has no dp group) */
    char dp;
    /* pipelines: 'd' every link keeps its layout (device messages), 'h' every link redistributes */
    char links;
} ov_case;

static const ov_case cases[] = {
    {"ddp-dp2", "gpt2", 2, 1, 2, 0, "t1 t1 t1 t1", "t1", 'b', 0},
    {"zero1-dp2", "llama", 2, 1, 2, 0, "t1z1 t1z1 t1z1 t1z1", "t1z1", 'b', 0},
    {"zero2-dp2", "gpt2", 2, 1, 2, 0, "t1z2 t1z2 t1z2 t1z2", "t1z2", 'b', 0},
    {"zero3-dp2", "llama", 2, 1, 2, 0, "t1z3 t1z3 t1z3 t1z3", "t1z3", 'z', 0},
    {"pp2-gpipe-2r", "llama", 2, 2, 4, 1, "t1 t1 t1 t1", "t1", 0, 'd'},
    {"pp2-1f1b-2r-tied", "gpt2", 2, 2, 4, 0, "t1 t1 t1 t1", "t1", 0, 'd'},
    {"ddp-dp4", "llama", 4, 1, 2, 0, "t1 t1 t1 t1", "t1", 'b', 0},
    {"zero2-dp4", "llama", 4, 1, 2, 0, "t1z2 t1z2 t1z2 t1z2", "t1z2", 'b', 0},
    {"zero3-dp4-ckpt", "gpt2", 4, 1, 2, 0, "t1z3c t1z3 t1z3c t1z3", "t1z3", 'z', 0},
    {"msp2-zero2-dp2", "gpt2", 4, 1, 2, 0, "m2z2 m2z2 m2z2 m2z2", "m2z2", 'b', 0},
    {"pp2-dp2-tied", "gpt2", 4, 2, 2, 0, "t1 t1 t1 t1", "t1", 'b', 'd'},
    {"pp2-gpipe-tp2", "llama", 4, 2, 4, 1, "t2 t2 t2 t2", "t2", 0, 'd'},
    {"pp2-1f1b-tp2-to-dp2", "gpt2", 4, 2, 4, 0, "t2 t2 t1z1 t1", "t1", 0, 'h'},
    {"pp2-gpipe-msp-to-tp", "gpt2", 4, 2, 2, 1, "m2 m2 t2 t2", "t2", 0, 'h'},
    {"pp2-1f1b-ulysses-to-tp", "llama", 4, 2, 4, 0, "u2 u2 t2 t1", "t2", 0, 'h'},
    {"t5-pp2-gpipe-tp2-to-msp", "t5", 4, 2, 2, 1, "t2 t2 m2 m2", "m2", 0, 'h'},
    {"pp4-1f1b-tied", "gpt2", 4, 4, 4, 0, "t1 t1c t1 t1", "t1", 0, 'd'},
    {"pp4-gpipe", "llama", 4, 4, 4, 1, "t1 t1 t1c t1", "t1", 0, 'd'},
    {"t5-pp2-1f1b-dp2", "t5", 4, 2, 4, 0, "t1 t1 t1 t1", "t1", 'b', 'd'},
    {"t5-dp4-layerwise", "t5", 4, 1, 2, 0, "t1 t1 t1z2 t1z2", "t1", 'b', 0},
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
    gv_hybrid_p2p_counts p2p;
    int nparts; /* on this rank */
} ov_run;

/* One training run of the case (single: the 1-rank reference of the same model and batches, comm NULL). */
static void run(const ov_case *oc, gv_comm *comm, gv_backend *be, int overlap, int host, int single,
                ov_run *out) {
    memset(out, 0, sizeof *out);
    gv_model_spec spec;
    spec_of(oc->model, &spec);
    gv_plan p;
    gv_schedule sched = oc->gpipe ? GV_SCHED_GPIPE : GV_SCHED_1F1B;
    if (single)
        CHECK_OK(gv_plan_compact(&p, 1, 1, sched, BATCH, oc->micro, "t1 t1 t1 t1", "t1", NULL));
    else
        CHECK_OK(
            gv_plan_compact(&p, oc->world, oc->pp, sched, BATCH, oc->micro, oc->layers, oc->vocab, NULL));
    CHECK_OK(gv_plan_validate(&p, &spec, SEQ, oc->name));
    gv_hybrid *h = NULL;
    gv_hybrid_opts ho = {overlap ? 1 : -1, host ? 1 : -1};
    gv_status st = gv_hybrid_init_opts(&h, &spec, be, comm, &p, SEQ, oc->name, &ho);
    CHECK_OK(st);
    gv_plan_free(&p);
    if (st != GV_OK) return;
    CHECK(gv_hybrid_overlap(h) == overlap);
    CHECK(gv_hybrid_host_redist(h) == host);
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
    gv_hybrid_p2p_stats(h, &out->p2p);
    out->nparts = gv_hybrid_num_parts(h);
    gv_hybrid_free(h);
    free(tok);
    free(tgt);
}

/* Relative L2 distance of a from b. */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++)
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r += (double)b[i] * b[i];
    return sqrt(d / (r > 0 ? r : 1));
}

/* A pipeline's messages on this rank: with overlap all nonblocking, some receives in flight while compute
 * ran, all device blocks (on the host path: host F32 blocks on links that change layout); without, all
 * blocking, of device blocks (host ones on the host path). Then the 1-rank reference. */
static void check_pipeline(const ov_case *oc, gv_comm *comm, gv_backend *be, const ov_run *on,
                           const ov_run *off, const ov_run *hon, const ov_run *hoff, int print) {
    const gv_hybrid_p2p_counts *a = &on->p2p, *b = &off->p2p, *ha = &hon->p2p, *hb = &hoff->p2p;
    CHECK(a->blocking == 0 && a->nonblocking > 0 && a->early > 0);
    CHECK(a->device == a->nonblocking && a->host == 0);
    CHECK(ha->blocking == 0 && ha->nonblocking == a->nonblocking && ha->device + ha->host == ha->nonblocking);
    if (oc->links == 'd')
        CHECK(ha->device == ha->nonblocking);
    else
        CHECK(ha->host == ha->nonblocking);
    CHECK(b->nonblocking == 0 && b->early == 0 && b->device == b->blocking && b->host == 0 &&
          b->blocking > 0);
    CHECK(hb->nonblocking == 0 && hb->host == hb->blocking && hb->device == 0 && hb->blocking == b->blocking);
    ov_run ref;
    run(oc, NULL, be, 1, 0, 1, &ref);
    double dl = 0;
    for (int s = 0; s < STEPS; s++) {
        double d = fabs((double)on->loss[s] - ref.loss[s]) / fabs((double)ref.loss[s]);
        dl = d > dl ? d : dl;
    }
    int rank = gv_comm_rank(comm);
    double dw = rank == 0 && ref.nw == on->nw ? rel_l2(on->weights, ref.weights, on->nw) : 0;
    CHECK(dl <= 1e-5);
    CHECK(ref.nw == on->nw && dw <= 1e-4);
    if (print)
        printf("%-18s rank 0: %ld messages nonblocking (%ld device, %ld host), %ld received early, %ld sends "
               "overlapped (off: %ld blocking); vs 1 rank: losses %.2e, weights %.2e\n",
               oc->name, a->nonblocking, a->device, a->host, a->early, a->overlapped, b->blocking, dl, dw);
    free(ref.weights);
}

/* Bitwise the same training: losses, norms, every weight (rank 0 holds them). */
static int same_run(const ov_run *x, const ov_run *y, int rank) {
    int same_loss = !memcmp(x->loss, y->loss, sizeof x->loss),
        same_norm = !memcmp(x->norm, y->norm, sizeof x->norm);
    int same_w = x->nw == y->nw && x->nw > 0 && (rank != 0 || !memcmp(x->weights, y->weights, x->nw * 4));
    return same_loss && same_norm && same_w;
}

/* The redistribution path of a device run d and a host run hr of the same plan: d moved its blocks on the
 * device only, hr through the host only, as many of them. */
static void check_redist(const ov_run *d, const ov_run *hr) {
    CHECK(d->p2p.redist_host == 0);
    CHECK(hr->p2p.redist_host == d->p2p.redist_device && hr->p2p.redist_device == 0);
}

static void run_case(const ov_case *oc, gv_comm *comm, gv_backend *be, int print) {
    ov_run on, off, hon = {0}, hoff = {0};
    run(oc, comm, be, 1, 0, 0, &on);
    run(oc, comm, be, 0, 0, 0, &off);
    int rank = gv_comm_rank(comm), same = same_run(&on, &off, rank);
    CHECK(same);
    /* blocks move between parts and stages (off: also at cuts that keep their layout) */
    int moves = off.p2p.redist_device > 0;
    CHECK(moves == (oc->pp > 1 || on.nparts > 1));
    int same_host = 1;
    if (moves) { /* the host redistribution path: the same bits */
        run(oc, comm, be, 1, 1, 0, &hon);
        run(oc, comm, be, 0, 1, 0, &hoff);
        same_host = same_run(&on, &hon, rank) && same_run(&off, &hoff, rank);
        CHECK(same_host);
        check_redist(&on, &hon);
        check_redist(&off, &hoff);
    }
    CHECK(isfinite(on.loss[STEPS - 1]) && on.norm[STEPS - 1] > 0);
    /* what overlap did on this rank: off starts nothing early and prefetches nothing */
    CHECK(off.early == 0 && off.prefetched == 0);
    if (oc->dp == 'z')
        CHECK(on.prefetched > 0);
    else if (oc->dp == 'b')
        CHECK(on.buckets > 1 && on.early > 0);
    if (print)
        printf("%-18s losses %.6f .. %.6f, norm %.6f: on == off %s (weights %zu); buckets %d, started in "
               "backward %ld, prefetched gathers %ld (off: %ld, %ld)\n",
               oc->name, on.loss[0], on.loss[STEPS - 1], on.norm[STEPS - 1], same ? "bitwise" : "DIFFER",
               on.nw, on.buckets, on.early, on.prefetched, off.early, off.prefetched);
    if (print && moves)
        printf("%-18s rank 0: %ld / %ld block moves on the device (on / off), host path %ld / %ld through "
               "the host: %s\n",
               oc->name, on.p2p.redist_device, off.p2p.redist_device, hon.p2p.redist_host,
               hoff.p2p.redist_host, same_host ? "bitwise the same" : "DIFFER");
    if (oc->pp > 1) check_pipeline(oc, comm, be, &on, &off, &hon, &hoff, print);
    free(on.weights);
    free(off.weights);
    free(hon.weights);
    free(hoff.weights);
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
