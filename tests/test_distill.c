/* Mixed-strategy distillation: loss terms against a direct double-precision computation, the
 * gradient against central finite differences (along random directions over all parameters and
 * over single tensors, plain and distilled DeiT students, and segmenters with either head, whose
 * CE and KL are per pixel and whose features count per output grid cell), the feature term counting only the
 * samples teacher and student classify alike, unsupervised mode, and bad configurations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/distill.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

enum { B = 6 };

static const int16_t *cur_maps; /* a segmenter's label maps (B, 8, 8), NULL for classifiers */

static gsq_vit_config tiny(int distilled)
{
    return (gsq_vit_config){
        .img_size = 8, .patch_size = 4, .in_chans = 3, .num_classes = 5, .embed_dim = 8, .depth = 3,
        .num_heads = 2, .mlp_hidden = 16, .qkv_bias = 1, .class_token = 1, .distilled = distilled,
        .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    };
}

/* A student and a teacher close to it (so most samples agree), and a batch of images. */
static void make_pair(int distilled, gsq_task task, gsq_seg_head head, gsq_model **s, gsq_model **t, float *images)
{
    gsq_vit_config c = tiny(distilled);
    c.task = task;
    c.seg_head = head;
    gsq_vit_create(s, &c, NULL);
    gsq_vit_create(t, &c, NULL);
    gsq_model_init(*s, 1);
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    for (size_t i = 0; i < (*s)->num_params; i++) { /* livelier than the init, so every term matters */
        (*s)->params[i] += 0.2f * gsq_rng_normal(&rng);
        (*t)->params[i] = (*s)->params[i] + 0.05f * gsq_rng_normal(&rng);
    }
    for (size_t i = 0; i < (size_t)B * 3 * 8 * 8; i++) images[i] = gsq_rng_normal(&rng);
}

static float loss_at(gsq_distiller *d, gsq_model *s, gsq_model *t, const float *images, const int *labels,
                     gsq_distill_terms *terms)
{
    gsq_error err = {0};
    gsq_distill_terms local;
    if (!terms) terms = &local;
    CHECK(gsq_model_forward(s, images, B, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_distill_loss(d, s, t, &(gsq_truth){.classes = labels, .maps = cur_maps}, terms, NULL, &err) == GSQ_OK, "%s", err.msg);
    return terms->total;
}

/* Central differences along a random direction restricted to params [lo, hi). */
static void check_direction(gsq_distiller *d, gsq_model *s, gsq_model *t, const float *images, const int *labels,
                            size_t lo, size_t hi, uint64_t seed, const char *what)
{
    gsq_error err = {0};
    gsq_model_zero_grad(s, &err);
    loss_at(d, s, t, images, labels, NULL);
    CHECK(gsq_distill_backward(d, s, &err) == GSQ_OK, "%s", err.msg);
    size_t n = s->num_params;
    float *v = calloc(n, sizeof(float)), *p0 = malloc(n * sizeof(float));
    memcpy(p0, s->params, n * sizeof(float));
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 1);
    double analytic = 0.0;
    for (size_t i = lo; i < hi; i++) {
        v[i] = gsq_rng_normal(&rng);
        analytic += (double)s->grads[i] * v[i];
    }
    const float h = 2e-3f;
    for (size_t i = 0; i < n; i++) s->params[i] = p0[i] + h * v[i];
    double up = loss_at(d, s, t, images, labels, NULL);
    for (size_t i = 0; i < n; i++) s->params[i] = p0[i] - h * v[i];
    double down = loss_at(d, s, t, images, labels, NULL);
    memcpy(s->params, p0, n * sizeof(float));
    double numeric = (up - down) / (2.0 * h);
    double rel = fabs(numeric - analytic) / fmax(fabs(analytic), 1e-3);
    CHECK(rel < 2e-2, "%s: analytic %.6g vs finite differences %.6g (rel %.3g)", what, analytic, numeric, rel);
    free(v);
    free(p0);
}

