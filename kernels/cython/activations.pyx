"""Element-wise activations and their backward passes, in Cython (the spec: kernels/reference/activations.py).

``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``; arrays are 2-D (n, k), float32 or float64,
C-contiguous; outputs are new arrays of the input dtype. Derivatives at the kinks are taken from the left
(0 for ReLU). Arithmetic is in the input dtype, in the reference's order; exp and the float64 tanh are the
vectorizable versions of _common.pxi (within 2.3 ulp of the exact values, as NumPy's are within 2.4).
The float32 tanh has its own rational kernel below (within 2 ulp), as fast as NumPy's SIMD tanh.
"""
import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy

include "_common.pxi"

cnp.import_array()

cdef extern from *:
    """
    /* float32 tanh. vtanh's float formula computes an exp and a polynomial and selects, ~3x the time of
       NumPy's SIMD tanh; this one is a single branch-free formula. With t = 2 tanh(|x| / 2), the doubling
       formula gives tanh|x| = t / (1 + v), v = (t / 2)^2, and damps the error of t by 1 / cosh x, so t
       needs only a low-degree rational: t = |x| + |x| s K(s), s = x^2, K a (2, 3) minimax rational (error
       of t after the damping below 8e-9 relative; fitted for this file). The quotient is taken as t - a v,
       a = t / (1 + v), so that the rounding of 1 + v only reaches a small term. Two divisions and ~16
       other operations, no table: GCC vectorizes the loop. At |x| >= 9.010914 (and +-inf) tanh rounds to
       1, where the formula is not used (it would be NaN at inf). NaN propagates; the sign is copied last
       (tanh(-0) = -0); a tiny x gives x exactly. Exhaustively over float32: at most 1.78 ulp from the
       exact value with FMA, 1.93 without (NumPy's: 1.37). */
    #define FNN_TANHF_BODY(MADD)                                                                        \
        float ax = fabsf(x), s = ax * ax;                                                               \
        float k = MADD(MADD(-1.2288806e-06f, s, -0.0010923006f), s, -0.0833333f)                        \
                  / MADD(MADD(MADD(1.2288806e-06f, s, 0.001206553f), s, 0.113107175f), s, 1.0f);        \
        float t = MADD(ax * s, k, ax), q = 0.25f * t, v = q * t;                                        \
        float a = t / MADD(q, t, 1.0f);                                                                 \
        return copysignf(ax >= 9.010914f ? 1.0f : MADD(-a, v, t), x);
    #define FNN_MADDF_FUSED(a, b, c) __builtin_fmaf((a), (b), (c))
    #define FNN_MADDF_PLAIN(a, b, c) ((a) * (b) + (c))
    static inline float fnn_tanhf_fused(float x) { FNN_TANHF_BODY(FNN_MADDF_FUSED) }
    static inline float fnn_tanhf_plain(float x) { FNN_TANHF_BODY(FNN_MADDF_PLAIN) }

    /* With FMA (fewer operations, one rounding per a * b + c) on the CPUs that have it, picked at run
       time: AVX-512 (16 lanes) or AVX2; elsewhere, and under FASTNN_PORTABLE=1, the baseline loop
       without FMA (fp-contract=off, see _common.pxi), whose results differ from the FMA ones by an ulp at
       times. */
    #ifdef FNN_HAS_CLONES
    __attribute__((target("avx512f,fma"))) static void fnn_tanhf_avx512(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_fused(z[i]);
    }
    __attribute__((target("avx2,fma"))) static void fnn_tanhf_avx2(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_fused(z[i]);
    }
    #endif

    static void fnn_tanhf_baseline(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_plain(z[i]);
    }

    /* The loop for this CPU and FASTNN_PORTABLE (read when the module loaded), chosen at the first call. */
    typedef void (*fnn_tanhf_loop)(const float *, float *, Py_ssize_t);
    static fnn_tanhf_loop fnn_tanhf_choose(void) {
    #ifdef FNN_HAS_CLONES
        if (!fnn_portable()) {
            __builtin_cpu_init();
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
                return fnn_tanhf_avx512;
            if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                return fnn_tanhf_avx2;
        }
    #endif
        return fnn_tanhf_baseline;
    }

    static fnn_tanhf_loop fnn_tanhf_array_loop = NULL;

    static void fnn_tanhf_array(const float *z, float *out, Py_ssize_t n) {
        if (fnn_tanhf_array_loop == NULL) fnn_tanhf_array_loop = fnn_tanhf_choose();
        fnn_tanhf_array_loop(z, out, n);
    }

    /* Which loop runs: 0 baseline, 1 AVX2 + FMA, 2 AVX-512 + FMA. */
    static int fnn_tanhf_path(void) {
        fnn_tanhf_loop loop = fnn_tanhf_choose();
    #ifdef FNN_HAS_CLONES
        if (loop == fnn_tanhf_avx512) return 2;
        if (loop == fnn_tanhf_avx2) return 1;
    #endif
        return 0;
    }
    """
    void fnn_tanhf_array(const float*, float*, Py_ssize_t) noexcept nogil
    int fnn_tanhf_path() noexcept nogil

