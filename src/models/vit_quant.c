/* Quantization-aware training state of a ViT: the quantizers of its compressed linears and
 * attentions, their scales, the calibration of activation scales, and the forward/backward hooks
 * (fake quantization with straight-through gradients) that vit_train.c calls at each compressed
 * linear. LSQ's learned scales are in vit_quant_lsq.c. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/graph.h"
#include "vit_quant_state.h"
#include "models/model_state.h"

static const char *const mode_names[] = {"int8", "int4", "w4a8"};

gsq_status gsq_quant_mode_parse(const char *s, gsq_quant_mode *out, gsq_error *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (gsq_quant_mode)i;
            return GSQ_OK;
        }
    return gsq_fail(err, GSQ_ERR_ARG, "unknown quantization mode '%s' (int8, int4 or w4a8)", s);
}

const char *gsq_quant_mode_name(gsq_quant_mode m) { return (unsigned)m < 3 ? mode_names[m] : "?"; }
int gsq_quant_mode_weight_bits(gsq_quant_mode m) { return m == GSQ_QMODE_INT8 ? 8 : 4; }
int gsq_quant_mode_act_bits(gsq_quant_mode m) { return m == GSQ_QMODE_INT4 ? 4 : 8; }

/* Frees every observer (linears, then attention) and clears the pointers. */
static void free_observers(struct gsq_model_quant *q, int depth)
{
    for (int i = 0; i < q->num_linears; i++) {
        gsq_observer_free(q->linears[i].obs);
        q->linears[i].obs = NULL;
    }
    for (int l = 0; q->attn && l < depth; l++)
        for (int k = 0; k < 3; k++) {
            gsq_observer_free(q->attn[l].obs[k]);
            q->attn[l].obs[k] = NULL;
        }
}

void gsq_model_quant_disable(gsq_model *m)
{
    struct gsq_model_quant *q = m->quant;
    if (!q) return;
    free_observers(q, m->graph->num_attentions);
    for (int i = 0; i < q->num_linears; i++) {
        free(q->linears[i].wq);
        free(q->linears[i].xq);
    }
    for (int l = 0; q->attn && l < m->graph->num_attentions; l++) {
        free(q->attn[l].qkv_q);
        free(q->attn[l].att_q);
    }
    free(q->attn);
    free(q->linears);
    free(q->scales);
    free(q->dw);
    gsq_lsq_free(q->lsq);
    free(q);
    m->quant = NULL;
}

gsq_status gsq_model_quant_enable(gsq_model *m, gsq_quant_mode mode, gsq_calib_method weight_calib, gsq_error *err)
{
    if ((unsigned)mode > GSQ_QMODE_W4A8) return gsq_fail(err, GSQ_ERR_ARG, "quantization: unknown mode %d", (int)mode);
    if (weight_calib != GSQ_CALIB_MAX && weight_calib != GSQ_CALIB_MSE)
        return gsq_fail(err, GSQ_ERR_ARG, "quantization: weights calibrate by max or mse, not %s",
                        gsq_calib_name(weight_calib));
    gsq_model_quant_disable(m);
    struct gsq_model_quant *q = calloc(1, sizeof *q);
    const gsq_graph *g = m->graph;
    int n = g->num_linears;
    if (!q || !(q->linears = calloc((size_t)n, sizeof *q->linears))) {
        free(q);
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory");
    }
    q->mode = mode;
    q->w_qmax = gsq_quant_qmax(gsq_quant_mode_weight_bits(mode));
    q->a_qmax = gsq_quant_qmax(gsq_quant_mode_act_bits(mode));
    q->weight_calib = weight_calib;
    q->num_linears = n;
    m->quant = q;
    size_t max_w = 0;
    for (int i = 0; i < n; i++) {
        q->linears[i].scale_index = q->num_scales;
        q->num_scales += g->linears[i].compressed ? 1 + (size_t)g->linears[i].rows : 0;
    }
    if (!(q->scales = calloc(q->num_scales ? q->num_scales : 1, sizeof(float)))) {
        gsq_model_quant_disable(m);
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory");
    }
    for (int i = 0; i < n; i++) {
        const gsq_linear *l = &g->linears[i];
        gsq_qlinear *ql = &q->linears[i];
        if (!l->compressed) continue; /* the classifier heads stay float */
        size_t numel = (size_t)l->rows * (size_t)l->cols;
        ql->quantized = 1;
        ql->w_offset = m->tensors[l->weight].offset;
        ql->rows = l->rows;
        ql->cols = l->cols;
        ql->in_per_sample = gsq_value_floats(g, g->nodes[l->node].in[0]);
        ql->a_scale = q->scales + ql->scale_index;
        ql->w_scales = ql->a_scale + 1;
        ql->wq = malloc(numel * sizeof(float));
        if (numel > max_w) max_w = numel;
        if (!ql->wq) {
            gsq_model_quant_disable(m);
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for %s", l->name);
        }
    }
    if (!(q->dw = malloc(max_w * sizeof(float)))) {
        gsq_model_quant_disable(m);
        return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory");
    }
    return GSQ_OK;
}

