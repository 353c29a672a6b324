/* Tests of the engine's GELU (src/kernels/cpu/gelu_approx.h): the scalar form against double-precision
 * x·Φ(x) on a dense sweep of [-10, 10], random bit patterns over the whole float range and the
 * special values (±0, denormals, huge, ±inf, NaN), within 1e-6 · max(1, |x|); the float model's
 * GELU (gsq_gelu_forward) within the same bound; and the AVX-512 and AVX2 forms equal to the
 * scalar one bit for bit on the same inputs, where the CPU has them (argv[1] avx2 or avx512: that
 * form only, skipped where the CPU lacks it). */
#include <float.h>
#include <string.h>

#include "kernels/cpu/gelu_approx.h"
#include "gpusq/nn.h"
#include "test_util.h"

#define BOUND 1e-6 /* of max(1, |x|) */

static double exact_gelu(double x)
{
    if (isinf(x)) return x > 0 ? x : 0.0;
    return 0.5 * x * erfc(-x * 0.70710678118654752440); /* x·Φ(x), without 1 + erf's cancellation */
}

/* max over finite x of |y - GELU(x)| / max(1, |x|), and where it is reached */
static double max_err(const float *x, const float *y, size_t n, float *at)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        double err = fabs((double)y[i] - exact_gelu(x[i])) / fmax(1.0, fabs((double)x[i]));
        if (!(err <= worst)) worst = err, *at = x[i];
    }
    return worst;
}

/* The first index where a and b differ in their bits, or n. */
static size_t first_difference(const float *a, const float *b, size_t n)
{
    size_t i = 0;
    while (i < n && memcmp(a + i, b + i, sizeof(float)) == 0) i++;
    return i;
}

/* The vector form `form` (avx2 or avx512) of GELU over x into y, where this CPU has it: 1, else 0
 * (always 0 off x86, where the forms are not compiled). */
#if GSQ_X86
__attribute__((target("avx512f"))) static void gelu_avx512(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 16) _mm512_storeu_ps(y + i, gsq_gelu_avx512(_mm512_loadu_ps(x + i)));
}

__attribute__((target("avx2"))) static void gelu_avx2(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i += 8) _mm256_storeu_ps(y + i, gsq_gelu_avx2(_mm256_loadu_ps(x + i)));
}

static int has_form(const char *form)
{
    __builtin_cpu_init();
    return strcmp(form, "avx2") ? __builtin_cpu_supports("avx512f") : __builtin_cpu_supports("avx2");
}

static void vector_gelu(const char *form, float *y, const float *x, size_t n)
{
    if (strcmp(form, "avx2")) gelu_avx512(y, x, n);
    else gelu_avx2(y, x, n);
}
#else
static int has_form(const char *form) { return 0; }
static void vector_gelu(const char *form, float *y, const float *x, size_t n) {}
#endif

int main(int argc, char **argv)
{
    /* argv[1]: avx2 or avx512 checks that vector form only (CTest runs one test per form) */
    const char *only = argc > 1 ? argv[1] : NULL;
    if (only && strcmp(only, "avx2") && strcmp(only, "avx512")) {
        fprintf(stderr, "test_gelu_approx: unknown form '%s' (avx2, avx512)\n", only);
        return 2;
    }
    if (only && !has_form(only))
        return test_skip("test_gelu_approx", strcmp(only, "avx2") ? "this CPU has no AVX-512" : "this CPU has no AVX2");
    static const float special[] = {0.0f,     -0.0f,     FLT_TRUE_MIN, -FLT_TRUE_MIN, FLT_MIN, -FLT_MIN, 1e-30f,
                                    -1e-30f,  FLT_MAX,   -FLT_MAX,     1e30f,         -1e30f,  100.0f,   -100.0f,
                                    GSQ_GELU_XMIN, -5.6f, -5.7f,       INFINITY,      -INFINITY, NAN};
    const size_t dense = 20 * 65536 + 1, randoms = 1 << 20, nspecial = sizeof special / sizeof special[0];
    size_t n = (dense + randoms + nspecial + 15) / 16 * 16;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float)), *yv = malloc(n * sizeof(float));
    size_t k = 0;
    for (size_t i = 0; i < dense; i++) x[k++] = -10.0f + (float)i / 65536.0f; /* every 2^-16, exactly */
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 0);
    for (size_t i = 0; i < randoms; i++) {
        uint32_t bits = gsq_rng_u32(&rng);
        memcpy(&x[k++], &bits, sizeof bits); /* NaN patterns included */
    }
    memcpy(x + k, special, sizeof special);
    for (k += nspecial; k < n; k++) x[k] = 0.0f;

    for (size_t i = 0; i < n; i++) y[i] = gsq_gelu_approx(x[i]);
    float at = 0.0f;
    double err = max_err(x, y, n, &at);
    printf("scalar: max |error| / max(1, |x|) = %.3g (at x = %.9g)\n", err, (double)at);
    CHECK(err < BOUND, "scalar GELU error %.3g at x = %.9g", err, (double)at);
    CHECK(gsq_gelu_approx(INFINITY) == INFINITY, "GELU(+inf) = %g", (double)gsq_gelu_approx(INFINITY));
    CHECK(gsq_gelu_approx(-INFINITY) == 0.0f, "GELU(-inf) = %g", (double)gsq_gelu_approx(-INFINITY));
    CHECK(isnan(gsq_gelu_approx(NAN)), "GELU(NaN) = %g", (double)gsq_gelu_approx(NAN));
    CHECK(gsq_gelu_approx(FLT_MAX) == FLT_MAX, "GELU(FLT_MAX) = %g", (double)gsq_gelu_approx(FLT_MAX));
    size_t lost = 0;
    for (size_t i = 0; i < n; i++) lost += isnan(x[i]) && !isnan(y[i]);
    CHECK(lost == 0, "%zu NaN inputs gave numbers", lost);

    /* the float model's GELU rounds the same rational (with FMA): the two agree to the same bound */
    gsq_gelu_forward(yv, x, dense);
    double model = 0;
    for (size_t i = 0; i < dense; i++) model = fmax(model, fabs((double)yv[i] - y[i]) / fmax(1.0, fabs((double)x[i])));
    printf("against gsq_gelu_forward on [-10, 10]: max |difference| / max(1, |x|) = %.3g\n", model);
    CHECK(model < BOUND, "differs from the float model's GELU by %.3g", model);

    static const char *const forms[2] = {"avx512", "avx2"}, *const shown[2] = {"AVX-512", "AVX2"};
    for (int f = 0; f < 2; f++) {
        if (only && strcmp(only, forms[f])) continue;
        if (!has_form(forms[f])) {
            printf("%s form: not on this CPU\n", shown[f]);
            continue;
        }
        vector_gelu(forms[f], yv, x, n);
        size_t i = first_difference(y, yv, n);
        CHECK(i == n, "%s GELU(%.9g) = %.9g, the scalar form %.9g", shown[f], (double)x[i], (double)yv[i],
              (double)y[i]);
    }
    free(x), free(y), free(yv);
    return test_finish("test_gelu_approx");
}
