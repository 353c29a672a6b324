/* ViT/DeiT configurations: timm's named models, validation and the per-image operation count. */
#include "gpusq/data.h"
#include "gpusq/vit.h"
#include "models/det_head.h"
#include "models/seg_head.h"

#include <string.h>

/* timm's ViT and DeiT at 224² with patch 16 and 1000 classes; mlp_ratio 4, qkv bias, cls token.
 * names[i] goes with dims[i]. */
static const char *const names[] = {
    "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224",
    "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
    "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224",
    "deit_base_distilled_patch16_224", "gpusq_demo", NULL,
};
static const struct {
    int embed_dim, depth, num_heads, distilled;
} dims[] = {
    {192, 12, 3, 0}, {384, 12, 6, 0}, {768, 12, 12, 0},
    {192, 12, 3, 0}, {384, 12, 6, 0}, {768, 12, 12, 0},
    {192, 12, 3, 1}, {384, 12, 6, 1}, {768, 12, 12, 1},
    {64, 4, 2, 0}, /* gpusq_demo: 32×32 input, patch 4, 10 classes (see below) */
};
#define NUM_NAMED (sizeof dims / sizeof dims[0])
_Static_assert(sizeof names / sizeof names[0] == NUM_NAMED + 1, "one name per configuration");

const char *const *gsq_vit_config_names(void)
{
    return names;
}

gsq_status gsq_vit_config_by_name(const char *name, gsq_vit_config *cfg, gsq_error *err)
{
    for (size_t i = 0; i < NUM_NAMED; i++) {
        if (strcmp(name, names[i]) != 0) continue;
        *cfg = (gsq_vit_config){
            .img_size = 224, .patch_size = 16, .in_chans = 3, .num_classes = 1000,
            .embed_dim = dims[i].embed_dim, .depth = dims[i].depth,
            .num_heads = dims[i].num_heads, .mlp_hidden = 4 * dims[i].embed_dim,
            .qkv_bias = 1, .class_token = 1, .distilled = dims[i].distilled,
            .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
        };
        if (strcmp(name, "gpusq_demo") == 0) { /* the demo's model for the synthetic data */
            cfg->img_size = 32;
            cfg->patch_size = 4;
            cfg->num_classes = GSQ_SYNTHETIC_CLASSES;
        }
        return GSQ_OK;
    }
    return gsq_fail(err, GSQ_ERR_ARG, "unknown model configuration '%s' (see `gpusq info --list`)", name);
}

#define CHECK_RANGE(field, lo, hi)                                                                 \
    do {                                                                                           \
        if (cfg->field < (lo) || cfg->field > (hi))                                                \
            return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: " #field " = %d is outside [%d, %d]", \
                            (int)cfg->field, (int)(lo), (int)(hi));                                \
    } while (0)

gsq_status gsq_vit_config_validate(const gsq_vit_config *cfg, gsq_error *err)
{
    /* the limits keep every buffer size far from overflow, even for hostile metadata */
    CHECK_RANGE(img_size, 1, 8192);
    CHECK_RANGE(patch_size, 1, cfg->img_size);
    CHECK_RANGE(in_chans, 1, 64);
    CHECK_RANGE(num_classes, 1, 1 << 20);
    CHECK_RANGE(embed_dim, 1, 1 << 14);
    CHECK_RANGE(depth, 1, 256);
    CHECK_RANGE(num_heads, 1, cfg->embed_dim);
    CHECK_RANGE(mlp_hidden, 1, 1 << 16);
    CHECK_RANGE(qkv_bias, 0, 1);
    CHECK_RANGE(task, GSQ_TASK_CLASSIFY, GSQ_TASK_DETECT);
    CHECK_RANGE(class_token, 0, 1);
    CHECK_RANGE(distilled, 0, 1);
    if (cfg->embed_dim % cfg->num_heads != 0)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: embed_dim %d is not divisible by num_heads %d",
                        cfg->embed_dim, cfg->num_heads);
    if ((long)cfg->in_chans * cfg->patch_size * cfg->patch_size > (1L << 20))
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: a patch of %d channels × %d² values is too large",
                        cfg->in_chans, cfg->patch_size);
    if (gsq_vit_num_patches(cfg) > 65536)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: %d patches is too many (img_size %d / patch %d)",
                        gsq_vit_num_patches(cfg), cfg->img_size, cfg->patch_size);
    if (cfg->pool != GSQ_POOL_TOKEN && cfg->pool != GSQ_POOL_AVG)
        return gsq_fail(err, GSQ_ERR_ARG, "configuration: unknown pooling %d", (int)cfg->pool);
    if (cfg->pool == GSQ_POOL_TOKEN && !cfg->class_token)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: token pooling needs a class token");
    if (cfg->distilled && (!cfg->class_token || cfg->pool != GSQ_POOL_TOKEN))
        return gsq_fail(err, GSQ_ERR_SHAPE,
                        "configuration: a distilled DeiT needs a class token and token pooling");
    if (!(cfg->ln_eps > 0.0f && cfg->ln_eps < 1.0f))
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: ln_eps %g is outside (0, 1)", (double)cfg->ln_eps);
    if (cfg->task == GSQ_TASK_DETECT)
        return gsq_det_head_check(&cfg->det, cfg->embed_dim, cfg->num_heads, cfg->num_classes, err);
    return cfg->task == GSQ_TASK_SEGMENT ? gsq_seg_head_check(cfg->seg_head, cfg->embed_dim, cfg->num_classes, err) : GSQ_OK;
}
