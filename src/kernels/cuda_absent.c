/* The CUDA interface in builds without nvcc: reports that no GPU backend was compiled. */
#ifndef GSQ_HAVE_CUDA
#include "gpusq/cuda.h"

static gsq_status absent(gsq_error *err)
{
    return gsq_fail(err, GSQ_ERR_UNSUPPORTED, "cuda: this build of gpusq has no CUDA backend");
}

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
    return absent(err);
}

gsq_status gsq_cuda_malloc(void **dev, size_t bytes, gsq_error *err)
{
    *dev = NULL;
    return absent(err);
}

void gsq_cuda_free(void *dev)
{
}

gsq_status gsq_cuda_upload(void *dev, const void *host, size_t bytes, gsq_error *err)
{
    return absent(err);
}

gsq_status gsq_cuda_download(void *host, const void *dev, size_t bytes, gsq_error *err)
{
    return absent(err);
}

gsq_status gsq_cuda_synchronize(gsq_error *err)
{
    return absent(err);
}

gsq_status gsq_cuda_sgemm_ref(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                              const float *A, int lda, const float *B, int ldb, float beta,
                              float *C, int ldc, gsq_error *err)
{
    return absent(err);
}

gsq_status gsq_cuda_i8_weight_sparse(gsq_cuda_i8_weight **out, const int8_t *values, const uint16_t *meta, int rows,
                                     int cols, gsq_error *err)
{
    *out = NULL;
    return absent(err);
}

gsq_status gsq_cuda_i8_weight_dense(gsq_cuda_i8_weight **out, const int8_t *codes, int rows, int cols, gsq_error *err)
{
    *out = NULL;
    return absent(err);
}

void gsq_cuda_i8_weight_free(gsq_cuda_i8_weight *w)
{
}

size_t gsq_cuda_i8_weight_bytes(const gsq_cuda_i8_weight *w)
{
    return 0;
}

gsq_status gsq_cuda_i8_gemm(const gsq_cuda_i8_weight *w, const int8_t *x, int ldx, int M, const gsq_cuda_epilogue *e,
                            void *y, int ldy, gsq_error *err)
{
    return absent(err);
}

gsq_status gsq_cuda_blas_create(gsq_cuda_blas **out, gsq_cuda_blas_type type, int M, int N, int K, const void *bias,
                                int gelu, gsq_error *err)
{
    *out = NULL;
    return absent(err);
}

gsq_status gsq_cuda_blas_run(gsq_cuda_blas *p, const void *x, const void *w, void *y, gsq_error *err)
{
    return absent(err);
}

void gsq_cuda_blas_free(gsq_cuda_blas *p)
{
}
#else
typedef int gsq_cuda_absent_unused; /* ISO C forbids an empty translation unit */
#endif
