/* The AVX-512 VNNI fast path of the engine's integer kernels (int8_gemm.h), compiled for that ISA
 * whatever the build's -march, and called only where the CPU has it (int8_dispatch.c).
 *
 * Dense: one 512-bit register holds 8 activation rows × one chunk of 8 codes; the row's 8 weight
 * codes are broadcast to every 64-bit lane and VPDPBUSD adds 4 products per 32-bit lane, so lane
 * pairs hold the two halves of a row's chunk, summed at the end.
 *
 * Sparse (2:4 and paired 4:8): per weight row and chunk only the 4 kept codes are multiplied.
 * Two registers hold 16 activation rows × 8 codes; VPERMT2B gathers, for every row at once, the
 * 4 bytes the metadata names (one index vector per weight row and chunk: a constant base plus the
 * broadcast offsets), and one VPDPBUSD multiplies them with the 4 broadcast kept codes. Half the
 * multiplies of the dense kernel, plus one byte permute each. */
#include <immintrin.h>
#include <string.h>

#include "int8_avx512_inline.h"
#include "int8_gemm.h"

#define GSQ_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi,bmi2")))

/* Columns k..k+15 of a row as 16 codes + 128 (those past K read as 0: code 0). */
GSQ_AVX512 static void codes16(uint8_t out[16], const float *row, int k, int K, float inv, int qmax)
{
    _mm_storeu_si128((__m128i *)out, gsq_i8_quantize16(_mm512_maskz_loadu_ps(gsq_i8_first16(K - k), row + k), inv, qmax));
}

GSQ_AVX512 void gsq_i8_quantize_row_avx512(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax)
{
    gsq_i8_quantize_row(xq, row, m, M, K, inv, qmax, codes16);
}

/* 8 int4 codes (4 bytes, low nibble first) as 8 sign-extended bytes, or 4 codes (2 bytes) as 4. */
GSQ_AVX512 static inline uint64_t unpack8(uint32_t v)
{
    uint64_t u = _pdep_u64(v, 0x0F0F0F0F0F0F0F0FULL) ^ 0x0808080808080808ULL;
    return ((u | 0x8080808080808080ULL) - 0x0808080808080808ULL) ^ 0x8080808080808080ULL;
}

GSQ_AVX512 static inline uint32_t unpack4(uint16_t v) { return (uint32_t)unpack8(v); }

/* The epilogue of one tile: tile[r][t] holds Σ (code_x + 128) · code_w for weight row n0 + r and
 * activation row m0 + t. gsq_i8_epilogue_apply's arithmetic, 16 activation rows at a time
 * (separate multiply and add, as the scalar code compiles without contraction, and GELU's
 * vector twin); the 4 weight rows' vectors are then transposed, so each activation row's 4
 * outputs are one contiguous 16-byte store (weight rows past N are masked off) — or, when the
 * output feeds the next linear, its 4 codes (gsq_i8_quantize16's, of the same floats) are one
 * 4-byte store into that linear's input layout, and y is not touched. */
