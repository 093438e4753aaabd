"""Batch normalization over the batch axis of a 2-D (n, k) array, as torch.nn.BatchNorm1d.

Training normalizes with the batch mean and biased variance and updates the running statistics in
place: running = (1 - momentum) * running + momentum * batch, with the unbiased variance n/(n-1)
(n must be > 1). Inference uses the running statistics. gamma, beta, running_* have shape (k,).
"""
import numpy as np


def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """Return ``(y, xhat, inv_std)``: y (n, k), xhat (n, k) normalized input, inv_std (k,)."""
    n = x.shape[0]
    t = x.dtype.type
    mean = np.mean(x, axis=0)
    centered = x - mean
    var = np.mean(centered * centered, axis=0)
    inv_std = t(1) / np.sqrt(var + t(eps))
    xhat = centered * inv_std
    mom = t(momentum)
    running_mean *= t(1) - mom
    running_mean += mom * mean
    running_var *= t(1) - mom
    running_var += mom * (var * t(n / max(n - 1, 1)))
    return gamma * xhat + beta, xhat, inv_std


def batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, shape (n, k)."""
    inv_std = x.dtype.type(1) / np.sqrt(running_var + x.dtype.type(eps))
    return (x - running_mean) * (gamma * inv_std) + beta


def batchnorm_backward(dy, xhat, gamma, inv_std):
    """Return ``(dx, dgamma, dbeta)`` for the training-mode forward pass."""
    n = dy.shape[0]
    t = dy.dtype.type
    dbeta = np.sum(dy, axis=0)
    dgamma = np.sum(dy * xhat, axis=0)
    dx = (gamma * inv_std / t(n)) * (t(n) * dy - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta
