/* The single-process model executor: parameter table, one arena per memory category with named views,
 * forward and backward of a GPT-2 / LLaMA decoder over the backend's ops, and the mapping between the
 * internal layout and Hugging Face tensor names.
 *
 * Internal layout (what the ops see): every linear weight is [OC, C]; q, k and v are one packed matrix
 * [(H + 2 KVH) D, C]; SwiGLU's gate and up are one packed matrix [2F, C]; vocab matrices have Vp >= V rows
 * (rows >= V stay zero). HF layouts differ (GPT-2's Conv1D stores [C, OC]; LLaMA splits q/k/v and gate/up);
 * export/import converts, so checkpoints load in the Hugging Face ecosystem. */
#include "gv/model.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/arena.h"
#include "gv/comm.h"
#include "gv/rng.h"

enum { GV_INIT_NORMAL, GV_INIT_RESID, GV_INIT_ONES, GV_INIT_ZEROS };

/* A parameter as this rank holds it: a [rows, cols] slice of the global [g_rows, g_cols] tensor. Under
 * tensor parallelism the slice is up to 3 segments of global rows (q, k, v heads of a packed matrix; gate
 * and up of SwiGLU) and the columns [c0, c0 + cols) (row-parallel linears); replicated parameters hold all.
 */
typedef struct {
    char name[64]; /* internal name; also the RNG stream of its initial values */
    int ndim;
    int64_t rows, cols;     /* local; cols = 1 for vectors */
    int64_t g_rows, g_cols; /* global */
    int64_t g_real_rows;    /* global rows that exist in the real model (V of Vp for vocab matrices) */
    int nseg;
    int64_t seg0[3], segn[3]; /* local rows = global rows [seg0[k], seg0[k] + segn[k]) in order */
    int64_t c0;
    int sharded; /* differs across the tensor-parallel group */
    size_t off;  /* element offset, the same in every per-parameter buffer */
    int init;
    int decay;
    int unit;    /* ZeRO-3 unit: 0 embeddings, 1..nl the layers, nl + 1 the head */
    int seqpart; /* applied to this rank's positions only under Megatron-SP: partial gradient over tp */
    int copy;    /* a copy of a parameter another part holds (T5's relative bias table in a part without the
                  * stack's block 0): left out of the gradient norm; the runtime sums the copies' gradients */
} gv_param;

/* One HF tensor = rows [row0, row0+rows) of one internal parameter, optionally transposed. */
typedef struct {
    char name[96];
    int param;
    int64_t row0, rows;
    int transpose;
    int ndim; /* > 0: the HF tensor has this shape (same elements in the same order), e.g. a conv kernel */
    int64_t shape[4];
} gv_hf_piece;

typedef struct {
    int ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcproj_w, fcproj_b;
    int lnc_w, cq_w, ckv_w, co_w; /* T5 decoder: cross-attention norm, q, packed k/v, output projection */
} gv_layer_idx;

/* Activation views of one layer (byte offsets into the activation arena). */
typedef struct {
    size_t ln1, ln1_mean, ln1_rstd; /* [N,C], [N], [N] */
    size_t qkv, qkv_r;              /* [N,QKV] (qkv_r: after RoPE; == qkv without RoPE) */
    size_t stash;                   /* attention stash */
    size_t atty;                    /* [N,H*D] */
    size_t attproj, res1;           /* [N,C] */
    size_t ln2, ln2_mean, ln2_rstd; /* [N,C], [N], [N] */
    size_t fch;                     /* [N,F2] (F2 = 2F for SwiGLU) */
    size_t fch_act;                 /* [N,F] */
    size_t fcproj, res2;            /* [N,C] */
    size_t qkv_sp, atty_sp;         /* Ulysses: [B,Tf,QKVs], [B,Tf,Hs*D] (full sequence, head group) */
    /* Megatron-SP: ln1/ln2 and the residual stream hold Nl = N/tp rows (this rank's positions); ln1f/ln2f
     * are their gathered [N,C] forms and attproj_p/fcproj_p the [N,C] partial sums before the
     * reduce-scatter. Without it they alias ln1, ln2, attproj, fcproj. */
    size_t ln1f, ln2f, attproj_p, fcproj_p;
    /* T5 decoder: cross-attention norm [N,C] (+ rstd [N]), q [N,H*D], k/v of the encoder output [N,2KD],
     * output [N,H*D], its stash, the stream after it [N,C] */
    size_t lnc, lnc_rstd, cq, ckv, catty, cstash, resc;
    size_t lncf; /* [N,C] gathered lnc (the shared gathered view under Megatron-SP, else lnc) */
    size_t cq_sp, ckv_sp, catty_sp; /* Ulysses: [B,Tf,Hs*D], [B,Tf,2KVHs*D], [B,Tf,Hs*D] */
} gv_layer_acts;

struct gv_model {
    gv_model_spec spec;
    gv_backend *be;
    gv_dtype dt; /* compute dtype */
    size_t esz;  /* its size */
    int B, T, N, C, H, KVH, D, QKV, F, F2, L, V, Vp;
    int arch, causal, post; /* family; causal attention; post-LN blocks (BERT) */
    int IW, Pd;             /* input words per position; ViT: pixels per patch */
    /* This part: global layers [l0, l0 + nl) (li/la/ckpt are indexed by l - l0), with or without the
     * embedding and the head. */
    int l0, nl, has_embed, has_head, tied_copy, meta_only;
    int has_copy; /* holds copies of other parts' parameters (gv_param.copy) */
    /* Activation sets: views are offsets inside one set; set k starts at k * slot_bytes. */
    int nslots, slot;
    size_t slot_bytes;
    float *loss_divs;  /* [nslots] loss_div of the forward held in each set */
    float train_dloss; /* > 0: forwards with targets are training's, their backward takes this dloss */
    float *ce_dloss;   /* [nslots] > 0: that forward left the loss gradient (for this dloss) in the logits */
    int *fwd_done;     /* [nslots] */
    int u0_open; /* ZeRO-3: the embedding unit's gradient slot is collecting (tied head, then embedding) */

    gv_param *params;
    int nparams;
    size_t param_elems; /* total elements incl. alignment */
    gv_layer_idx *li;
    int wte, wpe, lnf_w, lnf_b, lm_head;
    int wtt, embln_w, embln_b;   /* BERT: token types, embedding LayerNorm */
    int patch_w, patch_b, cls;   /* ViT: patch projection [C, Pd], its bias, class token [1, C] */
    int head_w, head_b, lm_bias; /* BERT head transform dense [C, C]; bias of the decoder / classifier */
    int cur_unit;                /* unit of the parameters being added */
    /* T5: encoder layers [0, Le), decoder layers [Le, L); relative bias tables of the two stacks (this
     * part's, or its copies); the encoder's final norm. Between parts the activation has two channels of
     * [Nl,C]: before the last encoder layer (encoder stream, decoder embedding), after it (decoder stream,
     * encoder output); o_input1 is channel 1's input (t5_in1), o_dch1 its gradient. */
    int Le, rel_enc, rel_dec, encf_w, t5_in1;
    size_t o_dec_tokens, o_dec_emb, o_enc_out, o_encf_rstd; /* [N] I32, [Nl,C], [Nl,C], [Nl] */
    size_t o_input1, o_dch1, o_enc_full;                    /* [Nl,C], [Nl,C], [N,C] gathered enc_out */
    size_t o_bias_enc, o_bias_dec, o_bias_tmp;              /* F32 [Tf,Tf,Hb] x 2, compute [Tf*Tf,Hb] */
    size_t o_bk_enc, o_bk_dec;                              /* workspace I32 [Tf*Tf]: the buckets */
    size_t o_bias_slice; /* workspace, Ulysses: compute [buckets, Hs], the head group's table columns */
    size_t o_dbias_enc, o_dbias_dec, o_denc; /* workspace F32 [T,T,H] x 2, [N,C] */
    size_t o_dcq, o_dckv, o_dcatty;          /* workspace [N,HD], [N,2KD], [N,HD] */
    size_t o_dcq_sp, o_dckv_sp, o_dcatty_sp; /* Ulysses: as cq_sp, ckv_sp, catty_sp */
    gv_hf_piece *hf;
    int nhf;

    /* data parallelism: the flat parameter space [0, param_elems) is cut into dp_size equal shards; with
     * ZeRO-1/2 this rank's optimizer state (and fp32 master, if separate: bf16) covers only [s0, s0 +
     * shard), indexed from 0; ZeRO-3 keeps every per-parameter buffer in the shard space (below). */
    gv_comm *dp;
    int dp_size, dp_rank, zero;
    size_t shard, s0;
    /* ZeRO-3: parameters live as this rank's pieces of each unit (the vocab layers, each transformer layer,
     * the final norm/head), a "shard space" of S elements; a unit is all-gathered into a working slot just
     * before use. wp[i]/gp[i] point at parameter i's weights/gradients wherever they are (the flat buffers,
     * or a slot under ZeRO-3). */
    int nunits;
    size_t *u_start, *u_size, *u_shoff; /* [nunits] global start, padded size, offset of this rank's piece */
    int *p_unit;                        /* [nparams] */
    void *slot_w[4], *slot_g[4]; /* 0: vocab unit, 1: layers (3: the even ones with overlap), 2: final */
    void **wp, **gp;
    /* Overlap (gv_model_dist.no_overlap = 0). ZeRO-3: two layer slots (the next unit is gathered into one
     * while the other computes; a unit's gradient reduce-scatter runs while the next one's backward fills
     * the other), pf_req/rs_req the pending gather / reduce-scatter of each slot. Else the buckets of the
     * gradient sums: consecutive units, bucket k = flat [bk_lo[k], bk_hi[k]) from the head down (the order
     * backward finishes them); bk_late: holds gradients the hybrid fixes up before the sums (the embedding,
     * a tied head copy, T5's bias tables), started only in gv_model_reduce_grads. */
    int overlap, zslot2, pf_dir, last_bwd;
    gv_comm_req *pf_req[4], *rs_req[4];
    int pf_unit[4], rs_unit[4];
    int nbk;
    size_t *bk_lo, *bk_hi;
    int *bk_late, *bk_unit0; /* bk_unit0: the lowest unit of the bucket */
    int *bk_started;         /* this step */
    int *unit_done;          /* [nunits] backward of the last micro-batch finished the unit */
    gv_comm_req **reqs;      /* the gradient sums in flight */
    int nreqs, capreqs;
    long n_early, n_prefetched; /* buckets started during a backward, gathers a prefetch served (counts) */
    /* tensor parallelism (Megatron): heads, FFN columns and (with vp) vocab rows split over the tp group */
    gv_comm *tp;
    int tp_size, tp_rank, vp;
    int Hl, KVHl, Fl, QKVl, F2l; /* local heads, kv heads, FFN size, packed qkv rows, fc rows */
    int Vpl, Vl, v0;             /* local vocab rows (padded), real local columns, first global vocab row */
    size_t o_lse;                /* [N] full-row log-sum-exp of the forward (vocab parallel; activations) */
    /* Ulysses sequence parallelism: this rank holds T = Tf/sp positions of every sequence; attention runs
     * on the full sequence for Hs = H/sp heads, reached by all-to-alls on either side. */
    gv_comm *sp;
    int sp_size, sp_rank, Tf, Hs, KVHs, QKVs;
    int msp, Nl;                /* Megatron sequence parallelism; rows of the residual stream on this rank */
    float *a2a_send, *a2a_recv; /* [N*QKV] f32-sized scratch each, backend memory (comm buffers) */
    gv_arena a_comm;

    gv_arena a_params, a_grads, a_opt, a_acts, a_work;
    void *weights, *grads;  /* compute dtype */
    float *master;          /* F32 master weights (== weights on an F32 backend), [shard] when separate */
    float *adam_m, *adam_v; /* F32 [shard] */

    /* activations */
    size_t o_tokens, o_targets, o_encoded, o_lnf, o_lnf_mean, o_lnf_rstd, o_logits, o_losses;
    size_t o_emb_full, o_lnf_full;    /* [N,C]: partial embedding, gathered final norm (alias without msp) */
    size_t o_types, o_pix, o_emb_tmp; /* BERT [N] I32 types; ViT [N,Pd] pixels; [N,C] scratch */
    size_t o_embln, o_embln_mean, o_embln_rstd; /* BERT: [Nl,C] embedding LayerNorm (the layers' input) */
    size_t o_hd, o_hg;                          /* BERT head: [Nl,C] dense, GELU */
    size_t o_input, o_head_in; /* [Nl,C] inputs filled by the caller (part without embedding / layers) */
    gv_layer_acts *la;
    /* backward scratch (workspace) */
    size_t o_dres_full, o_dln_l; /* [N,C] gathered d(residual), [Nl,C] scattered d(norm out) */
    size_t o_dres, o_dln, o_dqkv, o_dqkv_r, o_datty, o_dfch, o_dfch_act, o_dqkv_sp, o_datty_sp;
    size_t o_dpost, o_dhead; /* [Nl,C]: d(post-LN norm input), d(BERT head dense) */

    int *ckpt;          /* [L] layer recomputes its activations in backward */
    int32_t *h_targets; /* host copy of the last targets */
    int32_t *h_ids;     /* host [N] vocab-shard-relative token ids */
    int32_t *h_types;   /* host [N] BERT token types */
    float *h_pix;       /* host [N,Pd] ViT pixels scaled to [-1, 1] */
    float *h_vp;        /* host [3N] vocab-parallel loss scratch */
    float *h_losses;
    int n_valid;    /* targets counted in the last forward on this rank */
    float loss_div; /* what the summed row losses are divided by (n_valid; sp-group count / sp) */
    int have_forward;
};

/* ---- parameter table ------------------------------------------------------------------------------- */

/* T5 parts: whether this part holds the last encoder layer (it computes the encoder output), and decoder
 * layers. */
static int gv_t5_has_enc_end(const gv_model *m) {
    return m->l0 < m->Le && m->l0 + m->nl >= m->Le;
}
static int gv_t5_has_dec(const gv_model *m) {
    return m->l0 + m->nl > m->Le;
}

/* A replicated parameter of global shape [rows, cols]. */
static int gv_add_param(gv_model *m, const char *name, int64_t rows, int64_t cols, int64_t real_rows,
                        int init, int decay) {
    gv_param *p = &m->params[m->nparams];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = cols > 1 ? 2 : 1;
    p->rows = p->g_rows = rows;
    p->cols = p->g_cols = cols;
    p->g_real_rows = real_rows;
    p->nseg = 1;
    p->seg0[0] = 0;
    p->segn[0] = rows;
    p->init = init;
    p->decay = decay;
    p->unit = m->cur_unit;
    return m->nparams++;
}

/* Shards parameter i: local rows = the given global row segments, local columns [c0, c0 + cols). */
static void gv_shard_param(gv_model *m, int i, int nseg, const int64_t *seg0, const int64_t *segn, int64_t c0,
                           int64_t cols) {
    gv_param *p = &m->params[i];
    p->nseg = nseg;
    p->rows = 0;
    for (int k = 0; k < nseg; k++) {
        p->seg0[k] = seg0[k];
        p->segn[k] = segn[k];
        p->rows += segn[k];
    }
    p->c0 = c0;
    p->cols = cols;
    p->sharded = 1;
}

/* Global row of local row r. */
static int64_t gv_global_row(const gv_param *p, int64_t r) {
    for (int k = 0; k < p->nseg; k++) {
        if (r < p->segn[k]) return p->seg0[k] + r;
        r -= p->segn[k];
    }
    return -1;
}

