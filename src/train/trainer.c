/* The training loop (micro-batches from the loader → forward, loss, backward → AdamW, and the
 * quantizers' learned scales with LSQ, with gradient accumulation), evaluation, and the trainer's
 * set-up and tear-down. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/kernels.h"
#include "gpusq/loader.h"
#include "gpusq/train.h"
#include "gpusq/vit_quant.h"
#include "models/model_state.h"
#include "train/grad_sync.h"

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

long gsq_train_step_batches(const gsq_train_config *cfg)
{
    return (long)cfg->accum_steps * (cfg->comm ? cfg->comm->size : 1);
}

static long steps_per_epoch(const gsq_train_config *cfg, size_t train_size)
{
    long bpe = (long)((train_size + (size_t)cfg->batch_size - 1) / (size_t)cfg->batch_size);
    return (bpe + gsq_train_step_batches(cfg) - 1) / gsq_train_step_batches(cfg);
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
                        int workers, gsq_comm *comm, gsq_eval_result *out, gsq_error *err)
{
    gsq_output_shape shape = gsq_model_output_shape(m);
    return gsq_evaluate_with(vit_forward, m, &shape, ds, t, batch_size, workers, comm, out, err);
}

double gsq_eval_score(const gsq_eval_result *r)
{
    return r->task == GSQ_TASK_SEGMENT ? r->miou : r->task == GSQ_TASK_DETECT ? r->coco.ap : r->top1;
}

const char *gsq_eval_score_name(gsq_task task)
{
    return task == GSQ_TASK_SEGMENT ? "mIoU" : task == GSQ_TASK_DETECT ? "AP" : "top-1";
}

/* A rank's failure as the ranks exchange it: its status and message (its error's, or the
 * status's name), and as every rank then returns it: "rank R: message" (the bare status alone). */
static void failure_out(char msg[GSQ_ERROR_MSG_MAX], gsq_status st, const gsq_error *err)
{
    snprintf(msg, GSQ_ERROR_MSG_MAX, "%s", err && err->msg[0] ? err->msg : gsq_status_name(st));
}

static gsq_status failure_in(const gsq_comm *comm, int r, int32_t status, const char *msg, gsq_error *err)
{
    return comm->size > 1 ? gsq_fail(err, (gsq_status)status, "rank %d: %s", r, msg) : (gsq_status)status;
}

/* One rank's share of an evaluation, as the ranks exchange it. */
typedef struct {
    double top1, top5, loss_sum;
    uint64_t count, skipped, pixels; /* pixels: the labelled pixels the loss is the mean of */
    int32_t status;
    char msg[GSQ_ERROR_MSG_MAX];
} eval_share;

/* Sums every rank's IoU areas (iou's three arrays, as one) into iou. */
static gsq_status iou_gather(gsq_comm *comm, gsq_iou *iou, gsq_error *err)
{
    size_t K = (size_t)iou->num_classes, bytes = 3 * K * sizeof(uint64_t);
    uint64_t *mine = malloc(bytes), *all = malloc(bytes * (size_t)comm->size);
    gsq_status st = mine && all ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "evaluate: out of memory");
    if (st == GSQ_OK) {
        memcpy(mine, iou->intersect, K * sizeof(uint64_t));
        memcpy(mine + K, iou->pred_area, K * sizeof(uint64_t));
        memcpy(mine + 2 * K, iou->label_area, K * sizeof(uint64_t));
        st = gsq_comm_allgather(comm, mine, all, bytes, err);
    }
    if (st == GSQ_OK) {
        gsq_iou_reset(iou);
        for (int r = 0; r < comm->size; r++)
            for (size_t k = 0; k < K; k++) {
                const uint64_t *a = all + (size_t)r * 3 * K;
                iou->intersect[k] += a[k];
                iou->pred_area[k] += a[K + k];
                iou->label_area[k] += a[2 * K + k];
            }
    }
    free(mine);
    free(all);
    return st;
}

