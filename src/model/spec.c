/* Model specs: presets, the JSON model file, validation. */
#include "gv/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gv_round_up(int x, int m) {
    return (x + m - 1) / m * m;
}

static void gv_spec_defaults(gv_model_spec *s, gv_arch arch) {
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->norm_eps = 1e-5f;
    s->rope_theta = 10000.0f;
    s->init_std = 0.02f;
    if (arch == GV_ARCH_GPT2) {
        s->norm = GV_NORM_LAYERNORM;
        s->act = GV_ACT_GELU;
        s->pos = GV_POS_LEARNED;
        s->tied = 1;
        s->bias = 1;
    } else if (arch == GV_ARCH_BERT || arch == GV_ARCH_VIT) { /* HF BertConfig / ViTConfig defaults */
        s->norm = GV_NORM_LAYERNORM;
        s->act = GV_ACT_GELU_ERF;
        s->pos = GV_POS_LEARNED;
        s->tied = arch == GV_ARCH_BERT;
        s->bias = 1;
        s->norm_eps = 1e-12f;
        if (arch == GV_ARCH_BERT) {
            s->type_vocab = 2;
            s->mask_token = 103;
        } else {
            s->channels = 3;
        }
    } else if (arch == GV_ARCH_T5) { /* HF T5Config (v1.0) defaults */
        s->norm = GV_NORM_RMSNORM;
        s->act = GV_ACT_RELU;
        s->pos = GV_POS_LEARNED; /* (relative bias, no position table) */
        s->tied = 1;
        s->bias = 0;
        s->norm_eps = 1e-6f;
        s->rel_buckets = 32;
        s->rel_max_distance = 128;
    } else {
        s->norm = GV_NORM_RMSNORM;
        s->act = GV_ACT_SWIGLU;
        s->pos = GV_POS_ROPE;
        s->tied = 0;
        s->bias = 0;
    }
}

typedef struct {
    const char *name;
    gv_arch arch;
    int L, C, H, KVH, F, T, V;
    float theta;
    int image, patch, mask; /* ViT: image and patch size (T = 1 + (image/patch)^2); BERT: [MASK] id */
} gv_preset;

/* Real sizes from the published configs; the tiny ones are for tests and the built-in default job. */
static const gv_preset gv_presets[] = {
    {"gpt2-tiny", GV_ARCH_GPT2, 2, 64, 4, 4, 256, 128, 512, 0, 0, 0, 0},
    {"gpt2-124m", GV_ARCH_GPT2, 12, 768, 12, 12, 3072, 1024, 50257, 0, 0, 0, 0},
    {"gpt2-350m", GV_ARCH_GPT2, 24, 1024, 16, 16, 4096, 1024, 50257, 0, 0, 0, 0},
    {"gpt2-774m", GV_ARCH_GPT2, 36, 1280, 20, 20, 5120, 1024, 50257, 0, 0, 0, 0},
    {"gpt2-1.5b", GV_ARCH_GPT2, 48, 1600, 25, 25, 6400, 1024, 50257, 0, 0, 0, 0},
    {"llama-tiny", GV_ARCH_LLAMA, 2, 64, 4, 2, 176, 128, 512, 10000, 0, 0, 0},
    {"llama-1b", GV_ARCH_LLAMA, 22, 2048, 32, 4, 5632, 2048, 32000, 10000, 0, 0, 0}, /* TinyLlama-1.1B */
    {"llama2-7b", GV_ARCH_LLAMA, 32, 4096, 32, 32, 11008, 4096, 32000, 10000, 0, 0, 0},
    {"llama3-8b", GV_ARCH_LLAMA, 32, 4096, 32, 8, 14336, 8192, 128256, 500000, 0, 0, 0},
    /* BERT: the tiny one reads the built-in language (tokens 0..511) with [MASK] = 512. */
    {"bert-tiny", GV_ARCH_BERT, 2, 64, 4, 4, 256, 128, 520, 0, 0, 0, 512},
    {"bert-base", GV_ARCH_BERT, 12, 768, 12, 12, 3072, 512, 30522, 0, 0, 0, 103},
    {"bert-large", GV_ARCH_BERT, 24, 1024, 16, 16, 4096, 512, 30522, 0, 0, 0, 103},
    /* ViT: the tiny one has 24x24 images in 3x3 patches of 8 (T = 10) and 16 classes (the built-in image
     * set); the others are google/vit-{base,large}-patch16-224 and vit-huge-patch14-224 with 1000 classes. */
    {"vit-tiny", GV_ARCH_VIT, 2, 64, 4, 4, 256, 10, 16, 0, 24, 8, 0},
    {"vit-base", GV_ARCH_VIT, 12, 768, 12, 12, 3072, 197, 1000, 0, 224, 16, 0},
    {"vit-large", GV_ARCH_VIT, 24, 1024, 16, 16, 4096, 197, 1000, 0, 224, 16, 0},
    {"vit-huge", GV_ARCH_VIT, 32, 1280, 16, 16, 5120, 257, 1000, 0, 224, 14, 0},
    /* T5: layers = encoder + decoder (equal halves); the tiny one reads the built-in language. */
    {"t5-tiny", GV_ARCH_T5, 4, 64, 4, 4, 256, 128, 512, 0, 0, 0, 0},
    {"t5-small", GV_ARCH_T5, 12, 512, 8, 8, 2048, 512, 32128, 0, 0, 0, 0},
    {"t5-base", GV_ARCH_T5, 24, 768, 12, 12, 3072, 512, 32128, 0, 0, 0, 0},
    {"t5-large", GV_ARCH_T5, 48, 1024, 16, 16, 4096, 512, 32128, 0, 0, 0, 0},
};
#define GV_NPRESETS ((int)(sizeof gv_presets / sizeof gv_presets[0]))

