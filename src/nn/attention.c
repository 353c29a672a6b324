/* Multi-head attention core (scores, optional additive bias, softmax, weighted values) over strided
 * query, key and value rows: self-attention over timm's fused qkv layout and cross-attention of
 * queries over a fused kv memory share it. Heads are independent: one OpenMP task per (batch,
 * head), each calling single-threaded GEMMs. */
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"

#include <math.h>
#include <stddef.h>

#include "kernels/vmath.h"

/* Softmax of each row of att (rows, cols), in place. */
static void softmax_rows(float *att, int rows, int cols)
{
    for (int t = 0; t < rows; t++) {
        float *row = att + (size_t)t * cols;
        float maxv = row[0];
        #pragma omp simd reduction(max : maxv)
        for (int u = 0; u < cols; u++) maxv = row[u] > maxv ? row[u] : maxv;
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int u = 0; u < cols; u++) {
            row[u] = gsq_vexpf(row[u] - maxv);
            sum += row[u];
        }
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int u = 0; u < cols; u++) row[u] *= inv;
    }
}

/* timm's relative_position_index of tokens t, u of a W×W window: their offset (dr, dc) as
 * (dr + W - 1)·(2W - 1) + dc + W - 1. */
static int relative_index(int W, int t, int u)
{
    return (t / W - u / W + W - 1) * (2 * W - 1) + t % W - u % W + W - 1;
}

/* The region (0..8) of window row i in timm's shifted-window mask: each axis of the padded grid
 * splits at Gp - W and Gp - shift. */
static int region(gsq_window_geom w, int i)
{
    int Gp = (w.grid + w.window - 1) / w.window * w.window, r, c;
    gsq_window_position(w, i, &r, &c);
    int rr = r < Gp - w.window ? 0 : r < Gp - w.shift ? 1 : 2, cr = c < Gp - w.window ? 0 : c < Gp - w.shift ? 1 : 2;
    return 3 * rr + cr;
}

/* The bias of head h between tokens t and u of window w: the table's entry, plus the mask's -100
 * when a shift put them in different regions. */
static float bias_at(const gsq_attn_bias *ab, int w, int h, int t, int u, int NH)
{
    int T = ab->geom.window * ab->geom.window;
    float mask = ab->geom.shift && region(ab->geom, w * T + t) != region(ab->geom, w * T + u) ? -100.0f : 0.0f;
    return ab->table[(size_t)relative_index(ab->geom.window, t, u) * NH + h] + mask;
}

/* scores (T, T) of head h of window w += the bias (bias_at's floats, without its divisions in the
 * inner loop). */
static void add_bias(float *scores, const gsq_attn_bias *ab, int w, int h, int T, int NH)
{
    int W = ab->geom.window, span = 2 * W - 1, shift = ab->geom.shift;
    int labels[T];
    for (int u = 0; u < T; u++) labels[u] = shift ? region(ab->geom, w * T + u) : 0;
    for (int t = 0; t < T; t++) {
        float *row = scores + (size_t)t * T;
        const float *base = ab->table + ((size_t)(t / W + W - 1) * span + (size_t)(t % W + W - 1)) * NH + h;
        for (int ui = 0, u = 0; ui < W; ui++)
            for (int uj = 0; uj < W; uj++, u++) { /* relative index (ti - ui + W-1)·span + tj - uj + W-1 */
                float mask = labels[u] != labels[t] ? -100.0f : 0.0f;
                row[u] += base[-((ptrdiff_t)ui * span + uj) * NH] + mask;
            }
    }
}

int gsq_attn_bias_windows(const gsq_attn_bias *ab)
{
    return ab->geom.shift ? gsq_window_count(ab->geom) : 1;
}

void gsq_attn_bias_expand(float *out, const gsq_attn_bias *ab, int NH)
{
    int T = ab->geom.window * ab->geom.window;
    for (int w = 0; w < gsq_attn_bias_windows(ab); w++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int u = 0; u < T; u++) *out++ = bias_at(ab, w, h, t, u, NH);
}

/* The shape of multi-head attention over strided operands: per sequence b of B, Tq query rows
 * attend over Tk key and value rows; head h of a row is its HD = C / NH floats from column h·HD,
 * rows are ldq (queries) or ldkv (keys, values) floats apart and sequences Tq·ldq or Tk·ldkv;
 * the output and its gradient are (B, Tq, C). */
typedef struct {
    int B, Tq, Tk, C, NH, ldq, ldkv;
} attn_shape;

/* q, k, v (attn_shape's layout) → att (B, NH, Tq, Tk), out (B, Tq, C); with att_q, the
 * probabilities are also fake-quantized into it (scale p_scale, codes ±p_qmax) and the values
 * weighted by those. bias (Tq = Tk = W² only) is added to the scores before the softmax. */
static void attend_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *q,
                           const float *k, const float *v, attn_shape s, const gsq_attn_bias *bias)
{
    int HD = s.C / s.NH, Tq = s.Tq, Tk = s.Tk, nW = bias ? gsq_window_count(bias->geom) : 1;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < s.B * s.NH; bh++) {
        int b = bh / s.NH, h = bh % s.NH;
        size_t qoff = (size_t)b * Tq * s.ldq + (size_t)h * HD, kvoff = (size_t)b * Tk * s.ldkv + (size_t)h * HD;
        float *a = att + (size_t)bh * Tq * Tk;
        gsq_sgemm(false, true, Tq, Tk, HD, scale, q + qoff, s.ldq, k + kvoff, s.ldkv, 0.0f, a, Tk);
        if (bias) add_bias(a, bias, b % nW, h, Tq, s.NH);
        softmax_rows(a, Tq, Tk);
        const float *p = a;
        if (att_q) {
            float *aq = att_q + (size_t)bh * Tq * Tk;
            gsq_fake_quant(aq, a, (size_t)Tq * Tk, p_scale, p_qmax);
            p = aq;
        }
        gsq_sgemm(false, false, Tq, HD, Tk, 1.0f, p, Tk, v + kvoff, s.ldkv, 0.0f,
                  out + (size_t)b * Tq * s.C + (size_t)h * HD, s.C);
    }
}

