/* Tests of the synthetic datasets (test_synthetic.c, test_segment_data.c, test_detect_data.c):
 * opening one with its constructor under CHECK, FNV-1a hashes of bytes and of a sample's pixels
 * and target, and the determinism check from (seed, split, index) that the segmentation and
 * detection datasets share. */
#ifndef GSQ_TEST_SYNTHETIC_DATASET_H
#define GSQ_TEST_SYNTHETIC_DATASET_H

#include <stdint.h>

#include "gpusq/data.h"
#include "test_util.h"

#define FNV1A_BASIS 0xcbf29ce484222325ULL

/* gsq_dataset_synthetic, gsq_dataset_synthetic_segment or gsq_dataset_synthetic_detect. */
typedef gsq_status (*synthetic_open_fn)(gsq_dataset **out, size_t size, int resolution, uint64_t seed, int split,
                                        gsq_error *err);

/* The dataset create() makes, or NULL after a failed CHECK. */
static inline gsq_dataset *synthetic_make(synthetic_open_fn create, size_t size, int res, uint64_t seed, int split)
{
    gsq_dataset *ds = NULL;
    gsq_error err;
    gsq_status st = create(&ds, size, res, seed, split, &err);
    CHECK(st == GSQ_OK && ds != NULL, "create size %zu res %d seed %llu split %d: %s", size, res,
          (unsigned long long)seed, split, err.msg);
    return st == GSQ_OK ? ds : NULL;
}

/* FNV-1a of n bytes, continuing from h (FNV1A_BASIS to start). */
static inline uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The hash of sample i's pixels, label map and objects (0 when get fails). */
static inline uint64_t sample_hash(gsq_dataset *ds, size_t i)
{
    gsq_sample s;
    gsq_error err;
    if (ds->get(ds, i, &s, &err) != GSQ_OK) return 0;
    uint64_t h = fnv1a(s.image.pixels, (size_t)s.image.width * (size_t)s.image.height * 3, FNV1A_BASIS);
    h = fnv1a(s.map.labels, (size_t)s.map.width * (size_t)s.map.height * sizeof *s.map.labels, h);
    h = fnv1a(s.objects.objects, (size_t)s.objects.count * sizeof *s.objects.objects, h);
    gsq_sample_free(&s);
    return h;
}

/* Samples at resolution res depend on (seed, split, index) alone: the same in two datasets read in
 * other orders and in a larger one, different across splits and seeds. */
static inline void check_determinism(synthetic_open_fn create, int res)
{
    gsq_dataset *a = synthetic_make(create, 40, res, 11, 0), *b = synthetic_make(create, 40, res, 11, 0);
    gsq_dataset *v = synthetic_make(create, 40, res, 11, 1), *other = synthetic_make(create, 40, res, 12, 0);
    gsq_dataset *big = synthetic_make(create, 1000, res, 11, 0);
    if (a && b && v && other && big) {
        uint64_t backwards[40];
        for (size_t i = 40; i-- > 0;) backwards[i] = sample_hash(b, i);
        int same_split = 0, same_seed = 0;
        for (size_t i = 0; i < 40; i++) {
            uint64_t h = sample_hash(a, i);
            CHECK(h != 0, "sample %zu failed", i);
            CHECK(h == backwards[i], "sample %zu differs between two datasets drawn in other orders", i);
            CHECK(h == sample_hash(big, i), "sample %zu depends on the dataset size", i);
            same_split += h == sample_hash(v, i);
            same_seed += h == sample_hash(other, i);
        }
        CHECK(same_split == 0, "%d samples equal across splits", same_split);
        CHECK(same_seed == 0, "%d samples equal across seeds", same_seed);
    }
    gsq_dataset_free(a);
    gsq_dataset_free(b);
    gsq_dataset_free(v);
    gsq_dataset_free(other);
    gsq_dataset_free(big);
}

#endif
