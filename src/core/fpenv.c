/* The floating-point mode of the threads that compute: flush-to-zero and denormals-are-zero, so
 * that values drifting into the denormal range (a diverging run, tiny activations of timm-initialised
 * weights) cost what normal values cost instead of a microcode assist per operation. */
#include <omp.h>

#include "gpusq/kernels.h"
#include "kernels/arch.h"

#if GSQ_X86
#include <immintrin.h>
#define GSQ_FLUSH_BITS 0x8040u /* MXCSR: FTZ (bit 15) and DAZ (bit 6) */

static void flush_this_thread(void) { _mm_setcsr(_mm_getcsr() | GSQ_FLUSH_BITS); }
int gsq_denormals_flushed(void) { return (_mm_getcsr() & GSQ_FLUSH_BITS) == GSQ_FLUSH_BITS; }

#elif defined(__aarch64__)
#define GSQ_FLUSH_BITS (1ull << 24) /* FPCR.FZ: inputs and results flushed */

static unsigned long long fpcr_read(void)
{
    unsigned long long v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void flush_this_thread(void)
{
    unsigned long long v = fpcr_read() | GSQ_FLUSH_BITS;
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
int gsq_denormals_flushed(void) { return (fpcr_read() & GSQ_FLUSH_BITS) != 0; }

#else
static void flush_this_thread(void) {}
int gsq_denormals_flushed(void) { return 0; }
#endif

void gsq_flush_denormals_here(void) { flush_this_thread(); }

void gsq_flush_denormals(void)
{
    flush_this_thread();
    if (omp_in_parallel()) return; /* the team is already running: its threads set their own */
    #pragma omp parallel num_threads(omp_get_max_threads())
    flush_this_thread();
}
