"""Element-wise activations and their backward passes (Numba); semantics of kernels/reference/activations.py.

Every activation ``f`` has ``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``. Arrays are
2-D (n, k), float32 or float64, C-contiguous; outputs are new arrays of the input dtype. Derivatives
at the kinks are 0 (ReLU'(0) = 0). Constants are made with ``z.dtype.type(c)`` so that float32 stays
float32 (a bare literal such as ``1.0`` or ``1`` would promote the arithmetic to float64). The float32
tanh has its own rational kernel (``_tanh32``, as in kernels/cython/activations.pyx), as fast as NumPy's.
"""
import numba
import numpy as np
from numba import types
from numba.extending import overload

from ._math import column_sum, exp, log1p
from ._math import tanh as _tanh


@numba.njit(cache=True, error_model="numpy")
def _flat(x):
    """A 1-D view of a C-contiguous array (element-wise kernels work on any shape)."""
    return x.reshape(x.size)


@numba.njit(cache=True, error_model="numpy")
def sigmoid(z):
    """1 / (1 + exp(-z)) as the reference computes it: exp(-|z|), so no overflow for any finite z."""
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    one, zero = z.dtype.type(1), z.dtype.type(0)
    for i in range(zf.size):
        v = zf[i]
        e = exp(-abs(v))
        of[i] = (one if v >= zero else e) / (one + e)
    return out


@numba.njit(cache=True, error_model="numpy")
def sigmoid_backward(z, a, da):
    """da * a * (1 - a), shape (n, k)."""
    out = np.empty_like(da)
    af, df, of = _flat(a), _flat(da), _flat(out)
    one = a.dtype.type(1)
    for i in range(of.size):
        of[i] = df[i] * (af[i] * (one - af[i]))
    return out


# float32 tanh (the formula and its constants are those of kernels/cython/activations.pyx, which explains
# them): t = 2 tanh(|x|/2) by a (2, 3) rational, then tanh = t - a v with v = (t/2)^2, a = t / (1 + v).
# _math.tanh's float32 branch computes an exp and a polynomial and selects: 2.2x NumPy's SIMD tanh.
_TE0, _TE1, _TE2 = np.float32(-0.0833333), np.float32(-0.0010923006), np.float32(-1.2288806e-06)
_TD1, _TD2, _TD3 = np.float32(0.113107175), np.float32(0.001206553), np.float32(1.2288806e-06)
_F1, _FQ = np.float32(1), np.float32(0.25)
_FSAT = np.float32(9.010914)  # tanh rounds to 1 from here on (and at inf, where the formula is NaN)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _tanh32(z):
    """tanh of float32 z: within 1.78 ulp of the exact value (exhaustively; NumPy's: 1.37)."""
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    for i in range(zf.size):
        x = zf[i]
        ax = abs(x)
        s = ax * ax
        k = ((_TE2 * s + _TE1) * s + _TE0) / (((_TD3 * s + _TD2) * s + _TD1) * s + _F1)
        t = ax * s * k + ax
        q = _FQ * t
        a = t / (q * t + _F1)
        r = t - a * (q * t)
        of[i] = np.copysign(_F1 if ax >= _FSAT else r, x)  # NaN stays NaN, tanh(-0) = -0
    return out


@numba.njit(cache=True, error_model="numpy")
def _tanh64(z):
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    for i in range(zf.size):
        of[i] = _tanh(zf[i])
    return out


def _tanh_by_dtype(z):
    raise NotImplementedError("only callable from Numba-compiled code")


@overload(_tanh_by_dtype)
def _tanh_by_dtype_overload(z):
    # Chosen at compile time: a branch on z.dtype inside tanh would compile both kernels for each dtype.
    if z.dtype == types.float32:
        return lambda z: _tanh32(z)
    return lambda z: _tanh64(z)


@numba.njit(cache=True, error_model="numpy")
def tanh(z):
    """tanh(z), shape (n, k); float32 by _tanh32, float64 within 3 ulp of np.tanh (see _math.tanh)."""
    return _tanh_by_dtype(z)


@numba.njit(cache=True, error_model="numpy")
def tanh_backward(z, a, da):
    """da * (1 - a^2), shape (n, k)."""
    out = np.empty_like(da)
    af, df, of = _flat(a), _flat(da), _flat(out)
    one = a.dtype.type(1)
    for i in range(of.size):
        of[i] = df[i] * (one - af[i] * af[i])
    return out


@numba.njit(cache=True, error_model="numpy")
def relu(z):
    """max(z, 0), shape (n, k) (NaN and -0.0 pass through as in np.maximum)."""
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    zero = z.dtype.type(0)
    for i in range(zf.size):
        v = zf[i]
        of[i] = zero if v < zero else v
    return out


