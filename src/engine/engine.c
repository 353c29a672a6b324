/* The engine (include/gpusq/engine.h): the plan built from a quantized model — its steps compiled
 * from the model's graph (engine_plan.h), its compressed linears packed as integer codes (kept
 * codes + metadata where sparse), per-row output scales (weight scale × input scale), the float
 * parameters — and buffers sized once; on the CPU, or handed to the CUDA backend library
 * (cuda_backend.h, opened when a GPU is asked for), which copies them to the GPU. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "kernels/cpu/attention_int8.h"
#include "cuda_backend.h"
#include "engine_state.h"
#include "gpusq/graph.h"
#include "gpusq/kernels.h"
#include "gpusq/vit_quant.h"
#include "io/compressed_codes.h"
#include "models/model_state.h"

void gsq_engine_free(gsq_engine *e)
{
    if (!e) return;
    if (e->cuda) e->gpu->engine_free(e->cuda);
    for (int s = 0; e->linears && s < e->graph->num_linears; s++) {
        gsq_i8_weight_free(&e->linears[s].w);
        free(e->linears[s].scale);
    }
    free(e->linears);
    for (int l = 0; e->att_bias && l < e->graph->num_attentions; l++) free(e->att_bias[l]);
    for (int i = 0; e->row_maps && i < e->graph->num_nodes; i++) free(e->row_maps[i]);
    free(e->row_maps);
    gsq_graph_free(e->graph);
    gsq_engine_plan_free(&e->plan);
    free(e->fparams);
    free(e->fat);
    free(e->qkv_scales);
    free(e->act);
    free(e->ln);
    free(e->att);
    free(e->att_q);
    free(e->codes[0]);
    free(e->codes[1]);
    free(e->att8);
    free(e->att_bias);
    free(e->att_windows);
    free(e->times);
    free(e);
}

/* Where the engine's plan comes from: a model with calibrated quantizers in memory, or a
 * compressed file's stored codes (no float copy of its weights). */
typedef struct {
    const gsq_model *m;                /* the configuration and parameter table (a file's: no parameters) */
    gsq_quant_mode mode;
    gsq_sparse_pattern pattern;      /* the one its sparse linears obey */
    int attention;                   /* 1: Q, K, V and the probabilities are quantized too */
    const gsq_st_file *f;            /* the file, or NULL for the model */
    const gsq_compressed_info *info; /* the file's */
    gsq_sparse_plan plan;            /* the model's linears that obey the pattern (the file writer's rule) */
} engine_source;

/* 1 when every group of 4 codes along a row holds at most 2 non-zero ones (mma.sp's 2:4). */
static int codes_obey_2_4(const int8_t *codes, int rows, int cols)
{
    if (cols % 4) return 0;
    for (size_t g = 0; g < (size_t)rows * cols; g += 4)
        if ((codes[g] != 0) + (codes[g + 1] != 0) + (codes[g + 2] != 0) + (codes[g + 3] != 0) > 2) return 0;
    return 1;
}

/* Compressed linear s of the source: its codes, per-row weight scales and input scale; whether it
 * runs sparse in `pattern` (a file: as stored, when that is the file's pattern); and its float
 * weights, for the FP16 layout (a file has none: codes × scales). */
static gsq_status source_linear(const engine_source *src, int s, gsq_sparse_pattern pattern, int8_t *codes,
                                float *wscale, float *act, int *sparse, const float **weights, gsq_error *err)
{
    const gsq_linear *lin = &src->m->graph->linears[s];
    const gsq_param *p = &src->m->tensors[lin->weight];
    int rows = lin->rows, cols = lin->cols;
    *weights = NULL;
    if (src->f) {
        gsq_status st = gsq_compressed_linear_codes(src->m, src->f, src->info, s, codes, wscale, act, sparse, err);
        if (st == GSQ_OK && pattern != src->pattern) *sparse = codes_obey_2_4(codes, rows, cols);
        return st;
    }
    *weights = src->m->params + p->offset;
    *act = gsq_model_quant_act_scale(src->m, s);
    *sparse = gsq_sparse_plan_prunes(&src->plan, s);
    return gsq_model_quant_weight_codes(src->m, s, codes, wscale, err);
}

