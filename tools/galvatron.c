/* The `galvatron` command line: the only place that prints errors and exits. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/backend.h"
#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/log.h"
#include "gv/model.h"
#include "gv/plan.h"
#include "gv/hybrid.h"
#include "gv/train.h"
#include "gv/autoplan.h"

int gv_cmd_search(int argc, char **argv);                                 /* tools/cmd_search.c */
int gv_cmd_explain(int argc, char **argv);                                /* tools/cmd_explain.c */
int gv_cmd_verify(int argc, char **argv, int argc_all, char **argv_all);  /* tools/cmd_verify.c */
int gv_cmd_profile(int argc, char **argv, int argc_all, char **argv_all); /* tools/cmd_profile.c */

static const char *gv_usage_main =
    "usage: galvatron <command> [options]\n"
    "\n"
    "Automatic hybrid-parallel training of Transformer models.\n"
    "\n"
    "commands:\n"
    "  train     train a model (built-in default: gpt2-tiny on the built-in synthetic language)\n"
    "  models    list the model presets\n"
    "  plan      check a plan file (galvatron_config or the project's JSON) against a model\n"
    "  search    find the fastest plan that fits in memory, from profile files\n"
    "  explain   predicted time, memory per rank and pipeline timeline of a plan (text, HTML, trace)\n"
    "  verify    train a few steps under a plan and in one process, compare losses and weights\n"
    "  profile   measure the hardware (profile hardware) or a model's layers (profile model)\n"
    "\n"
    "Run 'galvatron <command> --help' for the options of a command.\n";

