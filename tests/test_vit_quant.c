/* Quantization-aware ViTs: after calibration every quantized GEMM sees inputs on its scale's
 * integer grid and weights equal to their per-row fake quantization (zeros, such as pruned
 * weights, stay exactly zero); INT8 stays close to float and INT4 further; the straight-through
 * backward trains (a toy task learnt under INT8 and INT4, pruned weights frozen at zero); and the
 * error cases. */
#include <math.h>
#include <string.h>

#include "models/vit_quant_state.h"
#include "gpusq/train.h"
#include "gpusq/graph.h"
#include "test_util.h"
#include "toy_dataset.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 4, .embed_dim = 24, .depth = 2,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

enum { B = 8 };

static void images(float *x, uint64_t seed)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 0);
    for (int i = 0; i < B * 3 * 16 * 16; i++) x[i] = gsq_rng_normal(&rng);
}

/* |a - b| / |b| over the logits */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static void test_grid_and_closeness(void)
{
    gsq_error err = {0};
    float x[B * 3 * 16 * 16], ref[B * 4], got[B * 4];
    images(x, 1);
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 3);
    /* zero every other weight of block 0's fc1, as a mask would */
    const gsq_param *fc1 = gsq_model_find_param(m, "blocks.0.mlp.fc1.weight");
    for (size_t j = 0; j < fc1->numel; j += 2) m->params[fc1->offset + j] = 0.0f;
    const float *logits;
    gsq_model_forward(m, x, B, &logits, &err);
    memcpy(ref, logits, sizeof ref);
    double diff[2];
    for (int mode = 0; mode < 2; mode++) {
        gsq_quant_mode qm = mode ? GSQ_QMODE_INT4 : GSQ_QMODE_INT8;
        int qmax = mode ? 7 : 127;
        CHECK(gsq_model_quant_enable(m, qm, GSQ_CALIB_MAX, &err) == GSQ_OK, "%s", err.msg);
        CHECK(gsq_model_forward(m, x, B, &logits, &err) == GSQ_OK && memcmp(logits, ref, sizeof ref) == 0,
              "enabled but not calibrated must stay float");
        CHECK(gsq_model_quant_observe_begin(m, 4096, &err) == GSQ_OK, "%s", err.msg);
        gsq_model_forward(m, x, B, NULL, &err);
        CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 0, &err) == GSQ_OK && gsq_model_quant_active(m), "%s", err.msg);
        CHECK(gsq_model_forward(m, x, B, &logits, &err) == GSQ_OK, "%s", err.msg);
        memcpy(got, logits, sizeof got);
        diff[mode] = rel_diff(got, ref, B * 4);
        const struct gsq_model_quant *q = m->quant;
        CHECK(q->num_linears == 10 && gsq_graph_compressed_linears(m->graph) == 9,
              "the patch embedding, 4 linears per block and the head: got %d linears", q->num_linears);
        for (int s = 0; s < q->num_linears; s++) {
            const gsq_qlinear *ql = &q->linears[s];
            CHECK(ql->quantized == m->graph->linears[s].compressed, "%s: quantized %d", m->graph->linears[s].name,
                  ql->quantized);
            if (!ql->quantized) continue;
            size_t n = (size_t)B * ql->in_per_sample, off = 0;
            for (size_t i = 0; i < n; i++) {
                float c = ql->xq[i] / *ql->a_scale;
                off += fabsf(c - rintf(c)) > 1e-3f || fabsf(c) > (float)qmax + 1e-3f;
            }
            CHECK(off == 0, "%s: %zu inputs off the grid", m->graph->linears[s].name, off);
            size_t nw = (size_t)ql->rows * (size_t)ql->cols, bad = 0;
            float *want = malloc(nw * sizeof(float)), scales[256];
            const float *w = m->params + ql->w_offset;
            gsq_weight_scales(scales, w, ql->rows, ql->cols, qmax, GSQ_CALIB_MAX, &err);
            gsq_fake_quant_rows(want, w, ql->rows, ql->cols, scales, qmax);
            for (size_t i = 0; i < nw; i++) bad += want[i] != ql->wq[i] || (w[i] == 0.0f && ql->wq[i] != 0.0f);
            CHECK(bad == 0, "%s: %zu weights differ from their fake quantization",
                  m->graph->linears[s].name, bad);
            free(want);
        }
    }
    /* INT8 with the attention matmuls quantized too: Q, K, V on their grids, probabilities on 1/127's */
    CHECK(gsq_model_quant_enable(m, GSQ_QMODE_INT8, GSQ_CALIB_MAX, &err) == GSQ_OK &&
              gsq_model_quant_enable_attention(m, &err) == GSQ_OK && gsq_model_quant_attention_scales(m, 0),
          "%s", err.msg);
    gsq_model_quant_observe_begin(m, 4096, &err);
    gsq_model_forward(m, x, B, NULL, &err);
    CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 0, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_quant_enable_attention(m, &err) == GSQ_ERR_ARG, "attention enabled after calibration");
    gsq_model_forward(m, x, B, &logits, &err);
    double attn_diff = rel_diff(logits, ref, B * 4);
    const struct gsq_model_quant *q = m->quant;
    size_t T = 17, D = 24, off = 0;
    for (int l = 0; l < 2; l++) {
        const gsq_qattn *a = &q->attn[l];
        for (size_t r = 0; r < B * T; r++)
            for (int k = 0; k < 3; k++)
                for (size_t i = 0; i < D; i++) {
                    float c = a->qkv_q[r * 3 * D + k * D + i] / a->qkv_scale[k];
                    off += fabsf(c - rintf(c)) > 1e-3f || fabsf(c) > 127.001f;
                }
        for (size_t i = 0; i < (size_t)B * 3 * T * T; i++) {
            float c = a->att_q[i] * 127.0f;
            off += fabsf(c - rintf(c)) > 1e-3f || c < -1e-3f || c > 127.001f;
        }
    }
    CHECK(off == 0, "%zu attention values off their grids", off);
    CHECK(attn_diff > diff[0] && attn_diff < 0.05, "INT8 with attention: %.4f from float (GEMMs only %.4f)", attn_diff,
          diff[0]);
    printf("logits vs float: INT8 with the attention matmuls quantized %.4f\n", attn_diff);
    CHECK(diff[0] > 0 && diff[0] < 0.05, "INT8 logits %.4f from float", diff[0]);
    CHECK(diff[1] > diff[0], "INT4 (%.4f) should be further from float than INT8 (%.4f)", diff[1], diff[0]);
    printf("logits vs float: INT8 %.4f, INT4 %.4f relative\n", diff[0], diff[1]);
    gsq_model_quant_disable(m);
    gsq_model_forward(m, x, B, &logits, &err);
    CHECK(memcmp(logits, ref, sizeof ref) == 0, "disabled must be float again");

    CHECK(gsq_model_quant_observe_begin(m, 16, &err) == GSQ_ERR_ARG, "observing without quantizers");
    CHECK(gsq_model_quant_enable(m, GSQ_QMODE_INT8, GSQ_CALIB_ENTROPY, &err) == GSQ_ERR_ARG, "entropy for weights");
    gsq_model_quant_enable(m, GSQ_QMODE_INT8, GSQ_CALIB_MAX, &err);
    CHECK(gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 0, &err) == GSQ_ERR_ARG, "ending what never began");
    gsq_model_free(m); /* frees the quantizers too */
}

