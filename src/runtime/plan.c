/* Plans: construction, validation, and the two JSON forms (Hetu-Galvatron's galvatron_config and ours). */
#include "gv/plan.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/comm.h"
#include "gv/fileio.h"

const char *gv_sp_mode_name(gv_sp_mode m) {
    return m == GV_SP_MEGATRON ? "megatron" : m == GV_SP_ULYSSES ? "ulysses" : "none";
}

static const char *const gv_dp_type_names[] = {"ddp", "zero1", "zero2", "zero3"};

const char *gv_zero_name(int zero) {
    return zero >= 0 && zero <= 3 ? gv_dp_type_names[zero] : "?";
}

void gv_plan_free(gv_plan *p) {
    free(p->layers);
    free(p->stage_layers);
    p->layers = NULL;
    p->stage_layers = NULL;
}

/* A zeroed plan with its header set, one micro-batch, and room for the layers and stages. */
static gv_status gv_plan_alloc(gv_plan *p, int world, int pp, int n_layer, gv_schedule sched) {
    memset(p, 0, sizeof *p);
    p->world = world;
    p->pp = pp;
    p->n_layer = n_layer;
    p->schedule = sched;
    p->micro_batches = 1;
    p->layers = calloc((size_t)(n_layer > 0 ? n_layer : 1), sizeof *p->layers);
    p->stage_layers = calloc((size_t)(pp > 0 ? pp : 1), sizeof *p->stage_layers);
    if (!p->layers || !p->stage_layers) {
        gv_plan_free(p);
        return gv_fail(GV_ERR_NOMEM, "plan: out of host memory");
    }
    return GV_OK;
}

gv_status gv_plan_copy(gv_plan *dst, const gv_plan *src) {
    GV_TRY(gv_plan_alloc(dst, src->world, src->pp, src->n_layer, src->schedule));
    gv_layer_strategy *l = dst->layers;
    int *st = dst->stage_layers;
    *dst = *src;
    dst->layers = memcpy(l, src->layers, (size_t)src->n_layer * sizeof *l);
    dst->stage_layers = memcpy(st, src->stage_layers, (size_t)src->pp * sizeof *st);
    return GV_OK;
}

static void gv_even_stages(gv_plan *p) {
    for (int s = 0; s < p->pp; s++)
        p->stage_layers[s] = p->n_layer / p->pp + (s < p->n_layer % p->pp ? 1 : 0);
}

gv_status gv_plan_uniform(gv_plan *p, int world, int pp, int n_layer, gv_layer_strategy layer,
                          gv_layer_strategy vocab, gv_schedule sched, int global_batch, int micro_batches) {
    memset(p, 0, sizeof *p);
    if (pp < 1 || n_layer < 1)
        return gv_fail(GV_ERR_INVALID, "plan: pp %d and layers %d must be positive", pp, n_layer);
    GV_TRY(gv_plan_alloc(p, world, pp, n_layer, sched));
    p->global_batch = global_batch;
    p->micro_batches = micro_batches;
    p->vocab = vocab;
    p->vocab.ckpt = 0;
    for (int i = 0; i < n_layer; i++) p->layers[i] = layer;
    gv_even_stages(p);
    return GV_OK;
}

gv_status gv_strategy_parse(const char *s, gv_layer_strategy *out, const char **end) {
    const char *w = s;
    gv_layer_strategy l = {1, GV_SP_NONE, 0, 0};
    if (*s != 't' && *s != 'm' && *s != 'u')
        return gv_fail(GV_ERR_INVALID, "strategy '%.16s': expected t, m or u and a degree (e.g. t2z1c)", w);
    l.sp = *s == 'm' ? GV_SP_MEGATRON : *s == 'u' ? GV_SP_ULYSSES : GV_SP_NONE;
    char *e;
    long t = strtol(s + 1, &e, 10);
    if (e == s + 1 || t < 1 || t > 1 << 20)
        return gv_fail(GV_ERR_INVALID, "strategy '%.16s': expected a degree after '%c'", w, *s);
    l.tp = (int)t, s = e;
    if (*s == 'z') {
        long z = strtol(s + 1, &e, 10);
        if (e == s + 1 || z < 0 || z > 3)
            return gv_fail(GV_ERR_INVALID, "strategy '%.16s': expected a ZeRO stage 0..3 after 'z'", w);
        l.zero = (int)z, s = e;
    }
    if (*s == 'c') l.ckpt = 1, s++;
    if (*s && *s != ' ') return gv_fail(GV_ERR_INVALID, "strategy '%.16s': unexpected '%c'", w, *s);
    while (*s == ' ') s++;
    *out = l;
    *end = s;
    return GV_OK;
}

