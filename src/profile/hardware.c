/* Hardware profiler: collective bandwidth per group size and layout, pipeline p2p, Galvatron's sp_time
 * latency tables, matmul throughput and the compute/communication overlap slowdown, all measured through
 * gv_comm and gv_backend. Every rank runs the same sequence of measurements. */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gv/layout.h"
#include "gv/log.h"
#include "gv/profiler.h"
#include "profile-util.h"

const char *gv_coll_op_name(gv_coll_op op) {
    static const char *names[GV_COLL_COUNT] = {"allreduce", "allgather", "reduce_scatter", "alltoall"};
    return (unsigned)op < GV_COLL_COUNT ? names[op] : "unknown";
}

double gv_coll_busbw_factor(gv_coll_op op, int n) {
    if (n < 1) return 0;
    return op == GV_COLL_ALLREDUCE ? 2.0 * (n - 1) / n : (double)(n - 1) / n;
}

void gv_hw_prof_config_defaults(gv_hw_prof_config *c) {
    memset(c, 0, sizeof *c);
    c->warmup = 1;
    c->iters = 5;
    c->min_bytes = (size_t)64 << 10;
    c->max_bytes = (size_t)4 << 20;
    c->sp_max_mb = 128;
    c->matmul_n = 512;
    c->window_ms = 20;
    c->backend_name = "cpu";
}

void gv_hw_prof_free(gv_hw_prof *p) {
    if (!p) return;
    free(p->coll);
    free(p->p2p);
    free(p->sp);
    memset(p, 0, sizeof *p);
}

double gv_hw_prof_busbw(const gv_hw_prof *p, gv_coll_op op, int group_size, int consec) {
    double bw = NAN;
    size_t best = 0;
    for (int i = 0; i < p->ncoll; i++) {
        const gv_coll_point *q = &p->coll[i];
        if (q->op == op && q->group_size == group_size && q->consec == consec && q->bytes >= best) {
            best = q->bytes;
            bw = q->busbw_gbps;
        }
    }
    return bw;
}

/* ---- groups and timing ------------------------------------------------------------------------------ */

/* The partition of the world into Galvatron's (g, consec) groups: every rank creates every group in the
 * same order (the pooled-group calling rule); *mine is this rank's. ranks[W] receives all groups. */
static gv_status gv_hw_partition(gv_comm *world, int g, int consec, int *ranks, gv_comm **mine) {
    int W = gv_comm_size(world);
    int n = gv_layout_block_groups(0, W, g, consec, ranks);
    if (n < 0) return gv_fail(GV_ERR_INVALID, "profile: no groups of %d in a world of %d", g, W);
    *mine = NULL;
    for (int i = 0; i < n; i++) {
        gv_comm *c = NULL;
        GV_TRY(gv_comm_group(world, ranks + (size_t)i * g, g, &c));
        if (c) *mine = c;
    }
    return *mine ? GV_OK : gv_fail(GV_ERR_COMM, "profile: rank not in any group of %d", g);
}

/* From every rank's own time: the maximum over the members of each group (a collective ends when its last
 * rank does), then the mean over the groups. On every rank. */
static gv_status gv_hw_group_time(gv_comm *world, double mine, const int *ranks, int g, double *out,
                                  double *all) {
    int W = gv_comm_size(world);
    GV_TRY(gv_comm_allgather(world, &mine, all, 1, GV_COMM_F64));
    double sum = 0;
    int n = W / g;
    for (int i = 0; i < n; i++) {
        double mx = 0;
        for (int k = 0; k < g; k++)
            if (all[ranks[i * g + k]] > mx) mx = all[ranks[i * g + k]];
        sum += mx;
    }
    *out = sum / n;
    return GV_OK;
}

