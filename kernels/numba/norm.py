"""Batch normalization over the batch axis of a 2-D (n, k) array (Numba); semantics of
kernels/reference/norm.py (torch.nn.BatchNorm1d).

Column statistics are summed in the input dtype in the order of NumPy's ``axis=0`` reductions
(_math.column_sum), and every element-wise step repeats the reference's operations in its order, so the
results are bit-identical to the reference.
"""
import numba
import numpy as np

from ._math import column_sum


@numba.njit(cache=True, error_model="numpy")
def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """Return ``(y, xhat, inv_std)``: y (n, k), xhat (n, k) normalized input, inv_std (k,).

    Updates running_mean and running_var (k,) in place with the batch mean and the unbiased variance.
    """
    n, k = x.shape
    t = x.dtype.type
    tn, one, eps_ = t(n), t(1), t(eps)
    mean = column_sum(x)
    for j in range(k):
        mean[j] = mean[j] / tn
    xhat = np.empty_like(x)  # x - mean until it is scaled
    y = np.empty_like(x)  # (x - mean)^2 until it holds the output
    for i in range(n):
        for j in range(k):
            c = x[i, j] - mean[j]
            xhat[i, j] = c
            y[i, j] = c * c
    var = column_sum(y)
    inv_std = np.empty(k, dtype=x.dtype)
    for j in range(k):
        var[j] = var[j] / tn
        inv_std[j] = one / np.sqrt(var[j] + eps_)
    for i in range(n):
        for j in range(k):
            h = xhat[i, j] * inv_std[j]
            xhat[i, j] = h
            y[i, j] = gamma[j] * h + beta[j]
    mom = t(momentum)
    keep = one - mom
    unbias = t(n / max(n - 1, 1))
    for j in range(k):
        running_mean[j] = running_mean[j] * keep + mom * mean[j]
        running_var[j] = running_var[j] * keep + mom * (var[j] * unbias)
    return y, xhat, inv_std


@numba.njit(cache=True, error_model="numpy")
def batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, shape (n, k)."""
    n, k = x.shape
    t = x.dtype.type
    one, eps_ = t(1), t(eps)
    scale = np.empty(k, dtype=x.dtype)
    for j in range(k):
        scale[j] = gamma[j] * (one / np.sqrt(running_var[j] + eps_))
    y = np.empty_like(x)
    for i in range(n):
        for j in range(k):
            y[i, j] = (x[i, j] - running_mean[j]) * scale[j] + beta[j]
    return y


@numba.njit(cache=True, error_model="numpy")
def batchnorm_backward(dy, xhat, gamma, inv_std):
    """Return ``(dx, dgamma, dbeta)`` for the training-mode forward pass: (n, k), (k,), (k,)."""
    n, k = dy.shape
    tn = dy.dtype.type(n)
    dx = np.empty_like(dy)  # dy * xhat until it holds the result
    for i in range(n):
        for j in range(k):
            dx[i, j] = dy[i, j] * xhat[i, j]
    dbeta = column_sum(dy)
    dgamma = column_sum(dx)
    scale = np.empty(k, dtype=dy.dtype)
    for j in range(k):
        scale[j] = gamma[j] * inv_std[j] / tn
    for i in range(n):
        for j in range(k):
            dx[i, j] = scale[j] * ((tn * dy[i, j] - dbeta[j]) - xhat[i, j] * dgamma[j])
    return dx, dgamma, dbeta