gv_status gv_plan_compact(gv_plan *p, int world, int pp, gv_schedule sched, int global_batch,
                          int micro_batches, const char *layers, const char *vocab, const char *stages) {
    memset(p, 0, sizeof *p);
    int n = 0;
    gv_layer_strategy l, v;
    const char *s = layers, *e;
    while (*s == ' ') s++;
    for (const char *q = s; *q; n++) GV_TRY(gv_strategy_parse(q, &l, &q));
    if (n == 0) return gv_fail(GV_ERR_INVALID, "plan: no layer strategies in '%s'", layers);
    GV_TRY(gv_strategy_parse(vocab, &v, &e));
    GV_TRY(gv_plan_uniform(p, world, pp, n, l, v, sched, global_batch, micro_batches));
    for (int i = 0; i < n; i++) gv_strategy_parse(s, &p->layers[i], &s); /* parsed above */
    for (int k = 0; stages && k < pp; k++) {
        char *end;
        long x = strtol(stages, &end, 10);
        if (end == stages || (k + 1 < pp && *end != ',') || (k + 1 == pp && *end)) {
            gv_plan_free(p);
            return gv_fail(GV_ERR_INVALID, "plan: stages '%s': expected %d comma-separated layer counts",
                           stages, pp);
        }
        p->stage_layers[k] = (int)x;
        stages = end + (*end == ',');
    }
    return GV_OK;
}

/* Checks one strategy; `what` is "layer 3" or "vocab". */
static gv_status gv_check_strategy(const gv_plan *p, const gv_layer_strategy *l, const gv_model_spec *s,
                                   int seq, const char *w, const char *what) {
    int per_stage = p->world / p->pp, t = l->tp;
    if (t < 1 || per_stage % t)
        return gv_fail(GV_ERR_INVALID,
                       "%s: %s: tp %d does not divide the %d ranks of a stage (world %d / pp %d)", w, what, t,
                       per_stage, p->world, p->pp);
    if (l->zero < 0 || l->zero > 3)
        return gv_fail(GV_ERR_INVALID, "%s: %s: ZeRO stage %d is not 0..3", w, what, l->zero);
    if (l->sp == GV_SP_MEGATRON && t < 2)
        return gv_fail(GV_ERR_INVALID, "%s: %s: Megatron sequence parallelism needs tp > 1", w, what);
    int dp = per_stage / t;
    int is_vocab = !strcmp(what, "vocab");
    if (t > 1) {
        if (!is_vocab) {
            if (s->n_head % t)
                return gv_fail(GV_ERR_INVALID, "%s: %s: %s %d does not divide n_head %d", w, what,
                               l->sp == GV_SP_ULYSSES ? "ulysses degree" : "tp", t, s->n_head);
            if (s->n_kv_head % t)
                return gv_fail(GV_ERR_INVALID, "%s: %s: %s %d does not divide n_kv_head %d", w, what,
                               l->sp == GV_SP_ULYSSES ? "ulysses degree" : "tp", t, s->n_kv_head);
            if (l->sp != GV_SP_ULYSSES && s->ffn % t)
                return gv_fail(GV_ERR_INVALID, "%s: %s: tp %d does not divide ffn %d", w, what, t, s->ffn);
        } else if (l->sp != GV_SP_ULYSSES && s->padded_vocab % t) {
            return gv_fail(GV_ERR_INVALID, "%s: vocab: tp %d does not divide the padded vocab %d", w, t,
                           s->padded_vocab);
        } else if (l->sp != GV_SP_ULYSSES && s->vocab <= s->padded_vocab - s->padded_vocab / t) {
            return gv_fail(
                GV_ERR_INVALID,
                "%s: vocab: tp %d leaves rank %d (rows %d..%d) without real tokens (vocab %d of %d padded)",
                w, t, t - 1, s->padded_vocab - s->padded_vocab / t, s->padded_vocab - 1, s->vocab,
                s->padded_vocab);
        }
        if (l->sp != GV_SP_NONE && seq % t)
            return gv_fail(GV_ERR_INVALID, "%s: %s: %s degree %d does not divide the sequence length %d", w,
                           what, gv_sp_mode_name(l->sp), t, seq);
    }
    if (l->zero > 0 && dp == 1 && !(l->sp == GV_SP_ULYSSES && t > 1))
        return gv_fail(GV_ERR_INVALID, "%s: %s: %s needs a data-parallel group larger than 1 (dp = %d)", w,
                       what, gv_zero_name(l->zero), dp);
    int local = p->global_batch / p->micro_batches;
    if (local % dp)
        return gv_fail(GV_ERR_INVALID,
                       "%s: %s: dp %d does not divide the micro-batch of %d sequences (global batch %d / %d "
                       "micro-batches)",
                       w, what, dp, local, p->global_batch, p->micro_batches);
    return GV_OK;
}

