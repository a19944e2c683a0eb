/* The training loop: data, model, AdamW with warmup + cosine schedule, gradient accumulation over
 * micro-batches, global-norm clipping, periodic eval, JSONL metrics, atomic checkpoints and resume. */
#ifndef GV_TRAIN_H
#define GV_TRAIN_H
#include <stdint.h>
#include "gv/cost.h"
#include "gv/hybrid.h"
#include "gv/model.h"
#include "gv/plan.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int step, steps; /* step just finished (1-based), total */
    float loss, lr;
    double grad_norm;
    double step_ms, tokens_per_s, eta_s;
    float eval_loss; /* NaN unless evaluated at this step */
} gv_step_info;

typedef struct {
    gv_model_spec spec;
    const char *backend; /* "cpu" (default) or "cuda" */
    int device;
    const char *data;      /* NULL/"builtin", a .bin token shard, or a text file */
    const char *init_from; /* optional HF safetensors weights */
    int steps;
    uint64_t seed;
    int global_batch;  /* B: sequences per optimizer step */
    int micro_batches; /* M: B/M sequences per forward/backward */
    int seq;           /* T */
    float lr, min_lr_frac;
    int warmup;
    float weight_decay, beta1, beta2, eps, grad_clip;
    int eval_every, eval_batches;
    const char *metrics; /* JSONL path or NULL */
    const char *out_dir; /* checkpoints go to out_dir/step-NNNNNN */
    int save_every;      /* 0: only at the end (when out_dir is set) */
    const char *resume;  /* checkpoint directory or NULL */
    /* Distributed run over the ranks of `comm` (NULL = this process alone): tensor-parallel groups of `tp`
     * consecutive ranks (Megatron; vocab_tp: the vocab layers too), data parallelism over the rest with ZeRO
     * stage `zero` (0 = DDP, 1..3 = ZeRO-1/2/3). Every rank calls gv_train_run; rank 0 writes metrics,
     * checkpoints and calls on_step. */
    struct gv_comm *comm;
    /* The communicator the caller should build for this run (gv_train_comm_kind): "mpi" (host buffers;
     * several ranks may share a GPU), "nccl" (device buffers, a GPU per rank) or "auto"/NULL (nccl when it
     * is built, the backend is cuda and every rank of the host has its own GPU; mpi otherwise). With an
     * nccl comm the backend runs on the comm's GPU (gv_comm_device), whatever `device` says. */
    const char *comm_kind;
    int world; /* rank count to validate against before the ranks exist (when comm is NULL); 0 = 1 */
    int tp, vocab_tp;
    int ulysses; /* the tp group shards the sequence instead (Ulysses); gradients are summed over all ranks */
    int megatron_sp; /* with tp and vocab_tp: Megatron sequence parallelism of the norm/residual regions */
    int zero;
    int ckpt; /* recompute every layer's activations in backward */

    /* data-parallel communication overlapped with compute: 1 on, -1 off, 0 = $GV_OVERLAP (1|on|0|off),
     * else on (gv_hybrid_opts) */
    int overlap;
    /* redistributions between layouts (and the messages of pipeline cuts that change layout) through host
     * F32: 1 yes, -1 on the device, 0 = $GV_HOST_REDIST, else on the device (gv_hybrid_opts) */
    int host_redist;
    int pp;               /* pipeline stages (even split, earlier stages take the extra layers); 0 = 1 */
    gv_schedule schedule; /* of the pipeline */
    /* A layer-wise plan (per-layer strategies, vocab strategy, stages, schedule, batch); when set it
     * replaces tp, vocab_tp, ulysses, megatron_sp, zero, ckpt and pp. Owned by the caller. */
    const gv_plan *plan;
    /* The cost model's prediction for the plan (--plan auto): reported beside the measurement at the end
     * (metrics final record). Owned by the caller. */
    const gv_plan_cost *predicted;
    void (*on_step)(const gv_step_info *info, void *ctx);
    void *ctx;
} gv_train_config;

typedef struct {
    int steps_done;
    float first_loss, last_loss, last_eval_loss;
    float *losses; /* losses[i] = loss of step i+1 for steps run in this call (owned; free()) */
    double mean_tokens_per_s;
    gv_memory_report memory;
    int act_slots, act_peak;  /* this rank's activation sets and most micro-batches in flight */
    gv_hybrid_times times;    /* this rank's time split per step (forward, backward, redistribution, p2p) */
    gv_hybrid_p2p_counts p2p; /* this rank's pipeline messages by path (gv_hybrid_p2p_stats) */
    double median_step_ms;    /* over the steps run, the first one (warm-up) left out when there are more */
    int stage;                /* this rank's pipeline stage */
} gv_train_result;

void gv_train_config_defaults(gv_train_config *c);
/* The kind to give gv_comm_init_world for c (NULL = the default: mpi under a launcher, else local), after
 * checking comm_kind ("nccl" needs the cuda backend). */
gv_status gv_train_comm_kind(const gv_train_config *c, const char **kind);
gv_status gv_train_config_validate(const gv_train_config *c);
/* Learning rate of (0-based) step s: linear warmup then cosine decay to min_lr_frac * lr. */
float gv_train_lr(const gv_train_config *c, int s);
gv_status gv_train_run(const gv_train_config *c, gv_train_result *r);
/* Runs plan p (kept by pointer: it must outlive the run): its batch and micro-batches too. Checks that p is
 * for this model; `where` names the plan file in messages. */
gv_status gv_train_config_from_plan(gv_train_config *c, const gv_plan *p, const char *where);
/* The plan a config runs: c->plan, or the uniform (GLOBAL mode) plan of its flags, into *out (free with
 * gv_plan_free). */
gv_status gv_train_plan(const gv_train_config *c, gv_plan *out);

#ifdef __cplusplus
}
#endif
#endif
