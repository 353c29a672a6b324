/* The AVX-512 VNNI fast path of the engine's integer attention (attention_int8.h), compiled for
 * that ISA whatever the build's -march and called only where the CPU has it.
 *
 * QKᵀ: K is packed per block of 16 keys as [HD/4][16 keys][4 codes], so one register holds 4
 * dimensions of 16 keys; a query's 4 codes + 128 (unsigned) are broadcast and VPDPBUSD (u8 × s8)
 * adds their 4 products per key. The +128 adds 128 · Σ_d Kcode to each key's sum: a vector per
 * block of 16 keys, made once with the packing and subtracted from every tile. A tile is 4 query
 * rows × 2 key blocks (8 accumulators).
 *
 * AV: the probability codes are unsigned already. V is packed per group of 4 tokens as
 * [d][4 tokens] (VPERMB interleaves 4 rows of 16 codes), so one register holds 16 dimensions × 4
 * tokens; a row's 4 probability codes are broadcast. A tile is 4 query rows × up to 64
 * dimensions (16 accumulators).
 *
 * The float softmax between them is attention_int8.h's gsq_att8_probs, written here with the
 * reductions and the codes in AVX-512 (probs_avx512): the same operations in the same order,
 * around the same exponential loop (gsq_att8_exps), so the codes are the reference's. */
#include <immintrin.h>
#include <string.h>

#include "attention_int8.h"
#include "int8_avx512_inline.h"

#define GSQ_AVX512_ISA "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi"
#ifdef __clang__
#define GSQ_AVX512 __attribute__((target(GSQ_AVX512_ISA), min_vector_width(512)))
#else /* GCC's tuning prefers 256-bit vectors; the softmax loops run faster in 512 */
#define GSQ_AVX512 __attribute__((target(GSQ_AVX512_ISA ",prefer-vector-width=512")))
#endif
#define GSQ_TILE GSQ_AVX512 static inline __attribute__((always_inline))

enum { R = GSQ_ATT8_ROWS };

/* The 4 bytes at p in every 32-bit lane. */
GSQ_AVX512 static inline __m512i broadcast4(const void *p)
{
    int32_t w;
    memcpy(&w, p, 4);
    return _mm512_set1_epi32(w);
}

/* Codes of x's n values (gsq_i8_quantize16's: rint(x · inv) clamped to ±qmax, + 128), XOR flip
 * (0x80: back to signed codes), into width bytes of dst (a multiple of 16; code 0 from n on). */
GSQ_AVX512 static void quantize_row(int8_t *dst, const float *x, int n, int width, float inv, int qmax, int flip)
{
    const __m128i f = _mm_set1_epi8((char)flip);
    for (int i = 0; i < width; i += 16)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm_xor_si128(gsq_i8_quantize16(_mm512_maskz_loadu_ps(gsq_i8_first16(n - i), x + i), inv, qmax), f));
}

/* kp[b][g][j][0..3] = K[16b + j][4g..4g+3] (code 0 past T), gathered from the row-major codes;
 * ksum[16b + j] = 128 · Σ_d K[16b + j][d], the +128 of the unsigned query codes. */
GSQ_AVX512 static void pack_k(const gsq_att8_scratch *sc, int T, int groups)
{
    const __m512i rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(sc->hs / 4));
    const __m512i ones = _mm512_set1_epi8(1);
    for (int b = 0; b < sc->tk / 16; b++) {
        __mmask16 keys = gsq_i8_first16(T - 16 * b);
        const int8_t *k = sc->k + (size_t)16 * b * sc->hs;
        __m512i sum = _mm512_setzero_si512();
        for (int g = 0; g < groups; g++) {
            __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), keys,
                                                    _mm512_add_epi32(rows, _mm512_set1_epi32(g)), k, 4);
            sum = _mm512_dpbusd_epi32(sum, ones, w);
            _mm512_store_si512(sc->kp + ((size_t)b * groups + g) * 64, w);
        }
        _mm512_store_si512(sc->ksum + 16 * b, _mm512_slli_epi32(sum, 7));
    }
}

