/* Layer-wise plans and pipeline schedules over model parts (see gv/hybrid.h).
 *
 * Layout of an activation [Bm, T, C] of one micro-batch between parts, on the S = world / pp ranks of a
 * stage (tp innermost: stage rank r = dp index * tp + tp index): a part of degree tp holds the rows of its
 * dp index, Bm * tp / S of them, and either all T positions or, when its sequence is sharded (Megatron-SP,
 * Ulysses), the T / tp positions of its tp index. Gradients use the same layout as their activations (each
 * rank holds the true gradient of the elements it holds), so the backward of a redistribution A -> B is the
 * redistribution B -> A of the gradients. */
#include "gv/hybrid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gv/arena.h"
#include "gv/comm.h"

typedef struct {
    int tp, sharded;
} gv_layout;

typedef struct {
    gv_model *m;
    gv_layer_strategy st;
    gv_layout lay;
    int dp, dp_idx; /* batch split degree and this rank's index in it */
    int uly;        /* Ulysses: the embedding reads this rank's positions only */
    int embed, head, l0, l1;
    int *gk; /* [hf count of the part] global HF index of each of its tensors */
} gv_part;

typedef struct {
    int part, phases;
} gv_exec;

typedef struct {
    char name[96];
    int ndim;
    int64_t shape[4];
    int stage, part, k; /* owner and its local index */
} gv_hf_entry;

struct gv_hybrid {
    gv_model_spec spec;
    gv_backend *be;
    gv_comm *world;
    int overlap; /* data-parallel collectives overlap compute (gv_hybrid_opts) */
    int W, S, pp, stage, lr, wrank, M, Bm, T, C;
    gv_schedule sched;
    gv_part *parts;
    int nparts;
    gv_exec *ex;
    int nex;
    gv_layout in_lay, out_lay; /* the stage's input (previous stage's output) and output layouts */
    int K, peak, *busy;        /* activation sets, most in flight, set in use */
    int head_ndp;              /* ranks the head's loss is averaged over */
    int tie_peer, tie_part;    /* world rank holding the other copy of the tied embedding (-1: none) */
    gv_comm **groups;          /* [S + 1]: groups[g] = this rank's group of g consecutive stage ranks */
    gv_arena a_comm;           /* host staging: p2p, redistribution, tied-gradient exchange */
    float *x, *y, *g, *dx, *tmp, *gather, *tie;
    size_t blk_max, tie_n;
    int IW;             /* input words per position (gv_model_spec_input_width) */
    int nch;            /* channels of an activation between parts (gv_model_part_channels: T5 2) */
    int rel_sync;       /* T5: some part holds a copy of a relative bias table: sum their gradients */
    float *rel_g;       /* [2][buckets * H] */
    int32_t *tok, *tgt; /* host [Bm * T * IW], [Bm * T]: a part's rows of a micro-batch */
    gv_hf_entry *hf;
    int nhf;
    gv_hybrid_times times; /* accumulated over train batches */
    int batches;
};

static double gv_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- parts of a stage ------------------------------------------------------------------------------- */

static int gv_same_strategy(const gv_layer_strategy *a, const gv_layer_strategy *b) {
    return a->tp == b->tp && a->sp == b->sp && a->zero == b->zero;
}

static gv_layout gv_layout_of(const gv_layer_strategy *s) {
    gv_layout y = {s->tp, s->tp > 1 && s->sp != GV_SP_NONE};
    return y;
}

/* The parts of stage s: runs of layers with the same strategy; the embedding and the head join the
 * adjacent run when it has the vocab strategy, else they form parts of their own (with pp = 1 the embedding
 * and head then share one part, so tied weights stay one tensor). Returns the count; parts[i] gets l0, l1,
 * embed, head and st. Also fills the execution order. */
static int gv_stage_parts(const gv_plan *p, int s, gv_part *parts, gv_exec *ex, int *nex) {
    int a = 0;
    for (int i = 0; i < s; i++) a += p->stage_layers[i];
    int b = a + p->stage_layers[s], n = 0, e = 0;
    int first = s == 0, last = s == p->pp - 1;
    const gv_layer_strategy *v = &p->vocab;
    int uniform = 1;
    for (int l = a + 1; l < b; l++) uniform &= gv_same_strategy(&p->layers[l], &p->layers[a]);
    if (p->pp == 1 && uniform && gv_same_strategy(&p->layers[a], v)) {
        parts[0] = (gv_part){.st = *v, .embed = 1, .head = 1, .l0 = a, .l1 = b};
        ex[0] = (gv_exec){0, GV_PHASE_ALL};
        *nex = 1;
        return 1;
    }
    int vocab_part = -1, merge_embed = 0, merge_head = 0;
    if (p->pp == 1) {
        vocab_part = n;
        parts[n++] = (gv_part){.st = *v, .embed = 1, .head = 1, .l0 = a, .l1 = a};
        ex[e++] = (gv_exec){vocab_part, GV_PHASE_EMBED};
    } else {
        merge_embed = first && gv_same_strategy(&p->layers[a], v);
        merge_head = last && gv_same_strategy(&p->layers[b - 1], v);
        if (first && !merge_embed) {
            parts[n] = (gv_part){.st = *v, .embed = 1, .l0 = a, .l1 = a};
            ex[e++] = (gv_exec){n++, GV_PHASE_EMBED};
        }
    }
    for (int l = a; l < b;) {
        int r = l + 1;
        while (r < b && gv_same_strategy(&p->layers[r], &p->layers[l])) r++;
        int emb = merge_embed && l == a, hd = merge_head && r == b;
        parts[n] = (gv_part){.st = p->layers[l], .embed = emb, .head = hd, .l0 = l, .l1 = r};
        ex[e++] = (gv_exec){n++, GV_PHASE_LAYERS | (emb ? GV_PHASE_EMBED : 0) | (hd ? GV_PHASE_HEAD : 0)};
        l = r;
    }
    if (vocab_part >= 0) {
        ex[e++] = (gv_exec){vocab_part, GV_PHASE_HEAD};
    } else if (last && !merge_head) {
        parts[n] = (gv_part){.st = *v, .head = 1, .l0 = b, .l1 = b};
        ex[e++] = (gv_exec){n++, GV_PHASE_HEAD};
    }
    *nex = e;
    return n;
}

