/* One harness for the engine's operations × its CPU backends (as ggml's test-backend-ops): a table
 * of cases — LINEAR (the compressed linear's input quantization, integer GEMM and epilogue: store,
 * residual, GELU, codes for the next linear) for dense, 2:4 and paired 4:8 weights in int8 and
 * int4 codes, and ATTENTION (the integer attention) — over random data and awkward shapes (one
 * row, rows and outputs off the kernels' tiles and blocks, K not a multiple of 8 where the layout
 * allows it, 1 to 197 tokens). Every backend, that is every instruction set of
 * src/kernels/cpu/ this CPU has, runs each case against the plain-C reference (src/kernels/ref/):
 * bit for bit, since every path makes the same integer sums and the same float epilogue. The
 * reference itself is checked against independent oracles: the sums of the unpacked codes, and
 * the float attention on fake-quantized Q, K, V within the tolerance stated below. argv[1] names
 * one backend (GSQ_ISA's words); CTest runs one test per backend and reports a backend the CPU
 * lacks as skipped. The CUDA backend's kernels are held to the same reference by test_cuda and
 * test_cuda_attention (label gpu), which need a GPU. */
#include <string.h>

#include "gpusq/nn.h"
#include "gpusq/quant.h"
#include "kernels/cpu/attention_int8.h"
#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/int8_pack.h"
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

/* LINEAR: the compressed linear's kernels — quantizing the input, the integer GEMM, its epilogue —
 * on one shape, layout and code width. */
static void linear_case(int M, int N, int K, gsq_i8_layout layout, int four, int accumulate, int gelu, gsq_rng *rng)
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

/* Both paths round the same probabilities to codes, but compute them in a different order of
 * float operations (exact integer scores times one factor against a float GEMM; the softmax sum in
 * another order), so a probability within rounding noise of a code boundary may take the
 * neighbouring code. A row with no probability within NEAR codes of a boundary must agree within
 * TIGHT · max|V|; a row with k such probabilities within TIGHT · max|V| + k · max|V| / qmax (each
 * flipped code moves the output by at most one code step of one value). */
#define NEAR 1e-3
#define TIGHT 2e-6

typedef struct {
    double tight, all;    /* largest differences / max|V|: rows without a near-boundary probability, all rows */
    long rows, near_rows; /* rows checked, rows with a near-boundary probability */
} fidelity;

/* ATTENTION: the integer attention on one shape and code width; with a window geometry (grid > 0),
 * Swin's: B images of that grid's windows, T = window², a random relative position bias table and
 * the shifted-window mask. */
