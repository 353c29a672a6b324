/* Deterministic random numbers (PCG32): the same seed gives the same stream on every machine. */
#ifndef GPUSQ_RNG_H
#define GPUSQ_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
    uint64_t inc;
} gsq_rng;

void gsq_rng_seed(gsq_rng *rng, uint64_t seed, uint64_t stream);
uint32_t gsq_rng_u32(gsq_rng *rng);
/* Uniform in [0, 1), 24 random bits. */
float gsq_rng_uniform(gsq_rng *rng);
/* Standard normal (Box-Muller). */
float gsq_rng_normal(gsq_rng *rng);
/* Normal(0, std) truncated to [-limit, limit] by resampling (timm's trunc_normal_(std, a=-limit,
 * b=limit); limit must be positive). */
float gsq_rng_trunc_normal(gsq_rng *rng, float std, float limit);

#endif
