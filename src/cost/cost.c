/* The cost model: Hetu-Galvatron HEAD's formulas (GV_COST_GALVATRON, reference §2 with its quirks) and the
 * project's own (GV_COST_OWN). Comments marked "quirk" reproduce Galvatron behaviour that the own model
 * does differently. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gv/cost.h"

#define GV_MB (1024.0 * 1024.0)

static int gv_lg(int x) {
    int k = 0;
    while ((1 << k) < x) k++;
    return k;
}

void gv_cost_opts_default(gv_cost_opts *o, gv_cost_mode mode, int world, int hidden, int seq) {
    memset(o, 0, sizeof *o);
    o->mode = mode;
    o->world = world;
    o->hidden = hidden;
    o->seq = seq;
    o->mixed_precision = 1;
    o->sequence_parallel = 1;
    o->global_memory_buffer = 0;
    o->async_grad_reduce = 1;
    o->overlap = 1;
    o->pipeline = GV_SCHED_1F1B;
    o->costmodel_coe = 1.0;
    o->mem_reserve = mode == GV_COST_GALVATRON;
    /* Galvatron's PyTorch context; the own model's runtime has none (its scratch is counted as workspace) */
    o->context_mb = mode == GV_COST_GALVATRON ? 1024 : 0;
    o->n_types = 1;
}

void gv_cost_opts_set_layers(gv_cost_opts *o, const gv_model_spec *spec) {
    o->n_layer = spec->n_layer;
    o->n_types = gv_model_spec_layer_types(spec, o->type_layers, NULL);
}

int gv_cost_layer_type(const gv_cost_opts *o, int l) {
    if (o->n_types <= 1) return 0;
    int t = 0, end = o->type_layers[0];
    while (l >= end && t < o->n_types - 1) end += o->type_layers[++t];
    return t;
}

gv_status gv_cost_check_types(const gv_cost_opts *o, const gv_model_profile *mp, const char *where) {
    int nt = o->n_types > 1 ? o->n_types : 1, sum = 0;
    if (nt > GV_MAX_LAYER_TYPES)
        return gv_fail(GV_ERR_INVALID, "cost: %d layer types, at most %d", nt, GV_MAX_LAYER_TYPES);
    for (int t = 0; nt > 1 && t < nt; t++) {
        if (o->type_layers[t] < 0)
            return gv_fail(GV_ERR_INVALID, "cost: layer type %d has %d layers", t, o->type_layers[t]);
        sum += o->type_layers[t];
    }
    if (nt > 1 && sum != o->n_layer)
        return gv_fail(GV_ERR_INVALID, "cost: the layer types have %d layers in all, the model %d", sum,
                       o->n_layer);
    int mt = mp->n_types > 0 ? mp->n_types : 1; /* a profile filled by hand: type 0 */
    if (mt != nt)
        return gv_fail(GV_ERR_FORMAT,
                       "%s: %d layer type(s) profiled (layertype_0 .. layertype_%d), the model has %d (t5: "
                       "encoder and decoder): profile it with this build's `galvatron profile model`",
                       where, mt, mt - 1, nt);
    return GV_OK;
}

/* Galvatron's layer count of type t (its time model spreads the p2p time over them). */
static double gv_type_layers(const gv_cost_model *cm, int t) {
    if (cm->o.n_types > 1 && cm->o.type_layers[t] > 0) return cm->o.type_layers[t];
    return cm->o.n_layer > 0 ? cm->o.n_layer : 1;
}

void gv_strategy_str(const gv_strategy *s, char *buf, int n) {
    int t = gv_strategy_tsp(s);
    snprintf(buf, n, "%d-%d%s-%d%s%s%s", s->pp, t, t > 1 ? "*" : "", s->dp, s->zero == 3 ? "f" : "",
             s->ckpt ? "-c" : "", s->sp > 1 ? "-sp" : "");
}

/* ---- shared pieces ----------------------------------------------------------------------------------- */

static double gv_coe(const gv_hw_profile *hw, int g, int consec) {
    if (g <= 1) return 0;
    double c = hw->coe[gv_lg(g)][consec];
    return c > 0 ? c : 0;
}

/* Forward ms of `x` samples per rank (x may be fractional: lbsz / tsp). */
static double gv_fwd_ms(double m, double c, int linear, double x) {
    return linear ? m * x + c : c * x;
}

static double gv_act_bytes(const gv_cost_model *cm) {
    return cm->o.mixed_precision ? 2.0 : 4.0;
}

/* ---- Galvatron HEAD ---------------------------------------------------------------------------------- */

static double gv_g_overlap(double alpha, double msg_time, double bct) {
    double hi = msg_time > bct ? msg_time : bct, lo = msg_time > bct ? bct : msg_time;
    return hi + (alpha - 1) * lo;
}

/* HEAD's TimeCostModelBase in its own order of operations (times for L "dummy" layers, then / L), so the
 * values are the same doubles as Galvatron's and its comparisons and ties come out the same. */
