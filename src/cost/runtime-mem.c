/* The runtime's memory by formula: the arenas src/runtime/model.c reserves for one part of a stage (its
 * parameter table, ZeRO padding and units, activation sets, backward scratch, sequence-parallel staging)
 * and the staging src/runtime/hybrid.c adds for the stage (host or device blocks, by its host_redist switch),
 * reserved in the same order with the same
 * 256-byte alignment, so the own cost model predicts the memory report byte for byte. test_cost_runtime
 * compares it with the runtime's report: a change of the runtime's allocations shows there. */
#include <stdlib.h>
#include <string.h>

#include "gv/backend.h"
#include "gv/cost.h"

#define GV_RT_ALIGN 256

#define GV_TRY_FREE(call, mem)                                                                               \
    do {                                                                                                     \
        gv_status gv_st_ = (call);                                                                           \
        if (gv_st_ != GV_OK) {                                                                               \
            free(mem);                                                                                       \
            return gv_st_;                                                                                   \
        }                                                                                                    \
    } while (0)

/* gv_arena_reserve on a size alone. */
static size_t gv_rt_reserve(size_t *size, size_t bytes) {
    size_t off = (*size + GV_RT_ALIGN - 1) / GV_RT_ALIGN * GV_RT_ALIGN;
    *size = off + bytes;
    return off;
}

static size_t gv_rt_up(size_t x, size_t a) {
    return (x + a - 1) / a * a;
}

typedef struct {
    int l0, l1, embed, head;
    gv_layer_strategy st;
} gv_rt_part;

static int gv_rt_same(const gv_layer_strategy *a, const gv_layer_strategy *b) {
    return a->tp == b->tp && a->sp == b->sp && a->zero == b->zero;
}

/* hybrid.c's gv_stage_parts: runs of layers with the same (tp, sp, zero); the vocab layers join the
 * adjacent run with their strategy, else form their own part. *last: the part whose layout the stage's
 * output has (the last one executed). */
static int gv_rt_parts(const gv_plan *p, int s, gv_rt_part *parts, int *last) {
    int a = 0;
    for (int i = 0; i < s; i++) a += p->stage_layers[i];
    int b = a + p->stage_layers[s], n = 0;
    int first = s == 0, lst = s == p->pp - 1;
    const gv_layer_strategy *v = &p->vocab;
    int uniform = 1;
    for (int l = a + 1; l < b; l++) uniform &= gv_rt_same(&p->layers[l], &p->layers[a]);
    if (p->pp == 1 && uniform && gv_rt_same(&p->layers[a], v)) {
        parts[0] = (gv_rt_part){a, b, 1, 1, *v};
        *last = 0;
        return 1;
    }
    int vocab_part = -1, merge_embed = 0, merge_head = 0;
    if (p->pp == 1) {
        vocab_part = n;
        parts[n++] = (gv_rt_part){a, a, 1, 1, *v};
    } else {
        merge_embed = first && gv_rt_same(&p->layers[a], v);
        merge_head = lst && gv_rt_same(&p->layers[b - 1], v);
        if (first && !merge_embed) parts[n++] = (gv_rt_part){a, a, 1, 0, *v};
    }
    for (int l = a; l < b;) {
        int r = l + 1;
        while (r < b && gv_rt_same(&p->layers[r], &p->layers[l])) r++;
        int emb = merge_embed && l == a, hd = merge_head && r == b;
        parts[n] = (gv_rt_part){l, r, emb, hd, p->layers[l]};
        *last = n++;
        l = r;
    }
    if (vocab_part >= 0) {
        *last = vocab_part;
    } else if (lst && !merge_head) {
        parts[n] = (gv_rt_part){b, b, 0, 1, *v};
        *last = n++;
    }
    return n;
}

/* hybrid.c's gv_link_direct: the link from stage s to s + 1 keeps its layout (the last part of s and the
 * first of s + 1 have the same tp degree and sequence sharding), so its messages are device tensors. */
static gv_status gv_rt_link_direct(const gv_plan *p, int s, int *direct) {
    int n = p->n_layer + 2, la = 0, lb = 0;
    gv_rt_part *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return gv_fail(GV_ERR_NOMEM, "cost: out of host memory");
    }
    gv_rt_parts(p, s, a, &la);
    gv_rt_parts(p, s + 1, b, &lb);
    const gv_layer_strategy *x = &a[la].st, *y = &b[0].st;
    int xs = x->tp > 1 && x->sp != GV_SP_NONE, ys = y->tp > 1 && y->sp != GV_SP_NONE;
    *direct = b[0].l1 > b[0].l0 && !b[0].embed && x->tp == y->tp && xs == ys;
    free(a);
    free(b);
    return GV_OK;
}

