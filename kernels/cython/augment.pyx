"""Artificial expansion of image data, in Cython: see kernels/reference/augment.py (the spec).

One pass per output pixel (_augment.pxi's ``augment_image``, shared with the fused epoch): the inverse map
to the source, then bilinear interpolation with zeros outside the image. Arithmetic is in double in the
reference's order, so results match it to rounding.
"""
import numpy as np
from cython cimport floating

include "_augment.pxi"


def augment_images(const floating[:, ::1] x, Py_ssize_t side, const double[::1] dx, const double[::1] dy,
                   const double[::1] angle):
    """Return the transformed images, shape (n, side * side), dtype of x."""
    cdef Py_ssize_t n = x.shape[0], i
    if x.shape[1] != side * side or not dx.shape[0] == dy.shape[0] == angle.shape[0] == n:
        raise ValueError(f"x must be (n, {side * side}) images and dx, dy, angle hold n = {n} values")
    out_arr = np.zeros((n, side * side), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] out = out_arr
    with nogil:
        for i in range(n):
            augment_image(&x[i, 0], side, dx[i], dy[i], angle[i], &out[i, 0])
    return out_arr