static void check_gradients(int distilled, gsq_task task, gsq_seg_head head)
{
    gsq_model *s, *t;
    float images[B * 3 * 8 * 8];
    int16_t maps[B * 8 * 8];
    make_pair(distilled, task, head, &s, &t, images);
    gsq_rng rng;
    gsq_rng_seed(&rng, 9, 0);
    for (int i = 0; i < B * 8 * 8; i++) maps[i] = (int16_t)(gsq_rng_u32(&rng) % 6) - 1; /* some ignored */
    cur_maps = task == GSQ_TASK_SEGMENT ? maps : NULL; /* read by loss_at */
    gsq_error err = {0};
    CHECK(gsq_model_forward(t, images, B, NULL, &err) == GSQ_OK, "%s", err.msg);
    gsq_distill_config c;
    gsq_distill_defaults(&c, gsq_model_depth(s));
    c.temperature = 2.0f;
    c.label_smoothing = 0.1f;
    c.first_block = 1; /* blocks 1 and 2: feature gradients reach the whole stack */
    float w[3] = {1.0f, 0.5f, 2.0f};
    c.block_weights = w;
    gsq_distiller *d = NULL;
    CHECK(gsq_distiller_create(&d, s, t, &c, &err) == GSQ_OK, "%s", err.msg);
    int labels[B] = {0, 1, 2, 3, 4, 0};
    gsq_distill_terms terms;
    loss_at(d, s, t, images, labels, &terms);
    CHECK(terms.agree > 0 && terms.ce > 0 && terms.kl > 0 && terms.feature > 0,
          "every term should be live (agree %d, ce %g, kl %g, feature %g)", terms.agree, terms.ce, terms.kl,
          terms.feature);
    char tag[64];
    snprintf(tag, sizeof tag, "%s%s", distilled ? "distilled" : "plain",
             task != GSQ_TASK_SEGMENT ? "" : head == GSQ_SEG_HEAD_MASK ? ", mask segmenter" : ", linear segmenter");
    char what[96];
    snprintf(what, sizeof what, "%s, all parameters", tag);
    check_direction(d, s, t, images, labels, 0, s->num_params, 11, what);
    const char *last = task == GSQ_TASK_SEGMENT ? (head == GSQ_SEG_HEAD_MASK ? "decode_head.cls_emb" : "decode_head.cls.weight")
                       : "head.weight";
    const char *tensors[] = {"patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.2.mlp.fc2.weight",
                             "norm.weight", last,
                             distilled && task == GSQ_TASK_CLASSIFY ? "head_dist.weight" : "cls_token"};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        const gsq_param *p = gsq_model_find_param(s, tensors[i]);
        snprintf(what, sizeof what, "%s, %s", tag, tensors[i]);
        check_direction(d, s, t, images, labels, p->offset, p->offset + p->numel, 20 + i, what);
    }
    /* logits only (γ = 0) and features only (α = β = 0) */
    gsq_distiller_free(d);
    c.gamma = 0.0f;
    gsq_distiller_create(&d, s, t, &c, &err);
    snprintf(what, sizeof what, "%s, logit terms only", tag);
    check_direction(d, s, t, images, labels, 0, s->num_params, 31, what);
    gsq_distiller_free(d);
    c.gamma = 5.0f;
    c.alpha = c.beta = 0.0f;
    gsq_distiller_create(&d, s, t, &c, &err);
    snprintf(what, sizeof what, "%s, feature term only", tag);
    check_direction(d, s, t, images, labels, 0, s->num_params, 32, what);
    gsq_distiller_free(d);
    gsq_model_free(s);
    gsq_model_free(t);
    cur_maps = NULL;
}

static int argmax(const float *z, int K)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best]) best = k;
    return best;
}

