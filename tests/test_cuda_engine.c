/* The engine on CUDA end to end (docs/CUDA.md), against the CPU engine on tiny quantized models:
 * INT8 2:4 (sparse tensor cores), INT4 4:8 (runs dense: paired 4:8 codes are not 2:4), W4A8, INT8
 * with quantized attention, in the sparse and the dense layouts, for a ViT and a Swin (shifted
 * windows, the bias, patch merging); the FP16 baseline against the float model; batches below the
 * maximum; times per part. Everywhere, GPU or not: asking for CUDA
 * without a usable GPU is GSQ_ERR_UNSUPPORTED with a message, and the FP16 layout on the CPU is
 * GSQ_ERR_ARG. */
#include <stdio.h>
#include <string.h>

#include "gpusq/engine.h"
#include "gpusq/half.h"
#include "quantized_model.h"
#include "test_util.h"

enum { B = 6, K = 5, PIXELS = 3 * 16 * 16 };

/* GPU logits within this much of the CPU engine's, relative to the largest logit. The integer
 * GEMMs and the quantized attention compute the CPU's values bit for bit; LayerNorm sums its
 * doubles in another order, so a normalized value may round to the neighbouring float and, near
 * a rounding boundary, to the neighbouring code (as TOL in test_engine.c allows), and the head
 * sums its dot products in another order. Models without quantized attention run float attention,
 * whose sums are ordered differently too. */
#define TOL 1e-4
/* The FP16 baseline against the float model: fp16 weights and activations, cuBLASLt's tanh GELU. */
#define TOL_FP16 3e-2

/* quantized_model.h's tiny ViT, or its Swin */
static gsq_model *tiny_model(int swin, int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention, float *x,
                             int n)
{
    return swin ? gsq_test_quantized_swin(mlp, pattern, mode, attention, x, n)
                : gsq_test_quantized_model(mlp, pattern, mode, attention, x, n);
}

static void check_model(int swin, int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention)
{
    float x[B * PIXELS], cpu[B * K], gpu[B * K];
    gsq_model *m = tiny_model(swin, mlp, pattern, mode, attention, x, B);
    gsq_error err = {0};
    char what[64];
    snprintf(what, sizeof what, "%s %s", swin ? "Swin" : "ViT", gsq_quant_mode_name(mode));
    const float *logits;
    gsq_engine *ref = NULL, *e[2] = {NULL, NULL};
    CHECK(gsq_engine_create(&ref, m, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = B, .device = GSQ_ENGINE_CPU, .pattern = pattern}, &err) == GSQ_OK, "%s", err.msg);
    for (int l = 0; l < 2; l++)
        CHECK(gsq_engine_create(&e[l], m,
                                &(gsq_engine_options){.layout = l ? GSQ_ENGINE_DENSE : GSQ_ENGINE_SPARSE,
                                                      .max_batch = B, .device = GSQ_ENGINE_CUDA, .pattern = pattern},
                                &err) == GSQ_OK, "%s: %s", what, err.msg);
    if (ref && gsq_engine_forward(ref, x, B, &logits, &err) == GSQ_OK) memcpy(cpu, logits, sizeof cpu);
    for (int l = 0; ref && l < 2 && e[l]; l++) {
        const char *layout = l ? "dense" : "sparse";
        CHECK(gsq_engine_forward(e[l], x, B, &logits, &err) == GSQ_OK, "%s %s: %s", what, layout, err.msg);
        if (!logits) continue;
        memcpy(gpu, logits, sizeof gpu);
        int same = 0;
        for (int i = 0; i < B * K; i++) same += gsq_f32_bits(gpu[i]) == gsq_f32_bits(cpu[i]);
        double d = max_rel_err(gpu, cpu, B * K);
        printf("%s %s%s, %s layout (%d GEMMs on mma.sp): GPU vs CPU engine %.2e, %d of %d logits bit-equal\n", what,
               gsq_sparse_pattern_name(pattern), attention ? " (attention quantized)" : "", layout,
               gsq_engine_sparse_linears(e[l]), d, same, B * K);
        CHECK(d <= TOL, "%s %s: GPU logits differ from the CPU engine's by %g", what, layout, d);
        /* a smaller batch computes the same rows */
        CHECK(gsq_engine_forward(e[l], x + 2 * PIXELS, 3, &logits, &err) == GSQ_OK, "%s", err.msg);
        CHECK(logits && !memcmp(gpu + 2 * K, logits, 3 * K * sizeof(float)), "%s %s: batch of 3 differs from its rows",
              what, layout);
        double total = 0, transfer = 0;
        for (int p = 0; p < gsq_engine_parts(e[l]); p++) {
            total += gsq_engine_times(e[l])[p];
            if (!strcmp(gsq_engine_part_name(e[l], p), "transfer")) transfer = gsq_engine_times(e[l])[p];
        }
        CHECK(total > 0 && transfer > 0, "%s: no time recorded", what);
    }
    if (e[1]) CHECK(gsq_engine_sparse_linears(e[1]) == 0, "dense layout: %d linears sparse", gsq_engine_sparse_linears(e[1]));
    if (e[0] && ref && pattern == GSQ_SPARSE_2_4)
        CHECK(gsq_engine_sparse_linears(e[0]) == gsq_engine_sparse_linears(ref), "%s: %d linears sparse on the GPU, %d on "
              "the CPU", what, gsq_engine_sparse_linears(e[0]), gsq_engine_sparse_linears(ref));
    gsq_engine_free(ref);
    gsq_engine_free(e[0]);
    gsq_engine_free(e[1]);
    gsq_model_free(m);
}

