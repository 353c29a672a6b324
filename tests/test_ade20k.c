/* ADE20K-layout datasets and label-map PNGs: a tree of JPEG and PNG images with gray (8- and
 * 16-bit), gray+alpha and palette (8- and 4-bit) annotations, some interlaced, written here with
 * libjpeg and libpng, scanned (pairs sorted; hidden files, stray entries and an image without
 * annotation left out, the last counted) and read back with the labels mapped (0 ignored,
 * v → v − 1), also from several threads; then errors: a size mismatch, a value above the
 * classes, colour, truncated, garbage and empty annotations, missing folders, nothing paired; and
 * a round trip of an in-memory segmentation dataset through gsq_dataset_write_ade20k and back. */
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "gpusq/data.h"
#include "test_util.h"
#include "tree_files.h"

enum { W = 7, H = 5, K = 5 };

typedef struct {
    unsigned char *data;
    size_t size;
} blob;

/* Writes b to tmp_dir/rel and frees it. */
static void write_blob(const char *rel, blob b)
{
    write_file(rel, b.data, b.size);
    free(b.data);
}

/* ---- writers ---------------------------------------------------------------------------- */

static uint8_t pixel(int x, int y, int c) { return (uint8_t)(x * 20 + y * 30 + c * 60); }

/* The annotation value of pixel (x, y) in an image of width w: 0..K cycling, so every class and
 * the ignored value appear. */
static int value_at(int x, int y, int w) { return (x + y * w) % (K + 1); }

/* A w×h RGB image of pixel(), as a JPEG (quality 100, 4:4:4). */
static blob jpeg_of(int w, int h)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    for (int i = 0; i < c.num_components; i++)
        c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++) row[x * 3 + ch] = pixel(x, (int)c.next_scanline, ch);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return (blob){buf, size};
}

static void png_append(png_structp png, png_bytep p, size_t n)
{
    blob *b = png_get_io_ptr(png);
    b->data = realloc(b->data, b->size + n);
    if (!b->data) abort();
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void png_flush_nothing(png_structp png) { (void)png; }

/* A w×h PNG of the given color type and depth (interlaced or not) whose sample (x, y, channel
 * 0) is sample(x, y) and other channels 200 + channel (RGB images: pixel()); palettes of 16
 * entries. */
static blob png_interlaced(int w, int h, int color, int depth, int interlace,
                           int (*sample)(int x, int y, int w))
{
    blob b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!png || !info || w > 64 || h > 64 || setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &b, png_append, png_flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color palette[16];
    for (int i = 0; i < 16; i++) palette[i] = (png_color){(png_byte)(i * 16), 0, 0};
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette, 16);
    png_write_info(png, info);
    int channels = color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : color == PNG_COLOR_TYPE_RGB ? 3
                 : color == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : 1;
    static uint8_t rows[64][64 * 4 * 2];
    png_bytep ptrs[64];
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < h; y++) {
        uint8_t *row = ptrs[y] = rows[y];
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                int v = sample && c == 0 ? sample(x, y, w) : (color & PNG_COLOR_MASK_COLOR) && c < 3
                                                                 ? pixel(x, y, c) : 200 + c;
                size_t i = (size_t)x * (size_t)channels + (size_t)c;
                if (depth == 16) {
                    row[2 * i] = (uint8_t)(v >> 8);
                    row[2 * i + 1] = (uint8_t)v;
                } else if (depth == 4) {
                    row[i / 2] |= (uint8_t)(v << (i % 2 ? 0 : 4));
                } else {
                    row[i] = (uint8_t)v;
                }
            }
    }
    png_write_image(png, ptrs);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return b;
}

static blob png_of(int w, int h, int color, int depth, int (*sample)(int x, int y, int w))
{
    return png_interlaced(w, h, color, depth, 0, sample);
}

static blob rgb_png(int w, int h) { return png_of(w, h, PNG_COLOR_TYPE_RGB, 8, NULL); }
static blob gray_labels(int w, int h) { return png_of(w, h, PNG_COLOR_TYPE_GRAY, 8, value_at); }

/* ---- reading a tree --------------------------------------------------------------------- */

static gsq_dataset *open_ok(const char *rel, int num_classes, size_t *unpaired)
{
    char root[512];
    path_of(root, sizeof root, rel);
    gsq_dataset *ds = NULL;
    gsq_error err;
    gsq_status st = gsq_dataset_ade20k(&ds, root, "training", num_classes, unpaired, &err);
    CHECK(st == GSQ_OK && ds, "%s: %s", rel, err.msg);
    return ds;
}

