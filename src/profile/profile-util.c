#include "profile-util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gv/fileio.h"

double gv_prof_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int gv_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double gv_prof_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, gv_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void gv_prof_date(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

gv_status gv_prof_max(gv_comm *c, double *x) {
    return gv_comm_allreduce(c, x, x, 1, GV_COMM_F64, GV_COMM_MAX);
}

gv_status gv_prof_write_json(const cJSON *j, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = cJSON_Print(j);
    if (!s) return gv_fail(GV_ERR_NOMEM, "%s: out of memory while formatting JSON", path);
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return gv_fail(GV_ERR_NOMEM, "%s: out of memory while formatting JSON", path);
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    gv_status st = gv_file_write_atomic(path, t, n + 1);
    free(t);
    return st;
}

cJSON *gv_prof_num(cJSON *obj, const char *key, double v) {
    return cJSON_AddNumberToObject(obj, key, v);
}