gsq_status gsq_model_quant_observe_begin(gsq_model *m, size_t capacity, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q) return gsq_fail(err, GSQ_ERR_ARG, "calibration: the model has no quantizers (gsq_model_quant_enable)");
    free_observers(q, m->graph->num_attentions);
    for (int i = 0; i < q->num_linears; i++) {
        gsq_status st = q->linears[i].quantized ? gsq_observer_create(&q->linears[i].obs, capacity, (uint64_t)i, err)
                                                : GSQ_OK;
        if (st != GSQ_OK) return st;
    }
    for (int l = 0; q->attn && l < m->graph->num_attentions; l++)
        for (int k = 0; k < 3; k++) {
            gsq_status st = gsq_observer_create(&q->attn[l].obs[k], capacity, (uint64_t)(1000 + 3 * l + k), err);
            if (st != GSQ_OK) return st;
        }
    q->observing = 1;
    q->active = 0;
    return GSQ_OK;
}

gsq_status gsq_model_quant_enable_attention(gsq_model *m, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || q->active || q->observing)
        return gsq_fail(err, GSQ_ERR_ARG, "attention quantization: enable the quantizers first, before calibrating");
    if (q->attn) return GSQ_OK;
    if (!(q->attn = calloc((size_t)m->graph->num_attentions, sizeof *q->attn)))
        return gsq_fail(err, GSQ_ERR_NOMEM, "attention quantization: out of memory");
    q->batch_cap = 0; /* buffers are re-sized with the attention ones on the next forward */
    return GSQ_OK;
}

const float *gsq_model_quant_attention_scales(const gsq_model *m, int l)
{
    return m->quant && m->quant->attn && l >= 0 && l < m->graph->num_attentions ? m->quant->attn[l].qkv_scale : NULL;
}

static int all_scales_set(const struct gsq_model_quant *q, int depth)
{
    int all = 1;
    for (int i = 0; i < q->num_linears; i++) all &= !q->linears[i].quantized || *q->linears[i].a_scale > 0.0f;
    for (int l = 0; q->attn && l < depth; l++)
        for (int k = 0; k < 3; k++) all &= q->attn[l].qkv_scale[k] > 0.0f;
    return all;
}

gsq_status gsq_model_quant_set_attention_scales(gsq_model *m, int l, const float *scales, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->attn || l < 0 || l >= m->graph->num_attentions)
        return gsq_fail(err, GSQ_ERR_ARG, "attention quantization: block %d has no attention quantizers", l);
    for (int k = 0; k < 3; k++)
        if (!gsq_quant_scale_ok(scales[k]))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            "attention quantization: block %d scale %g is not a normal positive "
                            "number below 1e30", l, (double)scales[k]);
    for (int k = 0; k < 3; k++) q->attn[l].qkv_scale[k] = scales[k];
    q->active = all_scales_set(q, m->graph->num_attentions);
    return GSQ_OK;
}