static const char *gv_usage_train =
    "usage: galvatron train [options]\n"
    "\n"
    "model and data:\n"
    "  --model PRESET|FILE   preset name (see 'galvatron models') or a JSON model file [gpt2-tiny]\n"
    "  --layers N            override the preset's number of layers\n"
    "  --data PATH           builtin (default: a generated language), an llm.c .bin token shard,\n"
    "                        or any other file read as bytes\n"
    "  --init-from FILE      initial weights from a safetensors file with Hugging Face names\n"
    "                        (GPT-2 or LLaMA)\n"
    "  --seq T               sequence length [64, at most the model's max_seq; vit: its max_seq]\n"
    "\n"
    "optimization:\n"
    "  --steps N             optimizer steps [300]\n"
    "  --global-batch B      sequences per step [8]\n"
    "  --micro-batches M     gradient accumulation: B/M sequences per forward/backward [1]\n"
    "  --lr X                peak learning rate [3e-3]\n"
    "  --min-lr-frac X       final learning rate as a fraction of the peak (cosine decay) [0.1]\n"
    "  --warmup N            linear warmup steps [20]\n"
    "  --weight-decay X      AdamW weight decay on matrices [0.1]\n"
    "  --grad-clip X         clip the global gradient norm to X, 0 = off [1.0]\n"
    "  --seed S              seed of the initial weights and of the data order [1337]\n"
    "\n"
    "parallelism:\n"
    "  --plan auto           profile the hardware and the model on these ranks (cached by a fingerprint of\n"
    "                        both), search the fastest plan that fits --memory, train with it and report\n"
    "                        measured vs predicted step time and memory\n"
    "  --memory GIB          memory budget per rank for --plan auto [80% of this machine's / ranks]\n"
    "  --profile-dir DIR     where --plan auto keeps the profiles [~/.cache/galvatron/profiles/...]\n"
    "  --reprofile           measure again even when the profiles exist\n"
    "  --cost-model own|galvatron  cost model of --plan auto [own]\n"
    "  --plan FILE           a layer-wise plan: Hetu-Galvatron's galvatron_config or the project's JSON\n"
    "                        form (see 'galvatron plan check'): per-layer tp / sp / ZeRO / recompute, the\n"
    "                        vocab layers' strategy, pipeline stages and schedule, batch and micro-batches;\n"
    "                        -n comes from its world size. Replaces the GLOBAL-mode flags below\n"
    "  -n RANKS              ranks; started through mpirun unless this process already is a rank of an\n"
    "                        MPI or Slurm job [1]. Data-parallel degree = RANKS / tp\n"
    "  --tp T                Megatron tensor parallelism over T consecutive ranks (heads and FFN split) [1]\n"
    "  --vocab-tp T          1, or the same T as --tp: also split the embedding, LM head and loss [1]\n"
    "  --pp P                pipeline stages over RANKS/P ranks each (layers split evenly, earlier stages\n"
    "                        take the extra ones); each stage runs the strategy above [1]\n"
    "  --overlap on|off      communication overlapped with compute: gradient sums start during the last\n"
    "                        backward, ZeRO-3 prefetches the next layer and reduces a layer's gradients\n"
    "                        during the next one's backward, pipeline messages are nonblocking (receives\n"
    "                        posted early; device tensors across stage cuts without a layout change); off\n"
    "                        waits for each where it is issued, pipeline messages blocking through host\n"
    "                        staging (same results) [on; $GV_OVERLAP]\n"
    "  --schedule gpipe|1f1b pipeline schedule over the micro-batches: GPipe keeps all of them in flight,\n"
    "                        1F1B at most pp - stage [1f1b]\n"
    "  --sp none|megatron|ulysses\n"
    "                        megatron: with --tp, norms and the residual stream are split\n"
    "                        over the sequence (all-gather / reduce-scatter around the parallel linears);\n"
    "                        ulysses: the --tp group shards the sequence instead, with all-to-alls around\n"
    "                        attention (heads split there) [none]\n"
    "  --dp-type ddp|zero1|zero2|zero3\n"
    "                        gradient all-reduce with replicated optimizer; ZeRO-1 (optimizer state and\n"
    "                        master weights sharded over the data-parallel ranks); ZeRO-2 (gradients also\n"
    "                        reduce-scattered); ZeRO-3 (parameters sharded too, each layer gathered just\n"
    "                        before use and its gradients reduce-scattered right after) [ddp]\n"
    "  --ckpt                activation recompute: keep only each layer's output, recompute the rest in\n"
    "                        backward\n"
    "\n"
    "run:\n"
    "  --backend cpu|cuda    compute backend [cpu]\n"
    "  --device N            GPU ordinal for --backend cuda [0] (with --comm nccl: each rank's own GPU,\n"
    "                        by its rank on the host, or $GV_DEVICE)\n"
    "  --comm mpi|nccl|auto  communicator of a multi-rank run: mpi moves host buffers (device data staged\n"
    "                        through the host; several ranks may share one GPU), nccl moves device\n"
    "                        buffers (--backend cuda, one GPU per rank); auto = nccl when it is built,\n"
    "                        the backend is cuda and every rank of the host has a GPU of its own, else\n"
    "                        mpi [auto]\n"
    "  --rendezvous DIR      nccl without MPI: the ranks are started by hand or by another launcher and\n"
    "                        exchange NCCL ids through files in DIR (shared, fresh per job); needs\n"
    "                        --rank and --world-size (or $GV_RANK, $GV_WORLD_SIZE) and implies --comm nccl\n"
    "  --rank R, --world-size W\n"
    "                        this process's rank and the rank count with --rendezvous\n"
    "  --eval-every N        eval loss every N steps and at the end, 0 = never [50]\n"
    "  --eval-batches N      global batches per eval [4]\n"
    "  --metrics FILE.jsonl  one JSON object per step (step, loss, lr, grad_norm, step_ms, tokens_per_s)\n"
    "  --out DIR             write checkpoints to DIR/step-NNNNNN/ (at the end, and every --save-every)\n"
    "  --save-every N        checkpoint every N steps\n"
    "  --resume CKPT         continue from a checkpoint directory (same model, seed and --steps)\n"
    "  --quiet               no progress line\n"
    "\n"
    "examples:\n"
    "  galvatron train --model gpt2-tiny --steps 300 --metrics run.jsonl --out runs/tiny\n"
    "  galvatron train -n 4 --pp 2 --tp 2 --micro-batches 4 --schedule 1f1b --layers 4\n"
    "  galvatron train --plan examples/plans/galvatron_config_example.json --layers 4 -n 8\n";

static void gv_die(const char *what) {
    fprintf(stderr, "galvatron: %s\n", what);
    exit(1);
}

/* Under MPI every error takes the whole job down, so no rank waits forever in a collective. */
static gv_comm *gv_world;
static void gv_die_status(void) {
    if (gv_world && gv_comm_size(gv_world) > 1) gv_launch_die(gv_world, 1, "%s", gv_last_error());
    gv_die(gv_last_error());
}

static int gv_parse_int(const char *flag, const char *v, int lo) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *v == '\0' || *end != '\0' || x < lo || x > 1000000000) {
        fprintf(stderr, "galvatron: %s '%s': expected an integer >= %d\n", flag, v, lo);
        exit(2);
    }
    return (int)x;
}

