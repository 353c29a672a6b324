/* COCO box metrics (src/tasks/coco_eval.c) on cases worked out by hand from pycocotools' COCOeval:
 * perfect detections, a false positive above a true one, crowd regions, area ranges (decided by the
 * annotation's area, bounds included), an IoU equal to the threshold, equal IoUs, maxDets 1 / 10 /
 * 100 and the cut at 100 detections, tied scores (broken by image id, then by the order given),
 * classes without ground truth left out, no detections; the argument errors; and the results writer
 * (src/tasks/coco_results.c): its JSON read back with cJSON, class indices mapped to COCO's ids, its
 * failures leaving no file behind. With `--write DIR` it runs no test and writes instead, for
 * scripts/coco_check.py, random ground truth and detections as COCO JSON files and the twelve numbers
 * this library computes from them (always the same). */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gpusq/detect.h"
#include "test_util.h"

#define NA -1.0 /* pycocotools' -1: no ground truth in that range */

/* One image of a case: its id, objects and detections. */
typedef struct {
    int64_t id;
    int nobj;
    gsq_object *objects;
    int ndet;
    gsq_detection *dets;
} image;

static gsq_object obj(int category, float x, float y, float w, float h)
{
    return (gsq_object){.box = {x, y, w, h}, .category = category, .area = w * h};
}

static gsq_object crowd(int category, float x, float y, float w, float h)
{
    gsq_object o = obj(category, x, y, w, h);
    o.iscrowd = 1;
    return o;
}

static gsq_detection det(int category, float score, float x, float y, float w, float h)
{
    return (gsq_detection){.category = category, .score = score, .box = {x, y, w, h}};
}

/* A detection exactly on object o. */
static gsq_detection hit(gsq_object o, float score)
{
    return det(o.category, score, o.box.x, o.box.y, o.box.w, o.box.h);
}

static gsq_status add_image(gsq_coco_eval *e, const image *im, gsq_error *err)
{
    gsq_objects gt = {.image_id = im->id, .width = 640, .height = 480, .count = im->nobj, .objects = im->objects};
    return gsq_coco_eval_add(e, &gt, im->dets, im->ndet, err);
}

/* The twelve numbers over the images (n), added in order; NaN where something failed. */
static gsq_coco_stats evaluate(int classes, const image *images, int n)
{
    gsq_coco_stats s;
    memset(&s, 0xff, sizeof s); /* NaN */
    gsq_coco_eval *e = NULL;
    gsq_error err = {0};
    gsq_status st = gsq_coco_eval_create(&e, classes, &err);
    for (int i = 0; st == GSQ_OK && i < n; i++) st = add_image(e, &images[i], &err);
    if (st == GSQ_OK) st = gsq_coco_eval_summarize(e, &s, &err);
    CHECK(st == GSQ_OK, "%s", err.msg);
    gsq_coco_eval_free(e);
    return s;
}

static void check_stats(const gsq_coco_stats *s, const double want[GSQ_COCO_STATS], const char *what)
{
    for (int i = 0; i < GSQ_COCO_STATS; i++) {
        double got = gsq_coco_stat(s, i);
        CHECK(want[i] == NA ? got == NA : fabs(got - want[i]) <= 1e-12, "%s: %s %.17g, want %.17g", what,
              gsq_coco_stat_name(i), got, want[i]);
    }
}

/* An image of the arrays objects_ and dets_, all of each. */
#define IMAGE(id_, objects_, dets_)                                                      \
    ((image){(id_), (int)(sizeof(objects_) / sizeof *(objects_)), (objects_),            \
             (int)(sizeof(dets_) / sizeof *(dets_)), (dets_)})

/* ---- by hand ---- */

/* Every object found exactly: a small and a medium one in image 7, a large one in image 3; an
 * image with nothing in it changes nothing. Order of the numbers: AP AP50 AP75 APs APm APl,
 * AR1 AR10 AR100 ARs ARm ARl. */
static void test_perfect(void)
{
    gsq_object a[] = {obj(0, 10, 10, 10, 10), obj(1, 50, 50, 50, 50)}, b[] = {obj(0, 0, 0, 100, 100)};
    gsq_detection da[] = {hit(a[0], 0.9f), hit(a[1], 0.8f)}, db[] = {hit(b[0], 0.7f)};
    image images[] = {IMAGE(7, a, da), IMAGE(3, b, db), {.id = 11}};
    static const double ones[GSQ_COCO_STATS] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    gsq_coco_stats s = evaluate(2, images, 3);
    check_stats(&s, ones, "perfect");
    CHECK(s.ap == gsq_coco_stat(&s, 0) && s.ar_large == gsq_coco_stat(&s, 11), "stat by index");
}

