/* Plan explanation: cost model from a profile directory, simulated pipeline timeline, HTML/SVG and Chrome
 * trace reports (see gv/explain.h). */
#include "gv/explain.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gv/fileio.h"

/* ---- timeline --------------------------------------------------------------------------------------- */

/* Operation k of stage s in schedule order: *mb and *bwd. */
static void gv_sched_op(const gv_plan *p, int s, int k, int *mb, int *bwd) {
    int M = p->micro_batches;
    if (p->pp == 1) {
        *mb = k / 2, *bwd = k % 2;
    } else if (p->schedule == GV_SCHED_GPIPE) {
        *mb = k % M, *bwd = k >= M;
    } else {
        int warm = p->pp - s - 1 < M ? p->pp - s - 1 : M, rest = M - warm;
        if (k < warm) {
            *mb = k, *bwd = 0;
        } else if (k < warm + 2 * rest) {
            int j = (k - warm) / 2;
            *bwd = (k - warm) % 2;
            *mb = *bwd ? j : warm + j;
        } else {
            *mb = k - warm - rest, *bwd = 1;
        }
    }
}

gv_status gv_timeline_simulate(const gv_plan *p, const double *fwd_s, const double *bwd_s, double p2p_s,
                               gv_timeline_event **ev, int *n, double *makespan) {
    int pp = p->pp, M = p->micro_batches, per = 2 * M;
    *ev = NULL;
    *n = 0;
    double *done = malloc((size_t)pp * per * sizeof *done); /* end time of (stage, mb, bwd), -1 = not yet */
    double *free_at = calloc((size_t)pp, sizeof *free_at);
    int *next = calloc((size_t)pp, sizeof *next);
    gv_timeline_event *e = malloc((size_t)pp * per * sizeof *e);
    if (!done || !free_at || !next || !e) {
        free(done), free(free_at), free(next), free(e);
        return gv_fail(GV_ERR_NOMEM, "timeline: out of host memory");
    }
    for (int i = 0; i < pp * per; i++) done[i] = -1;
#define DONE(s, mb, b) done[(s)*per + (b)*M + (mb)]
    int count = 0, progress = 1;
    while (count < pp * per && progress) {
        progress = 0;
        for (int s = 0; s < pp; s++) {
            while (next[s] < per) {
                int mb, b;
                gv_sched_op(p, s, next[s], &mb, &b);
                double ready = free_at[s];
                if (!b && s > 0) { /* the previous stage's forward output */
                    if (DONE(s - 1, mb, 0) < 0) break;
                    ready = fmax(ready, DONE(s - 1, mb, 0) + p2p_s);
                }
                if (b && s < pp - 1) { /* the next stage's input gradient */
                    if (DONE(s + 1, mb, 1) < 0) break;
                    ready = fmax(ready, DONE(s + 1, mb, 1) + p2p_s);
                }
                double t1 = ready + (b ? bwd_s[s] : fwd_s[s]);
                e[count++] = (gv_timeline_event){s, mb, b, ready, t1};
                DONE(s, mb, b) = t1;
                free_at[s] = t1;
                next[s]++;
                progress = 1;
            }
        }
    }
#undef DONE
    double end = 0;
    for (int s = 0; s < pp; s++) end = fmax(end, free_at[s]);
    free(done), free(free_at), free(next);
    if (count < pp * per) {
        free(e);
        return gv_fail(GV_ERR_INVALID, "timeline: the schedule deadlocks (plan with pp %d, m %d)", pp, M);
    }
    *ev = e;
    *n = count;
    *makespan = end;
    return GV_OK;
}

void gv_explain_stage_times(const gv_plan *p, const gv_plan_cost *c, double *fwd_s, double *bwd_s) {
    for (int s = 0, l = 0; s < p->pp; s++) {
        int ck = 0;
        for (int j = 0; j < p->stage_layers[s]; j++, l++) ck += p->layers[l].ckpt;
        double frac = p->stage_layers[s] ? (double)ck / p->stage_layers[s] : 0;
        fwd_s[s] = c->stage_c[s] / (3.0 + frac); /* backward = 2 forwards (+1 recomputed) */
        bwd_s[s] = c->stage_c[s] - fwd_s[s];
    }
}

/* ---- reports ---------------------------------------------------------------------------------------- */

