/* The GPU engine's kernels around the GEMMs and the attention (src/kernels/cuda/ops.h): patch
 * extraction, token assembly, LayerNorm (to the next GEMM's int8 codes, half for the FP16
 * baseline, or floats; optionally through Swin's window partition), Swin's row rearrangements
 * (the partition's reverse with the residual, patch merging), the FP16 baseline's residual add,
 * pooling, the float linear and the mean of two heads. Each follows the CPU
 * function it names operation for operation; LayerNorm's double sums are taken in another order
 * (per lane, then across the warp), so its output can differ from the CPU's in the last bit of
 * the mean or variance, which is rare (docs/CUDA.md). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"
#include "kernels/quant_code.h"

#define THREADS 256      /* elementwise kernels */
#define ROW_WARPS 4      /* LayerNorm: a warp per row */
#define LINEAR_WARPS 8   /* float linear: a warp per output */

static unsigned blocks_for(size_t n, unsigned per) { return (unsigned)((n + per - 1) / per); }

/* patches (B·NP, C·P·P) at row stride ld from images (B, C, S, S): element (row, k) with
 * row = b·NP + gy·(S/P) + gx and k = (c·P + py)·P + px, as gsq_patchify. Codes when QUANT. */
template <bool QUANT>
__global__ void patchify_kernel(void *out, int ld, const float *__restrict__ images, int B, int C, int S, int P,
                                float inv, float qmax)
{
    int G = S / P, NP = G * G, CPP = C * P * P;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * NP * CPP) return;
    int k = (int)(i % (size_t)CPP), row = (int)(i / (size_t)CPP);
    int b = row / NP, p = row % NP, gy = p / G, gx = p % G;
    int c = k / (P * P), py = (k / P) % P, px = k % P;
    float v = images[(((size_t)b * C + c) * S + (size_t)gy * P + py) * S + (size_t)gx * P + px];
    size_t at = (size_t)row * (size_t)ld + (size_t)k;
    if (QUANT) ((int8_t *)out)[at] = (int8_t)(int)gsq_quant_code(v, inv, qmax);
    else ((__half *)out)[at] = __float2half_rn(v);
}

extern "C" gsq_status gsq_cuda_patchify_i8(int8_t *xq, int ldq, const float *images, int B, int C, int S, int P,
                                           float inv, int qmax, gsq_error *err)
{
    size_t n = (size_t)B * (S / P) * (S / P) * C * P * P;
    patchify_kernel<true><<<blocks_for(n, THREADS), THREADS>>>(xq, ldq, images, B, C, S, P, inv, (float)qmax);
    return gsq_cuda_launched(err, "launching the patch extraction");
}

extern "C" gsq_status gsq_cuda_patchify_f16(void *xh, const float *images, int B, int C, int S, int P, gsq_error *err)
{
    size_t n = (size_t)B * (S / P) * (S / P) * C * P * P;
    patchify_kernel<false><<<blocks_for(n, THREADS), THREADS>>>(xh, C * P * P, images, B, C, S, P, 0.0f, 0.0f);
    return gsq_cuda_launched(err, "launching the patch extraction");
}

/* x (B, T, D) = [cls, dist, pe (B, NP, D)] + pos (T, D), a thread per value. */
template <typename PE>
__global__ void tokens_kernel(float *x, const PE *__restrict__ pe, const float *cls, const float *dist,
                              const float *__restrict__ pos, int B, int NP, int D)
{
    int prefix = (cls != NULL) + (dist != NULL), T = prefix + NP;
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * T * D) return;
    int d = (int)(i % (size_t)D), t = (int)(i / (size_t)D % (size_t)T), b = (int)(i / ((size_t)D * T));
    float src;
    if (t < prefix) src = (t == 0 && cls) ? cls[d] : dist[d];
    else src = (float)pe[((size_t)b * NP + (t - prefix)) * D + d];
    x[i] = src + pos[(size_t)t * D + d];
}

extern "C" gsq_status gsq_cuda_tokens(float *x, const void *pe, int pe_half, const float *cls, const float *dist,
                                      const float *pos, int B, int NP, int D, gsq_error *err)
{
    size_t n = (size_t)B * ((cls != NULL) + (dist != NULL) + NP) * D;
    unsigned blocks = blocks_for(n, THREADS);
    if (pe_half) tokens_kernel<__half><<<blocks, THREADS>>>(x, (const __half *)pe, cls, dist, pos, B, NP, D);
    else tokens_kernel<float><<<blocks, THREADS>>>(x, (const float *)pe, cls, dist, pos, B, NP, D);
    return gsq_cuda_launched(err, "launching the token assembly");
}