/* Sums every rank's share in rank order into *out; a failed rank fails every rank, naming it. */
static gsq_status eval_gather(gsq_comm *comm, eval_share *mine, gsq_eval_result *out, double *loss_sum,
                              uint64_t *pixels, gsq_error *err)
{
    eval_share *all = malloc((size_t)comm->size * sizeof *all);
    if (!all) return gsq_fail(err, GSQ_ERR_NOMEM, "evaluate: out of memory");
    gsq_status st = gsq_comm_allgather(comm, mine, all, sizeof *mine, err);
    *loss_sum = 0;
    *pixels = 0;
    for (int r = 0; st == GSQ_OK && r < comm->size; r++) {
        if (all[r].status != GSQ_OK) {
            st = failure_in(comm, r, all[r].status, all[r].msg, err);
            break;
        }
        out->top1 += all[r].top1;
        out->top5 += all[r].top5;
        *loss_sum += all[r].loss_sum;
        *pixels += all[r].pixels;
        out->count += (size_t)all[r].count;
        out->skipped += (size_t)all[r].skipped;
    }
    free(all);
    return st;
}

/* Every detection an evaluation scored, when the caller wants them. */
typedef struct {
    gsq_detection *dets;
    size_t count, cap;
} detection_list;

static gsq_status keep_detections(detection_list *list, const gsq_detection *dets, int n, gsq_error *err)
{
    if (list->count + (size_t)n > list->cap) {
        size_t cap = 2 * list->cap + (size_t)n;
        gsq_detection *grown = realloc(list->dets, cap * sizeof *grown);
        if (!grown) return gsq_fail(err, GSQ_ERR_NOMEM, "evaluate: out of memory keeping %zu detections", cap);
        list->dets = grown;
        list->cap = cap;
    }
    memcpy(list->dets + list->count, dets, (size_t)n * sizeof *dets);
    list->count += (size_t)n;
    return GSQ_OK;
}

/* A detector's batch: its loss, and each image's detections (into dets, (queries)) added to coco and
 * to keep (when not NULL). */
static gsq_status eval_detect(const gsq_output_shape *shape, const float *logits, const gsq_batch *batch,
                              gsq_detection *dets, gsq_coco_eval *coco, detection_list *keep, eval_share *mine,
                              gsq_error *err)
{
    gsq_detect_weights w;
    gsq_detect_weights_defaults(&w);
    float loss = 0.0f;
    gsq_status st = gsq_detect_loss(logits, shape, batch->n, batch->targets, &w, NULL, 0.0f, &loss, NULL, err);
    mine->loss_sum += (double)loss * batch->n;
    mine->pixels += (uint64_t)batch->n;
    for (int i = 0; st == GSQ_OK && i < batch->n; i++) {
        const gsq_objects *o = &batch->objects[i];
        gsq_detect_decode(logits, shape, i, o->image_id, o->width, o->height, dets);
        st = gsq_coco_eval_add(coco, o, dets, shape->queries, err);
        if (st == GSQ_OK && keep) st = keep_detections(keep, dets, shape->queries, err);
    }
    return st;
}

/* One batch's share of an evaluation: a classifier's ranks of the targets and loss, a segmenter's
 * per-pixel predictions (into pred, (n, S, S)) added to iou, and its per-pixel loss. */
static void eval_batch(const gsq_output_shape *shape, const float *logits, const gsq_batch *batch, int16_t *pred,
                       float *probs, gsq_iou *iou, eval_share *mine)
{
    int K = shape->classes, n = batch->n;
    if (shape->task == GSQ_TASK_SEGMENT) {
        size_t pixels = 0, S = (size_t)shape->side;
        float loss = gsq_segment_loss(logits, n, shape->grid, K, batch->maps, shape->side, 0.0f, NULL, 0.0f, &pixels);
        mine->loss_sum += (double)loss * (double)pixels;
        mine->pixels += pixels;
        gsq_segment_predict(logits, n, shape->grid, K, shape->side, pred);
        gsq_iou_add(iou, pred, batch->maps, (size_t)n * S * S);
        return;
    }
    mine->loss_sum += (double)gsq_cross_entropy_forward(probs, logits, batch->labels, n, K, 0.0f) * n;
    mine->pixels += (uint64_t)n;
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * K;
        float target = z[batch->labels[i]];
        int above = 0; /* classes scored above the target; ties count for the target */
        for (int k = 0; k < K; k++) above += z[k] > target;
        mine->top1 += above == 0;
        mine->top5 += above < 5;
    }
}

/* The result's segmentation metrics from the summed areas. */
static void eval_segment_result(const gsq_iou *iou, gsq_eval_result *out)
{
    out->miou = gsq_iou_mean(iou);
    out->pixel_accuracy = gsq_iou_pixel_accuracy(iou);
    for (int k = 0; k < iou->num_classes && k < GSQ_EVAL_MAX_CLASSES; k++)
        out->class_iou[k] = (float)gsq_iou_class(iou, k);
}

