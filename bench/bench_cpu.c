/* CPU forward+backward throughput of a model preset (default gpt2-124m, B=4, T=256): median of several
 * timed iterations after one warmup. usage: bench_cpu [preset] [B] [T] [iters] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gv/data.h"
#include "gv/model.h"

static double gv_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int gv_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "gpt2-124m";
    int B = argc > 2 ? atoi(argv[2]) : 4, T = argc > 3 ? atoi(argv[3]) : 256,
        iters = argc > 4 ? atoi(argv[4]) : 5;
    gv_model_spec spec;
    gv_backend *be;
    gv_model *m;
    if (gv_model_spec_preset(&spec, preset) || gv_backend_init(&be, "cpu", 0) ||
        gv_model_init(&m, &spec, be, B, T) || gv_model_init_weights(m, 1)) {
        fprintf(stderr, "bench_cpu: %s\n", gv_last_error());
        return 1;
    }
    int32_t *tok = malloc((size_t)B * T * 4), *tgt = malloc((size_t)B * T * 4);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)((i * 7919u) % (unsigned)spec.vocab);
        tgt[i] = (int32_t)((i * 104729u) % (unsigned)spec.vocab);
    }
    double *t = malloc(sizeof(double) * (size_t)(iters + 1));
    for (int it = 0; it <= iters; it++) { /* iteration 0 is warmup */
        double t0 = gv_now_s();
        float loss;
        if (gv_model_forward(m, tok, tgt, &loss) || gv_model_backward(m, 1.0f)) {
            fprintf(stderr, "bench_cpu: %s\n", gv_last_error());
            return 1;
        }
        t[it] = gv_now_s() - t0;
        fprintf(stderr, "iter %d: %.3f s (loss %.4f)\n", it, t[it], loss);
    }
    qsort(t + 1, (size_t)iters, sizeof(double), gv_cmp);
    double med = t[1 + iters / 2];
    printf("%s forward+backward, B=%d T=%d: median %.3f s/iter over %d, %.0f tokens/s\n", preset, B, T, med,
           iters, B * T / med);
    gv_model_free(m);
    gv_backend_free(be);
    return 0;
}
