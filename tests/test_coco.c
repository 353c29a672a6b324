/* COCO-layout datasets (gsq_dataset_coco, gsq_dataset_write_coco): a valid layout read back
 * (categories with non-contiguous ids sorted into classes, images sorted by id, a file in a
 * sub-folder, crowd regions, a missing area taken as w·h, an image without annotations kept),
 * each kind of malformed annotation skipped, counted and named, malformed files refused naming
 * them, images that fail in get (missing, undecodable, of another size, outside the folder) also
 * through the loader, and a write → read round trip of the synthetic detection data and of an
 * in-memory dataset with crowd regions, fractional boxes and its own ids. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpusq/data.h"
#include "gpusq/loader.h"
#include "test_util.h"
#include "tree_files.h"

static void write_text(const char *rel, const char *text) { write_file(rel, text, strlen(text)); }

static uint8_t pixel(int x, int y, int c, int seed) { return (uint8_t)(x * 11 + y * 7 + c * 50 + seed * 3); }

/* A w×h PNG of pixel(..., seed) at tmp_dir/rel. */
static void write_png(const char *rel, int w, int h, int seed)
{
    gsq_image img;
    gsq_error err;
    if (gsq_image_alloc(&img, w, h, &err) != GSQ_OK) abort();
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) img.pixels[(y * w + x) * 3 + c] = pixel(x, y, c, seed);
    char path[512];
    path_of(path, sizeof path, rel);
    if (gsq_image_save_png(&img, path, &err) != GSQ_OK) abort();
    gsq_image_free(&img);
}

static gsq_dataset *open_coco(const char *rel, gsq_coco_skips *skips, gsq_status want, const char *word)
{
    char root[512];
    path_of(root, sizeof root, rel);
    gsq_dataset *ds = NULL;
    gsq_error err = {0};
    gsq_status st = gsq_dataset_coco(&ds, root, "val", skips, &err);
    CHECK(st == want && (st == GSQ_OK) == (ds != NULL), "%s: status %d (want %d): %s", rel, st, want, err.msg);
    if (st != GSQ_OK) CHECK(strstr(err.msg, rel) && (!word || strstr(err.msg, word)), "%s: message lacks '%s': %s",
                            rel, word ? word : rel, err.msg);
    return ds;
}

static int same_object(const gsq_object *o, float x, float y, float w, float h, int cls, int crowd, float area)
{
    return o->box.x == x && o->box.y == y && o->box.w == w && o->box.h == h && o->category == cls &&
           o->iscrowd == crowd && o->area == area;
}

/* ---- a valid layout --------------------------------------------------------------------- */

static const char *valid_json =
    "{\"info\": {\"year\": 2017}, \"licenses\": [],"
    " \"categories\": [{\"id\": 90, \"name\": \"zebra\", \"supercategory\": \"animal\"},"
    "  {\"id\": 1, \"name\": \"person\"}, {\"id\": 18, \"name\": \"dog\"}],"
    " \"images\": [{\"id\": 42, \"file_name\": \"a.png\", \"width\": 9, \"height\": 6},"
    "  {\"id\": 7, \"file_name\": \"sub/b.png\", \"width\": 5, \"height\": 8},"
    "  {\"id\": 100, \"file_name\": \"c.png\"}],"
    " \"annotations\": [{\"id\": 1, \"image_id\": 42, \"category_id\": 18, \"bbox\": [1, 2, 3, 4], \"area\": 5.5,"
    "   \"iscrowd\": 0, \"segmentation\": [[1, 2, 3, 4, 5, 6]]},"
    "  {\"id\": 2, \"image_id\": 7, \"category_id\": 1, \"bbox\": [0.5, 0.25, 2, 3]},"
    "  {\"id\": 3, \"image_id\": 42, \"category_id\": 90, \"bbox\": [0, 0, 9, 6], \"area\": 10, \"iscrowd\": 1,"
    "   \"segmentation\": {\"counts\": [1, 2], \"size\": [6, 9]}},"
    "  {\"id\": 4, \"image_id\": 42, \"category_id\": 1, \"bbox\": [2, 1, 1.5, 2], \"iscrowd\": true}]}";

