#include "gv/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gv/hybrid.h"
#include "gv/safetensors.h"

/* What a checkpoint is read into / written from: a whole model (one process) or the layer-wise runtime. */
typedef struct {
    gv_model *m;
    gv_hybrid *h;
} gv_target;

static int gv_t_count(gv_target t) {
    return t.h ? gv_hybrid_hf_count(t.h) : gv_model_hf_count(t.m);
}
static void gv_t_info(gv_target t, int k, const char **name, int *ndim, int64_t shape[4]) {
    if (t.h)
        gv_hybrid_hf_info(t.h, k, name, ndim, shape);
    else
        gv_model_hf_info(t.m, k, name, ndim, shape);
}
static gv_status gv_t_import(gv_target t, int which, gv_hf_reader read, void *ctx) {
    return t.h ? gv_hybrid_import_stream(t.h, which, read, ctx)
               : gv_model_import_stream(t.m, which, read, ctx);
}
static gv_status gv_t_export(gv_target t, int which, int k, float *out) {
    return t.h ? gv_hybrid_export_one(t.h, which, k, out) : gv_model_export_one(t.m, which, k, out);
}
static int gv_t_writer(gv_target t) {
    return t.h ? gv_hybrid_is_writer(t.h) : gv_model_is_writer(t.m);
}
static const gv_model_spec *gv_t_spec(gv_target t) {
    return t.h ? gv_hybrid_spec(t.h) : gv_model_get_spec(t.m);
}

static const char *gv_buf_prefix(int which) {
    return which == GV_BUF_ADAM_M ? "exp_avg." : which == GV_BUF_ADAM_V ? "exp_avg_sq." : "";
}

/* The file's key for each tensor the model expects in buffer `which`, checked for presence and shape
 * before any data is read (keys[k] is owned by the caller; free with gv_keys_free). */
static gv_status gv_resolve_keys(gv_target m, gv_st_file *f, int which, char ***out) {
    int n = gv_t_count(m);
    char **keys = calloc((size_t)n, sizeof *keys);
    if (!keys) return gv_fail(GV_ERR_NOMEM, "%s: out of host memory", gv_st_path(f));
    gv_status st = GV_OK;
    for (int k = 0; k < n && st == GV_OK; k++) {
        const char *name;
        int ndim, fnd;
        int64_t shape[4], fshape[4];
        gv_dtype dt;
        gv_t_info(m, k, &name, &ndim, shape);
        char key[160];
        snprintf(key, sizeof key, "%s%s", gv_buf_prefix(which), name);
        if (gv_st_find(f, key) < 0 && which == GV_BUF_WEIGHTS) {
            char alt[160]; /* GPT2LMHeadModel files prefix the body with "transformer." */
            snprintf(alt, sizeof alt, "transformer.%s", name);
            if (gv_st_find(f, alt) >= 0) snprintf(key, sizeof key, "%s", alt);
        }
        int idx = gv_st_find(f, key);
        if (idx < 0) {
            st = gv_fail(GV_ERR_FORMAT, "%s: missing tensor '%s' (a file of another model?)", gv_st_path(f),
                         key);
            break;
        }
        st = gv_st_info(f, idx, &dt, &fnd, fshape);
        int same = st == GV_OK && fnd == ndim;
        for (int d = 0; same && d < ndim; d++) same = fshape[d] == shape[d];
        if (st == GV_OK && !same) {
            char want[64] = "", got[64] = "";
            for (int d = 0; d < ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), d ? ", %lld" : "[%lld",
                         (long long)shape[d]);
            for (int d = 0; d < fnd && d < 4; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), d ? ", %lld" : "[%lld",
                         (long long)fshape[d]);
            st = gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has shape %s], expected %s]", gv_st_path(f), key,
                         got, want);
        }
        if (st == GV_OK && !(keys[k] = strdup(key))) st = gv_fail(GV_ERR_NOMEM, "out of host memory");
    }
    if (st != GV_OK) {
        for (int k = 0; k < n; k++) free(keys[k]);
        free(keys);
        return st;
    }
    *out = keys;
    return GV_OK;
}

static void gv_keys_free(char **keys, int n) {
    for (int k = 0; keys && k < n; k++) free(keys[k]);
    free(keys);
}

typedef struct {
    gv_target m;
    gv_st_file *f;
    char **keys;
} gv_file_reader;

