"""Artificial expansion of the training data: random small shifts and rotations of square images.

Beside L1, L2 and dropout, the fourth regularizer the seeds name: each epoch sees a slightly different
copy of every training image, so the network cannot memorise pixel positions. The transform runs on
the fly in the current backend's compiled ``augment_images`` kernel.
"""
import math

import numpy as np

from .backend import kernels

__all__ = ["Augment", "apply"]


class Augment:
    """Randomly shift (by whole pixels) and rotate (by small angles) flattened square images.

    Parameters
    ----------
    max_shift : int, default 2
        Shifts dx (columns, right) and dy (rows, down) are integers drawn uniformly from
        ``[-max_shift, max_shift]``.
    max_angle_deg : float, default 10.0
        Angles are drawn uniformly from ``[-max_angle_deg, max_angle_deg]`` degrees (applied in radians,
        about the image centre, with bilinear interpolation).
    side : int, default 28
        Images are ``side x side``, flattened row-major: ``x`` has shape (n, side * side).

    Call it as ``augment(x, rng)`` with ``rng`` a :class:`numpy.random.Generator`; pixels that come from
    outside the image are 0. Pass it to ``model.fit(..., augment=Augment())``.
    """

    def __init__(self, max_shift=2, max_angle_deg=10.0, side=28):
        if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)) or max_shift < 0:
            raise ValueError(f"max_shift must be an integer >= 0, got {max_shift!r}")
        max_angle_deg = float(max_angle_deg)
        if not (0.0 <= max_angle_deg <= 180.0):
            raise ValueError(f"max_angle_deg must be in [0, 180], got {max_angle_deg!r}")
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 1:
            raise ValueError(f"side must be a positive integer, got {side!r}")
        self.max_shift = int(max_shift)
        self.max_angle_deg = max_angle_deg
        self.side = int(side)

    def __repr__(self):
        return f"Augment(max_shift={self.max_shift}, max_angle_deg={self.max_angle_deg}, side={self.side})"

    def draw(self, n, rng):
        """The random parameters for ``n`` images: ``(dx, dy, angle)``, float64 arrays of shape (n,).

        Draws in this order from ``rng``: dx, dy (integers), angle (radians), so ``augment(x, rng)``
        with an identically seeded generator applies exactly these.
        """
        k = self.max_shift
        dx = rng.integers(-k, k, size=n, endpoint=True).astype(np.float64)
        dy = rng.integers(-k, k, size=n, endpoint=True).astype(np.float64)
        limit = math.radians(self.max_angle_deg)
        angle = rng.uniform(-limit, limit, size=n)
        return dx, dy, angle

    def __call__(self, x, rng):
        """Return a new array of transformed images, shape (n, side * side), dtype of ``x``.

        ``x`` is float32 or float64 of shape (n, side * side); ``rng`` a ``numpy.random.Generator``.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.side * self.side:
            raise ValueError(
                f"Augment(side={self.side}) expects images of shape (n, {self.side * self.side}), got {x.shape}"
            )
        if x.dtype not in (np.float32, np.float64):
            raise ValueError(f"Augment expects float32 or float64 images, got {x.dtype}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return apply(np.ascontiguousarray(x), self, np.column_stack(self.draw(x.shape[0], rng)))


def apply(x, augment, table):
    """The images x (n, side * side) transformed by the current backend's ``augment_images`` with the
    parameters table (n, 3) of rows (dx, dy, angle) (``Augment.draw``'s, in columns)."""
    return kernels().augment_images(x, augment.side, table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())
