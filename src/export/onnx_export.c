/* gsq_export_onnx (gpusq/export.h): the model's graph walked node by node into ONNX operators
 * (onnx_build.h), with Q/DQ pairs from the model's own quantizer scales. Each graph value becomes
 * one ONNX tensor per slice, named as the graph names it ((batch, rows, cols), or (batch, cols)
 * once pooled); the operators an operation needs are named after its output
 * ("blocks.0.attn/scores"). */
#include "gpusq/export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export/onnx_build.h"
#include "gpusq/data.h"
#include "gpusq/graph.h"
#include "gpusq/nn.h"
#include "gpusq/sparse.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"
#include "gpusq/vit_quant.h"
#include "models/model_state.h"

typedef struct {
    gsq_onnx *b;
    const gsq_model *m;
    const gsq_graph *g;
    const gsq_export_options *o;
    const char **names; /* per value, per slice: names[first[v] + k] */
    int *first;
    int quantized;      /* the model's quantizers are active */
    int act_qmax;       /* the activations' codes lie in ±act_qmax */
    gsq_error *err;
    gsq_status st;      /* an emitter's failure with its own message (not the builder's memory) */
} exporter;

static const char *value_name(const exporter *e, int v, int slice) { return e->names[e->first[v] + slice]; }

static const float *param(const exporter *e, int p)
{
    return gsq_model_params_const(e->m) + gsq_model_tensor(e->m, p)->offset;
}

/* An initializer holding parameter p as float, with the given shape (NULL: its own). */
static const char *param_tensor(exporter *e, int p, int ndim, const int64_t *dims)
{
    const gsq_param *t = gsq_model_tensor(e->m, p);
    return gsq_onnx_tensor(e->b, t->name, GSQ_ONNX_FLOAT, dims ? ndim : t->ndim, dims ? dims : t->shape, param(e, p));
}

/* A 1-D int64 constant of n values, named after base. */
static const char *ints(exporter *e, const char *base, const char *what, int n, const int64_t *v)
{
    return gsq_onnx_ints(e->b, gsq_onnx_name(e->b, "%s/%s", base, what), n, v);
}

static const char *op1(exporter *e, const char *op, const char *base, const char *what, const char *x)
{
    return GSQ_ONNX_OP(e->b, op, gsq_onnx_name(e->b, "%s/%s", base, what), x);
}

static const char *op2(exporter *e, const char *op, const char *base, const char *what, const char *x, const char *y)
{
    return GSQ_ONNX_OP(e->b, op, gsq_onnx_name(e->b, "%s/%s", base, what), x, y);
}

static const char *reshape(exporter *e, const char *base, const char *what, const char *x, int n, const int64_t *shape)
{
    return op2(e, "Reshape", base, what, x, ints(e, base, gsq_onnx_name(e->b, "%s_shape", what), n, shape));
}

static const char *transpose(exporter *e, const char *base, const char *what, const char *x, int n, const int64_t *perm)
{
    const char *y = op1(e, "Transpose", base, what, x);
    gsq_onnx_attr_ints(e->b, "perm", n, perm);
    return y;
}

/* x quantized at scale (codes ±qmax) and dequantized: what the model's fake quantizer computes,
 * one scale per tensor (TensorRT takes activation scales per tensor only). QuantizeLinear
 * saturates at the int8 type's [-128, 127], so unless the values cannot pass ±qmax (clip 0) they
 * are clipped to ±qmax first: the model's codes are symmetric (±127; ±7 at 4 bits), and a -128
 * where the model has -127 moves outliers, the values that matter most. Zero points: 0 (int8) for
 * TensorRT, 128 (uint8, the same codes shifted) for ONNX Runtime. */
static const char *qdq(exporter *e, const char *base, const char *x, float scale, int qmax, int clip)
{
    gsq_onnx *b = e->b;
    int ort = e->o->target == GSQ_EXPORT_ORT;
    const char *s = gsq_onnx_float(b, gsq_onnx_name(b, "%s/scale", base), scale);
    const char *zero = gsq_onnx_byte(b, gsq_onnx_name(b, "%s/zero_point", base), ort ? GSQ_ONNX_UINT8 : GSQ_ONNX_INT8,
                                     ort ? 128 : 0);
    if (clip)
        x = GSQ_ONNX_OP(b, "Clip", gsq_onnx_name(b, "%s/clipped", base), x,
                        gsq_onnx_float(b, gsq_onnx_name(b, "%s/min", base), -(float)qmax * scale),
                        gsq_onnx_float(b, gsq_onnx_name(b, "%s/max", base), (float)qmax * scale));
    const char *q = GSQ_ONNX_OP(b, "QuantizeLinear", gsq_onnx_name(b, "%s/quantized", base), x, s, zero);
    return GSQ_ONNX_OP(b, "DequantizeLinear", gsq_onnx_name(b, "%s/dequantized", base), q, s, zero);
}