gsq_status gsq_model_quant_observe_end(gsq_model *m, gsq_calib_method method, float percentile, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->observing) return gsq_fail(err, GSQ_ERR_ARG, "calibration: no observation was started");
    gsq_status st = GSQ_OK;
    for (int i = 0; i < q->num_linears && st == GSQ_OK; i++) {
        if (!q->linears[i].quantized) continue;
        st = gsq_observer_scale(q->linears[i].obs, method, percentile, q->a_qmax, q->linears[i].a_scale, err);
        if (st != GSQ_OK) {
            gsq_error inner = *err;
            st = gsq_fail(err, inner.code, "calibrating the input of %s: %s", m->graph->linears[i].name, inner.msg);
        }
    }
    static const char *const part[3] = {"Q", "K", "V"};
    for (int l = 0; q->attn && l < m->graph->num_attentions && st == GSQ_OK; l++)
        for (int k = 0; k < 3 && st == GSQ_OK; k++) {
            st = gsq_observer_scale(q->attn[l].obs[k], method, percentile, q->a_qmax, &q->attn[l].qkv_scale[k], err);
            if (st != GSQ_OK) {
                gsq_error inner = *err;
                st = gsq_fail(err, inner.code, "calibrating block %d's %s: %s", l, part[k], inner.msg);
            }
        }
    free_observers(q, m->graph->num_attentions);
    q->observing = 0;
    q->active = st == GSQ_OK;
    return st;
}

int gsq_model_quant_active(const gsq_model *m) { return m->quant && m->quant->active; }
gsq_quant_mode gsq_model_quant_mode(const gsq_model *m) { return m->quant->mode; }
float gsq_model_quant_act_scale(const gsq_model *m, int linear) { return *m->quant->linears[linear].a_scale; }
const float *gsq_model_quant_weight_scales(const gsq_model *m, int linear) { return m->quant->linears[linear].w_scales; }

/* *out = the quantizer of linear i; GSQ_ERR_ARG when it has none. */
static gsq_status quantizer(const gsq_model *m, int i, gsq_qlinear **out, gsq_error *err)
{
    int known = i >= 0 && i < m->graph->num_linears;
    *out = m->quant && known && m->quant->linears[i].quantized ? &m->quant->linears[i] : NULL;
    if (*out) return GSQ_OK;
    return gsq_fail(err, GSQ_ERR_ARG, "quantization: %s%s has no quantizer", known ? "linear " : "no linear",
                    known ? m->graph->linears[i].name : "");
}

gsq_status gsq_model_quant_set_act_scale(gsq_model *m, int linear, float scale, gsq_error *err)
{
    gsq_qlinear *ql;
    gsq_status st = quantizer(m, linear, &ql, err);
    if (st != GSQ_OK) return st;
    if (!gsq_quant_scale_ok(scale))
        return gsq_fail(err, GSQ_ERR_FORMAT, "quantization: the input scale %g of %s is not a normal positive "
                        "number below 1e30", (double)scale, m->graph->linears[linear].name);
    *ql->a_scale = scale;
    m->quant->active = all_scales_set(m->quant, m->graph->num_attentions);
    return GSQ_OK;
}