/* One object (20×20, small) and two detections: a false positive at .9 above the hit at .8.
 * Precision is 0 then 1/2, made 1/2 throughout: AP .5 at every threshold; the best detection
 * alone finds nothing (AR1 0). A large false positive is outside the small range, unmatched: it
 * is ignored there (APs 1) though it counts over all areas. */
static void test_false_positive_first(void)
{
    gsq_object g[] = {obj(0, 0, 0, 20, 20)};
    gsq_detection d[] = {det(0, 0.9f, 100, 100, 20, 20), hit(g[0], 0.8f)};
    image im[] = {IMAGE(1, g, d)};
    static const double want[GSQ_COCO_STATS] = {.5, .5, .5, .5, NA, NA, 0, 1, 1, 1, NA, NA};
    gsq_coco_stats s = evaluate(1, im, 1);
    check_stats(&s, want, "small false positive first");

    d[0] = det(0, 0.9f, 100, 100, 100, 100);
    static const double want_large[GSQ_COCO_STATS] = {.5, .5, .5, 1, NA, NA, 0, 1, 1, 1, NA, NA};
    s = evaluate(1, im, 1);
    check_stats(&s, want_large, "large false positive first");
}

/* Crowd regions: never counted, matched by any number of detections (IoU over the detection's
 * own area), which are then ignored; a counted object is preferred while its IoU reaches the
 * threshold; a class whose only object is a crowd is left out. */
static void test_crowd(void)
{
    /* a small object, a large crowd with two detections inside it, the object found after them;
     * the best detection alone is in the crowd (AR1 0) */
    gsq_object g[] = {obj(0, 0, 0, 10, 10), crowd(0, 50, 50, 100, 100)};
    gsq_detection d[] = {det(0, 0.9f, 60, 60, 10, 10), hit(g[0], 0.8f), det(0, 0.85f, 70, 70, 10, 10)};
    image im[] = {IMAGE(1, g, d)};
    static const double want[GSQ_COCO_STATS] = {1, 1, 1, 1, NA, NA, 0, 1, 1, 1, NA, NA};
    gsq_coco_stats s = evaluate(1, im, 1);
    check_stats(&s, want, "detections in a crowd");

    /* a 10×10 object inside a 20×20 crowd, one detection covering 10×6.25 of it: IoU .625 with
     * the object, 1 with the crowd. A true positive at thresholds .5, .55, .6; at the seven
     * others the crowd matches and the detection is ignored: AP .3, AP50 1, AP75 0. */
    gsq_object g2[] = {obj(0, 0, 0, 10, 10), crowd(0, 0, 0, 20, 20)};
    gsq_detection d2[] = {det(0, 0.9f, 0, 0, 10, 6.25f)};
    image im2[] = {IMAGE(1, g2, d2)};
    static const double want2[GSQ_COCO_STATS] = {.3, 1, 0, .3, NA, NA, .3, .3, .3, .3, NA, NA};
    s = evaluate(1, im2, 1);
    check_stats(&s, want2, "object preferred to crowd");

    /* class 1 has only a crowd (and a detection in it): left out, class 0 is perfect */
    gsq_object g3[] = {obj(0, 0, 0, 50, 50), crowd(1, 100, 100, 50, 50)};
    gsq_detection d3[] = {hit(g3[0], 0.5f), hit(g3[1], 0.9f)};
    image im3[] = {IMAGE(2, g3, d3)};
    static const double want3[GSQ_COCO_STATS] = {1, 1, 1, NA, 1, NA, 1, 1, 1, NA, 1, NA};
    s = evaluate(2, im3, 1);
    check_stats(&s, want3, "crowd-only class");
}

/* The annotation's area decides the range, not the box's: a 10×10 box with area 2000 is medium
 * (its detection, area 100, counts there); area 32² is small and medium both. */
