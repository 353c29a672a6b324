/* The built-in synthetic dataset (docs/DATA.md): ten classes of procedurally drawn shapes and
 * patterns on textured backgrounds, with random colour, position, scale, rotation, distractors
 * and pixel noise. Sample `index` of a split is a function of (seed, split, index) alone, so any
 * sample can be drawn on its own, in any order, from any thread.
 *
 * Drawing: the image spans [-1, 1]² in "normalised" units (one pixel is 2/resolution), so a
 * sample looks the same at every resolution, only sharper. Every layer is a signed distance
 * function (negative inside) evaluated at pixel centres; coverage = clamp(0.5 - d / pixel)
 * is its analytic anti-aliasing. Stripes and checkers are box-filtered square waves. The image
 * is composed in float and quantised to 8-bit RGB at the end. The primitives it shares with the
 * segmentation dataset are in synthetic_draw.c. */
#include "gpusq/data.h"

#include "data/synthetic_draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYN_MAX_RESOLUTION 4096
#define SYN_MAX_DISTRACTORS 4

enum {
    K_CIRCLE, K_ELLIPSE, K_RING, K_TRIANGLE, K_SQUARE, K_STAR, K_CROSS, K_STRIPES, K_CHECKER,
    K_DOTS,
    /* distractor kinds, never a label */
    K_DOT, K_LINE, K_BLOB,
};

static const char *const syn_class_names[GSQ_SYNTHETIC_CLASSES] = {
    "circle", "ellipse", "ring", "triangle", "square",
    "star", "cross", "stripes", "checker", "dots",
};

/* The knobs that set how hard the dataset is (calibrated in docs/DATA.md). Sizes are radii in
 * normalised units; contrast is the luminance difference between the object and the background
 * (Rec. 601 weights): the object is brighter than the background unless the polarity flips. */
static const struct {
    float size_min, size_max;          /* main object radius */
    float contrast_min, contrast_max;  /* object vs. background luminance, max <= 0.9 */
    float flip_prob;                   /* probability of a darker object than the background */
    float bg_gradient;                 /* background luminance change across the gradient */
    float noise_max;                   /* pixel noise std (of 1.0 full scale) */
    float texture_max;                 /* background texture amplitude */
    float ellipse_aspect_min, ellipse_aspect_max; /* minor / major axis */
    float ring_inner_min, ring_inner_max;         /* hole radius / outer radius */
    float star_inner_min, star_inner_max;         /* inner vertex radius / outer radius */
    float cross_arm_min, cross_arm_max;           /* arm half-width / arm length */
    float period_min, period_max;      /* stripes/checker period */
    float shading_max;                 /* linear shading across the object */
    float distractor_mean;             /* expected number of distractors */
    float rotation_max;                /* rotation drawn in [0, rotation_max·2π) */
    float position_max;                /* centre within ±position_max of the allowed range */
} K = {
    .size_min = 0.45f, .size_max = 0.80f,
    .contrast_min = 0.30f, .contrast_max = 0.80f,
    .flip_prob = 0.05f,
    .bg_gradient = 0.20f,
    .noise_max = 0.03f,
    .texture_max = 0.10f,
    .ellipse_aspect_min = 0.35f, .ellipse_aspect_max = 0.70f,
    .ring_inner_min = 0.35f, .ring_inner_max = 0.75f,
    .star_inner_min = 0.38f, .star_inner_max = 0.60f,
    .cross_arm_min = 0.22f, .cross_arm_max = 0.40f,
    .period_min = 0.20f, .period_max = 0.40f,
    .shading_max = 0.30f,
    .distractor_mean = 0.3f,
    .rotation_max = 1.0f,
    .position_max = 1.0f,
};

/* One drawn object: a shape in its local frame (radius 1), placed by centre, rotation, size. */
typedef struct {
    int kind;
    float cx, cy, cs, sn, size; /* local q = rotate(-angle)(p - c) / size */
    float a, b;                 /* shape parameters (aspect, inner radius, arm width, ...) */
    int region_box;             /* stripes/checker: 1 = square patch, 0 = disc patch */
    float period, phase_u, phase_v;
    gsq_syn_star star;          /* star/polygon */
    gsq_syn_rgb col, col2;
    float shade_x, shade_y;     /* local linear shading of the colour */
    float lx0, ly0, lx1, ly1;   /* line segment (K_LINE), in normalised units */
    float extent;               /* bounding radius in local units */
} layer;

typedef struct {
    uint64_t seed;
    int split, resolution;
    char names[GSQ_SYNTHETIC_CLASSES][16];
    char *name_ptrs[GSQ_SYNTHETIC_CLASSES];
} syn_impl;

