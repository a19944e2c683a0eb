/* safetensors reader/writer, atomic file writes, and interop with Python's safetensors when installed. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gv/fileio.h"
#include "gv/safetensors.h"
#include "test.h"

#define DIR "test_safetensors.tmp"

static char tmp_of[512];
/* The temp name the atomic writer would use for path. */
static const char *temp_name(const char *path) {
    snprintf(tmp_of, sizeof tmp_of, "%s.tmp.%ld", path, (long)getpid());
    return tmp_of;
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Writes a safetensors file by hand: header JSON padded to 8, then `buf`. */
static void write_st_raw(const char *path, const char *json, const void *buf, size_t nbuf) {
    size_t n = strlen(json), padded = (n + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(json, 1, n, f);
    for (size_t i = n; i < padded; i++) fputc(' ', f);
    if (nbuf) fwrite(buf, 1, nbuf, f);
    fclose(f);
}

/* Opens path expecting failure `want` with a message containing the file name and `frag`. */
static void expect_open_error(const char *path, gv_status want, const char *frag) {
    gv_st_file *f = (gv_st_file *)1;
    gv_clear_error();
    gv_status st = gv_st_open(&f, path);
    if (st != want) fprintf(stderr, "  %s: got status %s (%s)\n", path, gv_status_name(st), gv_last_error());
    CHECK(st == want);
    CHECK(f == NULL);
    if (getenv("GV_TEST_VERBOSE")) printf("  %s\n", gv_last_error());
    CHECK(strstr(gv_last_error(), path) != NULL);
    if (!strstr(gv_last_error(), frag)) fprintf(stderr, "  message lacks '%s': %s\n", frag, gv_last_error());
    CHECK(strstr(gv_last_error(), frag) != NULL);
    if (st == GV_OK) gv_st_close(f);
}

/* f16 bit patterns and their values. */
static const uint16_t f16_bits[6] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555, 0x8000};
static const float f16_vals[6] = {1.0f, -2.0f, 5.9604644775390625e-08f, INFINITY, 0.333251953125f, -0.0f};

static void test_round_trip(void) {
    const char *path = DIR "/all.safetensors";
    float a_f32[6] = {1.5f, -2.25f, 3e-20f, 4e20f, -0.0f, 6.0f};
    uint16_t a_bf16[4], a_u16[5] = {0, 1, 255, 50256, 65535};
    float bf_src[4] = {1.0f, -3.5f, 0.15625f, 1024.0f};
    for (int i = 0; i < 4; i++) a_bf16[i] = gv_f32_to_bf16(bf_src[i]);
    int32_t a_i32[3] = {-7, 0, 2147483647};
    int64_t a_i64[2] = {-5000000000LL, 9007199254740993LL};
    float scalar = 42.0f;
    int64_t s23[2] = {2, 3}, s4[1] = {4}, s3[1] = {3}, s2[1] = {2}, s5[1] = {5}, s03[2] = {0, 3};

    gv_st_writer *w;
    CHECK_OK(gv_st_writer_init(&w));
    CHECK_OK(gv_st_writer_add(w, "z.f32", GV_F32, 2, s23, a_f32)); /* not alphabetical: order must hold */
    CHECK_OK(gv_st_writer_add(w, "b.bf16", GV_BF16, 1, s4, a_bf16));
    CHECK_OK(gv_st_writer_add(w, "h.f16", GV_F16, 2, s23, f16_bits));
    CHECK_OK(gv_st_writer_add(w, "i.i32", GV_I32, 1, s3, a_i32));
    CHECK_OK(gv_st_writer_add(w, "i.i64", GV_I64, 1, s2, a_i64));
    CHECK_OK(gv_st_writer_add(w, "u.u16", GV_U16, 1, s5, a_u16));
    CHECK_OK(gv_st_writer_add(w, "scalar", GV_F32, 0, NULL, &scalar));
    CHECK_OK(gv_st_writer_add(w, "empty", GV_F32, 2, s03, NULL));
    CHECK(gv_st_writer_add(w, "z.f32", GV_F32, 2, s23, a_f32) == GV_ERR_INVALID); /* duplicate */
    CHECK(gv_st_writer_add(w, "__metadata__", GV_F32, 2, s23, a_f32) == GV_ERR_INVALID);
    CHECK(gv_st_writer_add(w, "bad", (gv_dtype)99, 2, s23, a_f32) == GV_ERR_INVALID);
    CHECK_OK(gv_st_writer_meta(w, "format", "pt"));
    CHECK_OK(gv_st_writer_meta(w, "step", "1"));
    CHECK_OK(gv_st_writer_meta(w, "step", "42")); /* replaces */
    CHECK_OK(gv_st_writer_meta(w, "json", "{\"a\": \"b\\n\", \"\xc3\xa9\": 1}"));
    CHECK_OK(gv_st_writer_save(w, path));
    CHECK(!file_exists(temp_name(path)));
    gv_st_writer_free(w);

    /* Header length is a multiple of 8 and the padding is spaces. */
    FILE *fp = fopen(path, "rb");
    unsigned char hb[8];
    CHECK(fread(hb, 1, 8, fp) == 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | hb[i];
    CHECK(hlen % 8 == 0);
    char *hdr = malloc(hlen + 1);
    CHECK(fread(hdr, 1, hlen, fp) == hlen);
    hdr[hlen] = 0;
    fclose(fp);
    CHECK(hdr[0] == '{');
    char *close = strrchr(hdr, '}');
    for (char *p = close + 1; p < hdr + hlen; p++) CHECK(*p == ' ');
    free(hdr);

    gv_st_file *f;
    CHECK_OK(gv_st_open(&f, path));
    CHECK(gv_st_count(f) == 8);
    const char *order[8] = {"z.f32", "b.bf16", "h.f16", "i.i32", "i.i64", "u.u16", "scalar", "empty"};
    for (int i = 0; i < 8; i++) {
        CHECK(strcmp(gv_st_name(f, i), order[i]) == 0);
        CHECK(gv_st_find(f, order[i]) == i);
    }
    CHECK(gv_st_find(f, "nope") == -1);
    CHECK(gv_st_name(f, 8) == NULL);

    gv_dtype dt;
    int nd;
    int64_t sh[4];
    CHECK_OK(gv_st_info(f, 0, &dt, &nd, sh));
    CHECK(dt == GV_F32 && nd == 2 && sh[0] == 2 && sh[1] == 3 && sh[2] == 1);
    CHECK_OK(gv_st_info(f, 1, &dt, &nd, sh));
    CHECK(dt == GV_BF16 && nd == 1 && sh[0] == 4);
    CHECK_OK(gv_st_info(f, 2, &dt, &nd, sh));
    CHECK(dt == GV_F16 && nd == 2 && sh[0] == 2 && sh[1] == 3);
    CHECK_OK(gv_st_info(f, 3, &dt, &nd, sh));
    CHECK(dt == GV_I32 && nd == 1 && sh[0] == 3);
    CHECK_OK(gv_st_info(f, 4, &dt, &nd, sh));
    CHECK(dt == GV_I64 && nd == 1 && sh[0] == 2);
    CHECK(gv_st_dtype_size(dt) == 8 && strcmp(gv_st_dtype_name(dt), "I64") == 0);
    CHECK_OK(gv_st_info(f, 5, &dt, &nd, sh));
    CHECK(dt == GV_U16 && nd == 1 && sh[0] == 5);
    CHECK_OK(gv_st_info(f, 6, &dt, &nd, sh));
    CHECK(dt == GV_F32 && nd == 0);
    CHECK_OK(gv_st_info(f, 7, &dt, &nd, sh));
    CHECK(dt == GV_F32 && nd == 2 && sh[0] == 0 && sh[1] == 3);
    CHECK(gv_st_nbytes(f, 7) == 0);
    CHECK(gv_st_info(f, 8, &dt, &nd, sh) == GV_ERR_INVALID);

    float out[6];
    CHECK_OK(gv_st_read_f32(f, "z.f32", out, 2, s23));
    CHECK(memcmp(out, a_f32, sizeof a_f32) == 0);
    CHECK_OK(gv_st_read_f32(f, "b.bf16", out, 1, s4));
    for (int i = 0; i < 4; i++) CHECK(out[i] == bf_src[i]);
    CHECK_OK(gv_st_read_f32(f, "h.f16", out, 2, s23));
    for (int i = 0; i < 6; i++) CHECK(out[i] == f16_vals[i] && signbit(out[i]) == signbit(f16_vals[i]));
    CHECK_OK(gv_st_read_f32(f, "scalar", out, 0, NULL));
    CHECK(out[0] == 42.0f);
    CHECK_OK(gv_st_read_f32(f, "empty", out, 2, s03));

    int32_t ri32[3];
    int64_t ri64[2];
    uint16_t ru16[5], rbf[4], rf16[6];
    CHECK_OK(gv_st_read_raw(f, "i.i32", ri32, sizeof ri32));
    CHECK(memcmp(ri32, a_i32, sizeof ri32) == 0);
    CHECK_OK(gv_st_read_raw(f, "i.i64", ri64, sizeof ri64));
    CHECK(memcmp(ri64, a_i64, sizeof ri64) == 0);
    CHECK_OK(gv_st_read_raw(f, "u.u16", ru16, sizeof ru16));
    CHECK(memcmp(ru16, a_u16, sizeof ru16) == 0);
    CHECK_OK(gv_st_read_raw(f, "b.bf16", rbf, sizeof rbf));
    CHECK(memcmp(rbf, a_bf16, sizeof rbf) == 0);
    CHECK_OK(gv_st_read_raw(f, "h.f16", rf16, sizeof rf16));
    CHECK(memcmp(rf16, f16_bits, sizeof rf16) == 0);

    CHECK(strcmp(gv_st_meta(f, "format"), "pt") == 0);
    CHECK(strcmp(gv_st_meta(f, "step"), "42") == 0);
    CHECK(strcmp(gv_st_meta(f, "json"), "{\"a\": \"b\\n\", \"\xc3\xa9\": 1}") == 0);
    CHECK(gv_st_meta(f, "absent") == NULL);

    /* Misuse: wrong byte count, non-float tensor as f32, absent tensor, wrong shape. */
    gv_clear_error();
    CHECK(gv_st_read_raw(f, "i.i32", ri32, 8) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), path) && strstr(gv_last_error(), "i.i32"));
    CHECK(gv_st_read_f32(f, "i.i32", out, 1, s3) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), "not a float"));
    CHECK(gv_st_read_f32(f, "missing.weight", out, 1, s3) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), path) && strstr(gv_last_error(), "missing.weight"));
    int64_t s32[2] = {3, 2};
    gv_clear_error();
    CHECK(gv_st_read_f32(f, "z.f32", out, 2, s32) == GV_ERR_INVALID);
    CHECK(strstr(gv_last_error(), path) && strstr(gv_last_error(), "'z.f32'") &&
          strstr(gv_last_error(), "[2, 3]") && strstr(gv_last_error(), "[3, 2]"));
    CHECK(gv_st_read_f32(f, "z.f32", out, 1, s23) == GV_ERR_INVALID); /* rank differs */
    gv_st_close(f);
}

