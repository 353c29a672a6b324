// The one kernel of the NCCL communicator: an owner adds a contribution to its part of the sum,
// one addition per element as the CPU owners make (src/dist/comm_mpi.c), so the order of ranks
// alone decides the result.
#include <cuda_runtime.h>

extern "C" {
#include "dist/comm_nccl.h"
}

__global__ static void add_kernel(float *acc, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        acc[i] += x[i];
}

extern "C" int gsq_nccl_add(float *acc, const float *x, size_t n, void *stream)
{
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    add_kernel<<<blocks < 4096 ? (unsigned)blocks : 4096u, 256, 0, (cudaStream_t)stream>>>(acc, x, n);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}
