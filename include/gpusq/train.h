/* Training and evaluation: the loop that feeds batches from the loader through forward, loss,
 * backward and AdamW, with gradient accumulation, evaluation (top-1, top-5, loss), progress
 * reports and checkpoints that resume bit for bit. */
#ifndef GPUSQ_TRAIN_H
#define GPUSQ_TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "gpusq/comm.h"
#include "gpusq/data.h"
#include "gpusq/distill.h"
#include "gpusq/loader.h"
#include "gpusq/detect.h"
#include "gpusq/optim.h"
#include "gpusq/vit.h"

/* Per-class IoU kept in an evaluation's result (mIoU is over every class). */
#define GSQ_EVAL_MAX_CLASSES 1024

typedef struct {
    gsq_task task;
    double top1, top5;  /* classification: fractions in [0, 1] */
    double miou;        /* segmentation: mean IoU over the classes present (gpusq/task.h), in [0, 1] */
    double pixel_accuracy; /* segmentation: labelled pixels predicted right */
    int num_classes;
    float class_iou[GSQ_EVAL_MAX_CLASSES]; /* segmentation: the first classes' IoU (NaN: absent) */
    gsq_coco_stats coco; /* detection: COCO's twelve box metrics (gpusq/detect.h), fractions */
    double loss;        /* mean cross-entropy (no smoothing), per image or per labelled pixel; a
                         * detector's DETR loss per image */
    size_t count;       /* samples evaluated */
    size_t skipped;     /* samples that failed to decode */
} gsq_eval_result;

/* The headline number of an evaluation: top-1 (classification), mIoU (segmentation) or AP
 * (detection: AP@[.5:.95]), and its name ("top-1", "mIoU", "AP"). */
double gsq_eval_score(const gsq_eval_result *r);
const char *gsq_eval_score_name(gsq_task task);

/* Evaluates m on every sample of ds with the eval transform (t->size must be the model's input).
 * With a group of processes (comm, NULL: this one alone) each rank evaluates its share of the
 * batches and every rank gets the summed result (a detector: every rank evaluates them all, the
 * same result); a rank's failure fails every rank, naming it. */
gsq_status gsq_evaluate(gsq_model *m, gsq_dataset *ds, const gsq_transform *t, int batch_size,
                        int workers, gsq_comm *comm, gsq_eval_result *out, gsq_error *err);
/* The same with any forward pass: forward(ctx, images (n, 3, H, W), n, &logits), the logits of
 * the given shape. */
typedef gsq_status (*gsq_forward_fn)(void *ctx, const float *images, int n, const float **logits, gsq_error *err);
gsq_status gsq_evaluate_with(gsq_forward_fn forward, void *ctx, const gsq_output_shape *shape, gsq_dataset *ds,
                             const gsq_transform *t, int batch_size, int workers, gsq_comm *comm,
                             gsq_eval_result *out, gsq_error *err);
/* gsq_evaluate_with for a detector, on this process alone, that also writes every detection it
 * scores (every query of every image) to results_path as a COCO results JSON
 * (gsq_coco_results_write, with the dataset's category ids). */
gsq_status gsq_evaluate_detections(gsq_forward_fn forward, void *ctx, const gsq_output_shape *shape, gsq_dataset *ds,
                                   const gsq_transform *t, int batch_size, int workers, const char *results_path,
                                   gsq_eval_result *out, gsq_error *err);

/* Where a run stands; saved in checkpoints. The augmentation and shuffle randomness are
 * functions of (seed, epoch, position), so this is the whole random state. */
typedef struct {
    long step;          /* optimizer steps taken */
    long epoch, batch;  /* the next micro-batch to read */
    uint64_t seed;
} gsq_train_state;

typedef struct {
    long step, total_steps, epoch;
    float loss;            /* mean training loss of this step's samples */
    float lr;
    double grad_norm;      /* before clipping */
    double images_per_second, elapsed_seconds, eta_seconds;
    size_t skipped;        /* samples skipped so far (decode failures, this process's) */
    double comm_seconds;   /* time this step waited for the other processes' gradients */
    const gsq_eval_result *eval; /* non-NULL on the report that follows an evaluation */
    int diverging;         /* loss > divergence_factor × the mean of this call's first steps */
    float early_loss;      /* that mean (0 until GSQ_EARLY_STEPS steps are done) */
} gsq_train_progress;

/* Steps of a call to gsq_trainer_run whose mean loss divergence is measured against. */
#define GSQ_EARLY_STEPS 10

