/* Vectorizable fp32 exp and erf for the elementwise hot loops (softmax, GELU): branch-free
 * polynomials that GCC turns into AVX-512 code inside `#pragma omp simd` loops, where libm's
 * scalar calls cannot be vectorized. Their accuracy against libm in double is tested in
 * tests/test_vmath.c (exp: relative error < 2e-7; erf: absolute error < 5e-7). */
#ifndef GSQ_KERNELS_VMATH_H
#define GSQ_KERNELS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels/hd.h"

/* e^x: Cody-Waite reduction x = n·ln2 + r, a degree-6 polynomial for e^r (Cephes' coefficients),
 * then the 2^n scale built in the exponent bits. Inputs are clamped to [-87, 88], so e^-inf gives
 * about 1.6e-38 instead of 0 (immaterial in a softmax) and nothing overflows. The GPU's softmax
 * (src/kernels/cuda/attention.cu) calls this same function, so both round alike. */
GSQ_HD float gsq_vexpf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x); /* compares vectorize, fminf does not */
    float n = rintf(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t bits = ((int32_t)(n == n ? n : 0.0f) + 127) << 23; /* NaN: p is NaN, no UB cast */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) = x·P(x²)/Q(x²) on [-4, 4] (a rational minimax fit, as Eigen's fast erf), ±1 beyond,
 * where erf differs from ±1 by less than 2e-8. P and Q, highest power first (the engine's GELU,
 * src/kernels/cpu/gelu_approx.h, evaluates the same fit without FMA). */
#define GSQ_ERF_P {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f, -5.69250639462346e-05f, \
                   -7.34990630326855e-04f, -2.95459980854025e-03f, -1.60960333262415e-02f}
#define GSQ_ERF_Q {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f, -7.37332916720468e-03f, \
                   -1.42647390514189e-02f}
static inline float gsq_verff(float x)
{
    static const float P[] = GSQ_ERF_P, Q[] = GSQ_ERF_Q;
    x = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float x2 = x * x;
    float p = fmaf(fmaf(fmaf(fmaf(fmaf(fmaf(P[0], x2, P[1]), x2, P[2]), x2, P[3]), x2, P[4]), x2, P[5]), x2, P[6]);
    float q = fmaf(fmaf(fmaf(fmaf(Q[0], x2, Q[1]), x2, Q[2]), x2, Q[3]), x2, Q[4]);
    return x * p / q;
}

#endif
