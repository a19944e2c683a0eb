/* Datasets: determinism and plan-independence of batches, file formats and their errors, and the builtin
 * language's statistics. */
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/data.h"
#include "test.h"

#define DIR "test_data.tmp"

static void write_shard(const char *path, int32_t magic, int32_t version, int32_t count, const uint16_t *tok,
                        int ntok) {
    int32_t hdr[256] = {0};
    hdr[0] = magic;
    hdr[1] = version;
    hdr[2] = count;
    FILE *f = fopen(path, "wb");
    fwrite(hdr, 4, 256, f);
    fwrite(tok, 2, (size_t)ntok, f);
    fclose(f);
}

static void expect_open_error(const char *path, gv_status want, const char *frag) {
    gv_dataset *d = (gv_dataset *)1;
    gv_clear_error();
    gv_status st = gv_dataset_open(&d, path, 1);
    if (getenv("GV_TEST_VERBOSE")) printf("  %s\n", gv_last_error());
    if (st != want) fprintf(stderr, "  %s: got %s (%s)\n", path, gv_status_name(st), gv_last_error());
    CHECK(st == want);
    CHECK(d == NULL);
    CHECK(strstr(gv_last_error(), path) != NULL);
    if (!strstr(gv_last_error(), frag)) fprintf(stderr, "  message lacks '%s': %s\n", frag, gv_last_error());
    CHECK(strstr(gv_last_error(), frag) != NULL);
}

/* Row r of (step, split) depends only on those: same across opens, prefix-stable in B, equal to a slice. */
static void check_plan_independence(const char *path, int T) {
    enum { B = 4 };
    int32_t x1[B * 64], y1[B * 64], x2[B * 64], y2[B * 64], xr[B * 64], yr[B * 64];
    gv_dataset *d1, *d2;
    CHECK_OK(gv_dataset_open(&d1, path, 1234));
    CHECK_OK(gv_dataset_open(&d2, path, 1234));
    for (int split = 0; split < 2; split++) {
        CHECK_OK(gv_dataset_batch(d1, 7, split, B, T, x1, y1));
        CHECK_OK(gv_dataset_batch(d2, 7, split, B, T, x2, y2));
        CHECK(memcmp(x1, x2, sizeof(int32_t) * B * T) == 0 && memcmp(y1, y2, sizeof(int32_t) * B * T) == 0);
        /* B=2 is the first half of B=4; rows [2,4) fetched alone are the second half. */
        CHECK_OK(gv_dataset_batch(d2, 7, split, 2, T, xr, yr));
        CHECK_OK(gv_dataset_rows(d2, 7, split, 2, 2, T, xr + 2 * T, yr + 2 * T));
        CHECK(memcmp(x1, xr, sizeof(int32_t) * B * T) == 0 && memcmp(y1, yr, sizeof(int32_t) * B * T) == 0);
        /* Row by row, in any order. */
        for (int r = B - 1; r >= 0; r--)
            CHECK_OK(gv_dataset_rows(d2, 7, split, r, 1, T, xr + r * T, yr + r * T));
        CHECK(memcmp(x1, xr, sizeof(int32_t) * B * T) == 0 && memcmp(y1, yr, sizeof(int32_t) * B * T) == 0);
        /* Targets are the tokens shifted by one. */
        for (int r = 0; r < B; r++)
            for (int t = 0; t + 1 < T; t++) CHECK(y1[r * T + t] == x1[r * T + t + 1]);
        /* Another step, and the other split, give other rows. */
        CHECK_OK(gv_dataset_batch(d2, 8, split, B, T, x2, y2));
        CHECK(memcmp(x1, x2, sizeof(int32_t) * B * T) != 0);
        CHECK_OK(gv_dataset_batch(d2, 7, 1 - split, B, T, x2, y2));
        CHECK(memcmp(x1, x2, sizeof(int32_t) * B * T) != 0);
    }
    gv_dataset_free(d2);
    /* Another seed gives another batch. */
    CHECK_OK(gv_dataset_open(&d2, path, 1235));
    CHECK_OK(gv_dataset_batch(d1, 7, 0, B, T, x1, y1));
    CHECK_OK(gv_dataset_batch(d2, 7, 0, B, T, x2, y2));
    CHECK(memcmp(x1, x2, sizeof(int32_t) * B * T) != 0);
    gv_clear_error();
    CHECK(gv_dataset_batch(d1, 0, 2, B, T, x1, y1) == GV_ERR_INVALID);
    CHECK(gv_dataset_batch(d1, 0, 0, B, 0, x1, y1) == GV_ERR_INVALID);
    gv_dataset_free(d1);
    gv_dataset_free(d2);
}

