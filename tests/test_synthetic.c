/* Tests of the built-in synthetic dataset: determinism from (seed, split, index), every
 * resolution, balanced labels, thread safety, class names and bad arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/data.h"
#include "dataset_sample.h"
#include "synthetic_dataset.h"
#include "test_util.h"

static gsq_dataset *make(size_t size, int res, uint64_t seed, int split)
{
    return synthetic_make(gsq_dataset_synthetic, size, res, seed, split);
}

/* Draws sample i; returns its pixels (malloc'd, res·res·3 bytes) or NULL. */
static uint8_t *draw(gsq_dataset *ds, size_t i, int *label)
{
    gsq_image img = {0};
    gsq_error err;
    if (get_image(ds, i, &img, label, &err) != GSQ_OK) {
        CHECK(0, "get %zu: %s", i, err.msg);
        return NULL;
    }
    size_t n = (size_t)img.width * (size_t)img.height * 3;
    uint8_t *copy = malloc(n);
    memcpy(copy, img.pixels, n);
    gsq_image_free(&img);
    return copy;
}

static void test_names_and_shape(void)
{
    gsq_dataset *tr = make(100, 32, 7, 0), *va = make(50, 32, 7, 1);
    if (!tr || !va) return;
    CHECK(strcmp(tr->name, "synthetic/train") == 0, "train name %s", tr->name);
    CHECK(strcmp(va->name, "synthetic/val") == 0, "val name %s", va->name);
    CHECK(tr->size == 100 && va->size == 50, "sizes %zu %zu", tr->size, va->size);
    CHECK(tr->num_classes == GSQ_SYNTHETIC_CLASSES, "num_classes %d", tr->num_classes);
    CHECK(tr->class_names != NULL, "class names missing");
    if (tr->class_names) {
        for (int c = 0; c < tr->num_classes; c++) {
            CHECK(tr->class_names[c] && tr->class_names[c][0], "class %d has no name", c);
            for (int d = 0; d < c; d++)
                CHECK(strcmp(tr->class_names[c], tr->class_names[d]) != 0,
                      "classes %d and %d share the name %s", c, d, tr->class_names[c]);
        }
        CHECK(strcmp(tr->class_names[0], "circle") == 0, "class 0 is %s", tr->class_names[0]);
    }
    gsq_dataset_free(tr);
    gsq_dataset_free(va);
    gsq_dataset_free(NULL);
}

static void test_determinism(void)
{
    const size_t n = 32 * 32 * 3;
    gsq_dataset *a = make(1000, 32, 42, 0), *b = make(1000, 32, 42, 0);
    gsq_dataset *s2 = make(1000, 32, 43, 0), *val = make(1000, 32, 42, 1);
    if (!a || !b || !s2 || !val) return;
    size_t idx[] = {0, 1, 9, 10, 123, 999};
    for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
        int la, lb, lb2, l2, lv;
        uint8_t *pa = draw(a, idx[k], &la), *pb = draw(b, idx[k], &lb);
        uint8_t *pb2 = draw(b, idx[k], &lb2);
        uint8_t *p2 = draw(s2, idx[k], &l2), *pv = draw(val, idx[k], &lv);
        if (pa && pb && pb2 && p2 && pv) {
            CHECK(la == lb && memcmp(pa, pb, n) == 0, "index %zu differs between datasets",
                  idx[k]);
            CHECK(lb == lb2 && memcmp(pb, pb2, n) == 0, "index %zu differs on a second draw",
                  idx[k]);
            CHECK(memcmp(pa, p2, n) != 0, "index %zu same under seeds 42 and 43", idx[k]);
            CHECK(memcmp(pa, pv, n) != 0, "index %zu same in train and validation", idx[k]);
        }
        free(pa);
        free(pb);
        free(pb2);
        free(p2);
        free(pv);
    }
    /* distinct samples of one dataset differ, and the order of drawing does not matter */
    uint64_t first[20];
    for (size_t i = 0; i < 20; i++) {
        int l;
        uint8_t *p = draw(a, i, &l);
        first[i] = p ? fnv1a(p, n, FNV1A_BASIS) : 0;
        free(p);
    }
    int same = 0;
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < i; j++) same += first[i] == first[j];
    CHECK(same == 0, "%d pairs of the first 20 samples are identical", same);
    for (int i = 19; i >= 0; i--) {
        int l;
        uint8_t *p = draw(b, (size_t)i, &l);
        uint64_t h = p ? fnv1a(p, n, FNV1A_BASIS) : 1;
        CHECK(h == first[i], "sample %d differs when drawn in reverse order", i);
        free(p);
    }
    gsq_dataset_free(a);
    gsq_dataset_free(b);
    gsq_dataset_free(s2);
    gsq_dataset_free(val);
}

