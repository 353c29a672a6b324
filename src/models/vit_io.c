/* Loading and saving ViT/DeiT weights as timm-named safetensors, and inferring the architecture
 * from the tensor shapes when no configuration is given. */
#include "gpusq/safetensors.h"
#include "gpusq/vit.h"
#include "models/model_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

gsq_status gsq_vit_config_from_meta(const gsq_st_file *f, gsq_vit_config *cfg, gsq_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    struct { const char *key; int *dst; } ints[] = {
        {"img_size", &cfg->img_size}, {"patch_size", &cfg->patch_size}, {"in_chans", &cfg->in_chans},
        {"num_classes", &cfg->num_classes}, {"embed_dim", &cfg->embed_dim}, {"depth", &cfg->depth},
        {"num_heads", &cfg->num_heads}, {"mlp_hidden", &cfg->mlp_hidden}, {"qkv_bias", &cfg->qkv_bias},
        {"class_token", &cfg->class_token}, {"distilled", &cfg->distilled},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int r = gsq_file_meta_int(f, ints[i].key, ints[i].dst);
        if (r <= 0)
            return gsq_fail(err, r ? GSQ_ERR_FORMAT : GSQ_ERR_MISSING, "%s: metadata '%s' is %s", gsq_st_label(f),
                            ints[i].key, r ? "not a valid integer" : "missing");
    }
    const char *pool = gsq_st_meta_get(f, "pool");
    if (!pool) return gsq_fail(err, GSQ_ERR_MISSING, "%s: metadata 'pool' is missing", gsq_st_label(f));
    if (strcmp(pool, "token") && strcmp(pool, "avg"))
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata pool '%.40s' is neither token nor avg", gsq_st_label(f), pool);
    cfg->pool = strcmp(pool, "avg") == 0 ? GSQ_POOL_AVG : GSQ_POOL_TOKEN;
    gsq_status st = gsq_file_meta_eps(f, 0.0f, &cfg->ln_eps, err);
    gsq_task_head head = {0};
    if (st == GSQ_OK) st = gsq_file_meta_task(f, &head, err);
    if (st == GSQ_OK) cfg->task = head.task, cfg->seg_head = head.seg_head, cfg->det = head.det;
    if (st != GSQ_OK) return st;
    st = gsq_vit_config_validate(cfg, err);
    if (st != GSQ_OK) {
        gsq_error inner = *err;
        return gsq_fail(err, st, "%s: %s", gsq_st_label(f), inner.msg);
    }
    return GSQ_OK;
}

