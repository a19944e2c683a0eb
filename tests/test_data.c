/* Datasets: determinism and plan-independence of batches, file formats and their errors, the builtin
 * language's statistics, BERT's masked rows and ViT's images (patch layout, file format, splits). */
#include <math.h>
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

/* BERT: k = round(0.15 T) masked positions per row with the original token as target, [MASK] / random /
 * kept at 80/10/10 %, -1 elsewhere and the inputs unchanged there; types 0 then 1 from a boundary in
 * [1, T); a slice of the batch equals the same rows of the whole batch. */
static void test_mlm(void) {
    enum { B = 256, T = 40 };
    gv_model_spec spec;
    CHECK_OK(gv_model_spec_preset(&spec, "bert-tiny"));
    gv_dataset *d = NULL;
    CHECK_OK(gv_dataset_open_for(&d, NULL, 7, &spec));
    int32_t *in = malloc(sizeof(int32_t) * B * T * 2), *tg = malloc(sizeof(int32_t) * B * T);
    int32_t *raw = malloc(sizeof(int32_t) * B * T), *nx = malloc(sizeof(int32_t) * B * T);
    CHECK_OK(gv_dataset_rows_for(d, &spec, 3, 0, 0, B, T, in, tg));
    CHECK_OK(gv_dataset_rows(d, 3, 0, 0, B, T, raw, nx)); /* the unmasked rows */
    int k = 6, n_mask = 0, n_rand = 0, n_kept = 0;        /* round(0.15 * 40) */
    for (int b = 0; b < B; b++) {
        int cnt = 0, seg = -1;
        for (int t = 0; t < T; t++) {
            int i = b * T + t, id = in[2 * i], ty = in[2 * i + 1];
            CHECK(ty == 0 || ty == 1);
            if (ty == 1 && seg < 0) seg = t;
            if (seg >= 0) CHECK(ty == 1);
            if (tg[i] == -1) {
                CHECK(id == raw[i]);
                continue;
            }
            cnt++;
            CHECK(tg[i] == raw[i]);
            if (id == spec.mask_token)
                n_mask++;
            else if (id == raw[i])
                n_kept++;
            else
                n_rand++;
            CHECK(id == spec.mask_token || (id >= 0 && id < GV_DATA_BUILTIN_VOCAB));
        }
        CHECK(cnt == k);
        CHECK(seg >= 1 && seg < T);
    }
    double tot = (double)B * k; /* 1536 picks: 3 sd of the 80% share is 3.1% */
    printf("mlm: %d rows x %d masked: [MASK] %.3f, random %.3f, kept %.3f\n", B, k, n_mask / tot,
           n_rand / tot, n_kept / tot);
    CHECK(fabs(n_mask / tot - 0.8) < 0.035);
    CHECK(fabs(n_rand / tot - 0.1) < 0.03); /* a random draw equal to the original counts as kept (1/512) */
    CHECK(fabs(n_kept / tot - 0.1) < 0.03);
    int32_t *in2 = malloc(sizeof(int32_t) * 3 * T * 2), *tg2 = malloc(sizeof(int32_t) * 3 * T);
    CHECK_OK(gv_dataset_rows_for(d, &spec, 3, 0, 17, 3, T, in2, tg2));
    CHECK(!memcmp(in2, in + 17 * T * 2, sizeof(int32_t) * 3 * T * 2));
    CHECK(!memcmp(tg2, tg + 17 * T, sizeof(int32_t) * 3 * T));
    CHECK_OK(gv_dataset_rows_for(d, &spec, 4, 0, 17, 3, T, in2, tg2)); /* another step: other masks */
    CHECK(memcmp(tg2, tg + 17 * T, sizeof(int32_t) * 3 * T) != 0);
    free(in), free(tg), free(raw), free(nx), free(in2), free(tg2);
    gv_dataset_free(d);
    /* A vocab too small for the source is refused. */
    spec.vocab = 300, spec.mask_token = 299;
    d = (gv_dataset *)1;
    CHECK(gv_dataset_open_for(&d, NULL, 7, &spec) == GV_ERR_INVALID && d == NULL);
}

/* ViT: an image file whose image i has pixel (c, y, x) = (i + 7c + 3y + 5x) mod 256 and label i mod K: the
 * rows are whole images in the patch layout (class token zero, patches row-major, (channel, row, col)),
 * the label the target of position 0; train rows come from the first 90% of the images, eval rows from
 * the rest; slices equal the batch. Then the built-in set and the file format's errors. */
