/* The drawing primitives shared by the synthetic datasets (synthetic_draw.h), moved out of
 * synthetic.c unchanged (the cross's distance too): its samples stay the same bytes. */
#include "data/synthetic_draw.h"

#include <math.h>

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void gsq_syn_rng(gsq_rng *r, uint64_t seed, int split, uint64_t purpose, uint64_t index)
{
    uint64_t h = mix64(seed ^ mix64(((uint64_t)split << 8) ^ purpose));
    h = mix64(h ^ mix64(index));
    gsq_rng_seed(r, h, mix64(h ^ 0x243f6a8885a308d3ULL));
}

/* An approximately standard normal value from one u32: the sum of its four bytes (Irwin-Hall). */
static float fast_normal(gsq_rng *r)
{
    uint32_t u = gsq_rng_u32(r);
    int s = (int)(u & 255u) + (int)((u >> 8) & 255u) + (int)((u >> 16) & 255u) + (int)(u >> 24);
    return ((float)s - 510.0f) * (1.0f / 147.8f);
}

static const float syn_luma[3] = {0.299f, 0.587f, 0.114f};

void gsq_syn_color_with_luma(gsq_rng *r, float y, float chroma, gsq_syn_rgb *out)
{
    gsq_syn_color_toward(r, y, NULL, 0.0f, chroma, out);
}

void gsq_syn_color_toward(gsq_rng *r, float y, const float *hue, float least, float chroma, gsq_syn_rgb *out)
{
    y = clampf(y, 0.0f, 1.0f);
    float d[3], w = 0.0f, n2 = 0.0f;
    for (int c = 0; c < 3; c++) {
        d[c] = hue ? hue[c] : gsq_rng_normal(r);
        w += syn_luma[c] * d[c];
    }
    for (int c = 0; c < 3; c++) {
        d[c] -= w; /* the weights sum to 1: this removes the luminance component */
        n2 += d[c] * d[c];
    }
    float inv = n2 > 1e-12f ? 1.0f / sqrtf(n2) : 0.0f, smax = chroma;
    for (int c = 0; c < 3; c++) {
        d[c] *= inv;
        if (d[c] > 1e-6f) smax = fminf(smax, (1.0f - y) / d[c]);
        if (d[c] < -1e-6f) smax = fminf(smax, -y / d[c]);
    }
    float s = smax * (least + (1.0f - least) * gsq_rng_uniform(r));
    for (int c = 0; c < 3; c++) out->v[c] = clampf(y + s * d[c], 0.0f, 1.0f);
}

float gsq_syn_sd_box(float x, float y, float hx, float hy)
{
    float dx = fabsf(x) - hx, dy = fabsf(y) - hy;
    float ox = fmaxf(dx, 0.0f), oy = fmaxf(dy, 0.0f);
    return sqrtf(ox * ox + oy * oy) + fminf(fmaxf(dx, dy), 0.0f);
}

float gsq_syn_sd_cross(float x, float y, float arm)
{
    x = fabsf(x);
    y = fabsf(y);
    if (y > x) {
        float t = x;
        x = y;
        y = t;
    }
    float qx = x - 1.0f, qy = y - arm;
    float k = fmaxf(qy, qx);
    float wx, wy;
    if (k > 0.0f) {
        wx = qx;
        wy = qy;
    } else {
        wx = arm - x;
        wy = -k;
    }
    wx = fmaxf(wx, 0.0f);
    wy = fmaxf(wy, 0.0f);
    float len = sqrtf(wx * wx + wy * wy);
    return k > 0.0f ? len : -len;
}

void gsq_syn_star_init(gsq_syn_star *s, int n, float inner)
{
    s->n = n;
    for (int k = 0; k < n; k++) {
        float a = (float)k * 2.0f * SYN_PI / (float)n;
        s->tab_c[k] = cosf(a);
        s->tab_s[k] = sinf(a);
    }
    s->ex = inner * cosf(SYN_PI / (float)n);
    s->ey = inner * sinf(SYN_PI / (float)n);
}

/* Folds the point into the half-sector that holds one edge from the outer vertex (1, 0) to the
 * inner vertex (ex, ey), then measures to that edge. */
float gsq_syn_sd_star(const gsq_syn_star *s, float x, float y)
{
    float sector = 2.0f * SYN_PI / (float)s->n;
    int k = (int)floorf(atan2f(y, x) / sector + 0.5f);
    k = ((k % s->n) + s->n) % s->n;
    float qx = s->tab_c[k] * x + s->tab_s[k] * y;
    float qy = fabsf(-s->tab_s[k] * x + s->tab_c[k] * y);
    float ax = s->ex - 1.0f, ay = s->ey;        /* edge direction A→B, A = (1, 0) */
    float wx = qx - 1.0f, wy = qy;
    float t = clampf((wx * ax + wy * ay) / (ax * ax + ay * ay), 0.0f, 1.0f);
    float dx = wx - t * ax, dy = wy - t * ay;
    float d = sqrtf(dx * dx + dy * dy);
    float side = ax * wy - ay * wx;            /* > 0: same side as the origin */
    return side > 0.0f ? -d : d;
}

