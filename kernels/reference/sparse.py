"""The first layer's product when its input is a sparse matrix: CSR rows times a dense W, and W's gradient.

X (n, n_in) comes as its CSR arrays: ``data`` (nnz,) of the float dtype, ``indices`` (nnz,) column
indices and ``indptr`` (n + 1,) row starts, both int32 or both int64 (scipy.sparse's own arrays);
w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous. The meaning is that of
kernels/reference/dense.py with x = X.toarray(), computed without ever making that dense array: the work
and memory follow nnz, not n * n_in. Duplicate column indices within a row add up and their order does not
matter (as in scipy.sparse's products). The Python layer checks the structure (indices in [0, n_in),
indptr non-decreasing from 0 to nnz) before any kernel runs.
"""
import numpy as np
import scipy.sparse


def _csr(data, indices, indptr, n_in):
    x = scipy.sparse.csr_matrix((data, indices, indptr), shape=(indptr.shape[0] - 1, n_in), copy=False)
    x.check_format(full_check=True)  # ValueError for indices out of [0, n_in) or a decreasing indptr
    if indptr[-1] != data.shape[0]:
        raise ValueError(f"indptr must end at nnz = {data.shape[0]}, got {indptr[-1]}")
    return x


def csr_dense_forward(data, indices, indptr, w, b):
    """Return ``X @ w + b``, shape (n, n_out), with X the CSR matrix (data, indices, indptr) of n_in = w.shape[0]
    columns."""
    return np.asarray(_csr(data, indices, indptr, w.shape[0]) @ w) + b


def csr_dense_backward_params(data, indices, indptr, dy, n_in):
    """Gradients with respect to the parameters: ``(X.T @ dy, dy.sum(axis=0))``, shapes (n_in, n_out), (n_out,)."""
    return np.asarray(_csr(data, indices, indptr, n_in).T @ dy), np.sum(dy, axis=0)


def as_csr(data, indices, indptr, n_in):
    """The scipy.sparse CSR matrix of these arrays (checked; no copy): what a fused epoch indexes batches of."""
    return _csr(data, indices, indptr, n_in)


def dense_forward(x, w, b):
    """``csr_dense_forward`` of a scipy.sparse CSR matrix x (the fused epoch's batches)."""
    return csr_dense_forward(x.data, x.indices, x.indptr, w, b)


def dense_backward_params(x, dy):
    """``csr_dense_backward_params`` of a scipy.sparse CSR matrix x."""
    return csr_dense_backward_params(x.data, x.indices, x.indptr, dy, x.shape[1])