/* Checks sample i: a w×h image and the labels value_at() mapped (0 ignored, v → v − 1); the
 * image exactly pixel() when exact, else within 3 (JPEG). */
static void check_sample(gsq_dataset *ds, size_t i, int w, int h, int exact)
{
    gsq_sample s;
    gsq_error err;
    gsq_status st = ds->get(ds, i, &s, &err);
    CHECK(st == GSQ_OK, "sample %zu: %s", i, err.msg);
    if (st != GSQ_OK) return;
    CHECK(s.image.width == w && s.image.height == h && s.map.width == w && s.map.height == h,
          "sample %zu: image %dx%d, map %dx%d, want %dx%d", i, s.image.width, s.image.height,
          s.map.width, s.map.height, w, h);
    int bad_labels = 0, worst = 0;
    for (int y = 0; y < h && s.map.width == w && s.image.width == w; y++)
        for (int x = 0; x < w; x++) {
            int v = value_at(x, y, w), want = v == 0 ? GSQ_IGNORE_LABEL : v - 1;
            bad_labels += s.map.labels[y * w + x] != want;
            for (int c = 0; c < 3; c++) {
                int d = abs(s.image.pixels[(y * w + x) * 3 + c] - pixel(x, y, c));
                if (d > worst) worst = d;
            }
        }
    CHECK(bad_labels == 0, "sample %zu: %d labels wrong", i, bad_labels);
    CHECK(exact ? worst == 0 : worst <= 3, "sample %zu: pixels off by %d", i, worst);
    gsq_sample_free(&s);
    CHECK(!s.image.pixels && !s.map.labels && s.map.width == 0, "gsq_sample_free left data");
}

typedef struct {
    gsq_dataset *ds;
    int failures;
} reader;

/* Reads every sample 4 times and checks its labels' sum against the first thread's view. */
static void *read_all(void *arg)
{
    reader *r = arg;
    for (int round = 0; round < 4; round++)
        for (size_t i = 0; i < r->ds->size; i++) {
            gsq_sample s;
            gsq_error err;
            if (r->ds->get(r->ds, i, &s, &err) != GSQ_OK) {
                r->failures++;
                continue;
            }
            long sum = 0;
            for (int p = 0; p < s.map.width * s.map.height; p++) sum += s.map.labels[p];
            long want = 0;
            for (int y = 0; y < s.map.height; y++)
                for (int x = 0; x < s.map.width; x++) {
                    int v = value_at(x, y, s.map.width);
                    want += v == 0 ? GSQ_IGNORE_LABEL : v - 1;
                }
            r->failures += sum != want;
            gsq_sample_free(&s);
        }
    return NULL;
}

