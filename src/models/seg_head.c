/* The segmentation heads (src/models/seg_head.h), after the backbone's final norm:
 *
 *   linear (Segmenter's linear decoder): patches ─LINEAR decode_head.cls→ logits
 *   mask (Segmenter's mask transformer):
 *     patches ─LINEAR decode_head.proj_dec→ ─PREPEND decode_head.cls_emb (K class embeddings)→
 *       ─ 2 blocks decode_head.blocks.{0,1} ─LAYERNORM decode_head.decoder_norm→
 *       rows K.. (patches)    ─LINEAR decode_head.proj_patch→   ─L2NORM→ ┐
 *       rows 0..K-1 (classes) ─LINEAR decode_head.proj_classes→ ─L2NORM→ ┴─MATMUL_NT (patches · classesᵀ)→
 *       ─LAYERNORM decode_head.mask_norm (over the K classes)→ logits
 *
 * Every linear of either head is compressed (pruned and quantized) like the backbone's. The
 * decoder's blocks are not block outputs: feature distillation reads the backbone's blocks, so a
 * teacher with either head distils a student with either, and it places a block's rows on the
 * patch grid after a few prefix tokens, which K class embeddings are not. The class embeddings go
 * before the patches (Segmenter appends them; attention,
 * with no position in the decoder, does not tell the two apart). proj_patch and proj_classes are
 * linear layers without bias, y = x·Wᵀ: Segmenter's parameter P (x·P) is Wᵀ. */
#include "models/seg_head.h"

#include <stdio.h>

#include "models/model_state.h"

#define SHAPE(...) (int64_t[]){__VA_ARGS__}
#define ADD(nd, shp, ...) gsq_model_add_tensor(m, nd, shp, __VA_ARGS__)

/* The mask transformer's heads over width d. */
static int mask_heads(int d) { return d / 64 > 1 ? d / 64 : 1; }

gsq_status gsq_seg_head_check(gsq_seg_head head, int width, int classes, gsq_error *err)
{
    if (head != GSQ_SEG_HEAD_LINEAR && head != GSQ_SEG_HEAD_MASK)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: unknown segmentation head %d", (int)head);
    if (classes > GSQ_SEGMENT_MAX_CLASSES)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: a segmenter has at most %d classes (label maps are 16-bit), "
                        "not %d", GSQ_SEGMENT_MAX_CLASSES, classes);
    if (head == GSQ_SEG_HEAD_MASK && width % mask_heads(width) != 0)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: the mask transformer's width %d is not divisible by its "
                        "%d heads (width / 64)", width, mask_heads(width));
    return GSQ_OK;
}

gsq_seg_head_room gsq_seg_head_size(gsq_seg_head head)
{
    if (head == GSQ_SEG_HEAD_LINEAR) return (gsq_seg_head_room){2, 1, 1, 1};
    /* per block (graph_build.c's, unwindowed) 12 tensors, 8 nodes, 11 values, 4 linears; around
     * them 9 tensors, 11 nodes, 13 values, 3 linears */
    int n = GSQ_MASK_HEAD_BLOCKS;
    return (gsq_seg_head_room){9 + 12 * n, 11 + 8 * n, 13 + 11 * n, 3 + 4 * n};
}

void gsq_seg_head_table(gsq_model *m, gsq_seg_head head, int64_t width, int64_t classes)
{
    int64_t d = width, K = classes;
    if (head == GSQ_SEG_HEAD_LINEAR) {
        ADD(2, SHAPE(K, d), GSQ_SEG_HEAD ".weight");
        ADD(1, SHAPE(K), GSQ_SEG_HEAD ".bias");
        return;
    }
    ADD(2, SHAPE(d, d), "decode_head.proj_dec.weight");
    ADD(1, SHAPE(d), "decode_head.proj_dec.bias");
    ADD(3, SHAPE(1, K, d), GSQ_MASK_HEAD_CLASSES);
    m->tensors[m->num_tensors - 1].no_decay = 1; /* Segmenter's no_weight_decay() */
    for (int l = 0; l < GSQ_MASK_HEAD_BLOCKS; l++) {
        char prefix[GSQ_NAME_MAX];
        snprintf(prefix, sizeof prefix, "decode_head.blocks.%d", l);
        gsq_model_add_block(m, prefix, d, 4 * d, 1);
    }
    ADD(1, SHAPE(d), "decode_head.decoder_norm.weight");
    ADD(1, SHAPE(d), "decode_head.decoder_norm.bias");
    ADD(2, SHAPE(d, d), "decode_head.proj_patch.weight");
    ADD(2, SHAPE(d, d), "decode_head.proj_classes.weight");
    ADD(1, SHAPE(K), "decode_head.mask_norm.weight");
    ADD(1, SHAPE(K), "decode_head.mask_norm.bias");
}

/* One side of the masks: rows first.. of the decoder's output x, projected by linear `proj` and
 * L2-normalised. */
static int unit_rows(gsq_builder *b, int x, int first, int rows, const char *what, const char *proj)
{
    char name[GSQ_NAME_MAX];
    snprintf(name, sizeof name, "decode_head.%s", what);
    int y = gsq_build_linear(b, proj, gsq_build_rows(b, x, first, rows, name), -1, -1, 1, proj);
    snprintf(name, sizeof name, "decode_head.%s_unit", what);
    return gsq_build_node(b, GSQ_OP_L2NORM, y, -1, -1, 0, rows, b->g->values[y].cols, name);
}

static int mask_head(gsq_builder *b, int x, int K)
{
    int N = b->g->values[x].rows;
    x = gsq_build_linear(b, "decode_head.proj_dec", x, -1, -1, 1, "decode_head.proj_dec");
    int d = b->g->values[x].cols;
    x = gsq_build_node(b, GSQ_OP_PREPEND, x, -1, gsq_build_tensor(b, GSQ_MASK_HEAD_CLASSES), 0, K + N, d,
                       "decode_head.tokens");
    b->decoder = 1;
    for (int l = 0; l < GSQ_MASK_HEAD_BLOCKS; l++) {
        char prefix[GSQ_NAME_MAX];
        snprintf(prefix, sizeof prefix, "decode_head.blocks.%d", l);
        x = gsq_build_block(b, prefix, x, mask_heads(d), NULL);
    }
    b->decoder = 0;
    x = gsq_build_layernorm(b, "decode_head.decoder_norm", x);
    int patches = unit_rows(b, x, K, N, "patches", "decode_head.proj_patch");
    int classes = unit_rows(b, x, 0, K, "classes", "decode_head.proj_classes");
    x = gsq_build_node(b, GSQ_OP_MATMUL_NT, patches, classes, -1, 0, N, K, "decode_head.masks");
    int logits = gsq_build_layernorm(b, "decode_head.mask_norm", x);
    snprintf(b->g->values[logits].name, sizeof b->g->values[logits].name, "logits"); /* every head's output */
    return logits;
}

int gsq_build_seg_head(gsq_builder *b, gsq_seg_head head, int x, int classes)
{
    if (head == GSQ_SEG_HEAD_MASK) return mask_head(b, x, classes);
    return gsq_build_linear(b, GSQ_SEG_HEAD, x, -1, -1, 1, "logits");
}
