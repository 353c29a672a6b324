/* The GPU engine's attention (src/kernels/cuda/ops.h): the quantized integer attention, equal
 * bit for bit to the CPU engine's gsq_att8_forward followed by its quantizer, and the float
 * attention (fp32 qkv to int8 codes, or the FP16 baseline's half to half), within float rounding
 * of gsq_attention_forward.
 *
 * A block takes one (image, head) and ROWS query rows: it first puts the head's K and V in shared
 * memory (int8 codes packed four to a word for the integer attention, the input values for the
 * float one), then each warp takes rows in turn: the scores of keys lane, lane + 32, ... into its
 * shared row, the softmax (the exponentials, then the sum in the 16 lanes gsq_att8_probs uses),
 * and the outputs d = lane, lane + 32, ... The integer sums are dp4a's, exact in any order; the
 * float ones (the scores' Σ_d and the outputs' Σ_u) run in index order. Swin's relative position
 * bias and shifted-window mask, expanded (gsq_attn_bias_expand), are added to the scores as the
 * CPU adds them. The whole of K and V must
 * fit the device's shared memory; a head too long for it is refused (GSQ_ERR_ARG). */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "kernels/cuda/cuda_status.h"
extern "C" {
#include "kernels/cuda/ops.h"
}
#include "kernels/quant_code.h"
#include "kernels/vmath.h"

#define WARPS 4     /* per block */
#define ROWS 16     /* query rows per block: ROWS / WARPS per warp */
#define MAX_HD 256  /* the largest head dimension */
#define FULL 0xffffffffu

/* Byte offsets into a block's dynamic shared memory: K and V, then per warp (warp_bytes apart) a
 * query row q, a score row s and, for the integer attention, a row of probability codes p. */
struct smem_layout {
    int k, v, warp, warp_bytes, q, s, p;
};

/* The integer attention's arguments by value (device pointers inside). */
struct i8_args {
    int8_t *out;
    const float *qkv;
    int T, C, NH, HD, ldo;
    int hw;                       /* words of HD codes, four to a word: ceil(HD / 4) */
    int kw;                       /* words between K rows in shared memory: hw made odd (no bank conflicts) */
    int groups;                   /* V's groups of four tokens: ceil(T / 4) */
    float inv_q, inv_k, inv_v;    /* 1 / scale of Q, K and V (gsq_quantize_codes) */
    float qmax, qk, p_inv, pv;    /* the gsq_att8_head constants, computed as gsq_att8_forward does */
    float out_inv, out_qmax;      /* the output's quantizer */
    const float *bias;            /* (windows, NH, T, T) added to the scores, or NULL */
    int windows;                  /* sequence b adds window b mod windows's bias */
    smem_layout sm;
};

/* The float attention's arguments by value. */
struct float_args {
    void *out;
    const void *qkv;
    int T, C, NH, HD, ldo;
    int ks;           /* elements between K rows in shared memory (an odd number of words) */
    float scale;      /* 1 / √HD */
    float out_inv, out_qmax;
    const float *bias; /* as i8_args' */
    int windows;
    smem_layout sm;
};

/* Row t of the bias of sequence b's head h (T floats), or NULL without a bias. */
__device__ __forceinline__ const float *bias_row(const float *bias, int windows, int NH, int T, int b, int h, int t)
{
    return bias ? bias + (((size_t)(b % windows) * NH + h) * T + t) * T : NULL;
}

__device__ __forceinline__ int warp_max(int x)
{
    for (int w = 16; w > 0; w /= 2) x = max(x, __shfl_xor_sync(FULL, x, w));
    return x;
}

__device__ __forceinline__ float warp_max(float x)
{
    for (int w = 16; w > 0; w /= 2) x = fmaxf(x, __shfl_xor_sync(FULL, x, w));
    return x;
}

/* The softmax of one row of T scores s (shared, the warp's), as gsq_att8_probs: s[u] becomes
 * e[u] = gsq_vexpf(s[u] − m); lane j < 16 sums e[u] for u ≡ j mod 16 in increasing u (from 0, as
 * the CPU's lanes, where the entries from T on add zeros), the lanes fold by 8, 4, 2, 1, and every
 * lane gets 1 / the sum. Lanes u, u + 32, ... wrote s[u]; the warp is in step on return. */
