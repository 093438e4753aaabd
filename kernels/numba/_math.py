"""Scalar helpers shared by the Numba kernels: dtype-preserving exp, tanh, log, log1p; NumPy's pairwise sum.

Numba lowers ``math.exp``/``np.exp`` (and log, log1p, tanh) to one libm call per element, which LLVM
cannot vectorize, while NumPy has SIMD versions: a Numba loop calling libm's exp was ~5x slower than
``np.exp`` here. ``exp``, ``tanh``, ``log`` and ``log1p`` below use only arithmetic, selects and bit
casts, so loops calling them vectorize. Measured accuracy (against long double): exp <= 1.5 ulp (float64)
and 0.7 ulp (float32), tanh <= 2 ulp / 1.5 ulp, log and log1p <= 1 ulp / 0.5 ulp; -inf and underflow give
exactly 0 from exp, subnormal results are kept, inf/NaN/0/-1 behave as in NumPy: NaN in gives NaN out
(exp clamps its argument, which would turn NaN into 0, so it selects NaN back at the end; tests in
tests/test_nan_propagation.py). The only fastmath flag used is ``contract`` (FMA) inside these helpers: it
changes rounding, never inf/NaN handling (flags such as ``nnan`` would let LLVM drop the NaN selects).

Kernels must be compiled with ``error_model="numpy"``: the default "python" model guards every float
division with a ZeroDivisionError branch, which stops the loop vectorizer (sigmoid was 10x slower).

``pairwise_sum`` is NumPy's summation order for a contiguous row (8 accumulators, blocks of 128,
halving above), so row sums are bit-identical to ``np.sum(..., axis=1)`` of the same values;
``column_sum`` is NumPy's order for ``np.sum(x, axis=0)``. ``shift_max`` is the row maximum that the
softmax family shifts by (NaN-aware only as far as those kernels need, see its docstring).

Note: Numba's cache does not notice when this module changes (numba #8926): the kernels that call these
helpers keep the old code. Use a fresh ``NUMBA_CACHE_DIR`` (or delete ``__pycache__``) after editing it.
"""
import math
import warnings

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import intrinsic, overload


@intrinsic
def _f64_from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64 (builds 2**n without a libm call)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _f32_from_bits(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


# exp: x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), exp(r) by a polynomial, times 2**n as two
# factors so that subnormal results stay exact-ish. Constants are typed: a float64 literal in a float32
# expression would promote it to float64.
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # fdlibm split: n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_E2, _E3, _E4, _E5, _E6, _E7 = [1.0 / math.factorial(k) for k in range(2, 8)]
_E8, _E9, _E10, _E11, _E12 = [1.0 / math.factorial(k) for k in range(8, 13)]

_F_LOG2E = np.float32(1.44269504088896341)
_F_LN2_HI = np.float32(0.693359375)  # Cephes expf split
_F_LN2_LO = np.float32(-2.12194440e-4)
_F_P = [np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                 1.6666665459e-1, 5.0000001201e-1)]
_F_P0, _F_P1, _F_P2, _F_P3, _F_P4, _F_P5 = _F_P
_F_ONE = np.float32(1)
_F_HALF = np.float32(0.5)
_F_LOW = np.float32(-110.0)  # exp(-110) < smallest float32 subnormal
_F_HIGH = np.float32(89.0)   # exp(89) > largest float32


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _exp64_finite(x):
    """exp(x) for x not NaN; a finite value for NaN. The clamps map -inf to an exact 0, and NaN to -1100:
    converting a NaN n to an integer below would be undefined (LLVM poison)."""
    xc = x if x > -1100.0 else -1100.0
    xc = xc if xc < 710.0 else 710.0
    n = np.floor(xc * _LOG2E + 0.5)
    r = (xc - n * _LN2_HI) - n * _LN2_LO
    p = _E12 * r + _E11
    p = p * r + _E10
    p = p * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + 1.0
    p = p * r + 1.0
    k = np.int64(n)
    k1 = k >> 1
    k2 = k - k1
    return p * _f64_from_bits((k1 + 1023) << 52) * _f64_from_bits((k2 + 1023) << 52)


