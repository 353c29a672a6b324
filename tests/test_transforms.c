/* Transforms: eval and random-resized-crop outputs against Pillow/torchvision/timm fixtures
 * (tests/fixtures/transforms, made by scripts/make_transform_fixtures.py), normalisation values,
 * the statistics and determinism of the random crops and flips, degenerate images and bad
 * arguments.
 *
 * Tolerance: none. Our bicubic resize reproduces Pillow 13's bytes exactly on every fixture (and
 * on larger sweeps up to 384-pixel outputs, docs/DATA.md), so the byte comparisons demand
 * equality, and the normalised floats must equal timm's bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "data/resample.h"
#include "gpusq/data.h"
#include "gpusq/safetensors.h"
#include "test_util.h"

#define FIXTURE GSQ_SOURCE_DIR "/tests/fixtures/transforms/transforms.safetensors"

static gsq_st_file *fx;

/* The fixture source image NAME as a gsq_image borrowing the mapped bytes. */
static int source_image(const char *name, gsq_image *img)
{
    char key[96];
    snprintf(key, sizeof key, "src/%s", name);
    const gsq_st_tensor *t = gsq_st_find(fx, key);
    if (!t || t->dtype != GSQ_DT_U8 || t->ndim != 3 || t->shape[2] != 3) return 0;
    img->height = (int)t->shape[0];
    img->width = (int)t->shape[1];
    img->pixels = (uint8_t *)t->data;
    return 1;
}

/* Output bytes back from a transform run with mean 0, std 1: v = x·255. */
static void floats_to_hwc(const float *x, int s, uint8_t *rgb)
{
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < s * s; i++) {
            long v = lrintf(x[(size_t)c * s * s + i] * 255.0f);
            rgb[(size_t)i * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
}

static void identity_transform(gsq_transform *t, int size)
{
    gsq_transform_defaults(t, size);
    for (int c = 0; c < 3; c++) {
        t->mean[c] = 0.0f;
        t->std[c] = 1.0f;
    }
}

/* Agreement with Pillow over all byte fixtures. */
static size_t n_pixels, n_off;
static int max_diff;

/* Pillow 13's pass order (resample.c): vertical first when the height loses more than twice as
 * many pixels as the width. The fixtures must exercise both orders. */
static int n_vfirst, n_hfirst;

static void count_order(int sw, int sh, int ow, int oh)
{
    if (sw == ow || sh == oh) return; /* one pass only */
    if (sh - oh > 2 * (sw - ow) && sh > oh) n_vfirst++;
    else n_hfirst++;
}

static void compare_bytes(const char *what, const uint8_t *got, const gsq_st_tensor *ref, int s)
{
    int worst = 0;
    size_t off = 0, n = (size_t)s * s * 3;
    const uint8_t *want = ref->data;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)want[i]);
        if (d > worst) worst = d;
        off += d != 0;
    }
    n_pixels += n;
    n_off += off;
    if (worst > max_diff) max_diff = worst;
    CHECK(worst == 0, "%s: %zu of %zu values differ from Pillow, by up to %d", what, off, n,
          worst);
}

