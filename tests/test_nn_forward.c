/* Forward passes of gpusq/nn.h against independent naive implementations written here in double
 * precision: linear (with and without bias), LayerNorm (with its saved mean/rstd), exact GELU,
 * attention and cross-attention (direct per-head loops with softmax; cross-attention also with
 * QAT's quantized probabilities, and bit for bit as self-attention when its memory is the same
 * tokens, forward and backward, on 1, 2 and 3 threads), patchify (direct indexing, and as a conv
 * with stride = kernel), tokens (cls/dist on and off), pooling (token, avg with prefix), residual
 * add and cross-entropy with label smoothing. Includes batch 1, odd sizes and large-magnitude
 * inputs. */
#include <string.h>

#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "gpusq/quant.h"
#include "test_util.h"

/* Tolerances, relative to the largest reference value (max_rel_err):
 * - sums of up to a few hundred fp32 products or exps (linear, attention, LayerNorm, softmax):
 *   rounding grows like sqrt(n) * FLT_EPSILON, about 1e-6 here; 1e-5 leaves room for a different
 *   summation order while a wrong index, missing term or wrong scale gives errors of order 1e-2..1.
 * - pure copies and single additions (patchify, tokens, add): exact in float, so bit equality. */
#define TOL_SUM 1e-5

static float *alloc_normal(size_t n, gsq_rng *rng, float std)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    fill_normal(x, n, rng, std);
    return x;
}

static float *alloc_nan(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static float *to_float(const double *d, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)d[i];
    return x;
}

/* ---- linear ---------------------------------------------------------------------------------- */

static void test_linear(int N, int C, int OC, int with_bias, gsq_rng *rng)
{
    float *inp = alloc_normal((size_t)N * C, rng, 1.0f), *w = alloc_normal((size_t)OC * C, rng, 0.5f);
    float *b = with_bias ? alloc_normal(OC, rng, 1.0f) : NULL;
    float *out = alloc_nan((size_t)N * OC); /* forward must overwrite */
    double *ref = malloc((size_t)N * OC * sizeof(double));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++) s += (double)inp[(size_t)n * C + c] * w[(size_t)o * C + c];
            ref[(size_t)n * OC + o] = s;
        }
    float *rf = to_float(ref, (size_t)N * OC);
    gsq_linear_forward(out, inp, w, b, N, C, OC);
    double e = max_rel_err(out, rf, (size_t)N * OC);
    CHECK(e <= TOL_SUM, "linear N=%d C=%d OC=%d bias=%d: max rel err %.3e", N, C, OC, with_bias, e);
    free(inp);
    free(w);
    free(b);
    free(out);
    free(ref);
    free(rf);
}

/* ---- layernorm ------------------------------------------------------------------------------- */

/* offset shifts every input (LayerNorm must be shift-invariant and not lose precision to it);
 * constant_row makes row 0 constant (variance 0: out = bias, rstd = 1/sqrt(eps)). */