static void test_scan(void)
{
    make_dirs("ok/images/training/sub.png");         /* a folder with an image's name */
    make_dirs("ok/annotations/training/sub.png");
    write_blob("ok/images/training/b.png", rgb_png(W, H));
    write_blob("ok/images/training/a.JPG", jpeg_of(W, H));
    write_blob("ok/images/training/c.jpeg", jpeg_of(W + 2, H));
    write_blob("ok/images/training/e.png", rgb_png(W, H + 1));
    write_blob("ok/images/training/f.PNG", rgb_png(3, 2));
    write_blob("ok/images/training/d.png", rgb_png(W, H)); /* no annotation */
    write_blob("ok/images/training/.hidden.png", rgb_png(W, H));
    write_blob("ok/annotations/training/.hidden.png", gray_labels(W, H));
    write_blob("ok/images/training/notes.txt", rgb_png(W, H));
    write_blob("ok/annotations/training/notes.png", gray_labels(W, H));
    write_blob("ok/annotations/training/a.png", gray_labels(W, H));
    write_blob("ok/annotations/training/b.png", png_of(W, H, PNG_COLOR_TYPE_PALETTE, 8, value_at));
    write_blob("ok/annotations/training/c.png",
               png_interlaced(W + 2, H, PNG_COLOR_TYPE_GRAY, 16, 1, value_at));
    write_blob("ok/annotations/training/e.png",
               png_of(W, H + 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, value_at));
    write_blob("ok/annotations/training/f.png",
               png_interlaced(3, 2, PNG_COLOR_TYPE_PALETTE, 4, 1, value_at));

    size_t unpaired = 99;
    gsq_dataset *ds = open_ok("ok/", K, &unpaired);
    if (!ds) return;
    char want_name[600];
    tree_dataset_name(want_name, sizeof want_name, "ade20k", "ok", "training");
    CHECK(strncmp(ds->name, want_name, sizeof ds->name - 1) == 0, "name %s", ds->name);
    CHECK(ds->size == 5 && unpaired == 1, "%zu samples, %zu unpaired", ds->size, unpaired);
    CHECK(ds->task == GSQ_TASK_SEGMENT && ds->num_classes == K && ds->class_names == NULL,
          "task %d, %d classes", ds->task, ds->num_classes);
    /* sorted: a.JPG, b.png, c.jpeg, e.png, f.PNG */
    if (ds->size == 5) {
        check_sample(ds, 0, W, H, 0);
        check_sample(ds, 1, W, H, 1);
        check_sample(ds, 2, W + 2, H, 0);
        check_sample(ds, 3, W, H + 1, 1);
        check_sample(ds, 4, 3, 2, 1);
    }
    gsq_sample s;
    gsq_error err;
    CHECK(ds->get(ds, ds->size, &s, &err) == GSQ_ERR_ARG && !s.image.pixels && !s.map.labels,
          "out of range get: %s", err.msg);

    reader readers[4];
    pthread_t threads[4];
    for (int t = 0; t < 4; t++) {
        readers[t] = (reader){ds, 0};
        pthread_create(&threads[t], NULL, read_all, &readers[t]);
    }
    int failures = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        failures += readers[t].failures;
    }
    CHECK(failures == 0, "%d wrong results reading from 4 threads", failures);
    gsq_dataset_free(ds);

    ds = open_ok("ok", K, NULL); /* unpaired may be NULL */
    gsq_dataset_free(ds);
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Opens tree rel with num_classes, expects one sample whose get fails with code and a message
 * holding each of the (up to 3) words. */
static void expect_get_error(const char *rel, int num_classes, gsq_status code, const char *w1,
                             const char *w2, const char *w3)
{
    gsq_dataset *ds = open_ok(rel, num_classes, NULL);
    if (!ds) return;
    gsq_sample s;
    gsq_error err;
    gsq_status st = ds->size == 1 ? ds->get(ds, 0, &s, &err) : GSQ_OK;
    CHECK(st == code && !s.image.pixels && !s.map.labels && s.image.width == 0 && s.map.width == 0,
          "%s: status %d (want %d): %s", rel, st, code, err.msg);
    CHECK(strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2)) && (!w3 || strstr(err.msg, w3)),
          "%s: message lacks '%s' / '%s' / '%s': %s", rel, w1, w2 ? w2 : "", w3 ? w3 : "",
          err.msg);
    gsq_dataset_free(ds);
}

/* A tree rel with one image x.png (w×h RGB) and annotation b. */
static void one_pair(const char *rel, int w, int h, blob b)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/images/training", rel);
    make_dirs(dir);
    snprintf(dir, sizeof dir, "%s/annotations/training", rel);
    make_dirs(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/images/training/x.png", rel);
    write_blob(path, rgb_png(w, h));
    snprintf(path, sizeof path, "%s/annotations/training/x.png", rel);
    write_blob(path, b);
}

static int big_value(int x, int y, int w) { return x == 2 && y == 1 ? 7 : value_at(x, y, w); }
static int huge_value(int x, int y, int w) { return x == 1 && y == 0 ? 40000 : value_at(x, y, w); }