/* The weight of linear i as a float tensor (rows, cols): its parameter, or for a quantized linear
 * its integer codes (int8 initializer, pruned zeros kept) through a per-row DequantizeLinear. */
static const char *linear_weight(exporter *e, int i)
{
    const gsq_linear *l = &e->g->linears[i];
    const char *w = gsq_model_tensor(e->m, l->weight)->name;
    int64_t dims[2] = {l->rows, l->cols};
    if (!e->quantized || !l->compressed) return param_tensor(e, l->weight, 2, dims);
    size_t n = (size_t)l->rows * l->cols;
    int8_t *codes = malloc(n);
    float *scales = malloc((size_t)l->rows * sizeof *scales);
    int8_t *zero = calloc((size_t)l->rows, 1);
    gsq_status st = codes && scales && zero ? gsq_model_quant_weight_codes(e->m, i, codes, scales, e->err) : GSQ_ERR_NOMEM;
    const char *y = w;
    if (st == GSQ_OK) {
        gsq_onnx *b = e->b;
        const char *q = gsq_onnx_tensor(b, gsq_onnx_name(b, "%s_quantized", w), GSQ_ONNX_INT8, 2, dims, codes);
        const char *s = gsq_onnx_tensor(b, gsq_onnx_name(b, "%s_scale", w), GSQ_ONNX_FLOAT, 1, dims, scales);
        const char *z = gsq_onnx_tensor(b, gsq_onnx_name(b, "%s_zero_point", w), GSQ_ONNX_INT8, 1, dims, zero);
        y = GSQ_ONNX_OP(b, "DequantizeLinear", w, q, s, z);
        gsq_onnx_attr_int(b, "axis", 0);
    } else {
        e->st = st; /* the message is the model's, or out of memory */
        if (st == GSQ_ERR_NOMEM) gsq_fail(e->err, st, "ONNX export: out of memory");
    }
    free(codes);
    free(scales);
    free(zero);
    return y;
}

/* The attention whose qkv is value v (its block), or -1. */
static int attention_reading(const gsq_graph *g, int v)
{
    for (int i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == GSQ_OP_ATTENTION && g->nodes[i].in[0] == v) return g->nodes[i].block;
    return -1;
}

/* A linear: MatMul with the weight behind a Transpose, then the bias, the residual, and for
 * TensorRT the q, k and v pairs of a quantized attention right after its qkv GEMM (three Slices,
 * a per-tensor pair each, joined again), so that the GEMM ends in the attention's int8 codes. The
 * last operation writes the value's name. */