/* The FP16 engine against the float model of the same weights, at batch B and then 1 (which plans
 * its cuBLASLt GEMMs again). */
static void check_fp16(int swin)
{
    float x[B * PIXELS], ref[B * K];
    gsq_model *m = tiny_model(swin, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, x, B);
    gsq_error err = {0};
    gsq_engine *e = NULL;
    const float *logits;
    CHECK(gsq_engine_create(&e, m,
                            &(gsq_engine_options){.layout = GSQ_ENGINE_FP16, .max_batch = B, .device = GSQ_ENGINE_CUDA},
                            &err) == GSQ_OK, "%s",
          err.msg);
    gsq_model_quant_disable(m);
    gsq_model_forward(m, x, B, &logits, &err);
    memcpy(ref, logits, sizeof ref);
    for (int batch = B; e && batch >= 1; batch -= B - 1) {
        CHECK(gsq_engine_forward(e, x, batch, &logits, &err) == GSQ_OK, "%s", err.msg);
        double d = logits ? max_rel_err(logits, ref, (size_t)batch * K) : 1.0;
        printf("FP16 engine, %s, batch %d: vs the float model %.2e\n", swin ? "Swin" : "ViT", batch, d);
        CHECK(d <= TOL_FP16, "FP16 engine, %s, batch %d: logits differ from the float model by %g", swin ? "Swin" : "ViT",
              batch, d);
    }
    gsq_engine_free(e);
    gsq_model_free(m);
}

int main(void)
{
    float x[PIXELS];
    gsq_model *m = gsq_test_quantized_model(48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, x, 1);
    gsq_error err = {0};
    gsq_engine *e = NULL;
    CHECK(gsq_engine_create(&e, m, &(gsq_engine_options){.layout = GSQ_ENGINE_FP16, .max_batch = 1, .device = GSQ_ENGINE_CPU},
                            &err) == GSQ_ERR_ARG && !e,
          "the FP16 layout was accepted on the CPU");
    gsq_status st = gsq_engine_create(
        &e, m, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = 1, .device = GSQ_ENGINE_CUDA}, &err);
    gsq_model_free(m);
    char name[256] = "";
    gsq_error gpu_err = {0};
    if (gsq_engine_gpu_name(name, sizeof name, &gpu_err) != GSQ_OK) { /* no GPU, driver or CUDA library */
        CHECK(st == GSQ_ERR_UNSUPPORTED && !e && err.msg[0], "CUDA without a GPU: status %d", (int)st);
        printf("  refused without a GPU: %s\n", err.msg);
        return test_skip("test_cuda_engine", gpu_err.msg);
    }
    if (st == GSQ_ERR_UNSUPPORTED) { /* a GPU older than sm_80: refused, with the reason */
        CHECK(!e && err.msg[0], "an unsupported GPU was refused without a message");
        return test_skip("test_cuda_engine", err.msg);
    }
    gsq_engine_free(e);
    printf("device: %s\n", name);
    for (int swin = 0; swin < 2; swin++) {
        check_model(swin, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0);
        check_model(swin, 36, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0);
        check_model(swin, 48, GSQ_SPARSE_2_4, GSQ_QMODE_W4A8, 0);
        check_model(swin, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1);
        check_fp16(swin);
    }
    return test_finish("test_cuda_engine");
}
