/* Segmenter's mask-transformer decode head (gsq_seg_head GSQ_SEG_HEAD_MASK) on tiny models: its
 * graph (the new operations, its blocks not block outputs, its MACs); the gradient of the
 * per-pixel loss by backward against central differences on parameters of every tensor the new
 * operations reach (the class embeddings through PREPEND, both projections through L2NORM and
 * MATMUL_NT, the norms, the decoder's blocks, the backbone behind it); the CPU engine's logits
 * against the fake-quantized model's, from memory and through a compressed file; the head kept
 * by a save and load (metadata, and inferred from the tensors); the configuration's checks; and a
 * Swin with the head from a classifier's backbone, training a step. The ONNX export of the head
 * is test_export.c's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/compressed.h"
#include "gpusq/engine.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "quantized_model.h"
#include "test_util.h"

enum { B = 2, S = 16, K = 3 };

static const gsq_vit_config tiny = {
    .img_size = S, .patch_size = 4, .in_chans = 3, .num_classes = K, .embed_dim = 16, .depth = 1, .num_heads = 2,
    .mlp_hidden = 32, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    .task = GSQ_TASK_SEGMENT, .seg_head = GSQ_SEG_HEAD_MASK,
};

static char dir[64];

static int count_op(const gsq_graph *g, gsq_op op)
{
    int n = 0;
    for (int i = 0; i < g->num_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

/* The mask head's graph: the operations, 11 compressed linears more than the backbone's 5, the
 * decoder's blocks outside the block outputs, the masks' MACs with the attention's. */
static void test_graph(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    const gsq_graph *g = gsq_model_graph(m);
    CHECK(count_op(g, GSQ_OP_PREPEND) == 1 && count_op(g, GSQ_OP_L2NORM) == 2 && count_op(g, GSQ_OP_MATMUL_NT) == 1 &&
              count_op(g, GSQ_OP_ROWS) == 3,
          "prepend %d, l2norm %d, matmul %d, rows %d", count_op(g, GSQ_OP_PREPEND), count_op(g, GSQ_OP_L2NORM),
          count_op(g, GSQ_OP_MATMUL_NT), count_op(g, GSQ_OP_ROWS));
    CHECK(g->num_linears == 16 && gsq_graph_compressed_linears(g) == 16, "%d linears, %d compressed", g->num_linears,
          gsq_graph_compressed_linears(g));
    CHECK(g->num_blocks == 1 && gsq_model_depth(m) == 1 && g->num_attentions == 3, "%d blocks, %d attentions",
          g->num_blocks, g->num_attentions);
    const gsq_value *logits = &g->values[g->logits];
    CHECK(!strcmp(logits->name, "logits") && logits->rows == 16 && logits->cols == K && g->grid == 4 && logits->tap,
          "logits %s (%d, %d), grid %d", logits->name, logits->rows, logits->cols, g->grid);
    CHECK(gsq_graph_find_value(g, "decode_head.tokens") >= 0 &&
              g->values[gsq_graph_find_value(g, "decode_head.tokens")].rows == K + 16,
          "the class embeddings before the 16 patches");
    /* attention: the backbone's over 17 tokens, the decoder's two over 19, width 16; the masks 16 × 3 × 16 */
    gsq_graph_macs macs = gsq_graph_count_macs(g);
    double want = 2.0 * 17 * 17 * 16 + 2 * (2.0 * 19 * 19 * 16) + 16 * 3 * 16;
    CHECK(macs.attention == want, "activation matmuls: %.0f MACs, want %.0f", macs.attention, want);
    const gsq_param *emb = gsq_model_find_param(m, "decode_head.cls_emb");
    CHECK(emb && emb->ndim == 3 && emb->shape[1] == K && emb->shape[2] == 16 && emb->no_decay, "cls_emb");
    CHECK(gsq_model_find_param(m, "decode_head.blocks.1.mlp.fc1.weight")->shape[0] == 64 &&
              !gsq_model_find_param(m, "decode_head.proj_patch.bias"),
          "the decoder's MLP is 4·width, the projections have no bias");
    gsq_model_free(m);
}