GSQ_AVX512 static void finish_tile(float *y, int ldy, int32_t tile[GSQ_I8_NBLOCK][GSQ_I8_MBLOCK], int n0, int m0,
                                   int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    _Static_assert(GSQ_I8_NBLOCK == 4, "the transpose below is 4 weight rows wide");
    int valid = w->rows - n0 < GSQ_I8_NBLOCK ? w->rows - n0 : GSQ_I8_NBLOCK, chunks = (w->rows + 7) / 8;
    __mmask8 cols = (__mmask8)((1u << valid) - 1);
    for (int h = 0; h < GSQ_I8_MBLOCK; h += 16) {
        int left = M - (m0 + h);
        if (left <= 0) break;
        __m512 v[GSQ_I8_NBLOCK];
        for (int r = 0; r < GSQ_I8_NBLOCK; r++) {
            int n = n0 + r;
            if (r >= valid) {
                v[r] = _mm512_setzero_ps();
                continue;
            }
            __m512i acc = _mm512_sub_epi32(_mm512_loadu_si512(&tile[r][h]), _mm512_set1_epi32(128 * w->wsum[n]));
            v[r] = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(e->scale[n]));
            v[r] = _mm512_add_ps(v[r], _mm512_set1_ps(e->bias ? e->bias[n] : 0.0f));
            if (e->gelu) v[r] = gsq_gelu_avx512(v[r]);
        }
        /* u[j] lane i (128 bits) = the 4 outputs of activation row h + 4i + j */
        __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
        __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
        __m512 u[4] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE), _mm512_shuffle_ps(t1, t3, 0x44),
                       _mm512_shuffle_ps(t1, t3, 0xEE)};
        if (e->codes) { /* weight rows past N are 0.0: code 0, the layout's padding */
            for (int j = 0; j < 4; j++) {
                uint32_t c[4];
                _mm_storeu_si128((__m128i *)c, gsq_i8_quantize16(u[j], e->code_inv, e->code_qmax));
                for (int i = 0; i < 4 && 4 * i + j < left; i++)
                    memcpy(e->codes + gsq_i8_xq_at(m0 + h + 4 * i + j, n0 / 8, chunks) + n0 % 8, &c[i], 4);
            }
            continue;
        }
        _Alignas(64) float rows[4][16];
        for (int j = 0; j < 4; j++) _mm512_store_ps(rows[j], u[j]);
        for (int t = 0; t < 16 && t < left; t++) {
            __m128 o = _mm_load_ps(&rows[t % 4][4 * (t / 4)]);
            float *dst = y + (size_t)(m0 + h + t) * ldy + n0;
            if (e->accumulate) o = _mm_add_ps(_mm_maskz_loadu_ps(cols, dst), o);
            _mm_mask_storeu_ps(dst, cols, o);
        }
    }
}

/* The tiles are written once with `four` a constant, and instantiated for int8 and int4 codes, so
 * the inner loops carry no branch and the accumulators stay in registers. */
#define GSQ_TILE GSQ_AVX512 static inline __attribute__((always_inline))

GSQ_TILE void dense_tile(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                         const gsq_i8_epilogue *e, int n0, int m0, const int four)
{
    __m512i acc[GSQ_I8_NBLOCK][4];
    for (int r = 0; r < GSQ_I8_NBLOCK; r++)
        for (int t = 0; t < 4; t++) acc[r][t] = _mm512_setzero_si512();
    size_t cb = gsq_i8_chunk_bytes(w);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < w->chunks; c++) {
        const uint8_t *xc = xq + gsq_i8_xq_at(m0, c, w->chunks);
        __m512i a[4];
        for (int t = 0; t < 4; t++) a[t] = _mm512_loadu_si512(xc + 64 * t);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < GSQ_I8_NBLOCK; r++) {
            const uint8_t *wc = w->codes + ((size_t)(n0 + r) * w->chunks + c) * cb;
            __m512i b;
            if (four) {
                uint32_t packed;
                memcpy(&packed, wc, 4);
                b = _mm512_set1_epi64((long long)unpack8(packed));
            } else {
                b = _mm512_broadcastq_epi64(_mm_loadl_epi64((const __m128i *)wc)); /* a broadcast load */
            }
            for (int t = 0; t < 4; t++) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], a[t], b);
        }
    }
    /* lanes 2i and 2i+1 hold the two halves of row i's chunk sums: add them, keep the even lanes */
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    int32_t tile[GSQ_I8_NBLOCK][GSQ_I8_MBLOCK];
    for (int r = 0; r < GSQ_I8_NBLOCK; r++)
        for (int t = 0; t < 4; t += 2) {
            __m512i s0 = _mm512_add_epi32(acc[r][t], _mm512_shuffle_epi32(acc[r][t], _MM_PERM_CDAB));
            __m512i s1 = _mm512_add_epi32(acc[r][t + 1], _mm512_shuffle_epi32(acc[r][t + 1], _MM_PERM_CDAB));
            _mm512_storeu_si512(&tile[r][8 * t], _mm512_permutex2var_epi32(s0, even, s1));
        }
    finish_tile(y, ldy, tile, n0, m0, M, w, e);
}

