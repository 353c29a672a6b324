/* The training loop (micro-batches from the loader → forward, loss, backward → AdamW, and the
 * quantizers' learned scales with LSQ, with gradient accumulation), evaluation, and the trainer's
 * set-up and tear-down. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/kernels.h"
#include "gpusq/loader.h"
#include "gpusq/train.h"
#include "gpusq/vit_quant.h"
#include "models/model_state.h"

void gsq_train_defaults(gsq_train_config *cfg, int size)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch_size = 64;
    cfg->accum_steps = 1;
    cfg->epochs = 10;
    cfg->warmup_epochs = 1.0f;
    cfg->label_smoothing = 0.1f;
    gsq_optim_defaults(&cfg->optim);
    gsq_transform_defaults(&cfg->transform, size);
    cfg->augment = 1;
    cfg->workers = 1;
    cfg->prefetch = 4;
    cfg->divergence_factor = 50.0f;
    gsq_distill_defaults(&cfg->distill, 12);
}

static gsq_loader_config loader_config(const gsq_train_config *cfg, int train)
{
    return (gsq_loader_config){
        .batch_size = cfg->batch_size, .train = train, .augment = cfg->augment, .drop_last = 0, .seed = cfg->seed,
        .workers = cfg->workers, .prefetch = cfg->prefetch, .transform = cfg->transform,
    };
}

static long steps_per_epoch(const gsq_train_config *cfg, size_t train_size)
{
    long bpe = (long)((train_size + (size_t)cfg->batch_size - 1) / (size_t)cfg->batch_size);
    return (bpe + cfg->accum_steps - 1) / cfg->accum_steps;
}

gsq_status gsq_trainer_init(gsq_trainer *t, gsq_model *m, const gsq_train_config *cfg,
                            size_t train_size, gsq_error *err)
{
    memset(t, 0, sizeof *t);
    t->model = m;
    if (cfg->batch_size < 1 || cfg->accum_steps < 1 || cfg->epochs < 1 || cfg->warmup_epochs < 0 ||
        !(cfg->label_smoothing >= 0 && cfg->label_smoothing < 1) || train_size == 0) {
        gsq_trainer_free(t);
        return gsq_fail(err, GSQ_ERR_ARG,
                        "train: invalid settings (batch %d, accumulation %d, epochs %ld, warm-up %g epochs, "
                        "smoothing %g, %zu training samples)",
                        cfg->batch_size, cfg->accum_steps, cfg->epochs, (double)cfg->warmup_epochs,
                        (double)cfg->label_smoothing, train_size);
    }
    if (cfg->transform.size != m->img_size || m->in_chans != 3) {
        int size = m->img_size, chans = m->in_chans; /* for the message: freeing t frees m */
        gsq_trainer_free(t);
        return gsq_fail(err, GSQ_ERR_SHAPE, "train: the data is %d×%d RGB but the model takes %d×%d with %d channels",
                        cfg->transform.size, cfg->transform.size, size, size, chans);
    }
    if (cfg->unsupervised && !cfg->teacher) {
        gsq_trainer_free(t);
        return gsq_fail(err, GSQ_ERR_ARG, "train: unsupervised training needs a teacher for its pseudo-labels");
    }
    if (cfg->teacher) {
        gsq_distill_config dc = cfg->distill;
        dc.label_smoothing = cfg->label_smoothing;
        gsq_status st = gsq_distiller_create(&t->distiller, m, cfg->teacher, &dc, err);
        if (st != GSQ_OK) {
            gsq_trainer_free(t);
            return st;
        }
    }
    gsq_optim_config oc = cfg->optim;
    long spe = steps_per_epoch(cfg, train_size);
    oc.total_steps = spe * cfg->epochs;
    oc.warmup_steps = (long)(cfg->warmup_epochs * (float)spe + 0.5f);
    if (oc.warmup_steps > oc.total_steps) oc.warmup_steps = oc.total_steps;
    gsq_status st = gsq_model_zero_grad(m, err);
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    if (st == GSQ_OK) st = gsq_adamw_init(&t->opt, blocks, gsq_model_blocks(m, blocks), &oc, err);
    if (st != GSQ_OK) {
        gsq_trainer_free(t);
        return st;
    }
    t->state.seed = cfg->seed;
    return GSQ_OK;
}

