"""CSR rows times a dense W and W's gradient, in Cython (the spec: kernels/reference/sparse.py).

Both public kernels are drivers over two ``cdef`` block functions that a fused epoch can call on its share
of the work: ``csr_rows_forward`` / ``csr_rows_backward_params`` take the rows of X to use (``rows``, e.g.
a shuffled mini-batch read in place) and a range of output columns [c0, c1) (a thread's units). Each stored
entry x_ij adds x_ij * w[j, c0:c1] to its output row (forward) or x_ij * dy[r, c0:c1] to dw[j] (backward):
contiguous inner loops that vectorize. Index arrays are int32 or int64 (scipy.sparse's), both the same.
"""
import numpy as np

include "_common.pxi"

from libc.stdint cimport int32_t

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline void csr_rows_forward(const floating* data, const index_t* indices, const index_t* indptr,
                                  const int64_t* rows, Py_ssize_t n_rows, const floating* w, Py_ssize_t ldw,
                                  floating* y, Py_ssize_t ldy, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """y[r, c0:c1] += X[rows[r]] @ w[:, c0:c1] for r < n_rows (row-major w and y, row lengths ldw, ldy)."""
    cdef Py_ssize_t r, p, c
    cdef const floating* wj
    cdef floating* yr
    cdef floating v
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
    """dw[:, c0:c1] += X[rows].T @ dy[:, c0:c1] (row-major dy and dw, row lengths lddy, lddw)."""
    cdef Py_ssize_t r, p, c
    cdef const floating* dyr
    cdef floating* dwj
    cdef floating v
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


def csr_dense_forward(const floating[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
                      const floating[:, ::1] w, const floating[::1] b):
    """Return ``X @ w + b``, shape (n, n_out): the product first, then b (as the reference rounds)."""
    _check_csr(data.shape[0], indices, indptr, w.shape[0])
    cdef Py_ssize_t n = indptr.shape[0] - 1, n_out = w.shape[1], i, c
    check_len(b.shape[0], n_out, "b")
    out = np.zeros((n, n_out), dtype=np.float32 if floating is float else np.float64)
    if n == 0 or n_out == 0 or data.shape[0] == 0:
        out += np.asarray(b)
        return out
    cdef floating[:, ::1] y = out
    cdef int64_t[::1] rows = np.arange(n, dtype=np.int64)
    with nogil:
        csr_rows_forward(&data[0], &indices[0], &indptr[0], &rows[0], n, &w[0, 0], n_out, &y[0, 0], n_out, 0,
                         n_out)
        for i in range(n):
            for c in range(n_out):
                y[i, c] += b[c]
    return out


def csr_dense_backward_params(const floating[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
                              const floating[:, ::1] dy, Py_ssize_t n_in):
    """Gradients with respect to the parameters: ``(X.T @ dy, dy.sum(axis=0))``, (n_in, n_out), (n_out,);
    db is summed row by row, as kernels/cython/dense.pyx sums it."""
    _check_csr(data.shape[0], indices, indptr, n_in)
    cdef Py_ssize_t n = indptr.shape[0] - 1, n_out = dy.shape[1], i, c
    check_len(dy.shape[0], n, "dy's first axis")
    dtype = np.float32 if floating is float else np.float64
    out_w = np.zeros((n_in, n_out), dtype=dtype)
    out_b = np.zeros(n_out, dtype=dtype)
    if n == 0 or n_out == 0:
        return out_w, out_b
    cdef floating[:, ::1] dw = out_w
    cdef floating[::1] db = out_b
    cdef int64_t[::1] rows = np.arange(n, dtype=np.int64)
    with nogil:
        for i in range(n):
            for c in range(n_out):
                db[c] += dy[i, c]
        if data.shape[0] and n_in:
            csr_rows_backward_params(&data[0], &indices[0], &indptr[0], &rows[0], n, &dy[0, 0], n_out, &dw[0, 0],
                                     n_out, 0, n_out)
    return out_w, out_b
