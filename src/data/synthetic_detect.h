/* Internal to src/data and its tests: the synthetic detection dataset's drawing (synthetic_detect.c),
 * with the map of which object each pixel shows, from which the objects' boxes are taken. */
#ifndef GSQ_DATA_SYNTHETIC_DETECT_H
#define GSQ_DATA_SYNTHETIC_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/data.h"

/* Draws sample `index` of a gsq_dataset_synthetic_detect dataset into *s as its get() does, and
 * into owner (resolution², row-major) the object each pixel shows: its position in s->objects,
 * or -1 where the background shows. A pixel shows an object when its centre lies inside the
 * object's shape and inside no shape drawn later. */
gsq_status gsq_syn_detect_draw(const gsq_dataset *ds, size_t index, gsq_sample *s, int8_t *owner, gsq_error *err);

#endif
