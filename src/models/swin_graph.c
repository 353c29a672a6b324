/* Swin as a graph (include/gpusq/graph.h): patch embedding and its LayerNorm, then per stage the
 * patch merging (from the second stage on) and the blocks (graph_build.c's, in shifted windows on
 * odd blocks), the final norm, average pooling and head.fc, or a segmenter's decode head over the
 * last stage's normalised tokens (seg_head.c's). */
#include <stdio.h>

#include "gpusq/graph.h"
#include "gpusq/swin.h"
#include "models/graph_build.h"
#include "models/model_state.h"
#include "models/seg_head.h"

/* Stage s's patch merging: 2×2 gather of the previous grid, LayerNorm(4C), reduction to dims[s]. */
static int merge(gsq_builder *b, const gsq_swin_config *c, int s, int x)
{
    char name[GSQ_NAME_MAX];
    int M = gsq_swin_stage_grid(c, s);
    gsq_node n = gsq_graph_blank(GSQ_OP_MERGE);
    n.in[0] = x;
    n.attrs[0] = gsq_swin_stage_grid(c, s - 1);
    snprintf(name, sizeof name, "layers.%d.downsample.merge", s);
    n.out = gsq_build_value(b, name, M * M, 4 * c->dims[s - 1]);
    gsq_graph_node(b->g, &n);
    snprintf(name, sizeof name, "layers.%d.downsample.norm", s);
    x = gsq_build_layernorm(b, name, n.out);
    snprintf(name, sizeof name, "layers.%d.downsample.reduction", s);
    return gsq_build_linear(b, name, x, -1, -1, 1, name);
}

gsq_status gsq_swin_graph(const gsq_model *m, gsq_graph **out, gsq_error *err)
{
    const gsq_swin_config *c = &m->swin;
    int blocks = gsq_swin_blocks(c);
    /* per block at most 10 nodes, 13 values, 4 linears; per merge 3, 4, 1; around them 6, 9, 2, and a
     * segmenter's head */
    gsq_seg_head_room head = c->task == GSQ_TASK_SEGMENT ? gsq_seg_head_size(c->seg_head) : (gsq_seg_head_room){0};
    gsq_status st = gsq_graph_create(out, 6 + 3 * c->num_stages + 10 * blocks + head.nodes,
                                      9 + 4 * c->num_stages + 13 * blocks + head.values,
                                      2 + c->num_stages + 4 * blocks + head.linears, err);
    if (st != GSQ_OK) return st;
    gsq_graph *g = *out;
    gsq_builder b = {.m = m, .g = g, .ln_eps = c->ln_eps};
    int x = gsq_build_patch_embed(&b, c->in_chans, c->img_size, c->patch_size);
    x = gsq_build_layernorm(&b, "patch_embed.norm", x);
    for (int s = 0; s < c->num_stages; s++) {
        if (s > 0) x = merge(&b, c, s, x);
        for (int j = 0; j < c->depths[s]; j++) {
            char prefix[GSQ_NAME_MAX];
            snprintf(prefix, sizeof prefix, "layers.%d.blocks.%d", s, j);
            gsq_window_geom w = {gsq_swin_stage_grid(c, s), gsq_swin_stage_window(c, s),
                                 j % 2 ? gsq_swin_stage_shift(c, s) : 0};
            x = gsq_build_block(&b, prefix, x, c->num_heads[s], &w);
        }
    }
    x = gsq_build_layernorm(&b, "norm", x);
    if (c->task == GSQ_TASK_SEGMENT) { /* every token of the last stage classified */
        g->logits = gsq_build_seg_head(&b, c->seg_head, x, c->num_classes);
        g->grid = gsq_swin_stage_grid(c, c->num_stages - 1);
    } else {
        gsq_node n = gsq_graph_blank(GSQ_OP_POOL);
        n.in[0] = x;
        n.attrs[0] = GSQ_POOL_AVG, n.attrs[1] = 1, n.attrs[2] = 0;
        n.out = gsq_build_value(&b, "pooled", 1, c->dims[c->num_stages - 1]);
        gsq_graph_node(g, &n);
        g->logits = gsq_build_linear(&b, "head.fc", n.out, -1, -1, 0, "logits");
    }
    g->values[g->logits].tap = 1;
    st = gsq_graph_finish(g, err);
    if (st != GSQ_OK) {
        gsq_graph_free(g);
        *out = NULL;
    }
    return st;
}