static void attention_case(int B, int T, int HD, int NH, int qmax, gsq_window_geom win, gsq_rng *rng, fidelity *fid)
{
    float *table = NULL, *bias = NULL;
    gsq_attn_bias ab = {NULL, win};
    int windows = 1;
    if (win.grid) {
        int W2 = (2 * win.window - 1) * (2 * win.window - 1);
        T = win.window * win.window;
        B *= gsq_window_count(win);
        table = malloc((size_t)W2 * NH * sizeof(float));
        fill_normal(table, (size_t)W2 * NH, rng, 1.0f);
        ab.table = table;
        windows = gsq_attn_bias_windows(&ab);
        bias = malloc((size_t)windows * NH * T * T * sizeof(float));
        gsq_attn_bias_expand(bias, &ab, NH);
    }
    int C = HD * NH;
    size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_att = (size_t)B * NH * T * T;
    float *qkv = malloc(n_qkv * sizeof(float)), *fq = malloc(n_qkv * sizeof(float));
    float *ref = malloc(n_out * sizeof(float)), *fast = malloc(n_out * sizeof(float));
    float *flt = malloc(n_out * sizeof(float)), *att = malloc(n_att * sizeof(float)), *att_q = malloc(n_att * sizeof(float));
    uint8_t *scratch = malloc((size_t)B * NH * gsq_att8_scratch_bytes(T, HD));
    /* Q and K spread enough for peaked softmax rows; some values clip at ±qmax · scale */
    float scales[3] = {2.5f / (float)qmax, 2.0f / (float)qmax, 3.0f / (float)qmax}, std[3] = {1.2f, 1.0f, 1.0f};
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int k = 0; k < 3; k++) fill_normal(qkv + (r * 3 + (size_t)k) * C, (size_t)C, rng, std[k]);

    gsq_att8_forward(GSQ_I8_ISA_REF, ref, qkv, B, T, C, NH, scales, qmax, bias, windows, scratch);
    for (int i = GSQ_I8_ISA_REF + 1; i < GSQ_I8_ISA_COUNT; i++) {
        if (!test_isa_selected((gsq_i8_isa)i)) continue;
        memset(fast, 0xFF, n_out * sizeof(float));
        gsq_att8_forward((gsq_i8_isa)i, fast, qkv, B, T, C, NH, scales, qmax, bias, windows, scratch);
        CHECK(!memcmp(ref, fast, n_out * sizeof(float)),
              "%s B=%d T=%d HD=%d NH=%d qmax=%d window %d shift %d: differs from the reference",
              gsq_i8_isa_name((gsq_i8_isa)i), B, T, HD, NH, qmax, win.window, win.shift);
    }

    /* the float path: fake-quantized Q, K, V; the probabilities fake-quantized inside */
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int k = 0; k < 3; k++) {
            size_t o = (r * 3 + (size_t)k) * C;
            gsq_fake_quant(fq + o, qkv + o, (size_t)C, scales[k], qmax);
        }
    gsq_attention_forward(flt, att, att_q, 1.0f / (float)qmax, qmax, fq, B, T, C, NH, table ? &ab : NULL);
    float vmax = 0.0f;
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int c = 0; c < C; c++) vmax = fmaxf(vmax, fabsf(fq[r * 3 * C + 2 * (size_t)C + c]));
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *p = att + (((size_t)b * NH + h) * T + t) * T; /* the float probabilities */
                int near = 0;
                for (int u = 0; u < T; u++) {
                    double x = (double)p[u] * qmax;
                    near += fabs(x - floor(x) - 0.5) < NEAR;
                }
                double diff = 0.0;
                for (int d = 0; d < HD; d++) {
                    size_t o = ((size_t)b * T + t) * C + (size_t)h * HD + d;
                    diff = fmax(diff, fabs((double)ref[o] - (double)flt[o]) / vmax);
                }
                fid->rows++;
                fid->near_rows += near > 0;
                if (!near) fid->tight = fmax(fid->tight, diff);
                fid->all = fmax(fid->all, diff);
                bad += diff > TIGHT + (double)near / qmax;
            }
    CHECK(bad == 0, "B=%d T=%d HD=%d NH=%d qmax=%d: %d rows differ from the float attention beyond the tolerance", B, T,
          HD, NH, qmax, bad);
    free(qkv), free(fq), free(ref), free(fast), free(flt), free(att), free(att_q), free(scratch), free(table), free(bias);
}

typedef enum { OP_LINEAR, OP_ATTENTION } op_kind;

/* One case of the table: LINEAR uses M (rows), N (outputs), K (inputs); ATTENTION B (images), T
 * (tokens), HD (head dimension), NH (heads), qmax (code range). Each LINEAR case runs in every
 * layout and code width; accumulate and gelu pick its epilogue. */
typedef struct {
    op_kind op;
    int M, N, K, accumulate, gelu;
    int B, T, HD, NH, qmax;
    gsq_window_geom win; /* ATTENTION: Swin's windows when grid > 0 */
} op_case;

#define LIN(m, n, k, acc, gelu) {OP_LINEAR, m, n, k, acc, gelu, 0, 0, 0, 0, 0, {0, 0, 0}}
#define LIN_BOTH(m, n, k, acc) LIN(m, n, k, acc, 0), LIN(m, n, k, acc, 1)
#define ATT(b, t, hd, nh, q) {OP_ATTENTION, 0, 0, 0, 0, 0, b, t, hd, nh, q, {0, 0, 0}}
#define WIN(b, hd, nh, q, g, w, s) {OP_ATTENTION, 0, 0, 0, 0, 0, b, 0, hd, nh, q, {g, w, s}}

