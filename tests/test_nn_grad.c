/* Finite-difference gradient checks of every backward in gpusq/nn.h on tiny random shapes, plus
 * the backward contract: gradients ACCUMULATE (+=) into what the buffer held, and any gradient
 * pointer may be NULL (the others are still computed, unchanged).
 *
 * Method: scalar objective L = Σ out ⊙ R for a fixed random R (cross-entropy: L = loss · dloss),
 * computed in double from the library's float forward. The analytic gradient is the backward with
 * dout = R; the numeric one is the central difference (L(p + h) - L(p - h)) / (2h) per element,
 * with h = 1e-2 in float (the divisor is the step actually taken after rounding). */
#include <string.h>

#include "gpusq/kernels.h"
#include "gpusq/nn.h"
#include "test_util.h"

#define FD_STEP 1e-2f
/* Normalized L2 error ‖g_a − g_n‖ / ‖g_n‖ allowed between analytic and numeric gradients.
 * Expected error: truncation h²/6 · f''' ≈ 2e-5 relative for O(1) inputs, plus float rounding of
 * the forward (~1e-7 relative per output, ~1e-6 on L) divided by 2h = 2e-2, i.e. up to ~5e-5;
 * measured: at most 3e-5 over all checks here (exactly linear layers ~1e-6). 1e-3 leaves a 30×
 * margin, while a wrong term, factor or index is an error of order 0.1–1, and 10% off in the
 * largest single element gives 2e-2 or more (self-checked below, so the bound has teeth). */
#define GRAD_TOL 1e-3
/* Accumulation: g(prefilled g0) must equal g0 + g(zeros) up to float rounding of one addition
 * (a few ulps of the largest value, i.e. < 1e-6 relative; 1e-5 allows a different order). An
 * overwrite instead of += is off by |g0|, i.e. order 1. */
#define ACC_TOL 1e-5
/* NULL gradients: computing a subset must give the same values (normally identical bits). */
#define NULL_TOL 1e-6

#define MAX_SLOTS 4

typedef double (*objective_fn)(void *ctx);
/* Runs the backward with dout = R; grads[i] is the gradient of slot i, or NULL to skip it. */
typedef void (*backward_fn)(void *ctx, float **grads);

typedef struct {
    const char *name;
    float *param; /* the input the gradient is taken against (perturbed in place) */
    size_t n;
} slot;

static gsq_rng g_rng;

static float *alloc_normal(size_t n, float std)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    fill_normal(x, n, &g_rng, std);
    return x;
}

static double dot_r(const float *out, const float *R, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

static void fd_grad(float *gn, float *p, size_t n, objective_fn f, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        float v = p[i], vp = v + FD_STEP, vm = v - FD_STEP;
        p[i] = vp;
        double lp = f(ctx);
        p[i] = vm;
        double lm = f(ctx);
        p[i] = v;
        gn[i] = (float)((lp - lm) / ((double)vp - (double)vm));
    }
}

/* Compares analytic to numeric, then checks the tolerance has teeth: the analytic gradient with its
 * largest element scaled by 1.1 must be rejected (that comparison is not itself a failure). */
static void check_grad(const char *layer, const char *name, const float *ga, const float *gn, size_t n)
{
    double err = norm_l2_err(ga, gn, n);
    CHECK(err <= GRAD_TOL, "%s d%s: analytic vs numeric normalized L2 error %.3e > %.0e", layer, name,
          err, GRAD_TOL);
    float *bad = malloc(n * sizeof(float));
    memcpy(bad, ga, n * sizeof(float));
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (fabsf(bad[i]) > fabsf(bad[k])) k = i;
    bad[k] *= 1.1f;
    double err_bad = norm_l2_err(bad, gn, n);
    CHECK(err_bad > GRAD_TOL, "%s d%s self-check: 10%% off in one element gives only %.3e", layer,
          name, err_bad);
    printf("  %-34s d%-6s n=%-4zu err %.2e   (one element +10%%: %.2e)\n", layer, name, n, err, err_bad);
    free(bad);
}

/* The whole suite for one layer: finite differences for every slot, accumulation into prefilled
 * buffers, each gradient alone with the others NULL, and all NULL. */
