/* Minimal test helpers: CHECK prints file:line and the expression and counts failures; tests return
 * gv_test_result() from main. */
#ifndef GV_TEST_H
#define GV_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int gv_test_failures = 0;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
            gv_test_failures++;                                                                              \
        }                                                                                                    \
    } while (0)

#define CHECK_OK(expr)                                                                                       \
    do {                                                                                                     \
        gv_status st_ = (expr);                                                                              \
        if (st_ != GV_OK) {                                                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, gv_last_error());           \
            gv_test_failures++;                                                                              \
        }                                                                                                    \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                                        \
    do {                                                                                                     \
        double a_ = (a), b_ = (b);                                                                           \
        if (!(fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_))) {                                                  \
            fprintf(stderr, "%s:%d: %s = %.9g vs %s = %.9g\n", __FILE__, __LINE__, #a, a_, #b, b_);          \
            gv_test_failures++;                                                                              \
        }                                                                                                    \
    } while (0)

static inline int gv_test_result(const char *name) {
    if (gv_test_failures)
        fprintf(stderr, "%s: %d failure(s)\n", name, gv_test_failures);
    else
        printf("%s: ok\n", name);
    return gv_test_failures ? 1 : 0;
}
#endif
