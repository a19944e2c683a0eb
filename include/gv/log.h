/* Logging levels; messages go to stderr. GV_LOG=debug|info|warn|error or gv_log_set_level(). */
#ifndef GV_LOG_H
#define GV_LOG_H
#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    GV_LOG_DEBUG = 0,
    GV_LOG_INFO = 1,
    GV_LOG_WARN = 2,
    GV_LOG_ERROR = 3,
    GV_LOG_QUIET = 4
} gv_log_level;

void gv_log_set_level(gv_log_level lvl);
gv_log_level gv_log_get_level(void);
void gv_log(gv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define gv_debug(...) gv_log(GV_LOG_DEBUG, __VA_ARGS__)
#define gv_info(...) gv_log(GV_LOG_INFO, __VA_ARGS__)
#define gv_warn(...) gv_log(GV_LOG_WARN, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
