/* Datasets on disk: CIFAR-10 and CIFAR-100 binary batches written here (a few records with known
 * pixels and labels) read back exactly, bad batches (wrong size, label out of range, missing
 * file, wrong class-name list) rejected naming the file; and an ImageFolder tree (an empty class,
 * a corrupt image, mixed-case extensions, hidden entries, stray files) scanned in sorted order,
 * with get() decoding every image but the corrupt one, also from several threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "gpusq/data.h"
#include "dataset_sample.h"
#include "test_util.h"
#include "tree_files.h"

#define CIFAR_PIXELS 3072

/* ---- CIFAR ---------------------------------------------------------------------------------- */

static uint8_t cifar_pixel(int sample, int c, int p)
{
    return (uint8_t)(sample * 7 + c * 85 + p * 13);
}

/* Writes `count` records for samples first, first + 1, ...: sample s has label (3s + 1) mod
 * num_classes and known pixels; CIFAR-100 records (coarse label = fine / 5) when coarse. */
static void write_batch(const char *rel, int first, int count, int coarse, int num_classes)
{
    size_t rec = CIFAR_PIXELS + 1 + (coarse ? 1 : 0);
    uint8_t *buf = malloc(rec * (size_t)count);
    for (int r = 0; r < count; r++) {
        uint8_t *p = buf + rec * (size_t)r;
        int s = first + r, label = (s * 3 + 1) % num_classes;
        if (coarse) *p++ = (uint8_t)(label / 5);
        *p++ = (uint8_t)label;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 1024; i++) p[c * 1024 + i] = cifar_pixel(s, c, i);
    }
    write_file(rel, buf, rec * (size_t)count);
    free(buf);
}

/* Every sample decodes to its known pixels (interleaved) and label. */
static void check_cifar_samples(gsq_dataset *ds, int num_classes)
{
    int bad = 0;
    for (size_t s = 0; s < ds->size; s++) {
        gsq_image img;
        gsq_error err;
        int label = -1;
        if (get_image(ds, s, &img, &label, &err) != GSQ_OK) {
            CHECK(0, "%s sample %zu: %s", ds->name, s, err.msg);
            continue;
        }
        int ok = img.width == 32 && img.height == 32 && label == ((int)s * 3 + 1) % num_classes;
        for (int i = 0; ok && i < 1024; i++)
            for (int c = 0; c < 3; c++) ok &= img.pixels[i * 3 + c] == cifar_pixel((int)s, c, i);
        bad += !ok;
        gsq_image_free(&img);
    }
    CHECK(bad == 0, "%s: %d samples differ from what was written", ds->name, bad);
}

/* Opening fails with code and a message containing both needles. */
static void expect_cifar_error(const char *rel_dir, int train, gsq_status code, const char *n1,
                               const char *n2)
{
    char dir[256];
    path_of(dir, sizeof dir, rel_dir);
    gsq_dataset *ds = (gsq_dataset *)1;
    gsq_error err = {0};
    gsq_status st = gsq_dataset_cifar(&ds, dir, train, &err);
    CHECK(st == code && ds == NULL, "%s (%s): status %d: %s", rel_dir, n1, st, err.msg);
    CHECK(strstr(err.msg, n1) && strstr(err.msg, n2), "message '%s' lacks '%s' or '%s'", err.msg,
          n1, n2);
}

