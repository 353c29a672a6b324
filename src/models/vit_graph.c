/* ViT/DeiT as a graph (include/gpusq/graph.h): the one place that says what a vision
 * transformer computes — patch embedding, tokens, `depth` pre-norm blocks (the block written
 * once below), pooling, the final norm and the classifier head(s). */
#include <stdio.h>

#include "gpusq/graph.h"
#include "gpusq/vit.h"
#include "models/model_state.h"

typedef struct {
    const gsq_model *m;
    gsq_graph *g;
    int T, D; /* tokens, width */
} vit_builder;

/* The index of tensor `name` in m's table (the builders only name tensors the table has). */
static int tensor(const vit_builder *b, const char *name)
{
    const gsq_param *p = gsq_model_find_param(b->m, name);
    return p ? (int)(p - b->m->tensors) : -1;
}

static int value(vit_builder *b, const char *name, int rows, int cols)
{
    return gsq_graph_value(b->g, name, rows, cols, 1);
}

/* out = linear `name`(in) (+ residual when ≥ 0), into a new value called out_name. */
static int linear(vit_builder *b, const char *name, int in, int slice, int residual, int compressed,
                  const char *out_name)
{
    char w[GSQ_NAME_MAX + 8], bias[GSQ_NAME_MAX + 8];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(bias, sizeof bias, "%s.bias", name);
    gsq_linear lin = {.weight = tensor(b, w), .bias = tensor(b, bias), .compressed = compressed};
    snprintf(lin.name, sizeof lin.name, "%s", name);
    const gsq_param *p = &b->m->tensors[lin.weight];
    lin.rows = (int)p->shape[0];
    lin.cols = (int)(p->numel / (size_t)p->shape[0]);
    gsq_node n = gsq_graph_blank(GSQ_OP_LINEAR);
    n.in[0] = in;
    n.in[1] = residual;
    n.in_slice = slice;
    n.linear = gsq_graph_linear(b->g, &lin);
    n.out = value(b, out_name, b->g->values[in].rows, lin.rows);
    b->g->linears[n.linear].node = gsq_graph_node(b->g, &n);
    return n.out;
}

static int layernorm(vit_builder *b, const char *name, int in)
{
    char w[GSQ_NAME_MAX + 8], bias[GSQ_NAME_MAX + 8], stats[GSQ_NAME_MAX + 8];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(bias, sizeof bias, "%s.bias", name);
    snprintf(stats, sizeof stats, "%s.stats", name);
    const gsq_value *x = &b->g->values[in];
    gsq_node n = gsq_graph_blank(GSQ_OP_LAYERNORM);
    n.in[0] = in;
    n.param[0] = tensor(b, w);
    n.param[1] = tensor(b, bias);
    n.eps = b->m->cfg.ln_eps;
    n.aux = gsq_graph_value(b->g, stats, x->rows * x->slices, 1, 2); /* mean, then rstd */
    n.out = gsq_graph_value(b->g, name, x->rows, x->cols, x->slices);
    gsq_graph_node(b->g, &n);
    return n.out;
}

/* One pre-norm transformer block: x + attn(norm1(x)), then + mlp(norm2(·)). */
static int block(vit_builder *b, int l, int x)
{
    const gsq_vit_config *c = &b->m->cfg;
    char name[GSQ_NAME_MAX], out[GSQ_NAME_MAX];
#define NAME(buf, part) (snprintf(buf, sizeof buf, "blocks.%d%s", l, part), buf)
    int h = layernorm(b, NAME(name, ".norm1"), x);
    int qkv = linear(b, NAME(name, ".attn.qkv"), h, -1, -1, 1, name);
    gsq_node att = gsq_graph_blank(GSQ_OP_ATTENTION);
    att.in[0] = qkv;
    att.block = l;
    att.attrs[0] = c->num_heads;
    att.aux = value(b, NAME(name, ".attn.probs"), c->num_heads * b->T, b->T);
    att.out = value(b, NAME(name, ".attn"), b->T, b->D);
    gsq_graph_node(b->g, &att);
    x = linear(b, NAME(name, ".attn.proj"), att.out, -1, x, 1, NAME(out, ".attn.residual"));
    h = layernorm(b, NAME(name, ".norm2"), x);
    h = linear(b, NAME(name, ".mlp.fc1"), h, -1, -1, 1, name);
    gsq_node act = gsq_graph_blank(GSQ_OP_GELU);
    act.in[0] = h;
    act.out = value(b, NAME(name, ".mlp.act"), b->T, c->mlp_hidden);
    gsq_graph_node(b->g, &act);
    x = linear(b, NAME(name, ".mlp.fc2"), act.out, -1, x, 1, NAME(out, ""));
    b->g->values[x].tap = 1; /* the block's output: feature distillation reads it */
#undef NAME
    return x;
}