/* Most parts a stage can have: one per layer, plus the embedding and the head. */
static int gv_max_parts(const gv_plan *p) {
    return p->n_layer + 2;
}

static gv_status gv_stage_out_layout(const gv_plan *p, int s, gv_layout *out) {
    gv_part *parts = calloc((size_t)gv_max_parts(p), sizeof *parts);
    gv_exec *ex = calloc((size_t)gv_max_parts(p), sizeof *ex);
    int nex = 0;
    if (parts && ex) {
        gv_stage_parts(p, s, parts, ex, &nex);
        *out = gv_layout_of(&parts[ex[nex - 1].part].st);
    }
    free(parts);
    free(ex);
    return nex ? GV_OK : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
}

/* ---- redistribution --------------------------------------------------------------------------------- */

static int gv_gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Rows [*b0, *b0 + *nb) and positions [*t0, *t0 + *nt) of a micro-batch that stage rank r holds in y. */
static void gv_hold(const gv_hybrid *h, gv_layout y, int r, int *b0, int *nb, int *t0, int *nt) {
    *nb = h->Bm * y.tp / h->S;
    *b0 = r / y.tp * *nb;
    *nt = y.sharded ? h->T / y.tp : h->T;
    *t0 = y.sharded ? r % y.tp * *nt : 0;
}

static size_t gv_block(const gv_hybrid *h, gv_layout y) {
    int b0, nb, t0, nt;
    gv_hold(h, y, 0, &b0, &nb, &t0, &nt);
    return (size_t)nb * nt * h->C;
}

/* dst (this rank's block in b) <- src (its block in a), host [rows][positions][C]. Within the smallest
 * group of consecutive ranks that holds the same rows under both layouts (lcm of the degrees); no
 * communication when this rank already holds what it needs. */
static gv_status gv_redistribute(gv_hybrid *h, const float *src, gv_layout a, float *dst, gv_layout b) {
    int ab0, anb, at0, ant, bb0, bnb, bt0, bnt, C = h->C;
    gv_hold(h, a, h->lr, &ab0, &anb, &at0, &ant);
    gv_hold(h, b, h->lr, &bb0, &bnb, &bt0, &bnt);
    if (bb0 >= ab0 && bb0 + bnb <= ab0 + anb && bt0 >= at0 && bt0 + bnt <= at0 + ant) {
        for (int i = 0; i < bnb; i++)
            memcpy(dst + (size_t)i * bnt * C, src + ((size_t)(bb0 - ab0 + i) * ant + (bt0 - at0)) * C,
                   (size_t)bnt * C * sizeof(float));
        return GV_OK;
    }
    int g = a.tp / gv_gcd(a.tp, b.tp) * b.tp, base = h->lr / g * g;
    size_t blk = (size_t)anb * ant * C;
    GV_TRY(gv_comm_allgather(h->groups[g], src, h->gather, blk, GV_COMM_F32));
    for (int i = 0; i < bnb; i++) {
        int row = bb0 + i;
        for (int t = bt0; t < bt0 + bnt;) {
            int ra = row / anb * a.tp + (a.sharded ? t / ant : 0); /* the stage rank holding (row, t) in a */
            int rb0, rnb, rt0, rnt;
            gv_hold(h, a, ra, &rb0, &rnb, &rt0, &rnt);
            int run = rt0 + rnt < bt0 + bnt ? rt0 + rnt - t : bt0 + bnt - t;
            const float *from =
                h->gather + (size_t)(ra - base) * blk + ((size_t)(row - rb0) * rnt + (t - rt0)) * C;
            memcpy(dst + ((size_t)i * bnt + (t - bt0)) * C, from, (size_t)run * C * sizeof(float));
            t += run;
        }
    }
    return GV_OK;
}

/* Device view `view` of part p <- host block src in layout a (redistributed to p's layout). */
static gv_status gv_put(gv_hybrid *h, const gv_part *p, void *view, const float *src, gv_layout a) {
    double t0 = gv_ms();
    GV_TRY(gv_redistribute(h, src, a, h->tmp, p->lay));
    gv_status st = gv_backend_upload_f32(h->be, view, gv_backend_dtype(h->be), h->tmp, gv_block(h, p->lay));
    h->times.redistribute_ms += gv_ms() - t0;
    return st;
}

/* Host block dst <- device view of part p (p's layout). */
static gv_status gv_get(gv_hybrid *h, const gv_part *p, const void *view, float *dst) {
    double t0 = gv_ms();
    GV_TRY(gv_backend_sync(h->be));
    gv_status st = gv_backend_download_f32(h->be, dst, view, gv_backend_dtype(h->be), gv_block(h, p->lay));
    h->times.redistribute_ms += gv_ms() - t0;
    return st;
}

/* ---- init ------------------------------------------------------------------------------------------- */

