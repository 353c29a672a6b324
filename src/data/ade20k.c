/* Segmentation datasets in the ADE20K layout (mmsegmentation's ADE20KDataset):
 * root/images/SPLIT/NAME.{jpg,jpeg,png} (any case) paired with root/annotations/SPLIT/NAME.png.
 * The scan happens once, at open: the images are the regular, non-hidden files, sorted by name;
 * those without an annotation are left out and counted. get() decodes a pair and maps the
 * annotation's values: 0 is ignored, v in 1..K is class v - 1, anything above K fails. The
 * writer stores any segmentation dataset in the same layout (NNNNNN.jpg and NNNNNN.png). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image_decode.h"
#include "gpusq/atomic_file.h"

/* Messages naming two paths clip each to this, so that both fit. */
#define PATH2 "%.200s"
#define JPEG_QUALITY 95

typedef struct {
    gsq_dataset ds;              /* first, so destroy frees the whole block */
    char *image_dir, *label_dir; /* root/images/SPLIT, root/annotations/SPLIT */
    char **names;                /* per sample: its image's file name */
    size_t listed;               /* names held (the samples; while scanning, all listed) */
} ade_set;

static void ade_destroy(gsq_dataset *ds)
{
    ade_set *s = ds->impl;
    gsq_free_names(s->names, s->listed);
    free(s->image_dir);
    free(s->label_dir);
    free(s);
}

/* "root/mid/split" in a new string; NULL when out of memory. */
static char *join_path(const char *root, const char *mid, const char *split)
{
    size_t n = strlen(root) + strlen(mid) + strlen(split) + 3;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s/%s", root, mid, split);
    return p;
}

/* The annotation of image `name`: label_dir/STEM.png in out (GSQ_DATA_PATH_MAX bytes); 0 when
 * it does not fit. */
static int annotation_path(const ade_set *s, const char *name, char *out)
{
    const char *dot = strrchr(name, '.'); /* image names have one */
    int len = snprintf(out, GSQ_DATA_PATH_MAX, "%s/%.*s.png", s->label_dir, (int)(dot - name),
                       name);
    return len >= 0 && len < GSQ_DATA_PATH_MAX;
}

/* Turns an annotation's values into classes in place: 0 is ignored, v in 1..num_classes is class
 * v - 1, and a larger value is an error naming path. */
static gsq_status values_to_classes(gsq_label_map *map, int num_classes, const char *path,
                                    gsq_error *err)
{
    size_t n = (size_t)map->width * (size_t)map->height;
    for (size_t i = 0; i < n; i++) {
        int v = map->labels[i];
        if (v > num_classes)
            return gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": value %d at pixel (%zu, %zu) is above "
                            "the %d classes (0 is ignored, 1..%d are classes 0..%d)", path, v,
                            i % (size_t)map->width, i / (size_t)map->width, num_classes,
                            num_classes, num_classes - 1);
        map->labels[i] = (int16_t)(v == 0 ? GSQ_IGNORE_LABEL : v - 1);
    }
    return GSQ_OK;
}

/* Reads the annotation at path into *map as classes. */
static gsq_status load_labels(const char *path, int num_classes, gsq_label_map *map,
                              gsq_error *err)
{
    unsigned char *data;
    size_t size;
    gsq_status st = gsq_read_file(path, &data, &size, err);
    if (st != GSQ_OK) return st;
    st = gsq_label_png_decode(data, size, path, map, err);
    free(data);
    if (st == GSQ_OK) st = values_to_classes(map, num_classes, path, err);
    if (st != GSQ_OK) gsq_label_map_free(map);
    return st;
}

static gsq_status ade_get(gsq_dataset *ds, size_t index, gsq_sample *sample, gsq_error *err)
{
    ade_set *s = ds->impl;
    memset(sample, 0, sizeof *sample);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (%zu samples)", ds->name,
                        index, ds->size);
    char image[GSQ_DATA_PATH_MAX], labels[GSQ_DATA_PATH_MAX]; /* fit: checked by the scan */
    snprintf(image, sizeof image, "%s/%s", s->image_dir, s->names[index]);
    annotation_path(s, s->names[index], labels);
    gsq_status st = gsq_image_load(image, &sample->image, err);
    if (st == GSQ_OK) st = load_labels(labels, ds->num_classes, &sample->map, err);
    const gsq_image *im = &sample->image;
    const gsq_label_map *map = &sample->map;
    if (st == GSQ_OK && (im->width != map->width || im->height != map->height))
        st = gsq_fail(err, GSQ_ERR_SHAPE, PATH2 " is %dx%d but its annotation " PATH2 " is %dx%d",
                      image, im->width, im->height, labels, map->width, map->height);
    if (st != GSQ_OK) gsq_sample_free(sample);
    return st;
}

