"""Loss values and gradients. n is the number of rows (samples); sums run over output units.

Values are accumulated in float64 and returned as Python floats; gradients are arrays of the input dtype.
``a`` are network outputs, ``y`` targets of the same shape, ``labels`` int64 class indices of shape (n,).

- quadratic:   C = 1/(2n) sum ||y - a||^2                     dC/da = (a - y) / n
- mse:         C = mean over all elements of (y - a)^2        dC/da = 2 (a - y) / (n k)
- bce:         C = -1/n sum [y ln a + (1-y) ln(1-a)], a clipped to [eps, 1-eps]
- bce_logits:  the same on logits z, as max(z,0) - z y + log1p(exp(-|z|))      dC/dz = (sigmoid(z) - y) / n
- nll:         C = -1/n sum ln a[label], a clipped below at eps (a are probabilities)
- softmax_nll: the same on logits z via log-softmax                            dC/dz = (softmax(z) - onehot) / n
The fused deltas give the gradient with respect to the pre-activation of a sigmoid / softmax output
layer directly from its output ``a``: exactly (a - y) / n, never through a division by a.
"""
import numpy as np

from .activations import sigmoid
from .softmax import log_softmax, softmax


def _f64sum(x):
    return float(np.sum(x, dtype=np.float64))


def quadratic_loss(a, y):
    d = (a - y).astype(np.float64)
    return _f64sum(d * d) / (2 * a.shape[0])


def quadratic_grad(a, y):
    return (a - y) / a.dtype.type(a.shape[0])


def mse_loss(a, y):
    d = (a - y).astype(np.float64)
    return _f64sum(d * d) / a.size


def mse_grad(a, y):
    return (a - y) * a.dtype.type(2.0 / a.size)


def bce_loss(a, y, eps):
    a = np.clip(a.astype(np.float64), eps, 1 - eps)
    y = y.astype(np.float64)
    return -_f64sum(y * np.log(a) + (1 - y) * np.log1p(-a)) / a.shape[0]


def bce_grad(a, y, eps):
    t = a.dtype.type
    c = np.clip(a, t(eps), t(1 - eps))
    return (c - y) / (c * (1 - c)) / t(a.shape[0])


def bce_logits_loss(z, y):
    z64 = z.astype(np.float64)
    terms = np.maximum(z64, 0) - z64 * y.astype(np.float64) + np.log1p(np.exp(-np.abs(z64)))
    return _f64sum(terms) / z.shape[0]


def bce_logits_grad(z, y):
    return (sigmoid(z) - y) / z.dtype.type(z.shape[0])


def nll_loss(a, labels, eps):
    picked = a[np.arange(a.shape[0]), labels].astype(np.float64)
    return -_f64sum(np.log(np.maximum(picked, eps))) / a.shape[0]


def nll_grad(a, labels, eps):
    n = a.shape[0]
    g = np.zeros_like(a)
    rows = np.arange(n)
    t = a.dtype.type
    g[rows, labels] = -1 / (np.maximum(a[rows, labels], t(eps)) * t(n))
    return g


def softmax_nll_loss(z, labels):
    logp = log_softmax(z.astype(np.float64))
    return -_f64sum(logp[np.arange(z.shape[0]), labels]) / z.shape[0]


def softmax_nll_grad(z, labels):
    return softmax_nll_delta(softmax(z), labels)


def sigmoid_bce_delta(a, y):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): (a - y) / n."""
    return (a - y) / a.dtype.type(a.shape[0])


def softmax_nll_delta(a, labels):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): (a - onehot) / n."""
    n = a.shape[0]
    d = a.copy()
    d[np.arange(n), labels] -= 1
    return d / a.dtype.type(n)
