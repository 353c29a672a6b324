/* AdamW (PyTorch's update with decoupled weight decay), the warm-up + cosine schedule and
 * gradient clipping. */
#include "gpusq/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gsq_optim_defaults(gsq_optim_config *cfg)
{
    *cfg = (gsq_optim_config){
        .lr = 1e-3f, .min_lr = 1e-5f, .warmup_lr = 1e-6f, .weight_decay = 0.05f,
        .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .warmup_steps = 0, .total_steps = 1,
        .clip_grad = 0.0f,
    };
}

float gsq_lr_at(const gsq_optim_config *c, long step)
{
    if (step < c->warmup_steps)
        return c->warmup_lr + (c->lr - c->warmup_lr) * (float)(step + 1) / (float)c->warmup_steps;
    long span = c->total_steps - c->warmup_steps;
    if (span <= 0 || step >= c->total_steps) return c->min_lr;
    double progress = (double)(step - c->warmup_steps) / (double)span;
    return (float)(c->min_lr + 0.5 * (c->lr - c->min_lr) * (1.0 + cos(3.14159265358979323846 * progress)));
}

gsq_status gsq_adamw_init(gsq_adamw *opt, const gsq_param_block *b, int num_blocks, const gsq_optim_config *cfg,
                          gsq_error *err)
{
    memset(opt, 0, sizeof *opt);
    if (!(cfg->lr >= 0 && cfg->min_lr >= 0 && cfg->weight_decay >= 0 && cfg->beta1 >= 0 &&
          cfg->beta1 < 1 && cfg->beta2 >= 0 && cfg->beta2 < 1 && cfg->eps > 0 && cfg->clip_grad >= 0 &&
          cfg->warmup_steps >= 0 && cfg->total_steps >= 1))
        return gsq_fail(err, GSQ_ERR_ARG,
                        "optimizer: invalid settings (lr %g, min_lr %g, wd %g, betas %g/%g, eps %g, clip %g, "
                        "warm-up %ld, steps %ld)",
                        (double)cfg->lr, (double)cfg->min_lr, (double)cfg->weight_decay, (double)cfg->beta1,
                        (double)cfg->beta2, (double)cfg->eps, (double)cfg->clip_grad, cfg->warmup_steps,
                        cfg->total_steps);
    if (num_blocks < 1 || num_blocks > GSQ_MAX_BLOCKS)
        return gsq_fail(err, GSQ_ERR_ARG, "optimizer: %d parameter blocks (1 to %d)", num_blocks, GSQ_MAX_BLOCKS);
    opt->cfg = *cfg;
    opt->num_blocks = num_blocks;
    for (int k = 0; k < num_blocks; k++) {
        size_t n = opt->n[k] = b[k].n;
        opt->m[k] = calloc(n ? n : 1, sizeof(float));
        opt->v[k] = calloc(n ? n : 1, sizeof(float));
        opt->decay[k] = malloc(n ? n : 1);
        if (!opt->m[k] || !opt->v[k] || !opt->decay[k]) {
            gsq_adamw_free(opt);
            return gsq_fail(err, GSQ_ERR_NOMEM, "optimizer: out of memory for %zu values", n);
        }
        for (int i = 0; i < b[k].num_tensors; i++) {
            const gsq_param *p = &b[k].tensors[i];
            memset(opt->decay[k] + p->offset, p->no_decay ? 0 : 1, p->numel);
        }
    }
    return GSQ_OK;
}

void gsq_adamw_free(gsq_adamw *opt)
{
    for (int k = 0; k < GSQ_MAX_BLOCKS; k++) {
        free(opt->m[k]);
        free(opt->v[k]);
        free(opt->decay[k]);
    }
    memset(opt, 0, sizeof *opt);
}

/* Σ g² in a fixed order whatever the thread count (an OpenMP reduction combines the threads'
 * sums in the order they finish): fixed chunks summed in parallel, then their sums in order. The
 * clipping factor, so the weights, depend on these bits, and every rank of a data-parallel run
 * must compute the same. */
#define SQ_CHUNKS 64
static double sum_squares(const float *grads, size_t n)
{
    double part[SQ_CHUNKS], s = 0.0;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < SQ_CHUNKS; c++) {
        double p = 0.0;
        for (size_t i = n * (size_t)c / SQ_CHUNKS; i < n * (size_t)(c + 1) / SQ_CHUNKS; i++) p += (double)grads[i] * grads[i];
        part[c] = p;
    }
    for (int c = 0; c < SQ_CHUNKS; c++) s += part[c];
    return s;
}

double gsq_adamw_step(gsq_adamw *opt, const gsq_param_block *b, int num_blocks, float *lr_used)
{
    const gsq_optim_config *c = &opt->cfg;
    double sq = 0;
    for (int k = 0; k < num_blocks; k++) sq += sum_squares(b[k].grads, b[k].n);
    double norm = sqrt(sq);
    float lr = gsq_lr_at(c, opt->step);
    if (lr_used) *lr_used = lr;
    if (!isfinite(norm)) return norm; /* no step: the caller stops the run */
    float gscale = 1.0f;
    if (c->clip_grad > 0 && norm > c->clip_grad) gscale = (float)(c->clip_grad / (norm + 1e-6));
    opt->step++;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    float bc1 = (float)(1.0 - pow(b1, (double)opt->step)), bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)opt->step));
    for (int k = 0; k < num_blocks && k < opt->num_blocks; k++) {
        float lr_k = lr * b[k].lr_scale, wd = lr_k * c->weight_decay, step_size = lr_k / bc1;
        float *values = b[k].values, *m = opt->m[k], *v = opt->v[k];
        const float *grads = b[k].grads;
        const uint8_t *decay = opt->decay[k];
        if (b[k].log_domain) {
            for (size_t i = 0; i < b[k].n; i++) {
                float g = grads[i] * gscale;
                m[i] = b1 * m[i] + (1.0f - b1) * g;
                v[i] = b2 * v[i] + (1.0f - b2) * g * g;
                values[i] *= expf(-step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
            }
            continue;
        }
        #pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < b[k].n; i++) {
            float g = grads[i] * gscale;
            float p = decay[i] ? values[i] * (1.0f - wd) : values[i];
            m[i] = b1 * m[i] + (1.0f - b1) * g;
            v[i] = b2 * v[i] + (1.0f - b2) * g * g;
            values[i] = p - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
        }
    }
    return norm;
}
