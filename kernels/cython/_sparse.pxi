# CSR rows times a dense W and W's gradient as block kernels (kernels/reference/sparse.py), written once:
# sparse.pyx's public kernels and the fused epoch's layer 0 (for a sparse x) call them. On a CPU with AVX-512
# they run small_sparse.h's kernels (which Numba's backend calls too), else the loops below. Needs _common.pxi.

from libc.stdint cimport int32_t

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from *:
    """
    #if defined(__GNUC__)
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wunused-function"
    #endif
    #include "small_sparse.h"
    #if defined(__GNUC__)
    #pragma GCC diagnostic pop
    #endif
    """
    int fnn_has_avx512() noexcept nogil
    void fnn_csr_forward_fi(Py_ssize_t, const int64_t*, const float*, const int32_t*, const int32_t*, const float*,
                            Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_forward_fl(Py_ssize_t, const int64_t*, const float*, const int64_t*, const int64_t*, const float*,
                            Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_forward_di(Py_ssize_t, const int64_t*, const double*, const int32_t*, const int32_t*,
                            const double*, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_forward_dl(Py_ssize_t, const int64_t*, const double*, const int64_t*, const int64_t*,
                            const double*, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_backward_fi(Py_ssize_t, const int64_t*, const float*, const int32_t*, const int32_t*,
                             const float*, Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_backward_fl(Py_ssize_t, const int64_t*, const float*, const int64_t*, const int64_t*,
                             const float*, Py_ssize_t, float*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_backward_di(Py_ssize_t, const int64_t*, const double*, const int32_t*, const int32_t*,
                             const double*, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept nogil
    void fnn_csr_backward_dl(Py_ssize_t, const int64_t*, const double*, const int64_t*, const int64_t*,
                             const double*, Py_ssize_t, double*, Py_ssize_t, Py_ssize_t) noexcept nogil


cdef inline void csr_rows_forward(const floating* data, const index_t* indices, const index_t* indptr,
                                  const int64_t* rows, Py_ssize_t n_rows, const floating* w, Py_ssize_t ldw,
                                  floating* y, Py_ssize_t ldy, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """y[r, c0:c1] += X[rows[r]] @ w[:, c0:c1] for r < n_rows (row-major w and y, row lengths ldw, ldy): with
    small_sparse.h's AVX-512 kernels where the CPU has them, else by loops."""
    cdef Py_ssize_t r, p, c
    cdef const floating* wj
    cdef floating* yr
    cdef floating v
    if fnn_has_avx512():
        if floating is float and index_t is int32_t:
            fnn_csr_forward_fi(n_rows, rows, data, indices, indptr, w + c0, ldw, y + c0, ldy, c1 - c0)
        elif floating is float:
            fnn_csr_forward_fl(n_rows, rows, data, indices, indptr, w + c0, ldw, y + c0, ldy, c1 - c0)
        elif index_t is int32_t:
            fnn_csr_forward_di(n_rows, rows, data, indices, indptr, w + c0, ldw, y + c0, ldy, c1 - c0)
        else:
            fnn_csr_forward_dl(n_rows, rows, data, indices, indptr, w + c0, ldw, y + c0, ldy, c1 - c0)
        return
    for r in range(n_rows):
        yr = y + r * ldy
        for p in range(indptr[rows[r]], indptr[rows[r] + 1]):
            v = data[p]
            wj = w + indices[p] * ldw
            for c in range(c0, c1):
                yr[c] += v * wj[c]


cdef inline void csr_rows_backward_params(const floating* data, const index_t* indices, const index_t* indptr,
                                          const int64_t* rows, Py_ssize_t n_rows, const floating* dy,
                                          Py_ssize_t lddy, floating* dw, Py_ssize_t lddw, Py_ssize_t c0,
                                          Py_ssize_t c1) noexcept nogil:
    """dw[:, c0:c1] += X[rows].T @ dy[:, c0:c1] (row-major dy and dw, row lengths lddy, lddw); as above."""
    cdef Py_ssize_t r, p, c
    cdef const floating* dyr
    cdef floating* dwj
    cdef floating v
    if fnn_has_avx512():
        if floating is float and index_t is int32_t:
            fnn_csr_backward_fi(n_rows, rows, data, indices, indptr, dy + c0, lddy, dw + c0, lddw, c1 - c0)
        elif floating is float:
            fnn_csr_backward_fl(n_rows, rows, data, indices, indptr, dy + c0, lddy, dw + c0, lddw, c1 - c0)
        elif index_t is int32_t:
            fnn_csr_backward_di(n_rows, rows, data, indices, indptr, dy + c0, lddy, dw + c0, lddw, c1 - c0)
        else:
            fnn_csr_backward_dl(n_rows, rows, data, indices, indptr, dy + c0, lddy, dw + c0, lddw, c1 - c0)
        return
    for r in range(n_rows):
        dyr = dy + r * lddy
        for p in range(indptr[rows[r]], indptr[rows[r] + 1]):
            v = data[p]
            dwj = dw + indices[p] * lddw
            for c in range(c0, c1):
                dwj[c] += v * dyr[c]


cdef int _check_csr(Py_ssize_t nnz, const index_t[::1] indices, const index_t[::1] indptr, Py_ssize_t n_in) except -1:
    """The structure the block functions index by: refused here rather than read out of bounds."""
    cdef Py_ssize_t i, n = indptr.shape[0] - 1
    cdef bint bad = False
    check_len(indices.shape[0], nnz, "indices")
    if n < 0 or indptr[0] != 0 or indptr[n] != nnz:
        raise ValueError(f"indptr must run from 0 to nnz = {nnz} in n + 1 row starts")
    with nogil:
        for i in range(n):
            bad |= indptr[i + 1] < indptr[i]
        for i in range(nnz):
            bad |= (indices[i] < 0) | (indices[i] >= n_in)
    if bad:
        raise ValueError(f"indptr must not decrease and indices must lie in [0, {n_in})")
    return 0