static void test_fixtures(void)
{
    gsq_error err = {0};
    CHECK(gsq_st_open(&fx, FIXTURE, &err) == GSQ_OK, "%s", err.msg);
    if (!fx) return;
    int n_eval = 0, n_rrc = 0, n_norm = 0;
    for (size_t k = 0; k < gsq_st_count(fx); k++) {
        const gsq_st_tensor *t = gsq_st_at(fx, k);
        char name[64];
        int size, pct, top, left, bh, bw;
        gsq_image img;
        if (sscanf(t->name, "eval/%63[^/]/%d/%d", name, &size, &pct) == 3) {
            if (!source_image(name, &img) || t->dtype != GSQ_DT_U8) {
                CHECK(0, "%s: no source image or wrong dtype", t->name);
                continue;
            }
            int side = size * 1000 / pct, shorter = img.width < img.height ? img.width : img.height;
            int longer = (int)((int64_t)side * (img.width + img.height - shorter) / shorter);
            if (img.width <= img.height) count_order(img.width, img.height, side, longer);
            else count_order(img.width, img.height, longer, side);
            gsq_transform tf;
            identity_transform(&tf, size);
            tf.crop_pct = (float)pct / 1000.0f;
            float *out = malloc(sizeof(float) * 3 * size * size);
            uint8_t *rgb = malloc((size_t)3 * size * size);
            CHECK(gsq_transform_eval(&tf, &img, out, &err) == GSQ_OK, "%s: %s", t->name, err.msg);
            floats_to_hwc(out, size, rgb);
            compare_bytes(t->name, rgb, t, size);
            free(out);
            free(rgb);
            n_eval++;
        } else if (sscanf(t->name, "rrc/%63[^/]/%d_%d_%d_%d/%d", name, &top, &left, &bh, &bw,
                          &size) == 6) {
            if (!source_image(name, &img) || t->dtype != GSQ_DT_U8) {
                CHECK(0, "%s: no source image or wrong dtype", t->name);
                continue;
            }
            count_order(bw, bh, size, size);
            uint8_t *rgb = malloc((size_t)3 * size * size);
            size_t stride = (size_t)img.width * 3;
            const uint8_t *box = img.pixels + top * stride + (size_t)left * 3;
            CHECK(gsq_resize_bicubic(box, bw, bh, stride, size, size, 0, 0, size, size, rgb,
                                     &err) == GSQ_OK, "%s: %s", t->name, err.msg);
            compare_bytes(t->name, rgb, t, size);
            free(rgb);
            n_rrc++;
        } else if (sscanf(t->name, "norm/%63[^/]/%d/%d", name, &size, &pct) == 3) {
            if (!source_image(name, &img) || t->dtype != GSQ_DT_F32) {
                CHECK(0, "%s: no source image or wrong dtype", t->name);
                continue;
            }
            gsq_transform tf;
            gsq_transform_defaults(&tf, size);
            tf.crop_pct = (float)pct / 1000.0f;
            size_t n = (size_t)3 * size * size;
            float *out = malloc(sizeof(float) * n), *want = malloc(sizeof(float) * n);
            CHECK(gsq_transform_eval(&tf, &img, out, &err) == GSQ_OK, "%s", err.msg);
            CHECK(gsq_st_read_f32(fx, t, want, n, &err) == GSQ_OK, "%s", err.msg);
            size_t differ = 0;
            for (size_t i = 0; i < n; i++) differ += out[i] != want[i];
            CHECK(differ == 0, "%s: %zu of %zu floats differ from timm", t->name, differ, n);
            free(out);
            free(want);
            n_norm++;
        }
    }
    CHECK(n_eval >= 40 && n_rrc >= 10 && n_norm >= 2, "fixture counts eval %d rrc %d norm %d",
          n_eval, n_rrc, n_norm);
    CHECK(n_vfirst >= 5 && n_hfirst >= 20, "pass orders: %d vertical-first, %d horizontal-first",
          n_vfirst, n_hfirst);
    printf("vs Pillow: %d eval + %d crop fixtures, %zu values, max |diff| %d, %zu off by one "
           "(%.4f%%); %d normalised fixtures; %d/%d resizes vertical/horizontal first\n", n_eval,
           n_rrc, n_pixels, max_diff, n_off, n_pixels ? 100.0 * n_off / n_pixels : 0.0, n_norm,
           n_vfirst, n_hfirst);
}

