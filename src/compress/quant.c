/* Symmetric fake quantization with straight-through gradients, LSQ's scale gradient, weight scales
 * per output channel, and activation calibration (max, percentile, MSE, entropy) from a reservoir
 * sample (include/gpusq/quant.h). */
#include "gpusq/quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/rng.h"
#include "kernels/quant_code.h"

int gsq_quant_qmax(int bits)
{
    return bits >= 2 && bits <= 16 ? (1 << (bits - 1)) - 1 : 0;
}

int gsq_quant_scale_ok(float s) { return s >= FLT_MIN && s < 1e30f; }


/* Below this many values the elementwise loops run in the calling thread: even a one-thread
 * OpenMP region costs about a microsecond, and rows of a few hundred values are quantized from
 * inside parallel loops (attention sections, weight rows). */
enum { PARALLEL_MIN = 65536 };

static void fake_quant_span(float *y, const float *x, size_t n, float inv, float q, float scale)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = gsq_quant_code(x[i], inv, q) * scale;
}

static void fake_quant_backward_span(float *dx, const float *dy, const float *x, size_t n, float inv, float q)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float r = rintf(x[i] * inv);
        dx[i] = (r >= -q && r <= q) ? dy[i] : 0.0f;
    }
}

void gsq_fake_quant(float *y, const float *x, size_t n, float scale, int qmax)
{
    float inv = 1.0f / scale, q = (float)qmax;
    if (n <= PARALLEL_MIN) {
        fake_quant_span(y, x, n, inv, q, scale);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (size_t lo = 0; lo < n; lo += PARALLEL_MIN)
        fake_quant_span(y + lo, x + lo, n - lo < PARALLEL_MIN ? n - lo : PARALLEL_MIN, inv, q, scale);
}

void gsq_fake_quant_backward(float *dx, const float *dy, const float *x, size_t n, float scale, int qmax)
{
    float inv = 1.0f / scale, q = (float)qmax;
    if (n <= PARALLEL_MIN) {
        fake_quant_backward_span(dx, dy, x, n, inv, q);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (size_t lo = 0; lo < n; lo += PARALLEL_MIN)
        fake_quant_backward_span(dx + lo, dy + lo, x + lo, n - lo < PARALLEL_MIN ? n - lo : PARALLEL_MIN, inv, q);
}

/* LSQ's ∂x̂/∂s summed against dy over chunk i (SCALE_CHUNK values) of n, in double:
 * round(x/s) − x/s where the code is in range (the straight-through estimator of round), ±qmax
 * where it saturates. */
enum { SCALE_CHUNK = 4096, SCALE_GROUP = 64 };

static double scale_grad_chunk(const float *dy, const float *x, size_t n, size_t i, float inv, float q)
{
    size_t lo = i * SCALE_CHUNK, len = n - lo < SCALE_CHUNK ? n - lo : SCALE_CHUNK;
    double sum = 0.0;
    for (size_t k = lo; k < lo + len; k++) {
        float v = x[k] * inv, r = rintf(v);
        float d = r < -q ? -q : (r > q ? q : r - v);
        sum += (double)dy[k] * (double)d;
    }
    return sum;
}

double gsq_fake_quant_scale_grad(const float *dy, const float *x, size_t n, float scale, int qmax)
{
    /* fixed chunks, summed in order: the partition does not depend on the thread count */
    float inv = 1.0f / scale, q = (float)qmax;
    size_t chunks = (n + SCALE_CHUNK - 1) / SCALE_CHUNK;
    double total = 0.0;
    for (size_t g0 = 0; g0 < chunks; g0 += SCALE_GROUP) {
        double part[SCALE_GROUP];
        int k = (int)(chunks - g0 < SCALE_GROUP ? chunks - g0 : SCALE_GROUP);
        if (n <= PARALLEL_MIN) {
            for (int c = 0; c < k; c++) part[c] = scale_grad_chunk(dy, x, n, g0 + (size_t)c, inv, q);
        } else {
            #pragma omp parallel for schedule(static)
            for (int c = 0; c < k; c++) part[c] = scale_grad_chunk(dy, x, n, g0 + (size_t)c, inv, q);
        }
        for (int c = 0; c < k; c++) total += part[c];
    }
    return total;
}

void gsq_fake_quant_rows(float *y, const float *w, int rows, int cols, const float *scales, int qmax)
{
    #pragma omp parallel for schedule(static) if ((size_t)rows * (size_t)cols > 65536)
    for (int r = 0; r < rows; r++) {
        size_t o = (size_t)r * (size_t)cols;
        float inv = 1.0f / scales[r], q = (float)qmax;
        for (int c = 0; c < cols; c++) y[o + c] = gsq_quant_code(w[o + c], inv, q) * scales[r];
    }
}

void gsq_quantize_codes(int8_t *out, const float *x, size_t n, float scale, int qmax)
{
    float inv = 1.0f / scale, q = (float)qmax;
    for (size_t i = 0; i < n; i++) out[i] = (int8_t)gsq_quant_code(x[i], inv, q);
}

static const char *const calib_names[] = {"max", "percentile", "mse", "entropy"};

gsq_status gsq_calib_parse(const char *s, gsq_calib_method *out, gsq_error *err)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, calib_names[i]) == 0) {
            *out = (gsq_calib_method)i;
            return GSQ_OK;
        }
    return gsq_fail(err, GSQ_ERR_ARG, "unknown calibration '%s' (max, percentile, mse or entropy)", s);
}

