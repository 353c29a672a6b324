/* Internal to src/data: what the input transforms share (transform_common.c): checking a
 * transform and its image, the photometric jitter of the segmentation and detection train
 * transforms (drawn, then applied per pixel), and their last step, an 8-bit crop flipped,
 * jittered, normalised and padded into the float input. */
#ifndef GSQ_DATA_TRANSFORM_COMMON_H
#define GSQ_DATA_TRANSFORM_COMMON_H

#include <stdint.h>

#include "gpusq/data.h"

/* Largest output side accepted (far beyond any model input). */
#define GSQ_TRANSFORM_MAX_SIDE 16384
/* Largest jitter strength: beyond, the contrast factor could be negative. */
#define GSQ_JITTER_MAX 2.0f

/* GSQ_ERR_ARG, prefixed "WHAT transform: ", unless t's size is in [1, GSQ_TRANSFORM_MAX_SIDE],
 * img has pixels and a positive size, and every channel's mean and std are finite with std
 * non-zero. t and img must not be NULL. */
gsq_status gsq_transform_check(const gsq_transform *t, const gsq_image *img, const char *what, gsq_error *err);

/* The photometric steps drawn for one input (segment_transforms.c describes them). */
typedef struct {
    int brightness, contrast, saturation; /* which steps apply */
    float delta, alpha, sat;
} gsq_jitter;

/* GSQ_ERR_ARG, prefixed as gsq_transform_check's, unless t->jitter is in [0, GSQ_JITTER_MAX]. */
gsq_status gsq_jitter_check(const gsq_transform *t, const char *what, gsq_error *err);
/* Draws the steps from rng when t->jitter > 0 (none, and no draws, otherwise). */
void gsq_jitter_draw(const gsq_transform *t, gsq_rng *rng, gsq_jitter *j);

/* Writes rgb (h, w, 3; w, h <= t->size) into out (3, size, size): output pixel (x, y) with x < w
 * and y < h is rgb's (flip ? w - 1 - x : x, y) as floats v / 255, jittered (j NULL: not),
 * normalised by mean and std; the rest of out is 0. */
void gsq_transform_write(const gsq_transform *t, const uint8_t *rgb, int w, int h, int flip, const gsq_jitter *j,
                         float *out);

#endif
