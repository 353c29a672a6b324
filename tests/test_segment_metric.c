/* Semantic segmentation's task functions: the task names; mIoU, per-class IoU and pixel accuracy
 * on a map worked out by hand; the loss's upsampling, value and gradient against this file's own
 * straightforward double-precision F.interpolate(bilinear, align_corners=False) and cross-entropy,
 * and against finite differences; the per-pixel distillation KL likewise; the prediction against
 * the reference's argmax; a batch with no
 * labelled pixel; and results identical bit for bit on 1, 2 and 3 threads.
 * With `--write DIR` it runs no test and writes instead, for scripts/miou_check.py, random
 * prediction and label maps and the metrics this library computes from them (always the same). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "gpusq/task.h"
#include "test_util.h"

/* ---- the reference: F.interpolate's rule in double, pixel by pixel ---- */

typedef struct {
    int i0, i1;
    double w1;
} ref_tap;

static ref_tap ref_axis(int dst, int grid, int S)
{
    double src = (dst + 0.5) * grid / S - 0.5;
    if (src < 0) src = 0;
    ref_tap t = {.i0 = (int)floor(src)};
    t.i1 = t.i0 + 1 < grid ? t.i0 + 1 : grid - 1;
    t.w1 = src - t.i0;
    return t;
}

/* logits (B, grid², K) → up (B, S, S, K) */
static void ref_upsample(const float *logits, int B, int grid, int K, int S, double *up)
{
    for (int b = 0; b < B; b++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                ref_tap ty = ref_axis(y, grid, S), tx = ref_axis(x, grid, S);
                const float *L = logits + (size_t)b * grid * grid * K;
                const float *v00 = L + (size_t)(ty.i0 * grid + tx.i0) * K, *v01 = L + (size_t)(ty.i0 * grid + tx.i1) * K,
                            *v10 = L + (size_t)(ty.i1 * grid + tx.i0) * K, *v11 = L + (size_t)(ty.i1 * grid + tx.i1) * K;
                double *u = up + (((size_t)b * S + y) * S + x) * K;
                for (int k = 0; k < K; k++)
                    u[k] = (1 - ty.w1) * ((1 - tx.w1) * v00[k] + tx.w1 * v01[k]) +
                           ty.w1 * ((1 - tx.w1) * v10[k] + tx.w1 * v11[k]);
            }
}

static int labelled(int16_t l, int K) { return l >= 0 && l < K; }

/* The mean over labelled pixels of (1 − s)·(−log p_y) + s·mean_k(−log p_k); *count gets them. */
static double ref_loss_up(const double *up, const int16_t *labels, size_t pixels, int K, double s, size_t *count)
{
    double total = 0;
    size_t n = 0;
    for (size_t i = 0; i < pixels; i++) {
        if (!labelled(labels[i], K)) continue;
        const double *z = up + i * K;
        double m = z[0], sum = 0, zsum = 0;
        for (int k = 1; k < K; k++) m = fmax(m, z[k]);
        for (int k = 0; k < K; k++) {
            sum += exp(z[k] - m);
            zsum += z[k];
        }
        double lse = m + log(sum);
        total += (1 - s) * (lse - z[labels[i]]) + s * (lse - zsum / K);
        n++;
    }
    if (count) *count = n;
    return n ? total / n : 0.0;
}

typedef struct {
    int B, grid, S, K;
} shape;

static size_t logits_size(shape s) { return (size_t)s.B * s.grid * s.grid * s.K; }
static size_t label_size(shape s) { return (size_t)s.B * s.S * s.S; }

static double ref_loss(const float *logits, const int16_t *labels, shape s, double smoothing, size_t *count)
{
    double *up = malloc(label_size(s) * s.K * sizeof *up);
    ref_upsample(logits, s.B, s.grid, s.K, s.S, up);
    double loss = ref_loss_up(up, labels, label_size(s), s.K, smoothing, count);
    free(up);
    return loss;
}

/* Random labels: about a fifth ignored, a few out of [0, K) (ignored too), the rest classes. */
static void random_labels(int16_t *labels, size_t n, int K, gsq_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t r = gsq_rng_u32(rng) % 100;
        labels[i] = r < 20 ? GSQ_IGNORE_LABEL
                  : r < 23 ? (int16_t)(r % 2 ? K + (int)r % 3 : -2 - (int)r % 3)
                           : (int16_t)(gsq_rng_u32(rng) % (uint32_t)K);
    }
}

