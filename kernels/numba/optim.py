"""Optimizer update rules, in place (Numba); semantics of kernels/reference/optim.py (torch.optim rules).

Arrays are C-contiguous and of one float dtype (1-D in the spec; any shape works, they are flattened):
the parameter ``p``, its gradient ``g`` (never modified) and the state. Hyperparameters are Python floats
converted once to the parameter dtype, so the arithmetic is in that dtype as in the reference, with the
same operations in the same order: the results are bit-identical to it. The steps return None.
"""
import math

import numba
import numpy as np

from ._math import pairwise_sum


@numba.njit(cache=True, error_model="numpy")
def _flat(x):
    return x.reshape(x.size)


@numba.njit(cache=True, error_model="numpy")
def sgd_step(p, g, lr, weight_decay):
    """p -= lr * (g + weight_decay * p)."""
    t = p.dtype.type
    lr_, wd = t(lr), t(weight_decay)
    decay = weight_decay != 0
    pf, gf = _flat(p), _flat(g)
    for i in range(pf.size):
        d = gf[i] + wd * pf[i] if decay else gf[i]
        pf[i] -= lr_ * d


@numba.njit(cache=True, error_model="numpy")
def momentum_step(p, g, buf, lr, momentum, weight_decay, nesterov):
    """buf = momentum * buf + d; p -= lr * (d + momentum * buf if nesterov else buf), d = decayed g."""
    t = p.dtype.type
    lr_, mu, wd = t(lr), t(momentum), t(weight_decay)
    decay = weight_decay != 0
    pf, gf, bf = _flat(p), _flat(g), _flat(buf)
    for i in range(pf.size):
        d = gf[i] + wd * pf[i] if decay else gf[i]
        b = bf[i] * mu + d
        bf[i] = b
        if nesterov:
            pf[i] -= lr_ * (d + mu * b)
        else:
            pf[i] -= lr_ * b


@numba.njit(cache=True, error_model="numpy")
def adagrad_step(p, g, state_sum, lr, lr_decay, eps, weight_decay, step):
    """state_sum += d^2; p -= lr / (1 + (step - 1) lr_decay) * d / (sqrt(state_sum) + eps)."""
    t = p.dtype.type
    clr, eps_, wd = t(lr / (1 + (step - 1) * lr_decay)), t(eps), t(weight_decay)
    decay = weight_decay != 0
    pf, gf, sf = _flat(p), _flat(g), _flat(state_sum)
    for i in range(pf.size):
        d = gf[i] + wd * pf[i] if decay else gf[i]
        s = sf[i] + d * d
        sf[i] = s
        pf[i] -= clr * (d / (np.sqrt(s) + eps_))


@numba.njit(cache=True, error_model="numpy")
def rmsprop_step(p, g, square_avg, lr, alpha, eps, weight_decay):
    """square_avg = alpha square_avg + (1 - alpha) d^2; p -= lr * d / (sqrt(square_avg) + eps)."""
    t = p.dtype.type
    lr_, alpha_, one_minus, eps_, wd = t(lr), t(alpha), t(1 - alpha), t(eps), t(weight_decay)
    decay = weight_decay != 0
    pf, gf, sf = _flat(p), _flat(g), _flat(square_avg)
    for i in range(pf.size):
        d = gf[i] + wd * pf[i] if decay else gf[i]
        s = sf[i] * alpha_ + one_minus * (d * d)
        sf[i] = s
        pf[i] -= lr_ * (d / (np.sqrt(s) + eps_))


@numba.njit(cache=True, error_model="numpy")
def adadelta_step(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay):
    """Zeiler's Adadelta with torch's lr factor (default lr=1 in the Python layer)."""
    t = p.dtype.type
    lr_, rho_, one_minus, eps_, wd = t(lr), t(rho), t(1 - rho), t(eps), t(weight_decay)
    decay = weight_decay != 0
    pf, gf, sf, af = _flat(p), _flat(g), _flat(square_avg), _flat(acc_delta)
    for i in range(pf.size):
        d = gf[i] + wd * pf[i] if decay else gf[i]
        s = sf[i] * rho_ + one_minus * (d * d)
        sf[i] = s
        delta = np.sqrt(af[i] + eps_) / np.sqrt(s + eps_) * d
        af[i] = af[i] * rho_ + one_minus * (delta * delta)
        pf[i] -= lr_ * delta


@numba.njit(cache=True, error_model="numpy")
def _adam_core(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, decoupled):
    t = p.dtype.type
    b1, omb1, b2, omb2, eps_ = t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(eps)
    # A float exponent calls pow() as Python does; an int one would be repeated multiplication in Numba.
    fstep = np.float64(step)
    step_size = t(lr / (1 - beta1**fstep))
    bc2_sqrt = t(math.sqrt(1 - beta2**fstep))
    wd = t(weight_decay)
    shrink = t(1 - lr * weight_decay)
    decay = weight_decay != 0
    pf, gf, mf, vf = _flat(p), _flat(g), _flat(m), _flat(v)
    for i in range(pf.size):
        pi = pf[i]
        d = gf[i]
        if decay:
            if decoupled:
                pi = pi * shrink  # AdamW: p *= 1 - lr * weight_decay before the update
            else:
                d = d + wd * pi  # Adam: L2 added to the gradient
        mi = mf[i] * b1 + omb1 * d
        vi = vf[i] * b2 + omb2 * (d * d)
        mf[i] = mi
        vf[i] = vi
        pf[i] = pi - step_size * (mi / (np.sqrt(vi) / bc2_sqrt + eps_))


@numba.njit(cache=True, error_model="numpy")
def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """Adam with bias correction; weight_decay is L2 added to the gradient (torch.optim.Adam)."""
    _adam_core(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, False)


@numba.njit(cache=True, error_model="numpy")
def adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """AdamW: p *= 1 - lr * weight_decay, then the Adam update without decay (torch.optim.AdamW)."""
    _adam_core(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step, True)


@numba.njit(cache=True, error_model="numpy")
def add_l2_grad(g, p, coef):
    """g += coef * p (gradient of coef/2 * sum p^2), in place."""
    c = p.dtype.type(coef)
    gf, pf = _flat(g), _flat(p)
    for i in range(gf.size):
        gf[i] += c * pf[i]


@numba.njit(cache=True, error_model="numpy")
def add_l1_grad(g, p, coef):
    """g += coef * sign(p) (gradient of coef * sum |p|, 0 at p = 0), in place."""
    t = p.dtype.type
    c, one, zero = t(coef), t(1), t(0)
    gf, pf = _flat(g), _flat(p)
    for i in range(gf.size):
        v = pf[i]
        sign = one if v > zero else (-one if v < zero else v)  # np.sign: 0 -> 0, NaN -> NaN
        gf[i] += c * sign


@numba.njit(cache=True, error_model="numpy")
def sum_squares(x):
    """sum(x^2) accumulated in float64, as a Python float (penalties and global gradient norms).

    Four running sums (the reference's BLAS dot has its own order: equal to ~1e-15 relative, not bitwise).
    """
    xf = _flat(x)
    n = xf.size
    s0 = s1 = s2 = s3 = 0.0
    end = n - n % 4
    for i in range(0, end, 4):
        v0, v1 = np.float64(xf[i]), np.float64(xf[i + 1])
        v2, v3 = np.float64(xf[i + 2]), np.float64(xf[i + 3])
        s0 += v0 * v0
        s1 += v1 * v1
        s2 += v2 * v2
        s3 += v3 * v3
    for i in range(end, n):
        v = np.float64(xf[i])
        s0 += v * v
    return (s0 + s1) + (s2 + s3)


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
