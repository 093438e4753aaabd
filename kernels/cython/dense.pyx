"""Fully-connected layer: Y = X @ W + b and its gradients, in Cython (the spec: kernels/reference/dense.py).

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous.

Products: on a CPU with AVX-512, batches up to SMALL_BATCH rows use small_gemm.h's hand-written products,
as kernels/cython/fused.pyx does, because at such batches OpenBLAS's call overhead and packing cost more
than the arithmetic (10 x 784 x 30 forward: 17 us through sgemm, 3.6 us hand-written). A layer call is
one lone product, though, and for large ones BLAS's blocking wins again (256 x 512 x 512: 0.6-0.9x
hand-written), so ``_small_ok`` also bounds the work and the size of the product. dy @ w.T, which those
kernels cannot read, uses them up to SMALL_NT_ROWS rows as dx.T = w @ dy.T through two small transposed
copies. Single-row or single-column products go to BLAS's gemv (as in NumPy and Numba), everything else
to SciPy's BLAS gemm on the row-major arrays. The bias sum is a loop over rows in NumPy's order.
"""
import numpy as np

include "_common.pxi"
include "_constants.pxi"
include "_dense.pxi"

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemv, sgemv

def uses_small_products():
    """Whether the dense kernels use small_gemm.h's AVX-512 products for small batches (a CPU with AVX-512F
    and FASTNN_PORTABLE=1 not set; otherwise every product goes to BLAS)."""
    return fnn_has_avx512() != 0


cdef enum:
    # Measured one call at a time against OpenBLAS 0.3.30's Haswell kernels (OPENBLAS_CORETYPE=Haswell).
    # Batches up to SMALL_BATCH rows (kernels/constants.py) may use small_gemm.h ...
    SMALL_LANE_WORK = 1 << 23  # ... when its multiply-adds, padded to whole blocks and panels, are at most this
    SMALL_OUT_BYTES = 1 << 20  # ... and the product is at most this large (e.g. x.T @ dy at 10 x 512 x 512 f64)
    SMALL_NT_ROWS = 16  # dense_backward_input: batches up to this many rows


