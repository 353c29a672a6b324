/* Reading and writing any model as timm-named safetensors: which architecture a file holds, the
 * tensors checked against the table and read, metadata written (each builder's io file infers and
 * records its own configuration). */
#include "gpusq/safetensors.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"
#include "models/model_state.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shape of tensor `name` into shape[], checking its rank; GSQ_ERR_MISSING if absent. */
gsq_status gsq_file_tensor_shape(const gsq_st_file *f, const char *name, int ndim, int64_t *shape,
                               gsq_error *err)
{
    const gsq_st_tensor *t = gsq_st_find(f, name);
    if (!t)
        return gsq_fail(err, GSQ_ERR_MISSING, "%s: cannot infer the architecture: tensor '%s' is missing",
                        gsq_st_label(f), name);
    if (t->ndim != ndim)
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s: tensor '%s' has %d dimensions where the model has %d",
                        gsq_st_label(f), name, t->ndim, ndim);
    for (int i = 0; i < ndim; i++) shape[i] = t->shape[i];
    return GSQ_OK;
}

int gsq_file_meta_int(const gsq_st_file *f, const char *key, int *out)
{
    const char *v = gsq_st_meta_get(f, key);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < 0 || x > 1 << 30) return -1;
    *out = (int)x;
    return 1;
}

gsq_status gsq_file_meta_eps(const gsq_st_file *f, float fallback, float *eps, gsq_error *err)
{
    const char *v = gsq_st_meta_get(f, "ln_eps");
    char *end = NULL;
    *eps = fallback;
    if (!v && fallback == 0.0f) return gsq_fail(err, GSQ_ERR_MISSING, "%s: metadata 'ln_eps' is missing", gsq_st_label(f));
    if (v) *eps = strtof(v, &end);
    if (v && (end == v || *end))
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata ln_eps '%.40s' is not a number", gsq_st_label(f), v);
    return GSQ_OK;
}

/* Appends name to a comma-separated list in buf, or counts it once the list is full. */
static void list_add(char *buf, size_t cap, int *listed, int *more, const char *name)
{
    size_t len = strlen(buf);
    if (*listed < 6 && len + strlen(name) + 3 < cap) {
        snprintf(buf + len, cap - len, "%s%s", *listed ? ", " : "", name);
        (*listed)++;
    } else {
        (*more)++;
    }
}

/* 1 when s starts with one of the prefixes (a NULL-terminated list, or NULL for none). */
static int has_prefix(const char *s, const char *const *prefixes)
{
    for (; prefixes && *prefixes; prefixes++)
        if (strncmp(s, *prefixes, strlen(*prefixes)) == 0) return 1;
    return 0;
}

/* Checks every expected tensor is in f with its shape and nothing else is (but the ignored). */
static gsq_status check_tensors(const gsq_model *m, const gsq_st_file *f, const char *const *ignore,
                                gsq_error *err)
{
    const char *label = gsq_st_label(f);
    char missing[256] = "", extra[256] = "";
    int n_missing = 0, more_missing = 0, n_extra = 0, more_extra = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        const gsq_st_tensor *t = gsq_st_find(f, p->name);
        if (!t) {
            list_add(missing, sizeof missing, &n_missing, &more_missing, p->name);
            continue;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        if (!same) {
            char want[96] = "", got[96] = "";
            for (int d = 0; d < p->ndim; d++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)p->shape[d]);
            for (int d = 0; d < t->ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            return gsq_fail(err, GSQ_ERR_SHAPE, "%s: tensor '%s' has shape [%s], the model expects [%s]",
                            label, p->name, got, want);
        }
    }
    for (size_t i = 0; i < gsq_st_count(f); i++) {
        const char *name = gsq_st_at(f, i)->name;
        if (!gsq_model_find_param(m, name) && !has_prefix(name, ignore))
            list_add(extra, sizeof extra, &n_extra, &more_extra, name);
    }
    if (n_missing + more_missing)
        return gsq_fail(err, GSQ_ERR_MISSING, "%s: %d tensor(s) missing: %s%s", label,
                        n_missing + more_missing, missing, more_missing ? ", ..." : "");
    if (n_extra + more_extra)
        return gsq_fail(err, GSQ_ERR_SHAPE,
                        "%s: %d unexpected tensor(s) for this %s architecture: %s%s", label,
                        n_extra + more_extra, m->arch == GSQ_ARCH_SWIN ? "Swin" : "ViT/DeiT", extra, more_extra ? ", ..." : "");
    return GSQ_OK;
}

static gsq_status read_tensors(gsq_model *m, const gsq_st_file *f, gsq_error *err)
{
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        gsq_status st = gsq_st_read_f32(f, gsq_st_find(f, p->name), m->params + p->offset, p->numel, err);
        if (st != GSQ_OK) return st;
    }
    return GSQ_OK;
}

