/* Linear layer y = x·Wᵀ + b as GEMMs (forward and the two backward products), and per image the
 * product of two activations that has the same form (a · cᵀ). */
#include "gpusq/kernels.h"
#include "gpusq/nn.h"

#include <omp.h>
#include <stddef.h>

/* out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC) */
void gsq_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC)
{
    if (bias) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
    }
    gsq_sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, bias ? 1.0f : 0.0f, out, OC);
}

/* dinp (N, C) += dout (N, OC) · weight (OC, C); dweight (OC, C) += doutᵀ · inp; dbias += Σ dout */
void gsq_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int C, int OC)
{
    if (dinp) gsq_sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (dweight) gsq_sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        /* column sums walked row by row, each thread owning a contiguous block of columns */
        #pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int lo = (int)((long)OC * id / nt), hi = (int)((long)OC * (id + 1) / nt);
            for (int n = 0; n < N; n++) {
                const float *row = dout + (size_t)n * OC;
                #pragma omp simd
                for (int o = lo; o < hi; o++) dbias[o] += row[o];
            }
        }
    }
}

/* out_b (M, N) = a_b (M, C) · c_b (N, C)ᵀ for each image b */
void gsq_matmul_nt_forward(float *out, const float *a, const float *c, int B, int M, int N, int C)
{
    for (int b = 0; b < B; b++)
        gsq_linear_forward(out + (size_t)b * M * N, a + (size_t)b * M * C, c + (size_t)b * N * C, NULL, M, C, N);
}

/* da_b (M, C) += dout_b · c_b; dc_b (N, C) += dout_bᵀ · a_b */
void gsq_matmul_nt_backward(float *da, float *dc, const float *dout, const float *a, const float *c, int B, int M,
                            int N, int C)
{
    for (int b = 0; b < B; b++)
        gsq_linear_backward(da ? da + (size_t)b * M * C : NULL, dc ? dc + (size_t)b * N * C : NULL, NULL,
                            dout + (size_t)b * M * N, a + (size_t)b * M * C, c + (size_t)b * N * C, M, C, N);
}