static float gv_parse_float(const char *flag, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *v == '\0' || *end != '\0' || !isfinite(x)) {
        fprintf(stderr, "galvatron: %s '%s': expected a number\n", flag, v);
        exit(2);
    }
    return (float)x;
}

static void gv_fmt_eta(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
}

typedef struct {
    int tty, quiet;
} gv_progress;

static void gv_on_step(const gv_step_info *i, void *ctx) {
    gv_progress *p = ctx;
    if (p->quiet) return;
    /* On a terminal one line is rewritten; in a log, print about 20 lines per run plus evals. */
    int every = i->steps >= 20 ? i->steps / 20 : 1;
    int evaluated = !isnan(i->eval_loss);
    if (!p->tty && i->step % every && i->step != i->steps && !evaluated) return;
    char eta[32], ev[48] = "";
    gv_fmt_eta(i->eta_s, eta, sizeof eta);
    if (evaluated) snprintf(ev, sizeof ev, " | eval %.4f", i->eval_loss);
    fprintf(stderr, "%sstep %*d/%d | loss %.4f%s | lr %.2e | norm %.3f | %.1fK tok/s | %.0f ms | ETA %s%s",
            p->tty ? "\r\033[K" : "", (int)snprintf(NULL, 0, "%d", i->steps), i->step, i->steps, i->loss, ev,
            i->lr, i->grad_norm, i->tokens_per_s / 1e3, i->step_ms, eta,
            (!p->tty || evaluated || i->step == i->steps) ? "\n" : "");
    fflush(stderr);
}

