/* Private: CUDA and cuBLASLt errors as gpusq statuses, for the .cu files of the CUDA backend. */
#ifndef GSQ_KERNELS_CUDA_STATUS_H
#define GSQ_KERNELS_CUDA_STATUS_H

#include <cuda_runtime.h>

extern "C" {
#include "gpusq/status.h"
}

/* "cuda: WHAT: the runtime's message"; out of device memory is GSQ_ERR_NOMEM, the rest (no
 * driver, no device, a failed launch) GSQ_ERR_UNSUPPORTED. */
static inline gsq_status gsq_cuda_fail(gsq_error *err, cudaError_t e, const char *what)
{
    return gsq_fail(err, e == cudaErrorMemoryAllocation ? GSQ_ERR_NOMEM : GSQ_ERR_UNSUPPORTED, "cuda: %s: %s", what,
                    cudaGetErrorString(e));
}

#endif
