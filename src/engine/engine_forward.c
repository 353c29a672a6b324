/* The CPU engine's forward pass: the steps of the plan (engine_plan.h) compiled from the network's
 * graph, each compressed linear an integer GEMM on its packed codes — its input quantized once
 * into the kernel's layout (by the LayerNorm before it as it makes its rows, by the linear before
 * it in its epilogue, or here), its output rescaled with the bias, GELU and the residual in the
 * GEMM's epilogue. LayerNorm, softmax, pooling and the classifier heads compute in float, and so
 * do the heads' other operations (a detector's cross-attention and joins) through the graph's
 * gsq_node_forward_f32, training's own; with quantized attention, QKᵀ and AV are integer matmuls
 * too, on the codes of Q, K, V and of the probabilities (attention_int8.h). */
#include <omp.h>
#include <string.h>

#include "cuda_backend.h"
#include "engine_state.h"
#include "gpusq/clock.h"
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"
#include "kernels/cpu/attention_int8.h"

static float *value(const gsq_engine *e, int v) { return v < 0 || e->plan.at[v] == SIZE_MAX ? NULL : e->act + e->plan.at[v]; }
static const float *param(const gsq_engine *e, int t) { return t < 0 ? NULL : e->fparams + e->fat[t]; }

/* LayerNorm node n of x (M rows of D) as the input codes of linear i in buffer out, a row at a
 * time: the normalized floats stay in a row buffer per thread (as many threads as had one when the
 * engine was made). With a window partition win (NULL: none) between them, the codes' rows are
 * the windows' (B images, M / B rows each), padding rows zero, as the partition would order them. */
static void norm_codes(gsq_engine *e, int i, const float *x, int M, int D, const gsq_node *n, const gsq_node *win,
                       int B, uint8_t *out)
{
    const float *w = param(e, n->param[0]), *b = param(e, n->param[1]);
    gsq_window_geom geom = win ? gsq_node_window(win) : (gsq_window_geom){0, 0, 0};
    int per_image = win ? gsq_window_count(geom) * geom.window * geom.window : 0, grid = geom.grid * geom.grid;
    if (win) M = B * per_image;
    int rows = gsq_i8_input_rows(e->isa, M);
    float inv = e->linears[i].inv_a;
    #pragma omp parallel num_threads(e->row_threads)
    {
        float *row = e->ln + (size_t)omp_get_thread_num() * D;
        #pragma omp for schedule(static)
        for (int m = 0; m < rows; m++) {
            int src = m; /* the token row m normalizes; -1: a padding token, zero after the norm */
            if (win && m < M) src = gsq_window_source(geom, m % per_image);
            if (win && src >= 0) src += m / per_image * grid;
            if (m < M && src >= 0) gsq_layernorm_row(row, x + (size_t)src * D, w, b, D, n->eps, NULL, NULL);
            else if (m < M) memset(row, 0, (size_t)D * sizeof(float));
            gsq_i8_quantize_one(e->isa, out, row, m, M, D, inv, e->a_qmax);
        }
    }
}

/* The compressed linear of step t on M rows: y = its GEMM (+ y when accumulating, GELU'd when the
 * step folds it in); when it feeds the next linear, the result goes on as that one's input codes
 * instead (y is then scratch, which the AMX kernels never touch). */
static void linear(gsq_engine *e, const gsq_engine_step *t, const gsq_node *n, const float *x, int M)
{
    const gsq_linear *l = &e->graph->linears[n->linear];
    const gsq_engine_linear *lin = &e->linears[n->linear];
    const uint8_t *xq = t->input >= 0 ? e->codes[t->input] : e->codes[0];
    if (t->input < 0) gsq_i8_quantize(e->isa, e->codes[0], x, M, l->cols, l->cols, lin->inv_a, e->a_qmax);
    gsq_i8_epilogue ep = {.scale = lin->scale, .bias = param(e, l->bias), .accumulate = t->accumulate, .gelu = t->gelu};
    if (t->feeds >= 0) {
        ep.codes = e->codes[t->output];
        ep.code_inv = e->linears[t->feeds].inv_a;
        ep.code_qmax = e->a_qmax;
    }
    gsq_i8_gemm(value(e, t->out), l->rows, xq, M, &lin->w.w, &ep);
}

