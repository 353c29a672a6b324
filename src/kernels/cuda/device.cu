/* The CUDA backend's device queries and device memory (gpusq/cuda.h). */
#include <cuda_runtime.h>

#include <stdio.h>

extern "C" {
#include "gpusq/cuda.h"
}
#include "kernels/cuda/cuda_status.h"

extern "C" int gsq_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
}

extern "C" gsq_status gsq_cuda_device_name(int dev, char *buf, size_t cap, gsq_error *err)
{
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, dev);
    if (e != cudaSuccess) return gsq_cuda_fail(err, e, "device properties");
    snprintf(buf, cap, "%s (sm_%d%d)", prop.name, prop.major, prop.minor);
    return GSQ_OK;
}

extern "C" gsq_status gsq_cuda_malloc(void **dev, size_t bytes, gsq_error *err)
{
    *dev = NULL;
    cudaError_t e = cudaMalloc(dev, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *dev = NULL;
        return gsq_cuda_fail(err, e, "allocating device memory");
    }
    return GSQ_OK;
}

extern "C" void gsq_cuda_free(void *dev)
{
    cudaFree(dev);
}

extern "C" gsq_status gsq_cuda_upload(void *dev, const void *host, size_t bytes, gsq_error *err)
{
    cudaError_t e = bytes ? cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice) : cudaSuccess;
    return e == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, e, "copy to the device");
}

extern "C" gsq_status gsq_cuda_download(void *host, const void *dev, size_t bytes, gsq_error *err)
{
    cudaError_t e = bytes ? cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost) : cudaSuccess;
    return e == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, e, "copy from the device");
}

extern "C" gsq_status gsq_cuda_synchronize(gsq_error *err)
{
    cudaError_t e = cudaDeviceSynchronize();
    return e == cudaSuccess ? GSQ_OK : gsq_cuda_fail(err, e, "synchronize");
}