/* Labels: each block of ten consecutive indices holds every class once, in a seeded order. */
static int syn_label(uint64_t seed, int split, size_t index)
{
    gsq_rng r;
    gsq_syn_rng(&r, seed, split, 1, index / GSQ_SYNTHETIC_CLASSES);
    int perm[GSQ_SYNTHETIC_CLASSES];
    for (int i = 0; i < GSQ_SYNTHETIC_CLASSES; i++) perm[i] = i;
    for (int i = GSQ_SYNTHETIC_CLASSES; i > 1; i--) {
        int j = (int)(gsq_rng_u32(&r) % (uint32_t)i);
        int t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    return perm[index % GSQ_SYNTHETIC_CLASSES];
}

/* --- signed distances in a shape's local frame (radius 1) ------------------------------------ */

static float sd_ellipse(float x, float y, float a, float b)
{
    /* first-order approximation d ≈ f / |∇f| of f = |p/ab| - 1; exact on the axes */
    float px = x / a, py = y / b;
    float k0 = sqrtf(px * px + py * py);
    float k1 = sqrtf(px * px / (a * a) + py * py / (b * b));
    return k1 > 1e-12f ? k0 * (k0 - 1.0f) / k1 : -fminf(a, b);
}

/* Local distance of layer L at local point (x, y); *mixv = weight of col2 (patterns). */
static float layer_sd(const layer *L, float x, float y, float px_local, float *mixv)
{
    *mixv = 0.0f;
    switch (L->kind) {
    case K_CIRCLE:
    case K_DOT:
        return sqrtf(x * x + y * y) - 1.0f;
    case K_ELLIPSE:
    case K_BLOB:
        return sd_ellipse(x, y, 1.0f, L->a);
    case K_RING: {
        float mid = 0.5f * (1.0f + L->a), half = 0.5f * (1.0f - L->a);
        return fabsf(sqrtf(x * x + y * y) - mid) - half;
    }
    case K_TRIANGLE:
    case K_SQUARE:
    case K_STAR:
        return gsq_syn_sd_star(&L->star, x, y);
    case K_CROSS:
        return gsq_syn_sd_cross(x, y, L->a);
    case K_STRIPES:
    case K_CHECKER:
    case K_DOTS: {
        float w = px_local / L->period;
        float u = x / L->period + L->phase_u, v = y / L->period + L->phase_v;
        float s;
        if (L->kind == K_DOTS) {
            /* a square lattice of discs of radius 0.3 period (distance in periods) */
            float du = u - floorf(u) - 0.5f, dv = v - floorf(v) - 0.5f;
            s = 1.0f - clampf(0.5f - (sqrtf(du * du + dv * dv) - 0.3f) / w, 0.0f, 1.0f);
        } else {
            s = gsq_syn_stripe(u, w);
            if (L->kind == K_CHECKER) {
                float t = gsq_syn_stripe(v, w);
                s = s + t - 2.0f * s * t; /* xor of two independent box-filtered waves */
            }
        }
        *mixv = s;
        return L->region_box ? gsq_syn_sd_box(x, y, 0.8f, 0.8f) : sqrtf(x * x + y * y) - 1.0f;
    }
    default:
        return 1.0f;
    }
}

/* --- random layers ----------------------------------------------------------------------------- */

static void set_pose(layer *L, gsq_rng *r, float size, float extent)
{
    float ang = uni(r, 0.0f, K.rotation_max * 2.0f * SYN_PI);
    L->cs = cosf(ang);
    L->sn = sinf(ang);
    L->size = size;
    L->extent = extent;
    float margin = K.position_max * (1.0f - 0.75f * size);
    if (margin < 0.0f) margin = 0.0f;
    L->cx = uni(r, -margin, margin);
    L->cy = uni(r, -margin, margin);
}

static void main_layer(layer *L, gsq_rng *r, int label, float y_bg, float y_obj)
{
    memset(L, 0, sizeof *L);
    L->kind = label;
    float size = uni(r, K.size_min, K.size_max);
    float extent = 1.0f;
    switch (label) {
    case K_ELLIPSE:
        L->a = uni(r, K.ellipse_aspect_min, K.ellipse_aspect_max);
        break;
    case K_RING:
        L->a = uni(r, K.ring_inner_min, K.ring_inner_max);
        break;
    case K_TRIANGLE:
        gsq_syn_star_init(&L->star, 3, cosf(SYN_PI / 3.0f));
        break;
    case K_SQUARE:
        gsq_syn_star_init(&L->star, 4, cosf(SYN_PI / 4.0f));
        size *= 0.9f; /* similar area to the disc-like shapes */
        break;
    case K_STAR:
        gsq_syn_star_init(&L->star, 5, uni(r, K.star_inner_min, K.star_inner_max));
        break;
    case K_CROSS:
        L->a = uni(r, K.cross_arm_min, K.cross_arm_max);
        break;
    case K_STRIPES:
    case K_CHECKER:
    case K_DOTS:
        L->region_box = (int)(gsq_rng_u32(r) & 1);
        extent = 1.15f;
        L->period = uni(r, K.period_min, K.period_max) / size; /* local units */
        L->phase_u = gsq_rng_uniform(r);
        L->phase_v = gsq_rng_uniform(r);
        break;
    default:
        break;
    }
    set_pose(L, r, size, extent);
    gsq_syn_color_with_luma(r, y_obj, 0.5f, &L->col);
    /* patterns alternate the object colour with one part way back to the background */
    gsq_syn_color_with_luma(r, y_obj + (y_bg - y_obj) * uni(r, 0.4f, 0.9f), 0.5f, &L->col2);
    float sh = uni(r, 0.0f, K.shading_max), sa = uni(r, 0.0f, 2.0f * SYN_PI);
    L->shade_x = sh * cosf(sa);
    L->shade_y = sh * sinf(sa);
}

static void distractor_layer(layer *L, gsq_rng *r)
{
    memset(L, 0, sizeof *L);
    uint32_t pick = gsq_rng_u32(r) % 3u;
    L->kind = pick == 0 ? K_DOT : (pick == 1 ? K_LINE : K_BLOB);
    if (L->kind == K_LINE) {
        float half = uni(r, 0.15f, 0.45f), ang = uni(r, 0.0f, 2.0f * SYN_PI);
        float cx = uni(r, -1.0f, 1.0f), cy = uni(r, -1.0f, 1.0f);
        L->lx0 = cx - half * cosf(ang);
        L->ly0 = cy - half * sinf(ang);
        L->lx1 = cx + half * cosf(ang);
        L->ly1 = cy + half * sinf(ang);
        L->a = uni(r, 0.015f, 0.04f); /* half thickness */
        L->cx = cx;
        L->cy = cy;
        L->size = 1.0f;
        L->extent = half + L->a;
        L->cs = 1.0f;
    } else {
        L->a = uni(r, 0.5f, 1.0f);
        set_pose(L, r, uni(r, 0.05f, 0.14f), 1.0f);
        L->cx = uni(r, -1.0f, 1.0f);
        L->cy = uni(r, -1.0f, 1.0f);
    }
    gsq_syn_color_with_luma(r, gsq_rng_uniform(r), 0.5f, &L->col);
}

/* --- composition ----------------------------------------------------------------------------- */

static float dist_segment(const layer *L, float x, float y)
{
    float ax = L->lx1 - L->lx0, ay = L->ly1 - L->ly0;
    float wx = x - L->lx0, wy = y - L->ly0;
    float t = clampf((wx * ax + wy * ay) / (ax * ax + ay * ay + 1e-12f), 0.0f, 1.0f);
    float dx = wx - t * ax, dy = wy - t * ay;
    return sqrtf(dx * dx + dy * dy) - L->a;
}

/* Composites layer L over the float image buf (res × res × 3) inside its bounding box. */
static void draw_layer(float *buf, int res, const layer *L)
{
    float px = 2.0f / (float)res;
    int x0, x1, y0, y1;
    gsq_syn_pixel_box(L->cx, L->cy, L->extent * L->size + px, res, &x0, &x1, &y0, &y1);
    float inv = 1.0f / L->size, px_local = px * inv;
    for (int iy = y0; iy < y1; iy++) {
        float y = ((float)iy + 0.5f) * px - 1.0f;
        for (int ix = x0; ix < x1; ix++) {
            float x = ((float)ix + 0.5f) * px - 1.0f;
            float d, mixv = 0.0f, lx = 0.0f, ly = 0.0f;
            if (L->kind == K_LINE) {
                d = dist_segment(L, x, y);
            } else {
                float dx = x - L->cx, dy = y - L->cy;
                lx = (L->cs * dx + L->sn * dy) * inv;
                ly = (-L->sn * dx + L->cs * dy) * inv;
                d = layer_sd(L, lx, ly, px_local, &mixv) * L->size;
            }
            float cov = clampf(0.5f - d / px, 0.0f, 1.0f);
            if (cov <= 0.0f) continue;
            float shade = 1.0f + L->shade_x * lx + L->shade_y * ly;
            float *o = buf + ((size_t)iy * (size_t)res + (size_t)ix) * 3;
            for (int c = 0; c < 3; c++) {
                float col = (L->col.v[c] + mixv * (L->col2.v[c] - L->col.v[c])) * shade;
                o[c] += cov * (col - o[c]);
            }
        }
    }
}

static void draw_sample(const syn_impl *im, size_t index, int label, float *buf, uint8_t *pixels)
{
    int res = im->resolution;
    gsq_rng r;
    gsq_syn_rng(&r, im->seed, im->split, 2, index);

    float contrast = uni(&r, K.contrast_min, K.contrast_max);
    int darker = gsq_rng_uniform(&r) < K.flip_prob;
    float y_bg = darker ? uni(&r, contrast + 0.02f, 0.98f) : uni(&r, 0.02f, 0.98f - contrast);
    float y_obj = darker ? y_bg - contrast : y_bg + contrast;
    gsq_syn_background bg;
    gsq_syn_background_random(&bg, &r, y_bg, K.bg_gradient, K.texture_max);
    layer main, distractors[SYN_MAX_DISTRACTORS];
    main_layer(&main, &r, label, y_bg, y_obj);
    int nd = 0;
    while (nd < SYN_MAX_DISTRACTORS &&
           gsq_rng_uniform(&r) < K.distractor_mean / (K.distractor_mean + 1.0f))
        distractor_layer(&distractors[nd++], &r);
    int behind = (int)(gsq_rng_u32(&r) % (uint32_t)(nd + 1)); /* distractors drawn under main */
    float noise = uni(&r, 0.0f, K.noise_max);

    gsq_syn_background_fill(&bg, res, buf);
    for (int i = 0; i < behind; i++) draw_layer(buf, res, &distractors[i]);
    draw_layer(buf, res, &main);
    for (int i = behind; i < nd; i++) draw_layer(buf, res, &distractors[i]);
    gsq_syn_quantize(buf, (size_t)res * (size_t)res * 3, noise, &r, pixels);
}

static gsq_status syn_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    if (!s) return gsq_fail(err, GSQ_ERR_ARG, "%s: get: NULL output", ds->name);
    memset(s, 0, sizeof *s);
    gsq_image *img = &s->image;
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (size %zu)", ds->name,
                        index, ds->size);
    const syn_impl *im = ds->impl;
    int res = im->resolution;
    float *buf = malloc((size_t)res * (size_t)res * 3 * sizeof(float));
    if (!buf)
        return gsq_fail(err, GSQ_ERR_NOMEM, "%s: sample %zu: out of memory for %dx%d", ds->name,
                        index, res, res);
    gsq_status st = gsq_image_alloc(img, res, res, err);
    if (st != GSQ_OK) {
        free(buf);
        return st;
    }
    int lab = syn_label(im->seed, im->split, index);
    draw_sample(im, index, lab, buf, img->pixels);
    free(buf);
    s->label = lab;
    return GSQ_OK;
}

