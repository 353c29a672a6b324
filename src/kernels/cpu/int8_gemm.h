/* Private: the integer GEMM of the CPU engine, its operand layouts, and its implementations —
 * the plain-C reference (int8_gemm_ref.c, the specification) and the fast paths, one per
 * instruction set (gsq_i8_isa), chosen at run time (int8_dispatch.c). All compute the same exact
 * integer sums and then the same scalar epilogue, so their outputs agree bit for bit.
 *
 * Activations (the GEMM input, M rows of K values) are quantized into blocks of GSQ_I8_MBLOCK
 * rows, chunk by chunk: xq[m / 32][c][m % 32][j] = code(x[m][8c + j]) + 128 for chunk
 * c < ceil(K/8), row m < Mpad, j < 8, where Mpad rounds M up to GSQ_I8_MBLOCK; padding columns
 * and rows hold 128 (code 0). One row block is contiguous, so a GEMM tile reads it from cache for
 * every weight row. The +128 makes the codes unsigned for VNNI's u8 × s8 products; the GEMM
 * subtracts 128 · Σ w again.
 *
 * Weights (N output rows of K inputs) are held as the compressed file holds them: per row and
 * chunk of 8 inputs either 8 codes (dense) or the 4 kept codes and one metadata byte (sparse:
 * 2:4, two groups of 4 with their 2-bit index nibbles, or paired 4:8, one group of 8 with its
 * pair-index nibble). Codes are int8, or int4 packed two per byte (low nibble first).
 *
 * AMX has layouts of its own (int8_gemm_amx.c, int8_pack_amx.c). Activations are row-major,
 * rows padded to 32 and K to a multiple of 64: xq[m][k] = code + 128. Weights come in panels of
 * 16 rows, each a column of AMX B tiles: tile row g holds inputs 4g..4g+3 of the 16 rows,
 * [row][4] bytes. Dense panels hold those bytes (int4: packed two per byte). Sparse panels keep
 * only the kept codes: per tile row a 64-bit mask of the kept bytes, and the kept codes in the
 * order the mask names them (32 per tile row for 2:4; for 4:8, 64 per pair of tile rows), which
 * VPEXPANDB spreads back into a dense tile before the tile multiply. */
#ifndef GSQ_ENGINE_INT8_GEMM_H
#define GSQ_ENGINE_INT8_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gelu_approx.h"
#include "kernels/arch.h"

/* The kernels' instruction sets, from the plain-C reference up. */
typedef enum {
    GSQ_I8_ISA_REF,      /* plain C: the specification */
    GSQ_I8_ISA_AVX2,     /* AVX2 (Haswell and later, Zen) */
    GSQ_I8_ISA_AVX_VNNI, /* AVX-VNNI, 256-bit (Alder Lake and later) */
    GSQ_I8_ISA_AVX512,   /* AVX-512 F/BW/VL, VNNI and VBMI (Ice Lake, Sapphire Rapids, Zen 4) */
    GSQ_I8_ISA_AMX,      /* AMX-INT8 tiles, with AVX-512 VBMI2 (Sapphire Rapids and later), where the OS grants them */
    GSQ_I8_ISA_COUNT
} gsq_i8_isa;

/* What the CPU (and OS) offers the kernels, as bits; an instruction set runs where the CPU has
 * every bit its kernels need. */
enum {
    GSQ_CAP_AVX2 = 1u << 0,
    GSQ_CAP_AVX_VNNI = 1u << 1,
    GSQ_CAP_AVX512 = 1u << 2,       /* F, BW, VL, VNNI, VBMI, and BMI2 */
    GSQ_CAP_AVX512_VBMI2 = 1u << 3,
    GSQ_CAP_AMX_INT8 = 1u << 4,     /* AMX-TILE and AMX-INT8, with the tile state granted by the OS */
};
unsigned gsq_i8_cpu_caps(void);
/* The bits isa's kernels need (0 for the reference). */
unsigned gsq_i8_isa_needs(gsq_i8_isa isa);
/* 1 when this CPU (and OS) can run isa's kernels. */
int gsq_i8_isa_supported(gsq_i8_isa isa);
/* The instruction set the engine uses: the best supported one, or GSQ_ISA's choice from the
 * environment (ref, avx2, avx-vnni, avx512, amx) where it is supported. */
gsq_i8_isa gsq_i8_isa_active(void);
const char *gsq_i8_isa_name(gsq_i8_isa isa);
/* The instruction set a key names (GSQ_ISA's words: ref, avx2, avx-vnni, avx512, amx), or -1. */
int gsq_i8_isa_from_key(const char *key);