gsq_status gsq_vit_infer_config(const gsq_st_file *f, int num_heads, gsq_vit_config *cfg,
                                gsq_error *err)
{
    const char *label = gsq_st_label(f);
    int64_t pw[4] = {0}, fc1[2] = {0}, pos[3] = {0};
    gsq_status st = gsq_file_tensor_shape(f, "patch_embed.proj.weight", 4, pw, err);
    if (st == GSQ_OK) st = gsq_file_tensor_shape(f, "blocks.0.mlp.fc1.weight", 2, fc1, err);
    memset(cfg, 0, sizeof *cfg);
    gsq_task_head head = {0};
    if (st == GSQ_OK) st = gsq_file_head(f, "head", &head, &cfg->num_classes, err);
    cfg->task = head.task, cfg->seg_head = head.seg_head, cfg->det = head.det;
    if (st == GSQ_OK) st = gsq_file_tensor_shape(f, "pos_embed", 3, pos, err);
    if (st != GSQ_OK) return st;
    if (pw[0] > 1 << 14 || pw[1] > 64 || pw[2] != pw[3] || pw[2] > 8192 || fc1[0] > 1 << 16 || pos[1] > 1 << 17)
        return gsq_fail(err, GSQ_ERR_SHAPE,
                        "%s: tensor shapes are not those of a ViT (patch_embed.proj.weight [%lld, %lld, %lld, %lld])",
                        label, (long long)pw[0], (long long)pw[1], (long long)pw[2], (long long)pw[3]);
    cfg->embed_dim = (int)pw[0];
    cfg->in_chans = (int)pw[1];
    cfg->patch_size = (int)pw[2];
    cfg->mlp_hidden = (int)fc1[0];
    char name[GSQ_NAME_MAX];
    while (cfg->depth < 256) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", cfg->depth);
        if (!gsq_st_find(f, name)) break;
        cfg->depth++;
    }
    cfg->qkv_bias = gsq_st_find(f, "blocks.0.attn.qkv.bias") != NULL;
    cfg->class_token = gsq_st_find(f, "cls_token") != NULL;
    cfg->distilled = gsq_st_find(f, "dist_token") != NULL;
    cfg->pool = gsq_st_find(f, "fc_norm.weight") ? GSQ_POOL_AVG : GSQ_POOL_TOKEN;
    int64_t patches = pos[1] - cfg->class_token - cfg->distilled;
    int64_t grid = (int64_t)llround(sqrt((double)(patches > 0 ? patches : 0)));
    if (patches <= 0 || grid * grid != patches)
        return gsq_fail(err, GSQ_ERR_SHAPE,
                        "%s: pos_embed has %lld tokens, which is not a square grid of patches plus %d prefix tokens",
                        label, (long long)pos[1], cfg->class_token + cfg->distilled);
    cfg->img_size = (int)(grid * cfg->patch_size);
    st = gsq_file_meta_eps(f, 1e-6f, &cfg->ln_eps, err); /* timm's ViT default */
    if (st != GSQ_OK) return st;
    int heads = num_heads, r = num_heads > 0 ? 1 : gsq_file_meta_int(f, "num_heads", &heads);
    if (r < 0) return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata num_heads '%s' is not a positive integer", label,
                               gsq_st_meta_get(f, "num_heads"));
    if (r == 0) {
        /* Head count is not visible in the weights; timm's ViT/DeiT use head_dim 64. */
        if (cfg->embed_dim % 64 != 0)
            return gsq_fail(err, GSQ_ERR_SHAPE,
                            "%s: cannot infer num_heads: embed_dim %d is not a multiple of timm's head_dim 64 "
                            "and the file has no num_heads metadata; give the head count (--heads)",
                            label, cfg->embed_dim);
        heads = cfg->embed_dim / 64;
    }
    cfg->num_heads = heads;
    int img = 0;
    r = gsq_file_meta_int(f, "img_size", &img);
    if (r < 0 || (r == 1 && img / cfg->patch_size != grid))
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata img_size '%s' disagrees with the %lld×%lld patch grid",
                        label, gsq_st_meta_get(f, "img_size"), (long long)grid, (long long)grid);
    if (r == 1) cfg->img_size = img; /* the side may exceed grid·patch by a remainder the conv drops */
    st = gsq_vit_config_validate(cfg, err);
    if (st != GSQ_OK) {
        char msg[GSQ_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return gsq_fail(err, st, "%s: inferred %s", label, msg);
    }
    return GSQ_OK;
}

gsq_status gsq_vit_load_open(gsq_model **out, const gsq_st_file *f, const gsq_vit_config *cfg,
                             const char *const *ignore, gsq_error *err)
{
    *out = NULL;
    gsq_vit_config inferred;
    gsq_status st = GSQ_OK;
    if (!cfg) {
        st = gsq_vit_infer_config(f, 0, &inferred, err);
        cfg = &inferred;
    }
    gsq_model *m = NULL;
    if (st == GSQ_OK) st = gsq_vit_describe(&m, cfg, err);
    if (st == GSQ_OK) st = gsq_model_read(m, f, ignore, err);
    if (st != GSQ_OK) {
        gsq_model_free(m);
        return st;
    }
    *out = m;
    return GSQ_OK;
}

gsq_status gsq_vit_load(gsq_model **out, const char *path, const gsq_vit_config *cfg,
                        gsq_error *err)
{
    *out = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    if (st == GSQ_OK) st = gsq_vit_load_open(out, f, cfg, NULL, err);
    gsq_st_close(f);
    return st;
}

gsq_status gsq_vit_add_meta(const gsq_model *m, gsq_st_writer *w, gsq_error *err)
{
    gsq_status st = GSQ_OK;
    const gsq_vit_config *c = &m->vit;
    char buf[32];
    struct { const char *key; int value; } ints[] = {
        {"img_size", c->img_size}, {"patch_size", c->patch_size}, {"in_chans", c->in_chans},
        {"num_classes", c->num_classes}, {"embed_dim", c->embed_dim}, {"depth", c->depth},
        {"num_heads", c->num_heads}, {"mlp_hidden", c->mlp_hidden}, {"qkv_bias", c->qkv_bias},
        {"class_token", c->class_token}, {"distilled", c->distilled},
    };
    for (size_t i = 0; st == GSQ_OK && i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(buf, sizeof buf, "%d", ints[i].value);
        st = gsq_st_writer_set_meta(w, ints[i].key, buf, err);
    }
    snprintf(buf, sizeof buf, "%.9g", (double)c->ln_eps);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "ln_eps", buf, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "pool", c->pool == GSQ_POOL_AVG ? "avg" : "token", err);
    return st;
}

