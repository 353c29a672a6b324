/* Writing a detection dataset in the COCO layout (gsq_dataset_write_coco): each sample's image as
 * root/SPLIT/NNNNNNNNNNNN.jpg (its image id in 12 digits, as COCO names its files; JPEG quality
 * 95) and, once every image is written, root/annotations/instances_SPLIT.json holding the images,
 * the annotations (ids from 1, in sample order, crowd regions included) and the categories; every
 * file is written atomically. Numbers are printed so that reading them back gives the same
 * floats. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "data/image_decode.h"
#include "gpusq/atomic_file.h"

#define JPEG_QUALITY 95
#define COCO_MAX_ID 9007199254740992.0 /* 2^53: larger ids are not exact in JSON's doubles */

/* A new object appended to arr, or NULL when out of memory. */
static cJSON *append_object(cJSON *arr)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/* The categories: ids from category_ids (index + 1 without), names from class_names ("classN"
 * without). 0 when out of memory. */
static int add_categories(const gsq_dataset *ds, cJSON *arr)
{
    for (int c = 0; c < ds->num_classes; c++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "class%d", c);
        const char *name = ds->class_names && ds->class_names[c] ? ds->class_names[c] : fallback;
        cJSON *o = append_object(arr);
        if (!o || !cJSON_AddNumberToObject(o, "id", ds->category_ids ? ds->category_ids[c] : c + 1) ||
            !cJSON_AddStringToObject(o, "name", name))
            return 0;
    }
    return 1;
}

/* GSQ_ERR_ARG unless the dataset's category ids are distinct. */
static gsq_status check_category_ids(const gsq_dataset *ds, gsq_error *err)
{
    for (int c = 0; ds->category_ids && c < ds->num_classes; c++)
        for (int d = 0; d < c; d++)
            if (ds->category_ids[c] == ds->category_ids[d])
                return gsq_fail(err, GSQ_ERR_ARG, "%s: classes %d and %d have the same category id %d", ds->name, d,
                                c, ds->category_ids[c]);
    return GSQ_OK;
}

/* The image entry and the annotations of sample s (its file file_name); annotation ids from
 * *next_id. 0 when out of memory. */
static int add_sample(const gsq_dataset *ds, const gsq_sample *s, const char *file_name, cJSON *images, cJSON *anns,
                      int64_t *next_id)
{
    const gsq_objects *objs = &s->objects;
    cJSON *im = append_object(images);
    if (!im || !cJSON_AddNumberToObject(im, "id", (double)objs->image_id) ||
        !cJSON_AddStringToObject(im, "file_name", file_name) ||
        !cJSON_AddNumberToObject(im, "width", s->image.width) ||
        !cJSON_AddNumberToObject(im, "height", s->image.height))
        return 0;
    for (int i = 0; i < objs->count; i++) {
        const gsq_object *o = &objs->objects[i];
        int k = o->category;
        const float box[4] = {o->box.x, o->box.y, o->box.w, o->box.h};
        cJSON *a = append_object(anns), *bbox = a ? cJSON_AddArrayToObject(a, "bbox") : NULL;
        if (!a || !cJSON_AddNumberToObject(a, "id", (double)(*next_id)++) ||
            !cJSON_AddNumberToObject(a, "image_id", (double)objs->image_id) ||
            !cJSON_AddNumberToObject(a, "category_id", ds->category_ids ? ds->category_ids[k] : k + 1) || !bbox ||
            !cJSON_AddNumberToObject(a, "area", o->area) || !cJSON_AddNumberToObject(a, "iscrowd", o->iscrowd ? 1 : 0))
            return 0;
        for (int j = 0; j < 4; j++) {
            cJSON *v = cJSON_CreateNumber(box[j]);
            if (!v || !cJSON_AddItemToArray(bbox, v)) {
                cJSON_Delete(v);
                return 0;
            }
        }
    }
    return 1;
}

/* GSQ_ERR_ARG naming the sample unless its image id is exact in JSON and its objects' boxes and
 * areas are finite and their classes the dataset's. */
static gsq_status check_sample(const gsq_dataset *ds, size_t index, const gsq_objects *objs, gsq_error *err)
{
    if (!(objs->image_id >= -(int64_t)COCO_MAX_ID && objs->image_id <= (int64_t)COCO_MAX_ID))
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu's image id %" PRId64 " is beyond 2^53", ds->name, index,
                        objs->image_id);
    for (int i = 0; i < objs->count; i++) {
        const gsq_object *o = &objs->objects[i];
        if (o->category < 0 || o->category >= ds->num_classes)
            return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu: object %d has class %d outside [0, %d)", ds->name,
                            index, i, o->category, ds->num_classes);
        if (!isfinite(o->box.x) || !isfinite(o->box.y) || !isfinite(o->box.w) || !isfinite(o->box.h) ||
            !isfinite(o->area))
            return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu: object %d's box or area is not finite", ds->name,
                            index, i);
    }
    return GSQ_OK;
}

