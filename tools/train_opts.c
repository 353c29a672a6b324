/* What gpusq train, prune, quantize and compress share: the data, training, output and
 * distillation options (tables for tools/options.c), and running the trainer with a progress
 * line, a JSON-lines log, Ctrl-C handling and the closing summary. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/kernels.h"

#define T(member) offsetof(cli_train_opts, member)
static const cli_option data_options[] = {
    {CLI_OPT("--data", "SPEC", CLI_STRING, T(data), "synthetic, cifar:DIR or folder:DIR (DIR/train and DIR/val when "
     "present) for classification; synthetic-segment or ade20k:DIR for segmentation; synthetic-detect or coco:DIR for "
     "detection (docs/DATA.md)")},
    {CLI_OPT("--train-size", "N", CLI_SIZE, T(sizes.train_size), "synthetic training samples"), .lo = 1, .hi = 1 << 30},
    {CLI_OPT("--val-size", "N", CLI_SIZE, T(sizes.val_size), "synthetic validation samples"), .lo = 1, .hi = 1 << 30},
    {CLI_OPT("--workers", "N", CLI_INT, T(cfg.workers), "threads that decode and transform images"), .lo = 1, .hi = 64},
};
static const cli_option training_options[] = {
    {CLI_OPT("--epochs", "N", CLI_LONG, T(cfg.epochs), "passes over the training set"), .lo = 1, .hi = 1 << 20},
    {CLI_OPT("--batch", "N", CLI_INT, T(cfg.batch_size), "images per batch"), .lo = 1, .hi = 1 << 16},
    {CLI_OPT("--accum", "N", CLI_INT, T(cfg.accum_steps), "batches whose gradients make one optimizer step"), .lo = 1,
     .hi = 1 << 10},
    {CLI_OPT("--lr", "X", CLI_FLOAT, T(cfg.optim.lr), "peak learning rate (AdamW, linear warmup, cosine decay)"), .lo = 0,
     .hi = 10, .lo_open = 1},
    {CLI_OPT("--min-lr", "X", CLI_FLOAT, T(cfg.optim.min_lr), "learning rate at the end of the cosine"), .lo = 0, .hi = 10},
    {CLI_OPT("--warmup-epochs", "X", CLI_FLOAT, T(cfg.warmup_epochs), "epochs of linear warmup"), .lo = 0, .hi = 1e6},
    {CLI_OPT("--wd", "X", CLI_FLOAT, T(cfg.optim.weight_decay), "AdamW weight decay (not on biases, norms, tokens and "
     "position embeddings)"), .lo = 0, .hi = 10},
    {CLI_OPT("--clip", "X", CLI_FLOAT, T(cfg.optim.clip_grad), "largest gradient norm; 0 does not clip"), .lo = 0, .hi = 1e9},
    {CLI_OPT("--smoothing", "X", CLI_FLOAT, T(cfg.label_smoothing), "label smoothing"), .lo = 0, .hi = 0.999},
    {CLI_OPT("--scale-min", "X", CLI_FLOAT, T(scale_min), "RandomResizedCrop's smallest area"), .lo = 0.01, .hi = 1},
    {CLI_OPT("--no-augment", NULL, CLI_FLAG, T(cfg.augment), "train on the eval transform (no random crops and flips)")},
    {CLI_OPT("--seed", "N", CLI_INT, T(seed), "seed of the initialisation, the order, the augmentation and the synthetic "
     "set"), .lo = 0, .hi = 1 << 30},
    {CLI_OPT("--threads", "N", CLI_INT, T(threads), "compute threads"), .lo = 1, .hi = 1024, .shown_default = "all cores"},
};
static const cli_option output_options[] = {
    {CLI_OPT("--out", "FILE", CLI_STRING, T(out), "the result written at the end")},
    {CLI_OPT("--checkpoint", "FILE", CLI_STRING, T(checkpoint), "the checkpoint written every --checkpoint-every steps, at "
     "the end and on Ctrl-C"), .shown_default = "--out's name with .ckpt.safetensors"},
    {CLI_OPT("--checkpoint-every", "N", CLI_LONG, T(cfg.checkpoint_every), "optimizer steps between checkpoints; 0 writes "
     "one only at the end"), .lo = 0, .hi = 1 << 30},
    {CLI_OPT("--max-steps", "N", CLI_LONG, T(cfg.max_steps), "stop (with a checkpoint) after N steps of this invocation; 0 "
     "runs to the end"), .lo = 0, .hi = 1 << 30},
    {CLI_OPT("--log", "FILE", CLI_STRING, T(log_path), "append one JSON line per step and per evaluation")},
};
static const cli_option distill_options[] = {
    {CLI_OPT("--alpha", "X", CLI_FLOAT, T(cfg.distill.alpha), "weight of the cross-entropy with the labels"), .lo = 0,
     .hi = 1e6},
    {CLI_OPT("--beta", "X", CLI_FLOAT, T(cfg.distill.beta), "weight of the KL divergence from the teacher's logits (×T²)"),
     .lo = 0, .hi = 1e6},
    {CLI_OPT("--gamma", "X", CLI_FLOAT, T(cfg.distill.gamma), "weight of the block features' MSE"), .lo = 0, .hi = 1e6},
    {CLI_OPT("--temperature", "T", CLI_FLOAT, T(cfg.distill.temperature), "softmax temperature of the KL term"), .lo = 1e-3,
     .hi = 1e3},
    {CLI_OPT("--unsupervised", NULL, CLI_FLAG, T(cfg.unsupervised), "read no labels: the teacher's predictions are the "
     "labels"), .set = 1},
};
#undef T

void cli_train_opts_init(cli_train_opts *o, const char *default_out)
{
    memset(o, 0, sizeof *o);
    gsq_train_defaults(&o->cfg, 224);
    o->sizes = (cli_data_sizes){.train_size = 20000, .val_size = 2000};
    o->data = "synthetic";
    o->out = default_out;
    o->scale_min = o->cfg.transform.scale_min;
    o->cfg.comm = cli_comm()->size > 1 ? cli_comm() : NULL;
}

cli_group cli_data_group(cli_train_opts *o, const char *title, const char *const *only)
{
    return CLI_GROUP_ONLY(title, data_options, o, only);
}

cli_group cli_training_group(cli_train_opts *o, const char *title, const char *const *only)
{
    return CLI_GROUP_ONLY(title, training_options, o, only);
}

cli_group cli_output_group(cli_train_opts *o) { return CLI_GROUP("output", output_options, o); }

cli_group cli_distill_group(cli_train_opts *o, const char *const *only)
{
    return CLI_GROUP_ONLY("distillation (L = alpha·CE + beta·T²·KL + gamma·Σ w_l·MSE of block features)", distill_options,
                          o, only);
}

gsq_status cli_train_outputs(cli_train_opts *o, const char *report, gsq_error *err)
{
    if (!o->checkpoint) { /* beside --out: NAME.ckpt.safetensors */
        snprintf(o->checkpoint_buf, sizeof o->checkpoint_buf, "%s", o->out);
        char *dot = strstr(o->checkpoint_buf, ".safetensors");
        if (dot) *dot = '\0';
        strncat(o->checkpoint_buf, ".ckpt.safetensors", sizeof o->checkpoint_buf - strlen(o->checkpoint_buf) - 1);
        o->checkpoint = o->checkpoint_buf;
    }
    o->cfg.checkpoint_path = o->checkpoint;
    if (!cli_writes()) return GSQ_OK; /* rank 0 writes them */
    gsq_status st = gsq_output_prepare(o->out, 0, err);
    if (st == GSQ_OK && o->checkpoint) st = gsq_output_prepare(o->checkpoint, 0, err);
    if (st == GSQ_OK && o->log_path) st = gsq_output_prepare(o->log_path, 1, err);
    if (st == GSQ_OK && report) st = gsq_output_prepare(report, 0, err);
    return st;
}