/* ---- the task names ---- */

static void test_task_names(void)
{
    gsq_task t = GSQ_TASK_CLASSIFY;
    CHECK(strcmp(gsq_task_name(GSQ_TASK_CLASSIFY), "classify") == 0, "%s", gsq_task_name(GSQ_TASK_CLASSIFY));
    CHECK(strcmp(gsq_task_name(GSQ_TASK_SEGMENT), "segment") == 0, "%s", gsq_task_name(GSQ_TASK_SEGMENT));
    CHECK(strcmp(gsq_task_name((gsq_task)7), "?") == 0, "%s", gsq_task_name((gsq_task)7));
    CHECK(gsq_task_parse("segment", &t) == 0 && t == GSQ_TASK_SEGMENT, "%d", (int)t);
    CHECK(gsq_task_parse("classify", &t) == 0 && t == GSQ_TASK_CLASSIFY, "%d", (int)t);
    CHECK(gsq_task_parse("detect", &t) == 0 && t == GSQ_TASK_DETECT, "%d", (int)t);
    CHECK(strcmp(gsq_task_name(GSQ_TASK_DETECT), "detect") == 0, "%s", gsq_task_name(GSQ_TASK_DETECT));
    t = GSQ_TASK_CLASSIFY;
    CHECK(gsq_task_parse("classification", &t) == -1 && t == GSQ_TASK_CLASSIFY, "unknown word accepted");
    CHECK(gsq_task_parse("Segment", &t) == -1, "case-insensitive");
}

/* ---- mIoU by hand ----
 * 4 classes on a 4×4 map, I = ignored (its prediction counts nowhere):
 *   label          pred
 *   0 0 1 1        0 0 1 2
 *   0 0 1 1        0 1 1 1
 *   0 I I 1        1 3 3 1
 *   I 0 1 1        2 0 1 0
 * 13 labelled pixels, as (label, pred):
 *   row 0: (0,0) (0,0) (1,1) (1,2)     row 1: (0,0) (0,1) (1,1) (1,1)
 *   row 2: (0,1) (1,1)                 row 3: (0,0) (1,1) (1,0)
 * label areas: class 0: 2+2+1+1 = 6, class 1: 2+2+1+2 = 7, classes 2 and 3: 0
 * pred areas:  class 0: 2+1+0+2 = 5, class 1: 1+3+2+1 = 7, class 2: 1, class 3: 0 (the 3s and
 *              the 2 at row 3 are on ignored pixels)
 * intersect:   class 0: 2+1+0+1 = 4, class 1: 1+2+1+1 = 5, classes 2 and 3: 0
 * IoU: class 0: 4 / (5 + 6 − 4) = 4/7; class 1: 5 / (7 + 7 − 5) = 5/9; class 2, predicted but
 * never labelled: 0 / 1 = 0 (counted); class 3, nowhere: NaN (left out).
 * mIoU = (4/7 + 5/9 + 0) / 3 = 71/189; aAcc = (4 + 5) / 13 = 9/13. */
static const int16_t hand_label[16] = {0, 0, 1, 1, 0, 0, 1, 1, 0, -1, -1, 1, -1, 0, 1, 1};
static const int16_t hand_pred[16] = {0, 0, 1, 2, 0, 1, 1, 1, 1, 3, 3, 1, 2, 0, 1, 0};

static int near(double a, double b) { return fabs(a - b) <= 1e-12; }

static void check_hand_metrics(const gsq_iou *m, const char *how)
{
    CHECK(near(gsq_iou_class(m, 0), 4.0 / 7), "%s: class 0 %.17g", how, gsq_iou_class(m, 0));
    CHECK(near(gsq_iou_class(m, 1), 5.0 / 9), "%s: class 1 %.17g", how, gsq_iou_class(m, 1));
    CHECK(gsq_iou_class(m, 2) == 0.0, "%s: class 2 %.17g", how, gsq_iou_class(m, 2));
    CHECK(isnan(gsq_iou_class(m, 3)), "%s: class 3 %.17g", how, gsq_iou_class(m, 3));
    CHECK(near(gsq_iou_mean(m), 71.0 / 189), "%s: mIoU %.17g", how, gsq_iou_mean(m));
    CHECK(near(gsq_iou_pixel_accuracy(m), 9.0 / 13), "%s: aAcc %.17g", how, gsq_iou_pixel_accuracy(m));
}

