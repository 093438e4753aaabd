"""Element-wise activations and their backward passes, in Cython (the spec: kernels/reference/activations.py).

``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``; arrays are 2-D (n, k), float32 or float64,
C-contiguous; outputs are new arrays of the input dtype. Derivatives at the kinks are taken from the left
(0 for ReLU). Arithmetic is in the input dtype, in the reference's order; exp/tanh are the vectorizable
versions of _common.pxi (within 2.3 ulp of the exact values, as NumPy's are within 2.4).
"""
import numpy as np
from libc.string cimport memcpy

include "_common.pxi"


def sigmoid(const floating[:, ::1] z):
    """1 / (1 + exp(-z)), without overflow for any finite z."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        sigmoid_array(zp, op, size)
    return out


def sigmoid_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * (a * (1 - a))."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    check_same_2d(a.shape[0], a.shape[1], da.shape[0], da.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = dp[t] * (ap[t] * (<floating>1 - ap[t]))
    return out


def tanh(const floating[:, ::1] z):
    """tanh(z)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        tanh_array(zp, op, size)
    return out


def tanh_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * (1 - a * a)."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    check_same_2d(a.shape[0], a.shape[1], da.shape[0], da.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = dp[t] * (<floating>1 - ap[t] * ap[t])
    return out


def relu(const floating[:, ::1] z):
    """max(z, 0); NaN stays NaN and -0.0 becomes 0.0, as np.maximum."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            v = zp[t]
            op[t] = 0 if v <= 0 else v
    return out


def relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da where z > 0, else 0 (also at z = 0)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    cdef floating d
    with nogil:
        for t in range(size):
            d = dp[t]  # loaded unconditionally, so the select vectorizes
            op[t] = d if zp[t] > 0 else 0
    return out


def leaky_relu(const floating[:, ::1] z, double slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float (rounded to the dtype first)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating s = <floating>slope, v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            v = zp[t]
            op[t] = v if v > 0 else s * v
    return out


def leaky_relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da,
                        double slope):
    """da where z > 0, slope * da elsewhere."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating s = <floating>slope, d
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            d = dp[t]
            op[t] = d if zp[t] > 0 else s * d
    return out


def prelu(const floating[:, ::1] z, const floating[::1] alpha):
    """Leaky ReLU with a learned slope per feature; alpha has shape (k,)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating v, al
    check_len(alpha.shape[0], k, "alpha")
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    with nogil:
        for i in range(n):
            for j in range(k):
                v = z[i, j]
                al = alpha[j]
                o[i, j] = v if v > 0 else al * v
    return out


def prelu_backward(const floating[:, ::1] z, const floating[::1] alpha, const floating[:, ::1] da):
    """Return ``(dz, dalpha)``; dalpha (k,) sums ``da * z`` over the batch where z <= 0."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating v, d, al, ad, dv
    check_len(alpha.shape[0], k, "alpha")
    check_same_2d(n, k, da.shape[0], da.shape[1])
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((n, k), dtype=dtype)
    out_alpha = np.zeros(k, dtype=dtype)
    cdef floating[:, ::1] dz = out
    cdef floating[::1] dal = out_alpha
    with nogil:
        for i in range(n):
            for j in range(k):
                v = z[i, j]
                d = da[i, j]
                al = alpha[j]
                ad = al * d
                dv = d * v
                # z <= 0, as the reference: a NaN z takes the da branch and adds nothing to dalpha.
                dz[i, j] = ad if v <= 0 else d
                dal[j] += dv if v <= 0 else 0
    return out, out_alpha


def softplus(const floating[:, ::1] z):
    """log(1 + exp(z)) computed as max(z, 0) + log1p(exp(-|z|)): no overflow, exact for large |z|."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        softplus_array(zp, op, size)
    return out


def softplus_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * sigmoid(z)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        mul_sigmoid_array(dp, zp, op, size)
    return out


def identity(const floating[:, ::1] z):
    """A copy of z."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1]
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        memcpy(&o[0, 0], &z[0, 0], size * sizeof(floating))
    return out


def identity_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """A copy of da."""
    cdef Py_ssize_t size = da.shape[0] * da.shape[1]
    out = np.empty((da.shape[0], da.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        memcpy(&o[0, 0], &da[0, 0], size * sizeof(floating))
    return out


def maxout(const floating[:, ::1] z, Py_ssize_t pieces):
    """Max over groups of ``pieces`` adjacent columns.

    z has shape (n, units * pieces); unit j takes columns j*pieces ... j*pieces + pieces - 1.
    Returns ``(a, idx)``: a (n, units) and idx (n, units) int64, the winning piece (first on ties; a NaN
    wins, as in np.argmax).
    """
    cdef Py_ssize_t n = z.shape[0], width = z.shape[1], units, i, j, q, best
    cdef floating m, v
    if pieces < 1 or width % pieces:
        raise ValueError(f"cannot split {width} columns into groups of {pieces}")
    units = width // pieces
    out = np.empty((n, units), dtype=np.float32 if floating is float else np.float64)
    out_idx = np.empty((n, units), dtype=np.int64)
    cdef floating[:, ::1] a = out
    cdef int64_t[:, ::1] idx = out_idx
    with nogil:
        for i in range(n):
            for j in range(units):
                best = 0
                m = z[i, j * pieces]
                for q in range(1, pieces):
                    if m != m:
                        break
                    v = z[i, j * pieces + q]
                    if v > m or v != v:
                        m = v
                        best = q
                a[i, j] = m
                idx[i, j] = best
    return out, out_idx


def maxout_backward(const floating[:, ::1] da, const int64_t[:, ::1] idx, Py_ssize_t pieces):
    """Route ``da`` (n, units) to the winning pieces; returns dz (n, units * pieces)."""
    cdef Py_ssize_t n = da.shape[0], units = da.shape[1], i, j
    cdef int64_t q
    cdef bint bad = False
    if pieces < 1:
        raise ValueError(f"pieces must be >= 1, got {pieces}")
    check_same_2d(n, units, idx.shape[0], idx.shape[1])
    out = np.zeros((n, units * pieces), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] dz = out
    with nogil:
        for i in range(n):
            for j in range(units):
                q = idx[i, j]
                if q < 0 or q >= pieces:
                    bad = True
                else:
                    dz[i, j * pieces + q] = da[i, j]
    if bad:
        raise IndexError(f"maxout indices must lie in [0, {pieces})")
    return out
