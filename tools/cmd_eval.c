/* gpusq eval: top-1, top-5 and mean loss (a segmenter's mIoU, per-class IoU and pixel accuracy; a
 * detector's COCO AP) of a model on a dataset's validation split; and gpusq run, the same with a
 * compressed model on the engine (integer kernels, CPU or CUDA), or the predictions for image files
 * as gpusq predict prints them, optionally checked against the model's fake-quantized float twin. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpusq/atomic_file.h"
#include "gpusq/clock.h"
#include "gpusq/engine.h"
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/train.h"

/* The engine as an evaluation forward pass; with a twin, each batch also runs the fake-quantized
 * model and the two are compared. */
typedef struct {
    gsq_engine *e;
    gsq_model *twin;
    double seconds, max_rel;
    size_t agree, count;     /* images (a segmenter's pixels, a detector's kept detections) both predict alike,
                              * of all */
    union {                  /* engine's, twin's: */
        int16_t *pred[2];    /* a segmenter's predictions (batch, side, side) */
        gsq_detection *dets[2]; /* a detector's detections in one image (queries) */
    };
} run_ctx;

/* A detector's check (print_check and --check's help say the numbers): the twin's detections
 * scoring at least CHECK_SCORE are kept, and the engine reproduces one when its detection of the
 * same query has the same class and every box coordinate within CHECK_BOX of the image's side. */
#define CHECK_SCORE 0.05f
#define CHECK_BOX 1e-3

/* The kept detections of the n images of the twin's output b, and those the engine's a reproduces.
 * Both are decoded in units of the image's width and height: a box is linear in the image's size,
 * so this is the comparison in any image's pixels, the original's included. */
static void compare_detections(run_ctx *r, const gsq_output_shape *s, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) {
        gsq_detect_decode(a, s, i, 0, 1, 1, r->dets[0]);
        gsq_detect_decode(b, s, i, 0, 1, 1, r->dets[1]);
        for (int q = 0; q < s->queries; q++) {
            const gsq_box *x = &r->dets[0][q].box, *y = &r->dets[1][q].box;
            if (!(r->dets[1][q].score >= CHECK_SCORE)) continue;
            r->count++;
            r->agree += r->dets[0][q].category == r->dets[1][q].category && fabs((double)x->x - y->x) <= CHECK_BOX &&
                        fabs((double)x->y - y->y) <= CHECK_BOX && fabs((double)x->w - y->w) <= CHECK_BOX &&
                        fabs((double)x->h - y->h) <= CHECK_BOX;
        }
    }
}

/* The twin's and the engine's predictions compared: the class of each image or of each pixel, a
 * detector's kept detections; and the largest logit difference, relative to the largest logit of
 * the image (of the pixel). */
static void compare(run_ctx *r, const float *a, const float *b, int n)
{
    gsq_output_shape s = gsq_model_output_shape(r->twin);
    int segment = s.task == GSQ_TASK_SEGMENT, detect = s.task == GSQ_TASK_DETECT;
    size_t K = detect ? (size_t)s.layers * s.queries * (s.classes + 5) : (size_t)s.classes; /* floats of a row */
    size_t rows = (size_t)n * (segment ? (size_t)s.grid * s.grid : 1);
    for (size_t i = 0; i < rows; i++) {
        double diff = 0, scale = 1e-30;
        for (size_t k = 0; k < K; k++)
            diff = fmax(diff, fabs((double)a[i * K + k] - b[i * K + k])), scale = fmax(scale, fabs(b[i * K + k]));
        r->max_rel = fmax(r->max_rel, diff / scale);
        if (!segment && !detect) r->agree += gsq_argmax(a + i * K, (int)K) == gsq_argmax(b + i * K, (int)K);
    }
    if (detect) {
        compare_detections(r, &s, a, b, n);
        return;
    }
    if (!segment) {
        r->count += (size_t)n;
        return;
    }
    size_t pixels = (size_t)n * s.side * s.side;
    gsq_segment_predict(a, n, s.grid, s.classes, s.side, r->pred[0]);
    gsq_segment_predict(b, n, s.grid, s.classes, s.side, r->pred[1]);
    for (size_t i = 0; i < pixels; i++) r->agree += r->pred[0][i] == r->pred[1][i];
    r->count += pixels;
}

static gsq_status model_forward(void *ctx, const float *images, int n, const float **logits, gsq_error *err)
{
    return gsq_model_infer(ctx, images, n, logits, err);
}