static void gv_g_layer_time(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                            double *with_sync, double *no_sync) {
    const gv_layer_profile *mp = &cm->mp->lt[type];
    const gv_hw_profile *hw = cm->hw;
    int tsp = gv_strategy_tsp(s), sdp = gv_strategy_sdp(s);
    double L = gv_type_layers(cm, type);
    int lbsz = b->global_batch / b->chunks / s->dp; /* quirk: dp, not sdp (Galvatron's NOTE) */
    double param = mp->param_mb / s->tp;
    double fct =
        mp->fwd_linear ? (mp->fwd_m * ((double)lbsz / tsp) + mp->fwd_c) * L : mp->fwd_c * lbsz / tsp * L;
    double bct = fct * 2; /* bct_fct_coe */
    if (s->ckpt) bct += fct;
    double dp_msg = 2 * (sdp - 1) * (param / sdp) * L;
    if (cm->o.mixed_precision) dp_msg /= 2;
    double fsdp_ag = dp_msg * 0.5;
    double alpha = hw->overlap_coe;
    double dc = gv_coe(hw, sdp, s->tp != 1 ? 0 : 1), dc_overlap = dc * alpha;
    double tp_time = 0;
    if (tsp > 1) {
        double n = (s->tp == 1 ? 4 : 6) * L; /* quirk: Ulysses 4 all-to-alls (runtime does 8), Megatron 6 */
        if (s->ckpt) n *= 1.5;
        const gv_latency_table *t = s->tp == 1 ? &hw->a2a[gv_lg(s->sp)] : &hw->ag[gv_lg(s->tp)];
        double msg = (double)lbsz * cm->o.seq * cm->o.hidden * (cm->o.mixed_precision ? 2 : 4) / 1024 / 1024;
        tp_time = gv_latency_at(t, msg) * n;
    }
    double p2p_msg = 0, p2p_coe = 0;
    if (s->pp > 1) {
        p2p_coe = hw->p2p_coe[gv_lg(s->pp)] > 0 ? hw->p2p_coe[gv_lg(s->pp)] : 0;
        p2p_msg = (double)s->pp * 2 * lbsz * cm->o.seq * cm->o.hidden * 4 / 1024 / 1024;
        if (cm->o.mixed_precision) p2p_msg = p2p_msg / 2;
    }
    for (int f = 1; f >= 0; f--) {
        double msg = dp_msg * f, overlap = 0, rest = 0, T;
        if (s->dp > 1) { /* bct_dp_overlap */
            double dp_ov = msg * dc_overlap, bct_ov = bct * alpha;
            if (dp_ov > bct_ov) {
                overlap = bct_ov;
                rest = (msg - bct_ov / dc_overlap) * dc;
            } else if (dp_ov < bct_ov) {
                overlap = dp_ov;
                rest = bct - dp_ov / alpha;
            } else {
                overlap = bct_ov;
            }
        }
        if (tsp == 1 && s->dp > 1)
            T = fct + overlap + rest;
        else if (s->dp == 1 && tsp > 1) /* quirk: an Ulysses layer with dp 1 gets no DP time */
            T = fct + bct + tp_time;
        else if (s->dp == 1 && tsp == 1)
            T = fct + bct;
        else
            T = fct + overlap + rest + tp_time;
        if (s->zero == 3) T = T + fsdp_ag * dc;   /* quirk: never overlapped */
        if (s->pp > 1) T = T + p2p_msg * p2p_coe; /* quirk: not scaled by the dummy layer count */
        T = T * (0.001 * cm->o.costmodel_coe);
        T = T / L;
        if (f)
            *with_sync = T;
        else
            *no_sync = T;
    }
}

/* Galvatron's ZeRO memory ratios (reference §2.4). */
static double gv_g_zero_ratio(const gv_cost_model *cm, int zero, int d, int chunks) {
    if (zero == 0 || d <= 1) return 1.0;
    int mp = cm->o.mixed_precision;
    double x = 1.0 / d + 0.003;
    if (chunks == 1) {
        if (zero == 3) return x;
        return mp ? 7.0 / 8 * x + 1.0 / 8 : 3.0 / 4 * x + 1.0 / 4;
    }
    if (cm->o.async_grad_reduce) {
        if (zero == 3) return mp ? 7.0 / 8 * x + 1.0 / 8 : 3.0 / 4 * x + 1.0 / 4;
        return mp ? 6.0 / 8 * x + 2.0 / 8 : 2.0 / 4 * x + 2.0 / 4;
    }
    if (zero == 3) return x * 5.0 / 4;
    return mp ? (7.0 / 8 * x + 1.0 / 8) * 5.0 / 4 : 3.0 / 4 * x + 1.0 / 4;
}

static int gv_cum_num(const gv_cost_model *cm, int pp, int stage, int chunks) {
    if (pp == 1) return 1;
    return cm->o.pipeline == GV_SCHED_GPIPE ? chunks : pp - stage;
}

static double gv_act_of(const gv_layer_profile *mp, int tsp) {
    double a = mp->act_mb[gv_lg(tsp)];
    return a > 0 ? a : 0;
}

static void gv_split_states(double ms, gv_cost_mem *m) {
    /* Galvatron's model states are 4 P: split as its /4 reads them (param, grad, two Adam moments) */
    m->parameters = ms / 4;
    m->gradients = ms / 4;
    m->optimizer = ms / 2;
}

/* ---- own model --------------------------------------------------------------------------------------- */

