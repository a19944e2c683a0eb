/* `galvatron profile hardware -n 2` and `-n 4` through the CLI (which relaunches under mpirun): every file
 * exists and parses, has every key for the group sizes and pp degrees of the world, values are positive and
 * finite, Galvatron's numbers are the project's converted to its units, and the reported bandwidths are
 * consistent with the sizes and times they come from. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gv/fileio.h"
#include "gv/profiler.h"
#include "test.h"

static cJSON *load(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s;
    size_t n;
    if (gv_file_read_all(path, &s, &n) != GV_OK) {
        fprintf(stderr, "missing %s: %s\n", path, gv_last_error());
        gv_test_failures++;
        return NULL;
    }
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) {
        fprintf(stderr, "%s does not parse\n", path);
        gv_test_failures++;
    }
    return j;
}

/* The number under key, checked positive and finite; NaN (and a failure) when missing. */
static double num(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0) {
        fprintf(stderr, "key %s: missing, not a number or not positive\n", key);
        gv_test_failures++;
        return NAN;
    }
    return v->valuedouble;
}

static double mb_per_ms(double gbps) {
    return gbps * 1e9 / 1048576.0 / 1e3;
}

/* small: a short sweep (16 KiB .. 1 MiB) and 1 .. 8 MB tables; else the defaults (64 KiB .. 4 MiB, 1 .. 128
 * MB). */
