/* COCO's box metrics (gpusq/detect.h) as pycocotools' COCOeval computes them with iouType "bbox" and
 * its default parameters. Each image is matched when it is added (evaluateImg: per class, for every
 * area range and IoU threshold, with at most 100 detections per class), and only what accumulate
 * needs of each detection is kept: its score, image, rank in its image and whether it is a true
 * positive, a false positive or ignored, as two bit masks per area range; with the count of
 * non-ignored ground truth per class and area range. summarize sorts the kept detections once per
 * class and builds the precision and recall curves from them (accumulate), then averages those
 * (summarize). IoUs are computed in double from the float boxes as maskApi.c's bbIou does, so
 * results agree with pycocotools' to rounding. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/detect.h"

#define AREAS 4       /* all, small, medium, large */
#define THRESHOLDS 10 /* IoU .50:.05:.95 */
#define RECALLS 101   /* recall 0:.01:1 */
#define MAX_DETS 100  /* the largest of maxDets: the detections per image and class kept */

/* Params.areaRng, bounds included: [0, 1e5²], [0, 32²], [32², 96²], [96², 1e5²]. */
static const double area_lo[AREAS] = {0, 0, 32 * 32, 96 * 96};
static const double area_hi[AREAS] = {1e10, 32 * 32, 96 * 96, 1e10};

/* Params.iouThrs: exactly the doubles np.linspace(.5, .95, 10) gives (its 0.9 is not 0.9). */
static const double iou_thresholds[THRESHOLDS] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95};

/* Params.recThrs, np.linspace(0, 1, 101): i · 0.01, its last point exactly 1. */
static double recall_point(int i)
{
    return i < RECALLS - 1 ? i * 0.01 : 1.0;
}

/* A detection after matching in its image: what accumulate needs of it. */
typedef struct {
    int64_t image_id;
    float score;
    int32_t category;
    int32_t rank;                  /* among its image's detections of its class, best score first */
    uint16_t tp[AREAS], fp[AREAS]; /* bit t: a true / a false positive at IoU threshold t; neither: ignored */
} scored_det;

struct gsq_coco_eval {
    int classes;
    int64_t *positives; /* (classes, AREAS): ground truth neither crowd nor outside the area range */
    scored_det *dets;
    size_t count, cap;
    int64_t *images; /* the ids added, to find one added twice */
    size_t image_count, image_cap;
};

/* Makes room for need elements of size bytes in *p (capacity *cap); 0 when out of memory. */
static int reserve(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 1;
    size_t grown = *cap < 16 ? 16 : *cap;
    while (grown < need) grown = grown > SIZE_MAX / 2 ? need : 2 * grown;
    size_t bytes;
    if (!gsq_size_mul(grown, size, &bytes)) return 0;
    void *q = realloc(*p, bytes);
    if (!q) return 0;
    *p = q;
    *cap = grown;
    return 1;
}

gsq_status gsq_coco_eval_create(gsq_coco_eval **out, int classes, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: NULL output");
    *out = NULL;
    if (classes <= 0) return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: %d classes (must be positive)", classes);
    gsq_coco_eval *e = calloc(1, sizeof *e);
    if (e) e->positives = calloc((size_t)classes * AREAS, sizeof *e->positives);
    if (!e || !e->positives) {
        free(e);
        return gsq_fail(err, GSQ_ERR_NOMEM, "COCO eval: out of memory for %d classes", classes);
    }
    e->classes = classes;
    *out = e;
    return GSQ_OK;
}

void gsq_coco_eval_free(gsq_coco_eval *e)
{
    if (!e) return;
    free(e->positives);
    free(e->dets);
    free(e->images);
    free(e);
}

/* ---- adding an image: evaluateImg for each of its classes ---- */

static int box_finite(gsq_box b)
{
    return isfinite(b.x) && isfinite(b.y) && isfinite(b.w) && isfinite(b.h);
}

static gsq_status check_image(const gsq_coco_eval *e, const gsq_objects *gt, const gsq_detection *dets, int count,
                              gsq_error *err)
{
    if (gt->count < 0 || (gt->count > 0 && !gt->objects) || count < 0 || (count > 0 && !dets))
        return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 ": %d objects, %d detections (or NULL)",
                        gt->image_id, gt->count, count);
    for (int i = 0; i < gt->count; i++) {
        const gsq_object *o = &gt->objects[i];
        if (o->category < 0 || o->category >= e->classes)
            return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 ", object %d: class %d outside [0, %d)",
                            gt->image_id, i, o->category, e->classes);
        if (!box_finite(o->box) || !isfinite(o->area))
            return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 ", object %d: box or area not finite",
                            gt->image_id, i);
    }
    for (int i = 0; i < count; i++) {
        const gsq_detection *d = &dets[i];
        if (d->category < 0 || d->category >= e->classes)
            return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 ", detection %d: class %d outside [0, %d)",
                            gt->image_id, i, d->category, e->classes);
        if (!box_finite(d->box) || !isfinite(d->score))
            return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 ", detection %d: box or score not finite",
                            gt->image_id, i);
    }
    return GSQ_OK;
}

