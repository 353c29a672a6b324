/* Parity with timm/PyTorch: for each committed fixture (tests/fixtures, made by
 * scripts/make_fixtures.py; ViT/DeiT and Swin) load the timm state_dict, run forward, loss and
 * backward, and compare logits (max relative error ≤ 1e-4), loss and every parameter gradient
 * (normalized L2 ≤ 1e-3) with the float64 PyTorch reference. Also checks architecture inference
 * against the fixture's recorded configuration, and that two runs give the same bits. */
#include <stdlib.h>
#include <string.h>

#include "gpusq/safetensors.h"
#include "gpusq/swin.h"
#include "gpusq/vit.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static const char *fixtures[] = {"vit_token", "deit_distilled", "vit_avg_nobias", "vit_nocls_gray",
                                  "vit_remainder_b1", "swin_pad", "swin_noshift", "swin_odd_b1"};

static int meta_i(const gsq_st_file *f, const char *key)
{
    const char *v = gsq_st_meta_get(f, key);
    return v ? atoi(v) : -1;
}

static float *read_tensor(const gsq_st_file *f, const char *name, size_t *n)
{
    const gsq_st_tensor *t = gsq_st_find(f, name);
    if (!t) return NULL;
    float *x = malloc((t->numel ? t->numel : 1) * sizeof(float));
    gsq_error err;
    if (gsq_st_read_f32(f, t, x, t->numel, &err) != GSQ_OK) {
        free(x);
        return NULL;
    }
    if (n) *n = t->numel;
    return x;
}

/* A ViT fixture's model, its configuration inferred from the timm file alone (plus the head count
 * it cannot show) and checked against the one recorded. */
static gsq_model *load_vit(const char *name, const gsq_st_file *exp, const char *model_path)
{
    gsq_error err = {0};
    /* The configuration recorded by the fixture script. */
    const char *pool = gsq_st_meta_get(exp, "pool");
    gsq_vit_config want = {
        .img_size = meta_i(exp, "img_size"), .patch_size = meta_i(exp, "patch_size"),
        .in_chans = meta_i(exp, "in_chans"), .num_classes = meta_i(exp, "num_classes"),
        .embed_dim = meta_i(exp, "embed_dim"), .depth = meta_i(exp, "depth"),
        .num_heads = meta_i(exp, "num_heads"), .mlp_hidden = meta_i(exp, "mlp_hidden"),
        .qkv_bias = meta_i(exp, "qkv_bias"), .class_token = meta_i(exp, "class_token"),
        .distilled = meta_i(exp, "distilled"),
        .pool = pool && strcmp(pool, "avg") == 0 ? GSQ_POOL_AVG : GSQ_POOL_TOKEN,
        .ln_eps = (float)atof(gsq_st_meta_get(exp, "ln_eps") ? gsq_st_meta_get(exp, "ln_eps") : "0"),
    };

    /* Architecture inference from the timm file alone (plus the head count it cannot show). */
    gsq_st_file *mf = NULL;
    gsq_vit_config inferred;
    CHECK(gsq_st_open(&mf, model_path, &err) == GSQ_OK, "%s: %s", name, err.msg);
    if (mf) {
        CHECK(gsq_vit_infer_config(mf, want.num_heads, &inferred, &err) == GSQ_OK, "%s: %s", name, err.msg);
        /* A remainder that the patch conv drops is invisible in the weights: the inferred side
         * is grid × patch, which covers the same patches. */
        CHECK(inferred.img_size == want.img_size / want.patch_size * want.patch_size,
              "%s: inferred img_size %d for a %d-pixel input", name, inferred.img_size, want.img_size);
        inferred.img_size = want.img_size;
        CHECK(memcmp(&inferred, &want, sizeof want) == 0, "%s: inferred configuration differs from the fixture's", name);
        gsq_st_close(mf);
    }

    gsq_model *m = NULL;
    CHECK(gsq_vit_load(&m, model_path, &want, &err) == GSQ_OK, "%s: %s", name, err.msg);
    return m;
}

static int meta_list(const gsq_st_file *f, const char *key, int *out)
{
    const char *v = gsq_st_meta_get(f, key);
    int n = 0;
    for (char *end; v && *v && n < GSQ_SWIN_MAX_STAGES; v = *end ? end + 1 : end) out[n++] = (int)strtol(v, &end, 10);
    return n;
}

/* A Swin fixture's model: the configuration inferred from the file given the input size (which the
 * weights do not show), checked against the one recorded; also through gsq_model_load, which
 * infers timm's convention and must refuse what the tables contradict or load the same model. */
static gsq_model *load_swin(const char *name, const gsq_st_file *exp, const char *model_path)
{
    gsq_error err = {0};
    gsq_swin_config want = {.img_size = meta_i(exp, "img_size"), .patch_size = meta_i(exp, "patch_size"),
                            .in_chans = meta_i(exp, "in_chans"), .num_classes = meta_i(exp, "num_classes"),
                            .window = meta_i(exp, "window"), .qkv_bias = 1, .ln_eps = 1e-5f};
    want.num_stages = meta_list(exp, "depths", want.depths);
    meta_list(exp, "dims", want.dims);
    meta_list(exp, "num_heads", want.num_heads);
    meta_list(exp, "mlp_hidden", want.mlp_hidden);
    gsq_st_file *mf = NULL;
    gsq_swin_config inferred;
    gsq_model *m = NULL;
    CHECK(gsq_st_open(&mf, model_path, &err) == GSQ_OK, "%s: %s", name, err.msg);
    if (!mf) return NULL;
    CHECK(gsq_file_arch(mf) == GSQ_ARCH_SWIN, "%s: not recognised as a Swin", name);
    CHECK(gsq_swin_infer_config(mf, want.img_size, &inferred, &err) == GSQ_OK, "%s: %s", name, err.msg);
    CHECK(memcmp(&inferred, &want, sizeof want) == 0, "%s: inferred configuration differs from the fixture's", name);
    /* without the input size, timm's convention (the last grid is one window) gives a size whose
     * windows fit the tables, or a refusal naming the input size */
    gsq_status st = gsq_swin_infer_config(mf, 0, &inferred, &err);
    if (st == GSQ_OK) {
        CHECK(gsq_model_load(&m, model_path, &err) == GSQ_OK, "%s: %s", name, err.msg);
        CHECK(m && gsq_model_input_size(m) == inferred.img_size, "%s: loaded at another size", name);
        gsq_model_free(m);
    } else {
        CHECK(strstr(err.msg, "input size") != NULL, "%s: without the input size: %s", name, err.msg);
    }
    m = NULL;
    CHECK(gsq_swin_describe(&m, &want, &err) == GSQ_OK && gsq_model_read(m, mf, NULL, &err) == GSQ_OK, "%s: %s", name,
          err.msg);
    gsq_st_close(mf);
    return m;
}

