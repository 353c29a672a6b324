/* Private: the engine's integer attention, for models that quantized their attention matmuls
 * (Q, K, V with one scale each per layer, codes ±qmax; the softmax probabilities with scale
 * 1/qmax, codes 0..qmax). Per (image, head):
 *
 *   S = Σ_d Qcode · Kcode           exact int32 sums          (QKᵀ)
 *   s = (float)S · (sq · sk · 1/√d)                           (one float multiply per score)
 *   p = softmax(s) in float; Pcode = clamp(rint(p · q), 0..q)  (gsq_quantize_codes' rounding)
 *   O = Σ_u Pcode · Vcode           exact int32 sums          (AV)
 *   out = (float)O · ((1/q) · sv)                              (one float multiply per value)
 *
 * written to out (T, C), heads concatenated: the proj GEMM's input, as gsq_attention_forward
 * writes it. The plain-C reference (attention_int8.c, the specification) and the AVX-512 VNNI
 * fast path (attention_int8_avx512.c) compute the same integer sums and the same float softmax
 * (its exponentials from gsq_att8_exps, its sum in a fixed order), so their outputs are equal bit
 * for bit. */
#ifndef GSQ_ENGINE_ATTENTION_INT8_H
#define GSQ_ENGINE_ATTENTION_INT8_H

#include <stddef.h>
#include <stdint.h>

#include "int8_gemm.h"
#include "kernels/vmath.h"

#define GSQ_ATT8_ROWS 4 /* query rows per tile of the fast path */

/* One head's constants (the same for every (image, head) of a layer). */
typedef struct {
    int T, HD;          /* tokens, head dimension */
    int ld, ldo;        /* row strides of q, k, v (3C) and of out (C) */
    float sq, sk, sv;   /* the Q, K, V scales */
    float qk;           /* (sq · sk) · (1/√HD): the score of one unit of S */
    float p_inv;        /* 1 / (1/qmax): the probabilities' scale inverted, as gsq_quantize_codes does */
    float pv;           /* (1/qmax) · sv: the output of one unit of O */
    int qmax;
} gsq_att8_head;

/* One (image, head)'s scratch, carved from gsq_att8_scratch_bytes bytes; every part 64-byte
 * aligned. Row-major codes have rows of hs bytes (HD rounded up to 16), padding columns zero. */
typedef struct {
    int hs, tk, tv, rows; /* HD to 16; T to 16 (key blocks) and to 4 (value groups); T to GSQ_ATT8_ROWS */
    int8_t *q, *k, *v;    /* codes, row-major: q rows × hs, k T × hs, v tv × hs */
    int8_t *kp;           /* fast path: K, [T/16][HD/4][16 keys][4] */
    int8_t *vp;           /* fast path: V, [T/4][hs][4 tokens] */
    int32_t *ksum;        /* fast path: 128 · Σ_d Kcode per key (tk) */
    int32_t *s;           /* GSQ_ATT8_ROWS rows of tk integer scores */
    float *e;             /* tk floats: one row's scores, then its probabilities */
    uint8_t *p;           /* GSQ_ATT8_ROWS rows of tv probability codes */
    int32_t *o;           /* reference: one output row's hs sums */
} gsq_att8_scratch;

/* Carves sc from base (NULL: only the size); returns the bytes one (image, head) needs, a
 * multiple of 64 including the slack to align base. */
size_t gsq_att8_carve(gsq_att8_scratch *sc, uint8_t *base, int T, int HD);
static inline size_t gsq_att8_scratch_bytes(int T, int HD) { return gsq_att8_carve(NULL, NULL, T, HD); }

/* The exponentials e[u] = e^(s_u − m) of gsq_att8_probs (0 from T on), s_u = (float)acc[u] · qk,
 * plus bias[u] when bias is given; tk is a multiple of 16, which the inner loop's fixed width tells
 * the vectorizer. */
