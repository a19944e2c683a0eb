/* Rank layout of a pp x dp x tp world (W = pp * dp * tp): pp outermost, then dp, then tp innermost, so
 *     rank = (pp_idx * dp + dp_idx) * tp + tp_idx
 * consecutive ranks share a TP group and a pipeline stage is W/pp consecutive ranks. Groups are listed in
 * ascending rank order, ready for gv_comm_group. Functions return -1 on a degree < 1 or a rank outside
 * [0, W) (or a group size that does not divide its block). Pure functions: no communicator needed. */
#ifndef GV_LAYOUT_H
#define GV_LAYOUT_H
#ifdef __cplusplus
extern "C" {
#endif

/* Coordinates of `rank`; returns 0 or -1. */
int gv_rank_layout(int rank, int pp, int dp, int tp, int *pp_idx, int *dp_idx, int *tp_idx);
/* The rank at (pp_idx, dp_idx, tp_idx), or -1. */
int gv_layout_rank(int pp_idx, int dp_idx, int tp_idx, int pp, int dp, int tp);

/* The groups of `rank`: out receives the group's ranks; returns the group size (tp, dp or pp) or -1.
 *   tp group: same (pp_idx, dp_idx), consecutive ranks.
 *   dp group: same (pp_idx, tp_idx), stride tp.
 *   pp group: same (dp_idx, tp_idx), stride dp*tp (one rank per stage). */
int gv_layout_tp_group(int rank, int pp, int dp, int tp, int *out);
int gv_layout_dp_group(int rank, int pp, int dp, int tp, int *out);
int gv_layout_pp_group(int rank, int pp, int dp, int tp, int *out);
/* Pipeline neighbours: the rank with the same (dp_idx, tp_idx) in the previous and next stage, -1 at the
 * first and last stage. Returns the stage index of `rank` or -1. */
int gv_layout_pp_neighbours(int rank, int pp, int dp, int tp, int *prev, int *next);

/* Galvatron's consecutive (consec = 1) and strided (consec = 0) groups of g ranks inside the block of `size`
 * ranks [base, base + size) (the whole world: base 0, size W; one pipeline stage: base = stage * W/pp,
 * size = W/pp):
 *   consec = 1: group i = base + i*g + {0, 1, ..., g-1}
 *   consec = 0: group i = base + i + {0, s, 2s, ..., (g-1)s} with s = size/g
 * for i in [0, size/g). A consecutive tp group of a stage goes with a strided dp group and vice versa:
 * the dp group of a stage with tp groups (g, consec) is the (size/g, !consec) group.
 * gv_layout_block_groups writes all size/g groups one after the other into out[size] and returns their
 * number; gv_layout_block_group_of writes the group that contains `rank` into out[g] and returns its
 * index. */
int gv_layout_block_groups(int base, int size, int g, int consec, int *out);
int gv_layout_block_group_of(int rank, int base, int size, int g, int consec, int *out);

#ifdef __cplusplus
}
#endif
#endif