static void test_layernorm(int N, int C, float offset, int constant_row, float eps, gsq_rng *rng)
{
    float *inp = alloc_normal((size_t)N * C, rng, 1.0f);
    for (size_t i = 0; i < (size_t)N * C; i++) inp[i] += offset;
    if (constant_row)
        for (int c = 0; c < C; c++) inp[c] = offset + 0.75f;
    float *w = alloc_normal(C, rng, 1.0f), *b = alloc_normal(C, rng, 1.0f);
    float *out = alloc_nan((size_t)N * C), *mean = alloc_nan(N), *rstd = alloc_nan(N);
    double *ref = malloc((size_t)N * C * sizeof(double)), *rm = malloc(N * sizeof(double));
    double *rr = malloc(N * sizeof(double));
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C; /* biased, as torch */
        double r = 1.0 / sqrt(v + (double)eps);
        rm[n] = m;
        rr[n] = r;
        for (int c = 0; c < C; c++) ref[(size_t)n * C + c] = (x[c] - m) * r * w[c] + b[c];
    }
    gsq_layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
    float *rf = to_float(ref, (size_t)N * C), *rmf = to_float(rm, N), *rrf = to_float(rr, N);
    /* With an offset the float inputs are exact, but the output's error is amplified by
     * offset / std relative to its scale (x - mean loses the leading bits): allow that. */
    double tol = TOL_SUM * (1.0 + fabs(offset));
    double e = max_rel_err(out, rf, (size_t)N * C);
    CHECK(e <= tol, "layernorm out N=%d C=%d offset=%g: max rel err %.3e", N, C, (double)offset, e);
    e = max_rel_err(mean, rmf, N);
    CHECK(e <= TOL_SUM, "layernorm mean N=%d C=%d offset=%g: max rel err %.3e", N, C, (double)offset, e);
    /* rstd: each row compared on its own scale (rows with variance 0 have rstd = 1/sqrt(eps)). */
    double er = 0;
    for (int n = 0; n < N; n++) er = fmax(er, fabs((double)rstd[n] - rr[n]) / rr[n]);
    if (er != er) er = INFINITY;
    CHECK(er <= tol, "layernorm rstd N=%d C=%d offset=%g: max rel err %.3e", N, C, (double)offset, er);
    if (constant_row) {
        double eb = 0;
        for (int c = 0; c < C; c++) eb = fmax(eb, fabs((double)out[c] - b[c]));
        if (eb != eb) eb = INFINITY;
        /* (x - mean) is 0 up to rounding of the mean, times 1/sqrt(eps) ~ 1e3 times |w| */
        CHECK(eb <= 1e-3, "layernorm constant row: out differs from bias by %.3e", eb);
    }
    free(inp);
    free(w);
    free(b);
    free(out);
    free(mean);
    free(rstd);
    free(ref);
    free(rm);
    free(rr);
    free(rf);
    free(rmf);
    free(rrf);
}

/* ---- gelu ------------------------------------------------------------------------------------ */

static void test_gelu(void)
{
    enum { NGRID = 2001 };
    static const float extra[] = {0.0f,  -0.0f,  1e-20f, -1e-20f, 1e-3f, -1e-3f, 12.0f, -12.0f,
                                  20.0f, -20.0f, 50.0f,  -50.0f,  1e3f,  -1e3f,  1e4f,  -1e4f,
                                  1e30f, -1e30f};
    size_t n = NGRID + sizeof extra / sizeof extra[0];
    float *x = malloc(n * sizeof(float)), *y = alloc_nan(n);
    for (int i = 0; i < NGRID; i++) x[i] = -10.0f + 20.0f * (float)i / (NGRID - 1);
    memcpy(x + NGRID, extra, sizeof extra);
    gsq_gelu_forward(y, x, n);
    /* An fp32 erf-form GELU (torch's) is accurate to a few ulps where the result is large, and to
     * an absolute ~3e-7 where 1 + erf(x/√2) cancels (x around -5: 0.5·|x|·ulp(1)). So allow
     * 2e-6 relative plus 1e-6 absolute; the tanh approximation differs by up to ~1e-3 and a wrong
     * sign or scale by far more. */
    int bad = 0;
    double worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < n; i++) {
        double xd = x[i];
        double r = 0.5 * xd * (1.0 + erf(xd / sqrt(2.0)));
        double d = fabs((double)y[i] - r);
        double tol = 2e-6 * fabs(r) + 1e-6;
        if (!(d <= tol)) {
            if (!bad || d / tol > worst) {
                worst = d / tol;
                worst_x = x[i];
            }
            bad++;
        }
    }
    CHECK(bad == 0, "gelu: %d of %zu points out of tolerance (worst at x=%g)", bad, n, (double)worst_x);
    free(x);
    free(y);
}

/* ---- attention ------------------------------------------------------------------------------- */

/* qkv scaled by qk_scale on the q and k parts: large scales make the logits span hundreds, which
 * overflows exp() unless the softmax subtracts the row maximum. */
