/* A parallel plan: what the search emits and the runtime executes. Per layer: tensor/sequence-parallel
 * degree and mode, ZeRO stage over the data-parallel group, activation recompute; plus the vocab layers'
 * (embedding, LM head) strategy, pipeline degree, stage boundaries, schedule, global batch and
 * micro-batches. dp of a layer = world / pp / tp. One validation function gives the exact reason a plan is
 * impossible for a model. Plans read and write Hetu-Galvatron's galvatron_config JSON and the project's
 * own JSON form. */
#ifndef GV_PLAN_H
#define GV_PLAN_H
#include "gv/model.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { GV_SP_NONE = 0, GV_SP_MEGATRON = 1, GV_SP_ULYSSES = 2 } gv_sp_mode;
typedef enum { GV_SCHED_GPIPE = 0, GV_SCHED_1F1B = 1 } gv_schedule;

typedef struct {
    int tp;        /* degree of the tensor-parallel group (Megatron TP, or the Ulysses SP group) */
    gv_sp_mode sp; /* none, Megatron-SP (needs tp > 1) or Ulysses (the group shards the sequence) */
    int zero;      /* 0 = DDP, 1/2/3 = ZeRO stage over the data-parallel group */
    int ckpt;      /* activation recompute */
} gv_layer_strategy;

typedef struct gv_plan_s {
    int world, pp;
    gv_schedule schedule;
    int global_batch, micro_batches;
    int n_layer;
    gv_layer_strategy *layers; /* [n_layer] */
    int *stage_layers;         /* [pp] layers per stage, sums to n_layer */
    gv_layer_strategy vocab;   /* embedding + LM head (ckpt unused) */
} gv_plan;

/* GLOBAL mode: every layer the same strategy, stages as even as possible (earlier stages get the extra). */
gv_status gv_plan_uniform(gv_plan *p, int world, int pp, int n_layer, gv_layer_strategy layer,
                          gv_layer_strategy vocab, gv_schedule sched, int global_batch, int micro_batches);
void gv_plan_free(gv_plan *p);
gv_status gv_plan_copy(gv_plan *dst, const gv_plan *src); /* deep copy; free dst with gv_plan_free */
struct gv_comm;
/* Root's plan to every rank of c (collective); the others' *p is allocated (gv_plan_free). */
gv_status gv_plan_broadcast(gv_plan *p, struct gv_comm *c, int root);
static inline int gv_plan_dp(const gv_plan *p, const gv_layer_strategy *s) {
    return p->world / p->pp / s->tp;
}

/* The compact notation of strategies (tests, benches, quick experiments): one word per layer, e.g.
 * "t2 t1c u2z1 m4z3": t|m|u = tensor parallelism / Megatron-SP / Ulysses, then the degree, zN = ZeRO stage,
 * c = recompute. gv_strategy_parse reads one word (and the spaces after it) and sets *end past it. */
gv_status gv_strategy_parse(const char *s, gv_layer_strategy *out, const char **end);
/* A plan from the notation: layers (one word each, n_layer of them), vocab (one word, ckpt ignored),
 * stages "3,1" (NULL: even), world, pp, schedule, batch. */
gv_status gv_plan_compact(gv_plan *p, int world, int pp, gv_schedule sched, int global_batch,
                          int micro_batches, const char *layers, const char *vocab, const char *stages);

/* Checks the plan against a model and sequence length; `where` (a file name or "plan") prefixes the
 * reason, e.g. "plan: layer 3: tp 3 does not divide n_head 4". */
gv_status gv_plan_validate(const gv_plan *p, const gv_model_spec *s, int seq, const char *where);

/* Reads either form (detected by its keys). `world` is the number of ranks the plan runs on (galvatron_config
 * files do not always carry it; 0 = take it from the file). `n_layer` is the model's layer count. */
gv_status gv_plan_load(gv_plan *p, const char *path, int n_layer, int world);
gv_status gv_plan_save(const gv_plan *p, const char *path);           /* the project's form */
gv_status gv_plan_save_galvatron(const gv_plan *p, const char *path); /* galvatron_config */

const char *gv_sp_mode_name(gv_sp_mode m);
const char *gv_zero_name(int zero); /* "ddp", "zero1", ... */

#ifdef __cplusplus
}
#endif
#endif