gv_status gv_plan_validate(const gv_plan *p, const gv_model_spec *s, int seq, const char *where) {
    const char *w = where ? where : "plan";
    if (p->world < 1) return gv_fail(GV_ERR_INVALID, "%s: world size %d must be positive", w, p->world);
    if (p->pp < 1 || p->world % p->pp)
        return gv_fail(GV_ERR_INVALID, "%s: pp %d does not divide the world size %d", w, p->pp, p->world);
    if (p->n_layer != s->n_layer)
        return gv_fail(GV_ERR_INVALID, "%s: plan has %d layers, model %s has %d", w, p->n_layer, s->name,
                       s->n_layer);
    if (p->pp > p->n_layer)
        return gv_fail(GV_ERR_INVALID, "%s: pp %d exceeds the %d layers", w, p->pp, p->n_layer);
    int sum = 0;
    for (int i = 0; i < p->pp; i++) {
        if (p->stage_layers[i] < 1)
            return gv_fail(GV_ERR_INVALID, "%s: pipeline stage %d has %d layers (at least 1 needed)", w, i,
                           p->stage_layers[i]);
        sum += p->stage_layers[i];
    }
    if (sum != p->n_layer)
        return gv_fail(GV_ERR_INVALID, "%s: pp_division sums to %d layers, the model has %d", w, sum,
                       p->n_layer);
    if (p->global_batch < 1 || p->micro_batches < 1 || p->global_batch % p->micro_batches)
        return gv_fail(GV_ERR_INVALID, "%s: %d micro-batches do not divide the global batch %d", w,
                       p->micro_batches, p->global_batch);
    char what[32];
    for (int i = 0; i < p->n_layer; i++) {
        snprintf(what, sizeof what, "layer %d", i);
        GV_TRY(gv_check_strategy(p, &p->layers[i], s, seq, w, what));
    }
    return gv_check_strategy(p, &p->vocab, s, seq, w, "vocab");
}

/* ---- JSON ------------------------------------------------------------------------------------------- */

/* A per-layer list: a JSON array of integers or a Galvatron string "1,1,2". */
static gv_status gv_int_list(const cJSON *root, const char *key, int *out, int n, int required,
                             const char *path, int *present) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    *present = it != NULL;
    if (!it) return required ? gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", path, key) : GV_OK;
    int k = 0;
    if (cJSON_IsArray(it)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, it) {
            if (!cJSON_IsNumber(e) || e->valuedouble != (int)e->valuedouble)
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s': element %d is not an integer", path, key, k);
            if (k < n) out[k] = (int)e->valuedouble;
            k++;
        }
    } else if (cJSON_IsString(it)) {
        const char *s = it->valuestring;
        while (*s) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s)
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s': '%s' is not a comma-separated integer list",
                               path, key, it->valuestring);
            if (k < n) out[k] = (int)v;
            k++;
            s = end;
            while (*s == ' ') s++;
            if (*s == ',' && s[1] != '\0')
                s++;
            else if (*s)
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s': '%s' is not a comma-separated integer list",
                               path, key, it->valuestring);
        }
    } else {
        return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a list of integers", path, key);
    }
    if (k != n) return gv_fail(GV_ERR_FORMAT, "%s: field '%s' has %d entries, expected %d", path, key, k, n);
    return GV_OK;
}

