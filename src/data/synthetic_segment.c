/* The built-in synthetic segmentation dataset (docs/SEGMENTATION.md): scenes of one to four shapes (disc,
 * square, triangle, ring, striped patch) over a textured gradient background, each pixel labelled
 * with the class of the shape on top, or background. Sample `index` of a split is a function of
 * (seed, split, index) alone, so any sample can be drawn on its own, from any thread.
 *
 * Drawing follows the classification set (synthetic.c, primitives in synthetic_draw.c): signed
 * distances at pixel centres in normalised units, coverage clamp(0.5 - d / pixel). A pixel that
 * a shape covers completely takes its class; one that it covers partly (its boundary passes within
 * half a pixel of the centre) is GSQ_IGNORE_LABEL, a band one pixel wide along every visible
 * boundary. The classes differ in shape and in hue: each class's colours lie around a hue of its
 * own (± hue_spread, at least half the chroma that fits) and lean brighter or darker than the
 * background, more or less shaded; backgrounds have any hue, so a patch's colour alone is a clue,
 * not an answer. */
#include "gpusq/data.h"

#include "data/synthetic_draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEG_MAX_RESOLUTION 4096
#define SEG_MAX_SHAPES 4
#define SEG_PURPOSE 3 /* random streams 1 and 2 are the classification set's */
#define SEG_BOX_HALF 0.70710678f /* half side of a square of circumradius 1 */

enum { C_BACKGROUND, C_DISC, C_SQUARE, C_TRIANGLE, C_RING, C_STRIPES };

static const char *const seg_class_names[GSQ_SYNTHETIC_SEG_CLASSES] = {
    "background", "disc", "square", "triangle", "ring", "stripes",
};

/* Per class: size as the radius of the circumscribed circle (normalised units, areas roughly
 * equal across classes), the probability of a shape brighter than the background, the largest
 * chroma of its colours and the largest linear shading across it. */
static const struct {
    float size_min, size_max;
    float brighter, chroma, shading_max;
    float hue;          /* the class's hue, radians around the chroma plane */
} seg_style[GSQ_SYNTHETIC_SEG_CLASSES] = {
    [C_DISC] = {0.30f, 0.55f, 0.70f, 0.45f, 0.35f, 0.0f},
    [C_SQUARE] = {0.38f, 0.68f, 0.50f, 0.45f, 0.15f, 1.2566371f},
    [C_TRIANGLE] = {0.46f, 0.82f, 0.35f, 0.45f, 0.15f, 2.5132742f},
    [C_RING] = {0.45f, 0.72f, 0.60f, 0.60f, 0.15f, 3.7699112f},
    [C_STRIPES] = {0.36f, 0.62f, 0.50f, 0.45f, 0.15f, 5.0265484f},
};

/* The knobs of the scene shared by all classes. */
static const struct {
    float contrast_min, contrast_max;   /* shape vs. background luminance */
    float bg_luma_min, bg_luma_max;     /* background mean luminance */
    float bg_gradient, texture_max;     /* background gradient and texture (synthetic_draw.h) */
    float ring_inner_min, ring_inner_max; /* hole radius / outer radius */
    float period_min, period_max;       /* stripes period, normalised units */
    float stripe_back_min, stripe_back_max; /* second stripe colour: this far back to the bg */
    float spacing;                      /* centres at least spacing·(r1 + r2) apart if possible */
    int placement_tries;
    float gain_min, gain_max, offset_max; /* global brightness: v·gain + offset */
    float noise_max;                    /* pixel noise std (of 1.0 full scale) */
    float hue_spread, chroma_least;     /* a class's hue ± spread (radians), chroma from this fraction */
} S = {
    .contrast_min = 0.12f, .contrast_max = 0.50f,
    .bg_luma_min = 0.10f, .bg_luma_max = 0.90f,
    .bg_gradient = 0.30f, .texture_max = 0.15f,
    .ring_inner_min = 0.40f, .ring_inner_max = 0.62f,
    .period_min = 0.18f, .period_max = 0.34f,
    .stripe_back_min = 0.35f, .stripe_back_max = 0.85f,
    .spacing = 0.75f,
    .placement_tries = 8,
    .gain_min = 0.80f, .gain_max = 1.20f, .offset_max = 0.08f,
    .noise_max = 0.05f,
    .hue_spread = 0.35f, .chroma_least = 0.5f,
};

/* A colour of luminance y near class cls's hue. */
static void class_color(gsq_rng *r, int cls, float y, gsq_syn_rgb *out)
{
    float h = seg_style[cls].hue + uni(r, -S.hue_spread, S.hue_spread);
    const float hue[3] = {cosf(h), cosf(h - 2.0943951f), cosf(h + 2.0943951f)};
    gsq_syn_color_toward(r, y, hue, S.chroma_least, seg_style[cls].chroma, out);
}

