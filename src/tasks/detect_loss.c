/* DETR's set loss for a detector's output (gpusq/detect.h): per decoder layer and image, the
 * Hungarian matching of queries to targets by class, L1 and GIoU costs, then the weighted class
 * cross-entropy over every query and the L1 and GIoU losses of the matched boxes, with their
 * gradients through the softmax and the boxes' sigmoid; the matching alone and the distillation
 * terms on matched queries; and the decoding of the last layer into detections. Boxes are computed in double from the float logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/detect.h"

void gsq_detect_weights_defaults(gsq_detect_weights *w)
{
    *w = (gsq_detect_weights){.class_cost = 1.0f, .l1 = 5.0f, .giou = 2.0f, .no_object = 0.1f};
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* A box as corners, x0 y0 x1 y1, from centre and size. */
static void corners(const double *cxcywh, double *c)
{
    c[0] = cxcywh[0] - 0.5 * cxcywh[2], c[1] = cxcywh[1] - 0.5 * cxcywh[3];
    c[2] = cxcywh[0] + 0.5 * cxcywh[2], c[3] = cxcywh[1] + 0.5 * cxcywh[3];
}

/* GIoU of boxes a and b (corners, positive areas); when da is not NULL, its gradient with respect to
 * a's corners (a tie of the two boxes' edges counts as a's edge inside). */
static double giou(const double *a, const double *b, double *da)
{
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    int overlap = iw > 0 && ih > 0;
    double I = overlap ? iw * ih : 0.0;
    double Aa = (a[2] - a[0]) * (a[3] - a[1]), Ab = (b[2] - b[0]) * (b[3] - b[1]), U = Aa + Ab - I;
    double cw = fmax(a[2], b[2]) - fmin(a[0], b[0]), ch = fmax(a[3], b[3]) - fmin(a[1], b[1]), C = cw * ch;
    double value = I / U - (C - U) / C;
    if (!da) return value;
    /* giou = I/U − 1 + U/C with U = Aa + Ab − I */
    double gI = 1.0 / U + I / (U * U) - 1.0 / C, gA = -I / (U * U) + 1.0 / C, gC = -U / (C * C);
    double dI[4] = {0}, dA[4] = {-(a[3] - a[1]), -(a[2] - a[0]), a[3] - a[1], a[2] - a[0]}, dC[4];
    if (overlap) {
        dI[0] = a[0] >= b[0] ? -ih : 0.0, dI[2] = a[2] <= b[2] ? ih : 0.0;
        dI[1] = a[1] >= b[1] ? -iw : 0.0, dI[3] = a[3] <= b[3] ? iw : 0.0;
    }
    dC[0] = a[0] <= b[0] ? -ch : 0.0, dC[2] = a[2] >= b[2] ? ch : 0.0;
    dC[1] = a[1] <= b[1] ? -cw : 0.0, dC[3] = a[3] >= b[3] ? cw : 0.0;
    for (int k = 0; k < 4; k++) da[k] = gI * dI[k] + gA * dA[k] + gC * dC[k];
    return value;
}

/* One query's predicted box (cx, cy, w, h) from its 4 logits. */
static void predicted_box(const float *logits, double *box)
{
    for (int k = 0; k < 4; k++) box[k] = sigmoid(logits[k]);
}

static gsq_status check_targets(const gsq_targets *t, int B, int K, gsq_error *err)
{
    for (int b = 0; b < B; b++) {
        if (t[b].count < 0 || t[b].count > GSQ_DETECT_MAX_TARGETS)
            return gsq_fail(err, GSQ_ERR_ARG, "detection loss: image %d has %d targets", b, t[b].count);
        for (int i = 0; i < t[b].count; i++) {
            const gsq_nbox *x = &t[b].boxes[i];
            if (t[b].classes[i] < 0 || t[b].classes[i] >= K)
                return gsq_fail(err, GSQ_ERR_ARG, "detection loss: target %d of image %d has class %d, outside [0, %d)",
                                i, b, t[b].classes[i], K);
            if (!(isfinite(x->cx) && isfinite(x->cy) && x->w > 0 && x->h > 0 && isfinite(x->w) && isfinite(x->h)))
                return gsq_fail(err, GSQ_ERR_ARG, "detection loss: target %d of image %d has box (%g, %g, %g, %g)", i, b,
                                (double)x->cx, (double)x->cy, (double)x->w, (double)x->h);
        }
    }
    return GSQ_OK;
}

