/* The engine's roofline (include/gpusq/engine.h): the machine's ceilings, measured by the
 * kernels' instruction set (kernels/cpu/int8_peak.c), and each part's work, counted from the
 * plan's steps — so a benchmark can say where each part of the forward pass sits against its
 * limit. */
#include "engine_state.h"
#include "gpusq/kernels.h"
#include "kernels/cpu/int8_gemm.h"

gsq_status gsq_engine_measure_ceilings(int threads, gsq_engine_ceilings *out, gsq_error *err)
{
    if (threads <= 0) threads = gsq_get_num_threads();
    out->macs_per_second = gsq_i8_peak_macs(gsq_i8_isa_active(), threads);
    out->bytes_per_second = gsq_read_bandwidth(threads);
    if (!(out->bytes_per_second > 0))
        return gsq_fail(err, GSQ_ERR_NOMEM, "roofline: out of memory for the bandwidth buffer (256 MiB)");
    return GSQ_OK;
}

/* Bytes of value v for a batch of B, as floats. */
static double float_bytes(const gsq_graph *g, int v, int B) { return v < 0 ? 0 : 4.0 * (double)gsq_value_floats(g, v) * B; }

void gsq_engine_part_work(const gsq_engine *e, int part, int B, double *macs, double *bytes)
{
    const gsq_graph *g = e->graph;
    double mac = 0, byte = 0;
    for (int s = 0; s < e->plan.num_steps; s++) {
        const gsq_engine_step *t = &e->plan.steps[s];
        if (t->part != part) continue;
        const gsq_node *n = &g->nodes[t->node];
        double in = float_bytes(g, n->in[0], B), out = float_bytes(g, n->out, B);
        if (n->op == GSQ_OP_POOL && n->attrs[0] != GSQ_POOL_AVG) in = out; /* it reads the tokens it keeps */
        mac += B * gsq_graph_node_macs(g, n);
        if (n->op == GSQ_OP_LINEAR) {
            const gsq_linear *l = &g->linears[n->linear];
            double M = (double)gsq_node_rows(g, n, B), N = l->rows, K = l->cols;
            in = 4 * M * K; /* the slice it reads */
            if (l->compressed) { /* packed codes; fed int8 input codes; output codes when it feeds */
                byte += (double)e->linears[n->linear].w.bytes + (t->input >= 0 ? M * K : in);
                byte += t->feeds >= 0 ? M * N : out * (t->accumulate ? 2 : 1);
            } else {
                byte += 4 * N * K + in + out;
            }
        } else { /* the rest: read their inputs, write their output (codes when it feeds) */
            byte += in + float_bytes(g, n->in[1], B) + (t->feeds >= 0 ? out / 4 : out);
        }
    }
    *macs = mac;
    *bytes = byte;
}