static gv_status gv_get_int(const cJSON *root, const char *key, int *out, int required, int lo,
                            const char *path) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return required ? gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", path, key) : GV_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != (int)it->valuedouble || it->valuedouble < lo)
        return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be an integer >= %d", path, key, lo);
    *out = (int)it->valuedouble;
    return GV_OK;
}

/* Enum field `key` of root (absent: *out unchanged); `label` names it in messages (NULL: key). */
static gv_status gv_get_enum(const cJSON *root, const char *key, const char *const *names, int n, int *out,
                             const char *path, const char *label) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return GV_OK;
    if (cJSON_IsString(it))
        for (int i = 0; i < n; i++)
            if (!strcmp(it->valuestring, names[i])) {
                *out = i;
                return GV_OK;
            }
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return gv_fail(GV_ERR_FORMAT, "%s: field '%s': unknown value %s%s%s (expected %s)", path,
                   label ? label : key, cJSON_IsString(it) ? "'" : "",
                   cJSON_IsString(it) ? it->valuestring : "(not a string)", cJSON_IsString(it) ? "'" : "",
                   list);
}

static const char *const gv_sp_names[] = {"none", "megatron", "ulysses"};

/* Hetu-Galvatron's galvatron_config (reference §5.1). */
static gv_status gv_plan_from_galvatron(gv_plan *p, const cJSON *root, const char *path, int n_layer,
                                        int world) {
    int pp = 1, vtp = 1, vsp = 0, vsdp = 0, default_dp = 0, sched = GV_SCHED_1F1B, present;
    GV_TRY(gv_get_int(root, "pp_deg", &pp, 1, 1, path));
    int file_world = 0;
    GV_TRY(gv_get_int(root, "world_size", &file_world, 0, 1, path));
    if (world == 0) world = file_world;
    if (world == 0)
        return gv_fail(GV_ERR_FORMAT, "%s: no 'world_size' in the file; give the rank count (-n)", path);
    if (file_world && file_world != world)
        return gv_fail(GV_ERR_INVALID, "%s: plan is for world_size %d, but %d ranks were given", path,
                       file_world, world);
    GV_TRY(gv_get_enum(root, "default_dp_type", gv_dp_type_names, 4, &default_dp, path, NULL));
    if (default_dp == 1)
        return gv_fail(GV_ERR_FORMAT, "%s: field 'default_dp_type': zero1 is not a Galvatron type", path);
    static const char *const pipe_names[] = {"gpipe", "pipedream_flush"};
    GV_TRY(gv_get_enum(root, "pipeline_type", pipe_names, 2, &sched, path, NULL));
    GV_TRY(gv_plan_alloc(p, world, pp, n_layer, (gv_schedule)sched));
    int *tmp = calloc((size_t)n_layer * 4, sizeof *tmp);
    if (!tmp) {
        gv_plan_free(p);
        return gv_fail(GV_ERR_NOMEM, "plan: out of host memory");
    }
    int *tps = tmp, *dpt = tmp + n_layer, *usp = tmp + 2 * n_layer, *ck = tmp + 3 * n_layer;
    gv_status st = gv_int_list(root, "tp_sizes_enc", tps, n_layer, 1, path, &present);
    if (st == GV_OK) st = gv_int_list(root, "tp_consecutive_flags", ck, n_layer, 0, path, &present);
    for (int i = 0; st == GV_OK && present && i < n_layer; i++)
        if (ck[i] != 1)
            st = gv_fail(GV_ERR_UNSUPPORTED,
                         "%s: field 'tp_consecutive_flags': entry %d is %d (tensor-parallel groups are "
                         "consecutive ranks)",
                         path, i, ck[i]);
    memset(ck, 0, (size_t)n_layer * sizeof *ck);
    if (st == GV_OK) st = gv_int_list(root, "dp_types_enc", dpt, n_layer, 1, path, &present);
    if (st == GV_OK) st = gv_int_list(root, "use_sp", usp, n_layer, 0, path, &present);
    if (st == GV_OK) st = gv_int_list(root, "checkpoint", ck, n_layer, 0, path, &present);
    if (st == GV_OK) st = gv_int_list(root, "pp_division", p->stage_layers, pp, 0, path, &present);
    if (st == GV_OK && !present) gv_even_stages(p);
    for (int i = 0; st == GV_OK && i < n_layer; i++) {
        if (tps[i] < 1)
            st = gv_fail(GV_ERR_FORMAT, "%s: field 'tp_sizes_enc': entry %d is %d", path, i, tps[i]);
        else if (dpt[i] != 0 && dpt[i] != 1)
            st = gv_fail(GV_ERR_FORMAT, "%s: field 'dp_types_enc': entry %d is %d (expected 0 or 1)", path, i,
                         dpt[i]);
        else if (usp[i] != 0 && usp[i] != 1)
            st = gv_fail(GV_ERR_FORMAT, "%s: field 'use_sp': entry %d is %d (expected 0 or 1)", path, i,
                         usp[i]);
        else if (ck[i] != 0 && ck[i] != 1)
            st = gv_fail(GV_ERR_FORMAT, "%s: field 'checkpoint': entry %d is %d (expected 0 or 1)", path, i,
                         ck[i]);
        if (st != GV_OK) break;
        gv_layer_strategy *l = &p->layers[i];
        l->tp = tps[i];
        l->sp = usp[i] ? GV_SP_ULYSSES : GV_SP_NONE;
        l->zero = dpt[i] ? 3 : default_dp;
        /* Galvatron applies the default dp type only where there is data parallelism: a layer whose
         * sharded-data-parallel group is one rank (tp = the stage, not Ulysses) runs plain DDP. */
        if (!dpt[i] && l->tp == world / pp && l->sp != GV_SP_ULYSSES) l->zero = 0;
        l->ckpt = ck[i];
    }
    free(tmp);
    if (st == GV_OK) st = gv_get_int(root, "global_bsz", &p->global_batch, 1, 1, path);
    if (st == GV_OK) st = gv_get_int(root, "chunks", &p->micro_batches, 0, 1, path);
    if (st == GV_OK) st = gv_get_int(root, "vtp", &vtp, 0, 1, path);
    if (st == GV_OK) st = gv_get_int(root, "vsp", &vsp, 0, 0, path);
    /* The search writes embed_sdp, the runtime reads vocab_sdp (reference §5.1 pitfall): accept both. */
    if (st == GV_OK) st = gv_get_int(root, "embed_sdp", &vsdp, 0, 0, path);
    if (st == GV_OK) st = gv_get_int(root, "vocab_sdp", &vsdp, 0, 0, path);
    if (st == GV_OK && (vsp > 1 || vsdp > 1))
        st = gv_fail(GV_ERR_FORMAT, "%s: fields 'vsp' and 'embed_sdp'/'vocab_sdp' must be 0 or 1", path);
    if (st != GV_OK) {
        gv_plan_free(p);
        return st;
    }
    p->vocab.tp = vtp;
    p->vocab.sp = vsp ? GV_SP_ULYSSES : GV_SP_NONE;
    p->vocab.zero = vsdp ? 3 : default_dp;
    if (!vsdp && p->vocab.tp == world / pp && p->vocab.sp != GV_SP_ULYSSES) p->vocab.zero = 0; /* see above */
    return GV_OK;
}

