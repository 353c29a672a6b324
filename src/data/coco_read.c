/* Detection datasets in the COCO layout: root/annotations/instances_SPLIT.json (read once, at
 * open, with cJSON) describing the images root/SPLIT/FILE_NAME. The categories, sorted by id, are
 * the classes; the images, sorted by id, are the samples, each with the annotations naming it in
 * the file's order. A malformed annotation is skipped and counted (the first one's reason kept); a
 * malformed file, image or category fails the open. get() loads the image (refusing a file name
 * that would leave the split's folder) and hands out its objects. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "data/image_decode.h"

#define COCO_MAX_ID 9007199254740992.0   /* 2^53: ids beyond are not exact in JSON's doubles */
#define COCO_MAX_COORD 16777216.0        /* 2^24: box values beyond count as not finite */
#define COCO_MAX_AREA 281474976710656.0  /* 2^48: the largest w·h */

typedef struct {
    int64_t id;
    int width, height;  /* the file's; 0 when it gives none */
    char *file_name;
    size_t first;       /* its objects: objects[first, first + count) */
    int count;
} coco_image;

typedef struct {
    gsq_dataset ds;     /* first, so destroy frees the whole block */
    char *image_dir;    /* root/SPLIT */
    coco_image *images; /* sorted by id */
    size_t n_images;
    gsq_object *objects;
    char **names;       /* the categories' names and ids, sorted by id */
    int *ids;
} coco_set;

/* An open file's parse: what the checks below need to name things. */
typedef struct {
    const char *path;   /* the JSON file */
    coco_set *set;
    gsq_coco_skips *skips;
} coco_parse;

static void coco_destroy(gsq_dataset *ds)
{
    coco_set *s = ds->impl;
    for (size_t i = 0; s->images && i < s->n_images; i++) free(s->images[i].file_name);
    free(s->images);
    free(s->objects);
    gsq_free_names(s->names, s->names ? (size_t)ds->num_classes : 0);
    free(s->ids);
    free(s->image_dir);
    free(s);
}

/* 1 when v is a JSON number holding an integer in [lo, hi] (*out gets it). */
static int json_int(const cJSON *v, double lo, double hi, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi) || d != floor(d)) return 0; /* NaN fails the first test */
    *out = (int64_t)d;
    return 1;
}

/* The number of elements of array a (counted, not cJSON_GetArraySize's int). */
static size_t array_size(const cJSON *a)
{
    size_t n = 0;
    for (const cJSON *e = a->child; e; e = e->next) n++;
    return n;
}

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

static int cmp_image(const void *a, const void *b)
{
    return cmp_i64(((const coco_image *)a)->id, ((const coco_image *)b)->id);
}

/* A category before sorting: its id and name (in the JSON tree). */
typedef struct {
    int64_t id;
    const char *name;
} category;

static int cmp_category(const void *a, const void *b)
{
    return cmp_i64(((const category *)a)->id, ((const category *)b)->id);
}

/* Reads the categories (objects with an integer id and a string name), sorted by id, into the
 * dataset's classes. */
static gsq_status read_categories(coco_parse *p, const cJSON *arr, gsq_error *err)
{
    gsq_dataset *ds = &p->set->ds;
    size_t count = array_size(arr);
    if (count < 1) return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": no categories", p->path);
    if (count > INT_MAX) return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": %zu categories", p->path, count);
    int n = (int)count;
    category *cats = malloc((size_t)n * sizeof *cats);
    if (!cats) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for %d categories", p->path, n);
    int i = 0;
    gsq_status st = GSQ_OK;
    for (const cJSON *c = arr->child; c && st == GSQ_OK; c = c->next, i++) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (!cJSON_IsObject(c) || !json_int(cJSON_GetObjectItemCaseSensitive(c, "id"), INT_MIN, INT_MAX, &cats[i].id) ||
            !cJSON_IsString(name))
            st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": category %d is not an object with an integer id and a "
                          "string name", p->path, i);
        else
            cats[i].name = name->valuestring;
    }
    if (st == GSQ_OK) qsort(cats, (size_t)n, sizeof *cats, cmp_category);
    for (i = 1; i < n && st == GSQ_OK; i++)
        if (cats[i].id == cats[i - 1].id)
            st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": two categories have id %lld", p->path,
                          (long long)cats[i].id);
    if (st == GSQ_OK) {
        p->set->names = calloc((size_t)n, sizeof *p->set->names);
        p->set->ids = malloc((size_t)n * sizeof *p->set->ids);
        ds->num_classes = n;
        for (i = 0; i < n && p->set->names && p->set->ids; i++) {
            p->set->ids[i] = (int)cats[i].id;
            if (!(p->set->names[i] = strdup(cats[i].name))) break;
        }
        if (i < n) st = gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for %d categories", p->path, n);
    }
    free(cats);
    ds->class_names = p->set->names;
    ds->category_ids = p->set->ids;
    return st;
}

