/* Private: CUDA errors as gpusq statuses, for the CUDA backend's .cu files and the engine's CUDA
 * side (src/engine/engine_cuda.c, C). */
#ifndef GSQ_KERNELS_CUDA_STATUS_H
#define GSQ_KERNELS_CUDA_STATUS_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "gpusq/status.h"
#ifdef __cplusplus
}
#endif

/* "cuda: WHAT: the runtime's message"; out of device memory is GSQ_ERR_NOMEM, the rest (no
 * driver, no device, a failed launch) GSQ_ERR_UNSUPPORTED. */
static inline gsq_status gsq_cuda_fail(gsq_error *err, cudaError_t e, const char *what)
{
    return gsq_fail(err, e == cudaErrorMemoryAllocation ? GSQ_ERR_NOMEM : GSQ_ERR_UNSUPPORTED, "cuda: %s: %s", what,
                    cudaGetErrorString(e));
}

/* After a kernel launch: its launch error as a status ("cuda: WHAT: ..."), or GSQ_OK. */
static inline gsq_status gsq_cuda_launched(gsq_error *err, const char *what)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, e, what);
}

#endif
