/* bench_int8_gemm: the CPU engine's integer GEMM (src/kernels/cpu/int8_gemm.h) on the GEMM shapes of a
 * ViT at batch 1 and batch B (M = B · 197 tokens): dense INT8, 2:4 INT8 and 4:8 INT4 codes,
 * against oneDNN's fp32 GEMM (gsq_sgemm) on the same shape in the same run, with each one's rate
 * in dense-equivalent GMAC/s. It also measures the compute floor: the throughput of the kernels'
 * inner instructions alone (VPDPBUSD for dense and TDPBUSD for AMX, gsq_i8_peak_macs; VPERMT2B +
 * VPDPBUSD for sparse) on one core, from which the time per GEMM is bounded below (documented in docs/BENCHMARKS.md).
 * GSQ_ISA=avx512 (or ref, avx2, avx-vnni, amx) picks the kernels.
 *
 * Usage: bench_int8_gemm [--dim D] [--batch B] [--threads N] [--reps R] */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/int8_gemm.h"
#include "kernels/cpu/int8_pack.h"
#include "gpusq/clock.h"
#include "gpusq/engine.h"
#include "gpusq/kernels.h"
#include "gpusq/rng.h"

/* VPERMT2B + VPDPBUSD pairs per second on this core (the sparse kernel's inner step): 8
 * independent accumulators, 2e7 steps. The instructions alone are gsq_i8_peak_macs'. */
__attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi"))) static double pair_peak(void)
{
    __m512i acc[8], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5), idx = _mm512_set1_epi8(7);
    for (int i = 0; i < 8; i++) acc[i] = _mm512_set1_epi32(i);
    long steps = 20000000;
    double t0 = gsq_seconds();
    for (long s = 0; s < steps; s++)
        for (int i = 0; i < 8; i++) {
            __asm__ volatile("" : "+v"(idx)); /* an index the compiler cannot hoist out of the loop */
            acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_permutex2var_epi8(a, idx, b), b);
        }
    double t = gsq_seconds() - t0;
    int32_t sink[16];
    __m512i sum = acc[0];
    for (int i = 1; i < 8; i++) sum = _mm512_add_epi32(sum, acc[i]);
    _mm512_storeu_si512(sink, sum);
    if (sink[0] == 42) printf(" ");
    return 8.0 * (double)steps / t;
}

typedef struct {
    const char *name;
    int N, K;
} shape;

