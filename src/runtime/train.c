#include "gv/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gv/backend.h"
#include "gv/checkpoint.h"
#include "gv/comm.h"
#include "gv/data.h"
#include "gv/hybrid.h"
#include "gv/log.h"
#include "gv/plan.h"

void gv_train_config_defaults(gv_train_config *c) {
    memset(c, 0, sizeof *c);
    gv_model_spec_preset(&c->spec, "gpt2-tiny");
    c->backend = "cpu";
    c->steps = 300;
    c->seed = 1337;
    c->global_batch = 8;
    c->micro_batches = 1;
    c->seq = 64;
    c->lr = 3e-3f;
    c->min_lr_frac = 0.1f;
    c->warmup = 20;
    c->weight_decay = 0.1f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->grad_clip = 1.0f;
    c->eval_every = 50;
    c->eval_batches = 4;
}

gv_status gv_train_comm_kind(const gv_train_config *c, const char **kind) {
    const char *k = c->comm_kind ? c->comm_kind : "auto";
    int cuda = c->backend && !strcmp(c->backend, "cuda");
    *kind = NULL;
    if (!strcmp(k, "mpi")) return GV_OK;
    if (!strcmp(k, "auto")) {
        *kind = cuda ? "auto" : NULL;
        return GV_OK;
    }
    if (!strcmp(k, "nccl")) {
        if (!cuda)
            return gv_fail(GV_ERR_INVALID, "--comm nccl: needs --backend cuda (NCCL moves device buffers)");
        if (!gv_comm_nccl_built())
            return gv_fail(GV_ERR_UNSUPPORTED,
                           "--comm nccl: not built (configure with -DGV_CUDA=ON where NCCL is installed)");
        *kind = "nccl";
        return GV_OK;
    }
    return gv_fail(GV_ERR_INVALID, "--comm '%s': expected mpi, nccl or auto", k);
}

gv_status gv_train_config_validate(const gv_train_config *c) {
    const char *kind;
    GV_TRY(gv_train_comm_kind(c, &kind));
    if (c->steps < 1) return gv_fail(GV_ERR_INVALID, "--steps %d: must be at least 1", c->steps);
    if (c->global_batch < 1)
        return gv_fail(GV_ERR_INVALID, "--global-batch %d: must be at least 1", c->global_batch);
    if (c->micro_batches < 1 || c->global_batch % c->micro_batches)
        return gv_fail(GV_ERR_INVALID, "--micro-batches %d: must divide --global-batch %d", c->micro_batches,
                       c->global_batch);
    if (c->seq < 1 || c->seq > c->spec.max_seq)
        return gv_fail(GV_ERR_INVALID, "--seq %d: must be in [1, %d] (the model's max_seq)", c->seq,
                       c->spec.max_seq);
    if (!(c->lr > 0)) return gv_fail(GV_ERR_INVALID, "--lr %g: must be positive", c->lr);
    if (c->warmup < 0) return gv_fail(GV_ERR_INVALID, "--warmup %d: must be non-negative", c->warmup);
    if (c->min_lr_frac < 0 || c->min_lr_frac > 1)
        return gv_fail(GV_ERR_INVALID, "--min-lr-frac %g: must be in [0, 1]", c->min_lr_frac);
    if (c->grad_clip < 0)
        return gv_fail(GV_ERR_INVALID, "--grad-clip %g: must be non-negative", c->grad_clip);
    if (c->save_every < 0)
        return gv_fail(GV_ERR_INVALID, "--save-every %d: must be non-negative", c->save_every);
    if (c->save_every > 0 && !c->out_dir) return gv_fail(GV_ERR_INVALID, "--save-every needs --out DIR");
    GV_TRY(gv_model_spec_validate(&c->spec, NULL));
    gv_plan p;
    GV_TRY(gv_train_plan(c, &p));
    gv_status st = gv_plan_validate(&p, &c->spec, c->seq, "plan");
    if (st == GV_OK) st = gv_hybrid_check(&c->spec, &p, "plan");
    gv_plan_free(&p);
    return st;
}

