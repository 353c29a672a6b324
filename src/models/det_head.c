/* A detector's head (src/models/det_head.h): DETR's transformer decoder over the backbone's
 * normalised patch tokens, with what makes it learn from small data quickly (docs/DETECTION.md):
 *
 *   patches ─LINEAR det_head.input_proj→ ─TOKENS + det_head.memory_pos (learned, from 2D sines)→ memory
 *   det_head.query_embed (Q learned queries, the decoder's input; PREPEND + ROWS: every operation
 *     reads a value)
 *   L layers det_head.decoder.layers.l, pre-norm like the backbone's blocks:
 *     x + self-attention (norm1, attn.qkv, attn.proj), over the queries
 *     x + cross-attention (cross_norm, cross_attn.q of the queries, cross_attn.kv of the memory,
 *         cross_attn.proj)
 *     x + MLP (norm2, mlp.fc1, GELU, mlp.fc2)
 *     ─LAYERNORM det_head.decoder_norm (shared)→ layer l's output
 *   the L outputs stacked (CONCAT) ─ class head det_head.class_embed (classes + 1, the last no
 *     object) and box head det_head.bbox_embed.layers.{0,1,2} (3-layer MLP, GELU) joined (CONCAT)
 *     → logits (L·Q, classes + 5): every layer scored by the same heads (DETR's auxiliary losses)
 *
 * The decoder's linears are compressed like the backbone's; the class and box heads, like a
 * classifier's head, are not. The decoder's blocks are not block outputs (feature distillation
 * reads the backbone's). */
#include "models/det_head.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/model_state.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}
#define ADD(nd, shp, ...) gsq_model_add_tensor(m, nd, shp, __VA_ARGS__)

gsq_status gsq_det_head_check(const gsq_det_head *head, int width, int heads, int classes, gsq_error *err)
{
    if (head->queries < 1 || head->queries > 1000)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: %d detection queries is outside [1, 1000]", head->queries);
    if (head->layers < 1 || head->layers > 32)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: %d decoder layers is outside [1, 32]", head->layers);
    if (width % heads != 0)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: width %d is not divisible by %d heads", width, heads);
    if (classes > (1 << 20) - 5)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: a detector of %d classes is too large", classes);
    return GSQ_OK;
}

gsq_det_head_room gsq_det_head_size(const gsq_det_head *head)
{
    /* per layer: a block's 12 tensors + 8 of cross-attention; nodes 8 + 6, values 11 + 9, linears
     * 4 + 3; around them 13 tensors, 14 nodes, 17 values, 5 linears, and a CONCAT per layer */
    int n = head->layers;
    return (gsq_det_head_room){13 + 20 * n, 14 + 15 * n, 17 + 21 * n, 5 + 7 * n};
}

void gsq_det_head_table(gsq_model *m, const gsq_det_head *head, int64_t tokens, int64_t width, int64_t hidden,
                        int64_t classes)
{
    int64_t d = width;
    ADD(2, SHAPE(d, d), "det_head.input_proj.weight");
    ADD(1, SHAPE(d), "det_head.input_proj.bias");
    ADD(3, SHAPE(1, tokens, d), "det_head.memory_pos");
    ADD(3, SHAPE(1, head->queries, d), "det_head.query_embed");
    m->tensors[m->num_tensors - 1].no_decay = m->tensors[m->num_tensors - 2].no_decay = 1; /* embeddings */
    for (int l = 0; l < head->layers; l++) {
        char prefix[GSQ_NAME_MAX];
        snprintf(prefix, sizeof prefix, "det_head.decoder.layers.%d", l);
        gsq_model_add_block(m, prefix, d, hidden, 1);
        ADD(1, SHAPE(d), "%s.cross_norm.weight", prefix);
        ADD(1, SHAPE(d), "%s.cross_norm.bias", prefix);
        ADD(2, SHAPE(d, d), "%s.cross_attn.q.weight", prefix);
        ADD(1, SHAPE(d), "%s.cross_attn.q.bias", prefix);
        ADD(2, SHAPE(2 * d, d), "%s.cross_attn.kv.weight", prefix);
        ADD(1, SHAPE(2 * d), "%s.cross_attn.kv.bias", prefix);
        ADD(2, SHAPE(d, d), "%s.cross_attn.proj.weight", prefix);
        ADD(1, SHAPE(d), "%s.cross_attn.proj.bias", prefix);
    }
    ADD(1, SHAPE(d), "det_head.decoder_norm.weight");
    ADD(1, SHAPE(d), "det_head.decoder_norm.bias");
    ADD(2, SHAPE(classes + 1, d), "det_head.class_embed.weight");
    ADD(1, SHAPE(classes + 1), "det_head.class_embed.bias");
    for (int l = 0; l < 3; l++) {
        int64_t out = l < 2 ? d : 4;
        ADD(2, SHAPE(out, d), "det_head.bbox_embed.layers.%d.weight", l);
        ADD(1, SHAPE(out), "det_head.bbox_embed.layers.%d.bias", l);
    }
}