void cli_train_opts_apply(cli_train_opts *o, int img_size, int classes)
{
    o->sizes.classes = classes;
    if (o->threads) gsq_set_num_threads(o->threads);
    o->cfg.seed = (uint64_t)o->seed;
    o->sizes.seed = (uint64_t)o->seed;
    o->sizes.resolution = img_size;
    if (cli_data_task(o->data) == GSQ_TASK_SEGMENT) { /* mmsegmentation's pipeline; --scale-min is RRC's */
        gsq_transform_segment_defaults(&o->cfg.transform, img_size);
        return;
    }
    if (cli_data_task(o->data) == GSQ_TASK_DETECT) {
        gsq_transform_detect_defaults(&o->cfg.transform, img_size);
        return;
    }
    gsq_transform_defaults(&o->cfg.transform, img_size);
    o->cfg.transform.scale_min = o->scale_min;
    if (strcmp(o->data, "synthetic") == 0) o->cfg.transform.crop_pct = 1.0f; /* drawn at the input size */
}

void cli_train_final_checkpoint(const char *cmd, const cli_train_opts *o, const gsq_trainer *t, int written)
{
    gsq_error err = {0};
    if (!o->checkpoint || !cli_writes()) return;
    if (gsq_trainer_save(t, &o->cfg, o->checkpoint, &err) != GSQ_OK)
        fprintf(stderr, "gpusq %s: warning: %s: %s\n", cmd,
                written ? "the result is written, but not the final checkpoint" : "nor the final checkpoint", err.msg);
    else if (!written)
        fprintf(stderr, "gpusq %s: the trained state is in %s: --resume from it to write the result again\n", cmd,
                o->checkpoint);
}

