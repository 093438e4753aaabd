"""small_gemm.h's hand-written AVX-512 products and small_sparse.h's CSR kernels as externally visible C
functions, for Numba.

small_gemm.h's (and small_sparse.h's) functions are ``static`` (each Cython module that includes them gets its
own copy), so Numba cannot reach them. This module defines non-static forwarders with stable names and exports
their addresses in ``ADDRESSES`` (name -> int); kernels/numba/_small_gemm.py registers them with
``llvmlite.binding.add_symbol``, and Numba code calls them by name, which keeps ``cache=True`` working
(a baked-in function address would not cache). Signatures (row-major blocks, T = float for ``_f``,
double for ``_d``; Py_ssize_t is intptr_t; C = alpha op(A) B + beta C with beta 0 or 1):

    int  fastnn_has_avx512(void)
    void fastnn_small_{f,d}(m, n, k, T alpha, const T *A, rs, cs, const T *B, ldb, T beta, T *C, ldc)
    void fastnn_small_rows_{nn,tn}_{f,d}(m, n, k, T alpha, const T *const *R, const T *B, ldb, T beta,
                                         T *C, ldc)

    void fastnn_csr_{forward,backward}_{f,d}{i,l}(n_rows, const int64_t *rows, const T *data, const I *indices,
                                                  const I *indptr, const T *src, ld_src, T *dst, ld_dst, n)

with op(A)(i, p) = A[i * rs + p * cs] (strided), R[i][p] (rows_nn: R has m entries, the rows of A) or
R[p][i] (rows_tn: R has k entries, the rows of the k x m A); the CSR kernels as small_sparse.h's (I = int32_t
for i, int64_t for l; src is w or dy, dst y or dw, each at its first column). Unlike small_gemm.h's, they do
nothing (C untouched) on a CPU without AVX-512, so a caller that forgot to check
``fastnn_has_avx512()`` gets no result rather than an illegal instruction. ``fastnn_has_avx512()`` is 0
under FASTNN_PORTABLE=1 (callers then use BLAS), while the products still compute on an AVX-512 CPU, so
that their own tests run in both modes.
"""

cdef extern from *:
    """
    #include "small_sparse.h"
    #define FASTNN_EXPORT __attribute__((visibility("default")))
    FASTNN_EXPORT int fastnn_has_avx512(void) { return fnn_has_avx512(); }
    static int fastnn_cpu_has_avx512(void) { return fnn_cpu_has_avx512(); }
    #define FASTNN_SMALL(T, S) \
    FASTNN_EXPORT void fastnn_small_##S(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, T alpha, const T *A, \
            Py_ssize_t rs, Py_ssize_t cs, const T *B, Py_ssize_t ldb, T beta, T *C, Py_ssize_t ldc) { \
        if (fnn_cpu_has_avx512()) fnn_small_##S(m, n, k, alpha, A, rs, cs, B, ldb, beta, C, ldc); \
    }
    #define FASTNN_ROWS(T, S) \
    FASTNN_EXPORT void fastnn_small_##S(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, T alpha, \
            const T *const *R, const T *B, Py_ssize_t ldb, T beta, T *C, Py_ssize_t ldc) { \
        if (fnn_cpu_has_avx512()) fnn_small_##S(m, n, k, alpha, R, B, ldb, beta, C, ldc); \
    }
    FASTNN_SMALL(float, f)
    FASTNN_SMALL(double, d)
    FASTNN_ROWS(float, rows_nn_f)
    FASTNN_ROWS(float, rows_tn_f)
    FASTNN_ROWS(double, rows_nn_d)
    FASTNN_ROWS(double, rows_tn_d)
    #define FASTNN_CSR(KERNEL, S, T, I) \
    FASTNN_EXPORT void fastnn_csr_##KERNEL##_##S(Py_ssize_t n_rows, const int64_t *rows, const T *data, \
            const I *indices, const I *indptr, const T *src, Py_ssize_t ld_src, T *dst, Py_ssize_t ld_dst, \
            Py_ssize_t n) { \
        if (fnn_cpu_has_avx512()) \
            fnn_csr_##KERNEL##_##S(n_rows, rows, data, indices, indptr, src, ld_src, dst, ld_dst, n); \
    }
    FASTNN_CSR(forward, fi, float, int32_t)
    FASTNN_CSR(forward, fl, float, int64_t)
    FASTNN_CSR(forward, di, double, int32_t)
    FASTNN_CSR(forward, dl, double, int64_t)
    FASTNN_CSR(backward, fi, float, int32_t)
    FASTNN_CSR(backward, fl, float, int64_t)
    FASTNN_CSR(backward, di, double, int32_t)
    FASTNN_CSR(backward, dl, double, int64_t)
    """
    # Declared without parameters: Cython only takes their addresses (the real prototypes are above).
    int fastnn_has_avx512() noexcept nogil
    int fastnn_cpu_has_avx512() noexcept nogil
    void fastnn_small_f() noexcept nogil
    void fastnn_small_d() noexcept nogil
    void fastnn_small_rows_nn_f() noexcept nogil
    void fastnn_small_rows_tn_f() noexcept nogil
    void fastnn_small_rows_nn_d() noexcept nogil
    void fastnn_small_rows_tn_d() noexcept nogil
    void fastnn_csr_forward_fi() noexcept nogil
    void fastnn_csr_forward_fl() noexcept nogil
    void fastnn_csr_forward_di() noexcept nogil
    void fastnn_csr_forward_dl() noexcept nogil
    void fastnn_csr_backward_fi() noexcept nogil
    void fastnn_csr_backward_fl() noexcept nogil
    void fastnn_csr_backward_di() noexcept nogil
    void fastnn_csr_backward_dl() noexcept nogil

ADDRESSES = {
    "fastnn_has_avx512": <size_t>&fastnn_has_avx512,
    "fastnn_small_f": <size_t>&fastnn_small_f,
    "fastnn_small_d": <size_t>&fastnn_small_d,
    "fastnn_small_rows_nn_f": <size_t>&fastnn_small_rows_nn_f,
    "fastnn_small_rows_tn_f": <size_t>&fastnn_small_rows_tn_f,
    "fastnn_small_rows_nn_d": <size_t>&fastnn_small_rows_nn_d,
    "fastnn_small_rows_tn_d": <size_t>&fastnn_small_rows_tn_d,
    "fastnn_csr_forward_fi": <size_t>&fastnn_csr_forward_fi,
    "fastnn_csr_forward_fl": <size_t>&fastnn_csr_forward_fl,
    "fastnn_csr_forward_di": <size_t>&fastnn_csr_forward_di,
    "fastnn_csr_forward_dl": <size_t>&fastnn_csr_forward_dl,
    "fastnn_csr_backward_fi": <size_t>&fastnn_csr_backward_fi,
    "fastnn_csr_backward_fl": <size_t>&fastnn_csr_backward_fl,
    "fastnn_csr_backward_di": <size_t>&fastnn_csr_backward_di,
    "fastnn_csr_backward_dl": <size_t>&fastnn_csr_backward_dl,
}


fastnn_has_avx512()  # FASTNN_PORTABLE and the CPU are read once, when the module loads


def has_avx512():
    """Whether callers use the products: the CPU has AVX-512F and FASTNN_PORTABLE=1 is not set."""
    return fastnn_has_avx512() != 0


def cpu_has_avx512():
    """Whether this CPU has AVX-512F, i.e. whether the products compute anything (FASTNN_PORTABLE aside)."""
    return fastnn_cpu_has_avx512() != 0