static gv_status gv_make_groups(gv_hybrid *h) {
    /* Groups of g consecutive ranks of this stage for every divisor g (redistribution, tp, Ulysses); every
     * rank of the stage creates them in the same order (the pool's calling rule). */
    int base = h->stage * h->S, ranks[1024];
    for (int g = 2; g <= h->S; g++) {
        if (h->S % g) continue;
        for (int q = 0; q < h->S / g; q++) {
            gv_comm *x = NULL;
            for (int k = 0; k < g; k++) ranks[k] = base + q * g + k;
            if (h->world) GV_TRY(gv_comm_group(h->world, ranks, g, &x));
            if (x || !h->world) h->groups[g] = x;
        }
    }
    return GV_OK;
}

/* The data-parallel group of a part: ranks of the stage with the same tp index (all of them under Ulysses,
 * whose parameters are replicated over the sequence group too). */
static gv_status gv_dp_group(gv_hybrid *h, const gv_part *p, gv_comm **out) {
    int base = h->stage * h->S, ranks[1024], t = p->st.tp;
    *out = NULL;
    if (!h->world) return GV_OK;
    if (p->uly || t == 1) {
        *out = h->groups[h->S];
        return GV_OK;
    }
    for (int i = 0; i < t; i++) {
        gv_comm *x;
        for (int k = 0; k < h->S / t; k++) ranks[k] = base + k * t + i;
        GV_TRY(gv_comm_group(h->world, ranks, h->S / t, &x));
        if (x) *out = x;
    }
    return GV_OK;
}

static gv_status gv_part_dist(gv_hybrid *h, gv_part *p, const gv_plan *plan, int *ckpt, int meta,
                              gv_model_dist *d) {
    memset(d, 0, sizeof *d);
    p->uly = p->st.sp == GV_SP_ULYSSES && p->st.tp > 1;
    p->lay = gv_layout_of(&p->st);
    p->dp = h->S / p->st.tp;
    p->dp_idx = h->lr / p->st.tp;
    for (int l = 0; l < plan->n_layer; l++) ckpt[l] = plan->layers[l].ckpt;
    d->ckpt = ckpt;
    d->zero = p->st.zero;
    d->l0 = p->l0;
    d->l1 = p->l1;
    d->no_embed = !p->embed;
    d->no_head = !p->head;
    d->tied_copy = p->head && !p->embed && plan->pp > 1;
    d->slots = h->K;
    d->meta_only = meta;
    d->no_overlap = !h->overlap;
    if (p->l0 == p->l1) d->l1 = -1; /* no layers */
    if (meta) return GV_OK;
    GV_TRY(gv_dp_group(h, p, &d->dp));
    if (p->st.tp > 1) {
        gv_comm *grp = h->groups[p->st.tp];
        if (p->uly)
            d->sp = grp;
        else
            d->tp = grp;
        d->vocab_parallel = 1;
        d->megatron_sp = p->st.sp == GV_SP_MEGATRON;
    }
    return GV_OK;
}

static gv_status gv_part_model(gv_hybrid *h, gv_part *p, const gv_plan *plan, int meta, gv_model **m) {
    int *ckpt = calloc((size_t)plan->n_layer, sizeof *ckpt);
    if (!ckpt) return gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    gv_model_dist d;
    gv_status st = gv_part_dist(h, p, plan, ckpt, meta, &d);
    int B = h->Bm / p->dp, T = p->uly ? h->T / p->st.tp : h->T;
    if (st == GV_OK) st = gv_model_init_dist(m, &h->spec, h->be, B, T, &d);
    free(ckpt);
    return st;
}

/* The global HF list: every stage's parts (names only for other stages), first owner wins (the embedding
 * before its tied copy in the head). */
static gv_status gv_build_hf(gv_hybrid *h, const gv_plan *plan) {
    int cap = 0;
    gv_part *parts = calloc((size_t)gv_max_parts(plan), sizeof *parts);
    gv_exec *ex = calloc((size_t)gv_max_parts(plan), sizeof *ex);
    gv_status st = parts && ex ? GV_OK : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    for (int s = 0; s < plan->pp && st == GV_OK; s++) {
        int nex, n = gv_stage_parts(plan, s, parts, ex, &nex);
        for (int i = 0; i < n && st == GV_OK; i++) {
            gv_model *m = NULL;
            gv_part *p = s == h->stage ? &h->parts[i] : &parts[i];
            if (s == h->stage)
                m = p->m;
            else
                st = gv_part_model(h, p, plan, 1, &m);
            int cnt = st == GV_OK ? gv_model_hf_count(m) : 0;
            if (st == GV_OK && s == h->stage && !(p->gk = malloc((size_t)cnt * sizeof *p->gk)))
                st = gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
            for (int k = 0; k < cnt && st == GV_OK; k++) {
                const char *name;
                int nd;
                int64_t sh[4];
                st = gv_model_hf_info(m, k, &name, &nd, sh);
                int found = -1;
                for (int j = 0; j < h->nhf && found < 0; j++)
                    if (!strcmp(h->hf[j].name, name)) found = j;
                if (found < 0) {
                    if (h->nhf == cap) {
                        cap = cap ? 2 * cap : 64;
                        gv_hf_entry *nh = realloc(h->hf, (size_t)cap * sizeof *nh);
                        if (!nh) {
                            st = gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
                            break;
                        }
                        h->hf = nh;
                    }
                    gv_hf_entry *e = &h->hf[h->nhf];
                    snprintf(e->name, sizeof e->name, "%s", name);
                    e->ndim = nd;
                    memcpy(e->shape, sh, sizeof e->shape);
                    e->stage = s, e->part = i, e->k = k;
                    found = h->nhf++;
                }
                if (s == h->stage) p->gk[k] = found;
            }
            if (s != h->stage) gv_model_free(m);
        }
    }
    free(parts);
    free(ex);
    return st;
}

/* T5: whether some part of some stage holds layers of a stack without the stack's block 0 (so a copy of its
 * relative bias table), and the buffer for the tables' gradient sums. */
