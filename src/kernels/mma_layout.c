/* The tensor-core register layouts of the CUDA INT8 GEMMs on the CPU (mma_layout.h): the one-time
 * reorder of a weight into per-lane A fragments (and mma.sp metadata registers), emulators of
 * mma.sp m16n8k64 .s8 and mma m16n8k32 .s8 that decode the 32 lanes' registers as the PTX ISA
 * defines them, and the GEMM of the CUDA kernel run tile by tile through the emulators. */
#include "kernels/mma_layout.h"

#include <stdlib.h>
#include <string.h>

#include "gpusq/sparse.h"

void gsq_mma_weight_free(gsq_mma_weight *w)
{
    free(w->a);
    free(w->e);
    memset(w, 0, sizeof *w);
}

/* The empty tiles of a rows × cols weight for the sparse or dense instruction. */
static gsq_status alloc_tiles(gsq_mma_weight *w, int sparse, int rows, int cols, gsq_error *err)
{
    w->sparse = sparse;
    w->rows = rows;
    w->cols = cols;
    w->row_tiles = (rows + GSQ_MMA_M - 1) / GSQ_MMA_M;
    w->k_tiles = (cols + gsq_mma_tile_k(w) - 1) / gsq_mma_tile_k(w);
    size_t lanes = (size_t)w->row_tiles * (size_t)w->k_tiles * 32;
    w->a = calloc(lanes * 4, sizeof(uint32_t));
    w->e = sparse ? calloc(lanes, sizeof(uint32_t)) : NULL;
    if (!w->a || (sparse && !w->e)) {
        gsq_mma_weight_free(w);
        return gsq_fail(err, GSQ_ERR_NOMEM, "mma: out of memory reordering a %d × %d weight", rows, cols);
    }
    return GSQ_OK;
}

/* Group G's metadata nibble in a row of the file's u16 words. */
static unsigned nibble_of(const uint16_t *row_meta, int G)
{
    return (unsigned)(row_meta[G / 4] >> (4 * (G % 4))) & 0xFu;
}

gsq_status gsq_mma_pack_sparse(gsq_mma_weight *w, const int8_t *values, const uint16_t *meta, int rows, int cols,
                               gsq_error *err)
{
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 4 || cols % 4)
        return gsq_fail(err, GSQ_ERR_ARG, "mma: a 2:4 weight of %d × %d needs rows ≥ 1 and inputs a multiple of 4",
                        rows, cols);
    int groups = cols / 4, words = gsq_sparse_meta_words(GSQ_SPARSE_2_4, cols), half = cols / 2;
    for (int r = 0; r < rows; r++)
        for (int G = 0; G < groups; G++) {
            unsigned nib = nibble_of(meta + (size_t)r * words, G);
            if ((nib & 3u) >= (nib >> 2))
                return gsq_fail(err, GSQ_ERR_FORMAT,
                                "mma: row %d group %d: metadata nibble 0x%x is not two increasing indices", r, G, nib);
        }
    gsq_status st = alloc_tiles(w, 1, rows, cols, err);
    if (st != GSQ_OK) return st;
    for (int rt = 0; rt < w->row_tiles; rt++)
        for (int kt = 0; kt < w->k_tiles; kt++)
            for (int lane = 0; lane < 32; lane++) {
                size_t at = ((size_t)rt * w->k_tiles + kt) * 32 + lane;
                for (int r = 0; r < 4; r++) {
                    int row = rt * GSQ_MMA_M + gsq_mma_a_row(lane, r);
                    int first = (kt * GSQ_MMA_SP_K + gsq_mma_sp_a_col(lane, r)) / 2; /* its first kept code */
                    uint32_t v = 0;
                    for (int i = 0; i < 4 && row < rows && first + i < half; i++)
                        v |= (uint32_t)(uint8_t)values[(size_t)row * half + first + i] << (8 * i);
                    w->a[at * 4 + r] = v;
                }
                int row = rt * GSQ_MMA_M + gsq_mma_sp_e_row(lane);
                int G0 = (kt * GSQ_MMA_SP_K + gsq_mma_sp_e_col(lane)) / 4;
                uint32_t e = 0;
                for (int j = 0; j < 8; j++) {
                    int G = G0 + j;
                    unsigned nib = row < rows && G < groups ? nibble_of(meta + (size_t)row * words, G) : GSQ_MMA_PAD_NIBBLE;
                    e |= (uint32_t)nib << (4 * j);
                }
                w->e[at] = e;
            }
    return GSQ_OK;
}

gsq_status gsq_mma_pack_dense(gsq_mma_weight *w, const int8_t *codes, int rows, int cols, gsq_error *err)
{
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "mma: a dense weight of %d × %d is empty", rows, cols);
    gsq_status st = alloc_tiles(w, 0, rows, cols, err);
    if (st != GSQ_OK) return st;
    for (int rt = 0; rt < w->row_tiles; rt++)
        for (int kt = 0; kt < w->k_tiles; kt++)
            for (int lane = 0; lane < 32; lane++)
                for (int r = 0; r < 4; r++) {
                    int row = rt * GSQ_MMA_M + gsq_mma_a_row(lane, r);
                    int col = kt * GSQ_MMA_DENSE_K + gsq_mma_dense_a_col(lane, r);
                    uint32_t v = 0;
                    for (int i = 0; i < 4 && row < rows && col + i < cols; i++)
                        v |= (uint32_t)(uint8_t)codes[(size_t)row * cols + col + i] << (8 * i);
                    w->a[(((size_t)rt * w->k_tiles + kt) * 32 + lane) * 4 + r] = v;
                }
    return GSQ_OK;
}

