/* Tests of the segmentation data: the synthetic segmentation dataset (determinism from (seed,
 * split, index), thread safety, every class present, thin ignored borders between classes,
 * labels in range, bad arguments) and the segmentation transforms (identity eval, nearest
 * labels, the bilinear geometry, flips, crops and padding, jitter, determinism, bad
 * arguments). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/resample.h"
#include "gpusq/data.h"
#include "synthetic_dataset.h"
#include "test_util.h"

#define K GSQ_SYNTHETIC_SEG_CLASSES

static gsq_dataset *make(size_t size, int res, uint64_t seed, int split)
{
    return synthetic_make(gsq_dataset_synthetic_segment, size, res, seed, split);
}

static void test_names(void)
{
    gsq_dataset *tr = make(10, 32, 1, 0), *va = make(5, 32, 1, 1);
    if (tr && va) {
        CHECK(strcmp(tr->name, "synthetic-segment/train") == 0, "train name %s", tr->name);
        CHECK(strcmp(va->name, "synthetic-segment/val") == 0, "val name %s", va->name);
        CHECK(tr->task == GSQ_TASK_SEGMENT, "task %d", (int)tr->task);
        CHECK(tr->size == 10 && tr->num_classes == K, "size %zu classes %d", tr->size, tr->num_classes);
        CHECK(tr->class_names && strcmp(tr->class_names[0], "background") == 0, "class 0 is not background");
        for (int c = 0; tr->class_names && c < K; c++)
            for (int d = 0; d < c; d++)
                CHECK(strcmp(tr->class_names[c], tr->class_names[d]) != 0, "classes %d and %d share a name", c, d);
        gsq_sample s;
        gsq_error err;
        CHECK(tr->get(tr, 0, &s, &err) == GSQ_OK, "get: %s", err.msg);
        CHECK(s.image.width == 32 && s.image.height == 32 && s.map.width == 32 && s.map.height == 32,
              "sample %dx%d, map %dx%d", s.image.width, s.image.height, s.map.width, s.map.height);
        gsq_sample_free(&s);
    }
    gsq_dataset_free(tr);
    gsq_dataset_free(va);
    /* the smallest resolution: mostly borders, labels still in range */
    gsq_dataset *tiny = make(20, 8, 1, 0);
    int bad = 0;
    for (size_t i = 0; tiny && i < 20; i++) {
        gsq_sample s;
        gsq_error err;
        if (tiny->get(tiny, i, &s, &err) != GSQ_OK) break;
        for (int p = 0; p < 64; p++) bad += s.map.labels[p] < GSQ_IGNORE_LABEL || s.map.labels[p] >= K;
        gsq_sample_free(&s);
    }
    CHECK(tiny && bad == 0, "resolution 8: %d labels out of range", bad);
    gsq_dataset_free(tiny);
}

static void test_threads(void)
{
    enum { N = 64 };
    gsq_dataset *ds = make(N, 48, 3, 0);
    if (!ds) return;
    uint64_t serial[N], parallel[N];
    for (int i = 0; i < N; i++) serial[i] = sample_hash(ds, (size_t)i);
#pragma omp parallel for schedule(dynamic, 3) num_threads(4)
    for (int i = 0; i < N; i++) parallel[i] = sample_hash(ds, (size_t)i);
    for (int i = 0; i < N; i++) CHECK(parallel[i] == serial[i] && serial[i] != 0, "sample %d differs across threads", i);
    gsq_dataset_free(ds);
}

/* Class statistics over many samples: labels in range, every class present, ignored pixels a
 * thin band (under 15% of the pixels, at most a few without a labelled neighbour) that separates
 * every two classes (no two 4-neighbours carry different classes). */