static void gv_add_hf(gv_model *m, int param, int64_t row0, int64_t rows, int transpose, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void gv_add_hf(gv_model *m, int param, int64_t row0, int64_t rows, int transpose, const char *fmt,
                      ...) {
    gv_hf_piece *h = &m->hf[m->nhf++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->name, sizeof h->name, fmt, ap);
    va_end(ap);
    h->param = param;
    h->row0 = row0;
    h->rows = rows;
    h->transpose = transpose;
    h->ndim = 0;
}

/* The last HF piece has this HF shape (ViT's [1,1,C] class token, [1,T,C] positions, [C,ch,P,P] kernel). */
static void gv_hf_reshape(gv_model *m, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    gv_hf_piece *h = &m->hf[m->nhf - 1];
    h->ndim = ndim;
    h->shape[0] = d0, h->shape[1] = d1, h->shape[2] = d2, h->shape[3] = d3;
}

/* T5 (HF T5ForConditionalGeneration): shared embedding; encoder blocks (self-attention, MLP; block 0 holds
 * the stack's relative bias table) and the encoder's final norm (with the last encoder block's unit);
 * decoder blocks (self-attention, cross-attention, MLP; block 0 holds the decoder's table); the decoder's
 * final norm; the LM head is the shared embedding. A part with layers of a stack but not its block 0 holds a
 * copy of the stack's table (same name and initial values) in its first layer of the stack; a head without
 * the embedding holds a copy of the embedding (tied across pipeline stages). */
static void gv_t5_params(gv_model *m) {
    const gv_model_spec *s = &m->spec;
    int L = m->nl, C = m->C, HD = m->H * m->D, KD = m->KVH * m->D, F = m->F, nb = s->rel_buckets;
    char nm[64];
    m->wte = m->wpe = m->wtt = m->embln_w = m->embln_b = m->patch_w = m->patch_b = m->cls = -1;
    m->lnf_w = m->lnf_b = m->lm_head = m->head_w = m->head_b = m->lm_bias = -1;
    m->cur_unit = 0;
    if (m->has_embed) {
        m->wte = gv_add_param(m, "wte", m->Vp, C, m->V, GV_INIT_NORMAL, 1);
        gv_add_hf(m, m->wte, 0, m->V, 0, "shared.weight");
    }
    for (int j = 0; j < L; j++) {
        int l = m->l0 + j; /* global layer: names and initial values */
        gv_layer_idx *x = &m->li[j];
        int dec = l >= m->Le, b = dec ? l - m->Le : l;
        char pre[48];
        snprintf(pre, sizeof pre, dec ? "decoder.block.%d." : "encoder.block.%d.", b);
        m->cur_unit = j + 1;
#define P(field, suffix, rows, cols, init)                                                                   \
    do {                                                                                                     \
        snprintf(nm, sizeof nm, "layer%d.%s", l, suffix);                                                    \
        x->field = gv_add_param(m, nm, rows, cols, rows, init, (cols) > 1);                                  \
    } while (0)
        x->ln1_b = x->ln2_b = x->qkv_b = x->proj_b = x->fc_b = x->fcproj_b = -1;
        x->lnc_w = x->cq_w = x->ckv_w = x->co_w = -1;
        P(ln1_w, "ln1.weight", C, 1, GV_INIT_ONES);
        gv_add_hf(m, x->ln1_w, 0, C, 0, "%slayer.0.layer_norm.weight", pre);
        P(qkv_w, "qkv.weight", HD + 2 * KD, C, GV_INIT_NORMAL);
        gv_add_hf(m, x->qkv_w, 0, HD, 0, "%slayer.0.SelfAttention.q.weight", pre);
        gv_add_hf(m, x->qkv_w, HD, KD, 0, "%slayer.0.SelfAttention.k.weight", pre);
        gv_add_hf(m, x->qkv_w, HD + KD, KD, 0, "%slayer.0.SelfAttention.v.weight", pre);
        P(proj_w, "attn_proj.weight", C, HD, GV_INIT_RESID);
        gv_add_hf(m, x->proj_w, 0, C, 0, "%slayer.0.SelfAttention.o.weight", pre);
        if (b == 0 || j == 0 || l == m->Le) { /* [buckets, H]: the stack's table, or this part's copy */
            int t = gv_add_param(m, dec ? "dec.rel_bias" : "enc.rel_bias", nb, m->H, nb, GV_INIT_NORMAL, 0);
            gv_add_hf(m, t, 0, nb, 0, "%s.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                      dec ? "decoder" : "encoder");
            m->params[t].copy = b != 0;
            if (dec)
                m->rel_dec = t;
            else
                m->rel_enc = t;
        }
        int ff = 1;
        if (dec) {
            ff = 2;
            P(lnc_w, "lnc.weight", C, 1, GV_INIT_ONES);
            gv_add_hf(m, x->lnc_w, 0, C, 0, "%slayer.1.layer_norm.weight", pre);
            P(cq_w, "cross_q.weight", HD, C, GV_INIT_NORMAL);
            gv_add_hf(m, x->cq_w, 0, HD, 0, "%slayer.1.EncDecAttention.q.weight", pre);
            P(ckv_w, "cross_kv.weight", 2 * KD, C, GV_INIT_NORMAL);
            gv_add_hf(m, x->ckv_w, 0, KD, 0, "%slayer.1.EncDecAttention.k.weight", pre);
            gv_add_hf(m, x->ckv_w, KD, KD, 0, "%slayer.1.EncDecAttention.v.weight", pre);
            P(co_w, "cross_o.weight", C, HD, GV_INIT_RESID);
            gv_add_hf(m, x->co_w, 0, C, 0, "%slayer.1.EncDecAttention.o.weight", pre);
            m->params[x->lnc_w].seqpart = 1;
        }
        P(ln2_w, "ln2.weight", C, 1, GV_INIT_ONES);
        gv_add_hf(m, x->ln2_w, 0, C, 0, "%slayer.%d.layer_norm.weight", pre, ff);
        P(fc_w, "fc.weight", F, C, GV_INIT_NORMAL);
        gv_add_hf(m, x->fc_w, 0, F, 0, "%slayer.%d.DenseReluDense.wi.weight", pre, ff);
        P(fcproj_w, "fc_proj.weight", C, F, GV_INIT_RESID);
        gv_add_hf(m, x->fcproj_w, 0, C, 0, "%slayer.%d.DenseReluDense.wo.weight", pre, ff);
#undef P
        m->params[x->ln1_w].seqpart = m->params[x->ln2_w].seqpart = 1;
        if (l == m->Le - 1) {
            m->encf_w = gv_add_param(m, "enc_final.weight", C, 1, C, GV_INIT_ONES, 0);
            gv_add_hf(m, m->encf_w, 0, C, 0, "encoder.final_layer_norm.weight");
            m->params[m->encf_w].seqpart = 1;
        }
    }
    m->cur_unit = L + 1;
    if (m->has_head) {
        m->lnf_w = gv_add_param(m, "lnf.weight", C, 1, C, GV_INIT_ONES, 0);
        gv_add_hf(m, m->lnf_w, 0, C, 0, "decoder.final_layer_norm.weight");
        m->params[m->lnf_w].seqpart = 1;
        m->lm_head = m->wte;
        if (!m->has_embed) { /* a copy of the embedding of another part, under the same name */
            m->lm_head = gv_add_param(m, "wte", m->Vp, C, m->V, GV_INIT_NORMAL, 1);
            gv_add_hf(m, m->lm_head, 0, m->V, 0, "shared.weight");
        }
    }
}

static void gv_build_params(gv_model *m) {
    const gv_model_spec *s = &m->spec;
    int gpt2 = s->arch == GV_ARCH_GPT2, ln = s->norm == GV_NORM_LAYERNORM, bias = s->bias;
    int L = m->nl, C = m->C, HD = m->H * m->D, KD = m->KVH * m->D, F = m->F;
    m->params = calloc((size_t)(16 * L + 16), sizeof *m->params);
    m->hf = calloc((size_t)(24 * L + 16), sizeof *m->hf);
    m->li = calloc((size_t)L + 1, sizeof *m->li);
    char nm[64];
    int bert = s->arch == GV_ARCH_BERT, vit = s->arch == GV_ARCH_VIT, enc = bert || vit;
    const char *wte_hf = gpt2   ? "wte.weight"
                         : bert ? "bert.embeddings.word_embeddings.weight"
                                : "model.embed_tokens.weight";

    m->rel_enc = m->rel_dec = m->encf_w = -1;
    if (s->arch == GV_ARCH_T5) {
        gv_t5_params(m);
    } else {
        m->wte = m->wpe = m->wtt = m->embln_w = m->embln_b = m->patch_w = m->patch_b = m->cls = -1;
        m->cur_unit = 0;
        if (m->has_embed && vit) {
            int64_t T = s->max_seq;
            m->patch_w = gv_add_param(m, "patch.weight", C, m->Pd, C, GV_INIT_NORMAL, 1);
            gv_add_hf(m, m->patch_w, 0, C, 0, "vit.embeddings.patch_embeddings.projection.weight");
            gv_hf_reshape(m, 4, C, s->channels, s->patch_size, s->patch_size); /* Conv2d [C, ch, P, P] */
            m->patch_b = gv_add_param(m, "patch.bias", C, 1, C, GV_INIT_ZEROS, 0);
            gv_add_hf(m, m->patch_b, 0, C, 0, "vit.embeddings.patch_embeddings.projection.bias");
            m->cls = gv_add_param(m, "cls", 1, C, 1, GV_INIT_NORMAL, 0);
            gv_add_hf(m, m->cls, 0, 1, 0, "vit.embeddings.cls_token");
            gv_hf_reshape(m, 3, 1, 1, C, 0);
            m->wpe = gv_add_param(m, "wpe", T, C, T, GV_INIT_NORMAL, 1);
            gv_add_hf(m, m->wpe, 0, T, 0, "vit.embeddings.position_embeddings");
            gv_hf_reshape(m, 3, 1, T, C, 0);
        } else if (m->has_embed) {
            m->wte = gv_add_param(m, "wte", m->Vp, C, m->V, GV_INIT_NORMAL, 1);
            gv_add_hf(m, m->wte, 0, m->V, 0, "%s", wte_hf);
            if (s->pos == GV_POS_LEARNED) {
                m->wpe = gv_add_param(m, "wpe", s->max_seq, C, s->max_seq, GV_INIT_NORMAL, 1);
                gv_add_hf(m, m->wpe, 0, s->max_seq, 0, "%s",
                          gpt2   ? "wpe.weight"
                          : bert ? "bert.embeddings.position_embeddings.weight"
                                 : "model.embed_positions.weight");
            }
            if (bert) {
                m->wtt = gv_add_param(m, "wtt", s->type_vocab, C, s->type_vocab, GV_INIT_NORMAL, 1);
                gv_add_hf(m, m->wtt, 0, s->type_vocab, 0, "bert.embeddings.token_type_embeddings.weight");
                m->embln_w = gv_add_param(m, "emb_ln.weight", C, 1, C, GV_INIT_ONES, 0);
                gv_add_hf(m, m->embln_w, 0, C, 0, "bert.embeddings.LayerNorm.weight");
                m->embln_b = gv_add_param(m, "emb_ln.bias", C, 1, C, GV_INIT_ZEROS, 0);
                gv_add_hf(m, m->embln_b, 0, C, 0, "bert.embeddings.LayerNorm.bias");
                m->params[m->embln_w].seqpart = m->params[m->embln_b].seqpart = 1;
            }
        }
        for (int j = 0; j < L; j++) {
            int l = m->l0 + j; /* global layer: names and initial values */
            gv_layer_idx *x = &m->li[j];
            char pre[48];
            snprintf(pre, sizeof pre,
                     gpt2   ? "h.%d."
                     : bert ? "bert.encoder.layer.%d."
                     : vit  ? "vit.encoder.layer.%d."
                            : "model.layers.%d.",
                     l);
            m->cur_unit = j + 1;
#define P(field, suffix, rows, cols, init, decay)                                                            \
    do {                                                                                                     \
        snprintf(nm, sizeof nm, "layer%d.%s", l, suffix);                                                    \
        x->field = gv_add_param(m, nm, rows, cols, rows, init, decay);                                       \
    } while (0)
            x->ln1_b = x->ln2_b = x->qkv_b = x->proj_b = x->fc_b = x->fcproj_b = -1;
            x->lnc_w = x->cq_w = x->ckv_w = x->co_w = -1;
            P(ln1_w, "ln1.weight", C, 1, GV_INIT_ONES, 0);
            if (ln) P(ln1_b, "ln1.bias", C, 1, GV_INIT_ZEROS, 0);
            P(qkv_w, "qkv.weight", HD + 2 * KD, C, GV_INIT_NORMAL, 1);
            if (bias) P(qkv_b, "qkv.bias", HD + 2 * KD, 1, GV_INIT_ZEROS, 0);
            P(proj_w, "attn_proj.weight", C, HD, GV_INIT_RESID, 1);
            if (bias) P(proj_b, "attn_proj.bias", C, 1, GV_INIT_ZEROS, 0);
            P(ln2_w, "ln2.weight", C, 1, GV_INIT_ONES, 0);
            if (ln) P(ln2_b, "ln2.bias", C, 1, GV_INIT_ZEROS, 0);
            P(fc_w, "fc.weight", m->F2, C, GV_INIT_NORMAL, 1);
            if (bias) P(fc_b, "fc.bias", m->F2, 1, GV_INIT_ZEROS, 0);
            P(fcproj_w, "fc_proj.weight", C, F, GV_INIT_RESID, 1);
            if (bias) P(fcproj_b, "fc_proj.bias", C, 1, GV_INIT_ZEROS, 0);
#undef P
            int norms[4] = {x->ln1_w, x->ln1_b, x->ln2_w, x->ln2_b};
            for (int k = 0; k < 4; k++)
                if (norms[k] >= 0) m->params[norms[k]].seqpart = 1;
            if (enc) { /* BERT / ViT: separate q, k, v; every linear and norm has a bias */
                static const char *qkv[3] = {"query", "key", "value"};
                const char *att = bert ? "attention.self" : "attention.attention";
                int64_t r0[3] = {0, HD, HD + KD}, nr[3] = {HD, KD, KD};
                const char *ln1 = bert ? "attention.output.LayerNorm" : "layernorm_before";
                const char *ln2 = bert ? "output.LayerNorm" : "layernorm_after";
                gv_add_hf(m, x->ln1_w, 0, C, 0, "%s%s.weight", pre, ln1);
                gv_add_hf(m, x->ln1_b, 0, C, 0, "%s%s.bias", pre, ln1);
                for (int i = 0; i < 3; i++)
                    gv_add_hf(m, x->qkv_w, r0[i], nr[i], 0, "%s%s.%s.weight", pre, att, qkv[i]);
                for (int i = 0; i < 3; i++)
                    gv_add_hf(m, x->qkv_b, r0[i], nr[i], 0, "%s%s.%s.bias", pre, att, qkv[i]);
                gv_add_hf(m, x->proj_w, 0, C, 0, "%sattention.output.dense.weight", pre);
                gv_add_hf(m, x->proj_b, 0, C, 0, "%sattention.output.dense.bias", pre);
                gv_add_hf(m, x->ln2_w, 0, C, 0, "%s%s.weight", pre, ln2);
                gv_add_hf(m, x->ln2_b, 0, C, 0, "%s%s.bias", pre, ln2);
                gv_add_hf(m, x->fc_w, 0, F, 0, "%sintermediate.dense.weight", pre);
                gv_add_hf(m, x->fc_b, 0, F, 0, "%sintermediate.dense.bias", pre);
                gv_add_hf(m, x->fcproj_w, 0, C, 0, "%soutput.dense.weight", pre);
                gv_add_hf(m, x->fcproj_b, 0, C, 0, "%soutput.dense.bias", pre);
            } else if (gpt2) {
                gv_add_hf(m, x->ln1_w, 0, C, 0, "%sln_1.weight", pre);
                if (ln) gv_add_hf(m, x->ln1_b, 0, C, 0, "%sln_1.bias", pre);
                gv_add_hf(m, x->qkv_w, 0, HD + 2 * KD, 1, "%sattn.c_attn.weight", pre);
                if (bias) gv_add_hf(m, x->qkv_b, 0, HD + 2 * KD, 0, "%sattn.c_attn.bias", pre);
                gv_add_hf(m, x->proj_w, 0, C, 1, "%sattn.c_proj.weight", pre);
                if (bias) gv_add_hf(m, x->proj_b, 0, C, 0, "%sattn.c_proj.bias", pre);
                gv_add_hf(m, x->ln2_w, 0, C, 0, "%sln_2.weight", pre);
                if (ln) gv_add_hf(m, x->ln2_b, 0, C, 0, "%sln_2.bias", pre);
                gv_add_hf(m, x->fc_w, 0, m->F2, 1, "%smlp.c_fc.weight", pre);
                if (bias) gv_add_hf(m, x->fc_b, 0, m->F2, 0, "%smlp.c_fc.bias", pre);
                gv_add_hf(m, x->fcproj_w, 0, C, 1, "%smlp.c_proj.weight", pre);
                if (bias) gv_add_hf(m, x->fcproj_b, 0, C, 0, "%smlp.c_proj.bias", pre);
            } else {
                static const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
                int64_t r0[3] = {0, HD, HD + KD}, nr[3] = {HD, KD, KD};
                gv_add_hf(m, x->ln1_w, 0, C, 0, "%sinput_layernorm.weight", pre);
                if (ln) gv_add_hf(m, x->ln1_b, 0, C, 0, "%sinput_layernorm.bias", pre);
                /* The pieces of one parameter stay adjacent (import assembles a parameter from a run of
                 * pieces).
                 */
                for (int i = 0; i < 3; i++)
                    gv_add_hf(m, x->qkv_w, r0[i], nr[i], 0, "%sself_attn.%s.weight", pre, qkv[i]);
                for (int i = 0; bias && i < 3; i++)
                    gv_add_hf(m, x->qkv_b, r0[i], nr[i], 0, "%sself_attn.%s.bias", pre, qkv[i]);
                gv_add_hf(m, x->proj_w, 0, C, 0, "%sself_attn.o_proj.weight", pre);
                if (bias) gv_add_hf(m, x->proj_b, 0, C, 0, "%sself_attn.o_proj.bias", pre);
                gv_add_hf(m, x->ln2_w, 0, C, 0, "%spost_attention_layernorm.weight", pre);
                if (ln) gv_add_hf(m, x->ln2_b, 0, C, 0, "%spost_attention_layernorm.bias", pre);
                if (s->act == GV_ACT_SWIGLU) {
                    gv_add_hf(m, x->fc_w, 0, F, 0, "%smlp.gate_proj.weight", pre);
                    gv_add_hf(m, x->fc_w, F, F, 0, "%smlp.up_proj.weight", pre);
                    if (bias) {
                        gv_add_hf(m, x->fc_b, 0, F, 0, "%smlp.gate_proj.bias", pre);
                        gv_add_hf(m, x->fc_b, F, F, 0, "%smlp.up_proj.bias", pre);
                    }
                } else {
                    gv_add_hf(m, x->fc_w, 0, F, 0, "%smlp.up_proj.weight", pre);
                    if (bias) gv_add_hf(m, x->fc_b, 0, F, 0, "%smlp.up_proj.bias", pre);
                }
                gv_add_hf(m, x->fcproj_w, 0, C, 0, "%smlp.down_proj.weight", pre);
                if (bias) gv_add_hf(m, x->fcproj_b, 0, C, 0, "%smlp.down_proj.bias", pre);
            }
        }
        m->lnf_w = m->lnf_b = m->lm_head = m->head_w = m->head_b = m->lm_bias = -1;
        m->cur_unit = L + 1;
        if (m->has_head) {
            const char *lnf = gpt2   ? "ln_f"
                              : bert ? "cls.predictions.transform.LayerNorm"
                              : vit  ? "vit.layernorm"
                                     : "model.norm";
            if (bert) { /* the MLM head's transform: dense + GELU + LayerNorm (our "final norm") */
                m->head_w = gv_add_param(m, "head.dense.weight", C, C, C, GV_INIT_NORMAL, 1);
                gv_add_hf(m, m->head_w, 0, C, 0, "cls.predictions.transform.dense.weight");
                m->head_b = gv_add_param(m, "head.dense.bias", C, 1, C, GV_INIT_ZEROS, 0);
                gv_add_hf(m, m->head_b, 0, C, 0, "cls.predictions.transform.dense.bias");
                m->params[m->head_w].seqpart = m->params[m->head_b].seqpart = 1;
            }
            m->lnf_w = gv_add_param(m, "lnf.weight", C, 1, C, GV_INIT_ONES, 0);
            gv_add_hf(m, m->lnf_w, 0, C, 0, "%s.weight", lnf);
            m->params[m->lnf_w].seqpart = 1;
            if (ln) {
                m->lnf_b = gv_add_param(m, "lnf.bias", C, 1, C, GV_INIT_ZEROS, 0);
                gv_add_hf(m, m->lnf_b, 0, C, 0, "%s.bias", lnf);
                m->params[m->lnf_b].seqpart = 1;
            }
            m->lm_head = m->wte;
            if (s->tied && !m->has_embed) { /* a copy of the embedding of another part, under the same name */
                m->lm_head = gv_add_param(m, "wte", m->Vp, C, m->V, GV_INIT_NORMAL, 1);
                gv_add_hf(m, m->lm_head, 0, m->V, 0, "%s", wte_hf);
            } else if (!s->tied) {
                m->lm_head = gv_add_param(m, "lm_head", m->Vp, C, m->V, GV_INIT_NORMAL, 1);
                gv_add_hf(m, m->lm_head, 0, m->V, 0, vit ? "classifier.weight" : "lm_head.weight");
            }
            if (enc) { /* BERT's decoder bias, ViT's classifier bias */
                m->lm_bias = gv_add_param(m, "lm_head.bias", m->Vp, 1, m->V, GV_INIT_ZEROS, 0);
                gv_add_hf(m, m->lm_bias, 0, m->V, 0, bert ? "cls.predictions.bias" : "classifier.bias");
            }
        }
    }
    /* Tensor parallelism: column-parallel q/k/v and fc (heads / FFN columns of this rank), row-parallel
     * output projections (the matching input columns), vocab rows when the vocab layers are parallel. */
    int t = m->tp_size, r = m->tp_rank;
    if (t > 1) {
        int64_t D = m->D, Fl = m->Fl;
        for (int l = 0; l < L; l++) {
            const gv_layer_idx *x = &m->li[l];
            int64_t q0[3] = {r * m->Hl * D, HD + r * m->KVHl * D, HD + KD + r * m->KVHl * D};
            int64_t qn[3] = {m->Hl * D, m->KVHl * D, m->KVHl * D};
            gv_shard_param(m, x->qkv_w, 3, q0, qn, 0, C);
            if (x->qkv_b >= 0) gv_shard_param(m, x->qkv_b, 3, q0, qn, 0, 1);
            int64_t f0[2] = {r * Fl, F + r * Fl}, fn[2] = {Fl, Fl};
            int nf = s->act == GV_ACT_SWIGLU ? 2 : 1;
            gv_shard_param(m, x->fc_w, nf, f0, fn, 0, C);
            if (x->fc_b >= 0) gv_shard_param(m, x->fc_b, nf, f0, fn, 0, 1);
            int64_t all0 = 0, allc = C;
            gv_shard_param(m, x->proj_w, 1, &all0, &allc, r * (int64_t)m->Hl * D, m->Hl * D);
            gv_shard_param(m, x->fcproj_w, 1, &all0, &allc, r * Fl, Fl);
        }
        for (int l = 0; l < L; l++) { /* T5 cross-attention: heads of q, k, v; output columns */
            const gv_layer_idx *x = &m->li[l];
            if (x->cq_w < 0) continue;
            int64_t D = m->D, c0 = r * m->Hl * D, cn = m->Hl * D,
                    k0[2] = {r * m->KVHl * D, KD + r * m->KVHl * D}, kn[2] = {m->KVHl * D, m->KVHl * D},
                    all0 = 0, allc = C;
            gv_shard_param(m, x->cq_w, 1, &c0, &cn, 0, C);
            gv_shard_param(m, x->ckv_w, 2, k0, kn, 0, C);
            gv_shard_param(m, x->co_w, 1, &all0, &allc, c0, cn);
        }
        int rels[2] = {m->rel_enc, m->rel_dec}; /* T5 bias tables [buckets, H]: this rank's head columns */
        for (int k = 0; k < 2; k++) {
            if (rels[k] < 0) continue;
            int64_t all0 = 0, alln = m->params[rels[k]].g_rows;
            gv_shard_param(m, rels[k], 1, &all0, &alln, r * (int64_t)m->Hl, m->Hl);
        }
        if (m->vp) {
            int64_t v0 = m->v0, vn = m->Vpl;
            if (m->wte >= 0) gv_shard_param(m, m->wte, 1, &v0, &vn, 0, C);
            if (m->lm_head >= 0 && m->lm_head != m->wte) gv_shard_param(m, m->lm_head, 1, &v0, &vn, 0, C);
            if (m->lm_bias >= 0) gv_shard_param(m, m->lm_bias, 1, &v0, &vn, 0, 1);
        }
    }
    for (int i = 0; i < m->nparams; i++) m->has_copy |= m->params[i].copy;
    for (int i = 1; i < m->nhf; i++) /* each parameter's HF pieces form one run */
        for (int k = 0; k < i - 1; k++)
            assert(!(m->hf[k].param == m->hf[i].param && m->hf[i - 1].param != m->hf[i].param));
    /* Units (what ZeRO-3 gathers at once): 0 = the embeddings, 1..L = the layers (their params were created
     * consecutively), L+1 = the head (final norm, untied head, biases). */
    m->nunits = L + 2;
    m->u_start = calloc((size_t)m->nunits * 3, sizeof *m->u_start);
    m->u_size = m->u_start + m->nunits;
    m->u_shoff = m->u_size + m->nunits;
    m->p_unit = calloc((size_t)m->nparams, sizeof *m->p_unit);
    m->wp = calloc((size_t)m->nparams * 2, sizeof *m->wp);
    m->gp = m->wp + m->nparams;
    for (int i = 0; i < m->nparams; i++) m->p_unit[i] = m->params[i].unit;
    size_t ualign = (size_t)m->dp_size * 64;
    for (int i = 0; i < m->nparams; i++) {
        gv_param *p = &m->params[i];
        int u = m->p_unit[i];
        if (m->zero == 3 && (i == 0 || m->p_unit[i - 1] != u)) { /* units start on a dp*64 boundary */
            m->param_elems = (m->param_elems + ualign - 1) / ualign * ualign;
            m->u_start[u] = m->param_elems;
        }
        p->off = m->param_elems;
        m->param_elems += (size_t)((p->rows * p->cols + 63) / 64 * 64); /* 256-byte aligned views in F32 */
        if (m->zero == 3 && (i + 1 == m->nparams || m->p_unit[i + 1] != u))
            m->u_size[u] = (m->param_elems - m->u_start[u] + ualign - 1) / ualign * ualign;
    }
}

/* ---- allocation ------------------------------------------------------------------------------------- */

#define ACT(m, off) ((void *)((char *)(m)->a_acts.base + (m)->slot * (m)->slot_bytes + (off)))
#define F32ACT(m, off) ((float *)ACT(m, off))
#define WORK(m, off) ((void *)((char *)(m)->a_work.base + (off)))
#define W(m, i) ((i) < 0 ? NULL : (m)->wp[i])
#define G(m, i) ((i) < 0 ? NULL : (m)->gp[i])

/* T5's relative position bucket of key j for query i (HF T5Attention._relative_position_bucket, in fp32 like
 * it): bidirectional (encoder): half the buckets for keys after the query; unidirectional (decoder): keys
 * before it only. Distances under half the buckets are exact, the rest log-spaced up to max_distance. */
static int gv_t5_bucket(int rel, int bidirectional, int nb, int max_distance) {
    int ret = 0, n;
    if (bidirectional) {
        nb /= 2;
        if (rel > 0) ret += nb;
        n = rel < 0 ? -rel : rel;
    } else {
        n = rel < 0 ? -rel : 0;
    }
    int max_exact = nb / 2;
    if (n < max_exact) return ret + n;
    float v = logf((float)n / (float)max_exact) / (float)log((double)max_distance / max_exact) *
              (float)(nb - max_exact);
    int large = max_exact + (int)v;
    return ret + (large < nb - 1 ? large : nb - 1);
}

/* The bucket of every (query i, key j): [T*T] I32 per stack, constant, in the workspace. */
static gv_status gv_t5_upload_buckets(gv_model *m) {
    int T = m->Tf; /* every position of the sequence (Ulysses: the full sequence) */
    int32_t *h = malloc((size_t)T * T * 4);
    if (!h) return gv_fail(GV_ERR_NOMEM, "model: out of host memory");
    gv_status st = GV_OK;
    for (int k = 0; k < 2 && st == GV_OK; k++) {
        for (int i = 0; i < T; i++)
            for (int j = 0; j < T; j++)
                h[i * T + j] = gv_t5_bucket(j - i, k == 0, m->spec.rel_buckets, m->spec.rel_max_distance);
        st = gv_backend_upload(m->be, (char *)m->a_work.base + (k == 0 ? m->o_bk_enc : m->o_bk_dec), h,
                               (size_t)T * T * 4);
    }
    free(h);
    return st;
}

static gv_status gv_grad_buckets(gv_model *m);
static void gv_overlap_drain(gv_model *m);

gv_status gv_model_init(gv_model **out, const gv_model_spec *spec, gv_backend *b, int B, int T) {
    return gv_model_init_dist(out, spec, b, B, T, NULL);
}

gv_status gv_model_init_dist(gv_model **out, const gv_model_spec *spec, gv_backend *b, int B, int T,
                             const gv_model_dist *d) {
    *out = NULL;
    int l0 = d ? d->l0 : 0, l1 = !d || d->l1 == 0 ? spec->n_layer : d->l1 < 0 ? l0 : d->l1;
    if (d && d->sp && gv_comm_size(d->sp) > 1) {
        int u = gv_comm_size(d->sp);
        if (d->tp && gv_comm_size(d->tp) > 1)
            return gv_fail(GV_ERR_INVALID, "a layer uses either tensor parallelism or Ulysses, not both");
        if (l1 > l0 && (spec->n_head % u || spec->n_kv_head % u))
            return gv_fail(GV_ERR_INVALID, "ulysses degree %d must divide n_head %d and n_kv_head %d", u,
                           spec->n_head, spec->n_kv_head);
        if ((int64_t)T * u > spec->max_seq)
            return gv_fail(GV_ERR_INVALID, "sequence %d x %d exceeds the model's max_seq %d", T, u,
                           spec->max_seq);
    }
    if (d && d->tp && gv_comm_size(d->tp) > 1) {
        int t = gv_comm_size(d->tp);
        if (l1 > l0 && (spec->n_head % t || spec->n_kv_head % t || spec->ffn % t)) /* the layers' split */
            return gv_fail(GV_ERR_INVALID, "tp %d must divide n_head %d, n_kv_head %d and ffn %d", t,
                           spec->n_head, spec->n_kv_head, spec->ffn);
        if (d->megatron_sp && !d->vocab_parallel && !(d->no_embed && d->no_head))
            return gv_fail(GV_ERR_INVALID,
                           "Megatron sequence parallelism needs the vocab layers split too (vocab tp = tp)");
        if (d->megatron_sp && T % t)
            return gv_fail(GV_ERR_INVALID, "megatron degree %d does not divide the sequence length %d", t, T);
        if (d->vocab_parallel &&
            (spec->padded_vocab % t || spec->vocab <= spec->padded_vocab - spec->padded_vocab / t))
            return gv_fail(GV_ERR_INVALID,
                           "vocab tp %d must divide the padded vocab %d and leave real rows on every rank", t,
                           spec->padded_vocab);
    }
    if (d && d->dp && gv_comm_size(d->dp) > 1) {
        if (d->zero < 0 || d->zero > 3) return gv_fail(GV_ERR_INVALID, "ZeRO stage %d is not 0..3", d->zero);
    }
    GV_TRY(gv_model_spec_validate(spec, NULL));
    if (l0 < 0 || l1 > spec->n_layer || l0 > l1 || (l0 == l1 && d && d->no_embed && d->no_head))
        return gv_fail(GV_ERR_INVALID, "model part: layers [%d, %d) of %d", l0, l1, spec->n_layer);
    if (B < 1 || T < 1) return gv_fail(GV_ERR_INVALID, "micro-batch %d x %d: sizes must be positive", B, T);
    if (T > spec->max_seq)
        return gv_fail(GV_ERR_INVALID, "sequence length %d exceeds the model's max_seq %d", T, spec->max_seq);
    gv_model *m = calloc(1, sizeof *m);
    if (!m) return gv_fail(GV_ERR_NOMEM, "model: out of host memory");
    m->spec = *spec;
    m->be = b;
    m->dt = gv_backend_dtype(b);
    m->esz = gv_dtype_size(m->dt);
    m->B = B;
    m->T = T;
    m->N = B * T;
    m->C = spec->n_embd;
    m->H = spec->n_head;
    m->KVH = spec->n_kv_head;
    m->D = m->C / m->H;
    m->QKV = (m->H + 2 * m->KVH) * m->D;
    m->F = spec->ffn;
    m->F2 = spec->act == GV_ACT_SWIGLU ? 2 * m->F : m->F;
    m->Le = spec->arch == GV_ARCH_T5 ? spec->n_layer - spec->n_dec_layer : spec->n_layer;
    m->L = spec->n_layer;
    m->arch = spec->arch;
    m->causal = gv_model_spec_causal(spec);
    m->post = spec->arch == GV_ARCH_BERT;
    m->IW = gv_model_spec_input_width(spec);
    m->Pd = spec->arch == GV_ARCH_VIT ? m->IW : 0;
    m->l0 = l0;
    m->nl = l1 - l0;
    m->has_embed = !(d && d->no_embed);
    m->has_head = !(d && d->no_head);
    m->tied_copy = d && d->tied_copy && m->has_head && !m->has_embed && spec->tied;
    m->meta_only = d && d->meta_only;
    m->nslots = d && d->slots > 1 ? d->slots : 1;
    m->V = spec->vocab;
    m->Vp = spec->padded_vocab;
    m->sp = d ? d->sp : NULL;
    m->sp_size = m->sp ? gv_comm_size(m->sp) : 1;
    m->sp_rank = m->sp ? gv_comm_rank(m->sp) : 0;
    m->Tf = T * m->sp_size;
    m->Hs = m->H / m->sp_size;
    m->KVHs = m->KVH / m->sp_size;
    m->QKVs = (m->Hs + 2 * m->KVHs) * m->D;
    m->tp = d ? d->tp : NULL;
    m->tp_size = m->tp ? gv_comm_size(m->tp) : 1;
    m->tp_rank = m->tp ? gv_comm_rank(m->tp) : 0;
    int t = m->tp_size;
    m->vp = t > 1 && d->vocab_parallel && (m->has_embed || m->has_head);
    m->msp = t > 1 && d->megatron_sp;
    m->Nl = m->msp ? m->N / t : m->N;
    m->Hl = m->H / t;
    m->KVHl = m->KVH / t;
    m->Fl = m->F / t;
    m->QKVl = (m->Hl + 2 * m->KVHl) * m->D;
    m->F2l = spec->act == GV_ACT_SWIGLU ? 2 * m->Fl : m->Fl;
    m->Vpl = m->vp ? m->Vp / t : m->Vp;
    m->v0 = m->vp ? m->tp_rank * m->Vpl : 0;
    m->Vl = m->V - m->v0 < m->Vpl ? m->V - m->v0 : m->Vpl;
    m->dp = d ? d->dp : NULL;
    m->dp_size = m->dp ? gv_comm_size(m->dp) : 1;
    m->dp_rank = m->dp ? gv_comm_rank(m->dp) : 0;
    m->zero = d && m->dp_size > 1 ? d->zero : 0;
    gv_build_params(m);
    if (m->meta_only) {
        *out = m;
        return GV_OK;
    }
    size_t unit = (size_t)m->dp_size * 64; /* shards stay 256-byte aligned */
    m->param_elems = (m->param_elems + unit - 1) / unit * unit;
    m->shard = m->zero ? m->param_elems / (size_t)m->dp_size : m->param_elems;
    m->s0 = m->zero ? (size_t)m->dp_rank * m->shard : 0;
    size_t slot_elems[4] = {0, 0, 0, 0};
    m->overlap = !(d && d->no_overlap) && m->dp_size > 1;
    m->zslot2 = m->overlap && m->zero == 3 && m->nl >= 2;
    if (m->zero == 3) {
        m->shard = 0; /* the shard space: this rank's piece of every unit */
        for (int u = 0; u < m->nunits; u++) {
            m->u_shoff[u] = m->shard;
            m->shard += m->u_size[u] / (size_t)m->dp_size;
            int k = u == 0 ? 0 : u == m->nunits - 1 ? 2 : 1;
            if (m->u_size[u] > slot_elems[k]) slot_elems[k] = m->u_size[u];
        }
        if (m->zslot2) slot_elems[3] = slot_elems[1]; /* the second layer slot */
    }

    gv_arena_init(&m->a_params, "parameters", b);
    gv_arena_init(&m->a_grads, "gradients", b);
    gv_arena_init(&m->a_opt, "optimizer", b);
    gv_arena_init(&m->a_acts, "activations", b);
    gv_arena_init(&m->a_work, "workspace", b);
    size_t np = m->zero == 3 ? m->shard : m->param_elems; /* persistent parameters and gradients */
    size_t o_w = gv_arena_reserve(&m->a_params, np * m->esz);
    size_t o_g = gv_arena_reserve(&m->a_grads, np * m->esz);
    size_t o_sw[4], o_sg[4];
    for (int k = 0; k < 4; k++) {
        o_sw[k] = gv_arena_reserve(&m->a_params, slot_elems[k] * m->esz);
        o_sg[k] = gv_arena_reserve(&m->a_grads, slot_elems[k] * m->esz);
    }
    size_t o_master = m->dt == GV_F32 ? 0 : gv_arena_reserve(&m->a_opt, m->shard * 4);
    size_t o_m = gv_arena_reserve(&m->a_opt, m->shard * 4);
    size_t o_v = gv_arena_reserve(&m->a_opt, m->shard * 4);

    size_t N = (size_t)m->N, Nl = (size_t)m->Nl, C = (size_t)m->C, e = m->esz;
    gv_arena *A = &m->a_acts; /* the views of one activation set (slot) */
    if (m->has_embed) {
        m->o_tokens = gv_arena_reserve(A, N * 4);
        m->o_encoded = gv_arena_reserve(A, Nl * C * e);
        m->o_emb_full = m->msp ? gv_arena_reserve(A, N * C * e) : m->o_encoded;
        if (m->arch == GV_ARCH_BERT || m->arch == GV_ARCH_VIT) m->o_emb_tmp = gv_arena_reserve(A, N * C * e);
        if (m->arch == GV_ARCH_BERT) {
            m->o_types = gv_arena_reserve(A, N * 4);
            m->o_embln = gv_arena_reserve(A, Nl * C * e);
            m->o_embln_mean = gv_arena_reserve(A, Nl * 4);
            m->o_embln_rstd = gv_arena_reserve(A, Nl * 4);
        }
        if (m->arch == GV_ARCH_VIT) m->o_pix = gv_arena_reserve(A, N * (size_t)m->Pd * e);
    } else {
        m->o_input = gv_arena_reserve(A, Nl * C * e);
    }
    if (m->has_head && m->has_embed && m->nl == 0) m->o_head_in = gv_arena_reserve(A, Nl * C * e);
    /* Megatron-SP keeps only this rank's positions between forward and backward: the gathered norm outputs
     * and the partial sums live in two [N,C] views shared by all layers; backward gathers again. */
    size_t o_gathered = m->msp ? gv_arena_reserve(A, N * C * e) : 0;
    size_t o_partial = m->msp ? gv_arena_reserve(A, N * C * e) : 0;
    /* The output projections are only added into the residual stream (backward never reads them): one
     * [Nl,C] view serves every layer's attention and MLP projection. At tp 1 they add the residual in their
     * epilogue (gv_fuse_residual) and nothing writes it. runtime-mem.c mirrors this. */
    size_t o_proj = m->tp_size > 1 ? gv_arena_reserve(A, Nl * C * e) : 0;
    m->la = calloc((size_t)m->nl + 1, sizeof *m->la);
    size_t stash = m->sp_size > 1 ? gv_attention_stash_bytes(b, B, m->Tf, m->Hs)
                                  : gv_attention_stash_bytes(b, B, T, m->Hl);
    gv_attn_ext t5a = {B, T, T, m->Hl, m->KVHl, m->D, m->QKVl, m->QKVl, m->QKVl, 1.0f, 0};
    if (m->sp_size > 1) /* Ulysses: the head group over the full sequence */
        t5a = (gv_attn_ext){B, m->Tf, m->Tf, m->Hs, m->KVHs, m->D, m->QKVs, m->QKVs, m->QKVs, 1.0f, 0};
    if (m->arch == GV_ARCH_T5) stash = gv_attention_ext_stash_bytes(b, &t5a);
    size_t NF = (size_t)B * m->Tf; /* rows of the full-sequence attention buffers */
    /* Recompute: a checkpointed layer keeps only its output (the next layer's input); everything else it
     * computes lives in one shared set of views, refilled by re-running its forward during backward. */
    gv_layer_acts shared = {0};
    int have_shared = 0;
    m->ckpt = calloc((size_t)m->nl + 1, sizeof *m->ckpt);
    for (int l = 0; l < m->nl; l++) {
        gv_layer_acts *a = &m->la[l];
        m->ckpt[l] = d && d->ckpt ? d->ckpt[m->l0 + l] != 0 : 0;
        if (m->ckpt[l] && have_shared) {
            *a = shared;
            a->res2 = gv_arena_reserve(A, Nl * C * e);
            continue;
        }
        a->ln1 = gv_arena_reserve(A, Nl * C * e);
        a->ln1f = m->msp ? o_gathered : a->ln1;
        a->ln1_mean = gv_arena_reserve(A, Nl * 4);
        a->ln1_rstd = gv_arena_reserve(A, Nl * 4);
        a->qkv = gv_arena_reserve(A, N * (size_t)m->QKVl * e);
        a->qkv_r = spec->pos == GV_POS_ROPE ? gv_arena_reserve(A, N * (size_t)m->QKVl * e) : a->qkv;
        a->stash = gv_arena_reserve(A, stash);
        a->atty = gv_arena_reserve(A, N * (size_t)(m->Hl * m->D) * e);
        if (m->sp_size > 1) {
            a->qkv_sp = gv_arena_reserve(A, NF * (size_t)m->QKVs * e);
            a->atty_sp = gv_arena_reserve(A, NF * (size_t)(m->Hs * m->D) * e);
        }
        a->attproj = o_proj;
        a->attproj_p = m->msp ? o_partial : a->attproj;
        a->res1 = gv_arena_reserve(A, Nl * C * e);
        a->ln2 = gv_arena_reserve(A, Nl * C * e);
        a->ln2f = m->msp ? o_gathered : a->ln2;
        a->ln2_mean = gv_arena_reserve(A, Nl * 4);
        a->ln2_rstd = gv_arena_reserve(A, Nl * 4);
        a->fch = gv_arena_reserve(A, N * (size_t)m->F2l * e);
        a->fch_act = gv_arena_reserve(A, N * (size_t)m->Fl * e);
        a->fcproj = o_proj;
        a->fcproj_p = m->msp ? o_partial : a->fcproj;
        a->res2 = gv_arena_reserve(A, Nl * C * e);
        if (m->arch == GV_ARCH_T5 && (m->li[l].lnc_w >= 0 || m->ckpt[l])) { /* cross-attention (decoder) */
            size_t HD = (size_t)m->Hl * m->D, KD = (size_t)m->KVHl * m->D;
            a->lnc = gv_arena_reserve(A, Nl * C * e);
            a->lncf = m->msp ? o_gathered : a->lnc;
            a->lnc_rstd = gv_arena_reserve(A, Nl * 4);
            a->cq = gv_arena_reserve(A, N * HD * e);
            a->ckv = gv_arena_reserve(A, N * 2 * KD * e);
            a->catty = gv_arena_reserve(A, N * HD * e);
            a->cstash = gv_arena_reserve(A, stash);
            a->resc = gv_arena_reserve(A, Nl * C * e);
            if (m->sp_size > 1) {
                size_t sHD = (size_t)m->Hs * m->D, sKD = (size_t)m->KVHs * m->D;
                a->cq_sp = gv_arena_reserve(A, NF * sHD * e);
                a->ckv_sp = gv_arena_reserve(A, NF * 2 * sKD * e);
                a->catty_sp = gv_arena_reserve(A, NF * sHD * e);
            }
        }
        if (m->ckpt[l]) {
            shared = *a;
            have_shared = 1;
        }
    }
    if (m->arch == GV_ARCH_T5) { /* channel 1, the encoder output, the stacks' bias [Tf,Tf,Hb] */
        size_t TT = (size_t)m->Tf * m->Tf, TTH = TT * (size_t)(m->sp_size > 1 ? m->Hs : m->Hl);
        if (m->has_embed) {
            m->o_dec_tokens = gv_arena_reserve(A, N * 4);
            m->o_dec_emb = gv_arena_reserve(A, Nl * C * e);
        } else if (m->nl) {
            m->o_input1 = gv_arena_reserve(A, Nl * C * e);
            m->t5_in1 = 1;
        }
        if (gv_t5_has_enc_end(m)) {
            m->o_enc_out = gv_arena_reserve(A, Nl * C * e);
            m->o_encf_rstd = gv_arena_reserve(A, Nl * 4);
        }
        if (gv_t5_has_dec(m) && m->msp) m->o_enc_full = gv_arena_reserve(A, N * C * e);
        if (m->l0 < m->Le && m->nl) m->o_bias_enc = gv_arena_reserve(A, TTH * 4);
        if (gv_t5_has_dec(m)) m->o_bias_dec = gv_arena_reserve(A, TTH * 4);
        if (m->nl) m->o_bias_tmp = gv_arena_reserve(A, TTH * e);
    }
    if (m->has_head) {
        m->o_targets = gv_arena_reserve(A, N * 4);
        m->o_lnf = gv_arena_reserve(A, Nl * C * e);
        m->o_lnf_full = m->msp ? gv_arena_reserve(A, N * C * e) : m->o_lnf;
        m->o_lnf_mean = gv_arena_reserve(A, Nl * 4);
        m->o_lnf_rstd = gv_arena_reserve(A, Nl * 4);
        if (m->arch == GV_ARCH_BERT) {
            m->o_hd = gv_arena_reserve(A, Nl * C * e);
            m->o_hg = gv_arena_reserve(A, Nl * C * e);
        }
        m->o_logits = gv_arena_reserve(A, N * (size_t)m->Vpl * e);
        m->o_losses = gv_arena_reserve(A, N * 4);
        m->o_lse = gv_arena_reserve(A, N * 4);
    }
    /* Micro-batches in flight each hold a whole set. */
    m->slot_bytes = (A->size + A->align - 1) / A->align * A->align;
    if (m->nslots > 1) gv_arena_reserve(A, m->slot_bytes * (size_t)(m->nslots - 1));

    gv_arena *Wk = &m->a_work;
    m->o_dres = gv_arena_reserve(Wk, Nl * C * e);
    m->o_dres_full = m->msp ? gv_arena_reserve(Wk, N * C * e) : m->o_dres;
    m->o_dln = gv_arena_reserve(Wk, N * C * e);
    m->o_dln_l = m->msp ? gv_arena_reserve(Wk, Nl * C * e) : m->o_dln;
    m->o_dqkv = gv_arena_reserve(Wk, N * (size_t)m->QKVl * e);
    m->o_dqkv_r = spec->pos == GV_POS_ROPE ? gv_arena_reserve(Wk, N * (size_t)m->QKVl * e) : m->o_dqkv;
    m->o_datty = gv_arena_reserve(Wk, N * (size_t)(m->Hl * m->D) * e);
    m->o_dfch = gv_arena_reserve(Wk, N * (size_t)m->F2l * e);
    m->o_dfch_act = gv_arena_reserve(Wk, N * (size_t)m->Fl * e);
    if (m->arch == GV_ARCH_T5) {
        /* this rank's heads: tp's, or under Ulysses the head group's for the bias */
        size_t TT = (size_t)m->Tf * m->Tf, TTH = TT * (size_t)(m->sp_size > 1 ? m->Hs : m->Hl),
               HD = (size_t)m->Hl * m->D, KD = (size_t)m->KVHl * m->D;
        m->o_bk_enc = gv_arena_reserve(Wk, TT * 4);
        m->o_bk_dec = gv_arena_reserve(Wk, TT * 4);
        m->o_dbias_enc = gv_arena_reserve(Wk, TTH * 4);
        m->o_dbias_dec = gv_arena_reserve(Wk, TTH * 4);
        m->o_denc = gv_arena_reserve(Wk, N * C * e);
        m->o_dch1 = gv_arena_reserve(Wk, Nl * C * e);
        m->o_dcq = gv_arena_reserve(Wk, N * HD * e);
        m->o_dckv = gv_arena_reserve(Wk, N * 2 * KD * e);
        m->o_dcatty = gv_arena_reserve(Wk, N * HD * e);
        if (m->sp_size > 1) {
            size_t sHD = (size_t)m->Hs * m->D, sKD = (size_t)m->KVHs * m->D;
            m->o_dcq_sp = gv_arena_reserve(Wk, NF * sHD * e);
            m->o_dckv_sp = gv_arena_reserve(Wk, NF * 2 * sKD * e);
            m->o_dcatty_sp = gv_arena_reserve(Wk, NF * sHD * e);
            m->o_bias_slice = gv_arena_reserve(Wk, (size_t)spec->rel_buckets * m->Hs * e);
        }
    }
    if (m->arch == GV_ARCH_BERT) {
        m->o_dpost = gv_arena_reserve(Wk, Nl * C * e);
        m->o_dhead = gv_arena_reserve(Wk, Nl * C * e);
    }
    if (m->sp_size > 1) {
        m->o_dqkv_sp = gv_arena_reserve(Wk, NF * (size_t)m->QKVs * e);
        m->o_datty_sp = gv_arena_reserve(Wk, NF * (size_t)(m->Hs * m->D) * e);
    }
    gv_arena_init(&m->a_comm, "comm", b);
    /* Host staging for the all-to-alls (Ulysses) and the sequence gathers/scatters (Megatron-SP). */
    size_t stage = m->sp_size > 1 ? N * (size_t)m->QKV * 4 : m->msp ? N * C * 4 : 0;
    size_t o_send = gv_arena_reserve(&m->a_comm, stage);
    size_t o_recv = gv_arena_reserve(&m->a_comm, stage);

    gv_status st = GV_OK;
    gv_arena *all[] = {&m->a_params, &m->a_grads, &m->a_opt, &m->a_acts, &m->a_work, &m->a_comm};
    for (int i = 0; i < 6 && st == GV_OK; i++) st = gv_arena_commit(all[i]);
    m->h_targets = malloc(N * 4);
    m->h_losses = malloc(N * 4);
    m->h_ids = malloc(N * 4);
    m->h_vp = malloc(N * 12);
    m->h_types = malloc(N * 4);
    m->h_pix = malloc(N * ((size_t)m->Pd + 1) * 4);
    m->loss_divs = calloc((size_t)m->nslots, sizeof *m->loss_divs);
    m->fwd_done = calloc((size_t)m->nslots, sizeof *m->fwd_done);
    m->ce_dloss = calloc((size_t)m->nslots, sizeof *m->ce_dloss);
    if (st == GV_OK && (!m->h_targets || !m->h_losses || !m->h_ids || !m->h_vp || !m->h_types || !m->h_pix ||
                        !m->loss_divs || !m->fwd_done || !m->ce_dloss))
        st = gv_fail(GV_ERR_NOMEM, "model: out of host memory");
    if (st != GV_OK) {
        gv_model_free(m);
        return st;
    }
    m->weights = gv_arena_ptr(&m->a_params, o_w);
    m->a2a_send = gv_arena_ptr(&m->a_comm, o_send);
    m->a2a_recv = gv_arena_ptr(&m->a_comm, o_recv);
    m->grads = gv_arena_ptr(&m->a_grads, o_g);
    m->master = m->dt == GV_F32 ? (float *)m->weights : (float *)gv_arena_ptr(&m->a_opt, o_master);
    m->adam_m = gv_arena_ptr(&m->a_opt, o_m);
    m->adam_v = gv_arena_ptr(&m->a_opt, o_v);
    for (int k = 0; k < 4; k++) {
        m->slot_w[k] = gv_arena_ptr(&m->a_params, o_sw[k]);
        m->slot_g[k] = gv_arena_ptr(&m->a_grads, o_sg[k]);
    }
    for (int i = 0; i < m->nparams; i++) { /* ZeRO-3 re-points them at the slots unit by unit */
        m->wp[i] = (char *)m->weights + m->params[i].off * m->esz;
        m->gp[i] = (char *)m->grads + m->params[i].off * m->esz;
    }
    if (m->arch == GV_ARCH_T5) st = gv_t5_upload_buckets(m);
    if (st == GV_OK) st = gv_grad_buckets(m);
    if (st != GV_OK) {
        gv_model_free(m);
        return st;
    }
    *out = m;
    return GV_OK;
}

void gv_model_free(gv_model *m) {
    if (!m) return;
    gv_arena *all[] = {&m->a_params, &m->a_grads, &m->a_opt, &m->a_acts, &m->a_work, &m->a_comm};
    for (int i = 0; i < 6; i++) gv_arena_free(all[i]);
    free(m->params);
    free(m->hf);
    free(m->li);
    free(m->la);
    free(m->ckpt);
    gv_overlap_drain(m);
    free(m->u_start);
    free(m->p_unit);
    free(m->bk_lo);
    free(m->unit_done);
    free(m->reqs);
    free(m->wp);
    free(m->h_targets);
    free(m->h_losses);
    free(m->h_ids);
    free(m->h_vp);
    free(m->h_types);
    free(m->h_pix);
    free(m->loss_divs);
    free(m->ce_dloss);
    free(m->fwd_done);
    free(m);
}

const gv_model_spec *gv_model_get_spec(const gv_model *m) {
    return &m->spec;
}

void gv_model_memory(const gv_model *m, gv_memory_report *r) {
    r->parameters = m->a_params.size;
    r->gradients = m->a_grads.size;
    r->optimizer = m->a_opt.size;
    r->activations = m->a_acts.size;
    r->workspace = m->a_work.size;
    r->comm = m->a_comm.size;
}

/* ---- weights ---------------------------------------------------------------------------------------- */

static size_t gv_param_numel(const gv_param *p) {
    return (size_t)(p->rows * p->cols);
}
static size_t gv_param_gnumel(const gv_param *p) {
    return (size_t)(p->g_rows * p->g_cols);
}

/* Local slice <- global host tensor g [g_rows, g_cols]. */
static void gv_slice_local(const gv_param *p, const float *g, float *local) {
    for (int64_t r = 0; r < p->rows; r++)
        memcpy(local + r * p->cols, g + gv_global_row(p, r) * p->g_cols + p->c0,
               (size_t)p->cols * sizeof(float));
}

/* This rank's piece of unit u: global elements [*g0, *g0 + *n) at shard offset *sh (ZeRO-3). */
static void gv_unit_piece(const gv_model *m, int u, size_t *g0, size_t *n, size_t *sh) {
    *n = m->u_size[u] / (size_t)m->dp_size;
    *g0 = m->u_start[u] + (size_t)m->dp_rank * *n;
    *sh = m->u_shoff[u];
}

/* Where a per-parameter buffer keeps parameter i: the global (flat) range [*lo, *hi) it holds and the index
 * of global element a in it, at = *base + (a - *lo). Buffers held in pieces (`pieces`): this rank's piece
 * of i's unit under ZeRO-3, [s0, s0 + shard) under ZeRO-1/2; everything otherwise. */
static void gv_held_range(const gv_model *m, int i, int pieces, size_t *lo, size_t *hi, size_t *base) {
    *lo = 0, *hi = SIZE_MAX, *base = 0;
    if (m->zero == 3) {
        size_t pn;
        gv_unit_piece(m, m->p_unit[i], lo, &pn, base);
        *hi = *lo + pn;
    } else if (m->zero && pieces) {
        *lo = m->s0, *hi = m->s0 + m->shard;
    }
}

/* The fp32 master is held in pieces wherever it is separate from the weights (bf16): ZeRO-1/2 keep it for
 * the shard only, like the moments. On F32 it is the weights themselves, whole under ZeRO-1/2. */
static int gv_master_pieces(const gv_model *m) {
    return (void *)m->master != m->weights;
}

/* Index into the master of flat element a at shard index si (gv_held_pieces' space). */
static size_t gv_master_at(const gv_model *m, size_t a, size_t si) {
    return m->zero == 3 || gv_master_pieces(m) ? si : a;
}

/* Host fp32 values of parameter i (local layout) into buffer buf (dtype dt): only the elements this rank
 * holds of it (pieces as in gv_held_range). */
static gv_status gv_store_range(gv_model *m, void *buf, gv_dtype dt, int i, int pieces, const float *host) {
    const gv_param *p = &m->params[i];
    size_t n = gv_param_numel(p), lo, hi, base;
    gv_held_range(m, i, pieces, &lo, &hi, &base);
    size_t a = p->off > lo ? p->off : lo, e = p->off + n < hi ? p->off + n : hi;
    if (a >= e) return GV_OK;
    char *at = (char *)buf + (base + (a - lo)) * gv_dtype_size(dt);
    return gv_backend_upload_f32(m->be, at, dt, host + (a - p->off), e - a);
}

/* Stores host fp32 values of parameter i (local layout) into buffer `which` (weights: the fp32 master and
 * the compute-dtype copy; gradients, in the compute dtype; or an AdamW moment), keeping only what this rank
 * holds under ZeRO. */
static gv_status gv_store_local(gv_model *m, int which, int i, const float *host) {
    if (which == GV_BUF_GRADS) return gv_store_range(m, m->grads, m->dt, i, 0, host);
    if (which == GV_BUF_ADAM_M || which == GV_BUF_ADAM_V)
        return gv_store_range(m, which == GV_BUF_ADAM_M ? m->adam_m : m->adam_v, GV_F32, i, 1, host);
    GV_TRY(gv_store_range(m, m->master, GV_F32, i, gv_master_pieces(m), host));
    if (!gv_master_pieces(m)) return GV_OK;
    /* the bf16 copy: whole under ZeRO-1/2 (all-gathered after every step), this rank's piece under ZeRO-3 */
    return gv_store_range(m, m->weights, m->dt, i, 0, host);
}

gv_status gv_model_init_weights(gv_model *m, uint64_t seed) {
    float resid_std = m->spec.init_std / sqrtf(2.0f * (float)m->L);
    gv_status st = GV_OK;
    for (int i = 0; i < m->nparams && st == GV_OK; i++) {
        gv_param *p = &m->params[i];
        float *h = calloc(gv_param_numel(p), sizeof *h);
        if (!h) return gv_fail(GV_ERR_NOMEM, "init: out of host memory for %s", p->name);
        float std = p->init == GV_INIT_RESID ? resid_std : m->spec.init_std;
        /* Element (r, c) takes the value of global element (global row, c0 + c): any slice of any plan
         * starts from the same global tensor. Padded vocab rows stay zero. */
        for (int64_t r = 0; r < p->rows; r++) {
            int64_t g = gv_global_row(p, r);
            float *row = h + r * p->cols;
            if (p->init == GV_INIT_ONES)
                for (int64_t c = 0; c < p->cols; c++) row[c] = 1.0f;
            else if ((p->init == GV_INIT_NORMAL || p->init == GV_INIT_RESID) && g < p->g_real_rows)
                gv_rng_fill_normal(row, p->cols, seed, p->name, g * p->g_cols + p->c0, std);
        }
        st = gv_store_local(m, GV_BUF_WEIGHTS, i, h);
        free(h);
    }
    return st;
}

static void gv_hf_shape(const gv_model *m, const gv_hf_piece *h, int *ndim, int64_t shape[4]) {
    const gv_param *p = &m->params[h->param];
    if (h->ndim > 0) {
        *ndim = h->ndim;
        for (int d = 0; d < 4; d++) shape[d] = h->shape[d];
    } else if (p->ndim == 1) {
        *ndim = 1;
        shape[0] = h->rows;
    } else if (h->transpose) {
        *ndim = 2;
        shape[0] = p->g_cols;
        shape[1] = h->rows;
    } else {
        *ndim = 2;
        shape[0] = h->rows;
        shape[1] = p->g_cols;
    }
}

int gv_model_hf_count(const gv_model *m) {
    return m->nhf;
}

gv_status gv_model_hf_info(const gv_model *m, int i, const char **name, int *ndim, int64_t shape[4]) {
    if (i < 0 || i >= m->nhf) return gv_fail(GV_ERR_INVALID, "hf tensor index %d out of range", i);
    *name = m->hf[i].name;
    gv_hf_shape(m, &m->hf[i], ndim, shape);
    return GV_OK;
}

void gv_named_f32_free(gv_named_f32 *ts, int n) {
    if (!ts) return;
    for (int i = 0; i < n; i++) free(ts[i].data);
    free(ts);
}

/* Parameter i's local values (local layout) from buffer `which` (the weights: the fp32 master). Buffers held
 * in pieces (ZeRO-3: all of them; ZeRO-1/2: the moments, and a separate master) are assembled over the dp
 * group: each rank contributes the elements it holds (collective over dp). Memory: one parameter, never
 * the whole model. */
static gv_status gv_param_local_values(gv_model *m, int which, int i, float *local) {
    const gv_param *p = &m->params[i];
    size_t n = gv_param_numel(p);
    if (which == GV_BUF_GRADS && m->zero == 2)
        return gv_fail(GV_ERR_UNSUPPORTED, "export: gradients are sharded under ZeRO-2");
    const void *src = which == GV_BUF_WEIGHTS  ? (const void *)m->master
                      : which == GV_BUF_GRADS  ? m->grads
                      : which == GV_BUF_ADAM_M ? (const void *)m->adam_m
                                               : (const void *)m->adam_v;
    gv_dtype dt = which == GV_BUF_GRADS ? m->dt : GV_F32;
    int pieces = which == GV_BUF_WEIGHTS ? gv_master_pieces(m) : which != GV_BUF_GRADS; /* the moments */
    size_t lo, hi, base;
    gv_held_range(m, i, pieces, &lo, &hi, &base);
    if (hi == SIZE_MAX) /* held whole */
        return gv_backend_download_f32(m->be, local, (const char *)src + p->off * gv_dtype_size(dt), dt, n);
    memset(local, 0, n * sizeof *local);
    size_t a = p->off > lo ? p->off : lo, e = p->off + n < hi ? p->off + n : hi;
    if (a < e)
        GV_TRY(gv_backend_download_f32(m->be, local + (a - p->off),
                                       (const char *)src + (base + (a - lo)) * gv_dtype_size(dt), dt, e - a));
    return gv_comm_allreduce(m->dp, local, local, n, GV_COMM_F32, GV_COMM_SUM);
}

/* g [g_rows, g_cols] <- parameter i's global tensor from its local values on every tensor-parallel rank
 * (collective over tp: each rank adds its slice; replicated parameters come from tp rank 0 only). */
static gv_status gv_param_to_global(gv_model *m, int i, const float *local, float *g) {
    const gv_param *p = &m->params[i];
    memset(g, 0, gv_param_gnumel(p) * sizeof(float));
    if (p->sharded || m->tp_rank == 0)
        for (int64_t r = 0; r < p->rows; r++)
            memcpy(g + gv_global_row(p, r) * p->g_cols + p->c0, local + r * p->cols,
                   (size_t)p->cols * sizeof(float));
    if (m->tp_size > 1) GV_TRY(gv_comm_allreduce(m->tp, g, g, gv_param_gnumel(p), GV_COMM_F32, GV_COMM_SUM));
    return GV_OK;
}

gv_status gv_model_export_one(gv_model *m, int which, int k, float *out) {
    if (k < 0 || k >= m->nhf) return gv_fail(GV_ERR_INVALID, "export: tensor index %d out of range", k);
    const gv_hf_piece *h = &m->hf[k];
    const gv_param *p = &m->params[h->param];
    float *local = malloc(gv_param_numel(p) * sizeof *local), *g = malloc(gv_param_gnumel(p) * sizeof *g);
    gv_status st = local && g ? GV_OK : gv_fail(GV_ERR_NOMEM, "export: out of host memory");
    if (st == GV_OK) st = gv_backend_sync(m->be);
    if (st == GV_OK) st = gv_param_local_values(m, which, h->param, local);
    if (st == GV_OK) st = gv_param_to_global(m, h->param, local, g);
    if (st == GV_OK) {
        const float *src = g + h->row0 * p->g_cols;
        if (h->transpose)
            for (int64_t r = 0; r < h->rows; r++)
                for (int64_t c = 0; c < p->g_cols; c++) out[c * h->rows + r] = src[r * p->g_cols + c];
        else
            memcpy(out, src, (size_t)(h->rows * p->g_cols) * sizeof(float));
    }
    free(local);
    free(g);
    return st;
}

gv_status gv_model_export_hf(gv_model *m, int which, gv_named_f32 **out, int *n) {
    *out = NULL;
    *n = 0;
    gv_named_f32 *ts = calloc((size_t)m->nhf, sizeof *ts);
    gv_status st = ts ? GV_OK : gv_fail(GV_ERR_NOMEM, "export: out of host memory");
    for (int i = 0; i < m->nhf && st == GV_OK; i++) {
        gv_named_f32 *t = &ts[i];
        snprintf(t->name, sizeof t->name, "%s", m->hf[i].name);
        gv_hf_shape(m, &m->hf[i], &t->ndim, t->shape);
        size_t cnt = (size_t)(m->hf[i].rows * m->params[m->hf[i].param].g_cols);
        t->data = malloc(cnt * sizeof(float));
        st = t->data ? gv_model_export_one(m, which, i, t->data)
                     : gv_fail(GV_ERR_NOMEM, "export: out of host memory");
    }
    if (st != GV_OK) {
        gv_named_f32_free(ts, ts ? m->nhf : 0);
        return st;
    }
    *out = ts;
    *n = m->nhf;
    return GV_OK;
}

static size_t gv_max_gnumel(const gv_model *m) {
    size_t mx = 0;
    for (int i = 0; i < m->nparams; i++)
        if (gv_param_gnumel(&m->params[i]) > mx) mx = gv_param_gnumel(&m->params[i]);
    return mx;
}

/* The rows of HF tensor k's dim 0 this rank keeps, [*r0, *r0 + *nr): the parameter's tensor-parallel row
 * segments inside the piece; all rows when the piece is transposed (GPT-2's Conv1D: its rows are the
 * parameter's columns), replicated, or stored with another leading dimension. */
static void gv_piece_rows(const gv_model *m, const gv_hf_piece *h, int64_t *r0, int64_t *nr) {
    const gv_param *p = &m->params[h->param];
    int nd;
    int64_t sh[4];
    gv_hf_shape(m, h, &nd, sh);
    *r0 = 0, *nr = sh[0];
    if (h->transpose || !p->sharded || sh[0] != h->rows) return;
    int64_t lo = h->rows, hi = 0;
    for (int k = 0; k < p->nseg; k++) {
        int64_t a = p->seg0[k] > h->row0 ? p->seg0[k] : h->row0;
        int64_t b = p->seg0[k] + p->segn[k] < h->row0 + h->rows ? p->seg0[k] + p->segn[k] : h->row0 + h->rows;
        if (a < b) {
            if (a - h->row0 < lo) lo = a - h->row0;
            if (b - h->row0 > hi) hi = b - h->row0;
        }
    }
    *r0 = lo < hi ? lo : 0;
    *nr = lo < hi ? hi - lo : 0;
}

gv_status gv_model_import_stream(gv_model *m, int which, gv_hf_reader read, void *ctx) {
    if (which != GV_BUF_WEIGHTS && which != GV_BUF_ADAM_M && which != GV_BUF_ADAM_V)
        return gv_fail(GV_ERR_INVALID, "import: buffer %d cannot be imported", which);
    size_t mx = gv_max_gnumel(m), mh = 0;
    for (int i = 0; i < m->nhf; i++) {
        size_t c = (size_t)(m->hf[i].rows * m->params[m->hf[i].param].g_cols);
        if (c > mh) mh = c;
    }
    float *g = calloc(mx, sizeof *g), *local = malloc(mx * sizeof *local), *t = malloc(mh * sizeof *t);
    gv_status st = g && local && t ? GV_OK : gv_fail(GV_ERR_NOMEM, "import: out of host memory");
    for (int i = 0; i < m->nhf && st == GV_OK; i++) {
        const gv_hf_piece *h = &m->hf[i];
        const gv_param *p = &m->params[h->param];
        int64_t r0, nr;
        gv_piece_rows(m, h, &r0, &nr);
        st = read(ctx, i, r0, nr, t); /* only the rows kept below need to be right */
        if (st != GV_OK) break;
        float *dst = g + h->row0 * p->g_cols;
        if (h->transpose)
            for (int64_t r = 0; r < h->rows; r++)
                for (int64_t c = 0; c < p->g_cols; c++) dst[r * p->g_cols + c] = t[c * h->rows + r];
        else
            memcpy(dst, t, (size_t)(h->rows * p->g_cols) * sizeof(float));
        if (i + 1 < m->nhf && m->hf[i + 1].param == h->param) continue; /* more pieces of this parameter */
        /* The global tensor is complete (padding rows stay zero): keep this rank's slice. */
        gv_slice_local(p, g, local);
        memset(g, 0, gv_param_gnumel(p) * sizeof(float));
        st = gv_store_local(m, which, h->param, local);
    }
    free(g);
    free(local);
    free(t);
    return st;
}

typedef struct {
    const gv_named_f32 *ts;
    const int *match; /* HF tensor k of the model is ts[match[k]] */
} gv_named_reader;

static gv_status gv_named_read(void *ctx, int k, int64_t row0, int64_t nrows, float *dst) {
    (void)row0, (void)nrows; /* in memory already: copy it all */
    const gv_named_reader *r = ctx;
    const gv_named_f32 *t = &r->ts[r->match[k]];
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    memcpy(dst, t->data, n * sizeof(float));
    return GV_OK;
}

gv_status gv_model_import_buf(gv_model *m, int which, const gv_named_f32 *ts, int n, const char *source) {
    if (which != GV_BUF_WEIGHTS && which != GV_BUF_ADAM_M && which != GV_BUF_ADAM_V)
        return gv_fail(GV_ERR_INVALID, "import: buffer %d cannot be imported", which);
    const char *src = source ? source : "weights";
    /* Check everything before touching any buffer, so a bad file changes nothing. */
    int *match = malloc((size_t)m->nhf * sizeof *match);
    if (!match) return gv_fail(GV_ERR_NOMEM, "import: out of host memory");
    for (int i = 0; i < m->nhf; i++) {
        const gv_hf_piece *h = &m->hf[i];
        match[i] = -1;
        for (int k = 0; k < n; k++) {
            const char *nm = ts[k].name;
            /* HF GPT-2 files from GPT2LMHeadModel carry a "transformer." prefix. */
            if (!strncmp(nm, "transformer.", 12) && strcmp(h->name, nm) != 0) nm += 12;
            if (!strcmp(nm, h->name)) {
                match[i] = k;
                break;
            }
        }
        if (match[i] < 0) {
            free(match);
            return gv_fail(GV_ERR_FORMAT, "%s: missing tensor '%s'", src, h->name);
        }
        int nd;
        int64_t sh[4];
        gv_hf_shape(m, h, &nd, sh);
        const gv_named_f32 *t = &ts[match[i]];
        int ok = t->ndim == nd;
        for (int d = 0; ok && d < nd; d++) ok = t->shape[d] == sh[d];
        if (!ok) {
            char want[64], got[64];
            int k = snprintf(want, sizeof want, "[%lld", (long long)sh[0]);
            if (nd > 1) k += snprintf(want + k, sizeof want - (size_t)k, ", %lld", (long long)sh[1]);
            snprintf(want + k, sizeof want - (size_t)k, "]");
            k = snprintf(got, sizeof got, "[");
            for (int d = 0; d < t->ndim && d < 4; d++)
                k += snprintf(got + k, sizeof got - (size_t)k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
            snprintf(got + k, sizeof got - (size_t)k, "]");
            free(match);
            return gv_fail(GV_ERR_FORMAT, "%s: tensor '%s' has shape %s, the model expects %s", src, h->name,
                           got, want);
        }
    }
    gv_named_reader r = {ts, match};
    gv_status st = gv_model_import_stream(m, which, gv_named_read, &r);
    free(match);
    return st;
}

gv_status gv_model_import_hf(gv_model *m, const gv_named_f32 *ts, int n, const char *source) {
    return gv_model_import_buf(m, GV_BUF_WEIGHTS, ts, n, source);
}

/* ---- forward / backward ----------------------------------------------------------------------------- */

/* Norms run on the residual stream: Nl rows (this rank's positions under Megatron-SP, else all N). */
static gv_status gv_norm_forward(gv_model *m, void *out, float *mean, float *rstd, const void *inp, int wi,
                                 int bi) {
    if (m->spec.norm == GV_NORM_LAYERNORM)
        return gv_layernorm_forward(m->be, out, mean, rstd, inp, W(m, wi), W(m, bi), m->Nl, m->C,
                                    m->spec.norm_eps);
    return gv_rmsnorm_forward(m->be, out, rstd, inp, W(m, wi), m->Nl, m->C, m->spec.norm_eps);
}

/* sum = x + y on the residual stream, then out = norm(sum): one fused pass where the backend has it. */
static gv_status gv_add_norm(gv_model *m, void *sum, void *out, float *mean, float *rstd, const void *x,
                             const void *y, int wi, int bi) {
    int rms = m->spec.norm != GV_NORM_LAYERNORM;
    return gv_add_norm_forward(m->be, sum, out, mean, rstd, x, y, W(m, wi), rms ? NULL : W(m, bi), m->Nl,
                               m->C, m->spec.norm_eps, rms);
}

static gv_status gv_norm_backward(gv_model *m, void *dinp, const void *dout, const void *inp,
                                  const float *mean, const float *rstd, int wi, int bi) {
    if (m->spec.norm == GV_NORM_LAYERNORM)
        return gv_layernorm_backward(m->be, dinp, G(m, wi), G(m, bi), dout, inp, W(m, wi), mean, rstd, m->Nl,
                                     m->C);
    return gv_rmsnorm_backward(m->be, dinp, G(m, wi), dout, inp, W(m, wi), rstd, m->Nl, m->C);
}

/* Pre-LN with LayerNorm and the residual gradient whole on the rank (no Megatron-SP): the gradient a norm
 * backward leaves in dres is the output gradient of the linear below it (the attention projection of the
 * same layer; the MLP projection of the layer below, across_units: not under ZeRO-3, whose gradient slots
 * belong to one unit at a time), so that linear's bias gradient is summed in the norm's pass. */
static int gv_norm_sums_bias(const gv_model *m, int across_units) {
    return !m->post && !m->msp && m->spec.norm == GV_NORM_LAYERNORM && m->arch != GV_ARCH_T5 &&
           (!across_units || m->zero != 3);
}

/* gv_norm_backward that also adds the column sums of dinp to the bias gradient bias_g (NULL: none). */
static gv_status gv_norm_backward_sum(gv_model *m, void *dinp, const void *dout, const void *inp,
                                      const float *mean, const float *rstd, int wi, int bi, void *bias_g) {
    if (!bias_g) return gv_norm_backward(m, dinp, dout, inp, mean, rstd, wi, bi);
    return gv_layernorm_backward_sum(m->be, dinp, G(m, wi), G(m, bi), bias_g, dout, inp, W(m, wi), mean, rstd,
                                     m->Nl, m->C);
}

/* The communicator dtype of compute-dtype buffers (activations, weights, gradients). Buffers are the
 * backend's memory: the communicator stages them when it works on the other kind. */
static gv_comm_dtype gv_comm_dt(const gv_model *m) {
    return m->dt == GV_BF16 ? GV_COMM_BF16 : GV_COMM_F32;
}

/* n compute-dtype elements from src to dst, both the backend's memory (a stream-ordered copy on cuda). */
static gv_status gv_copy(gv_model *m, void *dst, const void *src, size_t n) {
    return gv_backend_convert(m->be, dst, m->dt, src, m->dt, n);
}

/* Sum over the tensor-parallel group in place. */
static gv_status gv_tp_sum(gv_model *m, void *buf, size_t n) {
    if (m->tp_size == 1) return GV_OK;
    GV_TRY(gv_backend_sync(m->be));
    return gv_comm_allreduce(m->tp, buf, buf, n, gv_comm_dt(m), GV_COMM_SUM);
}

/* Ulysses all-to-alls. A local row [Wt] holds nseg segments; segment k's part for head group j sits at
 * off[k] + j * w[k] with width w[k] (Ws = sum of w per group). The exchange blocks are [B,T,Ws] each:
 * block j of a local tensor is head group j at this rank's positions; block i of a full tensor is
 * sequence chunk i for this rank's head group. */
typedef struct {
    int nseg, Wt, Ws;
    const int *off, *w;
} gv_sp_layout;

/* to_blocks: local [B,T,Wt] -> the u head-group blocks of buf; else the reverse. Compute-dtype elements in
 * the backend's memory: one strided copy per head group and segment (its columns over all B*T rows). */
static gv_status gv_sp_heads(gv_model *m, const gv_sp_layout *y, void *local, void *buf, int to_blocks) {
    size_t BT = (size_t)m->B * m->T, blk = BT * y->Ws, e = m->esz, lp = y->Wt * e, bp = y->Ws * e;
    for (int j = 0; j < m->sp_size; j++)
        for (int k = 0, at = 0; k < y->nseg; at += y->w[k], k++) {
            char *b = (char *)buf + (j * blk + (size_t)at) * e; /* [BT, w] columns of block j */
            char *l = (char *)local + (size_t)(y->off[k] + j * y->w[k]) * e;
            size_t w = (size_t)y->w[k] * e;
            GV_TRY(to_blocks ? gv_backend_copy2d(m->be, b, bp, l, lp, w, BT)
                             : gv_backend_copy2d(m->be, l, lp, b, bp, w, BT));
        }
    return GV_OK;
}

/* to_blocks: full [B,Tf,Ws] -> the u sequence-chunk blocks of buf; else the reverse. */
static gv_status gv_sp_seq(gv_model *m, const gv_sp_layout *y, void *full, void *buf, int to_blocks) {
    size_t T = (size_t)m->T, rows = T * y->Ws, blk = (size_t)m->B * rows, e = m->esz;
    for (int i = 0; i < m->sp_size; i++)
        for (int b = 0; b < m->B; b++) {
            char *f = (char *)full + ((size_t)b * m->Tf + i * T) * y->Ws * e,
                 *x = (char *)buf + (i * blk + b * rows) * e;
            GV_TRY(gv_copy(m, to_blocks ? x : f, to_blocks ? f : x, rows));
        }
    return GV_OK;
}

/* local [B,T,Wt] (this rank's positions, all heads) -> full [B,Tf,Ws] (all positions, its head group). */
static gv_status gv_sp_heads_to_seq(gv_model *m, const gv_sp_layout *y, const float *local, float *full) {
    GV_TRY(gv_sp_heads(m, y, (void *)local, m->a2a_send, 1));
    GV_TRY(gv_backend_sync(m->be));
    GV_TRY(gv_comm_alltoall(m->sp, m->a2a_send, m->a2a_recv, (size_t)m->B * m->T * y->Ws, gv_comm_dt(m)));
    return gv_sp_seq(m, y, full, m->a2a_recv, 0);
}

/* The inverse: full [B,Tf,Ws] -> local [B,T,Wt]. */
static gv_status gv_sp_seq_to_heads(gv_model *m, const gv_sp_layout *y, const float *full, float *local) {
    GV_TRY(gv_sp_seq(m, y, (void *)full, m->a2a_send, 1));
    GV_TRY(gv_backend_sync(m->be));
    GV_TRY(gv_comm_alltoall(m->sp, m->a2a_send, m->a2a_recv, (size_t)m->B * m->T * y->Ws, gv_comm_dt(m)));
    return gv_sp_heads(m, y, local, m->a2a_recv, 0);
}

/* Layouts of the packed qkv row (q, k, v segments) and of the attention output row, per head group. */
static void gv_sp_layouts(const gv_model *m, int qoff[3], int qw[3], int aoff[1], int aw[1], gv_sp_layout *q,
                          gv_sp_layout *att) {
    int D = m->D;
    qoff[0] = 0, qoff[1] = m->H * D, qoff[2] = (m->H + m->KVH) * D;
    qw[0] = m->Hs * D, qw[1] = m->KVHs * D, qw[2] = m->KVHs * D;
    aoff[0] = 0, aw[0] = m->Hs * D;
    *q = (gv_sp_layout){3, m->QKV, m->QKVs, qoff, qw};
    *att = (gv_sp_layout){1, m->H * D, m->Hs * D, aoff, aw};
}

/* Megatron-SP layout changes of a [B,T,C] activation: this rank's positions [r*Tl, (r+1)*Tl) of every
 * sequence (local, [B,Tl,C]) <-> all positions (full). expand = all-gather; combine = sum of the tp ranks'
 * partial full tensors, each rank keeping its positions (reduce-scatter). Without Megatron-SP, expand is the
 * identity (local and full alias) and combine sums in place (all-reduce; nothing without tp). */
static gv_status gv_tp_expand(gv_model *m, const void *local, void *full) {
    if (!m->msp) return GV_OK;
    int B = m->B, t = m->tp_size, Tl = m->T / t;
    size_t C = (size_t)m->C, blk = (size_t)B * Tl * C;
    size_t e = m->esz;
    GV_TRY(gv_backend_sync(m->be));
    GV_TRY(gv_comm_allgather(m->tp, local, m->a2a_recv, blk, gv_comm_dt(m)));
    for (int r = 0; r < t; r++) /* [t][B][Tl][C] -> [B][T][C] */
        for (int b = 0; b < B; b++)
            GV_TRY(gv_copy(m, (char *)full + ((size_t)b * m->T + (size_t)r * Tl) * C * e,
                           (char *)m->a2a_recv + (r * blk + (size_t)b * Tl * C) * e, (size_t)Tl * C));
    return GV_OK;
}

static gv_status gv_tp_combine(gv_model *m, void *full, void *local) {
    if (!m->msp) return gv_tp_sum(m, full, (size_t)m->N * m->C);
    int B = m->B, t = m->tp_size, Tl = m->T / t;
    size_t C = (size_t)m->C, blk = (size_t)B * Tl * C;
    size_t e = m->esz;
    for (int r = 0; r < t; r++) /* [B][T][C] -> [t][B][Tl][C] */
        for (int b = 0; b < B; b++)
            GV_TRY(gv_copy(m, (char *)m->a2a_send + (r * blk + (size_t)b * Tl * C) * e,
                           (char *)full + ((size_t)b * m->T + (size_t)r * Tl) * C * e, (size_t)Tl * C));
    GV_TRY(gv_backend_sync(m->be));
    return gv_comm_reduce_scatter(m->tp, m->a2a_send, local, blk, gv_comm_dt(m), GV_COMM_SUM);
}

/* A row-parallel linear's bias is added once: on tp rank 0, before the partial sums are reduced. */
#define ROWPAR_BIAS(m, i) ((m)->tp_rank == 0 ? W(m, i) : NULL)

/* ZeRO-3 units in use. gather: all-gather unit u's pieces into its working slot and point its parameters'
 * weights there. grad_begin: its gradients go to a zeroed slot. grad_end: reduce-scatter the slot over dp
 * and add this rank's piece to its accumulated gradients (after summing Megatron-SP's partial norm
 * gradients over tp). All no-ops without ZeRO-3. With overlap (zslot2) the layers alternate between two
 * slots: while one unit computes, the next one's gather (pf_dir: +1 forward, -1 backward) runs into the
 * other, and a unit's reduce-scatter runs until the slot is needed again (grad_begin of the unit after
 * next, or the end of the pass: gv_unit_grad_flush). */
static int gv_unit_slot(const gv_model *m, int u) {
    return u == 0 ? 0 : u == m->nunits - 1 ? 2 : m->zslot2 && u % 2 == 0 ? 3 : 1;
}

/* Completes a request and orders the compute stream after it. */
static gv_status gv_req_finish(gv_model *m, gv_comm_req **r) {
    void *ev = NULL;
    gv_comm_req *q = *r;
    *r = NULL;
    GV_TRY(gv_comm_req_wait(q, &ev));
    return gv_backend_event_wait(m->be, ev);
}

static void gv_unit_point(gv_model *m, int u, char *slot) {
    for (int i = 0; i < m->nparams; i++)
        if (m->p_unit[i] == u) m->wp[i] = slot + (m->params[i].off - m->u_start[u]) * m->esz;
}

/* Starts the gather of layer unit u into its slot (the slot's last reader was issued before: the event
 * orders the copy after it). */
static gv_status gv_unit_prefetch(gv_model *m, int u) {
    if (m->zero != 3 || !m->zslot2 || u < 1 || u > m->nl || m->u_size[u] == 0) return GV_OK;
    int k = gv_unit_slot(m, u);
    if (m->pf_req[k]) GV_TRY(gv_req_finish(m, &m->pf_req[k])); /* left over: discarded */
    size_t g0, n, sh;
    gv_unit_piece(m, u, &g0, &n, &sh);
    void *ev;
    GV_TRY(gv_backend_event_record(m->be, &ev));
    GV_TRY(gv_comm_iallgather(m->dp, (char *)m->weights + sh * m->esz, m->slot_w[k], n * m->esz, GV_COMM_U8,
                              ev, &m->pf_req[k]));
    m->pf_unit[k] = u;
    return GV_OK;
}

static gv_status gv_unit_gather(gv_model *m, int u) {
    if (m->zero != 3 || m->u_size[u] == 0) return GV_OK; /* a part may lack a unit */
    int k = gv_unit_slot(m, u), have = 0;
    char *slot = m->slot_w[k];
    if (m->pf_req[k]) {
        have = m->pf_unit[k] == u;
        GV_TRY(gv_req_finish(m, &m->pf_req[k]));
        m->n_prefetched += have;
    }
    if (!have) {
        size_t g0, n, sh;
        gv_unit_piece(m, u, &g0, &n, &sh);
        GV_TRY(gv_backend_sync(m->be));
        GV_TRY(gv_comm_allgather(m->dp, (char *)m->weights + sh * m->esz, slot, n * m->esz, GV_COMM_U8));
    }
    gv_unit_point(m, u, slot);
    if (m->pf_dir && u >= 1 && u <= m->nl) GV_TRY(gv_unit_prefetch(m, u + m->pf_dir));
    return GV_OK;
}

/* Completes the reduce-scatter pending on grad slot k: this rank's block joins its accumulated gradients. */
static gv_status gv_unit_grad_done(gv_model *m, int k) {
    if (!m->rs_req[k]) return GV_OK;
    int u = m->rs_unit[k];
    size_t g0, n, sh;
    gv_unit_piece(m, u, &g0, &n, &sh);
    GV_TRY(gv_req_finish(m, &m->rs_req[k]));
    char *mine = (char *)m->slot_g[k] + (size_t)m->dp_rank * n * m->esz;
    return gv_accumulate(m->be, (char *)m->grads + sh * m->esz, mine, n);
}

/* End of a pass: every pending reduce-scatter completes, every pending gather is dropped. */
static gv_status gv_unit_grad_flush(gv_model *m) {
    for (int k = 0; k < 4; k++) GV_TRY(gv_unit_grad_done(m, k));
    for (int k = 0; k < 4; k++)
        if (m->pf_req[k]) GV_TRY(gv_req_finish(m, &m->pf_req[k]));
    return GV_OK;
}

static gv_status gv_unit_grad_begin(gv_model *m, int u) {
    if (m->zero != 3 || m->u_size[u] == 0) return GV_OK; /* a part may lack a unit */
    int k = gv_unit_slot(m, u);
    GV_TRY(gv_unit_grad_done(m, k)); /* the slot's previous unit */
    char *slot = m->slot_g[k];
    GV_TRY(gv_backend_memset0(m->be, slot, m->u_size[u] * m->esz));
    for (int i = 0; i < m->nparams; i++)
        if (m->p_unit[i] == u) m->gp[i] = slot + (m->params[i].off - m->u_start[u]) * m->esz;
    return GV_OK;
}

static gv_status gv_tp_sum(gv_model *m, void *buf, size_t n);

/* Megatron-SP: the parameters of unit u (-1: all) applied to this rank's positions only (the norms, BERT's
 * head transform) have partial gradients on each tp rank: sum them over tp. */
static gv_status gv_msp_norm_grads(gv_model *m, int u) {
    if (!m->msp) return GV_OK;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].seqpart && (u < 0 || m->p_unit[i] == u))
            GV_TRY(gv_tp_sum(m, G(m, i), gv_param_numel(&m->params[i])));
    return GV_OK;
}

/* The reduce-scatter is a nonblocking call in both modes (the same collective, so the same sums); without
 * overlap it completes here. */
static gv_status gv_unit_grad_end(gv_model *m, int u) {
    if (m->zero != 3 || m->u_size[u] == 0) return GV_OK; /* a part may lack a unit */
    size_t g0, n, sh;
    gv_unit_piece(m, u, &g0, &n, &sh);
    int k = gv_unit_slot(m, u);
    char *slot = m->slot_g[k];
    GV_TRY(gv_msp_norm_grads(m, u));
    void *ev;
    GV_TRY(gv_backend_event_record(m->be, &ev));
    char *mine = slot + (size_t)m->dp_rank * n * m->esz; /* in place: rank r's block of the reduction */
    GV_TRY(gv_comm_ireduce_scatter(m->dp, slot, mine, n, gv_comm_dt(m), GV_COMM_SUM, ev, &m->rs_req[k]));
    m->rs_unit[k] = u;
    return m->overlap ? GV_OK : gv_unit_grad_done(m, k);
}

/* Gradient buckets (DDP, ZeRO-1/2): unit u of the last backward is complete; start the buckets it closes. */
static gv_status gv_grad_unit_done(gv_model *m, int u);

/* The activation function of the MLP: fch [N,F2] -> fch_act [N,F]. */
static gv_status gv_act_forward(gv_model *m, void *out, const void *inp) {
    size_t n = (size_t)m->N * m->Fl;
    if (m->spec.act == GV_ACT_SWIGLU) return gv_swiglu_forward(m->be, out, inp, m->N, m->Fl);
    if (m->spec.act == GV_ACT_GELU_ERF) return gv_gelu_erf_forward(m->be, out, inp, n);
    return gv_gelu_forward(m->be, out, inp, n);
}

static gv_status gv_act_backward(gv_model *m, void *dinp, const void *dout, const void *inp) {
    size_t n = (size_t)m->N * m->Fl;
    if (m->spec.act == GV_ACT_SWIGLU) return gv_swiglu_backward(m->be, dinp, dout, inp, m->N, m->Fl);
    if (m->spec.act == GV_ACT_GELU_ERF) return gv_gelu_erf_backward(m->be, dinp, dout, inp, n);
    return gv_gelu_backward(m->be, dinp, dout, inp, n);
}

/* Inputs of the attention and MLP branches: the norm outputs ln1 / ln2 (pre-LN), or the residual stream
 * itself (post-LN: BERT normalises after each residual add, and ln1 / ln2 hold the sums before the norms).
 * Local [Nl,C] views, and their all-position [N,C] forms (gathered under Megatron-SP, else the same). */
static const void *gv_attn_in(gv_model *m, const gv_layer_acts *a, const void *res) {
    return m->post ? res : ACT(m, a->ln1);
}
static const void *gv_attn_in_full(gv_model *m, const gv_layer_acts *a, const void *res) {
    return m->msp ? ACT(m, a->ln1f) : gv_attn_in(m, a, res);
}
static const void *gv_mlp_in(gv_model *m, const gv_layer_acts *a) {
    return ACT(m, m->post ? a->res1 : a->ln2);
}
static const void *gv_mlp_in_full(gv_model *m, const gv_layer_acts *a) {
    return m->msp ? ACT(m, a->ln2f) : gv_mlp_in(m, a);
}

/* Pre-LN: layer l's last residual add and layer l + 1's ln1 run as one fused add + norm when layer l + 1 is
 * in this part and its forward follows straight on: not recomputed (its views would be the shared set) and
 * not under ZeRO-3 (its norm weights arrive with its own unit's gather). */
static int gv_fuse_next_ln1(const gv_model *m, int l) {
    return !m->post && m->zero != 3 && l + 1 < m->nl && !m->ckpt[l + 1];
}

/* The row-parallel projections add the residual in the product's epilogue when nothing comes between them
 * (no tp sum): the norm after them reads one tensor instead of two and writes one, and the projections'
 * shared view is not reserved (gv_model_init). */
static int gv_fuse_residual(const gv_model *m) {
    return m->tp_size == 1; /* (Megatron-SP, the only case with Nl < N, needs tp > 1) */
}

/* Forward of transformer layer l from its input res [Nl,C] to la[l].res2 [Nl,C].
 * Pre-LN (GPT-2, LLaMA, ViT): res1 = res + attn(ln1(res)); res2 = res1 + mlp(ln2(res1)).
 * Post-LN (BERT): ln1 = res + attn(res), res1 = LN1(ln1); ln2 = res1 + mlp(res1), res2 = LN2(ln2).
 * ln1_ready: the previous layer's fused add + norm already wrote ln1 and its statistics. */
static gv_status gv_layer_forward(gv_model *m, int l, const void *res, int ln1_ready) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, N = m->N, Nl = m->Nl, C = m->C;
    const gv_layer_idx *x = &m->li[l];
    const gv_layer_acts *a = &m->la[l];
    GV_TRY(gv_unit_gather(m, l + 1));
    /* res, ln1, res1, ln2, res2: [Nl,C] residual stream; ln1f .. fcproj_p: [N,C] or narrower, all positions
     */
    if (!m->post && !ln1_ready)
        GV_TRY(gv_norm_forward(m, ACT(m, a->ln1), F32ACT(m, a->ln1_mean), F32ACT(m, a->ln1_rstd), res,
                               x->ln1_w, x->ln1_b));
    GV_TRY(gv_tp_expand(m, gv_attn_in(m, a, res), ACT(m, a->ln1f)));
    GV_TRY(gv_matmul_forward(be, ACT(m, a->qkv), gv_attn_in_full(m, a, res), W(m, x->qkv_w), W(m, x->qkv_b),
                             N, C, m->QKVl));
    if (m->spec.pos == GV_POS_ROPE)
        GV_TRY(gv_rope_forward(be, ACT(m, a->qkv_r), ACT(m, a->qkv), B, T, m->Hl, m->KVHl, m->D,
                               m->spec.rope_theta, m->sp_rank * T));
    if (m->sp_size > 1) {
        int qoff[3], qw[3], aoff[1], aw[1];
        gv_sp_layout yq, ya;
        gv_sp_layouts(m, qoff, qw, aoff, aw, &yq, &ya);
        GV_TRY(gv_backend_sync(be));
        GV_TRY(gv_sp_heads_to_seq(m, &yq, F32ACT(m, a->qkv_r), F32ACT(m, a->qkv_sp)));
        GV_TRY(gv_attention_forward(be, ACT(m, a->atty_sp), F32ACT(m, a->stash), ACT(m, a->qkv_sp), NULL, B,
                                    m->Tf, m->Hs, m->KVHs, m->D, m->causal));
        GV_TRY(gv_backend_sync(be));
        GV_TRY(gv_sp_seq_to_heads(m, &ya, F32ACT(m, a->atty_sp), F32ACT(m, a->atty)));
    } else {
        GV_TRY(gv_attention_forward(be, ACT(m, a->atty), F32ACT(m, a->stash), ACT(m, a->qkv_r), NULL, B, T,
                                    m->Hl, m->KVHl, m->D, m->causal));
    }
    if (gv_fuse_residual(m)) { /* ln1 (post) / res1 (pre) = res + atty @ proj_w^T + proj_b, then the norm */
        void *sum = m->post ? ACT(m, a->ln1) : ACT(m, a->res1);
        GV_TRY(gv_matmul_forward_add(be, sum, ACT(m, a->atty), W(m, x->proj_w), W(m, x->proj_b), res, N,
                                     m->Hl * m->D, C));
        if (m->post)
            GV_TRY(gv_norm_forward(m, ACT(m, a->res1), F32ACT(m, a->ln1_mean), F32ACT(m, a->ln1_rstd), sum,
                                   x->ln1_w, x->ln1_b));
        else
            GV_TRY(gv_norm_forward(m, ACT(m, a->ln2), F32ACT(m, a->ln2_mean), F32ACT(m, a->ln2_rstd), sum,
                                   x->ln2_w, x->ln2_b));
    } else {
        GV_TRY(gv_matmul_forward(be, ACT(m, a->attproj_p), ACT(m, a->atty), W(m, x->proj_w),
                                 ROWPAR_BIAS(m, x->proj_b), N, m->Hl * m->D, C));
        GV_TRY(gv_tp_combine(m, ACT(m, a->attproj_p), ACT(m, a->attproj)));
        if (m->post)
            GV_TRY(gv_add_norm(m, ACT(m, a->ln1), ACT(m, a->res1), F32ACT(m, a->ln1_mean),
                               F32ACT(m, a->ln1_rstd), res, ACT(m, a->attproj), x->ln1_w, x->ln1_b));
        else
            GV_TRY(gv_add_norm(m, ACT(m, a->res1), ACT(m, a->ln2), F32ACT(m, a->ln2_mean),
                               F32ACT(m, a->ln2_rstd), res, ACT(m, a->attproj), x->ln2_w, x->ln2_b));
    }
    GV_TRY(gv_tp_expand(m, gv_mlp_in(m, a), ACT(m, a->ln2f)));
    if (m->spec.act == GV_ACT_GELU) { /* the GELU in the matmul's epilogue (cuda) */
        GV_TRY(gv_matmul_gelu_forward(be, ACT(m, a->fch_act), ACT(m, a->fch), gv_mlp_in_full(m, a),
                                      W(m, x->fc_w), W(m, x->fc_b), N, C, m->F2l));
    } else {
        GV_TRY(gv_matmul_forward(be, ACT(m, a->fch), gv_mlp_in_full(m, a), W(m, x->fc_w), W(m, x->fc_b), N, C,
                                 m->F2l));
        GV_TRY(gv_act_forward(m, ACT(m, a->fch_act), ACT(m, a->fch)));
    }
    if (gv_fuse_residual(m)) { /* ln2 (post) / res2 (pre) = res1 + fch_act @ fcproj_w^T + fcproj_b */
        void *sum = m->post ? ACT(m, a->ln2) : ACT(m, a->res2);
        GV_TRY(gv_matmul_forward_add(be, sum, ACT(m, a->fch_act), W(m, x->fcproj_w), W(m, x->fcproj_b),
                                     ACT(m, a->res1), N, m->Fl, C));
        if (m->post) {
            GV_TRY(gv_norm_forward(m, ACT(m, a->res2), F32ACT(m, a->ln2_mean), F32ACT(m, a->ln2_rstd), sum,
                                   x->ln2_w, x->ln2_b));
        } else if (gv_fuse_next_ln1(m, l)) {
            const gv_layer_acts *an = &m->la[l + 1];
            GV_TRY(gv_norm_forward(m, ACT(m, an->ln1), F32ACT(m, an->ln1_mean), F32ACT(m, an->ln1_rstd), sum,
                                   m->li[l + 1].ln1_w, m->li[l + 1].ln1_b));
        }
        return GV_OK;
    }
    GV_TRY(gv_matmul_forward(be, ACT(m, a->fcproj_p), ACT(m, a->fch_act), W(m, x->fcproj_w),
                             ROWPAR_BIAS(m, x->fcproj_b), N, m->Fl, C));
    GV_TRY(gv_tp_combine(m, ACT(m, a->fcproj_p), ACT(m, a->fcproj)));
    if (m->post) {
        GV_TRY(gv_add_norm(m, ACT(m, a->ln2), ACT(m, a->res2), F32ACT(m, a->ln2_mean), F32ACT(m, a->ln2_rstd),
                           ACT(m, a->res1), ACT(m, a->fcproj), x->ln2_w, x->ln2_b));
    } else if (gv_fuse_next_ln1(m, l)) {
        const gv_layer_acts *an = &m->la[l + 1];
        GV_TRY(gv_add_norm(m, ACT(m, a->res2), ACT(m, an->ln1), F32ACT(m, an->ln1_mean),
                           F32ACT(m, an->ln1_rstd), ACT(m, a->res1), ACT(m, a->fcproj), m->li[l + 1].ln1_w,
                           m->li[l + 1].ln1_b));
    } else {
        GV_TRY(gv_add_forward(be, ACT(m, a->res2), ACT(m, a->res1), ACT(m, a->fcproj), (size_t)Nl * C));
    }
    return GV_OK;
}