#define GSQ_I8_MBLOCK 32 /* activation rows are padded to a multiple of this */
#define GSQ_I8_NBLOCK 4  /* weight rows are padded to a multiple of this */

typedef enum {
    GSQ_I8_DENSE,       /* 8 codes per chunk */
    GSQ_I8_SPARSE_2_4,  /* 4 kept codes per chunk; meta: group 2c in bits 0-3, group 2c+1 in bits 4-7 */
    GSQ_I8_SPARSE_4_8,  /* 4 kept codes per chunk (2 pairs); meta bits 0-3: the pair indices */
} gsq_i8_layout;

typedef struct {
    gsq_i8_isa isa;      /* the kernels it is packed for */
    gsq_i8_layout layout;
    int four;            /* 1: codes are int4, packed two per byte */
    int rows, rows_pad;  /* N, and N rounded up to GSQ_I8_NBLOCK (AMX: 32; padding rows are zero) */
    int cols, chunks;    /* K, and ceil(K / 8) */
    const uint8_t *codes; /* rows_pad · chunks · (8 dense, 4 sparse) codes, int8 or packed int4 (AMX: its panels) */
    const uint8_t *meta;  /* sparse: rows_pad · chunks bytes (AMX: the panels' 64-bit masks) */
    const int32_t *wsum;  /* rows_pad: Σ of the row's codes (the +128 correction) */
} gsq_i8_weight;

/* y (M, ldy) from the exact sums acc[m][n] = Σ_k code_x · code_w:
 * v = (float)acc · scale[n] + bias[n] (bias may be NULL); v = GELU(v) when gelu (gelu_approx.h);
 * y = v, or y += v (residual). The engine sets gelu only for fc1, which stores.
 *
 * With codes set, v goes on as the next GEMM's input instead: codes receives exactly what
 * gsq_i8_quantize(w->isa, codes, v, M, N, …, code_inv, code_qmax) would write, in that instruction
 * set's input layout (K = N, this GEMM's output rows). Where gsq_i8_fuses_codes (AMX, AVX-512) the
 * epilogue quantizes, so the float values never reach memory and y is not touched; the other
 * instruction sets store them in y (scratch for M × N floats) and quantize from there. Not with
 * accumulate. */
typedef struct {
    const float *scale, *bias;
    int accumulate, gelu;
    uint8_t *codes;
    float code_inv;
    int code_qmax;
} gsq_i8_epilogue;

static inline int gsq_i8_fuses_codes(gsq_i8_isa isa) { return isa == GSQ_I8_ISA_AMX || isa == GSQ_I8_ISA_AVX512; }

static inline void gsq_i8_epilogue_apply(float *y, int32_t acc, const gsq_i8_epilogue *e, int n)
{
    float v = (float)acc * e->scale[n];
    v = v + (e->bias ? e->bias[n] : 0.0f); /* its own statement: never contracted to an FMA */
    if (e->gelu) v = gsq_gelu_approx(v);
    *y = e->accumulate ? *y + v : v;
}

/* Bytes of one row's codes per chunk. */
static inline size_t gsq_i8_chunk_bytes(const gsq_i8_weight *w)
{
    size_t codes = w->layout == GSQ_I8_DENSE ? 8 : 4;
    return w->four ? codes / 2 : codes;
}

/* The byte offsets (0..7) within a chunk of the 4 kept codes named by a sparse metadata byte. */
static inline void gsq_i8_meta_offsets(gsq_i8_layout layout, uint8_t meta, uint8_t off[4])
{
    if (layout == GSQ_I8_SPARSE_2_4) {
        off[0] = meta & 3, off[1] = (meta >> 2) & 3, off[2] = 4 + ((meta >> 4) & 3), off[3] = 4 + (meta >> 6);
    } else {
        int p0 = meta & 3, p1 = (meta >> 2) & 3;
        off[0] = (uint8_t)(2 * p0), off[1] = (uint8_t)(2 * p0 + 1), off[2] = (uint8_t)(2 * p1),
        off[3] = (uint8_t)(2 * p1 + 1);
    }
}

/* Row m of the chunk-major input (M activation rows of K values, Mpad rows in all) from row (K
 * floats; not read for padding rows m ≥ M): code = clamp(rint(x · inv), ±qmax) + 128, exactly
 * gsq_quantize_codes' rounding; padding columns and rows code 0. gsq_i8_quantize (below) runs it
 * over all rows; callers that make the rows one at a time (a LayerNorm fused with its
 * quantization) call gsq_i8_quantize_one. */
