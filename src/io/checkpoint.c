#include "gv/checkpoint.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gv/safetensors.h"

static const char *gv_buf_prefix(int which) {
    return which == GV_BUF_ADAM_M ? "exp_avg." : which == GV_BUF_ADAM_V ? "exp_avg_sq." : "";
}

/* Reads every tensor the model expects for buffer `which` from f into host tensors. */
static gv_status gv_read_buf(gv_model *m, gv_st_file *f, int which, gv_named_f32 **out) {
    int n = gv_model_hf_count(m);
    gv_named_f32 *ts = calloc((size_t)n, sizeof *ts);
    if (!ts) return gv_fail(GV_ERR_NOMEM, "%s: out of host memory", gv_st_path(f));
    gv_status st = GV_OK;
    for (int i = 0; i < n && st == GV_OK; i++) {
        const char *name;
        gv_named_f32 *t = &ts[i];
        gv_model_hf_info(m, i, &name, &t->ndim, t->shape);
        char key[128];
        snprintf(key, sizeof key, "%s%s", gv_buf_prefix(which), name);
        if (gv_st_find(f, key) < 0 && which == GV_BUF_WEIGHTS) {
            char alt[128]; /* GPT2LMHeadModel files prefix the body with "transformer." */
            snprintf(alt, sizeof alt, "transformer.%s", name);
            if (gv_st_find(f, alt) >= 0) snprintf(key, sizeof key, "%s", alt);
        }
        if (gv_st_find(f, key) < 0) {
            st = gv_fail(GV_ERR_FORMAT, "%s: missing tensor '%s' (a file of another model?)", gv_st_path(f),
                         key);
            break;
        }
        snprintf(t->name, sizeof t->name, "%s", name);
        int64_t cnt = 1;
        for (int d = 0; d < t->ndim; d++) cnt *= t->shape[d];
        t->data = malloc((size_t)cnt * sizeof(float));
        if (!t->data)
            st = gv_fail(GV_ERR_NOMEM, "%s: out of host memory", gv_st_path(f));
        else
            st = gv_st_read_f32(f, key, t->data, t->ndim, t->shape);
    }
    if (st != GV_OK) {
        gv_named_f32_free(ts, n);
        return st;
    }
    *out = ts;
    return GV_OK;
}

gv_status gv_model_load_weights(gv_model *m, const char *path) {
    gv_st_file *f;
    GV_TRY(gv_st_open(&f, path));
    gv_named_f32 *ts = NULL;
    gv_status st = gv_read_buf(m, f, GV_BUF_WEIGHTS, &ts);
    if (st == GV_OK) st = gv_model_import_hf(m, ts, gv_model_hf_count(m), path);
    gv_named_f32_free(ts, gv_model_hf_count(m));
    gv_st_close(f);
    return st;
}

static char *gv_spec_json(const gv_model_spec *s) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "arch", s->arch == GV_ARCH_GPT2 ? "gpt2" : "llama");
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
    /* Not model-file fields (fixed by arch today), but a checkpoint must record what it was trained as. */
    cJSON_AddStringToObject(o, "norm", s->norm == GV_NORM_LAYERNORM ? "layernorm" : "rmsnorm");
    cJSON_AddStringToObject(o, "act", s->act == GV_ACT_GELU ? "gelu" : "swiglu");
    cJSON_AddStringToObject(o, "pos", s->pos == GV_POS_LEARNED ? "learned" : "rope");
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static gv_status gv_save_buf(gv_model *m, int which, const char *path, const gv_ckpt_meta *meta) {
    gv_named_f32 *ts = NULL;
    int n = 0;
    GV_TRY(gv_model_export_hf(m, which, &ts, &n));
    gv_st_writer *w = NULL;
    gv_status st = gv_st_writer_init(&w);
    char **names = calloc((size_t)(2 * n), sizeof *names);
    int nn = 0;
    int bufs[2] = {which, -1};
    gv_named_f32 *ts2 = NULL;
    if (st == GV_OK && which == GV_BUF_ADAM_M) { /* the optimizer file holds both moments */
        bufs[1] = GV_BUF_ADAM_V;
        int n2;
        st = gv_model_export_hf(m, GV_BUF_ADAM_V, &ts2, &n2);
    }
    for (int b = 0; b < 2 && st == GV_OK && bufs[b] >= 0; b++) {
        gv_named_f32 *src = b ? ts2 : ts;
        for (int i = 0; i < n && st == GV_OK; i++) {
            size_t len = strlen(src[i].name) + 16;
            names[nn] = malloc(len);
            snprintf(names[nn], len, "%s%s", gv_buf_prefix(bufs[b]), src[i].name);
            st = gv_st_writer_add(w, names[nn], GV_F32, src[i].ndim, src[i].shape, src[i].data);
            nn++;
        }
    }
    char *spec = gv_spec_json(gv_model_get_spec(m));
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
    /* Exports are collective under ZeRO (moments are gathered); one rank per replica writes. */
    if (st == GV_OK && gv_model_is_writer(m)) st = gv_st_writer_save(w, path);
    free(spec);
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    gv_st_writer_free(w);
    gv_named_f32_free(ts, n);
    gv_named_f32_free(ts2, n);
    return st;
}

