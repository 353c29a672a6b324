/* Quantizers: fake quantization against a double-precision reference (half-to-even ties,
 * saturation, exact zeros), the straight-through gradient's boundary, per-row weight scales (max
 * and MSE), and activation calibration (max, percentile, MSE, entropy) from the reservoir
 * observer, with its error cases. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/quant.h"
#include "test_util.h"

/* The reference: the scaled value rounded in float as PyTorch does (x · (1/s), both float), then
 * half-to-even rounding, clamping and scaling back in double. */
static double ref_fq(float x, float s, int qmax)
{
    double r = nearbyint((double)(x * (1.0f / s)));
    r = r < -qmax ? -qmax : (r > qmax ? qmax : r);
    return r * s;
}

static void test_fake_quant(void)
{
    CHECK(gsq_quant_qmax(8) == 127 && gsq_quant_qmax(4) == 7 && gsq_quant_qmax(1) == 0, "qmax");
    enum { N = 4099 };
    float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, 0);
    for (int bits = 4; bits <= 8; bits += 4) {
        int qmax = gsq_quant_qmax(bits);
        float s = 0.037f;
        for (int i = 0; i < N; i++) x[i] = 3.0f * (float)qmax * s * (gsq_rng_uniform(&rng) - 0.5f);
        x[0] = 0.0f;
        x[1] = -0.0f;
        x[2] = 0.5f * s;    /* a tie: rounds to the even code 0 */
        x[3] = 1.5f * s;    /* a tie: rounds to 2 */
        x[4] = 1e9f;        /* saturates */
        gsq_fake_quant(y, x, N, s, qmax);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            int off = fabs(y[i] - ref_fq(x[i], s, qmax)) > 1e-6 * fabs(ref_fq(x[i], s, qmax));
            if (off && bad++ == 0) fprintf(stderr, "x[%d] = %.9g: %.9g vs %.9g\n", i, x[i], y[i], ref_fq(x[i], s, qmax));
        }
        CHECK(bad == 0, "INT%d: %d values differ from the reference", bits, bad);
        CHECK(y[0] == 0.0f && y[1] == 0.0f && y[2] == 0.0f && fabsf(y[3] - 2 * s) < 1e-7f &&
                  fabsf(y[4] - (float)qmax * s) < 1e-6f,
              "INT%d: zero %g %g, ties %g %g, saturation %g", bits, y[0], y[1], y[2], y[3], y[4]);
        int8_t codes[8];
        gsq_quantize_codes(codes, x, 5, s, qmax);
        CHECK(codes[0] == 0 && codes[2] == 0 && codes[3] == 2 && codes[4] == qmax, "INT%d codes", bits);
        /* the straight-through gradient passes where the code is in range, including saturation's edge */
        float xs[4] = {((float)qmax + 0.4f) * s, ((float)qmax + 0.6f) * s, -((float)qmax + 0.6f) * s, 0.1f * s};
        float dy[4] = {1, 2, 3, 4}, dx[4];
        gsq_fake_quant_backward(dx, dy, xs, 4, s, qmax);
        CHECK(dx[0] == 1 && dx[1] == 0 && dx[2] == 0 && dx[3] == 4, "INT%d STE %g %g %g %g", bits, dx[0], dx[1],
              dx[2], dx[3]);
    }
    /* per-row scales */
    float w[6] = {0.1f, -0.2f, 0.3f, 10, 20, -30}, sc[2] = {0.3f / 7, 30.0f / 7}, wq[6];
    gsq_fake_quant_rows(wq, w, 2, 3, sc, 7);
    for (int i = 0; i < 6; i++)
        CHECK(fabs(wq[i] - ref_fq(w[i], sc[i / 3], 7)) < 1e-6 * fabs(w[i]), "row quantization %d: %g", i, wq[i]);
    free(x);
    free(y);
}

static double sq_error(const float *x, size_t n, float scale, int qmax)
{
    float *y = malloc(n * sizeof(float));
    gsq_fake_quant(y, x, n, scale, qmax);
    double e = 0;
    for (size_t i = 0; i < n; i++) e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
    free(y);
    return e;
}

