/* The shared-file rendezvous of the nccl bootstrap (src/comm/rendezvous.c), with a fake 128-byte id
 * (the size of an ncclUniqueId) and forked processes as ranks: rank 0 publishes late, the others wait and
 * read the same bytes; a group's first member publishes the group's id to its members only; a missing
 * publisher times out with the file named; corrupt, truncated, foreign and stale files are refused. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "comm/rendezvous.h"
#include "gv/status.h"
#include "test.h"

enum { ID = 128, W = 4 };

static void fake_id(unsigned char *id, int salt) {
    for (int i = 0; i < ID; i++) id[i] = (unsigned char)(i * 37 + salt * 11 + 5);
}

/* Rank r of W: the world id from rank 0 (published after 200 ms), then the id of group {2, 3} from 2. */
static int rank_main(const char *dir, int r) {
    gv_rendezvous z = {dir, r, W, 10.0};
    unsigned char id[ID] = {0}, want[ID];
    if (r == 0) {
        usleep(200 * 1000); /* the others are already polling */
        fake_id(id, 1);
    }
    CHECK_OK(gv_rendezvous_share(&z, "world", r == 0, id, ID));
    fake_id(want, 1);
    CHECK(!memcmp(id, want, ID));
    if (r >= 2) {
        unsigned char g[ID] = {0};
        if (r == 2) fake_id(g, 2);
        CHECK_OK(gv_rendezvous_share(&z, "group-2r-0000000000000023", r == 2, g, ID));
        fake_id(want, 2);
        CHECK(!memcmp(g, want, ID));
    }
    return gv_test_failures;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* wait on key must fail with status st and a message containing pat. */
static void expect_fail(gv_rendezvous *z, const char *key, gv_status want, const char *pat) {
    unsigned char id[ID];
    gv_status st = gv_rendezvous_wait(z, key, id, ID);
    if (st != want || !strstr(gv_last_error(), pat)) {
        fprintf(stderr, "key %s: status %d (want %d), message '%s' (want '%s')\n", key, st, want,
                gv_last_error(), pat);
        gv_test_failures++;
    } else {
        printf("ok   %s: %s\n", key, gv_last_error());
    }
}

int main(void) {
    char dir[] = "/tmp/gv_rdv_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);

    /* W ranks as processes */
    pid_t pid[W];
    for (int r = 0; r < W; r++) {
        pid[r] = fork();
        if (pid[r] == 0) _exit(rank_main(dir, r) ? 1 : 0);
    }
    for (int r = 0; r < W; r++) {
        int status = 0;
        CHECK(waitpid(pid[r], &status, 0) == pid[r]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    gv_rendezvous z = {dir, 0, W, 10.0};
    char path[4096];
    /* after the job: the publisher removes its files; a stale one is refused by the next publisher */
    unsigned char id[ID];
    fake_id(id, 3);
    gv_status st = gv_rendezvous_publish(&z, "world", id, ID);
    CHECK(st == GV_ERR_IO && strstr(gv_last_error(), "exists already"));
    printf("ok   stale: %s\n", gv_last_error());
    CHECK_OK(gv_rendezvous_remove(&z, "world"));
    CHECK_OK(gv_rendezvous_remove(&z, "group-2r-0000000000000023"));
    CHECK_OK(gv_rendezvous_remove(&z, "world")); /* already gone: fine */
    CHECK(access(gv_rendezvous_path(&z, "world", path, sizeof path), F_OK) != 0);

    /* a publisher that never comes: timeout with the file named */
    gv_rendezvous zt = {dir, 1, W, 0.3};
    expect_fail(&zt, "absent", GV_ERR_IO, "absent.id: no file after");

    /* corrupt files of every kind */
    gv_rendezvous zr = {dir, 1, W, 5.0};
    write_file(gv_rendezvous_path(&z, "garbage", path, sizeof path), "hello world\n");
    expect_fail(&zr, "garbage", GV_ERR_FORMAT, "not a galvatron rendezvous file");
    write_file(gv_rendezvous_path(&z, "trunc", path, sizeof path),
               "galvatron-rendezvous 1 key=trunc world=4");
    expect_fail(&zr, "trunc", GV_ERR_FORMAT, "truncated");
    write_file(gv_rendezvous_path(&z, "fields", path, sizeof path),
               "galvatron-rendezvous 1 key=fields world=x\n");
    expect_fail(&zr, "fields", GV_ERR_FORMAT, "bad header fields");
    /* a valid file, then damaged: one payload digit, the world size, the length, the key */
    fake_id(id, 4);
    CHECK_OK(gv_rendezvous_publish(&z, "good", id, ID));
    unsigned char got[ID];
    CHECK_OK(gv_rendezvous_wait(&zr, "good", got, ID));
    CHECK(!memcmp(got, id, ID));
    char line[1024];
    FILE *f = fopen(gv_rendezvous_path(&z, "good", path, sizeof path), "r");
    CHECK(f && fgets(line, sizeof line, f));
    if (f) fclose(f);
    char bad[1100];
    size_t L = strlen(line);
    memcpy(bad, line, L + 1);
    bad[L - 2] = bad[L - 2] == '0' ? '1' : '0'; /* last payload digit */
    write_file(gv_rendezvous_path(&z, "sum", path, sizeof path), bad);
    expect_fail(&zr, "sum", GV_ERR_FORMAT, "key 'good', not 'sum'");
    char *k = strstr(bad, "key=good");
    if (k) memcpy(k, "key=csum", 8);
    write_file(gv_rendezvous_path(&z, "csum", path, sizeof path), bad);
    expect_fail(&zr, "csum", GV_ERR_FORMAT, "checksum mismatch");
    gv_rendezvous z2 = {dir, 1, 2, 5.0};
    expect_fail(&z2, "good", GV_ERR_FORMAT, "world of 4 ranks, this one has 2");
    unsigned char small[64];
    st = gv_rendezvous_wait(&zr, "good", small, sizeof small);
    CHECK(st == GV_ERR_FORMAT && strstr(gv_last_error(), "payload of 128 bytes, expected 64"));
    bad[L - 1] = 0;
    bad[L - 2] = 0; /* one hex digit short (and the line still ends) */
    strcat(bad, "\n");
    k = strstr(bad, "key=csum");
    if (k) memcpy(k, "key=shrt", 8);
    write_file(gv_rendezvous_path(&z, "shrt", path, sizeof path), bad);
    expect_fail(&zr, "shrt", GV_ERR_FORMAT, "hex digits");

    /* bad arguments */
    gv_rendezvous zn = {"/nonexistent/gv_rdv", 0, 2, 1.0};
    st = gv_rendezvous_publish(&zn, "world", id, ID);
    CHECK(st == GV_ERR_IO && strstr(gv_last_error(), "/nonexistent/gv_rdv"));
    gv_rendezvous zb = {dir, 2, 2, 1.0};
    CHECK(gv_rendezvous_publish(&zb, "world", id, ID) == GV_ERR_INVALID);
    CHECK(gv_rendezvous_publish(&z, "../escape", id, ID) == GV_ERR_INVALID);

    const char *keys[] = {"garbage", "trunc", "fields", "good", "sum", "csum", "shrt"};
    for (int i = 0; i < 7; i++) CHECK_OK(gv_rendezvous_remove(&z, keys[i]));
    CHECK(rmdir(dir) == 0); /* nothing left behind, no temp files either */
    return gv_test_result("test_rendezvous");
}
