/* A cost model over the profile files of one directory (see gv_cost_env_load). */
#include <stdio.h>
#include <string.h>

#include "gv/cost.h"

gv_status gv_cost_env_load(gv_cost_env *e, const char *dir, const char *model_name, int num_nodes,
                           int gpus_per_node, const gv_cost_opts *o, gv_profile_mode time_mode,
                           gv_profile_mode mem_mode) {
    memset(e, 0, sizeof *e);
    if (o->world != num_nodes * gpus_per_node)
        return gv_fail(GV_ERR_INVALID, "cost: %d ranks, but the profiles are asked for %d nodes x %d GPUs",
                       o->world, num_nodes, gpus_per_node);
    GV_TRY(gv_hw_profile_load(&e->hw, dir, num_nodes, gpus_per_node));
    char comp[1024], mem[1024];
    const char *prec = o->mixed_precision ? "bf16" : "fp32";
    snprintf(comp, sizeof comp, "%s/computation_profiling_%s_%s_all.json", dir, prec, model_name);
    snprintf(mem, sizeof mem, "%s/memory_profiling_%s_%s_all.json", dir, prec, model_name);
    GV_TRY(gv_model_profile_load(&e->mp, comp, mem, o->seq, o->sequence_parallel, time_mode, mem_mode));
    GV_TRY(gv_cost_check_types(o, &e->mp, mem));
    if (o->mode == GV_COST_OWN) {
        char own[1024];
        snprintf(own, sizeof own, "%s/model_profile.json", dir);
        GV_TRY(gv_own_profile_load(&e->mp, own, o->seq));
    }
    e->cm.hw = &e->hw;
    e->cm.mp = &e->mp;
    e->cm.o = *o;
    return GV_OK;
}
