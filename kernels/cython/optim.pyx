"""Optimizer update rules, in place, in Cython (the spec: kernels/reference/optim.py, torch.optim semantics).

Every array is 1-D, C-contiguous and of one float dtype: the parameter ``p``, its gradient ``g`` (never
modified) and the optimizer state. Hyperparameters are Python floats; scalars derived from them (bias
corrections, 1 - alpha, ...) are computed in float64 as the reference does and then rounded to the
parameter dtype; every element-wise operation is in the parameter dtype, in the reference's order, so the
updates match the reference to the last bit up to the one difference of sqrt/division rounding (none:
both are correctly rounded).
"""
import numpy as np

include "_common.pxi"


cdef inline int check_1d(Py_ssize_t got, Py_ssize_t want) except -1:
    if got != want:
        raise ValueError(f"optimizer arrays differ in length: {got} and {want}")
    return 0


def sgd_step(floating[::1] p, const floating[::1] g, double lr, double weight_decay):
    """p -= lr * (g + weight_decay * p)."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating lr_ = <floating>lr, wd = <floating>weight_decay
    check_1d(g.shape[0], size)
    with nogil:
        if weight_decay != 0:
            for t in range(size):
                p[t] = p[t] - lr_ * (g[t] + wd * p[t])
        else:
            for t in range(size):
                p[t] = p[t] - lr_ * g[t]


def momentum_step(floating[::1] p, const floating[::1] g, floating[::1] buf, double lr, double momentum,
                  double weight_decay, bint nesterov):
    """buf = momentum * buf + d; p -= lr * (d + momentum * buf if nesterov else buf), d = decayed g."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating lr_ = <floating>lr, mu = <floating>momentum, wd = <floating>weight_decay, d, b, pt, gt
    cdef bint decay = weight_decay != 0
    check_1d(g.shape[0], size)
    check_1d(buf.shape[0], size)
    with nogil:
        for t in range(size):
            pt = p[t]
            gt = g[t]
            d = vsel(decay, gt + wd * pt, gt)
            b = buf[t] * mu + d
            buf[t] = b
            p[t] = pt - lr_ * vsel(nesterov, d + mu * b, b)


def adagrad_step(floating[::1] p, const floating[::1] g, floating[::1] state_sum, double lr, double lr_decay,
                 double eps, double weight_decay, Py_ssize_t step):
    """state_sum += d^2; p -= lr / (1 + (step - 1) lr_decay) * d / (sqrt(state_sum) + eps)."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating clr = <floating>(lr / (1 + (step - 1) * lr_decay)), eps_ = <floating>eps
    cdef floating wd = <floating>weight_decay, d, s, pt, gt
    cdef bint decay = weight_decay != 0
    check_1d(g.shape[0], size)
    check_1d(state_sum.shape[0], size)
    with nogil:
        for t in range(size):
            pt = p[t]
            gt = g[t]
            d = vsel(decay, gt + wd * pt, gt)
            s = state_sum[t] + d * d
            state_sum[t] = s
            p[t] = pt - clr * (d / (vsqrt(s) + eps_))


def rmsprop_step(floating[::1] p, const floating[::1] g, floating[::1] square_avg, double lr, double alpha,
                 double eps, double weight_decay):
    """square_avg = alpha square_avg + (1 - alpha) d^2; p -= lr * d / (sqrt(square_avg) + eps)."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating lr_ = <floating>lr, alpha_ = <floating>alpha, one_minus = <floating>(1 - alpha)
    cdef floating eps_ = <floating>eps, wd = <floating>weight_decay, d, s, pt, gt
    cdef bint decay = weight_decay != 0
    check_1d(g.shape[0], size)
    check_1d(square_avg.shape[0], size)
    with nogil:
        for t in range(size):
            pt = p[t]
            gt = g[t]
            d = vsel(decay, gt + wd * pt, gt)
            s = square_avg[t] * alpha_ + one_minus * (d * d)
            square_avg[t] = s
            p[t] = pt - lr_ * (d / (vsqrt(s) + eps_))


