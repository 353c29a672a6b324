/* Layers of a vision transformer as forward/backward pairs over flat row-major fp32 arrays.
 * Conventions (as in llm.c): a shape comment on each; N = number of rows (batch × tokens);
 * backward functions ACCUMULATE (+=) into every gradient they are given, and any gradient
 * pointer may be NULL to skip computing it. Forward functions overwrite their outputs. */
#ifndef GPUSQ_NN_H
#define GPUSQ_NN_H

#include <stddef.h>

typedef enum { GSQ_POOL_TOKEN = 0, GSQ_POOL_AVG = 1 } gsq_pool;

/* Linear: out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC); bias may be NULL. */
void gsq_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC);
/* dinp (N, C) += dout · weight; dweight (OC, C) += doutᵀ · inp; dbias (OC) += Σ_rows dout. */
void gsq_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int C, int OC);
/* Per image b of B, out_b (M, N) = a_b (M, C) · c_b (N, C)ᵀ: a linear layer whose weight is the
 * image's c_b. Backward: da_b (M, C) += dout_b · c_b; dc_b (N, C) += dout_bᵀ · a_b. */
void gsq_matmul_nt_forward(float *out, const float *a, const float *c, int B, int M, int N, int C);
void gsq_matmul_nt_backward(float *da, float *dc, const float *dout, const float *a, const float *c, int B, int M,
                            int N, int C);

/* LayerNorm over the last dim: out (N, C) = (inp - mean) · rstd · weight + bias.
 * mean (N) and rstd (N) = 1/sqrt(var + eps) are saved for backward (biased variance, as torch). */
void gsq_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C, float eps);
/* One row of it: y (C) from x (C); its mean and rstd where those are not NULL. */
void gsq_layernorm_row(float *y, const float *x, const float *weight, const float *bias, int C, float eps,
                       float *mean, float *rstd);
void gsq_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int N, int C);
/* L2 normalisation of rows, as F.normalize(dim=-1, eps=1e-12): out (N, C) = x / max(‖x‖, 1e-12).
 * Backward from the input alone: dinp += (dout − y (y·dout)) / ‖x‖, or dout / 1e-12 for a row
 * whose norm is below it (where the divisor is constant). */
void gsq_l2norm_forward(float *out, const float *inp, int N, int C);
void gsq_l2norm_backward(float *dinp, const float *dout, const float *inp, int N, int C);