/* gsq_evaluate_with, keeping a detector's detections in keep when it is not NULL. */
static gsq_status evaluate(gsq_forward_fn forward, void *ctx, const gsq_output_shape *shape, gsq_dataset *ds,
                           const gsq_transform *t, int batch_size, int workers, gsq_comm *comm, detection_list *keep,
                           gsq_eval_result *out, gsq_error *err)
{
    memset(out, 0, sizeof *out);
    out->task = shape->task;
    out->num_classes = shape->classes;
    gsq_flush_denormals();
    if (!comm) comm = gsq_comm_self();
    int segment = shape->task == GSQ_TASK_SEGMENT, detect = shape->task == GSQ_TASK_DETECT;
    if (ds->task != shape->task || (shape->task != GSQ_TASK_CLASSIFY && t->size != shape->side))
        return gsq_fail(err, GSQ_ERR_SHAPE, "evaluate: %s is a %s dataset at %d pixels, the model a %s model at %d",
                        ds->name, gsq_task_name(ds->task), t->size, gsq_task_name(shape->task), shape->side);
    gsq_loader_config lc = {.batch_size = batch_size, .train = 0, .workers = workers, .prefetch = 4, .transform = *t};
    long batches = batch_size > 0 ? gsq_loader_batches_per_epoch(ds, &lc) : 0;
    /* each rank its share of the batches; ranks beyond the last batch evaluate none; a detector's every rank
     * all of them (COCO's metric is not a sum of shares) */
    lc.shards = detect ? 1 : comm->size < batches ? comm->size : (int)batches;
    lc.shard = detect ? 0 : comm->rank;
    eval_share mine = {0};
    gsq_loader *ld = NULL;
    gsq_iou iou = {0};
    long own = batches > 0 ? gsq_loader_shard_batches(ds, &lc) : 0;
    /* no batch at all: the loader says why (an empty dataset, a batch larger than it) */
    gsq_status st = own > 0 || batches == 0 ? gsq_loader_create(&ld, ds, &lc, 0, 0, err) : GSQ_OK;
    size_t per_image = segment ? (size_t)shape->side * (size_t)shape->side : 0;
    float *probs = st == GSQ_OK && !segment ? malloc((size_t)batch_size * (size_t)shape->classes * sizeof(float)) : NULL;
    int16_t *pred = st == GSQ_OK && segment ? malloc((size_t)batch_size * per_image * sizeof(int16_t)) : NULL;
    gsq_detection *dets = st == GSQ_OK && detect ? malloc((size_t)shape->queries * sizeof *dets) : NULL;
    gsq_coco_eval *coco = NULL;
    if (st == GSQ_OK && segment) st = gsq_iou_init(&iou, shape->classes, err);
    if (st == GSQ_OK && detect) st = gsq_coco_eval_create(&coco, shape->classes, err);
    if (st == GSQ_OK && !(segment ? pred != NULL : detect ? dets != NULL : probs != NULL))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "evaluate: out of memory");
    for (long b = 0; st == GSQ_OK && b < own; b++) {
        gsq_batch batch;
        const float *logits = NULL;
        st = gsq_loader_next(ld, &batch, err);
        mine.skipped += (uint64_t)(st == GSQ_OK ? batch.skipped : 0);
        if (st != GSQ_OK || batch.n == 0) continue;
        st = forward(ctx, batch.images, batch.n, &logits, err);
        mine.count += (uint64_t)(st == GSQ_OK ? batch.n : 0);
        if (st == GSQ_OK && detect) st = eval_detect(shape, logits, &batch, dets, coco, keep, &mine, err);
        else if (st == GSQ_OK) eval_batch(shape, logits, &batch, pred, probs, &iou, &mine);
    }
    free(probs);
    free(pred);
    free(dets);
    gsq_loader_destroy(ld);
    mine.status = st;
    if (st != GSQ_OK) failure_out(mine.msg, st, err);
    double loss_sum = 0;
    uint64_t pixels = 0;
    st = eval_gather(comm, &mine, out, &loss_sum, &pixels, err);
    if (st == GSQ_OK && segment) st = iou_gather(comm, &iou, err);
    if (st == GSQ_OK && out->count == 0)
        st = gsq_fail(err, GSQ_ERR_MISSING, "evaluate: no sample of %s could be read", ds->name);
    if (st == GSQ_OK) {
        out->top1 /= (double)out->count;
        out->top5 /= (double)out->count;
        out->loss = pixels ? loss_sum / (double)pixels : 0.0;
        if (segment) eval_segment_result(&iou, out);
    }
    if (st == GSQ_OK && detect) {
        st = gsq_coco_eval_summarize(coco, &out->coco, err);
        out->count /= (size_t)comm->size; /* every rank evaluated every image */
        out->skipped /= (size_t)comm->size;
    }
    gsq_coco_eval_free(coco);
    gsq_iou_free(&iou);
    return st;
}