/* Vocab-parallel cross-entropy: every rank holds columns [v0, v0 + Vl) of the logits. Row losses =
 * log sum_r exp(lse_r) - target logit; the full-row log-sum-exp is kept for backward. */
static gv_status gv_vocab_parallel_loss(gv_model *m, const int32_t *d_targets) {
    int N = m->N;
    float *lse = F32ACT(m, m->o_losses), *tl = F32ACT(m, m->o_lse); /* scratch: [N] each */
    float *h = m->h_vp; /* host [3N]: max, sum of exp, target logit */
    GV_TRY(gv_crossentropy_shard_stats(m->be, lse, tl, ACT(m, m->o_logits), d_targets, N, m->Vl, m->Vpl,
                                       m->v0, -1));
    GV_TRY(gv_backend_download(m->be, h, lse, (size_t)N * 4));
    GV_TRY(gv_backend_download(m->be, h + 2 * N, tl, (size_t)N * 4));
    memcpy(h + N, h, (size_t)N * 4);
    GV_TRY(gv_comm_allreduce(m->tp, h, h, (size_t)N, GV_COMM_F32, GV_COMM_MAX));
    for (int i = 0; i < N; i++) h[N + i] = expf(h[N + i] - h[i]);
    GV_TRY(gv_comm_allreduce(m->tp, h + N, h + N, (size_t)2 * N, GV_COMM_F32, GV_COMM_SUM));
    for (int i = 0; i < N; i++) {
        float full = h[i] + logf(h[N + i]);
        h[N + i] = full;                                           /* full-row log-sum-exp */
        h[i] = m->h_targets[i] == -1 ? 0.0f : full - h[2 * N + i]; /* row loss */
    }
    GV_TRY(gv_backend_upload(m->be, lse, h, (size_t)N * 4));
    return gv_backend_upload(m->be, tl, h + N, (size_t)N * 4);
}

