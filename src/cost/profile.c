/* Readers of Hetu-Galvatron's profile files (reference §4): hardware (all-reduce and p2p bandwidth,
 * overlap coefficient, sp_time latency tables) and model (computation and memory profiling). Every error
 * names the file and the key. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/cost.h"
#include "gv/fileio.h"

static int gv_log2i(int x) {
    int k = 0;
    while ((1 << k) < x) k++;
    return (1 << k) == x ? k : -1;
}

static gv_status gv_json_load(const char *path, cJSON **out) {
    char *txt;
    size_t n;
    gv_status st = gv_file_read_all(path, &txt, &n);
    if (st != GV_OK) return st; /* gv_file_read_all's message names the file and the reason */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(txt, &end, 1);
    if (!root) {
        long at = end ? (long)(end - txt) : -1;
        free(txt);
        return gv_fail(GV_ERR_FORMAT, "%s: not valid JSON (near byte %ld)", path, at);
    }
    free(txt);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return gv_fail(GV_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return GV_OK;
}

/* A positive finite number under `key` of obj; `where` prefixes the key path in errors. */
static gv_status gv_json_num(const cJSON *obj, const char *key, double *out, const char *path,
                             const char *where, int positive) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return gv_fail(GV_ERR_FORMAT, "%s: missing field '%s%s'", path, where, key);
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || (positive && it->valuedouble <= 0) ||
        it->valuedouble < 0)
        return gv_fail(GV_ERR_FORMAT, "%s: field '%s%s' must be a %s number", path, where, key,
                       positive ? "positive" : "non-negative");
    *out = it->valuedouble;
    return GV_OK;
}

static void gv_fit_line(gv_latency_table *t) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int n = t->n;
    for (int i = 0; i < n; i++) {
        sx += t->mb[i];
        sy += t->ms[i];
        sxx += t->mb[i] * t->mb[i];
        sxy += t->mb[i] * t->ms[i];
    }
    double d = n * sxx - sx * sx;
    t->m = d != 0 ? (n * sxy - sx * sy) / d : 0;
    t->c = n ? (sy - t->m * sx) / n : 0;
}

double gv_latency_at(const gv_latency_table *t, double mb) {
    for (int i = 0; i < t->n; i++)
        if (t->mb[i] == mb) return t->ms[i];
    return t->m * mb + t->c;
}

double gv_latency_own(const gv_latency_table *t, double mb) {
    if (t->n == 0) return fmax(0.0, t->m * mb + t->c);
    /* Profiled sizes in increasing order (the files list them so, but do not rely on it). */
    int lo = -1, hi = -1;
    for (int i = 0; i < t->n; i++) {
        if (t->mb[i] <= mb && (lo < 0 || t->mb[i] > t->mb[lo])) lo = i;
        if (t->mb[i] >= mb && (hi < 0 || t->mb[i] < t->mb[hi])) hi = i;
    }
    if (lo >= 0 && hi >= 0) {
        if (t->mb[hi] == t->mb[lo]) return t->ms[lo];
        double f = (mb - t->mb[lo]) / (t->mb[hi] - t->mb[lo]);
        return t->ms[lo] + f * (t->ms[hi] - t->ms[lo]);
    }
    if (hi >=
        0) /* below the smallest size: its latency, at most (messages do not get slower as they shrink) */
        return fmax(0.0,
                    fmin(t->ms[hi], t->m * mb + t->c > 0 ? t->m * mb + t->c : t->ms[hi] * mb / t->mb[hi]));
    return t->ms[lo] + fmax(t->m, 0.0) * (mb - t->mb[lo]); /* beyond the largest: its slope */
}

