/* The segmentation transforms of an 8-bit RGB image and its label map, as mmsegmentation's ADE20K
 * pipeline at one input side, into float (3, size, size) and labels (size, size):
 *   eval  = resize to size × size (bilinear image, nearest labels), normalise;
 *   train = RandomResize (the shorter side to size·r, r uniform in [scale_min, scale_max], aspect
 *           kept, sides rounded as mmcv's rescale_size), RandomCrop(size) at a uniform offset
 *           (the whole side where the rescaled one is shorter), RandomFlip(hflip),
 *           PhotoMetricDistortion without its hue step (below), normalise, and pad to size ×
 *           size at the right and bottom with 0 (the mean colour, after normalisation) and
 *           GSQ_IGNORE_LABEL, as SegDataPreProcessor does.
 * The photometric steps, each drawn with probability 0.5 in this order when t->jitter > 0, work
 * on the pixels as floats in [0, 1], clamped after each: brightness + uniform ±32·jitter/255,
 * contrast × uniform [1 − jitter/2, 1 + jitter/2] (mmsegmentation's contrast is a plain scale),
 * saturation × uniform [1 − jitter/2, 1 + jitter/2] as an HSV saturation scale (hue and value
 * kept, saturation capped at 1). Labels are only ever copied. Random draws come from gsq_rng in
 * the order of the steps (the jitter's steps and the final write are shared with detection's
 * transforms through transform_common.c). */
#include "data/resample.h"
#include "data/transform_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_RESIZE_MAX_SIDE (1 << 28)

void gsq_transform_segment_defaults(gsq_transform *t, int size)
{
    gsq_transform_defaults(t, size); /* ImageNet mean and std, as mmsegmentation's ADE20K */
    t->scale_min = 0.5f;
    t->scale_max = 2.0f;
    t->hflip = 0.5f;
    t->jitter = 1.0f;
}

static gsq_status check_args(const gsq_transform *t, const gsq_image *img, const gsq_label_map *map,
                             const float *out, const int16_t *out_labels, const char *what, gsq_error *err)
{
    if (!t || !img || !out || !map != !out_labels)
        return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: NULL argument", what);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "segment %s", what);
    gsq_status st = gsq_transform_check(t, img, prefix, err);
    if (st != GSQ_OK) return st;
    if (map && !map->labels) return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: empty label map", what);
    if (map && (map->width != img->width || map->height != img->height))
        return gsq_fail(err, GSQ_ERR_SHAPE, "segment %s transform: label map %dx%d does not match the %dx%d image",
                        what, map->width, map->height, img->width, img->height);
    return GSQ_OK;
}

/* Where the crop comes from and what happens to it. */
typedef struct {
    int new_w, new_h;          /* the rescaled image */
    int left, top, crop_w, crop_h;
    int flip;
    gsq_jitter jitter;
} seg_params;

static gsq_status draw_params(const gsq_transform *t, int w, int h, gsq_rng *rng, seg_params *p, gsq_error *err)
{
    memset(p, 0, sizeof *p);
    if (!(t->scale_min > 0.0f) || !(t->scale_min <= t->scale_max) || !isfinite(t->scale_max))
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: scale range [%g, %g] must satisfy 0 < min <= max",
                        (double)t->scale_min, (double)t->scale_max);
    if (!(t->hflip >= 0.0f && t->hflip <= 1.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: hflip %g is not a probability", (double)t->hflip);
    gsq_status st = gsq_jitter_check(t, "segment train", err);
    if (st != GSQ_OK) return st;
    /* mmcv rescale_size: each side int(side · factor + 0.5) */
    float r = t->scale_min + (t->scale_max - t->scale_min) * gsq_rng_uniform(rng);
    double factor = (double)t->size * (double)r / (double)(w < h ? w : h);
    double nw = floor((double)w * factor + 0.5), nh = floor((double)h * factor + 0.5);
    if (nw > SEG_RESIZE_MAX_SIDE || nh > SEG_RESIZE_MAX_SIDE)
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: a %dx%d image rescaled by %g would be %gx%g", w, h,
                        factor, nw, nh);
    p->new_w = nw < 1.0 ? 1 : (int)nw;
    p->new_h = nh < 1.0 ? 1 : (int)nh;
    /* mmsegmentation RandomCrop: offsets uniform over the margin, height first */
    p->crop_h = p->new_h < t->size ? p->new_h : t->size;
    p->crop_w = p->new_w < t->size ? p->new_w : t->size;
    p->top = (int)(gsq_rng_u32(rng) % (uint32_t)(p->new_h - p->crop_h + 1));
    p->left = (int)(gsq_rng_u32(rng) % (uint32_t)(p->new_w - p->crop_w + 1));
    p->flip = gsq_rng_uniform(rng) < t->hflip;
    gsq_jitter_draw(t, rng, &p->jitter);
    return GSQ_OK;
}