static size_t gv_rt_stash(const gv_cost_opts *o, int B, int T, int H) {
    if (o->backend) return gv_attention_stash_bytes(o->backend, B, T, H);
    return (size_t)B * H * T * T * sizeof(float); /* the CPU backend's attention probabilities */
}

/* T5's general attention (gv_attn_ext) over T positions of H heads. */
static size_t gv_rt_stash_ext(const gv_cost_opts *o, int B, int T, int H, int KVH, int D, int ld) {
    gv_attn_ext a = {B, T, T, H, KVH, D, ld, ld, ld, 1.0f, 0};
    if (o->backend) return gv_attention_ext_stash_bytes(o->backend, &a);
    return (size_t)B * H * T * T * sizeof(float);
}

/* One part's arenas (model.c, gv_model_init_dist with the B, T and groups hybrid.c gives it). S: ranks of
 * the stage, Bm: micro-batch rows of the stage, K: activation sets. *tie: the token embedding's (or its
 * tied copy's) local elements. */
static void gv_rt_part_mem(const gv_cost_opts *o, const gv_model_spec *s, const gv_plan *p,
                           const gv_rt_part *pt, int S, int Bm, int T, int K, gv_memory_report *r,
                           size_t *tie) {
    size_t e = o->mixed_precision ? 2 : 4;
    int t = pt->st.tp, uly = pt->st.sp == GV_SP_ULYSSES && t > 1;
    int tp = uly ? 1 : t, sp = uly ? t : 1;
    int dp = uly || t == 1 ? S : S / t; /* Ulysses' parameters are replicated over the whole sequence group */
    int B = Bm / (S / t), Tl = uly ? T / t : T;
    int zero = dp > 1 ? pt->st.zero : 0;
    int msp = tp > 1 && pt->st.sp == GV_SP_MEGATRON;
    int has_embed = pt->embed, has_head = pt->head, nl = pt->l1 - pt->l0;
    int vp = tp > 1 && (has_embed || has_head);
    int C = s->n_embd, H = s->n_head, KVH = s->n_kv_head, D = C / H, F = s->ffn;
    int Hl = H / tp, KVHl = KVH / tp, Fl = F / tp, QKVl = (Hl + 2 * KVHl) * D;
    int F2l = s->act == GV_ACT_SWIGLU ? 2 * Fl : Fl, Vpl = vp ? s->padded_vocab / tp : s->padded_vocab;
    int ln = s->norm == GV_NORM_LAYERNORM, bias = s->bias;
    int Hs = H / sp, KVHs = KVH / sp, QKVs = (Hs + 2 * KVHs) * D, QKV = (H + 2 * KVH) * D;
    /* T5: encoder layers [0, Le); a part holds the encoder's end (layer Le - 1) and/or decoder layers */
    int t5 = s->arch == GV_ARCH_T5, Le = t5 ? s->n_layer - s->n_dec_layer : s->n_layer;
    int enc_end = t5 && pt->l0 < Le && pt->l1 >= Le, has_dec = t5 && pt->l1 > Le;

    /* parameter table in model.c's order, with ZeRO-3 units (0 embeddings, 1..nl layers, nl+1 head) */
    size_t sizes[16 * 64 + 8];
    int units[16 * 64 + 8], np = 0;
    size_t *sz = sizes;
    size_t *big = NULL;
    int *bigu = NULL;
    int cap = 16 * nl + 8;
    if (cap > 16 * 64 + 8) {
        big = malloc((size_t)cap * sizeof *big);
        bigu = malloc((size_t)cap * sizeof *bigu);
        if (!big || !bigu) {
            free(big);
            free(bigu);
            memset(r, 0, sizeof *r);
            return;
        }
        sz = big;
    }
    int *un = bigu ? bigu : units;
#define ADD(n, u) (sz[np] = (size_t)(n), un[np++] = (u))
    *tie = 0;
    if (has_embed) {
        ADD((size_t)Vpl * C, 0);
        *tie = (size_t)Vpl * C;
        if (s->pos == GV_POS_LEARNED && !t5) ADD((size_t)s->max_seq * C, 0); /* T5: relative bias */
    }
    for (int j = 0; t5 && j < nl; j++) { /* gv_t5_params */
        int u = j + 1, l = pt->l0 + j, dec = l >= Le;
        ADD(C, u);
        ADD((size_t)QKVl * C, u);
        ADD((size_t)C * Hl * D, u);
        if (l == 0 || l == Le || j == 0) ADD((size_t)s->rel_buckets * Hl, u); /* bias table or its copy */
        if (dec) {
            ADD(C, u);
            ADD((size_t)Hl * D * C, u);
            ADD((size_t)2 * KVHl * D * C, u);
            ADD((size_t)C * Hl * D, u);
        }
        ADD(C, u);
        ADD((size_t)Fl * C, u);
        ADD((size_t)C * Fl, u);
        if (l == Le - 1) ADD(C, u);
    }
    for (int j = 0; !t5 && j < nl; j++) {
        int u = j + 1;
        ADD(C, u);
        if (ln) ADD(C, u);
        ADD((size_t)QKVl * C, u);
        if (bias) ADD(QKVl, u);
        ADD((size_t)C * Hl * D, u);
        if (bias) ADD(C, u);
        ADD(C, u);
        if (ln) ADD(C, u);
        ADD((size_t)F2l * C, u);
        if (bias) ADD(F2l, u);
        ADD((size_t)C * Fl, u);
        if (bias) ADD(C, u);
    }
    if (has_head) {
        ADD(C, nl + 1);
        if (ln && !t5) ADD(C, nl + 1);
        if (!(s->tied && has_embed)) { /* untied head, or the tied copy of another part's embedding */
            ADD((size_t)Vpl * C, nl + 1);
            if (s->tied) *tie = (size_t)Vpl * C;
        }
    }
#undef ADD
    size_t elems = 0, ualign = (size_t)dp * 64, shard, ustart = 0, slot[4] = {0, 0, 0, 0}, shsp = 0;
    for (int i = 0; i < np; i++) {
        int u = un[i];
        if (zero == 3 && (i == 0 || un[i - 1] != u)) ustart = elems = gv_rt_up(elems, ualign);
        elems += gv_rt_up(sz[i], 64); /* every view 256-byte aligned in fp32 */
        if (zero == 3 && (i + 1 == np || un[i + 1] != u)) {
            size_t us = gv_rt_up(elems - ustart, ualign);
            int k = u == 0 ? 0 : u == nl + 1 ? 2 : 1;
            if (us > slot[k]) slot[k] = us;
            shsp += us / (size_t)dp;
        }
    }
    free(big);
    free(bigu);
    /* overlap: a second layer slot, the prefetched next layer's gather and the previous one's gradients */
    if (zero == 3 && o->overlap && nl >= 2) slot[3] = slot[1];
    elems = gv_rt_up(elems, ualign);
    shard = zero == 3 ? shsp : zero ? elems / (size_t)dp : elems;
    size_t pa = 0, ga = 0, oa = 0, aa = 0, wa = 0, ca = 0;
    size_t persist = zero == 3 ? shard : elems;
    gv_rt_reserve(&pa, persist * e);
    gv_rt_reserve(&ga, persist * e);
    for (int k = 0; k < 4; k++) {
        gv_rt_reserve(&pa, slot[k] * e);
        gv_rt_reserve(&ga, slot[k] * e);
    }
    if (e != 4) gv_rt_reserve(&oa, shard * 4); /* fp32 master weights */
    gv_rt_reserve(&oa, shard * 4);
    gv_rt_reserve(&oa, shard * 4);

    /* one activation set */
    size_t N = (size_t)B * Tl, Nl = msp ? N / tp : N, Cs = (size_t)C;
    if (has_embed) {
        gv_rt_reserve(&aa, N * 4);
        gv_rt_reserve(&aa, Nl * Cs * e);
        if (msp) gv_rt_reserve(&aa, N * Cs * e);
    } else {
        gv_rt_reserve(&aa, Nl * Cs * e);
    }
    if (has_head && has_embed && nl == 0) gv_rt_reserve(&aa, Nl * Cs * e);
    if (msp) {
        gv_rt_reserve(&aa, N * Cs * e);
        gv_rt_reserve(&aa, N * Cs * e);
    }
    if (tp > 1) gv_rt_reserve(&aa, Nl * Cs * e); /* the projections' view (model.c: o_proj) */
    size_t stash = sp > 1 ? gv_rt_stash(o, B, Tl * sp, Hs) : gv_rt_stash(o, B, Tl, Hl);
    if (t5)
        stash = sp > 1 ? gv_rt_stash_ext(o, B, Tl * sp, Hs, KVHs, D, QKVs)
                       : gv_rt_stash_ext(o, B, Tl, Hl, KVHl, D, QKVl);
    size_t NF = (size_t)B * Tl * sp;
    int have_shared = 0;
    for (int j = 0; j < nl; j++) {
        int ck = p->layers[pt->l0 + j].ckpt != 0;
        if (ck && have_shared) { /* recompute: only the output, the rest in the shared set */
            gv_rt_reserve(&aa, Nl * Cs * e);
            continue;
        }
        gv_rt_reserve(&aa, Nl * Cs * e);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, N * (size_t)QKVl * e);
        if (s->pos == GV_POS_ROPE) gv_rt_reserve(&aa, N * (size_t)QKVl * e);
        gv_rt_reserve(&aa, stash);
        gv_rt_reserve(&aa, N * (size_t)(Hl * D) * e);
        if (sp > 1) {
            gv_rt_reserve(&aa, NF * (size_t)QKVs * e);
            gv_rt_reserve(&aa, NF * (size_t)(Hs * D) * e);
        }
        gv_rt_reserve(&aa, Nl * Cs * e);
        gv_rt_reserve(&aa, Nl * Cs * e);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, N * (size_t)F2l * e);
        gv_rt_reserve(&aa, N * (size_t)Fl * e);
        gv_rt_reserve(&aa, Nl * Cs * e);
        if (t5 && (pt->l0 + j >= Le || ck)) { /* cross-attention */
            size_t HD = (size_t)Hl * D, KD = (size_t)KVHl * D;
            gv_rt_reserve(&aa, Nl * Cs * e);
            gv_rt_reserve(&aa, Nl * 4);
            gv_rt_reserve(&aa, N * HD * e);
            gv_rt_reserve(&aa, N * 2 * KD * e);
            gv_rt_reserve(&aa, N * HD * e);
            gv_rt_reserve(&aa, stash);
            gv_rt_reserve(&aa, Nl * Cs * e);
            if (sp > 1) {
                gv_rt_reserve(&aa, NF * (size_t)Hs * D * e);
                gv_rt_reserve(&aa, NF * 2 * (size_t)KVHs * D * e);
                gv_rt_reserve(&aa, NF * (size_t)Hs * D * e);
            }
        }
        if (ck) have_shared = 1;
    }
    size_t TT = (size_t)Tl * sp * Tl * sp, TTH = TT * (size_t)(sp > 1 ? Hs : Hl); /* T5's bias [Tf,Tf,Hb] */
    if (t5) { /* channel 1, the encoder output, the stacks' bias */
        if (has_embed) {
            gv_rt_reserve(&aa, N * 4);
            gv_rt_reserve(&aa, Nl * Cs * e);
        } else if (nl) {
            gv_rt_reserve(&aa, Nl * Cs * e);
        }
        if (enc_end) {
            gv_rt_reserve(&aa, Nl * Cs * e);
            gv_rt_reserve(&aa, Nl * 4);
        }
        if (has_dec && msp) gv_rt_reserve(&aa, N * Cs * e);
        if (pt->l0 < Le && nl) gv_rt_reserve(&aa, TTH * 4);
        if (has_dec) gv_rt_reserve(&aa, TTH * 4);
        if (nl) gv_rt_reserve(&aa, TTH * e);
    }
    if (has_head) {
        gv_rt_reserve(&aa, N * 4);
        gv_rt_reserve(&aa, Nl * Cs * e);
        if (msp) gv_rt_reserve(&aa, N * Cs * e);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, Nl * 4);
        gv_rt_reserve(&aa, N * (size_t)Vpl * e);
        gv_rt_reserve(&aa, N * 4);
        gv_rt_reserve(&aa, N * 4);
    }
    size_t set = gv_rt_up(aa, GV_RT_ALIGN); /* micro-batches in flight each hold a whole set */
    if (K > 1) gv_rt_reserve(&aa, set * (size_t)(K - 1));

    /* backward scratch */
    gv_rt_reserve(&wa, Nl * Cs * e);
    if (msp) gv_rt_reserve(&wa, N * Cs * e);
    gv_rt_reserve(&wa, N * Cs * e);
    if (msp) gv_rt_reserve(&wa, Nl * Cs * e);
    gv_rt_reserve(&wa, N * (size_t)QKVl * e);
    if (s->pos == GV_POS_ROPE) gv_rt_reserve(&wa, N * (size_t)QKVl * e);
    gv_rt_reserve(&wa, N * (size_t)(Hl * D) * e);
    gv_rt_reserve(&wa, N * (size_t)F2l * e);
    gv_rt_reserve(&wa, N * (size_t)Fl * e);
    if (t5) {
        size_t HD = (size_t)Hl * D, KD = (size_t)KVHl * D;
        gv_rt_reserve(&wa, TT * 4);
        gv_rt_reserve(&wa, TT * 4);
        gv_rt_reserve(&wa, TTH * 4);
        gv_rt_reserve(&wa, TTH * 4);
        gv_rt_reserve(&wa, N * Cs * e);
        gv_rt_reserve(&wa, Nl * Cs * e);
        gv_rt_reserve(&wa, N * HD * e);
        gv_rt_reserve(&wa, N * 2 * KD * e);
        gv_rt_reserve(&wa, N * HD * e);
        if (sp > 1) {
            gv_rt_reserve(&wa, NF * (size_t)Hs * D * e);
            gv_rt_reserve(&wa, NF * 2 * (size_t)KVHs * D * e);
            gv_rt_reserve(&wa, NF * (size_t)Hs * D * e);
            gv_rt_reserve(&wa, (size_t)s->rel_buckets * Hs * e); /* the head group's table columns */
        }
    }
    if (sp > 1) {
        gv_rt_reserve(&wa, NF * (size_t)QKVs * e);
        gv_rt_reserve(&wa, NF * (size_t)(Hs * D) * e);
    }
    /* host staging of the all-to-alls (Ulysses) and the sequence gathers (Megatron-SP) */
    size_t stage = sp > 1 ? N * (size_t)QKV * 4 : msp ? N * Cs * 4 : 0;
    gv_rt_reserve(&ca, stage);
    gv_rt_reserve(&ca, stage);

    r->parameters = pa;
    r->gradients = ga;
    r->optimizer = oa;
    r->activations = aa;
    r->workspace = wa;
    r->comm = ca;
}

