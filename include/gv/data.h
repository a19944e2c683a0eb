/* Datasets and the plan-independent batch.
 *
 * Row r of the global batch of (seed, step, split) is a pure function of those four values: its start is
 * drawn from the counter RNG at (seed, split stream, step) -> row r. It does not depend on the batch size
 * or on how a plan splits the batch into micro-batches or data-parallel shards, so every plan that trains on
 * global batch B sees exactly the same rows, and resume at step s continues the same sequence.
 *
 * Sources (gv_dataset_open's path):
 *   NULL or "builtin"  the built-in synthetic language below (infinite, vocab 512)
 *   *.bin              an llm.c token shard: 256 little-endian int32 header words ([0] magic 20240520,
 *                      [1] version 1, [2] token count), then count uint16 tokens (GPT-2, vocab 50257)
 *   a directory        every *.bin shard in it, sorted by name, read as one concatenated stream
 *   "a.bin,b.bin"      (when no file has that name) those shards, concatenated in that order
 *   any other file     plain text, one token per byte (vocab 256)
 * For files, the train split is the first 90% of the token stream and eval the last 10%; a row is a window
 * of T+1 consecutive tokens starting anywhere in its split (windows may cross shard boundaries).
 *
 * The built-in language is an order-2 Markov chain over 512 tokens whose tables come from a fixed constant
 * (not the run seed), so every run sees the same language:
 *   - each token b has 8 distinct successors succ[b][0..7], drawn once from the counter RNG;
 *   - after the pair (a, b) the next token is succ[b][k] with probability w[(k + 2*(a mod 4)) mod 8], where
 *     w = {.500, .180, .100, .070, .050, .040, .035, .025}: the previous token picks the candidates and
 *     the one before it rotates their weights.
 * Every context has the same next-token entropy H(w) = 1.5597 nats, so that is the entropy rate (the loss a
 * perfect model reaches, vs ln 512 = 6.24 for uniform guessing). A bigram model can only learn the weights
 * averaged over the 4 rotations (roughly 1.9-2.0 nats), so a loss well under 2 shows the model uses 2 tokens
 * of context. A row starts from a random pair, runs 8 burn-in steps, then emits T+1 tokens; position 0 has
 * only one token of context, so a row's best mean loss is slightly above H(w). */
#ifndef GV_DATA_H
#define GV_DATA_H
#include <stdint.h>
#include "gv/model.h"
#include "gv/status.h"
#ifdef __cplusplus
extern "C" {
#endif

#define GV_DATA_BUILTIN_VOCAB 512
#define GV_DATA_GPT2_VOCAB 50257
#define GV_DATA_SHARD_MAGIC 20240520
#define GV_DATA_SHARD_VERSION 1

typedef struct gv_dataset gv_dataset;

/* `seed` selects the rows of every batch (the language/file itself does not depend on it). Files are
 * validated here (shard headers and sizes); a file too short for a batch fails in gv_dataset_batch. */
gv_status gv_dataset_open(gv_dataset **d, const char *path, uint64_t seed);
void gv_dataset_free(gv_dataset *d);
/* The smallest vocab that holds every token: builtin 512, text 256, shards 50257. */
int gv_dataset_vocab(const gv_dataset *d);
/* One line for logs, e.g. "llm.c shards data/ (3 files, 300000000 tokens, vocab 50257)". */
const char *gv_dataset_describe(const gv_dataset *d);
/* Tokens in a split of a file source (split 0 train, 1 eval); -1 for the infinite builtin stream. */
int64_t gv_dataset_ntokens(const gv_dataset *d, int split);
/* Entropy rate of the true process in nats/token (builtin: 1.5597); NaN when unknown (files). */
double gv_dataset_entropy_estimate(const gv_dataset *d);

/* Rows [row0, row0+nrows) of the global batch of (step, split): tokens and targets are [nrows*T], row-major,
 * targets[i] = the token after tokens[i]. split 0 = train, 1 = eval. For a data-parallel rank or a
 * micro-batch that owns only some rows of the global batch. */
gv_status gv_dataset_rows(gv_dataset *d, uint64_t step, int split, int64_t row0, int nrows, int T,
                          int32_t *tokens, int32_t *targets);
/* The whole global batch: gv_dataset_rows(d, step, split, 0, B, T, ...). */
gv_status gv_dataset_batch(gv_dataset *d, uint64_t step, int split, int B, int T, int32_t *tokens,
                           int32_t *targets);

/* ---- per model family ------------------------------------------------------------------------------
 *
 * GPT-2 / LLaMA (causal LM): the rows above. BERT (masked LM): the token source's rows, masked: exactly
 * k = max(1, round(0.15 T)) positions per row without replacement, each input becoming [MASK] (80%), a
 * random token of the source's vocab (10%) or staying (10%), target = the original token there and -1
 * elsewhere; token type 0 before a random segment boundary in [1, T), 1 from it. Everything is drawn from
 * (seed, split, step, row), so it is plan-independent like the rows; the fixed count per row keeps every
 * slice's mean loss the mean over its rows. ViT: images, cut into patches (gv_model_spec_input_width), the
 * label the target of position 0 (the class token), -1 elsewhere; image of row r of (step, split) drawn
 * like the rows. T5 (seq2seq): the source's row of 2T tokens; the encoder reads the first T, the targets
 * are the next T and the decoder reads them shifted right behind the start token 0. Image sources:
 *   NULL or "builtin"  synthetic images of the model's size and classes: a grating whose orientation
 *                      (label mod 8) and frequency (1 + label/8 mod 4 cycles) encode the class, a random
 *                      phase per image, Gaussian pixel noise (sd 32), for >= 32 classes one brighter
 *                      channel (label/32 mod channels); infinite
 *   a file             header of 8 little-endian int32 words: [0] magic 20261202, [1] version 1, [2] count
 *                      N, [3] channels C, [4] height H, [5] width W (== H), [6] classes K, [7] 0; then
 *                      N * C * H * W uint8 pixels (image by image, each channel-major: [C][H][W]); then N
 *                      int32 labels in [0, K). The last 10% of the images are the eval split.
 * Pixels enter the model as p / 127.5 - 1 (HF ViTImageProcessor with mean = std = 0.5). */
#define GV_DATA_IMAGE_MAGIC 20261202
#define GV_DATA_IMAGE_VERSION 1
/* Opens the source for the model's family: images for ViT (checked against its image size, channels and
 * classes), token sources otherwise (for BERT the vocab must hold the source's tokens). */
gv_status gv_dataset_open_for(gv_dataset **d, const char *path, uint64_t seed, const gv_model_spec *spec);
/* Rows [row0, row0+nrows) of the global batch of (step, split) as the model's inputs [nrows, T, IW] and
 * targets [nrows, T] (IW = gv_model_spec_input_width). */
gv_status gv_dataset_rows_for(gv_dataset *d, const gv_model_spec *spec, uint64_t step, int split,
                              int64_t row0, int nrows, int T, int32_t *inputs, int32_t *targets);
/* Writes an image file in the format above (size = height = width). */
gv_status gv_dataset_write_images(const char *path, int n, int channels, int size, int classes,
                                  const uint8_t *pixels, const int32_t *labels);
/* The built-in image set's image for a row key (tests, tools): label and pixels [C][S][S]. */
gv_status gv_dataset_synth_image(const gv_dataset *d, uint64_t key, int *label, uint8_t *pixels);

#ifdef __cplusplus
}
#endif
#endif
