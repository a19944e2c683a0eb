/* Layer-wise and pipelined plans equal one process: per-layer tp / Megatron-SP / Ulysses / ZeRO stage /
 * recompute, vocab strategies that differ from the layers', pipelines with even and uneven stages under
 * GPipe and 1F1B, on 4 and 8 ranks. Each plan trains 4-layer tiny GPT-2 (tied embeddings: synced across
 * stages) or LLaMA (untied, RoPE, GQA) for 10 steps: the loss of every step within 1e-5 relative of the
 * single-process run, the final weights within 1e-4 (global relative L2; see test_dist.c for why not
 * tighter per tensor). Also: the activation sets a stage keeps in flight (1F1B: pp - stage, GPipe: m), read
 * from the runtime's memory report. The plans whose parts or stage cuts change layout also train on the
 * host redistribution path (host_redist): bitwise the same losses, eval loss and weights as the device
 * path, whose counts show that every block moved on the device (none through the host) and as many as the
 * host path moved through host F32. Started as one process, it re-launches itself on 8 ranks; 4-rank plans
 * run two at a time on the halves of the world. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/safetensors.h"
#include "gv/train.h"
#include "parity.h"
#include "test.h"

typedef struct {
    const char *name, *model;
    int world, pp, gpipe, micro;
    const char *stages; /* layers per stage, e.g. "3,1"; NULL = even */
    const char *layers; /* one strategy per layer: t|m|u + degree (tp, Megatron-SP, Ulysses), zN, c = ckpt */
    const char *vocab;
    const char *file; /* instead: a plan file of the source tree */
} plan_case;

static const plan_case cases[] = {
    /* 4 ranks */
    {"pp2-1f1b", "gpt2", 4, 2, 0, 4, NULL, "t1 t1 t1 t1", "t1", NULL},
    {"pp2-gpipe", "gpt2", 4, 2, 1, 4, NULL, "t1 t1 t1 t1", "t1", NULL},
    {"pp2-uneven-3+1-tp-mixed", "gpt2", 4, 2, 0, 4, "3,1", "t2 t1 t2 t1", "t2", NULL},
    {"alternate-tp2-dp4", "gpt2", 4, 1, 0, 2, NULL, "t2 t1 t2 t1", "t1", NULL},
    {"zero3-some-layers", "llama", 4, 1, 0, 2, NULL, "t1z3 t1 t1z3 t1z1", "t1z2", NULL},
    {"ulysses-some-layers", "llama", 4, 1, 0, 2, NULL, "u2 t1 u2z1 t2", "t1", NULL},
    {"ckpt-half-vocab-tp2", "gpt2", 4, 1, 0, 2, NULL, "t2c t2 t1c t1", "t2", NULL},
    {"vocab-tp4-layers-dp", "gpt2", 4, 1, 0, 2, NULL, "t1 t1z1 t1 t1z1", "t4", NULL},
    {"megatron-sp-some", "gpt2", 4, 1, 0, 2, NULL, "m2 m2 t1 t2z2", "m2", NULL},
    {"pp2-layerwise-stages", "llama", 4, 2, 0, 4, NULL, "t2 t1c u2 t1z1", "t2", NULL},
    {"pp4-1f1b", "gpt2", 4, 4, 0, 4, NULL, "t1 t1c t1 t1", "t1", NULL},
    {"pp2-gpipe-zero2-vocab-ckpt", "gpt2", 4, 2, 1, 2, "1,3", "t1c t1z1 t1 t1c", "t1z2", NULL},
    /* 8 ranks */
    {"8-pp2-tp-mixed-zero3", "gpt2", 8, 2, 0, 2, NULL, "t2 t4 t1 t2z3", "t2", NULL},
    {"8-pp4-ulysses-tp", "llama", 8, 4, 0, 4, NULL, "u2 t2 u2c t1z1", "t1", NULL},
    {"8-layerwise-dp8-tp4", "gpt2", 8, 1, 0, 2, NULL, "t1z1 t4 t2 t1z3", "t4", NULL},
    {"8-pp2-uneven-gpipe-msp", "gpt2", 8, 2, 1, 2, "3,1", "m2 m4 t1c m2", "m2", NULL},
    /* Hetu-Galvatron's own config: pp2 3+1 GPipe, tp 1/2/4/2, ZeRO-2/3, Ulysses 4, recompute, vocab tp2 x
     * ZeRO-3 (tied embeddings on both stages) */
    {"8-galvatron-config", "gpt2", 8, 2, 1, 4, NULL, NULL, NULL,
     "examples/plans/galvatron_config_example.json"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* Plans with layout changes between parts and at stage cuts (tp / dp, Megatron-SP, Ulysses): also run on
 * the host redistribution path. */
static const char *twins[] = {"pp2-uneven-3+1-tp-mixed", "alternate-tp2-dp4",    "ulysses-some-layers",
                              "megatron-sp-some",        "pp2-layerwise-stages", "8-pp4-ulysses-tp",
                              "8-pp2-uneven-gpipe-msp",  "8-galvatron-config"};

static int is_twin(const char *name) {
    for (size_t i = 0; i < sizeof twins / sizeof twins[0]; i++)
        if (!strcmp(twins[i], name)) return 1;
    return 0;
}

static void spec_of(const char *model, gv_model_spec *s) {
    if (!strcmp(model, "gpt2")) {
        gv_model_spec_preset(s, "gpt2-tiny");
    } else { /* 8 heads over 4 kv heads: splits 2 and 4 ways */
        gv_model_spec_preset(s, "llama-tiny");
        s->n_head = 8, s->n_kv_head = 4;
    }
    s->n_layer = 4;
}

static void config(gv_train_config *c, const char *model, int micro, const char *out) {
    gv_train_config_defaults(c);
    spec_of(model, &c->spec);
    c->steps = 10;
    c->global_batch = 16;
    c->micro_batches = micro;
    c->seq = 32;
    c->warmup = 2;
    c->eval_every = 5;
    c->eval_batches = 1;
    c->out_dir = out;
}

static void make_plan(const plan_case *pc, gv_plan *p) {
    if (pc->file) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GV_SOURCE_DIR, pc->file);
        CHECK_OK(gv_plan_load(p, path, 4, pc->world));
        CHECK(p->micro_batches == pc->micro && p->global_batch == 16);
        return;
    }
    CHECK_OK(gv_plan_compact(p, pc->world, pc->pp, pc->gpipe ? GV_SCHED_GPIPE : GV_SCHED_1F1B, 16, pc->micro,
                             pc->layers, pc->vocab, pc->stages));
}