/* timm-like initialisation, then noise so that every function is away from its special points
 * and the finite differences see gradients of some size. */
static void init_noisy(gsq_model *m, uint64_t seed)
{
    gsq_model_init(m, seed);
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 1);
    for (size_t i = 0; i < gsq_model_num_params(m); i++) gsq_model_params(m)[i] += 0.2f * gsq_rng_normal(&rng);
}

static void random_batch(float *x, int16_t *maps, uint64_t seed)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 2);
    fill_normal(x, (size_t)B * 3 * S * S, &rng, 1.0f);
    for (int i = 0; i < B * S * S; i++) /* a few pixels ignored */
        maps[i] = (int16_t)(gsq_rng_uniform(&rng) < 0.1f ? GSQ_IGNORE_LABEL : (int)(gsq_rng_uniform(&rng) * K) % K);
}

static double loss_at(gsq_model *m, const float *x, const int16_t *maps)
{
    gsq_error err = {0};
    float loss = NAN;
    if (gsq_model_forward(m, x, B, NULL, &err) != GSQ_OK || gsq_model_loss(m, &(gsq_truth){.maps = maps}, 0.1f, &loss, &err) != GSQ_OK)
        fprintf(stderr, "loss: %s\n", err.msg);
    return loss;
}

/* Step of the central differences: small against parameters of size ~0.2 (the truncation error is
 * O(h²)), large against the float loss's rounding (~1e-7 of a loss near 1: ~2e-5 in a difference
 * quotient). */
#define FD_STEP 3e-3f
/* ‖analytic − numeric‖ / ‖numeric‖ over a tensor's sampled elements: measured at most 3e-3 (the
 * smallest gradients, ~5e-3, carry the most rounding); a wrong term or index is O(1), 10% off in
 * the largest element 4e-2 or more (checked below, so the bound has teeth). */
#define GRAD_TOL 2e-2

/* Backward's gradient of the loss against central differences on 6 elements spread over tensor
 * `name`. */
static void check_tensor_grad(gsq_model *m, const float *x, const int16_t *maps, const char *name)
{
    gsq_error err = {0};
    const gsq_param *p = gsq_model_find_param(m, name);
    CHECK(p != NULL, "no tensor %s", name);
    if (!p) return;
    loss_at(m, x, maps);
    CHECK(gsq_model_zero_grad(m, &err) == GSQ_OK && gsq_model_backward(m, &err) == GSQ_OK, "%s", err.msg);
    enum { N = 6 };
    float analytic[N], numeric[N];
    for (int k = 0; k < N; k++) {
        size_t i = p->offset + (size_t)k * (p->numel - 1) / (N - 1);
        analytic[k] = gsq_model_grads(m)[i];
        float *w = &gsq_model_params(m)[i], v = *w;
        *w = v + FD_STEP;
        double up = loss_at(m, x, maps);
        float taken = *w;
        *w = v - FD_STEP;
        double down = loss_at(m, x, maps);
        numeric[k] = (float)((up - down) / ((double)taken - (double)*w));
        *w = v;
    }
    double e = norm_l2_err(analytic, numeric, N), size = 0;
    for (int k = 0; k < N; k++) size = fmax(size, fabs(numeric[k]));
    printf("  d%-40s max |g| %.2e, analytic vs numeric %.2e\n", name, size, e);
    CHECK(e <= GRAD_TOL, "d%s: analytic vs numeric normalized L2 error %.3e", name, e);
    int largest = 0;
    for (int k = 1; k < N; k++) largest = fabsf(numeric[k]) > fabsf(numeric[largest]) ? k : largest;
    analytic[largest] = numeric[largest] * 1.1f;
    CHECK(norm_l2_err(analytic, numeric, N) > GRAD_TOL, "d%s: 10%% off in one element passes", name);
    CHECK(size > 1e-4, "d%s: gradients of %.2e are too small to check anything", name, size);
}