static int gv_cmd_train(int argc, char **argv, int argc_all, char **argv_all) {
    gv_train_config c;
    gv_train_config_defaults(&c);
    const char *model = "gpt2-tiny";
    int layers = 0, nranks = 0, vocab_tp = 1, warmup_set = 0, micro_set = 0, reprofile = 0, seq_set = 0;
    double memory_gib = 0;
    const char *profile_dir = NULL;
    gv_cost_mode cost_mode = GV_COST_OWN;
    const char *plan_file = NULL, *rendezvous = NULL, *rdv_rank = NULL, *rdv_size = NULL;
    gv_progress prog = {isatty(2), 0};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(gv_usage_train, stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            prog.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--ckpt")) {
            c.ckpt = 1;
            continue;
        }
        if (!strcmp(a, "--reprofile")) {
            reprofile = 1;
            continue;
        }
        if (i + 1 >= argc || a[0] != '-') {
            fprintf(stderr, "galvatron train: %s '%s'%s (see galvatron train --help)\n",
                    a[0] != '-' ? "unexpected argument" : "option", a, a[0] != '-' ? "" : " needs a value");
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "--layers"))
            layers = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--data"))
            c.data = v;
        else if (!strcmp(a, "--init-from"))
            c.init_from = v;
        else if (!strcmp(a, "--seq"))
            c.seq = gv_parse_int(a, v, 1), seq_set = 1;
        else if (!strcmp(a, "--steps"))
            c.steps = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--global-batch"))
            c.global_batch = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--micro-batches"))
            c.micro_batches = gv_parse_int(a, v, 1), micro_set = 1;
        else if (!strcmp(a, "--memory")) {
            memory_gib = gv_parse_float(a, v);
            if (!(memory_gib > 0)) {
                fprintf(stderr, "galvatron: --memory %s: expected a positive number of GiB\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--profile-dir"))
            profile_dir = v;
        else if (!strcmp(a, "--cost-model")) {
            if (strcmp(v, "own") && strcmp(v, "galvatron")) {
                fprintf(stderr, "galvatron: --cost-model '%s': expected own or galvatron\n", v);
                return 2;
            }
            cost_mode = !strcmp(v, "own") ? GV_COST_OWN : GV_COST_GALVATRON;
        } else if (!strcmp(a, "--lr"))
            c.lr = gv_parse_float(a, v);
        else if (!strcmp(a, "--min-lr-frac"))
            c.min_lr_frac = gv_parse_float(a, v);
        else if (!strcmp(a, "--warmup"))
            c.warmup = gv_parse_int(a, v, 0), warmup_set = 1;
        else if (!strcmp(a, "--weight-decay"))
            c.weight_decay = gv_parse_float(a, v);
        else if (!strcmp(a, "--grad-clip"))
            c.grad_clip = gv_parse_float(a, v);
        else if (!strcmp(a, "--seed"))
            c.seed = (uint64_t)gv_parse_int(a, v, 0);
        else if (!strcmp(a, "--backend"))
            c.backend = v;
        else if (!strcmp(a, "-n"))
            nranks = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--tp"))
            c.tp = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--plan"))
            plan_file = v;
        else if (!strcmp(a, "--pp"))
            c.pp = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--overlap")) {
            if (strcmp(v, "on") && strcmp(v, "off")) {
                fprintf(stderr, "galvatron: --overlap '%s': expected on or off\n", v);
                return 2;
            }
            c.overlap = !strcmp(v, "on") ? 1 : -1;
        } else if (!strcmp(a, "--schedule")) {
            if (strcmp(v, "gpipe") && strcmp(v, "1f1b")) {
                fprintf(stderr, "galvatron: --schedule '%s': expected gpipe or 1f1b\n", v);
                return 2;
            }
            c.schedule = !strcmp(v, "gpipe") ? GV_SCHED_GPIPE : GV_SCHED_1F1B;
        } else if (!strcmp(a, "--sp")) {
            c.ulysses = !strcmp(v, "ulysses");
            c.megatron_sp = !strcmp(v, "megatron");
            if (!c.ulysses && !c.megatron_sp && strcmp(v, "none")) {
                fprintf(stderr, "galvatron: --sp '%s': expected none, megatron or ulysses\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--vocab-tp"))
            vocab_tp = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--dp-type")) {
            c.zero = -1;
            for (int k = 0; k < 4; k++)
                if (!strcmp(v, gv_zero_name(k))) c.zero = k;
            if (c.zero < 0) {
                fprintf(stderr, "galvatron: --dp-type '%s': expected ddp, zero1, zero2 or zero3\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--device"))
            c.device = gv_parse_int(a, v, 0);
        else if (!strcmp(a, "--comm")) {
            if (strcmp(v, "mpi") && strcmp(v, "nccl") && strcmp(v, "auto")) {
                fprintf(stderr, "galvatron: --comm '%s': expected mpi, nccl or auto\n", v);
                return 2;
            }
            c.comm_kind = v;
        } else if (!strcmp(a, "--rendezvous"))
            rendezvous = v;
        else if (!strcmp(a, "--rank"))
            gv_parse_int(a, v, 0), rdv_rank = v;
        else if (!strcmp(a, "--world-size"))
            gv_parse_int(a, v, 1), rdv_size = v;
        else if (!strcmp(a, "--eval-every"))
            c.eval_every = gv_parse_int(a, v, 0);
        else if (!strcmp(a, "--eval-batches"))
            c.eval_batches = gv_parse_int(a, v, 0);
        else if (!strcmp(a, "--metrics"))
            c.metrics = v;
        else if (!strcmp(a, "--out"))
            c.out_dir = v;
        else if (!strcmp(a, "--save-every"))
            c.save_every = gv_parse_int(a, v, 0);
        else if (!strcmp(a, "--resume"))
            c.resume = v;
        else {
            fprintf(stderr, "galvatron train: unknown option '%s' (see galvatron train --help)\n", a);
            return 2;
        }
    }
    if (vocab_tp > 1 && vocab_tp != (c.tp > 0 ? c.tp : 1)) {
        fprintf(stderr, "galvatron: --vocab-tp %d: must be 1 or equal to --tp %d\n", vocab_tp,
                c.tp > 0 ? c.tp : 1);
        return 2;
    }
    c.vocab_tp = vocab_tp > 1;
    if ((rdv_rank || rdv_size) && !rendezvous) {
        fprintf(stderr, "galvatron: --rank and --world-size go with --rendezvous DIR\n");
        return 2;
    }
    if (rendezvous) {
        /* ranks started by hand: no mpirun (-n would start one), the nccl bootstrap reads these */
        if (nranks) {
            fprintf(stderr, "galvatron: --rendezvous starts no processes: give --world-size, not -n\n");
            return 2;
        }
        if (c.comm_kind && strcmp(c.comm_kind, "nccl")) {
            fprintf(stderr, "galvatron: --rendezvous is the nccl bootstrap: not with --comm %s\n",
                    c.comm_kind);
            return 2;
        }
        c.comm_kind = "nccl";
        setenv("GV_RENDEZVOUS_DIR", rendezvous, 1);
        if (rdv_rank) setenv("GV_RANK", rdv_rank, 1);
        if (rdv_size) setenv("GV_WORLD_SIZE", rdv_size, 1);
    }
    const char *comm_kind = NULL;
    if (gv_train_comm_kind(&c, &comm_kind) != GV_OK) gv_die(gv_last_error());
    if (gv_model_spec_resolve(&c.spec, model) != GV_OK) gv_die_status();
    if (layers) c.spec.n_layer = layers;
    if (!seq_set && c.spec.arch == GV_ARCH_VIT) c.seq = c.spec.max_seq; /* the image fixes the sequence */
    if (!warmup_set && c.warmup >= c.steps) c.warmup = c.steps / 10;    /* the default must fit short runs */
    gv_plan plan = {0};                                                 /* a plan file's: kept for the run */
    if (!nranks && gv_launch_is_rank()) nranks = gv_launch_env_size();  /* the launcher drops -n */
    int autoplan = plan_file && !strcmp(plan_file, "auto");
    if (autoplan) plan_file = NULL; /* the plan comes from the search, once the ranks exist */
    if ((memory_gib > 0 || profile_dir || reprofile) && !autoplan) {
        fprintf(stderr, "galvatron: --memory, --profile-dir and --reprofile go with --plan auto\n");
        return 2;
    }
    if (plan_file) {
        /* The plan file sets the parallel layout and batch; the rank count comes from it (or -n). */
        if (gv_plan_load(&plan, plan_file, c.spec.n_layer, nranks) != GV_OK) gv_die_status();
        gv_status st = gv_plan_validate(&plan, &c.spec, c.seq, plan_file);
        if (st == GV_OK) st = gv_train_config_from_plan(&c, &plan, plan_file);
        if (!nranks) nranks = plan.world;
        if (st != GV_OK) gv_die_status();
    }
    if (nranks > 1 && !gv_launch_is_rank() && !rendezvous) {
        /* Reject an impossible run here, once, instead of on every rank after the launch. */
        c.world = nranks;
        if (gv_train_config_validate(&c) != GV_OK) gv_die_status();
        /* Files every rank would fail on alike: one message here rather than one per rank. */
        char ck[4096];
        snprintf(ck, sizeof ck, "%s/model.safetensors", c.resume ? c.resume : "");
        const char *need[3][2] = {
            {"--resume", c.resume ? ck : NULL},
            {"--init-from", c.init_from},
            {"--data", c.data && strcmp(c.data, "builtin") && !strchr(c.data, ',') ? c.data : NULL}};
        for (int k = 0; k < 3; k++)
            if (need[k][1] && access(need[k][1], R_OK) != 0) {
                fprintf(stderr, "galvatron: %s: cannot read %s: %s\n", need[k][0], need[k][1],
                        strerror(errno));
                return 1;
            }
        /* Ranks on one machine share its cores: without this each rank's OpenMP team would take them all. */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        char nt[24];
        snprintf(nt, sizeof nt, "%ld", cores / nranks > 1 ? cores / nranks : 1);
        setenv("OMP_NUM_THREADS", nt, 0);
        gv_launch_exec(nranks, argc_all, argv_all); /* returns only on failure */
        gv_die_status();
    }
    if (gv_launch_is_rank() || nranks > 1 || (comm_kind && !strcmp(comm_kind, "nccl"))) {
        if (gv_comm_init_world(&gv_world, comm_kind) != GV_OK) gv_die_status();
        int size = gv_comm_size(gv_world);
        if (nranks && size != nranks)
            gv_launch_die(gv_world, 1, "-n %d: the job has %d ranks (start it with as many ranks as -n says)",
                          nranks, size);
        c.comm = gv_world;
        if (gv_comm_rank(gv_world) != 0) prog.quiet = 1;
    }
    gv_autoplan_result ares;
    memset(&ares, 0, sizeof ares);
    if (autoplan) {
        gv_backend *pb;
        if (gv_backend_init(&pb, c.backend ? c.backend : "cpu", c.device) != GV_OK) gv_die_status();
        gv_autoplan_opts ao = {profile_dir,  memory_gib, c.global_batch, micro_set ? c.micro_batches : 0,
                               c.seq,        cost_mode,  reprofile,      c.overlap,
                               c.host_redist};
        int lead = !gv_world || gv_comm_rank(gv_world) == 0;
        gv_status st =
            gv_autoplan_run(gv_world, pb, &c.spec, &ao, lead && !prog.quiet ? stderr : NULL, &ares);
        gv_backend_free(pb);
        if (st == GV_OK) st = gv_train_config_from_plan(&c, &ares.plan, "plan auto");
        if (st != GV_OK) gv_die_status();
        if (gv_world && gv_comm_size(gv_world) > 1) c.predicted = &ares.predicted;
    }
    c.on_step = gv_on_step;
    c.ctx = &prog;
    int leader = !gv_world || gv_comm_rank(gv_world) == 0;
    if (gv_train_config_validate(&c) != GV_OK) gv_die_status(); /* before the banner: one line on error */
    int overlap_on;
    if (gv_hybrid_overlap_resolve(c.overlap, &overlap_on) != GV_OK) gv_die_status();
    if (!prog.quiet)
        fprintf(stderr,
                "galvatron: training %s (%.2fM parameters) on %s, B=%d x T=%d, %d micro-batch(es), %d steps, "
                "%d rank(s) (comm %s), overlap %s"
                " %s\n",
                c.spec.name, gv_model_spec_num_params(&c.spec) / 1e6, c.data ? c.data : "builtin",
                c.global_batch, c.seq, c.micro_batches, c.steps, gv_world ? gv_comm_size(gv_world) : 1,
                gv_world ? gv_comm_kind(gv_world) : "none", overlap_on ? "on" : "off",
                c.plan ? "layer-wise plan" : gv_zero_name(c.zero));
    gv_train_result r;
    if (gv_train_run(&c, &r) != GV_OK) {
        free(r.losses);
        gv_die_status();
    }
    if (!leader) {
        free(r.losses);
        gv_plan_free(&plan);
        gv_autoplan_result_free(&ares);
        gv_comm_free(gv_world);
        return 0;
    }
    printf("trained %d steps: loss %.4f -> %.4f", r.steps_done, r.first_loss, r.last_loss);
    if (!isnan(r.last_eval_loss)) printf(", eval loss %.4f", r.last_eval_loss);
    printf(", %.1fK tokens/s\n", r.mean_tokens_per_s / 1e3);
    if (c.predicted) {
        const gv_plan_cost *pc = c.predicted;
        const gv_cost_mem *pm = &pc->mem[r.stage];
        const gv_memory_report *mm = &r.memory;
        double mb = 1048576.0;
        printf(
            "measured vs predicted: step %.2f ms vs %.2f ms (%+.0f%%); rank 0 memory (MiB, measured / "
            "predicted): parameters %.2f / %.2f, gradients %.2f / %.2f, optimizer %.2f / %.2f, activations "
            "%.2f / %.2f, workspace %.2f / %.2f, comm %.2f / %.2f\n",
            r.median_step_ms, pc->step_s * 1e3, 100.0 * (pc->step_s * 1e3 / r.median_step_ms - 1),
            mm->parameters / mb, pm->parameters, mm->gradients / mb, pm->gradients, mm->optimizer / mb,
            pm->optimizer, mm->activations / mb, pm->activations, mm->workspace / mb, pm->workspace,
            mm->comm / mb, pm->comm);
    }
    printf("memory of rank 0 (MiB): parameters %.2f, gradients %.2f, optimizer %.2f, activations %.2f, "
           "workspace %.2f, "
           "comm %.2f%s\n",
           r.memory.parameters / 1048576.0, r.memory.gradients / 1048576.0, r.memory.optimizer / 1048576.0,
           r.memory.activations / 1048576.0, r.memory.workspace / 1048576.0, r.memory.comm / 1048576.0,
           gv_world && gv_comm_size(gv_world) > 1 ? " (every rank's: --metrics final record)" : "");
    free(r.losses);
    gv_plan_free(&plan);
    gv_autoplan_result_free(&ares);
    gv_comm_free(gv_world);
    return 0;
}