static void test_attention(int B, int T, int C, int NH, float qk_scale, gsq_rng *rng)
{
    int HD = C / NH;
    size_t nqkv = (size_t)B * T * 3 * C, natt = (size_t)B * NH * T * T, nout = (size_t)B * T * C;
    float *qkv = alloc_normal(nqkv, rng, 1.0f);
    for (size_t i = 0; i < nqkv; i++)
        if ((int)(i % (3 * C)) < 2 * C) qkv[i] *= qk_scale;
    float *out = alloc_nan(nout), *att = alloc_nan(natt);
    double *rout = malloc(nout * sizeof(double)), *ratt = malloc(natt * sizeof(double));
    double *row = malloc(T * sizeof(double));
    double scale = 1.0 / sqrt((double)HD), max_logit = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * HD;
                double mx = -INFINITY, z = 0;
                for (int u = 0; u < T; u++) {
                    const float *k = qkv + ((size_t)b * T + u) * 3 * C + C + h * HD;
                    double s = 0;
                    for (int d = 0; d < HD; d++) s += (double)q[d] * k[d];
                    row[u] = s * scale;
                    if (row[u] > mx) mx = row[u];
                    if (row[u] > max_logit) max_logit = row[u];
                }
                for (int u = 0; u < T; u++) {
                    row[u] = exp(row[u] - mx);
                    z += row[u];
                }
                double *a = ratt + (((size_t)b * NH + h) * T + t) * T;
                for (int u = 0; u < T; u++) a[u] = row[u] / z;
                for (int d = 0; d < HD; d++) {
                    double s = 0;
                    for (int u = 0; u < T; u++)
                        s += a[u] * qkv[((size_t)b * T + u) * 3 * C + 2 * C + h * HD + d];
                    rout[((size_t)b * T + t) * C + h * HD + d] = s;
                }
            }
    /* the large-scale case is only a test of max subtraction if expf would overflow (> 88.7) */
    if (qk_scale > 1.0f)
        CHECK(max_logit > 100.0, "attention test setup: largest logit %.1f cannot overflow expf",
              max_logit);
    gsq_attention_forward(out, att, NULL, 0.0f, 0, qkv, B, T, C, NH, NULL);
    float *rof = to_float(rout, nout), *raf = to_float(ratt, natt);
    /* With qk_scale s the logits' absolute rounding grows like s², and exp turns it into relative
     * error of the probabilities: allow TOL_SUM times s² (still 1e-2 below an order-1 bug). */
    double tol = TOL_SUM * fmax(1.0, (double)qk_scale * qk_scale);
    double e = max_rel_err(att, raf, natt);
    CHECK(e <= tol, "attention att B=%d T=%d C=%d NH=%d qk_scale=%g: max rel err %.3e", B, T, C, NH,
          (double)qk_scale, e);
    e = max_rel_err(out, rof, nout);
    CHECK(e <= tol, "attention out B=%d T=%d C=%d NH=%d qk_scale=%g: max rel err %.3e", B, T, C, NH,
          (double)qk_scale, e);
    free(qkv);
    free(out);
    free(att);
    free(rout);
    free(ratt);
    free(row);
    free(rof);
    free(raf);
}

/* ---- cross-attention ------------------------------------------------------------------------- */

/* Queries q (B, Q, C) over memory kv (B, N, 2C). With qat, att_q must be gsq_fake_quant of the
 * library's att, bit for bit (the quantizer itself is test_quant's; requantizing the reference's
 * att could flip a code at a rounding boundary), and out the values weighted by att_q. */
static void test_cross_attention(int B, int Q, int N, int C, int NH, int qat, gsq_rng *rng)
{
    const float p_scale = 1.0f / 15.0f;
    const int p_qmax = 15;
    int HD = C / NH;
    size_t nq = (size_t)B * Q * C, nkv = (size_t)B * N * 2 * C, natt = (size_t)B * NH * Q * N;
    float *q = alloc_normal(nq, rng, 1.0f), *kv = alloc_normal(nkv, rng, 1.0f);
    float *out = alloc_nan(nq), *att = alloc_nan(natt), *att_q = qat ? alloc_nan(natt) : NULL;
    gsq_cross_attention_forward(out, att, att_q, p_scale, p_qmax, q, kv, B, Q, N, C, NH);
    float *want_q = NULL;
    if (qat) {
        want_q = malloc(natt * sizeof(float));
        gsq_fake_quant(want_q, att, natt, p_scale, p_qmax);
        CHECK(memcmp(att_q, want_q, natt * sizeof(float)) == 0,
              "cross-attention att_q B=%d Q=%d N=%d C=%d NH=%d: not fake_quant(att)", B, Q, N, C, NH);
    }
    double *rout = malloc(nq * sizeof(double)), *ratt = malloc(natt * sizeof(double));
    double scale = 1.0 / sqrt((double)HD);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < Q; t++) {
                const float *qr = q + ((size_t)b * Q + t) * C + h * HD;
                size_t row = (((size_t)b * NH + h) * Q + t) * N;
                double *a = ratt + row, mx = -INFINITY, z = 0;
                for (int u = 0; u < N; u++) {
                    const float *kr = kv + ((size_t)b * N + u) * 2 * C + h * HD;
                    double sc = 0;
                    for (int d = 0; d < HD; d++) sc += (double)qr[d] * kr[d];
                    a[u] = sc * scale;
                    mx = fmax(mx, a[u]);
                }
                for (int u = 0; u < N; u++) {
                    a[u] = exp(a[u] - mx);
                    z += a[u];
                }
                for (int u = 0; u < N; u++) a[u] /= z;
                const float *aq = qat ? att_q + row : NULL;
                for (int d = 0; d < HD; d++) {
                    double sv = 0;
                    for (int u = 0; u < N; u++)
                        sv += (qat ? (double)aq[u] : a[u]) * kv[((size_t)b * N + u) * 2 * C + C + h * HD + d];
                    rout[((size_t)b * Q + t) * C + h * HD + d] = sv;
                }
            }
    float *rof = to_float(rout, nq), *raf = to_float(ratt, natt);
    double e = max_rel_err(att, raf, natt);
    CHECK(e <= TOL_SUM, "cross-attention att B=%d Q=%d N=%d C=%d NH=%d qat=%d: max rel err %.3e", B, Q, N, C, NH,
          qat, e);
    e = max_rel_err(out, rof, nq);
    CHECK(e <= TOL_SUM, "cross-attention out B=%d Q=%d N=%d C=%d NH=%d qat=%d: max rel err %.3e", B, Q, N, C, NH,
          qat, e);
    free(q);
    free(kv);
    free(out);
    free(att);
    free(att_q);
    free(want_q);
    free(rout);
    free(ratt);
    free(rof);
    free(raf);
}

