/* export_bundle DIR: writes what tests/onnx_check.py checks with ONNX Runtime — for each case an
 * ONNX export (NAME.onnx, gsq_export_onnx) and NAME.io.safetensors with its input images, gpusq's
 * logits for them and what to compare: "fp32" (the float forward; logits within 1e-4 relative) or
 * "agreement" (the CPU engine's integer forward of a quantized model; top-1 agreement), and the
 * weights that must keep their sparsity pattern. Cases: the demo teacher (dense, 2:4 sparse,
 * opset 21, a fixed batch), every timm parity fixture's model, the Swin demo teacher, and the demo
 * teachers pruned and quantized (2:4 INT8 with quantized attention, 4:8 INT4) on the demo's
 * validation images, for both targets (each also saved as NAME.gsq.safetensors, a compressed
 * file for the program's export). Run by tests/onnx_check.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

#include "dataset_sample.h"
#include "gpusq/compressed.h"
#include "gpusq/data.h"
#include "gpusq/engine.h"
#include "gpusq/export.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "gpusq/sparse.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"
#include "gpusq/vit_quant.h"
#include "gpusq/rng.h"

/* Stops the program: a case that cannot be made is a failure of the check that runs it. */
#define REQUIRE(cond, ...)                                                                           \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "export_bundle: %s:%d: ", __FILE__, __LINE__);                           \
            fprintf(stderr, __VA_ARGS__);                                                            \
            fprintf(stderr, "\n");                                                                   \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

static const char *dir;

/* The demo's data as its compress reads it: the synthetic split (10000 samples, seed 0) and the
 * eval transform at the input size S (the images are drawn at that size). */
static gsq_dataset *demo_data(int S, int split, gsq_transform *t)
{
    gsq_error err = {0};
    gsq_dataset *ds = NULL;
    REQUIRE(gsq_dataset_synthetic(&ds, 10000, S, 0, split, &err) == GSQ_OK, "%s", err.msg);
    gsq_transform_defaults(t, S);
    t->crop_pct = 1.0f;
    return ds;
}

/* The first n validation images (C, S, S) of the demo's data. */
static float *demo_images(int n, int S)
{
    gsq_error err = {0};
    gsq_transform t;
    gsq_dataset *ds = demo_data(S, 1, &t);
    float *x = malloc((size_t)n * 3 * S * S * sizeof *x);
    for (int i = 0; i < n; i++) {
        gsq_image img = {0};
        int label;
        REQUIRE(get_image(ds, (size_t)i, &img, &label, &err) == GSQ_OK, "%s", err.msg);
        REQUIRE(gsq_transform_eval(&t, &img, x + (size_t)i * 3 * S * S, &err) == GSQ_OK, "%s", err.msg);
        gsq_image_free(&img);
    }
    gsq_dataset_free(ds);
    return x;
}

/* The logits of n images: the float forward, or (engine) the CPU engine's, in batches. */
static float *logits_of(gsq_model *m, const float *x, int n, int engine)
{
    gsq_error err = {0};
    int K = gsq_model_num_classes(m), C = gsq_model_in_chans(m), S = gsq_model_input_size(m), B = 50;
    float *y = malloc((size_t)n * K * sizeof *y);
    gsq_engine *e = NULL;
    if (engine) {
        gsq_engine_options o;
        gsq_engine_options_init(&o);
        o.max_batch = B;
        REQUIRE(gsq_engine_create(&e, m, &o, &err) == GSQ_OK, "%s", err.msg);
    }
    for (int i = 0; i < n; i += B) {
        int b = n - i < B ? n - i : B;
        const float *out = NULL, *in = x + (size_t)i * C * S * S;
        gsq_status st = engine ? gsq_engine_forward(e, in, b, &out, &err) : gsq_model_infer(m, in, b, &out, &err);
        REQUIRE(st == GSQ_OK, "%s", err.msg);
        memcpy(y + (size_t)i * K, out, (size_t)b * K * sizeof *y);
    }
    gsq_engine_free(e);
    return y;
}

/* Writes NAME.onnx (target, opset, batch) and NAME.io.safetensors. pattern: the sparsity the
 * compressed linears' weights keep (NULL: none checked). */