typedef struct {
    const gsq_output_shape *shape;
    const gsq_detect_weights *w;
    int C;             /* columns of a row: classes + 5 */
    double *probs;     /* (queries, classes + 1) of one image and layer */
    double *boxes;     /* (queries, 4) cx, cy, w, h */
    float *cost;       /* (queries, targets) */
    int *match;        /* (queries) the target of each query, -1 */
} scratch;

/* Softmax and boxes of one image and layer's queries (rows of out). */
static void predictions(scratch *s, const float *rows)
{
    int K1 = s->shape->classes + 1;
    for (int q = 0; q < s->shape->queries; q++) {
        const float *r = rows + (size_t)q * s->C;
        double *p = s->probs + (size_t)q * K1, top = r[0], sum = 0.0;
        for (int k = 1; k < K1; k++) top = fmax(top, r[k]);
        for (int k = 0; k < K1; k++) sum += p[k] = exp(r[k] - top);
        for (int k = 0; k < K1; k++) p[k] /= sum;
        predicted_box(r + K1, s->boxes + 4 * (size_t)q);
    }
}

/* The matching of one image and layer's queries to its targets t into s->match. */
static gsq_status match(scratch *s, const gsq_targets *t, gsq_error *err)
{
    int Q = s->shape->queries, n = t->count, K1 = s->shape->classes + 1;
    for (int q = 0; q < Q; q++) {
        double pc[4], *box = s->boxes + 4 * (size_t)q;
        corners(box, pc);
        for (int i = 0; i < n; i++) {
            const gsq_nbox *x = &t->boxes[i];
            double tb[4] = {x->cx, x->cy, x->w, x->h}, tc[4], l1 = 0.0;
            corners(tb, tc);
            for (int k = 0; k < 4; k++) l1 += fabs(box[k] - tb[k]);
            s->cost[(size_t)q * n + i] = (float)(-s->w->class_cost * s->probs[(size_t)q * K1 + t->classes[i]] +
                                                 s->w->l1 * l1 - s->w->giou * giou(pc, tc, NULL));
        }
    }
    return gsq_assign(s->cost, Q, n, s->match, err);
}

/* One image and layer's loss terms, added to terms; gradients into rows' gradient drows (when not
 * NULL). ce_norm: the summed class weights of the layer; boxes_norm: the batch's targets. */
static void image_loss(scratch *s, const gsq_targets *t, const float *rows, float *drows, double ce_norm,
                       double boxes_norm, float scale, gsq_detect_terms *terms)
{
    int Q = s->shape->queries, K = s->shape->classes, K1 = K + 1;
    const gsq_detect_weights *w = s->w;
    for (int q = 0; q < Q; q++) {
        int i = s->match[q], target = i >= 0 ? t->classes[i] : K;
        double weight = i >= 0 ? 1.0 : w->no_object, *p = s->probs + (size_t)q * K1;
        terms->ce += -weight * log(fmax(p[target], 1e-300)) / ce_norm;
        if (drows)
            for (int k = 0; k < K1; k++)
                drows[(size_t)q * s->C + k] = (float)(scale * weight * (p[k] - (k == target)) / ce_norm);
        if (drows) memset(drows + (size_t)q * s->C + K1, 0, 4 * sizeof(float));
        if (i < 0) continue;
        terms->matched++;
        const gsq_nbox *x = &t->boxes[i];
        double *box = s->boxes + 4 * (size_t)q, tb[4] = {x->cx, x->cy, x->w, x->h}, pc[4], tc[4], dc[4];
        corners(box, pc);
        corners(tb, tc);
        double g = giou(pc, tc, dc), l1 = 0.0;
        for (int k = 0; k < 4; k++) l1 += fabs(box[k] - tb[k]);
        terms->l1 += l1 / boxes_norm;
        terms->giou += (1.0 - g) / boxes_norm;
        if (!drows) continue;
        /* d(−giou) through the corners to cx, cy, w, h */
        double dbox[4] = {-(dc[0] + dc[2]), -(dc[1] + dc[3]), -0.5 * (dc[2] - dc[0]), -0.5 * (dc[3] - dc[1])};
        for (int k = 0; k < 4; k++) {
            double d = w->giou * dbox[k] + w->l1 * (box[k] > tb[k] ? 1.0 : box[k] < tb[k] ? -1.0 : 0.0);
            drows[(size_t)q * s->C + K1 + k] = (float)(scale * d / boxes_norm * box[k] * (1.0 - box[k]));
        }
    }
}