static void check_statistics(int res, size_t n)
{
    gsq_dataset *ds = make(n, res, 5, 0);
    if (!ds) return;
    size_t count[K + 1] = {0}, bad = 0, touching = 0, isolated = 0;
    for (size_t i = 0; i < n; i++) {
        gsq_sample s;
        gsq_error err;
        if (ds->get(ds, i, &s, &err) != GSQ_OK) {
            CHECK(0, "get %zu: %s", i, err.msg);
            break;
        }
        const int16_t *l = s.map.labels;
        for (int y = 0; y < res; y++) {
            for (int x = 0; x < res; x++) {
                int v = l[y * res + x];
                if (v != GSQ_IGNORE_LABEL && (v < 0 || v >= K)) {
                    bad++;
                    continue;
                }
                count[v < 0 ? K : v]++;
                if (v >= 0 && x + 1 < res && l[y * res + x + 1] >= 0 && l[y * res + x + 1] != v) touching++;
                if (v >= 0 && y + 1 < res && l[(y + 1) * res + x] >= 0 && l[(y + 1) * res + x] != v) touching++;
                int labelled = 0;
                for (int dy = -1; dy <= 1 && v < 0; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int yy = y + dy, xx = x + dx;
                        if (yy >= 0 && yy < res && xx >= 0 && xx < res && l[yy * res + xx] >= 0) labelled = 1;
                    }
                isolated += v < 0 && !labelled;
            }
        }
        gsq_sample_free(&s);
    }
    double total = (double)n * res * res;
    CHECK(bad == 0, "res %d: %zu labels out of range", res, bad);
    for (int c = 0; c < K; c++)
        CHECK(count[c] > total / 100, "res %d: class %d (%s) has %zu pixels of %.0f", res, c, ds->class_names[c],
              count[c], total);
    CHECK(count[K] > 0 && count[K] < 0.15 * total, "res %d: %zu ignored pixels of %.0f", res, count[K], total);
    CHECK(touching == 0, "res %d: %zu pairs of neighbours with different classes and no border", res, touching);
    CHECK(isolated < count[K] / 100 + 1, "res %d: %zu of %zu ignored pixels have no labelled neighbour", res,
          isolated, count[K]);
    gsq_dataset_free(ds);
}

static void test_statistics(void)
{
    check_statistics(32, 400);
    check_statistics(96, 60);
}

static void test_bad_dataset_args(void)
{
    gsq_dataset *ds = (gsq_dataset *)1;
    gsq_error err;
    CHECK(gsq_dataset_synthetic_segment(&ds, 0, 32, 1, 0, &err) == GSQ_ERR_ARG && ds == NULL, "size 0 accepted");
    const int bad_res[] = {7, 0, -3, 4097};
    for (int k = 0; k < 4; k++)
        CHECK(gsq_dataset_synthetic_segment(&ds, 4, bad_res[k], 1, 0, &err) == GSQ_ERR_ARG, "resolution %d accepted",
              bad_res[k]);
    CHECK(gsq_dataset_synthetic_segment(&ds, 4, 32, 1, 2, &err) == GSQ_ERR_ARG, "split 2 accepted");
    CHECK(gsq_dataset_synthetic_segment(NULL, 4, 32, 1, 0, &err) == GSQ_ERR_ARG, "NULL output accepted");
    CHECK(gsq_dataset_synthetic_segment(&ds, 4, 32, 1, 0, &err) == GSQ_OK, "create: %s", err.msg);
    gsq_sample s;
    CHECK(ds->get(ds, 4, &s, &err) == GSQ_ERR_ARG && strstr(err.msg, "synthetic-segment/train") &&
              s.image.pixels == NULL && s.map.labels == NULL,
          "index past the end: %s", err.msg);
    CHECK(ds->get(ds, 0, NULL, &err) == GSQ_ERR_ARG, "NULL sample accepted");
    gsq_dataset_free(ds);
}

/* --- transforms ---------------------------------------------------------------------------- */

/* A w × h image of random bytes and a map of random labels from `values` (nv of them). */
static void random_pair(gsq_image *img, gsq_label_map *map, int w, int h, const int16_t *values, int nv,
                        uint64_t seed)
{
    gsq_rng r;
    gsq_rng_seed(&r, seed, 1);
    gsq_error err;
    CHECK(gsq_image_alloc(img, w, h, &err) == GSQ_OK && gsq_label_map_alloc(map, w, h, &err) == GSQ_OK, "alloc %dx%d",
          w, h);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img->pixels[i] = (uint8_t)gsq_rng_u32(&r);
    for (size_t i = 0; i < (size_t)w * h; i++) map->labels[i] = values[gsq_rng_u32(&r) % (uint32_t)nv];
}

static const int16_t some_labels[] = {0, 3, 7, GSQ_IGNORE_LABEL, 250};
#define N_SOME (int)(sizeof some_labels / sizeof some_labels[0])