gsq_status gsq_model_quant_prepare(gsq_model *m, int B, gsq_error *err)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active || B <= q->batch_cap) return GSQ_OK;
    for (int i = 0; i < q->num_linears; i++) {
        if (!q->linears[i].quantized) continue;
        free(q->linears[i].xq);
        q->linears[i].xq = malloc((size_t)B * q->linears[i].in_per_sample * sizeof(float));
        if (!q->linears[i].xq) {
            q->batch_cap = 0;
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for a batch of %d", B);
        }
    }
    for (int l = 0; q->attn && l < m->graph->num_attentions; l++) {
        const gsq_graph *g = m->graph;
        const gsq_node *n = gsq_graph_attention(g, l);
        gsq_qattn *a = &q->attn[l];
        free(a->qkv_q);
        free(a->att_q);
        a->qkv_q = malloc((size_t)B * gsq_value_floats(g, n->in[0]) * sizeof(float));
        a->att_q = malloc((size_t)B * gsq_value_floats(g, n->aux) * sizeof(float));
        if (!a->qkv_q || !a->att_q) {
            q->batch_cap = 0;
            return gsq_fail(err, GSQ_ERR_NOMEM, "quantization: out of memory for a batch of %d", B);
        }
    }
    gsq_status st = gsq_lsq_prepare(m, B, err);
    q->batch_cap = st == GSQ_OK ? B : 0;
    return st;
}

const float *gsq_qattn_qkv(gsq_model *m, int l, const float *qkv, size_t rows)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->attn) return qkv;
    gsq_qattn *a = &q->attn[l];
    size_t D = (size_t)m->graph->values[gsq_graph_attention(m->graph, l)->out].cols;
    a->qkv = qkv;
    if (q->observing)
        for (size_t r = 0; r < rows; r++)
            for (int k = 0; k < 3; k++) gsq_observer_observe(a->obs[k], qkv + r * 3 * D + (size_t)k * D, D);
    if (!q->active) return qkv;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++)
            gsq_fake_quant(a->qkv_q + r * 3 * D + (size_t)k * D, qkv + r * 3 * D + (size_t)k * D, D, a->qkv_scale[k],
                           q->a_qmax);
    return a->qkv_q;
}

float *gsq_qattn_probs(gsq_model *m, int l, float *p_scale, int *p_qmax)
{
    struct gsq_model_quant *q = m->quant;
    *p_scale = 0.0f;
    *p_qmax = 0;
    if (!q || !q->attn || !q->active) return NULL;
    *p_qmax = q->a_qmax;
    *p_scale = 1.0f / (float)q->a_qmax;
    return q->attn[l].att_q;
}

const float *gsq_qattn_saved_qkv(const gsq_model *m, int l, const float *qkv)
{
    return m->quant && m->quant->attn && m->quant->active ? m->quant->attn[l].qkv_q : qkv;
}

const float *gsq_qattn_saved_probs(const gsq_model *m, int l)
{
    return m->quant && m->quant->attn && m->quant->active ? m->quant->attn[l].att_q : NULL;
}

void gsq_qattn_qkv_grad(gsq_model *m, int l, float *dqkv, size_t rows)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->attn || !q->active) return;
    const gsq_qattn *a = &q->attn[l];
    size_t D = (size_t)m->graph->values[gsq_graph_attention(m->graph, l)->out].cols;
    #pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++)
        for (int k = 0; k < 3; k++) {
            size_t o = r * 3 * D + (size_t)k * D;
            gsq_fake_quant_backward(dqkv + o, dqkv + o, a->qkv + o, D, a->qkv_scale[k], q->a_qmax);
        }
}

const float *gsq_qlinear_input(gsq_model *m, int i, const float *x, size_t n)
{
    struct gsq_model_quant *q = m->quant;
    if (!q) return x;
    gsq_qlinear *ql = &q->linears[i];
    ql->x = x;
    if (q->observing) gsq_observer_observe(ql->obs, x, n);
    if (!q->active) return x;
    gsq_fake_quant(ql->xq, x, n, *ql->a_scale, q->a_qmax);
    return ql->xq;
}

const float *gsq_qlinear_weight(gsq_model *m, int i, const float *w)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active) return w;
    gsq_qlinear *ql = &q->linears[i];
    if (!ql->fixed_scales) { /* LSQ starts from the first forward's scales and then learns them */
        gsq_weight_scales(ql->w_scales, w, ql->rows, ql->cols, q->w_qmax, q->weight_calib, NULL);
        ql->fixed_scales = q->lsq != NULL;
    }
    gsq_fake_quant_rows(ql->wq, w, ql->rows, ql->cols, ql->w_scales, q->w_qmax);
    return ql->wq;
}

