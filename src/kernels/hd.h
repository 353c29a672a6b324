/* Private: GSQ_HD marks a small inline function that both the C sources and the CUDA kernels
 * compile (for the host and, under nvcc, for the device too), so that a formula the CPU engine and
 * the GPU engine share is written once. The C sources are compiled as ISO C (-std=c11, no FMA
 * contraction) and the CUDA sources with -fmad=false, so such a function performs the same IEEE
 * operations on both sides and rounds alike. */
#ifndef GSQ_KERNELS_HD_H
#define GSQ_KERNELS_HD_H

#ifdef __CUDACC__
#define GSQ_HD static __host__ __device__ __forceinline__
#else
#define GSQ_HD static inline
#endif

#endif
