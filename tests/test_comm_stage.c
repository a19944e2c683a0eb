/* bf16 through host communicators (comm.c converts to f32 for mpi and local, reduces in f32 and rounds once
 * to nearest even) and the comm selection of the trainer. Run alone (local) and under mpirun (mpi). Each
 * rank r contributes x_r[i] = 1 + (r + i % 5) / 128 (exact in bf16); the expected result is the f32 sum
 * rounded to bf16. */
#include <string.h>

#include "gv/comm.h"
#include "gv/launch.h"
#include "gv/tensor.h"
#include "gv/train.h"
#include "test.h"

enum { N = 37 };

static float val(int r, int i) {
    return 1.0f + (float)(r + i % 5) / 128.0f;
}

int main(void) {
    gv_comm *w = NULL;
    if (gv_comm_init_world(&w, NULL) != GV_OK) gv_launch_die(NULL, 1, "%s", gv_last_error());
    int R = gv_comm_size(w), me = gv_comm_rank(w);
    CHECK(gv_comm_dtype_size(GV_COMM_BF16) == 2 && !strcmp(gv_comm_dtype_name(GV_COMM_BF16), "bf16"));
    CHECK(gv_comm_device(w) == -1);

    /* all-reduce sum, out of place and in place */
    uint16_t x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = gv_f32_to_bf16(val(me, i));
    CHECK_OK(gv_comm_allreduce(w, x, y, N, GV_COMM_BF16, GV_COMM_SUM));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        float s = 0;
        for (int r = 0; r < R; r++) s += val(r, i);
        bad += y[i] != gv_f32_to_bf16(s);
    }
    CHECK(bad == 0);
    CHECK_OK(gv_comm_allreduce(w, x, x, N, GV_COMM_BF16, GV_COMM_MAX));
    bad = 0;
    for (int i = 0; i < N; i++) bad += x[i] != gv_f32_to_bf16(val(R - 1, i));
    CHECK(bad == 0);

    /* reduce-scatter in place: block r of the sum lands at send + r * N */
    uint16_t *big = malloc((size_t)R * N * sizeof *big);
    for (int i = 0; i < R * N; i++) big[i] = gv_f32_to_bf16(val(me, i));
    CHECK_OK(gv_comm_reduce_scatter(w, big, big + (size_t)me * N, N, GV_COMM_BF16, GV_COMM_SUM));
    bad = 0;
    for (int i = 0; i < N; i++) {
        float s = 0;
        for (int r = 0; r < R; r++) s += val(r, me * N + i);
        bad += big[me * N + i] != gv_f32_to_bf16(s);
    }
    CHECK(bad == 0);
    /* all-gather in place, then a message round */
    for (int i = 0; i < N; i++) big[me * N + i] = gv_f32_to_bf16(val(me, i));
    CHECK_OK(gv_comm_allgather(w, big + (size_t)me * N, big, N, GV_COMM_BF16));
    bad = 0;
    for (int r = 0; r < R; r++)
        for (int i = 0; i < N; i++) bad += big[r * N + i] != gv_f32_to_bf16(val(r, i));
    CHECK(bad == 0);
    int next = (me + 1) % R, prev = (me + R - 1) % R;
    for (int i = 0; i < N; i++) x[i] = gv_f32_to_bf16(val(me, i));
    CHECK_OK(gv_comm_sendrecv(w, x, N, next, y, N, prev, GV_COMM_BF16, 3));
    bad = 0;
    for (int i = 0; i < N; i++) bad += y[i] != gv_f32_to_bf16(val(prev, i));
    CHECK(bad == 0);
    free(big);

    /* host communicators: async is accepted and changes nothing; no event to wait for */
    void *ev = (void *)1;
    CHECK_OK(gv_comm_set_async(w, 1));
    CHECK_OK(gv_comm_record(w, &ev));
    CHECK(ev == NULL);
    CHECK_OK(gv_comm_allreduce(w, x, y, N, GV_COMM_BF16, GV_COMM_SUM));
    CHECK_OK(gv_comm_set_async(w, 0));

    /* the trainer's comm selection */
    gv_train_config c;
    gv_train_config_defaults(&c);
    const char *k = "x";
    CHECK_OK(gv_train_comm_kind(&c, &k)); /* auto on cpu: the default */
    CHECK(k == NULL);
    c.comm_kind = "mpi";
    CHECK_OK(gv_train_comm_kind(&c, &k));
    CHECK(k == NULL);
    c.comm_kind = "nccl";
    CHECK(gv_train_comm_kind(&c, &k) == GV_ERR_INVALID && strstr(gv_last_error(), "needs --backend cuda"));
    c.backend = "cuda";
    gv_status st = gv_train_comm_kind(&c, &k);
    CHECK(gv_comm_nccl_built() ? st == GV_OK && !strcmp(k, "nccl") : st == GV_ERR_UNSUPPORTED);
    c.comm_kind = "auto";
    CHECK_OK(gv_train_comm_kind(&c, &k));
    CHECK(!strcmp(k, "auto"));
    c.comm_kind = "tcp";
    CHECK(gv_train_comm_kind(&c, &k) == GV_ERR_INVALID && strstr(gv_last_error(), "'tcp'"));
    if (!gv_comm_nccl_built()) { /* the stub names what is missing */
        gv_comm *n = NULL;
        gv_comm_nccl_opts o;
        gv_comm_nccl_opts_from_env(&o);
        CHECK(gv_comm_init_nccl(&n, &o) == GV_ERR_UNSUPPORTED && strstr(gv_last_error(), "not built"));
        CHECK(n == NULL);
    }
    int fails = gv_test_failures;
    CHECK_OK(gv_comm_allreduce(w, &fails, &fails, 1, GV_COMM_I32, GV_COMM_SUM));
    gv_comm_free(w);
    if (me != 0) return fails ? 1 : 0;
    return gv_test_result("test_comm_stage");
}