/* Reads "{op}_size_{g}_{X}MB_time" entries of an sp_time file into tables by group size. */
static gv_status gv_read_sp_tables(const cJSON *root, const char *op, double scale, gv_latency_table *tabs,
                                   const char *path, int world) {
    size_t oplen = strlen(op);
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        if (strncmp(k, op, oplen) || strncmp(k + oplen, "_size_", 6)) continue;
        int g, mb;
        char tail[16];
        if (sscanf(k + oplen + 6, "%d_%dMB_%15s", &g, &mb, tail) != 3 || strcmp(tail, "time"))
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s': expected %s_size_<g>_<n>MB_time", path, k, op);
        int lg = gv_log2i(g);
        if (lg < 1 || g > world || mb <= 0)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s': group size %d is not a power of two in 2..%d",
                           path, k, g, world);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a non-negative number", path, k);
        gv_latency_table *t = &tabs[lg];
        if (t->n == 32) return gv_fail(GV_ERR_FORMAT, "%s: field '%s': more than 32 sizes", path, k);
        t->mb[t->n] = mb;
        t->ms[t->n] = it->valuedouble * scale;
        t->n++;
    }
    for (int g = world; g >= 2; g /= 2) {
        gv_latency_table *t = &tabs[gv_log2i(g)];
        if (t->n < 8) /* Galvatron's remap_config asserts at least 8 sizes for its fit */
            return gv_fail(GV_ERR_FORMAT,
                           "%s: field '%s_size_%d_<n>MB_time': %d sizes profiled, at least 8 needed", path,
                           op, g, t->n);
        gv_fit_line(t);
    }
    return GV_OK;
}

gv_status gv_hw_profile_load(gv_hw_profile *hw, const char *dir, int num_nodes, int gpus_per_node) {
    memset(hw, 0, sizeof *hw);
    int world = num_nodes * gpus_per_node;
    if (num_nodes < 1 || gpus_per_node < 1 || gv_log2i(world) < 0 || world > (1 << GV_COST_LOGS))
        return gv_fail(GV_ERR_INVALID, "hardware profile: world %d x %d is not a power of two up to %d",
                       num_nodes, gpus_per_node, 1 << GV_COST_LOGS);
    hw->world = world;
    for (int i = 0; i <= GV_COST_LOGS; i++) hw->coe[i][0] = hw->coe[i][1] = hw->p2p_coe[i] = -1;
    hw->coe[0][0] = hw->coe[0][1] = 0;
    char path[1024];
    cJSON *root;
    double bw;
    char key[96];

    snprintf(path, sizeof path, "%s/allreduce_bandwidth_%dnodes_%dgpus_per_node.json", dir, num_nodes,
             gpus_per_node);
    GV_TRY(gv_json_load(path, &root));
    gv_status st = GV_OK;
    for (int g = world; g >= 2 && st == GV_OK; g /= 2) {
        for (int c = 1; c >= 0 && st == GV_OK; c--) {
            if (g == world && c == 0) continue; /* no strided group spans the whole world */
            snprintf(key, sizeof key, "allreduce_size_%d_consec_%d", g, c);
            st = gv_json_num(root, key, &bw, path, "", 1);
            if (st == GV_OK) hw->coe[gv_log2i(g)][c] = 1.0 / bw;
        }
    }
    if (world >= 2) hw->coe[gv_log2i(world)][0] = hw->coe[gv_log2i(world)][1];
    cJSON_Delete(root);
    GV_TRY(st);

    snprintf(path, sizeof path, "%s/p2p_bandwidth_%dnodes_%dgpus_per_node.json", dir, num_nodes,
             gpus_per_node);
    GV_TRY(gv_json_load(path, &root));
    for (int pp = 2; pp <= world && st == GV_OK; pp *= 2) {
        snprintf(key, sizeof key, "pp_size_%d", pp);
        st = gv_json_num(root, key, &bw, path, "", 1);
        if (st == GV_OK) hw->p2p_coe[gv_log2i(pp)] = 1.0 / bw;
    }
    cJSON_Delete(root);
    GV_TRY(st);

    snprintf(path, sizeof path, "%s/overlap_coefficient.json", dir);
    GV_TRY(gv_json_load(path, &root));
    st = gv_json_num(root, "overlap_coe", &hw->overlap_coe, path, "", 1);
    cJSON_Delete(root);
    GV_TRY(st);
    if (hw->overlap_coe < 1)
        return gv_fail(GV_ERR_FORMAT, "%s: field 'overlap_coe' must be >= 1 (it is a slowdown)", path);

    snprintf(path, sizeof path, "%s/sp_time_%dnodes_%dgpus_per_node.json", dir, num_nodes, gpus_per_node);
    GV_TRY(gv_json_load(path, &root));
    st = gv_read_sp_tables(root, "allreduce", 0.5, hw->ag, path, world); /* all-gather = half all-reduce */
    if (st == GV_OK) st = gv_read_sp_tables(root, "all2all", 1.0, hw->a2a, path, world);
    cJSON_Delete(root);
    GV_TRY(st);
    hw->have_sp_time = 1;
    return GV_OK;
}