static gv_status gv_strategy_from_json(gv_layer_strategy *l, const cJSON *o, const char *path,
                                       const char *what) {
    if (!cJSON_IsObject(o)) return gv_fail(GV_ERR_FORMAT, "%s: %s must be an object", path, what);
    char key[64];
    l->tp = 1;
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        if (strcmp(k, "tp") && strcmp(k, "sp") && strcmp(k, "dp_type") && strcmp(k, "ckpt"))
            return gv_fail(GV_ERR_FORMAT, "%s: %s: unknown field '%s'", path, what, k);
    }
    snprintf(key, sizeof key, "%s.tp", what);
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(o, "tp");
    if (tp && (!cJSON_IsNumber(tp) || tp->valuedouble < 1 || tp->valuedouble != (int)tp->valuedouble))
        return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a positive integer", path, key);
    if (tp) l->tp = (int)tp->valuedouble;
    int sp = 0, zero = 0;
    snprintf(key, sizeof key, "%s.sp", what);
    GV_TRY(gv_get_enum(o, "sp", gv_sp_names, 3, &sp, path, key));
    snprintf(key, sizeof key, "%s.dp_type", what);
    GV_TRY(gv_get_enum(o, "dp_type", gv_dp_type_names, 4, &zero, path, key));
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(o, "ckpt");
    if (ck && !cJSON_IsBool(ck))
        return gv_fail(GV_ERR_FORMAT, "%s: field '%s.ckpt' must be true or false", path, what);
    l->sp = (gv_sp_mode)sp;
    l->zero = zero;
    l->ckpt = ck ? cJSON_IsTrue(ck) : 0;
    return GV_OK;
}