static void scratch_free(scratch *s)
{
    free(s->probs);
    free(s->boxes);
    free(s->cost);
    free(s->match);
    s->probs = s->boxes = NULL, s->cost = NULL, s->match = NULL;
}

static gsq_status scratch_alloc(scratch *s, const gsq_output_shape *shape, const gsq_detect_weights *w, int B,
                                const gsq_targets *targets, gsq_error *err)
{
    int Q = shape->queries, L = shape->layers, K = shape->classes;
    *s = (scratch){.shape = shape, .w = w, .C = K + 5};
    if (shape->task != GSQ_TASK_DETECT || Q < 1 || L < 1 || K < 1 || B < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "detection loss: not a detector's output (%d queries, %d layers)", Q, L);
    gsq_status st = check_targets(targets, B, K, err);
    if (st != GSQ_OK) return st;
    s->probs = malloc((size_t)Q * (K + 1) * sizeof *s->probs);
    s->boxes = malloc((size_t)Q * 4 * sizeof *s->boxes);
    s->cost = malloc(((size_t)Q * GSQ_DETECT_MAX_TARGETS + 1) * sizeof *s->cost);
    s->match = malloc((size_t)Q * sizeof *s->match);
    if (s->probs && s->boxes && s->cost && s->match) return GSQ_OK;
    scratch_free(s);
    return gsq_fail(err, GSQ_ERR_NOMEM, "detection loss: out of memory");
}

gsq_status gsq_detect_loss(const float *out, const gsq_output_shape *shape, int B, const gsq_targets *targets,
                           const gsq_detect_weights *w, float *dout, float scale, float *loss, gsq_detect_terms *terms,
                           gsq_error *err)
{
    scratch s;
    gsq_status st = scratch_alloc(&s, shape, w, B, targets, err);
    if (st != GSQ_OK) return st;
    int Q = shape->queries, L = shape->layers;
    /* the class weights of a layer sum to no_object for every query plus (1 − no_object) per matched one, and
     * every layer matches min(Q, targets) queries of an image */
    double matched = 0.0, boxes_norm = 0.0;
    for (int b = 0; b < B; b++) {
        matched += targets[b].count < Q ? targets[b].count : Q;
        boxes_norm += targets[b].count;
    }
    double ce_norm = w->no_object * (double)B * Q + (1.0 - w->no_object) * matched;
    boxes_norm = fmax(boxes_norm, 1.0);
    gsq_detect_terms sum = {0};
    for (int b = 0; st == GSQ_OK && b < B; b++)
        for (int l = 0; st == GSQ_OK && l < L; l++) {
            size_t at = ((size_t)b * L + l) * Q * s.C;
            predictions(&s, out + at);
            st = match(&s, &targets[b], err);
            if (st == GSQ_OK) image_loss(&s, &targets[b], out + at, dout ? dout + at : NULL, ce_norm, boxes_norm, scale, &sum);
        }
    scratch_free(&s);
    if (st != GSQ_OK) return st;
    if (loss) *loss = (float)(sum.ce + w->l1 * sum.l1 + w->giou * sum.giou);
    if (terms) *terms = sum;
    return GSQ_OK;
}

