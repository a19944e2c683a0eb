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

enum { GV_TAG_PIPE = 7 }; /* pipeline messages; + 1 the tied gradient exchange, + 2 checkpoint export */

/* A pipeline message in flight and the compute count when it was posted. */
typedef struct {
    gv_comm_req *q;
    long at;
} gv_msg;

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
    /* host_redist (the A/B switch, gv_hybrid_opts): the blocks between parts and on the messages are host
     * F32 (esz 4), redistributed on the host and uploaded / downloaded at every part; else they are
     * backend buffers in the compute dtype (esz its size) redistributed on the device. */
    int host_redist;
    size_t esz;
    gv_arena a_comm; /* host staging: the host path's blocks (p2p, redistribution), tied-gradient exchange */
    void *x, *y, *g, *dx, *gather; /* [nch][block] each, in host or device memory (host_redist) */
    float *tmp, *tie;              /* host path: a part's block before its upload; the tied gradient */
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
    /* Nonblocking pipeline messages (overlap on, pp > 1): one communicator per direction of each link
     * ([me, next] carries this rank's activations, [next, me] their gradients back, and so on), receives
     * posted as soon as their buffer is free, sends started without waiting, every buffer doubled (micro-
     * batch parity) so the next message can be in flight while one is used. dev_in / dev_out: the link to
     * the previous / next stage keeps its layout (the sender's last part and the receiver's first part
     * agree), so the message is the part's device tensor in the compute dtype, copied on the device into /
     * out of device buffers (xr, ds / ys, gr); other links carry the sender's blocks, redistributed by the
     * receiver: device buffers too (xr, ds / ys, gr) unless host_redist, whose host F32 blocks are xh, dxh /
     * yh, gh. sc: the chain between a stage's parts (x, y, g, dx may be in flight), host or device. */
    int pipe_nb, dev_in, dev_out;
    gv_comm *to_next, *from_next, *to_prev, *from_prev;
    void *xr[2], *ds[2], *ys[2], *gr[2], *sc[2];
    float *xh[2], *dxh[2], *yh[2], *gh[2];
    gv_arena a_dev; /* device message buffers, and the device path's blocks (communication buffers) */
    gv_msg rx[2], rg[2], sy[2], sd[2]; /* receives of x and g, sends of y and dx, by micro-batch parity */
    long ncompute;                     /* forwards and backwards run so far (what a message overlapped) */
    gv_hybrid_p2p_counts cnt;
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

/* The layouts of stage s's output (its last part's) and of its first part; *first_layers: the first part
 * starts with its layers (it takes the previous stage's activation as its input). */
static gv_status gv_stage_layouts(const gv_plan *p, int s, gv_layout *out, gv_layout *first,
                                  int *first_layers) {
    gv_part *parts = calloc((size_t)gv_max_parts(p), sizeof *parts);
    gv_exec *ex = calloc((size_t)gv_max_parts(p), sizeof *ex);
    int nex = 0;
    if (parts && ex) {
        gv_stage_parts(p, s, parts, ex, &nex);
        *out = gv_layout_of(&parts[ex[nex - 1].part].st);
        if (first) *first = gv_layout_of(&parts[ex[0].part].st);
        if (first_layers)
            *first_layers = (ex[0].phases & GV_PHASE_LAYERS) && !(ex[0].phases & GV_PHASE_EMBED);
    }
    free(parts);
    free(ex);
    return nex ? GV_OK : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
}

static gv_status gv_stage_out_layout(const gv_plan *p, int s, gv_layout *out) {
    return gv_stage_layouts(p, s, out, NULL, NULL);
}

/* Whether the link from stage s to s + 1 keeps its layout, so its messages can be device tensors: the
 * same test on both sides (from the plan alone). */
static gv_status gv_link_direct(const gv_plan *p, int s, int *direct) {
    gv_layout out, in, dummy;
    int layers = 0;
    GV_TRY(gv_stage_out_layout(p, s, &out));
    GV_TRY(gv_stage_layouts(p, s + 1, &dummy, &in, &layers));
    *direct = layers && out.tp == in.tp && out.sharded == in.sharded;
    return GV_OK;
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

/* Bytes of one channel of a device block of part layout y (compute dtype). */
static size_t gv_dev_bytes(const gv_hybrid *h, gv_layout y) {
    return gv_block(h, y) * gv_dtype_size(gv_backend_dtype(h->be));
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
            const float *from = (const float *)h->gather + (size_t)(ra - base) * blk +
                                ((size_t)(row - rb0) * rnt + (t - rt0)) * C;
            memcpy(dst + ((size_t)i * bnt + (t - bt0)) * C, from, (size_t)run * C * sizeof(float));
            t += run;
        }
    }
    return GV_OK;
}

/* The device form of gv_redistribute: dst <- src, backend buffers in the compute dtype [rows][positions][C]
 * (the same blocks, the same arithmetic). A contained block is one strided device copy; otherwise the
 * group's allgather runs on the device blocks (nccl natively, mpi through its front end's staging) and each
 * run of positions that one rank of a holds, over the rows it holds, is one strided copy. No host round
 * trip, and on f32 the same bytes as the host path. */
