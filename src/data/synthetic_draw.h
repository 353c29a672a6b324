/* Internal to src/data: the drawing primitives that the synthetic datasets share (synthetic.c,
 * synthetic_segment.c, synthetic_detect.c): per-sample random streams, signed distances in a
 * shape's local frame, box-filtered stripes, colours of a given luminance, textured gradient
 * backgrounds, the pixels a shape may touch, and noisy 8-bit quantisation. Coordinates are the datasets' normalised
 * units: the image spans [-1, 1]², one pixel is 2 / resolution. */
#ifndef GSQ_DATA_SYNTHETIC_DRAW_H
#define GSQ_DATA_SYNTHETIC_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/rng.h"

#define SYN_PI 3.14159265358979323846f

static inline float uni(gsq_rng *r, float lo, float hi) { return lo + (hi - lo) * gsq_rng_uniform(r); }
static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* A generator for one purpose of one sample: hashes (seed, split, purpose, index). */
void gsq_syn_rng(gsq_rng *r, uint64_t seed, int split, uint64_t purpose, uint64_t index);

typedef struct {
    float v[3];
} gsq_syn_rgb;

/* A colour of luminance y (clamped to [0, 1], Rec. 601 weights) with a random hue and a random
 * chroma of at most `chroma`, kept inside the RGB cube so the luminance stays exact. */
void gsq_syn_color_with_luma(gsq_rng *r, float y, float chroma, gsq_syn_rgb *out);
/* The same with the hue of direction hue (an RGB offset, its luminance removed; NULL: random) and
 * a chroma between least and all of at most `chroma` (least a fraction in [0, 1]). */
void gsq_syn_color_toward(gsq_rng *r, float y, const float *hue, float least, float chroma, gsq_syn_rgb *out);

/* Signed distance (negative inside) to the box |x| <= hx, |y| <= hy. */
float gsq_syn_sd_box(float x, float y, float hx, float hy);
/* Signed distance to a plus-shaped cross of arms reaching 1 along each axis, each arm's half-width
 * `arm`. */
float gsq_syn_sd_cross(float x, float y, float arm);

/* A star with n (at most 6) outer vertices at radius 1 and inner vertices at radius `inner`; with
 * inner = cos(π / n) it is the regular n-gon. */
typedef struct {
    int n;
    float tab_c[6], tab_s[6]; /* sector rotations */
    float ex, ey;             /* folded edge end point */
} gsq_syn_star;
void gsq_syn_star_init(gsq_syn_star *s, int n, float inner);
float gsq_syn_sd_star(const gsq_syn_star *s, float x, float y);

/* The square wave at u (in periods: 1 on the first half of each period, 0 on the second)
 * averaged over a box of width w (in periods): anti-aliased stripes. */
float gsq_syn_stripe(float u, float w);

/* A background: a two-colour linear gradient plus a texture (none, value noise or waves). */
#define SYN_LATTICE 10
typedef struct {
    gsq_syn_rgb c0, c1;
    float gx, gy;               /* gradient direction */
    int texture;                /* 0 none, 1 value noise, 2 waves */
    float amp, tint[3];
    int g;                      /* lattice cells per side */
    float lattice[(SYN_LATTICE + 1) * (SYN_LATTICE + 1)];
    float wx, wy, wphase;       /* waves: wave vector (radians per unit), phase */
} gsq_syn_background;

/* A background of mean luminance y whose gradient changes the luminance by up to `gradient`
 * and whose texture has an amplitude of up to `texture_max`. */
void gsq_syn_background_random(gsq_syn_background *bg, gsq_rng *r, float y, float gradient,
                               float texture_max);
/* Its colours at the pixel centres of a res × res image: buf (res, res, 3). */
void gsq_syn_background_fill(const gsq_syn_background *bg, int res, float *buf);

/* The pixels [*x0, *x1) × [*y0, *y1) of a res × res image that a disc of radius `reach` around
 * (cx, cy) may touch. */
void gsq_syn_pixel_box(float cx, float cy, float reach, int res, int *x0, int *x1, int *y0,
                       int *y1);

/* buf (n floats, 1.0 full scale) plus Gaussian-like pixel noise of std `noise`, clamped and
 * rounded to 8 bits in pixels. */
void gsq_syn_quantize(const float *buf, size_t n, float noise, gsq_rng *r, uint8_t *pixels);

#endif
