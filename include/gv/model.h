/* Model specs (an ordered list of layers described by a few shape fields) and the single-process model
 * executor: parameters, gradients and activations as one arena each, forward and backward over the
 * backend's ops, and import/export of weights under Hugging Face tensor names and layouts. */
#ifndef GV_MODEL_H
#define GV_MODEL_H
#include <stdint.h>
#include "gv/backend.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Families: GPT-2 and LLaMA decoders (causal LM); BERT (bidirectional post-LN encoder, token types, masked-LM
 * head: dense + GELU + LayerNorm + decoder tied to the word embeddings with its own bias; HF
 * BertForMaskedLM); ViT (patch embedding, class token, pre-LN encoder, classifier on the class token; HF
 * ViTForImageClassification); T5 (encoder and decoder stacks, RMS "T5 LayerNorm", unscaled attention with a
 * bucketed relative position bias per stack, cross-attention, ReLU MLP, no biases, LM head tied to the
 * shared embedding and fed sequence_output * C^-0.5; HF T5ForConditionalGeneration, v1.0 checkpoints). */
typedef enum {
    GV_ARCH_GPT2 = 0,
    GV_ARCH_LLAMA = 1,
    GV_ARCH_BERT = 2,
    GV_ARCH_VIT = 3,
    GV_ARCH_T5 = 4
} gv_arch;
typedef enum { GV_NORM_LAYERNORM = 0, GV_NORM_RMSNORM = 1 } gv_norm;
/* GELU: tanh approximation (GPT-2's gelu_new); GELU_ERF: exact erf form (BERT, ViT "gelu"). */
typedef enum { GV_ACT_GELU = 0, GV_ACT_SWIGLU = 1, GV_ACT_GELU_ERF = 2, GV_ACT_RELU = 3 } gv_act;
typedef enum { GV_POS_LEARNED = 0, GV_POS_ROPE = 1 } gv_pos;

typedef struct {
    char name[64];
    gv_arch arch;
    int n_layer;      /* L */
    int n_embd;       /* C */
    int n_head;       /* H */
    int n_kv_head;    /* KVH (== H without GQA) */
    int ffn;          /* F: MLP hidden size (per branch for SwiGLU) */
    int max_seq;      /* maximum T (size of learned position table) */
    int vocab;        /* V */
    int padded_vocab; /* Vp >= V, rows of the embedding/logit matrices (multiple of 64 or 128) */
    gv_norm norm;
    gv_act act;
    gv_pos pos;
    int tied; /* LM head shares the token embedding */
    int bias; /* linears and norms have biases */
    float norm_eps;
    float rope_theta;
    float init_std; /* 0.02; residual projections use init_std / sqrt(2 L) */
    /* BERT */
    int type_vocab; /* token types (segment ids), 2 */
    int mask_token; /* id of [MASK] for the masked-LM data (103 in the HF vocab) */
    /* ViT: images of channels x image x image pixels cut into (image/patch)^2 patches; max_seq = 1 + that
     * (the class token first); vocab = the number of classes. */
    int image_size, patch_size, channels;
    /* T5: the last n_dec_layer of the n_layer layers are the decoder (the encoder has the others); the
     * relative position bias has rel_buckets buckets up to rel_max_distance (32 and 128). Source and
     * target sequences both have length T. */
    int n_dec_layer, rel_buckets, rel_max_distance;
} gv_model_spec;

/* Words (I32) of model input per position: 1 (token id) for GPT-2/LLaMA; 2 (token id, token type) for
 * BERT; channels * patch^2 pixel values 0..255 for ViT, in (channel, row, column) order of the patch, zero
 * at the class token's position 0; 2 (encoder input id, decoder input id) for T5. Inputs are [B, T,
 * input_width]; targets [B, T] (ViT: the label at position 0, -1 elsewhere; BERT: the original token at
 * masked positions, -1 elsewhere; T5: the labels, the decoder inputs shifted left). */
int gv_model_spec_input_width(const gv_model_spec *s);
#define GV_MAX_LAYER_TYPES 4 /* layer types of one model (T5: 2, encoder and decoder layers) */
/* The model's layer types in layer order (Galvatron's layernum_list): layers[t] layers of type t, names[t]
 * its name (either may be NULL); returns the number of types. T5: encoder (type 0) then decoder layers
 * (type 1, with cross-attention); every other family: one type. */
int gv_model_spec_layer_types(const gv_model_spec *s, int *layers, const char **names);
/* A random batch of valid inputs [B, T, input_width] and targets [B, T] for the family (token ids, types,
 * pixels; ViT: the label at position 0 only), from `seed` alone (profiling, benchmarks). */
void gv_model_spec_random_batch(const gv_model_spec *s, uint64_t seed, int B, int T, int32_t *inputs,
                                int32_t *targets);