/* vp[j][d][i] = V[4j + i][d]: 4 rows of 16 codes, interleaved by one byte permute. */
GSQ_AVX512 static void pack_v(const gsq_att8_scratch *sc)
{
    uint8_t order[64];
    for (int d = 0; d < 16; d++)
        for (int i = 0; i < 4; i++) order[4 * d + i] = (uint8_t)(16 * i + d);
    const __m512i idx = _mm512_loadu_si512(order);
    size_t hs = (size_t)sc->hs;
    for (int j = 0; j < sc->tv / 4; j++)
        for (size_t d = 0; d < hs; d += 16) {
            const int8_t *v = sc->v + 4 * j * hs + d;
            __m512i x = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)v));
            x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(v + hs)), 1);
            x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(v + 2 * hs)), 2);
            x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *)(v + 3 * hs)), 3);
            _mm512_store_si512(sc->vp + (j * hs + d) * 4, _mm512_permutexvar_epi8(idx, x));
        }
}

/* Integer scores of the tile's R query rows (unsigned codes q) against key blocks kb..kb+nb-1,
 * into s (rows of tk). */
GSQ_TILE void score_blocks(const gsq_att8_scratch *sc, const int8_t *q, int groups, int kb, const int nb)
{
    __m512i acc[2][R];
    for (int b = 0; b < nb; b++)
        for (int r = 0; r < R; r++) acc[b][r] = _mm512_setzero_si512();
    for (int g = 0; g < groups; g++) {
        __m512i w[R];
        for (int r = 0; r < R; r++) w[r] = broadcast4(q + (size_t)r * sc->hs + 4 * g);
        for (int b = 0; b < nb; b++) {
            __m512i k = _mm512_load_si512(sc->kp + ((size_t)(kb + b) * groups + g) * 64);
            for (int r = 0; r < R; r++) acc[b][r] = _mm512_dpbusd_epi32(acc[b][r], w[r], k);
        }
    }
    for (int b = 0; b < nb; b++) {
        __m512i ksum = _mm512_load_si512(sc->ksum + 16 * (kb + b));
        for (int r = 0; r < R; r++)
            _mm512_store_si512(sc->s + (size_t)r * sc->tk + 16 * (kb + b), _mm512_sub_epi32(acc[b][r], ksum));
    }
}

/* out rows 0..n-1 (of the tile's R), dimensions 16·db .. 16·(db+nb)-1 below HD: (float)Σ_u P · V · pv. */
GSQ_TILE void value_blocks(float *out, const gsq_att8_scratch *sc, const gsq_att8_head *h, int n, int db, const int nb)
{
    __m512i acc[R][4];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < nb; b++) acc[r][b] = _mm512_setzero_si512();
    size_t hs = (size_t)sc->hs;
    for (int j = 0; j < sc->tv / 4; j++) {
        __m512i v[4];
        for (int b = 0; b < nb; b++) v[b] = _mm512_load_si512(sc->vp + (j * hs + 16 * (size_t)(db + b)) * 4);
        for (int r = 0; r < R; r++) {
            __m512i w = broadcast4(sc->p + (size_t)r * sc->tv + 4 * j);
            for (int b = 0; b < nb; b++) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], w, v[b]);
        }
    }
    const __m512 pv = _mm512_set1_ps(h->pv);
    for (int r = 0; r < n; r++)
        for (int b = 0; b < nb; b++) {
            int d = 16 * (db + b);
            _mm512_mask_storeu_ps(out + (size_t)r * h->ldo + d, gsq_i8_first16(h->HD - d),
                                  _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][b]), pv));
        }
}

/* gsq_att8_probs: the largest score, the exponentials, their sum in 16 lanes folded 8, 4, 2, 1,
 * and the codes rint(e · (1/Σ) · p_inv) clamped to qmax. */
