/* PCG32 random number generator (O'Neill 2014) and the float distributions built on it. */
#include "gpusq/rng.h"

#include <math.h>

void gsq_rng_seed(gsq_rng *rng, uint64_t seed, uint64_t stream)
{
    rng->state = 0;
    rng->inc = (stream << 1) | 1u;
    gsq_rng_u32(rng);
    rng->state += seed;
    gsq_rng_u32(rng);
}

uint32_t gsq_rng_u32(gsq_rng *rng)
{
    uint64_t old = rng->state;
    rng->state = old * 6364136223846793005ULL + rng->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
    uint32_t rot = (uint32_t)(old >> 59);
    return (xorshifted >> rot) | (xorshifted << ((32 - rot) & 31));
}

float gsq_rng_uniform(gsq_rng *rng)
{
    return (float)(gsq_rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
}

float gsq_rng_normal(gsq_rng *rng)
{
    float u1 = gsq_rng_uniform(rng);
    float u2 = gsq_rng_uniform(rng);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

float gsq_rng_trunc_normal(gsq_rng *rng, float std, float limit)
{
    for (;;) {
        float x = std * gsq_rng_normal(rng);
        if (x >= -limit && x <= limit) return x;
    }
}