static void run_suite(const char *layer, void *ctx, objective_fn f, backward_fn bw, const slot *slots,
                      int ns)
{
    float *ga[MAX_SLOTS] = {0}, *g[MAX_SLOTS] = {0};
    for (int i = 0; i < ns; i++) ga[i] = calloc(slots[i].n, sizeof(float));
    f(ctx); /* forward at the unperturbed point (saves what backward needs) */
    bw(ctx, ga);

    /* The thousands of tiny forwards of the finite differences run on one thread: an OpenMP
     * barrier per call costs a scheduler slice on a loaded machine (seconds in all). The analytic
     * backward calls stay on the configured threads, so their parallel paths are covered. */
    int threads = gsq_get_num_threads();
    gsq_set_num_threads(1);
    for (int i = 0; i < ns; i++) {
        float *gn = malloc(slots[i].n * sizeof(float));
        fd_grad(gn, slots[i].param, slots[i].n, f, ctx);
        check_grad(layer, slots[i].name, ga[i], gn, slots[i].n);
        free(gn);
    }
    gsq_set_num_threads(threads);

    /* accumulation: prefill with a known random g0 */
    float *g0[MAX_SLOTS] = {0};
    for (int i = 0; i < ns; i++) {
        g0[i] = alloc_normal(slots[i].n, 1.0f);
        g[i] = malloc(slots[i].n * sizeof(float));
        memcpy(g[i], g0[i], slots[i].n * sizeof(float));
    }
    f(ctx);
    bw(ctx, g);
    for (int i = 0; i < ns; i++) {
        float *want = malloc(slots[i].n * sizeof(float));
        for (size_t j = 0; j < slots[i].n; j++) want[j] = g0[i][j] + ga[i][j];
        double e = max_rel_err(g[i], want, slots[i].n);
        CHECK(e <= ACC_TOL, "%s d%s: not accumulated into the prefilled buffer (max rel err %.3e)",
              layer, slots[i].name, e);
        free(want);
        free(g0[i]);
    }

    /* each gradient alone, the others NULL */
    for (int i = 0; i < ns; i++) {
        float *only[MAX_SLOTS] = {0};
        only[i] = g[i];
        memset(g[i], 0, slots[i].n * sizeof(float));
        bw(ctx, only);
        double e = max_rel_err(g[i], ga[i], slots[i].n);
        CHECK(e <= NULL_TOL, "%s d%s alone (others NULL): max rel err %.3e vs all computed", layer,
              slots[i].name, e);
    }
    float *none[MAX_SLOTS] = {0};
    bw(ctx, none); /* all NULL: must not crash */

    for (int i = 0; i < ns; i++) {
        free(ga[i]);
        free(g[i]);
    }
}

/* ---- linear (optionally fed by patchify: the patch embedding as an implicit GEMM) ---------- */

typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *R;
    /* patch embedding: inp = patchify(img) recomputed in the objective when img != NULL */
    float *img;
    int B, IC, H, W, P;
} linear_ctx;

static double linear_obj(void *p)
{
    linear_ctx *c = p;
    if (c->img) gsq_patchify(c->inp, c->img, c->B, c->IC, c->H, c->W, c->P);
    gsq_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot_r(c->out, c->R, (size_t)c->N * c->OC);
}

static void linear_bw(void *p, float **g)
{
    linear_ctx *c = p;
    gsq_linear_backward(c->img ? NULL : g[0], c->img ? g[0] : g[1], c->img ? g[1] : (c->b ? g[2] : NULL),
                        c->R, c->inp, c->w, c->N, c->C, c->OC);
}

static void test_linear(int N, int C, int OC, int with_bias)
{
    linear_ctx c = {.N = N, .C = C, .OC = OC};
    c.inp = alloc_normal((size_t)N * C, 1.0f);
    c.w = alloc_normal((size_t)OC * C, 0.5f);
    c.b = with_bias ? alloc_normal(OC, 1.0f) : NULL;
    c.out = malloc((size_t)N * OC * sizeof(float));
    c.R = alloc_normal((size_t)N * OC, 1.0f);
    slot s[] = {{"inp", c.inp, (size_t)N * C}, {"weight", c.w, (size_t)OC * C}, {"bias", c.b, (size_t)OC}};
    char name[64];
    snprintf(name, sizeof name, "linear N=%d C=%d OC=%d%s", N, C, OC, with_bias ? "" : " no bias");
    run_suite(name, &c, linear_obj, linear_bw, s, with_bias ? 3 : 2);
    free(c.inp);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.R);
}

