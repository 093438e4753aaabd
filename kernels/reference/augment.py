"""Artificial expansion of image data: per-sample rotation and shift with bilinear interpolation.

x has shape (n, side * side) (row-major square images), float32 or float64. Sample i is rotated by
``angle[i]`` radians about the image centre, then shifted by ``dx[i]`` columns (right) and ``dy[i]`` rows
(down); pixels that come from outside the image are 0. dx, dy and angle are float64 arrays of shape
(n,), drawn by the caller from its seeded generator, so every backend produces the same images.
"""
import numpy as np


def augment_images(x, side, dx, dy, angle):
    """Return the transformed images, shape (n, side * side), dtype of x."""
    n = x.shape[0]
    img = x.reshape(n, side, side).astype(np.float64)
    centre = (side - 1) / 2.0
    rows, cols = np.meshgrid(np.arange(side, dtype=np.float64), np.arange(side, dtype=np.float64), indexing="ij")
    # Inverse map: where in the source each output pixel comes from.
    u = cols[None] - dx[:, None, None] - centre
    v = rows[None] - dy[:, None, None] - centre
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    src_c = cos * u - sin * v + centre
    src_r = sin * u + cos * v + centre
    r0 = np.floor(src_r)
    c0 = np.floor(src_c)
    fr = src_r - r0
    fc = src_c - c0
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    batch = np.arange(n)[:, None, None]
    out = np.zeros((n, side, side), dtype=np.float64)
    for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
        rr = r0 + dr
        cc = c0 + dc
        inside = (rr >= 0) & (rr < side) & (cc >= 0) & (cc < side)
        vals = img[batch, np.clip(rr, 0, side - 1), np.clip(cc, 0, side - 1)]
        out += np.where(inside, weight * vals, 0.0)
    return out.reshape(n, side * side).astype(x.dtype)