static void test_sample_errors(void)
{
    one_pair("mismatch", W, H, gray_labels(W, H - 1));
    expect_get_error("mismatch", K, GSQ_ERR_SHAPE, "mismatch/images/training/x.png is 7x5",
                     "mismatch/annotations/training/x.png", "7x4");

    one_pair("big", W, H, png_of(W, H, PNG_COLOR_TYPE_GRAY, 8, big_value));
    expect_get_error("big", K, GSQ_ERR_FORMAT, "big/annotations/training/x.png", "value 7",
                     "5 classes");
    gsq_dataset *ds = open_ok("big", 7, NULL); /* 7 classes: value 7 is class 6 */
    gsq_sample s;
    gsq_error err;
    CHECK(ds && ds->get(ds, 0, &s, &err) == GSQ_OK && s.map.labels[W + 2] == 6, "7 classes: %s",
          err.msg);
    if (ds) gsq_sample_free(&s);
    gsq_dataset_free(ds);

    one_pair("rgb", W, H, rgb_png(W, H));
    expect_get_error("rgb", K, GSQ_ERR_FORMAT, "rgb/annotations/training/x.png", "(RGB)",
                     "not a label map");
    one_pair("rgba", W, H, png_of(W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, value_at));
    expect_get_error("rgba", K, GSQ_ERR_FORMAT, "(RGBA)", NULL, NULL);

    blob whole = gray_labels(W, H);
    blob cut = {malloc(whole.size / 2), whole.size / 2};
    memcpy(cut.data, whole.data, cut.size);
    one_pair("truncated", W, H, cut);
    expect_get_error("truncated", K, GSQ_ERR_FORMAT, "truncated/annotations/training/x.png",
                     "truncated PNG", NULL);
    one_pair("garbage", W, H, (blob){(unsigned char *)strdup("GIF89a, not a png at all"), 24});
    expect_get_error("garbage", K, GSQ_ERR_FORMAT, "garbage/annotations/training/x.png",
                     "not a PNG", NULL);
    one_pair("empty", W, H, (blob){NULL, 0});
    expect_get_error("empty", K, GSQ_ERR_FORMAT, "empty file", NULL, NULL);
    one_pair("badimage", W, H, gray_labels(W, H));
    write_blob("badimage/images/training/x.png",
               (blob){(unsigned char *)strdup("\x89PNG\r\n\x1A\n!"), 9});
    expect_get_error("badimage", K, GSQ_ERR_FORMAT, "badimage/images/training/x.png", NULL, NULL);

    /* every truncation of a small annotation (that keeps all of the image data, only its
     * 12-byte IEND cut, decodes, as in PIL), and corrupt bytes: errors, never crashes */
    gsq_label_map map;
    int wrong = 0;
    for (size_t n = 0; n < whole.size; n++) {
        gsq_status st = gsq_label_png_decode(whole.data, n, "cut", &map, &err);
        wrong += n + 12 < whole.size ? st != GSQ_ERR_FORMAT || map.labels != NULL : st != GSQ_OK;
        gsq_label_map_free(&map);
    }
    CHECK(wrong == 0, "%d truncations wrongly decoded", wrong);
    for (size_t i = 8; i < whole.size; i++) {
        unsigned char saved = whole.data[i];
        whole.data[i] ^= 0x5A;
        if (gsq_label_png_decode(whole.data, whole.size, "flip", &map, &err) == GSQ_OK)
            gsq_label_map_free(&map);
        whole.data[i] = saved;
    }
    CHECK(gsq_label_png_decode(whole.data, whole.size, "whole", &map, &err) == GSQ_OK &&
          map.width == W && map.height == H && map.labels[W + 1] == value_at(1, 1, W),
          "whole: %s", err.msg);
    gsq_label_map_free(&map);
    CHECK(map.labels == NULL && map.width == 0, "gsq_label_map_free left data");
    gsq_label_map_free(NULL);
    gsq_sample_free(NULL);
    free(whole.data);

    blob wide = png_of(W, H, PNG_COLOR_TYPE_GRAY, 16, huge_value);
    CHECK(gsq_label_png_decode(wide.data, wide.size, "wide.png", &map, &err) == GSQ_ERR_FORMAT &&
          strstr(err.msg, "wide.png") && strstr(err.msg, "40000") && !map.labels,
          "16-bit 40000: %s", err.msg);
    free(wide.data);
    CHECK(gsq_label_png_decode("x", 1, "x", NULL, &err) == GSQ_ERR_ARG, "NULL out: %s", err.msg);
    CHECK(gsq_label_png_decode(NULL, 4, "x", &map, &err) == GSQ_ERR_ARG, "NULL data: %s", err.msg);
    CHECK(gsq_label_map_alloc(&map, 0, 3, &err) == GSQ_ERR_ARG && !map.labels, "0x3: %s", err.msg);
    CHECK(gsq_label_map_alloc(&map, 40000, 1, &err) == GSQ_ERR_ARG, "40000x1: %s", err.msg);
}

/* Expects opening rel/training with num_classes to fail with code and a message holding w1, w2. */
static void expect_open_error(const char *rel, int num_classes, gsq_status code, const char *w1,
                              const char *w2)
{
    char root[512];
    path_of(root, sizeof root, rel);
    gsq_dataset *ds = (gsq_dataset *)1;
    gsq_error err;
    gsq_status st = gsq_dataset_ade20k(&ds, root, "training", num_classes, NULL, &err);
    CHECK(st == code && ds == NULL && strstr(err.msg, w1) && (!w2 || strstr(err.msg, w2)),
          "%s: status %d (want %d), want '%s' / '%s': %s", rel, st, code, w1, w2 ? w2 : "",
          err.msg);
}

