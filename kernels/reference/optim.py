"""Optimizer update rules, in place, with the semantics of PyTorch's ``torch.optim`` (single-tensor path).

Every array is 1-D, C-contiguous and of one float dtype: the parameter ``p``, its gradient ``g`` (never
modified) and the optimizer state. Hyperparameters are Python floats; ``step`` is the 1-based count of
updates including this one. ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2, as in torch),
except in AdamW, where it shrinks ``p`` directly (decoupled). Differences from torch: SGD has no
dampening; RMSprop has no momentum or centering; Adam/AdamW have no amsgrad.
Arithmetic is done in the parameter dtype, as torch does.
"""
import numpy as np


def _scalars(p, *values):
    t = p.dtype.type
    return [t(v) for v in values]


def _decayed(p, g, weight_decay):
    if weight_decay != 0:
        return g + p.dtype.type(weight_decay) * p
    return g


def sgd_step(p, g, lr, weight_decay):
    """p -= lr * (g + weight_decay * p)."""
    (lr,) = _scalars(p, lr)
    p -= lr * _decayed(p, g, weight_decay)


def momentum_step(p, g, buf, lr, momentum, weight_decay, nesterov):
    """buf = momentum * buf + d; p -= lr * (d + momentum * buf if nesterov else buf), d = decayed g."""
    lr, mu = _scalars(p, lr, momentum)
    d = _decayed(p, g, weight_decay)
    buf *= mu
    buf += d
    if nesterov:
        p -= lr * (d + mu * buf)
    else:
        p -= lr * buf


def adagrad_step(p, g, state_sum, lr, lr_decay, eps, weight_decay, step):
    """state_sum += d^2; p -= lr / (1 + (step - 1) lr_decay) * d / (sqrt(state_sum) + eps)."""
    clr, eps = _scalars(p, lr / (1 + (step - 1) * lr_decay), eps)
    d = _decayed(p, g, weight_decay)
    state_sum += d * d
    p -= clr * (d / (np.sqrt(state_sum) + eps))


def rmsprop_step(p, g, square_avg, lr, alpha, eps, weight_decay):
    """square_avg = alpha square_avg + (1 - alpha) d^2; p -= lr * d / (sqrt(square_avg) + eps)."""
    lr, alpha_, one_minus, eps = _scalars(p, lr, alpha, 1 - alpha, eps)
    d = _decayed(p, g, weight_decay)
    square_avg *= alpha_
    square_avg += one_minus * (d * d)
    p -= lr * (d / (np.sqrt(square_avg) + eps))


def adadelta_step(p, g, square_avg, acc_delta, lr, rho, eps, weight_decay):
    """Zeiler's Adadelta with torch's lr factor (default lr=1 in the Python layer)."""
    lr, rho_, one_minus, eps = _scalars(p, lr, rho, 1 - rho, eps)
    d = _decayed(p, g, weight_decay)
    square_avg *= rho_
    square_avg += one_minus * (d * d)
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * d
    acc_delta *= rho_
    acc_delta += one_minus * (delta * delta)
    p -= lr * delta


def _adam_core(p, d, m, v, lr, beta1, beta2, eps, step):
    b1, one_minus_b1, b2, one_minus_b2, eps_ = _scalars(p, beta1, 1 - beta1, beta2, 1 - beta2, eps)
    step_size, bc2_sqrt = _scalars(p, lr / (1 - beta1**step), np.sqrt(1 - beta2**step))
    m *= b1
    m += one_minus_b1 * d
    v *= b2
    v += one_minus_b2 * (d * d)
    p -= step_size * (m / (np.sqrt(v) / bc2_sqrt + eps_))


def adam_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """Adam with bias correction; weight_decay is L2 added to the gradient (torch.optim.Adam)."""
    _adam_core(p, _decayed(p, g, weight_decay), m, v, lr, beta1, beta2, eps, step)


def adamw_step(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """AdamW: p *= 1 - lr * weight_decay, then the Adam update without decay (torch.optim.AdamW)."""
    if weight_decay != 0:
        p *= p.dtype.type(1 - lr * weight_decay)
    _adam_core(p, g, m, v, lr, beta1, beta2, eps, step)


def add_l2_grad(g, p, coef):
    """g += coef * p (gradient of coef/2 * sum p^2), in place."""
    g += p.dtype.type(coef) * p


def add_l1_grad(g, p, coef):
    """g += coef * sign(p) (gradient of coef * sum |p|, 0 at p = 0), in place."""
    g += p.dtype.type(coef) * np.sign(p)


def sum_squares(x):
    """sum(x^2) accumulated in float64, as a Python float (penalties and global gradient norms)."""
    x = x.astype(np.float64)
    return float(np.dot(x, x))


def sum_abs(x):
    """sum(|x|) accumulated in float64, as a Python float."""
    return float(np.sum(np.abs(x), dtype=np.float64))


def scale_inplace(x, factor):
    """x *= factor (gradient clipping by global norm)."""
    x *= x.dtype.type(factor)
