/* LayerNorm over the channel dimension, forward and backward (timm uses eps = 1e-6); rows over
 * their L2 norm (the mask transformer's). */
#include "gpusq/nn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

/* out (N, C) = (inp - mean) · rstd · weight + bias; mean, rstd (N) saved for backward */
void gsq_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C, float eps)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        gsq_layernorm_row(out + (size_t)n * C, inp + (size_t)n * C, weight, bias, C, eps, mean + n, rstd + n);
}

/* The sums in double, in vector lanes (a fixed order for a given build). */
void gsq_layernorm_row(float *y, const float *x, const float *weight, const float *bias, int C, float eps,
                       float *mean, float *rstd)
{
    double s = 0.0;
    #pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += x[c];
    float m = (float)(s / C);
    double v = 0.0;
    #pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) {
        float d = x[c] - m;
        v += (double)d * d;
    }
    float r = (float)(1.0 / sqrt(v / C + eps));
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (mean) *mean = m;
    if (rstd) *rstd = r;
}

/* dinp (N, C) += ∂L/∂inp; dweight (C) += Σ dout·x̂; dbias (C) += Σ dout */
void gsq_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int N, int C)
{
    if (dinp) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            const float *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], r = rstd[n];
            double sum_g = 0.0, sum_gx = 0.0;
            for (int c = 0; c < C; c++) {
                float g = dy[c] * weight[c];
                sum_g += g;
                sum_gx += (double)g * ((x[c] - m) * r);
            }
            float mg = (float)(sum_g / C), mgx = (float)(sum_gx / C);
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * r;
                dx[c] += (dy[c] * weight[c] - mg - xhat * mgx) * r;
            }
        }
    }
    if (dweight || dbias) {
        /* column sums walked row by row, each thread owning a contiguous block of columns */
        #pragma omp parallel
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int lo = (int)((long)C * id / nt), hi = (int)((long)C * (id + 1) / nt);
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float m = mean[n], r = rstd[n];
                if (dweight) {
                    #pragma omp simd
                    for (int c = lo; c < hi; c++) dweight[c] += dy[c] * ((x[c] - m) * r);
                }
                if (dbias) {
                    #pragma omp simd
                    for (int c = lo; c < hi; c++) dbias[c] += dy[c];
                }
            }
        }
    }
}

/* F.normalize's floor on the norm */
#define L2_EPS 1e-12

/* The L2 norm of a row of C, summed in double. */
static double l2_norm(const float *x, int C)
{
    double s = 0.0;
    #pragma omp simd reduction(+ : s)
    for (int c = 0; c < C; c++) s += (double)x[c] * x[c];
    return sqrt(s);
}

void gsq_l2norm_forward(float *out, const float *inp, int N, int C)
{
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double norm = l2_norm(x, C);
        float inv = (float)(1.0 / (norm > L2_EPS ? norm : L2_EPS));
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = x[c] * inv;
    }
}

void gsq_l2norm_backward(float *dinp, const float *dout, const float *inp, int N, int C)
{
    if (!dinp) return;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        double norm = l2_norm(x, C);
        if (norm <= L2_EPS) { /* y = x / eps: linear */
            for (int c = 0; c < C; c++) dx[c] += (float)(dy[c] / L2_EPS);
            continue;
        }
        double ydy = 0.0; /* y·dy, with y = x / norm */
        for (int c = 0; c < C; c++) ydy += (double)x[c] * dy[c];
        ydy /= norm;
        for (int c = 0; c < C; c++) dx[c] += (float)((dy[c] - x[c] / norm * ydy) / norm);
    }
}