static gsq_status run_forward(void *ctx, const float *images, int n, const float **logits, gsq_error *err)
{
    run_ctx *r = ctx;
    double t0 = gsq_seconds();
    gsq_status st = gsq_engine_forward(r->e, images, n, logits, err);
    r->seconds += gsq_seconds() - t0;
    const float *ref = NULL;
    if (st != GSQ_OK || !r->twin || (st = gsq_model_infer(r->twin, images, n, &ref, err)) != GSQ_OK) return st;
    compare(r, *logits, ref, n);
    return GSQ_OK;
}

static void print_check(const run_ctx *r)
{
    gsq_task task = gsq_model_task(r->twin);
    double percent = r->count ? 100.0 * (double)r->agree / (double)r->count : 100.0;
    if (task == GSQ_TASK_DETECT)
        printf("check against the fake-quantized model: the engine reproduces %zu of %zu kept detections (%.3f%%) "
               "(same class, boxes within 1e-3 of the image), largest logit difference %.2e of the largest logit\n",
               r->agree, r->count, percent, r->max_rel);
    else
        printf("check against the fake-quantized model: %s agrees on %zu of %zu %s (%.3f%%), "
               "largest logit difference %.2e of the largest logit\n", task == GSQ_TASK_SEGMENT ? "the class" : "top-1",
               r->agree, r->count, task == GSQ_TASK_SEGMENT ? "pixels" : "images", percent, r->max_rel);
}

/* The buffers a check of a segmenter (of a detector) compares its predictions (its detections) in,
 * for batches of up to `batch`. */
static gsq_status check_buffers(run_ctx *r, int batch, gsq_error *err)
{
    gsq_task task = r->twin ? gsq_model_task(r->twin) : GSQ_TASK_CLASSIFY;
    if (task == GSQ_TASK_CLASSIFY) return GSQ_OK;
    size_t side = (size_t)gsq_model_input_size(r->twin), queries = (size_t)gsq_model_output_shape(r->twin).queries;
    size_t bytes = task == GSQ_TASK_SEGMENT ? (size_t)batch * side * side * sizeof(int16_t)
                                            : queries * sizeof(gsq_detection);
    r->pred[0] = malloc(bytes);
    r->pred[1] = malloc(bytes);
    return r->pred[0] && r->pred[1] ? GSQ_OK : gsq_fail(err, GSQ_ERR_NOMEM, "check: out of memory");
}

/* gpusq eval's and gpusq run's own options. */
typedef struct {
    cli_model_hints hints;      /* eval */
    int dense, check;           /* run: how it runs the engine */
    gsq_engine_device device;
    const char *out_dir;        /* run IMAGE...: a segmenter's overlays, a detector's drawings */
    float threshold;            /* run IMAGE...: a detector's least score shown */
    const char *results;        /* a detector's detections as a COCO results JSON */
} run_opts;

#define R(member) offsetof(run_opts, member)
static const cli_option run_options[] = {
    {CLI_OPT("--device", "D", CLI_CHOICE, R(device), "cpu, or cuda: the GPU engine (sm_80 or later; 2:4 linears on the "
     "sparse tensor cores, the rest on dense ones)"), .choices = cli_devices},
    {CLI_OPT("--dense", NULL, CLI_FLAG, R(dense), "run every linear on dense integer codes (the baseline layout)"), .set = 1},
    {CLI_OPT("--check", NULL, CLI_FLAG, R(check), "also run the fake-quantized float model; print top-1 agreement (a "
     "segmenter's per pixel; a detector's: of the model's detections scoring 0.05 or more, those the engine "
     "reproduces, same class and box within 1e-3 of the image) and the largest logit difference, over the dataset or "
     "the images"), .set = 1},
    {CLI_OPT("--out-dir", "DIR", CLI_STRING, R(out_dir), "with IMAGE files and a segmenter or a detector: where the "
     "overlays go")},
    {CLI_OPT("--threshold", "X", CLI_FLOAT, R(threshold), "with IMAGE files, detectors only: the least score of a "
     "detection printed and drawn"), .lo = 0, .lo_open = 1, .hi = 1},
};
static const cli_option results_options[] = {
    {CLI_OPT("--results", "FILE", CLI_STRING, R(results), "a detector on a dataset: also write every detection as a "
     "COCO results JSON (image_id, category_id, bbox, score), for pycocotools or a leaderboard")},
};
#undef R