/* Byte i of register v as the signed code it holds. */
static int32_t code_in(uint32_t v, int i)
{
    return (int8_t)(uint8_t)(v >> (8 * i));
}

/* B (K × 8) from the lanes' B registers (K / 16 of them per lane). */
static void decode_b(const gsq_mma_warp *w, int32_t *B, int K)
{
    for (int lane = 0; lane < 32; lane++)
        for (int j = 0; j < K / 16; j++)
            for (int i = 0; i < 4; i++)
                B[(gsq_mma_b_row(lane, j) + i) * GSQ_MMA_N + gsq_mma_b_col(lane)] = code_in(w->b[lane][j], i);
}

/* D = A (16 × K) · B (K × 8) + C, element by element through the C/D layout, wrapping at 32 bits. */
static void multiply_accumulate(gsq_mma_warp *w, const int32_t *A, const int32_t *B, int K)
{
    for (int lane = 0; lane < 32; lane++)
        for (int i = 0; i < 4; i++) {
            int row = gsq_mma_c_row(lane, i), col = gsq_mma_c_col(lane, i);
            uint32_t d = (uint32_t)w->c[lane][i];
            for (int k = 0; k < K; k++) d += (uint32_t)(A[row * K + k] * B[k * GSQ_MMA_N + col]);
            w->c[lane][i] = (int32_t)d;
        }
}

gsq_status gsq_mma_sp_emulate(gsq_mma_warp *w, gsq_error *err)
{
    enum { K = GSQ_MMA_SP_K, G = GSQ_MMA_SP_K / 4 };
    uint8_t idx[GSQ_MMA_M][G][2]; /* the two kept positions of each row's groups */
    for (int lane = 0; lane < 32; lane++) {
        int row = gsq_mma_sp_e_row(lane), G0 = gsq_mma_sp_e_col(lane) / 4;
        for (int j = 0; j < 8; j++) {
            unsigned nib = (w->e[lane] >> (4 * j)) & 0xFu;
            if ((nib & 3u) >= (nib >> 2))
                return gsq_fail(err, GSQ_ERR_FORMAT,
                                "mma.sp: lane %d metadata 0x%08x: nibble %d (0x%x) is not two increasing indices "
                                "(undefined for ::ordered_metadata)", lane, (unsigned)w->e[lane], j, nib);
            idx[row][G0 + j][0] = (uint8_t)(nib & 3u);
            idx[row][G0 + j][1] = (uint8_t)(nib >> 2);
        }
    }
    int32_t A[GSQ_MMA_M * K] = {0}, B[K * GSQ_MMA_N];
    for (int lane = 0; lane < 32; lane++)
        for (int r = 0; r < 4; r++) {
            int row = gsq_mma_a_row(lane, r), G0 = gsq_mma_sp_a_col(lane, r) / 4;
            for (int i = 0; i < 4; i++) {
                int g = G0 + i / 2;
                A[row * K + 4 * g + idx[row][g][i % 2]] = code_in(w->a[lane][r], i);
            }
        }
    decode_b(w, B, K);
    multiply_accumulate(w, A, B, K);
    return GSQ_OK;
}

void gsq_mma_dense_emulate(gsq_mma_warp *w)
{
    enum { K = GSQ_MMA_DENSE_K };
    int32_t A[GSQ_MMA_M * K], B[K * GSQ_MMA_N];
    for (int lane = 0; lane < 32; lane++)
        for (int r = 0; r < 4; r++)
            for (int i = 0; i < 4; i++)
                A[gsq_mma_a_row(lane, r) * K + gsq_mma_dense_a_col(lane, r) + i] = code_in(w->a[lane][r], i);
    decode_b(w, B, K);
    multiply_accumulate(w, A, B, K);
}

gsq_status gsq_mma_gemm_emulate(int32_t *acc, int ldacc, const int8_t *x, int ldx, int M, const gsq_mma_weight *w,
                                gsq_error *err)
{
    int tk = gsq_mma_tile_k(w), K = w->cols;
    gsq_mma_warp warp;
    for (int rt = 0; rt < w->row_tiles; rt++)
        for (int n0 = 0; n0 < M; n0 += GSQ_MMA_N) {
            memset(&warp, 0, sizeof warp);
            for (int kt = 0; kt < w->k_tiles; kt++) {
                size_t tile = ((size_t)rt * w->k_tiles + kt) * 32;
                for (int lane = 0; lane < 32; lane++) {
                    memcpy(warp.a[lane], w->a + (tile + lane) * 4, sizeof warp.a[lane]);
                    if (w->sparse) warp.e[lane] = w->e[tile + lane];
                    for (int j = 0; j < tk / 16; j++)
                        warp.b[lane][j] = gsq_mma_b_word(x, ldx, M, K, n0 + gsq_mma_b_col(lane), kt * tk + gsq_mma_b_row(lane, j));
                }
                if (!w->sparse) {
                    gsq_mma_dense_emulate(&warp);
                    continue;
                }
                gsq_status st = gsq_mma_sp_emulate(&warp, err);
                if (st != GSQ_OK) return st;
            }
            for (int lane = 0; lane < 32; lane++)
                for (int i = 0; i < 4; i++) {
                    int row = rt * GSQ_MMA_M + gsq_mma_c_row(lane, i), n = n0 + gsq_mma_c_col(lane, i);
                    if (row < w->rows && n < M) acc[(size_t)n * ldacc + row] = warp.c[lane][i];
                }
        }
    return GSQ_OK;
}
