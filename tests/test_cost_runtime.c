/* The own cost model's memory is the runtime's: for plans on 2 and 4 ranks (DDP, ZeRO-1/2/3, tp,
 * Megatron-SP, Ulysses, recompute, pp 2 under GPipe and 1F1B, layer-wise mixes, vocab strategies of their
 * own; GPT-2, LLaMA and T5) every rank builds the runtime (gv_hybrid_init, which allocates everything a step
 * uses) and compares its memory report, category by category, with gv_cost_runtime_memory for its stage:
 * equal to the byte, with overlap on and off and the redistributions on the device or through the host
 * (gv_hybrid_opts.host_redist). And gv_cost_plan with the model set reports the same figures in MiB (within
 * 5%, the calibration target; here they are exact). Started as one process, it re-launches itself on 4 ranks;
 * 2-rank plans run on the halves of the world at once. Only allocation, no training: fast. usage:
 * test_cost_runtime [BACKEND]   (default cpu, fp32; `cuda`: the same plans in bf16 with the fp32 master copy
 * under every ZeRO stage and the cuda attention stash, the four ranks sharing the GPU; exit 77 without one)
 */
#include <string.h>

#include "gv/comm.h"
#include "gv/cost.h"
#include "gv/hybrid.h"
#include "gv/launch.h"
#include "test.h"

typedef struct {
    const char *name, *model;
    int world, pp, gpipe, micro, batch;
    const char *stages; /* layers per stage, e.g. "3,1"; NULL = even */
    const char *layers; /* one strategy per layer: t|m|u + degree (tp, Megatron-SP, Ulysses), zN, c = ckpt */
    const char *vocab;
} mem_case;