TANH_FLOAT32_PATHS = ("baseline", "avx2-fma", "avx512-fma")  # by fnn_tanhf_path()


def tanh_float32_path():
    """The float32 tanh loop this CPU runs: ``"avx512-fma"``, ``"avx2-fma"`` or ``"baseline"`` (no FMA;
    also under FASTNN_PORTABLE=1). The others (``simd_path()``) are bit-identical on every path."""
    return TANH_FLOAT32_PATHS[fnn_tanhf_path()]


cdef enum:
    GIL_FREE = 4096  # release the GIL from this many elements (that costs ~50 ns, a quarter of a 10 x 30 call)


cdef inline void tanh_any(const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fnn_tanhf_array(z, out, n)
    else:
        tanh_array(z, out, n)


def sigmoid(const floating[:, ::1] z):
    """1 / (1 + exp(-z)), without overflow for any finite z."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        sigmoid_array(zp, op, size)
    return out


def sigmoid_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * (a * (1 - a))."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    check_same_2d(a.shape[0], a.shape[1], da.shape[0], da.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = dp[t] * (ap[t] * (<floating>1 - ap[t]))
    return out


def tanh(z):
    """tanh(z).

    A C-contiguous 2-D ndarray in native byte order is handled here through NumPy's C API: a fused-type
    call (type dispatch and two memoryviews) costs ~0.7 us, more than NumPy's whole tanh of 10 x 30 and
    a third of its 128 x 100. Anything else goes through the memoryview version (the same kernels).
    """
    cdef cnp.ndarray a, out
    cdef int typ
    if type(z) is np.ndarray:
        a = <cnp.ndarray>z
        typ = cnp.PyArray_TYPE(a)
        if (cnp.PyArray_NDIM(a) == 2 and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISNOTSWAPPED(a)
                and (typ == cnp.NPY_FLOAT32 or typ == cnp.NPY_FLOAT64)):
            out = cnp.PyArray_EMPTY(2, cnp.PyArray_DIMS(a), typ, 0)
            if typ == cnp.NPY_FLOAT32:
                tanh_ptr(<const float*>cnp.PyArray_DATA(a), <float*>cnp.PyArray_DATA(out), cnp.PyArray_SIZE(a))
            else:
                tanh_ptr(<const double*>cnp.PyArray_DATA(a), <double*>cnp.PyArray_DATA(out), cnp.PyArray_SIZE(a))
            return out
    return _tanh_view(z)


cdef inline void tanh_ptr(const floating* zp, floating* op, Py_ssize_t size) noexcept:
    if size >= GIL_FREE:
        with nogil:
            tanh_any(zp, op, size)
    else:
        tanh_any(zp, op, size)


def _tanh_view(const floating[:, ::1] z):
    """tanh(z) of any buffer (a C-contiguous float32 or float64 2-D memoryview)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1]
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    tanh_ptr(&z[0, 0], &o[0, 0], size)
    return out


def tanh_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * (1 - a * a)."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    check_same_2d(a.shape[0], a.shape[1], da.shape[0], da.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = dp[t] * (<floating>1 - ap[t] * ap[t])
    return out


def relu(const floating[:, ::1] z):
    """max(z, 0); NaN stays NaN and -0.0 becomes 0.0, as np.maximum."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            v = zp[t]
            op[t] = 0 if v <= 0 else v
    return out


def relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da where z > 0, else 0 (also at z = 0)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    cdef floating d
    with nogil:
        for t in range(size):
            d = dp[t]  # loaded unconditionally, so the select vectorizes
            op[t] = d if zp[t] > 0 else 0
    return out


def leaky_relu(const floating[:, ::1] z, double slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float (rounded to the dtype first)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating s = <floating>slope, v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            v = zp[t]
            op[t] = v if v > 0 else s * v
    return out


def leaky_relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da,
                        double slope):
    """da where z > 0, slope * da elsewhere."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating s = <floating>slope, d
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            d = dp[t]
            op[t] = d if zp[t] > 0 else s * d
    return out


