/* The AVX2 and AVX-VNNI (256-bit) paths of the engine's integer kernels (int8_gemm.h), compiled
 * for those ISAs with target attributes whatever the build's -march, and called only where the CPU
 * has them (int8_dispatch.c). Both use the reference's operand layouts and share one quantizer.
 *
 * Dense: one 256-bit register holds 4 activation rows × one chunk of 8 codes; the weight row's 8
 * codes are broadcast to every 64-bit lane, and each 32-bit lane gets the sum of 4 products, so
 * lane pairs hold the two halves of a row's chunk (added at the end).
 *
 * Sparse (2:4 and paired 4:8): per weight row and chunk only the 4 kept codes are multiplied.
 * Two registers hold 8 activation rows × one chunk, each 128-bit lane 2 rows. VPSHUFB gathers,
 * within each lane, the 4 bytes the metadata names for both rows (index from a 256-entry table of
 * the metadata byte); a blend joins the two registers' gathers into 8 rows × 4 bytes, and one dot
 * product multiplies them with the 4 kept codes broadcast to every 32-bit lane.
 *
 * The dot product of 4 bytes per 32-bit lane:
 * - AVX-VNNI: VPDPBUSD on the stored codes x + 128 (u8) and the weights (s8); the sums are
 *   corrected by 128 · Σ w, as the AVX-512 path does.
 * - AVX2 has no VNNI, and VPMADDUBSW (u8 × s8, pairs added in int16) saturates: with x + 128 up to
 *   255 and |w| up to 128 a pair reaches 65280 > 32767. So the codes are flipped to x − 128 (xor
 *   0x80, signed) and the sign moves to them: VPMADDUBSW(|w|, sign(x − 128, w)) multiplies |w| by
 *   ±(x − 128), i.e. w · (x − 128) per byte. Activation codes lie within ±qmax ≤ 127 (the stored
 *   byte is never 0), so x − 128 ∈ [−127, 127] and its negation does not wrap; a weight −128
 *   (outside ±127, but harmless) gives |w| = 0x80 read as the unsigned 128. A pair is therefore at
 *   most 2 · 128 · 127 = 32512 ≤ 32767: no saturation, and VPMADDWD with ones makes the exact
 *   int32 sum of 4 products. The sums are already the reference's Σ (x − 128) · w: no correction.
 *
 * INT4 codes are unpacked in registers: nibbles split by mask and shift, interleaved low first,
 * and sign-extended ((n ^ 8) − 8); no BMI2 (PDEP is slow on Zen 1 and 2, which have AVX2).
 *
 * The exact int32 sums of a block of 32 activation rows and a panel of 64 weight rows are
 * collected in a buffer and then go through the shared scalar epilogue (gsq_i8_epilogue_apply) in
 * long contiguous loops, which the compiler vectorizes: the same IEEE operations, so the outputs
 * equal the reference's bit for bit whatever the epilogue grows to. */
#include <immintrin.h>
#include <string.h>

#include "int8_gemm.h"

#define GSQ_AVX2 __attribute__((target("avx2")))
#define GSQ_AVXVNNI __attribute__((target("avx2,avxvnni")))
#define GSQ_INLINE static inline __attribute__((always_inline))

/* Columns k..k+15 of a row as 16 codes + 128 (those past K read as 0: code 0). */
GSQ_AVX2 static void codes16(uint8_t out[16], const float *row, int k, int K, float inv, int qmax)
{
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps((float)-qmax), hi = _mm256_set1_ps((float)qmax);
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i code[2];
    for (int h = 0; h < 2; h++) {
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(K - k - 8 * h), lanes);
        __m256 v = _mm256_maskload_ps(row + k + 8 * h, mask);
        /* x · inv, then round to nearest even (rintf in the default mode): no contraction */
        __m256 r = _mm256_round_ps(_mm256_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
        code[h] = _mm256_add_epi32(_mm256_cvtps_epi32(r), _mm256_set1_epi32(128));
    }
    /* 1..255 to bytes: per 128-bit lane [c0 0-3, c1 0-3 | c0 4-7, c1 4-7] as dwords 0, 1 | 4, 5 */
    __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(code[0], code[1]), _mm256_setzero_si256());
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5);
    _mm_storeu_si128((__m128i *)out, _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(b, order)));
}

