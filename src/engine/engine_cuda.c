/* The engine on a GPU (cuda_backend.h): the CPU engine's plan — the same steps compiled from the
 * network's graph (engine_plan.h), the same linear codes, scales and float parameters — copied to
 * the device, and each step a kernel launch:
 *
 *   INT8 (sparse or dense): the patch extraction, LayerNorm and the attention write the next
 *   linear's int8 codes where they feed one (a LayerNorm before Swin's window partition writes
 *   them in window order, padding rows zero); Swin's reverse partition and patch merging gather
 *   rows by maps made once (engine.c), and its attention adds the expanded bias; a linear with a residual adds into the float residual
 *   stream in its epilogue, and one followed by GELU applies it there and writes the next linear's
 *   codes. Every compressed linear on tensor cores (mma.sp for 2:4 codes, mma otherwise:
 *   src/kernels/cuda/gemm_i8.cu).
 *   FP16 (the baseline): the float weights in fp16 on cuBLASLt with its bias / GELU epilogues,
 *   LayerNorm and attention in fp32 math on fp16 activations, the residual stream in fp32.
 *
 * Pooling, the final LayerNorm and the classifier heads run in float (src/kernels/cuda/ops.h); the
 * mask transformer's own operations have no kernels, and a model with that head is refused. Times
 * per part come from CUDA events recorded between the steps, read after the pass. This file
 * is built into the CUDA backend library (libgpusq_cuda.so) only, and reached through the table at
 * its end (cuda_backend.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cuda_backend.h"

#include "gpusq/cuda.h"
#include "gpusq/half.h"
#include "gpusq/sparse.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

typedef struct {
    int rows, cols;
    gsq_cuda_i8_weight *w; /* INT8 layouts */
    float *scale;          /* INT8: the per-row output scales, on the device */
    uint16_t *wh, *bias;   /* FP16: the weight (rows, cols) and bias in fp16, on the device */
    gsq_cuda_blas *plan;   /* FP16: planned for plan_m rows of input */
    int plan_m;
} cuda_linear;

struct gsq_engine_cuda {
    int fp16, num_linears;
    cuda_linear *linears;
    float *fparams;              /* the device copy of e->fparams */
    float *images;               /* (B, C, S, S) */
    float *act;                  /* the plan's arena (FP16: a compressed linear's output is half there) */
    void *in[2];                 /* the compressed linears' input buffers: int8 codes at row stride
                                  * round4(cols), or half */
    void *y;                     /* FP16: a linear's output before its residual add */
    float *host_logits;          /* pinned */
    int num_events;
    cudaEvent_t *events;         /* one per lap, and a first */
    int *event_part;             /* the part each lap closes */
    float **bias;                /* (attentions) e->att_bias on the device, or NULL */
    int **maps;                  /* (nodes) e->row_maps on the device, or NULL */
    unsigned char *half;         /* (values) 1 where a value holds fp16 (half_value) */
    int num_attentions, num_nodes;
};

static int round4(int n) { return (n + 3) / 4 * 4; }

static void engine_free(struct gsq_engine_cuda *c)
{
    if (!c) return;
    for (int s = 0; c->linears && s < c->num_linears; s++) {
        cuda_linear *t = &c->linears[s];
        gsq_cuda_i8_weight_free(t->w);
        gsq_cuda_blas_free(t->plan);
        cudaFree(t->scale);
        cudaFree(t->wh);
        cudaFree(t->bias);
    }
    free(c->linears);
    void *bufs[] = {c->fparams, c->images, c->act, c->in[0], c->in[1], c->y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    cudaFreeHost(c->host_logits);
    for (int i = 0; c->events && i < c->num_events; i++)
        if (c->events[i]) cudaEventDestroy(c->events[i]);
    free(c->events);
    free(c->event_part);
    for (int l = 0; c->bias && l < c->num_attentions; l++) cudaFree(c->bias[l]);
    for (int i = 0; c->maps && i < c->num_nodes; i++) cudaFree(c->maps[i]);
    free(c->bias);
    free(c->maps);
    free(c->half);
    free(c);
}

/* GSQ_ERR_UNSUPPORTED for a graph with an operation no kernel here runs: the mask transformer's
 * (its class embeddings, normalised rows and masks) and a detector's (cross-attention, joins, and
 * its queries put before the memory as the class embeddings are); a detector is named by its
 * cross-attention. */
static gsq_status check_ops(const gsq_graph *g, gsq_error *err)
{
    const gsq_node *refused = NULL;
    for (int i = 0; i < g->num_nodes; i++) {
        gsq_op op = g->nodes[i].op;
        if (op == GSQ_OP_CROSS_ATTENTION) {
            refused = &g->nodes[i];
            break;
        }
        if (!refused && (op == GSQ_OP_PREPEND || op == GSQ_OP_L2NORM || op == GSQ_OP_MATMUL_NT || op == GSQ_OP_CONCAT))
            refused = &g->nodes[i];
    }
    if (!refused) return GSQ_OK;
    gsq_op op = refused->op;
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda engine: the %s head's %s is not implemented on GPUs (run it on "
                    "the CPU)", op == GSQ_OP_CROSS_ATTENTION ? "detector" : "mask-transformer", gsq_op_name(op));
}