static gv_status gv_hw_coll(gv_coll_op op, gv_comm *c, const float *s, float *r, size_t bytes) {
    size_t count = bytes / sizeof(float), n = (size_t)gv_comm_size(c);
    switch (op) {
    case GV_COLL_ALLREDUCE:
        return gv_comm_allreduce(c, s, r, count, GV_COMM_F32, GV_COMM_SUM);
    case GV_COLL_ALLGATHER:
        return gv_comm_allgather(c, s, r, count / n, GV_COMM_F32);
    case GV_COLL_REDUCE_SCATTER:
        return gv_comm_reduce_scatter(c, s, r, count / n, GV_COMM_F32, GV_COMM_SUM);
    case GV_COLL_ALLTOALL:
        return gv_comm_alltoall(c, s, r, count / n, GV_COMM_F32);
    default:
        return gv_fail(GV_ERR_INVALID, "profile: unknown collective %d", (int)op);
    }
}

/* Median over iters of one collective on this rank, each repetition started together by a barrier. */
static gv_status gv_hw_time_coll(gv_coll_op op, gv_comm *c, const float *s, float *r, size_t bytes,
                                 const gv_hw_prof_config *cfg, double *t, double *med) {
    for (int i = 0; i < cfg->warmup; i++) GV_TRY(gv_hw_coll(op, c, s, r, bytes));
    for (int i = 0; i < cfg->iters; i++) {
        GV_TRY(gv_comm_barrier(c));
        double t0 = gv_prof_now_ms();
        GV_TRY(gv_hw_coll(op, c, s, r, bytes));
        t[i] = gv_prof_now_ms() - t0;
    }
    *med = gv_prof_median(t, cfg->iters);
    return GV_OK;
}

static gv_status gv_hw_push(void **arr, int *n, size_t elem, const void *x) {
    void *a = realloc(*arr, (size_t)(*n + 1) * elem);
    if (!a) return gv_fail(GV_ERR_NOMEM, "profile: out of memory");
    memcpy((char *)a + (size_t)*n * elem, x, elem);
    *arr = a;
    (*n)++;
    return GV_OK;
}

static void gv_fmt_bytes(size_t b, char *buf, size_t n) {
    if (b >= (1u << 20) && b % (1u << 20) == 0)
        snprintf(buf, n, "%zu MiB", b >> 20);
    else if (b >= 1024 && b % 1024 == 0)
        snprintf(buf, n, "%zu KiB", b >> 10);
    else
        snprintf(buf, n, "%zu B", b);
}

/* ---- measurements ----------------------------------------------------------------------------------- */

typedef struct {
    gv_comm *world;
    int W, rank, leader;
    const gv_hw_prof_config *cfg;
    float *s, *r;    /* host buffers of buf_bytes */
    double *t, *all; /* [iters], [W] */
    int *ranks;      /* [W] */
} gv_hw_ctx;

static gv_status gv_hw_collectives(gv_hw_ctx *x, gv_hw_prof *p) {
    const gv_hw_prof_config *cfg = x->cfg;
    for (int g = x->W; g >= 2; g /= 2)
        for (int consec = 1; consec >= 0; consec--) {
            if (g == x->W && !consec) continue; /* one group of everyone: no strided variant */
            gv_comm *c;
            GV_TRY(gv_hw_partition(x->world, g, consec, x->ranks, &c));
            for (int op = 0; op < GV_COLL_COUNT; op++) {
                double lo = INFINITY, hi = 0;
                for (size_t bytes = cfg->min_bytes; bytes <= cfg->max_bytes; bytes *= 2) {
                    double med, tm;
                    GV_TRY(gv_hw_time_coll((gv_coll_op)op, c, x->s, x->r, bytes, cfg, x->t, &med));
                    GV_TRY(gv_hw_group_time(x->world, med, x->ranks, g, &tm, x->all));
                    gv_coll_point q = {(gv_coll_op)op, g, consec, x->W / g, bytes, tm, 0, 0};
                    q.algbw_gbps = bytes / (tm * 1e-3) / 1e9;
                    q.busbw_gbps = q.algbw_gbps * gv_coll_busbw_factor((gv_coll_op)op, g);
                    if (q.busbw_gbps < lo) lo = q.busbw_gbps;
                    if (q.busbw_gbps > hi) hi = q.busbw_gbps;
                    GV_TRY(gv_hw_push((void **)&p->coll, &p->ncoll, sizeof q, &q));
                }
                if (x->leader) {
                    char a[32], b[32];
                    gv_fmt_bytes(cfg->min_bytes, a, sizeof a);
                    gv_fmt_bytes(cfg->max_bytes, b, sizeof b);
                    gv_info(
                        "profile hardware: %-14s %d group(s) of %d %-11s busbw %.3f .. %.3f GB/s (%s .. %s)",
                        gv_coll_op_name((gv_coll_op)op), x->W / g, g, consec ? "consecutive" : "strided", lo,
                        hi, a, b);
                }
            }
        }
    return GV_OK;
}

