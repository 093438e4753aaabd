"""Fully-connected layer: Y = X @ W + b and its gradients (Numba); semantics of kernels/reference/dense.py.

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous.

Products: the same choices as kernels/cython/dense.pyx (its docstring says why). On a CPU with AVX-512,
batches up to ``_SMALL_BATCH`` rows use the cython backend's hand-written products
(kernels/numba/_small_gemm.py, as kernels/numba/fused.py does), because at such batches OpenBLAS's call
overhead and packing cost more than the arithmetic (10 x 784 x 30 forward: 17 us through BLAS, 3.4 us
hand-written), unless ``_small_ok`` finds the product too large; dy @ w.T uses them up to
``_SMALL_NT_ROWS`` rows, as dx.T = w @ dy.T through two small transposed copies. Everything else goes to
BLAS through ``np.dot`` (gemv when an operand is a vector; transposed operands are passed as transposes,
not copied).
"""
import numba
import numpy as np

from ._math import column_sum
from ._small_gemm import has_avx512, small

# The limits of kernels/cython/dense.pyx (SMALL_BATCH, SMALL_LANE_WORK, SMALL_OUT_BYTES, SMALL_NT_ROWS).
_SMALL_BATCH = 512
_SMALL_LANE_WORK = 1 << 23
_SMALL_OUT_BYTES = 1 << 20
_SMALL_NT_ROWS = 16


@numba.njit(cache=True, error_model="numpy")
def _small_ok(rows, m, n, k, size):
    """Whether c (m, n) = op(a) b, k terms each, over a batch of ``rows``, goes to the hand-written products
    (m, n, k >= 1; size = the element size): kernels/cython/dense.pyx's _small_ok."""
    panel = 128 // size
    return (rows <= _SMALL_BATCH and m * n * size <= _SMALL_OUT_BYTES
            and ((m + 5) // 6 * 6) * ((n + panel - 1) // panel * panel) * k <= _SMALL_LANE_WORK
            and has_avx512())


@numba.njit(cache=True, error_model="numpy")
def dense_forward(x, w, b):
    """Return ``x @ w + b``, shape (n, n_out)."""
    n, n_in = x.shape
    n_out = w.shape[1]
    if w.shape[0] != n_in:
        raise ValueError("dense_forward: w's first axis must have x's second axis' length")
    if b.shape[0] != n_out:
        raise ValueError("dense_forward: b must have one element per column of w")
    if n > 1 and n_in > 0 and n_out > 1 and _small_ok(n, n, n_out, n_in, x.itemsize):
        # y starts as b in every row and the product adds x @ w (beta = 1): y = b + x @ w, rounded as
        # the reference's x @ w + b.
        y = np.empty((n, n_out), dtype=x.dtype)
        for i in range(n):
            for j in range(n_out):
                y[i, j] = b[j]
        small(False, n, n_out, n_in, 1, x.ravel(), n_in, w.ravel(), n_out, 1, y.ravel(), n_out)
        return y
    y = np.dot(x, w)
    for i in range(n):
        for j in range(n_out):
            y[i, j] += b[j]
    return y


@numba.njit(cache=True, error_model="numpy")
def dense_backward_input(dy, w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    n, n_out = dy.shape
    n_in = w.shape[0]
    if w.shape[1] != n_out:
        raise ValueError("dense_backward_input: w's second axis must have dy's second axis' length")
    if 1 < n <= _SMALL_NT_ROWS and n_in > 1 and n_out > 0 and has_avx512():
        # dx.T (n_in, n) = w @ dy.T: the hand-written product reads w as it is; dy.T and dx.T are small
        # row-major copies.
        dyf = dy.ravel()
        dyt = np.empty(n_out * n, dtype=dy.dtype)
        for i in range(n):
            for p in range(n_out):
                dyt[p * n + i] = dyf[i * n_out + p]
        dxt = np.empty(n_in * n, dtype=dy.dtype)
        small(False, n_in, n, n_out, 1, w.ravel(), n_out, dyt, n, 0, dxt, n)
        dx = np.empty((n, n_in), dtype=dy.dtype)
        dxf = dx.ravel()
        for i in range(n):
            for j in range(n_in):
                dxf[i * n_in + j] = dxt[j * n + i]
        return dx
    return np.dot(dy, w.T)


@numba.njit(cache=True, error_model="numpy")
def dense_backward_params(x, dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, (n_in, n_out), (n_out,)."""
    n, n_in = x.shape
    n_out = dy.shape[1]
    if dy.shape[0] != n:
        raise ValueError("dense_backward_params: dy's first axis must have x's first axis' length")
    if n > 0 and n_in > 1 and n_out > 1 and _small_ok(n, n_in, n_out, n, x.itemsize):
        dw = np.empty((n_in, n_out), dtype=x.dtype)
        small(True, n_in, n_out, n, 1, x.ravel(), n_in, dy.ravel(), n_out, 0, dw.ravel(), n_out)
        return dw, column_sum(dy)
    return np.dot(x.T, dy), column_sum(dy)