/* Cross-attention whose q is qkv's q part and whose memory its k, v parts is self-attention over
 * qkv: the same floats (out, att, att_q, and the gradients split as dqkv), on 1, 2 and 3 threads. */
static void test_cross_as_self(int B, int T, int C, int NH, int qat, gsq_rng *rng)
{
    const float p_scale = 1.0f / 31.0f;
    const int p_qmax = 31;
    size_t nqkv = (size_t)B * T * 3 * C, nq = (size_t)B * T * C, natt = (size_t)B * NH * T * T;
    float *qkv = alloc_normal(nqkv, rng, 1.0f), *dout = alloc_normal(nq, rng, 1.0f);
    float *q = malloc(nq * sizeof(float)), *kv = malloc(2 * nq * sizeof(float));
    for (size_t r = 0; r < (size_t)B * T; r++) {
        memcpy(q + r * C, qkv + r * 3 * C, C * sizeof(float));
        memcpy(kv + r * 2 * C, qkv + r * 3 * C + C, 2 * C * sizeof(float));
    }
    float *out = malloc(nq * sizeof(float)), *att = malloc(natt * sizeof(float));
    float *att_q = qat ? malloc(natt * sizeof(float)) : NULL, *scratch = malloc(natt * sizeof(float));
    float *dqkv = calloc(nqkv, sizeof(float));
    gsq_attention_forward(out, att, att_q, p_scale, p_qmax, qkv, B, T, C, NH, NULL);
    gsq_attention_backward(dqkv, scratch, dout, qkv, att, att_q, B, T, C, NH, NULL, NULL);
    float *xout = malloc(nq * sizeof(float)), *xatt = malloc(natt * sizeof(float));
    float *xatt_q = qat ? malloc(natt * sizeof(float)) : NULL;
    float *dq = malloc(nq * sizeof(float)), *dkv = malloc(2 * nq * sizeof(float));
    int threads = gsq_get_num_threads();
    for (int th = 1; th <= 3; th++) {
        gsq_set_num_threads(th);
        memset(dq, 0, nq * sizeof(float));
        memset(dkv, 0, 2 * nq * sizeof(float));
        gsq_cross_attention_forward(xout, xatt, xatt_q, p_scale, p_qmax, q, kv, B, T, T, C, NH);
        gsq_cross_attention_backward(dq, dkv, scratch, dout, q, kv, xatt, xatt_q, B, T, T, C, NH);
        int same = !memcmp(xout, out, nq * sizeof(float)) && !memcmp(xatt, att, natt * sizeof(float)) &&
                   (!qat || !memcmp(xatt_q, att_q, natt * sizeof(float)));
        for (size_t r = 0; r < (size_t)B * T; r++)
            same = same && !memcmp(dq + r * C, dqkv + r * 3 * C, C * sizeof(float)) &&
                   !memcmp(dkv + r * 2 * C, dqkv + r * 3 * C + C, 2 * C * sizeof(float));
        CHECK(same, "cross-attention as self-attention B=%d T=%d C=%d NH=%d qat=%d on %d threads: not the same bits",
              B, T, C, NH, qat, th);
    }
    gsq_set_num_threads(threads);
    free(qkv);
    free(dout);
    free(q);
    free(kv);
    free(out);
    free(att);
    free(att_q);
    free(scratch);
    free(dqkv);
    free(xout);
    free(xatt);
    free(xatt_q);
    free(dq);
    free(dkv);
}

