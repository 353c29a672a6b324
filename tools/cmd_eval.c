/* gpusq eval: top-1, top-5 and mean loss of a model on a dataset's validation split; and gpusq run,
 * the same with a compressed model on the engine (integer kernels, CPU or CUDA), or the top-5 classes of
 * image files as gpusq predict prints them, optionally checked against the model's fake-quantized
 * float twin. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gpusq/clock.h"
#include "gpusq/engine.h"
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/train.h"

static const char *help =
    "usage: gpusq eval MODEL.safetensors [--data SPEC] [options]\n\n"
    "Evaluates a model with timm's eval transform (resize to size/crop_pct, centre crop).\n\n"
    "options:\n"
    "  --data SPEC     synthetic (default), cifar:DIR or folder:DIR (its val/ split, or DIR itself)\n"
    "  --val-size N    synthetic validation samples (default 2000)\n"
    "  --seed N        synthetic dataset seed (default 0)\n"
    "  --heads N       attention heads when the file does not say\n"
    "  --batch N (64)  --workers N (1)  --threads N\n";

static const char *run_help =
    "usage: gpusq run MODEL.gsq.safetensors [--data SPEC] [options]\n"
    "       gpusq run MODEL.gsq.safetensors IMAGE... [--dense] [--check] [--threads N]\n\n"
    "Evaluates a compressed model (gpusq compress / quantize) on the engine: integer GEMMs on the\n"
    "packed codes, sparse where the file is sparse, on the CPU or an NVIDIA GPU. Prints top-1,\n"
    "top-5 and images per second.\n"
    "With JPEG or PNG images instead of a dataset, prints the five most probable classes of each,\n"
    "as `gpusq predict` does with the fake-quantized model; an image that cannot be read is\n"
    "reported and skipped, the exit code is then 1. --data, --val-size, --seed, --batch and\n"
    "--workers are for datasets only.\n\n"
    "options:\n"
    "  --data SPEC     synthetic (default), cifar:DIR or folder:DIR (its val/ split, or DIR itself)\n"
    "  --val-size N    synthetic validation samples (default 2000)\n"
    "  --seed N        synthetic dataset seed (default 0)\n"
    "  --device D      cpu (default) or cuda: the GPU engine (sm_80 or later; 2:4 GEMMs on the\n"
    "                  sparse tensor cores, the rest on dense ones)\n"
    "  --dense         run every GEMM on dense integer codes (the baseline layout)\n"
    "  --check         also run the fake-quantized float model; print top-1 agreement and the\n"
    "                  largest logit difference, over the dataset or the images\n"
    "  --batch N (64)  --workers N (1)  --threads N\n";

/* The engine as an evaluation forward pass; with a twin, each batch also runs the fake-quantized
 * model and the two are compared. */
typedef struct {
    gsq_engine *e;
    gsq_vit *twin;
    double seconds, max_rel;
    size_t agree, count;
} run_ctx;

static gsq_status run_forward(void *ctx, const float *images, int n, const float **logits, gsq_error *err)
{
    run_ctx *r = ctx;
    double t0 = gsq_seconds();
    gsq_status st = gsq_engine_forward(r->e, images, n, logits, err);
    r->seconds += gsq_seconds() - t0;
    const float *ref = NULL;
    if (st != GSQ_OK || !r->twin || (st = gsq_vit_infer(r->twin, images, n, &ref, err)) != GSQ_OK) return st;
    int K = r->twin->cfg.num_classes;
    for (int i = 0; i < n; i++) {
        const float *a = *logits + (size_t)i * K, *b = ref + (size_t)i * K;
        double diff = 0, scale = 1e-30;
        for (int k = 0; k < K; k++) diff = fmax(diff, fabs((double)a[k] - b[k])), scale = fmax(scale, fabs(b[k]));
        r->max_rel = fmax(r->max_rel, diff / scale);
        r->agree += gsq_argmax(a, K) == gsq_argmax(b, K);
    }
    r->count += (size_t)n;
    return GSQ_OK;
}

static void print_check(const run_ctx *r)
{
    printf("check against the fake-quantized model: top-1 agrees on %zu of %zu images (%.3f%%), "
           "largest logit difference %.2e of the largest logit\n",
           r->agree, r->count, 100.0 * (double)r->agree / (double)r->count, r->max_rel);
}

