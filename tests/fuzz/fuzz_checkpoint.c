/* libFuzzer harness for the training-checkpoint reader (gsq_trainer_resume, which takes a path):
 * the input is written to a file in a temporary directory and resumed with a fixed tiny run
 * configuration. An error must name the file and leave the trainer empty; a resumed trainer must
 * hold a model of the run's input size, moments of the model's size and its step. A weight that
 * is NaN or infinite must make the writer refuse to save it; else, saved again and resumed from
 * that file, it must come back bit for bit, and one forward, loss, backward and AdamW step must
 * run on it. Built with -DGSQ_FUZZ_MAKE_SEEDS instead, it writes seed checkpoints of tiny models
 * (token and average pooling, a distilled DeiT, and two in quantization-aware training: INT4 with
 * quantized attention and learned scales, whose quantizers the checkpoint carries, and a Swin with
 * shifted windows) with the library's writer: fuzz_checkpoint_seeds DIR. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpusq/train.h"
#include "gpusq/swin.h"
#include "gpusq/vit_quant.h"

enum { IMG = 4, TRAIN_SIZE = 6 };

/* The run every seed was written by and every input is resumed with. */
static void run_config(gsq_train_config *c)
{
    gsq_train_defaults(c, IMG);
    c->batch_size = 2;
    c->epochs = 2;
    c->augment = 0;
}

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[200], in_path[256], again_path[256];

static void remove_files(void)
{
    unlink(in_path);
    unlink(again_path);
    rmdir(dir);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
}

/* Both trainers hold the same model, moments and state. */
static void check_same(const gsq_trainer *a, const gsq_trainer *b)
{
    const gsq_model *m = a->model, *r = b->model;
    if (gsq_model_arch(m) != gsq_model_arch(r) || gsq_model_input_size(m) != gsq_model_input_size(r) ||
        gsq_model_in_chans(m) != gsq_model_in_chans(r) || gsq_model_num_classes(m) != gsq_model_num_classes(r) ||
        gsq_model_num_tensors(m) != gsq_model_num_tensors(r))
        abort();
    for (int i = 0; i < gsq_model_num_tensors(m); i++) { /* the same table: the same architecture */
        const gsq_param *p = gsq_model_tensor(m, i), *q = gsq_model_tensor(r, i);
        if (strcmp(p->name, q->name) || p->numel != q->numel || p->offset != q->offset) abort();
    }
    size_t bytes = gsq_model_num_params(m) * sizeof(float);
    if (gsq_model_num_params(r) != gsq_model_num_params(m) || memcmp(gsq_model_params_const(r), gsq_model_params_const(m), bytes) != 0 ||
        b->opt.num_blocks != a->opt.num_blocks)
        abort();
    for (int k = 0; k < a->opt.num_blocks; k++)
        if (b->opt.n[k] != a->opt.n[k] || memcmp(b->opt.m[k], a->opt.m[k], a->opt.n[k] * sizeof(float)) != 0 ||
            memcmp(b->opt.v[k], a->opt.v[k], a->opt.n[k] * sizeof(float)) != 0)
            abort();
    if (b->state.step != a->state.step || b->state.epoch != a->state.epoch ||
        b->state.batch != a->state.batch || b->state.seed != a->state.seed ||
        b->opt.step != a->opt.step)
        abort();
    for (int k = 0; k < gsq_model_num_classes(m); k++) {
        char a_name[128], b_name[128];
        if (strcmp(gsq_model_class_name(m, k, a_name, sizeof a_name), gsq_model_class_name(r, k, b_name, sizeof b_name)))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) { /* in $TMPDIR (else /tmp): scripts/fuzz.sh points it at a RAM disk */
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%.150s/gsq-fuzz-ckpt.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(dir)) abort();
        snprintf(in_path, sizeof in_path, "%s/in.safetensors", dir);
        snprintf(again_path, sizeof again_path, "%s/again.safetensors", dir);
        atexit(remove_files);
    }
    write_file(in_path, data, size);
    gsq_train_config cfg;
    run_config(&cfg);
    gsq_trainer t;
    gsq_error err = {0};
    gsq_status st = gsq_trainer_resume(&t, in_path, &cfg, TRAIN_SIZE, &err);
    if (st != GSQ_OK) {
        if (t.model || t.opt.m[0] || err.code != st || !strstr(err.msg, in_path)) abort();
        return 0;
    }
    gsq_model *m = t.model;
    if (!m || !gsq_model_params(m) || gsq_model_input_size(m) != IMG || gsq_model_in_chans(m) != 3 ||
        t.opt.n[0] != gsq_model_num_params(m) || !t.opt.m[0] || !t.opt.v[0] || t.opt.step != t.state.step ||
        t.state.step < 0 || t.state.epoch < 0 || t.state.batch < 0 || t.state.seed != cfg.seed)
        abort();

    int finite = 1;
    for (size_t i = 0; i < gsq_model_num_params(m); i++) finite &= isfinite(gsq_model_params(m)[i]) != 0;
    gsq_status saved = gsq_trainer_save(&t, &cfg, again_path, &err);
    if (!finite) { /* the writer refuses non-finite weights, and the model stays untouched */
        if (saved != GSQ_ERR_NUMERIC || !strstr(err.msg, again_path)) abort();
        gsq_trainer_free(&t);
        return 0;
    }
    gsq_trainer again;
    if (saved != GSQ_OK || gsq_trainer_resume(&again, again_path, &cfg, TRAIN_SIZE, &err) != GSQ_OK)
        abort();
    check_same(&t, &again);
    gsq_trainer_free(&again);

    float images[3 * IMG * IMG];
    for (int i = 0; i < 3 * IMG * IMG; i++) images[i] = (float)(i % 7) * 0.25f - 0.75f;
    const float *logits = NULL;
    int target = 0;
    float loss;
    if (gsq_model_forward(m, images, 1, &logits, &err) != GSQ_OK || !logits ||
        gsq_model_loss(m, &(gsq_truth){.classes = &target}, cfg.label_smoothing, &loss, &err) != GSQ_OK ||
        gsq_model_backward(m, &err) != GSQ_OK)
        abort();
    gsq_param_block blocks[GSQ_MAX_BLOCKS];
    gsq_adamw_step(&t.opt, blocks, gsq_model_blocks(m, blocks), NULL);
    gsq_trainer_free(&t);
    return 0;
}

