/* What every model has, whatever its architecture: the accessors of include/gpusq/model.h over the
 * private state (src/models/model_state.h), the parameter table and block, gradients, cloning,
 * freeing, class names and timm's initialisation. */
#include "gpusq/graph.h"
#include "gpusq/rng.h"
#include "gpusq/vit_quant.h"
#include "vit_quant_state.h"
#include "models/det_head.h"
#include "models/model_state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct gsq_graph *gsq_model_graph(const gsq_model *m) { return m->graph; }
gsq_arch gsq_model_arch(const gsq_model *m) { return m->arch; }
int gsq_model_in_chans(const gsq_model *m) { return m->in_chans; }
int gsq_model_input_size(const gsq_model *m) { return m->img_size; }
int gsq_model_num_classes(const gsq_model *m) { return m->num_classes; }
gsq_task gsq_model_task(const gsq_model *m) { return m->task; }
gsq_seg_head gsq_model_seg_head(const gsq_model *m) { return m->seg_head; }
int gsq_model_output_grid(const gsq_model *m) { return m->graph->grid; }
gsq_output_shape gsq_model_output_shape(const gsq_model *m)
{
    return (gsq_output_shape){m->task, m->num_classes, m->graph->grid, m->img_size,
                              m->task == GSQ_TASK_DETECT ? m->det.queries : 0, m->task == GSQ_TASK_DETECT ? m->det.layers : 0};
}
int gsq_model_depth(const gsq_model *m) { return m->graph->num_blocks; }
int gsq_model_num_tensors(const gsq_model *m) { return m->num_tensors; }
const gsq_param *gsq_model_tensor(const gsq_model *m, int i) { return &m->tensors[i]; }
size_t gsq_model_num_params(const gsq_model *m) { return m->num_params; }
float *gsq_model_params(gsq_model *m) { return m->params; }
const float *gsq_model_params_const(const gsq_model *m) { return m->params; }
float *gsq_model_grads(gsq_model *m) { return m->grads; }
void gsq_model_set_retain_grads(gsq_model *m, int on) { m->retain_grads = on; }

void gsq_model_set_backward_hook(gsq_model *m, gsq_backward_hook fn, void *user)
{
    m->backward_hook = fn;
    m->backward_hook_user = user;
}
const gsq_vit_config *gsq_model_vit_config(const gsq_model *m) { return m->arch == GSQ_ARCH_VIT ? &m->vit : NULL; }
const gsq_swin_config *gsq_model_swin_config(const gsq_model *m) { return m->arch == GSQ_ARCH_SWIN ? &m->swin : NULL; }

gsq_status gsq_model_new_graph(const gsq_model *m, gsq_graph **out, gsq_error *err)
{
    return m->arch == GSQ_ARCH_SWIN ? gsq_swin_graph(m, out, err) : gsq_vit_graph(m, out, err);
}

gsq_status gsq_model_describe_finish(gsq_model *m, gsq_model **out, gsq_error *err)
{
    gsq_status st = gsq_model_new_graph(m, &m->graph, err);
    if (st != GSQ_OK) gsq_model_free(m);
    *out = st == GSQ_OK ? m : NULL;
    return st;
}

gsq_status gsq_model_create_finish(gsq_status st, gsq_model **out, gsq_error *err)
{
    if (st == GSQ_OK) st = gsq_model_alloc_params(*out, err);
    if (st != GSQ_OK) {
        gsq_model_free(*out);
        *out = NULL;
    }
    return st;
}

gsq_status gsq_model_new(gsq_model **out, gsq_arch arch, int max_tensors, gsq_error *err)
{
    gsq_model *m = calloc(1, sizeof *m);
    if (m) {
        m->arch = arch;
        m->tensors = calloc((size_t)max_tensors, sizeof *m->tensors);
    }
    if (!m || !m->tensors) {
        gsq_model_free(m);
        *out = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory describing a model of %d tensors", max_tensors);
    }
    *out = m;
    return GSQ_OK;
}

void gsq_model_add_tensor(gsq_model *m, int ndim, const int64_t *shape, const char *fmt, ...)
{
    gsq_param *p = &m->tensors[m->num_tensors++];
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
    p->offset = m->num_params;
    p->no_decay = ndim <= 1; /* biases and norms */
    m->num_params += p->numel;
}