__device__ __forceinline__ float softmax_inv(float *s, int T, float m, int lane)
{
    for (int u = lane; u < T; u += 32) s[u] = gsq_vexpf(s[u] - m);
    __syncwarp();
    float sum = 0.0f;
    if (lane < 16)
        for (int u = lane; u < T; u += 16) sum += s[u];
    for (int w = 8; w > 0; w /= 2) sum += __shfl_down_sync(FULL, sum, w); /* lane j: lane[j] + lane[j + w] */
    __syncwarp();
    return 1.0f / __shfl_sync(FULL, sum, 0);
}

/* Four int8 codes in a word, the first in the low byte (the order __dp4a pairs them). */
__device__ __forceinline__ int pack4(int c0, int c1, int c2, int c3)
{
    return (int)((unsigned)(c0 & 255) | (unsigned)(c1 & 255) << 8 | (unsigned)(c2 & 255) << 16 |
                 (unsigned)(c3 & 255) << 24);
}

/* The code of x[d] (gsq_quantize_codes), zero past n. */
__device__ __forceinline__ int code_at(const float *x, int d, int n, float inv, float qmax)
{
    return d < n ? (int)gsq_quant_code(x[d], inv, qmax) : 0;
}

/* The codes of x[d..d+3], packed. */
__device__ __forceinline__ int codes4(const float *x, int d, int n, float inv, float qmax)
{
    return pack4(code_at(x, d, n, inv, qmax), code_at(x, d + 1, n, inv, qmax), code_at(x, d + 2, n, inv, qmax),
                 code_at(x, d + 3, n, inv, qmax));
}

/* out (B·T, ldo) int8 from qkv (B·T, 3C). Grid (B·NH, ceil(T / ROWS)), WARPS warps. Shared: K codes
 * [T][kw words] (word w: dims 4w..4w+3), V codes [groups][HD words] (word: tokens 4g..4g+3 of dim
 * d, zero past T); per warp Q codes [hw words], scores then exponentials [T floats], probability
 * codes [4·groups bytes, zero past T]. */
__global__ void __launch_bounds__(WARPS * 32) attention_i8_kernel(i8_args a)
{
    extern __shared__ __align__(16) unsigned char smem[];
    int T = a.T, HD = a.HD, b = blockIdx.x / a.NH, h = blockIdx.x % a.NH;
    size_t ld = 3 * (size_t)a.C;
    const float *head = a.qkv + (size_t)b * T * ld + (size_t)h * HD; /* q of token 0; k at + C, v at + 2C */
    int32_t *ks = (int32_t *)(smem + a.sm.k), *vs = (int32_t *)(smem + a.sm.v);
    for (int i = threadIdx.x; i < T * a.hw; i += blockDim.x) {
        int u = i / a.hw, d = 4 * (i % a.hw);
        const float *k = head + (size_t)u * ld + a.C;
        ks[u * a.kw + d / 4] = codes4(k, d, HD, a.inv_k, a.qmax);
    }
    for (int i = threadIdx.x; i < a.groups * HD; i += blockDim.x) {
        int g = i / HD, d = i % HD, c[4];
        for (int j = 0; j < 4; j++) {
            int u = 4 * g + j;
            c[j] = u < T ? (int)gsq_quant_code(head[(size_t)u * ld + 2 * a.C + d], a.inv_v, a.qmax) : 0;
        }
        vs[g * HD + d] = pack4(c[0], c[1], c[2], c[3]);
    }
    __syncthreads(); /* the only block-wide barrier: every thread reaches it */

    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    unsigned char *mine = smem + a.sm.warp + (size_t)warp * a.sm.warp_bytes;
    int32_t *qs = (int32_t *)(mine + a.sm.q), *prow = (int32_t *)(mine + a.sm.p);
    float *srow = (float *)(mine + a.sm.s);
    uint8_t *pcode = (uint8_t *)prow;
    int t_end = min(T, (int)(blockIdx.y + 1) * ROWS);
    for (int t = blockIdx.y * ROWS + warp; t < t_end; t += WARPS) { /* warp-uniform */
        const float *q = head + (size_t)t * ld;
        for (int w = lane; w < a.hw; w += 32) qs[w] = codes4(q, 4 * w, HD, a.inv_q, a.qmax);
        __syncwarp();
        const float *brow = bias_row(a.bias, a.windows, a.NH, T, b, h, t);
        int top = INT_MIN;
        float top_s = -INFINITY; /* with a bias: the largest score itself (gsq_att8_biased_max) */
        for (int u = lane; u < T; u += 32) {
            const int32_t *k = ks + u * a.kw;
            int acc = 0;
            for (int w = 0; w < a.hw; w++) acc = __dp4a(k[w], qs[w], acc);
            top = max(top, acc);
            float s = (float)acc * a.qk;
            if (brow) {
                s = s + brow[u];
                top_s = fmaxf(top_s, s);
            }
            srow[u] = s;
        }
        top = warp_max(top);
        float m = brow ? warp_max(top_s) : (float)top * a.qk; /* without a bias, rounding is monotonic */
        float inv = softmax_inv(srow, T, m, lane);
        for (int u = lane; u < 4 * a.groups; u += 32) {
            float r = u < T ? rintf((srow[u] * inv) * a.p_inv) : 0.0f;
            pcode[u] = (uint8_t)(int)(r > a.qmax ? a.qmax : r);
        }
        __syncwarp();
        int8_t *o = a.out + ((size_t)b * T + t) * a.ldo + (size_t)h * HD;
        for (int d = lane; d < HD; d += 32) {
            int acc = 0;
            for (int g = 0; g < a.groups; g++) acc = __dp4a(vs[g * HD + d], prow[g], acc);
            o[d] = (int8_t)(int)gsq_quant_code((float)acc * a.pv, a.out_inv, a.out_qmax);
        }
        __syncwarp(); /* the rows are free for the next query */
    }
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }

