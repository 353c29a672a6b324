/* The GPUSQ-ViT method as library calls: stage 2, quantization-aware training of a stage-1 sparse
 * model with distillation from it (gsq_qat_stage), with its defaults and the hand-off from stage 1
 * (the pattern and the per-block feature losses, in memory or read from a stage-1 file). The
 * gpusq program's quantize and compress commands call these; they parse, call and print. A stage
 * takes an option struct and a training configuration (whose progress callback and stop flag the
 * caller sets), and fills a result struct: accuracies, the trained model (in the trainer, for the
 * caller to save and to checkpoint), nothing written to files. */
#ifndef GPUSQ_STAGES_H
#define GPUSQ_STAGES_H

#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "gpusq/train.h"
#include "gpusq/vit_quant.h"

typedef struct {
    gsq_quant_mode mode;
    gsq_calib_method calib;        /* activation calibration */
    float percentile;              /* for GSQ_CALIB_PERCENTILE */
    gsq_calib_method weight_calib; /* per-row weight scales: max or mse */
    int calib_batches;             /* batches observed for calibration */
    int attention;                 /* 1: quantize the attention matmuls' inputs too */
    int lsq;                       /* 1: learn the linears' scales (LSQ) */
    float lsq_lr;                  /* their learning rate, a multiple of the training one */
    int uniform_weights;           /* 1: feature weights w_l = 1 instead of stage 1's */
    const char *resume;            /* a checkpoint of this stage to continue (NULL: a new run) */
} gsq_qat_config;

/* The defaults for a mode (docs/QUANTIZATION.md): percentile 99.99 calibration (mse for 4-bit
 * activations, which have no room for outliers), max weight scales, 16 calibration batches, no
 * attention quantization, LSQ at 10× the learning rate for INT4 only; and, when train is not NULL,
 * the fine-tuning schedule gsq_train_defaults does not give: 1 epoch at lr 1e-4 (2 epochs at 5e-4
 * for 4-bit weights), warm-up 0.1 epoch, no label smoothing, gradients clipped at norm 1. */
void gsq_qat_defaults(gsq_qat_config *q, gsq_quant_mode mode, gsq_train_config *train);

/* What stage 1 hands to stage 2: the sparsity pattern and, per block, the feature-distillation
 * loss it ended with (negative for a block it did not distil). Read from a stage-1 file's metadata
 * (sparsity.pattern, distill.feature_loss.L): losses holds depth values; GSQ_ERR_MISSING, saying
 * to run gpusq prune first, when the file is not a stage-1 output. */
gsq_status gsq_stage1_read(const gsq_st_file *f, int depth, gsq_sparse_pattern *pattern, float *losses,
                           gsq_error *err);

typedef struct {
    gsq_sparse_pattern pattern;
    int first_block;               /* the first distilled block */
    float *block_weights;          /* (depth) w_l = L_l / mean(L) over the distilled blocks, or 1 */
    gsq_eval_result sparse_float;  /* the teacher */
    gsq_eval_result calibrated;    /* after calibration, before training (top1 NaN when resumed) */
    gsq_eval_result qat;           /* after training (when it finished) */
    gsq_train_result run;
    gsq_trainer trainer;           /* the run; its model is the quantized student */
} gsq_qat_result;

/* Stage 2 on teacher, the stage-1 sparse float model (borrowed; also the starting point): the
 * masks are its zeros; quantizers (q) attached to a copy and calibrated on train, then trained
 * under the masks with distillation from the teacher, the feature terms weighted by w_l from
 * stage 1's losses (q->resume: the run continues from that checkpoint, its quantizers with it,
 * which must match q). tc's checkpoint path, progress callback, stop flag and the distillation
 * loss's weights are the caller's; tc->teacher, val, distill.first_block and block_weights are set
 * here (val may be NULL: accuracy is then measured on the training set). When r->run.finished the student is evaluated (r->qat);
 * the caller writes it (gsq_compressed_save with r->pattern) and frees r. */
gsq_status gsq_qat_stage(const gsq_qat_config *q, gsq_vit *teacher, gsq_sparse_pattern pattern,
                         const float *stage1_losses, gsq_dataset *train, gsq_dataset *val, gsq_train_config *tc,
                         gsq_qat_result *r, gsq_error *err);
void gsq_qat_result_free(gsq_qat_result *r);

#endif