@numba.njit(cache=True, error_model="numpy")
def _exp64(x):
    e = _exp64_finite(x)
    return e if x == x else x  # NaN in, NaN out


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _exp32_finite(x):
    """exp(x) for x not NaN (NaN is clamped to _F_LOW, giving 0), as _exp64_finite."""
    xc = x if x > _F_LOW else _F_LOW
    xc = xc if xc < _F_HIGH else _F_HIGH
    n = np.floor(xc * _F_LOG2E + _F_HALF)
    r = (xc - n * _F_LN2_HI) - n * _F_LN2_LO
    p = _F_P0 * r + _F_P1
    p = p * r + _F_P2
    p = p * r + _F_P3
    p = p * r + _F_P4
    p = p * r + _F_P5
    p = p * (r * r) + r + _F_ONE
    k = np.int32(n)
    k1 = k >> np.int32(1)
    k2 = k - k1
    return p * _f32_from_bits((k1 + np.int32(127)) << np.int32(23)) * _f32_from_bits(
        (k2 + np.int32(127)) << np.int32(23))


@numba.njit(cache=True, error_model="numpy")
def _exp32(x):
    e = _exp32_finite(x)
    return e if x == x else x  # NaN in, NaN out


def exp(x):
    """exp(x) in the dtype of the float scalar x (float32 stays float32)."""
    raise NotImplementedError("only callable from Numba-compiled code")


@overload(exp)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp32(x)
    if isinstance(x, types.Float):
        return lambda x: _exp64(x)
    return None


# tanh (Cephes): odd rational/polynomial for |x| <= 0.625, else (1 - e) / (1 + e) with e = exp(-2|x|),
# which cannot overflow. Both branches are computed and selected, so loops over tanh vectorize.
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@numba.njit(cache=True, error_model="numpy", inline="always")
def _tanh64(x):
    # One division shared by both branches; inlined at the Numba level (inline="always"), since LLVM
    # found it too big to inline, and a loop with a call in it does not vectorize.
    ax = abs(x)
    s = x * x
    e = _exp64_finite(-2.0 * ax)
    small = ax <= 0.625
    num = x * s * ((_TP0 * s + _TP1) * s + _TP2) if small else 1.0 - e
    den = (((s + _TQ0) * s + _TQ1) * s + _TQ2) if small else 1.0 + e
    q = num / den
    large = q if x >= 0 else -q
    r = x + q if small else large
    # tanh(+-0) = +-0, tanh(NaN) = NaN: one select for both (exp's own NaN select would be a second one)
    return r if (x < 0) | (x > 0) else x


# float32 tanh (the formula and its constants are those of kernels/cython/activations.pyx, which explains
# them): t = 2 tanh(|x|/2) by a (2, 3) rational, then tanh = t - a v with v = (t/2)^2, a = t / (1 + v);
# within 1.78 ulp of the exact value (exhaustively; NumPy's: 1.37), branch-free, so loops vectorize.
_TE0, _TE1, _TE2 = np.float32(-0.0833333), np.float32(-0.0010923006), np.float32(-1.2288806e-06)
_TD1, _TD2, _TD3 = np.float32(0.113107175), np.float32(0.001206553), np.float32(1.2288806e-06)
_FQ = np.float32(0.25)
_FSAT = np.float32(9.010914)  # tanh rounds to 1 from here on (and at inf, where the formula is NaN)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _tanh32(x):
    # Vectorizes because LLVM inlines it into the caller's loop; inline="always" would compile it with the
    # caller's flags, i.e. without FMA. After editing, check that the loops calling it still vectorize.
    ax = abs(x)
    s = ax * ax
    k = ((_TE2 * s + _TE1) * s + _TE0) / (((_TD3 * s + _TD2) * s + _TD1) * s + _F_ONE)
    t = ax * s * k + ax
    q = _FQ * t
    a = t / (q * t + _F_ONE)
    r = t - a * (q * t)
    return np.copysign(_F_ONE if ax >= _FSAT else r, x)  # NaN stays NaN, tanh(-0) = -0


def tanh(x):
    """tanh(x) in the dtype of the float scalar x."""
    raise NotImplementedError("only callable from Numba-compiled code")