/* patch embedding: img (B, IC, H, W) → patches (B·NP, IC·P·P) → linear to D; grads of weight, bias */
static void test_patch_embed(int B, int IC, int H, int W, int P, int D)
{
    int NP = (H / P) * (W / P), K = IC * P * P;
    linear_ctx c = {.N = B * NP, .C = K, .OC = D, .B = B, .IC = IC, .H = H, .W = W, .P = P};
    c.img = alloc_normal((size_t)B * IC * H * W, 1.0f);
    c.inp = malloc((size_t)B * NP * K * sizeof(float));
    c.w = alloc_normal((size_t)D * K, 0.3f);
    c.b = alloc_normal(D, 1.0f);
    c.out = malloc((size_t)B * NP * D * sizeof(float));
    c.R = alloc_normal((size_t)B * NP * D, 1.0f);
    slot s[] = {{"weight", c.w, (size_t)D * K}, {"bias", c.b, (size_t)D}};
    char name[64];
    snprintf(name, sizeof name, "patch embed B=%d C=%d %dx%d P=%d D=%d", B, IC, H, W, P, D);
    run_suite(name, &c, linear_obj, linear_bw, s, 2);
    free(c.img);
    free(c.inp);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.R);
}

/* ---- layernorm ------------------------------------------------------------------------------- */

typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *R;
} ln_ctx;

static double ln_obj(void *p)
{
    ln_ctx *c = p;
    gsq_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
    return dot_r(c->out, c->R, (size_t)c->N * c->C);
}

static void ln_bw(void *p, float **g)
{
    ln_ctx *c = p;
    gsq_layernorm_backward(g[0], g[1], g[2], c->R, c->inp, c->w, c->mean, c->rstd, c->N, c->C);
}

static void test_layernorm(int N, int C)
{
    ln_ctx c = {.N = N, .C = C};
    c.inp = alloc_normal((size_t)N * C, 1.0f);
    c.w = alloc_normal(C, 1.0f);
    c.b = alloc_normal(C, 1.0f);
    c.out = malloc((size_t)N * C * sizeof(float));
    c.mean = malloc(N * sizeof(float));
    c.rstd = malloc(N * sizeof(float));
    c.R = alloc_normal((size_t)N * C, 1.0f);
    slot s[] = {{"inp", c.inp, (size_t)N * C}, {"weight", c.w, (size_t)C}, {"bias", c.b, (size_t)C}};
    char name[64];
    snprintf(name, sizeof name, "layernorm N=%d C=%d", N, C);
    run_suite(name, &c, ln_obj, ln_bw, s, 3);
    free(c.inp);
    free(c.w);
    free(c.b);
    free(c.out);
    free(c.mean);
    free(c.rstd);
    free(c.R);
}

/* ---- gelu ------------------------------------------------------------------------------------ */

typedef struct {
    size_t n;
    float *inp, *out, *R;
} gelu_ctx;

static double gelu_obj(void *p)
{
    gelu_ctx *c = p;
    gsq_gelu_forward(c->out, c->inp, c->n);
    return dot_r(c->out, c->R, c->n);
}

static void gelu_bw(void *p, float **g)
{
    gelu_ctx *c = p;
    gsq_gelu_backward(g[0], c->R, c->inp, c->n);
}

static void test_gelu(size_t n)
{
    gelu_ctx c = {.n = n};
    c.inp = alloc_normal(n, 2.0f);
    c.out = malloc(n * sizeof(float));
    c.R = alloc_normal(n, 1.0f);
    slot s[] = {{"inp", c.inp, n}};
    run_suite("gelu", &c, gelu_obj, gelu_bw, s, 1);
    free(c.inp);
    free(c.out);
    free(c.R);
}

/* Derivative Φ(x) + x φ(x) at many points including large |x|, where finite differences say little:
 * it must be 0 far left, 1 far right, never NaN. Tolerance as the forward's: 2e-6 relative plus
 * 1e-6 absolute (fp32 cancellation in 1 + erf near x ≈ -5); the tanh form is off by ~1e-3. */
