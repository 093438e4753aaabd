"""Softmax, log-softmax and log-sum-exp along the last axis of a 2-D (n, k) array (Numba).

Semantics of kernels/reference/softmax.py: shifted by the row maximum; ``-inf`` entries get probability
0; a row that is entirely ``-inf`` gives the uniform distribution 1/k, log-softmax -log(k) and log-sum-exp
-inf. A NaN in a row makes that whole row NaN (the reference shifts by np.max, which is then NaN), as
does +inf (inf - inf); see _math.shift_max. One pass per row for the max, one for exp (vectorized, see
_math.exp) and one pairwise sum, in NumPy's order. No fastmath here: -inf must stay -inf, NaN NaN.
"""
import math

import numba
import numpy as np

from ._math import exp, pairwise_sum, shift_max


@numba.njit(cache=True, error_model="numpy")
def _exp_shifted(row, m, out):
    """out[j] = exp(row[j] - m); returns their sum. m = -inf (an all -inf row) counts as shift 0 of zeros."""
    k = row.shape[0]
    if m == -np.inf:
        one = row.dtype.type(1)
        for j in range(k):
            out[j] = one
    else:
        for j in range(k):
            out[j] = exp(row[j] - m)
    return pairwise_sum(out, 0, k)


@numba.njit(cache=True, error_model="numpy")
def softmax_row(row, out):
    """out = softmax(row) for one row (1-D views of one length; out may be row)."""
    s = _exp_shifted(row, shift_max(row), out)
    for j in range(out.shape[0]):
        out[j] = out[j] / s


@numba.njit(cache=True, error_model="numpy")
def softmax_backward_row(a, da, out):
    """out = a * (da - sum(a * da)) for one row: the vector-Jacobian product of softmax (out is not da)."""
    k = a.shape[0]
    for j in range(k):
        out[j] = a[j] * da[j]
    s = pairwise_sum(out, 0, k)
    for j in range(k):
        out[j] = a[j] * (da[j] - s)


@numba.njit(cache=True, error_model="numpy")
def softmax(z):
    """Probabilities exp(z) / sum(exp(z)) per row: z (n, k) -> (n, k), z's dtype."""
    n, k = z.shape
    out = np.empty_like(z)
    for i in range(n):
        softmax_row(z[i], out[i])
    return out


@numba.njit(cache=True, error_model="numpy")
def log_softmax(z):
    """(z - max) - log(sum(exp(z - max))) per row: z (n, k) -> (n, k), z's dtype."""
    n, k = z.shape
    out = np.empty_like(z)
    e = np.empty(k, dtype=z.dtype)
    zero = z.dtype.type(0)
    for i in range(n):
        row = z[i]
        m = shift_max(row)
        lse = math.log(_exp_shifted(row, m, e))
        o = out[i]
        if m == -np.inf:
            for j in range(k):
                o[j] = zero - lse
        else:
            for j in range(k):
                o[j] = (row[j] - m) - lse
    return out


@numba.njit(cache=True, error_model="numpy")
def logsumexp(z):
    """log(sum(exp(z))) per row: z (n, k) -> (n,), z's dtype; -inf for an all -inf row."""
    n, k = z.shape
    out = np.empty(n, dtype=z.dtype)
    e = np.empty(k, dtype=z.dtype)
    for i in range(n):
        row = z[i]
        m = shift_max(row)
        s = _exp_shifted(row, m, e)
        out[i] = m if m == -np.inf else m + math.log(s)
    return out


@numba.njit(cache=True, error_model="numpy")
def softmax_backward(z, a, da):
    """Vector-Jacobian product of softmax: a * (da - sum(a * da)) per row, shape (n, k)."""
    n, k = a.shape
    out = np.empty_like(a)
    for i in range(n):
        softmax_backward_row(a[i], da[i], out[i])
    return out


@numba.njit(cache=True, error_model="numpy")
def log_softmax_backward(z, a, da):
    """Vector-Jacobian product of log-softmax (a = log-probabilities): da - exp(a) * sum(da), (n, k)."""
    n, k = a.shape
    out = np.empty_like(a)
    for i in range(n):
        ar, dr, o = a[i], da[i], out[i]
        s = pairwise_sum(dr, 0, k)
        for j in range(k):
            o[j] = dr[j] - exp(ar[j]) * s
    return out


@numba.njit(cache=True, error_model="numpy")
def logsumexp_backward(z, da):
    """Gradient of log-sum-exp: da[:, None] * softmax(z), shape (n, k)."""
    out = softmax(z)
    n, k = out.shape
    for i in range(n):
        d = da[i]
        for j in range(k):
            out[i, j] = d * out[i, j]
    return out
