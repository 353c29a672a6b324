/* The whole method from C, with the library alone: a dense ViT trained for a moment on the
 * built-in synthetic shapes; stage 1 (gsq_prune_stage: 2:4 masks, fine-tuning under them with
 * distillation from the dense model); stage 2 (gsq_qat_stage: INT8 quantizers calibrated, then
 * quantization-aware training with distillation from the sparse model); the compressed file; and
 * the engine built from that file, on the integer kernels. Each stage prints its top-1; the run fails if
 * the engine's disagrees with the fake-quantized model's by more than 2 points.
 *
 *   ./build/compress_and_run [OUT.gsq.safetensors]      (default: compress_and_run.gsq.safetensors)
 *
 * Small on purpose (a 2-block ViT on 32×32 images, ~20 s on two cores); a real model is
 * gsq_vit_load of timm weights and more epochs (the gpusq program's prune and quantize). */
#include <stdio.h>

#include "gpusq.h"

/* The engine as an evaluation's forward pass. */
static gsq_status engine_forward(void *engine, const float *images, int n, const float **logits, gsq_error *err)
{
    return gsq_engine_forward(engine, images, n, logits, err);
}

/* Trains m (which the trainer owns meanwhile) for `epochs` on train. Returns the model in *m
 * again, or NULL on failure. */
static gsq_status train(gsq_model **m, gsq_dataset *train, int epochs, float lr, gsq_error *err)
{
    gsq_train_config tc;
    gsq_train_defaults(&tc, gsq_model_input_size(*m));
    tc.transform.crop_pct = 1.0f; /* synthetic images are drawn at the model's size */
    tc.batch_size = 32;
    tc.epochs = epochs;
    tc.augment = 0;
    tc.optim.lr = lr;
    gsq_trainer t;
    gsq_train_result r;
    gsq_status st = gsq_trainer_init(&t, *m, &tc, train->size, err);
    *m = NULL; /* the trainer's now, freed with it on failure */
    if (st == GSQ_OK) st = gsq_trainer_run(&t, train, &tc, &r, err);
    if (st == GSQ_OK) {
        *m = t.model;
        t.model = NULL;
    }
    gsq_trainer_free(&t);
    return st;
}

/* Prints m's top-1 on val; *top1 gets it. */
static gsq_status evaluate(gsq_model *m, gsq_dataset *val, const char *what, double *top1, gsq_error *err)
{
    gsq_transform tf;
    gsq_transform_defaults(&tf, gsq_model_input_size(m));
    tf.crop_pct = 1.0f;
    gsq_eval_result r;
    gsq_status st = gsq_evaluate(m, val, &tf, 64, 1, NULL, &r, err);
    if (st == GSQ_OK) printf("%-34s top-1 %5.1f%%\n", what, 100 * r.top1);
    *top1 = r.top1;
    return st;
}

/* A fine-tuning configuration for a stage: its defaults (defaults(), e.g. gsq_prune_defaults) on top
 * of the trainer's, for synthetic images at the model's size. */