const char *const *gv_model_preset_names(int *n) {
    static const char *names[GV_NPRESETS];
    for (int i = 0; i < GV_NPRESETS; i++) names[i] = gv_presets[i].name;
    *n = GV_NPRESETS;
    return names;
}

gv_status gv_model_spec_preset(gv_model_spec *s, const char *name) {
    for (int i = 0; i < GV_NPRESETS; i++) {
        const gv_preset *p = &gv_presets[i];
        if (strcmp(p->name, name)) continue;
        gv_spec_defaults(s, p->arch);
        snprintf(s->name, sizeof s->name, "%s", p->name);
        s->n_layer = p->L;
        s->n_embd = p->C;
        s->n_head = p->H;
        s->n_kv_head = p->KVH;
        s->ffn = p->F;
        s->max_seq = p->T;
        s->vocab = p->V;
        s->padded_vocab = gv_round_up(p->V, p->arch == GV_ARCH_VIT ? 8 : 128);
        if (p->theta > 0) s->rope_theta = p->theta;
        if (p->arch == GV_ARCH_BERT) s->mask_token = p->mask;
        if (p->arch == GV_ARCH_VIT) s->image_size = p->image, s->patch_size = p->patch;
        if (p->arch == GV_ARCH_T5) s->n_dec_layer = p->L / 2;
        return GV_OK;
    }
    char list[512] = "";
    for (int i = 0; i < GV_NPRESETS; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, gv_presets[i].name, sizeof list - strlen(list) - 1);
    }
    return gv_fail(GV_ERR_INVALID, "unknown model preset '%s' (presets: %s; or a path to a .json model file)",
                   name, list);
}

/* Integer fields of the JSON model file and where they go. */
typedef struct {
    const char *key;
    size_t off;
} gv_int_field;