static void write_case(const char *name, gsq_model *m, gsq_export_target target, int opset, int batch, const float *x,
                       const float *logits, int n, const char *check, const char *pattern)
{
    gsq_error err = {0};
    char path[4096], sparse[8192] = "";
    gsq_export_options o;
    gsq_export_options_init(&o);
    o.target = target;
    o.opset = opset;
    o.batch = batch;
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    REQUIRE(gsq_export_onnx(m, &o, path, &err) == GSQ_OK, "%s: %s", name, err.msg);
    const gsq_graph *g = gsq_model_graph(m);
    for (int i = 0; pattern && i < g->num_linears; i++) {
        if (!g->linears[i].compressed) continue;
        size_t len = strlen(sparse);
        snprintf(sparse + len, sizeof sparse - len, "%s%s%s", len ? "," : "",
                 gsq_model_tensor(m, g->linears[i].weight)->name, gsq_model_quant_active(m) ? "_quantized" : "");
    }
    int C = gsq_model_in_chans(m), S = gsq_model_input_size(m), K = gsq_model_num_classes(m);
    const int64_t xs[4] = {n, C, S, S}, ys[2] = {n, K};
    gsq_st_writer *w = NULL;
    REQUIRE(gsq_st_writer_create(&w, &err) == GSQ_OK, "%s", err.msg);
    REQUIRE(gsq_st_writer_add(w, "images", GSQ_DT_F32, 4, xs, x, &err) == GSQ_OK, "%s", err.msg);
    REQUIRE(gsq_st_writer_add(w, "logits", GSQ_DT_F32, 2, ys, logits, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_set_meta(w, "check", check, &err);
    gsq_st_writer_set_meta(w, "pattern", pattern ? pattern : "", &err);
    gsq_st_writer_set_meta(w, "sparse_weights", sparse, &err);
    snprintf(path, sizeof path, "%s/%s.io.safetensors", dir, name);
    REQUIRE(gsq_st_writer_write(w, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    printf("export_bundle: %s (%d images, %s)\n", name, n, check);
}

static gsq_model *load(const char *path)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    REQUIRE(gsq_model_load(&m, path, &err) == GSQ_OK, "%s: %s", path, err.msg);
    return m;
}

static void prune(gsq_model *m, gsq_sparse_pattern p)
{
    gsq_error err = {0};
    gsq_sparse_plan plan;
    REQUIRE(gsq_sparse_plan_magnitude(&plan, m, p, 0, &err) == GSQ_OK, "%s", err.msg);
    gsq_sparse_apply(&plan, gsq_model_params(m));
    gsq_sparse_plan_free(&plan);
}

/* m pruned to p and quantized in mode (attention too when asked), calibrated on 256 training
 * images of the demo data: the compressed model without its fine-tuning. */
static void quantize(gsq_model *m, gsq_sparse_pattern p, gsq_quant_mode mode, int attention)
{
    gsq_error err = {0};
    gsq_transform t;
    prune(m, p);
    REQUIRE(gsq_model_quant_enable(m, mode, GSQ_CALIB_MSE, &err) == GSQ_OK, "%s", err.msg);
    if (attention) REQUIRE(gsq_model_quant_enable_attention(m, &err) == GSQ_OK, "%s", err.msg);
    gsq_dataset *ds = demo_data(gsq_model_input_size(m), 0, &t);
    REQUIRE(gsq_model_quant_calibrate(m, ds, &t, 64, 4, 1, GSQ_CALIB_PERCENTILE, 99.99f, &err) == GSQ_OK, "%s", err.msg);
    gsq_dataset_free(ds);
}

static void float_case(const char *name, gsq_model *m, const float *x, int n, int opset, int batch, const char *pattern)
{
    float *y = logits_of(m, x, n, 0);
    write_case(name, m, GSQ_EXPORT_TENSORRT, opset, batch, x, y, n, "fp32", pattern);
    free(y);
}

/* The quantized model of a demo teacher in both targets' exports, against the engine. */
static void quantized_cases(const char *teacher, const char *name, gsq_sparse_pattern p, gsq_quant_mode mode,
                            int attention, int n)
{
    gsq_model *m = load(teacher);
    quantize(m, p, mode, attention);
    float *x = demo_images(n, gsq_model_input_size(m)), *y = logits_of(m, x, n, 1);
    char full[4096];
    gsq_error err = {0};
    snprintf(full, sizeof full, "%s/%s.gsq.safetensors", dir, name); /* for the program's export */
    REQUIRE(gsq_compressed_save(m, p, full, NULL, &err) == GSQ_OK, "%s", err.msg);
    snprintf(full, sizeof full, "%s_tensorrt", name);
    write_case(full, m, GSQ_EXPORT_TENSORRT, 17, 0, x, y, n, "agreement", gsq_sparse_pattern_name(p));
    snprintf(full, sizeof full, "%s_ort", name);
    write_case(full, m, GSQ_EXPORT_ORT, mode == GSQ_QMODE_INT8 ? 21 : 17, 0, x, y, n, "agreement",
               gsq_sparse_pattern_name(p));
    free(x);
    free(y);
    gsq_model_free(m);
}

/* A timm parity fixture's model (tests/fixtures/NAME.model.safetensors) on the fixture's own
 * images, loaded with what its expected file records that the weights do not show (a ViT's
 * heads, a Swin's input size). */
static void fixture_case(const char *name)
{
    gsq_error err = {0};
    char path[4096];
    gsq_st_file *exp = NULL, *f = NULL;
    snprintf(path, sizeof path, "%s/tests/fixtures/%s.expected.safetensors", GSQ_SOURCE_DIR, name);
    REQUIRE(gsq_st_open(&exp, path, &err) == GSQ_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/tests/fixtures/%s.model.safetensors", GSQ_SOURCE_DIR, name);
    REQUIRE(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_model *m = NULL;
    if (gsq_file_arch(f) == GSQ_ARCH_SWIN) {
        gsq_swin_config c;
        REQUIRE(gsq_swin_infer_config(f, atoi(gsq_st_meta_get(exp, "img_size")), &c, &err) == GSQ_OK, "%s", err.msg);
        REQUIRE(gsq_swin_load_open(&m, f, &c, NULL, &err) == GSQ_OK, "%s", err.msg);
    } else {
        gsq_vit_config c;
        REQUIRE(gsq_vit_infer_config(f, atoi(gsq_st_meta_get(exp, "num_heads")), &c, &err) == GSQ_OK, "%s", err.msg);
        c.img_size = atoi(gsq_st_meta_get(exp, "img_size")); /* a side the patch does not divide */
        REQUIRE(gsq_vit_load_open(&m, f, &c, NULL, &err) == GSQ_OK, "%s", err.msg);
    }
    const gsq_st_tensor *t = gsq_st_find(exp, "input.images");
    REQUIRE(t != NULL, "%s: no input.images", name);
    int n = (int)t->shape[0];
    size_t count = (size_t)n * gsq_model_in_chans(m) * gsq_model_input_size(m) * gsq_model_input_size(m);
    float *x = malloc(count * sizeof *x);
    REQUIRE(gsq_st_read_f32(exp, t, x, count, &err) == GSQ_OK, "%s", err.msg);
    char full[300];
    snprintf(full, sizeof full, "fixture_%s_fp32", name);
    float_case(full, m, x, n, 17, 0, NULL);
    free(x);
    gsq_model_free(m);
    gsq_st_close(f);
    gsq_st_close(exp);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: export_bundle DIR\n");
        return 2;
    }
    dir = argv[1];
    const char *demo = GSQ_SOURCE_DIR "/assets/demo_teacher.safetensors";
    const char *swin = GSQ_SOURCE_DIR "/assets/swin_demo_teacher.safetensors";

    gsq_model *m = load(demo);
    float *x = demo_images(256, gsq_model_input_size(m));
    float_case("demo_fp32", m, x, 256, 17, 0, NULL);
    float_case("demo_fp32_opset21_batch8", m, x, 256, 21, 8, NULL);
    prune(m, GSQ_SPARSE_2_4);
    float_case("demo_sparse24_fp32", m, x, 256, 17, 0, "2:4");
    free(x);
    gsq_model_free(m);

    m = load(swin);
    x = demo_images(64, gsq_model_input_size(m));
    float_case("swin_demo_fp32", m, x, 64, 17, 0, NULL);
    free(x);
    gsq_model_free(m);

    DIR *fixtures = opendir(GSQ_SOURCE_DIR "/tests/fixtures");
    REQUIRE(fixtures != NULL, "cannot open tests/fixtures");
    for (struct dirent *d; (d = readdir(fixtures));) {
        size_t len = strlen(d->d_name), suffix = strlen(".model.safetensors");
        if (len <= suffix || strcmp(d->d_name + len - suffix, ".model.safetensors") != 0) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(len - suffix), d->d_name);
        fixture_case(name);
    }
    closedir(fixtures);

    quantized_cases(demo, "demo_int8", GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, 2000);
    quantized_cases(demo, "demo_int4", GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0, 2000);
    quantized_cases(swin, "swin_int8", GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, 500);
    return 0;
}