GSQ_AVX512 static void probs_avx512(uint8_t *p, float *e, const int32_t *acc, const float *bias, const gsq_att8_head *h,
                                    int tk, int tv)
{
    int T = h->T;
    float m;
    if (bias) { /* the largest (float)acc · qk + bias: the reference's floats, max in any order */
        const __m512 qk = _mm512_set1_ps(h->qk);
        __m512 top = _mm512_set1_ps((float)acc[0] * h->qk + bias[0]);
        for (int u = 0; u < T; u += 16) {
            __mmask16 k = gsq_i8_first16(T - u);
            __m512 s = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(k, acc + u)), qk),
                                     _mm512_maskz_loadu_ps(k, bias + u));
            top = _mm512_mask_max_ps(top, k, top, s);
        }
        m = _mm512_reduce_max_ps(top);
    } else {
        __m512i top = _mm512_set1_epi32(acc[0]);
        for (int u = 0; u < T; u += 16)
            top = _mm512_mask_max_epi32(top, gsq_i8_first16(T - u), top,
                                        _mm512_maskz_loadu_epi32(gsq_i8_first16(T - u), acc + u));
        m = (float)_mm512_reduce_max_epi32(top) * h->qk;
    }
    gsq_att8_exps(e, acc, bias, h, m, tk);
    __m512 lane = _mm512_setzero_ps();
    for (int u0 = 0; u0 < tk; u0 += 16) lane = _mm512_add_ps(lane, _mm512_load_ps(e + u0));
    __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(lane), 1));
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(lane), hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    float sum = _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
    const __m512 inv = _mm512_set1_ps(1.0f / sum), p_inv = _mm512_set1_ps(h->p_inv), q = _mm512_set1_ps((float)h->qmax);
    for (int u = 0; u < tv; u += 16) {
        __m512 x = _mm512_mul_ps(_mm512_load_ps(e + u), inv);
        __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(x, p_inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_mask_storeu_epi8(p + u, gsq_i8_first16(tv - u), _mm512_cvtusepi32_epi8(_mm512_cvtps_epu32(_mm512_min_ps(r, q))));
    }
}

GSQ_AVX512 void gsq_att8_head_avx512(float *out, const float *q, const float *k, const float *v, const float *bias,
                                     const gsq_att8_head *h, uint8_t *scratch)
{
    gsq_att8_scratch sc;
    gsq_att8_carve(&sc, scratch, h->T, h->HD);
    int T = h->T, groups = (h->HD + 3) / 4, dblocks = sc.hs / 16;
    size_t hs = (size_t)sc.hs;
    float iq = 1.0f / h->sq, ik = 1.0f / h->sk, iv = 1.0f / h->sv; /* as gsq_quantize_codes */
    for (int t = 0; t < T; t++) {
        quantize_row(sc.q + t * hs, q + (size_t)t * h->ld, h->HD, sc.hs, iq, h->qmax, 0); /* unsigned */
        quantize_row(sc.k + t * hs, k + (size_t)t * h->ld, h->HD, sc.hs, ik, h->qmax, 0x80);
        quantize_row(sc.v + t * hs, v + (size_t)t * h->ld, h->HD, sc.hs, iv, h->qmax, 0x80);
    }
    /* padding query rows and tokens: code 0 (+128 for the queries); probability rows defined before
     * the first tile (a last tile's rows past T are computed, not stored) */
    memset(sc.q + T * hs, 0x80, (size_t)(sc.rows - T) * hs);
    memset(sc.v + T * hs, 0, (size_t)(sc.tv - T) * hs);
    memset(sc.p, 0, (size_t)R * sc.tv);
    pack_k(&sc, T, groups);
    pack_v(&sc);
    for (int t0 = 0; t0 < T; t0 += R) {
        const int8_t *qt = sc.q + t0 * hs;
        int kb = 0, n = T - t0 < R ? T - t0 : R;
        for (; kb + 2 <= sc.tk / 16; kb += 2) score_blocks(&sc, qt, groups, kb, 2);
        if (kb < sc.tk / 16) score_blocks(&sc, qt, groups, kb, 1);
        for (int r = 0; r < n; r++)
            probs_avx512(sc.p + (size_t)r * sc.tv, sc.e, sc.s + (size_t)r * sc.tk,
                         bias ? bias + (size_t)(t0 + r) * T : NULL, h, sc.tk, sc.tv);
        float *o = out + (size_t)t0 * h->ldo;
        for (int db = 0; db < dblocks; db += 4) {
            int left = dblocks - db;
            if (left >= 4) value_blocks(o, &sc, h, n, db, 4);
            else if (left == 3) value_blocks(o, &sc, h, n, db, 3);
            else if (left == 2) value_blocks(o, &sc, h, n, db, 2);
            else value_blocks(o, &sc, h, n, db, 1);
        }
    }
}
