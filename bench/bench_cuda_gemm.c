/* bench_cuda_gemm: the ViT GEMMs on the GPU. Our 2:4 INT8 kernel (mma.sp) and dense INT8 kernel
 * (mma), both with their fused float epilogue (scale, bias), against cuBLASLt dense INT8 (int32
 * out) and FP16 (fp32 accumulation), in dense-equivalent GMAC/s (M·N·K per second, also for the
 * sparse kernel) and as ratios to cuBLASLt INT8. Shapes: qkv, proj, fc1, fc2 of deit_small
 * (D 384) and deit_base (D 768) at M = batch × 197 tokens. Before timing a shape, our sparse and
 * dense int32 sums are checked equal to cuBLASLt INT8's on the same codes (exit 1 if not).
 * Without a GPU it says so and exits 0.
 *
 * Usage: bench_cuda_gemm [--reps R] [--batch B]... (default batches 1 32 64) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpusq/clock.h"
#include "gpusq/cuda.h"
#include "gpusq/half.h"
#include "gpusq/rng.h"
#include "gpusq/sparse.h"

/* One shape's device buffers and plans. */
typedef struct {
    int M, N, K;
    gsq_cuda_i8_weight *sparse, *dense;
    gsq_cuda_blas *blas_i8, *blas_f16;
    int8_t *x, *w;       /* int8 codes: activations (M, K), the pruned weight (N, K) */
    uint16_t *xh, *wh;   /* the same as fp16 */
    float *scale, *bias; /* (N) */
    void *y;             /* (M, N) of 4-byte outputs */
    uint16_t *yh;
} bench_shape;

typedef enum { RUN_SPARSE, RUN_DENSE, RUN_BLAS_I8, RUN_BLAS_F16, RUN_KINDS } run_kind;
static const char *const kind_names[RUN_KINDS] = {"ours 2:4", "ours dense", "cuBLASLt I8", "cuBLASLt F16"};

static void die(const gsq_error *err)
{
    fprintf(stderr, "bench_cuda_gemm: %s\n", err->msg);
    exit(1);
}

/* Launches one GEMM of kind k (asynchronously); out selects our kernels' output form. */
static void launch(bench_shape *s, run_kind k, gsq_cuda_out out)
{
    gsq_error err = {0};
    gsq_cuda_epilogue e = {.out = out, .scale = s->scale, .bias = s->bias};
    gsq_status st = GSQ_OK;
    if (k == RUN_SPARSE || k == RUN_DENSE)
        st = gsq_cuda_i8_gemm(k == RUN_SPARSE ? s->sparse : s->dense, s->x, s->K, s->M, &e, s->y, s->N, &err);
    else if (k == RUN_BLAS_I8)
        st = gsq_cuda_blas_run(s->blas_i8, s->x, s->w, s->y, &err);
    else
        st = gsq_cuda_blas_run(s->blas_f16, s->xh, s->wh, s->yh, &err);
    if (st != GSQ_OK) die(&err);
}

static void sync_or_die(void)
{
    gsq_error err = {0};
    if (gsq_cuda_synchronize(&err) != GSQ_OK) die(&err);
}

/* Seconds per GEMM: enough back-to-back launches for ~20 ms, the best of reps such batches. */
static double time_kind(bench_shape *s, run_kind k, int reps)
{
    for (int i = 0; i < 3; i++) launch(s, k, GSQ_CUDA_OUT_F32);
    sync_or_die();
    double t0 = gsq_seconds();
    launch(s, k, GSQ_CUDA_OUT_F32);
    sync_or_die();
    double once = gsq_seconds() - t0;
    int n = once > 0.02 ? 1 : (int)(0.02 / (once > 1e-7 ? once : 1e-7)) + 1;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        t0 = gsq_seconds();
        for (int i = 0; i < n; i++) launch(s, k, GSQ_CUDA_OUT_F32);
        sync_or_die();
        double t = (gsq_seconds() - t0) / n;
        best = t < best ? t : best;
    }
    return best;
}