/* hybrid.c's gv_block: elements of a micro-batch a stage rank holds in a layout. */
static size_t gv_rt_block(int Bm, int S, int T, int C, const gv_layer_strategy *st) {
    int sharded = st->tp > 1 && st->sp != GV_SP_NONE;
    return (size_t)(Bm * st->tp / S) * (size_t)(sharded ? T / st->tp : T) * (size_t)C;
}

gv_status gv_cost_runtime_memory(const gv_cost_opts *o, const gv_model_spec *spec, const gv_plan *p,
                                 int stage, gv_memory_report *out) {
    memset(out, 0, sizeof *out);
    if (stage < 0 || stage >= p->pp)
        return gv_fail(GV_ERR_INVALID, "cost: stage %d of a %d-stage plan", stage, p->pp);
    int S = p->world / p->pp, Bm = p->global_batch / p->micro_batches, T = o->seq;
    int K = p->pp == 1 ? 1 : p->schedule == GV_SCHED_GPIPE ? p->micro_batches : p->pp - stage;
    if (K > p->micro_batches) K = p->micro_batches;
    int n = p->n_layer + 2, last = 0;
    gv_rt_part *parts = calloc((size_t)n, sizeof *parts);
    if (!parts) return gv_fail(GV_ERR_NOMEM, "cost: out of host memory");
    int np = gv_rt_parts(p, stage, parts, &last);
    size_t tie = 0;
    for (int i = 0; i < np; i++) {
        gv_memory_report x;
        size_t ti;
        gv_rt_part_mem(o, spec, p, &parts[i], S, Bm, T, K, &x, &ti);
        out->parameters += x.parameters;
        out->gradients += x.gradients;
        out->optimizer += x.optimizer;
        out->activations += x.activations;
        out->workspace += x.workspace;
        out->comm += x.comm;
        if (p->pp > 1 && spec->tied && (parts[i].embed || parts[i].head)) tie = ti;
    }
    if (np > 1 || p->pp > 1) { /* the stage's host staging: p2p, redistribution, tied-gradient exchange */
        size_t mx = 0, a = 0;
        gv_layer_strategy in = {1, GV_SP_NONE, 0, 0};
        if (stage > 0) {
            gv_rt_part *pp = calloc((size_t)n, sizeof *pp);
            int pl = 0;
            if (!pp) {
                free(parts);
                return gv_fail(GV_ERR_NOMEM, "cost: out of host memory");
            }
            gv_rt_parts(p, stage - 1, pp, &pl);
            in = pp[pl].st;
            free(pp);
        }
        mx = gv_rt_block(Bm, S, T, spec->n_embd, &in);
        size_t ob = gv_rt_block(Bm, S, T, spec->n_embd, &parts[last].st);
        if (ob > mx) mx = ob;
        for (int i = 0; i < np; i++) {
            size_t b = gv_rt_block(Bm, S, T, spec->n_embd, &parts[i].st);
            if (b > mx) mx = b;
        }
        size_t ch = spec->arch == GV_ARCH_T5 ? 2 : 1; /* T5: two channels (hybrid.c) */
        size_t e = o->mixed_precision ? 2 : 4, d = 0; /* device blocks: the compute dtype */
        int host = o->host_redist;
        if (o->overlap && p->pp > 1) { /* nonblocking messages: hybrid.c's gv_pipe_buffers */
            int din = 0, dout = 0;
            if (stage > 0) GV_TRY_FREE(gv_rt_link_direct(p, stage - 1, &din), parts);
            if (stage < p->pp - 1) GV_TRY_FREE(gv_rt_link_direct(p, stage, &dout), parts);
            int hin = stage > 0 && !din, hout = stage < p->pp - 1 && !dout, scratch = np > 1 || hin;
            if (host) { /* host F32 blocks of the links that redistribute, the chain, tmp, gather */
                int nh = 4 * hin + 4 * hout + 2 * scratch;
                for (int k = 0; k < nh; k++) gv_rt_reserve(&a, ch * mx * 4);
                gv_rt_reserve(&a, mx * 4);
                gv_rt_reserve(&a, mx * (size_t)S * 4);
            }
            if (tie) gv_rt_reserve(&a, tie * 4);
            /* device message buffers of the links that keep their layout (every link off the host path),
             * then off it the chain and the gather */
            for (int k = 0; stage > 0 && (din || !host) && k < 4; k++)
                gv_rt_reserve(&d, ch * gv_rt_block(Bm, S, T, spec->n_embd, &in) * e);
            for (int k = 0; stage < p->pp - 1 && (dout || !host) && k < 4; k++)
                gv_rt_reserve(&d, ch * gv_rt_block(Bm, S, T, spec->n_embd, &parts[last].st) * e);
            for (int k = 0; !host && scratch && k < 2; k++) gv_rt_reserve(&d, ch * mx * e);
            if (!host) gv_rt_reserve(&d, mx * (size_t)S * e);
        } else { /* x, y, g, dx, (host: tmp), gather; in host F32 or device blocks */
            size_t *blocks = host ? &a : &d, es = host ? 4 : e;
            for (int k = 0; k < 4; k++) gv_rt_reserve(blocks, ch * mx * es);
            if (host) gv_rt_reserve(blocks, mx * 4);
            gv_rt_reserve(blocks, mx * (size_t)S * es);
            if (tie) gv_rt_reserve(&a, tie * 4);
        }
        out->comm += a + d;
    }
    free(parts);
    return GV_OK;
}

double gv_cost_runtime_scratch(const gv_cost_opts *o, const gv_model_spec *spec, const gv_layer_strategy *st,
                               int stage_ranks, int micro_rows) {
    /* a part of one layer with that strategy: its backward scratch and staging do not depend on the layers */
    gv_layer_strategy l = *st;
    l.ckpt = 0;
    gv_plan p = {0};
    p.layers = &l;
    p.n_layer = 1;
    gv_rt_part pt = {0, 1, 0, 0, *st};
    gv_memory_report r;
    size_t tie;
    gv_rt_part_mem(o, spec, &p, &pt, stage_ranks, micro_rows, o->seq, 1, &r, &tie);
    return (double)(r.workspace + r.comm) / (1024.0 * 1024.0);
}