static const char *gv_usage_plan =
    "usage: galvatron plan check PLAN.json --model PRESET|FILE -n RANKS [--seq T] [--layers N]\n"
    "\n"
    "Validates a plan (Hetu-Galvatron's galvatron_config or the project's own JSON form) for a model on "
    "RANKS\n"
    "ranks and prints a per-layer table; exits non-zero with the reason when the plan is impossible.\n";

static int gv_cmd_plan(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "-h") || !strcmp(argv[0], "--help")) {
        fputs(gv_usage_plan, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "check")) {
        fprintf(stderr, "galvatron plan: unknown subcommand '%s' (see galvatron plan --help)\n", argv[0]);
        return 2;
    }
    const char *file = NULL, *model = "gpt2-tiny";
    int world = 0, seq = 0, layers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(gv_usage_plan, stdout);
            return 0;
        }
        if (strncmp(a, "-", 1)) {
            if (file) {
                fprintf(stderr, "galvatron plan check: unexpected argument '%s'\n", a);
                return 2;
            }
            file = a;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "galvatron plan check: option '%s' needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            model = v;
        else if (!strcmp(a, "-n"))
            world = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--seq"))
            seq = gv_parse_int(a, v, 1);
        else if (!strcmp(a, "--layers"))
            layers = gv_parse_int(a, v, 1);
        else {
            fprintf(stderr, "galvatron plan check: unknown option '%s' (see galvatron plan --help)\n", a);
            return 2;
        }
    }
    if (!file) {
        fputs(gv_usage_plan, stderr);
        return 2;
    }
    gv_model_spec s;
    if (gv_model_spec_resolve(&s, model) != GV_OK) gv_die_status();
    if (layers) s.n_layer = layers;
    if (!seq) seq = s.max_seq;
    gv_plan p;
    if (gv_plan_load(&p, file, s.n_layer, world) != GV_OK) gv_die_status();
    if (gv_plan_validate(&p, &s, seq, file) != GV_OK) {
        gv_plan_free(&p);
        gv_die_status();
    }
    printf("%s: valid for %s on %d ranks, seq %d: pp %d (%s), global batch %d in %d micro-batch(es)\n", file,
           s.name, p.world, seq, p.pp, p.schedule == GV_SCHED_GPIPE ? "gpipe" : "1f1b", p.global_batch,
           p.micro_batches);
    printf("%-7s %5s %4s %4s %-9s %-6s %4s\n", "layer", "stage", "tp", "dp", "sp", "dp_type", "ckpt");
    int stage = 0, left = p.stage_layers[0];
    for (int i = 0; i <= p.n_layer; i++) {
        const gv_layer_strategy *l = i < p.n_layer ? &p.layers[i] : &p.vocab;
        char name[16] = "vocab", st[16] = "-";
        if (i < p.n_layer) {
            if (left == 0) left = p.stage_layers[++stage];
            left--;
            snprintf(name, sizeof name, "%d", i);
            snprintf(st, sizeof st, "%d", stage);
        }
        printf("%-7s %5s %4d %4d %-9s %-6s %4s\n", name, st, l->tp, gv_plan_dp(&p, l), gv_sp_mode_name(l->sp),
               gv_zero_name(l->zero), i < p.n_layer ? (l->ckpt ? "yes" : "no") : "-");
    }
    gv_plan_free(&p);
    return 0;
}