GSQ_AVX2 void gsq_i8_quantize_row_avx2(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax)
{
    gsq_i8_quantize_row(xq, row, m, M, K, inv, qmax, codes16);
}

/* acc + per 32-bit lane the sum of 4 byte products x · w: the ISA's dot product (see the top).
 * The tiles take it as a constant function pointer, not a flag: code compiled for AVX2 alone may
 * not inline the AVX-VNNI intrinsic, but once a tile is inlined into the AVX-VNNI entry point the
 * call is direct there and is inlined. */
typedef __m256i (*gsq_dot_fn)(__m256i acc, __m256i x, __m256i w);

GSQ_AVX2 GSQ_INLINE __m256i dot_avx2(__m256i acc, __m256i x, __m256i w)
{
    __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

GSQ_AVXVNNI GSQ_INLINE __m256i dot_vnni(__m256i acc, __m256i x, __m256i w)
{
    return _mm256_dpbusd_avx_epi32(acc, x, w);
}

/* Packed int4 codes (low nibble first) in the low bytes of every 32-bit lane of v, as the
 * sign-extended bytes: 4 packed bytes repeated give 8 codes per 64-bit lane, 2 give 4 per 32-bit. */
GSQ_AVX2 GSQ_INLINE __m256i unpack_int4(__m256i v)
{
    const __m256i nibble = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
    __m256i lo = _mm256_and_si256(v, nibble), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    __m256i codes = _mm256_unpacklo_epi8(lo, hi);
    return _mm256_sub_epi8(_mm256_xor_si256(codes, eight), eight);
}

/* Register t of a chunk's 4-row registers at xc: the codes x + 128, or x − 128 where `flip`. */
GSQ_AVX2 GSQ_INLINE __m256i load_x(const uint8_t *xc, int t, const int flip)
{
    __m256i x = _mm256_loadu_si256((const __m256i *)(xc + 32 * t));
    return flip ? _mm256_xor_si256(x, _mm256_set1_epi8((char)0x80)) : x;
}

#define GSQ_I8_PANEL 64 /* weight rows whose sums are collected (buf[t][n]) before the epilogue */

/* One tile's sums into the panel buffer, at activation row tl and weight row nl of the panel:
 * sums[hs · r + h] holds, for the tile's weight row r, activation rows 8h.. 8h + 7 in the lane
 * order [0 1 4 5 | 2 3 6 7] (as both tiles leave them), Σ (x + 128) · w when `flip` is 0 (the
 * correction 128 · Σ w is subtracted here) and Σ (x − 128) · w when it is 1. */
GSQ_AVX2 static void store_tile(int32_t buf[GSQ_I8_MBLOCK][GSQ_I8_PANEL], const __m256i *sums, int nr, int hs,
                                int tl, int nl, const int32_t *wsum, int flip)
{
    for (int r = 0; r < nr; r++)
        for (int h = 0; h < hs; h++) {
            int32_t col[8];
            __m256i s = _mm256_permute4x64_epi64(sums[hs * r + h], _MM_SHUFFLE(3, 1, 2, 0));
            _mm256_storeu_si256((__m256i *)col, _mm256_sub_epi32(s, _mm256_set1_epi32(flip ? 0 : 128 * wsum[r])));
            for (int t = 0; t < 8; t++) buf[tl + 8 * h + t][nl + r] = col[t];
        }
}

/* The tiles are written once, with the dot product, `flip` (1: activation codes flipped to x − 128),
 * `four` (int4 codes) and the dense tile's weight rows `nr` compile-time constants, and
 * instantiated per ISA and code width, so the inner loops carry no branch and the 8 accumulators
 * stay in registers. Dense: nr weight rows × 32 / nr activation rows (8 / nr registers of 4 rows);
 * int8 codes run 4 × 8 (measured faster), int4 codes 2 × 16 (half the unpacks per product). */
GSQ_AVX2 GSQ_INLINE void dense_tile(int32_t buf[GSQ_I8_MBLOCK][GSQ_I8_PANEL], const uint8_t *xq,
                                    const gsq_i8_weight *w, int n0, int m, int nl, gsq_dot_fn dot, const int flip,
                                    const int four, const int nr)
{
    const int regs = 8 / nr;
    __m256i acc[GSQ_I8_NBLOCK][4];
    for (int r = 0; r < nr; r++)
        for (int t = 0; t < regs; t++) acc[r][t] = _mm256_setzero_si256();
    size_t cb = gsq_i8_chunk_bytes(w);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < w->chunks; c++) {
        const uint8_t *xc = xq + gsq_i8_xq_at(m, c, w->chunks);
        __m256i a[4];
        for (int t = 0; t < regs; t++) a[t] = load_x(xc, t, flip);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < nr; r++) {
            const uint8_t *wc = w->codes + ((size_t)(n0 + r) * w->chunks + c) * cb;
            __m256i b;
            if (four) {
                uint32_t packed;
                memcpy(&packed, wc, 4);
                b = unpack_int4(_mm256_set1_epi32((int)packed));
            } else {
                uint64_t codes;
                memcpy(&codes, wc, 8);
                b = _mm256_set1_epi64x((long long)codes); /* a broadcast load */
            }
            for (int t = 0; t < regs; t++) acc[r][t] = dot(acc[r][t], a[t], b);
        }
    }
    /* lanes 2i and 2i+1 hold the two halves of a row's chunk sums: add them */
    __m256i sums[8];
    for (int r = 0; r < nr; r++)
        for (int h = 0; h < regs / 2; h++) sums[regs / 2 * r + h] = _mm256_hadd_epi32(acc[r][2 * h], acc[r][2 * h + 1]);
    store_tile(buf, sums, nr, regs / 2, m % GSQ_I8_MBLOCK, nl, w->wsum + n0, flip);
}