#define GV_F(k)                                                                                              \
    { #k, offsetof(gv_model_spec, k) }
static const gv_int_field gv_int_fields[] = {
    GV_F(n_layer),    GV_F(n_embd),   GV_F(n_head),       GV_F(n_kv_head),   GV_F(ffn),
    GV_F(max_seq),    GV_F(vocab),    GV_F(padded_vocab), GV_F(type_vocab),  GV_F(image_size),
    GV_F(patch_size), GV_F(channels), GV_F(n_dec_layer),  GV_F(rel_buckets), GV_F(rel_max_distance)};
#undef GV_F

static gv_status gv_spec_from_json(gv_model_spec *s, const cJSON *root, const char *path) {
    if (!cJSON_IsObject(root)) return gv_fail(GV_ERR_FORMAT, "%s: model file must be a JSON object", path);
    const cJSON *preset = cJSON_GetObjectItemCaseSensitive(root, "preset");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "arch");
    if (preset) {
        if (!cJSON_IsString(preset))
            return gv_fail(GV_ERR_FORMAT, "%s: field 'preset' must be a string", path);
        gv_status st = gv_model_spec_preset(s, preset->valuestring);
        if (st != GV_OK) return gv_fail(st, "%s: field 'preset': %s", path, gv_last_error());
    } else if (arch) {
        if (!cJSON_IsString(arch)) return gv_fail(GV_ERR_FORMAT, "%s: field 'arch' must be a string", path);
        int a = 0;
        while (a < 5 && strcmp(arch->valuestring, gv_arch_name((gv_arch)a))) a++;
        if (a == 5)
            return gv_fail(GV_ERR_FORMAT,
                           "%s: field 'arch': unknown value '%s' (expected gpt2, llama, bert, vit or t5)",
                           path, arch->valuestring);
        gv_spec_defaults(s, (gv_arch)a);
    } else {
        return gv_fail(GV_ERR_FORMAT, "%s: missing field 'arch' (gpt2, llama, bert, vit or t5) or 'preset'",
                       path);
    }
    if (preset && arch) {
        if (!cJSON_IsString(arch) || strcmp(arch->valuestring, gv_arch_name(s->arch)))
            return gv_fail(GV_ERR_FORMAT, "%s: field 'arch' contradicts preset '%s'", path,
                           preset->valuestring);
    }
    const char *base = strrchr(path, '/');
    snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : path);
    int have_padded = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        if (!strcmp(k, "preset") || !strcmp(k, "arch")) continue;
        if (!strcmp(k, "name")) {
            if (!cJSON_IsString(it)) return gv_fail(GV_ERR_FORMAT, "%s: field 'name' must be a string", path);
            snprintf(s->name, sizeof s->name, "%s", it->valuestring);
            continue;
        }
        int found = 0;
        for (size_t i = 0; i < sizeof gv_int_fields / sizeof gv_int_fields[0]; i++) {
            if (strcmp(k, gv_int_fields[i].key)) continue;
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it) || v != floor(v) || v < 1 || v > 1e9)
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a positive integer", path, k);
            *(int *)((char *)s + gv_int_fields[i].off) = (int)v;
            if (!strcmp(k, "padded_vocab")) have_padded = 1;
            found = 1;
        }
        if (found) continue;
        if (!strcmp(k, "mask_token")) {
            double v = it->valuedouble;
            if (!cJSON_IsNumber(it) || v != floor(v) || v < 0 || v > 1e9)
                return gv_fail(GV_ERR_FORMAT, "%s: field 'mask_token' must be a non-negative integer", path);
            s->mask_token = (int)v;
            continue;
        }
        if (!strcmp(k, "norm_eps") || !strcmp(k, "rope_theta") || !strcmp(k, "init_std")) {
            if (!cJSON_IsNumber(it) || !(it->valuedouble > 0))
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a positive number", path, k);
            float v = (float)it->valuedouble;
            if (!strcmp(k, "norm_eps"))
                s->norm_eps = v;
            else if (!strcmp(k, "rope_theta"))
                s->rope_theta = v;
            else
                s->init_std = v;
            continue;
        }
        if (!strcmp(k, "tied") || !strcmp(k, "bias")) {
            if (!cJSON_IsBool(it))
                return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be true or false", path, k);
            if (!strcmp(k, "tied"))
                s->tied = cJSON_IsTrue(it);
            else
                s->bias = cJSON_IsTrue(it);
            continue;
        }
        return gv_fail(GV_ERR_FORMAT, "%s: unknown field '%s'", path, k);
    }
    if (!preset && s->arch == GV_ARCH_VIT) { /* the sequence follows from the image */
        if (!cJSON_GetObjectItemCaseSensitive(root, "image_size") ||
            !cJSON_GetObjectItemCaseSensitive(root, "patch_size"))
            return gv_fail(GV_ERR_FORMAT, "%s: a vit model needs 'image_size' and 'patch_size'", path);
        int np = s->image_size / s->patch_size;
        if (!cJSON_GetObjectItemCaseSensitive(root, "max_seq")) s->max_seq = 1 + np * np;
    }
    if (!preset) {
        static const char *required[] = {"n_layer", "n_embd", "n_head", "vocab", "max_seq"};
        for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
            if (!cJSON_GetObjectItemCaseSensitive(root, required[i]) &&
                !(s->arch == GV_ARCH_VIT && !strcmp(required[i], "max_seq")))
                return gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", path, required[i]);
        if (!cJSON_GetObjectItemCaseSensitive(root, "n_kv_head")) s->n_kv_head = s->n_head;
        if (!cJSON_GetObjectItemCaseSensitive(root, "ffn")) {
            if (s->arch == GV_ARCH_LLAMA) return gv_fail(GV_ERR_FORMAT, "%s: missing field 'ffn'", path);
            s->ffn = 4 * s->n_embd;
        }
    }
    if (!have_padded) s->padded_vocab = gv_round_up(s->vocab, s->arch == GV_ARCH_VIT ? 8 : 128);
    return gv_model_spec_validate(s, path);
}