/* T5's two channels between parts (see gv_model): at a cut before the last encoder layer (encoder stream,
 * decoder embedding), after it (decoder stream, encoder output). The part holding layer Le - 1 computes the
 * encoder output and moves the decoder embedding to channel 0. */
/* Channel ch of the layers' input [Nl,C] (NULL: channel 1 of a part without layers). */
static void *gv_t5_in(gv_model *m, int ch) {
    if (m->has_embed) return ACT(m, ch ? m->o_dec_emb : m->o_encoded);
    if (ch) return m->t5_in1 ? ACT(m, m->o_input1) : NULL;
    return ACT(m, m->o_input);
}
static void *gv_t5_out(gv_model *m, int ch) {
    if (!m->nl) return gv_t5_in(m, ch);
    void *last = ACT(m, m->la[m->nl - 1].res2);
    if (gv_t5_has_enc_end(m)) return ch ? ACT(m, m->o_enc_out) : gv_t5_has_dec(m) ? last : gv_t5_in(m, 1);
    return ch ? gv_t5_in(m, 1) : last;
}
/* The residual input of local layer j; the encoder output this rank holds [Nl,C] and its all-position form
 * [N,C] (gathered under Megatron-SP) for the cross-attentions. */
static const void *gv_t5_res_in(gv_model *m, int j) {
    if (j == 0) return gv_t5_in(m, 0);
    if (m->l0 + j == m->Le) return gv_t5_in(m, 1);
    return ACT(m, m->la[j - 1].res2);
}
static void *gv_t5_enc(gv_model *m) {
    return gv_t5_has_enc_end(m) ? ACT(m, m->o_enc_out) : gv_t5_in(m, 1);
}
static void *gv_t5_enc_full(gv_model *m) {
    return m->msp ? ACT(m, m->o_enc_full) : gv_t5_enc(m);
}

