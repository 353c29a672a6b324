/* The machine's ceilings for the integer engine, measured: the int8 multiply-accumulate peak of
 * each instruction set's core instruction on data in registers (VPDPBUSD on AVX-512 and
 * AVX-VNNI, VPMADDUBSW + VPMADDWD on AVX2, TDPBUSD on AMX tiles, an int32 dot product in plain C
 * for the reference), run by every thread at once; and the bandwidth of reading a buffer far
 * larger than the caches. A roofline (gpusq bench --roofline) sets each part of the forward pass
 * against them. */
#include <omp.h>
#include <stdlib.h>

#include "gpusq/clock.h"
#include "int8_gemm.h"

#if GSQ_X86
#include <immintrin.h>

#define ACCS 12 /* independent accumulators: more than latency × throughput on every core we know */

/* Each loop returns a value that depends on every accumulator, so nothing is optimised away. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int peak_avx512(long iters, int seed)
{
    __m512i acc[ACCS], a = _mm512_set1_epi8((char)(seed | 1)), b = _mm512_set1_epi8((char)(seed + 3));
    for (int k = 0; k < ACCS; k++) acc[k] = _mm512_set1_epi32(k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < ACCS; k++) acc[k] = _mm512_dpbusd_epi32(acc[k], a, b);
    for (int k = 1; k < ACCS; k++) acc[0] = _mm512_add_epi32(acc[0], acc[k]);
    return _mm_cvtsi128_si32(_mm512_castsi512_si128(acc[0])); /* no scalar sum: the lanes wrap */
}

__attribute__((target("avx2,avxvnni"))) static int peak_avx_vnni(long iters, int seed)
{
    __m256i acc[ACCS], a = _mm256_set1_epi8((char)(seed | 1)), b = _mm256_set1_epi8((char)(seed + 3));
    for (int k = 0; k < ACCS; k++) acc[k] = _mm256_set1_epi32(k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < ACCS; k++) acc[k] = _mm256_dpbusd_avx_epi32(acc[k], a, b);
    for (int k = 1; k < ACCS; k++) acc[0] = _mm256_add_epi32(acc[0], acc[k]);
    return _mm256_extract_epi32(acc[0], 0);
}

/* AVX2 has no u8 × s8 dot instruction: the kernels pair VPMADDUBSW (to int16) with VPMADDWD. Each
 * accumulator has its own operand, so no product is shared or hoisted out of the loop. */
__attribute__((target("avx2"))) static int peak_avx2(long iters, int seed)
{
    __m256i acc[ACCS], b[ACCS], a = _mm256_set1_epi8((char)(seed | 1)), ones = _mm256_set1_epi16(1);
    for (int k = 0; k < ACCS; k++) acc[k] = _mm256_set1_epi32(k), b[k] = _mm256_set1_epi8((char)(seed + k));
    for (long i = 0; i < iters; i++) {
        __asm__("" : "+x"(a)); /* a "changes" every pass */
        for (int k = 0; k < ACCS; k++)
            acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[k]), ones));
    }
    for (int k = 1; k < ACCS; k++) acc[0] = _mm256_add_epi32(acc[0], acc[k]);
    return _mm256_extract_epi32(acc[0], 0);
}

/* Four int32 accumulator tiles (16 × 16) from two A tiles (16 rows × 64 bytes) and two B tiles, as
 * the GEMM's inner step; the tile state is the calling thread's (gsq_i8_amx_tiles_on). */
__attribute__((target("amx-tile,amx-int8"))) static int peak_amx(long iters, int seed)
{
    static const _Alignas(64) uint8_t src[16 * 64]; /* the operands' values do not change the speed */
    (void)seed;
    int32_t out[16 * 16];
    gsq_i8_amx_tiles_on();
    _tile_zero(0); /* tile numbers are immediates */
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, src, 64);
    _tile_loadd(5, src, 64);
    _tile_loadd(6, src, 64);
    _tile_loadd(7, src, 64);
    for (long i = 0; i < iters; i++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    return out[0];
}
#endif

/* The reference: an int32 dot product of int8 arrays that stay in the first-level cache. */
static int peak_ref(long iters, int seed)
{
    int8_t a[256], b[256];
    for (int k = 0; k < 256; k++) a[k] = (int8_t)(k + seed), b[k] = (int8_t)(3 * k);
    uint32_t acc = 0; /* wraps, as the instructions' sums do */
    for (long i = 0; i < iters; i++) {
        for (int k = 0; k < 256; k++) acc += (uint32_t)(a[k] * b[k]);
        a[i & 255] ^= (int8_t)acc; /* a new dot product every pass */
    }
    return (int)(acc & 0x7FFFFFFF);
}

typedef int (*peak_loop)(long iters, int seed);

/* isa's loop and the multiply-accumulates one iteration of it does. */
static peak_loop loop_of(gsq_i8_isa isa, double *macs)
{
    switch (isa) {
#if GSQ_X86
    case GSQ_I8_ISA_AVX512: *macs = 64.0 * ACCS; return peak_avx512;
    case GSQ_I8_ISA_AVX_VNNI: *macs = 32.0 * ACCS; return peak_avx_vnni;
    case GSQ_I8_ISA_AVX2: *macs = 32.0 * ACCS; return peak_avx2;
    case GSQ_I8_ISA_AMX: *macs = 4.0 * 16 * 16 * 64; return peak_amx;
#endif
    default: *macs = 256.0; return peak_ref;
    }
}

/* Seconds for every one of threads threads to run iters iterations at once. */
static double timed(peak_loop f, long iters, int threads, volatile unsigned *sink)
{
    double t0 = gsq_seconds();
    #pragma omp parallel num_threads(threads)
    {
        unsigned r = (unsigned)f(iters, omp_get_thread_num());
        #pragma omp atomic
        *sink += r;
    }
    return gsq_seconds() - t0;
}

double gsq_i8_peak_macs(gsq_i8_isa isa, int threads)
{
    double per = 0;
    peak_loop f = loop_of(isa, &per);
    volatile unsigned sink = 0;
    long iters = 1000;
    double t = timed(f, iters, threads, &sink);        /* also wakes the cores and the threads */
    while (t < 0.05 && iters < (1L << 40)) t = timed(f, iters *= 4, threads, &sink);
    double best = t;
    for (int r = 0; r < 2; r++) { /* the best of three at about 0.05 s or more each */
        double u = timed(f, iters, threads, &sink);
        best = u < best ? u : best;
    }
    return per * (double)iters * threads / best;
}

double gsq_read_bandwidth(int threads)
{
    const size_t n = (size_t)256 << 20; /* 256 MiB: beyond any last-level cache we run on */
    uint64_t *buf = malloc(n);
    if (!buf) return 0;
    size_t words = n / sizeof *buf;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < words; i++) buf[i] = i; /* touched by the threads that read it */
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int r = 0; r < 3; r++) {
        uint64_t s = 0;
        double t0 = gsq_seconds();
        #pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
        for (size_t i = 0; i < words; i++) s += buf[i];
        double t = gsq_seconds() - t0;
        sink += s;
        best = t < best ? t : best;
    }
    free(buf);
    return (double)n / best;
}