/* The crop rgb (crop_h, crop_w, 3) and its labels into out (3, size, size) and out_labels (size,
 * size): flipped if asked, jittered, normalised, padded right and bottom. */
static void write_output(const gsq_transform *t, const seg_params *p, const uint8_t *rgb, const int16_t *labels,
                         float *out, int16_t *out_labels)
{
    gsq_transform_write(t, rgb, p->crop_w, p->crop_h, p->flip, &p->jitter, out);
    if (!out_labels) return;
    int s = t->size;
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            int16_t *o = out_labels + (size_t)y * s + x;
            if (y >= p->crop_h || x >= p->crop_w) *o = GSQ_IGNORE_LABEL;
            else *o = labels[(size_t)y * p->crop_w + (size_t)(p->flip ? p->crop_w - 1 - x : x)];
        }
}

/* Resizes image and labels to p->new_w × p->new_h, keeps the crop, and writes the output. */
static gsq_status resize_crop_write(const gsq_transform *t, const seg_params *p, const gsq_image *img,
                                    const gsq_label_map *map, float *out, int16_t *out_labels, gsq_error *err)
{
    size_t n = (size_t)p->crop_w * (size_t)p->crop_h;
    uint8_t *rgb = malloc(n * 3);
    int16_t *labels = map ? malloc(n * sizeof *labels) : NULL;
    gsq_status st = GSQ_OK;
    if (!rgb || (map && !labels))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "segment transform: out of memory for a %dx%d crop", p->crop_w, p->crop_h);
    if (st == GSQ_OK)
        st = gsq_resize_bilinear(img->pixels, img->width, img->height, (size_t)img->width * 3, p->new_w, p->new_h,
                                 p->left, p->top, p->crop_w, p->crop_h, rgb, err);
    if (st == GSQ_OK && map)
        st = gsq_resize_nearest_labels(map->labels, map->width, map->height, p->new_w, p->new_h, p->left, p->top,
                                       p->crop_w, p->crop_h, labels, err);
    if (st == GSQ_OK) write_output(t, p, rgb, labels, out, out_labels);
    free(rgb);
    free(labels);
    return st;
}

gsq_status gsq_transform_segment_eval(const gsq_transform *t, const gsq_image *img, const gsq_label_map *map,
                                      float *out, int16_t *out_labels, gsq_error *err)
{
    gsq_status st = check_args(t, img, map, out, out_labels, "eval", err);
    if (st != GSQ_OK) return st;
    seg_params p = {.new_w = t->size, .new_h = t->size, .crop_w = t->size, .crop_h = t->size};
    return resize_crop_write(t, &p, img, map, out, out_labels, err);
}

gsq_status gsq_transform_segment_train(const gsq_transform *t, const gsq_image *img, const gsq_label_map *map,
                                       gsq_rng *rng, float *out, int16_t *out_labels, gsq_error *err)
{
    gsq_status st = check_args(t, img, map, out, out_labels, "train", err);
    if (st != GSQ_OK) return st;
    if (!rng) return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: NULL random generator");
    seg_params p;
    st = draw_params(t, img->width, img->height, rng, &p, err);
    if (st != GSQ_OK) return st;
    return resize_crop_write(t, &p, img, map, out, out_labels, err);
}