static void test_gelu_derivative(void)
{
    enum { NGRID = 2001 };
    static const float extra[] = {0.0f, 20.0f, -20.0f, 50.0f, -50.0f, 1e3f, -1e3f, 1e30f, -1e30f};
    size_t n = NGRID + sizeof extra / sizeof extra[0];
    float *x = malloc(n * sizeof(float)), *ones = malloc(n * sizeof(float)), *d = calloc(n, sizeof(float));
    for (int i = 0; i < NGRID; i++) x[i] = -10.0f + 20.0f * (float)i / (NGRID - 1);
    memcpy(x + NGRID, extra, sizeof extra);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    gsq_gelu_backward(d, ones, x, n);
    int bad = 0;
    float worst_x = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double xd = x[i];
        double pdf = fabs(xd) > 1e10 ? 0.0 : exp(-0.5 * xd * xd) / sqrt(2.0 * 3.14159265358979323846);
        double r = 0.5 * (1.0 + erf(xd / sqrt(2.0))) + xd * pdf;
        double err = fabs((double)d[i] - r), tol = 2e-6 * fabs(r) + 1e-6;
        if (!(err <= tol)) {
            if (!bad || err / tol > worst) {
                worst = err / tol;
                worst_x = x[i];
            }
            bad++;
        }
    }
    CHECK(bad == 0, "gelu derivative: %d of %zu points out of tolerance (worst at x=%g)", bad, n,
          (double)worst_x);
    free(x);
    free(ones);
    free(d);
}

/* ---- attention ------------------------------------------------------------------------------- */

typedef struct {
    int B, T, C, NH;
    float *qkv, *out, *att, *scratch, *R;
    gsq_attn_bias bias; /* table NULL: none */
} att_ctx;

static double att_obj(void *p)
{
    att_ctx *c = p;
    gsq_attention_forward(c->out, c->att, NULL, 0.0f, 0, c->qkv, c->B, c->T, c->C, c->NH,
                          c->bias.table ? &c->bias : NULL);
    return dot_r(c->out, c->R, (size_t)c->B * c->T * c->C);
}

static void att_bw(void *p, float **g)
{
    att_ctx *c = p;
    size_t ns = (size_t)c->B * c->NH * c->T * c->T;
    for (size_t i = 0; i < ns; i++) c->scratch[i] = NAN; /* documented as overwritten */
    gsq_attention_backward(g[0], c->scratch, c->R, c->qkv, c->att, NULL, c->B, c->T, c->C, c->NH,
                           c->bias.table ? &c->bias : NULL, c->bias.table ? g[1] : NULL);
}

/* With a window geometry (grid > 0), Swin's: B images of its windows, T = window², and the
 * relative position bias table's gradient checked too. */
static void test_attention(int B, int T, int C, int NH, gsq_window_geom win)
{
    att_ctx c = {.B = B, .T = T, .C = C, .NH = NH, .bias = {NULL, win}};
    size_t ntable = 0;
    if (win.grid) {
        c.T = T = win.window * win.window;
        c.B = B *= gsq_window_count(win);
        ntable = (size_t)(2 * win.window - 1) * (2 * win.window - 1) * NH;
        c.bias.table = alloc_normal(ntable, 1.0f);
    }
    size_t nqkv = (size_t)B * T * 3 * C, natt = (size_t)B * NH * T * T;
    c.qkv = alloc_normal(nqkv, 1.0f);
    c.out = malloc((size_t)B * T * C * sizeof(float));
    c.att = malloc(natt * sizeof(float));
    c.scratch = malloc(natt * sizeof(float));
    c.R = alloc_normal((size_t)B * T * C, 1.0f);
    slot s[] = {{"qkv", c.qkv, nqkv}, {"relative_position_bias_table", (float *)c.bias.table, ntable}};
    char name[96];
    snprintf(name, sizeof name, "attention B=%d T=%d C=%d NH=%d window %d shift %d", B, T, C, NH, win.window, win.shift);
    run_suite(name, &c, att_obj, att_bw, s, win.grid ? 2 : 1);
    free(c.qkv);
    free(c.out);
    free(c.att);
    free(c.scratch);
    free(c.R);
    free((float *)c.bias.table);
}

/* ---- cross-attention ------------------------------------------------------------------------- */

typedef struct {
    int B, Q, N, C, NH;
    float *q, *kv, *out, *att, *scratch, *R;
} xatt_ctx;

static double xatt_obj(void *p)
{
    xatt_ctx *c = p;
    gsq_cross_attention_forward(c->out, c->att, NULL, 0.0f, 0, c->q, c->kv, c->B, c->Q, c->N, c->C, c->NH);
    return dot_r(c->out, c->R, (size_t)c->B * c->Q * c->C);
}