static inline void gsq_att8_exps(float *e, const int32_t *acc, const float *bias, const gsq_att8_head *h, float m,
                                 int tk)
{
    int T = h->T;
    float qk = h->qk;
    for (int u0 = 0; u0 < tk; u0 += 16) {
        if (bias) {
            #pragma omp simd
            for (int j = 0; j < 16; j++) {
                float s = (float)acc[u0 + j] * qk + (u0 + j < T ? bias[u0 + j] : 0.0f);
                float x = gsq_vexpf(s - m);
                e[u0 + j] = u0 + j < T ? x : 0.0f;
            }
            continue;
        }
        #pragma omp simd
        for (int j = 0; j < 16; j++) {
            float s = (float)acc[u0 + j] * qk;
            float x = gsq_vexpf(s - m);
            e[u0 + j] = u0 + j < T ? x : 0.0f;
        }
    }
}

/* The largest score of a row with a bias: max over u < T of (float)acc[u] · qk + bias[u] (exact
 * in any order). */
static inline float gsq_att8_biased_max(const int32_t *acc, const float *bias, const gsq_att8_head *h)
{
    float m = (float)acc[0] * h->qk + bias[0];
    for (int u = 1; u < h->T; u++) {
        float s = (float)acc[u] * h->qk + bias[u];
        m = s > m ? s : m;
    }
    return m;
}

/* The probability codes p (tv bytes; zero from T on) of one row of integer scores acc (tk; entries
 * from T on are ignored but must be set), as the fake-quantized model computes them:
 * s = (float)acc · qk (+ bias[u], Swin's relative position bias and mask, when given); softmax as gsq_attention_forward's (max, e^(s − max) by gsq_vexpf, times
 * 1 / Σ) with the sum taken in 16 lanes (lane j adds u ≡ j mod 16, in order) then folded 8, 4, 2,
 * 1, whatever the vector width; then code = rint(p · p_inv), gsq_quantize_codes' arithmetic (the
 * clamp at qmax; p ≥ 0 needs no lower one). e: tk floats of scratch. */
static inline void gsq_att8_probs(uint8_t *p, float *e, const int32_t *acc, const float *bias, const gsq_att8_head *h,
                                  int tk, int tv)
{
    int T = h->T;
    float p_inv = h->p_inv, q = (float)h->qmax;
    int32_t top = acc[0];
    #pragma omp simd reduction(max : top)
    for (int u = 0; u < T; u++) top = acc[u] > top ? acc[u] : top;
    /* the largest s: without a bias, rounding is monotonic and qk > 0 */
    gsq_att8_exps(e, acc, bias, h, bias ? gsq_att8_biased_max(acc, bias, h) : (float)top * h->qk, tk);
    float lane[16] = {0};
    for (int u0 = 0; u0 < tk; u0 += 16)
        for (int j = 0; j < 16; j++) lane[j] += e[u0 + j];
    for (int w = 8; w > 0; w /= 2)
        for (int j = 0; j < w; j++) lane[j] += lane[j + w];
    float inv = 1.0f / lane[0];
    #pragma omp simd
    for (int u = 0; u < tv; u++) {
        float x = e[u] * inv;
        float r = rintf(x * p_inv);
        p[u] = (uint8_t)(int)(r > q ? q : r);
    }
}

/* One (image, head): out (T, HD) at row stride ldo from q, k, v (T, HD) at row stride ld; bias
 * (T, T) added to the scores, or NULL. */
void gsq_att8_head_ref(float *out, const float *q, const float *k, const float *v, const float *bias,
                       const gsq_att8_head *h, uint8_t *scratch);
void gsq_att8_head_avx512(float *out, const float *q, const float *k, const float *v, const float *bias,
                          const gsq_att8_head *h, uint8_t *scratch);

/* out (B, T, C) from qkv (B, T, 3C) with NH heads, scales (sq, sk, sv), codes ±qmax: one OpenMP
 * task per (sequence, head), each with its own gsq_att8_scratch_bytes(T, C / NH) bytes of scratch
 * (B · NH of them). bias (windows, NH, T, T) or NULL: sequence b's scores get window b mod windows'
 * (Swin: windows of one image in order; 1 when they all have the same bias). The AVX-512 fast
 * path where isa's kernels need AVX-512 (gsq_att8_fast), else the reference. */
static inline int gsq_att8_fast(gsq_i8_isa isa) { return GSQ_X86 && (gsq_i8_isa_needs(isa) & GSQ_CAP_AVX512); }
void gsq_att8_forward(gsq_i8_isa isa, float *out, const float *qkv, int B, int T, int C, int NH, const float scales[3],
                      int qmax, const float *bias, int windows, uint8_t *scratch);

#endif
