/* Shared-file rendezvous (see rendezvous.h): atomic publish by temp file + fsync + rename, polling readers
 * that check every field of the line. */
#include "rendezvous.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GV_RDV_MAGIC "galvatron-rendezvous 1"
#define GV_RDV_MAX_PAYLOAD 4096

static uint64_t gv_rdv_fnv(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static double gv_rdv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int gv_rdv_key_ok(const char *key) {
    if (!key || !*key || strlen(key) > 128) return 0;
    for (const char *k = key; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') || *k == '-' ||
              *k == '_' || *k == '.'))
            return 0;
    return key[0] != '.';
}

const char *gv_rendezvous_path(const gv_rendezvous *r, const char *key, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s.id", r->dir, key);
    return buf;
}

gv_status gv_rendezvous_check(const gv_rendezvous *r) {
    if (!r || !r->dir || !*r->dir)
        return gv_fail(GV_ERR_INVALID, "rendezvous: no directory (set GV_RENDEZVOUS_DIR or --rendezvous)");
    if (r->size < 1 || r->rank < 0 || r->rank >= r->size)
        return gv_fail(GV_ERR_INVALID,
                       "rendezvous %s: rank %d outside a world of %d (set GV_RANK and GV_WORLD_SIZE)", r->dir,
                       r->rank, r->size);
    if (!(r->timeout_s > 0))
        return gv_fail(GV_ERR_INVALID, "rendezvous %s: timeout %g s must be positive", r->dir, r->timeout_s);
    struct stat st;
    if (stat(r->dir, &st) != 0) return gv_fail(GV_ERR_IO, "rendezvous %s: %s", r->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return gv_fail(GV_ERR_INVALID, "rendezvous %s: not a directory", r->dir);
    return GV_OK;
}

gv_status gv_rendezvous_publish(const gv_rendezvous *r, const char *key, const void *payload, size_t n) {
    GV_TRY(gv_rendezvous_check(r));
    if (!gv_rdv_key_ok(key))
        return gv_fail(GV_ERR_INVALID, "rendezvous %s: bad key '%s'", r->dir, key ? key : "");
    if (n == 0 || n > GV_RDV_MAX_PAYLOAD)
        return gv_fail(GV_ERR_INVALID, "rendezvous %s: payload of %zu bytes (1..%d)", r->dir, n,
                       GV_RDV_MAX_PAYLOAD);
    char path[4096], tmp[4160];
    gv_rendezvous_path(r, key, path, sizeof path);
    if (access(path, F_OK) == 0)
        return gv_fail(
            GV_ERR_IO,
            "rendezvous %s: exists already (a stale file of an earlier job? remove it or use a fresh "
            "directory per job)",
            path);
    snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", r->dir, key, (long)getpid());
    /* the line: magic, fields, payload as hex */
    size_t cap = 256 + strlen(key) + 2 * n;
    char *line = malloc(cap);
    if (!line) return gv_fail(GV_ERR_NOMEM, "rendezvous: out of memory");
    int k = snprintf(line, cap, "%s key=%s world=%d bytes=%zu fnv=%016llx ", GV_RDV_MAGIC, key, r->size, n,
                     (unsigned long long)gv_rdv_fnv(payload, n));
    const unsigned char *b = payload;
    for (size_t i = 0; i < n; i++) k += snprintf(line + k, cap - (size_t)k, "%02x", b[i]);
    line[k++] = '\n';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    gv_status st = GV_OK;
    if (fd < 0) {
        st = gv_fail(GV_ERR_IO, "rendezvous %s: cannot create: %s", tmp, strerror(errno));
    } else {
        ssize_t w = write(fd, line, (size_t)k);
        if (w != k || fsync(fd) != 0)
            st = gv_fail(GV_ERR_IO, "rendezvous %s: short write: %s", tmp, strerror(errno));
        if (close(fd) != 0 && st == GV_OK)
            st = gv_fail(GV_ERR_IO, "rendezvous %s: close: %s", tmp, strerror(errno));
        if (st == GV_OK && rename(tmp, path) != 0)
            st = gv_fail(GV_ERR_IO, "rendezvous %s: rename to %s: %s", tmp, path, strerror(errno));
        if (st != GV_OK) unlink(tmp);
    }
    free(line);
    return st;
}

static int gv_rdv_hex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses one complete file; GV_ERR_FORMAT names the field. */
static gv_status gv_rdv_parse(const gv_rendezvous *r, const char *path, const char *key, char *text,
                              size_t len, void *payload, size_t n) {
    if (len == 0 || text[len - 1] != '\n')
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: corrupt file (truncated: no end of line)", path);
    text[len - 1] = 0;
    size_t ml = strlen(GV_RDV_MAGIC);
    if (strncmp(text, GV_RDV_MAGIC " ", ml + 1))
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: corrupt file (not a galvatron rendezvous file)", path);
    char fkey[160];
    int world = 0, used = 0;
    size_t bytes = 0;
    unsigned long long fnv = 0;
    if (sscanf(text + ml + 1, "key=%159s world=%d bytes=%zu fnv=%16llx %n", fkey, &world, &bytes, &fnv,
               &used) != 4 ||
        used == 0)
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: corrupt file (bad header fields)", path);
    if (strcmp(fkey, key))
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: the file is for key '%s', not '%s'", path, fkey, key);
    if (world != r->size)
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: written for a world of %d ranks, this one has %d", path,
                       world, r->size);
    if (bytes != n)
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: payload of %zu bytes, expected %zu", path, bytes, n);
    const char *hx = text + ml + 1 + used;
    if (strlen(hx) != 2 * n)
        return gv_fail(GV_ERR_FORMAT,
                       "rendezvous %s: corrupt file (payload has %zu hex digits, expected %zu)", path,
                       strlen(hx), 2 * n);
    unsigned char *o = payload;
    for (size_t i = 0; i < n; i++) {
        int a = gv_rdv_hex(hx[2 * i]), b = gv_rdv_hex(hx[2 * i + 1]);
        if (a < 0 || b < 0)
            return gv_fail(GV_ERR_FORMAT, "rendezvous %s: corrupt file (non-hex payload at byte %zu)", path,
                           i);
        o[i] = (unsigned char)(a * 16 + b);
    }
    if (gv_rdv_fnv(payload, n) != fnv)
        return gv_fail(GV_ERR_FORMAT, "rendezvous %s: corrupt file (checksum mismatch)", path);
    return GV_OK;
}

