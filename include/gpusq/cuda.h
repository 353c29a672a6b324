/* The CUDA backend's C interface: the GPU kernels, device memory and cuBLASLt baselines. These
 * functions live in the CUDA backend library, libgpusq_cuda.so (CMake target gpusq_cuda, built
 * where nvcc exists), which links the CUDA runtime: a program that calls them links it too.
 * libgpusq itself never does; its engine opens the library at run time when a GPU is asked for
 * (an engine built with .device = GSQ_ENGINE_CUDA). Without a GPU or driver at run time the functions
 * report GSQ_ERR_UNSUPPORTED, so callers and tests can skip. docs/CUDA.md describes the kernels
 * and what has run on a GPU. */
#ifndef GPUSQ_CUDA_H
#define GPUSQ_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpusq/status.h"

/* Number of usable CUDA devices; 0 without CUDA, driver or GPU. */
int gsq_cuda_device_count(void);
/* "NVIDIA H100 80GB HBM3 (sm_90)" for device dev, into buf. */
gsq_status gsq_cuda_device_name(int dev, char *buf, size_t cap, gsq_error *err);

/* Device memory on the current device, and copies to and from it (synchronous). */
gsq_status gsq_cuda_malloc(void **dev, size_t bytes, gsq_error *err);
void gsq_cuda_free(void *dev);
gsq_status gsq_cuda_upload(void *dev, const void *host, size_t bytes, gsq_error *err);
gsq_status gsq_cuda_download(void *host, const void *dev, size_t bytes, gsq_error *err);
/* Waits for the device's work; reports the first error of a kernel launched before. */
gsq_status gsq_cuda_synchronize(gsq_error *err);

/* Reference fp32 GEMM on the GPU with host pointers in and out, the same contract as
 * gsq_sgemm_ref (row-major C = alpha·op(A)·op(B) + beta·C): the GPU twin every CUDA kernel is
 * checked against. */
gsq_status gsq_cuda_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float *A, int lda, const float *B, int ldb, float beta,
                              float *C, int ldc, gsq_error *err);

/* ---- INT8 tensor-core GEMMs: y (M tokens, N features) = epilogue(x (M, K) · wᵀ) ----------- */

/* A GEMM weight of N rows (outputs) × K columns (inputs) of int8 codes, on the device, reordered
 * once into the register layout of its kernel (src/kernels/mma_layout.h). */
typedef struct gsq_cuda_i8_weight gsq_cuda_i8_weight;

/* From a 2:4 weight in the compressed file's form (docs/FORMAT.md): values int8 (rows, cols / 2),
 * meta u16 (rows, ceil(cols / 16)); cols a multiple of 4. Runs on mma.sp (sm_80 and later). */
gsq_status gsq_cuda_i8_weight_sparse(gsq_cuda_i8_weight **out, const int8_t *values, const uint16_t *meta, int rows,
                                     int cols, gsq_error *err);
/* From dense codes int8 (rows, cols), any cols ≥ 1. Runs on dense mma (sm_80 and later). */
gsq_status gsq_cuda_i8_weight_dense(gsq_cuda_i8_weight **out, const int8_t *codes, int rows, int cols, gsq_error *err);
void gsq_cuda_i8_weight_free(gsq_cuda_i8_weight *w);
/* Device bytes the weight's codes and metadata take. */
size_t gsq_cuda_i8_weight_bytes(const gsq_cuda_i8_weight *w);

typedef enum {
    GSQ_CUDA_OUT_F32, /* float y */
    GSQ_CUDA_OUT_S8,  /* int8 codes of y for the next GEMM: clamp(rint(y · out_inv), ±out_qmax) */
    GSQ_CUDA_OUT_S32, /* the exact int32 sums, no epilogue (tests, baselines) */
} gsq_cuda_out;

/* Per output v = (float)Σ · scale[n] + bias[n] (a multiply, then an add), then GELU when gelu
 * (the CPU engine's function, src/kernels/gelu_scalar.h): the CPU engine's epilogue to the bit;
 * then y = v, or
 * y += v (accumulate: the residual stream, in place, F32 only), or its int8 code. Pointers are
 * device pointers of N floats; bias may be NULL. */
typedef struct {
    gsq_cuda_out out;
    const float *scale, *bias;
    int gelu, accumulate;
    float out_inv;
    int out_qmax;
} gsq_cuda_epilogue;

/* y (M, ldy) = epilogue(x (M, K) · wᵀ), device pointers: x int8 row-major with row stride ldx
 * (x and ldx 4-byte aligned), y float, int8 or int32 by e->out with row stride ldy ≥ N. Launched
 * asynchronously on the default stream: launch errors are returned here, execution errors by the
 * next synchronizing call. */
gsq_status gsq_cuda_i8_gemm(const gsq_cuda_i8_weight *w, const int8_t *x, int ldx, int M, const gsq_cuda_epilogue *e,
                            void *y, int ldy, gsq_error *err);

/* ---- cuBLASLt dense baselines (benchmarks, the FP16 engine): y (M, N) = x (M, K) · wᵀ, all
 * row-major and contiguous on the device; INT8 gives int32 sums, FP16 gives fp16 (fp32
 * accumulation). ----------------------------------------------------------------------------- */

typedef enum { GSQ_CUDA_BLAS_I8, GSQ_CUDA_BLAS_F16 } gsq_cuda_blas_type;
/* One GEMM shape planned once (descriptors, the heuristic's first algorithm, a workspace). */
typedef struct gsq_cuda_blas gsq_cuda_blas;

/* FP16 only: bias (N fp16 values on the device, or NULL) added, then GELU when gelu, by cuBLASLt's
 * epilogue (its GELU is the tanh approximation). INT8 takes NULL and 0. */
gsq_status gsq_cuda_blas_create(gsq_cuda_blas **out, gsq_cuda_blas_type type, int M, int N, int K, const void *bias,
                                int gelu, gsq_error *err);
gsq_status gsq_cuda_blas_run(gsq_cuda_blas *p, const void *x, const void *w, void *y, gsq_error *err);
void gsq_cuda_blas_free(gsq_cuda_blas *p);

#endif
