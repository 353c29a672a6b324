/* ViT/DeiT as a graph (include/gpusq/graph.h): the one place that says what a vision
 * transformer computes — patch embedding, tokens, `depth` pre-norm blocks (graph_build.c's),
 * pooling, the final norm and the classifier head(s), or a segmenter's decode head (seg_head.c's)
 * or a detector's decoder (det_head.c's) over the normalised patch tokens. */
#include <stdio.h>

#include "gpusq/graph.h"
#include "gpusq/vit.h"
#include "models/graph_build.h"
#include "models/model_state.h"
#include "models/det_head.h"
#include "models/seg_head.h"

/* The logits are the output: a tap. */
static gsq_status finish(gsq_graph *g, gsq_graph **out, gsq_error *err)
{
    g->values[g->logits].tap = 1;
    gsq_status st = gsq_graph_finish(g, err);
    if (st != GSQ_OK) {
        gsq_graph_free(g);
        *out = NULL;
    }
    return st;
}

gsq_status gsq_vit_graph(const gsq_model *m, gsq_graph **out, gsq_error *err)
{
    const gsq_vit_config *c = &m->vit;
    /* per block: 8 nodes, 11 values, 4 linears; around them at most 8 nodes, 10 values, 3 linears,
     * and a segmenter's head */
    gsq_seg_head_room head = c->task == GSQ_TASK_SEGMENT ? gsq_seg_head_size(c->seg_head) : (gsq_seg_head_room){0};
    if (c->task == GSQ_TASK_DETECT) {
        gsq_det_head_room det = gsq_det_head_size(&c->det);
        head = (gsq_seg_head_room){det.tensors, det.nodes, det.values, det.linears};
    }
    gsq_status st = gsq_graph_create(out, 8 + 8 * c->depth + head.nodes, 10 + 11 * c->depth + head.values,
                                     3 + 4 * c->depth + head.linears, err);
    if (st != GSQ_OK) return st;
    gsq_graph *g = *out;
    gsq_builder b = {.m = m, .g = g, .ln_eps = c->ln_eps};
    int x = gsq_build_patch_embed(&b, c->in_chans, c->img_size, c->patch_size);
    gsq_node n = gsq_graph_blank(GSQ_OP_TOKENS);
    n.in[0] = x;
    n.param[0] = c->class_token ? gsq_build_tensor(&b, "cls_token") : -1;
    n.param[1] = c->distilled ? gsq_build_tensor(&b, "dist_token") : -1;
    n.param[2] = gsq_build_tensor(&b, "pos_embed");
    n.out = x = gsq_build_value(&b, "tokens", gsq_vit_tokens(c), c->embed_dim);
    gsq_graph_node(g, &n);
    for (int l = 0; l < c->depth; l++) {
        char prefix[GSQ_NAME_MAX];
        snprintf(prefix, sizeof prefix, "blocks.%d", l);
        x = gsq_build_block(&b, prefix, x, c->num_heads, NULL);
    }

    const char *norm = c->pool == GSQ_POOL_AVG ? "fc_norm" : "norm";
    if (c->task != GSQ_TASK_CLASSIFY) {
        /* the patch tokens, normalised (selecting first lets the norm write the head's input codes) */
        x = gsq_build_rows(&b, x, gsq_vit_prefix(c), gsq_vit_num_patches(c), "patch_tokens");
        x = gsq_build_layernorm(&b, norm, x);
        if (c->task == GSQ_TASK_DETECT) {
            g->logits = gsq_build_det_head(&b, &c->det, x, c->num_heads, c->num_classes);
            return finish(g, out, err);
        }
        g->logits = gsq_build_seg_head(&b, c->seg_head, x, c->num_classes);
        g->grid = gsq_vit_grid(c);
        return finish(g, out, err);
    }
    /* The final norm is row-wise, so norm-then-select equals select-then-norm: only the pooled
     * rows are normalised (timm's `norm` for token pooling, `fc_norm` after average pooling). */
    n = gsq_graph_blank(GSQ_OP_POOL);
    n.in[0] = x;
    n.attrs[0] = c->pool, n.attrs[1] = c->distilled ? 2 : 1, n.attrs[2] = gsq_vit_prefix(c);
    n.out = gsq_graph_value(g, "pooled", 1, c->embed_dim, n.attrs[1]);
    gsq_graph_node(g, &n);
    x = gsq_build_layernorm(&b, norm, n.out);
    if (c->distilled) { /* logits = (head(token 0) + head_dist(token 1)) / 2; distillation reads both */
        n = gsq_graph_blank(GSQ_OP_MEAN2);
        n.in[0] = gsq_build_linear(&b, "head", x, 0, -1, 0, "head");
        n.in[1] = gsq_build_linear(&b, "head_dist", x, 1, -1, 0, "head_dist");
        n.out = g->logits = gsq_build_value(&b, "logits", 1, c->num_classes);
        gsq_graph_node(g, &n);
        g->values[n.in[0]].tap = g->values[n.in[1]].tap = 1;
    } else {
        g->logits = gsq_build_linear(&b, "head", x, -1, -1, 0, "logits");
    }
    return finish(g, out, err);
}
