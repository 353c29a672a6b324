/* The GPUSQ-ViT method as library calls: stage 1, 2:4 (or 4:8) pruning of a dense model and
 * fine-tuning under the masks with distillation from it (gsq_prune_stage); stage 2,
 * quantization-aware training of the sparse model with distillation from it (gsq_qat_stage),
 * with their defaults and the hand-off between them (the pattern and the per-block feature
 * losses, in memory, or in a stage-1 file's metadata: gsq_stage1_save, gsq_stage1_read). The
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
    gsq_sparse_pattern pattern;
    int permute;                   /* 1: search a channel permutation before choosing the masks */
    int effort;                    /* the permutation search's passes */
    int include_head;              /* 1: prune the classifier heads too */
    int feature_blocks;            /* distil the outputs of the last N blocks (-1: a third of them) */
    const char *resume;            /* a checkpoint of this stage to continue (NULL: a new run) */
} gsq_prune_config;

/* The defaults (docs/SPARSITY.md): 2:4 by magnitude, permutation effort
 * GSQ_SPARSE_PERMUTE_EFFORT when asked, heads dense, a third of the blocks distilled; and, when
 * train is not NULL, the fine-tuning schedule: 2 epochs at lr 5e-4, warm-up 0.1 epoch, no label
 * smoothing, gradients clipped at norm 1. */
void gsq_prune_defaults(gsq_prune_config *p, gsq_train_config *train);

typedef struct {
    gsq_sparse_plan plan;          /* the masks trained under */
    gsq_sparse_plan plain;         /* with permute, the masks by magnitude without it (for their
                                    * kept magnitude); empty otherwise and when resumed */
    int first_block;               /* the first distilled block */
    float *feature_loss;           /* (depth) the fine-tuned student's feature MSE per block, on val
                                    * (or train), from first_block on; -1 before */
    double agreement;              /* student and teacher predicting alike, on the same images */
    gsq_eval_result dense, one_shot, tuned; /* count 0: not measured (no val; resumed) */
    gsq_train_result run;
    gsq_trainer trainer;           /* the run; its model is the sparse student */
} gsq_prune_result;

/* Stage 1 on teacher, the dense model (borrowed; also the starting point): the masks chosen on a
 * copy (p), applied, then training under them with distillation from the teacher (p->resume:
 * from that checkpoint, the masks its zeros). tc as for gsq_qat_stage (its distill.first_block
 * is set here). When r->run.finished the student is measured (tuned, feature losses, agreement)
 * and its pattern checked; the caller writes it (gsq_stage1_save) and frees r. */
gsq_status gsq_prune_stage(const gsq_prune_config *p, gsq_model *teacher, gsq_dataset *train, gsq_dataset *val,
                           gsq_train_config *tc, gsq_prune_result *r, gsq_error *err);
void gsq_prune_result_free(gsq_prune_result *r);
/* A stage-1 result as a file: the sparse model's weights (timm names) with its provenance in
 * metadata — gpusq.kind sparse, sparsity.pattern, .criterion, .layers and .dense_layers (the
 * linears' weight names), distill.feature_loss.L for the distilled blocks — written atomically. */
gsq_status gsq_stage1_save(const gsq_model *m, const gsq_prune_config *p, const gsq_prune_result *r, const char *path,
                           gsq_error *err);

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
gsq_status gsq_qat_stage(const gsq_qat_config *q, gsq_model *teacher, gsq_sparse_pattern pattern,
                         const float *stage1_losses, gsq_dataset *train, gsq_dataset *val, gsq_train_config *tc,
                         gsq_qat_result *r, gsq_error *err);
void gsq_qat_result_free(gsq_qat_result *r);

#endif
