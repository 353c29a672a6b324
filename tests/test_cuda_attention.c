/* CUDA attention (src/kernels/cuda/attention.cu): on random qkv over small, odd, ViT and Swin shapes
 * (windows with the relative position bias, shifted with the mask, padded), the
 * integer attention's int8 output equals byte for byte the CPU engine's gsq_att8_forward followed
 * by its quantizer (for qmax 127 and 7), the fp32 attention's codes those of gsq_attention_forward
 * within one step on at most 1% of the values, and the fp16 attention gsq_attention_forward on the
 * same half inputs within 2e-3 of the largest output; output columns past C are left alone; bad
 * shapes and arguments are refused with GSQ_ERR_ARG before anything is launched. The argument
 * checks run in every CUDA build; the rest skips (exit 77, CTest's "skipped") without a GPU. Built
 * only where nvcc built the CUDA backend library, which it links (tests/CMakeLists.txt). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/cuda.h"
#include "test_util.h"

#include "kernels/cpu/attention_int8.h"
#include "gpusq/half.h"
#include "gpusq/nn.h"
#include "kernels/cuda/ops.h"
#include "kernels/quant_code.h"

#define SENTINEL ((int8_t)-99) /* fills the output's columns past C, which must stay */

static void *dev_copy(const void *host, size_t bytes);

typedef struct {
    int B, T, HD, NH;
    gsq_window_geom geom; /* Swin's windows (T = window², B counting windows), or window 0: no bias */
} shape;

/* Swin's bias of s on the host (a random table, expanded as the engine expands it) and on the
 * device; *windows its windows; all NULL without windows. ab (the table and geometry) is what the
 * float reference takes. */
static float *make_bias(const shape *s, gsq_rng *rng, gsq_attn_bias *ab, float **table, int *windows, float **dev)
{
    *table = NULL, *dev = NULL, *windows = 1;
    if (!s->geom.window) return NULL;
    size_t side = 2 * (size_t)s->geom.window - 1, T = (size_t)s->T;
    *table = malloc(side * side * s->NH * sizeof(float));
    fill_normal(*table, side * side * s->NH, rng, 1.0f);
    *ab = (gsq_attn_bias){*table, s->geom};
    *windows = gsq_attn_bias_windows(ab);
    float *bias = malloc((size_t)*windows * s->NH * T * T * sizeof(float));
    gsq_attn_bias_expand(bias, ab, s->NH);
    *dev = dev_copy(bias, (size_t)*windows * s->NH * T * T * sizeof(float));
    return bias;
}

/* A device copy of `bytes` of host (uninitialized when host is NULL). */
static void *dev_copy(const void *host, size_t bytes)
{
    void *d = NULL;
    gsq_error err = {0};
    CHECK(gsq_cuda_malloc(&d, bytes, &err) == GSQ_OK, "%s", err.msg);
    if (d && host) CHECK(gsq_cuda_upload(d, host, bytes, &err) == GSQ_OK, "%s", err.msg);
    return d;
}

static float abs_max(const float *x, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* The output quantizer's 1 / scale: the largest |value| a little past qmax, so that some clamp. */
static float out_inv_for(const float *ref, size_t n, int qmax)
{
    float m = abs_max(ref, n);
    return m > 0.0f ? (float)qmax / (0.8f * m) : 1.0f;
}

/* The int8 outputs (rows × ldo) the kernel wrote, from device out, after a launch returned st. */
static int fetch_codes(int8_t *host, const void *dout, size_t bytes, gsq_status st, const gsq_error *err)
{
    gsq_error e2 = {0};
    CHECK(st == GSQ_OK, "%s", err->msg);
    if (st != GSQ_OK) return 0;
    gsq_status s2 = gsq_cuda_synchronize(&e2);
    CHECK(s2 == GSQ_OK, "%s", e2.msg);
    if (s2 == GSQ_OK) s2 = gsq_cuda_download(host, dout, bytes, &e2);
    CHECK(s2 == GSQ_OK, "%s", e2.msg);
    return s2 == GSQ_OK;
}

/* Compares the GPU's codes (B·T rows at stride ldo) with want (B·T, C) within tol per value and
 * on at most max_bad values; columns past C must hold SENTINEL. Prints the first mismatches. */
static void compare_codes(const char *what, const shape *s, const int8_t *got, int ldo, const int8_t *want, int tol,
                          size_t max_bad)
{
    int C = s->HD * s->NH;
    size_t rows = (size_t)s->B * s->T, bad = 0, far = 0, pad = 0;
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < C; c++) {
            int g = got[r * ldo + c], w = want[r * C + c];
            if (g == w) continue;
            far += abs(g - w) > tol;
            if (bad++ < 5)
                fprintf(stderr, "%s B %d T %d HD %d NH %d: image %zu token %zu channel %d: GPU %d, CPU %d\n", what,
                        s->B, s->T, s->HD, s->NH, r / s->T, r % s->T, c, g, w);
        }
        for (int c = C; c < ldo; c++) pad += got[r * ldo + c] != SENTINEL;
    }
    CHECK(far == 0 && bad <= max_bad, "%s B %d T %d HD %d NH %d: %zu of %zu codes differ (%zu by more than %d, %zu "
          "allowed)", what, s->B, s->T, s->HD, s->NH, bad, rows * C, far, tol, max_bad);
    CHECK(pad == 0, "%s B %d T %d HD %d NH %d: %zu bytes past C written", what, s->B, s->T, s->HD, s->NH, pad);
}

