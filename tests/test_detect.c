/* The detector (DETR's decoder after a ViT, src/models/det_head.c) and its loss (gpusq/detect.h)
 * on tiny configurations: the loss's gradient against central differences in double, its value
 * for predictions equal to the targets and its invariance to the order of the queries, the
 * decoding of boxes into pixels; the detector's graph (cross-attention per layer, the stacked
 * outputs, MACs), the 2D sine positions, the model's gradient against central differences on
 * tensors of every part (backbone, memory, queries, self- and cross-attention, heads), the
 * distillation loss's likewise (with targets and with the teacher's detections), and the head kept
 * by a save and load (metadata, and inferred from the tensors). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/detect.h"
#include "gpusq/distill.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"
#include "gpusq/vit.h"
#include "models/det_head.h" /* white-box: the sine positions */
#include "test_util.h"

enum { S = 16, K = 3, Q = 5, L = 2, BATCH = 2 };

static const gsq_vit_config tiny = {
    .img_size = S, .patch_size = 4, .in_chans = 3, .num_classes = K, .embed_dim = 16, .depth = 1, .num_heads = 2,
    .mlp_hidden = 32, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    .task = GSQ_TASK_DETECT, .det = {Q, L},
};

static const gsq_output_shape shape = {.task = GSQ_TASK_DETECT, .classes = K, .side = S, .queries = Q, .layers = L};

static void random_targets(gsq_targets *t, int B, gsq_rng *rng)
{
    for (int b = 0; b < B; b++) {
        t[b].count = b == 0 ? 3 : 1 + (int)(gsq_rng_uniform(rng) * 3);
        for (int i = 0; i < t[b].count; i++) {
            t[b].classes[i] = (int)(gsq_rng_uniform(rng) * K) % K;
            t[b].boxes[i] = (gsq_nbox){0.2f + 0.6f * gsq_rng_uniform(rng), 0.2f + 0.6f * gsq_rng_uniform(rng),
                                       0.1f + 0.3f * gsq_rng_uniform(rng), 0.1f + 0.3f * gsq_rng_uniform(rng)};
        }
    }
}

/* The loss in double (its parts as the loss sums them). */
static double loss_of(const float *out, int B, const gsq_targets *t, float *dout)
{
    gsq_detect_weights w;
    gsq_detect_weights_defaults(&w);
    gsq_detect_terms terms;
    gsq_error err = {0};
    float loss;
    if (gsq_detect_loss(out, &shape, B, t, &w, dout, 1.0f, &loss, &terms, &err) != GSQ_OK) {
        fprintf(stderr, "loss: %s\n", err.msg);
        return NAN;
    }
    return terms.ce + w.l1 * terms.l1 + w.giou * terms.giou;
}

/* The loss's gradient against central differences on every element of a random output. */
static void test_loss_gradient(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 7, 0);
    size_t n = (size_t)BATCH * L * Q * (K + 5);
    float *out = malloc(n * sizeof *out), *grad = malloc(n * sizeof *grad), *numeric = malloc(n * sizeof *numeric);
    gsq_targets t[BATCH];
    random_targets(t, BATCH, &rng);
    fill_normal(out, n, &rng, 1.0f);
    double base = loss_of(out, BATCH, t, grad);
    CHECK(isfinite(base) && base > 0, "loss %g", base);
    for (size_t i = 0; i < n; i++) {
        float v = out[i], h = 1e-3f;
        out[i] = v + h;
        double up = loss_of(out, BATCH, t, NULL);
        out[i] = v - h;
        double down = loss_of(out, BATCH, t, NULL);
        out[i] = v;
        numeric[i] = (float)((up - down) / (2.0 * h));
    }
    double e = norm_l2_err(grad, numeric, n);
    printf("  loss gradient vs central differences: %.2e\n", e);
    CHECK(e < 1e-3, "detection loss gradient: normalized L2 error %.3e", e);
    free(out);
    free(grad);
    free(numeric);
}

/* Logits that say class c with near certainty and box b. */
static void confident_row(float *row, int c, gsq_nbox b)
{
    for (int k = 0; k <= K; k++) row[k] = k == c ? 12.0f : -12.0f;
    float v[4] = {b.cx, b.cy, b.w, b.h};
    for (int k = 0; k < 4; k++) row[K + 1 + k] = logf(v[k] / (1.0f - v[k]));
}

/* Queries that predict the targets exactly (the rest no object): a loss near 0, whatever the order
 * of the queries; and the decoding of the last layer into pixels. */