static void test_iou_by_hand(void)
{
    gsq_iou m;
    gsq_error err;
    CHECK(gsq_iou_init(&m, 0, &err) == GSQ_ERR_ARG, "0 classes accepted");
    if (gsq_iou_init(&m, 4, &err) != GSQ_OK) {
        CHECK(0, "init: %s", err.msg);
        return;
    }
    CHECK(isnan(gsq_iou_mean(&m)) && isnan(gsq_iou_pixel_accuracy(&m)) && isnan(gsq_iou_class(&m, 0)),
          "empty accumulator is not NaN");
    gsq_iou_add(&m, hand_pred, hand_label, 16);
    check_hand_metrics(&m, "one add");
    CHECK(m.intersect[0] == 4 && m.pred_area[0] == 5 && m.label_area[0] == 6 && m.pred_area[2] == 1,
          "areas %llu %llu %llu", (unsigned long long)m.intersect[0], (unsigned long long)m.pred_area[0],
          (unsigned long long)m.label_area[0]);

    /* the same pixels in two adds, after a reset */
    gsq_iou_reset(&m);
    CHECK(isnan(gsq_iou_mean(&m)), "reset left counts");
    gsq_iou_add(&m, hand_pred, hand_label, 7);
    gsq_iou_add(&m, hand_pred + 7, hand_label + 7, 9);
    check_hand_metrics(&m, "two adds");

    /* labels outside [0, K) count nowhere, whatever the prediction */
    const int16_t odd_label[3] = {4, -3, 100}, odd_pred[3] = {0, 1, 2};
    gsq_iou_add(&m, odd_pred, odd_label, 3);
    check_hand_metrics(&m, "labels out of range");

    /* a prediction outside [0, K) on a labelled pixel is a miss: class 0's label area 6 → 7, so
     * IoU 4 / (5 + 7 − 4) = 1/2, mIoU (1/2 + 5/9) / 3 = 19/54, aAcc 9/14 */
    const int16_t miss_label[2] = {0, 1}, miss_pred[2] = {4, -1};
    gsq_iou_add(&m, miss_pred, miss_label, 1);
    CHECK(near(gsq_iou_class(&m, 0), 0.5), "class 0 after a miss %.17g", gsq_iou_class(&m, 0));
    CHECK(near(gsq_iou_mean(&m), 19.0 / 54), "mIoU after a miss %.17g", gsq_iou_mean(&m));
    CHECK(near(gsq_iou_pixel_accuracy(&m), 9.0 / 14), "aAcc after a miss %.17g", gsq_iou_pixel_accuracy(&m));
    gsq_iou_add(&m, miss_pred + 1, miss_label + 1, 1);
    CHECK(near(gsq_iou_class(&m, 1), 5.0 / 10), "class 1 after a miss %.17g", gsq_iou_class(&m, 1));
    gsq_iou_free(&m);
    CHECK(m.intersect == NULL && m.num_classes == 0, "free left the accumulator");
    gsq_iou_free(&m);
}

/* ---- the loss and the prediction against the reference ---- */

static const shape ref_shapes[] = {
    {2, 3, 7, 5},  /* awkward: 7/3 is no whole factor */
    {1, 5, 3, 4},  /* fewer pixels than patches (some bands empty) */
    {2, 4, 16, 3}, /* a whole factor */
    {1, 1, 4, 2},  /* one patch */
};

/* The upsampled value the loss scores at pixel (y, x), read back through it: with two classes,
 * class 1's logits 0 and that pixel alone labelled, as class 0, the loss is log(1 + e^−u) of the
 * upsampled class-0 value u. map: (grid²) class-0 logits. */
static double probe_upsampled(const float *map, int grid, int S, int y, int x)
{
    float *logits = calloc((size_t)grid * grid * 2, sizeof *logits);
    int16_t *labels = malloc((size_t)S * S * sizeof *labels);
    for (int i = 0; i < grid * grid; i++) logits[2 * i] = map[i];
    for (int i = 0; i < S * S; i++) labels[i] = GSQ_IGNORE_LABEL;
    labels[y * S + x] = 0;
    double loss = gsq_segment_loss(logits, 1, grid, 2, labels, S, 0.0f, NULL, 1.0f, NULL);
    free(logits);
    free(labels);
    return -log(expm1(loss));
}

