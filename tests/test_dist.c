/* Data parallelism on CPU ranks equals one process: DDP and ZeRO-1 on 2 and 4 ranks train tiny GPT-2 and
 * LLaMA models (also with activation recompute, Megatron tensor parallelism, vocab parallelism and Ulysses
 * sequence parallelism) for 10 steps with the single-process loss at every step (1e-5 relative) and the same
 * final weights (1e-4). Started as one process, it re-launches itself on 4 ranks through mpirun (the launcher
 * under test); the 2-rank plans run on two pooled sub-groups at once. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/model.h"
#include "gv/safetensors.h"
#include "gv/train.h"
#include "test.h"

static void config(gv_train_config *c, const char *preset, const char *out) {
    gv_train_config_defaults(c);
    if (!strcmp(preset, "gpt2-padded")) { /* vocab 600 padded to 640: the last vocab shard has padding rows */
        gv_model_spec_preset(&c->spec, "gpt2-tiny");
        c->spec.vocab = 600, c->spec.padded_vocab = 640;
    } else if (!strcmp(preset,
                       "llama-kv4")) { /* 8 heads over 4 kv heads: GQA that tp 4 / Ulysses 4 can split */
        gv_model_spec_preset(&c->spec, "llama-tiny");
        c->spec.n_head = 8, c->spec.n_kv_head = 4;
    } else {
        gv_model_spec_preset(&c->spec, preset);
    }
    c->steps = 10;
    c->global_batch = 8;
    c->micro_batches = 2;
    c->seq = 32;
    c->warmup = 2;
    c->eval_every = 0;
    c->out_dir = out;
}

/* Weight comparison: *global = ||x - y|| / ||y|| over all parameters, *worst = the largest per-tensor
 * ||x - y|| / ||y||. The global figure carries the 1e-4 bound; per tensor we allow 1e-3, because AdamW turns
 * gradient rounding noise (~1e-9) on directions whose true gradient is exactly zero (GPT-2's key bias:
 * softmax ignores a per-query constant) into lr-sized steps in either plan, so such a tensor measures the
 * optimizer's amplification of float summation order, not plan equivalence. A wrong shard or a missed update
 * still shows as an O(1) error. */
static void compare_weights(const char *a, const char *b, double *global, double *worst) {
    char name[96] = "";
    CHECK_OK(gv_st_diff(a, b, global, worst, name));
    if (*worst > 1e-4) printf("  %s: per-tensor relative difference %.2e\n", name, *worst);
}

/* A reader that fills nothing and records which rows each tensor was asked for. */
typedef struct {
    int64_t row0[256], nrows[256];
} read_log;

static gv_status log_read(void *ctx, int k, int64_t row0, int64_t nrows, float *dst) {
    read_log *l = ctx;
    (void)dst;
    if (k < 256) l->row0[k] = row0, l->nrows[k] = nrows;
    return GV_OK;
}

