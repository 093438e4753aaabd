"""Optimizer update rules, in place, in Cython (the spec: kernels/reference/optim.py, torch.optim semantics).

Every array is 1-D, C-contiguous and of one float dtype: the parameter ``p``, its gradient ``g`` (never
modified) and the optimizer state. Hyperparameters are Python floats. Each rule is _optim.pxi's
``step_block`` (shared with the fused epoch) on the whole array: scalars derived from the hyperparameters
(bias corrections, 1 - alpha, ...) are computed in float64 as the reference does and then rounded to the
parameter dtype; every element-wise operation is in the parameter dtype, in the reference's order, so the
updates match the reference to the last bit (sqrt and division are correctly rounded in both).
"""
import numpy as np

include "_common.pxi"
include "_constants.pxi"
include "_optim.pxi"


cdef inline int check_1d(Py_ssize_t got, Py_ssize_t want) except -1:
    if got != want:
        raise ValueError(f"optimizer arrays differ in length: {got} and {want}")
    return 0


cdef int _step(long opt, floating[::1] p, const floating[::1] g, s0, s1, double lr,
               double mu, double weight_decay, double beta1, double beta2, double eps, double decay,
               double lr_decay, long long step) except -1:
    """One step of optimizer ``opt`` over the whole of p (state rows s0, s1: arrays of p's dtype, or None
    where it has none)."""
    cdef double hyper[N_HYPER]
    cdef floating c[N_STEP]
    cdef floating[::1] v0, v1
    cdef floating* sp0 = NULL
    cdef floating* sp1 = NULL
    cdef Py_ssize_t size = p.shape[0]
    check_1d(g.shape[0], size)
    if s0 is not None:
        v0 = s0
        check_1d(v0.shape[0], size)
        sp0 = &v0[0]
    if s1 is not None:
        v1 = s1
        check_1d(v1.shape[0], size)
        sp1 = &v1[0]
    if size == 0:
        return 0
    hyper[LR], hyper[MU], hyper[WEIGHT_DECAY], hyper[BETA1], hyper[BETA2] = lr, mu, weight_decay, beta1, beta2
    hyper[EPS], hyper[ALPHA], hyper[RHO], hyper[LR_DECAY] = eps, decay, decay, lr_decay
    with nogil:
        step_constants(opt, hyper, step, 1.0, c)
        step_block(opt, &p[0], &g[0], sp0, sp1, 0, 1, size, size, c)
    return 0


def sgd_step(floating[::1] p, const floating[::1] g, double lr, double weight_decay):
    """p -= lr * (g + weight_decay * p)."""
    _step(SGD, p, g, None, None, lr, 0, weight_decay, 0, 0, 0, 0, 0, 1)


def momentum_step(floating[::1] p, const floating[::1] g, floating[::1] buf, double lr, double momentum,
                  double weight_decay, bint nesterov):
    """buf = momentum * buf + d; p -= lr * (d + momentum * buf if nesterov else buf), d = decayed g."""
    _step(NESTEROV if nesterov else MOMENTUM, p, g, buf, None, lr, momentum, weight_decay, 0, 0, 0, 0, 0, 1)


def adagrad_step(floating[::1] p, const floating[::1] g, floating[::1] state_sum, double lr, double lr_decay,
                 double eps, double weight_decay, Py_ssize_t step):
    """state_sum += d^2; p -= lr / (1 + (step - 1) lr_decay) * d / (sqrt(state_sum) + eps)."""
    _step(ADAGRAD, p, g, state_sum, None, lr, 0, weight_decay, 0, 0, eps, 0, lr_decay, step)


def rmsprop_step(floating[::1] p, const floating[::1] g, floating[::1] square_avg, double lr, double alpha,
                 double eps, double weight_decay):
    """square_avg = alpha square_avg + (1 - alpha) d^2; p -= lr * d / (sqrt(square_avg) + eps)."""
    _step(RMSPROP, p, g, square_avg, None, lr, 0, weight_decay, 0, 0, eps, alpha, 0, 1)


def adadelta_step(floating[::1] p, const floating[::1] g, floating[::1] square_avg, floating[::1] acc_delta,
                  double lr, double rho, double eps, double weight_decay):
    """Zeiler's Adadelta with torch's lr factor (default lr=1 in the Python layer)."""
    _step(ADADELTA, p, g, square_avg, acc_delta, lr, 0, weight_decay, 0, 0, eps, rho, 0, 1)


def adam_step(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, double lr, double beta1,
              double beta2, double eps, double weight_decay, Py_ssize_t step):
    """Adam with bias correction; weight_decay is L2 added to the gradient (torch.optim.Adam)."""
    _step(ADAM, p, g, m, v, lr, 0, weight_decay, beta1, beta2, eps, 0, 0, step)


def adamw_step(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, double lr, double beta1,
               double beta2, double eps, double weight_decay, Py_ssize_t step):
    """AdamW: p *= 1 - lr * weight_decay, then the Adam update without decay (torch.optim.AdamW)."""
    _step(ADAMW, p, g, m, v, lr, 0, weight_decay, beta1, beta2, eps, 0, 0, step)


cdef int _penalize(floating[::1] g, const floating[::1] p, double coef, bint l1) except -1:
    cdef Py_ssize_t size = g.shape[0]
    cdef double squares = 0, absolute = 0
    check_1d(p.shape[0], size)
    if size:
        with nogil:
            penalize_block(&p[0], &g[0], 0, 1, size, size, <floating>coef, <floating>coef, not l1, l1, &squares,
                           &absolute)
    return 0


def add_l2_grad(floating[::1] g, const floating[::1] p, double coef):
    """g += coef * p (gradient of coef/2 * sum p^2), in place."""
    _penalize(g, p, coef, False)


def add_l1_grad(floating[::1] g, const floating[::1] p, double coef):
    """g += coef * sign(p) (gradient of coef * sum |p|, 0 at p = 0; NaN where p is NaN), in place."""
    _penalize(g, p, coef, True)


def sum_squares(const floating[::1] x):
    """sum(x^2) accumulated in float64, as a Python float (penalties and global gradient norms)."""
    cdef double total
    if x.shape[0] == 0:
        return 0.0
    with nogil:
        total = sumsq_block(&x[0], 0, 1, x.shape[0], x.shape[0])
    return total


def sum_abs(const floating[::1] x):
    """sum(|x|) accumulated in float64, as a Python float."""
    cdef Py_ssize_t size = x.shape[0], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double total = 0
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            for t in range(m):
                buf[t] = fabs(<double>x[start + t])
            total += fnn_sum(buf, m)
    return total


def scale_inplace(floating[::1] x, double factor):
    """x *= factor (gradient clipping by global norm)."""
    cdef Py_ssize_t size = x.shape[0], t
    cdef floating f = <floating>factor
    with nogil:
        for t in range(size):
            x[t] = x[t] * f
