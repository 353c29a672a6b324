/* What gpusq train and gpusq prune share: the data, optimisation and output options, and running
 * the trainer with a progress line, a JSON-lines log, Ctrl-C handling and the closing summary. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/kernels.h"

static const char cli_train_help[] =
    "data:\n"
    "  --data SPEC         synthetic (default), cifar:DIR or folder:DIR\n"
    "  --train-size N      synthetic training samples (default 20000)\n"
    "  --val-size N        synthetic validation samples (default 2000)\n"
    "  --workers N         loader threads (default 1)\n"
    "optimisation:\n"
    "  --epochs N  --batch N  --accum N (1)  --lr X  --min-lr X (1e-5)  --warmup-epochs X\n"
    "  --wd X (0.05)  --clip X (0: off)  --smoothing X  --scale-min X (0.08: RandomResizedCrop's\n"
    "  smallest area)  --no-augment  --seed N (0)  --threads N\n"
    "Synthetic images are made at the model's input size and used without resizing or cropping\n"
    "(crop_pct 1); other data gets timm's eval transform (crop_pct 0.875) for validation.\n"
    "output:\n"
    "  --out FILE          the weights written at the end (timm names, safetensors)\n"
    "  --checkpoint FILE   checkpoint written every --checkpoint-every steps, at the end and on\n"
    "                      Ctrl-C (default: FILE of --out with .ckpt.safetensors)\n"
    "  --checkpoint-every N  steps between checkpoints (default 0: only at the end)\n"
    "  --max-steps N       stop (with a checkpoint) after N steps of this invocation\n"
    "  --log FILE          one JSON line per step and per evaluation\n";

void cli_train_opts_init(cli_train_opts *o, const char *default_out)
{
    memset(o, 0, sizeof *o);
    gsq_train_defaults(&o->cfg, 224);
    o->sizes = (cli_data_sizes){.train_size = 20000, .val_size = 2000};
    o->data = "synthetic";
    o->out = default_out;
    o->scale_min = o->cfg.transform.scale_min;
}

int cli_parse_command(cli_train_opts *o, const char *cmd, int argc, char **argv, cli_own_option own, void *ctx,
                      const char *help, const char *defaults)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("%s%s%s", help, cli_train_help, defaults);
            return 0;
        }
        int taken = cli_train_option(o, cmd, argc, argv, &i);
        if (!taken && own) taken = own(ctx, argc, argv, &i);
        if (taken < 0) return 2;
        if (!taken) return cli_usage_error(cmd, "unknown option '%s'", argv[i]);
    }
    return -1;
}

int cli_option_value(const char *cmd, int ok, const char *accepted, int argc, char **argv, int *i)
{
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!v) return cli_usage_error(cmd, "%s needs a value: %s", argv[*i], accepted), -1;
    if (!ok) return cli_usage_error(cmd, "%s must be %s, got '%s'", argv[*i], accepted, v), -1;
    ++*i;
    return 1;
}

int cli_string_option(const char *cmd, int argc, char **argv, int *i, const char **dst)
{
    if (*i + 1 < argc) *dst = argv[*i + 1];
    return cli_option_value(cmd, 1, "a path or name", argc, argv, i);
}

int cli_train_option(cli_train_opts *o, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    gsq_train_config *c = &o->cfg;
    int n = 0, taken;
    if (strcmp(a, "--no-augment") == 0) {
        c->augment = 0;
        return 1;
    }
#define INT_OPT(flag, lo, hi, dst)                                                                  \
    else if (strcmp(a, flag) == 0) {                                                               \
        if ((taken = cli_int_option(cmd, argc, argv, i, lo, hi, &n)) > 0) (dst) = n;               \
        return taken;                                                                              \
    }
#define FLT_OPT(flag, lo, lo_open, hi, dst) \
    else if (strcmp(a, flag) == 0) return cli_float_option(cmd, argc, argv, i, lo, hi, lo_open, &(dst));
#define STR_OPT(flag, dst) else if (strcmp(a, flag) == 0) return cli_string_option(cmd, argc, argv, i, &(dst));
    if (0) {}
    STR_OPT("--data", o->data)
    STR_OPT("--out", o->out)
    STR_OPT("--checkpoint", o->checkpoint)
    STR_OPT("--log", o->log_path)
    INT_OPT("--train-size", 1, 1 << 30, o->sizes.train_size)
    INT_OPT("--val-size", 1, 1 << 30, o->sizes.val_size)
    INT_OPT("--workers", 1, 64, c->workers)
    INT_OPT("--epochs", 1, 1 << 20, c->epochs)
    INT_OPT("--batch", 1, 1 << 16, c->batch_size)
    INT_OPT("--accum", 1, 1 << 10, c->accum_steps)
    INT_OPT("--seed", 0, 1 << 30, o->seed)
    INT_OPT("--threads", 1, 1024, o->threads)
    INT_OPT("--checkpoint-every", 0, 1 << 30, c->checkpoint_every)
    INT_OPT("--max-steps", 0, 1 << 30, c->max_steps)
    FLT_OPT("--lr", 0.0f, 1, 10.0f, c->optim.lr)
    FLT_OPT("--min-lr", 0.0f, 0, 10.0f, c->optim.min_lr)
    FLT_OPT("--warmup-epochs", 0.0f, 0, 1e6f, c->warmup_epochs)
    FLT_OPT("--wd", 0.0f, 0, 10.0f, c->optim.weight_decay)
    FLT_OPT("--clip", 0.0f, 0, 1e9f, c->optim.clip_grad)
    FLT_OPT("--smoothing", 0.0f, 0, 0.999f, c->label_smoothing)
    FLT_OPT("--scale-min", 0.01f, 0, 1.0f, o->scale_min)
#undef INT_OPT
#undef FLT_OPT
#undef STR_OPT
    return 0;
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
    gsq_status st = gsq_output_prepare(o->out, 0, err);
    if (st == GSQ_OK && o->checkpoint) st = gsq_output_prepare(o->checkpoint, 0, err);
    if (st == GSQ_OK && o->log_path) st = gsq_output_prepare(o->log_path, 1, err);
    if (st == GSQ_OK && report) st = gsq_output_prepare(report, 0, err);
    return st;
}

void cli_train_opts_apply(cli_train_opts *o, int img_size)
{
    if (o->threads) gsq_set_num_threads(o->threads);
    o->cfg.seed = (uint64_t)o->seed;
    o->sizes.seed = (uint64_t)o->seed;
    o->sizes.resolution = img_size;
    gsq_transform_defaults(&o->cfg.transform, img_size);
    o->cfg.transform.scale_min = o->scale_min;
    if (strcmp(o->data, "synthetic") == 0) o->cfg.transform.crop_pct = 1.0f; /* drawn at the input size */
}