/* ---- model profiles --------------------------------------------------------------------------------- */

/* Per-sample time points "layertype_{t}_bsz{b}_seq{s}" of one layer type ("0" or "other"). */
typedef struct {
    int n;
    double bsz[64], seq[64], ms[64];
} gv_points;

static gv_status gv_comp_points(const cJSON *root, const char *type, gv_points *p, const char *path) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "layertype_%s_bsz", type);
    size_t pl = strlen(prefix);
    const cJSON *it;
    p->n = 0;
    cJSON_ArrayForEach(it, root) {
        if (strncmp(it->string, prefix, pl)) continue;
        int b, s;
        char extra;
        if (sscanf(it->string + pl, "%d_seq%d%c", &b, &s, &extra) != 2 || b < 1 || s < 1)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s': expected %s<b>_seq<s>", path, it->string, prefix);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be a non-negative number", path, it->string);
        if (p->n == 64) continue;
        p->bsz[p->n] = b;
        p->seq[p->n] = s;
        p->ms[p->n] = it->valuedouble;
        p->n++;
    }
    return GV_OK;
}

/* Solves the least-squares polynomial of degree deg (1 or 2) through (x, y). */
static void gv_polyfit(const double *x, const double *y, int n, int deg, double *coef) {
    double a[3][4] = {{0}};
    int d = deg + 1;
    for (int i = 0; i < n; i++) {
        double p[3] = {1, x[i], x[i] * x[i]};
        for (int r = 0; r < d; r++) {
            for (int c = 0; c < d; c++) a[r][c] += p[r] * p[c];
            a[r][d] += p[r] * y[i];
        }
    }
    for (int c = 0; c < d; c++) { /* Gauss-Jordan with partial pivoting */
        int piv = c;
        for (int r = c + 1; r < d; r++)
            if (fabs(a[r][c]) > fabs(a[piv][c])) piv = r;
        for (int k = 0; k <= d; k++) {
            double t = a[c][k];
            a[c][k] = a[piv][k];
            a[piv][k] = t;
        }
        if (a[c][c] == 0) continue;
        for (int r = 0; r < d; r++) {
            if (r == c) continue;
            double f = a[r][c] / a[c][c];
            for (int k = c; k <= d; k++) a[r][k] -= f * a[c][k];
        }
    }
    for (int c = 0; c < d; c++) coef[c] = a[c][c] != 0 ? a[c][d] / a[c][c] : 0;
}

/* Sets (m, c, linear) of one layer type from its points. */
static gv_status gv_time_of(const gv_points *p, const char *type, gv_profile_mode mode, int seq, double *m,
                            double *c, int *linear, const char *path) {
    if (p->n == 0)
        return gv_fail(GV_ERR_FORMAT, "%s: missing field 'layertype_%s_bsz<b>_seq<s>'", path, type);
    *m = 0;
    *linear = 0;
    if (mode == GV_PROFILE_STATIC) { /* Galvatron takes the first key, whatever its batch or sequence */
        *c = p->ms[0];
        return GV_OK;
    }
    if (mode == GV_PROFILE_BATCH) { /* total ms of b samples = m b + c at this sequence length */
        double x[64], y[64];
        int n = 0;
        for (int i = 0; i < p->n; i++)
            if ((int)p->seq[i] == seq) {
                x[n] = p->bsz[i];
                y[n] = p->ms[i] * p->bsz[i];
                n++;
            }
        if (n < 8) /* Galvatron fits batch mode on at least 8 batch sizes */
            return gv_fail(GV_ERR_FORMAT,
                           "%s: field 'layertype_%s_bsz<b>_seq%d': %d batch sizes, at least 8 "
                           "needed in batch mode",
                           path, type, seq, n);
        double coef[2];
        gv_polyfit(x, y, n, 1, coef);
        *c = coef[0];
        *m = coef[1];
        *linear = 1;
        return GV_OK;
    }
    /* sequence mode: bsz1 points over sequence lengths, quadratic for layers, linear for the vocab layers */
    double x[64], y[64];
    int n = 0;
    for (int i = 0; i < p->n; i++)
        if (p->bsz[i] == 1) {
            x[n] = p->seq[i];
            y[n] = p->ms[i];
            n++;
        }
    int deg = strcmp(type, "other") ? 2 : 1;
    if (n < deg + 1)
        return gv_fail(GV_ERR_FORMAT,
                       "%s: field 'layertype_%s_bsz1_seq<s>': %d sequence lengths, at least %d "
                       "needed in sequence mode",
                       path, type, n, deg + 1);
    double coef[3] = {0, 0, 0};
    gv_polyfit(x, y, n, deg, coef);
    *c = coef[0] + coef[1] * seq + (deg == 2 ? coef[2] * (double)seq * seq : 0);
    return GV_OK;
}