/* Sparse: 4 weight rows × 16 activation rows (2 register pairs). */
GSQ_AVX2 GSQ_INLINE void sparse_tile(int32_t buf[GSQ_I8_MBLOCK][GSQ_I8_PANEL], const uint8_t *xq,
                                     const gsq_i8_weight *w, int n0, int m, int nl, const __m128i *lut,
                                     gsq_dot_fn dot, const int flip, const int four)
{
    __m256i acc[2 * GSQ_I8_NBLOCK];
    for (int i = 0; i < 2 * GSQ_I8_NBLOCK; i++) acc[i] = _mm256_setzero_si256();
    size_t cb = gsq_i8_chunk_bytes(w);
    _Pragma("GCC unroll 4")
    for (int c = 0; c < w->chunks; c++) {
        const uint8_t *xc = xq + gsq_i8_xq_at(m, c, w->chunks);
        __m256i a[4];
        for (int t = 0; t < 4; t++) a[t] = load_x(xc, t, flip);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < GSQ_I8_NBLOCK; r++) {
            size_t at = (size_t)(n0 + r) * w->chunks + c;
            const uint8_t *wc = w->codes + at * cb;
            __m256i b;
            if (four) {
                uint16_t packed;
                memcpy(&packed, wc, 2);
                b = unpack_int4(_mm256_set1_epi16((short)packed));
            } else {
                uint32_t codes;
                memcpy(&codes, wc, 4);
                b = _mm256_set1_epi32((int)codes); /* a broadcast load */
            }
            __m256i idx = _mm256_broadcastsi128_si256(_mm_load_si128(&lut[w->meta[at]]));
            /* dwords [rows 0 1 of a[2h], rows 0 1 of a[2h + 1]] per lane: rows [0 1 4 5 | 2 3 6 7] + 8h */
            for (int h = 0; h < 2; h++) {
                __m256i lo = _mm256_shuffle_epi8(a[2 * h], idx), hi = _mm256_shuffle_epi8(a[2 * h + 1], idx);
                __m256i x = _mm256_blend_epi32(lo, hi, 0xCC);
                acc[2 * r + h] = dot(acc[2 * r + h], x, b);
            }
        }
    }
    store_tile(buf, acc, GSQ_I8_NBLOCK, 2, m % GSQ_I8_MBLOCK, nl, w->wsum + n0, flip);
}

/* The metadata byte → VPSHUFB index table of a sparse layout, built once: output byte j of a
 * 128-bit lane takes byte (j / 4 % 2) · 8 + offset[j % 4], the kept bytes of the lane's 2 rows
 * (repeated in the upper half, which the blend replaces). NULL for dense weights. */
