/* Stage 1 of GPUSQ-ViT as a library call (include/gpusq/stages.h): 2:4 (or paired 4:8) masks on
 * every compressed linear of a copy of the dense model — by magnitude, optionally after a channel
 * permutation — then fine-tuning under the masks with mixed-strategy distillation from the dense
 * model; and the stage-1 file that hands the result to stage 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/distill.h"
#include "gpusq/stages.h"
#include "models/model_state.h"

void gsq_prune_defaults(gsq_prune_config *p, gsq_train_config *train)
{
    *p = (gsq_prune_config){.pattern = GSQ_SPARSE_2_4, .effort = GSQ_SPARSE_PERMUTE_EFFORT, .feature_blocks = -1};
    if (!train) return;
    train->epochs = 2;
    train->optim.lr = 5e-4f;
    train->warmup_epochs = 0.1f;
    train->label_smoothing = 0.0f;
    train->optim.clip_grad = 1.0f;
}

/* The masks of a new run: by magnitude on the dense weights, or after a permutation search (then
 * plain keeps the masks without it, for the report); student pruned by them. */
static gsq_status choose_masks(const gsq_prune_config *p, gsq_model *student, gsq_prune_result *r, gsq_error *err)
{
    gsq_status st = gsq_sparse_plan_magnitude(&r->plain, student, p->pattern, p->include_head, err);
    if (st == GSQ_OK && p->permute) {
        int permuted = 0;
        st = gsq_sparse_permute(student, p->pattern, p->effort, NULL, 0, &permuted, err);
        if (st == GSQ_OK) st = gsq_sparse_plan_magnitude(&r->plan, student, p->pattern, p->include_head, err);
    } else if (st == GSQ_OK) {
        r->plan = r->plain;
        r->plain = (gsq_sparse_plan){0};
    }
    if (st == GSQ_OK) gsq_sparse_apply(&r->plan, student->params);
    return st;
}

/* After a finished run: the student's accuracy, feature losses and agreement, and its pattern. */
static gsq_status measure(const gsq_prune_config *p, gsq_model *teacher, gsq_dataset *train, gsq_dataset *val,
                          const gsq_train_config *tc, gsq_prune_result *r, gsq_error *err)
{
    gsq_model *m = r->trainer.model;
    r->tuned = r->run.eval;
    gsq_status st = gsq_distill_evaluate(m, teacher, &tc->distill, val ? val : train, &tc->transform, tc->batch_size,
                                         tc->workers, r->feature_loss, &r->agreement, err);
    for (int l = 0; l < r->first_block; l++) r->feature_loss[l] = -1.0f;
    for (int i = 0; st == GSQ_OK && i < r->plan.num_layers; i++) {
        const gsq_sparse_layer *l = &r->plan.layers[i];
        if (l->pruned && !gsq_sparse_check(m->params + l->offset, l->rows, l->cols, p->pattern))
            st = gsq_fail(err, GSQ_ERR_FORMAT, "prune: %s lost its %s pattern in fine-tuning (a bug)", l->name,
                          gsq_sparse_pattern_name(p->pattern));
    }
    return st;
}