/* A constant image gives (v / 255 - mean) / std everywhere. */
static void test_normalisation(void)
{
    uint8_t px[4 * 3 * 3];
    const uint8_t rgb[3] = {0, 128, 255};
    for (int i = 0; i < 12; i++) memcpy(px + 3 * i, rgb, 3);
    gsq_image img = {4, 3, px};
    gsq_transform t;
    gsq_transform_defaults(&t, 5);
    CHECK(t.crop_pct == 0.875f && t.scale_min == 0.08f && t.ratio_max == 4.0f / 3.0f &&
          t.hflip == 0.5f && t.mean[1] == 0.456f && t.std[2] == 0.225f, "defaults");
    float out[3 * 25];
    gsq_error err;
    CHECK(gsq_transform_eval(&t, &img, out, &err) == GSQ_OK, "%s", err.msg);
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++) {
        double want = (rgb[c] / 255.0 - mean[c]) / std[c];
        for (int i = 0; i < 25; i++)
            CHECK(fabs(out[c * 25 + i] - want) < 1e-6, "channel %d: %g vs %g", c,
                  (double)out[c * 25 + i], want);
    }
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, 0);
    CHECK(gsq_transform_train(&t, &img, &rng, out, &err) == GSQ_OK, "%s", err.msg);
    CHECK(fabs(out[0] - (0 - 0.485) / 0.229) < 1e-6 && fabs(out[74] - (1 - 0.406) / 0.225) < 1e-6,
          "train normalisation %g %g", (double)out[0], (double)out[74]);
}

/* Random crops: inside the image, area and aspect in range, flips near half. The image is
 * square so that as many wide as tall boxes fit. */
static void test_rrc_statistics(void)
{
    gsq_transform t;
    gsq_transform_defaults(&t, 224);
    gsq_rng rng;
    gsq_error err;
    const int W = 900, H = 900, N = 20000;
    int flips = 0, fallbacks = 0, wide = 0, bad = 0;
    double amin = 1e9, amax = 0, rmin = 1e9, rmax = 0;
    gsq_rng_seed(&rng, 42, 7);
    for (int i = 0; i < N; i++) {
        gsq_rrc_params p;
        bad += gsq_transform_train_params(&t, W, H, &rng, &p, &err) != GSQ_OK;
        bad += p.box_w < 1 || p.box_h < 1 || p.left < 0 || p.top < 0 || p.left + p.box_w > W ||
               p.top + p.box_h > H;
        flips += p.flip;
        fallbacks += p.fallback;
        if (p.fallback) continue;
        double a = (double)p.box_w * p.box_h / ((double)W * H), r = (double)p.box_w / p.box_h;
        if (a < amin) amin = a;
        if (a > amax) amax = a;
        if (r < rmin) rmin = r;
        if (r > rmax) rmax = r;
        wide += r > 1.0;
    }
    CHECK(bad == 0, "%d failed draws or boxes outside the image", bad);
    /* rounding w and h to integers moves area and ratio by well under 1% at this size */
    CHECK(amin >= 0.08 * 0.99 && amax <= 1.0 && amin < 0.09 && amax > 0.9, "area %g..%g", amin,
          amax);
    CHECK(rmin >= 0.75 * 0.99 && rmax <= 4.0 / 3.0 * 1.01 && rmin < 0.77 && rmax > 1.3,
          "ratio %g..%g", rmin, rmax);
    CHECK(fabs(flips / (double)N - 0.5) < 0.02, "flip rate %g", flips / (double)N);
    CHECK(fabs(wide / (double)(N - fallbacks) - 0.5) < 0.05, "wide crops %d of %d", wide,
          N - fallbacks);
    CHECK(fallbacks < N / 100, "%d fallbacks", fallbacks);

    /* flip probability 0 and 1 */
    t.hflip = 0.0f;
    int any = 0;
    for (int i = 0; i < 1000; i++) {
        gsq_rrc_params p;
        gsq_transform_train_params(&t, W, H, &rng, &p, &err);
        any += p.flip;
    }
    CHECK(any == 0, "hflip 0 flipped %d times", any);
    t.hflip = 1.0f;
    any = 0;
    for (int i = 0; i < 1000; i++) {
        gsq_rrc_params p;
        gsq_transform_train_params(&t, W, H, &rng, &p, &err);
        any += p.flip;
    }
    CHECK(any == 1000, "hflip 1 flipped %d of 1000", any);

    /* scale and ratio pinned to 1 on a square image: the whole image */
    gsq_transform_defaults(&t, 8);
    t.scale_min = t.ratio_min = t.ratio_max = 1.0f;
    gsq_rrc_params p;
    gsq_transform_train_params(&t, 64, 64, &rng, &p, &err);
    CHECK(p.top == 0 && p.left == 0 && p.box_w == 64 && p.box_h == 64 && !p.fallback,
          "pinned box %d %d %d %d", p.top, p.left, p.box_h, p.box_w);

    /* torchvision's fallback: no box of a legal ratio fits, take the central crop clamped to
     * the ratio range: 5x300 → h = round(5 / (3/4)) = 7 at top (300 - 7) // 2 */
    gsq_transform_defaults(&t, 16);
    gsq_transform_train_params(&t, 5, 300, &rng, &p, &err);
    CHECK(p.fallback && p.top == 146 && p.left == 0 && p.box_h == 7 && p.box_w == 5,
          "tall fallback %d %d %d %d", p.top, p.left, p.box_h, p.box_w);
    gsq_transform_train_params(&t, 300, 5, &rng, &p, &err);
    CHECK(p.fallback && p.top == 0 && p.left == 146 && p.box_h == 5 && p.box_w == 7,
          "wide fallback %d %d %d %d", p.top, p.left, p.box_h, p.box_w);
}