static gv_status gv_redistribute_dev(gv_hybrid *h, const void *src, gv_layout a, void *dst, gv_layout b) {
    int ab0, anb, at0, ant, bb0, bnb, bt0, bnt;
    size_t rowb = (size_t)h->C * h->esz; /* bytes of one position */
    gv_hold(h, a, h->lr, &ab0, &anb, &at0, &ant);
    gv_hold(h, b, h->lr, &bb0, &bnb, &bt0, &bnt);
    if (bb0 >= ab0 && bb0 + bnb <= ab0 + anb && bt0 >= at0 && bt0 + bnt <= at0 + ant) {
        const char *from = (const char *)src + ((size_t)(bb0 - ab0) * ant + (bt0 - at0)) * rowb;
        return gv_backend_copy2d(h->be, dst, (size_t)bnt * rowb, from, (size_t)ant * rowb, (size_t)bnt * rowb,
                                 (size_t)bnb);
    }
    int g = a.tp / gv_gcd(a.tp, b.tp) * b.tp, base = h->lr / g * g;
    size_t blkb = (size_t)anb * ant * rowb; /* bytes of one rank's block in a */
    GV_TRY(gv_backend_sync(h->be));         /* src is the compute stream's; the communicator reads it */
    GV_TRY(gv_comm_allgather(h->groups[g], src, h->gather, blkb, GV_COMM_U8));
    for (int t = bt0; t < bt0 + bnt;) {
        int ti = a.sharded ? t / ant : 0; /* tp index in a holding position t */
        int rt0 = a.sharded ? ti * ant : 0, end = rt0 + ant < bt0 + bnt ? rt0 + ant : bt0 + bnt,
            run = end - t;
        for (int i = 0; i < bnb;) {
            int row = bb0 + i, q = row / anb, rb0 = q * anb; /* dp index in a holding the row */
            int n = rb0 + anb - row < bnb - i ? rb0 + anb - row : bnb - i;
            int ra = q * a.tp + ti; /* the stage rank holding (row, t) in a */
            const char *from = (const char *)h->gather + (size_t)(ra - base) * blkb +
                               ((size_t)(row - rb0) * ant + (t - rt0)) * rowb;
            char *to = (char *)dst + ((size_t)i * bnt + (t - bt0)) * rowb;
            GV_TRY(gv_backend_copy2d(h->be, to, (size_t)bnt * rowb, from, (size_t)ant * rowb,
                                     (size_t)run * rowb, (size_t)n));
            i += n;
        }
        t = end;
    }
    return GV_OK;
}

/* Element `k` of a block buffer (host F32 or device compute dtype, by the path). */
static void *gv_at(const gv_hybrid *h, const void *buf, size_t k) {
    return (char *)buf + k * h->esz;
}

/* dst (this rank's block in b) <- src (its block in a) on the path's buffers, counted by path. */
static gv_status gv_move(gv_hybrid *h, const void *src, gv_layout a, void *dst, gv_layout b) {
    if (h->host_redist) {
        h->cnt.redist_host++;
        return gv_redistribute(h, src, a, dst, b);
    }
    h->cnt.redist_device++;
    return gv_redistribute_dev(h, src, a, dst, b);
}

/* Device view `view` of part p <- block src in layout a (redistributed to p's layout): on the host path
 * through tmp and an upload, else straight into the view on the device. */
static gv_status gv_put(gv_hybrid *h, const gv_part *p, void *view, const void *src, gv_layout a) {
    double t0 = gv_ms();
    gv_status st = gv_move(h, src, a, h->host_redist ? h->tmp : view, p->lay);
    if (st == GV_OK && h->host_redist)
        st = gv_backend_upload_f32(h->be, view, gv_backend_dtype(h->be), h->tmp, gv_block(h, p->lay));
    h->times.redistribute_ms += gv_ms() - t0;
    return st;
}