static const op_case cases[] = {
    /* model-like shapes, with and without GELU */
    LIN_BOTH(1, 4, 8, 0), LIN_BOTH(5, 7, 16, 1), LIN_BOTH(32, 4, 24, 0), LIN_BOTH(33, 9, 40, 1),
    LIN_BOTH(70, 12, 64, 0), LIN_BOTH(197, 20, 96, 1),
    /* the edges of the 256-bit kernels' tiles (4 or 2 weight rows × 8 or 16 activation rows), their
     * panels of 64 weight rows and the 32-row blocks, with short K */
    LIN(1, 66, 8, 0, 1), LIN(3, 5, 16, 1, 0), LIN(4, 64, 24, 0, 0), LIN(5, 3, 8, 1, 1), LIN(8, 65, 16, 0, 0),
    LIN(9, 2, 24, 1, 0), LIN(16, 130, 8, 0, 1), LIN(17, 6, 24, 1, 0), LIN(48, 63, 16, 0, 0),
    /* tokens 1 to 197, head dimensions 8 to 64, 1-3 heads, 1-2 images, 8- and 4-bit codes */
    ATT(1, 1, 8, 1, 127), ATT(2, 1, 32, 2, 7), ATT(1, 2, 64, 3, 127), ATT(2, 2, 8, 1, 127), ATT(1, 5, 32, 1, 7),
    ATT(2, 5, 64, 2, 127), ATT(1, 17, 8, 3, 127), ATT(2, 17, 32, 1, 7), ATT(1, 17, 64, 2, 127),
    ATT(2, 197, 8, 2, 127), ATT(1, 197, 32, 3, 7), ATT(2, 197, 64, 1, 127), ATT(1, 197, 64, 3, 127),
    /* Swin's windows: shifted and padded grids, one window, windows of 49 tokens, 4-bit codes */
    WIN(2, 8, 2, 127, 8, 4, 2), WIN(1, 32, 3, 127, 14, 4, 2), WIN(1, 16, 1, 7, 7, 3, 1), WIN(2, 32, 2, 127, 7, 7, 0),
    WIN(1, 32, 3, 127, 14, 7, 3), WIN(1, 8, 2, 7, 12, 4, 0),
};

int main(int argc, char **argv)
{
    int rc = test_isa_args("test_backend_ops", argc, argv);
    if (rc >= 0) return rc;
    gsq_rng rng;
    gsq_rng_seed(&rng, 3, 0);
    fidelity fid = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const op_case *c = &cases[i];
        if (c->op == OP_ATTENTION) {
            attention_case(c->B, c->T, c->HD, c->NH, c->qmax, c->win, &rng, &fid);
            continue;
        }
        for (int four = 0; four < 2; four++)
            for (int layout = 0; layout < 3; layout++)
                linear_case(c->M, c->N, c->K, (gsq_i8_layout)layout, four, c->accumulate, c->gelu, &rng);
    }
    /* K not a multiple of 8: dense any K, 2:4 a multiple of 4 */
    linear_case(9, 5, 13, GSQ_I8_DENSE, 0, 0, 1, &rng);
    linear_case(40, 6, 3, GSQ_I8_DENSE, 1, 1, 0, &rng);
    linear_case(35, 8, 20, GSQ_I8_SPARSE_2_4, 0, 0, 0, &rng);
    linear_case(3, 5, 12, GSQ_I8_SPARSE_2_4, 1, 1, 1, &rng);
    /* the roofline's ceilings: each instruction set's peak loop runs (its MAC count is the
     * instruction's) and the memory can be read */
    for (int isa = GSQ_I8_ISA_REF; isa < GSQ_I8_ISA_COUNT; isa++)
        if (isa == GSQ_I8_ISA_REF ? test_isa_only <= 0 : test_isa_selected((gsq_i8_isa)isa)) {
            double peak = gsq_i8_peak_macs((gsq_i8_isa)isa, 1);
            CHECK(peak > 1e6 && isfinite(peak), "%s: int8 peak %g MAC/s", gsq_i8_isa_name((gsq_i8_isa)isa), peak);
            printf("%s: int8 peak %.1f GMAC/s on one thread\n", gsq_i8_isa_name((gsq_i8_isa)isa), peak / 1e9);
        }
    if (test_isa_only <= 0) {
        double bw = gsq_read_bandwidth(1);
        CHECK(bw > 1e8 && isfinite(bw), "read bandwidth %g B/s", bw);
    }
    /* packing refuses a sparse layout whose group does not divide K */
    gsq_i8_owned_weight pw;
    int8_t w[12] = {0};
    gsq_error err = {0};
    CHECK(gsq_i8_pack(&pw, w, 1, 12, GSQ_I8_SPARSE_4_8, 0, GSQ_I8_ISA_REF, &err) == GSQ_ERR_ARG, "4:8 with K = 12 was packed");
    printf("integer vs float attention: %ld rows, %ld (%.3f%%) with a probability within %g codes of a boundary;\n"
           "  elsewhere the largest difference is %.2e of max|V| (tolerance %g); over all rows %.2e\n",
           fid.rows, fid.near_rows, 100.0 * (double)fid.near_rows / (double)fid.rows, NEAR, fid.tight, TIGHT, fid.all);
    return test_finish("test_backend_ops");
}