/* One shape in its local frame (circumradius 1), placed by centre, rotation and size. */
typedef struct {
    int cls;
    float cx, cy, cs, sn, size;   /* local q = rotate(-angle)(p - c) / size */
    float inner;                  /* ring: hole radius */
    gsq_syn_star star;            /* triangle */
    int stripe_box;               /* stripes: 1 = square patch, 0 = disc patch */
    float period, phase;          /* stripes, local units */
    gsq_syn_rgb col, col2;        /* col2: stripes' second colour */
    float shade_x, shade_y;       /* local linear shading of the colour */
} shape;

typedef struct {
    uint64_t seed;
    int split, resolution;
    char names[GSQ_SYNTHETIC_SEG_CLASSES][16];
    char *name_ptrs[GSQ_SYNTHETIC_SEG_CLASSES];
} seg_impl;

/* Signed distance of the shape at local point (x, y), in local units; every shape lies within
 * the unit circle. */
static float shape_sd(const shape *sh, float x, float y)
{
    float len = sqrtf(x * x + y * y);
    switch (sh->cls) {
    case C_SQUARE:
        return gsq_syn_sd_box(x, y, SEG_BOX_HALF, SEG_BOX_HALF);
    case C_TRIANGLE:
        return gsq_syn_sd_star(&sh->star, x, y);
    case C_RING:
        return fabsf(len - 0.5f * (1.0f + sh->inner)) - 0.5f * (1.0f - sh->inner);
    case C_STRIPES:
        return sh->stripe_box ? gsq_syn_sd_box(x, y, SEG_BOX_HALF, SEG_BOX_HALF) : len - 1.0f;
    default:
        return len - 1.0f;
    }
}

/* A shape of class cls over a background of luminance y_bg, away from the shapes placed so far
 * when the placement tries allow. */
static void random_shape(shape *sh, gsq_rng *r, int cls, float y_bg, const shape *placed, int n)
{
    memset(sh, 0, sizeof *sh);
    sh->cls = cls;
    sh->size = uni(r, seg_style[cls].size_min, seg_style[cls].size_max);
    float ang = uni(r, 0.0f, 2.0f * SYN_PI);
    sh->cs = cosf(ang);
    sh->sn = sinf(ang);
    float margin = 1.0f - 0.4f * sh->size;
    for (int t = 0, clear = 0; t < S.placement_tries && !clear; t++) {
        sh->cx = uni(r, -margin, margin);
        sh->cy = uni(r, -margin, margin);
        clear = 1;
        for (int i = 0; i < n; i++) {
            float dx = sh->cx - placed[i].cx, dy = sh->cy - placed[i].cy;
            if (sqrtf(dx * dx + dy * dy) < S.spacing * (sh->size + placed[i].size)) clear = 0;
        }
    }
    if (cls == C_TRIANGLE) gsq_syn_star_init(&sh->star, 3, cosf(SYN_PI / 3.0f));
    if (cls == C_RING) sh->inner = uni(r, S.ring_inner_min, S.ring_inner_max);
    /* brighter or darker as the class leans, unless that leaves the range */
    float contrast = uni(r, S.contrast_min, S.contrast_max);
    int brighter = gsq_rng_uniform(r) < seg_style[cls].brighter;
    if (y_bg + contrast > 0.98f) brighter = 0;
    if (y_bg - contrast < 0.02f) brighter = 1;
    float y_obj = brighter ? y_bg + contrast : y_bg - contrast;
    class_color(r, cls, y_obj, &sh->col);
    if (cls == C_STRIPES) {
        sh->stripe_box = (int)(gsq_rng_u32(r) & 1);
        sh->period = uni(r, S.period_min, S.period_max) / sh->size;
        sh->phase = gsq_rng_uniform(r);
        float back = uni(r, S.stripe_back_min, S.stripe_back_max);
        class_color(r, cls, y_obj + (y_bg - y_obj) * back, &sh->col2);
    }
    float shade = uni(r, 0.0f, seg_style[cls].shading_max), sa = uni(r, 0.0f, 2.0f * SYN_PI);
    sh->shade_x = shade * cosf(sa);
    sh->shade_y = shade * sinf(sa);
}

/* Composites the shape over buf (res, res, 3) and labels (res, res): class where it covers a
 * pixel completely, ignored where partly. */
static void draw_shape(float *buf, int16_t *labels, int res, const shape *sh)
{
    float px = 2.0f / (float)res, inv = 1.0f / sh->size, px_local = px * inv;
    int x0, x1, y0, y1;
    gsq_syn_pixel_box(sh->cx, sh->cy, sh->size + px, res, &x0, &x1, &y0, &y1);
    for (int iy = y0; iy < y1; iy++) {
        float dy = ((float)iy + 0.5f) * px - 1.0f - sh->cy;
        for (int ix = x0; ix < x1; ix++) {
            float dx = ((float)ix + 0.5f) * px - 1.0f - sh->cx;
            float lx = (sh->cs * dx + sh->sn * dy) * inv, ly = (-sh->sn * dx + sh->cs * dy) * inv;
            float cov = clampf(0.5f - shape_sd(sh, lx, ly) * sh->size / px, 0.0f, 1.0f);
            if (cov <= 0.0f) continue;
            size_t p = (size_t)iy * (size_t)res + (size_t)ix;
            labels[p] = cov >= 1.0f ? (int16_t)sh->cls : (int16_t)GSQ_IGNORE_LABEL;
            float mixv = 0.0f;
            if (sh->cls == C_STRIPES) mixv = gsq_syn_stripe(lx / sh->period + sh->phase, px_local / sh->period);
            float shade = 1.0f + sh->shade_x * lx + sh->shade_y * ly;
            float *o = buf + p * 3;
            for (int c = 0; c < 3; c++) {
                float col = (sh->col.v[c] + mixv * (sh->col2.v[c] - sh->col.v[c])) * shade;
                o[c] += cov * (col - o[c]);
            }
        }
    }
}