/* Block l's Q, K, V scales (a source with quantized attention). */
static gsq_status source_attention(const engine_source *src, int l, float scales[3], gsq_error *err)
{
    if (src->f) return gsq_compressed_attention_scales(src->m, src->f, l, scales, err);
    memcpy(scales, gsq_model_quant_attention_scales(src->m, l), 3 * sizeof(float));
    return GSQ_OK;
}

static gsq_status pack_linears(gsq_engine *e, engine_source *src, gsq_sparse_pattern pattern, gsq_engine_layout layout,
                               gsq_error *err)
{
    int four = gsq_quant_mode_weight_bits(src->mode) == 4;
    gsq_status st = !src->f && layout == GSQ_ENGINE_SPARSE
                        ? gsq_sparse_plan_from_weights(&src->plan, src->m, pattern, 1, err) : GSQ_OK;
    for (int s = 0; s < e->graph->num_linears && st == GSQ_OK; s++) {
        const gsq_linear *lin = &src->m->graph->linears[s];
        if (!lin->compressed) continue; /* the classifier heads stay float */
        const gsq_param *p = &src->m->tensors[lin->weight];
        const char *name = lin->name;
        int rows = lin->rows, cols = lin->cols, obeys = 0;
        int8_t *codes = malloc(p->numel);
        float *decoded = NULL, a = 0.0f;
        const float *weights = NULL;
        gsq_engine_linear *packed = &e->linears[s];
        packed->scale = malloc((size_t)rows * sizeof(float));
        if (!codes || !packed->scale) st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory for %s", name);
        if (st == GSQ_OK) st = source_linear(src, s, pattern, codes, packed->scale, &a, &obeys, &weights, err);
        if (st == GSQ_OK && layout == GSQ_ENGINE_FP16 && !weights) { /* the file's weights: codes × scales */
            if (!(decoded = malloc(p->numel * sizeof(float))))
                st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory for %s", name);
            for (size_t i = 0; st == GSQ_OK && i < p->numel; i++) decoded[i] = (float)codes[i] * packed->scale[i / (size_t)cols];
            weights = decoded;
        }
        for (int r = 0; st == GSQ_OK && r < rows; r++) packed->scale[r] *= a;
        packed->inv_a = 1.0f / a;
        int sparse = layout == GSQ_ENGINE_SPARSE && obeys;
        gsq_i8_layout l = !sparse ? GSQ_I8_DENSE : (pattern == GSQ_SPARSE_4_8 ? GSQ_I8_SPARSE_4_8 : GSQ_I8_SPARSE_2_4);
        if (st == GSQ_OK && e->cuda)
            st = e->gpu->engine_linear(e, s, codes, weights, rows, cols, sparse, err);
        else if (st == GSQ_OK && (st = gsq_i8_pack(&packed->w, codes, rows, cols, l, four, e->isa, err)) == GSQ_OK)
            e->weight_bytes += packed->w.bytes;
        if (st == GSQ_OK) e->sparse_linears += sparse;
        free(codes);
        free(decoded);
    }
    gsq_sparse_plan_free(&src->plan);
    return st;
}

/* The float parameters (all but the compressed linears' weights) into e->fparams, each tensor's
 * place in e->fat: copied from the model, or read from the file. */