static void test_area_ranges(void)
{
    gsq_object g[] = {obj(0, 0, 0, 10, 10)};
    gsq_detection d[] = {hit(g[0], 0.5f)};
    image im[] = {IMAGE(1, g, d)};
    g[0].area = 2000;
    static const double medium[GSQ_COCO_STATS] = {1, 1, 1, NA, 1, NA, 1, 1, 1, NA, 1, NA};
    gsq_coco_stats s = evaluate(1, im, 1);
    check_stats(&s, medium, "area 2000");

    g[0].area = 32 * 32;
    static const double both[GSQ_COCO_STATS] = {1, 1, 1, 1, 1, NA, 1, 1, 1, 1, 1, NA};
    s = evaluate(1, im, 1);
    check_stats(&s, both, "area 32²");
}

/* Matching's bounds. An IoU equal to the threshold matches: a detection covering 10×7.5 of a
 * 10×10 object (IoU .75) is a hit at the six thresholds up to .75. Among equal IoUs the later
 * object is taken: the first detection has IoU .6 with both objects, takes the second, and the
 * second detection (on the first object) is a hit too at thresholds .5 to .6 (AP 1 there); above,
 * the first is a false positive before a hit, precision .5 up to recall .5 (AP 25.5 / 101). */
static void test_match_bounds(void)
{
    gsq_object g[] = {obj(0, 0, 0, 10, 10)};
    gsq_detection d[] = {det(0, 0.9f, 0, 0, 10, 7.5f)};
    image im[] = {IMAGE(1, g, d)};
    static const double six[GSQ_COCO_STATS] = {.6, 1, 1, .6, NA, NA, .6, .6, .6, .6, NA, NA};
    gsq_coco_stats s = evaluate(1, im, 1);
    check_stats(&s, six, "IoU .75");

    gsq_object g2[] = {obj(0, 0, 0, 10, 10), obj(0, 5, 0, 10, 10)};
    gsq_detection d2[] = {det(0, 0.9f, 2.5f, 0, 10, 10), hit(g2[0], 0.8f)};
    image im2[] = {IMAGE(1, g2, d2)};
    double ap = (3 + 7 * 25.5 / 101) / 10, ar = (3 + 7 * .5) / 10;
    const double later[GSQ_COCO_STATS] = {ap, 1, 25.5 / 101, ap, NA, NA, .15, ar, ar, ar, NA, NA};
    s = evaluate(1, im2, 1);
    check_stats(&s, later, "equal IoUs");
}

/* maxDets per image and class: three objects found in the order .9, .8, .7 (given out of order),
 * one of three within the first (AR1 1/3). Beyond 100 detections the rest are dropped: a hit
 * among 100 false positives counts only when it is among the first 100 by score, ties kept in
 * the order given. */
static void test_max_dets(void)
{
    gsq_object g[] = {obj(0, 0, 0, 10, 10), obj(0, 20, 0, 10, 10), obj(0, 40, 0, 10, 10)};
    gsq_detection d[] = {hit(g[0], 0.7f), hit(g[1], 0.9f), hit(g[2], 0.8f)};
    image im[] = {IMAGE(1, g, d)};
    static const double three[GSQ_COCO_STATS] = {1, 1, 1, 1, NA, NA, 1.0 / 3, 1, 1, 1, NA, NA};
    gsq_coco_stats s = evaluate(1, im, 1);
    check_stats(&s, three, "maxDets");

    gsq_object one[] = {obj(0, 0, 0, 10, 10)};
    gsq_detection many[101];
    for (int i = 0; i < 101; i++) many[i] = det(0, 0.5f, 200 + 2 * i, 200, 10, 10);
    image im2[] = {IMAGE(1, one, many)};
    many[100] = hit(one[0], 0.5f); /* tied, last: the 101st */
    static const double none[GSQ_COCO_STATS] = {0, 0, 0, 0, NA, NA, 0, 0, 0, 0, NA, NA};
    s = evaluate(1, im2, 1);
    check_stats(&s, none, "101st detection");
    many[100] = hit(one[0], 0.6f); /* the best */
    static const double first[GSQ_COCO_STATS] = {1, 1, 1, 1, NA, NA, 1, 1, 1, 1, NA, NA};
    s = evaluate(1, im2, 1);
    check_stats(&s, first, "best of 101");
    many[100] = det(0, 0.5f, 400, 400, 10, 10);
    many[0] = hit(one[0], 0.4f); /* first given, worst score */
    s = evaluate(1, im2, 1);
    check_stats(&s, none, "worst of 101");
}

/* Tied scores across images go by image id (pycocotools' sorted image ids), not the order added:
 * a hit in image 4 comes before a false positive in image 9 (AP 1, where the other order gives
 * .5). Within an image, by the order given. */
