"""One whole training epoch of a stack of Dense layers in one compiled call (Numba).

Same signature, layout, codes and arithmetic as kernels/reference/fused.py (read its docstring). Buffers
(the gathered batch rows, every layer's output, two delta buffers, the flat gradient) are allocated once
at the top of the call; the loop over mini-batches allocates nothing. Products of at least ``gemm_min``
multiply-adds call BLAS gemm (SciPy's OpenBLAS, through Numba's own ``numba_xxgemm`` helper, which is
what ``np.dot`` uses, but with alpha and beta), smaller ones run as loops. Plain SGD (no weight decay,
no penalties) folds the weight update into the gradient product, W += -lr * A^T delta, saving a pass over
the weights per step; it then differs from the reference only in BLAS's rounding of that expression.
With ``hyper[FLUSH_DENORMALS]`` set, subnormal floats are flushed to zero (x86 MXCSR FTZ/DAZ) for the
duration of the call, in this thread, and the previous mode is restored before returning.
Every scalar used in array arithmetic is read from an array of the parameter dtype, so float32 stays
float32 (a literal such as ``1.0`` would promote to float64). ``error_model="numpy"``: a division by zero
gives inf/NaN as in NumPy instead of a check per division, which kept LLVM from vectorizing any loop
with a division (the Adam step was 4x slower, the sigmoid loop scalar).
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind

from ._math import exp as _vexp
from ._math import tanh as _vtanh

ensure_blas()  # imports scipy.linalg.cython_blas, which numba_xxgemm loads sgemm/dgemm from

IDENTITY, SIGMOID, TANH, RELU, SOFTMAX = 0, 1, 2, 3, 4
BCE, NLL, QUADRATIC = 0, 1, 2
SGD, MOMENTUM, NESTEROV, ADAM = 0, 1, 2, 3
LR, MU, BETA1, BETA2, EPS, WEIGHT_DECAY, L2, L1, LOSS_EPS, FLUSH_DENORMALS = range(10)
# Extra slots of the constants array ``c`` (parameter dtype): 1, 0, the batch size, Adam's scalars.
_ONE, _ZERO, _NB, _OM_B1, _OM_B2, _STEP_SIZE, _BC2 = range(10, 17)
_N_CONST = 17
_FTZ_DAZ = np.uint32(0x8040)  # MXCSR bits: flush-to-zero (results) and denormals-are-zero (inputs)


if platform.machine().lower() in ("x86_64", "amd64"):
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
else:  # no MXCSR: flushing is a no-op
    @njit(cache=True, error_model="numpy")
    def _get_mxcsr():
        return np.uint32(0)

    @njit(cache=True, error_model="numpy")
    def _set_mxcsr(value):
        pass


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
def _gemm(trans_a, trans_b, alpha, a, b, beta, c):
    """Row-major c (m, n) = alpha op(a) op(b) + beta c, on C-contiguous 2-D arrays.

    A row-major matrix is its transpose in column-major order, so this asks BLAS for
    c^T = op(b)^T op(a)^T: the operands swapped, the same transpose flags. Every dimension must be >= 1
    (layer widths and batch sizes are).
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    _xxgemm(trans_b, trans_a, n, m, k, alpha, b, b.shape[1], a, a.shape[1], beta, c, n)


@njit(cache=True, error_model="numpy")
def _matmul(a, b, out, gemm_min):
    """out = a @ b; a (m, k), b (k, n), out (m, n)."""
    m, k = a.shape
    n = b.shape[1]
    if m * k * n >= gemm_min:
        _gemm(False, False, 1, a, b, 0, out)
        return
    # p outermost: out stays in L1 and each row of b is read once (2x faster than i outermost here).
    out[:] = 0
    for p in range(k):
        bp = b[p]
        for i in range(m):
            av = a[i, p]
            oi = out[i]
            for j in range(n):
                oi[j] += av * bp[j]


@njit(cache=True, error_model="numpy")
def _matmul_tn(a, b, out, gemm_min):
    """out = a.T @ b; a (m, k), b (m, n), out (k, n)."""
    m, k = a.shape
    n = b.shape[1]
    if m * k * n >= gemm_min:
        _gemm(True, False, 1, a, b, 0, out)
        return
    for p in range(k):
        op = out[p]
        op[:] = 0
        for i in range(m):
            av = a[i, p]
            bi = b[i]
            for j in range(n):
                op[j] += av * bi[j]