/* Reads only the rows a rank keeps (its slice of a row-split tensor), straight from the file. */
static gv_status gv_file_read(void *ctx, int k, int64_t row0, int64_t nrows, float *dst) {
    gv_file_reader *r = ctx;
    const char *name;
    int ndim;
    int64_t shape[4];
    gv_t_info(r->m, k, &name, &ndim, shape);
    if (ndim == 0 || (row0 == 0 && nrows == shape[0]))
        return gv_st_read_f32(r->f, r->keys[k], dst, ndim, shape);
    if (nrows == 0) return GV_OK;
    size_t row = 1;
    for (int d = 1; d < ndim; d++) row *= (size_t)shape[d];
    return gv_st_read_f32_rows(r->f, r->keys[k], row0, nrows, dst + (size_t)row0 * row);
}

static gv_status gv_load_weights(gv_target m, const char *path) {
    gv_st_file *f;
    GV_TRY(gv_st_open(&f, path));
    char **keys = NULL;
    gv_status st = gv_resolve_keys(m, f, GV_BUF_WEIGHTS, &keys);
    gv_file_reader r = {m, f, keys};
    if (st == GV_OK) st = gv_t_import(m, GV_BUF_WEIGHTS, gv_file_read, &r);
    gv_keys_free(keys, gv_t_count(m));
    gv_st_close(f);
    return st;
}

gv_status gv_model_load_weights(gv_model *m, const char *path) {
    return gv_load_weights((gv_target){m, NULL}, path);
}

gv_status gv_hybrid_load_weights(gv_hybrid *h, const char *path) {
    return gv_load_weights((gv_target){NULL, h}, path);
}