/* An object or a detection of the image, in the order evaluateImg takes them: by class, then best
 * score first (objects all score 0), then as the caller gave them (numpy's stable sort). */
typedef struct {
    int category;
    float score;
    int index;
} order_key;

static int key_cmp(const void *pa, const void *pb)
{
    const order_key *a = pa, *b = pb;
    if (a->category != b->category) return a->category < b->category ? -1 : 1;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

/* The scratch of one add: the keys, one class's IoUs (detection-major) and its ground truth's
 * matching order and flags (crowd, ignore and taken: one allocation). */
typedef struct {
    order_key *gt_keys, *dt_keys;
    double *ious;
    int *order;
    unsigned char *crowd, *ignore, *taken;
} image_scratch;

static void scratch_free(image_scratch *s)
{
    free(s->gt_keys);
    free(s->dt_keys);
    free(s->ious);
    free(s->order);
    free(s->crowd);
    memset(s, 0, sizeof *s);
}

/* Room for an image of objects and dets (each count + 1, so that no size is 0). */
static int scratch_alloc(image_scratch *s, int objects, int dets)
{
    size_t g = (size_t)objects + 1, d = (size_t)dets + 1, kept = (size_t)(dets < MAX_DETS ? dets : MAX_DETS) + 1;
    memset(s, 0, sizeof *s);
    s->gt_keys = malloc(g * sizeof *s->gt_keys);
    s->dt_keys = malloc(d * sizeof *s->dt_keys);
    s->ious = malloc(kept * g * sizeof *s->ious);
    s->order = malloc(g * sizeof *s->order);
    s->crowd = malloc(3 * g);
    if (!s->gt_keys || !s->dt_keys || !s->ious || !s->order || !s->crowd) {
        scratch_free(s);
        return 0;
    }
    s->ignore = s->crowd + g;
    s->taken = s->ignore + g;
    return 1;
}

/* One class in one image: its objects (keys gt, ngt of them) and detections (keys dt, best first,
 * at most MAX_DETS). */
typedef struct {
    const gsq_object *objects;
    const order_key *gt;
    int ngt;
    const gsq_detection *dets;
    const order_key *dt;
    int ndt;
} class_group;

/* maskApi.c's bbIou: intersection over union, over the detection's own area for a crowd region. */
static double box_iou(gsq_box d, gsq_box g, int crowd)
{
    double dx = d.x, dy = d.y, dw = d.w, dh = d.h, gx = g.x, gy = g.y, gw = g.w, gh = g.h;
    double garea = gw * gh, darea = dw * dh;
    double w = fmin(dw + dx, gw + gx) - fmax(dx, gx);
    if (w <= 0) return 0;
    double h = fmin(dh + dy, gh + gy) - fmax(dy, gy);
    if (h <= 0) return 0;
    double inter = w * h;
    double uni = crowd ? darea : darea + garea - inter;
    return inter / uni;
}

static int outside(double area, int a)
{
    return area < area_lo[a] || area > area_hi[a];
}

/* The object evaluateImg matches detection row (IoUs with the objects) to at threshold thr, -1
 * for none: objects taken in s->order (area range's ignored last), a taken one skipped unless a
 * crowd, the search ended at the first ignored one once a counted one matched, the best IoU ≥ thr
 * kept (a later equal one replaces it). */
static int best_match(const double *row, int ngt, const image_scratch *s, double thr)
{
    double best = fmin(thr, 1 - 1e-10);
    int m = -1;
    for (int j = 0; j < ngt; j++) {
        int g = s->order[j];
        if (s->taken[g] && !s->crowd[g]) continue;
        if (m > -1 && !s->ignore[m] && s->ignore[g]) break;
        if (row[g] < best) continue;
        best = row[g];
        m = g;
    }
    return m;
}

/* evaluateImg for area range a: sets bit t of out[d].tp[a] or out[d].fp[a] for each detection that
 * is a true or false positive at IoU threshold t. A detection matched to an ignored object, or
 * unmatched with its area outside the range, is neither. */
static void match_area(const class_group *c, image_scratch *s, int a, scored_det *out)
{
    int n = 0;
    for (int g = 0; g < c->ngt; g++) s->ignore[g] = s->crowd[g] || outside(c->objects[c->gt[g].index].area, a);
    for (int pass = 0; pass < 2; pass++)
        for (int g = 0; g < c->ngt; g++)
            if (s->ignore[g] == pass) s->order[n++] = g;
    for (int t = 0; t < THRESHOLDS; t++) {
        memset(s->taken, 0, (size_t)c->ngt);
        for (int d = 0; d < c->ndt; d++) {
            int m = best_match(s->ious + (size_t)d * c->ngt, c->ngt, s, iou_thresholds[t]);
            gsq_box b = c->dets[c->dt[d].index].box;
            int ignored = m > -1 ? s->ignore[m] : outside((double)b.w * b.h, a);
            if (m > -1) s->taken[m] = 1;
            if (ignored) continue;
            uint16_t *mask = m > -1 ? &out[d].tp[a] : &out[d].fp[a];
            *mask |= (uint16_t)(1u << t);
        }
    }
}

/* Evaluates one class of an image into out (c->ndt records). */
static void evaluate_class(const class_group *c, int64_t image_id, image_scratch *s, scored_det *out)
{
    for (int g = 0; g < c->ngt; g++) s->crowd[g] = c->objects[c->gt[g].index].iscrowd != 0;
    for (int d = 0; d < c->ndt; d++) {
        gsq_box b = c->dets[c->dt[d].index].box;
        for (int g = 0; g < c->ngt; g++)
            s->ious[(size_t)d * c->ngt + g] = box_iou(b, c->objects[c->gt[g].index].box, s->crowd[g]);
        out[d] = (scored_det){.image_id = image_id, .score = c->dt[d].score, .category = c->dt[d].category, .rank = d};
    }
    for (int a = 0; a < AREAS; a++) match_area(c, s, a, out);
}

/* The length of the run of keys[from..n) of keys[from]'s class, or 0 when it is not class k. */
static int class_run(const order_key *keys, int from, int n, int k)
{
    int to = from;
    while (to < n && keys[to].category == k) to++;
    return to - from;
}

/* Evaluates every class of the image into out; returns the records written. */
static size_t evaluate_image(const gsq_objects *gt, const gsq_detection *dets, int count, image_scratch *s,
                             scored_det *out)
{
    for (int i = 0; i < gt->count; i++) s->gt_keys[i] = (order_key){gt->objects[i].category, 0.0f, i};
    for (int i = 0; i < count; i++) s->dt_keys[i] = (order_key){dets[i].category, dets[i].score, i};
    qsort(s->gt_keys, (size_t)gt->count, sizeof *s->gt_keys, key_cmp);
    qsort(s->dt_keys, (size_t)count, sizeof *s->dt_keys, key_cmp);
    size_t written = 0;
    int gi = 0, di = 0;
    while (gi < gt->count || di < count) {
        int gt_first = di == count || (gi < gt->count && s->gt_keys[gi].category < s->dt_keys[di].category);
        int k = gt_first ? s->gt_keys[gi].category : s->dt_keys[di].category;
        class_group c = {gt->objects, s->gt_keys + gi, class_run(s->gt_keys, gi, gt->count, k),
                         dets,        s->dt_keys + di, class_run(s->dt_keys, di, count, k)};
        gi += c.ngt;
        di += c.ndt;
        if (c.ndt > MAX_DETS) c.ndt = MAX_DETS;
        evaluate_class(&c, gt->image_id, s, out + written);
        written += (size_t)c.ndt;
    }
    return written;
}

/* Counts the image's objects that are neither crowd nor outside each area range. */
static void count_positives(gsq_coco_eval *e, const gsq_objects *gt)
{
    for (int i = 0; i < gt->count; i++) {
        const gsq_object *o = &gt->objects[i];
        if (o->iscrowd) continue;
        for (int a = 0; a < AREAS; a++) e->positives[(size_t)o->category * AREAS + a] += !outside(o->area, a);
    }
}

gsq_status gsq_coco_eval_add(gsq_coco_eval *e, const gsq_objects *gt, const gsq_detection *dets, int count,
                             gsq_error *err)
{
    if (!e || !gt) return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: NULL evaluator or image");
    gsq_status st = check_image(e, gt, dets, count, err);
    if (st != GSQ_OK) return st;
    image_scratch s;
    if (!scratch_alloc(&s, gt->count, count) ||
        !reserve((void **)&e->dets, &e->cap, e->count + (size_t)count, sizeof *e->dets) ||
        !reserve((void **)&e->images, &e->image_cap, e->image_count + 1, sizeof *e->images)) {
        scratch_free(&s);
        return gsq_fail(err, GSQ_ERR_NOMEM, "COCO eval: out of memory for image %" PRId64 " (%d detections)",
                        gt->image_id, count);
    }
    e->count += evaluate_image(gt, dets, count, &s, e->dets + e->count);
    e->images[e->image_count++] = gt->image_id;
    count_positives(e, gt);
    scratch_free(&s);
    return GSQ_OK;
}

/* ---- summarize: accumulate's curves, then their means ---- */

/* The (area range, maxDets) pairs summarize reads. */
typedef struct {
    int area, max_dets;
} curve_kind;
enum { ALL100, SMALL100, MEDIUM100, LARGE100, ALL1, ALL10, CURVES };
static const curve_kind curve_kinds[CURVES] = {{0, 100}, {1, 100}, {2, 100}, {3, 100}, {0, 1}, {0, 10}};

/* For each curve kind, over the classes with ground truth in its area range (classes of them):
 * the sums of the 101 interpolated precisions and of the final recalls, per IoU threshold. */
typedef struct {
    double precision[THRESHOLDS], recall[THRESHOLDS];
    int classes;
} curve_sums;

/* The twelve numbers: each a mean over IoU thresholds [t0, t1) of a curve kind's precision (ap)
 * or recall, in gsq_coco_stats's order. */
static const struct {
    const char *name;
    size_t offset;
    int ap, curve, t0, t1;
} stat_specs[GSQ_COCO_STATS] = {
    {"AP", offsetof(gsq_coco_stats, ap), 1, ALL100, 0, THRESHOLDS},
    {"AP50", offsetof(gsq_coco_stats, ap50), 1, ALL100, 0, 1},
    {"AP75", offsetof(gsq_coco_stats, ap75), 1, ALL100, 5, 6},
    {"AP_small", offsetof(gsq_coco_stats, ap_small), 1, SMALL100, 0, THRESHOLDS},
    {"AP_medium", offsetof(gsq_coco_stats, ap_medium), 1, MEDIUM100, 0, THRESHOLDS},
    {"AP_large", offsetof(gsq_coco_stats, ap_large), 1, LARGE100, 0, THRESHOLDS},
    {"AR1", offsetof(gsq_coco_stats, ar1), 0, ALL1, 0, THRESHOLDS},
    {"AR10", offsetof(gsq_coco_stats, ar10), 0, ALL10, 0, THRESHOLDS},
    {"AR100", offsetof(gsq_coco_stats, ar100), 0, ALL100, 0, THRESHOLDS},
    {"AR_small", offsetof(gsq_coco_stats, ar_small), 0, SMALL100, 0, THRESHOLDS},
    {"AR_medium", offsetof(gsq_coco_stats, ar_medium), 0, MEDIUM100, 0, THRESHOLDS},
    {"AR_large", offsetof(gsq_coco_stats, ar_large), 0, LARGE100, 0, THRESHOLDS},
};

const char *gsq_coco_stat_name(int i)
{
    return i >= 0 && i < GSQ_COCO_STATS ? stat_specs[i].name : "?";
}

double gsq_coco_stat(const gsq_coco_stats *s, int i)
{
    if (!s || i < 0 || i >= GSQ_COCO_STATS) return NAN;
    return *(const double *)((const char *)s + stat_specs[i].offset);
}

/* accumulate's order: by class, best score first, then by image id (the images in
 * np.unique(imgIds)'s order), then by rank in the image (numpy's stable sort of the concatenation). */
static int det_cmp(const void *pa, const void *pb)
{
    const scored_det *a = pa, *b = pb;
    if (a->category != b->category) return a->category < b->category ? -1 : 1;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->image_id != b->image_id) return a->image_id < b->image_id ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

static int id_cmp(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return (a > b) - (a < b);
}

/* accumulate for one class's detections d (n, in det_cmp's order), one curve kind and IoU
 * threshold t, with positives counted ground truth: the precision at each detection made
 * monotone from the right, read at the 101 recall points (np.searchsorted, side left; 0 past the
 * last detection's recall). Returns the sum of the 101 precisions; *recall gets the final recall.
 * rc and pr: room for n each. */
static double class_curve(const scored_det *d, size_t n, curve_kind kind, int t, int64_t positives, double *rc,
                          double *pr, double *recall)
{
    double tp = 0, fp = 0;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i].rank >= kind.max_dets) continue;
        tp += (d[i].tp[kind.area] >> t) & 1;
        fp += (d[i].fp[kind.area] >> t) & 1;
        rc[nd] = tp / (double)positives;
        pr[nd] = tp / (fp + tp + DBL_EPSILON);
        nd++;
    }
    *recall = nd ? rc[nd - 1] : 0;
    for (size_t i = nd; i-- > 1;)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
    double sum = 0;
    size_t at = 0;
    for (int r = 0; r < RECALLS; r++) {
        while (at < nd && rc[at] < recall_point(r)) at++;
        if (at == nd) break;
        sum += pr[at];
    }
    return sum;
}

