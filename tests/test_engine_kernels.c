/* Tests of the CPU engine's integer kernels (src/kernels/cpu/int8_gemm.h): every fast path this CPU
 * has against the plain-C reference, bit for bit, and the reference against sums written here
 * from the unpacked codes — for dense, 2:4 and paired 4:8 weights, int8 and int4 codes, on random
 * data and awkward shapes (one activation row, rows not a multiple of the blocks, K not a multiple
 * of 8 where the layout allows it), with the store and residual epilogues, each with and without
 * the fused GELU, the epilogue that quantizes into the next GEMM's input codes, and the
 * quantization of one row at a time. Instruction sets the CPU lacks are reported and skipped. */
#include <string.h>

#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/int8_pack.h"
#include "gpusq/quant.h"
#include "test_isa.h"
#include "test_util.h"

/* Random codes in ±qmax obeying the layout: 2:4 keeps up to 2 of each 4, 4:8 up to 2 aligned
 * pairs of each 8 (some groups keep fewer, so padding indices are exercised). */
static void random_codes(int8_t *w, int rows, int cols, gsq_i8_layout layout, int qmax, gsq_rng *rng)
{
    for (int i = 0; i < rows * cols; i++) w[i] = (int8_t)((int)(gsq_rng_u32(rng) % (2u * qmax + 1)) - qmax);
    if (layout == GSQ_I8_DENSE) return;
    int unit = layout == GSQ_I8_SPARSE_4_8 ? 2 : 1;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < cols; g += 4 * unit) {
            int keep = (int)(gsq_rng_u32(rng) % 3); /* 0, 1 or 2 positions kept */
            int a = (int)(gsq_rng_u32(rng) % 4), b = (a + 1 + (int)(gsq_rng_u32(rng) % 3)) % 4;
            for (int u = 0; u < 4; u++)
                if (!((keep >= 1 && u == a) || (keep == 2 && u == b)))
                    for (int e = 0; e < unit; e++) w[(size_t)r * cols + g + u * unit + e] = 0;
        }
}

/* The input codes made a row at a time (gsq_i8_quantize_one) against want, gsq_i8_quantize's. */
static void check_rows(gsq_i8_isa isa, const uint8_t *want, const float *x, int M, int K, float inv)
{
    size_t bytes = gsq_i8_input_bytes(isa, M, K), wrong = 0;
    uint8_t *got = malloc(bytes);
    memset(got, 0x55, bytes);
    for (int m = 0; m < gsq_i8_input_rows(isa, M); m++)
        gsq_i8_quantize_one(isa, got, m < M ? x + (size_t)m * K : NULL, m, M, K, inv, 127);
    for (size_t i = 0; i < bytes; i++) wrong += got[i] != want[i];
    CHECK(wrong == 0, "%s rows one at a time M=%d K=%d: %zu of %zu bytes differ", gsq_i8_isa_name(isa), M, K, wrong,
          bytes);
    free(got);
}

/* The epilogue into the next GEMM's input codes: the bytes gsq_i8_quantize(isa) makes of the
 * reference's float output y_ref (M, N), with a scale at which the largest values clip. */
static void check_codes_out(gsq_i8_isa isa, const float *y_ref, const uint8_t *xq, int M, int N, const gsq_i8_weight *w,
                            const gsq_i8_epilogue *e)
{
    float top = 0.0f;
    for (int i = 0; i < M * N; i++) top = fabsf(y_ref[i]) > top ? fabsf(y_ref[i]) : top;
    float inv = 127.0f / (0.8f * top + 1e-6f);
    size_t bytes = gsq_i8_input_bytes(isa, M, N);
    uint8_t *want = malloc(bytes), *got = malloc(bytes);
    float *scratch = malloc((size_t)M * N * sizeof(float));
    memset(got, 0x55, bytes); /* every byte must be written, padding included */
    gsq_i8_quantize(isa, want, y_ref, M, N, N, inv, 127);
    gsq_i8_epilogue c = *e;
    c.codes = got, c.code_inv = inv, c.code_qmax = 127;
    gsq_i8_gemm(scratch, N, xq, M, w, &c);
    size_t wrong = 0;
    for (size_t i = 0; i < bytes; i++) wrong += got[i] != want[i];
    CHECK(wrong == 0, "%s codes out M=%d N=%d gelu=%d: %zu of %zu bytes differ from quantizing the float output",
          gsq_i8_isa_name(isa), M, N, e->gelu, wrong, bytes);
    free(want), free(got), free(scratch);
}