gsq_status gsq_detect_match(const float *out, const gsq_output_shape *shape, int B, const gsq_targets *targets,
                            const gsq_detect_weights *w, int *matches, gsq_error *err)
{
    scratch s;
    gsq_status st = scratch_alloc(&s, shape, w, B, targets, err);
    int Q = shape->queries, L = shape->layers;
    for (int b = 0; st == GSQ_OK && b < B; b++)
        for (int l = 0; st == GSQ_OK && l < L; l++) {
            size_t row = ((size_t)b * L + l) * Q;
            predictions(&s, out + row * s.C);
            st = match(&s, &targets[b], err);
            if (st == GSQ_OK) memcpy(matches + row, s.match, (size_t)Q * sizeof *matches);
        }
    scratch_free(&s);
    return st;
}

/* log-softmax of n logits over T into lp. */
static void log_softmax(const float *z, int n, double T, double *lp)
{
    double top = z[0], sum = 0.0;
    for (int k = 1; k < n; k++) top = fmax(top, z[k]);
    for (int k = 0; k < n; k++) sum += exp((z[k] - top) / T);
    for (int k = 0; k < n; k++) lp[k] = (z[k] - top) / T - log(sum);
}

gsq_status gsq_detect_distill(const float *student, const float *teacher, const gsq_output_shape *shape, int B,
                              const int *matches, float T, float box_weight, float *dstudent, float scale,
                              double *value, gsq_error *err)
{
    int K1 = shape->classes + 1, C = shape->classes + 5;
    size_t rows = (size_t)B * shape->layers * shape->queries, n = 0;
    for (size_t r = 0; r < rows; r++) n += matches[r] >= 0;
    double *ls = malloc((size_t)K1 * sizeof *ls), *lt = malloc((size_t)K1 * sizeof *lt), sum = 0.0;
    if (!ls || !lt) {
        free(ls);
        free(lt);
        return gsq_fail(err, GSQ_ERR_NOMEM, "detection distillation: out of memory");
    }
    for (size_t r = 0; r < rows; r++) {
        const float *zs = student + r * C, *zt = teacher + r * C;
        float *g = dstudent ? dstudent + r * C : NULL;
        if (matches[r] < 0) {
            if (g) memset(g, 0, (size_t)C * sizeof *g);
            continue;
        }
        log_softmax(zs, K1, T, ls);
        log_softmax(zt, K1, T, lt);
        for (int k = 0; k < K1; k++) {
            sum += (double)T * T * exp(lt[k]) * (lt[k] - ls[k]) / (double)n;
            if (g) g[k] = (float)(scale * T * (exp(ls[k]) - exp(lt[k])) / (double)n); /* ∂(T²·KL)/∂z_s */
        }
        for (int k = 0; k < 4; k++) {
            double bs = sigmoid(zs[K1 + k]), bt = sigmoid(zt[K1 + k]), sign = bs > bt ? 1.0 : bs < bt ? -1.0 : 0.0;
            sum += box_weight * fabs(bs - bt) / (double)n;
            if (g) g[K1 + k] = (float)(scale * box_weight * sign * bs * (1.0 - bs) / (double)n);
        }
    }
    free(ls);
    free(lt);
    *value = sum;
    return GSQ_OK;
}

void gsq_detect_decode(const float *out, const gsq_output_shape *shape, int b, int64_t image_id, int width,
                       int height, gsq_detection *dets)
{
    int Q = shape->queries, K = shape->classes, C = K + 5;
    const float *rows = out + (((size_t)b * shape->layers + shape->layers - 1) * Q) * C;
    for (int q = 0; q < Q; q++) {
        const float *r = rows + (size_t)q * C;
        double top = r[0], sum = 0.0, box[4];
        for (int k = 1; k <= K; k++) top = fmax(top, r[k]);
        for (int k = 0; k <= K; k++) sum += exp(r[k] - top);
        int best = 0;
        for (int k = 1; k < K; k++) best = r[k] > r[best] ? k : best;
        predicted_box(r + K + 1, box);
        dets[q] = (gsq_detection){.image_id = image_id, .category = best, .score = (float)(exp(r[best] - top) / sum),
                                  .box = {(float)((box[0] - 0.5 * box[2]) * width), (float)((box[1] - 0.5 * box[3]) * height),
                                          (float)(box[2] * width), (float)(box[3] * height)}};
    }
}
