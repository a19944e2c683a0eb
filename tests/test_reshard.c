/* Layout-free checkpoints: saved under one plan and rank count, resumed under another, the next steps' losses
 * equal an uninterrupted single-process run within 1e-5. Runs on 8 ranks (re-launched through mpirun):
 * 4 -> 8 (tp2 x ZeRO-1 over 2 on ranks 0-3, then tp2 x ZeRO-3 over 4 on all 8), 8 -> 2 (Ulysses 2 x
 * ZeRO-2 on 8, then tp2 on ranks 0-1), 4 -> 1 (ZeRO-3 over 4 on ranks 0-3, then one process); and the same
 * three moves between layer-wise and pipelined plans (optimizer state included). */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/train.h"
#include "test.h"

static void config(gv_train_config *c, const char *out, const char *resume) {
    gv_train_config_defaults(c);
    gv_model_spec_preset(&c->spec, "llama-tiny");
    c->steps = 15;
    c->global_batch = 8;
    c->micro_batches = 1;
    c->seq = 32;
    c->warmup = 2;
    c->eval_every = 0;
    c->save_every = 10;
    c->out_dir = out;
    c->resume = resume;
}

/* Runs config on comm (NULL: this process alone) with the layout, or with plan p when given; returns the
 * losses of the steps it ran. */
static int run_plan(gv_comm *comm, int tp, int zero, int ulysses, const gv_plan *p, const char *out,
                    const char *resume, float *losses) {
    gv_train_config c;
    gv_train_result r;
    config(&c, out, resume);
    c.comm = comm, c.tp = tp, c.zero = zero, c.ulysses = ulysses;
    if (p) CHECK_OK(gv_train_config_from_plan(&c, p, out));
    gv_status st = gv_train_run(&c, &r);
    if (st != GV_OK) fprintf(stderr, "%s: %s\n", out, gv_last_error());
    CHECK(st == GV_OK);
    int n = r.steps_done;
    if (st == GV_OK) memcpy(losses, r.losses, sizeof(float) * (size_t)n);
    free(r.losses);
    return n;
}

static int run(gv_comm *comm, int tp, int zero, int ulysses, const char *out, const char *resume,
               float *losses) {
    return run_plan(comm, tp, zero, ulysses, NULL, out, resume, losses);
}

/* A 2-layer plan on `world` ranks: pp stages, the two layers' and the vocab layers' strategies; global batch
 * 16 in 4 micro-batches. */
static void plan2(gv_plan *p, int world, int pp, gv_schedule sched, gv_layer_strategy l0,
                  gv_layer_strategy l1, gv_layer_strategy v) {
    CHECK_OK(gv_plan_uniform(p, world, pp, 2, l0, v, sched, 16, 4));
    p->layers[1] = l1;
}

static void compare(const char *what, const float *got, int n, const float *want) {
    double worst = 0;
    for (int s = 0; s < n; s++) worst = fmax(worst, fabs(got[s] - want[s]) / want[s]);
    printf("%s: %d resumed steps, worst loss rel diff %.2e\n", what, n, worst);
    CHECK(n == 5 && worst <= 1e-5);
}