# Numba's pedantic IR check warns that this overload's lambda variables are "not in scope" when a kernel
# inlines it inside another inlined function (act_row); the code it compiles is right (tests compare every
# kernel with the reference), so exactly that message is silenced rather than shown to every user.
warnings.filterwarnings("ignore", message=r"variable '_tanh_overload__locals___lambda", category=NumbaIRAssumptionWarning)


@overload(tanh, inline="always")
def _tanh_overload(x):
    if x == types.float32:
        return lambda x: _tanh32(x)
    if isinstance(x, types.Float):
        return lambda x: _tanh64(x)
    return None


@intrinsic
def _f64_to_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


# log and log1p (fdlibm): w = 2**k * m with m in [sqrt(2)/2, sqrt(2)), f = m - 1, s = f / (2 + f),
# log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))) with fdlibm's degree-14 even polynomial R.
# float32 arguments are computed in float64 and rounded once.
_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951
_TWO54 = 18014398509481984.0
_TINY = 2.2250738585072014e-308
_MANT = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.int64(0x3FF0000000000000)


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _log_plus(w, c):
    """log(w) + c for w > 0 (c a small correction, 0 for a plain log); w = 0 -> -inf, w < 0 -> NaN."""
    sub = w < _TINY
    ws = w * _TWO54 if sub else w  # subnormals: scale into the normal range first
    bits = _f64_to_bits(ws)
    k = (bits >> 52) - 1023
    k = k - 54 if sub else k
    m = _f64_from_bits((bits & _MANT) | _ONE_BITS)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = k + 1 if big else k
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    z2 = z * z
    r = z2 * (_LG2 + z2 * (_LG4 + z2 * _LG6)) + z * (_LG1 + z2 * (_LG3 + z2 * (_LG5 + z2 * _LG7)))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    res = dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + (dk * _LN2_LO + c))) - f)
    res = res if w < np.inf else w  # +inf and NaN pass through
    res = res if w > 0.0 else (-np.inf if w == 0.0 else np.nan)
    return res


@numba.njit(cache=True, error_model="numpy")
def _log64(x):
    return _log_plus(x, 0.0)


@numba.njit(cache=True, error_model="numpy")
def _log1p64(x):
    w = 1.0 + x
    c = (x - (w - 1.0)) / w if w < np.inf else 0.0  # the part of x lost in 1 + x, relative to w
    return _log_plus(w, c if w > 0.0 else 0.0)


def log(x):
    """Natural log in the dtype of the float scalar x (float32 via float64, rounded once)."""
    raise NotImplementedError("only callable from Numba-compiled code")


def log1p(x):
    """log(1 + x) in the dtype of the float scalar x (float32 via float64, rounded once)."""
    raise NotImplementedError("only callable from Numba-compiled code")


@overload(log, inline="always")
def _log_overload(x):
    if x == types.float32:
        return lambda x: np.float32(_log64(np.float64(x)))
    if isinstance(x, types.Float):
        return lambda x: _log64(x)
    return None


@overload(log1p, inline="always")
def _log1p_overload(x):
    if x == types.float32:
        return lambda x: np.float32(_log1p64(np.float64(x)))
    if isinstance(x, types.Float):
        return lambda x: _log1p64(x)
    return None


@numba.njit(cache=True, error_model="numpy")
def _block_sum(a, lo, n):
    """NumPy's pairwise-sum leaf (n <= 128): 8 running sums, combined as a tree, then the tail."""
    if n < 8:
        res = a.dtype.type(0)  # a typed zero: the literal 0 would promote float32 to float64
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = lo + 8
    end = lo + n - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True, error_model="numpy")
