/* Helpers shared by the hardware and model profilers (private). */
#ifndef GV_PROFILE_UTIL_H
#define GV_PROFILE_UTIL_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "gv/comm.h"
#include "gv/status.h"

double gv_prof_now_ms(void);             /* monotonic clock */
double gv_prof_median(double *v, int n); /* sorts v */
void gv_prof_date(char *buf, size_t n);  /* UTC, ISO 8601 */
/* Maximum of x over the ranks of c, on every rank. */
gv_status gv_prof_max(gv_comm *c, double *x);
/* Writes j (pretty-printed, newline-terminated) atomically to dir/name; frees nothing. */
gv_status gv_prof_write_json(const cJSON *j, const char *dir, const char *name);
/* cJSON_AddNumberToObject that turns an allocation failure into NULL-safe no-op checks later. */
cJSON *gv_prof_num(cJSON *obj, const char *key, double v);
#endif
