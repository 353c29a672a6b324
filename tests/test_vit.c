/* The ViT model: named configurations (parameter counts as timm), configuration validation,
 * save/load round trips (F32 and F16), every load error (missing, extra, mis-shaped tensors,
 * uninferable heads, bad metadata), batch consistency and the API's error paths. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/half.h"
#include "gpusq/safetensors.h"
#include "gpusq/vit.h"
#include "test_util.h"
#include "models/model_state.h" /* white-box: the model's fields */

static char tmpdir[64];

static const gsq_vit_config tiny = {
    .img_size = 16, .patch_size = 4, .in_chans = 3, .num_classes = 5, .embed_dim = 24, .depth = 2,
    .num_heads = 3, .mlp_hidden = 48, .qkv_bias = 1, .class_token = 1, .distilled = 0,
    .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
};

static void test_named_configs(void)
{
    /* timm's parameter counts (timm.create_model(name).num_parameters) */
    struct { const char *name; size_t params; } want[] = {
        {"vit_tiny_patch16_224", 5717416}, {"vit_small_patch16_224", 22050664},
        {"vit_base_patch16_224", 86567656}, {"deit_tiny_patch16_224", 5717416},
        {"deit_small_patch16_224", 22050664}, {"deit_base_patch16_224", 86567656},
        {"deit_tiny_distilled_patch16_224", 5910800}, {"deit_small_distilled_patch16_224", 22436432},
        {"deit_base_distilled_patch16_224", 87338192},
        {"gpusq_demo", 208074}, /* not a timm model: 32×32, patch 4, dim 64, depth 4, 10 classes */
    };
    int listed = 0;
    for (const char *const *n = gsq_vit_config_names(); *n; n++) listed++;
    CHECK(listed == (int)(sizeof want / sizeof want[0]), "%d named configurations", listed);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        gsq_vit_config c;
        gsq_error err = {0};
        CHECK(gsq_vit_config_by_name(want[i].name, &c, &err) == GSQ_OK, "%s", err.msg);
        gsq_model *m = NULL;
        CHECK(gsq_vit_create(&m, &c, &err) == GSQ_OK, "%s", err.msg);
        if (m) CHECK(m->num_params == want[i].params, "%s: %zu parameters, timm has %zu", want[i].name, m->num_params, want[i].params);
        gsq_model_free(m);
    }
    gsq_vit_config c;
    gsq_error err = {0};
    CHECK(gsq_vit_config_by_name("resnet50", &c, &err) == GSQ_ERR_ARG && strstr(err.msg, "resnet50"), "%s", err.msg);
    /* deit_small: 4.6 GMACs per image, as published */
    gsq_vit_config_by_name("deit_small_patch16_224", &c, NULL);
    CHECK(fabs(gsq_vit_macs(&c) / 1e9 - 4.6) < 0.05, "deit_small MACs %.3g", gsq_vit_macs(&c));
}

static void test_validation(void)
{
    struct { const char *why; gsq_vit_config c; } bad[] = {
        {"heads do not divide dim", tiny},
        {"distilled without token pooling", tiny},
        {"token pooling without class token", tiny},
        {"patch larger than image", tiny},
        {"zero depth", tiny},
        {"eps zero", tiny},
    };
    bad[0].c.num_heads = 5;
    bad[1].c.distilled = 1, bad[1].c.pool = GSQ_POOL_AVG;
    bad[2].c.class_token = 0;
    bad[3].c.patch_size = 17;
    bad[4].c.depth = 0;
    bad[5].c.ln_eps = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gsq_error err = {0};
        gsq_model *m = NULL;
        CHECK(gsq_vit_create(&m, &bad[i].c, &err) != GSQ_OK && m == NULL, "%s accepted", bad[i].why);
        CHECK(strstr(err.msg, "configuration") != NULL, "%s: message '%s'", bad[i].why, err.msg);
    }
}

static void random_images(float *x, size_t n, uint64_t seed)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, seed, 3);
    fill_normal(x, n, &rng, 1.0f);
}

static gsq_model *make_model(const gsq_vit_config *c, uint64_t seed)
{
    gsq_model *m = NULL;
    gsq_vit_create(&m, c, NULL);
    gsq_model_init(m, seed);
    gsq_rng rng; /* larger weights than timm's init so outputs differ clearly between inputs */
    gsq_rng_seed(&rng, seed, 9);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] += 0.1f * gsq_rng_normal(&rng);
    return m;
}

