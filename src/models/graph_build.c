/* The transformer block and its pieces, as every architecture's builder adds them to a graph
 * (src/models/graph_build.h). */
#include "models/graph_build.h"

#include <stdio.h>

int gsq_build_tensor(const gsq_builder *b, const char *name)
{
    const gsq_param *p = gsq_model_find_param(b->m, name);
    return p ? (int)(p - gsq_model_tensor(b->m, 0)) : -1;
}

int gsq_build_value(gsq_builder *b, const char *name, int rows, int cols)
{
    return gsq_graph_value(b->g, name, rows, cols, 1);
}

int gsq_build_linear(gsq_builder *b, const char *name, int in, int slice, int residual, int compressed,
                     const char *out_name)
{
    char w[GSQ_NAME_MAX + 8], bias[GSQ_NAME_MAX + 8];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(bias, sizeof bias, "%s.bias", name);
    gsq_linear lin = {.weight = gsq_build_tensor(b, w), .bias = gsq_build_tensor(b, bias), .compressed = compressed};
    snprintf(lin.name, sizeof lin.name, "%s", name);
    const gsq_param *p = gsq_model_tensor(b->m, lin.weight);
    lin.rows = (int)p->shape[0];
    lin.cols = (int)(p->numel / (size_t)p->shape[0]);
    gsq_node n = gsq_graph_blank(GSQ_OP_LINEAR);
    n.in[0] = in;
    n.in[1] = residual;
    n.in_slice = slice;
    n.linear = gsq_graph_linear(b->g, &lin);
    n.out = gsq_build_value(b, out_name, b->g->values[in].rows, lin.rows);
    b->g->linears[n.linear].node = gsq_graph_node(b->g, &n);
    return n.out;
}

int gsq_build_layernorm(gsq_builder *b, const char *name, int in)
{
    char w[GSQ_NAME_MAX + 8], bias[GSQ_NAME_MAX + 8], stats[GSQ_NAME_MAX + 8];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(bias, sizeof bias, "%s.bias", name);
    snprintf(stats, sizeof stats, "%s.stats", name);
    const gsq_value *x = &b->g->values[in];
    gsq_node n = gsq_graph_blank(GSQ_OP_LAYERNORM);
    n.in[0] = in;
    n.param[0] = gsq_build_tensor(b, w);
    n.param[1] = gsq_build_tensor(b, bias);
    n.eps = b->ln_eps;
    n.aux = gsq_graph_value(b->g, stats, x->rows * x->slices, 1, 2); /* mean, then rstd */
    n.out = gsq_graph_value(b->g, name, x->rows, x->cols, x->slices);
    gsq_graph_node(b->g, &n);
    return n.out;
}

int gsq_build_node(gsq_builder *b, gsq_op op, int in0, int in1, int param, int attr, int rows, int cols,
                   const char *name)
{
    gsq_node n = gsq_graph_blank(op);
    n.in[0] = in0;
    n.in[1] = in1;
    n.param[0] = param;
    n.attrs[0] = attr;
    n.out = gsq_build_value(b, name, rows, cols);
    gsq_graph_node(b->g, &n);
    return n.out;
}

int gsq_build_rows(gsq_builder *b, int in, int first, int rows, const char *name)
{
    return gsq_build_node(b, GSQ_OP_ROWS, in, -1, -1, first, rows, b->g->values[in].cols, name);
}

int gsq_build_patch_embed(gsq_builder *b, int in_chans, int img, int patch)
{
    int grid = img / patch;
    b->g->input = gsq_graph_value(b->g, "images", in_chans * img, img, 1);
    gsq_node n = gsq_graph_blank(GSQ_OP_PATCHIFY);
    n.in[0] = b->g->input;
    n.out = gsq_build_value(b, "patches", grid * grid, in_chans * patch * patch);
    n.attrs[0] = in_chans, n.attrs[1] = img, n.attrs[2] = patch;
    gsq_graph_node(b->g, &n);
    return gsq_build_linear(b, "patch_embed.proj", n.out, -1, -1, 1, "patch_embed");
}

