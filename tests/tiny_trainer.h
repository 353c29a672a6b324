/* The tiny ViT the training tests train (16×16 images of 4 classes, 2 blocks of width 24), and a
 * trainer started on it from a given initialisation seed. */
#ifndef GSQ_TESTS_TINY_TRAINER_H
#define GSQ_TESTS_TINY_TRAINER_H

#include "gpusq/train.h"
#include "test_util.h"

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24, .depth = 2,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

static gsq_trainer tiny_trainer(const gsq_train_config *c, size_t size, uint64_t init_seed)
{
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, init_seed);
    gsq_trainer t;
    gsq_error err = {0};
    CHECK(gsq_trainer_init(&t, m, c, size, &err) == GSQ_OK, "%s", err.msg);
    return t;
}

#endif