/* The views between phases in the current slot: the layers' input (embedding output, or filled by the
 * caller), the layers' output, and the head's input. */
static void *gv_layers_in(gv_model *m) {
    if (m->arch == GV_ARCH_T5) return gv_t5_in(m, 0);
    if (!m->has_embed) return ACT(m, m->o_input);
    return ACT(m, m->arch == GV_ARCH_BERT ? m->o_embln : m->o_encoded);
}
static void *gv_layers_out(gv_model *m) {
    if (m->arch == GV_ARCH_T5) return gv_t5_out(m, 0);
    return m->nl ? ACT(m, m->la[m->nl - 1].res2) : gv_layers_in(m);
}
static void *gv_head_in(gv_model *m) {
    return m->nl ? gv_layers_out(m) : ACT(m, m->has_embed ? m->o_head_in : m->o_input);
}

static gv_status gv_check_phases(gv_model *m, int phases, int slot) {
    if (m->meta_only) return gv_fail(GV_ERR_INVALID, "model part was built for its names only");
    if (slot < 0 || slot >= m->nslots)
        return gv_fail(GV_ERR_INVALID, "activation set %d of %d", slot, m->nslots);
    if (((phases & GV_PHASE_EMBED) && !m->has_embed) || ((phases & GV_PHASE_HEAD) && !m->has_head))
        return gv_fail(GV_ERR_INVALID, "model part has no %s",
                       (phases & GV_PHASE_EMBED) ? "embedding" : "head");
    m->slot = slot;
    return GV_OK;
}

void *gv_model_part_input(gv_model *m, int phase, int slot) {
    m->slot = slot;
    if (phase == GV_PHASE_LAYERS) return m->has_embed ? NULL : gv_layers_in(m);
    if (phase == GV_PHASE_HEAD) return m->nl || (m->has_embed && !m->o_head_in) ? NULL : gv_head_in(m);
    return NULL;
}

void *gv_model_part_output(gv_model *m, int phase, int slot) {
    m->slot = slot;
    return phase == GV_PHASE_EMBED ? gv_layers_in(m) : gv_layers_out(m);
}

void *gv_model_part_grad(gv_model *m) {
    return WORK(m, m->o_dres);
}

int gv_model_part_channels(const gv_model *m) {
    return m->arch == GV_ARCH_T5 ? 2 : 1;
}

void *gv_model_part_input_ch(gv_model *m, int phase, int slot, int ch) {
    if (ch == 0) return gv_model_part_input(m, phase, slot);
    m->slot = slot;
    if (m->arch != GV_ARCH_T5 || ch != 1 || phase != GV_PHASE_LAYERS || m->has_embed) return NULL;
    return gv_t5_in(m, 1);
}

void *gv_model_part_output_ch(gv_model *m, int phase, int slot, int ch) {
    if (ch == 0) return gv_model_part_output(m, phase, slot);
    m->slot = slot;
    if (m->arch != GV_ARCH_T5 || ch != 1) return NULL;
    return phase == GV_PHASE_EMBED ? ACT(m, m->o_dec_emb) : gv_t5_out(m, 1);
}

void *gv_model_part_grad_ch(gv_model *m, int ch) {
    if (ch == 0) return WORK(m, m->o_dres);
    return m->arch == GV_ARCH_T5 && ch == 1 ? WORK(m, m->o_dch1) : NULL;
}

static int gv_embedding_param(const gv_model *m) {
    return m->has_embed ? m->wte : m->lm_head;
}

size_t gv_model_embedding_numel(const gv_model *m) {
    int i = gv_embedding_param(m);
    return i < 0 ? 0 : gv_param_numel(&m->params[i]);
}