/* The integer attention against gsq_att8_forward (the reference) and the engine's quantizer. */
static void test_i8(const shape *s, int qmax, gsq_rng *rng)
{
    int B = s->B, T = s->T, NH = s->NH, C = s->HD * NH, ldo = C + 3;
    size_t n = (size_t)B * T * 3 * C, no = (size_t)B * T * C, bytes = gsq_att8_scratch_bytes(T, s->HD);
    float *qkv = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * no);
    uint8_t *scratch = malloc(bytes * B * NH);
    int8_t *want = malloc(no), *got = malloc((size_t)B * T * ldo);
    fill_normal(qkv, n, rng, 1.0f);
    gsq_attn_bias ab;
    float *table, *dbias;
    int windows;
    float *bias = make_bias(s, rng, &ab, &table, &windows, &dbias);
    /* normal values past about ±2.5 clamp: the codes span ±qmax */
    const float scales[3] = {2.5f / (float)qmax, 2.7f / (float)qmax, 2.3f / (float)qmax};
    gsq_att8_forward(GSQ_I8_ISA_REF, ref, qkv, B, T, C, NH, scales, qmax, bias, windows, scratch);
    float out_inv = out_inv_for(ref, no, qmax);
    for (size_t i = 0; i < no; i++) want[i] = (int8_t)gsq_quant_code(ref[i], out_inv, (float)qmax);
    memset(got, SENTINEL, (size_t)B * T * ldo);
    float *dqkv = dev_copy(qkv, sizeof(float) * n);
    int8_t *dout = dev_copy(got, (size_t)B * T * ldo);
    if (dqkv && dout) {
        gsq_error err = {0};
        gsq_status st = gsq_cuda_attention_i8(dout, ldo, out_inv, qmax, dqkv, B, T, C, NH, scales, qmax, dbias,
                                              windows, &err);
        char what[64];
        snprintf(what, sizeof what, "int8 (qmax %d%s)", qmax, bias ? ", Swin's bias" : "");
        if (fetch_codes(got, dout, (size_t)B * T * ldo, st, &err)) compare_codes(what, s, got, ldo, want, 0, 0);
    }
    gsq_cuda_free(dqkv);
    gsq_cuda_free(dout);
    gsq_cuda_free(dbias);
    free(bias);
    free(table);
    free(qkv);
    free(ref);
    free(scratch);
    free(want);
    free(got);
}

