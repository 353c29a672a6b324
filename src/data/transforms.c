/* timm's ImageNet input transforms on 8-bit RGB images, written as float (3, size, size):
 *   eval  = Resize(floor(size / crop_pct), bicubic) of the shorter side, CenterCrop(size),
 *           ToTensor, Normalize (timm transforms_imagenet_eval, crop_mode "center");
 *   train = RandomResizedCrop(size, scale, ratio, bicubic), RandomHorizontalFlip(hflip),
 *           ToTensor, Normalize (timm transforms_imagenet_train without colour jitter,
 *           auto-augment or random erasing).
 * Resizing is Pillow's bicubic (resample.c); the integer arithmetic of the sizes and offsets is
 * torchvision's, including Python's round-half-to-even. Random draws come from gsq_rng. */
#include "data/resample.h"
#include "data/transform_common.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest resized side accepted (far beyond any model input). */
#define GSQ_RESIZE_MAX_SIDE (1 << 28)

void gsq_transform_defaults(gsq_transform *t, int size)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float std[3] = {0.229f, 0.224f, 0.225f};
    memset(t, 0, sizeof *t);
    t->size = size;
    t->crop_pct = 0.875f;
    memcpy(t->mean, mean, sizeof mean);
    memcpy(t->std, std, sizeof std);
    t->scale_min = 0.08f;
    t->scale_max = 1.0f;
    t->ratio_min = 3.0f / 4.0f;
    t->ratio_max = 4.0f / 3.0f;
    t->hflip = 0.5f;
}

/* Python's round() to an int: halves go to the even neighbour. Saturates far outside any image
 * side (absurd scale or ratio ranges), so the caller's range checks reject the value. */
static long round_half_even(double x)
{
    if (!(x < 1e15)) return (long)1e15;
    if (x < -1e15) return (long)-1e15;
    double f = floor(x), d = x - f;
    long r = (long)f;
    if (d > 0.5 || (d == 0.5 && (r & 1))) r++;
    return r;
}

/* The double a Python user would have written for this float: the shortest decimal that rounds
 * to it (0.9f → 0.9, not 0.89999997...). Keeps floor(size / crop_pct) equal to timm's, where
 * crop_pct is a Python float. */
static double shortest_decimal(float f)
{
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static gsq_status check_args(const gsq_transform *t, const gsq_image *img, const float *out,
                             const char *what, gsq_error *err)
{
    if (!t || !img || !out)
        return gsq_fail(err, GSQ_ERR_ARG, "%s transform: NULL argument", what);
    return gsq_transform_check(t, img, what, err);
}

/* rgb (size, size, 3) bytes → out (3, size, size): (v / 255 - mean) / std in float, the
 * operations of torchvision's ToTensor and Normalize; flip mirrors each row. */
static void to_tensor_normalize(const gsq_transform *t, const uint8_t *rgb, int flip, float *out)
{
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - t->mean[c]) / t->std[c];
    int s = t->size;
    size_t plane = (size_t)s * s;
    for (int y = 0; y < s; y++) {
        const uint8_t *row = rgb + (size_t)y * s * 3;
        for (int x = 0; x < s; x++) {
            const uint8_t *p = row + (size_t)(flip ? s - 1 - x : x) * 3;
            size_t o = (size_t)y * s + x;
            out[o] = lut[0][p[0]];
            out[plane + o] = lut[1][p[1]];
            out[2 * plane + o] = lut[2][p[2]];
        }
    }
}

/* torchvision CenterCrop's start offset along one side: (in - crop) / 2 rounded half to even,
 * or, when the crop is larger, minus the left/top padding (crop - in) // 2. */
static int center_offset(int in, int crop)
{
    if (crop > in) return -((crop - in) / 2);
    int d = in - crop;
    return d / 2 + ((d & 1) && ((d / 2) & 1)); /* round((d) / 2.0), half to even */
}

gsq_status gsq_transform_eval(const gsq_transform *t, const gsq_image *img, float *out,
                              gsq_error *err)
{
    gsq_status st = check_args(t, img, out, "eval", err);
    if (st != GSQ_OK) return st;
    if (!(t->crop_pct > 0.0f) || !isfinite(t->crop_pct))
        return gsq_fail(err, GSQ_ERR_ARG, "eval transform: crop_pct %g must be positive",
                        (double)t->crop_pct);
    /* timm: scale_size = math.floor(size / crop_pct); torchvision Resize(int) sets the shorter
     * side to it and the longer to int(scale_size * long / short) */
    double scaled = floor((double)t->size / shortest_decimal(t->crop_pct));
    if (scaled < 1.0 || scaled > GSQ_RESIZE_MAX_SIDE)
        return gsq_fail(err, GSQ_ERR_ARG, "eval transform: size %d / crop_pct %g gives a "
                        "resize side of %g", t->size, (double)t->crop_pct, scaled);
    int w = img->width, h = img->height;
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    double new_long = floor((double)((int64_t)scaled * longer) / (double)shorter);
    if (new_long > GSQ_RESIZE_MAX_SIDE)
        return gsq_fail(err, GSQ_ERR_ARG, "eval transform: a %dx%d image resized to a shorter "
                        "side of %g would be %g pixels long", w, h, scaled, new_long);
    int out_w = w <= h ? (int)scaled : (int)new_long;
    int out_h = w <= h ? (int)new_long : (int)scaled;

    int s = t->size;
    uint8_t *rgb = malloc((size_t)s * s * 3);
    if (!rgb)
        return gsq_fail(err, GSQ_ERR_NOMEM, "eval transform: out of memory for a %dx%d crop", s,
                        s);
    st = gsq_resize_bicubic(img->pixels, w, h, (size_t)w * 3, out_w, out_h,
                            center_offset(out_w, s), center_offset(out_h, s), s, s, rgb, err);
    if (st == GSQ_OK) to_tensor_normalize(t, rgb, 0, out);
    free(rgb);
    return st;
}

