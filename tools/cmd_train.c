/* gpusq train: train a ViT/DeiT from scratch (a named configuration) or fine-tune one (weights),
 * on synthetic, CIFAR or ImageFolder data, with checkpoints, resume and Ctrl-C handling. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gpusq/kernels.h"
#include "gpusq/safetensors.h"
#include "gpusq/train.h"

static const char *help =
    "usage: gpusq train (--model NAME | --weights FILE | --resume CHECKPOINT) [options]\n\n"
    "Trains a ViT/DeiT on the CPU and writes the trained weights (timm names, safetensors).\n\n"
    "model:\n"
    "  --model NAME        a named configuration, initialised from --seed (gpusq info --list)\n"
    "  --num-classes K     with --model: the number of classes (default: the dataset's)\n"
    "  --weights FILE      fine-tune these timm weights\n"
    "  --resume FILE       continue the run that wrote this checkpoint (same options)\n"
    "data:\n"
    "  --data SPEC         synthetic (default), cifar:DIR or folder:DIR\n"
    "  --train-size N      synthetic training samples (default 20000)\n"
    "  --val-size N        synthetic validation samples (default 2000)\n"
    "  --workers N         loader threads (default 1)\n"
    "optimisation:\n"
    "  --epochs N (10)  --batch N (64)  --accum N (1)  --lr X (1e-3)  --min-lr X (1e-5)\n"
    "  --warmup-epochs X (1)  --wd X (0.05)  --clip X (0: off)  --smoothing X (0.1)\n"
    "  --scale-min X (0.08: RandomResizedCrop's smallest area)  --no-augment  --seed N (0)\n"
    "  --threads N\n"
    "Synthetic images are made at the model's input size and used without resizing or cropping\n"
    "(crop_pct 1); other data gets timm's eval transform (crop_pct 0.875) for validation.\n"
    "output:\n"
    "  --out FILE          trained weights (default model.safetensors)\n"
    "  --checkpoint FILE   checkpoint written every --checkpoint-every steps, at the end and on\n"
    "                      Ctrl-C (default: FILE of --out with .ckpt.safetensors)\n"
    "  --checkpoint-every N  steps between checkpoints (default 0: only at the end)\n"
    "  --max-steps N       stop (with a checkpoint) after N steps of this invocation\n"
    "  --log FILE          one JSON line per step and per evaluation\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

typedef struct {
    int tty;
    FILE *log;
    long epochs;
} reporter;

static void report(const gsq_train_progress *p, void *user)
{
    reporter *r = user;
    int eta = (int)p->eta_seconds;
    if (r->tty)
        fprintf(stderr, "\rstep %ld/%ld  epoch %ld/%ld  loss %.4f  lr %.2e  %.0f img/s  ETA %dm%02ds   ",
                p->step, p->total_steps, p->epoch + 1, r->epochs, (double)p->loss, (double)p->lr,
                p->images_per_second, eta / 60, eta % 60);
    if (r->log)
        fprintf(r->log,
                "{\"step\": %ld, \"epoch\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                "\"images_per_second\": %.1f, \"elapsed\": %.2f, \"skipped\": %zu}\n",
                p->step, p->epoch, (double)p->loss, (double)p->lr, p->grad_norm, p->images_per_second,
                p->elapsed_seconds, p->skipped);
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

#define NEXT_ARG() (i + 1 < argc ? argv[++i] : NULL)

int cmd_train(int argc, char **argv)
{
    const char *model_name = NULL, *weights = NULL, *resume = NULL, *data = "synthetic";
    const char *out = "model.safetensors", *checkpoint = NULL, *log_path = NULL;
    cli_data_sizes sizes = {.train_size = 20000, .val_size = 2000, .resolution = 0};
    int num_classes = 0, threads = 0, seed = 0;
    gsq_train_config cfg;
    gsq_train_defaults(&cfg, 224);
    float scale_min = cfg.transform.scale_min;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int ok = 1, n = 0;
        if (cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        }
        if (strcmp(a, "--no-augment") == 0) {
            cfg.augment = 0;
            continue;
        }
#define INT_OPT(flag, lo, hi, dst) else if (strcmp(a, flag) == 0) ok = (v = NEXT_ARG()) && cli_parse_int(v, lo, hi, &n) && ((dst) = n, 1)
#define FLT_OPT(flag, lo, hi, dst) else if (strcmp(a, flag) == 0) ok = (v = NEXT_ARG()) && cli_parse_float(v, lo, hi, &(dst))
#define STR_OPT(flag, dst) else if (strcmp(a, flag) == 0) ok = ((dst) = v = NEXT_ARG()) != NULL
        if (0) {}
        STR_OPT("--model", model_name);
        STR_OPT("--weights", weights);
        STR_OPT("--resume", resume);
        STR_OPT("--data", data);
        STR_OPT("--out", out);
        STR_OPT("--checkpoint", checkpoint);
        STR_OPT("--log", log_path);
        INT_OPT("--num-classes", 1, 1 << 20, num_classes);
        INT_OPT("--train-size", 1, 1 << 30, sizes.train_size);
        INT_OPT("--val-size", 1, 1 << 30, sizes.val_size);
        INT_OPT("--workers", 1, 64, cfg.workers);
        INT_OPT("--epochs", 1, 1 << 20, cfg.epochs);
        INT_OPT("--batch", 1, 1 << 16, cfg.batch_size);
        INT_OPT("--accum", 1, 1 << 10, cfg.accum_steps);
        INT_OPT("--seed", 0, 1 << 30, seed);
        INT_OPT("--threads", 1, 1024, threads);
        INT_OPT("--checkpoint-every", 0, 1 << 30, cfg.checkpoint_every);
        INT_OPT("--max-steps", 0, 1 << 30, cfg.max_steps);
        FLT_OPT("--lr", 0.0f, 10.0f, cfg.optim.lr);
        FLT_OPT("--min-lr", 0.0f, 10.0f, cfg.optim.min_lr);
        FLT_OPT("--warmup-epochs", 0.0f, 1e6f, cfg.warmup_epochs);
        FLT_OPT("--wd", 0.0f, 10.0f, cfg.optim.weight_decay);
        FLT_OPT("--clip", 0.0f, 1e9f, cfg.optim.clip_grad);
        FLT_OPT("--smoothing", 0.0f, 0.999f, cfg.label_smoothing);
        FLT_OPT("--scale-min", 0.01f, 1.0f, scale_min);
        else return cli_usage_error("train", "unknown option '%s'", a);
        if (!ok) return cli_usage_error("train", "%s needs a valid value%s%s", a, v ? ", got " : "", v ? v : "");
    }
    if ((model_name != NULL) + (weights != NULL) + (resume != NULL) != 1)
        return cli_usage_error("train", "give exactly one of --model, --weights and --resume");
    if (threads) gsq_set_num_threads(threads);
    cfg.seed = (uint64_t)seed;
    sizes.seed = (uint64_t)seed;

    gsq_error err = {0};
    gsq_vit_config mc;
    gsq_vit *m = NULL;
    if (model_name && gsq_vit_config_by_name(model_name, &mc, &err) != GSQ_OK) return cli_report("train", &err);
    if (weights && gsq_vit_load(&m, weights, NULL, &err) != GSQ_OK) return cli_report("train", &err);
    if (m) mc = m->cfg;
    if (resume) { /* the checkpoint's model decides the input size */
        gsq_st_file *f = NULL;
        gsq_status st = gsq_st_open(&f, resume, &err);
        if (st == GSQ_OK) st = gsq_vit_infer_config(f, 0, &mc, &err);
        gsq_st_close(f);
        if (st != GSQ_OK) return cli_report("train", &err);
    }
    sizes.resolution = mc.img_size;
    gsq_dataset *train = NULL, *val = NULL;
    if (cli_open_data(data, &sizes, &train, &val, &err) != GSQ_OK) {
        gsq_vit_free(m);
        return cli_report("train", &err);
    }
    if (model_name) {
        mc.num_classes = num_classes ? num_classes : train->num_classes;
        if (gsq_vit_create(&m, &mc, &err) == GSQ_OK) gsq_vit_init(m, (uint64_t)seed);
    }
    gsq_transform_defaults(&cfg.transform, mc.img_size);
    cfg.transform.scale_min = scale_min;
    if (strcmp(data, "synthetic") == 0) cfg.transform.crop_pct = 1.0f; /* drawn at the input size */
    cfg.val = val;
    char ckpt_buf[4096];
    if (!checkpoint) {
        snprintf(ckpt_buf, sizeof ckpt_buf, "%s", out);
        char *dot = strstr(ckpt_buf, ".safetensors");
        if (dot) *dot = '\0';
        strncat(ckpt_buf, ".ckpt.safetensors", sizeof ckpt_buf - strlen(ckpt_buf) - 1);
        checkpoint = ckpt_buf;
    }
    cfg.checkpoint_path = checkpoint;
    cfg.stop = &interrupted;
    reporter rep = {.tty = isatty(STDERR_FILENO), .epochs = cfg.epochs};
    cfg.progress = report;
    cfg.user = &rep;

    gsq_trainer t = {0};
    gsq_status st = err.code;
    if (st == GSQ_OK && m && mc.num_classes != train->num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "the model has %d classes but %s has %d", mc.num_classes, train->name,
                      train->num_classes);
    if (st == GSQ_OK && train->class_names && m) st = gsq_vit_set_class_names(m, train->class_names, &err);
    if (st == GSQ_OK) {
        if (resume) st = gsq_trainer_resume(&t, resume, &cfg, train->size, &err);
        else st = gsq_trainer_init(&t, m, &cfg, train->size, &err);
        m = NULL; /* owned by the trainer now (or freed with it on failure) */
    }
    if (st == GSQ_OK && log_path && !(rep.log = fopen(log_path, "a")))
        st = gsq_fail(&err, GSQ_ERR_IO, "%s: cannot open the log for appending", log_path);
    gsq_train_result res = {0};
    if (st == GSQ_OK) {
        fprintf(stderr, "training %s on %s (%zu samples, %d classes), %ld epochs of batch %d×%d, %d threads, GEMM %s\n",
                model_name ? model_name : (weights ? weights : resume), train->name, train->size, train->num_classes,
                cfg.epochs, cfg.batch_size, cfg.accum_steps, gsq_get_num_threads(), gsq_blas_name());
        signal(SIGINT, on_sigint);
        st = gsq_trainer_run(&t, train, &cfg, &res, &err);
        signal(SIGINT, SIG_DFL);
        if (rep.tty) fputc('\n', stderr);
    }
    if (st == GSQ_OK && res.finished) st = gsq_vit_save(t.model, out, &err);
    if (st == GSQ_OK) {
        if (res.finished)
            printf("trained %s in %.1f s (%.0f img/s)%s; weights in %s\n", train->name, res.seconds,
                   res.images_per_second, res.skipped ? " with skipped samples" : "", out);
        else
            printf("stopped at step %ld (epoch %ld, batch %ld); resume with --resume %s\n", t.state.step,
                   t.state.epoch, t.state.batch, checkpoint);
        if (res.eval.count)
            printf("validation: top-1 %.2f%%  top-5 %.2f%%  loss %.4f on %zu images\n", 100 * res.eval.top1,
                   100 * res.eval.top5, res.eval.loss, res.eval.count);
        if (res.skipped) printf("skipped %zu samples that failed to decode\n", res.skipped);
        const gsq_loader_stats *ls = &res.loader;
        if (ls->images && ls->busy_seconds > 0)
            printf("data: %zu images prepared at %.0f img/s per loader thread (%d); training waited %.1f s for "
                   "data (%.1f%% of the run)\n",
                   ls->images, ls->images / ls->busy_seconds, cfg.workers, ls->wait_seconds,
                   res.seconds > 0 ? 100 * ls->wait_seconds / res.seconds : 0.0);
    }
    if (rep.log) fclose(rep.log);
    gsq_trainer_free(&t);
    gsq_vit_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? (res.interrupted ? 130 : 0) : cli_report("train", &err);
}