/* {"1": x, "2": y, ...} keyed by degree into arr[log2]; missing keys stay < 0. */
static gv_status gv_deg_dict(const cJSON *obj, double *arr, const char *path, const char *where) {
    for (int i = 0; i <= GV_COST_LOGS; i++) arr[i] = -1;
    if (!cJSON_IsObject(obj)) return gv_fail(GV_ERR_FORMAT, "%s: field '%s' must be an object", path, where);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        if (!strcmp(it->string, "checkpoint")) continue;
        char *end;
        long d = strtol(it->string, &end, 10);
        int lg = *end == '\0' ? gv_log2i((int)d) : -1;
        if (lg < 0 || lg > GV_COST_LOGS)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s.%s': key is not a power-of-two degree", path, where,
                           it->string);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) || it->valuedouble < 0)
            return gv_fail(GV_ERR_FORMAT, "%s: field '%s.%s' must be a non-negative number", path, where,
                           it->string);
        arr[lg] = it->valuedouble;
    }
    return GV_OK;
}

/* The entry for one sequence length of a "layertype_0[_sp]" style object: exact key, or for sequence mode
 * the smallest/largest (which = -1 / +1). */
static const cJSON *gv_seq_entry(const cJSON *obj, int seq, int which, int *got_seq) {
    const cJSON *it, *best = NULL;
    long bs = 0;
    cJSON_ArrayForEach(it, obj) {
        long s = strtol(it->string, NULL, 10);
        if (which == 0 && s == seq) {
            *got_seq = (int)s;
            return it;
        }
        if (which != 0 && (!best || (which < 0 ? s < bs : s > bs))) {
            best = it;
            bs = s;
        }
    }
    *got_seq = (int)bs;
    return best;
}

/* Parameter size and activations of layer type t ("layertype_{t}{sfx}" of the memory file). */
static gv_status gv_mem_type(const cJSON *lt, const char *key, int seq, gv_profile_mode mem_mode,
                             gv_layer_profile *l, const char *mem_path) {
    char where[160];
    int s_small, s_large;
    const cJSON *e_param = gv_seq_entry(lt, seq, mem_mode == GV_PROFILE_SEQUENCE ? -1 : 0, &s_small);
    const cJSON *e_act = gv_seq_entry(lt, seq, mem_mode == GV_PROFILE_SEQUENCE ? 1 : 0, &s_large);
    double act_scale = mem_mode == GV_PROFILE_SEQUENCE && s_large > 0 ? (double)seq / s_large : 1.0;
    if (!e_param || !e_act) return gv_fail(GV_ERR_FORMAT, "%s: missing field '%s.%d'", mem_path, key, seq);
    snprintf(where, sizeof where, "%s.%s.", key, e_param->string);
    GV_TRY(gv_json_num(e_param, "parameter_size", &l->param_mb, mem_path, where, 1));
    snprintf(where, sizeof where, "%s.%s.tp_activation_per_bsz_dict", key, e_act->string);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(e_act, "tp_activation_per_bsz_dict");
    if (!d) return gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", mem_path, where);
    GV_TRY(gv_deg_dict(d, l->act_mb, mem_path, where));
    strncat(where, ".", sizeof where - strlen(where) - 1);
    GV_TRY(gv_json_num(d, "checkpoint", &l->act_ckpt_mb, mem_path, where, 0));
    if (l->act_mb[0] < 0) return gv_fail(GV_ERR_FORMAT, "%s: missing field '%s1'", mem_path, where);
    for (int i = 0; i <= GV_COST_LOGS; i++)
        if (l->act_mb[i] >= 0) l->act_mb[i] *= act_scale;
    l->act_ckpt_mb *= act_scale;
    return GV_OK;
}