/* The float attention, S the type of qkv (float, or __half when HALF); out (B·T, ldo) int8 codes,
 * or (HALF) half (B·T, C). Grid (B·NH, ceil(T / ROWS)), WARPS warps. Shared: K [T][ks], V [T][HD]
 * as S; per warp q [HD floats] and scores, then exponentials, then probabilities [T floats]. */
template <typename S, bool HALF>
__global__ void __launch_bounds__(WARPS * 32) attention_float_kernel(float_args a)
{
    extern __shared__ __align__(16) unsigned char smem[];
    int T = a.T, HD = a.HD, b = blockIdx.x / a.NH, h = blockIdx.x % a.NH;
    size_t ld = 3 * (size_t)a.C;
    const S *head = (const S *)a.qkv + (size_t)b * T * ld + (size_t)h * HD;
    S *ks = (S *)(smem + a.sm.k), *vs = (S *)(smem + a.sm.v);
    for (int i = threadIdx.x; i < T * HD; i += blockDim.x) {
        int u = i / HD, d = i % HD;
        ks[u * a.ks + d] = head[(size_t)u * ld + a.C + d];
        vs[i] = head[(size_t)u * ld + 2 * a.C + d];
    }
    __syncthreads(); /* the only block-wide barrier: every thread reaches it */

    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    unsigned char *mine = smem + a.sm.warp + (size_t)warp * a.sm.warp_bytes;
    float *qrow = (float *)(mine + a.sm.q), *srow = (float *)(mine + a.sm.s);
    int t_end = min(T, (int)(blockIdx.y + 1) * ROWS);
    for (int t = blockIdx.y * ROWS + warp; t < t_end; t += WARPS) { /* warp-uniform */
        for (int d = lane; d < HD; d += 32) qrow[d] = to_float(head[(size_t)t * ld + d]);
        __syncwarp();
        const float *brow = bias_row(a.bias, a.windows, a.NH, T, b, h, t);
        float top = -INFINITY;
        for (int u = lane; u < T; u += 32) {
            const S *k = ks + u * a.ks;
            float dot = 0.0f;
            for (int d = 0; d < HD; d++) dot += qrow[d] * to_float(k[d]);
            float s = dot * a.scale;
            if (brow) s = s + brow[u];
            srow[u] = s;
            top = fmaxf(top, s);
        }
        float inv = softmax_inv(srow, T, warp_max(top), lane);
        for (int u = lane; u < T; u += 32) srow[u] *= inv;
        __syncwarp();
        size_t row = (size_t)b * T + t;
        for (int d = lane; d < HD; d += 32) {
            float o = 0.0f;
            for (int u = 0; u < T; u++) o += srow[u] * to_float(vs[u * HD + d]);
            if (HALF) ((__half *)a.out)[row * a.C + (size_t)h * HD + d] = __float2half_rn(o);
            else ((int8_t *)a.out)[row * a.ldo + (size_t)h * HD + d] = (int8_t)(int)gsq_quant_code(o, a.out_inv,
                                                                                                    a.out_qmax);
        }
        __syncwarp(); /* the rows are free for the next query */
    }
}

