/* The graph's operations in float on the CPU (gsq_node_forward_f32 in gpusq/graph.h): what training's
 * forward and the CPU engine run alike, written once. */
#include <string.h>

#include "gpusq/graph.h"
#include "gpusq/nn.h"

void gsq_node_forward_f32(const gsq_graph *g, const gsq_node *n, const gsq_node_args *a)
{
    const gsq_value *xv = &g->values[n->in[0]], *yv = &g->values[n->out];
    const float *x = a->in[0];
    float *y = a->out;
    int B = a->batch, rows = (int)gsq_node_rows(g, n, B);
    switch (n->op) {
    case GSQ_OP_PATCHIFY:
        gsq_patchify(y, x, B, n->attrs[0], n->attrs[1], n->attrs[1], n->attrs[2]);
        break;
    case GSQ_OP_LINEAR: {
        const gsq_linear *l = &g->linears[n->linear];
        x += gsq_node_slice_offset(g, n, B);
        gsq_linear_forward(y, x, a->param[0], a->param[1], rows, l->cols, l->rows);
        if (a->in[1]) gsq_accumulate(y, a->in[1], (size_t)rows * l->rows);
        break;
    }
    case GSQ_OP_TOKENS:
        gsq_tokens_forward(y, x, a->param[0], a->param[1], a->param[2], B, xv->rows, xv->cols);
        break;
    case GSQ_OP_LAYERNORM:
        gsq_layernorm_forward(y, a->aux, a->aux + rows, x, a->param[0], a->param[1], rows, xv->cols, n->eps);
        break;
    case GSQ_OP_GELU:
        gsq_gelu_forward(y, x, (size_t)rows * xv->cols);
        break;
    case GSQ_OP_POOL:
        for (int k = 0; k < yv->slices; k++)
            gsq_pool_forward(y + (size_t)k * B * yv->cols, x, B, xv->rows, xv->cols, k ? GSQ_POOL_TOKEN : n->attrs[0],
                             k, n->attrs[2]);
        break;
    case GSQ_OP_MEAN2:
        for (size_t i = 0; i < (size_t)rows * xv->cols; i++) y[i] = 0.5f * (x[i] + a->in[1][i]);
        break;
    case GSQ_OP_WINDOW:
        gsq_windows_from_grid(y, x, B, xv->cols, gsq_node_window(n), 0);
        break;
    case GSQ_OP_UNWINDOW:
        gsq_windows_to_grid(y, x, B, xv->cols, gsq_node_window(n), 0);
        if (a->in[1]) gsq_accumulate(y, a->in[1], (size_t)B * gsq_value_floats(g, n->out));
        break;
    case GSQ_OP_MERGE:
        gsq_merge_forward(y, x, B, n->attrs[0], xv->cols);
        break;
    case GSQ_OP_ROWS: {
        size_t width = (size_t)yv->rows * yv->cols;
        for (int b = 0; b < B; b++)
            memcpy(y + b * width, x + ((size_t)b * xv->rows + (size_t)n->attrs[0]) * xv->cols, width * sizeof(float));
        break;
    }
    case GSQ_OP_PREPEND:
        gsq_prepend_forward(y, x, a->param[0], B, yv->rows - xv->rows, xv->rows, xv->cols);
        break;
    case GSQ_OP_L2NORM:
        gsq_l2norm_forward(y, x, rows, xv->cols);
        break;
    case GSQ_OP_MATMUL_NT:
        gsq_matmul_nt_forward(y, x, a->in[1], B, xv->rows, yv->cols, xv->cols);
        break;
    case GSQ_OP_CROSS_ATTENTION:
        gsq_cross_attention_forward(y, a->aux, NULL, 0.0f, 0, x, a->in[1], B, xv->rows, g->values[n->in[1]].rows,
                                    yv->cols, n->attrs[0]);
        break;
    case GSQ_OP_CONCAT: {
        const gsq_value *bv = &g->values[n->in[1]];
        if (n->attrs[0]) gsq_concat_forward(y, x, a->in[1], (size_t)B, gsq_value_floats(g, n->in[0]),
                                            gsq_value_floats(g, n->in[1]));
        else gsq_concat_forward(y, x, a->in[1], (size_t)rows, (size_t)xv->cols, (size_t)bv->cols);
        break;
    }
    case GSQ_OP_ATTENTION:
    case GSQ_OP_COUNT:
        break;
    }
}
