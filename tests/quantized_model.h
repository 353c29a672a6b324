/* Tiny quantized test models taking 16×16 RGB images with 5 classes: initialised, perturbed, pruned
 * to the pattern by magnitude, quantizers in `mode` attached (and on the attention matmuls when
 * asked) and calibrated on x, B random images that it also fills (x holds B·3·16·16 floats). The
 * ViT has patch 4, dim 24, 2 blocks, 3 heads and MLP `mlp`; the Swin patch 2, window 4 (a grid of
 * 8 in shifted windows, then 4 in one), widths 24 and 48 with 3 and 6 heads, MLPs `mlp` and
 * 2·`mlp`, 2 blocks each. */
#ifndef GSQ_TEST_QUANTIZED_MODEL_H
#define GSQ_TEST_QUANTIZED_MODEL_H

#include "gpusq/sparse.h"
#include "gpusq/swin.h"
#include "gpusq/vit_quant.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static inline gsq_model *gsq_test_quantize(gsq_model *m, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention,
                                    float *x, int B)
{
    gsq_error err = {0};
    gsq_model_init(m, 9);
    gsq_rng rng;
    gsq_rng_seed(&rng, 10, 0);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.05f * gsq_rng_normal(&rng);
    for (int i = 0; i < B * 3 * 16 * 16; i++) x[i] = gsq_rng_normal(&rng);
    gsq_sparse_plan plan;
    gsq_sparse_plan_magnitude(&plan, m, pattern, 0, &err);
    gsq_sparse_apply(&plan, m->params);
    gsq_sparse_plan_free(&plan);
    gsq_model_quant_enable(m, mode, GSQ_CALIB_MAX, &err);
    if (attention) gsq_model_quant_enable_attention(m, &err);
    gsq_model_quant_observe_begin(m, 4096, &err);
    gsq_model_forward(m, x, B, NULL, &err);
    CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_PERCENTILE, 99.9f, &err) == GSQ_OK, "%s", err.msg);
    return m;
}

static inline gsq_model *gsq_test_quantized_model(int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention,
                                         float *x, int B)
{
    gsq_vit_config c = {
        .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 5, .embed_dim = 24, .depth = 2,
        .num_heads = 3, .mlp_hidden = mlp, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    };
    gsq_model *m = NULL;
    gsq_vit_create(&m, &c, NULL);
    return gsq_test_quantize(m, pattern, mode, attention, x, B);
}

static inline gsq_model *gsq_test_quantized_swin(int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention,
                                        float *x, int B)
{
    gsq_swin_config c = {.img_size = 16, .patch_size = 2, .in_chans = 3, .num_classes = 5, .num_stages = 2,
                         .depths = {2, 2}, .dims = {24, 48}, .num_heads = {3, 6}, .window = 4,
                         .mlp_hidden = {mlp, 2 * mlp}, .qkv_bias = 1, .ln_eps = 1e-5f};
    gsq_model *m = NULL;
    gsq_swin_create(&m, &c, NULL);
    return gsq_test_quantize(m, pattern, mode, attention, x, B);
}

#endif
