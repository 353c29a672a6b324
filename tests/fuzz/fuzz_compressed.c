/* libFuzzer harness for the compressed-model reader: open the input as an in-memory safetensors
 * file and load it with gsq_compressed_load_open. An error must name the input and return no
 * model; a loaded model must agree with its info (mode, sites, byte counts), carry active
 * quantizers whose weight codes are in range and dequantize exactly to its weights, and run a
 * forward pass on one image (when its size keeps that quick). Built with -DGSQ_FUZZ_MAKE_SEEDS
 * instead, it writes seed files of tiny compressed models (INT8 2:4; INT4 4:8 with a dense-stored
 * GEMM and quantized attention; W4A8 2:4 with average pooling; a distilled INT8 4:8 DeiT; a Swin
 * with shifted windows, INT8 2:4 with quantized attention) with the library's writer:
 * fuzz_compressed_seeds DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/compressed.h"
#include "gpusq/graph.h"
#include "gpusq/safetensors.h"

#ifndef GSQ_FUZZ_MAKE_SEEDS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A model worth a forward pass here: at most this many multiply-adds and input values. */
#define MAX_MACS 2e7
#define MAX_INPUT (1 << 20)

/* Every site's codes are in range and times its scales give back the weights exactly. */
static void check_sites(const gsq_model *m, gsq_compressed_info *info)
{
    int qmax = gsq_quant_qmax(gsq_quant_mode_weight_bits(info->mode));
    size_t weights = 0;
    for (int s = 0; s < gsq_model_graph(m)->num_linears; s++) {
        if (!gsq_model_graph(m)->linears[s].compressed) continue;
        const gsq_param *p = gsq_model_tensor(m, gsq_model_graph(m)->linears[s].weight);
        if (!p) abort();
        size_t rows = (size_t)p->shape[0], cols = p->numel / rows;
        int8_t *codes = malloc(p->numel);
        float *scales = malloc(rows * sizeof(float));
        gsq_error err;
        if (!codes || !scales || gsq_model_quant_weight_codes(m, s, codes, scales, &err) != GSQ_OK)
            abort();
        const float *w = gsq_model_params_const(m) + p->offset;
        for (size_t r = 0; r < rows; r++) {
            if (!(scales[r] > 0.0f)) abort();
            for (size_t c = 0; c < cols; c++) {
                int8_t code = codes[r * cols + c];
                if (code < -qmax || code > qmax || (float)code * scales[r] != w[r * cols + c])
                    abort();
            }
        }
        free(codes);
        free(scales);
        weights += p->numel;
    }
    if (weights != info->gemm_weights) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gsq_st_file *f = NULL;
    gsq_error err = {0};
    if (gsq_st_open_buffer(&f, data, size, "fuzz", &err) != GSQ_OK) return 0;
    gsq_model *m = NULL;
    gsq_compressed_info info;
    gsq_status st = gsq_compressed_load_open(&m, f, &info, &err);
    if (st != GSQ_OK) {
        if (m || err.code != st || !strstr(err.msg, "fuzz")) abort();
        gsq_st_close(f);
        return 0;
    }
    if (!m || !gsq_model_params(m) || !gsq_model_quant_active(m) || gsq_model_quant_mode(m) != info.mode ||
        info.sparse_linears + info.dense_linears != gsq_graph_compressed_linears(gsq_model_graph(m)))
        abort();
    size_t bytes = 0;
    for (size_t i = 0; i < gsq_st_count(f); i++) bytes += gsq_st_at(f, i)->nbytes;
    const char *attn = gsq_st_meta_get(f, "quant.attention");
    int attention = attn && strcmp(attn, "1") == 0;
    if (bytes != info.param_bytes || info.gemm_weight_bytes > bytes ||
        !gsq_model_quant_attention_scales(m, 0) != !attention)
        abort();
    check_sites(m, &info);
    gsq_st_close(f);

    size_t side = (size_t)gsq_model_input_size(m), input = (size_t)gsq_model_in_chans(m) * side * side;
    gsq_graph_macs macs = gsq_graph_count_macs(gsq_model_graph(m));
    if (macs.linear + macs.attention <= MAX_MACS && input <= MAX_INPUT) {
        float *images = malloc(input * sizeof(float));
        if (!images) abort();
        for (size_t i = 0; i < input; i++) images[i] = (float)(i % 11) * 0.2f - 1.0f;
        const float *logits = NULL;
        if (gsq_model_forward(m, images, 1, &logits, &err) != GSQ_OK || !logits) abort();
        free(images);
    }
    gsq_model_free(m);
    return 0;
}

#else

#include "gpusq/rng.h"
#include "gpusq/sparse.h"
#include "gpusq/swin.h"

