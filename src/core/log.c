#include "gv/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gv_level = -1;

static void gv_log_init(void) {
    const char *e = getenv("GV_LOG");
    gv_level = GV_LOG_INFO;
    if (!e) return;
    if (!strcmp(e, "debug"))
        gv_level = GV_LOG_DEBUG;
    else if (!strcmp(e, "warn"))
        gv_level = GV_LOG_WARN;
    else if (!strcmp(e, "error"))
        gv_level = GV_LOG_ERROR;
    else if (!strcmp(e, "quiet"))
        gv_level = GV_LOG_QUIET;
}

void gv_log_set_level(gv_log_level lvl) {
    gv_level = (int)lvl;
}

gv_log_level gv_log_get_level(void) {
    if (gv_level < 0) gv_log_init();
    return (gv_log_level)gv_level;
}

void gv_log(gv_log_level lvl, const char *fmt, ...) {
    static const char *tags[] = {"debug", "info", "warn", "error"};
    if ((int)lvl < (int)gv_log_get_level() || lvl >= GV_LOG_QUIET) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[gv %s] ", tags[lvl]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