static void test_round_trip(void)
{
    gsq_error err = {0};
    gsq_vit_config configs[3] = {tiny, tiny, tiny};
    configs[1].distilled = 1;
    configs[2].class_token = 0, configs[2].pool = GSQ_POOL_AVG, configs[2].qkv_bias = 0;
    for (int k = 0; k < 3; k++) {
        gsq_model *m = make_model(&configs[k], 11 + k);
        char path[128];
        snprintf(path, sizeof path, "%s/model%d.safetensors", tmpdir, k);
        CHECK(gsq_model_save(m, path, &err) == GSQ_OK, "%s", err.msg);
        gsq_model *r = NULL;
        CHECK(gsq_vit_load(&r, path, NULL, &err) == GSQ_OK, "config %d: %s", k, err.msg);
        if (r) {
            CHECK(memcmp(&r->vit, &m->vit, sizeof m->vit) == 0, "config %d: inferred configuration differs", k);
            CHECK(r->num_params == m->num_params && memcmp(r->params, m->params, m->num_params * 4) == 0,
                  "config %d: parameters differ after the round trip", k);
        }
        gsq_model_free(r);
        gsq_model_free(m);
    }
}

/* Writes the model's tensors as `dtype` with one tensor renamed, dropped, reshaped or added. */
typedef enum { EDIT_NONE, EDIT_DROP, EDIT_RESHAPE, EDIT_EXTRA, EDIT_NO_META } edit_kind;

