/* The AMX-INT8 path of the engine's integer kernels (int8_gemm.h): row-major activation codes
 * (A tiles, 16 rows × 64 inputs) times panels of 16 weight rows (B tiles), TDPBUSD into 2 × 2
 * int32 tiles of 32 activation rows × 32 weight rows. Sparse and INT4 panels are expanded into
 * dense B tiles once per call and panel (VPEXPANDB spreads the kept codes where their mask says),
 * then reused for every block of activation rows. AMX has no sparse multiply: the 2:4 layout
 * saves memory, not tile multiplies. Compiled for AMX and AVX-512 whatever the build's -march,
 * called only where the CPU has them and the OS has granted the tile state (int8_dispatch.c). */
#define _GNU_SOURCE /* syscall */
#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gelu_approx.h"
#include "int8_avx512_inline.h"
#include "int8_gemm.h"

#define GSQ_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,bmi2,popcnt,amx-tile,amx-int8")))

int gsq_i8_amx_granted(void)
{
    static int granted = -1; /* a benign race: the request is idempotent */
    if (granted < 0) {
        unsigned a, b, c, d;
        int has = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 25 & 1); /* AMX-TILE, AMX-INT8 */
        /* Linux hands out the 8 KB tile state only on request: ARCH_REQ_XCOMP_PERM for XTILEDATA */
        granted = has && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return granted;
}

GSQ_AMX void gsq_i8_quantize_row_amx(uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax)
{
    int kpad = gsq_i8_amx_kpad(K);
    uint8_t *dst = xq + (size_t)m * kpad;
    if (m >= M) {
        memset(dst, 128, (size_t)kpad);
        return;
    }
    for (int k = 0; k < kpad; k += 16) {
        int left = K - k;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (left > 0 ? (__mmask16)((1u << left) - 1) : 0);
        _mm_storeu_si128((__m128i *)(dst + k), gsq_i8_quantize16(_mm512_maskz_loadu_ps(mask, row + k), inv, qmax));
    }
}

/* 64 int4 codes (32 bytes, low nibble first) as 64 sign-extended bytes. */
GSQ_AMX static inline __m512i unpack64(const uint8_t *p)
{
    __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
    __m512i v = _mm512_or_si512(_mm512_and_si512(w, _mm512_set1_epi16(0x0F)),
                                _mm512_slli_epi16(_mm512_and_si512(w, _mm512_set1_epi16(0xF0)), 4));
    const __m512i eight = _mm512_set1_epi8(8);
    return _mm512_sub_epi8(_mm512_xor_si512(v, eight), eight);
}

/* Tile rows [t0, t1) of panel p (t0, t1 even) as dense B-tile rows at dst, 64 bytes each. */
GSQ_AMX static void expand_panel(const gsq_i8_weight *w, int p, int kpad, int t0, int t1, uint8_t *dst)
{
    int trows = kpad / 4;
    if (w->layout == GSQ_I8_DENSE) {
        const uint8_t *src = w->codes + ((size_t)p * trows + t0) * (w->four ? 32 : 64);
        for (int t = t0; t < t1; t++, dst += 64)
            _mm512_store_si512(dst, w->four ? unpack64(src + 32 * (t - t0)) : _mm512_loadu_si512(src + 64 * (t - t0)));
        return;
    }
    const uint64_t *mask = (const uint64_t *)w->meta + (size_t)p * trows;
    const uint8_t *src = w->codes + ((size_t)p * trows + t0) / 2 * (w->four ? 32 : 64); /* 64 codes per tile-row pair */
    for (int t = t0; t < t1; t += 2, dst += 128) {
        _Alignas(64) uint8_t codes[64];
        const uint8_t *s = src;
        if (w->four) _mm512_store_si512(codes, unpack64(src)), s = codes;
        src += w->four ? 32 : 64;
        _mm512_store_si512(dst, _mm512_maskz_expandloadu_epi8(mask[t], s));
        _mm512_store_si512(dst + 64, _mm512_maskz_expandloadu_epi8(mask[t + 1], s + _mm_popcnt_u64(mask[t])));
    }
}

/* The epilogue of a 32 × 32 block: acc[t][j] = Σ (code_x + 128) · code_w for activation row m0 + t
 * and weight row n0 + j; gsq_i8_epilogue_apply's arithmetic, 16 weight rows at a time, stored as
 * floats or (e->codes) quantized into the next GEMM's input. There the columns past N come out as
 * code 0 (their sums, scales and biases are 0), as do the padding rows, and the block of the last
 * weight rows fills the row out to its padded width (gsq_i8_amx_kpad(N)) with code 0. */