const char *gsq_calib_name(gsq_calib_method m)
{
    return (unsigned)m < 4 ? calib_names[m] : "?";
}

/* Σ (x − x̂)² of n values at amax (scale amax / qmax), in double. */
static double quant_error(const float *x, size_t n, float amax, int qmax)
{
    float scale = amax / (float)qmax, inv = 1.0f / scale, q = (float)qmax;
    double e = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)(gsq_quant_code(x[i], inv, q) * scale);
        e += d * d;
    }
    return e;
}

/* The amax in {max·k/100 : k = 20..100} with the least squared error (the largest on ties). */
static float mse_amax(const float *x, size_t n, float max, int qmax)
{
    float best = max;
    double best_err = quant_error(x, n, max, qmax);
    for (int k = 99; k >= 20; k--) {
        float a = max * (float)k / 100.0f;
        double e = quant_error(x, n, a, qmax);
        if (e < best_err) {
            best_err = e;
            best = a;
        }
    }
    return best;
}

gsq_status gsq_weight_scales(float *scales, const float *w, int rows, int cols, int qmax, gsq_calib_method m,
                             gsq_error *err)
{
    if (m != GSQ_CALIB_MAX && m != GSQ_CALIB_MSE)
        return gsq_fail(err, GSQ_ERR_ARG, "weights calibrate by max or mse, not %s", gsq_calib_name(m));
    if (qmax < 1) return gsq_fail(err, GSQ_ERR_ARG, "quantizer range %d is not positive", qmax);
    #pragma omp parallel for schedule(dynamic, 16)
    for (int r = 0; r < rows; r++) {
        const float *row = w + (size_t)r * (size_t)cols;
        float max = 0.0f;
        for (int c = 0; c < cols; c++) max = fmaxf(max, fabsf(row[c]));
        if (max == 0.0f || !isfinite(max)) scales[r] = 1.0f; /* non-finite rows are refused by the caller */
        else scales[r] = (m == GSQ_CALIB_MSE ? mse_amax(row, (size_t)cols, max, qmax) : max) / (float)qmax;
    }
    return GSQ_OK;
}

struct gsq_observer {
    float *sample;   /* |x| values, a uniform sample of everything observed */
    size_t cap, n;   /* capacity, values held */
    uint64_t seen;   /* finite values observed */
    uint64_t nonfinite; /* NaN or infinite values observed */
    float max;
    gsq_rng rng;
};

gsq_status gsq_observer_create(gsq_observer **out, size_t capacity, uint64_t seed, gsq_error *err)
{
    *out = NULL;
    if (capacity < 1) return gsq_fail(err, GSQ_ERR_ARG, "observer: capacity must be positive");
    gsq_observer *o = calloc(1, sizeof *o);
    if (!o || !(o->sample = malloc(capacity * sizeof(float)))) {
        free(o);
        return gsq_fail(err, GSQ_ERR_NOMEM, "observer: out of memory for %zu values", capacity);
    }
    o->cap = capacity;
    gsq_rng_seed(&o->rng, seed, 0x0b5e);
    *out = o;
    return GSQ_OK;
}

void gsq_observer_free(gsq_observer *o)
{
    if (!o) return;
    free(o->sample);
    free(o);
}

void gsq_observer_observe(gsq_observer *o, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!isfinite(a)) { /* counted, never sampled: calibration then fails */
            o->nonfinite++;
            continue;
        }
        if (a > o->max) o->max = a;
        if (o->n < o->cap) {
            o->sample[o->n++] = a;
        } else { /* reservoir sampling: value number `seen` replaces a random one with p = cap / (seen + 1) */
            uint64_t r = ((uint64_t)gsq_rng_u32(&o->rng) << 32) | gsq_rng_u32(&o->rng);
            uint64_t j = r % (o->seen + 1);
            if (j < o->cap) o->sample[j] = a;
        }
        o->seen++;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* TensorRT-style entropy calibration over a 2048-bin histogram of |x| on [0, max]: the threshold
 * (a bin edge i ≥ levels) whose clipped distribution P and its `levels`-level quantization Q have
 * the least KL(P ‖ Q). */