static void test_cifar10(void)
{
    make_dirs("c10");
    const int counts[5] = {3, 2, 1, 2, 4};
    int first = 0;
    char rel[64];
    for (int b = 0; b < 5; b++) {
        snprintf(rel, sizeof rel, "c10/data_batch_%d.bin", b + 1);
        write_batch(rel, first, counts[b], 0, 10);
        first += counts[b];
    }
    write_batch("c10/test_batch.bin", 0, 3, 0, 10);
    const char *meta =
        "airplane\nautomobile\nbird\r\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n\n";
    write_file("c10/batches.meta.txt", meta, strlen(meta));

    char dir[256];
    path_of(dir, sizeof dir, "c10");
    gsq_dataset *ds = NULL;
    gsq_error err;
    CHECK(gsq_dataset_cifar(&ds, dir, 1, &err) == GSQ_OK, "cifar10 train: %s", err.msg);
    if (ds) {
        CHECK(ds->size == 12 && ds->num_classes == 10, "size %zu, %d classes", ds->size,
              ds->num_classes);
        CHECK(strcmp(ds->name, "cifar10/train") == 0, "name %s", ds->name);
        CHECK(ds->class_names && strcmp(ds->class_names[0], "airplane") == 0 &&
              strcmp(ds->class_names[3], "cat") == 0 && strcmp(ds->class_names[9], "truck") == 0,
              "class names wrong");
        check_cifar_samples(ds, 10);
        gsq_image img;
        int label;
        CHECK(get_image(ds, 12, &img, &label, &err) == GSQ_ERR_ARG, "sample 12 of 12 accepted");
    }
    gsq_dataset_free(ds);
    ds = NULL;
    CHECK(gsq_dataset_cifar(&ds, dir, 0, &err) == GSQ_OK, "cifar10 test: %s", err.msg);
    if (ds) {
        CHECK(ds->size == 3 && strcmp(ds->name, "cifar10/test") == 0, "test split: %zu", ds->size);
        check_cifar_samples(ds, 10);
    }
    gsq_dataset_free(ds);
    gsq_dataset_free(NULL);

    /* Bad files, one at a time, each repaired afterwards. */
    write_batch("c10/data_batch_3.bin", 5, 1, 0, 10);
    char path[256];
    path_of(path, sizeof path, "c10/data_batch_3.bin");
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    expect_cifar_error("c10", 1, GSQ_ERR_FORMAT, "data_batch_3.bin", "whole");
    write_batch("c10/data_batch_3.bin", 5, 1, 0, 10);
    write_file("c10/data_batch_3.bin", "", 0);
    expect_cifar_error("c10", 1, GSQ_ERR_FORMAT, "data_batch_3.bin", "non-zero");
    write_batch("c10/data_batch_3.bin", 5, 1, 0, 10);

    path_of(path, sizeof path, "c10/data_batch_2.bin");
    f = fopen(path, "r+b");
    fseek(f, CIFAR_PIXELS + 1, SEEK_SET); /* label of record 1 */
    fputc(10, f);
    fclose(f);
    expect_cifar_error("c10", 1, GSQ_ERR_FORMAT, "data_batch_2.bin", "record 1: label 10");
    write_batch("c10/data_batch_2.bin", 3, 2, 0, 10);

    char moved[256];
    path_of(path, sizeof path, "c10/data_batch_4.bin");
    path_of(moved, sizeof moved, "c10/away.bin");
    rename(path, moved);
    expect_cifar_error("c10", 1, GSQ_ERR_MISSING, "data_batch_4.bin", "missing");
    rename(moved, path);

    write_file("c10/batches.meta.txt", "a\nb\nc\n", 6);
    expect_cifar_error("c10", 0, GSQ_ERR_FORMAT, "batches.meta.txt", "3 class names, expected 10");
    /* found by tests/fuzz/fuzz_cifar.c: the name "c\t" was cut at the NUL, its tab kept */
    write_file("c10/batches.meta.txt", "0\n1\n2\n3\n4\n5\n6\n7\n8\nc\t\0x\n", 23);
    expect_cifar_error("c10", 0, GSQ_ERR_FORMAT, "batches.meta.txt", "NUL byte");
    path_of(path, sizeof path, "c10/batches.meta.txt");
    unlink(path);
    ds = NULL;
    CHECK(gsq_dataset_cifar(&ds, dir, 0, &err) == GSQ_OK && ds && ds->class_names == NULL,
          "no batches.meta.txt: %s", err.msg);
    gsq_dataset_free(ds);
}