void gsq_model_add_block(gsq_model *m, const char *prefix, int64_t width, int64_t hidden, int qkv_bias)
{
    const int64_t D = width, H = hidden;
    gsq_model_add_tensor(m, 1, &D, "%s.norm1.weight", prefix);
    gsq_model_add_tensor(m, 1, &D, "%s.norm1.bias", prefix);
    gsq_model_add_tensor(m, 2, (int64_t[]){3 * D, D}, "%s.attn.qkv.weight", prefix);
    if (qkv_bias) gsq_model_add_tensor(m, 1, (int64_t[]){3 * D}, "%s.attn.qkv.bias", prefix);
    gsq_model_add_tensor(m, 2, (int64_t[]){D, D}, "%s.attn.proj.weight", prefix);
    gsq_model_add_tensor(m, 1, &D, "%s.attn.proj.bias", prefix);
    gsq_model_add_tensor(m, 1, &D, "%s.norm2.weight", prefix);
    gsq_model_add_tensor(m, 1, &D, "%s.norm2.bias", prefix);
    gsq_model_add_tensor(m, 2, (int64_t[]){H, D}, "%s.mlp.fc1.weight", prefix);
    gsq_model_add_tensor(m, 1, &H, "%s.mlp.fc1.bias", prefix);
    gsq_model_add_tensor(m, 2, (int64_t[]){D, H}, "%s.mlp.fc2.weight", prefix);
    gsq_model_add_tensor(m, 1, &D, "%s.mlp.fc2.bias", prefix);
}

gsq_status gsq_model_alloc_params(gsq_model *m, gsq_error *err)
{
    if (m->params) return GSQ_OK;
    m->params = calloc(m->num_params, sizeof(float));
    if (!m->params)
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory allocating %zu parameters", m->num_params);
    return GSQ_OK;
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
    gsq_status st = m->arch == GSQ_ARCH_SWIN ? gsq_swin_create(out, &m->swin, err) : gsq_vit_create(out, &m->vit, err);
    if (st != GSQ_OK) return st;
    memcpy((*out)->params, m->params, m->num_params * sizeof(float));
    if (m->class_names && !((*out)->class_names = strdup(m->class_names))) {
        gsq_model_free(*out);
        *out = NULL;
        return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory copying class names");
    }
    return GSQ_OK;
}

gsq_status gsq_model_for_task(gsq_model **out, const gsq_model *m, const gsq_task_head *head, int num_classes,
                              uint64_t seed, int *copied, gsq_error *err)
{
    gsq_vit_config vit = m->vit;
    gsq_swin_config swin = m->swin;
    if (head->task == GSQ_TASK_DETECT && m->arch == GSQ_ARCH_SWIN)
        return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "a Swin detector is not built yet: detect with a ViT/DeiT backbone");
    vit.task = swin.task = head->task;
    vit.seg_head = swin.seg_head = head->seg_head;
    vit.det = head->det;
    vit.num_classes = swin.num_classes = num_classes;
    gsq_status st = m->arch == GSQ_ARCH_SWIN ? gsq_swin_create(out, &swin, err) : gsq_vit_create(out, &vit, err);
    if (st != GSQ_OK) return st;
    gsq_model_init(*out, seed);
    int n = 0;
    for (int i = 0; i < (*out)->num_tensors; i++) {
        const gsq_param *p = &(*out)->tensors[i], *q = gsq_model_find_param(m, p->name);
        if (!q || q->ndim != p->ndim || memcmp(q->shape, p->shape, sizeof p->shape) != 0) continue;
        memcpy((*out)->params + p->offset, m->params + q->offset, p->numel * sizeof(float));
        n++;
    }
    if (copied) *copied = n;
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
    for (int k = 0; k < m->num_classes; k++) {
        if (strchr(names[k], '\n'))
            return gsq_fail(err, GSQ_ERR_ARG, "class name %d contains a line break", k);
        len += strlen(names[k]) + 1;
    }
    m->class_names = malloc(len);
    if (!m->class_names) return gsq_fail(err, GSQ_ERR_NOMEM, "out of memory for class names");
    char *p = m->class_names;
    for (int k = 0; k < m->num_classes; k++) p += sprintf(p, k ? "\n%s" : "%s", names[k]);
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

void gsq_model_init(gsq_model *m, uint64_t seed)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 0x5eed);
    const gsq_param *pw = gsq_model_find_param(m, "patch_embed.proj.weight");
    float patch_bound = 1.0f / sqrtf((float)(pw->numel / (size_t)pw->shape[0])); /* Conv2d's 1/sqrt(fan_in) */
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
    if (m->task == GSQ_TASK_DETECT) gsq_det_head_init(m, &rng);
}
