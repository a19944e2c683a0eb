/* The simulated pipeline timeline: with equal stages (forward f, backward b per micro-batch) both GPipe and
 * 1F1B take (m + pp - 1)(f + b); 1F1B holds at most pp - stage micro-batches between their forward and
 * backward, GPipe all m; dependencies hold (a forward after the previous stage's, a backward after the next
 * stage's, plus the p2p time); uneven stages are paced by the slowest. The HTML and trace writers produce
 * one box per event. */
#include <string.h>

#include "gv/explain.h"
#include "gv/fileio.h"
#include "test.h"

static int max_inflight(const gv_timeline_event *ev, int n, int stage, int M) {
    int worst = 0;
    for (int i = 0; i < n; i++) { /* at each forward start: micro-batches forwarded and not yet backwarded */
        if (ev[i].stage != stage || ev[i].backward) continue;
        int k = 0;
        for (int mb = 0; mb < M; mb++) {
            double f0 = -1, b0 = -1;
            for (int j = 0; j < n; j++)
                if (ev[j].stage == stage && ev[j].mb == mb) *(ev[j].backward ? &b0 : &f0) = ev[j].t0;
            if (f0 <= ev[i].t0 && b0 > ev[i].t0) k++;
        }
        if (k > worst) worst = k;
    }
    return worst;
}

static void check_deps(const gv_plan *p, const gv_timeline_event *ev, int n, double p2p) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            const gv_timeline_event *a = &ev[i], *b = &ev[j];
            if (a->mb != b->mb || a->backward != b->backward) continue;
            if (!a->backward && b->stage == a->stage + 1) CHECK(b->t0 >= a->t1 + p2p - 1e-12);
            if (a->backward && b->stage == a->stage - 1) CHECK(b->t0 >= a->t1 + p2p - 1e-12);
        }
    for (int i = 0; i < n; i++) /* a stage runs one thing at a time */
        for (int j = i + 1; j < n; j++)
            if (ev[i].stage == ev[j].stage)
                CHECK(ev[i].t1 <= ev[j].t0 + 1e-12 || ev[j].t1 <= ev[i].t0 + 1e-12);
    (void)p;
}

int main(void) {
    gv_layer_strategy l = {1, GV_SP_NONE, 0, 0};
    double f[8], b[8];
    for (int pp = 1; pp <= 4; pp *= 2)
        for (int M = 1; M <= 8; M *= 2)
            for (int sched = 0; sched < 2; sched++) {
                gv_plan p;
                CHECK_OK(
                    gv_plan_uniform(&p, pp, pp, 8, l, l, sched ? GV_SCHED_1F1B : GV_SCHED_GPIPE, 8 * M, M));
                for (int s = 0; s < pp; s++) f[s] = 1.0, b[s] = 2.0;
                gv_timeline_event *ev;
                int n;
                double span;
                CHECK_OK(gv_timeline_simulate(&p, f, b, 0.0, &ev, &n, &span));
                CHECK(n == 2 * pp * M);
                CHECK_CLOSE(span, (M + pp - 1) * 3.0, 1e-12, 1e-12);
                for (int s = 0; s < pp; s++) {
                    int want = pp == 1 ? 1 : !sched ? M : (pp - s < M ? pp - s : M);
                    CHECK(max_inflight(ev, n, s, M) == want);
                }
                check_deps(&p, ev, n, 0.0);
                free(ev);
                /* uneven stages and a p2p time: dependencies still hold, the slowest stage paces it */
                for (int s = 0; s < pp; s++) f[s] = 1.0 + s, b[s] = 2.0 * (1.0 + s);
                CHECK_OK(gv_timeline_simulate(&p, f, b, 0.25, &ev, &n, &span));
                check_deps(&p, ev, n, 0.25);
                CHECK(span >= M * (f[pp - 1] + b[pp - 1]) - 1e-12);
                free(ev);
                gv_plan_free(&p);
            }
    /* Reports: one slice per event in the trace, one box per event in the page. */
    gv_plan p;
    gv_plan_cost c;
    memset(&c, 0, sizeof c);
    CHECK_OK(gv_plan_uniform(&p, 4, 2, 4, l, l, GV_SCHED_1F1B, 8, 4));
    c.step_s = 9.0, c.throughput = 8 / 9.0;
    c.mem[0].parameters = 10, c.mem[1].activations = 20;
    c.stage_c[0] = c.stage_c[1] = 3.0;
    gv_explain_stage_times(&p, &c, f, b);
    CHECK_CLOSE(f[0], 1.0, 1e-12, 0);
    CHECK_CLOSE(b[0], 2.0, 1e-12, 0);
    gv_timeline_event *ev;
    int n;
    double span;
    CHECK_OK(gv_timeline_simulate(&p, f, b, 0.0, &ev, &n, &span));
    gv_model_spec spec;
    gv_model_spec_preset(&spec, "gpt2-tiny");
    CHECK_OK(gv_explain_write_trace("explain_tmp.trace.json", &p, ev, n));
    CHECK_OK(gv_explain_write_html("explain_tmp.html", &spec, &p, &c, ev, n, span));
    char *txt;
    size_t len;
    CHECK_OK(gv_file_read_all("explain_tmp.trace.json", &txt, &len));
    int slices = 0;
    for (char *q = txt; (q = strstr(q, "\"ph\": \"X\"")); q++) slices++;
    CHECK(slices == n);
    free(txt);
    CHECK_OK(gv_file_read_all("explain_tmp.html", &txt, &len));
    int boxes = 0;
    for (char *q = txt; (q = strstr(q, "micro-batch ")); q++) boxes++;
    CHECK(boxes == n);
    CHECK(strstr(txt, "stage 1 (ranks 2-3)") != NULL);
    free(txt);
    free(ev);
    gv_plan_free(&p);
    return gv_test_result("test_explain");
}
