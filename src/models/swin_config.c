/* Swin configurations: timm's named models, validation and each stage's grid, window and shift. */
#include "gpusq/data.h"
#include "gpusq/swin.h"
#include "models/seg_head.h"

#include <stdio.h>
#include <string.h>

/* timm's Swin (v1) at patch 4, mlp_ratio 4, qkv bias; names[i] goes with shapes[i]. */
static const char *const names[] = {
    "swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swin_base_patch4_window7_224",
    "swin_base_patch4_window12_384", "swin_large_patch4_window7_224", "gpusq_swin_demo", NULL,
};
static const struct {
    int img_size, window, embed_dim, depth3, heads0;
} shapes[] = {
    {224, 7, 96, 6, 3}, {224, 7, 96, 18, 3}, {224, 7, 128, 18, 4}, {384, 12, 128, 18, 4}, {224, 7, 192, 18, 6},
    {32, 4, 32, 2, 1}, /* gpusq_swin_demo: 32×32 synthetic images, patch 2 (see below) */
};
#define NUM_NAMED (sizeof shapes / sizeof shapes[0])
_Static_assert(sizeof names / sizeof names[0] == NUM_NAMED + 1, "one name per configuration");

const char *const *gsq_swin_config_names(void)
{
    return names;
}

gsq_status gsq_swin_config_by_name(const char *name, gsq_swin_config *cfg, gsq_error *err)
{
    for (size_t i = 0; i < NUM_NAMED; i++) {
        if (strcmp(name, names[i]) != 0) continue;
        *cfg = (gsq_swin_config){.img_size = shapes[i].img_size, .patch_size = 4, .in_chans = 3, .num_classes = 1000,
                                 .num_stages = 4, .window = shapes[i].window, .qkv_bias = 1, .ln_eps = 1e-5f};
        int depths[4] = {2, 2, shapes[i].depth3, 2};
        for (int s = 0; s < 4; s++) {
            cfg->depths[s] = depths[s];
            cfg->dims[s] = shapes[i].embed_dim << s;
            cfg->num_heads[s] = shapes[i].heads0 << s;
            cfg->mlp_hidden[s] = 4 * cfg->dims[s];
        }
        if (strcmp(name, "gpusq_swin_demo") == 0) { /* grids 16, 8, 4: windows 4, 4 and 4 (no shift) */
            cfg->patch_size = 2;
            cfg->num_stages = 3;
            cfg->num_classes = GSQ_SYNTHETIC_CLASSES;
            cfg->depths[0] = cfg->depths[1] = 2;
            cfg->depths[2] = 1; /* its one window takes no shift: a second block would repeat the first */
            cfg->depths[3] = cfg->dims[3] = cfg->num_heads[3] = cfg->mlp_hidden[3] = 0;
        }
        return GSQ_OK;
    }
    return gsq_fail(err, GSQ_ERR_ARG, "unknown model configuration '%s' (see `gpusq info --list`)", name);
}

int gsq_swin_stage_grid(const gsq_swin_config *c, int s)
{
    int g = c->img_size / c->patch_size;
    for (int i = 1; i <= s; i++) g = (g + 1) / 2;
    return g;
}

int gsq_swin_stage_window(const gsq_swin_config *c, int s)
{
    int g = gsq_swin_stage_grid(c, s);
    return g < c->window ? g : c->window;
}

int gsq_swin_stage_shift(const gsq_swin_config *c, int s)
{
    return gsq_swin_stage_grid(c, s) <= c->window ? 0 : c->window / 2;
}

int gsq_swin_blocks(const gsq_swin_config *c)
{
    int n = 0;
    for (int s = 0; s < c->num_stages; s++) n += c->depths[s];
    return n;
}

#define CHECK_RANGE(what, value, lo, hi)                                                                 \
    do {                                                                                                 \
        if ((value) < (lo) || (value) > (hi))                                                            \
            return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: %s = %d is outside [%d, %d]", what, (int)(value), \
                            (int)(lo), (int)(hi));                                                       \
    } while (0)

gsq_status gsq_swin_config_validate(const gsq_swin_config *c, gsq_error *err)
{
    /* the limits keep every buffer size far from overflow, even for hostile metadata */
    CHECK_RANGE("img_size", c->img_size, 1, 8192);
    CHECK_RANGE("patch_size", c->patch_size, 1, c->img_size);
    CHECK_RANGE("in_chans", c->in_chans, 1, 64);
    CHECK_RANGE("num_classes", c->num_classes, 1, 1 << 20);
    CHECK_RANGE("num_stages", c->num_stages, 1, GSQ_SWIN_MAX_STAGES);
    CHECK_RANGE("window", c->window, 1, 64);
    CHECK_RANGE("qkv_bias", c->qkv_bias, 0, 1);
    CHECK_RANGE("task", c->task, GSQ_TASK_CLASSIFY, GSQ_TASK_SEGMENT);
    if ((long)c->in_chans * c->patch_size * c->patch_size > (1L << 20))
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: a patch of %d channels × %d² values is too large",
                        c->in_chans, c->patch_size);
    int grid = c->img_size / c->patch_size;
    if (grid > 1024)
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: a %d×%d patch grid is too large", grid, grid);
    for (int s = 0; s < c->num_stages; s++) {
        char what[32];
#define STAGE(field) (snprintf(what, sizeof what, "stage %d " field, s), what)
        CHECK_RANGE(STAGE("depth"), c->depths[s], 1, 64);
        CHECK_RANGE(STAGE("width"), c->dims[s], 1, 1 << 14);
        CHECK_RANGE(STAGE("heads"), c->num_heads[s], 1, c->dims[s]);
        CHECK_RANGE(STAGE("mlp_hidden"), c->mlp_hidden[s], 1, 1 << 16);
#undef STAGE
        if (c->dims[s] % c->num_heads[s] != 0)
            return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: stage %d width %d is not divisible by its %d heads", s,
                            c->dims[s], c->num_heads[s]);
    }
    if (!(c->ln_eps > 0.0f && c->ln_eps < 1.0f))
        return gsq_fail(err, GSQ_ERR_SHAPE, "configuration: ln_eps %g is outside (0, 1)", (double)c->ln_eps);
    return c->task == GSQ_TASK_SEGMENT ? gsq_seg_head_check(c->seg_head, c->dims[c->num_stages - 1], c->num_classes, err) : GSQ_OK;
}
