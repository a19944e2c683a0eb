/* Checkpoints: a directory with model.safetensors (weights under Hugging Face names and layouts, loadable
 * by transformers) and optimizer.safetensors (AdamW moments under "exp_avg.<name>" / "exp_avg_sq.<name>",
 * plus step, seed and data cursor in the metadata). Layout-free: global shapes only, so any future plan
 * can read its slices. Each file is written atomically (temp file + fsync + rename). */
#ifndef GV_CHECKPOINT_H
#define GV_CHECKPOINT_H
#include <stdint.h>
#include "gv/model.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t step;        /* optimizer steps completed */
    uint64_t seed;       /* run seed (init and data order) */
    int64_t data_cursor; /* next global batch index */
} gv_ckpt_meta;

/* Collective over the model's data-parallel group (every rank calls it); its rank 0 writes the files. */
gv_status gv_checkpoint_save(gv_model *m, const char *dir, const gv_ckpt_meta *meta);
/* Loads weights and optimizer state; nothing in the model changes unless both files are valid. */
gv_status gv_checkpoint_load(gv_model *m, const char *dir, gv_ckpt_meta *meta);
/* Loads weights only from a safetensors file with HF names (e.g. a Hugging Face GPT-2 or LLaMA file). */
gv_status gv_model_load_weights(gv_model *m, const char *path);

#ifdef __cplusplus
}
#endif
#endif
