/* Hand-written products for mini-batches, C = alpha op(A) B + beta C on row-major blocks, with
   op(A)(i, p) = A[i * rs + p * cs] (rs = lda, cs = 1: A as is; rs = 1, cs = lda: A transposed): up to 6
   rows of C at a time (all of 7-12 rows: the B panel is then read once) and 32 (float) or 16 (double)
   columns in two AVX-512 registers per row, the ragged last columns by a mask. From FNN_PACK_ROWS rows of
   C on, B is copied panel by panel (16 KiB: it stays in L1 even on a 32 KiB one) into an aligned buffer
   on the stack, which every block of rows then reads; there, passes of three registers by 8 rows (24
   independent sums keep both FMA units busier than 12: BENCHMARKS.md) take the last 33-48 columns (float;
   a third pass of one register would have only 6 sums) and every 48 while 80 or more are left, and a last
   register of at most a quarter full goes to small_gemm_tail.h's products. beta is 0 or 1.
   fnn_cpu_has_avx512() says whether they can run on this CPU, fnn_has_avx512() whether callers should use
   them (not under FASTNN_PORTABLE=1, which sends every product to BLAS; cpu_dispatch.h).
   The _rows_ variants read A through an array of row pointers (NN: R[i] is row i of A; TN: R[p] is row p
   of A, i.e. column p of op(A)), so a batch's shuffled rows need not be copied together first.

   Why (measured on the project machine, whose OPENBLAS_CORETYPE selects OpenBLAS's Haswell kernels): at
   batch 10, OpenBLAS's call overhead and packing cost more than the arithmetic (10 x 784 x 30 via NumPy:
   11.7 us with the Haswell kernels, 5.7 with the SkylakeX small-matrix ones); a whole 784-30-10 batch-10
   epoch on one thread took 0.177 s with BLAS and 0.08 s with these; at batches of 128 and 256 they were
   still 10-30% faster (kernels/cython/fused.pyx, SMALL_BATCH). */
#ifndef FNN_SMALL_GEMM_H
#define FNN_SMALL_GEMM_H
#include "cpu_dispatch.h"
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>

#define FNN_KC 128        /* rows of B per packed panel of two registers' columns */
#define FNN_PACK_ROWS 24  /* fewer rows of C than this read B where it is: the copy would not pay */

FNN_UNUSED static int fnn_cpu_has_avx512(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512f") != 0;
    }
    return known;
}

#define FNN_T float
#define FNN_V __m512
#define FNN_W 16
#define FNN_MASK __mmask16
#define FNN_SET1 _mm512_set1_ps
#define FNN_ZERO _mm512_setzero_ps
#define FNN_LOAD _mm512_maskz_loadu_ps
#define FNN_LOADU _mm512_loadu_ps
#define FNN_STOREA _mm512_store_ps
#define FNN_STORE _mm512_mask_storeu_ps
#define FNN_FMA _mm512_fmadd_ps
#define FNN_MUL _mm512_mul_ps
#define FNN_ADD _mm512_add_ps
#define FNN_REDUCE _mm512_reduce_add_ps
#define FNN_TAIL_DOT fnn_tail_dot_f
#define FNN_TAIL_AXPY fnn_tail_axpy_f
#include "small_gemm_tail.h"
#define FNN_MODE 0
#define FNN_NAME fnn_small_f
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME
#define FNN_MODE 1
#define FNN_NAME fnn_small_rows_nn_f
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME
#define FNN_MODE 2
#define FNN_NAME fnn_small_rows_tn_f
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME
#undef FNN_T
#undef FNN_V
#undef FNN_W
#undef FNN_MASK
#undef FNN_SET1
#undef FNN_ZERO
#undef FNN_LOAD
#undef FNN_LOADU
#undef FNN_STOREA
#undef FNN_STORE
#undef FNN_FMA
#undef FNN_MUL
#undef FNN_ADD
#undef FNN_REDUCE
#undef FNN_TAIL_DOT
#undef FNN_TAIL_AXPY

#define FNN_T double
#define FNN_V __m512d
#define FNN_W 8
#define FNN_MASK __mmask8
#define FNN_SET1 _mm512_set1_pd
#define FNN_ZERO _mm512_setzero_pd
#define FNN_LOAD _mm512_maskz_loadu_pd
#define FNN_LOADU _mm512_loadu_pd
#define FNN_STOREA _mm512_store_pd
#define FNN_STORE _mm512_mask_storeu_pd
#define FNN_FMA _mm512_fmadd_pd
#define FNN_MUL _mm512_mul_pd
#define FNN_ADD _mm512_add_pd
#define FNN_REDUCE _mm512_reduce_add_pd
#define FNN_TAIL_DOT fnn_tail_dot_d
#define FNN_TAIL_AXPY fnn_tail_axpy_d
#include "small_gemm_tail.h"
#define FNN_MODE 0
#define FNN_NAME fnn_small_d
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME
#define FNN_MODE 1
#define FNN_NAME fnn_small_rows_nn_d
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME
#define FNN_MODE 2
#define FNN_NAME fnn_small_rows_tn_d
#include "small_gemm_impl.h"
#undef FNN_MODE
#undef FNN_NAME

#else  /* no AVX-512 build: never called (fnn_cpu_has_avx512() is 0) */
FNN_UNUSED static int fnn_cpu_has_avx512(void) { return 0; }
#define FNN_ROWS_STUB(NAME, T) static void NAME(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, T alpha, \
    const T *const *R, const T *B, Py_ssize_t ldb, T beta, T *C, Py_ssize_t ldc) {}
FNN_ROWS_STUB(fnn_small_rows_nn_f, float)
FNN_ROWS_STUB(fnn_small_rows_tn_f, float)
FNN_ROWS_STUB(fnn_small_rows_nn_d, double)
FNN_ROWS_STUB(fnn_small_rows_tn_d, double)
static void fnn_small_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float *A, Py_ssize_t rs,
                        Py_ssize_t cs, const float *B, Py_ssize_t ldb, float beta, float *C, Py_ssize_t ldc) {}
static void fnn_small_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double *A, Py_ssize_t rs,
                        Py_ssize_t cs, const double *B, Py_ssize_t ldb, double beta, double *C, Py_ssize_t ldc) {}
#endif

FNN_UNUSED static int fnn_has_avx512(void) { return fnn_cpu_has_avx512() && !fnn_portable(); }
#endif
