/* Status codes and the thread-local last-error message. Library calls return a gv_status and, on failure,
 * leave a one-line message for the caller (only the CLI prints it). */
#ifndef GV_STATUS_H
#define GV_STATUS_H
#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GV_OK = 0,
    GV_ERR_INVALID = 1, /* bad argument or bad input data */
    GV_ERR_IO = 2,      /* file missing, unreadable, short write */
    GV_ERR_FORMAT = 3,  /* file present but malformed */
    GV_ERR_NOMEM = 4,   /* allocation failed */
    GV_ERR_BACKEND = 5, /* device / library failure */
    GV_ERR_COMM = 6,    /* communicator failure */
    GV_ERR_UNSUPPORTED = 7,
} gv_status;

/* Sets the message (printf-style) and returns `st`, so callers can write `return gv_fail(GV_ERR_IO, ...)`. */
gv_status gv_fail(gv_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *gv_last_error(void);
void gv_clear_error(void);
const char *gv_status_name(gv_status st);

#define GV_TRY(expr)                                                                                         \
    do {                                                                                                     \
        gv_status gv_try_st_ = (expr);                                                                       \
        if (gv_try_st_ != GV_OK) return gv_try_st_;                                                          \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
