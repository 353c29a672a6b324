/* A network as a static list of operations over named values: what training, calibration, the
 * engines and the reports walk instead of each writing the topology again. An architecture's
 * builder (gsq_vit_graph for ViT/DeiT, gsq_swin_graph for Swin) lists the operations once, in execution order; the values
 * between them carry their shapes per image; the linear layers (the unit of compression) are
 * listed by name with the parameter tensors they read. One planner places values in an arena:
 * kept whole for backward, or reused once dead for inference. */
#ifndef GPUSQ_GRAPH_H
#define GPUSQ_GRAPH_H

#include <stddef.h>

#include "gpusq/nn.h"
#include "gpusq/status.h"

struct gsq_model;

#define GSQ_GRAPH_NAME_MAX 64

typedef enum {
    GSQ_OP_PATCHIFY,  /* images (C, S, S) → patches (NP, C·P·P); attrs: C, S, P */
    GSQ_OP_LINEAR,    /* in[0] (rows, cols) → (rows, out) of linear `linear`, plus in[1] when given
                       * (a residual); in_slice ≥ 0 reads that slice of a sliced input */
    GSQ_OP_TOKENS,    /* patch embeddings (NP, D) → tokens (T, D): params cls, dist (-1: none), pos */
    GSQ_OP_LAYERNORM, /* rows of in[0] normalized: params weight, bias; aux = mean and rstd per row */
    GSQ_OP_ATTENTION, /* qkv (T, 3D) → (T, D), multi-head softmax attention; attrs: heads, then
                       * for Swin's windowed attention the geometry (grid, window, shift: see
                       * gsq_node_window) with param[0] the relative position bias table, the rows
                       * being nW windows of window² tokens; aux = the probabilities (heads, T, T)
                       * per sequence; `block` names the attention */
    GSQ_OP_GELU,      /* elementwise, exact erf form */
    GSQ_OP_POOL,      /* tokens (T, D) → slices of (1, D): slice 0 by attrs[0] (gsq_pool) over the
                       * tokens after the attrs[2] prefix ones, slice k > 0 is token k */
    GSQ_OP_MEAN2,     /* (in[0] + in[1]) / 2 */
    GSQ_OP_WINDOW,    /* grid tokens (G², C) → shifted windows (nW·W², C); attrs 1..3 as ATTENTION's */
    GSQ_OP_UNWINDOW,  /* windows → grid tokens (G², C), plus in[1] when given (a residual) */
    GSQ_OP_MERGE,     /* Swin's patch merging gather: (G², C) → (⌈G/2⌉², 4C); attrs[0]: G */
    GSQ_OP_ROWS,      /* consecutive rows: (rows, C) → rows attrs[0] .. attrs[0] + out.rows − 1 (a dense
                       * head's patch tokens, without the class and distillation tokens) */
    GSQ_OP_PREPEND,   /* (N, C) → (K + N, C): param[0]'s K rows (1, K, C) before every image's N (the
                       * mask transformer's class embeddings) */
    GSQ_OP_L2NORM,    /* each row of in[0] over its L2 norm, at least 1e-12 (F.normalize) */
    GSQ_OP_MATMUL_NT, /* per image in[0] (M, C) · in[1] (N, C)ᵀ → (M, N) (the mask transformer's masks) */
    GSQ_OP_CROSS_ATTENTION, /* queries in[0] (Q, D) attend over memory in[1] (N, 2D) of keys then values → (Q, D);
                       * attrs[0]: heads; aux = the probabilities (heads, Q, N) per image (a detector's
                       * decoder) */
    GSQ_OP_CONCAT,    /* per image in[0] and in[1] joined: attrs[0] 0 side by side, (R, A) and (R, B) →
                       * (R, A + B); 1 stacked, (R, C) and (S, C) → (R + S, C) */
    GSQ_OP_COUNT
} gsq_op;

/* The operation's name in reports and messages ("layernorm", "matmul_nt"). */
const char *gsq_op_name(gsq_op op);

/* A value: `slices` consecutive arrays of (batch, rows, cols) floats — one slice for everything
 * but a multi-token pool. */
typedef struct {
    char name[GSQ_GRAPH_NAME_MAX];
    int rows, cols, slices;
    int producer;  /* the node that writes it; -1 for the graph's input */
    int tap;       /* 1: read after the forward (logits, block outputs): never reused */
} gsq_value;

typedef struct {
    gsq_op op;
    int in[2];     /* values; -1 where unused */
    int out;
    int aux;       /* a value only backward reads (LayerNorm statistics, attention probabilities),
                    * or -1 */
    int param[3];  /* parameter tensors (indices into the model's table), -1 where unused */
    int linear;    /* LINEAR: index into the graph's linears */
    int in_slice;  /* LINEAR: the slice of in[0] it reads, -1: all of it */
    int block;     /* ATTENTION: which attention it is (0, 1, ...) */
    int attrs[4];
    float eps;     /* LAYERNORM: added to the variance */
} gsq_node;

/* A linear layer, y = x·Wᵀ + b: the unit that is pruned to 2:4 and quantized. */
typedef struct {
    char name[GSQ_GRAPH_NAME_MAX]; /* timm module name: "blocks.3.mlp.fc1" */
    int weight, bias;              /* parameter tensors; bias -1 when it has none */
    int rows, cols;                /* output and input features */
    int node;
    int compressed;                /* 1: pruned and quantized (all but the classifier heads) */
} gsq_linear;

typedef struct gsq_graph {
    int num_nodes, num_values, num_linears, num_attentions, num_blocks;
    gsq_node *nodes;
    gsq_value *values;
    gsq_linear *linears;
    int *blocks; /* (num_blocks) the output value of each transformer block, in order: what
                  * feature distillation reads */
    int input;   /* the images */
    int logits;  /* the output: (1, classes) per image, or for a dense task (grid², classes), a
                  * grid × grid map over the image */
    int grid;    /* a dense task's output grid side; 0 for classification */
} gsq_graph;