static gsq_train_config stage_training(int img_size)
{
    gsq_train_config tc;
    gsq_train_defaults(&tc, img_size);
    tc.transform.crop_pct = 1.0f;
    tc.batch_size = 32;
    tc.augment = 0;
    return tc;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "compress_and_run.gsq.safetensors";
    gsq_vit_config cfg = {.img_size = 32, .patch_size = 4, .in_chans = 3, .num_classes = GSQ_SYNTHETIC_CLASSES,
                          .embed_dim = 64, .depth = 2, .num_heads = 2, .mlp_hidden = 128, .qkv_bias = 1,
                          .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f};
    gsq_error err = {0};
    gsq_dataset *tr = NULL, *val = NULL;
    gsq_model *dense = NULL;
    gsq_prune_result pruned = {0};
    gsq_qat_result quantized = {0};
    gsq_st_file *f = NULL;
    gsq_engine *e = NULL;
    double top1 = 0;

    /* 1. a dense model, trained for a moment so that it classifies something */
    gsq_status st = gsq_dataset_synthetic(&tr, 8192, cfg.img_size, 1, 0, &err);
    if (st == GSQ_OK) st = gsq_dataset_synthetic(&val, 512, cfg.img_size, 1, 1, &err);
    if (st == GSQ_OK) st = gsq_vit_create(&dense, &cfg, &err);
    if (st == GSQ_OK) gsq_model_init(dense, 0);
    if (st == GSQ_OK) st = train(&dense, tr, 6, 2e-3f, &err);
    if (st == GSQ_OK) st = evaluate(dense, val, "dense", &top1, &err);

    /* 2. stage 1: 2:4 masks by magnitude on every compressed linear, then fine-tuning under them with
     * distillation from the dense model */
    gsq_prune_config pc;
    gsq_train_config tc1 = stage_training(cfg.img_size);
    gsq_prune_defaults(&pc, &tc1);
    tc1.epochs = 1;
    if (st == GSQ_OK) st = gsq_prune_stage(&pc, dense, tr, val, &tc1, &pruned, &err);
    if (st == GSQ_OK) {
        printf("%-34s top-1 %5.1f%%\n", "2:4, one-shot", 100 * pruned.one_shot.top1);
        printf("%-34s top-1 %5.1f%%\n", "2:4, fine-tuned", 100 * pruned.tuned.top1);
    }

    /* 3. stage 2: INT8 quantizers, calibrated, then quantization-aware training with distillation
     * from the sparse model, its feature terms weighted by stage 1's losses */
    gsq_qat_config qc;
    gsq_train_config tc2 = stage_training(cfg.img_size);
    gsq_qat_defaults(&qc, GSQ_QMODE_INT8, &tc2);
    qc.calib_batches = 4;
    gsq_model *sparse = pruned.trainer.model;
    if (st == GSQ_OK)
        st = gsq_qat_stage(&qc, sparse, pc.pattern, pruned.feature_loss, tr, val, &tc2, &quantized, &err);
    if (st == GSQ_OK) {
        printf("%-34s top-1 %5.1f%%\n", "2:4 INT8, calibrated", 100 * quantized.calibrated.top1);
        printf("%-34s top-1 %5.1f%%\n", "2:4 INT8 (fake-quantized)", 100 * quantized.qat.top1);
    }

    /* 4. the compressed file, then the engine built straight from its codes */
    gsq_compressed_info info;
    gsq_transform tf;
    gsq_transform_defaults(&tf, cfg.img_size);
    tf.crop_pct = 1.0f;
    if (st == GSQ_OK) st = gsq_compressed_save(quantized.trainer.model, pc.pattern, out, &info, &err);
    if (st == GSQ_OK) st = gsq_st_open(&f, out, &err);
    gsq_engine_options opts;
    gsq_engine_options_init(&opts);
    opts.max_batch = 64;
    if (st == GSQ_OK) st = gsq_engine_load(&e, f, &opts, &err);
    gsq_eval_result r;
    gsq_output_shape shape = {.task = GSQ_TASK_CLASSIFY, .classes = cfg.num_classes, .side = cfg.img_size};
    if (st == GSQ_OK) st = gsq_evaluate_with(engine_forward, e, &shape, val, &tf, 64, 1, NULL, &r, &err);
    if (st == GSQ_OK) {
        printf("%-34s top-1 %5.1f%%\n", "2:4 INT8 engine, from the file", 100 * r.top1);
        printf("%s: %zu bytes of tensors; %d linears stored sparse, %d dense; engine kernels: %s\n", out,
               info.param_bytes, info.sparse_linears, info.dense_linears, gsq_engine_isa());
        /* the engine computes the fake-quantized model with integers: they agree up to rounding */
        if (r.top1 < quantized.qat.top1 - 0.02 || r.top1 > quantized.qat.top1 + 0.02)
            st = gsq_fail(&err, GSQ_ERR_NUMERIC, "the engine's top-1 %.1f%% is far from the model's %.1f%%",
                          100 * r.top1, 100 * quantized.qat.top1);
    }

    gsq_engine_free(e);
    gsq_st_close(f);
    gsq_qat_result_free(&quantized);
    gsq_prune_result_free(&pruned);
    gsq_model_free(dense);
    gsq_dataset_free(tr);
    gsq_dataset_free(val);
    if (st != GSQ_OK) {
        fprintf(stderr, "compress_and_run: %s\n", err.msg);
        return 1;
    }
    return 0;
}