static const __m128i *sparse_lut(gsq_i8_layout layout)
{
    static _Alignas(16) uint8_t lut[2][256][16];
    static int ready[2];
    if (layout == GSQ_I8_DENSE) return NULL;
    int which = layout == GSQ_I8_SPARSE_4_8;
    if (!ready[which]) { /* idempotent: a racing first call writes the same bytes */
        for (int v = 0; v < 256; v++) {
            uint8_t off[4];
            gsq_i8_meta_offsets(layout, (uint8_t)v, off);
            for (int j = 0; j < 16; j++) lut[which][v][j] = (uint8_t)((j / 4 % 2) * 8 + off[j % 4]);
        }
        ready[which] = 1;
    }
    return (const __m128i *)lut[which];
}

/* The epilogue of a panel: rows m0.. mend − 1, weight rows p0.. nend − 1. Called once where GELU
 * is on and once where it is off, so that each vectorized loop leaves out the other's work
 * instead of computing GELU in every lane and masking it off. */
GSQ_AVX2 GSQ_INLINE void epilogue_rows(float *y, int ldy, int32_t buf[GSQ_I8_MBLOCK][GSQ_I8_PANEL], int m0, int mend,
                                       int p0, int nend, const gsq_i8_epilogue *e)
{
    for (int m = m0; m < mend; m++)
        for (int n = p0; n < nend; n++) gsq_i8_epilogue_apply(y + (size_t)m * ldy + n, buf[m - m0][n - p0], e, n);
}

/* One block of GSQ_I8_MBLOCK activation rows (starting at m0) through every weight row, panel
 * by panel and tile by tile (the rows past M skipped), for the tiles' instantiation. */
GSQ_AVX2 GSQ_INLINE void row_block(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                                   const gsq_i8_epilogue *e, int m0, const __m128i *lut, gsq_dot_fn dot,
                                   const int flip)
{
    int32_t buf[GSQ_I8_MBLOCK][GSQ_I8_PANEL];
    int nr = w->layout == GSQ_I8_DENSE && w->four ? 2 : GSQ_I8_NBLOCK;
    int mr = w->layout == GSQ_I8_DENSE && !w->four ? 8 : 16;
    int mend = M - m0 < GSQ_I8_MBLOCK ? M : m0 + GSQ_I8_MBLOCK;
    for (int p0 = 0; p0 < w->rows_pad; p0 += GSQ_I8_PANEL) {
        int pend = w->rows_pad - p0 < GSQ_I8_PANEL ? w->rows_pad : p0 + GSQ_I8_PANEL;
        for (int n0 = p0; n0 < pend; n0 += nr)
            for (int m = m0; m < mend; m += mr) {
                if (w->layout == GSQ_I8_DENSE && w->four) dense_tile(buf, xq, w, n0, m, n0 - p0, dot, flip, 1, 2);
                else if (w->layout == GSQ_I8_DENSE) dense_tile(buf, xq, w, n0, m, n0 - p0, dot, flip, 0, GSQ_I8_NBLOCK);
                else if (w->four) sparse_tile(buf, xq, w, n0, m, n0 - p0, lut, dot, flip, 1);
                else sparse_tile(buf, xq, w, n0, m, n0 - p0, lut, dot, flip, 0);
            }
        int nend = w->rows < pend ? w->rows : pend;
        if (e->gelu) epilogue_rows(y, ldy, buf, m0, mend, p0, nend, e);
        else epilogue_rows(y, ldy, buf, m0, mend, p0, nend, e);
    }
}

/* A thread takes a block of activation rows (in cache) through every weight row. The loops sit
 * in the two entry points, so each parallel region inlines its own dot product. */
GSQ_AVX2 void gsq_i8_gemm_avx2(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                               const gsq_i8_epilogue *e)
{
    const __m128i *lut = sparse_lut(w->layout);
    #pragma omp parallel for schedule(static)
    for (int m0 = 0; m0 < M; m0 += GSQ_I8_MBLOCK) row_block(y, ldy, xq, M, w, e, m0, lut, dot_avx2, 1);
}

GSQ_AVXVNNI void gsq_i8_gemm_avxvnni(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w,
                                     const gsq_i8_epilogue *e)
{
    const __m128i *lut = sparse_lut(w->layout);
    #pragma omp parallel for schedule(static)
    for (int m0 = 0; m0 < M; m0 += GSQ_I8_MBLOCK) row_block(y, ldy, xq, M, w, e, m0, lut, dot_vnni, 0);
}
