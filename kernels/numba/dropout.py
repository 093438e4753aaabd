"""Inverted dropout with a counter-based generator (Numba); semantics of kernels/reference/dropout.py.

Element (i, j) of an (n, k) call with ``seed`` (counter i * k + j, C order) is kept when u >= p, u being
the top 53 bits of splitmix64(seed + (counter + 1) * 0x9E3779B97F4A7C15) over 2**53: the mask is
bit-identical to the reference's. Written once as block kernels (``dropout_block``, ``mask_block``) that
the fused epoch calls on its share of a layer's columns and the public kernels on whole arrays. All
generator arithmetic is uint64 (wrapping); mixing in a signed int would turn it into float64 in Numba, so
the public kernel is a thin Python function that passes the seed (a Python int 0 .. 2**64-1) as uint64.
"""
import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0


@numba.njit(cache=True, error_model="numpy", inline="always")
def uniform(seed, counter):
    """The generator's draw ``counter`` (1, 2, ...) for ``seed`` (uint64s), a float64 in [0, 1)."""
    z = seed + counter * _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z = z ^ (z >> _S31)
    return np.float64(z >> _S11) * _INV_2_53


@numba.njit(cache=True, error_model="numpy")
def dropout_block(src, lds, dst, ldd, mask, ldm, nb, c0, c1, n_cols, p, seed):
    """Inverted dropout of columns c0 .. c1 of an (nb, n_cols) layer: mask = 1/(1-p) where the element's
    draw is >= p, else 0, and dst = src * mask (dst may be src). p: float64; seed: uint64."""
    w = c1 - c0
    if w <= 0:
        return
    keep = dst.dtype.type(1.0 / (1.0 - p))
    zero = dst.dtype.type(0)
    for i in range(nb):
        si = src[i * lds + c0:i * lds + c1]
        di = dst[i * ldd + c0:i * ldd + c1]
        mi = mask[i * ldm + c0:i * ldm + c1]
        first = np.uint64(i * n_cols + c0 + 1)  # the counter of element (i, c0), plus one
        for j in range(w):
            m = keep if uniform(seed, first + np.uint64(j)) >= p else zero
            mi[j] = m
            di[j] = si[j] * m


@numba.njit(cache=True, error_model="numpy")
def mask_block(d, ldd, mask, ldm, out, ldo, nb, c0, c1):
    """out = d * mask on columns c0 .. c1 (dropout's backward pass; out may be d)."""
    w = c1 - c0
    in_place = ldd == ldo and d.ctypes.data == out.ctypes.data  # one view: see activations.same_block
    for i in range(nb):
        mi = mask[i * ldm + c0:i * ldm + c1]
        oi = out[i * ldo + c0:i * ldo + c1]
        di = oi if in_place else d[i * ldd + c0:i * ldd + c1]
        for j in range(w):
            oi[j] = di[j] * mi[j]


@numba.njit(cache=True, error_model="numpy")
def _dropout_forward(x, p, seed):
    y = np.empty_like(x)
    mask = np.empty_like(x)
    n = x.size
    dropout_block(x.reshape(n), n, y.reshape(n), n, mask.reshape(n), n, 1, 0, n, n, p, seed)
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
    n = dy.size
    if mask.size != n:
        raise ValueError("dropout_backward: dy and mask must have the same shape")
    mask_block(dy.reshape(n), n, mask.reshape(n), n, out.reshape(n), n, 1, 0, n)
    return out
