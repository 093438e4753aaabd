"""Element-wise activations and their backward passes (Numba); semantics of kernels/reference/activations.py.

Every activation ``f`` has ``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``. Arrays are
2-D (n, k), float32 or float64, C-contiguous; outputs are new arrays of the input dtype. Derivatives
at the kinks are 0 (ReLU'(0) = 0).

Each formula is written once, as a block kernel on rows of row-major buffers that the fused epoch
(kernels/numba/fused.py) calls on its share of a layer's columns and the public kernels below call on a
whole array: ``act_block`` (f, with an optional bias added first), ``act_backward_block`` (d * f', from the
output a for sigmoid, tanh, softplus and exp, from z or a for the ReLU family), ``prelu_block`` /
``prelu_backward_block`` and ``maxout_block`` / ``maxout_backward_block``. A block is passed as a 1-D view
of its array starting at the block's first row, with the row length of that array (its leading dimension,
ld); element (i, j) is at i * ld + j, j in c0 .. c1. Loops index such views from 0 (``zi = z[i * ld + c0:
i * ld + c1]``): Numba wraps negative indices, and LLVM drops that check (and vectorizes) only where it
sees that an index cannot be negative. Constants are made in the array's dtype (``one``, ``zero`` from
the caller, or ``z.dtype.type(c)``): a bare literal such as ``1.0`` would promote float32 to float64.
"""
import numba
import numpy as np

from ..constants import EXP, LEAKY_RELU, RELU, SIGMOID, SOFTPLUS, TANH
from ._math import exp as exp_of  # (the names exp and tanh are this module's public kernels)
from ._math import log1p, pairwise_sum
from ._math import tanh as tanh_of


@numba.njit(cache=True, error_model="numpy")
def _flat(x):
    """A 1-D view of a C-contiguous array (element-wise kernels work on any shape)."""
    return x.reshape(x.size)


@numba.njit(cache=True, error_model="numpy", inline="always")
def sigmoid_of(v, one, zero):
    """1 / (1 + exp(-v)) without overflow for any finite v: exp(-|v|)."""
    e = exp_of(-abs(v))
    return (one if v >= zero else e) / (one + e)


@numba.njit(cache=True, error_model="numpy", inline="always")
def softplus_slope(a):
    """softplus'(z) = sigmoid(z) from the output a = softplus(z) > 0, in float64: 1 - exp(-a), or its series
    a (1 - a/2 + a^2/6) below 2^-10, where 1 - exp(-a) would cancel."""
    ad = np.float64(a)
    return ad * (1.0 - ad * (0.5 - ad / 6.0)) if ad < 0.0009765625 else 1.0 - exp_of(-ad)


@numba.njit(cache=True, error_model="numpy", inline="always")
def relu_of(v, zero):
    return zero if v < zero else v  # NaN stays NaN, as np.maximum


@numba.njit(cache=True, error_model="numpy", inline="always")
def leaky_of(v, slope, zero):
    return v if v > zero else slope * v


@numba.njit(cache=True, error_model="numpy", inline="always")
def softplus_of(v, zero):
    """max(v, 0) + log1p(exp(-|v|)), as kernels/reference/activations.py (no overflow)."""
    return (zero if v < zero else v) + log1p(exp_of(-abs(v)))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _act_row(si, di, bj, w, act, slope, one, zero, has_bias):
    # One loop per case, the bias added inside it (rows of a few dozen units spend most of their time in the
    # scalar remainder of a vectorized loop: a second pass for the bias doubled it). Inlined at Numba's
    # level, so that a block worked on in place shows LLVM one array: with two views of the same memory
    # its run-time overlap check fails and it runs the scalar loop (3-4x slower).
    if has_bias:
        if act == SIGMOID:
            for j in range(w):
                di[j] = sigmoid_of(si[j] + bj[j], one, zero)
        elif act == TANH:
            for j in range(w):
                di[j] = tanh_of(si[j] + bj[j])
        elif act == RELU:
            for j in range(w):
                di[j] = relu_of(si[j] + bj[j], zero)
        elif act == LEAKY_RELU:
            for j in range(w):
                di[j] = leaky_of(si[j] + bj[j], slope, zero)
        elif act == SOFTPLUS:
            for j in range(w):
                di[j] = softplus_of(si[j] + bj[j], zero)
        elif act == EXP:
            for j in range(w):
                di[j] = exp_of(si[j] + bj[j])
        else:
            for j in range(w):
                di[j] = si[j] + bj[j]
    elif act == SIGMOID:
        for j in range(w):
            di[j] = sigmoid_of(si[j], one, zero)
    elif act == TANH:
        for j in range(w):
            di[j] = tanh_of(si[j])
    elif act == RELU:
        for j in range(w):
            di[j] = relu_of(si[j], zero)
    elif act == LEAKY_RELU:
        for j in range(w):
            di[j] = leaky_of(si[j], slope, zero)
    elif act == SOFTPLUS:
        for j in range(w):
            di[j] = softplus_of(si[j], zero)
    elif act == EXP:
        for j in range(w):
            di[j] = exp_of(si[j])  # inf past the dtype's range, 0 below it, as np.exp
    else:
        for j in range(w):
            di[j] = si[j]