void gsq_trainer_free(gsq_trainer *t)
{
    gsq_model_free(t->model);
    gsq_adamw_free(&t->opt);
    gsq_distiller_free(t->distiller);
    memset(t, 0, sizeof *t);
}

static gsq_status vit_forward(void *ctx, const float *images, int n, const float **logits, gsq_error *err)
{
    return gsq_model_infer(ctx, images, n, logits, err);
}

gsq_status gsq_evaluate(gsq_model *m, gsq_dataset *ds, const gsq_transform *t, int batch_size,
                        int workers, gsq_eval_result *out, gsq_error *err)
{
    return gsq_evaluate_with(vit_forward, m, m->num_classes, ds, t, batch_size, workers, out, err);
}

gsq_status gsq_evaluate_with(gsq_forward_fn forward, void *ctx, int K, gsq_dataset *ds, const gsq_transform *t,
                             int batch_size, int workers, gsq_eval_result *out, gsq_error *err)
{
    memset(out, 0, sizeof *out);
    gsq_flush_denormals();
    gsq_loader_config lc = {.batch_size = batch_size, .train = 0, .workers = workers, .prefetch = 4, .transform = *t};
    gsq_loader *ld = NULL;
    gsq_status st = gsq_loader_create(&ld, ds, &lc, 0, 0, err);
    long batches = st == GSQ_OK ? gsq_loader_batches_per_epoch(ds, &lc) : 0;
    float *probs = st == GSQ_OK ? malloc((size_t)batch_size * (size_t)K * sizeof(float)) : NULL;
    if (st == GSQ_OK && !probs) st = gsq_fail(err, GSQ_ERR_NOMEM, "evaluate: out of memory");
    double loss_sum = 0;
    for (long b = 0; st == GSQ_OK && b < batches; b++) {
        gsq_batch batch;
        const float *logits = NULL;
        st = gsq_loader_next(ld, &batch, err);
        out->skipped += (size_t)(st == GSQ_OK ? batch.skipped : 0);
        if (st != GSQ_OK || batch.n == 0) continue;
        st = forward(ctx, batch.images, batch.n, &logits, err);
        if (st != GSQ_OK) break;
        loss_sum += (double)gsq_cross_entropy_forward(probs, logits, batch.labels, batch.n, K, 0.0f) * batch.n;
        for (int i = 0; i < batch.n; i++) {
            const float *z = logits + (size_t)i * K;
            float target = z[batch.labels[i]];
            int above = 0; /* classes scored above the target; ties count for the target */
            for (int k = 0; k < K; k++) above += z[k] > target;
            out->top1 += above == 0;
            out->top5 += above < 5;
        }
        out->count += (size_t)batch.n;
    }
    free(probs);
    gsq_loader_destroy(ld);
    if (st == GSQ_OK && out->count == 0)
        st = gsq_fail(err, GSQ_ERR_MISSING, "evaluate: no sample of %s could be read", ds->name);
    if (st != GSQ_OK) return st;
    out->top1 /= (double)out->count;
    out->top5 /= (double)out->count;
    out->loss = loss_sum / (double)out->count;
    return GSQ_OK;
}

/* Gradient accumulation: grads of each micro-batch (a mean over its samples) are weighted by its
 * sample count into acc, and the step uses acc / samples. */
static void accumulate(float *acc, const float *grads, size_t n, float weight)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) acc[i] += weight * grads[i];
}

/* The gradients of one micro-batch into m->grads (zeroed first): cross-entropy on its labels,
 * or the distillation loss against the teacher's forward pass on the same images. */
