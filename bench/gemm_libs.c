/* gemm_libs: times row-major fp32 GEMM C = op(A)·op(B) of one BLAS-like library on the shapes of a
 * ViT/DeiT training step, to choose the library gpusq links (results: docs/BENCHMARKS.md).
 *
 * One source, one executable per library, chosen at compile time so exported symbols never clash:
 *   -DGEMM_LIB_OPENBLAS  cblas_sgemm (OpenMP or pthread build: whichever is loaded is reported)
 *   -DGEMM_LIB_DNNL      oneDNN dnnl_sgemm
 *   -DGEMM_LIB_BLIS      BLIS native bli_sgemm
 * Does not link libgpusq.
 *
 * Shapes, for deit_tiny (D=192) and deit_small (D=384), T=197 tokens, batch B in {1, 32}, M = B*T:
 *   fwd  Y  = X·Wᵀ   (M, N) inner K   A=X (M,K), B=W (N,K) transposed
 *   dX   dX = dY·W   (M, K) inner N   no transpose
 *   dW   dW = dYᵀ·X  (N, K) inner M   A=dY (M,N) transposed
 * for qkv (N=3D, K=D), proj (N=D, K=D), fc1 (N=4D, K=D), fc2 (N=D, K=4D) and the patch embedding
 * (N=D, K=3*16*16=768, M=B*196); plus the per-head attention matmuls (head dim 64): S = Q·Kᵀ
 * (T,T,64), O = P·V (T,64,T) and dV = Pᵀ·dO (T,64,T). Each result is checked against a naive
 * double-accumulated product on the batch-1 and attention shapes. A last experiment (N > 1 threads)
 * times many heads: one library-threaded call per head, against an omp parallel for over heads
 * with single-threaded calls (see run_heads).
 *
 * Every row also reports `bg`: the share of the machine's CPUs busy with other processes while
 * that row was measured (from /proc/stat minus this process's own CPU time); a row measured while
 * bg > --max-bg is redone (up to --tries times) and the quietest attempt kept.
 *
 * Usage: gemm_<lib> [--threads N] [--csv] [--no-check] [--no-heads] [--min-time S] [--max-bg F]
 *                   [--tries N]   (a row measured while bg > F is redone, up to N times)
 * Threads: N (default: OMP_NUM_THREADS, else 1) is set through the library's API and
 * omp_set_num_threads; run with OMP_NUM_THREADS=N as well so every runtime agrees. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#if defined(GEMM_LIB_OPENBLAS)
#include <cblas.h>
/* OpenBLAS extensions, declared here in case cblas.h is the netlib one (same ABI for sgemm). */
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_parallel(void);
#elif defined(GEMM_LIB_DNNL)
#include <oneapi/dnnl/dnnl.h>
#elif defined(GEMM_LIB_BLIS)
#include <blis.h>
#else
#error "define one of GEMM_LIB_OPENBLAS, GEMM_LIB_DNNL, GEMM_LIB_BLIS"
#endif

/* ---------------------------------------------------------------- library adapters */

static char g_label[32];  /* short name for tables: openblas-omp, openblas-pthread, dnnl, blis */
static char g_info[256];  /* build and dispatch details, printed as a comment */

#if defined(GEMM_LIB_OPENBLAS)
static void lib_init(void)
{
    int par = openblas_get_parallel(); /* 0 sequential, 1 pthreads, 2 OpenMP */
    snprintf(g_label, sizeof g_label, "%s",
             par == 2 ? "openblas-omp" : par == 1 ? "openblas-pthread" : "openblas-seq");
    snprintf(g_info, sizeof g_info, "OpenBLAS core=%s config=%s", openblas_get_corename(),
             openblas_get_config());
}
static void lib_set_threads(int n)
{
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
}
static void lib_sgemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
                      int ldb, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m,
                n, k, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}
