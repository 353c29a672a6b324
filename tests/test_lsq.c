/* LSQ (learned step sizes): the quantizer's scale gradient against finite differences (the exact
 * derivative where it saturates, round's straight-through estimator inside the range) and the
 * same bits for 1 and 2 threads; a tiny model's scale gradients against the formula applied to
 * its own activation and weight gradients; and a few LSQ steps under a 2:4 mask: the scales move
 * and stay positive, pruned weights still code to 0, the run is deterministic, and the compressed
 * file carries the learned scales (its logits match to 1e-5). */
#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/compressed.h"
#include "gpusq/graph.h"
#include "gpusq/sparse.h"
#include "gpusq/train.h"
#include "models/vit_quant_state.h"
#include "test_util.h"
#include "toy_dataset.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24, .depth = 2,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

/* Σ dy·x̂(s) in double; where offset is given and not NaN, round(x/s) is replaced by x/s + offset
 * (round's straight-through estimator, the offset frozen at the point of differentiation). */
static double dot_quantized(const float *dy, const float *x, const double *offset, int n, double s, int qmax)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double c = rint(x[i] / s);
        c = c < -qmax ? -qmax : (c > qmax ? qmax : c);
        if (offset && !isnan(offset[i])) c = x[i] / s + offset[i];
        sum += dy[i] * s * c;
    }
    return sum;
}

static void test_quantizer_gradient(void)
{
    enum { N = 400, Q = 7 };
    const float s = 0.37f;
    float x[N], dy[N];
    double offset[N], in_range_dot = 0;
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    /* codes from -10 to 10 (beyond ±7 saturates), each at least 0.15 from a rounding edge */
    for (int i = 0; i < N; i++) {
        int k = (int)(gsq_rng_u32(&rng) % 21) - 10;
        x[i] = s * ((float)k + 0.7f * (gsq_rng_uniform(&rng) - 0.5f));
        dy[i] = gsq_rng_normal(&rng);
        offset[i] = abs(k) <= Q ? rint(x[i] / (double)s) - x[i] / (double)s : NAN;
        if (abs(k) <= Q) in_range_dot += (double)dy[i] * x[i] / s;
    }
    double got = gsq_fake_quant_scale_grad(dy, x, N, s, Q), h = 1e-4 * s;
    double exact = (dot_quantized(dy, x, NULL, N, s + h, Q) - dot_quantized(dy, x, NULL, N, s - h, Q)) / (2 * h);
    double ste = (dot_quantized(dy, x, offset, N, s + h, Q) - dot_quantized(dy, x, offset, N, s - h, Q)) / (2 * h);
    /* LSQ = the exact derivative (Σ dy·code) plus round's straight-through term −Σ dy·x/s inside the range */
    CHECK(fabs(got - (exact - in_range_dot)) < 1e-4 * (1 + fabs(got)), "LSQ %.6f, exact %.6f − %.6f", got, exact,
          in_range_dot);
    CHECK(fabs(got - ste) < 1e-4 * (1 + fabs(got)), "LSQ %.6f against the STE's finite difference %.6f", got, ste);
    /* where every value saturates, LSQ's gradient is the exact one: ±qmax by the sign of x */
    float big[4] = {9 * s, -8.2f * s, 30 * s, -7.9f * s}, ones[4] = {1, 2, -1, 0.5f};
    double want = 7.0 * (1 - 2 - 1 - 0.5);
    CHECK(fabs(gsq_fake_quant_scale_grad(ones, big, 4, s, Q) - want) < 1e-9, "saturated: %g, want %g",
          gsq_fake_quant_scale_grad(ones, big, 4, s, Q), want);
    /* the sum over many values is the same for 1 and 2 threads */
    size_t n = 300001;
    float *xs = malloc(n * sizeof(float)), *ds = malloc(n * sizeof(float));
    fill_normal(xs, n, &rng, 1.0f);
    fill_normal(ds, n, &rng, 1.0f);
    omp_set_num_threads(1);
    double one = gsq_fake_quant_scale_grad(ds, xs, n, 0.3f, 7);
    omp_set_num_threads(2);
    double two = gsq_fake_quant_scale_grad(ds, xs, n, 0.3f, 7);
    CHECK(memcmp(&one, &two, sizeof one) == 0, "1 thread %.17g, 2 threads %.17g", one, two);
    free(xs);
    free(ds);
}