static gv_status gv_rel_setup(gv_hybrid *h, const gv_plan *plan) {
    int Le = plan->n_layer - h->spec.n_dec_layer;
    gv_part *parts = calloc((size_t)gv_max_parts(plan), sizeof *parts);
    gv_exec *ex = calloc((size_t)gv_max_parts(plan), sizeof *ex);
    if (!parts || !ex) {
        free(parts);
        free(ex);
        return gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    }
    for (int s = 0; s < plan->pp; s++) {
        int nex, n = gv_stage_parts(plan, s, parts, ex, &nex);
        for (int i = 0; i < n; i++) {
            const gv_part *p = &parts[i];
            if (p->l1 > p->l0 && ((p->l0 > 0 && p->l0 < Le) || p->l0 > Le)) h->rel_sync = 1;
        }
    }
    free(parts);
    free(ex);
    if (!h->rel_sync) return GV_OK;
    h->rel_g = calloc(2 * (size_t)h->spec.rel_buckets * h->spec.n_head, sizeof *h->rel_g);
    return h->rel_g ? GV_OK : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
}

gv_status gv_hybrid_check(const gv_model_spec *spec, const gv_plan *plan, const char *where) {
    (void)spec, (void)plan, (void)where; /* every valid plan runs */
    return GV_OK;
}

gv_status gv_hybrid_overlap_resolve(int overlap, int *on) {
    *on = overlap >= 0;
    if (overlap) return GV_OK;
    const char *v = getenv("GV_OVERLAP");
    if (!v || !*v) return GV_OK;
    if (!strcmp(v, "1") || !strcmp(v, "on")) return GV_OK;
    if (!strcmp(v, "0") || !strcmp(v, "off")) {
        *on = 0;
        return GV_OK;
    }
    return gv_fail(GV_ERR_INVALID, "GV_OVERLAP '%s': expected on, off, 1 or 0", v);
}

int gv_hybrid_overlap(const gv_hybrid *h) {
    return h->overlap;
}

void gv_hybrid_overlap_counts(const gv_hybrid *h, int *buckets, long *early, long *prefetched) {
    *buckets = 0, *early = *prefetched = 0;
    for (int i = 0; i < h->nparts; i++) {
        int b;
        long e, p;
        gv_model_overlap_counts(h->parts[i].m, &b, &e, &p);
        *buckets += b, *early += e, *prefetched += p;
    }
}

gv_status gv_hybrid_init(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be, gv_comm *world,
                         const gv_plan *plan, int seq, const char *where) {
    return gv_hybrid_init_opts(out, spec, be, world, plan, seq, where, NULL);
}

gv_status gv_hybrid_init_opts(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be, gv_comm *world,
                              const gv_plan *plan, int seq, const char *where, const gv_hybrid_opts *opts) {
    *out = NULL;
    const char *w = where ? where : "plan";
    int overlap;
    GV_TRY(gv_hybrid_overlap_resolve(opts ? opts->overlap : 0, &overlap));
    int W = world ? gv_comm_size(world) : 1;
    if (W != plan->world)
        return gv_fail(GV_ERR_INVALID, "%s: plan is for %d ranks, the job has %d", w, plan->world, W);
    GV_TRY(gv_hybrid_check(spec, plan, where));
    gv_hybrid *h = calloc(1, sizeof *h);
    if (!h) return gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    h->spec = *spec;
    h->be = be;
    h->overlap = overlap;
    h->world = world;
    h->W = W;
    h->pp = plan->pp;
    h->S = W / plan->pp;
    h->wrank = world ? gv_comm_rank(world) : 0;
    h->stage = h->wrank / h->S;
    h->lr = h->wrank % h->S;
    h->M = plan->micro_batches;
    h->Bm = plan->global_batch / plan->micro_batches;
    h->T = seq;
    h->C = spec->n_embd;
    h->sched = plan->schedule;
    /* Micro-batches in flight: GPipe keeps all m, 1F1B at most pp - stage; without a pipeline one. */
    h->K = plan->pp == 1 ? 1 : plan->schedule == GV_SCHED_GPIPE ? h->M : plan->pp - h->stage;
    if (h->K > h->M) h->K = h->M;
    h->tie_peer = h->tie_part = -1;
    h->parts = calloc((size_t)gv_max_parts(plan), sizeof *h->parts);
    h->ex = calloc((size_t)gv_max_parts(plan), sizeof *h->ex);
    h->groups = calloc((size_t)h->S + 1, sizeof *h->groups);
    h->busy = calloc((size_t)h->K, sizeof *h->busy);
    h->IW = gv_model_spec_input_width(spec);
    h->tok = malloc((size_t)h->Bm * seq * h->IW * 4);
    h->tgt = malloc((size_t)h->Bm * seq * 4);
    gv_status st = h->parts && h->ex && h->groups && h->busy && h->tok && h->tgt
                       ? GV_OK
                       : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    if (st == GV_OK) h->nparts = gv_stage_parts(plan, h->stage, h->parts, h->ex, &h->nex);
    if (st == GV_OK) st = gv_make_groups(h);
    for (int i = 0; i < h->nparts && st == GV_OK; i++) {
        gv_part *p = &h->parts[i];
        st = gv_part_model(h, p, plan, 0, &p->m);
        if (st == GV_OK && p->head) h->head_ndp = p->uly ? h->S : p->dp;
        if (st == GV_OK && plan->pp > 1 && spec->tied && (p->embed || p->head)) {
            h->tie_part = i;
            h->tie_peer = p->embed ? h->wrank + (plan->pp - 1) * h->S : h->wrank - (plan->pp - 1) * h->S;
        }
    }
    if (st == GV_OK) st = gv_build_hf(h, plan);
    h->nch = st == GV_OK && h->nparts ? gv_model_part_channels(h->parts[0].m) : 1;
    if (st == GV_OK && spec->arch == GV_ARCH_T5) st = gv_rel_setup(h, plan);
    /* Host staging, counted as communication buffers (none for a single part without a pipeline). */
    gv_arena_init(&h->a_comm, "comm", NULL);
    if (st == GV_OK && (h->nparts > 1 || h->pp > 1)) {
        h->in_lay = (gv_layout){1, 0};
        if (h->stage > 0) st = gv_stage_out_layout(plan, h->stage - 1, &h->in_lay);
        if (st == GV_OK) st = gv_stage_out_layout(plan, h->stage, &h->out_lay);
        size_t mx = gv_block(h, h->in_lay);
        if (gv_block(h, h->out_lay) > mx) mx = gv_block(h, h->out_lay);
        for (int i = 0; i < h->nparts; i++)
            if (gv_block(h, h->parts[i].lay) > mx) mx = gv_block(h, h->parts[i].lay);
        h->blk_max = mx;
        size_t f = sizeof(float), c = (size_t)h->nch,
               sz[6] = {c * mx, c * mx, c * mx, c * mx, mx, mx * (size_t)h->S}, off[7];
        for (int k = 0; k < 6; k++) off[k] = gv_arena_reserve(&h->a_comm, sz[k] * f);
        if (h->tie_part >= 0) h->tie_n = gv_model_embedding_numel(h->parts[h->tie_part].m);
        if (h->tie_n) off[6] = gv_arena_reserve(&h->a_comm, h->tie_n * f);
        /* host memory, not the backend's: allocate directly */
        h->a_comm.base = st == GV_OK ? calloc(1, h->a_comm.size ? h->a_comm.size : 1) : NULL;
        if (st == GV_OK && !h->a_comm.base)
            st = gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory for staging");
        if (st == GV_OK) {
            float **bufs[6] = {&h->x, &h->y, &h->g, &h->dx, &h->tmp, &h->gather};
            for (int k = 0; k < 6; k++) *bufs[k] = gv_arena_ptr(&h->a_comm, off[k]);
            if (h->tie_n) h->tie = gv_arena_ptr(&h->a_comm, off[6]);
        }
    }
    if (st != GV_OK) {
        gv_hybrid_free(h);
        return st;
    }
    *out = h;
    return GV_OK;
}

