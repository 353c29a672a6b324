/* Swin's configuration from a file: inferred from the tensor shapes of a timm state_dict, or read
 * from the metadata gpusq writes, and written as that metadata. */
#include "gpusq/safetensors.h"
#include "gpusq/swin.h"
#include "models/model_state.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The side w of a relative position bias table of (2w-1)² rows, or 0 when it is not one. */
static int table_window(int64_t rows)
{
    int64_t side = (int64_t)llround(sqrt((double)(rows > 0 ? rows : 0)));
    if (side * side != rows || side % 2 == 0 || side > 127) return 0;
    return (int)(side + 1) / 2;
}

/* An int from a tensor dimension, or -1 when it does not fit the limits validation will check. */
static int dim(int64_t v) { return v > 0 && v <= 1 << 20 ? (int)v : -1; }

gsq_status gsq_swin_infer_config(const gsq_st_file *f, int img_size, gsq_swin_config *cfg, gsq_error *err)
{
    const char *label = gsq_st_label(f);
    memset(cfg, 0, sizeof *cfg);
    if (gsq_st_find(f, "head.weight") || gsq_st_find(f, "layers.0.downsample.reduction.weight"))
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED,
                        "%s: a Swin in timm's older layout (patch merging at the end of each stage, head.weight); "
                        "load it in a current timm (which converts it) and save its state_dict again", label);
    int64_t pw[4] = {0};
    gsq_status st = gsq_file_tensor_shape(f, "patch_embed.proj.weight", 4, pw, err);
    gsq_task_head head = {0};
    if (st == GSQ_OK) st = gsq_file_head(f, "head.fc", &head, &cfg->num_classes, err);
    cfg->task = head.task, cfg->seg_head = head.seg_head;
    if (st != GSQ_OK) return st;
    if (pw[2] != pw[3] || dim(pw[1]) < 0 || dim(pw[2]) < 0)
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s: patch_embed.proj.weight [%lld, %lld, %lld, %lld] is not a square patch "
                        "embedding", label, (long long)pw[0], (long long)pw[1], (long long)pw[2], (long long)pw[3]);
    cfg->in_chans = (int)pw[1];
    cfg->patch_size = (int)pw[2];
    cfg->qkv_bias = gsq_st_find(f, "layers.0.blocks.0.attn.qkv.bias") != NULL;
    char name[GSQ_NAME_MAX];
    int windows[GSQ_SWIN_MAX_STAGES];
    for (int s = 0; s <= GSQ_SWIN_MAX_STAGES; s++) {
        snprintf(name, sizeof name, "layers.%d.blocks.0.norm1.weight", s);
        if (!gsq_st_find(f, name)) break;
        if (s == GSQ_SWIN_MAX_STAGES)
            return gsq_fail(err, GSQ_ERR_SHAPE, "%s: more than %d stages", label, GSQ_SWIN_MAX_STAGES);
        int64_t n[1], table[2], fc1[2];
        st = gsq_file_tensor_shape(f, name, 1, n, err);
        snprintf(name, sizeof name, "layers.%d.blocks.0.attn.relative_position_bias_table", s);
        if (st == GSQ_OK) st = gsq_file_tensor_shape(f, name, 2, table, err);
        snprintf(name, sizeof name, "layers.%d.blocks.0.mlp.fc1.weight", s);
        if (st == GSQ_OK) st = gsq_file_tensor_shape(f, name, 2, fc1, err);
        if (st != GSQ_OK) return st;
        windows[s] = table_window(table[0]);
        if (!windows[s] || dim(n[0]) < 0 || dim(table[1]) < 0 || dim(fc1[0]) < 0)
            return gsq_fail(err, GSQ_ERR_SHAPE, "%s: stage %d's relative position bias table [%lld, %lld] is not "
                            "((2·window-1)², heads)", label, s, (long long)table[0], (long long)table[1]);
        cfg->dims[s] = (int)n[0];
        cfg->num_heads[s] = (int)table[1];
        cfg->mlp_hidden[s] = (int)fc1[0];
        for (int j = 0; j < 64; j++) {
            snprintf(name, sizeof name, "layers.%d.blocks.%d.norm1.weight", s, j);
            if (!gsq_st_find(f, name)) break;
            cfg->depths[s]++;
        }
        if (windows[s] > cfg->window) cfg->window = windows[s];
        cfg->num_stages++;
    }
    if (cfg->num_stages == 0)
        return gsq_fail(err, GSQ_ERR_MISSING, "%s: cannot infer the architecture: tensor "
                        "'layers.0.blocks.0.norm1.weight' is missing", label);
    st = gsq_file_meta_eps(f, 1e-5f, &cfg->ln_eps, err); /* timm's Swin default (nn.LayerNorm's) */
    if (st != GSQ_OK) return st;
    int r = img_size > 0 ? 1 : gsq_file_meta_int(f, "img_size", &img_size);
    if (r < 0) return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata img_size is not a positive integer", label);
    long side = (long)cfg->patch_size * cfg->window << (cfg->num_stages - 1); /* timm: the last grid is a window */
    cfg->img_size = r ? img_size : side <= 8192 ? (int)side : 0;
    st = gsq_swin_config_validate(cfg, err);
    if (st != GSQ_OK) {
        char msg[GSQ_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return gsq_fail(err, st, "%s: inferred %s", label, msg);
    }
    for (int s = 0; s < cfg->num_stages; s++)
        if (gsq_swin_stage_window(cfg, s) != windows[s])
            return gsq_fail(err, GSQ_ERR_SHAPE,
                            "%s: stage %d's bias table is for %d×%d windows, but at a %d-pixel input its grid of %d "
                            "gives %d×%d; give the input size the model was made for (--input-size, or img_size "
                            "metadata)", label, s, windows[s], windows[s], cfg->img_size, gsq_swin_stage_grid(cfg, s),
                            gsq_swin_stage_window(cfg, s), gsq_swin_stage_window(cfg, s));
    return GSQ_OK;
}