/* Quantized attention runs as integer matmuls where the CPU has their fast path (AVX-512); below
 * it, the float matmuls on the codes' values are faster than the integer reference. */
static void attention(gsq_engine *e, const gsq_node *n, float *qkv, float *out, int B)
{
    int T = gsq_attention_tokens(e->graph, n), D = e->graph->values[n->out].cols, NH = n->attrs[0];
    B = B * e->graph->values[n->in[0]].rows / T; /* sequences: Swin's windows */
    const float *s = e->attention ? e->qkv_scales + 3 * n->block : NULL;
    if (e->att8) {
        gsq_att8_forward(e->isa, out, qkv, B, T, D, NH, s, e->a_qmax, e->att_bias[n->block], e->att_windows[n->block],
                         e->att8);
        return;
    }
    if (e->attention) {
        #pragma omp parallel for schedule(static)
        for (size_t r = 0; r < (size_t)B * T; r++)
            for (int k = 0; k < 3; k++) {
                float *q = qkv + r * 3 * (size_t)D + (size_t)k * D;
                gsq_fake_quant(q, q, (size_t)D, s[k], e->a_qmax);
            }
    }
    gsq_attn_bias bias = {param(e, n->param[0]), gsq_node_window(n)};
    gsq_attention_forward(out, e->att, e->att_q, e->attention ? 1.0f / (float)e->a_qmax : 0.0f,
                          e->attention ? e->a_qmax : 0, qkv, B, T, D, NH, n->param[0] >= 0 ? &bias : NULL);
}

static void run_step(gsq_engine *e, const gsq_engine_step *t, const float *images, int B)
{
    const gsq_graph *g = e->graph;
    const gsq_node *n = &g->nodes[t->node];
    const gsq_value *xv = &g->values[n->in[0]];
    gsq_node_args a = {.batch = B, .in = {n->in[0] == g->input ? images : value(e, n->in[0]), value(e, n->in[1])},
                       .out = value(e, t->out), .aux = value(e, n->aux)};
    for (int k = 0; k < 3; k++) a.param[k] = param(e, n->param[k]);
    int rows = (int)gsq_node_rows(g, n, B);
    if (n->op == GSQ_OP_LINEAR) {
        const gsq_linear *l = &g->linears[n->linear];
        if (l->compressed) {
            linear(e, t, n, a.in[0], rows);
            return;
        }
        a.param[0] = param(e, l->weight);
        a.param[1] = param(e, l->bias);
    } else if (n->op == GSQ_OP_LAYERNORM && t->feeds >= 0) {
        norm_codes(e, t->feeds, a.in[0], rows, xv->cols, n, t->window >= 0 ? &g->nodes[t->window] : NULL, B,
                   e->codes[t->output]);
        return;
    } else if (n->op == GSQ_OP_UNWINDOW && t->accumulate) { /* into the residual's buffer, its output */
        gsq_windows_to_grid(a.out, a.in[0], B, xv->cols, gsq_node_window(n), 1);
        return;
    } else if (n->op == GSQ_OP_ATTENTION) {
        attention(e, n, (float *)a.in[0], a.out, B);
        return;
    }
    gsq_node_forward_f32(g, n, &a);
}

gsq_status gsq_engine_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err)
{
    if (B < 1 || B > e->max_batch)
        return gsq_fail(err, GSQ_ERR_ARG, "engine: batch %d is outside 1..%d", B, e->max_batch);
    gsq_flush_denormals();
    if (e->cuda) return e->gpu->engine_forward(e, images, B, logits, err);
    double t0 = gsq_seconds();
    for (int s = 0; s < e->plan.num_steps; s++) {
        run_step(e, &e->plan.steps[s], images, B);
        double t = gsq_seconds();
        e->times[e->plan.steps[s].part] += t - t0;
        t0 = t;
    }
    *logits = value(e, e->graph->logits);
    return GSQ_OK;
}