void cli_train_final_checkpoint(const char *cmd, const cli_train_opts *o, const gsq_trainer *t, int written)
{
    gsq_error err = {0};
    if (!o->checkpoint) return;
    if (gsq_trainer_save(t, &o->cfg, o->checkpoint, &err) != GSQ_OK)
        fprintf(stderr, "gpusq %s: warning: %s: %s\n", cmd,
                written ? "the result is written, but not the final checkpoint" : "nor the final checkpoint", err.msg);
    else if (!written)
        fprintf(stderr, "gpusq %s: the trained state is in %s: --resume from it to write the result again\n", cmd,
                o->checkpoint);
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

static void report(const gsq_train_progress *p, void *user)
{
    cli_reporter *r = user;
    int eta = (int)p->eta_seconds;
    if (p->diverging && !r->warned) {
        r->warned = 1;
        fprintf(stderr, "%swarning: step %ld: loss %.4g is over %g× its early mean %.4g: training is diverging "
                "(a lower --lr, or --clip, usually helps)\n", r->tty ? "\n" : "", p->step, (double)p->loss,
                (double)r->factor, (double)p->early_loss);
    }
    if (r->tty)
        fprintf(stderr, "\rstep %ld/%ld  epoch %ld/%ld  loss %.4f%s  lr %.2e  %.0f img/s  ETA %dm%02ds   ",
                p->step, p->total_steps, p->epoch + 1, r->epochs, (double)p->loss,
                p->diverging ? " DIVERGING" : "", (double)p->lr, p->images_per_second, eta / 60, eta % 60);
    if (r->log)
        fprintf(r->log,
                "{\"step\": %ld, \"epoch\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                "\"images_per_second\": %.1f, \"elapsed\": %.2f, \"skipped\": %zu, \"early_loss\": %.6g, "
                "\"diverging\": %s}\n",
                p->step, p->epoch, (double)p->loss, (double)p->lr, p->grad_norm, p->images_per_second,
                p->elapsed_seconds, p->skipped, (double)p->early_loss, p->diverging ? "true" : "false");
    if (p->eval) {
        fprintf(stderr, "%sepoch %ld/%ld  train loss %.4f  val top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%.0f img/s)\n",
                r->tty ? "\n" : "", p->epoch + 1, r->epochs, (double)p->loss, 100 * p->eval->top1,
                100 * p->eval->top5, p->eval->loss, p->images_per_second);
        if (r->log)
            fprintf(r->log, "{\"eval\": true, \"step\": %ld, \"epoch\": %ld, \"top1\": %.6f, \"top5\": %.6f, \"loss\": %.6f}\n",
                    p->step, p->epoch, p->eval->top1, p->eval->top5, p->eval->loss);
    }
    if (r->log) fflush(r->log);
}

gsq_status cli_train_begin(cli_train_opts *o, gsq_dataset *train, const char *what, gsq_error *err)
{
    o->rep = (cli_reporter){.tty = isatty(STDERR_FILENO), .epochs = o->cfg.epochs, .factor = o->cfg.divergence_factor,
                            .data = train->name};
    if (o->log_path && !(o->rep.log = fopen(o->log_path, "a")))
        return gsq_fail(err, GSQ_ERR_IO, "%s: cannot open the log for appending", o->log_path);
    o->cfg.progress = report;
    o->cfg.user = &o->rep;
    interrupted = 0;
    o->cfg.stop = &interrupted;
    fprintf(stderr, "training %s on %s (%zu samples, %d classes), %ld epochs of batch %d×%d, %d threads, GEMM %s\n",
            what, train->name, train->size, train->num_classes, o->cfg.epochs, o->cfg.batch_size, o->cfg.accum_steps,
            gsq_get_num_threads(), gsq_blas_name());
    signal(SIGINT, on_sigint);
    return GSQ_OK;
}

void cli_train_end(cli_train_opts *o, const gsq_trainer *t, const gsq_train_result *res, gsq_status st)
{
    signal(SIGINT, SIG_DFL);
    if (o->rep.tty) fputc('\n', stderr);
    if (o->rep.log) fclose(o->rep.log);
    o->rep.log = NULL;
    o->cfg.progress = NULL;
    o->cfg.user = NULL;
    o->cfg.stop = NULL;
    if (st != GSQ_OK) return;
    if (res->finished)
        printf("trained %s in %.1f s (%.0f img/s)%s\n", o->rep.data, res->seconds, res->images_per_second,
               res->skipped ? " with skipped samples" : "");
    else
        printf("stopped at step %ld (epoch %ld, batch %ld); resume with --resume %s\n", t->state.step, t->state.epoch,
               t->state.batch, o->checkpoint);
    if (res->eval.count)
        printf("validation: top-1 %.2f%%  top-5 %.2f%%  loss %.4f on %zu images\n", 100 * res->eval.top1,
               100 * res->eval.top5, res->eval.loss, res->eval.count);
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

void cli_distill_weights_init(cli_distill_weights *w)
{
    gsq_distill_config d;
    gsq_distill_defaults(&d, 0);
    *w = (cli_distill_weights){d.alpha, d.beta, d.gamma, d.temperature};
}

int cli_distill_option(cli_distill_weights *w, const char *cmd, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--alpha")) return cli_float_option(cmd, argc, argv, i, 0.0f, 1e6f, 0, &w->alpha);
    if (!strcmp(a, "--beta")) return cli_float_option(cmd, argc, argv, i, 0.0f, 1e6f, 0, &w->beta);
    if (!strcmp(a, "--gamma")) return cli_float_option(cmd, argc, argv, i, 0.0f, 1e6f, 0, &w->gamma);
    if (!strcmp(a, "--temperature")) return cli_float_option(cmd, argc, argv, i, 1e-3f, 1e3f, 0, &w->temperature);
    return 0;
}

void cli_distill_weights_apply(const cli_distill_weights *w, gsq_distill_config *dc)
{
    dc->alpha = w->alpha;
    dc->beta = w->beta;
    dc->gamma = w->gamma;
    dc->temperature = w->temperature;
}