static void test_cifar100(void)
{
    make_dirs("c100");
    write_batch("c100/train.bin", 0, 40, 1, 100);
    write_batch("c100/test.bin", 0, 5, 1, 100);
    char names[100 * 8];
    size_t n = 0;
    for (int c = 0; c < 100; c++)
        n += (size_t)snprintf(names + n, sizeof names - n, "cls%02d\n", c);
    write_file("c100/fine_label_names.txt", names, n);

    char dir[256];
    path_of(dir, sizeof dir, "c100");
    gsq_dataset *ds = NULL;
    gsq_error err;
    CHECK(gsq_dataset_cifar(&ds, dir, 1, &err) == GSQ_OK, "cifar100 train: %s", err.msg);
    if (ds) {
        CHECK(ds->size == 40 && ds->num_classes == 100 && strcmp(ds->name, "cifar100/train") == 0,
              "%s: size %zu, %d classes", ds->name, ds->size, ds->num_classes);
        CHECK(ds->class_names && strcmp(ds->class_names[42], "cls42") == 0, "class names wrong");
        check_cifar_samples(ds, 100); /* the fine label, not the coarse one */
    }
    gsq_dataset_free(ds);

    uint8_t rec[CIFAR_PIXELS + 2] = {20, 3};
    write_file("c100/test.bin", rec, sizeof rec);
    expect_cifar_error("c100", 0, GSQ_ERR_FORMAT, "test.bin", "record 0: coarse label 20");
    rec[0] = 0;
    rec[1] = 100;
    write_file("c100/test.bin", rec, sizeof rec);
    expect_cifar_error("c100", 0, GSQ_ERR_FORMAT, "test.bin", "record 0: label 100");
    write_file("c100/test.bin", rec, CIFAR_PIXELS + 1); /* a CIFAR-10-sized record */
    expect_cifar_error("c100", 0, GSQ_ERR_FORMAT, "test.bin", "3074-byte");

    make_dirs("nothing");
    expect_cifar_error("nothing", 1, GSQ_ERR_MISSING, "nothing", "no CIFAR-10");
    expect_cifar_error("absent", 1, GSQ_ERR_IO, "absent", "not a directory");
}

/* ---- ImageFolder ---------------------------------------------------------------------------- */