/* The sum of v over the warp, in every lane. */
template <typename V> __device__ __forceinline__ V warp_sum(V v)
{
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

/* The mean and 1/σ of one row of D values as gsq_layernorm_row computes them (double sums, in
 * this lane's order then across the warp); the whole warp calls it and gets both. */
template <typename X> __device__ void row_stats(const X *x, int D, float eps, float *mean, float *rstd)
{
    int lane = threadIdx.x & 31;
    double s = 0.0;
    for (int c = lane; c < D; c += 32) s += to_float(x[c]);
    float m = (float)(warp_sum(s) / D);
    double v = 0.0;
    for (int c = lane; c < D; c += 32) {
        float d = to_float(x[c]) - m;
        v += (double)d * d;
    }
    *mean = m;
    *rstd = (float)(1.0 / sqrt(warp_sum(v) / D + eps));
}

/* What a LayerNorm writes: the next GEMM's int8 codes, half, or floats. */
enum norm_out { NORM_CODES, NORM_HALF, NORM_FLOAT };

/* y = LayerNorm(x), M output rows, a warp per row, at row stride ld (codes) or D; x of X. With a
 * map (gsq_cuda_rows), output row r reads image r / rows's row map[r % rows] (images of x_rows
 * rows), or is zero where that is -1. */
template <norm_out OUT, typename X>
__global__ void __launch_bounds__(ROW_WARPS * 32)
    layernorm_kernel(void *y, int ld, const X *__restrict__ x, int M, int D, const float *__restrict__ w,
                     const float *__restrict__ b, float eps, float inv, float qmax, const int *__restrict__ map,
                     int rows, int x_rows)
{
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= M) return; /* the whole warp */
    size_t src = (size_t)row;
    int from = map ? map[row % rows] : 0;
    if (map) src = (size_t)(row / rows) * (size_t)x_rows + (size_t)from;
    float m = 0.0f, r = 0.0f;
    if (from >= 0) row_stats(x + src * D, D, eps, &m, &r);
    for (int c = lane; c < D; c += 32) {
        float v = from >= 0 ? (to_float(x[src * D + c]) - m) * r * w[c] + b[c] : 0.0f; /* padding: zero */
        size_t at = (size_t)row * (size_t)ld + (size_t)c;
        if (OUT == NORM_CODES) ((int8_t *)y)[at] = (int8_t)(int)gsq_quant_code(v, inv, qmax);
        else if (OUT == NORM_HALF) ((__half *)y)[at] = __float2half_rn(v);
        else ((float *)y)[at] = v;
    }
}

/* One LayerNorm launch: M output rows (src's rows per image when it maps them). */
template <norm_out OUT>
static gsq_status layernorm(void *y, int ld, const void *x, int M, int D, const float *w, const float *b, float eps,
                            float inv, float qmax, const gsq_cuda_rows *src, gsq_error *err)
{
    gsq_cuda_rows plain = {NULL, 1, 1, 0};
    const gsq_cuda_rows *s = src ? src : &plain;
    if (s->map && (s->rows < 1 || s->x_rows < 1))
        return gsq_fail(err, GSQ_ERR_ARG, "cuda layernorm: a row map of %d rows over images of %d", s->rows, s->x_rows);
    dim3 grid(blocks_for((size_t)M, ROW_WARPS)), block(ROW_WARPS * 32);
    if (s->half)
        layernorm_kernel<OUT, __half><<<grid, block>>>(y, ld, (const __half *)x, M, D, w, b, eps, inv, qmax, s->map,
                                                       s->rows, s->x_rows);
    else
        layernorm_kernel<OUT, float><<<grid, block>>>(y, ld, (const float *)x, M, D, w, b, eps, inv, qmax, s->map,
                                                      s->rows, s->x_rows);
    return gsq_cuda_launched(err, "launching a layernorm");
}

extern "C" gsq_status gsq_cuda_layernorm_i8(int8_t *y, int ldy, const void *x, int M, int D, const float *w,
                                            const float *b, float eps, float inv, int qmax, const gsq_cuda_rows *src,
                                            gsq_error *err)
{
    return layernorm<NORM_CODES>(y, ldy, x, M, D, w, b, eps, inv, (float)qmax, src, err);
}

extern "C" gsq_status gsq_cuda_layernorm_f16(void *y, const void *x, int M, int D, const float *w, const float *b,
                                             float eps, const gsq_cuda_rows *src, gsq_error *err)
{
    return layernorm<NORM_HALF>(y, D, x, M, D, w, b, eps, 0.0f, 0.0f, src, err);
}

extern "C" gsq_status gsq_cuda_layernorm_f32(float *y, const void *x, int M, int D, const float *w, const float *b,
                                             float eps, const gsq_cuda_rows *src, gsq_error *err)
{
    return layernorm<NORM_FLOAT>(y, D, x, M, D, w, b, eps, 0.0f, 0.0f, src, err);
}

/* y (B, rows, C): row r of image b is x's row map[r] of image b (x_rows rows per image; -1:
 * zeros), plus res's row when given, or added into y (accumulate); a thread per value. */
template <typename X>
__global__ void gather_rows_kernel(float *y, const X *__restrict__ x, const float *__restrict__ res, int accumulate,
                                   const int *__restrict__ map, int B, int x_rows, int rows, int C)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)B * rows * C) return;
    size_t c = i % (size_t)C, r = i / (size_t)C % (size_t)rows, b = i / ((size_t)C * rows);
    int from = map[r];
    float v = from >= 0 ? to_float(x[(b * (size_t)x_rows + (size_t)from) * C + c]) : 0.0f;
    y[i] = accumulate ? y[i] + v : (res ? v + res[i] : v);
}

