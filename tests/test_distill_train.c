/* Training with a teacher (the prune stage's fine-tuning): parameters frozen at zero stay exactly
 * 0.0 with zero optimizer moments through every step while the others learn; unsupervised mode
 * reads no label (scrambled labels give bitwise the same weights, where supervised training
 * changes); and the settings it refuses. */
#include <string.h>

#include "gpusq/train.h"
#include "test_util.h"
#include "toy_dataset.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24, .depth = 3,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

static gsq_model *model(uint64_t seed)
{
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, seed);
    return m;
}

/* Every other weight of every block's GEMMs frozen at zero. */
static uint8_t *half_mask(gsq_model *m)
{
    uint8_t *keep = malloc(m->num_params);
    memset(keep, 1, m->num_params);
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        if (strncmp(p->name, "blocks.", 7) != 0 || p->ndim != 2) continue;
        for (size_t j = 0; j < p->numel; j += 2) {
            keep[p->offset + j] = 0;
            m->params[p->offset + j] = 0.0f;
        }
    }
    return keep;
}

static gsq_train_config config(gsq_model *teacher, int unsupervised, const uint8_t *frozen)
{
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = 16;
    c.epochs = 3;
    c.warmup_epochs = 0.5f;
    c.seed = 4;
    c.augment = 0;
    c.optim.lr = 3e-3f;
    c.teacher = teacher;
    gsq_distill_defaults(&c.distill, tiny.depth);
    c.distill.temperature = 2.0f;
    c.unsupervised = unsupervised;
    c.frozen_zero = frozen;
    return c;
}

/* Trains a copy of `start` on the toy data; returns the trainer (caller frees). */
static gsq_trainer run(const gsq_model *start, const gsq_train_config *c, int scramble)
{
    gsq_dataset *ds = toy_dataset(64, 0);
    ((toy_impl *)ds->impl)->scramble = scramble;
    gsq_model *m = NULL;
    gsq_model_clone(&m, start, NULL);
    gsq_trainer t;
    gsq_error err = {0};
    CHECK(gsq_trainer_init(&t, m, c, ds->size, &err) == GSQ_OK, "%s", err.msg);
    gsq_train_result r;
    CHECK(gsq_trainer_run(&t, ds, c, &r, &err) == GSQ_OK && r.finished, "%s", err.msg);
    gsq_dataset_free(ds);
    return t;
}

static void test_frozen_zeros(void)
{
    gsq_model *teacher = model(1), *start = model(2);
    uint8_t *keep = half_mask(start);
    gsq_train_config c = config(teacher, 0, keep);
    gsq_trainer t = run(start, &c, 0);
    size_t frozen = 0, zero = 0, moments_zero = 0, moved = 0, learnable = 0;
    for (size_t i = 0; i < start->num_params; i++) {
        if (!keep[i]) {
            frozen++;
            zero += t.model->params[i] == 0.0f;
            moments_zero += t.opt.m[0][i] == 0.0f && t.opt.v[0][i] == 0.0f;
        } else {
            learnable++;
            moved += t.model->params[i] != start->params[i];
        }
    }
    CHECK(t.opt.step == 12, "3 epochs of 4 steps, got %ld", t.opt.step);
    CHECK(frozen > 1000 && zero == frozen, "%zu of %zu frozen parameters are still exactly 0", zero, frozen);
    CHECK(moments_zero == frozen, "%zu of %zu frozen parameters have zero moments", moments_zero, frozen);
    CHECK(moved > learnable * 9 / 10, "only %zu of %zu learnable parameters changed", moved, learnable);
    gsq_trainer_free(&t);
    free(keep);
    gsq_model_free(start);
    gsq_model_free(teacher);
}

static void test_unsupervised(void)
{
    gsq_model *teacher = model(1), *start = model(2);
    gsq_train_config u = config(teacher, 1, NULL), s = config(teacher, 0, NULL);
    gsq_trainer a = run(start, &u, 0), b = run(start, &u, 1), c = run(start, &s, 0), d = run(start, &s, 1);
    size_t bytes = start->num_params * sizeof(float);
    CHECK(memcmp(a.model->params, b.model->params, bytes) == 0, "unsupervised training read the labels");
    CHECK(memcmp(c.model->params, d.model->params, bytes) != 0, "supervised training ignored the labels");
    CHECK(memcmp(a.model->params, c.model->params, bytes) != 0, "pseudo-labels equal to the labels: a weak test");
    gsq_trainer_free(&a);
    gsq_trainer_free(&b);
    gsq_trainer_free(&c);
    gsq_trainer_free(&d);

    gsq_error err = {0};
    gsq_trainer t;
    gsq_train_config bad = config(NULL, 1, NULL);
    CHECK(gsq_trainer_init(&t, model(3), &bad, 64, &err) == GSQ_ERR_ARG && strstr(err.msg, "teacher"),
          "unsupervised without a teacher: %s", err.msg);
    gsq_vit_config wide = tiny;
    wide.embed_dim = 48;
    gsq_model *w = NULL;
    gsq_vit_create(&w, &wide, NULL);
    bad = config(w, 0, NULL);
    CHECK(gsq_trainer_init(&t, model(3), &bad, 64, &err) == GSQ_ERR_SHAPE, "features of another width: %s", err.msg);
    gsq_model_free(w);
    gsq_model_free(start);
    gsq_model_free(teacher);
}

int main(void)
{
    test_frozen_zeros();
    test_unsupervised();
    return test_finish("test_distill_train");
}