static void draw_scene(const seg_impl *im, size_t index, float *buf, uint8_t *pixels, int16_t *labels)
{
    int res = im->resolution;
    gsq_rng r;
    gsq_syn_rng(&r, im->seed, im->split, SEG_PURPOSE, index);

    float y_bg = uni(&r, S.bg_luma_min, S.bg_luma_max);
    gsq_syn_background bg;
    gsq_syn_background_random(&bg, &r, y_bg, S.bg_gradient, S.texture_max);
    shape shapes[SEG_MAX_SHAPES];
    int n = 1 + (int)(gsq_rng_u32(&r) % SEG_MAX_SHAPES);
    for (int i = 0; i < n; i++) {
        int cls = C_DISC + (int)(gsq_rng_u32(&r) % (GSQ_SYNTHETIC_SEG_CLASSES - 1));
        random_shape(&shapes[i], &r, cls, y_bg, shapes, i);
    }
    float gain = uni(&r, S.gain_min, S.gain_max), offset = uni(&r, -S.offset_max, S.offset_max);
    float noise = uni(&r, 0.0f, S.noise_max);

    size_t npix = (size_t)res * (size_t)res;
    gsq_syn_background_fill(&bg, res, buf);
    for (size_t p = 0; p < npix; p++) labels[p] = C_BACKGROUND;
    for (int i = 0; i < n; i++) draw_shape(buf, labels, res, &shapes[i]);
    for (size_t i = 0; i < npix * 3; i++) buf[i] = buf[i] * gain + offset;
    gsq_syn_quantize(buf, npix * 3, noise, &r, pixels);
}

static gsq_status seg_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    if (!s) return gsq_fail(err, GSQ_ERR_ARG, "%s: get: NULL output", ds->name);
    memset(s, 0, sizeof *s);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (size %zu)", ds->name, index, ds->size);
    const seg_impl *im = ds->impl;
    int res = im->resolution;
    float *buf = malloc((size_t)res * (size_t)res * 3 * sizeof(float));
    if (!buf)
        return gsq_fail(err, GSQ_ERR_NOMEM, "%s: sample %zu: out of memory for %dx%d", ds->name, index, res, res);
    gsq_status st = gsq_image_alloc(&s->image, res, res, err);
    if (st == GSQ_OK) st = gsq_label_map_alloc(&s->map, res, res, err);
    if (st == GSQ_OK)
        draw_scene(im, index, buf, s->image.pixels, s->map.labels);
    else
        gsq_sample_free(s);
    free(buf);
    return st;
}

static void seg_destroy(gsq_dataset *ds)
{
    free(ds); /* the dataset, its impl and the class names are one allocation */
}

gsq_status gsq_dataset_synthetic_segment(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split,
                                         gsq_error *err)
{
    const char *what = "synthetic segmentation dataset";
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "%s: NULL output", what);
    *out = NULL;
    if (size == 0) return gsq_fail(err, GSQ_ERR_ARG, "%s: size must be > 0", what);
    if (resolution < 8 || resolution > SEG_MAX_RESOLUTION)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: resolution %d out of range (8 to %d)", what, resolution,
                        SEG_MAX_RESOLUTION);
    if (split != 0 && split != 1)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: split %d (expected 0 = train or 1 = validation)", what, split);
    struct block {
        gsq_dataset ds;
        seg_impl impl;
    } *b = calloc(1, sizeof *b);
    if (!b) return gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", what);
    gsq_dataset *ds = &b->ds;
    seg_impl *im = &b->impl;
    im->seed = seed;
    im->split = split;
    im->resolution = resolution;
    for (int c = 0; c < GSQ_SYNTHETIC_SEG_CLASSES; c++) {
        snprintf(im->names[c], sizeof im->names[c], "%s", seg_class_names[c]);
        im->name_ptrs[c] = im->names[c];
    }
    snprintf(ds->name, sizeof ds->name, "synthetic-segment/%s", split == 0 ? "train" : "val");
    ds->task = GSQ_TASK_SEGMENT;
    ds->size = size;
    ds->num_classes = GSQ_SYNTHETIC_SEG_CLASSES;
    ds->class_names = im->name_ptrs;
    ds->get = seg_get;
    ds->destroy = seg_destroy;
    ds->impl = im;
    *out = ds;
    return GSQ_OK;
}
