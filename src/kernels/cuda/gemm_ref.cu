/* CUDA reference GEMM (one thread per output, fp32 accumulation in double), behind the C
 * interface of gpusq/cuda.h. */
#include <cuda_runtime.h>

extern "C" {
#include "gpusq/cuda.h"
}
#include "kernels/cuda/cuda_status.h"

/* C (M, N) = alpha · op(A) (M, K) · op(B) (K, N) + beta · C, row-major */
__global__ static void sgemm_ref_kernel(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                                        const float *A, int lda, const float *B, int ldb, float beta,
                                        float *C, int ldc)
{
    int i = blockIdx.y * blockDim.y + threadIdx.y;
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= M || j >= N) return;
    double acc = 0.0;
    for (int k = 0; k < K; k++) {
        float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        acc += (double)a * (double)b;
    }
    float *c = &C[(size_t)i * ldc + j];
    *c = (float)(alpha * acc) + (beta == 0.0f ? 0.0f : beta * *c);
}

/* Rows of op(X) (R, Cc) stored with leading dimension ld occupy this many elements. */
static size_t stored_elems(bool trans, int rows, int cols, int ld)
{
    return trans ? (size_t)(cols - 1) * ld + rows : (size_t)(rows - 1) * ld + cols;
}

extern "C" gsq_status gsq_cuda_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                                         const float *A, int lda, const float *B, int ldb, float beta,
                                         float *C, int ldc, gsq_error *err)
{
    if (M <= 0 || N <= 0 || K < 0)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda sgemm: bad shape %d×%d×%d", M, N, K);
    size_t na = K ? stored_elems(trans_a, M, K, lda) : 1, nb = K ? stored_elems(trans_b, K, N, ldb) : 1;
    size_t nc = stored_elems(false, M, N, ldc);
    float *dA = NULL, *dB = NULL, *dC = NULL;
    cudaError_t e = cudaMalloc(&dA, na * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc(&dB, nb * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc(&dC, nc * sizeof(float));
    if (e == cudaSuccess && K) e = cudaMemcpy(dA, A, na * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess && K) e = cudaMemcpy(dB, B, nb * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(dC, C, nc * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        dim3 block(16, 16), grid((N + 15) / 16, (M + 15) / 16);
        sgemm_ref_kernel<<<grid, block>>>(trans_a, trans_b, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(C, dC, nc * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    return e == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, e, "reference sgemm");
}