/* 1 when attention is causal (decoders), 0 for the bidirectional encoders. */
int gv_model_spec_causal(const gv_model_spec *s);
/* "gpt2", "llama", "bert", "vit", "t5". */
const char *gv_arch_name(gv_arch a);

/* Presets: gpt2-tiny, gpt2-124m, gpt2-350m, gpt2-774m, gpt2-1.5b, llama-tiny, llama-1b, llama2-7b,
 * llama3-8b, bert-tiny, bert-base, bert-large, vit-tiny, vit-base, vit-large, vit-huge. */
gv_status gv_model_spec_preset(gv_model_spec *s, const char *name);
/* A preset name or a path to a JSON model file (fields as in gv_model_spec; "preset" may name a base). */
gv_status gv_model_spec_resolve(gv_model_spec *s, const char *name_or_path);
gv_status gv_model_spec_load_json(gv_model_spec *s, const char *path);
gv_status gv_model_spec_validate(const gv_model_spec *s, const char *where);
int64_t gv_model_spec_num_params(const gv_model_spec *s); /* real (unpadded) parameter count */
const char *const *gv_model_preset_names(int *n);

/* Host fp32 tensor with a name: the unit of weight import/export (HF names and layouts). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    float *data; /* owned */
} gv_named_f32;
void gv_named_f32_free(gv_named_f32 *ts, int n); /* frees each data and the array */

typedef struct gv_model gv_model;

/* Allocates for micro-batch B x T on backend b. Weights are zero until gv_model_init_weights/import. */
gv_status gv_model_init(gv_model **out, const gv_model_spec *spec, gv_backend *b, int B, int T);

struct gv_comm;
/* Data parallelism of a model replica: the data-parallel group and the ZeRO stage over it (0 = DDP:
 * gradients all-reduced, optimizer replicated; 1 = ZeRO-1: optimizer state and fp32 master weights sharded
 * over the group, each rank updates its shard and the weights are all-gathered; 2 = ZeRO-2: also the
 * gradients are reduce-scattered, each rank reducing only its shard; 3 = ZeRO-3: parameters kept as each
 * rank's piece of every unit (embeddings, each layer, final norm/head), gathered per unit just before use,
 * gradients reduce-scattered per unit during backward). */
typedef struct {
    struct gv_comm *dp;
    int zero;
    const int *ckpt;    /* [n_layer] 1 = recompute that layer's activations in backward; NULL = none */
    struct gv_comm *tp; /* Megatron tensor parallelism over this group (NULL = none): heads, FFN columns */
    int vocab_parallel; /* with tp: the embedding / LM head rows and the cross-entropy split too */
    int megatron_sp;    /* with tp and vocab_parallel: norms and residual stream sharded over the sequence */
    struct gv_comm *sp; /* Ulysses over this group (NULL = none): each rank holds T of the Tf = T * sp
                         * positions (B, T given to init are the local ones); attention runs on the full
                         * sequence for H/sp heads. Gradients are then summed over dp, which must span
                         * the sp ranks too (the sdp group). */
    /* A part of the model (layer-wise and pipelined plans run one part per run of layers with the same
     * strategy): layers [l0, l1) (l1 = 0: all; -1: none), with or without the embedding and the final norm +
     * LM head. All zero = the whole model. Parameter names, initial values and HF names stay global. */
    int l0, l1;
    int no_embed, no_head;
    int tied_copy; /* this part's LM head is a copy of the embedding held by another part (tied weights
                    * across pipeline stages): left out of the gradient norm; the runtime sums its gradient
                    * with the original's */
    int slots;     /* activation sets for micro-batches in flight (pipeline schedules); 0 = 1 */
    int meta_only; /* parameter table and HF names only: nothing is allocated (forward etc. fail) */

    /* 1: every data-parallel collective waits where it is issued (the A/B switch); 0 (the default):
     * gradient sums start during the last backward, ZeRO-3 prefetches the next layer's parameters into a
     * second working slot and reduce-scatters a layer's gradients while the next one computes (see
     * gv_model_set_last_backward) */
    int no_overlap;
} gv_model_dist;
gv_status gv_model_init_dist(gv_model **out, const gv_model_spec *spec, gv_backend *b, int B, int T,
                             const gv_model_dist *d);
/* Sums the gradients over the data-parallel group (bucketed all-reduce; reduce-scatter under ZeRO-2) and,
 * under Megatron-SP, the norms' partial gradients over the tp group. Call once per optimizer step after the
 * backward of the last micro-batch, also at dp = 1; the loss scale given to backward must include 1/dp. */