def pairwise_sum(a, lo, n):
    """Sum of a[lo:lo + n] (1-D, contiguous) in a's dtype, in NumPy's pairwise order (bit-identical).

    NumPy recurses: blocks of <= 128 are leaves, larger ranges split at half rounded down to a multiple
    of 8. A recursive cached Numba function crashes when loaded from the cache (numba #6061), so the
    recursion runs on an explicit stack: frame = (lo, n, phase), phase 1 = left done, 2 = right pending.
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    frames = np.empty((64, 3), dtype=np.int64)  # depth <= log2(n / 128) + 1 < 64
    lefts = np.empty(64, dtype=a.dtype)
    ret = a.dtype.type(0)
    sp = 0
    frames[0, 0], frames[0, 1], frames[0, 2] = lo, n, 0
    while True:
        start, m = frames[sp, 0], frames[sp, 1]
        half = m // 2
        half -= half % 8
        if frames[sp, 2] == 0:
            frames[sp, 2] = 1
            if half > 128:
                sp += 1
                frames[sp, 0], frames[sp, 1], frames[sp, 2] = start, half, 0
                continue
            lefts[sp] = _block_sum(a, start, half)
        if frames[sp, 2] == 1:
            frames[sp, 2] = 2
            if m - half > 128:
                sp += 1
                frames[sp, 0], frames[sp, 1], frames[sp, 2] = start + half, m - half, 0
                continue
            right = _block_sum(a, start + half, m - half)
        else:
            right = ret
        value = lefts[sp] + right
        if sp == 0:
            return value
        sp -= 1
        if frames[sp, 2] == 1:
            lefts[sp] = value
        else:
            ret = value


@numba.njit(cache=True, error_model="numpy")
def _has_nan(a):
    for i in range(a.shape[0]):
        if a[i] != a[i]:
            return True
    return False


@numba.njit(cache=True, error_model="numpy")
def shift_max(a):
    """The shift m of exp(a - m) in the softmax family, for a non-empty 1-D row: its largest element when
    the row holds no NaN.

    With a NaN in the row the result is NaN or an element of the row (8 running maxima, each of which
    ignores a NaN after its first element and keeps one at its start). Either way the caller's exp(a - m)
    is NaN at the NaN and the row's sum is NaN, so every output that the reference (shifted by np.max,
    i.e. by NaN) makes NaN is NaN here too. The one exception is handled here: when all the other elements
    are -inf, the result is -inf and the caller would take its all -inf path (uniform softmax) and lose
    the NaN, so a -inf result is checked for NaN in the row and NaN is returned instead. Only that rare
    -inf case costs a second pass: a NaN test per element in the main loop made softmax at 128x784 5%
    slower (this loop is bound by the latency of the maxima).
    """
    n = a.shape[0]
    m0 = a[0]
    if n < 16:
        for i in range(1, n):
            m0 = a[i] if a[i] > m0 else m0
    else:
        m1, m2, m3, m4, m5, m6, m7 = a[1], a[2], a[3], a[4], a[5], a[6], a[7]
        i = 8
        end = n - n % 8
        while i < end:
            m0 = a[i] if a[i] > m0 else m0
            m1 = a[i + 1] if a[i + 1] > m1 else m1
            m2 = a[i + 2] if a[i + 2] > m2 else m2
            m3 = a[i + 3] if a[i + 3] > m3 else m3
            m4 = a[i + 4] if a[i + 4] > m4 else m4
            m5 = a[i + 5] if a[i + 5] > m5 else m5
            m6 = a[i + 6] if a[i + 6] > m6 else m6
            m7 = a[i + 7] if a[i + 7] > m7 else m7
            i += 8
        for j in range(end, n):
            m0 = a[j] if a[j] > m0 else m0
        m0 = m1 if m1 > m0 else m0
        m2 = m3 if m3 > m2 else m2
        m4 = m5 if m5 > m4 else m4
        m6 = m7 if m7 > m6 else m6
        m0 = m2 if m2 > m0 else m0
        m4 = m6 if m6 > m4 else m4
        m0 = m4 if m4 > m0 else m0
    if m0 == -np.inf and _has_nan(a):
        return a.dtype.type(np.nan)
    return m0


@numba.njit(cache=True, error_model="numpy")
def column_sum(x):
    """np.sum(x, axis=0) of a C-contiguous (n, k) array, bit-identical to NumPy: row by row when k > 1,
    the pairwise sum of the (contiguous) column when k == 1."""
    n, k = x.shape
    out = np.zeros(k, dtype=x.dtype)
    if k == 1:
        out[0] = pairwise_sum(x.reshape(n), 0, n)
        return out
    for i in range(n):
        for j in range(k):
            out[j] += x[i, j]
    return out
