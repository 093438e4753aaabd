"""Artificial expansion of image data (Numba); semantics of kernels/reference/augment.py.

x has shape (n, side * side) (row-major square images), float32 or float64. Sample i is rotated by
``angle[i]`` radians about the image centre, then shifted by ``dx[i]`` columns and ``dy[i]`` rows;
bilinear interpolation, pixels from outside the image are 0. The arithmetic is float64 in the
reference's order, one output pixel at a time (no (n, side, side) temporaries).
"""
import math

import numba
import numpy as np


@numba.njit(cache=True, error_model="numpy")
def augment_image(img, side, dx, dy, angle, out):
    """out (side * side,) = the image img (side * side,) rotated by ``angle`` radians about its centre, then
    shifted by dx columns and dy rows (float64 scalars); the fused epoch calls it on its rows of a batch."""
    centre = (side - 1) / 2.0
    cos, sin = math.cos(angle), math.sin(angle)
    for r in range(side):
        v = (r - dy) - centre
        for c in range(side):
            u = (c - dx) - centre
            src_c = (cos * u - sin * v) + centre
            src_r = (sin * u + cos * v) + centre
            r0f = np.floor(src_r)
            c0f = np.floor(src_c)
            fr = src_r - r0f
            fc = src_c - c0f
            r0 = np.int64(r0f)
            c0 = np.int64(c0f)
            acc = 0.0
            # The four neighbours in the reference's order, each term added only when inside.
            if 0 <= r0 < side:
                if 0 <= c0 < side:
                    acc += ((1 - fr) * (1 - fc)) * np.float64(img[r0 * side + c0])
                if 0 <= c0 + 1 < side:
                    acc += ((1 - fr) * fc) * np.float64(img[r0 * side + c0 + 1])
            if 0 <= r0 + 1 < side:
                if 0 <= c0 < side:
                    acc += (fr * (1 - fc)) * np.float64(img[(r0 + 1) * side + c0])
                if 0 <= c0 + 1 < side:
                    acc += (fr * fc) * np.float64(img[(r0 + 1) * side + c0 + 1])
            out[r * side + c] = acc


@numba.njit(cache=True, error_model="numpy")
def augment_images(x, side, dx, dy, angle):
    """Return the transformed images, shape (n, side * side), dtype of x; dx, dy, angle float64 (n,)."""
    out = np.empty_like(x)
    for s in range(x.shape[0]):
        augment_image(x[s], side, dx[s], dy[s], angle[s], out[s])
    return out
