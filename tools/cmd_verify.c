/* `galvatron verify`: trains a few steps under a plan and under the single-process reference (same seed,
 * weights and data order: the runtime's initialisation and batches do not depend on the plan) and compares
 * the losses, the gradient norms and the final weights. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/plan.h"
#include "gv/safetensors.h"
#include "gv/train.h"

static const char *gv_usage_verify =
    "usage: galvatron verify --plan PLAN.json [--model PRESET|FILE] -n RANKS [options]\n"
    "\n"
    "Checks that a plan computes what one process computes: trains --steps steps under the plan on RANKS\n"
    "ranks and the same steps in one process, then compares every step's loss and gradient norm and the\n"
    "final weights. Exits 1 when a loss differs by more than --tol (relative) or the weights by more than\n"
    "10 x --tol (relative L2 over all tensors).\n"
    "\n"
    "  --model PRESET|FILE   [gpt2-tiny]\n"
    "  --layers N            override the model's number of layers\n"
    "  --seq T               sequence length [64]\n"
    "  --steps N             steps [5]\n"
    "  --data PATH           as for train [builtin]\n"
    "  --seed S              [1337]\n"
    "  --tol X               relative tolerance of the losses [1e-5]\n"
    "  -n RANKS              ranks of the plan (started through mpirun) [the plan's world]\n"
    "\n"
    "example:\n"
    "  galvatron verify --plan examples/plans/galvatron_config_example.json --layers 4 -n 8\n";

typedef struct {
    double norms[1024];
    int n;
} gv_norms;

static void gv_keep_norm(const gv_step_info *i, void *ctx) {
    gv_norms *k = ctx;
    if (k->n < 1024) k->norms[k->n++] = i->grad_norm;
}

static int gv_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static gv_comm *gv_vworld;
static _Noreturn void gv_verify_die(const char *msg) {
    if (gv_vworld && gv_comm_size(gv_vworld) > 1) gv_launch_die(gv_vworld, 1, "%s", msg);
    fprintf(stderr, "galvatron verify: %s\n", msg);
    exit(1);
}

int gv_cmd_verify(int argc, char **argv, int argc_all, char **argv_all) {
    const char *model = "gpt2-tiny", *plan_file = NULL, *data = NULL;
    int layers = 0, seq = 64, steps = 5, nranks = 0;
    unsigned long long seed = 1337;
    double tol = 1e-5;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(gv_usage_verify, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "galvatron verify: option '%s' needs a value (see galvatron verify --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        int num = *v && !*end && !errno && x > 0;
        if (!strcmp(a, "--plan"))
            plan_file = v;
        else if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--tol") && num)
            tol = x;
        else if (!strcmp(a, "--seed") && (num || !strcmp(v, "0")))
            seed = strtoull(v, NULL, 10);
        else if ((!strcmp(a, "--layers") || !strcmp(a, "--seq") || !strcmp(a, "--steps") ||
                  !strcmp(a, "-n")) &&
                 num && x == (int)x && x <= 1e6)
            *(!strcmp(a, "--layers")  ? &layers
              : !strcmp(a, "--seq")   ? &seq
              : !strcmp(a, "--steps") ? &steps
                                      : &nranks) = (int)x;
        else if (!strcmp(a, "--tol") || !strcmp(a, "--seed") || !strcmp(a, "--layers") ||
                 !strcmp(a, "--seq") || !strcmp(a, "--steps") || !strcmp(a, "-n")) {
            fprintf(stderr, "galvatron verify: %s '%s': expected a positive %s\n", a, v,
                    !strcmp(a, "--tol") ? "number" : "integer");
            return 2;
        } else {
            fprintf(stderr, "galvatron verify: unknown option '%s' (see galvatron verify --help)\n", a);
            return 2;
        }
    }
    if (!plan_file) {
        fprintf(stderr, "galvatron verify: needs --plan PLAN.json\n");
        return 2;
    }
    if (steps > 1024) steps = 1024;
    gv_train_config c;
    gv_train_config_defaults(&c);
    if (gv_model_spec_resolve(&c.spec, model) != GV_OK) gv_verify_die(gv_last_error());
    if (layers) c.spec.n_layer = layers;
    c.steps = steps, c.seq = seq, c.data = data, c.seed = seed;
    c.warmup = steps > 1 ? 1 : 0, c.eval_every = 0;
    if (!nranks && gv_launch_is_rank()) nranks = gv_launch_env_size();
    gv_plan plan;
    if (gv_plan_load(&plan, plan_file, c.spec.n_layer, nranks) != GV_OK) gv_verify_die(gv_last_error());
    if (!nranks) nranks = plan.world;
    if (gv_plan_validate(&plan, &c.spec, seq, plan_file) != GV_OK ||
        gv_train_config_from_plan(&c, &plan, plan_file) != GV_OK)
        gv_verify_die(gv_last_error());
    if (nranks > 1 && !gv_launch_is_rank()) {
        c.world = nranks;
        if (gv_train_config_validate(&c) != GV_OK) gv_verify_die(gv_last_error());
        gv_launch_exec(nranks, argc_all, argv_all);
        gv_verify_die(gv_last_error());
    }
    if (nranks > 1 && gv_comm_init_world(&gv_vworld, NULL) != GV_OK) gv_verify_die(gv_last_error());
    int rank = gv_vworld ? gv_comm_rank(gv_vworld) : 0;
    /* Scratch checkpoints under one directory that rank 0 names. */
    char dir[256] = "";
    if (rank == 0 && !mkdtemp(strcpy(dir, "/tmp/galvatron-verify.XXXXXX")))
        gv_verify_die("cannot create a scratch directory in /tmp");
    if (gv_vworld && gv_comm_broadcast(gv_vworld, dir, sizeof dir, GV_COMM_U8, 0) != GV_OK)
        gv_verify_die(gv_last_error());
    char out_plan[300], out_ref[300];
    snprintf(out_plan, sizeof out_plan, "%s/plan", dir);
    snprintf(out_ref, sizeof out_ref, "%s/single", dir);

    gv_norms np = {0}, nr = {0};
    gv_train_result rp = {0}, rr = {0};
    c.comm = gv_vworld;
    c.out_dir = out_plan;
    c.on_step = gv_keep_norm, c.ctx = &np;
    if (rank == 0)
        fprintf(stderr, "galvatron verify: %d steps under %s on %d ranks\n", steps, plan_file, nranks);
    if (gv_train_run(&c, &rp) != GV_OK) gv_verify_die(gv_last_error());
    int fail = 0;
    if (rank == 0) {
        gv_train_config r = c;
        r.comm = NULL, r.world = 1, r.plan = NULL, r.tp = 1, r.pp = 1, r.zero = 0, r.ckpt = 0;
        r.out_dir = out_ref;
        r.ctx = &nr;
        fprintf(stderr, "galvatron verify: the same steps in one process\n");
        if (gv_train_run(&r, &rr) != GV_OK) gv_verify_die(gv_last_error());
        printf("%-5s %14s %14s %10s %12s %12s %10s\n", "step", "loss (plan)", "loss (single)", "rel diff",
               "norm (plan)", "norm (1)", "rel diff");
        double worst = 0;
        for (int s = 0; s < rp.steps_done && s < rr.steps_done; s++) {
            double d = fabs(rp.losses[s] - rr.losses[s]) / fabs(rr.losses[s]);
            double dn = nr.norms[s] > 0 ? fabs(np.norms[s] - nr.norms[s]) / nr.norms[s] : 0;
            worst = fmax(worst, d);
            printf("%-5d %14.8f %14.8f %10.2e %12.6f %12.6f %10.2e\n", s + 1, rp.losses[s], rr.losses[s], d,
                   np.norms[s], nr.norms[s], dn);
        }
        char a[400], b[400], name[96] = "";
        snprintf(a, sizeof a, "%s/step-%06d/model.safetensors", out_plan, steps);
        snprintf(b, sizeof b, "%s/step-%06d/model.safetensors", out_ref, steps);
        double g = INFINITY, w = INFINITY;
        if (gv_st_diff(a, b, &g, &w, name) != GV_OK) gv_verify_die(gv_last_error());
        printf("final weights: relative L2 difference %.2e (largest per tensor %.2e, %s)\n", g, w, name);
        fail = !(worst <= tol) || !(g <= 10 * tol) || rp.steps_done != rr.steps_done;
        printf("%s: losses within %.1e %s, weights within %.1e %s\n", fail ? "FAIL" : "PASS", tol,
               worst <= tol ? "yes" : "no", 10 * tol, g <= 10 * tol ? "yes" : "no");
        nftw(dir, gv_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(rp.losses);
    free(rr.losses);
    gv_plan_free(&plan);
    if (gv_vworld && gv_comm_broadcast(gv_vworld, &fail, 1, GV_COMM_I32, 0) != GV_OK)
        gv_verify_die(gv_last_error());
    gv_comm_free(gv_vworld);
    return fail;
}
