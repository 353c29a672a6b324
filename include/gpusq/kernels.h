/* Dense fp32 GEMM: a fast path (BLAS) and its plain-C reference twin with the same contract.
 * Row-major: C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, where op(X) is X or Xᵀ.
 * And the threads that compute: their number and their floating-point mode. */
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

/* Threads used by gsq_sgemm and the OpenMP loops (n <= 0: leave as configured). Setting them
 * also sets their floating-point mode (gsq_flush_denormals). */
void gsq_set_num_threads(int n);
int gsq_get_num_threads(void);

/* Flush-to-zero and denormals-are-zero (x86 MXCSR FTZ+DAZ, Arm FPCR.FZ) on the calling thread and
 * every OpenMP worker: values below FLT_MIN count as 0 instead of costing a microcode assist per
 * operation (a 13× slow-down seen on a diverging run; docs/BENCHMARKS.md). The library calls it
 * when work starts (setting threads, training, evaluation, a model's forward pass, the channel
 * permutation search, the engines) and its loader threads set it on themselves
 * (gsq_flush_denormals_here): a program that embeds libgpusq and needs IEEE denormals on those
 * threads must restore the mode after such calls. Threads of a BLAS's own pool are not reached:
 * gpusq uses oneDNN or OpenBLAS's OpenMP build, whose workers are OpenMP's. */
void gsq_flush_denormals(void);
void gsq_flush_denormals_here(void); /* the calling thread only */
/* 1 when the calling thread flushes denormals (the test of the above). */
int gsq_denormals_flushed(void);

#endif
