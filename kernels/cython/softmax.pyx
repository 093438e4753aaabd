"""Softmax, log-softmax and log-sum-exp along the last axis of a 2-D (n, k) array, in Cython.

The spec is kernels/reference/softmax.py: rows are shifted by their maximum; ``-inf`` entries get
probability 0; a row that is entirely ``-inf`` gives the uniform distribution 1/k, log-softmax -log(k)
and log-sum-exp -inf. Inputs have no NaN or +inf (the Python layer rejects them). Element-wise arithmetic
is in the input dtype; row sums of float32 are accumulated in float64 (NumPy sums them pairwise in
float32), then rounded to float32.
"""
import numpy as np

include "_common.pxi"
include "_softmax.pxi"


cdef inline int check_columns(Py_ssize_t n, Py_ssize_t k) except -1:
    if n > 0 and k == 0:
        raise ValueError("zero-size array to reduction operation maximum which has no identity")
    return 0


def softmax(const floating[:, ::1] z):
    """Probabilities exp(z) / sum(exp(z)) per row, shape (n, k)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    check_columns(n, k)
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    if n:
        with nogil:
            softmax_rows(&z[0, 0], k, &o[0, 0], k, k, n)
    return out


def log_softmax(const floating[:, ::1] z):
    """log(softmax(z)) as (z - max) - log(sum(exp(z - max))), shape (n, k)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating m, lse
    check_columns(n, k)
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((n, k), dtype=dtype)
    scratch = np.empty(k, dtype=dtype)
    cdef floating[:, ::1] o = out
    cdef floating[::1] e = scratch
    with nogil:
        for i in range(n):
            m = row_max(&z[i, 0], k)
            if m == -INFINITY:
                # Shifted row of zeros: log(sum(exp(0))) = log(k).
                lse = vlog(<floating>k)
                for j in range(k):
                    o[i, j] = -lse
                continue
            for j in range(k):
                o[i, j] = z[i, j] - m
            exp_shift_array(&o[i, 0], <floating>0, &e[0], k)
            lse = vlog(<floating>row_sum(&e[0], k))
            for j in range(k):
                o[i, j] = o[i, j] - lse
    return out


def logsumexp(const floating[:, ::1] z):
    """log(sum(exp(z))) per row, shape (n,); -inf for an all -inf row."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating m
    check_columns(n, k)
    dtype = np.float32 if floating is float else np.float64
    out = np.empty(n, dtype=dtype)
    scratch = np.empty(k, dtype=dtype)
    cdef floating[::1] o = out
    cdef floating[::1] e = scratch
    with nogil:
        for i in range(n):
            m = row_max(&z[i, 0], k)
            if m == -INFINITY:
                o[i] = m
                continue
            exp_shift_array(&z[i, 0], m, &e[0], k)
            o[i] = m + vlog(<floating>row_sum(&e[0], k))
    return out


def softmax_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """Vector-Jacobian product of softmax: a * (da - sum(a * da)) per row."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1], i
    check_same_2d(n, k, da.shape[0], da.shape[1])
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    if k == 0:
        return out
    with nogil:
        for i in range(n):
            softmax_backward_row(&a[i, 0], &da[i, 0], &o[i, 0], k)
    return out


def log_softmax_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """Vector-Jacobian product of log-softmax (a = log-probabilities): da - exp(a) * sum(da)."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1], i, j
    cdef floating s
    check_same_2d(n, k, da.shape[0], da.shape[1])
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    if k == 0:
        return out
    with nogil:
        for i in range(n):
            s = <floating>row_sum(&da[i, 0], k)
            exp_shift_array(&a[i, 0], <floating>0, &o[i, 0], k)
            for j in range(k):
                o[i, j] = da[i, j] - o[i, j] * s
    return out


def logsumexp_backward(const floating[:, ::1] z, const floating[::1] da):
    """Gradient of log-sum-exp: da[:, None] * softmax(z), shape (n, k)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating d
    check_columns(n, k)
    check_len(da.shape[0], n, "da")
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    with nogil:
        if n:
            softmax_rows(&z[0, 0], k, &o[0, 0], k, k, n)
        for i in range(n):
            d = da[i]
            for j in range(k):
                o[i, j] = d * o[i, j]
    return out