@numba.njit(cache=True, error_model="numpy")
def relu_backward(z, a, da):
    """da where z > 0, else 0 (the derivative at 0 is 0)."""
    out = np.empty_like(da)
    zf, df, of = _flat(z), _flat(da), _flat(out)
    zero = z.dtype.type(0)
    for i in range(of.size):
        of[i] = df[i] if zf[i] > zero else zero
    return out


@numba.njit(cache=True, error_model="numpy")
def leaky_relu(z, slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float, used in z's dtype."""
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    s, zero = z.dtype.type(slope), z.dtype.type(0)
    for i in range(zf.size):
        v = zf[i]
        of[i] = v if v > zero else s * v
    return out


@numba.njit(cache=True, error_model="numpy")
def leaky_relu_backward(z, a, da, slope):
    """da where z > 0, slope * da elsewhere."""
    out = np.empty_like(da)
    zf, df, of = _flat(z), _flat(da), _flat(out)
    s, zero = z.dtype.type(slope), z.dtype.type(0)
    for i in range(of.size):
        of[i] = df[i] if zf[i] > zero else s * df[i]
    return out


@numba.njit(cache=True, error_model="numpy")
def prelu(z, alpha):
    """Leaky ReLU with a learned slope per feature: z (n, k), alpha (k,) -> (n, k)."""
    n, k = z.shape
    out = np.empty_like(z)
    zero = z.dtype.type(0)
    for i in range(n):
        for j in range(k):
            v = z[i, j]
            out[i, j] = v if v > zero else alpha[j] * v
    return out


@numba.njit(cache=True, error_model="numpy")
def prelu_backward(z, alpha, da):
    """Return ``(dz, dalpha)``: dz (n, k), dalpha (k,) = sum over rows of da * z where z <= 0."""
    n, k = z.shape
    dz = np.empty_like(da)
    terms = np.empty_like(da)  # da * z where z <= 0, else 0; summed over rows in NumPy's order
    zero = z.dtype.type(0)
    for i in range(n):
        for j in range(k):
            v = z[i, j]
            g = da[i, j]
            if v <= zero:
                dz[i, j] = alpha[j] * g
                terms[i, j] = g * v
            else:
                dz[i, j] = g
                terms[i, j] = zero
    return dz, column_sum(terms)


@numba.njit(cache=True, error_model="numpy")
def softplus(z):
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), shape (n, k)."""
    out = np.empty_like(z)
    zf, of = _flat(z), _flat(out)
    zero = z.dtype.type(0)
    for i in range(zf.size):
        v = zf[i]
        of[i] = (zero if v < zero else v) + log1p(exp(-abs(v)))
    return out


@numba.njit(cache=True, error_model="numpy")
def softplus_backward(z, a, da):
    """da * sigmoid(z), shape (n, k)."""
    out = np.empty_like(da)
    zf, df, of = _flat(z), _flat(da), _flat(out)
    one, zero = z.dtype.type(1), z.dtype.type(0)
    for i in range(of.size):
        v = zf[i]
        e = exp(-abs(v))
        of[i] = df[i] * ((one if v >= zero else e) / (one + e))
    return out


def identity(z):
    """A copy of z. Plain NumPy: a copy has nothing to compile, and a Numba call costs ~1 us more."""
    return z.copy()


def identity_backward(z, a, da):
    """A copy of da (plain NumPy, as identity)."""
    return da.copy()


@numba.njit(cache=True, error_model="numpy")
def maxout(z, pieces):
    """Max over groups of ``pieces`` adjacent columns: z (n, units * pieces) -> ``(a, idx)``.

    a (n, units) in z's dtype, idx (n, units) int64 is the winning piece, the first one on ties
    (and the first NaN, as np.argmax).
    """
    n, width = z.shape
    units = width // pieces
    a = np.empty((n, units), dtype=z.dtype)
    idx = np.empty((n, units), dtype=np.int64)
    for i in range(n):
        for u in range(units):
            base = u * pieces
            best = z[i, base]
            arg = 0
            if best == best:
                for q in range(1, pieces):
                    v = z[i, base + q]
                    if v > best or v != v:
                        best = v
                        arg = q
                        if v != v:
                            break
            a[i, u] = best
            idx[i, u] = arg
    return a, idx


@numba.njit(cache=True, error_model="numpy")
def maxout_backward(da, idx, pieces):
    """Route ``da`` (n, units) to the winning pieces ``idx``; returns dz (n, units * pieces)."""
    n, units = da.shape
    dz = np.zeros((n, units * pieces), dtype=da.dtype)
    for i in range(n):
        for u in range(units):
            dz[i, u * pieces + idx[i, u]] = da[i, u]
    return dz