gsq_status gsq_model_read(gsq_model *m, const gsq_st_file *f, const char *const *ignore, gsq_error *err)
{
    gsq_status st = check_tensors(m, f, ignore, err); /* before allocating */
    if (st == GSQ_OK) st = gsq_model_alloc_params(m, err);
    if (st == GSQ_OK) st = read_tensors(m, f, err);
    const char *names = gsq_st_meta_get(f, "class_names");
    if (st == GSQ_OK && names && !(m->class_names = strdup(names)))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "%s: out of memory for the class names", gsq_st_label(f));
    return st;
}

/* A detector's head in a file's tensors: its classes (the class head's rows but the no-object one), queries
 * and decoder layers (counted by their first norm). */
static gsq_status file_det_head(const gsq_st_file *f, gsq_task_head *head, int *classes, gsq_error *err)
{
    int64_t cls[2] = {0}, queries[3] = {0};
    gsq_status st = gsq_file_tensor_shape(f, "det_head.class_embed.weight", 2, cls, err);
    if (st == GSQ_OK) st = gsq_file_tensor_shape(f, "det_head.query_embed", 3, queries, err);
    if (st != GSQ_OK) return st;
    if (cls[0] < 2 || cls[0] > 1 << 20 || queries[1] < 1 || queries[1] > 1000)
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s: a detector of %lld class rows and %lld queries", gsq_st_label(f),
                        (long long)cls[0], (long long)queries[1]);
    int layers = 0;
    for (char name[GSQ_NAME_MAX];; layers++) {
        snprintf(name, sizeof name, "det_head.decoder.layers.%d.norm1.weight", layers);
        if (layers > 32 || !gsq_st_find(f, name)) break;
    }
    head->task = GSQ_TASK_DETECT;
    head->det = (gsq_det_head){(int)queries[1], layers};
    *classes = (int)cls[0] - 1;
    return GSQ_OK;
}

gsq_status gsq_file_head(const gsq_st_file *f, const char *classifier, gsq_task_head *head, int *classes,
                         gsq_error *err)
{
    char name[GSQ_NAME_MAX];
    *head = (gsq_task_head){GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, {0, 0}};
    if (gsq_st_find(f, "det_head.class_embed.weight")) return file_det_head(f, head, classes, err);
    int mask = gsq_st_find(f, GSQ_MASK_HEAD_CLASSES) != NULL;
    head->task = mask || gsq_st_find(f, GSQ_SEG_HEAD ".weight") ? GSQ_TASK_SEGMENT : GSQ_TASK_CLASSIFY;
    head->seg_head = mask ? GSQ_SEG_HEAD_MASK : GSQ_SEG_HEAD_LINEAR;
    /* the classes: the mask transformer's embeddings (1, K, width), a linear head's rows (K, width) */
    if (mask) snprintf(name, sizeof name, "%s", GSQ_MASK_HEAD_CLASSES);
    else snprintf(name, sizeof name, "%s.weight", head->task == GSQ_TASK_SEGMENT ? GSQ_SEG_HEAD : classifier);
    int64_t shape[3] = {0};
    gsq_status st = gsq_file_tensor_shape(f, name, 2 + mask, shape, err);
    if (st != GSQ_OK) return st;
    int64_t K = shape[mask];
    if (K < 1 || K > 1 << 20)
        return gsq_fail(err, GSQ_ERR_SHAPE, "%s: %s has %lld classes", gsq_st_label(f), name, (long long)K);
    *classes = (int)K;
    return GSQ_OK;
}

gsq_status gsq_file_meta_task(const gsq_st_file *f, gsq_task_head *head, gsq_error *err)
{
    const char *v = gsq_st_meta_get(f, "task"), *seg = gsq_st_meta_get(f, "seg_head");
    *head = (gsq_task_head){GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, {0, 0}};
    if (v && gsq_task_parse(v, &head->task) != 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata task '%.40s' is not classify, segment or detect",
                        gsq_st_label(f), v);
    if (seg && gsq_seg_head_parse(seg, &head->seg_head) != 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: metadata seg_head '%.40s' is neither linear nor mask",
                        gsq_st_label(f), seg);
    if (head->task != GSQ_TASK_DETECT) return GSQ_OK;
    const char *keys[2] = {"det_queries", "det_layers"};
    int *dst[2] = {&head->det.queries, &head->det.layers};
    for (int k = 0; k < 2; k++) {
        int r = gsq_file_meta_int(f, keys[k], dst[k]);
        if (r <= 0)
            return gsq_fail(err, r ? GSQ_ERR_FORMAT : GSQ_ERR_MISSING, "%s: metadata '%s' is %s", gsq_st_label(f),
                            keys[k], r ? "not a valid integer" : "missing");
    }
    return GSQ_OK;
}

