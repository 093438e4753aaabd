"""Loss values and gradients (Numba); semantics of kernels/reference/losses.py.

Values are accumulated in float64 and returned as Python floats; gradients are new arrays of the input
dtype. ``a`` are network outputs, ``y`` targets of the same shape, ``labels`` int64 class indices (n,).
Each loss writes its float64 terms to a buffer (a vectorized loop) and sums it with NumPy's pairwise order,
as the reference's ``np.sum(terms, dtype=np.float64)`` does. No fastmath: losses may be inf.
"""
import math

import numba
import numpy as np

from ._math import exp, log, log1p, pairwise_sum, shift_max
from .softmax import softmax


@numba.njit(cache=True, error_model="numpy")
def _sum_sq_diff(a, y):
    """sum((float64(a - y))^2) over all elements; the difference is taken in the input dtype."""
    af, yf = a.reshape(a.size), y.reshape(y.size)
    terms = np.empty(af.size, dtype=np.float64)
    for i in range(af.size):
        d = np.float64(af[i] - yf[i])
        terms[i] = d * d
    return pairwise_sum(terms, 0, terms.size)


@numba.njit(cache=True, error_model="numpy")
def quadratic_loss(a, y):
    """C = 1/(2n) sum ||y - a||^2 over rows; a, y (n, k) -> Python float."""
    return _sum_sq_diff(a, y) / (2 * a.shape[0])


@numba.njit(cache=True, error_model="numpy")
def _diff_times(a, y, c):
    out = np.empty_like(a)
    af, yf, of = a.reshape(a.size), y.reshape(y.size), out.reshape(out.size)
    for i in range(of.size):
        of[i] = (af[i] - yf[i]) * c
    return out


@numba.njit(cache=True, error_model="numpy")
def _diff_over(a, y, c):
    out = np.empty_like(a)
    af, yf, of = a.reshape(a.size), y.reshape(y.size), out.reshape(out.size)
    for i in range(of.size):
        of[i] = (af[i] - yf[i]) / c
    return out


@numba.njit(cache=True, error_model="numpy")
def quadratic_grad(a, y):
    """dC/da = (a - y) / n, shape (n, k), a's dtype."""
    return _diff_over(a, y, a.dtype.type(a.shape[0]))


@numba.njit(cache=True, error_model="numpy")
def mse_loss(a, y):
    """Mean over all elements of (y - a)^2 -> Python float."""
    return _sum_sq_diff(a, y) / a.size


@numba.njit(cache=True, error_model="numpy")
def mse_grad(a, y):
    """dC/da = 2 (a - y) / (n k), shape (n, k), a's dtype."""
    return _diff_times(a, y, a.dtype.type(2.0 / a.size))


@numba.njit(cache=True, error_model="numpy")
def bce_loss(a, y, eps):
    """-1/n sum [y ln a + (1-y) ln(1-a)] with a clipped to [eps, 1-eps] (in float64) -> Python float."""
    af, yf = a.reshape(a.size), y.reshape(y.size)
    hi = 1 - eps
    terms = np.empty(af.size, dtype=np.float64)
    for i in range(af.size):
        c = np.float64(af[i])
        c = eps if c < eps else c  # np.clip: max with eps, then min with 1 - eps
        c = hi if c > hi else c
        t = np.float64(yf[i])
        terms[i] = t * log(c) + (1.0 - t) * log1p(-c)
    return -pairwise_sum(terms, 0, terms.size) / a.shape[0]


@numba.njit(cache=True, error_model="numpy")
def bce_grad(a, y, eps):
    """(c - y) / (c (1 - c)) / n with c = a clipped to [eps, 1-eps] in a's dtype; shape (n, k)."""
    t = a.dtype.type
    lo, hi, one, n = t(eps), t(1 - eps), t(1), t(a.shape[0])
    out = np.empty_like(a)
    af, yf, of = a.reshape(a.size), y.reshape(y.size), out.reshape(out.size)
    for i in range(of.size):
        c = af[i]
        c = lo if c < lo else c
        c = hi if c > hi else c
        of[i] = (c - yf[i]) / (c * (one - c)) / n
    return out


