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

typedef enum { GV_DS_BUILTIN, GV_DS_TEXT, GV_DS_SHARDS } gv_ds_kind;

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