static void emit_linear(exporter *e, const gsq_node *n)
{
    const gsq_linear *l = &e->g->linears[n->linear];
    gsq_onnx *b = e->b;
    const char *out = value_name(e, n->out, 0);
    const char *x = value_name(e, n->in[0], n->in_slice > 0 ? n->in_slice : 0);
    if (e->quantized && l->compressed)
        x = qdq(e, gsq_onnx_name(b, "%s/input", l->name), x, gsq_model_quant_act_scale(e->m, n->linear), e->act_qmax, 1);
    const int64_t perm[2] = {1, 0};
    const char *wt = transpose(e, l->name, "weight_t", linear_weight(e, n->linear), 2, perm);
    int attn = e->quantized && e->o->target == GSQ_EXPORT_TENSORRT ? attention_reading(e->g, n->out) : -1;
    const float *qkv_scales = attn >= 0 ? gsq_model_quant_attention_scales(e->m, attn) : NULL;
    int steps = 1 + (l->bias >= 0) + (n->in[1] >= 0) + (qkv_scales != NULL), step = 0;
#define NEXT(what) (++step == steps ? out : gsq_onnx_name(b, "%s/%s", out, what))
    const char *y = GSQ_ONNX_OP(b, "MatMul", NEXT("matmul"), x, wt);
    if (l->bias >= 0) y = GSQ_ONNX_OP(b, "Add", NEXT("biased"), y, param_tensor(e, l->bias, 0, NULL));
    if (n->in[1] >= 0) y = GSQ_ONNX_OP(b, "Add", NEXT("residual"), y, value_name(e, n->in[1], 0));
    if (qkv_scales) {
        int D = l->rows / 3;
        const char *part[3], *what[3] = {"q", "k", "v"};
        for (int k = 0; k < 3; k++) { /* along the features, the last axis */
            const int64_t start[1] = {(int64_t)k * D}, end[1] = {(int64_t)(k + 1) * D}, axes[1] = {-1};
            const char *base = gsq_onnx_name(b, "%s/%s", out, what[k]);
            part[k] = GSQ_ONNX_OP(b, "Slice", gsq_onnx_name(b, "%s/sliced", base), y, ints(e, base, "start", 1, start),
                                  ints(e, base, "end", 1, end), ints(e, base, "axes", 1, axes));
            part[k] = qdq(e, base, part[k], qkv_scales[k], e->act_qmax, 1);
        }
        gsq_onnx_node(b, "Concat", NEXT("codes"), part, 3);
        gsq_onnx_attr_int(b, "axis", -1);
    }
#undef NEXT
}

static void emit_patchify(exporter *e, const gsq_node *n)
{
    int C = n->attrs[0], S = n->attrs[1], P = n->attrs[2], G = S / P;
    const char *out = value_name(e, n->out, 0), *x = value_name(e, n->in[0], 0);
    if (G * P != S) { /* the right and bottom remainders are dropped, as a strided conv does */
        const int64_t start[2] = {0, 0}, end[2] = {G * P, G * P}, axes[2] = {2, 3};
        x = GSQ_ONNX_OP(e->b, "Slice", gsq_onnx_name(e->b, "%s/cropped", out), x, ints(e, out, "crop_start", 2, start),
                        ints(e, out, "crop_end", 2, end), ints(e, out, "crop_axes", 2, axes));
    }
    const int64_t grid[6] = {-1, C, G, P, G, P}, perm[6] = {0, 2, 4, 1, 3, 5}, patches[3] = {-1, G * G, C * P * P};
    x = reshape(e, out, "grid", x, 6, grid);
    x = transpose(e, out, "patches", x, 6, perm);
    GSQ_ONNX_OP(e->b, "Reshape", out, x, ints(e, out, "shape", 3, patches));
}

/* The shape (batch, rows, cols) with x's batch: what rows of parameters before each image's are
 * Expanded to. */
static const char *prefix_shape(exporter *e, const char *out, const char *x, int rows, int cols)
{
    const char *batch = op1(e, "Shape", out, "batch", x);
    gsq_onnx_attr_int(e->b, "start", 0);
    gsq_onnx_attr_int(e->b, "end", 1);
    const int64_t rest[2] = {rows, cols};
    const char *shape = GSQ_ONNX_OP(e->b, "Concat", gsq_onnx_name(e->b, "%s/prefix_shape", out), batch,
                                    ints(e, out, "token_shape", 2, rest));
    gsq_onnx_attr_int(e->b, "axis", 0);
    return shape;
}

static void emit_tokens(exporter *e, const gsq_node *n)
{
    const gsq_value *xv = &e->g->values[n->in[0]], *yv = &e->g->values[n->out];
    const char *out = value_name(e, n->out, 0), *x = value_name(e, n->in[0], 0);
    int D = xv->cols;
    const int64_t token[3] = {1, 1, D}, pos[3] = {1, yv->rows, D};
    if (n->param[0] >= 0 || n->param[1] >= 0) { /* prefix tokens, repeated over the batch */
        const char *shape = prefix_shape(e, out, x, 1, D);
        const char *parts[3];
        int k = 0;
        for (int p = 0; p < 2; p++)
            if (n->param[p] >= 0)
                parts[k++] = GSQ_ONNX_OP(e->b, "Expand", gsq_onnx_name(e->b, "%s/prefix%d", out, p),
                                         param_tensor(e, n->param[p], 3, token), shape);
        parts[k++] = x;
        x = gsq_onnx_node(e->b, "Concat", gsq_onnx_name(e->b, "%s/concat", out), parts, k);
        gsq_onnx_attr_int(e->b, "axis", 1);
    }
    GSQ_ONNX_OP(e->b, "Add", out, x, param_tensor(e, n->param[2], 3, pos));
}

