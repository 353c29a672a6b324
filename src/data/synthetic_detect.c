/* The built-in synthetic detection dataset (docs/DATA.md): one to six shapes (disc, square,
 * triangle, ring, cross) over a textured gradient background, drawn one over the other, each
 * annotated with its class and the tight box of the pixels it shows. Sample `index` of a split is
 * a function of (seed, split, index) alone, so any sample can be drawn on its own, from any
 * thread.
 *
 * Drawing uses the primitives of the other synthetic sets (synthetic_draw.c): signed distances at
 * pixel centres in normalised units (the image spans [-1, 1]²), coverage clamp(0.5 - d / pixel)
 * for the colours. A pixel shows a shape when its centre lies inside it and inside no later
 * shape; the box is the bounds of those pixels, so it is tight on the visible part. Shapes are
 * flat-coloured, of any hue and either brighter or darker than the background by a clear margin:
 * the class is in the shape alone. A placement that would leave an earlier shape showing less
 * than (1 - hidden_max) of its pixels, or hide any of one of a colour close to its own, is drawn
 * again, a few times, and the shape is left out when none fits. */
#include "gpusq/data.h"

#include "data/synthetic_detect.h"
#include "data/synthetic_draw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DET_MIN_RESOLUTION 32 /* the smallest shape still covers pixel centres */
#define DET_MAX_RESOLUTION 4096
#define DET_MAX_OBJECTS 6
#define DET_PURPOSE 4 /* random streams 1 and 2 are the classification set's, 3 the segmentation set's */
#define DET_BOX_HALF 0.70710678f /* half side of a square of circumradius 1 */

enum { D_DISC, D_SQUARE, D_TRIANGLE, D_RING, D_CROSS };

static const char *const det_class_names[GSQ_SYNTHETIC_DET_CLASSES] = {
    "disc", "square", "triangle", "ring", "cross",
};

/* The knobs of the scenes. Sizes are circumradii in normalised units: 0.15–0.45 gives shapes
 * 15%–45% of the image across. */
static const struct {
    float radius_min, radius_max;
    float contrast_min, contrast_max;   /* shape vs. background luminance (Rec. 601) */
    float bg_luma_min, bg_luma_max;     /* background mean luminance */
    float bg_gradient, texture_max;     /* background gradient and texture (synthetic_draw.h) */
    float chroma;                       /* largest chroma of a shape's colour */
    float ring_inner;                   /* ring: hole radius / outer radius */
    float cross_arm;                    /* cross: arm half-width / arm length */
    float hidden_max;                   /* the most of an earlier shape a later one may hide */
    float apart;                        /* least RGB distance of shapes that overlap */
    int placement_tries;
    float noise_max;                    /* pixel noise std (of 1.0 full scale) */
} D = {
    .radius_min = 0.15f, .radius_max = 0.45f,
    .contrast_min = 0.30f, .contrast_max = 0.60f,
    .bg_luma_min = 0.15f, .bg_luma_max = 0.85f,
    .bg_gradient = 0.15f, .texture_max = 0.08f,
    .chroma = 0.5f,
    .ring_inner = 0.5f,
    .cross_arm = 0.3f,
    .hidden_max = 0.4f,
    .apart = 0.25f,
    .placement_tries = 20,
    .noise_max = 0.03f,
};

/* One shape: its class, its pose (local q = rotate(-angle)(p - c) / r, the shape within the
 * local circle of radius extent) and its colour. */
typedef struct {
    int cls;
    float cx, cy, cs, sn, r, extent;
    gsq_syn_star star; /* triangle */
    gsq_syn_rgb col;
} det_shape;

typedef struct {
    uint64_t seed;
    int split, resolution;
    char names[GSQ_SYNTHETIC_DET_CLASSES][16];
    char *name_ptrs[GSQ_SYNTHETIC_DET_CLASSES];
    int category_ids[GSQ_SYNTHETIC_DET_CLASSES];
} det_impl;