/* GSQ_ERR_MISSING naming dir unless it is a directory (GSQ_ERR_IO when it cannot be told). */
static gsq_status check_dir(const char *dir, gsq_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return GSQ_OK;
        return gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": not a directory", dir);
    }
    if (errno != ENOENT && errno != ENOTDIR)
        return gsq_fail(err, GSQ_ERR_IO, GSQ_LBL ": cannot stat: %s", dir, strerror(errno));
    return gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": no such directory (the ADE20K layout is "
                    "ROOT/images/SPLIT/NAME.jpg with ROOT/annotations/SPLIT/NAME.png)", dir);
}

/* 1 when the annotation at path is a regular file (links followed). */
static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Lists the images and keeps those with an annotation, in order, at the front of s->names; the
 * others are counted in *unpaired and freed. */
static gsq_status scan(ade_set *s, size_t *unpaired, gsq_error *err)
{
    gsq_status st = gsq_list_dir(s->image_dir, 0, gsq_is_image_name, &s->names, &s->listed, err);
    if (st != GSQ_OK) return st;
    size_t kept = 0;
    const char *first = NULL; /* the first image left out */
    char labels[GSQ_DATA_PATH_MAX];
    for (size_t i = 0; i < s->listed; i++) {
        char *name = s->names[i];
        if (!annotation_path(s, name, labels))
            return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL "/%.100s: annotation path too long",
                            s->label_dir, name);
        if (is_file(labels)) { /* swapped, so names still holds every name until the end */
            s->names[i] = s->names[kept];
            s->names[kept++] = name;
        } else if (!first) {
            first = name;
        }
    }
    *unpaired = s->listed - kept;
    if (kept == 0 && !first)
        st = gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": no images (*.jpg, *.jpeg, *.png)",
                      s->image_dir);
    if (kept == 0 && first) {
        annotation_path(s, first, labels);
        st = gsq_fail(err, GSQ_ERR_MISSING, "%.150s: none of its %zu images has an annotation "
                      "(the first, %.80s, has no " PATH2 ")", s->image_dir, s->listed, first,
                      labels);
    }
    for (size_t i = kept; i < s->listed; i++) free(s->names[i]);
    s->listed = kept;
    s->ds.size = kept;
    return st;
}

gsq_status gsq_dataset_ade20k(gsq_dataset **out, const char *root, const char *split,
                              int num_classes, size_t *unpaired, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_ade20k: NULL output");
    *out = NULL;
    size_t left_out = 0;
    if (unpaired) *unpaired = 0;
    if (!root || !root[0]) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_ade20k: no root folder");
    if (!split || !split[0])
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_ade20k: no split (training or validation)");
    if (num_classes < 1 || num_classes > INT16_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_ade20k: %d classes (1 to %d)", num_classes,
                        INT16_MAX);
    ade_set *s = calloc(1, sizeof *s);
    if (!s) return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_ade20k: out of memory");
    gsq_dataset *ds = &s->ds;
    ds->impl = s;
    ds->task = GSQ_TASK_SEGMENT;
    ds->num_classes = num_classes;
    ds->get = ade_get;
    ds->destroy = ade_destroy;
    size_t len = strlen(root);
    while (len > 1 && root[len - 1] == '/') len--;
    snprintf(ds->name, sizeof ds->name, "ade20k:%.*s/%s", (int)len, root, split);
    char *trimmed = strndup(root, len);
    s->image_dir = trimmed ? join_path(trimmed, "images", split) : NULL;
    s->label_dir = trimmed ? join_path(trimmed, "annotations", split) : NULL;
    free(trimmed);
    gsq_status st = s->image_dir && s->label_dir
                        ? GSQ_OK
                        : gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_ade20k: out of memory");
    if (st == GSQ_OK) st = check_dir(s->image_dir, err);
    if (st == GSQ_OK) st = check_dir(s->label_dir, err);
    if (st == GSQ_OK) st = scan(s, &left_out, err);
    if (unpaired) *unpaired = left_out;
    if (st != GSQ_OK) {
        ade_destroy(ds);
        return st;
    }
    *out = ds;
    return GSQ_OK;
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The annotation values of map (class + 1, ignored 0) in a new buffer; classes above 254 do not
 * fit 8 bits. */
static gsq_status annotation_values(const gsq_label_map *map, const char *what, uint8_t **out,
                                    gsq_error *err)
{
    size_t n = (size_t)map->width * (size_t)map->height;
    uint8_t *v = malloc(n);
    if (!v) return gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < n; i++) {
        int k = map->labels[i];
        if (k != GSQ_IGNORE_LABEL && (k < 0 || k > UINT8_MAX - 1)) {
            free(v);
            return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "%s: class %d at pixel (%zu, %zu) does not "
                            "fit an 8-bit annotation (classes 0..%d, or ignored)", what, k,
                            i % (size_t)map->width, i / (size_t)map->width, UINT8_MAX - 1);
        }
        v[i] = (uint8_t)(k + 1);
    }
    *out = v;
    return GSQ_OK;
}