/* Pipeline neighbours: stage k of pp sends to stage k+1 while receiving from stage k-1, every pp group
 * (one rank per stage, stride W/pp) at once — the forward activation transfer of a pipeline. */
static gv_status gv_hw_p2p(gv_hw_ctx *x, gv_hw_prof *p) {
    const gv_hw_prof_config *cfg = x->cfg;
    size_t bytes = cfg->max_bytes, count = bytes / sizeof(float);
    for (int pp = 2; pp <= x->W; pp *= 2) {
        int s = x->W / pp;
        gv_comm *c = NULL;
        for (int j = 0; j < s; j++) { /* group j: ranks j, j+s, ..., in stage order */
            for (int k = 0; k < pp; k++) x->ranks[j * pp + k] = j + k * s;
            gv_comm *g = NULL;
            GV_TRY(gv_comm_group(x->world, x->ranks + j * pp, pp, &g));
            if (g) c = g;
        }
        int st = gv_comm_rank(c);
        double med;
        for (int i = -cfg->warmup; i < cfg->iters; i++) {
            GV_TRY(gv_comm_barrier(c));
            double t0 = gv_prof_now_ms();
            if (st == 0)
                GV_TRY(gv_comm_send(c, x->s, count, GV_COMM_F32, 1, 7));
            else if (st == pp - 1)
                GV_TRY(gv_comm_recv(c, x->r, count, GV_COMM_F32, st - 1, 7));
            else
                GV_TRY(gv_comm_sendrecv(c, x->s, count, st + 1, x->r, count, st - 1, GV_COMM_F32, 7));
            if (i >= 0) x->t[i] = gv_prof_now_ms() - t0;
        }
        med = gv_prof_median(x->t, cfg->iters);
        double tm;
        GV_TRY(gv_hw_group_time(x->world, med, x->ranks, pp, &tm, x->all));
        gv_p2p_point q = {pp, bytes, tm, bytes / (tm * 1e-3) / 1e9};
        GV_TRY(gv_hw_push((void **)&p->p2p, &p->np2p, sizeof q, &q));
        if (x->leader) gv_info("profile hardware: p2p between %d pipeline stages: %.3f GB/s", pp, q.bw_gbps);
    }
    return GV_OK;
}

/* Galvatron's sp_time tables over consecutive groups: all-reduce of mb MiB, all-to-all of mb/g MiB per
 * rank, mb = 1, 2, 4, ... sp_max_mb. */
static gv_status gv_hw_sp_tables(gv_hw_ctx *x, gv_hw_prof *p) {
    const gv_hw_prof_config *cfg = x->cfg;
    for (int g = x->W; g >= 2 && cfg->sp_max_mb > 0; g /= 2) {
        gv_comm *c;
        GV_TRY(gv_hw_partition(x->world, g, 1, x->ranks, &c));
        for (int mb = 1; mb <= cfg->sp_max_mb; mb *= 2) {
            size_t bytes = (size_t)mb << 20;
            double ar, a2a, tm;
            GV_TRY(gv_hw_time_coll(GV_COLL_ALLREDUCE, c, x->s, x->r, bytes, cfg, x->t, &ar));
            GV_TRY(gv_hw_group_time(x->world, ar, x->ranks, g, &tm, x->all));
            ar = tm;
            GV_TRY(gv_hw_time_coll(GV_COLL_ALLTOALL, c, x->s, x->r, bytes / (size_t)g, cfg, x->t, &a2a));
            GV_TRY(gv_hw_group_time(x->world, a2a, x->ranks, g, &tm, x->all));
            a2a = tm;
            gv_sp_point q = {g, mb, ar, a2a};
            GV_TRY(gv_hw_push((void **)&p->sp, &p->nsp, sizeof q, &q));
        }
        if (x->leader)
            gv_info("profile hardware: sp_time tables for groups of %d: 1 .. %d MiB", g, cfg->sp_max_mb);
    }
    return GV_OK;
}