gv_status gv_model_profile_load(gv_model_profile *mp, const char *comp_path, const char *mem_path, int seq,
                                int sequence_parallel, gv_profile_mode time_mode, gv_profile_mode mem_mode) {
    memset(mp, 0, sizeof *mp);
    mp->seq = seq;
    cJSON *comp, *root;
    GV_TRY(gv_json_load(comp_path, &comp));
    gv_points pts;
    gv_layer_profile *l0 = &mp->lt[0];
    gv_status st = gv_comp_points(comp, "0", &pts, comp_path);
    if (st == GV_OK)
        st = gv_time_of(&pts, "0", time_mode, seq, &l0->fwd_m, &l0->fwd_c, &l0->fwd_linear, comp_path);
    int other_lin = 0;
    if (st == GV_OK) st = gv_comp_points(comp, "other", &pts, comp_path);
    if (st == GV_OK)
        st = gv_time_of(&pts, "other", time_mode, seq, &mp->other_m, &mp->other_c, &other_lin, comp_path);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(comp, "optimizer_time_per_mparam");
    if (st == GV_OK && x)
        st = gv_json_num(comp, "optimizer_time_per_mparam", &mp->opt_ms_per_mparam, comp_path, "", 0);
    x = cJSON_GetObjectItemCaseSensitive(comp, "step_fixed_ms");
    if (st == GV_OK && x) st = gv_json_num(comp, "step_fixed_ms", &mp->step_fixed_ms, comp_path, "", 0);
    if (st == GV_OK) st = gv_json_load(mem_path, &root);
    if (st != GV_OK) {
        cJSON_Delete(comp);
        return st;
    }
    const char *sfx = sequence_parallel ? "_sp" : "";
    char key[96], where[160];
    /* layer types: layertype_0, layertype_1, ... (Galvatron's per-type keys, T5: encoder, decoder) */
    for (int t = 0; t < GV_MAX_LAYER_TYPES && st == GV_OK; t++) {
        snprintf(key, sizeof key, "layertype_%d%s", t, sfx);
        const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!cJSON_IsObject(lt)) {
            if (t == 0) st = gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", mem_path, key);
            break;
        }
        st = gv_mem_type(lt, key, seq, mem_mode, &mp->lt[t], mem_path);
        if (st == GV_OK) mp->n_types = t + 1;
    }
    for (int t = 1; t < mp->n_types && st == GV_OK; t++) { /* the computation keys of the other types */
        char tk[16];
        snprintf(tk, sizeof tk, "%d", t);
        gv_layer_profile *l = &mp->lt[t];
        st = gv_comp_points(comp, tk, &pts, comp_path);
        if (st == GV_OK)
            st = gv_time_of(&pts, tk, time_mode, seq, &l->fwd_m, &l->fwd_c, &l->fwd_linear, comp_path);
    }
    cJSON_Delete(comp);
    static const char *const other_keys[3] = {"other_memory_pp_off", "other_memory_pp_on_first",
                                              "other_memory_pp_on_last"};
    for (int k = 0; k < 3 && st == GV_OK; k++) {
        snprintf(key, sizeof key, "%s%s", other_keys[k], sfx);
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!cJSON_IsObject(o)) {
            st = gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", mem_path, key);
            break;
        }
        int g1, g2;
        const cJSON *ep = gv_seq_entry(o, seq, mem_mode == GV_PROFILE_SEQUENCE ? -1 : 0, &g1);
        const cJSON *ea = gv_seq_entry(o, seq, mem_mode == GV_PROFILE_SEQUENCE ? 1 : 0, &g2);
        if (!ep || !ea) {
            st = gv_fail(GV_ERR_FORMAT, "%s: missing field '%s.%d'", mem_path, key, seq);
            break;
        }
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(ep, "model_states");
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(ea, "activation");
        snprintf(where, sizeof where, "%s.%s.model_states", key, ep->string);
        if (!ms) st = gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", mem_path, where);
        if (st == GV_OK) st = gv_deg_dict(ms, mp->other_ms_mb[k], mem_path, where);
        snprintf(where, sizeof where, "%s.%s.activation", key, ea->string);
        if (st == GV_OK && !act) st = gv_fail(GV_ERR_FORMAT, "%s: missing field '%s'", mem_path, where);
        if (st == GV_OK) st = gv_deg_dict(act, mp->other_act_mb[k], mem_path, where);
        for (int i = 0; i <= GV_COST_LOGS && st == GV_OK; i++)
            if (mp->other_act_mb[k][i] >= 0 && mem_mode == GV_PROFILE_SEQUENCE && g2 > 0)
                mp->other_act_mb[k][i] *= (double)seq / g2;
    }
    cJSON_Delete(root);
    return st;
}