static int in_set(int16_t v, const int16_t *set, int n)
{
    for (int i = 0; i < n; i++)
        if (set[i] == v) return 1;
    return 0;
}

static void test_defaults(void)
{
    gsq_transform t;
    gsq_transform_segment_defaults(&t, 64);
    CHECK(t.size == 64 && t.scale_min == 0.5f && t.scale_max == 2.0f && t.hflip == 0.5f && t.jitter == 1.0f,
          "segment defaults: size %d scale [%g, %g] hflip %g jitter %g", t.size, (double)t.scale_min,
          (double)t.scale_max, (double)t.hflip, (double)t.jitter);
    CHECK(t.mean[0] == 0.485f && t.std[2] == 0.225f, "mean/std not ImageNet's");
    gsq_transform_defaults(&t, 64);
    CHECK(t.jitter == 0.0f, "classification defaults jitter %g", (double)t.jitter);
}

/* Eval of an image already size × size: the normalised bytes (as gsq_transform_eval writes them
 * at crop_pct 1) and the labels, exactly. */
static void test_eval_identity(void)
{
    enum { S = 24 };
    gsq_image img;
    gsq_label_map map;
    random_pair(&img, &map, S, S, some_labels, N_SOME, 1);
    gsq_transform t;
    gsq_transform_segment_defaults(&t, S);
    float out[3 * S * S], ref[3 * S * S];
    int16_t labels[S * S];
    gsq_error err;
    CHECK(gsq_transform_segment_eval(&t, &img, &map, out, labels, &err) == GSQ_OK, "eval: %s", err.msg);
    t.crop_pct = 1.0f;
    CHECK(gsq_transform_eval(&t, &img, ref, &err) == GSQ_OK, "classification eval: %s", err.msg);
    int diff = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < S * S; i++) {
            float want = ((float)img.pixels[3 * i + c] / 255.0f - t.mean[c]) / t.std[c];
            diff += out[c * S * S + i] != want || out[c * S * S + i] != ref[c * S * S + i];
        }
    CHECK(diff == 0, "%d normalised values differ from the image's", diff);
    CHECK(memcmp(labels, map.labels, sizeof labels) == 0, "identity eval changed the labels");
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

/* The bilinear geometry (OpenCV's): 2 → 4 pixels reads input positions 0 (clamped), 0.25, 0.75,
 * 1 (clamped); 4 → 2 reads 0.5 and 2.5; a constant image stays constant at any size. */
static void test_bilinear(void)
{
    gsq_error err;
    const uint8_t src[6] = {0, 40, 200, 100, 80, 0};
    uint8_t up[12], down[6];
    CHECK(gsq_resize_bilinear(src, 2, 1, 6, 4, 1, 0, 0, 4, 1, up, &err) == GSQ_OK, "upscale: %s", err.msg);
    const uint8_t want_up[12] = {0, 40, 200, 25, 50, 150, 75, 70, 50, 100, 80, 0};
    CHECK(memcmp(up, want_up, 12) == 0, "2 -> 4: %d %d %d %d", up[0], up[3], up[6], up[9]);
    const uint8_t src4[12] = {0, 0, 0, 10, 10, 10, 20, 20, 20, 31, 31, 31};
    CHECK(gsq_resize_bilinear(src4, 4, 1, 12, 2, 1, 0, 0, 2, 1, down, &err) == GSQ_OK, "downscale: %s", err.msg);
    CHECK(down[0] == 5 && down[3] == 26, "4 -> 2: %d %d (want 5, 26)", down[0], down[3]);
    uint8_t flat[5 * 7 * 3], big[13 * 9 * 3];
    memset(flat, 77, sizeof flat);
    CHECK(gsq_resize_bilinear(flat, 5, 7, 15, 13, 9, 0, 0, 13, 9, big, &err) == GSQ_OK, "flat: %s", err.msg);
    int off = 0;
    for (size_t i = 0; i < sizeof big; i++) off += big[i] != 77;
    CHECK(off == 0, "%d bytes of a constant image changed", off);
    CHECK(gsq_resize_bilinear(flat, 5, 7, 15, 13, 9, 1, 0, 13, 9, big, &err) == GSQ_ERR_ARG,
          "window past the result accepted");
}

/* Nearest labels: every value comes from the source, at the source pixel that holds the output
 * pixel's centre; also through the random train transform. */