/* Building: gsq_graph_create makes an empty graph with room for the given numbers of nodes,
 * values and linears; gsq_graph_value adds a value and returns its index; gsq_graph_node appends
 * a node (the producer of its out and aux values); gsq_graph_linear adds a linear and returns its
 * index. An add past the room asked for is a builder's bug: gsq_graph_finish reports it. */
gsq_status gsq_graph_create(gsq_graph **out, int max_nodes, int max_values, int max_linears, gsq_error *err);
int gsq_graph_value(gsq_graph *g, const char *name, int rows, int cols, int slices);
int gsq_graph_node(gsq_graph *g, const gsq_node *node);
int gsq_graph_linear(gsq_graph *g, const gsq_linear *lin);
/* Marks value v as the output of the next transformer block (a tap). */
void gsq_graph_block_output(gsq_graph *g, int v);
gsq_status gsq_graph_finish(gsq_graph *g, gsq_error *err);
void gsq_graph_free(gsq_graph *g);

/* A node with no inputs, outputs, parameters or attributes yet (every index -1). */
gsq_node gsq_graph_blank(gsq_op op);

/* The shifted-window geometry of a WINDOW, UNWINDOW or windowed ATTENTION node (attrs 1..3). */
static inline gsq_window_geom gsq_node_window(const gsq_node *n)
{
    return (gsq_window_geom){n->attrs[1], n->attrs[2], n->attrs[3]};
}
/* The tokens of one sequence an ATTENTION node attends over: a window's, or all its rows. */
int gsq_attention_tokens(const gsq_graph *g, const gsq_node *n);

/* Floats of value v per image. */
size_t gsq_value_floats(const gsq_graph *g, int v);
/* For a batch of B, the rows node n reads from its in[0] (one slice of it, or all), and where that
 * slice starts, in floats. */
size_t gsq_node_rows(const gsq_graph *g, const gsq_node *n, int B);
size_t gsq_node_slice_offset(const gsq_graph *g, const gsq_node *n, int B);
/* The value named `name`, or -1. The linear named `name` ("blocks.0.attn.qkv"), or -1. */
int gsq_graph_find_value(const gsq_graph *g, const char *name);
int gsq_graph_find_linear(const gsq_graph *g, const char *name);
/* The ATTENTION node of attention `block`, or NULL. */
const gsq_node *gsq_graph_attention(const gsq_graph *g, int block);
/* The name of the linear that computes attention `block`'s qkv ("blocks.3.attn.qkv"), or "" when
 * there is no such attention. */
const char *gsq_graph_attention_qkv(const gsq_graph *g, int block);
/* The number of linears with compressed set. */
int gsq_graph_compressed_linears(const gsq_graph *g);

/* Multiply-accumulates of one image's forward: of linear i; of node n (a linear's, attention's and
 * cross-attention's two matmuls, the mask transformer's matmul, 0 for the other operations); in
 * the linear layers (all, and the compressed ones alone) and in the matmuls of two activations
 * (attention's two, cross-attention's two, the mask transformer's one). */
double gsq_graph_linear_macs(const gsq_graph *g, int linear);
double gsq_graph_node_macs(const gsq_graph *g, const gsq_node *n);
typedef struct {
    double linear, compressed, attention;
} gsq_graph_macs;
gsq_graph_macs gsq_graph_count_macs(const gsq_graph *g);

/* The one planner. Places n arrays of size[i] floats, each alive from step first[i] to step
 * last[i] (inclusive), in one arena so that arrays alive at the same step never overlap; offsets
 * are multiples of 16 floats; *total is the arena's size in floats. GSQ_ERR_NOMEM when it runs
 * out of memory or the sizes overflow. */
gsq_status gsq_plan_arena(int n, const size_t *size, const int *first, const int *last, size_t *offset, size_t *total,
                          gsq_error *err);

/* Where a forward puts the values for a batch: training keeps every value (and aux) for backward;
 * inference keeps taps and reuses the rest once read. offset[v] for every value (SIZE_MAX for
 * the input, which the caller holds), *total the arena's floats. */
gsq_status gsq_graph_plan_forward(const gsq_graph *g, int batch, int training, size_t *offset, size_t *total,
                                  gsq_error *err);

/* Where one node's forward reads and writes for a batch: its inputs (whole values: a LINEAR picks
 * its slice), output and aux, and its parameters (for a LINEAR its weight and bias). */
typedef struct {
    int batch;
    const float *in[2];
    float *out, *aux;
    const float *param[3];
} gsq_node_args;
/* Runs node n of g in float on the CPU with the layers of nn/ — every operation but ATTENTION,
 * whose callers quantize it each their own way (training's fake quantizers, the engine's integer
 * kernels): training's forward and the CPU engine share it (src/models/graph_cpu.c). */
void gsq_node_forward_f32(const gsq_graph *g, const gsq_node *n, const gsq_node_args *a);

/* The graph of a ViT/DeiT whose parameter table is m's (src/models/vit_graph.c). */
gsq_status gsq_vit_graph(const struct gsq_model *m, gsq_graph **out, gsq_error *err);
/* The graph of a Swin whose parameter table is m's (src/models/swin_graph.c). */
gsq_status gsq_swin_graph(const struct gsq_model *m, gsq_graph **out, gsq_error *err);
/* A new copy of m's graph, made by its architecture's builder (for those that keep their own). */
gsq_status gsq_model_new_graph(const struct gsq_model *m, gsq_graph **out, gsq_error *err);

#endif
