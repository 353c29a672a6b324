/* IEEE binary16 (F16) and bfloat16 (BF16) conversions to and from float. Narrowing rounds to
 * nearest, ties to even; NaN stays NaN (quieted, sign and top payload bits kept), infinities and
 * subnormals convert exactly where representable. Values are passed as raw 16-bit patterns. */
#ifndef GPUSQ_HALF_H
#define GPUSQ_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

float gsq_f16_to_f32(uint16_t h);
float gsq_bf16_to_f32(uint16_t h);
uint16_t gsq_f32_to_f16(float f);
uint16_t gsq_f32_to_bf16(float f);

/* Array forms: n elements; src and dst must not overlap. */
void gsq_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void gsq_bf16_to_f32_n(const uint16_t *src, float *dst, size_t n);
void gsq_f32_to_f16_n(const float *src, uint16_t *dst, size_t n);
void gsq_f32_to_bf16_n(const float *src, uint16_t *dst, size_t n);

/* A float's IEEE binary32 bit pattern and back, by memcpy (no aliasing or union tricks). */
static inline uint32_t gsq_f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static inline float gsq_bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

#endif
