"""Element-wise activations and their backward passes, in Cython (the spec: kernels/reference/activations.py).

``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``; arrays are 2-D (n, k), float32 or float64,
C-contiguous; outputs are new arrays of the input dtype. Derivatives at the kinks are taken from the left
(0 for ReLU). Each formula is _act.pxi's block kernel (shared with the fused epoch), called here on the
whole array: arithmetic in the input dtype, in the reference's order; exp and the float64 tanh are the
vectorizable versions of _common.pxi (within 2.3 ulp of the exact values, as NumPy's are within 2.4), the
float32 tanh _act.pxi's rational kernel (within 2 ulp), as fast as NumPy's SIMD tanh.
"""
import numpy as np
cimport numpy as cnp
from libc.string cimport memcpy

include "_common.pxi"
include "_constants.pxi"
include "_act.pxi"

cnp.import_array()

TANH_FLOAT32_PATHS = ("baseline", "avx2-fma", "avx512-fma")  # by fnn_tanhf_path()


def tanh_float32_path():
    """The float32 tanh loop this CPU runs: ``"avx512-fma"``, ``"avx2-fma"`` or ``"baseline"`` (no FMA;
    also under FASTNN_PORTABLE=1). The others (``simd_path()``) are bit-identical on every path."""
    return TANH_FLOAT32_PATHS[fnn_tanhf_path()]


cdef enum:
    GIL_FREE = 4096  # release the GIL from this many elements (that costs ~50 ns, a quarter of a 10 x 30 call)


cdef object _forward(const floating[:, ::1] z, long act, double slope):
    """f(z) as a new array (``slope``: LeakyReLU's, rounded to the dtype first)."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1]
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        act_block(&z[0, 0], size, &o[0, 0], size, 1, 0, size, act, <floating>slope, <floating*>NULL)
    return out


cdef object _backward(const floating[:, ::1] src, const floating[:, ::1] da, long act, double slope):
    """da * f' as a new array, f' from src (z or a, see act_backward_block)."""
    cdef Py_ssize_t size = da.shape[0] * da.shape[1]
    check_same_2d(src.shape[0], src.shape[1], da.shape[0], da.shape[1])
    out = np.empty((da.shape[0], da.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        act_backward_block(&src[0, 0], size, &da[0, 0], size, &o[0, 0], size, 1, 0, size, act, <floating>slope)
    return out


def sigmoid(const floating[:, ::1] z):
    """1 / (1 + exp(-z)), without overflow for any finite z."""
    return _forward(z, SIGMOID, 0)


def sigmoid_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * (a * (1 - a))."""
    return _backward(a, da, SIGMOID, 0)


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
    return _backward(a, da, TANH, 0)


def relu(const floating[:, ::1] z):
    """max(z, 0); NaN stays NaN and -0.0 becomes 0.0, as np.maximum."""
    return _forward(z, RELU, 0)


def relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da where z > 0, else 0 (also at z = 0)."""
    return _backward(z, da, RELU, 0)


def leaky_relu(const floating[:, ::1] z, double slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float (rounded to the dtype first)."""
    return _forward(z, LEAKY_RELU, slope)


def leaky_relu_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da,
                        double slope):
    """da where z > 0, slope * da elsewhere."""
    return _backward(z, da, LEAKY_RELU, slope)


def prelu(const floating[:, ::1] z, const floating[::1] alpha):
    """Leaky ReLU with a learned slope per feature; alpha has shape (k,)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    check_len(alpha.shape[0], k, "alpha")
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    if n * k == 0:
        return out
    cdef floating[:, ::1] o = out
    with nogil:
        prelu_block(&z[0, 0], k, &o[0, 0], k, n, 0, k, &alpha[0])
    return out


def prelu_backward(const floating[:, ::1] z, const floating[::1] alpha, const floating[:, ::1] da):
    """Return ``(dz, dalpha)``; dalpha (k,) sums ``da * z`` over the batch where z <= 0."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    check_len(alpha.shape[0], k, "alpha")
    check_same_2d(n, k, da.shape[0], da.shape[1])
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((n, k), dtype=dtype)
    out_alpha = np.zeros(k, dtype=dtype)
    if n * k == 0:
        return out, out_alpha
    cdef floating[:, ::1] dz = out
    cdef floating[::1] dal = out_alpha
    with nogil:
        prelu_backward_block(&z[0, 0], k, &da[0, 0], k, &dz[0, 0], k, n, 0, k, &alpha[0], &dal[0])
    return out, out_alpha


def softplus(const floating[:, ::1] z):
    """log(1 + exp(z)) computed as max(z, 0) + log1p(exp(-|z|)): no overflow, exact for large |z|."""
    return _forward(z, SOFTPLUS, 0)


def softplus_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * sigmoid(z), with sigmoid(z) = 1 - exp(-a) taken from the output a (``softplus_slope``, float64)."""
    return _backward(a, da, SOFTPLUS, 0)


def exp(const floating[:, ::1] z):
    """e^z (inf past ~88.7 in float32, ~709.8 in float64, as np.exp)."""
    return _forward(z, EXP, 0)


def exp_backward(const floating[:, ::1] z, const floating[:, ::1] a, const floating[:, ::1] da):
    """da * e^z, taken from the output a = e^z."""
    return _backward(a, da, EXP, 0)


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
    return identity(da)


def maxout(const floating[:, ::1] z, Py_ssize_t pieces):
    """Max over groups of ``pieces`` adjacent columns.

    z has shape (n, units * pieces); unit j takes columns j*pieces ... j*pieces + pieces - 1.
    Returns ``(a, idx)``: a (n, units) and idx (n, units) int64, the winning piece (first on ties; a NaN
    wins, as in np.argmax).
    """
    cdef Py_ssize_t n = z.shape[0], width = z.shape[1], units
    if pieces < 1 or width % pieces:
        raise ValueError(f"cannot split {width} columns into groups of {pieces}")
    units = width // pieces
    out = np.empty((n, units), dtype=np.float32 if floating is float else np.float64)
    out_idx = np.empty((n, units), dtype=np.int64)
    if n * units == 0:
        return out, out_idx
    cdef floating[:, ::1] a = out
    cdef int64_t[:, ::1] idx = out_idx
    with nogil:
        maxout_block(&z[0, 0], width, &a[0, 0], units, n, 0, units, pieces, &idx[0, 0])
    return out, out_idx


def maxout_backward(const floating[:, ::1] da, const int64_t[:, ::1] idx, Py_ssize_t pieces):
    """Route ``da`` (n, units) to the winning pieces; returns dz (n, units * pieces)."""
    cdef Py_ssize_t n = da.shape[0], units = da.shape[1]
    if pieces < 1:
        raise ValueError(f"pieces must be >= 1, got {pieces}")
    check_same_2d(n, units, idx.shape[0], idx.shape[1])
    if n * units and not 0 <= np.min(idx) <= np.max(idx) < pieces:
        raise IndexError(f"maxout indices must lie in [0, {pieces})")
    out = np.empty((n, units * pieces), dtype=np.float32 if floating is float else np.float64)
    if n * units == 0:
        return out
    cdef floating[:, ::1] dz = out
    with nogil:
        maxout_backward_block(&da[0, 0], units, &dz[0, 0], units * pieces, n, 0, units, pieces, <floating*>NULL,
                              &idx[0, 0])
    return out