def adadelta_step(floating[::1] p, const floating[::1] g, floating[::1] square_avg, floating[::1] acc_delta,
                  double lr, double rho, double eps, double weight_decay):
    """Zeiler's Adadelta with torch's lr factor (default lr=1 in the Python layer)."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating lr_ = <floating>lr, rho_ = <floating>rho, one_minus = <floating>(1 - rho)
    cdef floating eps_ = <floating>eps, wd = <floating>weight_decay, d, s, delta, pt, gt
    cdef bint decay = weight_decay != 0
    check_1d(g.shape[0], size)
    check_1d(square_avg.shape[0], size)
    check_1d(acc_delta.shape[0], size)
    with nogil:
        for t in range(size):
            pt = p[t]
            gt = g[t]
            d = vsel(decay, gt + wd * pt, gt)
            s = square_avg[t] * rho_ + one_minus * (d * d)
            square_avg[t] = s
            delta = vsqrt(acc_delta[t] + eps_) / vsqrt(s + eps_) * d
            acc_delta[t] = acc_delta[t] * rho_ + one_minus * (delta * delta)
            p[t] = pt - lr_ * delta


cdef int adam_core(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, double lr,
                   double beta1, double beta2, double eps, double l2_decay, double decoupled,
                   Py_ssize_t step) except -1:
    """The Adam update with bias correction. d = g + l2_decay * p (Adam's L2); when decoupled != 1, p is
    first multiplied by it (AdamW's decay, dtype(1 - lr * weight_decay))."""
    cdef Py_ssize_t size = p.shape[0], t
    cdef floating b1 = <floating>beta1, omb1 = <floating>(1 - beta1)
    cdef floating b2 = <floating>beta2, omb2 = <floating>(1 - beta2), eps_ = <floating>eps
    cdef floating step_size = <floating>(lr / (1 - beta1 ** step)), bc2_sqrt = <floating>sqrt(1 - beta2 ** step)
    cdef floating wd = <floating>l2_decay, shrink = <floating>decoupled, d, mt, vt, pt, gt
    cdef bint decay = l2_decay != 0, scale = decoupled != 1
    check_1d(g.shape[0], size)
    check_1d(m.shape[0], size)
    check_1d(v.shape[0], size)
    with nogil:
        for t in range(size):
            pt = p[t]
            pt = vsel(scale, pt * shrink, pt)
            gt = g[t]
            d = vsel(decay, gt + wd * pt, gt)
            mt = m[t] * b1 + omb1 * d
            vt = v[t] * b2 + omb2 * (d * d)
            m[t] = mt
            v[t] = vt
            p[t] = pt - step_size * (mt / (vsqrt(vt) / bc2_sqrt + eps_))
    return 0


def adam_step(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, double lr, double beta1,
              double beta2, double eps, double weight_decay, Py_ssize_t step):
    """Adam with bias correction; weight_decay is L2 added to the gradient (torch.optim.Adam)."""
    adam_core(p, g, m, v, lr, beta1, beta2, eps, weight_decay, 1.0, step)


def adamw_step(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v, double lr, double beta1,
               double beta2, double eps, double weight_decay, Py_ssize_t step):
    """AdamW: p *= 1 - lr * weight_decay, then the Adam update without decay (torch.optim.AdamW)."""
    adam_core(p, g, m, v, lr, beta1, beta2, eps, 0.0, 1 - lr * weight_decay if weight_decay != 0 else 1.0, step)


def add_l2_grad(floating[::1] g, const floating[::1] p, double coef):
    """g += coef * p (gradient of coef/2 * sum p^2), in place."""
    cdef Py_ssize_t size = g.shape[0], t
    cdef floating c = <floating>coef
    check_1d(p.shape[0], size)
    with nogil:
        for t in range(size):
            g[t] = g[t] + c * p[t]


def add_l1_grad(floating[::1] g, const floating[::1] p, double coef):
    """g += coef * sign(p) (gradient of coef * sum |p|, 0 at p = 0; NaN where p is NaN), in place."""
    cdef Py_ssize_t size = g.shape[0], t
    cdef floating c = <floating>coef, v, s
    check_1d(p.shape[0], size)
    with nogil:
        for t in range(size):
            v = p[t]
            s = vsel(v > 0, <floating>1, vsel(v < 0, <floating>-1, vsel(v == 0, <floating>0, v)))
            g[t] = g[t] + c * s


def sum_squares(const floating[::1] x):
    """sum(x^2) accumulated in float64, as a Python float (penalties and global gradient norms)."""
    cdef double total
    if x.shape[0] == 0:
        return 0.0
    with nogil:
        total = row_dot(&x[0], &x[0], x.shape[0])
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
