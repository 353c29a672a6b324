/* ImageFolder datasets: root/<class>/<image>. Class folders are sorted by name (byte order, as
 * Python's sorted()) and numbered from 0; images are the regular files named *.jpg, *.jpeg or
 * *.png (any case) directly inside a class folder, sorted by name; names starting with '.' are
 * skipped. The scan happens once, at open; get() reads and decodes one file. Samples keep only
 * their file name (an offset into one pool) and find their class by binary search. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_decode.h"

typedef struct {
    gsq_dataset ds;       /* first, so destroy frees the whole block */
    char *root;
    size_t *class_start;  /* num_classes + 1 entries: class c owns samples [start[c], start[c+1]) */
    size_t *name_off;     /* per sample: its file name in pool */
    char *pool;
    size_t pool_len, pool_cap, samples_cap;
} folder_set;

static void folder_destroy(gsq_dataset *ds)
{
    folder_set *s = ds->impl;
    if (ds->class_names)
        for (int c = 0; c < ds->num_classes; c++) free(ds->class_names[c]);
    free(ds->class_names);
    free(s->class_start);
    free(s->name_off);
    free(s->pool);
    free(s->root);
    free(s);
}

static gsq_status folder_get(gsq_dataset *ds, size_t index, gsq_sample *sample, gsq_error *err)
{
    folder_set *s = ds->impl;
    memset(sample, 0, sizeof *sample);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (%zu samples)", ds->name,
                        index, ds->size);
    int lo = 0, hi = ds->num_classes - 1; /* the last class whose start is <= index */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (s->class_start[mid] <= index) lo = mid; else hi = mid - 1;
    }
    char path[GSQ_DATA_PATH_MAX]; /* fits: checked when the folder was scanned */
    snprintf(path, sizeof path, "%s/%s/%s", s->root, ds->class_names[lo],
             s->pool + s->name_off[index]);
    gsq_status st = gsq_image_load(path, &sample->image, err);
    if (st == GSQ_OK) sample->label = lo;
    return st;
}

/* Appends the images of class folder root/cls to the sample list. */
static gsq_status add_class(folder_set *s, const char *cls, gsq_error *err)
{
    char dir[GSQ_DATA_PATH_MAX];
    int len = snprintf(dir, sizeof dir, "%s/%s", s->root, cls);
    if (len < 0 || len >= GSQ_DATA_PATH_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, GSQ_LBL "/%.100s: path too long", s->root, cls);
    char **files;
    size_t n;
    gsq_status st = gsq_list_dir(dir, 0, gsq_is_image_name, &files, &n, err);
    for (size_t i = 0; i < n && st == GSQ_OK; i++) {
        size_t flen = strlen(files[i]) + 1;
        char *pool = gsq_reserve(s->pool, &s->pool_cap, s->pool_len + flen, 1);
        if (pool) s->pool = pool;
        size_t *off = gsq_reserve(s->name_off, &s->samples_cap, s->ds.size + 1, sizeof *off);
        if (off) s->name_off = off;
        if (!pool || !off) {
            st = gsq_fail(err, GSQ_ERR_NOMEM, GSQ_LBL ": out of memory for the file list", s->root);
            break;
        }
        memcpy(s->pool + s->pool_len, files[i], flen);
        s->name_off[s->ds.size++] = s->pool_len;
        s->pool_len += flen;
    }
    gsq_free_names(files, n);
    return st;
}

gsq_status gsq_dataset_folder(gsq_dataset **out, const char *root, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_folder: NULL output");
    *out = NULL;
    if (!root || !root[0]) return gsq_fail(err, GSQ_ERR_ARG, "gsq_dataset_folder: no root folder");
    folder_set *s = calloc(1, sizeof *s);
    if (!s) return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_folder: out of memory");
    gsq_dataset *ds = &s->ds;
    ds->impl = s;
    ds->get = folder_get;
    ds->destroy = folder_destroy;
    gsq_status st = GSQ_OK;
    if (!(s->root = strdup(root)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_folder: out of memory");
    if (st == GSQ_OK) {
        size_t len = strlen(s->root);
        while (len > 1 && s->root[len - 1] == '/') s->root[--len] = '\0';
        snprintf(ds->name, sizeof ds->name, "folder:%s", s->root);
    }
    char **classes = NULL;
    size_t nc = 0;
    if (st == GSQ_OK) st = gsq_list_dir(s->root, 1, NULL, &classes, &nc, err);
    ds->class_names = classes;
    ds->num_classes = (int)(nc < INT_MAX ? nc : INT_MAX);
    if (st == GSQ_OK && nc == 0)
        st = gsq_fail(err, GSQ_ERR_MISSING, GSQ_LBL ": no class folders", s->root);
    if (st == GSQ_OK && nc >= INT_MAX)
        st = gsq_fail(err, GSQ_ERR_FORMAT, GSQ_LBL ": too many class folders", s->root);
    if (st == GSQ_OK && !(s->class_start = malloc((nc + 1) * sizeof *s->class_start)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "gsq_dataset_folder: out of memory");
    for (size_t c = 0; c < nc && st == GSQ_OK; c++) {
        s->class_start[c] = ds->size;
        st = add_class(s, classes[c], err);
    }
    if (st == GSQ_OK) s->class_start[nc] = ds->size;
    if (st == GSQ_OK && ds->size == 0)
        st = gsq_fail(err, GSQ_ERR_MISSING,
                      GSQ_LBL ": no images (*.jpg, *.jpeg, *.png) in its %zu class folders",
                      s->root, nc);
    if (st != GSQ_OK) {
        folder_destroy(ds);
        return st;
    }
    *out = ds;
    return GSQ_OK;
}