gv_status gv_model_embedding_grad_get(gv_model *m, float *local) {
    int i = gv_embedding_param(m);
    if (i < 0) return gv_fail(GV_ERR_INVALID, "model part holds no token embedding");
    GV_TRY(gv_backend_sync(m->be));
    if (m->zero == 3) return gv_param_local_values(m, GV_BUF_GRADS, i, local);
    return gv_backend_download_f32(m->be, local, G(m, i), m->dt, gv_param_numel(&m->params[i]));
}

gv_status gv_model_embedding_grad_set(gv_model *m, const float *local) {
    int i = gv_embedding_param(m);
    if (i < 0) return gv_fail(GV_ERR_INVALID, "model part holds no token embedding");
    if (m->zero == 3) return gv_store_local(m, GV_BUF_GRADS, i, local);
    return gv_backend_upload_f32(m->be, G(m, i), m->dt, local, gv_param_numel(&m->params[i]));
}

/* T5's relative bias table of `stack` (0 encoder, 1 decoder), held by several parts (see gv_t5_params). g is
 * the global [buckets, H] gradient. */
static int gv_rel_param(const gv_model *m, int stack) {
    return m->arch != GV_ARCH_T5 ? -1 : stack ? m->rel_dec : m->rel_enc;
}

int gv_model_rel_bias_held(const gv_model *m, int stack) {
    return gv_rel_param(m, stack) >= 0;
}

gv_status gv_model_rel_bias_grad_add(gv_model *m, int stack, float *g) {
    int i = gv_rel_param(m, stack);
    if (i < 0) return GV_OK;
    const gv_param *p = &m->params[i];
    float *local = malloc(gv_param_numel(p) * sizeof *local);
    if (!local) return gv_fail(GV_ERR_NOMEM, "model: out of host memory");
    gv_status st = gv_backend_sync(m->be);
    if (st == GV_OK && m->zero == 3) /* reduced already: every dp rank holds the sum; dp rank 0 adds it */
        st = gv_param_local_values(m, GV_BUF_GRADS, i, local);
    else if (st == GV_OK)
        st = gv_backend_download_f32(m->be, local, G(m, i), m->dt, gv_param_numel(p));
    if (st == GV_OK && (m->zero != 3 || m->dp_rank == 0))
        for (int64_t r = 0; r < p->rows; r++)
            for (int64_t c = 0; c < p->cols; c++) g[r * p->g_cols + p->c0 + c] += local[r * p->cols + c];
    free(local);
    return st;
}

gv_status gv_model_rel_bias_grad_set(gv_model *m, int stack, const float *g) {
    int i = gv_rel_param(m, stack);
    if (i < 0) return GV_OK;
    const gv_param *p = &m->params[i];
    float *local = calloc(gv_param_numel(p), sizeof *local);
    if (!local) return gv_fail(GV_ERR_NOMEM, "model: out of host memory");
    /* Before the data-parallel sum (no ZeRO-3) dp rank 0 holds the total and the others zero. */
    if (m->zero == 3 || m->dp_rank == 0)
        for (int64_t r = 0; r < p->rows; r++)
            for (int64_t c = 0; c < p->cols; c++) local[r * p->cols + c] = g[r * p->g_cols + p->c0 + c];
    gv_status st = m->zero == 3 ? gv_store_local(m, GV_BUF_GRADS, i, local)
                                : gv_backend_upload_f32(m->be, G(m, i), m->dt, local, gv_param_numel(p));
    free(local);
    return st;
}

/* Rows of image b that are patches (not the class token at global position 0): [b*T + s, b*T + T). */
static int gv_patch_row0(const gv_model *m) {
    return m->sp_rank * m->T == 0 ? 1 : 0;
}

/* ViT: out [N,C] = (class token at position 0 | patches [N,Pd] @ patch_w^T + patch_b) + wpe[position]. The
 * class token and positions go through the embedding op (token 0 of the one-row table cls at position 0,
 * no row elsewhere), the patches through one matmul per image over its patch rows. */
static gv_status gv_vit_embed_forward(gv_model *m, const int32_t *pix, int compute) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, N = m->N, C = m->C, Pd = m->Pd, pos0 = m->sp_rank * T, s0 = gv_patch_row0(m);
    size_t e = m->esz;
    for (int n = 0; n < N; n++) {
        int cls = pos0 + n % T == 0;
        m->h_ids[n] = cls ? 0 : -1;
        for (int k = 0; k < Pd; k++) {
            int32_t v = pix[(size_t)n * Pd + k];
            if (v < 0 || v > 255)
                return gv_fail(GV_ERR_INVALID, "pixel %d at position %d, word %d is outside [0, 255]", v, n,
                               k);
            m->h_pix[(size_t)n * Pd + k] = cls ? 0.0f : (float)v / 127.5f - 1.0f; /* HF: (x/255 - 0.5)/0.5 */
        }
    }
    char *d_pix = ACT(m, m->o_pix), *tmp = ACT(m, m->o_emb_tmp), *out = ACT(m, m->o_emb_full);
    GV_TRY(gv_backend_upload(be, ACT(m, m->o_tokens), m->h_ids, (size_t)N * 4));
    GV_TRY(gv_backend_upload_f32(be, d_pix, m->dt, m->h_pix, (size_t)N * Pd));
    if (!compute) return gv_backend_memset0(be, out, (size_t)N * C * e);
    GV_TRY(gv_embedding_forward(be, out, ACT(m, m->o_tokens), W(m, m->cls), W(m, m->wpe), B, T, C, pos0));
    GV_TRY(gv_backend_memset0(be, tmp, (size_t)N * C * e));
    for (int b = 0; b < B; b++) {
        size_t r = (size_t)b * T + s0;
        GV_TRY(gv_matmul_forward(be, tmp + r * C * e, d_pix + r * Pd * e, W(m, m->patch_w), W(m, m->patch_b),
                                 T - s0, Pd, C));
    }
    return gv_accumulate(be, out, tmp, (size_t)N * C);
}

/* Embedding phase: inputs [N, IW] (see gv_model_spec_input_width) -> the layers' input [Nl,C]. */
static gv_status gv_embed_forward(gv_model *m, const int32_t *in) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, N = m->N, C = m->C, IW = m->IW;
    int bert = m->arch == GV_ARCH_BERT;
    /* Vocab parallel: rank 0 adds what is not split over the vocab (positions, token types; ViT: all of
     * it), the other ranks their embedding rows only, and the partial embeddings are summed. */
    int rank0_part = !(m->vp && m->tp_rank);
    GV_TRY(gv_unit_gather(m, 0));
    if (m->arch == GV_ARCH_VIT) {
        GV_TRY(gv_vit_embed_forward(m, in, rank0_part));
    } else {
        for (int i = 0; i < N; i++) {
            int32_t tok = in[(size_t)i * IW], typ = bert ? in[(size_t)i * IW + 1] : 0;
            if (tok < 0 || tok >= m->V)
                return gv_fail(GV_ERR_INVALID, "token %d at position %d is outside the model's vocab [0, %d)",
                               tok, i, m->V);
            if (bert && (typ < 0 || typ >= m->spec.type_vocab))
                return gv_fail(GV_ERR_INVALID, "token type %d at position %d is outside [0, %d)", typ, i,
                               m->spec.type_vocab);
            /* Vocab parallel: ids relative to this rank's rows, -1 for tokens held by other ranks. */
            m->h_ids[i] = !m->vp ? tok : tok >= m->v0 && tok < m->v0 + m->Vpl ? tok - m->v0 : -1;
            m->h_types[i] = typ;
        }
        int32_t *d_tokens = ACT(m, m->o_tokens);
        GV_TRY(gv_backend_upload(be, d_tokens, m->h_ids, (size_t)N * 4));
        GV_TRY(gv_embedding_forward(be, ACT(m, m->o_emb_full), d_tokens, W(m, m->wte),
                                    rank0_part ? W(m, m->wpe) : NULL, B, T, C, m->sp_rank * T));
        if (bert) {
            GV_TRY(gv_backend_upload(be, ACT(m, m->o_types), m->h_types, (size_t)N * 4));
            if (rank0_part) {
                GV_TRY(gv_embedding_forward(be, ACT(m, m->o_emb_tmp), ACT(m, m->o_types), W(m, m->wtt), NULL,
                                            B, T, C, 0));
                GV_TRY(gv_accumulate(be, ACT(m, m->o_emb_full), ACT(m, m->o_emb_tmp), (size_t)N * C));
            }
        }
    }
    if (m->vp) GV_TRY(gv_tp_combine(m, ACT(m, m->o_emb_full), ACT(m, m->o_encoded)));
    if (bert) /* the embedding LayerNorm, on this rank's positions */
        GV_TRY(gv_norm_forward(m, ACT(m, m->o_embln), F32ACT(m, m->o_embln_mean), F32ACT(m, m->o_embln_rstd),
                               ACT(m, m->o_encoded), m->embln_w, m->embln_b));
    return GV_OK;
}

/* Final norm, LM head and loss from the head's input [Nl,C]. */
static gv_status gv_head_forward(gv_model *m, const int32_t *targets, float *loss) {
    gv_backend *be = m->be;
    int N = m->N, C = m->C;
    for (int i = 0; targets && i < N; i++)
        if (targets[i] < -1 || targets[i] >= m->V)
            return gv_fail(GV_ERR_INVALID, "target %d at position %d is outside the model's vocab [0, %d)",
                           targets[i], i, m->V);
    int32_t *d_targets = ACT(m, m->o_targets);
    GV_TRY(gv_unit_gather(m, m->nunits - 1));
    if (m->lm_head == m->wte) GV_TRY(gv_unit_gather(m, 0)); /* tied: the embedding unit holds the head */
    const void *norm_in = gv_head_in(m);                    /* [Nl,C] */
    if (m->arch == GV_ARCH_BERT) { /* MLM transform on this rank's positions: dense, GELU */
        GV_TRY(
            gv_matmul_forward(be, ACT(m, m->o_hd), norm_in, W(m, m->head_w), W(m, m->head_b), m->Nl, C, C));
        GV_TRY(gv_gelu_erf_forward(be, ACT(m, m->o_hg), ACT(m, m->o_hd), (size_t)m->Nl * C));
        norm_in = ACT(m, m->o_hg);
    }
    GV_TRY(gv_norm_forward(m, ACT(m, m->o_lnf), F32ACT(m, m->o_lnf_mean), F32ACT(m, m->o_lnf_rstd), norm_in,
                           m->lnf_w, m->lnf_b));
    GV_TRY(gv_tp_expand(m, ACT(m, m->o_lnf), ACT(m, m->o_lnf_full)));
    if (m->arch == GV_ARCH_T5) /* tied head: sequence_output * C^-0.5 */
        GV_TRY(gv_scale(be, ACT(m, m->o_lnf_full), 1.0f / sqrtf((float)C), (size_t)N * C));
    GV_TRY(gv_matmul_forward(be, ACT(m, m->o_logits), ACT(m, m->o_lnf_full), W(m, m->lm_head),
                             W(m, m->lm_bias), N, C, m->Vpl));
    m->have_forward = 1;
    m->loss_divs[m->slot] = 0;
    if (!targets) {
        if (loss) *loss = 0.0f;
        return gv_backend_sync(be);
    }
    memcpy(m->h_targets, targets, (size_t)N * 4);
    GV_TRY(gv_backend_upload(be, d_targets, targets, (size_t)N * 4));
    int n_valid = 0;
    for (int i = 0; i < N; i++) n_valid += targets[i] != -1;
    /* Ulysses: the sp ranks hold parts of the same sequences, so the mean is over their counted positions
     * together; each rank reports sum * sp / total so that the ranks' mean is the group's mean. */
    float div = (float)n_valid;
    if (m->sp_size > 1) {
        int total = n_valid;
        GV_TRY(gv_comm_allreduce(m->sp, &total, &total, 1, GV_COMM_I32, GV_COMM_SUM));
        div = (float)total / (float)m->sp_size;
    }
    m->loss_divs[m->slot] = div;
    m->ce_dloss[m->slot] = 0;
    if (m->vp) {
        GV_TRY(gv_vocab_parallel_loss(m, d_targets));
    } else if (m->train_dloss > 0) { /* a backward follows: its loss gradient now, in the same pass */
        GV_TRY(gv_crossentropy_forward_backward(be, F32ACT(m, m->o_losses), ACT(m, m->o_logits), d_targets,
                                                div > 0 ? m->train_dloss / div : 0.0f, N, m->V, m->Vp, -1));
        m->ce_dloss[m->slot] = m->train_dloss;
    } else {
        GV_TRY(gv_crossentropy_forward(be, F32ACT(m, m->o_losses), ACT(m, m->o_logits), d_targets, N, m->V,
                                       m->Vp, -1));
    }
    GV_TRY(gv_backend_download(be, m->h_losses, F32ACT(m, m->o_losses), (size_t)N * 4));
    double sum = 0.0;
    for (int i = 0; i < N; i++)
        if (targets[i] != -1) sum += m->h_losses[i];
    if (loss) *loss = div > 0 ? (float)(sum / div) : 0.0f;
    return GV_OK;
}

/* ---- T5 --------------------------------------------------------------------------------------------- */

/* The relative position bias of a stack, F32 [Tf,Tf,Hb]: the table's row of each (i, j)'s bucket, for this
 * rank's heads (its tp heads, or under Ulysses its head group over the full sequence Tf). */
static int gv_t5_bias_heads(const gv_model *m) {
    return m->sp_size > 1 ? m->Hs : m->Hl;
}

static gv_status gv_t5_bias_forward(gv_model *m, int dec) {
    int T = m->Tf, H = m->Hl, Hb = gv_t5_bias_heads(m), nb = m->spec.rel_buckets;
    size_t TT = (size_t)T * T, e = m->esz;
    void *tmp = ACT(m, m->o_bias_tmp); /* [T*T, Hb] compute dtype */
    float *bias = F32ACT(m, dec ? m->o_bias_dec : m->o_bias_enc);
    const void *table = W(m, dec ? m->rel_dec : m->rel_enc); /* [buckets, H] */
    if (m->sp_size > 1) { /* Ulysses: the head group's columns of the table, [buckets, Hb] */
        void *slice = WORK(m, m->o_bias_slice);
        GV_TRY(gv_backend_copy2d(m->be, slice, Hb * e, (const char *)table + (size_t)m->sp_rank * Hb * e,
                                 H * e, Hb * e, (size_t)nb));
        table = slice;
    }
    GV_TRY(gv_embedding_forward(m->be, tmp, WORK(m, dec ? m->o_bk_dec : m->o_bk_enc), table, NULL, 1, T * T,
                                Hb, 0));
    return gv_backend_convert(m->be, bias, GV_F32, tmp, m->dt, TT * Hb);
}

/* The stack's accumulated bias gradient (F32 [Tf,Tf,Hb]) into its table's gradient. */
static gv_status gv_t5_bias_backward(gv_model *m, int dec) {
    int T = m->Tf, H = m->Hl, Hb = gv_t5_bias_heads(m), nb = m->spec.rel_buckets;
    size_t TT = (size_t)T * T, e = m->esz;
    void *tmp = ACT(m, m->o_bias_tmp); /* [T*T, Hb] */
    const float *db = WORK(m, dec ? m->o_dbias_dec : m->o_dbias_enc);
    const int32_t *bk = WORK(m, dec ? m->o_bk_dec : m->o_bk_enc);
    char *grad = G(m, dec ? m->rel_dec : m->rel_enc); /* [buckets, H] */
    GV_TRY(gv_backend_convert(m->be, tmp, m->dt, db, GV_F32, TT * Hb));
    if (m->sp_size == 1) return gv_embedding_backward(m->be, grad, NULL, tmp, bk, 1, T * T, H, 0);
    /* Ulysses: the head group's columns of the table gradient (the other columns are the other ranks'),
     * accumulated in [buckets, Hb] and put back */
    void *slice = WORK(m, m->o_bias_slice);
    char *cols = grad + (size_t)m->sp_rank * Hb * e;
    GV_TRY(gv_backend_copy2d(m->be, slice, Hb * e, cols, H * e, Hb * e, (size_t)nb));
    GV_TRY(gv_embedding_backward(m->be, slice, NULL, tmp, bk, 1, T * T, Hb, 0));
    return gv_backend_copy2d(m->be, cols, H * e, slice, Hb * e, Hb * e, (size_t)nb);
}

/* The attention's shape: this rank's heads over its positions, or under Ulysses its head group over the full
 * sequence (rows of the all-to-all's [B, Tf, width] buffers). */
static gv_attn_ext gv_t5_attn(const gv_model *m, int cross, int causal) {
    int u = m->sp_size > 1, H = u ? m->Hs : m->Hl, KVH = u ? m->KVHs : m->KVHl, T = m->Tf;
    int HD = H * m->D, KD = KVH * m->D, QKV = u ? m->QKVs : m->QKVl;
    gv_attn_ext a = {
        m->B, T, T, H, KVH, m->D, cross ? HD : QKV, cross ? 2 * KD : QKV, cross ? 2 * KD : QKV, 1.0f, causal};
    return a; /* T5 does not scale the scores */
}

/* Ulysses layouts of T5's cross-attention rows: q [H*D] and the packed k, v [2 KVH*D] of the encoder. */
static void gv_t5_sp_cross(const gv_model *m, int off[3], int w[3], gv_sp_layout *q, gv_sp_layout *kv) {
    int D = m->D;
    off[0] = 0, w[0] = m->Hs * D;
    off[1] = 0, off[2] = m->KVH * D, w[1] = w[2] = m->KVHs * D;
    *q = (gv_sp_layout){1, m->H * D, m->Hs * D, off, w};
    *kv = (gv_sp_layout){2, 2 * m->KVH * D, 2 * m->KVHs * D, off + 1, w + 1};
}

/* The input of the MLP: the stream after the cross-attention (decoder) or after the self-attention. */
static size_t gv_t5_mlp_res(const gv_model *m, int j) {
    return m->li[j].lnc_w >= 0 ? m->la[j].resc : m->la[j].res1;
}

/* T5 block j (global l0 + j) from res [Nl,C] to la[j].res2 [Nl,C]: self-attention (relative bias; causal in
 * the decoder), the decoder's cross-attention over the encoder output, the ReLU MLP, each pre-norm with a
 * residual. The last encoder block also applies the encoder's final norm (-> enc_out). Under Megatron-SP the
 * norms run on this rank's positions, their outputs are gathered (one shared [N,C] view) before the
 * column-parallel linears and the row-parallel sums are reduce-scattered, as in gv_layer_forward. */
/* sum [Nl,C] = res + inp [N,K] @ w^T: a row-parallel projection without bias and the residual after it (tp 1:
 * in the product's epilogue; else the partial product, its sum over tp, then the add). */
static gv_status gv_t5_proj_add(gv_model *m, const gv_layer_acts *a, void *sum, const void *res,
                                const void *inp, int wi, int K) {
    if (gv_fuse_residual(m))
        return gv_matmul_forward_add(m->be, sum, inp, W(m, wi), NULL, res, m->N, K, m->C);
    GV_TRY(gv_matmul_forward(m->be, ACT(m, a->attproj_p), inp, W(m, wi), NULL, m->N, K, m->C));
    GV_TRY(gv_tp_combine(m, ACT(m, a->attproj_p), ACT(m, a->attproj)));
    return gv_add_forward(m->be, sum, res, ACT(m, a->attproj), (size_t)m->Nl * m->C);
}

static gv_status gv_t5_layer_forward(gv_model *m, int j, const void *res) {
    gv_backend *be = m->be;
    int l = m->l0 + j, N = m->N, C = m->C, HD = m->Hl * m->D, KD = m->KVHl * m->D, dec = l >= m->Le;
    size_t e = m->esz;
    const gv_layer_idx *x = &m->li[j];
    const gv_layer_acts *a = &m->la[j];
    GV_TRY(gv_unit_gather(m, j + 1));
    if (j == 0 || l == m->Le) GV_TRY(gv_t5_bias_forward(m, dec));
    gv_attn_ext sa = gv_t5_attn(m, 0, dec);
    char *qkv = ACT(m, a->qkv); /* [N, QKV] */
    GV_TRY(gv_norm_forward(m, ACT(m, a->ln1), F32ACT(m, a->ln1_mean), F32ACT(m, a->ln1_rstd), res, x->ln1_w,
                           -1));
    GV_TRY(gv_tp_expand(m, ACT(m, a->ln1), ACT(m, a->ln1f)));
    GV_TRY(gv_matmul_forward(be, qkv, ACT(m, a->ln1f), W(m, x->qkv_w), NULL, N, C, m->QKVl));
    float *bias = F32ACT(m, dec ? m->o_bias_dec : m->o_bias_enc);
    if (m->sp_size > 1) { /* Ulysses: all positions of this rank's head group */
        int qoff[3], qw[3], aoff[1], aw[1], sHD = m->Hs * m->D, sKD = m->KVHs * m->D;
        gv_sp_layout yq, ya;
        gv_sp_layouts(m, qoff, qw, aoff, aw, &yq, &ya);
        char *qs = ACT(m, a->qkv_sp);
        GV_TRY(gv_backend_sync(be));
        GV_TRY(gv_sp_heads_to_seq(m, &yq, (float *)qkv, (float *)qs));
        GV_TRY(gv_attention_ext_forward(be, &sa, ACT(m, a->atty_sp), F32ACT(m, a->stash), qs, qs + sHD * e,
                                        qs + (sHD + sKD) * e, bias));
        GV_TRY(gv_backend_sync(be));
        GV_TRY(gv_sp_seq_to_heads(m, &ya, F32ACT(m, a->atty_sp), F32ACT(m, a->atty)));
    } else {
        GV_TRY(gv_attention_ext_forward(be, &sa, ACT(m, a->atty), F32ACT(m, a->stash), qkv, qkv + HD * e,
                                        qkv + (HD + KD) * e, bias));
    }
    GV_TRY(gv_t5_proj_add(m, a, ACT(m, a->res1), res, ACT(m, a->atty), x->proj_w, HD));
    if (x->lnc_w >= 0) {
        gv_attn_ext ca = gv_t5_attn(m, 1, 0);
        char *ckv = ACT(m, a->ckv); /* [N, 2KD]: k then v of the encoder output */
        GV_TRY(
            gv_norm_forward(m, ACT(m, a->lnc), NULL, F32ACT(m, a->lnc_rstd), ACT(m, a->res1), x->lnc_w, -1));
        GV_TRY(gv_tp_expand(m, ACT(m, a->lnc), ACT(m, a->lncf)));
        GV_TRY(gv_matmul_forward(be, ACT(m, a->cq), ACT(m, a->lncf), W(m, x->cq_w), NULL, N, C, HD));
        GV_TRY(gv_matmul_forward(be, ckv, gv_t5_enc_full(m), W(m, x->ckv_w), NULL, N, C, 2 * KD));
        if (m->sp_size > 1) {
            int off[3], w[3];
            gv_sp_layout yq, ykv;
            gv_t5_sp_cross(m, off, w, &yq, &ykv);
            char *kvs = ACT(m, a->ckv_sp);
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_heads_to_seq(m, &yq, F32ACT(m, a->cq), F32ACT(m, a->cq_sp)));
            GV_TRY(gv_sp_heads_to_seq(m, &ykv, (float *)ckv, (float *)kvs));
            GV_TRY(gv_attention_ext_forward(be, &ca, ACT(m, a->catty_sp), F32ACT(m, a->cstash),
                                            ACT(m, a->cq_sp), kvs, kvs + (size_t)m->KVHs * m->D * e, NULL));
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_seq_to_heads(m, &yq, F32ACT(m, a->catty_sp), F32ACT(m, a->catty)));
        } else {
            GV_TRY(gv_attention_ext_forward(be, &ca, ACT(m, a->catty), F32ACT(m, a->cstash), ACT(m, a->cq),
                                            ckv, ckv + KD * e, NULL));
        }
        GV_TRY(gv_t5_proj_add(m, a, ACT(m, a->resc), ACT(m, a->res1), ACT(m, a->catty), x->co_w, HD));
    }
    const void *mres = ACT(m, gv_t5_mlp_res(m, j));
    GV_TRY(gv_norm_forward(m, ACT(m, a->ln2), F32ACT(m, a->ln2_mean), F32ACT(m, a->ln2_rstd), mres, x->ln2_w,
                           -1));
    GV_TRY(gv_tp_expand(m, ACT(m, a->ln2), ACT(m, a->ln2f)));
    GV_TRY(gv_matmul_forward(be, ACT(m, a->fch), ACT(m, a->ln2f), W(m, x->fc_w), NULL, N, C, m->Fl));
    GV_TRY(gv_relu_forward(be, ACT(m, a->fch_act), ACT(m, a->fch), (size_t)N * m->Fl));
    GV_TRY(gv_t5_proj_add(m, a, ACT(m, a->res2), mres, ACT(m, a->fch_act), x->fcproj_w, m->Fl));
    if (l == m->Le - 1)
        GV_TRY(gv_norm_forward(m, ACT(m, m->o_enc_out), NULL, F32ACT(m, m->o_encf_rstd), ACT(m, a->res2),
                               m->encf_w, -1));
    return GV_OK;
}