/* The train output is the resized box, mirrored when flipped; same seed, same floats. */
static void test_train_determinism(void)
{
    gsq_image img;
    if (!fx || !source_image("scene97x71", &img)) return;
    gsq_transform t;
    identity_transform(&t, 24);
    size_t n = 3 * 24 * 24;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    uint8_t want[24 * 24 * 3], got[24 * 24 * 3];
    gsq_error err;
    int flipped = 0, same = 1;
    for (int seed = 0; seed < 40; seed++) {
        gsq_rng r1, r2, r3;
        gsq_rng_seed(&r1, (uint64_t)seed, 3);
        r2 = r3 = r1;
        gsq_rrc_params p;
        CHECK(gsq_transform_train_params(&t, img.width, img.height, &r3, &p, &err) == GSQ_OK,
              "%s", err.msg);
        CHECK(gsq_transform_train(&t, &img, &r1, a, &err) == GSQ_OK, "%s", err.msg);
        CHECK(gsq_transform_train(&t, &img, &r2, b, &err) == GSQ_OK, "%s", err.msg);
        same &= memcmp(a, b, n * sizeof *a) == 0 && r1.state == r3.state;
        size_t stride = (size_t)img.width * 3;
        gsq_resize_bicubic(img.pixels + p.top * stride + (size_t)p.left * 3, p.box_w, p.box_h,
                           stride, 24, 24, 0, 0, 24, 24, want, &err);
        floats_to_hwc(a, 24, got);
        int match = 1;
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 24; x++) {
                int sx = p.flip ? 23 - x : x;
                match &= memcmp(got + (y * 24 + x) * 3, want + (y * 24 + sx) * 3, 3) == 0;
            }
        CHECK(match, "seed %d: train output is not the resized box (flip %d)", seed, p.flip);
        flipped += p.flip;
    }
    CHECK(same, "same seed gave different outputs or consumed different draws");
    CHECK(flipped > 5 && flipped < 35, "%d of 40 flipped", flipped);
    gsq_rng r1, r2;
    gsq_rng_seed(&r1, 1, 3);
    gsq_rng_seed(&r2, 2, 3);
    gsq_transform_train(&t, &img, &r1, a, &err);
    gsq_transform_train(&t, &img, &r2, b, &err);
    CHECK(memcmp(a, b, n * sizeof *a) != 0, "different seeds gave the same crop");
    free(a);
    free(b);
}