void gv_hybrid_free(gv_hybrid *h) {
    if (!h) return;
    for (int i = 0; h->parts && i < h->nparts; i++) {
        gv_model_free(h->parts[i].m);
        free(h->parts[i].gk);
    }
    free(h->a_comm.base);
    free(h->parts);
    free(h->ex);
    free(h->groups);
    free(h->busy);
    free(h->tok);
    free(h->tgt);
    free(h->hf);
    free(h->rel_g);
    free(h);
}

/* ---- forward / backward of one micro-batch ---------------------------------------------------------- */

/* Part p's rows (and, under Ulysses, positions) of the global micro-batch src [Bm, T, w] into dst. */
static void gv_slice_ids(const gv_hybrid *h, const gv_part *p, const int32_t *src, int32_t *dst, int w) {
    int rows = h->Bm / p->dp, T = h->T, nt = p->uly ? T / p->st.tp : T,
        t0 = p->uly ? h->lr % p->st.tp * nt : 0;
    for (int b = 0; b < rows; b++)
        memcpy(dst + (size_t)b * nt * w, src + ((size_t)(p->dp_idx * rows + b) * T + t0) * w,
               (size_t)nt * w * 4);
}

static int gv_first_phase(int phases) {
    return phases & GV_PHASE_EMBED    ? GV_PHASE_EMBED
           : phases & GV_PHASE_LAYERS ? GV_PHASE_LAYERS
                                      : GV_PHASE_HEAD;
}

/* Forward of micro-batch mb in activation set `slot`: x = the previous stage's output (host, in_lay; NULL
 * on stage 0); the stage output goes to y (host, out_lay) unless this is the last stage. */
static gv_status gv_forward_mb(gv_hybrid *h, int mb, int slot, const int32_t *tokens, const int32_t *targets,
                               float *loss_sum) {
    size_t BT = (size_t)h->Bm * h->T;
    const float *src = h->x;
    gv_layout src_lay = h->in_lay;
    float *scratch[2] = {h->dx,
                         h->g}; /* free during a forward; alternate so a part never overwrites its input */
    int sc = 0;
    for (int e = 0; e < h->nex; e++) {
        gv_part *p = &h->parts[h->ex[e].part];
        int ph = h->ex[e].phases;
        if (ph & GV_PHASE_EMBED) gv_slice_ids(h, p, tokens + mb * BT * h->IW, h->tok, h->IW);
        if ((ph & GV_PHASE_HEAD) && targets) gv_slice_ids(h, p, targets + mb * BT, h->tgt, 1);
        for (int ch = 0; ch < h->nch; ch++) { /* each channel [rows][positions][C] after the one before */
            void *in = gv_model_part_input_ch(p->m, gv_first_phase(ph), slot, ch);
            if (in) GV_TRY(gv_put(h, p, in, src + ch * gv_block(h, src_lay), src_lay));
        }
        float loss = 0;
        double t0 = gv_ms();
        GV_TRY(gv_model_part_forward(p->m, ph, slot, h->tok, targets ? h->tgt : NULL, &loss));
        h->times.forward_ms += gv_ms() - t0;
        if (ph & GV_PHASE_HEAD) {
            *loss_sum += loss;
            continue;
        }
        float *dst = e + 1 == h->nex ? h->y : scratch[sc ^= 1];
        int last = ph & GV_PHASE_LAYERS ? GV_PHASE_LAYERS : GV_PHASE_EMBED;
        for (int ch = 0; ch < h->nch; ch++)
            GV_TRY(
                gv_get(h, p, gv_model_part_output_ch(p->m, last, slot, ch), dst + ch * gv_block(h, p->lay)));
        src = dst;
        src_lay = p->lay;
    }
    return GV_OK;
}