static void test_weight_scales(void)
{
    enum { R = 5, C = 256 };
    float w[R * C], smax[R], smse[R];
    gsq_rng rng;
    gsq_rng_seed(&rng, 2, 0);
    for (int i = 0; i < R * C; i++) w[i] = gsq_rng_normal(&rng) * (float)(1 + i / C);
    w[3] = 25.0f; /* an outlier in row 0 */
    memset(w + 4 * C, 0, C * sizeof(float));
    gsq_error err = {0};
    CHECK(gsq_weight_scales(smax, w, R, C, 7, GSQ_CALIB_MAX, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_weight_scales(smse, w, R, C, 7, GSQ_CALIB_MSE, &err) == GSQ_OK, "%s", err.msg);
    CHECK(fabsf(smax[0] - 25.0f / 7) < 1e-6f && smax[4] == 1.0f && smse[4] == 1.0f, "max scales %g, zero row %g",
          smax[0], smax[4]);
    for (int r = 0; r < 4; r++) {
        double em = sq_error(w + r * C, C, smax[r], 7), es = sq_error(w + r * C, C, smse[r], 7);
        CHECK(smse[r] <= smax[r] && es <= em, "row %d: MSE scale %g (error %g) vs max %g (%g)", r, smse[r], es, smax[r], em);
    }
    CHECK(smse[0] < 0.9f * smax[0], "the outlier row should clip: %g vs %g", smse[0], smax[0]);
    CHECK(gsq_weight_scales(smax, w, R, C, 7, GSQ_CALIB_ENTROPY, &err) == GSQ_ERR_ARG, "entropy for weights");
}

static void test_observer(void)
{
    gsq_error err = {0};
    gsq_observer *o = NULL;
    CHECK(gsq_observer_create(&o, 20000, 3, &err) == GSQ_OK, "%s", err.msg);
    float s;
    CHECK(gsq_observer_scale(o, GSQ_CALIB_MAX, 0, 127, &s, &err) == GSQ_ERR_ARG, "nothing observed");
    /* 500,000 values uniform in [-1, 1) in batches, plus rare outliers at ±50 */
    enum { B = 50000 };
    float *x = malloc(B * sizeof(float));
    gsq_rng rng;
    gsq_rng_seed(&rng, 4, 0);
    for (int b = 0; b < 10; b++) {
        for (int i = 0; i < B; i++) x[i] = 2.0f * gsq_rng_uniform(&rng) - 1.0f;
        x[b * 7] = b % 2 ? 50.0f : -50.0f;
        gsq_observer_observe(o, x, B);
    }
    float smax, sp50, sp100, smse, sent;
    CHECK(gsq_observer_scale(o, GSQ_CALIB_MAX, 0, 127, &smax, &err) == GSQ_OK && fabsf(smax * 127 - 50) < 1e-4f,
          "max %g", smax * 127);
    CHECK(gsq_observer_scale(o, GSQ_CALIB_PERCENTILE, 50, 127, &sp50, &err) == GSQ_OK && fabsf(sp50 * 127 - 0.5f) < 0.02f,
          "median of |uniform| from the reservoir %g", sp50 * 127);
    CHECK(gsq_observer_scale(o, GSQ_CALIB_PERCENTILE, 100, 127, &sp100, &err) == GSQ_OK && sp100 * 127 <= 50.0f &&
              sp100 * 127 >= 0.99f,
          "percentile 100 %g", sp100 * 127);
    CHECK(gsq_observer_scale(o, GSQ_CALIB_MSE, 0, 127, &smse, &err) == GSQ_OK && smse * 127 < 25.0f, "mse %g",
          smse * 127);
    CHECK(gsq_observer_scale(o, GSQ_CALIB_ENTROPY, 0, 127, &sent, &err) == GSQ_OK && sent * 127 < 10.0f &&
              sent * 127 >= 0.5f,
          "entropy %g", sent * 127);
    /* on the bulk of the data, the clipping calibrations beat max */
    for (int i = 0; i < B; i++) x[i] = 2.0f * gsq_rng_uniform(&rng) - 1.0f;
    CHECK(sq_error(x, B, smse, 127) < sq_error(x, B, smax, 127) && sq_error(x, B, sent, 127) < sq_error(x, B, smax, 127),
          "MSE/entropy scales should quantize the bulk better than max");
    CHECK(gsq_observer_scale(o, GSQ_CALIB_PERCENTILE, 0, 127, &s, &err) == GSQ_ERR_ARG, "percentile 0");
    gsq_observer_free(o);
    /* all zeros */
    gsq_observer_create(&o, 16, 3, &err);
    memset(x, 0, 100 * sizeof(float));
    gsq_observer_observe(o, x, 100);
    CHECK(gsq_observer_scale(o, GSQ_CALIB_MAX, 0, 127, &s, &err) == GSQ_ERR_ARG && strstr(err.msg, "0"), "all zeros");
    gsq_observer_free(o);
    /* NaN and infinity are counted, never binned or sorted: every method refuses */
    gsq_observer_create(&o, 16, 3, &err);
    float bad[4] = {1.0f, NAN, INFINITY, 2.0f};
    gsq_observer_observe(o, bad, 4);
    for (int k = 0; k < 4; k++)
        CHECK(gsq_observer_scale(o, (gsq_calib_method)k, 99.0f, 127, &s, &err) == GSQ_ERR_ARG && strstr(err.msg, "NaN"),
              "%s with NaN and infinity: %s", gsq_calib_name((gsq_calib_method)k), err.msg);
    gsq_observer_free(o);
    gsq_calib_method m;
    CHECK(gsq_calib_parse("entropy", &m, &err) == GSQ_OK && m == GSQ_CALIB_ENTROPY &&
              gsq_calib_parse("kl", &m, &err) == GSQ_ERR_ARG,
          "parse");
    free(x);
}

int main(void)
{
    test_fake_quant();
    test_weight_scales();
    test_observer();
    return test_finish("test_quant");
}
