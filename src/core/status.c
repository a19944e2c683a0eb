#include "gv/status.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char gv_err_msg[1024];

gv_status gv_fail(gv_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(gv_err_msg, sizeof gv_err_msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *gv_last_error(void) {
    return gv_err_msg[0] ? gv_err_msg : "no error";
}

void gv_clear_error(void) {
    gv_err_msg[0] = '\0';
}

const char *gv_status_name(gv_status st) {
    switch (st) {
    case GV_OK:
        return "ok";
    case GV_ERR_INVALID:
        return "invalid";
    case GV_ERR_IO:
        return "io";
    case GV_ERR_FORMAT:
        return "format";
    case GV_ERR_NOMEM:
        return "out of memory";
    case GV_ERR_BACKEND:
        return "backend";
    case GV_ERR_COMM:
        return "comm";
    case GV_ERR_UNSUPPORTED:
        return "unsupported";
    }
    return "unknown";
}