@njit(cache=True, error_model="numpy")
def _sgd_weights(a, d, w, scratch, lr, gemm_min):
    """Plain SGD on w (k, n) with gradient a.T @ d, a (m, k), d (m, n): w = w - lr * g.

    With BLAS this is one gemm, w = -lr a.T d + 1 w, and the gradient is never stored; the loops store it
    in ``scratch`` (k, n) and update as sgd_step does.
    """
    m, k = a.shape
    n = d.shape[1]
    if m * k * n >= gemm_min:
        _gemm(True, False, -lr, a, d, 1, w)
        return
    _matmul_tn(a, d, scratch, gemm_min)
    wf = w.ravel()
    gf = scratch.ravel()
    for q in range(wf.shape[0]):
        wf[q] = wf[q] - lr * gf[q]


# 'reassoc' only (lets LLVM vectorize the dot product); it keeps NaN and inf semantics.
@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _matmul_nt(a, b, out, gemm_min):
    """out = a @ b.T; a (m, n), b (k, n), out (m, k)."""
    m, n = a.shape
    k = b.shape[0]
    if m * k * n >= gemm_min:
        _gemm(False, True, 1, a, b, 0, out)
        return
    for i in range(m):
        for p in range(k):
            out[i, p] = 0
            s = out[i, p]
            for j in range(n):
                s += a[i, j] * b[p, j]
            out[i, p] = s