GSQ_AMX static void finish_block(float *y, int ldy, int32_t acc[32][32], int n0, int m0, int M,
                                 const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    int ldc = gsq_i8_amx_kpad(w->rows), rows = e->codes ? 32 : (M - m0 < 32 ? M - m0 : 32);
    for (int h = 0; h < 32; h += 16) {
        int left = w->rows - (n0 + h);
        if (left <= 0 && !e->codes) break;
        __mmask16 mask = left >= 16 ? (__mmask16)0xFFFF : (left > 0 ? (__mmask16)((1u << left) - 1) : 0);
        int n = n0 + h;
        __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, w->wsum + n), 7); /* 128 · Σ code_w */
        __m512 scale = _mm512_maskz_loadu_ps(mask, e->scale + n);
        __m512 bias = e->bias ? _mm512_maskz_loadu_ps(mask, e->bias + n) : _mm512_setzero_ps();
        for (int t = 0; t < rows; t++) {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(&acc[t][h]), corr)), scale);
            v = _mm512_add_ps(v, bias);
            if (e->gelu) v = gsq_gelu_avx512(v);
            if (e->codes) {
                __m128i q = m0 + t < M ? gsq_i8_quantize16(v, e->code_inv, e->code_qmax) : _mm_set1_epi8((char)128);
                _mm_storeu_si128((__m128i *)(e->codes + (size_t)(m0 + t) * ldc + n), q);
                continue;
            }
            float *dst = y + (size_t)(m0 + t) * ldy + n;
            if (e->accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), v);
            _mm512_mask_storeu_ps(dst, mask, v);
        }
    }
    if (e->codes && n0 + 32 == w->rows_pad && ldc > w->rows_pad)
        for (int t = 0; t < 32; t++)
            memset(e->codes + (size_t)(m0 + t) * ldc + w->rows_pad, 128, (size_t)(ldc - w->rows_pad));
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

GSQ_AMX void gsq_i8_amx_tiles_on(void)
{
    /* a constant: GCC 12 drops stores into a local configuration before LDTILECFG */
    static const tile_config c = {.palette = 1,
                                  .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
                                  .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    _tile_loadconfig(&c);
}

/* acc (32 × 32) = activation rows m0.. · panels b0, b1, whose tile row k/4 is at offset 16k (or,
 * with `stream`, whose tile rows are re-expanded into b0, b1 for every step of 64 inputs). */
GSQ_AMX static void block(int32_t acc[32][32], const uint8_t *xq, int kpad, int m0, const gsq_i8_weight *w, int p,
                          const uint8_t *b0, const uint8_t *b1, uint8_t *stream)
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const uint8_t *a = xq + (size_t)m0 * kpad;
    for (int k = 0; k < kpad; k += 64) {
        const uint8_t *p0 = b0 + 16 * k, *p1 = b1 + 16 * k;
        if (stream) {
            expand_panel(w, p, kpad, k / 4, k / 4 + 16, stream);
            expand_panel(w, p + 1, kpad, k / 4, k / 4 + 16, stream + 1024);
            p0 = stream, p1 = stream + 1024;
        }
        _tile_loadd(4, a + k, kpad);
        _tile_loadd(5, a + (size_t)16 * kpad + k, kpad);
        _tile_loadd(6, p0, 64);
        _tile_loadd(7, p1, 64);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, &acc[0][0], 128);
    _tile_stored(1, &acc[0][16], 128);
    _tile_stored(2, &acc[16][0], 128);
    _tile_stored(3, &acc[16][16], 128);
}

GSQ_AMX void gsq_i8_gemm_amx(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    int kpad = gsq_i8_amx_kpad(w->cols), mpad = gsq_i8_amx_mpad(M), pairs = w->rows_pad / 32;
    int direct = w->layout == GSQ_I8_DENSE && !w->four; /* dense int8 panels are B tiles as they are */
    /* activation rows in spans of about 512 KB, which stay in L2 while every panel passes */
    int span = (int)((512 << 10) / kpad) / 32 * 32;
    span = span < 64 ? 64 : span;
    /* in each span, a thread takes pairs of panels (32 weight rows), expanded once, through every
     * block of 32 rows; for a single block (or without the memory) 16 tile rows at a time */
    #pragma omp parallel
    {
        uint8_t *panels = direct || mpad == 32 ? NULL : aligned_alloc(64, (size_t)kpad * 32);
        _Alignas(64) uint8_t stream[2048];
        _Alignas(64) int32_t acc[32][32];
        gsq_i8_amx_tiles_on();
        for (int s0 = 0; s0 < mpad; s0 += span) {
            int s1 = s0 + span < mpad ? s0 + span : mpad;
            #pragma omp for schedule(static)
            for (int pp = 0; pp < pairs; pp++) {
                const uint8_t *b0 = w->codes + (size_t)2 * pp * kpad * 16, *b1 = b0 + (size_t)kpad * 16;
                if (!direct && panels) {
                    expand_panel(w, 2 * pp, kpad, 0, kpad / 4, panels);
                    expand_panel(w, 2 * pp + 1, kpad, 0, kpad / 4, panels + (size_t)kpad * 16);
                    b0 = panels, b1 = panels + (size_t)kpad * 16;
                }
                for (int m0 = s0; m0 < s1; m0 += 32) {
                    block(acc, xq, kpad, m0, w, 2 * pp, b0, b1, direct || panels ? NULL : stream);
                    finish_block(y, ldy, acc, 32 * pp, m0, M, w, e);
                }
            }
        }
        _tile_release();
        free(panels);
    }
}
