/* Mixed-strategy knowledge distillation (GPUSQ-ViT): a student learns from a teacher that ran
 * forward on the same batch, through hard labels, softened logits and block features:
 *
 *   L = α·CE(z_s, y) + β·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + γ·Σ_l w_l·MSE_l
 *
 * z are the output logits (B, K); KL and CE are means over the batch. MSE_l compares block l's
 * output tokens (B, T, D) of student and teacher, averaged over the samples on which the two
 * predict the same class (the "agreeing" samples S) and over their T·D values; it is 0 when no
 * sample agrees. Features are taken from blocks first_block .. depth-1 (by default the last
 * third). Without labels (unsupervised), y is the teacher's argmax.
 *
 * Distilled DeiT students (a distillation token and head_dist): CE is the mean of the class
 * head's CE against y and the distillation head's CE against the teacher's argmax (DeiT's hard
 * distillation); KL applies to the output logits, the mean of the two heads.
 *
 * Segmenters (gpusq/task.h): CE is the per-pixel loss against the label maps (or the teacher's
 * predicted maps), KL is per pixel of the two upsampled logit maps (mean over the pixels), and a
 * block's tokens are compared where teacher and student predict the same class at the output grid
 * cell they lie in (class tokens are not compared); "agree" counts those grid cells.
 *
 * Detectors (gpusq/detect.h): CE is DETR's loss against the box targets (or the teacher's
 * detections scored 0.5 or more), KL is T²·KL of the class distributions plus the detection
 * loss's L1 weight (5) times the L1 distance of the boxes, averaged over the queries the teacher
 * matches to the same targets in every decoder layer (its student twin, query for query), and
 * every image's block tokens are compared ("agree" counts the images). */
#ifndef GPUSQ_DISTILL_H
#define GPUSQ_DISTILL_H

#include "gpusq/data.h"
#include "gpusq/status.h"
#include "gpusq/model.h"

typedef struct {
    float alpha;            /* CE weight (1) */
    float beta;             /* KL weight (10) */
    float gamma;            /* feature weight (5) */
    float temperature;      /* T (1) */
    float label_smoothing;  /* of the CE term (0) */
    int first_block;        /* features of blocks first_block..depth-1 (depth - depth/3) */
    const float *block_weights; /* w_l for every block (depth entries), or NULL for all 1 */
} gsq_distill_config;

void gsq_distill_defaults(gsq_distill_config *cfg, int depth);

/* One batch's loss and its parts (the parts unweighted: ce, kl (with T²), mse[l]). */
typedef struct {
    float total;
    float ce, kl, feature;  /* feature = Σ_l w_l·MSE_l */
    int agree;              /* samples (a segmenter's output positions) where teacher and student
                             * predict the same class */
    int positions;          /* of them in all */
} gsq_distill_terms;

typedef struct gsq_distiller gsq_distiller;

/* Checks that student and teacher are compatible (same classes and input; for the distilled
 * blocks, the same block outputs: the student's block l and the teacher's have the same tokens and
 * width) and the configuration valid. */
gsq_status gsq_distiller_create(gsq_distiller **out, const gsq_model *student, const gsq_model *teacher,
                                const gsq_distill_config *cfg, gsq_error *err);
void gsq_distiller_free(gsq_distiller *d);

/* The loss of the student's and the teacher's last forward passes (same batch) against truth (the
 * task's part of it: gsq_truth in gpusq/model.h), or truth NULL for the teacher's predictions.
 * Fills *terms and, when mse is not NULL, mse[l] for every block (0 for blocks not distilled).
 * Does not touch the gradients. */
gsq_status gsq_distill_loss(gsq_distiller *d, gsq_model *student, const gsq_model *teacher, const gsq_truth *truth,
                            gsq_distill_terms *terms, float *mse, gsq_error *err);
/* Backward of the last gsq_distill_loss into the student's gradients (accumulating). */
gsq_status gsq_distill_backward(gsq_distiller *d, gsq_model *student, gsq_error *err);

/* The feature loss of every block over a dataset (eval transform t), computed as in training
 * (blocks before cfg->first_block get 0) but with the teacher's argmax as labels, and averaged
 * over all agreeing samples: mse (depth entries). *agreement gets the fraction of samples (a
 * segmenter's output grid cells) on which student and teacher predict the same class. */
gsq_status gsq_distill_evaluate(gsq_model *student, gsq_model *teacher, const gsq_distill_config *cfg,
                                gsq_dataset *ds, const gsq_transform *t, int batch_size,
                                int workers, float *mse, double *agreement, gsq_error *err);

#endif