static void test_rows(void) {
    const char *path = DIR "/rows.safetensors";
    float m[5 * 3];
    uint16_t mb[5 * 3], mh[5 * 3];
    for (int i = 0; i < 15; i++) {
        m[i] = (float)i * 0.5f - 3.0f; /* exact in bf16 and f16 */
        mb[i] = gv_f32_to_bf16(m[i]);
    }
    /* f16 of k*0.5-3: build from the bf16-exact values through the known formula for small halves. */
    for (int i = 0; i < 15; i++) {
        float v = m[i];
        uint16_t h = 0;
        if (v != 0) {
            uint32_t u;
            memcpy(&u, &v, 4);
            h = (uint16_t)(((u >> 16) & 0x8000u) | ((((u >> 23) & 0xffu) - 127 + 15) << 10) |
                           ((u >> 13) & 0x3ffu));
        }
        mh[i] = h;
    }
    int64_t s53[2] = {5, 3};
    gv_st_writer *w;
    CHECK_OK(gv_st_writer_init(&w));
    CHECK_OK(gv_st_writer_add(w, "m", GV_F32, 2, s53, m));
    CHECK_OK(gv_st_writer_add(w, "mb", GV_BF16, 2, s53, mb));
    CHECK_OK(gv_st_writer_add(w, "mh", GV_F16, 2, s53, mh));
    CHECK_OK(gv_st_writer_save(w, path));
    gv_st_writer_free(w);

    gv_st_file *f;
    CHECK_OK(gv_st_open(&f, path));
    const char *names[3] = {"m", "mb", "mh"};
    for (int t = 0; t < 3; t++) {
        float full[15], part[15];
        CHECK_OK(gv_st_read_f32(f, names[t], full, 2, s53));
        for (int i = 0; i < 15; i++) CHECK(full[i] == m[i]);
        for (int r0 = 0; r0 <= 5; r0++)
            for (int nr = 0; r0 + nr <= 5; nr++) {
                memset(part, 0xff, sizeof part);
                CHECK_OK(gv_st_read_f32_rows(f, names[t], r0, nr, part));
                CHECK(memcmp(part, m + r0 * 3, sizeof(float) * (size_t)nr * 3) == 0);
            }
        gv_clear_error();
        CHECK(gv_st_read_f32_rows(f, names[t], 4, 2, part) == GV_ERR_INVALID);
        CHECK(strstr(gv_last_error(), path) != NULL);
        CHECK(gv_st_read_f32_rows(f, names[t], -1, 1, part) == GV_ERR_INVALID);
    }
    gv_st_close(f);
}