static void test_loss_exact_and_decode(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 9, 0);
    gsq_targets t[1];
    random_targets(t, 1, &rng);
    size_t row = K + 5;
    float out[L * Q * (K + 5)], shuffled[L * Q * (K + 5)];
    for (int l = 0; l < L; l++)
        for (int q = 0; q < Q; q++) {
            float *r = out + ((size_t)l * Q + q) * row;
            if (q < t[0].count) confident_row(r, t[0].classes[q], t[0].boxes[q]);
            else confident_row(r, K, (gsq_nbox){0.5f, 0.5f, 0.5f, 0.5f});
        }
    double exact = loss_of(out, 1, t, NULL);
    CHECK(exact >= 0 && exact < 1e-4, "loss of exact predictions %g", exact);
    for (int l = 0; l < L; l++) /* queries reversed */
        for (int q = 0; q < Q; q++) memcpy(shuffled + ((size_t)l * Q + q) * row, out + ((size_t)l * Q + Q - 1 - q) * row, row * sizeof(float));
    out[K + 1] += 0.5f, shuffled[(Q - 1) * row + K + 1] += 0.5f; /* the same error in the same prediction */
    double a = loss_of(out, 1, t, NULL), b = loss_of(shuffled, 1, t, NULL);
    CHECK(fabs(a - b) < 1e-9 && a > exact, "query order changed the loss: %g vs %g", a, b);

    gsq_detection dets[Q];
    gsq_detect_decode(out, &shape, 0, 42, 200, 100, dets);
    const gsq_nbox *x = &t[0].boxes[1];
    CHECK(dets[1].image_id == 42 && dets[1].category == t[0].classes[1] && dets[1].score > 0.999f,
          "decoded class %d score %g", dets[1].category, (double)dets[1].score);
    CHECK(fabsf(dets[1].box.x - (x->cx - x->w / 2) * 200) < 1e-3f && fabsf(dets[1].box.h - x->h * 100) < 1e-3f,
          "decoded box %g %g %g %g", (double)dets[1].box.x, (double)dets[1].box.y, (double)dets[1].box.w,
          (double)dets[1].box.h);
    CHECK(dets[Q - 1].score < 1e-6f, "a no-object query's score %g", (double)dets[Q - 1].score);

    gsq_error err = {0};
    gsq_detect_weights w;
    gsq_detect_weights_defaults(&w);
    float loss;
    t[0].classes[0] = K;
    CHECK(gsq_detect_loss(out, &shape, 1, t, &w, NULL, 1.0f, &loss, NULL, &err) == GSQ_ERR_ARG &&
              strstr(err.msg, "class 3"), "a class outside [0, K) accepted: %s", err.msg);
    t[0].classes[0] = 0;
    t[0].boxes[0].w = 0.0f;
    CHECK(gsq_detect_loss(out, &shape, 1, t, &w, NULL, 1.0f, &loss, NULL, &err) == GSQ_ERR_ARG, "an empty box accepted");
}

/* DETR's PositionEmbeddingSine(normalize=True) at one token, worked out: row i = 1 of a grid of 4, feature 2. */
static void test_sine_positions(void)
{
    enum { G = 4, W = 8 };
    float pos[G * G * W];
    gsq_det_sine_positions(pos, G, W);
    double y = 2.0 / (G + 1e-6) * 6.283185307179586; /* row 1, (i + 1) / (G + eps) · 2π */
    double want = sin(y / pow(10000.0, 2.0 * 1 / (W / 2)));
    CHECK(fabs(pos[(1 * G + 3) * W + 2] - want) < 1e-6, "row feature 2: %g, want %g", (double)pos[(1 * G + 3) * W + 2], want);
    double x = 4.0 / (G + 1e-6) * 6.283185307179586; /* column 3 */
    CHECK(fabs(pos[(1 * G + 3) * W + 4 + 1] - cos(x)) < 1e-6, "column feature 1: %g", (double)pos[(1 * G + 3) * W + 5]);
}

