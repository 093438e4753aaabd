"""CSR rows times a dense W and W's gradient (Numba); semantics of kernels/reference/sparse.py.

Both public kernels are drivers over two block functions that a fused epoch can call on its share of the
work: ``csr_rows_forward`` / ``csr_rows_backward_params`` take the rows of X to use (``rows``, e.g. a
shuffled mini-batch read in place) and a range of output columns [c0, c1) (a thread's units). Each
stored entry x_ij adds x_ij * w[j, c0:c1] to its output row (forward) or x_ij * dy[r, c0:c1] to dw[j]
(backward), nnz * (c1 - c0) multiply-adds in all: on a CPU with AVX-512 by small_sparse.h's kernels (through
_small_gemm.py, as the products), which keep a row's sums (forward) or dy's row (backward) in registers; else
by loops over row slices, which vectorize (and take arrays whose rows are not runs of adjacent elements).
"""
import numba
import numpy as np

from ._math import column_sum
from ._small_gemm import csr_backward, csr_forward


@numba.njit(cache=True, error_model="numpy")
def _rows_contiguous(a):
    """Whether a 2-D array's rows are runs of adjacent elements (what the C kernels read), at any row stride."""
    return a.strides[1] == a.itemsize and a.strides[0] % a.itemsize == 0


@numba.njit(cache=True, error_model="numpy")
def _row_length(a):
    """The distance between a 2-D array's rows, in elements."""
    return a.strides[0] // a.itemsize


@numba.njit(cache=True, error_model="numpy")
def csr_rows_forward(data, indices, indptr, rows, w, y, c0, c1):
    """y[r, c0:c1] += X[rows[r]] @ w[:, c0:c1] for every r (y (len(rows), n_out) holds the start values)."""
    if rows.shape[0] == 0 or c1 <= c0 or w.shape[0] == 0:
        return
    if _rows_contiguous(w) and _rows_contiguous(y) and csr_forward(
            rows, data, indices, indptr, w[0, c0:], _row_length(w), y[0, c0:], _row_length(y), c1 - c0):
        return
    for r in range(rows.shape[0]):
        i = rows[r]
        yr = y[r, c0:c1]
        for p in range(indptr[i], indptr[i + 1]):
            wj = w[indices[p], c0:c1]
            v = data[p]
            for c in range(c1 - c0):
                yr[c] += v * wj[c]


@numba.njit(cache=True, error_model="numpy")
def csr_rows_backward_params(data, indices, indptr, rows, dy, dw, c0, c1):
    """dw[:, c0:c1] += X[rows].T @ dy[:, c0:c1] (dw (n_in, n_out) holds the start values, usually 0)."""
    if rows.shape[0] == 0 or c1 <= c0 or dw.shape[0] == 0:
        return
    if _rows_contiguous(dy) and _rows_contiguous(dw) and csr_backward(
            rows, data, indices, indptr, dy[0, c0:], _row_length(dy), dw[0, c0:], _row_length(dw), c1 - c0):
        return
    for r in range(rows.shape[0]):
        i = rows[r]
        dyr = dy[r, c0:c1]
        for p in range(indptr[i], indptr[i + 1]):
            dwj = dw[indices[p], c0:c1]
            v = data[p]
            for c in range(c1 - c0):
                dwj[c] += v * dyr[c]


@numba.njit(cache=True, error_model="numpy")
def _check_csr(data, indices, indptr, n_in):
    """The structure the block functions index by: refused here rather than read out of bounds."""
    nnz = data.shape[0]
    n = indptr.shape[0] - 1
    if indices.shape[0] != nnz:
        raise ValueError("indices must have one entry per stored value")
    if n < 0 or indptr[0] != 0 or indptr[n] != nnz:
        raise ValueError("indptr must run from 0 to nnz in n + 1 row starts")
    bad = False
    for i in range(n):
        bad |= indptr[i + 1] < indptr[i]
    for p in range(nnz):
        bad |= (indices[p] < 0) | (indices[p] >= n_in)
    if bad:
        raise ValueError("indptr must not decrease and indices must lie in [0, n_in)")


@numba.njit(cache=True, error_model="numpy")
def csr_dense_forward(data, indices, indptr, w, b):
    """Return ``X @ w + b``, shape (n, n_out): the product first, then b (as the reference rounds)."""
    _check_csr(data, indices, indptr, w.shape[0])
    n = indptr.shape[0] - 1
    n_out = w.shape[1]
    if b.shape[0] != n_out:
        raise ValueError("csr_dense_forward: b must have one element per column of w")
    y = np.zeros((n, n_out), dtype=w.dtype)
    csr_rows_forward(data, indices, indptr, np.arange(n), w, y, 0, n_out)
    for i in range(n):
        for c in range(n_out):
            y[i, c] += b[c]
    return y


@numba.njit(cache=True, error_model="numpy")
def csr_dense_backward_params(data, indices, indptr, dy, n_in):
    """Gradients with respect to the parameters: ``(X.T @ dy, dy.sum(axis=0))``, (n_in, n_out), (n_out,)."""
    _check_csr(data, indices, indptr, n_in)
    n = indptr.shape[0] - 1
    if dy.shape[0] != n:
        raise ValueError("csr_dense_backward_params: dy must have one row per row of X")
    dw = np.zeros((n_in, dy.shape[1]), dtype=dy.dtype)
    csr_rows_backward_params(data, indices, indptr, np.arange(n), dy, dw, 0, dy.shape[1])
    return dw, column_sum(dy)