/* Reads one image entry: an object with an integer id, a string file_name and, when given (both
 * or neither), a positive integer width and height. */
static gsq_status read_image(coco_parse *p, const cJSON *e, size_t i, coco_image *im, gsq_error *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "file_name");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(e, "width"), *h = cJSON_GetObjectItemCaseSensitive(e, "height");
    int64_t wv = 0, hv = 0;
    if (!cJSON_IsObject(e) || !json_int(id, -COCO_MAX_ID, COCO_MAX_ID, &im->id) ||
        !cJSON_IsString(name) || !w != !h || (w && (!json_int(w, 1, INT_MAX, &wv) || !json_int(h, 1, INT_MAX, &hv))))
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": image %zu is not an object with an integer id, a string "
                        "file_name and (when given) a positive integer width and height", p->path, i);
    im->width = (int)wv;
    im->height = (int)hv;
    if (!(im->file_name = strdup(name->valuestring)))
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory", p->path);
    return GSQ_OK;
}

/* Reads the images, sorted by id; duplicate ids are an error. */
static gsq_status read_images(coco_parse *p, const cJSON *arr, gsq_error *err)
{
    coco_set *s = p->set;
    size_t n = array_size(arr);
    if (n == 0) return gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": no images", p->path);
    if (!(s->images = calloc(n, sizeof *s->images)))
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for %zu images", p->path, n);
    gsq_status st = GSQ_OK;
    for (const cJSON *e = arr->child; e && st == GSQ_OK; e = e->next) {
        size_t i = s->n_images++; /* counted first: destroy frees what read_image made */
        st = read_image(p, e, i, &s->images[i], err);
    }
    if (st != GSQ_OK) return st;
    qsort(s->images, n, sizeof *s->images, cmp_image);
    for (size_t i = 1; i < n; i++)
        if (s->images[i].id == s->images[i - 1].id)
            return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": two images have id %lld", p->path,
                            (long long)s->images[i].id);
    s->ds.size = n;
    return GSQ_OK;
}

static const coco_image *find_image(const coco_set *s, int64_t id)
{
    coco_image key = {.id = id};
    return bsearch(&key, s->images, s->n_images, sizeof key, cmp_image);
}

/* The class of category id, or -1. */
static int find_class(const coco_set *s, int64_t id)
{
    size_t lo = 0, hi = (size_t)s->ds.num_classes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < (size_t)s->ds.num_classes && s->ids[lo] == id ? (int)lo : -1;
}

/* Writes why an annotation is skipped into why (cap bytes); returns 0. */
static int reject(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int reject(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return 0;
}

/* Reads annotation e into its image's position *image and *o; 0 with the reason in why when it
 * is malformed. */
static int read_annotation(const coco_set *s, const cJSON *e, size_t *image, gsq_object *o, char *why, size_t cap)
{
    int64_t image_id, category_id, crowd = 0;
    if (!cJSON_IsObject(e)) return reject(why, cap, "not an object");
    if (!json_int(cJSON_GetObjectItemCaseSensitive(e, "image_id"), -COCO_MAX_ID, COCO_MAX_ID, &image_id))
        return reject(why, cap, "image_id is missing or not an integer");
    const coco_image *im = find_image(s, image_id);
    if (!im) return reject(why, cap, "image_id %lld is no image's id", (long long)image_id);
    if (!json_int(cJSON_GetObjectItemCaseSensitive(e, "category_id"), INT_MIN, INT_MAX, &category_id))
        return reject(why, cap, "category_id is missing or not an integer");
    int k = find_class(s, category_id);
    if (k < 0) return reject(why, cap, "category_id %lld is no category's id", (long long)category_id);
    const cJSON *bbox = cJSON_GetObjectItemCaseSensitive(e, "bbox");
    if (!cJSON_IsArray(bbox) || array_size(bbox) != 4)
        return reject(why, cap, "bbox is not an array of 4 numbers");
    double v[4];
    int j = 0;
    for (const cJSON *c = bbox->child; c; c = c->next, j++) {
        if (!cJSON_IsNumber(c) || !(fabs(c->valuedouble) <= COCO_MAX_COORD))
            return reject(why, cap, "bbox value %d is not a finite number within +-2^24", j);
        v[j] = c->valuedouble;
    }
    if (!(v[2] > 0.0 && v[3] > 0.0))
        return reject(why, cap, "bbox width %g and height %g are not both positive", v[2], v[3]);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "iscrowd");
    if (cJSON_IsBool(c)) crowd = cJSON_IsTrue(c);
    else if (c && !json_int(c, 0, 1, &crowd)) return reject(why, cap, "iscrowd is not 0 or 1");
    const cJSON *area = cJSON_GetObjectItemCaseSensitive(e, "area");
    if (area && !(cJSON_IsNumber(area) && area->valuedouble >= 0.0 && area->valuedouble <= COCO_MAX_AREA))
        return reject(why, cap, "area is not a number in [0, 2^48]");
    *image = (size_t)(im - s->images);
    o->box = (gsq_box){(float)v[0], (float)v[1], (float)v[2], (float)v[3]};
    o->category = k;
    o->iscrowd = (int)crowd;
    o->area = area ? (float)area->valuedouble : o->box.w * o->box.h;
    return 1;
}

