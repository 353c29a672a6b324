/* Tests of the dense GEMM: gsq_sgemm (BLAS fast path) against its reference twin gsq_sgemm_ref,
 * and the twin against a plain double triple loop written here. Covers all four transpose
 * combinations, awkward shapes (1x1x1, batch-1 rows, odd sizes, K not a multiple of 64),
 * strided views (leading dimensions larger than the row, as attention's lda = 3C), alpha/beta
 * other than 1/0 (beta = 0 must overwrite NaN garbage), K = 0 (C = beta * C), and that nothing
 * outside the M x N view of C is written and nothing outside the views of A and B is read. */
#include <stdbool.h>
#include <string.h>

#include "gpusq/kernels.h"
#include "test_util.h"

/* The fast path accumulates in fp32: for random normal data its error relative to the largest
 * output grows like sqrt(K) * FLT_EPSILON (about 1e-6 for K = 384) and is bounded by
 * K * FLT_EPSILON = 2.3e-5 in the worst case; a real bug (wrong index, transposed operand, missed
 * beta) gives errors of order 1. */
#define TOL_FAST 2e-5
/* The reference accumulates in double, so the only error left is the final rounding of
 * alpha * s + beta * c to float: a few ulps, i.e. a few 1e-7 relative to the largest output. */
#define TOL_REF 1e-6
/* Value written into C's row padding (between N and ldc); it must survive every call. */
#define SENTINEL 12345.0f

typedef struct {
    bool ta, tb;
    int M, N, K;
    int pad_a, pad_b, pad_c; /* extra elements per stored row beyond the logical row length */
    float alpha, beta;
    bool nan_c; /* fill C with NaN before the call (only meaningful with beta = 0) */
} gemm_case;

typedef struct {
    float *A, *B, *C0;
    int lda, ldb, ldc;
    size_t na, nb, nc;
} operands;

static int imax(int a, int b) { return a > b ? a : b; }

/* Stored shapes: A is (M, K) or, transposed, (K, M); B is (K, N) or (N, K); C is (M, N). */
static void make_operands(operands *o, const gemm_case *c, gsq_rng *rng)
{
    int a_rows = c->ta ? c->K : c->M, a_cols = c->ta ? c->M : c->K;
    int b_rows = c->tb ? c->N : c->K, b_cols = c->tb ? c->K : c->N;
    o->lda = imax(a_cols + c->pad_a, 1);
    o->ldb = imax(b_cols + c->pad_b, 1);
    o->ldc = imax(c->N + c->pad_c, 1);
    o->na = (size_t)imax(a_rows, 1) * o->lda;
    o->nb = (size_t)imax(b_rows, 1) * o->ldb;
    o->nc = (size_t)imax(c->M, 1) * o->ldc;
    o->A = malloc(o->na * sizeof(float));
    o->B = malloc(o->nb * sizeof(float));
    o->C0 = malloc(o->nc * sizeof(float));
    /* Padding of A and B is NaN: a kernel that reads outside the view poisons its output. */
    for (size_t i = 0; i < o->na; i++)
        o->A[i] = ((int)(i % o->lda) < a_cols && (int)(i / o->lda) < a_rows) ? gsq_rng_normal(rng) : NAN;
    for (size_t i = 0; i < o->nb; i++)
        o->B[i] = ((int)(i % o->ldb) < b_cols && (int)(i / o->ldb) < b_rows) ? gsq_rng_normal(rng) : NAN;
    for (size_t i = 0; i < o->nc; i++) {
        if ((int)(i % o->ldc) >= c->N) o->C0[i] = SENTINEL;
        else o->C0[i] = c->nan_c ? NAN : gsq_rng_normal(rng);
    }
}

static void free_operands(operands *o)
{
    free(o->A);
    free(o->B);
    free(o->C0);
}

/* C (M, N) = alpha * op(A) op(B) + beta * C0 in double; beta = 0 ignores C0 (BLAS semantics). */
static void gemm_double(double *out, bool ta, bool tb, int M, int N, int K, double alpha,
                        const float *A, int lda, const float *B, int ldb, double beta,
                        const float *C0, int ldc)
{
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
            }
            double v = alpha * s;
            if (beta != 0) v += beta * C0[(size_t)i * ldc + j];
            out[(size_t)i * N + j] = v;
        }
    }
}

/* Copies the (M, N) view of C (row stride ldc) into a dense array. */
static void gather(float *dst, const float *C, int M, int N, int ldc)
{
    for (int i = 0; i < M; i++) memcpy(dst + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * sizeof(float));
}

/* 1 if the padding of C (columns N..ldc) still holds SENTINEL everywhere. */
static int padding_intact(const float *C, int M, int N, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            if (C[(size_t)i * ldc + j] != SENTINEL) return 0;
    return 1;
}

