/* Private: the engine's plan and buffers (engine.c builds them, engine_forward.c runs them on the
 * CPU, engine_cuda.c keeps their copies on a GPU and runs them there). */
#ifndef GSQ_ENGINE_STATE_H
#define GSQ_ENGINE_STATE_H

#include "engine_plan.h"
#include "gpusq/engine.h"
#include "kernels/cpu/int8_pack.h"

/* One compressed linear: packed codes, per-row output scales (weight scale × input scale), and
 * the reciprocal input scale its input is quantized with. */
typedef struct {
    gsq_i8_owned_weight w;
    float *scale;
    float inv_a;
} gsq_engine_linear;

struct gsq_engine {
    gsq_graph *graph;            /* the network (the engine's own copy) */
    gsq_engine_plan plan;        /* its steps and the arena of their float values */
    int max_batch;
    gsq_engine_layout layout;
    struct gsq_engine_cuda *cuda;       /* the device side when it runs on CUDA, else NULL */
    const struct gsq_cuda_backend *gpu; /* the CUDA backend library that made it (cuda_backend.h) */
    gsq_i8_isa isa;              /* the integer kernels' instruction set */
    int sparse_linears;          /* the compressed linears that run sparse */
    gsq_engine_linear *linears;  /* (graph->num_linears) set for the compressed ones */
    size_t weight_bytes;
    int a_qmax;                  /* activation codes: ±a_qmax */
    int attention;               /* 1: Q, K, V and the probabilities are quantized too */
    float *qkv_scales;           /* (graph->num_attentions, 3) when attention */
    float *fparams;              /* the float parameters (all but the compressed linears' weights) */
    size_t num_fparams;
    size_t *fat;                 /* each parameter tensor's offset in fparams (SIZE_MAX: not there) */
    int row_threads;             /* threads with a row of ln (LayerNorm's row buffers) */
    float *act;                  /* the plan's arena */
    float *ln;                   /* LayerNorm's row buffers, a row per thread */
    float *att, *att_q;          /* the float attention's probabilities (and their codes' values) */
    uint8_t *codes[2];           /* the compressed linears' input buffers (engine_plan.h) */
    uint8_t *att8;               /* integer attention's scratch (attention_int8.h), where it runs */
    float **att_bias;            /* (graph->num_attentions) Swin's bias, expanded (gsq_attn_bias_expand) for the
                                  * CPU's integer attention and every GPU attention; NULL for attention
                                  * without one */
    int *att_windows;            /* (graph->num_attentions) the windows att_bias holds */
    int **row_maps;              /* (graph->num_nodes) on CUDA, each window partition's, reverse's,
                                  * patch merging's and row selection's row map (gsq_engine_map_rows);
                                  * else NULL */
    double *times;               /* (plan.num_parts) */
};

/* The entries of a WINDOW, UNWINDOW, MERGE or ROWS node's row map (gsq_window_rows, gsq_merge_rows,
 * the rows a ROWS node keeps): one per row of its output, four per merged token. */
static inline int gsq_engine_map_rows(const gsq_graph *g, const gsq_node *n)
{
    return g->values[n->out].rows * (n->op == GSQ_OP_MERGE ? 4 : 1);
}

/* The floats of windowed attention n's expanded bias (att_windows set): (windows, NH, T, T). */
static inline size_t gsq_engine_bias_floats(const gsq_engine *e, const gsq_node *n)
{
    size_t T = (size_t)gsq_attention_tokens(e->graph, n);
    return (size_t)e->att_windows[n->block] * (size_t)n->attrs[0] * T * T;
}

#endif