/* A growing text buffer. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} gv_sbuf;

static void gv_sb_printf(gv_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void gv_sb_printf(gv_sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s, b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

static gv_status gv_sb_save(gv_sbuf *b, const char *path) {
    gv_status st = b->oom ? gv_fail(GV_ERR_NOMEM, "%s: out of host memory", path)
                          : gv_file_write_atomic(path, b->s ? b->s : "", b->n);
    free(b->s);
    return st;
}

gv_status gv_explain_write_trace(const char *path, const gv_plan *p, const gv_timeline_event *ev, int n) {
    gv_sbuf b = {0};
    gv_sb_printf(&b, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    for (int s = 0; s < p->pp; s++)
        gv_sb_printf(&b,
                     "{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": %d, \"args\": {\"name\": "
                     "\"stage %d (%d layers)\"}},\n",
                     s, s, p->stage_layers[s]);
    for (int i = 0; i < n; i++) {
        const gv_timeline_event *e = &ev[i];
        gv_sb_printf(
            &b,
            "{\"ph\": \"X\", \"name\": \"%c%d\", \"cat\": \"%s\", \"pid\": %d, \"tid\": 0, \"ts\": %.3f, "
            "\"dur\": %.3f}%s\n",
            e->backward ? 'B' : 'F', e->mb, e->backward ? "backward" : "forward", e->stage, e->t0 * 1e6,
            (e->t1 - e->t0) * 1e6, i + 1 < n ? "," : "");
    }
    gv_sb_printf(&b, "]}\n");
    return gv_sb_save(&b, path);
}

static void gv_html_escape(gv_sbuf *b, const char *s) {
    for (; *s; s++)
        if (*s == '<')
            gv_sb_printf(b, "&lt;");
        else if (*s == '&')
            gv_sb_printf(b, "&amp;");
        else
            gv_sb_printf(b, "%c", *s);
}

gv_status gv_explain_write_html(const char *path, const gv_model_spec *spec, const gv_plan *p,
                                const gv_plan_cost *c, const gv_timeline_event *ev, int n, double makespan) {
    static const char *cat[6] = {"parameters", "gradients", "optimizer", "activations", "comm", "workspace"};
    static const char *col[6] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948"};
    gv_sbuf b = {0};
    int S = p->world / p->pp;
    gv_sb_printf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>plan for ");
    gv_html_escape(&b, spec->name);
    gv_sb_printf(&b, "</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                     "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>\n");
    gv_sb_printf(&b, "<h1>Plan for ");
    gv_html_escape(&b, spec->name);
    gv_sb_printf(
        &b,
        "</h1>\n<p>%d ranks, pp %d (%s), global batch %d in %d micro-batches. Predicted step %.3f ms, "
        "%.2f samples/s (cost model); simulated timeline %.3f ms.</p>\n",
        p->world, p->pp, p->schedule == GV_SCHED_GPIPE ? "GPipe" : "1F1B", p->global_batch, p->micro_batches,
        c->step_s * 1e3, c->throughput, makespan * 1e3);
    /* a model with several layer types (t5: encoder, decoder) shows each layer's */
    const char *tname[GV_MAX_LAYER_TYPES];
    int tl[GV_MAX_LAYER_TYPES], nt = gv_model_spec_layer_types(spec, tl, tname);
    gv_sb_printf(&b,
                 "<h2>Layers</h2>\n<table><tr><th>layer</th>%s<th>stage</th><th>tp</th><th>sp</th><th>dp</th>"
                 "<th>dp type</th><th>recompute</th></tr>\n",
                 nt > 1 ? "<th>type</th>" : "");
    for (int l = 0, s = 0, k = 0, t = 0, end = tl[0]; l < p->n_layer; l++, k++) {
        if (k == p->stage_layers[s]) s++, k = 0;
        while (l >= end && t < nt - 1) end += tl[++t];
        const gv_layer_strategy *x = &p->layers[l];
        gv_sb_printf(&b, "<tr><td>%d</td>", l);
        if (nt > 1) gv_sb_printf(&b, "<td>%s</td>", tname[t]);
        gv_sb_printf(&b, "<td>%d</td><td>%d</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>\n", s,
                     x->tp, gv_sp_mode_name(x->sp), S / x->tp, gv_zero_name(x->zero), x->ckpt ? "yes" : "");
    }
    gv_sb_printf(&b, "<tr><td>vocab</td>%s", nt > 1 ? "<td></td>" : "");
    gv_sb_printf(&b, "<td>0, %d</td><td>%d</td><td>%s</td><td>%d</td><td>%s</td><td></td></tr>\n", p->pp - 1,
                 p->vocab.tp, gv_sp_mode_name(p->vocab.sp), S / p->vocab.tp, gv_zero_name(p->vocab.zero));
    gv_sb_printf(&b, "</table>\n");

    /* Memory: one stacked bar per stage (its S ranks share the prediction). */
    double mx = 1;
    for (int s = 0; s < p->pp; s++) mx = fmax(mx, gv_cost_mem_total(&c->mem[s]));
    int W = 720, bar = 36, H = p->pp * (bar + 12) + 40;
    gv_sb_printf(&b,
                 "<h2>Memory per rank (MB, predicted)</h2>\n<svg width=\"%d\" height=\"%d\" "
                 "xmlns=\"http://www.w3.org/2000/svg\">\n",
                 W + 200, H);
    for (int s = 0; s < p->pp; s++) {
        const gv_cost_mem *m = &c->mem[s];
        double v[6] = {m->parameters, m->gradients, m->optimizer, m->activations, m->comm, m->workspace};
        double x = 120;
        int y = 10 + s * (bar + 12);
        gv_sb_printf(&b, "<text x=\"0\" y=\"%d\">stage %d (ranks %d-%d)</text>\n", y + bar / 2 + 4, s, s * S,
                     s * S + S - 1);
        for (int k = 0; k < 6; k++) {
            double w = v[k] / mx * W;
            gv_sb_printf(
                &b,
                "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s %.1f MB"
                "</title></rect>\n",
                x, y, w, bar, col[k], cat[k], v[k]);
            x += w;
        }
        gv_sb_printf(&b, "<text x=\"%.1f\" y=\"%d\">%.1f MB</text>\n", x + 6, y + bar / 2 + 4,
                     gv_cost_mem_total(m));
    }
    for (int k = 0; k < 6; k++)
        gv_sb_printf(
            &b,
            "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s"
            "</text>\n",
            120 + k * 120, H - 18, col[k], 136 + k * 120, H - 8, cat[k]);
    gv_sb_printf(&b, "</svg>\n");

    /* Timeline: one row per stage, forward boxes light, backward dark, micro-batch number inside. */
    double scale = makespan > 0 ? W / makespan : 0;
    H = p->pp * (bar + 8) + 30;
    gv_sb_printf(&b,
                 "<h2>Pipeline timeline (simulated, %.3f ms)</h2>\n<svg width=\"%d\" height=\"%d\" "
                 "xmlns=\"http://www.w3.org/2000/svg\">\n",
                 makespan * 1e3, W + 140, H);
    for (int s = 0; s < p->pp; s++)
        gv_sb_printf(&b, "<text x=\"0\" y=\"%d\">stage %d</text>\n", 10 + s * (bar + 8) + bar / 2 + 4, s);
    for (int i = 0; i < n; i++) {
        const gv_timeline_event *e = &ev[i];
        double x = 80 + e->t0 * scale, w = (e->t1 - e->t0) * scale;
        int y = 10 + e->stage * (bar + 8);
        gv_sb_printf(
            &b,
            "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\" stroke=\"#fff\"><title>"
            "%s micro-batch %d: %.3f-%.3f ms</title></rect>\n",
            x, y, w, bar, e->backward ? "#4e79a7" : "#a0cbe8", e->backward ? "backward" : "forward", e->mb,
            e->t0 * 1e3, e->t1 * 1e3);
        if (w > 14)
            gv_sb_printf(&b, "<text x=\"%.2f\" y=\"%d\" font-size=\"11\">%c%d</text>\n", x + 3,
                         y + bar / 2 + 4, e->backward ? 'B' : 'F', e->mb);
    }
    gv_sb_printf(&b,
                 "<text x=\"80\" y=\"%d\" font-size=\"11\">0 ms</text><text x=\"%d\" y=\"%d\" "
                 "font-size=\"11\">%.3f ms</text>\n</svg>\n</body></html>\n",
                 H - 4, W + 40, H - 4, makespan * 1e3);
    return gv_sb_save(&b, path);
}