/* The tree rel with valid_json's images and the given annotation file. */
static void valid_tree(const char *rel, const char *json)
{
    char p[256];
    snprintf(p, sizeof p, "%s/val/sub", rel);
    make_dirs(p);
    snprintf(p, sizeof p, "%s/annotations", rel);
    make_dirs(p);
    snprintf(p, sizeof p, "%s/val/a.png", rel);
    write_png(p, 9, 6, 1);
    snprintf(p, sizeof p, "%s/val/sub/b.png", rel);
    write_png(p, 5, 8, 2);
    snprintf(p, sizeof p, "%s/val/c.png", rel);
    write_png(p, 4, 4, 3);
    snprintf(p, sizeof p, "%s/annotations/instances_val.json", rel);
    write_text(p, json);
}

/* Sample i: its image w×h of pixel(..., seed), image id, and count objects. */
static gsq_sample get_checked(gsq_dataset *ds, size_t i, int w, int h, int seed, int64_t id, int count)
{
    gsq_sample s;
    gsq_error err;
    gsq_status st = ds->get(ds, i, &s, &err);
    CHECK(st == GSQ_OK, "sample %zu: %s", i, err.msg);
    if (st != GSQ_OK) return s;
    CHECK(s.image.width == w && s.image.height == h && s.objects.width == w && s.objects.height == h,
          "sample %zu: %dx%d (objects %dx%d), want %dx%d", i, s.image.width, s.image.height, s.objects.width,
          s.objects.height, w, h);
    CHECK(s.objects.image_id == id && s.objects.count == count, "sample %zu: image %lld with %d objects", i,
          (long long)s.objects.image_id, s.objects.count);
    int bad = 0;
    for (int y = 0; y < h && s.image.width == w; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) bad += s.image.pixels[(y * w + x) * 3 + c] != pixel(x, y, c, seed);
    CHECK(bad == 0, "sample %zu: %d pixel values differ", i, bad);
    return s;
}

static void test_valid(void)
{
    valid_tree("ok", valid_json);
    gsq_coco_skips skips;
    gsq_dataset *ds = open_coco("ok/", &skips, GSQ_OK, NULL);
    if (!ds) return;
    char name[600];
    tree_dataset_name(name, sizeof name, "coco", "ok", "val");
    CHECK(strncmp(ds->name, name, sizeof ds->name - 1) == 0, "name %s", ds->name);
    CHECK(ds->task == GSQ_TASK_DETECT && ds->size == 3 && ds->num_classes == 3, "task %d, %zu samples, %d classes",
          ds->task, ds->size, ds->num_classes);
    CHECK(skips.annotations == 0 && skips.first[0] == '\0', "%zu skipped: %s", skips.annotations, skips.first);
    CHECK(ds->class_names && strcmp(ds->class_names[0], "person") == 0 && strcmp(ds->class_names[1], "dog") == 0 &&
          strcmp(ds->class_names[2], "zebra") == 0, "classes not sorted by id");
    CHECK(ds->category_ids && ds->category_ids[0] == 1 && ds->category_ids[1] == 18 && ds->category_ids[2] == 90,
          "category ids");
    if (ds->size != 3) {
        gsq_dataset_free(ds);
        return;
    }
    gsq_sample s = get_checked(ds, 0, 5, 8, 2, 7, 1); /* id 7: sub/b.png */
    CHECK(s.objects.count == 1 && same_object(&s.objects.objects[0], 0.5f, 0.25f, 2, 3, 0, 0, 6.0f),
          "image 7's object (no area: w·h)");
    gsq_sample_free(&s);
    s = get_checked(ds, 1, 9, 6, 1, 42, 3);
    CHECK(s.objects.count == 3 && same_object(&s.objects.objects[0], 1, 2, 3, 4, 1, 0, 5.5f) &&
          same_object(&s.objects.objects[1], 0, 0, 9, 6, 2, 1, 10.0f) &&
          same_object(&s.objects.objects[2], 2, 1, 1.5f, 2, 0, 1, 3.0f), "image 42's objects (in file order)");
    gsq_sample_free(&s);
    s = get_checked(ds, 2, 4, 4, 3, 100, 0); /* no annotations: kept */
    CHECK(s.objects.objects == NULL, "no objects allocated");
    gsq_sample_free(&s);
    gsq_error err;
    CHECK(ds->get(ds, 3, &s, &err) == GSQ_ERR_ARG && !s.image.pixels && !s.objects.objects, "out of range: %s",
          err.msg);
    gsq_dataset_free(ds);
    gsq_dataset_free(open_coco("ok", NULL, GSQ_OK, NULL)); /* skips may be NULL */
}