/* The progress line and --log file of the run in progress (one at a time, like Ctrl-C's flag). */
typedef struct {
    int tty;
    FILE *log;
    long epochs;
    float factor; /* the divergence threshold, × the early loss */
    int warned;   /* divergence reported on its own line once */
    int ranks;    /* processes training together */
    const char *data; /* the training set's name */
} reporter;
static reporter rep;

static void report(const gsq_train_progress *p, void *user)
{
    reporter *r = user;
    int eta = (int)p->eta_seconds;
    if (p->diverging && !r->warned) {
        r->warned = 1;
        fprintf(stderr, "%swarning: step %ld: loss %.4g is over %g× its early mean %.4g: training is diverging "
                "(a lower --lr, or --clip, usually helps)\n", r->tty ? "\n" : "", p->step, (double)p->loss,
                (double)r->factor, (double)p->early_loss);
    }
    char comm[48] = ""; /* across processes: the step's wait for their gradients */
    if (r->ranks > 1) snprintf(comm, sizeof comm, "  comm %.0f ms", 1000 * p->comm_seconds);
    if (r->tty)
        fprintf(stderr, "\rstep %ld/%ld  epoch %ld/%ld  loss %.4f%s  lr %.2e  %.0f img/s%s  ETA %dm%02ds   ",
                p->step, p->total_steps, p->epoch + 1, r->epochs, (double)p->loss,
                p->diverging ? " DIVERGING" : "", (double)p->lr, p->images_per_second, comm, eta / 60, eta % 60);
    if (r->log)
        fprintf(r->log,
                "{\"step\": %ld, \"epoch\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                "\"images_per_second\": %.1f, \"elapsed\": %.2f, \"skipped\": %zu, \"early_loss\": %.6g, "
                "\"diverging\": %s, \"comm_seconds\": %.6f}\n",
                p->step, p->epoch, (double)p->loss, (double)p->lr, p->grad_norm, p->images_per_second,
                p->elapsed_seconds, p->skipped, (double)p->early_loss, p->diverging ? "true" : "false", p->comm_seconds);
    if (p->eval) {
        char words[160];
        fprintf(stderr, "%sepoch %ld/%ld  train loss %.4f  val %s  (%.0f img/s)\n", r->tty ? "\n" : "", p->epoch + 1,
                r->epochs, (double)p->loss, cli_eval_text(p->eval, 0, words, sizeof words), p->images_per_second);
        if (r->log) {
            cli_text line = {0};
            cli_eval_json(&line, p->eval);
            fprintf(r->log, "{\"eval\": true, \"step\": %ld, \"epoch\": %ld, %s}\n", p->step, p->epoch,
                    line.p ? line.p : "");
            free(line.p);
        }
    }
    if (r->log) fflush(r->log);
}