@numba.njit(cache=True, error_model="numpy")
def bce_logits_loss(z, y):
    """bce on logits z: 1/n sum [max(z,0) - z y + log1p(exp(-|z|))], in float64 -> Python float."""
    zf, yf = z.reshape(z.size), y.reshape(y.size)
    terms = np.empty(zf.size, dtype=np.float64)
    for i in range(zf.size):
        v = np.float64(zf[i])
        terms[i] = ((v if v > 0.0 else 0.0) - v * np.float64(yf[i])) + log1p(exp(-abs(v)))
    return pairwise_sum(terms, 0, terms.size) / z.shape[0]


@numba.njit(cache=True, error_model="numpy")
def bce_logits_grad(z, y):
    """dC/dz = (sigmoid(z) - y) / n, shape (n, k), z's dtype."""
    one, zero, n = z.dtype.type(1), z.dtype.type(0), z.dtype.type(z.shape[0])
    out = np.empty_like(z)
    zf, yf, of = z.reshape(z.size), y.reshape(y.size), out.reshape(out.size)
    for i in range(of.size):
        v = zf[i]
        e = exp(-abs(v))
        sig = (one if v >= zero else e) / (one + e)
        of[i] = (sig - yf[i]) / n
    return out


@numba.njit(cache=True, error_model="numpy")
def nll_loss(a, labels, eps):
    """-1/n sum ln max(a[i, labels[i]], eps), in float64 (a are probabilities) -> Python float."""
    n = a.shape[0]
    terms = np.empty(n, dtype=np.float64)
    for i in range(n):
        p = np.float64(a[i, labels[i]])
        terms[i] = math.log(eps if p < eps else p)  # np.maximum: a NaN p stays NaN
    return -pairwise_sum(terms, 0, n) / n


@numba.njit(cache=True, error_model="numpy")
def nll_grad(a, labels, eps):
    """Zeros except -1 / (max(a[i, label], eps) n) at the labels; shape (n, k), a's dtype."""
    n = a.shape[0]
    t = a.dtype.type
    e, tn, minus_one = t(eps), t(n), t(-1)
    g = np.zeros_like(a)
    for i in range(n):
        p = a[i, labels[i]]
        g[i, labels[i]] = minus_one / ((e if p < e else p) * tn)  # a NaN p stays NaN
    return g


@numba.njit(cache=True, error_model="numpy")
def softmax_nll_loss(z, labels):
    """-1/n sum log_softmax(z)[i, labels[i]] in float64 -> Python float (inf if a label's logit is -inf)."""
    n, k = z.shape
    row = np.empty(k, dtype=np.float64)
    e = np.empty(k, dtype=np.float64)
    picked = np.empty(n, dtype=np.float64)
    for i in range(n):
        for j in range(k):
            row[j] = z[i, j]
        m = shift_max(row)
        if m == -np.inf:  # all -inf: the uniform distribution
            picked[i] = 0.0 - math.log(k)
            continue
        for j in range(k):
            e[j] = exp(row[j] - m)
        picked[i] = (row[labels[i]] - m) - math.log(pairwise_sum(e, 0, k))
    return -pairwise_sum(picked, 0, n) / n


@numba.njit(cache=True, error_model="numpy")
def _minus_onehot_over_n(d, labels):
    """In place: d[i, labels[i]] -= 1, then d /= n (d in its own dtype)."""
    n, k = d.shape
    one, tn = d.dtype.type(1), d.dtype.type(n)
    for i in range(n):
        d[i, labels[i]] -= one
        for j in range(k):
            d[i, j] = d[i, j] / tn
    return d


@numba.njit(cache=True, error_model="numpy")
def softmax_nll_grad(z, labels):
    """dC/dz = (softmax(z) - onehot) / n, shape (n, k), z's dtype."""
    return _minus_onehot_over_n(softmax(z), labels)


@numba.njit(cache=True, error_model="numpy")
def sigmoid_bce_delta(a, y):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): (a - y) / n."""
    return _diff_over(a, y, a.dtype.type(a.shape[0]))


@numba.njit(cache=True, error_model="numpy")
def softmax_nll_delta(a, labels):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): (a - onehot) / n."""
    return _minus_onehot_over_n(a.copy(), labels)
