/* A model's forward, loss and backward on the CPU, for every architecture: walks the model's graph
 * (gpusq/graph.h, made by an architecture's builder) and runs each operation with the layers of nn/, the compressed linears
 * through their fake quantizers (vit_quant_state.h). The values live in one arena planned for the
 * largest batch seen so far (kept whole for backward, or reused for inference); their gradients in
 * a second arena planned the same way in reverse. */
#include "gpusq/graph.h"
#include "gpusq/kernels.h"
#include "gpusq/vit.h"
#include "vit_quant_state.h"
#include "models/model_state.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const float *param(const gsq_model *m, int t) { return t < 0 ? NULL : m->params + m->tensors[t].offset; }
static float *grad(const gsq_model *m, int t) { return t < 0 ? NULL : m->grads + m->tensors[t].offset; }

static float *act(const gsq_model *m, int v) { return m->act_mem + m->act_at[v]; }
static float *gact(const gsq_model *m, int v) { return m->gact_at[v] == SIZE_MAX ? NULL : m->gact_mem + m->gact_at[v]; }

/* Plans the value arena for a batch of B (grows only; a training plan serves inference too). On
 * failure the model holds no activations (act_batch 0), so nothing can read freed memory. */
static gsq_status ensure_acts(gsq_model *m, int B, int training, gsq_error *err)
{
    if (B <= m->act_batch && (m->act_training || !training)) return GSQ_OK;
    const gsq_graph *g = m->graph;
    size_t rows = 1; /* every GEMM dimension and head count is an int */
    for (int v = 0; v < g->num_values; v++)
        if ((size_t)g->values[v].rows > rows) rows = (size_t)g->values[v].rows;
    for (int i = 0; i < g->num_nodes; i++)
        if ((size_t)g->nodes[i].attrs[0] > rows && g->nodes[i].op == GSQ_OP_ATTENTION) rows = (size_t)g->nodes[i].attrs[0];
    if ((size_t)B > (size_t)INT_MAX / rows)
        return gsq_fail(err, GSQ_ERR_ARG, "forward: batch %d of %zu tokens is too large", B, rows);
    if (B < m->act_batch) B = m->act_batch;
    free(m->act_mem);
    free(m->gact_mem);
    free(m->targets);
    free(m->probs);
    m->act_mem = m->gact_mem = m->probs = NULL;
    m->targets = NULL;
    m->act_batch = 0;
    m->gact_floats = 0;
    if (!m->act_at) m->act_at = malloc((size_t)g->num_values * sizeof *m->act_at);
    size_t floats = 0;
    gsq_status st = m->act_at ? gsq_graph_plan_forward(g, B, training, m->act_at, &floats, err)
                              : gsq_fail(err, GSQ_ERR_NOMEM, "out of memory planning activations");
    if (st != GSQ_OK) return st;
    m->act_mem = malloc((floats ? floats : 1) * sizeof(float));
    m->targets = malloc((size_t)B * sizeof(int));
    m->probs = malloc((size_t)B * gsq_value_floats(m->graph, m->graph->logits) * sizeof(float));
    if (!m->act_mem || !m->targets || !m->probs) {
        free(m->act_mem);
        free(m->targets);
        free(m->probs);
        m->act_mem = m->probs = NULL;
        m->targets = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating activations for batch %d (%zu MiB)", B,
                        floats * sizeof(float) >> 20);
    }
    m->act_batch = B;
    m->act_training = training;
    return GSQ_OK;
}

/* The gradient of value v is worth computing: it reaches a parameter. */
static int flows(const gsq_model *m, int v)
{
    const gsq_graph *g = m->graph;
    int p = g->values[v].producer;
    if (p < 0) return 0;
    const gsq_node *n = &g->nodes[p];
    if (n->linear >= 0 || n->param[0] >= 0 || n->param[2] >= 0) return 1;
    return (n->in[0] >= 0 && flows(m, n->in[0])) || (n->in[1] >= 0 && flows(m, n->in[1]));
}

