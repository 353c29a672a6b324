/* Compiling the engine's plan from the network's graph (engine_plan.h): the fusions, the parts
 * the time is reported in, and the arena of the float values that remain. */
#include "engine_plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gsq_engine_plan_part(gsq_engine_plan *p, const char *label)
{
    for (int i = 0; i < p->num_parts; i++)
        if (!strcmp(p->part_names[i], label)) return i;
    void *grown = realloc(p->part_names, (size_t)(p->num_parts + 1) * sizeof *p->part_names);
    if (!grown) return -1;
    p->part_names = grown;
    snprintf(p->part_names[p->num_parts], GSQ_ENGINE_PART_MAX, "%s", label);
    return p->num_parts++;
}

/* A linear's part: its name without the leading "word.number." of its place in a stack of blocks
 * ("blocks.3.attn.qkv" → "attn.qkv"), so that the blocks' linears of one kind add up. */
static void linear_label(const char *name, int gelu, char *out, size_t cap)
{
    const char *s = name;
    for (;;) {
        const char *dot = strchr(s, '.');
        if (!dot || dot[1] < '0' || dot[1] > '9') break;
        const char *after = dot + 1 + strspn(dot + 1, "0123456789");
        if (*after != '.') break;
        s = after + 1;
    }
    snprintf(out, cap, "%s%s", s, gelu ? "+gelu" : "");
}

static int root(const int *alias, int v)
{
    while (alias[v] != v) v = alias[v];
    return v;
}

/* Places the float values the steps write (and the aux values they write as scratch: float
 * LayerNorms' statistics, cross-attention's probabilities) in one arena: a value lives from its
 * step to its last reader's (the logits to the end); an accumulating linear's output is its
 * residual's buffer. */
static gsq_status place_values(gsq_engine_plan *p, const gsq_graph *g, int max_batch, gsq_error *err)
{
    int nv = g->num_values, ns = p->num_steps;
    size_t *size = calloc((size_t)nv, sizeof *size);
    int *first = calloc((size_t)nv, sizeof *first), *last = calloc((size_t)nv, sizeof *last);
    int *alias = malloc((size_t)nv * sizeof *alias), *step_of = malloc((size_t)g->num_nodes * sizeof *step_of);
    p->at = malloc((size_t)nv * sizeof *p->at);
    gsq_status st = size && first && last && alias && step_of && p->at
                        ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory planning");
    for (int v = 0; st == GSQ_OK && v < nv; v++) alias[v] = v, first[v] = last[v] = -1;
    for (int i = 0; st == GSQ_OK && i < g->num_nodes; i++) step_of[i] = -1;
    for (int s = 0; st == GSQ_OK && s < ns; s++) {
        const gsq_engine_step *t = &p->steps[s];
        const gsq_node *n = &g->nodes[t->node];
        step_of[t->node] = s;
        if (t->gelu) step_of[t->node + 1] = s;
        if (t->window >= 0) step_of[t->window] = s;
        int scratch = (n->op == GSQ_OP_LAYERNORM && t->feeds < 0) || n->op == GSQ_OP_CROSS_ATTENTION;
        int vals[2] = {t->out, scratch ? n->aux : -1};
        for (int k = 0; k < 2; k++) {
            int v = vals[k];
            if (v < 0) continue;
            size[v] = (size_t)max_batch * gsq_value_floats(g, v);
            first[v] = last[v] = s;
            if (v == g->logits) last[v] = ns;
        }
        if (t->accumulate) alias[t->out] = root(alias, n->in[1]);
    }
    for (int i = 0; st == GSQ_OK && i < g->num_nodes; i++) /* readers keep values alive */
        for (int k = 0; k < 2; k++) {
            int v = g->nodes[i].in[k];
            if (v >= 0 && size[v] && step_of[i] > last[v]) last[v] = step_of[i];
        }
    for (int v = 0; st == GSQ_OK && v < nv; v++) { /* an alias's life is its root's */
        int r = root(alias, v);
        if (r == v || !size[v]) continue;
        if (last[v] > last[r]) last[r] = last[v];
        size[v] = 0;
    }
    if (st == GSQ_OK) st = gsq_plan_arena(nv, size, first, last, p->at, &p->floats, err);
    for (int v = 0; st == GSQ_OK && v < nv; v++) {
        int r = root(alias, v);
        p->at[v] = size[r] ? p->at[r] : SIZE_MAX;
    }
    free(size);
    free(first);
    free(last);
    free(alias);
    free(step_of);
    return st;
}

