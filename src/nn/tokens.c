/* Patch extraction (conv with kernel = stride = P as im2col), token sequence assembly with
 * class/distillation tokens and position embedding, rows prepended to every image's tokens, two
 * arrays joined, and token/average pooling. */
#include "gpusq/nn.h"

#include <stddef.h>
#include <string.h>

/* img (B, C, H, W) → patches (B, GH·GW, C·P·P) */
void gsq_patchify(float *patches, const float *img, int B, int C, int H, int W, int P)
{
    int GH = H / P, GW = W / P, K = C * P * P;
    #pragma omp parallel for schedule(static)
    for (int bp = 0; bp < B * GH * GW; bp++) {
        int b = bp / (GH * GW), gy = (bp / GW) % GH, gx = bp % GW;
        float *dst = patches + (size_t)bp * K;
        for (int c = 0; c < C; c++)
            for (int py = 0; py < P; py++) {
                const float *src = img + (((size_t)b * C + c) * H + (size_t)gy * P + py) * W + (size_t)gx * P;
                memcpy(dst + ((size_t)c * P + py) * P, src, (size_t)P * sizeof(float));
            }
    }
}

/* x (B, T, D) = [cls, dist, pe (B, NP, D)] + pos (T, D) */
void gsq_tokens_forward(float *x, const float *pe, const float *cls, const float *dist,
                        const float *pos, int B, int NP, int D)
{
    int prefix = (cls != NULL) + (dist != NULL), T = prefix + NP;
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *src;
        if (t < prefix) src = (t == 0 && cls) ? cls : dist;
        else src = pe + ((size_t)b * NP + (t - prefix)) * D;
        float *dst = x + (size_t)bt * D;
        const float *p = pos + (size_t)t * D;
        for (int d = 0; d < D; d++) dst[d] = src[d] + p[d];
    }
}

/* dpe (B, NP, D), dcls (D), ddist (D), dpos (T, D) += from dx (B, T, D) */
void gsq_tokens_backward(float *dpe, float *dcls, float *ddist, float *dpos, const float *dx,
                         int B, int NP, int D, int prefix)
{
    int T = prefix + NP;
    if (dpe) {
        #pragma omp parallel for schedule(static)
        for (int bn = 0; bn < B * NP; bn++) {
            int b = bn / NP, n = bn % NP;
            const float *src = dx + ((size_t)b * T + prefix + n) * D;
            float *dst = dpe + (size_t)bn * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
    }
    /* prefix tokens: with two, token 0 is cls and token 1 dist; with one, it is whichever of
     * dcls / ddist the caller passed (cls first) */
    for (int t = 0; t < prefix; t++) {
        float *dst = (prefix == 2) ? (t == 0 ? dcls : ddist) : (dcls ? dcls : ddist);
        if (!dst) continue;
        for (int b = 0; b < B; b++) {
            const float *src = dx + ((size_t)b * T + t) * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
        }
    }
    if (dpos) {
        #pragma omp parallel for schedule(static)
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++) {
                const float *src = dx + ((size_t)b * T + t) * D;
                float *dst = dpos + (size_t)t * D;
                for (int d = 0; d < D; d++) dst[d] += src[d];
            }
    }
}

/* x (B, K + N, C) = [rows (K, C), inp (B, N, C)] */
void gsq_prepend_forward(float *x, const float *inp, const float *rows, int B, int K, int N, int C)
{
    size_t head = (size_t)K * C, body = (size_t)N * C;
    for (int b = 0; b < B; b++) {
        float *dst = x + (size_t)b * (head + body);
        memcpy(dst, rows, head * sizeof(float));
        memcpy(dst + head, inp + (size_t)b * body, body * sizeof(float));
    }
}

/* dinp (B, N, C), drows (K, C) += from dx (B, K + N, C) */
void gsq_prepend_backward(float *dinp, float *drows, const float *dx, int B, int K, int N, int C)
{
    size_t head = (size_t)K * C, body = (size_t)N * C;
    for (int b = 0; b < B; b++) {
        const float *src = dx + (size_t)b * (head + body);
        if (drows) gsq_accumulate(drows, src, head);
        if (dinp) gsq_accumulate(dinp + (size_t)b * body, src + head, body);
    }
}

/* out (outer, na + nb) = [a (outer, na), b (outer, nb)] */
void gsq_concat_forward(float *out, const float *a, const float *b, size_t outer, size_t na, size_t nb)
{
    for (size_t i = 0; i < outer; i++) {
        memcpy(out + i * (na + nb), a + i * na, na * sizeof(float));
        memcpy(out + i * (na + nb) + na, b + i * nb, nb * sizeof(float));
    }
}

/* da (outer, na), db (outer, nb) += their parts of dout */
void gsq_concat_backward(float *da, float *db, const float *dout, size_t outer, size_t na, size_t nb)
{
    for (size_t i = 0; i < outer; i++) {
        if (da) gsq_accumulate(da + i * na, dout + i * (na + nb), na);
        if (db) gsq_accumulate(db + i * nb, dout + i * (na + nb) + na, nb);
    }
}

/* out (B, D) = x[b, token] or mean of x[b, prefix:T] */
void gsq_pool_forward(float *out, const float *x, int B, int T, int D, gsq_pool pool, int token,
                      int prefix)
{
    for (int b = 0; b < B; b++) {
        float *dst = out + (size_t)b * D;
        if (pool == GSQ_POOL_TOKEN) {
            memcpy(dst, x + ((size_t)b * T + token) * D, (size_t)D * sizeof(float));
            continue;
        }
        int n = T - prefix;
        for (int d = 0; d < D; d++) {
            double s = 0.0;
            for (int t = prefix; t < T; t++) s += x[((size_t)b * T + t) * D + d];
            dst[d] = (float)(s / n);
        }
    }
}

/* dx (B, T, D) += gradient of the pooled dout (B, D) */
void gsq_pool_backward(float *dx, const float *dout, int B, int T, int D, gsq_pool pool, int token,
                       int prefix)
{
    if (!dx) return;
    for (int b = 0; b < B; b++) {
        const float *src = dout + (size_t)b * D;
        if (pool == GSQ_POOL_TOKEN) {
            float *dst = dx + ((size_t)b * T + token) * D;
            for (int d = 0; d < D; d++) dst[d] += src[d];
            continue;
        }
        float inv = 1.0f / (float)(T - prefix);
        for (int t = prefix; t < T; t++) {
            float *dst = dx + ((size_t)b * T + t) * D;
            for (int d = 0; d < D; d++) dst[d] += src[d] * inv;
        }
    }
}