static void test_resolutions(void)
{
    int res[] = {8, 13, 32, 224};
    int labels[4];
    for (int k = 0; k < 4; k++) {
        gsq_dataset *ds = make(20, res[k], 5, 0);
        if (!ds) return;
        gsq_image img = {0};
        gsq_error err;
        CHECK(get_image(ds, 3, &img, &labels[k], &err) == GSQ_OK, "res %d: %s", res[k], err.msg);
        CHECK(img.width == res[k] && img.height == res[k], "res %d: got %dx%d", res[k],
              img.width, img.height);
        if (img.pixels) {
            int lo = 255, hi = 0;
            for (size_t i = 0; i < (size_t)res[k] * (size_t)res[k] * 3; i++) {
                if (img.pixels[i] < lo) lo = img.pixels[i];
                if (img.pixels[i] > hi) hi = img.pixels[i];
            }
            CHECK(hi - lo > 20, "res %d: nearly constant image (%d..%d)", res[k], lo, hi);
        }
        CHECK(labels[k] == labels[0], "res %d: label %d, at 8: %d", res[k], labels[k],
              labels[0]);
        gsq_image_free(&img);
        gsq_dataset_free(ds);
    }
}

/* The scene does not depend on the resolution: sample i at 224, box-averaged to 32, is closer to
 * sample i at 32 than to any other sample at 32. */
static void test_scene_independent_of_resolution(void)
{
    gsq_dataset *hi = make(10, 224, 11, 0), *lo = make(10, 32, 11, 0);
    if (!hi || !lo) return;
    int worse = 0;
    for (size_t i = 0; i < 5; i++) {
        int l;
        uint8_t *h = draw(hi, i, &l);
        if (!h) break;
        float down[32 * 32 * 3];
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++)
                for (int c = 0; c < 3; c++) {
                    float s = 0.0f;
                    for (int dy = 0; dy < 7; dy++)
                        for (int dx = 0; dx < 7; dx++)
                            s += h[((size_t)(y * 7 + dy) * 224 + (size_t)(x * 7 + dx)) * 3 + c];
                    down[(y * 32 + x) * 3 + c] = s / 49.0f;
                }
        free(h);
        double dist[10];
        for (size_t j = 0; j < 10; j++) {
            uint8_t *p = draw(lo, j, &l);
            dist[j] = 0.0;
            for (int k = 0; p && k < 32 * 32 * 3; k++) dist[j] += fabs(down[k] - (float)p[k]);
            dist[j] /= 32 * 32 * 3;
            free(p);
        }
        for (size_t j = 0; j < 10; j++)
            if (j != i && dist[j] <= dist[i]) worse++;
        CHECK(dist[i] < 40.0, "sample %zu: mean |down(224) - 32| = %.1f", i, dist[i]);
    }
    CHECK(worse == 0, "%d other samples were as close as the same sample", worse);
    gsq_dataset_free(hi);
    gsq_dataset_free(lo);
}

static void test_balanced_labels(void)
{
    gsq_dataset *ds = make(1000, 8, 3, 0);
    if (!ds) return;
    int count[GSQ_SYNTHETIC_CLASSES] = {0}, bad = 0, runs = 0, prev = -1;
    for (size_t i = 0; i < 1000; i++) {
        gsq_image img = {0};
        int l = -1;
        gsq_error err;
        if (get_image(ds, i, &img, &l, &err) != GSQ_OK || l < 0 || l >= GSQ_SYNTHETIC_CLASSES) {
            bad++;
            continue;
        }
        count[l]++;
        runs += l == (prev + 1) % GSQ_SYNTHETIC_CLASSES;
        prev = l;
        gsq_image_free(&img);
    }
    CHECK(bad == 0, "%d samples failed or had labels out of range", bad);
    for (int c = 0; c < GSQ_SYNTHETIC_CLASSES; c++)
        CHECK(count[c] == 100, "class %d: %d of the first 1000", c, count[c]);
    CHECK(runs < 300, "labels look sequential (%d of 1000 follow the previous one)", runs);
    gsq_dataset_free(ds);
}