/* T5's embedding phase: inputs [N, 2] = (encoder id, decoder id) -> both embeddings [Nl,C] (channels 0
 * and 1). Vocab parallel: each rank embeds the ids of its rows and the partial embeddings are summed
 * (reduce-scattered over the positions under Megatron-SP). */
static gv_status gv_t5_embed_forward(gv_model *m, const int32_t *in) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, N = m->N, C = m->C;
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < N; i++) {
            int32_t tok = in[2 * i + k];
            if (tok < 0 || tok >= m->V)
                return gv_fail(GV_ERR_INVALID,
                               "%s token %d at position %d is outside the model's vocab [0, %d)",
                               k ? "decoder" : "encoder", tok, i, m->V);
            /* vocab parallel: ids relative to this rank's rows, -1 for the others' */
            m->h_ids[i] = !m->vp ? tok : tok >= m->v0 && tok < m->v0 + m->Vpl ? tok - m->v0 : -1;
        }
        GV_TRY(gv_backend_upload(be, ACT(m, k ? m->o_dec_tokens : m->o_tokens), m->h_ids, (size_t)N * 4));
    }
    GV_TRY(gv_unit_gather(m, 0));
    for (int k = 0; k < 2; k++) {
        void *out = ACT(m, k ? m->o_dec_emb : m->o_encoded); /* [Nl,C] */
        void *full = m->msp ? ACT(m, m->o_emb_full) : out;   /* [N,C] */
        GV_TRY(gv_embedding_forward(be, full, ACT(m, k ? m->o_dec_tokens : m->o_tokens), W(m, m->wte), NULL,
                                    B, T, C, 0));
        if (m->vp) GV_TRY(gv_tp_combine(m, full, out)); /* the partial embeddings of the vocab shards */
    }
    return GV_OK;
}

/* T5's layers phase: channels in -> channels out (gv_t5_in, gv_t5_out). */
static gv_status gv_t5_layers_forward(gv_model *m) {
    m->pf_dir = 1; /* the gather of a unit prefetches the next (ZeRO-3 with overlap) */
    for (int j = 0; j < m->nl; j++) {
        int l = m->l0 + j;
        if (l >= m->Le && (j == 0 || l == m->Le)) /* the first decoder layer: all positions of enc_out */
            GV_TRY(gv_tp_expand(m, gv_t5_enc(m), gv_t5_enc_full(m)));
        GV_TRY(gv_t5_layer_forward(m, j, gv_t5_res_in(m, j)));
    }
    m->pf_dir = 0;
    return GV_OK;
}

gv_status gv_model_part_forward(gv_model *m, int phases, int slot, const int32_t *tokens,
                                const int32_t *targets, float *loss) {
    GV_TRY(gv_check_phases(m, phases, slot));
    if (loss) *loss = 0.0f;
    m->fwd_done[slot] = 1;
    int t5 = m->arch == GV_ARCH_T5;
    /* ZeRO-3 with overlap: the first layer's gather runs during the embedding */
    if ((phases & GV_PHASE_EMBED) && (phases & GV_PHASE_LAYERS)) GV_TRY(gv_unit_prefetch(m, 1));
    if (phases & GV_PHASE_EMBED) GV_TRY(t5 ? gv_t5_embed_forward(m, tokens) : gv_embed_forward(m, tokens));
    if ((phases & GV_PHASE_LAYERS) && t5) {
        GV_TRY(gv_t5_layers_forward(m));
    } else if (phases & GV_PHASE_LAYERS) {
        const void *res = gv_layers_in(m); /* [Nl,C] residual stream */
        m->pf_dir = 1; /* the gather of a unit prefetches the next (ZeRO-3 with overlap) */
        for (int l = 0; l < m->nl; l++) {
            GV_TRY(gv_layer_forward(m, l, res, l > 0 && gv_fuse_next_ln1(m, l - 1)));
            res = ACT(m, m->la[l].res2);
        }
        m->pf_dir = 0;
    }
    if (phases & GV_PHASE_HEAD) GV_TRY(gv_head_forward(m, targets, loss));
    GV_TRY(gv_unit_grad_flush(m)); /* nothing stays in flight between passes */
    return phases & GV_PHASE_LAYERS ? gv_backend_sync(m->be) : GV_OK;
}

gv_status gv_model_forward(gv_model *m, const int32_t *tokens, const int32_t *targets, float *loss) {
    return gv_model_part_forward(m, GV_PHASE_ALL, 0, tokens, targets, loss);
}

/* ZeRO-3: the embedding unit's gradients collect from the tied head's backward to the embedding's. */
static gv_status gv_unit0_grad_open(gv_model *m) {
    if (m->u0_open) return GV_OK;
    m->u0_open = 1;
    return gv_unit_grad_begin(m, 0);
}

/* From the loss to d(head input) in dres [Nl,C]. */
/* sum_fcb: the layers' backward follows in this pass, so the lnf backward sums the top layer's MLP
 * projection bias gradient (gv_norm_sums_bias). */
static gv_status gv_head_backward(gv_model *m, float dloss, int sum_fcb) {
    gv_backend *be = m->be;
    int N = m->N, C = m->C;
    size_t e = m->esz;
    void *dres = WORK(m, m->o_dres);
    void *dln = WORK(m, m->o_dln), *dln_l = WORK(m, m->o_dln_l); /* [N,C] partial, [Nl,C] summed */
    void *dlogits = ACT(m, m->o_logits); /* the loss gradient replaces the logits in place */
    /* Nothing counted in the loss (all targets ignored): a zero gradient, still run through every
     * communicating step so that no rank of any group waits. */
    float div = m->loss_divs[m->slot], scale = div > 0 ? dloss / div : 0.0f;
    if (m->lm_head == m->wte) GV_TRY(gv_unit0_grad_open(m));
    GV_TRY(gv_unit_grad_begin(m, m->nunits - 1));
    if (m->ce_dloss[m->slot] > 0) { /* the forward left the gradient in the logits */
        if (m->ce_dloss[m->slot] != dloss)
            return gv_fail(GV_ERR_INVALID,
                           "model backward: dloss %g differs from the %g the forward was told", (double)dloss,
                           (double)m->ce_dloss[m->slot]);
        m->ce_dloss[m->slot] = 0;
    } else if (m->vp) {
        GV_TRY(gv_crossentropy_shard_backward(be, dlogits, ACT(m, m->o_logits), ACT(m, m->o_targets),
                                              F32ACT(m, m->o_lse), scale, N, m->Vl, m->Vpl, m->v0, -1));
    } else {
        GV_TRY(gv_crossentropy_backward(be, dlogits, ACT(m, m->o_logits), ACT(m, m->o_targets), scale, N,
                                        m->V, m->Vp, -1));
    }
    GV_TRY(gv_backend_memset0(be, dln, (size_t)N * C * e));
    GV_TRY(gv_matmul_backward(be, dln, G(m, m->lm_head), G(m, m->lm_bias), dlogits, ACT(m, m->o_lnf_full),
                              W(m, m->lm_head), N, C, m->Vpl));
    if (m->vp) GV_TRY(gv_tp_combine(m, dln, dln_l)); /* each rank saw only its vocab columns */
    size_t NlC = (size_t)m->Nl * C;
    if (m->arch == GV_ARCH_T5) GV_TRY(gv_scale(be, dln_l, 1.0f / sqrtf((float)C), NlC));
    GV_TRY(gv_backend_memset0(be, dres, NlC * e));
    if (m->arch == GV_ARCH_BERT) { /* back through LayerNorm, GELU and the dense of the transform */
        void *dhg = WORK(m, m->o_dpost), *dhd = WORK(m, m->o_dhead); /* [Nl,C] each */
        GV_TRY(gv_backend_memset0(be, dhg, NlC * e));
        GV_TRY(gv_norm_backward(m, dhg, dln_l, ACT(m, m->o_hg), F32ACT(m, m->o_lnf_mean),
                                F32ACT(m, m->o_lnf_rstd), m->lnf_w, m->lnf_b));
        GV_TRY(gv_backend_memset0(be, dhd, NlC * e));
        GV_TRY(gv_gelu_erf_backward(be, dhd, dhg, ACT(m, m->o_hd), NlC));
        GV_TRY(gv_matmul_backward(be, dres, G(m, m->head_w), G(m, m->head_b), dhd, gv_head_in(m),
                                  W(m, m->head_w), m->Nl, C, C));
    } else {
        void *fcb = sum_fcb ? G(m, m->li[m->nl - 1].fcproj_b) : NULL;
        GV_TRY(gv_norm_backward_sum(m, dres, dln_l, gv_head_in(m), F32ACT(m, m->o_lnf_mean),
                                    F32ACT(m, m->o_lnf_rstd), m->lnf_w, m->lnf_b, fcb));
    }
    GV_TRY(gv_unit_grad_end(m, m->nunits - 1));
    return gv_grad_unit_done(m, m->nunits - 1);
}

/* Post-LN: dres [Nl,C] = d(norm output) becomes d(norm input), the sum `sum` [Nl,C] it normalised. */
static gv_status gv_post_norm_backward(gv_model *m, size_t sum, size_t mean, size_t rstd, int wi, int bi) {
    void *dres = WORK(m, m->o_dres), *dsum = WORK(m, m->o_dpost);
    size_t n = (size_t)m->Nl * m->C;
    GV_TRY(gv_backend_memset0(m->be, dsum, n * m->esz));
    GV_TRY(gv_norm_backward(m, dsum, dres, ACT(m, sum), F32ACT(m, mean), F32ACT(m, rstd), wi, bi));
    GV_TRY(gv_backend_memset0(m->be, dres, n * m->esz));
    return gv_accumulate(m->be, dres, dsum, n);
}

static gv_status gv_layers_backward_(gv_model *m, void *dres, void *dres_f, void *dln, void *dln_l,
                                     void *dqkv, void *dqkv_r, void *datty, void *dfch, void *dfch_act,
                                     int top_fcb);

/* Layers l = nl-1 .. 0: dres [Nl,C] holds d(layers output) and leaves holding d(layers input). top_fcb:
 * the head's norm backward summed the top layer's MLP projection bias gradient. */
static gv_status gv_layers_backward(gv_model *m, int top_fcb) {
    void *dres = WORK(m, m->o_dres), *dres_f = WORK(m, m->o_dres_full); /* [Nl,C], [N,C] (alias w/o msp) */
    void *dln = WORK(m, m->o_dln), *dln_l = WORK(m, m->o_dln_l);        /* [N,C] partial, [Nl,C] summed */
    void *dqkv = WORK(m, m->o_dqkv), *dqkv_r = WORK(m, m->o_dqkv_r), *datty = WORK(m, m->o_datty);
    void *dfch = WORK(m, m->o_dfch), *dfch_act = WORK(m, m->o_dfch_act);
    /* dres holds d(residual) [Nl,C] and flows down; each branch's input gradient accumulates into it. The
     * gather of a unit prefetches the one below (ZeRO-3 with overlap). */
    m->pf_dir = -1;
    gv_status st =
        gv_layers_backward_(m, dres, dres_f, dln, dln_l, dqkv, dqkv_r, datty, dfch, dfch_act, top_fcb);
    m->pf_dir = 0;
    return st;
}

static gv_status gv_layers_backward_(gv_model *m, void *dres, void *dres_f, void *dln, void *dln_l,
                                     void *dqkv, void *dqkv_r, void *datty, void *dfch, void *dfch_act,
                                     int top_fcb) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, N = m->N, C = m->C, HD = m->Hl * m->D;
    size_t e = m->esz, NC = (size_t)N * C * e;
    const int proj_in_norm = gv_norm_sums_bias(m, 0), fcb_below = gv_norm_sums_bias(m, 1);
    int fcb_done = top_fcb; /* layer l's MLP projection bias gradient was summed by the norm above it */
    for (int l = m->nl - 1; l >= 0; l--) {
        const gv_layer_idx *x = &m->li[l];
        const gv_layer_acts *a = &m->la[l];
        const void *res_in = l ? ACT(m, m->la[l - 1].res2) : gv_layers_in(m);
        if (m->ckpt[l])
            GV_TRY(gv_layer_forward(m, l, res_in, 0)); /* refill the shared views */
        else
            GV_TRY(gv_unit_gather(m, l + 1)); /* ZeRO-3: later layers took the slot */
        GV_TRY(gv_unit_grad_begin(m, l + 1));
        if (m->post) GV_TRY(gv_post_norm_backward(m, a->ln2, a->ln2_mean, a->ln2_rstd, x->ln2_w, x->ln2_b));
        GV_TRY(gv_tp_expand(m, dres, dres_f));
        int fused = m->spec.act == GV_ACT_GELU; /* through the GELU without the dfch_act scratch */
        GV_TRY(gv_backend_memset0(be, dfch, (size_t)N * m->F2l * e));
        if (fused) {
            GV_TRY(gv_matmul_backward_gelu(be, dfch, G(m, x->fc_b), G(m, x->fcproj_w),
                                           fcb_done ? NULL : G(m, x->fcproj_b), dres_f, ACT(m, a->fch_act),
                                           ACT(m, a->fch), W(m, x->fcproj_w), N, m->Fl, C));
        } else {
            GV_TRY(gv_backend_memset0(be, dfch_act, (size_t)N * m->Fl * e));
            GV_TRY(gv_matmul_backward(be, dfch_act, G(m, x->fcproj_w), fcb_done ? NULL : G(m, x->fcproj_b),
                                      dres_f, ACT(m, a->fch_act), W(m, x->fcproj_w), N, m->Fl, C));
            GV_TRY(gv_act_backward(m, dfch, dfch_act, ACT(m, a->fch)));
        }
        GV_TRY(gv_backend_memset0(be, dln, NC));
        /* The gathered view is shared by all layers: gather the MLP input again, unless the recompute just
         * did. */
        if (!m->ckpt[l]) GV_TRY(gv_tp_expand(m, gv_mlp_in(m, a), ACT(m, a->ln2f)));
        GV_TRY(gv_matmul_backward(be, dln, G(m, x->fc_w), fused ? NULL : G(m, x->fc_b), dfch,
                                  gv_mlp_in_full(m, a), W(m, x->fc_w), N, C, m->F2l));
        GV_TRY(gv_tp_combine(m, dln, dln_l)); /* column-parallel input gradient: partial sums */
        if (m->post) {
            GV_TRY(gv_accumulate(be, dres, dln_l, (size_t)m->Nl * C));
            GV_TRY(gv_post_norm_backward(m, a->ln1, a->ln1_mean, a->ln1_rstd, x->ln1_w, x->ln1_b));
        } else {
            GV_TRY(gv_norm_backward_sum(m, dres, dln_l, ACT(m, a->res1), F32ACT(m, a->ln2_mean),
                                        F32ACT(m, a->ln2_rstd), x->ln2_w, x->ln2_b,
                                        proj_in_norm ? G(m, x->proj_b) : NULL));
        }
        GV_TRY(gv_tp_expand(m, dres, dres_f));
        GV_TRY(gv_backend_memset0(be, datty, (size_t)N * HD * e));
        GV_TRY(gv_matmul_backward(be, datty, G(m, x->proj_w), proj_in_norm ? NULL : G(m, x->proj_b), dres_f,
                                  ACT(m, a->atty), W(m, x->proj_w), N, HD, C));
        GV_TRY(gv_backend_memset0(be, dqkv_r, (size_t)N * m->QKVl * e));
        if (m->sp_size > 1) {
            int qoff[3], qw[3], aoff[1], aw[1];
            gv_sp_layout yq, ya;
            size_t NF = (size_t)B * m->Tf;
            void *dqkv_sp = WORK(m, m->o_dqkv_sp), *datty_sp = WORK(m, m->o_datty_sp);
            gv_sp_layouts(m, qoff, qw, aoff, aw, &yq, &ya);
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_heads_to_seq(m, &ya, datty, datty_sp));
            GV_TRY(gv_backend_memset0(be, dqkv_sp, NF * (size_t)m->QKVs * e));
            GV_TRY(gv_attention_backward(be, dqkv_sp, datty_sp, ACT(m, a->qkv_sp), ACT(m, a->atty_sp),
                                         F32ACT(m, a->stash), NULL, B, m->Tf, m->Hs, m->KVHs, m->D,
                                         m->causal));
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_seq_to_heads(m, &yq, dqkv_sp, dqkv_r));
        } else {
            GV_TRY(gv_attention_backward(be, dqkv_r, datty, ACT(m, a->qkv_r), ACT(m, a->atty),
                                         F32ACT(m, a->stash), NULL, B, T, m->Hl, m->KVHl, m->D, m->causal));
        }
        if (m->spec.pos == GV_POS_ROPE) {
            GV_TRY(gv_backend_memset0(be, dqkv, (size_t)N * m->QKVl * e));
            GV_TRY(gv_rope_backward(be, dqkv, dqkv_r, B, T, m->Hl, m->KVHl, m->D, m->spec.rope_theta,
                                    m->sp_rank * T));
        }
        GV_TRY(gv_backend_memset0(be, dln, NC));
        GV_TRY(gv_tp_expand(m, gv_attn_in(m, a, res_in), ACT(m, a->ln1f)));
        GV_TRY(gv_matmul_backward(be, dln, G(m, x->qkv_w), G(m, x->qkv_b), dqkv,
                                  gv_attn_in_full(m, a, res_in), W(m, x->qkv_w), N, C, m->QKVl));
        GV_TRY(gv_tp_combine(m, dln, dln_l));
        fcb_done = 0;
        if (m->post) {
            GV_TRY(gv_accumulate(be, dres, dln_l, (size_t)m->Nl * C));
        } else {
            void *fcb = fcb_below && l > 0 ? G(m, m->li[l - 1].fcproj_b) : NULL;
            GV_TRY(gv_norm_backward_sum(m, dres, dln_l, res_in, F32ACT(m, a->ln1_mean),
                                        F32ACT(m, a->ln1_rstd), x->ln1_w, x->ln1_b, fcb));
            fcb_done = fcb != NULL;
        }
        GV_TRY(gv_unit_grad_end(m, l + 1));
        GV_TRY(gv_grad_unit_done(m, l + 1));
    }
    return GV_OK;
}

/* Embedding gradients from d(embedding output) in dres [Nl,C]. */
static gv_status gv_embed_backward(gv_model *m) {
    gv_backend *be = m->be;
    int B = m->B, T = m->T, C = m->C, pos0 = m->sp_rank * T;
    size_t e = m->esz;
    void *dres = WORK(m, m->o_dres), *dres_f = WORK(m, m->o_dres_full);
    GV_TRY(gv_unit0_grad_open(m));
    void *d = dres; /* [Nl,C] d(embedding sum) */
    if (m->arch == GV_ARCH_BERT) {
        d = WORK(m, m->o_dpost);
        GV_TRY(gv_backend_memset0(be, d, (size_t)m->Nl * C * e));
        GV_TRY(gv_norm_backward(m, d, dres, ACT(m, m->o_encoded), F32ACT(m, m->o_embln_mean),
                                F32ACT(m, m->o_embln_rstd), m->embln_w, m->embln_b));
    }
    char *df = m->msp ? dres_f : d; /* [N,C]: every position (every rank computes the full gradients) */
    GV_TRY(gv_tp_expand(m, d, df));
    if (m->arch == GV_ARCH_VIT) {
        int Pd = m->Pd, s0 = gv_patch_row0(m);
        char *pix = ACT(m, m->o_pix);
        GV_TRY(gv_embedding_backward(be, G(m, m->cls), G(m, m->wpe), df, ACT(m, m->o_tokens), B, T, C, pos0));
        for (int b = 0; b < B; b++) {
            size_t r = (size_t)b * T + s0;
            GV_TRY(gv_matmul_backward(be, NULL, G(m, m->patch_w), G(m, m->patch_b), df + r * C * e,
                                      pix + r * Pd * e, W(m, m->patch_w), T - s0, Pd, C));
        }
    } else {
        GV_TRY(gv_embedding_backward(be, G(m, m->wte), G(m, m->wpe), df, ACT(m, m->o_tokens), B, T, C, pos0));
        if (m->arch == GV_ARCH_BERT)
            GV_TRY(gv_embedding_backward(be, G(m, m->wtt), NULL, df, ACT(m, m->o_types), B, T, C, 0));
    }
    m->u0_open = 0;
    GV_TRY(gv_unit_grad_end(m, 0));
    return gv_grad_unit_done(m, 0);
}

/* d(encoder output) of this part: dch1 [Nl,C] += the cross-attentions' contributions collected in denc
 * ([N,C], partial over the tp heads: summed, reduce-scattered under Megatron-SP). */
static gv_status gv_t5_denc_total(gv_model *m) {
    void *denc = WORK(m, m->o_denc), *dsum = m->msp ? WORK(m, m->o_dln_l) : denc;
    GV_TRY(gv_tp_combine(m, denc, dsum));
    return gv_accumulate(m->be, WORK(m, m->o_dch1), dsum, (size_t)m->Nl * m->C);
}

/* T5's layers phase backward: dres [Nl,C] = d(output channel 0), dch1 [Nl,C] = d(output channel 1) in, the
 * gradients of the input channels out. The blocks in reverse: the cross-attentions add up d(enc_out) in
 * denc, the stacks' self-attentions d(bias); at the last encoder block d(enc_out) goes through the encoder's
 * final norm into the encoder stream, and the decoder stream's gradient (the decoder embedding's) moves to
 * channel 1. */