/* Signed distance of the shape at local point (x, y), in local units. */
static float shape_sd(const det_shape *sh, float x, float y)
{
    switch (sh->cls) {
    case D_SQUARE:
        return gsq_syn_sd_box(x, y, DET_BOX_HALF, DET_BOX_HALF);
    case D_TRIANGLE:
        return gsq_syn_sd_star(&sh->star, x, y);
    case D_RING:
        return fabsf(sqrtf(x * x + y * y) - 0.5f * (1.0f + D.ring_inner)) - 0.5f * (1.0f - D.ring_inner);
    case D_CROSS:
        return gsq_syn_sd_cross(x, y, D.cross_arm);
    default:
        return sqrtf(x * x + y * y) - 1.0f;
    }
}

/* The shape's signed distance at the centre of pixel (ix, iy), in normalised units. */
static float pixel_sd(const det_shape *sh, int ix, int iy, float px)
{
    float dx = ((float)ix + 0.5f) * px - 1.0f - sh->cx, dy = ((float)iy + 0.5f) * px - 1.0f - sh->cy;
    float inv = 1.0f / sh->r;
    return shape_sd(sh, (sh->cs * dx + sh->sn * dy) * inv, (-sh->sn * dx + sh->cs * dy) * inv) * sh->r;
}

/* A shape of a random class, size, rotation and colour over a background of luminance y_bg (its
 * centre is drawn by place()). */
static void random_shape(det_shape *sh, gsq_rng *r, float y_bg)
{
    memset(sh, 0, sizeof *sh);
    sh->cls = (int)(gsq_rng_u32(r) % GSQ_SYNTHETIC_DET_CLASSES);
    sh->r = uni(r, D.radius_min, D.radius_max);
    float ang = uni(r, 0.0f, 2.0f * SYN_PI);
    sh->cs = cosf(ang);
    sh->sn = sinf(ang);
    sh->extent = sh->cls == D_CROSS ? sqrtf(1.0f + D.cross_arm * D.cross_arm) : 1.0f;
    if (sh->cls == D_TRIANGLE) gsq_syn_star_init(&sh->star, 3, cosf(SYN_PI / 3.0f));
    /* brighter or darker at random, unless that leaves the range */
    float contrast = uni(r, D.contrast_min, D.contrast_max);
    int brighter = gsq_rng_uniform(r) < 0.5f;
    if (y_bg + contrast > 0.98f) brighter = 0;
    if (y_bg - contrast < 0.02f) brighter = 1;
    float y = clampf(brighter ? y_bg + contrast : y_bg - contrast, 0.02f, 0.98f);
    gsq_syn_color_toward(r, y, NULL, 0.5f, D.chroma, &sh->col);
}

/* The pixels the shape may cover. */
static void reach(const det_shape *sh, int res, int *x0, int *x1, int *y0, int *y1)
{
    gsq_syn_pixel_box(sh->cx, sh->cy, sh->extent * sh->r, res, x0, x1, y0, y1);
}

/* The distance of two colours in the RGB cube. */
static float color_distance(const gsq_syn_rgb *a, const gsq_syn_rgb *b)
{
    float d2 = 0.0f;
    for (int c = 0; c < 3; c++) d2 += (a->v[c] - b->v[c]) * (a->v[c] - b->v[c]);
    return sqrtf(d2);
}

/* Draws centres for shapes[n] inside the image until one leaves every earlier shape showing at
 * least (1 - hidden_max) of its pixels (full[i], of which shown[i] show now) and hides none of a
 * colour too close to its own; then marks its pixels in owner and returns 1 (0 when no try
 * fits). */