gv_status gv_rendezvous_wait(const gv_rendezvous *r, const char *key, void *payload, size_t n) {
    GV_TRY(gv_rendezvous_check(r));
    if (!gv_rdv_key_ok(key))
        return gv_fail(GV_ERR_INVALID, "rendezvous %s: bad key '%s'", r->dir, key ? key : "");
    if (n == 0 || n > GV_RDV_MAX_PAYLOAD)
        return gv_fail(GV_ERR_INVALID, "rendezvous %s: payload of %zu bytes (1..%d)", r->dir, n,
                       GV_RDV_MAX_PAYLOAD);
    char path[4096];
    gv_rendezvous_path(r, key, path, sizeof path);
    double t0 = gv_rdv_now(), sleep_s = 0.001;
    for (;;) {
        FILE *f = fopen(path, "rb");
        if (f) { /* rename is atomic: an existing file is complete, whatever it holds */
            size_t cap = 512 + strlen(key) + 2 * n, len = 0;
            char *text = malloc(cap + 1);
            if (!text) {
                fclose(f);
                return gv_fail(GV_ERR_NOMEM, "rendezvous: out of memory");
            }
            len = fread(text, 1, cap, f);
            int more = fgetc(f) != EOF;
            fclose(f);
            text[len] = 0;
            gv_status st = more ? gv_fail(GV_ERR_FORMAT,
                                          "rendezvous %s: corrupt file (longer than %zu bytes)", path, cap)
                                : gv_rdv_parse(r, path, key, text, len, payload, n);
            free(text);
            return st;
        }
        if (errno != ENOENT) return gv_fail(GV_ERR_IO, "rendezvous %s: %s", path, strerror(errno));
        double waited = gv_rdv_now() - t0;
        if (waited >= r->timeout_s)
            return gv_fail(GV_ERR_IO,
                           "rendezvous %s: no file after %.1f s (rank 0 not started or failed, or another "
                           "directory?)",
                           path, waited);
        struct timespec ts = {(time_t)sleep_s, (long)((sleep_s - (double)(time_t)sleep_s) * 1e9)};
        nanosleep(&ts, NULL);
        if (sleep_s < 0.05) sleep_s *= 2;
    }
}

gv_status gv_rendezvous_remove(const gv_rendezvous *r, const char *key) {
    char path[4096];
    gv_rendezvous_path(r, key, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        return gv_fail(GV_ERR_IO, "rendezvous %s: remove: %s", path, strerror(errno));
    return GV_OK;
}

gv_status gv_rendezvous_share(const gv_rendezvous *r, const char *key, int publisher, void *payload,
                              size_t n) {
    return publisher ? gv_rendezvous_publish(r, key, payload, n) : gv_rendezvous_wait(r, key, payload, n);
}