static const mem_case cases[] = {
    {"ddp", "gpt2", 2, 1, 0, 1, 8, NULL, "t1 t1 t1 t1", "t1"},
    {"zero1-m2", "gpt2", 2, 1, 0, 2, 8, NULL, "t1z1 t1z1 t1z1 t1z1", "t1z1"},
    {"zero2-m4", "gpt2", 2, 1, 0, 4, 8, NULL, "t1z2 t1z2 t1z2 t1z2", "t1z2"},
    {"zero3", "llama", 2, 1, 0, 2, 8, NULL, "t1z3 t1z3 t1z3 t1z3", "t1z3"},
    {"tp2", "gpt2", 2, 1, 0, 1, 8, NULL, "t2 t2 t2 t2", "t2"},
    {"megatron-sp2", "gpt2", 2, 1, 0, 2, 8, NULL, "m2 m2 m2 m2", "m2"},
    {"ulysses2", "llama", 2, 1, 0, 2, 8, NULL, "u2 u2 u2 u2", "t1"},
    {"ckpt-mixed", "gpt2", 2, 1, 0, 2, 8, NULL, "t1c t1c t1 t1c", "t1"},
    {"pp2-1f1b", "gpt2", 2, 2, 0, 4, 8, NULL, "t1 t1 t1 t1", "t1"},
    {"pp2-gpipe-uneven", "llama", 2, 2, 1, 4, 8, "3,1", "t1 t1c t1 t1", "t1"},
    {"layerwise-vocab-tp2", "gpt2", 2, 1, 0, 2, 8, NULL, "t2 t1 t1z2 t2c", "t2"},
    {"4-pp2-mixed", "llama", 4, 2, 0, 4, 16, NULL, "t2 t1c u2 t1z1", "t2"},
    {"4-tp4-vocab-dp", "gpt2", 4, 1, 0, 2, 16, NULL, "t4 t4 t2z3 t1z2", "t1z3"},
    {"4-pp2-gpipe-msp", "gpt2", 4, 2, 1, 2, 16, "1,3", "m2 m2c t1 t2", "m2"},
    {"4-tp2-zero-mix", "llama", 4, 1, 0, 2, 16, NULL, "t2z3 t2z3c t1z1 m2z2", "t2z3"},
    /* T5 (layers 0-1 encoder, 2-3 decoder): cross-attention, bias tables and their copies, two channels */
    {"t5-one-part", "t5", 2, 1, 0, 2, 8, NULL, "t1 t1c t1 t1", "t1"},
    {"t5-layerwise", "t5", 2, 1, 0, 2, 8, NULL, "t2 t1c t1z3 t2", "t1z1"},
    {"t5-4-msp-ulysses", "t5", 4, 1, 0, 2, 16, NULL, "m2 u2 m4c t1z2", "m2"},
    {"t5-4-pp2-1f1b", "t5", 4, 2, 0, 4, 16, "1,3", "t2 t1 u2c t1z1", "t2"},
    {"t5-4-pp2-gpipe", "t5", 4, 2, 1, 4, 16, "3,1", "m2c t1 t2 t1z3", "t1"},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

static void spec_of(const char *model, gv_model_spec *s) {
    if (!strcmp(model, "gpt2")) {
        gv_model_spec_preset(s, "gpt2-tiny");
    } else if (!strcmp(model, "t5")) {
        gv_model_spec_preset(s, "t5-tiny");
    } else { /* 8 heads over 4 kv heads: splits 2 and 4 ways */
        gv_model_spec_preset(s, "llama-tiny");
        s->n_head = 8, s->n_kv_head = 4;
    }
    s->n_layer = 4;
}

static void make_plan(const mem_case *mc, gv_plan *p) {
    CHECK_OK(gv_plan_compact(p, mc->world, mc->pp, mc->gpipe ? GV_SCHED_GPIPE : GV_SCHED_1F1B, mc->batch,
                             mc->micro, mc->layers, mc->vocab, mc->stages));
}

/* Minimal profiles: the memory path of gv_cost_plan with a spec does not read them. */
static gv_hw_profile hw;
static gv_model_profile mp;

static void run_case(const mem_case *mc, gv_comm *comm, gv_backend *be, int print, int overlap, int host) {
    const int seq = 64;
    gv_model_spec spec;
    gv_plan p;
    spec_of(mc->model, &spec);
    make_plan(mc, &p);
    CHECK_OK(gv_plan_validate(&p, &spec, seq, mc->name));
    gv_hybrid *h = NULL;
    gv_hybrid_opts ho = {overlap ? 1 : -1, host ? 1 : -1};
    gv_status st = gv_hybrid_init_opts(&h, &spec, be, comm, &p, seq, mc->name, &ho);
    CHECK_OK(st);
    if (st != GV_OK) {
        gv_plan_free(&p);
        return;
    }
    gv_memory_report got, want;
    gv_hybrid_memory(h, &got);
    gv_hybrid_free(h);
    int rank = gv_comm_rank(comm), stage = rank / (mc->world / mc->pp);
    gv_cost_opts o;
    gv_cost_opts_default(&o, GV_COST_OWN, mc->world, spec.n_embd, seq);
    o.mixed_precision = gv_backend_dtype(be) != GV_F32;
    o.n_layer = 4;
    o.pipeline = p.schedule;
    o.spec = &spec;
    o.backend = be;
    o.overlap = overlap;  /* ZeRO-3's second layer slot */
    o.host_redist = host; /* the stage's blocks in host F32 or on the device */
    CHECK_OK(gv_cost_runtime_memory(&o, &spec, &p, stage, &want));
    static const char *cat[6] = {"parameters", "gradients", "optimizer", "activations", "workspace", "comm"};
    size_t gv[6] = {got.parameters, got.gradients, got.optimizer, got.activations, got.workspace, got.comm};
    size_t wv[6] = {want.parameters,  want.gradients, want.optimizer,
                    want.activations, want.workspace, want.comm};
    for (int k = 0; k < 6; k++)
        if (gv[k] != wv[k]) {
            fprintf(stderr,
                    "%s (overlap %s, %s redistribution) rank %d: %s runtime %zu bytes, cost model %zu\n",
                    mc->name, overlap ? "on" : "off", host ? "host" : "device", rank, cat[k], gv[k], wv[k]);
            gv_test_failures++;
        }
    /* the same through the plan evaluation, in MiB */
    gv_cost_model cm = {&hw, &mp, o};
    gv_plan_cost pc;
    CHECK_OK(gv_cost_plan(&cm, &p, 0, &pc));
    const gv_cost_mem *m = &pc.mem[stage];
    double pm[6] = {m->parameters, m->gradients, m->optimizer, m->activations, m->workspace, m->comm};
    for (int k = 0; k < 6; k++) CHECK_CLOSE(pm[k], gv[k] / 1048576.0, 0.05, 1e-9);
    if (rank == 0 && print && overlap && !host)
        printf("%-22s stage 0: params %zu grads %zu opt %zu acts %zu work %zu comm %zu bytes\n", mc->name,
               got.parameters, got.gradients, got.optimizer, got.activations, got.workspace, got.comm);
    gv_plan_free(&p);
}

int main(int argc, char **argv) {
    const char *bname = argc > 1 ? argv[1] : "cpu";
    if (!gv_backend_available(bname)) {
        printf("test_cost_runtime: no %s device, skipped\n", bname);
        return 77;
    }
    if (!gv_launch_is_rank()) {
        setenv("OMP_NUM_THREADS", "1", 1);
        gv_launch_exec(4, argc, argv);
        fprintf(stderr, "test_cost_runtime: cannot launch: %s\n", gv_last_error());
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
    CHECK_OK(gv_backend_init(&be, bname, 0));
    int two[NCASES], ntwo = 0;
    for (int i = 0; i < NCASES; i++)
        if (cases[i].world == 2) two[ntwo++] = i;
    /* the runtime's overlap switch changes ZeRO-3's slots and the pipeline's buffers; its host_redist
     * switch where the stage's blocks live */
    for (int k = 0; k < 4; k++) {
        int ov = !(k & 1), host = k >> 1;
        for (int i = 0; i < ntwo; i++)
            run_case(&cases[two[i]], half, be, a != NULL, ov, host); /* both halves: same plans */
        CHECK_OK(gv_comm_barrier(world));
        for (int i = 0; i < NCASES; i++)
            if (cases[i].world == 4) run_case(&cases[i], world, be, 1, ov, host);
    }
    int bf16 = gv_backend_dtype(be) != GV_F32;
    gv_backend_free(be);
    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0)
        printf("test_cost_runtime: %d plans x overlap on/off x device/host redistribution on %s (%s), %s\n",
               NCASES, bname, bf16 ? "bf16" : "f32", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