static void check_world(int W, int small) {
    char dir[] = "/tmp/gv-prof-hw.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/galvatron profile hardware -n %d -o %s/out %s > %s/stdout 2> %s/stderr",
             GV_BINARY_DIR, W, dir,
             small ? "--min-size 16K --max-size 1M --sp-max-mb 8 --iters 3 --matmul-n 256" : "", dir, dir);
    double min_bytes = small ? 16384 : 65536, max_bytes = min_bytes * 64;
    int sp_max = small ? 8 : 128, mm_n = small ? 256 : 512;
    int rc = system(cmd);
    CHECK(rc == 0);
    char out[600], sfx[64], name[128];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(sfx, sizeof sfx, "1nodes_%dgpus_per_node.json", W);

    /* Progress lines on stderr, one per collective and group layout at least. */
    char errpath[600];
    snprintf(errpath, sizeof errpath, "%s/stderr", dir);
    char *err;
    size_t n;
    if (gv_file_read_all(errpath, &err, &n) == GV_OK) {
        CHECK(strstr(err, "[gv info] profile hardware: allreduce") != NULL);
        CHECK(strstr(err, "overlap_coe") != NULL);
        free(err);
    }

    cJSON *own = load(out, "hardware_profile.json");
    snprintf(name, sizeof name, "allreduce_bandwidth_%s", sfx);
    cJSON *ar = load(out, name);
    snprintf(name, sizeof name, "p2p_bandwidth_%s", sfx);
    cJSON *p2p = load(out, name);
    snprintf(name, sizeof name, "sp_time_%s", sfx);
    cJSON *sp = load(out, name);
    cJSON *ov = load(out, "overlap_coefficient.json");
    if (!own || !ar || !p2p || !sp || !ov) goto done;

    CHECK(num(own, "world") == W);
    CHECK(num(own, "nodes") == 1);
    CHECK(num(own, "ranks_per_node") == W);

    /* Collectives: 4 ops for every (g, consec) of Galvatron's partition, sizes 16 KiB .. 1 MiB. */
    /* Timing relations are counted, not required one by one: a rank preempted by another process during
     * most repetitions of one point (a loaded 2-core machine) can invert a single comparison, but not
     * most of them. */
    int grow_ok = 0, grow_n = 0, close_ok = 0, close_n = 0;
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(own, "collectives");
    int layouts = 0;
    for (int g = W; g >= 2; g /= 2) layouts += g == W ? 1 : 2;
    CHECK(cJSON_GetArraySize(cs) == 4 * layouts);
    const cJSON *e;
    cJSON_ArrayForEach(e, cs) {
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op"));
        int g = (int)num(e, "group_size");
        CHECK(g >= 2 && g <= W && (g & (g - 1)) == 0);
        CHECK(num(e, "groups") == W / g);
        gv_coll_op k = GV_COLL_COUNT;
        for (int i = 0; i < GV_COLL_COUNT; i++)
            if (op && !strcmp(op, gv_coll_op_name((gv_coll_op)i))) k = (gv_coll_op)i;
        CHECK(k != GV_COLL_COUNT);
        const cJSON *pts = cJSON_GetObjectItemCaseSensitive(e, "points");
        CHECK(cJSON_GetArraySize(pts) == 7); /* min, 2 min, ... 64 min */
        double expect_bytes = min_bytes, t_small = 0, t_large = 0;
        const cJSON *pt;
        cJSON_ArrayForEach(pt, pts) {
            double bytes = num(pt, "bytes"), t = num(pt, "time_ms"), alg = num(pt, "algbw_gbps");
            double bus = num(pt, "busbw_gbps");
            CHECK(bytes == expect_bytes);
            expect_bytes *= 2;
            CHECK_CLOSE(alg, bytes / (t * 1e-3) / 1e9, 1e-9, 0);
            CHECK_CLOSE(bus, alg * gv_coll_busbw_factor(k, g), 1e-9, 0);
            if (bytes == min_bytes) t_small = t;
            if (bytes == max_bytes) t_large = t;
        }
        /* 64 times the data should take longer than the smallest message. */
        grow_ok += t_large > t_small;
        grow_n++;
    }
    /* Galvatron's all-reduce file: bus bandwidth at the largest size, in MB/ms; consec_0 except for the
     * whole world. */
    int nkeys = 0;
    for (int g = W; g >= 2; g /= 2)
        for (int c = 1; c >= 0; c--) {
            if (g == W && !c) continue;
            char key[64];
            snprintf(key, sizeof key, "allreduce_size_%d_consec_%d", g, c);
            double v = num(ar, key);
            /* find the project's point */
            double bus = NAN;
            cJSON_ArrayForEach(e, cs) {
                if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op")), "allreduce") ||
                    num(e, "group_size") != g ||
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "consecutive")) != c)
                    continue;
                const cJSON *pts = cJSON_GetObjectItemCaseSensitive(e, "points");
                bus = num(cJSON_GetArrayItem(pts, cJSON_GetArraySize(pts) - 1), "busbw_gbps");
            }
            CHECK_CLOSE(v, mb_per_ms(bus), 1e-9, 0);
            /* all-reduce and all-gather cross the same links: bus bandwidths within a factor of 20, as the
             * median ratio over the sweep's sizes (world 2 has one such pair, and one point of it alone
             * once measured 20x apart under load) */
            const cJSON *ar_pts = NULL, *ag_pts = NULL;
            cJSON_ArrayForEach(e, cs) {
                const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op"));
                if (num(e, "group_size") != g ||
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "consecutive")) != c)
                    continue;
                if (!strcmp(op, "allreduce")) ar_pts = cJSON_GetObjectItemCaseSensitive(e, "points");
                if (!strcmp(op, "allgather")) ag_pts = cJSON_GetObjectItemCaseSensitive(e, "points");
            }
            if (ar_pts && ag_pts && cJSON_GetArraySize(ar_pts) == cJSON_GetArraySize(ag_pts)) {
                int np = cJSON_GetArraySize(ar_pts);
                double r[16];
                for (int i = 0; i < np && i < 16; i++)
                    r[i] = num(cJSON_GetArrayItem(ar_pts, i), "busbw_gbps") /
                           num(cJSON_GetArrayItem(ag_pts, i), "busbw_gbps");
                if (np > 16) np = 16;
                for (int i = 1; i < np; i++) /* insertion sort: 7 values */
                    for (int j = i; j > 0 && r[j] < r[j - 1]; j--) {
                        double t = r[j];
                        r[j] = r[j - 1], r[j - 1] = t;
                    }
                double med = r[np / 2];
                close_ok += med < 20 && med > 1.0 / 20;
                close_n++;
            }
            nkeys++;
        }
    CHECK(cJSON_GetArraySize(ar) == nkeys);

    /* p2p: pp = 2 .. W, Galvatron's value = the project's in MB/ms. */
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(own, "p2p");
    int np = 0;
    for (int pp = 2; pp <= W; pp *= 2) {
        char key[32];
        snprintf(key, sizeof key, "pp_size_%d", pp);
        double v = num(p2p, key);
        const cJSON *q = cJSON_GetArrayItem(pj, np++);
        CHECK(q && num(q, "pp") == pp);
        if (q) {
            CHECK_CLOSE(v, mb_per_ms(num(q, "bw_gbps")), 1e-9, 0);
            CHECK_CLOSE(num(q, "bw_gbps"), num(q, "bytes") / (num(q, "time_ms") * 1e-3) / 1e9, 1e-9, 0);
        }
    }
    CHECK(cJSON_GetArraySize(p2p) == np);

    /* sp_time: every group size W .. 2, 1 .. sp_max MB, all-reduce and all2all; the largest slower than
     * 1 MB. */
    int nsp = 0;
    for (int g = W; g >= 2; g /= 2) {
        for (int pass = 0; pass < 2; pass++) {
            double t1 = 0, t8 = 0;
            for (int mb = 1; mb <= sp_max; mb *= 2) {
                char key[64];
                snprintf(key, sizeof key, "%s_size_%d_%dMB_time", pass ? "all2all" : "allreduce", g, mb);
                double v = num(sp, key);
                if (mb == 1) t1 = v;
                if (mb == sp_max) t8 = v;
                nsp++;
            }
            grow_ok += t8 > t1;
            grow_n++;
        }
    }
    CHECK(cJSON_GetArraySize(sp) == nsp);

    if (2 * grow_ok <= grow_n || 2 * close_ok <= close_n) {
        fprintf(stderr,
                "world %d: larger messages slower in %d of %d cases, all-reduce and all-gather busbw "
                "within 20x (median over sizes) in %d of %d\n",
                W, grow_ok, grow_n, close_ok, close_n);
        gv_test_failures++;
    }

    /* Matmul and overlap. */
    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(own, "matmul");
    CHECK(num(mm, "n") == mm_n);
    CHECK_CLOSE(num(mm, "gflops_per_rank") * num(mm, "time_ms") * 1e6, 2.0 * mm_n * mm_n * mm_n, 1e-9, 0);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(own, "overlap");
    double cd = num(o, "comm_delay"), pd = num(o, "comp_delay"), coe = num(ov, "overlap_coe");
    CHECK_CLOSE(cd, num(o, "allreduce_overlapped_ms") / num(o, "allreduce_alone_ms"), 1e-9, 0);
    CHECK_CLOSE(pd, num(o, "matmul_overlapped_ms") / num(o, "matmul_alone_ms"), 1e-9, 0);
    CHECK(coe >= 1.0);
    CHECK_CLOSE(coe, fmax(1.0, fmax(cd, pd)), 1e-12, 0);
    CHECK_CLOSE(num(o, "overlap_coe"), coe, 1e-12, 0);

