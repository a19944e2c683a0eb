#include "gv/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/rng.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shards are read as little-endian");

#define GV_SHARD_HEADER_BYTES 1024
#define GV_LANG_SEED 0x67616c7661746f6eull /* a constant, not the run seed: one language for every run */
#define GV_LANG_K 8                        /* successors per token */
#define GV_LANG_BURN 8                     /* chain steps before a row's first token */
#define GV_LANG_WSUM 1000
static const int gv_lang_w[GV_LANG_K] = {500, 180, 100, 70, 50, 40, 35, 25}; /* per mille */

typedef enum { GV_DS_BUILTIN, GV_DS_TEXT, GV_DS_SHARDS, GV_DS_IMAGES } gv_ds_kind;

typedef struct {
    char *path;
    int fd;
    int64_t count; /* tokens in this file */
    int64_t base;  /* index of its first token in the concatenated stream */
} gv_ds_file;

struct gv_dataset {
    gv_ds_kind kind;
    uint64_t seed;
    int vocab;
    char *name; /* the path as given, for messages */
    char describe[512];
    int nfiles;
    gv_ds_file *files;
    int64_t ntok, ntrain; /* eval = [ntrain, ntok) */
    int tok_bytes;        /* 1 for text, 2 for shards */
    int64_t hdr_bytes;    /* bytes before the first token of each file */
    uint16_t succ[GV_DATA_BUILTIN_VOCAB][GV_LANG_K];
    /* images: built-in (img_fd < 0) or a file; img_n images, the first img_ntrain the train split */
    int img_c, img_h, img_w, img_classes, img_fd;
    int64_t img_n, img_ntrain;
    int32_t *img_labels;
};

static int gv_ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

void gv_dataset_free(gv_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->nfiles; i++) {
        if (d->files[i].fd >= 0) close(d->files[i].fd);
        free(d->files[i].path);
    }
    free(d->files);
    if (d->kind == GV_DS_IMAGES && d->img_fd >= 0) close(d->img_fd);
    free(d->img_labels);
    free(d->name);
    free(d);
}

int gv_dataset_vocab(const gv_dataset *d) {
    return d->vocab;
}
const char *gv_dataset_describe(const gv_dataset *d) {
    return d->describe;
}

int64_t gv_dataset_ntokens(const gv_dataset *d, int split) {
    if (d->kind == GV_DS_BUILTIN) return -1;
    return split == 0 ? d->ntrain : d->ntok - d->ntrain;
}

static double gv_lang_entropy(void) {
    double h = 0;
    for (int k = 0; k < GV_LANG_K; k++) {
        double p = (double)gv_lang_w[k] / GV_LANG_WSUM;
        h -= p * log(p);
    }
    return h;
}

double gv_dataset_entropy_estimate(const gv_dataset *d) {
    return d->kind == GV_DS_BUILTIN ? gv_lang_entropy() : NAN;
}

/* The successor table: 8 distinct tokens per token, from the fixed language seed. */
static void gv_lang_build(gv_dataset *d) {
    uint64_t stream = gv_hash_str("data.builtin.succ");
    for (int b = 0; b < GV_DATA_BUILTIN_VOCAB; b++) {
        uint64_t draw = 0;
        for (int k = 0; k < GV_LANG_K;) {
            uint16_t c = (uint16_t)(gv_rng_u64(GV_LANG_SEED, stream, (uint64_t)b * 4096 + draw++) %
                                    GV_DATA_BUILTIN_VOCAB);
            int dup = 0;
            for (int j = 0; j < k; j++) dup |= d->succ[b][j] == c;
            if (!dup) d->succ[b][k++] = c;
        }
    }
}