gsq_status gsq_evaluate_with(gsq_forward_fn forward, void *ctx, const gsq_output_shape *shape, gsq_dataset *ds,
                             const gsq_transform *t, int batch_size, int workers, gsq_comm *comm,
                             gsq_eval_result *out, gsq_error *err)
{
    return evaluate(forward, ctx, shape, ds, t, batch_size, workers, comm, NULL, out, err);
}

gsq_status gsq_evaluate_detections(gsq_forward_fn forward, void *ctx, const gsq_output_shape *shape, gsq_dataset *ds,
                                   const gsq_transform *t, int batch_size, int workers, const char *results_path,
                                   gsq_eval_result *out, gsq_error *err)
{
    if (shape->task != GSQ_TASK_DETECT)
        return gsq_fail(err, GSQ_ERR_ARG, "evaluate: detections asked of a %s model", gsq_task_name(shape->task));
    detection_list keep = {0};
    gsq_status st = evaluate(forward, ctx, shape, ds, t, batch_size, workers, NULL, &keep, out, err);
    if (st == GSQ_OK)
        st = gsq_coco_results_write(results_path, keep.dets, keep.count, shape->classes, ds->category_ids, err);
    free(keep.dets);
    return st;
}

/* The gradients of one micro-batch into m->grads (zeroed first): the task's loss on its targets,
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
        st = gsq_model_loss(m, &(gsq_truth){batch->labels, batch->maps, batch->targets}, cfg->label_smoothing, loss, err);
        return st == GSQ_OK ? gsq_model_backward(m, err) : st;
    }
    gsq_distill_terms terms;
    const gsq_truth truth = {batch->labels, batch->maps, batch->targets};
    st = gsq_distill_loss(t->distiller, m, cfg->teacher, cfg->unsupervised ? NULL : &truth, &terms, NULL, err);
    *loss = terms.total;
    return st == GSQ_OK ? gsq_distill_backward(t->distiller, m, err) : st;
}

/* "NaN", "inf" or "-inf", for messages (printf's spelling of NaN varies with its sign). */
static const char *non_finite_name(double v)
{
    return isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf";
}

/* What a rank says at the end of a round, so that all take the same decision. */
typedef struct {
    float loss;       /* mean over its micro-batch */
    int32_t n;        /* its samples (0: none) */
    int32_t status;   /* its micro-batch's status; a loss that is not finite is GSQ_ERR_NUMERIC */
    char msg[GSQ_ERROR_MSG_MAX];
} round_report;

/* The micro-batches of a step: micro-batch i of the step is batch state.batch + i of the epoch,
 * read by rank i % N in round i / N. Ranks exchange their sample counts before backward (who
 * contributes to the sums) and a report after it; every rank then knows the step's loss, samples
 * and failures, in micro-batch order. */
typedef struct {
    gsq_trainer *t;
    const gsq_train_config *cfg;
    gsq_comm *comm;
    gsq_loader *ld;
    gsq_grad_sync *sync;         /* NULL: one micro-batch per step, whose gradient is the step's */
    int32_t *counts;             /* (N) this round's sample counts */
    unsigned char *contributes;  /* (N) */
    round_report *reports;       /* (N) */
} step_ctx;

/* One round: the micro-batches of the step's batches first, first + 1, ... (one per rank, none
 * at or past end), their gradients added to the step's sums, their losses and images to
 * *loss_sum and *samples in rank order. A failure any rank reports fails every rank alike
 * (*reported set); a failure of the exchange itself returns at once. */
