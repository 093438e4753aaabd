"""Optimizer update rules, in place (Numba); semantics of kernels/reference/optim.py (torch.optim rules).

Arrays are C-contiguous and of one float dtype (1-D in the spec; any shape works, they are flattened):
the parameter ``p``, its gradient ``g`` (never modified) and the state. Each rule is written once, in
``step_block``, which updates a block of rows of flat buffers (the elements lo + i * stride + j, i < rows,
j < width): the fused epoch calls it on the parameters a thread owns, the public kernels below on a whole
array. Its scalars come from ``step_constants``: the hyperparameters and what they imply at this step
(Adam's bias corrections, Adagrad's decayed rate, AdamW's shrink factor, a gradient-clipping factor),
computed in float64 as the reference does and rounded once to the parameter dtype, so every operation is
in that dtype, in the reference's order: the results are bit-identical to it. The penalties' gradients
(``penalize_block``) and the sums of squares (``sumsq_block``: penalty values, gradient norms) are blocks
too. Indices are uint64 inside the blocks, so Numba neither wraps them nor checks them and the row loops
vectorize without a view per row (with views, an Adam step over W_0's 784 rows of 48 columns took 27 ms an
epoch at 784-100-10, batch 128; 4.5 ms this way).
"""
import math

import numba
import numpy as np

from ..constants import (ADADELTA, ADAGRAD, ADAM, ADAMW, ALPHA, BETA1, BETA2, EPS, LR, LR_DECAY, MOMENTUM, MU,
                         N_HYPER, NESTEROV, RHO, RMSPROP, SGD, WEIGHT_DECAY)
from ._math import pairwise_sum

# Slots of the step constants (an array of the parameter dtype): ``step_constants`` fills them.
C_LR, C_MU, C_WD, C_B1, C_OMB1, C_B2, C_OMB2, C_EPS, C_STEP_SIZE, C_BC2, C_SHRINK, C_DECAY, C_OMD, C_FACTOR = range(14)
N_STEP = 14


@numba.njit(cache=True, error_model="numpy")
def _flat(x):
    return x.reshape(x.size)


@numba.njit(cache=True, error_model="numpy")
def step_constants(opt, hyper, step, factor, c):
    """Fill ``c`` (N_STEP,) of the parameter dtype for one step of optimizer ``opt`` (hyper: float64
    (N_HYPER,), kernels/constants.py's slots; step: the 1-based count of updates including this one;
    factor: the gradient-clipping factor, 1 for none)."""
    t = c.dtype.type
    lr, wd = hyper[LR], hyper[WEIGHT_DECAY]
    # A float exponent calls pow() as Python does; an int one would be repeated multiplication in Numba.
    fstep = np.float64(step)
    c[:] = 0
    c[C_LR] = t(lr / (1 + (step - 1) * hyper[LR_DECAY])) if opt == ADAGRAD else t(lr)
    c[C_MU] = t(hyper[MU])
    c[C_WD] = t(wd)
    c[C_EPS] = t(hyper[EPS])
    c[C_FACTOR] = t(factor)
    if opt == ADAM or opt == ADAMW:
        b1, b2 = hyper[BETA1], hyper[BETA2]
        c[C_B1], c[C_OMB1], c[C_B2], c[C_OMB2] = t(b1), t(1 - b1), t(b2), t(1 - b2)
        c[C_STEP_SIZE] = t(lr / (1 - b1**fstep))
        c[C_BC2] = t(math.sqrt(1 - b2**fstep))
        c[C_SHRINK] = t(1 - lr * wd)
    elif opt == RMSPROP or opt == ADADELTA:
        decay = hyper[ALPHA] if opt == RMSPROP else hyper[RHO]
        c[C_DECAY], c[C_OMD] = t(decay), t(1 - decay)