/* Plans the gradients of a batch of B into offset (SIZE_MAX: none), *floats in all. Backward
 * step i runs node num_nodes-1-i; a value's gradient lives from its first consumer's step to its
 * producer's (with retain_grads, to the end), and attention's probabilities get one for that
 * node's step as its scratch. */
static gsq_status plan_grads(const gsq_model *m, int B, size_t *offset, size_t *floats, gsq_error *err)
{
    const gsq_graph *g = m->graph;
    int nv = g->num_values, last_step = g->num_nodes - 1;
    size_t *size = calloc((size_t)nv, sizeof *size);
    int *first = calloc((size_t)nv, sizeof *first), *last = calloc((size_t)nv, sizeof *last);
    gsq_status st = size && first && last ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "out of memory planning gradients");
    for (int v = 0; st == GSQ_OK && v < nv; v++) {
        int p = g->values[v].producer, aux = p >= 0 && g->nodes[p].aux == v;
        int wanted = aux ? g->nodes[p].op == GSQ_OP_ATTENTION || g->nodes[p].op == GSQ_OP_CROSS_ATTENTION
                         : flows(m, v);
        size[v] = wanted ? (size_t)B * gsq_value_floats(g, v) : 0;
        first[v] = last[v] = wanted ? last_step - p : -1;
        if (wanted && m->retain_grads) last[v] = last_step;
    }
    for (int i = 0; st == GSQ_OK && i < g->num_nodes; i++)
        for (int k = 0; k < 2; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && size[v] && last_step - i < first[v]) first[v] = last_step - i;
        }
    if (st == GSQ_OK) st = gsq_plan_arena(nv, size, first, last, offset, floats, err);
    for (int v = 0; st == GSQ_OK && v < nv; v++)
        if (!size[v]) offset[v] = SIZE_MAX;
    free(size);
    free(first);
    free(last);
    return st;
}

static gsq_status ensure_grad_acts(gsq_model *m, gsq_error *err)
{
    if (m->gact_mem) return GSQ_OK;
    if (!m->gact_at && !(m->gact_at = malloc((size_t)m->graph->num_values * sizeof *m->gact_at)))
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory planning gradients");
    size_t floats = 0;
    gsq_status st = plan_grads(m, m->act_batch, m->gact_at, &floats, err);
    if (st != GSQ_OK) return st;
    m->gact_mem = malloc((floats ? floats : 1) * sizeof(float));
    if (!m->gact_mem)
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating activation gradients (%zu MiB)",
                        floats * sizeof(float) >> 20);
    m->gact_floats = floats;
    return GSQ_OK;
}

size_t gsq_model_activation_bytes(const gsq_model *m, int batch, int training)
{
    size_t *at = malloc((size_t)m->graph->num_values * sizeof *at), floats = 0, grads = 0;
    gsq_status st = at ? gsq_graph_plan_forward(m->graph, batch, training, at, &floats, NULL) : GSQ_ERR_NOMEM;
    if (st == GSQ_OK && training) st = plan_grads(m, batch, at, &grads, NULL);
    free(at);
    return st == GSQ_OK ? (floats + grads) * sizeof(float) : 0;
}

static void forward_node(gsq_model *m, const gsq_node *n, const float *images, int B)
{
    const gsq_graph *g = m->graph;
    gsq_node_args a = {.batch = B, .in = {n->in[0] == g->input ? images : act(m, n->in[0]),
                                          n->in[1] >= 0 ? act(m, n->in[1]) : NULL},
                       .out = act(m, n->out), .aux = n->aux >= 0 ? act(m, n->aux) : NULL};
    for (int k = 0; k < 3; k++) a.param[k] = param(m, n->param[k]);
    if (n->op == GSQ_OP_ATTENTION) {
        size_t rows = gsq_node_rows(g, n, B);
        float p_scale;
        int p_qmax;
        float *att_q = gsq_qattn_probs(m, n->block, &p_scale, &p_qmax);
        int T = gsq_attention_tokens(g, n);
        gsq_attn_bias bias = {a.param[0], gsq_node_window(n)};
        gsq_attention_forward(a.out, a.aux, att_q, p_scale, p_qmax,
                              gsq_qattn_qkv(m, n->block, a.in[0], gsq_node_rows(g, n, B)), (int)(rows / T), T,
                              g->values[n->out].cols, n->attrs[0], a.param[0] ? &bias : NULL);
        return;
    }
    if (n->op == GSQ_OP_LINEAR) {
        const gsq_linear *l = &g->linears[n->linear];
        a.param[0] = param(m, l->weight);
        a.param[1] = param(m, l->bias);
        if (l->compressed) { /* through its fake quantizers */
            a.in[0] = gsq_qlinear_input(m, n->linear, a.in[0], gsq_node_rows(g, n, B) * (size_t)l->cols);
            a.param[0] = gsq_qlinear_weight(m, n->linear, a.param[0]);
        }
    }
    gsq_node_forward_f32(g, n, &a);
}