int main(int argc, char **argv) {
    if (!gv_launch_is_rank()) {
        setenv("OMP_NUM_THREADS", "1", 1); /* 4 ranks share 2 cores */
        gv_launch_exec(4, argc, argv);
        fprintf(stderr, "test_dist: cannot launch: %s\n", gv_last_error());
        return 1;
    }
    gv_comm *world;
    if (gv_comm_init_world(&world, "mpi") != GV_OK) gv_launch_die(NULL, 1, "%s", gv_last_error());
    int rank = gv_comm_rank(world);
    CHECK(gv_comm_size(world) == 4);
    mkdir("dist_tmp", 0755);
    int pair[2] = {rank / 2 * 2, rank / 2 * 2 + 1};
    gv_comm *half;
    CHECK_OK(gv_comm_group(world, pair, 2, &half));
    const char *presets[] = {"gpt2-tiny", "llama-tiny", "gpt2-padded", "llama-kv4"};
    struct {
        const char *name;
        int ranks, zero, tp, vocab_tp, ulysses, msp;
    } plans[] = {{"dp2", 2, 0, 1, 0, 0, 0},
                 {"dp4", 4, 0, 1, 0, 0, 0},
                 {"zero1-dp2", 2, 1, 1, 0, 0, 0},
                 {"zero1-dp4", 4, 1, 1, 0, 0, 0},
                 {"zero2-dp2", 2, 2, 1, 0, 0, 0},
                 {"zero3-dp2", 2, 3, 1, 0, 0, 0},
                 {"zero3-dp4", 4, 3, 1, 0, 0, 0},
                 {"tp2-zero3-vocab", 4, 3, 2, 1, 0, 0},
                 {"tp2-msp-zero3", 4, 3, 2, 1, 0, 1},
                 {"ulysses2-zero3", 4, 3, 2, 0, 1, 0},
                 {"zero2-dp4", 4, 2, 1, 0, 0, 0},
                 {"tp2-zero2-vocab", 4, 2, 2, 1, 0, 0},
                 {"tp2-dp2", 4, 0, 2, 0, 0, 0},
                 {"tp2-dp2-vocab", 4, 0, 2, 1, 0, 0},
                 {"tp2-zero1-vocab", 4, 1, 2, 1, 0, 0},
                 {"tp4", 4, 0, 4, 0, 0, 0},
                 {"tp4-vocab", 4, 0, 4, 1, 0, 0},
                 {"ulysses2-dp2", 4, 0, 2, 0, 1, 0},
                 {"ulysses2-zero1", 4, 1, 2, 0, 1, 0},
                 {"ulysses4", 4, 0, 4, 0, 1, 0},
                 {"ulysses4-zero1", 4, 1, 4, 0, 1, 0},
                 {"ulysses2-zero2", 4, 2, 2, 0, 1, 0},
                 {"tp2-msp-dp2", 4, 0, 2, 1, 0, 1},
                 {"tp2-msp-zero1", 4, 1, 2, 1, 0, 1},
                 {"tp4-msp", 4, 0, 4, 1, 0, 1},
                 {"tp2", 2, 0, 2, 0, 0, 0},
                 {"tp2-msp", 2, 0, 2, 1, 0, 1},
                 {"ulysses2", 2, 0, 2, 0, 1, 0}};
    for (int p = 0; p < 4; p++) {
        char ref_dir[256], out[256], a[512], b[512];
        snprintf(ref_dir, sizeof ref_dir, "dist_tmp/%s-single", presets[p]);
        gv_train_config c;
        gv_train_result ref = {0};
        float ref_losses[10];
        if (rank == 0) {
            config(&c, presets[p], ref_dir);
            CHECK_OK(gv_train_run(&c, &ref));
            memcpy(ref_losses, ref.losses, sizeof ref_losses);
            free(ref.losses);
        }
        CHECK_OK(gv_comm_broadcast(world, ref_losses, 10, GV_COMM_F32, 0));
        for (size_t kk = 0; kk < 2 * sizeof plans / sizeof plans[0]; kk++) {
            size_t k = kk / 2;
            int ckpt = (int)(kk % 2);                   /* every plan with and without recompute */
            if (plans[k].tp == 4 && p == 1) continue;   /* llama-tiny has 2 kv heads */
            if (p == 2 && !plans[k].vocab_tp) continue; /* the padded vocab matters to vocab-parallel plans */
            if (p == 3 && plans[k].tp != 4)
                continue; /* the 4-way splits llama-tiny's 2 kv heads cannot take */
            gv_comm *comm = plans[k].ranks == 4 ? world : half;
            int group = plans[k].ranks == 4 ? 0 : rank / 2;
            snprintf(out, sizeof out, "dist_tmp/%s-%s%s-g%d", presets[p], plans[k].name, ckpt ? "-ckpt" : "",
                     group);
            config(&c, presets[p], out);
            c.comm = comm;
            c.zero = plans[k].zero;
            c.ckpt = ckpt;
            c.tp = plans[k].tp;
            c.vocab_tp = plans[k].vocab_tp;
            c.ulysses = plans[k].ulysses;
            c.megatron_sp = plans[k].msp;
            gv_train_result r;
            CHECK_OK(gv_train_run(&c, &r));
            if (gv_comm_rank(comm) == 0) {
                double worst = 0;
                for (int s = 0; s < r.steps_done; s++)
                    worst = fmax(worst, fabs(r.losses[s] - ref_losses[s]) / fabs(ref_losses[s]));
                CHECK(r.steps_done == 10);
                CHECK(worst <= 1e-5);
                snprintf(a, sizeof a, "%s/step-000010/model.safetensors", out);
                snprintf(b, sizeof b, "%s/step-000010/model.safetensors", ref_dir);
                double wg, wt;
                compare_weights(a, b, &wg, &wt);
                CHECK(wg <= 1e-4);
                CHECK(wt <= 1e-3);
                printf("%s %-20s%s group %d: loss %.6f -> %.6f, worst loss rel diff %.2e, weights %.2e "
                       "(worst tensor "
                       "%.2e)\n",
                       presets[p], plans[k].name, ckpt ? " +ckpt" : "      ", group, r.losses[0], r.losses[9],
                       worst, wg, wt);
                fflush(stdout);
            }
            free(r.losses);
        }
    }
    /* Checkpoints are layout-free: saved under tp2 x zero1-dp2 on 4 ranks, resumed by one process; and
     * saved by one process, resumed under tp4 with vocab parallelism. The resumed steps match an
     * uninterrupted single-process run. */
    {
        gv_train_config c;
        gv_train_result straight = {0}, r = {0};
        float want[20];
        if (rank == 0) {
            config(&c, "gpt2-tiny", "dist_tmp/reshard-straight");
            c.steps = 20;
            c.save_every = 10;
            CHECK_OK(gv_train_run(&c, &straight));
            memcpy(want, straight.losses, sizeof want);
            free(straight.losses);
        }
        CHECK_OK(gv_comm_broadcast(world, want, 20, GV_COMM_F32, 0));
        config(&c, "gpt2-tiny", "dist_tmp/reshard-a");
        c.steps = 20;
        c.save_every = 10;
        c.comm = world;
        c.tp = 2;
        c.vocab_tp = 1;
        c.zero = 1;
        CHECK_OK(gv_train_run(&c, &r));
        free(r.losses);
        CHECK_OK(gv_comm_barrier(world));
        if (rank == 0) {
            config(&c, "gpt2-tiny", "dist_tmp/reshard-b");
            c.steps = 20;
            c.resume = "dist_tmp/reshard-a/step-000010";
            CHECK_OK(gv_train_run(&c, &r));
            CHECK(r.steps_done == 10);
            double worst = 0;
            for (int s = 0; s < r.steps_done; s++)
                worst = fmax(worst, fabs(r.losses[s] - want[10 + s]) / want[10 + s]);
            printf("resume tp2 x zero1-dp2 (4 ranks) -> 1 process: worst loss rel diff %.2e\n", worst);
            CHECK(worst <= 1e-5);
            free(r.losses);
        }
        config(&c, "gpt2-tiny", "dist_tmp/reshard-c");
        c.steps = 20;
        c.comm = world;
        c.tp = 4;
        c.vocab_tp = 1;
        c.resume = "dist_tmp/reshard-straight/step-000010";
        CHECK_OK(gv_train_run(&c, &r));
        if (rank == 0) {
            double worst = 0;
            for (int s = 0; s < r.steps_done; s++)
                worst = fmax(worst, fabs(r.losses[s] - want[10 + s]) / want[10 + s]);
            printf("resume 1 process -> tp4 + vocab tp (4 ranks): worst loss rel diff %.2e\n", worst);
            CHECK(r.steps_done == 10 && worst <= 1e-5);
        }
        free(r.losses);
    }

    /* Ulysses with uneven counted positions: rank 1 of each pair holds only ignored targets (-1). The pair's
     * mean loss and its summed gradients equal one process on the whole sequence. */
    {
        gv_model_spec s;
        gv_backend *be;
        CHECK_OK(gv_model_spec_preset(&s, "llama-tiny"));
        CHECK_OK(gv_backend_init(&be, "cpu", 0));
        int B = 2, T = 16, Tl = T / 2, half_rank = rank % 2;
        int32_t tok[32], tgt[32], ltok[16], ltgt[16];
        for (int i = 0; i < B * T; i++) {
            tok[i] = (int32_t)((i * 37 + 5) % 512);
            tgt[i] = i % T >= Tl ? -1 : (int32_t)((i * 11 + 3) % 512);
        }
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Tl; t++) {
                ltok[b * Tl + t] = tok[b * T + half_rank * Tl + t];
                ltgt[b * Tl + t] = tgt[b * T + half_rank * Tl + t];
            }
        gv_model *ref, *uly;
        float lref, luly;
        gv_named_f32 *gr, *gu;
        int nr, nu;
        CHECK_OK(gv_model_init(&ref, &s, be, B, T));
        CHECK_OK(gv_model_init_weights(ref, 3));
        CHECK_OK(gv_model_zero_grad(ref));
        CHECK_OK(gv_model_forward(ref, tok, tgt, &lref));
        CHECK_OK(gv_model_backward(ref, 1.0f));
        CHECK_OK(gv_model_export_hf(ref, GV_BUF_GRADS, &gr, &nr));
        gv_model_dist d = {.dp = half, .sp = half};
        CHECK_OK(gv_model_init_dist(&uly, &s, be, B, Tl, &d));
        CHECK_OK(gv_model_init_weights(uly, 3));
        CHECK_OK(gv_model_zero_grad(uly));
        CHECK_OK(gv_model_forward(uly, ltok, ltgt, &luly));
        CHECK_OK(gv_model_backward(uly, 0.5f)); /* 1 / (micro-batches x ranks of the gradient sum) */
        CHECK_OK(gv_model_reduce_grads(uly));
        CHECK_OK(gv_model_export_hf(uly, GV_BUF_GRADS, &gu, &nu));
        double lsum = luly;
        CHECK_OK(gv_comm_allreduce(half, &lsum, &lsum, 1, GV_COMM_F64, GV_COMM_SUM));
        CHECK_CLOSE(lsum / 2, lref, 1e-5, 0);
        double dd = 0, yy = 0;
        for (int i = 0; i < nr && i < nu; i++) {
            size_t n = 1;
            for (int k = 0; k < gr[i].ndim; k++) n *= (size_t)gr[i].shape[k];
            for (size_t k = 0; k < n; k++) {
                dd += (double)(gu[i].data[k] - gr[i].data[k]) * (gu[i].data[k] - gr[i].data[k]);
                yy += (double)gr[i].data[k] * gr[i].data[k];
            }
        }
        if (rank == 0)
            printf("ulysses2 with ignored targets on one rank: loss %.6f vs %.6f, grads rel %.2e\n", lsum / 2,
                   lref, sqrt(dd / yy));
        CHECK(nr == nu && sqrt(dd / yy) < 1e-5);
        gv_named_f32_free(gr, nr);
        gv_named_f32_free(gu, nu);
        gv_model_free(ref);
        gv_model_free(uly);
        gv_backend_free(be);
    }

    /* Loading reads only a rank's rows: under tp 2 with vocab parallelism (600 of 640 padded rows) the
     * embedding asks for rows [0, 320) or [320, 600), a column-parallel LLaMA-style q/k/v piece for its
     * heads; replicated and transposed (GPT-2 Conv1D) tensors for all rows. */
    {
        gv_model_spec s;
        gv_backend *be;
        gv_model *m;
        gv_model_spec_preset(&s, "gpt2-tiny");
        s.vocab = 600, s.padded_vocab = 640;
        CHECK_OK(gv_backend_init(&be, "cpu", 0));
        gv_model_dist d = {.tp = half, .vocab_parallel = 1};
        CHECK_OK(gv_model_init_dist(&m, &s, be, 2, 16, &d));
        read_log log = {0};
        CHECK_OK(gv_model_import_stream(m, GV_BUF_WEIGHTS, log_read, &log));
        int r = rank % 2, wte = -1, c_attn = -1, ln = -1;
        for (int k = 0; k < gv_model_hf_count(m); k++) {
            const char *name;
            int nd;
            int64_t sh[4];
            gv_model_hf_info(m, k, &name, &nd, sh);
            if (!strcmp(name, "wte.weight")) wte = k;
            if (!strcmp(name, "h.0.attn.c_attn.weight")) { /* transposed: all rows */
                c_attn = k;
                CHECK(log.row0[k] == 0 && log.nrows[k] == sh[0]);
            }
            if (!strcmp(name, "h.0.ln_1.weight")) { /* replicated: all rows */
                ln = k;
                CHECK(log.row0[k] == 0 && log.nrows[k] == sh[0]);
            }
        }
        CHECK(wte >= 0 && c_attn >= 0 && ln >= 0);
        CHECK(log.row0[wte] == 320 * r && log.nrows[wte] == (r ? 280 : 320));
        gv_model_free(m);
        gv_backend_free(be);
    }

    /* ZeRO-1 halves/quarters the optimizer state (m, v) per rank, DDP keeps it whole. */
    gv_train_config c;
    gv_train_result r1, r2;
    config(&c, "gpt2-tiny", NULL);
    c.steps = 1;
    c.comm = world;
    CHECK_OK(gv_train_run(&c, &r1));
    c.zero = 1;
    CHECK_OK(gv_train_run(&c, &r2));
    CHECK(r2.memory.optimizer * 4 == r1.memory.optimizer);
    CHECK(r2.memory.parameters == r1.memory.parameters && r2.memory.gradients == r1.memory.gradients);
    free(r1.losses);
    free(r2.losses);
    c.zero = 2; /* ZeRO-2 shards the same state as ZeRO-1 here (gradients accumulate unsharded) */
    CHECK_OK(gv_train_run(&c, &r2));
    CHECK(r2.memory.optimizer * 4 == r1.memory.optimizer && r2.memory.gradients == r1.memory.gradients);
    free(r2.losses);

    /* Bytes per rank against the ZeRO formulas, for gpt2-tiny on dp = 4 (fp32 on cpu: the weights are the
     * master copy). Parameter sizes are rounded to 64 elements; ZeRO units (embeddings, each layer, final
     * norm) to dp*64. With Pf the flat size and Pu the sum of units:
     *   parameters = gradients = Pf (DDP, ZeRO-1, ZeRO-2), Pu/dp + one embedding + two layers + one final
     *   unit (ZeRO-3 working slots; the second layer slot holds the prefetched next layer, overlap on), one
     *   layer with overlap off; optimizer (m, v) = 2 Pf (DDP), 2 Pf/dp (ZeRO-1/2), 2 Pu/dp (ZeRO-3). */
    {
        size_t Cc = 64, Vp = 512, Tm = 128, F = 256, L = 2, dp = 4, u = dp * 64;
#define R64(x) (((x) + 63) / 64 * 64)
#define RU(x) (((x) + u - 1) / u * u)
        size_t emb = R64(Vp * Cc) + R64(Tm * Cc);
        size_t layer = 4 * R64(Cc) + R64(3 * Cc * Cc) + R64(3 * Cc) + R64(Cc * Cc) + R64(Cc) + R64(F * Cc) +
                       R64(F) + R64(Cc * F) + R64(Cc);
        size_t fin = 2 * R64(Cc);
        size_t Pf = RU(emb + L * layer + fin), Pu = RU(emb) + L * RU(layer) + RU(fin);
        size_t want_p[5] = {Pf, Pf, Pf, Pu / dp + RU(emb) + 2 * RU(layer) + RU(fin),
                            Pu / dp + RU(emb) + RU(layer) + RU(fin)};
        size_t want_o[5] = {2 * Pf, 2 * Pf / dp, 2 * Pf / dp, 2 * Pu / dp, 2 * Pu / dp};
        for (int z = 0; z < 5; z++) {
            config(&c, "gpt2-tiny", NULL);
            c.steps = 1;
            c.comm = world;
            c.zero = z < 4 ? z : 3;
            c.overlap = z < 4 ? 1 : -1;
            CHECK_OK(gv_train_run(&c, &r1));
            if (rank == 0)
                printf("%s: parameters %zu B (formula %zu), gradients %zu B, optimizer %zu B (formula %zu)\n",
                       (const char *[]){"ddp", "zero1", "zero2", "zero3", "zero3 overlap off"}[z],
                       r1.memory.parameters, want_p[z] * 4, r1.memory.gradients, r1.memory.optimizer,
                       want_o[z] * 4);
            CHECK(r1.memory.parameters == want_p[z] * 4 && r1.memory.gradients == want_p[z] * 4);
            CHECK(r1.memory.optimizer == want_o[z] * 4);
            free(r1.losses);
        }
    }

    /* Megatron-SP: per layer, the four stored [B*T, C] residual-region tensors (two norm outputs, two
     * residual sums) and four [B*T] norm statistics shrink to this rank's T/tp positions. Measured per layer
     * as the difference between 4 and 2 layers, with tp 2 over pairs of ranks. */
    size_t per_layer[2];
    for (int msp = 0; msp < 2; msp++) {
        size_t act[2];
        for (int k = 0; k < 2; k++) {
            config(&c, "llama-tiny", NULL);
            c.steps = 1;
            c.spec.n_layer = 2 + 2 * k;
            c.comm = world;
            c.tp = 2;
            c.vocab_tp = 1;
            c.megatron_sp = msp;
            CHECK_OK(gv_train_run(&c, &r1));
            act[k] = r1.memory.activations;
            free(r1.losses);
        }
        per_layer[msp] = (act[1] - act[0]) / 2;
    }
    size_t N = 8 / 2 / 2 * 32, Nl = N / 2, Cm = 64; /* local batch 2 (B 8, M 2, dp 2) x T 32 */
#define A256(x) (((x) + 255) / 256 * 256)           /* arena views are 256-byte aligned */
    size_t want = 4 * (A256(N * Cm * 4) - A256(Nl * Cm * 4)) + 4 * (A256(N * 4) - A256(Nl * 4));
    if (rank == 0)
        printf("Megatron-SP: activations per layer %zu B -> %zu B (formula: %zu B less)\n", per_layer[0],
               per_layer[1], want);
    CHECK(per_layer[0] - per_layer[1] == want);
    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0) printf("test_dist: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
