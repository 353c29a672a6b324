/* Calibration of a quantized ViT's activation scales: float forward passes over the first
 * batches of a dataset (eval transform) while every quantized GEMM's input is observed. */
#include "gpusq/loader.h"
#include "gpusq/vit_quant.h"

gsq_status gsq_model_quant_calibrate(gsq_model *m, gsq_dataset *ds, const gsq_transform *t, int batch_size, int batches,
                                   int workers, gsq_calib_method method, float percentile, gsq_error *err)
{
    gsq_loader_config lc = {.batch_size = batch_size, .train = 0, .workers = workers, .prefetch = 4, .transform = *t};
    long available = gsq_loader_batches_per_epoch(ds, &lc);
    if (batches < 1) return gsq_fail(err, GSQ_ERR_ARG, "calibration: %d batches", batches);
    if (batches > available) batches = (int)available;
    gsq_loader *ld = NULL;
    gsq_status st = gsq_model_quant_observe_begin(m, (size_t)1 << 20, err);
    if (st == GSQ_OK) st = gsq_loader_create(&ld, ds, &lc, 0, 0, err);
    for (int b = 0; st == GSQ_OK && b < batches; b++) {
        gsq_batch batch;
        st = gsq_loader_next(ld, &batch, err);
        if (st == GSQ_OK && batch.n > 0) st = gsq_model_infer(m, batch.images, batch.n, NULL, err);
    }
    gsq_loader_destroy(ld);
    if (st == GSQ_OK) st = gsq_model_quant_observe_end(m, method, percentile, err);
    if (st != GSQ_OK) gsq_model_quant_disable(m); /* no half-calibrated quantizers */
    return st;
}