gsq_status gsq_engine_plan_build(gsq_engine_plan *p, const gsq_graph *g, const gsq_engine_fusions *f, int max_batch,
                                 gsq_error *err)
{
    memset(p, 0, sizeof *p);
    int n = g->num_nodes;
    int *readers = calloc((size_t)g->num_values, sizeof *readers), *last_reader = calloc((size_t)g->num_values, sizeof *last_reader);
    p->steps = calloc((size_t)n, sizeof *p->steps);
    if (!readers || !last_reader || !p->steps) {
        free(readers);
        free(last_reader);
        gsq_engine_plan_free(p);
        return gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory planning");
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (g->nodes[i].in[k] >= 0) readers[g->nodes[i].in[k]]++, last_reader[g->nodes[i].in[k]] = i;
    gsq_status st = GSQ_OK;
    for (int i = 0; i < n && st == GSQ_OK; i++) {
        const gsq_node *node = &g->nodes[i];
        const gsq_linear *lin = node->op == GSQ_OP_LINEAR ? &g->linears[node->linear] : NULL;
        gsq_engine_step *prev = p->num_steps ? &p->steps[p->num_steps - 1] : NULL;
        gsq_engine_step t = {.node = i, .feeds = -1, .input = -1, .window = -1, .out = node->out};
        if (lin && lin->compressed && i + 1 < n && g->nodes[i + 1].op == GSQ_OP_GELU &&
            g->nodes[i + 1].in[0] == node->out && readers[node->out] == 1 && node->in[1] < 0) {
            t.gelu = 1;
            t.out = g->nodes[i + 1].out;
        }
        if ((lin || node->op == GSQ_OP_UNWINDOW) && node->in[1] >= 0 && last_reader[node->in[1]] == i &&
            node->in[1] != g->logits)
            t.accumulate = 1;
        if (lin && prev && prev->feeds == node->linear) t.input = prev->output;
        /* a LayerNorm read only by a window partition read only by the next linear: the LayerNorm
         * writes the linear's input in window order, and the partition has no step */
        int j = i + 1 + t.gelu;
        if (node->op == GSQ_OP_LAYERNORM && (f->feeds >> GSQ_OP_WINDOW & 1u) && j + 1 < n &&
            g->nodes[j].op == GSQ_OP_WINDOW && g->nodes[j].in[0] == t.out && readers[t.out] == 1) {
            t.window = j;
            t.out = g->nodes[j++].out;
        }
        const gsq_node *next = j < n ? &g->nodes[j] : NULL;
        int can = (f->feeds >> node->op & 1u) && (!lin || lin->compressed) && !t.accumulate && t.out != g->logits;
        if (can && next && next->op == GSQ_OP_LINEAR && next->in[0] == t.out && next->in[1] != t.out &&
            next->in_slice < 0 && g->linears[next->linear].compressed && readers[t.out] == 1) {
            t.feeds = next->linear;
            t.output = lin ? 1 - (t.input < 0 ? 0 : t.input) : 0;
            t.out = lin && f->fed_linear_scratch ? node->out : -1;
        } else if (t.window >= 0) { /* the partition runs after all */
            t.window = -1;
            t.out = node->out;
        }
        char label[GSQ_ENGINE_PART_MAX];
        if (lin) linear_label(lin->name, t.gelu, label, sizeof label);
        else snprintf(label, sizeof label, "%s", gsq_op_name(node->op));
        t.part = gsq_engine_plan_part(p, label);
        if (t.part < 0) st = gsq_fail(err, GSQ_ERR_NOMEM, "engine: out of memory planning");
        p->steps[p->num_steps++] = t;
        i += t.gelu + (t.window >= 0);
    }
    free(readers);
    free(last_reader);
    if (st == GSQ_OK) st = place_values(p, g, max_batch, err);
    if (st != GSQ_OK) gsq_engine_plan_free(p);
    return st;
}

void gsq_engine_plan_free(gsq_engine_plan *p)
{
    free(p->steps);
    free(p->at);
    free(p->part_names);
    memset(p, 0, sizeof *p);
}
