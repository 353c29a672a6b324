/* Semantic segmentation's loss, distillation term and prediction: each image's grid × grid map of
 * class logits upsampled bilinearly to the label map's S × S as F.interpolate(mode='bilinear',
 * align_corners=False) places its samples (a row blend, then a column blend), then per pixel the
 * cross-entropy with label smoothing of src/nn/loss.c, the KL divergence from a teacher's
 * upsampled logits, or the argmax. The loss runs in bands (the
 * output rows sharing an upper source row), even bands then odd, so that bands running at once
 * scatter their gradient into disjoint grid rows: every value is written by one thread in a fixed
 * order and the results do not depend on the number of threads. */
#include "gpusq/task.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/vmath.h"

/* One output coordinate's two source cells along an axis and their weights. */
typedef struct {
    int i0, i1;
    float w0, w1;
} tap;

/* PyTorch's rule (area_pixel_compute_source_index, align_corners=False), in float as PyTorch
 * computes it for float tensors: source (dst + 0.5)·grid/S − 0.5 clamped below at 0, its floor
 * and the next cell (the same one at the last), weighted by the distance past the floor. */
static tap axis_tap(int dst, int grid, int S)
{
    float src = (float)grid / (float)S * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    tap t = {.i0 = (int)src};
    t.i1 = t.i0 < grid - 1 ? t.i0 + 1 : t.i0;
    t.w1 = src - (float)t.i0;
    t.w0 = 1.0f - t.w1;
    return t;
}

static inline float mix(float a, float b, tap t) { return t.w0 * a + t.w1 * b; }

/* out (n) = the blend of a and b by t */
static void blend(float *out, const float *a, const float *b, tap t, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = mix(a[i], b[i], t);
}

/* y (n) += w · x */
static void axpy(float *y, float w, const float *x, size_t n)
{
    #pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] += w * x[i];
}

/* The transpose of blend: da += w0 · d, db += w1 · d (da and db may be the same cells). */
static void scatter(float *da, float *db, const float *d, tap t, size_t n)
{
    axpy(da, t.w0, d, n);
    axpy(db, t.w1, d, n);
}

static int is_labelled(int16_t label, int K) { return label >= 0 && label < K; }

static size_t count_labelled(const int16_t *labels, size_t n, int K)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += (size_t)is_labelled(labels[i], K);
    return count;
}

/* One pixel's cross-entropy against class y with label smoothing s, (1 − s)·(−log p_y) +
 * s·mean_k(−log p_k), from its logits z (K); when grad, z is overwritten with g·(p − q),
 * q = (1 − s)·onehot(y) + s/K. */
static double pixel_ce(float *z, int K, int y, float s, float g, int grad)
{
    float maxv = z[0];
    #pragma omp simd reduction(max : maxv)
    for (int k = 1; k < K; k++) maxv = z[k] > maxv ? z[k] : maxv;
    float zy = z[y] - maxv, zsum = 0.0f, sum = 0.0f;
    #pragma omp simd reduction(+ : zsum, sum)
    for (int k = 0; k < K; k++) {
        float d = z[k] - maxv;
        zsum += d;
        z[k] = gsq_vexpf(d);
        sum += z[k];
    }
    double logsum = log((double)sum); /* of the shifted logits: −log p_k = logsum − (z_k − max) */
    if (grad) {
        float inv = g / sum, smooth = g * s / (float)K;
        #pragma omp simd
        for (int k = 0; k < K; k++) z[k] = z[k] * inv - smooth;
        z[y] -= g * (1.0f - s);
    }
    return (1.0 - s) * (logsum - zy) + s * (logsum - (double)zsum / K);
}

/* One pixel's T²·KL(softmax(t/T) ‖ softmax(z/T)) from the student's logits z and the teacher's t
 * (K each); when grad, z is overwritten with g·T·(p_z − p_t), its gradient times g. */
