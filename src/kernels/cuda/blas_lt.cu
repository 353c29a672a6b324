/* cuBLASLt dense GEMMs, the baselines our INT8 kernels are measured against (gpusq/cuda.h):
 * y (M, N) = x (M, K) · wᵀ with row-major x, w, y, INT8 → INT32 or FP16 → FP16 (FP32 accumulate,
 * optionally with cuBLASLt's bias and GELU epilogues: the GPU engine's FP16 baseline).
 * In cuBLAS's column-major terms that is yᵀ (N × M) = op(w) · xᵀ with w seen as a K × N matrix
 * and op = transpose: the "TN" form the integer tensor-core paths require. */
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

extern "C" {
#include "gpusq/cuda.h"
}
#include "kernels/cuda/cuda_status.h"

#define WORKSPACE_BYTES ((size_t)32 << 20)

struct gsq_cuda_blas {
    gsq_cuda_blas_type type;
    cublasLtHandle_t lt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t w, x, y;
    cublasLtMatmulAlgo_t algo;
    void *workspace;
};

static gsq_status blas_fail(gsq_error *err, cublasStatus_t s, const char *what)
{
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cublasLt: %s: %s", what, cublasLtGetStatusString(s));
}

extern "C" void gsq_cuda_blas_free(gsq_cuda_blas *p)
{
    if (!p) return;
    if (p->y) cublasLtMatrixLayoutDestroy(p->y);
    if (p->x) cublasLtMatrixLayoutDestroy(p->x);
    if (p->w) cublasLtMatrixLayoutDestroy(p->w);
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->lt) cublasLtDestroy(p->lt);
    cudaFree(p->workspace);
    free(p);
}

extern "C" gsq_status gsq_cuda_blas_create(gsq_cuda_blas **out, gsq_cuda_blas_type type, int M, int N, int K,
                                           const void *bias, int gelu, gsq_error *err)
{
    *out = NULL;
    if (M < 1 || N < 1 || K < 1) return gsq_fail(err, GSQ_ERR_ARG, "cublasLt: bad shape %d × %d × %d", M, N, K);
    if ((bias || gelu) && type != GSQ_CUDA_BLAS_F16)
        return gsq_fail(err, GSQ_ERR_ARG, "cublasLt: a bias or GELU epilogue is for FP16 GEMMs");
    gsq_cuda_blas *p = (gsq_cuda_blas *)calloc(1, sizeof *p);
    if (!p) return gsq_fail(err, GSQ_ERR_NOMEM, "cublasLt: out of memory");
    p->type = type;
    int i8 = type == GSQ_CUDA_BLAS_I8;
    cudaDataType_t in = i8 ? CUDA_R_8I : CUDA_R_16F, res = i8 ? CUDA_R_32I : CUDA_R_16F;
    cublasOperation_t trans = CUBLAS_OP_T, none = CUBLAS_OP_N;
    uint64_t ws = WORKSPACE_BYTES;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t found;
    int count = 0;
    cublasStatus_t s = cublasLtCreate(&p->lt);
    const char *step = "create";
    if (s == CUBLAS_STATUS_SUCCESS) {
        step = "describe";
        s = cublasLtMatmulDescCreate(&p->op, i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F, i8 ? CUDA_R_32I : CUDA_R_32F);
    }
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof trans);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &none, sizeof none);
    cublasLtEpilogue_t epi = bias ? (gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                  : (gelu ? CUBLASLT_EPILOGUE_GELU : CUBLASLT_EPILOGUE_DEFAULT);
    if (s == CUBLAS_STATUS_SUCCESS && epi != CUBLASLT_EPILOGUE_DEFAULT)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (s == CUBLAS_STATUS_SUCCESS && bias)
        s = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&p->w, in, K, N, K);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&p->x, in, K, M, K);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatrixLayoutCreate(&p->y, res, N, M, N);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtMatmulPreferenceCreate(&pref);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s == CUBLAS_STATUS_SUCCESS) {
        step = "choose an algorithm";
        s = cublasLtMatmulAlgoGetHeuristic(p->lt, p->op, p->w, p->x, p->y, p->y, pref, 1, &found, &count);
    }
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && count == 0) s = CUBLAS_STATUS_NOT_SUPPORTED;
    if (s != CUBLAS_STATUS_SUCCESS) {
        gsq_cuda_blas_free(p);
        return blas_fail(err, s, step);
    }
    p->algo = found.algo;
    cudaError_t e = cudaMalloc(&p->workspace, WORKSPACE_BYTES);
    if (e != cudaSuccess) {
        gsq_cuda_blas_free(p);
        return gsq_cuda_fail(err, e, "cublasLt workspace");
    }
    *out = p;
    return GSQ_OK;
}

extern "C" gsq_status gsq_cuda_blas_run(gsq_cuda_blas *p, const void *x, const void *w, void *y, gsq_error *err)
{
    int32_t one_i = 1, zero_i = 0;
    float one_f = 1.0f, zero_f = 0.0f;
    int i8 = p->type == GSQ_CUDA_BLAS_I8;
    const void *alpha = i8 ? (const void *)&one_i : (const void *)&one_f;
    const void *beta = i8 ? (const void *)&zero_i : (const void *)&zero_f;
    cublasStatus_t s = cublasLtMatmul(p->lt, p->op, alpha, w, p->w, x, p->x, beta, y, p->y, y, p->y, &p->algo,
                                      p->workspace, WORKSPACE_BYTES, 0);
    return s == CUBLAS_STATUS_SUCCESS ? GSQ_OK : blas_fail(err, s, "matmul");
}