gv_status gv_model_reduce_grads(gv_model *m);
/* last = 1: the backwards that follow are the step's last (after a layer's backward its gradients are
 * complete), so with overlap the sums of finished buckets of consecutive layers start right there
 * (all-reduce, or under ZeRO-2 a reduce of each shard's piece to its rank) and gv_model_reduce_grads starts
 * the rest and waits for all. Reset by gv_model_reduce_grads and gv_model_zero_grad. Buckets, their calls
 * and their order are the same with overlap off (all started in gv_model_reduce_grads), so the results are
 * identical. Not needed for correctness: without it every sum runs in gv_model_reduce_grads. */
void gv_model_set_last_backward(gv_model *m, int last);
/* 1 when the model overlaps its data-parallel collectives with compute (gv_model_dist.no_overlap = 0). */
int gv_model_overlap(const gv_model *m);
/* Gradient buckets (0 under ZeRO-3 or without dp), and since init: buckets started during a backward,
 * ZeRO-3 gathers served by a prefetch. $GV_GRAD_BUCKET_ELEMS sets the bucket size (default 4M elements; a
 * bucket closes at the first unit boundary past it). */
void gv_model_overlap_counts(const gv_model *m, int *buckets, long *early, long *prefetched);
/* 1 on the rank that writes files for this replica (data-parallel rank 0). */
int gv_model_is_writer(const gv_model *m);
void gv_model_free(gv_model *m);
const gv_model_spec *gv_model_get_spec(const gv_model *m);

/* GPT-2-style init: normal(0, init_std), residual output projections init_std/sqrt(2L), biases 0, norm
 * weights 1. Value of element i of parameter P = f(seed, P's name, i), independent of any plan. */
gv_status gv_model_init_weights(gv_model *m, uint64_t seed);

/* Forward on one micro-batch. tokens/targets: host I32 [B*T]; targets may be NULL (no loss). Returns the
 * mean loss over targets != -1 in *loss (under Ulysses: this rank's share of its sp group's mean). */
gv_status gv_model_forward(gv_model *m, const int32_t *tokens, const int32_t *targets, float *loss);
/* Backward of the last forward, accumulating into the gradients; dloss scales the mean loss gradient
 * (1/micro-batches for accumulation). */
gv_status gv_model_backward(gv_model *m, float dloss);
gv_status gv_model_zero_grad(gv_model *m);

/* Phases of a part, run separately by the layer-wise runtime (forward in this order, backward reversed):
 * EMBED: tokens -> embedding output; LAYERS: the part's input -> its layers' output; HEAD: -> loss. A
 * phase whose input comes from another part reads gv_model_part_input (forward) or, for its output
 * gradient, gv_model_part_grad (backward); both are [Nl, C] views of this part's layout. */
typedef enum { GV_PHASE_EMBED = 1, GV_PHASE_LAYERS = 2, GV_PHASE_HEAD = 4, GV_PHASE_ALL = 7 } gv_phase;
/* Forward of `phases` on activation set `slot` (< slots). tokens: host I32 [B*T] (EMBED); targets: host
 * I32 [B*T] or NULL (HEAD); loss as gv_model_forward. */
gv_status gv_model_part_forward(gv_model *m, int phases, int slot, const int32_t *tokens,
                                const int32_t *targets, float *loss);
/* Backward of `phases` of the forward that filled `slot`; dloss as gv_model_backward (HEAD). */
gv_status gv_model_part_backward(gv_model *m, int phases, int slot, float dloss);
/* dloss > 0: the forwards with targets that follow are training's, each followed by a backward with this
 * dloss, so the head may compute the loss gradient with the loss (one pass over the logits; the logits
 * are gone after such a forward). 0 (the default): forwards keep the logits, as for evaluation. */
void gv_model_set_train_dloss(gv_model *m, float dloss);
/* Device view [Nl, C] the caller fills with the input of `phase` (LAYERS of a part without the embedding;
 * HEAD of a part without layers) before gv_model_part_forward; NULL when the part computes it itself. */
void *gv_model_part_input(gv_model *m, int phase, int slot);
/* Device view [Nl, C] of the output of `phase` (EMBED, LAYERS) in `slot`. */
void *gv_model_part_output(gv_model *m, int phase, int slot);
/* Device view [Nl, C] of the running residual gradient: filled by the caller with d(output) before the
 * backward of LAYERS or EMBED when the phase after it ran in another part; holds d(input) after it. */
void *gv_model_part_grad(gv_model *m);
/* Activations between parts have gv_model_part_channels views of [Nl, C] each: 1, or 2 for T5 — at a cut
 * before the last encoder layer (the encoder stream, the decoder embedding), after it (the decoder stream,
 * the encoder output every decoder layer's cross-attention reads). The _ch forms give channel ch of
 * gv_model_part_input / _output / _grad (NULL where a phase has no such channel: the head reads channel 0
 * only, and its backward leaves channel 1's gradient zero). */