static double time_it(int reps, void (*fn)(void *), void *ctx)
{
    fn(ctx); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = gsq_seconds();
        fn(ctx);
        double t = gsq_seconds() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct {
    int M, N, K;
    float *x, *w, *y, *scale;
    uint8_t *xq;
    gsq_i8_weight *pw;
} gemm_ctx;

static void run_fp32(void *p)
{
    gemm_ctx *c = p;
    gsq_sgemm(false, true, c->M, c->N, c->K, 1.0f, c->x, c->K, c->w, c->K, 0.0f, c->y, c->N);
}

static void run_int(void *p)
{
    gemm_ctx *c = p;
    gsq_i8_epilogue e = {.scale = c->scale, .bias = NULL, .accumulate = 0};
    gsq_i8_quantize(gsq_i8_isa_active(), c->xq, c->x, c->M, c->K, c->K, 20.0f, 127);
    gsq_i8_gemm(c->y, c->N, c->xq, c->M, c->pw, &e);
}

int main(int argc, char **argv)
{
    int D = 384, B = 32, threads = 2, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dim")) D = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    gsq_set_num_threads(threads);
    printf("engine kernels: %s; %d threads\n", gsq_engine_isa(), threads);
    if (gsq_i8_isa_supported(GSQ_I8_ISA_AVX512)) {
        double dp = gsq_i8_peak_macs(GSQ_I8_ISA_AVX512, 1) / 64, pp = pair_peak();
        printf("one core: %.2f G VPDPBUSD/s alone, %.2f G VPERMT2B+VPDPBUSD pairs/s: AVX-512 compute floor dense "
               "%.1f GMAC/s (64 MACs per VPDPBUSD), sparse %.1f dense-equivalent GMAC/s (128 per pair)\n",
               dp / 1e9, pp / 1e9, 64 * dp / 1e9, 128 * pp / 1e9);
    }
    if (gsq_i8_isa_supported(GSQ_I8_ISA_AMX)) {
        double tp = gsq_i8_peak_macs(GSQ_I8_ISA_AMX, 1) / 16384;
        printf("one core: %.3f G TDPBUSD/s: AMX compute floor %.0f GMAC/s (16 × 16 × 64 MACs each), dense or "
               "2:4 alike\n", tp / 1e9, 16384 * tp / 1e9);
    }
    printf("\n");
    shape shapes[] = {{"qkv", 3 * D, D}, {"proj", D, D}, {"fc1", 4 * D, D}, {"fc2", D, 4 * D}};
    int batches[2] = {1, B};
    printf("| shape | M | N | K | fp32 oneDNN | dense INT8 | 2:4 INT8 | 4:8 INT4 | 2:4 vs dense INT8 | 2:4 vs fp32 |\n"
           "|---|---|---|---|---|---|---|---|---|---|\n");
    gsq_rng rng;
    gsq_rng_seed(&rng, 5, 0);
    for (int bi = 0; bi < 2; bi++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            int M = batches[bi] * 197, N = shapes[s].N, K = shapes[s].K;
            gemm_ctx c = {M, N, K, malloc((size_t)M * K * 4), malloc((size_t)N * K * 4), malloc((size_t)M * N * 4),
                          malloc((size_t)N * 4), malloc(gsq_i8_input_bytes(gsq_i8_isa_active(), M, K)), NULL};
            int8_t *codes = malloc((size_t)N * K);
            for (size_t i = 0; i < (size_t)M * K; i++) c.x[i] = gsq_rng_normal(&rng);
            for (size_t i = 0; i < (size_t)N * K; i++) c.w[i] = gsq_rng_normal(&rng);
            for (int n = 0; n < N; n++) c.scale[n] = 1e-3f;
            double t[4];
            t[0] = time_it(reps, run_fp32, &c);
            gsq_i8_layout layouts[3] = {GSQ_I8_DENSE, GSQ_I8_SPARSE_2_4, GSQ_I8_SPARSE_4_8};
            for (int l = 0; l < 3; l++) {
                /* codes obeying the layout: keep the first two units of every group of four */
                int unit = l == 2 ? 2 : 1, qmax = l == 2 ? 7 : 127;
                for (size_t i = 0; i < (size_t)N * K; i++) {
                    int pos = (int)(i % (size_t)K) % (4 * unit) / unit;
                    codes[i] = (int8_t)(l && pos >= 2 ? 0 : (int)(gsq_rng_u32(&rng) % (2u * qmax + 1)) - qmax);
                }
                gsq_i8_owned_weight pw;
                gsq_error err = {0};
                if (gsq_i8_pack(&pw, codes, N, K, layouts[l], l == 2, gsq_i8_isa_active(), &err) != GSQ_OK) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
                c.pw = &pw.w;
                t[l + 1] = time_it(reps, run_int, &c);
                gsq_i8_weight_free(&pw);
            }
            double macs = (double)M * N * K;
            printf("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f× | %.2f× |\n", shapes[s].name, M, N, K,
                   macs / t[0] / 1e9, macs / t[1] / 1e9, macs / t[2] / 1e9, macs / t[3] / 1e9, t[1] / t[2], t[0] / t[2]);
            free(c.x), free(c.w), free(c.y), free(c.scale), free(c.xq), free(codes);
        }
    printf("\n(GMAC/s: dense-equivalent multiply-accumulates M·N·K per second, activation quantization included "
           "for the integer kernels; best of %d runs)\n", reps);
    return 0;
}