gv_status gv_train_plan(const gv_train_config *c, gv_plan *out) {
    if (c->plan) return gv_plan_copy(out, c->plan);
    /* GLOBAL mode: one strategy for every layer. The vocab layers take the layers' tp with --vocab-tp
     * (and always under Ulysses, whose sequence split they follow), else tp 1 over all ranks of a stage. */
    int world = c->comm ? gv_comm_size(c->comm) : c->world > 0 ? c->world : 1, tp = c->tp > 0 ? c->tp : 1;
    gv_sp_mode sp = c->ulysses ? GV_SP_ULYSSES : c->megatron_sp ? GV_SP_MEGATRON : GV_SP_NONE;
    if (c->ulysses && c->vocab_tp)
        return gv_fail(GV_ERR_INVALID,
                       "--sp ulysses: the vocab layers follow the sequence split (no --vocab-tp)");
    int vt = c->vocab_tp || c->ulysses ? tp : 1;
    gv_layer_strategy l = {tp, sp, c->zero, c->ckpt}, v = {vt, vt > 1 ? sp : GV_SP_NONE, c->zero, 0};
    return gv_plan_uniform(out, world, c->pp > 0 ? c->pp : 1, c->spec.n_layer, l, v, c->schedule,
                           c->global_batch, c->micro_batches);
}

gv_status gv_train_config_from_plan(gv_train_config *c, const gv_plan *p, const char *where) {
    if (p->n_layer != c->spec.n_layer)
        return gv_fail(GV_ERR_INVALID, "%s: plan has %d layers, model %s has %d", where, p->n_layer,
                       c->spec.name, c->spec.n_layer);
    c->plan = p;
    c->global_batch = p->global_batch;
    c->micro_batches = p->micro_batches;
    return GV_OK;
}

float gv_train_lr(const gv_train_config *c, int s) {
    if (s < c->warmup) return c->lr * (float)(s + 1) / (float)c->warmup;
    int decay = c->steps - c->warmup;
    if (decay <= 1) return c->lr;
    float frac = (float)(s - c->warmup) / (float)(decay - 1);
    if (frac > 1) frac = 1;
    float min_lr = c->lr * c->min_lr_frac;
    return min_lr + 0.5f * (c->lr - min_lr) * (1.0f + cosf(3.14159265358979f * frac));
}

static double gv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

typedef struct {
    gv_backend *be;
    gv_comm *comm; /* NULL: one process */
    int leader;    /* rank 0: writes metrics, reports progress */
    gv_hybrid *model;
    gv_dataset *data;
    int32_t *tokens, *targets;           /* host [M][Bm*T*IW], [M][Bm*T]: the global batch's micro-batches */
    int32_t *next_tokens, *next_targets; /* the same for the next step, read while the device works */
    int next_step;                       /* the step next_* hold, -1: none */
    double *step_ms;                     /* [steps] */
    FILE *metrics;
} gv_trainer;

static int gv_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median step time, the first step (warm-up) left out when there are others. */
static double gv_median_ms(const double *ms, int n) {
    if (n <= 0) return 0;
    int skip = n > 1, k = n - skip;
    double *v = malloc((size_t)k * sizeof *v);
    if (!v) return ms[n - 1];
    memcpy(v, ms + skip, (size_t)k * sizeof *v);
    qsort(v, (size_t)k, sizeof *v, gv_cmp_double);
    double m = k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
    free(v);
    return m;
}

/* The global batch of (step, split), micro-batch by micro-batch: rows do not depend on the plan (each part
 * of the runtime takes its rows and positions). */
static gv_status gv_fetch_into(const gv_train_config *c, gv_trainer *t, uint64_t step, int split,
                               int32_t *tokens, int32_t *targets) {
    int M = c->micro_batches, Bm = c->global_batch / M, T = c->seq, IW = gv_model_spec_input_width(&c->spec);
    for (int mb = 0; mb < M; mb++) {
        size_t at = (size_t)mb * Bm * T;
        GV_TRY(gv_dataset_rows_for(t->data, &c->spec, step, split, (int64_t)mb * Bm, Bm, T, tokens + at * IW,
                                   targets + at));
    }
    return GV_OK;
}

static gv_status gv_fetch_batch(const gv_train_config *c, gv_trainer *t, uint64_t step, int split) {
    return gv_fetch_into(c, t, step, split, t->tokens, t->targets);
}

/* Step s's training rows into t->tokens: the ones read ahead during step s - 1, else read now. */
static gv_status gv_fetch_train(const gv_train_config *c, gv_trainer *t, int s) {
    if (t->next_step != s) return gv_fetch_batch(c, t, (uint64_t)s, 0);
    int32_t *x = t->tokens, *y = t->targets;
    t->tokens = t->next_tokens;
    t->targets = t->next_targets;
    t->next_tokens = x;
    t->next_targets = y;
    t->next_step = -1;
    return GV_OK;
}

