/* The network description (include/gpusq/graph.h): building it, looking things up, counting
 * multiply-accumulates, and the one arena planner that training, inference and backward share. */
#include "gpusq/graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Capacities and the failure flag live after the public fields. */
typedef struct {
    gsq_graph g;
    int cap_nodes, cap_values, cap_linears;
    int failed; /* an add went past the capacity the builder asked for */
} graph_builder;

static graph_builder *builder(gsq_graph *g) { return (graph_builder *)g; }

static const char *const op_names[] = {"patchify", "linear", "tokens", "layernorm", "attention", "gelu", "pool",
                                      "mean2", "window", "unwindow", "merge", "rows", "prepend", "l2norm", "matmul_nt",
                                      "cross_attention", "concat"};
_Static_assert(sizeof op_names / sizeof op_names[0] == GSQ_OP_COUNT, "one name per operation");

const char *gsq_op_name(gsq_op op) { return (unsigned)op < GSQ_OP_COUNT ? op_names[op] : "?"; }

gsq_status gsq_graph_create(gsq_graph **out, int max_nodes, int max_values, int max_linears, gsq_error *err)
{
    graph_builder *b = calloc(1, sizeof *b);
    if (b) {
        b->g.nodes = calloc((size_t)max_nodes, sizeof *b->g.nodes);
        b->g.values = calloc((size_t)max_values, sizeof *b->g.values);
        b->g.linears = calloc((size_t)max_linears, sizeof *b->g.linears);
        b->g.blocks = calloc((size_t)max_linears, sizeof *b->g.blocks); /* a block has a linear */
    }
    if (!b || !b->g.nodes || !b->g.values || !b->g.linears || !b->g.blocks) {
        gsq_graph_free(b ? &b->g : NULL);
        *out = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory describing the network");
    }
    b->cap_nodes = max_nodes, b->cap_values = max_values, b->cap_linears = max_linears;
    b->g.input = b->g.logits = -1;
    *out = &b->g;
    return GSQ_OK;
}

int gsq_graph_value(gsq_graph *g, const char *name, int rows, int cols, int slices)
{
    graph_builder *b = builder(g);
    if (g->num_values == b->cap_values) {
        b->failed = 1;
        return 0;
    }
    gsq_value *v = &g->values[g->num_values];
    memset(v, 0, sizeof *v);
    strncpy(v->name, name, sizeof v->name - 1);
    v->rows = rows;
    v->cols = cols;
    v->slices = slices;
    v->producer = -1;
    return g->num_values++;
}

gsq_node gsq_graph_blank(gsq_op op)
{
    return (gsq_node){.op = op, .in = {-1, -1}, .out = -1, .aux = -1, .param = {-1, -1, -1}, .linear = -1,
                      .in_slice = -1, .block = -1};
}

int gsq_graph_node(gsq_graph *g, const gsq_node *node)
{
    graph_builder *b = builder(g);
    if (g->num_nodes == b->cap_nodes) {
        b->failed = 1;
        return 0;
    }
    g->nodes[g->num_nodes] = *node;
    g->values[node->out].producer = g->num_nodes;
    if (node->aux >= 0) g->values[node->aux].producer = g->num_nodes;
    if (node->op == GSQ_OP_ATTENTION && node->block + 1 > g->num_attentions) g->num_attentions = node->block + 1;
    return g->num_nodes++;
}

int gsq_graph_linear(gsq_graph *g, const gsq_linear *lin)
{
    graph_builder *b = builder(g);
    if (g->num_linears == b->cap_linears) {
        b->failed = 1;
        return 0;
    }
    g->linears[g->num_linears] = *lin;
    return g->num_linears++;
}

void gsq_graph_block_output(gsq_graph *g, int v)
{
    graph_builder *b = builder(g);
    if (g->num_blocks == b->cap_linears) {
        b->failed = 1;
        return;
    }
    g->values[v].tap = 1;
    g->blocks[g->num_blocks++] = v;
}

gsq_status gsq_graph_finish(gsq_graph *g, gsq_error *err)
{
    if (builder(g)->failed) return gsq_fail(err, GSQ_ERR_ARG, "the network's builder added more than it reserved");
    return GSQ_OK;
}

void gsq_graph_free(gsq_graph *g)
{
    if (!g) return;
    free(g->nodes);
    free(g->values);
    free(g->linears);
    free(g->blocks);
    free(builder(g));
}

size_t gsq_value_floats(const gsq_graph *g, int v)
{
    const gsq_value *x = &g->values[v];
    return (size_t)x->rows * (size_t)x->cols * (size_t)x->slices;
}

size_t gsq_node_rows(const gsq_graph *g, const gsq_node *n, int B)
{
    const gsq_value *x = &g->values[n->in[0]];
    return (size_t)B * (size_t)x->rows * (size_t)(n->in_slice >= 0 ? 1 : x->slices);
}

size_t gsq_node_slice_offset(const gsq_graph *g, const gsq_node *n, int B)
{
    const gsq_value *x = &g->values[n->in[0]];
    return n->in_slice > 0 ? (size_t)n->in_slice * (size_t)B * (size_t)x->rows * (size_t)x->cols : 0;
}

int gsq_graph_find_value(const gsq_graph *g, const char *name)
{
    for (int v = 0; v < g->num_values; v++)
        if (strcmp(g->values[v].name, name) == 0) return v;
    return -1;
}

int gsq_graph_find_linear(const gsq_graph *g, const char *name)
{
    for (int i = 0; i < g->num_linears; i++)
        if (strcmp(g->linears[i].name, name) == 0) return i;
    return -1;
}

