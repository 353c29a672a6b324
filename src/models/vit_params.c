/* The parameter table of a ViT/DeiT (timm names and shapes, in state_dict order) and model
 * creation with its graph. */
#include "gpusq/graph.h"
#include "gpusq/vit.h"
#include "models/model_state.h"
#include "models/det_head.h"
#include "models/seg_head.h"

#include <stdint.h>
#include <stdio.h>

#define SHAPE(...) (int64_t[]){__VA_ARGS__}
#define ADD(nd, shp, ...) gsq_model_add_tensor(m, nd, shp, __VA_ARGS__)

/* Fills m's table in timm state_dict order (room for max_tensors). */
static void build_table(const gsq_vit_config *c, gsq_model *m)
{
    int64_t D = c->embed_dim, K = c->num_classes, P = c->patch_size;
    if (c->class_token) ADD(3, SHAPE(1, 1, D), "cls_token");
    if (c->distilled) ADD(3, SHAPE(1, 1, D), "dist_token");
    ADD(3, SHAPE(1, gsq_vit_tokens(c), D), "pos_embed");
    for (int i = 0; i < m->num_tensors; i++) m->tensors[i].no_decay = 1; /* timm's no_weight_decay() */
    ADD(4, SHAPE(D, c->in_chans, P, P), "patch_embed.proj.weight");
    ADD(1, SHAPE(D), "patch_embed.proj.bias");
    for (int l = 0; l < c->depth; l++) {
        char prefix[GSQ_NAME_MAX];
        snprintf(prefix, sizeof prefix, "blocks.%d", l);
        gsq_model_add_block(m, prefix, D, c->mlp_hidden, c->qkv_bias);
    }
    const char *norm = c->pool == GSQ_POOL_AVG ? "fc_norm" : "norm";
    ADD(1, SHAPE(D), "%s.weight", norm);
    ADD(1, SHAPE(D), "%s.bias", norm);
    if (c->task == GSQ_TASK_SEGMENT) {
        gsq_seg_head_table(m, c->seg_head, D, K);
        return;
    }
    if (c->task == GSQ_TASK_DETECT) {
        gsq_det_head_table(m, &c->det, gsq_vit_num_patches(c), D, c->mlp_hidden, K);
        return;
    }
    ADD(2, SHAPE(K, D), "head.weight");
    ADD(1, SHAPE(K), "head.bias");
    if (c->distilled) {
        ADD(2, SHAPE(K, D), "head_dist.weight");
        ADD(1, SHAPE(K), "head_dist.bias");
    }
}

static int max_tensors(const gsq_vit_config *c)
{
    int head = c->task == GSQ_TASK_SEGMENT ? gsq_seg_head_size(c->seg_head).tensors
               : c->task == GSQ_TASK_DETECT ? gsq_det_head_size(&c->det).tensors
                                            : 0;
    return 12 + 12 * c->depth + head;
}

gsq_status gsq_vit_describe(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err)
{
    *out = NULL;
    gsq_status st = gsq_vit_config_validate(cfg, err);
    if (st != GSQ_OK) return st;
    gsq_model *m;
    st = gsq_model_new(&m, GSQ_ARCH_VIT, max_tensors(cfg), err);
    if (st != GSQ_OK) return st;
    m->vit = *cfg;
    m->img_size = cfg->img_size, m->in_chans = cfg->in_chans, m->num_classes = cfg->num_classes;
    m->task = cfg->task, m->seg_head = cfg->seg_head, m->det = cfg->det;
    build_table(cfg, m);
    return gsq_model_describe_finish(m, out, err);
}

double gsq_vit_macs(const gsq_vit_config *cfg)
{
    gsq_model *m;
    if (gsq_vit_describe(&m, cfg, NULL) != GSQ_OK) return 0;
    gsq_graph_macs n = gsq_graph_count_macs(m->graph);
    gsq_model_free(m);
    return n.linear + n.attention;
}

gsq_status gsq_vit_create(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err)
{
    return gsq_model_create_finish(gsq_vit_describe(out, cfg, err), out, err);
}

