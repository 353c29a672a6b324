/* Stage 2 of GPUSQ-ViT as a library call (include/gpusq/stages.h): quantizers on every compressed
 * linear of a copy of the stage-1 sparse model, calibrated, then quantization-aware fine-tuning
 * under the masks with distillation from the sparse float model, its feature terms weighted by
 * what stage 1's feature losses say about each block. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/stages.h"
#include "models/model_state.h"

void gsq_qat_defaults(gsq_qat_config *q, gsq_quant_mode mode, gsq_train_config *train)
{
    int four_w = gsq_quant_mode_weight_bits(mode) == 4;
    /* 16 levels leave no room for outliers: 4-bit activations clip where the error is least; learned
     * scales pay off for W4A4, not for INT8 (docs/QUANTIZATION.md has the measurements) */
    *q = (gsq_qat_config){.mode = mode, .calib = gsq_quant_mode_act_bits(mode) == 4 ? GSQ_CALIB_MSE
                                                                                    : GSQ_CALIB_PERCENTILE,
                          .percentile = 99.99f, .weight_calib = GSQ_CALIB_MAX, .calib_batches = 16,
                          .lsq = mode == GSQ_QMODE_INT4, .lsq_lr = 10.0f};
    if (!train) return;
    /* 4-bit weights move further from the float model: longer and faster */
    train->epochs = four_w ? 2 : 1;
    train->optim.lr = four_w ? 5e-4f : 1e-4f;
    train->warmup_epochs = 0.1f;
    train->label_smoothing = 0.0f;
    train->optim.clip_grad = 1.0f;
}

gsq_status gsq_stage1_read(const gsq_st_file *f, int depth, gsq_sparse_pattern *pattern, float *losses,
                           gsq_error *err)
{
    const char *path = gsq_st_label(f);
    for (int l = 0; l < depth; l++) {
        char key[64];
        snprintf(key, sizeof key, "distill.feature_loss.%d", l);
        const char *v = gsq_st_meta_get(f, key);
        char *end = NULL;
        losses[l] = v ? strtof(v, &end) : -1.0f;
        if (v && (end == v || *end || !(losses[l] >= 0.0f && losses[l] < 1e30f)))
            return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata %s = '%.40s' is not a loss", path, key, v);
    }
    const char *pat = gsq_st_meta_get(f, "sparsity.pattern");
    if (!pat)
        return gsq_fail(err, GSQ_ERR_MISSING, "%s: not a sparse model (no sparsity.pattern); run gpusq prune first",
                        path);
    return gsq_sparse_pattern_parse(pat, pattern, err);
}

/* w_l = L_l / mean(L) over the blocks stage 1 distilled (1 each when uniform or when they are all
 * 0); a block it did not distil gets 0 and is not distilled here either. Returns the first. */
static int block_weights(const float *losses, int depth, int uniform, float *w)
{
    double sum = 0;
    int n = 0, first = depth;
    for (int l = 0; l < depth; l++) {
        w[l] = losses && losses[l] >= 0 ? losses[l] : 0.0f;
        if (!losses || losses[l] < 0) continue;
        if (first == depth) first = l;
        sum += w[l], n++;
    }
    for (int l = first; l < depth; l++) w[l] = uniform || sum <= 0 ? 1.0f : (float)(w[l] * n / sum);
    return first;
}

/* A resumed run's quantizers must be the ones q asks for. */
static gsq_status check_resumed(const gsq_qat_config *q, const gsq_model *m, gsq_error *err)
{
    if (!gsq_model_quant_active(m))
        return gsq_fail(err, GSQ_ERR_ARG, "%s is not a checkpoint of gpusq quantize (it has no quantizers)", q->resume);
    if (gsq_model_quant_mode(m) != q->mode)
        return gsq_fail(err, GSQ_ERR_ARG, "%s was written by a --mode %s run; this run has --mode %s", q->resume,
                        gsq_quant_mode_name(gsq_model_quant_mode(m)), gsq_quant_mode_name(q->mode));
    int attention = gsq_model_quant_attention_scales(m, 0) != NULL, lsq = gsq_model_quant_lsq_size(m) > 0;
    if (attention != q->attention || lsq != q->lsq)
        return gsq_fail(err, GSQ_ERR_ARG, "%s was written by a run %s --attention and %s learned scales; this run is "
                        "%s --attention and %s them (give the same options)", q->resume, attention ? "with" : "without",
                        lsq ? "with" : "without", q->attention ? "with" : "without", q->lsq ? "with" : "without");
    return GSQ_OK;
}

