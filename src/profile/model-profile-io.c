/* Model profile files: the project's model_profile.json and Hetu-Galvatron's
 * computation_profiling_{fp32|bf16}_{model}_all.json and memory_profiling_{fp32|bf16}_{model}_all.json under
 * its key names (times in ms, memory in MB = 2^20 bytes). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gv/profiler.h"
#include "profile-util.h"

static size_t gv_states(const gv_memory_report *r) {
    return r->parameters + r->gradients + r->optimizer;
}

/* Layers of each type in run r (0: layers_min of every type; 1 + t: layers_max of type t) into n[]; returns
 * their sum. */
static int gv_run_layers(const gv_model_prof *p, int r, int *n) {
    int sum = 0;
    for (int t = 0; t < p->n_types; t++) sum += n[t] = r == 1 + t ? p->layers_max : p->layers_min;
    return sum;
}

/* Galvatron's "layernum[a,b,...]" of a run (layernum2str of its per-type counts). */
static void gv_layernum_key(char *buf, size_t len, const int *n, int nt) {
    int w = snprintf(buf, len, "layernum[");
    for (int t = 0; t < nt && w > 0 && (size_t)w < len; t++)
        w += snprintf(buf + w, len - w, t ? ",%d" : "%d", n[t]);
    if (w > 0 && (size_t)w < len) snprintf(buf + w, len - w, "]");
}

/* A per-type value: a number with one layer type (the file's form before types), an array with several. */
static void gv_type_num(cJSON *e, const char *key, const double *v, int nt) {
    if (nt == 1)
        gv_prof_num(e, key, v[0]);
    else
        cJSON_AddItemToObject(e, key, cJSON_CreateDoubleArray(v, nt));
}

static cJSON *gv_report_json(const gv_memory_report *r, int layers, int rank) {
    cJSON *e = cJSON_CreateObject();
    gv_prof_num(e, "layers", layers);
    gv_prof_num(e, "rank", rank);
    gv_prof_num(e, "parameters", (double)r->parameters);
    gv_prof_num(e, "gradients", (double)r->gradients);
    gv_prof_num(e, "optimizer", (double)r->optimizer);
    gv_prof_num(e, "activations", (double)r->activations);
    gv_prof_num(e, "workspace", (double)r->workspace);
    gv_prof_num(e, "comm", (double)r->comm);
    return e;
}