/* Backward of the micro-batch in `slot`: g = d(stage output) (host, out_lay; unused on the last stage);
 * leaves d(stage input) in dx (host, in_lay) unless this is stage 0. */
static gv_status gv_backward_mb(gv_hybrid *h, int slot, float dloss) {
    const float *src = h->g;
    gv_layout src_lay = h->out_lay;
    float *scratch[2] = {h->x, h->y}; /* free during a backward */
    int sc = 0;
    for (int e = h->nex - 1; e >= 0; e--) {
        gv_part *p = &h->parts[h->ex[e].part];
        int ph = h->ex[e].phases;
        for (int ch = 0; !(ph & GV_PHASE_HEAD) && ch < h->nch; ch++)
            GV_TRY(gv_put(h, p, gv_model_part_grad_ch(p->m, ch), src + ch * gv_block(h, src_lay), src_lay));
        double t0 = gv_ms();
        GV_TRY(gv_model_part_backward(p->m, ph, slot, dloss));
        h->times.backward_ms += gv_ms() - t0;
        if (gv_model_part_input(p->m, gv_first_phase(ph), slot)) {
            float *dst = scratch[sc ^= 1];
            size_t blk = gv_block(h, p->lay);
            for (int ch = 0; ch < h->nch; ch++) /* a channel the phase does not read has a zero gradient */
                if (gv_model_part_input_ch(p->m, gv_first_phase(ph), slot, ch))
                    GV_TRY(gv_get(h, p, gv_model_part_grad_ch(p->m, ch), dst + ch * blk));
                else
                    memset(dst + ch * blk, 0, blk * sizeof *dst);
            src = dst;
            src_lay = p->lay;
        }
    }
    double t0 = gv_ms();
    for (int ch = 0; h->stage > 0 && ch < h->nch; ch++)
        GV_TRY(gv_redistribute(h, src + ch * gv_block(h, src_lay), src_lay,
                               h->dx + ch * gv_block(h, h->in_lay), h->in_lay));
    h->times.redistribute_ms += gv_ms() - t0;
    return GV_OK;
}

/* ---- pipeline schedules ----------------------------------------------------------------------------- */

enum { GV_TAG_PIPE = 7 };

static gv_status gv_recv_fwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    return gv_comm_recv(h->world, h->x, h->nch * gv_block(h, h->in_lay), GV_COMM_F32, h->wrank - h->S,
                        GV_TAG_PIPE);
}
static gv_status gv_send_fwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    return gv_comm_send(h->world, h->y, h->nch * gv_block(h, h->out_lay), GV_COMM_F32, h->wrank + h->S,
                        GV_TAG_PIPE);
}
static gv_status gv_recv_bwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    return gv_comm_recv(h->world, h->g, h->nch * gv_block(h, h->out_lay), GV_COMM_F32, h->wrank + h->S,
                        GV_TAG_PIPE);
}
static gv_status gv_send_bwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    return gv_comm_send(h->world, h->dx, h->nch * gv_block(h, h->in_lay), GV_COMM_F32, h->wrank - h->S,
                        GV_TAG_PIPE);
}
/* Megatron's paired exchanges: deadlock-free with blocking messages. */
static gv_status gv_send_fwd_recv_bwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    size_t n = h->nch * gv_block(h, h->out_lay);
    return gv_comm_sendrecv(h->world, h->y, n, h->wrank + h->S, h->g, n, h->wrank + h->S, GV_COMM_F32,
                            GV_TAG_PIPE);
}
static gv_status gv_send_bwd_recv_fwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    size_t n = h->nch * gv_block(h, h->in_lay);
    return gv_comm_sendrecv(h->world, h->dx, n, h->wrank - h->S, h->x, n, h->wrank - h->S, GV_COMM_F32,
                            GV_TAG_PIPE);
}

/* The pipeline messages, timed: waiting for a neighbour counts here (the bubble as this stage sees it). */
#define GV_TIMED_P2P(fn)                                                                                     \
    static gv_status fn(gv_hybrid *h) {                                                                      \
        double t0 = gv_ms();                                                                                 \
        gv_status st = fn##_(h);                                                                             \
        h->times.p2p_ms += gv_ms() - t0;                                                                     \
        return st;                                                                                           \
    }
GV_TIMED_P2P(gv_recv_fwd)
GV_TIMED_P2P(gv_send_fwd)
GV_TIMED_P2P(gv_recv_bwd)
GV_TIMED_P2P(gv_send_bwd)
GV_TIMED_P2P(gv_send_fwd_recv_bwd)
GV_TIMED_P2P(gv_send_bwd_recv_fwd)
#undef GV_TIMED_P2P

static gv_status gv_fwd(gv_hybrid *h, int mb, const int32_t *tok, const int32_t *tgt, float *loss_sum) {
    int slot = mb % h->K;
    if (h->busy[slot])
        return gv_fail(GV_ERR_INVALID, "pipeline: activation set %d still holds a micro-batch", slot);
    h->busy[slot] = 1;
    int n = 0;
    for (int k = 0; k < h->K; k++) n += h->busy[k];
    if (n > h->peak) h->peak = n;
    return gv_forward_mb(h, mb, slot, tok, tgt, loss_sum);
}

