/* Private: the scalar form of the engine's GELU (src/kernels/cpu/gelu_approx.h explains the fit and its
 * error), shared by the CPU engine's reference epilogue and the GPU's GEMM epilogue (GSQ_HD): the
 * same separate multiplies and adds, one correctly rounded division, and min/max as MINPS/MAXPS
 * compute them, so every form agrees bit for bit. */
#ifndef GSQ_KERNELS_GELU_SCALAR_H
#define GSQ_KERNELS_GELU_SCALAR_H

#include "kernels/hd.h"
#include "kernels/vmath.h" /* GSQ_ERF_P, GSQ_ERF_Q */

#define GSQ_GELU_XMIN -5.65625f      /* erf(x/√2) rounds to -1 here: 1 + erf is 0 below */
#define GSQ_GELU_ZMAX 4.0f
#define GSQ_GELU_RSQRT2 0.70710678118654752440f
/* a > b ? a : b and a < b ? a : b: MAXPS and MINPS, which return b when either is NaN */
GSQ_HD float gsq_gelu_max(float a, float b) { return a > b ? a : b; }
GSQ_HD float gsq_gelu_min(float a, float b) { return a < b ? a : b; }

GSQ_HD float gsq_gelu_approx(float x)
{
    const float P[] = GSQ_ERF_P, Q[] = GSQ_ERF_Q;
    x = gsq_gelu_max(GSQ_GELU_XMIN, x);
    float z = gsq_gelu_min(GSQ_GELU_ZMAX, x * GSQ_GELU_RSQRT2), z2 = z * z;
    float p = P[0], q = Q[0];
    for (int i = 1; i < 7; i++) {
        p = p * z2;
        p = p + P[i];
    }
    for (int i = 1; i < 5; i++) {
        q = q * z2;
        q = q + Q[i];
    }
    float erfz = z * p / q;
    return 0.5f * x * (1.0f + erfz);
}

#endif
