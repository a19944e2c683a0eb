/* Checkpoints: a directory with model.safetensors (weights under Hugging Face names and layouts, loadable
 * by transformers) and optimizer.safetensors (AdamW moments under "exp_avg.<name>" / "exp_avg_sq.<name>",
 * plus step, seed and data cursor in the metadata). Layout-free: global shapes only, so any future plan
 * can read its slices. Each file is written atomically (temp file + fsync + rename). */
#ifndef GV_CHECKPOINT_H
#define GV_CHECKPOINT_H
#include <stdint.h>
#include "gv/hybrid.h"
#include "gv/model.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t step;        /* optimizer steps completed */
    uint64_t seed;       /* run seed (init and data order) */
    int64_t data_cursor; /* next global batch index */
} gv_ckpt_meta;

/* Collective over the model's groups (every rank calls it); one rank writes, streaming tensor by tensor, so
 * memory stays at one parameter's global tensor whatever the model size. */
gv_status gv_checkpoint_save(gv_hybrid *h, const char *dir, const gv_ckpt_meta *meta);
/* Loads weights and optimizer state. Both files' headers, the model description and every tensor's name and
 * shape are checked before the model changes; the data then streams in one tensor at a time (each rank
 * keeps its slice), so no rank ever holds the whole checkpoint. */
gv_status gv_checkpoint_load(gv_hybrid *h, const char *dir, gv_ckpt_meta *meta);
/* Loads weights only from a safetensors file with HF names (e.g. a Hugging Face GPT-2 or LLaMA file). */
gv_status gv_model_load_weights(gv_model *m, const char *path);
gv_status gv_hybrid_load_weights(gv_hybrid *h, const char *path);

#ifdef __cplusplus
}
#endif
#endif
