/* The --data argument shared by train, eval and run: synthetic, cifar:DIR or folder:DIR for
 * classification, synthetic-segment or ade20k:DIR for segmentation, synthetic-detect or coco:DIR
 * for detection, opened as a training and a validation dataset. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

gsq_task cli_data_task(const char *spec)
{
    if (strcmp(spec, "synthetic-detect") == 0 || strncmp(spec, "coco:", 5) == 0) return GSQ_TASK_DETECT;
    return strcmp(spec, "synthetic-segment") == 0 || strncmp(spec, "ade20k:", 7) == 0 ? GSQ_TASK_SEGMENT
                                                                                       : GSQ_TASK_CLASSIFY;
}

/* The first of the splits (NULL-terminated) whose annotations root/annotations/instances_SPLIT.json exist, or NULL. */
static const char *coco_split(const char *root, const char *const *splits)
{
    struct stat sb;
    for (; *splits; splits++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/annotations/instances_%s.json", root, *splits);
        if (stat(path, &sb) == 0) return *splits;
    }
    return NULL;
}

/* The COCO layout's split (printing what it skipped), into *out. */
static gsq_status open_coco(const char *root, const char *split, gsq_dataset **out, gsq_error *err)
{
    gsq_coco_skips skips = {0};
    gsq_status st = gsq_dataset_coco(out, root, split, &skips, err);
    if (st == GSQ_OK && skips.annotations)
        fprintf(stderr, "%s: %zu malformed annotations skipped; the first: %s\n", (*out)->name, skips.annotations,
                skips.first);
    return st;
}

/* DIR/annotations/instances_{train2017,train}.json and, when present, instances_{val2017,val}.json. */
static gsq_status open_coco_splits(const char *root, gsq_dataset **train, gsq_dataset **val, gsq_error *err)
{
    static const char *const trains[] = {"train2017", "train", NULL}, *const vals[] = {"val2017", "val", NULL};
    const char *t = coco_split(root, trains), *v = coco_split(root, vals);
    if (!t && !v)
        return gsq_fail(err, GSQ_ERR_IO, "coco:%s: no annotations/instances_train2017.json (or instances_train.json, "
                        "instances_val2017.json, instances_val.json)", root);
    gsq_status st = open_coco(root, t ? t : v, train, err);
    if (st == GSQ_OK && t && v) st = open_coco(root, v, val, err);
    return st;
}

gsq_status cli_open_data(const char *spec, const cli_data_sizes *sizes, gsq_dataset **train,
                         gsq_dataset **val, gsq_error *err)
{
    *train = *val = NULL;
    gsq_status st;
    if (strcmp(spec, "synthetic-segment") == 0) {
        st = gsq_dataset_synthetic_segment(train, sizes->train_size, sizes->resolution, sizes->seed, 0, err);
        if (st == GSQ_OK)
            st = gsq_dataset_synthetic_segment(val, sizes->val_size, sizes->resolution, sizes->seed, 1, err);
    } else if (strncmp(spec, "ade20k:", 7) == 0) { /* DIR/images/training and, when present, validation */
        int classes = sizes->classes ? sizes->classes : CLI_ADE20K_CLASSES;
        char sub[4096];
        st = gsq_dataset_ade20k(train, spec + 7, "training", classes, NULL, err);
        snprintf(sub, sizeof sub, "%s/images/validation", spec + 7);
        if (st == GSQ_OK && is_dir(sub)) st = gsq_dataset_ade20k(val, spec + 7, "validation", classes, NULL, err);
    } else if (strcmp(spec, "synthetic-detect") == 0) {
        st = gsq_dataset_synthetic_detect(train, sizes->train_size, sizes->resolution, sizes->seed, 0, err);
        if (st == GSQ_OK)
            st = gsq_dataset_synthetic_detect(val, sizes->val_size, sizes->resolution, sizes->seed, 1, err);
    } else if (strncmp(spec, "coco:", 5) == 0) {
        st = open_coco_splits(spec + 5, train, val, err);
    } else if (strcmp(spec, "synthetic") == 0) {
        st = gsq_dataset_synthetic(train, sizes->train_size, sizes->resolution, sizes->seed, 0, err);
        if (st == GSQ_OK) st = gsq_dataset_synthetic(val, sizes->val_size, sizes->resolution, sizes->seed, 1, err);
    } else if (strncmp(spec, "cifar:", 6) == 0) {
        st = gsq_dataset_cifar(train, spec + 6, 1, err);
        if (st == GSQ_OK) st = gsq_dataset_cifar(val, spec + 6, 0, err);
    } else if (strncmp(spec, "folder:", 7) == 0) {
        /* ImageNet layout DIR/train/CLASS and DIR/val/CLASS, or DIR/CLASS as a training set alone */
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/train", spec + 7);
        if (is_dir(sub)) {
            st = gsq_dataset_folder(train, sub, err);
            snprintf(sub, sizeof sub, "%s/val", spec + 7);
            if (st == GSQ_OK && is_dir(sub)) st = gsq_dataset_folder(val, sub, err);
        } else {
            st = gsq_dataset_folder(train, spec + 7, err);
        }
    } else {
        return gsq_fail(err, GSQ_ERR_ARG, "unknown --data '%s' (synthetic, cifar:DIR, folder:DIR, synthetic-segment, "
                        "ade20k:DIR, synthetic-detect or coco:DIR)", spec);
    }
    if (st != GSQ_OK) {
        gsq_dataset_free(*train);
        gsq_dataset_free(*val);
        *train = *val = NULL;
    }
    return st;
}