static void test_open_errors(void)
{
    expect_open_error("absent", K, GSQ_ERR_MISSING, "absent/images/training", "no such directory");
    make_dirs("noann/images/training");
    expect_open_error("noann", K, GSQ_ERR_MISSING, "noann/annotations/training", "no such");
    make_dirs("noann/annotations/training");
    expect_open_error("noann", K, GSQ_ERR_MISSING, "noann/images/training", "no images");
    write_blob("noann/images/training/b.jpg", jpeg_of(W, H));
    write_blob("noann/images/training/a.png", rgb_png(W, H));
    write_blob("noann/annotations/training/a.jpg", gray_labels(W, H)); /* not STEM.png */
    expect_open_error("noann", K, GSQ_ERR_MISSING, "noann/images/training", "(the first, a.png");
    char root[512];
    path_of(root, sizeof root, "noann");
    gsq_dataset *ds = NULL;
    gsq_error err;
    size_t unpaired = 0;
    CHECK(gsq_dataset_ade20k(&ds, root, "training", K, &unpaired, &err) == GSQ_ERR_MISSING &&
          unpaired == 2, "unpaired %zu: %s", unpaired, err.msg);
    make_dirs("filesplit/images");
    make_dirs("filesplit/annotations");
    write_blob("filesplit/images/training", rgb_png(W, H));
    expect_open_error("filesplit", K, GSQ_ERR_MISSING, "filesplit/images/training",
                      "not a directory");

    expect_open_error("ok", 0, GSQ_ERR_ARG, "0 classes", NULL);
    expect_open_error("ok", 32768, GSQ_ERR_ARG, "32768 classes", NULL);
    path_of(root, sizeof root, "ok");
    CHECK(gsq_dataset_ade20k(NULL, root, "training", K, NULL, &err) == GSQ_ERR_ARG, "NULL out");
    CHECK(gsq_dataset_ade20k(&ds, "", "training", K, NULL, &err) == GSQ_ERR_ARG && !ds, "no root");
    CHECK(gsq_dataset_ade20k(&ds, root, NULL, K, NULL, &err) == GSQ_ERR_ARG && !ds, "no split");
    CHECK(gsq_dataset_ade20k(&ds, root, "validation", K, NULL, &err) == GSQ_ERR_MISSING &&
          strstr(err.msg, "ok/images/validation"), "absent split: %s", err.msg);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* An in-memory segmentation dataset: sample i is a (20 + i)×(13 + 2i) smooth image with classes
 * in stripes, ignored pixels on the diagonal and class `top` at (0, 0); or, with bad_size, a map
 * one row short. */
typedef struct {
    gsq_dataset ds;
    int top, bad_size;
} mem_set;

static int mem_label(int x, int y, int i, int top)
{
    if (x == 0 && y == 0) return top;
    if (x == y) return GSQ_IGNORE_LABEL;
    return (x / 3 + y / 4 + i) % 7;
}

static uint8_t mem_pixel(int x, int y, int i, int c)
{
    return (uint8_t)(x * 4 + y * 3 + c * 30 + i * 5);
}

static gsq_status mem_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    const mem_set *m = (const mem_set *)ds;
    memset(s, 0, sizeof *s);
    int i = (int)index, w = 20 + i, h = 13 + 2 * i;
    gsq_status st = gsq_image_alloc(&s->image, w, h, err);
    if (st == GSQ_OK) st = gsq_label_map_alloc(&s->map, w, h - m->bad_size, err);
    if (st != GSQ_OK) {
        gsq_sample_free(s);
        return st;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            for (int c = 0; c < 3; c++)
                s->image.pixels[(y * w + x) * 3 + c] = mem_pixel(x, y, i, c);
            if (y < s->map.height) s->map.labels[y * w + x] = (int16_t)mem_label(x, y, i, m->top);
        }
    return GSQ_OK;
}

static void mem_init(mem_set *m, size_t size, int top, gsq_task task)
{
    memset(m, 0, sizeof *m);
    snprintf(m->ds.name, sizeof m->ds.name, "memory");
    m->ds.task = task;
    m->ds.size = size;
    m->ds.num_classes = top + 1;
    m->ds.get = mem_get;
    m->top = top;
}

