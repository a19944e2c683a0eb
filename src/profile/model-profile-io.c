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
    cJSON_AddStringToObject(sp, "arch", s->arch == GV_ARCH_GPT2 ? "gpt2" : "llama");
    gv_prof_num(sp, "n_embd", s->n_embd);
    gv_prof_num(sp, "n_head", s->n_head);
    gv_prof_num(sp, "n_kv_head", s->n_kv_head);
    gv_prof_num(sp, "ffn", s->ffn);
    gv_prof_num(sp, "vocab", s->vocab);
    gv_prof_num(sp, "padded_vocab", s->padded_vocab);
    gv_prof_num(sp, "max_seq", s->max_seq);
    cJSON_AddStringToObject(j, "layer_type",
                            s->arch == GV_ARCH_GPT2 ? "gpt2 decoder block" : "llama decoder block");
    cJSON_AddStringToObject(j, "precision", p->precision);
    cJSON_AddStringToObject(j, "backend", p->backend);
    cJSON_AddStringToObject(j, "units", "ms, bytes");
    gv_prof_num(j, "world", p->world);
    gv_prof_num(j, "layers_min", p->layers_min);
    gv_prof_num(j, "layers_max", p->layers_max);
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
        cJSON_AddItemToObject(e, "forward_ms", cJSON_CreateDoubleArray(t->fwd_ms, 2));
        cJSON_AddItemToObject(e, "backward_ms", cJSON_CreateDoubleArray(t->bwd_ms, 2));
        gv_prof_num(e, "layer_forward_ms_per_sample", t->layer_fwd_ms);
        gv_prof_num(e, "layer_backward_ms_per_sample", t->layer_bwd_ms);
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
        gv_prof_num(o, "layers", p->layers_min);
        gv_prof_num(o, "seq", p->step_seq);
        gv_prof_num(o, "batch", p->step_batch);
        gv_prof_num(o, "ms", p->step_ms);
        gv_prof_num(o, "allreduce_ms", p->step_reduce_ms);
        gv_prof_num(o, "optimizer_ms", p->step_opt_ms);
        gv_prof_num(o, "fixed_ms", p->step_fixed_ms);
    }
    cJSON *ms = cJSON_AddArrayToObject(j, "memory");
    int L[2] = {p->layers_min, p->layers_max};
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
        for (int k = 0; k < 2; k++)
            for (int r = 0; r < 2; r++)
                cJSON_AddItemToArray(rs, gv_report_json(&m->mem[k][r], L[k], r ? p->world - 1 : 0));
        const gv_memory_report *a = &m->mem[0][0], *b = &m->mem[1][0];
        gv_prof_num(e, "layer_parameter_bytes", ((double)b->parameters - (double)a->parameters) / dL);
        gv_prof_num(e, "layer_model_state_bytes", ((double)gv_states(b) - (double)gv_states(a)) / dL);
        gv_prof_num(e, "layer_activation_bytes_per_sample",
                    ((double)b->activations - (double)a->activations) / dL / m->local_batch);
        gv_prof_num(e, "other_model_state_bytes", m->other_ms_mb * 1048576.0);
        gv_prof_num(e, "other_activation_bytes_per_sample", m->other_act_mb * 1048576.0);
        cJSON_AddItemToArray(ms, e);
    }
    return j;
}