/* Per-rank bytes per element: parameters, gradients, optimizer state (moments + fp32 master with mixed
 * precision). 16 in both cases, which is what Galvatron's "4 P" assumes. */
static void gv_elem_bytes(const gv_cost_model *cm, double *pb, double *gb, double *ob) {
    int mp = cm->o.mixed_precision;
    *pb = mp ? 2 : 4;
    *gb = mp ? 2 : 4;
    *ob = mp ? 12 : 8;
}

/* Time [ms] of a collective moving `mb` MB per rank over g ranks with bus-bandwidth coefficient coe. */
static double gv_ar_ms(double mb, int g, double coe) {
    return g > 1 ? 2.0 * (g - 1) / g * mb * coe : 0;
}
static double gv_half_ms(double mb, int g, double coe) { /* reduce-scatter or all-gather */
    return g > 1 ? (double)(g - 1) / g * mb * coe : 0;
}

/* Time of `elems` local elements' gradient sync / ZeRO traffic. per_mb: ZeRO-3 traffic of every
 * micro-batch (fwd gather, bwd gather, grad reduce-scatter); once per step: the gradient sums (all-reduce,
 * or ZeRO-2's reduce to each shard's rank, costed as a reduce-scatter), which the runtime's overlap starts
 * during the last backward, and ZeRO-1/2's weight gather after the optimizer, which nothing overlaps. */
static void gv_o_dp_ms(const gv_cost_model *cm, double elems, int zero, int sdp, double coe,
                       double *per_mb_fwd, double *per_mb_bwd, double *step_grads, double *step_weights) {
    double pb, gb, ob;
    gv_elem_bytes(cm, &pb, &gb, &ob);
    double pmb = elems * pb / GV_MB, gmb = elems * gb / GV_MB;
    *per_mb_fwd = *per_mb_bwd = *step_grads = *step_weights = 0;
    if (sdp <= 1) return;
    if (zero == 3) {
        *per_mb_fwd = gv_half_ms(pmb, sdp, coe);
        *per_mb_bwd = gv_half_ms(pmb, sdp, coe) + gv_half_ms(gmb, sdp, coe);
    } else if (zero == 2) {
        *step_grads = gv_half_ms(gmb, sdp, coe);
        *step_weights = gv_half_ms(pmb, sdp, coe);
    } else if (zero == 1) {
        *step_grads = gv_ar_ms(gmb, sdp, coe);
        *step_weights = gv_half_ms(pmb, sdp, coe);
    } else {
        *step_grads = gv_ar_ms(gmb, sdp, coe);
    }
}

static double gv_o_overlap(const gv_cost_model *cm, double comm, double comp) {
    if (!cm->o.overlap_grad_sync) return comm + comp;
    return gv_g_overlap(cm->hw->overlap_coe, comm, comp);
}

static double gv_opt_ms(const gv_cost_model *cm, double elems, int zero, int sdp) {
    double local = zero >= 1 && sdp > 1 ? elems / sdp : elems;
    return cm->mp->opt_ms_per_mparam * local / 1e6;
}

/* The project's measured line of (degree, split), or NULL. */
static int gv_own_line_ck(const gv_model_profile *mp, int tp, gv_sp_mode sp, int ckpt) {
    for (int k = 0; k < mp->n_own_time; k++)
        if (mp->own_time[k].tp == tp && (tp == 1 || mp->own_time[k].sp == sp) && mp->own_time[k].ckpt == ckpt)
            return k;
    return -1;
}
static int gv_own_line(const gv_model_profile *mp, int tp, gv_sp_mode sp) {
    return gv_own_line_ck(mp, tp, sp, 0);
}
static double gv_line(const double *l, double x) {
    return x > 0 ? l[0] * x + l[1] : 0;
}

