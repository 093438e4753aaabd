"""Fully-connected layer: Y = X @ W + b and its gradients, in Cython (the spec: kernels/reference/dense.py).

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous.
Products go through SciPy's BLAS (sgemm/dgemm) on the row-major arrays; the bias sum is a loop over rows
in NumPy's order.
"""
import numpy as np

include "_common.pxi"


def dense_forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b):
    """Return ``x @ w + b``, shape (n, n_out): the output starts as b in every row and GEMM adds x @ w."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1], i, j
    check_len(w.shape[0], n_in, "w's first axis")
    check_len(b.shape[0], n_out, "b")
    out = np.empty((n, n_out), dtype=np.float32 if floating is float else np.float64)
    if n == 0 or n_out == 0:
        return out
    cdef floating[:, ::1] y = out
    with nogil:
        for i in range(n):
            for j in range(n_out):
                y[i, j] = b[j]
        gemm_rm(False, False, <int>n, <int>n_out, <int>n_in, 1, &x[0, 0] if n_in else NULL, <int>max(n_in, 1),
                &w[0, 0] if n_in else NULL, <int>n_out, 1, &y[0, 0], <int>n_out)
    return out


def dense_backward_input(const floating[:, ::1] dy, const floating[:, ::1] w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    cdef Py_ssize_t n = dy.shape[0], n_out = dy.shape[1], n_in = w.shape[0]
    check_len(w.shape[1], n_out, "w's second axis")
    out = np.empty((n, n_in), dtype=np.float32 if floating is float else np.float64)
    if n == 0 or n_in == 0:
        return out
    cdef floating[:, ::1] dx = out
    with nogil:
        gemm_rm(False, True, <int>n, <int>n_in, <int>n_out, 1, &dy[0, 0] if n_out else NULL, <int>max(n_out, 1),
                &w[0, 0] if n_out else NULL, <int>max(n_out, 1), 0, &dx[0, 0], <int>n_in)
    return out


def dense_backward_params(const floating[:, ::1] x, const floating[:, ::1] dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, shapes (n_in, n_out), (n_out,)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = dy.shape[1], i, j
    check_len(dy.shape[0], n, "dy's first axis")
    dtype = np.float32 if floating is float else np.float64
    out_w = np.empty((n_in, n_out), dtype=dtype)
    out_b = np.zeros(n_out, dtype=dtype)
    cdef floating[:, ::1] dw = out_w
    cdef floating[::1] db = out_b
    if n_out == 0:
        return out_w, out_b
    with nogil:
        for i in range(n):
            for j in range(n_out):
                db[j] += dy[i, j]
        if n_in:
            gemm_rm(True, False, <int>n_in, <int>n_out, <int>n, 1, &x[0, 0] if n else NULL, <int>n_in,
                    &dy[0, 0] if n else NULL, <int>n_out, 0, &dw[0, 0], <int>n_out)
    return out_w, out_b
