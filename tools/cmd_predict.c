/* gpusq predict: the top-5 classes (with names when the model has them) for image files, a
 * segmenter's class maps over them (predict_segment.c) or a detector's boxes (predict_detect.c);
 * the per-image loop is shared with gpusq run, which predicts with the engine. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "gpusq/vit.h"

int cli_predict_images(const char *cmd, const gsq_model *m, gsq_forward_fn forward, void *ctx, char *const *images,
                       int n, const char *out_dir, float threshold)
{
    if (gsq_model_task(m) == GSQ_TASK_SEGMENT) return cli_predict_segment(cmd, m, forward, ctx, images, n, out_dir);
    if (gsq_model_task(m) == GSQ_TASK_DETECT)
        return cli_predict_detect(cmd, m, forward, ctx, images, n, out_dir, threshold);
    const int size = gsq_model_input_size(m), classes = gsq_model_num_classes(m);
    gsq_error err = {0};
    gsq_transform t;
    gsq_transform_defaults(&t, size);
    float *input = malloc((size_t)3 * size * size * sizeof(float));
    float *probs = malloc((size_t)classes * sizeof(float));
    int failures = 0;
    for (int i = 0; input && probs && i < n; i++) {
        gsq_image img = {0};
        const float *logits = NULL;
        gsq_status st = gsq_image_load(images[i], &img, &err);
        if (st == GSQ_OK) st = gsq_transform_eval(&t, &img, input, &err);
        if (st == GSQ_OK) st = forward(ctx, input, 1, &logits, &err);
        gsq_image_free(&img);
        if (st != GSQ_OK) {
            cli_report(cmd, &err);
            failures++;
            continue;
        }
        float maxv = logits[0];
        for (int k = 1; k < classes; k++) maxv = fmaxf(maxv, logits[k]);
        double sum = 0;
        for (int k = 0; k < classes; k++) sum += probs[k] = expf(logits[k] - maxv);
        printf("%s\n", images[i]);
        int top = classes < 5 ? classes : 5;
        for (int r = 0; r < top; r++) {
            int best = 0;
            for (int k = 1; k < classes; k++) best = probs[k] > probs[best] ? k : best;
            char name[128];
            gsq_model_class_name(m, best, name, sizeof name);
            printf("  %6.2f%%  %d %s\n", 100.0 * probs[best] / sum, best, name);
            probs[best] = -1.0f;
        }
    }
    int oom = !input || !probs;
    free(input);
    free(probs);
    if (oom) {
        gsq_fail(&err, GSQ_ERR_NOMEM, "out of memory");
        return cli_report(cmd, &err);
    }
    return failures ? 1 : 0;
}

static gsq_status vit_forward(void *m, const float *images, int n, const float **logits, gsq_error *err)
{
    return gsq_model_infer(m, images, n, logits, err);
}

static const cli_spec spec = {
    .name = "predict",
    .usage = "MODEL.safetensors IMAGE... [--heads N] [--input-size N] [--out-dir DIR] [--threshold X]",
    .about = "Prints the five most probable classes of each JPEG or PNG image (timm's eval transform). A segmenter "
    "writes each image's predicted classes over it in colours as DIR/NAME.seg.png and prints the classes that cover "
    "most of it. A detector prints its detections scoring at least --threshold, best first (class, score, box x y w "
    "h in the image's pixels), and draws them over the image as DIR/NAME.det.png. An image that cannot be read is "
    "reported and skipped; the exit code is then 1. `gpusq run "
    "MODEL.gsq.safetensors IMAGE...` does the same with the engine.",
    .min_args = 2,
    .max_args = -1,
    .args_what = "a MODEL.safetensors and at least one IMAGE",
};

typedef struct {
    const char *out_dir;
    float threshold;
} predict_opts;

static const cli_option predict_options[] = {
    {CLI_OPT("--out-dir", "DIR", CLI_STRING, offsetof(predict_opts, out_dir), "a segmenter's overlays and a detector's "
     "drawings go here")},
    {CLI_OPT("--threshold", "X", CLI_FLOAT, offsetof(predict_opts, threshold), "detectors only: the least score of a "
     "detection printed and drawn"), .lo = 0, .lo_open = 1, .hi = 1},
};

int cmd_predict(int argc, char **argv)
{
    cli_model_hints hints = {0};
    predict_opts po = {CLI_PREDICT_DIR, CLI_PREDICT_THRESHOLD};
    const cli_group groups[] = {cli_model_group(&hints), CLI_GROUP("output", predict_options, &po)};
    cli_parsed parsed;
    int code = cli_parse(&spec, groups, CLI_COUNT(groups), argc, argv, &parsed);
    if (code >= 0) return code;
    gsq_error err = {0};
    gsq_model *m = NULL;
    if (cli_load_model(parsed.args[0], &hints, &m, NULL, &err) != GSQ_OK) return cli_report("predict", &err);
    int rc = cli_predict_images("predict", m, vit_forward, m, parsed.args + 1, parsed.num_args - 1, po.out_dir,
                                po.threshold);
    gsq_model_free(m);
    return rc;
}
