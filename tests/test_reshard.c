/* Layout-free checkpoints: saved under one plan and rank count, resumed under another, the next steps' losses
 * equal an uninterrupted single-process run within 1e-5. Runs on 8 ranks (re-launched through mpirun):
 * 4 -> 8 (tp2 x ZeRO-1 over 2 on ranks 0-3, then tp2 x ZeRO-3 over 4 on all 8), 8 -> 2 (Ulysses 2 x
 * ZeRO-2 on 8, then tp2 on ranks 0-1), 4 -> 1 (ZeRO-3 over 4 on ranks 0-3, then one process). */
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

/* Runs config on comm (NULL: this process alone) with the layout; returns the losses of the steps it ran. */
static int run(gv_comm *comm, int tp, int zero, int ulysses, const char *out, const char *resume,
               float *losses) {
    gv_train_config c;
    gv_train_result r;
    config(&c, out, resume);
    c.comm = comm, c.tp = tp, c.zero = zero, c.ulysses = ulysses;
    gv_status st = gv_train_run(&c, &r);
    if (st != GV_OK) fprintf(stderr, "%s: %s\n", out, gv_last_error());
    CHECK(st == GV_OK);
    int n = r.steps_done;
    if (st == GV_OK) memcpy(losses, r.losses, sizeof(float) * (size_t)n);
    free(r.losses);
    return n;
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
    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(world, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(world);
    if (rank == 0) printf("test_reshard: %s\n", fails ? "FAILED" : "ok");
    return fails ? 1 : 0;
}