static int place(det_shape *shapes, int n, gsq_rng *r, int res, int8_t *owner, int *full, int *shown)
{
    det_shape *sh = &shapes[n];
    float px = 2.0f / (float)res, margin = 1.0f - sh->extent * sh->r;
    for (int t = 0; t < D.placement_tries; t++) {
        sh->cx = uni(r, -margin, margin);
        sh->cy = uni(r, -margin, margin);
        int x0, x1, y0, y1, area = 0, hidden[DET_MAX_OBJECTS] = {0};
        reach(sh, res, &x0, &x1, &y0, &y1);
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
                if (pixel_sd(sh, ix, iy, px) > 0.0f) continue;
                int o = owner[(size_t)iy * (size_t)res + (size_t)ix];
                area++;
                if (o >= 0) hidden[o]++;
            }
        int fits = area > 0;
        for (int i = 0; i < n && fits; i++)
            fits = (float)(shown[i] - hidden[i]) >= (1.0f - D.hidden_max) * (float)full[i] &&
                   (hidden[i] == 0 || color_distance(&sh->col, &shapes[i].col) >= D.apart);
        if (!fits) continue;
        for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++)
                if (pixel_sd(sh, ix, iy, px) <= 0.0f) owner[(size_t)iy * (size_t)res + (size_t)ix] = (int8_t)n;
        for (int i = 0; i < n; i++) shown[i] -= hidden[i];
        full[n] = shown[n] = area;
        return 1;
    }
    return 0;
}

/* Composites the shape over buf (res, res, 3) with anti-aliased edges. */
static void paint(const det_shape *sh, int res, float *buf)
{
    float px = 2.0f / (float)res;
    int x0, x1, y0, y1;
    gsq_syn_pixel_box(sh->cx, sh->cy, sh->extent * sh->r + px, res, &x0, &x1, &y0, &y1);
    for (int iy = y0; iy < y1; iy++)
        for (int ix = x0; ix < x1; ix++) {
            float cov = clampf(0.5f - pixel_sd(sh, ix, iy, px) / px, 0.0f, 1.0f);
            float *o = buf + ((size_t)iy * (size_t)res + (size_t)ix) * 3;
            for (int c = 0; c < 3; c++) o[c] += cov * (sh->col.v[c] - o[c]);
        }
}

/* The objects: each shape's class and the bounds of the pixels it shows. */
static void annotate(const det_shape *shapes, const int8_t *owner, int res, gsq_objects *objects)
{
    int x0[DET_MAX_OBJECTS], y0[DET_MAX_OBJECTS], x1[DET_MAX_OBJECTS], y1[DET_MAX_OBJECTS];
    for (int i = 0; i < objects->count; i++) {
        x0[i] = y0[i] = res;
        x1[i] = y1[i] = -1;
    }
    for (int iy = 0; iy < res; iy++)
        for (int ix = 0; ix < res; ix++) {
            int o = owner[(size_t)iy * (size_t)res + (size_t)ix];
            if (o < 0) continue;
            if (ix < x0[o]) x0[o] = ix;
            if (ix > x1[o]) x1[o] = ix;
            if (iy < y0[o]) y0[o] = iy;
            if (iy > y1[o]) y1[o] = iy;
        }
    for (int i = 0; i < objects->count; i++) {
        gsq_object *ob = &objects->objects[i];
        ob->box = (gsq_box){(float)x0[i], (float)y0[i], (float)(x1[i] - x0[i] + 1), (float)(y1[i] - y0[i] + 1)};
        ob->category = shapes[i].cls;
        ob->area = ob->box.w * ob->box.h;
    }
}

