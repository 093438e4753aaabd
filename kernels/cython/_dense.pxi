# Products on blocks of row-major arrays, shared by dense.pyx (its public kernels) and fused.pyx: small_gemm.h's
# hand-written AVX-512 products (strided, or reading A through row pointers), BLAS (_common.pxi's gemm_rm) and
# plain loops below ``gemm_min`` multiply-adds. Needs _common.pxi and _constants.pxi included first.

cdef extern from *:
    """
    /* A module may use only some of the header's products: the others would warn unused. */
    #if defined(__GNUC__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wunused-function"
    #endif
    #include "small_gemm.h"
    #if defined(__GNUC__)
    #pragma GCC diagnostic pop
    #endif
    """
    int fnn_has_avx512() noexcept nogil
    void fnn_small_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float*, Py_ssize_t, Py_ssize_t, const float*,
                     Py_ssize_t, float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double*, Py_ssize_t, Py_ssize_t,
                     const double*, Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_nn_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float**, const float*, Py_ssize_t,
                             float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_tn_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float**, const float*, Py_ssize_t,
                             float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_nn_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double**, const double*,
                             Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_tn_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double**, const double*,
                             Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil


cdef inline void small_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha, const floating* a,
                               Py_ssize_t rs, Py_ssize_t cs, const floating* b, Py_ssize_t ldb, floating beta,
                               floating* c, Py_ssize_t ldc) noexcept nogil:
    """Row-major c (m, n) = alpha op(a) b + beta c, op(a)(i, p) = a[i * rs + p * cs] (small_gemm.h; only where
    fnn_has_avx512()); k >= 1, beta 0 or 1."""
    if floating is float:
        fnn_small_f(m, n, k, alpha, a, rs, cs, b, ldb, beta, c, ldc)
    else:
        fnn_small_d(m, n, k, alpha, a, rs, cs, b, ldb, beta, c, ldc)


cdef inline void rows_product(bint ta, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                              const floating** rows, const floating* b, Py_ssize_t ldb, floating beta,
                              floating* c, Py_ssize_t ldc) noexcept nogil:
    """The hand-written product with A given by row pointers (small_gemm.h's _rows_ variants): c (m, n) =
    alpha A b + beta c, rows[i] row i of A (``ta`` false), or alpha A^T b + beta c, rows[p] row p of A."""
    if m <= 0 or n <= 0:
        return
    if floating is float:
        if ta:
            fnn_small_rows_tn_f(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
        else:
            fnn_small_rows_nn_f(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
    else:
        if ta:
            fnn_small_rows_tn_d(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
        else:
            fnn_small_rows_nn_d(m, n, k, alpha, rows, b, ldb, beta, c, ldc)


cdef inline bint hand_written(Py_ssize_t rows, Py_ssize_t panel, Py_ssize_t itemsize) noexcept nogil:
    """Whether a product over a batch of ``rows`` rows whose weight block has ``panel`` elements goes to the
    hand-written AVX-512 products: they beat BLAS's call and packing on weights that stay in the caches."""
    return rows <= SMALL_BATCH and panel * itemsize <= SMALL_PANEL_BYTES and fnn_has_avx512()


cdef void product(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha, const floating* a,
                  Py_ssize_t lda, const floating* b, Py_ssize_t ldb, floating beta, floating* c, Py_ssize_t ldc,
                  long long gemm_min) noexcept nogil:
    """Row-major c (m, n) = alpha op(a) op(b) + beta c on blocks of row-major arrays (ld* = row lengths; not
    both transposed; beta 0, which overwrites c even where it held NaN, or 1). Products of at least
    ``gemm_min`` multiply-adds go to the hand-written kernels (``hand_written``: small batches and weight
    blocks, where the CPU has AVX-512; not a b^T) or to BLAS (a b^T only from SMALL_NT multiply-adds); the rest are loops that sum
    over k in order."""
    cdef Py_ssize_t i, j, p
    cdef floating s, av, bv
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min and k > 0:
        if not tb and hand_written(k if ta else m, (m if ta else k) * n, sizeof(floating)):
            small_product(m, n, k, alpha, a, 1 if ta else lda, lda if ta else 1, b, ldb, beta, c, ldc)
            return
        if not tb or m * n * k >= SMALL_NT:
            gemm_rm(ta, tb, <int>m, <int>n, <int>k, alpha, a, <int>lda, b, <int>ldb, beta, c, <int>ldc)
            return
    for i in range(m):
        for j in range(n):
            s = 0
            for p in range(k):
                av = a[p * lda + i] if ta else a[i * lda + p]
                bv = b[j * ldb + p] if tb else b[p * ldb + j]
                s = s + av * bv
            c[i * ldc + j] = alpha * s if beta == 0 else c[i * ldc + j] + alpha * s