static gv_status gv_bwd(gv_hybrid *h, int mb, float dloss) {
    int slot = mb % h->K;
    /* backwards run in micro-batch order: the last one completes the gradients (sums start with overlap) */
    for (int i = 0; i < h->nparts; i++) gv_model_set_last_backward(h->parts[i].m, mb == h->M - 1);
    GV_TRY(gv_backward_mb(h, slot, dloss));
    h->busy[slot] = 0;
    return GV_OK;
}

/* Mean over micro-batches of the last stage's losses, on every rank. */
static gv_status gv_loss_mean(gv_hybrid *h, double sum, float *loss) {
    double x = h->stage == h->pp - 1 ? sum : 0.0;
    if (h->world) GV_TRY(gv_comm_allreduce(h->world, &x, &x, 1, GV_COMM_F64, GV_COMM_SUM));
    *loss = (float)(x / h->S / h->M);
    return GV_OK;
}

gv_status gv_hybrid_train_batch(gv_hybrid *h, const int32_t *tok, const int32_t *tgt, float *loss) {
    int M = h->M;
    /* Every row counts once in the global mean: 1/(M * dp) per micro-batch mean of a head rank. */
    float dloss = 1.0f / (float)(M * h->head_ndp);
    float ls = 0;
    for (int i = 0; i < h->nparts; i++) gv_model_set_train_dloss(h->parts[i].m, dloss);
    if (h->pp == 1) {
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls));
            GV_TRY(gv_bwd(h, i, dloss));
        }
    } else if (h->sched == GV_SCHED_GPIPE) {
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_recv_fwd(h));
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls));
            GV_TRY(gv_send_fwd(h));
        }
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_recv_bwd(h));
            GV_TRY(gv_bwd(h, i, dloss));
            GV_TRY(gv_send_bwd(h));
        }
    } else { /* 1F1B: warm-up forwards, one forward / one backward, cool-down backwards */
        int warm = h->pp - h->stage - 1 < M ? h->pp - h->stage - 1 : M, rest = M - warm;
        for (int i = 0; i < warm; i++) {
            GV_TRY(gv_recv_fwd(h));
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls));
            GV_TRY(gv_send_fwd(h));
        }
        if (rest > 0) GV_TRY(gv_recv_fwd(h));
        for (int j = 0; j < rest; j++) {
            GV_TRY(gv_fwd(h, warm + j, tok, tgt, &ls));
            GV_TRY(gv_send_fwd_recv_bwd(h));
            GV_TRY(gv_bwd(h, j, dloss));
            if (j + 1 == rest)
                GV_TRY(gv_send_bwd(h));
            else
                GV_TRY(gv_send_bwd_recv_fwd(h));
        }
        for (int j = rest; j < M; j++) {
            GV_TRY(gv_recv_bwd(h));
            GV_TRY(gv_bwd(h, j, dloss));
            GV_TRY(gv_send_bwd(h));
        }
    }
    h->batches++;
    return gv_loss_mean(h, ls, loss);
}

gv_status gv_hybrid_eval_batch(gv_hybrid *h, const int32_t *tok, const int32_t *tgt, float *loss) {
    float ls = 0;
    gv_hybrid_times keep = h->times; /* the times are of training batches */
    for (int i = 0; i < h->nparts; i++) gv_model_set_train_dloss(h->parts[i].m, 0);
    for (int i = 0; i < h->M; i++) {
        GV_TRY(gv_recv_fwd(h));
        GV_TRY(gv_forward_mb(h, i, 0, tok, tgt, &ls)); /* nothing stays for a backward: set 0 */
        GV_TRY(gv_send_fwd(h));
    }
    h->times = keep;
    return gv_loss_mean(h, ls, loss);
}

/* ---- optimizer step --------------------------------------------------------------------------------- */

gv_status gv_hybrid_zero_grad(gv_hybrid *h) {
    for (int i = 0; i < h->nparts; i++) GV_TRY(gv_model_zero_grad(h->parts[i].m));
    return GV_OK;
}

/* Tied embedding on the first and last stage: rank i of each holds the same slice; both add the other's
 * gradient, in the same order, so both copies step alike. Before the data-parallel sums (partial
 * gradients), or after them under ZeRO-3, which reduces during backward. */
static gv_status gv_tie_sync(gv_hybrid *h) {
    gv_model *m = h->parts[h->tie_part].m;
    size_t n = h->tie_n;
    GV_TRY(gv_model_embedding_grad_get(m, h->tie));
    float *peer = malloc(n * sizeof *peer);
    if (!peer) return gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    gv_status st = gv_comm_sendrecv(h->world, h->tie, n, h->tie_peer, peer, n, h->tie_peer, GV_COMM_F32,
                                    GV_TAG_PIPE + 1);
    int emb = h->parts[h->tie_part].embed; /* the embedding's gradient first on both sides */
    for (size_t i = 0; st == GV_OK && i < n; i++) h->tie[i] = emb ? h->tie[i] + peer[i] : peer[i] + h->tie[i];
    free(peer);
    GV_TRY(st);
    return gv_model_embedding_grad_set(m, h->tie);
}

/* T5's relative bias tables: every part with layers of a stack holds the table or a copy; the gradients of
 * all of them add up over the world (each rank's share counted once), and every holder takes the total, so
 * the copies step like the original. Before the data-parallel sums (ZeRO-3 parts have reduced already). */
static gv_status gv_rel_sum(gv_hybrid *h) {
    size_t n = (size_t)h->spec.rel_buckets * h->spec.n_head;
    memset(h->rel_g, 0, 2 * n * sizeof *h->rel_g);
    for (int i = 0; i < h->nparts; i++)
        for (int k = 0; k < 2; k++) GV_TRY(gv_model_rel_bias_grad_add(h->parts[i].m, k, h->rel_g + k * n));
    if (h->world) GV_TRY(gv_comm_allreduce(h->world, h->rel_g, h->rel_g, 2 * n, GV_COMM_F32, GV_COMM_SUM));
    for (int i = 0; i < h->nparts; i++)
        for (int k = 0; k < 2; k++) GV_TRY(gv_model_rel_bias_grad_set(h->parts[i].m, k, h->rel_g + k * n));
    return GV_OK;
}

