/* Attention through cuDNN's fused flash-attention engines (cuDNN 9 backend API, plain C calls): the same op
 * as cuda-attention.cu (packed qkv[B, T, (H + 2*KVH)*D], out[B, T, H*D], lse[B, H, T] F32 stash, scale
 * 1/sqrt(D), causal or bidirectional, GQA), chosen by GV_CUDA_ATTN=cudnn (see cuda-attention.cu).
 *
 * The forward and backward are operation graphs of matmuls, pointwise ops and reductions that cuDNN's
 * runtime fusion recognises as scaled dot-product attention and runs as one flash-attention kernel:
 *   forward:  S = Q K^T * scale; causal: S = (row >= col) ? S : -inf (two generated indices and a compare);
 *             m = rowmax S; e = exp(S - m); z = rowsum e; stats = m + log z; P = e / z (bf16); O = P V.
 *   backward: Dsum = rowsum(dO * O); P = exp(mask(Q K^T * scale - stats)); dV = P^T dO;
 *             dS = P * (dO V^T - Dsum) * scale; dK = dS^T Q; dQ = dS K (through an F32 accumulator).
 *             With GQA (KVH < H) dK and dV are computed per query head and summed over each group.
 * The stats are the natural-log log-sum-exp of the scaled scores, the same stash the own kernels keep, so
 * forward and backward may come from different implementations.
 *
 * Q, K, V, O and the gradients are strided views into the packed buffers (no copies): Q [B, H, T, D] with
 * strides [T*S, D, S, 1] (S = (H + 2*KVH)*D), K^T [B, KVH, D, T] with strides [T*S, D, 1, S], etc.
 * A built execution plan is cached per (direction, B, T, H, KVH, D, causal); a shape cuDNN refuses
 * (no engine, plan finalize fails) is cached as refused, logged once, and the caller runs the own kernel.
 * Each call makes a variant pack (the buffer pointers of this call) and runs cudnnBackendExecute on the
 * compute stream; the workspace and the backward's F32 scratch come from the backend's stream-ordered
 * pool (gv_cuda_tmp_alloc). */
#include "cuda-common.cuh"

#include <stdio.h>
#include <string.h>

extern "C" {
#include "gv/log.h"
}

#ifdef GV_HAVE_CUDNN
#include <cudnn.h>
#endif

#if defined(GV_HAVE_CUDNN) && CUDNN_MAJOR >= 9

#define DNN_MAX_PLANS 64
#define DNN_MAX_DESC 160
#define DNN_MAX_ALT 7 /* engine configurations kept beside the first for timing at first use */

/* Deprecated in late cuDNN 9 releases but required by the earlier ones (the handle of the graph / plan). */
static const cudnnBackendAttributeName_t DNN_ATTR_OPGRAPH_HANDLE = (cudnnBackendAttributeName_t)800;
static const cudnnBackendAttributeName_t DNN_ATTR_PLAN_HANDLE = (cudnnBackendAttributeName_t)400;

/* Variant-pack ids of the graphs' non-virtual tensors. */
enum {
    U_Q = 1,
    U_KT,
    U_V, /* V (forward) or V^T (backward) */
    U_O,
    U_STATS,
    U_SCALE,
    U_NEGINF,
    U_DO,
    U_DQ,
    U_DK,
    U_DV,
    U_DSUM,
    U_DQACC,
    U_ONE,
    U_FIRST_VIRTUAL = 100
};

struct dnn_plan {
    int bwd, B, T, H, KVH, D, causal;
    cudnnBackendDescriptor_t plan;             /* NULL: cuDNN refused this shape */
    int64_t ws;                                /* workspace bytes of the plan (of every alt until timed) */
    int64_t ws0;                               /* the first plan's, while alternatives are kept */
    cudnnBackendDescriptor_t alt[DNN_MAX_ALT]; /* other finalized plans, timed at the first execution */
    int64_t alt_ws[DNN_MAX_ALT];
    int nalt;
    cudnnBackendDescriptor_t desc[DNN_MAX_DESC]; /* everything the plan was built from, freed with it */
    int ndesc;
};

struct gv_cudnn {
    cudnnHandle_t h;
    struct dnn_plan plans[DNN_MAX_PLANS];
    int nplans;
    long runs[2]; /* executions: forward, backward */
};

/* Graph builder: the first failing call is remembered and later calls do nothing. */
struct dnn_build {
    struct dnn_plan *p;
    cudnnBackendDescriptor_t ops[40];
    int nops;
    int64_t next_uid;
    cudnnStatus_t err;
    const char *what;
};

static cudnnBackendDescriptor_t bd_new(struct dnn_build *g, cudnnBackendDescriptorType_t t,
                                       const char *what) {
    if (g->err != CUDNN_STATUS_SUCCESS) return NULL;
    if (g->p->ndesc >= DNN_MAX_DESC) {
        g->err = CUDNN_STATUS_BAD_PARAM;
        g->what = "too many descriptors";
        return NULL;
    }
    cudnnBackendDescriptor_t d = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(t, &d);
    if (s != CUDNN_STATUS_SUCCESS) {
        g->err = s;
        g->what = what;
        return NULL;
    }
    g->p->desc[g->p->ndesc++] = d;
    return d;
}
static void bd_set(struct dnn_build *g, cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t a,
                   cudnnBackendAttributeType_t t, int64_t n, const void *v, const char *what) {
    if (g->err != CUDNN_STATUS_SUCCESS) return;
    cudnnStatus_t s = cudnnBackendSetAttribute(d, a, t, n, v);
    if (s != CUDNN_STATUS_SUCCESS) g->err = s, g->what = what;
}
static void bd_fin(struct dnn_build *g, cudnnBackendDescriptor_t d, const char *what) {
    if (g->err != CUDNN_STATUS_SUCCESS) return;
    cudnnStatus_t s = cudnnBackendFinalize(d);
    if (s != CUDNN_STATUS_SUCCESS) g->err = s, g->what = what;
}

