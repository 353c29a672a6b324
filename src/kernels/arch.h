/* Private: GSQ_X86, 1 where the x86 kernels (AVX2, AVX-VNNI, AVX-512, AMX; <immintrin.h>) are
 * compiled in. Elsewhere (aarch64) the engine runs its plain-C reference kernels. */
#ifndef GSQ_KERNELS_ARCH_H
#define GSQ_KERNELS_ARCH_H

#if defined(__x86_64__) || defined(__i386__)
#define GSQ_X86 1
#else
#define GSQ_X86 0
#endif

#endif