/* How gpusq run runs the engine. */
typedef struct {
    int dense, check;
    gsq_engine_device device;
} run_opts;

/* gpusq run's model and engine from path, opened once: the architecture, class names and info
 * (the file checked, nothing decoded) and the engine straight from the file's codes; or with
 * --check the whole fake-quantized model (the twin it is compared with) and the engine from it. */
static gsq_status open_compressed(const char *path, const run_opts *o, int batch, gsq_vit **m,
                                  gsq_compressed_info *info, gsq_engine **e, gsq_error *err)
{
    gsq_st_file *f = NULL;
    gsq_status st = gsq_st_open(&f, path, err);
    const char *kind = st == GSQ_OK ? gsq_st_meta_get(f, "gpusq.kind") : NULL;
    if (st == GSQ_OK && (!kind || strcmp(kind, "compressed")))
        st = gsq_fail(err, GSQ_ERR_ARG, "%s is not a compressed model (gpusq compress or quantize writes one)", path);
    if (st == GSQ_OK)
        st = o->check ? gsq_compressed_load_open(m, f, info, err) : gsq_compressed_describe(m, f, info, err);
    if (st == GSQ_OK) {
        gsq_engine_options eo;
        gsq_engine_options_init(&eo);
        eo.layout = o->dense ? GSQ_ENGINE_DENSE : GSQ_ENGINE_SPARSE;
        eo.max_batch = batch;
        eo.device = o->device;
        eo.pattern = info->pattern;
        st = o->check ? gsq_engine_create(e, *m, &eo, err) : gsq_engine_load(e, f, &eo, err);
    }
    gsq_st_close(f);
    return st;
}

/* gpusq run: path's compressed model on its engine e over ds. */
static gsq_status run_engine(const char *path, gsq_vit *m, gsq_engine *e, const gsq_compressed_info *info,
                             const run_opts *o, gsq_dataset *ds, const gsq_transform *t, int batch, int workers,
                             gsq_error *err)
{
    run_ctx r = {.e = e, .twin = o->check ? m : NULL};
    gsq_eval_result res;
    gsq_status st = gsq_evaluate_with(run_forward, &r, m->cfg.num_classes, ds, t, batch, workers, &res, err);
    if (st == GSQ_OK) {
        char where[300];
        cli_engine_where(o->device, where, sizeof where);
        printf("%s on %s (engine: %s, %d of %d linears sparse, %s): top-1 %.2f%%  top-5 %.2f%%  loss %.4f"
               "  (%zu images, %.0f images/s in the engine)\n",
               path, ds->name, o->dense ? "dense layout" : "as stored", gsq_engine_sparse_linears(r.e),
               info->sparse_linears + info->dense_linears, where, 100 * res.top1, 100 * res.top5, res.loss,
               res.count, (double)res.count / r.seconds);
        if (o->check) print_check(&r);
    }
    return st;
}

/* gpusq run IMAGE...: the compressed model m on its engine e, one image at a time; returns the exit
 * code. */
static int run_images(gsq_vit *m, gsq_engine *e, const run_opts *o, char *const *images, int n)
{
    run_ctx r = {.e = e, .twin = o->check ? m : NULL};
    int rc = cli_predict_images("run", m, run_forward, &r, images, n);
    if (o->check && r.count) print_check(&r);
    return rc;
}

