/* Vocab-parallel cross-entropy pieces, recombined over t shards, equal the plain op: losses and dlogits. */
#include <math.h>
#include <string.h>

#include "gv/backend.h"
#include "gv/rng.h"
#include "test.h"

int main(void) {
    gv_backend *be;
    CHECK_OK(gv_backend_init(&be, "cpu", 0));
    for (int t = 1; t <= 4; t++) {
        int N = 7, Vs = 6, Vp = t * Vs, V = Vp - 3 < 1 ? 1 : Vp - 3; /* the last shard has padding columns */
        float *logits = malloc(sizeof(float) * N * Vp), *want_loss = malloc(sizeof(float) * N);
        float *want_d = calloc((size_t)N * Vp, sizeof(float)), *got_d = calloc((size_t)N * Vp, sizeof(float));
        int32_t *tg = malloc(sizeof(int32_t) * N);
        for (int i = 0; i < N * Vp; i++) logits[i] = 3.0f * gv_rng_normal(7, (uint64_t)t, (uint64_t)i);
        for (int n = 0; n < N; n++) tg[n] = (int32_t)(gv_rng_u64(8, (uint64_t)t, (uint64_t)n) % (uint64_t)V);
        tg[2] = -1; /* ignored */
        CHECK_OK(gv_crossentropy_forward(be, want_loss, logits, tg, N, V, Vp, -1));
        CHECK_OK(gv_crossentropy_backward(be, want_d, logits, tg, 0.37f, N, V, Vp, -1));
        /* Shards: columns [r*Vs, (r+1)*Vs) as a contiguous [N, Vs] block each. */
        float *shard = malloc(sizeof(float) * N * Vs), *dshard = malloc(sizeof(float) * N * Vs);
        float *lse = malloc(sizeof(float) * N * t), *tl = malloc(sizeof(float) * N * t), glse[16];
        for (int r = 0; r < t; r++) {
            int v0 = r * Vs, Vr = V - v0 < Vs ? V - v0 : Vs;
            for (int n = 0; n < N; n++) memcpy(shard + n * Vs, logits + n * Vp + v0, sizeof(float) * Vs);
            CHECK_OK(gv_crossentropy_shard_stats(be, lse + r * N, tl + r * N, shard, tg, N, Vr, Vs, v0, -1));
        }
        for (int n = 0; n < N; n++) {
            double mx = -INFINITY, s = 0, tlog = 0;
            for (int r = 0; r < t; r++) mx = fmax(mx, lse[r * N + n]);
            for (int r = 0; r < t; r++) s += exp(lse[r * N + n] - mx), tlog += tl[r * N + n];
            glse[n] = (float)(mx + log(s));
            float loss = tg[n] == -1 ? 0.0f : (float)(glse[n] - tlog);
            CHECK_CLOSE(loss, want_loss[n], 1e-5, 1e-6);
        }
        for (int r = 0; r < t; r++) {
            int v0 = r * Vs, Vr = V - v0 < Vs ? V - v0 : Vs;
            for (int n = 0; n < N; n++) memcpy(shard + n * Vs, logits + n * Vp + v0, sizeof(float) * Vs);
            memset(dshard, 0, sizeof(float) * N * Vs);
            CHECK_OK(gv_crossentropy_shard_backward(be, dshard, shard, tg, glse, 0.37f, N, Vr, Vs, v0, -1));
            for (int n = 0; n < N; n++) memcpy(got_d + n * Vp + v0, dshard + n * Vs, sizeof(float) * Vs);
        }
        for (int i = 0; i < N * Vp; i++) CHECK_CLOSE(got_d[i], want_d[i], 1e-5, 1e-7);
        /* In place (dlogits == logits): the gradient replaces the logits, ignored rows and padding columns
         * become 0; equal to accumulating into a zeroed buffer. Plain and sharded forms. */
        float *inpl = malloc(sizeof(float) * N * Vp);
        memcpy(inpl, logits, sizeof(float) * N * Vp);
        CHECK_OK(gv_crossentropy_backward(be, inpl, inpl, tg, 0.37f, N, V, Vp, -1));
        for (int i = 0; i < N * Vp; i++) CHECK(inpl[i] == want_d[i]);
        for (int r = 0; r < t; r++) {
            int v0 = r * Vs, Vr = V - v0 < Vs ? V - v0 : Vs;
            for (int n = 0; n < N; n++) memcpy(shard + n * Vs, logits + n * Vp + v0, sizeof(float) * Vs);
            CHECK_OK(gv_crossentropy_shard_backward(be, shard, shard, tg, glse, 0.37f, N, Vr, Vs, v0, -1));
            for (int n = 0; n < N; n++)
                for (int j = 0; j < Vs; j++)
                    CHECK_CLOSE(shard[n * Vs + j], want_d[n * Vp + v0 + j], 1e-5, 1e-7);
        }
        free(inpl);
        free(logits), free(want_loss), free(want_d), free(got_d), free(tg), free(shard), free(dshard),
            free(lse);
        free(tl);
    }
    gv_backend_free(be);
    return gv_test_result("test_ops_vp");
}