/* g·Σ dy·(round(x/s) − x/s) in double, for values none of which saturates (checked) */
static double expected_grad(const float *dy, const float *x, size_t n, float s, int qmax, double g, size_t *saturated)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * (1.0f / s), r = rintf(v);
        *saturated += fabsf(r) > (float)qmax;
        sum += (double)dy[i] * ((double)r - (double)v);
    }
    return g * sum;
}

/* The scale gradients backward leaves against LSQ's formula applied to the model's own gradients:
 * weight rows from the (straight-through) weight gradients; the inputs of the patch embedding,
 * block 0's qkv and block 0's fc2 from their input gradients. Scales are set so nothing saturates,
 * where the straight-through gradient equals the gradient before it. */
static void test_model_gradients(void)
{
    enum { B = 4 };
    gsq_error err = {0};
    float x[B * 3 * 16 * 16];
    int labels[B] = {0, 1, 2, 3};
    gsq_rng rng;
    gsq_rng_seed(&rng, 3, 0);
    fill_normal(x, B * 3 * 16 * 16, &rng, 1.0f);
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 4);
    CHECK(gsq_model_quant_enable_lsq(m, 1, &err) == GSQ_ERR_ARG, "LSQ without quantizers");
    gsq_model_quant_enable(m, GSQ_QMODE_INT4, GSQ_CALIB_MAX, &err);
    CHECK(gsq_model_quant_enable_lsq(m, 0, &err) == GSQ_ERR_ARG, "a zero learning-rate factor");
    CHECK(gsq_model_quant_enable_lsq(m, 1, &err) == GSQ_OK, "%s", err.msg);
    gsq_model_quant_observe_begin(m, 1 << 16, &err);
    gsq_model_forward(m, x, B, NULL, &err);
    CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 0, &err) == GSQ_OK, "%s", err.msg);
    struct gsq_model_quant *q = m->quant;
    for (int s = 0; s < q->num_linears; s++)
        if (q->linears[s].quantized) gsq_model_quant_set_act_scale(m, s, 2 * *q->linears[s].a_scale, &err);
    m->retain_grads = 1; /* the input gradients are read below */
    gsq_model_forward(m, x, B, NULL, &err);
    gsq_model_loss(m, &(gsq_truth){.classes = labels}, 0, NULL, &err);
    gsq_model_zero_grad(m, &err);
    CHECK(gsq_model_backward(m, &err) == GSQ_OK, "%s", err.msg);
    /* the learned scales are the model's second block: named tensors, learned as log s */
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    CHECK(gsq_model_blocks(m, blocks) == 2 && blocks[1].log_domain && blocks[1].n == gsq_model_quant_lsq_size(m) &&
              blocks[1].tensors[0].numel == 1 && !strcmp(blocks[1].tensors[0].name, "quant.patch_embed.proj.input_scale") &&
              !strcmp(blocks[1].tensors[1].name, "quant.patch_embed.proj.weight_scale") &&
              blocks[1].values[blocks[1].tensors[1].offset] == q->linears[0].w_scales[0],
          "LSQ's block: %d tensors, %s", blocks[1].num_tensors, blocks[1].tensors[0].name);
    const float *lg = blocks[1].grads; /* ∂L/∂log s = s·∂L/∂s */
    size_t saturated = 0, checked = 0, nonzero = 0;
    double worst = 0;
    for (int s = 0; s < q->num_linears; s++) {
        const gsq_qlinear *ql = &q->linears[s];
        if (!ql->quantized) continue;
        double g = 1.0 / sqrt((double)ql->cols * 7);
        for (int r = 0; r < ql->rows; r++) {
            size_t o = ql->w_offset + (size_t)r * ql->cols;
            double want = ql->w_scales[r] * expected_grad(m->grads + o, m->params + o, (size_t)ql->cols,
                                                            ql->w_scales[r], 7, g, &saturated);
            double got = lg[ql->scale_index + 1 + (size_t)r];
            worst = fmax(worst, fabs(got - want) / (fabs(want) + 1e-7));
            nonzero += got != 0.0;
            checked++;
        }
    }
    CHECK(worst < 1e-4 && nonzero > checked * 9 / 10, "weight scales: worst relative error %g, %zu of %zu non-zero",
          worst, nonzero, checked);
    size_t T = 17, D = 24, H = 48, P = 16 * 48;
    /* the linears' inputs and their gradients (the patch embedding's only LSQ computes) */
    const char *linears[3] = {"patch_embed.proj", "blocks.0.attn.qkv", "blocks.0.mlp.fc2"};
    const float *inputs[3] = {gsq_model_output(m, "patches"), gsq_model_output(m, "blocks.0.norm1"),
                              gsq_model_output(m, "blocks.0.mlp.act")};
    const float *grads[3] = {q->lsq->dx, gsq_model_output_grad(m, "blocks.0.norm1"),
                             gsq_model_output_grad(m, "blocks.0.mlp.act")};
    size_t sizes[3] = {B * P, B * T * D, B * T * H};
    for (int k = 0; k < 3; k++) {
        int lins[1] = {gsq_graph_find_linear(m->graph, linears[k])};
        CHECK(lins[0] >= 0 && inputs[k] && grads[k], "%s: its input or gradient is missing", linears[k]);
        const gsq_qlinear *ql = &q->linears[lins[0]];
        double g = 1.0 / sqrt((double)ql->in_per_sample * 7);
        double want = *ql->a_scale * expected_grad(grads[k], inputs[k], sizes[k], *ql->a_scale, 7, g, &saturated);
        double got = lg[ql->scale_index];
        CHECK(fabs(got - want) < 1e-4 * fabs(want) && want != 0, "%s's input scale: %g, want %g", linears[k], got,
              want);
    }
    CHECK(saturated == 0, "%zu values saturated: the check above needs none", saturated);
    gsq_model_zero_grad(m, &err);
    size_t left = 0;
    for (size_t i = 0; i < gsq_model_quant_lsq_size(m); i++) left += lg[i] != 0.0f;
    CHECK(left == 0, "zero_grad left %zu scale gradients", left);
    gsq_model_free(m);
}