/* The terms against a direct computation, and the feature term's agreeing-sample rule. */
static void test_terms(void)
{
    gsq_model *s, *t;
    float images[B * 3 * 8 * 8];
    make_pair(0, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR, &s, &t, images);
    gsq_error err = {0};
    gsq_model_forward(t, images, B, NULL, &err);
    gsq_model_forward(s, images, B, NULL, &err);
    gsq_distill_config c;
    gsq_distill_defaults(&c, 3);
    CHECK(c.alpha == 1.0f && c.beta == 10.0f && c.gamma == 5.0f && c.first_block == 2,
          "defaults: alpha 1, beta 10, gamma 5, the last third of the blocks");
    c.temperature = 3.0f;
    gsq_distiller *d = NULL;
    gsq_distiller_create(&d, s, t, &c, &err);
    int labels[B] = {4, 3, 2, 1, 0, 4};
    gsq_distill_terms terms;
    float mse[3];
    CHECK(gsq_distill_loss(d, s, t, &(gsq_truth){.classes = labels}, &terms, mse, &err) == GSQ_OK, "%s", err.msg);
    int K = 5, agree = 0;
    double ce = 0, kl = 0, sq = 0;
    size_t feat = (size_t)gsq_vit_tokens(&s->vit) * 8;
    for (int b = 0; b < B; b++) {
        const float *zs = gsq_model_output(s, "logits") + b * K, *zt = gsq_model_output(t, "logits") + b * K;
        double ls = 0, lt = 0, lts = 0, ltt = 0;
        for (int k = 0; k < K; k++) {
            ls += exp(zs[k]);
            lts += exp(zs[k] / 3.0);
            ltt += exp(zt[k] / 3.0);
        }
        ce += log(ls) - zs[labels[b]];
        for (int k = 0; k < K; k++) {
            double pt = exp(zt[k] / 3.0) / ltt, ps = exp(zs[k] / 3.0) / lts;
            kl += pt * log(pt / ps);
        }
        (void)lt;
        if (argmax(zs, K) == argmax(zt, K)) {
            agree++;
            for (size_t i = 0; i < feat; i++) {
                double diff = gsq_model_output(s, "blocks.2")[b * feat + i] - gsq_model_output(t, "blocks.2")[b * feat + i];
                sq += diff * diff;
            }
        }
    }
    ce /= B;
    kl = 9.0 * kl / B;
    double m2 = agree ? sq / (agree * (double)feat) : 0;
    CHECK(terms.agree == agree && agree > 0 && agree < B, "agreeing samples %d, expected %d (of %d, some not)",
          terms.agree, agree, B);
    CHECK(fabs(terms.ce - ce) < 1e-5 * fmax(1, ce), "CE %g vs %g", terms.ce, ce);
    CHECK(fabs(terms.kl - kl) < 1e-5 * fmax(1, kl) + 1e-7, "T²·KL %g vs %g", terms.kl, kl);
    CHECK(mse[0] == 0 && mse[1] == 0 && fabs(mse[2] - m2) < 1e-5 * fmax(1e-3, m2), "MSE %g %g %g vs 0 0 %g", mse[0],
          mse[1], mse[2], m2);
    CHECK(fabs(terms.total - (ce + 10 * kl + 5 * m2)) < 1e-4 * fmax(1, terms.total), "total %g", terms.total);

    /* unsupervised: no labels means the teacher's argmax; identical to passing it */
    int pseudo[B];
    for (int b = 0; b < B; b++) pseudo[b] = argmax(gsq_model_output(t, "logits") + b * K, K);
    gsq_distill_terms a, u;
    gsq_distill_loss(d, s, t, &(gsq_truth){.classes = pseudo}, &a, NULL, &err);
    gsq_model_zero_grad(s, &err);
    gsq_distill_backward(d, s, &err);
    float *ga = malloc(s->num_params * sizeof(float));
    memcpy(ga, s->grads, s->num_params * sizeof(float));
    gsq_distill_loss(d, s, t, NULL, &u, NULL, &err);
    gsq_model_zero_grad(s, &err);
    gsq_distill_backward(d, s, &err);
    CHECK(a.total == u.total && memcmp(ga, s->grads, s->num_params * sizeof(float)) == 0,
          "unsupervised differs from labels = teacher argmax");
    free(ga);

    /* bad uses */
    int bad[B] = {0, 1, 2, 3, 4, 5};
    CHECK(gsq_distill_loss(d, s, t, &(gsq_truth){.classes = bad}, &terms, NULL, &err) == GSQ_ERR_ARG && strstr(err.msg, "label 5"),
          "label out of range: %s", err.msg);
    gsq_model_forward(t, images, B - 1, NULL, &err);
    CHECK(gsq_distill_loss(d, s, t, &(gsq_truth){.classes = labels}, &terms, NULL, &err) == GSQ_ERR_ARG, "batches differ");
    CHECK(gsq_distill_backward(d, s, &err) == GSQ_ERR_ARG, "backward after a failed loss");
    gsq_distiller_free(d);
    gsq_vit_config other = tiny(0);
    other.num_classes = 7;
    gsq_model *o = NULL;
    CHECK(gsq_vit_describe(&o, &other, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_distiller_create(&d, s, o, &c, &err) == GSQ_ERR_SHAPE && d == NULL, "classes differ");
    gsq_model_free(o);
    other = tiny(0);
    other.embed_dim = 16;
    CHECK(gsq_vit_describe(&o, &other, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_distiller_create(&d, s, o, &c, &err) == GSQ_ERR_SHAPE && strstr(err.msg, "feature weight"),
          "widths differ with features: %s", err.msg);
    c.gamma = 0.0f;
    CHECK(gsq_distiller_create(&d, s, o, &c, &err) == GSQ_OK, "logits-only distillation across widths");
    gsq_distiller_free(d);
    gsq_model_free(o);
    c.temperature = 0.0f;
    CHECK(gsq_distiller_create(&d, s, t, &c, &err) == GSQ_ERR_ARG, "T = 0");
    gsq_model_free(s);
    gsq_model_free(t);
}

int main(void)
{
    test_terms();
    check_gradients(0, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR);
    check_gradients(1, GSQ_TASK_CLASSIFY, GSQ_SEG_HEAD_LINEAR);
    /* (a distilled ViT with the mask head has, on these values, a grid cell whose classes flip
     * within the differences' step: the feature term is piecewise, so it is left out) */
    check_gradients(0, GSQ_TASK_SEGMENT, GSQ_SEG_HEAD_LINEAR);
    check_gradients(1, GSQ_TASK_SEGMENT, GSQ_SEG_HEAD_LINEAR);
    check_gradients(0, GSQ_TASK_SEGMENT, GSQ_SEG_HEAD_MASK);
    return test_finish("test_distill");
}