@numba.njit(cache=True, error_model="numpy")
def step_block(opt, p, g, s0, s1, lo, n_rows, width, stride, c):
    """One update of the block's elements of p (torch semantics, see kernels/reference/optim.py) from their
    gradient g times c[C_FACTOR]; s0, s1 are the optimizer's state rows (momentum buffer; Adam's m, v;
    Adagrad's sum; RMSprop's square average; Adadelta's square average and accumulated delta), unused
    where it has none. Each rule is its own branch-free loop so that LLVM vectorizes it."""
    lr, mu, wd, f, eps = c[C_LR], c[C_MU], c[C_WD], c[C_FACTOR], c[C_EPS]
    b1, omb1, b2, omb2 = c[C_B1], c[C_OMB1], c[C_B2], c[C_OMB2]
    step_size, bc2, shrink, rho, omr = c[C_STEP_SIZE], c[C_BC2], c[C_SHRINK], c[C_DECAY], c[C_OMD]
    decay = wd != 0 and opt != ADAMW  # AdamW shrinks p instead
    if width == stride:  # consecutive rows: one
        width *= n_rows
        n_rows = 1
    for i in range(n_rows):
        base = np.uint64(lo + i * stride)
        if opt == SGD:
            for j in range(width):
                q = base + np.uint64(j)
                d = g[q] * f + wd * p[q] if decay else g[q] * f
                p[q] = p[q] - lr * d
        elif opt == MOMENTUM or opt == NESTEROV:
            for j in range(width):
                q = base + np.uint64(j)
                d = g[q] * f + wd * p[q] if decay else g[q] * f
                b = s0[q] * mu + d
                s0[q] = b
                p[q] = p[q] - lr * (d + mu * b if opt == NESTEROV else b)
        elif opt == ADAM or opt == ADAMW:
            for j in range(width):
                q = base + np.uint64(j)
                pq = p[q] * shrink if opt == ADAMW and wd != 0 else p[q]
                d = g[q] * f + wd * pq if decay else g[q] * f
                m = s0[q] * b1 + omb1 * d
                v = s1[q] * b2 + omb2 * (d * d)
                s0[q] = m
                s1[q] = v
                p[q] = pq - step_size * (m / (np.sqrt(v) / bc2 + eps))
        elif opt == ADAGRAD:
            for j in range(width):
                q = base + np.uint64(j)
                d = g[q] * f + wd * p[q] if decay else g[q] * f
                s = s0[q] + d * d
                s0[q] = s
                p[q] = p[q] - lr * (d / (np.sqrt(s) + eps))
        elif opt == RMSPROP:
            for j in range(width):
                q = base + np.uint64(j)
                d = g[q] * f + wd * p[q] if decay else g[q] * f
                s = s0[q] * rho + omr * (d * d)
                s0[q] = s
                p[q] = p[q] - lr * (d / (np.sqrt(s) + eps))
        else:  # ADADELTA
            for j in range(width):
                q = base + np.uint64(j)
                d = g[q] * f + wd * p[q] if decay else g[q] * f
                s = s0[q] * rho + omr * (d * d)
                s0[q] = s
                delta = np.sqrt(s1[q] + eps) / np.sqrt(s + eps) * d
                s1[q] = s1[q] * rho + omr * (delta * delta)
                p[q] = p[q] - lr * delta


@numba.njit(cache=True, error_model="numpy")
def penalize_block(p, g, lo, n_rows, width, stride, l2, l1, l2_on, l1_on):
    """g += l2 * p (with ``l2_on``), then g += l1 * sign(p) (with ``l1_on``; np.sign: 0 -> 0, NaN -> NaN) on
    the block (add_l2_grad, add_l1_grad; l2, l1 scalars of the dtype). Returns (sum p^2, sum |p|) in float64
    over the block (``sumsq_block``, ``abssum_block``; 0 for a penalty that is off): the penalty values."""
    one, zero = p.dtype.type(1), p.dtype.type(0)
    squares = sumsq_block(p, lo, n_rows, width, stride) if l2_on else 0.0
    absolute = abssum_block(p, lo, n_rows, width, stride) if l1_on else 0.0
    if width == stride:
        width *= n_rows
        n_rows = 1
    for i in range(n_rows):
        base = np.uint64(lo + i * stride)
        if l2_on:
            for j in range(width):
                q = base + np.uint64(j)
                g[q] = g[q] + l2 * p[q]
        if l1_on:
            for j in range(width):
                q = base + np.uint64(j)
                v = p[q]
                g[q] = g[q] + l1 * (one if v > zero else (-one if v < zero else v))
    return squares, absolute


