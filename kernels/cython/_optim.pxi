# The optimizers' update rules (torch.optim's, kernels/reference/optim.py), the penalties' gradients and the
# sums of squares, as block kernels written once: optim.pyx's public kernels call them on a whole array,
# fused.pyx on the parameters a thread owns. A block is the elements lo + i * stride + j, i < rows, j < width,
# of flat buffers (a block whose rows lie back to back is one row). Every operation is in the parameter
# dtype, in the reference's order, on scalars computed in float64 as the reference does and rounded once to
# the dtype (``step_constants``), so the public kernels give the reference's bits. Each rule is its own
# branch-free loop (vsel), which GCC vectorizes (square roots too: setup.py passes -fno-math-errno).
# Needs _common.pxi and _constants.pxi included first.

from libc.math cimport pow

cdef enum:
    # Slots of the step constants (an array of the parameter dtype that ``step_constants`` fills).
    C_LR = 0
    C_MU = 1
    C_WD = 2
    C_B1 = 3
    C_OMB1 = 4
    C_B2 = 5
    C_OMB2 = 6
    C_EPS = 7
    C_STEP_SIZE = 8
    C_BC2 = 9
    C_SHRINK = 10
    C_DECAY = 11
    C_OMD = 12
    C_FACTOR = 13
    N_STEP = 14


cdef void step_constants(long opt, const double* hyper, long long step, double factor,
                         floating* c) noexcept nogil:
    """Fill c (N_STEP,) for one step of optimizer ``opt``: hyper (N_HYPER,) kernels/constants.py's slots;
    step: the 1-based count of updates including this one; factor: the gradient-clipping factor (1: none).
    Adam's bias corrections, Adagrad's decayed rate and AdamW's shrink factor as the reference computes
    them (Python floats: C doubles, pow)."""
    cdef double lr = hyper[LR], wd = hyper[WEIGHT_DECAY], b1 = hyper[BETA1], b2 = hyper[BETA2], decay
    c[C_LR] = <floating>(lr / (1 + (step - 1) * hyper[LR_DECAY])) if opt == ADAGRAD else <floating>lr
    c[C_MU] = <floating>hyper[MU]
    c[C_WD] = <floating>wd
    c[C_EPS] = <floating>hyper[EPS]
    c[C_FACTOR] = <floating>factor
    c[C_B1] = <floating>b1
    c[C_OMB1] = <floating>(1 - b1)
    c[C_B2] = <floating>b2
    c[C_OMB2] = <floating>(1 - b2)
    c[C_STEP_SIZE] = c[C_BC2] = 0
    if opt == ADAM or opt == ADAMW:
        c[C_STEP_SIZE] = <floating>(lr / (1 - pow(b1, <double>step)))
        c[C_BC2] = <floating>sqrt(1 - pow(b2, <double>step))
    c[C_SHRINK] = <floating>(1 - lr * wd)
    decay = hyper[ALPHA] if opt == RMSPROP else hyper[RHO]
    c[C_DECAY] = <floating>decay
    c[C_OMD] = <floating>(1 - decay)


