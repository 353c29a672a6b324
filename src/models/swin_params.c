/* The parameter table of a Swin Transformer (timm names and shapes, in state_dict order) and model
 * creation with its graph. */
#include "gpusq/graph.h"
#include "gpusq/swin.h"
#include "models/model_state.h"
#include "models/seg_head.h"

#include <stdint.h>

#define SHAPE(...) (int64_t[]){__VA_ARGS__}
#define ADD(nd, shp, ...) gsq_model_add_tensor(m, nd, shp, __VA_ARGS__)

static void build_table(const gsq_swin_config *c, gsq_model *m)
{
    int64_t D = c->dims[0], P = c->patch_size;
    ADD(4, SHAPE(D, c->in_chans, P, P), "patch_embed.proj.weight");
    ADD(1, SHAPE(D), "patch_embed.proj.bias");
    ADD(1, SHAPE(D), "patch_embed.norm.weight");
    ADD(1, SHAPE(D), "patch_embed.norm.bias");
    for (int s = 0; s < c->num_stages; s++) {
        int64_t C = c->dims[s], H = c->mlp_hidden[s], W = 2 * gsq_swin_stage_window(c, s) - 1;
        if (s > 0) {
            int64_t C4 = 4 * (int64_t)c->dims[s - 1];
            ADD(1, SHAPE(C4), "layers.%d.downsample.norm.weight", s);
            ADD(1, SHAPE(C4), "layers.%d.downsample.norm.bias", s);
            ADD(2, SHAPE(C, C4), "layers.%d.downsample.reduction.weight", s);
        }
        for (int j = 0; j < c->depths[s]; j++) {
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.norm1.weight", s, j);
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.norm1.bias", s, j);
            ADD(2, SHAPE(W * W, c->num_heads[s]), "layers.%d.blocks.%d.attn.relative_position_bias_table", s, j);
            m->tensors[m->num_tensors - 1].no_decay = 1; /* timm's no_weight_decay() */
            ADD(2, SHAPE(3 * C, C), "layers.%d.blocks.%d.attn.qkv.weight", s, j);
            if (c->qkv_bias) ADD(1, SHAPE(3 * C), "layers.%d.blocks.%d.attn.qkv.bias", s, j);
            ADD(2, SHAPE(C, C), "layers.%d.blocks.%d.attn.proj.weight", s, j);
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.attn.proj.bias", s, j);
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.norm2.weight", s, j);
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.norm2.bias", s, j);
            ADD(2, SHAPE(H, C), "layers.%d.blocks.%d.mlp.fc1.weight", s, j);
            ADD(1, SHAPE(H), "layers.%d.blocks.%d.mlp.fc1.bias", s, j);
            ADD(2, SHAPE(C, H), "layers.%d.blocks.%d.mlp.fc2.weight", s, j);
            ADD(1, SHAPE(C), "layers.%d.blocks.%d.mlp.fc2.bias", s, j);
        }
    }
    int64_t F = c->dims[c->num_stages - 1];
    ADD(1, SHAPE(F), "norm.weight");
    ADD(1, SHAPE(F), "norm.bias");
    if (c->task == GSQ_TASK_SEGMENT) {
        gsq_seg_head_table(m, c->seg_head, F, c->num_classes);
        return;
    }
    ADD(2, SHAPE(c->num_classes, F), "head.fc.weight");
    ADD(1, SHAPE(c->num_classes), "head.fc.bias");
}

gsq_status gsq_swin_describe(gsq_model **out, const gsq_swin_config *cfg, gsq_error *err)
{
    *out = NULL;
    gsq_status st = gsq_swin_config_validate(cfg, err);
    if (st != GSQ_OK) return st;
    gsq_model *m;
    int head = cfg->task == GSQ_TASK_SEGMENT ? gsq_seg_head_size(cfg->seg_head).tensors : 0;
    st = gsq_model_new(&m, GSQ_ARCH_SWIN, 8 + 3 * cfg->num_stages + 13 * gsq_swin_blocks(cfg) + head, err);
    if (st != GSQ_OK) return st;
    m->swin = *cfg;
    m->img_size = cfg->img_size, m->in_chans = cfg->in_chans, m->num_classes = cfg->num_classes;
    m->task = cfg->task, m->seg_head = cfg->seg_head;
    build_table(cfg, m);
    return gsq_model_describe_finish(m, out, err);
}

gsq_status gsq_swin_create(gsq_model **out, const gsq_swin_config *cfg, gsq_error *err)
{
    return gsq_model_create_finish(gsq_swin_describe(out, cfg, err), out, err);
}
