#include "gv/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

gv_status gv_file_fwrite(FILE *f, const void *data, size_t n, const char *path) {
    if (n == 0) return GV_OK;
    errno = 0;
    if (fwrite(data, 1, n, f) != n)
        return gv_fail(GV_ERR_IO, "%s: write failed: %s", path, errno ? strerror(errno) : "short write");
    return GV_OK;
}

/* fsync of the containing directory makes the rename itself durable. Best effort: some filesystems refuse
 * to open or sync directories, and the data is already safe in the renamed file. */
static void gv_fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

gv_status gv_file_write_atomic_fn(const char *path, gv_file_fill_fn fill, void *ctx) {
    if (!path || !*path) return gv_fail(GV_ERR_INVALID, "gv_file_write_atomic: empty path");
    size_t tn = strlen(path) + 32;
    char *tmp = malloc(tn);
    if (!tmp) return gv_fail(GV_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, tn, "%s.tmp.%ld", path, (long)getpid());

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        gv_status st = gv_fail(GV_ERR_IO, "%s: cannot create temp file %s: %s", path, tmp, strerror(errno));
        free(tmp);
        return st;
    }
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        gv_status st = gv_fail(GV_ERR_IO, "%s: fdopen failed: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }

    gv_status st = fill(f, tmp, ctx);
    if (st == GV_OK && (fflush(f) != 0 || ferror(f)))
        st = gv_fail(GV_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st == GV_OK && fsync(fileno(f)) != 0)
        st = gv_fail(GV_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    /* fclose can report a deferred write error (e.g. NFS), so it is checked too. */
    if (fclose(f) != 0 && st == GV_OK) st = gv_fail(GV_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    if (st == GV_OK && rename(tmp, path) != 0)
        st = gv_fail(GV_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (st != GV_OK)
        unlink(tmp);
    else
        gv_fsync_parent_dir(path);
    free(tmp);
    return st;
}

typedef struct {
    const void *data;
    size_t n;
} gv_buf_ctx;

static gv_status gv_fill_buf(FILE *f, const char *tmp_path, void *ctx) {
    const gv_buf_ctx *b = ctx;
    return gv_file_fwrite(f, b->data, b->n, tmp_path);
}

gv_status gv_file_write_atomic(const char *path, const void *data, size_t n) {
    gv_buf_ctx b = {data, n};
    return gv_file_write_atomic_fn(path, gv_fill_buf, &b);
}

gv_status gv_file_read_all(const char *path, char **data, size_t *n) {
    *data = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return gv_fail(GV_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return gv_fail(GV_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return gv_fail(GV_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size + 1);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return gv_fail(GV_ERR_IO, "%s: read %zu of %zu bytes", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    *n = size;
    return GV_OK;
}
