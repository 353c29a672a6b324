/* Fast fp32 GEMM through OpenBLAS (chosen by measurement, see docs/BENCHMARKS.md) and the thread
 * setting shared by BLAS and our own OpenMP loops. */
#include "gpusq/kernels.h"

#include <cblas.h>
#include <omp.h>

void gsq_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *gsq_blas_name(void)
{
    return "OpenBLAS";
}

void gsq_set_num_threads(int n)
{
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int gsq_get_num_threads(void)
{
    return omp_get_max_threads();
}