static gsq_status run_forward(gsq_model *m, const float *images, int B, int training, const float **logits,
                              gsq_error *err)
{
    gsq_flush_denormals();
    m->batch = 0; /* no valid forward until this one succeeds */
    m->have_loss = 0;
    if (B <= 0) return gsq_fail(err, GSQ_ERR_ARG, "forward: batch size %d must be positive", B);
    gsq_status st = ensure_acts(m, B, training, err);
    if (st == GSQ_OK) st = gsq_model_quant_prepare(m, B, err);
    if (st != GSQ_OK) return st;
    for (int i = 0; i < m->graph->num_nodes; i++) forward_node(m, &m->graph->nodes[i], images, B);
    m->batch = B;
    m->kept = training;
    if (logits) *logits = act(m, m->graph->logits);
    return GSQ_OK;
}

gsq_status gsq_model_forward(gsq_model *m, const float *images, int B, const float **logits, gsq_error *err)
{
    return run_forward(m, images, B, 1, logits, err);
}

gsq_status gsq_model_infer(gsq_model *m, const float *images, int B, const float **logits, gsq_error *err)
{
    return run_forward(m, images, B, 0, logits, err);
}

const float *gsq_model_output(const gsq_model *m, const char *name)
{
    int v = m->batch > 0 ? gsq_graph_find_value(m->graph, name) : -1;
    if (v < 0 || v == m->graph->input || !(m->kept || m->graph->values[v].tap)) return NULL;
    return act(m, v);
}

/* The segmentation loss of the last forward against label maps (B, S, S) at the input side; its
 * gradient is kept in m->probs for backward. */
static gsq_status segment_loss(gsq_model *m, const int16_t *maps, float label_smoothing, float *loss, gsq_error *err)
{
    int B = m->batch, K = m->num_classes, S = m->img_size;
    if (!maps) return gsq_fail(err, GSQ_ERR_ARG, "loss: a segmentation model needs label maps");
    gsq_status st = gsq_segment_check_labels(maps, B, S, K, "loss", err);
    if (st != GSQ_OK) return st;
    float value = gsq_segment_loss(gsq_model_output(m, "logits"), B, m->graph->grid, K, maps, S, label_smoothing,
                                   m->probs, 1.0f, NULL);
    if (isnan(value)) return gsq_fail(err, GSQ_ERR_NOMEM, "loss: out of memory");
    m->have_loss = 1;
    if (loss) *loss = value;
    return GSQ_OK;
}

/* The detection loss of the last forward against box targets (B); its gradient kept in m->probs. */
static gsq_status detect_loss(gsq_model *m, const gsq_targets *boxes, float *loss, gsq_error *err)
{
    if (!boxes) return gsq_fail(err, GSQ_ERR_ARG, "loss: a detector needs box targets");
    gsq_detect_weights w;
    gsq_detect_weights_defaults(&w);
    gsq_output_shape shape = gsq_model_output_shape(m);
    gsq_status st = gsq_detect_loss(gsq_model_output(m, "logits"), &shape, m->batch, boxes, &w, m->probs, 1.0f, loss,
                                    NULL, err);
    m->have_loss = st == GSQ_OK;
    return st;
}

