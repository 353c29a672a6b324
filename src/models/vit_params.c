/* The parameter table of a ViT/DeiT: timm names and shapes, one contiguous block for parameters
 * (and one for gradients), model creation (with its graph) and timm-style initialisation. */
#include "gpusq/graph.h"
#include "gpusq/rng.h"
#include "gpusq/vit.h"
#include "gpusq/vit_quant.h"
#include "vit_quant_state.h"
#include "models/model_state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    gsq_param *tensors;
    int count;
    size_t total;
} table_builder;

static void add_param(table_builder *tb, int ndim, const int64_t *shape, const char *fmt, ...)
{
    gsq_param *p = &tb->tensors[tb->count++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->offset = tb->total;
    p->no_decay = ndim <= 1; /* biases and norms */
    tb->total += p->numel;
}

#define SHAPE(...) (int64_t[]){__VA_ARGS__}
#define ADD(nd, shp, ...) add_param(&tb, nd, shp, __VA_ARGS__)

/* Fills the table in timm state_dict order; tensors must hold at least max_tensors entries. */
static int build_table(const gsq_vit_config *c, gsq_param *tensors, size_t *total)
{
    table_builder tb = {tensors, 0, 0};
    int64_t D = c->embed_dim, H = c->mlp_hidden, K = c->num_classes, P = c->patch_size;
    if (c->class_token) ADD(3, SHAPE(1, 1, D), "cls_token");
    if (c->distilled) ADD(3, SHAPE(1, 1, D), "dist_token");
    ADD(3, SHAPE(1, gsq_vit_tokens(c), D), "pos_embed");
    for (int i = 0; i < tb.count; i++) tb.tensors[i].no_decay = 1; /* timm's no_weight_decay() */
    ADD(4, SHAPE(D, c->in_chans, P, P), "patch_embed.proj.weight");
    ADD(1, SHAPE(D), "patch_embed.proj.bias");
    for (int l = 0; l < c->depth; l++) {
        ADD(1, SHAPE(D), "blocks.%d.norm1.weight", l);
        ADD(1, SHAPE(D), "blocks.%d.norm1.bias", l);
        ADD(2, SHAPE(3 * D, D), "blocks.%d.attn.qkv.weight", l);
        if (c->qkv_bias) ADD(1, SHAPE(3 * D), "blocks.%d.attn.qkv.bias", l);
        ADD(2, SHAPE(D, D), "blocks.%d.attn.proj.weight", l);
        ADD(1, SHAPE(D), "blocks.%d.attn.proj.bias", l);
        ADD(1, SHAPE(D), "blocks.%d.norm2.weight", l);
        ADD(1, SHAPE(D), "blocks.%d.norm2.bias", l);
        ADD(2, SHAPE(H, D), "blocks.%d.mlp.fc1.weight", l);
        ADD(1, SHAPE(H), "blocks.%d.mlp.fc1.bias", l);
        ADD(2, SHAPE(D, H), "blocks.%d.mlp.fc2.weight", l);
        ADD(1, SHAPE(D), "blocks.%d.mlp.fc2.bias", l);
    }
    const char *norm = c->pool == GSQ_POOL_AVG ? "fc_norm" : "norm";
    ADD(1, SHAPE(D), "%s.weight", norm);
    ADD(1, SHAPE(D), "%s.bias", norm);
    ADD(2, SHAPE(K, D), "head.weight");
    ADD(1, SHAPE(K), "head.bias");
    if (c->distilled) {
        ADD(2, SHAPE(K, D), "head_dist.weight");
        ADD(1, SHAPE(K), "head_dist.bias");
    }
    *total = tb.total;
    return tb.count;
}

static int max_tensors(const gsq_vit_config *c) { return 12 + 12 * c->depth; }

gsq_status gsq_vit_describe(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err)
{
    *out = NULL;
    gsq_status st = gsq_vit_config_validate(cfg, err);
    if (st != GSQ_OK) return st;
    gsq_model *m = calloc(1, sizeof *m);
    if (m) {
        m->cfg = *cfg;
        m->tensors = calloc((size_t)max_tensors(cfg), sizeof *m->tensors);
    }
    if (!m || !m->tensors) {
        gsq_model_free(m);
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory describing a model of depth %d", cfg->depth);
    }
    m->num_tensors = build_table(cfg, m->tensors, &m->num_params);
    st = gsq_vit_graph(m, &m->graph, err);
    if (st != GSQ_OK) {
        gsq_model_free(m);
        return st;
    }
    *out = m;
    return GSQ_OK;
}

double gsq_vit_macs(const gsq_vit_config *cfg)
{
    gsq_model *m;
    if (gsq_vit_describe(&m, cfg, NULL) != GSQ_OK) return 0;
    gsq_graph_macs n = gsq_graph_count_macs(m->graph);
    gsq_model_free(m);
    return n.linear + n.attention;
}

gsq_status gsq_model_alloc_params(gsq_model *m, gsq_error *err)
{
    if (m->params) return GSQ_OK;
    m->params = calloc(m->num_params, sizeof(float));
    if (!m->params)
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating %zu parameters", m->num_params);
    return GSQ_OK;
}

gsq_status gsq_vit_create(gsq_model **out, const gsq_vit_config *cfg, gsq_error *err)
{
    gsq_status st = gsq_vit_describe(out, cfg, err);
    if (st == GSQ_OK) st = gsq_model_alloc_params(*out, err);
    if (st != GSQ_OK) {
        gsq_model_free(*out);
        *out = NULL;
    }
    return st;
}

int gsq_model_blocks(gsq_model *m, gsq_param_block out[GSQ_MAX_BLOCKS])
{
    out[0] = (gsq_param_block){.num_tensors = m->num_tensors, .tensors = m->tensors, .n = m->num_params,
                               .values = m->params, .grads = m->grads, .lr_scale = 1.0f};
    return 1 + gsq_lsq_block(m, &out[1]);
}

gsq_status gsq_model_zero_grad(gsq_model *m, gsq_error *err)
{
    if (!m->grads && !(m->grads = malloc(m->num_params * sizeof(float))))
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating %zu gradients", m->num_params);
    gsq_param_block b[GSQ_MAX_BLOCKS];
    for (int k = 0, n = gsq_model_blocks(m, b); k < n; k++) memset(b[k].grads, 0, b[k].n * sizeof(float));
    return GSQ_OK;
}

gsq_status gsq_model_clone(gsq_model **out, const gsq_model *m, gsq_error *err)
{
    gsq_status st = gsq_vit_create(out, &m->cfg, err);
    if (st != GSQ_OK) return st;
    memcpy((*out)->params, m->params, m->num_params * sizeof(float));
    if (m->class_names && !((*out)->class_names = strdup(m->class_names))) {
        gsq_model_free(*out);
        *out = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory copying class names");
    }
    return GSQ_OK;
}

void gsq_model_free(gsq_model *m)
{
    if (!m) return;
    gsq_model_quant_disable(m);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    gsq_graph_free(m->graph);
    free(m->act_mem);
    free(m->act_at);
    free(m->gact_mem);
    free(m->gact_at);
    free(m->targets);
    free(m->probs);
    free(m->class_names);
    free(m);
}

gsq_status gsq_model_set_class_names(gsq_model *m, char *const *names, gsq_error *err)
{
    free(m->class_names);
    m->class_names = NULL;
    if (!names) return GSQ_OK;
    size_t len = 1;
    for (int k = 0; k < m->cfg.num_classes; k++) {
        if (strchr(names[k], '\n'))
            return gsq_fail(err, GSQ_ERR_ARG, "class name %d contains a line break", k);
        len += strlen(names[k]) + 1;
    }
    m->class_names = malloc(len);
    if (!m->class_names) return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory for class names");
    char *p = m->class_names;
    for (int k = 0; k < m->cfg.num_classes; k++) p += sprintf(p, k ? "\n%s" : "%s", names[k]);
    return GSQ_OK;
}

const char *gsq_model_class_name(const gsq_model *m, int k, char *buf, size_t cap)
{
    const char *p = m->class_names;
    buf[0] = '\0';
    for (int i = 0; p && i < k; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (p && cap) {
        size_t n = strcspn(p, "\n");
        if (n >= cap) n = cap - 1;
        memcpy(buf, p, n);
        buf[n] = '\0';
    }
    return buf;
}

const gsq_param *gsq_model_find_param(const gsq_model *m, const char *name)
{
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

void gsq_vit_init(gsq_model *m, uint64_t seed)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 0x5eed);
    const gsq_vit_config *c = &m->cfg;
    float patch_bound = 1.0f / sqrtf((float)(c->in_chans * c->patch_size * c->patch_size));
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *t = &m->tensors[i];
        float *x = m->params + t->offset;
        int is_norm = strstr(t->name, "norm") != NULL;
        int is_patch = strncmp(t->name, "patch_embed.", 12) == 0;
        for (size_t j = 0; j < t->numel; j++) {
            if (is_norm) x[j] = ends_with(t->name, ".weight") ? 1.0f : 0.0f;
            else if (is_patch) x[j] = patch_bound * (2.0f * gsq_rng_uniform(&rng) - 1.0f);
            else if (ends_with(t->name, ".bias")) x[j] = 0.0f;
            else if (ends_with(t->name, "_token")) x[j] = 1e-6f * gsq_rng_normal(&rng);
            else x[j] = gsq_rng_trunc_normal(&rng, 0.02f, 2.0f);
        }
    }
}