static void *upload_or_die(const void *host, size_t bytes)
{
    void *d = NULL;
    gsq_error err = {0};
    if (gsq_cuda_malloc(&d, bytes, &err) != GSQ_OK) die(&err);
    if (host && gsq_cuda_upload(d, host, bytes, &err) != GSQ_OK) die(&err);
    return d;
}

/* Random codes for activations (M, K) and a 2:4 weight (N, K), everything on the device. */
static void setup(bench_shape *s, gsq_rng *rng)
{
    int M = s->M, N = s->N, K = s->K, words = gsq_sparse_meta_words(GSQ_SPARSE_2_4, K);
    size_t nx = (size_t)M * K, nw = (size_t)N * K;
    int8_t *x = malloc(nx), *w = calloc(nw, 1), *values = malloc(nw / 2);
    uint16_t *xh = malloc(2 * nx), *wh = malloc(2 * nw), *meta = calloc((size_t)N * words, sizeof(uint16_t));
    float *ones = malloc(sizeof(float) * N);
    if (!x || !w || !values || !xh || !wh || !meta || !ones) {
        fprintf(stderr, "bench_cuda_gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < nx; i++) x[i] = (int8_t)((int)(gsq_rng_u32(rng) % 255) - 127);
    for (size_t g = 0; g < nw / 4; g++) { /* two of every four, at random places */
        int a = (int)(gsq_rng_u32(rng) % 4), b = (a + 1 + (int)(gsq_rng_u32(rng) % 3)) % 4;
        w[4 * g + a] = (int8_t)((int)(gsq_rng_u32(rng) % 255) - 127);
        w[4 * g + b] = (int8_t)((int)(gsq_rng_u32(rng) % 255) - 127);
    }
    for (size_t i = 0; i < nx; i++) xh[i] = gsq_f32_to_f16(x[i] / 128.0f);
    for (size_t i = 0; i < nw; i++) wh[i] = gsq_f32_to_f16(w[i] / 128.0f);
    for (int n = 0; n < N; n++) {
        ones[n] = 1.0f;
        gsq_sparse_compress_row(w + (size_t)n * K, K, GSQ_SPARSE_2_4, values + (size_t)n * K / 2, meta + (size_t)n * words);
    }
    gsq_error err = {0};
    if (gsq_cuda_i8_weight_sparse(&s->sparse, values, meta, N, K, &err) != GSQ_OK ||
        gsq_cuda_i8_weight_dense(&s->dense, w, N, K, &err) != GSQ_OK ||
        gsq_cuda_blas_create(&s->blas_i8, GSQ_CUDA_BLAS_I8, M, N, K, NULL, 0, &err) != GSQ_OK ||
        gsq_cuda_blas_create(&s->blas_f16, GSQ_CUDA_BLAS_F16, M, N, K, NULL, 0, &err) != GSQ_OK)
        die(&err);
    s->x = upload_or_die(x, nx);
    s->w = upload_or_die(w, nw);
    s->xh = upload_or_die(xh, 2 * nx);
    s->wh = upload_or_die(wh, 2 * nw);
    s->scale = upload_or_die(ones, sizeof(float) * N);
    s->bias = upload_or_die(ones, sizeof(float) * N);
    s->y = upload_or_die(NULL, 4 * (size_t)M * N);
    s->yh = upload_or_die(NULL, 2 * (size_t)M * N);
    free(x);
    free(w);
    free(values);
    free(xh);
    free(wh);
    free(meta);
    free(ones);
}

static void teardown(bench_shape *s)
{
    gsq_cuda_i8_weight_free(s->sparse);
    gsq_cuda_i8_weight_free(s->dense);
    gsq_cuda_blas_free(s->blas_i8);
    gsq_cuda_blas_free(s->blas_f16);
    void *bufs[] = {s->x, s->w, s->xh, s->wh, s->scale, s->bias, s->y, s->yh};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gsq_cuda_free(bufs[i]);
}

/* Our int32 sums (kind k) equal cuBLASLt INT8's: 1, else 0 (and a message). */
static int check(bench_shape *s, run_kind k, int32_t *want, int32_t *got)
{
    size_t n = (size_t)s->M * s->N, bytes = n * sizeof(int32_t);
    gsq_error err = {0};
    launch(s, k, GSQ_CUDA_OUT_S32);
    sync_or_die();
    if (gsq_cuda_download(got, s->y, bytes, &err) != GSQ_OK) die(&err);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "bench_cuda_gemm: %s %d×%d×%d: output %zu is %d, cuBLASLt INT8 %d\n", kind_names[k], s->M,
                    s->N, s->K, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

int main(int argc, char **argv)
{
    int reps = 5, batches[8], nb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc && nb < 8) batches[nb++] = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cuda_gemm [--reps R] [--batch B]...\n");
            return 2;
        }
    }
    if (gsq_cuda_device_count() == 0) {
        printf("bench_cuda_gemm: skipped (no GPU present)\n");
        return 0;
    }
    if (nb == 0) batches[nb++] = 1, batches[nb++] = 32, batches[nb++] = 64;
    char name[256];
    gsq_error err = {0};
    if (gsq_cuda_device_name(0, name, sizeof name, &err) != GSQ_OK) die(&err);
    printf("bench_cuda_gemm on %s: dense-equivalent GMAC/s (M·N·K / s), best of %d; ratios to cuBLASLt INT8\n", name,
           reps);
    printf("%-11s %-5s %6s %5s %5s | %9s %9s %9s %9s | %6s %6s %6s\n", "model", "gemm", "M", "N", "K", "2:4", "dense",
           "cuBLAS-I8", "cuBLAS-F16", "2:4", "dense", "F16");
    const struct { const char *name; int D; } models[] = {{"deit_small", 384}, {"deit_base", 768}};
    const char *gemms[] = {"qkv", "proj", "fc1", "fc2"};
    gsq_rng rng;
    gsq_rng_seed(&rng, 11, 1);
    int failed = 0;
    for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++)
        for (int b = 0; b < nb; b++)
            for (int g = 0; g < 4; g++) {
                int D = models[mi].D;
                bench_shape s = {.M = batches[b] * 197, .N = g == 0 ? 3 * D : (g == 2 ? 4 * D : D), .K = g == 3 ? 4 * D : D};
                setup(&s, &rng);
                size_t n = (size_t)s.M * s.N;
                int32_t *want = malloc(n * sizeof(int32_t)), *got = malloc(n * sizeof(int32_t));
                launch(&s, RUN_BLAS_I8, GSQ_CUDA_OUT_S32);
                sync_or_die();
                if (gsq_cuda_download(want, s.y, n * sizeof(int32_t), &err) != GSQ_OK) die(&err);
                int ok = check(&s, RUN_SPARSE, want, got) & check(&s, RUN_DENSE, want, got);
                failed |= !ok;
                double t[RUN_KINDS], macs = (double)s.M * s.N * s.K;
                for (int k = 0; k < RUN_KINDS; k++) t[k] = time_kind(&s, (run_kind)k, reps);
                printf("%-11s %-5s %6d %5d %5d | %9.0f %9.0f %9.0f %9.0f | %6.2f %6.2f %6.2f%s\n", models[mi].name,
                       gemms[g], s.M, s.N, s.K, macs / t[0] * 1e-9, macs / t[1] * 1e-9, macs / t[2] * 1e-9,
                       macs / t[3] * 1e-9, t[2] / t[0], t[2] / t[1], t[2] / t[3], ok ? "" : "  (sums differ)");
                free(want);
                free(got);
                teardown(&s);
            }
    return failed;
}