static int count_op(const gsq_graph *g, gsq_op op)
{
    int n = 0;
    for (int i = 0; i < g->num_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

static void test_graph(void)
{
    gsq_model *m = NULL;
    gsq_error err = {0};
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    const gsq_graph *g = gsq_model_graph(m);
    CHECK(count_op(g, GSQ_OP_CROSS_ATTENTION) == L && count_op(g, GSQ_OP_CONCAT) == L, "one cross-attention a layer");
    CHECK(g->values[g->logits].rows == L * Q && g->values[g->logits].cols == K + 5, "logits %d × %d",
          g->values[g->logits].rows, g->values[g->logits].cols);
    CHECK(g->num_blocks == 1, "the decoder's layers are not block outputs (%d)", g->num_blocks);
    gsq_output_shape s = gsq_model_output_shape(m);
    CHECK(s.task == GSQ_TASK_DETECT && s.queries == Q && s.layers == L && s.classes == K, "output shape");
    /* attention: the backbone's over 17 tokens, each layer's self over Q and cross from Q over 16 */
    double want = 2.0 * 17 * 17 * 16 + L * (2.0 * Q * Q * 16 + 2.0 * Q * 16 * 16);
    CHECK(gsq_graph_count_macs(g).attention == want, "activation matmuls %.0f, want %.0f",
          gsq_graph_count_macs(g).attention, want);
    CHECK(!g->linears[gsq_graph_find_linear(g, "det_head.class_embed")].compressed &&
              g->linears[gsq_graph_find_linear(g, "det_head.decoder.layers.1.cross_attn.kv")].compressed,
          "the decoder is compressed, the heads are not");
    gsq_model_free(m);
}

/* The model's loss on a fixed batch (in double, from its logits; the model's own, float, kept for backward). */
static double model_loss(gsq_model *m, const float *x, const gsq_targets *t)
{
    gsq_error err = {0};
    const float *logits = NULL;
    if (gsq_model_forward(m, x, BATCH, &logits, &err) != GSQ_OK ||
        gsq_model_loss(m, &(gsq_truth){.boxes = t}, 0.0f, NULL, &err) != GSQ_OK)
        fprintf(stderr, "loss: %s\n", err.msg);
    return logits ? loss_of(logits, BATCH, t, NULL) : NAN;
}

/* Backward against central differences on 5 elements of each tensor. */
static void test_model_gradient(void)
{
    gsq_model *m = NULL;
    gsq_error err = {0};
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_model_init(m, 3);
    gsq_rng rng;
    gsq_rng_seed(&rng, 3, 1);
    for (size_t i = 0; i < gsq_model_num_params(m); i++) gsq_model_params(m)[i] += 0.1f * gsq_rng_normal(&rng);
    float x[BATCH * 3 * S * S];
    fill_normal(x, sizeof x / sizeof x[0], &rng, 1.0f);
    gsq_targets t[BATCH];
    random_targets(t, BATCH, &rng);
    model_loss(m, x, t);
    CHECK(gsq_model_zero_grad(m, &err) == GSQ_OK && gsq_model_backward(m, &err) == GSQ_OK, "%s", err.msg);
    const char *names[] = {"blocks.0.attn.qkv.weight", "det_head.input_proj.weight", "det_head.memory_pos",
                           "det_head.query_embed", "det_head.decoder.layers.0.attn.qkv.weight",
                           "det_head.decoder.layers.0.cross_attn.q.weight", "det_head.decoder.layers.1.cross_attn.kv.weight",
                           "det_head.decoder.layers.1.mlp.fc2.weight", "det_head.decoder_norm.weight",
                           "det_head.class_embed.weight", "det_head.bbox_embed.layers.0.weight"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const gsq_param *p = gsq_model_find_param(m, names[k]);
        CHECK(p != NULL, "no tensor %s", names[k]);
        if (!p) continue;
        enum { N = 5 };
        float analytic[N], numeric[N];
        for (int j = 0; j < N; j++) {
            size_t i = p->offset + (size_t)j * (p->numel - 1) / (N - 1);
            analytic[j] = gsq_model_grads(m)[i];
            float *w = &gsq_model_params(m)[i], v = *w, h = 3e-3f;
            *w = v + h;
            double up = model_loss(m, x, t);
            *w = v - h;
            double down = model_loss(m, x, t);
            *w = v;
            numeric[j] = (float)((up - down) / (2.0 * h));
        }
        double e = norm_l2_err(analytic, numeric, N), size = 0;
        for (int j = 0; j < N; j++) size = fmax(size, fabs(numeric[j]));
        printf("  d%-48s max |g| %.2e, analytic vs numeric %.2e\n", names[k], size, e);
        CHECK(e <= 3e-2, "d%s: normalized L2 error %.3e", names[k], e);
    }
    gsq_model_free(m);
}

/* The distillation loss of a perturbed copy against its teacher (with targets, and without: the
 * teacher's detections) by backward against central differences, on tensors whose gradients are
 * large enough for the float loss. */
static void test_distill_gradient(void)
{
    gsq_model *s = NULL, *t = NULL;
    gsq_error err = {0};
    CHECK(gsq_vit_create(&s, &tiny, &err) == GSQ_OK && gsq_vit_create(&t, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!s || !t) {
        gsq_model_free(s);
        gsq_model_free(t);
        return;
    }
    gsq_model_init(t, 4);
    gsq_rng rng;
    gsq_rng_seed(&rng, 4, 1);
    for (size_t i = 0; i < gsq_model_num_params(t); i++) gsq_model_params(t)[i] += 0.3f * gsq_rng_normal(&rng);
    memcpy(gsq_model_params(s), gsq_model_params(t), gsq_model_num_params(t) * sizeof(float));
    for (size_t i = 0; i < gsq_model_num_params(s); i++) gsq_model_params(s)[i] += 0.05f * gsq_rng_normal(&rng);
    float x[BATCH * 3 * S * S];
    fill_normal(x, sizeof x / sizeof x[0], &rng, 1.0f);
    gsq_targets targets[BATCH];
    random_targets(targets, BATCH, &rng);
    gsq_distill_config cfg;
    gsq_distill_defaults(&cfg, 1);
    cfg.first_block = 0;
    gsq_distiller *d = NULL;
    CHECK(gsq_distiller_create(&d, s, t, &cfg, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_infer(t, x, BATCH, NULL, &err) == GSQ_OK, "%s", err.msg);
    for (int supervised = 1; d && supervised >= 0; supervised--) {
        const gsq_truth truth = {.boxes = targets}, *given = supervised ? &truth : NULL;
        gsq_distill_terms terms;
        CHECK(gsq_model_forward(s, x, BATCH, NULL, &err) == GSQ_OK &&
                  gsq_distill_loss(d, s, t, given, &terms, NULL, &err) == GSQ_OK,
              "%s", err.msg);
        CHECK(terms.kl > 0 && terms.feature > 0 && terms.agree == BATCH, "terms: kl %g, features %g, agree %d",
              (double)terms.kl, (double)terms.feature, terms.agree);
        CHECK(gsq_model_zero_grad(s, &err) == GSQ_OK && gsq_distill_backward(d, s, &err) == GSQ_OK, "%s", err.msg);
        const char *names[] = {"det_head.query_embed", "det_head.class_embed.weight", "det_head.decoder_norm.weight",
                               "det_head.bbox_embed.layers.0.weight"};
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            const gsq_param *p = gsq_model_find_param(s, names[k]);
            enum { N = 4 };
            float analytic[N], numeric[N];
            for (int j = 0; j < N; j++) {
                size_t i = p->offset + (size_t)j * (p->numel - 1) / (N - 1);
                analytic[j] = gsq_model_grads(s)[i];
                float *w = &gsq_model_params(s)[i], v = *w, h = 1e-2f;
                double up, down;
                *w = v + h;
                gsq_model_forward(s, x, BATCH, NULL, &err);
                gsq_distill_loss(d, s, t, given, &terms, NULL, &err);
                up = terms.total;
                *w = v - h;
                gsq_model_forward(s, x, BATCH, NULL, &err);
                gsq_distill_loss(d, s, t, given, &terms, NULL, &err);
                down = terms.total;
                *w = v;
                numeric[j] = (float)((up - down) / (2.0 * h));
            }
            double e = norm_l2_err(analytic, numeric, N);
            printf("  distillation (%s) d%-36s analytic vs numeric %.2e\n", supervised ? "targets" : "teacher", names[k], e);
            CHECK(e <= 5e-2, "distillation d%s: normalized L2 error %.3e", names[k], e);
        }
    }
    gsq_distiller_free(d);
    gsq_model_free(s);
    gsq_model_free(t);
}

/* Saved and loaded: the head from the metadata, and from the tensors alone (timm-style loading). */
static void test_save_load(void)
{
    gsq_model *m = NULL, *back = NULL;
    gsq_error err = {0};
    char path[64];
    snprintf(path, sizeof path, "/tmp/gsq_test_detect_%d.safetensors", (int)getpid());
    CHECK(gsq_vit_create(&m, &tiny, &err) == GSQ_OK, "%s", err.msg);
    if (!m) return;
    gsq_model_init(m, 5);
    CHECK(gsq_model_save(m, path, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_load(&back, path, &err) == GSQ_OK, "%s", err.msg);
    if (back) {
        gsq_output_shape s = gsq_model_output_shape(back);
        CHECK(s.task == GSQ_TASK_DETECT && s.queries == Q && s.layers == L && s.classes == K, "loaded head");
        CHECK(memcmp(gsq_model_params(m), gsq_model_params(back), gsq_model_num_params(m) * sizeof(float)) == 0,
              "loaded weights");
    }
    gsq_model_free(back);
    back = NULL;
    gsq_vit_config inferred;
    gsq_st_file *f = NULL;
    CHECK(gsq_st_open(&f, path, &err) == GSQ_OK && gsq_vit_infer_config(f, 2, &inferred, &err) == GSQ_OK, "%s",
          err.msg);
    CHECK(inferred.task == GSQ_TASK_DETECT && inferred.det.queries == Q && inferred.det.layers == L &&
              inferred.num_classes == K, "inferred head: task %d, %d queries, %d layers, %d classes", inferred.task,
          inferred.det.queries, inferred.det.layers, inferred.num_classes);
    gsq_st_close(f);
    unlink(path);
    gsq_model_free(m);
}

int main(void)
{
    test_loss_gradient();
    test_loss_exact_and_decode();
    test_sine_positions();
    test_graph();
    test_model_gradient();
    test_distill_gradient();
    test_save_load();
    return test_finish("test_detect");
}