gsq_status gsq_model_loss(gsq_model *m, const gsq_truth *truth, float label_smoothing, float *loss, gsq_error *err)
{
    int B = m->batch, K = m->num_classes;
    const int *targets = truth ? truth->classes : NULL;
    if (B <= 0) return gsq_fail(err, GSQ_ERR_ARG, "loss: no forward pass to take the loss of");
    if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "loss: label smoothing %g is outside [0, 1)", (double)label_smoothing);
    if (m->task == GSQ_TASK_SEGMENT) return segment_loss(m, truth ? truth->maps : NULL, label_smoothing, loss, err);
    if (m->task == GSQ_TASK_DETECT) return detect_loss(m, truth ? truth->boxes : NULL, loss, err);
    if (!targets) return gsq_fail(err, GSQ_ERR_ARG, "loss: a classifier needs classes");
    for (int b = 0; b < B; b++)
        if (targets[b] < 0 || targets[b] >= K)
            return gsq_fail(err, GSQ_ERR_ARG, "loss: target %d of sample %d is outside [0, %d)", targets[b], b, K);
    memcpy(m->targets, targets, (size_t)B * sizeof(int));
    m->label_smoothing = label_smoothing;
    float value = gsq_cross_entropy_forward(m->probs, gsq_model_output(m, "logits"), m->targets, B, K, label_smoothing);
    m->have_loss = 1;
    if (loss) *loss = value;
    return GSQ_OK;
}

const float *gsq_model_output_grad(const gsq_model *m, const char *name)
{
    int v = m->retain_grads && m->gact_mem ? gsq_graph_find_value(m->graph, name) : -1;
    return v < 0 ? NULL : gact(m, v);
}

gsq_status gsq_model_backward(gsq_model *m, gsq_error *err)
{
    if (m->batch <= 0 || !m->have_loss)
        return gsq_fail(err, GSQ_ERR_ARG, "backward: no forward pass and loss of it to differentiate");
    int v = m->graph->logits;
    if (m->task != GSQ_TASK_CLASSIFY) /* the loss computed the gradient */
        return gsq_model_backward_values(m, 1, &v, (const float *const[1]){m->probs}, err);
    size_t n = (size_t)m->batch * (size_t)m->num_classes;
    float *dlogits = malloc(n * sizeof(float));
    if (!dlogits) return gsq_fail(err, GSQ_ERR_NOMEM, "backward: out of memory");
    memset(dlogits, 0, n * sizeof(float));
    gsq_cross_entropy_backward(dlogits, m->probs, m->targets, m->batch, m->num_classes, m->label_smoothing,
                               1.0f);
    const float *const grads[1] = {dlogits};
    gsq_status st = gsq_model_backward_values(m, 1, &v, grads, err);
    free(dlogits);
    return st;
}

