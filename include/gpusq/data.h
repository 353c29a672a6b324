/* Data: decoded images and label maps, datasets (built-in synthetic shapes, scenes and detection
 * scenes, CIFAR binary, ImageFolder, the ADE20K and COCO layouts), the transforms that turn an
 * image (and its label map or boxes) into a model input, and the threaded batch loader. */
#ifndef GPUSQ_DATA_H
#define GPUSQ_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/detect.h"
#include "gpusq/rng.h"
#include "gpusq/status.h"
#include "gpusq/task.h"

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
/* Writes an image as an RGB PNG at path, atomically. */
gsq_status gsq_image_save_png(const gsq_image *img, const char *path, gsq_error *err);

/* A label map: a class per pixel, row-major, GSQ_IGNORE_LABEL where no class is given. */
typedef struct {
    int width, height;
    int16_t *labels;
} gsq_label_map;
gsq_status gsq_label_map_alloc(gsq_label_map *map, int width, int height, gsq_error *err);
void gsq_label_map_free(gsq_label_map *map); /* NULL-safe */
/* Decodes a PNG of one channel's raw values (8- or 16-bit grayscale, or a palette's indices) to
 * labels v (not yet mapped: the dataset says what v means); colour PNGs are refused. */
gsq_status gsq_label_png_decode(const void *data, size_t size, const char *label, gsq_label_map *out, gsq_error *err);

/* One sample: its image and its target — a class (classification), a label map of the image's
 * size (segmentation) or its annotated objects in the image's own pixels, crowd regions included
 * (detection). */
typedef struct {
    gsq_image image;
    int label;
    gsq_label_map map;
    gsq_objects objects;
} gsq_sample;
void gsq_sample_free(gsq_sample *s); /* frees image, map and objects, zeroes the struct */

/* A dataset: a fixed number of samples of one task, each decoded on demand. get() must be safe
 * to call from several threads at once on distinct outputs. */
typedef struct gsq_dataset gsq_dataset;
struct gsq_dataset {
    char name[64];           /* "synthetic/train", "cifar10/test", "folder:/path" */
    gsq_task task;           /* what its targets are */
    size_t size;             /* number of samples */
    int num_classes;
    char **class_names;      /* num_classes entries, or NULL when the classes have no names */
    int *category_ids;       /* detection: COCO's category id of each class index (num_classes
                              * entries, owned by the dataset); NULL otherwise */
    /* Decodes sample `index` into *s (image, and label map for segmentation or objects for
     * detection, allocated by get, freed by the caller with gsq_sample_free; the class of a
     * classification sample in s->label). A sample that cannot be decoded returns an error
     * naming it; the loader skips and counts it. */
    gsq_status (*get)(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err);
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

/* The built-in synthetic segmentation dataset (docs/SEGMENTATION.md): `size` scenes of
 * GSQ_SYNTHETIC_SEG_CLASSES classes of shapes over textured backgrounds, `resolution` pixels
 * square, with thin ignored borders around the shapes; deterministic from seed, split 0 (train)
 * and 1 (validation) from disjoint streams. */
#define GSQ_SYNTHETIC_SEG_CLASSES 6
gsq_status gsq_dataset_synthetic_segment(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split,
                                         gsq_error *err);
/* The ADE20K layout: root/images/SPLIT/NAME.jpg (or .png) with root/annotations/SPLIT/NAME.png,
 * SPLIT "training" or "validation"; an annotation's value 0 is ignored and v in 1..num_classes is
 * class v - 1 (a value above num_classes makes that sample fail, named). Images without an
 * annotation are left out, counted in *unpaired (may be NULL) and the first named in the error
 * text of a dataset with none left. */
gsq_status gsq_dataset_ade20k(gsq_dataset **out, const char *root, const char *split, int num_classes,
                              size_t *unpaired, gsq_error *err);
/* Writes every sample of a segmentation dataset in the ADE20K layout under root/images/SPLIT and
 * root/annotations/SPLIT (JPEG quality 95 images, 8-bit PNG annotations: class + 1, ignore 0),
 * each file atomically. */
gsq_status gsq_dataset_write_ade20k(gsq_dataset *ds, const char *root, const char *split, gsq_error *err);

/* The built-in synthetic detection dataset (docs/DATA.md): `size` images, `resolution` pixels
 * square (32 to 4096), of one to six shapes of GSQ_SYNTHETIC_DET_CLASSES classes (disc, square,
 * triangle, ring, cross; colour says nothing about the class) over textured backgrounds, later
 * shapes partly hiding earlier ones (at most about 40% of any); each object's box is the tight
 * bounds of its visible pixels, area w·h, never crowd; image_id is the index, category_ids
 * 1..K. Deterministic from (seed, split, index); split 0 (train) and 1 (validation) from
 * disjoint streams. */
#define GSQ_SYNTHETIC_DET_CLASSES 5
gsq_status gsq_dataset_synthetic_detect(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split,
                                        gsq_error *err);

/* What gsq_dataset_coco left out: the malformed annotations it skipped, and why the first was
 * (naming the file and the annotation's position), for the caller to print. */
typedef struct {
    size_t annotations;
    char first[GSQ_ERROR_MSG_MAX];
} gsq_coco_skips;
/* The COCO layout: root/annotations/instances_SPLIT.json describing the images root/SPLIT/
 * FILE_NAME (JPEG or PNG), SPLIT e.g. "val2017". Classes are the categories sorted by id (class
 * index = position; class_names their names, category_ids their ids); samples are the images
 * sorted by id (image_id = COCO's id), those without annotations included, each with its
 * annotations (bbox, iscrowd, area: the annotation's, w·h when absent) in the file's order. A
 * malformed annotation (bbox not 4 finite numbers or w, h <= 0, unknown image or category,
 * wrong types) is skipped and counted in *skips (may be NULL); a malformed file (not JSON, not an
 * object, images / annotations / categories missing or of the wrong type, a malformed image or
 * category, duplicate ids, no categories) is GSQ_ERR_FORMAT naming it. An image that cannot be
 * read or decoded, differs from its entry's size or whose file_name leaves root/SPLIT fails in
 * get(), named. */
gsq_status gsq_dataset_coco(gsq_dataset **out, const char *root, const char *split, gsq_coco_skips *skips,
                            gsq_error *err);
/* Writes every sample of a detection dataset in the COCO layout: root/SPLIT/NNNNNNNNNNNN.jpg
 * (the image id, 12 digits; JPEG quality 95) and root/annotations/instances_SPLIT.json (images,
 * annotations with ids from 1, categories from category_ids or index + 1 and class_names or
 * "classN"), each file atomically. GSQ_ERR_ARG for duplicate image or category ids, an object's
 * class outside the dataset's or a box or area that is not finite. */
gsq_status gsq_dataset_write_coco(gsq_dataset *ds, const char *root, const char *split, gsq_error *err);

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
    float jitter;                    /* segmentation, detection train: photometric jitter strength (0: none) */
} gsq_transform;