gsq_arch gsq_file_arch(const gsq_st_file *f)
{
    const char *arch = gsq_st_meta_get(f, "arch");
    if (arch) return strcmp(arch, "swin") == 0 ? GSQ_ARCH_SWIN : GSQ_ARCH_VIT;
    return gsq_st_find(f, "layers.0.blocks.0.norm1.weight") || gsq_st_find(f, "layers.0.downsample.norm.weight")
               ? GSQ_ARCH_SWIN
               : GSQ_ARCH_VIT;
}

gsq_status gsq_model_load_open(gsq_model **out, const gsq_st_file *f, const char *const *ignore, gsq_error *err)
{
    if (gsq_file_arch(f) == GSQ_ARCH_VIT) return gsq_vit_load_open(out, f, NULL, ignore, err);
    return gsq_swin_load_open(out, f, NULL, ignore, err);
}

gsq_status gsq_model_load(gsq_model **out, const char *path, gsq_error *err)
{
    *out = NULL;
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    if (st == GSQ_OK) st = gsq_model_load_open(out, f, NULL, err);
    gsq_st_close(f);
    return st;
}

gsq_status gsq_model_describe_meta(gsq_model **out, const gsq_st_file *f, gsq_error *err)
{
    *out = NULL;
    if (gsq_file_arch(f) == GSQ_ARCH_SWIN) {
        gsq_swin_config c;
        gsq_status st = gsq_swin_config_from_meta(f, &c, err);
        return st == GSQ_OK ? gsq_swin_describe(out, &c, err) : st;
    }
    gsq_vit_config c;
    gsq_status st = gsq_vit_config_from_meta(f, &c, err);
    return st == GSQ_OK ? gsq_vit_describe(out, &c, err) : st;
}

gsq_status gsq_model_create_named(gsq_model **out, const char *name, int num_classes, gsq_error *err)
{
    gsq_swin_config sc;
    if (gsq_swin_config_by_name(name, &sc, NULL) == GSQ_OK) {
        if (num_classes > 0) sc.num_classes = num_classes;
        return gsq_swin_create(out, &sc, err);
    }
    gsq_vit_config vc;
    gsq_status st = gsq_vit_config_by_name(name, &vc, err);
    if (st != GSQ_OK) {
        *out = NULL;
        return st;
    }
    if (num_classes > 0) vc.num_classes = num_classes;
    return gsq_vit_create(out, &vc, err);
}

gsq_status gsq_model_add_to_writer(const gsq_model *m, gsq_st_writer *w, gsq_error *err)
{
    gsq_status st = GSQ_OK;
    for (int i = 0; st == GSQ_OK && i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        st = gsq_st_writer_add(w, p->name, GSQ_DT_F32, p->ndim, p->shape, m->params + p->offset, err);
    }
    return st == GSQ_OK ? gsq_model_add_meta_to_writer(m, w, err) : st;
}

gsq_status gsq_model_add_meta_to_writer(const gsq_model *m, gsq_st_writer *w, gsq_error *err)
{
    gsq_status st = m->arch == GSQ_ARCH_SWIN ? gsq_swin_add_meta(m, w, err) : gsq_vit_add_meta(m, w, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "arch", m->arch == GSQ_ARCH_SWIN ? "swin" : "vit", err);
    if (st == GSQ_OK && m->task != GSQ_TASK_CLASSIFY) /* absent: a classifier, as every earlier file */
        st = gsq_st_writer_set_meta(w, "task", gsq_task_name(m->task), err);
    char num[16];
    if (st == GSQ_OK && m->task == GSQ_TASK_DETECT)
        st = gsq_st_writer_set_meta(w, "det_queries", (snprintf(num, sizeof num, "%d", m->det.queries), num), err);
    if (st == GSQ_OK && m->task == GSQ_TASK_DETECT)
        st = gsq_st_writer_set_meta(w, "det_layers", (snprintf(num, sizeof num, "%d", m->det.layers), num), err);
    if (st == GSQ_OK && m->task == GSQ_TASK_SEGMENT)
        st = gsq_st_writer_set_meta(w, "seg_head", gsq_seg_head_name(m->seg_head), err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "format", "pt", err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "producer", "gpusq", err);
    if (st == GSQ_OK && m->class_names) st = gsq_st_writer_set_meta(w, "class_names", m->class_names, err);
    return st;
}

gsq_status gsq_model_check_finite(const gsq_model *m, const char *path, gsq_error *err)
{
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        for (size_t k = 0; k < p->numel; k++)
            if (!isfinite(m->params[p->offset + k]))
                return gsq_fail(err, GSQ_ERR_NUMERIC, "%.200s: not written: %s[%zu] is %g", path, p->name, k,
                                (double)m->params[p->offset + k]);
    }
    return GSQ_OK;
}

gsq_status gsq_model_save(const gsq_model *m, const char *path, gsq_error *err)
{
    gsq_st_writer *w = NULL;
    gsq_status st = gsq_model_check_finite(m, path, err);
    if (st == GSQ_OK) st = gsq_st_writer_create(&w, err);
    if (st == GSQ_OK) st = gsq_model_add_to_writer(m, w, err);
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    return st;
}