static void xatt_bw(void *p, float **g)
{
    xatt_ctx *c = p;
    size_t ns = (size_t)c->B * c->NH * c->Q * c->N;
    for (size_t i = 0; i < ns; i++) c->scratch[i] = NAN; /* documented as overwritten */
    gsq_cross_attention_backward(g[0], g[1], c->scratch, c->R, c->q, c->kv, c->att, NULL, c->B, c->Q, c->N, c->C,
                                 c->NH);
}

static void test_cross_attention(int B, int Q, int N, int C, int NH)
{
    xatt_ctx c = {.B = B, .Q = Q, .N = N, .C = C, .NH = NH};
    size_t nq = (size_t)B * Q * C, nkv = (size_t)B * N * 2 * C, natt = (size_t)B * NH * Q * N;
    c.q = alloc_normal(nq, 1.0f);
    c.kv = alloc_normal(nkv, 1.0f);
    c.out = malloc(nq * sizeof(float));
    c.att = malloc(natt * sizeof(float));
    c.scratch = malloc(natt * sizeof(float));
    c.R = alloc_normal(nq, 1.0f);
    slot s[] = {{"q", c.q, nq}, {"kv", c.kv, nkv}};
    char name[96];
    snprintf(name, sizeof name, "cross-attention B=%d Q=%d N=%d C=%d NH=%d", B, Q, N, C, NH);
    run_suite(name, &c, xatt_obj, xatt_bw, s, 2);
    free(c.q);
    free(c.kv);
    free(c.out);
    free(c.att);
    free(c.scratch);
    free(c.R);
}

/* ---- Swin's rearrangements: the window partition, its reverse, patch merging ---------------- */

typedef struct {
    int B, C, G, op; /* op 0: partition, 1: reverse, 2: merge */
    gsq_window_geom w;
    size_t nin, nout;
    float *x, *y, *R;
} rearr_ctx;

static double rearr_obj(void *p)
{
    rearr_ctx *c = p;
    if (c->op == 0) gsq_windows_from_grid(c->y, c->x, c->B, c->C, c->w, 0);
    else if (c->op == 1) gsq_windows_to_grid(c->y, c->x, c->B, c->C, c->w, 0);
    else gsq_merge_forward(c->y, c->x, c->B, c->G, c->C);
    return dot_r(c->y, c->R, c->nout);
}

static void rearr_bw(void *p, float **g)
{
    rearr_ctx *c = p;
    if (!g[0]) return; /* the partition and reverse are each other's backward: no gradient, no call */
    if (c->op == 0) gsq_windows_to_grid(g[0], c->R, c->B, c->C, c->w, 1);
    else if (c->op == 1) gsq_windows_from_grid(g[0], c->R, c->B, c->C, c->w, 1);
    else gsq_merge_backward(g[0], c->R, c->B, c->G, c->C);
}

static void test_rearrange(int op, int B, int C, gsq_window_geom w)
{
    size_t grid = (size_t)B * w.grid * w.grid * C, windows = (size_t)B * gsq_window_count(w) * w.window * w.window * C;
    size_t merged = (size_t)B * ((w.grid + 1) / 2) * ((w.grid + 1) / 2) * 4 * C;
    rearr_ctx c = {.B = B, .C = C, .G = w.grid, .op = op, .w = w, .nin = op == 1 ? windows : grid,
                   .nout = op == 0 ? windows : op == 1 ? grid : merged};
    c.x = alloc_normal(c.nin, 1.0f);
    c.y = malloc(c.nout * sizeof(float));
    c.R = alloc_normal(c.nout, 1.0f);
    slot s[] = {{"x", c.x, c.nin}};
    static const char *const what[] = {"window partition", "window reverse", "patch merging"};
    char name[96];
    snprintf(name, sizeof name, "%s grid %d window %d shift %d", what[op], w.grid, w.window, w.shift);
    run_suite(name, &c, rearr_obj, rearr_bw, s, 1);
    free(c.x);
    free(c.y);
    free(c.R);
}

/* ---- residual add: backward is gsq_accumulate into both inputs' gradients -------------------- */

typedef struct {
    size_t n;
    float *a, *b, *out, *R;
} add_ctx;