static cJSON *gv_mp_own_json(const gv_model_prof *p) {
    const gv_model_spec *s = &p->spec;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "galvatron-c model profile");
    gv_prof_num(j, "version", 1);
    cJSON_AddStringToObject(j, "date", p->date);
    cJSON_AddStringToObject(j, "model", p->model);
    cJSON *sp = cJSON_AddObjectToObject(j, "spec");
    cJSON_AddStringToObject(sp, "arch", gv_arch_name(s->arch));
    gv_prof_num(sp, "n_embd", s->n_embd);
    gv_prof_num(sp, "n_head", s->n_head);
    gv_prof_num(sp, "n_kv_head", s->n_kv_head);
    gv_prof_num(sp, "ffn", s->ffn);
    gv_prof_num(sp, "vocab", s->vocab);
    gv_prof_num(sp, "padded_vocab", s->padded_vocab);
    gv_prof_num(sp, "max_seq", s->max_seq);
    char lt_name[64]; /* the family's block; "layer_types" names each type */
    snprintf(lt_name, sizeof lt_name, "%s %s block", gv_arch_name(s->arch),
             s->arch == GV_ARCH_T5     ? "encoder/decoder"
             : gv_model_spec_causal(s) ? "decoder"
                                       : "encoder");
    cJSON_AddStringToObject(j, "layer_type", lt_name);
    cJSON_AddStringToObject(j, "precision", p->precision);
    cJSON_AddStringToObject(j, "backend", p->backend);
    cJSON_AddStringToObject(j, "units", "ms, bytes");
    gv_prof_num(j, "world", p->world);
    gv_prof_num(j, "layers_min", p->layers_min);
    gv_prof_num(j, "layers_max", p->layers_max);
    /* the layer types and the runs: layers of each type per run (forward_ms[r], reports of run r) */
    cJSON *lt = cJSON_AddArrayToObject(j, "layer_types");
    for (int t = 0; t < p->n_types; t++) cJSON_AddItemToArray(lt, cJSON_CreateString(p->type_names[t]));
    cJSON *runs = cJSON_AddArrayToObject(j, "runs");
    for (int r = 0; r <= p->n_types; r++) {
        int n[GV_MAX_LAYER_TYPES];
        gv_run_layers(p, r, n);
        cJSON_AddItemToArray(runs, cJSON_CreateIntArray(n, p->n_types));
    }
    gv_prof_num(j, "warmup", p->warmup);
    gv_prof_num(j, "iters", p->iters);

    cJSON *ts = cJSON_AddArrayToObject(j, "time");
    for (int i = 0; i < p->ntime; i++) {
        const gv_time_point *t = &p->time[i];
        cJSON *e = cJSON_CreateObject();
        gv_prof_num(e, "seq", t->seq);
        gv_prof_num(e, "tp", t->tp);
        gv_prof_num(e, "batch", t->batch);
        cJSON_AddStringToObject(e, "sp", gv_sp_mode_name(t->sp));
        cJSON_AddBoolToObject(e, "vocab_parallel", t->vtp);
        cJSON_AddBoolToObject(e, "ckpt", t->ckpt);
        cJSON_AddItemToObject(e, "forward_ms", cJSON_CreateDoubleArray(t->fwd_ms, 1 + p->n_types));
        cJSON_AddItemToObject(e, "backward_ms", cJSON_CreateDoubleArray(t->bwd_ms, 1 + p->n_types));
        gv_type_num(e, "layer_forward_ms_per_sample", t->layer_fwd_ms, p->n_types);
        gv_type_num(e, "layer_backward_ms_per_sample", t->layer_bwd_ms, p->n_types);
        gv_prof_num(e, "other_forward_ms_per_sample", t->other_fwd_ms);
        gv_prof_num(e, "other_backward_ms_per_sample", t->other_bwd_ms);
        cJSON_AddItemToArray(ts, e);
    }
    if (p->opt_params > 0) {
        cJSON *o = cJSON_AddObjectToObject(j, "optimizer");
        gv_prof_num(o, "ms", p->opt_ms);
        gv_prof_num(o, "parameters", p->opt_params);
    }
    if (p->pipe_batch > 0) {
        cJSON *o = cJSON_AddObjectToObject(j, "pipeline_time");
        gv_prof_num(o, "pp", 2);
        gv_prof_num(o, "batch", p->pipe_batch);
        cJSON_AddItemToObject(o, "first_stage_ms", cJSON_CreateDoubleArray(p->pipe_first_ms, 2));
        cJSON_AddItemToObject(o, "last_stage_ms", cJSON_CreateDoubleArray(p->pipe_last_ms, 2));
    }
    if (p->step_ms > 0) {
        cJSON *o = cJSON_AddObjectToObject(j, "step");
        int n[GV_MAX_LAYER_TYPES];
        gv_prof_num(o, "layers", gv_run_layers(p, 0, n));
        gv_prof_num(o, "seq", p->step_seq);
        gv_prof_num(o, "batch", p->step_batch);
        gv_prof_num(o, "ms", p->step_ms);
        gv_prof_num(o, "allreduce_ms", p->step_reduce_ms);
        gv_prof_num(o, "optimizer_ms", p->step_opt_ms);
        gv_prof_num(o, "fixed_ms", p->step_fixed_ms);
    }
    cJSON *ms = cJSON_AddArrayToObject(j, "memory");
    int nt = p->n_types, L[GV_PROF_RUNS], cnt[GV_MAX_LAYER_TYPES];
    for (int r = 0; r <= nt; r++) L[r] = gv_run_layers(p, r, cnt);
    double dL = p->layers_max - p->layers_min;
    cJSON *mp = cJSON_AddArrayToObject(j, "memory_pipelined");
    for (int i = 0; i < p->nmem; i++) {
        const gv_mem_point *m = &p->mem[i];
        if (m->pp == 1) continue;
        cJSON *e = cJSON_CreateObject();
        gv_prof_num(e, "seq", m->seq);
        gv_prof_num(e, "pp", m->pp);
        gv_prof_num(e, "tp", m->tp);
        cJSON_AddStringToObject(e, "sp", gv_sp_mode_name(m->sp));
        cJSON_AddBoolToObject(e, "vocab_parallel", m->vtp);
        gv_prof_num(e, "global_batch", m->global_batch);
        gv_prof_num(e, "local_batch", m->local_batch);
        cJSON *rs = cJSON_AddArrayToObject(e, "reports");
        for (int r = 0; r < 2; r++)
            cJSON_AddItemToArray(rs, gv_report_json(&m->mem[0][r], m->pp, r ? p->world - 1 : 0));
        cJSON_AddItemToArray(mp, e);
    }
    for (int i = 0; i < p->nmem; i++) {
        const gv_mem_point *m = &p->mem[i];
        if (m->pp > 1) continue;
        cJSON *e = cJSON_CreateObject();
        gv_prof_num(e, "seq", m->seq);
        gv_prof_num(e, "tp", m->tp);
        cJSON_AddStringToObject(e, "sp", gv_sp_mode_name(m->sp));
        cJSON_AddBoolToObject(e, "vocab_parallel", m->vtp);
        cJSON_AddBoolToObject(e, "ckpt", m->ckpt);
        gv_prof_num(e, "global_batch", m->global_batch);
        gv_prof_num(e, "local_batch", m->local_batch);
        cJSON *rs = cJSON_AddArrayToObject(e, "reports");
        for (int k = 0; k <= nt; k++)
            for (int r = 0; r < 2; r++)
                cJSON_AddItemToArray(rs, gv_report_json(&m->mem[k][r], L[k], r ? p->world - 1 : 0));
        const gv_memory_report *a = &m->mem[0][0];
        double lp[GV_MAX_LAYER_TYPES], lm[GV_MAX_LAYER_TYPES], la[GV_MAX_LAYER_TYPES];
        for (int t = 0; t < nt; t++) {
            const gv_memory_report *b = &m->mem[1 + t][0];
            lp[t] = ((double)b->parameters - (double)a->parameters) / dL;
            lm[t] = ((double)gv_states(b) - (double)gv_states(a)) / dL;
            la[t] = ((double)b->activations - (double)a->activations) / dL / m->local_batch;
        }
        gv_type_num(e, "layer_parameter_bytes", lp, nt);
        gv_type_num(e, "layer_model_state_bytes", lm, nt);
        gv_type_num(e, "layer_activation_bytes_per_sample", la, nt);
        gv_prof_num(e, "other_model_state_bytes", m->other_ms_mb * 1048576.0);
        gv_prof_num(e, "other_activation_bytes_per_sample", m->other_act_mb * 1048576.0);
        cJSON_AddItemToArray(ms, e);
    }
    return j;
}