/* The compute side of the overlap test: matmuls on a second thread that never touches the communicator.
 * With windows == 0 it loops until *stop; else it times `windows` windows of `per_window` matmuls into
 * t[] and then sets *done. */
typedef struct {
    gv_backend *b;
    void *a, *w, *o;
    int n, windows, per_window;
    atomic_int stop, done, started;
    double *t; /* [windows] */
    gv_status st;
    char err[512]; /* the thread's last-error message (thread-local there) */
} gv_mm_job;

static gv_status gv_mm_once(gv_mm_job *j) {
    GV_TRY(gv_matmul_forward(j->b, j->o, j->a, j->w, NULL, j->n, j->n, j->n));
    return gv_backend_sync(j->b);
}

/* One window of k matmuls, in ms. */
static gv_status gv_mm_window(gv_mm_job *j, int k, double *ms) {
    double t0 = gv_prof_now_ms();
    for (int i = 0; i < k; i++) GV_TRY(gv_mm_once(j));
    *ms = gv_prof_now_ms() - t0;
    return GV_OK;
}

static void *gv_mm_thread(void *arg) {
    gv_mm_job *j = arg;
    atomic_store(&j->started, 1);
    if (j->windows > 0) {
        for (int i = 0; i < j->windows && j->st == GV_OK; i++)
            j->st = gv_mm_window(j, j->per_window, &j->t[i]);
    } else {
        while (!atomic_load(&j->stop) && j->st == GV_OK) j->st = gv_mm_once(j);
    }
    if (j->st != GV_OK) snprintf(j->err, sizeof j->err, "%s", gv_last_error());
    atomic_store(&j->done, 1);
    return NULL;
}

/* One window of k all-reduces over the world, started together, in ms. */
static gv_status gv_ar_window(gv_comm *w, const float *s, float *r, size_t count, int k, double *ms) {
    GV_TRY(gv_comm_barrier(w));
    double t0 = gv_prof_now_ms();
    for (int i = 0; i < k; i++) GV_TRY(gv_comm_allreduce(w, s, r, count, GV_COMM_F32, GV_COMM_SUM));
    *ms = gv_prof_now_ms() - t0;
    return GV_OK;
}

/* Operations per timing window: enough for window_ms (a few scheduler time slices, so one preemption does
 * not decide a measurement), the same on every rank. */
static gv_status gv_hw_per_window(gv_comm *w, double op_ms, double window_ms, int *k) {
    double v = op_ms > 0 ? ceil(window_ms / op_ms) : 1;
    if (v < 1) v = 1;
    if (v > 1e6) v = 1e6;
    GV_TRY(gv_prof_max(w, &v));
    *k = (int)v;
    return GV_OK;
}

static gv_status gv_hw_mean(gv_comm *w, double *v, int n) {
    GV_TRY(gv_comm_allreduce(w, v, v, (size_t)n, GV_COMM_F64, GV_COMM_SUM));
    for (int i = 0; i < n; i++) v[i] /= gv_comm_size(w);
    return GV_OK;
}