static void gv_o_layer_time(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                            double *with_sync, double *no_sync) {
    const gv_model_profile *mp = cm->mp;
    const gv_layer_profile *lp = &mp->lt[type];
    const gv_hw_profile *hw = cm->hw;
    int tsp = gv_strategy_tsp(s), sdp = gv_strategy_sdp(s);
    double lbsz = (double)b->global_batch / b->chunks / s->dp;
    gv_sp_mode mode = s->sp > 1 ? GV_SP_ULYSSES : cm->o.sequence_parallel ? GV_SP_MEGATRON : GV_SP_NONE;
    /* recompute measured as such where profiled (on CPU the re-run forward is cheaper than the first: its
     * working set is warm), else backward + forward */
    int ck = s->ckpt ? gv_own_line_ck(mp, tsp, mode, 1) : -1,
        ck1 = s->ckpt ? gv_own_line_ck(mp, 1, mode, 1) : -1;
    int own = ck >= 0 ? ck : gv_own_line(mp, tsp, mode);
    int one = ck1 >= 0 ? ck1 : gv_own_line(mp, 1, GV_SP_NONE);
    int re = s->ckpt && (own >= 0 ? ck < 0 : one >= 0 ? ck1 < 0 : 1);
    double fct, bct;
    if (own >= 0) { /* measured at this degree and split: its collectives are inside */
        fct = gv_line(mp->own_time[own].lf[type], lbsz);
        bct = gv_line(mp->own_time[own].lb[type], lbsz);
    } else if (one >= 0) { /* the replica's share at degree 1, collectives below */
        fct = gv_line(mp->own_time[one].lf[type], lbsz / tsp);
        bct = gv_line(mp->own_time[one].lb[type], lbsz / tsp);
    } else {
        fct = gv_fwd_ms(lp->fwd_m, lp->fwd_c, lp->fwd_linear, lbsz / tsp);
        bct = 2 * fct;
    }
    if (re) bct += fct;
    /* activation of the layer's full micro-batch share (all positions) [MB] */
    double act = lbsz * cm->o.seq * (double)cm->o.hidden * gv_act_bytes(cm) / GV_MB;
    double tpc = 0;
    if (own >= 0 && tsp > 1)
        tpc = 0;
    else if (s->tp > 1) /* Megatron: 2 all-gather + 2 reduce-scatter (or 2 all-reduces) each way, again in
                           recompute */
        tpc = gv_latency_own(&hw->ag[gv_lg(s->tp)], act) * (s->ckpt ? 12 : 8);
    else if (s->sp > 1) /* Ulysses: q, k, v, out all-to-alls of this rank's 1/sp positions, each way */
        tpc = gv_latency_own(&hw->a2a[gv_lg(s->sp)], act / s->sp) * (s->ckpt ? 12 : 8);
    double elems = lp->param_mb * GV_MB / 4 / s->tp;
    double f_mb, b_mb, sg, sw;
    gv_o_dp_ms(cm, elems, s->zero, sdp, gv_coe(hw, sdp, s->tp != 1 ? 0 : 1), &f_mb, &b_mb, &sg, &sw);
    /* ZeRO-3's gathers overlap the compute they feed (the runtime prefetches the next layer) and its
     * reduce-scatter the next layer's backward; the step's gradient sums (DDP/ZeRO-1/2) start once the
     * layer's last backward is done and hide behind the layers below; ZeRO-1/2's weight gather follows the
     * optimizer. Without overlap every term adds up. */
    double c = gv_o_overlap(cm, f_mb, fct) + gv_o_overlap(cm, b_mb, bct) + tpc;
    double r = gv_o_overlap(cm, f_mb, fct) + gv_o_overlap(cm, b_mb + sg, bct) + sw + tpc;
    r += gv_opt_ms(cm, elems, s->zero, sdp);
    *no_sync = c * 0.001;
    *with_sync = r * 0.001;
}

/* ---- public ------------------------------------------------------------------------------------------ */

void gv_cost_layer_time(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                        double *with_sync, double *no_sync) {
    if (cm->o.mode == GV_COST_GALVATRON)
        gv_g_layer_time(cm, type, s, b, with_sync, no_sync);
    else
        gv_o_layer_time(cm, type, s, b, with_sync, no_sync);
}

void gv_cost_layer_memory(const gv_cost_model *cm, int type, const gv_strategy *s, const gv_cost_batch *b,
                          int stage, gv_cost_mem *m, double *transient) {
    const gv_layer_profile *mp = &cm->mp->lt[type];
    memset(m, 0, sizeof *m);
    *transient = 0;
    int tsp = gv_strategy_tsp(s), sdp = gv_strategy_sdp(s);
    int zero = sdp == 1 ? 0 : s->zero;
    int cum = gv_cum_num(cm, s->pp, stage, b->chunks);
    int seq_sharded = s->sp > 1 || (s->tp > 1 && cm->o.sequence_parallel);
    if (cm->o.mode == GV_COST_GALVATRON) {
        int lbsz = b->global_batch / b->chunks / s->dp;
        double ms = 4 * (mp->param_mb / s->tp) * gv_g_zero_ratio(cm, zero, sdp, b->chunks);
        gv_split_states(ms, m);
        double cl = (double)cum * lbsz;
        m->activations = s->ckpt ? mp->act_ckpt_mb * cl / (seq_sharded ? tsp : 1) : gv_act_of(mp, tsp) * cl;
        return;
    }
    double lbsz = (double)b->global_batch / b->chunks / s->dp;
    if (s->pp > 1 && cm->o.pipeline != GV_SCHED_GPIPE && cum > b->chunks) cum = b->chunks;
    double pb, gb, ob;
    gv_elem_bytes(cm, &pb, &gb, &ob);
    double elems = mp->param_mb * GV_MB / 4 / s->tp;
    /* the runtime's ZeRO-2 keeps the full gradient buffer (accumulated over micro-batches, reduce-scattered
     * once per step); only ZeRO-3 holds gradient pieces */
    int shard_grads = zero == 3;
    m->parameters = elems * pb / (zero == 3 ? sdp : 1) / GV_MB;
    m->gradients = elems * gb / (shard_grads ? sdp : 1) / GV_MB;
    m->optimizer = elems * ob / (zero >= 1 ? sdp : 1) / GV_MB;
    m->activations =
        s->ckpt ? mp->act_ckpt_mb * cum * lbsz / (seq_sharded ? tsp : 1) : gv_act_of(mp, tsp) * cum * lbsz;
    if (s->ckpt) *transient += gv_act_of(mp, tsp) * lbsz; /* recompute refills one layer's activations */
    /* gathered parameters + full gradient slot; with the runtime's overlap a second one (the next layer's
     * prefetched gather, the previous one's gradients). The runtime holds it in a ZeRO-3 run of 2+ layers
     * (gv_cost_runtime_memory); a lone ZeRO-3 layer is counted with it too (one slot over) */
    if (zero == 3) *transient += (cm->o.overlap ? 2 : 1) * elems * (pb + gb) / GV_MB;
    if (cm->o.spec) { /* the part's backward scratch and staging, held once */
        gv_layer_strategy l = {tsp,
                               s->sp > 1     ? GV_SP_ULYSSES
                               : seq_sharded ? GV_SP_MEGATRON
                                             : GV_SP_NONE,
                               zero, 0};
        *transient +=
            gv_cost_runtime_scratch(&cm->o, cm->o.spec, &l, cm->o.world / s->pp, b->global_batch / b->chunks);
    }
}