done:
    cJSON_Delete(own);
    cJSON_Delete(ar);
    cJSON_Delete(p2p);
    cJSON_Delete(sp);
    cJSON_Delete(ov);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* --sp-max-mb 0: no tables asked for, so no sp_time file; the other four files still written. */
static void check_no_sp_tables(void) {
    char dir[] = "/tmp/gv-prof-hw0.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char cmd[1024], path[600];
    snprintf(cmd, sizeof cmd,
             "%s/galvatron profile hardware -n 2 -o %s --sp-max-mb 0 --min-size 16K --max-size 64K --iters 2 "
             "--matmul-n 128 > /dev/null 2>&1",
             GV_BINARY_DIR, dir);
    CHECK(system(cmd) == 0);
    snprintf(path, sizeof path, "%s/sp_time_1nodes_2gpus_per_node.json", dir);
    CHECK(access(path, F_OK) != 0);
    const char *names[4] = {"hardware_profile.json", "allreduce_bandwidth_1nodes_2gpus_per_node.json",
                            "p2p_bandwidth_1nodes_2gpus_per_node.json", "overlap_coefficient.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(access(path, R_OK) == 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    check_world(2, 0);
    check_world(4, 1);
    check_no_sp_tables();
    return gv_test_result("test_profile_hardware");
}
