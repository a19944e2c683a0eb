/* --plan auto: profiles (measured once per fingerprint), search, plan and prediction to every rank. */
#include "gv/autoplan.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/comm.h"
#include "gv/hybrid.h"
#include "gv/log.h"
#include "gv/profiler.h"
#include "gv/search.h"

/* FNV-1a over what the profiles depend on: the machine (CPU model, cores, backend), the job (ranks) and
 * the model's shape at this sequence length. */
static uint64_t gv_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t gv_fingerprint(const gv_model_spec *s, int world, int seq, const char *backend) {
    char cpu[256] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    for (char line[512]; f && fgets(line, sizeof line, f);)
        if (!strncmp(line, "model name", 10)) {
            memcpy(cpu, line, sizeof cpu - 1); /* enough to tell machines apart */
            break;
        }
    if (f) fclose(f);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int shape[12] = {(int)s->arch, s->n_layer,      s->n_embd,    s->n_head,   s->n_kv_head, s->ffn,
                     s->vocab,     s->padded_vocab, (int)s->norm, (int)s->act, world,        seq};
    uint64_t h = 1469598103934665603ull;
    h = gv_fnv(h, cpu, strlen(cpu));
    h = gv_fnv(h, &cores, sizeof cores);
    h = gv_fnv(h, backend, strlen(backend));
    h = gv_fnv(h, shape, sizeof shape);
    /* bump when the profiler's output changes (v2: recompute time points, optimizer step); a model with
     * several layer types adds v3 (per-type profiles: earlier t5 profiles had one mean type) */
    h = gv_fnv(h, "profiles v2", 11);
    if (gv_model_spec_layer_types(s, NULL, NULL) > 1) h = gv_fnv(h, "layer types v3", 14);
    return h;
}

