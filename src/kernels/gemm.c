/* Fast fp32 GEMM: oneDNN's dnnl_sgemm where the build found it (measured fastest on the ViT
 * shapes, see docs/BENCHMARKS.md), else OpenBLAS; and the thread setting shared by the GEMM and
 * our own OpenMP loops. Both libraries run single-threaded when called inside an OpenMP region. */
#include "gpusq/kernels.h"

#include <omp.h>

#if defined(GSQ_GEMM_DNNL)
#include <oneapi/dnnl/dnnl.h>
#else
#include <cblas.h>
#endif

void gsq_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
#if defined(GSQ_GEMM_DNNL)
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

const char *gsq_blas_name(void)
{
#if defined(GSQ_GEMM_DNNL)
    return "oneDNN";
#else
    return "OpenBLAS";
#endif
}

void gsq_set_num_threads(int n)
{
    if (n <= 0) return;
    omp_set_num_threads(n);
#if !defined(GSQ_GEMM_DNNL)
    openblas_set_num_threads(n);
#endif
    gsq_flush_denormals();
}

int gsq_get_num_threads(void)
{
    return omp_get_max_threads();
}