static char *gv_spec_json(const gv_model_spec *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", gv_arch_name(s->arch));
    cJSON_AddNumberToObject(o, "n_layer", s->n_layer);
    cJSON_AddNumberToObject(o, "n_embd", s->n_embd);
    cJSON_AddNumberToObject(o, "n_head", s->n_head);
    cJSON_AddNumberToObject(o, "n_kv_head", s->n_kv_head);
    cJSON_AddNumberToObject(o, "ffn", s->ffn);
    cJSON_AddNumberToObject(o, "max_seq", s->max_seq);
    cJSON_AddNumberToObject(o, "vocab", s->vocab);
    cJSON_AddNumberToObject(o, "padded_vocab", s->padded_vocab);
    cJSON_AddNumberToObject(o, "norm_eps", s->norm_eps);
    cJSON_AddNumberToObject(o, "rope_theta", s->rope_theta);
    cJSON_AddBoolToObject(o, "tied", s->tied);
    cJSON_AddBoolToObject(o, "bias", s->bias);
    if (s->arch == GV_ARCH_BERT) {
        cJSON_AddNumberToObject(o, "type_vocab", s->type_vocab);
        cJSON_AddNumberToObject(o, "mask_token", s->mask_token);
    }
    if (s->arch == GV_ARCH_T5) {
        cJSON_AddNumberToObject(o, "n_dec_layer", s->n_dec_layer);
        cJSON_AddNumberToObject(o, "rel_buckets", s->rel_buckets);
        cJSON_AddNumberToObject(o, "rel_max_distance", s->rel_max_distance);
    }
    if (s->arch == GV_ARCH_VIT) {
        cJSON_AddNumberToObject(o, "image_size", s->image_size);
        cJSON_AddNumberToObject(o, "patch_size", s->patch_size);
        cJSON_AddNumberToObject(o, "channels", s->channels);
    }
    /* Not model-file fields (fixed by arch today), but a checkpoint must record what it was trained as. */
    cJSON_AddStringToObject(o, "norm", s->norm == GV_NORM_LAYERNORM ? "layernorm" : "rmsnorm");
    cJSON_AddStringToObject(o, "act",
                            s->act == GV_ACT_GELU       ? "gelu"
                            : s->act == GV_ACT_GELU_ERF ? "gelu_erf"
                            : s->act == GV_ACT_RELU     ? "relu"
                                                        : "swiglu");
    cJSON_AddStringToObject(o, "pos", s->pos == GV_POS_LEARNED ? "learned" : "rope");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

typedef struct {
    gv_target m;
    int which, k;
} gv_export_job;

static gv_status gv_produce(void *ctx, void *dst) {
    const gv_export_job *j = ctx;
    return gv_t_export(j->m, j->which, j->k, dst);
}

/* Writes buffer `which` (the optimizer file: both moments) tensor by tensor. Exports are collective over the
 * model's groups: the writer produces each tensor as it streams it into the file; the other ranks take
 * part in the same exports in the same order and drop the result. A writer that fails aborts the job
 * through the CLI's error rule, so the others do not wait on it. */
static gv_status gv_save_buf(gv_target m, int which, const char *path, const gv_ckpt_meta *meta) {
    int n = gv_t_count(m), nb = which == GV_BUF_ADAM_M ? 2 : 1;
    int bufs[2] = {which, GV_BUF_ADAM_V};
    gv_status st = GV_OK;
    if (!gv_t_writer(m)) {
        size_t mx = 0;
        for (int k = 0; k < n; k++) {
            const char *name;
            int nd;
            int64_t sh[4], c = 1;
            gv_t_info(m, k, &name, &nd, sh);
            for (int d = 0; d < nd; d++) c *= sh[d];
            if ((size_t)c > mx) mx = (size_t)c;
        }
        float *scratch = malloc(mx * sizeof *scratch);
        if (!scratch) return gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path);
        for (int b = 0; b < nb && st == GV_OK; b++)
            for (int k = 0; k < n && st == GV_OK; k++) st = gv_t_export(m, bufs[b], k, scratch);
        free(scratch);
        return st;
    }
    gv_st_writer *w = NULL;
    gv_export_job *jobs = calloc((size_t)(n * nb), sizeof *jobs);
    if (!jobs) return gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path);
    st = gv_st_writer_init(&w);
    for (int b = 0; b < nb && st == GV_OK; b++)
        for (int k = 0; k < n && st == GV_OK; k++) {
            const char *name;
            int nd;
            int64_t sh[4];
            char key[160];
            gv_t_info(m, k, &name, &nd, sh);
            snprintf(key, sizeof key, "%s%s", gv_buf_prefix(bufs[b]), name);
            gv_export_job *j = &jobs[b * n + k];
            j->m = m, j->which = bufs[b], j->k = k;
            st = gv_st_writer_add_fn(w, key, GV_F32, nd, sh, gv_produce, j);
        }
    char *spec = gv_spec_json(gv_t_spec(m));
    char num[32];
    if (st == GV_OK) st = gv_st_writer_meta(w, "format", "galvatron-c/1");
    if (st == GV_OK) st = gv_st_writer_meta(w, "model", spec);
    if (st == GV_OK && meta) {
        snprintf(num, sizeof num, "%" PRId64, meta->step);
        st = gv_st_writer_meta(w, "step", num);
        snprintf(num, sizeof num, "%" PRIu64, meta->seed);
        if (st == GV_OK) st = gv_st_writer_meta(w, "seed", num);
        snprintf(num, sizeof num, "%" PRId64, meta->data_cursor);
        if (st == GV_OK) st = gv_st_writer_meta(w, "data_cursor", num);
    }
    if (st == GV_OK) st = gv_st_writer_save(w, path);
    free(spec);
    free(jobs);
    gv_st_writer_free(w);
    return st;
}

gv_status gv_checkpoint_save(gv_hybrid *h, const char *dir, const gv_ckpt_meta *meta) {
    gv_target m = {NULL, h};
    if (gv_t_writer(m) && mkdir(dir, 0755) != 0 && errno != EEXIST)
        return gv_fail(GV_ERR_IO, "%s: cannot create checkpoint directory: %s", dir, strerror(errno));
    char path[4096];
    /* Optimizer state first: a checkpoint is only complete (loadable) once model.safetensors exists. */
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    GV_TRY(gv_save_buf(m, GV_BUF_ADAM_M, path, meta));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return gv_save_buf(m, GV_BUF_WEIGHTS, path, meta);
}

static gv_status gv_meta_i64(gv_st_file *f, const char *key, int64_t *out) {
    const char *v = gv_st_meta(f, key);
    char *end;
    if (!v) return gv_fail(GV_ERR_FORMAT, "%s: metadata field '%s' is missing", gv_st_path(f), key);
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < 0)
        return gv_fail(GV_ERR_FORMAT, "%s: metadata field '%s' = '%s' is not a non-negative integer",
                       gv_st_path(f), key, v);
    *out = x;
    return GV_OK;
}