/* ---- patchify -------------------------------------------------------------------------------- */

/* Checks patchify by direct indexing (bit exact), then as a conv: patches · weightᵀ + bias through
 * gsq_linear_forward against a direct strided convolution of the image in double. */
static void test_patchify(int B, int C, int H, int W, int P, int D, gsq_rng *rng)
{
    int GH = H / P, GW = W / P, NP = GH * GW, K = C * P * P;
    size_t nimg = (size_t)B * C * H * W, npat = (size_t)B * NP * K;
    float *img = alloc_normal(nimg, rng, 1.0f), *pat = alloc_nan(npat);
    gsq_patchify(pat, img, B, C, H, W, P);
    size_t mismatches = 0;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < GH; gy++)
            for (int gx = 0; gx < GW; gx++)
                for (int c = 0; c < C; c++)
                    for (int py = 0; py < P; py++)
                        for (int px = 0; px < P; px++) {
                            float want = img[(((size_t)b * C + c) * H + gy * P + py) * W + gx * P + px];
                            float got = pat[((size_t)b * NP + gy * GW + gx) * K + (c * P + py) * P + px];
                            if (memcmp(&want, &got, sizeof want) != 0) mismatches++;
                        }
    CHECK(mismatches == 0, "patchify B=%d C=%d H=%d W=%d P=%d: %zu of %zu values differ", B, C, H, W,
          P, mismatches, npat);

    /* conv weight (D, C, P, P), bias (D); output (B, D, GH, GW) vs linear output (B, NP, D) */
    float *w = alloc_normal((size_t)D * K, rng, 0.2f), *bias = alloc_normal(D, rng, 1.0f);
    float *emb = alloc_nan((size_t)B * NP * D);
    gsq_linear_forward(emb, pat, w, bias, B * NP, K, D);
    double *conv = malloc((size_t)B * NP * D * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
            for (int gy = 0; gy < GH; gy++)
                for (int gx = 0; gx < GW; gx++) {
                    double s = bias[d];
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < P; ky++)
                            for (int kx = 0; kx < P; kx++)
                                s += (double)w[(((size_t)d * C + c) * P + ky) * P + kx] *
                                     img[(((size_t)b * C + c) * H + gy * P + ky) * W + gx * P + kx];
                    conv[((size_t)b * NP + gy * GW + gx) * D + d] = s; /* as timm's flatten(2).T */
                }
    float *cf = to_float(conv, (size_t)B * NP * D);
    double e = max_rel_err(emb, cf, (size_t)B * NP * D);
    CHECK(e <= TOL_SUM, "patch embed as conv B=%d C=%d H=%d W=%d P=%d: max rel err %.3e", B, C, H, W, P, e);
    free(img);
    free(pat);
    free(w);
    free(bias);
    free(emb);
    free(conv);
    free(cf);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

static void test_tokens(int B, int NP, int D, int use_cls, int use_dist, gsq_rng *rng)
{
    int prefix = use_cls + use_dist, T = prefix + NP;
    float *pe = alloc_normal((size_t)B * NP * D, rng, 1.0f), *pos = alloc_normal((size_t)T * D, rng, 1.0f);
    float *cls = use_cls ? alloc_normal(D, rng, 1.0f) : NULL;
    float *dist = use_dist ? alloc_normal(D, rng, 1.0f) : NULL;
    float *x = alloc_nan((size_t)B * T * D);
    gsq_tokens_forward(x, pe, cls, dist, pos, B, NP, D);
    size_t bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) {
                double base;
                if (t < prefix) base = (t == 0 && use_cls) ? cls[d] : dist[d];
                else base = pe[((size_t)b * NP + t - prefix) * D + d];
                /* one float add; in double it is exact, so rounding to float gives the same bits */
                float want = (float)(base + (double)pos[(size_t)t * D + d]);
                if (x[((size_t)b * T + t) * D + d] != want) bad++;
            }
    CHECK(bad == 0, "tokens B=%d NP=%d D=%d cls=%d dist=%d: %zu values differ", B, NP, D, use_cls,
          use_dist, bad);
    free(pe);
    free(pos);
    free(cls);
    free(dist);
    free(x);
}