GSQ_TILE void sparse_tile(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                          const gsq_i8_epilogue *e, int n0, int m0, const __m512i *lut, const int four)
{
    __m512i acc[GSQ_I8_NBLOCK][2];
    for (int r = 0; r < GSQ_I8_NBLOCK; r++) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    size_t cb = gsq_i8_chunk_bytes(w);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < w->chunks; c++) {
        const uint8_t *xc = xq + gsq_i8_xq_at(m0, c, w->chunks);
        __m512i a0 = _mm512_loadu_si512(xc), a1 = _mm512_loadu_si512(xc + 64);
        __m512i a2 = _mm512_loadu_si512(xc + 128), a3 = _mm512_loadu_si512(xc + 192);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < GSQ_I8_NBLOCK; r++) {
            size_t at = (size_t)(n0 + r) * w->chunks + c;
            const uint8_t *wc = w->codes + at * cb;
            __m512i b;
            if (four) {
                uint16_t packed;
                memcpy(&packed, wc, 2);
                b = _mm512_set1_epi32((int)unpack4(packed));
            } else {
                b = _mm512_broadcastd_epi32(_mm_loadu_si32(wc)); /* a broadcast load */
            }
            __m512i idx = _mm512_load_si512(&lut[w->meta[at]]);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], _mm512_permutex2var_epi8(a0, idx, a1), b);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], _mm512_permutex2var_epi8(a2, idx, a3), b);
        }
    }
    int32_t tile[GSQ_I8_NBLOCK][GSQ_I8_MBLOCK];
    for (int r = 0; r < GSQ_I8_NBLOCK; r++) {
        _mm512_storeu_si512(&tile[r][0], acc[r][0]);
        _mm512_storeu_si512(&tile[r][16], acc[r][1]);
    }
    finish_tile(y, ldy, tile, n0, m0, M, w, e);
}

/* The parts of the next linear's input layout no tile writes: code 0 (128) in the padding rows
 * M..Mpad-1, and in the columns from N rounded up to a tile's 4 to the chunks' end. */
GSQ_AVX512 static void pad_codes(uint8_t *codes, int M, const gsq_i8_weight *w)
{
    int chunks = (w->rows + 7) / 8, from = w->rows_pad % 8;
    for (int m = M; m < gsq_i8_mpad(M); m++)
        for (int c = 0; c < chunks; c++) memset(codes + gsq_i8_xq_at(m, c, chunks), 128, 8);
    for (int m = 0; from && m < M; m++) memset(codes + gsq_i8_xq_at(m, chunks - 1, chunks) + from, 128, (size_t)(8 - from));
}

GSQ_AVX512 void gsq_i8_gemm_avx512(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                                   const gsq_i8_epilogue *e)
{
    int mpad = gsq_i8_mpad(M), nb = w->rows_pad / GSQ_I8_NBLOCK, mb = mpad / GSQ_I8_MBLOCK;
    /* metadata byte → the VPERMT2B index vector: output byte j takes byte (j / 4) · 8 + offset[j % 4]
     * of the pair of registers that hold 16 activation rows' chunks */
    static _Alignas(64) uint8_t lut[2][256][64];
    static int lut_ready[2];
    int which = w->layout == GSQ_I8_SPARSE_4_8;
    if (w->layout != GSQ_I8_DENSE && !lut_ready[which]) { /* idempotent: a racing first call writes the same bytes */
        for (int v = 0; v < 256; v++) {
            uint8_t off[4];
            gsq_i8_meta_offsets(w->layout, (uint8_t)v, off);
            for (int j = 0; j < 64; j++) lut[which][v][j] = (uint8_t)((j / 4) * 8 + off[j % 4]);
        }
        lut_ready[which] = 1;
    }
    const __m512i *table = (const __m512i *)lut[which];
    /* a thread takes a block of activation rows (in cache) through every weight row */
    #pragma omp parallel for schedule(static)
    for (int j = 0; j < mb; j++)
        for (int i = 0; i < nb; i++) {
            int n0 = i * GSQ_I8_NBLOCK, m0 = j * GSQ_I8_MBLOCK;
            if (w->layout == GSQ_I8_DENSE && w->four) dense_tile(y, ldy, xq, M, w, e, n0, m0, 1);
            else if (w->layout == GSQ_I8_DENSE) dense_tile(y, ldy, xq, M, w, e, n0, m0, 0);
            else if (w->four) sparse_tile(y, ldy, xq, M, w, e, n0, m0, table, 1);
            else sparse_tile(y, ldy, xq, M, w, e, n0, m0, table, 0);
        }
    if (e->codes) pad_codes(e->codes, M, w);
}