/* The fp32 attention (int8 codes) and the fp16 one (half out) against gsq_attention_forward. */
static void test_float(const shape *s, gsq_rng *rng)
{
    int B = s->B, T = s->T, NH = s->NH, C = s->HD * NH, ldo = C + 5;
    size_t n = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * no);
    float *att = malloc(sizeof(float) * B * NH * T * T), *outh = malloc(sizeof(float) * no);
    int8_t *want = malloc(no), *got = malloc((size_t)B * T * ldo);
    uint16_t *qh = malloc(sizeof(uint16_t) * n), *oh = malloc(sizeof(uint16_t) * no);
    fill_normal(qkv, n, rng, 1.5f);
    gsq_attn_bias ab;
    float *table, *dbias;
    int windows;
    float *bias = make_bias(s, rng, &ab, &table, &windows, &dbias);
    gsq_attention_forward(ref, att, NULL, 0.0f, 0, qkv, B, T, C, NH, bias ? &ab : NULL);
    float out_inv = out_inv_for(ref, no, 127);
    for (size_t i = 0; i < no; i++) want[i] = (int8_t)gsq_quant_code(ref[i], out_inv, 127.0f);
    memset(got, SENTINEL, (size_t)B * T * ldo);
    float *dqkv = dev_copy(qkv, sizeof(float) * n);
    int8_t *dout = dev_copy(got, (size_t)B * T * ldo);
    gsq_error err = {0};
    if (dqkv && dout) {
        gsq_status st = gsq_cuda_attention_f32(dout, ldo, out_inv, 127, dqkv, B, T, C, NH, dbias, windows, &err);
        if (fetch_codes(got, dout, (size_t)B * T * ldo, st, &err))
            compare_codes("fp32", s, got, ldo, want, 1, no / 100 > 1 ? no / 100 : 1);
    }
    gsq_cuda_free(dqkv);
    gsq_cuda_free(dout);

    /* fp16: the CPU's float attention on the same half-rounded inputs */
    gsq_f32_to_f16_n(qkv, qh, n);
    gsq_f16_to_f32_n(qh, qkv, n);
    gsq_attention_forward(ref, att, NULL, 0.0f, 0, qkv, B, T, C, NH, bias ? &ab : NULL);
    void *dqh = dev_copy(qh, sizeof(uint16_t) * n), *doh = dev_copy(NULL, sizeof(uint16_t) * no);
    if (dqh && doh) {
        gsq_status st = gsq_cuda_attention_f16(doh, dqh, B, T, C, NH, dbias, windows, &err);
        CHECK(st == GSQ_OK, "%s", err.msg);
        if (st == GSQ_OK) st = gsq_cuda_synchronize(&err);
        if (st == GSQ_OK) st = gsq_cuda_download(oh, doh, sizeof(uint16_t) * no, &err);
        CHECK(st == GSQ_OK, "%s", err.msg);
        if (st == GSQ_OK) {
            gsq_f16_to_f32_n(oh, outh, no);
            double e = max_rel_err(outh, ref, no);
            CHECK(e < 2e-3, "fp16 B %d T %d HD %d NH %d: differs from the CPU by %.3g of the largest output", B, T,
                  s->HD, NH, e);
        }
    }
    gsq_cuda_free(dqh);
    gsq_cuda_free(doh);
    gsq_cuda_free(dbias);
    free(bias);
    free(table);
    free(qkv);
    free(ref);
    free(att);
    free(outh);
    free(want);
    free(got);
    free(qh);
    free(oh);
}

/* Every entry point refuses bad shapes and arguments with GSQ_ERR_ARG and a message; none of these
 * reach the device (NULL pointers), so they run without a GPU. */
