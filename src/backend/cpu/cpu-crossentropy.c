/* Softmax cross-entropy over the first V of Vp logit columns. Rows whose target is ignore_index give loss
 * 0 and no gradient; padding columns (>= V) are never read for the loss and never get a gradient.
 * Backward with dlogits == logits replaces the logits by their gradient (ignored rows and padding columns
 * become 0) instead of accumulating: the in-place form that saves a [N, Vp] buffer. */
#include "cpu-ops.h"

#include <math.h>
#include <string.h>

static gv_status ce_check(const char *op, const int32_t *targets, int N, int V, int Vp, int ignore_index) {
    if (N < 0 || V <= 0 || Vp < V)
        return gv_fail(GV_ERR_INVALID, "%s: bad shape N=%d V=%d Vp=%d (need V > 0, Vp >= V)", op, N, V, Vp);
    for (int n = 0; n < N; n++) {
        int tg = targets[n];
        if (tg != ignore_index && (tg < 0 || tg >= V))
            return gv_fail(GV_ERR_INVALID, "%s: target %d at row %d outside [0, %d) and not ignore_index %d",
                           op, tg, n, V, ignore_index);
    }
    return GV_OK;
}

/* Row max and log-sum-exp over the first V columns: lse = max + log(sum exp(x - max)). */
static void ce_row_stats(const float *x, int V, float *mx_out, double *lse_out) {
    float mx = x[0];
    for (int j = 1; j < V; j++)
        if (x[j] > mx) mx = x[j];
    double s = 0.0;
    for (int j = 0; j < V; j++) s += exp((double)(x[j] - mx));
    *mx_out = mx;
    *lse_out = (double)mx + log(s);
}

gv_status gv_cpu_crossentropy_forward(gv_backend *b, float *losses, const void *logits_,
                                      const int32_t *targets, int N, int V, int Vp, int ignore_index) {
    (void)b;
    GV_TRY(ce_check("crossentropy_forward", targets, N, V, Vp, ignore_index));
    const float *logits = logits_; /* [N, Vp] */
    /* losses: [N] F32; targets: [N] */
#pragma omp parallel for if ((long)N * V > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) {
            losses[n] = 0.0f;
            continue;
        }
        const float *x = logits + (long)n * Vp;
        float mx;
        double lse;
        ce_row_stats(x, V, &mx, &lse);
        losses[n] = (float)(lse - (double)x[targets[n]]);
    }
    return GV_OK;
}

gv_status gv_cpu_crossentropy_backward(gv_backend *b, void *dlogits_, const void *logits_,
                                       const int32_t *targets, float dloss, int N, int V, int Vp,
                                       int ignore_index) {
    (void)b;
    GV_TRY(ce_check("crossentropy_backward", targets, N, V, Vp, ignore_index));
    float *dlogits = dlogits_;     /* [N, Vp] */
    const float *logits = logits_; /* [N, Vp] */
    /* targets: [N] */
    int inplace = dlogits_ == logits_;
#pragma omp parallel for if ((long)N * V > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        int tg = targets[n];
        const float *x = logits + (long)n * Vp;
        float *dx = dlogits + (long)n * Vp;
        if (tg == ignore_index) {
            if (inplace) memset(dx, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        float mx;
        double lse;
        ce_row_stats(x, V, &mx, &lse);
        for (int j = 0; j < V; j++) {
            float d = ((float)exp((double)x[j] - lse) - (j == tg ? 1.0f : 0.0f)) * dloss;
            dx[j] = inplace ? d : dx[j] + d;
        }
        if (inplace) memset(dx + V, 0, (size_t)(Vp - V) * sizeof(float));
    }
    return GV_OK;
}

/* Vocab-parallel pieces: this shard holds global columns [v0, v0 + V). */
gv_status gv_cpu_crossentropy_shard_stats(gv_backend *b, float *lse, float *tlogit, const void *logits_,
                                          const int32_t *targets, int N, int V, int Vp, int v0,
                                          int ignore_index) {
    (void)b;
    if (N < 0 || V <= 0 || Vp < V || v0 < 0)
        return gv_fail(GV_ERR_INVALID, "crossentropy_shard_stats: bad shape N=%d V=%d Vp=%d v0=%d", N, V, Vp,
                       v0);
    const float *logits = logits_; /* [N, Vp] */
    /* lse, tlogit: [N] F32; targets: [N] */
#pragma omp parallel for if ((long)N * V > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vp;
        float mx;
        double s;
        ce_row_stats(x, V, &mx, &s);
        lse[n] = (float)s;
        int j = targets[n] - v0;
        tlogit[n] = targets[n] != ignore_index && j >= 0 && j < V ? x[j] : 0.0f;
    }
    return GV_OK;
}

gv_status gv_cpu_crossentropy_shard_backward(gv_backend *b, void *dlogits_, const void *logits_,
                                             const int32_t *targets, const float *lse, float dloss, int N,
                                             int V, int Vp, int v0, int ignore_index) {
    (void)b;
    if (N < 0 || V <= 0 || Vp < V || v0 < 0)
        return gv_fail(GV_ERR_INVALID, "crossentropy_shard_backward: bad shape N=%d V=%d Vp=%d v0=%d", N, V,
                       Vp, v0);
    float *dlogits = dlogits_;     /* [N, Vp] */
    const float *logits = logits_; /* [N, Vp] */
    /* lse: [N] log-sum-exp of the full row; targets: [N] */
    int inplace = dlogits_ == logits_;
#pragma omp parallel for if ((long)N * V > GV_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = logits + (long)n * Vp;
        float *dx = dlogits + (long)n * Vp;
        if (targets[n] == ignore_index) {
            if (inplace) memset(dx, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        int tj = targets[n] - v0;
        for (int j = 0; j < V; j++) {
            float d = ((float)exp((double)x[j] - (double)lse[n]) - (j == tj ? 1.0f : 0.0f)) * dloss;
            dx[j] = inplace ? d : dx[j] + d;
        }
        if (inplace) memset(dx + V, 0, (size_t)(Vp - V) * sizeof(float));
    }
    return GV_OK;
}
