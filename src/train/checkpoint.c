/* Training checkpoints: the model (timm names) and its quantizers, AdamW moments of every learned
 * block's tensors as optim.exp_avg.NAME and optim.exp_avg_sq.NAME, and the run's state and
 * settings as metadata, in one safetensors file written atomically. Resuming restores all of it,
 * so the continued run is bitwise the same. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/safetensors.h"
#include "gpusq/train.h"
#include "gpusq/vit_quant.h"

#define MOMENT1 "optim.exp_avg."
#define MOMENT2 "optim.exp_avg_sq."

/* Calls fn on every AdamW moment of every tensor of the model's learned blocks (gsq_model_blocks):
 * the first moments, then the second, under optim.exp_avg.NAME and optim.exp_avg_sq.NAME; stops at
 * the first failure. */
typedef gsq_status (*moment_fn)(void *ctx, const char *name, const gsq_param *p, float *data, gsq_error *err);
static gsq_status each_moment(const gsq_trainer *t, moment_fn fn, void *ctx, gsq_error *err)
{
    char name[GSQ_NAME_MAX + 32];
    gsq_param_block b[GSQ_MAX_BLOCKS];
    int nb = gsq_model_blocks(t->model, b);
    gsq_status st = GSQ_OK;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < nb && k < t->opt.num_blocks; k++)
            for (int i = 0; st == GSQ_OK && i < b[k].num_tensors; i++) {
                const gsq_param *p = &b[k].tensors[i];
                snprintf(name, sizeof name, "%s%s", pass ? MOMENT2 : MOMENT1, p->name);
                st = fn(ctx, name, p, (pass ? t->opt.v[k] : t->opt.m[k]) + p->offset, err);
            }
    return st;
}

/* A moment of tensor p of a learned block (named as PyTorch names it) into the checkpoint writer. */
static gsq_status add_moment(void *w, const char *name, const gsq_param *p, float *data, gsq_error *err)
{
    return gsq_st_writer_add(w, name, GSQ_DT_F32, p->ndim, p->shape, data, err);
}

/* The same moment read back from the checkpoint file. */
static gsq_status read_moment(void *f, const char *name, const gsq_param *p, float *data, gsq_error *err)
{
    const gsq_st_tensor *tt = gsq_st_find(f, name);
    if (!tt) return gsq_fail(err, GSQ_ERR_MISSING, "%s: checkpoint tensor '%s' is missing", gsq_st_label(f), name);
    return gsq_st_read_f32(f, tt, data, p->numel, err);
}

/* The settings a resumed run must share with the run that wrote the checkpoint. */
static void run_identity(const gsq_train_config *c, char *buf, size_t cap)
{
    const gsq_optim_config *o = &c->optim;
    snprintf(buf, cap,
             "batch=%d accum=%d epochs=%ld warmup_epochs=%.9g smoothing=%.9g seed=%" PRIu64
             " lr=%.9g min_lr=%.9g warmup_lr=%.9g wd=%.9g betas=%.9g,%.9g eps=%.9g clip=%.9g size=%d augment=%d",
             c->batch_size, (int)gsq_train_step_batches(c), c->epochs, (double)c->warmup_epochs, (double)c->label_smoothing,
             c->seed, (double)o->lr, (double)o->min_lr, (double)o->warmup_lr, (double)o->weight_decay,
             (double)o->beta1, (double)o->beta2, (double)o->eps, (double)o->clip_grad, c->transform.size, c->augment);
    if (c->teacher) {
        const gsq_distill_config *d = &c->distill;
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, " distill=%.9g,%.9g,%.9g T=%.9g from_block=%d unsupervised=%d",
                 (double)d->alpha, (double)d->beta, (double)d->gamma, (double)d->temperature, d->first_block,
                 c->unsupervised);
    }
}

gsq_status gsq_trainer_save(const gsq_trainer *t, const gsq_train_config *cfg, const char *path,
                            gsq_error *err)
{
    const gsq_model *m = t->model;
    gsq_st_writer *w = NULL;
    gsq_status st = gsq_model_check_finite(m, path, err); /* never replaces good weights with NaN */
    if (st == GSQ_OK) st = gsq_st_writer_create(&w, err);
    if (st == GSQ_OK) st = gsq_model_add_to_writer(m, w, err);
    if (st == GSQ_OK) st = gsq_model_quant_add_to_writer(m, w, err);
    if (st == GSQ_OK) st = each_moment(t, add_moment, w, err);
    char buf[512];
    snprintf(buf, sizeof buf, "%ld", t->state.step);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "train.step", buf, err);
    snprintf(buf, sizeof buf, "%ld", t->state.epoch);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "train.epoch", buf, err);
    snprintf(buf, sizeof buf, "%ld", t->state.batch);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "train.batch", buf, err);
    run_identity(cfg, buf, sizeof buf);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "train.run", buf, err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "gpusq.kind", "checkpoint", err);
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, err);
    gsq_st_writer_free(w);
    return st;
}

static gsq_status meta_long(const gsq_st_file *f, const char *key, long *out, gsq_error *err)
{
    const char *v = gsq_st_meta_get(f, key);
    char *end = NULL;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < 0)
        return gsq_fail(err, GSQ_ERR_FORMAT, "%s: checkpoint metadata '%s' is %s", gsq_st_label(f), key,
                        v ? "not a non-negative integer" : "missing");
    *out = x;
    return GSQ_OK;
}

gsq_status gsq_trainer_resume(gsq_trainer *t, const char *checkpoint, const gsq_train_config *cfg,
                              size_t train_size, gsq_error *err)
{
    memset(t, 0, sizeof *t);
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, checkpoint, err);
    if (st != GSQ_OK) return st;
    const char *kind = gsq_st_meta_get(f, "gpusq.kind");
    if (!kind || strcmp(kind, "checkpoint") != 0)
        st = gsq_fail(err, GSQ_ERR_FORMAT, "%s: not a gpusq training checkpoint (no gpusq.kind=checkpoint)", checkpoint);
    char want[512];
    run_identity(cfg, want, sizeof want);
    const char *run = gsq_st_meta_get(f, "train.run");
    if (st == GSQ_OK && (!run || strcmp(run, want) != 0))
        st = gsq_fail(err, GSQ_ERR_ARG, "%s: the checkpoint was written by a run with other settings (%s); this run has %s",
                      checkpoint, run ? run : "none recorded", want);
    gsq_model *m = NULL;
    static const char *const state[] = {"optim.", "quant.", NULL}; /* the optimizer's, the quantizers' */
    if (st == GSQ_OK) st = gsq_model_load_open(&m, f, state, err);
    if (st == GSQ_OK) st = gsq_model_quant_restore(m, f, err);
    if (st == GSQ_OK) {
        st = gsq_trainer_init(t, m, cfg, train_size, err); /* frees m on failure */
        if (st != GSQ_OK && err) { /* a model that does not fit this run: name the checkpoint */
            gsq_error inner = *err;
            gsq_fail(err, st, "%.200s: %s", checkpoint, inner.msg);
        }
    } else {
        gsq_model_free(m);
    }
    if (st == GSQ_OK) st = each_moment(t, read_moment, f, err);
    if (st == GSQ_OK) st = meta_long(f, "train.step", &t->state.step, err);
    if (st == GSQ_OK) st = meta_long(f, "train.epoch", &t->state.epoch, err);
    if (st == GSQ_OK) st = meta_long(f, "train.batch", &t->state.batch, err);
    if (st == GSQ_OK) t->opt.step = t->state.step;
    gsq_st_close(f);
    if (st != GSQ_OK) gsq_trainer_free(t);
    return st;
}
