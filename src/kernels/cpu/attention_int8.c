/* The engine's integer attention (attention_int8.h): the scratch layout, the plain-C reference of
 * one (image, head) — the specification the fast path must match bit for bit — and the loop over
 * (image, head) pairs that dispatches to the instruction set's kernel. */
#include <math.h>
#include <string.h>

#include "attention_int8.h"
#include "gpusq/quant.h"

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t gsq_att8_carve(gsq_att8_scratch *sc, uint8_t *base, int T, int HD)
{
    size_t hs = round_up((size_t)HD, 16), tk = round_up((size_t)T, 16), tv = round_up((size_t)T, 4);
    size_t rows = round_up((size_t)T, GSQ_ATT8_ROWS), groups = ((size_t)HD + 3) / 4;
    size_t bytes[] = {rows * hs,
                      (size_t)T * hs,
                      tv * hs,
                      tk * groups * 4,
                      tv * hs,
                      tk * sizeof(int32_t),
                      GSQ_ATT8_ROWS * tk * sizeof(int32_t),
                      tk * sizeof(float),
                      GSQ_ATT8_ROWS * tv,
                      hs * sizeof(int32_t)};
    size_t n = sizeof bytes / sizeof bytes[0], total = 64; /* the slack to align base */
    for (size_t i = 0; i < n; i++) total += round_up(bytes[i], 64);
    if (!sc) return total;
    void *at[sizeof bytes / sizeof bytes[0]];
    uint8_t *p = base + (64 - (uintptr_t)base % 64) % 64;
    for (size_t i = 0; i < n; i++) {
        at[i] = p;
        p += round_up(bytes[i], 64);
    }
    *sc = (gsq_att8_scratch){.hs = (int)hs, .tk = (int)tk, .tv = (int)tv, .rows = (int)rows,
                             .q = at[0], .k = at[1], .v = at[2], .kp = at[3], .vp = at[4],
                             .ksum = at[5], .s = at[6], .e = at[7], .p = at[8], .o = at[9]};
    return total;
}

void gsq_att8_head_ref(float *out, const float *q, const float *k, const float *v, const float *bias,
                       const gsq_att8_head *h, uint8_t *scratch)
{
    gsq_att8_scratch sc;
    gsq_att8_carve(&sc, scratch, h->T, h->HD);
    int T = h->T, HD = h->HD;
    size_t hs = (size_t)sc.hs;
    memset(sc.s, 0, (size_t)sc.tk * sizeof(int32_t)); /* scores past T: set, ignored */
    for (int t = 0; t < T; t++) {
        gsq_quantize_codes(sc.q + t * hs, q + (size_t)t * h->ld, (size_t)HD, h->sq, h->qmax);
        gsq_quantize_codes(sc.k + t * hs, k + (size_t)t * h->ld, (size_t)HD, h->sk, h->qmax);
        gsq_quantize_codes(sc.v + t * hs, v + (size_t)t * h->ld, (size_t)HD, h->sv, h->qmax);
    }
    int32_t *restrict o = sc.o;
    for (int t = 0; t < T; t++) {
        const int8_t *restrict qt = sc.q + t * hs;
        for (int u = 0; u < T; u++) {
            const int8_t *restrict ku = sc.k + u * hs;
            int32_t acc = 0;
            for (int d = 0; d < HD; d++) acc += qt[d] * ku[d];
            sc.s[u] = acc;
        }
        gsq_att8_probs(sc.p, sc.e, sc.s, bias ? bias + (size_t)t * T : NULL, h, sc.tk, sc.tv);
        memset(o, 0, (size_t)HD * sizeof(int32_t));
        for (int u = 0; u < T; u++) {
            const int8_t *restrict vu = sc.v + u * hs;
            int32_t pu = sc.p[u];
            for (int d = 0; d < HD; d++) o[d] += pu * vu[d];
        }
        for (int d = 0; d < HD; d++) out[(size_t)t * h->ldo + d] = (float)o[d] * h->pv;
    }
}

void gsq_att8_forward(gsq_i8_isa isa, float *out, const float *qkv, int B, int T, int C, int NH, const float scales[3],
                      int qmax, const float *bias, int windows, uint8_t *scratch)
{
    int HD = C / NH;
    float p_scale = 1.0f / (float)qmax; /* the probabilities' scale */
    gsq_att8_head h = {.T = T, .HD = HD, .ld = 3 * C, .ldo = C, .sq = scales[0], .sk = scales[1], .sv = scales[2],
                       .qk = scales[0] * scales[1] * (1.0f / sqrtf((float)HD)), /* the float model's 1/√HD */
                       .p_inv = 1.0f / p_scale, .pv = p_scale * scales[2], .qmax = qmax};
    size_t bytes = gsq_att8_scratch_bytes(T, HD);
#if GSQ_X86
    int fast = gsq_att8_fast(isa); /* decided once, not per head */
#endif
    #pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        const float *q = qkv + (size_t)(bh / NH) * T * 3 * C + (size_t)(bh % NH) * HD;
        float *o = out + (size_t)(bh / NH) * T * C + (size_t)(bh % NH) * HD;
        const float *b = bias ? bias + ((size_t)(bh / NH % windows) * NH + (size_t)(bh % NH)) * T * T : NULL;
#if GSQ_X86
        if (fast) {
            gsq_att8_head_avx512(o, q, q + C, q + 2 * C, b, &h, scratch + (size_t)bh * bytes);
            continue;
        }
#endif
        gsq_att8_head_ref(o, q, q + C, q + 2 * C, b, &h, scratch + (size_t)bh * bytes);
    }
}