const gsq_node *gsq_graph_attention(const gsq_graph *g, int block)
{
    for (int i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == GSQ_OP_ATTENTION && g->nodes[i].block == block) return &g->nodes[i];
    return NULL;
}

const char *gsq_graph_attention_qkv(const gsq_graph *g, int block)
{
    const gsq_node *n = gsq_graph_attention(g, block);
    const gsq_node *p = n ? &g->nodes[g->values[n->in[0]].producer] : NULL;
    return p && p->op == GSQ_OP_LINEAR ? g->linears[p->linear].name : "";
}

int gsq_graph_compressed_linears(const gsq_graph *g)
{
    int n = 0;
    for (int i = 0; i < g->num_linears; i++) n += g->linears[i].compressed;
    return n;
}

double gsq_graph_linear_macs(const gsq_graph *g, int linear)
{
    const gsq_linear *l = &g->linears[linear];
    return (double)gsq_node_rows(g, &g->nodes[l->node], 1) * l->rows * l->cols;
}

int gsq_attention_tokens(const gsq_graph *g, const gsq_node *n)
{
    return n->attrs[2] > 0 ? n->attrs[2] * n->attrs[2] : g->values[n->in[0]].rows;
}

double gsq_graph_node_macs(const gsq_graph *g, const gsq_node *n)
{
    if (n->op == GSQ_OP_LINEAR) return gsq_graph_linear_macs(g, n->linear);
    if (n->op == GSQ_OP_MATMUL_NT) /* (M, C) · (N, C)ᵀ */
        return (double)g->values[n->in[0]].rows * g->values[n->in[1]].rows * g->values[n->in[0]].cols;
    if (n->op == GSQ_OP_CROSS_ATTENTION) /* q·kᵀ and probabilities·v over memory of N */
        return 2.0 * g->values[n->in[0]].rows * g->values[n->in[1]].rows * g->values[n->out].cols;
    if (n->op != GSQ_OP_ATTENTION) return 0;
    double rows = g->values[n->in[0]].rows, T = gsq_attention_tokens(g, n), D = g->values[n->out].cols;
    return 2 * rows * T * D; /* q·kᵀ and probabilities·v over all heads, per sequence of T */
}

gsq_graph_macs gsq_graph_count_macs(const gsq_graph *g)
{
    gsq_graph_macs m = {0, 0, 0};
    for (int i = 0; i < g->num_linears; i++) {
        double n = gsq_graph_linear_macs(g, i);
        m.linear += n;
        if (g->linears[i].compressed) m.compressed += n;
    }
    for (int i = 0; i < g->num_nodes; i++)
        if (g->nodes[i].op == GSQ_OP_ATTENTION || g->nodes[i].op == GSQ_OP_MATMUL_NT ||
            g->nodes[i].op == GSQ_OP_CROSS_ATTENTION)
            m.attention += gsq_graph_node_macs(g, &g->nodes[i]);
    return m;
}

/* First fit in order of decreasing size: each array goes at the lowest offset where it overlaps
 * no array already placed whose lifetime meets its own. */
gsq_status gsq_plan_arena(int n, const size_t *size, const int *first, const int *last, size_t *offset, size_t *total,
                          gsq_error *err)
{
    *total = 0;
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory planning activations");
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: stable, and n is a few hundred */
        for (int j = i; j > 0 && size[order[j]] > size[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    gsq_status st = GSQ_OK;
    for (int i = 0; i < n && st == GSQ_OK; i++) {
        int a = order[i];
        size_t need = (size[a] + 15) & ~(size_t)15, at = 0;
        for (int moved = 1; moved;) { /* move past every placed conflict until none is left */
            moved = 0;
            for (int j = 0; j < i; j++) {
                int b = order[j];
                size_t bn = (size[b] + 15) & ~(size_t)15;
                if (first[b] > last[a] || first[a] > last[b]) continue;
                if (at < offset[b] + bn && offset[b] < at + need) {
                    at = offset[b] + bn;
                    moved = 1;
                }
            }
        }
        offset[a] = at;
        if (need < size[a] || at + need < at) st = gsq_fail(err, GSQ_ERR_NOMEM, "activations overflow the address space");
        else if (at + need > *total) *total = at + need;
    }
    free(order);
    return st;
}

gsq_status gsq_graph_plan_forward(const gsq_graph *g, int batch, int training, size_t *offset, size_t *total,
                                  gsq_error *err)
{
    int n = g->num_values;
    size_t *size = malloc((size_t)n * sizeof *size);
    int *first = malloc((size_t)n * sizeof *first), *last = malloc((size_t)n * sizeof *last);
    gsq_status st = size && first && last ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "out of memory planning activations");
    *total = 0;
    for (int v = 0; st == GSQ_OK && v < n; v++) {
        const gsq_value *x = &g->values[v];
        size_t per = gsq_value_floats(g, v);
        if (per && (size_t)batch > SIZE_MAX / 4 / per) st = gsq_fail(err, GSQ_ERR_NOMEM, "activations for a batch of %d "
                                                                     "overflow the address space", batch);
        size[v] = (size_t)batch * per;
        first[v] = x->producer;
        last[v] = training || x->tap ? g->num_nodes : x->producer;
        if (v == g->input) size[v] = 0, first[v] = last[v] = -1;
    }
    for (int i = 0; st == GSQ_OK && !training && i < g->num_nodes; i++)
        for (int k = 0; k < 2; k++)
            if (g->nodes[i].in[k] >= 0 && last[g->nodes[i].in[k]] < i) last[g->nodes[i].in[k]] = i;
    if (st == GSQ_OK) st = gsq_plan_arena(n, size, first, last, offset, total, err);
    if (st == GSQ_OK) offset[g->input] = SIZE_MAX;
    free(size);
    free(first);
    free(last);
    return st;
}