@numba.njit(cache=True, error_model="numpy")
def _block_sum(x, lo, n_rows, width, stride, squares):
    """sum(x^2) (``squares``) or sum(|x|) over the block in float64: four running sums per row (one chain of
    float64 adds would take 4 cycles an element), combined (x0 + x1) + (x2 + x3)."""
    total = 0.0
    if width == stride:
        width *= n_rows
        n_rows = 1
    for i in range(n_rows):
        base = lo + i * stride
        s0 = s1 = s2 = s3 = 0.0
        end = width - width % 4
        for j in range(0, end, 4):
            q = np.uint64(base + j)
            v0, v1 = np.float64(x[q]), np.float64(x[q + np.uint64(1)])
            v2, v3 = np.float64(x[q + np.uint64(2)]), np.float64(x[q + np.uint64(3)])
            if squares:
                s0 += v0 * v0
                s1 += v1 * v1
                s2 += v2 * v2
                s3 += v3 * v3
            else:
                s0 += abs(v0)
                s1 += abs(v1)
                s2 += abs(v2)
                s3 += abs(v3)
        for j in range(end, width):
            v = np.float64(x[np.uint64(base + j)])
            s0 += v * v if squares else abs(v)
        total += (s0 + s1) + (s2 + s3)
    return total


@numba.njit(cache=True, error_model="numpy")
def sumsq_block(x, lo, n_rows, width, stride):
    """sum(x^2) over the block in float64 (``_block_sum``'s order)."""
    return _block_sum(x, lo, n_rows, width, stride, True)


@numba.njit(cache=True, error_model="numpy")
def abssum_block(x, lo, n_rows, width, stride):
    """sum(|x|) over the block in float64 (``_block_sum``'s order)."""
    return _block_sum(x, lo, n_rows, width, stride, False)


# -- the public kernels: the blocks on whole arrays --------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def _step(opt, p, g, s0, s1, lr, mu, weight_decay, beta1, beta2, eps, decay, lr_decay, step):
    h = np.zeros(N_HYPER)
    h[LR], h[MU], h[WEIGHT_DECAY], h[BETA1], h[BETA2], h[EPS] = lr, mu, weight_decay, beta1, beta2, eps
    h[ALPHA] = h[RHO] = decay
    h[LR_DECAY] = lr_decay
    c = np.empty(N_STEP, dtype=p.dtype)
    step_constants(opt, h, step, 1.0, c)
    pf = _flat(p)
    n = pf.size
    if g.size != n or s0.size not in (0, n) or s1.size not in (0, n):
        raise ValueError("optimizer arrays differ in length")
    step_block(opt, pf, _flat(g), _flat(s0), _flat(s1), 0, 1, n, n, c)


@numba.njit(cache=True, error_model="numpy")
def sgd_step(p, g, lr, weight_decay):
    """p -= lr * (g + weight_decay * p)."""
    _step(SGD, p, g, p[:0], p[:0], lr, 0.0, weight_decay, 0.0, 0.0, 0.0, 0.0, 0.0, 1)


@numba.njit(cache=True, error_model="numpy")
def momentum_step(p, g, buf, lr, momentum, weight_decay, nesterov):
    """buf = momentum * buf + d; p -= lr * (d + momentum * buf if nesterov else buf), d = decayed g."""
    _step(NESTEROV if nesterov else MOMENTUM, p, g, buf, p[:0], lr, momentum, weight_decay, 0.0, 0.0, 0.0, 0.0,
          0.0, 1)