/* Galvatron's computation file: forward times of the tp = 1 points. Several layer types: the runs under
 * "layernum[a,b]", "layertype_{t}" per type, and the vocab layers both under HEAD's "layertype_other" and
 * v2.x's per-type "layertype_other_{t}" (the same value: the base run less all its layers; v2.x averages two
 * estimates that leave the other types' layers in). */
static cJSON *gv_mp_galvatron_time(const gv_model_prof *p) {
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < p->ntime; i++) {
        const gv_time_point *t = &p->time[i];
        if (t->tp != 1 || t->ckpt) continue;
        char key[96], ln[64];
        for (int k = 0; k <= p->n_types; k++) {
            int n[GV_MAX_LAYER_TYPES];
            gv_run_layers(p, k, n);
            gv_layernum_key(ln, sizeof ln, n, p->n_types);
            snprintf(key, sizeof key, "%s_bsz%d_seq%d", ln, t->batch, t->seq);
            gv_prof_num(j, key, t->fwd_ms[k]);
        }
        for (int ty = 0; ty < p->n_types; ty++) {
            snprintf(key, sizeof key, "layertype_%d_bsz%d_seq%d", ty, t->batch, t->seq);
            gv_prof_num(j, key, t->layer_fwd_ms[ty]);
            if (p->n_types == 1) continue;
            snprintf(key, sizeof key, "layertype_other_%d_bsz%d_seq%d", ty, t->batch, t->seq);
            gv_prof_num(j, key, t->other_fwd_ms);
        }
        snprintf(key, sizeof key, "layertype_other_bsz%d_seq%d", t->batch, t->seq);
        gv_prof_num(j, key, t->other_fwd_ms);
    }
    /* the own cost model's optimizer step (Galvatron reads only the keys above) */
    if (p->opt_params > 0) gv_prof_num(j, "optimizer_time_per_mparam", p->opt_ms / p->opt_params * 1e6);
    if (p->step_ms > 0) gv_prof_num(j, "step_fixed_ms", p->step_fixed_ms);
    return j;
}