/* Galvatron's computation file: forward times of the tp = 1 points. */
static cJSON *gv_mp_galvatron_time(const gv_model_prof *p) {
    cJSON *j = cJSON_CreateObject();
    for (int i = 0; i < p->ntime; i++) {
        const gv_time_point *t = &p->time[i];
        if (t->tp != 1 || t->ckpt) continue;
        char key[96];
        int L[2] = {p->layers_min, p->layers_max};
        for (int k = 0; k < 2; k++) {
            snprintf(key, sizeof key, "layernum[%d]_bsz%d_seq%d", L[k], t->batch, t->seq);
            gv_prof_num(j, key, t->fwd_ms[k]);
        }
        snprintf(key, sizeof key, "layertype_0_bsz%d_seq%d", t->batch, t->seq);
        gv_prof_num(j, key, t->layer_fwd_ms);
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
 * every run under "{pp}_{tp}_{dp}[_c][_vtp][_sp]", and per seq the processed layertype_0[_sp] (per-layer
 * parameter_size and activations per sample by degree, from the runs with the vocab whole — or split,
 * under SP, which needs it), other_memory_pp_off[_sp] (the vocab layers' model states and activations,
 * keyed by the vocab degree, minimum over the runs) and other_memory_pp_on_first[_sp] / _last[_sp] (the
 * same for the first and last pipeline stage, from the pipelined runs minus their one layer). Under SP,
 * degrees up to 8 that were not run are filled by halving the next smaller one, as Galvatron's
 * post-processing does. Returns the number of points of the family. */
static int gv_mp_galvatron_family(cJSON *j, const gv_model_prof *p, int sp_family) {
    const char *sfx = sp_family ? "_sp" : "";
    int L[2] = {p->layers_min, p->layers_max}, count = 0;
    for (int i = 0; i < p->nmem; i++) {
        const gv_mem_point *m = &p->mem[i];
        if (!gv_in_family(m, sp_family)) continue;
        count++;
        char key[64];
        snprintf(key, sizeof key, "%d_%d_%d%s%s%s", m->pp, m->tp, p->world / m->pp / m->tp,
                 m->ckpt ? "_c" : "", m->vtp ? "_vtp" : "", sfx);
        cJSON *rec = cJSON_GetObjectItemCaseSensitive(j, key);
        if (!rec) rec = cJSON_AddObjectToObject(j, key);
        for (int k = 0; k < (m->pp > 1 ? 1 : 2); k++)
            for (int r = 0; r < 2; r++) {
                const gv_memory_report *x = &m->mem[k][r];
                int rank = r ? p->world - 1 : 0;
                char base[96], e[128];
                snprintf(base, sizeof base, "layernum[%d]_bsz%d_seq%d_rank%d", m->pp > 1 ? m->pp : L[k],
                         m->global_batch, m->seq, rank);
                snprintf(e, sizeof e, "%s_ms", base);
                gv_prof_num(rec, e, gv_states(x) / 1048576.0);
                snprintf(e, sizeof e, "%s_act", base);
                gv_prof_num(rec, e, x->activations / 1048576.0);
                snprintf(e, sizeof e, "%s_act_peak", base);
                gv_prof_num(rec, e, (x->activations + x->workspace + x->comm) / 1048576.0);
            }
    }
    if (!count) return 0;
    char k1[32], k2[40], k3[40], k4[40];
    snprintf(k1, sizeof k1, "layertype_0%s", sfx);
    snprintf(k2, sizeof k2, "other_memory_pp_off%s", sfx);
    snprintf(k3, sizeof k3, "other_memory_pp_on_first%s", sfx);
    snprintf(k4, sizeof k4, "other_memory_pp_on_last%s", sfx);
    cJSON *lt = cJSON_AddObjectToObject(j, k1);
    for (int i = 0; i < p->nmem; i++) {
        int seq = p->mem[i].seq;
        char sk[16];
        snprintf(sk, sizeof sk, "%d", seq);
        if (!gv_in_family(&p->mem[i], sp_family) || p->mem[i].pp > 1 ||
            cJSON_GetObjectItemCaseSensitive(lt, sk))
            continue;
        double act[16] = {0}, pm[16] = {0}, param = -1, ckpt = -1;
        int have[16] = {0}, maxlog = 0, pipelined = 0;
        gv_other_mem off = {{0}, {0}, {0}}, first = {{0}, {0}, {0}}, last = {{0}, {0}, {0}};
        /* Layer costs per degree (pp = 1 runs). */
        for (int k = 0; k < p->nmem; k++) {
            const gv_mem_point *m = &p->mem[k];
            if (m->seq != seq || !gv_in_family(m, sp_family) || m->pp > 1) continue;
            int lg = gv_log2(m->tp);
            if (m->ckpt) {
                if (m->act_mb > ckpt) ckpt = m->act_mb;
                continue;
            }
            /* the vocab layers' cost goes under their degree: tp when split, 1 when whole */
            gv_other_put(&off, m->vtp ? lg : 0, m->other_ms_mb, m->other_act_mb);
            if (m->vtp && !sp_family) continue; /* layer costs from the whole-vocab runs */
            have[lg] = 1;
            act[lg] = m->act_mb;
            pm[lg] = m->param_mb;
            if (m->param_mb * m->tp > param) param = m->param_mb * m->tp;
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
                double ms = gv_states(x) / 1048576.0 - pm[lg] * 4;
                double a = x->activations / 1048576.0;
                double peak = (x->activations + x->workspace + x->comm) / 1048576.0;
                double oa = ((peak > a ? peak : a) - act[lg] * lb) / den;
                gv_other_put(e ? &last : &first, m->vtp ? lg : 0, ms, oa);
            }
            pipelined = 1;
        }
        int top = maxlog > 3 ? maxlog : 3;
        if (sp_family) /* Galvatron's halving fill covers tp 2, 4, 8 */
            for (int lg = 1; lg <= top; lg++) {
                if (!have[lg] && have[lg - 1]) act[lg] = act[lg - 1] / 2, have[lg] = 1;
                gv_other_mem *os[3] = {&off, &first, &last};
                for (int q = 0; q < 3; q++)
                    if (!os[q]->have[lg] && os[q]->have[lg - 1]) {
                        os[q]->ms[lg] = os[q]->ms[lg - 1] / 2, os[q]->act[lg] = os[q]->act[lg - 1] / 2;
                        os[q]->have[lg] = 1;
                    }
            }
        cJSON *e = cJSON_AddObjectToObject(lt, sk);
        gv_prof_num(e, "parameter_size", param);
        cJSON *d = cJSON_AddObjectToObject(e, "tp_activation_per_bsz_dict");
        for (int lg = 0; lg <= top; lg++) {
            char tk[16];
            gv_tp_key(tk, sizeof tk, 1 << lg);
            if (have[lg]) gv_prof_num(d, tk, act[lg]);
        }
        gv_prof_num(d, "checkpoint", ckpt);
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