/* A tiny model m (NULL: its creation failed; at most 8×8 RGB images), pruned to the pattern by
 * magnitude, quantized in mode and calibrated on random images, written to DIR/name. */
static int seed(const char *dir, const char *name, gsq_model *m, gsq_sparse_pattern pattern, gsq_quant_mode mode,
                int attention)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gsq_error err = {0};
    gsq_status st = m ? GSQ_OK : gsq_fail(&err, GSQ_ERR_ARG, "the model could not be made");
    if (st == GSQ_OK) {
        gsq_model_init(m, 3);
        gsq_rng rng;
        gsq_rng_seed(&rng, 4, 0);
        for (size_t i = 0; i < gsq_model_num_params(m); i++) gsq_model_params(m)[i] += 0.05f * gsq_rng_normal(&rng);
        enum { B = 4 };
        float x[B * 3 * 8 * 8];
        for (int i = 0; i < B * 3 * 8 * 8; i++) x[i] = gsq_rng_normal(&rng);
        gsq_sparse_plan plan;
        st = gsq_sparse_plan_magnitude(&plan, m, pattern, 0, &err);
        if (st == GSQ_OK) {
            gsq_sparse_apply(&plan, gsq_model_params(m));
            gsq_sparse_plan_free(&plan);
            st = gsq_model_quant_enable(m, mode, GSQ_CALIB_MAX, &err);
        }
        if (st == GSQ_OK && attention) st = gsq_model_quant_enable_attention(m, &err);
        if (st == GSQ_OK) st = gsq_model_quant_observe_begin(m, 4096, &err);
        if (st == GSQ_OK) st = gsq_model_forward(m, x, B, NULL, &err);
        if (st == GSQ_OK) st = gsq_model_quant_observe_end(m, GSQ_CALIB_PERCENTILE, 99.9f, &err);
        if (st == GSQ_OK) st = gsq_compressed_save(m, pattern, path, NULL, &err);
    }
    if (st != GSQ_OK) fprintf(stderr, "seed %s: %s\n", name, err.msg);
    gsq_model_free(m);
    return st != GSQ_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    gsq_vit_config c = {
        .img_size = 4, .patch_size = 2, .in_chans = 3, .num_classes = 3, .embed_dim = 8, .depth = 1,
        .num_heads = 2, .mlp_hidden = 8, .qkv_bias = 1, .class_token = 1, .pool = GSQ_POOL_TOKEN,
        .ln_eps = 1e-6f,
    };
    const char *d = argv[1];
    gsq_model *m;
    int bad = seed(d, "int8_24.safetensors", gsq_vit_create(&m, &c, NULL) == GSQ_OK ? m : NULL, GSQ_SPARSE_2_4, GSQ_QMODE_INT8, 0);
    /* the patch embedding's 12 inputs are not a multiple of 8: stored dense */
    bad |= seed(d, "int4_48_attention.safetensors", gsq_vit_create(&m, &c, NULL) == GSQ_OK ? m : NULL, GSQ_SPARSE_4_8, GSQ_QMODE_INT4, 1);
    gsq_vit_config avg = c;
    avg.pool = GSQ_POOL_AVG;
    avg.class_token = 0;
    avg.qkv_bias = 0;
    bad |= seed(d, "w4a8_24_avg.safetensors", gsq_vit_create(&m, &avg, NULL) == GSQ_OK ? m : NULL, GSQ_SPARSE_2_4, GSQ_QMODE_W4A8, 0);
    gsq_vit_config deit = c;
    deit.distilled = 1;
    deit.depth = 2;
    deit.mlp_hidden = 16;
    bad |= seed(d, "int8_48_distilled.safetensors", gsq_vit_create(&m, &deit, NULL) == GSQ_OK ? m : NULL, GSQ_SPARSE_4_8,
                GSQ_QMODE_INT8, 1);
    /* a Swin: 8×8 images, patch 2, window 2 (a grid of 4 in shifted windows, then 2 in one) */
    gsq_swin_config swin = {.img_size = 8, .patch_size = 2, .in_chans = 3, .num_classes = 3, .num_stages = 2,
                            .depths = {2, 1}, .dims = {8, 16}, .num_heads = {2, 2}, .window = 2,
                            .mlp_hidden = {8, 16}, .qkv_bias = 1, .ln_eps = 1e-5f};
    bad |= seed(d, "swin_int8_24_attention.safetensors", gsq_swin_create(&m, &swin, NULL) == GSQ_OK ? m : NULL, GSQ_SPARSE_2_4,
                GSQ_QMODE_INT8, 1);
    return bad;
}

#endif