/* QAT of the toy task from a briefly trained float model, with half of the block weights frozen
 * at zero: accuracy holds under INT8 and INT4 and the frozen weights stay zero. */
static void test_qat_trains(void)
{
    gsq_dataset *train = toy_dataset(256, 0), *val = toy_dataset(64, 0);
    gsq_train_config c;
    gsq_train_defaults(&c, 16);
    c.batch_size = 32;
    c.epochs = 30;
    c.seed = 11;
    c.optim.lr = 5e-3f;
    c.label_smoothing = 0.0f;
    c.transform.scale_min = 0.8f;
    c.transform.hflip = 0.0f;
    c.val = val;
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_vit_create(&m, &tiny, NULL);
    gsq_model_init(m, 7);
    gsq_trainer t;
    gsq_train_result r;
    CHECK(gsq_trainer_init(&t, m, &c, train->size, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_trainer_run(&t, train, &c, &r, &err) == GSQ_OK, "%s", err.msg);
    double dense = r.eval.top1;
    float *start = malloc(t.model->num_params * sizeof(float));
    uint8_t *keep = malloc(t.model->num_params);
    memset(keep, 1, t.model->num_params);
    for (int i = 0; i < t.model->num_tensors; i++) {
        const gsq_param *p = &t.model->tensors[i];
        if (strncmp(p->name, "blocks.", 7) || p->ndim != 2) continue;
        /* a checkerboard, so that no input or output channel loses all its weights */
        size_t cols = p->numel / (size_t)p->shape[0];
        for (size_t j = 0; j < p->numel; j++)
            if ((j / cols + j % cols) % 2) keep[p->offset + j] = 0, t.model->params[p->offset + j] = 0.0f;
    }
    memcpy(start, t.model->params, t.model->num_params * sizeof(float));
    for (int mode = 0; mode < 2; mode++) {
        gsq_model *q = NULL;
        gsq_vit_create(&q, &tiny, NULL);
        memcpy(q->params, start, q->num_params * sizeof(float));
        gsq_model_quant_enable(q, mode ? GSQ_QMODE_INT4 : GSQ_QMODE_INT8, GSQ_CALIB_MAX, &err);
        if (mode) gsq_model_quant_enable_attention(q, &err); /* INT4 quantizes the attention matmuls too */
        gsq_model_quant_observe_begin(q, 8192, &err);
        gsq_eval_result ev;
        gsq_evaluate(q, train, &c.transform, 32, 1, NULL, &ev, &err); /* the observation pass */
        CHECK(gsq_model_quant_observe_end(q, GSQ_CALIB_PERCENTILE, 99.9f, &err) == GSQ_OK, "%s", err.msg);
        gsq_eval_result before;
        gsq_evaluate(q, val, &c.transform, 32, 1, NULL, &before, &err);
        gsq_train_config qc = c;
        qc.epochs = 10;
        qc.optim.lr = 1e-3f;
        qc.frozen_zero = keep;
        qc.optim.weight_decay = 0.0f; /* so only gradients move the weights */
        gsq_trainer qt;
        CHECK(gsq_trainer_init(&qt, q, &qc, train->size, &err) == GSQ_OK, "%s", err.msg);
        CHECK(gsq_trainer_run(&qt, train, &qc, &r, &err) == GSQ_OK, "%s", err.msg);
        size_t nonzero = 0;
        for (size_t i = 0; i < qt.model->num_params; i++) nonzero += !keep[i] && qt.model->params[i] != 0.0f;
        CHECK(nonzero == 0, "%zu frozen weights moved under QAT", nonzero);
        size_t moved = 0, free_w = 0; /* the straight-through gradient reaches every quantized weight */
        for (int s = 0; s < qt.model->quant->num_linears; s++) {
            const gsq_qlinear *ql = &qt.model->quant->linears[s];
            if (!ql->quantized) continue;
            for (size_t i = ql->w_offset; i < ql->w_offset + (size_t)ql->rows * ql->cols; i++) {
                free_w += keep[i];
                moved += keep[i] && qt.model->params[i] != start[i];
            }
        }
        CHECK(moved > free_w * 95 / 100, "only %zu of %zu quantized weights were trained", moved, free_w);
        const char *name = mode ? "INT4" : "INT8";
        CHECK(r.eval.top1 >= 0.9 * dense && r.eval.top1 > 0.8, "%s QAT: top-1 %.3f (float %.3f)", name, r.eval.top1,
              dense);
        CHECK(r.eval.loss < 0.8 * before.loss, "%s QAT did not lower the loss: %.4f → %.4f", name, before.loss,
              r.eval.loss);
        printf("toy task: float %.3f; %s with half the weights zero: %.3f (loss %.3f) → QAT %.3f (loss %.3f)\n", dense,
               name, before.top1, before.loss, r.eval.top1, r.eval.loss);
        gsq_trainer_free(&qt);
    }
    free(start);
    free(keep);
    gsq_trainer_free(&t);
    gsq_dataset_free(train);
    gsq_dataset_free(val);
}

int main(void)
{
    test_grid_and_closeness();
    test_qat_trains();
    return test_finish("test_vit_quant");
}