static void test_nearest(void)
{
    gsq_image img;
    gsq_label_map map;
    enum { W = 23, H = 31 };
    random_pair(&img, &map, W, H, some_labels, N_SOME, 2);
    const int sizes[] = {1, 7, 17, 32, 45};
    for (int k = 0; k < 5; k++) {
        int s = sizes[k];
        gsq_transform t;
        gsq_transform_segment_defaults(&t, s);
        float *out = malloc(sizeof(float) * 3 * s * s);
        int16_t *labels = malloc(sizeof(int16_t) * s * s);
        gsq_error err;
        CHECK(gsq_transform_segment_eval(&t, &img, &map, out, labels, &err) == GSQ_OK, "eval %d: %s", s, err.msg);
        int wrong = 0;
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) {
                int sx = (int)((2 * x + 1) * W / (2 * s)), sy = (int)((2 * y + 1) * H / (2 * s));
                wrong += labels[y * s + x] != map.labels[sy * W + sx];
            }
        CHECK(wrong == 0, "eval to %d: %d labels not from the source pixel under their centre", s, wrong);
        int foreign = 0;
        for (uint64_t seed = 0; seed < 20; seed++) {
            gsq_rng rng;
            gsq_rng_seed(&rng, seed, 3);
            CHECK(gsq_transform_segment_train(&t, &img, &map, &rng, out, labels, &err) == GSQ_OK, "train %d: %s", s,
                  err.msg);
            for (int i = 0; i < s * s; i++) foreign += !in_set(labels[i], some_labels, N_SOME);
        }
        CHECK(foreign == 0, "train to %d: %d labels not in the source", s, foreign);
        free(out);
        free(labels);
    }
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

/* A train transform with the rescale fixed to r and the given flip and jitter, seeded. */
static gsq_status train_fixed(const gsq_image *img, const gsq_label_map *map, int size, float r, float hflip,
                              float jitter, uint64_t seed, float *out, int16_t *labels)
{
    gsq_transform t;
    gsq_transform_segment_defaults(&t, size);
    t.scale_min = t.scale_max = r;
    t.hflip = hflip;
    t.jitter = jitter;
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 9);
    gsq_error err;
    gsq_status st = gsq_transform_segment_train(&t, img, map, &rng, out, labels, &err);
    CHECK(st == GSQ_OK, "train: %s", err.msg);
    return st;
}

/* Flip with probability 1 mirrors image and labels together (an asymmetric map: label = x / 4). */
static void test_flip(void)
{
    enum { S = 32 };
    gsq_image img;
    gsq_label_map map;
    random_pair(&img, &map, S, S, some_labels, 1, 4);
    for (int i = 0; i < S * S; i++) map.labels[i] = (int16_t)((i % S) / 4);
    float plain[3 * S * S], flipped[3 * S * S];
    int16_t lp[S * S], lf[S * S];
    train_fixed(&img, &map, S, 1.0f, 0.0f, 0.0f, 5, plain, lp);
    train_fixed(&img, &map, S, 1.0f, 1.0f, 0.0f, 5, flipped, lf);
    int wrong = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int a = y * S + x, b = y * S + (S - 1 - x);
            wrong += lf[a] != lp[b];
            for (int c = 0; c < 3; c++) wrong += flipped[c * S * S + a] != plain[c * S * S + b];
        }
    CHECK(wrong == 0, "%d values not mirrored", wrong);
    CHECK(memcmp(lp, map.labels, sizeof lp) == 0 && lf[0] == 7 && lf[S - 1] == 0, "labels %d..%d", lf[0], lf[S - 1]);
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

/* Rescaled below the crop: the image sits at the top left, the rest is 0 and ignored. */
static void check_padding(int w, int h, int size, float r, int want_w, int want_h)
{
    gsq_image img;
    gsq_label_map map;
    const int16_t labelled[] = {1, 2, 4};
    random_pair(&img, &map, w, h, labelled, 3, 6);
    float *out = malloc(sizeof(float) * 3 * size * size);
    int16_t *labels = malloc(sizeof(int16_t) * size * size);
    for (uint64_t seed = 0; seed < 4; seed++) {
        if (train_fixed(&img, &map, size, r, 0.5f, 1.0f, seed, out, labels) != GSQ_OK) break;
        int wrong = 0;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                int i = y * size + x, pad = x >= want_w || y >= want_h;
                wrong += pad != (labels[i] == GSQ_IGNORE_LABEL);
                for (int c = 0; c < 3 && pad; c++) wrong += out[c * size * size + i] != 0.0f;
            }
        CHECK(wrong == 0, "%dx%d image, side %d, r %g: %d pixels padded wrongly (want %dx%d kept)", w, h, size,
              (double)r, wrong, want_w, want_h);
    }
    free(out);
    free(labels);
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