gv_status gv_hybrid_reduce_grads(gv_hybrid *h) {
    if (h->rel_sync) GV_TRY(gv_rel_sum(h));
    int tie_late = h->tie_part >= 0 && h->parts[h->tie_part].st.zero == 3;
    if (h->tie_part >= 0 && !tie_late) GV_TRY(gv_tie_sync(h));
    for (int i = 0; i < h->nparts; i++) GV_TRY(gv_model_reduce_grads(h->parts[i].m));
    if (tie_late) GV_TRY(gv_tie_sync(h));
    return GV_OK;
}

gv_status gv_hybrid_grad_norm(gv_hybrid *h, double *norm) {
    double ss = 0;
    for (int i = 0; i < h->nparts; i++) {
        double x;
        GV_TRY(gv_model_grad_norm(h->parts[i].m, &x));
        ss += x * x;
    }
    if (h->pp > 1) { /* every rank of a stage holds its stage's figure */
        ss /= h->S;
        GV_TRY(gv_comm_allreduce(h->world, &ss, &ss, 1, GV_COMM_F64, GV_COMM_SUM));
    }
    *norm = sqrt(ss);
    return GV_OK;
}

gv_status gv_hybrid_adamw_step(gv_hybrid *h, const gv_adamw_cfg *cfg, float lr, float grad_scale, int t) {
    for (int i = 0; i < h->nparts; i++) GV_TRY(gv_model_adamw_step(h->parts[i].m, cfg, lr, grad_scale, t));
    return GV_OK;
}

gv_status gv_hybrid_init_weights(gv_hybrid *h, uint64_t seed) {
    for (int i = 0; i < h->nparts; i++) GV_TRY(gv_model_init_weights(h->parts[i].m, seed));
    return GV_OK;
}

void gv_hybrid_memory(const gv_hybrid *h, gv_memory_report *r) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < h->nparts; i++) {
        gv_memory_report x;
        gv_model_memory(h->parts[i].m, &x);
        r->parameters += x.parameters;
        r->gradients += x.gradients;
        r->optimizer += x.optimizer;
        r->activations += x.activations;
        r->workspace += x.workspace;
        r->comm += x.comm;
    }
    r->comm += h->a_comm.size;
}

void gv_hybrid_inflight(const gv_hybrid *h, int *slots, int *peak) {
    *slots = h->K;
    *peak = h->peak;
}

void gv_hybrid_timing(const gv_hybrid *h, gv_hybrid_times *t) {
    double n = h->batches ? h->batches : 1;
    t->forward_ms = h->times.forward_ms / n;
    t->backward_ms = h->times.backward_ms / n;
    t->redistribute_ms = h->times.redistribute_ms / n;
    t->p2p_ms = h->times.p2p_ms / n;
}

int gv_hybrid_stage(const gv_hybrid *h) {
    return h->stage;
}

int gv_hybrid_num_parts(const gv_hybrid *h) {
    return h->nparts;
}

/* ---- checkpoints ------------------------------------------------------------------------------------ */

const gv_model_spec *gv_hybrid_spec(const gv_hybrid *h) {
    return &h->spec;
}

int gv_hybrid_hf_count(const gv_hybrid *h) {
    return h->nhf;
}

gv_status gv_hybrid_hf_info(const gv_hybrid *h, int k, const char **name, int *ndim, int64_t shape[4]) {
    if (k < 0 || k >= h->nhf) return gv_fail(GV_ERR_INVALID, "hf tensor index %d out of range", k);
    *name = h->hf[k].name;
    *ndim = h->hf[k].ndim;
    memcpy(shape, h->hf[k].shape, sizeof h->hf[k].shape);
    return GV_OK;
}

int gv_hybrid_is_writer(const gv_hybrid *h) {
    return h->wrank == 0;
}

gv_status gv_hybrid_export_one(gv_hybrid *h, int which, int k, float *out) {
    if (k < 0 || k >= h->nhf) return gv_fail(GV_ERR_INVALID, "export: tensor index %d out of range", k);
    const gv_hf_entry *e = &h->hf[k];
    if (e->stage == h->stage) GV_TRY(gv_model_export_one(h->parts[e->part].m, which, e->k, out));
    if (e->stage == 0) return GV_OK;
    size_t n = 1;
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    if (h->wrank == 0) return gv_comm_recv(h->world, out, n, GV_COMM_F32, e->stage * h->S, GV_TAG_PIPE + 2);
    if (h->wrank == e->stage * h->S) return gv_comm_send(h->world, out, n, GV_COMM_F32, 0, GV_TAG_PIPE + 2);
    return GV_OK;
}

typedef struct {
    gv_hf_reader read;
    void *ctx;
    const int *gk;
} gv_part_reader;

static gv_status gv_part_read(void *ctx, int k, int64_t row0, int64_t nrows, float *dst) {
    const gv_part_reader *r = ctx;
    return r->read(r->ctx, r->gk[k], row0, nrows, dst);
}

gv_status gv_hybrid_import_stream(gv_hybrid *h, int which, gv_hf_reader read, void *ctx) {
    for (int i = 0; i < h->nparts; i++) {
        gv_part_reader r = {read, ctx, h->parts[i].gk};
        GV_TRY(gv_model_import_stream(h->parts[i].m, which, gv_part_read, &r));
    }
    return GV_OK;
}
