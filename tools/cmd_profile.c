/* `galvatron profile hardware|model`: measures the machine or a model's layers and writes the project's
 * and Hetu-Galvatron's profile files. -n N relaunches through mpirun as `train` does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/backend.h"
#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/log.h"
#include "gv/model.h"
#include "gv/profiler.h"

int gv_cmd_profile(int argc, char **argv, int argc_all, char **argv_all);

static const char *gv_usage_profile =
    "usage: galvatron profile hardware [options]\n"
    "       galvatron profile model --model PRESET|FILE [options]\n"
    "\n"
    "hardware: bandwidth of all-reduce, all-gather, reduce-scatter and all-to-all for every group size\n"
    "(2, 4, ... N; consecutive and strided groups) over a range of sizes, p2p between pipeline neighbours,\n"
    "Galvatron's sp_time latency tables, matmul throughput and the compute/communication overlap\n"
    "coefficient. Writes hardware_profile.json, allreduce_bandwidth_*, p2p_bandwidth_*, sp_time_* and\n"
    "overlap_coefficient.json.\n"
    "  -n RANKS              ranks, a power of two >= 2; started through mpirun unless this process\n"
    "                        already is a rank of a job [2]\n"
    "  --min-size BYTES      smallest message of the bandwidth sweep (K/M suffixes) [64K]\n"
    "  --max-size BYTES      largest message; also the p2p and overlap message [4M]\n"
    "  --sp-max-mb MB        sp_time tables at 1, 2, 4, ... MB; 0 = no tables, no file (Galvatron's\n"
    "                        fits need 8 sizes: 128) [128]\n"
    "  --matmul-n N          [N,N] x [N,N] matmul for throughput and overlap [512]\n"
    "  --window-ms MS        matmul and overlap timings in windows of about MS milliseconds [20]\n"
    "\n"
    "model: per layer, forward and backward time per sample at every (seq, tp, batch) point and memory\n"
    "(parameters, activations per sample per tp degree and with recompute), from runs of the runtime at\n"
    "two layer counts. Writes model_profile.json, computation_profiling_<P>_<model>_all.json and\n"
    "memory_profiling_<P>_<model>_all.json (P = fp32 on cpu, bf16 on cuda).\n"
    "  --model PRESET|FILE   the model [gpt2-tiny]\n"
    "  --seq T,...           sequence lengths [min(128, max_seq)]\n"
    "  --tp T,...            degrees that split a layer over T consecutive ranks, including 1 [1, 2, ...\n"
    "                        up to RANKS, those that divide the heads, FFN and every seq]\n"
    "  --sp MODE,...         how a degree > 1 splits: megatron (TP with sequence parallelism, vocab\n"
    "                        split; Galvatron's _sp keys), none (TP alone, vocab whole and split;\n"
    "                        Galvatron's keys without _sp), ulysses (model_profile.json only) [megatron]\n"
    "  --batch B,...         micro-batch sizes of the time points [1,2,4]\n"
    "  --mem-batch B         global batch of the memory runs, a multiple of RANKS [8 rounded up]\n"
    "  --pp-memory 0|1       also the pipelined memory runs (pp 2 and 4 within RANKS, one layer per\n"
    "                        stage): the vocab layers' memory on the first and last stage [1]\n"
    "  --layers-min N        smaller layer count, of each layer type (t5: encoder and decoder; the runs\n"
    "                        are N of each, then one stack at --layers-max with the other at N) [1]\n"
    "  --layers-max N        larger layer count [2]\n"
    "  -n RANKS              ranks, a power of two [1]\n"
    "\n"
    "common:\n"
    "  -o DIR                output directory, created if missing [profiles]\n"
    "  --iters N             timed repetitions of every measurement (medians are reported) [5]\n"
    "  --warmup N            untimed repetitions first [1]\n"
    "  --backend cpu|cuda    compute backend [cpu]\n"
    "  --device N            GPU ordinal for --backend cuda [0]\n"
    "\n"
    "Progress lines go to stderr at info level (GV_LOG=warn silences them).\n"
    "example:\n"
    "  galvatron profile hardware -n 4 -o profiles\n"
    "  galvatron profile model --model gpt2-tiny --seq 64,128 --tp 1,2 -n 2 -o profiles\n";

static gv_comm *gv_pworld;

_Noreturn static void gv_pdie(const char *msg) {
    if (gv_pworld && gv_comm_size(gv_pworld) > 1) gv_launch_die(gv_pworld, 1, "%s", msg);
    fprintf(stderr, "galvatron: %s\n", msg);
    exit(1);
}

static int gv_pbad(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "galvatron profile: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 2;
}

/* Integer >= lo with an optional K/M/G suffix (powers of 1024) when `sized`; -1 on a bad value. */
static long long gv_pint(const char *v, long long lo, int sized) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v) return -1;
    if (sized && *end) {
        long long m = *end == 'K' || *end == 'k'   ? 1 << 10
                      : *end == 'M' || *end == 'm' ? 1 << 20
                      : *end == 'G' || *end == 'g' ? 1 << 30
                                                   : 0;
        if (!m) return -1;
        x *= m;
        end++;
    }
    if (*end || x < lo || x > (1ll << 40)) return -1;
    return x;
}

