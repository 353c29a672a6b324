/* The CUDA interface in builds without nvcc: reports that no GPU backend was compiled. */
#ifndef GSQ_HAVE_CUDA
#include "gpusq/cuda.h"

#include <stdio.h>

int gsq_cuda_compiled(void)
{
    return 0;
}

int gsq_cuda_device_count(void)
{
    return 0;
}

gsq_status gsq_cuda_device_name(int dev, char *buf, size_t cap, gsq_error *err)
{
    if (cap) buf[0] = '\0';
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: this build of gpusq has no CUDA backend");
}

gsq_status gsq_cuda_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float *A, int lda, const float *B, int ldb, float beta,
                              float *C, int ldc, gsq_error *err)
{
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: this build of gpusq has no CUDA backend");
}
#else
typedef int gsq_cuda_absent_unused; /* ISO C forbids an empty translation unit */
#endif
