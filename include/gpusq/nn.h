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

/* GELU, exact erf form (torch's default, used by timm): out = x · Φ(x), elementwise over n. */
void gsq_gelu_forward(float *out, const float *inp, size_t n);
void gsq_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Multi-head self-attention core, after the fused qkv projection and before proj.
 * qkv (B, T, 3C) in timm's layout: qkv[b, t, s·C + h·HD + d] for s ∈ {q, k, v}, HD = C / NH.
 * att (B, NH, T, T) = softmax(q kᵀ / sqrt(HD)) is saved for backward; out (B, T, C) with
 * out[b, t, h·HD + d] = Σ_u att[b, h, t, u] · v[b, u, h, d]. */
void gsq_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *qkv, int B,
                           int T, int C, int NH);
/* (QAT: with att_q non-NULL, also att_q = fake_quant(att, p_scale, ±p_qmax), and out uses att_q.)
 * dqkv (B, T, 3C) += gradient; scratch must hold B·NH·T·T floats (overwritten); att_q as given
 * to forward (NULL: float), with a straight-through gradient for its quantizer. */
void gsq_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const float *att_q, int B, int T, int C, int NH);

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