/* ---- malformed annotations -------------------------------------------------------------- */

static void expect_skip(int n, const char *annotation, const char *why)
{
    char rel[64], json[2048];
    snprintf(rel, sizeof rel, "skip%d", n);
    snprintf(json, sizeof json,
             "{\"categories\": [{\"id\": 3, \"name\": \"c\"}], \"images\": [{\"id\": 5, \"file_name\": \"a.png\"}],"
             " \"annotations\": [{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}, %s,"
             " {\"image_id\": 5, \"category_id\": 3, \"bbox\": [0, 0, 1, 1], \"iscrowd\": 1}]}", annotation);
    valid_tree(rel, json);
    gsq_coco_skips skips;
    gsq_dataset *ds = open_coco(rel, &skips, GSQ_OK, NULL);
    if (!ds) return;
    CHECK(skips.annotations == 1 && strstr(skips.first, rel) && strstr(skips.first, "annotation 1") &&
          strstr(skips.first, why), "%s: %zu skipped, want 1 for '%s': %s", annotation, skips.annotations, why,
          skips.first);
    gsq_sample s;
    gsq_error err;
    CHECK(ds->get(ds, 0, &s, &err) == GSQ_OK && s.objects.count == 2, "%s: the others kept: %s", annotation,
          err.msg);
    gsq_sample_free(&s);
    gsq_dataset_free(ds);
}

static void test_skipped(void)
{
    static const struct {
        const char *annotation, *why;
    } cases[] = {
        {"7", "not an object"},
        {"[1]", "not an object"},
        {"{\"category_id\": 3, \"bbox\": [1, 1, 2, 2]}", "image_id is missing"},
        {"{\"image_id\": \"5\", \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}", "image_id is missing or not an integer"},
        {"{\"image_id\": 5.5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}", "not an integer"},
        {"{\"image_id\": 1e300, \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}", "not an integer"},
        {"{\"image_id\": 6, \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}", "image_id 6 is no image's id"},
        {"{\"image_id\": 5, \"bbox\": [1, 1, 2, 2]}", "category_id is missing"},
        {"{\"image_id\": 5, \"category_id\": null, \"bbox\": [1, 1, 2, 2]}", "category_id is missing"},
        {"{\"image_id\": 5, \"category_id\": 4, \"bbox\": [1, 1, 2, 2]}", "category_id 4 is no category's id"},
        {"{\"image_id\": 5, \"category_id\": 3}", "bbox is not an array"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": {\"x\": 1}}", "bbox is not an array"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2]}", "bbox is not an array of 4"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2, 5]}", "bbox is not an array of 4"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, \"1\", 2, 2]}", "bbox value 1 is not a finite"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 1e999, 2]}", "bbox value 2 is not a finite"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, -1e30]}", "bbox value 3 is not a finite"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 0, 2]}", "width 0 and height 2 are not both"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, -3]}", "not both positive"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2], \"iscrowd\": 2}", "iscrowd is not 0 or 1"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2], \"iscrowd\": \"no\"}", "iscrowd"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2], \"area\": -1}", "area is not a number"},
        {"{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2], \"area\": \"4\"}", "area"},
        {"{\"id\": 77, \"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2], \"area\": 1e60}", "(id 77)"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) expect_skip(i, cases[i].annotation, cases[i].why);

    /* all of them in one file: each counted, the first named */
    char json[8192];
    int at = snprintf(json, sizeof json, "{\"categories\": [{\"id\": 3, \"name\": \"c\"}], \"images\": [{\"id\": 5, "
                      "\"file_name\": \"a.png\"}], \"annotations\": [");
    for (int i = 0; i < n; i++) at += snprintf(json + at, sizeof json - (size_t)at, "%s, ", cases[i].annotation);
    snprintf(json + at, sizeof json - (size_t)at, "{\"image_id\": 5, \"category_id\": 3, \"bbox\": [1, 1, 2, 2]}]}");
    valid_tree("skip_all", json);
    gsq_coco_skips skips;
    gsq_dataset *ds = open_coco("skip_all", &skips, GSQ_OK, NULL);
    CHECK(skips.annotations == (size_t)n && strstr(skips.first, "annotation 0 skipped: not an object"),
          "%zu skipped of %d: %s", skips.annotations, n, skips.first);
    gsq_sample s;
    gsq_error err;
    CHECK(ds && ds->get(ds, 0, &s, &err) == GSQ_OK && s.objects.count == 1, "the good one kept");
    if (ds) gsq_sample_free(&s);
    gsq_dataset_free(ds);
}