static gsq_status copy_floats(gsq_engine *e, const engine_source *src, gsq_error *err)
{
    const gsq_model *m = src->m;
    size_t total = 0;
    if (!(e->fat = calloc((size_t)m->num_tensors, sizeof *e->fat))) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int s = 0; s < e->graph->num_linears; s++)
        if (e->graph->linears[s].compressed) e->fat[e->graph->linears[s].weight] = SIZE_MAX;
    for (int i = 0; i < m->num_tensors; i++) {
        if (e->fat[i] == SIZE_MAX) continue;
        e->fat[i] = total;
        total += m->tensors[i].numel;
    }
    gsq_status st = GSQ_OK;
    e->num_fparams = total;
    if (!(e->fparams = malloc((total ? total : 1) * sizeof(float))))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; st == GSQ_OK && i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        if (e->fat[i] == SIZE_MAX) continue;
        if (src->f) st = gsq_st_read_f32(src->f, gsq_st_find(src->f, p->name), e->fparams + e->fat[i], p->numel, err);
        else memcpy(e->fparams + e->fat[i], m->params + p->offset, p->numel * sizeof(float));
    }
    return st;
}

/* The CPU's buffers for max_batch images: the plan's arena, LayerNorm's row buffers, the two input
 * buffers of the compressed linears (each large enough for any of them), and the attention's
 * scratch: the integer attention's where its fast path runs, else the float one's probabilities. */
static gsq_status alloc_buffers(gsq_engine *e, gsq_error *err)
{
    const gsq_graph *g = e->graph;
    size_t B = (size_t)e->max_batch, ln_cols = 0, codes = 0, att = 0, att8 = 0;
    int fast = e->attention && gsq_att8_fast(e->isa);
    for (int i = 0; i < g->num_nodes; i++) {
        const gsq_node *n = &g->nodes[i];
        const gsq_value *x = &g->values[n->in[0] >= 0 ? n->in[0] : n->out];
        if (n->op == GSQ_OP_LAYERNORM && (size_t)x->cols > ln_cols) ln_cols = (size_t)x->cols;
        if (n->op == GSQ_OP_LINEAR && g->linears[n->linear].compressed) {
            size_t bytes = gsq_i8_input_bytes(e->isa, (int)(B * (size_t)x->rows), g->linears[n->linear].cols);
            codes = bytes > codes ? bytes : codes;
        }
        if (n->op == GSQ_OP_ATTENTION) { /* Bs sequences of T tokens */
            size_t T = (size_t)gsq_attention_tokens(g, n), Bs = B * (size_t)x->rows / T, NH = (size_t)n->attrs[0];
            size_t HD = (size_t)g->values[n->out].cols / NH;
            att = Bs * NH * T * T > att ? Bs * NH * T * T : att;
            size_t s8 = Bs * NH * gsq_att8_scratch_bytes((int)T, (int)HD);
            att8 = s8 > att8 ? s8 : att8;
        }
    }
    e->row_threads = omp_get_max_threads();
    e->act = malloc((e->plan.floats ? e->plan.floats : 1) * sizeof(float));
    e->ln = malloc(((size_t)e->row_threads * ln_cols + 1) * sizeof(float));
    e->codes[0] = malloc(codes + 1);
    e->codes[1] = malloc(codes + 1);
    if (fast) e->att8 = malloc(att8);
    else e->att = malloc(att * sizeof(float) + 1);
    if (e->attention && !fast) e->att_q = malloc(att * sizeof(float) + 1);
    if (!e->act || !e->ln || !e->codes[0] || !e->codes[1] || (fast ? !e->att8 : !e->att) ||
        (e->attention && !fast && !e->att_q))
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory for a batch of %d", e->max_batch);
    return GSQ_OK;
}

/* Swin's tables, made once from the float parameters: each windowed attention's bias expanded
 * (gsq_attn_bias_expand) where the kernels read it whole — the CPU's integer attention, every GPU
 * attention — and on the GPU the row maps of the window partitions, their reverses and patch
 * merging, which its kernels gather rows by. */
