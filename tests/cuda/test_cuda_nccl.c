/* The nccl communicator on one GPU, world size 1 (NCCL refuses two ranks on one GPU): every collective of
 * the vtable on device buffers of the cuda backend (its stream-ordered pool), in place and out of place, in
 * every dtype; host buffers (staged to the device); a paired sendrecv to self; a receive whose count does not
 * match the message (an error, not a hang); async mode ordered by events against a stream of the caller; the
 * nonblocking requests on device buffers ordered by the backend's and the requests' events; a nonblocking
 * message to self refused (it would hang on the communicator's one p2p stream); and a trainer run
 * with the nccl world against the same run without a communicator (same GPU, same kernels: the losses agree
 * within 1e-4 relative, the backend's atomics aside identical). Exit 77 (skipped) without a GPU or without
 * NCCL. */
#include <math.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "gv/backend.h"
#include "gv/comm.h"
#include "gv/tensor.h"
#include "gv/train.h"
#include "test.h"

enum { N = 1000 };

static gv_backend *be;

static void *dev(size_t bytes) {
    void *p = NULL;
    CHECK_OK(gv_backend_alloc(be, &p, bytes));
    return p;
}

static void up(void *d, const void *h, size_t bytes) {
    CHECK_OK(gv_backend_upload(be, d, h, bytes));
    CHECK_OK(gv_backend_sync(be)); /* the comm reads it next: the caller's work is done first */
}

static void down(void *h, const void *d, size_t bytes) {
    CHECK_OK(gv_backend_download(be, h, d, bytes));
}