int gv_model_part_channels(const gv_model *m);
void *gv_model_part_input_ch(gv_model *m, int phase, int slot, int ch);
void *gv_model_part_output_ch(gv_model *m, int phase, int slot, int ch);
void *gv_model_part_grad_ch(gv_model *m, int ch);
/* T5: a stack's relative bias table (stack 0 encoder, 1 decoder) is held by every part with layers of the
 * stack (the part with the stack's block 0 holds it, the others a copy left out of the gradient norm). After
 * the backward of the last micro-batch and before gv_model_reduce_grads: grad_add adds this rank's share of
 * the part's gradient into g (global [buckets, H], this rank's head columns; partial sums, or the reduced
 * ones on dp rank 0 under ZeRO-3 — collective over dp then), so that the sum of g over the world is the
 * total; grad_set writes the total back (dp rank 0's share before the data-parallel sum). */
int gv_model_rel_bias_held(const gv_model *m, int stack);
gv_status gv_model_rel_bias_grad_add(gv_model *m, int stack, float *g);
gv_status gv_model_rel_bias_grad_set(gv_model *m, int stack, const float *g);
/* The token embedding's (or the tied LM head copy's) gradient as this rank's tp slice, host fp32: before
 * gv_model_reduce_grads this rank's partial sum; under ZeRO-3 (reduced during backward) the reduced
 * gradient, assembled over dp (collective there). set writes it back (ZeRO-3: this rank's piece). */
size_t gv_model_embedding_numel(const gv_model *m);
gv_status gv_model_embedding_grad_get(gv_model *m, float *local);
gv_status gv_model_embedding_grad_set(gv_model *m, const float *local);

/* Logits of the last forward as host fp32 [B*T, V] (until backward, which replaces them by their gradient).
 */
gv_status gv_model_logits(gv_model *m, float *out);

/* Per-parameter buffers that can be exported/imported under HF names and layouts. */
typedef enum { GV_BUF_WEIGHTS = 0, GV_BUF_GRADS = 1, GV_BUF_ADAM_M = 2, GV_BUF_ADAM_V = 3 } gv_param_buf;

/* Buffer `which` as newly allocated host fp32 tensors under HF names/layouts (padded vocab rows dropped). */
gv_status gv_model_export_hf(gv_model *m, int which, gv_named_f32 **out, int *n);
/* One HF tensor (index k < gv_model_hf_count) of buffer `which` into out (its HF shape, row-major).
 * Collective over the model's tp and dp groups: every rank calls it for the same k in the same order; only
 * one parameter's global tensor is held at a time (checkpoints stream through it). */
gv_status gv_model_export_one(gv_model *m, int which, int k, float *out);
/* Sets buffer `which` (weights or a moment) tensor by tensor: read(ctx, k, row0, nrows, dst) fills rows
 * [row0, row0 + nrows) of HF tensor k's dim 0 into dst (the whole tensor's buffer, HF shape; other rows may
 * be left as they are) — the rows this rank keeps (its tensor-parallel slice, or all of them), so a file
 * reader can read only those; called for k = 0 .. hf_count-1 in order. The caller has checked names and
 * shapes (gv_model_hf_info); a read error stops the import (buffers then hold a mix). */
typedef gv_status (*gv_hf_reader)(void *ctx, int k, int64_t row0, int64_t nrows, float *dst);
gv_status gv_model_import_stream(gv_model *m, int which, gv_hf_reader read, void *ctx);
/* Sets the weights from HF-named tensors; every expected tensor must be present with its exact shape;
 * unknown names are ignored (HF files carry buffers such as attn.bias); `source` names the file in errors. */
gv_status gv_model_import_hf(gv_model *m, const gv_named_f32 *ts, int n, const char *source);
/* Same for another buffer (AdamW moments on resume). */
gv_status gv_model_import_buf(gv_model *m, int which, const gv_named_f32 *ts, int n, const char *source);
/* Expected HF tensors: count, and name/shape of the i-th (for readers that load only what they need). */
int gv_model_hf_count(const gv_model *m);
gv_status gv_model_hf_info(const gv_model *m, int i, const char **name, int *ndim, int64_t shape[4]);

/* AdamW over every parameter (weight decay only on matrices, as GPT-2/LLaMA training does). */
typedef struct {
    float beta1, beta2, eps, weight_decay;
} gv_adamw_cfg;
gv_status gv_model_adamw_step(gv_model *m, const gv_adamw_cfg *cfg, float lr, float grad_scale, int t);
/* L2 norm of all gradients. */
gv_status gv_model_grad_norm(gv_model *m, double *norm);

/* Bytes by memory category as allocated by this model on its backend. */
typedef struct {
    size_t parameters, gradients, optimizer, activations, workspace, comm;
} gv_memory_report;
void gv_model_memory(const gv_model *m, gv_memory_report *r);

#ifdef __cplusplus
}
#endif
#endif
