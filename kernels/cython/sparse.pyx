"""CSR rows times a dense W and W's gradient, in Cython (the spec: kernels/reference/sparse.py).

Both public kernels are drivers over two block functions (_sparse.pxi) that the fused epoch calls on its share
of the work: ``csr_rows_forward`` / ``csr_rows_backward_params`` take the rows of X to use (``rows``, e.g.
a shuffled mini-batch read in place) and a range of output columns [c0, c1) (a thread's units). Each stored
entry x_ij adds x_ij * w[j, c0:c1] to its output row (forward) or x_ij * dy[r, c0:c1] to dw[j] (backward):
contiguous inner loops that vectorize. Index arrays are int32 or int64 (scipy.sparse's), both the same.
"""
import numpy as np

include "_common.pxi"
include "_sparse.pxi"


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