static gv_status gv_hw_overlap_run(gv_hw_ctx *x, gv_mm_job *j, gv_hw_prof *p) {
    const gv_hw_prof_config *cfg = x->cfg;
    int iters = cfg->iters, n = cfg->matmul_n;
    size_t bytes = cfg->max_bytes, count = bytes / sizeof(float);
    gv_comm *w = x->world;
    double *t = x->t, mm1, ar1;

    /* Single-operation times (after warmup; medians of 3) size the windows. */
    for (int i = 0; i < cfg->warmup; i++) GV_TRY(gv_mm_once(j));
    double one[3];
    for (int i = 0; i < 3; i++) GV_TRY(gv_mm_window(j, 1, &one[i]));
    mm1 = gv_prof_median(one, 3);
    for (int i = 0; i < 3; i++) GV_TRY(gv_ar_window(w, x->s, x->r, count, 1, &one[i]));
    ar1 = gv_prof_median(one, 3);
    int kmm, kar;
    GV_TRY(gv_hw_per_window(w, mm1, cfg->window_ms, &kmm));
    GV_TRY(gv_hw_per_window(w, ar1, cfg->window_ms, &kar));

    /* Matmul alone, every rank at once (the condition of training); all-reduce alone. */
    GV_TRY(gv_comm_barrier(w));
    for (int i = 0; i < iters; i++) GV_TRY(gv_mm_window(j, kmm, &t[i]));
    double v[4];
    v[0] = gv_prof_median(t, iters) / kmm;
    for (int i = 0; i < iters; i++) GV_TRY(gv_ar_window(w, x->s, x->r, count, kar, &t[i]));
    v[1] = gv_prof_median(t, iters) / kar;

    /* All-reduce windows while the compute thread runs matmuls until stopped. */
    pthread_t th;
    atomic_store(&j->stop, 0);
    atomic_store(&j->done, 0);
    atomic_store(&j->started, 0);
    j->windows = 0;
    j->st = GV_OK;
    if (pthread_create(&th, NULL, gv_mm_thread, j))
        return gv_fail(GV_ERR_BACKEND, "profile: cannot start the compute thread");
    while (!atomic_load(&j->started)) sched_yield();
    gv_status st = GV_OK;
    for (int i = 0; st == GV_OK && i < iters; i++) st = gv_ar_window(w, x->s, x->r, count, kar, &t[i]);
    atomic_store(&j->stop, 1);
    pthread_join(th, NULL);
    GV_TRY(st);
    if (j->st != GV_OK) return gv_fail(j->st, "%s", j->err);
    v[2] = gv_prof_median(t, iters) / kar;

    /* Matmul windows timed on the compute thread while all-reduces run until every rank's thread is done
     * (the ranks agree on the count of all-reduces through a one-element MAX after each). */
    double *tm = malloc((size_t)iters * sizeof *tm);
    if (!tm) return gv_fail(GV_ERR_NOMEM, "profile: out of memory");
    atomic_store(&j->done, 0);
    atomic_store(&j->started, 0);
    j->windows = iters;
    j->per_window = kmm;
    j->t = tm;
    st = gv_comm_barrier(w);
    if (st == GV_OK && pthread_create(&th, NULL, gv_mm_thread, j)) {
        st = gv_fail(GV_ERR_BACKEND, "profile: cannot start the compute thread");
    } else if (st == GV_OK) {
        int more = 1;
        while (st == GV_OK && more) {
            st = gv_comm_allreduce(w, x->s, x->r, count, GV_COMM_F32, GV_COMM_SUM);
            more = !atomic_load(&j->done);
            if (st == GV_OK) st = gv_comm_allreduce(w, &more, &more, 1, GV_COMM_I32, GV_COMM_MAX);
        }
        pthread_join(th, NULL);
        if (st == GV_OK && j->st != GV_OK) st = gv_fail(j->st, "%s", j->err);
        if (st == GV_OK) v[3] = gv_prof_median(tm, iters) / kmm;
    }
    free(tm);
    GV_TRY(st);
    GV_TRY(gv_hw_mean(w, v, 4));
    p->matmul_n = n;
    p->matmul_ms = v[0];
    p->matmul_gflops = 2.0 * n * (double)n * n / (p->matmul_ms * 1e-3) / 1e9;
    p->overlap_bytes = bytes;
    p->comp_alone_ms = v[0];
    p->comm_alone_ms = v[1];
    p->comm_overlap_ms = v[2];
    p->comp_overlap_ms = v[3];
    p->comm_delay = p->comm_overlap_ms / p->comm_alone_ms;
    p->comp_delay = p->comp_overlap_ms / p->comp_alone_ms;
    p->overlap_coe = fmax(1.0, fmax(p->comm_delay, p->comp_delay));
    if (x->leader) {
        gv_info("profile hardware: matmul %dx%dx%d: %.3f ms, %.2f GFLOP/s per rank (%d ranks at once)", n, n,
                n, p->matmul_ms, p->matmul_gflops, x->W);
        gv_info(
            "profile hardware: overlap (windows of %d all-reduces / %d matmuls): all-reduce %.3f -> %.3f ms, "
            "matmul %.3f -> %.3f ms: overlap_coe %.3f",
            kar, kmm, p->comm_alone_ms, p->comm_overlap_ms, p->comp_alone_ms, p->comp_overlap_ms,
            p->overlap_coe);
    }
    return GV_OK;
}

