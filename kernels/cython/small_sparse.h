/* Hand-written AVX-512 block kernels of a CSR x times a dense W (kernels/reference/sparse.py's semantics),
   for layer 0 on sparse input: the rows rows[r] (r < n_rows) of x and n columns of W, y and dw (callers pass
   pointers at their first column):

     fnn_csr_forward_<S><I>:  y[r, :n] += x[rows[r]] @ w[:, :n]
     fnn_csr_backward_<S><I>: dw[j, :n] += x[rows[r], j] * dy[r, :n] for every stored x[rows[r], j]

   S is f / d (float / double), I is i / l (int32 / int64 indices). Passes of up to FNN_SP_REGS registers of
   columns: the forward keeps a row's sums in registers over all its stored values, so that a value costs one
   load and one FMA a register (the plain loops load and store y for each value too); the backward keeps dy's
   row in registers while it adds into the rows of dw. The last register of a pass is masked.
   Needs small_gemm.h (callers check fnn_has_avx512(); without AVX-512 the kernels do nothing). */
#ifndef FNN_SMALL_SPARSE_H
#define FNN_SMALL_SPARSE_H
#include <stdint.h>
#include "small_gemm.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define FNN_SP_REGS 8  /* 128 float (64 double) columns a pass: a layer of up to that many units in one */

#undef FNN_T  /* (small_gemm.h leaves its double names defined) */
#undef FNN_V
#undef FNN_W
#undef FNN_MASK
#undef FNN_SET1
#undef FNN_LOADU
#undef FNN_FMA
#define FNN_T float
#define FNN_V __m512
#define FNN_W 16
#define FNN_MASK __mmask16
#define FNN_SET1 _mm512_set1_ps
#define FNN_LOADU _mm512_loadu_ps
#define FNN_LOADM _mm512_maskz_loadu_ps
#define FNN_STOREU _mm512_storeu_ps
#define FNN_STOREM _mm512_mask_storeu_ps
#define FNN_FMA _mm512_fmadd_ps
#define FNN_I int32_t
#define FNN_SP(name) name##_fi
#include "small_sparse_impl.h"
#undef FNN_I
#undef FNN_SP
#define FNN_I int64_t
#define FNN_SP(name) name##_fl
#include "small_sparse_impl.h"
#undef FNN_I
#undef FNN_SP
#undef FNN_T
#undef FNN_V
#undef FNN_W
#undef FNN_MASK
#undef FNN_SET1
#undef FNN_LOADU
#undef FNN_LOADM
#undef FNN_STOREU
#undef FNN_STOREM
#undef FNN_FMA

#define FNN_T double
#define FNN_V __m512d
#define FNN_W 8
#define FNN_MASK __mmask8
#define FNN_SET1 _mm512_set1_pd
#define FNN_LOADU _mm512_loadu_pd
#define FNN_LOADM _mm512_maskz_loadu_pd
#define FNN_STOREU _mm512_storeu_pd
#define FNN_STOREM _mm512_mask_storeu_pd
#define FNN_FMA _mm512_fmadd_pd
#define FNN_I int32_t
#define FNN_SP(name) name##_di
#include "small_sparse_impl.h"
#undef FNN_I
#undef FNN_SP
#define FNN_I int64_t
#define FNN_SP(name) name##_dl
#include "small_sparse_impl.h"
#undef FNN_I
#undef FNN_SP

#else  /* no AVX-512 build: never called (fnn_cpu_has_avx512() is 0) */
#define FNN_CSR_STUBS(S, T, I)                                                                               \
static void fnn_csr_forward_##S(Py_ssize_t n_rows, const int64_t *rows, const T *data, const I *indices,     \
        const I *indptr, const T *w, Py_ssize_t ldw, T *y, Py_ssize_t ldy, Py_ssize_t n) {}                 \
static void fnn_csr_backward_##S(Py_ssize_t n_rows, const int64_t *rows, const T *data, const I *indices,    \
        const I *indptr, const T *dy, Py_ssize_t lddy, T *dw, Py_ssize_t lddw, Py_ssize_t n) {}
FNN_CSR_STUBS(fi, float, int32_t)
FNN_CSR_STUBS(fl, float, int64_t)
FNN_CSR_STUBS(di, double, int32_t)
FNN_CSR_STUBS(dl, double, int64_t)
#endif
#endif