/* A 4-D tensor; uid < 0 takes the next virtual id. */
static cudnnBackendDescriptor_t tensor(struct dnn_build *g, int64_t uid, cudnnDataType_t dt,
                                       const int64_t dim[4], const int64_t str[4], bool virt, bool byval) {
    cudnnBackendDescriptor_t t = bd_new(g, CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
    if (uid < 0) uid = g->next_uid++;
    const int64_t align = 16;
    bd_set(g, t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type");
    bd_set(g, t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dims");
    bd_set(g, t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, "tensor strides");
    bd_set(g, t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor id");
    bd_set(g, t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
    if (virt) bd_set(g, t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &virt, "tensor virtual");
    if (byval) bd_set(g, t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &byval, "tensor by value");
    bd_fin(g, t, "tensor");
    return t;
}
static cudnnBackendDescriptor_t vt(struct dnn_build *g, cudnnDataType_t dt, const int64_t dim[4],
                                   const int64_t str[4]) {
    return tensor(g, -1, dt, dim, str, true, false);
}
/* A host scalar passed by value at execution (F32 [1, 1, 1, 1]). */
static cudnnBackendDescriptor_t scalar(struct dnn_build *g, int64_t uid) {
    const int64_t one[4] = {1, 1, 1, 1};
    return tensor(g, uid, CUDNN_DATA_FLOAT, one, one, false, true);
}

static void add_op(struct dnn_build *g, cudnnBackendDescriptor_t op) {
    if (g->err != CUDNN_STATUS_SUCCESS) return;
    if (g->nops >= (int)(sizeof g->ops / sizeof g->ops[0])) {
        g->err = CUDNN_STATUS_BAD_PARAM;
        g->what = "too many operations";
        return;
    }
    g->ops[g->nops++] = op;
}

/* y = mode(x[, b[, t]]) with math precision prec; axis >= 0 for GEN_INDEX. */
static void pw(struct dnn_build *g, cudnnPointwiseMode_t mode, cudnnDataType_t prec,
               cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
               cudnnBackendDescriptor_t y, int64_t axis = -1) {
    cudnnBackendDescriptor_t d = bd_new(g, CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
    bd_set(g, d, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
    bd_set(g, d, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise precision");
    if (axis >= 0) bd_set(g, d, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
    bd_fin(g, d, "pointwise");
    cudnnBackendDescriptor_t op = bd_new(g, CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
    bd_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d,
           "pointwise op desc");
    bd_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pointwise x");
    if (b)
        bd_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b,
               "pointwise b");
    if (t)
        bd_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t,
               "pointwise t");
    bd_set(g, op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pointwise y");
    bd_fin(g, op, "pointwise op");
    add_op(g, op);
}

static void reduce(struct dnn_build *g, cudnnReduceTensorOp_t rop, cudnnBackendDescriptor_t x,
                   cudnnBackendDescriptor_t y) {
    const cudnnDataType_t f = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t d = bd_new(g, CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
    bd_set(g, d, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &rop,
           "reduction operator");
    bd_set(g, d, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f, "reduction precision");
    bd_fin(g, d, "reduction");
    cudnnBackendDescriptor_t op = bd_new(g, CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
    bd_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d,
           "reduction op desc");
    bd_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reduction x");
    bd_set(g, op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reduction y");
    bd_fin(g, op, "reduction op");
    add_op(g, op);
}

/* c = a @ b (batched over the first two dims; b's head dim may divide a's: GQA). */
static void matmul(struct dnn_build *g, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                   cudnnBackendDescriptor_t c) {
    const cudnnDataType_t f = CUDNN_DATA_FLOAT;
    cudnnBackendDescriptor_t d = bd_new(g, CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
    bd_set(g, d, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &f, "matmul precision");
    bd_fin(g, d, "matmul");
    cudnnBackendDescriptor_t op = bd_new(g, CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
    bd_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &d, "matmul op desc");
    bd_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "matmul a");
    bd_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "matmul b");
    bd_set(g, op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "matmul c");
    bd_fin(g, op, "matmul op");
    add_op(g, op);
}

/* y = x viewed with y's dims and strides (a transpose of a virtual tensor). */
static void reshape(struct dnn_build *g, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    cudnnBackendDescriptor_t op = bd_new(g, CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape op");
    bd_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape x");
    bd_set(g, op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape y");
    bd_fin(g, op, "reshape op");
    add_op(g, op);
}

/* s (scores [B, H, T, T] F32) -> (row >= col) ? s : -inf */
static cudnnBackendDescriptor_t causal_mask(struct dnn_build *g, cudnnBackendDescriptor_t s,
                                            cudnnBackendDescriptor_t neginf, const int64_t dim[4],
                                            const int64_t str[4]) {
    cudnnBackendDescriptor_t row = vt(g, CUDNN_DATA_INT32, dim, str), col = vt(g, CUDNN_DATA_INT32, dim, str);
    pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, row, 2);
    pw(g, CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, NULL, NULL, col, 3);
    cudnnBackendDescriptor_t keep = vt(g, CUDNN_DATA_BOOLEAN, dim, str);
    pw(g, CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, NULL, keep);
    cudnnBackendDescriptor_t y = vt(g, CUDNN_DATA_FLOAT, dim, str);
    pw(g, CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, neginf, keep, y);
    return y;
}

/* Shapes of one (B, T, H, KVH, D): the packed row stride S = (H + 2*KVH)*D. */
struct dnn_shapes {
    int64_t q[4], qs[4];     /* Q, dQ: [B, H, T, D] in qkv */
    int64_t kt[4], kts[4];   /* K^T, V^T: [B, KVH, D, T] in qkv */
    int64_t kv[4], kvs[4];   /* K, V, dK, dV: [B, KVH, T, D] in qkv */
    int64_t o[4], os[4];     /* O, dO: [B, H, T, D] in out */
    int64_t st[4], sts[4];   /* stats, Dsum: [B, H, T, 1] */
    int64_t sc[4], scs[4];   /* scores: [B, H, T, T] */
    int64_t sct[4], scts[4]; /* scores transposed: [B, H, T(kv), T(q)] */
    int64_t hd[4], hds[4];   /* dense [B, H, T, D] (dQ accumulator, per-head dK / dV) */
};
static void dnn_shapes_init(struct dnn_shapes *s, int64_t B, int64_t T, int64_t H, int64_t KVH, int64_t D) {
    const int64_t S = (H + 2 * KVH) * D, HD = H * D;
    const int64_t q[4] = {B, H, T, D}, qs[4] = {T * S, D, S, 1};
    const int64_t kt[4] = {B, KVH, D, T}, kts[4] = {T * S, D, 1, S};
    const int64_t kv[4] = {B, KVH, T, D}, kvs[4] = {T * S, D, S, 1};
    const int64_t o[4] = {B, H, T, D}, os[4] = {T * HD, D, HD, 1};
    const int64_t st[4] = {B, H, T, 1}, sts[4] = {H * T, T, 1, 1};
    const int64_t sc[4] = {B, H, T, T}, scs[4] = {H * T * T, T * T, T, 1};
    const int64_t scts[4] = {H * T * T, T * T, 1, T};
    const int64_t hds[4] = {H * T * D, T * D, D, 1};
    memcpy(s->q, q, sizeof q), memcpy(s->qs, qs, sizeof qs);
    memcpy(s->kt, kt, sizeof kt), memcpy(s->kts, kts, sizeof kts);
    memcpy(s->kv, kv, sizeof kv), memcpy(s->kvs, kvs, sizeof kvs);
    memcpy(s->o, o, sizeof o), memcpy(s->os, os, sizeof os);
    memcpy(s->st, st, sizeof st), memcpy(s->sts, sts, sizeof sts);
    memcpy(s->sc, sc, sizeof sc), memcpy(s->scs, scs, sizeof scs);
    memcpy(s->sct, sc, sizeof sc), memcpy(s->scts, scts, sizeof scts);
    memcpy(s->hd, q, sizeof q), memcpy(s->hds, hds, sizeof hds);
}

static void build_forward(struct dnn_build *g, const struct dnn_shapes *s, int causal) {
    const cudnnDataType_t F = CUDNN_DATA_FLOAT, BF = CUDNN_DATA_BFLOAT16;
    cudnnBackendDescriptor_t Q = tensor(g, U_Q, BF, s->q, s->qs, false, false);
    cudnnBackendDescriptor_t KT = tensor(g, U_KT, BF, s->kt, s->kts, false, false);
    cudnnBackendDescriptor_t V = tensor(g, U_V, BF, s->kv, s->kvs, false, false);
    cudnnBackendDescriptor_t O = tensor(g, U_O, BF, s->o, s->os, false, false);
    cudnnBackendDescriptor_t stats = tensor(g, U_STATS, F, s->st, s->sts, false, false);
    cudnnBackendDescriptor_t scale = scalar(g, U_SCALE);
    cudnnBackendDescriptor_t x = vt(g, F, s->sc, s->scs);
    matmul(g, Q, KT, x);
    cudnnBackendDescriptor_t y = vt(g, F, s->sc, s->scs);
    pw(g, CUDNN_POINTWISE_MUL, F, x, scale, NULL, y);
    if (causal) y = causal_mask(g, y, scalar(g, U_NEGINF), s->sc, s->scs);
    cudnnBackendDescriptor_t m = vt(g, F, s->st, s->sts), z = vt(g, F, s->st, s->sts),
                             lz = vt(g, F, s->st, s->sts);
    reduce(g, CUDNN_REDUCE_TENSOR_MAX, y, m);
    cudnnBackendDescriptor_t ym = vt(g, F, s->sc, s->scs), e = vt(g, F, s->sc, s->scs);
    pw(g, CUDNN_POINTWISE_SUB, F, y, m, NULL, ym);
    pw(g, CUDNN_POINTWISE_EXP, F, ym, NULL, NULL, e);
    reduce(g, CUDNN_REDUCE_TENSOR_ADD, e, z);
    pw(g, CUDNN_POINTWISE_LOG, F, z, NULL, NULL, lz);
    pw(g, CUDNN_POINTWISE_ADD, F, m, lz, NULL, stats);
    cudnnBackendDescriptor_t p = vt(g, BF, s->sc, s->scs); /* P in the input type for the second matmul */
    pw(g, CUDNN_POINTWISE_DIV, F, e, z, NULL, p);
    matmul(g, p, V, O);
}

static void build_backward(struct dnn_build *g, const struct dnn_shapes *s, int causal, int gqa) {
    const cudnnDataType_t F = CUDNN_DATA_FLOAT, BF = CUDNN_DATA_BFLOAT16;
    cudnnBackendDescriptor_t Q = tensor(g, U_Q, BF, s->q, s->qs, false, false);
    cudnnBackendDescriptor_t KT = tensor(g, U_KT, BF, s->kt, s->kts, false, false);
    cudnnBackendDescriptor_t VT = tensor(g, U_V, BF, s->kt, s->kts, false, false);
    cudnnBackendDescriptor_t O = tensor(g, U_O, BF, s->o, s->os, false, false);
    cudnnBackendDescriptor_t dO = tensor(g, U_DO, BF, s->o, s->os, false, false);
    cudnnBackendDescriptor_t stats = tensor(g, U_STATS, F, s->st, s->sts, false, false);
    cudnnBackendDescriptor_t dQ = tensor(g, U_DQ, BF, s->q, s->qs, false, false);
    cudnnBackendDescriptor_t dK = tensor(g, U_DK, BF, s->kv, s->kvs, false, false);
    cudnnBackendDescriptor_t dV = tensor(g, U_DV, BF, s->kv, s->kvs, false, false);
    cudnnBackendDescriptor_t dsum = tensor(g, U_DSUM, F, s->st, s->sts, false, false);
    cudnnBackendDescriptor_t dqacc = tensor(g, U_DQACC, F, s->hd, s->hds, false, false);
    cudnnBackendDescriptor_t scale = scalar(g, U_SCALE), one = scalar(g, U_ONE);

    /* Dsum = rowsum(dO * O) */
    cudnnBackendDescriptor_t od = vt(g, F, s->o, s->os), r = vt(g, F, s->st, s->sts);
    pw(g, CUDNN_POINTWISE_MUL, F, dO, O, NULL, od);
    reduce(g, CUDNN_REDUCE_TENSOR_ADD, od, r);
    pw(g, CUDNN_POINTWISE_MUL, F, r, one, NULL, dsum);
    /* P = exp(mask(Q K^T * scale - stats)) */
    cudnnBackendDescriptor_t x = vt(g, F, s->sc, s->scs), y = vt(g, F, s->sc, s->scs),
                             ys = vt(g, F, s->sc, s->scs);
    matmul(g, Q, KT, x);
    pw(g, CUDNN_POINTWISE_MUL, F, x, scale, NULL, y);
    pw(g, CUDNN_POINTWISE_SUB, F, y, stats, NULL, ys);
    if (causal) ys = causal_mask(g, ys, scalar(g, U_NEGINF), s->sc, s->scs);
    cudnnBackendDescriptor_t p = vt(g, F, s->sc, s->scs);
    pw(g, CUDNN_POINTWISE_EXP, F, ys, NULL, NULL, p);
    /* dV = P^T dO (per query head, summed over the group under GQA) */
    cudnnBackendDescriptor_t pt = vt(g, BF, s->sct, s->scts);
    reshape(g, p, pt);
    if (!gqa) {
        matmul(g, pt, dO, dV);
    } else {
        cudnnBackendDescriptor_t dvh = vt(g, BF, s->hd, s->hds);
        matmul(g, pt, dO, dvh);
        reduce(g, CUDNN_REDUCE_TENSOR_ADD, dvh, dV);
    }
    /* dS = P * (dO V^T - Dsum) * scale */
    cudnnBackendDescriptor_t dp = vt(g, F, s->sc, s->scs), d1 = vt(g, F, s->sc, s->scs),
                             d2 = vt(g, F, s->sc, s->scs), ds = vt(g, F, s->sc, s->scs);
    matmul(g, dO, VT, dp);
    pw(g, CUDNN_POINTWISE_SUB, F, dp, dsum, NULL, d1);
    pw(g, CUDNN_POINTWISE_MUL, F, d1, p, NULL, d2);
    pw(g, CUDNN_POINTWISE_MUL, F, d2, scale, NULL, ds);
    /* dK = dS^T Q */
    cudnnBackendDescriptor_t dst = vt(g, BF, s->sct, s->scts);
    reshape(g, ds, dst);
    if (!gqa) {
        matmul(g, dst, Q, dK);
    } else {
        cudnnBackendDescriptor_t dkh = vt(g, BF, s->hd, s->hds);
        matmul(g, dst, Q, dkh);
        reduce(g, CUDNN_REDUCE_TENSOR_ADD, dkh, dK);
    }
    /* dQ = dS K through the F32 accumulator */
    cudnnBackendDescriptor_t K = vt(g, BF, s->kv, s->kvs);
    reshape(g, KT, K);
    matmul(g, ds, K, dqacc);
    pw(g, CUDNN_POINTWISE_IDENTITY, F, dqacc, NULL, NULL, dQ);
}

/* GV_CUDA_DNN_TUNE=0: the heuristics' first plan that finalizes, untimed. */
static int dnn_tune_on(void) {
    static int on = -1;
    return gv_cuda_env_switch(&on, "GV_CUDA_DNN_TUNE", 1);
}

/* Operation graph -> heuristics (modes A and B) -> every engine configuration whose plan finalizes: the
 * first is the plan, up to DNN_MAX_ALT more are kept for dnn_tune to time on the real buffers. */
static void build_plan(struct dnn_build *g, cudnnHandle_t h) {
    struct dnn_plan *p = g->p;
    cudnnBackendDescriptor_t graph = bd_new(g, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    bd_set(g, graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, g->nops, g->ops,
           "graph ops");
    bd_set(g, graph, DNN_ATTR_OPGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &h, "graph handle");
    bd_fin(g, graph, "operation graph");
    const cudnnBackendHeurMode_t modes[2] = {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_B};
    /* before 9.6 the backward adds into the dQ accumulator, zeroed once per call: no repeated runs */
    const int tune = dnn_tune_on() && !(p->bwd && cudnnGetVersion() < 90600);
    const int nmodes = tune ? 2 : 1;
    cudnnStatus_t first_err = CUDNN_STATUS_SUCCESS;
    for (int mi = 0; mi < nmodes && g->err == CUDNN_STATUS_SUCCESS; mi++) {
        cudnnBackendDescriptor_t heur = bd_new(g, CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
        bd_set(g, heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph,
               "heur graph");
        bd_set(g, heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &modes[mi], "heur mode");
        bd_fin(g, heur, "heuristics");
        if (g->err != CUDNN_STATUS_SUCCESS) {
            if (mi == 0) return;
            g->err = CUDNN_STATUS_SUCCESS; /* mode B is optional */
            break;
        }
        int64_t n = 0;
        cudnnStatus_t s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &n, NULL);
        if (s != CUDNN_STATUS_SUCCESS || n <= 0) {
            if (first_err == CUDNN_STATUS_SUCCESS)
                first_err = s != CUDNN_STATUS_SUCCESS ? s : CUDNN_STATUS_NOT_SUPPORTED;
            continue;
        }
        if (n > 8) n = 8;
        cudnnBackendDescriptor_t cfg[8];
        for (int64_t i = 0; i < n; i++)
            cfg[i] = bd_new(g, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
        if (g->err != CUDNN_STATUS_SUCCESS) return;
        int64_t got = 0;
        s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, n,
                                     &got, cfg);
        if (s != CUDNN_STATUS_SUCCESS || got <= 0) {
            if (first_err == CUDNN_STATUS_SUCCESS)
                first_err = s != CUDNN_STATUS_SUCCESS ? s : CUDNN_STATUS_NOT_SUPPORTED;
            continue;
        }
        for (int64_t i = 0; i < got; i++) {
            if (p->plan && (!tune || p->nalt == DNN_MAX_ALT)) return;
            cudnnBackendDescriptor_t plan = NULL;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) !=
                CUDNN_STATUS_SUCCESS)
                continue;
            int64_t ws = 0, cnt = 0;
            if (cudnnBackendSetAttribute(plan, DNN_ATTR_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &h) ==
                    CUDNN_STATUS_SUCCESS &&
                cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                         CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfg[i]) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1,
                                         &cnt, &ws) == CUDNN_STATUS_SUCCESS) {
                if (!p->plan) {
                    p->plan = plan;
                    p->ws = p->ws0 = ws;
                } else {
                    p->alt[p->nalt] = plan;
                    p->alt_ws[p->nalt++] = ws;
                    if (ws > p->ws) p->ws = ws; /* the first execution may run any of them */
                }
                continue;
            }
            cudnnBackendDestroyDescriptor(plan);
        }
    }
    if (p->plan) return;
    g->err = first_err != CUDNN_STATUS_SUCCESS ? first_err : CUDNN_STATUS_NOT_SUPPORTED;
    g->what = first_err != CUDNN_STATUS_SUCCESS ? "no engine configuration"
                                                : "execution plan finalize (every engine configuration)";
}

/* Keeps the first plan only (its workspace): when the alternatives' largest workspace cannot be had. */
static void dnn_drop_alts(struct dnn_plan *p) {
    for (int i = 0; i < p->nalt; i++) cudnnBackendDestroyDescriptor(p->alt[i]);
    p->nalt = 0;
    p->ws = p->ws0;
}

/* A call's scratch: the workspace (p->ws rounded up to 256 bytes: *ws_b) and extra bytes after it; when the
 * alternatives' largest workspace cannot be had, they are dropped and the first plan's is tried. */
static gv_status dnn_ws_alloc(gv_cuda_ctx *c, struct dnn_plan *p, void **out, size_t extra, size_t *ws_b) {
    *ws_b = ((size_t)p->ws + 255) / 256 * 256;
    gv_status st = gv_cuda_tmp_alloc(c, out, *ws_b + extra);
    if (st == GV_OK || p->nalt == 0) return st;
    cudaGetLastError(); /* the failed allocation's error is handled here */
    gv_warn("cuda: cuDNN attention: no %lld bytes of workspace to time %d plans; the first runs",
            (long long)p->ws, p->nalt + 1);
    dnn_drop_alts(p);
    *ws_b = ((size_t)p->ws + 255) / 256 * 256;
    return gv_cuda_tmp_alloc(c, out, *ws_b + extra);
}

static void plan_release(struct dnn_plan *p) {
    if (p->plan) cudnnBackendDestroyDescriptor(p->plan);
    dnn_drop_alts(p);
    for (int i = p->ndesc - 1; i >= 0; i--) cudnnBackendDestroyDescriptor(p->desc[i]);
    p->plan = NULL;
    p->ndesc = 0;
}

static gv_status dnn_get(gv_cuda_ctx *c, struct gv_cudnn **out) {
    *out = c->dnn;
    if (c->dnn) return GV_OK;
    struct gv_cudnn *d = (struct gv_cudnn *)calloc(1, sizeof *d);
    if (!d) return gv_fail(GV_ERR_NOMEM, "cuda: out of memory (cuDNN state)");
    cudnnStatus_t s = cudnnCreate(&d->h);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetStream(d->h, c->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
        if (d->h) cudnnDestroy(d->h);
        free(d);
        return gv_fail(GV_ERR_BACKEND, "cuda: cuDNN init failed: %s", cudnnGetErrorString(s));
    }
    c->dnn = d;
    *out = d;
    return GV_OK;
}

/* The cached plan of a shape, built on first use; *plan = NULL when cuDNN refuses it (logged once). */
static gv_status dnn_plan_get(gv_cuda_ctx *c, struct dnn_plan **plan, int bwd, int B, int T, int H, int KVH,
                              int D, int causal) {
    *plan = NULL;
    struct gv_cudnn *d;
    GV_TRY(dnn_get(c, &d));
    for (int i = 0; i < d->nplans; i++) {
        struct dnn_plan *p = &d->plans[i];
        if (p->bwd == bwd && p->B == B && p->T == T && p->H == H && p->KVH == KVH && p->D == D &&
            p->causal == causal) {
            *plan = p->plan ? p : NULL;
            return GV_OK;
        }
    }
    if (d->nplans == DNN_MAX_PLANS) { /* full: drop the oldest (shapes rarely change within a run) */
        plan_release(&d->plans[0]);
        memmove(&d->plans[0], &d->plans[1], (DNN_MAX_PLANS - 1) * sizeof d->plans[0]);
        d->nplans--;
    }
    struct dnn_plan *p = &d->plans[d->nplans++];
    memset(p, 0, sizeof *p);
    p->bwd = bwd, p->B = B, p->T = T, p->H = H, p->KVH = KVH, p->D = D, p->causal = causal;
    struct dnn_build g;
    memset(&g, 0, sizeof g);
    g.p = p;
    g.next_uid = U_FIRST_VIRTUAL;
    g.err = CUDNN_STATUS_SUCCESS;
    struct dnn_shapes s;
    dnn_shapes_init(&s, B, T, H, KVH, D);
    if (bwd)
        build_backward(&g, &s, causal, KVH != H);
    else
        build_forward(&g, &s, causal);
    if (g.err == CUDNN_STATUS_SUCCESS) build_plan(&g, d->h);
    if (g.err != CUDNN_STATUS_SUCCESS || !p->plan) {
        char msg[256] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        gv_warn("cuda: cuDNN %zu refused attention %s B=%d T=%d H=%d KVH=%d D=%d causal=%d at %s (%s%s%s): "
                "the own "
                "kernel runs it",
                cudnnGetVersion(), bwd ? "backward" : "forward", B, T, H, KVH, D, causal,
                g.what ? g.what : "?", cudnnGetErrorString(g.err), msg[0] ? ": " : "", msg);
        plan_release(p); /* keep the entry (plan NULL) so the shape is not tried again */
        return GV_OK;
    }
    gv_debug("cuda: cuDNN attention %s plan B=%d T=%d H=%d KVH=%d D=%d causal=%d, workspace %lld bytes",
             bwd ? "backward" : "forward", B, T, H, KVH, D, causal, (long long)p->ws);
    *plan = p;
    return GV_OK;
}

/* Runs plan once with the variant pack vp. */
static cudnnStatus_t dnn_run(gv_cuda_ctx *c, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t vp) {
    return cudnnBackendExecute(c->dnn->h, plan, vp);
}

/* First execution of a shape with alternatives: each plan runs once to warm up, then three times under
 * events; the fastest stays and runs once more (repeating is safe: the graphs write their outputs, they
 * never accumulate; the backward before cuDNN 9.6 does, and keeps no alternatives). The choice depends on
 * timing, so two runs may take different plans: GV_CUDA_DNN_TUNE=0 for reproducible ones. */
static cudnnStatus_t dnn_tune(gv_cuda_ctx *c, struct dnn_plan *p, cudnnBackendDescriptor_t vp) {
    cudnnBackendDescriptor_t all[DNN_MAX_ALT + 1];
    int64_t ws[DNN_MAX_ALT + 1];
    float ms[DNN_MAX_ALT + 1];
    int n = 0, best = 0;
    all[n] = p->plan, ws[n++] = p->ws;
    for (int i = 0; i < p->nalt; i++) all[n] = p->alt[i], ws[n++] = p->alt_ws[i];
    cudaEvent_t e0 = NULL, e1 = NULL;
    if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess) {
        for (int i = 0; i < n; i++) {
            ms[i] = INFINITY;
            if (dnn_run(c, all[i], vp) != CUDNN_STATUS_SUCCESS) continue;
            cudaEventRecord(e0, c->stream);
            cudnnStatus_t r = CUDNN_STATUS_SUCCESS;
            for (int k = 0; k < 3 && r == CUDNN_STATUS_SUCCESS; k++) r = dnn_run(c, all[i], vp);
            cudaEventRecord(e1, c->stream);
            if (r != CUDNN_STATUS_SUCCESS || cudaEventSynchronize(e1) != cudaSuccess ||
                cudaEventElapsedTime(&ms[i], e0, e1) != cudaSuccess)
                ms[i] = INFINITY;
            if (ms[i] < ms[best]) best = i;
        }
    } else {
        ms[0] = 0.0f;
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaGetLastError();
    gv_debug("cuda: cuDNN attention %s B=%d T=%d H=%d D=%d: %d plans timed, #%d kept (%.3f ms, first %.3f)",
             p->bwd ? "backward" : "forward", p->B, p->T, p->H, p->D, n, best, ms[best] / 3, ms[0] / 3);
    for (int i = 0; i < n; i++)
        if (i != best) cudnnBackendDestroyDescriptor(all[i]);
    p->plan = all[best];
    p->ws = ws[best];
    p->nalt = 0;
    /* the outputs are the kept plan's, as in every later step (the plans may round differently) */
    return dnn_run(c, p->plan, vp);
}

static gv_status dnn_execute(gv_cuda_ctx *c, struct dnn_plan *p, int n, const int64_t *uids, void **ptrs,
                             void *ws) {
    cudnnBackendDescriptor_t vp = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &ws);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(vp);
    if (s == CUDNN_STATUS_SUCCESS && p->nalt > 0)
        s = dnn_tune(c, p, vp);
    else if (s == CUDNN_STATUS_SUCCESS)
        s = dnn_run(c, p->plan, vp);
    if (vp) cudnnBackendDestroyDescriptor(vp);
    if (s != CUDNN_STATUS_SUCCESS) {
        char msg[256] = "";
        cudnnGetLastErrorString(msg, sizeof msg);
        return gv_fail(GV_ERR_BACKEND, "cuda: cuDNN attention %s B=%d T=%d H=%d KVH=%d D=%d failed: %s%s%s",
                       p->bwd ? "backward" : "forward", p->B, p->T, p->H, p->KVH, p->D,
                       cudnnGetErrorString(s), msg[0] ? ": " : "", msg);
    }
    c->dnn->runs[p->bwd]++;
    return GV_OK;
}

/* cuDNN before 9.10 wants the lowest finite value as the mask fill, later ones -inf. */
static float dnn_neginf(void) {
    return cudnnGetVersion() < 91000 ? -3.402823466e38f : -INFINITY;
}

/* Shapes the graphs can describe: 16-byte aligned views (every row stride and head offset a multiple of 8
 * elements), no padding mask (that is the own kernel's). */
static bool dnn_shape_ok(int T, int H, int KVH, int D) {
    return T > 0 && D % 8 == 0 && D <= 256 && H % KVH == 0;
}

/* Buffers cuDNN cannot take (a view not 16-byte aligned): the own kernel runs; said once per process. */
static bool dnn_aligned(const void *a, const void *b, const void *c, const void *d, const void *e) {
    static int warned;
    if (gv_aligned16(a) && gv_aligned16(b) && gv_aligned16(c) && gv_aligned16(d) && gv_aligned16(e))
        return true;
    if (!warned) gv_warn("cuda: attention buffers not 16-byte aligned for cuDNN: the own kernel runs them");
    warned = 1;
    return false;
}

/* dst[i] += src[i] (bf16, n elements): adds cuDNN's gradients when dqkv was not a pending zero. */
__global__ void dnn_add_kernel(bf16 *dst, const bf16 *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = gv_tobf(gv_bf(dst[i]) + gv_bf(src[i]));
}

gv_status gv_cudnn_attention_forward(gv_cuda_ctx *c, int *done, bf16 *out, float *lse, const bf16 *qkv, int B,
                                     int T, int H, int KVH, int D, int causal) {
    *done = 0;
    if (!dnn_shape_ok(T, H, KVH, D) || !dnn_aligned(qkv, out, lse, qkv, qkv)) return GV_OK;
    struct dnn_plan *p;
    GV_TRY(dnn_plan_get(c, &p, 0, B, T, H, KVH, D, causal));
    if (!p) return GV_OK;
    void *ws = NULL;
    size_t ws_b;
    GV_TRY(dnn_ws_alloc(c, p, &ws, 0, &ws_b));
    float scale = 1.0f / sqrtf((float)D), neginf = dnn_neginf();
    const int64_t uids[] = {U_Q, U_KT, U_V, U_O, U_STATS, U_SCALE, U_NEGINF};
    void *ptrs[] = {(void *)qkv,
                    (void *)(qkv + (size_t)H * D),
                    (void *)(qkv + (size_t)(H + KVH) * D),
                    (void *)out,
                    (void *)lse,
                    &scale,
                    &neginf};
    gv_status st = dnn_execute(c, p, causal ? 7 : 6, uids, ptrs, ws);
    gv_status st2 = gv_cuda_tmp_free(c, ws);
    if (st == GV_OK && st2 == GV_OK) *done = 1;
    return st != GV_OK ? st : st2;
}

gv_status gv_cudnn_attention_backward(gv_cuda_ctx *c, int *done, bf16 *dqkv, const bf16 *dout,
                                      const bf16 *qkv, const bf16 *out, const float *lse, int B, int T, int H,
                                      int KVH, int D, int causal) {
    *done = 0;
    if (!dnn_shape_ok(T, H, KVH, D) || !dnn_aligned(qkv, dqkv, out, dout, lse)) return GV_OK;
    struct dnn_plan *p;
    GV_TRY(dnn_plan_get(c, &p, 1, B, T, H, KVH, D, causal));
    if (!p) return GV_OK;
    /* cuDNN writes the gradients: straight into dqkv when it is a pending zero, else into a scratch copy
     * that is then added */
    const size_t rows = (size_t)B * H * T, S = (size_t)(H + 2 * KVH) * D, n = (size_t)B * T * S;
    const size_t es = sizeof(bf16), HDb = (size_t)B * T * H * D * es;
    const struct gv_range in[] = {{dout, HDb}, {out, HDb}, {qkv, n * es}, {lse, rows * sizeof(float)}};
    int claimed = 0;
    GV_TRY(gv_cuda_zero_claim(c, &claimed, dqkv, n * es, in, 4));
    /* scratch: workspace | Dsum [B*H*T] F32 | dQ accumulator [B*H*T*D] F32 | gradients [B*T*S] bf16 */
    const size_t a = 256, ds_b = (rows * sizeof(float) + a - 1) / a * a;
    const size_t dq_b = (rows * D * sizeof(float) + a - 1) / a * a, g_b = claimed ? 0 : n * es;
    char *tmp;
    size_t ws_b;
    GV_TRY(dnn_ws_alloc(c, p, (void **)&tmp, ds_b + dq_b + g_b, &ws_b));
    float *dsum = (float *)(tmp + ws_b), *dqacc = (float *)(tmp + ws_b + ds_b);
    bf16 *g = claimed ? dqkv : (bf16 *)(tmp + ws_b + ds_b + dq_b);
    gv_status st = GV_OK;
    if (cudnnGetVersion() < 90600) { /* earlier releases expect a zeroed dQ accumulator */
        cudaError_t e = cudaMemsetAsync(dqacc, 0, rows * D * sizeof(float), c->stream);
        if (e != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "cuda: cuDNN attention backward: zeroing dQ: %s",
                         cudaGetErrorString(e));
    }
    float scale = 1.0f / sqrtf((float)D), neginf = dnn_neginf(), one = 1.0f;
    const int64_t uids[] = {U_Q,  U_KT, U_V,    U_O,     U_DO,    U_STATS, U_DQ,
                            U_DK, U_DV, U_DSUM, U_DQACC, U_SCALE, U_ONE,   U_NEGINF};
    void *ptrs[] = {(void *)qkv,
                    (void *)(qkv + (size_t)H * D),
                    (void *)(qkv + (size_t)(H + KVH) * D),
                    (void *)out,
                    (void *)dout,
                    (void *)lse,
                    (void *)g,
                    (void *)(g + (size_t)H * D),
                    (void *)(g + (size_t)(H + KVH) * D),
                    (void *)dsum,
                    (void *)dqacc,
                    &scale,
                    &one,
                    &neginf};
    if (st == GV_OK) st = dnn_execute(c, p, causal ? 14 : 13, uids, ptrs, tmp);
    if (st == GV_OK && !claimed) {
        dnn_add_kernel<<<gv_cdiv(n, 256), 256, 0, c->stream>>>(dqkv, g, n);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            st = gv_fail(GV_ERR_BACKEND, "cuda: cuDNN attention backward: accumulate launch failed: %s",
                         cudaGetErrorString(e));
    }
    gv_status st2 = gv_cuda_tmp_free(c, tmp);
    if (st == GV_OK && st2 == GV_OK) *done = 1;
    return st != GV_OK ? st : st2;
}

void gv_cudnn_free(gv_cuda_ctx *c) {
    struct gv_cudnn *d = c->dnn;
    if (!d) return;
    for (int i = 0; i < d->nplans; i++) plan_release(&d->plans[i]);
    cudnnDestroy(d->h);
    free(d);
    c->dnn = NULL;
}

extern "C" long gv_cuda_cudnn_runs(gv_backend *b, int backward) {
    gv_cuda_ctx *c = gv_cuda(b);
    return c->dnn ? c->dnn->runs[backward ? 1 : 0] : 0;
}
extern "C" long gv_cuda_cudnn_version(void) {
    return (long)cudnnGetVersion();
}

#else /* built without cuDNN: every call leaves the op to the own kernels */

gv_status gv_cudnn_attention_forward(gv_cuda_ctx *c, int *done, bf16 *out, float *lse, const bf16 *qkv, int B,
                                     int T, int H, int KVH, int D, int causal) {
    *done = 0;
    return GV_OK;
}
gv_status gv_cudnn_attention_backward(gv_cuda_ctx *c, int *done, bf16 *dqkv, const bf16 *dout,
                                      const bf16 *qkv, const bf16 *out, const float *lse, int B, int T, int H,
                                      int KVH, int D, int causal) {
    *done = 0;
    return GV_OK;
}
void gv_cudnn_free(gv_cuda_ctx *c) {}
extern "C" long gv_cuda_cudnn_runs(gv_backend *b, int backward) {
    return 0;
}
extern "C" long gv_cuda_cudnn_version(void) {
    return 0;
}
#endif