/* GELU, exact erf form (torch's default, used by timm): out = x · Φ(x), elementwise over n. */
void gsq_gelu_forward(float *out, const float *inp, size_t n);
void gsq_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Swin's shifted windows over a square grid of G×G tokens: the grid is rolled by -shift on both
 * axes (timm's torch.roll), padded with zero tokens at the bottom and right to Gp = ⌈G/W⌉·W, and
 * cut into (Gp/W)² windows of W×W tokens, row-major; shift 0 is a plain partition. */
typedef struct {
    int grid, window, shift;
} gsq_window_geom;
static inline int gsq_window_count(gsq_window_geom w)
{
    int side = (w.grid + w.window - 1) / w.window;
    return side * side;
}
/* Where window row i (window i / W², token i % W² in it) sits in the rolled, padded grid: row *r,
 * column *c, each in [0, ⌈G/W⌉·W). */
void gsq_window_position(gsq_window_geom w, int i, int *r, int *c);
/* The grid token that window row i holds, or -1 for padding. */
int gsq_window_source(gsq_window_geom w, int i);
/* The rearrangements as row maps, for what gathers rows (the ONNX export, the GPU engine):
 * gsq_window_rows writes, for each of the nW·W² window rows, its grid token (-1: padding), or with
 * reverse, for each of the G² grid tokens, the window row holding it; gsq_merge_rows writes, for
 * each of the ⌈G/2⌉²·4 rows of C that patch merging's output is, the grid token it reads (-1:
 * past the grid). */
void gsq_window_rows(gsq_window_geom w, int reverse, int *map);
void gsq_merge_rows(int G, int *map);
/* win (B, nW·W², C) = the windows of x (B, G², C), padding rows zero (accumulate: += instead). */
void gsq_windows_from_grid(float *win, const float *x, int B, int C, gsq_window_geom w, int accumulate);
/* x (B, G², C) = the grid of windows win (B, nW·W², C), padding dropped (accumulate: +=). The two
 * are each other's backward. */
void gsq_windows_to_grid(float *x, const float *win, int B, int C, gsq_window_geom w, int accumulate);

/* Swin's patch merging gather: x (B, G², C) → out (B, M², 4C), M = ⌈G/2⌉, out[i, j] = [x(2i, 2j),
 * x(2i+1, 2j), x(2i, 2j+1), x(2i+1, 2j+1)] (timm's channel order), tokens past the grid zero. */
void gsq_merge_forward(float *out, const float *x, int B, int G, int C);
/* The grid token that part k (0..3) of merged token (i, j) reads, or -1 past the grid. */
int gsq_merge_source(int G, int i, int j, int k);
/* dx (B, G², C) += the gradient of out. */
void gsq_merge_backward(float *dx, const float *dout, int B, int G, int C);

/* An additive bias on attention scores: Swin's relative position bias, table ((2W-1)², NH) indexed
 * as timm's relative_position_index, plus -100 between tokens of different regions of a shifted
 * window (timm's mask). Sequence s is window s mod nW of its image. */
typedef struct {
    const float *table;
    gsq_window_geom geom;
} gsq_attn_bias;

/* The bias as one array (windows, NH, W², W²), windows = gsq_attn_bias_windows: every window's
 * when shifted (the mask differs per window), else the one all windows share. The same floats
 * gsq_attention_forward adds (the CPU engine's integer attention reads this). */
int gsq_attn_bias_windows(const gsq_attn_bias *ab);
void gsq_attn_bias_expand(float *out, const gsq_attn_bias *ab, int NH);

/* Multi-head self-attention core, after the fused qkv projection and before proj.
 * qkv (B, T, 3C) in timm's layout: qkv[b, t, s·C + h·HD + d] for s ∈ {q, k, v}, HD = C / NH.
 * att (B, NH, T, T) = softmax(q kᵀ / sqrt(HD) + bias) is saved for backward; out (B, T, C) with
 * out[b, t, h·HD + d] = Σ_u att[b, h, t, u] · v[b, u, h, d]. bias NULL: none; else B counts
 * windows (batch × nW) and T = W². */
void gsq_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *qkv, int B,
                           int T, int C, int NH, const gsq_attn_bias *bias);
/* (QAT: with att_q non-NULL, also att_q = fake_quant(att, p_scale, ±p_qmax), and out uses att_q.)
 * dqkv (B, T, 3C) += gradient; scratch must hold B·NH·T·T floats (overwritten); att_q as given
 * to forward (NULL: float), with a straight-through gradient for its quantizer; dtable (the bias
 * table's shape) += its gradient when bias and dtable are given (dqkv may then be NULL). */
void gsq_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const float *att_q, int B, int T, int C, int NH,
                            const gsq_attn_bias *bias, float *dtable);
/* Multi-head cross-attention core: queries q (B, Q, C) attend over memory kv (B, N, 2C) whose row
 * holds k then v (kv[b, n, s·C + h·HD + d], s ∈ {k, v}); att (B, NH, Q, N) = softmax(q kᵀ / sqrt(HD)),
 * saved for backward; out (B, Q, C). att_q / p_scale / p_qmax as in gsq_attention_forward (QAT). */
void gsq_cross_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *q,
                                 const float *kv, int B, int Q, int N, int C, int NH);
/* dq (B, Q, C) += and dkv (B, N, 2C) += their gradients; scratch must hold B·NH·Q·N floats
 * (overwritten); att_q as given to forward (NULL: float), straight-through as in
 * gsq_attention_backward. */