static gsq_status run_round(step_ctx *c, long first, long end, double *loss_sum, int *samples, int *reported,
                            gsq_error *err)
{
    gsq_comm *comm = c->comm;
    int N = comm->size;
    long index = first + comm->rank; /* the batch of the epoch this rank reads, if there is one */
    gsq_batch batch = {0};
    gsq_status st = GSQ_OK;
    if (index < end) {
        st = gsq_loader_next(c->ld, &batch, err);
        if (st == GSQ_OK && batch.index != index)
            st = gsq_fail(err, GSQ_ERR_ARG, "train: the loader gave batch %ld where the step reads %ld", batch.index,
                          index);
    }
    int32_t n = st == GSQ_OK ? batch.n : 0;
    gsq_status cs = gsq_comm_allgather(comm, &n, c->counts, sizeof n, err);
    if (cs != GSQ_OK) return cs; /* the group is broken: nothing more can be agreed */
    int any = 0;
    for (int r = 0; r < N; r++) any |= c->contributes[r] = c->counts[r] > 0;
    round_report mine = {.n = n};
    if (any) {
        if (c->sync) gsq_grad_sync_begin_round(c->sync, c->contributes, (float)n);
        if (st == GSQ_OK && n > 0) st = step_gradients(c->t, c->cfg, &batch, &mine.loss, err);
        if (st == GSQ_OK && n > 0 && !isfinite(mine.loss))
            st = gsq_fail(err, GSQ_ERR_NUMERIC, "training diverged at step %ld (epoch %ld, batch %ld): the loss is %s; "
                          "nothing was written from this step", c->t->state.step + 1, c->t->state.epoch + 1, index + 1,
                          non_finite_name(mine.loss));
        gsq_status ss = c->sync ? gsq_grad_sync_end_round(c->sync, st == GSQ_OK ? err : NULL) : GSQ_OK;
        if (ss != GSQ_OK) return st != GSQ_OK ? st : ss; /* the sums broke down: the group cannot agree */
    }
    mine.status = st;
    if (st != GSQ_OK) failure_out(mine.msg, st, err);
    cs = gsq_comm_allgather(comm, &mine, c->reports, sizeof mine, err);
    if (cs != GSQ_OK) return cs;
    for (int r = 0; r < N; r++) { /* the first failure in rank order, the same on every rank */
        const round_report *p = &c->reports[r];
        if (p->status != GSQ_OK) {
            *reported = 1;
            return failure_in(comm, r, p->status, p->msg, err);
        }
        if (p->n == 0) continue;
        *loss_sum += (double)p->loss * p->n;
        *samples += p->n;
    }
    return GSQ_OK;
}

/* Whether any rank was asked to stop (Ctrl-C, SIGTERM), decided together at the end of a step.
 * flags has room for one int32 per rank. */
static gsq_status agree_stop(gsq_comm *comm, const gsq_train_config *cfg, int32_t *flags, int *stop, gsq_error *err)
{
    int32_t mine = cfg->stop && *cfg->stop;
    gsq_status st = gsq_comm_allgather(comm, &mine, flags, sizeof mine, err);
    for (int r = 0; st == GSQ_OK && r < comm->size; r++) *stop |= flags[r] != 0;
    return st;
}

/* A rank reported a failure in the step in progress: the weights are still the last step's.
 * Rank 0 writes them to the checkpoint and says so in the message. */
static void checkpoint_after_failure(const gsq_trainer *t, const gsq_train_config *cfg, gsq_error *err)
{
    gsq_error save = {0};
    char first[GSQ_ERROR_MSG_MAX];
    if (!err) {
        gsq_trainer_save(t, cfg, cfg->checkpoint_path, NULL);
        return;
    }
    memcpy(first, err->msg, sizeof first);
    if (gsq_trainer_save(t, cfg, cfg->checkpoint_path, &save) == GSQ_OK)
        gsq_fail(err, err->code, "%.300s; %.150s holds step %ld", first, cfg->checkpoint_path, t->state.step);
    else
        gsq_fail(err, err->code, "%.300s; nor could the checkpoint be written: %.150s", first, save.msg);
}