/* Writes map to path as an 8-bit gray ADE20K annotation, atomically; what names the sample. */
static gsq_status write_annotation(const gsq_label_map *map, const char *what, const char *path,
                                   gsq_error *err)
{
    uint8_t *values = NULL;
    gsq_status st = annotation_values(map, what, &values, err);
    if (st != GSQ_OK) return st;
    st = gsq_png_write(path, values, map->width, map->height, 1, err);
    free(values);
    return st;
}

/* Writes sample index of ds as DIR/NNNNNN.jpg and .png (digits wide) in the two folders. */
static gsq_status write_sample(gsq_dataset *ds, size_t index, const char *image_dir,
                               const char *label_dir, int digits, gsq_error *err)
{
    char image[GSQ_DATA_PATH_MAX], labels[GSQ_DATA_PATH_MAX], what[160];
    int a = snprintf(image, sizeof image, "%s/%0*zu.jpg", image_dir, digits, index);
    int b = snprintf(labels, sizeof labels, "%s/%0*zu.png", label_dir, digits, index);
    if (a < 0 || a >= GSQ_DATA_PATH_MAX || b < 0 || b >= GSQ_DATA_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL ": path too long", label_dir);
    snprintf(what, sizeof what, "%.100s sample %zu", ds->name, index);
    gsq_sample s;
    gsq_status st = ds->get(ds, index, &s, err);
    if (st != GSQ_OK) return st;
    if (!s.map.labels || s.map.width != s.image.width || s.map.height != s.image.height)
        st = gsq_fail(err, GSQ_ERR_SHAPE, "%s: label map %dx%d for an image of %dx%d", what,
                      s.map.width, s.map.height, s.image.width, s.image.height);
    if (st == GSQ_OK) st = gsq_jpeg_write(image, &s.image, JPEG_QUALITY, err);
    if (st == GSQ_OK) st = write_annotation(&s.map, what, labels, err);
    gsq_sample_free(&s);
    return st;
}

gsq_status gsq_dataset_write_ade20k(gsq_dataset *ds, const char *root, const char *split,
                                    gsq_error *err)
{
    if (!ds || !ds->get) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_write_ade20k: no dataset");
    if (ds->task != GSQ_TASK_SEGMENT)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: a %s dataset, not a segmentation one: only label "
                        "maps make ADE20K annotations", ds->name, gsq_task_name(ds->task));
    if (!root || !root[0] || !split || !split[0])
        return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_write_ade20k: no root folder or split");
    char *image_dir = join_path(root, "images", split);
    char *label_dir = join_path(root, "annotations", split);
    gsq_status st = image_dir && label_dir
                        ? GSQ_OK
                        : gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_write_ade20k: out of memory");
    if (st == GSQ_OK) st = gsq_output_prepare_dir(image_dir, err);
    if (st == GSQ_OK) st = gsq_output_prepare_dir(label_dir, err);
    int digits = 6; /* enough for the largest index */
    for (size_t m = ds->size ? ds->size - 1 : 0; m >= 1000000; m /= 10) digits++;
    for (size_t i = 0; i < ds->size && st == GSQ_OK; i++)
        st = write_sample(ds, i, image_dir, label_dir, digits, err);
    free(image_dir);
    free(label_dir);
    return st;
}