gsq_status cli_train_begin(cli_train_opts *o, gsq_dataset *train, const char *what, gsq_error *err)
{
    int ranks = cli_comm()->size;
    rep = (reporter){.tty = isatty(STDERR_FILENO), .epochs = o->cfg.epochs, .factor = o->cfg.divergence_factor,
                            .data = train->name, .ranks = ranks};
    o->cfg.stop = cli_stop_arm(); /* Ctrl-C or SIGTERM: checkpoint and stop; a second one ends it */
    if (!cli_writes()) return GSQ_OK; /* rank 0 reports for all */
    if (o->log_path && !(rep.log = fopen(o->log_path, "a")))
        return gsq_fail(err, GSQ_ERR_IO, "%s: cannot open the log for appending", o->log_path);
    o->cfg.progress = report;
    o->cfg.user = &rep;
    char procs[64] = "";
    if (ranks > 1) snprintf(procs, sizeof procs, " × %d processes", ranks);
    fprintf(stderr, "training %s on %s (%zu samples, %d classes), %ld epochs of batch %d×%d%s, %d threads, GEMM %s\n",
            what, train->name, train->size, train->num_classes, o->cfg.epochs, o->cfg.batch_size, o->cfg.accum_steps,
            procs, gsq_get_num_threads(), gsq_blas_name());
    return GSQ_OK;
}

void cli_train_end(cli_train_opts *o, const gsq_trainer *t, const gsq_train_result *res, gsq_status st)
{
    cli_stop_disarm();
    if (!cli_writes()) {
        o->cfg.stop = NULL;
        return;
    }
    if (rep.tty) fputc('\n', stderr);
    if (rep.log) fclose(rep.log);
    rep.log = NULL;
    o->cfg.progress = NULL;
    o->cfg.user = NULL;
    o->cfg.stop = NULL;
    if (st != GSQ_OK) return;
    if (res->finished)
        printf("trained %s in %.1f s (%.0f img/s)%s\n", rep.data, res->seconds, res->images_per_second,
               res->skipped ? " with skipped samples" : "");
    else
        printf("stopped at step %ld (epoch %ld, batch %ld); resume with --resume %s\n", t->state.step, t->state.epoch,
               t->state.batch, o->checkpoint);
    char words[160];
    if (res->eval.count)
        printf("validation: %s on %zu images\n", cli_eval_text(&res->eval, 0, words, sizeof words), res->eval.count);
    if (res->skipped) printf("skipped %zu samples that failed to decode\n", res->skipped);
    if (res->diverging_steps)
        fprintf(stderr, "warning: the loss diverged (over %g× its early mean) on %ld steps of this run\n",
                (double)o->cfg.divergence_factor, res->diverging_steps);
    const gsq_loader_stats *ls = &res->loader;
    if (ls->images && ls->busy_seconds > 0)
        printf("data: %zu images prepared at %.0f img/s per loader thread (%d); training waited %.1f s for data "
               "(%.1f%% of the run)\n",
               ls->images, ls->images / ls->busy_seconds, o->cfg.workers, ls->wait_seconds,
               res->seconds > 0 ? 100 * ls->wait_seconds / res->seconds : 0.0);
}

gsq_status cli_train_run(cli_train_opts *o, gsq_trainer *t, gsq_dataset *train, const char *what,
                         gsq_train_result *res, gsq_error *err)
{
    memset(res, 0, sizeof *res);
    gsq_status st = cli_train_begin(o, train, what, err);
    if (st != GSQ_OK) return st;
    st = gsq_trainer_run(t, train, &o->cfg, res, err);
    cli_train_end(o, t, res, st);
    return st;
}
