/* Private: the register layouts of the two tensor-core instructions behind the CUDA INT8 GEMMs,
 * the one-time reorder of weight codes into them, and a CPU emulator of both instructions
 * (mma_layout.c). docs/CUDA.md explains the choices; tests/test_sparse_mma_layout.c pins every
 * formula below to literal register values worked out by hand from the PTX ISA.
 *
 *   sparse: mma.sp::ordered_metadata.sync.aligned.m16n8k64.row.col.s32.s8.s8.s32, selector 0
 *   dense:  mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32
 *
 * The weights are the A operand (the sparse one): a tile's 16 rows are 16 output features, its K
 * columns 64 (sparse) or 32 (dense) input features. B is the activations transposed: its 8
 * columns are 8 tokens, each token's K inputs contiguous in the row-major activation matrix.
 * D (16 × 8) is therefore a transposed tile of the output y (tokens × features).
 *
 * Lane l of the warp has groupID g = l / 4 and threadID_in_group t = l % 4 (PTX's names). The
 * functions below give, for a lane and one of its registers, the first matrix coordinate that
 * register holds; the bytes of a register run along K, low byte first. Both the CPU emulation and
 * the CUDA kernels (src/kernels/cuda/gemm_i8.cu) use these same functions, so the GPU loads its
 * registers exactly as the emulator decodes them. */
#ifndef GSQ_KERNELS_MMA_LAYOUT_H
#define GSQ_KERNELS_MMA_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"
#include "kernels/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GSQ_MMA_M 16     /* rows of A, C, D: output features */
#define GSQ_MMA_N 8      /* columns of B, C, D: tokens */
#define GSQ_MMA_SP_K 64  /* K of the sparse instruction (32 kept codes per A row) */
#define GSQ_MMA_DENSE_K 32
#define GSQ_MMA_PAD_NIBBLE 0x4u /* indices {0, 1}: the metadata of an all-zero (padding) group;
                                 * 0x0 is undefined behaviour for mma.sp */

/* A, both instructions: register r of the lane (4 per lane) holds row g + 8·(r & 1). */
GSQ_HD int gsq_mma_a_row(int lane, int r) { return (lane >> 2) + 8 * (r & 1); }
/* Sparse A: register r holds the kept codes of the 8 columns (two groups of 4) from this one,
 * group by group, each group's two codes in index order: 4 codes out of 8 (PTX ISA "Matrix
 * Fragments for sparse mma.m16n8k64 with .u8/.s8": firstcol = 8t, + 32 for a8..a15). */
GSQ_HD int gsq_mma_sp_a_col(int lane, int r) { return 8 * (lane & 3) + 32 * (r >> 1); }
/* Dense A: register r holds 4 consecutive columns from this one ("Matrix Fragments for
 * mma.m16n8k32": col = 4t + (i & 3), + 16 for a8..a15). */
GSQ_HD int gsq_mma_dense_a_col(int lane, int r) { return 4 * (lane & 3) + 16 * (r >> 1); }
/* Sparse metadata (one register per lane, all four lanes of a group contribute, so the sparsity
 * selector is 0): the lane holds row g + 8·(t & 1), columns 32·(t >> 1) to +31; nibble j (bits
 * 4j..4j+3) is the group of columns +4j..+4j+3, bits 0-1 the index of its first kept code and
 * bits 2-3 the second's, first < second (::ordered_metadata). */
GSQ_HD int gsq_mma_sp_e_row(int lane) { return (lane >> 2) + 8 * (lane & 1); }
GSQ_HD int gsq_mma_sp_e_col(int lane) { return 32 * ((lane >> 1) & 1); }
/* B, both instructions (4 registers sparse, 2 dense): register j holds column (token) g, rows
 * (inputs) 16j + 4t to +3. */
GSQ_HD int gsq_mma_b_col(int lane) { return lane >> 2; }
GSQ_HD int gsq_mma_b_row(int lane, int j) { return 16 * j + 4 * (lane & 3); }
/* C and D, both instructions: element i (4 per lane) is row g + 8·(i >> 1), column 2t + (i & 1). */
GSQ_HD int gsq_mma_c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
GSQ_HD int gsq_mma_c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }

/* A B register: bytes x[n][k..k+3] of the activations x (M, K), row stride ldx, low byte first;
 * bytes outside the matrix (n ≥ M, k ≥ K, the K and token padding) read as 0. On the GPU a whole
 * word is one aligned load (gsq_cuda_i8_gemm requires x and ldx 4-byte aligned). */
