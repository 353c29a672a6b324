/* LSQ, learned step size quantization (Esser et al. 2020), for a ViT's quantizers: every
 * compressed linear's activation scale and per-row weight scales become a parameter block
 * (gsq_model_blocks) that the optimizer, gradient accumulation and checkpoints treat like the
 * weights. Backward adds their gradients (gsq_fake_quant_scale_grad scaled by g = 1/sqrt(N·qmax),
 * times s: the block is learned as log s, so the scales stay positive and one learning rate suits
 * every magnitude) (include/gpusq/vit_quant.h, docs/QUANTIZATION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "vit_quant_state.h"
#include "models/model_state.h"

void gsq_lsq_free(gsq_lsq *l)
{
    if (!l) return;
    free(l->tensors);
    free(l->grad);
    free(l->dx);
    free(l);
}

/* A tensor of the block: linear i's activation scale (one value) or its weight scales (rows); 0 when
 * its name does not fit. */
static int describe(const gsq_model *m, int i, int weights, gsq_param *t)
{
    const gsq_qlinear *ql = &m->quant->linears[i];
    int fits = gsq_quant_tensor_name(t->name, sizeof t->name, m->graph->linears[i].name,
                                     weights ? "weight_scale" : "input_scale");
    t->ndim = 1;
    t->shape[0] = weights ? ql->rows : 1;
    t->numel = (size_t)t->shape[0];
    t->offset = ql->scale_index + (size_t)weights;
    t->no_decay = 1;
    return fits;
}

gsq_status gsq_model_quant_enable_lsq(gsq_model *m, float lr_scale, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q) return gsq_fail(err, GSQ_ERR_ARG, "LSQ: the model has no quantizers (gsq_model_quant_enable)");
    if (!(lr_scale > 0.0f && lr_scale < 1e6f))
        return gsq_fail(err, GSQ_ERR_ARG, "LSQ: the learning-rate factor %g is not a positive number",
                        (double)lr_scale);
    if (q->lsq) {
        q->lsq->lr_scale = lr_scale;
        return GSQ_OK;
    }
    int n = 0;
    for (int i = 0; i < q->num_linears; i++) n += 2 * q->linears[i].quantized;
    gsq_lsq *l = calloc(1, sizeof *l);
    if (!l || !(l->tensors = calloc((size_t)(n ? n : 1), sizeof *l->tensors)) ||
        !(l->grad = calloc(q->num_scales ? q->num_scales : 1, sizeof(float)))) {
        gsq_lsq_free(l);
        return gsq_fail(err, GSQ_ERR_NOMEM, "LSQ: out of memory for %zu scales", q->num_scales);
    }
    for (int i = 0; i < q->num_linears; i++) {
        int ok = !q->linears[i].quantized || (describe(m, i, 0, &l->tensors[l->num_tensors++]) &&
                                              describe(m, i, 1, &l->tensors[l->num_tensors++]));
        if (!ok) {
            gsq_lsq_free(l);
            return gsq_fail(err, GSQ_ERR_ARG, "LSQ: the linear's name %s is too long for its scales' names",
                            m->graph->linears[i].name);
        }
    }
    l->lr_scale = lr_scale;
    q->lsq = l;
    q->batch_cap = 0; /* dx is sized with the other buffers on the next forward */
    return GSQ_OK;
}

size_t gsq_model_quant_lsq_size(const gsq_model *m) { return m->quant && m->quant->lsq ? m->quant->num_scales : 0; }

int gsq_lsq_block(gsq_model *m, gsq_param_block *b)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->lsq) return 0;
    *b = (gsq_param_block){.num_tensors = q->lsq->num_tensors, .tensors = q->lsq->tensors, .n = q->num_scales,
                           .values = q->scales, .grads = q->lsq->grad, .lr_scale = q->lsq->lr_scale, .log_domain = 1};
    return 1;
}

gsq_status gsq_lsq_prepare(gsq_model *m, int B, gsq_error *err)
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

void gsq_lsq_act_grad(gsq_model *m, int i, const float *dy, size_t n)
{
    struct gsq_model_quant *q = m->quant;
    const gsq_qlinear *ql = &q->linears[i];
    float g = 1.0f / sqrtf((float)ql->in_per_sample * (float)q->a_qmax); /* N: features per image */
    float s = *ql->a_scale;
    q->lsq->grad[ql->scale_index] += g * s * (float)gsq_fake_quant_scale_grad(dy, ql->x, n, s, q->a_qmax);
}

void gsq_lsq_row_grad(gsq_model *m, int i, int row, const float *dw)
{
    struct gsq_model_quant *q = m->quant;
    const gsq_qlinear *ql = &q->linears[i];
    const float *w = m->params + ql->w_offset + (size_t)row * (size_t)ql->cols;
    float g = 1.0f / sqrtf((float)ql->cols * (float)q->w_qmax); /* N: the row's weights */
    float s = ql->w_scales[row];
    q->lsq->grad[ql->scale_index + 1 + (size_t)row] +=
        g * s * (float)gsq_fake_quant_scale_grad(dw, w, (size_t)ql->cols, s, q->w_qmax);
}