gv_status gv_model_spec_load_json(gv_model_spec *s, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return gv_fail(GV_ERR_IO, "%s: cannot open model file", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (1 << 20)) {
        fclose(f);
        return gv_fail(GV_ERR_FORMAT, "%s: model file is not a small JSON file", path);
    }
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)n) {
        free(buf);
        return gv_fail(GV_ERR_IO, "%s: read failed", path);
    }
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        long at = e ? (long)(e - buf) : -1;
        free(buf);
        return gv_fail(GV_ERR_FORMAT, "%s: malformed JSON near byte %ld", path, at);
    }
    gv_status st = gv_spec_from_json(s, root, path);
    cJSON_Delete(root);
    free(buf);
    return st;
}

gv_status gv_model_spec_resolve(gv_model_spec *s, const char *name_or_path) {
    size_t n = strlen(name_or_path);
    if (strchr(name_or_path, '/') || (n > 5 && !strcmp(name_or_path + n - 5, ".json")))
        return gv_model_spec_load_json(s, name_or_path);
    return gv_model_spec_preset(s, name_or_path);
}

gv_status gv_model_spec_validate(const gv_model_spec *s, const char *where) {
    const char *w = where ? where : s->name;
    if (s->n_layer < 1 || s->n_embd < 1 || s->n_head < 1 || s->n_kv_head < 1 || s->ffn < 1 || s->vocab < 1 ||
        s->max_seq < 1)
        return gv_fail(GV_ERR_INVALID, "%s: every size must be positive", w);
    if (s->n_embd % s->n_head)
        return gv_fail(GV_ERR_INVALID, "%s: n_embd %d is not divisible by n_head %d", w, s->n_embd,
                       s->n_head);
    if (s->n_head % s->n_kv_head)
        return gv_fail(GV_ERR_INVALID, "%s: n_head %d is not divisible by n_kv_head %d", w, s->n_head,
                       s->n_kv_head);
    if (s->pos == GV_POS_ROPE && (s->n_embd / s->n_head) % 2)
        return gv_fail(GV_ERR_INVALID, "%s: head size %d must be even for RoPE", w, s->n_embd / s->n_head);
    if (s->padded_vocab < s->vocab)
        return gv_fail(GV_ERR_INVALID, "%s: padded_vocab %d is smaller than vocab %d", w, s->padded_vocab,
                       s->vocab);
    if (s->arch != GV_ARCH_LLAMA && s->n_kv_head != s->n_head)
        return gv_fail(GV_ERR_INVALID, "%s: %s has no grouped-query attention (n_kv_head must equal n_head)",
                       w, gv_arch_name(s->arch));
    if (s->arch == GV_ARCH_BERT && (s->type_vocab < 1 || s->mask_token < 0 || s->mask_token >= s->vocab))
        return gv_fail(GV_ERR_INVALID,
                       "%s: bert needs type_vocab >= 1 (got %d) and mask_token in [0, %d) (got %d)", w,
                       s->type_vocab, s->vocab, s->mask_token);
    if (s->arch == GV_ARCH_T5 &&
        (s->n_dec_layer < 1 || s->n_dec_layer >= s->n_layer || s->rel_buckets < 4 || s->rel_buckets % 2 ||
         s->rel_max_distance <= s->rel_buckets / 2 || !s->tied))
        return gv_fail(
            GV_ERR_INVALID,
            "%s: t5 needs 1 <= n_dec_layer < n_layer (got %d of %d), an even rel_buckets >= 4 (got %d), "
            "rel_max_distance > rel_buckets / 2 (got %d) and tied embeddings",
            w, s->n_dec_layer, s->n_layer, s->rel_buckets, s->rel_max_distance);
    if (s->arch == GV_ARCH_VIT) {
        if (s->image_size < 1 || s->patch_size < 1 || s->channels < 1 || s->image_size % s->patch_size)
            return gv_fail(GV_ERR_INVALID,
                           "%s: vit image_size %d must be a positive multiple of patch_size %d (channels %d)",
                           w, s->image_size, s->patch_size, s->channels);
        int np = s->image_size / s->patch_size;
        if (s->max_seq != 1 + np * np)
            return gv_fail(GV_ERR_INVALID,
                           "%s: vit max_seq %d must be 1 + (%d/%d)^2 = %d (class token + patches)", w,
                           s->max_seq, s->image_size, s->patch_size, 1 + np * np);
        if (s->tied)
            return gv_fail(GV_ERR_INVALID, "%s: vit has no token embedding to tie the classifier to", w);
    }
    return GV_OK;
}

