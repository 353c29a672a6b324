/* The tests' toy dataset (one bright quadrant in noise), shared by the training tests. */
#ifndef GSQ_TEST_TOY_DATASET_H
#define GSQ_TEST_TOY_DATASET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpusq/data.h"
#include "gpusq/rng.h"

/* A toy dataset: 16×16 noise with one bright quadrant; the label is the quadrant. Samples whose
 * index is in `broken` (every 11th from 3) fail to decode when fail is set; scramble reports a
 * label unrelated to the image. */
typedef struct {
    int fail;
    int slow; /* each sample takes 1 ms to "decode" */
    int scramble;
} toy_impl;

static gsq_status toy_get(gsq_dataset *ds, size_t index, gsq_sample *s, gsq_error *err)
{
    const toy_impl *impl = ds->impl;
    gsq_image *img = &s->image;
    int *label = &s->label;
    memset(s, 0, sizeof *s);
    if (impl->fail && index % 11 == 3) return gsq_fail(err, GSQ_ERR_FORMAT, "toy: sample %zu is broken", index);
    if (impl->slow) nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    gsq_status st = gsq_image_alloc(img, 16, 16, err);
    if (st != GSQ_OK) return st;
    gsq_rng rng;
    gsq_rng_seed(&rng, 99, index);
    int quadrant = (int)(index % 4);
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) {
            int q = (y >= 8) * 2 + (x >= 8);
            for (int c = 0; c < 3; c++)
                img->pixels[(y * 16 + x) * 3 + c] = (uint8_t)((q == quadrant ? 150 : 40) + gsq_rng_u32(&rng) % 90);
        }
    *label = impl->scramble ? (int)((index * 7 + index / 5) % 4) : quadrant;
    return GSQ_OK;
}

static void toy_destroy(gsq_dataset *ds)
{
    free(ds->impl);
    free(ds);
}

static gsq_dataset *toy_dataset(size_t size, int fail)
{
    gsq_dataset *ds = calloc(1, sizeof *ds);
    toy_impl *impl = calloc(1, sizeof *impl);
    impl->fail = fail;
    snprintf(ds->name, sizeof ds->name, "toy");
    ds->size = size;
    ds->num_classes = 4;
    ds->get = toy_get;
    ds->destroy = toy_destroy;
    ds->impl = impl;
    return ds;
}

#endif