/* An annotation kept, before the grouping by image. */
typedef struct {
    size_t image;
    gsq_object obj;
} pending;

/* Notes annotation e (the i-th) as skipped for why. */
static void skip(coco_parse *p, const cJSON *e, size_t i, const char *why)
{
    if (!p->skips || p->skips->annotations++ > 0) return;
    int64_t id;
    char named[40] = "";
    if (json_int(cJSON_GetObjectItemCaseSensitive(e, "id"), -COCO_MAX_ID, COCO_MAX_ID, &id))
        snprintf(named, sizeof named, " (id %lld)", (long long)id);
    snprintf(p->skips->first, sizeof p->skips->first, GSQ_LBL ": annotation %zu%s skipped: %s", p->path, i, named,
             why);
}

/* Reads the annotations, skipping the malformed ones, and groups the others by image. */
static gsq_status read_annotations(coco_parse *p, const cJSON *arr, gsq_error *err)
{
    coco_set *s = p->set;
    size_t n = array_size(arr), kept = 0, i = 0;
    pending *all = n ? malloc(n * sizeof *all) : NULL;
    if (n && !all) return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for %zu annotations", p->path, n);
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        char why[160];
        pending *q = &all[kept];
        int ok = read_annotation(s, e, &q->image, &q->obj, why, sizeof why);
        if (ok && s->images[q->image].count == INT_MAX)
            ok = reject(why, sizeof why, "its image has %d annotations already", INT_MAX);
        if (!ok) {
            skip(p, e, i, why);
            continue;
        }
        s->images[q->image].count++;
        kept++;
    }
    s->objects = kept ? malloc(kept * sizeof *s->objects) : NULL;
    if (kept && !s->objects) {
        free(all);
        return gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for %zu annotations", p->path, kept);
    }
    size_t at = 0;
    for (size_t k = 0; k < s->n_images; k++) { /* first is each image's cursor while filling */
        s->images[k].first = at;
        at += (size_t)s->images[k].count;
    }
    for (size_t k = 0; k < kept; k++) s->objects[s->images[all[k].image].first++] = all[k].obj;
    for (size_t k = 0; k < s->n_images; k++) s->images[k].first -= (size_t)s->images[k].count;
    free(all);
    return GSQ_OK;
}

/* The array member `key` of the top-level object, or NULL after failing naming it. */
static const cJSON *member_array(const coco_parse *p, const cJSON *doc, const char *key, gsq_status *st,
                                 gsq_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, key);
    if (cJSON_IsArray(v)) return v;
    *st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": \"%s\" is %s, not an array", p->path, key,
                   v ? "of the wrong type" : "missing");
    return NULL;
}

/* Reads and checks the JSON file into the dataset. */
static gsq_status parse(coco_parse *p, gsq_error *err)
{
    unsigned char *data;
    size_t size;
    gsq_status st = gsq_read_file(p->path, &data, &size, err);
    if (st != GSQ_OK) return st;
    const char *text = data ? (const char *)data : "", *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    const cJSON *cats = NULL, *images = NULL, *anns = NULL;
    if (!doc)
        st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": not valid JSON (error near byte %zu of %zu)", p->path,
                      end && end >= text ? (size_t)(end - text) : 0, size);
    else if (!cJSON_IsObject(doc))
        st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": not a JSON object", p->path);
    if (st == GSQ_OK) cats = member_array(p, doc, "categories", &st, err);
    if (st == GSQ_OK) images = member_array(p, doc, "images", &st, err);
    if (st == GSQ_OK) anns = member_array(p, doc, "annotations", &st, err);
    if (st == GSQ_OK) st = read_categories(p, cats, err);
    if (st == GSQ_OK) st = read_images(p, images, err);
    if (st == GSQ_OK) st = read_annotations(p, anns, err);
    cJSON_Delete(doc);
    free(data);
    return st;
}