static gsq_status engine_create(gsq_engine *e, gsq_error *err)
{
    gsq_status st = check_ops(e->graph, err);
    if (st != GSQ_OK) return st;
    if (gsq_cuda_device_count() < 1)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "engine: no CUDA device (no GPU, or no driver)");
    int dev_id = 0, major = 0, minor = 0;
    cudaError_t ce = cudaGetDevice(&dev_id);
    if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev_id);
    if (ce == cudaSuccess) ce = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev_id);
    if (ce != cudaSuccess) return gsq_cuda_fail(err, ce, "device properties");
    if (major < 8)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "engine: the GPU is sm_%d%d; the tensor-core kernels need sm_80 "
                        "or later", major, minor);
    struct gsq_engine_cuda *c = calloc(1, sizeof *c);
    if (!c) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    e->cuda = c; /* freed with e from here on */
    c->fp16 = e->layout == GSQ_ENGINE_FP16;
    c->num_linears = e->graph->num_linears;
    c->num_events = e->plan.num_steps + 3; /* a lap per step and the two transfers, and a first */
    c->linears = calloc((size_t)c->num_linears, sizeof *c->linears);
    c->events = calloc((size_t)c->num_events, sizeof *c->events);
    c->event_part = calloc((size_t)c->num_events, sizeof *c->event_part);
    c->num_attentions = e->graph->num_attentions, c->num_nodes = e->graph->num_nodes;
    c->bias = calloc((size_t)c->num_attentions + 1, sizeof *c->bias);
    c->maps = calloc((size_t)c->num_nodes, sizeof *c->maps);
    if (!c->linears || !c->events || !c->event_part || !c->bias || !c->maps)
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; i < c->num_events; i++)
        if ((ce = cudaEventCreate(&c->events[i])) != cudaSuccess)
            return gsq_cuda_fail(err, ce, "creating events");
    return GSQ_OK;
}

/* bytes of host copied into a new device allocation *dst. */
static gsq_status upload_new(void **dst, const void *host, size_t bytes, gsq_error *err)
{
    gsq_status st = gsq_cuda_malloc(dst, bytes, err);
    return st == GSQ_OK ? gsq_cuda_upload(*dst, host, bytes, err) : st;
}

/* float values in fp16 on the device, as *dst. */
static gsq_status upload_half(uint16_t **dst, const float *values, size_t n, gsq_error *err)
{
    uint16_t *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    gsq_f32_to_f16_n(values, h, n);
    gsq_status st = upload_new((void **)dst, h, n * sizeof *h, err);
    free(h);
    return st;
}

static gsq_status engine_linear(gsq_engine *e, int s, const int8_t *codes, const float *weights, int rows, int cols,
                                int sparse, gsq_error *err)
{
    cuda_linear *t = &e->cuda->linears[s];
    t->rows = rows, t->cols = cols;
    if (e->cuda->fp16) {
        e->weight_bytes += (size_t)rows * cols * sizeof(uint16_t);
        return upload_half(&t->wh, weights, (size_t)rows * cols, err);
    }
    gsq_status st = GSQ_OK;
    if (sparse) { /* the compressed file's form, which the upload reorders for mma.sp */
        size_t words = (size_t)gsq_sparse_meta_words(GSQ_SPARSE_2_4, cols);
        int8_t *values = malloc((size_t)rows * cols / 2);
        uint16_t *meta = calloc((size_t)rows * words, sizeof *meta);
        if (!values || !meta) st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
        for (int r = 0; st == GSQ_OK && r < rows; r++)
            gsq_sparse_compress_row(codes + (size_t)r * cols, cols, GSQ_SPARSE_2_4, values + (size_t)r * cols / 2, meta + r * words);
        if (st == GSQ_OK) st = gsq_cuda_i8_weight_sparse(&t->w, values, meta, rows, cols, err);
        free(values);
        free(meta);
    } else {
        st = gsq_cuda_i8_weight_dense(&t->w, codes, rows, cols, err);
    }
    if (st == GSQ_OK) st = upload_new((void **)&t->scale, e->linears[s].scale, (size_t)rows * sizeof(float), err);
    if (st == GSQ_OK) e->weight_bytes += gsq_cuda_i8_weight_bytes(t->w);
    return st;
}

