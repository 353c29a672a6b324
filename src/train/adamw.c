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

gsq_status gsq_adamw_init(gsq_adamw *opt, const gsq_vit *m, const gsq_optim_config *cfg,
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
    opt->cfg = *cfg;
    opt->n = m->num_params;
    opt->m = calloc(opt->n, sizeof(float));
    opt->v = calloc(opt->n, sizeof(float));
    opt->decay = malloc(opt->n);
    if (!opt->m || !opt->v || !opt->decay) {
        gsq_adamw_free(opt);
        return gsq_fail(err, GSQ_ERR_NOMEM, "optimizer: out of memory for %zu parameters", m->num_params);
    }
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        memset(opt->decay + p->offset, p->no_decay ? 0 : 1, p->numel);
    }
    return GSQ_OK;
}

void gsq_adamw_free(gsq_adamw *opt)
{
    free(opt->m);
    free(opt->v);
    free(opt->decay);
    memset(opt, 0, sizeof *opt);
}

double gsq_grad_norm(const float *grads, size_t n)
{
    double s = 0.0;
    #pragma omp parallel for reduction(+ : s) schedule(static)
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    return sqrt(s);
}

double gsq_adamw_step(gsq_adamw *opt, float *params, float *grads, float *lr_used)
{
    const gsq_optim_config *c = &opt->cfg;
    double norm = gsq_grad_norm(grads, opt->n);
    float lr = gsq_lr_at(c, opt->step);
    if (lr_used) *lr_used = lr;
    if (!isfinite(norm)) return norm; /* no step: the caller stops the run */
    float gscale = 1.0f;
    if (c->clip_grad > 0 && norm > c->clip_grad) gscale = (float)(c->clip_grad / (norm + 1e-6));
    opt->step++;
    float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = lr * c->weight_decay;
    float step_size = lr / (float)(1.0 - pow(b1, (double)opt->step));
    float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)opt->step));
    float *m = opt->m, *v = opt->v;
    const uint8_t *decay = opt->decay;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < opt->n; i++) {
        float g = grads[i] * gscale;
        float p = decay[i] ? params[i] * (1.0f - wd) : params[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] = p - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
    return norm;
}
