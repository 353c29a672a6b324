/* The CUDA backend's C interface. Every function exists in every build: without CUDA (no nvcc at
 * build time) or without a GPU at run time they report that, so callers and tests can skip. */
#ifndef GPUSQ_CUDA_H
#define GPUSQ_CUDA_H

#include <stdbool.h>
#include <stddef.h>

#include "gpusq/status.h"

/* 1 if this library was compiled with the CUDA sources. */
int gsq_cuda_compiled(void);
/* Number of usable CUDA devices; 0 without CUDA, driver or GPU. */
int gsq_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3 (sm_90)" for device dev, into buf. */
gsq_status gsq_cuda_device_name(int dev, char *buf, size_t cap, gsq_error *err);

/* Reference fp32 GEMM on the GPU with host pointers in and out, the same contract as
 * gsq_sgemm_ref (row-major C = alpha·op(A)·op(B) + beta·C): the GPU twin every CUDA kernel is
 * checked against. */
gsq_status gsq_cuda_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float *A, int lda, const float *B, int ldb, float beta,
                              float *C, int ldc, gsq_error *err);

#endif