typedef struct {
    int batch_size;        /* micro-batch */
    int accum_steps;       /* micro-batches per optimizer step and process (gradient accumulation) */
    gsq_comm *comm;        /* the processes training together (data parallel: each reads its share
                            * of a step's micro-batches, docs/DISTRIBUTED.md), NULL: this one alone.
                            * A step is accum_steps × size micro-batches; N processes give the bits
                            * one process gives with N times the accumulation */
    long epochs;
    float warmup_epochs;
    float label_smoothing;
    uint64_t seed;
    gsq_optim_config optim;     /* warmup_steps and total_steps are derived from the epochs */
    gsq_transform transform;    /* train augmentation; eval uses the same size, crop and stats */
    int augment;                /* 1: the train transform; 0: the eval transform for training too */
    int workers, prefetch;      /* loader threads and batches in flight */
    const char *checkpoint_path; /* NULL: no checkpoints (only rank 0 writes them) */
    long checkpoint_every;      /* optimizer steps between checkpoints; 0: none periodic. A
                                 * checkpoint is also written on stop and at max_steps; at the end
                                 * of the run the caller writes its result first, then the final
                                 * checkpoint with gsq_trainer_save */
    float divergence_factor;    /* report divergence when the loss exceeds this × its early mean
                                 * (0: never); training goes on */
    long max_steps;             /* stop after this many steps in this call (0: run to the end) */
    gsq_dataset *val;           /* evaluated after every epoch when non-NULL */
    gsq_model *teacher;           /* non-NULL: distil from it (its forward runs on every batch) */
    gsq_distill_config distill; /* the loss with a teacher (label_smoothing is the field above) */
    int unsupervised;           /* with a teacher: labels are never read, its argmax replaces them */
    const uint8_t *frozen_zero; /* num_params bytes or NULL: where 0, the gradient is dropped, so a
                                 * parameter that is 0 (a pruned weight) stays exactly 0 and its
                                 * optimizer moments stay 0 */
    volatile sig_atomic_t *stop; /* when it becomes non-zero: checkpoint and return */
    void (*progress)(const gsq_train_progress *p, void *user);
    void *user;
} gsq_train_config;

/* Micro-batches in one optimizer step over all processes: accum_steps × the group's size. */
long gsq_train_step_batches(const gsq_train_config *cfg);

/* Fills defaults: batch 64, accum 1, 10 epochs, warm-up 1 epoch, smoothing 0.1, seed 0,
 * gsq_optim_defaults, timm transforms at `size` with augmentation, 1 worker, prefetch 4,
 * divergence reported at 50× the early loss; no teacher (distill gets gsq_distill_defaults for a depth of 12: set first_block for the model). */
void gsq_train_defaults(gsq_train_config *cfg, int size);

typedef struct {
    gsq_model *model;        /* owned */
    gsq_adamw opt;
    gsq_train_state state;
    gsq_distiller *distiller; /* with a teacher */
} gsq_trainer;

/* Starts a run on model m (ownership passes to the trainer), for a training set of
 * train_size samples. */
gsq_status gsq_trainer_init(gsq_trainer *t, gsq_model *m, const gsq_train_config *cfg,
                            size_t train_size, gsq_error *err);
/* Continues a run from a checkpoint: model, optimizer moments and state. The configuration must
 * describe the same run (batch, micro-batches per step over all processes, epochs, seed,
 * optimizer), which is checked: a run of N processes resumes on M with the same step. */
gsq_status gsq_trainer_resume(gsq_trainer *t, const char *checkpoint, const gsq_train_config *cfg,
                              size_t train_size, gsq_error *err);

typedef struct {
    int finished;          /* all epochs done */
    int interrupted;       /* stopped by cfg->stop */
    float last_loss;
    long diverging_steps;  /* steps whose loss was reported as diverging */
    gsq_eval_result eval;  /* the last evaluation (count 0 if none) */
    size_t skipped;
    double seconds, images_per_second;
    gsq_loader_stats loader; /* the training loader's throughput and the time spent waiting on it */
} gsq_train_result;

/* Trains from t->state until the last epoch, max_steps or a stop request. A loss or gradient
 * that is NaN or infinite stops it with GSQ_ERR_NUMERIC (naming the step and the value) before
 * the weights change, so no checkpoint or result is written from non-finite weights. */
gsq_status gsq_trainer_run(gsq_trainer *t, gsq_dataset *train, const gsq_train_config *cfg,
                           gsq_train_result *res, gsq_error *err);
/* Writes model, optimizer moments and state atomically (safetensors; docs/FORMAT.md). Weights
 * that are not finite are refused (GSQ_ERR_NUMERIC, naming the tensor) and PATH is left as it was. */
gsq_status gsq_trainer_save(const gsq_trainer *t, const gsq_train_config *cfg, const char *path,
                            gsq_error *err);
void gsq_trainer_free(gsq_trainer *t);

#endif
