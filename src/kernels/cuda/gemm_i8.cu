/* The INT8 tensor-core GEMMs of the compressed ViT (gpusq/cuda.h): 2:4 sparse weights through
 * mma.sp::ordered_metadata m16n8k64 and dense weights through mma m16n8k32, both reading weights
 * reordered once at upload into the per-lane register layout of src/kernels/mma_layout.h (the
 * layout the CPU emulator decodes and tests/test_sparse_mma_layout.c pins), with the epilogue
 * fused: per-row scale, bias, GELU, residual add; float, int8 or int32 output.
 *
 * Written for correctness first (docs/CUDA.md): one warp per 16 features × 64 tokens, 4 warps per
 * block over 64 features, K walked one instruction tile at a time, weights one 16-byte load per
 * lane, activations straight from global memory (L1/L2), no shared-memory staging yet. */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

extern "C" {
#include "gpusq/cuda.h"
}
#include "kernels/cuda/cuda_status.h"
#include "kernels/gelu_scalar.h"
#include "kernels/mma_layout.h"
#include "kernels/quant_code.h"

#define WARPS 4                        /* per block, one 16-feature row tile each */
#define TOKENS 64                      /* per block and warp */
#define NTILES (TOKENS / GSQ_MMA_N)    /* 8-token instruction tiles per warp */

struct gsq_cuda_i8_weight {
    int sparse, rows, cols, row_tiles, k_tiles;
    uint4 *a;    /* 32 lanes × 4 A registers per tile */
    uint32_t *e; /* sparse: 32 metadata registers per tile */
};

/* The epilogue's arguments by value (device pointers inside). */
struct epilogue_args {
    gsq_cuda_out out;
    const float *scale, *bias;
    int gelu, accumulate;
    float out_inv, out_qmax;
};

/* d (16 × 8) += A (16 × 64, 2:4: a, e) · B (64 × 8), sparsity selector 0 (all four lanes of a
 * group hold metadata at this shape). */