/* Which "other" profile row a stage uses: 0 pp off, 1 first, 2 last, -1 none (middle stage). */
static int gv_other_row(int pp, int stage) {
    if (pp == 1) return 0;
    if (stage == 0) return 1;
    if (stage == pp - 1) return 2;
    return -1;
}

static double gv_row_val(const double *row, int deg) {
    double v = row[gv_lg(deg)];
    return v > 0 ? v : 0;
}

void gv_cost_other_time(const gv_cost_model *cm, const gv_strategy *s, const gv_cost_batch *b,
                        double *with_sync, double *no_sync) {
    const gv_model_profile *mp = cm->mp;
    const gv_hw_profile *hw = cm->hw;
    int pp = s->pp, tsp = gv_strategy_tsp(s), sdp = gv_strategy_sdp(s);
    int galv = cm->o.mode == GV_COST_GALVATRON;
    double lbsz =
        galv ? (double)(b->global_batch / b->chunks / s->dp) : (double)b->global_batch / b->chunks / s->dp;
    double fct_total = gv_fwd_ms(mp->other_m, mp->other_c, mp->lt[0].fwd_linear, lbsz / tsp / s->cp);
    double alpha = hw->overlap_coe;
    double coe = gv_coe(hw, sdp, s->tp != 1 ? 0 : 1);
    double act = lbsz * cm->o.seq * (double)cm->o.hidden * gv_act_bytes(cm) / GV_MB;
    double ag = s->tp > 1 ? (galv ? gv_latency_at : gv_latency_own)(&hw->ag[gv_lg(s->tp)], act) : 0;
    for (int k = 0; k < pp; k++) {
        int row = gv_other_row(pp, k);
        with_sync[k] = no_sync[k] = 0;
        if (row < 0) continue;
        double fct = pp == 1 ? fct_total : fct_total / 2;
        double ms = gv_row_val(mp->other_ms_mb[row], s->tp);
        /* own: the share of this end of the pipeline (embedding first, head and loss last), measured */
        double share[2] = {pp == 1 ? 1 : 0.5, pp == 1 ? 1 : 0.5};
        if (!galv && pp > 1 && mp->have_vocab_split)
            for (int d = 0; d < 2; d++) share[d] = row == 1 ? mp->vocab_first[d] : 1 - mp->vocab_first[d];
        if (galv) {
            double dp_coe = coe * (sdp > 1 ? (double)(sdp - 1) / sdp : 0);
            double dp_msg = ms / 4 * (cm->o.mixed_precision ? 0.5 : 1);
            double fw = s->zero == 3 ? 0.5 : 0, bw = s->zero == 3 ? 1.0 : 0.5;
            double tpsp = ag * (pp == 1 ? 2 : 1); /* quirk: one all-gather per end; Ulysses costs nothing */
            for (int f = 1; f >= 0; f--) {
                double bwf = f ? bw : bw - 0.5;
                double fc = dp_msg * dp_coe * fw, bc = dp_msg * dp_coe * bwf;
                double g1 = fc + fmax(0, alpha * fct - fc) / alpha;
                double g2 = bc + fmax(0, alpha * 2 * fct - bc) / alpha;
                double t = 0.001 * (g1 + g2 + tpsp);
                if (f)
                    with_sync[k] = t;
                else
                    no_sync[k] = t;
            }
            continue;
        }
        /* own: vocab parameters from the profiled model states (16 bytes per element) */
        double elems = ms * GV_MB / 16;
        double f_mb, b_mb, sg, sw;
        gv_o_dp_ms(cm, elems, sdp > 1 ? s->zero : 0, sdp, coe, &f_mb, &b_mb, &sg, &sw);
        double tpc = ag * 2 * (pp == 1 ? 2 : 1); /* an all-gather / reduce-scatter each way at each end */
        fct = fct_total * share[0];
        double bct = 2 * fct_total * share[1];
        gv_sp_mode mode = s->sp > 1 ? GV_SP_ULYSSES : cm->o.sequence_parallel ? GV_SP_MEGATRON : GV_SP_NONE;
        int own = gv_own_line(mp, tsp, mode), one = gv_own_line(mp, 1, GV_SP_NONE);
        if (own >= 0 || one >= 0) { /* measured; at the strategy's degree its collectives are inside */
            int k = own >= 0 ? own : one;
            double x = own >= 0 ? lbsz : lbsz / tsp;
            fct = gv_line(mp->own_time[k].of, x) * share[0];
            bct = gv_line(mp->own_time[k].ob, x) * share[1];
            if (own >= 0 && tsp > 1) tpc = 0;
        }
        /* the runtime overlaps nothing here: the vocab units' ZeRO-3 gathers wait, and the embedding's
         * gradient sum starts after the whole backward (the hybrid adds the tied copy's gradient first) */
        double c = f_mb + fct + b_mb + bct + tpc;
        no_sync[k] = 0.001 * c;
        with_sync[k] = 0.001 * (c + sg + sw + gv_opt_ms(cm, elems, s->zero, sdp));
    }
}