static int gv_cmd_models(void) {
    int n;
    const char *const *names = gv_model_preset_names(&n);
    printf("%-12s %-6s %6s %6s %4s %4s %6s %6s %7s %10s\n", "preset", "arch", "layers", "hidden", "H", "KVH",
           "ffn", "seq", "vocab", "params");
    for (int i = 0; i < n; i++) {
        gv_model_spec s;
        gv_model_spec_preset(&s, names[i]);
        printf("%-12s %-6s %6d %6d %4d %4d %6d %6d %7d %9.1fM\n", s.name, gv_arch_name(s.arch), s.n_layer,
               s.n_embd, s.n_head, s.n_kv_head, s.ffn, s.max_seq, s.vocab,
               gv_model_spec_num_params(&s) / 1e6);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(gv_usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "train")) return gv_cmd_train(argc - 2, argv + 2, argc, argv);
    if (!strcmp(argv[1], "models")) return gv_cmd_models();
    if (!strcmp(argv[1], "plan")) return gv_cmd_plan(argc - 2, argv + 2);
    if (!strcmp(argv[1], "search")) return gv_cmd_search(argc - 2, argv + 2);
    if (!strcmp(argv[1], "explain")) return gv_cmd_explain(argc - 2, argv + 2);
    if (!strcmp(argv[1], "verify")) return gv_cmd_verify(argc - 2, argv + 2, argc, argv);
    if (!strcmp(argv[1], "profile")) return gv_cmd_profile(argc - 2, argv + 2, argc, argv);
    fprintf(stderr, "galvatron: unknown command '%s' (see galvatron --help)\n", argv[1]);
    return 2;
}
