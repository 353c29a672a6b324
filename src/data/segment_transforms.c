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
 * the order of the steps. */
#include "data/resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MAX_SIDE 16384       /* largest output side (as transforms.c's) */
#define SEG_RESIZE_MAX_SIDE (1 << 28)
#define SEG_JITTER_MAX 2.0f      /* beyond, the contrast factor could be negative */

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
    if (t->size < 1 || t->size > SEG_MAX_SIDE)
        return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: size %d is outside [1, %d]", what, t->size,
                        SEG_MAX_SIDE);
    if (!img->pixels || img->width < 1 || img->height < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: empty image (%dx%d)", what, img->width,
                        img->height);
    if (map && !map->labels) return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: empty label map", what);
    if (map && (map->width != img->width || map->height != img->height))
        return gsq_fail(err, GSQ_ERR_SHAPE, "segment %s transform: label map %dx%d does not match the %dx%d image",
                        what, map->width, map->height, img->width, img->height);
    for (int c = 0; c < 3; c++)
        if (!isfinite(t->mean[c]) || !isfinite(t->std[c]) || t->std[c] == 0.0f)
            return gsq_fail(err, GSQ_ERR_ARG, "segment %s transform: channel %d has mean %g, std %g (std must be "
                            "finite and non-zero)", what, c, (double)t->mean[c], (double)t->std[c]);
    return GSQ_OK;
}

/* Where the crop comes from and what happens to it. */
typedef struct {
    int new_w, new_h;          /* the rescaled image */
    int left, top, crop_w, crop_h;
    int flip;
    int brightness, contrast, saturation; /* which photometric steps apply */
    float delta, alpha, sat;
} seg_params;

/* Uniform in [-half, half). */
static float symmetric(gsq_rng *rng, float half) { return half * (2.0f * gsq_rng_uniform(rng) - 1.0f); }

static gsq_status draw_params(const gsq_transform *t, int w, int h, gsq_rng *rng, seg_params *p, gsq_error *err)
{
    memset(p, 0, sizeof *p);
    if (!(t->scale_min > 0.0f) || !(t->scale_min <= t->scale_max) || !isfinite(t->scale_max))
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: scale range [%g, %g] must satisfy 0 < min <= max",
                        (double)t->scale_min, (double)t->scale_max);
    if (!(t->hflip >= 0.0f && t->hflip <= 1.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: hflip %g is not a probability", (double)t->hflip);
    if (!(t->jitter >= 0.0f && t->jitter <= SEG_JITTER_MAX))
        return gsq_fail(err, GSQ_ERR_ARG, "segment train transform: jitter %g is outside [0, %g]", (double)t->jitter,
                        (double)SEG_JITTER_MAX);
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
    if (t->jitter > 0.0f) {
        float j = t->jitter;
        p->brightness = gsq_rng_uniform(rng) < 0.5f;
        if (p->brightness) p->delta = symmetric(rng, 32.0f / 255.0f * j);
        p->contrast = gsq_rng_uniform(rng) < 0.5f;
        if (p->contrast) p->alpha = 1.0f + symmetric(rng, 0.5f * j);
        p->saturation = gsq_rng_uniform(rng) < 0.5f;
        if (p->saturation) p->sat = 1.0f + symmetric(rng, 0.5f * j);
    }
    return GSQ_OK;
}

static float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* Scales the HSV saturation of v[3] (in [0, 1]) by f: every channel moves away from (or towards)
 * the largest, which keeps hue and value; the smallest stops at 0 (saturation 1). */
static void scale_saturation(float *v, float f)
{
    float hi = fmaxf(v[0], fmaxf(v[1], v[2])), lo = fminf(v[0], fminf(v[1], v[2]));
    if (hi <= lo) return;
    if ((hi - lo) * f > hi) f = hi / (hi - lo);
    for (int c = 0; c < 3; c++) v[c] = clamp01(hi - (hi - v[c]) * f);
}

static void photometric(const seg_params *p, float *v)
{
    for (int c = 0; c < 3 && p->brightness; c++) v[c] = clamp01(v[c] + p->delta);
    for (int c = 0; c < 3 && p->contrast; c++) v[c] = clamp01(v[c] * p->alpha);
    if (p->saturation) scale_saturation(v, p->sat);
}

/* The crop rgb (crop_h, crop_w, 3) and its labels into out (3, size, size) and out_labels (size,
 * size): flipped if asked, jittered, normalised, padded right and bottom. */
static void write_output(const gsq_transform *t, const seg_params *p, const uint8_t *rgb, const int16_t *labels,
                         float *out, int16_t *out_labels)
{
    int s = t->size;
    size_t plane = (size_t)s * s;
    for (int y = 0; y < s; y++) {
        for (int x = 0; x < s; x++) {
            size_t o = (size_t)y * s + x;
            if (y >= p->crop_h || x >= p->crop_w) {
                out[o] = out[plane + o] = out[2 * plane + o] = 0.0f;
                if (out_labels) out_labels[o] = GSQ_IGNORE_LABEL;
                continue;
            }
            size_t i = (size_t)y * p->crop_w + (size_t)(p->flip ? p->crop_w - 1 - x : x);
            float v[3];
            for (int c = 0; c < 3; c++) v[c] = (float)rgb[3 * i + c] / 255.0f;
            photometric(p, v);
            for (int c = 0; c < 3; c++) out[c * plane + o] = (v[c] - t->mean[c]) / t->std[c];
            if (out_labels) out_labels[o] = labels[i];
        }
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