static void test_crop_pad(void)
{
    check_padding(32, 32, 32, 0.5f, 16, 16);  /* 16 × 16 */
    check_padding(20, 40, 32, 0.5f, 16, 32);  /* 16 × 32: columns padded */
    check_padding(50, 25, 32, 0.25f, 16, 8);  /* 16 × 8 */
    check_padding(20, 40, 32, 1.0f, 32, 32);  /* 32 × 64: cropped, no padding */
    check_padding(30, 30, 16, 2.0f, 16, 16);  /* 32 × 32 */
}

/* Jitter draws come after the geometry's: the same seed gives the same labels with and without
 * it, and images that differ; jittered values stay in [0, 1] before normalisation. */
static void test_jitter(void)
{
    enum { S = 32 };
    gsq_image img;
    gsq_label_map map;
    random_pair(&img, &map, 40, 28, some_labels, N_SOME, 7);
    float a[3 * S * S], b[3 * S * S];
    int16_t la[S * S], lb[S * S];
    int label_diff = 0, image_diff = 0, out_of_range = 0;
    for (uint64_t seed = 0; seed < 16; seed++) {
        gsq_transform t;
        gsq_transform_segment_defaults(&t, S);
        gsq_rng r1, r2;
        gsq_rng_seed(&r1, seed, 2);
        gsq_rng_seed(&r2, seed, 2);
        gsq_error err;
        CHECK(gsq_transform_segment_train(&t, &img, &map, &r1, a, la, &err) == GSQ_OK, "jitter: %s", err.msg);
        t.jitter = 0.0f;
        CHECK(gsq_transform_segment_train(&t, &img, &map, &r2, b, lb, &err) == GSQ_OK, "no jitter: %s", err.msg);
        label_diff += memcmp(la, lb, sizeof la) != 0;
        image_diff += memcmp(a, b, sizeof a) != 0;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S * S; i++) {
                float v = a[c * S * S + i] * t.std[c] + t.mean[c];
                out_of_range += v < -1e-5f || v > 1.0f + 1e-5f;
            }
    }
    CHECK(label_diff == 0, "jitter changed the labels of %d crops", label_diff);
    CHECK(image_diff >= 8, "jitter changed only %d of 16 crops", image_diff);
    CHECK(out_of_range == 0, "%d jittered values outside [0, 1]", out_of_range);
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

/* The same generator state gives the same output; another seed, another crop. */
static void test_train_determinism(void)
{
    enum { S = 32 };
    gsq_image img;
    gsq_label_map map;
    random_pair(&img, &map, 45, 37, some_labels, N_SOME, 8);
    float a[3 * S * S], b[3 * S * S];
    int16_t la[S * S], lb[S * S];
    gsq_transform t;
    gsq_transform_segment_defaults(&t, S);
    gsq_error err;
    int differ = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        gsq_rng r1, r2, r3;
        gsq_rng_seed(&r1, seed, 4);
        gsq_rng_seed(&r2, seed, 4);
        gsq_rng_seed(&r3, seed + 100, 4);
        gsq_transform_segment_train(&t, &img, &map, &r1, a, la, &err);
        gsq_transform_segment_train(&t, &img, &map, &r2, b, lb, &err);
        CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(la, lb, sizeof la) == 0, "seed %llu: two runs differ",
              (unsigned long long)seed);
        gsq_transform_segment_train(&t, &img, &map, &r3, b, lb, &err);
        differ += memcmp(a, b, sizeof a) != 0;
    }
    CHECK(differ == 8, "only %d of 8 seeds gave another crop", differ);
    gsq_image_free(&img);
    gsq_label_map_free(&map);
}