static void gv_tp_key(char *buf, size_t n, int tp) {
    snprintf(buf, n, "%d", tp);
}

/* The points of one Galvatron family: sequence_parallel = True (Megatron-SP at t > 1) or False (plain
 * Megatron TP at t > 1); the t = 1 runs belong to both. */
static int gv_in_family(const gv_mem_point *m, int sp_family) {
    return m->tp == 1 || m->sp == (sp_family ? GV_SP_MEGATRON : GV_SP_NONE);
}

/* Minimum per degree, as Galvatron keeps over the runs that give one key. */
typedef struct {
    double ms[16], act[16];
    int have[16];
} gv_other_mem;

static void gv_other_put(gv_other_mem *o, int lg, double ms, double act) {
    ms = ms > 0 ? ms : 0, act = act > 0 ? act : 0; /* Galvatron clamps at 0 */
    if (!o->have[lg] || ms < o->ms[lg]) o->ms[lg] = ms;
    if (!o->have[lg] || act < o->act[lg]) o->act[lg] = act;
    o->have[lg] = 1;
}

static void gv_other_json(cJSON *parent, const char *key, const char *seq, const gv_other_mem *o, int top) {
    cJSON *fam = cJSON_GetObjectItemCaseSensitive(parent, key);
    if (!fam) fam = cJSON_AddObjectToObject(parent, key);
    cJSON *e = cJSON_AddObjectToObject(fam, seq);
    cJSON *ms = cJSON_AddObjectToObject(e, "model_states"), *act = cJSON_AddObjectToObject(e, "activation");
    for (int lg = 0; lg <= top; lg++) {
        if (!o->have[lg]) continue;
        char tk[16];
        gv_tp_key(tk, sizeof tk, 1 << lg);
        gv_prof_num(ms, tk, o->ms[lg]);
        gv_prof_num(act, tk, o->act[lg]);
    }
}

static int gv_log2(int t) {
    int lg = 0;
    while ((1 << lg) < t) lg++;
    return lg;
}

/* One family of Galvatron's memory file (keys end in "_sp" for sequence parallelism): the raw records of
 * every run under "{pp}_{tp}_{dp}[_c][_vtp][_sp]", and per seq the processed layertype_{t}[_sp] per layer
 * type (per-layer parameter_size and activations per sample by degree, from the runs with the vocab whole —
 * or split, under SP, which needs it), other_memory_pp_off[_sp] (the vocab layers' model states and
 * activations, keyed by the vocab degree, minimum over the runs) and other_memory_pp_on_first[_sp] /
 * _last[_sp] (the same for the first and last pipeline stage, from the pipelined runs minus their one
 * layer: of the first type on the first stage, of the last type on the last). Under SP, degrees up to 8
 * that were not run are filled by halving the next smaller one, as Galvatron's post-processing does.
 * Returns the number of points of the family. */