/* The device address of parameter tensor t (NULL for -1). */
static const float *param(const gsq_engine *e, int t) { return t < 0 ? NULL : e->cuda->fparams + e->fat[t]; }
/* The device buffer of value v in the arena. */
static void *value(const gsq_engine *e, int v) { return e->cuda->act + e->plan.at[v]; }

static gsq_status engine_finish(gsq_engine *e, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_graph *g = e->graph;
    size_t B = (size_t)e->max_batch, in_bytes = 0, y_bytes = 0;
    for (int i = 0; i < g->num_nodes; i++) { /* the largest input of a compressed linear, and output */
        const gsq_node *n = &g->nodes[i];
        if (n->op != GSQ_OP_LINEAR || !g->linears[n->linear].compressed) continue;
        const gsq_linear *l = &g->linears[n->linear];
        size_t rows = B * (size_t)g->values[n->in[0]].rows;
        size_t bytes = rows * (c->fp16 ? 2 * (size_t)l->cols : (size_t)round4(l->cols));
        in_bytes = bytes > in_bytes ? bytes : in_bytes;
        y_bytes = rows * l->rows * 2 > y_bytes ? rows * l->rows * 2 : y_bytes;
    }
    gsq_status st = upload_new((void **)&c->fparams, e->fparams, e->num_fparams * sizeof(float), err);
    for (int i = 0; st == GSQ_OK && i < g->num_nodes; i++) { /* Swin's tables (engine.c made them) */
        const gsq_node *n = &g->nodes[i];
        if (e->row_maps[i])
            st = upload_new((void **)&c->maps[i], e->row_maps[i], (size_t)gsq_engine_map_rows(g, n) * sizeof(int), err);
        if (st == GSQ_OK && n->op == GSQ_OP_ATTENTION && e->att_bias[n->block])
            st = upload_new((void **)&c->bias[n->block], e->att_bias[n->block],
                            gsq_engine_bias_floats(e, n) * sizeof(float), err);
    }
    /* which values hold fp16 (half_value), decided once */
    if (st == GSQ_OK && !(c->half = calloc((size_t)g->num_values, 1)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int v = 0; st == GSQ_OK && c->fp16 && v < g->num_values; v++) {
        int p = g->values[v].producer;
        c->half[v] = p >= 0 && g->nodes[p].op == GSQ_OP_LINEAR && g->linears[g->nodes[p].linear].compressed &&
                     g->nodes[p].in[1] < 0;
    }
    for (int i = 0; st == GSQ_OK && i < g->num_nodes; i++) /* a residual stream stays float */
        if (g->nodes[i].in[1] >= 0) c->half[g->nodes[i].in[1]] = 0;
    for (int s = 0; st == GSQ_OK && c->fp16 && s < g->num_linears; s++)
        if (g->linears[s].compressed && g->linears[s].bias >= 0)
            st = upload_half(&c->linears[s].bias, e->fparams + e->fat[g->linears[s].bias], (size_t)g->linears[s].rows,
                             err);
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&c->images, B * gsq_value_floats(g, g->input) * sizeof(float)},
        {(void **)&c->act, e->plan.floats * sizeof(float)},
        {&c->in[0], in_bytes},
        {&c->in[1], in_bytes},
        {&c->y, c->fp16 ? y_bytes : 0},
    };
    for (size_t i = 0; st == GSQ_OK && i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i].bytes) st = gsq_cuda_malloc(bufs[i].p, bufs[i].bytes, err);
    size_t K = B * gsq_value_floats(g, g->logits);
    cudaError_t ce = st == GSQ_OK ? cudaMallocHost((void **)&c->host_logits, K * sizeof(float)) : cudaSuccess;
    if (ce != cudaSuccess) {
        c->host_logits = NULL;
        st = gsq_cuda_fail(err, ce, "pinned memory for the logits");
    }
    return st;
}

