/* bench_export OUT_DIR [DEMO_DIR]: the gpusq side of scripts/bench_export.py, which sets our
 * QAT-trained ONNX export against ONNX Runtime's own post-training quantization (quantize_static)
 * in ONNX Runtime. Writes to OUT_DIR:
 *   demo_fp32.onnx          the dense demo teacher (assets/demo_teacher.safetensors), float
 *   demo_int8_ort.onnx,     the demo's compressed models (DEMO_DIR, default demo-out: what
 *   demo_int4_ort.onnx      scripts/demo.sh writes), --target ort
 *   demo_val.safetensors    the demo's validation images as compress reads them (10000, 32×32,
 *                           seed 0) with their labels; demo_calib.safetensors: 512 training images
 *   deit_small_fp32.onnx    deit_small_patch16_224 with random weights (for speed only), float,
 *   deit_small_int8_ort.onnx  and pruned to 2:4, INT8 with quantized attention, calibrated on
 *                           four synthetic images, --target ort */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/compressed.h"
#include "gpusq/export.h"
#include "gpusq/loader.h"
#include "gpusq/sparse.h"
#include "gpusq/vit_quant.h"

static const char *out_dir;

static int fail(const char *what, const gsq_error *err)
{
    fprintf(stderr, "bench_export: %s: %s\n", what, err->msg);
    exit(1);
}

static void export(const gsq_model *m, const char *name, gsq_export_target target)
{
    gsq_error err = {0};
    gsq_export_options o;
    gsq_export_options_init(&o);
    o.target = target;
    char path[4096];
    snprintf(path, sizeof path, "%.3900s/%.100s.onnx", out_dir, name);
    if (gsq_export_onnx(m, &o, path, &err) != GSQ_OK) fail(path, &err);
    printf("bench_export: wrote %s\n", path);
}

/* n images of the synthetic demo data's split (the eval transform at 32×32) and their labels. */
static void write_split(const char *name, int split, int n)
{
    gsq_error err = {0};
    gsq_dataset *ds = NULL;
    gsq_loader *ld = NULL;
    gsq_loader_config c = {.batch_size = 500, .train = 0, .workers = 2, .prefetch = 2};
    gsq_transform_defaults(&c.transform, 32);
    c.transform.crop_pct = 1.0f; /* drawn at the input size, as the program reads it */
    if (gsq_dataset_synthetic(&ds, 10000, 32, 0, split, &err) != GSQ_OK) fail("synthetic data", &err);
    if (gsq_loader_create(&ld, ds, &c, 0, 0, &err) != GSQ_OK) fail("loader", &err);
    float *x = malloc((size_t)n * 3 * 32 * 32 * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; i < n;) {
        gsq_batch b;
        if (gsq_loader_next(ld, &b, &err) != GSQ_OK) fail("loader", &err);
        int take = b.n < n - i ? b.n : n - i;
        memcpy(x + (size_t)i * 3 * 32 * 32, b.images, (size_t)take * 3 * 32 * 32 * sizeof *x);
        for (int k = 0; k < take; k++) y[i + k] = (float)b.labels[k];
        i += take;
    }
    gsq_loader_destroy(ld);
    gsq_dataset_free(ds);
    gsq_st_writer *w = NULL;
    const int64_t xs[4] = {n, 3, 32, 32}, ys[1] = {n};
    char path[4096];
    snprintf(path, sizeof path, "%.3900s/%.100s.safetensors", out_dir, name);
    if (gsq_st_writer_create(&w, &err) != GSQ_OK || gsq_st_writer_add(w, "images", GSQ_DT_F32, 4, xs, x, &err) != GSQ_OK ||
        gsq_st_writer_add(w, "labels", GSQ_DT_F32, 1, ys, y, &err) != GSQ_OK || gsq_st_writer_write(w, path, &err) != GSQ_OK)
        fail(path, &err);
    gsq_st_writer_free(w);
    free(x);
    free(y);
    printf("bench_export: wrote %s (%d images)\n", path, n);
}

/* deit_small with random weights, float and as a 2:4 INT8 model calibrated on random images. */
static void deit_small(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    if (gsq_model_create_named(&m, "deit_small_patch16_224", 0, &err) != GSQ_OK) fail("deit_small", &err);
    gsq_model_init(m, 1);
    export(m, "deit_small_fp32", GSQ_EXPORT_TENSORRT);
    gsq_sparse_plan plan;
    if (gsq_sparse_plan_magnitude(&plan, m, GSQ_SPARSE_2_4, 0, &err) != GSQ_OK) fail("prune", &err);
    gsq_sparse_apply(&plan, gsq_model_params(m));
    gsq_sparse_plan_free(&plan);
    int S = gsq_model_input_size(m);
    gsq_dataset *ds = NULL;
    gsq_transform t;
    gsq_transform_defaults(&t, S);
    if (gsq_dataset_synthetic(&ds, 4, S, 2, 0, &err) != GSQ_OK ||
        gsq_model_quant_enable(m, GSQ_QMODE_INT8, GSQ_CALIB_MAX, &err) != GSQ_OK ||
        gsq_model_quant_enable_attention(m, &err) != GSQ_OK ||
        gsq_model_quant_calibrate(m, ds, &t, 4, 1, 1, GSQ_CALIB_PERCENTILE, 99.99f, &err) != GSQ_OK)
        fail("quantize deit_small", &err);
    export(m, "deit_small_int8_ort", GSQ_EXPORT_ORT);
    gsq_dataset_free(ds);
    gsq_model_free(m);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: bench_export OUT_DIR [DEMO_DIR]   (DEMO_DIR: scripts/demo.sh's demo-out)\n");
        return 2;
    }
    out_dir = argv[1];
    const char *demo = argc > 2 ? argv[2] : "demo-out";
    char path[4096];
    gsq_error err = {0};
    gsq_model *m = NULL;
    if (gsq_model_load(&m, GSQ_SOURCE_DIR "/assets/demo_teacher.safetensors", &err) != GSQ_OK) fail("demo teacher", &err);
    export(m, "demo_fp32", GSQ_EXPORT_TENSORRT);
    gsq_model_free(m);
    const char *modes[2] = {"int8", "int4"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s.gsq.safetensors", demo, modes[i]);
        if (gsq_compressed_load(&m, path, NULL, &err) != GSQ_OK) fail(path, &err);
        snprintf(path, sizeof path, "demo_%s_ort", modes[i]);
        export(m, path, GSQ_EXPORT_ORT);
        gsq_model_free(m);
    }
    write_split("demo_val", 1, 10000);
    write_split("demo_calib", 0, 512);
    deit_small();
    return 0;
}