@numba.njit(cache=True, error_model="numpy")
def act_block(src, lds, dst, ldd, nb, c0, c1, act, slope, bias, has_bias):
    """dst[i, c0:c1] = f(src[i, c0:c1] (+ bias[c0:c1])) for rows i < nb (src may be dst); ``slope``:
    LeakyReLU's (a scalar of the dtype)."""
    w = c1 - c0
    if w <= 0:
        return
    one = dst.dtype.type(1)
    zero = dst.dtype.type(0)
    bj = bias[c0:c1] if has_bias else bias[:0]
    if lds == ldd and src.ctypes.data == dst.ctypes.data:  # in place: one view per row (see _act_row)
        for i in range(nb):
            di = dst[i * ldd + c0:i * ldd + c1]
            _act_row(di, di, bj, w, act, slope, one, zero, has_bias)
    else:
        for i in range(nb):
            _act_row(src[i * lds + c0:i * lds + c1], dst[i * ldd + c0:i * ldd + c1], bj, w, act, slope, one, zero,
                     has_bias)


@numba.njit(cache=True, error_model="numpy")
def same_block(a, lda, b, ldb):
    """Whether two blocks are the same memory (a kernel working in place): the kernels then index one view
    per row, as LLVM vectorizes a loop over two views of the same memory only after a run-time overlap
    check that then fails (the scalar loop ran 3-4x slower)."""
    return lda == ldb and a.ctypes.data == b.ctypes.data


@numba.njit(cache=True, error_model="numpy", inline="always")
def _backward_row(si, di, oi, w, act, slope, one, zero):
    if act == SIGMOID:
        for j in range(w):
            oi[j] = di[j] * (si[j] * (one - si[j]))
    elif act == TANH:
        for j in range(w):
            oi[j] = di[j] * (one - si[j] * si[j])
    elif act == RELU:
        for j in range(w):
            oi[j] = di[j] if si[j] > zero else zero
    elif act == LEAKY_RELU:
        for j in range(w):
            oi[j] = di[j] if si[j] > zero else slope * di[j]
    elif act == SOFTPLUS:
        for j in range(w):
            oi[j] = di[j] * softplus_slope(si[j])  # in float64, rounded once on the store
    elif act == EXP:
        for j in range(w):
            oi[j] = di[j] * si[j]  # exp' = exp: the output itself
    else:
        for j in range(w):
            oi[j] = di[j]


@numba.njit(cache=True, error_model="numpy")
def act_backward_block(src, lds, d, ldd, out, ldo, nb, c0, c1, act, slope):
    """out = d * f' on the block (out may be d): f' from the output a = src for SIGMOID, TANH, SOFTPLUS and EXP;
    for RELU and LEAKY_RELU src may be z or (slope >= 0) a, which are > 0 at the same places."""
    w = c1 - c0
    if w <= 0:
        return
    one = out.dtype.type(1)
    zero = out.dtype.type(0)
    if same_block(d, ldd, out, ldo):
        for i in range(nb):
            oi = out[i * ldo + c0:i * ldo + c1]
            _backward_row(src[i * lds + c0:i * lds + c1], oi, oi, w, act, slope, one, zero)
    else:
        for i in range(nb):
            _backward_row(src[i * lds + c0:i * lds + c1], d[i * ldd + c0:i * ldd + c1], out[i * ldo + c0:i * ldo + c1],
                          w, act, slope, one, zero)


