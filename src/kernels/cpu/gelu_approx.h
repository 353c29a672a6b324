/* Private: GELU(x) = 0.5·x·(1 + erf(x/√2)) for the engine's fused fc1 epilogue, in four forms —
 * scalar (src/kernels/gelu_scalar.h: the reference gsq_i8_epilogue_apply and the GPU's GEMM
 * epilogue), AVX-512 and AVX2 here — that perform the same IEEE operations in the same order, so
 * they agree bit for bit (tests/test_gelu_approx.c). Only separate multiplies and adds (no FMA;
 * the scalar form keeps each in its own statement, which no compiler contracts without
 * -ffp-contract=fast), one correctly rounded division, and min/max written as MINPS/MAXPS
 * compute them.
 *
 * erf(z) = z·P(z²)/Q(z²) on [-4, 4] is the rational minimax fit of gsq_verff
 * (src/kernels/vmath.h), which the float model's GELU uses (with FMA), so the two differ by
 * rounding only (< 4e-7 · max(1, |x|)). Above z = 4 erf is 1 to within 2e-8; below x =
 * GSQ_GELU_XMIN the result is -0 (x·Φ(x) > -5e-8 there), which also makes GELU(-inf) = -0, not
 * NaN. NaN stays NaN, +inf stays +inf. Error against double-precision GELU: at most
 * 2.9e-7 · max(1, |x|) over every float (an exhaustive run; the test asserts 1e-6). */
#ifndef GSQ_ENGINE_GELU_APPROX_H
#define GSQ_ENGINE_GELU_APPROX_H

#include "kernels/arch.h"
#include "kernels/gelu_scalar.h"

#if GSQ_X86
#include <immintrin.h>

__attribute__((target("avx512f"))) static inline __m512 gsq_gelu_avx512(__m512 x)
{
    static const float P[] = GSQ_ERF_P, Q[] = GSQ_ERF_Q;
    x = _mm512_max_ps(_mm512_set1_ps(GSQ_GELU_XMIN), x);
    __m512 z = _mm512_min_ps(_mm512_set1_ps(GSQ_GELU_ZMAX), _mm512_mul_ps(x, _mm512_set1_ps(GSQ_GELU_RSQRT2)));
    __m512 z2 = _mm512_mul_ps(z, z), p = _mm512_set1_ps(P[0]), q = _mm512_set1_ps(Q[0]);
    for (int i = 1; i < 7; i++) p = _mm512_add_ps(_mm512_mul_ps(p, z2), _mm512_set1_ps(P[i]));
    for (int i = 1; i < 5; i++) q = _mm512_add_ps(_mm512_mul_ps(q, z2), _mm512_set1_ps(Q[i]));
    __m512 erfz = _mm512_div_ps(_mm512_mul_ps(z, p), q);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), erfz));
}

__attribute__((target("avx2"))) static inline __m256 gsq_gelu_avx2(__m256 x)
{
    static const float P[] = GSQ_ERF_P, Q[] = GSQ_ERF_Q;
    x = _mm256_max_ps(_mm256_set1_ps(GSQ_GELU_XMIN), x);
    __m256 z = _mm256_min_ps(_mm256_set1_ps(GSQ_GELU_ZMAX), _mm256_mul_ps(x, _mm256_set1_ps(GSQ_GELU_RSQRT2)));
    __m256 z2 = _mm256_mul_ps(z, z), p = _mm256_set1_ps(P[0]), q = _mm256_set1_ps(Q[0]);
    for (int i = 1; i < 7; i++) p = _mm256_add_ps(_mm256_mul_ps(p, z2), _mm256_set1_ps(P[i]));
    for (int i = 1; i < 5; i++) q = _mm256_add_ps(_mm256_mul_ps(q, z2), _mm256_set1_ps(Q[i]));
    __m256 erfz = _mm256_div_ps(_mm256_mul_ps(z, p), q);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), erfz));
}

#endif /* GSQ_X86 */

#endif