static const cli_spec eval_spec = {
    .name = "eval",
    .usage = "MODEL.safetensors [--data SPEC] [options]",
    .about = "Evaluates a model with timm's eval transform (resize to size/crop_pct, centre crop): top-1, top-5 and mean "
    "loss. With folder:DIR or cifar:DIR the validation split is DIR/val when it exists, else DIR. A segmenter is "
    "evaluated at its input size (images resized, labels nearest): mIoU, pixel accuracy, mean per-pixel loss and "
    "each class's IoU (docs/SEGMENTATION.md). A detector likewise (boxes scaled back to each image): COCO's AP, AP50, "
    "AP75, by size, and AR, as pycocotools computes them, and its loss (docs/DETECTION.md).",
    .min_args = 1,
    .max_args = 1,
    .args_what = "a MODEL.safetensors",
};
static const cli_spec run_spec = {
    .name = "run",
    .usage = "MODEL.gsq.safetensors [--data SPEC] [options]\nMODEL.gsq.safetensors IMAGE... [--dense] [--check] "
    "[--threads N] [--out-dir DIR] [--threshold X]",
    .about = "Evaluates a compressed model (gpusq compress / quantize) on the engine: integer kernels on the packed codes, "
    "sparse where the file is sparse, on the CPU or an NVIDIA GPU. Prints top-1, top-5 (a segmenter's mIoU and "
    "per-class IoU) and images per second.\n\n"
    "With JPEG or PNG images instead of a dataset, prints the five most probable classes of each (a segmenter: "
    "writes its class map over it to DIR/NAME.seg.png; a detector: prints its detections scoring at least --threshold "
    "and draws them to DIR/NAME.det.png), as `gpusq predict` does with the fake-quantized model; an image that "
    "cannot be read is reported and skipped, and the exit code is then 1. --data, --val-size, --seed, --batch and --workers are for datasets only.",
    .min_args = 1,
    .max_args = -1,
    .args_what = "a MODEL.gsq.safetensors",
};

/* gpusq run's model and engine from path, opened once: the architecture, class names and info
 * (the file checked, nothing decoded) and the engine straight from the file's codes; or with
 * --check the whole fake-quantized model (the twin it is compared with) and the engine from it. */
