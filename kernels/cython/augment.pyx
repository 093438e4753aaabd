"""Artificial expansion of image data, in Cython: see kernels/reference/augment.py (the spec).

One pass per output pixel: the inverse map to the source, then bilinear interpolation with zeros
outside the image. Arithmetic is in double in the reference's order, so results match it to rounding.
"""
import numpy as np
from cython cimport floating
from libc.math cimport cos, floor, sin


def augment_images(const floating[:, ::1] x, Py_ssize_t side, const double[::1] dx, const double[::1] dy,
                   const double[::1] angle):
    """Return the transformed images, shape (n, side * side), dtype of x."""
    cdef Py_ssize_t n = x.shape[0], i, r, c, r0, c0
    cdef double centre = (side - 1) / 2.0
    cdef double ca, sa, u, v, src_r, src_c, fr0, fc0, fr, fc, acc
    out_arr = np.zeros((n, side * side), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] out = out_arr
    with nogil:
        for i in range(n):
            ca = cos(angle[i])
            sa = sin(angle[i])
            for r in range(side):
                v = r - dy[i] - centre
                for c in range(side):
                    u = c - dx[i] - centre
                    src_c = ca * u - sa * v + centre
                    src_r = sa * u + ca * v + centre
                    fr0 = floor(src_r)
                    fc0 = floor(src_c)
                    fr = src_r - fr0
                    fc = src_c - fc0
                    r0 = <Py_ssize_t>fr0
                    c0 = <Py_ssize_t>fc0
                    acc = 0.0
                    # The four neighbours in the reference's order; outside ones contribute nothing.
                    if 0 <= r0 < side:
                        if 0 <= c0 < side:
                            acc += (1 - fr) * (1 - fc) * <double>x[i, r0 * side + c0]
                        if 0 <= c0 + 1 < side:
                            acc += (1 - fr) * fc * <double>x[i, r0 * side + c0 + 1]
                    if 0 <= r0 + 1 < side:
                        if 0 <= c0 < side:
                            acc += fr * (1 - fc) * <double>x[i, (r0 + 1) * side + c0]
                        if 0 <= c0 + 1 < side:
                            acc += fr * fc * <double>x[i, (r0 + 1) * side + c0 + 1]
                    out[i, r * side + c] = <floating>acc
    return out_arr