@numba.njit(cache=True, error_model="numpy")
def prelu_block(src, lds, dst, ldd, nb, c0, c1, alpha):
    """dst = PReLU(src) on the block: src where src > 0, else alpha[j] * src (src may be dst)."""
    w = c1 - c0
    if w <= 0:
        return
    zero = dst.dtype.type(0)
    al = alpha[c0:c1]
    for i in range(nb):
        si = src[i * lds + c0:i * lds + c1]
        di = dst[i * ldd + c0:i * ldd + c1]
        for j in range(w):
            v = si[j]
            di[j] = v if v > zero else al[j] * v  # NaN stays NaN, as np.where(z > 0, z, alpha z)


@numba.njit(cache=True, error_model="numpy")
def prelu_backward_block(z, ldz, d, ldd, out, ldo, nb, c0, c1, alpha, dalpha):
    """out = dC/dz from d = dC/da on the block (out may be d); dalpha[c0:c1] = the sum over the rows, in
    order, of d * z where z <= 0 (NumPy's order for a sum over axis 0 of several columns)."""
    w = c1 - c0
    if w <= 0:
        return
    zero = out.dtype.type(0)
    al = alpha[c0:c1]
    dal = dalpha[c0:c1]
    dal[:] = 0
    in_place = same_block(d, ldd, out, ldo)
    for i in range(nb):
        zi = z[i * ldz + c0:i * ldz + c1]
        oi = out[i * ldo + c0:i * ldo + c1]
        di = oi if in_place else d[i * ldd + c0:i * ldd + c1]
        for j in range(w):
            v = zi[j]
            g = di[j]
            neg = v <= zero
            dal[j] = dal[j] + (g * v if neg else zero)
            oi[j] = al[j] * g if neg else g


@numba.njit(cache=True, error_model="numpy")
def winner(g, k):
    """Index of the largest of g[0:k], the first on ties; the first NaN if any (as np.argmax)."""
    best = 0
    for p in range(1, k):
        if g[p] > g[best] or (g[p] != g[p] and g[best] == g[best]):
            best = p
    return best


@numba.njit(cache=True, error_model="numpy")
def maxout_block(pre, ldp, out, ldo, nb, u0, u1, k, idx, keep_idx):
    """out[:, u0:u1] = the max of each unit's k adjacent columns of pre; with ``keep_idx`` the winners go to
    idx (rows of length ldo)."""
    for i in range(nb):
        for j in range(u0, u1):
            g = pre[i * ldp + j * k:i * ldp + (j + 1) * k]
            won = winner(g, k)
            out[i * ldo + j] = g[won]
            if keep_idx:
                idx[i * ldo + j] = won


@numba.njit(cache=True, error_model="numpy")
def maxout_backward_block(d, ldd, out, ldp, nb, u0, u1, k, won_from, idx):
    """Route dC/da of units u0:u1 (d) to their winning columns of out (rows of ldp; the others 0): the
    winner is idx[i * ldd + j], or, when ``won_from`` is not empty, found again from the product kept in it
    (then out may be won_from: the product is overwritten by its delta)."""
    zero = out.dtype.type(0)
    again = won_from.shape[0] > 0
    for i in range(nb):
        for j in range(u0, u1):
            won = winner(won_from[i * ldp + j * k:i * ldp + (j + 1) * k], k) if again else idx[i * ldd + j]
            g = out[i * ldp + j * k:i * ldp + (j + 1) * k]
            dj = d[i * ldd + j]
            for p in range(k):
                g[p] = dj if p == won else zero


# -- the public kernels: the blocks on whole arrays --------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def _forward(z, act, slope):
    out = np.empty_like(z)
    act_block(_flat(z), z.size, _flat(out), z.size, 1, 0, z.size, act, z.dtype.type(slope), _flat(z), False)
    return out


@numba.njit(cache=True, error_model="numpy")
def _backward(src, da, act, slope):
    out = np.empty_like(da)
    n = da.size
    if src.size != n:
        raise ValueError("activation backward: z (or a) and da must have the same shape")
    act_backward_block(_flat(src), n, _flat(da), n, _flat(out), n, 1, 0, n, act, da.dtype.type(slope))
    return out