static void run_case(const gemm_case *c, gsq_rng *rng)
{
    operands o;
    make_operands(&o, c, rng);
    size_t mn = (size_t)c->M * c->N;
    float *C_fast = malloc(o.nc * sizeof(float)), *C_ref = malloc(o.nc * sizeof(float));
    float *v_fast = malloc((mn ? mn : 1) * sizeof(float)), *v_ref = malloc((mn ? mn : 1) * sizeof(float));
    float *v_dbl = malloc((mn ? mn : 1) * sizeof(float));
    double *d = malloc((mn ? mn : 1) * sizeof(double));
    memcpy(C_fast, o.C0, o.nc * sizeof(float));
    memcpy(C_ref, o.C0, o.nc * sizeof(float));

    gsq_sgemm(c->ta, c->tb, c->M, c->N, c->K, c->alpha, o.A, o.lda, o.B, o.ldb, c->beta, C_fast, o.ldc);
    gsq_sgemm_ref(c->ta, c->tb, c->M, c->N, c->K, c->alpha, o.A, o.lda, o.B, o.ldb, c->beta, C_ref, o.ldc);
    gemm_double(d, c->ta, c->tb, c->M, c->N, c->K, c->alpha, o.A, o.lda, o.B, o.ldb, c->beta, o.C0, o.ldc);
    for (size_t i = 0; i < mn; i++) v_dbl[i] = (float)d[i];
    gather(v_fast, C_fast, c->M, c->N, o.ldc);
    gather(v_ref, C_ref, c->M, c->N, o.ldc);

    char tag[160];
    snprintf(tag, sizeof tag, "%c%c M=%d N=%d K=%d lda=%d ldb=%d ldc=%d alpha=%g beta=%g%s",
             c->ta ? 'T' : 'N', c->tb ? 'T' : 'N', c->M, c->N, c->K, o.lda, o.ldb, o.ldc,
             (double)c->alpha, (double)c->beta, c->nan_c ? " (NaN in C)" : "");
    double e_ref = max_rel_err(v_ref, v_dbl, mn);
    double e_fast = max_rel_err(v_fast, v_ref, mn);
    /* K = 0 with beta = 0: the exact answer is all zeros, so the relative error is undefined;
     * check exact zeros instead. */
    if (c->K == 0 && c->beta == 0) {
        int zf = 1, zr = 1;
        for (size_t i = 0; i < mn; i++) {
            if (v_fast[i] != 0) zf = 0;
            if (v_ref[i] != 0) zr = 0;
        }
        CHECK(zf, "%s: gsq_sgemm did not write zeros", tag);
        CHECK(zr, "%s: gsq_sgemm_ref did not write zeros", tag);
    } else {
        CHECK(e_ref <= TOL_REF, "%s: ref vs double loop max rel err %.3e", tag, e_ref);
        CHECK(e_fast <= TOL_FAST, "%s: fast vs ref max rel err %.3e", tag, e_fast);
    }
    CHECK(padding_intact(C_fast, c->M, c->N, o.ldc), "%s: gsq_sgemm wrote into C's padding", tag);
    CHECK(padding_intact(C_ref, c->M, c->N, o.ldc), "%s: gsq_sgemm_ref wrote into C's padding", tag);

    free(C_fast);
    free(C_ref);
    free(v_fast);
    free(v_ref);
    free(v_dbl);
    free(d);
    free_operands(&o);
}

/* Attention-style views into one packed qkv buffer (T, 3C): scores (T, T) = q kᵀ for one head,
 * with q and k strided views (lda = ldb = 3C) at different offsets of the same buffer, then
 * out (T, HD) = att v, written into a (T, C) buffer at a head offset with ldc = C. */
static void attention_views(gsq_rng *rng)
{
    const int T = 197, C = 64, HD = 16, h = 2;
    float *qkv = malloc((size_t)T * 3 * C * sizeof(float));
    fill_normal(qkv, (size_t)T * 3 * C, rng, 1.0f);
    const float *q = qkv + h * HD, *k = qkv + C + h * HD, *v = qkv + 2 * C + h * HD;
    float *s_fast = malloc((size_t)T * T * sizeof(float)), *s_ref = malloc((size_t)T * T * sizeof(float));
    gsq_sgemm(false, true, T, T, HD, 0.25f, q, 3 * C, k, 3 * C, 0.0f, s_fast, T);
    gsq_sgemm_ref(false, true, T, T, HD, 0.25f, q, 3 * C, k, 3 * C, 0.0f, s_ref, T);
    double e = max_rel_err(s_fast, s_ref, (size_t)T * T);
    CHECK(e <= TOL_FAST, "attention scores q kT (lda=ldb=3C): fast vs ref %.3e", e);

    float *o_fast = malloc((size_t)T * C * sizeof(float)), *o_ref = malloc((size_t)T * C * sizeof(float));
    for (int i = 0; i < T * C; i++) o_fast[i] = o_ref[i] = SENTINEL;
    gsq_sgemm(false, false, T, HD, T, 1.0f, s_ref, T, v, 3 * C, 0.0f, o_fast + h * HD, C);
    gsq_sgemm_ref(false, false, T, HD, T, 1.0f, s_ref, T, v, 3 * C, 0.0f, o_ref + h * HD, C);
    float *g_fast = malloc((size_t)T * HD * sizeof(float)), *g_ref = malloc((size_t)T * HD * sizeof(float));
    gather(g_fast, o_fast + h * HD, T, HD, C);
    gather(g_ref, o_ref + h * HD, T, HD, C);
    e = max_rel_err(g_fast, g_ref, (size_t)T * HD);
    CHECK(e <= TOL_FAST, "attention att v (ldb=3C, ldc=C, head offset): fast vs ref %.3e", e);
    int intact = 1;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < C; j++)
            if ((j < h * HD || j >= (h + 1) * HD) && (o_fast[t * C + j] != SENTINEL || o_ref[t * C + j] != SENTINEL))
                intact = 0;
    CHECK(intact, "attention att v: columns of other heads were written");
    free(qkv);
    free(s_fast);
    free(s_ref);
    free(o_fast);
    free(o_ref);
    free(g_fast);
    free(g_ref);
}

