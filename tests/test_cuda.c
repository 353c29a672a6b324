/* CUDA backend: the GPU reference GEMM equals the CPU reference on random data and awkward
 * shapes. Skips (exit 0, reported) where the build has no CUDA or the machine no GPU. */
#include <stdlib.h>

#include "gpusq/cuda.h"
#include "gpusq/kernels.h"
#include "test_util.h"

int main(void)
{
    if (!gsq_cuda_compiled() || gsq_cuda_device_count() == 0) {
        printf("test_cuda: skipped (%s)\n", gsq_cuda_compiled() ? "no GPU present" : "built without CUDA");
        return test_finish("test_cuda");
    }
    char name[256];
    gsq_error err = {0};
    CHECK(gsq_cuda_device_name(0, name, sizeof name, &err) == GSQ_OK, "%s", err.msg);
    printf("test_cuda: device %s\n", name);
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {197, 96, 65}, {64, 192, 64}, {3, 5, 0}};
    gsq_rng rng;
    gsq_rng_seed(&rng, 7, 1);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (int tr = 0; tr < 4; tr++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            bool ta = tr & 1, tb = tr & 2;
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            float *A = malloc(sizeof(float) * (size_t)(K + 1) * (M + 4) * 2);
            float *B = malloc(sizeof(float) * (size_t)(K + 1) * (N + 4) * 2);
            float *C1 = malloc(sizeof(float) * (size_t)M * ldc), *C2 = malloc(sizeof(float) * (size_t)M * ldc);
            fill_normal(A, (size_t)(K + 1) * (M + 4) * 2, &rng, 1.0f);
            fill_normal(B, (size_t)(K + 1) * (N + 4) * 2, &rng, 1.0f);
            fill_normal(C1, (size_t)M * ldc, &rng, 1.0f);
            for (size_t i = 0; i < (size_t)M * ldc; i++) C2[i] = C1[i];
            gsq_sgemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C1, ldc);
            CHECK(gsq_cuda_sgemm_ref(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 1.0f, C2, ldc, &err) == GSQ_OK, "%s", err.msg);
            /* both accumulate in double and round once: equal up to the final fma rounding */
            CHECK(max_rel_err(C2, C1, (size_t)M * ldc) < 1e-6, "shape %d×%d×%d trans %d%d", M, N, K, ta, tb);
            free(A);
            free(B);
            free(C1);
            free(C2);
        }
    }
    return test_finish("test_cuda");
}