/* Writes sample index's image into image_dir and adds its entries; its image id to ids[index]. */
static gsq_status write_sample(gsq_dataset *ds, size_t index, const char *image_dir, cJSON *images, cJSON *anns,
                               int64_t *next_id, int64_t *ids, gsq_error *err)
{
    gsq_sample s;
    gsq_status st = ds->get(ds, index, &s, err);
    if (st != GSQ_OK) return st;
    char name[32], path[GSQ_DATA_PATH_MAX];
    snprintf(name, sizeof name, "%012" PRId64 ".jpg", s.objects.image_id);
    int len = snprintf(path, sizeof path, "%s/%s", image_dir, name);
    ids[index] = s.objects.image_id;
    st = check_sample(ds, index, &s.objects, err);
    if (st == GSQ_OK && (len < 0 || len >= GSQ_DATA_PATH_MAX))
        st = gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": path too long", image_dir);
    if (st == GSQ_OK) st = gsq_jpeg_write(path, &s.image, JPEG_QUALITY, err);
    if (st == GSQ_OK && !add_sample(ds, &s, name, images, anns, next_id))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory for sample %zu's annotations", ds->name, index);
    gsq_sample_free(&s);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* GSQ_ERR_ARG unless the n image ids are distinct (sorts them). */
static gsq_status check_image_ids(const gsq_dataset *ds, int64_t *ids, size_t n, gsq_error *err)
{
    qsort(ids, n, sizeof *ids, cmp_i64);
    for (size_t i = 1; i < n; i++)
        if (ids[i] == ids[i - 1])
            return gsq_fail(err, GSQ_ERR_ARG, "%s: two samples have image id %" PRId64, ds->name, ids[i]);
    return GSQ_OK;
}

/* Prints doc and writes it to path atomically. */
static gsq_status write_json(const cJSON *doc, const char *path, gsq_error *err)
{
    char *text = cJSON_PrintUnformatted(doc);
    if (!text) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory printing the annotations", path);
    const void *data = text;
    size_t size = strlen(text);
    gsq_status st = gsq_write_file_atomic(path, &data, &size, 1, err);
    cJSON_free(text);
    return st;
}

gsq_status gsq_dataset_write_coco(gsq_dataset *ds, const char *root, const char *split, gsq_error *err)
{
    if (!ds || !ds->get) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_write_coco: no dataset");
    if (ds->task != GSQ_TASK_DETECT)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: a %s dataset, not a detection one: only objects make COCO "
                        "annotations", ds->name, gsq_task_name(ds->task));
    if (!root || !root[0] || !split || !split[0])
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_write_coco: no root folder or split");
    char image_dir[GSQ_DATA_PATH_MAX], ann_dir[GSQ_DATA_PATH_MAX], json[GSQ_DATA_PATH_MAX];
    int a = snprintf(image_dir, sizeof image_dir, "%s/%s", root, split);
    int b = snprintf(ann_dir, sizeof ann_dir, "%s/annotations", root);
    int c = snprintf(json, sizeof json, "%s/instances_%s.json", ann_dir, split);
    if (a < 0 || a >= GSQ_DATA_PATH_MAX || b < 0 || b >= GSQ_DATA_PATH_MAX || c < 0 || c >= GSQ_DATA_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_write_coco: " GSQ_LBL ": path too long", root);
    gsq_status st = check_category_ids(ds, err);
    if (st == GSQ_OK) st = gsq_output_prepare_dir(image_dir, err);
    if (st == GSQ_OK) st = gsq_output_prepare_dir(ann_dir, err);
    if (st != GSQ_OK) return st;
    cJSON *doc = cJSON_CreateObject();
    cJSON *images = doc ? cJSON_AddArrayToObject(doc, "images") : NULL;
    cJSON *anns = doc ? cJSON_AddArrayToObject(doc, "annotations") : NULL;
    cJSON *cats = doc ? cJSON_AddArrayToObject(doc, "categories") : NULL;
    int64_t *ids = malloc((ds->size ? ds->size : 1) * sizeof *ids), next_id = 1;
    if (!images || !anns || !cats || !ids || !add_categories(ds, cats))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory for the annotations", ds->name);
    for (size_t i = 0; i < ds->size && st == GSQ_OK; i++)
        st = write_sample(ds, i, image_dir, images, anns, &next_id, ids, err);
    if (st == GSQ_OK) st = check_image_ids(ds, ids, ds->size, err);
    if (st == GSQ_OK) st = write_json(doc, json, err);
    free(ids);
    cJSON_Delete(doc);
    return st;
}