/* Opens one llm.c shard and checks its header against its size. */
static gv_status gv_shard_open(gv_ds_file *s, const char *path) {
    s->fd = -1;
    if (!(s->path = strdup(path))) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) return gv_fail(GV_ERR_IO, "%s: cannot open token shard: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(s->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return gv_fail(GV_ERR_IO, "%s: token shard is not a regular file", path);
    int64_t size = (int64_t)sb.st_size;
    if (size < GV_SHARD_HEADER_BYTES)
        return gv_fail(GV_ERR_FORMAT, "%s: file is %lld bytes, shorter than the %d-byte llm.c shard header",
                       path, (long long)size, GV_SHARD_HEADER_BYTES);
    int32_t hdr[GV_SHARD_HEADER_BYTES / 4];
    ssize_t r = pread(s->fd, hdr, sizeof hdr, 0);
    if (r != (ssize_t)sizeof hdr) return gv_fail(GV_ERR_IO, "%s: cannot read the shard header", path);
    if (hdr[0] != GV_DATA_SHARD_MAGIC)
        return gv_fail(GV_ERR_FORMAT, "%s: bad magic %d (expected %d; not an llm.c token shard?)", path,
                       hdr[0], GV_DATA_SHARD_MAGIC);
    if (hdr[1] != GV_DATA_SHARD_VERSION)
        return gv_fail(GV_ERR_FORMAT, "%s: shard version %d unsupported (expected %d, uint16 GPT-2 tokens)",
                       path, hdr[1], GV_DATA_SHARD_VERSION);
    if (hdr[2] < 0) return gv_fail(GV_ERR_FORMAT, "%s: header says %d tokens", path, hdr[2]);
    int64_t want = GV_SHARD_HEADER_BYTES + 2 * (int64_t)hdr[2];
    if (size != want)
        return gv_fail(GV_ERR_FORMAT, "%s: header says %d tokens (%lld bytes) but file has %lld bytes", path,
                       hdr[2], (long long)want, (long long)size);
    s->count = hdr[2];
    return GV_OK;
}

static int gv_cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The shard paths of a directory (*.bin, sorted) or a comma list; *paths is malloc'ed strings. */
static gv_status gv_shard_list(const char *path, int is_dir, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    int cap = 0;
    gv_status st = GV_OK;
    char **v = NULL;
    DIR *dir = NULL;
    char *list = NULL, *save = NULL, *item = NULL;
    if (is_dir) {
        if (!(dir = opendir(path)))
            return gv_fail(GV_ERR_IO, "%s: cannot open directory: %s", path, strerror(errno));
    } else {
        if (!(list = strdup(path))) return gv_fail(GV_ERR_NOMEM, "out of memory");
        item = strtok_r(list, ",", &save);
    }
    for (;;) {
        char *p = NULL;
        if (is_dir) {
            struct dirent *de = readdir(dir);
            if (!de) break;
            if (de->d_name[0] == '.' || !gv_ends_with(de->d_name, ".bin")) continue;
            size_t len = strlen(path) + strlen(de->d_name) + 2;
            if ((p = malloc(len))) snprintf(p, len, "%s/%s", path, de->d_name);
        } else {
            if (!item) break;
            if (!gv_ends_with(item, ".bin")) {
                st = gv_fail(GV_ERR_INVALID, "%s: '%s' in the shard list is not a .bin token shard", path,
                             item);
                break;
            }
            p = strdup(item);
            item = strtok_r(NULL, ",", &save);
        }
        if (p && *n == cap) {
            char **nv = realloc(v, sizeof(char *) * (size_t)(cap ? 2 * cap : 16));
            if (nv) {
                v = nv;
                cap = cap ? 2 * cap : 16;
            } else {
                free(p);
                p = NULL;
            }
        }
        if (!p) {
            st = gv_fail(GV_ERR_NOMEM, "out of memory");
            break;
        }
        v[(*n)++] = p;
    }
    if (dir) closedir(dir);
    free(list);
    if (st == GV_OK && *n == 0) st = gv_fail(GV_ERR_INVALID, "%s: no .bin token shards found", path);
    if (st == GV_OK && is_dir) qsort(v, (size_t)*n, sizeof(char *), gv_cmp_str);
    if (st != GV_OK) {
        for (int i = 0; i < *n; i++) free(v[i]);
        free(v);
        *n = 0;
        return st;
    }
    *paths = v;
    return GV_OK;
}