void gv_cost_other_memory(const gv_cost_model *cm, const gv_strategy *s, const gv_cost_batch *b,
                          gv_cost_mem *per_stage) {
    const gv_model_profile *mp = cm->mp;
    int pp = s->pp, tsp = gv_strategy_tsp(s), sdp = gv_strategy_sdp(s);
    int zero = sdp == 1 ? 0 : s->zero;
    int galv = cm->o.mode == GV_COST_GALVATRON;
    double lbsz =
        galv ? (double)(b->global_batch / b->chunks / s->dp) : (double)b->global_batch / b->chunks / s->dp;
    for (int k = 0; k < pp; k++) {
        gv_cost_mem *m = &per_stage[k];
        memset(m, 0, sizeof *m);
        m->workspace = cm->o.context_mb;
        int row = gv_other_row(pp, k);
        if (row < 0) continue;
        int cum = 1;
        if (pp > 1) cum = cm->o.pipeline == GV_SCHED_GPIPE ? b->chunks : (k == 0 ? pp : 1);
        if (!galv && cum > b->chunks) cum = b->chunks;
        double ms = gv_row_val(mp->other_ms_mb[row], s->tp);
        m->activations = gv_row_val(mp->other_act_mb[row], tsp) * cum * lbsz;
        if (galv) {
            gv_split_states(ms * gv_g_zero_ratio(cm, zero, sdp, b->chunks), m);
            continue;
        }
        double pb, gb, ob;
        gv_elem_bytes(cm, &pb, &gb, &ob);
        double elems = ms * GV_MB / 16;
        int shard_grads = zero == 3;
        m->parameters = elems * pb / (zero == 3 ? sdp : 1) / GV_MB;
        m->gradients = elems * gb / (shard_grads ? sdp : 1) / GV_MB;
        m->optimizer = elems * ob / (zero >= 1 ? sdp : 1) / GV_MB;
    }
    /* (own: no gradient buckets; the runtime all-reduces its gradient buffer in place) */
}

double gv_cost_global_buffer(const gv_cost_model *cm, const gv_cost_batch *b, int pp, int g) {
    if (!cm->o.sequence_parallel || !cm->o.global_memory_buffer || g < 1) return 0;
    int dp = cm->o.world / pp / g;
    double lbsz = (double)b->global_batch / b->chunks / dp;
    double mb = lbsz * cm->o.hidden * (double)cm->o.seq * 4 / GV_MB;
    return cm->o.mixed_precision ? mb / 2 : mb;
}

/* Galvatron's match_strategy (dynamic_programming.py) for the tie-break biases. */
static int gv_same(const gv_strategy *a, const gv_strategy *b, int pp, int tsp, int dp, int ck, int dpt,
                   int sp, int tp) {
    if (pp && a->pp != b->pp) return 0;
    if (tsp && gv_strategy_tsp(a) != gv_strategy_tsp(b)) return 0;
    if (dp && a->dp != b->dp) return 0;
    if (ck && a->ckpt != b->ckpt) return 0;
    if (dpt && a->zero != b->zero) return 0;
    if (sp && a->sp != b->sp) return 0;
    if (tp && a->tp != b->tp) return 0;
    return 1;
}
enum { GV_M_SP, GV_M_FSDP, GV_M_CPT, GV_M_FSDP_CPT };
static int gv_match(const gv_strategy *a, const gv_strategy *b, int which) {
    switch (which) {
    case GV_M_SP:
        return gv_same(a, b, 1, 1, 1, 1, 1, 0, 0) && !gv_same(a, b, 0, 0, 0, 0, 0, 1, 0);
    case GV_M_FSDP:
        return gv_same(a, b, 1, 0, 1, 1, 0, 1, 1) && !gv_same(a, b, 0, 0, 0, 0, 1, 0, 0);
    case GV_M_CPT:
        return gv_same(a, b, 1, 0, 1, 0, 1, 1, 1) && !gv_same(a, b, 0, 0, 0, 1, 0, 0, 0);
    default:
        return gv_same(a, b, 1, 0, 1, 0, 0, 1, 1) && !gv_same(a, b, 0, 0, 0, 1, 1, 0, 0);
    }
}

static int gv_strategy_eq(const gv_strategy *a, const gv_strategy *b) {
    return a->pp == b->pp && a->tp == b->tp && a->sp == b->sp && a->cp == b->cp && a->dp == b->dp &&
           a->zero == b->zero && a->ckpt == b->ckpt;
}