/* The project's form: {"format": "galvatron-c-plan/1", "world", "pp", "schedule", "global_batch",
 * "micro_batches", "stages": [..], "vocab": {tp, sp, dp_type}, "layers": [{tp, sp, dp_type, ckpt}, ...]}. */
static gv_status gv_plan_from_own(gv_plan *p, const cJSON *root, const char *path, int n_layer, int world) {
    static const char *const known[] = {"format",        "world",  "pp",    "schedule", "global_batch",
                                        "micro_batches", "stages", "vocab", "layers"};
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(it->string, known[i])) i++;
        if (i == sizeof known / sizeof known[0])
            return gv_fail(GV_ERR_FORMAT, "%s: unknown field '%s'", path, it->string);
    }
    int pp = 1, fw = 0, sched = GV_SCHED_1F1B, present;
    GV_TRY(gv_get_int(root, "world", &fw, 1, 1, path));
    if (world && fw != world)
        return gv_fail(GV_ERR_INVALID, "%s: plan is for world %d, but %d ranks were given", path, fw, world);
    GV_TRY(gv_get_int(root, "pp", &pp, 0, 1, path));
    static const char *const sched_names[] = {"gpipe", "1f1b"};
    GV_TRY(gv_get_enum(root, "schedule", sched_names, 2, &sched, path, NULL));
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers)) return gv_fail(GV_ERR_FORMAT, "%s: field 'layers' must be a list", path);
    if (cJSON_GetArraySize(layers) != n_layer)
        return gv_fail(GV_ERR_FORMAT, "%s: field 'layers' has %d entries, the model has %d layers", path,
                       cJSON_GetArraySize(layers), n_layer);
    GV_TRY(gv_plan_alloc(p, fw, pp, n_layer, (gv_schedule)sched));
    gv_status st = gv_get_int(root, "global_batch", &p->global_batch, 1, 1, path);
    if (st == GV_OK) st = gv_get_int(root, "micro_batches", &p->micro_batches, 0, 1, path);
    if (st == GV_OK) st = gv_int_list(root, "stages", p->stage_layers, pp, 0, path, &present);
    if (st == GV_OK && !present) gv_even_stages(p);
    char what[32];
    int i = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, layers) {
        if (st != GV_OK) break;
        snprintf(what, sizeof what, "layers[%d]", i);
        st = gv_strategy_from_json(&p->layers[i++], l, path, what);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "vocab");
    p->vocab.tp = 1;
    if (st == GV_OK && v) st = gv_strategy_from_json(&p->vocab, v, path, "vocab");
    if (st != GV_OK) gv_plan_free(p);
    return st;
}

gv_status gv_plan_load(gv_plan *p, const char *path, int n_layer, int world) {
    char *txt;
    size_t n;
    GV_TRY(gv_file_read_all(path, &txt, &n));
    cJSON *root = cJSON_Parse(txt);
    gv_status st;
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        st = gv_fail(GV_ERR_FORMAT, "%s: malformed JSON near byte %ld", path, e ? (long)(e - txt) : -1L);
    } else if (!cJSON_IsObject(root)) {
        st = gv_fail(GV_ERR_FORMAT, "%s: a plan must be a JSON object", path);
    } else if (cJSON_GetObjectItemCaseSensitive(root, "tp_sizes_enc")) {
        st = gv_plan_from_galvatron(p, root, path, n_layer, world);
    } else if (cJSON_GetObjectItemCaseSensitive(root, "layers")) {
        st = gv_plan_from_own(p, root, path, n_layer, world);
    } else {
        st = gv_fail(GV_ERR_FORMAT,
                     "%s: neither a galvatron_config (no 'tp_sizes_enc') nor a plan (no 'layers')", path);
    }
    cJSON_Delete(root);
    free(txt);
    return st;
}

