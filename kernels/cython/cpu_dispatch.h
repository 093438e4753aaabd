/* Which CPU-specific code the Cython kernels run, decided once per module from the CPU and the
   environment variable FASTNN_PORTABLE (set and not "0": run the portable code on any CPU, so that CI
   on an AVX-512 machine also tests the paths other machines take).

   fnn_simd_level(): the widest element-wise loops to run: FNN_AVX512 (x86-64-v4), FNN_AVX2 (x86-64-v3)
   or FNN_BASELINE (x86-64's SSE2; always under FASTNN_PORTABLE). The checks are those GCC's own
   target_clones resolver makes (__builtin_cpu_supports("x86-64-v4"), ...).
   fnn_portable(): whether FASTNN_PORTABLE asks for the portable code (small_gemm.h's AVX-512 products and
   activations.pyx's FMA tanh also obey it).
   FNN_MULTIVERSION(NAME, PARAMS, ARGS, BODY...): a void function NAME compiled three times (baseline,
   x86-64-v3, x86-64-v4) with one body and called through fnn_simd_level(). An explicit dispatch rather
   than target_clones, which the loader resolves before the environment can be read. Elsewhere than GCC
   >= 11 on x86-64 Linux, or with -DFNN_NO_CLONES, only the baseline is built.

   The values are read at the first call; every module that includes this calls it when it loads. */
#ifndef FNN_CPU_DISPATCH_H
#define FNN_CPU_DISPATCH_H
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define FNN_UNUSED __attribute__((unused))
#else
#define FNN_UNUSED
#endif

enum { FNN_BASELINE = 0, FNN_AVX2 = 1, FNN_AVX512 = 2 };

FNN_UNUSED static int fnn_portable(void) {
    static int known = -1;
    if (known < 0) {
        const char *value = getenv("FASTNN_PORTABLE");
        known = value != NULL && value[0] != '\0' && strcmp(value, "0") != 0;
    }
    return known;
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && __GNUC__ >= 11 && !defined(FNN_NO_CLONES)
#define FNN_HAS_CLONES 1
#endif

FNN_UNUSED static int fnn_simd_level(void) {
    static int known = -1;
    if (known < 0) {
        int level = FNN_BASELINE;
#ifdef FNN_HAS_CLONES
        __builtin_cpu_init();
        if (__builtin_cpu_supports("x86-64-v4"))
            level = FNN_AVX512;
        else if (__builtin_cpu_supports("x86-64-v3"))
            level = FNN_AVX2;
#endif
        known = fnn_portable() ? FNN_BASELINE : level;
    }
    return known;
}

#ifdef FNN_HAS_CLONES
#define FNN_MULTIVERSION(NAME, PARAMS, ARGS, ...)                                                      \
    FNN_UNUSED static void NAME##_baseline PARAMS { __VA_ARGS__ }                                      \
    __attribute__((unused, target("arch=x86-64-v3"))) static void NAME##_v3 PARAMS { __VA_ARGS__ }     \
    __attribute__((unused, target("arch=x86-64-v4"))) static void NAME##_v4 PARAMS { __VA_ARGS__ }     \
    FNN_UNUSED static void NAME PARAMS {                                                               \
        switch (fnn_simd_level()) {                                                                    \
        case FNN_AVX512: NAME##_v4 ARGS; break;                                                        \
        case FNN_AVX2: NAME##_v3 ARGS; break;                                                          \
        default: NAME##_baseline ARGS;                                                                 \
        }                                                                                              \
    }
#else
#define FNN_MULTIVERSION(NAME, PARAMS, ARGS, ...) FNN_UNUSED static void NAME PARAMS { __VA_ARGS__ }
#endif

#endif