static gv_status gv_mkdirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        int end = *p == '\0';
        if (*p == '/' || end) {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return gv_fail(GV_ERR_IO, "%s: cannot create the profile directory: %s", buf,
                               strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
    return GV_OK;
}

static void gv_default_dir(char *out, size_t n, const gv_model_spec *s, int world, uint64_t fp) {
    const char *c = getenv("GV_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[700];
    if (c && *c)
        snprintf(base, sizeof base, "%s", c);
    else if (x && *x)
        snprintf(base, sizeof base, "%s/galvatron", x);
    else
        snprintf(base, sizeof base, "%s/.cache/galvatron", home && *home ? home : "/tmp");
    snprintf(out, n, "%s/profiles/%s-%dr-%016llx", base, s->name, world, (unsigned long long)fp);
}

/* Whether dir holds every file the search reads for this model and world. */
static int gv_have_profiles(const char *dir, const gv_model_spec *s, int world, const char *prec) {
    const char *fmt[6] = {"%s/allreduce_bandwidth_1nodes_%dgpus_per_node.json",
                          "%s/p2p_bandwidth_1nodes_%dgpus_per_node.json",
                          "%s/sp_time_1nodes_%dgpus_per_node.json",
                          "%s/overlap_coefficient.json",
                          "%s/computation_profiling_%s_%s_all.json",
                          "%s/memory_profiling_%s_%s_all.json"};
    for (int k = 0; k < 6; k++) {
        char p[1400];
        if (k < 3)
            snprintf(p, sizeof p, fmt[k], dir, world);
        else if (k == 3)
            snprintf(p, sizeof p, fmt[k], dir);
        else
            snprintf(p, sizeof p, fmt[k], dir, prec, s->name);
        if (access(p, R_OK) != 0) return 0;
    }
    return 1;
}

/* Measures both profiles into dir (collective). */
static gv_status gv_measure(gv_comm *world, gv_backend *be, const gv_model_spec *spec, int seq,
                            const char *dir) {
    int W = gv_comm_size(world), rank = gv_comm_rank(world);
    gv_hw_prof_config hc;
    gv_hw_prof_config_defaults(&hc);
    hc.backend_name = gv_backend_name(be);
    gv_hw_prof hw;
    if (rank == 0) gv_info("plan auto: profiling the hardware of %d ranks into %s", W, dir);
    GV_TRY(gv_hw_prof_run(&hw, world, be, &hc));
    gv_status st = rank == 0 ? gv_hw_prof_save(&hw, dir) : GV_OK;
    gv_hw_prof_free(&hw);
    GV_TRY(st);

    gv_model_prof_config mc;
    gv_model_prof_config_defaults(&mc);
    mc.spec = *spec;
    int tps[16], ntp = 0, seqs[1] = {seq}, batches[3] = {1, 2, 4};
    gv_sp_mode sps[1] = {
        GV_SP_MEGATRON}; /* the cost model reads Galvatron's sequence-parallel ("_sp") keys */
    for (int t = 1; t <= W && ntp < 16; t *= 2)
        if (spec->n_head % t == 0 && spec->n_kv_head % t == 0 && spec->ffn % t == 0 && seq % t == 0)
            tps[ntp++] = t;
    mc.seqs = seqs, mc.nseq = 1, mc.tps = tps, mc.ntp = ntp, mc.sps = sps, mc.nsps = 1;
    mc.batches = batches, mc.nbatch = 3;
    mc.mem_batch = (8 + W - 1) / W * W;
    /* One layer of a small model is close to the timer's noise on a loaded machine: difference 1 and 3
     * layers, over more iterations than the profiler's default. */
    mc.layers_max = 3; /* of each layer type (t5: encoder and decoder) */
    mc.iters = 7;
    GV_TRY(gv_model_prof_config_check(&mc, W));
    if (rank == 0)
        gv_info("plan auto: profiling %s at sequence %d (tp up to %d) into %s", spec->name, seq, tps[ntp - 1],
                dir);
    gv_model_prof mp;
    GV_TRY(gv_model_prof_run(&mp, world, be, &mc));
    st = rank == 0 ? gv_model_prof_save(&mp, dir) : GV_OK;
    gv_model_prof_free(&mp);
    return st;
}

/* Search on rank 0 from the profiles in dir. */
static gv_status gv_search_dir(const gv_model_spec *spec, gv_backend *be, const gv_autoplan_opts *o, int W,
                               int fp32, int nccl, FILE *report, gv_autoplan_result *out) {
    static gv_cost_env env; /* large; env.cm points into it */
    gv_cost_opts co;
    gv_cost_opts_default(&co, o->mode, W, spec->n_embd, o->seq);
    gv_cost_opts_set_layers(&co, spec); /* with the layer types (t5: encoder, decoder) */
    co.mixed_precision = !fp32;
    GV_TRY(gv_hybrid_overlap_resolve(o->overlap, &co.overlap));
    GV_TRY(gv_hybrid_host_redist_resolve(o->host_redist, &co.host_redist));
    /* collectives run beside compute on nccl's comm stream; mpi's progress only inside MPI calls */
    co.overlap_grad_sync = co.overlap && nccl;
    co.spec = spec; /* memory as the runtime allocates it */
    co.backend = be;
    GV_TRY(gv_cost_env_load(&env, out->dir, spec->name, 1, W, &co, GV_PROFILE_STATIC, GV_PROFILE_STATIC));
    double gib = o->memory_gib;
    if (gib <= 0) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
        gib = 0.8 * (double)pages * (double)psz / W / (1024.0 * 1024 * 1024);
    }
    gv_search_opts so;
    gv_search_opts_default(&so, W, spec->n_layer, gib * 1024);
    so.settle_bsz = o->global_batch;
    so.settle_chunk = o->micro_batches;
    so.spec = spec;
    gv_search_result r;
    gv_status st = gv_search_run(&env.cm, &so, &r);
    if (st == GV_OK) st = gv_plan_validate(&r.plan, spec, o->seq, "plan auto: searched plan");
    if (st == GV_OK) st = gv_plan_copy(&out->plan, &r.plan);
    if (st == GV_OK) {
        out->predicted = r.cost;
        out->search_ms = r.ms;
    }
    if (st == GV_OK && report) {
        const gv_plan *p = &r.plan;
        fprintf(report,
                "plan auto: searched %d tasks in %.1f ms (budget %.2f GiB per rank, profiles in %s)\n",
                r.tasks, r.ms, gib, out->dir);
        fprintf(report, "plan auto: pp %d (%s), global batch %d in %d micro-batches; layers:", p->pp,
                p->schedule == GV_SCHED_GPIPE ? "gpipe" : "1f1b", p->global_batch, p->micro_batches);
        for (int i = 0; i < p->n_layer;) {
            int j = i;
            while (j < p->n_layer && !memcmp(&p->layers[j], &p->layers[i], sizeof p->layers[i])) j++;
            const gv_layer_strategy *l = &p->layers[i];
            fprintf(report, " %d-%d tp %d%s%s %s%s;", i, j - 1, l->tp, l->sp ? " sp " : "",
                    l->sp ? gv_sp_mode_name(l->sp) : "", gv_zero_name(l->zero), l->ckpt ? " ckpt" : "");
            i = j;
        }
        fprintf(report, " vocab tp %d %s\n", p->vocab.tp, gv_zero_name(p->vocab.zero));
        fprintf(report, "plan auto: predicted step %.3f ms, %.1f samples/s\n", r.cost.step_s * 1e3,
                r.cost.throughput);
    }
    gv_search_result_free(&r);
    return st;
}

gv_status gv_autoplan_run(gv_comm *world, gv_backend *be, const gv_model_spec *spec,
                          const gv_autoplan_opts *o, FILE *report, gv_autoplan_result *out) {
    memset(out, 0, sizeof *out);
    int W = world ? gv_comm_size(world) : 1, rank = world ? gv_comm_rank(world) : 0;
    if (W == 1) { /* nothing to distribute */
        gv_layer_strategy l = {1, GV_SP_NONE, 0, 0};
        GV_TRY(gv_plan_uniform(&out->plan, 1, 1, spec->n_layer, l, l, GV_SCHED_1F1B, o->global_batch,
                               o->micro_batches ? o->micro_batches : 1));
        if (report) fprintf(report, "plan auto: one rank, nothing to search (single-process plan)\n");
        return GV_OK;
    }
    int fp32 = gv_backend_dtype(be) == GV_F32;
    if (o->profile_dir)
        snprintf(out->dir, sizeof out->dir, "%s", o->profile_dir);
    else
        gv_default_dir(out->dir, sizeof out->dir, spec, W,
                       gv_fingerprint(spec, W, o->seq, gv_backend_name(be)));
    /* Rank 0 decides (its file system view) and says so to everyone; errors there are everyone's. */
    int flags[2] = {0, 0}; /* [0] status of rank 0's preparation, [1] profiles to measure */
    if (rank == 0) {
        gv_status st = gv_mkdirs(out->dir);
        flags[0] = st;
        flags[1] =
            st == GV_OK && (o->reprofile || !gv_have_profiles(out->dir, spec, W, fp32 ? "fp32" : "bf16"));
    }
    GV_TRY(gv_comm_broadcast(world, flags, 2, GV_COMM_I32, 0));
    if (flags[0] != GV_OK)
        return rank == 0 ? (gv_status)flags[0] : gv_fail((gv_status)flags[0], "rank 0 failed");
    if (flags[1]) {
        GV_TRY(gv_measure(world, be, spec, o->seq, out->dir));
        out->profiled = 1;
    } else if (rank == 0) {
        gv_info("plan auto: profiles of %s on %d ranks from %s", spec->name, W, out->dir);
    }
    int nccl = !strcmp(gv_comm_kind(world), "nccl");
    int st = rank == 0 ? gv_search_dir(spec, be, o, W, fp32, nccl, report, out) : GV_OK;
    GV_TRY(gv_comm_broadcast(world, &st, 1, GV_COMM_I32, 0));
    if (st != GV_OK) {
        gv_autoplan_result_free(out);
        return rank == 0 ? (gv_status)st : gv_fail((gv_status)st, "rank 0: the search failed");
    }
    GV_TRY(gv_plan_broadcast(&out->plan, world, 0));
    return gv_comm_broadcast(world, &out->predicted, sizeof out->predicted, GV_COMM_U8, 0);
}

void gv_autoplan_result_free(gv_autoplan_result *r) {
    gv_plan_free(&r->plan);
}