static gsq_status step_gradients(gsq_trainer *t, const gsq_train_config *cfg, const gsq_batch *batch,
                                 float *loss, gsq_error *err)
{
    gsq_model *m = t->model;
    gsq_status st = cfg->teacher ? gsq_model_infer(cfg->teacher, batch->images, batch->n, NULL, err) : GSQ_OK;
    if (st == GSQ_OK) st = gsq_model_forward(m, batch->images, batch->n, NULL, err);
    if (st == GSQ_OK) st = gsq_model_zero_grad(m, err);
    if (st != GSQ_OK) return st;
    if (!cfg->teacher) {
        st = gsq_model_loss(m, batch->labels, cfg->label_smoothing, loss, err);
        return st == GSQ_OK ? gsq_model_backward(m, err) : st;
    }
    gsq_distill_terms terms;
    st = gsq_distill_loss(t->distiller, m, cfg->teacher, cfg->unsupervised ? NULL : batch->labels, &terms, NULL,
                          err);
    *loss = terms.total;
    return st == GSQ_OK ? gsq_distill_backward(t->distiller, m, err) : st;
}

/* "NaN", "inf" or "-inf", for messages (printf's spelling of NaN varies with its sign). */
static const char *non_finite_name(double v)
{
    return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

gsq_status gsq_trainer_run(gsq_trainer *t, gsq_dataset *train, const gsq_train_config *cfg,
                           gsq_train_result *res, gsq_error *err)
{
    memset(res, 0, sizeof *res);
    gsq_flush_denormals();
    gsq_model *m = t->model;
    gsq_loader_config lc = loader_config(cfg, 1);
    long bpe = gsq_loader_batches_per_epoch(train, &lc);
    long total = t->opt.cfg.total_steps;
    if (t->state.epoch >= cfg->epochs) {
        res->finished = 1;
        return GSQ_OK;
    }
    gsq_loader *ld = NULL;
    gsq_status st = gsq_loader_create(&ld, train, &lc, t->state.epoch, t->state.batch, err);
    /* every learned block (the parameters, LSQ's scales) accumulates and steps alike */
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    int nb = gsq_model_blocks(m, blocks), accumulating = cfg->accum_steps > 1;
    float *acc[GSQ_MAX_BLOCKS] = {NULL}; /* each block's gradient sum over the micro-batches */
    for (int k = 0; st == GSQ_OK && accumulating && k < nb; k++)
        if (!(acc[k] = malloc(blocks[k].n * sizeof(float))))
            st = gsq_fail(err, GSQ_ERR_NOMEM, "train: out of memory for the gradient accumulator");
    double t0 = gsq_seconds(), early_sum = 0;
    size_t images = 0;
    long steps_here = 0;
    while (st == GSQ_OK && t->state.epoch < cfg->epochs) {
        /* one optimizer step: up to accum_steps micro-batches, not crossing the epoch's end */
        for (int k = 0; accumulating && k < nb; k++) memset(acc[k], 0, blocks[k].n * sizeof(float));
        double loss_sum = 0;
        int samples = 0;
        for (int a = 0; st == GSQ_OK && a < cfg->accum_steps && t->state.batch < bpe; a++) {
            gsq_batch batch;
            st = gsq_loader_next(ld, &batch, err);
            t->state.batch++;
            if (st != GSQ_OK || batch.n == 0) continue;
            float loss = 0;
            st = step_gradients(t, cfg, &batch, &loss, err);
            if (st == GSQ_OK && !isfinite(loss))
                st = gsq_fail(err, GSQ_ERR_NUMERIC, "training diverged at step %ld (epoch %ld, batch %ld): the loss "
                              "is %s; nothing was written from this step", t->state.step + 1, t->state.epoch + 1,
                              t->state.batch, non_finite_name(loss));
            if (st != GSQ_OK) break;
            for (int k = 0; accumulating && k < nb; k++) accumulate(acc[k], blocks[k].grads, blocks[k].n, (float)batch.n);
            loss_sum += (double)loss * batch.n;
            samples += batch.n;
        }
        if (st != GSQ_OK) break;
        gsq_train_progress p = {.step = t->state.step + 1, .total_steps = total, .epoch = t->state.epoch};
        if (samples > 0) {
            for (int k = 0; accumulating && k < nb; k++) {
                float inv = 1.0f / (float)samples, *g = blocks[k].grads;
                const float *a = acc[k];
                #pragma omp parallel for simd schedule(static)
                for (size_t i = 0; i < blocks[k].n; i++) g[i] = a[i] * inv;
            }
            if (cfg->frozen_zero) {
                const uint8_t *keep = cfg->frozen_zero;
                #pragma omp parallel for simd schedule(static)
                for (size_t i = 0; i < m->num_params; i++) m->grads[i] = keep[i] ? m->grads[i] : 0.0f;
            }
            p.grad_norm = gsq_adamw_step(&t->opt, blocks, nb, &p.lr);
            if (!isfinite(p.grad_norm)) {
                st = gsq_fail(err, GSQ_ERR_NUMERIC, "training diverged at step %ld: the gradient norm is %s "
                              "(loss %g); nothing was written from this step", t->state.step + 1,
                              non_finite_name(p.grad_norm), loss_sum / samples);
                break;
            }
            t->state.step++;
            steps_here++;
            images += (size_t)samples;
            res->last_loss = p.loss = (float)(loss_sum / samples);
            if (steps_here <= GSQ_EARLY_STEPS) early_sum += p.loss;
            if (steps_here >= GSQ_EARLY_STEPS) p.early_loss = (float)(early_sum / GSQ_EARLY_STEPS);
            p.diverging = cfg->divergence_factor > 0 && p.early_loss > 0 &&
                          p.loss > cfg->divergence_factor * p.early_loss;
            res->diverging_steps += p.diverging;
        }
        gsq_eval_result ev;
        int epoch_done = t->state.batch >= bpe;
        if (epoch_done) {
            t->state.epoch++;
            t->state.batch = 0;
            if (cfg->val) {
                st = gsq_evaluate(m, cfg->val, &cfg->transform, cfg->batch_size, cfg->workers, &ev, err);
                if (st != GSQ_OK) break;
                res->eval = ev;
                p.eval = &res->eval;
            }
        }
        gsq_loader_stats ls;
        gsq_loader_stats_get(ld, &ls);
        double elapsed = gsq_seconds() - t0;
        p.elapsed_seconds = elapsed;
        p.images_per_second = elapsed > 0 ? images / elapsed : 0;
        p.eta_seconds = steps_here > 0 ? elapsed / steps_here * (double)(total - t->state.step) : 0;
        p.skipped = res->skipped = ls.skipped;
        if (cfg->progress) cfg->progress(&p, cfg->user);
        int stop = cfg->stop && *cfg->stop;
        int limit = cfg->max_steps > 0 && steps_here >= cfg->max_steps;
        int finished = t->state.epoch >= cfg->epochs;
        int periodic = cfg->checkpoint_every > 0 && t->state.step % cfg->checkpoint_every == 0;
        /* the final checkpoint is the caller's, after its result (a full disk costs the former) */
        if (cfg->checkpoint_path && (stop || limit || periodic) && !finished)
            st = gsq_trainer_save(t, cfg, cfg->checkpoint_path, err);
        if (stop || limit) {
            res->interrupted = stop;
            break;
        }
    }
    res->finished = st == GSQ_OK && t->state.epoch >= cfg->epochs;
    res->seconds = gsq_seconds() - t0;
    res->images_per_second = res->seconds > 0 ? images / res->seconds : 0;
    if (ld) gsq_loader_stats_get(ld, &res->loader);
    for (int k = 0; k < nb; k++) free(acc[k]);
    gsq_loader_destroy(ld);
    return st;
}