typedef struct {
    int calls;
} fail_ctx;

/* Writes half a file, then fails like a full disk would. */
static gv_status fill_then_fail(FILE *f, const char *tmp, void *ctx) {
    ((fail_ctx *)ctx)->calls++;
    fputs("partial contents", f);
    CHECK(file_exists(tmp));
    return gv_fail(GV_ERR_IO, "%s: simulated failure", tmp);
}

static void test_atomic(void) {
    const char *keep = DIR "/keep.json";
    const char *msg = "{\"step\": 1}\n";
    CHECK_OK(gv_file_write_atomic(keep, msg, strlen(msg)));
    char *back;
    size_t n;
    CHECK_OK(gv_file_read_all(keep, &back, &n));
    CHECK(n == strlen(msg) && strcmp(back, msg) == 0);
    free(back);
    CHECK(!file_exists(temp_name(keep)));

    /* A failing fill leaves the old file and no temp. */
    fail_ctx fc = {0};
    CHECK(gv_file_write_atomic_fn(keep, fill_then_fail, &fc) == GV_ERR_IO);
    CHECK(fc.calls == 1);
    CHECK(!file_exists(temp_name(keep)));
    CHECK_OK(gv_file_read_all(keep, &back, &n));
    CHECK(strcmp(back, msg) == 0);
    free(back);

    gv_clear_error();
    CHECK(gv_file_read_all(DIR "/absent.json", &back, &n) == GV_ERR_IO);
    CHECK(strstr(gv_last_error(), DIR "/absent.json") != NULL);

    /* A good checkpoint that the failed saves below must not touch. */
    const char *ck = DIR "/keep.safetensors";
    float small[4] = {1, 2, 3, 4};
    int64_t s4[1] = {4};
    gv_st_writer *w;
    CHECK_OK(gv_st_writer_init(&w));
    CHECK_OK(gv_st_writer_add(w, "w", GV_F32, 1, s4, small));
    CHECK_OK(gv_st_writer_save(w, ck));
    gv_st_writer_free(w);

    size_t big_n = 1 << 20;
    float *big = calloc(big_n, sizeof(float));
    int64_t sbig[1] = {(int64_t)big_n};
    CHECK_OK(gv_st_writer_init(&w));
    CHECK_OK(gv_st_writer_add(w, "w", GV_F32, 1, sbig, big));

    /* (1) The write itself fails midway (file size limit: works even as root). */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 << 10;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    gv_clear_error();
    gv_status st = gv_st_writer_save(w, ck);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(st == GV_ERR_IO);
    CHECK(strstr(gv_last_error(), ck) != NULL);
    CHECK(!file_exists(temp_name(ck)));

    /* (2) The temp cannot be created: the directory does not exist. */
    const char *nodir = DIR "/no/such/dir/model.safetensors";
    gv_clear_error();
    CHECK(gv_st_writer_save(w, nodir) == GV_ERR_IO);
    CHECK(strstr(gv_last_error(), nodir) != NULL);
    CHECK(!file_exists(nodir));

    /* (3) The rename fails: the target is a directory. */
    const char *isdir = DIR "/adir";
    mkdir(isdir, 0755);
    gv_clear_error();
    CHECK(gv_st_writer_save(w, isdir) == GV_ERR_IO);
    CHECK(strstr(gv_last_error(), isdir) != NULL);
    CHECK(!file_exists(temp_name(isdir)));
    rmdir(isdir);

    /* (4) The directory is read-only (meaningless as root, who may write anyway). */
    if (geteuid() != 0) {
        chmod(DIR, 0555);
        CHECK(gv_st_writer_save(w, ck) == GV_ERR_IO);
        chmod(DIR, 0755);
        CHECK(!file_exists(temp_name(ck)));
    }
    gv_st_writer_free(w);
    free(big);

    gv_st_file *f;
    CHECK_OK(gv_st_open(&f, ck));
    float back4[4];
    CHECK_OK(gv_st_read_f32(f, "w", back4, 1, s4));
    CHECK(memcmp(back4, small, sizeof small) == 0);
    gv_st_close(f);
}