double gv_cost_inter(const gv_cost_model *cm, const gv_strategy *a, const gv_strategy *b,
                     const gv_cost_batch *bt) {
    if (gv_strategy_eq(a, b)) return 0;
    int ta = gv_strategy_tsp(a), tb = gv_strategy_tsp(b);
    int T = ta > tb ? ta : tb;
    int dp = cm->o.world / a->pp / T;
    double lb = (double)bt->global_batch / bt->chunks / dp;
    if (cm->o.mode == GV_COST_GALVATRON) {
        if (cm->o.sequence_parallel && ta != tb) {
            double sample = (double)cm->o.seq * cm->o.hidden * (cm->o.mixed_precision ? 2 : 4);
            double bytes = (T - 1.0) / T * lb * sample;
            return bytes * (gv_coe(cm->hw, T, 1) * 1e-7); /* quirk: bytes x ms/MB x 1e-7 */
        }
        double r = 0;
        if (gv_match(a, b, GV_M_SP) && b->sp > 1) r = 1e-10;
        if (gv_match(a, b, GV_M_FSDP) && b->zero == 3) r = 1e-9;
        if (gv_match(a, b, GV_M_CPT) && b->ckpt) r = 2e-9;
        if (gv_match(a, b, GV_M_FSDP_CPT) && b->zero == 3 && b->ckpt) r = 3e-9;
        if (gv_match(a, b, GV_M_FSDP_CPT) && !gv_match(a, b, GV_M_FSDP) && !gv_match(a, b, GV_M_CPT) &&
            a->zero == 3 && b->ckpt)
            r = 1e-9;
        return r;
    }
    /* own: the real exchange. Sequence-sharded layouts of the same group are compatible; a plain-TP layer
     * (activations replicated over its group) after a sharded one needs them gathered. */
    int a_sh = a->sp > 1 || (a->tp > 1 && cm->o.sequence_parallel);
    int b_sh = b->sp > 1 || (b->tp > 1 && cm->o.sequence_parallel);
    if (ta == tb && (a_sh == b_sh || !a_sh || ta == 1)) return 0;
    if (T == 1) return 0;
    double mb = lb * cm->o.seq * (double)cm->o.hidden * gv_act_bytes(cm) / GV_MB;
    return 2 * gv_latency_own(&cm->hw->ag[gv_lg(T)], mb) * 0.001; /* forward gather, backward reverse */
}

double gv_cost_fixed(const gv_cost_model *cm) {
    return cm->o.mode == GV_COST_OWN ? cm->mp->step_fixed_ms * 0.001 : 0;
}

/* numpy's np.sum of a float64 array (pairwise: 8 running sums in blocks of up to 128), which Galvatron uses
 * for stage times; the same rounding keeps its comparisons. */
static double gv_np_sum(const double *a, int n) {
    if (n < 8) {
        double r = 0.;
        for (int i = 0; i < n; i++) r += a[i];
        return r;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++) r[j] = a[j];
        int i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int n2 = n / 2;
    n2 -= n2 % 8;
    return gv_np_sum(a, n2) + gv_np_sum(a + n2, n - n2);
}

double gv_cost_pipeline(const gv_cost_model *cm, int pp, int m, const double *R, const double *C,
                        double fixed_s) {
    if (cm->o.mode == GV_COST_GALVATRON) { /* pipeline_costmodel, in its order of operations */
        double sum = gv_np_sum(C, pp), rest = gv_np_sum(C + 1, pp - 1);
        double T = sum + C[pp - 1] * (m - 1);
        int k = (pp - 1) < (m - 1) ? pp - 1 : m - 1;
        double T2 = fmax(k * C[0] * 1 / 3, rest * 1 / 3) + fmax(k * C[0] * 2 / 3, rest * 2 / 3) +
                    C[0] * (m + 1 - pp > 0 ? m + 1 - pp : 0);
        T = fmax(T, T2);
        double ex = -INFINITY;
        for (int i = 0; i < pp; i++) ex = fmax(ex, R[i] - gv_np_sum(C, i + 1));
        return T + (ex > 0 ? ex : 0);
    }
    /* own: the last micro-batch fills and drains the pipeline (sum of stage times); the other m-1 pass
     * at the slowest stage's pace; a stage's gradient sync after its last backward is exposed unless the
     * backwards of the stages before it (which finish later) cover it. */
    double sum = 0, mx = 0, ex = 0, before = 0;
    for (int i = 0; i < pp; i++) {
        sum += C[i];
        mx = fmax(mx, C[i]);
    }
    for (int i = 0; i < pp; i++) {
        ex = fmax(ex, (R[i] - C[i]) - before);
        before += C[i] * 2.0 / 3.0;
    }
    return sum + (m - 1) * mx + ex + fixed_s;
}

void gv_plan_strategies(const gv_plan *p, gv_strategy *layers, gv_strategy *vocab) {
    for (int i = 0; i <= p->n_layer; i++) {
        const gv_layer_strategy *l = i < p->n_layer ? &p->layers[i] : &p->vocab;
        gv_strategy *s = i < p->n_layer ? &layers[i] : vocab;
        s->pp = p->pp;
        s->cp = 1;
        int t = l->tp;
        s->tp = l->sp == GV_SP_ULYSSES ? 1 : t;
        s->sp = l->sp == GV_SP_ULYSSES ? t : 1;
        s->dp = p->world / p->pp / t;
        s->zero = l->zero;
        s->ckpt = i < p->n_layer ? l->ckpt : 0;
    }
}