/* A few LSQ steps (two micro-batches each) of INT4 QAT under a 2:4 mask; the learned scales. */
static gsq_model *lsq_run(gsq_dataset *train, int threads, float **init_scales)
{
    omp_set_num_threads(threads);
    gsq_error err = {0};
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = 16;
    c.accum_steps = 2;
    c.epochs = 2;
    c.seed = 3;
    c.optim.lr = 1e-2f;
    c.optim.weight_decay = 0;
    c.augment = 0;
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 8);
    gsq_sparse_plan plan;
    gsq_sparse_plan_magnitude(&plan, m, GSQ_SPARSE_2_4, 0, &err);
    gsq_sparse_apply(&plan, m->params);
    c.frozen_zero = plan.mask;
    gsq_model_quant_enable(m, GSQ_QMODE_INT4, GSQ_CALIB_MAX, &err);
    gsq_model_quant_enable_lsq(m, 1, &err);
    gsq_model_quant_observe_begin(m, 8192, &err);
    gsq_eval_result ev;
    gsq_evaluate(m, train, &c.transform, 32, 1, NULL, &ev, &err);
    CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_MSE, 0, &err) == GSQ_OK, "%s", err.msg);
    gsq_evaluate(m, train, &c.transform, 32, 1, NULL, &ev, &err); /* the first quantized forward sets the weight scales */
    const struct gsq_model_quant *q = m->quant;
    *init_scales = malloc(q->num_scales * sizeof(float));
    memcpy(*init_scales, q->scales, q->num_scales * sizeof(float));
    gsq_trainer t;
    gsq_train_result r;
    CHECK(gsq_trainer_init(&t, m, &c, train->size, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_trainer_run(&t, train, &c, &r, &err) == GSQ_OK, "%s", err.msg);
    CHECK(t.state.step == 4 && t.opt.num_blocks == 2 && t.opt.n[1] == q->num_scales,
          "%ld optimizer steps, %d blocks", t.state.step, t.opt.num_blocks);
    m = t.model;
    t.model = NULL;
    gsq_trainer_free(&t);
    gsq_sparse_plan_free(&plan);
    omp_set_num_threads(2);
    return m;
}

