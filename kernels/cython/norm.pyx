"""Batch normalization over the batch axis of a 2-D (n, k) array, in Cython (the spec: kernels/reference/norm.py).

Training normalizes with the batch mean and biased variance and updates running_mean / running_var (k,)
in place with momentum (unbiased variance n/(n-1)); inference uses the running statistics.
The kernels are _norm.pxi's block kernels (shared with the fused epoch) on the whole array:
column sums run over rows in order, in the input dtype, as NumPy's sums along axis 0 do, so the statistics
match the reference's to the last bit; every other operation is in the input dtype too.
"""
import numpy as np

include "_common.pxi"
include "_norm.pxi"


def batchnorm_forward_train(const floating[:, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                            floating[::1] running_mean, floating[::1] running_var, double momentum, double eps):
    """Return ``(y, xhat, inv_std)``: y (n, k), xhat (n, k) normalized input, inv_std (k,)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1]
    for what, got in (("gamma", gamma.shape[0]), ("beta", beta.shape[0]),
                      ("running_mean", running_mean.shape[0]), ("running_var", running_var.shape[0])):
        check_len(got, k, what)
    dtype = np.float32 if floating is float else np.float64
    out_y = np.empty((n, k), dtype=dtype)
    out_xhat = np.empty((n, k), dtype=dtype)
    out_inv = np.empty(k, dtype=dtype)
    if k == 0:
        return out_y, out_xhat, out_inv
    scratch = np.empty(k, dtype=dtype)
    cdef floating[:, ::1] y = out_y
    cdef floating[:, ::1] xhat = out_xhat
    cdef floating[::1] inv_std = out_inv
    cdef floating[::1] mean = scratch
    with nogil:
        bn_forward_block(&x[0, 0], k, &y[0, 0], k, n, 0, k, &gamma[0], &beta[0], &running_mean[0], &running_var[0],
                         <floating>momentum, <floating>eps, &xhat[0, 0], k, &inv_std[0], &mean[0])
    return out_y, out_xhat, out_inv


def batchnorm_forward_eval(const floating[:, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                           const floating[::1] running_mean, const floating[::1] running_var, double eps):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, shape (n, k)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1]
    for what, got in (("gamma", gamma.shape[0]), ("beta", beta.shape[0]),
                      ("running_mean", running_mean.shape[0]), ("running_var", running_var.shape[0])):
        check_len(got, k, what)
    dtype = np.float32 if floating is float else np.float64
    out = np.empty((n, k), dtype=dtype)
    if k == 0:
        return out
    scratch = np.empty(k, dtype=dtype)
    cdef floating[:, ::1] y = out
    cdef floating[::1] scale = scratch
    with nogil:
        bn_eval_block(&x[0, 0], k, &y[0, 0], k, n, 0, k, &gamma[0], &beta[0], &running_mean[0], &running_var[0],
                      <floating>eps, &scale[0])
    return out


def batchnorm_backward(const floating[:, ::1] dy, const floating[:, ::1] xhat, const floating[::1] gamma,
                       const floating[::1] inv_std):
    """Return ``(dx, dgamma, dbeta)`` for the training-mode forward pass."""
    cdef Py_ssize_t n = dy.shape[0], k = dy.shape[1]
    check_same_2d(n, k, xhat.shape[0], xhat.shape[1])
    check_len(gamma.shape[0], k, "gamma")
    check_len(inv_std.shape[0], k, "inv_std")
    dtype = np.float32 if floating is float else np.float64
    out_dx = np.empty((n, k), dtype=dtype)
    out_dgamma = np.zeros(k, dtype=dtype)
    out_dbeta = np.zeros(k, dtype=dtype)
    if k == 0:
        return out_dx, out_dgamma, out_dbeta
    cdef floating[:, ::1] dx = out_dx
    cdef floating[::1] dgamma = out_dgamma
    cdef floating[::1] dbeta = out_dbeta
    with nogil:
        bn_backward_block(&dy[0, 0], k, &dx[0, 0], k, n, 0, k, &xhat[0, 0], k, &gamma[0], &inv_std[0], &dgamma[0],
                          &dbeta[0])
    return out_dx, out_dgamma, out_dbeta