static gv_status gv_dataset_open_files(gv_dataset *d, const char *path) {
    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (exists && S_ISREG(sb.st_mode) && !gv_ends_with(path, ".bin")) {
        d->kind = GV_DS_TEXT;
        d->vocab = 256;
        d->tok_bytes = 1;
        d->hdr_bytes = 0;
        d->files = calloc(1, sizeof *d->files);
        if (!d->files) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
        d->nfiles = 1;
        d->files[0].fd = open(path, O_RDONLY | O_CLOEXEC);
        d->files[0].path = strdup(path);
        if (d->files[0].fd < 0) return gv_fail(GV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        if (!d->files[0].path) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
        d->files[0].count = (int64_t)sb.st_size;
    } else {
        d->kind = GV_DS_SHARDS;
        d->vocab = GV_DATA_GPT2_VOCAB;
        d->tok_bytes = 2;
        d->hdr_bytes = GV_SHARD_HEADER_BYTES;
        char **paths = NULL;
        int n = 0;
        if (exists && S_ISDIR(sb.st_mode))
            GV_TRY(gv_shard_list(path, 1, &paths, &n));
        else if (!exists && strchr(path, ','))
            GV_TRY(gv_shard_list(path, 0, &paths, &n));
        else if (!exists)
            return gv_fail(GV_ERR_IO, "%s: cannot open dataset: %s", path, strerror(ENOENT));
        else if (!S_ISREG(sb.st_mode))
            return gv_fail(GV_ERR_IO, "%s: not a regular file or directory", path);
        else if (!(paths = malloc(sizeof(char *))) || !(paths[0] = strdup(path))) {
            free(paths);
            return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
        } else
            n = 1;
        d->files = calloc((size_t)n, sizeof *d->files);
        gv_status st = d->files ? GV_OK : gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
        for (int i = 0; i < n; i++) {
            if (st == GV_OK) {
                d->nfiles = i + 1;
                st = gv_shard_open(&d->files[i], paths[i]);
            }
            free(paths[i]);
        }
        free(paths);
        if (st != GV_OK) return st;
    }
    for (int i = 0; i < d->nfiles; i++) {
        d->files[i].base = d->ntok;
        d->ntok += d->files[i].count;
    }
    d->ntrain = d->ntok - d->ntok / 10;
    if (d->kind == GV_DS_TEXT)
        snprintf(d->describe, sizeof d->describe, "text file %s (%lld bytes = tokens, vocab 256)", path,
                 (long long)d->ntok);
    else
        snprintf(d->describe, sizeof d->describe, "llm.c token shards %s (%d file%s, %lld tokens, vocab %d)",
                 path, d->nfiles, d->nfiles == 1 ? "" : "s", (long long)d->ntok, d->vocab);
    return GV_OK;
}

gv_status gv_dataset_open(gv_dataset **out, const char *path, uint64_t seed) {
    *out = NULL;
    gv_dataset *d = calloc(1, sizeof *d);
    if (!d) return gv_fail(GV_ERR_NOMEM, "dataset: out of memory");
    d->seed = seed;
    if (!path || strcmp(path, "builtin") == 0) {
        d->kind = GV_DS_BUILTIN;
        d->vocab = GV_DATA_BUILTIN_VOCAB;
        d->name = strdup("builtin");
        gv_lang_build(d);
        snprintf(d->describe, sizeof d->describe,
                 "builtin synthetic language (order-2 Markov chain, vocab %d, entropy %.4f nats/token)",
                 GV_DATA_BUILTIN_VOCAB, gv_lang_entropy());
    } else {
        d->name = strdup(path);
        if (!*path) {
            gv_dataset_free(d);
            return gv_fail(GV_ERR_INVALID, "dataset: empty path");
        }
        gv_status st = gv_dataset_open_files(d, path);
        if (st != GV_OK) {
            gv_dataset_free(d);
            return st;
        }
    }
    if (!d->name) {
        gv_dataset_free(d);
        return gv_fail(GV_ERR_NOMEM, "dataset: out of memory");
    }
    *out = d;
    return GV_OK;
}

/* The random value behind row `row` of (step, split): it depends on no batch size, so any plan's slice of
 * the global batch sees the same rows. */
static uint64_t gv_row_key(const gv_dataset *d, uint64_t step, int split, int64_t row) {
    uint64_t stream = gv_hash_str(split == 0 ? "data.train" : "data.eval");
    uint64_t step_key = gv_rng_u64(d->seed, stream, step);
    return gv_rng_u64(step_key, gv_hash_str("data.row"), (uint64_t)row);
}

static void gv_lang_row(const gv_dataset *d, uint64_t key, int T, int32_t *tokens, int32_t *targets) {
    uint64_t stream = gv_hash_str("data.builtin.chain");
    int a = (int)(key % GV_DATA_BUILTIN_VOCAB), b = (int)((key >> 16) % GV_DATA_BUILTIN_VOCAB);
    for (int t = 0; t < GV_LANG_BURN + T + 1; t++) {
        int x = (int)(gv_rng_u64(key, stream, (uint64_t)t) % GV_LANG_WSUM), rot = 2 * (a & 3), k = 0, cum = 0;
        for (; k < GV_LANG_K - 1; k++) {
            cum += gv_lang_w[(k + rot) % GV_LANG_K];
            if (x < cum) break;
        }
        int c = d->succ[b][k];
        a = b;
        b = c;
        int i = t - GV_LANG_BURN; /* position of b in the row's T+1 tokens */
        if (i >= 0 && i < T) tokens[i] = b;
        if (i >= 1) targets[i - 1] = b;
    }
}

/* Tokens [pos, pos+n) of the concatenated file stream, widened to int32, checked against the vocab. */
static gv_status gv_file_tokens(const gv_dataset *d, int64_t pos, int64_t n, int32_t *out) {
    int lo = 0, hi = d->nfiles - 1;
    while (lo < hi) { /* the last file whose base <= pos */
        int mid = (lo + hi + 1) / 2;
        if (d->files[mid].base <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    unsigned char buf[4096];
    for (int fi = lo; n > 0 && fi < d->nfiles; fi++) {
        const gv_ds_file *s = &d->files[fi];
        int64_t in = pos - s->base, avail = s->count - in;
        if (avail <= 0) continue;
        int64_t take = avail < n ? avail : n;
        for (int64_t done = 0; done < take;) {
            int64_t m = take - done;
            if (m > (int64_t)sizeof buf / d->tok_bytes) m = (int64_t)sizeof buf / d->tok_bytes;
            off_t off = (off_t)(d->hdr_bytes + (in + done) * d->tok_bytes);
            size_t want = (size_t)(m * d->tok_bytes), got = 0;
            while (got < want) {
                ssize_t r = pread(s->fd, buf + got, want - got, off + (off_t)got);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0)
                    return gv_fail(GV_ERR_IO, "%s: read failed at token %lld: %s", s->path,
                                   (long long)(in + done),
                                   r < 0 ? strerror(errno) : "unexpected end of file (file shrank?)");
                got += (size_t)r;
            }
            for (int64_t k = 0; k < m; k++) {
                int v = d->tok_bytes == 1 ? buf[k] : (int)(buf[2 * k] | buf[2 * k + 1] << 8);
                if (v >= d->vocab)
                    return gv_fail(GV_ERR_FORMAT,
                                   "%s: token %d at position %lld is outside the GPT-2 vocab (%d)", s->path,
                                   v, (long long)(in + done + k), d->vocab);
                out[done + k] = v;
            }
            done += m;
        }
        out += take;
        pos += take;
        n -= take;
    }
    return GV_OK;
}

gv_status gv_dataset_rows(gv_dataset *d, uint64_t step, int split, int64_t row0, int nrows, int T,
                          int32_t *tokens, int32_t *targets) {
    if (split != 0 && split != 1)
        return gv_fail(GV_ERR_INVALID, "%s: split %d is neither 0 (train) nor 1 (eval)", d->name, split);
    if (T < 1 || nrows < 0 || row0 < 0)
        return gv_fail(GV_ERR_INVALID, "%s: bad batch request (rows %lld+%d, T = %d)", d->name,
                       (long long)row0, nrows, T);
    if (d->kind == GV_DS_BUILTIN) {
        for (int r = 0; r < nrows; r++)
            gv_lang_row(d, gv_row_key(d, step, split, row0 + r), T, tokens + (int64_t)r * T,
                        targets + (int64_t)r * T);
        return GV_OK;
    }
    int64_t lo = split == 0 ? 0 : d->ntrain, len = split == 0 ? d->ntrain : d->ntok - d->ntrain;
    if (len < (int64_t)T + 1)
        return gv_fail(GV_ERR_INVALID,
                       "%s: %s split has %lld tokens (of %lld), too few for T+1 = %d (T = %d)", d->name,
                       split == 0 ? "train" : "eval", (long long)len, (long long)d->ntok, T + 1, T);
    int32_t *buf = malloc(sizeof(int32_t) * ((size_t)T + 1));
    if (!buf) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", d->name);
    gv_status st = GV_OK;
    for (int r = 0; r < nrows && st == GV_OK; r++) {
        int64_t start = lo + (int64_t)(gv_row_key(d, step, split, row0 + r) % (uint64_t)(len - T));
        st = gv_file_tokens(d, start, (int64_t)T + 1, buf);
        if (st != GV_OK) break;
        memcpy(tokens + (int64_t)r * T, buf, sizeof(int32_t) * (size_t)T);
        memcpy(targets + (int64_t)r * T, buf + 1, sizeof(int32_t) * (size_t)T);
    }
    free(buf);
    return st;
}

gv_status gv_dataset_batch(gv_dataset *d, uint64_t step, int split, int B, int T, int32_t *tokens,
                           int32_t *targets) {
    return gv_dataset_rows(d, step, split, 0, B, T, tokens, targets);
}

/* ---- model families: masked-LM rows (BERT), images (ViT) ----------------------------------------------- */

#define GV_MLM_RATE 0.15
#define GV_IMG_HEADER_WORDS 8

/* A BERT row: the source's first T tokens of the row, a segment boundary s in [1, T) (token type 0 before
 * it, 1 from it: a sentence pair), and exactly k = max(1, round(0.15 T)) masked positions, chosen without
 * replacement (partial Fisher-Yates); a masked position's target is its token, and its input becomes
 * [MASK] (80%), a random token of the source's vocab (10%) or stays (10%). Every other target is -1. All of
 * it is drawn from the row's key, a function of (seed, split, step, row) only. A fixed count per row keeps
 * the mean loss of any slice of the batch equal to the mean over its rows, whatever the plan. */
static void gv_mlm_row(const gv_dataset *d, uint64_t key, int T, int mask_token, int32_t *tok, int32_t *in,
                       int32_t *tgt, int32_t *idx) {
    uint64_t s_seg = gv_hash_str("data.mlm.segment"), s_pick = gv_hash_str("data.mlm.pick");
    uint64_t s_mode = gv_hash_str("data.mlm.mode"), s_rand = gv_hash_str("data.mlm.random");
    int seg = T > 1 ? 1 + (int)(gv_rng_u64(key, s_seg, 0) % (uint64_t)(T - 1)) : T;
    int k = (int)floor(GV_MLM_RATE * T + 0.5);
    if (k < 1) k = 1;
    for (int t = 0; t < T; t++) {
        idx[t] = t;
        tgt[t] = -1;
    }
    for (int j = 0; j < k; j++) {
        int r = j + (int)(gv_rng_u64(key, s_pick, (uint64_t)j) % (uint64_t)(T - j));
        int32_t p = idx[r];
        idx[r] = idx[j];
        idx[j] = p;
        tgt[p] = tok[p];
        float u = gv_rng_uniform(key, s_mode, (uint64_t)j);
        if (u < 0.8f)
            tok[p] = mask_token;
        else if (u < 0.9f)
            tok[p] = (int32_t)(gv_rng_u64(key, s_rand, (uint64_t)j) % (uint64_t)d->vocab);
    }
    for (int t = 0; t < T; t++) {
        in[2 * t] = tok[t];
        in[2 * t + 1] = t >= seg;
    }
}

/* The built-in image of class `label` for a row key: a grating across the whole image whose orientation
 * (8 directions: label mod 8) and frequency (1..4 cycles: label / 8 mod 4) come from the class, brighter
 * in one channel for classes >= 32 (channel label / 32 mod channels), with a random phase per image and
 * Gaussian pixel noise (sd 32 of 255), clamped to [0, 255]. */
static void gv_img_builtin(const gv_dataset *d, uint64_t key, int label, uint8_t *px) {
    const double pi = 3.14159265358979;
    int C = d->img_c, S = d->img_h;
    double th = pi * (label % 8) / 8.0, f = 1 + (label / 8) % 4;
    double phase = 2 * pi * gv_rng_uniform(key, gv_hash_str("data.image.phase"), 0);
    uint64_t s_noise = gv_hash_str("data.image.noise");
    int hot = label >= 32 ? (label / 32) % C : -1;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t i = ((size_t)c * S + y) * S + x;
                double u = (x * cos(th) + y * sin(th)) / S, gain = hot < 0 || c == hot ? 1.0 : 0.5;
                double v = 128 + 80 * gain * cos(2 * pi * f * u + phase) +
                           32 * gv_rng_normal(key, s_noise, (uint64_t)i);
                px[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : floor(v + 0.5));
            }
}

static gv_status gv_img_open_file(gv_dataset *d, const char *path) {
    d->img_fd = open(path, O_RDONLY);
    if (d->img_fd < 0) return gv_fail(GV_ERR_IO, "%s: cannot open image file: %s", path, strerror(errno));
    int32_t h[GV_IMG_HEADER_WORDS];
    if (pread(d->img_fd, h, sizeof h, 0) != (ssize_t)sizeof h)
        return gv_fail(GV_ERR_FORMAT, "%s: shorter than the %d-byte image header", path, (int)sizeof h);
    if (h[0] != GV_DATA_IMAGE_MAGIC || h[1] != GV_DATA_IMAGE_VERSION)
        return gv_fail(GV_ERR_FORMAT, "%s: not an image file (magic %d version %d, want %d version %d)", path,
                       h[0], h[1], GV_DATA_IMAGE_MAGIC, GV_DATA_IMAGE_VERSION);
    if (h[2] < 1 || h[3] < 1 || h[4] < 1 || h[5] < 1 || h[6] < 1)
        return gv_fail(GV_ERR_FORMAT,
                       "%s: header: count %d, channels %d, height %d, width %d, classes %d must be positive",
                       path, h[2], h[3], h[4], h[5], h[6]);
    d->img_n = h[2], d->img_c = h[3], d->img_h = h[4], d->img_w = h[5], d->img_classes = h[6];
    struct stat stt;
    int64_t px = (int64_t)d->img_c * d->img_h * d->img_w;
    int64_t want = (int64_t)sizeof h + d->img_n * px + 4 * d->img_n;
    if (fstat(d->img_fd, &stt) != 0 || (int64_t)stt.st_size != want)
        return gv_fail(GV_ERR_FORMAT,
                       "%s: %lld bytes, the header says %lld (%lld images of %lld pixels + labels)", path,
                       (long long)stt.st_size, (long long)want, (long long)d->img_n, (long long)px);
    d->img_labels = malloc((size_t)d->img_n * 4);
    if (!d->img_labels) return gv_fail(GV_ERR_NOMEM, "%s: out of memory for labels", path);
    off_t at = (off_t)(sizeof h + d->img_n * px);
    if (pread(d->img_fd, d->img_labels, (size_t)d->img_n * 4, at) != (ssize_t)(d->img_n * 4))
        return gv_fail(GV_ERR_IO, "%s: cannot read the labels", path);
    for (int64_t i = 0; i < d->img_n; i++)
        if (d->img_labels[i] < 0 || d->img_labels[i] >= d->img_classes)
            return gv_fail(GV_ERR_FORMAT, "%s: label %d of image %lld is outside [0, %d)", path,
                           d->img_labels[i], (long long)i, d->img_classes);
    d->img_ntrain = d->img_n - d->img_n / 10;
    if (d->img_ntrain == d->img_n && d->img_n > 1) d->img_ntrain = d->img_n - 1;
    snprintf(d->describe, sizeof d->describe, "images %s (%lld of %dx%dx%d, %d classes)", path,
             (long long)d->img_n, d->img_c, d->img_h, d->img_w, d->img_classes);
    return GV_OK;
}

gv_status gv_dataset_open_for(gv_dataset **out, const char *path, uint64_t seed, const gv_model_spec *spec) {
    if (spec->arch != GV_ARCH_VIT) {
        GV_TRY(gv_dataset_open(out, path, seed));
        if (spec->arch == GV_ARCH_BERT && gv_dataset_vocab(*out) > spec->vocab) {
            gv_status st =
                gv_fail(GV_ERR_INVALID, "data %s has tokens up to %d but model %s has vocab %d",
                        gv_dataset_describe(*out), gv_dataset_vocab(*out) - 1, spec->name, spec->vocab);
            gv_dataset_free(*out);
            *out = NULL;
            return st;
        }
        return GV_OK;
    }
    *out = NULL;
    gv_dataset *d = calloc(1, sizeof *d);
    if (!d) return gv_fail(GV_ERR_NOMEM, "dataset: out of memory");
    d->kind = GV_DS_IMAGES;
    d->seed = seed;
    d->img_fd = -1;
    d->name = strdup(path ? path : "builtin");
    gv_status st = d->name ? GV_OK : gv_fail(GV_ERR_NOMEM, "dataset: out of memory");
    if (st == GV_OK && (!path || !strcmp(path, "builtin"))) {
        d->img_c = spec->channels, d->img_h = d->img_w = spec->image_size, d->img_classes = spec->vocab;
        d->img_n = -1;
        snprintf(d->describe, sizeof d->describe,
                 "builtin synthetic images (%dx%dx%d, %d classes: oriented gratings + noise)", d->img_c,
                 d->img_h, d->img_w, d->img_classes);
    } else if (st == GV_OK) {
        st = gv_img_open_file(d, path);
    }
    if (st == GV_OK && (d->img_c != spec->channels || d->img_h != spec->image_size ||
                        d->img_w != spec->image_size || d->img_classes > spec->vocab))
        st = gv_fail(GV_ERR_INVALID,
                     "%s: images %dx%dx%d with %d classes, model %s expects %dx%dx%d and at most %d", d->name,
                     d->img_c, d->img_h, d->img_w, d->img_classes, spec->name, spec->channels,
                     spec->image_size, spec->image_size, spec->vocab);
    d->vocab = d->img_classes;
    if (st != GV_OK) {
        gv_dataset_free(d);
        return st;
    }
    *out = d;
    return GV_OK;
}

/* One image into inputs [T, Pd] (class token row 0 zero, then the patches in row-major grid order, each
 * (channel, row, column)) and targets [T] (label at 0, -1 elsewhere). */
static void gv_img_patches(const gv_dataset *d, const gv_model_spec *s, const uint8_t *px, int label,
                           int32_t *in, int32_t *tgt) {
    int C = d->img_c, S = d->img_h, P = s->patch_size, np = S / P, Pd = C * P * P, T = 1 + np * np;
    memset(in, 0, (size_t)Pd * 4);
    for (int t = 0; t < T; t++) tgt[t] = t ? -1 : label;
    for (int py = 0; py < np; py++)
        for (int pxi = 0; pxi < np; pxi++) {
            int32_t *w = in + (size_t)(1 + py * np + pxi) * Pd;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++)
                    for (int j = 0; j < P; j++) *w++ = px[((size_t)c * S + py * P + i) * S + pxi * P + j];
        }
}