/* The saved model description must match the model being resumed (shapes alone miss e.g. n_head). */
static gv_status gv_check_spec(gv_target m, gv_st_file *f) {
    const char *saved = gv_st_meta(f, "model");
    if (!saved) return gv_fail(GV_ERR_FORMAT, "%s: metadata field 'model' is missing", gv_st_path(f));
    char *mine = gv_spec_json(gv_t_spec(m));
    cJSON *a = cJSON_Parse(saved), *b = cJSON_Parse(mine);
    gv_status st = GV_OK;
    if (!a) st = gv_fail(GV_ERR_FORMAT, "%s: metadata field 'model' is not valid JSON", gv_st_path(f));
    static const char *keys[] = {"arch", "n_layer", "n_embd", "n_head", "n_kv_head", "ffn", "max_seq",
                                 "vocab", "padded_vocab", "norm_eps", "rope_theta", "tied", "bias", "norm",
                                 "act", "pos",
                                 /* the families' own fields: compared when either side has them */
                                 "type_vocab", "mask_token", "image_size", "patch_size", "channels",
                                 "n_dec_layer", "rel_buckets", "rel_max_distance"};
    for (size_t i = 0; st == GV_OK && i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]),
              *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        /* norm/act/pos were added to the format later: absent means "as the arch implies". */
        if (!x && (!strcmp(keys[i], "norm") || !strcmp(keys[i], "act") || !strcmp(keys[i], "pos"))) continue;
        if (!x && !y && i >= 16) continue; /* a family field neither model has */
        if (!x || !y || !cJSON_Compare(x, y, 1)) {
            char *xs = x ? cJSON_PrintUnformatted(x) : NULL, *ys = y ? cJSON_PrintUnformatted(y) : NULL;
            st = gv_fail(GV_ERR_FORMAT, "%s: checkpoint is of another model: '%s' is %s, this model has %s",
                         gv_st_path(f), keys[i], xs ? xs : "missing", ys ? ys : "none");
            free(xs);
            free(ys);
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(mine);
    return st;
}

gv_status gv_checkpoint_load(gv_hybrid *h, const char *dir, gv_ckpt_meta *meta) {
    gv_target m = {NULL, h};
    char mpath[4096], opath[4096];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    snprintf(opath, sizeof opath, "%s/optimizer.safetensors", dir);
    gv_st_file *fm = NULL, *fo = NULL;
    char **kw = NULL, **km = NULL, **kv = NULL;
    int n = gv_t_count(m);
    gv_status st = gv_st_open(&fm, mpath);
    if (st == GV_OK) st = gv_st_open(&fo, opath);
    if (st == GV_OK) st = gv_check_spec(m, fm);
    gv_ckpt_meta md = {0};
    int64_t seed = 0;
    if (st == GV_OK) st = gv_meta_i64(fo, "step", &md.step);
    if (st == GV_OK) st = gv_meta_i64(fo, "seed", &seed);
    if (st == GV_OK) st = gv_meta_i64(fo, "data_cursor", &md.data_cursor);
    md.seed = (uint64_t)seed;
    int64_t mstep = -1;
    if (st == GV_OK && gv_meta_i64(fm, "step", &mstep) == GV_OK && mstep != md.step)
        st = gv_fail(GV_ERR_FORMAT, "%s: step %lld does not match %s step %lld (mixed checkpoints?)", mpath,
                     (long long)mstep, opath, (long long)md.step);
    /* Every tensor's presence and shape is checked (headers only; the data sizes were checked at open) before
     * the model changes; then the data streams in one tensor at a time. */
    if (st == GV_OK) st = gv_resolve_keys(m, fm, GV_BUF_WEIGHTS, &kw);
    if (st == GV_OK) st = gv_resolve_keys(m, fo, GV_BUF_ADAM_M, &km);
    if (st == GV_OK) st = gv_resolve_keys(m, fo, GV_BUF_ADAM_V, &kv);
    gv_file_reader rw = {m, fm, kw}, rm = {m, fo, km}, rv = {m, fo, kv};
    if (st == GV_OK) st = gv_t_import(m, GV_BUF_WEIGHTS, gv_file_read, &rw);
    if (st == GV_OK) st = gv_t_import(m, GV_BUF_ADAM_M, gv_file_read, &rm);
    if (st == GV_OK) st = gv_t_import(m, GV_BUF_ADAM_V, gv_file_read, &rv);
    if (st == GV_OK && meta) *meta = md;
    gv_keys_free(kw, n);
    gv_keys_free(km, n);
    gv_keys_free(kv, n);
    gv_st_close(fm);
    gv_st_close(fo);
    return st;
}