static float entropy_amax(const float *x, size_t n, float max, int levels)
{
    enum { BINS = 2048 };
    double *hist = calloc(BINS, sizeof(double)), *p = malloc(BINS * sizeof(double)), *q = malloc(BINS * sizeof(double));
    if (!hist || !p || !q) {
        free(hist), free(p), free(q);
        return max;
    }
    float width = max / BINS;
    for (size_t k = 0; k < n; k++) {
        float f = x[k] / width;
        hist[f < (float)BINS ? (int)f : BINS - 1] += 1.0; /* x is finite and >= 0 */
    }
    double best_kl = INFINITY;
    int best = BINS;
    for (int i = levels; i <= BINS; i++) {
        double outliers = 0.0;
        for (int b = i; b < BINS; b++) outliers += hist[b];
        memcpy(p, hist, (size_t)i * sizeof(double));
        p[i - 1] += outliers;
        /* Q: merge the i bins into `levels` groups, spread each group's count over its non-empty bins */
        for (int g = 0; g < levels; g++) {
            int lo = (int)((long)g * i / levels), hi = (int)((long)(g + 1) * i / levels);
            double sum = 0.0;
            int nonzero = 0;
            for (int b = lo; b < hi; b++) {
                sum += hist[b];
                nonzero += hist[b] != 0.0;
            }
            for (int b = lo; b < hi; b++) q[b] = hist[b] != 0.0 ? sum / nonzero : 0.0;
        }
        double ps = 0.0, qs = 0.0;
        for (int b = 0; b < i; b++) {
            ps += p[b];
            qs += q[b];
        }
        if (ps <= 0.0 || qs <= 0.0) continue;
        double kl = 0.0;
        for (int b = 0; b < i; b++) {
            if (p[b] == 0.0) continue;
            double pb = p[b] / ps, qb = q[b] / qs;
            kl += pb * log(pb / (qb > 0.0 ? qb : 1e-12 / qs));
        }
        if (kl < best_kl) {
            best_kl = kl;
            best = i;
        }
    }
    free(hist), free(p), free(q);
    return ((float)best + 0.5f) * width < max ? ((float)best + 0.5f) * width : max;
}

gsq_status gsq_observer_scale(gsq_observer *o, gsq_calib_method m, float percentile, int qmax, float *scale,
                              gsq_error *err)
{
    if (qmax < 1) return gsq_fail(err, GSQ_ERR_ARG, "quantizer range %d is not positive", qmax);
    if (o->nonfinite)
        return gsq_fail(err, GSQ_ERR_ARG, "calibration: %llu observed values were NaN or infinite",
                        (unsigned long long)o->nonfinite);
    if (o->n == 0 || o->max == 0.0f)
        return gsq_fail(err, GSQ_ERR_ARG, "calibration: %s", o->n ? "every observed value was 0" : "nothing observed");
    float amax = o->max;
    switch (m) {
    case GSQ_CALIB_MAX:
        break;
    case GSQ_CALIB_PERCENTILE: {
        if (!(percentile > 0.0f && percentile <= 100.0f))
            return gsq_fail(err, GSQ_ERR_ARG, "calibration: percentile %g is outside (0, 100]", (double)percentile);
        qsort(o->sample, o->n, sizeof(float), cmp_float);
        size_t k = (size_t)ceil((double)percentile / 100.0 * (double)o->n);
        amax = o->sample[k > 0 ? k - 1 : 0];
        if (amax == 0.0f) amax = o->max;
        break;
    }
    case GSQ_CALIB_MSE:
        amax = mse_amax(o->sample, o->n, o->max, qmax);
        break;
    case GSQ_CALIB_ENTROPY:
        amax = entropy_amax(o->sample, o->n, o->max, qmax + 1);
        break;
    default:
        return gsq_fail(err, GSQ_ERR_ARG, "calibration: unknown method %d", (int)m);
    }
    *scale = amax / (float)qmax;
    if (!(*scale > 0.0f && isfinite(*scale)))
        return gsq_fail(err, GSQ_ERR_ARG, "calibration: the scale %g is not a positive number", (double)*scale);
    return GSQ_OK;
}
