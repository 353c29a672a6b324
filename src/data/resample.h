/* Internal to src/data: PIL's bicubic resize, a bilinear resize and a nearest-neighbour resize of
 * label maps (resample.c), and the random-resized-crop sampler (transforms.c), exposed to the
 * tests, which compare them with Pillow and torchvision. */
#ifndef GSQ_DATA_RESAMPLE_H
#define GSQ_DATA_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/data.h"

/* PIL's fixed-point precision for 8-bit resampling: weights are scaled by 2^22. */
#define GSQ_RESAMPLE_PRECISION_BITS 22

/* Resizes the src_w × src_h RGB image at src (rows `src_stride` bytes apart, 3 bytes a pixel)
 * to out_w × out_h as Pillow's Image.resize(size, Image.BICUBIC) does, and writes only the
 * window [x0, x0 + win_w) × [y0, y0 + win_h) of that result to dst (win_h, win_w, 3), rows
 * packed. Window pixels outside the result are 0 (torchvision's CenterCrop padding). Computing a
 * window gives the same bytes as resizing everything and cropping: every output pixel depends
 * only on its own row and column filters. */
gsq_status gsq_resize_bicubic(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                              int out_w, int out_h, int x0, int y0, int win_w, int win_h,
                              uint8_t *dst, gsq_error *err);

/* Resizes the src_w × src_h RGB image at src (rows `src_stride` bytes apart) to out_w × out_h
 * with the geometry of OpenCV's cv2.resize(INTER_LINEAR), which mmsegmentation's resizes use:
 * output pixel o reads input position (o + 0.5)·in / out − 0.5 on each axis, clamped to the edge
 * pixels, from its two neighbours (no antialiasing when shrinking); the weights are float and
 * the result is rounded to the nearest byte (OpenCV's 11-bit fixed point may differ by one
 * level). Equal sizes copy the bytes. Writes only the window [x0, x0 + win_w) × [y0, y0 + win_h),
 * which must lie inside the result, to dst (win_h, win_w, 3), rows packed. */
gsq_status gsq_resize_bilinear(const uint8_t *src, int src_w, int src_h, size_t src_stride,
                               int out_w, int out_h, int x0, int y0, int win_w, int win_h,
                               uint8_t *dst, gsq_error *err);

/* Resizes the src_w × src_h label map at src (rows packed) to out_w × out_h by nearest neighbour:
 * output pixel o takes the input pixel that holds its centre, floor((o + 0.5)·in / out), the
 * same geometry as gsq_resize_bilinear (OpenCV's INTER_NEAREST takes floor(o·in / out), up to
 * half an input pixel to the left). Labels are copied, never mixed. Writes only the window, as
 * gsq_resize_bilinear, to dst (win_h, win_w). */
gsq_status gsq_resize_nearest_labels(const int16_t *src, int src_w, int src_h, int out_w, int out_h,
                                     int x0, int y0, int win_w, int win_h, int16_t *dst,
                                     gsq_error *err);

/* The random draws of gsq_transform_train for a width × height image, in the order it makes
 * them: the crop box (top, left, box_h, box_w) of RandomResizedCrop and the flip. */
typedef struct {
    int top, left, box_h, box_w;
    int flip;
    int fallback; /* 1 when the ten attempts failed and the central crop was used */
} gsq_rrc_params;

gsq_status gsq_transform_train_params(const gsq_transform *t, int width, int height,
                                      gsq_rng *rng, gsq_rrc_params *p, gsq_error *err);

#endif