/* Computing a window of the resize equals resizing everything and cropping (the eval path
 * relies on it), including windows that stick out (zero padding). */
static void test_window(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 9, 0);
    uint8_t src[50 * 40 * 3];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(gsq_rng_u32(&rng) & 255);
    gsq_error err;
    const int outs[][2] = {{17, 13}, {50, 40}, {50, 71}, {120, 9}, {1, 1}, {3, 90}};
    for (int k = 0; k < 6; k++) {
        int ow = outs[k][0], oh = outs[k][1];
        uint8_t *full = malloc((size_t)ow * oh * 3), *win = malloc((size_t)(ow + 8) * (oh + 8) * 3);
        gsq_resize_bicubic(src, 50, 40, 150, ow, oh, 0, 0, ow, oh, full, &err);
        for (int trial = 0; trial < 8; trial++) {
            int ww = 1 + (int)(gsq_rng_u32(&rng) % (uint32_t)(ow + 4));
            int wh = 1 + (int)(gsq_rng_u32(&rng) % (uint32_t)(oh + 4));
            int x0 = (int)(gsq_rng_u32(&rng) % (uint32_t)(ow + 4)) - 3;
            int y0 = (int)(gsq_rng_u32(&rng) % (uint32_t)(oh + 4)) - 3;
            CHECK(gsq_resize_bicubic(src, 50, 40, 150, ow, oh, x0, y0, ww, wh, win, &err) ==
                  GSQ_OK, "%s", err.msg);
            int ok = 1;
            for (int y = 0; y < wh; y++)
                for (int x = 0; x < ww; x++)
                    for (int c = 0; c < 3; c++) {
                        int px = x0 + x, py = y0 + y;
                        int want = (px >= 0 && px < ow && py >= 0 && py < oh)
                                       ? full[((size_t)py * ow + px) * 3 + c] : 0;
                        ok &= win[((size_t)y * ww + x) * 3 + c] == want;
                    }
            CHECK(ok, "window %dx%d at (%d,%d) of %dx%d", ww, wh, x0, y0, ow, oh);
        }
        free(full);
        free(win);
    }
    /* same size in both directions is a copy */
    uint8_t copy[50 * 40 * 3];
    gsq_resize_bicubic(src, 50, 40, 150, 50, 40, 0, 0, 50, 40, copy, &err);
    CHECK(memcmp(copy, src, sizeof src) == 0, "identity resize changed the image");
}