static void test_ties(void)
{
    gsq_object g[] = {obj(0, 0, 0, 10, 10)};
    gsq_detection fp[] = {det(0, 0.5f, 50, 50, 10, 10)}, tp[] = {hit(g[0], 0.5f)};
    image images[] = {{.id = 9, .ndet = 1, .dets = fp}, IMAGE(4, g, tp)};
    static const double first[GSQ_COCO_STATS] = {1, 1, 1, 1, NA, NA, 1, 1, 1, 1, NA, NA};
    gsq_coco_stats s = evaluate(1, images, 2);
    check_stats(&s, first, "tie across images");

    gsq_detection both[] = {fp[0], tp[0]};
    image im[] = {IMAGE(4, g, both)};
    static const double second[GSQ_COCO_STATS] = {.5, .5, .5, .5, NA, NA, 0, 1, 1, 1, NA, NA};
    s = evaluate(1, im, 1);
    check_stats(&s, second, "tie in an image");
}

/* Classes: one perfect, one with only false positives and no ground truth (left out), one with
 * ground truth and no detection (0, counted): means of 1 and 0. With no detections at all every
 * range with ground truth is 0; with no images everything is -1. */
static void test_classes(void)
{
    gsq_object g[] = {obj(0, 0, 0, 50, 50), obj(2, 100, 100, 50, 50)};
    gsq_detection d[] = {hit(g[0], 0.9f), det(1, 0.95f, 300, 300, 40, 40)};
    image im[] = {IMAGE(1, g, d)};
    static const double half[GSQ_COCO_STATS] = {.5, .5, .5, NA, .5, NA, .5, .5, .5, NA, .5, NA};
    gsq_coco_stats s = evaluate(3, im, 1);
    check_stats(&s, half, "classes without ground truth or detections");

    im[0].ndet = 0;
    static const double zero[GSQ_COCO_STATS] = {0, 0, 0, NA, 0, NA, 0, 0, 0, NA, 0, NA};
    s = evaluate(3, im, 1);
    check_stats(&s, zero, "no detections");

    static const double nothing[GSQ_COCO_STATS] = {NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, NA};
    s = evaluate(3, im, 0);
    check_stats(&s, nothing, "no images");
}

/* ---- errors ---- */

