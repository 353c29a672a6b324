/* libFuzzer harness for the COCO layout reader (gsq_dataset_coco) and the detection transforms:
 * the input is a small directory tree (tests/fuzz/fuzz_tree.h) made in a fresh temporary
 * directory and opened as split "val". From the tree it made, the harness knows when the open
 * must fail: an error naming the tree when annotations/instances_val.json is not a file or val
 * not a directory that the tree made. Otherwise the annotation file's JSON may fail the open (an
 * error naming the tree, no dataset) or give a dataset whose categories are sorted by distinct id
 * and named, whose images' ids increase, with any skipped annotation counted and the first named;
 * every sample either fails naming a file of the tree with nothing kept, or gives an image with
 * objects of its size: classes in range, finite positive boxes within ±2^24, crowd 0 or 1, finite
 * non-negative areas. Each sample then goes through the detection transforms, eval and train,
 * whose targets must lie inside the input. Built with -DGSQ_FUZZ_MAKE_SEEDS instead, it writes
 * seed trees of a tiny valid layout and of broken ones: fuzz_coco_seeds DIR. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tree.h"
#include "gpusq/data.h"

#define JSON_PATH "annotations/instances_val.json"
#define IMAGES "val"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when the tree made path as a directory (want_dir) or a file. */
static int made(const gsq_tree *t, const char *path, int want_dir)
{
    const gsq_tree_node *node = gsq_tree_find(t, path);
    return node && node->is_dir == want_dir;
}

/* Targets of an input: classes in range, boxes inside it with a positive size. */
static void check_targets(const gsq_targets *tg, int classes)
{
    if (tg->count < 0 || tg->count > GSQ_DETECT_MAX_TARGETS) abort();
    for (int i = 0; i < tg->count; i++) {
        const gsq_nbox *b = &tg->boxes[i];
        if (tg->classes[i] < 0 || tg->classes[i] >= classes || !(b->w > 0.0f && b->h > 0.0f) ||
            !(b->cx - b->w / 2 > -1e-5f && b->cx + b->w / 2 < 1 + 1e-5f) ||
            !(b->cy - b->h / 2 > -1e-5f && b->cy + b->h / 2 < 1 + 1e-5f))
            abort();
    }
}

/* Reads sample i: an error naming the tree with nothing kept (returns 0), or an image with
 * well-formed objects, which the transforms then take (returns 1, its image id in *id). */
static int check_sample(gsq_dataset *ds, size_t i, const char *root, int64_t *id)
{
    gsq_sample s;
    gsq_error err = {0};
    if (ds->get(ds, i, &s, &err) != GSQ_OK) {
        if (s.image.pixels || s.objects.objects || s.objects.count || err.code == GSQ_OK || !strstr(err.msg, root))
            abort();
        return 0;
    }
    const gsq_objects *o = &s.objects;
    if (!s.image.pixels || o->width != s.image.width || o->height != s.image.height || o->count < 0 ||
        (o->count > 0 && !o->objects))
        abort();
    for (int k = 0; k < o->count; k++) {
        const gsq_object *b = &o->objects[k];
        if (b->category < 0 || b->category >= ds->num_classes || !(b->box.w > 0.0f && b->box.h > 0.0f) ||
            !(fabsf(b->box.x) <= 16777216.0f && fabsf(b->box.y) <= 16777216.0f && b->box.w <= 16777216.0f &&
              b->box.h <= 16777216.0f) ||
            (b->iscrowd != 0 && b->iscrowd != 1) || !(b->area >= 0.0f && isfinite(b->area)))
            abort();
    }
    gsq_transform t;
    gsq_transform_detect_defaults(&t, 8);
    float out[3 * 8 * 8];
    gsq_targets tg;
    if (gsq_transform_detect_eval(&t, &s.image, o, out, &tg, &err) != GSQ_OK) abort();
    check_targets(&tg, ds->num_classes);
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, i);
    if (gsq_transform_detect_train(&t, &s.image, o, &rng, out, &tg, &err) != GSQ_OK) abort();
    check_targets(&tg, ds->num_classes);
    *id = o->image_id;
    gsq_sample_free(&s);
    return 1;
}