@numba.njit(cache=True, error_model="numpy")
def sigmoid(z):
    """1 / (1 + exp(-z)) as the reference computes it: exp(-|z|), so no overflow for any finite z."""
    return _forward(z, SIGMOID, 0.0)


@numba.njit(cache=True, error_model="numpy")
def sigmoid_backward(z, a, da):
    """da * a * (1 - a), shape (n, k)."""
    return _backward(a, da, SIGMOID, 0.0)


@numba.njit(cache=True, error_model="numpy")
def tanh(z):
    """tanh(z), shape (n, k) (kernels/numba/_math.py's tanh: a rational kernel for float32)."""
    return _forward(z, TANH, 0.0)


@numba.njit(cache=True, error_model="numpy")
def tanh_backward(z, a, da):
    """da * (1 - a^2), shape (n, k)."""
    return _backward(a, da, TANH, 0.0)


@numba.njit(cache=True, error_model="numpy")
def relu(z):
    """max(z, 0), shape (n, k) (NaN and -0.0 pass through as in np.maximum)."""
    return _forward(z, RELU, 0.0)


@numba.njit(cache=True, error_model="numpy")
def relu_backward(z, a, da):
    """da where z > 0, else 0 (the derivative at 0 is 0)."""
    return _backward(z, da, RELU, 0.0)


@numba.njit(cache=True, error_model="numpy")
def leaky_relu(z, slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float, used in z's dtype."""
    return _forward(z, LEAKY_RELU, slope)


@numba.njit(cache=True, error_model="numpy")
def leaky_relu_backward(z, a, da, slope):
    """da where z > 0, slope * da elsewhere."""
    return _backward(z, da, LEAKY_RELU, slope)


@numba.njit(cache=True, error_model="numpy")
def prelu(z, alpha):
    """Leaky ReLU with a learned slope per feature: z (n, k), alpha (k,) -> (n, k)."""
    n, k = z.shape
    out = np.empty_like(z)
    prelu_block(_flat(z), k, _flat(out), k, n, 0, k, alpha)
    return out


@numba.njit(cache=True, error_model="numpy")
def prelu_backward(z, alpha, da):
    """Return ``(dz, dalpha)``: dz (n, k), dalpha (k,) = sum over rows of da * z where z <= 0."""
    n, k = z.shape
    dz = np.empty_like(da)
    dalpha = np.empty(k, dtype=da.dtype)
    prelu_backward_block(_flat(z), k, _flat(da), k, _flat(dz), k, n, 0, k, alpha, dalpha)
    if k == 1:  # NumPy sums a single column pairwise (the block sums in order): the reference's bits
        terms = np.zeros(n, dtype=da.dtype)
        for i in range(n):
            if z[i, 0] <= 0:
                terms[i] = da[i, 0] * z[i, 0]
        dalpha[0] = pairwise_sum(terms, 0, n)
    return dz, dalpha


@numba.njit(cache=True, error_model="numpy")
def softplus(z):
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|)), shape (n, k)."""
    return _forward(z, SOFTPLUS, 0.0)


@numba.njit(cache=True, error_model="numpy")
def softplus_backward(z, a, da):
    """da * sigmoid(z), shape (n, k), with sigmoid(z) from the output a (``softplus_slope``)."""
    return _backward(a, da, SOFTPLUS, 0.0)


@numba.njit(cache=True, error_model="numpy")
def exp(z):
    """e^z, shape (n, k): a Poisson regression's output (inf past ~88.7 in float32, ~709.8 in float64)."""
    return _forward(z, EXP, 0.0)


@numba.njit(cache=True, error_model="numpy")
def exp_backward(z, a, da):
    """da * e^z, shape (n, k), taken from the output a = e^z."""
    return _backward(a, da, EXP, 0.0)


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
    maxout_block(_flat(z), width, _flat(a), units, n, 0, units, pieces, _flat(idx), True)
    return a, idx


@numba.njit(cache=True, error_model="numpy")
def maxout_backward(da, idx, pieces):
    """Route ``da`` (n, units) to the winning pieces ``idx``; returns dz (n, units * pieces)."""
    n, units = da.shape
    dz = np.empty((n, units * pieces), dtype=da.dtype)
    maxout_backward_block(_flat(da), units, _flat(dz), units * pieces, n, 0, units, pieces, _flat(dz)[:0],
                          _flat(idx))
    return dz
