/* Hardware profile files: the project's hardware_profile.json and Hetu-Galvatron's four files, under their
 * names and keys (Galvatron's bandwidths are bus bandwidths in MB/ms with MB = 2^20 bytes; times in ms). */
#include <stdio.h>

#include "gv/profiler.h"
#include "profile-util.h"

/* GB/s (1e9 bytes/s) -> MB/ms (2^20 bytes per ms). */
static double gv_gbps_to_mb_per_ms(double gbps) {
    return gbps * 1e9 / 1048576.0 / 1e3;
}

static cJSON *gv_hw_own_json(const gv_hw_prof *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "galvatron-c hardware profile");
    gv_prof_num(j, "version", 1);
    cJSON_AddStringToObject(j, "date", p->date);
    cJSON_AddStringToObject(j, "host", p->host);
    gv_prof_num(j, "world", p->world);
    gv_prof_num(j, "nodes", p->nodes);
    gv_prof_num(j, "ranks_per_node", p->ranks_per_node);
    cJSON_AddStringToObject(j, "comm", p->comm);
    cJSON_AddStringToObject(j, "backend", p->backend);
    cJSON_AddStringToObject(j, "dtype", "f32");
    cJSON_AddStringToObject(j, "units", "bytes, ms, GB/s = 1e9 bytes/s");
    gv_prof_num(j, "warmup", p->cfg.warmup);
    gv_prof_num(j, "iters", p->cfg.iters);
    gv_prof_num(j, "min_bytes", (double)p->cfg.min_bytes);
    gv_prof_num(j, "max_bytes", (double)p->cfg.max_bytes);
    gv_prof_num(j, "sp_max_mb", p->cfg.sp_max_mb);
    gv_prof_num(j, "window_ms", p->cfg.window_ms);

    cJSON *cs = cJSON_AddArrayToObject(j, "collectives");
    for (int i = 0; i < p->ncoll;) { /* one entry per (op, group size, layout), its sizes as points */
        const gv_coll_point *q = &p->coll[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "op", gv_coll_op_name(q->op));
        gv_prof_num(e, "group_size", q->group_size);
        cJSON_AddBoolToObject(e, "consecutive", q->consec);
        gv_prof_num(e, "groups", q->ngroups);
        cJSON *pts = cJSON_AddArrayToObject(e, "points");
        int k = i;
        for (; k < p->ncoll && p->coll[k].op == q->op && p->coll[k].group_size == q->group_size &&
               p->coll[k].consec == q->consec;
             k++) {
            cJSON *pt = cJSON_CreateObject();
            gv_prof_num(pt, "bytes", (double)p->coll[k].bytes);
            gv_prof_num(pt, "time_ms", p->coll[k].time_ms);
            gv_prof_num(pt, "algbw_gbps", p->coll[k].algbw_gbps);
            gv_prof_num(pt, "busbw_gbps", p->coll[k].busbw_gbps);
            cJSON_AddItemToArray(pts, pt);
        }
        cJSON_AddItemToArray(cs, e);
        i = k;
    }
    cJSON *pp = cJSON_AddArrayToObject(j, "p2p");
    for (int i = 0; i < p->np2p; i++) {
        cJSON *e = cJSON_CreateObject();
        gv_prof_num(e, "pp", p->p2p[i].pp);
        gv_prof_num(e, "bytes", (double)p->p2p[i].bytes);
        gv_prof_num(e, "time_ms", p->p2p[i].time_ms);
        gv_prof_num(e, "bw_gbps", p->p2p[i].bw_gbps);
        cJSON_AddItemToArray(pp, e);
    }
    cJSON *sp = cJSON_AddArrayToObject(j, "sp_time");
    for (int i = 0; i < p->nsp; i++) {
        cJSON *e = cJSON_CreateObject();
        gv_prof_num(e, "group_size", p->sp[i].group_size);
        gv_prof_num(e, "mb", p->sp[i].mb);
        gv_prof_num(e, "allreduce_ms", p->sp[i].allreduce_ms);
        gv_prof_num(e, "alltoall_ms", p->sp[i].alltoall_ms);
        cJSON_AddItemToArray(sp, e);
    }
    cJSON *mm = cJSON_AddObjectToObject(j, "matmul");
    gv_prof_num(mm, "n", p->matmul_n);
    gv_prof_num(mm, "time_ms", p->matmul_ms);
    gv_prof_num(mm, "gflops_per_rank", p->matmul_gflops);
    cJSON *ov = cJSON_AddObjectToObject(j, "overlap");
    gv_prof_num(ov, "allreduce_bytes", (double)p->overlap_bytes);
    gv_prof_num(ov, "matmul_n", p->matmul_n);
    gv_prof_num(ov, "allreduce_alone_ms", p->comm_alone_ms);
    gv_prof_num(ov, "allreduce_overlapped_ms", p->comm_overlap_ms);
    gv_prof_num(ov, "matmul_alone_ms", p->comp_alone_ms);
    gv_prof_num(ov, "matmul_overlapped_ms", p->comp_overlap_ms);
    gv_prof_num(ov, "comm_delay", p->comm_delay);
    gv_prof_num(ov, "comp_delay", p->comp_delay);
    gv_prof_num(ov, "overlap_coe", p->overlap_coe);
    return j;
}