/* Plug-in entropy (nats) of next given a context, from counts laid out [ctx][vocab]. */
static double cond_entropy(const uint32_t *counts, int nctx, int vocab) {
    double total = 0, h = 0;
    for (int c = 0; c < nctx; c++) {
        double n = 0;
        for (int v = 0; v < vocab; v++) n += counts[(size_t)c * vocab + v];
        for (int v = 0; v < vocab; v++) {
            double k = counts[(size_t)c * vocab + v];
            if (k > 0) h -= k * log(k / n);
        }
        total += n;
    }
    return h / total;
}

static void test_builtin(void) {
    check_plan_independence(NULL, 64);
    check_plan_independence("builtin", 17);

    gv_dataset *d;
    CHECK_OK(gv_dataset_open(&d, "builtin", 5));
    CHECK(gv_dataset_vocab(d) == 512);
    CHECK(gv_dataset_ntokens(d, 0) == -1);
    CHECK(strstr(gv_dataset_describe(d), "builtin") != NULL);
    double h = gv_dataset_entropy_estimate(d);
    CHECK(h > 1.5 && h < 2.5);
    CHECK_CLOSE(h, 1.5597, 0, 1e-3);

    /* Rows of T=32 are prefixes of rows of T=64 (the chain runs forward from the same state). */
    int32_t a[64], at[64], b[32], bt[32];
    CHECK_OK(gv_dataset_rows(d, 3, 0, 9, 1, 64, a, at));
    CHECK_OK(gv_dataset_rows(d, 3, 0, 9, 1, 32, b, bt));
    CHECK(memcmp(a, b, sizeof b) == 0 && memcmp(at, bt, sizeof bt) == 0);

    /* Statistics over ~200k transitions: tokens in range, unigram not far below ln 512, the next token given
     * the previous one far from uniform, and given (previous, class of the one before) at the entropy
     * estimate. */
    enum { B = 50, T = 512, V = 512, STEPS = 8 };
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T);
    uint32_t *uni = calloc(V, sizeof(uint32_t)), *bi = calloc((size_t)V * V, sizeof(uint32_t));
    uint32_t *tri = calloc((size_t)V * 4 * V, sizeof(uint32_t));
    int in_range = 1;
    for (int s = 0; s < STEPS; s++) {
        CHECK_OK(gv_dataset_batch(d, (uint64_t)s, 0, B, T, x, y));
        for (int r = 0; r < B; r++)
            for (int t = 0; t < T; t++) {
                int32_t c = x[r * T + t], n = y[r * T + t];
                if (c < 0 || c >= V || n < 0 || n >= V) {
                    in_range = 0;
                    continue;
                }
                uni[n]++;
                bi[(size_t)c * V + n]++;
                if (t > 0) tri[((size_t)c * 4 + (x[r * T + t - 1] & 3)) * V + n]++;
            }
    }
    CHECK(in_range);
    double h1 = cond_entropy(uni, 1, V), h2 = cond_entropy(bi, V, V), h3 = cond_entropy(tri, V * 4, V);
    printf("builtin: unigram %.3f, bigram %.3f, order-2 %.3f nats (estimate %.4f, uniform %.3f)\n", h1, h2,
           h3, h, log(512.0));
    CHECK(h1 > 5.0 && h1 < log(512.0));
    CHECK(h2 < 2.3);
    CHECK(h3 < h2 - 0.3);
    CHECK_CLOSE(h3, h, 0, 0.1);
    free(x);
    free(y);
    free(uni);
    free(bi);
    free(tri);
    gv_dataset_free(d);
}