void gsq_cross_attention_backward(float *dq, float *dkv, float *scratch, const float *dout, const float *q,
                                  const float *kv, const float *att, const float *att_q, int B, int Q, int N,
                                  int C, int NH);

/* Residual add: out (n) = a + b. Its backward is dout added to both inputs' gradients. */
void gsq_add_forward(float *out, const float *a, const float *b, size_t n);
/* da (n) += dout, used for residual and any identity-shaped gradient path. */
void gsq_accumulate(float *da, const float *dout, size_t n);

/* Patch extraction (im2col of a conv with kernel = stride = P, no padding; the right and bottom
 * remainders are dropped as a strided conv does): img (B, C, H, W) → patches (B, GH·GW, C·P·P),
 * GH = H / P, GW = W / P, patch order row-major over the grid, each patch ordered (c, py, px)
 * to match a conv weight (D, C, P, P) viewed as (D, C·P·P). */
void gsq_patchify(float *patches, const float *img, int B, int C, int H, int W, int P);

/* Token sequence: x (B, T, D) with T = prefix + NP; prefix tokens are cls (if non-NULL) then
 * dist (if non-NULL), each (D); then the patch embeddings pe (B, NP, D); pos (T, D) is added to
 * every token. */
void gsq_tokens_forward(float *x, const float *pe, const float *cls, const float *dist,
                        const float *pos, int B, int NP, int D);
/* dpe (B, NP, D), dcls (D), ddist (D), dpos (T, D) += gradients from dx (B, T, D). With prefix 2,
 * token 0 feeds dcls and token 1 ddist; with prefix 1, token 0 feeds dcls if given, else ddist. */
void gsq_tokens_backward(float *dpe, float *dcls, float *ddist, float *dpos, const float *dx,
                         int B, int NP, int D, int prefix);

/* The same K rows (K, C) before every image's N: x (B, K + N, C) = [rows, inp (B, N, C)] (the mask
 * transformer's class embeddings). Backward: dinp (B, N, C) += the image rows' part of dx; drows
 * (K, C) += the prefix rows' part, summed over the batch. */
void gsq_prepend_forward(float *x, const float *inp, const float *rows, int B, int K, int N, int C);
void gsq_prepend_backward(float *dinp, float *drows, const float *dx, int B, int K, int N, int C);

/* Two arrays joined chunk by chunk: out (outer, na + nb) = [a (outer, na), b (outer, nb)] (side by
 * side with outer rows; stacked per image with outer images). Backward: da and db += their parts
 * of dout (either may be NULL). */
void gsq_concat_forward(float *out, const float *a, const float *b, size_t outer, size_t na, size_t nb);
void gsq_concat_backward(float *da, float *db, const float *dout, size_t outer, size_t na, size_t nb);

/* Pooling: out (B, D) = x[b, token] for GSQ_POOL_TOKEN, or the mean of x[b, prefix:T] for
 * GSQ_POOL_AVG (prefix tokens excluded, as timm). */
void gsq_pool_forward(float *out, const float *x, int B, int T, int D, gsq_pool pool, int token,
                      int prefix);
void gsq_pool_backward(float *dx, const float *dout, int B, int T, int D, gsq_pool pool, int token,
                       int prefix);

/* The index of the largest of z[0..K) (the first one on ties): a predicted class. */
int gsq_argmax(const float *z, int K);

/* Cross-entropy with label smoothing ε, mean over the batch, as torch's
 * F.cross_entropy(logits, targets, label_smoothing=ε): per sample
 * loss = -Σ_k q_k log p_k with q = (1 - ε)·onehot(target) + ε / K.
 * logits (B, K), targets (B) in [0, K); probs (B, K) saved for backward; returns the mean loss. */
float gsq_cross_entropy_forward(float *probs, const float *logits, const int *targets, int B,
                                int K, float smoothing);
/* dlogits (B, K) += dloss · (probs - q) / B. */
void gsq_cross_entropy_backward(float *dlogits, const float *probs, const int *targets, int B,
                                int K, float smoothing, float dloss);

#endif