#elif defined(GEMM_LIB_DNNL)
static void lib_init(void)
{
    const dnnl_version_t *v = dnnl_version();
    dnnl_fpmath_mode_t fm = dnnl_fpmath_mode_strict;
    dnnl_get_default_fpmath_mode(&fm);
    const char *fms = fm == dnnl_fpmath_mode_strict ? "strict"
                      : fm == dnnl_fpmath_mode_bf16 ? "bf16"
                      : fm == dnnl_fpmath_mode_f16  ? "f16"
                                                    : "any";
    snprintf(g_label, sizeof g_label, "dnnl");
    snprintf(g_info, sizeof g_info, "oneDNN %d.%d.%d cpu_runtime=%s isa=0x%x default_fpmath=%s",
             v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "other",
             (unsigned)dnnl_get_effective_cpu_isa(), fms);
}
static void lib_set_threads(int n) { omp_set_num_threads(n); }
static void lib_sgemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
                      int ldb, float *C, int ldc)
{
    dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, A, lda, B, ldb,
                                  0.0f, C, ldc);
    if (st != dnnl_success) {
        fprintf(stderr, "dnnl_sgemm failed (status %d) on %dx%dx%d\n", (int)st, m, n, k);
        exit(1);
    }
}
#elif defined(GEMM_LIB_BLIS)
static void lib_init(void)
{
    snprintf(g_label, sizeof g_label, "blis");
    snprintf(g_info, sizeof g_info, "BLIS %s arch=%s", bli_info_get_version_str(),
             bli_arch_string(bli_arch_query_id()));
}
static void lib_set_threads(int n)
{
    bli_thread_set_num_threads(n);
    omp_set_num_threads(n);
}
static void lib_sgemm(int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B,
                      int ldb, float *C, int ldc)
{
    float one = 1.0f, zero = 0.0f;
    bli_sgemm(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m,
              n, k, &one, (float *)A, lda, 1, (float *)B, ldb, 1, &zero, C, ldc, 1);
}
#endif

/* ---------------------------------------------------------------- shapes */

typedef struct {
    const char *model; /* deit_tiny, deit_small, attn */
    int batch;
    const char *layer; /* qkv, proj, fc1, fc2, patch, qk, pv, pTdo */
    const char *pass;  /* fwd, dX, dW (attention: fwd, bwd) */
    int ta, tb;        /* op(A) = Aᵀ, op(B) = Bᵀ */
    int m, n, k;       /* C (m, n) = op(A) (m, k) · op(B) (k, n) */
} shape_t;

enum { MAX_SHAPES = 128, T_TOK = 197, T_PATCH = 196, HEAD_DIM = 64, PATCH_K = 768 };

/* Adds the three GEMMs of a linear layer Y (M,N) = X (M,K) · Wᵀ, W (N,K), and its backward. */
static int add_linear(shape_t *s, int n, const char *model, int batch, const char *layer, int M,
                      int N, int K)
{
    s[n++] = (shape_t){model, batch, layer, "fwd", 0, 1, M, N, K};
    s[n++] = (shape_t){model, batch, layer, "dX", 0, 0, M, K, N};
    s[n++] = (shape_t){model, batch, layer, "dW", 1, 0, N, K, M};
    return n;
}

static int build_shapes(shape_t *s)
{
    static const struct { const char *name; int d; } models[] = {{"deit_tiny", 192},
                                                                  {"deit_small", 384}};
    static const int batches[] = {1, 32};
    int n = 0;
    for (int mi = 0; mi < 2; mi++) {
        for (int bi = 0; bi < 2; bi++) {
            const char *mo = models[mi].name;
            int D = models[mi].d, B = batches[bi], M = B * T_TOK;
            n = add_linear(s, n, mo, B, "patch", B * T_PATCH, D, PATCH_K);
            n = add_linear(s, n, mo, B, "qkv", M, 3 * D, D);
            n = add_linear(s, n, mo, B, "proj", M, D, D);
            n = add_linear(s, n, mo, B, "fc1", M, 4 * D, D);
            n = add_linear(s, n, mo, B, "fc2", M, D, 4 * D);
        }
    }
    s[n++] = (shape_t){"attn", 1, "qk", "fwd", 0, 1, T_TOK, T_TOK, HEAD_DIM};
    s[n++] = (shape_t){"attn", 1, "pv", "fwd", 0, 0, T_TOK, HEAD_DIM, T_TOK};
    s[n++] = (shape_t){"attn", 1, "pTdo", "bwd", 1, 0, T_TOK, HEAD_DIM, T_TOK};
    return n;
}

/* ---------------------------------------------------------------- helpers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Background load meter: CPU seconds used by the whole machine (/proc/stat, excluding idle and
 * iowait) and by this process (getrusage), and the wall clock; the share of the machine used by
 * others between two samples is (Δmachine - Δself) / (Δwall · ncpu). */
typedef struct {
    double wall, machine, self;
} load_t;

