/* Tests' reading of one classification sample through a dataset's get(): its image and class. */
#ifndef GSQ_TEST_DATASET_SAMPLE_H
#define GSQ_TEST_DATASET_SAMPLE_H

#include <string.h>

#include "gpusq/data.h"

static inline gsq_status get_image(gsq_dataset *ds, size_t index, gsq_image *img, int *label, gsq_error *err)
{
    gsq_sample s;
    memset(&s, 0, sizeof s);
    gsq_status st = ds->get(ds, index, &s, err);
    *img = s.image;
    if (label) *label = s.label;
    return st;
}

#endif