gsq_status gsq_qat_stage(const gsq_qat_config *q, gsq_model *teacher, gsq_sparse_pattern pattern,
                         const float *stage1_losses, gsq_dataset *train, gsq_dataset *val, gsq_train_config *tc,
                         gsq_qat_result *r, gsq_error *err)
{
    memset(r, 0, sizeof *r);
    r->pattern = pattern;
    int depth = gsq_model_depth(teacher), batch = tc->batch_size, workers = tc->workers;
    gsq_dataset *eval_ds = val ? val : train;
    gsq_sparse_plan plan = {0};
    gsq_model *student = NULL;
    if (!(r->block_weights = calloc((size_t)depth, sizeof(float))))
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantize: out of memory");
    r->first_block = block_weights(stage1_losses, depth, q->uniform_weights, r->block_weights);
    /* the masks: the teacher's zeros (its weights are the stage-1 sparse ones) */
    gsq_status st = gsq_sparse_plan_from_weights(&plan, teacher, pattern, 1, err);
    if (st == GSQ_OK) st = gsq_evaluate(teacher, eval_ds, &tc->transform, batch, workers, tc->comm, &r->sparse_float, err);
    /* a resumed run calibrated before */
    r->calibrated.top1 = r->calibrated.top5 = r->calibrated.miou = r->calibrated.loss = NAN;
    r->calibrated.task = gsq_model_task(teacher);
    if (st == GSQ_OK && !q->resume) {
        st = gsq_model_clone(&student, teacher, err);
        if (st == GSQ_OK) st = gsq_model_quant_enable(student, q->mode, q->weight_calib, err);
        if (st == GSQ_OK && q->attention) st = gsq_model_quant_enable_attention(student, err);
        if (st == GSQ_OK && q->lsq) st = gsq_model_quant_enable_lsq(student, q->lsq_lr, err);
        if (st == GSQ_OK)
            st = gsq_model_quant_calibrate(student, train, &tc->transform, batch, q->calib_batches, workers, q->calib,
                                         q->percentile, err);
        if (st == GSQ_OK) st = gsq_evaluate(student, eval_ds, &tc->transform, batch, workers, tc->comm, &r->calibrated, err);
    }
    tc->distill.first_block = r->first_block; /* the loss's weights (alpha, beta, ...) are the caller's */
    tc->distill.block_weights = r->block_weights;
    tc->teacher = teacher;
    tc->val = val;
    tc->frozen_zero = plan.mask;
    if (st == GSQ_OK) {
        if (q->resume) st = gsq_trainer_resume(&r->trainer, q->resume, tc, train->size, err);
        else st = gsq_trainer_init(&r->trainer, student, tc, train->size, err);
        student = NULL; /* the trainer's now */
    }
    if (st == GSQ_OK && q->resume) st = check_resumed(q, r->trainer.model, err);
    if (st == GSQ_OK) st = gsq_trainer_run(&r->trainer, train, tc, &r->run, err);
    if (st == GSQ_OK && r->run.finished) {
        r->qat = r->run.eval;
        if (!val) st = gsq_evaluate(r->trainer.model, eval_ds, &tc->transform, batch, workers, tc->comm, &r->qat, err);
    }
    tc->frozen_zero = NULL; /* the plan's, freed here */
    gsq_sparse_plan_free(&plan);
    gsq_model_free(student);
    return st;
}

void gsq_qat_result_free(gsq_qat_result *r)
{
    gsq_trainer_free(&r->trainer);
    free(r->block_weights);
    memset(r, 0, sizeof *r);
}