/* Fills the timm/ImageNet defaults for an input side. */
void gsq_transform_defaults(gsq_transform *t, int size);
/* The segmentation defaults (mmsegmentation's ADE20K pipeline at this side): train rescales so
 * the shorter side is size × r, r uniform in [scale_min, scale_max] = [0.5, 2.0], crops size ×
 * size at random (padding with the mean colour and ignored labels where the image is smaller),
 * flips with probability hflip 0.5 and jitters brightness, contrast and saturation (jitter 1:
 * ±32/255 brightness, contrast and saturation × [0.5, 1.5]); eval resizes to size × size
 * (bilinear for the image, nearest for the labels). */
void gsq_transform_segment_defaults(gsq_transform *t, int size);
/* The segmentation transforms of an image and its label map (same size) into float (3, size,
 * size) and labels (size, size); map and out_labels NULL transform the image alone (prediction). */
gsq_status gsq_transform_segment_eval(const gsq_transform *t, const gsq_image *img, const gsq_label_map *map,
                                      float *out, int16_t *out_labels, gsq_error *err);
gsq_status gsq_transform_segment_train(const gsq_transform *t, const gsq_image *img, const gsq_label_map *map,
                                       gsq_rng *rng, float *out, int16_t *out_labels, gsq_error *err);
/* The detection defaults: scale [0.3, 1], ratio [3/4, 4/3], hflip 0.5, jitter 1 (as
 * segmentation's), ImageNet mean and std. */
void gsq_transform_detect_defaults(gsq_transform *t, int size);
/* The detection transforms of an image and its objects (in its pixels; NULL: none) into float
 * (3, size, size) and the training targets (NULL: not wanted): the non-crowd objects' boxes
 * clipped to the part of the image kept, those left under 1 pixel wide or high dropped, as
 * normalised cx, cy, w, h of the output, the first GSQ_DETECT_MAX_TARGETS kept. Eval stretches
 * the whole image to size × size (bilinear, as segmentation's eval); train crops a random box of
 * area fraction U(scale_min, scale_max) and aspect ratio in [ratio_min, ratio_max]
 * (RandomResizedCrop's draw), stretches it to size × size (bilinear), flips it with probability
 * hflip and jitters it as segmentation's train does. Both normalise by mean and std. */
gsq_status gsq_transform_detect_eval(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects,
                                     float *out, gsq_targets *targets, gsq_error *err);
gsq_status gsq_transform_detect_train(const gsq_transform *t, const gsq_image *img, const gsq_objects *objects,
                                      gsq_rng *rng, float *out, gsq_targets *targets, gsq_error *err);
gsq_status gsq_transform_eval(const gsq_transform *t, const gsq_image *img, float *out,
                              gsq_error *err);
gsq_status gsq_transform_train(const gsq_transform *t, const gsq_image *img, gsq_rng *rng,
                               float *out, gsq_error *err);

#endif
