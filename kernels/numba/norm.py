"""Batch normalization over the batch axis of a 2-D (n, k) array (Numba); semantics of
kernels/reference/norm.py (torch.nn.BatchNorm1d).

Written once as block kernels on columns c0 .. c1 of row-major buffers (rows of length ld, see
kernels/numba/activations.py), which the fused epoch calls on its share of a layer's units and the
public kernels on whole arrays. Column statistics are summed in the input dtype over the rows in order,
which is the order of NumPy's ``axis=0`` reductions of several columns (a single column NumPy sums
pairwise, as ``numpy_order`` asks for), and every element-wise step repeats the reference's operations
in its order, so the public kernels are bit-identical to the reference.
"""
import numba
import numpy as np

from ._math import pairwise_sum


@numba.njit(cache=True, error_model="numpy")
def column_sums(x, ld, nb, c0, c1, out, numpy_order):
    """out[c0:c1] = the sums over rows 0 .. nb of columns c0 .. c1 of x (rows of ld), in row order; with
    ``numpy_order`` and one column, pairwise as NumPy sums a single contiguous column."""
    w = c1 - c0
    o = out[c0:c1]
    o[:] = 0
    if numpy_order and w == 1 and ld == 1:
        o[0] = pairwise_sum(x, c0, nb)
        return
    for i in range(nb):
        xi = x[i * ld + c0:i * ld + c1]
        for j in range(w):
            o[j] += xi[j]


@numba.njit(cache=True, error_model="numpy")
def bn_forward_block(src, lds, dst, ldd, nb, c0, c1, gamma, beta, running_mean, running_var, momentum, eps,
                     xhat, ldx, inv_std, mean, numpy_order):
    """Training-mode batch norm of columns c0 .. c1 of src into dst (may be src): keeps xhat (rows of ldx)
    and inv_std for the backward pass and updates the running statistics with the batch mean and the
    unbiased variance. gamma .. inv_std and the scratch ``mean`` are indexed by column; momentum and eps
    are scalars of the dtype. xhat holds x - mean and then (x - mean)^2 on the way (as the reference's
    temporaries)."""
    w = c1 - c0
    if w <= 0:
        return
    t = dst.dtype.type
    tn, one = t(nb), t(1)
    column_sums(src, lds, nb, c0, c1, mean, numpy_order)
    mj = mean[c0:c1]
    for j in range(w):
        mj[j] = mj[j] / tn
    in_place = lds == ldd and src.ctypes.data == dst.ctypes.data  # one view: see activations.same_block
    for i in range(nb):
        hi = xhat[i * ldx + c0:i * ldx + c1]
        di = dst[i * ldd + c0:i * ldd + c1]
        si = di if in_place else src[i * lds + c0:i * lds + c1]
        for j in range(w):
            c = si[j] - mj[j]
            hi[j] = c
            di[j] = c * c
    column_sums(dst, ldd, nb, c0, c1, inv_std, numpy_order)  # the sums of squares, for now
    sj = inv_std[c0:c1]
    rm, rv = running_mean[c0:c1], running_var[c0:c1]
    keep = one - momentum
    unbias = t(nb / max(nb - 1, 1))
    for j in range(w):
        var = sj[j] / tn
        sj[j] = one / np.sqrt(var + eps)
        rm[j] = rm[j] * keep + momentum * mj[j]
        rv[j] = rv[j] * keep + momentum * (var * unbias)
    g, b = gamma[c0:c1], beta[c0:c1]
    for i in range(nb):
        hi = xhat[i * ldx + c0:i * ldx + c1]
        di = dst[i * ldd + c0:i * ldd + c1]
        for j in range(w):
            h = hi[j] * sj[j]
            hi[j] = h
            di[j] = g[j] * h + b[j]