static void test_upsampling(shape s, gsq_rng *rng)
{
    s.B = 1;
    s.K = 1;
    float *map = malloc(logits_size(s) * sizeof *map);
    double *up = malloc(label_size(s) * sizeof *up);
    fill_normal(map, logits_size(s), rng, 1.0f);
    ref_upsample(map, 1, s.grid, 1, s.S, up);
    double worst = 0;
    for (int y = 0; y < s.S; y++)
        for (int x = 0; x < s.S; x++)
            worst = fmax(worst, fabs(probe_upsampled(map, s.grid, s.S, y, x) - up[y * s.S + x]));
    CHECK(worst < 5e-6, "grid %d → %d: upsampled values off the reference by %.3g", s.grid, s.S, worst);
    free(map);
    free(up);
}

/* dlogits against central differences of `loss_of`, entry by entry; returns the largest error
 * relative to the largest gradient. */
typedef double (*loss_fn)(const float *logits, const int16_t *labels, shape s, float smoothing);

static double c_loss(const float *logits, const int16_t *labels, shape s, float smoothing)
{
    return gsq_segment_loss(logits, s.B, s.grid, s.K, labels, s.S, smoothing, NULL, 1.0f, NULL);
}

static double d_loss(const float *logits, const int16_t *labels, shape s, float smoothing)
{
    return ref_loss(logits, labels, s, smoothing, NULL);
}

static double fd_error(loss_fn f, float h, float *logits, const int16_t *labels, shape s, float smoothing,
                       const float *grad)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < logits_size(s); i++) {
        float keep = logits[i], up = keep + h, down = keep - h;
        logits[i] = up;
        double lu = f(logits, labels, s, smoothing);
        logits[i] = down;
        double ld = f(logits, labels, s, smoothing);
        logits[i] = keep;
        double fd = (lu - ld) / ((double)up - (double)down);
        num = fmax(num, fabs(fd - grad[i]));
        den = fmax(den, fabs(grad[i]));
    }
    return num / den;
}

static void test_loss(shape s, gsq_rng *rng)
{
    const float smoothing = 0.1f, scale = 2.5f;
    float *logits = malloc(logits_size(s) * sizeof *logits);
    float *dlogits = malloc(logits_size(s) * sizeof *dlogits);
    int16_t *labels = malloc(label_size(s) * sizeof *labels);
    fill_normal(logits, logits_size(s), rng, 2.0f);
    random_labels(labels, label_size(s), s.K, rng);
    for (size_t i = 0; i < logits_size(s); i++) dlogits[i] = NAN; /* overwritten */
    size_t pixels = 0, ref_pixels = 0;
    float loss = gsq_segment_loss(logits, s.B, s.grid, s.K, labels, s.S, smoothing, dlogits, scale, &pixels);
    double ref = ref_loss(logits, labels, s, smoothing, &ref_pixels);
    CHECK(pixels == ref_pixels && pixels > 0, "%zu labelled pixels, the reference %zu", pixels, ref_pixels);
    CHECK(fabs(loss - ref) <= 1e-6 * fmax(1.0, ref), "grid %d → %d: loss %.9g, reference %.9g", s.grid, s.S,
          (double)loss, ref);
    float no_grad = gsq_segment_loss(logits, s.B, s.grid, s.K, labels, s.S, smoothing, NULL, scale, NULL);
    CHECK(memcmp(&no_grad, &loss, sizeof loss) == 0, "loss without a gradient %.9g vs %.9g", (double)no_grad,
          (double)loss);
    for (size_t i = 0; i < logits_size(s); i++) dlogits[i] /= scale;
    double e = fd_error(c_loss, 1e-2f, logits, labels, s, smoothing, dlogits);
    CHECK(e < 2e-3, "grid %d → %d: gradient vs differences of the loss: %.3g", s.grid, s.S, e);
    e = fd_error(d_loss, 1e-3f, logits, labels, s, smoothing, dlogits);
    CHECK(e < 5e-6, "grid %d → %d: gradient vs differences of the reference: %.3g", s.grid, s.S, e);
    free(logits);
    free(dlogits);
    free(labels);
}