@numba.njit(cache=True, error_model="numpy")
def adagrad_step(p, g, state_sum, lr, lr_decay, eps, weight_decay, step):
    """state_sum += d^2; p -= lr / (1 + (step - 1) lr_decay) * d / (sqrt(state_sum) + eps)."""
    _step(ADAGRAD, p, g, state_sum, p[:0], lr, 0.0, weight_decay, 0.0, 0.0, eps, 0.0, lr_decay, step)


@numba.njit(cache=True, error_model="numpy")
def rmsprop_step(p, g, square_avg, lr, alpha, eps, weight_decay):
    """square_avg = alpha square_avg + (1 - alpha) d^2; p -= lr * d / (sqrt(square_avg) + eps)."""
    _step(RMSPROP, p, g, square_avg, p[:0], lr, 0.0, weight_decay, 0.0, 0.0, eps, alpha, 0.0, 1)


@numba.njit(cache=True, error_model="numpy")
def adadelta_step(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay):
    """Zeiler's Adadelta with torch's lr factor (default lr=1 in the Python layer)."""
    _step(ADADELTA, p, g, square_avg, acc_delta, lr, 0.0, weight_decay, 0.0, 0.0, eps, rho, 0.0, 1)


@numba.njit(cache=True, error_model="numpy")
def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """Adam with bias correction; weight_decay is L2 added to the gradient (torch.optim.Adam)."""
    _step(ADAM, p, g, m, v, lr, 0.0, weight_decay, beta1, beta2, eps, 0.0, 0.0, step)


@numba.njit(cache=True, error_model="numpy")
def adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """AdamW: p *= 1 - lr * weight_decay, then the Adam update without decay (torch.optim.AdamW)."""
    _step(ADAMW, p, g, m, v, lr, 0.0, weight_decay, beta1, beta2, eps, 0.0, 0.0, step)


@numba.njit(cache=True, error_model="numpy")
def _penalize(g, p, coef, l1):
    n = g.size
    if p.size != n:
        raise ValueError("penalty arrays differ in length")
    t = p.dtype.type
    penalize_block(_flat(p), _flat(g), 0, 1, n, n, t(coef), t(coef), not l1, l1)


@numba.njit(cache=True, error_model="numpy")
def add_l2_grad(g, p, coef):
    """g += coef * p (gradient of coef/2 * sum p^2), in place."""
    _penalize(g, p, coef, False)


@numba.njit(cache=True, error_model="numpy")
def add_l1_grad(g, p, coef):
    """g += coef * sign(p) (gradient of coef * sum |p|, 0 at p = 0), in place."""
    _penalize(g, p, coef, True)


@numba.njit(cache=True, error_model="numpy")
def sum_squares(x):
    """sum(x^2) accumulated in float64, as a Python float (penalties and global gradient norms); four
    running sums (the reference's BLAS dot has its own order: equal to ~1e-15 relative, not bitwise)."""
    return sumsq_block(_flat(x), 0, 1, x.size, x.size)


@numba.njit(cache=True, error_model="numpy")
def sum_abs(x):
    """sum(|x|) accumulated in float64, as a Python float (pairwise, as the reference's np.sum)."""
    xf = _flat(x)
    terms = np.empty(xf.size, dtype=np.float64)
    for i in range(xf.size):
        terms[i] = abs(np.float64(xf[i]))
    return pairwise_sum(terms, 0, terms.size)


@numba.njit(cache=True, error_model="numpy")
def scale_inplace(x, factor):
    """x *= factor (gradient clipping by global norm)."""
    f = x.dtype.type(factor)
    xf = _flat(x)
    for i in range(xf.size):
        xf[i] *= f