gv_status gv_dataset_rows_for(gv_dataset *d, const gv_model_spec *spec, uint64_t step, int split,
                              int64_t row0, int nrows, int T, int32_t *inputs, int32_t *targets) {
    if (spec->arch == GV_ARCH_GPT2 || spec->arch == GV_ARCH_LLAMA)
        return gv_dataset_rows(d, step, split, row0, nrows, T, inputs, targets);
    if (split != 0 && split != 1)
        return gv_fail(GV_ERR_INVALID, "%s: split %d is neither 0 (train) nor 1 (eval)", d->name, split);
    if (spec->arch == GV_ARCH_BERT) {
        int32_t *tok = malloc((size_t)T * 12);
        if (!tok) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", d->name);
        gv_status st = GV_OK;
        for (int r = 0; r < nrows && st == GV_OK; r++) {
            st = gv_dataset_rows(d, step, split, row0 + r, 1, T, tok, tok + T); /* the row's tokens */
            if (st == GV_OK)
                gv_mlm_row(d, gv_row_key(d, step, split, row0 + r), T, spec->mask_token, tok,
                           inputs + (size_t)r * T * 2, targets + (size_t)r * T, tok + 2 * T);
        }
        free(tok);
        return st;
    }
    if (spec->arch == GV_ARCH_T5) { /* a window of 2T tokens: source, then the target */
        int32_t *tok = malloc((size_t)T * 16);
        if (!tok) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", d->name);
        gv_status st = GV_OK;
        for (int r = 0; r < nrows && st == GV_OK; r++) {
            st = gv_dataset_rows(d, step, split, row0 + r, 1, 2 * T, tok, tok + 2 * T);
            int32_t *in = inputs + (size_t)r * T * 2, *tg = targets + (size_t)r * T;
            for (int t = 0; st == GV_OK && t < T; t++) {
                in[2 * t] = tok[t];
                in[2 * t + 1] = t ? tok[T + t - 1] : 0; /* decoder start = 0 (HF: pad) */
                tg[t] = tok[T + t];
            }
        }
        free(tok);
        return st;
    }
    if (d->kind != GV_DS_IMAGES) return gv_fail(GV_ERR_INVALID, "%s: not an image dataset", d->name);
    int np = spec->image_size / spec->patch_size, Pd = gv_model_spec_input_width(spec);
    if (T != 1 + np * np)
        return gv_fail(GV_ERR_INVALID, "%s: a %dx%d image in patches of %d is a sequence of %d, not %d",
                       d->name, spec->image_size, spec->image_size, spec->patch_size, 1 + np * np, T);
    size_t npx = (size_t)d->img_c * d->img_h * d->img_w;
    uint8_t *px = malloc(npx);
    if (!px) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", d->name);
    gv_status st = GV_OK;
    int64_t lo = split == 0 ? 0 : d->img_ntrain, len = split == 0 ? d->img_ntrain : d->img_n - d->img_ntrain;
    if (d->img_fd >= 0 && len < 1)
        st = gv_fail(GV_ERR_INVALID, "%s: the %s split has no images", d->name, split ? "eval" : "train");
    for (int r = 0; r < nrows && st == GV_OK; r++) {
        uint64_t key = gv_row_key(d, step, split, row0 + r);
        int label;
        if (d->img_fd < 0) {
            label = (int)(gv_rng_u64(key, gv_hash_str("data.image.label"), 0) % (uint64_t)d->img_classes);
            gv_img_builtin(d, key, label, px);
        } else {
            int64_t i = lo + (int64_t)(key % (uint64_t)len);
            label = d->img_labels[i];
            off_t at = (off_t)(GV_IMG_HEADER_WORDS * 4 + i * (int64_t)npx);
            if (pread(d->img_fd, px, npx, at) != (ssize_t)npx)
                st = gv_fail(GV_ERR_IO, "%s: cannot read image %lld", d->name, (long long)i);
        }
        if (st == GV_OK)
            gv_img_patches(d, spec, px, label, inputs + (size_t)r * T * Pd, targets + (size_t)r * T);
    }
    free(px);
    return st;
}