/* x + proj(cross-attention(q(cross_norm(x)), kv(memory))) of the decoder layer named prefix. */
static int cross_attention(gsq_builder *b, const char *prefix, int x, int memory, int heads)
{
    char name[GSQ_NAME_MAX], out[GSQ_NAME_MAX];
#define NAME(buf, part) (snprintf(buf, sizeof buf, "%s%s", prefix, part), buf)
    int Q = b->g->values[x].rows, N = b->g->values[memory].rows, d = b->g->values[x].cols;
    int h = gsq_build_layernorm(b, NAME(name, ".cross_norm"), x);
    int q = gsq_build_linear(b, NAME(name, ".cross_attn.q"), h, -1, -1, 1, name);
    int kv = gsq_build_linear(b, NAME(name, ".cross_attn.kv"), memory, -1, -1, 1, name);
    gsq_node att = gsq_graph_blank(GSQ_OP_CROSS_ATTENTION);
    att.in[0] = q;
    att.in[1] = kv;
    att.attrs[0] = heads;
    att.aux = gsq_build_value(b, NAME(name, ".cross_attn.probs"), Q * heads, N); /* (heads, Q, N) per image */
    att.out = gsq_build_value(b, NAME(name, ".cross_attn"), Q, d);
    gsq_graph_node(b->g, &att);
    return gsq_build_linear(b, NAME(name, ".cross_attn.proj"), att.out, -1, x, 1, NAME(out, ".cross_attn.residual"));
#undef NAME
}

int gsq_build_det_head(gsq_builder *b, const gsq_det_head *head, int x, int heads, int classes)
{
    int N = b->g->values[x].rows, d = b->g->values[x].cols, Q = head->queries;
    int memory = gsq_build_linear(b, "det_head.input_proj", x, -1, -1, 1, "det_head.input_proj");
    gsq_node pos = gsq_graph_blank(GSQ_OP_TOKENS);
    pos.in[0] = memory;
    pos.param[2] = gsq_build_tensor(b, "det_head.memory_pos");
    pos.out = memory = gsq_build_value(b, "det_head.memory", N, d);
    gsq_graph_node(b->g, &pos);
    int t = gsq_build_node(b, GSQ_OP_PREPEND, memory, -1, gsq_build_tensor(b, "det_head.query_embed"), 0, Q + N, d,
                 "det_head.queries_and_memory");
    t = gsq_build_rows(b, t, 0, Q, "det_head.queries");
    b->decoder = 1;
    int stacked = -1;
    for (int l = 0; l < head->layers; l++) {
        char prefix[40], name[GSQ_NAME_MAX]; /* "det_head.decoder.layers.31" */
        snprintf(prefix, sizeof prefix, "det_head.decoder.layers.%d", l);
        t = gsq_build_attention(b, prefix, t, heads, NULL);
        t = cross_attention(b, prefix, t, memory, heads);
        t = gsq_build_mlp(b, prefix, t);
        int y = gsq_build_layernorm(b, "det_head.decoder_norm", t);
        snprintf(b->g->values[y].name, sizeof b->g->values[y].name, "det_head.decoder_norm.%d", l); /* one name */
        snprintf(b->g->values[y - 1].name, sizeof b->g->values[y].name, "det_head.decoder_norm.%d.stats", l);
        snprintf(name, sizeof name, "det_head.outputs.%d", l);
        stacked = l ? gsq_build_node(b, GSQ_OP_CONCAT, stacked, y, -1, 1, (l + 1) * Q, d, name) : y;
    }
    b->decoder = 0;
    int cls = gsq_build_linear(b, "det_head.class_embed", stacked, -1, -1, 0, "det_head.class_logits");
    int box = stacked;
    for (int l = 0; l < 3; l++) {
        char name[GSQ_NAME_MAX];
        snprintf(name, sizeof name, "det_head.bbox_embed.layers.%d", l);
        box = gsq_build_linear(b, name, box, -1, -1, 0, name);
        if (l < 2) {
            snprintf(name, sizeof name, "det_head.bbox_embed.act.%d", l);
            box = gsq_build_node(b, GSQ_OP_GELU, box, -1, -1, 0, head->layers * Q, d, name);
        }
    }
    return gsq_build_node(b, GSQ_OP_CONCAT, cls, box, -1, 0, head->layers * Q, classes + 5, "logits");
}

void gsq_det_head_init(gsq_model *m, gsq_rng *rng)
{
    const gsq_param *pos = gsq_model_find_param(m, "det_head.memory_pos");
    const gsq_param *queries = gsq_model_find_param(m, "det_head.query_embed");
    int width = (int)pos->shape[2], grid = (int)lround(sqrt((double)pos->shape[1]));
    gsq_det_sine_positions(m->params + pos->offset, grid, width);
    for (size_t j = 0; j < queries->numel; j++) m->params[queries->offset + j] = gsq_rng_normal(rng);
    const char *last[2] = {"det_head.bbox_embed.layers.2.weight", "det_head.bbox_embed.layers.2.bias"};
    for (int k = 0; k < 2; k++) {
        const gsq_param *p = gsq_model_find_param(m, last[k]);
        memset(m->params + p->offset, 0, p->numel * sizeof(float));
    }
}

void gsq_det_sine_positions(float *out, int grid, int width)
{
    int half = width / 2;
    const double scale = 6.283185307179586, eps = 1e-6; /* 2π */
    for (int i = 0; i < grid; i++)
        for (int j = 0; j < grid; j++) {
            float *p = out + ((size_t)i * grid + j) * width;
            double at[2] = {(i + 1) / (grid + eps) * scale, (j + 1) / (grid + eps) * scale}; /* row, column */
            for (int a = 0; a < 2; a++)
                for (int k = 0; k < half; k++) {
                    double v = at[a] / pow(10000.0, 2.0 * (k / 2) / half);
                    p[a * half + k] = (float)(k % 2 ? cos(v) : sin(v));
                }
            if (width % 2) p[width - 1] = 0.0f;
        }
}