static gv_status gv_t5_layers_backward(gv_model *m) {
    gv_backend *be = m->be;
    int N = m->N, Nl = m->Nl, C = m->C, HD = m->Hl * m->D, KD = m->KVHl * m->D;
    size_t e = m->esz, NC = (size_t)N * C * e, NlC = (size_t)Nl * C,
           TTH = (size_t)m->Tf * m->Tf * gv_t5_bias_heads(m);
    void *dres = WORK(m, m->o_dres), *dres_f = WORK(m, m->o_dres_full); /* [Nl,C], [N,C] (alias w/o msp) */
    void *dln = WORK(m, m->o_dln), *dln_l = WORK(m, m->o_dln_l);        /* [N,C] partial, [Nl,C] summed */
    void *denc = WORK(m, m->o_denc), *dch1 = WORK(m, m->o_dch1);        /* [N,C] partial, [Nl,C] */
    char *dqkv = WORK(m, m->o_dqkv), *dckv = WORK(m, m->o_dckv);
    void *datty = WORK(m, m->o_datty), *dfch = WORK(m, m->o_dfch), *dfch_act = WORK(m, m->o_dfch_act);
    if (gv_t5_has_dec(m)) GV_TRY(gv_backend_memset0(be, denc, NC));
    GV_TRY(gv_backend_memset0(be, WORK(m, m->o_dbias_enc), TTH * 4));
    GV_TRY(gv_backend_memset0(be, WORK(m, m->o_dbias_dec), TTH * 4));
    m->pf_dir = -1; /* the gather of a unit prefetches the one below (ZeRO-3 with overlap) */
    for (int j = m->nl - 1; j >= 0; j--) {
        const gv_layer_idx *x = &m->li[j];
        const gv_layer_acts *a = &m->la[j];
        int l = m->l0 + j, dec = l >= m->Le;
        const void *res_in = gv_t5_res_in(m, j);
        if (m->ckpt[j])
            GV_TRY(gv_t5_layer_forward(m, j, res_in)); /* refill the shared views */
        else
            GV_TRY(gv_unit_gather(m, j + 1));
        GV_TRY(gv_unit_grad_begin(m, j + 1));
        if (l == m->Le - 1) { /* the encoder's output gradient, through its final norm */
            if (gv_t5_has_dec(m)) GV_TRY(gv_t5_denc_total(m));
            void *ddec = denc; /* free now: keeps d(decoder embedding) = dres while dres is rebuilt */
            GV_TRY(gv_copy(m, ddec, dres, NlC));
            GV_TRY(gv_backend_memset0(be, dres, NlC * e));
            GV_TRY(gv_norm_backward(m, dres, dch1, ACT(m, a->res2), NULL, F32ACT(m, m->o_encf_rstd),
                                    m->encf_w, -1));
            GV_TRY(gv_copy(m, dch1, ddec, NlC));
        }
        /* MLP: dres = d(res2) -> d(its input) */
        GV_TRY(gv_tp_expand(m, dres, dres_f));
        GV_TRY(gv_backend_memset0(be, dfch_act, (size_t)N * m->Fl * e));
        GV_TRY(gv_matmul_backward(be, dfch_act, G(m, x->fcproj_w), NULL, dres_f, ACT(m, a->fch_act),
                                  W(m, x->fcproj_w), N, m->Fl, C));
        GV_TRY(gv_backend_memset0(be, dfch, (size_t)N * m->Fl * e));
        GV_TRY(gv_relu_backward(be, dfch, dfch_act, ACT(m, a->fch), (size_t)N * m->Fl));
        GV_TRY(gv_backend_memset0(be, dln, NC));
        GV_TRY(gv_tp_expand(m, ACT(m, a->ln2), ACT(m, a->ln2f))); /* the gathered view is shared */
        GV_TRY(gv_matmul_backward(be, dln, G(m, x->fc_w), NULL, dfch, ACT(m, a->ln2f), W(m, x->fc_w), N, C,
                                  m->Fl));
        GV_TRY(gv_tp_combine(m, dln, dln_l)); /* column-parallel input gradients: partial sums over tp */
        GV_TRY(gv_norm_backward(m, dres, dln_l, ACT(m, gv_t5_mlp_res(m, j)), NULL, F32ACT(m, a->ln2_rstd),
                                x->ln2_w, -1));
        if (x->lnc_w >= 0) { /* cross-attention: d(resc) -> d(res1), and d(enc_out) */
            gv_attn_ext ca = gv_t5_attn(m, 1, 0);
            void *dcq = WORK(m, m->o_dcq), *dcatty = WORK(m, m->o_dcatty);
            char *ckv = ACT(m, a->ckv);
            GV_TRY(gv_tp_expand(m, dres, dres_f));
            GV_TRY(gv_backend_memset0(be, dcatty, (size_t)N * HD * e));
            GV_TRY(gv_matmul_backward(be, dcatty, G(m, x->co_w), NULL, dres_f, ACT(m, a->catty),
                                      W(m, x->co_w), N, HD, C));
            GV_TRY(gv_backend_memset0(be, dcq, (size_t)N * HD * e));
            GV_TRY(gv_backend_memset0(be, dckv, (size_t)N * 2 * KD * e));
            if (m->sp_size > 1) { /* Ulysses: through the full-sequence head-group buffers */
                int off[3], w[3];
                gv_sp_layout yq, ykv;
                gv_t5_sp_cross(m, off, w, &yq, &ykv);
                size_t NF = (size_t)m->B * m->Tf, sKD = (size_t)m->KVHs * m->D;
                char *kvs = ACT(m, a->ckv_sp), *dkvs = WORK(m, m->o_dckv_sp);
                void *dqs = WORK(m, m->o_dcq_sp), *dats = WORK(m, m->o_dcatty_sp);
                GV_TRY(gv_backend_sync(be));
                GV_TRY(gv_sp_heads_to_seq(m, &yq, dcatty, dats));
                GV_TRY(gv_backend_memset0(be, dqs, NF * m->Hs * m->D * e));
                GV_TRY(gv_backend_memset0(be, dkvs, NF * 2 * sKD * e));
                GV_TRY(gv_attention_ext_backward(be, &ca, dqs, dkvs, dkvs + sKD * e, NULL, dats,
                                                 ACT(m, a->cq_sp), kvs, kvs + sKD * e, F32ACT(m, a->cstash)));
                GV_TRY(gv_backend_sync(be));
                GV_TRY(gv_sp_seq_to_heads(m, &yq, dqs, dcq));
                GV_TRY(gv_sp_seq_to_heads(m, &ykv, (float *)dkvs, (float *)dckv));
            } else {
                GV_TRY(gv_attention_ext_backward(be, &ca, dcq, dckv, dckv + KD * e, NULL, dcatty,
                                                 ACT(m, a->cq), ckv, ckv + KD * e, F32ACT(m, a->cstash)));
            }
            GV_TRY(gv_backend_memset0(be, dln, NC));
            GV_TRY(gv_tp_expand(m, ACT(m, a->lnc), ACT(m, a->lncf)));
            GV_TRY(gv_matmul_backward(be, dln, G(m, x->cq_w), NULL, dcq, ACT(m, a->lncf), W(m, x->cq_w), N, C,
                                      HD));
            GV_TRY(gv_tp_combine(m, dln, dln_l));
            GV_TRY(gv_norm_backward(m, dres, dln_l, ACT(m, a->res1), NULL, F32ACT(m, a->lnc_rstd), x->lnc_w,
                                    -1));
            GV_TRY(gv_matmul_backward(be, denc, G(m, x->ckv_w), NULL, dckv, gv_t5_enc_full(m), W(m, x->ckv_w),
                                      N, C, 2 * KD));
        }
        /* self-attention: d(res1) -> d(res_in) */
        gv_attn_ext sa = gv_t5_attn(m, 0, dec);
        char *qkv = ACT(m, a->qkv);
        GV_TRY(gv_tp_expand(m, dres, dres_f));
        GV_TRY(gv_backend_memset0(be, datty, (size_t)N * HD * e));
        GV_TRY(gv_matmul_backward(be, datty, G(m, x->proj_w), NULL, dres_f, ACT(m, a->atty), W(m, x->proj_w),
                                  N, HD, C));
        GV_TRY(gv_backend_memset0(be, dqkv, (size_t)N * m->QKVl * e));
        float *dbias = WORK(m, dec ? m->o_dbias_dec : m->o_dbias_enc);
        if (m->sp_size > 1) {
            int qoff[3], qw[3], aoff[1], aw[1];
            gv_sp_layout yq, ya;
            gv_sp_layouts(m, qoff, qw, aoff, aw, &yq, &ya);
            size_t NF = (size_t)m->B * m->Tf, sHD = (size_t)m->Hs * m->D, sKD = (size_t)m->KVHs * m->D;
            char *qs = ACT(m, a->qkv_sp), *dqs = WORK(m, m->o_dqkv_sp);
            void *dats = WORK(m, m->o_datty_sp);
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_heads_to_seq(m, &ya, datty, dats));
            GV_TRY(gv_backend_memset0(be, dqs, NF * (size_t)m->QKVs * e));
            GV_TRY(gv_attention_ext_backward(be, &sa, dqs, dqs + sHD * e, dqs + (sHD + sKD) * e, dbias, dats,
                                             qs, qs + sHD * e, qs + (sHD + sKD) * e, F32ACT(m, a->stash)));
            GV_TRY(gv_backend_sync(be));
            GV_TRY(gv_sp_seq_to_heads(m, &yq, (float *)dqs, (float *)dqkv));
        } else {
            GV_TRY(gv_attention_ext_backward(be, &sa, dqkv, dqkv + HD * e, dqkv + (HD + KD) * e, dbias, datty,
                                             qkv, qkv + HD * e, qkv + (HD + KD) * e, F32ACT(m, a->stash)));
        }
        GV_TRY(gv_backend_memset0(be, dln, NC));
        GV_TRY(gv_tp_expand(m, ACT(m, a->ln1), ACT(m, a->ln1f)));
        GV_TRY(gv_matmul_backward(be, dln, G(m, x->qkv_w), NULL, dqkv, ACT(m, a->ln1f), W(m, x->qkv_w), N, C,
                                  m->QKVl));
        GV_TRY(gv_tp_combine(m, dln, dln_l));
        GV_TRY(gv_norm_backward(m, dres, dln_l, res_in, NULL, F32ACT(m, a->ln1_rstd), x->ln1_w, -1));
        if (j == 0 || l == m->Le) GV_TRY(gv_t5_bias_backward(m, dec));
        GV_TRY(gv_unit_grad_end(m, j + 1));
        GV_TRY(gv_grad_unit_done(m, j + 1));
    }
    m->pf_dir = 0;
    if (!gv_t5_has_enc_end(m) && gv_t5_has_dec(m)) GV_TRY(gv_t5_denc_total(m)); /* d(enc_out) on */
    return GV_OK;
}

/* T5's embedding backward: dres = d(encoder embedding), dch1 = d(decoder embedding), [Nl,C] each. */
static gv_status gv_t5_embed_backward(gv_model *m) {
    int B = m->B, T = m->T, C = m->C;
    GV_TRY(gv_unit0_grad_open(m));
    for (int k = 1; k >= 0; k--) {
        void *d = WORK(m, k ? m->o_dch1 : m->o_dres), *df = m->msp ? WORK(m, m->o_dres_full) : d;
        GV_TRY(gv_tp_expand(m, d, df));
        GV_TRY(gv_embedding_backward(m->be, G(m, m->wte), NULL, df, ACT(m, k ? m->o_dec_tokens : m->o_tokens),
                                     B, T, C, 0));
    }
    m->u0_open = 0;
    GV_TRY(gv_unit_grad_end(m, 0));
    return gv_grad_unit_done(m, 0);
}

gv_status gv_model_part_backward(gv_model *m, int phases, int slot, float dloss) {
    GV_TRY(gv_check_phases(m, phases, slot));
    if (!m->fwd_done[slot]) return gv_fail(GV_ERR_INVALID, "backward called without a forward");
    int t5 = m->arch == GV_ARCH_T5;
    /* ZeRO-3 with overlap: the last layer's gather runs during the head */
    if ((phases & GV_PHASE_HEAD) && (phases & GV_PHASE_LAYERS)) GV_TRY(gv_unit_prefetch(m, m->nl));
    /* the head's norm sums the top layer's MLP projection bias when the layers follow in this pass */
    int top_fcb = (phases & GV_PHASE_HEAD) && (phases & GV_PHASE_LAYERS) && !t5 && m->nl > 0 &&
                  m->arch != GV_ARCH_BERT && gv_norm_sums_bias(m, 1);
    if (phases & GV_PHASE_HEAD) {
        GV_TRY(gv_head_backward(m, dloss, top_fcb));
        if (t5) /* the head does not read channel 1 (the encoder output) */
            GV_TRY(gv_backend_memset0(m->be, WORK(m, m->o_dch1), (size_t)m->Nl * m->C * m->esz));
    }
    if (phases & GV_PHASE_LAYERS) GV_TRY(t5 ? gv_t5_layers_backward(m) : gv_layers_backward(m, top_fcb));
    if (phases & GV_PHASE_EMBED) GV_TRY(t5 ? gv_t5_embed_backward(m) : gv_embed_backward(m));
    GV_TRY(gv_unit_grad_flush(m)); /* the last reduce-scatters complete before the next pass */
    return gv_backend_sync(m->be);
}

gv_status gv_model_backward(gv_model *m, float dloss) {
    return gv_model_part_backward(m, GV_PHASE_ALL, 0, dloss);
}

gv_status gv_model_zero_grad(gv_model *m) {
    gv_overlap_drain(m); /* a step whose sums were never waited for (the profiler's memory runs) */
    return gv_backend_memset0(m->be, m->a_grads.base, m->a_grads.size);
}

gv_status gv_model_logits(gv_model *m, float *out) {
    if (!m->have_forward) return gv_fail(GV_ERR_INVALID, "logits requested before any forward");
    if (m->vp)
        return gv_fail(GV_ERR_UNSUPPORTED, "logits: each rank holds only its vocab shard (vocab parallel)");
    size_t Vp = (size_t)m->Vp, V = (size_t)m->V;
    float *row = malloc(Vp * sizeof *row);
    if (!row) return gv_fail(GV_ERR_NOMEM, "logits: out of host memory");
    gv_status st = GV_OK;
    for (int i = 0; i < m->N && st == GV_OK; i++) {
        st = gv_backend_download_f32(m->be, row, (char *)ACT(m, m->o_logits) + (size_t)i * Vp * m->esz, m->dt,
                                     Vp);
        memcpy(out + (size_t)i * V, row, V * sizeof *row);
    }
    free(row);
    return st;
}

/* ---- optimizer -------------------------------------------------------------------------------------- */

/* The ranges of the flat parameter space this rank updates: everything (no ZeRO), [s0, s0 + shard)
 * (ZeRO-1/2), or its piece of every unit (ZeRO-3). Piece k covers global [g0[k], g0[k] + n[k]) at shard
 * offset sh[k]. */
static int gv_held_pieces(const gv_model *m, size_t *g0, size_t *n, size_t *sh) {
    if (m->zero == 3) {
        for (int u = 0; u < m->nunits; u++) gv_unit_piece(m, u, &g0[u], &n[u], &sh[u]);
        return m->nunits;
    }
    g0[0] = m->s0, n[0] = m->shard, sh[0] = 0;
    return 1;
}

gv_status gv_model_grad_norm(gv_model *m, double *norm) {
    double ss = 0.0;
    if (m->tp_size == 1 && m->zero < 2 && !m->tied_copy && !m->has_copy) {
        GV_TRY(gv_sumsq(m->be, &ss, m->grads, m->param_elems));
    } else {
        /* Sharded gradients add up over the tp group, replicated ones are identical there (count once);
         * under ZeRO-2/3 each rank holds the reduced gradients of its pieces only (add up over dp). */
        size_t *g0 = malloc(3 * (size_t)m->nunits * sizeof *g0), *n = g0 + m->nunits, *sh = n + m->nunits;
        if (!g0) return gv_fail(GV_ERR_NOMEM, "grad norm: out of host memory");
        int np = 1; /* DDP and ZeRO-1 hold the whole summed gradient */
        g0[0] = 0, n[0] = m->param_elems, sh[0] = 0;
        if (m->zero >= 2) np = gv_held_pieces(m, g0, n, sh);
        gv_status st = GV_OK;
        for (int k = 0; k < np && st == GV_OK; k++)
            for (int i = 0; i < m->nparams && st == GV_OK; i++) {
                const gv_param *p = &m->params[i];
                size_t a = p->off > g0[k] ? p->off : g0[k], e = p->off + gv_param_numel(p);
                if (e > g0[k] + n[k]) e = g0[k] + n[k];
                if (a >= e || (!p->sharded && m->tp_rank != 0)) continue;
                if ((m->tied_copy && i == m->lm_head) || p->copy)
                    continue; /* counted where the original is */
                size_t at = m->zero == 3 ? sh[k] + (a - g0[k]) : a;
                double x;
                st = gv_sumsq(m->be, &x, (char *)m->grads + at * m->esz, e - a);
                ss += x;
            }
        free(g0);
        GV_TRY(st);
        if (m->tp_size > 1) GV_TRY(gv_comm_allreduce(m->tp, &ss, &ss, 1, GV_COMM_F64, GV_COMM_SUM));
        if (m->zero >= 2) GV_TRY(gv_comm_allreduce(m->dp, &ss, &ss, 1, GV_COMM_F64, GV_COMM_SUM));
    }
    *norm = sqrt(ss);
    return GV_OK;
}

gv_status gv_model_adamw_step(gv_model *m, const gv_adamw_cfg *cfg, float lr, float grad_scale, int t) {
    /* Each rank updates the pieces it holds. Moments are indexed in the shard space; weights and gradients
     * too under ZeRO-3, else in the flat space. A separate fp32 master (bf16 backends) is indexed like the
     * moments; on F32 the master is the weights. */
    size_t *g0 = malloc(3 * (size_t)m->nunits * sizeof *g0), *n = g0 + m->nunits, *sh = n + m->nunits;
    if (!g0) return gv_fail(GV_ERR_NOMEM, "adamw: out of host memory");
    int np = gv_held_pieces(m, g0, n, sh);
    /* one segment per (piece, parameter), all updated by one multi-tensor call */
    gv_adamw_seg *seg = malloc((size_t)np * (size_t)m->nparams * sizeof *seg);
    if (!seg) {
        free(g0);
        return gv_fail(GV_ERR_NOMEM, "adamw: out of host memory");
    }
    int ns = 0;
    for (int k = 0; k < np; k++)
        for (int i = 0; i < m->nparams; i++) {
            const gv_param *p = &m->params[i];
            size_t a = p->off > g0[k] ? p->off : g0[k], e = p->off + gv_param_numel(p);
            if (e > g0[k] + n[k]) e = g0[k] + n[k];
            if (a >= e) continue;
            size_t si = sh[k] + (a - g0[k]), at = m->zero == 3 ? si : a;
            seg[ns++] = (gv_adamw_seg){at, gv_master_at(m, a, si), si, e - a, p->decay};
        }
    free(g0);
    void *wcopy = (void *)m->master == m->weights ? NULL : m->weights;
    gv_status st = gv_adamw_update_multi(m->be, m->master, wcopy, m->grads, m->adam_m, m->adam_v, seg, ns, lr,
                                         cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, grad_scale, t);
    free(seg);
    GV_TRY(st);
    if (m->zero != 1 && m->zero != 2) return GV_OK; /* ZeRO-3 keeps its pieces; no ZeRO updated everything */
    GV_TRY(gv_backend_sync(m->be));
    return gv_comm_allgather(m->dp, (char *)m->weights + m->s0 * m->esz, m->weights, m->shard * m->esz,
                             GV_COMM_U8);
}

/* ---- data-parallel gradient sums ----------------------------------------------------------------------- */

#define GV_BUCKET_ELEMS ((size_t)1 << 22) /* a bucket closes at the first unit boundary past this many */

/* Buckets of consecutive units over the flat gradient space (DDP, ZeRO-1/2 with dp > 1), from the head
 * down: units are created in order, so unit u is the flat range from its first parameter to the next
 * unit's. The same buckets serve both modes (overlap only moves their start). */
static gv_status gv_grad_buckets(gv_model *m) {
    if (m->zero == 3 || m->dp_size == 1 || m->meta_only) return GV_OK;
    size_t cap = GV_BUCKET_ELEMS;
    const char *env = getenv("GV_GRAD_BUCKET_ELEMS"); /* smaller buckets for tests of tiny models */
    if (env && atol(env) > 0) cap = (size_t)atol(env);
    int U = m->nunits;
    size_t *ulo = calloc((size_t)U + 1, sizeof *ulo);
    m->bk_lo = calloc(2 * (size_t)U, sizeof *m->bk_lo);
    m->bk_late = calloc(3 * (size_t)U, sizeof *m->bk_late);
    m->unit_done = calloc((size_t)U, sizeof *m->unit_done);
    if (!ulo || !m->bk_lo || !m->bk_late || !m->unit_done) {
        free(ulo);
        return gv_fail(GV_ERR_NOMEM, "model: out of host memory for the gradient buckets");
    }
    m->bk_hi = m->bk_lo + U;
    m->bk_unit0 = m->bk_late + U;
    m->bk_started = m->bk_unit0 + U;
    int *late = calloc((size_t)U, sizeof *late), *has = calloc((size_t)U, sizeof *has);
    if (!late || !has) {
        free(ulo), free(late), free(has);
        return gv_fail(GV_ERR_NOMEM, "model: out of host memory for the gradient buckets");
    }
    for (int i = m->nparams - 1; i >= 0; i--) { /* ulo[u] = the first parameter's offset */
        int u = m->p_unit[i];
        assert(i == 0 || m->p_unit[i - 1] <= u); /* units in creation order */
        ulo[u] = m->params[i].off, has[u] = 1;
        /* gradients the hybrid adds to before the sums: the embedding (tied across stages), a tied head
         * copy, T5's bias tables and their copies */
        if (u == 0 || m->params[i].copy || i == m->rel_enc || i == m->rel_dec ||
            (m->tied_copy && i == m->lm_head))
            late[u] = 1;
    }
    size_t hi = m->param_elems;
    int n = 0;
    for (int u = U - 1; u >= 0; u--) {
        if (!has[u]) continue;
        if (n == 0 || m->bk_hi[n - 1] - m->bk_lo[n - 1] >= cap) { /* a new bucket */
            m->bk_hi[n] = hi;
            m->bk_lo[n] = hi;
            m->bk_late[n] = 0;
            n++;
        }
        m->bk_lo[n - 1] = ulo[u];
        m->bk_unit0[n - 1] = u;
        m->bk_late[n - 1] |= late[u];
        hi = ulo[u];
    }
    if (n) m->bk_lo[n - 1] = 0; /* alignment padding before the first parameter, if any */
    m->nbk = n;
    free(ulo), free(late), free(has);
    return GV_OK;
}

static gv_status gv_req_push(gv_model *m, gv_comm_req *r) {
    if (m->nreqs == m->capreqs) {
        int cap = m->capreqs ? 2 * m->capreqs : 16;
        gv_comm_req **q = realloc(m->reqs, (size_t)cap * sizeof *q);
        if (!q) {
            gv_comm_req_wait(r, NULL);
            return gv_fail(GV_ERR_NOMEM, "model: out of host memory for the gradient requests");
        }
        m->reqs = q, m->capreqs = cap;
    }
    m->reqs[m->nreqs++] = r;
    return GV_OK;
}

/* Starts bucket k's sum: Megatron-SP's partial norm gradients of its units over tp first (as before the
 * sums), then over dp an all-reduce (DDP, ZeRO-1), or under ZeRO-2 a reduce of each shard's piece of the
 * bucket to the rank holding that shard (a reduce-scatter needs a rank's block in every bucket; the shards
 * are contiguous runs of the flat space). */
static gv_status gv_bucket_start(gv_model *m, int k) {
    for (int u = m->bk_unit0[k]; u < m->nunits && (k == 0 || u < m->bk_unit0[k - 1]); u++)
        GV_TRY(gv_msp_norm_grads(m, u));
    void *ev;
    GV_TRY(gv_backend_event_record(m->be, &ev));
    size_t lo = m->bk_lo[k], hi = m->bk_hi[k];
    gv_comm_req *r;
    if (m->zero < 2) {
        char *g = (char *)m->grads + lo * m->esz;
        GV_TRY(gv_comm_iallreduce(m->dp, g, g, hi - lo, gv_comm_dt(m), GV_COMM_SUM, ev, &r));
        return gv_req_push(m, r);
    }
    for (size_t a = lo; a < hi;) {
        int owner = (int)(a / m->shard);
        size_t b = (size_t)(owner + 1) * m->shard < hi ? (size_t)(owner + 1) * m->shard : hi;
        char *g = (char *)m->grads + a * m->esz;
        GV_TRY(gv_comm_ireduce(m->dp, g, g, b - a, gv_comm_dt(m), GV_COMM_SUM, owner, ev, &r));
        GV_TRY(gv_req_push(m, r));
        a = b;
    }
    return GV_OK;
}

/* Buckets start in index order, a late one skipped: every rank of the dp group skips the same ones. */
static gv_status gv_grad_unit_done(gv_model *m, int u) {
    if (!m->last_bwd || !m->overlap || !m->nbk) return GV_OK;
    m->unit_done[u] = 1;
    for (int k = 0; k < m->nbk; k++) {
        if (m->bk_started[k] || m->bk_late[k]) continue;
        if (!m->unit_done[m->bk_unit0[k]]) break; /* backward finishes them in index order */
        m->bk_started[k] = 1;
        GV_TRY(gv_bucket_start(m, k));
        m->n_early++;
    }
    return GV_OK;
}

static void gv_buckets_reset(gv_model *m) {
    if (!m->nbk) return;
    memset(m->unit_done, 0, (size_t)m->nunits * sizeof *m->unit_done);
    memset(m->bk_started, 0, (size_t)m->nbk * sizeof *m->bk_started);
}

void gv_model_set_last_backward(gv_model *m, int last) {
    if (!m->last_bwd && last) gv_buckets_reset(m);
    m->last_bwd = last != 0;
}

int gv_model_overlap(const gv_model *m) {
    return m->overlap;
}

void gv_model_overlap_counts(const gv_model *m, int *buckets, long *early, long *prefetched) {
    *buckets = m->nbk;
    *early = m->n_early;
    *prefetched = m->n_prefetched;
}

/* Waits for everything in flight (results dropped unless reduce_grads follows: zero_grad, free). */
static void gv_overlap_drain(gv_model *m) {
    for (int i = 0; i < m->nreqs; i++) gv_comm_req_wait(m->reqs[i], NULL);
    m->nreqs = 0;
    for (int k = 0; k < 4; k++) {
        if (m->pf_req[k]) gv_comm_req_wait(m->pf_req[k], NULL);
        if (m->rs_req[k]) gv_comm_req_wait(m->rs_req[k], NULL);
        m->pf_req[k] = m->rs_req[k] = NULL;
    }
    m->last_bwd = 0;
    gv_buckets_reset(m);
}

gv_status gv_model_reduce_grads(gv_model *m) {
    if (m->zero == 3) return GV_OK; /* reduced unit by unit during backward */
    if (m->dp_size == 1) {
        /* Megatron-SP: each rank normalised only its positions, so the norms' gradients are partial sums. */
        return gv_msp_norm_grads(m, -1);
    }
    /* ZeRO-2: each rank needs only its shard of the summed gradients. Gradients accumulate unsharded over
     * the micro-batches and are reduced once per step (Galvatron's async_grad_reduce); the full buffer is
     * therefore still counted under "gradients". Buckets the last backward did not start start now. */
    if (!m->last_bwd) gv_buckets_reset(m);
    gv_status st = GV_OK;
    for (int k = 0; k < m->nbk && st == GV_OK; k++)
        if (!m->bk_started[k]) st = gv_bucket_start(m, k);
    for (int i = 0; i < m->nreqs; i++) {
        gv_status s2 = gv_req_finish(m, &m->reqs[i]);
        if (st == GV_OK) st = s2;
    }
    m->nreqs = 0;
    m->last_bwd = 0;
    gv_buckets_reset(m);
    return st;
}

int gv_model_is_writer(const gv_model *m) {
    return m->dp_rank == 0 && m->tp_rank == 0;
}

void gv_model_set_train_dloss(gv_model *m, float dloss) {
    m->train_dloss = dloss > 0 ? dloss : 0;
}
