/* A small test harness: CHECK macros that count failures, random fills, error norms, and the
 * closing "N passed, N failed" line. Each test file is its own executable (see CMakeLists). */
#ifndef GSQ_TEST_UTIL_H
#define GSQ_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpusq/rng.h"

static int gsq_test_passed, gsq_test_failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) {                                                            \
            gsq_test_passed++;                                                 \
        } else {                                                               \
            gsq_test_failed++;                                                 \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
        }                                                                      \
    } while (0)

/* Prints the summary line and returns the process exit code. */
static inline int test_finish(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, gsq_test_passed, gsq_test_failed);
    return gsq_test_failed == 0 ? 0 : 1;
}

/* The exit code CTest reads as "skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt). */
#define GSQ_TEST_SKIP 77

/* Ends a test whose main checks cannot run here (no GPU, an instruction set the CPU lacks):
 * prints why and returns GSQ_TEST_SKIP, or 1 when a check that did run failed. */
static inline int test_skip(const char *suite, const char *why)
{
    printf("%s: skipped (%s); %d checks passed, %d failed\n", suite, why, gsq_test_passed, gsq_test_failed);
    return gsq_test_failed == 0 ? GSQ_TEST_SKIP : 1;
}

static inline void fill_normal(float *x, size_t n, gsq_rng *rng, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = gsq_rng_normal(rng) * std;
}

/* max_i |a_i - b_i| / max(max_i |b_i|, tiny): error relative to the reference's scale. */
static inline double max_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num || d != d) num = d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return num / (den > 1e-30 ? den : 1e-30);
}

/* ‖a - b‖₂ / ‖b‖₂: normalized L2 error against the reference b. */
static inline double norm_l2_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (num != num) return INFINITY;
    return sqrt(num) / (den > 1e-60 ? sqrt(den) : 1e-30);
}

#endif