static void test_images(void) {
    gv_model_spec spec;
    CHECK_OK(gv_model_spec_preset(&spec, "vit-tiny"));
    enum { N = 50, C = 3, S = 24, P = 8, K = 16, T = 10, PD = C * P * P, B = 32 };
    uint8_t *px = malloc((size_t)N * C * S * S);
    int32_t labels[N];
    for (int i = 0; i < N; i++) {
        labels[i] = i % K;
        for (int c = 0; c < C; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++)
                    px[(((size_t)i * C + c) * S + y) * S + x] = (uint8_t)((i + 7 * c + 3 * y + 5 * x) % 256);
    }
    const char *path = DIR "/images.bin";
    CHECK_OK(gv_dataset_write_images(path, N, C, S, K, px, labels));
    gv_dataset *d = NULL;
    CHECK_OK(gv_dataset_open_for(&d, path, 5, &spec));
    CHECK(gv_dataset_vocab(d) == K);
    int32_t *in = malloc(sizeof(int32_t) * B * T * PD), *tg = malloc(sizeof(int32_t) * B * T);
    for (int split = 0; split < 2; split++) {
        CHECK_OK(gv_dataset_rows_for(d, &spec, 2, split, 0, B, T, in, tg));
        for (int b = 0; b < B; b++) {
            const int32_t *w = in + (size_t)b * T * PD;
            int i = (w[PD] + 256) % 256; /* pixel (0,0,0) of patch 0 is i mod 256 */
            CHECK(split == 0 ? i < 45 : i >= 45 && i < N);
            CHECK(tg[b * T] == labels[i]);
            for (int t = 1; t < T; t++) CHECK(tg[b * T + t] == -1);
            for (int k = 0; k < PD; k++) CHECK(w[k] == 0);
            int bad = 0;
            for (int py = 0; py < 3; py++)
                for (int pxi = 0; pxi < 3; pxi++)
                    for (int c = 0; c < C; c++)
                        for (int y = 0; y < P; y++)
                            for (int x = 0; x < P; x++) {
                                int got = w[(1 + py * 3 + pxi) * PD + (c * P + y) * P + x];
                                bad += got != px[(((size_t)i * C + c) * S + py * P + y) * S + pxi * P + x];
                            }
            CHECK(bad == 0);
        }
    }
    int32_t *in2 = malloc(sizeof(int32_t) * 2 * T * PD), *tg2 = malloc(sizeof(int32_t) * 2 * T);
    CHECK_OK(gv_dataset_rows_for(d, &spec, 2, 1, 5, 2, T, in2, tg2));
    CHECK(!memcmp(in2, in + 5 * T * PD, sizeof(int32_t) * 2 * T * PD));
    CHECK(gv_dataset_rows_for(d, &spec, 2, 0, 0, 1, 9, in2, tg2) == GV_ERR_INVALID); /* T != 1 + 9 */
    gv_dataset_free(d);

    /* Built-in: every class appears, labels in range, pixels vary, deterministic. */
    CHECK_OK(gv_dataset_open_for(&d, "builtin", 5, &spec));
    CHECK_OK(gv_dataset_rows_for(d, &spec, 0, 0, 0, B, T, in, tg));
    int seen[K] = {0};
    for (int b = 0; b < B; b++) {
        CHECK(tg[b * T] >= 0 && tg[b * T] < K);
        if (tg[b * T] >= 0 && tg[b * T] < K) seen[tg[b * T]]++;
    }
    int classes = 0;
    for (int k = 0; k < K; k++) classes += seen[k] > 0;
    CHECK(classes >= 10); /* 32 draws over 16 classes */
    CHECK_OK(gv_dataset_rows_for(d, &spec, 0, 0, 5, 2, T, in2, tg2));
    CHECK(!memcmp(in2, in + 5 * T * PD, sizeof(int32_t) * 2 * T * PD));
    gv_dataset_free(d);

    /* Errors: a model of another image size, a truncated file, a label out of range, a bad magic. */
    gv_model_spec other = spec;
    other.image_size = 32, other.max_seq = 17;
    d = (gv_dataset *)1;
    CHECK(gv_dataset_open_for(&d, path, 5, &other) == GV_ERR_INVALID && d == NULL);
    CHECK(truncate(path, 32 + 100) == 0);
    CHECK(gv_dataset_open_for(&d, path, 5, &spec) == GV_ERR_FORMAT && d == NULL);
    CHECK(strstr(gv_last_error(), path) != NULL);
    labels[3] = K;
    CHECK_OK(gv_dataset_write_images(path, N, C, S, K, px, labels));
    CHECK(gv_dataset_open_for(&d, path, 5, &spec) == GV_ERR_FORMAT && d == NULL);
    CHECK(strstr(gv_last_error(), "label 16 of image 3") != NULL);
    FILE *f = fopen(path, "r+b");
    fputc('X', f);
    fclose(f);
    CHECK(gv_dataset_open_for(&d, path, 5, &spec) == GV_ERR_FORMAT && d == NULL);
    free(px), free(in), free(tg), free(in2), free(tg2);
}

int main(void) {
    mkdir(DIR, 0755);
    test_builtin();
    test_text();
    test_shards();
    test_mlm();
    test_images();
    return gv_test_result("test_data");
}