static gsq_status swin_tables(gsq_engine *e, int cuda, gsq_error *err)
{
    const gsq_graph *g = e->graph;
    int expand = cuda || (e->attention && gsq_att8_fast(e->isa));
    if (cuda && !(e->row_maps = calloc((size_t)g->num_nodes, sizeof *e->row_maps)))
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int i = 0; i < g->num_nodes; i++) {
        const gsq_node *n = &g->nodes[i];
        if (n->op == GSQ_OP_ATTENTION && n->param[0] >= 0 && expand) {
            gsq_attn_bias ab = {e->fparams + e->fat[n->param[0]], gsq_node_window(n)};
            e->att_windows[n->block] = gsq_attn_bias_windows(&ab);
            e->att_bias[n->block] = malloc(gsq_engine_bias_floats(e, n) * sizeof(float));
            if (!e->att_bias[n->block]) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
            gsq_attn_bias_expand(e->att_bias[n->block], &ab, n->attrs[0]);
        }
        if (!cuda || (n->op != GSQ_OP_WINDOW && n->op != GSQ_OP_UNWINDOW && n->op != GSQ_OP_MERGE &&
                      n->op != GSQ_OP_ROWS))
            continue;
        if (!(e->row_maps[i] = malloc((size_t)gsq_engine_map_rows(g, n) * sizeof(int))))
            return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
        if (n->op == GSQ_OP_MERGE) gsq_merge_rows(n->attrs[0], e->row_maps[i]);
        else if (n->op == GSQ_OP_ROWS)
            for (int r = 0; r < g->values[n->out].rows; r++) e->row_maps[i][r] = n->attrs[0] + r;
        else gsq_window_rows(gsq_node_window(n), n->op == GSQ_OP_UNWINDOW, e->row_maps[i]);
    }
    return GSQ_OK;
}

void gsq_engine_options_init(gsq_engine_options *o)
{
    *o = (gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = 1, .device = GSQ_ENGINE_CPU,
                              .pattern = GSQ_SPARSE_2_4};
}

/* The engine of src as o says (o's pattern is a model's; src's is the one that counts). */
/* 1 when every value, and every attention's probabilities, of a batch of B fits int32 indexing. */
static int batch_fits(const gsq_graph *g, size_t B)
{
    for (int v = 0; v < g->num_values; v++)
        if (B * gsq_value_floats(g, v) > INT32_MAX) return 0;
    for (int i = 0; i < g->num_nodes; i++) {
        const gsq_node *n = &g->nodes[i];
        if (n->op != GSQ_OP_ATTENTION) continue;
        size_t T = (size_t)gsq_attention_tokens(g, n), rows = (size_t)g->values[n->in[0]].rows;
        if (B * rows * (size_t)n->attrs[0] * T > INT32_MAX) return 0; /* sequences × heads × T × T */
    }
    return 1;
}