/* ∫₀ᵗ square wave (1 on the first half of each period, 0 on the second). */
static float sq_integral(float t)
{
    float f = floorf(t);
    return 0.5f * f + fminf(t - f, 0.5f);
}

float gsq_syn_stripe(float u, float w)
{
    if (w < 1e-4f) return (u - floorf(u)) < 0.5f ? 1.0f : 0.0f;
    return (sq_integral(u + 0.5f * w) - sq_integral(u - 0.5f * w)) / w;
}

void gsq_syn_background_random(gsq_syn_background *bg, gsq_rng *r, float y, float gradient,
                               float texture_max)
{
    float dy = uni(r, -0.5f, 0.5f) * gradient;
    gsq_syn_color_with_luma(r, y - dy, 0.6f, &bg->c0);
    gsq_syn_color_with_luma(r, y + dy, 0.6f, &bg->c1);
    float ga = uni(r, 0.0f, 2.0f * SYN_PI);
    bg->gx = cosf(ga);
    bg->gy = sinf(ga);
    uint32_t t = gsq_rng_u32(r) % 5u;
    bg->texture = t < 1 ? 0 : (t < 4 ? 1 : 2);
    bg->amp = uni(r, 0.0f, texture_max);
    for (int c = 0; c < 3; c++) bg->tint[c] = uni(r, 0.5f, 1.0f);
    bg->g = 2 + (int)(gsq_rng_u32(r) % (SYN_LATTICE - 1));
    for (int i = 0; i < (bg->g + 1) * (bg->g + 1); i++) bg->lattice[i] = uni(r, -1.0f, 1.0f);
    float wa = uni(r, 0.0f, 2.0f * SYN_PI), period = uni(r, 0.5f, 1.5f);
    bg->wx = 2.0f * SYN_PI / period * cosf(wa);
    bg->wy = 2.0f * SYN_PI / period * sinf(wa);
    bg->wphase = uni(r, 0.0f, 2.0f * SYN_PI);
}

static float smooth01(float t) { return t * t * (3.0f - 2.0f * t); }

/* The background's colour at (x, y), written to out[0..2]. */
static void background_at(const gsq_syn_background *bg, float x, float y, float *out)
{
    float t = clampf(0.5f + 0.5f * (bg->gx * x + bg->gy * y), 0.0f, 1.0f);
    float tex = 0.0f;
    if (bg->texture == 1) {
        float fx = (x + 1.0f) * 0.5f * (float)bg->g, fy = (y + 1.0f) * 0.5f * (float)bg->g;
        int ix = (int)fx, iy = (int)fy;
        if (ix > bg->g - 1) ix = bg->g - 1;
        if (iy > bg->g - 1) iy = bg->g - 1;
        if (ix < 0) ix = 0;
        if (iy < 0) iy = 0;
        float u = smooth01(clampf(fx - (float)ix, 0.0f, 1.0f));
        float v = smooth01(clampf(fy - (float)iy, 0.0f, 1.0f));
        const float *l0 = bg->lattice + iy * (bg->g + 1) + ix, *l1 = l0 + bg->g + 1;
        tex = (1.0f - v) * ((1.0f - u) * l0[0] + u * l0[1]) + v * ((1.0f - u) * l1[0] + u * l1[1]);
    } else if (bg->texture == 2) {
        tex = sinf(bg->wx * x + bg->wy * y + bg->wphase);
    }
    for (int c = 0; c < 3; c++)
        out[c] = bg->c0.v[c] + t * (bg->c1.v[c] - bg->c0.v[c]) + bg->amp * tex * bg->tint[c];
}

void gsq_syn_background_fill(const gsq_syn_background *bg, int res, float *buf)
{
    float px = 2.0f / (float)res;
    for (int iy = 0; iy < res; iy++) {
        float y = ((float)iy + 0.5f) * px - 1.0f;
        for (int ix = 0; ix < res; ix++)
            background_at(bg, ((float)ix + 0.5f) * px - 1.0f, y, buf + ((size_t)iy * (size_t)res + (size_t)ix) * 3);
    }
}

void gsq_syn_pixel_box(float cx, float cy, float reach, int res, int *x0, int *x1, int *y0,
                       int *y1)
{
    float px = 2.0f / (float)res;
    *x0 = (int)floorf((cx - reach + 1.0f) / px);
    *x1 = (int)ceilf((cx + reach + 1.0f) / px);
    *y0 = (int)floorf((cy - reach + 1.0f) / px);
    *y1 = (int)ceilf((cy + reach + 1.0f) / px);
    if (*x0 < 0) *x0 = 0;
    if (*y0 < 0) *y0 = 0;
    if (*x1 > res) *x1 = res;
    if (*y1 > res) *y1 = res;
}

void gsq_syn_quantize(const float *buf, size_t n, float noise, gsq_rng *r, uint8_t *pixels)
{
    for (size_t i = 0; i < n; i++) {
        float v = buf[i] + noise * fast_normal(r);
        pixels[i] = (uint8_t)(clampf(v, 0.0f, 1.0f) * 255.0f + 0.5f);
    }
}