static void write_edited(const gsq_model *m, const char *path, edit_kind edit, const char *target, gsq_dtype dtype)
{
    gsq_st_writer *w = NULL;
    gsq_st_writer_create(&w, NULL);
    uint16_t *halves = malloc(m->num_params * sizeof(uint16_t));
    for (size_t i = 0; i < m->num_params; i++) halves[i] = gsq_f32_to_f16(m->params[i]);
    for (int i = 0; i < m->num_tensors; i++) {
        const gsq_param *p = &m->tensors[i];
        int64_t shape[4];
        memcpy(shape, p->shape, sizeof shape);
        if (strcmp(p->name, target) == 0 && edit == EDIT_DROP) continue;
        int ndim = p->ndim;
        if (strcmp(p->name, target) == 0 && edit == EDIT_RESHAPE) {
            shape[0] = 1, shape[1] = (int64_t)p->numel, ndim = 2; /* same bytes, other shape */
        }
        const void *data = dtype == GSQ_DT_F16 ? (const void *)(halves + p->offset) : (const void *)(m->params + p->offset);
        gsq_st_writer_add(w, p->name, dtype, ndim, shape, data, NULL);
    }
    float extra[2] = {1, 2};
    if (edit == EDIT_EXTRA) gsq_st_writer_add(w, target, GSQ_DT_F32, 1, (int64_t[]){2}, extra, NULL);
    if (edit != EDIT_NO_META) gsq_st_writer_set_meta(w, "num_heads", "3", NULL);
    gsq_error err = {0};
    CHECK(gsq_st_writer_write(w, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    free(halves);
}

static void expect_load_error(const char *path, const gsq_vit_config *cfg, gsq_status code, const char *needle1,
                              const char *needle2)
{
    gsq_error err = {0};
    gsq_model *m = NULL;
    gsq_status st = gsq_vit_load(&m, path, cfg, &err);
    CHECK(st == code && m == NULL, "%s: status %s, want %s (%s)", path, gsq_status_name(st), gsq_status_name(code), err.msg);
    CHECK(strstr(err.msg, needle1) && strstr(err.msg, needle2), "message '%s' lacks '%s'/'%s'", err.msg, needle1, needle2);
    gsq_model_free(m);
}

static void test_load_errors(void)
{
    gsq_model *m = make_model(&tiny, 5);
    char path[128];
    snprintf(path, sizeof path, "%s/edited.safetensors", tmpdir);

    write_edited(m, path, EDIT_DROP, "blocks.1.mlp.fc2.bias", GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_MISSING, "blocks.1.mlp.fc2.bias", "edited.safetensors");
    write_edited(m, path, EDIT_DROP, "patch_embed.proj.weight", GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_MISSING, "patch_embed.proj.weight", "edited.safetensors");
    write_edited(m, path, EDIT_RESHAPE, "blocks.0.attn.proj.weight", GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_SHAPE, "blocks.0.attn.proj.weight", "[1, 576]");
    write_edited(m, path, EDIT_EXTRA, "blocks.0.ls1.gamma", GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_SHAPE, "blocks.0.ls1.gamma", "unexpected");

    /* a configuration that disagrees with the file */
    gsq_vit_config other = tiny;
    other.mlp_hidden = 96;
    write_edited(m, path, EDIT_NONE, "", GSQ_DT_F32);
    expect_load_error(path, &other, GSQ_ERR_SHAPE, "blocks.0.mlp.fc1.weight", "[96, 24]");
    other = tiny;
    other.depth = 3;
    expect_load_error(path, &other, GSQ_ERR_MISSING, "blocks.2.", "missing");

    /* head count not inferable: embed_dim 24 is no multiple of 64 and no metadata */
    write_edited(m, path, EDIT_NO_META, "", GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_SHAPE, "num_heads", "--heads");
    gsq_error err = {0};
    gsq_model *r = NULL;
    CHECK(gsq_vit_load(&r, path, &tiny, &err) == GSQ_OK, "explicit configuration: %s", err.msg);
    gsq_model_free(r);

    /* F16 weights load, converted to F32 (equal to the rounded values) */
    write_edited(m, path, EDIT_NONE, "", GSQ_DT_F16);
    r = NULL;
    CHECK(gsq_vit_load(&r, path, NULL, &err) == GSQ_OK, "f16 file: %s", err.msg);
    if (r) {
        int same = 1;
        for (size_t i = 0; i < m->num_params; i++)
            same &= r->params[i] == gsq_f16_to_f32(gsq_f32_to_f16(m->params[i]));
        CHECK(same, "f16 parameters were not converted exactly");
    }
    gsq_model_free(r);

    /* an extra tensor whose name is too long to list is still an error */
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    write_edited(m, path, EDIT_EXTRA, long_name, GSQ_DT_F32);
    expect_load_error(path, NULL, GSQ_ERR_SHAPE, "1 unexpected", "edited.safetensors");

    /* a small hostile file describing a huge model of empty tensors is rejected before any
     * parameter memory is allocated (it would be terabytes) */
    gsq_st_writer *w = NULL;
    gsq_st_writer_create(&w, NULL);
    float none[1];
    float *patch = calloc(16384, sizeof(float));
    CHECK(gsq_st_writer_add(w, "patch_embed.proj.weight", GSQ_DT_F32, 4, (int64_t[]){16384, 1, 1, 1}, patch, &err) == GSQ_OK,
          "%s", err.msg);
    gsq_st_writer_add(w, "blocks.0.mlp.fc1.weight", GSQ_DT_F32, 2, (int64_t[]){65536, 0}, none, NULL);
    gsq_st_writer_add(w, "head.weight", GSQ_DT_F32, 2, (int64_t[]){1 << 20, 0}, none, NULL);
    gsq_st_writer_add(w, "pos_embed", GSQ_DT_F32, 3, (int64_t[]){1, 65537, 0}, none, NULL);
    gsq_st_writer_add(w, "cls_token", GSQ_DT_F32, 3, (int64_t[]){1, 1, 0}, none, NULL);
    for (int l = 0; l < 256; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blocks.%d.norm1.weight", l);
        gsq_st_writer_add(w, nm, GSQ_DT_F32, 1, (int64_t[]){0}, none, NULL);
    }
    gsq_st_writer_set_meta(w, "num_heads", "256", NULL);
    CHECK(gsq_st_writer_write(w, path, &err) == GSQ_OK, "%s", err.msg);
    gsq_st_writer_free(w);
    free(patch);
    gsq_st_file *hf = NULL;
    gsq_vit_config hc;
    CHECK(gsq_st_open(&hf, path, &err) == GSQ_OK && gsq_vit_infer_config(hf, 0, &hc, &err) == GSQ_OK &&
              hc.depth == 256 && hc.embed_dim == 16384,
          "the hostile file should describe a valid huge architecture: %s", err.msg);
    gsq_st_close(hf);
    gsq_model *huge = NULL;
    gsq_status hs = gsq_vit_load(&huge, path, NULL, &err);
    CHECK(hs == GSQ_ERR_SHAPE && huge == NULL && strstr(err.msg, "shape"), "hostile huge model: %s (%s)",
          gsq_status_name(hs), err.msg);

    /* not a model at all, and not a file */
    expect_load_error("/nonexistent/model.safetensors", NULL, GSQ_ERR_IO, "/nonexistent/model.safetensors", "");
    gsq_model_free(m);
}

static void test_batch_consistency(void)
{
    gsq_vit_config c = tiny;
    c.distilled = 1;
    gsq_model *m = make_model(&c, 21);
    int B = 3, K = c.num_classes;
    size_t img = (size_t)c.in_chans * c.img_size * c.img_size;
    float *images = malloc(B * img * sizeof(float)), *batched = malloc((size_t)B * K * sizeof(float));
    random_images(images, B * img, 4);
    gsq_error err = {0};
    const float *logits;
    CHECK(gsq_model_forward(m, images, 1, &logits, &err) == GSQ_OK, "%s", err.msg); /* grow the arena later */
    CHECK(gsq_model_forward(m, images, B, &logits, &err) == GSQ_OK, "%s", err.msg);
    memcpy(batched, logits, (size_t)B * K * sizeof(float));
    double worst = 0, spread = 0;
    for (int b = 0; b < B; b++) {
        gsq_model_forward(m, images + b * img, 1, &logits, &err);
        double e = max_rel_err(logits, batched + b * K, (size_t)K);
        worst = e > worst ? e : worst;
        spread += fabs(batched[b * K] - batched[0]);
    }
    /* images in a batch are independent: only GEMM blocking may change rounding */
    CHECK(worst < 1e-5, "batched vs single-image logits differ by %.3g", worst);
    CHECK(spread > 1e-3, "logits do not depend on the image (spread %.3g)", spread);

    int targets[3] = {0, 4, 2}, bad[3] = {0, 5, 1};
    CHECK(gsq_model_forward(m, images, B, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_loss(m, &(gsq_truth){.classes = bad}, 0.0f, NULL, &err) == GSQ_ERR_ARG && strstr(err.msg, "target 5"), "%s", err.msg);
    CHECK(gsq_model_loss(m, &(gsq_truth){.classes = targets}, 1.5f, NULL, &err) == GSQ_ERR_ARG, "smoothing 1.5 accepted");
    float loss = 0;
    CHECK(gsq_model_loss(m, &(gsq_truth){.classes = targets}, 0.1f, &loss, &err) == GSQ_OK && loss > 0 && isfinite(loss), "loss %g", loss);
    CHECK(gsq_model_forward(m, images, 0, NULL, &err) == GSQ_ERR_ARG, "batch 0 accepted");
    free(images);
    free(batched);
    gsq_model_free(m);

    /* backward needs the loss of the current forward */
    gsq_model *mm = make_model(&tiny, 3);
    float *img4 = calloc((size_t)4 * tiny.in_chans * tiny.img_size * tiny.img_size, sizeof(float));
    int t4[4] = {0, 1, 2, 3};
    CHECK(gsq_model_forward(mm, img4, 4, NULL, &err) == GSQ_OK && gsq_model_backward(mm, &err) == GSQ_ERR_ARG,
          "backward without a loss accepted");
    CHECK(gsq_model_loss(mm, &(gsq_truth){.classes = t4}, 0.0f, NULL, &err) == GSQ_OK, "%s", err.msg);
    CHECK(gsq_model_forward(mm, img4, 2, NULL, &err) == GSQ_OK && gsq_model_backward(mm, &err) == GSQ_ERR_ARG,
          "backward used the loss of an earlier forward");
    /* a failed forward leaves no stale state behind */
    CHECK(gsq_model_forward(mm, img4, 1 << 30, NULL, &err) != GSQ_OK, "a batch of 2^30 was accepted");
    CHECK(gsq_model_loss(mm, &(gsq_truth){.classes = t4}, 0.0f, NULL, &err) == GSQ_ERR_ARG, "loss after a failed forward accepted");
    CHECK(gsq_model_forward(mm, img4, 4, NULL, &err) == GSQ_OK, "forward after a failed one: %s", err.msg);
    free(img4);
    gsq_model_free(mm);

    gsq_model *fresh = make_model(&tiny, 1);
    CHECK(gsq_model_backward(fresh, &err) == GSQ_ERR_ARG, "backward without forward accepted");
    CHECK(gsq_model_loss(fresh, &(gsq_truth){.classes = targets}, 0.0f, NULL, &err) == GSQ_ERR_ARG, "loss without forward accepted");
    gsq_model_free(fresh);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gsq_test_vit_XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_named_configs();
    test_validation();
    test_round_trip();
    test_load_errors();
    test_batch_consistency();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_finish("test_vit");
}