@numba.njit(cache=True, error_model="numpy")
def bn_backward_block(d, ldd, out, ldo, nb, c0, c1, xhat, ldx, gamma, inv_std, dgamma, dbeta, numpy_order):
    """out = dC/dx of columns c0 .. c1 from d = dC/dy of the training-mode batch norm's output (out may be
    d, except with ``numpy_order`` on a single column, where out holds d * xhat on the way); dgamma and
    dbeta (indexed by column) receive their gradients."""
    w = c1 - c0
    if w <= 0:
        return
    tn = out.dtype.type(nb)
    column_sums(d, ldd, nb, c0, c1, dbeta, numpy_order)
    sg = dgamma[c0:c1]
    if numpy_order and w == 1 and ldd == 1:
        for i in range(nb):
            out[i * ldo + c0] = d[i * ldd + c0] * xhat[i * ldx + c0]
        column_sums(out, ldo, nb, c0, c1, dgamma, numpy_order)
    else:
        sg[:] = 0
        for i in range(nb):
            di = d[i * ldd + c0:i * ldd + c1]
            hi = xhat[i * ldx + c0:i * ldx + c1]
            for j in range(w):
                sg[j] += di[j] * hi[j]
    g, s, sb = gamma[c0:c1], inv_std[c0:c1], dbeta[c0:c1]
    in_place = ldd == ldo and d.ctypes.data == out.ctypes.data  # one view: see activations.same_block
    for i in range(nb):
        hi = xhat[i * ldx + c0:i * ldx + c1]
        oi = out[i * ldo + c0:i * ldo + c1]
        di = oi if in_place else d[i * ldd + c0:i * ldd + c1]
        for j in range(w):
            oi[j] = (g[j] * s[j] / tn) * ((tn * di[j] - sb[j]) - hi[j] * sg[j])


@numba.njit(cache=True, error_model="numpy")
def bn_eval_block(src, lds, dst, ldd, nb, c0, c1, gamma, beta, running_mean, running_var, eps, scale):
    """Inference-mode batch norm of columns c0 .. c1: dst = (src - running_mean) * gamma / sqrt(running_var +
    eps) + beta (dst may be src; ``scale``: scratch indexed by column; eps a scalar of the dtype)."""
    w = c1 - c0
    if w <= 0:
        return
    one = dst.dtype.type(1)
    sc, rm, b = scale[c0:c1], running_mean[c0:c1], beta[c0:c1]
    g, rv = gamma[c0:c1], running_var[c0:c1]
    for j in range(w):
        sc[j] = g[j] * (one / np.sqrt(rv[j] + eps))
    in_place = lds == ldd and src.ctypes.data == dst.ctypes.data  # one view: see activations.same_block
    for i in range(nb):
        di = dst[i * ldd + c0:i * ldd + c1]
        si = di if in_place else src[i * lds + c0:i * lds + c1]
        for j in range(w):
            di[j] = (si[j] - rm[j]) * sc[j] + b[j]


# -- the public kernels: the blocks on whole arrays --------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def batchnorm_forward_train(x, gamma, beta, running_mean, running_var, momentum, eps):
    """Return ``(y, xhat, inv_std)``: y (n, k), xhat (n, k) normalized input, inv_std (k,).

    Updates running_mean and running_var (k,) in place with the batch mean and the unbiased variance.
    """
    n, k = x.shape
    t = x.dtype.type
    y = np.empty_like(x)
    xhat = np.empty_like(x)
    inv_std = np.empty(k, dtype=x.dtype)
    mean = np.empty(k, dtype=x.dtype)
    bn_forward_block(x.reshape(x.size), k, y.reshape(y.size), k, n, 0, k, gamma, beta, running_mean, running_var,
                     t(momentum), t(eps), xhat.reshape(xhat.size), k, inv_std, mean, True)
    return y, xhat, inv_std


@numba.njit(cache=True, error_model="numpy")
def batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, eps):
    """y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta, shape (n, k)."""
    n, k = x.shape
    y = np.empty_like(x)
    bn_eval_block(x.reshape(x.size), k, y.reshape(y.size), k, n, 0, k, gamma, beta, running_mean, running_var,
                  x.dtype.type(eps), np.empty(k, dtype=x.dtype))
    return y


@numba.njit(cache=True, error_model="numpy")
def batchnorm_backward(dy, xhat, gamma, inv_std):
    """Return ``(dx, dgamma, dbeta)`` for the training-mode forward pass: (n, k), (k,), (k,)."""
    n, k = dy.shape
    dx = np.empty_like(dy)
    dgamma = np.empty(k, dtype=dy.dtype)
    dbeta = np.empty(k, dtype=dy.dtype)
    bn_backward_block(dy.reshape(dy.size), k, dx.reshape(dx.size), k, n, 0, k, xhat.reshape(xhat.size), k, gamma,
                      inv_std, dgamma, dbeta, True)
    return dx, dgamma, dbeta