/* The mask transformer's class embeddings (1, K, C), repeated over the batch, before x. */
static void emit_prepend(exporter *e, const gsq_node *n)
{
    const gsq_value *xv = &e->g->values[n->in[0]];
    const char *out = value_name(e, n->out, 0), *x = value_name(e, n->in[0], 0);
    int K = e->g->values[n->out].rows - xv->rows;
    const char *parts[2] = {GSQ_ONNX_OP(e->b, "Expand", gsq_onnx_name(e->b, "%s/prefix", out),
                                        param_tensor(e, n->param[0], 0, NULL), prefix_shape(e, out, x, K, xv->cols)),
                            x};
    gsq_onnx_node(e->b, "Concat", out, parts, 2);
    gsq_onnx_attr_int(e->b, "axis", 1);
}

/* x / max(‖x‖, 1e-12) along the rows, as F.normalize: LpNormalization has no floor (a zero row
 * would be NaN), so ReduceL2, Max and Div. */
static void emit_l2norm(exporter *e, const gsq_node *n)
{
    const char *out = value_name(e, n->out, 0), *x = value_name(e, n->in[0], 0);
    const int64_t axes[1] = {-1};
    const char *norm;
    if (gsq_onnx_opset(e->b) >= 18) {
        norm = op2(e, "ReduceL2", out, "norm", x, ints(e, out, "axes", 1, axes));
    } else {
        norm = op1(e, "ReduceL2", out, "norm", x);
        gsq_onnx_attr_ints(e->b, "axes", 1, axes);
    }
    gsq_onnx_attr_int(e->b, "keepdims", 1);
    norm = op2(e, "Max", out, "floored", norm, gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/eps", out), 1e-12f));
    GSQ_ONNX_OP(e->b, "Div", out, x, norm);
}

/* in[0] (batch, M, C) · in[1] (batch, N, C)ᵀ */
static void emit_matmul_nt(exporter *e, const gsq_node *n)
{
    const char *out = value_name(e, n->out, 0);
    const int64_t perm[3] = {0, 2, 1};
    GSQ_ONNX_OP(e->b, "MatMul", out, value_name(e, n->in[0], 0),
                transpose(e, out, "rhs_t", value_name(e, n->in[1], 0), 3, perm));
}

static void emit_layernorm(exporter *e, const gsq_node *n)
{
    int C = e->g->values[n->in[0]].cols;
    const int64_t dims[1] = {C};
    const char *w = param_tensor(e, n->param[0], 1, dims), *bias = param_tensor(e, n->param[1], 1, dims);
    for (int k = 0; k < e->g->values[n->out].slices; k++) {
        GSQ_ONNX_OP(e->b, "LayerNormalization", value_name(e, n->out, k), value_name(e, n->in[0], k), w, bias);
        gsq_onnx_attr_int(e->b, "axis", -1);
        gsq_onnx_attr_float(e->b, "epsilon", n->eps);
    }
}

/* Exact GELU: the Gelu operator from opset 20, before it x · (1 + erf(x / √2)) / 2, the form
 * ONNX Runtime and TensorRT fuse back into one kernel. */
static void emit_gelu(exporter *e, const gsq_node *n)
{
    for (int k = 0; k < e->g->values[n->out].slices; k++) {
        const char *out = value_name(e, n->out, k), *x = value_name(e, n->in[0], k);
        if (gsq_onnx_opset(e->b) >= 20) {
            GSQ_ONNX_OP(e->b, "Gelu", out, x);
            continue;
        }
        const char *t = op2(e, "Div", out, "scaled", x, gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/sqrt2", out), 1.41421356f));
        t = op1(e, "Erf", out, "erf", t);
        t = op2(e, "Add", out, "one_plus", t, gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/one", out), 1.0f));
        t = op2(e, "Mul", out, "times_x", x, t);
        GSQ_ONNX_OP(e->b, "Mul", out, t, gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/half", out), 0.5f));
    }
}

static void emit_pool(exporter *e, const gsq_node *n)
{
    const gsq_value *xv = &e->g->values[n->in[0]];
    const char *x = value_name(e, n->in[0], 0);
    for (int k = 0; k < e->g->values[n->out].slices; k++) {
        const char *out = value_name(e, n->out, k);
        if (k > 0 || n->attrs[0] == GSQ_POOL_TOKEN) { /* token k */
            const char *index = gsq_onnx_tensor(e->b, gsq_onnx_name(e->b, "%s/token", out), GSQ_ONNX_INT64, 0, NULL,
                                                &(int64_t){k});
            GSQ_ONNX_OP(e->b, "Gather", out, x, index);
            gsq_onnx_attr_int(e->b, "axis", 1);
            continue;
        }
        const int64_t start[1] = {n->attrs[2]}, end[1] = {xv->rows}, axes[1] = {1};
        const char *t = GSQ_ONNX_OP(e->b, "Slice", gsq_onnx_name(e->b, "%s/tokens", out), x,
                                    ints(e, out, "start", 1, start), ints(e, out, "end", 1, end),
                                    ints(e, out, "axes", 1, axes));
        if (gsq_onnx_opset(e->b) >= 18) {
            GSQ_ONNX_OP(e->b, "ReduceMean", out, t, ints(e, out, "mean_axes", 1, axes));
        } else {
            GSQ_ONNX_OP(e->b, "ReduceMean", out, t);
            gsq_onnx_attr_ints(e->b, "axes", 1, axes);
        }
        gsq_onnx_attr_int(e->b, "keepdims", 0);
    }
}

/* y = Gather(x with one zero row appended, map, axis 1): the rows of x that map names (-1: the
 * zero row, appended only when some row is one). */
static const char *gather_rows(exporter *e, const char *base, const char *out, const char *x, int n, const int *map,
                               int x_rows)
{
    int64_t *index = malloc((size_t)n * sizeof *index);
    if (!index) {
        gsq_onnx_fail(e->b);
        return out;
    }
    int padded = 0;
    for (int i = 0; i < n; i++) {
        padded |= map[i] < 0;
        index[i] = map[i] < 0 ? x_rows : map[i];
    }
    if (padded) {
        const int64_t pads[6] = {0, 0, 0, 0, 1, 0};
        x = op2(e, "Pad", base, "padded", x, ints(e, base, "pads", 6, pads));
    }
    const char *y = GSQ_ONNX_OP(e->b, "Gather", out, x, ints(e, base, "rows", n, index));
    gsq_onnx_attr_int(e->b, "axis", 1);
    free(index);
    return y;
}

static void emit_window(exporter *e, const gsq_node *n, int reverse)
{
    gsq_window_geom w = gsq_node_window(n);
    int G2 = w.grid * w.grid, rows = gsq_window_count(w) * w.window * w.window;
    int *map = malloc((size_t)(rows > G2 ? rows : G2) * sizeof *map);
    if (!map) {
        gsq_onnx_fail(e->b);
        return;
    }
    gsq_window_rows(w, reverse, map);
    const char *out = value_name(e, n->out, 0), *x = value_name(e, n->in[0], 0);
    int residual = reverse && n->in[1] >= 0;
    const char *y = gather_rows(e, out, residual ? gsq_onnx_name(e->b, "%s/grid", out) : out, x, reverse ? G2 : rows,
                                map, reverse ? rows : G2);
    if (residual) GSQ_ONNX_OP(e->b, "Add", out, y, value_name(e, n->in[1], 0));
    free(map);
}

static void emit_merge(exporter *e, const gsq_node *n)
{
    int G = n->attrs[0], M = (G + 1) / 2, C = e->g->values[n->in[0]].cols;
    int *map = malloc((size_t)M * M * 4 * sizeof *map);
    if (!map) {
        gsq_onnx_fail(e->b);
        return;
    }
    gsq_merge_rows(G, map);
    const char *out = value_name(e, n->out, 0);
    const char *y = gather_rows(e, out, gsq_onnx_name(e->b, "%s/parts", out), value_name(e, n->in[0], 0), M * M * 4,
                                map, G * G);
    const int64_t shape[3] = {-1, M * M, 4 * C};
    GSQ_ONNX_OP(e->b, "Reshape", out, y, ints(e, out, "shape", 3, shape));
    free(map);
}

static void emit_attention(exporter *e, const gsq_node *n)
{
    const gsq_graph *g = e->g;
    int rows = g->values[n->in[0]].rows, D = g->values[n->out].cols, H = n->attrs[0], HD = D / H;
    int T = gsq_attention_tokens(g, n);
    const char *out = value_name(e, n->out, 0);
    const float *qkv_scales = e->quantized ? gsq_model_quant_attention_scales(e->m, n->block) : NULL;

    const int64_t split[5] = {-1, T, 3, H, HD}, perm[5] = {2, 0, 3, 1, 4};
    const char *x = reshape(e, out, "heads", value_name(e, n->in[0], 0), 5, split);
    x = transpose(e, out, "qkv", x, 5, perm); /* (3, sequences, H, T, HD) */
    const char *qkv[3], *what[3] = {"q", "k", "v"};
    for (int k = 0; k < 3; k++) {
        const char *index = gsq_onnx_tensor(e->b, gsq_onnx_name(e->b, "%s/%s_index", out, what[k]), GSQ_ONNX_INT64, 0,
                                            NULL, &(int64_t){k});
        qkv[k] = op2(e, "Gather", out, what[k], x, index);
        gsq_onnx_attr_int(e->b, "axis", 0);
        if (qkv_scales && e->o->target == GSQ_EXPORT_ORT) /* TensorRT's pairs sit after the qkv GEMM */
            qkv[k] = qdq(e, gsq_onnx_name(e->b, "%s/%s", out, what[k]), qkv[k], qkv_scales[k], e->act_qmax, 1);
    }
    const int64_t kt_perm[4] = {0, 1, 3, 2};
    const char *s = op2(e, "MatMul", out, "qk", qkv[0], transpose(e, out, "k_t", qkv[1], 4, kt_perm));
    s = op2(e, "Mul", out, "scores", s,
            gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/scale", out), 1.0f / sqrtf((float)HD)));
    if (n->param[0] >= 0) { /* Swin: relative position bias, and the shifted windows' mask */
        gsq_attn_bias ab = {param(e, n->param[0]), gsq_node_window(n)};
        int windows = gsq_attn_bias_windows(&ab);
        float *bias = malloc((size_t)windows * H * T * T * sizeof *bias);
        if (!bias) {
            gsq_onnx_fail(e->b);
            return;
        }
        gsq_attn_bias_expand(bias, &ab, H);
        const int64_t dims[4] = {windows, H, T, T};
        const char *c = gsq_onnx_tensor(e->b, gsq_onnx_name(e->b, "%s/bias", out), GSQ_ONNX_FLOAT, 4, dims, bias);
        free(bias);
        if (windows == 1) {
            s = op2(e, "Add", out, "biased", s, c);
        } else { /* sequence i is window i mod windows of its image */
            const int64_t per_image[5] = {-1, windows, H, T, T}, back[4] = {-1, H, T, T};
            s = reshape(e, out, "per_image", s, 5, per_image);
            s = op2(e, "Add", out, "masked", s, c);
            s = reshape(e, out, "biased", s, 4, back);
        }
    }
    const char *p = op1(e, "Softmax", out, "probs", s);
    gsq_onnx_attr_int(e->b, "axis", -1);
    if (qkv_scales) /* probabilities in [0, 1] at the fixed scale 1/qmax */
        p = qdq(e, gsq_onnx_name(e->b, "%s/probs", out), p, 1.0f / (float)e->act_qmax, e->act_qmax, 0);
    const int64_t heads_back[4] = {0, 2, 1, 3}, merged[3] = {-1, rows, D};
    x = op2(e, "MatMul", out, "context", p, qkv[2]);
    x = transpose(e, out, "context_t", x, 4, heads_back);
    GSQ_ONNX_OP(e->b, "Reshape", out, x, ints(e, out, "shape", 3, merged));
}

static void emit_node(exporter *e, const gsq_node *n)
{
    switch (n->op) {
    case GSQ_OP_PATCHIFY: emit_patchify(e, n); break;
    case GSQ_OP_LINEAR: emit_linear(e, n); break;
    case GSQ_OP_TOKENS: emit_tokens(e, n); break;
    case GSQ_OP_LAYERNORM: emit_layernorm(e, n); break;
    case GSQ_OP_ATTENTION: emit_attention(e, n); break;
    case GSQ_OP_GELU: emit_gelu(e, n); break;
    case GSQ_OP_POOL: emit_pool(e, n); break;
    case GSQ_OP_MEAN2: {
        const char *out = value_name(e, n->out, 0);
        const char *s = op2(e, "Add", out, "sum", value_name(e, n->in[0], 0), value_name(e, n->in[1], 0));
        GSQ_ONNX_OP(e->b, "Mul", out, s, gsq_onnx_float(e->b, gsq_onnx_name(e->b, "%s/half", out), 0.5f));
        break;
    }
    case GSQ_OP_WINDOW: emit_window(e, n, 0); break;
    case GSQ_OP_UNWINDOW: emit_window(e, n, 1); break;
    case GSQ_OP_MERGE: emit_merge(e, n); break;
    case GSQ_OP_ROWS: {
        const char *out = value_name(e, n->out, 0);
        const int64_t start[1] = {n->attrs[0]}, end[1] = {n->attrs[0] + e->g->values[n->out].rows}, axes[1] = {1};
        GSQ_ONNX_OP(e->b, "Slice", out, value_name(e, n->in[0], 0), ints(e, out, "start", 1, start),
                    ints(e, out, "end", 1, end), ints(e, out, "axes", 1, axes));
        break;
    }
    case GSQ_OP_PREPEND: emit_prepend(e, n); break;
    case GSQ_OP_L2NORM: emit_l2norm(e, n); break;
    case GSQ_OP_MATMUL_NT: emit_matmul_nt(e, n); break;
    case GSQ_OP_CROSS_ATTENTION: /* a detector's, refused by gsq_export_onnx */
    case GSQ_OP_CONCAT:
    case GSQ_OP_COUNT: break;
    }
}

/* Names every value's slices. */
static gsq_status name_values(exporter *e)
{
    const gsq_graph *g = e->g;
    int total = 0;
    e->first = malloc((size_t)g->num_values * sizeof *e->first);
    for (int v = 0; e->first && v < g->num_values; v++) total += g->values[v].slices;
    e->names = malloc((size_t)(total ? total : 1) * sizeof *e->names);
    if (!e->first || !e->names) return gsq_fail(e->err, GSQ_ERR_NOMEM, "ONNX export: out of memory");
    total = 0;
    for (int v = 0; v < g->num_values; v++) {
        const gsq_value *val = &g->values[v];
        e->first[v] = total;
        for (int k = 0; k < val->slices; k++)
            e->names[total++] = v == g->input ? "images"
                                : v == g->logits ? "logits"
                                : val->slices == 1 ? gsq_onnx_name(e->b, "%s", val->name)
                                                   : gsq_onnx_name(e->b, "%s.%d", val->name, k);
    }
    return GSQ_OK;
}

/* What a reader of the file needs to feed it and read its answer: metadata_props. */
static void describe(exporter *e)
{
    gsq_onnx *b = e->b;
    const gsq_model *m = e->m;
    int S = gsq_model_input_size(m), K = gsq_model_num_classes(m);
    gsq_transform t;
    gsq_transform_defaults(&t, S);
    gsq_onnx_meta(b, "gpusq.architecture", gsq_model_arch(m) == GSQ_ARCH_SWIN ? "swin" : "vit");
    gsq_onnx_meta(b, "gpusq.target", gsq_export_target_name(e->o->target));
    int C = gsq_model_in_chans(m), rgb = C == 3;
    gsq_onnx_meta(b, "gpusq.input", gsq_onnx_name(b, "images: float32 (batch, %d, %d, %d)%s", C, S, S,
                                                  rgb ? ", channels RGB, pixel/255 normalised by gpusq.mean and gpusq.std"
                                                      : ""));
    gsq_onnx_meta(b, "gpusq.input_size", gsq_onnx_name(b, "%d", S));
    if (rgb) { /* gpusq's eval transform (timm's): ImageNet's mean and std */
        gsq_onnx_meta(b, "gpusq.mean", gsq_onnx_name(b, "%g,%g,%g", (double)t.mean[0], (double)t.mean[1], (double)t.mean[2]));
        gsq_onnx_meta(b, "gpusq.std", gsq_onnx_name(b, "%g,%g,%g", (double)t.std[0], (double)t.std[1], (double)t.std[2]));
    }
    int G = gsq_model_output_grid(m);
    gsq_onnx_meta(b, "gpusq.output", G ? gsq_onnx_name(b, "logits: float32 (batch, %d, %d), a %d×%d map of class "
                                                          "scores before softmax", G * G, K, G, G)
                                       : gsq_onnx_name(b, "logits: float32 (batch, %d), before softmax", K));
    gsq_onnx_meta(b, "gpusq.quantization",
                  e->quantized ? gsq_onnx_name(b, "%s, attention %s", gsq_quant_mode_name(gsq_model_quant_mode(m)),
                                               gsq_model_quant_attention_scales(m, 0) ? "quantized" : "float")
                               : "none (float)");
    char name[256];
    if (gsq_model_class_name(m, 0, name, sizeof name)[0]) {
        size_t cap = 1, len = 0;
        for (int k = 0; k < K; k++) cap += strlen(gsq_model_class_name(m, k, name, sizeof name)) + 1;
        char *all = malloc(cap);
        if (!all) {
            gsq_onnx_fail(b);
            return;
        }
        for (int k = 0; k < K; k++) len += (size_t)sprintf(all + len, "%s%s", k ? "\n" : "", gsq_model_class_name(m, k, name, sizeof name));
        all[len] = 0;
        gsq_onnx_meta(b, "gpusq.class_names", all);
        free(all);
    }
}

void gsq_export_options_init(gsq_export_options *o)
{
    memset(o, 0, sizeof *o);
    o->target = GSQ_EXPORT_TENSORRT;
    o->opset = 17;
}

static const char *const target_names[] = {"tensorrt", "ort"};

const char *gsq_export_target_name(gsq_export_target t) { return (unsigned)t < 2 ? target_names[t] : "?"; }

gsq_status gsq_export_onnx(const gsq_model *m, const gsq_export_options *o, const char *path, gsq_error *err)
{
    if ((unsigned)o->target > GSQ_EXPORT_ORT) return gsq_fail(err, GSQ_ERR_ARG, "ONNX export: unknown target %d", (int)o->target);
    if (o->batch < 0) return gsq_fail(err, GSQ_ERR_ARG, "ONNX export: batch %d must be positive (0: dynamic)", o->batch);
    if (gsq_model_task(m) == GSQ_TASK_DETECT)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "ONNX export: detectors are not exported yet (run them with gpusq "
                        "run on the CPU)");
    if (m->quant && !gsq_model_quant_active(m))
        return gsq_fail(err, GSQ_ERR_ARG, "ONNX export: the model's quantizers are not calibrated (no activation scales "
                        "to export)");
    exporter e = {.m = m, .g = gsq_model_graph(m), .o = o, .err = err, .quantized = gsq_model_quant_active(m)};
    if (e.quantized) e.act_qmax = gsq_quant_qmax(gsq_quant_mode_act_bits(gsq_model_quant_mode(m)));
    gsq_status st = gsq_onnx_new(&e.b, o->opset, err);
    if (st == GSQ_OK) st = name_values(&e);
    if (st == GSQ_OK) {
        int64_t batch = o->batch ? o->batch : -1, S = gsq_model_input_size(m), G = gsq_model_output_grid(m);
        const int64_t in[4] = {batch, gsq_model_in_chans(m), S, S}, K = gsq_model_num_classes(m);
        gsq_onnx_io(e.b, 0, "images", 4, in, in[1] == 3 ? "RGB images (batch, channels, height, width), pixel/255 "
                    "normalised by gpusq.mean and gpusq.std" : "images (batch, channels, height, width)");
        if (G) /* a segmenter's */
            gsq_onnx_io(e.b, 1, "logits", 3, (const int64_t[]){batch, G * G, K}, "per-patch class scores before "
                        "softmax (batch, grid², classes), the grid's rows in order");
        else
            gsq_onnx_io(e.b, 1, "logits", 2, (const int64_t[]){batch, K}, "class scores before softmax (batch, classes)");
        for (int i = 0; i < e.g->num_nodes && e.st == GSQ_OK; i++) emit_node(&e, &e.g->nodes[i]);
        describe(&e);
        st = e.st;
    }
    if (st == GSQ_OK)
        st = gsq_onnx_write(e.b, gsq_model_arch(m) == GSQ_ARCH_SWIN ? "gpusq_swin" : "gpusq_vit",
                            "exported by gpusq export (docs/EXPORT.md)", path, err);
    gsq_onnx_free(e.b);
    free(e.names);
    free(e.first);
    return st;
}
