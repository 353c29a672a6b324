/* libFuzzer harness for the ADE20K scan and decoding (gsq_dataset_ade20k, gsq_label_png_decode):
 * the input is a small directory tree (tests/fuzz/fuzz_tree.h) made in a fresh temporary
 * directory and opened as split "training" with 1, 150 and 32767 classes. From the tree it made,
 * the harness knows what the scan must find: an error naming images/training or
 * annotations/training when one is not a directory made by the tree, an error naming the images'
 * folder when no image is paired, else one sample per non-hidden images/training/NAME.{jpg,jpeg,
 * png} (any case) with a regular file annotations/training/NAME.png, and the others counted as
 * unpaired. Every sample is read: an image with a label map of its size and labels in
 * [-1, classes), or an error naming a file of the tree with nothing kept. Built with
 * -DGSQ_FUZZ_MAKE_SEEDS instead, it writes seed trees of small JPEG and PNG images and gray,
 * palette and 16-bit annotations made with libjpeg and libpng: fuzz_ade20k_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_tree.h"
#include "gpusq/data.h"

#define IMAGES "images/training"
#define ANNOTATIONS "annotations/training"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1 when f is an image the scan lists: a file IMAGES/NAME.{jpg,jpeg,png}, NAME not hidden. */
static int is_image(const gsq_tree_node *f)
{
    size_t n = strlen(IMAGES);
    if (f->is_dir || strncmp(f->path, IMAGES "/", n + 1) != 0) return 0;
    const char *name = f->path + n + 1, *dot = strrchr(name, '.');
    return !strchr(name, '/') && name[0] != '.' && dot &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

/* 1 when image f has an annotation file ANNOTATIONS/STEM.png the tree made. */
static int is_paired(const gsq_tree *t, const gsq_tree_node *f)
{
    const char *name = f->path + strlen(IMAGES) + 1;
    char path[GSQ_TREE_PATH_MAX + 32];
    snprintf(path, sizeof path, ANNOTATIONS "/%.*s.png", (int)(strrchr(name, '.') - name), name);
    const gsq_tree_node *a = gsq_tree_find(t, path);
    return a && !a->is_dir;
}

/* Reads sample i: an image with a label map of its size and labels in [-1, classes), or an error
 * naming the tree with nothing kept. */
static void check_sample(gsq_dataset *ds, size_t i, const char *root)
{
    gsq_sample s;
    gsq_error err = {0};
    if (ds->get(ds, i, &s, &err) != GSQ_OK) {
        if (s.image.pixels || s.map.labels || s.image.width || s.map.width ||
            err.code == GSQ_OK || !strstr(err.msg, root))
            abort();
        return;
    }
    if (!s.image.pixels || !s.map.labels || s.map.width != s.image.width ||
        s.map.height != s.image.height || s.image.width < 1 || s.image.height < 1)
        abort();
    for (size_t p = 0; p < (size_t)s.map.width * (size_t)s.map.height; p++)
        if (s.map.labels[p] < GSQ_IGNORE_LABEL || s.map.labels[p] >= ds->num_classes) abort();
    gsq_sample_free(&s);
}

/* Opens the tree with num_classes and checks the outcome against what the tree holds. */
static void check_open(const gsq_tree *t, int num_classes, int dirs_ok, size_t images,
                       size_t pairs)
{
    gsq_dataset *ds = NULL;
    gsq_error err = {0};
    size_t unpaired = 12345;
    gsq_status st = gsq_dataset_ade20k(&ds, t->root, "training", num_classes, &unpaired, &err);
    if (!dirs_ok || pairs == 0) {
        if (st != GSQ_ERR_MISSING || ds || !strstr(err.msg, t->root)) abort();
        if (dirs_ok && (unpaired != images || !strstr(err.msg, IMAGES))) abort();
        return;
    }
    if (st != GSQ_OK || !ds || ds->size != pairs || unpaired != images - pairs ||
        ds->task != GSQ_TASK_SEGMENT || ds->num_classes != num_classes || ds->class_names ||
        !ds->get || !ds->destroy)
        abort();
    for (size_t i = 0; i < ds->size; i++) check_sample(ds, i, t->root);
    gsq_sample s;
    if (ds->get(ds, ds->size, &s, &err) != GSQ_ERR_ARG || s.image.pixels || s.map.labels) abort();
    gsq_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_tree *t = gsq_tree_of_input(data, size);
    if (!t) return -1;
    const gsq_tree_node *im = gsq_tree_find(t, IMAGES), *an = gsq_tree_find(t, ANNOTATIONS);
    int dirs_ok = im && im->is_dir && an && an->is_dir;
    size_t images = 0, pairs = 0;
    for (int i = 0; i < t->count; i++)
        if (is_image(&t->nodes[i])) {
            images++;
            pairs += (size_t)is_paired(t, &t->nodes[i]);
        }
    static const int classes[] = {1, 150, 32767};
    for (int k = 0; k < 3; k++) check_open(t, classes[k], dirs_ok, images, pairs);
    gsq_tree_clear(t);
    return 0;
}

#else

#include <setjmp.h>

#include <png.h>

enum { W = 3, H = 2 };

/* A w×h PNG in memory of the given color type and depth (gray, palette or RGB) with sample
 * values from a short pattern times `scale`; *n bytes, freed by the caller. */
static char *png_bytes(int w, int h, int color, int depth, int scale, size_t *n)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !info || w > 8 || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_color palette[8] = {{0, 0, 0}};
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(png, info, palette, 8);
    png_write_info(png, info);
    int samples = color == PNG_COLOR_TYPE_RGB ? 3 : 1, bytes = depth == 16 ? 2 : 1;
    uint8_t row[8 * 3 * 2];
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w * samples; i++) {
            int v = ((i + y * 2) % 5) * scale;
            if (bytes == 2) row[2 * i] = (uint8_t)(v >> 8);
            row[bytes * i + bytes - 1] = (uint8_t)v;
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    if (fclose(f) != 0) abort();
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    size_t rgb_n, gray_n, pal_n, wide_n, big_n, tall_n, jpg_n;
    char *rgb = png_bytes(W, H, PNG_COLOR_TYPE_RGB, 8, 50, &rgb_n);
    char *gray = png_bytes(W, H, PNG_COLOR_TYPE_GRAY, 8, 1, &gray_n);         /* values 0..4 */
    char *pal = png_bytes(W, H, PNG_COLOR_TYPE_PALETTE, 8, 1, &pal_n);
    char *wide = png_bytes(W, H, PNG_COLOR_TYPE_GRAY, 16, 40, &wide_n);      /* up to 160 */
    char *big = png_bytes(W, H, PNG_COLOR_TYPE_GRAY, 16, 9000, &big_n);      /* up to 36000 */
    char *tall = png_bytes(W, H + 1, PNG_COLOR_TYPE_GRAY, 8, 1, &tall_n);
    char *jpg = gsq_tree_seed_jpeg(W, H, &jpg_n);
    int bad = 0;

    FILE *f = gsq_tree_seed_open(argv[1], "pairs.tree"); /* pairs, an unpaired image, distractors */
    if (f) {
        gsq_tree_seed_entry(f, IMAGES "/a.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/a.png", gray, gray_n);
        gsq_tree_seed_entry(f, IMAGES "/b.PNG", rgb, rgb_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/b.png", pal, pal_n);
        gsq_tree_seed_entry(f, IMAGES "/c.jpeg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/c.png", wide, wide_n);
        gsq_tree_seed_entry(f, IMAGES "/d.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, IMAGES "/.hidden.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/.hidden.png", gray, gray_n);
        gsq_tree_seed_entry(f, IMAGES "/notes.txt", "not an image", 12);
        gsq_tree_seed_entry(f, IMAGES "/e.png/", NULL, 0);
        gsq_tree_seed_entry(f, ANNOTATIONS "/e.png", gray, gray_n);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "bad_samples.tree"); /* sizes, values, colour, truncation */
    if (f) {
        gsq_tree_seed_entry(f, IMAGES "/size.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/size.png", tall, tall_n);
        gsq_tree_seed_entry(f, IMAGES "/value.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/value.png", big, big_n);
        gsq_tree_seed_entry(f, IMAGES "/colour.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/colour.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, IMAGES "/cut.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/cut.png", gray, gray_n / 2);
        gsq_tree_seed_entry(f, IMAGES "/empty.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/empty.png*0", NULL, 0);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "unpaired.tree"); /* no annotation folder, then none paired */
    if (f) {
        gsq_tree_seed_entry(f, IMAGES "/a.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, "annotations/validation/a.png", gray, gray_n);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "no_pairs.tree");
    if (f) {
        gsq_tree_seed_entry(f, IMAGES "/a.jpg", jpg, jpg_n);
        gsq_tree_seed_entry(f, ANNOTATIONS "/a.jpg", gray, gray_n);
        bad |= fclose(f) != 0;
    }
    free(rgb);
    free(gray);
    free(pal);
    free(wide);
    free(big);
    free(tall);
    free(jpg);
    return bad;
}

#endif
