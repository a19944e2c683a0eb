/* Search output in Hetu-Galvatron's galvatron_config form (reference §5.1), with the predicted
 * throughput added. Written here rather than through gv_plan_save_galvatron because a search result may
 * hold what a plan file cannot say per layer (the default dp type on dp = 1 layers, Megatron-SP chosen
 * globally). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/fileio.h"
#include "gv/search.h"

static char *gv_join_ints(const int *v, int n) {
    char *s = malloc((size_t)n * 12 + 1);
    if (!s) return NULL;
    int at = 0;
    s[0] = '\0';
    for (int i = 0; i < n; i++) at += sprintf(s + at, "%s%d", i ? "," : "", v[i]);
    return s;
}

gv_status gv_search_save_galvatron(const gv_search_result *r, const gv_search_opts *o, const char *path) {
    const gv_plan *p = &r->plan;
    int n = p->n_layer;
    int *tp = malloc(sizeof(int) * (n + 1)), *one = malloc(sizeof(int) * (n + 1)),
        *dpt = malloc(sizeof(int) * (n + 1)), *sp = malloc(sizeof(int) * (n + 1)),
        *ck = malloc(sizeof(int) * (n + 1));
    char *lists[6] = {NULL};
    gv_status st = GV_OK;
    cJSON *root = NULL;
    char *txt = NULL;
    if (!tp || !one || !dpt || !sp || !ck) {
        st = gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        tp[i] = p->layers[i].tp;
        one[i] = 1;
        dpt[i] = p->layers[i].zero == 3;
        sp[i] = p->layers[i].sp == GV_SP_ULYSSES;
        ck[i] = p->layers[i].ckpt;
    }
    lists[0] = gv_join_ints(tp, n);
    lists[1] = gv_join_ints(one, n);
    lists[2] = gv_join_ints(dpt, n);
    lists[3] = gv_join_ints(sp, n);
    lists[4] = gv_join_ints(ck, n);
    lists[5] = gv_join_ints(p->stage_layers, p->pp);
    int lists_ok = 1;
    for (int i = 0; i < 6; i++) lists_ok &= lists[i] != NULL;
    if (lists_ok) root = cJSON_CreateObject();
    if (!root) {
        st = gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path);
        goto done;
    }
    static const char *const dpn[4] = {"ddp", "zero1", "zero2", "zero3"};
    cJSON_AddNumberToObject(root, "pp_deg", p->pp);
    cJSON_AddStringToObject(root, "tp_sizes_enc", lists[0]);
    cJSON_AddStringToObject(root, "tp_consecutive_flags", lists[1]);
    cJSON_AddStringToObject(root, "dp_types_enc", lists[2]);
    cJSON_AddStringToObject(root, "use_sp", lists[3]);
    cJSON_AddStringToObject(root, "checkpoint", lists[4]);
    cJSON_AddNumberToObject(root, "global_bsz", p->global_batch);
    cJSON_AddNumberToObject(root, "chunks", p->micro_batches);
    cJSON_AddStringToObject(root, "pp_division", lists[5]);
    cJSON_AddStringToObject(root, "pipeline_type",
                            p->schedule == GV_SCHED_GPIPE ? "gpipe" : "pipedream_flush");
    cJSON_AddStringToObject(root, "default_dp_type", dpn[o->default_dp_type & 3]);
    cJSON_AddNumberToObject(root, "vtp", p->vocab.tp);
    cJSON_AddNumberToObject(root, "vsp", p->vocab.sp == GV_SP_ULYSSES);
    cJSON_AddNumberToObject(root, "embed_sdp", p->vocab.zero == 3);
    cJSON_AddNumberToObject(root, "world_size", p->world);
    cJSON_AddNumberToObject(root, "throughput", r->cost.throughput);
    txt = cJSON_Print(root);
    if (!txt) {
        st = gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path);
        goto done;
    }
    size_t len = strlen(txt);
    char *t2 = realloc(txt, len + 2);
    if (t2) {
        txt = t2;
        txt[len++] = '\n';
        txt[len] = '\0';
    }
    st = gv_file_write_atomic(path, txt, len);
done:
    for (int i = 0; i < 6; i++) free(lists[i]);
    free(tp);
    free(one);
    free(dpt);
    free(sp);
    free(ck);
    free(txt);
    cJSON_Delete(root);
    return st;
}