static void write_png(const char *rel, int w, int h)
{
    char path[256];
    path_of(path, sizeof path, rel);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    uint8_t row[64 * 3];
    if (!f || !png || !info || w > 64 || setjmp(png_jmpbuf(png))) die("cannot write", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) {
        for (int i = 0; i < w * 3; i++) row[i] = (uint8_t)(y * 16 + i);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void write_jpeg(const char *rel, int w, int h)
{
    char path[256];
    path_of(path, sizeof path, rel);
    FILE *f = fopen(path, "wb");
    if (!f || w > 64) die("cannot write", path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 3];
    for (int i = 0; i < w * 3; i++) row[i] = (uint8_t)(i * 5);
    for (int y = 0; y < h; y++) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

typedef struct {
    gsq_dataset *ds;
    int failures;
} reader;

/* Reads every sample 5 times; counts results that differ from the expected ones. */
static void *read_all(void *arg)
{
    reader *r = arg;
    const int want_w[4] = {9, 5, 0, 7};
    for (int round = 0; round < 5; round++)
        for (size_t s = 0; s < r->ds->size; s++) {
            gsq_image img;
            gsq_error err;
            int label;
            gsq_status st = get_image(r->ds, s, &img, &label, &err);
            if ((st == GSQ_OK) != (want_w[s] > 0) || (st == GSQ_OK && img.width != want_w[s]))
                r->failures++;
            gsq_image_free(&img);
        }
    return NULL;
}

static void test_folder(void)
{
    make_dirs("folder");
    make_dirs("folder/c_dog");
    make_dirs("folder/a_empty");
    make_dirs("folder/b_cat");
    make_dirs("folder/.hidden_class");
    make_dirs("folder/b_cat/nested.jpg"); /* a folder with an image's name: not an image */
    write_jpeg("folder/b_cat/img0.jpg", 9, 4);
    write_png("folder/b_cat/img1.PNG", 5, 3);
    write_png("folder/b_cat/.hidden.png", 2, 2);
    write_file("folder/b_cat/notes.txt", "not an image", 12);
    write_file("folder/c_dog/broken.png", "\x89PNG\r\n\x1A\nthis is not a png", 25);
    write_jpeg("folder/c_dog/x.JpEg", 7, 6);
    write_png("folder/.hidden_class/y.png", 2, 2);
    write_png("folder/stray.png", 2, 2);

    char root[256], broken[256];
    path_of(root, sizeof root, "folder/");
    path_of(broken, sizeof broken, "folder/c_dog/broken.png");
    gsq_dataset *ds = NULL;
    gsq_error err;
    CHECK(gsq_dataset_folder(&ds, root, &err) == GSQ_OK, "folder: %s", err.msg);
    if (!ds) return;
    CHECK(ds->size == 4 && ds->num_classes == 3, "size %zu, %d classes", ds->size, ds->num_classes);
    CHECK(strncmp(ds->name, "folder:", 7) == 0 && strstr(ds->name, "/folder") &&
          ds->name[strlen(ds->name) - 1] != '/', "name %s", ds->name);
    CHECK(ds->class_names && strcmp(ds->class_names[0], "a_empty") == 0 &&
          strcmp(ds->class_names[1], "b_cat") == 0 && strcmp(ds->class_names[2], "c_dog") == 0,
          "class names wrong");
    /* Sorted: b_cat/img0.jpg, b_cat/img1.PNG, c_dog/broken.png, c_dog/x.JpEg. */
    const int want_label[4] = {1, 1, 2, 2}, want_w[4] = {9, 5, 0, 7}, want_h[4] = {4, 3, 0, 6};
    for (size_t s = 0; s < 4 && s < ds->size; s++) {
        gsq_image img;
        int label = -1;
        gsq_status st = get_image(ds, s, &img, &label, &err);
        if (want_w[s] == 0) {
            CHECK(st == GSQ_ERR_FORMAT && img.pixels == NULL && strstr(err.msg, broken),
                  "corrupt sample %zu: status %d: %s", s, st, err.msg);
        } else {
            CHECK(st == GSQ_OK && label == want_label[s] && img.width == want_w[s] &&
                  img.height == want_h[s], "sample %zu: status %d, label %d, %dx%d: %s", s, st,
                  label, img.width, img.height, st == GSQ_OK ? "" : err.msg);
        }
        gsq_image_free(&img);
    }

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

    make_dirs("bare");
    make_dirs("bare/empty1");
    make_dirs("bare/empty2");
    write_file("bare/empty2/a.txt", "x", 1);
    char bare[256];
    path_of(bare, sizeof bare, "bare");
    ds = (gsq_dataset *)1;
    CHECK(gsq_dataset_folder(&ds, bare, &err) == GSQ_ERR_MISSING && ds == NULL &&
          strstr(err.msg, bare) && strstr(err.msg, "no images"), "no images: %s", err.msg);
    path_of(bare, sizeof bare, "bare/empty1");
    CHECK(gsq_dataset_folder(&ds, bare, &err) == GSQ_ERR_MISSING &&
          strstr(err.msg, "no class folders"), "no classes: %s", err.msg);
    path_of(bare, sizeof bare, "absent");
    CHECK(gsq_dataset_folder(&ds, bare, &err) == GSQ_ERR_IO && strstr(err.msg, bare),
          "absent root: %s", err.msg);
}

int main(void)
{
    if (!tmp_dir_make("datasets")) return 1;
    test_cifar10();
    test_cifar100();
    test_folder();
    tmp_dir_remove();
    return test_finish("test_datasets");
}