gsq_status gsq_swin_load_open(gsq_model **out, const gsq_st_file *f, const gsq_swin_config *cfg,
                              const char *const *ignore, gsq_error *err)
{
    *out = NULL;
    gsq_swin_config inferred;
    gsq_status st = GSQ_OK;
    if (!cfg) {
        st = gsq_swin_infer_config(f, 0, &inferred, err);
        cfg = &inferred;
    }
    if (st == GSQ_OK) st = gsq_swin_describe(out, cfg, err);
    if (st == GSQ_OK) st = gsq_model_read(*out, f, ignore, err);
    if (st != GSQ_OK) {
        gsq_model_free(*out);
        *out = NULL;
    }
    return st;
}

/* Metadata key as a comma-separated list of n integers into out: 1; absent: 0; malformed: -1. */
static int meta_list(const gsq_st_file *f, const char *key, int n, int *out)
{
    const char *v = gsq_st_meta_get(f, key);
    if (!v) return 0;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || x < 0 || x > 1 << 30 || *end != (i + 1 < n ? ',' : '\0')) return -1;
        out[i] = (int)x;
        v = end + 1;
    }
    return 1;
}

gsq_status gsq_swin_config_from_meta(const gsq_st_file *f, gsq_swin_config *cfg, gsq_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    const char *label = gsq_st_label(f);
    struct { const char *key; int *dst; } ints[] = {
        {"img_size", &cfg->img_size}, {"patch_size", &cfg->patch_size}, {"in_chans", &cfg->in_chans},
        {"num_classes", &cfg->num_classes}, {"num_stages", &cfg->num_stages}, {"window", &cfg->window},
        {"qkv_bias", &cfg->qkv_bias},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int r = gsq_file_meta_int(f, ints[i].key, ints[i].dst);
        if (r <= 0)
            return gsq_fail(err, r ? GSQ_ERR_FORMAT : GSQ_ERR_MISSING, "%s: metadata '%s' is %s", label, ints[i].key,
                            r ? "not a valid integer" : "missing");
    }
    if (cfg->num_stages < 1 || cfg->num_stages > GSQ_SWIN_MAX_STAGES)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata num_stages %d is outside [1, %d]", label, cfg->num_stages,
                        GSQ_SWIN_MAX_STAGES);
    struct { const char *key; int *dst; } lists[] = {
        {"depths", cfg->depths}, {"dims", cfg->dims}, {"num_heads", cfg->num_heads}, {"mlp_hidden", cfg->mlp_hidden},
    };
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        int r = meta_list(f, lists[i].key, cfg->num_stages, lists[i].dst);
        if (r <= 0)
            return gsq_fail(err, r ? GSQ_ERR_FORMAT : GSQ_ERR_MISSING, "%s: metadata '%s' is %s", label, lists[i].key,
                            r ? "not a list of one integer per stage" : "missing");
    }
    gsq_status st = gsq_file_meta_eps(f, 0.0f, &cfg->ln_eps, err);
    gsq_task_head head = {0};
    if (st == GSQ_OK) st = gsq_file_meta_task(f, &head, err);
    if (st == GSQ_OK) cfg->task = head.task, cfg->seg_head = head.seg_head;
    if (st != GSQ_OK) return st;
    st = gsq_swin_config_validate(cfg, err);
    if (st != GSQ_OK) {
        gsq_error inner = *err;
        return gsq_fail(err, st, "%s: %s", label, inner.msg);
    }
    return GSQ_OK;
}

gsq_status gsq_swin_add_meta(const gsq_model *m, gsq_st_writer *w, gsq_error *err)
{
    const gsq_swin_config *c = &m->swin;
    gsq_status st = GSQ_OK;
    char buf[160];
    struct { const char *key; int value; } ints[] = {
        {"img_size", c->img_size}, {"patch_size", c->patch_size}, {"in_chans", c->in_chans},
        {"num_classes", c->num_classes}, {"num_stages", c->num_stages}, {"window", c->window},
        {"qkv_bias", c->qkv_bias},
    };
    for (size_t i = 0; st == GSQ_OK && i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(buf, sizeof buf, "%d", ints[i].value);
        st = gsq_st_writer_set_meta(w, ints[i].key, buf, err);
    }
    struct { const char *key; const int *v; } lists[] = {
        {"depths", c->depths}, {"dims", c->dims}, {"num_heads", c->num_heads}, {"mlp_hidden", c->mlp_hidden},
    };
    for (size_t i = 0; st == GSQ_OK && i < sizeof lists / sizeof lists[0]; i++) {
        size_t len = 0;
        for (int s = 0; s < c->num_stages; s++)
            len += (size_t)snprintf(buf + len, sizeof buf - len, s ? ",%d" : "%d", lists[i].v[s]);
        st = gsq_st_writer_set_meta(w, lists[i].key, buf, err);
    }
    snprintf(buf, sizeof buf, "%.9g", (double)c->ln_eps);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "ln_eps", buf, err);
    return st;
}
