/* Detections as a COCO results file (gpusq/detect.h): the JSON array pycocotools' loadRes reads,
 * one object per detection, written atomically. Every number is printed so that it reads back as
 * exactly the double it was (and so as the same float): pycocotools then computes from the very
 * values gpusq evaluates. Each detection is rendered by cJSON on its own and appended to the text,
 * so a large file never holds a whole cJSON tree in memory. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gpusq/atomic_file.h"
#include "gpusq/detect.h"

/* The file's text, growing. */
typedef struct {
    char *data;
    size_t size, cap;
} text_buf;

static int append(text_buf *t, const char *s)
{
    size_t n = strlen(s);
    if (t->size + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->size + n + 1) cap *= 2;
        char *data = realloc(t->data, cap);
        if (!data) return 0;
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->size, s, n + 1);
    t->size += n;
    return 1;
}

/* A raw JSON number: "%.17g" reads back as the same double. */
static cJSON *number(double v)
{
    char text[32];
    snprintf(text, sizeof text, "%.17g", v);
    return cJSON_CreateRaw(text);
}

static cJSON *integer(int64_t v)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, v);
    return cJSON_CreateRaw(text);
}

/* Adds item to container (under name to an object, or to an array when name is NULL); 0, item
 * freed, when either is missing or cJSON runs out of memory. */
static int add(cJSON *container, const char *name, cJSON *item)
{
    int ok = container && item &&
             (name ? cJSON_AddItemToObject(container, name, item) : cJSON_AddItemToArray(container, item));
    if (!ok) cJSON_Delete(item);
    return ok;
}

/* {"image_id", "category_id", "bbox": [x, y, w, h], "score"}; NULL when out of memory. */
static cJSON *detection_json(const gsq_detection *d, int category_id)
{
    const float xywh[4] = {d->box.x, d->box.y, d->box.w, d->box.h};
    cJSON *o = cJSON_CreateObject();
    int ok = add(o, "image_id", integer(d->image_id)) && add(o, "category_id", integer(category_id));
    cJSON *box = ok ? cJSON_AddArrayToObject(o, "bbox") : NULL;
    ok = box != NULL;
    for (int k = 0; ok && k < 4; k++) ok = add(box, NULL, number(xywh[k]));
    ok = ok && add(o, "score", number(d->score));
    if (ok) return o;
    cJSON_Delete(o);
    return NULL;
}

static gsq_status check_detection(const gsq_detection *d, size_t i, int classes, gsq_error *err)
{
    if (d->category < 0 || d->category >= classes)
        return gsq_fail(err, GSQ_ERR_ARG, "COCO results: detection %zu: class %d is outside [0, %d)", i, d->category,
                        classes);
    if (!isfinite(d->score) || !isfinite(d->box.x) || !isfinite(d->box.y) || !isfinite(d->box.w) ||
        !isfinite(d->box.h))
        return gsq_fail(err, GSQ_ERR_ARG, "COCO results: detection %zu: box or score not finite", i);
    return GSQ_OK;
}

/* Appends detection i to t, after a separator unless it is the first. */
static int append_detection(text_buf *t, const gsq_detection *d, size_t i, const int *category_ids)
{
    cJSON *o = detection_json(d, category_ids ? category_ids[d->category] : d->category + 1);
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    int ok = s && append(t, i ? ",\n" : "\n") && append(t, s);
    cJSON_free(s);
    cJSON_Delete(o);
    return ok;
}

gsq_status gsq_coco_results_write(const char *path, const gsq_detection *dets, size_t count, int classes,
                                  const int *category_ids, gsq_error *err)
{
    if (!path || (count && !dets)) return gsq_fail(err, GSQ_ERR_ARG, "COCO results: NULL path or detections");
    for (size_t i = 0; i < count; i++) {
        gsq_status st = check_detection(&dets[i], i, classes, err);
        if (st != GSQ_OK) return st;
    }
    text_buf t = {0};
    int ok = append(&t, "[");
    for (size_t i = 0; ok && i < count; i++) ok = append_detection(&t, &dets[i], i, category_ids);
    ok = ok && append(&t, count ? "\n]\n" : "]\n");
    if (!ok) {
        free(t.data);
        return gsq_fail(err, GSQ_ERR_NOMEM, "COCO results: out of memory writing %zu detections to %s", count, path);
    }
    const void *data = t.data;
    gsq_status st = gsq_write_file_atomic(path, &data, &t.size, 1, err);
    free(t.data);
    return st;
}