/* 1x1 images, extreme aspect ratios, upscaling, bad arguments. */
static void test_degenerate(void)
{
    gsq_error err;
    gsq_transform t;
    identity_transform(&t, 32);
    uint8_t one[3] = {200, 17, 99};
    gsq_image img = {1, 1, one};
    float out[3 * 32 * 32];
    uint8_t rgb[32 * 32 * 3];
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    CHECK(gsq_transform_eval(&t, &img, out, &err) == GSQ_OK, "%s", err.msg);
    floats_to_hwc(out, 32, rgb);
    int flat = 1;
    for (int i = 0; i < 32 * 32; i++) flat &= memcmp(rgb + 3 * i, one, 3) == 0;
    CHECK(flat, "1x1 eval is not constant");
    CHECK(gsq_transform_train(&t, &img, &rng, out, &err) == GSQ_OK, "%s", err.msg);
    floats_to_hwc(out, 32, rgb);
    flat = 1;
    for (int i = 0; i < 32 * 32; i++) flat &= memcmp(rgb + 3 * i, one, 3) == 0;
    CHECK(flat, "1x1 train is not constant");

    /* a 1 x 20000 strip: only the centre crop's window is resized (a 37 x 740000 intermediate
     * is never built) */
    uint8_t *strip = malloc(20000 * 3);
    for (int i = 0; i < 20000 * 3; i++) strip[i] = (uint8_t)(i * 7);
    gsq_image tall = {1, 20000, strip}, wide = {20000, 1, strip};
    CHECK(gsq_transform_eval(&t, &tall, out, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_transform_eval(&t, &wide, out, &err) == GSQ_OK, "%s", err.msg);
    for (int i = 0; i < 50; i++) {
        CHECK(gsq_transform_train(&t, &tall, &rng, out, &err) == GSQ_OK, "%s", err.msg);
        CHECK(gsq_transform_train(&t, &wide, &rng, out, &err) == GSQ_OK, "%s", err.msg);
    }
    free(strip);

    /* bad arguments: one-line errors, nothing written past out */
    gsq_image ok_img = {1, 1, one}, no_px = {4, 4, NULL}, zero = {0, 3, one};
    gsq_transform bad;
    identity_transform(&bad, 0);
    CHECK(gsq_transform_eval(&bad, &ok_img, out, &err) == GSQ_ERR_ARG && strstr(err.msg, "size"),
          "size 0: %s", err.msg);
    CHECK(gsq_transform_eval(&t, &no_px, out, &err) == GSQ_ERR_ARG, "NULL pixels");
    CHECK(gsq_transform_train(&t, &zero, &rng, out, &err) == GSQ_ERR_ARG, "0-wide image");
    CHECK(gsq_transform_train(&t, &ok_img, NULL, out, &err) == GSQ_ERR_ARG, "NULL rng");
    CHECK(gsq_transform_eval(&t, &ok_img, NULL, &err) == GSQ_ERR_ARG, "NULL out");
    bad = t;
    bad.std[1] = 0.0f;
    CHECK(gsq_transform_eval(&bad, &ok_img, out, &err) == GSQ_ERR_ARG && strstr(err.msg, "std"),
          "std 0: %s", err.msg);
    bad = t;
    bad.crop_pct = NAN;
    CHECK(gsq_transform_eval(&bad, &ok_img, out, &err) == GSQ_ERR_ARG, "crop_pct NaN");
    bad.crop_pct = -1.0f;
    CHECK(gsq_transform_eval(&bad, &ok_img, out, &err) == GSQ_ERR_ARG, "crop_pct -1");
    bad.crop_pct = 1e-30f;
    CHECK(gsq_transform_eval(&bad, &ok_img, out, &err) == GSQ_ERR_ARG, "crop_pct tiny: %s",
          err.msg);
    bad = t;
    bad.scale_min = 0.9f;
    bad.scale_max = 0.1f;
    CHECK(gsq_transform_train(&bad, &ok_img, &rng, out, &err) == GSQ_ERR_ARG &&
          strstr(err.msg, "scale"), "scale range: %s", err.msg);
    bad = t;
    bad.ratio_min = 0.0f;
    CHECK(gsq_transform_train(&bad, &ok_img, &rng, out, &err) == GSQ_ERR_ARG, "ratio 0");
    bad = t; /* absurd but valid ranges: every try is rejected, the fallback box is used */
    bad.scale_min = 1.0f;
    bad.scale_max = 1e30f;
    bad.ratio_min = 1e-30f;
    bad.ratio_max = 1e30f;
    gsq_image small = {3, 2, (uint8_t[18]){0}};
    CHECK(gsq_transform_train(&bad, &small, &rng, out, &err) == GSQ_OK, "%s", err.msg);
    bad = t;
    bad.hflip = 1.5f;
    CHECK(gsq_transform_train(&bad, &ok_img, &rng, out, &err) == GSQ_ERR_ARG, "hflip 1.5");
    /* a resize that would be absurdly long is refused before any pixel is read */
    gsq_image huge = {1, 1 << 27, one};
    CHECK(gsq_transform_eval(&t, &huge, out, &err) == GSQ_ERR_ARG, "huge resize accepted");
}

int main(void)
{
    test_fixtures();
    test_normalisation();
    test_rrc_statistics();
    test_train_determinism();
    test_window();
    test_degenerate();
    gsq_st_close(fx);
    return test_finish("test_transforms");
}