__device__ __forceinline__ void mma_sparse(int32_t d[4], uint4 a, const uint32_t b[4], uint32_t e)
{
    asm("mma.sp::ordered_metadata.sync.aligned.m16n8k64.row.col.s32.s8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9, %10, %11}, {%0, %1, %2, %3}, %12, 0x0;\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
}

/* d (16 × 8) += A (16 × 32) · B (32 × 8). */
__device__ __forceinline__ void mma_dense(int32_t d[4], uint4 a, const uint32_t b[4])
{
    asm("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b[0]), "r"(b[1]));
}

/* Output (token n, feature row) from its exact sum: the documented epilogue, the CPU engine's
 * gsq_i8_epilogue_apply and quantizer to the bit (the same operations in the same order, no FMA
 * under -fmad=false, and the same GELU and rounding functions). */
__device__ __forceinline__ void store(const epilogue_args &ep, int32_t acc, int row, int n, void *y, int ldy)
{
    size_t at = (size_t)n * (size_t)ldy + (size_t)row;
    if (ep.out == GSQ_CUDA_OUT_S32) {
        ((int32_t *)y)[at] = acc;
        return;
    }
    float v = (float)acc * ep.scale[row];
    v = v + (ep.bias ? ep.bias[row] : 0.0f);
    if (ep.gelu) v = gsq_gelu_approx(v);
    if (ep.out == GSQ_CUDA_OUT_F32) {
        float *yf = (float *)y + at;
        *yf = ep.accumulate ? *yf + v : v;
        return;
    }
    ((int8_t *)y)[at] = (int8_t)(int)gsq_quant_code(v, ep.out_inv, ep.out_qmax);
}

/* y (M, ldy) = epilogue(x (M, K) · wᵀ). Block (bx, by): tokens 64·bx.., row tiles 4·by + warp. */
template <bool SPARSE>
__global__ void __launch_bounds__(WARPS * 32)
    i8_gemm_kernel(const uint4 *__restrict__ wa, const uint32_t *__restrict__ we, int rows, int row_tiles, int k_tiles,
                   int K, const int8_t *__restrict__ x, int ldx, int M, epilogue_args ep, void *y, int ldy)
{
    const int TK = SPARSE ? GSQ_MMA_SP_K : GSQ_MMA_DENSE_K;
    int lane = threadIdx.x & 31, rt = blockIdx.y * WARPS + (threadIdx.x >> 5), m0 = blockIdx.x * TOKENS;
    if (rt >= row_tiles) return; /* the whole warp: no block-wide barrier follows */
    int ntiles = min(NTILES, (M - m0 + GSQ_MMA_N - 1) / GSQ_MMA_N); /* warp-uniform */
    int32_t acc[NTILES][4] = {};
    for (int kt = 0; kt < k_tiles; kt++) {
        size_t at = ((size_t)rt * k_tiles + kt) * 32 + lane;
        uint4 a = __ldg(wa + at);
        uint32_t e = SPARSE ? __ldg(we + at) : 0u;
#pragma unroll
        for (int nt = 0; nt < NTILES; nt++) {
            if (nt >= ntiles) break;
            int n = m0 + nt * GSQ_MMA_N + gsq_mma_b_col(lane);
            uint32_t b[4] = {0u, 0u, 0u, 0u};
#pragma unroll
            for (int j = 0; j < TK / 16; j++) b[j] = gsq_mma_b_word(x, ldx, M, K, n, kt * TK + gsq_mma_b_row(lane, j));
            if (SPARSE) mma_sparse(acc[nt], a, b, e);
            else mma_dense(acc[nt], a, b);
        }
    }
#pragma unroll
    for (int nt = 0; nt < NTILES; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int row = rt * GSQ_MMA_M + gsq_mma_c_row(lane, i), n = m0 + nt * GSQ_MMA_N + gsq_mma_c_col(lane, i);
            if (row < rows && n < M) store(ep, acc[nt][i], row, n, y, ldy);
        }
}

extern "C" void gsq_cuda_i8_weight_free(gsq_cuda_i8_weight *w)
{
    if (!w) return;
    cudaFree(w->a);
    cudaFree(w->e);
    free(w);
}

extern "C" size_t gsq_cuda_i8_weight_bytes(const gsq_cuda_i8_weight *w)
{
    size_t lanes = (size_t)w->row_tiles * (size_t)w->k_tiles * 32;
    return lanes * (sizeof(uint4) + (w->sparse ? sizeof(uint32_t) : 0));
}

/* The host-reordered weight m, copied to the device as *out; m is freed either way. */
static gsq_status upload(gsq_cuda_i8_weight **out, gsq_mma_weight *m, gsq_error *err)
{
    gsq_cuda_i8_weight *w = (gsq_cuda_i8_weight *)calloc(1, sizeof *w);
    if (!w) {
        gsq_mma_weight_free(m);
        return gsq_fail(err, GSQ_ERR_NOMEM, "cuda: out of memory for a weight");
    }
    *w = gsq_cuda_i8_weight{m->sparse, m->rows, m->cols, m->row_tiles, m->k_tiles, NULL, NULL};
    size_t lanes = (size_t)m->row_tiles * (size_t)m->k_tiles * 32;
    cudaError_t e = cudaMalloc(&w->a, lanes * sizeof(uint4));
    if (e == cudaSuccess) e = cudaMemcpy(w->a, m->a, lanes * sizeof(uint4), cudaMemcpyHostToDevice);
    if (e == cudaSuccess && m->sparse) e = cudaMalloc(&w->e, lanes * sizeof(uint32_t));
    if (e == cudaSuccess && m->sparse) e = cudaMemcpy(w->e, m->e, lanes * sizeof(uint32_t), cudaMemcpyHostToDevice);
    gsq_mma_weight_free(m);
    if (e != cudaSuccess) {
        gsq_cuda_i8_weight_free(w);
        return gsq_cuda_fail(err, e, "uploading a weight");
    }
    *out = w;
    return GSQ_OK;
}

extern "C" gsq_status gsq_cuda_i8_weight_sparse(gsq_cuda_i8_weight **out, const int8_t *values, const uint16_t *meta,
                                                int rows, int cols, gsq_error *err)
{
    *out = NULL;
    gsq_mma_weight m;
    gsq_status st = gsq_mma_pack_sparse(&m, values, meta, rows, cols, err);
    return st == GSQ_OK ? upload(out, &m, err) : st;
}

extern "C" gsq_status gsq_cuda_i8_weight_dense(gsq_cuda_i8_weight **out, const int8_t *codes, int rows, int cols,
                                               gsq_error *err)
{
    *out = NULL;
    gsq_mma_weight m;
    gsq_status st = gsq_mma_pack_dense(&m, codes, rows, cols, err);
    return st == GSQ_OK ? upload(out, &m, err) : st;
}

extern "C" gsq_status gsq_cuda_i8_gemm(const gsq_cuda_i8_weight *w, const int8_t *x, int ldx, int M,
                                       const gsq_cuda_epilogue *e, void *y, int ldy, gsq_error *err)
{
    if (M < 1 || ldx < w->cols || ldx % 4 || (uintptr_t)x % 4 || ldy < w->rows)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda i8 gemm: M %d, ldx %d, ldy %d for a %d × %d weight (x and ldx must be "
                        "4-byte aligned)", M, ldx, ldy, w->rows, w->cols);
    if ((e->out != GSQ_CUDA_OUT_S32 && !e->scale) || (e->accumulate && e->out != GSQ_CUDA_OUT_F32) ||
        (e->out == GSQ_CUDA_OUT_S8 && (e->out_qmax < 1 || e->out_qmax > 127)))
        return gsq_fail(err, GSQ_ERR_ARG, "cuda i8 gemm: the epilogue needs a scale, accumulates only float output, "
                        "and quantizes to a qmax in 1..127");
    epilogue_args ep = {e->out, e->scale, e->bias, e->gelu, e->accumulate, e->out_inv, (float)e->out_qmax};
    dim3 grid((unsigned)((M + TOKENS - 1) / TOKENS), (unsigned)((w->row_tiles + WARPS - 1) / WARPS));
    if (w->sparse)
        i8_gemm_kernel<true><<<grid, WARPS * 32>>>(w->a, w->e, w->rows, w->row_tiles, w->k_tiles, w->cols, x, ldx, M, ep,
                                                   y, ldy);
    else
        i8_gemm_kernel<false><<<grid, WARPS * 32>>>(w->a, w->e, w->rows, w->row_tiles, w->k_tiles, w->cols, x, ldx, M,
                                                    ep, y, ldy);
    return gsq_cuda_launched(err, "launching the int8 gemm");
}