/* ---- pooling --------------------------------------------------------------------------------- */

static void test_pool(int B, int T, int D, gsq_pool pool, int token, int prefix, gsq_rng *rng)
{
    float *x = alloc_normal((size_t)B * T * D, rng, 1.0f), *out = alloc_nan((size_t)B * D);
    double *ref = malloc((size_t)B * D * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            if (pool == GSQ_POOL_TOKEN) {
                ref[(size_t)b * D + d] = x[((size_t)b * T + token) * D + d];
            } else {
                double s = 0;
                for (int t = prefix; t < T; t++) s += x[((size_t)b * T + t) * D + d];
                ref[(size_t)b * D + d] = s / (T - prefix);
            }
        }
    gsq_pool_forward(out, x, B, T, D, pool, token, prefix);
    float *rf = to_float(ref, (size_t)B * D);
    double e = max_rel_err(out, rf, (size_t)B * D);
    /* token pooling is a copy (exact); the mean is a sum of T fp32 values (TOL_SUM) */
    double tol = pool == GSQ_POOL_TOKEN ? 0.0 : TOL_SUM;
    CHECK(e <= tol, "pool %s B=%d T=%d D=%d token=%d prefix=%d: max rel err %.3e",
          pool == GSQ_POOL_TOKEN ? "token" : "avg", B, T, D, token, prefix, e);
    free(x);
    free(out);
    free(ref);
    free(rf);
}

/* ---- residual add ---------------------------------------------------------------------------- */

static void test_add(size_t n, gsq_rng *rng)
{
    float *a = alloc_normal(n, rng, 1.0f), *b = alloc_normal(n, rng, 3.0f), *out = alloc_nan(n);
    gsq_add_forward(out, a, b, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (out[i] != (float)((double)a[i] + b[i])) bad++;
    CHECK(bad == 0, "add n=%zu: %zu values differ", n, bad);
    free(a);
    free(b);
    free(out);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

/* Loss per torch: -Σ_k q_k log_softmax(z)_k, q = (1-ε) onehot + ε/K, mean over the batch.
 * logit_std large (e.g. 60) makes some probabilities underflow in fp32: the loss must still be the
 * finite log-softmax value, as torch's. */
static void test_cross_entropy(int B, int K, float smoothing, float logit_std, gsq_rng *rng)
{
    float *logits = alloc_normal((size_t)B * K, rng, logit_std), *probs = alloc_nan((size_t)B * K);
    int *targets = malloc(B * sizeof(int));
    for (int b = 0; b < B; b++) targets[b] = (int)(gsq_rng_u32(rng) % (uint32_t)K);
    double *rp = malloc((size_t)B * K * sizeof(double)), loss = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < K; k++) mx = fmax(mx, z[k]);
        for (int k = 0; k < K; k++) s += exp(z[k] - mx);
        double lse = mx + log(s);
        for (int k = 0; k < K; k++) {
            double logp = z[k] - lse;
            double q = (k == targets[b] ? 1.0 - smoothing : 0.0) + (double)smoothing / K;
            loss -= q * logp;
            rp[(size_t)b * K + k] = exp(logp);
        }
    }
    loss /= B;
    float got = gsq_cross_entropy_forward(probs, logits, targets, B, K, smoothing);
    float *rpf = to_float(rp, (size_t)B * K);
    double e = max_rel_err(probs, rpf, (size_t)B * K);
    CHECK(e <= TOL_SUM, "cross-entropy probs B=%d K=%d eps=%g std=%g: max rel err %.3e", B, K,
          (double)smoothing, (double)logit_std, e);
    /* loss: log-sum-exp in fp32 is accurate to a few ulps of the logits' scale (|z| ~ logit_std) */
    double tol = TOL_SUM * fmax(1.0, fabs(loss) + logit_std);
    double d = fabs((double)got - loss);
    CHECK(d <= tol, "cross-entropy loss B=%d K=%d eps=%g std=%g: got %.9g want %.9g (|diff| %.3e)", B,
          K, (double)smoothing, (double)logit_std, (double)got, loss, d);
    free(logits);
    free(probs);
    free(targets);
    free(rp);
    free(rpf);
}