static int gv_mp_galvatron_family(cJSON *j, const gv_model_prof *p, int sp_family) {
    const char *sfx = sp_family ? "_sp" : "";
    int count = 0, nt = p->n_types;
    for (int i = 0; i < p->nmem; i++) {
        const gv_mem_point *m = &p->mem[i];
        if (!gv_in_family(m, sp_family)) continue;
        count++;
        char key[64];
        snprintf(key, sizeof key, "%d_%d_%d%s%s%s", m->pp, m->tp, p->world / m->pp / m->tp,
                 m->ckpt ? "_c" : "", m->vtp ? "_vtp" : "", sfx);
        cJSON *rec = cJSON_GetObjectItemCaseSensitive(j, key);
        if (!rec) rec = cJSON_AddObjectToObject(j, key);
        for (int k = 0; k < (m->pp > 1 ? 1 : 1 + nt); k++)
            for (int r = 0; r < 2; r++) {
                const gv_memory_report *x = &m->mem[k][r];
                int rank = r ? p->world - 1 : 0, n[GV_MAX_LAYER_TYPES];
                char ln[64], base[128], e[160];
                if (m->pp > 1) /* one layer per stage: pp layers, split evenly over the types */
                    for (int t = 0; t < nt; t++) n[t] = m->pp / nt;
                else
                    gv_run_layers(p, k, n);
                gv_layernum_key(ln, sizeof ln, n, nt);
                snprintf(base, sizeof base, "%s_bsz%d_seq%d_rank%d", ln, m->global_batch, m->seq, rank);
                snprintf(e, sizeof e, "%s_ms", base);
                gv_prof_num(rec, e, gv_states(x) / 1048576.0);
                snprintf(e, sizeof e, "%s_act", base);
                gv_prof_num(rec, e, x->activations / 1048576.0);
                snprintf(e, sizeof e, "%s_act_peak", base);
                gv_prof_num(rec, e, (x->activations + x->workspace + x->comm) / 1048576.0);
            }
    }
    if (!count) return 0;
    char k2[40], k3[40], k4[40];
    cJSON *lt[GV_MAX_LAYER_TYPES];
    for (int t = 0; t < nt; t++) {
        char k1[32];
        snprintf(k1, sizeof k1, "layertype_%d%s", t, sfx);
        lt[t] = cJSON_AddObjectToObject(j, k1);
    }
    snprintf(k2, sizeof k2, "other_memory_pp_off%s", sfx);
    snprintf(k3, sizeof k3, "other_memory_pp_on_first%s", sfx);
    snprintf(k4, sizeof k4, "other_memory_pp_on_last%s", sfx);
    for (int i = 0; i < p->nmem; i++) {
        int seq = p->mem[i].seq;
        char sk[16];
        snprintf(sk, sizeof sk, "%d", seq);
        if (!gv_in_family(&p->mem[i], sp_family) || p->mem[i].pp > 1 ||
            cJSON_GetObjectItemCaseSensitive(lt[0], sk))
            continue;
        double act[GV_MAX_LAYER_TYPES][16] = {{0}}, pm[GV_MAX_LAYER_TYPES][16] = {{0}};
        double param[GV_MAX_LAYER_TYPES], ckpt[GV_MAX_LAYER_TYPES];
        for (int t = 0; t < nt; t++) param[t] = ckpt[t] = -1;
        int have[16] = {0}, maxlog = 0, pipelined = 0;
        gv_other_mem off = {{0}, {0}, {0}}, first = {{0}, {0}, {0}}, last = {{0}, {0}, {0}};
        /* Layer costs per degree (pp = 1 runs). */
        for (int k = 0; k < p->nmem; k++) {
            const gv_mem_point *m = &p->mem[k];
            if (m->seq != seq || !gv_in_family(m, sp_family) || m->pp > 1) continue;
            int lg = gv_log2(m->tp);
            if (m->ckpt) {
                for (int t = 0; t < nt; t++)
                    if (m->act_mb[t] > ckpt[t]) ckpt[t] = m->act_mb[t];
                continue;
            }
            /* the vocab layers' cost goes under their degree: tp when split, 1 when whole */
            gv_other_put(&off, m->vtp ? lg : 0, m->other_ms_mb, m->other_act_mb);
            if (m->vtp && !sp_family) continue; /* layer costs from the whole-vocab runs */
            have[lg] = 1;
            for (int t = 0; t < nt; t++) {
                act[t][lg] = m->act_mb[t];
                pm[t][lg] = m->param_mb[t];
                if (m->param_mb[t] * m->tp > param[t]) param[t] = m->param_mb[t] * m->tp;
            }
            if (lg > maxlog) maxlog = lg;
        }
        /* Pipelined runs: stage memory minus its one layer (Galvatron's formulas with layernum = pp). */
        for (int k = 0; k < p->nmem; k++) {
            const gv_mem_point *m = &p->mem[k];
            int lg = gv_log2(m->tp);
            if (m->seq != seq || !gv_in_family(m, sp_family) || m->pp == 1 || !have[lg]) continue;
            double lb = m->local_batch, den = m->vtp || m->tp == 1 ? lb : lb / m->tp;
            for (int e = 0; e < 2; e++) {
                const gv_memory_report *x = &m->mem[0][e];
                int t = e ? nt - 1 : 0; /* the first stage holds the first layer, the last stage the last */
                double ms = gv_states(x) / 1048576.0 - pm[t][lg] * 4;
                double a = x->activations / 1048576.0;
                double peak = (x->activations + x->workspace + x->comm) / 1048576.0;
                double oa = ((peak > a ? peak : a) - act[t][lg] * lb) / den;
                gv_other_put(e ? &last : &first, m->vtp ? lg : 0, ms, oa);
            }
            pipelined = 1;
        }
        int top = maxlog > 3 ? maxlog : 3;
        int have_t[16];
        memcpy(have_t, have, sizeof have);
        if (sp_family) /* Galvatron's halving fill covers tp 2, 4, 8 */
            for (int lg = 1; lg <= top; lg++) {
                if (!have_t[lg] && have_t[lg - 1]) {
                    for (int t = 0; t < nt; t++) act[t][lg] = act[t][lg - 1] / 2;
                    have_t[lg] = 1;
                }
                gv_other_mem *os[3] = {&off, &first, &last};
                for (int q = 0; q < 3; q++)
                    if (!os[q]->have[lg] && os[q]->have[lg - 1]) {
                        os[q]->ms[lg] = os[q]->ms[lg - 1] / 2, os[q]->act[lg] = os[q]->act[lg - 1] / 2;
                        os[q]->have[lg] = 1;
                    }
            }
        for (int t = 0; t < nt; t++) {
            cJSON *e = cJSON_AddObjectToObject(lt[t], sk);
            gv_prof_num(e, "parameter_size", param[t]);
            cJSON *d = cJSON_AddObjectToObject(e, "tp_activation_per_bsz_dict");
            for (int lg = 0; lg <= top; lg++) {
                char tk[16];
                gv_tp_key(tk, sizeof tk, 1 << lg);
                if (have_t[lg]) gv_prof_num(d, tk, act[t][lg]);
            }
            gv_prof_num(d, "checkpoint", ckpt[t]);
        }
        gv_other_json(j, k2, sk, &off, top);
        if (pipelined) {
            gv_other_json(j, k3, sk, &first, top);
            gv_other_json(j, k4, sk, &last, top);
        }
    }
    return count;
}