int main(int argc, char **argv) {
    if (!gv_launch_is_rank()) {
        setenv("OMP_NUM_THREADS", "1", 1);
        gv_launch_exec(8, argc, argv);
        fprintf(stderr, "test_reshard: cannot launch: %s\n", gv_last_error());
        return 1;
    }
    gv_comm *world, *four, *two;
    if (gv_comm_init_world(&world, "mpi") != GV_OK) gv_launch_die(NULL, 1, "%s", gv_last_error());
    int rank = gv_comm_rank(world);
    CHECK(gv_comm_size(world) == 8);
    int r4[4] = {0, 1, 2, 3}, r2[2] = {0, 1};
    CHECK_OK(gv_comm_group(world, r4, 4, &four));
    CHECK_OK(gv_comm_group(world, r2, 2, &two));
    mkdir("reshard_tmp", 0755);
    float straight[15], got[15];
    if (rank == 0) run(NULL, 1, 0, 0, "reshard_tmp/straight", NULL, straight);
    CHECK_OK(gv_comm_broadcast(world, straight, 15, GV_COMM_F32, 0));

    /* 4 -> 8 */
    if (four) run(four, 2, 1, 0, "reshard_tmp/a4", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    int n = run(world, 2, 3, 0, "reshard_tmp/a8", "reshard_tmp/a4/step-000010", got);
    if (rank == 0) compare("tp2 x zero1 on 4 ranks -> tp2 x zero3 on 8", got, n, straight + 10);

    /* 8 -> 2 */
    run(world, 2, 2, 1, "reshard_tmp/b8", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    if (two) {
        n = run(two, 2, 0, 0, "reshard_tmp/b2", "reshard_tmp/b8/step-000010", got);
        if (rank == 0) compare("ulysses2 x zero2 on 8 ranks -> tp2 on 2", got, n, straight + 10);
    }

    /* 4 -> 1 */
    if (four) run(four, 1, 3, 0, "reshard_tmp/c4", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    if (rank == 0) {
        n = run(NULL, 1, 0, 0, "reshard_tmp/c1", "reshard_tmp/c4/step-000010", got);
        compare("zero3 on 4 ranks -> 1 process", got, n, straight + 10);
    }
    /* The same under layer-wise and pipelined plans (LLaMA: untied, so the vocab layers may use ZeRO-3). */
    gv_layer_strategy t1 = {1, GV_SP_NONE, 0, 0}, t2 = {2, GV_SP_NONE, 0, 0}, t2c = {2, GV_SP_NONE, 0, 1},
                      t1z1 = {1, GV_SP_NONE, 1, 0}, t1z2 = {1, GV_SP_NONE, 2, 0},
                      t1z3 = {1, GV_SP_NONE, 3, 0}, u2z1 = {2, GV_SP_ULYSSES, 1, 0},
                      t2z3 = {2, GV_SP_NONE, 3, 0}, t4 = {4, GV_SP_NONE, 0, 0};
    gv_plan pa, pb;
    float straight_m4[15];
    /* the plans below train on global batches of 16: their own reference */
    if (rank == 0) {
        gv_plan p1;
        plan2(&p1, 1, 1, GV_SCHED_1F1B, t1, t1, t1);
        run_plan(NULL, 1, 0, 0, &p1, "reshard_tmp/straight4", NULL, straight_m4);
        gv_plan_free(&p1);
    }
    CHECK_OK(gv_comm_broadcast(world, straight_m4, 15, GV_COMM_F32, 0));

    /* 4 -> 8: pp2 (tp2 | ZeRO-1) on ranks 0-3, then pp2 (Ulysses 2 x ZeRO-1 | tp2 x ZeRO-3, vocab ZeRO-3) */
    plan2(&pa, 4, 2, GV_SCHED_1F1B, t2, t1z1, t1);
    plan2(&pb, 8, 2, GV_SCHED_GPIPE, u2z1, t2z3, t1z3);
    if (four) run_plan(four, 1, 0, 0, &pa, "reshard_tmp/d4", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    n = run_plan(world, 1, 0, 0, &pb, "reshard_tmp/d8", "reshard_tmp/d4/step-000010", got);
    if (rank == 0) compare("pp2 layer-wise on 4 ranks -> pp2 layer-wise on 8", got, n, straight_m4 + 10);
    gv_plan_free(&pa);
    gv_plan_free(&pb);

    /* 8 -> 2: layer-wise without pipeline (ZeRO-2 | tp2, vocab tp4) on 8, then pp2 GPipe on ranks 0-1 */
    plan2(&pa, 8, 1, GV_SCHED_1F1B, t1z2, t2, t4);
    pa.micro_batches = 2; /* dp 8 needs 8 rows per micro-batch */
    plan2(&pb, 2, 2, GV_SCHED_GPIPE, t1, t1, t1);
    run_plan(world, 1, 0, 0, &pa, "reshard_tmp/e8", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    if (two) {
        n = run_plan(two, 1, 0, 0, &pb, "reshard_tmp/e2", "reshard_tmp/e8/step-000010", got);
        if (rank == 0) compare("layer-wise on 8 ranks -> pp2 gpipe on 2", got, n, straight_m4 + 10);
    }
    gv_plan_free(&pa);
    gv_plan_free(&pb);

    /* 4 -> 1: pp2 (tp2 with recompute | ZeRO-3, vocab ZeRO-1) on ranks 0-3, then one process */
    plan2(&pa, 4, 2, GV_SCHED_1F1B, t2c, t1z3, t1z1);
    plan2(&pb, 1, 1, GV_SCHED_1F1B, t1, t1, t1);
    if (four) run_plan(four, 1, 0, 0, &pa, "reshard_tmp/f4", NULL, got);
    CHECK_OK(gv_comm_barrier(world));
    if (rank == 0) {
        n = run_plan(NULL, 1, 0, 0, &pb, "reshard_tmp/f1", "reshard_tmp/f4/step-000010", got);
        compare("pp2 layer-wise on 4 ranks -> 1 process", got, n, straight_m4 + 10);
    }
    gv_plan_free(&pa);
    gv_plan_free(&pb);

    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0) printf("test_reshard: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
