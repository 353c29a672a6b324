/* Run-time choice of the engine's integer kernels: the AVX-512 VNNI path where the CPU has
 * AVX-512 F/BW/VL, VNNI and VBMI (Ice Lake, Sapphire Rapids, Zen 4 and later), else the plain-C
 * reference. GSQ_ISA=ref in the environment forces the reference (for comparisons). */
#include <stdlib.h>
#include <string.h>

#include "gpusq/engine.h"
#include "int8_gemm.h"

int gsq_i8_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
           __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("bmi2");
}

static int use_avx512(void)
{
    static int chosen = -1; /* a benign race: every thread computes the same value */
    if (chosen < 0) {
        const char *isa = getenv("GSQ_ISA");
        chosen = !(isa && strcmp(isa, "ref") == 0) && gsq_i8_cpu_has_avx512();
    }
    return chosen;
}

const char *gsq_engine_isa(void) { return use_avx512() ? "avx512-vnni" : "reference C"; }

void gsq_i8_quantize(uint8_t *xq, const float *x, int M, int K, int ldx, float inv, int qmax)
{
    if (use_avx512()) gsq_i8_quantize_avx512(xq, x, M, K, ldx, inv, qmax);
    else gsq_i8_quantize_ref(xq, x, M, K, ldx, inv, qmax);
}

void gsq_i8_gemm(float *y, int ldy, const uint8_t *xq, int M, const gsq_i8_weight *w, const gsq_i8_epilogue *e)
{
    if (use_avx512()) gsq_i8_gemm_avx512(y, ldy, xq, M, w, e);
    else gsq_i8_gemm_ref(y, ldy, xq, M, w, e);
}