static void test_bad_transform_args(void)
{
    enum { S = 16 };
    gsq_image img;
    gsq_label_map map, small;
    random_pair(&img, &map, S, S, some_labels, N_SOME, 9);
    gsq_error err;
    CHECK(gsq_label_map_alloc(&small, S - 1, S, &err) == GSQ_OK, "alloc: %s", err.msg);
    gsq_transform t;
    gsq_transform_segment_defaults(&t, S);
    float out[3 * S * S];
    int16_t labels[S * S];
    gsq_rng rng;
    gsq_rng_seed(&rng, 1, 1);
    CHECK(gsq_transform_segment_eval(&t, &img, &small, out, labels, &err) == GSQ_ERR_SHAPE &&
              strstr(err.msg, "15x16") && strstr(err.msg, "16x16"),
          "eval size mismatch: %s", err.msg);
    CHECK(gsq_transform_segment_train(&t, &img, &small, &rng, out, labels, &err) == GSQ_ERR_SHAPE,
          "train size mismatch: %s", err.msg);
    CHECK(gsq_transform_segment_eval(&t, &img, NULL, out, labels, &err) == GSQ_ERR_ARG, "NULL map accepted");
    CHECK(gsq_transform_segment_eval(&t, &img, &map, out, NULL, &err) == GSQ_ERR_ARG, "NULL labels accepted");
    CHECK(gsq_transform_segment_train(&t, &img, &map, NULL, out, labels, &err) == GSQ_ERR_ARG, "NULL rng accepted");
    gsq_transform bad = t;
    bad.jitter = 3.0f;
    CHECK(gsq_transform_segment_train(&bad, &img, &map, &rng, out, labels, &err) == GSQ_ERR_ARG, "jitter 3 accepted");
    bad = t;
    bad.scale_min = 0.0f;
    CHECK(gsq_transform_segment_train(&bad, &img, &map, &rng, out, labels, &err) == GSQ_ERR_ARG, "scale 0 accepted");
    bad = t;
    bad.hflip = 1.5f;
    CHECK(gsq_transform_segment_train(&bad, &img, &map, &rng, out, labels, &err) == GSQ_ERR_ARG, "hflip 1.5 accepted");
    bad = t;
    bad.std[1] = 0.0f;
    CHECK(gsq_transform_segment_eval(&bad, &img, &map, out, labels, &err) == GSQ_ERR_ARG, "std 0 accepted");
    bad = t;
    bad.size = 0;
    CHECK(gsq_transform_segment_eval(&bad, &img, &map, out, labels, &err) == GSQ_ERR_ARG, "size 0 accepted");
    gsq_image_free(&img);
    gsq_label_map_free(&map);
    gsq_label_map_free(&small);
}

/* A dataset sample through both transforms: labels stay within the classes and ignore. */
static void test_dataset_through_transforms(void)
{
    gsq_dataset *ds = make(8, 64, 2, 0);
    if (!ds) return;
    enum { S = 32 };
    gsq_transform t;
    gsq_transform_segment_defaults(&t, S);
    float out[3 * S * S];
    int16_t labels[S * S];
    int bad = 0;
    for (size_t i = 0; i < 8; i++) {
        gsq_sample s;
        gsq_error err;
        gsq_rng rng;
        gsq_rng_seed(&rng, i, 5);
        if (ds->get(ds, i, &s, &err) != GSQ_OK) break;
        CHECK(gsq_transform_segment_eval(&t, &s.image, &s.map, out, labels, &err) == GSQ_OK, "eval: %s", err.msg);
        for (int p = 0; p < S * S; p++) bad += labels[p] < GSQ_IGNORE_LABEL || labels[p] >= K;
        CHECK(gsq_transform_segment_train(&t, &s.image, &s.map, &rng, out, labels, &err) == GSQ_OK, "train: %s",
              err.msg);
        for (int p = 0; p < S * S; p++) bad += labels[p] < GSQ_IGNORE_LABEL || labels[p] >= K;
        gsq_sample_free(&s);
    }
    CHECK(bad == 0, "%d labels out of range after the transforms", bad);
    gsq_dataset_free(ds);
}

int main(void)
{
    test_names();
    check_determinism(gsq_dataset_synthetic_segment, 32);
    test_threads();
    test_statistics();
    test_bad_dataset_args();
    test_defaults();
    test_eval_identity();
    test_bilinear();
    test_nearest();
    test_flip();
    test_crop_pad();
    test_jitter();
    test_train_determinism();
    test_bad_transform_args();
    test_dataset_through_transforms();
    return test_finish("test_segment_data");
}
