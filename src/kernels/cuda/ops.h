/* Private: the CUDA kernels of the GPU engine (src/engine/engine_cuda.c) other than the GEMMs
 * (gpusq/cuda.h), one per operation of the network's graph (gpusq/graph.h): patch extraction,
 * token assembly, LayerNorm, attention, Swin's row rearrangements, pooling, the float linear of a
 * classifier, the mean of two heads and the residual add of the FP16 baseline. Pointers are device pointers; "half" buffers hold IEEE
 * fp16 values. Every call launches asynchronously on the default stream and returns launch errors;
 * execution errors come from the next synchronizing call. The arithmetic follows the CPU engine's
 * operation for operation (the sources are compiled with -fmad=false); docs/CUDA.md says which
 * results equal the CPU's bit for bit and which differ by the order of a sum. Part of the CUDA
 * backend library (libgpusq_cuda.so). */
#ifndef GSQ_KERNELS_CUDA_OPS_H
#define GSQ_KERNELS_CUDA_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "gpusq/status.h"

/* ---- attention: qkv (B·T, 3C) → out (B·T, C), heads concatenated, NH heads of C / NH ---------- */
/* Every attention takes an optional bias (windows, NH, T, T) added to the scores, sequence b
 * adding window b mod windows's (Swin: gsq_attn_bias_expand's array, B counting windows); NULL for
 * none. */

/* Quantized attention (src/kernels/cpu/attention_int8.h, per (image, head)): Q, K, V quantized with
 * their scales (gsq_quantize_codes: inv = 1 / scale, codes ±qmax), S = Qcode·Kcodeᵀ exact,
 * s = (float)S · ((sq·sk)·(1/√HD)), softmax as gsq_att8_probs (max, gsq_vexpf, the sum over 16
 * lanes folded 8, 4, 2, 1, times 1 / sum), probability codes rint(p · qmax) ≤ qmax, O = Pcode·Vcode
 * exact, o = (float)O · ((1/qmax)·sv); then out = the code of o for the next GEMM,
 * gsq_quant_code(o, out_inv, out_qmax), int8 at row stride ldo. Equal to the CPU engine's
 * gsq_att8_forward followed by its quantizer, bit for bit. qkv float. */
gsq_status gsq_cuda_attention_i8(int8_t *out, int ldo, float out_inv, int out_qmax, const float *qkv, int B, int T,
                                 int C, int NH, const float scales[3], int qmax, const float *bias, int windows,
                                 gsq_error *err);
/* Float attention (a model whose attention matmuls are not quantized): s = (q·k)·(1/√HD),
 * softmax with gsq_vexpf, o = Σ p·v, all fp32; out = gsq_quant_code(o, out_inv, out_qmax) as
 * above. qkv float. Within float rounding of gsq_attention_forward. */
gsq_status gsq_cuda_attention_f32(int8_t *out, int ldo, float out_inv, int out_qmax, const float *qkv, int B, int T,
                                  int C, int NH, const float *bias, int windows, gsq_error *err);
/* The FP16 baseline's attention: the float attention above on half qkv, out half (B·T, C). */
gsq_status gsq_cuda_attention_f16(void *out, const void *qkv, int B, int T, int C, int NH, const float *bias,
                                  int windows, gsq_error *err);

/* ---- the rest of the forward pass ----------------------------------------------------------- */

/* The patch embedding's input: row b·NP + p of patches (B·NP, C·P·P) is image b's patch p
 * flattened (c, py, px), as gsq_patchify; images (B, C, S, S) float, S a multiple of P. Written
 * as int8 codes gsq_quant_code(v, inv, qmax) at row stride ldq, or (_f16) as half, rows dense. */
gsq_status gsq_cuda_patchify_i8(int8_t *xq, int ldq, const float *images, int B, int C, int S, int P, float inv,
                                int qmax, gsq_error *err);