/* T²·KL(softmax(t/T) ‖ softmax(s/T)) per pixel of the reference's upsampled maps, mean over all. */
static double ref_kl(const float *student, const float *teacher, shape s, double T)
{
    size_t n = label_size(s);
    double *us = malloc(n * s.K * sizeof *us), *ut = malloc(n * s.K * sizeof *ut), total = 0;
    ref_upsample(student, s.B, s.grid, s.K, s.S, us);
    ref_upsample(teacher, s.B, s.grid, s.K, s.S, ut);
    for (size_t i = 0; i < n; i++) {
        const double *zs = us + i * s.K, *zt = ut + i * s.K;
        double ms = zs[0], mt = zt[0], ss = 0, st = 0;
        for (int k = 1; k < s.K; k++) ms = fmax(ms, zs[k]), mt = fmax(mt, zt[k]);
        for (int k = 0; k < s.K; k++) ss += exp((zs[k] - ms) / T), st += exp((zt[k] - mt) / T);
        for (int k = 0; k < s.K; k++) {
            double lpt = (zt[k] - mt) / T - log(st), lps = (zs[k] - ms) / T - log(ss);
            total += exp(lpt) * (lpt - lps);
        }
    }
    free(us);
    free(ut);
    return T * T * total / (double)n;
}

static const float *kl_teacher; /* the teacher of the differences below */
static const float kl_temperature = 2.0f;

static double c_kl(const float *logits, const int16_t *labels, shape s, float smoothing)
{
    (void)labels, (void)smoothing;
    return gsq_segment_kl(logits, kl_teacher, s.B, s.grid, s.K, s.S, kl_temperature, NULL, 1.0f);
}

static double d_kl(const float *logits, const int16_t *labels, shape s, float smoothing)
{
    (void)labels, (void)smoothing;
    return ref_kl(logits, kl_teacher, s, kl_temperature);
}

/* The distillation term: its value against the reference, its gradient against differences of
 * both, zero for a student equal to its teacher. */
static void test_kl(shape s, gsq_rng *rng)
{
    const float scale = 3.0f;
    float *student = malloc(logits_size(s) * sizeof *student), *teacher = malloc(logits_size(s) * sizeof *teacher);
    float *grad = malloc(logits_size(s) * sizeof *grad);
    fill_normal(student, logits_size(s), rng, 2.0f);
    fill_normal(teacher, logits_size(s), rng, 2.0f);
    kl_teacher = teacher;
    float kl = gsq_segment_kl(student, teacher, s.B, s.grid, s.K, s.S, kl_temperature, grad, scale);
    double ref = ref_kl(student, teacher, s, kl_temperature);
    CHECK(fabs(kl - ref) <= 1e-5 * fmax(1.0, ref), "grid %d → %d: KL %.9g, reference %.9g", s.grid, s.S, (double)kl,
          ref);
    for (size_t i = 0; i < logits_size(s); i++) grad[i] /= scale;
    double e = fd_error(c_kl, 1e-2f, student, NULL, s, 0.0f, grad);
    CHECK(e < 2e-3, "grid %d → %d: KL gradient vs differences: %.3g", s.grid, s.S, e);
    e = fd_error(d_kl, 1e-3f, student, NULL, s, 0.0f, grad);
    CHECK(e < 5e-5, "grid %d → %d: KL gradient vs differences of the reference: %.3g", s.grid, s.S, e);
    float self = gsq_segment_kl(teacher, teacher, s.B, s.grid, s.K, s.S, kl_temperature, grad, scale);
    double gmax = 0;
    for (size_t i = 0; i < logits_size(s); i++) gmax = fmax(gmax, fabs(grad[i]));
    CHECK(fabs(self) < 1e-6 && gmax < 1e-6, "a student equal to its teacher: KL %g, gradient up to %g", (double)self,
          gmax);
    free(student);
    free(teacher);
    free(grad);
}