static gv_status gv_write_json(cJSON *root, const char *path) {
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt) return gv_fail(GV_ERR_NOMEM, "%s: out of memory printing JSON", path);
    gv_status st = gv_file_write_atomic(path, txt, strlen(txt));
    free(txt);
    return st;
}

static cJSON *gv_strategy_json(const gv_layer_strategy *l, int with_ckpt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tp", l->tp);
    cJSON_AddStringToObject(o, "sp", gv_sp_mode_name(l->sp));
    cJSON_AddStringToObject(o, "dp_type", gv_zero_name(l->zero));
    if (with_ckpt) cJSON_AddBoolToObject(o, "ckpt", l->ckpt);
    return o;
}

gv_status gv_plan_save(const gv_plan *p, const char *path) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "galvatron-c-plan/1");
    cJSON_AddNumberToObject(o, "world", p->world);
    cJSON_AddNumberToObject(o, "pp", p->pp);
    cJSON_AddStringToObject(o, "schedule", p->schedule == GV_SCHED_GPIPE ? "gpipe" : "1f1b");
    cJSON_AddNumberToObject(o, "global_batch", p->global_batch);
    cJSON_AddNumberToObject(o, "micro_batches", p->micro_batches);
    cJSON_AddItemToObject(o, "stages", cJSON_CreateIntArray(p->stage_layers, p->pp));
    cJSON_AddItemToObject(o, "vocab", gv_strategy_json(&p->vocab, 0));
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < p->n_layer; i++) cJSON_AddItemToArray(layers, gv_strategy_json(&p->layers[i], 1));
    return gv_write_json(o, path);
}

/* Comma list "a,b,c" of f(i) for i < n. */
static char *gv_join(int n, const gv_plan *p, int (*f)(const gv_plan *, int)) {
    char *s = malloc((size_t)n * 12 + 1);
    if (!s) return NULL;
    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)sprintf(s + k, i ? ",%d" : "%d", f(p, i));
    s[k] = '\0';
    return s;
}
static int gv_f_tp(const gv_plan *p, int i) {
    return p->layers[i].tp;
}
static int gv_f_consec(const gv_plan *p, int i) {
    return (void)p, (void)i, 1;
}
static int gv_f_dpt(const gv_plan *p, int i) {
    return p->layers[i].zero == 3;
}
static int gv_f_sp(const gv_plan *p, int i) {
    return p->layers[i].sp == GV_SP_ULYSSES;
}
static int gv_f_ck(const gv_plan *p, int i) {
    return p->layers[i].ckpt;
}
static int gv_f_stage(const gv_plan *p, int i) {
    return p->stage_layers[i];
}