/* Where `row` (n tokens) starts in `stream`, or -1. */
static int64_t find_window(const uint8_t *stream, int64_t len, const int32_t *row, int n) {
    for (int64_t s = 0; s + n <= len; s++) {
        int k = 0;
        while (k < n && stream[s + k] == row[k]) k++;
        if (k == n) return s;
    }
    return -1;
}

static void test_text(void) {
    const char *path = DIR "/corpus.txt";
    enum { N = 1000 };
    uint8_t bytes[N];
    for (int i = 0; i < N; i++) bytes[i] = (uint8_t)((i * 37 + i / 256 * 11) & 255); /* every byte value */
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, N, f);
    fclose(f);
    check_plan_independence(path, 50);

    gv_dataset *d;
    CHECK_OK(gv_dataset_open(&d, path, 3));
    CHECK(gv_dataset_vocab(d) == 256);
    CHECK(isnan(gv_dataset_entropy_estimate(d)));
    CHECK(gv_dataset_ntokens(d, 0) == 900 && gv_dataset_ntokens(d, 1) == 100);
    CHECK(strstr(gv_dataset_describe(d), path) != NULL);
    enum { B = 8, T = 40 };
    int32_t x[B * T], y[B * T];
    for (int split = 0; split < 2; split++)
        for (int s = 0; s < 20; s++) {
            CHECK_OK(gv_dataset_batch(d, (uint64_t)s, split, B, T, x, y));
            for (int r = 0; r < B; r++) {
                /* Tokens are the file's bytes: a window of train ([0, 900)) or eval ([900, 1000)). */
                int64_t lo = split ? 900 : 0, len = split ? 100 : 900;
                int64_t at = find_window(bytes + lo, len, x + r * T, T);
                CHECK(at >= 0);
                if (at >= 0) {
                    CHECK(at + T < len); /* the target of the last token is in the split too */
                    if (at + T < len) CHECK(y[r * T + T - 1] == bytes[lo + at + T]);
                }
            }
        }
    /* Eval holds 100 tokens: T = 100 needs 101. */
    int32_t *bx = malloc(sizeof(int32_t) * 100), *by = malloc(sizeof(int32_t) * 100);
    gv_clear_error();
    CHECK(gv_dataset_batch(d, 0, 1, 1, 100, bx, by) == GV_ERR_INVALID);
    if (getenv("GV_TEST_VERBOSE")) printf("  %s\n", gv_last_error());
    CHECK(strstr(gv_last_error(), path) && strstr(gv_last_error(), "100 tokens") &&
          strstr(gv_last_error(), "T = 100"));
    CHECK_OK(gv_dataset_batch(d, 0, 1, 1, 99, bx, by));
    CHECK_OK(gv_dataset_batch(d, 0, 0, 1, 100, bx, by));
    free(bx);
    free(by);
    gv_dataset_free(d);
}