/* Mean loss over eval_batches global batches of the eval split. */
static gv_status gv_train_eval(const gv_train_config *c, gv_trainer *t, float *out) {
    double sum = 0.0;
    for (int e = 0; e < c->eval_batches; e++) {
        float loss;
        GV_TRY(gv_fetch_batch(c, t, (uint64_t)e, 1));
        GV_TRY(gv_hybrid_eval_batch(t->model, t->tokens, t->targets, &loss));
        sum += loss;
    }
    *out = c->eval_batches ? (float)(sum / c->eval_batches) : NAN;
    return GV_OK;
}

/* The output directory must exist (or be creatable) before any step runs, so a bad --out costs nothing. */
static gv_status gv_make_out_dir(const char *dir) {
    if (mkdir(dir, 0755) == 0) return GV_OK;
    int err = errno;
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode)) return GV_OK;
    return gv_fail(GV_ERR_IO, "--out %s: cannot create the output directory: %s", dir, strerror(err));
}

static gv_status gv_save(const gv_train_config *c, gv_trainer *t, int step) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/step-%06d", c->out_dir, step);
    gv_ckpt_meta meta = {.step = step, .seed = c->seed, .data_cursor = step};
    GV_TRY(gv_checkpoint_save(t->model, dir, &meta));
    if (t->leader) gv_info("saved checkpoint %s", dir);
    return GV_OK;
}

static gv_status gv_train_loop(const gv_train_config *c, gv_trainer *t, gv_train_result *r, int start) {
    int T = c->seq;
    gv_adamw_cfg opt = {c->beta1, c->beta2, c->eps, c->weight_decay};
    double t_begin = gv_now_ms(), tok_total = 0, ms_total = 0;
    for (int s = start; s < c->steps; s++) {
        double t0 = gv_now_ms();
        GV_TRY(gv_hybrid_zero_grad(t->model));
        float loss;
        GV_TRY(gv_fetch_train(c, t, s));
        GV_TRY(gv_hybrid_train_batch(t->model, t->tokens, t->targets, &loss));
        GV_TRY(gv_hybrid_reduce_grads(t->model));
        if (!isfinite(loss))
            return gv_fail(GV_ERR_INVALID, "step %d: loss is %g (diverged; try a lower --lr)", s + 1, loss);
        double norm;
        GV_TRY(gv_hybrid_grad_norm(t->model, &norm));
        float scale = (c->grad_clip > 0 && norm > c->grad_clip) ? (float)(c->grad_clip / norm) : 1.0f;
        float lr = gv_train_lr(c, s);
        GV_TRY(gv_hybrid_adamw_step(t->model, &opt, lr, scale, s + 1));
        if (s + 1 < c->steps) { /* the next step's rows, on the host while the device finishes this one */
            GV_TRY(gv_fetch_into(c, t, (uint64_t)s + 1, 0, t->next_tokens, t->next_targets));
            t->next_step = s + 1;
        }
        GV_TRY(gv_backend_sync(t->be)); /* step time includes the device's work */
        double ms = gv_now_ms() - t0;

        gv_step_info info = {.step = s + 1,
                             .steps = c->steps,
                             .loss = loss,
                             .lr = lr,
                             .grad_norm = norm,
                             .step_ms = ms,
                             .eval_loss = NAN};
        double toks = (double)c->global_batch * T;
        info.tokens_per_s = toks / (ms / 1e3);
        tok_total += toks;
        ms_total += ms;
        double avg_ms = (gv_now_ms() - t_begin) / (s + 1 - start);
        info.eta_s = avg_ms * (c->steps - s - 1) / 1e3;
        if (c->eval_every > 0 && ((s + 1) % c->eval_every == 0 || s + 1 == c->steps) && c->eval_batches > 0) {
            GV_TRY(gv_train_eval(c, t, &info.eval_loss));
            r->last_eval_loss = info.eval_loss;
        }
        if (r->steps_done == 0) r->first_loss = loss;
        t->step_ms[r->steps_done] = ms;
        r->losses[r->steps_done++] = loss;
        r->last_loss = loss;
        if (t->metrics) { /* only the leader opened it */
            fprintf(t->metrics,
                    "{\"step\": %d, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.6g, \"step_ms\": %.3f, "
                    "\"tokens_per_s\": %.1f",
                    s + 1, loss, lr, norm, ms, info.tokens_per_s);
            if (!isnan(info.eval_loss)) fprintf(t->metrics, ", \"eval_loss\": %.9g", info.eval_loss);
            fprintf(t->metrics, "}\n");
            fflush(t->metrics);
        }
        if (c->on_step && t->leader) c->on_step(&info, c->ctx);
        int last = s + 1 == c->steps;
        if (c->out_dir && ((c->save_every > 0 && (s + 1) % c->save_every == 0) || last))
            GV_TRY(gv_save(c, t, s + 1));
    }
    r->mean_tokens_per_s = ms_total > 0 ? tok_total / (ms_total / 1e3) : 0;
    return GV_OK;
}