const char *gv_arch_name(gv_arch a) {
    static const char *names[] = {"gpt2", "llama", "bert", "vit", "t5"};
    return (unsigned)a < 5 ? names[a] : "?";
}

int gv_model_spec_layer_types(const gv_model_spec *s, int *layers, const char **names) {
    if (s->arch == GV_ARCH_T5) {
        if (layers) layers[0] = s->n_layer - s->n_dec_layer, layers[1] = s->n_dec_layer;
        if (names) names[0] = "encoder", names[1] = "decoder";
        return 2;
    }
    if (layers) layers[0] = s->n_layer;
    if (names) names[0] = s->arch == GV_ARCH_VIT || s->arch == GV_ARCH_BERT ? "encoder" : "decoder";
    return 1;
}

int gv_model_spec_input_width(const gv_model_spec *s) {
    if (s->arch == GV_ARCH_BERT || s->arch == GV_ARCH_T5) return 2;
    if (s->arch == GV_ARCH_VIT) return s->channels * s->patch_size * s->patch_size;
    return 1;
}

int gv_model_spec_causal(const gv_model_spec *s) {
    return s->arch == GV_ARCH_GPT2 || s->arch == GV_ARCH_LLAMA;
}

int64_t gv_model_spec_num_params(const gv_model_spec *s) {
    int64_t C = s->n_embd, D = C / s->n_head, QKV = (int64_t)(s->n_head + 2 * s->n_kv_head) * D;
    int64_t F2 = s->act == GV_ACT_SWIGLU ? 2 * (int64_t)s->ffn : s->ffn;
    int64_t nb = s->bias ? 1 : 0, nnorm = s->norm == GV_NORM_LAYERNORM ? 2 : 1;
    int64_t layer = nnorm * C * 2 + QKV * C + nb * QKV + s->n_head * D * C + nb * C + F2 * C + nb * F2 +
                    (int64_t)s->ffn * C + nb * C;
    int64_t total = s->n_layer * layer + (int64_t)s->vocab * C + nnorm * C;
    if (s->pos == GV_POS_LEARNED) total += (int64_t)s->max_seq * C;
    if (!s->tied) total += (int64_t)s->vocab * C;
    if (s->arch == GV_ARCH_BERT) /* token types, embedding LayerNorm, head transform, decoder bias */
        total += (int64_t)s->type_vocab * C + 2 * C + C * C + C + s->vocab;
    if (s->arch == GV_ARCH_T5) /* no position table; two bias tables; cross-attention; encoder final norm */
        total += -(int64_t)s->max_seq * C + 2LL * s->rel_buckets * s->n_head + C +
                 (int64_t)s->n_dec_layer * (C + QKV * C + s->n_head * D * C);
    if (s->arch == GV_ARCH_VIT) /* no token table; patch projection + bias, class token, classifier bias */
        total += -(int64_t)s->vocab * C + (int64_t)gv_model_spec_input_width(s) * C + 2 * C + s->vocab;
    return total;
}

void gv_model_spec_random_batch(const gv_model_spec *s, uint64_t seed, int B, int T, int32_t *inputs,
                                int32_t *targets) {
    int IW = gv_model_spec_input_width(s);
    uint64_t r = seed * 6364136223846793005ull + 1442695040888963407ull;
#define GV_NEXT(mod)                                                                                         \
    (r = r * 6364136223846793005ull + 1442695040888963407ull, (int32_t)((r >> 33) % (uint64_t)(mod)))
    for (size_t i = 0; i < (size_t)B * T; i++) {
        int t = (int)(i % (size_t)T);
        for (int k = 0; k < IW; k++) {
            int32_t v = GV_NEXT(s->vocab);
            if (s->arch == GV_ARCH_BERT && k == 1) v = GV_NEXT(s->type_vocab);
            if (s->arch == GV_ARCH_VIT) v = t == 0 ? 0 : GV_NEXT(256);
            inputs[i * (size_t)IW + (size_t)k] = v;
        }
        int32_t y = GV_NEXT(s->vocab);
        targets[i] = s->arch == GV_ARCH_VIT && t != 0 ? -1 : y;
    }
#undef GV_NEXT
}