/* Block dst <- device view of part p (p's layout): a download to host F32, or a device copy. */
static gv_status gv_get(gv_hybrid *h, const gv_part *p, const void *view, void *dst) {
    double t0 = gv_ms();
    size_t n = gv_block(h, p->lay), rowb = (size_t)h->C * h->esz;
    gv_status st;
    if (h->host_redist) {
        h->cnt.redist_host++;
        st = gv_backend_sync(h->be);
        if (st == GV_OK) st = gv_backend_download_f32(h->be, dst, view, gv_backend_dtype(h->be), n);
    } else {
        h->cnt.redist_device++;
        st = gv_backend_copy2d(h->be, dst, rowb, view, rowb, rowb, n / h->C);
    }
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

gv_status gv_hybrid_host_redist_resolve(int host_redist, int *host) {
    *host = host_redist > 0;
    if (host_redist) return GV_OK;
    const char *v = getenv("GV_HOST_REDIST");
    if (!v || !*v || !strcmp(v, "0") || !strcmp(v, "off")) return GV_OK;
    if (!strcmp(v, "1") || !strcmp(v, "on")) {
        *host = 1;
        return GV_OK;
    }
    return gv_fail(GV_ERR_INVALID, "GV_HOST_REDIST '%s': expected on, off, 1 or 0", v);
}

int gv_hybrid_host_redist(const gv_hybrid *h) {
    return h->host_redist;
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

/* The links of the pipeline as one communicator per direction: for each pair (a, b = a + S) of link l,
 * [a, b] carries a's activations to b and [b, a] the gradients back. Every rank calls for every pair in
 * the same order (non-members return at once: the pool's calling rule). Also whether this stage's links
 * keep their layout (gv_link_direct). */
static gv_status gv_make_pipe_groups(gv_hybrid *h, const gv_plan *plan) {
    for (int l = 0; l + 1 < h->pp; l++)
        for (int i = 0; i < h->S; i++) {
            int a = l * h->S + i, fw[2] = {a, a + h->S}, bw[2] = {a + h->S, a};
            gv_comm *f = NULL, *b = NULL;
            GV_TRY(gv_comm_group(h->world, fw, 2, &f));
            GV_TRY(gv_comm_group(h->world, bw, 2, &b));
            if (h->wrank == a) h->to_next = f, h->from_next = b;
            if (h->wrank == a + h->S) h->from_prev = f, h->to_prev = b;
        }
    if (h->stage > 0) GV_TRY(gv_link_direct(plan, h->stage - 1, &h->dev_in));
    if (h->stage < h->pp - 1) GV_TRY(gv_link_direct(plan, h->stage, &h->dev_out));
    return GV_OK;
}

/* Host memory, not the backend's: the arena is allocated directly. */
static gv_status gv_host_commit(gv_hybrid *h) {
    h->a_comm.base = calloc(1, h->a_comm.size ? h->a_comm.size : 1);
    return h->a_comm.base ? GV_OK : gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory for staging");
}

static int gv_link_dev(const gv_hybrid *h, int next);

/* Buffers of the blocking path: x, y, g, dx (channels x the largest block mx), then on the host path the
 * redistribution's tmp and gather in host F32, the tied gradient; off it x, y, g, dx and gather are device
 * blocks in the compute dtype and the host keeps only the tied gradient. */
static gv_status gv_blocking_buffers(gv_hybrid *h, size_t mx) {
    size_t f = sizeof(float), c = (size_t)h->nch, es = h->esz, off[7] = {0};
    gv_arena *blocks = h->host_redist ? &h->a_comm : &h->a_dev;
    void **bufs[4] = {&h->x, &h->y, &h->g, &h->dx};
    for (int k = 0; k < 4; k++) off[k] = gv_arena_reserve(blocks, c * mx * es);
    if (h->host_redist) off[4] = gv_arena_reserve(blocks, mx * f);
    off[5] = gv_arena_reserve(blocks, mx * (size_t)h->S * es);
    if (h->tie_n) off[6] = gv_arena_reserve(&h->a_comm, h->tie_n * f);
    GV_TRY(gv_host_commit(h));
    if (!h->host_redist) GV_TRY(gv_arena_commit(&h->a_dev));
    for (int k = 0; k < 4; k++) *bufs[k] = gv_arena_ptr(blocks, off[k]);
    if (h->host_redist) h->tmp = gv_arena_ptr(blocks, off[4]);
    h->gather = gv_arena_ptr(blocks, off[5]);
    if (h->tie_n) h->tie = gv_arena_ptr(&h->a_comm, off[6]);
    return GV_OK;
}

/* Buffers of the nonblocking path, two of each (micro-batch parity). Host path, host F32 (channels x mx
 * each): x and dx of a link to the previous stage that redistributes, y and g of such a link to the next,
 * the chain's scratch when the stage has several parts or such a link to the previous stage (d(input) in
 * the first part's layout, before its redistribution), then tmp, gather and the tied gradient; device
 * (compute dtype, channels x the link's block): x and dx, y and g of links that keep their layout. Off the
 * host path every link's x and dx, y and g are device blocks of the sender's layout, then the chain's
 * scratch and gather, all in the compute dtype; the host keeps the tied gradient. */
static gv_status gv_pipe_buffers(gv_hybrid *h, size_t mx) {
    size_t f = sizeof(float), c = (size_t)h->nch, off[16];
    int n = 0, hin = h->stage > 0 && !h->dev_in, hout = h->stage < h->pp - 1 && !h->dev_out;
    int scratch = h->nex > 1 || hin; /* hin: dx before redistribution */
    float **hb[10];
    int nb = 0, host = h->host_redist;
    for (int k = 0; host && hin && k < 2; k++) hb[nb++] = &h->xh[k];
    for (int k = 0; host && hin && k < 2; k++) hb[nb++] = &h->dxh[k];
    for (int k = 0; host && hout && k < 2; k++) hb[nb++] = &h->yh[k];
    for (int k = 0; host && hout && k < 2; k++) hb[nb++] = &h->gh[k];
    for (int k = 0; host && scratch && k < 2; k++) hb[nb++] = (float **)&h->sc[k];
    for (; n < nb; n++) off[n] = gv_arena_reserve(&h->a_comm, c * mx * f);
    if (host) {
        off[n++] = gv_arena_reserve(&h->a_comm, mx * f);
        off[n++] = gv_arena_reserve(&h->a_comm, mx * (size_t)h->S * f);
    }
    if (h->tie_n) off[n++] = gv_arena_reserve(&h->a_comm, h->tie_n * f);
    GV_TRY(gv_host_commit(h));
    for (int k = 0; k < nb; k++) *hb[k] = gv_arena_ptr(&h->a_comm, off[k]);
    if (host) {
        h->tmp = gv_arena_ptr(&h->a_comm, off[nb]);
        h->gather = gv_arena_ptr(&h->a_comm, off[nb + 1]);
    }
    if (h->tie_n) h->tie = gv_arena_ptr(&h->a_comm, off[n - 1]);

    void **db[12];
    size_t dsz[12], doff[12];
    int nd = 0;
    for (int k = 0; gv_link_dev(h, 0) && h->stage > 0 && k < 4; k++) {
        db[nd] = k < 2 ? &h->xr[k] : &h->ds[k - 2];
        dsz[nd++] = c * gv_dev_bytes(h, h->in_lay);
    }
    for (int k = 0; gv_link_dev(h, 1) && h->stage < h->pp - 1 && k < 4; k++) {
        db[nd] = k < 2 ? &h->ys[k] : &h->gr[k - 2];
        dsz[nd++] = c * gv_dev_bytes(h, h->out_lay);
    }
    for (int k = 0; !host && scratch && k < 2; k++) {
        db[nd] = &h->sc[k];
        dsz[nd++] = c * mx * h->esz;
    }
    if (!host) {
        db[nd] = &h->gather;
        dsz[nd++] = mx * (size_t)h->S * h->esz;
    }
    for (int k = 0; k < nd; k++) doff[k] = gv_arena_reserve(&h->a_dev, dsz[k]);
    if (nd) GV_TRY(gv_arena_commit(&h->a_dev));
    for (int k = 0; k < nd; k++) *db[k] = gv_arena_ptr(&h->a_dev, doff[k]);
    return GV_OK;
}

static void gv_link_msg(const gv_hybrid *h, int next, size_t *count, gv_comm_dtype *dt);
static void *gv_buf_x(gv_hybrid *h, int k);
static void *gv_buf_dx(gv_hybrid *h, int k);
static void *gv_buf_y(gv_hybrid *h, int k);
static void *gv_buf_g(gv_hybrid *h, int k);

/* One blocking message of the real size each way on every link, link by link (stage s does link s - 1,
 * then link s: no cycle). NCCL connects a pair's send/recv channels at their first message and its host
 * call waits there for the peer, so without this the first nonblocking receives, posted long before their
 * sends, would wait for each other at the first batch. On mpi it only checks the links. */
static gv_status gv_pipe_warmup(gv_hybrid *h) {
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_backend_sync(h->be)); /* the zeroed device buffers */
    if (h->stage > 0) {
        gv_link_msg(h, 0, &n, &dt);
        GV_TRY(
            gv_comm_recv(h->from_prev, gv_buf_x(h, 0), n, dt, gv_comm_rank(h->from_prev) ^ 1, GV_TAG_PIPE));
        GV_TRY(gv_comm_send(h->to_prev, gv_buf_dx(h, 0), n, dt, gv_comm_rank(h->to_prev) ^ 1, GV_TAG_PIPE));
    }
    if (h->stage < h->pp - 1) {
        gv_link_msg(h, 1, &n, &dt);
        GV_TRY(gv_comm_send(h->to_next, gv_buf_y(h, 0), n, dt, gv_comm_rank(h->to_next) ^ 1, GV_TAG_PIPE));
        GV_TRY(
            gv_comm_recv(h->from_next, gv_buf_g(h, 0), n, dt, gv_comm_rank(h->from_next) ^ 1, GV_TAG_PIPE));
    }
    return GV_OK;
}

gv_status gv_hybrid_init(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be, gv_comm *world,
                         const gv_plan *plan, int seq, const char *where) {
    return gv_hybrid_init_opts(out, spec, be, world, plan, seq, where, NULL);
}

gv_status gv_hybrid_init_opts(gv_hybrid **out, const gv_model_spec *spec, gv_backend *be, gv_comm *world,
                              const gv_plan *plan, int seq, const char *where, const gv_hybrid_opts *opts) {
    *out = NULL;
    const char *w = where ? where : "plan";
    int overlap, host_redist;
    GV_TRY(gv_hybrid_overlap_resolve(opts ? opts->overlap : 0, &overlap));
    GV_TRY(gv_hybrid_host_redist_resolve(opts ? opts->host_redist : 0, &host_redist));
    int W = world ? gv_comm_size(world) : 1;
    if (W != plan->world)
        return gv_fail(GV_ERR_INVALID, "%s: plan is for %d ranks, the job has %d", w, plan->world, W);
    GV_TRY(gv_hybrid_check(spec, plan, where));
    gv_hybrid *h = calloc(1, sizeof *h);
    if (!h) return gv_fail(GV_ERR_NOMEM, "hybrid: out of host memory");
    h->spec = *spec;
    h->be = be;
    h->overlap = overlap;
    h->host_redist = host_redist;
    h->esz = host_redist ? sizeof(float) : gv_dtype_size(gv_backend_dtype(be));
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
    h->pipe_nb = overlap && plan->pp > 1 && world;
    if (st == GV_OK && h->pipe_nb) st = gv_make_pipe_groups(h, plan);
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
    gv_arena_init(&h->a_dev, "comm", be);
    if (st == GV_OK && (h->nparts > 1 || h->pp > 1)) {
        h->in_lay = (gv_layout){1, 0};
        if (h->stage > 0) st = gv_stage_out_layout(plan, h->stage - 1, &h->in_lay);
        if (st == GV_OK) st = gv_stage_out_layout(plan, h->stage, &h->out_lay);
        size_t mx = gv_block(h, h->in_lay);
        if (gv_block(h, h->out_lay) > mx) mx = gv_block(h, h->out_lay);
        for (int i = 0; i < h->nparts; i++)
            if (gv_block(h, h->parts[i].lay) > mx) mx = gv_block(h, h->parts[i].lay);
        h->blk_max = mx;
        if (h->tie_part >= 0) h->tie_n = gv_model_embedding_numel(h->parts[h->tie_part].m);
        if (st == GV_OK) st = h->pipe_nb ? gv_pipe_buffers(h, mx) : gv_blocking_buffers(h, mx);
        if (st == GV_OK && h->pipe_nb) st = gv_pipe_warmup(h);
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
    gv_arena_free(&h->a_dev); /* a failed batch may leave messages posted: its error ends the job */
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

/* Where a micro-batch's stage input comes from and where its stage output goes: blocks in the stage's
 * input / output layouts (host F32 on the host path, else device blocks in the compute dtype), or, with
 * in_dev / out_dev (a link without a layout change), device blocks in the first / last part's layout copied
 * as they are; forward: in = the previous stage's activation, out = this stage's; backward: in = d(this
 * stage's output), out = d(its input). sc: scratch of the chain between parts (the path's memory). */
typedef struct {
    const void *in;
    void *out;
    void *sc[2];
    int in_dev, out_dev;
} gv_mb_io;

/* A stream-ordered device copy between a message buffer and a part's view ([rows][C]: rows of C elements,
 * so the pitch stays small whatever the block's size). */
static gv_status gv_dev_copy(gv_hybrid *h, void *dst, const void *src, size_t bytes) {
    double t0 = gv_ms();
    size_t row = (size_t)h->C * gv_dtype_size(gv_backend_dtype(h->be));
    gv_status st = gv_backend_copy2d(h->be, dst, row, src, row, row, bytes / row);
    h->times.redistribute_ms += gv_ms() - t0;
    return st;
}

/* Forward of micro-batch mb in activation set `slot` (io: see gv_mb_io; io->in unused on stage 0, io->out
 * on the last stage). */
static gv_status gv_forward_mb(gv_hybrid *h, int mb, int slot, const int32_t *tokens, const int32_t *targets,
                               float *loss_sum, const gv_mb_io *io) {
    size_t BT = (size_t)h->Bm * h->T;
    const void *src = io->in;
    gv_layout src_lay = h->in_lay;
    int sc = 0; /* alternate so a part never overwrites its input */
    for (int e = 0; e < h->nex; e++) {
        gv_part *p = &h->parts[h->ex[e].part];
        int ph = h->ex[e].phases;
        if (ph & GV_PHASE_EMBED) gv_slice_ids(h, p, tokens + mb * BT * h->IW, h->tok, h->IW);
        if ((ph & GV_PHASE_HEAD) && targets) gv_slice_ids(h, p, targets + mb * BT, h->tgt, 1);
        for (int ch = 0; ch < h->nch; ch++) { /* each channel [rows][positions][C] after the one before */
            void *in = gv_model_part_input_ch(p->m, gv_first_phase(ph), slot, ch);
            if (in && e == 0 && io->in_dev)
                GV_TRY(gv_dev_copy(h, in, (const char *)io->in + ch * gv_dev_bytes(h, p->lay),
                                   gv_dev_bytes(h, p->lay)));
            else if (in)
                GV_TRY(gv_put(h, p, in, gv_at(h, src, ch * gv_block(h, src_lay)), src_lay));
        }
        float loss = 0;
        double t0 = gv_ms();
        GV_TRY(gv_model_part_forward(p->m, ph, slot, h->tok, targets ? h->tgt : NULL, &loss));
        h->times.forward_ms += gv_ms() - t0;
        if (ph & GV_PHASE_HEAD) {
            *loss_sum += loss;
            continue;
        }
        int last = ph & GV_PHASE_LAYERS ? GV_PHASE_LAYERS : GV_PHASE_EMBED;
        if (e + 1 == h->nex && io->out_dev) { /* the stage output stays on the device */
            for (int ch = 0; ch < h->nch; ch++)
                GV_TRY(gv_dev_copy(h, (char *)io->out + ch * gv_dev_bytes(h, p->lay),
                                   gv_model_part_output_ch(p->m, last, slot, ch), gv_dev_bytes(h, p->lay)));
            continue;
        }
        void *dst = e + 1 == h->nex ? io->out : io->sc[sc ^= 1];
        for (int ch = 0; ch < h->nch; ch++)
            GV_TRY(gv_get(h, p, gv_model_part_output_ch(p->m, last, slot, ch),
                          gv_at(h, dst, ch * gv_block(h, p->lay))));
        src = dst;
        src_lay = p->lay;
    }
    return GV_OK;
}

/* Backward of the micro-batch in `slot` (io: see gv_mb_io; io->in unused on the last stage, io->out on
 * stage 0). */
static gv_status gv_backward_mb(gv_hybrid *h, int slot, float dloss, const gv_mb_io *io) {
    const void *src = io->in;
    gv_layout src_lay = h->out_lay;
    int sc = 0, sent = 0;
    for (int e = h->nex - 1; e >= 0; e--) {
        gv_part *p = &h->parts[h->ex[e].part];
        int ph = h->ex[e].phases;
        for (int ch = 0; !(ph & GV_PHASE_HEAD) && ch < h->nch; ch++) {
            void *gv = gv_model_part_grad_ch(p->m, ch);
            if (e + 1 == h->nex && io->in_dev)
                GV_TRY(gv_dev_copy(h, gv, (const char *)io->in + ch * gv_dev_bytes(h, p->lay),
                                   gv_dev_bytes(h, p->lay)));
            else
                GV_TRY(gv_put(h, p, gv, gv_at(h, src, ch * gv_block(h, src_lay)), src_lay));
        }
        double t0 = gv_ms();
        GV_TRY(gv_model_part_backward(p->m, ph, slot, dloss));
        h->times.backward_ms += gv_ms() - t0;
        if (!gv_model_part_input(p->m, gv_first_phase(ph), slot)) continue;
        if (e == 0 && io->out_dev) { /* d(stage input) stays on the device (every channel has an input) */
            for (int ch = 0; ch < h->nch; ch++)
                GV_TRY(gv_dev_copy(h, (char *)io->out + ch * gv_dev_bytes(h, p->lay),
                                   gv_model_part_grad_ch(p->m, ch), gv_dev_bytes(h, p->lay)));
            sent = 1;
            continue;
        }
        void *dst = io->sc[sc ^= 1];
        size_t blk = gv_block(h, p->lay);
        for (int ch = 0; ch < h->nch; ch++) /* a channel the phase does not read has a zero gradient */
            if (gv_model_part_input_ch(p->m, gv_first_phase(ph), slot, ch))
                GV_TRY(gv_get(h, p, gv_model_part_grad_ch(p->m, ch), gv_at(h, dst, ch * blk)));
            else if (h->host_redist)
                memset(gv_at(h, dst, ch * blk), 0, blk * h->esz);
            else
                GV_TRY(gv_backend_memset0(h->be, gv_at(h, dst, ch * blk), blk * h->esz));
        src = dst;
        src_lay = p->lay;
    }
    double t0 = gv_ms();
    for (int ch = 0; h->stage > 0 && !sent && ch < h->nch; ch++)
        GV_TRY(gv_move(h, gv_at(h, src, ch * gv_block(h, src_lay)), src_lay,
                       gv_at(h, io->out, ch * gv_block(h, h->in_lay)), h->in_lay));
    h->times.redistribute_ms += gv_ms() - t0;
    return GV_OK;
}

/* The blocking path's buffers: the forward's chain uses dx and g (free during a forward), the backward's x
 * and y. */
static gv_mb_io gv_io_fwd_blocking(gv_hybrid *h) {
    gv_mb_io io = {h->x, h->y, {h->dx, h->g}, 0, 0};
    return io;
}
static gv_mb_io gv_io_bwd_blocking(gv_hybrid *h) {
    gv_mb_io io = {h->g, h->dx, {h->x, h->y}, 0, 0};
    return io;
}

/* ---- pipeline schedules ----------------------------------------------------------------------------- */

/* Blocking messages on the world (overlap off) of the blocks x, y, g, dx in layout y, k of them: host F32
 * elements, or the device blocks' bytes once the compute stream is done with them (the communicator reads
 * or writes the buffer). */
static gv_status gv_blk_msg(gv_hybrid *h, gv_layout y, int k, size_t *n, gv_comm_dtype *dt) {
    h->cnt.blocking += k;
    if (h->host_redist) {
        *n = h->nch * gv_block(h, y);
        *dt = GV_COMM_F32;
        h->cnt.host += k;
        return GV_OK;
    }
    *n = h->nch * gv_dev_bytes(h, y);
    *dt = GV_COMM_U8;
    h->cnt.device += k;
    return gv_backend_sync(h->be);
}
static gv_status gv_recv_fwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->in_lay, 1, &n, &dt));
    return gv_comm_recv(h->world, h->x, n, dt, h->wrank - h->S, GV_TAG_PIPE);
}
static gv_status gv_send_fwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->out_lay, 1, &n, &dt));
    return gv_comm_send(h->world, h->y, n, dt, h->wrank + h->S, GV_TAG_PIPE);
}
static gv_status gv_recv_bwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->out_lay, 1, &n, &dt));
    return gv_comm_recv(h->world, h->g, n, dt, h->wrank + h->S, GV_TAG_PIPE);
}
static gv_status gv_send_bwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->in_lay, 1, &n, &dt));
    return gv_comm_send(h->world, h->dx, n, dt, h->wrank - h->S, GV_TAG_PIPE);
}
/* Megatron's paired exchanges: deadlock-free with blocking messages. */
static gv_status gv_send_fwd_recv_bwd_(gv_hybrid *h) {
    if (h->stage == h->pp - 1) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->out_lay, 2, &n, &dt));
    return gv_comm_sendrecv(h->world, h->y, n, h->wrank + h->S, h->g, n, h->wrank + h->S, dt, GV_TAG_PIPE);
}
static gv_status gv_send_bwd_recv_fwd_(gv_hybrid *h) {
    if (h->stage == 0) return GV_OK;
    size_t n;
    gv_comm_dtype dt;
    GV_TRY(gv_blk_msg(h, h->in_lay, 2, &n, &dt));
    return gv_comm_sendrecv(h->world, h->dx, n, h->wrank - h->S, h->x, n, h->wrank - h->S, dt, GV_TAG_PIPE);
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

/* Whether the messages of the link to the next (or previous) stage are device blocks: a link without a
 * layout change, or any link off the host path. */
static int gv_link_dev(const gv_hybrid *h, int next) {
    return !h->host_redist || (next ? h->dev_out : h->dev_in);
}

/* Nonblocking messages (overlap on). A message of the link to the previous stage (x in, dx out) or to the
 * next (y out, g in), in the sender's layout: device bytes of the compute dtype, or host F32. */
static void gv_link_msg(const gv_hybrid *h, int next, size_t *count, gv_comm_dtype *dt) {
    int dev = gv_link_dev(h, next);
    gv_layout y = next ? h->out_lay : h->in_lay;
    *count = dev ? h->nch * gv_dev_bytes(h, y) : h->nch * gv_block(h, y); /* device: bytes, as they are */
    *dt = dev ? GV_COMM_U8 : GV_COMM_F32;
}

/* Posts a message: recv into / send from buf on c (the peer is the other rank of the pair). ready: after
 * the compute that wrote buf (send) or last read it (receive), for a device communicator. */
static gv_status gv_msg_post(gv_hybrid *h, gv_msg *m, gv_comm *c, void *buf, int next, int recv) {
    size_t n;
    gv_comm_dtype dt;
    gv_link_msg(h, next, &n, &dt);
    void *ready = NULL;
    int dev = gv_link_dev(h, next);
    if (dev) GV_TRY(gv_backend_event_record(h->be, &ready));
    int peer = gv_comm_rank(c) ^ 1;
    if (recv)
        GV_TRY(gv_comm_irecv(c, buf, n, dt, peer, GV_TAG_PIPE, ready, &m->q));
    else
        GV_TRY(gv_comm_isend(c, buf, n, dt, peer, GV_TAG_PIPE, ready, &m->q));
    m->at = h->ncompute;
    h->cnt.nonblocking++;
    if (dev)
        h->cnt.device++;
    else
        h->cnt.host++;
    return GV_OK;
}

/* Completes a message (none pending: nothing); the compute stream waits for what it moved. */
static gv_status gv_msg_wait(gv_hybrid *h, gv_msg *m, int recv) {
    if (!m->q) return GV_OK;
    void *ev = NULL;
    double t0 = gv_ms();
    gv_status st = gv_comm_req_wait(m->q, &ev);
    m->q = NULL;
    if (st == GV_OK) st = gv_backend_event_wait(h->be, ev);
    h->times.p2p_ms += gv_ms() - t0;
    if (h->ncompute > m->at) { /* a forward or backward ran while it was in flight */
        if (recv)
            h->cnt.early++;
        else
            h->cnt.overlapped++;
    }
    return st;
}

static void *gv_buf_x(gv_hybrid *h, int k) {
    return gv_link_dev(h, 0) ? h->xr[k] : (void *)h->xh[k];
}
static void *gv_buf_dx(gv_hybrid *h, int k) {
    return gv_link_dev(h, 0) ? h->ds[k] : (void *)h->dxh[k];
}
static void *gv_buf_y(gv_hybrid *h, int k) {
    return gv_link_dev(h, 1) ? h->ys[k] : (void *)h->yh[k];
}
static void *gv_buf_g(gv_hybrid *h, int k) {
    return gv_link_dev(h, 1) ? h->gr[k] : (void *)h->gh[k];
}

/* The receive of micro-batch i's activation (from the previous stage) / output gradient (from the next),
 * into the buffer of its parity: posted once the micro-batch two before has consumed it. */
static gv_status gv_post_x(gv_hybrid *h, int i) {
    if (h->stage == 0 || i >= h->M) return GV_OK;
    return gv_msg_post(h, &h->rx[i & 1], h->from_prev, gv_buf_x(h, i & 1), 0, 1);
}
static gv_status gv_post_g(gv_hybrid *h, int j) {
    if (h->stage == h->pp - 1 || j >= h->M) return GV_OK;
    return gv_msg_post(h, &h->rg[j & 1], h->from_next, gv_buf_g(h, j & 1), 1, 1);
}

/* Completes every send in flight (end of a batch: the buffers are free again and no request outlives it).
 */
static gv_status gv_pipe_drain(gv_hybrid *h) {
    for (int k = 0; k < 2; k++) {
        GV_TRY(gv_msg_wait(h, &h->sy[k], 0));
        GV_TRY(gv_msg_wait(h, &h->sd[k], 0));
        GV_TRY(gv_msg_wait(h, &h->rx[k], 1)); /* none is left by the schedules; kept for safety */
        GV_TRY(gv_msg_wait(h, &h->rg[k], 1));
    }
    return GV_OK;
}

static gv_status gv_fwd(gv_hybrid *h, int mb, const int32_t *tok, const int32_t *tgt, float *loss_sum,
                        const gv_mb_io *io) {
    int slot = mb % h->K;
    if (h->busy[slot])
        return gv_fail(GV_ERR_INVALID, "pipeline: activation set %d still holds a micro-batch", slot);
    h->busy[slot] = 1;
    int n = 0;
    for (int k = 0; k < h->K; k++) n += h->busy[k];
    if (n > h->peak) h->peak = n;
    return gv_forward_mb(h, mb, slot, tok, tgt, loss_sum, io);
}

static gv_status gv_bwd(gv_hybrid *h, int mb, float dloss, const gv_mb_io *io) {
    int slot = mb % h->K;
    /* backwards run in micro-batch order: the last one completes the gradients (sums start with overlap) */
    for (int i = 0; i < h->nparts; i++) gv_model_set_last_backward(h->parts[i].m, mb == h->M - 1);
    GV_TRY(gv_backward_mb(h, slot, dloss, io));
    h->busy[slot] = 0;
    return GV_OK;
}

/* Nonblocking forward of micro-batch i (train: in its activation set; else evaluation, set 0): waits for
 * its input and for the send that last used its output buffer, then starts its output's send and the
 * receive of micro-batch i + 2 into the input buffer it freed. */
static gv_status gv_fwd_nb(gv_hybrid *h, int i, const int32_t *tok, const int32_t *tgt, float *loss_sum,
                           int train) {
    int k = i & 1;
    GV_TRY(gv_msg_wait(h, &h->rx[k], 1));
    GV_TRY(gv_msg_wait(h, &h->sy[k], 0));
    gv_mb_io io = {gv_buf_x(h, k), gv_buf_y(h, k), {h->sc[0], h->sc[1]}, h->dev_in, h->dev_out};
    if (train)
        GV_TRY(gv_fwd(h, i, tok, tgt, loss_sum, &io));
    else
        GV_TRY(gv_forward_mb(h, i, 0, tok, tgt, loss_sum, &io)); /* nothing stays for a backward: set 0 */
    h->ncompute++;
    if (h->stage < h->pp - 1) GV_TRY(gv_msg_post(h, &h->sy[k], h->to_next, gv_buf_y(h, k), 1, 0));
    return gv_post_x(h, i + 2);
}

/* Nonblocking backward of micro-batch j, the same way round. */
static gv_status gv_bwd_nb(gv_hybrid *h, int j, float dloss) {
    int k = j & 1;
    GV_TRY(gv_msg_wait(h, &h->rg[k], 1));
    GV_TRY(gv_msg_wait(h, &h->sd[k], 0));
    gv_mb_io io = {gv_buf_g(h, k), gv_buf_dx(h, k), {h->sc[0], h->sc[1]}, h->dev_out, h->dev_in};
    GV_TRY(gv_bwd(h, j, dloss, &io));
    h->ncompute++;
    if (h->stage > 0) GV_TRY(gv_msg_post(h, &h->sd[k], h->to_prev, gv_buf_dx(h, k), 0, 0));
    return gv_post_g(h, j + 2);
}

/* Mean over micro-batches of the last stage's losses, on every rank. */
static gv_status gv_loss_mean(gv_hybrid *h, double sum, float *loss) {
    double x = h->stage == h->pp - 1 ? sum : 0.0;
    if (h->world) GV_TRY(gv_comm_allreduce(h->world, &x, &x, 1, GV_COMM_F64, GV_COMM_SUM));
    *loss = (float)(x / h->S / h->M);
    return GV_OK;
}

/* The schedules with nonblocking messages: the same order of forwards and backwards as the blocking ones
 * (so the same results), every receive posted as soon as its buffer is free (two ahead). Deadlock-free:
 * posting never blocks and each wait is for a message the blocking schedule would also have had by then. */
static gv_status gv_train_nb(gv_hybrid *h, const int32_t *tok, const int32_t *tgt, float dloss, float *ls) {
    int M = h->M;
    for (int i = 0; i < 2; i++) {
        GV_TRY(gv_post_x(h, i));
        GV_TRY(gv_post_g(h, i));
    }
    if (h->sched == GV_SCHED_GPIPE) {
        for (int i = 0; i < M; i++) GV_TRY(gv_fwd_nb(h, i, tok, tgt, ls, 1));
        for (int j = 0; j < M; j++) GV_TRY(gv_bwd_nb(h, j, dloss));
    } else {
        int warm = h->pp - h->stage - 1 < M ? h->pp - h->stage - 1 : M;
        for (int i = 0; i < warm; i++) GV_TRY(gv_fwd_nb(h, i, tok, tgt, ls, 1));
        for (int j = 0; j < M - warm; j++) {
            GV_TRY(gv_fwd_nb(h, warm + j, tok, tgt, ls, 1));
            GV_TRY(gv_bwd_nb(h, j, dloss));
        }
        for (int j = M - warm; j < M; j++) GV_TRY(gv_bwd_nb(h, j, dloss));
    }
    return gv_pipe_drain(h);
}

gv_status gv_hybrid_train_batch(gv_hybrid *h, const int32_t *tok, const int32_t *tgt, float *loss) {
    int M = h->M;
    /* Every row counts once in the global mean: 1/(M * dp) per micro-batch mean of a head rank. */
    float dloss = 1.0f / (float)(M * h->head_ndp);
    float ls = 0;
    for (int i = 0; i < h->nparts; i++) gv_model_set_train_dloss(h->parts[i].m, dloss);
    gv_mb_io fio = gv_io_fwd_blocking(h), bio = gv_io_bwd_blocking(h);
    if (h->pp == 1) {
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls, &fio));
            GV_TRY(gv_bwd(h, i, dloss, &bio));
        }
    } else if (h->pipe_nb) {
        GV_TRY(gv_train_nb(h, tok, tgt, dloss, &ls));
    } else if (h->sched == GV_SCHED_GPIPE) {
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_recv_fwd(h));
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls, &fio));
            GV_TRY(gv_send_fwd(h));
        }
        for (int i = 0; i < M; i++) {
            GV_TRY(gv_recv_bwd(h));
            GV_TRY(gv_bwd(h, i, dloss, &bio));
            GV_TRY(gv_send_bwd(h));
        }
    } else { /* 1F1B: warm-up forwards, one forward / one backward, cool-down backwards */
        int warm = h->pp - h->stage - 1 < M ? h->pp - h->stage - 1 : M, rest = M - warm;
        for (int i = 0; i < warm; i++) {
            GV_TRY(gv_recv_fwd(h));
            GV_TRY(gv_fwd(h, i, tok, tgt, &ls, &fio));
            GV_TRY(gv_send_fwd(h));
        }
        if (rest > 0) GV_TRY(gv_recv_fwd(h));
        for (int j = 0; j < rest; j++) {
            GV_TRY(gv_fwd(h, warm + j, tok, tgt, &ls, &fio));
            GV_TRY(gv_send_fwd_recv_bwd(h));
            GV_TRY(gv_bwd(h, j, dloss, &bio));
            if (j + 1 == rest)
                GV_TRY(gv_send_bwd(h));
            else
                GV_TRY(gv_send_bwd_recv_fwd(h));
        }
        for (int j = rest; j < M; j++) {
            GV_TRY(gv_recv_bwd(h));
            GV_TRY(gv_bwd(h, j, dloss, &bio));
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
    if (h->pipe_nb) {
        for (int i = 0; i < 2; i++) GV_TRY(gv_post_x(h, i));
        for (int i = 0; i < h->M; i++) GV_TRY(gv_fwd_nb(h, i, tok, tgt, &ls, 0));
        GV_TRY(gv_pipe_drain(h));
    } else {
        gv_mb_io io = gv_io_fwd_blocking(h);
        for (int i = 0; i < h->M; i++) {
            GV_TRY(gv_recv_fwd(h));
            GV_TRY(gv_forward_mb(h, i, 0, tok, tgt, &ls, &io)); /* nothing stays for a backward: set 0 */
            GV_TRY(gv_send_fwd(h));
        }
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
    r->comm += h->a_comm.size + h->a_dev.size;
}

void gv_hybrid_p2p_stats(const gv_hybrid *h, gv_hybrid_p2p_counts *c) {
    *c = h->cnt;
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
