/* Multi-head self-attention core (scores, optional additive bias, softmax, weighted values) over
 * timm's fused qkv layout. Heads are independent: one OpenMP task per (batch, head), each calling
 * single-threaded GEMMs. */
#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"

#include <math.h>
#include <stddef.h>

#include "kernels/vmath.h"

static void softmax_rows(float *att, int T)
{
    for (int t = 0; t < T; t++) {
        float *row = att + (size_t)t * T;
        float maxv = row[0];
        #pragma omp simd reduction(max : maxv)
        for (int u = 0; u < T; u++) maxv = row[u] > maxv ? row[u] : maxv;
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int u = 0; u < T; u++) {
            row[u] = gsq_vexpf(row[u] - maxv);
            sum += row[u];
        }
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int u = 0; u < T; u++) row[u] *= inv;
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

/* qkv (B, T, 3C) → att (B, NH, T, T), out (B, T, C); with att_q, the probabilities are also
 * fake-quantized into it (scale p_scale, codes ±p_qmax) and the values weighted by those. */
void gsq_attention_forward(float *out, float *att, float *att_q, float p_scale, int p_qmax, const float *qkv, int B,
                           int T, int C, int NH, const gsq_attn_bias *bias)
{
    int HD = C / NH, nW = bias ? gsq_window_count(bias->geom) : 1;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * 3 * C + (size_t)h * HD;
        const float *k = q + C;
        const float *v = q + 2 * C;
        float *a = att + (size_t)bh * T * T;
        gsq_sgemm(false, true, T, T, HD, scale, q, 3 * C, k, 3 * C, 0.0f, a, T);
        if (bias) add_bias(a, bias, b % nW, h, T, NH);
        softmax_rows(a, T);
        const float *p = a;
        if (att_q) {
            float *aq = att_q + (size_t)bh * T * T;
            gsq_fake_quant(aq, a, (size_t)T * T, p_scale, p_qmax);
            p = aq;
        }
        gsq_sgemm(false, false, T, HD, T, 1.0f, p, T, v, 3 * C, 0.0f,
                  out + (size_t)b * T * C + (size_t)h * HD, C);
    }
}

/* dqkv (B, T, 3C) += gradient of the attention output dout (B, T, C); scratch (B, NH, T, T).
 * With att_q (the forward's quantized probabilities) the values' gradient uses them, and the
 * probabilities' gradient passes straight through to the softmax. */
void gsq_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                            const float *att, const float *att_q, int B, int T, int C, int NH,
                            const gsq_attn_bias *bias, float *dtable)
{
    if (!dqkv && !(bias && dtable)) return;
    int HD = C / NH;
    float scale = 1.0f / sqrtf((float)HD);
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t off = (size_t)b * T * 3 * C + (size_t)h * HD;
        const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv ? dqkv + off : NULL, *dk = dq ? dq + C : NULL, *dv = dq ? dq + 2 * C : NULL;
        const float *a = att + (size_t)bh * T * T;
        const float *dy = dout + (size_t)b * T * C + (size_t)h * HD;
        float *da = scratch + (size_t)bh * T * T;
        /* datt = dy · vᵀ ; dv += attᵀ · dy */
        gsq_sgemm(false, true, T, T, HD, 1.0f, dy, C, v, 3 * C, 0.0f, da, T);
        if (dv) gsq_sgemm(true, false, T, HD, T, 1.0f, att_q ? att_q + (size_t)bh * T * T : a, T, dy, C, 1.0f, dv, 3 * C);
        /* softmax backward: ds = att ⊙ (datt - Σ_u att·datt) */
        for (int t = 0; t < T; t++) {
            const float *ar = a + (size_t)t * T;
            float *dr = da + (size_t)t * T;
            float dot = 0.0f;
            #pragma omp simd reduction(+ : dot)
            for (int u = 0; u < T; u++) dot += ar[u] * dr[u];
            #pragma omp simd
            for (int u = 0; u < T; u++) dr[u] = ar[u] * (dr[u] - dot);
        }
        /* dq += scale · ds · k ; dk += scale · dsᵀ · q */
        if (!dq) continue;
        gsq_sgemm(false, false, T, HD, T, scale, da, T, k, 3 * C, 1.0f, dq, 3 * C);
        gsq_sgemm(true, false, T, HD, T, scale, da, T, q, 3 * C, 1.0f, dk, 3 * C);
    }
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
