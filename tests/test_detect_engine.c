/* The CPU engine on a tiny fake-quantized detector (DETR's decoder after a ViT, docs/DETECTION.md):
 * its output (every decoder layer's class and box logits) against the fake-quantized model's, the
 * compressed linears as integer GEMMs and the cross-attention and the joins in float, for INT8 2:4
 * (the attention matmuls float and quantized) and INT4 4:8, from memory and from a compressed file;
 * a batch below the maximum; the roofline's parts counting the graph's MACs, cross-attention's
 * included; and the compressed file describing and loading a detector with its queries, layers and
 * classes. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/compressed.h"
#include "gpusq/engine.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "quantized_model.h"
#include "test_util.h"

enum { B = 3, S = 16, K = 3, Q = 5, L = 2, OUT = L * Q * (K + 5) };

static const gsq_vit_config tiny = {
    .img_size = S, .patch_size = 4, .in_chans = 3, .num_classes = K, .embed_dim = 16, .depth = 1, .num_heads = 2,
    .mlp_hidden = 32, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    .task = GSQ_TASK_DETECT, .det = {Q, L},
};

/* The engine's output within this much of the fake-quantized model's, relative to the largest
 * logit: test_engine.c's bound (the same quantized values in another order of float operations). */
#define TOL 1e-4

/* 1 when m is the tiny detector: its output's queries, layers and classes. */
static int is_tiny_detector(const gsq_model *m)
{
    gsq_output_shape s = gsq_model_output_shape(m);
    return s.task == GSQ_TASK_DETECT && s.queries == Q && s.layers == L && s.classes == K;
}

/* The engine (from m, or from the compressed file f when it is not NULL) against ref on x. */
static void check_engine(const gsq_model *m, const gsq_st_file *f, gsq_sparse_pattern pattern, const float *x,
                         const float *ref, const char *what)
{
    gsq_error err = {0};
    gsq_engine *e = NULL;
    gsq_engine_options o;
    gsq_engine_options_init(&o);
    o.max_batch = B;
    o.pattern = pattern;
    gsq_status st = f ? gsq_engine_load(&e, f, &o, &err) : gsq_engine_create(&e, m, &o, &err);
    CHECK(st == GSQ_OK, "%s: %s", what, err.msg);
    if (!e) return;
    const float *out = NULL;
    float full[B * OUT];
    CHECK(gsq_engine_forward(e, x, B, &out, &err) == GSQ_OK, "%s: %s", what, err.msg);
    double rel = out ? max_rel_err(out, ref, (size_t)B * OUT) : INFINITY;
    int compressed = gsq_graph_compressed_linears(gsq_model_graph(m));
    printf("  %s: engine vs fake-quantized output, max relative difference %.2e; %d of %d linears sparse\n", what, rel,
           gsq_engine_sparse_linears(e), compressed);
    CHECK(rel <= TOL, "%s: the engine's output differs by %g", what, rel);
    CHECK(gsq_engine_sparse_linears(e) == compressed, "%s: %d sparse linears of %d", what,
          gsq_engine_sparse_linears(e), compressed);
    if (out) memcpy(full, out, sizeof full);
    /* a smaller batch computes the same rows */
    CHECK(gsq_engine_forward(e, x + 3 * S * S, B - 1, &out, &err) == GSQ_OK, "%s: %s", what, err.msg);
    CHECK(out && !memcmp(out, full + OUT, (size_t)(B - 1) * OUT * sizeof(float)), "%s: a batch of %d differs from its "
          "rows in %d", what, B - 1, B);
    double macs = 0;
    int cross = 0;
    for (int p = 0; p < gsq_engine_parts(e); p++) {
        double pm, pb;
        gsq_engine_part_work(e, p, B, &pm, &pb);
        macs += pm;
        cross += !strcmp(gsq_engine_part_name(e, p), "cross_attention");
    }
    gsq_graph_macs gm = gsq_graph_count_macs(gsq_model_graph(m));
    double want = B * (gm.linear + gm.attention);
    CHECK(cross == 1 && fabs(macs - want) <= 1e-9 * want, "%s: the parts count %.0f MACs, the graph %.0f; %d "
          "cross-attention parts", what, macs, want, cross);
    gsq_engine_free(e);
}

static void test_engine(gsq_sparse_pattern pattern, gsq_quant_mode mode, int attention, const char *dir)
{
    gsq_error err = {0};
    gsq_model *m = NULL, *described = NULL, *loaded = NULL;
    float x[B * 3 * S * S], ref[B * OUT];
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_test_quantize(m, pattern, mode, attention, x, B);
    const float *out = NULL;
    CHECK(gsq_model_infer(m, x, B, &out, &err) == GSQ_OK, "%s", err.msg);
    if (out) memcpy(ref, out, sizeof ref);
    char what[96], path[128];
    snprintf(what, sizeof what, "%s %s%s", gsq_quant_mode_name(mode), gsq_sparse_pattern_name(pattern),
             attention ? ", attention quantized" : "");
    check_engine(m, NULL, pattern, x, ref, what);

    snprintf(path, sizeof path, "%s/detector.gsq.safetensors", dir);
    CHECK(gsq_compressed_save(m, pattern, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_file *f = NULL;
    gsq_compressed_info info;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    if (f) {
        CHECK(gsq_compressed_describe(&described, f, &info, &err) == GSQ_OK, "%s", err.msg);
        CHECK(described && is_tiny_detector(described) && info.attention == attention,
              "%s: the compressed file's description lost the detector", what);
        snprintf(what + strlen(what), sizeof what - strlen(what), ", compressed file");
        if (described) check_engine(described, f, pattern, x, ref, what);
        gsq_st_close(f);
    }
    CHECK(gsq_compressed_load(&loaded, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    if (loaded) { /* the float tensors (memory positions, queries, heads) and the codes come back */
        CHECK(is_tiny_detector(loaded), "%s: the loaded model is not the detector", what);
        CHECK(gsq_model_infer(loaded, x, B, &out, &err) == GSQ_OK, "%s", err.msg);
        double rel = out ? max_rel_err(out, ref, (size_t)B * OUT) : INFINITY;
        CHECK(rel <= TOL, "%s: the loaded model's output differs by %g", what, rel);
    }
    unlink(path);
    gsq_model_free(loaded);
    gsq_model_free(described);
    gsq_model_free(m);
}

int main(void)
{
    char dir[] = "/tmp/gsq_test_detect_engine_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("the CPU engine on a detector (kernels: %s):\n", gsq_engine_isa());
    test_engine(GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0, dir);
    test_engine(GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 1, dir);
    test_engine(GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 0, dir);
    rmdir(dir);
    return test_finish("test_detect_engine");
}