static void test_errors(void)
{
    gsq_coco_eval *e = (gsq_coco_eval *)&e;
    gsq_error err;
    CHECK(gsq_coco_eval_create(&e, 0, &err) == GSQ_ERR_ARG && e == NULL, "0 classes accepted");
    CHECK(gsq_coco_eval_create(NULL, 3, &err) == GSQ_ERR_ARG, "NULL output accepted");
    gsq_coco_eval_free(NULL);
    if (gsq_coco_eval_create(&e, 2, &err) != GSQ_OK) {
        CHECK(0, "create: %s", err.msg);
        return;
    }
    gsq_object g[] = {obj(0, 0, 0, 10, 10)};
    gsq_detection d[] = {hit(g[0], 0.9f)};
    image im = IMAGE(5, g, d);
    CHECK(add_image(e, &im, &err) == GSQ_OK, "%s", err.msg);

    /* each bad image is refused whole: added, its missed object and false positive would lower
     * every number */
    const struct {
        gsq_object o;
        gsq_detection d;
        const char *what;
    } bad[] = {
        {obj(2, 0, 0, 1, 1), hit(g[0], 0.5f), "object class 2 of 2"},
        {obj(-1, 0, 0, 1, 1), hit(g[0], 0.5f), "object class -1"},
        {obj(0, NAN, 0, 1, 1), hit(g[0], 0.5f), "NaN object box"},
        {{.box = {0, 0, 1, 1}, .area = NAN}, hit(g[0], 0.5f), "NaN area"},
        {g[0], det(2, 0.5f, 0, 0, 1, 1), "detection class 2 of 2"},
        {g[0], det(-1, 0.5f, 0, 0, 1, 1), "detection class -1"},
        {g[0], det(0, NAN, 0, 0, 1, 1), "NaN score"},
        {g[0], det(0, 0.5f, 0, 0, NAN, 1), "NaN detection box"},
        {g[0], det(0, 0.5f, INFINITY, 0, 1, 1), "infinite detection box"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gsq_object o[] = {obj(0, 300, 300, 10, 10), bad[i].o};
        gsq_detection dd[] = {det(0, 0.95f, 500, 300, 10, 10), bad[i].d};
        image b = IMAGE(6, o, dd);
        err.code = GSQ_OK;
        CHECK(add_image(e, &b, &err) == GSQ_ERR_ARG && err.code == GSQ_ERR_ARG, "%s accepted", bad[i].what);
    }
    gsq_objects gt = {.image_id = 6, .count = 1};
    CHECK(gsq_coco_eval_add(e, &gt, d, 1, &err) == GSQ_ERR_ARG, "NULL objects accepted");
    gt.count = 0;
    CHECK(gsq_coco_eval_add(e, &gt, NULL, 1, &err) == GSQ_ERR_ARG, "NULL detections accepted");
    CHECK(gsq_coco_eval_add(e, &gt, d, -1, &err) == GSQ_ERR_ARG, "-1 detections accepted");
    CHECK(gsq_coco_eval_add(e, NULL, d, 1, &err) == GSQ_ERR_ARG, "NULL image accepted");
    CHECK(gsq_coco_eval_add(NULL, &gt, d, 1, &err) == GSQ_ERR_ARG, "NULL evaluator accepted");

    gsq_coco_stats s;
    static const double ones[GSQ_COCO_STATS] = {1, 1, 1, 1, NA, NA, 1, 1, 1, 1, NA, NA};
    CHECK(gsq_coco_eval_summarize(e, &s, &err) == GSQ_OK, "%s", err.msg);
    check_stats(&s, ones, "after refused images");
    CHECK(gsq_coco_eval_summarize(e, NULL, &err) == GSQ_ERR_ARG, "NULL stats accepted");

    /* an image id added twice is refused when summarizing */
    CHECK(add_image(e, &im, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_coco_eval_summarize(e, &s, &err) == GSQ_ERR_ARG && strstr(err.msg, "image 5"), "image 5 twice: %s",
          err.msg);
    gsq_coco_eval_free(e);

    CHECK(strcmp(gsq_coco_stat_name(0), "AP") == 0 && strcmp(gsq_coco_stat_name(2), "AP75") == 0 &&
              strcmp(gsq_coco_stat_name(6), "AR1") == 0 && strcmp(gsq_coco_stat_name(11), "AR_large") == 0,
          "stat names");
    CHECK(strcmp(gsq_coco_stat_name(12), "?") == 0 && strcmp(gsq_coco_stat_name(-1), "?") == 0, "stat name 12");
    CHECK(isnan(gsq_coco_stat(&s, 12)) && isnan(gsq_coco_stat(&s, -1)), "stat 12");
}

/* ---- the results writer ---- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
    fclose(f);
    return s;
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

static double number_at(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* Detection i read back from the file: every number exactly, the class as its COCO id. */
static void check_written(const cJSON *o, const gsq_detection *d, int category_id, size_t i)
{
    const cJSON *box = cJSON_GetObjectItemCaseSensitive(o, "bbox");
    const float want[4] = {d->box.x, d->box.y, d->box.w, d->box.h};
    int box_ok = cJSON_IsArray(box) && cJSON_GetArraySize(box) == 4;
    for (int k = 0; box_ok && k < 4; k++) box_ok = cJSON_GetArrayItem(box, k)->valuedouble == (double)want[k];
    CHECK(box_ok, "detection %zu: bbox", i);
    double image_id = number_at(o, "image_id"), category = number_at(o, "category_id"), score = number_at(o, "score");
    CHECK(image_id == (double)d->image_id, "detection %zu: image_id %.17g", i, image_id);
    CHECK(category == category_id, "detection %zu: category_id %g", i, category);
    CHECK(score == (double)d->score, "detection %zu: score %.17g", i, score);
}

/* Writes dets with category_ids and reads them back. */
static void check_round_trip(const char *path, const gsq_detection *dets, size_t n, const int *category_ids)
{
    gsq_error err;
    CHECK(gsq_coco_results_write(path, dets, n, 3, category_ids, &err) == GSQ_OK, "%s", err.msg);
    char *text = read_text(path);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_IsArray(root) && cJSON_GetArraySize(root) == (int)n, "%zu detections: %s", n, text ? text : "");
    for (size_t i = 0; cJSON_IsArray(root) && i < n && i < (size_t)cJSON_GetArraySize(root); i++) {
        int id = category_ids ? category_ids[dets[i].category] : dets[i].category + 1;
        check_written(cJSON_GetArrayItem(root, (int)i), &dets[i], id, i);
    }
    cJSON_Delete(root);
    free(text);
}

static void test_results_write(void)
{
    char dir[] = "/tmp/gsq_coco_XXXXXX", path[256], missing[300];
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        return;
    }
    snprintf(path, sizeof path, "%s/results.json", dir);
    const gsq_detection dets[] = {
        {.image_id = 42, .category = 0, .score = 0.1f, .box = {0.1f, 1e-7f, 123.456f, 3.4e38f}},
        {.image_id = INT64_C(1) << 52, .category = 2, .score = 1.0f / 3, .box = {-5.5f, 0, 640, 480}},
        {.image_id = 0, .category = 1, .score = 0, .box = {1, 2, 3, 4}},
    };
    static const int coco_ids[] = {1, 3, 90};
    check_round_trip(path, dets, 3, coco_ids);
    check_round_trip(path, dets, 3, NULL);
    check_round_trip(path, dets, 0, coco_ids);

    /* failures leave the previous file as it was and no temporary file beside it */
    gsq_error err;
    char *before = read_text(path);
    gsq_detection nan_score = dets[0];
    nan_score.score = NAN;
    CHECK(gsq_coco_results_write(path, &nan_score, 1, 3, NULL, &err) == GSQ_ERR_ARG, "NaN score written");
    gsq_detection negative = dets[0];
    negative.category = -1;
    CHECK(gsq_coco_results_write(path, &negative, 1, 3, NULL, &err) == GSQ_ERR_ARG, "class -1 written");
    negative.category = 3; /* past category_ids' three */
    CHECK(gsq_coco_results_write(path, &negative, 1, 3, coco_ids, &err) == GSQ_ERR_ARG, "class 3 of 3 written");
    CHECK(gsq_coco_results_write(dir, dets, 3, 3, NULL, &err) == GSQ_ERR_IO, "written over a folder: %s", err.msg);
    snprintf(missing, sizeof missing, "%s/no/such/folder.json", dir);
    CHECK(gsq_coco_results_write(missing, dets, 3, 3, NULL, &err) == GSQ_ERR_IO, "written into a missing folder");
    CHECK(gsq_coco_results_write(NULL, dets, 3, 3, NULL, &err) == GSQ_ERR_ARG, "NULL path accepted");
    CHECK(gsq_coco_results_write(path, NULL, 3, 3, NULL, &err) == GSQ_ERR_ARG, "NULL detections accepted");
    char *after = read_text(path);
    CHECK(before && after && strcmp(before, after) == 0, "a failed write changed the file");
    CHECK(entries(dir) == 1, "%d entries left in the folder", entries(dir));
    free(before);
    free(after);
    unlink(path);
    rmdir(dir);
}