static void check_round_trip(const char *rel, size_t n, int top)
{
    char root[512], path[600];
    path_of(root, sizeof root, rel);
    mem_set m;
    mem_init(&m, n, top, GSQ_TASK_SEGMENT);
    gsq_error err;
    CHECK(gsq_dataset_write_ade20k(&m.ds, root, "validation", &err) == GSQ_OK, "write: %s",
          err.msg);
    snprintf(path, sizeof path, "%s/images/validation/000002.jpg", root);
    CHECK(access(path, R_OK) == 0, "%s missing", path);
    snprintf(path, sizeof path, "%s/annotations/validation/000002.png", root);
    CHECK(access(path, R_OK) == 0, "%s missing", path);
    gsq_dataset *ds = NULL;
    size_t unpaired = 9;
    CHECK(gsq_dataset_ade20k(&ds, root, "validation", top + 1, &unpaired, &err) == GSQ_OK,
          "read back: %s", err.msg);
    if (!ds) return;
    CHECK(ds->size == n && unpaired == 0, "%zu samples, %zu unpaired", ds->size, unpaired);
    for (size_t i = 0; i < n && i < ds->size; i++) {
        gsq_sample got, want;
        gsq_error e1, e2;
        if (ds->get(ds, i, &got, &e1) != GSQ_OK || mem_get(&m.ds, i, &want, &e2) != GSQ_OK) {
            CHECK(0, "sample %zu: %s", i, e1.msg);
            continue;
        }
        size_t px = (size_t)want.image.width * (size_t)want.image.height;
        CHECK(got.image.width == want.image.width && got.image.height == want.image.height &&
              got.map.width == want.map.width && got.map.height == want.map.height,
              "sample %zu: %dx%d, want %dx%d", i, got.image.width, got.image.height,
              want.image.width, want.image.height);
        if (got.image.width != want.image.width || got.image.height != want.image.height) continue;
        CHECK(memcmp(got.map.labels, want.map.labels, px * sizeof *got.map.labels) == 0,
              "sample %zu: labels differ", i);
        double diff = 0;
        for (size_t k = 0; k < px * 3; k++) diff += abs(got.image.pixels[k] - want.image.pixels[k]);
        diff /= (double)(px * 3);
        CHECK(diff < 1.5, "sample %zu: mean abs diff %.2f", i, diff);
        gsq_sample_free(&got);
        gsq_sample_free(&want);
    }
    gsq_dataset_free(ds);
}

static void test_write(void)
{
    check_round_trip("rt", 3, 6);
    check_round_trip("rt", 4, 254); /* again over the same files, with the largest 8-bit class */

    char root[512];
    path_of(root, sizeof root, "rt_bad");
    mem_set m;
    gsq_error err;
    mem_init(&m, 2, 255, GSQ_TASK_SEGMENT);
    CHECK(gsq_dataset_write_ade20k(&m.ds, root, "training", &err) == GSQ_ERR_UNSUPPORTED &&
          strstr(err.msg, "class 255") && strstr(err.msg, "memory sample 0"), "class 255: %s",
          err.msg);
    mem_init(&m, 2, 3, GSQ_TASK_SEGMENT);
    m.bad_size = 1;
    CHECK(gsq_dataset_write_ade20k(&m.ds, root, "training", &err) == GSQ_ERR_SHAPE &&
          strstr(err.msg, "20x12"), "map size: %s", err.msg);
    mem_init(&m, 2, 3, GSQ_TASK_CLASSIFY);
    CHECK(gsq_dataset_write_ade20k(&m.ds, root, "training", &err) == GSQ_ERR_ARG &&
          strstr(err.msg, "classify"), "classification: %s", err.msg);
    CHECK(gsq_dataset_write_ade20k(NULL, root, "training", &err) == GSQ_ERR_ARG, "NULL dataset");
    write_blob("rt_file", rgb_png(2, 2));
    path_of(root, sizeof root, "rt_file/sub");
    mem_init(&m, 1, 3, GSQ_TASK_SEGMENT);
    CHECK(gsq_dataset_write_ade20k(&m.ds, root, "training", &err) == GSQ_ERR_IO &&
          strstr(err.msg, "rt_file"), "root under a file: %s", err.msg);
}

int main(void)
{
    if (!tmp_dir_make("ade20k")) return 1;
    test_scan();
    test_sample_errors();
    test_open_errors();
    test_write();
    tmp_dir_remove();
    return test_finish("test_ade20k");
}