static gsq_status open_compressed(const char *path, const run_opts *o, int batch, gsq_model **m,
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
static gsq_status run_engine(const char *path, gsq_model *m, gsq_engine *e, const gsq_compressed_info *info,
                             const run_opts *o, gsq_dataset *ds, const gsq_transform *t, int batch, int workers,
                             gsq_error *err)
{
    run_ctx r = {.e = e, .twin = o->check ? m : NULL};
    gsq_eval_result res;
    gsq_output_shape shape = gsq_model_output_shape(m);
    gsq_status st = check_buffers(&r, batch, err);
    if (st == GSQ_OK && o->results)
        st = gsq_evaluate_detections(run_forward, &r, &shape, ds, t, batch, workers, o->results, &res, err);
    else if (st == GSQ_OK)
        st = gsq_evaluate_with(run_forward, &r, &shape, ds, t, batch, workers, NULL, &res, err);
    if (st == GSQ_OK) {
        char where[300], words[160];
        cli_engine_where(o->device, where, sizeof where);
        printf("%s on %s (engine: %s, %d of %d linears sparse, %s): %s  (%zu images, %.0f images/s in the engine)\n",
               path, ds->name, o->dense ? "dense layout" : "as stored", gsq_engine_sparse_linears(r.e),
               info->sparse_linears + info->dense_linears, where, cli_eval_text(&res, 0, words, sizeof words),
               res.count, (double)res.count / r.seconds);
        cli_print_eval_details(&res, m);
        if (o->check) print_check(&r);
    }
    free(r.pred[0]);
    free(r.pred[1]);
    return st;
}

/* gpusq run IMAGE...: the compressed model m on its engine e, one image at a time; returns the exit
 * code. */
static int run_images(gsq_model *m, gsq_engine *e, const run_opts *o, char *const *images, int n)
{
    run_ctx r = {.e = e, .twin = o->check ? m : NULL};
    gsq_error err = {0};
    int rc = check_buffers(&r, 1, &err) == GSQ_OK
                 ? cli_predict_images("run", m, run_forward, &r, images, n, o->out_dir, o->threshold)
                 : cli_report("run", &err);
    if (o->check && r.count) print_check(&r);
    free(r.pred[0]);
    free(r.pred[1]);
    return rc;
}

static int eval_main(int argc, char **argv, int engine)
{
    const cli_spec *spec = engine ? &run_spec : &eval_spec;
    const char *cmd = spec->name;
    run_opts o = {.device = GSQ_ENGINE_CPU, .out_dir = CLI_PREDICT_DIR, .threshold = CLI_PREDICT_THRESHOLD};
    cli_train_opts d; /* the dataset and how it is read */
    cli_train_opts_init(&d, NULL);
    d.sizes.train_size = 1; /* a synthetic set's training split is not used */
    static const char *const data[] = {"--data", "--val-size", "--workers", NULL};
    static const char *const batch[] = {"--batch", "--seed", "--threads", NULL};
    const cli_group groups[] = {
        engine ? CLI_GROUP("engine", run_options, &o) : cli_model_group(&o.hints),
        cli_data_group(&d, "data", data), cli_training_group(&d, "evaluation", batch),
        CLI_GROUP("output", results_options, &o)};
    cli_parsed parsed;
    int code = cli_parse(spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    const char *path = parsed.args[0];
    int images = parsed.num_args - 1;
    static const char *const dataset_only[] = {"--data", "--val-size", "--seed", "--batch", "--workers"};
    if (images && o.results) return cli_usage_error(cmd, "--results is for a dataset's detections, not IMAGE files");
    for (int k = 0; images && k < CLI_COUNT(dataset_only); k++)
        if (cli_given(&parsed, dataset_only[k]))
            return cli_usage_error(cmd, "IMAGE files and %s do not mix (images are predicted one by one, %s is for "
                                   "evaluating a dataset)", dataset_only[k], dataset_only[k]);
    if (d.threads) gsq_set_num_threads(d.threads); /* before the engine sizes its buffers per thread */

    gsq_error err = {0};
    if (o.results && gsq_output_prepare(o.results, 0, &err) != GSQ_OK) return cli_report(cmd, &err);
    gsq_model *m = NULL;
    gsq_engine *e = NULL;
    gsq_compressed_info info;
    gsq_status st = engine ? open_compressed(path, &o, images ? 1 : d.cfg.batch_size, &m, &info, &e, &err)
                           : cli_load_model(path, &o.hints, &m, &info, &err);
    if (st != GSQ_OK) {
        gsq_engine_free(e);
        gsq_model_free(m);
        return cli_report(cmd, &err);
    }
    if (images) {
        int rc = run_images(m, e, &o, parsed.args + 1, images);
        gsq_engine_free(e);
        gsq_model_free(m);
        return rc;
    }
    const int classes = gsq_model_num_classes(m);
    cli_train_opts_apply(&d, gsq_model_input_size(m), classes); /* seed, input size, eval transform */
    gsq_dataset *train = NULL, *val = NULL;
    st = cli_open_data(d.data, &d.sizes, &train, &val, &err);
    gsq_dataset *ds = val ? val : train;
    if (st == GSQ_OK && ds->task != gsq_model_task(m))
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "%s is a %s model but %s is a %s dataset", path,
                      gsq_task_name(gsq_model_task(m)), ds->name, gsq_task_name(ds->task));
    else if (st == GSQ_OK && ds->num_classes != classes)
        st = gsq_fail(&err, GSQ_ERR_SHAPE, "%s has %d classes but %s has %d", path, classes, ds->name,
                      ds->num_classes);
    else if (st == GSQ_OK && o.results && ds->task != GSQ_TASK_DETECT)
        st = gsq_fail(&err, GSQ_ERR_ARG, "--results writes a detector's detections; %s is a %s model", path,
                      gsq_task_name(ds->task));
    gsq_eval_result r;
    if (st == GSQ_OK && engine) {
        st = run_engine(path, m, e, &info, &o, ds, &d.cfg.transform, d.cfg.batch_size, d.cfg.workers, &err);
    } else if (st == GSQ_OK && o.results) {
        gsq_output_shape shape = gsq_model_output_shape(m);
        st = gsq_evaluate_detections(model_forward, m, &shape, ds, &d.cfg.transform, d.cfg.batch_size, d.cfg.workers,
                                     o.results, &r, &err);
    } else if (st == GSQ_OK) {
        st = gsq_evaluate(m, ds, &d.cfg.transform, d.cfg.batch_size, d.cfg.workers, NULL, &r, &err);
    }
    if (st == GSQ_OK && !engine) {
        char words[160];
        printf("%s on %s: %s  (%zu images", path, ds->name, cli_eval_text(&r, 0, words, sizeof words), r.count);
        printf(r.skipped ? ", %zu skipped: failed to decode)\n" : ")\n", r.skipped);
        cli_print_eval_details(&r, m);
    }
    gsq_engine_free(e);
    gsq_model_free(m);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
    return st == GSQ_OK ? 0 : cli_report(cmd, &err);
}

int cmd_eval(int argc, char **argv) { return eval_main(argc, argv, 0); }
int cmd_run(int argc, char **argv) { return eval_main(argc, argv, 1); }