#else

/* Calibrated INT4 quantizers on m, with quantized attention and learned scales, from images. */
static gsq_status quantize(gsq_model *m, const float *images, gsq_error *err)
{
    gsq_status st = gsq_model_quant_enable(m, GSQ_QMODE_INT4, GSQ_CALIB_MAX, err);
    if (st == GSQ_OK) st = gsq_model_quant_enable_attention(m, err);
    if (st == GSQ_OK) st = gsq_model_quant_enable_lsq(m, 10.0f, err);
    if (st == GSQ_OK) st = gsq_model_quant_observe_begin(m, 64, err);
    if (st == GSQ_OK) st = gsq_model_forward(m, images, 2, NULL, err);
    return st == GSQ_OK ? gsq_model_quant_observe_end(m, GSQ_CALIB_MAX, 100.0f, err) : st;
}

/* Writes a checkpoint of the tiny model m (IMG×IMG RGB images; NULL: its creation failed; quantized:
 * in QAT) to DIR/name after a few AdamW steps. */
static int seed(const char *dir, const char *name, gsq_model *m, int quantized)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gsq_train_config cfg;
    run_config(&cfg);
    gsq_error err = {0};
    gsq_trainer t;
    float images[2 * 3 * IMG * IMG];
    for (int i = 0; i < 2 * 3 * IMG * IMG; i++) images[i] = (float)(i % 5) * 0.5f - 1.0f;
    gsq_status st = m ? GSQ_OK : gsq_fail(&err, GSQ_ERR_ARG, "the model could not be made");
    if (st == GSQ_OK) gsq_model_init(m, 5);
    if (st == GSQ_OK && quantized) st = quantize(m, images, &err);
    if (st == GSQ_OK) st = gsq_trainer_init(&t, m, &cfg, TRAIN_SIZE, &err);
    if (st != GSQ_OK) {
        fprintf(stderr, "seed %s: %s\n", name, err.msg);
        return 1;
    }
    int targets[2] = {0, gsq_model_num_classes(m) - 1};
    for (int step = 0; st == GSQ_OK && step < 3; step++) {
        float loss;
        st = gsq_model_zero_grad(m, &err);
        if (st == GSQ_OK) st = gsq_model_forward(m, images, 2, NULL, &err);
        if (st == GSQ_OK) st = gsq_model_loss(m, &(gsq_truth){.classes = targets}, cfg.label_smoothing, &loss, &err);
        if (st == GSQ_OK) st = gsq_model_backward(m, &err);
        gsq_param_block blocks[GSQ_MAX_BLOCKS];
        if (st == GSQ_OK) gsq_adamw_step(&t.opt, blocks, gsq_model_blocks(m, blocks), NULL);
    }
    t.state.step = t.opt.step;
    t.state.epoch = 1;
    t.state.batch = 1;
    if (st == GSQ_OK) st = gsq_trainer_save(&t, &cfg, path, &err);
    if (st != GSQ_OK) fprintf(stderr, "seed %s: %s\n", name, err.msg);
    gsq_trainer_free(&t);
    return st != GSQ_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    gsq_vit_config c = {
        .img_size = IMG, .patch_size = 2, .in_chans = 3, .num_classes = 3, .embed_dim = 4,
        .depth = 1, .num_heads = 2, .mlp_hidden = 8, .qkv_bias = 1, .class_token = 1,
        .pool = GSQ_POOL_TOKEN, .ln_eps = 1e-6f,
    };
    gsq_model *m;
    int bad = seed(argv[1], "token.safetensors", gsq_vit_create(&m, &c, NULL) == GSQ_OK ? m : NULL, 0);
    bad |= seed(argv[1], "quantized.safetensors", gsq_vit_create(&m, &c, NULL) == GSQ_OK ? m : NULL, 1);
    gsq_vit_config avg = c;
    avg.pool = GSQ_POOL_AVG;
    avg.class_token = 0;
    avg.qkv_bias = 0;
    avg.patch_size = 4;
    avg.num_heads = 1;
    bad |= seed(argv[1], "avg_nobias.safetensors", gsq_vit_create(&m, &avg, NULL) == GSQ_OK ? m : NULL, 0);
    gsq_vit_config deit = c;
    deit.distilled = 1;
    deit.depth = 2;
    deit.num_classes = 2;
    bad |= seed(argv[1], "distilled.safetensors", gsq_vit_create(&m, &deit, NULL) == GSQ_OK ? m : NULL, 0);
    /* a Swin in QAT: patch 1, window 2 (a grid of 4 in shifted windows, then 2 in one) */
    gsq_swin_config swin = {.img_size = IMG, .patch_size = 1, .in_chans = 3, .num_classes = 3, .num_stages = 2,
                            .depths = {2, 1}, .dims = {4, 8}, .num_heads = {2, 2}, .window = 2,
                            .mlp_hidden = {8, 8}, .qkv_bias = 1, .ln_eps = 1e-5f};
    bad |= seed(argv[1], "swin_quantized.safetensors", gsq_swin_create(&m, &swin, NULL) == GSQ_OK ? m : NULL, 1);
    return bad;
}

#endif