static void test_predict(shape s, gsq_rng *rng)
{
    float *logits = malloc(logits_size(s) * sizeof *logits);
    double *up = malloc(label_size(s) * s.K * sizeof *up);
    int16_t *pred = malloc(label_size(s) * sizeof *pred);
    fill_normal(logits, logits_size(s), rng, 1.0f);
    ref_upsample(logits, s.B, s.grid, s.K, s.S, up);
    gsq_segment_predict(logits, s.B, s.grid, s.K, s.S, pred);
    size_t wrong = 0;
    for (size_t i = 0; i < label_size(s); i++) {
        int best = 0;
        for (int k = 1; k < s.K; k++)
            if (up[i * s.K + k] > up[i * s.K + best]) best = k;
        wrong += pred[i] != best;
    }
    CHECK(wrong == 0, "grid %d → %d: %zu pixels' predictions differ from the reference's argmax", s.grid, s.S, wrong);
    free(logits);
    free(up);
    free(pred);
}

/* ties go to the lowest class: all logits equal */
static void test_predict_ties(void)
{
    float logits[2 * 2 * 3];
    int16_t pred[5 * 5];
    for (int i = 0; i < 12; i++) logits[i] = 0.25f;
    gsq_segment_predict(logits, 1, 2, 3, 5, pred);
    int zeros = 0;
    for (int i = 0; i < 25; i++) zeros += pred[i] == 0;
    CHECK(zeros == 25, "%d of 25 ties went to class 0", zeros);
}

static void test_nothing_labelled(void)
{
    shape s = {2, 3, 7, 5};
    float logits[2 * 9 * 5], dlogits[2 * 9 * 5];
    int16_t labels[2 * 49];
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    fill_normal(logits, logits_size(s), &rng, 1.0f);
    for (size_t i = 0; i < label_size(s); i++) labels[i] = i % 3 ? GSQ_IGNORE_LABEL : (int16_t)(i % 2 ? 5 : -9);
    for (size_t i = 0; i < logits_size(s); i++) dlogits[i] = 1.0f;
    size_t pixels = 99;
    float loss = gsq_segment_loss(logits, s.B, s.grid, s.K, labels, s.S, 0.1f, dlogits, 1.0f, &pixels);
    int zero = 1;
    for (size_t i = 0; i < logits_size(s); i++) zero &= dlogits[i] == 0.0f;
    CHECK(loss == 0.0f && pixels == 0 && zero, "loss %g, %zu pixels, gradient zero %d", (double)loss, pixels, zero);
}

/* ---- the same bits on any number of threads ---- */

typedef struct {
    float loss;
    float *dlogits;
    int16_t *pred;
} run_result;

static run_result run_on(int threads, const float *logits, const int16_t *labels, shape s)
{
    omp_set_num_threads(threads);
    run_result r = {.dlogits = malloc(logits_size(s) * sizeof(float)), .pred = malloc(label_size(s) * sizeof(int16_t))};
    r.loss = gsq_segment_loss(logits, s.B, s.grid, s.K, labels, s.S, 0.1f, r.dlogits, 1.0f, NULL);
    gsq_segment_predict(logits, s.B, s.grid, s.K, s.S, r.pred);
    return r;
}

static void test_threads(void)
{
    shape s = {3, 8, 37, 11};
    int threads = omp_get_max_threads();
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 0);
    float *logits = malloc(logits_size(s) * sizeof *logits);
    int16_t *labels = malloc(label_size(s) * sizeof *labels);
    fill_normal(logits, logits_size(s), &rng, 2.0f);
    random_labels(labels, label_size(s), s.K, &rng);
    run_result one = run_on(1, logits, labels, s);
    for (int t = 2; t <= 3; t++) {
        run_result many = run_on(t, logits, labels, s);
        CHECK(memcmp(&one.loss, &many.loss, sizeof one.loss) == 0, "%d threads: loss %.9g vs %.9g", t,
              (double)many.loss, (double)one.loss);
        CHECK(memcmp(one.dlogits, many.dlogits, logits_size(s) * sizeof(float)) == 0, "%d threads: gradient differs",
              t);
        CHECK(memcmp(one.pred, many.pred, label_size(s) * sizeof(int16_t)) == 0, "%d threads: prediction differs", t);
        free(many.dlogits);
        free(many.pred);
    }
    omp_set_num_threads(threads);
    free(one.dlogits);
    free(one.pred);
    free(logits);
    free(labels);
}

