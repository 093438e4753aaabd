"""Inverted dropout with a counter-based generator, in Cython (the spec: kernels/reference/dropout.py).

Element i (in C order) of a call with ``seed`` is kept when u_i >= p, where u_i in [0, 1) is the top 53
bits of splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15), in wrapping uint64 arithmetic: the mask is
bit-identical to the reference's. Kept elements are scaled by dtype(1 / (1 - p)). The kernels are
_dropout.pxi's block kernels (shared with the fused epoch) on the whole array, as one row.
"""
import numpy as np
from libc.stdint cimport uint64_t

include "_common.pxi"
include "_dropout.pxi"


def dropout_forward(const floating[:, ::1] x, double p, uint64_t seed):
    """Return ``(y, mask)``: mask (same shape and dtype as x) is 0 or 1/(1-p); y = x * mask."""
    cdef Py_ssize_t size = x.shape[0] * x.shape[1]
    dtype = np.float32 if floating is float else np.float64
    out_y = np.empty((x.shape[0], x.shape[1]), dtype=dtype)
    out_mask = np.empty((x.shape[0], x.shape[1]), dtype=dtype)
    if size == 0:
        return out_y, out_mask
    cdef floating[:, ::1] y = out_y
    cdef floating[:, ::1] mask = out_mask
    with nogil:
        dropout_block(&x[0, 0], size, &y[0, 0], size, &mask[0, 0], size, 1, 0, size, size, p, seed)
    return out_y, out_mask


def dropout_backward(const floating[:, ::1] dy, const floating[:, ::1] mask):
    """dy * mask."""
    cdef Py_ssize_t size = dy.shape[0] * dy.shape[1]
    check_same_2d(dy.shape[0], dy.shape[1], mask.shape[0], mask.shape[1])
    out = np.empty((dy.shape[0], dy.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        mask_block(&dy[0, 0], size, &mask[0, 0], size, &o[0, 0], size, 1, 0, size)
    return out