static size_t align16(size_t n) { return (n + 15) / 16 * 16; }

/* The layout of K and V (k_bytes, v_bytes) and the warps' rows; *bytes the total. */
static smem_layout layout_of(size_t k_bytes, size_t v_bytes, size_t q_bytes, size_t s_bytes, size_t p_bytes,
                             size_t *bytes)
{
    size_t v = align16(k_bytes), warp = v + align16(v_bytes);
    size_t s = align16(q_bytes), p = s + align16(s_bytes), warp_bytes = p + align16(p_bytes);
    *bytes = warp + WARPS * warp_bytes;
    /* the offsets fit an int whenever *bytes passes the device's limit, which launch_setup checks first */
    return smem_layout{0, (int)v, (int)warp, (int)warp_bytes, 0, (int)s, (int)p};
}

/* The shapes every attention takes: B, T ≥ 1, NH heads of C / NH in 1..MAX_HD, B·NH blocks; with a
 * bias, windows ≥ 1. */
static gsq_status check_shape(const char *what, int B, int T, int C, int NH, const float *bias, int windows,
                              gsq_error *err)
{
    if (B < 1 || T < 1 || NH < 1 || C < NH || C % NH || C / NH > MAX_HD || (long long)B * NH > INT_MAX)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda %s attention: B %d, T %d, C %d, NH %d: needs B, T ≥ 1 and C a multiple "
                        "of NH with a head dimension C / NH in 1..%d", what, B, T, C, NH, MAX_HD);
    if (bias && windows < 1)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda %s attention: a bias over %d windows", what, windows);
    return GSQ_OK;
}

/* Checks `bytes` of dynamic shared memory against the current device's limit and, beyond the
 * default 48 KB, opts the kernel in to the whole limit (never lowered, so calls of other sizes from
 * other threads keep working). */
static gsq_status launch_setup(const void *kernel, size_t bytes, const char *what, int T, int HD, gsq_error *err)
{
    int dev = 0, limit = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return gsq_cuda_fail(err, e, "querying the shared memory per block");
    if (bytes > (size_t)limit)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda %s attention: %d tokens of head dimension %d need %zu bytes of shared "
                        "memory, the device has %d per block", what, T, HD, bytes, limit);
    if (bytes > 48 * 1024) {
        e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
        if (e != cudaSuccess) return gsq_cuda_fail(err, e, "raising the attention's shared memory");
    }
    return GSQ_OK;
}

static dim3 grid_of(int B, int T, int NH)
{
    return dim3((unsigned)(B * NH), (unsigned)((T + ROWS - 1) / ROWS));
}

