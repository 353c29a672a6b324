/* Datasets in general: releasing one. Every dataset's destroy() frees all that the dataset owns,
 * the gsq_dataset itself included, so callers hold nothing after gsq_dataset_free. */
#include "gpusq/data.h"

void gsq_dataset_free(gsq_dataset *ds)
{
    if (ds && ds->destroy) ds->destroy(ds);
}