static void test_corrupt(void) {
    float buf[4] = {1, 2, 3, 4};
    char path[256];

    snprintf(path, sizeof path, "%s/missing.safetensors", DIR);
    expect_open_error(path, GV_ERR_IO, "cannot open");

    snprintf(path, sizeof path, "%s/tiny.safetensors", DIR);
    FILE *f = fopen(path, "wb");
    fwrite("abc", 1, 3, f);
    fclose(f);
    expect_open_error(path, GV_ERR_FORMAT, "too short");

    /* Header length far beyond the file. */
    snprintf(path, sizeof path, "%s/hugehdr.safetensors", DIR);
    f = fopen(path, "wb");
    uint64_t big = 1000000;
    fwrite(&big, 8, 1, f);
    fwrite("{\"a\":1}", 1, 7, f);
    fclose(f);
    expect_open_error(path, GV_ERR_FORMAT, "header length 1000000 exceeds");

    snprintf(path, sizeof path, "%s/badjson.safetensors", DIR);
    write_st_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], ", buf, 16);
    expect_open_error(path, GV_ERR_FORMAT, "not valid JSON");

    snprintf(path, sizeof path, "%s/notobj.safetensors", DIR);
    write_st_raw(path, "[1, 2]", NULL, 0);
    expect_open_error(path, GV_ERR_FORMAT, "does not start with '{'");

    snprintf(path, sizeof path, "%s/range.safetensors", DIR);
    write_st_raw(path, "{\"wte.weight\": {\"dtype\": \"F32\", \"shape\": [200], \"data_offsets\": [0, 800]}}",
                 buf, 16);
    expect_open_error(path, GV_ERR_FORMAT, "'wte.weight' data_offsets [0, 800] exceed the 16-byte buffer");

    snprintf(path, sizeof path, "%s/size.safetensors", DIR);
    write_st_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 16]}}", buf, 16);
    expect_open_error(path, GV_ERR_FORMAT, "needs 12");

    snprintf(path, sizeof path, "%s/overlap.safetensors", DIR);
    write_st_raw(path,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                 buf, 12);
    expect_open_error(path, GV_ERR_FORMAT, "overlap");

    snprintf(path, sizeof path, "%s/gap.safetensors", DIR);
    write_st_raw(path,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
                 buf, 12);
    expect_open_error(path, GV_ERR_FORMAT, "unused bytes");

    snprintf(path, sizeof path, "%s/trailing.safetensors", DIR);
    write_st_raw(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", buf, 16);
    expect_open_error(path, GV_ERR_FORMAT, "12 trailing bytes");

    snprintf(path, sizeof path, "%s/dtype.safetensors", DIR);
    write_st_raw(path, "{\"a\": {\"dtype\": \"Q4\", \"shape\": [1], \"data_offsets\": [0, 4]}}", buf, 4);
    expect_open_error(path, GV_ERR_FORMAT, "unknown dtype \"Q4\"");

    snprintf(path, sizeof path, "%s/dup.safetensors", DIR);
    write_st_raw(path,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                 " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                 buf, 8);
    expect_open_error(path, GV_ERR_FORMAT, "appears twice");

    snprintf(path, sizeof path, "%s/meta.safetensors", DIR);
    write_st_raw(path,
                 "{\"__metadata__\": {\"step\": 3}, \"a\": {\"dtype\": \"F32\", \"shape\": [1], "
                 "\"data_offsets\": [0, 4]}}",
                 buf, 4);
    expect_open_error(path, GV_ERR_FORMAT, "not a string");

    snprintf(path, sizeof path, "%s/neg.safetensors", DIR);
    write_st_raw(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", buf, 4);
    expect_open_error(path, GV_ERR_FORMAT, "shape[0]");

    /* A good file cut short: the last tensor runs past the end. */
    snprintf(path, sizeof path, "%s/truncated.safetensors", DIR);
    write_st_raw(path,
                 "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}",
                 buf, 12);
    expect_open_error(path, GV_ERR_FORMAT, "(truncated file?)");

    /* A dtype gv_dtype cannot express: open works, info says unsupported, raw works. */
    snprintf(path, sizeof path, "%s/f64.safetensors", DIR);
    double dv[2] = {1.25, -2.5};
    write_st_raw(path, "{\"d\": {\"dtype\": \"F64\", \"shape\": [2], \"data_offsets\": [0, 16]}}", dv, 16);
    gv_st_file *sf;
    CHECK_OK(gv_st_open(&sf, path));
    gv_dtype dt;
    CHECK(gv_st_info(sf, 0, &dt, NULL, NULL) == GV_ERR_UNSUPPORTED);
    double dback[2];
    CHECK_OK(gv_st_read_raw(sf, "d", dback, 16));
    CHECK(dback[0] == 1.25 && dback[1] == -2.5);
    gv_st_close(sf);
}

/* Our file loads in Python's safetensors, and a Python-written file loads here. */
static void test_python_interop(void) {
    if (system("python3 -c 'import safetensors, numpy' >/dev/null 2>&1") != 0) {
        printf("python3 safetensors/numpy not available: interop check skipped\n");
        return;
    }
    const char *script = DIR "/check.py";
    FILE *f = fopen(script, "w");
    fputs(
        "import sys, numpy as np\n"
        "from safetensors import safe_open\n"
        "from safetensors.numpy import save_file\n"
        "with safe_open(sys.argv[1], framework='np') as f:\n"
        "    assert set(f.keys()) == {'z.f32','b.bf16','h.f16','i.i32','i.i64','u.u16','scalar','empty'}, "
        "f.keys()\n"
        "    md = f.metadata()\n"
        "    assert md == {'format': 'pt', 'step': '42', 'json': '{\"a\": \"b\\\\n\", \"\\u00e9\": 1}'}, md\n"
        "    z = f.get_tensor('z.f32')\n"
        "    assert z.dtype == np.float32 and z.shape == (2, 3) and z[0, 1] == -2.25 and z[1, 2] == 6.0\n"
        "    b = f.get_slice('b.bf16')\n"
        "    assert b.get_dtype() == 'BF16' and b.get_shape() == [4]\n"
        "    h = f.get_tensor('h.f16')\n"
        "    assert h.dtype == np.float16 and h.shape == (2, 3) and h[0, 0] == 1.0 and h[0, 1] == -2.0\n"
        "    assert f.get_tensor('i.i32').tolist() == [-7, 0, 2147483647]\n"
        "    assert f.get_tensor('i.i64').tolist() == [-5000000000, 9007199254740993]\n"
        "    assert f.get_tensor('u.u16').tolist() == [0, 1, 255, 50256, 65535]\n"
        "    assert f.get_tensor('scalar').shape == () and f.get_tensor('scalar') == 42.0\n"
        "    assert f.get_tensor('empty').shape == (0, 3)\n"
        "save_file({'zeta': np.arange(6, dtype=np.float32).reshape(2, 3), 'alpha': np.array([1, -2], "
        "dtype=np.int64),\n"
        "           'mid': np.array([0.5, -1.5], dtype=np.float16)}, sys.argv[2], metadata={'from': "
        "'python'})\n",
        f);
    fclose(f);
    const char *pyfile = DIR "/from_python.safetensors";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 %s %s %s", script, DIR "/all.safetensors", pyfile);
    int rc = system(cmd);
    CHECK(rc == 0);
    if (rc != 0) return;

    gv_st_file *sf;
    CHECK_OK(gv_st_open(&sf, pyfile));
    if (!sf) return;
    CHECK(gv_st_count(sf) == 3);
    CHECK(strcmp(gv_st_meta(sf, "from"), "python") == 0);
    float z[6], mid[2];
    int64_t s23[2] = {2, 3}, s2[1] = {2};
    CHECK_OK(gv_st_read_f32(sf, "zeta", z, 2, s23));
    for (int i = 0; i < 6; i++) CHECK(z[i] == (float)i);
    CHECK_OK(gv_st_read_f32(sf, "mid", mid, 1, s2));
    CHECK(mid[0] == 0.5f && mid[1] == -1.5f);
    int64_t a[2];
    gv_dtype dt;
    CHECK_OK(gv_st_info(sf, gv_st_find(sf, "alpha"), &dt, NULL, NULL));
    CHECK(dt == GV_I64);
    CHECK_OK(gv_st_read_raw(sf, "alpha", a, sizeof a));
    CHECK(a[0] == 1 && a[1] == -2);
    gv_st_close(sf);
}

/* gv_st_diff: global and per-tensor relative L2 differences, and errors for unlike files. */
static void write2(const char *path, const float *x, const float *y, int with_y) {
    gv_st_writer *w;
    int64_t s2[1] = {2}, s3[1] = {3};
    CHECK_OK(gv_st_writer_init(&w));
    CHECK_OK(gv_st_writer_add(w, "x", GV_F32, 1, s3, x));
    if (with_y) CHECK_OK(gv_st_writer_add(w, "y", GV_F32, 1, s2, y));
    CHECK_OK(gv_st_writer_save(w, path));
    gv_st_writer_free(w);
}

static void test_diff(void) {
    float x[3] = {3, 0, 4}, y[2] = {1, 0}, x2[3] = {3, 0, 4.25f}, y2[2] = {1, 0.1f};
    write2(DIR "/d1.safetensors", x, y, 1);
    write2(DIR "/d2.safetensors", x2, y2, 1);
    write2(DIR "/d3.safetensors", x, y, 0);
    double g, worst;
    char name[96];
    CHECK_OK(gv_st_diff(DIR "/d2.safetensors", DIR "/d1.safetensors", &g, &worst, name));
    /* ||d|| = sqrt(0.0625 + 0.01), ||b|| = sqrt(25 + 1); per tensor: x 0.25/5, y 0.1/1 */
    CHECK_CLOSE(g, sqrt(0.0725 / 26.0), 1e-6, 0);
    CHECK_CLOSE(worst, 0.1, 1e-6, 0);
    CHECK(!strcmp(name, "y"));
    CHECK_OK(gv_st_diff(DIR "/d1.safetensors", DIR "/d1.safetensors", &g, &worst, NULL));
    CHECK(g == 0 && worst == 0);
    CHECK(gv_st_diff(DIR "/d1.safetensors", DIR "/d3.safetensors", &g, &worst, NULL) == GV_ERR_FORMAT);
}

int main(void) {
    mkdir(DIR, 0755);
    CHECK(gv_f16_to_f32(0x3c00) == 1.0f);
    CHECK(gv_f16_to_f32(0x0400) == 6.103515625e-05f);       /* smallest normal */
    CHECK(gv_f16_to_f32(0x03ff) == 6.097555160522461e-05f); /* largest subnormal */
    CHECK(gv_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(isnan(gv_f16_to_f32(0x7e00)));
    test_round_trip();
    test_rows();
    test_atomic();
    test_corrupt();
    test_python_interop();
    test_diff();
    return gv_test_result("test_safetensors");
}
