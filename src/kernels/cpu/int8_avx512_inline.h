/* Private: AVX-512 pieces the engine's AVX-512 and AMX kernels share, inlined into each (their
 * callers are compiled for a superset of these target features). */
#ifndef GSQ_ENGINE_INT8_AVX512_INLINE_H
#define GSQ_ENGINE_INT8_AVX512_INLINE_H

#include <immintrin.h>

/* The first n of 16 lanes (none for n ≤ 0, all for n ≥ 16). */
__attribute__((target("avx512f"))) static inline __mmask16 gsq_i8_first16(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : (n <= 0 ? 0 : (__mmask16)((1u << n) - 1));
}

/* 16 floats as 16 activation codes + 128: clamp(rint(v · inv), ±qmax) + 128, the reference's
 * rounding (multiply, round to nearest even, clamp). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static inline __m128i gsq_i8_quantize16(__m512 v, float inv,
                                                                                              int qmax)
{
    __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(inv)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps((float)-qmax)), _mm512_set1_ps((float)qmax));
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(r), _mm512_set1_epi32(128)));
}

#endif