gv_status gv_cost_plan(const gv_cost_model *cm, const gv_plan *p, int gtp, gv_plan_cost *out) {
    if (p->pp > 64) return gv_fail(GV_ERR_UNSUPPORTED, "cost: pp %d > 64 stages", p->pp);
    memset(out, 0, sizeof *out);
    static _Thread_local gv_strategy ls[4096];
    static _Thread_local double lw[4096], ln[4096];
    gv_strategy vs;
    if (p->n_layer > 4096) return gv_fail(GV_ERR_UNSUPPORTED, "cost: more than 4096 layers");
    gv_plan_strategies(p, ls, &vs);
    gv_cost_batch b = {p->global_batch, p->micro_batches};
    double ow[64], on[64];
    gv_cost_mem om[64];
    gv_cost_other_time(cm, &vs, &b, ow, on);
    gv_cost_other_memory(cm, &vs, &b, om);
    double gbuf = gv_cost_global_buffer(cm, &b, p->pp, gtp);
    int galv = cm->o.mode == GV_COST_GALVATRON;
    out->pp = p->pp;
    int l = 0;
    for (int k = 0; k < p->pp; k++) {
        double R = galv ? 0 : ow[k], C = galv ? 0 : on[k], trans = 0, mem = 0;
        int l0 = l;
        gv_cost_mem *sm = &out->mem[k];
        *sm = om[k];
        for (int j = 0; j < p->stage_layers[k]; j++, l++) {
            double w, n, t;
            int ty = gv_cost_layer_type(&cm->o, l);
            gv_cost_layer_time(cm, ty, &ls[l], &b, &w, &n);
            if (!galv && j > 0) {
                double x = gv_cost_inter(cm, &ls[l - 1], &ls[l], &b);
                w += x;
                n += x;
            }
            R += w;
            C += n;
            if (galv) {
                lw[l - l0] = w;
                ln[l - l0] = n;
            }
            gv_cost_mem lm;
            gv_cost_layer_memory(cm, ty, &ls[l], &b, k, &lm, &t);
            sm->parameters += lm.parameters;
            sm->gradients += lm.gradients;
            sm->optimizer += lm.optimizer;
            sm->activations += lm.activations;
            mem += ceil(gv_cost_mem_total(&lm));
            trans = fmax(trans, t);
        }
        if (galv) { /* np.sum over the stage's layers, then the vocab layers' time */
            R = gv_np_sum(lw, l - l0);
            C = gv_np_sum(ln, l - l0) + on[k];
        }
        if (!galv && p->stage_layers[k] > 0) { /* own: the vocab layers' layout to the first layer and from
                                                   the last (embedding on stage 0, head on the last) */
            double x = 0;
            if (k == 0) x += gv_cost_inter(cm, &vs, &ls[l0], &b);
            if (k == p->pp - 1) x += gv_cost_inter(cm, &ls[l - 1], &vs, &b);
            R += x;
            C += x;
        }
        if (!galv && p->pp > 1) { /* activations to / from the neighbours, forward and backward */
            int nb = (k > 0) + (k < p->pp - 1);
            double mb = (double)p->global_batch / p->micro_batches / (p->world / p->pp) * cm->o.seq *
                        cm->o.hidden * gv_act_bytes(cm) / GV_MB;
            double c = cm->hw->p2p_coe[gv_lg(p->pp)];
            double t = 2.0 * nb * mb * (c > 0 ? c : 0) * 0.001;
            /* The runtime's messages are nonblocking with overlap (receives posted two micro-batches
             * ahead, sends waited before their buffer is reused): on a device communicator they run on
             * streams of their own beside the stage's compute (overlap_grad_sync, with the overlap
             * slowdown); otherwise (mpi progresses only inside its calls) they add up. */
            R = gv_o_overlap(cm, t, R);
            C = gv_o_overlap(cm, t, C);
        }
        sm->workspace += trans;
        sm->comm += gbuf;
        out->stage_r[k] = R;
        out->stage_c[k] = C;
        out->mem_total[k] = mem + ceil(trans) + ceil(gv_cost_mem_total(&om[k])) + (int)gbuf;
    }
    if (!galv && cm->o.spec) /* the runtime's own allocations replace the per-layer figures */
        for (int k = 0; k < p->pp; k++) {
            gv_memory_report r;
            GV_TRY(gv_cost_runtime_memory(&cm->o, cm->o.spec, p, k, &r));
            gv_cost_mem *sm = &out->mem[k];
            sm->parameters = r.parameters / GV_MB;
            sm->gradients = r.gradients / GV_MB;
            sm->optimizer = r.optimizer / GV_MB;
            sm->activations = r.activations / GV_MB;
            sm->workspace = r.workspace / GV_MB + cm->o.context_mb;
            sm->comm = r.comm / GV_MB + gbuf;
            out->mem_total[k] = gv_cost_mem_total(sm);
        }
    out->step_s =
        gv_cost_pipeline(cm, p->pp, p->micro_batches, out->stage_r, out->stage_c, gv_cost_fixed(cm));
    out->throughput = out->step_s > 0 ? p->global_batch / out->step_s : 0;
    return GV_OK;
}