/* ---- --write DIR: the cases scripts/miou_check.py recomputes ---- */

typedef struct {
    int K, images, side;
} metric_case;

/* Class k is never labelled when k % 4 == 3 and never predicted either when k % 8 == 7 (IoU NaN);
 * so with k % 8 == 3 it is predicted, never labelled (IoU 0). */
static const metric_case metric_cases[] = {{3, 2, 5}, {7, 4, 16}, {19, 3, 33}, {150, 2, 64}};

static int16_t random_class(gsq_rng *rng, int K, int skip_mod, int skip_rem)
{
    int k;
    do k = (int)(gsq_rng_u32(rng) % (uint32_t)K);
    while (k % skip_mod == skip_rem);
    return (int16_t)k;
}

/* About 15% ignored, 2% labels and 1% predictions outside [0, K); half the labelled pixels right. */
static void random_maps(gsq_rng *rng, int K, size_t n, int16_t *pred, int16_t *label)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t r = gsq_rng_u32(rng) % 100, q = gsq_rng_u32(rng) % 100;
        label[i] = r < 15 ? GSQ_IGNORE_LABEL : r < 17 ? (int16_t)(r == 15 ? K : -5) : random_class(rng, K, 4, 3);
        pred[i] = q < 1 ? (int16_t)(r % 2 ? K + 1 : -1)
                : q < 50 && labelled(label[i], K) ? label[i]
                                                  : random_class(rng, K, 8, 7);
    }
}

static int write_case(const char *dir, int c, const metric_case *mc)
{
    size_t n = (size_t)mc->side * mc->side, all = n * mc->images;
    int16_t *pred = malloc(all * sizeof *pred), *label = malloc(all * sizeof *label);
    gsq_iou m;
    gsq_error err;
    if (!pred || !label || gsq_iou_init(&m, mc->K, &err) != GSQ_OK) {
        free(pred);
        free(label);
        fprintf(stderr, "case %d: out of memory\n", c);
        return 1;
    }
    gsq_rng rng;
    gsq_rng_seed(&rng, 1000 + (uint64_t)c, 0);
    random_maps(&rng, mc->K, all, pred, label);
    for (int i = 0; i < mc->images; i++) gsq_iou_add(&m, pred + i * n, label + i * n, n);
    char path[4096];
    int bad = 0;
    const char *names[2] = {"pred", "label"};
    const int16_t *maps[2] = {pred, label};
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/case%d.%s.i16", dir, c, names[f]);
        FILE *fp = fopen(path, "wb");
        bad |= !fp || fwrite(maps[f], sizeof *pred, all, fp) != all;
        bad |= fp && fclose(fp) != 0;
    }
    snprintf(path, sizeof path, "%s/case%d.txt", dir, c);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fprintf(fp, "classes %d\nimages %d\nside %d\nmiou %.17g\naacc %.17g\niou", mc->K, mc->images, mc->side,
                gsq_iou_mean(&m), gsq_iou_pixel_accuracy(&m));
        for (int k = 0; k < mc->K; k++) fprintf(fp, " %.17g", gsq_iou_class(&m, k));
        fprintf(fp, "\n");
    }
    bad |= !fp || fclose(fp) != 0;
    if (bad) fprintf(stderr, "case %d: cannot write under %s\n", c, dir);
    gsq_iou_free(&m);
    free(pred);
    free(label);
    return bad;
}

static int write_cases(const char *dir)
{
    int cases = (int)(sizeof metric_cases / sizeof metric_cases[0]), bad = 0;
    for (int c = 0; c < cases; c++) bad |= write_case(dir, c, &metric_cases[c]);
    if (!bad) printf("wrote %d cases under %s\n", cases, dir);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0) return write_cases(argv[2]);
    test_task_names();
    test_iou_by_hand();
    gsq_rng rng;
    gsq_rng_seed(&rng, 42, 0);
    for (size_t i = 0; i < sizeof ref_shapes / sizeof ref_shapes[0]; i++) {
        test_upsampling(ref_shapes[i], &rng);
        test_loss(ref_shapes[i], &rng);
        test_kl(ref_shapes[i], &rng);
        test_predict(ref_shapes[i], &rng);
    }
    test_predict_ties();
    test_nothing_labelled();
    test_threads();
    return test_finish("test_segment_metric");
}
