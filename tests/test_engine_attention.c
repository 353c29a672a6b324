/* Tests of the engine's integer attention (src/kernels/cpu/attention_int8.h) on random data and awkward
 * shapes (1, 2, 5, 17 and 197 tokens; head dimension 8, 32, 64; 1-3 heads; 1-2 images; 8-bit and
 * 4-bit codes): every instruction set this CPU has against the plain-C reference, bit for bit; and
 * the reference against the fake-quantized float attention (Q, K, V fake-quantized, then
 * gsq_attention_forward with quantized probabilities), within the tolerance below. The engine
 * end to end with quantized attention is tests/test_engine.c's. */
#include <string.h>

#include "kernels/cpu/attention_int8.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"
#include "test_isa.h"
#include "test_util.h"

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

static void check_case(int B, int T, int HD, int NH, int qmax, gsq_rng *rng, fidelity *fid)
{
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

    gsq_att8_forward(GSQ_I8_ISA_REF, ref, qkv, B, T, C, NH, scales, qmax, scratch);
    for (int i = GSQ_I8_ISA_REF + 1; i < GSQ_I8_ISA_COUNT; i++) {
        if (!test_isa_selected((gsq_i8_isa)i)) continue;
        memset(fast, 0xFF, n_out * sizeof(float));
        gsq_att8_forward((gsq_i8_isa)i, fast, qkv, B, T, C, NH, scales, qmax, scratch);
        CHECK(!memcmp(ref, fast, n_out * sizeof(float)), "%s B=%d T=%d HD=%d NH=%d qmax=%d: differs from the reference",
              gsq_i8_isa_name((gsq_i8_isa)i), B, T, HD, NH, qmax);
    }

    /* the float path: fake-quantized Q, K, V; the probabilities fake-quantized inside */
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int k = 0; k < 3; k++) {
            size_t o = (r * 3 + (size_t)k) * C;
            gsq_fake_quant(fq + o, qkv + o, (size_t)C, scales[k], qmax);
        }
    gsq_attention_forward(flt, att, att_q, 1.0f / (float)qmax, qmax, fq, B, T, C, NH);
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
    free(qkv), free(fq), free(ref), free(fast), free(flt), free(att), free(att_q), free(scratch);
}

int main(int argc, char **argv)
{
    int rc = test_isa_args("test_engine_attention", argc, argv);
    if (rc >= 0) return rc;
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    static const int tokens[] = {1, 2, 5, 17, 197}, dims[] = {8, 32, 64};
    fidelity fid = {0};
    int n = 0;
    for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++)
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
            for (int heads = 1; heads <= 3; heads++)
                for (int B = 1; B <= 2; B++) check_case(B, tokens[t], dims[d], heads, n++ % 3 ? 127 : 7, &rng, &fid);
    printf("integer vs float attention: %ld rows, %ld (%.3f%%) with a probability within %g codes of a boundary;\n"
           "  elsewhere the largest difference is %.2e of max|V| (tolerance %g); over all rows %.2e\n",
           fid.rows, fid.near_rows, 100.0 * (double)fid.near_rows / (double)fid.rows, NEAR, fid.tight, TIGHT, fid.all);
    return test_finish("test_engine_attention");
}