static void check_fixture(const char *name)
{
    char model_path[512], expected_path[512];
    snprintf(model_path, sizeof model_path, "%s/tests/fixtures/%s.model.safetensors", GSQ_SOURCE_DIR, name);
    snprintf(expected_path, sizeof expected_path, "%s/tests/fixtures/%s.expected.safetensors", GSQ_SOURCE_DIR, name);
    gsq_error err = {0};
    gsq_st_file *exp = NULL;
    CHECK(gsq_st_open(&exp, expected_path, &err) == GSQ_OK, "%s: %s", name, err.msg);
    if (!exp) return;

    float smoothing = (float)atof(gsq_st_meta_get(exp, "label_smoothing") ? gsq_st_meta_get(exp, "label_smoothing") : "0");
    const char *arch = gsq_st_meta_get(exp, "arch");
    gsq_model *m = arch && strcmp(arch, "swin") == 0 ? load_swin(name, exp, model_path) : load_vit(name, exp, model_path);
    size_t n_img = 0, n_tgt = 0, n_logits = 0;
    float *images = read_tensor(exp, "input.images", &n_img);
    float *targets_f = read_tensor(exp, "input.targets", &n_tgt);
    float *logits_ref = read_tensor(exp, "output.logits", &n_logits);
    float *loss_ref = read_tensor(exp, "output.loss", NULL);
    CHECK(images && targets_f && logits_ref && loss_ref, "%s: expected tensors missing", name);
    if (!m || !images || !targets_f || !logits_ref || !loss_ref) goto done;
    int B = (int)n_tgt;
    int *targets = malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) targets[b] = (int)targets_f[b];

    const float *logits = NULL;
    float loss = 0;
    CHECK(gsq_model_forward(m, images, B, &logits, &err) == GSQ_OK, "%s: %s", name, err.msg);
    double lerr = max_rel_err(logits, logits_ref, n_logits);
    CHECK(lerr <= 1e-4, "%s: logits max relative error %.3g > 1e-4", name, lerr);
    CHECK(gsq_model_loss(m, &(gsq_truth){.classes = targets}, smoothing, &loss, &err) == GSQ_OK, "%s: %s", name, err.msg);
    CHECK(fabs(loss - loss_ref[0]) <= 1e-5 * fabs(loss_ref[0]) + 1e-6, "%s: loss %.8f vs timm %.8f", name, loss, loss_ref[0]);
    CHECK(gsq_model_zero_grad(m, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_backward(m, &err) == GSQ_OK, "%s: %s", name, err.msg);

    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        char gname[GSQ_NAME_MAX + 8];
        snprintf(gname, sizeof gname, "grad.%s", p->name);
        size_t n = 0;
        float *gref = read_tensor(exp, gname, &n);
        CHECK(gref && n == p->numel, "%s: reference gradient '%s' missing or mis-sized", name, gname);
        if (!gref) continue;
        double e = norm_l2_err(m->grads + p->offset, gref, n);
        CHECK(e <= 1e-3, "%s: gradient of %s: normalized L2 error %.3g > 1e-3", name, p->name, e);
        if (e > worst) {
            worst = e;
            worst_name = p->name;
        }
        free(gref);
    }
    printf("%-16s logits max rel err %.2e, loss %.6f (timm %.6f), worst gradient %.2e (%s)\n", name,
           lerr, loss, loss_ref[0], worst, worst_name);

    /* Determinism: a second forward/backward gives the same bits. */
    float *logits_copy = malloc(n_logits * sizeof(float));
    float *grads_copy = malloc(m->num_params * sizeof(float));
    memcpy(logits_copy, logits, n_logits * sizeof(float));
    memcpy(grads_copy, m->grads, m->num_params * sizeof(float));
    gsq_model_forward(m, images, B, &logits, &err);
    gsq_model_loss(m, &(gsq_truth){.classes = targets}, smoothing, NULL, &err);
    gsq_model_zero_grad(m, &err);
    gsq_model_backward(m, &err);
    CHECK(memcmp(logits_copy, logits, n_logits * sizeof(float)) == 0, "%s: logits differ between runs", name);
    CHECK(memcmp(grads_copy, m->grads, m->num_params * sizeof(float)) == 0, "%s: gradients differ between runs", name);
    free(logits_copy);
    free(grads_copy);
    free(targets);
done:
    free(images);
    free(targets_f);
    free(logits_ref);
    free(loss_ref);
    gsq_model_free(m);
    gsq_st_close(exp);
}

int main(void)
{
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) check_fixture(fixtures[i]);
    return test_finish("test_parity");
}