gv_status gv_hw_prof_save(const gv_hw_prof *p, const char *dir) {
    char suffix[96], name[160];
    snprintf(suffix, sizeof suffix, "%dnodes_%dgpus_per_node.json", p->nodes, p->ranks_per_node);
    cJSON *own = gv_hw_own_json(p);
    gv_status st = own ? gv_prof_write_json(own, dir, "hardware_profile.json")
                       : gv_fail(GV_ERR_NOMEM, "profile: out of memory");
    cJSON_Delete(own);
    if (st != GV_OK) return st;

    /* allreduce_size_{g}_consec_{0|1}: bus bandwidth at the largest measured size, groups W .. 2. */
    cJSON *ar = cJSON_CreateObject();
    for (int g = p->world; g >= 2; g /= 2)
        for (int consec = 1; consec >= 0; consec--) {
            if (g == p->world && !consec) continue;
            char key[64];
            snprintf(key, sizeof key, "allreduce_size_%d_consec_%d", g, consec);
            gv_prof_num(ar, key, gv_gbps_to_mb_per_ms(gv_hw_prof_busbw(p, GV_COLL_ALLREDUCE, g, consec)));
        }
    snprintf(name, sizeof name, "allreduce_bandwidth_%s", suffix);
    st = gv_prof_write_json(ar, dir, name);
    cJSON_Delete(ar);
    if (st != GV_OK) return st;

    cJSON *pp = cJSON_CreateObject();
    for (int i = 0; i < p->np2p; i++) {
        char key[32];
        snprintf(key, sizeof key, "pp_size_%d", p->p2p[i].pp);
        gv_prof_num(pp, key, gv_gbps_to_mb_per_ms(p->p2p[i].bw_gbps));
    }
    snprintf(name, sizeof name, "p2p_bandwidth_%s", suffix);
    st = gv_prof_write_json(pp, dir, name);
    cJSON_Delete(pp);
    if (st != GV_OK) return st;

    cJSON *ov = cJSON_CreateObject();
    gv_prof_num(ov, "overlap_coe", p->overlap_coe);
    st = gv_prof_write_json(ov, dir, "overlap_coefficient.json");
    cJSON_Delete(ov);
    if (st != GV_OK) return st;

    if (!p->nsp) return GV_OK; /* --sp-max-mb 0: no tables asked for, no file */
    cJSON *sp = cJSON_CreateObject();
    for (int pass = 0; pass < 2; pass++) /* all all-reduce keys, then all all-to-all keys */
        for (int i = 0; i < p->nsp; i++) {
            char key[64];
            snprintf(key, sizeof key, "%s_size_%d_%dMB_time", pass ? "all2all" : "allreduce",
                     p->sp[i].group_size, p->sp[i].mb);
            gv_prof_num(sp, key, pass ? p->sp[i].alltoall_ms : p->sp[i].allreduce_ms);
        }
    snprintf(name, sizeof name, "sp_time_%s", suffix);
    st = gv_prof_write_json(sp, dir, name);
    cJSON_Delete(sp);
    return st;
}