static double pixel_kl(float *z, const float *t, int K, float T, float g, int grad)
{
    float mz = z[0], mt = t[0];
    for (int k = 1; k < K; k++) {
        mz = z[k] > mz ? z[k] : mz;
        mt = t[k] > mt ? t[k] : mt;
    }
    double sz = 0.0, st = 0.0;
    for (int k = 0; k < K; k++) {
        sz += exp((double)(z[k] - mz) / T);
        st += exp((double)(t[k] - mt) / T);
    }
    double lz = log(sz), lt = log(st), kl = 0.0;
    for (int k = 0; k < K; k++) {
        double lpt = (double)(t[k] - mt) / T - lt, lpz = (double)(z[k] - mz) / T - lz, pt = exp(lpt);
        kl += pt * (lpt - lpz);
        if (grad) z[k] = (float)((double)g * T * (exp(lpz) - pt));
    }
    return (double)T * T * kl;
}

/* One call's inputs, shared by its bands. */
typedef struct {
    const float *logits;
    const float *teacher; /* non-NULL: the KL from the teacher's logits at every pixel, not the CE */
    float temperature;
    const int16_t *labels;
    float *dlogits;  /* NULL: the loss alone */
    const tap *taps; /* (S): the same along both axes */
    int grid, K, S;
    float smoothing, g; /* g: the gradient's factor, scale / labelled pixels */
} seg_loss;

/* Output row y of image b: the sum of its labelled pixels' losses (with a teacher, of every pixel's
 * KL); with a gradient, the row's part added to the image's dlogits. work: WORK_FLOATS. */
#define WORK_FLOATS(grid, K) (3 * (size_t)(grid) * (K) + 2 * (size_t)(K))
static double loss_row(const seg_loss *c, int b, int y, float *work)
{
    int K = c->K;
    size_t gK = (size_t)c->grid * K, image = (size_t)b * c->grid * gK;
    float *row = work, *drow = row + gK, *trow = drow + gK, *z = trow + gK, *t = z + K;
    tap ty = c->taps[y];
    blend(row, c->logits + image + ty.i0 * gK, c->logits + image + ty.i1 * gK, ty, gK);
    if (c->teacher) blend(trow, c->teacher + image + ty.i0 * gK, c->teacher + image + ty.i1 * gK, ty, gK);
    if (c->dlogits) memset(drow, 0, gK * sizeof *drow);
    const int16_t *labels = c->labels ? c->labels + ((size_t)b * c->S + y) * c->S : NULL;
    double loss = 0.0;
    for (int x = 0; x < c->S; x++) {
        if (labels && !is_labelled(labels[x], K)) continue;
        tap tx = c->taps[x];
        blend(z, row + tx.i0 * K, row + tx.i1 * K, tx, K);
        if (c->teacher) {
            blend(t, trow + tx.i0 * K, trow + tx.i1 * K, tx, K);
            loss += pixel_kl(z, t, K, c->temperature, c->g, c->dlogits != NULL);
        } else {
            loss += pixel_ce(z, K, labels[x], c->smoothing, c->g, c->dlogits != NULL);
        }
        if (c->dlogits) scatter(drow + tx.i0 * K, drow + tx.i1 * K, z, tx, K);
    }
    if (c->dlogits) scatter(c->dlogits + image + ty.i0 * gK, c->dlogits + image + ty.i1 * gK, drow, ty, gK);
    return loss;
}

/* Band `band` of image b: the output rows whose upper source row is grid row `band`; its gradient
 * goes to grid rows band and band + 1 alone. */
static double loss_band(const seg_loss *c, int b, int band, float *work)
{
    double loss = 0.0;
    for (int y = 0; y < c->S; y++)
        if (c->taps[y].i0 == band) loss += loss_row(c, b, y, work);
    return loss;
}

/* The bands of one parity of every image, in parallel; each thread's work area is its own. */
static void loss_pass(const seg_loss *c, int B, int parity, double *band_loss, float *work, size_t per_thread,
                      int threads)
{
    int bands = (c->grid - parity + 1) / 2; /* parity, parity + 2, ... below grid */
    #pragma omp parallel num_threads(threads)
    {
        float *mine = work + (size_t)omp_get_thread_num() * per_thread;
        #pragma omp for schedule(static)
        for (int t = 0; t < B * bands; t++) {
            int b = t / bands, band = parity + 2 * (t % bands);
            band_loss[(size_t)b * c->grid + band] = loss_band(c, b, band, mine);
        }
    }
}