/* Checks an opened dataset: its classes and images in order, every sample readable or named. */
static void check_dataset(gsq_dataset *ds, const gsq_coco_skips *skips, const char *root)
{
    if (ds->task != GSQ_TASK_DETECT || ds->num_classes < 1 || !ds->class_names || !ds->category_ids ||
        ds->size < 1 || !ds->get || !ds->destroy)
        abort();
    for (int c = 0; c < ds->num_classes; c++)
        if (!ds->class_names[c] || (c > 0 && ds->category_ids[c] <= ds->category_ids[c - 1])) abort();
    if (skips->annotations > 0 && !strstr(skips->first, root)) abort();
    int64_t id, last = 0;
    int seen = 0;
    for (size_t i = 0; i < ds->size; i++) {
        if (!check_sample(ds, i, root, &id)) continue;
        if (seen && id <= last) abort(); /* sorted by id, each once */
        last = id;
        seen = 1;
    }
    gsq_sample s;
    gsq_error err;
    if (ds->get(ds, ds->size, &s, &err) != GSQ_ERR_ARG || s.image.pixels || s.objects.objects) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_tree *t = gsq_tree_of_input(data, size);
    if (!t) return -1;
    int layout = made(t, JSON_PATH, 0) && made(t, IMAGES, 1);
    gsq_dataset *ds = NULL;
    gsq_error err = {0};
    gsq_coco_skips skips;
    gsq_status st = gsq_dataset_coco(&ds, t->root, IMAGES, &skips, &err);
    if ((st == GSQ_OK) != (ds != NULL) || (!layout && st != GSQ_ERR_MISSING)) abort();
    if (st != GSQ_OK && !strstr(err.msg, t->root)) abort();
    if (ds) check_dataset(ds, &skips, t->root);
    gsq_dataset_free(ds);
    gsq_tree_clear(t);
    return 0;
}

#else

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    size_t jpg_n;
    char *jpg = gsq_tree_seed_jpeg(3, 2, &jpg_n);
    static const char valid[] =
        "{\"categories\": [{\"id\": 18, \"name\": \"dog\"}, {\"id\": 1, \"name\": \"person\"}],"
        " \"images\": [{\"id\": 42, \"file_name\": \"a.jpg\", \"width\": 3, \"height\": 2},"
        " {\"id\": 7, \"file_name\": \"sub/b.jpg\"}, {\"id\": 9, \"file_name\": \"gone.jpg\"},"
        " {\"id\": 11, \"file_name\": \"../a.jpg\"}],"
        " \"annotations\": [{\"id\": 1, \"image_id\": 42, \"category_id\": 18, \"bbox\": [0.5, 0, 2, 1.5],"
        " \"area\": 2.5, \"iscrowd\": 0}, {\"id\": 2, \"image_id\": 42, \"category_id\": 1, \"bbox\": [0, 0, 3, 2],"
        " \"iscrowd\": 1}, {\"id\": 3, \"image_id\": 7, \"category_id\": 1, \"bbox\": [-1, 1, 9, 9]},"
        " {\"id\": 4, \"image_id\": 8, \"category_id\": 1, \"bbox\": [0, 0, 1, 1]},"
        " {\"id\": 5, \"image_id\": 42, \"category_id\": 18, \"bbox\": [0, 0, 0, 1]}]}";
    static const char broken[] =
        "{\"categories\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 1, \"name\": \"b\"}],"
        " \"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}], \"annotations\": []}";
    int bad = 0;
    FILE *f = gsq_tree_seed_open(argv[1], "valid.tree"); /* a tiny valid layout with skips and failures */
    if (f) {
        gsq_tree_seed_entry(f, JSON_PATH, valid, strlen(valid));
        gsq_tree_seed_entry(f, IMAGES "/a.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, IMAGES "/sub/b.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, "a.jpg", jpg, jpg_n);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "broken.tree"); /* duplicate category ids */
    if (f) {
        gsq_tree_seed_entry(f, JSON_PATH, broken, strlen(broken));
        gsq_tree_seed_entry(f, IMAGES "/a.jpg", jpg, jpg_n);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "no_images.tree"); /* the split's folder missing */
    if (f) {
        gsq_tree_seed_entry(f, JSON_PATH, valid, strlen(valid));
        gsq_tree_seed_entry(f, "train/a.jpg", jpg, jpg_n);
        bad |= fclose(f) != 0;
    }
    free(jpg);
    return bad;
}

#endif