/* Same inputs and thread count → same bits (the project's determinism rule). */
static void determinism(gsq_rng *rng)
{
    const int M = 256, N = 384, K = 192;
    float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
    float *C1 = malloc((size_t)M * N * sizeof(float)), *C2 = malloc((size_t)M * N * sizeof(float));
    fill_normal(A, (size_t)M * K, rng, 1.0f);
    fill_normal(B, (size_t)K * N, rng, 1.0f);
    gsq_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    gsq_sgemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    CHECK(memcmp(C1, C2, (size_t)M * N * sizeof(float)) == 0, "gsq_sgemm is not deterministic");
    free(A);
    free(B);
    free(C1);
    free(C2);
}

static void threads(void)
{
    int before = gsq_get_num_threads();
    CHECK(before >= 1, "gsq_get_num_threads() = %d", before);
    gsq_set_num_threads(1);
    CHECK(gsq_get_num_threads() == 1, "after set(1): %d", gsq_get_num_threads());
    gsq_set_num_threads(0); /* n <= 0 leaves the setting as it is */
    CHECK(gsq_get_num_threads() == 1, "after set(0): %d", gsq_get_num_threads());
    gsq_set_num_threads(before);
    CHECK(gsq_get_num_threads() == before, "restoring %d: %d", before, gsq_get_num_threads());
}

int main(void)
{
    gsq_rng rng;
    gsq_rng_seed(&rng, 1234, 1);
    const char *name = gsq_blas_name();
    CHECK(name != NULL && name[0] != '\0', "gsq_blas_name() is empty");
    printf("BLAS: %s, %d threads\n", name ? name : "(null)", gsq_get_num_threads());

    /* Shapes and strides run for every transpose combination. */
    const gemm_case shapes[] = {
        {.M = 1, .N = 1, .K = 1, .alpha = 1, .beta = 0},
        {.M = 1, .N = 384, .K = 192, .alpha = 1, .beta = 0},  /* one row: batch 1 through a linear */
        {.M = 37, .N = 1, .K = 29, .alpha = 1, .beta = 0},    /* one column */
        {.M = 7, .N = 13, .K = 5, .alpha = 1, .beta = 0},     /* odd sizes */
        {.M = 197, .N = 96, .K = 65, .alpha = 1, .beta = 0},  /* K not a multiple of 64 */
        {.M = 256, .N = 384, .K = 192, .alpha = 1, .beta = 0},
        {.M = 50, .N = 24, .K = 16, .pad_a = 32, .pad_b = 17, .pad_c = 5, .alpha = 1, .beta = 0},
        {.M = 9, .N = 11, .K = 70, .pad_a = 3, .pad_b = 1, .pad_c = 2, .alpha = -0.5f, .beta = 1},
        {.M = 33, .N = 17, .K = 19, .pad_c = 4, .alpha = 1.5f, .beta = 0, .nan_c = true},
        {.M = 12, .N = 10, .K = 8, .pad_a = 1, .alpha = 0.25f, .beta = -2},
        {.M = 5, .N = 6, .K = 0, .pad_c = 3, .alpha = 1, .beta = 0.5f},               /* C = beta C */
        {.M = 4, .N = 3, .K = 0, .pad_c = 1, .alpha = 1, .beta = 0, .nan_c = true},   /* C = 0 */
    };
    for (int t = 0; t < 4; t++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            gemm_case c = shapes[s];
            c.ta = t & 1;
            c.tb = (t >> 1) & 1;
            run_case(&c, &rng);
        }
    }
    attention_views(&rng);
    determinism(&rng);
    threads();
    return test_finish("test_gemm");
}