static double add_obj(void *p)
{
    add_ctx *c = p;
    gsq_add_forward(c->out, c->a, c->b, c->n);
    return dot_r(c->out, c->R, c->n);
}

static void add_bw(void *p, float **g)
{
    add_ctx *c = p;
    /* a NULL gradient is skipped by the caller here: gsq_accumulate's contract is da += dout */
    if (g[0]) gsq_accumulate(g[0], c->R, c->n);
    if (g[1]) gsq_accumulate(g[1], c->R, c->n);
}

static void test_add(size_t n)
{
    add_ctx c = {.n = n};
    c.a = alloc_normal(n, 1.0f);
    c.b = alloc_normal(n, 1.0f);
    c.out = malloc(n * sizeof(float));
    c.R = alloc_normal(n, 1.0f);
    slot s[] = {{"a", c.a, n}, {"b", c.b, n}};
    run_suite("add / accumulate", &c, add_obj, add_bw, s, 2);
    free(c.a);
    free(c.b);
    free(c.out);
    free(c.R);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

typedef struct {
    int B, NP, D, prefix;
    float *pe, *cls, *dist, *pos, *x, *R;
} tok_ctx;

static double tok_obj(void *p)
{
    tok_ctx *c = p;
    gsq_tokens_forward(c->x, c->pe, c->cls, c->dist, c->pos, c->B, c->NP, c->D);
    return dot_r(c->x, c->R, (size_t)c->B * (c->prefix + c->NP) * c->D);
}

/* slot order: pe, pos, then cls if present, then dist if present */
static void tok_bw(void *p, float **g)
{
    tok_ctx *c = p;
    float *dcls = c->cls ? g[2] : NULL;
    float *ddist = c->dist ? g[c->cls ? 3 : 2] : NULL;
    gsq_tokens_backward(g[0], dcls, ddist, g[1], c->R, c->B, c->NP, c->D, c->prefix);
}

static void test_tokens(int B, int NP, int D, int use_cls, int use_dist)
{
    tok_ctx c = {.B = B, .NP = NP, .D = D, .prefix = use_cls + use_dist};
    int T = c.prefix + NP;
    c.pe = alloc_normal((size_t)B * NP * D, 1.0f);
    c.pos = alloc_normal((size_t)T * D, 1.0f);
    c.cls = use_cls ? alloc_normal(D, 1.0f) : NULL;
    c.dist = use_dist ? alloc_normal(D, 1.0f) : NULL;
    c.x = malloc((size_t)B * T * D * sizeof(float));
    c.R = alloc_normal((size_t)B * T * D, 1.0f);
    slot s[MAX_SLOTS] = {{"pe", c.pe, (size_t)B * NP * D}, {"pos", c.pos, (size_t)T * D}};
    int ns = 2;
    if (use_cls) s[ns++] = (slot){"cls", c.cls, (size_t)D};
    if (use_dist) s[ns++] = (slot){"dist", c.dist, (size_t)D};
    char name[64];
    snprintf(name, sizeof name, "tokens B=%d NP=%d D=%d prefix=%d", B, NP, D, c.prefix);
    run_suite(name, &c, tok_obj, tok_bw, s, ns);
    free(c.pe);
    free(c.pos);
    free(c.cls);
    free(c.dist);
    free(c.x);
    free(c.R);
}

/* ---- pooling --------------------------------------------------------------------------------- */

typedef struct {
    int B, T, D, token, prefix;
    gsq_pool pool;
    float *x, *out, *R;
} pool_ctx;

static double pool_obj(void *p)
{
    pool_ctx *c = p;
    gsq_pool_forward(c->out, c->x, c->B, c->T, c->D, c->pool, c->token, c->prefix);
    return dot_r(c->out, c->R, (size_t)c->B * c->D);
}

static void pool_bw(void *p, float **g)
{
    pool_ctx *c = p;
    gsq_pool_backward(g[0], c->R, c->B, c->T, c->D, c->pool, c->token, c->prefix);
}

static void test_pool(int B, int T, int D, gsq_pool pool, int token, int prefix)
{
    pool_ctx c = {.B = B, .T = T, .D = D, .token = token, .prefix = prefix, .pool = pool};
    c.x = alloc_normal((size_t)B * T * D, 1.0f);
    c.out = malloc((size_t)B * D * sizeof(float));
    c.R = alloc_normal((size_t)B * D, 1.0f);
    slot s[] = {{"x", c.x, (size_t)B * T * D}};
    char name[64];
    snprintf(name, sizeof name, "pool %s B=%d T=%d D=%d tok=%d pre=%d",
             pool == GSQ_POOL_TOKEN ? "token" : "avg", B, T, D, token, prefix);
    run_suite(name, &c, pool_obj, pool_bw, s, 1);
    free(c.x);
    free(c.out);
    free(c.R);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct {
    int B, K;
    float smoothing, dloss;
    int *targets;
    float *logits, *probs;
} ce_ctx;

static double ce_obj(void *p)
{
    ce_ctx *c = p;
    return (double)gsq_cross_entropy_forward(c->probs, c->logits, c->targets, c->B, c->K, c->smoothing) *
           c->dloss;
}

static void ce_bw(void *p, float **g)
{
    ce_ctx *c = p;
    gsq_cross_entropy_backward(g[0], c->probs, c->targets, c->B, c->K, c->smoothing, c->dloss);
}

static void test_cross_entropy(int B, int K, float smoothing)
{
    ce_ctx c = {.B = B, .K = K, .smoothing = smoothing};
    c.dloss = 0.5f + gsq_rng_uniform(&g_rng); /* a random upstream gradient in [0.5, 1.5) */
    c.targets = malloc(B * sizeof(int));
    for (int b = 0; b < B; b++) c.targets[b] = (int)(gsq_rng_u32(&g_rng) % (uint32_t)K);
    c.logits = alloc_normal((size_t)B * K, 2.0f);
    c.probs = malloc((size_t)B * K * sizeof(float));
    slot s[] = {{"logits", c.logits, (size_t)B * K}};
    char name[64];
    snprintf(name, sizeof name, "cross-entropy B=%d K=%d eps=%g", B, K, (double)smoothing);
    run_suite(name, &c, ce_obj, ce_bw, s, 1);
    free(c.targets);
    free(c.logits);
    free(c.probs);
}

int main(void)
{
    gsq_rng_seed(&g_rng, 777, 3);

    test_linear(5, 6, 7, 1);
    test_linear(5, 6, 7, 0);
    test_linear(1, 9, 3, 1); /* batch-1 row */
    test_patch_embed(2, 3, 7, 8, 3, 5); /* H, W not multiples of P */
    test_layernorm(5, 6);
    test_layernorm(1, 13);
    test_gelu(40);
    test_gelu_derivative();
    test_attention(2, 5, 8, 2, (gsq_window_geom){0, 0, 0});
    test_attention(1, 3, 6, 3, (gsq_window_geom){0, 0, 0}); /* head dim 2, batch 1 */
    test_attention(1, 0, 4, 2, (gsq_window_geom){4, 2, 1}); /* shifted windows: the mask */
    test_attention(2, 0, 6, 3, (gsq_window_geom){3, 2, 0}); /* padded, unshifted */
    test_cross_attention(2, 3, 5, 8, 2);
    test_cross_attention(3, 4, 2, 9, 3); /* Q > N, head dim 3, batch 3 */
    test_cross_attention(1, 1, 6, 4, 1); /* one query, one head */
    test_cross_attention(2, 2, 7, 6, 3); /* head dim 2 */
    for (int op = 0; op < 3; op++) {
        test_rearrange(op, 2, 3, (gsq_window_geom){5, 2, 1}); /* padded, shifted; an odd grid to merge */
        test_rearrange(op, 1, 2, (gsq_window_geom){4, 4, 0});
    }
    test_tokens(2, 3, 4, 1, 1);
    test_tokens(2, 3, 4, 1, 0);
    test_tokens(2, 3, 4, 0, 1); /* dist only: its gradient is token 0 */
    test_tokens(1, 4, 3, 0, 0);
    test_pool(2, 6, 4, GSQ_POOL_TOKEN, 0, 2);
    test_pool(2, 6, 4, GSQ_POOL_TOKEN, 1, 2); /* the dist token */
    test_pool(2, 6, 4, GSQ_POOL_AVG, 0, 2);
    test_pool(3, 5, 2, GSQ_POOL_AVG, 0, 0);
    test_cross_entropy(3, 5, 0.1f);
    test_cross_entropy(4, 6, 0.0f);
    test_cross_entropy(1, 4, 0.1f);
    test_add(17);

    return test_finish("test_nn_grad");
}