static void check_case(int M, int N, int K, gsq_i8_layout layout, int four, int accumulate, int gelu, gsq_rng *rng)
{
    int qmax = four ? 7 : 127;
    float *x = malloc((size_t)M * K * sizeof(float)), *scale = malloc((size_t)N * sizeof(float));
    float *bias = malloc((size_t)N * sizeof(float)), *y_ref = malloc((size_t)M * N * sizeof(float));
    float *y_fast = malloc((size_t)M * N * sizeof(float)), *y_int = malloc((size_t)M * N * sizeof(float));
    int8_t *w = malloc((size_t)N * K), *xc = malloc((size_t)M * K);
    uint8_t *xq = malloc(gsq_i8_xq_bytes(M, K));
    const float a_scale = 0.05f;
    fill_normal(x, (size_t)M * K, rng, 2.0f); /* some values clip at ±127 · 0.05 */
    fill_normal(bias, (size_t)N, rng, 1.0f);
    fill_normal(y_ref, (size_t)M * N, rng, 1.0f);
    memcpy(y_fast, y_ref, (size_t)M * N * sizeof(float));
    for (int n = 0; n < N; n++) scale[n] = 1e-3f * (1.0f + (float)(n % 7));
    random_codes(w, N, K, layout, qmax, rng);
    gsq_i8_owned_weight pw;
    gsq_error err = {0};
    CHECK(gsq_i8_pack(&pw, w, N, K, layout, four, GSQ_I8_ISA_REF, &err) == GSQ_OK, "%s", err.msg);
    const char *name = layout == GSQ_I8_DENSE ? "dense" : (layout == GSQ_I8_SPARSE_2_4 ? "2:4" : "4:8");

    /* quantization: the reference gives gsq_quantize_codes' codes; the fast path the same bytes */
    gsq_i8_quantize(GSQ_I8_ISA_REF, xq, x, M, K, K, 1.0f / a_scale, 127);
    gsq_quantize_codes(xc, x, (size_t)M * K, a_scale, 127);
    int bad = 0, mpad = gsq_i8_mpad(M);
    for (int m = 0; m < mpad; m++)
        for (int k = 0; k < (K + 7) / 8 * 8; k++) {
            int want = m < M && k < K ? xc[(size_t)m * K + k] + 128 : 128;
            bad += xq[gsq_i8_xq_at(m, k / 8, (K + 7) / 8) + k % 8] != want;
        }
    CHECK(bad == 0, "quantize_ref M=%d K=%d: %d bytes differ from gsq_quantize_codes", M, K, bad);
    check_rows(GSQ_I8_ISA_REF, xq, x, M, K, 1.0f / a_scale);

    /* the exact sums, from the unpacked codes */
    gsq_i8_epilogue unit = {.scale = NULL, .bias = NULL, .accumulate = 0};
    float *ones = malloc((size_t)N * sizeof(float));
    for (int n = 0; n < N; n++) ones[n] = 1.0f;
    unit.scale = ones;
    gsq_i8_gemm_ref(y_int, N, xq, M, &pw.w, &unit);
    bad = 0;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            long s = 0;
            for (int k = 0; k < K; k++) s += (long)xc[(size_t)m * K + k] * w[(size_t)n * K + k];
            bad += y_int[(size_t)m * N + n] != (float)s;
        }
    CHECK(bad == 0, "%s%s M=%d N=%d K=%d: reference sums differ from the unpacked codes' in %d places", name,
          four ? " int4" : "", M, N, K, bad);

    if (gelu) { /* scale the sums to about ±4, where GELU bends, whatever the codes' range */
        double ss = 0;
        for (int i = 0; i < M * N; i++) ss += (double)y_int[i] * y_int[i];
        float rms = (float)sqrt(ss / (M * N)) + 1.0f;
        for (int n = 0; n < N; n++) scale[n] = 3.0f / rms * (1.0f + (float)(n % 7)) / 4.0f;
    }
    gsq_i8_epilogue e = {.scale = scale, .bias = bias, .accumulate = accumulate, .gelu = gelu};
    gsq_i8_gemm_ref(y_ref, N, xq, M, &pw.w, &e);
    for (int i = GSQ_I8_ISA_REF + 1; i < GSQ_I8_ISA_COUNT; i++) {
        gsq_i8_isa isa = (gsq_i8_isa)i;
        if (!test_isa_selected(isa)) continue;
        gsq_i8_owned_weight fw;
        CHECK(gsq_i8_pack(&fw, w, N, K, layout, four, isa, &err) == GSQ_OK, "%s", err.msg);
        uint8_t *xq_fast = malloc(gsq_i8_input_bytes(isa, M, K));
        gsq_i8_quantize(isa, xq_fast, x, M, K, K, 1.0f / a_scale, 127);
        if (isa != GSQ_I8_ISA_AMX) { /* the chunk-major layout: the same bytes */
            CHECK(!memcmp(xq, xq_fast, gsq_i8_xq_bytes(M, K)), "%s quantize M=%d K=%d differs", gsq_i8_isa_name(isa),
                  M, K);
        } else { /* row-major, padding rows and columns code 0 */
            int kpad = gsq_i8_amx_kpad(K), wrong = 0;
            for (int m = 0; m < gsq_i8_amx_mpad(M); m++)
                for (int k = 0; k < kpad; k++)
                    wrong += xq_fast[(size_t)m * kpad + k] != (m < M && k < K ? xc[(size_t)m * K + k] + 128 : 128);
            CHECK(wrong == 0, "amx quantize M=%d K=%d: %d bytes differ", M, K, wrong);
        }
        check_rows(isa, xq_fast, x, M, K, 1.0f / a_scale);
        float *y = malloc((size_t)M * N * sizeof(float));
        memcpy(y, y_fast, (size_t)M * N * sizeof(float));
        gsq_i8_gemm(y, N, xq_fast, M, &fw.w, &e);
        CHECK(!memcmp(y_ref, y, (size_t)M * N * sizeof(float)),
              "%s %s%s M=%d N=%d K=%d acc=%d gelu=%d: differs from the reference", gsq_i8_isa_name(isa), name,
              four ? " int4" : "", M, N, K, accumulate, gelu);
        if (!accumulate) check_codes_out(isa, y_ref, xq_fast, M, N, &fw.w, &e);
        gsq_i8_weight_free(&fw);
        free(xq_fast), free(y);
    }
    gsq_i8_weight_free(&pw);
    free(x), free(scale), free(bias), free(y_ref), free(y_fast), free(y_int), free(w), free(xc), free(xq);
    free(ones);
}