static int eval_main(int argc, char **argv, const char *cmd, int engine)
{
    const char *path = NULL, *data = "synthetic", *data_option = NULL; /* the first dataset-only option */
    cli_data_sizes sizes = {.train_size = 1, .val_size = 2000};
    int batch = 64, workers = 1, threads = 0, heads = 0, seed = 0, n = 0, images = 0;
    run_opts o = {.device = GSQ_ENGINE_CPU};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(engine ? run_help : help, stdout);
            return 0;
        } else if (engine && strcmp(a, "--dense") == 0) {
            o.dense = 1;
        } else if (engine && strcmp(a, "--check") == 0) {
            o.check = 1;
        } else if (engine && strcmp(a, "--device") == 0) {
            int ok = i + 1 < argc && cli_parse_device(argv[i + 1], &o.device);
            if (cli_option_value(cmd, ok, "cpu or cuda", argc, argv, &i) < 0) return 2;
        } else if (strcmp(a, "--data") == 0) {
            if (cli_string_option(cmd, argc, argv, &i, &data) < 0) return 2;
            if (!data_option) data_option = a;
        } else if (a[0] == '-') {
            struct { const char *flag; int lo, hi; int *dst, dataset; } ints[] = {
                {"--batch", 1, 1 << 16, &batch, 1}, {"--workers", 1, 64, &workers, 1},
                {"--threads", 1, 1024, &threads, 0}, {"--heads", 1, 4096, &heads, 0},
                {"--seed", 0, 1 << 30, &seed, 1}, {"--val-size", 1, 1 << 30, &n, 1},
            };
            size_t k = 0;
            while (k < sizeof ints / sizeof ints[0] && strcmp(a, ints[k].flag) != 0) k++;
            if (k == sizeof ints / sizeof ints[0]) return cli_usage_error(cmd, "unknown option '%s'", a);
            if (cli_int_option(cmd, argc, argv, &i, ints[k].lo, ints[k].hi, ints[k].dst) < 0) return 2;
            if (ints[k].dataset && !data_option) data_option = a;
        } else if (!path) {
            path = a;
        } else if (engine) {
            argv[++images] = argv[i]; /* the images gather in argv[1..images], behind what was read */
        } else {
            return cli_usage_error(cmd, "one model at a time ('%s' and '%s')", path, a);
        }
    }
    if (!path) return cli_usage_error(cmd, "give a MODEL.safetensors");
    if (images && data_option)
        return cli_usage_error(cmd, "IMAGE files and %s do not mix (images are predicted one by one, %s is for "
                               "evaluating a dataset)", data_option, data_option);
    if (n) sizes.val_size = (size_t)n;
    sizes.seed = (uint64_t)seed;
    if (threads) gsq_set_num_threads(threads);

    gsq_error err = {0};
    gsq_vit *m = NULL;
    gsq_engine *e = NULL;
    gsq_compressed_info info;
    gsq_status st = engine ? open_compressed(path, &o, images ? 1 : batch, &m, &info, &e, &err)
                           : cli_load_model(path, heads, &m, &info, &err);
    if (st != GSQ_OK) {
        gsq_engine_free(e);
        gsq_vit_free(m);
        return cli_report(cmd, &err);
    }
    if (images) {
        int rc = run_images(m, e, &o, argv + 1, images);
        gsq_engine_free(e);
        gsq_vit_free(m);
        return rc;
    }
    const gsq_vit_config cfg = m->cfg;
    sizes.resolution = cfg.img_size;
    gsq_dataset *train = NULL, *val = NULL;
    st = cli_open_data(data, &sizes, &train, &val, &err);
    gsq_dataset *ds = val ? val : train;
    if (st == GSQ_OK && ds->num_classes != cfg.num_classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "%s has %d classes but %s has %d", path, cfg.num_classes, ds->name,
                      ds->num_classes);
    gsq_transform t;
    gsq_transform_defaults(&t, cfg.img_size);
    if (strcmp(data, "synthetic") == 0) t.crop_pct = 1.0f; /* drawn at the input size, as in training */
    gsq_eval_result r;
    if (st == GSQ_OK && engine) {
        st = run_engine(path, m, e, &info, &o, ds, &t, batch, workers, &err);
    } else if (st == GSQ_OK) {
        st = gsq_evaluate(m, ds, &t, batch, workers, &r, &err);
    }
    if (st == GSQ_OK && !engine) {
        printf("%s on %s: top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%zu images", path, ds->name, 100 * r.top1,
               100 * r.top5, r.loss, r.count);
        printf(r.skipped ? ", %zu skipped: failed to decode)\n" : ")\n", r.skipped);
    }
    gsq_engine_free(e);
    gsq_vit_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? 0 : cli_report(cmd, &err);
}

int cmd_eval(int argc, char **argv) { return eval_main(argc, argv, "eval", 0); }
int cmd_run(int argc, char **argv) { return eval_main(argc, argv, "run", 1); }
