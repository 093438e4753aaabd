"""Fully-connected layer: Y = X @ W + b and its gradients (Numba); semantics of kernels/reference/dense.py.

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous.
Products go to BLAS through ``np.dot`` (Numba calls SciPy's BLAS; transposed operands are passed as
transposes, not copied).
"""
import numba
import numpy as np

from ._math import column_sum


@numba.njit(cache=True, error_model="numpy")
def dense_forward(x, w, b):
    """Return ``x @ w + b``, shape (n, n_out)."""
    y = np.dot(x, w)
    n, m = y.shape
    for i in range(n):
        for j in range(m):
            y[i, j] += b[j]
    return y


@numba.njit(cache=True, error_model="numpy")
def dense_backward_input(dy, w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    return np.dot(dy, w.T)


@numba.njit(cache=True, error_model="numpy")
def dense_backward_params(x, dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, (n_in, n_out), (n_out,)."""
    return np.dot(x.T, dy), column_sum(dy)