static void test_arguments(void)
{
    const float scales[3] = {0.1f, 0.1f, 0.1f}, negative[3] = {0.1f, -0.1f, 0.1f};
    /* B, T, C, NH: head dimension 257, C not a multiple of NH, no tokens, no images, no heads */
    const int bad[][4] = {{1, 5, 257, 1}, {1, 5, 10, 3}, {1, 0, 8, 1}, {0, 5, 8, 1}, {1, 5, 8, 0}, {2, 3, 512, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int B = bad[i][0], T = bad[i][1], C = bad[i][2], NH = bad[i][3];
        gsq_error e1 = {0}, e2 = {0}, e3 = {0};
        CHECK(gsq_cuda_attention_i8(NULL, C, 1.0f, 127, NULL, B, T, C, NH, scales, 127, NULL, 1, &e1) == GSQ_ERR_ARG &&
              e1.msg[0], "int8 B %d T %d C %d NH %d", B, T, C, NH);
        CHECK(gsq_cuda_attention_f32(NULL, C, 1.0f, 127, NULL, B, T, C, NH, NULL, 1, &e2) == GSQ_ERR_ARG && e2.msg[0],
              "fp32 B %d T %d C %d NH %d", B, T, C, NH);
        CHECK(gsq_cuda_attention_f16(NULL, NULL, B, T, C, NH, NULL, 1, &e3) == GSQ_ERR_ARG && e3.msg[0],
              "fp16 B %d T %d C %d NH %d", B, T, C, NH);
    }
    gsq_error err = {0};
    /* ldo short of C; qmax and out_qmax outside 1..127; a scale not positive */
    CHECK(gsq_cuda_attention_i8(NULL, 15, 1.0f, 127, NULL, 1, 5, 16, 2, scales, 127, NULL, 1, &err) == GSQ_ERR_ARG,
          "ldo < C");
    CHECK(gsq_cuda_attention_i8(NULL, 16, 1.0f, 127, NULL, 1, 5, 16, 2, scales, 128, NULL, 1, &err) == GSQ_ERR_ARG,
          "qmax");
    CHECK(gsq_cuda_attention_i8(NULL, 16, 1.0f, 0, NULL, 1, 5, 16, 2, scales, 127, NULL, 1, &err) == GSQ_ERR_ARG,
          "out_qmax");
    CHECK(gsq_cuda_attention_i8(NULL, 16, 1.0f, 7, NULL, 1, 5, 16, 2, negative, 7, NULL, 1, &err) == GSQ_ERR_ARG,
          "scale");
    CHECK(gsq_cuda_attention_i8(NULL, 16, 1.0f, 7, NULL, 1, 5, 16, 2, scales, 7, scales, 0, &err) == GSQ_ERR_ARG,
          "a bias over no windows");
    CHECK(gsq_cuda_attention_f32(NULL, 15, 1.0f, 127, NULL, 1, 5, 16, 2, NULL, 1, &err) == GSQ_ERR_ARG, "fp32 ldo < C");
    CHECK(gsq_cuda_attention_f32(NULL, 16, 1.0f, 128, NULL, 1, 5, 16, 2, NULL, 1, &err) == GSQ_ERR_ARG,
          "fp32 out_qmax");
}

/* A head too long for the device's shared memory is refused, not launched: the next synchronize
 * finds no error. */
static void test_too_long(void)
{
    const float scales[3] = {0.1f, 0.1f, 0.1f};
    gsq_error err = {0};
    int T = 100000, C = 256;
    CHECK(gsq_cuda_attention_i8(NULL, C, 1.0f, 127, NULL, 1, T, C, 1, scales, 127, NULL, 1, &err) == GSQ_ERR_ARG,
          "int8 T %d", T);
    printf("test_cuda_attention: %s\n", err.msg);
    CHECK(gsq_cuda_attention_f32(NULL, C, 1.0f, 127, NULL, 1, T, C, 1, NULL, 1, &err) == GSQ_ERR_ARG, "fp32 T %d", T);
    CHECK(gsq_cuda_attention_f16(NULL, NULL, 1, T, C, 1, NULL, 1, &err) == GSQ_ERR_ARG, "fp16 T %d", T);
    CHECK(gsq_cuda_synchronize(&err) == GSQ_OK, "%s", err.msg);
}

int main(void)
{
    test_arguments();
    if (gsq_cuda_device_count() == 0) {
        return test_skip("test_cuda_attention", "no GPU present; the argument checks ran");
    }
    char name[256];
    gsq_error err = {0};
    CHECK(gsq_cuda_device_name(0, name, sizeof name, &err) == GSQ_OK, "%s", err.msg);
    printf("test_cuda_attention: device %s\n", name);
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 3);
    /* B, T, HD, NH: one token, tiny and odd heads, T not a multiple of 4 or 16, the ViT's 197 × 64;
     * Swin's windows: shifted (a mask per window), padded without a shift, swin_tiny's 7 × 7 with
     * two images of 64 windows */
    const shape shapes[] = {
        {1, 1, 8, 1, {0, 0, 0}},     {1, 5, 8, 2, {0, 0, 0}},     {3, 5, 13, 2, {0, 0, 0}},
        {1, 17, 13, 6, {0, 0, 0}},   {3, 17, 64, 1, {0, 0, 0}},   {1, 197, 64, 6, {0, 0, 0}},
        {3, 197, 64, 6, {0, 0, 0}},  {1, 197, 13, 2, {0, 0, 0}},  {2, 5, 256, 1, {0, 0, 0}},
        {1, 3, 1, 3, {0, 0, 0}},     {3, 33, 40, 2, {0, 0, 0}},   {8, 16, 8, 3, {8, 4, 2}},
        {8, 16, 13, 2, {6, 4, 0}},   {128, 49, 32, 3, {56, 7, 3}},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        test_i8(&shapes[i], 127, &rng);
        test_i8(&shapes[i], 7, &rng);
        test_float(&shapes[i], &rng);
    }
    test_too_long();
    return test_finish("test_cuda_attention");
}
