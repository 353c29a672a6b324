/* An image's annotated objects (gpusq/detect.h): allocation and release. */
#include <stdlib.h>
#include <string.h>

#include "gpusq/detect.h"

gsq_status gsq_objects_alloc(gsq_objects *o, int64_t image_id, int width, int height, int count, gsq_error *err)
{
    if (!o) return gsq_fail(err, GSQ_ERR_ARG, "gsq_objects_alloc: NULL objects");
    memset(o, 0, sizeof *o);
    if (count < 0) return gsq_fail(err, GSQ_ERR_ARG, "gsq_objects_alloc: %d objects", count);
    if (count > 0 && !(o->objects = calloc((size_t)count, sizeof *o->objects)))
        return gsq_fail(err, GSQ_ERR_NOMEM, "gsq_objects_alloc: out of memory for %d objects", count);
    o->image_id = image_id;
    o->width = width;
    o->height = height;
    o->count = count;
    return GSQ_OK;
}

void gsq_objects_free(gsq_objects *o)
{
    if (!o) return;
    free(o->objects);
    memset(o, 0, sizeof *o);
}