gv_status gv_plan_save_galvatron(const gv_plan *p, const char *path) {
    /* Galvatron has one default dp type for all non-ZeRO-3 layers, and no ZeRO-1 or Megatron-SP flag per
     * layer. */
    int def = -1;
    for (int i = 0; i <= p->n_layer; i++) {
        const gv_layer_strategy *l = i < p->n_layer ? &p->layers[i] : &p->vocab;
        if (l->zero == 1)
            return gv_fail(GV_ERR_UNSUPPORTED, "%s: galvatron_config has no zero1 dp type", path);
        if (l->sp == GV_SP_MEGATRON) /* Galvatron sets Megatron-SP globally at run time, not in the config */
            return gv_fail(GV_ERR_UNSUPPORTED, "%s: galvatron_config has no per-layer Megatron-SP flag",
                           path);
        if (l->zero == 3) continue;
        if (def >= 0 && def != l->zero)
            return gv_fail(GV_ERR_UNSUPPORTED,
                           "%s: galvatron_config allows one non-ZeRO-3 dp type, the plan mixes %s and %s",
                           path, gv_zero_name(def), gv_zero_name(l->zero));
        def = l->zero;
    }
    if (def < 0) def = 0;
    cJSON *o = cJSON_CreateObject();
    char *lists[6] = {gv_join(p->n_layer, p, gv_f_tp),  gv_join(p->n_layer, p, gv_f_consec),
                      gv_join(p->n_layer, p, gv_f_dpt), gv_join(p->n_layer, p, gv_f_sp),
                      gv_join(p->n_layer, p, gv_f_ck),  gv_join(p->pp, p, gv_f_stage)};
    cJSON_AddNumberToObject(o, "pp_deg", p->pp);
    cJSON_AddStringToObject(o, "tp_sizes_enc", lists[0] ? lists[0] : "");
    cJSON_AddStringToObject(o, "tp_consecutive_flags", lists[1] ? lists[1] : "");
    cJSON_AddStringToObject(o, "dp_types_enc", lists[2] ? lists[2] : "");
    cJSON_AddStringToObject(o, "use_sp", lists[3] ? lists[3] : "");
    cJSON_AddStringToObject(o, "checkpoint", lists[4] ? lists[4] : "");
    cJSON_AddNumberToObject(o, "global_bsz", p->global_batch);
    cJSON_AddNumberToObject(o, "chunks", p->micro_batches);
    cJSON_AddStringToObject(o, "pp_division", lists[5] ? lists[5] : "");
    cJSON_AddStringToObject(o, "pipeline_type", p->schedule == GV_SCHED_GPIPE ? "gpipe" : "pipedream_flush");
    cJSON_AddStringToObject(o, "default_dp_type", gv_zero_name(def));
    cJSON_AddNumberToObject(o, "vtp", p->vocab.tp);
    cJSON_AddNumberToObject(o, "vsp", p->vocab.sp == GV_SP_ULYSSES);
    cJSON_AddNumberToObject(o, "embed_sdp", p->vocab.zero == 3);
    cJSON_AddNumberToObject(o, "world_size", p->world);
    for (int i = 0; i < 6; i++) free(lists[i]);
    return gv_write_json(o, path);
}

gv_status gv_plan_broadcast(gv_plan *p, struct gv_comm *c, int root) {
    /* Header first (the receivers size their plan from it), then the per-layer strategies and stages. */
    int h[9] = {p->world,   p->pp,       (int)p->schedule, p->global_batch, p->micro_batches,
                p->n_layer, p->vocab.tp, (int)p->vocab.sp, p->vocab.zero};
    int me = gv_comm_rank(c);
    GV_TRY(gv_comm_broadcast(c, h, 9, GV_COMM_I32, root));
    if (me != root) {
        GV_TRY(gv_plan_alloc(p, h[0], h[1], h[5], (gv_schedule)h[2]));
        p->global_batch = h[3], p->micro_batches = h[4];
        p->vocab = (gv_layer_strategy){h[6], (gv_sp_mode)h[7], h[8], 0};
    }
    int n = 4 * p->n_layer + p->pp, *v = malloc((size_t)n * sizeof *v);
    if (!v) return gv_fail(GV_ERR_NOMEM, "plan: out of host memory");
    for (int i = 0; me == root && i < p->n_layer; i++) {
        const gv_layer_strategy *l = &p->layers[i];
        v[4 * i] = l->tp, v[4 * i + 1] = (int)l->sp, v[4 * i + 2] = l->zero, v[4 * i + 3] = l->ckpt;
    }
    if (me == root) memcpy(v + 4 * p->n_layer, p->stage_layers, (size_t)p->pp * sizeof *v);
    gv_status st = gv_comm_broadcast(c, v, (size_t)n, GV_COMM_I32, root);
    for (int i = 0; st == GV_OK && me != root && i < p->n_layer; i++)
        p->layers[i] = (gv_layer_strategy){v[4 * i], (gv_sp_mode)v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]};
    if (st == GV_OK && me != root) memcpy(p->stage_layers, v + 4 * p->n_layer, (size_t)p->pp * sizeof *v);
    free(v);
    return st;
}