/* A WINDOW or UNWINDOW node of geometry w from in (plus a residual) into a new value. */
static int rearrange(gsq_builder *b, gsq_op op, const gsq_window_geom *w, int in, int residual, const char *name)
{
    gsq_node n = gsq_graph_blank(op);
    n.in[0] = in;
    n.in[1] = residual;
    n.attrs[1] = w->grid, n.attrs[2] = w->window, n.attrs[3] = w->shift;
    int rows = op == GSQ_OP_WINDOW ? gsq_window_count(*w) * w->window * w->window : w->grid * w->grid;
    n.out = gsq_build_value(b, name, rows, b->g->values[in].cols);
    gsq_graph_node(b->g, &n);
    return n.out;
}

/* buf = prefix + part */
#define NAME(buf, part) (snprintf(buf, sizeof buf, "%s%s", prefix, part), buf)

int gsq_build_attention(gsq_builder *b, const char *prefix, int x, int heads, const gsq_window_geom *win)
{
    char name[GSQ_NAME_MAX], out[GSQ_NAME_MAX];
    int D = b->g->values[x].cols;
    /* windows are a rearrangement only when they are more than the grid itself */
    int windowed = win && (win->shift || win->window != win->grid);
    int h = gsq_build_layernorm(b, NAME(name, ".norm1"), x);
    if (windowed) h = rearrange(b, GSQ_OP_WINDOW, win, h, -1, NAME(name, ".attn.windows"));
    int qkv = gsq_build_linear(b, NAME(name, ".attn.qkv"), h, -1, -1, 1, name);
    int T = win ? win->window * win->window : b->g->values[x].rows, seq_rows = b->g->values[qkv].rows;
    gsq_node att = gsq_graph_blank(GSQ_OP_ATTENTION);
    att.in[0] = qkv;
    att.block = b->attentions++;
    att.attrs[0] = heads;
    if (win) {
        att.attrs[1] = win->grid, att.attrs[2] = win->window, att.attrs[3] = win->shift;
        att.param[0] = gsq_build_tensor(b, NAME(name, ".attn.relative_position_bias_table"));
    }
    att.aux = gsq_build_value(b, NAME(name, ".attn.probs"), seq_rows * heads, T); /* (heads, T, T) per sequence */
    att.out = gsq_build_value(b, NAME(name, ".attn"), seq_rows, D);
    gsq_graph_node(b->g, &att);
    if (!windowed)
        return gsq_build_linear(b, NAME(name, ".attn.proj"), att.out, -1, x, 1, NAME(out, ".attn.residual"));
    int y = gsq_build_linear(b, NAME(name, ".attn.proj"), att.out, -1, -1, 1, name);
    return rearrange(b, GSQ_OP_UNWINDOW, win, y, x, NAME(out, ".attn.residual"));
}

int gsq_build_mlp(gsq_builder *b, const char *prefix, int x)
{
    char name[GSQ_NAME_MAX], out[GSQ_NAME_MAX];
    int h = gsq_build_layernorm(b, NAME(name, ".norm2"), x);
    h = gsq_build_linear(b, NAME(name, ".mlp.fc1"), h, -1, -1, 1, name);
    gsq_node act = gsq_graph_blank(GSQ_OP_GELU);
    act.in[0] = h;
    act.out = gsq_build_value(b, NAME(name, ".mlp.act"), b->g->values[x].rows, b->g->values[h].cols);
    gsq_graph_node(b->g, &act);
    return gsq_build_linear(b, NAME(name, ".mlp.fc2"), act.out, -1, x, 1, NAME(out, ""));
}

int gsq_build_block(gsq_builder *b, const char *prefix, int x, int heads, const gsq_window_geom *win)
{
    x = gsq_build_mlp(b, prefix, gsq_build_attention(b, prefix, x, heads, win));
    if (!b->decoder) gsq_graph_block_output(b->g, x); /* feature distillation reads it */
    return x;
}