static void test_lsq_steps(void)
{
    gsq_error err = {0};
    gsq_dataset *train = toy_dataset(64, 0);
    float *init = NULL, *init1 = NULL;
    gsq_model *m = lsq_run(train, 2, &init), *m1 = lsq_run(train, 1, &init1);
    const struct gsq_model_quant *q = m->quant;
    size_t moved = 0, bad = 0, pruned = 0, nonzero_codes = 0, differ = 0;
    for (int s = 0; s < q->num_linears; s++) {
        const gsq_qlinear *ql = &q->linears[s], *ql1 = &m1->quant->linears[s];
        if (!ql->quantized) continue;
        moved += *ql->a_scale != init[ql->scale_index];
        bad += !(*ql->a_scale > 0 && isfinite(*ql->a_scale));
        differ += memcmp(ql->a_scale, ql1->a_scale, 4) != 0;
        differ += memcmp(ql->w_scales, ql1->w_scales, (size_t)ql->rows * 4) != 0;
        for (int r = 0; r < ql->rows; r++) {
            moved += ql->w_scales[r] != init[ql->scale_index + 1 + (size_t)r];
            bad += !(ql->w_scales[r] > 0 && isfinite(ql->w_scales[r]));
        }
        size_t nw = (size_t)ql->rows * ql->cols;
        int8_t *codes = malloc(nw);
        float *scales = malloc((size_t)ql->rows * 4);
        CHECK(gsq_model_quant_weight_codes(m, s, codes, scales, &err) == GSQ_OK, "%s", err.msg);
        CHECK(memcmp(scales, ql->w_scales, (size_t)ql->rows * 4) == 0, "ql %d: codes use other scales", s);
        for (size_t i = 0; i < nw; i++)
            if (m->params[ql->w_offset + i] == 0.0f) pruned++, nonzero_codes += codes[i] != 0;
        free(codes);
        free(scales);
    }
    size_t total = q->num_scales;
    CHECK(moved > total * 9 / 10 && bad == 0, "%zu of %zu scales moved, %zu not positive", moved, total, bad);
    CHECK(pruned >= total && nonzero_codes == 0, "%zu of %zu pruned weights got non-zero codes", nonzero_codes, pruned);
    CHECK(differ == 0, "%zu linears learned other scales with 1 thread", differ);
    printf("LSQ: %zu of %zu scales moved in 4 steps; %zu pruned weights code to 0\n", moved, total, pruned);

    /* the compressed file stores the learned scales: its model reproduces the logits */
    enum { B = 4 };
    float x[B * 3 * 16 * 16], ref[B * 4];
    gsq_rng rng;
    gsq_rng_seed(&rng, 12, 0);
    fill_normal(x, B * 3 * 16 * 16, &rng, 1.0f);
    const float *logits;
    gsq_model_forward(m, x, B, &logits, &err);
    memcpy(ref, logits, sizeof ref);
    char dir[] = "/tmp/gsq_test_lsq_XXXXXX", path[64];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    gsq_model *r = NULL;
    CHECK(gsq_compressed_save(m, GSQ_SPARSE_2_4, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_compressed_load(&r, path, NULL, &err) == GSQ_OK, "%s", err.msg);
    if (r) {
        gsq_model_forward(r, x, B, &logits, &err);
        double e = max_rel_err(logits, ref, B * 4);
        CHECK(e <= 1e-5, "loaded logits differ by %g of the largest", e);
        CHECK(gsq_model_quant_act_scale(r, 5) == *q->linears[5].a_scale &&
                  !memcmp(gsq_model_quant_weight_scales(r, 5), q->linears[5].w_scales, (size_t)q->linears[5].rows * 4),
              "the file's scales are not the learned ones");
    }
    unlink(path);
    rmdir(dir);
    gsq_model_free(r);
    gsq_model_free(m);
    gsq_model_free(m1);
    free(init);
    free(init1);
    gsq_dataset_free(train);
}

int main(void)
{
    test_quantizer_gradient();
    test_model_gradients();
    test_lsq_steps();
    return test_finish("test_lsq");
}