gsq_status gsq_trainer_run(gsq_trainer *t, gsq_dataset *train, const gsq_train_config *cfg,
                           gsq_train_result *res, gsq_error *err)
{
    memset(res, 0, sizeof *res);
    gsq_flush_denormals();
    gsq_model *m = t->model;
    gsq_comm *comm = cfg->comm ? cfg->comm : gsq_comm_self();
    gsq_loader_config lc = loader_config(cfg, 1);
    long bpe = gsq_loader_batches_per_epoch(train, &lc);
    long total = t->opt.cfg.total_steps;
    long per_step = gsq_train_step_batches(cfg);
    if (train->task != m->task)
        return gsq_fail(err, GSQ_ERR_SHAPE, "train: %s is a %s dataset but the model is a %s model", train->name,
                        gsq_task_name(train->task), gsq_task_name(m->task));
    if (t->state.epoch >= cfg->epochs) {
        res->finished = 1;
        return GSQ_OK;
    }
    step_ctx c = {.t = t, .cfg = cfg, .comm = comm};
    lc.shards = comm->size;
    lc.shard = comm->rank;
    gsq_status st = gsq_loader_create(&c.ld, train, &lc, t->state.epoch, t->state.batch, err);
    c.counts = malloc((size_t)comm->size * sizeof *c.counts);
    c.contributes = malloc((size_t)comm->size);
    c.reports = malloc((size_t)comm->size * sizeof *c.reports);
    if (st == GSQ_OK && !(c.counts && c.contributes && c.reports))
        st = gsq_fail(err, GSQ_ERR_NOMEM, "train: out of memory");
    if (st == GSQ_OK && per_step > 1) st = gsq_grad_sync_create(&c.sync, m, comm, GSQ_BUCKET_FLOATS, err);
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    int nb = gsq_model_blocks(m, blocks);
    double t0 = gsq_seconds(), early_sum = 0;
    size_t images = 0;
    long steps_here = 0;
    while (st == GSQ_OK && t->state.epoch < cfg->epochs) {
        /* one optimizer step: up to per_step micro-batches, not crossing the epoch's end */
        long step_batches = bpe - t->state.batch < per_step ? bpe - t->state.batch : per_step;
        double loss_sum = 0;
        int samples = 0, reported = 0;
        if (c.sync) gsq_grad_sync_zero(c.sync);
        for (long first = t->state.batch; st == GSQ_OK && first < t->state.batch + step_batches; first += comm->size)
            st = run_round(&c, first, t->state.batch + step_batches, &loss_sum, &samples, &reported, err);
        if (st != GSQ_OK && reported && comm->size > 1) {
            /* every rank knows: rank 0 keeps the step before it for all to resume from, the others
             * wait until it is written */
            if (comm->rank == 0 && cfg->checkpoint_path) checkpoint_after_failure(t, cfg, err);
            gsq_comm_barrier(comm, NULL);
        }
        if (st != GSQ_OK) break;
        t->state.batch += step_batches;
        gsq_train_progress p = {.step = t->state.step + 1, .total_steps = total, .epoch = t->state.epoch};
        if (c.sync) p.comm_seconds = gsq_grad_sync_take_wait(c.sync);
        if (samples > 0) {
            if (c.sync) gsq_grad_sync_finish(c.sync, 1.0f / (float)samples);
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
                st = gsq_evaluate(m, cfg->val, &cfg->transform, cfg->batch_size, cfg->workers, cfg->comm, &ev, err);
                if (st != GSQ_OK) break;
                res->eval = ev;
                p.eval = &res->eval;
            }
        }
        gsq_loader_stats ls;
        gsq_loader_stats_get(c.ld, &ls);
        double elapsed = gsq_seconds() - t0;
        p.elapsed_seconds = elapsed;
        p.images_per_second = elapsed > 0 ? images / elapsed : 0;
        p.eta_seconds = steps_here > 0 ? elapsed / steps_here * (double)(total - t->state.step) : 0;
        p.skipped = res->skipped = ls.skipped;
        if (cfg->progress) cfg->progress(&p, cfg->user);
        int stop = 0; /* asked on any rank, until now */
        st = agree_stop(comm, cfg, c.counts, &stop, err);
        if (st != GSQ_OK) break;
        int limit = cfg->max_steps > 0 && steps_here >= cfg->max_steps;
        int finished = t->state.epoch >= cfg->epochs;
        int periodic = cfg->checkpoint_every > 0 && t->state.step % cfg->checkpoint_every == 0;
        /* the final checkpoint is the caller's, after its result (a full disk costs the former);
         * rank 0 writes for all, the others hold the same weights */
        if (cfg->checkpoint_path && (stop || limit || periodic) && !finished && comm->rank == 0)
            st = gsq_trainer_save(t, cfg, cfg->checkpoint_path, err);
        if (stop || limit) {
            res->interrupted = stop;
            break;
        }
    }
    res->finished = st == GSQ_OK && t->state.epoch >= cfg->epochs;
    res->seconds = gsq_seconds() - t0;
    res->images_per_second = res->seconds > 0 ? images / res->seconds : 0;
    if (c.ld) gsq_loader_stats_get(c.ld, &res->loader);
    gsq_grad_sync_free(c.sync);
    free(c.counts);
    free(c.contributes);
    free(c.reports);
    gsq_loader_destroy(c.ld);
    return st;
}
