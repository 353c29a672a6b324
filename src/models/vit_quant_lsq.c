/* LSQ, learned step size quantization (Esser et al. 2020), for a ViT's quantizers: every GEMM's
 * activation scale and per-row weight scales become parameters. Backward adds their gradients
 * (gsq_fake_quant_scale_grad scaled by g = 1/sqrt(N·qmax)); after each optimizer step an Adam
 * step on log s moves them, so they stay positive and one learning rate suits every magnitude
 * (include/gpusq/vit_quant.h, docs/QUANTIZATION.md). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vit_quant_state.h"

static const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;

void gsq_lsq_free(gsq_lsq *l)
{
    if (!l) return;
    free(l->grad);
    free(l->m);
    free(l->v);
    free(l->dx);
    free(l);
}

gsq_status gsq_vit_quant_enable_lsq(gsq_vit *m, float lr_scale, gsq_error *err)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q) return gsq_fail(err, GSQ_ERR_ARG, "LSQ: the model has no quantizers (gsq_vit_quant_enable)");
    if (!(lr_scale > 0.0f && lr_scale < 1e6f))
        return gsq_fail(err, GSQ_ERR_ARG, "LSQ: the learning-rate factor %g is not a positive number",
                        (double)lr_scale);
    if (q->lsq) {
        q->lsq->lr_scale = lr_scale;
        return GSQ_OK;
    }
    size_t n = 0;
    for (int i = 0; i < q->num_linears; i++) {
        q->linears[i].lsq_index = n;
        n += q->linears[i].quantized ? 1 + (size_t)q->linears[i].rows : 0;
    }
    gsq_lsq *l = calloc(1, sizeof *l);
    if (!l || !(l->grad = calloc(n, sizeof(float))) || !(l->m = calloc(n, sizeof(float))) ||
        !(l->v = calloc(n, sizeof(float)))) {
        gsq_lsq_free(l);
        return gsq_fail(err, GSQ_ERR_NOMEM, "LSQ: out of memory for %zu scales", n);
    }
    l->n = n;
    l->lr_scale = lr_scale;
    q->lsq = l;
    q->batch_cap = 0; /* dx is sized with the other buffers on the next forward */
    return GSQ_OK;
}

size_t gsq_vit_quant_lsq_size(const gsq_vit *m) { return m->quant && m->quant->lsq ? m->quant->lsq->n : 0; }
float *gsq_vit_quant_lsq_grads(gsq_vit *m) { return m->quant && m->quant->lsq ? m->quant->lsq->grad : NULL; }

gsq_status gsq_lsq_prepare(gsq_vit *m, int B, gsq_error *err)
{
    gsq_lsq *l = m->quant->lsq;
    if (!l) return GSQ_OK;
    size_t per = 0; /* the largest input: any linear may need the scratch */
    for (int i = 0; i < m->quant->num_linears; i++)
        if (m->quant->linears[i].in_per_sample > per) per = m->quant->linears[i].in_per_sample;
    free(l->dx);
    l->dx = malloc((size_t)B * per * sizeof(float));
    if (!l->dx) return gsq_fail(err, GSQ_ERR_NOMEM, "LSQ: out of memory for a batch of %d", B);
    return GSQ_OK;
}

void gsq_vit_quant_zero_grad(gsq_vit *m)
{
    if (m->quant && m->quant->lsq) memset(m->quant->lsq->grad, 0, m->quant->lsq->n * sizeof(float));
}

void gsq_lsq_act_grad(gsq_vit *m, int i, const float *dy, size_t n)
{
    struct gsq_vit_quant *q = m->quant;
    const gsq_qlinear *ql = &q->linears[i];
    float g = 1.0f / sqrtf((float)ql->in_per_sample * (float)q->a_qmax); /* N: features per image */
    q->lsq->grad[ql->lsq_index] += g * (float)gsq_fake_quant_scale_grad(dy, ql->x, n, ql->a_scale, q->a_qmax);
}

void gsq_lsq_row_grad(gsq_vit *m, int i, int row, const float *dw)
{
    struct gsq_vit_quant *q = m->quant;
    const gsq_qlinear *ql = &q->linears[i];
    const float *w = m->params + ql->w_offset + (size_t)row * (size_t)ql->cols;
    float g = 1.0f / sqrtf((float)ql->cols * (float)q->w_qmax); /* N: the row's weights */
    q->lsq->grad[ql->lsq_index + 1 + (size_t)row] +=
        g * (float)gsq_fake_quant_scale_grad(dw, w, (size_t)ql->cols, ql->w_scales[row], q->w_qmax);
}

/* Adam on u = log s (∂L/∂u = s·∂L/∂s), bias-corrected: s ← s·exp(−lr·m̂/(√v̂ + eps)). */
static void adam_log_step(float *s, gsq_lsq *l, size_t i, float lr, float bc1, float bc2)
{
    float g = l->grad[i] * *s;
    l->m[i] = beta1 * l->m[i] + (1.0f - beta1) * g;
    l->v[i] = beta2 * l->v[i] + (1.0f - beta2) * g * g;
    *s *= expf(-lr * (l->m[i] / bc1) / (sqrtf(l->v[i] / bc2) + eps));
}

void gsq_vit_quant_lsq_step(gsq_vit *m, float lr)
{
    struct gsq_vit_quant *q = m->quant;
    if (!q || !q->lsq || !q->active) return;
    gsq_lsq *l = q->lsq;
    l->steps++;
    float bc1 = 1.0f - powf(beta1, (float)l->steps), bc2 = 1.0f - powf(beta2, (float)l->steps);
    float a = lr * l->lr_scale;
    for (int i = 0; i < q->num_linears; i++) {
        gsq_qlinear *ql = &q->linears[i];
        if (!ql->quantized) continue;
        adam_log_step(&ql->a_scale, l, ql->lsq_index, a, bc1, bc2);
        for (int r = 0; ql->fixed_scales && r < ql->rows; r++)
            adam_log_step(&ql->w_scales[r], l, ql->lsq_index + 1 + (size_t)r, a, bc1, bc2);
    }
}