static void test_gradients(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    init_noisy(m, 5);
    float *x = malloc((size_t)B * 3 * S * S * sizeof *x);
    int16_t maps[B * S * S];
    random_batch(x, maps, 6);
    const char *names[] = {
        "decode_head.mask_norm.weight", "decode_head.mask_norm.bias",           /* LAYERNORM over the classes */
        "decode_head.proj_patch.weight", "decode_head.proj_classes.weight",     /* L2NORM, MATMUL_NT's two sides */
        "decode_head.decoder_norm.weight", "decode_head.cls_emb",               /* ROWS, PREPEND's parameter */
        "decode_head.blocks.1.mlp.fc2.weight", "decode_head.blocks.0.attn.qkv.weight",
        "decode_head.proj_dec.weight", "decode_head.proj_dec.bias",             /* PREPEND's input */
        "blocks.0.mlp.fc1.weight", "pos_embed",                                 /* the backbone behind */
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) check_tensor_grad(m, x, maps, names[i]);
    free(x);
    gsq_model_free(m);
}

/* The CPU engine's logits within this much of the fake-quantized model's, relative to the largest:
 * the same quantized values in another order of float operations (test_engine.c's bound), a code
 * that rounding moves across a boundary shifting a mask a little. */
#define ENGINE_TOL 1e-4

static void compare_engine(const gsq_model *m, const float *x, const float *ref, int want_sparse, const char *what)
{
    gsq_error err = {0};
    gsq_engine *e = NULL;
    gsq_engine_options o;
    gsq_engine_options_init(&o);
    o.max_batch = B;
    CHECK(gsq_engine_create(&e, m, &o, &err) == GSQ_OK, "%s: %s", what, err.msg);
    if (!e) return;
    const float *logits = NULL;
    size_t n = (size_t)B * 16 * K;
    CHECK(gsq_engine_forward(e, x, B, &logits, &err) == GSQ_OK, "%s: %s", what, err.msg);
    double rel = logits ? max_rel_err(logits, ref, n) : INFINITY;
    printf("  %s: engine vs fake-quantized logits, max relative difference %.2e; %d sparse linears\n", what, rel,
           gsq_engine_sparse_linears(e));
    CHECK(rel <= ENGINE_TOL, "%s: engine logits differ by %g", what, rel);
    CHECK(gsq_engine_sparse_linears(e) == want_sparse, "%s: %d sparse linears, want %d", what,
          gsq_engine_sparse_linears(e), want_sparse);
    double macs = 0;
    for (int p = 0; p < gsq_engine_parts(e); p++) {
        double pm, pb;
        gsq_engine_part_work(e, p, B, &pm, &pb);
        macs += pm;
    }
    gsq_graph_macs gm = gsq_graph_count_macs(gsq_model_graph(m));
    CHECK(fabs(macs - B * (gm.linear + gm.attention)) <= 1e-9 * macs, "%s: the parts count %.0f MACs, the graph %.0f",
          what, macs, B * (gm.linear + gm.attention));
    gsq_engine_free(e);
}

