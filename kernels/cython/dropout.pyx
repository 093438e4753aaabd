"""Inverted dropout with a counter-based generator, in Cython (the spec: kernels/reference/dropout.py).

Element i (in C order) of a call with ``seed`` is kept when u_i >= p, where u_i in [0, 1) is the top 53
bits of splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15), in wrapping uint64 arithmetic: the mask is
bit-identical to the reference's. Kept elements are scaled by dtype(1 / (1 - p)).
"""
import numpy as np
from libc.stdint cimport uint64_t

include "_common.pxi"

cdef extern from *:
    """
    /* (fnn_splitmix_uniform is in _common.pxi: the fused epoch draws the same masks) */
    /* mask_i = u_i >= p ? scale : 0, y_i = x_i * mask_i. Multiversioned (FNN_MULTIVERSION): the 64-bit
       multiplies vectorize only with AVX-512 (vpmullq), 20x faster than scalar code. */
    #define FNN_DROPOUT(T, S)                                                                          \
    FNN_MULTIVERSION(fnn_dropout_##S, (const T *x, T *y, T *mask, Py_ssize_t n, uint64_t seed, double p, \
                                       T scale), (x, y, mask, n, seed, p, scale),                     \
        for (Py_ssize_t i = 0; i < n; i++) {                                                           \
            T m = fnn_splitmix_uniform(seed, (uint64_t)i + 1) >= p ? scale : (T)0;                     \
            mask[i] = m;                                                                               \
            y[i] = x[i] * m;                                                                           \
        })
    FNN_DROPOUT(float, f)
    FNN_DROPOUT(double, d)
    """
    void fnn_dropout_f(const float*, float*, float*, Py_ssize_t, uint64_t, double, float) noexcept nogil
    void fnn_dropout_d(const double*, double*, double*, Py_ssize_t, uint64_t, double, double) noexcept nogil


def dropout_forward(const floating[:, ::1] x, double p, uint64_t seed):
    """Return ``(y, mask)``: mask (same shape and dtype as x) is 0 or 1/(1-p); y = x * mask."""
    cdef Py_ssize_t size = x.shape[0] * x.shape[1], t
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    dtype = np.float32 if floating is float else np.float64
    out_y = np.empty((x.shape[0], x.shape[1]), dtype=dtype)
    out_mask = np.empty((x.shape[0], x.shape[1]), dtype=dtype)
    if size == 0:
        return out_y, out_mask
    cdef floating[:, ::1] y = out_y
    cdef floating[:, ::1] mask = out_mask
    cdef const floating* xp = &x[0, 0]
    cdef floating* yp = &y[0, 0]
    cdef floating* mp = &mask[0, 0]
    with nogil:
        if floating is float:
            fnn_dropout_f(xp, yp, mp, size, seed, p, scale)
        else:
            fnn_dropout_d(xp, yp, mp, size, seed, p, scale)
    return out_y, out_mask


def dropout_backward(const floating[:, ::1] dy, const floating[:, ::1] mask):
    """dy * mask."""
    cdef Py_ssize_t size = dy.shape[0] * dy.shape[1], t
    check_same_2d(dy.shape[0], dy.shape[1], mask.shape[0], mask.shape[1])
    out = np.empty((dy.shape[0], dy.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* dp = &dy[0, 0]
    cdef const floating* mp = &mask[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = dp[t] * mp[t]
    return out