/* Runs case pc on comm; rank 0 of comm checks it against ref. */
static void run_case(const plan_case *pc, gv_comm *comm, const parity_ref *ref, const char *ref_dir) {
    char out[256];
    snprintf(out, sizeof out, "layerwise_tmp/%s", pc->name);
    gv_train_config c;
    gv_plan p;
    config(&c, pc->model, pc->micro, out);
    c.comm = comm;
    make_plan(pc, &p);
    c.host_redist = -1; /* on the device, whatever $GV_HOST_REDIST says */
    parity_diff d;
    gv_train_result dev = {0};
    if (parity_run_keep(&c, &p, pc->name, ref, ref_dir, &d, &dev)) {
        printf("%-28s losses %.2e  eval %.2e  weights %.2e\n", pc->name, d.losses, d.eval, d.weights);
        CHECK(d.losses <= 1e-5);
        CHECK(d.eval <= 1e-5);
        CHECK(d.weights <= 1e-4);
    }
    CHECK(dev.p2p.redist_host == 0 && dev.p2p.host == 0); /* nothing went through host F32 */
    if (is_twin(pc->name) && dev.losses) {
        char hout[256];
        snprintf(hout, sizeof hout, "layerwise_tmp/%s-host", pc->name);
        gv_train_config hc;
        gv_train_result hr = {0};
        config(&hc, pc->model, pc->micro, hout);
        hc.comm = comm;
        hc.host_redist = 1;
        CHECK_OK(gv_train_config_from_plan(&hc, &p, pc->name));
        CHECK_OK(gv_train_run(&hc, &hr));
        /* every rank: blocks moved between layouts, on the device there, through the host here */
        CHECK(dev.p2p.redist_device > 0 && hr.p2p.redist_device == 0);
        CHECK(hr.p2p.redist_host == dev.p2p.redist_device);
        int same = hr.losses && !memcmp(hr.losses, dev.losses, 10 * sizeof *hr.losses) &&
                   hr.last_eval_loss == dev.last_eval_loss;
        CHECK(same);
        if (gv_comm_rank(comm) == 0) {
            char a[512], b[512];
            double w = -1, worst;
            snprintf(a, sizeof a, "%s/step-000010/model.safetensors", out);
            snprintf(b, sizeof b, "%s/step-000010/model.safetensors", hout);
            CHECK_OK(gv_st_diff(a, b, &w, &worst, NULL));
            CHECK(w == 0);
            printf("%-28s host path: %s losses and eval, weights %.2e; %ld block moves on the device, %ld "
                   "through the host\n",
                   pc->name, same ? "bitwise equal" : "DIFFERENT", w, dev.p2p.redist_device,
                   hr.p2p.redist_host);
        }
        free(hr.losses);
    }
    free(dev.losses);
    gv_plan_free(&p);
}