/* ---- --write DIR: the cases scripts/coco_check.py recomputes with pycocotools ---- */

/* A case's images, classes, most objects in an image, longest object side and detections' spread
 * around their object (a fraction of its size). The last case has only small and medium objects. */
typedef struct {
    int images, classes, max_objects;
    float max_side, spread;
} random_case;

static const random_case random_cases[] = {
    {6, 4, 6, 300, 0.1f},    {12, 1, 10, 300, 0.1f}, {40, 12, 12, 300, 0.05f},
    {150, 80, 15, 300, 0.1f}, {10, 3, 8, 30, 0.03f},
};

/* COCO's ids of the classes: case 0's 1, 3, 7, 90; else 1, 2, ... skipping every eighth. */
static int coco_id(int c, int k)
{
    static const int four[] = {1, 3, 7, 90};
    return c == 0 ? four[k] : 1 + k + k / 7;
}

/* Classes that never have ground truth (their detections are all false positives). */
static int without_gt(int k, int classes)
{
    return classes > 1 && (k == classes - 1 || k % 9 == 8);
}

static float uniform(gsq_rng *rng, float lo, float hi)
{
    return lo + (hi - lo) * gsq_rng_uniform(rng);
}

/* Sides from 4 to max_side (small, medium and large); the area a segmentation's would be
 * (smaller than the box), now and then exactly the bound of a range near it. */
static gsq_object random_object(gsq_rng *rng, int k, float max_side)
{
    float side = expf(uniform(rng, logf(4), logf(max_side))), aspect = sqrtf(uniform(rng, 0.5f, 2));
    float w = side * aspect, h = side / aspect;
    gsq_object o = obj(k, uniform(rng, 0, 640 - fminf(w, 600)), uniform(rng, 0, 480 - fminf(h, 440)), w, h);
    o.area = gsq_rng_u32(rng) % 10 ? w * h * uniform(rng, 0.5f, 1) : w * h < 64 * 64 ? 32 * 32 : 96 * 96;
    o.iscrowd = gsq_rng_u32(rng) % 10 == 0;
    return o;
}