GSQ_HD uint32_t gsq_mma_b_word(const int8_t *x, int ldx, int M, int K, int n, int k)
{
    if (n >= M || k >= K) return 0;
    const int8_t *p = x + (size_t)n * (size_t)ldx + (size_t)k;
#ifdef __CUDA_ARCH__
    if (k + 4 <= K) return __ldg((const unsigned int *)p);
#endif
    uint32_t v = 0;
    for (int i = 0; i < 4 && k + i < K; i++) v |= (uint32_t)(uint8_t)p[i] << (8 * i);
    return v;
}

/* A weight (rows outputs × cols inputs) reordered for one of the instructions: tile (rt, kt) of
 * 16 rows × tile_k columns (rows and columns zero-padded) is 32 lanes × 4 A registers at
 * a[((rt · k_tiles + kt) · 32 + lane) · 4 ...], and for sparse 32 metadata registers at
 * e[(rt · k_tiles + kt) · 32 + lane]. A warp walking K for one row tile reads both contiguously,
 * 16 bytes (and 4) per lane. */
typedef struct {
    int sparse;               /* 1: mma.sp m16n8k64 layout; 0: dense mma m16n8k32 */
    int rows, cols;           /* N outputs, K inputs */
    int row_tiles, k_tiles;   /* ceil(rows / 16), ceil(cols / tile_k) */
    uint32_t *a;              /* row_tiles · k_tiles · 32 · 4 */
    uint32_t *e;              /* sparse: row_tiles · k_tiles · 32; dense: NULL */
} gsq_mma_weight;

/* K columns per tile: 64 sparse, 32 dense. */
static inline int gsq_mma_tile_k(const gsq_mma_weight *w) { return w->sparse ? GSQ_MMA_SP_K : GSQ_MMA_DENSE_K; }

/* Reorders a 2:4 weight in the compressed file's form (docs/FORMAT.md, gsq_sparse_compress_row):
 * values int8 (rows, cols / 2), the kept codes group by group; meta u16 (rows, ceil(cols / 16)),
 * group G's nibble in word G / 4, bits 4·(G % 4).. (bits 0-1 first index, 2-3 second). cols must
 * be a multiple of 4 (GSQ_ERR_ARG) and every nibble ordered, first < second (GSQ_ERR_FORMAT).
 * Padding groups get codes 0 and GSQ_MMA_PAD_NIBBLE. */
gsq_status gsq_mma_pack_sparse(gsq_mma_weight *w, const int8_t *values, const uint16_t *meta, int rows, int cols,
                               gsq_error *err);
/* Reorders dense int8 codes (rows, cols) for the dense instruction; any cols ≥ 1. */
gsq_status gsq_mma_pack_dense(gsq_mma_weight *w, const int8_t *codes, int rows, int cols, gsq_error *err);
void gsq_mma_weight_free(gsq_mma_weight *w);

/* The 32 lanes' registers around one instruction. */
typedef struct {
    uint32_t a[32][4]; /* A */
    uint32_t b[32][4]; /* B: 4 registers sparse, the first 2 dense */
    uint32_t e[32];    /* sparse metadata */
    int32_t c[32][4];  /* C on entry, D = A·B + C on return (32-bit wrap-around, no .satfinite) */
} gsq_mma_warp;

/* mma.sp::ordered_metadata m16n8k64 .s8 with selector 0, decoded register by register: the
 * metadata first (every nibble must be one of the six ordered index pairs; any other value is
 * undefined behaviour on the GPU and GSQ_ERR_FORMAT here, naming the lane), then A expanded to its
 * dense 16 × 64 tile, B to 64 × 8, and D = A·B + C. */
gsq_status gsq_mma_sp_emulate(gsq_mma_warp *w, gsq_error *err);
/* mma.sync m16n8k32 .s8: D = A (16 × 32) · B (32 × 8) + C. */
void gsq_mma_dense_emulate(gsq_mma_warp *w);

/* acc (M, ldacc) = x (M, K = w->cols) · wᵀ as int32, row m of x, column n < w->rows of acc:
 * computed as the CUDA kernel computes it, 16 × 8 output tile by tile, each K step one emulated
 * instruction on registers loaded from w's layout and with gsq_mma_b_word. */
gsq_status gsq_mma_gemm_emulate(int32_t *acc, int ldacc, const int8_t *x, int ldx, int M, const gsq_mma_weight *w,
                                gsq_error *err);

#ifdef __cplusplus
}
#endif

#endif