/* 1 when name stays inside the split's folder: not empty, not absolute, no ".." component. */
static int inside_folder(const char *name)
{
    if (!name[0] || name[0] == '/') return 0;
    for (const char *c = name; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
        c += n + (c[n] == '/');
    }
    return 1;
}

static gsq_status coco_get(gsq_dataset *ds, size_t index, gsq_sample *sample, gsq_error *err)
{
    coco_set *s = ds->impl;
    memset(sample, 0, sizeof *sample);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (%zu samples)", ds->name, index, ds->size);
    const coco_image *im = &s->images[index];
    if (!inside_folder(im->file_name))
        return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": image %lld's file_name \"%.200s\" leaves the folder",
                        s->image_dir, (long long)im->id, im->file_name);
    char path[GSQ_DATA_PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/%s", s->image_dir, im->file_name);
    if (len < 0 || len >= GSQ_DATA_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": image %lld's path is too long", s->image_dir, (long long)im->id);
    gsq_status st = gsq_image_load(path, &sample->image, err);
    int w = sample->image.width, h = sample->image.height;
    if (st == GSQ_OK && im->width && (im->width != w || im->height != h))
        st = gsq_fail(err, GSQ_ERR_SHAPE, GSQ_LBL " is %dx%d but its annotations say %dx%d", path, w, h, im->width,
                      im->height);
    if (st == GSQ_OK) st = gsq_objects_alloc(&sample->objects, im->id, w, h, im->count, err);
    if (st == GSQ_OK && im->count) memcpy(sample->objects.objects, s->objects + im->first,
                                          (size_t)im->count * sizeof *s->objects);
    if (st != GSQ_OK) gsq_sample_free(sample);
    return st;
}

/* GSQ_ERR_MISSING naming path unless it is a directory (want_dir) or a regular file. */
static gsq_status check_path(const char *path, int want_dir, gsq_error *err)
{
    struct stat sb;
    const char *wrong = NULL;
    if (stat(path, &sb) != 0) wrong = strerror(errno);
    else if (want_dir && !S_ISDIR(sb.st_mode)) wrong = "not a directory";
    else if (!want_dir && !S_ISREG(sb.st_mode)) wrong = "not a file";
    if (!wrong) return GSQ_OK;
    return gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": %s (the COCO layout is ROOT/annotations/instances_SPLIT.json "
                    "with the images in ROOT/SPLIT)", path, wrong);
}

gsq_status gsq_dataset_coco(gsq_dataset **out, const char *root, const char *split, gsq_coco_skips *skips,
                            gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_coco: NULL output");
    *out = NULL;
    if (skips) memset(skips, 0, sizeof *skips);
    if (!root || !root[0]) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_coco: no root folder");
    if (!split || !split[0]) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_coco: no split (val2017, say)");
    int len = (int)strnlen(root, GSQ_DATA_PATH_MAX);
    while (len > 1 && root[len - 1] == '/') len--;
    char json[GSQ_DATA_PATH_MAX], dir[GSQ_DATA_PATH_MAX];
    int a = snprintf(json, sizeof json, "%.*s/annotations/instances_%s.json", len, root, split);
    int b = snprintf(dir, sizeof dir, "%.*s/%s", len, root, split);
    if (a < 0 || a >= GSQ_DATA_PATH_MAX || b < 0 || b >= GSQ_DATA_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_coco: " GSQ_LBL ": path too long", root);
    coco_set *s = calloc(1, sizeof *s);
    if (!s || !(s->image_dir = strdup(dir))) {
        free(s);
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_coco: out of memory");
    }
    gsq_dataset *ds = &s->ds;
    ds->impl = s;
    ds->task = GSQ_TASK_DETECT;
    ds->get = coco_get;
    ds->destroy = coco_destroy;
    snprintf(ds->name, sizeof ds->name, "coco:%.*s/%s", len, root, split);
    coco_parse p = {json, s, skips};
    gsq_status st = check_path(json, 0, err);
    if (st == GSQ_OK) st = check_path(dir, 1, err);
    if (st == GSQ_OK) st = parse(&p, err);
    if (st != GSQ_OK) {
        coco_destroy(ds);
        return st;
    }
    *out = ds;
    return GSQ_OK;
}
