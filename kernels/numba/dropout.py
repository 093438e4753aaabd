"""Inverted dropout with a counter-based generator (Numba); semantics of kernels/reference/dropout.py.

Element i (in C order) of a call with ``seed`` is kept when u_i >= p, u_i being the top 53 bits of
splitmix64(seed + (i + 1) * 0x9E3779B97F4A7C15) over 2**53: the mask is bit-identical to the reference's.
All generator arithmetic is uint64 (wrapping); mixing in a signed int would turn it into float64 in Numba,
so the public kernel is a thin Python function that passes the seed (a Python int 0 .. 2**64-1) as uint64.
"""
import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_ONE = np.uint64(1)
_INV_2_53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, error_model="numpy")
def _dropout_forward(x, p, seed):
    y = np.empty_like(x)
    mask = np.empty_like(x)
    xf, yf, mf = x.reshape(x.size), y.reshape(y.size), mask.reshape(mask.size)
    keep_value = x.dtype.type(1.0 / (1.0 - p))
    zero = x.dtype.type(0)
    z0 = seed
    for i in range(xf.size):
        z0 += _GOLDEN  # seed + (i + 1) * GOLDEN, mod 2**64
        z = (z0 ^ (z0 >> _S30)) * _MIX1
        z = (z ^ (z >> _S27)) * _MIX2
        z = z ^ (z >> _S31)
        u = np.float64(z >> _S11) * _INV_2_53
        m = keep_value if u >= p else zero
        mf[i] = m
        yf[i] = xf[i] * m
    return y, mask


def dropout_forward(x, p, seed):
    """Return ``(y, mask)`` for x (n, k): mask (x's shape and dtype) is 0 or 1/(1-p); y = x * mask.

    p is a Python float in [0, 1), seed a Python int in 0 .. 2**64-1.
    """
    return _dropout_forward(x, float(p), np.uint64(seed))


@numba.njit(cache=True, error_model="numpy")
def dropout_backward(dy, mask):
    """dy * mask, shape of dy."""
    out = np.empty_like(dy)
    df, mf, of = dy.reshape(dy.size), mask.reshape(mask.size), out.reshape(out.size)
    for i in range(of.size):
        of[i] = df[i] * mf[i]
    return out