/* Adds one class's curves (its detections d, n of them) to sums. */
static void add_class(const gsq_coco_eval *e, int k, const scored_det *d, size_t n, double *rc, double *pr,
                      curve_sums *sums)
{
    for (int c = 0; c < CURVES; c++) {
        int64_t positives = e->positives[(size_t)k * AREAS + curve_kinds[c].area];
        if (positives == 0) continue;
        sums[c].classes++;
        for (int t = 0; t < THRESHOLDS; t++) {
            double recall;
            sums[c].precision[t] += class_curve(d, n, curve_kinds[c], t, positives, rc, pr, &recall);
            sums[c].recall[t] += recall;
        }
    }
}

/* The curves of every class: dets sorted by det_cmp (count of them). */
static void accumulate(const gsq_coco_eval *e, const scored_det *dets, size_t count, double *rc, double *pr,
                       curve_sums *sums)
{
    size_t from = 0;
    for (int k = 0; k < e->classes; k++) {
        size_t to = from;
        while (to < count && dets[to].category == k) to++;
        add_class(e, k, dets + from, to - from, rc, pr, sums);
        from = to;
    }
}

/* summarize's means: over IoU thresholds, recall points (precision) and classes with ground truth;
 * -1 when no class has any. */
static void summarize(const curve_sums *sums, gsq_coco_stats *out)
{
    for (int i = 0; i < GSQ_COCO_STATS; i++) {
        const curve_sums *s = &sums[stat_specs[i].curve];
        int ap = stat_specs[i].ap, t0 = stat_specs[i].t0, t1 = stat_specs[i].t1;
        double sum = 0;
        for (int t = t0; t < t1; t++) sum += ap ? s->precision[t] : s->recall[t];
        double entries = (double)s->classes * (t1 - t0) * (ap ? RECALLS : 1);
        *(double *)((char *)out + stat_specs[i].offset) = s->classes ? sum / entries : -1;
    }
}