/* dq, dk, dv (each NULL or laid out as q, k, v) += the gradients from dout (B, Tq, C); scratch
 * (B, NH, Tq, Tk) is left holding the scores' gradient. att_q as given to attend_forward (NULL:
 * float): the values' gradient uses it, and the probabilities' gradient passes straight through
 * its quantizer to the softmax. */
static void attend_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                            const float *k, const float *v, const float *att, const float *att_q, attn_shape s)
{
    int HD = s.C / s.NH, Tq = s.Tq, Tk = s.Tk;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < s.B * s.NH; bh++) {
        int b = bh / s.NH, h = bh % s.NH;
        size_t qoff = (size_t)b * Tq * s.ldq + (size_t)h * HD, kvoff = (size_t)b * Tk * s.ldkv + (size_t)h * HD;
        const float *a = att + (size_t)bh * Tq * Tk;
        const float *dy = dout + (size_t)b * Tq * s.C + (size_t)h * HD;
        float *da = scratch + (size_t)bh * Tq * Tk;
        /* datt = dy · vᵀ ; dv += attᵀ · dy */
        gsq_sgemm(false, true, Tq, Tk, HD, 1.0f, dy, s.C, v + kvoff, s.ldkv, 0.0f, da, Tk);
        if (dv)
            gsq_sgemm(true, false, Tk, HD, Tq, 1.0f, att_q ? att_q + (size_t)bh * Tq * Tk : a, Tk, dy, s.C, 1.0f,
                      dv + kvoff, s.ldkv);
        /* softmax backward: ds = att ⊙ (datt - Σ_u att·datt) */
        for (int t = 0; t < Tq; t++) {
            const float *ar = a + (size_t)t * Tk;
            float *dr = da + (size_t)t * Tk;
            float dot = 0.0f;
            #pragma omp simd reduction(+ : dot)
            for (int u = 0; u < Tk; u++) dot += ar[u] * dr[u];
            #pragma omp simd
            for (int u = 0; u < Tk; u++) dr[u] = ar[u] * (dr[u] - dot);
        }
        /* dq += scale · ds · k ; dk += scale · dsᵀ · q */
        if (dq) gsq_sgemm(false, false, Tq, HD, Tk, scale, da, Tk, k + kvoff, s.ldkv, 1.0f, dq + qoff, s.ldq);
        if (dk) gsq_sgemm(true, false, Tk, HD, Tq, scale, da, Tk, q + qoff, s.ldq, 1.0f, dk + kvoff, s.ldkv);
    }
}

/* qkv (B, T, 3C): q, k, v interleaved in each row. */
void gsq_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *qkv, int B,
                           int T, int C, int NH, const gsq_attn_bias *bias)
{
    attn_shape s = {B, T, T, C, NH, 3 * C, 3 * C};
    attend_forward(out, att, att_q, p_scale, p_qmax, qkv, qkv + C, qkv + 2 * C, s, bias);
}

/* dqkv (B, T, 3C) += gradient of the attention output dout (B, T, C); scratch (B, NH, T, T) holds
 * the scores' gradient, which is also the bias's. */
void gsq_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const float *att_q, int B, int T, int C, int NH,
                            const gsq_attn_bias *bias, float *dtable)
{
    if (!dqkv && !(bias && dtable)) return;
    attn_shape s = {B, T, T, C, NH, 3 * C, 3 * C};
    attend_backward(dqkv, dqkv ? dqkv + C : NULL, dqkv ? dqkv + 2 * C : NULL, scratch, dout, qkv, qkv + C,
                    qkv + 2 * C, att, att_q, s);
    if (!bias || !dtable) return;
    /* the bias was added to the scores: its gradient is the scores' (scratch), summed over
     * sequences first (in a fixed order: deterministic), then gathered into the table; heads own
     * disjoint table entries */
    int W = bias->geom.window;
    #pragma omp parallel for schedule(static)
    for (int h = 0; h < NH; h++) {
        float *sum = scratch + (size_t)h * T * T; /* sequence 0's head h: summed into in place */
        for (int b = 1; b < B; b++) {
            const float *ds = scratch + ((size_t)b * NH + h) * T * T;
            for (size_t i = 0; i < (size_t)T * T; i++) sum[i] += ds[i];
        }
        for (int t = 0; t < T; t++)
            for (int u = 0; u < T; u++) dtable[(size_t)relative_index(W, t, u) * NH + h] += sum[(size_t)t * T + u];
    }
}

/* kv (B, N, 2C): k then v in each row. */
void gsq_cross_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *q,
                                 const float *kv, int B, int Q, int N, int C, int NH)
{
    attn_shape s = {B, Q, N, C, NH, C, 2 * C};
    attend_forward(out, att, att_q, p_scale, p_qmax, q, kv, kv + C, s, NULL);
}

/* dq (B, Q, C), dkv (B, N, 2C) += the gradients from dout (B, Q, C). */
void gsq_cross_attention_backward(float *dq, float *dkv, float *scratch, const float *dout, const float *q,
                                  const float *kv, const float *att, const float *att_q, int B, int Q, int N,
                                  int C, int NH)
{
    if (!dq && !dkv) return;
    attn_shape s = {B, Q, N, C, NH, C, 2 * C};
    attend_backward(dq, dkv, dkv ? dkv + C : NULL, scratch, dout, q, kv, kv + C, att, att_q, s);
}
