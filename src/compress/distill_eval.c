/* The feature-distillation loss of each block over a whole dataset (what stage 1 records for
 * stage 2): the student's and the teacher's forward passes batch by batch, each block's MSE
 * weighted by the batch's agreeing samples. */
#include <stdlib.h>

#include "gpusq/distill.h"
#include "gpusq/loader.h"
#include "models/model_state.h"

gsq_status gsq_distill_evaluate(gsq_model *student, gsq_model *teacher, const gsq_distill_config *cfg, gsq_dataset *ds,
                                const gsq_transform *t, int batch_size, int workers, float *mse,
                                double *agreement, gsq_error *err)
{
    int depth = gsq_model_depth(student);
    gsq_distiller *d = NULL;
    gsq_status st = gsq_distiller_create(&d, student, teacher, cfg, err);
    gsq_loader_config lc = {.batch_size = batch_size, .train = 0, .workers = workers, .prefetch = 4, .transform = *t};
    gsq_loader *ld = NULL;
    if (st == GSQ_OK) st = gsq_loader_create(&ld, ds, &lc, 0, 0, err);
    double *sum = calloc((size_t)depth, sizeof(double));
    float *batch_mse = malloc((size_t)depth * sizeof(float));
    if (st == GSQ_OK && (!sum || !batch_mse)) st = gsq_fail(err, GSQ_ERR_NOMEM, "distillation: out of memory");
    long batches = st == GSQ_OK ? gsq_loader_batches_per_epoch(ds, &lc) : 0;
    size_t agree = 0, count = 0;
    for (long b = 0; st == GSQ_OK && b < batches; b++) {
        gsq_batch batch;
        st = gsq_loader_next(ld, &batch, err);
        if (st != GSQ_OK || batch.n == 0) continue;
        gsq_distill_terms terms;
        st = gsq_model_infer(teacher, batch.images, batch.n, NULL, err);
        if (st == GSQ_OK) st = gsq_model_infer(student, batch.images, batch.n, NULL, err);
        if (st == GSQ_OK) st = gsq_distill_loss(d, student, teacher, NULL, &terms, batch_mse, err);
        if (st != GSQ_OK) break;
        for (int l = 0; l < depth; l++) sum[l] += (double)batch_mse[l] * terms.agree;
        agree += (size_t)terms.agree;
        count += (size_t)terms.positions;
    }
    if (st == GSQ_OK && count == 0)
        st = gsq_fail(err, GSQ_ERR_MISSING, "distillation: no sample of %s could be read", ds->name);
    if (st == GSQ_OK) {
        for (int l = 0; l < depth; l++) mse[l] = agree ? (float)(sum[l] / (double)agree) : 0.0f;
        *agreement = (double)agree / (double)count;
    }
    gsq_loader_destroy(ld);
    gsq_distiller_free(d);
    free(sum);
    free(batch_mse);
    return st;
}