static cJSON *gv_mp_galvatron_mem(const gv_model_prof *p) {
    cJSON *j = cJSON_CreateObject();
    int has_sp = 0;
    for (int i = 0; i < p->nmem; i++) has_sp |= p->mem[i].sp == GV_SP_MEGATRON;
    int has_plain = 0;
    for (int i = 0; i < p->nmem; i++) has_plain |= p->mem[i].sp == GV_SP_NONE && p->mem[i].tp > 1;
    /* With t = 1 only, both families hold the same numbers; write the SP one, Galvatron's default. */
    if (has_sp || !has_plain) gv_mp_galvatron_family(j, p, 1);
    if (has_plain) gv_mp_galvatron_family(j, p, 0);
    return j;
}

gv_status gv_model_prof_save(const gv_model_prof *p, const char *dir) {
    char name[160];
    cJSON *js[3] = {gv_mp_own_json(p), gv_mp_galvatron_time(p), gv_mp_galvatron_mem(p)};
    gv_status st = GV_OK;
    for (int i = 0; i < 3 && st == GV_OK; i++) {
        if (!js[i]) {
            st = gv_fail(GV_ERR_NOMEM, "profile model: out of memory");
            break;
        }
        if (i == 0)
            snprintf(name, sizeof name, "model_profile.json");
        else
            snprintf(name, sizeof name, "%s_profiling_%s_%s_all.json", i == 1 ? "computation" : "memory",
                     p->precision, p->model);
        st = gv_prof_write_json(js[i], dir, name);
    }
    for (int i = 0; i < 3; i++) cJSON_Delete(js[i]);
    return st;
}