extern "C" gsq_status gsq_cuda_attention_i8(int8_t *out, int ldo, float out_inv, int out_qmax, const float *qkv, int B,
                                            int T, int C, int NH, const float scales[3], int qmax, const float *bias,
                                            int windows, gsq_error *err)
{
    gsq_status st = check_shape("int8", B, T, C, NH, bias, windows, err);
    if (st != GSQ_OK) return st;
    if (ldo < C || qmax < 1 || qmax > 127 || out_qmax < 1 || out_qmax > 127)
        return gsq_fail(err, GSQ_ERR_ARG, "cuda int8 attention: ldo %d for C %d, qmax %d, out_qmax %d: needs ldo ≥ C "
                        "and both qmax in 1..127", ldo, C, qmax, out_qmax);
    if (!(scales[0] > 0.0f && scales[1] > 0.0f && scales[2] > 0.0f))
        return gsq_fail(err, GSQ_ERR_ARG, "cuda int8 attention: the scales (%g, %g, %g) must be positive", scales[0],
                        scales[1], scales[2]);
    i8_args a;
    a.out = out, a.qkv = qkv, a.T = T, a.C = C, a.NH = NH, a.HD = C / NH, a.ldo = ldo;
    a.hw = (a.HD + 3) / 4, a.kw = a.hw | 1, a.groups = (T + 3) / 4;
    /* gsq_quantize_codes' and gsq_att8_forward's constants, the same float operations */
    a.inv_q = 1.0f / scales[0], a.inv_k = 1.0f / scales[1], a.inv_v = 1.0f / scales[2];
    float p_scale = 1.0f / (float)qmax;
    a.qmax = (float)qmax;
    a.qk = scales[0] * scales[1] * (1.0f / sqrtf((float)a.HD));
    a.p_inv = 1.0f / p_scale, a.pv = p_scale * scales[2];
    a.out_inv = out_inv, a.out_qmax = (float)out_qmax;
    a.bias = bias, a.windows = windows;
    size_t bytes, words = sizeof(int32_t);
    a.sm = layout_of((size_t)T * a.kw * words, (size_t)a.groups * a.HD * words, (size_t)a.hw * words, (size_t)T * 4,
                     (size_t)a.groups * words, &bytes);
    st = launch_setup((const void *)attention_i8_kernel, bytes, "int8", T, a.HD, err);
    if (st != GSQ_OK) return st;
    attention_i8_kernel<<<grid_of(B, T, NH), WARPS * 32, bytes>>>(a);
    return gsq_cuda_launched(err, "launching the int8 attention");
}

/* The float attentions: qkv of S, out int8 codes at ldo or (HALF) half. */
template <typename S, bool HALF>
static gsq_status attention_float(void *out, int ldo, float out_inv, int out_qmax, const void *qkv, int B, int T, int C,
                                  int NH, const float *bias, int windows, const char *what, gsq_error *err)
{
    gsq_status st = check_shape(what, B, T, C, NH, bias, windows, err);
    if (st != GSQ_OK) return st;
    if (!HALF && (ldo < C || out_qmax < 1 || out_qmax > 127))
        return gsq_fail(err, GSQ_ERR_ARG, "cuda %s attention: ldo %d for C %d, out_qmax %d: needs ldo ≥ C and out_qmax "
                        "in 1..127", what, ldo, C, out_qmax);
    float_args a;
    a.out = out, a.qkv = qkv, a.T = T, a.C = C, a.NH = NH, a.HD = C / NH, a.ldo = ldo;
    size_t row_words = ((size_t)a.HD * sizeof(S) + 3) / 4;
    a.ks = (int)((row_words | 1) * 4 / sizeof(S));
    a.scale = 1.0f / sqrtf((float)a.HD);
    a.out_inv = out_inv, a.out_qmax = (float)out_qmax;
    a.bias = bias, a.windows = windows;
    size_t bytes;
    a.sm = layout_of((size_t)T * a.ks * sizeof(S), (size_t)T * a.HD * sizeof(S), (size_t)a.HD * sizeof(float),
                     (size_t)T * sizeof(float), 0, &bytes);
    st = launch_setup((const void *)attention_float_kernel<S, HALF>, bytes, what, T, a.HD, err);
    if (st != GSQ_OK) return st;
    attention_float_kernel<S, HALF><<<grid_of(B, T, NH), WARPS * 32, bytes>>>(a);
    return gsq_cuda_launched(err, HALF ? "launching the fp16 attention" : "launching the fp32 attention");
}

extern "C" gsq_status gsq_cuda_attention_f32(int8_t *out, int ldo, float out_inv, int out_qmax, const float *qkv, int B,
                                             int T, int C, int NH, const float *bias, int windows, gsq_error *err)
{
    return attention_float<float, false>(out, ldo, out_inv, out_qmax, qkv, B, T, C, NH, bias, windows, "fp32", err);
}

extern "C" gsq_status gsq_cuda_attention_f16(void *out, const void *qkv, int B, int T, int C, int NH, const float *bias,
                                             int windows, gsq_error *err)
{
    return attention_float<__half, true>(out, C, 0.0f, 0, qkv, B, T, C, NH, bias, windows, "fp16", err);
}