static void backward_node(gsq_model *m, const gsq_node *n, int B)
{
    const gsq_graph *g = m->graph;
    const float *x = n->in[0] == g->input ? NULL : act(m, n->in[0]);
    const float *dy = gact(m, n->out);
    float *dx = gact(m, n->in[0]);
    const gsq_value *xv = &g->values[n->in[0]], *yv = &g->values[n->out];
    size_t rows = gsq_node_rows(g, n, B);
    switch (n->op) {
    case GSQ_OP_PATCHIFY:
        break; /* the images need no gradient */
    case GSQ_OP_LINEAR: {
        const gsq_linear *l = &g->linears[n->linear];
        size_t nx = rows * (size_t)l->cols, off = gsq_node_slice_offset(g, n, B);
        const float *w = param(m, l->weight);
        float *dw = grad(m, l->weight);
        x += off;
        if (dx) dx += off;
        if (l->compressed) {
            if (!dx) dx = gsq_qlinear_scratch_dx(m, nx); /* only LSQ's input scale wants it (NULL without) */
            float *target = gsq_qlinear_dw_target(m, n->linear, dw);
            gsq_linear_backward(dx, target, grad(m, l->bias), dy, gsq_qlinear_saved_input(m, n->linear, x),
                                gsq_qlinear_saved_weight(m, n->linear, w), (int)rows, l->cols, l->rows);
            gsq_qlinear_dw_finish(m, n->linear, dw);
            gsq_qlinear_input_grad(m, n->linear, dx, nx);
        } else {
            gsq_linear_backward(dx, dw, grad(m, l->bias), dy, x, w, (int)rows, l->cols, l->rows);
        }
        if (n->in[1] >= 0) gsq_accumulate(gact(m, n->in[1]), dy, rows * (size_t)l->rows);
        break;
    }
    case GSQ_OP_TOKENS: {
        int prefix = (n->param[0] >= 0) + (n->param[1] >= 0);
        gsq_tokens_backward(dx, grad(m, n->param[0]), grad(m, n->param[1]), grad(m, n->param[2]), dy, B, xv->rows,
                            xv->cols, prefix);
        break;
    }
    case GSQ_OP_LAYERNORM: {
        const float *mean = act(m, n->aux);
        gsq_layernorm_backward(dx, grad(m, n->param[0]), grad(m, n->param[1]), dy, x, param(m, n->param[0]), mean,
                               mean + rows, (int)rows, xv->cols);
        break;
    }
    case GSQ_OP_ATTENTION: {
        int T = gsq_attention_tokens(g, n);
        gsq_attn_bias bias = {param(m, n->param[0]), gsq_node_window(n)};
        gsq_attention_backward(dx, gact(m, n->aux), dy, gsq_qattn_saved_qkv(m, n->block, x), act(m, n->aux),
                               gsq_qattn_saved_probs(m, n->block), (int)(rows / T), T, yv->cols, n->attrs[0],
                               n->param[0] >= 0 ? &bias : NULL, grad(m, n->param[0]));
        gsq_qattn_qkv_grad(m, n->block, dx, rows);
        break;
    }
    case GSQ_OP_WINDOW:
        if (dx) gsq_windows_to_grid(dx, dy, B, xv->cols, gsq_node_window(n), 1);
        break;
    case GSQ_OP_UNWINDOW:
        if (dx) gsq_windows_from_grid(dx, dy, B, xv->cols, gsq_node_window(n), 1);
        if (n->in[1] >= 0) gsq_accumulate(gact(m, n->in[1]), dy, (size_t)B * gsq_value_floats(g, n->out));
        break;
    case GSQ_OP_MERGE:
        gsq_merge_backward(dx, dy, B, n->attrs[0], xv->cols);
        break;
    case GSQ_OP_ROWS:
        for (int b = 0; dx && b < B; b++)
            gsq_accumulate(dx + ((size_t)b * xv->rows + (size_t)n->attrs[0]) * xv->cols,
                           dy + (size_t)b * yv->rows * yv->cols, (size_t)yv->rows * yv->cols);
        break;
    case GSQ_OP_PREPEND:
        gsq_prepend_backward(dx, grad(m, n->param[0]), dy, B, yv->rows - xv->rows, xv->rows, xv->cols);
        break;
    case GSQ_OP_L2NORM:
        gsq_l2norm_backward(dx, dy, x, (int)rows, xv->cols);
        break;
    case GSQ_OP_MATMUL_NT:
        gsq_matmul_nt_backward(dx, gact(m, n->in[1]), dy, x, act(m, n->in[1]), B, xv->rows, yv->cols, xv->cols);
        break;
    case GSQ_OP_CROSS_ATTENTION:
        gsq_cross_attention_backward(dx, gact(m, n->in[1]), gact(m, n->aux), dy, x, act(m, n->in[1]), act(m, n->aux),
                                     NULL, B, xv->rows, g->values[n->in[1]].rows, yv->cols, n->attrs[0]);
        break;
    case GSQ_OP_CONCAT:
        if (n->attrs[0]) gsq_concat_backward(dx, gact(m, n->in[1]), dy, (size_t)B, gsq_value_floats(g, n->in[0]),
                                             gsq_value_floats(g, n->in[1]));
        else gsq_concat_backward(dx, gact(m, n->in[1]), dy, rows, (size_t)xv->cols,
                                 (size_t)g->values[n->in[1]].cols);
        break;
    case GSQ_OP_GELU:
        gsq_gelu_backward(dx, dy, x, rows * (size_t)xv->cols);
        break;
    case GSQ_OP_POOL:
        for (int k = 0; k < yv->slices; k++)
            gsq_pool_backward(dx, dy + (size_t)k * B * yv->cols, B, xv->rows, xv->cols,
                              k ? GSQ_POOL_TOKEN : n->attrs[0], k, n->attrs[2]);
        break;
    case GSQ_OP_MEAN2: {
        float *db = gact(m, n->in[1]);
        for (size_t i = 0; i < rows * (size_t)xv->cols; i++) {
            dx[i] += 0.5f * dy[i];
            db[i] += 0.5f * dy[i];
        }
        break;
    }
    case GSQ_OP_COUNT:
        break;
    }
}