/* GSQ_ERR_ARG naming an image id added twice (pycocotools would merge the two). ids: a copy of
 * the ids, sorted here. */
static gsq_status check_ids(int64_t *ids, size_t n, gsq_error *err)
{
    qsort(ids, n, sizeof *ids, id_cmp);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1])
            return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: image %" PRId64 " added more than once", ids[i]);
    return GSQ_OK;
}

gsq_status gsq_coco_eval_summarize(const gsq_coco_eval *e, gsq_coco_stats *out, gsq_error *err)
{
    if (!e || !out) return gsq_fail(err, GSQ_ERR_ARG, "COCO eval: NULL evaluator or output");
    size_t n = e->count + 1;
    scored_det *dets = malloc(n * sizeof *dets);
    int64_t *ids = malloc((e->image_count + 1) * sizeof *ids);
    double *curve = malloc(2 * n * sizeof *curve);
    if (!dets || !ids || !curve) {
        free(dets);
        free(ids);
        free(curve);
        return gsq_fail(err, GSQ_ERR_NOMEM, "COCO eval: out of memory summarizing %zu detections", e->count);
    }
    if (e->image_count) memcpy(ids, e->images, e->image_count * sizeof *ids);
    gsq_status st = check_ids(ids, e->image_count, err);
    if (st == GSQ_OK) {
        if (e->count) memcpy(dets, e->dets, e->count * sizeof *dets);
        qsort(dets, e->count, sizeof *dets, det_cmp);
        curve_sums sums[CURVES] = {0};
        accumulate(e, dets, e->count, curve, curve + n, sums);
        summarize(sums, out);
    }
    free(dets);
    free(ids);
    free(curve);
    return st;
}