static gv_status gv_hw_matmul_overlap(gv_hw_ctx *x, gv_backend *b, gv_hw_prof *p) {
    int n = x->cfg->matmul_n;
    gv_dtype dt = gv_backend_dtype(b);
    size_t nn = (size_t)n * n, esz = dt == GV_F32 ? 4 : 2;
    gv_mm_job j;
    memset(&j, 0, sizeof j);
    j.b = b;
    j.n = n;
    gv_status st = gv_backend_alloc(b, &j.a, nn * esz);
    if (st == GV_OK) st = gv_backend_alloc(b, &j.w, nn * esz);
    if (st == GV_OK) st = gv_backend_alloc(b, &j.o, nn * esz);
    float *h = st == GV_OK ? malloc(nn * sizeof *h) : NULL;
    if (st == GV_OK && !h) st = gv_fail(GV_ERR_NOMEM, "profile: out of memory");
    if (st == GV_OK) {
        for (size_t i = 0; i < nn; i++) h[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        st = gv_backend_upload_f32(b, j.a, dt, h, nn);
        if (st == GV_OK) st = gv_backend_upload_f32(b, j.w, dt, h, nn);
    }
    free(h);
    if (st == GV_OK) st = gv_hw_overlap_run(x, &j, p);
    gv_backend_dealloc(b, j.a);
    gv_backend_dealloc(b, j.w);
    gv_backend_dealloc(b, j.o);
    return st;
}

/* Distinct host names over the world. */
static gv_status gv_hw_hosts(gv_hw_ctx *x, gv_hw_prof *p) {
    char me[64] = {0};
    gethostname(me, sizeof me - 1);
    snprintf(p->host, sizeof p->host, "%s", me);
    char *all = malloc((size_t)x->W * 64);
    if (!all) return gv_fail(GV_ERR_NOMEM, "profile: out of memory");
    gv_status st = gv_comm_allgather(x->world, me, all, 64, GV_COMM_U8);
    int nodes = 0;
    for (int i = 0; st == GV_OK && i < x->W; i++) {
        int seen = 0;
        for (int k = 0; k < i && !seen; k++) seen = !strncmp(all + i * 64, all + k * 64, 64);
        nodes += !seen;
    }
    free(all);
    p->nodes = nodes;
    p->ranks_per_node = nodes ? x->W / nodes : 0;
    return st;
}

gv_status gv_hw_prof_config_check(const gv_hw_prof_config *c, int W) {
    if (W < 2 || (W & (W - 1)))
        return gv_fail(GV_ERR_INVALID, "profile hardware: the world has %d ranks: needs a power of two >= 2",
                       W);
    if (c->iters < 1 || c->warmup < 0)
        return gv_fail(GV_ERR_INVALID, "profile hardware: iters %d, warmup %d: need iters >= 1, warmup >= 0",
                       c->iters, c->warmup);
    if (c->min_bytes < (size_t)4 * W || c->min_bytes > c->max_bytes || (c->min_bytes & (c->min_bytes - 1)) ||
        (c->max_bytes & (c->max_bytes - 1)))
        return gv_fail(
            GV_ERR_INVALID,
            "profile hardware: sizes %zu .. %zu bytes: need powers of two, min <= max, min >= 4 * %d",
            c->min_bytes, c->max_bytes, W);
    if (c->sp_max_mb < 0 || (c->sp_max_mb & (c->sp_max_mb - 1)) || c->matmul_n < 1 || !(c->window_ms > 0))
        return gv_fail(GV_ERR_INVALID,
                       "profile hardware: sp max %d MiB (a power of two or 0), matmul n %d, window %g ms",
                       c->sp_max_mb, c->matmul_n, c->window_ms);
    return GV_OK;
}

gv_status gv_hw_prof_run(gv_hw_prof *p, gv_comm *world, gv_backend *b, const gv_hw_prof_config *c) {
    memset(p, 0, sizeof *p);
    int W = gv_comm_size(world);
    GV_TRY(gv_hw_prof_config_check(c, W));
    p->cfg = *c;
    p->world = W;
    gv_prof_date(p->date, sizeof p->date);
    snprintf(p->comm, sizeof p->comm, "%s", gv_comm_kind(world));
    snprintf(p->backend, sizeof p->backend, "%s", gv_backend_name(b));

    gv_hw_ctx x = {world, W, gv_comm_rank(world), gv_comm_rank(world) == 0, c, NULL, NULL, NULL, NULL, NULL};
    size_t buf = c->max_bytes > ((size_t)c->sp_max_mb << 20) ? c->max_bytes : (size_t)c->sp_max_mb << 20;
    /* The collectives' buffers live where the communicator moves data (nccl: the backend's device memory),
     * so the timings contain no staging copies. */
    int dev = gv_comm_device(world) >= 0 && strcmp(gv_backend_name(b), "cpu") != 0;
    gv_status st = GV_OK;
    float *hs = malloc(buf), *hr = malloc(buf);
    if (!hs || !hr) {
        free(hs);
        free(hr);
        hs = hr = NULL;
    } else {
        for (size_t i = 0; i < buf / sizeof(float); i++) hs[i] = 1.0f, hr[i] = 0.0f;
        if (dev) {
            void *ds = NULL, *dr = NULL;
            st = gv_backend_alloc(b, &ds, buf);
            if (st == GV_OK) st = gv_backend_alloc(b, &dr, buf);
            if (st == GV_OK) st = gv_backend_upload(b, ds, hs, buf);
            if (st == GV_OK) st = gv_backend_upload(b, dr, hr, buf);
            if (st == GV_OK) st = gv_backend_sync(b);
            free(hs);
            free(hr);
            hs = ds, hr = dr;
        }
    }
    x.s = hs;
    x.r = hr;
    x.t = malloc((size_t)c->iters * sizeof *x.t);
    x.all = malloc((size_t)W * sizeof *x.all);
    x.ranks = malloc((size_t)W * sizeof *x.ranks);
    if (st == GV_OK && (!x.s || !x.r || !x.t || !x.all || !x.ranks))
        st = gv_fail(GV_ERR_NOMEM, "profile hardware: out of memory for %zu-byte buffers", buf);
    if (st == GV_OK) st = gv_hw_hosts(&x, p);
    if (st == GV_OK && x.leader)
        gv_info("profile hardware: %d ranks on %d node(s), %s communicator, %s backend, %d+%d iterations", W,
                p->nodes, p->comm, p->backend, c->warmup, c->iters);
    if (st == GV_OK) st = gv_hw_collectives(&x, p);
    if (st == GV_OK) st = gv_hw_p2p(&x, p);
    if (st == GV_OK) st = gv_hw_sp_tables(&x, p);
    if (st == GV_OK) st = gv_hw_matmul_overlap(&x, b, p);
    if (dev) {
        if (x.s) gv_backend_dealloc(b, x.s);
        if (x.r) gv_backend_dealloc(b, x.r);
    } else {
        free(x.s);
        free(x.r);
    }
    free(x.t);
    free(x.all);
    free(x.ranks);
    if (st != GV_OK) gv_hw_prof_free(p);
    return st;
}