/* Comma list of positive integers into out[max]; returns the count or -1. */
static int gv_plist(const char *v, int *out, int max) {
    int n = 0;
    const char *p = v;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 1 || x > 1000000 || n == max || (*end && *end != ',')) return -1;
        out[n++] = (int)x;
        p = *end ? end + 1 : end;
        if (*end && !*p) return -1;
    }
    return n ? n : -1;
}

/* Comma list of split modes (none, megatron, ulysses), each at most once; returns 1 on a bad list. */
static int gv_psp(const char *v, gv_sp_mode *out, int *n) {
    static const char *names[3] = {"none", "megatron", "ulysses"};
    *n = 0;
    const char *p = v;
    while (*p) {
        size_t len = strcspn(p, ",");
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (len == strlen(names[i]) && !strncmp(p, names[i], len)) k = i;
        for (int i = 0; i < *n && k >= 0; i++)
            if ((int)out[i] == k) k = -1;
        if (k < 0 || *n == 3) return 1;
        out[(*n)++] = (gv_sp_mode)k;
        p += len;
        if (*p == ',' && !*++p) return 1;
    }
    return *n == 0;
}

static int gv_is_pow2(long long x) {
    return x > 0 && !(x & (x - 1));
}

/* mkdir -p, then a writability check: the one error a long profile must not discover at its end. */
static int gv_pdir(const char *dir, char *err, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            snprintf(err, n, "-o %s: cannot create directory %s: %s", dir, path, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        snprintf(err, n, "-o %s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, n, "-o %s: not a directory", dir);
        return -1;
    }
    if (access(path, W_OK) != 0) {
        snprintf(err, n, "-o %s: directory is not writable: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct {
    int hardware;
    int nranks; /* 0 = not given */
    const char *out, *backend, *model;
    int device, iters, warmup;
    gv_hw_prof_config hw;
    gv_sp_mode sps[3];
    int nsps;
    int pp_memory;
    int seqs[64], nseq, tps[16], ntp, ntp_given, batches[64], nbatch, mem_batch, lmin, lmax;
} gv_profile_args;

static int gv_profile_parse(gv_profile_args *a, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            fputs(gv_usage_profile, stdout);
            exit(0);
        }
        if (f[0] != '-') return gv_pbad("unexpected argument '%s'%s (see galvatron profile --help)", f, "");
        if (i + 1 >= argc) return gv_pbad("option '%s' needs a value%s", f, "");
        const char *v = argv[++i];
        long long x = 0;
        int hw_only = 0, model_only = 0, bad = 0;
        if (!strcmp(f, "-n")) {
            x = gv_pint(v, 1, 0);
            if (x < 0 || !gv_is_pow2(x))
                return gv_pbad("-n %s: expected a power of two (1, 2, 4, ...)%s", v, "");
            a->nranks = (int)x;
        } else if (!strcmp(f, "-o"))
            a->out = v;
        else if (!strcmp(f, "--backend"))
            a->backend = v;
        else if (!strcmp(f, "--device"))
            bad = (x = gv_pint(v, 0, 0)) < 0, a->device = (int)x;
        else if (!strcmp(f, "--iters"))
            bad = (x = gv_pint(v, 1, 0)) < 0, a->iters = (int)x;
        else if (!strcmp(f, "--warmup"))
            bad = (x = gv_pint(v, 0, 0)) < 0, a->warmup = (int)x;
        else if (!strcmp(f, "--min-size"))
            hw_only = 1, bad = !gv_is_pow2(x = gv_pint(v, 4, 1)), a->hw.min_bytes = (size_t)x;
        else if (!strcmp(f, "--max-size"))
            hw_only = 1, bad = !gv_is_pow2(x = gv_pint(v, 4, 1)), a->hw.max_bytes = (size_t)x;
        else if (!strcmp(f, "--sp-max-mb"))
            hw_only = 1, bad = (x = gv_pint(v, 0, 0)) < 0 || (x && !gv_is_pow2(x)), a->hw.sp_max_mb = (int)x;
        else if (!strcmp(f, "--window-ms"))
            hw_only = 1, bad = (x = gv_pint(v, 1, 0)) < 0, a->hw.window_ms = (double)x;
        else if (!strcmp(f, "--matmul-n"))
            hw_only = 1, bad = (x = gv_pint(v, 1, 0)) < 0, a->hw.matmul_n = (int)x;
        else if (!strcmp(f, "--model"))
            model_only = 1, a->model = v;
        else if (!strcmp(f, "--seq"))
            model_only = 1, bad = (a->nseq = gv_plist(v, a->seqs, 64)) < 0;
        else if (!strcmp(f, "--tp"))
            model_only = 1, bad = (a->ntp_given = gv_plist(v, a->tps, 16)) < 0;
        else if (!strcmp(f, "--sp"))
            model_only = 1, bad = gv_psp(v, a->sps, &a->nsps);
        else if (!strcmp(f, "--batch"))
            model_only = 1, bad = (a->nbatch = gv_plist(v, a->batches, 64)) < 0;
        else if (!strcmp(f, "--mem-batch"))
            model_only = 1, bad = (x = gv_pint(v, 1, 0)) < 0, a->mem_batch = (int)x;
        else if (!strcmp(f, "--pp-memory"))
            model_only = 1, bad = (x = gv_pint(v, 0, 0)) < 0 || x > 1, a->pp_memory = (int)x;
        else if (!strcmp(f, "--layers-min"))
            model_only = 1, bad = (x = gv_pint(v, 1, 0)) < 0, a->lmin = (int)x;
        else if (!strcmp(f, "--layers-max"))
            model_only = 1, bad = (x = gv_pint(v, 1, 0)) < 0, a->lmax = (int)x;
        else
            return gv_pbad("unknown option '%s' for profile %s (see galvatron profile --help)", f,
                           a->hardware ? "hardware" : "model");
        if ((hw_only && !a->hardware) || (model_only && a->hardware))
            return gv_pbad("option '%s' is not an option of profile %s (see galvatron profile --help)", f,
                           a->hardware ? "hardware" : "model");
        if (bad) {
            const char *want = !strcmp(f, "--min-size") || !strcmp(f, "--max-size")
                                   ? "expected a power of two of bytes >= 4 (K/M suffixes allowed)"
                               : !strcmp(f, "--sp-max-mb") ? "expected 0 or a power of two"
                               : !strcmp(f, "--sp") ? "expected a comma list of none, megatron, ulysses"
                               : !strcmp(f, "--pp-memory") ? "expected 0 or 1"
                               : !strcmp(f, "--seq") || !strcmp(f, "--tp") || !strcmp(f, "--batch")
                                   ? "expected a comma list of positive integers"
                                   : "expected a non-negative integer";
            fprintf(stderr, "galvatron profile: %s '%s': %s\n", f, v, want);
            return 2;
        }
    }
    return 0;
}

static void gv_profile_hardware(gv_profile_args *a, gv_backend *b) {
    gv_hw_prof p;
    if (gv_hw_prof_run(&p, gv_pworld, b, &a->hw) != GV_OK) gv_pdie(gv_last_error());
    if (gv_comm_rank(gv_pworld) == 0) {
        if (gv_hw_prof_save(&p, a->out) != GV_OK) gv_pdie(gv_last_error());
        printf(
            "hardware profile of %d ranks (%d node(s)) written to %s: hardware_profile.json, "
            "allreduce_bandwidth_%dnodes_%dgpus_per_node.json, p2p_bandwidth_*, %soverlap_coefficient.json "
            "(overlap_coe %.3f)\n",
            p.world, p.nodes, a->out, p.nodes, p.ranks_per_node, p.nsp ? "sp_time_*, " : "", p.overlap_coe);
    }
    gv_hw_prof_free(&p);
}

/* The model profile configuration for W ranks: defaults where the command line gave nothing. */
static void gv_model_config(gv_profile_args *a, const gv_model_spec *spec, int W, gv_model_prof_config *cp) {
    gv_model_prof_config c;
    gv_model_prof_config_defaults(&c);
    c.spec = *spec;
    a->ntp = a->ntp_given;
    if (!a->nseq) a->seqs[a->nseq++] = spec->max_seq < 128 ? spec->max_seq : 128;
    if (!a->ntp)
        for (int t = 1; t <= W; t *= 2) {
            int ok = spec->n_head % t == 0 && spec->n_kv_head % t == 0 && spec->ffn % t == 0;
            for (int k = 0; k < a->nseq; k++) ok = ok && a->seqs[k] % t == 0;
            if (ok) a->tps[a->ntp++] = t;
        }
    if (!a->nbatch) a->batches[0] = 1, a->batches[1] = 2, a->batches[2] = 4, a->nbatch = 3;
    c.seqs = a->seqs;
    c.nseq = a->nseq;
    c.tps = a->tps;
    c.ntp = a->ntp;
    if (!a->nsps) a->sps[0] = GV_SP_MEGATRON, a->nsps = 1;
    c.sps = a->sps;
    c.nsps = a->nsps;
    c.batches = a->batches;
    c.nbatch = a->nbatch;
    c.mem_batch = a->mem_batch ? a->mem_batch : (8 + W - 1) / W * W;
    c.pp_memory = a->pp_memory;
    if (a->lmin) c.layers_min = a->lmin;
    if (a->lmax) c.layers_max = a->lmax;
    c.iters = a->iters;
    c.warmup = a->warmup;
    *cp = c;
}

static void gv_profile_model(gv_profile_args *a, gv_backend *b, const gv_model_spec *spec) {
    gv_model_prof_config c;
    gv_model_config(a, spec, gv_comm_size(gv_pworld), &c);
    gv_model_prof p;
    if (gv_model_prof_run(&p, gv_pworld, b, &c) != GV_OK) gv_pdie(gv_last_error());
    if (gv_comm_rank(gv_pworld) == 0) {
        if (gv_model_prof_save(&p, a->out) != GV_OK) gv_pdie(gv_last_error());
        printf("model profile of %s (%d time points, %d memory configurations) written to %s: "
               "model_profile.json, computation_profiling_%s_%s_all.json, memory_profiling_%s_%s_all.json\n",
               p.model, p.ntime, p.nmem, a->out, p.precision, p.model, p.precision, p.model);
    }
    gv_model_prof_free(&p);
}

int gv_cmd_profile(int argc, char **argv, int argc_all, char **argv_all) {
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        fputs(gv_usage_profile, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    gv_profile_args a;
    memset(&a, 0, sizeof a);
    if (!strcmp(argv[0], "hardware"))
        a.hardware = 1;
    else if (strcmp(argv[0], "model")) {
        fprintf(stderr, "galvatron profile: unknown subcommand '%s' (expected hardware or model)\n", argv[0]);
        return 2;
    }
    gv_hw_prof_config_defaults(&a.hw);
    a.out = "profiles";
    a.backend = "cpu";
    a.model = "gpt2-tiny";
    a.iters = 5;
    a.warmup = 1;
    a.pp_memory = 1;
    int rc = gv_profile_parse(&a, argc, argv);
    if (rc) return rc;
    if (a.hardware && a.hw.min_bytes > a.hw.max_bytes) {
        fprintf(stderr, "galvatron profile: --min-size %zu is larger than --max-size %zu\n", a.hw.min_bytes,
                a.hw.max_bytes);
        return 2;
    }
    int is_rank = gv_launch_is_rank();
    int n = a.nranks ? a.nranks : is_rank ? gv_launch_env_size() : a.hardware ? 2 : 1;
    if (a.hardware && n < 2) {
        fprintf(stderr, "galvatron profile: -n %d: profile hardware needs at least 2 ranks\n", n);
        return 2;
    }
    a.hw.iters = a.iters;
    a.hw.warmup = a.warmup;
    a.hw.backend_name = a.backend;
    gv_model_spec spec;
    if (!a.hardware) {
        if (gv_model_spec_resolve(&spec, a.model) != GV_OK) gv_pdie(gv_last_error());
        if (a.lmin && a.lmax && a.lmin >= a.lmax) {
            fprintf(stderr, "galvatron profile: --layers-min %d must be smaller than --layers-max %d\n",
                    a.lmin, a.lmax);
            return 2;
        }
    }
    /* An impossible configuration is refused here, once, instead of on every rank after the launch. */
    gv_status cst;
    if (a.hardware) {
        cst = gv_hw_prof_config_check(&a.hw, n);
    } else {
        gv_model_prof_config c;
        gv_model_config(&a, &spec, n, &c);
        cst = gv_model_prof_config_check(&c, n);
    }
    if (cst != GV_OK) {
        fprintf(stderr, "galvatron profile: %s\n", gv_last_error());
        return 2;
    }
    char err[4200];
    if (!is_rank) {
        if (gv_pdir(a.out, err, sizeof err)) {
            fprintf(stderr, "galvatron profile: %s\n", err);
            return 1;
        }
        if (n > 1) {
            /* Ranks on one machine share its cores: each rank's OpenMP team gets its share. */
            long cores = sysconf(_SC_NPROCESSORS_ONLN);
            char nt[24];
            snprintf(nt, sizeof nt, "%ld", cores / n > 1 ? cores / n : 1);
            setenv("OMP_NUM_THREADS", nt, 0);
            gv_launch_exec(n, argc_all, argv_all); /* returns only on failure */
            gv_pdie(gv_last_error());
        }
    }
    if (gv_comm_init_world(&gv_pworld, NULL) != GV_OK) gv_pdie(gv_last_error());
    int size = gv_comm_size(gv_pworld);
    if (a.nranks && size != a.nranks)
        gv_launch_die(gv_pworld, 1, "-n %d: the job has %d ranks (start it with as many ranks as -n says)",
                      a.nranks, size);
    if (gv_comm_rank(gv_pworld) == 0 && is_rank && gv_pdir(a.out, err, sizeof err)) gv_pdie(err);
    if (gv_comm_rank(gv_pworld) != 0 && gv_log_get_level() < GV_LOG_WARN) gv_log_set_level(GV_LOG_WARN);
    gv_backend *b = NULL;
    if (gv_backend_init(&b, a.backend, a.device) != GV_OK) gv_pdie(gv_last_error());
    if (a.hardware)
        gv_profile_hardware(&a, b);
    else
        gv_profile_model(&a, b, &spec);
    gv_backend_free(b);
    gv_comm_free(gv_pworld);
    return 0;
}