gsq_status gsq_cuda_patchify_f16(void *xh, const float *images, int B, int C, int S, int P, gsq_error *err);
/* x (B, T, D) = [cls, dist, pe (B, NP, D)] + pos (T, D), as gsq_tokens_forward (cls, dist NULL
 * where the model has none); pe float, or half when pe_half. */
gsq_status gsq_cuda_tokens(float *x, const void *pe, int pe_half, const float *cls, const float *dist, const float *pos,
                           int B, int NP, int D, gsq_error *err);
/* Which rows a LayerNorm reads (NULL: output row r reads row r of float x): output row r reads
 * image r / rows's row map[r % rows] of x (images of x_rows rows), and is zero where that is -1 —
 * a LayerNorm written in the order of Swin's window partition, padding rows included; x is
 * half when half (a FP16 linear's output). map is a device array of rows entries. */
typedef struct {
    const int *map;
    int rows, x_rows;
    int half;
} gsq_cuda_rows;
/* LayerNorm of M rows (M, D) as gsq_layernorm_row computes it (mean and variance summed in
 * double, then the same float operations), written as the next GEMM's int8 codes
 * gsq_quant_code(y, inv, qmax) at row stride ldy, or (_f16) as half, rows dense. */
gsq_status gsq_cuda_layernorm_i8(int8_t *y, int ldy, const void *x, int M, int D, const float *w, const float *b,
                                 float eps, float inv, int qmax, const gsq_cuda_rows *src, gsq_error *err);
gsq_status gsq_cuda_layernorm_f16(void *y, const void *x, int M, int D, const float *w, const float *b, float eps,
                                  const gsq_cuda_rows *src, gsq_error *err);
/* y (B, rows, C) float: row r of image b is row map[r] of x's image b (x_rows rows per image; -1:
 * a zero row), plus res's row r when res is given, or added into y when accumulate; x float, or
 * half when x_half. Swin's window partition (gsq_window_source), its reverse with the residual
 * (the inverse map) and patch merging (rows of C, four per merged token: gsq_merge_source). map
 * is a device array of rows entries. */
gsq_status gsq_cuda_gather_rows(float *y, const void *x, int x_half, const float *res, int accumulate, const int *map,
                                int B, int x_rows, int rows, int C, gsq_error *err);
/* x[i] += y[i] for n values, y half: the FP16 baseline's residual add. */
gsq_status gsq_cuda_add_f16(float *x, const void *y, size_t n, gsq_error *err);
/* x[i] = y[i] for n values, y half: a FP16 linear's output that starts a float residual stream. */
gsq_status gsq_cuda_f16_to_f32(float *x, const void *y, size_t n, gsq_error *err);

/* LayerNorm to floats, y (M, D): a LayerNorm that feeds no GEMM (Swin's patch embedding's, the
 * final one); src as above. */
gsq_status gsq_cuda_layernorm_f32(float *y, const void *x, int M, int D, const float *w, const float *b, float eps,
                                  const gsq_cuda_rows *src, gsq_error *err);
/* Pooling of x (B, T, D) into `slices` arrays of (B, D), as gsq_pool_forward: slice 0 token 0, or
 * with avg the mean of the tokens from prefix on (a double sum in order); slice k > 0 token k. */
gsq_status gsq_cuda_pool(float *out, const float *x, int B, int T, int D, int avg, int slices, int prefix,
                         gsq_error *err);
/* y (M, N) = x (M, K) · wᵀ + b (b may be NULL), all float: a classifier head, a warp per output. */
gsq_status gsq_cuda_linear_f32(float *y, const float *x, int M, int K, int N, const float *w, const float *b,
                               gsq_error *err);
/* y[i] = (a[i] + b[i]) / 2 for n values. */
gsq_status gsq_cuda_mean2(float *y, const float *a, const float *b, size_t n, gsq_error *err);

#ifdef __cplusplus
}
#endif

#endif