int main(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 2024, 2);

    test_linear(1, 1, 1, 1, &rng);
    test_linear(1, 192, 384, 1, &rng); /* batch 1 */
    test_linear(7, 13, 5, 1, &rng);
    test_linear(7, 13, 5, 0, &rng);
    test_linear(197, 65, 33, 1, &rng);
    test_linear(50, 96, 17, 0, &rng);

    test_layernorm(1, 1, 0.0f, 0, 1e-5f, &rng);
    test_layernorm(1, 192, 0.0f, 0, 1e-6f, &rng);
    test_layernorm(7, 13, 0.0f, 1, 1e-6f, &rng);
    test_layernorm(197, 64, 3.0f, 0, 1e-5f, &rng);
    test_layernorm(9, 96, 30.0f, 1, 1e-6f, &rng); /* large common offset */

    test_gelu();

    test_attention(1, 1, 4, 1, 1.0f, &rng);   /* one token: att = 1, out = v */
    test_attention(1, 7, 12, 3, 1.0f, &rng);  /* batch 1, odd T */
    test_attention(2, 13, 24, 4, 1.0f, &rng);
    test_attention(2, 13, 16, 2, 12.0f, &rng); /* logits in the hundreds: needs max subtraction */
    test_attention(1, 197, 64, 4, 1.0f, &rng);

    for (int qat = 0; qat <= 1; qat++) {
        test_cross_attention(1, 1, 1, 4, 1, qat, &rng);   /* one query, one memory token: out = v */
        test_cross_attention(2, 1, 7, 12, 3, qat, &rng);  /* one query */
        test_cross_attention(3, 5, 1, 9, 3, qat, &rng);   /* one memory token; head dim 3, batch 3 */
        test_cross_attention(2, 13, 6, 24, 4, qat, &rng); /* Q > N */
        test_cross_attention(1, 3, 29, 6, 1, qat, &rng);  /* one head */
        test_cross_attention(3, 10, 23, 15, 5, qat, &rng); /* head dim 3 */
        test_cross_attention(1, 100, 300, 64, 8, qat, &rng); /* DETR-like: 100 queries */
        test_cross_as_self(2, 9, 12, 3, qat, &rng);
        test_cross_as_self(3, 5, 9, 3, qat, &rng); /* head dim 3 */
    }

    test_patchify(2, 3, 8, 8, 4, 5, &rng);
    test_patchify(1, 1, 11, 9, 4, 3, &rng);  /* H, W not multiples of P; one channel */
    test_patchify(3, 3, 7, 10, 3, 4, &rng);
    test_patchify(1, 2, 5, 5, 1, 2, &rng);   /* P = 1 */
    test_patchify(1, 3, 32, 32, 16, 8, &rng);

    for (int c = 0; c <= 1; c++)
        for (int d = 0; d <= 1; d++) {
            test_tokens(2, 4, 6, c, d, &rng);
            test_tokens(1, 9, 5, c, d, &rng);
        }

    test_pool(2, 6, 4, GSQ_POOL_TOKEN, 0, 1, &rng);
    test_pool(3, 7, 5, GSQ_POOL_TOKEN, 1, 2, &rng);
    test_pool(1, 5, 3, GSQ_POOL_AVG, 0, 0, &rng);
    test_pool(2, 6, 4, GSQ_POOL_AVG, 0, 1, &rng);
    test_pool(3, 9, 5, GSQ_POOL_AVG, 0, 2, &rng);

    test_add(1, &rng);
    test_add(1001, &rng);

    test_cross_entropy(1, 1, 0.0f, 1.0f, &rng);
    test_cross_entropy(1, 1, 0.1f, 1.0f, &rng);
    test_cross_entropy(5, 7, 0.0f, 2.0f, &rng);
    test_cross_entropy(5, 7, 0.1f, 2.0f, &rng);
    test_cross_entropy(16, 1000, 0.1f, 3.0f, &rng);
    test_cross_entropy(4, 10, 0.0f, 60.0f, &rng); /* probabilities underflow in fp32 */
    test_cross_entropy(4, 10, 0.1f, 60.0f, &rng);

    return test_finish("test_nn_forward");
}
