/* The plain-C reference of the engine's integer kernels (int8_gemm.h): activation quantization
 * into the chunk-major layout, and the dense / 2:4 / paired 4:8 integer GEMM with its epilogue.
 * Written for clarity; the fast paths must produce exactly what these produce. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/int8_gemm.h"

void gsq_i8_quantize_row_ref(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax)
{
    int chunks = (K + 7) / 8;
    float q = (float)qmax;
    for (int k = 0; k < chunks * 8; k++) {
        float r = m < M && k < K ? rintf(row[k] * inv) : 0.0f;
        r = r < -q ? -q : (r > q ? q : r);
        xq[gsq_i8_xq_at(m, k / 8, chunks) + k % 8] = (uint8_t)((int)r + 128);
    }
}

/* Code i of a row's chunk: int8, or int4 from the low / high nibble, sign-extended. */
static int code_at(const uint8_t *chunk, int i, int four)
{
    if (!four) return (int8_t)chunk[i];
    int nib = (chunk[i / 2] >> (4 * (i % 2))) & 0xF;
    return nib >= 8 ? nib - 16 : nib;
}

void gsq_i8_gemm_ref(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    size_t cb = gsq_i8_chunk_bytes(w);
    for (int n = 0; n < w->rows; n++)
        for (int m = 0; m < M; m++) {
            int32_t acc = 0;
            for (int c = 0; c < w->chunks; c++) {
                const uint8_t *x = xq + gsq_i8_xq_at(m, c, w->chunks);
                const uint8_t *chunk = w->codes + ((size_t)n * w->chunks + c) * cb;
                if (w->layout == GSQ_I8_DENSE) {
                    for (int j = 0; j < 8; j++) acc += (x[j] - 128) * code_at(chunk, j, w->four);
                } else {
                    uint8_t off[4];
                    gsq_i8_meta_offsets(w->layout, w->meta[(size_t)n * w->chunks + c], off);
                    for (int j = 0; j < 4; j++) acc += (x[off[j]] - 128) * code_at(chunk, j, w->four);
                }
            }
            gsq_i8_epilogue_apply(y + (size_t)m * ldy + n, acc, e, n);
        }
}
