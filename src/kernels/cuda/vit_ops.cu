/* The GPU engine's kernels around the GEMMs and the attention (src/kernels/cuda/vit_ops.h): patch
 * extraction, token assembly, LayerNorm (to the next GEMM's int8 codes, or half for the FP16
 * baseline), the FP16 baseline's residual add, and the classifier head. Each follows the CPU
 * function it names operation for operation; LayerNorm's double sums are taken in another order
 * (per lane, then across the warp), so its output can differ from the CPU's in the last bit of
 * the mean or variance, which is rare (docs/CUDA.md). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/vit_ops.h"
#include "kernels/quant_code.h"

#define THREADS 256      /* elementwise kernels */
#define ROW_WARPS 4      /* LayerNorm: a warp per row */
#define HEAD_WARPS 8     /* classifier: a warp per class at a time */
#define HEAD_CLASSES 256 /* classes per block of the classifier */

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

/* The mean and 1/σ of one row of D values as gsq_layernorm_row computes them (double sums, in
 * this lane's order then across the warp); the whole warp calls it and gets both. */
__device__ void row_stats(const float *x, int D, float eps, float *mean, float *rstd)
{
    int lane = threadIdx.x & 31;
    double s = 0.0;
    for (int c = lane; c < D; c += 32) s += x[c];
    float m = (float)(warp_sum(s) / D);
    double v = 0.0;
    for (int c = lane; c < D; c += 32) {
        float d = x[c] - m;
        v += (double)d * d;
    }
    *mean = m;
    *rstd = (float)(1.0 / sqrt(warp_sum(v) / D + eps));
}

/* y = LayerNorm(x) (M, D), a warp per row: codes at row stride ld when QUANT, else half (ld = D). */
template <bool QUANT>
__global__ void __launch_bounds__(ROW_WARPS * 32)
    layernorm_kernel(void *y, int ld, const float *__restrict__ x, int M, int D, const float *__restrict__ w,
                     const float *__restrict__ b, float eps, float inv, float qmax)
{
    int row = blockIdx.x * ROW_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= M) return; /* the whole warp */
    const float *xr = x + (size_t)row * D;
    float m, r;
    row_stats(xr, D, eps, &m, &r);
    for (int c = lane; c < D; c += 32) {
        float v = (xr[c] - m) * r * w[c] + b[c];
        size_t at = (size_t)row * (size_t)ld + (size_t)c;
        if (QUANT) ((int8_t *)y)[at] = (int8_t)(int)gsq_quant_code(v, inv, qmax);
        else ((__half *)y)[at] = __float2half_rn(v);
    }
}

extern "C" gsq_status gsq_cuda_layernorm_i8(int8_t *y, int ldy, const float *x, int M, int D, const float *w,
                                            const float *b, float eps, float inv, int qmax, gsq_error *err)
{
    layernorm_kernel<true><<<blocks_for((size_t)M, ROW_WARPS), ROW_WARPS * 32>>>(y, ldy, x, M, D, w, b, eps, inv,
                                                                                   (float)qmax);
    return gsq_cuda_launched(err, "launching a layernorm");
}

extern "C" gsq_status gsq_cuda_layernorm_f16(void *y, const float *x, int M, int D, const float *w, const float *b,
                                             float eps, gsq_error *err)
{
    layernorm_kernel<false><<<blocks_for((size_t)M, ROW_WARPS), ROW_WARPS * 32>>>(y, D, x, M, D, w, b, eps, 0.0f,
                                                                                    0.0f);
    return gsq_cuda_launched(err, "launching a layernorm");
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

/* logits (B, K) from x (B, T, D). Block (b, kb): image b, classes HEAD_CLASSES·kb on. Shared
 * memory: the pooled rows (1, or 2 when distilled) of D floats, normalized in place. */
__global__ void __launch_bounds__(HEAD_WARPS * 32) head_kernel(float *logits, const float *__restrict__ x,
                                                               gsq_cuda_head_args h)
{
    extern __shared__ float pooled[];
    int b = blockIdx.x, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, heads = h.distilled ? 2 : 1;
    const float *xb = x + (size_t)b * h.T * h.D;
    for (int d = threadIdx.x; d < h.D; d += blockDim.x) {
        if (h.avg_pool) { /* gsq_pool_forward: a double sum over the tokens in order */
            double s = 0.0;
            for (int t = h.prefix; t < h.T; t++) s += xb[(size_t)t * h.D + d];
            pooled[d] = (float)(s / (h.T - h.prefix));
        } else {
            pooled[d] = xb[d];
        }
        if (h.distilled) pooled[h.D + d] = xb[h.D + d];
    }
    __syncthreads();
    if (warp < heads) { /* the final LayerNorm of each pooled row, a warp each */
        float *row = pooled + (size_t)warp * h.D, m, r;
        row_stats(row, h.D, h.eps, &m, &r);
        for (int c = lane; c < h.D; c += 32) row[c] = (row[c] - m) * r * h.norm_w[c] + h.norm_b[c];
    }
    __syncthreads();
    int k_end = min(h.K, (blockIdx.y + 1) * HEAD_CLASSES);
    for (int k = blockIdx.y * HEAD_CLASSES + warp; k < k_end; k += HEAD_WARPS) {
        float logit[2];
        for (int i = 0; i < heads; i++) {
            const float *wk = (i ? h.dist_w : h.head_w) + (size_t)k * h.D, *row = pooled + (size_t)i * h.D;
            float s = 0.0f;
            for (int c = lane; c < h.D; c += 32) s += row[c] * wk[c];
            const float *bias = i ? h.dist_b : h.head_b;
            logit[i] = warp_sum(s) + (bias ? bias[k] : 0.0f);
        }
        if (lane == 0) logits[(size_t)b * h.K + k] = h.distilled ? 0.5f * (logit[0] + logit[1]) : logit[0];
    }
}

extern "C" gsq_status gsq_cuda_head(float *logits, const float *x, int B, const gsq_cuda_head_args *h, gsq_error *err)
{
    size_t shared = (size_t)(h->distilled ? 2 : 1) * h->D * sizeof(float);
    if (shared > 48 * 1024)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda head: width %d is too wide for the classifier kernel", h->D);
    dim3 grid((unsigned)B, blocks_for((size_t)h->K, HEAD_CLASSES));
    head_kernel<<<grid, HEAD_WARPS * 32, shared>>>(logits, x, *h);
    return gsq_cuda_launched(err, "launching the classifier");
}
