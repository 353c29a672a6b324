/* Which instruction sets a kernel test exercises: every one this CPU has, or only the one that
 * argv[1] names (GSQ_ISA's words), so that CTest runs one test per instruction set and reports
 * those the CPU lacks as skipped (tests/CMakeLists.txt). */
#ifndef GSQ_TEST_ISA_H
#define GSQ_TEST_ISA_H

#include <stdio.h>

#include "kernels/cpu/int8_gemm.h"
#include "test_util.h"

static int test_isa_only = -1; /* -1: all */

/* 1 when the test exercises isa: the CPU has it and it is the one asked for (or all are). */
static inline int test_isa_selected(gsq_i8_isa isa)
{
    return gsq_i8_isa_supported(isa) && (test_isa_only < 0 || test_isa_only == (int)isa);
}

/* Reads the optional instruction-set argument and prints what runs. Returns -1 to go on, or the
 * exit code: GSQ_TEST_SKIP when the CPU lacks the named set, 2 for a word it does not know. */
static inline int test_isa_args(const char *suite, int argc, char **argv)
{
    if (argc > 1 && (test_isa_only = gsq_i8_isa_from_key(argv[1])) < 0) {
        fprintf(stderr, "%s: unknown instruction set '%s' (ref, avx2, avx-vnni, avx512, amx)\n", suite, argv[1]);
        return 2;
    }
    if (test_isa_only >= 0 && !gsq_i8_isa_supported((gsq_i8_isa)test_isa_only)) {
        char why[96];
        snprintf(why, sizeof why, "this CPU has no %s", gsq_i8_isa_name((gsq_i8_isa)test_isa_only));
        return test_skip(suite, why);
    }
    for (int i = GSQ_I8_ISA_REF + 1; i < GSQ_I8_ISA_COUNT; i++)
        if (test_isa_only < 0 || test_isa_only == i)
            printf("%s kernels: %s\n", gsq_i8_isa_name((gsq_i8_isa)i),
                   gsq_i8_isa_supported((gsq_i8_isa)i) ? "tested against the reference" : "not on this CPU");
    return -1;
}

#endif