def prelu(const floating[:, ::1] z, const floating[::1] alpha):
    """Leaky ReLU with a learned slope per feature; alpha has shape (k,)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating v, al
    check_len(alpha.shape[0], k, "alpha")
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    with nogil:
        for i in range(n):
            for j in range(k):
                v = z[i, j]
                al = alpha[j]
                o[i, j] = v if v > 0 else al * v
    return out


def prelu_backward(const floating[:, ::1] z, const floating[::1] alpha, const floating[:, ::1] da):
    """Return ``(dz, dalpha)``; dalpha (k,) sums ``da * z`` over the batch where z <= 0."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating v, d, al, ad, dv
    check_len(alpha.shape[0], k, "alpha")
    check_same_2d(n, k, da.shape[0], da.shape[1])
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((n, k), dtype=dtype)
    out_alpha = np.zeros(k, dtype=dtype)
    cdef floating[:, ::1] dz = out
    cdef floating[::1] dal = out_alpha
    with nogil:
        for i in range(n):
            for j in range(k):
                v = z[i, j]
                d = da[i, j]
                al = alpha[j]
                ad = al * d
                dv = d * v
                # z <= 0, as the reference: a NaN z takes the da branch and adds nothing to dalpha.
                dz[i, j] = ad if v <= 0 else d
                dal[j] += dv if v <= 0 else 0
    return out, out_alpha


def softplus(const floating[:, ::1] z):
    """log(1 + exp(z)) computed as max(z, 0) + log1p(exp(-|z|)): no overflow, exact for large |z|."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating v
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        softplus_array(zp, op, size)
    return out


def softplus_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * sigmoid(z)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    check_same_2d(z.shape[0], z.shape[1], da.shape[0], da.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* dp = &da[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        mul_sigmoid_array(dp, zp, op, size)
    return out


def identity(const floating[:, ::1] z):
    """A copy of z."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1]
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        memcpy(&o[0, 0], &z[0, 0], size * sizeof(floating))
    return out


def identity_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """A copy of da."""
    cdef Py_ssize_t size = da.shape[0] * da.shape[1]
    out = np.empty((da.shape[0], da.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        memcpy(&o[0, 0], &da[0, 0], size * sizeof(floating))
    return out


def maxout(const floating[:, ::1] z, Py_ssize_t pieces):
    """Max over groups of ``pieces`` adjacent columns.

    z has shape (n, units * pieces); unit j takes columns j*pieces ... j*pieces + pieces - 1.
    Returns ``(a, idx)``: a (n, units) and idx (n, units) int64, the winning piece (first on ties; a NaN
    wins, as in np.argmax).
    """
    cdef Py_ssize_t n = z.shape[0], width = z.shape[1], units, i, j, q, best
    cdef floating m, v
    if pieces < 1 or width % pieces:
        raise ValueError(f"cannot split {width} columns into groups of {pieces}")
    units = width // pieces
    out = np.empty((n, units), dtype=np.float32 if floating is float else np.float64)
    out_idx = np.empty((n, units), dtype=np.int64)
    cdef floating[:, ::1] a = out
    cdef int64_t[:, ::1] idx = out_idx
    with nogil:
        for i in range(n):
            for j in range(units):
                best = 0
                m = z[i, j * pieces]
                for q in range(1, pieces):
                    if m != m:
                        break
                    v = z[i, j * pieces + q]
                    if v > m or v != v:
                        m = v
                        best = q
                a[i, j] = m
                idx[i, j] = best
    return out, out_idx


def maxout_backward(const floating[:, ::1] da, const int64_t[:, ::1] idx, Py_ssize_t pieces):
    """Route ``da`` (n, units) to the winning pieces; returns dz (n, units * pieces)."""
    cdef Py_ssize_t n = da.shape[0], units = da.shape[1], i, j
    cdef int64_t q
    cdef bint bad = False
    if pieces < 1:
        raise ValueError(f"pieces must be >= 1, got {pieces}")
    check_same_2d(n, units, idx.shape[0], idx.shape[1])
    out = np.zeros((n, units * pieces), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] dz = out
    with nogil:
        for i in range(n):
            for j in range(units):
                q = idx[i, j]
                if q < 0 or q >= pieces:
                    bad = True
                else:
                    dz[i, j * pieces + q] = da[i, j]
    if bad:
        raise IndexError(f"maxout indices must lie in [0, {pieces})")
    return out