/* The mean over n pixels of c's per-pixel term (c->g still to be divided by n). */
static float mean_over_pixels(seg_loss c, int B, size_t n)
{
    int threads = omp_get_max_threads(), grid = c.grid, S = c.S;
    size_t per_thread = WORK_FLOATS(grid, c.K);
    tap *taps = malloc((size_t)S * sizeof *taps);
    float *work = malloc((size_t)threads * per_thread * sizeof *work);
    double *band_loss = malloc((size_t)B * grid * sizeof *band_loss);
    double total = NAN; /* out of memory: no loss */
    if (taps && work && band_loss) {
        for (int i = 0; i < S; i++) taps[i] = axis_tap(i, grid, S);
        c.taps = taps;
        c.g /= (float)n;
        loss_pass(&c, B, 0, band_loss, work, per_thread, threads);
        loss_pass(&c, B, 1, band_loss, work, per_thread, threads);
        total = 0.0;
        for (size_t i = 0; i < (size_t)B * grid; i++) total += band_loss[i];
    }
    free(taps);
    free(work);
    free(band_loss);
    return (float)(total / (double)n);
}

gsq_status gsq_segment_check_labels(const int16_t *labels, int B, int S, int K, const char *what, gsq_error *err)
{
    size_t per_map = (size_t)S * S;
    for (size_t i = 0; i < (size_t)B * per_map; i++)
        if (labels[i] != GSQ_IGNORE_LABEL && !is_labelled(labels[i], K))
            return gsq_fail(err, GSQ_ERR_ARG, "%s: pixel %zu of sample %zu has label %d outside [0, %d)", what,
                            i % per_map, i / per_map, labels[i], K);
    return GSQ_OK;
}

float gsq_segment_loss(const float *logits, int B, int grid, int K, const int16_t *labels, int S, float smoothing,
                       float *dlogits, float scale, size_t *pixels)
{
    size_t n = count_labelled(labels, (size_t)B * S * S, K);
    if (pixels) *pixels = n;
    if (dlogits) memset(dlogits, 0, (size_t)B * grid * grid * K * sizeof *dlogits);
    if (n == 0) return 0.0f;
    seg_loss c = {.logits = logits, .labels = labels, .dlogits = dlogits, .grid = grid, .K = K, .S = S,
                  .smoothing = smoothing, .g = scale};
    return mean_over_pixels(c, B, n);
}

float gsq_segment_kl(const float *student, const float *teacher, int B, int grid, int K, int S, float temperature,
                     float *dstudent, float scale)
{
    if (dstudent) memset(dstudent, 0, (size_t)B * grid * grid * K * sizeof *dstudent);
    seg_loss c = {.logits = student, .teacher = teacher, .temperature = temperature, .dlogits = dstudent,
                  .grid = grid, .K = K, .S = S, .g = scale};
    return mean_over_pixels(c, B, (size_t)B * S * S);
}

/* The argmax (lowest class on ties) of one output pixel's logits, upsampled on the fly from its
 * source rows `top` and `bottom` with the loss's arithmetic, so it is the argmax of what the loss
 * scores. */
static int pixel_argmax(const float *top, const float *bottom, tap tx, tap ty, int K)
{
    const float *a = top + (size_t)tx.i0 * K, *b = top + (size_t)tx.i1 * K;
    const float *c = bottom + (size_t)tx.i0 * K, *d = bottom + (size_t)tx.i1 * K;
    int best = 0;
    float bestv = 0.0f;
    for (int k = 0; k < K; k++) {
        float z = mix(mix(a[k], c[k], ty), mix(b[k], d[k], ty), tx);
        if (k == 0 || z > bestv) {
            best = k;
            bestv = z;
        }
    }
    return best;
}

void gsq_segment_predict(const float *logits, int B, int grid, int K, int S, int16_t *pred)
{
    size_t gK = (size_t)grid * K;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < S; y++) {
            const float *image = logits + (size_t)b * grid * gK;
            tap ty = axis_tap(y, grid, S);
            int16_t *out = pred + ((size_t)b * S + y) * S;
            for (int x = 0; x < S; x++)
                out[x] = (int16_t)pixel_argmax(image + ty.i0 * gK, image + ty.i1 * gK, axis_tap(x, grid, S), ty, K);
        }
}