gsq_status gsq_model_quant_weight_codes(const gsq_model *m, int linear, int8_t *codes, float *scales, gsq_error *err)
{
    gsq_qlinear *ql;
    gsq_status st = quantizer(m, linear, &ql, err);
    if (st != GSQ_OK) return st;
    const struct gsq_model_quant *q = m->quant;
    const float *w = m->params + ql->w_offset;
    if (ql->fixed_scales) memcpy(scales, ql->w_scales, (size_t)ql->rows * sizeof(float));
    else if ((st = gsq_weight_scales(scales, w, ql->rows, ql->cols, q->w_qmax, q->weight_calib, err)) != GSQ_OK)
        return st;
    for (int r = 0; r < ql->rows; r++)
        gsq_quantize_codes(codes + (size_t)r * ql->cols, w + (size_t)r * ql->cols, (size_t)ql->cols, scales[r],
                           q->w_qmax);
    return GSQ_OK;
}

gsq_status gsq_model_quant_fix_weight_scales(gsq_model *m, int linear, const float *scales, gsq_error *err)
{
    gsq_qlinear *ql;
    gsq_status st = quantizer(m, linear, &ql, err);
    if (st != GSQ_OK) return st;
    for (int r = 0; r < ql->rows; r++)
        if (!gsq_quant_scale_ok(scales[r]))
            return gsq_fail(err, GSQ_ERR_FORMAT,
                            "quantization: weight scale %g of row %d is not a normal positive "
                            "number below 1e30", (double)scales[r], r);
    memcpy(ql->w_scales, scales, (size_t)ql->rows * sizeof(float));
    ql->fixed_scales = 1;
    return GSQ_OK;
}

const float *gsq_qlinear_saved_input(const gsq_model *m, int i, const float *x)
{
    return m->quant && m->quant->active ? m->quant->linears[i].xq : x;
}

const float *gsq_qlinear_saved_weight(const gsq_model *m, int i, const float *w)
{
    return m->quant && m->quant->active ? m->quant->linears[i].wq : w;
}

float *gsq_qlinear_dw_target(gsq_model *m, int i, float *grad)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active) return grad;
    const gsq_qlinear *ql = &q->linears[i];
    memset(q->dw, 0, (size_t)ql->rows * (size_t)ql->cols * sizeof(float));
    return q->dw;
}

void gsq_qlinear_dw_finish(gsq_model *m, int i, float *grad)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active) return;
    const gsq_qlinear *ql = &q->linears[i];
    const float *w = m->params + ql->w_offset;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < ql->rows; r++) {
        size_t o = (size_t)r * (size_t)ql->cols;
        /* LSQ's scale gradient needs dw before the STE of each row's quantizer, then accumulate */
        if (q->lsq) gsq_lsq_row_grad(m, i, r, q->dw + o);
        gsq_fake_quant_backward(q->dw + o, q->dw + o, w + o, (size_t)ql->cols, ql->w_scales[r], q->w_qmax);
        for (int c = 0; c < ql->cols; c++) grad[o + c] += q->dw[o + c];
    }
}

void gsq_qlinear_input_grad(gsq_model *m, int i, float *dx, size_t n)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active || !dx) return;
    const gsq_qlinear *ql = &q->linears[i];
    if (q->lsq) gsq_lsq_act_grad(m, i, dx, n);
    gsq_fake_quant_backward(dx, dx, ql->x, n, *ql->a_scale, q->a_qmax);
}

float *gsq_qlinear_scratch_dx(gsq_model *m, size_t n)
{
    struct gsq_model_quant *q = m->quant;
    if (!q || !q->active || !q->lsq) return NULL;
    memset(q->lsq->dx, 0, n * sizeof(float));
    return q->lsq->dx;
}
