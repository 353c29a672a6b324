/* What the input transforms share (transform_common.h): the argument checks, the photometric
 * jitter of the segmentation and detection train transforms, and the step that writes an 8-bit
 * crop as the normalised float input. The jitter's arithmetic is described in
 * segment_transforms.c. */
#include "data/transform_common.h"

#include <math.h>
#include <string.h>

gsq_status gsq_transform_check(const gsq_transform *t, const gsq_image *img, const char *what, gsq_error *err)
{
    if (t->size < 1 || t->size > GSQ_TRANSFORM_MAX_SIDE)
        return gsq_fail(err, GSQ_ERR_ARG, "%s transform: size %d is outside [1, %d]", what, t->size,
                        GSQ_TRANSFORM_MAX_SIDE);
    if (!img->pixels || img->width < 1 || img->height < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "%s transform: empty image (%dx%d)", what, img->width, img->height);
    for (int c = 0; c < 3; c++)
        if (!isfinite(t->mean[c]) || !isfinite(t->std[c]) || t->std[c] == 0.0f)
            return gsq_fail(err, GSQ_ERR_ARG, "%s transform: channel %d has mean %g, std %g (std must be finite "
                            "and non-zero)", what, c, (double)t->mean[c], (double)t->std[c]);
    return GSQ_OK;
}

gsq_status gsq_jitter_check(const gsq_transform *t, const char *what, gsq_error *err)
{
    if (!(t->jitter >= 0.0f && t->jitter <= GSQ_JITTER_MAX))
        return gsq_fail(err, GSQ_ERR_ARG, "%s transform: jitter %g is outside [0, %g]", what, (double)t->jitter,
                        (double)GSQ_JITTER_MAX);
    return GSQ_OK;
}

/* Uniform in [-half, half). */
static float symmetric(gsq_rng *rng, float half) { return half * (2.0f * gsq_rng_uniform(rng) - 1.0f); }

void gsq_jitter_draw(const gsq_transform *t, gsq_rng *rng, gsq_jitter *j)
{
    memset(j, 0, sizeof *j);
    if (!(t->jitter > 0.0f)) return;
    float s = t->jitter;
    j->brightness = gsq_rng_uniform(rng) < 0.5f;
    if (j->brightness) j->delta = symmetric(rng, 32.0f / 255.0f * s);
    j->contrast = gsq_rng_uniform(rng) < 0.5f;
    if (j->contrast) j->alpha = 1.0f + symmetric(rng, 0.5f * s);
    j->saturation = gsq_rng_uniform(rng) < 0.5f;
    if (j->saturation) j->sat = 1.0f + symmetric(rng, 0.5f * s);
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

static void photometric(const gsq_jitter *j, float *v)
{
    for (int c = 0; c < 3 && j->brightness; c++) v[c] = clamp01(v[c] + j->delta);
    for (int c = 0; c < 3 && j->contrast; c++) v[c] = clamp01(v[c] * j->alpha);
    if (j->saturation) scale_saturation(v, j->sat);
}

void gsq_transform_write(const gsq_transform *t, const uint8_t *rgb, int w, int h, int flip, const gsq_jitter *j,
                         float *out)
{
    int s = t->size;
    size_t plane = (size_t)s * s;
    for (int y = 0; y < s; y++) {
        for (int x = 0; x < s; x++) {
            size_t o = (size_t)y * s + x;
            if (y >= h || x >= w) {
                out[o] = out[plane + o] = out[2 * plane + o] = 0.0f;
                continue;
            }
            size_t i = (size_t)y * w + (size_t)(flip ? w - 1 - x : x);
            float v[3];
            for (int c = 0; c < 3; c++) v[c] = (float)rgb[3 * i + c] / 255.0f;
            if (j) photometric(j, v);
            for (int c = 0; c < 3; c++) out[c * plane + o] = (v[c] - t->mean[c]) / t->std[c];
        }
    }
}