/* The end of part p: an event, whose time since the previous one counts to p. */
static gsq_status lap(struct gsq_engine_cuda *c, int *n, int p, gsq_error *err)
{
    c->event_part[*n] = p;
    cudaError_t ce = cudaEventRecord(c->events[++*n], 0);
    return ce == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, ce, "recording an event");
}

/* y (M, N) half = x (M, K) half · wᵀ + bias, GELU'd when gelu: FP16 linear s on cuBLASLt, planned
 * again whenever M changes. */
static gsq_status gemm_f16(gsq_engine *e, int s, const void *x, int M, int gelu, void *y, gsq_error *err)
{
    cuda_linear *t = &e->cuda->linears[s];
    gsq_status st = GSQ_OK;
    if (t->plan_m != M) {
        gsq_cuda_blas_free(t->plan);
        t->plan = NULL, t->plan_m = 0;
        st = gsq_cuda_blas_create(&t->plan, GSQ_CUDA_BLAS_F16, M, t->rows, t->cols, t->bias, gelu, err);
        if (st == GSQ_OK) t->plan_m = M;
    }
    return st == GSQ_OK ? gsq_cuda_blas_run(t->plan, x, t->wh, y, err) : st;
}

/* 1 when value v holds half values: in FP16, a compressed linear's output with no residual added,
 * unless v is itself a residual (some node adds into it: Swin's patch merging reduction starts a
 * stage's residual stream), which stays float (engine_finish decides it). */
static int half_value(const gsq_engine *e, int v) { return e->cuda->half[v]; }

/* The compressed linear of step t on M rows, from the input buffer the step before fed: its int8
 * codes (half for FP16) to the next linear's input buffer, or floats (half for FP16, except when
 * added into the residual stream). */
static gsq_status linear(gsq_engine *e, const gsq_engine_step *t, const gsq_node *n, int M, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_linear *l = &e->graph->linears[n->linear];
    int ld = round4(l->cols);
    void *out = t->feeds >= 0 ? c->in[t->output] : value(e, t->out);
    if (t->input < 0) /* the fusions have every compressed linear fed by the step before it */
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda engine: %s reads a value no step wrote as its input", l->name);
    if (c->fp16) { /* half out, except into (or as) a float residual stream */
        const void *x = c->in[t->input];
        int to_float = t->feeds < 0 && !t->accumulate && !half_value(e, n->out);
        void *y = t->accumulate || to_float ? c->y : out;
        gsq_status st = gemm_f16(e, n->linear, x, M, t->gelu, y, err);
        if (st == GSQ_OK && t->accumulate) st = gsq_cuda_add_f16(value(e, t->out), c->y, (size_t)M * l->rows, err);
        if (st == GSQ_OK && to_float) st = gsq_cuda_f16_to_f32(value(e, t->out), c->y, (size_t)M * l->rows, err);
        return st;
    }
    const cuda_linear *w = &c->linears[n->linear];
    gsq_cuda_epilogue ep = {.out = t->feeds >= 0 ? GSQ_CUDA_OUT_S8 : GSQ_CUDA_OUT_F32, .scale = w->scale,
                            .bias = param(e, l->bias), .gelu = t->gelu, .accumulate = t->accumulate,
                            .out_inv = t->feeds >= 0 ? e->linears[t->feeds].inv_a : 0.0f, .out_qmax = e->a_qmax};
    int ldy = t->feeds >= 0 ? round4(e->graph->linears[t->feeds].cols) : l->rows;
    return gsq_cuda_i8_gemm(w->w, (const int8_t *)c->in[t->input], ld, M, &ep, out, ldy, err);
}

/* The attention of step t over B images: B · rows / T sequences of T tokens (Swin's windows), with
 * Swin's bias where it has one. */