gsq_status gsq_vit_graph(const gsq_model *m, gsq_graph **out, gsq_error *err)
{
    const gsq_vit_config *c = &m->cfg;
    /* per block: 8 nodes, 11 values, 4 linears; around them at most 8 nodes, 10 values, 3 linears */
    gsq_status st = gsq_graph_create(out, 8 + 8 * c->depth, 10 + 11 * c->depth, 3 + 4 * c->depth, err);
    if (st != GSQ_OK) return st;
    gsq_graph *g = *out;
    vit_builder b = {m, g, gsq_vit_tokens(c), c->embed_dim};
    int NP = gsq_vit_num_patches(c), CPP = c->in_chans * c->patch_size * c->patch_size;

    g->input = gsq_graph_value(g, "images", c->in_chans * c->img_size, c->img_size, 1);
    gsq_node n = gsq_graph_blank(GSQ_OP_PATCHIFY);
    n.in[0] = g->input;
    n.out = value(&b, "patches", NP, CPP);
    n.attrs[0] = c->in_chans, n.attrs[1] = c->img_size, n.attrs[2] = c->patch_size;
    gsq_graph_node(g, &n);
    int x = linear(&b, "patch_embed.proj", n.out, -1, -1, 1, "patch_embed");
    n = gsq_graph_blank(GSQ_OP_TOKENS);
    n.in[0] = x;
    n.param[0] = c->class_token ? tensor(&b, "cls_token") : -1;
    n.param[1] = c->distilled ? tensor(&b, "dist_token") : -1;
    n.param[2] = tensor(&b, "pos_embed");
    n.out = x = value(&b, "tokens", b.T, b.D);
    gsq_graph_node(g, &n);
    for (int l = 0; l < c->depth; l++) x = block(&b, l, x);

    /* The final norm is row-wise, so norm-then-select equals select-then-norm: only the pooled
     * rows are normalised (timm's `norm` for token pooling, `fc_norm` after average pooling). */
    n = gsq_graph_blank(GSQ_OP_POOL);
    n.in[0] = x;
    n.attrs[0] = c->pool, n.attrs[1] = c->distilled ? 2 : 1, n.attrs[2] = gsq_vit_prefix(c);
    n.out = gsq_graph_value(g, "pooled", 1, b.D, n.attrs[1]);
    gsq_graph_node(g, &n);
    x = layernorm(&b, c->pool == GSQ_POOL_AVG ? "fc_norm" : "norm", n.out);
    if (c->distilled) { /* logits = (head(token 0) + head_dist(token 1)) / 2; distillation reads both */
        n = gsq_graph_blank(GSQ_OP_MEAN2);
        n.in[0] = linear(&b, "head", x, 0, -1, 0, "head");
        n.in[1] = linear(&b, "head_dist", x, 1, -1, 0, "head_dist");
        n.out = g->logits = value(&b, "logits", 1, c->num_classes);
        gsq_graph_node(g, &n);
        g->values[n.in[0]].tap = g->values[n.in[1]].tap = 1;
    } else {
        g->logits = linear(&b, "head", x, -1, -1, 0, "logits");
    }
    g->values[g->logits].tap = 1;
    st = gsq_graph_finish(g, err);
    if (st != GSQ_OK) {
        gsq_graph_free(g);
        *out = NULL;
    }
    return st;
}