/* Scores in tenths half of the time, so that many tie. */
static float random_score(gsq_rng *rng)
{
    float s = gsq_rng_uniform(rng);
    return gsq_rng_u32(rng) % 2 ? floorf(s * 10) / 10 : s;
}

/* A detection near o: its box moved and scaled by about spread of its size; now and then of
 * another class. */
static gsq_detection near_object(gsq_rng *rng, gsq_object o, int classes, float spread)
{
    gsq_box b = o.box;
    float sx = expf(2 * spread * gsq_rng_normal(rng)), sy = expf(2 * spread * gsq_rng_normal(rng));
    int k = gsq_rng_u32(rng) % 10 ? o.category : (int)(gsq_rng_u32(rng) % (uint32_t)classes);
    return det(k, random_score(rng), b.x + spread * b.w * gsq_rng_normal(rng),
               b.y + spread * b.h * gsq_rng_normal(rng), b.w * sx, b.h * sy);
}

static gsq_detection anywhere(gsq_rng *rng, int classes)
{
    float w = expf(uniform(rng, logf(4), logf(300))), h = expf(uniform(rng, logf(4), logf(300)));
    return det((int)(gsq_rng_u32(rng) % (uint32_t)classes), random_score(rng), uniform(rng, 0, 600),
               uniform(rng, 0, 440), w, h);
}

/* An image of a case: a fifth without objects; up to three detections per object and a few
 * anywhere; when crowded and it has objects, 130 more of its first object's class around it (over
 * 100 of one class). Returns whether it did that. dets: room for 3·max_objects + 6 + 130. */
static int random_image(gsq_rng *rng, const random_case *rc, int64_t id, int crowded, image *im)
{
    im->id = id;
    im->nobj = gsq_rng_u32(rng) % 5 == 0 ? 0 : (int)(gsq_rng_u32(rng) % (uint32_t)(rc->max_objects + 1));
    for (int i = 0; i < im->nobj; i++) {
        int k;
        do k = (int)(gsq_rng_u32(rng) % (uint32_t)rc->classes);
        while (without_gt(k, rc->classes));
        im->objects[i] = random_object(rng, k, rc->max_side);
    }
    im->ndet = 0;
    for (int i = 0; i < im->nobj; i++)
        for (int n = (int)(gsq_rng_u32(rng) % 4); n > 0; n--)
            im->dets[im->ndet++] = near_object(rng, im->objects[i], rc->classes, rc->spread);
    for (int n = (int)(gsq_rng_u32(rng) % 7); n > 0; n--) im->dets[im->ndet++] = anywhere(rng, rc->classes);
    crowded = crowded && im->nobj > 0;
    for (int n = 0; crowded && n < 130; n++) {
        im->dets[im->ndet] = near_object(rng, im->objects[0], rc->classes, rc->spread);
        im->dets[im->ndet++].category = im->objects[0].category;
    }
    for (int i = 0; i < im->ndet; i++) im->dets[i].image_id = id;
    return crowded;
}

static void write_gt_json(FILE *f, const random_case *rc, int c, const image *images)
{
    fprintf(f, "{\"images\": [");
    for (int i = 0; i < rc->images; i++)
        fprintf(f, "%s\n{\"id\": %" PRId64 ", \"width\": 640, \"height\": 480}", i ? "," : "", images[i].id);
    fprintf(f, "],\n\"annotations\": [");
    int ann = 0;
    for (int i = 0; i < rc->images; i++)
        for (int j = 0; j < images[i].nobj; j++) {
            const gsq_object *o = &images[i].objects[j];
            fprintf(f,
                    "%s\n{\"id\": %d, \"image_id\": %" PRId64 ", \"category_id\": %d, \"bbox\": [%.17g, %.17g, %.17g, "
                    "%.17g], \"area\": %.17g, \"iscrowd\": %d}",
                    ann ? "," : "", ann + 1, images[i].id, coco_id(c, o->category), (double)o->box.x,
                    (double)o->box.y, (double)o->box.w, (double)o->box.h, (double)o->area, o->iscrowd);
            ann++;
        }
    fprintf(f, "],\n\"categories\": [");
    for (int k = 0; k < rc->classes; k++)
        fprintf(f, "%s\n{\"id\": %d, \"name\": \"class%d\"}", k ? "," : "", coco_id(c, k), k);
    fprintf(f, "]}\n");
}