int main(int argc, char **argv)
{
    int rc = test_isa_args("test_engine_kernels", argc, argv);
    if (rc >= 0) return rc;
    gsq_rng rng;
    gsq_rng_seed(&rng, 3, 0);
    static const int shapes[][3] = {{1, 4, 8}, {5, 7, 16}, {32, 4, 24}, {33, 9, 40}, {70, 12, 64}, {197, 20, 96}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int four = 0; four < 2; four++)
            for (int layout = 0; layout < 3; layout++)
                for (int gelu = 0; gelu < 2; gelu++)
                    check_case(M, N, K, (gsq_i8_layout)layout, four, s % 2, gelu, &rng);
    }
    /* shapes at the edges of the 256-bit kernels' tiles (4 or 2 weight rows × 8 or 16 activation
     * rows), their panels of 64 weight rows and the 32-row blocks, with short K */
    static const int edges[][3] = {{1, 66, 8}, {3, 5, 16}, {4, 64, 24}, {5, 3, 8}, {8, 65, 16},
                                   {9, 2, 24}, {16, 130, 8}, {17, 6, 24}, {48, 63, 16}};
    for (size_t s = 0; s < sizeof edges / sizeof edges[0]; s++) {
        int M = edges[s][0], N = edges[s][1], K = edges[s][2];
        for (int four = 0; four < 2; four++)
            for (int layout = 0; layout < 3; layout++)
                check_case(M, N, K, (gsq_i8_layout)layout, four, s % 2, s % 3 == 0, &rng);
    }
    /* K not a multiple of 8: dense any K, 2:4 a multiple of 4 */
    check_case(9, 5, 13, GSQ_I8_DENSE, 0, 0, 1, &rng);
    check_case(40, 6, 3, GSQ_I8_DENSE, 1, 1, 0, &rng);
    check_case(35, 8, 20, GSQ_I8_SPARSE_2_4, 0, 0, 0, &rng);
    check_case(3, 5, 12, GSQ_I8_SPARSE_2_4, 1, 1, 1, &rng);
    /* packing refuses a sparse layout whose group does not divide K */
    gsq_i8_owned_weight pw;
    int8_t w[12] = {0};
    gsq_error err = {0};
    CHECK(gsq_i8_pack(&pw, w, 1, 12, GSQ_I8_SPARSE_4_8, 0, GSQ_I8_ISA_REF, &err) == GSQ_ERR_ARG, "4:8 with K = 12 was packed");
    return test_finish("test_engine_kernels");
}