gv_status gv_checkpoint_save(gv_model *m, const char *dir, const gv_ckpt_meta *meta) {
    if (gv_model_is_writer(m) && mkdir(dir, 0755) != 0 && errno != EEXIST)
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
static gv_status gv_check_spec(gv_model *m, gv_st_file *f) {
    const char *saved = gv_st_meta(f, "model");
    if (!saved) return gv_fail(GV_ERR_FORMAT, "%s: metadata field 'model' is missing", gv_st_path(f));
    char *mine = gv_spec_json(gv_model_get_spec(m));
    cJSON *a = cJSON_Parse(saved), *b = cJSON_Parse(mine);
    gv_status st = GV_OK;
    if (!a) st = gv_fail(GV_ERR_FORMAT, "%s: metadata field 'model' is not valid JSON", gv_st_path(f));
    static const char *keys[] = {"arch",    "n_layer", "n_embd",       "n_head",   "n_kv_head",  "ffn",
                                 "max_seq", "vocab",   "padded_vocab", "norm_eps", "rope_theta", "tied",
                                 "bias",    "norm",    "act",          "pos"};
    for (size_t i = 0; st == GV_OK && i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *x = cJSON_GetObjectItemCaseSensitive(a, keys[i]),
              *y = cJSON_GetObjectItemCaseSensitive(b, keys[i]);
        /* norm/act/pos were added to the format later: absent means "as the arch implies". */
        if (!x && (!strcmp(keys[i], "norm") || !strcmp(keys[i], "act") || !strcmp(keys[i], "pos"))) continue;
        if (!x || !cJSON_Compare(x, y, 1)) {
            char *xs = x ? cJSON_PrintUnformatted(x) : NULL, *ys = cJSON_PrintUnformatted(y);
            st = gv_fail(GV_ERR_FORMAT, "%s: checkpoint is of another model: '%s' is %s, this model has %s",
                         gv_st_path(f), keys[i], xs ? xs : "missing", ys);
            free(xs);
            free(ys);
        }
    }
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(mine);
    return st;
}

gv_status gv_checkpoint_load(gv_model *m, const char *dir, gv_ckpt_meta *meta) {
    char mpath[4096], opath[4096];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    snprintf(opath, sizeof opath, "%s/optimizer.safetensors", dir);
    gv_st_file *fm = NULL, *fo = NULL;
    gv_named_f32 *w = NULL, *mm = NULL, *vv = NULL;
    int n = gv_model_hf_count(m);
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
    /* Read everything before changing the model, so a bad file leaves it untouched. */
    if (st == GV_OK) st = gv_read_buf(m, fm, GV_BUF_WEIGHTS, &w);
    if (st == GV_OK) st = gv_read_buf(m, fo, GV_BUF_ADAM_M, &mm);
    if (st == GV_OK) st = gv_read_buf(m, fo, GV_BUF_ADAM_V, &vv);
    if (st == GV_OK) st = gv_model_import_buf(m, GV_BUF_WEIGHTS, w, n, mpath);
    if (st == GV_OK) st = gv_model_import_buf(m, GV_BUF_ADAM_M, mm, n, opath);
    if (st == GV_OK) st = gv_model_import_buf(m, GV_BUF_ADAM_V, vv, n, opath);
    if (st == GV_OK && meta) *meta = md;
    gv_named_f32_free(w, w ? n : 0);
    gv_named_f32_free(mm, mm ? n : 0);
    gv_named_f32_free(vv, vv ? n : 0);
    gv_st_close(fm);
    gv_st_close(fo);
    return st;
}