static void test_engine(int attention)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    float x[B * 3 * S * S], ref[B * 16 * K];
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_engine *e = NULL;
    gsq_engine_options o;
    gsq_engine_options_init(&o);
    CHECK(gsq_engine_create(&e, m, &o, &err) == GSQ_ERR_ARG && !e, "a float model was accepted"); /* no quantizers */
    gsq_test_quantize(m, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, attention, x, B);
    const float *logits = NULL;
    CHECK(gsq_model_infer(m, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
    if (logits) memcpy(ref, logits, sizeof ref);
    const char *what = attention ? "INT8 2:4, attention quantized" : "INT8 2:4";
    compare_engine(m, x, ref, 16, what);
    /* through a compressed file: the class embeddings and norms stored as floats */
    char path[96], label[96];
    snprintf(path, sizeof path, "%s/mask%d.gsq.safetensors", dir, attention);
    snprintf(label, sizeof label, "%s, compressed file", what);
    gsq_model *loaded = NULL;
    CHECK(gsq_compressed_save(m, GSQ_SPARSE_2_4, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_compressed_load(&loaded, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    if (loaded) {
        CHECK(gsq_model_seg_head(loaded) == GSQ_SEG_HEAD_MASK, "the compressed file lost the head");
        CHECK(gsq_model_infer(loaded, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
        compare_engine(loaded, x, ref, 16, label);
    }
    gsq_model_free(loaded);
    gsq_model_free(m);
}

/* A save keeps the head: in the metadata (describe_meta), and in the tensors when the file is
 * loaded by inference from them (gsq_model_load); the parameters come back the same. A bad
 * "seg_head" is refused. */
static void test_round_trip(void)
{
    gsq_error err = {0};
    gsq_model *m = NULL, *back = NULL, *described = NULL;
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_model_init(m, 4);
    char path[96];
    snprintf(path, sizeof path, "%s/mask.safetensors", dir);
    CHECK(gsq_model_save(m, path, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_load(&back, path, &err) == GSQ_OK, "%s", err.msg);
    if (back) {
        CHECK(gsq_model_task(back) == GSQ_TASK_SEGMENT && gsq_model_seg_head(back) == GSQ_SEG_HEAD_MASK &&
                  gsq_model_num_classes(back) == K,
              "loaded: task %d, head %d, %d classes", gsq_model_task(back), gsq_model_seg_head(back),
              gsq_model_num_classes(back));
        CHECK(gsq_model_num_params(back) == gsq_model_num_params(m) &&
                  !memcmp(gsq_model_params(back), gsq_model_params(m), gsq_model_num_params(m) * sizeof(float)),
              "the parameters changed");
    }
    gsq_st_file *f = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    if (!f) return;
    const char *head = gsq_st_meta_get(f, "seg_head");
    CHECK(head && !strcmp(head, "mask"), "the mask head's metadata: %s", head ? head : "none");
    CHECK(gsq_model_describe_meta(&described, f, &err) == GSQ_OK && gsq_model_seg_head(described) == GSQ_SEG_HEAD_MASK,
          "described: %s", err.msg);
    gsq_st_close(f);
    /* the linear head's: loaded (the head inferred from the tensors) and in the metadata */
    gsq_vit_config lin = tiny;
    lin.seg_head = GSQ_SEG_HEAD_LINEAR;
    gsq_model *linear = NULL, *linear_back = NULL;
    CHECK(gsq_vit_create(&linear, &lin, &err) == GSQ_OK && gsq_model_save(linear, path, &err) == GSQ_OK &&
              gsq_model_load(&linear_back, path, &err) == GSQ_OK, "%s", err.msg);
    CHECK(linear_back && gsq_model_seg_head(linear_back) == GSQ_SEG_HEAD_LINEAR &&
              gsq_model_num_classes(linear_back) == K, "the linear head came back as another");
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    head = f ? gsq_st_meta_get(f, "seg_head") : NULL;
    CHECK(head && !strcmp(head, "linear"), "the linear head's metadata: %s", head ? head : "none");
    gsq_st_close(f);
    /* a head the metadata does not know */
    gsq_st_writer *w = NULL;
    gsq_status st = gsq_st_writer_create(&w, &err);
    if (st == GSQ_OK) st = gsq_model_add_to_writer(m, w, &err);
    if (st == GSQ_OK) st = gsq_st_writer_set_meta(w, "seg_head", "bogus", &err);
    if (st == GSQ_OK) st = gsq_st_writer_write(w, path, &err);
    CHECK(st == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    gsq_model_free(described);
    described = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK, "%s", err.msg);
    CHECK(f && gsq_model_describe_meta(&described, f, &err) == GSQ_ERR_FORMAT && strstr(err.msg, "seg_head 'bogus'"),
          "a bogus head: %s", err.msg);
    gsq_st_close(f);
    gsq_model_free(described);
    gsq_model_free(linear_back);
    gsq_model_free(linear);
    gsq_model_free(back);
    gsq_model_free(m);
}

/* The head's checks: its heads (width / 64) must divide the width; an unknown head is refused. */
static void test_validation(void)
{
    gsq_error err = {0};
    gsq_vit_config c = tiny;
    c.embed_dim = 129, c.num_heads = 3; /* 2 heads of 64.5 */
    CHECK(gsq_vit_config_validate(&c, &err) == GSQ_ERR_SHAPE && strstr(err.msg, "not divisible by its 2 heads"),
          "width 129: %s", err.msg);
    c.task = GSQ_TASK_CLASSIFY; /* a classifier has no decode head */
    CHECK(gsq_vit_config_validate(&c, &err) == GSQ_OK, "a classifier of width 129: %s", err.msg);
    c = tiny;
    c.seg_head = (gsq_seg_head)2;
    CHECK(gsq_vit_config_validate(&c, &err) == GSQ_ERR_SHAPE && strstr(err.msg, "unknown segmentation head"), "%s",
          err.msg);
    gsq_seg_head h = GSQ_SEG_HEAD_LINEAR;
    CHECK(gsq_seg_head_parse("mask", &h) == 0 && h == GSQ_SEG_HEAD_MASK && !strcmp(gsq_seg_head_name(h), "mask") &&
              gsq_seg_head_parse("cls", &h) == -1 && !strcmp(gsq_seg_head_name(GSQ_SEG_HEAD_LINEAR), "linear"),
          "names");
}

/* A Swin with the head: widths 24, 48 over grids 8, 4; a training step runs and gives finite,
 * non-zero gradients to the head; a classifier's backbone is carried over by gsq_model_for_task. */
static void test_swin(void)
{
    gsq_swin_config c = {.img_size = S, .patch_size = 2, .in_chans = 3, .num_classes = 5, .num_stages = 2,
                         .depths = {2, 2}, .dims = {24, 48}, .num_heads = {3, 6}, .window = 4, .mlp_hidden = {48, 96},
                         .qkv_bias = 1, .ln_eps = 1e-5f};
    gsq_error err = {0};
    gsq_model *classifier = NULL, *m = NULL;
    CHECK(gsq_swin_create(&classifier, &c, &err) == GSQ_OK, "%s", err.msg);
    if (!classifier) return;
    init_noisy(classifier, 7);
    int copied = 0;
    CHECK(gsq_model_for_task(&m, classifier, &(gsq_task_head){.task = GSQ_TASK_SEGMENT, .seg_head = GSQ_SEG_HEAD_MASK}, K, 8,
                             &copied, &err) == GSQ_OK, "%s",
          err.msg);
    gsq_model_free(classifier);
    if (!m) return;
    const gsq_graph *g = gsq_model_graph(m);
    int backbone = gsq_model_num_tensors(m) - 33; /* the head's 33 */
    CHECK(copied == backbone && g->grid == 4 && g->values[g->logits].rows == 16 && g->num_blocks == 4,
          "copied %d of %d, grid %d, %d blocks", copied, backbone, g->grid, g->num_blocks);
    float *x = malloc((size_t)B * 3 * S * S * sizeof *x);
    int16_t maps[B * S * S];
    random_batch(x, maps, 9);
    const float *logits = NULL;
    float loss = NAN;
    CHECK(gsq_model_forward(m, x, B, &logits, &err) == GSQ_OK &&
              gsq_model_loss(m, &(gsq_truth){.maps = maps}, 0.0f, &loss, &err) == GSQ_OK, "%s", err.msg);
    CHECK(isfinite(loss) && loss > 0, "loss %g", loss);
    CHECK(gsq_model_zero_grad(m, &err) == GSQ_OK && gsq_model_backward(m, &err) == GSQ_OK, "%s", err.msg);
    const gsq_param *emb = gsq_model_find_param(m, "decode_head.cls_emb");
    double norm = 0;
    for (size_t i = 0; emb && i < emb->numel; i++) {
        double gi = gsq_model_grads(m)[emb->offset + i];
        norm += gi * gi;
    }
    CHECK(isfinite(norm) && norm > 0, "the class embeddings' gradient: %g", norm);
    free(x);
    gsq_model_free(m);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/gsq_test_segment_head_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_graph();
    test_validation();
    printf("gradients of the loss, backward against central differences:\n");
    test_gradients();
    printf("the CPU engine:\n");
    test_engine(0);
    test_engine(1);
    test_round_trip();
    test_swin();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_finish("test_segment_head");
}