extern "C" gsq_status gsq_cuda_gather_rows(float *y, const void *x, int x_half, const float *res, int accumulate,
                                           const int *map, int B, int x_rows, int rows, int C, gsq_error *err)
{
    size_t n = (size_t)B * rows * C;
    if (B < 1 || x_rows < 1 || rows < 1 || C < 1 || !map)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda row gather: B %d, %d rows from %d, C %d", B, rows, x_rows, C);
    if (x_half)
        gather_rows_kernel<__half><<<blocks_for(n, THREADS), THREADS>>>(y, (const __half *)x, res, accumulate, map, B,
                                                                       x_rows, rows, C);
    else
        gather_rows_kernel<float><<<blocks_for(n, THREADS), THREADS>>>(y, (const float *)x, res, accumulate, map, B,
                                                                      x_rows, rows, C);
    return gsq_cuda_launched(err, "launching a row gather");
}

__global__ void add_f16_kernel(float *x, const __half *__restrict__ y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += __half2float(y[i]);
}

extern "C" gsq_status gsq_cuda_add_f16(float *x, const void *y, size_t n, gsq_error *err)
{
    add_f16_kernel<<<blocks_for(n, THREADS), THREADS>>>(x, (const __half *)y, n);
    return gsq_cuda_launched(err, "launching a residual add");
}

__global__ void f16_to_f32_kernel(float *x, const __half *__restrict__ y, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = __half2float(y[i]);
}

extern "C" gsq_status gsq_cuda_f16_to_f32(float *x, const void *y, size_t n, gsq_error *err)
{
    f16_to_f32_kernel<<<blocks_for(n, THREADS), THREADS>>>(x, (const __half *)y, n);
    return gsq_cuda_launched(err, "launching a half to float conversion");
}

/* out (slices, B, D) from x (B, T, D), a thread per output value. */
__global__ void pool_kernel(float *out, const float *__restrict__ x, int B, int T, int D, int avg, int slices,
                            int prefix)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)slices * B * D) return;
    int d = (int)(i % (size_t)D), b = (int)(i / (size_t)D % (size_t)B), k = (int)(i / ((size_t)D * B));
    const float *xb = x + (size_t)b * T * D;
    if (k == 0 && avg) { /* gsq_pool_forward: a double sum over the tokens in order */
        double s = 0.0;
        for (int t = prefix; t < T; t++) s += xb[(size_t)t * D + d];
        out[i] = (float)(s / (T - prefix));
    } else {
        out[i] = xb[(size_t)k * D + d];
    }
}

extern "C" gsq_status gsq_cuda_pool(float *out, const float *x, int B, int T, int D, int avg, int slices, int prefix,
                                    gsq_error *err)
{
    size_t n = (size_t)slices * B * D;
    pool_kernel<<<blocks_for(n, THREADS), THREADS>>>(out, x, B, T, D, avg, slices, prefix);
    return gsq_cuda_launched(err, "launching a pooling");
}

/* y (M, N) = x (M, K) · wᵀ + b: warp w of block (m, nb) computes outputs nb·LINEAR_WARPS + w of
 * row m, the lanes' partial sums added across the warp. */
__global__ void __launch_bounds__(LINEAR_WARPS * 32)
    linear_f32_kernel(float *y, const float *__restrict__ x, int M, int K, int N, const float *__restrict__ w,
                      const float *b)
{
    int m = blockIdx.x, n = blockIdx.y * LINEAR_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (n >= N) return; /* the whole warp */
    const float *xr = x + (size_t)m * K, *wn = w + (size_t)n * K;
    float s = 0.0f;
    for (int c = lane; c < K; c += 32) s += xr[c] * wn[c];
    s = warp_sum(s);
    if (lane == 0) y[(size_t)m * N + n] = s + (b ? b[n] : 0.0f);
}

extern "C" gsq_status gsq_cuda_linear_f32(float *y, const float *x, int M, int K, int N, const float *w,
                                          const float *b, gsq_error *err)
{
    dim3 grid((unsigned)M, blocks_for((size_t)N, LINEAR_WARPS));
    linear_f32_kernel<<<grid, LINEAR_WARPS * 32>>>(y, x, M, K, N, w, b);
    return gsq_cuda_launched(err, "launching a float linear");
}

__global__ void mean2_kernel(float *y, const float *__restrict__ a, const float *__restrict__ b, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = 0.5f * (a[i] + b[i]);
}

extern "C" gsq_status gsq_cuda_mean2(float *y, const float *a, const float *b, size_t n, gsq_error *err)
{
    mean2_kernel<<<blocks_for(n, THREADS), THREADS>>>(y, a, b, n);
    return gsq_cuda_launched(err, "launching a mean of two heads");
}
