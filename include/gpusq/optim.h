/* AdamW with decoupled weight decay, a linear warm-up + cosine learning-rate schedule and global
 * gradient-norm clipping, over a model's learned blocks (gsq_model_blocks: its parameters, and LSQ's
 * scales when learned). */
#ifndef GPUSQ_OPTIM_H
#define GPUSQ_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"
#include "gpusq/vit.h"

typedef struct {
    float lr;            /* peak learning rate, reached at the end of warm-up */
    float min_lr;        /* the cosine schedule's floor */
    float warmup_lr;     /* learning rate of the first warm-up step's start */
    float weight_decay;  /* decoupled, applied as p -= lr·wd·p to weights only */
    float beta1, beta2, eps;
    long warmup_steps;
    long total_steps;    /* optimizer steps in the whole run (sets the cosine period) */
    float clip_grad;     /* max global L2 norm of the gradient; 0 disables clipping */
} gsq_optim_config;

/* timm-like defaults: lr 1e-3, min_lr 1e-5, warmup_lr 1e-6, wd 0.05, betas (0.9, 0.999),
 * eps 1e-8, no clipping; the caller sets warmup_steps and total_steps. */
void gsq_optim_defaults(gsq_optim_config *cfg);

/* Learning rate of optimizer step `step` (0-based): linear from warmup_lr to lr over
 * warmup_steps, then cosine from lr down to min_lr at total_steps (min_lr after it). */
float gsq_lr_at(const gsq_optim_config *cfg, long step);

typedef struct {
    gsq_optim_config cfg;
    int num_blocks;
    size_t n[GSQ_MAX_BLOCKS];              /* values of each block */
    float *m[GSQ_MAX_BLOCKS], *v[GSQ_MAX_BLOCKS]; /* first and second moments of each block */
    uint8_t *decay[GSQ_MAX_BLOCKS];        /* per value: 1 where weight decay applies */
    long step;                             /* optimizer steps taken */
} gsq_adamw;

/* For the blocks b (their sizes and tensors; values and grads are the step's): weight decay applies
 * where a tensor allows it (gsq_param.no_decay: for a ViT, timm's param_groups_weight_decay, not to
 * 1-D tensors nor to the tokens and position embedding). Moments start at zero. */
gsq_status gsq_adamw_init(gsq_adamw *opt, const gsq_param_block *b, int num_blocks, const gsq_optim_config *cfg,
                          gsq_error *err);
void gsq_adamw_free(gsq_adamw *opt);

/* One step of every block of b (as at init) from its grads: clip to cfg.clip_grad if set (the norm
 * is over all blocks' gradients), then the AdamW update with the scheduled learning rate times the
 * block's lr_scale (PyTorch's formula, bias-corrected); a log-domain block's values are multiplied
 * by exp(−update). Returns the gradient norm before clipping; *lr_used gets the learning rate (may
 * be NULL). A norm that is NaN or infinite is returned without a step: values, moments and the
 * step count stay as they were. */
double gsq_adamw_step(gsq_adamw *opt, const gsq_param_block *b, int num_blocks, float *lr_used);

#endif