static void test_shards(void) {
    enum { N1 = 3000, N2 = 1500, N = N1 + N2 };
    uint16_t *tok = malloc(sizeof(uint16_t) * N); /* i -> distinct values, so a window's start is findable */
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)((i * 7919u + 13) % GV_DATA_GPT2_VOCAB);
    mkdir(DIR "/shards", 0755);
    write_shard(DIR "/shards/train_000.bin", GV_DATA_SHARD_MAGIC, 1, N1, tok, N1);
    write_shard(DIR "/shards/train_001.bin", GV_DATA_SHARD_MAGIC, 1, N2, tok + N1, N2);
    check_plan_independence(DIR "/shards/train_000.bin", 64);
    check_plan_independence(DIR "/shards", 64);

    gv_dataset *d, *dl;
    CHECK_OK(gv_dataset_open(&d, DIR "/shards", 11));
    CHECK(gv_dataset_vocab(d) == 50257);
    CHECK(gv_dataset_ntokens(d, 0) + gv_dataset_ntokens(d, 1) == N);
    CHECK(gv_dataset_ntokens(d, 1) == N / 10);
    CHECK(strstr(gv_dataset_describe(d), "2 files") != NULL);
    CHECK_OK(gv_dataset_open(&dl, DIR "/shards/train_000.bin," DIR "/shards/train_001.bin", 11));
    enum { B = 16, T = 200 };
    int32_t x[B * T], y[B * T], xl[B * T], yl[B * T];
    int crossed = 0;
    for (int s = 0; s < 30; s++) {
        CHECK_OK(gv_dataset_batch(d, (uint64_t)s, 0, B, T, x, y));
        CHECK_OK(gv_dataset_batch(dl, (uint64_t)s, 0, B, T, xl, yl));
        CHECK(memcmp(x, xl, sizeof x) == 0 && memcmp(y, yl, sizeof y) == 0); /* dir = same list in order */
        for (int r = 0; r < B; r++) {
            int64_t at = -1;
            for (int i = 0; i < N && at < 0; i++)
                if (tok[i] == x[r * T]) at = i;
            CHECK(at >= 0 && at + T < N - N / 10);
            if (at < 0) continue;
            if (at < N1 && at + T >= N1) crossed++;
            for (int t = 0; t < T; t++) CHECK(x[r * T + t] == tok[at + t] && y[r * T + t] == tok[at + t + 1]);
        }
    }
    CHECK(crossed > 0); /* some windows span the two shards */
    gv_dataset_free(d);
    gv_dataset_free(dl);

    /* Errors, each naming the file. */
    expect_open_error(DIR "/nope.bin", GV_ERR_IO, "No such file");
    expect_open_error(DIR "/empty_dir_is_not_here", GV_ERR_IO, "No such file");
    const char *p = DIR "/magic.bin";
    write_shard(p, 12345, 1, 10, tok, 10);
    expect_open_error(p, GV_ERR_FORMAT, "bad magic 12345");
    p = DIR "/version.bin";
    write_shard(p, GV_DATA_SHARD_MAGIC, 2, 10, tok, 10);
    expect_open_error(p, GV_ERR_FORMAT, "version 2");
    p = DIR "/size.bin";
    write_shard(p, GV_DATA_SHARD_MAGIC, 1, 1000, tok, 512);
    expect_open_error(p, GV_ERR_FORMAT, "header says 1000 tokens (3024 bytes) but file has 2048 bytes");
    p = DIR "/short.bin";
    FILE *f = fopen(p, "wb");
    fwrite(tok, 2, 20, f);
    fclose(f);
    expect_open_error(p, GV_ERR_FORMAT, "shorter than the 1024-byte");
    /* A list with a missing member names that member. */
    gv_dataset *dd;
    gv_clear_error();
    CHECK(gv_dataset_open(&dd, DIR "/shards/train_000.bin," DIR "/gone.bin", 1) == GV_ERR_IO);
    CHECK(strstr(gv_last_error(), DIR "/gone.bin") != NULL);
    /* Tokens beyond the GPT-2 vocab are caught when read. */
    p = DIR "/vocab.bin";
    uint16_t bad[400];
    for (int i = 0; i < 400; i++) bad[i] = 60000;
    write_shard(p, GV_DATA_SHARD_MAGIC, 1, 400, bad, 400);
    CHECK_OK(gv_dataset_open(&dd, p, 1));
    gv_clear_error();
    CHECK(gv_dataset_batch(dd, 0, 0, 1, 8, x, y) == GV_ERR_FORMAT);
    CHECK(strstr(gv_last_error(), p) && strstr(gv_last_error(), "60000"));
    /* Too short for T+1. */
    CHECK(gv_dataset_batch(dd, 0, 0, 1, 400, x, y) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), p) && strstr(gv_last_error(), "360 tokens") &&
          strstr(gv_last_error(), "T = 400"));
    gv_dataset_free(dd);
    free(tok);
}

int main(void) {
    mkdir(DIR, 0755);
    test_builtin();
    test_text();
    test_shards();
    return gv_test_result("test_data");
}
