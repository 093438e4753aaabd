"""One whole training epoch of a stack of Dense layers in one compiled call (Numba).

Same signature, layout, codes and arithmetic as kernels/reference/fused.py (read its docstring, including
"Threads" and dropout), and the same algorithm as kernels/cython/fused.pyx: ``train_epoch`` allocates the
threads' shared workspace (layer outputs and hidden deltas, rows padded to 16 elements, from a 64-byte
boundary) and runs ``train_epoch_worker`` on ``n_threads`` threads (kernels/workers.py); the worker is
compiled with ``nogil=True``, so the threads run in parallel. Each worker allocates its own buffers at its
top (the gathered batch rows and targets, a copy of the output layer, its delta, the constants below, and
its own copies of the parameters, gradient and optimizer state, see below); the loop over mini-batches
allocates nothing. Every thread computes its own columns of each layer's product, bias, activation and
dropout, then the threads meet at a barrier (sense-reversing, on atomics written as LLVM intrinsics below:
Numba has none); every thread computes the whole output layer; backward, layer 0's weights are split by
columns and the deeper ones by rows, and each thread updates only what it owns. What no other thread
reads (its columns of W_0, its share of every bias), all gradients and all optimizer state live in the
thread's own copies during the epoch and are written back at its end: threads writing to one cache line
would stall each other at every step.

Products of at least ``gemm_min`` multiply-adds go, for batches up to ``_SMALL_BATCH`` rows on a CPU with
AVX-512, to the cython backend's hand-written products (kernels/numba/_small_gemm.py calls them by name;
layer 0 reads the batch's rows in place through their addresses, as the cython backend does), else to
BLAS gemm (SciPy's OpenBLAS, through Numba's own ``numba_xxgemm`` helper, which is what ``np.dot`` uses,
but with alpha, beta and leading dimensions, so column or row blocks of the row-major layers are
multiplied in place); smaller ones run as loops; a b^T
products below ``_SMALL_NT`` multiply-adds always run as loops (a BLAS call costs more). Plain SGD (no
weight decay, no penalties) folds the weight update into the gradient product, W += -lr * A^T delta,
saving a pass over the weights per step; it then differs from the reference only in BLAS's rounding of
that expression. With ``hyper[FLUSH_DENORMALS]`` set, subnormal floats are flushed to zero (x86 MXCSR
FTZ/DAZ) for the duration of the call, in each worker's thread, and the previous mode is restored before
returning.
Every scalar used in array arithmetic is read from an array of the parameter dtype, so float32 stays
float32 (a literal such as ``1.0`` would promote to float64). ``error_model="numpy"``: a division by zero
gives inf/NaN as in NumPy instead of a check per division, which kept LLVM from vectorizing any loop
with a division (the Adam step was 4x slower, the sigmoid loop scalar).
Loops index 1-D views from 0 (``zi = z[i * n + c0:i * n + c1]``, ``for j in range(c1 - c0)``) rather
than ``z[i * n + j]`` over ``range(c0, c1)``: Numba wraps negative indices, and LLVM can drop that check
(and vectorize) only where it sees that the index cannot be negative.
The barrier and its atomics live in this module, not in a helper module: Numba's cache does not notice
when a module that a cached function calls into changes (see kernels/numba/_math.py).
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

from .. import workers as _workers
from ._math import exp as _vexp
from ._math import log1p as _log1p
from ._math import tanh as _vtanh
from ..reference.fused import (LAY_ALPHA, LAY_B, LAY_D, LAY_DROP, LAY_GAMMA, LAY_LD, LAY_LDM, LAY_MAX, LAY_NORM,
                               LAY_PRELU, LAY_RUNNING, LAY_TOTAL, LAY_W, LAY_WIDTH, LAY_Z, N_LAYOUT)
from ._small_gemm import has_avx512, set_row_pointers, small, small_rows

ensure_blas()  # imports scipy.linalg.cython_blas, which numba_xxgemm loads sgemm/dgemm from

IDENTITY, SIGMOID, TANH, RELU, SOFTMAX, LEAKY_RELU, SOFTPLUS, PRELU = 0, 1, 2, 3, 4, 5, 6, 7
BCE, NLL, QUADRATIC = 0, 1, 2
SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3
LR, MU, BETA1, BETA2, EPS, WEIGHT_DECAY, L2, L1, LOSS_EPS, FLUSH_DENORMALS = range(10)
# Extra slots of the constants array ``c`` (parameter dtype): 1, 0, the batch size, Adam's scalars, the
# scale of the units dropout keeps, a batch norm's momentum and eps, its variance correction nb/(nb-1), and
# a LeakyReLU's slope.
_ONE, _ZERO, _NB, _OM_B1, _OM_B2, _STEP_SIZE, _BC2, _KEEP, _MOM, _BN_EPS, _RATIO, _SLOPE = range(10, 22)
_N_CONST = 22
_FTZ_DAZ = np.uint32(0x8040)  # MXCSR bits: flush-to-zero (results) and denormals-are-zero (inputs)
# Slots of the workers' int64 ``sync`` array (kernels/workers.py).
COUNT, SENSE, ABORT = _workers.COUNT, _workers.SENSE, _workers.ABORT
_SPINS = 4000  # pauses (~0.1 ms) before a waiting thread starts yielding its core
# A B^T products below this many multiply-adds run as loops whatever gemm_min says (a BLAS call costs more).
_SMALL_NT = 8192
# Batches up to this size use the hand-written AVX-512 products (kernels/numba/_small_gemm.py) where the CPU
# has them, as kernels/cython/fused.pyx does (its SMALL_BATCH says why).
_SMALL_BATCH = 512
# Dropout's counter generator (kernels/numba/dropout.py): uint64 throughout, wrapping.
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV_2_53 = 1.0 / 9007199254740992.0

_X86_64 = platform.machine().lower() in ("x86_64", "amd64")

if _X86_64:
    def _mxcsr_call(builder, name, ptr):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
        builder.call(fn, [builder.bitcast(ptr, i8p)])

    @intrinsic
    def _get_mxcsr(typingctx):
        """The SSE control/status register of this thread (llvm.x86.sse.stmxcsr)."""
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
            return builder.load(ptr)
        return types.uint32(), codegen

    @intrinsic
    def _set_mxcsr(typingctx, value):
        """Load the SSE control/status register of this thread (llvm.x86.sse.ldmxcsr)."""
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], ptr)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
            return context.get_dummy_value()
        return types.void(types.uint32), codegen

    @intrinsic
    def _prefetch(typingctx, arr, index):
        """Ask for the cache line of arr[index] to be brought into this core's caches (llvm.prefetch)."""
        def codegen(context, builder, signature, args):
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            ptr = builder.bitcast(_element_pointer(context, builder, signature, args), i8p)
            # read, keep in all cache levels (as __builtin_prefetch(p, 0, 3)), data cache
            builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return types.void(arr, index), codegen

    @intrinsic
    def _pause(typingctx):
        """The spin-wait hint (llvm.x86.sse2.pause): frees the core's resources for its sibling thread."""
        def codegen(context, builder, signature, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
            return context.get_dummy_value()
        return types.void(), codegen
else:  # no MXCSR: flushing is a no-op; no pause instruction either
    @njit(cache=True, error_model="numpy")
    def _get_mxcsr():
        return np.uint32(0)

    @njit(cache=True, error_model="numpy")
    def _set_mxcsr(value):
        pass

    @njit(cache=True, error_model="numpy")
    def _prefetch(arr, index):
        pass

    @njit(cache=True, error_model="numpy")
    def _pause():
        pass


# -- atomics on elements of an int64 array, and the threads' barrier ------------------------------------


def _element_pointer(context, builder, signature, args):
    """Pointer to ``args[0][args[1]]`` (an array and an integer index, no wraparound)."""
    arrty, idxty = signature.args[0], signature.args[1]
    ary = context.make_array(arrty)(context, builder, args[0])
    index = context.cast(builder, args[1], idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [index], wraparound=False)


def _check_int64_array(arr, index):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(index, types.Integer)


@intrinsic
def _atomic_add(typingctx, arr, index, value):
    """arr[index] += value as one atomic acquire-release operation; returns the new value."""
    if not (_check_int64_array(arr, index) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.add(builder.atomic_rmw("add", ptr, v, "acq_rel"), v)
    return types.int64(arr, index, value), codegen


def _make_load(ordering):
    @intrinsic
    def load(typingctx, arr, index):
        if not _check_int64_array(arr, index):
            return None

        def codegen(context, builder, signature, args):
            return builder.load_atomic(_element_pointer(context, builder, signature, args), ordering, 8)
        return types.int64(arr, index), codegen
    load.__doc__ = f"arr[index], an atomic load ({ordering})."
    return load


def _make_store(ordering):
    @intrinsic
    def store(typingctx, arr, index, value):
        if not (_check_int64_array(arr, index) and isinstance(value, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            v = context.cast(builder, args[2], signature.args[2], types.int64)
            builder.store_atomic(v, _element_pointer(context, builder, signature, args), ordering, 8)
            return context.get_dummy_value()
        return types.void(arr, index, value), codegen
    store.__doc__ = f"arr[index] = value, an atomic store ({ordering})."
    return store


_load_acquire = _make_load("acquire")
_load_relaxed = _make_load("monotonic")  # LLVM's name for C's relaxed
_store_release = _make_store("release")
_store_relaxed = _make_store("monotonic")


@intrinsic
def _sched_yield(typingctx):
    """libc's sched_yield(): give the core to another runnable thread. Declared by name (resolved in the
    process at load time), so the compiled code still caches."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.call(fn, [])
    return types.int32(), codegen


@njit(cache=True, error_model="numpy")
def _barrier(sync, n_threads, sense):
    """The barrier of the threads of one epoch (kernels/cython/fused.pyx's fnn_barrier), over the int64
    array ``sync`` laid out by kernels/workers.py (COUNT, SENSE, ABORT): sense-reversing, so it can be
    reused at once; ``sense`` is the calling thread's 1-element int64 array. Waiters spin with pause for
    ~0.1 ms, then yield the core: when another process holds the other core, spinning would burn the
    time slice the late thread needs. Returns True when a thread asked everyone to stop."""
    if n_threads <= 1:
        return False
    s = 1 - sense[0]
    sense[0] = s
    if _atomic_add(sync, COUNT, 1) == n_threads:
        _store_relaxed(sync, COUNT, 0)
        _store_release(sync, SENSE, s)
    else:
        spins = 0
        while _load_acquire(sync, SENSE) != s:
            if _load_relaxed(sync, ABORT) != 0:
                return True
            spins += 1
            if spins < _SPINS:
                _pause()
            else:
                _sched_yield()
    return _load_relaxed(sync, ABORT) != 0


@njit(cache=True, error_model="numpy")
def _split(n, t, n_threads):
    """Start of thread t's share of n units (kernels/reference/fused.py's ``split``)."""
    if t >= n_threads:
        return n
    return min(n, 16 * ((n * t + 8 * n_threads) // (16 * n_threads)))


# -- element-wise helpers ------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def exp(v):
    """exp that vectorizes (kernels/numba/_math.py), keeping NaN: that one returned 0 for NaN, which would
    hide a diverged network from the loss check."""
    e = _vexp(v)
    return v if v != v else e


@njit(cache=True, error_model="numpy")
def tanh(v):
    """tanh that vectorizes, keeping NaN (kernels/numba/_math.py's returned -1 for NaN)."""
    t = _vtanh(v)
    return v if v != v else t


# -- products --------------------------------------------------------------------------------------------

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


# Blocks of row-major arrays: a block is passed as a 1-D view of its array that starts at the block's first
# element, with the row length of the array (its leading dimension, ld); element (i, j) is at i * ld + j.


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
def _product(trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc, gemm_min):
    """Row-major c (m, n) = op(a) op(b) on blocks (not both transposed); nothing when m or n is 0.

    Products of at least ``gemm_min`` multiply-adds go to BLAS, smaller ones are loops; so do a b^T products
    below ``_SMALL_NT`` multiply-adds, whatever gemm_min says.
    """
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min and not trans_b and (k if trans_a else m) <= _SMALL_BATCH and has_avx512():
        small(trans_a, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    elif m * n * k >= gemm_min and (not trans_b or m * n * k >= _SMALL_NT):
        _gemm(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
    elif trans_b:
        _loops_nt(m, n, k, a, lda, b, ldb, c, ldc)
    elif trans_a:
        _loops_tn(m, n, k, a, lda, b, ldb, c, ldc)
    else:
        _loops_nn(m, n, k, a, lda, b, ldb, c, ldc)


@njit(cache=True, error_model="numpy")
def _sgd_weights(m, n, k, a, lda, d, ldd, w, ldw, scratch, lr, gemm_min):
    """Plain SGD on the block w (m, n) with gradient a.T @ d, a (k, m), d (k, n): w = w - lr * g.

    With BLAS this is one gemm, w = -lr a.T d + 1 w, and the gradient is never stored; the loops store it
    in ``scratch`` (a block with w's row length ldw) and update as sgd_step does.
    """
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min:
        if k <= _SMALL_BATCH and has_avx512():
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


@njit(cache=True, error_model="numpy")
def _matmul(a, b, out, gemm_min):
    """out = a @ b on C-contiguous 2-D arrays, a (m, k), b (k, n), out (m, n) (bench/fused_epoch_timing.py)."""
    m, k = a.shape
    n = b.shape[1]
    _product(False, False, m, n, k, a.ravel(), k, b.ravel(), n, out.ravel(), n, gemm_min)


# -- layers ----------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _bias_act(z, b, nb, n, c0, c1, act, one, zero, slope):
    """z[:, c0:c1] = f(z + b) in place (z is (nb, n) row-major, b (n,)), f element-wise (``slope``:
    LeakyReLU's); one branch-free loop per activation so that LLVM vectorizes it."""
    w = c1 - c0
    if w <= 0:
        return
    if act == LEAKY_RELU or act == SOFTPLUS:
        bj = b[c0:c1]
        for i in range(nb):
            zi = z[i * n + c0:i * n + c1]
            for j in range(w):
                zi[j] = zi[j] + bj[j]
        _act_columns(z, nb, n, c0, c1, act, one, zero, slope)
        return
    bj = b[c0:c1]
    for i in range(nb):
        zi = z[i * n + c0:i * n + c1]
        if act == SIGMOID:
            for j in range(w):
                v = zi[j] + bj[j]
                e = exp(-abs(v))
                zi[j] = (one if v >= zero else e) / (one + e)
        elif act == TANH:
            for j in range(w):
                zi[j] = tanh(zi[j] + bj[j])
        elif act == RELU:
            for j in range(w):
                v = zi[j] + bj[j]
                zi[j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        else:
            for j in range(w):
                zi[j] = zi[j] + bj[j]


@njit(cache=True, error_model="numpy")
def _act_backward(a, d, nb, n, c0, c1, act, one, zero, slope):
    """d[:, c0:c1] = d * f'(z) in place (a, d are (nb, n) row-major), from the activation's output a (ReLU,
    LeakyReLU with slope >= 0: z > 0 exactly where a > 0; Softplus: sigmoid(z) = 1 - exp(-a), in float64,
    its series below 2^-10 where 1 - exp(-a) would cancel)."""
    w = c1 - c0
    if w <= 0:
        return
    if act == LEAKY_RELU:
        for i in range(nb):
            ai = a[i * n + c0:i * n + c1]
            di = d[i * n + c0:i * n + c1]
            for j in range(w):
                di[j] = di[j] if ai[j] > zero else slope * di[j]
    elif act == SOFTPLUS:
        for i in range(nb):
            ai = a[i * n + c0:i * n + c1]
            di = d[i * n + c0:i * n + c1]
            for j in range(w):
                ad = np.float64(ai[j])
                sg = ad * (1.0 - ad * (0.5 - ad / 6.0)) if ad < 0.0009765625 else 1.0 - exp(-ad)
                di[j] = di[j] * sg  # in float64, rounded once on the store
    if act == SIGMOID:
        for i in range(nb):
            ai = a[i * n + c0:i * n + c1]
            di = d[i * n + c0:i * n + c1]
            for j in range(w):
                v = ai[j]
                di[j] = di[j] * (v * (one - v))
    elif act == TANH:
        for i in range(nb):
            ai = a[i * n + c0:i * n + c1]
            di = d[i * n + c0:i * n + c1]
            for j in range(w):
                v = ai[j]
                di[j] = di[j] * (one - v * v)
    elif act == RELU:
        for i in range(nb):
            ai = a[i * n + c0:i * n + c1]
            di = d[i * n + c0:i * n + c1]
            for j in range(w):
                di[j] = di[j] if ai[j] > zero else zero


@njit(cache=True, error_model="numpy")
def _act_columns(z, nb, n, c0, c1, act, one, zero, slope):
    """z[:, c0:c1] = f(z) in place (z is (nb, n) row-major), f element-wise (``_bias_act`` without a bias)."""
    w = c1 - c0
    if w <= 0:
        return
    for i in range(nb):
        zi = z[i * n + c0:i * n + c1]
        if act == LEAKY_RELU:
            for j in range(w):
                v = zi[j]
                zi[j] = v if v > zero else slope * v  # NaN stays NaN
        elif act == SOFTPLUS:  # max(z, 0) + log1p(exp(-|z|)), as kernels/reference/activations.py
            for j in range(w):
                v = zi[j]
                zi[j] = (v if v > zero else zero) + _log1p(exp(-abs(v)))
        if act == SIGMOID:
            for j in range(w):
                v = zi[j]
                e = exp(-abs(v))
                zi[j] = (one if v >= zero else e) / (one + e)
        elif act == TANH:
            for j in range(w):
                zi[j] = tanh(zi[j])
        elif act == RELU:
            for j in range(w):
                v = zi[j]
                zi[j] = zero if v < zero else v


@njit(cache=True, error_model="numpy")
def _prelu_columns(z, zin, alpha, nb, n, c0, c1, zero):
    """PReLU of z[:, c0:c1] in place (z, zin (nb, n) row-major, alpha (n,)), keeping its input in zin."""
    w = c1 - c0
    if w <= 0:
        return
    al = alpha[c0:c1]
    for i in range(nb):
        zi = z[i * n + c0:i * n + c1]
        ii = zin[i * n + c0:i * n + c1]
        for j in range(w):
            v = zi[j]
            ii[j] = v
            zi[j] = v if v > zero else al[j] * v  # NaN stays NaN, as np.where(z > 0, z, alpha z)


@njit(cache=True, error_model="numpy")
def _prelu_backward(zin, d, alpha, dalpha, nb, n, c0, c1, zero):
    """d[:, c0:c1] = dC/dz in place from dC/da and PReLU's input zin (prelu_backward); dalpha[c0:c1] = sum
    over the batch of d * z where z <= 0."""
    w = c1 - c0
    if w <= 0:
        return
    al = alpha[c0:c1]
    dal = dalpha[c0:c1]
    dal[:] = 0
    for i in range(nb):
        ii = zin[i * n + c0:i * n + c1]
        di = d[i * n + c0:i * n + c1]
        for j in range(w):
            v = ii[j]
            dv = di[j]
            if v <= zero:
                dal[j] = dal[j] + dv * v
                di[j] = al[j] * dv


@njit(cache=True, error_model="numpy")
def _winner(g, k):
    """Index of the largest of g[0:k], the first on ties; the first NaN if any (as np.argmax)."""
    best = 0
    for p in range(1, k):
        if g[p] > g[best] or (g[p] != g[p] and g[best] == g[best]):
            best = p
    return best


@njit(cache=True, error_model="numpy")
def _maxout_columns(pre, ldp, out, ldo, nb, u0, u1, k):
    """out[:, u0:u1] = the max of each unit's k adjacent product columns of pre (maxout)."""
    for i in range(nb):
        for j in range(u0, u1):
            g = pre[i * ldp + j * k:i * ldp + (j + 1) * k]
            out[i * ldo + j] = g[_winner(g, k)]


@njit(cache=True, error_model="numpy")
def _maxout_backward(pre, ldp, d, ldd, nb, u0, u1, k, zero):
    """Route dC/da of units u0:u1 (d) to their winning product columns, in place of the product pre
    (maxout_backward): the winner is found again from pre, then pre's k columns become the delta."""
    for i in range(nb):
        for j in range(u0, u1):
            g = pre[i * ldp + j * k:i * ldp + (j + 1) * k]
            won = _winner(g, k)
            for p in range(k):
                g[p] = d[i * ldd + j] if p == won else zero


# A batch norm's columns: z, xhat (nb, ld) row-major; gamma, beta, the running statistics and inv_std are
# indexed by column. Columns are independent, so a thread normalizes its own without a barrier.


@njit(cache=True, error_model="numpy")
def _bn_forward(z, nb, ld, c0, c1, gamma, beta, rmean, rvar, xhat, inv_std, c):
    """Batch norm of columns c0:c1 of z in place, as batchnorm_forward_train (kernels/reference/norm.py):
    keeps xhat and inv_std for the backward pass and updates the running statistics. Momentum, eps,
    nb / (nb - 1) and nb come from ``c``."""
    n = c[_NB]
    one = c[_ONE]
    zero = c[_ZERO]
    mom = c[_MOM]
    eps = c[_BN_EPS]
    ratio = c[_RATIO]
    for jj in range(c1 - c0):
        j = np.uint64(c0 + jj)
        mean = zero
        for i in range(nb):
            mean = mean + z[np.uint64(i * ld) + j]
        mean = mean / n
        var = zero
        for i in range(nb):
            d = z[np.uint64(i * ld) + j] - mean
            var = var + d * d
        var = var / n
        inv_std[j] = one / np.sqrt(var + eps)
        for i in range(nb):
            q = np.uint64(i * ld) + j
            xhat[q] = (z[q] - mean) * inv_std[j]
            z[q] = gamma[j] * xhat[q] + beta[j]
        rmean[j] = rmean[j] * (one - mom)
        rmean[j] = rmean[j] + mom * mean
        rvar[j] = rvar[j] * (one - mom)
        rvar[j] = rvar[j] + mom * (var * ratio)


@njit(cache=True, error_model="numpy")
def _bn_backward(d, nb, ld, c0, c1, xhat, inv_std, gamma, dgamma, dbeta, c):
    """d = dC/dy of the batch norm's output on columns c0:c1, in place to dC/dx (batchnorm_backward);
    dgamma, dbeta receive their gradients."""
    n = c[_NB]
    zero = c[_ZERO]
    for jj in range(c1 - c0):
        j = np.uint64(c0 + jj)
        sb = zero
        sg = zero
        for i in range(nb):
            q = np.uint64(i * ld) + j
            sb = sb + d[q]
            sg = sg + d[q] * xhat[q]
        dbeta[j] = sb
        dgamma[j] = sg
        scale = gamma[j] * inv_std[j] / n
        for i in range(nb):
            q = np.uint64(i * ld) + j
            d[q] = scale * (n * d[q] - sb - xhat[q] * sg)


@njit(cache=True, error_model="numpy")
def _output(z, yb, nb, n, act, loss, delta, c, loss_eps):
    """Output layer in place: z = act(z) (z, (nb, n) row-major, holds x W + b); delta = dC/dz of the mean loss.

    Returns (sum of the per-sample data losses as fastnn.losses defines them, in float64; the number of
    rows whose prediction matches the target).
    """
    one = c[_ONE]
    zero = c[_ZERO]
    nf = c[_NB]
    total = 0.0
    correct = 0
    for i in range(nb):
        zi = z[i * n:i * n + n]
        yr = yb[i * n:i * n + n]
        di = delta[i * n:i * n + n]
        if act == SOFTMAX:
            mx = zi[0]  # (not -inf: a float64 literal would promote float32 arithmetic)
            for j in range(n):
                mx = max(mx, zi[j])
            s = zero
            for j in range(n):
                # an all -inf row is the limit of equal logits: uniform (see kernels/reference/softmax.py)
                v = exp(zi[j] - mx) if mx != -np.inf else one
                zi[j] = v
                s += v
            for j in range(n):
                zi[j] = zi[j] / s
        else:
            for j in range(n):
                v = zi[j]
                if act == SIGMOID:
                    e = exp(-abs(v))
                    v = (one if v >= zero else e) / (one + e)
                elif act == TANH:
                    v = tanh(v)
                elif act == RELU:
                    v = zero if v < zero else v
                zi[j] = v
        for j in range(n):
            a = zi[j]
            t = yr[j]
            di[j] = (a - t) / nf
            if loss == QUADRATIC:
                d64 = np.float64(a - t)
                total += d64 * d64
            elif loss == BCE:
                # bce_loss: a clipped to [eps, 1 - eps] (NaN stays NaN, as np.clip); a term with a zero
                # factor adds exactly 0
                a64 = np.float64(a)
                a64 = loss_eps if a64 < loss_eps else (1.0 - loss_eps if a64 > 1.0 - loss_eps else a64)
                t64 = np.float64(t)
                if t != 0:
                    total -= t64 * np.log(a64)
                if t != 1:
                    total -= (1.0 - t64) * np.log1p(-a64)
            elif t != 0:
                a64 = np.float64(a)
                total -= np.float64(t) * np.log(loss_eps if a64 < loss_eps else a64)
        if n == 1:
            correct += (zi[0] > 0.5) == (yr[0] > 0.5)
        else:
            best_a = 0
            best_y = 0
            for j in range(1, n):
                if zi[j] > zi[best_a]:
                    best_a = j
                if yr[j] > yr[best_y]:
                    best_y = j
            correct += best_a == best_y
    if loss == QUADRATIC:
        total /= 2
        _act_backward(z, delta, nb, n, 0, n, act, one, zero, zero)
    return total, correct


# -- penalties and optimizer steps -------------------------------------------------------------------------


# Blocks of rows: the elements lo + i * stride + j, i < n_rows, j < width, of flat buffers (W_0's columns
# c0:c1 are n_in rows of c1 - c0 with stride n_out). Indices are uint64, so Numba neither wraps them nor
# checks them, and the row loops vectorize without a view per row: with views, the Adam step over W_0's
# 784 rows of 48 columns took 27 ms an epoch (784-100-10, batch 128), 4.5 ms this way.


@njit(cache=True, error_model="numpy")
def _penalize(params, grads, lo, n_rows, width, stride, c, l2, l1):
    """grads += l2 * p, then += l1 * sign(p) (add_l2_grad, add_l1_grad), for the weights of a block of rows.

    Returns (sum p^2, sum |p|) in float64 (0 for a penalty that is off): the penalty values, each the sum
    of the rows' sums.
    """
    l2c = c[L2]
    l1c = c[L1]
    one = c[_ONE]
    zero = c[_ZERO]
    squares = 0.0
    absolute = 0.0
    for i in range(n_rows):
        base = np.uint64(lo + i * stride)
        sq = 0.0
        ab = 0.0
        if l2 != 0:
            for j in range(width):
                q = base + np.uint64(j)
                p = params[q]
                sq += np.float64(p) * np.float64(p)
                grads[q] += l2c * p
        if l1 != 0:
            for j in range(width):
                q = base + np.uint64(j)
                p = params[q]
                ab += abs(np.float64(p))
                sgn = one if p > zero else (-one if p < zero else (zero if p == zero else p))
                grads[q] += l1c * sgn
        squares += sq
        absolute += ab
    return squares, absolute


@njit(cache=True, error_model="numpy")
def _step(params, grads, s0, s1, lo, n_rows, width, stride, opt, c):
    """One optimizer step on a block of rows of the flat buffers (torch semantics, see
    kernels/reference/optim.py); s0, s1 are the optimizer state rows (momentum buffer; Adam's m and v),
    unused where the optimizer has none.

    Each case is its own branch-free loop so that LLVM vectorizes it; grads is scratch and is overwritten.
    """
    lr = c[LR]
    mu = c[MU]
    wd = c[WEIGHT_DECAY]
    b1 = c[BETA1]
    b2 = c[BETA2]
    om_b1 = c[_OM_B1]
    om_b2 = c[_OM_B2]
    step_size = c[_STEP_SIZE]
    bc2 = c[_BC2]
    eps = c[EPS]
    if width == stride:  # consecutive rows: one
        width *= n_rows
        n_rows = 1
    for i in range(n_rows):
        base = np.uint64(lo + i * stride)
        if wd != 0:
            for j in range(width):
                q = base + np.uint64(j)
                grads[q] = grads[q] + wd * params[q]
        if opt == SGD:
            for j in range(width):
                q = base + np.uint64(j)
                params[q] = params[q] - lr * grads[q]
        elif opt == ADAM:
            for j in range(width):
                q = base + np.uint64(j)
                d = grads[q]
                mq = s0[q] * b1 + om_b1 * d
                vq = s1[q] * b2 + om_b2 * (d * d)
                s0[q] = mq
                s1[q] = vq
                params[q] = params[q] - step_size * (mq / (np.sqrt(vq) / bc2 + eps))
        elif opt == NESTEROV:
            for j in range(width):
                q = base + np.uint64(j)
                d = grads[q]
                bq = s0[q] * mu + d
                s0[q] = bq
                params[q] = params[q] - lr * (d + mu * bq)
        else:
            for j in range(width):
                q = base + np.uint64(j)
                bq = s0[q] * mu + grads[q]
                s0[q] = bq
                params[q] = params[q] - lr * bq


# -- the epoch -------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _copy_range(src, dst, lo, hi):
    """dst[lo:hi] = src[lo:hi]."""
    if hi <= lo:
        return
    s = src[lo:hi]
    d = dst[lo:hi]
    for q in range(hi - lo):
        d[q] = s[q]


@njit(cache=True, nogil=True, error_model="numpy")
def train_epoch_worker(tid, n_threads, sync, partials, shared, layout, x, y, order, params, state, sizes, acts,
                       loss, opt, hyper, batch_size, step, gemm_min, drop, seeds, norm, running, slopes, pieces):
    """Thread ``tid``'s part of one epoch of ``n_threads``; returns what ``train_epoch`` returns.

    sync: int64 (kernels.workers.SYNC_SIZE,) barrier state; partials: float64 (2 n_threads,) the penalty
    sums of each thread; shared: (shared_size(sizes, batch_size, drop, norm, acts, pieces),) workspace of the
    parameter dtype; layout: ``epoch_layout(sizes, batch_size, acts, drop, norm, pieces)``; the rest as
    ``train_epoch`` (drop, seeds, norm, slopes, pieces not None and checked by ``check_options``; running
    at least one element). Every thread must be given the same arrays (see "Threads" in
    kernels/reference/fused.py).
    """
    n_layers = sizes.shape[0] - 1
    m = order.shape[0]
    n_params = params.shape[0]
    n_y = sizes[n_layers]
    k_state = state.shape[0]
    if (drop.shape[0] != n_layers or slopes.shape[0] != n_layers or norm.shape[0] != n_layers or norm.shape[1] < 2
            or pieces.shape[0] != n_layers or acts.shape[0] != n_layers):
        raise ValueError("acts, drop, norm, slopes and pieces must hold one entry per layer")
    if layout.shape[0] != N_LAYOUT or layout.shape[1] < n_layers + 1:
        raise ValueError("layout must be epoch_layout(sizes, ...)")
    if shared.shape[0] < layout[LAY_TOTAL, 2] + 16:
        raise ValueError("the shared workspace is smaller than shared_size(sizes, batch_size, drop, norm, acts, "
                         "pieces)")
    if n_params != layout[LAY_TOTAL, 0] or running.shape[0] < layout[LAY_TOTAL, 1]:
        raise ValueError("params or running do not match epoch_layout(sizes, ...)")
    if layout[LAY_TOTAL, 1] > 0 and (m % batch_size == 1 or batch_size == 1):
        raise ValueError("BatchNorm needs at least 2 samples per batch in training, got 1")
    dropping = False
    for l in range(n_layers):
        dropping = dropping or drop[l] > 0
    if dropping and (seeds.shape[0] < (m + batch_size - 1) // batch_size or seeds.shape[1] != n_layers):
        raise ValueError("seeds must be (number of batches, layers)")
    if sync.shape[0] <= ABORT or partials.shape[0] < 2 * n_threads or not 0 <= tid < n_threads:
        raise ValueError("bad thread arguments")
    # The offsets (kernels/reference/fused.py's epoch_layout); the workspace's from its first 64-byte boundary.
    woff, boff, wid = layout[LAY_W], layout[LAY_B], layout[LAY_WIDTH]
    goff, roff, aoff = layout[LAY_GAMMA], layout[LAY_RUNNING], layout[LAY_ALPHA]
    ld, ldm, zoff, doff = layout[LAY_LD], layout[LAY_LDM], layout[LAY_Z], layout[LAY_D]
    poff, hoff, ioff, moff = layout[LAY_DROP], layout[LAY_NORM], layout[LAY_PRELU], layout[LAY_MAX]
    misalign = shared.ctypes.data % np.uint64(64)  # (uint64 throughout: mixed with int64 it would be float)
    ws = shared[np.int64((np.uint64(64) - misalign) % np.uint64(64)) // shared.itemsize:]
    # This thread's units of every width w = 0 .. L (``_split``): [own0[w], own1[w]). Layer l's own output
    # units are those of width l + 1, its product columns pieces[l] times them, its own rows those of width l.
    own0 = np.empty(n_layers + 1, np.int64)
    own1 = np.empty(n_layers + 1, np.int64)
    for w in range(n_layers + 1):
        own0[w] = _split(sizes[w], tid, n_threads)
        own1[w] = _split(sizes[w], tid + 1, n_threads)
    # This thread's own: the gathered batch, its targets, a copy of the output layer and its delta, and
    # its own copies of the parameter, gradient and state layouts. Of the parameters it uses its copy for
    # what it alone reads and writes (its columns of W_0, its share of every bias): written back at the
    # end, they are kept off the cache lines the other threads write (W_0's rows are not line-aligned).
    xbuf = np.empty(batch_size * sizes[0], params.dtype)
    # Batch rows read in place by the hand-written products (no copy) when every layer-0 product uses them.
    in_place = has_avx512() and batch_size <= _SMALL_BATCH and gemm_min <= 0
    xrows = np.zeros(batch_size, np.int64)  # their addresses
    ybuf = np.empty(batch_size * n_y, params.dtype)
    obuf = np.empty(batch_size * n_y, params.dtype)
    dbuf = np.empty(batch_size * n_y, params.dtype)
    pq = params.copy()
    sq_state = state.copy()
    gq = np.zeros(max(n_params, 1), params.dtype)
    s0 = sq_state[0] if k_state > 0 else gq[:0]
    s1 = sq_state[1] if k_state > 1 else gq[:0]
    sense = np.zeros(1, np.int64)
    c = np.empty(_N_CONST, params.dtype)
    for h in range(LOSS_EPS + 1):
        c[h] = hyper[h]
    c[_ONE] = 1
    c[_ZERO] = 0
    c[_OM_B1] = 1 - hyper[BETA1]
    c[_OM_B2] = 1 - hyper[BETA2]
    one = c[_ONE]
    zero = c[_ZERO]
    lr = c[LR]
    l2 = hyper[L2]
    l1 = hyper[L1]
    penalized = l2 != 0 or l1 != 0
    # Plain SGD updates the weights inside the gradient product (see the module docstring).
    fold = opt == SGD and hyper[WEIGHT_DECAY] == 0 and not penalized
    total = 0.0
    correct = 0
    updates = 0
    value = 0.0
    batch = 0
    # Subnormal moments of dead units made float32 Adam ~15% slower: flush them for this loop only.
    mxcsr = _get_mxcsr()
    if hyper[FLUSH_DENORMALS] != 0:
        _set_mxcsr(mxcsr | _FTZ_DAZ)
    start = 0
    while start < m:
        nb = min(batch_size, m - start)
        c[_NB] = nb
        c[_RATIO] = nb / max(nb - 1, 1)
        n_in = sizes[0]
        # Gather the batch's rows (targets too: their cache misses then overlap with those of x).
        # (element loops: a slice assignment xbuf[...] = x[row] was 3x slower, 30 ms an epoch at batch 10)
        if in_place:
            set_row_pointers(xrows, x, order, start, nb)
        for i in range(nb):
            row = order[start + i]
            if not in_place:
                xs = x[row]
                xd = xbuf[i * n_in:(i + 1) * n_in]
                for j in range(n_in):
                    xd[j] = xs[j]
            ys = y[row]
            yd = ybuf[i * n_y:(i + 1) * n_y]
            for j in range(n_y):
                yd[j] = ys[j]
        if start + nb < m and batch_size <= 32:  # the next batch's rows, on their way meanwhile
            for i in range(start + nb, min(start + nb + batch_size, m)):  # (large batches would evict this one)
                xs = x[order[i]]
                for j in range(0, n_in, 64 // x.itemsize):
                    _prefetch(xs, j)
                ys = y[order[i]]
                for j in range(0, n_y, 64 // y.itemsize):
                    _prefetch(ys, j)
        # Forward: this thread's columns of every layer, then wait for the others' columns.
        for l in range(n_layers):
            n_in = sizes[l]
            n_out = wid[l]
            kp = pieces[l]
            ldo = ld[l + 1]
            ain = xbuf if l == 0 else ws[zoff[l - 1]:zoff[l - 1] + nb * ld[l]]
            z = ws[zoff[l]:zoff[l] + nb * ldo]
            u0 = own0[l + 1]  # this thread's units
            u1 = own1[l + 1]
            c0 = kp * u0  # and their product columns
            c1 = kp * u1
            ldp = ldm[l] if kp > 1 else ldo
            zp = ws[moff[l]:moff[l] + nb * ldp] if kp > 1 else z  # where the product goes
            w = (pq if l == 0 else params)[woff[l] + c0:boff[l]]
            if l == 0 and in_place:
                small_rows(False, nb, c1 - c0, n_in, 1, xrows, w, n_out, 0, zp[c0:], ldp)
            else:
                _product(False, False, nb, c1 - c0, n_in, ain, ld[l], w, n_out, zp[c0:], ldp, gemm_min)
            # (the output layer's bias too, before the barrier: its owner updates it after)
            c[_SLOPE] = slopes[l]
            if kp == 1 and goff[l] < 0 and acts[l] != PRELU:  # bias and activation in one pass
                _bias_act(z, pq[boff[l]:boff[l] + n_out], nb, ldo, c0, c1,
                          acts[l] if l < n_layers - 1 else IDENTITY, one, zero, c[_SLOPE])
            else:  # bias, then maxout or batch norm, then the activation
                _bias_act(zp, pq[boff[l]:boff[l] + n_out], nb, ldp, c0, c1, IDENTITY, one, zero, zero)
                if kp > 1:
                    _maxout_columns(zp, ldp, z, ldo, nb, u0, u1, kp)
                if goff[l] >= 0:
                    c[_MOM] = norm[l, 0]
                    c[_BN_EPS] = norm[l, 1]
                    _bn_forward(z, nb, ldo, c0, c1, pq[goff[l]:goff[l] + n_out],
                                pq[goff[l] + n_out:goff[l] + 2 * n_out], running[roff[l]:roff[l] + n_out],
                                running[roff[l] + n_out:roff[l] + 2 * n_out], ws[hoff[l]:hoff[l] + batch_size * ldo],
                                ws[hoff[l] + batch_size * ldo:hoff[l] + (batch_size + 1) * ldo], c)
                if acts[l] == PRELU:
                    _prelu_columns(z, ws[ioff[l]:ioff[l] + nb * ldo], pq[aoff[l]:aoff[l] + sizes[l + 1]], nb, ldo,
                                   u0, u1, zero)
                else:
                    _act_columns(z, nb, ldo, u0, u1, acts[l], one, zero, c[_SLOPE])
            n_out = sizes[l + 1]
            c0 = u0
            c1 = u1
            if drop[l] > 0 and c1 > c0:  # inverted dropout of this thread's columns (kernels/numba/dropout.py)
                c[_KEEP] = 1.0 / (1.0 - drop[l])
                keep = c[_KEEP]
                p = drop[l]
                seed = np.uint64(seeds[batch, l])
                for i in range(nb):
                    zr = z[i * ldo + c0:i * ldo + c1]
                    pr = ws[poff[l] + i * ldo + c0:poff[l] + i * ldo + c1]
                    mr = ws[poff[l] + (batch_size + i) * ldo + c0:poff[l] + (batch_size + i) * ldo + c1]
                    first = np.uint64(i * n_out + c0 + 1)  # the draw of element (i, c0) of the (nb, n_out) layer
                    for j in range(c1 - c0):
                        r = seed + (first + np.uint64(j)) * _GOLDEN
                        r = (r ^ (r >> _S30)) * _MIX1
                        r = (r ^ (r >> _S27)) * _MIX2
                        r = r ^ (r >> _S31)
                        pr[j] = zr[j]
                        mr[j] = keep if np.float64(r >> _S11) * _INV_2_53 >= p else zero
                        zr[j] = zr[j] * mr[j]
            if _barrier(sync, n_threads, sense):
                break
        if _load_relaxed(sync, ABORT) != 0:
            break
        # The whole output layer in every thread (a few hundred values): no barrier needed after it.
        for i in range(nb):
            zl = ws[zoff[n_layers - 1] + i * ld[n_layers]:zoff[n_layers - 1] + i * ld[n_layers] + n_y]
            ol = obuf[i * n_y:(i + 1) * n_y]
            for j in range(n_y):
                ol[j] = zl[j]
        data_sum, right = _output(obuf, ybuf, nb, n_y, acts[n_layers - 1], loss, dbuf, c, hyper[LOSS_EPS])
        # The batch's objective as fit reports it: mean data loss plus the penalties at these weights
        # (known only after the penalty pass below; without penalties, checked before any update).
        value = data_sum / nb
        if not penalized and not np.isfinite(value):
            break  # this batch is not applied; the caller reports divergence at batch `updates`
        delta = dbuf
        ldd = n_y
        for l in range(n_layers - 1, -1, -1):
            n_in = sizes[l]
            n_out = wid[l]
            c0 = pieces[l] * own0[l + 1]
            c1 = pieces[l] * own1[l + 1]
            gb = gq[boff[l] + c0:boff[l] + c1]
            gb[:] = 0
            for i in range(nb):
                di = delta[i * ldd + c0:i * ldd + c1]
                for j in range(c1 - c0):
                    gb[j] += di[j]
            if l == 0 and in_place:  # weights by columns: the ones this thread's forward used
                if fold:
                    small_rows(True, n_in, c1 - c0, nb, -lr, xrows, delta[c0:], ldd, 1, pq[woff[0] + c0:boff[0]], n_out)
                else:
                    small_rows(True, n_in, c1 - c0, nb, 1, xrows, delta[c0:], ldd, 0, gq[woff[0] + c0:boff[0]], n_out)
            elif l == 0:
                if fold:
                    _sgd_weights(n_in, c1 - c0, nb, xbuf, n_in, delta[c0:], ldd, pq[woff[0] + c0:boff[0]], n_out,
                                 gq[woff[0] + c0:boff[0]], lr, gemm_min)
                else:
                    _product(True, False, n_in, c1 - c0, nb, xbuf, n_in, delta[c0:], ldd, gq[woff[0] + c0:boff[0]],
                             n_out, gemm_min)
            else:  # weights by rows: this thread's units of the layer below, whose delta it computes
                ain = ws[zoff[l - 1]:zoff[l - 1] + nb * ld[l]]
                nd = ws[doff[l]:doff[l] + nb * ld[l]]
                r0 = own0[l]
                r1 = own1[l]
                w = params[woff[l] + r0 * n_out:boff[l]]
                # the delta below, from W before this step updates it
                _product(False, True, nb, r1 - r0, n_out, delta, ldd, w, n_out, nd[r0:], ld[l], gemm_min)
                if fold:
                    _sgd_weights(r1 - r0, n_out, nb, ain[r0:], ld[l], delta, ldd, w, n_out,
                                 gq[woff[l] + r0 * n_out:boff[l]], lr, gemm_min)
                else:
                    _product(True, False, r1 - r0, n_out, nb, ain[r0:], ld[l], delta, ldd,
                             gq[woff[l] + r0 * n_out:boff[l]], n_out, gemm_min)
                if drop[l - 1] > 0:  # through the dropout, then f' at the activations before it
                    for i in range(nb):
                        at = poff[l - 1] + (batch_size + i) * ld[l]  # row i of the mask
                        mr = ws[at + r0:at + r1]
                        ni = nd[i * ld[l] + r0:i * ld[l] + r1]
                        for j in range(r1 - r0):
                            ni[j] = ni[j] * mr[j]
                    ain = ws[poff[l - 1]:poff[l - 1] + nb * ld[l]]
                if acts[l - 1] == PRELU:
                    a0 = aoff[l - 1]
                    _prelu_backward(ws[ioff[l - 1]:ioff[l - 1] + nb * ld[l]], nd, pq[a0:a0 + n_in], gq[a0:a0 + n_in],
                                    nb, ld[l], r0, r1, zero)
                    if fold:
                        alpha = pq[a0 + r0:a0 + r1]
                        dalpha = gq[a0 + r0:a0 + r1]
                        for j in range(r1 - r0):
                            alpha[j] = alpha[j] - lr * dalpha[j]
                else:
                    c[_SLOPE] = slopes[l - 1]
                    _act_backward(ain, nd, nb, ld[l], r0, r1, acts[l - 1], one, zero, c[_SLOPE])
                if goff[l - 1] >= 0:  # through the batch norm: dC/dz, and gamma's and beta's gradients
                    g0 = goff[l - 1]
                    _bn_backward(nd, nb, ld[l], r0, r1, ws[hoff[l - 1]:hoff[l - 1] + batch_size * ld[l]],
                                 ws[hoff[l - 1] + batch_size * ld[l]:hoff[l - 1] + (batch_size + 1) * ld[l]],
                                 pq[g0:g0 + n_in], gq[g0:g0 + n_in], gq[g0 + n_in:g0 + 2 * n_in], c)
                    if fold:
                        gamma = pq[g0 + r0:g0 + r1]
                        dgamma = gq[g0 + r0:g0 + r1]
                        beta = pq[g0 + n_in + r0:g0 + n_in + r1]
                        dbeta = gq[g0 + n_in + r0:g0 + n_in + r1]
                        for j in range(r1 - r0):
                            gamma[j] = gamma[j] - lr * dgamma[j]
                            beta[j] = beta[j] - lr * dbeta[j]
                if pieces[l - 1] > 1:  # to the winning product columns: the Maxout layer's delta
                    pre = ws[moff[l - 1]:moff[l - 1] + nb * ldm[l - 1]]
                    _maxout_backward(pre, ldm[l - 1], nd, ld[l], nb, r0, r1, pieces[l - 1], zero)
                    delta = pre
                    ldd = ldm[l - 1]
                else:
                    delta = nd
                    ldd = ld[l]
            if fold:
                bl = pq[boff[l] + c0:boff[l] + c1]
                for j in range(c1 - c0):
                    bl[j] = bl[j] - lr * gb[j]
            if l >= 2 and _barrier(sync, n_threads, sense):  # rows of the next layer need all of D_l
                break
        if _load_relaxed(sync, ABORT) != 0:
            break
        if penalized:
            squares = 0.0
            absolute = 0.0
            for l in range(n_layers):
                n_in = sizes[l]
                n_out = wid[l]
                if l == 0:  # (row by row)
                    c0 = pieces[0] * own0[1]
                    c1 = pieces[0] * own1[1]
                    sq, ab = _penalize(pq, gq, woff[0] + c0, n_in, c1 - c0, n_out, c, l2, l1)
                else:
                    r0 = own0[l]
                    r1 = own1[l]
                    sq, ab = _penalize(params, gq, woff[l] + r0 * n_out, 1, (r1 - r0) * n_out, 0, c, l2, l1)
                squares += sq
                absolute += ab
            partials[2 * tid] = squares
            partials[2 * tid + 1] = absolute
            if _barrier(sync, n_threads, sense):
                break
            squares = 0.0
            absolute = 0.0
            for t in range(n_threads):
                squares += partials[2 * t]
                absolute += partials[2 * t + 1]
            if l2 != 0:
                value += l2 / 2 * squares
            if l1 != 0:
                value += l1 * absolute
            if not np.isfinite(value):
                break
        total += value * nb
        correct += right
        batch += 1
        step += 1
        updates += 1
        start += nb
        if fold:
            continue
        if opt == ADAM:
            s = np.float64(step)
            c[_STEP_SIZE] = hyper[LR] / (1 - hyper[BETA1] ** s)
            c[_BC2] = np.sqrt(1 - hyper[BETA2] ** s)
        for l in range(n_layers):
            n_in = sizes[l]
            n_out = wid[l]
            u0 = own0[l + 1]
            u1 = own1[l + 1]
            c0 = pieces[l] * u0
            c1 = pieces[l] * u1
            if l > 0:
                r0 = own0[l]
                r1 = own1[l]
                _step(params, gq, s0, s1, woff[l] + r0 * n_out, 1, (r1 - r0) * n_out, 0, opt, c)
            else:  # (one range when the thread has all columns)
                _step(pq, gq, s0, s1, woff[0] + c0, n_in, c1 - c0, n_out, opt, c)
            _step(pq, gq, s0, s1, boff[l] + c0, 1, c1 - c0, 0, opt, c)
            if goff[l] >= 0:  # gamma, then beta (never on a Maxout layer: c0, c1, n_out count units)
                _step(pq, gq, s0, s1, goff[l] + c0, 2, c1 - c0, n_out, opt, c)
            if aoff[l] >= 0:  # PReLU's alpha
                _step(pq, gq, s0, s1, aoff[l] + u0, 1, u1 - u0, 0, opt, c)
    _set_mxcsr(mxcsr)
    # Write back what this thread owned: its parameters kept in its own copy, its share of the state.
    for l in range(n_layers):
        n_in = sizes[l]
        n_out = wid[l]
        u0 = own0[l + 1]
        u1 = own1[l + 1]
        c0 = pieces[l] * u0
        c1 = pieces[l] * u1
        if l == 0:
            for i in range(n_in):
                _copy_range(pq, params, woff[0] + i * n_out + c0, woff[0] + i * n_out + c1)
                for t in range(k_state):
                    _copy_range(sq_state[t], state[t], woff[0] + i * n_out + c0, woff[0] + i * n_out + c1)
        else:
            r0 = own0[l]
            r1 = own1[l]
            for t in range(k_state):
                _copy_range(sq_state[t], state[t], woff[l] + r0 * n_out, woff[l] + r1 * n_out)
        _copy_range(pq, params, boff[l] + c0, boff[l] + c1)
        for t in range(k_state):
            _copy_range(sq_state[t], state[t], boff[l] + c0, boff[l] + c1)
        if goff[l] >= 0:  # gamma, then beta
            for k in range(2):
                _copy_range(pq, params, goff[l] + k * n_out + c0, goff[l] + k * n_out + c1)
                for t in range(k_state):
                    _copy_range(sq_state[t], state[t], goff[l] + k * n_out + c0, goff[l] + k * n_out + c1)
        if aoff[l] >= 0:  # PReLU's alpha
            _copy_range(pq, params, aoff[l] + u0, aoff[l] + u1)
            for t in range(k_state):
                _copy_range(sq_state[t], state[t], aoff[l] + u0, aoff[l] + u1)
    return total, correct, updates, value


def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min,
                n_threads=1, drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    The same arguments and results as kernels/reference/fused.py's ``train_epoch``; ``n_threads`` > 1
    splits each batch across that many threads (its "Threads").
    """
    return _workers.run_epoch(train_epoch_worker, x, y, order, params, state, sizes, acts, loss, opt, hyper,
                              batch_size, step, gemm_min, n_threads, drop, seeds, norm, running, slopes, pieces)