/* The engine of src as o says (o's pattern is a model's; src's is the one that counts). */
static gsq_status create_from(gsq_engine **out, engine_source *src, const gsq_engine_options *o, gsq_error *err)
{
    *out = NULL;
    gsq_flush_denormals();
    if (o->layout == GSQ_ENGINE_FP16 && o->device != GSQ_ENGINE_CUDA)
        return gsq_fail(err, GSQ_ERR_ARG, "engine: the FP16 layout runs on CUDA only");
    if (o->max_batch < 1 || !batch_fits(src->m->graph, (size_t)o->max_batch))
        return gsq_fail(err, GSQ_ERR_ARG, "engine: batch %d is out of range for this model", o->max_batch);
    gsq_engine *e = calloc(1, sizeof *e);
    if (!e) return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    e->max_batch = o->max_batch;
    e->layout = o->layout;
    e->isa = gsq_i8_isa_active();
    e->a_qmax = gsq_quant_qmax(gsq_quant_mode_act_bits(src->mode));
    e->attention = src->attention;
    int cuda = o->device == GSQ_ENGINE_CUDA;
    /* what each backend's kernels fuse (engine_plan.h): LayerNorm and fc1's epilogue write the next
     * linear's codes (on the CPU, fc1's floats pass through y where the GEMM does not quantize in
     * its epilogue: gsq_i8_fuses_codes); a LayerNorm also through a window partition; on CUDA also
     * the patch extraction and the attention */
    unsigned feeds = 1u << GSQ_OP_LAYERNORM | 1u << GSQ_OP_LINEAR | 1u << GSQ_OP_WINDOW;
    gsq_engine_fusions fusions = {cuda ? feeds | 1u << GSQ_OP_PATCHIFY | 1u << GSQ_OP_ATTENTION : feeds,
                                  !cuda && !gsq_i8_fuses_codes(e->isa)};
    gsq_status st = gsq_model_new_graph(src->m, &e->graph, err);
    if (st == GSQ_OK) st = gsq_engine_plan_build(&e->plan, e->graph, &fusions, o->max_batch, err);
    if (st == GSQ_OK && cuda && gsq_engine_plan_part(&e->plan, "transfer") < 0)
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    int attentions = st == GSQ_OK ? e->graph->num_attentions : 0;
    if (st == GSQ_OK && (!(e->linears = calloc((size_t)e->graph->num_linears, sizeof *e->linears)) ||
                         !(e->att_bias = calloc((size_t)attentions + 1, sizeof *e->att_bias)) ||
                         !(e->att_windows = calloc((size_t)attentions + 1, sizeof *e->att_windows)) ||
                         !(e->times = calloc((size_t)e->plan.num_parts, sizeof *e->times)) ||
                         (e->attention && !(e->qkv_scales = malloc((size_t)attentions * 3 * sizeof(float))))))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory");
    for (int l = 0; st == GSQ_OK && e->attention && l < attentions; l++)
        st = source_attention(src, l, e->qkv_scales + 3 * l, err);
    if (st == GSQ_OK && cuda) st = gsq_cuda_backend_open(&e->gpu, err);
    if (st == GSQ_OK && cuda) st = e->gpu->engine_create(e, err);
    /* on CUDA a linear runs sparse when its codes obey 2:4, the pattern of mma.sp */
    if (st == GSQ_OK) st = pack_linears(e, src, e->cuda ? GSQ_SPARSE_2_4 : src->pattern, o->layout, err);
    if (st == GSQ_OK) st = copy_floats(e, src, err);
    if (st == GSQ_OK) st = swin_tables(e, cuda, err);
    if (st == GSQ_OK) st = e->cuda ? e->gpu->engine_finish(e, err) : alloc_buffers(e, err);
    if (st != GSQ_OK) {
        gsq_engine_free(e);
        return st;
    }
    *out = e;
    return GSQ_OK;
}

gsq_status gsq_engine_create(gsq_engine **out, const gsq_model *m, const gsq_engine_options *o, gsq_error *err)
{
    *out = NULL;
    if (!gsq_model_quant_active(m))
        return gsq_fail(err, GSQ_ERR_ARG, "engine: the model has no calibrated quantizers (load a compressed file)");
    engine_source src = {.m = m, .mode = gsq_model_quant_mode(m), .pattern = o->pattern,
                         .attention = gsq_model_quant_attention_scales(m, 0) != NULL};
    return create_from(out, &src, o, err);
}

gsq_status gsq_engine_load(gsq_engine **out, const gsq_st_file *f, const gsq_engine_options *o, gsq_error *err)
{
    *out = NULL;
    gsq_compressed_info info;
    gsq_model *m = NULL;
    gsq_status st = gsq_compressed_describe(&m, f, &info, err);
    engine_source src = {.m = m, .mode = info.mode, .pattern = info.pattern, .attention = info.attention, .f = f,
                         .info = &info};
    if (st == GSQ_OK) st = create_from(out, &src, o, err);
    gsq_model_free(m);
    return st;
}

size_t gsq_engine_weight_bytes(const gsq_engine *e) { return e->weight_bytes; }
int gsq_engine_sparse_linears(const gsq_engine *e) { return e->sparse_linears; }
int gsq_engine_parts(const gsq_engine *e) { return e->plan.num_parts; }
const char *gsq_engine_part_name(const gsq_engine *e, int part)
{
    return part >= 0 && part < e->plan.num_parts ? e->plan.part_names[part] : "?";
}
const double *gsq_engine_times(const gsq_engine *e) { return e->times; }
void gsq_engine_reset_times(gsq_engine *e) { memset(e->times, 0, (size_t)e->plan.num_parts * sizeof *e->times); }
