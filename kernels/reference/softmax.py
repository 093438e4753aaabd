"""Softmax, log-softmax and log-sum-exp along the last axis of a 2-D (n, k) array.

All are shifted by the row maximum, so logits of any finite magnitude are exact to rounding, and
``-inf`` entries get probability 0 without NaN. A row that is entirely ``-inf`` is the limit of a row of
equal values: softmax gives the uniform distribution 1/k, log-softmax gives -log(k), and log-sum-exp
gives -inf. Inputs must not contain NaN or +inf (the Python layer rejects them).
"""
import numpy as np


def _shifted(z):
    """z minus its row max; all -inf rows become all zeros (so they come out uniform)."""
    m = np.max(z, axis=1, keepdims=True)
    dead = m == -np.inf
    m = np.where(dead, 0, m)
    s = z - m
    return np.where(dead, 0, s)


def softmax(z):
    """Probabilities exp(z) / sum(exp(z)) per row, shape (n, k)."""
    e = np.exp(_shifted(z))
    return e / np.sum(e, axis=1, keepdims=True)


def log_softmax(z):
    """log(softmax(z)) as (z - max) - log(sum(exp(z - max))), shape (n, k)."""
    s = _shifted(z)
    return s - np.log(np.sum(np.exp(s), axis=1, keepdims=True))


def logsumexp(z):
    """log(sum(exp(z))) per row, shape (n,); -inf for an all -inf row."""
    m = np.max(z, axis=1)
    s = _shifted(z)
    lse = m + np.log(np.sum(np.exp(s), axis=1))
    return np.where(m == -np.inf, m, lse)


def softmax_backward(z, a, da):
    """Vector-Jacobian product of softmax: a * (da - sum(a * da)) per row."""
    return a * (da - np.sum(a * da, axis=1, keepdims=True))


def log_softmax_backward(z, a, da):
    """Vector-Jacobian product of log-softmax (a = log-probabilities): da - exp(a) * sum(da)."""
    return da - np.exp(a) * np.sum(da, axis=1, keepdims=True)


def logsumexp_backward(z, da):
    """Gradient of log-sum-exp: da[:, None] * softmax(z), shape (n, k); finite wherever z is not NaN/+inf."""
    return da[:, None] * softmax(z)