cdef inline bint _small_ok(Py_ssize_t rows, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, Py_ssize_t size) noexcept nogil:
    """Whether C (m, n) = op(A) B, k terms each, over a batch of ``rows``, goes to small_gemm.h (m, n, k >= 1;
    size = the element size). The kernels compute 6 rows of C by 2 registers of columns at a time (32 float,
    16 double): padded to those, the work is what they spend. (m * n is an existing array's size: the
    products cannot overflow.)"""
    cdef Py_ssize_t panel = 128 // size
    return (rows <= SMALL_BATCH and m * n * size <= SMALL_OUT_BYTES
            and ((m + 5) // 6 * 6) * ((n + panel - 1) // panel * panel) * k <= SMALL_LANE_WORK
            and fnn_has_avx512())


cdef inline void _gemv(bint trans, Py_ssize_t m, Py_ssize_t n, const floating* a, Py_ssize_t lda, const floating* x,
                       Py_ssize_t incx, floating beta, floating* y, Py_ssize_t incy) noexcept nogil:
    """BLAS gemv, y = op(A) x + beta y with A (m, n) column-major (a row-major (n, m) block read as it is),
    m, n >= 1, beta 0 (y is zeroed first: a NaN in it never leaks through) or 1."""
    cdef char t = b'T' if trans else b'N'
    cdef int im = <int>m, jn = <int>n, ilda = <int>lda, ix = <int>incx, iy = <int>incy
    cdef floating one = 1
    cdef Py_ssize_t i
    if beta == 0:
        for i in range(n if trans else m):
            y[i * incy] = 0
    if floating is float:
        sgemv(&t, &im, &jn, &one, <float*>a, &ilda, <float*>x, &ix, &beta, y, &iy)
    else:
        dgemv(&t, &im, &jn, &one, <double*>a, &ilda, <double*>x, &ix, &beta, y, &iy)


def dense_forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b):
    """Return ``x @ w + b``, shape (n, n_out): the output starts as b in every row and the product adds x @ w."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    check_len(w.shape[0], n_in, "w's first axis")
    check_len(b.shape[0], n_out, "b")
    out = np.empty((n, n_out), dtype=np.float32 if floating is float else np.float64)
    if n == 0 or n_out == 0:
        return out
    cdef floating[:, ::1] y = out
    cdef Py_ssize_t done = 1, more
    with nogil:
        # b in every row: into row 0, then the rows done so far copied after themselves (log2(n) memcpy's,
        # which use the widest stores: a plain loop is SSE2 code in the default build, and cost 512 x 100
        # double outputs 4 us more).
        memcpy(&y[0, 0], &b[0], n_out * sizeof(floating))
        while done < n:
            more = min(done, n - done)
            memcpy(&y[done, 0], &y[0, 0], more * n_out * sizeof(floating))
            done += more
        if n_in == 0:
            pass  # x @ w is all zeros: y = b
        elif n == 1:  # y.T += w.T x.T (w row-major is w.T column-major)
            _gemv(False, n_out, n_in, &w[0, 0], n_out, &x[0, 0], 1, 1, &y[0, 0], 1)
        elif n_out == 1:  # y += x w
            _gemv(True, n_in, n, &x[0, 0], n_in, &w[0, 0], 1, 1, &y[0, 0], 1)
        elif _small_ok(n, n, n_out, n_in, sizeof(floating)):
            small_product(n, n_out, n_in, 1, &x[0, 0], n_in, 1, &w[0, 0], n_out, 1, &y[0, 0], n_out)
        else:
            gemm_rm(False, False, <int>n, <int>n_out, <int>n_in, 1, &x[0, 0], <int>n_in, &w[0, 0], <int>n_out, 1,
                    &y[0, 0], <int>n_out)
    return out


def dense_backward_input(const floating[:, ::1] dy, const floating[:, ::1] w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    cdef Py_ssize_t n = dy.shape[0], n_out = dy.shape[1], n_in = w.shape[0], i, j, p
    check_len(w.shape[1], n_out, "w's second axis")
    out = np.empty((n, n_in), dtype=np.float32 if floating is float else np.float64)
    if n == 0 or n_in == 0:
        return out
    cdef floating[:, ::1] dx = out
    cdef bint small = n_out > 0 and n > 1 and n_in > 1 and n <= SMALL_NT_ROWS and fnn_has_avx512()
    cdef floating* dyt = NULL  # dy.T (n_out, n), then dx.T (n_in, n)
    cdef floating* dxt
    if small:
        dyt = <floating*>malloc((n_out + n_in) * n * sizeof(floating))
        if dyt == NULL:
            raise MemoryError()
    with nogil:
        if n_out == 0:  # no terms: zeros
            gemm_rm(False, True, <int>n, <int>n_in, 0, 1, NULL, 1, NULL, 1, 0, &dx[0, 0], <int>n_in)
        elif n == 1:  # dx.T = w dy.T
            _gemv(True, n_out, n_in, &w[0, 0], n_out, &dy[0, 0], 1, 0, &dx[0, 0], 1)
        elif n_in == 1:  # dx = dy w.T
            _gemv(True, n_out, n, &dy[0, 0], n_out, &w[0, 0], 1, 0, &dx[0, 0], 1)
        elif small:
            # dx.T (n_in, n) = w @ dy.T: the hand-written product reads w as it is.
            dxt = dyt + n_out * n
            for i in range(n):
                for p in range(n_out):
                    dyt[p * n + i] = dy[i, p]
            small_product(n_in, n, n_out, 1, &w[0, 0], n_out, 1, dyt, n, 0, dxt, n)
            for i in range(n):
                for j in range(n_in):
                    dx[i, j] = dxt[j * n + i]
        else:
            gemm_rm(False, True, <int>n, <int>n_in, <int>n_out, 1, &dy[0, 0], <int>n_out, &w[0, 0], <int>n_out, 0,
                    &dx[0, 0], <int>n_in)
    free(dyt)
    return out


def dense_backward_params(const floating[:, ::1] x, const floating[:, ::1] dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, shapes (n_in, n_out), (n_out,)."""
    cdef Py_ssize_t n = x.shape[0], n_in = x.shape[1], n_out = dy.shape[1], i, j
    check_len(dy.shape[0], n, "dy's first axis")
    dtype = np.float32 if floating is float else np.float64
    out_w = np.empty((n_in, n_out), dtype=dtype)
    out_b = np.zeros(n_out, dtype=dtype)
    cdef floating[:, ::1] dw = out_w
    cdef floating[::1] db = out_b
    if n_out == 0:
        return out_w, out_b
    with nogil:
        for i in range(n):
            for j in range(n_out):
                db[j] += dy[i, j]
        if n_in == 0:
            pass
        elif n == 0:  # no terms: zeros
            gemm_rm(True, False, <int>n_in, <int>n_out, 0, 1, NULL, <int>n_in, NULL, <int>n_out, 0, &dw[0, 0],
                    <int>n_out)
        elif n_out == 1:  # dw = x.T dy
            _gemv(False, n_in, n, &x[0, 0], n_in, &dy[0, 0], 1, 0, &dw[0, 0], 1)
        elif n_in == 1:  # dw.T = dy.T x
            _gemv(False, n_out, n, &dy[0, 0], n_out, &x[0, 0], 1, 0, &dw[0, 0], 1)
        elif _small_ok(n, n_in, n_out, n, sizeof(floating)):
            small_product(n_in, n_out, n, 1, &x[0, 0], 1, n_in, &dy[0, 0], n_out, 0, &dw[0, 0], n_out)
        else:
            gemm_rm(True, False, <int>n_in, <int>n_out, <int>n, 1, &x[0, 0], <int>n_in, &dy[0, 0], <int>n_out, 0,
                    &dw[0, 0], <int>n_out)
    return out_w, out_b