static void test_threads(void)
{
    enum { N = 400 };
    const size_t bytes = 24 * 24 * 3;
    gsq_dataset *ds = make(N, 24, 99, 1);
    if (!ds) return;
    uint64_t serial[N], parallel[N];
    int ls[N], lp[N];
    for (int i = 0; i < N; i++) {
        uint8_t *p = draw(ds, (size_t)i, &ls[i]);
        serial[i] = p ? fnv1a(p, bytes, FNV1A_BASIS) : 0;
        free(p);
    }
    int fails = 0;
#pragma omp parallel for schedule(dynamic, 7) num_threads(4) reduction(+ : fails)
    for (int i = N - 1; i >= 0; i--) {
        gsq_image img = {0};
        gsq_error err;
        if (get_image(ds, (size_t)i, &img, &lp[i], &err) != GSQ_OK) {
            fails++;
            parallel[i] = 0;
            continue;
        }
        parallel[i] = fnv1a(img.pixels, bytes, FNV1A_BASIS);
        gsq_image_free(&img);
    }
    CHECK(fails == 0, "%d parallel draws failed", fails);
    int diff = 0;
    for (int i = 0; i < N; i++) diff += serial[i] != parallel[i] || ls[i] != lp[i];
    CHECK(diff == 0, "%d of %d samples differ between serial and parallel draws", diff, N);
    gsq_dataset_free(ds);
}

static void test_bad_arguments(void)
{
    gsq_dataset *ds = (gsq_dataset *)&ds;
    gsq_error err;
    CHECK(gsq_dataset_synthetic(&ds, 0, 32, 1, 0, &err) == GSQ_ERR_ARG && ds == NULL,
          "size 0 accepted");
    CHECK(strstr(err.msg, "size") != NULL, "message: %s", err.msg);
    int bad_res[] = {7, 0, -32, 1 << 20};
    for (int k = 0; k < 4; k++) {
        CHECK(gsq_dataset_synthetic(&ds, 10, bad_res[k], 1, 0, &err) == GSQ_ERR_ARG,
              "resolution %d accepted", bad_res[k]);
        CHECK(strstr(err.msg, "resolution") != NULL, "message: %s", err.msg);
    }
    CHECK(gsq_dataset_synthetic(&ds, 10, 32, 1, 2, &err) == GSQ_ERR_ARG, "split 2 accepted");
    CHECK(gsq_dataset_synthetic(&ds, 10, 32, 1, -1, &err) == GSQ_ERR_ARG, "split -1 accepted");
    CHECK(gsq_dataset_synthetic(NULL, 10, 32, 1, 0, &err) == GSQ_ERR_ARG, "NULL out accepted");
    CHECK(gsq_dataset_synthetic(&ds, 10, 32, 1, 0, NULL) == GSQ_OK, "NULL err not allowed");
    gsq_dataset_free(ds);

    ds = make(10, 8, 1, 0);
    if (!ds) return;
    gsq_image img = {0};
    int label = -1;
    CHECK(get_image(ds, 10, &img, &label, &err) == GSQ_ERR_ARG, "index 10 of 10 accepted");
    CHECK(strstr(err.msg, "synthetic/train") != NULL && strstr(err.msg, "10") != NULL,
          "message: %s", err.msg);
    CHECK(img.pixels == NULL, "failed get allocated pixels");
    CHECK(ds->get(ds, 0, NULL, &err) == GSQ_ERR_ARG, "NULL sample accepted");
    CHECK(get_image(ds, 9, &img, &label, &err) == GSQ_OK, "last index: %s", err.msg);
    gsq_image_free(&img);
    gsq_dataset_free(ds);
}

int main(void)
{
    test_names_and_shape();
    test_determinism();
    test_resolutions();
    test_scene_independent_of_resolution();
    test_balanced_labels();
    test_threads();
    test_bad_arguments();
    return test_finish("test_synthetic");
}