cdef void step_block(long opt, floating* p, const floating* g, floating* s0, floating* s1, Py_ssize_t lo,
                     Py_ssize_t rows, Py_ssize_t width, Py_ssize_t stride, const floating* c) noexcept nogil:
    """One update of the block's elements of p from their gradient g times c[C_FACTOR]; s0, s1: the
    optimizer's state rows (momentum buffer; Adam's m, v; Adagrad's sum; RMSprop's square average;
    Adadelta's square average and accumulated delta), NULL where it has none. Weight decay adds wd * p to
    the gradient, except in AdamW, which shrinks p by c[C_SHRINK] first."""
    cdef Py_ssize_t i, j, q
    cdef floating lr = c[C_LR], mu = c[C_MU], wd = c[C_WD], f = c[C_FACTOR], eps = c[C_EPS]
    cdef floating b1 = c[C_B1], omb1 = c[C_OMB1], b2 = c[C_B2], omb2 = c[C_OMB2]
    cdef floating step_size = c[C_STEP_SIZE], bc2 = c[C_BC2], shrink = c[C_SHRINK], rho = c[C_DECAY]
    cdef floating omr = c[C_OMD], pv, d, b, m, v, s, delta
    cdef bint decay = wd != 0 and opt != ADAMW, shrinking = wd != 0 and opt == ADAMW, nesterov = opt == NESTEROV
    if rows <= 0 or width <= 0:
        return
    if width == stride:
        width *= rows
        rows = 1
    for i in range(rows):
        q = lo + i * stride
        if opt == SGD:
            for j in range(q, q + width):
                pv = p[j]
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                p[j] = pv - lr * d
        elif opt == MOMENTUM or opt == NESTEROV:
            for j in range(q, q + width):
                pv = p[j]
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                b = s0[j] * mu + d
                s0[j] = b
                p[j] = pv - lr * vsel(nesterov, d + mu * b, b)
        elif opt == ADAM or opt == ADAMW:
            for j in range(q, q + width):
                pv = p[j]
                pv = vsel(shrinking, pv * shrink, pv)
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                m = s0[j] * b1 + omb1 * d
                v = s1[j] * b2 + omb2 * (d * d)
                s0[j] = m
                s1[j] = v
                p[j] = pv - step_size * (m / (vsqrt(v) / bc2 + eps))
        elif opt == ADAGRAD:
            for j in range(q, q + width):
                pv = p[j]
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                s = s0[j] + d * d
                s0[j] = s
                p[j] = pv - lr * (d / (vsqrt(s) + eps))
        elif opt == RMSPROP:
            for j in range(q, q + width):
                pv = p[j]
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                s = s0[j] * rho + omr * (d * d)
                s0[j] = s
                p[j] = pv - lr * (d / (vsqrt(s) + eps))
        else:  # ADADELTA
            for j in range(q, q + width):
                pv = p[j]
                d = g[j] * f
                d = vsel(decay, d + wd * pv, d)
                s = s0[j] * rho + omr * (d * d)
                s0[j] = s
                delta = vsqrt(s1[j] + eps) / vsqrt(s + eps) * d
                s1[j] = s1[j] * rho + omr * (delta * delta)
                p[j] = pv - lr * delta


cdef void penalize_block(const floating* p, floating* g, Py_ssize_t lo, Py_ssize_t rows, Py_ssize_t width,
                         Py_ssize_t stride, floating l2, floating l1, bint l2_on, bint l1_on, double* squares,
                         double* absolute) noexcept nogil:
    """g += l2 * p (with l2_on), then g += l1 * sign(p) (with l1_on; np.sign: 0 at 0, NaN at NaN) on the
    block (add_l2_grad, add_l1_grad); adds sum p^2 and sum |p| over the block, in float64 (row_dot's and
    row_abs_sum's order, row by row), to ``squares`` and ``absolute`` (the penalty values)."""
    cdef Py_ssize_t i, j, q
    cdef floating v
    cdef double sq = 0, ab = 0
    if rows <= 0 or width <= 0:
        return
    if width == stride:
        width *= rows
        rows = 1
    for i in range(rows):
        q = lo + i * stride
        if l2_on:
            sq += row_dot(p + q, p + q, width)
            for j in range(q, q + width):
                g[j] = g[j] + l2 * p[j]
        if l1_on:
            ab += row_abs_sum(p + q, width)
            for j in range(q, q + width):
                v = p[j]
                g[j] = g[j] + l1 * vsel(v > 0, <floating>1, vsel(v < 0, <floating>-1, vsel(v == 0, <floating>0, v)))
    squares[0] += sq
    absolute[0] += ab


cdef double sumsq_block(const floating* x, Py_ssize_t lo, Py_ssize_t rows, Py_ssize_t width,
                        Py_ssize_t stride) noexcept nogil:
    """sum(x^2) over the block, accumulated in float64 (row_dot's order)."""
    cdef Py_ssize_t i
    cdef double total = 0
    if rows <= 0 or width <= 0:
        return 0
    if width == stride:
        width *= rows
        rows = 1
    for i in range(rows):
        total += row_dot(x + lo + i * stride, x + lo + i * stride, width)
    return total
