"""Fully-connected layer: Y = X @ W + b and its gradients (Numba); semantics of kernels/reference/dense.py.

Shapes: x (n, n_in), w (n_in, n_out), b (n_out,), dy (n, n_out); one float dtype, C-contiguous.

Products: the same choices as kernels/cython/dense.pyx (its docstring says why). On a CPU with AVX-512,
batches up to ``_SMALL_BATCH`` rows use the cython backend's hand-written products
(kernels/numba/_small_gemm.py, as kernels/numba/fused.py does), because at such batches OpenBLAS's call
overhead and packing cost more than the arithmetic (10 x 784 x 30 forward: 17 us through BLAS, 3.4 us
hand-written), unless ``_small_ok`` finds the product too large; dy @ w.T uses them up to
``_SMALL_NT_ROWS`` rows, as dx.T = w @ dy.T through two small transposed copies. Everything else goes to
BLAS through ``np.dot`` (gemv when an operand is a vector; transposed operands are passed as transposes,
not copied).
"""
import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

from ..constants import SMALL_BATCH, SMALL_NT, SMALL_PANEL_BYTES
from ._math import column_sum
from ._small_gemm import has_avx512, small

ensure_blas()  # imports scipy.linalg.cython_blas, which numba_xxgemm loads sgemm/dgemm from

# The limits of kernels/cython/dense.pyx (SMALL_LANE_WORK, SMALL_OUT_BYTES, SMALL_NT_ROWS).
_SMALL_BATCH = SMALL_BATCH
_SMALL_LANE_WORK = 1 << 23
_SMALL_OUT_BYTES = 1 << 20
_SMALL_NT_ROWS = 16