static gsq_status attention(gsq_engine *e, const gsq_engine_step *t, const gsq_node *n, int B, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_graph *g = e->graph;
    int T = gsq_attention_tokens(g, n), D = g->values[n->out].cols, NH = n->attrs[0], q = e->a_qmax;
    int S = B * (g->values[n->in[0]].rows / T), windows = e->att_windows[n->block];
    const float *bias = c->bias[n->block];
    if (t->feeds < 0 && !c->fp16)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda engine: an attention whose output is not a linear's input");
    if (c->fp16) return gsq_cuda_attention_f16(c->in[t->output], value(e, n->in[0]), S, T, D, NH, bias, windows, err);
    const gsq_engine_linear *next = &e->linears[t->feeds];
    int ld = round4(g->linears[t->feeds].cols);
    if (e->attention)
        return gsq_cuda_attention_i8(c->in[t->output], ld, next->inv_a, q, value(e, n->in[0]), S, T, D, NH,
                                     e->qkv_scales + 3 * n->block, q, bias, windows, err);
    return gsq_cuda_attention_f32(c->in[t->output], ld, next->inv_a, q, value(e, n->in[0]), S, T, D, NH, bias, windows,
                                  err);
}

/* Step t's LayerNorm over B images: the rows it reads (through a window partition fused into it,
 * gsq_cuda_rows), and how many it writes. */
static gsq_cuda_rows norm_rows(const gsq_engine *e, const gsq_engine_step *t, const gsq_node *n, int B, int *M)
{
    const gsq_graph *g = e->graph;
    gsq_cuda_rows r = {NULL, 1, 1, half_value(e, n->in[0])};
    *M = (int)gsq_node_rows(g, n, B);
    if (t->window >= 0) {
        r.map = e->cuda->maps[t->window];
        r.rows = g->values[g->nodes[t->window].out].rows;
        r.x_rows = g->values[n->in[0]].rows;
        *M = B * r.rows;
    }
    return r;
}

static gsq_status run_step(gsq_engine *e, const gsq_engine_step *t, int B, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_graph *g = e->graph;
    const gsq_node *n = &g->nodes[t->node];
    const gsq_value *xv = &g->values[n->in[0]], *yv = &g->values[n->out];
    int rows = (int)gsq_node_rows(g, n, B);
    switch (n->op) {
    case GSQ_OP_PATCHIFY: {
        int C = n->attrs[0], S = n->attrs[1], P = n->attrs[2];
        if (t->feeds < 0) break; /* the fusions always feed the patch embedding */
        if (c->fp16) return gsq_cuda_patchify_f16(c->in[t->output], c->images, B, C, S, P, err);
        return gsq_cuda_patchify_i8(c->in[t->output], round4(g->linears[t->feeds].cols), c->images, B, C, S, P,
                                    e->linears[t->feeds].inv_a, e->a_qmax, err);
    }
    case GSQ_OP_LINEAR: {
        const gsq_linear *l = &g->linears[n->linear];
        if (l->compressed) return linear(e, t, n, rows, err);
        const float *x = value(e, n->in[0]);
        x += gsq_node_slice_offset(g, n, B);
        return gsq_cuda_linear_f32(value(e, t->out), x, rows, l->cols, l->rows, param(e, l->weight), param(e, l->bias),
                                   err);
    }
    case GSQ_OP_TOKENS: /* after a compressed linear the embeddings are half in FP16 */
        return gsq_cuda_tokens(value(e, t->out), value(e, n->in[0]), half_value(e, n->in[0]), param(e, n->param[0]),
                               param(e, n->param[1]), param(e, n->param[2]), B, xv->rows, xv->cols, err);
    case GSQ_OP_LAYERNORM: {
        const float *w = param(e, n->param[0]), *b = param(e, n->param[1]);
        int M;
        gsq_cuda_rows src = norm_rows(e, t, n, B, &M);
        if (t->feeds < 0) return gsq_cuda_layernorm_f32(value(e, t->out), value(e, n->in[0]), M, xv->cols, w, b,
                                                        n->eps, &src, err);
        if (c->fp16) return gsq_cuda_layernorm_f16(c->in[t->output], value(e, n->in[0]), M, xv->cols, w, b, n->eps,
                                                   &src, err);
        return gsq_cuda_layernorm_i8(c->in[t->output], round4(g->linears[t->feeds].cols), value(e, n->in[0]), M,
                                     xv->cols, w, b, n->eps, e->linears[t->feeds].inv_a, e->a_qmax, &src, err);
    }
    case GSQ_OP_ATTENTION:
        return attention(e, t, n, B, err);
    case GSQ_OP_POOL:
        return gsq_cuda_pool(value(e, t->out), value(e, n->in[0]), B, xv->rows, xv->cols, n->attrs[0] == GSQ_POOL_AVG,
                             yv->slices, n->attrs[2], err);
    case GSQ_OP_MEAN2:
        return gsq_cuda_mean2(value(e, t->out), value(e, n->in[0]), value(e, n->in[1]), (size_t)rows * xv->cols, err);
    case GSQ_OP_WINDOW: /* a partition no LayerNorm wrote through (the plan fuses Swin's) */
    case GSQ_OP_MERGE:
    case GSQ_OP_ROWS:
        return gsq_cuda_gather_rows(value(e, t->out), value(e, n->in[0]), half_value(e, n->in[0]), NULL, 0,
                                    c->maps[t->node], B, xv->rows, gsq_engine_map_rows(g, n), xv->cols, err);
    case GSQ_OP_UNWINDOW: /* with the residual, added in place when the plan lets it accumulate */
        return gsq_cuda_gather_rows(value(e, t->out), value(e, n->in[0]), half_value(e, n->in[0]),
                                    n->in[1] >= 0 && !t->accumulate ? value(e, n->in[1]) : NULL, t->accumulate,
                                    c->maps[t->node], B, xv->rows, yv->rows, yv->cols, err);
    case GSQ_OP_GELU:
    case GSQ_OP_PREPEND: /* refused when the engine was made (check_ops) */
    case GSQ_OP_L2NORM:
    case GSQ_OP_MATMUL_NT:
    case GSQ_OP_CROSS_ATTENTION:
    case GSQ_OP_CONCAT:
    case GSQ_OP_COUNT:
        break;
    }
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda engine: no kernel for this step (a GELU not after a linear)");
}

