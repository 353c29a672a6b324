/* Private: the pieces architecture builders (vit_graph.c, swin_graph.c) make their graphs of, so
 * that the transformer block — LayerNorm, attention (global or in shifted windows), MLP,
 * residuals — is written once for every architecture. */
#ifndef GSQ_GRAPH_BUILD_H
#define GSQ_GRAPH_BUILD_H

#include "gpusq/graph.h"
#include "gpusq/model.h"

typedef struct {
    const gsq_model *m; /* its parameter table names the tensors */
    gsq_graph *g;
    float ln_eps;
    int attentions;     /* attentions added so far: the next one's block number */
    int decoder;        /* 1 while a decode head is built: its blocks are not block outputs */
} gsq_builder;

/* The index of tensor `name` in the model's table, or -1. */
int gsq_build_tensor(const gsq_builder *b, const char *name);
/* A new value of one slice. */
int gsq_build_value(gsq_builder *b, const char *name, int rows, int cols);
/* out = linear `name`(in, its slice `slice` when ≥ 0) (+ residual when ≥ 0), into a new value
 * called out_name; compressed as gsq_linear's. */
int gsq_build_linear(gsq_builder *b, const char *name, int in, int slice, int residual, int compressed,
                     const char *out_name);
/* LayerNorm `name` of in's rows (params name.weight, name.bias) into a new value called name. */
int gsq_build_layernorm(gsq_builder *b, const char *name, int in);
/* A node of op over in0 and in1 (-1: none) with param[0] = param and attrs[0] = attr into a new
 * value called name of rows × cols; returns the value. */
int gsq_build_node(gsq_builder *b, gsq_op op, int in0, int in1, int param, int attr, int rows, int cols,
                   const char *name);
/* Rows first .. first + rows − 1 of in (a ROWS node) into a new value called name. */
int gsq_build_rows(gsq_builder *b, int in, int first, int rows, const char *name);
/* The graph's input, images (in_chans, img, img), cut into patches (grid², in_chans·patch²) that
 * patch_embed.proj embeds into a new value "patch_embed"; returns it. */
int gsq_build_patch_embed(gsq_builder *b, int in_chans, int img, int patch);
/* The two halves of a pre-norm transformer block named prefix over x (rows, width): attention,
 * x + proj(attention(qkv(norm1(x)))) (in win's shifted windows, as gsq_build_block says, when
 * given); the MLP, x + fc2(gelu(fc1(norm2(x)))), into a new value called prefix. */
int gsq_build_attention(gsq_builder *b, const char *prefix, int x, int heads, const gsq_window_geom *win);
int gsq_build_mlp(gsq_builder *b, const char *prefix, int x);
/* One pre-norm transformer block named prefix ("blocks.3", "layers.1.blocks.0") over x (rows,
 * width): x + proj(attention(qkv(norm1(x)))), then + fc2(gelu(fc1(norm2(·)))). With win, the
 * attention runs in win's shifted windows with the block's relative position bias table (windows
 * that are the whole grid, unshifted and unpadded, are plain attention plus the bias). The
 * output is marked as a block output, unless b builds a decoder; returns it. */
int gsq_build_block(gsq_builder *b, const char *prefix, int x, int heads, const gsq_window_geom *win);

#endif