@numba.njit(cache=True, error_model="numpy")
def _small_ok(rows, m, n, k, size):
    """Whether c (m, n) = op(a) b, k terms each, over a batch of ``rows``, goes to the hand-written products
    (m, n, k >= 1; size = the element size): kernels/cython/dense.pyx's _small_ok."""
    panel = 128 // size
    return (rows <= _SMALL_BATCH and m * n * size <= _SMALL_OUT_BYTES
            and ((m + 5) // 6 * 6) * ((n + panel - 1) // panel * panel) * k <= _SMALL_LANE_WORK
            and has_avx512())


@numba.njit(cache=True, error_model="numpy")
def dense_forward(x, w, b):
    """Return ``x @ w + b``, shape (n, n_out)."""
    n, n_in = x.shape
    n_out = w.shape[1]
    if w.shape[0] != n_in:
        raise ValueError("dense_forward: w's first axis must have x's second axis' length")
    if b.shape[0] != n_out:
        raise ValueError("dense_forward: b must have one element per column of w")
    if n > 1 and n_in > 0 and n_out > 1 and _small_ok(n, n, n_out, n_in, x.itemsize):
        # y starts as b in every row and the product adds x @ w (beta = 1): y = b + x @ w, rounded as
        # the reference's x @ w + b.
        y = np.empty((n, n_out), dtype=x.dtype)
        for i in range(n):
            for j in range(n_out):
                y[i, j] = b[j]
        small(False, n, n_out, n_in, 1, x.ravel(), n_in, w.ravel(), n_out, 1, y.ravel(), n_out)
        return y
    y = np.dot(x, w)
    for i in range(n):
        for j in range(n_out):
            y[i, j] += b[j]
    return y


@numba.njit(cache=True, error_model="numpy")
def dense_backward_input(dy, w):
    """Gradient with respect to the input: ``dy @ w.T``, shape (n, n_in)."""
    n, n_out = dy.shape
    n_in = w.shape[0]
    if w.shape[1] != n_out:
        raise ValueError("dense_backward_input: w's second axis must have dy's second axis' length")
    if 1 < n <= _SMALL_NT_ROWS and n_in > 1 and n_out > 0 and has_avx512():
        # dx.T (n_in, n) = w @ dy.T: the hand-written product reads w as it is; dy.T and dx.T are small
        # row-major copies.
        dyf = dy.ravel()
        dyt = np.empty(n_out * n, dtype=dy.dtype)
        for i in range(n):
            for p in range(n_out):
                dyt[p * n + i] = dyf[i * n_out + p]
        dxt = np.empty(n_in * n, dtype=dy.dtype)
        small(False, n_in, n, n_out, 1, w.ravel(), n_out, dyt, n, 0, dxt, n)
        dx = np.empty((n, n_in), dtype=dy.dtype)
        dxf = dx.ravel()
        for i in range(n):
            for j in range(n_in):
                dxf[i * n_in + j] = dxt[j * n + i]
        return dx
    return np.dot(dy, w.T)


@numba.njit(cache=True, error_model="numpy")
def dense_backward_params(x, dy):
    """Gradients with respect to the parameters: ``(x.T @ dy, dy.sum(axis=0))``, (n_in, n_out), (n_out,)."""
    n, n_in = x.shape
    n_out = dy.shape[1]
    if dy.shape[0] != n:
        raise ValueError("dense_backward_params: dy's first axis must have x's first axis' length")
    if n > 0 and n_in > 1 and n_out > 1 and _small_ok(n, n_in, n_out, n, x.itemsize):
        dw = np.empty((n_in, n_out), dtype=x.dtype)
        small(True, n_in, n_out, n, 1, x.ravel(), n_in, dy.ravel(), n_out, 0, dw.ravel(), n_out)
        return dw, column_sum(dy)
    return np.dot(x.T, dy), column_sum(dy)


# -- products on blocks (the fused epoch) --------------------------------------------------------------------
# A block of a row-major array is passed as a 1-D view of its array that starts at the block's first element,
# with the row length of the array (its leading dimension, ld); element (i, j) is at i * ld + j.

_CHAR = ir.IntType(8)
_VOIDP = ir.IntType(8).as_pointer()


@intrinsic
def _xxgemm(typingctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Column-major BLAS gemm on the data of arrays a, b, c: c = alpha op(a) op(b) + beta c.

    Calls Numba's ``numba_xxgemm`` helper by name (as ``np.dot`` does), so the compiled code caches.
    """
    sig = types.void(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)

    def codegen(context, builder, signature, args):
        tys = signature.args
        dtype = tys[11].dtype
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [_CHAR, _CHAR, _CHAR, intp, intp, intp, _VOIDP, _VOIDP, intp,
                                                _VOIDP, intp, _VOIDP, _VOIDP, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        def trans(i):
            flag = context.cast(builder, args[i], tys[i], types.boolean)
            return builder.select(flag, ir.Constant(_CHAR, ord("t")), ir.Constant(_CHAR, ord("n")))

        def integer(i):
            return context.cast(builder, args[i], tys[i], types.intp)

        def scalar(i):
            value = context.cast(builder, args[i], tys[i], dtype)
            return builder.bitcast(cgutils.alloca_once_value(builder, value), _VOIDP)

        def data(i):
            return builder.bitcast(context.make_array(tys[i])(context, builder, args[i]).data, _VOIDP)

        kind = ir.Constant(_CHAR, ord(get_blas_kind(dtype)))
        res = builder.call(fn, (kind, trans(0), trans(1), integer(2), integer(3), integer(4), scalar(5), data(6),
                                integer(7), data(8), integer(9), scalar(10), data(11), integer(12)))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return sig, codegen




@njit(cache=True, error_model="numpy")
def _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """Row-major c (m, n) = alpha op(a) op(b) + beta c in BLAS, on blocks (a, b, c 1-D views, ld* row lengths).

    A row-major matrix is its transpose in column-major order, so this asks BLAS for
    c^T = op(b)^T op(a)^T: the operands swapped, the same transpose flags. m, n, k must be >= 1.
    """
    _xxgemm(trans_b, trans_a, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc)


@njit(cache=True, error_model="numpy")
def _loops_nn(m, n, k, a, lda, b, ldb, c, ldc):
    """c (m, n) = a (m, k) @ b (k, n) on blocks, summing over k in order."""
    for i in range(m):
        c[i * ldc:i * ldc + n] = 0
    # p outermost: c stays in L1 and each row of b is read once (2x faster than i outermost here).
    for p in range(k):
        bp = b[p * ldb:p * ldb + n]
        for i in range(m):
            av = a[i * lda + p]
            ci = c[i * ldc:i * ldc + n]
            for j in range(n):
                ci[j] += av * bp[j]


@njit(cache=True, error_model="numpy")
def _loops_tn(m, n, k, a, lda, b, ldb, c, ldc):
    """c (m, n) = a.T @ b on blocks, a (k, m), b (k, n), summing over k in order."""
    for p in range(m):
        cp = c[p * ldc:p * ldc + n]
        cp[:] = 0
        for i in range(k):
            av = a[i * lda + p]
            bi = b[i * ldb:i * ldb + n]
            for j in range(n):
                cp[j] += av * bi[j]


# 'reassoc' only (lets LLVM vectorize the dot product); it keeps NaN and inf semantics.
@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _loops_nt(m, n, k, a, lda, b, ldb, c, ldc):
    """c (m, n) = a @ b.T on blocks, a (m, k), b (n, k)."""
    for i in range(m):
        ai = a[i * lda:i * lda + k]
        for j in range(n):
            bj = b[j * ldb:j * ldb + k]
            c[i * ldc + j] = 0
            s = c[i * ldc + j]
            for p in range(k):
                s += ai[p] * bj[p]
            c[i * ldc + j] = s


@njit(cache=True, error_model="numpy")
def hand_written(rows, panel, itemsize):
    """Whether a product over a batch of ``rows`` rows whose weight block has ``panel`` elements goes to the
    hand-written AVX-512 products: they beat BLAS's call and packing on weights that stay in the caches."""
    return rows <= SMALL_BATCH and panel * itemsize <= SMALL_PANEL_BYTES and has_avx512()


@njit(cache=True, error_model="numpy")
def product(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, gemm_min):
    """Row-major c (m, n) = op(a) op(b) on blocks (not both transposed); nothing when m or n is 0.

    Products of at least ``gemm_min`` multiply-adds go to BLAS, smaller ones are loops; so do a b^T products
    below ``SMALL_NT`` multiply-adds, whatever gemm_min says.
    """
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min and not trans_b and hand_written(k if trans_a else m, (m if trans_a else k) * n, c.itemsize):
        small(trans_a, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    elif m * n * k >= gemm_min and (not trans_b or m * n * k >= SMALL_NT):
        _gemm(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    elif trans_b:
        _loops_nt(m, n, k, a, lda, b, ldb, c, ldc)
    elif trans_a:
        _loops_tn(m, n, k, a, lda, b, ldb, c, ldc)
    else:
        _loops_nn(m, n, k, a, lda, b, ldb, c, ldc)


@njit(cache=True, error_model="numpy")
def sgd_product(m, n, k, a, lda, d, ldd, w, ldw, scratch, lr, gemm_min):
    """Plain SGD on the block w (m, n) with gradient a.T @ d, a (k, m), d (k, n): w = w - lr * g.

    With BLAS this is one gemm, w = -lr a.T d + 1 w, and the gradient is never stored; the loops store it
    in ``scratch`` (a block with w's row length ldw) and update as sgd_step does.
    """
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min:
        if hand_written(k, m * n, w.itemsize):
            small(True, m, n, k, -lr, a, lda, d, ldd, 1, w, ldw)
        else:
            _gemm(True, False, m, n, k, -lr, a, lda, d, ldd, 1, w, ldw)
        return
    _loops_tn(m, n, k, a, lda, d, ldd, scratch, ldw)
    for i in range(m):
        wi = w[i * ldw:i * ldw + n]
        gi = scratch[i * ldw:i * ldw + n]
        for j in range(n):
            wi[j] = wi[j] - lr * gi[j]