gsq_status gsq_model_backward_values(gsq_model *m, int count, const int *values, const float *const *grads,
                                   gsq_error *err)
{
    int B = m->batch;
    if (B <= 0 || !m->kept)
        return gsq_fail(err, GSQ_ERR_ARG, "backward: no training forward pass to differentiate (gsq_model_forward)");
    gsq_status st = m->grads ? GSQ_OK : gsq_model_zero_grad(m, err);
    if (st == GSQ_OK) st = ensure_grad_acts(m, err);
    if (st != GSQ_OK) return st;
    const gsq_graph *g = m->graph;
    /* live[v]: v's gradient buffer has been zeroed in this backward and may be read */
    unsigned char *live = calloc((size_t)g->num_values, 1);
    if (!live) return gsq_fail(err, GSQ_ERR_NOMEM, "backward: out of memory");
    for (int i = g->num_nodes - 1; i >= 0; i--) {
        const gsq_node *n = &g->nodes[i];
        float *dy = gact(m, n->out);
        size_t ny = (size_t)B * gsq_value_floats(g, n->out);
        /* gradients given from outside join after every consumer's, just before the producer */
        for (int k = 0; k < count; k++) {
            if (values[k] != n->out || !grads[k] || !dy) continue;
            if (!live[n->out]) memset(dy, 0, ny * sizeof(float));
            live[n->out] = 1;
            gsq_accumulate(dy, grads[k], ny);
        }
        if (dy && live[n->out]) {
            for (int k = 0; k < 2; k++) {
                int v = n->in[k];
                if (v < 0 || live[v] || !gact(m, v)) continue;
                memset(gact(m, v), 0, (size_t)B * gsq_value_floats(g, v) * sizeof(float));
                live[v] = 1;
            }
            backward_node(m, n, B);
        }
        if (m->backward_hook) m->backward_hook(m->backward_hook_user, i);
    }
    free(live);
    return GSQ_OK;
}

gsq_status gsq_model_backward_from(gsq_model *m, const float *dlogits, const float *dlogits_dist,
                                 const float *const *dblock_out, gsq_error *err)
{
    const gsq_graph *g = m->graph;
    int head_dist = gsq_graph_find_value(g, "head_dist");
    if (!dlogits || (head_dist >= 0 && !dlogits_dist))
        return gsq_fail(err, GSQ_ERR_ARG, "backward: missing the gradient of the %s logits",
                        dlogits ? "distillation head's" : "head's");
    int count = head_dist >= 0 ? 2 : 1;
    int *values = malloc((size_t)(2 + g->num_blocks) * sizeof *values);
    const float **grads = malloc((size_t)(2 + g->num_blocks) * sizeof *grads);
    if (!values || !grads) {
        free(values);
        free(grads);
        return gsq_fail(err, GSQ_ERR_NOMEM, "backward: out of memory");
    }
    values[0] = head_dist >= 0 ? gsq_graph_find_value(g, "head") : g->logits;
    values[1] = head_dist;
    grads[0] = dlogits;
    grads[1] = dlogits_dist;
    for (int l = 0; dblock_out && l < g->num_blocks; l++) {
        values[count] = g->blocks[l];
        grads[count++] = dblock_out[l];
    }
    gsq_status st = gsq_model_backward_values(m, count, values, grads, err);
    free(values);
    free((void *)grads);
    return st;
}