gv_status gv_train_run(const gv_train_config *c, gv_train_result *r) {
    memset(r, 0, sizeof *r);
    r->last_eval_loss = NAN;
    GV_TRY(gv_train_config_validate(c));
    gv_trainer t = {0};
    t.comm = c->comm;
    int world = c->comm ? gv_comm_size(c->comm) : 1, wrank = c->comm ? gv_comm_rank(c->comm) : 0;
    t.leader = wrank == 0;
    gv_plan plan;
    gv_status st = gv_train_plan(c, &plan);
    if (st != GV_OK) return st;
    gv_backend *be = NULL;
    /* an nccl communicator chose this rank's GPU (its own, by local rank): the backend runs there */
    int device = c->comm && gv_comm_device(c->comm) >= 0 ? gv_comm_device(c->comm) : c->device;
    st = gv_backend_init(&t.be, c->backend ? c->backend : "cpu", device);
    be = t.be;
    if (st == GV_OK) st = gv_dataset_open_for(&t.data, c->data, c->seed, &c->spec);
    if (st == GV_OK && gv_dataset_vocab(t.data) > c->spec.vocab)
        st = gv_fail(GV_ERR_INVALID, "data %s has tokens up to %d but model %s has vocab %d",
                     gv_dataset_describe(t.data), gv_dataset_vocab(t.data) - 1, c->spec.name, c->spec.vocab);
    gv_hybrid_opts ho = {c->overlap, c->host_redist};
    if (st == GV_OK) st = gv_hybrid_init_opts(&t.model, &c->spec, be, c->comm, &plan, c->seq, "plan", &ho);
    gv_plan_free(&plan);
    int start = 0;
    if (st == GV_OK && c->out_dir && t.leader) st = gv_make_out_dir(c->out_dir);
    if (st == GV_OK && c->resume) {
        gv_ckpt_meta meta;
        st = gv_checkpoint_load(t.model, c->resume, &meta);
        if (st == GV_OK && meta.seed != c->seed)
            st = gv_fail(GV_ERR_INVALID,
                         "%s: checkpoint was trained with --seed %llu, this run has --seed %llu", c->resume,
                         (unsigned long long)meta.seed, (unsigned long long)c->seed);
        if (st == GV_OK && meta.step >= c->steps)
            st = gv_fail(GV_ERR_INVALID, "%s: checkpoint is at step %lld, nothing left to do for --steps %d",
                         c->resume, (long long)meta.step, c->steps);
        start = (int)meta.data_cursor;
    } else if (st == GV_OK && c->init_from) {
        st = gv_hybrid_load_weights(t.model, c->init_from);
    } else if (st == GV_OK) {
        st = gv_hybrid_init_weights(t.model, c->seed);
    }
    size_t BT = (size_t)c->global_batch * c->seq;
    if (st == GV_OK) {
        t.tokens = malloc(BT * (size_t)gv_model_spec_input_width(&c->spec) * 4);
        t.targets = malloc(BT * 4);
        t.next_tokens = malloc(BT * (size_t)gv_model_spec_input_width(&c->spec) * 4);
        t.next_targets = malloc(BT * 4);
        t.next_step = -1;
        r->losses = calloc((size_t)c->steps, sizeof *r->losses);
        t.step_ms = calloc((size_t)c->steps, sizeof *t.step_ms);
        if (!t.tokens || !t.targets || !t.next_tokens || !t.next_targets || !r->losses || !t.step_ms)
            st = gv_fail(GV_ERR_NOMEM, "train: out of host memory");
    }
    if (st == GV_OK && c->metrics && t.leader) {
        /* Resumed runs append so one file holds the whole curve. */
        t.metrics = fopen(c->metrics, c->resume ? "a" : "w");
        if (!t.metrics) st = gv_fail(GV_ERR_IO, "%s: cannot open metrics file for writing", c->metrics);
    }
    if (st == GV_OK) st = gv_train_loop(c, &t, r, start);
    if (st == GV_OK) {
        gv_hybrid_memory(t.model, &r->memory);
        gv_hybrid_inflight(t.model, &r->act_slots, &r->act_peak);
        gv_hybrid_timing(t.model, &r->times);
        gv_hybrid_p2p_stats(t.model, &r->p2p);
        r->median_step_ms = gv_median_ms(t.step_ms, r->steps_done);
        r->stage = gv_hybrid_stage(t.model);
    }
    /* Every rank's memory by category and time split, collected on the leader (ranks of one plan differ:
     * ZeRO pieces, vocab shards, pipeline stages). */
    enum { NV = 17 };
    double *mem = NULL;
    if (st == GV_OK) {
        mem = calloc((size_t)world * NV, sizeof *mem);
        if (!mem) st = gv_fail(GV_ERR_NOMEM, "train: out of host memory");
    }
    if (st == GV_OK) {
        const gv_memory_report *m = &r->memory;
        const gv_hybrid_times *x = &r->times;
        double mine[NV] = {(double)m->parameters,
                           (double)m->gradients,
                           (double)m->optimizer,
                           (double)m->activations,
                           (double)m->workspace,
                           (double)m->comm,
                           x->forward_ms,
                           x->backward_ms,
                           x->redistribute_ms,
                           x->p2p_ms,
                           (double)r->p2p.nonblocking,
                           (double)r->p2p.early,
                           (double)r->p2p.device,
                           (double)r->p2p.host,
                           (double)r->p2p.blocking,
                           (double)r->p2p.redist_device,
                           (double)r->p2p.redist_host};
        if (t.comm)
            st = gv_comm_allgather(t.comm, mine, mem, NV, GV_COMM_F64);
        else
            memcpy(mem, mine, sizeof mine);
    }
    if (t.metrics && st == GV_OK) {
        gv_memory_report *m = &r->memory;
        fprintf(t.metrics,
                "{\"final\": true, \"steps\": %d, \"loss\": %.9g, \"tokens_per_s\": %.1f, \"memory_bytes\": "
                "{\"parameters\": %zu, \"gradients\": %zu, \"optimizer\": %zu, \"activations\": %zu, "
                "\"workspace\": %zu, \"comm\": %zu}, \"memory_bytes_per_rank\": [",
                r->steps_done, r->last_loss, r->mean_tokens_per_s, m->parameters, m->gradients, m->optimizer,
                m->activations, m->workspace, m->comm);
        for (int k = 0; k < world; k++)
            fprintf(t.metrics,
                    "%s{\"rank\": %d, \"parameters\": %.0f, \"gradients\": %.0f, \"optimizer\": %.0f, "
                    "\"activations\": %.0f, \"workspace\": %.0f, \"comm\": %.0f, \"forward_ms\": %.3f, "
                    "\"backward_ms\": %.3f, \"redistribute_ms\": %.3f, \"p2p_ms\": %.3f, \"p2p_messages\": "
                    "{\"nonblocking\": %.0f, \"early\": %.0f, \"device\": %.0f, \"host\": %.0f, "
                    "\"blocking\": %.0f, \"redist_device\": %.0f, \"redist_host\": %.0f}}",
                    k ? ", " : "", k, mem[NV * k], mem[NV * k + 1], mem[NV * k + 2], mem[NV * k + 3],
                    mem[NV * k + 4], mem[NV * k + 5], mem[NV * k + 6], mem[NV * k + 7], mem[NV * k + 8],
                    mem[NV * k + 9], mem[NV * k + 10], mem[NV * k + 11], mem[NV * k + 12], mem[NV * k + 13],
                    mem[NV * k + 14], mem[NV * k + 15], mem[NV * k + 16]);
        fprintf(t.metrics, "], \"measured_step_ms\": %.3f", r->median_step_ms);
        if (c->predicted) {
            /* Beside the measurement: the cost model's step time and each stage's memory by category. */
            const gv_plan_cost *pc = c->predicted;
            fprintf(t.metrics, ", \"predicted_step_ms\": %.3f, \"predicted_mb_per_stage\": [",
                    pc->step_s * 1e3);
            for (int k = 0; k < pc->pp && k < 64; k++) {
                const gv_cost_mem *pm = &pc->mem[k];
                fprintf(t.metrics,
                        "%s{\"stage\": %d, \"parameters\": %.3f, \"gradients\": %.3f, \"optimizer\": %.3f, "
                        "\"activations\": %.3f, \"workspace\": %.3f, \"comm\": %.3f}",
                        k ? ", " : "", k, pm->parameters, pm->gradients, pm->optimizer, pm->activations,
                        pm->workspace, pm->comm);
            }
            fprintf(t.metrics, "]");
        }
        fprintf(t.metrics, "}\n");
    }
    free(mem);
    if (t.metrics) fclose(t.metrics);
    free(t.tokens);
    free(t.targets);
    free(t.next_tokens);
    free(t.next_targets);
    free(t.step_ms);
    gv_hybrid_free(t.model);
    gv_dataset_free(t.data);
    gv_backend_free(be);
    return st;
}