gsq_status gsq_syn_detect_draw(const gsq_dataset *ds, size_t index, gsq_sample *s, int8_t *owner, gsq_error *err)
{
    memset(s, 0, sizeof *s);
    const det_impl *im = ds->impl;
    int res = im->resolution;
    size_t npix = (size_t)res * (size_t)res;
    gsq_rng r;
    gsq_syn_rng(&r, im->seed, im->split, DET_PURPOSE, index);

    float y_bg = uni(&r, D.bg_luma_min, D.bg_luma_max);
    gsq_syn_background bg;
    gsq_syn_background_random(&bg, &r, y_bg, D.bg_gradient, D.texture_max);
    memset(owner, -1, npix);
    det_shape shapes[DET_MAX_OBJECTS];
    int full[DET_MAX_OBJECTS], shown[DET_MAX_OBJECTS], n = 0;
    int wanted = 1 + (int)(gsq_rng_u32(&r) % DET_MAX_OBJECTS);
    for (int i = 0; i < wanted; i++) {
        random_shape(&shapes[n], &r, y_bg);
        n += place(shapes, n, &r, res, owner, full, shown);
    }
    float noise = uni(&r, 0.0f, D.noise_max);

    float *buf = malloc(npix * 3 * sizeof(float));
    if (!buf)
        return gsq_fail(err, GSQ_ERR_NOMEM, "%s: sample %zu: out of memory for %dx%d", ds->name, index, res, res);
    gsq_status st = gsq_image_alloc(&s->image, res, res, err);
    if (st == GSQ_OK) st = gsq_objects_alloc(&s->objects, (int64_t)index, res, res, n, err);
    if (st == GSQ_OK) {
        gsq_syn_background_fill(&bg, res, buf);
        for (int i = 0; i < n; i++) paint(&shapes[i], res, buf);
        gsq_syn_quantize(buf, npix * 3, noise, &r, s->image.pixels);
        annotate(shapes, owner, res, &s->objects);
    } else {
        gsq_sample_free(s);
    }
    free(buf);
    return st;
}

static gsq_status det_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    if (!s) return gsq_fail(err, GSQ_ERR_ARG, "%s: get: NULL output", ds->name);
    memset(s, 0, sizeof *s);
    if (index >= ds->size)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: sample %zu out of range (size %zu)", ds->name, index, ds->size);
    const det_impl *im = ds->impl;
    int8_t *owner = malloc((size_t)im->resolution * (size_t)im->resolution);
    if (!owner) return gsq_fail(err, GSQ_ERR_NOMEM, "%s: sample %zu: out of memory", ds->name, index);
    gsq_status st = gsq_syn_detect_draw(ds, index, s, owner, err);
    free(owner);
    return st;
}

static void det_destroy(gsq_dataset *ds)
{
    free(ds); /* the dataset, its impl, the class names and ids are one allocation */
}

gsq_status gsq_dataset_synthetic_detect(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split,
                                        gsq_error *err)
{
    const char *what = "synthetic detection dataset";
    if (!out) return gsq_fail(err, GSQ_ERR_ARG, "%s: NULL output", what);
    *out = NULL;
    if (size == 0) return gsq_fail(err, GSQ_ERR_ARG, "%s: size must be > 0", what);
    if (resolution < DET_MIN_RESOLUTION || resolution > DET_MAX_RESOLUTION)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: resolution %d out of range (%d to %d)", what, resolution,
                        DET_MIN_RESOLUTION, DET_MAX_RESOLUTION);
    if (split != 0 && split != 1)
        return gsq_fail(err, GSQ_ERR_ARG, "%s: split %d (expected 0 = train or 1 = validation)", what, split);
    struct block {
        gsq_dataset ds;
        det_impl impl;
    } *b = calloc(1, sizeof *b);
    if (!b) return gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory", what);
    gsq_dataset *ds = &b->ds;
    det_impl *im = &b->impl;
    im->seed = seed;
    im->split = split;
    im->resolution = resolution;
    for (int c = 0; c < GSQ_SYNTHETIC_DET_CLASSES; c++) {
        snprintf(im->names[c], sizeof im->names[c], "%s", det_class_names[c]);
        im->name_ptrs[c] = im->names[c];
        im->category_ids[c] = c + 1;
    }
    snprintf(ds->name, sizeof ds->name, "synthetic-detect/%s", split == 0 ? "train" : "val");
    ds->task = GSQ_TASK_DETECT;
    ds->size = size;
    ds->num_classes = GSQ_SYNTHETIC_DET_CLASSES;
    ds->class_names = im->name_ptrs;
    ds->category_ids = im->category_ids;
    ds->get = det_get;
    ds->destroy = det_destroy;
    ds->impl = im;
    *out = ds;
    return GSQ_OK;
}