/* ---- malformed files -------------------------------------------------------------------- */

#define CATS "\"categories\": [{\"id\": 1, \"name\": \"a\"}]"
#define IMGS "\"images\": [{\"id\": 1, \"file_name\": \"a.png\"}]"
#define ANNS "\"annotations\": []"

static void expect_file_error(int n, const char *json, gsq_status code, const char *word)
{
    char rel[64];
    snprintf(rel, sizeof rel, "bad%d", n);
    valid_tree(rel, json);
    gsq_coco_skips skips;
    gsq_dataset *ds = open_coco(rel, &skips, code, word);
    gsq_dataset_free(ds);
}

static void test_bad_files(void)
{
    static const struct {
        const char *json, *word;
    } cases[] = {
        {"", "not valid JSON"},
        {"{", "not valid JSON"},
        {"{\"images\": [] /* comment */}", "not valid JSON"},
        {"[" CATS "]", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
        {"\"text\"", "not a JSON object"},
        {"{" IMGS ", " ANNS "}", "\"categories\" is missing"},
        {"{" CATS ", " ANNS "}", "\"images\" is missing"},
        {"{" CATS ", " IMGS "}", "\"annotations\" is missing"},
        {"{\"categories\": {}, " IMGS ", " ANNS "}", "\"categories\" is of the wrong type"},
        {"{" CATS ", \"images\": \"a.png\", " ANNS "}", "\"images\" is of the wrong type"},
        {"{" CATS ", " IMGS ", \"annotations\": null}", "\"annotations\" is of the wrong type"},
        {"{\"categories\": [], " IMGS ", " ANNS "}", "no categories"},
        {"{\"categories\": [{\"id\": 1}], " IMGS ", " ANNS "}", "category 0 is not"},
        {"{\"categories\": [{\"id\": 1, \"name\": \"a\"}, {\"id\": 2.5, \"name\": \"b\"}], " IMGS ", " ANNS "}",
         "category 1 is not"},
        {"{\"categories\": [{\"id\": 3000000000, \"name\": \"a\"}], " IMGS ", " ANNS "}", "category 0"},
        {"{\"categories\": [7], " IMGS ", " ANNS "}", "category 0"},
        {"{\"categories\": [{\"id\": 4, \"name\": \"a\"}, {\"id\": 4, \"name\": \"b\"}], " IMGS ", " ANNS "}",
         "two categories have id 4"},
        {"{" CATS ", \"images\": [{\"id\": 1}], " ANNS "}", "image 0 is not"},
        {"{" CATS ", \"images\": [{\"file_name\": \"a.png\"}], " ANNS "}", "image 0 is not"},
        {"{" CATS ", \"images\": [{\"id\": 1, \"file_name\": 5}], " ANNS "}", "image 0 is not"},
        {"{" CATS ", \"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 0}], " ANNS "}", "image 0"},
        {"{" CATS ", \"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 1, \"height\": \"6\"}], " ANNS "}",
         "image 0"},
        {"{" CATS ", \"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"height\": 6}], " ANNS "}", "image 0"},
        {"{" CATS ", \"images\": [{\"id\": 1, \"file_name\": \"a.png\"}, {\"id\": 1, \"file_name\": \"b.png\"}], "
         ANNS "}", "two images have id 1"},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) expect_file_error(i, cases[i].json, GSQ_ERR_FORMAT, cases[i].word);
    expect_file_error(n, "{" CATS ", \"images\": [], " ANNS "}", GSQ_ERR_MISSING, "no images");

    /* nesting deeper than cJSON's limit, in a member nobody reads */
    size_t depth = 5000;
    char *deep = malloc(2 * depth + 256);
    int at = sprintf(deep, "{" CATS ", " IMGS ", " ANNS ", \"x\": ");
    for (size_t i = 0; i < depth; i++) deep[at++] = '[';
    for (size_t i = 0; i < depth; i++) deep[at++] = ']';
    strcpy(deep + at, "}");
    expect_file_error(n + 1, deep, GSQ_ERR_FORMAT, "not valid JSON");
    free(deep);

    /* names that are not UTF-8 are kept as their bytes */
    valid_tree("latin1", "{\"categories\": [{\"id\": 1, \"name\": \"caf\xe9\"}], " IMGS ", " ANNS "}");
    gsq_dataset *ds = open_coco("latin1", NULL, GSQ_OK, NULL);
    CHECK(ds && strcmp(ds->class_names[0], "caf\xe9") == 0, "latin-1 name");
    gsq_dataset_free(ds);

    /* missing pieces of the layout */
    make_dirs("nojson/val");
    gsq_dataset_free(open_coco("nojson", NULL, GSQ_ERR_MISSING, "instances_val.json"));
    make_dirs("nodir/annotations");
    write_text("nodir/annotations/instances_val.json", "{" CATS ", " IMGS ", " ANNS "}");
    gsq_dataset_free(open_coco("nodir", NULL, GSQ_ERR_MISSING, "nodir/val"));
    gsq_dataset *out = (gsq_dataset *)1;
    gsq_error err;
    CHECK(gsq_dataset_coco(&out, "", "val", NULL, &err) == GSQ_ERR_ARG && out == NULL, "empty root");
    CHECK(gsq_dataset_coco(&out, tmp_dir, NULL, NULL, &err) == GSQ_ERR_ARG, "no split");
}

/* ---- images that fail in get ------------------------------------------------------------ */

static void test_bad_images(void)
{
    valid_tree("img", "{" CATS ", \"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 9, \"height\": 6},"
                      " {\"id\": 2, \"file_name\": \"gone.png\"}, {\"id\": 3, \"file_name\": \"junk.jpg\"},"
                      " {\"id\": 4, \"file_name\": \"c.png\", \"width\": 5, \"height\": 4},"
                      " {\"id\": 5, \"file_name\": \"../x.png\"}, {\"id\": 6, \"file_name\": \"/etc/passwd\"},"
                      " {\"id\": 7, \"file_name\": \"\"}], " ANNS "}");
    write_text("img/val/junk.jpg", "not a jpeg at all");
    write_png("img/x.png", 2, 2, 0);
    gsq_dataset *ds = open_coco("img", NULL, GSQ_OK, NULL);
    if (!ds) return;
    static const struct {
        gsq_status code;
        const char *word;
    } want[] = {
        {GSQ_OK, NULL},
        {GSQ_ERR_IO, "img/val/gone.png"},
        {GSQ_ERR_FORMAT, "img/val/junk.jpg"},
        {GSQ_ERR_SHAPE, "img/val/c.png is 4x4 but its annotations say 5x4"},
        {GSQ_ERR_FORMAT, "\"../x.png\" leaves the folder"},
        {GSQ_ERR_FORMAT, "\"/etc/passwd\" leaves the folder"},
        {GSQ_ERR_FORMAT, "\"\" leaves the folder"},
    };
    for (size_t i = 0; i < ds->size && i < 7; i++) {
        gsq_sample s;
        gsq_error err = {0};
        gsq_status st = ds->get(ds, i, &s, &err);
        CHECK(st == want[i].code && (!want[i].word || strstr(err.msg, want[i].word)), "image %zu: status %d: %s", i,
              st, err.msg);
        if (st != GSQ_OK)
            CHECK(!s.image.pixels && !s.objects.objects && s.objects.count == 0, "image %zu kept data", i);
        gsq_sample_free(&s);
    }
    /* the loader skips and counts them */
    gsq_loader_config cfg = {.batch_size = 7, .workers = 2, .prefetch = 1, .seed = 1};
    gsq_transform_detect_defaults(&cfg.transform, 16);
    gsq_loader *ld = NULL;
    gsq_error err;
    CHECK(gsq_loader_create(&ld, ds, &cfg, 0, 0, &err) == GSQ_OK, "loader: %s", err.msg);
    gsq_batch b;
    if (ld && gsq_loader_next(ld, &b, &err) == GSQ_OK) {
        gsq_loader_stats stats;
        gsq_loader_stats_get(ld, &stats);
        CHECK(b.n == 1 && b.skipped == 6 && b.objects && b.objects[0].image_id == 1 && b.targets &&
              b.targets[0].count == 0, "batch of %d, %d skipped", b.n, b.skipped);
        CHECK(stats.skipped == 6 && strstr(stats.first_error, "gone.png"), "%zu skipped: %s", stats.skipped,
              stats.first_error);
    }
    gsq_loader_destroy(ld);
    gsq_dataset_free(ds);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* An in-memory detection dataset: 3 images of ids 1000 + 7·i with fractional boxes, a crowd
 * region and an image without objects; category ids 5, 9, 2. */
typedef struct {
    gsq_dataset ds;
    int same_ids, bad_class;
} mem_set;

static gsq_status mem_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    const mem_set *m = (const mem_set *)ds;
    memset(s, 0, sizeof *s);
    int i = (int)index, w = 20 + i, h = 14 + i, count = i == 2 ? 0 : 2 + i;
    int64_t id = m->same_ids ? 1 : 1000 + 7 * i;
    gsq_status st = gsq_image_alloc(&s->image, w, h, err);
    if (st == GSQ_OK) st = gsq_objects_alloc(&s->objects, id, w, h, count, err);
    if (st != GSQ_OK) {
        gsq_sample_free(s);
        return st;
    }
    for (int p = 0; p < w * h * 3; p++) s->image.pixels[p] = (uint8_t)(p % 97 + i);
    for (int k = 0; k < count; k++)
        s->objects.objects[k] = (gsq_object){{0.1f * (float)k, 1.3f, 3.7f + (float)k, 2.25f}, (k + i) % 3, k == 1,
                                             k == 1 ? 0.3f : 7.77f};
    if (m->bad_class && count) s->objects.objects[0].category = 3;
    return GSQ_OK;
}

static void mem_init(mem_set *m, gsq_task task)
{
    static char *names[3] = {"x", "y", "z"};
    static int ids[3] = {5, 9, 2};
    memset(m, 0, sizeof *m);
    snprintf(m->ds.name, sizeof m->ds.name, "memory");
    m->ds.task = task;
    m->ds.size = 3;
    m->ds.num_classes = 3;
    m->ds.class_names = names;
    m->ds.category_ids = ids;
    m->ds.get = mem_get;
}

/* Writes src at rel, reads it back and compares every sample: the same objects bit for bit, the
 * image within JPEG's loss. */
static void check_round_trip(gsq_dataset *src, const char *rel)
{
    char root[512];
    path_of(root, sizeof root, rel);
    gsq_error err;
    CHECK(gsq_dataset_write_coco(src, root, "val", &err) == GSQ_OK, "%s: write: %s", rel, err.msg);
    gsq_coco_skips skips;
    gsq_dataset *ds = open_coco(rel, &skips, GSQ_OK, NULL);
    if (!ds) return;
    CHECK(ds->size == src->size && ds->num_classes == src->num_classes && skips.annotations == 0,
          "%s: %zu samples, %d classes, %zu skipped", rel, ds->size, ds->num_classes, skips.annotations);
    for (int c = 0; c < ds->num_classes && c < src->num_classes; c++) {
        int j = 0; /* the read classes are sorted by id */
        while (j < src->num_classes && src->category_ids[j] != ds->category_ids[c]) j++;
        CHECK(j < src->num_classes && strcmp(ds->class_names[c], src->class_names[j]) == 0, "%s: class %d", rel, c);
    }
    for (size_t i = 0; i < ds->size && ds->size == src->size; i++) {
        gsq_sample got, want;
        gsq_error e1, e2;
        if (ds->get(ds, i, &got, &e1) != GSQ_OK || src->get(src, i, &want, &e2) != GSQ_OK) {
            CHECK(0, "%s: sample %zu: %s", rel, i, e1.msg);
            continue;
        }
        const gsq_objects *g = &got.objects, *w = &want.objects;
        int same = g->image_id == w->image_id && g->width == w->width && g->height == w->height &&
                   g->count == w->count;
        for (int k = 0; same && k < g->count; k++) {
            const gsq_object *a = &g->objects[k], *b = &w->objects[k];
            same = memcmp(&a->box, &b->box, sizeof a->box) == 0 && a->iscrowd == b->iscrowd && a->area == b->area &&
                   src->category_ids[b->category] == ds->category_ids[a->category];
        }
        CHECK(same, "%s: sample %zu: objects differ", rel, i);
        size_t n = (size_t)want.image.width * (size_t)want.image.height * 3;
        double diff = 0;
        for (size_t k = 0; k < n && got.image.width == want.image.width; k++)
            diff += abs(got.image.pixels[k] - want.image.pixels[k]);
        CHECK(got.image.width == want.image.width && diff / (double)n < 6.0, "%s: sample %zu: mean abs diff %.2f",
              rel, i, diff / (double)n);
        gsq_sample_free(&got);
        gsq_sample_free(&want);
    }
    gsq_dataset_free(ds);
}

static void test_write(void)
{
    gsq_dataset *syn = NULL;
    gsq_error err;
    CHECK(gsq_dataset_synthetic_detect(&syn, 6, 48, 3, 1, &err) == GSQ_OK, "synthetic: %s", err.msg);
    if (syn) check_round_trip(syn, "rt_syn");
    char path[512];
    path_of(path, sizeof path, "rt_syn/val/000000000005.jpg");
    struct stat sb;
    CHECK(stat(path, &sb) == 0, "%s missing", path);
    gsq_dataset_free(syn);

    mem_set m;
    mem_init(&m, GSQ_TASK_DETECT);
    check_round_trip(&m.ds, "rt_mem");
    check_round_trip(&m.ds, "rt_mem"); /* over the same files */
    char root[512];
    path_of(root, sizeof root, "rt_bad");
    m.same_ids = 1;
    CHECK(gsq_dataset_write_coco(&m.ds, root, "val", &err) == GSQ_ERR_ARG && strstr(err.msg, "image id 1"),
          "same ids: %s", err.msg);
    mem_init(&m, GSQ_TASK_DETECT);
    m.bad_class = 1;
    CHECK(gsq_dataset_write_coco(&m.ds, root, "val", &err) == GSQ_ERR_ARG && strstr(err.msg, "class 3"),
          "class out of range: %s", err.msg);
    mem_init(&m, GSQ_TASK_SEGMENT);
    CHECK(gsq_dataset_write_coco(&m.ds, root, "val", &err) == GSQ_ERR_ARG && strstr(err.msg, "segment"),
          "segmentation: %s", err.msg);
    mem_init(&m, GSQ_TASK_DETECT);
    static int dup_ids[3] = {5, 9, 5};
    m.ds.category_ids = dup_ids;
    CHECK(gsq_dataset_write_coco(&m.ds, root, "val", &err) == GSQ_ERR_ARG && strstr(err.msg, "category id 5"),
          "duplicate category ids: %s", err.msg);
    CHECK(gsq_dataset_write_coco(NULL, root, "val", &err) == GSQ_ERR_ARG, "NULL dataset");
}

int main(void)
{
    if (!tmp_dir_make("coco")) return 1;
    test_valid();
    test_skipped();
    test_bad_files();
    test_bad_images();
    test_write();
    tmp_dir_remove();
    return test_finish("test_coco");
}