/* Uniform double in [0, 1) with 53 random bits (as Python's random.random()). */
static double uniform53(gsq_rng *rng)
{
    uint32_t a = gsq_rng_u32(rng) >> 5, b = gsq_rng_u32(rng) >> 6;
    return ((double)a * 67108864.0 + (double)b) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), unbiased (rejection); n >= 1. */
static int uniform_int(gsq_rng *rng, int n)
{
    if (n <= 1) return 0;
    uint64_t limit = ((uint64_t)1 << 32) - (((uint64_t)1 << 32) % (uint64_t)n);
    uint64_t r;
    do {
        r = gsq_rng_u32(rng);
    } while (r >= limit);
    return (int)(r % (uint64_t)n);
}

gsq_status gsq_transform_train_params(const gsq_transform *t, int width, int height,
                                      gsq_rng *rng, gsq_rrc_params *p, gsq_error *err)
{
    if (!t || !rng || !p || width < 1 || height < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "train transform: bad arguments (image %dx%d)", width,
                        height);
    if (!(t->scale_min > 0.0f) || !(t->scale_min <= t->scale_max) || !isfinite(t->scale_max))
        return gsq_fail(err, GSQ_ERR_ARG, "train transform: scale range [%g, %g] must satisfy "
                        "0 < min <= max", (double)t->scale_min, (double)t->scale_max);
    if (!(t->ratio_min > 0.0f) || !(t->ratio_min <= t->ratio_max) || !isfinite(t->ratio_max))
        return gsq_fail(err, GSQ_ERR_ARG, "train transform: ratio range [%g, %g] must satisfy "
                        "0 < min <= max", (double)t->ratio_min, (double)t->ratio_max);
    if (!(t->hflip >= 0.0f && t->hflip <= 1.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "train transform: hflip %g is not a probability",
                        (double)t->hflip);

    /* torchvision RandomResizedCrop.get_params: ten tries of a log-uniform aspect ratio and a
     * uniform area fraction, then a central crop clamped to the ratio range */
    double area = (double)width * (double)height;
    double smin = t->scale_min, smax = t->scale_max;
    double rmin = t->ratio_min, rmax = t->ratio_max;
    double lrmin = log(rmin), lrmax = log(rmax);
    memset(p, 0, sizeof *p);
    int found = 0;
    for (int attempt = 0; attempt < 10 && !found; attempt++) {
        double target = area * (smin + (smax - smin) * uniform53(rng));
        double aspect = exp(lrmin + (lrmax - lrmin) * uniform53(rng));
        long bw = round_half_even(sqrt(target * aspect));
        long bh = round_half_even(sqrt(target / aspect));
        if (bw > 0 && bw <= width && bh > 0 && bh <= height) {
            p->box_w = (int)bw;
            p->box_h = (int)bh;
            p->top = uniform_int(rng, height - (int)bh + 1);
            p->left = uniform_int(rng, width - (int)bw + 1);
            found = 1;
        }
    }
    if (!found) {
        double in_ratio = (double)width / (double)height;
        p->box_w = width;
        p->box_h = height;
        if (in_ratio < rmin) {
            long bh = round_half_even((double)width / rmin);
            p->box_h = (int)(bh < 1 ? 1 : bh > height ? height : bh);
        } else if (in_ratio > rmax) {
            long bw = round_half_even((double)height * rmax);
            p->box_w = (int)(bw < 1 ? 1 : bw > width ? width : bw);
        }
        p->top = (height - p->box_h) / 2;
        p->left = (width - p->box_w) / 2;
        p->fallback = 1;
    }
    /* torchvision RandomHorizontalFlip: flip when rand() < p */
    p->flip = uniform53(rng) < (double)t->hflip;
    return GSQ_OK;
}

gsq_status gsq_transform_train(const gsq_transform *t, const gsq_image *img, gsq_rng *rng,
                               float *out, gsq_error *err)
{
    gsq_status st = check_args(t, img, out, "train", err);
    if (st != GSQ_OK) return st;
    if (!rng) return gsq_fail(err, GSQ_ERR_ARG, "train transform: NULL random generator");
    gsq_rrc_params p;
    st = gsq_transform_train_params(t, img->width, img->height, rng, &p, err);
    if (st != GSQ_OK) return st;

    int s = t->size;
    uint8_t *rgb = malloc((size_t)s * s * 3);
    if (!rgb)
        return gsq_fail(err, GSQ_ERR_NOMEM, "train transform: out of memory for a %dx%d crop",
                        s, s);
    size_t stride = (size_t)img->width * 3;
    const uint8_t *box = img->pixels + (size_t)p.top * stride + (size_t)p.left * 3;
    st = gsq_resize_bicubic(box, p.box_w, p.box_h, stride, s, s, 0, 0, s, s, rgb, err);
    if (st == GSQ_OK) to_tensor_normalize(t, rgb, p.flip, out);
    free(rgb);
    return st;
}
