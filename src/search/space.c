/* Galvatron's strategy space (reference §3.1, search_engine.py generate_strategy_list /
 * filter_strategy_list): per layer pp x (tp | Ulysses sp) x cp x dp with the allowed dp types x recompute,
 * sorted in its dataclass field order (pp, tp, sp, cp, dp, dp_type, checkpoint) and deduplicated. */
#include <stdlib.h>
#include <string.h>

#include "gv/search.h"

void gv_search_opts_default(gv_search_opts *o, int world, int n_layer, double memory_mb) {
    memset(o, 0, sizeof *o);
    o->world = world;
    o->n_layer = n_layer;
    o->memory_mb = memory_mb;
    o->disable_cp = 1;
    o->max_tp = o->max_pp = o->max_sp = o->max_cp = 8;
    o->default_dp_type = 2;
    o->fine_grained = 1;
    o->uneven_stages = 1;
    o->top_k = 5;
    o->bsz_scale = 8;
}

static int gv_cmp_strategy(const void *pa, const void *pb) {
    const gv_strategy *a = pa, *b = pb;
    const int ka[7] = {a->pp, a->tp, a->sp, a->cp, a->dp, a->zero, a->ckpt};
    const int kb[7] = {b->pp, b->tp, b->sp, b->cp, b->dp, b->zero, b->ckpt};
    for (int i = 0; i < 7; i++)
        if (ka[i] != kb[i]) return ka[i] < kb[i] ? -1 : 1;
    return 0;
}

/* Degrees the model itself cannot run (the runtime's plan validation would refuse them). */
static int gv_model_allows(const gv_model_spec *m, const gv_strategy *s, int vocab) {
    if (!m) return 1;
    int t = gv_strategy_tsp(s);
    if (t == 1) return 1;
    if (vocab) return s->sp > 1 || m->padded_vocab % t == 0;
    if (m->n_head % t || m->n_kv_head % t) return 0;
    if (s->tp > 1 && m->ffn % t) return 0;
    return 1;
}

gv_status gv_search_space(const gv_search_opts *o, int vocab, gv_strategy **out, int *n) {
    int W = o->world, cap = 0, k = 0;
    for (int pp = 1; pp <= W; pp *= 2)
        for (int t = 1; t <= W; t *= 2)
            for (int cp = 1; cp <= W; cp *= 2) cap += 2 * 2 * 2 * 2;
    gv_strategy *v = malloc(sizeof *v * (cap ? cap : 1));
    if (!v) return gv_fail(GV_ERR_NOMEM, "search: out of host memory");
    for (int pp = 1; pp <= W; pp *= 2) {
        if (pp > o->n_layer || pp > o->max_pp || pp > 64) continue; /* plan costs hold up to 64 stages */
        for (int mode = 0; mode < 2; mode++) {                      /* 0: tp, 1: sp */
            int maxt = mode == 0 ? o->max_tp : o->max_sp;
            for (int t = 1; t <= maxt && t * pp <= W; t *= 2) {
                for (int cp = 1; cp <= o->max_cp && pp * t * cp <= W; cp *= 2) {
                    int dp = W / (pp * t * cp);
                    int types[2], nt;
                    if (dp == 1) {
                        types[0] = 0;
                        nt = 1;
                    } else {
                        types[0] = o->default_dp_type == 0 ? 0 : 2;
                        types[1] = 3;
                        nt = 2;
                        if (o->default_dp_type == 3) nt = 1, types[0] = 3;
                    }
                    for (int d = 0; d < nt; d++)
                        for (int ck = 0; ck < (vocab ? 1 : 2); ck++) {
                            gv_strategy s = {pp, mode == 0 ? t : 1, mode == 1 ? t : 1, cp, dp, types[d], ck};
                            v[k++] = s;
                        }
                }
            }
        }
    }
    qsort(v, k, sizeof *v, gv_cmp_strategy);
    int m = 0;
    for (int i = 0; i < k; i++) {
        gv_strategy *s = &v[i];
        if (m && !gv_cmp_strategy(&v[m - 1], s)) continue;
        int tsp = gv_strategy_tsp(s);
        if (o->disable_pp && s->pp > 1) continue;
        if (o->disable_tp && s->tp > 1) continue;
        if (o->disable_sp && s->sp > 1) continue;
        if (o->disable_cp && s->cp > 1) continue;
        if (o->disable_dp && s->dp > 1) continue;
        if (o->disable_fsdp && s->zero == 3) continue;
        if (!vocab && o->disable_ckpt && s->ckpt) continue;
        if (vocab && o->disable_vtp && s->tp > 1) continue;
        if (vocab && o->disable_vsp && s->sp > 1) continue;
        if (!gv_model_allows(o->spec, s, vocab)) continue;
        (void)tsp;
        v[m++] = *s;
    }
    *out = v;
    *n = m;
    return GV_OK;
}