gv_status gv_dataset_write_images(const char *path, int n, int channels, int size, int classes,
                                  const uint8_t *pixels, const int32_t *labels) {
    FILE *f = fopen(path, "wb");
    if (!f) return gv_fail(GV_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int32_t h[GV_IMG_HEADER_WORDS] = {
        GV_DATA_IMAGE_MAGIC, GV_DATA_IMAGE_VERSION, n, channels, size, size, classes, 0};
    size_t npx = (size_t)n * channels * size * size;
    int ok = fwrite(h, sizeof h, 1, f) == 1 && fwrite(pixels, 1, npx, f) == npx &&
             fwrite(labels, 4, (size_t)n, f) == (size_t)n;
    ok = fclose(f) == 0 && ok;
    return ok ? GV_OK : gv_fail(GV_ERR_IO, "%s: write failed", path);
}

gv_status gv_dataset_synth_image(const gv_dataset *d, uint64_t key, int *label, uint8_t *pixels) {
    if (d->kind != GV_DS_IMAGES || d->img_fd >= 0)
        return gv_fail(GV_ERR_INVALID, "%s: not the built-in image set", d->name);
    *label = (int)(gv_rng_u64(key, gv_hash_str("data.image.label"), 0) % (uint64_t)d->img_classes);
    gv_img_builtin(d, key, *label, pixels);
    return GV_OK;
}