@njit(cache=True, error_model="numpy")
def _bias_act(z, b, act, one, zero):
    """z = f(z + b) in place, f element-wise; one branch-free loop per activation so that LLVM vectorizes it."""
    nb, n = z.shape
    for i in range(nb):
        zi = z[i]
        if act == SIGMOID:
            for j in range(n):
                v = zi[j] + b[j]
                e = exp(-abs(v))
                zi[j] = (one if v >= zero else e) / (one + e)
        elif act == TANH:
            for j in range(n):
                zi[j] = tanh(zi[j] + b[j])
        elif act == RELU:
            for j in range(n):
                v = zi[j] + b[j]
                zi[j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        else:
            for j in range(n):
                zi[j] = zi[j] + b[j]


@njit(cache=True, error_model="numpy")
def _act_backward(a, d, act, one, zero):
    """d = d * f'(z) in place, from the activation's output a (ReLU: z > 0 exactly where a > 0)."""
    af = a.ravel()
    df = d.ravel()
    if act == SIGMOID:
        for q in range(af.shape[0]):
            v = af[q]
            df[q] = df[q] * (v * (one - v))
    elif act == TANH:
        for q in range(af.shape[0]):
            v = af[q]
            df[q] = df[q] * (one - v * v)
    elif act == RELU:
        for q in range(af.shape[0]):
            df[q] = df[q] if af[q] > zero else zero


@njit(cache=True, error_model="numpy")
def _output(z, b, yb, act, loss, delta, c, loss_eps):
    """Output layer in place: z = act(z + b); delta = dC/dz of the mean loss.

    Returns (sum of the per-sample data losses as fastnn.losses defines them, in float64; the number of
    rows whose prediction matches the target).
    """
    nb, n = z.shape
    one = c[_ONE]
    zero = c[_ZERO]
    nf = c[_NB]
    total = 0.0
    correct = 0
    for i in range(nb):
        zi = z[i]
        yr = yb[i]
        if act == SOFTMAX:
            mx = zi[0] + b[0]  # (not -inf: a float64 literal would promote float32 arithmetic)
            for j in range(n):
                v = zi[j] + b[j]
                zi[j] = v
                mx = max(mx, v)
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
                v = zi[j] + b[j]
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
            delta[i, j] = (a - t) / nf
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
        _act_backward(z, delta, act, one, zero)
    return total, correct


@njit(cache=True, error_model="numpy")
def _penalize(params, grads, lo, hi, c, l2, l1):
    """grads[lo:hi] += l2 * p, then += l1 * sign(p) (add_l2_grad, add_l1_grad), for the weights in lo:hi.

    Returns (sum p^2, sum |p|) in float64 over lo:hi (0 for a penalty that is off): the penalty values.
    """
    l2c = c[L2]
    l1c = c[L1]
    one = c[_ONE]
    zero = c[_ZERO]
    squares = 0.0
    absolute = 0.0
    if l2 != 0:
        for q in range(lo, hi):
            p = params[q]
            squares += np.float64(p) * np.float64(p)
            grads[q] += l2c * p
    if l1 != 0:
        for q in range(lo, hi):
            p = params[q]
            absolute += abs(np.float64(p))
            sgn = one if p > zero else (-one if p < zero else (zero if p == zero else p))
            grads[q] += l1c * sgn
    return squares, absolute


@njit(cache=True, error_model="numpy")
def _step(params, grads, state, opt, c):
    """One optimizer step over the whole flat buffer (torch semantics, see kernels/reference/optim.py).

    Each case is its own branch-free loop so that LLVM vectorizes it; grads is scratch and is overwritten.
    """
    lr = c[LR]
    mu = c[MU]
    wd = c[WEIGHT_DECAY]
    if wd != 0:
        for q in range(params.shape[0]):
            grads[q] = grads[q] + wd * params[q]
    if opt == SGD:
        for q in range(params.shape[0]):
            params[q] = params[q] - lr * grads[q]
    elif opt == ADAM:
        m = state[0]
        v = state[1]
        b1 = c[BETA1]
        b2 = c[BETA2]
        om_b1 = c[_OM_B1]
        om_b2 = c[_OM_B2]
        step_size = c[_STEP_SIZE]
        bc2 = c[_BC2]
        eps = c[EPS]
        for q in range(params.shape[0]):
            d = grads[q]
            mq = m[q] * b1 + om_b1 * d
            vq = v[q] * b2 + om_b2 * (d * d)
            m[q] = mq
            v[q] = vq
            params[q] = params[q] - step_size * (mq / (np.sqrt(vq) / bc2 + eps))
    elif opt == NESTEROV:
        buf = state[0]
        for q in range(params.shape[0]):
            d = grads[q]
            bq = buf[q] * mu + d
            buf[q] = bq
            params[q] = params[q] - lr * (d + mu * bq)
    else:
        buf = state[0]
        for q in range(params.shape[0]):
            bq = buf[q] * mu + grads[q]
            buf[q] = bq
            params[q] = params[q] - lr * bq


@njit(cache=True, error_model="numpy")
def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    The same arguments and results as kernels/reference/fused.py's ``train_epoch``.
    """
    n_layers = sizes.shape[0] - 1
    m = order.shape[0]
    woff = np.empty(n_layers, np.int64)
    boff = np.empty(n_layers, np.int64)
    aoff = np.empty(n_layers + 2, np.int64)
    at = 0
    aoff[0] = 0
    maxw = 1
    for l in range(n_layers):
        woff[l] = at
        at += sizes[l] * sizes[l + 1]
        boff[l] = at
        at += sizes[l + 1]
        maxw = max(maxw, sizes[l + 1])
    for l in range(n_layers + 1):
        aoff[l + 1] = aoff[l] + batch_size * sizes[l]
    abuf = np.empty(aoff[n_layers + 1], params.dtype)
    ybuf = np.empty((batch_size, sizes[n_layers]), params.dtype)
    dbuf = np.empty((2, batch_size * maxw), params.dtype)
    grads = np.empty_like(params)
    c = np.empty(_N_CONST, params.dtype)
    for h in range(LOSS_EPS + 1):
        c[h] = hyper[h]
    c[_ONE] = 1
    c[_ZERO] = 0
    c[_OM_B1] = 1 - hyper[BETA1]
    c[_OM_B2] = 1 - hyper[BETA2]
    l2 = hyper[L2]
    l1 = hyper[L1]
    penalized = l2 != 0 or l1 != 0
    # Plain SGD updates the weights inside the gradient product (see the module docstring).
    fold = opt == SGD and hyper[WEIGHT_DECAY] == 0 and not penalized
    total = 0.0
    correct = 0
    updates = 0
    value = 0.0
    # Subnormal moments of dead units made float32 Adam ~15% slower: flush them for this loop only.
    mxcsr = _get_mxcsr()
    if hyper[FLUSH_DENORMALS] != 0:
        _set_mxcsr(mxcsr | _FTZ_DAZ)
    for start in range(0, m, batch_size):
        nb = min(batch_size, m - start)
        rows = order[start:start + nb]
        c[_NB] = nb
        # Gather the batch's rows (targets too: their cache misses then overlap with those of x).
        x0 = abuf[0:nb * sizes[0]].reshape((nb, sizes[0]))
        for i in range(nb):
            x0[i, :] = x[rows[i], :]
            ybuf[i, :] = y[rows[i], :]
        for l in range(n_layers):
            ain = abuf[aoff[l]:aoff[l] + nb * sizes[l]].reshape((nb, sizes[l]))
            aout = abuf[aoff[l + 1]:aoff[l + 1] + nb * sizes[l + 1]].reshape((nb, sizes[l + 1]))
            w = params[woff[l]:boff[l]].reshape((sizes[l], sizes[l + 1]))
            _matmul(ain, w, aout, gemm_min)
            if l < n_layers - 1:
                _bias_act(aout, params[boff[l]:boff[l] + sizes[l + 1]], acts[l], c[_ONE], c[_ZERO])
        aout = abuf[aoff[n_layers]:aoff[n_layers] + nb * sizes[n_layers]].reshape((nb, sizes[n_layers]))
        b = params[boff[n_layers - 1]:boff[n_layers - 1] + sizes[n_layers]]
        cur = 0
        delta = dbuf[cur, :nb * sizes[n_layers]].reshape((nb, sizes[n_layers]))
        data_sum, right = _output(aout, b, ybuf, acts[n_layers - 1], loss, delta, c, hyper[LOSS_EPS])
        # The batch's objective as fit reports it: mean data loss plus the penalties at these weights
        # (known only after the penalty pass below; without penalties, checked before any update).
        value = data_sum / nb
        if not penalized and not np.isfinite(value):
            break  # this batch is not applied; the caller reports divergence at batch `updates`
        for l in range(n_layers - 1, -1, -1):
            ain = abuf[aoff[l]:aoff[l] + nb * sizes[l]].reshape((nb, sizes[l]))
            w = params[woff[l]:boff[l]].reshape((sizes[l], sizes[l + 1]))
            gw = grads[woff[l]:boff[l]].reshape((sizes[l], sizes[l + 1]))
            gb = grads[boff[l]:boff[l] + sizes[l + 1]]
            if l > 0:  # the delta of the layer below, from W before this step updates it
                cur = 1 - cur
                nd = dbuf[cur, :nb * sizes[l]].reshape((nb, sizes[l]))
                _matmul_nt(delta, w, nd, gemm_min)
            gb[:] = 0
            for i in range(nb):
                di = delta[i]
                for j in range(sizes[l + 1]):
                    gb[j] += di[j]
            if fold:
                _sgd_weights(ain, delta, w, gw, c[LR], gemm_min)
                bl = params[boff[l]:boff[l] + sizes[l + 1]]
                for j in range(sizes[l + 1]):
                    bl[j] = bl[j] - c[LR] * gb[j]
            else:
                _matmul_tn(ain, delta, gw, gemm_min)
            if l > 0:
                _act_backward(ain, nd, acts[l - 1], c[_ONE], c[_ZERO])
                delta = nd
        if penalized:
            squares = 0.0
            absolute = 0.0
            for l in range(n_layers):
                sq, ab = _penalize(params, grads, woff[l], boff[l], c, l2, l1)
                squares += sq
                absolute += ab
            if l2 != 0:
                value += l2 / 2 * squares
            if l1 != 0:
                value += l1 * absolute
            if not np.isfinite(value):
                break
        total += value * nb
        correct += right
        step += 1
        updates += 1
        if fold:
            continue
        if opt == ADAM:
            s = np.float64(step)
            c[_STEP_SIZE] = hyper[LR] / (1 - hyper[BETA1] ** s)
            c[_BC2] = np.sqrt(1 - hyper[BETA2] ** s)
        _step(params, grads, state, opt, c)
    _set_mxcsr(mxcsr)
    return total, correct, updates, value
