/* The CPU engine end to end on tiny quantized models: its logits against the fake-quantized
 * model's (the engine's contract, docs/ENGINE.md) for INT8 2:4, INT4 4:8 with dense-stored
 * layers, W4A8 and INT8 with quantized attention, through a compressed file; the sparse and the
 * dense layouts give bitwise the same logits (the same integer sums); batches below the maximum;
 * and the errors for a model without quantizers and a batch out of range. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/compressed.h"
#include "gpusq/engine.h"
#include "gpusq/graph.h"
#include "quantized_model.h"
#include "test_util.h"

enum { B = 6 };

/* Engine logits within this much of the fake-quantized model's, relative to the largest logit:
 * both compute the same quantized values, in a different order of float operations, and an
 * activation that lands within rounding noise of a code boundary may take the neighbouring code. */
#define TOL 1e-4

static void check_model(int swin, int mlp, gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention,
                        int want_sparse)
{
    float x[B * 3 * 16 * 16], ref[B * 5];
    gsq_model *q = swin ? gsq_test_quantized_swin(mlp, pattern, mode, attention, x, B)
                        : gsq_test_quantized_model(mlp, pattern, mode, attention, x, B);
    gsq_error err = {0};
    char path[] = "/tmp/gsq_test_engine_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    gsq_model *m = NULL;
    CHECK(gsq_compressed_save(q, pattern, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_compressed_load(&m, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    unlink(path);
    gsq_model_free(q);
    if (!m) return;
    const float *logits;
    gsq_model_forward(m, x, B, &logits, &err);
    memcpy(ref, logits, sizeof ref);
    gsq_engine *sparse = NULL, *dense = NULL;
    CHECK(gsq_engine_create(&sparse, m, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = B, .device = GSQ_ENGINE_CPU, .pattern = pattern}, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_engine_create(&dense, m, &(gsq_engine_options){.layout = GSQ_ENGINE_DENSE, .max_batch = B, .device = GSQ_ENGINE_CPU, .pattern = pattern}, &err) == GSQ_OK, "%s", err.msg);
    gsq_graph_macs gm = gsq_graph_count_macs(gsq_model_graph(m));
    gsq_model_free(m); /* the engine keeps what it needs */
    const char *what = gsq_quant_mode_name(mode);
    if (sparse && dense) {
        CHECK(gsq_engine_sparse_linears(sparse) == want_sparse && gsq_engine_sparse_linears(dense) == 0,
              "%s: %d sparse linears (want %d), dense layout %d", what, gsq_engine_sparse_linears(sparse), want_sparse,
              gsq_engine_sparse_linears(dense));
        float out[B * 5];
        CHECK(gsq_engine_forward(sparse, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
        memcpy(out, logits, sizeof out);
        double e = max_rel_err(out, ref, B * 5);
        printf("%s %s %s%s: engine vs fake-quant max relative difference %.2e\n", swin ? "Swin" : "ViT", what,
               gsq_sparse_pattern_name(pattern), attention ? " (attention quantized)" : "", e);
        CHECK(e <= TOL, "%s: engine logits differ from the fake-quantized model by %g", what, e);
        CHECK(gsq_engine_forward(dense, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
        CHECK(!memcmp(out, logits, sizeof out), "%s: dense and sparse layouts differ", what);
        /* a smaller batch computes the same rows */
        CHECK(gsq_engine_forward(sparse, x + 2 * 3 * 16 * 16, 3, &logits, &err) == GSQ_OK, "%s", err.msg);
        CHECK(!memcmp(out + 2 * 5, logits, 3 * 5 * sizeof(float)), "%s: batch of 3 differs from its rows in 6", what);
        CHECK(gsq_engine_forward(sparse, x, B + 1, &logits, &err) == GSQ_ERR_ARG, "%s: batch %d accepted", what, B + 1);
        double total = 0;
        int qkv = 0, fc1 = 0;
        for (int p = 0; p < gsq_engine_parts(sparse); p++) {
            total += gsq_engine_times(sparse)[p];
            qkv += !strcmp(gsq_engine_part_name(sparse, p), "attn.qkv");
            fc1 += !strcmp(gsq_engine_part_name(sparse, p), "mlp.fc1+gelu");
        }
        CHECK(total > 0 && qkv == 1 && fc1 == 1, "parts: time %g, qkv %d, fc1+gelu %d (the blocks' linears summed)", total,
              qkv, fc1);
        /* the roofline's work: every multiply-accumulate of the graph once; the sparse layout moves
         * fewer weight bytes than the dense one */
        double macs = 0, bytes_sparse = 0, bytes_dense = 0;
        for (int p = 0; p < gsq_engine_parts(sparse); p++) {
            double pm, pb, dm, db;
            gsq_engine_part_work(sparse, p, B, &pm, &pb);
            gsq_engine_part_work(dense, p, B, &dm, &db);
            CHECK(pb > 0 && pm == dm, "part %s: %g bytes, %g MACs sparse, %g dense", gsq_engine_part_name(sparse, p), pb,
                  pm, dm);
            macs += pm, bytes_sparse += pb, bytes_dense += db;
        }
        double want = B * (gm.linear + gm.attention);
        CHECK(fabs(macs - want) <= 1e-9 * want, "%s: the parts count %.0f MACs, the graph %.0f", what, macs, want);
        CHECK(want_sparse ? bytes_sparse < bytes_dense : bytes_sparse == bytes_dense, "%s: bytes sparse %.0f, dense %.0f",
              what, bytes_sparse, bytes_dense);
    }
    gsq_engine_free(sparse);
    gsq_engine_free(dense);
}

int main(void)
{
    printf("engine kernels: %s\n", gsq_engine_isa());
    check_model(0, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, 9);
    check_model(0, 36, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0, 7); /* fc2 has 36 inputs: dense in both blocks */
    check_model(0, 48, GSQ_SPARSE_2_4, GSQ_QMODE_W4A8, 0, 9);
    check_model(0, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, 9);
    /* Swin: the patch embedding, 8 block linears per stage and the patch merging's reduction; windows
     * shifted and not, the bias in the float and the integer attention */
    check_model(1, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, 18);
    check_model(1, 48, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, 18);
    check_model(1, 36, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 1, 15); /* dense: the patch embedding (12 inputs), stage 0 fc2s (36) */

    gsq_vit_config c;
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_engine *e = NULL;
    gsq_vit_config_by_name("gpusq_demo", &c, &err);
    gsq_vit_create(&m, &c, &err);
    CHECK(gsq_engine_create(&e, m, &(gsq_engine_options){.layout = GSQ_ENGINE_SPARSE, .max_batch = 1, .device = GSQ_ENGINE_CPU}, &err) == GSQ_ERR_ARG && !e,
          "a float model was accepted");
    printf("  refused: %s\n", err.msg);
    gsq_model_free(m);
    return test_finish("test_engine");
}
