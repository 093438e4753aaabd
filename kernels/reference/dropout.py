"""Inverted dropout with a counter-based generator, so every backend draws the same mask.

Element i (in C order) of a call with ``seed`` is kept when u_i >= p, where u_i in [0, 1) is the top 53
bits of splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15). Kept elements are scaled by 1 / (1 - p), so
the expected output equals the input and inference needs no rescaling. 0 <= p < 1; seed is 0 .. 2**64-1.
"""
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def uniform(seed, size):
    """The generator's first ``size`` draws for ``seed``, float64 in [0, 1)."""
    i = np.arange(1, size + 1, dtype=np.uint64)
    z = np.uint64(seed) + i * GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def dropout_forward(x, p, seed):
    """Return ``(y, mask)``: mask (same shape and dtype as x) is 0 or 1/(1-p); y = x * mask."""
    keep = uniform(seed, x.size).reshape(x.shape) >= p
    mask = np.where(keep, x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0))
    return x * mask, mask


def dropout_backward(dy, mask):
    return dy * mask