/* f32 data through every collective; on one rank each is a copy of the right block. */
static void collectives_f32(gv_comm *w) {
    float h[N], o[N];
    for (int i = 0; i < N; i++) h[i] = (float)i * 0.5f - 17.0f;
    float *a = dev(N * 4), *b = dev(N * 4);
    const gv_comm_op ops[3] = {GV_COMM_SUM, GV_COMM_MAX, GV_COMM_MIN};
    for (int k = 0; k < 3; k++) {
        up(a, h, sizeof h);
        CHECK_OK(gv_backend_memset0(be, b, N * 4));
        CHECK_OK(gv_backend_sync(be));
        CHECK_OK(gv_comm_allreduce(w, a, b, N, GV_COMM_F32, ops[k]));
        down(o, b, sizeof o);
        CHECK(!memcmp(o, h, sizeof h));
        CHECK_OK(gv_comm_allreduce(w, a, a, N, GV_COMM_F32, ops[k])); /* in place */
        down(o, a, sizeof o);
        CHECK(!memcmp(o, h, sizeof h));
    }
    up(a, h, sizeof h);
    CHECK_OK(gv_comm_reduce_scatter(w, a, b, N, GV_COMM_F32, GV_COMM_SUM));
    down(o, b, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    CHECK_OK(gv_comm_allgather(w, a, b, N, GV_COMM_F32));
    down(o, b, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    CHECK_OK(gv_comm_alltoall(w, a, b, N, GV_COMM_F32));
    down(o, b, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    CHECK_OK(gv_comm_alltoall(w, a, a, N, GV_COMM_F32)); /* in place: through the comm's copy */
    down(o, a, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    CHECK_OK(gv_comm_broadcast(w, a, N, GV_COMM_F32, 0));
    down(o, a, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    /* a paired exchange with itself (one ncclGroupStart/End), then a count the message does not have */
    CHECK_OK(gv_backend_memset0(be, b, N * 4));
    CHECK_OK(gv_backend_sync(be));
    CHECK_OK(gv_comm_sendrecv(w, a, N, 0, b, N, 0, GV_COMM_F32, 5));
    down(o, b, sizeof o);
    CHECK(!memcmp(o, h, sizeof h));
    gv_status st = gv_comm_sendrecv(w, a, N - 1, 0, b, N, 0, GV_COMM_F32, 5);
    CHECK(st == GV_ERR_COMM && strstr(gv_last_error(), "has tag 5 and 999 elements"));
    printf("count mismatch: %s\n", gv_last_error());
    CHECK_OK(gv_comm_barrier(w));
    gv_backend_dealloc(be, a);
    gv_backend_dealloc(be, b);
}

/* The other dtypes (bf16 natively, f64, i32, i64, u8) through all-reduce and all-gather. */
static void collectives_dtypes(gv_comm *w) {
    const gv_comm_dtype dts[5] = {GV_COMM_BF16, GV_COMM_F64, GV_COMM_I32, GV_COMM_I64, GV_COMM_U8};
    unsigned char h[N * 8], o[N * 8];
    for (int i = 0; i < N * 8; i++) h[i] = (unsigned char)(i * 7 + 3);
    for (int i = 0; i < N; i++) ((uint16_t *)h)[i] = gv_f32_to_bf16((float)i / 8.0f); /* finite bf16 */
    void *a = dev(sizeof h), *b = dev(sizeof h);
    for (int k = 0; k < 5; k++) {
        size_t bytes = N * gv_comm_dtype_size(dts[k]);
        if (dts[k] == GV_COMM_F64)
            for (int i = 0; i < N; i++) ((double *)h)[i] = i * 0.25;
        up(a, h, bytes);
        CHECK_OK(gv_comm_allreduce(w, a, b, N, dts[k], GV_COMM_MAX));
        down(o, b, bytes);
        CHECK(!memcmp(o, h, bytes));
        CHECK_OK(gv_comm_allgather(w, a, b, N, dts[k]));
        down(o, b, bytes);
        CHECK(!memcmp(o, h, bytes));
    }
    gv_backend_dealloc(be, a);
    gv_backend_dealloc(be, b);
}

/* Host buffers on a device communicator: staged through the device both ways. */
static void host_buffers(gv_comm *w) {
    double x[3] = {1.5, -2, 4}, y[3] = {0};
    CHECK_OK(gv_comm_allreduce(w, x, y, 3, GV_COMM_F64, GV_COMM_SUM));
    CHECK(y[0] == 1.5 && y[1] == -2 && y[2] == 4);
    float g[8];
    float s[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK_OK(gv_comm_allgather(w, s, g, 8, GV_COMM_F32));
    CHECK(!memcmp(g, s, sizeof s));
    float *d = dev(8 * 4); /* mixed: host send, device recv */
    CHECK_OK(gv_comm_allreduce(w, s, d, 8, GV_COMM_F32, GV_COMM_SUM));
    float o[8];
    down(o, d, sizeof o);
    CHECK(!memcmp(o, s, sizeof s));
    gv_backend_dealloc(be, d);
}

/* Async: the caller's stream fills a buffer, the comm stream waits for its event, reduces, and the
 * caller's stream waits for the comm's event before copying the result out. */
static void async_events(gv_comm *w) {
    cudaStream_t s;
    cudaEvent_t ready;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming) == cudaSuccess);
    size_t n = (size_t)1 << 22; /* 16 MiB: the copy takes a while, so a missing wait would be seen */
    float *h = malloc(n * 4), *o = malloc(n * 4), *a = NULL, *b = NULL;
    CHECK(cudaMalloc((void **)&a, n * 4) == cudaSuccess && cudaMalloc((void **)&b, n * 4) == cudaSuccess);
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 1013);
    CHECK(cudaMemsetAsync(b, 0xff, n * 4, s) == cudaSuccess);
    CHECK(cudaMemcpyAsync(a, h, n * 4, cudaMemcpyHostToDevice, s) == cudaSuccess);
    CHECK(cudaEventRecord(ready, s) == cudaSuccess);
    CHECK_OK(gv_comm_set_async(w, 1));
    CHECK_OK(gv_comm_wait_event(w, ready));
    CHECK_OK(gv_comm_allreduce(w, a, b, n, GV_COMM_F32, GV_COMM_SUM));
    void *done = NULL;
    CHECK_OK(gv_comm_record(w, &done));
    CHECK(done != NULL);
    float hx = 1;
    CHECK(gv_comm_allreduce(w, &hx, &hx, 1, GV_COMM_F32, GV_COMM_SUM) == GV_ERR_INVALID); /* host: refused */
    CHECK(cudaStreamWaitEvent(s, (cudaEvent_t)done, 0) == cudaSuccess);
    CHECK(cudaMemcpyAsync(o, b, n * 4, cudaMemcpyDeviceToHost, s) == cudaSuccess);
    CHECK(cudaStreamSynchronize(s) == cudaSuccess);
    CHECK_OK(gv_comm_set_async(w, 0));
    CHECK(!memcmp(o, h, n * 4));
    cudaFree(a);
    cudaFree(b);
    free(h);
    free(o);
    cudaEventDestroy(ready);
    cudaStreamDestroy(s);
}

/* Nonblocking requests on device buffers the backend wrote, without a host sync between: the comm stream
 * waits for the backend's event, the backend's stream for each request's event. Five requests outstanding,
 * waited in another order; 16 MiB buffers, so a missing wait shows. A host buffer is staged (complete on
 * return, no event); a NULL done_event waits on the host. */
static void requests(gv_comm *w) {
    size_t n = (size_t)1 << 22;
    float *h = malloc(n * 4), *o = malloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 977) - 300.0f;
    float *a = dev(n * 4), *b = dev(n * 4), *c = dev(n * 4), *d = dev(n * 4), *e = dev(n * 4),
          *g = dev(n * 4);
    uint16_t hb[N], ob[N];
    for (int i = 0; i < N; i++) hb[i] = gv_f32_to_bf16((float)(i % 64) - 8.0f);
    void *f = dev(N * 2);
    CHECK_OK(gv_backend_upload(be, a, h, n * 4)); /* stream-ordered, no sync: the event orders the comm */
    CHECK_OK(gv_backend_upload(be, c, h, n * 4));
    CHECK_OK(gv_backend_upload(be, d, h, n * 4));
    CHECK_OK(gv_backend_upload(be, f, hb, sizeof hb));
    CHECK_OK(gv_backend_memset0(be, b, n * 4));
    CHECK_OK(gv_backend_memset0(be, e, n * 4));
    void *ready = NULL;
    CHECK_OK(gv_backend_event_record(be, &ready));
    CHECK(ready != NULL);
    gv_comm_req *q[5];
    CHECK_OK(gv_comm_iallreduce(w, a, b, n, GV_COMM_F32, GV_COMM_SUM, ready, &q[0]));
    CHECK_OK(gv_comm_ireduce_scatter(w, c, c, n, GV_COMM_F32, GV_COMM_SUM, ready, &q[1])); /* in place */
    CHECK_OK(gv_comm_iallgather(w, d, e, n, GV_COMM_F32, ready, &q[2]));
    CHECK_OK(gv_comm_ireduce(w, a, g, n, GV_COMM_F32, GV_COMM_MAX, 0, ready, &q[3])); /* a: read by two */
    CHECK_OK(gv_comm_iallreduce(w, f, f, N, GV_COMM_BF16, GV_COMM_SUM, ready, &q[4]));
    static const int order[5] = {2, 4, 0, 3, 1};
    for (int k = 0; k < 5; k++) {
        void *ev = NULL;
        CHECK_OK(gv_comm_req_wait(q[order[k]], &ev));
        CHECK(ev != NULL); /* device: the comm stream's event, no host wait */
        CHECK_OK(gv_backend_event_wait(be, ev));
    }
    float *outs[4] = {b, c, e, g};
    for (int k = 0; k < 4; k++) {
        down(o, outs[k], n * 4);
        if (memcmp(o, h, n * 4)) fprintf(stderr, "request result %d differs\n", k), gv_test_failures++;
    }
    down(ob, f, sizeof ob);
    CHECK(!memcmp(ob, hb, sizeof hb));
    /* host buffers: staged by the blocking form inside, complete on return */
    double x[3] = {1.5, -2, 4}, y[3] = {0};
    gv_comm_req *r;
    CHECK_OK(gv_comm_iallreduce(w, x, y, 3, GV_COMM_F64, GV_COMM_SUM, NULL, &r));
    void *ev = (void *)1;
    CHECK_OK(gv_comm_req_wait(r, &ev));
    CHECK(ev == NULL && y[0] == 1.5 && y[1] == -2 && y[2] == 4);
    /* NULL done_event: a host wait on the request's event */
    CHECK_OK(gv_backend_memset0(be, b, n * 4));
    CHECK_OK(gv_backend_event_record(be, &ready));
    CHECK_OK(gv_comm_iallreduce(w, e, b, n, GV_COMM_F32, GV_COMM_SUM, ready, &r));
    CHECK_OK(gv_comm_req_wait(r, NULL));
    CHECK(cudaMemcpy(o, b, n * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
    CHECK(!memcmp(o, h, n * 4));
    void *bufs[7] = {a, b, c, d, e, f, g};
    for (int k = 0; k < 7; k++) gv_backend_dealloc(be, bufs[k]);
    free(h);
    free(o);
}

/* A trainer run on the nccl world of one rank against the same run alone. */
static void trainer(gv_comm *w) {
    gv_train_result r[2];
    for (int k = 0; k < 2; k++) {
        gv_train_config c;
        gv_train_config_defaults(&c);
        CHECK_OK(gv_model_spec_preset(&c.spec, "gpt2-tiny"));
        c.spec.n_layer = 2, c.spec.n_embd = 256, c.spec.n_head = 4, c.spec.ffn = 1024;
        c.backend = "cuda";
        c.steps = 5, c.global_batch = 4, c.micro_batches = 2, c.seq = 128, c.warmup = 1, c.eval_every = 0;
        c.comm = k ? w : NULL;
        c.comm_kind = k ? "nccl" : NULL;
        CHECK_OK(gv_train_run(&c, &r[k]));
    }
    for (int s = 0; s < 5; s++) {
        printf("step %d: alone %.6f  nccl world %.6f\n", s + 1, r[0].losses[s], r[1].losses[s]);
        CHECK_CLOSE(r[1].losses[s], r[0].losses[s], 1e-4, 0);
    }
    free(r[0].losses);
    free(r[1].losses);
}

int main(void) {
    if (!gv_backend_available("cuda") || !gv_comm_nccl_built()) {
        printf("test_cuda_nccl: no CUDA device or no NCCL, skipped\n");
        return 77;
    }
    CHECK_OK(gv_backend_init(&be, "cuda", 0));
    gv_comm_nccl_opts o;
    gv_comm_nccl_opts_from_env(&o);
    o.rendezvous_dir = NULL, o.rank = 0, o.size = 1, o.device = 0;
    gv_comm *w = NULL;
    CHECK_OK(gv_comm_init_nccl(&w, &o));
    if (!w) return gv_test_result("test_cuda_nccl");
    CHECK(!strcmp(gv_comm_kind(w), "nccl") && gv_comm_size(w) == 1 && gv_comm_device(w) == 0);
    int zero = 0;
    gv_comm *g = NULL;
    CHECK_OK(gv_comm_group(w, &zero, 1, &g));
    CHECK(g == w); /* the whole world in order is the world */
    collectives_f32(w);
    collectives_dtypes(w);
    host_buffers(w);
    async_events(w);
    requests(w);
    /* nonblocking messages run on a stream of the communicator's own: one to self would wait forever there,
     * so it is refused, naming the call (2 ranks: the pipelines of test_cuda_plans) */
    float *a = dev(N * sizeof(float));
    gv_comm_req *q = NULL;
    CHECK(gv_comm_isend(w, a, N, GV_COMM_F32, 0, 3, NULL, &q) == GV_ERR_UNSUPPORTED && q == NULL);
    CHECK(strstr(gv_last_error(), "nccl isend") != NULL);
    CHECK(gv_comm_irecv(w, a, N, GV_COMM_F32, 0, 3, NULL, &q) == GV_ERR_UNSUPPORTED && q == NULL);
    gv_backend_dealloc(be, a);
    trainer(w);
    gv_comm_free(w);
    gv_backend_free(be);
    return gv_test_result("test_cuda_nccl");
}