void gsq_i8_quantize_row_ref(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax);
void gsq_i8_quantize_row_avx512(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax);
void gsq_i8_quantize_row_avx2(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax); /* AVX-VNNI too */

/* y = epilogue(xq · wᵀ) for the M rows of xq (packed for M) and w's first `rows` rows. */
void gsq_i8_gemm_ref(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e);
void gsq_i8_gemm_avx512(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                        const gsq_i8_epilogue *e);
void gsq_i8_gemm_avx2(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e);
void gsq_i8_gemm_avxvnni(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                         const gsq_i8_epilogue *e);

/* AMX: its own input layout (above); 1 once the OS has granted this process the tile state. */
int gsq_i8_amx_granted(void);
/* Configures this thread's tiles as the kernels use them: 0-3 the int32 accumulators, 4 and 5
 * activation rows, 6 and 7 weight panels, all 16 rows × 64 bytes. */
void gsq_i8_amx_tiles_on(void);
static inline int gsq_i8_amx_kpad(int K) { return (K + 63) / 64 * 64; }
static inline int gsq_i8_amx_mpad(int M) { return (M + 31) / 32 * 32; }
void gsq_i8_quantize_row_amx(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax);
void gsq_i8_gemm_amx(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e);

/* The ceilings (int8_peak.c): multiply-accumulates per second of isa's core int8 instruction on
 * data in registers, every one of threads threads running it at once; and bytes per second the
 * threads read from a buffer far larger than the caches (0 when it cannot be allocated). */
double gsq_i8_peak_macs(gsq_i8_isa isa, int threads);
double gsq_read_bandwidth(int threads);

/* The dispatched kernels (int8_dispatch.c): quantize x (M, K), row stride ldx, into isa's input
 * layout (all gsq_i8_input_rows rows, a parallel loop over its row quantizer), or one row m of it;
 * and the GEMM of the instruction set w is packed for (its input quantized for the same one). */
size_t gsq_i8_input_bytes(gsq_i8_isa isa, int M, int K);
void gsq_i8_quantize(gsq_i8_isa isa, uint8_t *xq, const float *x, int M, int K, int ldx, float inv, int qmax);
void gsq_i8_quantize_one(gsq_i8_isa isa, uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax);
void gsq_i8_gemm(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e);

/* The byte offset of row m's chunk c in the activation layout of `chunks` chunks per row. */
static inline size_t gsq_i8_xq_at(int m, int c, int chunks)
{
    return (((size_t)(m / GSQ_I8_MBLOCK) * (size_t)chunks + (size_t)c) * GSQ_I8_MBLOCK + (size_t)(m % GSQ_I8_MBLOCK)) * 8;
}

/* Rows padded for the activation layout, and its size in bytes. */
static inline int gsq_i8_mpad(int M) { return (M + GSQ_I8_MBLOCK - 1) / GSQ_I8_MBLOCK * GSQ_I8_MBLOCK; }
/* The rows isa's input layout holds for M activation rows, each a row for gsq_i8_quantize_one. */
static inline int gsq_i8_input_rows(gsq_i8_isa isa, int M)
{
    return isa == GSQ_I8_ISA_AMX ? gsq_i8_amx_mpad(M) : gsq_i8_mpad(M);
}
static inline size_t gsq_i8_xq_bytes(int M, int K) { return (size_t)gsq_i8_mpad(M) * (size_t)((K + 7) / 8) * 8; }

/* Row m of the fast quantizers' chunk-major layout, inlined into each instruction set's row
 * quantizer (so that codes16 is a direct call there): codes16(out, row, k, K, inv, qmax) turns
 * columns k..k+15 of a row (those past K as 0) into 16 codes + 128, stored as chunks k/8 and
 * k/8 + 1 (the second where it exists); padding rows (m ≥ M) are code 0 throughout. */
typedef void (*gsq_i8_codes16_fn)(uint8_t out[16], const float *row, int k, int K, float inv, int qmax);
static inline __attribute__((always_inline)) void gsq_i8_quantize_row(uint8_t *xq, const float *row, int m, int M,
                                                                      int K, float inv, int qmax,
                                                                      gsq_i8_codes16_fn codes16)
{
    int chunks = (K + 7) / 8;
    for (int c = 0; c < chunks; c += 2) {
        uint8_t codes[16];
        if (m < M) codes16(codes, row, 8 * c, K, inv, qmax);
        else memset(codes, 128, sizeof codes);
        memcpy(xq + gsq_i8_xq_at(m, c, chunks), codes, 8);
        if (c + 1 < chunks) memcpy(xq + gsq_i8_xq_at(m, c + 1, chunks), codes + 8, 8);
    }
}

#endif
