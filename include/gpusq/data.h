/* Data: decoded images, datasets (built-in synthetic shapes, CIFAR binary, ImageFolder), the
 * timm-style transforms that turn an image into a model input, and the threaded batch loader. */
#ifndef GPUSQ_DATA_H
#define GPUSQ_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/rng.h"
#include "gpusq/status.h"

/* An 8-bit RGB image, row-major, interleaved: pixels[(y·width + x)·3 + c]. */
typedef struct {
    int width, height;
    uint8_t *pixels;
} gsq_image;

/* Allocates pixels for a width × height image (contents undefined). */
gsq_status gsq_image_alloc(gsq_image *img, int width, int height, gsq_error *err);
void gsq_image_free(gsq_image *img); /* frees pixels, zeroes the struct; NULL-safe */

/* Decodes a JPEG or PNG (chosen by its signature) to 8-bit RGB: grayscale is replicated, CMYK
 * and YCCK JPEGs are converted, alpha is dropped (as PIL's convert('RGB')), 16-bit samples keep
 * their high byte, palettes are expanded. label names the source in error messages. */
gsq_status gsq_image_decode(const void *data, size_t size, const char *label, gsq_image *out,
                            gsq_error *err);
gsq_status gsq_image_load(const char *path, gsq_image *out, gsq_error *err);

/* A dataset: a fixed number of labelled samples, each decoded on demand. get() must be safe to
 * call from several threads at once on distinct gsq_image outputs. */
typedef struct gsq_dataset gsq_dataset;
struct gsq_dataset {
    char name[64];           /* "synthetic/train", "cifar10/test", "folder:/path" */
    size_t size;             /* number of samples */
    int num_classes;
    char **class_names;      /* num_classes entries, or NULL when the classes have no names */
    /* Decodes sample `index` into *img (allocated by get, freed by the caller with
     * gsq_image_free) and its class into *label. A sample that cannot be decoded returns an
     * error naming it; the loader skips and counts it. */
    gsq_status (*get)(gsq_dataset *ds, size_t index, gsq_image *img, int *label, gsq_error *err);
    void (*destroy)(gsq_dataset *ds); /* frees everything, the struct itself included */
    void *impl;
};
void gsq_dataset_free(gsq_dataset *ds); /* NULL-safe */

/* The built-in synthetic dataset (docs/DATA.md): `size` samples of procedurally drawn shapes and
 * patterns in GSQ_SYNTHETIC_CLASSES classes, `resolution` pixels square, deterministic from seed;
 * split 0 (train) and 1 (validation) draw from disjoint streams. */
#define GSQ_SYNTHETIC_CLASSES 10
gsq_status gsq_dataset_synthetic(gsq_dataset **out, size_t size, int resolution, uint64_t seed,
                                 int split, gsq_error *err);
/* CIFAR-10 or CIFAR-100 binary files in dir (data_batch_1..5.bin / test_batch.bin, or
 * train.bin / test.bin with coarse and fine labels; the fine label is used). */
gsq_status gsq_dataset_cifar(gsq_dataset **out, const char *dir, int train, gsq_error *err);
/* ImageFolder: root/CLASS/FILE.{jpg,jpeg,png} (case-insensitive), class index = position of the
 * folder name in sorted order, files sorted within a class. */
gsq_status gsq_dataset_folder(gsq_dataset **out, const char *root, gsq_error *err);

/* Input transforms, as timm's: eval resizes the shorter side to size / crop_pct (bicubic, as
 * PIL), centre-crops size × size; train is RandomResizedCrop(size, scale, ratio) (bicubic) and a
 * horizontal flip with probability hflip. Both end with x / 255 normalised by mean and std,
 * written as float (3, size, size). */
typedef struct {
    int size;
    float crop_pct;                  /* eval: 0.875 for timm's ViT/DeiT at 224 */
    float mean[3], std[3];           /* ImageNet defaults: 0.485 0.456 0.406 / 0.229 0.224 0.225 */
    float scale_min, scale_max;      /* train: 0.08, 1.0 */
    float ratio_min, ratio_max;      /* train: 3/4, 4/3 */
    float hflip;                     /* train: 0.5 */
} gsq_transform;

/* Fills the timm/ImageNet defaults for an input side. */
void gsq_transform_defaults(gsq_transform *t, int size);
gsq_status gsq_transform_eval(const gsq_transform *t, const gsq_image *img, float *out,
                              gsq_error *err);
gsq_status gsq_transform_train(const gsq_transform *t, const gsq_image *img, gsq_rng *rng,
                               float *out, gsq_error *err);

#endif
