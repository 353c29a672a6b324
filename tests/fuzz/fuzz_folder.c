/* libFuzzer harness for the ImageFolder scan (gsq_dataset_folder): the input is a small directory
 * tree (tests/fuzz/fuzz_tree.h) made in a fresh temporary directory and scanned. From the tree it
 * made, the harness knows what the scan must find: an error naming the root when there is no
 * class folder or no image, else exactly the non-hidden top-level folders, sorted, as classes and
 * every non-hidden *.jpg / *.jpeg / *.png file directly inside one as a sample. The first and last
 * samples are read: decoded with their class's label, or an error naming the file. Built with
 * -DGSQ_FUZZ_MAKE_SEEDS instead, it writes seed trees holding small PNG and JPEG images made with
 * libpng and libjpeg: fuzz_folder_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_tree.h"
#include "gpusq/data.h"
#include "../dataset_sample.h"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return name[0] != '.' && dot &&
           (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
            strcasecmp(dot, ".png") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads sample i: an image with label `want`, or an error naming the root; nothing kept. */
static void check_sample(gsq_dataset *ds, size_t i, int want, const char *root)
{
    gsq_image img;
    gsq_error err = {0};
    int label = -1;
    if (get_image(ds, i, &img, &label, &err) != GSQ_OK) {
        if (img.pixels || img.width || err.code == GSQ_OK || !strstr(err.msg, root)) abort();
        return;
    }
    if (!img.pixels || img.width < 1 || img.height < 1 || label != want) abort();
    gsq_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_tree *t = gsq_tree_of_input(data, size);
    if (!t) return -1;
    /* what the scan must find: classes (sorted) and the number of images in each */
    const char *classes[GSQ_TREE_ENTRIES_MAX * GSQ_TREE_DEPTH_MAX];
    size_t start[GSQ_TREE_ENTRIES_MAX * GSQ_TREE_DEPTH_MAX + 1];
    int nc = 0;
    for (int i = 0; i < t->count; i++)
        if (t->nodes[i].is_dir && gsq_tree_depth(t->nodes[i].path) == 1 && t->nodes[i].path[0] != '.')
            classes[nc++] = t->nodes[i].path;
    qsort(classes, (size_t)nc, sizeof *classes, cmp_str);
    start[0] = 0;
    for (int c = 0; c < nc; c++) {
        size_t len = strlen(classes[c]), n = 0;
        for (int i = 0; i < t->count; i++) {
            const gsq_tree_node *f = &t->nodes[i];
            n += !f->is_dir && gsq_tree_depth(f->path) == 2 &&
                 strncmp(f->path, classes[c], len) == 0 && f->path[len] == '/' &&
                 is_image_name(f->path + len + 1);
        }
        start[c + 1] = start[c] + n;
    }
    size_t samples = start[nc];

    gsq_dataset *ds = NULL;
    gsq_error err = {0};
    gsq_status st = gsq_dataset_folder(&ds, t->root, &err);
    if (nc == 0 || samples == 0) {
        if (st != GSQ_ERR_MISSING || ds || !strstr(err.msg, t->root)) abort();
    } else {
        if (st != GSQ_OK || !ds || ds->num_classes != nc || ds->size != samples ||
            !ds->class_names || !ds->get || !ds->destroy)
            abort();
        for (int c = 0; c < nc; c++)
            if (!ds->class_names[c] || strcmp(ds->class_names[c], classes[c]) != 0) abort();
        size_t probe[2] = {0, samples - 1};
        for (int k = 0; k < 2; k++) {
            int want = 0;
            while (start[want + 1] <= probe[k]) want++;
            check_sample(ds, probe[k], want, t->root);
        }
        gsq_image img;
        int label;
        if (get_image(ds, samples, &img, &label, &err) != GSQ_ERR_ARG || img.pixels) abort();
        gsq_dataset_free(ds);
    }
    gsq_tree_clear(t);
    return 0;
}

#else

#include <setjmp.h>

#include <png.h>

enum { W = 3, H = 2 };

/* A W×H RGB PNG (color 0) or 8-bit gray PNG, in memory; *n bytes, freed by the caller. */
static char *png_bytes(int gray, size_t *n)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, n);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !info || setjmp(png_jmpbuf(png))) abort();
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, 8, gray ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    static uint8_t rows[H][W * 3];
    png_bytep ptrs[H];
    for (int y = 0; y < H; y++) {
        for (int i = 0; i < W * 3; i++) rows[y][i] = (uint8_t)(i * 40 + y * 90);
        ptrs[y] = rows[y];
    }
    png_write_info(png, info);
    png_write_image(png, ptrs);
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
    size_t rgb_n, gray_n, jpg_n;
    char *rgb = png_bytes(0, &rgb_n), *gray = png_bytes(1, &gray_n), *jpg = gsq_tree_seed_jpeg(W, H, &jpg_n);
    int bad = 0;

    FILE *f = gsq_tree_seed_open(argv[1], "two_classes.tree"); /* images in two classes, and distractors */
    if (f) {
        gsq_tree_seed_entry(f, "cat/a.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, "cat/b.JPG", jpg, jpg_n);
        gsq_tree_seed_entry(f, "cat/.hidden.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, "cat/notes.txt", "not an image", 12);
        gsq_tree_seed_entry(f, "dog/c.jpeg", jpg, jpg_n);
        gsq_tree_seed_entry(f, "dog/d.png", gray, gray_n);
        gsq_tree_seed_entry(f, "readme.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, ".git/", NULL, 0);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "nested.tree"); /* an empty class, a folder named x.png, nesting */
    if (f) {
        gsq_tree_seed_entry(f, "a/", NULL, 0);
        gsq_tree_seed_entry(f, "b/x.png/", NULL, 0);
        gsq_tree_seed_entry(f, "b/deep/y.png", rgb, rgb_n);
        gsq_tree_seed_entry(f, "b/z.PNG", gray, gray_n);
        gsq_tree_seed_entry(f, "c/broken.png", rgb, rgb_n / 2);
        gsq_tree_seed_entry(f, "c/empty.jpg*0", NULL, 0);
        bad |= fclose(f) != 0;
    }
    f = gsq_tree_seed_open(argv[1], "no_images.tree"); /* classes without images: an error */
    if (f) {
        gsq_tree_seed_entry(f, "only/", NULL, 0);
        gsq_tree_seed_entry(f, "only/file.bmp*16", "BM", 2);
        bad |= fclose(f) != 0;
    }
    free(rgb);
    free(gray);
    free(jpg);
    return bad;
}

#endif