static load_t load_sample(void)
{
    load_t l = {now_s(), -1.0, 0.0};
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    if (f) {
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8)
            l.machine = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
                        (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    l.self = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
             (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    return l;
}

/* Share of all CPUs busy with other processes between a and b (0..1), or -1 if unknown. */
static double load_background(load_t a, load_t b)
{
    double wall = b.wall - a.wall;
    if (a.machine < 0 || b.machine < 0 || wall <= 0) return -1.0;
    double bg = ((b.machine - a.machine) - (b.self - a.self)) / (wall * omp_get_num_procs());
    return bg < 0 ? 0.0 : bg;
}

static float *alloc_f(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static void fill_uniform(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((double)(g_rng >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Stored sizes of A and B for a shape, row-major with tight leading dimensions. */
static void operand_dims(const shape_t *s, int *lda, int *ldb, size_t *na, size_t *nb)
{
    *lda = s->ta ? s->m : s->k; /* A stored (k, m) when transposed, else (m, k) */
    *ldb = s->tb ? s->k : s->n; /* B stored (n, k) when transposed, else (k, n) */
    *na = (size_t)s->m * s->k;
    *nb = (size_t)s->k * s->n;
}

/* Max over C of |C - ref| / Σ_k |a||b|, with ref accumulated in double: ~1e-8 for exact fp32,
 * ~1e-4 if the library rounded inputs to bf16. */
static double check_shape(const shape_t *s, const float *A, int lda, const float *B, int ldb,
                          const float *C)
{
    int m = s->m, n = s->n, k = s->k;
    double *acc = malloc(sizeof(double) * 2 * (size_t)n), *aacc = acc + n;
    double worst = 0.0;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) acc[j] = aacc[j] = 0.0;
        for (int p = 0; p < k; p++) {
            double a = s->ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p];
            if (s->tb) {
                for (int j = 0; j < n; j++) {
                    double b = B[(size_t)j * ldb + p];
                    acc[j] += a * b;
                    aacc[j] += fabs(a * b);
                }
            } else {
                const float *brow = B + (size_t)p * ldb;
                for (int j = 0; j < n; j++) {
                    acc[j] += a * brow[j];
                    aacc[j] += fabs(a * brow[j]);
                }
            }
        }
        for (int j = 0; j < n; j++) {
            double e = fabs((double)C[(size_t)i * n + j] - acc[j]) / (aacc[j] > 0 ? aacc[j] : 1);
            if (e > worst) worst = e;
        }
    }
    free(acc);
    return worst;
}

/* ---------------------------------------------------------------- timing */

typedef struct {
    double sec;    /* median seconds per call */
    double gflops; /* flops / sec */
    double bg;     /* background load while measured (see load_background), -1 unknown */
    int reps, inner, tries;
} timing_t;

typedef void (*run_fn)(const void *ctx);

/* Warm-up, then `reps` timed repetitions of `inner` calls each (inner chosen so one repetition
 * lasts >= 2 ms), reps in [5, 51] chosen to spend about min_time seconds; median per call. */
static timing_t time_once(run_fn run, const void *ctx, double flops, double min_time)
{
    timing_t t = {0};
    run(ctx);
    double t0 = now_s();
    run(ctx);
    double one = now_s() - t0;
    if (one < 1e-7) one = 1e-7;
    t.inner = one >= 2e-3 ? 1 : (int)ceil(2e-3 / one);
    t.reps = (int)ceil(min_time / (one * t.inner));
    if (t.reps < 5) t.reps = 5;
    if (t.reps > 51) t.reps = 51;
    double *v = malloc(sizeof(double) * (size_t)t.reps);
    load_t l0 = load_sample();
    for (int r = 0; r < t.reps; r++) {
        double a = now_s();
        for (int i = 0; i < t.inner; i++) run(ctx);
        v[r] = (now_s() - a) / t.inner;
    }
    t.bg = load_background(l0, load_sample());
    qsort(v, (size_t)t.reps, sizeof(double), cmp_double);
    t.sec = v[t.reps / 2];
    t.gflops = flops / t.sec * 1e-9;
    free(v);
    return t;
}

/* time_once, repeated (after a 1 s pause) while other processes used more than max_bg of the
 * CPUs, at most `tries` times; keeps the quietest attempt. */
static timing_t time_quiet(run_fn run, const void *ctx, double flops, double min_time,
                           double max_bg, int tries)
{
    timing_t best = {0};
    for (int i = 0; i < tries; i++) {
        if (i > 0) nanosleep(&(struct timespec){1, 0}, NULL);
        timing_t t = time_once(run, ctx, flops, min_time);
        t.tries = i + 1;
        if (i == 0 || t.bg < best.bg) best = t;
        best.tries = i + 1;
        if (t.bg <= max_bg) break;
    }
    return best;
}

typedef struct {
    const shape_t *s;
    const float *A, *B;
    float *C;
    int lda, ldb;
} shape_ctx_t;

static void run_shape(const void *p)
{
    const shape_ctx_t *c = p;
    lib_sgemm(c->s->ta, c->s->tb, c->s->m, c->s->n, c->s->k, c->A, c->lda, c->B, c->ldb, c->C,
              c->s->n);
}

/* ---------------------------------------------------------------- many heads */

/* nh heads, each: S (T,T) = Q (T,64) · Kᵀ, then O (T,64) = S · V. mode 0 (loop_mt): a loop over
 * heads, each call threaded by the library; mode 1 (ompfor_st): omp parallel for over heads with
 * the library set to 1 thread by the caller; mode 2 (ompfor_auto): the same parallel for with the
 * library left at N threads, as gpusq would call it: the library must notice it runs inside a
 * parallel region and not oversubscribe. */
typedef struct {
    int mode, nh, nthreads;
    const float *Q, *K, *V;
    float *S, *O;
} heads_ctx_t;

static void run_heads(const void *p)
{
    const heads_ctx_t *c = p;
    const size_t qs = (size_t)T_TOK * HEAD_DIM, ss = (size_t)T_TOK * T_TOK;
    if (c->mode == 0) {
        for (int h = 0; h < c->nh; h++) {
            lib_sgemm(0, 1, T_TOK, T_TOK, HEAD_DIM, c->Q + h * qs, HEAD_DIM, c->K + h * qs,
                      HEAD_DIM, c->S + h * ss, T_TOK);
            lib_sgemm(0, 0, T_TOK, HEAD_DIM, T_TOK, c->S + h * ss, T_TOK, c->V + h * qs,
                      HEAD_DIM, c->O + h * qs, HEAD_DIM);
        }
    } else {
#pragma omp parallel for schedule(static) num_threads(c->nthreads)
        for (int h = 0; h < c->nh; h++) {
            lib_sgemm(0, 1, T_TOK, T_TOK, HEAD_DIM, c->Q + h * qs, HEAD_DIM, c->K + h * qs,
                      HEAD_DIM, c->S + h * ss, T_TOK);
            lib_sgemm(0, 0, T_TOK, HEAD_DIM, T_TOK, c->S + h * ss, T_TOK, c->V + h * qs,
                      HEAD_DIM, c->O + h * qs, HEAD_DIM);
        }
    }
}

/* ---------------------------------------------------------------- main */

static void print_row(int csv, int threads, const char *model, int batch, const char *layer,
                      const char *pass, const char *trans, int m, int n, int k, timing_t t,
                      double err)
{
    char errs[32] = "";
    if (err >= 0) snprintf(errs, sizeof errs, "%.1e", err);
    if (csv)
        printf("%s,%d,%s,%d,%s,%s,%s,%d,%d,%d,%.4f,%.2f,%d,%.2f,%d,%s\n", g_label, threads, model,
               batch, layer, pass, trans, m, n, k, t.sec * 1e3, t.gflops, t.reps * t.inner, t.bg,
               t.tries, errs);
    else
        printf("%-16s %2d  %-10s %3d  %-8s %-11s %-2s %6d %6d %6d %10.3f %8.1f %5.2f %2d  %s\n",
               g_label, threads, model, batch, layer, pass, trans, m, n, k, t.sec * 1e3, t.gflops,
               t.bg, t.tries, errs);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int csv = 0, check = 1, heads = 1, threads = 0, tries = 5;
    double min_time = 0.2, max_bg = 0.10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv")) csv = 1;
        else if (!strcmp(argv[i], "--no-check")) check = 0;
        else if (!strcmp(argv[i], "--no-heads")) heads = 0;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--max-bg") && i + 1 < argc) max_bg = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tries") && i + 1 < argc) tries = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--csv] [--no-check] [--no-heads] "
                            "[--min-time S] [--max-bg F] [--tries N]\n", argv[0]);
            return 2;
        }
    }
    if (threads <= 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        threads = e && atoi(e) > 0 ? atoi(e) : 1;
    }
    if (tries < 1) tries = 1;
    lib_init();
    lib_set_threads(threads);

    shape_t shapes[MAX_SHAPES];
    int ns = build_shapes(shapes);
    size_t max_a = 0, max_b = 0, max_c = 0;
    for (int i = 0; i < ns; i++) {
        size_t mc = (size_t)shapes[i].m * shapes[i].n, ma = (size_t)shapes[i].m * shapes[i].k,
               mb = (size_t)shapes[i].k * shapes[i].n;
        if (ma > max_a) max_a = ma;
        if (mb > max_b) max_b = mb;
        if (mc > max_c) max_c = mc;
    }
    float *A = alloc_f(max_a), *B = alloc_f(max_b), *C = alloc_f(max_c);
    fill_uniform(A, max_a);
    fill_uniform(B, max_b);

    printf("# %s: %s\n# threads=%d OMP_NUM_THREADS=%s omp_get_max_threads=%d min_time=%g "
           "max_bg=%g tries=%d\n", g_label, g_info, threads,
           getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "(unset)",
           omp_get_max_threads(), min_time, max_bg, tries);
    if (csv)
        printf("lib,threads,model,batch,layer,pass,trans,M,N,K,ms,gflops,calls,bg,tries,err\n");
    else
        printf("%-16s %2s  %-10s %3s  %-8s %-11s %-2s %6s %6s %6s %10s %8s %5s %2s  %s\n", "lib",
               "th", "model", "B", "layer", "pass", "tr", "M", "N", "K", "ms", "GFLOP/s", "bg",
               "tr", "check");

    double worst = 0.0, bg_max = 0.0;
    int checked = 0;
    load_t run0 = load_sample();
    for (int i = 0; i < ns; i++) {
        const shape_t *s = &shapes[i];
        shape_ctx_t c = {s, A, B, C, 0, 0};
        size_t na, nb;
        operand_dims(s, &c.lda, &c.ldb, &na, &nb);
        timing_t t = time_quiet(run_shape, &c, 2.0 * s->m * (double)s->n * s->k, min_time,
                                max_bg, tries);
        if (t.bg > bg_max) bg_max = t.bg;
        double err = -1.0;
        if (check && s->batch == 1) {
            err = check_shape(s, A, c.lda, B, c.ldb, C);
            if (err > worst) worst = err;
            checked++;
        }
        char trans[3] = {s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', 0};
        print_row(csv, threads, s->model, s->batch, s->layer, s->pass, trans, s->m, s->n, s->k,
                  t, err);
    }
    free(A);
    free(B);
    free(C);

    if (heads && threads > 1) {
        static const int nhs[] = {6, 192}; /* deit_small heads at batch 1 and batch 32 */
        int nh_max = 192;
        size_t qs = (size_t)T_TOK * HEAD_DIM * nh_max, ss = (size_t)T_TOK * T_TOK * nh_max;
        float *Q = alloc_f(qs), *K = alloc_f(qs), *V = alloc_f(qs), *S = alloc_f(ss),
              *O = alloc_f(qs);
        fill_uniform(Q, qs);
        fill_uniform(K, qs);
        fill_uniform(V, qs);
        for (int j = 0; j < 2; j++) {
            for (int mode = 0; mode < 3; mode++) {
                static const char *names[] = {"loop_mt", "ompfor_st", "ompfor_auto"};
                heads_ctx_t c = {mode, nhs[j], threads, Q, K, V, S, O};
                lib_set_threads(mode == 1 ? 1 : threads);
                timing_t t = time_quiet(run_heads, &c,
                                        nhs[j] * 4.0 * T_TOK * (double)T_TOK * HEAD_DIM,
                                        min_time, max_bg, tries);
                lib_set_threads(threads);
                if (t.bg > bg_max) bg_max = t.bg;
                char layer[16];
                snprintf(layer, sizeof layer, "heads%d", nhs[j]);
                print_row(csv, threads, "attn", nhs[j] / 6, layer, names[mode], "NT", T_TOK, T_TOK,
                          HEAD_DIM, t, -1.0);
            }
        }
        free(Q);
        free(K);
        free(V);
        free(S);
        free(O);
    }

    printf("# background load %s: mean %.3f, worst kept row %.3f of %d cpus (other processes)\n",
           g_label, load_background(run0, load_sample()), bg_max, omp_get_num_procs());
    if (check) {
        int ok = worst < 1e-5;
        printf("# check %s: %d shapes vs naive double product, max |C-ref|/sum|a*b| = %.2e (%s)\n",
               g_label, checked, worst, ok ? "OK: exact fp32" : "FAIL: precision lowered?");
        return ok ? 0 : 1;
    }
    return 0;
}
