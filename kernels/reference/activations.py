"""Element-wise activations and their backward passes.

Every activation ``f`` has ``f(z) -> a`` and ``f_backward(z, a, da) -> dz = da * f'(z)``, where ``a`` is
the forward output (backward passes use whichever of ``z`` and ``a`` is cheaper and exact). Arrays are
2-D (n, k), float32 or float64, C-contiguous; outputs are new arrays of the input dtype.
Derivatives at the kinks (ReLU-like at 0) are taken from the left, i.e. 0 for ReLU, as PyTorch does.
"""
import numpy as np

from ..constants import EXP, IDENTITY, RELU, SIGMOID, SOFTPLUS, TANH


def sigmoid(z):
    """1 / (1 + exp(-z)), without overflow for any finite z."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(z, a, da):
    return da * (a * (1 - a))


def tanh(z):
    return np.tanh(z)


def tanh_backward(z, a, da):
    return da * (1 - a * a)


def relu(z):
    return np.maximum(z, 0)


def relu_backward(z, a, da):
    return np.where(z > 0, da, 0).astype(z.dtype, copy=False)


def leaky_relu(z, slope):
    """z where z > 0, slope * z elsewhere; slope is a Python float."""
    s = z.dtype.type(slope)
    return np.where(z > 0, z, s * z)


def leaky_relu_backward(z, a, da, slope):
    s = z.dtype.type(slope)
    return np.where(z > 0, da, s * da)


def prelu(z, alpha):
    """Leaky ReLU with a learned slope per feature; alpha has shape (k,)."""
    return np.where(z > 0, z, alpha * z)


def prelu_backward(z, alpha, da):
    """Return ``(dz, dalpha)``; dalpha (k,) sums ``da * z`` over the batch where z <= 0."""
    neg = z <= 0
    dz = np.where(neg, alpha * da, da)
    dalpha = np.sum(np.where(neg, da * z, 0), axis=0).astype(z.dtype, copy=False)
    return dz, dalpha


def softplus(z):
    """log(1 + exp(z)) computed as max(z, 0) + log1p(exp(-|z|)): no overflow, exact for large |z|."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def softplus_backward(z, a, da):
    """da * sigmoid(z), with sigmoid(z) = 1 - exp(-a) taken from the output a = softplus(z) (as the fused
    epoch, which keeps a, not z)."""
    return da * -np.expm1(-a)


def exp(z):
    """e^z: the output of a Poisson regression's log link (overflows to inf past ~88.7 in float32, as it should)."""
    with np.errstate(over="ignore"):
        return np.exp(z)


def exp_backward(z, a, da):
    """da * e^z, taken from the output a = e^z."""
    return da * a


def identity(z):
    return z.copy()


def identity_backward(z, a, da):
    return da.copy()


def maxout(z, pieces):
    """Max over groups of ``pieces`` adjacent columns.

    z has shape (n, units * pieces); unit j takes columns j*pieces ... j*pieces + pieces - 1.
    Returns ``(a, idx)``: a (n, units) and idx (n, units) int64, the winning piece (first on ties).
    """
    n, width = z.shape
    groups = z.reshape(n, width // pieces, pieces)
    idx = np.argmax(groups, axis=2).astype(np.int64)
    a = np.take_along_axis(groups, idx[:, :, None], axis=2)[:, :, 0]
    return np.ascontiguousarray(a), idx


def maxout_backward(da, idx, pieces):
    """Route ``da`` (n, units) to the winning pieces; returns dz (n, units * pieces)."""
    n, units = da.shape
    dz = np.zeros((n, units, pieces), dtype=da.dtype)
    np.put_along_axis(dz, idx[:, :, None], da[:, :, None], axis=2)
    return dz.reshape(n, units * pieces)


# The activations without a parameter by their code (kernels/constants.py), for the whole-model kernels.
FORWARD = {IDENTITY: identity, SIGMOID: sigmoid, TANH: tanh, RELU: relu, SOFTPLUS: softplus, EXP: exp}
BACKWARD = {IDENTITY: identity_backward, SIGMOID: sigmoid_backward, TANH: tanh_backward, RELU: relu_backward,
            SOFTPLUS: softplus_backward, EXP: exp_backward}