static void syn_destroy(gsq_dataset *ds)
{
    free(ds); /* the dataset, its impl and the class names are one allocation */
}

gsq_status gsq_dataset_synthetic(gsq_dataset **out, size_t size, int resolution, uint64_t seed,
                                 int split, gsq_error *err)
{
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "synthetic dataset: NULL output");
    *out = NULL;
    if (size == 0) return gsq_fail(err, GSQ_ERR_ARG, "synthetic dataset: size must be > 0");
    if (resolution < 8 || resolution > SYN_MAX_RESOLUTION)
        return gsq_fail(err, GSQ_ERR_ARG,
                        "synthetic dataset: resolution %d out of range (8 to %d)", resolution,
                        SYN_MAX_RESOLUTION);
    if (split != 0 && split != 1)
        return gsq_fail(err, GSQ_ERR_ARG,
                        "synthetic dataset: split %d (expected 0 = train or 1 = validation)",
                        split);
    struct block {
        gsq_dataset ds;
        syn_impl impl;
    } *b = calloc(1, sizeof *b);
    if (!b) return gsq_fail(err, GSQ_ERR_NOMEM, "synthetic dataset: out of memory");
    gsq_dataset *ds = &b->ds;
    syn_impl *im = &b->impl;
    im->seed = seed;
    im->split = split;
    im->resolution = resolution;
    for (int c = 0; c < GSQ_SYNTHETIC_CLASSES; c++) {
        snprintf(im->names[c], sizeof im->names[c], "%s", syn_class_names[c]);
        im->name_ptrs[c] = im->names[c];
    }
    snprintf(ds->name, sizeof ds->name, "synthetic/%s", split == 0 ? "train" : "val");
    ds->size = size;
    ds->num_classes = GSQ_SYNTHETIC_CLASSES;
    ds->class_names = im->name_ptrs;
    ds->get = syn_get;
    ds->destroy = syn_destroy;
    ds->impl = im;
    *out = ds;
    return GSQ_OK;
}
