/* Run-time choice of the engine's integer kernels: the CPU's capability bits, the best
 * instruction set whose needs they cover (gsq_i8_isa), or the one GSQ_ISA names in the
 * environment (for comparisons), and the calls that route to its kernels (x86 ones only where
 * they are compiled in: GSQ_X86). */
#include <stdlib.h>
#include <string.h>

#include "gpusq/engine.h"
#include "int8_gemm.h"

static const char *const isa_names[GSQ_I8_ISA_COUNT] = {"reference C", "avx2", "avx-vnni", "avx512-vnni", "amx-int8"};
static const char *const isa_env[GSQ_I8_ISA_COUNT] = {"ref", "avx2", "avx-vnni", "avx512", "amx"};

const char *gsq_i8_isa_name(gsq_i8_isa isa) { return (unsigned)isa < GSQ_I8_ISA_COUNT ? isa_names[isa] : "?"; }

int gsq_i8_isa_from_key(const char *key)
{
    for (int i = 0; key && i < GSQ_I8_ISA_COUNT; i++)
        if (strcmp(key, isa_env[i]) == 0) return i;
    return -1;
}

static const unsigned isa_needs[GSQ_I8_ISA_COUNT] = {
    0, GSQ_CAP_AVX2, GSQ_CAP_AVX2 | GSQ_CAP_AVX_VNNI, GSQ_CAP_AVX512,
    GSQ_CAP_AVX512 | GSQ_CAP_AVX512_VBMI2 | GSQ_CAP_AMX_INT8,
};

unsigned gsq_i8_isa_needs(gsq_i8_isa isa) { return (unsigned)isa < GSQ_I8_ISA_COUNT ? isa_needs[isa] : ~0u; }

unsigned gsq_i8_cpu_caps(void)
{
    static int cached = -1; /* a benign race: every thread computes the same bits */
    if (cached >= 0) return (unsigned)cached;
    unsigned caps = 0;
#if GSQ_X86
    __builtin_cpu_init();
    caps |= __builtin_cpu_supports("avx2") ? GSQ_CAP_AVX2 : 0;
    caps |= __builtin_cpu_supports("avxvnni") ? GSQ_CAP_AVX_VNNI : 0;
    caps |= __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                    __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2")
                ? GSQ_CAP_AVX512 : 0;
    caps |= __builtin_cpu_supports("avx512vbmi2") ? GSQ_CAP_AVX512_VBMI2 : 0;
    caps |= gsq_i8_amx_granted() ? GSQ_CAP_AMX_INT8 : 0;
#endif
    cached = (int)caps;
    return caps;
}

int gsq_i8_isa_supported(gsq_i8_isa isa)
{
    unsigned needs = gsq_i8_isa_needs(isa);
    return (gsq_i8_cpu_caps() & needs) == needs;
}

gsq_i8_isa gsq_i8_isa_active(void)
{
    static int chosen = -1; /* a benign race: every thread computes the same value */
    if (chosen < 0) {
        const char *want = getenv("GSQ_ISA");
        int best = GSQ_I8_ISA_REF;
        for (int i = GSQ_I8_ISA_COUNT - 1; i > 0 && best == GSQ_I8_ISA_REF; i--)
            if (gsq_i8_isa_supported((gsq_i8_isa)i)) best = i;
        int wanted = gsq_i8_isa_from_key(want);
        if (wanted >= 0 && gsq_i8_isa_supported((gsq_i8_isa)wanted)) best = wanted;
        chosen = best;
    }
    return (gsq_i8_isa)chosen;
}

const char *gsq_engine_isa(void) { return gsq_i8_isa_name(gsq_i8_isa_active()); }

size_t gsq_i8_input_bytes(gsq_i8_isa isa, int M, int K)
{
    if (isa == GSQ_I8_ISA_AMX) return (size_t)gsq_i8_amx_mpad(M) * (size_t)gsq_i8_amx_kpad(K);
    return gsq_i8_xq_bytes(M, K);
}

void gsq_i8_quantize(gsq_i8_isa isa, uint8_t *xq, const float *x, int M, int K, int ldx, float inv, int qmax)
{
    #pragma omp parallel for schedule(static)
    for (int m = 0; m < gsq_i8_input_rows(isa, M); m++)
        gsq_i8_quantize_one(isa, xq, m < M ? x + (size_t)m * ldx : NULL, m, M, K, inv, qmax);
}

void gsq_i8_quantize_one(gsq_i8_isa isa, uint8_t *xq, const float *row, int m, int M, int K, float inv, int qmax)
{
    switch (isa) {
#if GSQ_X86
    case GSQ_I8_ISA_AVX512: gsq_i8_quantize_row_avx512(xq, row, m, M, K, inv, qmax); break;
    case GSQ_I8_ISA_AVX2:
    case GSQ_I8_ISA_AVX_VNNI: gsq_i8_quantize_row_avx2(xq, row, m, M, K, inv, qmax); break;
    case GSQ_I8_ISA_AMX: gsq_i8_quantize_row_amx(xq, row, m, M, K, inv, qmax); break;
#endif
    default: gsq_i8_quantize_row_ref(xq, row, m, M, K, inv, qmax);
    }
}

void gsq_i8_gemm(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    if (e->codes && !gsq_i8_fuses_codes(w->isa)) { /* float values through y, then their codes */
        gsq_i8_epilogue floats = *e;
        floats.codes = NULL;
        gsq_i8_gemm(y, ldy, xq, M, w, &floats);
        gsq_i8_quantize(w->isa, e->codes, y, M, w->rows, ldy, e->code_inv, e->code_qmax);
        return;
    }
    switch (w->isa) {
#if GSQ_X86
    case GSQ_I8_ISA_AVX512: gsq_i8_gemm_avx512(y, ldy, xq, M, w, e); break;
    case GSQ_I8_ISA_AVX_VNNI: gsq_i8_gemm_avxvnni(y, ldy, xq, M, w, e); break;
    case GSQ_I8_ISA_AVX2: gsq_i8_gemm_avx2(y, ldy, xq, M, w, e); break;
    case GSQ_I8_ISA_AMX: gsq_i8_gemm_amx(y, ldy, xq, M, w, e); break;
#endif
    default: gsq_i8_gemm_ref(y, ldy, xq, M, w, e);
    }
}
