/* Rank layout: pp outermost, dp, tp innermost. rank = (pp_idx * dp + dp_idx) * tp + tp_idx. */
#include "gv/layout.h"

static int gv_layout_ok(int rank, int pp, int dp, int tp) {
    if (pp < 1 || dp < 1 || tp < 1) return 0;
    long w = (long)pp * dp * tp;
    return w <= 0x7fffffffL && rank >= 0 && rank < w;
}

int gv_rank_layout(int rank, int pp, int dp, int tp, int *pp_idx, int *dp_idx, int *tp_idx) {
    if (!gv_layout_ok(rank, pp, dp, tp)) return -1;
    if (tp_idx) *tp_idx = rank % tp;
    if (dp_idx) *dp_idx = rank / tp % dp;
    if (pp_idx) *pp_idx = rank / (tp * dp);
    return 0;
}

int gv_layout_rank(int pp_idx, int dp_idx, int tp_idx, int pp, int dp, int tp) {
    if (!gv_layout_ok(0, pp, dp, tp)) return -1;
    if (pp_idx < 0 || pp_idx >= pp || dp_idx < 0 || dp_idx >= dp || tp_idx < 0 || tp_idx >= tp) return -1;
    return (pp_idx * dp + dp_idx) * tp + tp_idx;
}

int gv_layout_tp_group(int rank, int pp, int dp, int tp, int *out) {
    if (!gv_layout_ok(rank, pp, dp, tp)) return -1;
    int first = rank - rank % tp;
    for (int i = 0; i < tp; i++) out[i] = first + i;
    return tp;
}

int gv_layout_dp_group(int rank, int pp, int dp, int tp, int *out) {
    int p, d, t;
    if (gv_rank_layout(rank, pp, dp, tp, &p, &d, &t)) return -1;
    for (int i = 0; i < dp; i++) out[i] = (p * dp + i) * tp + t;
    return dp;
}

int gv_layout_pp_group(int rank, int pp, int dp, int tp, int *out) {
    int p, d, t;
    if (gv_rank_layout(rank, pp, dp, tp, &p, &d, &t)) return -1;
    for (int i = 0; i < pp; i++) out[i] = (i * dp + d) * tp + t;
    return pp;
}

int gv_layout_pp_neighbours(int rank, int pp, int dp, int tp, int *prev, int *next) {
    int p, d, t;
    if (gv_rank_layout(rank, pp, dp, tp, &p, &d, &t)) return -1;
    int stage = dp * tp;
    if (prev) *prev = p > 0 ? rank - stage : -1;
    if (next) *next = p + 1 < pp ? rank + stage : -1;
    return p;
}

static int gv_layout_block_ok(int base, int size, int g) {
    return base >= 0 && size >= 1 && g >= 1 && size % g == 0 && base <= 0x7fffffff - size;
}

/* Group i (of size/g) of the block. */
static void gv_layout_block_group(int base, int size, int g, int consec, int i, int *out) {
    int s = size / g;
    for (int k = 0; k < g; k++) out[k] = consec ? base + i * g + k : base + i + k * s;
}

int gv_layout_block_groups(int base, int size, int g, int consec, int *out) {
    if (!gv_layout_block_ok(base, size, g)) return -1;
    int ng = size / g;
    for (int i = 0; i < ng; i++) gv_layout_block_group(base, size, g, consec, i, out + (long)i * g);
    return ng;
}

int gv_layout_block_group_of(int rank, int base, int size, int g, int consec, int *out) {
    if (!gv_layout_block_ok(base, size, g) || rank < base || rank >= base + size) return -1;
    int local = rank - base;
    int i = consec ? local / g : local % (size / g);
    gv_layout_block_group(base, size, g, consec, i, out);
    return i;
}
