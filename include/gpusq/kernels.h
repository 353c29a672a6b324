/* Dense fp32 GEMM: a fast path (BLAS) and its plain-C reference twin with the same contract.
 * Row-major: C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X) is X or Xᵀ. */
#ifndef GPUSQ_KERNELS_H
#define GPUSQ_KERNELS_H

#include <stdbool.h>

/* Fast path: multithreaded oneDNN (or OpenBLAS where oneDNN is not installed). */
void gsq_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);

/* Reference twin: triple loop with double accumulation; the specification of gsq_sgemm. */
void gsq_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Name of the BLAS behind gsq_sgemm and its thread count, for reports. */
const char *gsq_blas_name(void);

/* Threads used by gsq_sgemm and the OpenMP loops (n <= 0: leave as configured). */
void gsq_set_num_threads(int n);
int gsq_get_num_threads(void);

#endif