/* In-flight micro-batches of a pp2 plan with m = 4 on 4 ranks: 1F1B keeps pp - stage activation sets on a
 * stage, GPipe all m; the activation bytes scale with them (the rest of the stage is the same). */
static void check_inflight(gv_comm *four, int rank) {
    size_t act[2];
    int peak[2];
    for (int g = 0; g < 2; g++) {
        plan_case pc = {"inflight", "gpt2", 4, 2, g, 4, NULL, "t1 t1 t1 t1", "t1", NULL};
        gv_train_config c;
        gv_train_result r = {0};
        gv_plan p;
        config(&c, "gpt2", 4, NULL);
        c.steps = 2, c.eval_every = 0;
        make_plan(&pc, &p);
        CHECK_OK(gv_train_config_from_plan(&c, &p, "inflight"));
        c.comm = four;
        CHECK_OK(gv_train_run(&c, &r));
        act[g] = r.memory.activations;
        peak[g] = r.act_peak;
        CHECK(r.act_slots == r.act_peak);
        free(r.losses);
        gv_plan_free(&p);
    }
    int stage = rank / 2, want = 2 - stage; /* 1F1B: pp - stage */
    printf("rank %d (stage %d): 1F1B %d in flight, %zu activation bytes; GPipe %d, %zu bytes\n", rank, stage,
           peak[0], act[0], peak[1], act[1]);
    CHECK(peak[0] == want);
    CHECK(peak[1] == 4);
    CHECK(act[1] * (size_t)want == act[0] * 4);
}

int main(int argc, char **argv) {
    if (!gv_launch_is_rank()) {
        setenv("OMP_NUM_THREADS", "1", 1); /* 8 ranks share 2 cores */
        gv_launch_exec(8, argc, argv);
        fprintf(stderr, "test_layerwise: cannot launch: %s\n", gv_last_error());
        return 1;
    }
    gv_comm *world, *half;
    if (gv_comm_init_world(&world, "mpi") != GV_OK) gv_launch_die(NULL, 1, "%s", gv_last_error());
    int rank = gv_comm_rank(world);
    CHECK(gv_comm_size(world) == 8);
    int lo[4] = {0, 1, 2, 3}, hi[4] = {4, 5, 6, 7};
    gv_comm *a, *b;
    CHECK_OK(gv_comm_group(world, lo, 4, &a));
    CHECK_OK(gv_comm_group(world, hi, 4, &b));
    half = a ? a : b;
    mkdir("layerwise_tmp", 0755);

    /* References: one process per (model, micro-batches). */
    const char *models[2] = {"gpt2", "llama"};
    int micros[2] = {2, 4};
    parity_ref ref[2][2];
    char ref_dir[2][2][128];
    for (int mi = 0; mi < 2; mi++)
        for (int k = 0; k < 2; k++) {
            snprintf(ref_dir[mi][k], sizeof ref_dir[mi][k], "layerwise_tmp/single-%s-m%d", models[mi],
                     micros[k]);
            gv_train_config c;
            config(&c, models[mi], micros[k], ref_dir[mi][k]);
            parity_reference(world, &c, &ref[mi][k]);
        }

    /* 4-rank cases two at a time (one per half), then the 8-rank ones. */
    int four[NCASES], nfour = 0;
    for (int i = 0; i < NCASES; i++)
        if (cases[i].world == 4) four[nfour++] = i;
    for (int i = 0; i < nfour; i += 2) {
        int idx = a ? four[i] : i + 1 < nfour ? four[i + 1] : -1;
        if (idx >= 0) {
            const plan_case *pc = &cases[idx];
            int mi = !strcmp(pc->model, "llama"), k = pc->micro == 4;
            run_case(pc, half, &ref[mi][k], ref_dir[mi][k]);
        }
        CHECK_OK(gv_comm_barrier(world));
    }
    for (int i = 0; i < NCASES; i++) {
        if (cases[i].world != 8) continue;
        int mi = !strcmp(cases[i].model, "llama"), k = cases[i].micro == 4;
        run_case(&cases[i], world, &ref[mi][k], ref_dir[mi][k]);
    }
    if (a) check_inflight(a, rank);
    CHECK_OK(gv_comm_barrier(world));

    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0) printf("test_layerwise: %d plans, %s\n", NCASES, fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