static gsq_status engine_forward(gsq_engine *e, const float *images, int B, const float **logits, gsq_error *err)
{
    struct gsq_engine_cuda *c = e->cuda;
    const gsq_graph *g = e->graph;
    size_t K = (size_t)B * gsq_value_floats(g, g->logits), pixels = (size_t)B * gsq_value_floats(g, g->input);
    int n = 0, transfer = e->plan.num_parts - 1; /* engine.c adds "transfer" last */
    cudaError_t ce = cudaEventRecord(c->events[0], 0);
    gsq_status st = ce == cudaSuccess ? gsq_cuda_upload(c->images, images, pixels * sizeof(float), err)
                                      : gsq_cuda_fail(err, ce, "recording an event");
    if (st == GSQ_OK) st = lap(c, &n, transfer, err);
    for (int s = 0; st == GSQ_OK && s < e->plan.num_steps; s++) {
        st = run_step(e, &e->plan.steps[s], B, err);
        if (st == GSQ_OK) st = lap(c, &n, e->plan.steps[s].part, err);
    }
    if (st == GSQ_OK) st = gsq_cuda_download(c->host_logits, value(e, g->logits), K * sizeof(float), err);
    if (st == GSQ_OK) st = lap(c, &n, transfer, err);
    if (st == GSQ_OK && (ce = cudaEventSynchronize(c->events[n])) != cudaSuccess)
        st = gsq_cuda_fail(err, ce, "the forward pass");
    for (int i = 0; st == GSQ_OK && i < n; i++) {
        float ms = 0.0f;
        if ((ce = cudaEventElapsedTime(&ms, c->events[i], c->events[i + 1])) != cudaSuccess)
            st = gsq_cuda_fail(err, ce, "reading an event");
        e->times[c->event_part[i]] += 1e-3 * ms;
    }
    if (st != GSQ_OK) cudaDeviceSynchronize(); /* nothing of this pass still runs when we return */
    *logits = st == GSQ_OK ? c->host_logits : NULL;
    return st;
}

static gsq_status device_name(char *buf, size_t cap, gsq_error *err)
{
    int dev = 0;
    if (gsq_cuda_device_count() < 1) return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: no CUDA device (no GPU, or no driver)");
    cudaError_t ce = cudaGetDevice(&dev);
    return ce == cudaSuccess ? gsq_cuda_device_name(dev, buf, cap, err) : gsq_cuda_fail(err, ce, "current device");
}

const gsq_cuda_backend *gsq_cuda_backend_v1(void)
{
    static const gsq_cuda_backend table = {GSQ_CUDA_BACKEND_ABI, sizeof(gsq_engine), device_name, engine_create,
                                           engine_linear, engine_finish, engine_forward, engine_free};
    return &table;
}