/* Random image ids (multiples of 3 plus 1, one beyond 2³²) in a random order of adding. */
static void random_ids(gsq_rng *rng, int n, int64_t *ids)
{
    for (int i = 0; i < n; i++) ids[i] = 3 * (int64_t)i + 1 + (i == n - 1 ? INT64_C(5000000000) : 0);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(gsq_rng_u32(rng) % (uint32_t)(i + 1));
        int64_t t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
}

/* Evaluates the images, writes the detections file and the numbers; 0 on success. */
static int evaluate_and_write(const char *dir, int c, const random_case *rc, const image *images, int total)
{
    int ids[80]; /* the most classes of random_cases */
    for (int k = 0; k < rc->classes; k++) ids[k] = coco_id(c, k);
    gsq_detection *all = malloc(((size_t)total + 1) * sizeof *all);
    gsq_coco_eval *e = NULL;
    gsq_coco_stats s;
    gsq_error err = {0};
    char path[4096];
    gsq_status st = all ? gsq_coco_eval_create(&e, rc->classes, &err) : GSQ_ERR_NOMEM;
    size_t n = 0;
    for (int i = 0; st == GSQ_OK && i < rc->images; i++) {
        memcpy(all + n, images[i].dets, (size_t)images[i].ndet * sizeof *all);
        n += (size_t)images[i].ndet;
        st = add_image(e, &images[i], &err);
    }
    if (st == GSQ_OK) st = gsq_coco_eval_summarize(e, &s, &err);
    snprintf(path, sizeof path, "%s/case%d.dt.json", dir, c);
    if (st == GSQ_OK) st = gsq_coco_results_write(path, all, (size_t)total, rc->classes, ids, &err);
    snprintf(path, sizeof path, "%s/case%d.txt", dir, c);
    FILE *f = st == GSQ_OK ? fopen(path, "w") : NULL;
    for (int i = 0; f && i < GSQ_COCO_STATS; i++) fprintf(f, "%s %.17g\n", gsq_coco_stat_name(i), gsq_coco_stat(&s, i));
    int bad = st != GSQ_OK || !f || fclose(f) != 0;
    if (bad) fprintf(stderr, "case %d: %s\n", c, st != GSQ_OK ? err.msg : "cannot write the numbers");
    gsq_coco_eval_free(e);
    free(all);
    return bad;
}

static int write_case(const char *dir, int c, const random_case *rc)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 2000 + (uint64_t)c, 0);
    int room = 3 * rc->max_objects + 6 + 130, total = 0;
    image *images = calloc((size_t)rc->images, sizeof *images);
    int64_t *ids = malloc((size_t)rc->images * sizeof *ids);
    gsq_object *objects = malloc((size_t)rc->images * rc->max_objects * sizeof *objects);
    gsq_detection *dets = malloc((size_t)rc->images * room * sizeof *dets);
    int bad = !images || !ids || !objects || !dets;
    if (!bad) {
        random_ids(&rng, rc->images, ids);
        int crowded = 0;
        for (int i = 0; i < rc->images; i++) {
            images[i].objects = objects + (size_t)i * rc->max_objects;
            images[i].dets = dets + (size_t)i * room;
            crowded |= random_image(&rng, rc, ids[i], !crowded, &images[i]);
            total += images[i].ndet;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/case%d.gt.json", dir, c);
        FILE *f = fopen(path, "w");
        if (f) write_gt_json(f, rc, c, images);
        bad = !f || fclose(f) != 0 || evaluate_and_write(dir, c, rc, images, total);
    }
    if (bad) fprintf(stderr, "case %d: cannot write under %s\n", c, dir);
    free(images);
    free(ids);
    free(objects);
    free(dets);
    return bad;
}

static int write_cases(const char *dir)
{
    int cases = (int)(sizeof random_cases / sizeof *random_cases), bad = 0;
    for (int c = 0; c < cases; c++) bad |= write_case(dir, c, &random_cases[c]);
    if (!bad) printf("wrote %d cases under %s\n", cases, dir);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0) return write_cases(argv[2]);
    test_perfect();
    test_false_positive_first();
    test_crowd();
    test_area_ranges();
    test_match_bounds();
    test_max_dets();
    test_ties();
    test_classes();
    test_errors();
    test_results_write();
    return test_finish("test_coco_eval");
}