/* ---- the project's model profile (own model) --------------------------------------------------------- */

static int gv_cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double gv_median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, gv_cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Line ms = m x + c through the points by Theil-Sen (median of the pairwise slopes, median intercept): one
 * disturbed point of a few (a load burst during a profile) does not tilt it, as it would least squares. A
 * negative slope or intercept falls back to the median per-sample cost through the origin, so more
 * samples never cost less. */
static void gv_own_fit(const double *x, const double *y, int n, double *out) {
    double sl[64 * 63 / 2], r[64];
    int k = 0;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (x[j] != x[i]) sl[k++] = (y[j] - y[i]) / (x[j] - x[i]);
    out[0] = out[1] = 0;
    if (k > 0) {
        out[0] = gv_median_of(sl, k);
        for (int i = 0; i < n; i++) r[i] = y[i] - out[0] * x[i];
        out[1] = gv_median_of(r, n);
    }
    if (k == 0 || out[0] <= 0 || out[1] < 0) {
        for (int i = 0; i < n; i++) r[i] = x[i] > 0 ? y[i] / x[i] : 0;
        out[0] = n ? gv_median_of(r, n) : 0;
        out[1] = 0;
    }
    if (out[0] < 0) out[0] = 0;
}

gv_status gv_own_profile_load(gv_model_profile *mp, const char *path, int seq) {
    mp->n_own_time = 0;
    if (access(path, R_OK) != 0) return GV_OK;
    cJSON *root;
    GV_TRY(gv_json_load(path, &root));
    double lmin = 0, lmax = 0;
    gv_status st = gv_json_num(root, "layers_min", &lmin, path, "", 1);
    if (st == GV_OK) st = gv_json_num(root, "layers_max", &lmax, path, "", 1);
    if (st == GV_OK && lmax <= lmin)
        st = gv_fail(GV_ERR_INVALID, "%s: layers_max must exceed layers_min", path);
    /* layer types: run 0 has layers_min layers of every type, run 1 + t layers_max of type t */
    const cJSON *lts = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    int nt = lts ? cJSON_GetArraySize(lts) : 1;
    if (st == GV_OK && lts && (!cJSON_IsArray(lts) || nt < 1 || nt > GV_MAX_LAYER_TYPES))
        st = gv_fail(GV_ERR_INVALID, "%s: 'layer_types' must be an array of 1 to %d names", path,
                     GV_MAX_LAYER_TYPES);
    if (st == GV_OK && mp->n_types && nt != mp->n_types)
        st = gv_fail(GV_ERR_INVALID,
                     "%s: 'layer_types' has %d layer type(s), Galvatron's memory profile beside it %d", path,
                     nt, mp->n_types);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "time"), *t;
    if (st == GV_OK && !cJSON_IsArray(ts)) st = gv_fail(GV_ERR_INVALID, "%s: missing array 'time'", path);
    /* group the points by (tp, sp) */
    enum { MAXP = 64, MAXT = GV_MAX_LAYER_TYPES };
    enum { MAXL = (int)(sizeof mp->own_time / sizeof mp->own_time[0]) };
    static _Thread_local double x[MAXL][MAXP], yf[MAXL][MAXT][MAXP], yb[MAXL][MAXT][MAXP], of[MAXL][MAXP],
        ob[MAXL][MAXP];
    int cnt[MAXL] = {0};
    int i = 0;
    cJSON_ArrayForEach(t, ts) {
        if (st != GV_OK) break;
        double s = 0, tp = 0, b = 0;
        const cJSON *spn = cJSON_GetObjectItemCaseSensitive(t, "sp");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "forward_ms");
        const cJSON *bw = cJSON_GetObjectItemCaseSensitive(t, "backward_ms");
        char where[32];
        snprintf(where, sizeof where, "time[%d].", i++);
        st = gv_json_num(t, "seq", &s, path, where, 1);
        if (st == GV_OK) st = gv_json_num(t, "tp", &tp, path, where, 1);
        if (st == GV_OK) st = gv_json_num(t, "batch", &b, path, where, 1);
        if (st == GV_OK &&
            (!cJSON_IsString(spn) || cJSON_GetArraySize(f) != 1 + nt || cJSON_GetArraySize(bw) != 1 + nt))
            st = gv_fail(GV_ERR_INVALID,
                         "%s: %s sp, forward_ms or backward_ms missing or malformed (%d runs expected: one "
                         "per layer type and the base)",
                         path, where, 1 + nt);
        if (st != GV_OK || (int)s != seq) continue;
        gv_sp_mode sp = !strcmp(spn->valuestring, "megatron")  ? GV_SP_MEGATRON
                        : !strcmp(spn->valuestring, "ulysses") ? GV_SP_ULYSSES
                                                               : GV_SP_NONE;
        int ck = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "ckpt")), k = 0;
        while (k < mp->n_own_time &&
               !(mp->own_time[k].tp == (int)tp && mp->own_time[k].sp == sp && mp->own_time[k].ckpt == ck))
            k++;
        if (k == mp->n_own_time) {
            if (k == MAXL) continue;
            mp->own_time[k].tp = (int)tp;
            mp->own_time[k].sp = sp;
            mp->own_time[k].ckpt = ck;
            mp->n_own_time++;
        }
        if (cnt[k] == MAXP) continue;
        int n = cnt[k]++;
        double f0 = cJSON_GetArrayItem(f, 0)->valuedouble, b0 = cJSON_GetArrayItem(bw, 0)->valuedouble;
        double sf = 0, sb = 0;
        x[k][n] = b;
        for (int ty = 0; ty < nt; ty++) { /* one layer of the type, the whole micro-batch */
            yf[k][ty][n] = (cJSON_GetArrayItem(f, 1 + ty)->valuedouble - f0) / (lmax - lmin);
            yb[k][ty][n] = (cJSON_GetArrayItem(bw, 1 + ty)->valuedouble - b0) / (lmax - lmin);
            sf += yf[k][ty][n];
            sb += yb[k][ty][n];
        }
        of[k][n] = fmax(0, f0 - lmin * sf); /* the vocab layers */
        ob[k][n] = fmax(0, b0 - lmin * sb);
    }
    for (int k = 0; st == GV_OK && k < mp->n_own_time; k++) {
        for (int ty = 0; ty < nt; ty++) {
            gv_own_fit(x[k], yf[k][ty], cnt[k], mp->own_time[k].lf[ty]);
            gv_own_fit(x[k], yb[k][ty], cnt[k], mp->own_time[k].lb[ty]);
        }
        gv_own_fit(x[k], of[k], cnt[k], mp->own_time[k].of);
        gv_own_fit(x[k], ob[k], cnt[k], mp->own_time[k].ob);
    }
    /* the vocab layers' split over a pipeline's ends: each timed stage minus its one layer at its batch
     * (the first stage holds a layer of the first type, the last one of the last type) */
    mp->have_vocab_split = 0;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(root, "pipeline_time");
    if (st == GV_OK && pt) {
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(pt, "first_stage_ms"),
                    *ls = cJSON_GetObjectItemCaseSensitive(pt, "last_stage_ms");
        double b = 0;
        st = gv_json_num(pt, "batch", &b, path, "pipeline_time.", 1);
        if (st == GV_OK && (cJSON_GetArraySize(fs) != 2 || cJSON_GetArraySize(ls) != 2))
            st = gv_fail(GV_ERR_INVALID,
                         "%s: pipeline_time.first_stage_ms / last_stage_ms: need 2 numbers each", path);
        int k = 0;
        while (k < mp->n_own_time && !(mp->own_time[k].tp == 1 && !mp->own_time[k].ckpt)) k++;
        if (st == GV_OK && k < mp->n_own_time) {
            const double *lf0 = mp->own_time[k].lf[0], *lb0 = mp->own_time[k].lb[0];
            const double *lfn = mp->own_time[k].lf[nt - 1], *lbn = mp->own_time[k].lb[nt - 1];
            const double *l[2][2] = {{lf0, lb0}, {lfn, lbn}};
            int ok = 1;
            for (int d = 0; d < 2; d++) {
                double first = l[0][d][0] * b + l[0][d][1], last = l[1][d][0] * b + l[1][d][1];
                double e = fmax(0, cJSON_GetArrayItem(fs, d)->valuedouble - first),
                       h = fmax(0, cJSON_GetArrayItem(ls, d)->valuedouble - last);
                if (e + h > 0)
                    mp->vocab_first[d] = e / (e + h);
                else
                    ok = 0;
            }
            mp->have_vocab_split = ok;
        }
    }
    if (st != GV_OK) mp->n_own_time = 0;
    cJSON_Delete(root);
    return st;
}