gsq_status gsq_prune_stage(const gsq_prune_config *p, gsq_model *teacher, gsq_dataset *train, gsq_dataset *val,
                           gsq_train_config *tc, gsq_prune_result *r, gsq_error *err)
{
    memset(r, 0, sizeof *r);
    int depth = gsq_model_depth(teacher), batch = tc->batch_size, workers = tc->workers;
    if (p->feature_blocks > depth)
        return gsq_fail(err, GSQ_ERR_ARG, "prune: %d feature blocks asked for; the teacher has %d blocks",
                        p->feature_blocks, depth);
    if (teacher->num_classes != train->num_classes)
        return gsq_fail(err, GSQ_ERR_SHAPE, "the teacher has %d classes but %s has %d", teacher->num_classes,
                        train->name, train->num_classes);
    if (!(r->feature_loss = calloc((size_t)depth, sizeof(float))))
        return gsq_fail(err, GSQ_ERR_NOMEM, "prune: out of memory");
    r->first_block = p->feature_blocks >= 0 ? depth - p->feature_blocks : depth - depth / 3;
    tc->distill.first_block = r->first_block; /* the loss's weights (alpha, beta, ...) are the caller's */
    tc->teacher = teacher;
    tc->val = val;
    gsq_model *student = NULL;
    gsq_status st = val ? gsq_evaluate(teacher, val, &tc->transform, batch, workers, tc->comm, &r->dense, err) : GSQ_OK;
    if (st == GSQ_OK && !p->resume) {
        st = gsq_model_clone(&student, teacher, err);
        if (st == GSQ_OK) st = choose_masks(p, student, r, err);
        if (st == GSQ_OK && val) st = gsq_evaluate(student, val, &tc->transform, batch, workers, tc->comm, &r->one_shot, err);
    }
    if (st == GSQ_OK) {
        if (p->resume) st = gsq_trainer_resume(&r->trainer, p->resume, tc, train->size, err);
        else st = gsq_trainer_init(&r->trainer, student, tc, train->size, err);
        student = NULL; /* the trainer's now */
    }
    if (st == GSQ_OK && p->resume) /* the masks: the checkpoint's zeros */
        st = gsq_sparse_plan_from_weights(&r->plan, r->trainer.model, p->pattern, p->include_head, err);
    tc->frozen_zero = r->plan.mask;
    if (st == GSQ_OK) st = gsq_trainer_run(&r->trainer, train, tc, &r->run, err);
    if (st == GSQ_OK && r->run.finished) st = measure(p, teacher, train, val, tc, r, err);
    tc->frozen_zero = NULL; /* r's, which the caller frees */
    gsq_model_free(student);
    return st;
}

void gsq_prune_result_free(gsq_prune_result *r)
{
    gsq_trainer_free(&r->trainer);
    gsq_sparse_plan_free(&r->plan);
    gsq_sparse_plan_free(&r->plain);
    free(r->feature_loss);
    memset(r, 0, sizeof *r);
}

gsq_status gsq_stage1_save(const gsq_model *m, const gsq_prune_config *p, const gsq_prune_result *r, const char *path,
                           gsq_error *err)
{
    const gsq_sparse_plan *plan = &r->plan;
    gsq_st_writer *w = NULL;
    gsq_status st = gsq_model_check_finite(m, path, err);
    if (st == GSQ_OK) st = gsq_st_writer_create(&w, err);
    if (st == GSQ_OK) st = gsq_model_add_to_writer(m, w, err);
    size_t cap = 64;
    for (int i = 0; i < plan->num_layers; i++) cap += strlen(plan->layers[i].name) + 2;
    char *layers = calloc(1, cap), *dense = calloc(1, cap), num[64];
    if (st == GSQ_OK && (!layers || !dense)) st = gsq_fail(err, GSQ_ERR_NOMEM, "prune: out of memory");
    for (int i = 0; st == GSQ_OK && i < plan->num_layers; i++) {
        char *list = plan->layers[i].pruned ? layers : dense;
        if (list[0]) strcat(list, ",");
        strcat(list, plan->layers[i].name);
    }
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "gpusq.kind", "sparse", err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.pattern", gsq_sparse_pattern_name(plan->pattern), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.criterion", p->permute ? "permute" : "magnitude", err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.layers", layers, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "sparsity.dense_layers", dense, err);
    for (int l = r->first_block; st == GSQ_OK && l < gsq_model_depth(m); l++) {
        char key[64];
        snprintf(key, sizeof key, "distill.feature_loss.%d", l);
        snprintf(num, sizeof num, "%.9g", (double)r->feature_loss[l]);
        st = gsq_st_writer_set_meta(w, key, num, err);
    }
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    free(layers);
    free(dense);
    return st;
}
