"""Loss values and gradients. n is the number of rows (samples); sums run over output units.

Values are accumulated in float64 and returned as Python floats; gradients are arrays of the input dtype.
``a`` are network outputs, ``y`` targets of the same shape, ``labels`` int64 class indices of shape (n,).

- quadratic:   C = 1/(2n) sum ||y - a||^2                     dC/da = (a - y) / n
- mse:         C = mean over all elements of (y - a)^2        dC/da = 2 (a - y) / (n k)
- bce:         C = -1/n sum [y ln a + (1-y) ln(1-a)], a clipped to [eps, 1-eps]
- bce_logits:  the same on logits z, as max(z,0) - z y + log1p(exp(-|z|))      dC/dz = (sigmoid(z) - y) / n
- nll:         C = -1/n sum ln a[label], a clipped below at eps (a are probabilities)
- poisson:     C = 1/n sum [a - y + y ln(y / c)], c = a clipped below at eps, y ln(y / c) = 0 where y = 0
               (half the Poisson deviance, scikit-learn's; y >= 0)                  dC/da = (c - y) / (c n)
- softmax_nll: the same on logits z via log-softmax                            dC/dz = (softmax(z) - onehot) / n
The fused deltas give the gradient with respect to the pre-activation of a sigmoid / softmax / exp output
layer directly from its output ``a``: exactly (a - y) / n, never through a division by a.

Sample weights: the losses fit trains with (quadratic, mse, bce, nll and the fused deltas) take optional
per-row weights ``w`` (n,) of a's dtype, >= 0: the mean over rows becomes the weighted mean
sum_i w_i C_i / W, W = sum_i w_i (accumulated in float64; W = 0 counts as 1, so a batch of zero weights
has loss and gradient 0), and every gradient row i is multiplied by w_i before the division by W (mse: by
2 / (W k)). Without weights every w_i is 1 and W = n, to the bit.
"""
import numpy as np

from .activations import sigmoid
from .softmax import log_softmax, softmax


def _f64sum(x):
    return float(np.sum(x, dtype=np.float64))


def _weights(a, w):
    """(w as a column of a's dtype, W = its float64 sum, 0 counted as 1); ones and n without weights."""
    if w is None:
        return np.ones((a.shape[0], 1), dtype=a.dtype), float(a.shape[0])
    w = np.asarray(w, dtype=a.dtype).reshape(-1, 1)
    total = _f64sum(w)
    return w, total if total != 0 else 1.0


def quadratic_loss(a, y, w=None):
    w, total = _weights(a, w)
    d = (a - y).astype(np.float64)
    return _f64sum(w.astype(np.float64) * (d * d)) / (2 * total)


def quadratic_grad(a, y, w=None):
    w, total = _weights(a, w)
    return (a - y) * w / a.dtype.type(total)


def mse_loss(a, y, w=None):
    w, total = _weights(a, w)
    d = (a - y).astype(np.float64)
    return _f64sum(w.astype(np.float64) * (d * d)) / (total * a.shape[1])


def mse_grad(a, y, w=None):
    w, total = _weights(a, w)
    return (a - y) * w * a.dtype.type(2.0 / (total * a.shape[1]))


def bce_loss(a, y, eps, w=None):
    w, total = _weights(a, w)
    a = np.clip(a.astype(np.float64), eps, 1 - eps)
    y = y.astype(np.float64)
    return -_f64sum(w.astype(np.float64) * (y * np.log(a) + (1 - y) * np.log1p(-a))) / total


def bce_grad(a, y, eps, w=None):
    w, total = _weights(a, w)
    t = a.dtype.type
    c = np.clip(a, t(eps), t(1 - eps))
    return (c - y) / (c * (1 - c)) * w / t(total)


def poisson_loss(a, y, eps, w=None):
    w, total = _weights(a, w)
    c = np.maximum(a.astype(np.float64), eps)
    y = y.astype(np.float64)
    logs = np.where(y != 0, y * np.log(np.where(y != 0, y, 1) / c), 0.0)
    return _f64sum(w.astype(np.float64) * (a.astype(np.float64) - y + logs)) / total


def poisson_grad(a, y, eps, w=None):
    w, total = _weights(a, w)
    c = np.maximum(a, a.dtype.type(eps))
    return (c - y) / c * w / a.dtype.type(total)


def bce_logits_loss(z, y):
    z64 = z.astype(np.float64)
    terms = np.maximum(z64, 0) - z64 * y.astype(np.float64) + np.log1p(np.exp(-np.abs(z64)))
    return _f64sum(terms) / z.shape[0]


def bce_logits_grad(z, y):
    return (sigmoid(z) - y) / z.dtype.type(z.shape[0])


def nll_loss(a, labels, eps, w=None):
    w, total = _weights(a, w)
    picked = a[np.arange(a.shape[0]), labels].astype(np.float64)
    return -_f64sum(w[:, 0].astype(np.float64) * np.log(np.maximum(picked, eps))) / total


def nll_grad(a, labels, eps, w=None):
    w, total = _weights(a, w)
    n = a.shape[0]
    g = np.zeros_like(a)
    rows = np.arange(n)
    t = a.dtype.type
    g[rows, labels] = -w[:, 0] / (np.maximum(a[rows, labels], t(eps)) * t(total))
    return g


def softmax_nll_loss(z, labels):
    logp = log_softmax(z.astype(np.float64))
    return -_f64sum(logp[np.arange(z.shape[0]), labels]) / z.shape[0]


def softmax_nll_grad(z, labels):
    return softmax_nll_delta(softmax(z), labels)


def sigmoid_bce_delta(a, y, w=None):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): (a - y) / n, quadratic_grad's."""
    return quadratic_grad(a, y, w)


def exp_poisson_delta(a, y, w=None):
    """Gradient of poisson(exp(z), y) with respect to z, from a = exp(z): (a - y) / n, quadratic_grad's."""
    return quadratic_grad(a, y, w)


def softmax_nll_delta(a, labels, w=None):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): (a - onehot) / n."""
    w, total = _weights(a, w)
    n = a.shape[0]
    d = a.copy()
    d[np.arange(n), labels] -= 1
    return d * w / a.dtype.type(total)
