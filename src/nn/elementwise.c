/* Elementwise layers: exact (erf) GELU, residual add and gradient accumulation. */
#include "gpusq/nn.h"

#include <math.h>

#include "kernels/vmath.h"

#define GSQ_INV_SQRT2 0.70710678118654752440
#define GSQ_INV_SQRT_2PI 0.39894228040143267794

/* out (n) = x · Φ(x), Φ the standard normal CDF */
void gsq_gelu_forward(float *out, const float *inp, size_t n)
{
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + gsq_verff(x * (float)GSQ_INV_SQRT2));
    }
}

/* dinp (n) += dout · (Φ(x) + x · φ(x)) */
void gsq_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n)
{
    if (!dinp) return;
    #pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + gsq_verff(x * (float)GSQ_INV_SQRT2));
        float pdf = (float)GSQ_INV_SQRT_2PI * gsq_vexpf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void gsq_add_forward(float *out, const float *a, const float *b, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void gsq_accumulate(float *da, const float *dout, size_t n)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) da[i] += dout[i];
}
