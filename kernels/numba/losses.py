"""Loss values and gradients (Numba); semantics of kernels/reference/losses.py (sample weights included).

Values are accumulated in float64 and returned as Python floats; gradients are new arrays of the input
dtype. ``a`` are network outputs, ``y`` targets of the same shape, ``labels`` int64 class indices (n,),
``w`` optional per-row weights of a's dtype. Each loss's per-element formula is written once
(``sq_diff``, ``bce_term``, ``bce_slope``, ``log_prob``, ``poisson_term``, ``poisson_slope``) and used by
the public kernels, which write their float64 terms to a buffer and sum it in NumPy's pairwise order (as
the reference's ``np.sum(terms, dtype=np.float64)``), and by ``output_block``, the output layer of the
fused epoch. No fastmath: losses may be inf.
"""
import math

import numba
import numpy as np

from ..constants import BCE, EXP, MSE, NLL, POISSON, QUADRATIC, SIGMOID, SOFTMAX
from ._math import exp, log, log1p, pairwise_sum, shift_max
from .activations import act_backward_block, act_block
from .softmax import softmax, softmax_backward_row, softmax_row


@numba.njit(cache=True, error_model="numpy", inline="always")
def sq_diff(a, t):
    """(a - t)^2 in float64, the difference taken in the input dtype."""
    d = np.float64(a - t)
    return d * d


@numba.njit(cache=True, error_model="numpy", inline="always")
def bce_term(a, t, eps):
    """t ln c + (1 - t) ln(1 - c) in float64, c = a clipped to [eps, 1 - eps] (np.clip: NaN stays NaN);
    branch-free, so that loops over it vectorize."""
    c = np.float64(a)
    c = eps if c < eps else c
    c = 1 - eps if c > 1 - eps else c
    t64 = np.float64(t)
    return t64 * log(c) + (1.0 - t64) * log1p(-c)


@numba.njit(cache=True, error_model="numpy", inline="always")
def bce_slope(a, t, lo, hi, one):
    """d bce / d a at one element before the weighting: (c - t) / (c (1 - c)), c = a clipped to [lo, hi]."""
    c = lo if a < lo else a
    c = hi if c > hi else c
    return (c - t) / (c * (one - c))


@numba.njit(cache=True, error_model="numpy", inline="always")
def poisson_term(a, t, eps):
    """a - t + t ln(t / c) in float64, c = max(a, eps) (np.maximum: NaN stays NaN); the log term is 0
    where t == 0 (its limit; 0 ln 0 would be NaN), a select like bce_term's clipping, so that loops over it
    can vectorize."""
    a64, t64 = np.float64(a), np.float64(t)
    c = eps if a64 < eps else a64
    r = t64 * log(t64 / c)
    return (a64 - t64) + (r if t64 != 0.0 else 0.0)


@numba.njit(cache=True, error_model="numpy", inline="always")
def poisson_slope(a, t, lo):
    """d poisson / d a at one element before the weighting: (c - t) / c, c = max(a, lo) in a's dtype."""
    c = lo if a < lo else a
    return (c - t) / c


@numba.njit(cache=True, error_model="numpy", inline="always")
def log_prob(a, eps):
    """ln max(a, eps) in float64 (np.maximum: a NaN stays NaN)."""
    p = np.float64(a)
    return log(eps if p < eps else p)


@numba.njit(cache=True, error_model="numpy")
def weight_total(w, n):
    """(W, W_safe): the float64 sum of the weights (pairwise, as np.sum) or n without them; W_safe is W
    with 0 counted as 1 (a batch of zero weights then has loss and gradient 0)."""
    if w.shape[0] == 0:
        return np.float64(n), np.float64(n)
    terms = np.empty(w.shape[0], dtype=np.float64)
    for i in range(w.shape[0]):
        terms[i] = w[i]
    total = pairwise_sum(terms, 0, w.shape[0])
    return total, total if total != 0 else 1.0


@numba.njit(cache=True, error_model="numpy")
def _weight(w, i, one):
    return w[i] if w.shape[0] > 0 else one


@numba.njit(cache=True, error_model="numpy")
def _weighted_terms(a, y, w, loss, eps):
    """The float64 terms of the loss sum, each multiplied by its row's weight, in C order."""
    n, k = a.shape
    one = a.dtype.type(1)
    terms = np.empty(n * k, dtype=np.float64)
    for i in range(n):
        wi = np.float64(_weight(w, i, one))
        for j in range(k):
            if loss == BCE:
                terms[i * k + j] = wi * bce_term(a[i, j], y[i, j], eps)
            elif loss == POISSON:
                terms[i * k + j] = wi * poisson_term(a[i, j], y[i, j], eps)
            else:
                terms[i * k + j] = wi * sq_diff(a[i, j], y[i, j])
    return pairwise_sum(terms, 0, n * k)


@numba.njit(cache=True, error_model="numpy")
def _grad(a, y, w, loss, eps):
    """dC/da (quadratic, mse, bce, poisson: ``loss``) of the weighted mean, shape (n, k), a's dtype."""
    n, k = a.shape
    t = a.dtype.type
    one = t(1)
    _, total = weight_total(w, n)
    tw, c_mse, lo, hi = t(total), t(2.0 / (total * k)), t(eps), t(1 - eps)
    out = np.empty_like(a)
    for i in range(n):
        wi = _weight(w, i, one)
        for j in range(k):
            if loss == MSE:
                out[i, j] = (a[i, j] - y[i, j]) * wi * c_mse
            elif loss == BCE:
                out[i, j] = bce_slope(a[i, j], y[i, j], lo, hi, one) * wi / tw
            elif loss == POISSON:
                out[i, j] = poisson_slope(a[i, j], y[i, j], lo) * wi / tw
            else:
                out[i, j] = (a[i, j] - y[i, j]) * wi / tw
    return out


def _w(a, w):
    """Weights as the cores take them: an empty array for none, else (n,) of a's dtype."""
    return np.empty(0, dtype=a.dtype) if w is None else np.ascontiguousarray(w, dtype=a.dtype)


@numba.njit(cache=True, error_model="numpy")
def _quadratic_loss(a, y, w):
    return _weighted_terms(a, y, w, QUADRATIC, 0.0) / (2 * weight_total(w, a.shape[0])[1])


def quadratic_loss(a, y, w=None):
    """C = sum_i w_i ||y_i - a_i||^2 / (2 W) (1/(2n) sum ||y - a||^2 without weights) -> Python float."""
    return _quadratic_loss(a, y, _w(a, w))


def quadratic_grad(a, y, w=None):
    """dC/da = w (a - y) / W ((a - y) / n without weights), shape (n, k), a's dtype."""
    return _grad(a, y, _w(a, w), QUADRATIC, 0.0)


@numba.njit(cache=True, error_model="numpy")
def _mse_loss(a, y, w):
    return _weighted_terms(a, y, w, MSE, 0.0) / (weight_total(w, a.shape[0])[1] * a.shape[1])


def mse_loss(a, y, w=None):
    """Weighted mean over rows of the mean over columns of (y - a)^2 -> Python float."""
    return _mse_loss(a, y, _w(a, w))


def mse_grad(a, y, w=None):
    """dC/da = w (a - y) 2 / (W k) (2 (a - y) / (n k) without weights), shape (n, k), a's dtype."""
    return _grad(a, y, _w(a, w), MSE, 0.0)


@numba.njit(cache=True, error_model="numpy")
def _bce_loss(a, y, eps, w):
    return -_weighted_terms(a, y, w, BCE, eps) / weight_total(w, a.shape[0])[1]


def bce_loss(a, y, eps, w=None):
    """-1/W sum_i w_i sum_j [y ln a + (1-y) ln(1-a)] with a clipped to [eps, 1-eps] (in float64)."""
    return _bce_loss(a, y, float(eps), _w(a, w))


def bce_grad(a, y, eps, w=None):
    """w (c - y) / (c (1 - c)) / W with c = a clipped to [eps, 1-eps] in a's dtype; shape (n, k)."""
    return _grad(a, y, _w(a, w), BCE, float(eps))


@numba.njit(cache=True, error_model="numpy")
def _poisson_loss(a, y, eps, w):
    return _weighted_terms(a, y, w, POISSON, eps) / weight_total(w, a.shape[0])[1]


def poisson_loss(a, y, eps, w=None):
    """1/W sum_i w_i sum_j [a - y + y ln(y / c)], c = max(a, eps), the log term 0 where y == 0 (half the
    Poisson deviance, as scikit-learn), in float64 -> Python float."""
    return _poisson_loss(a, y, float(eps), _w(a, w))


def poisson_grad(a, y, eps, w=None):
    """w (c - y) / c / W with c = max(a, eps) in a's dtype; shape (n, k)."""
    return _grad(a, y, _w(a, w), POISSON, float(eps))


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
def _nll_loss(a, labels, eps, w):
    n = a.shape[0]
    one = a.dtype.type(1)
    terms = np.empty(n, dtype=np.float64)
    for i in range(n):
        terms[i] = np.float64(_weight(w, i, one)) * log_prob(a[i, labels[i]], eps)
    return -pairwise_sum(terms, 0, n) / weight_total(w, n)[1]


def nll_loss(a, labels, eps, w=None):
    """-1/W sum_i w_i ln max(a[i, labels[i]], eps), in float64 (a are probabilities) -> Python float."""
    return _nll_loss(a, labels, float(eps), _w(a, w))


@numba.njit(cache=True, error_model="numpy")
def _nll_grad(a, labels, eps, w):
    n = a.shape[0]
    t = a.dtype.type
    e, one = t(eps), t(1)
    tw = t(weight_total(w, n)[1])
    g = np.zeros_like(a)
    for i in range(n):
        p = a[i, labels[i]]
        g[i, labels[i]] = -_weight(w, i, one) / ((e if p < e else p) * tw)  # a NaN p stays NaN
    return g


def nll_grad(a, labels, eps, w=None):
    """Zeros except -w / (max(a[i, label], eps) W) at the labels; shape (n, k), a's dtype."""
    return _nll_grad(a, labels, float(eps), _w(a, w))


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
def _minus_onehot_weighted(d, labels, w):
    """In place: d[i, labels[i]] -= 1, then d = d * w / W (d in its own dtype)."""
    n, k = d.shape
    one = d.dtype.type(1)
    tw = d.dtype.type(weight_total(w, n)[1])
    for i in range(n):
        d[i, labels[i]] -= one
        wi = _weight(w, i, one)
        for j in range(k):
            d[i, j] = d[i, j] * wi / tw
    return d


@numba.njit(cache=True, error_model="numpy")
def softmax_nll_grad(z, labels):
    """dC/dz = (softmax(z) - onehot) / n, shape (n, k), z's dtype."""
    return _minus_onehot_weighted(softmax(z), labels, z.reshape(z.size)[:0])


def sigmoid_bce_delta(a, y, w=None):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): w (a - y) / W."""
    return _grad(a, y, _w(a, w), QUADRATIC, 0.0)


def exp_poisson_delta(a, y, w=None):
    """Gradient of poisson(exp(z), y) with respect to z, from a = exp(z): w (a - y) / W (the same rule as
    sigmoid_bce_delta: no division by a)."""
    return _grad(a, y, _w(a, w), QUADRATIC, 0.0)


@numba.njit(cache=True, error_model="numpy")
def _softmax_nll_delta(a, labels, w):
    return _minus_onehot_weighted(a.copy(), labels, w)


def softmax_nll_delta(a, labels, w=None):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): w (a - onehot) / W."""
    return _softmax_nll_delta(a, labels, _w(a, w))


# -- the output layer of the fused epoch -------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy")
def output_block(z, ldz, a, y, w, nb, k, act, loss, eps, slope, delta, g, terms):
    """The output layer of a batch, all its k units: a = act(z), the weighted data loss, delta = dC/dz and
    the rows classified right.

    z: the activation's input, rows of ldz (kept); a, delta, g: (nb * k,) contiguous (g: scratch for
    dC/da); terms: float64 (nb * k,) scratch; y: (nb * k,) targets; w: (nb,) weights of the batch's rows,
    or empty for none; eps: float64 (BCE, NLL, POISSON clipping); slope: LeakyReLU's (the dtype); act: any
    code but PRELU. Returns (the weighted mean data loss sum_i w_i C_i / W in float64, W, correct rows):
    argmax (first on ties) against the target's argmax, or a > 0.5 for one unit.
    BCE after SIGMOID, NLL after SOFTMAX and POISSON after EXP give the fused delta w (a - y) / W; other
    pairings the loss's gradient through the activation's backward pass.
    """
    t = a.dtype.type
    one, zero = t(1), t(0)
    if act == SOFTMAX:
        for i in range(nb):
            softmax_row(z[i * ldz:i * ldz + k], a[i * k:(i + 1) * k])
    else:
        act_block(z, ldz, a, k, nb, 0, k, act, slope, a, False)
    total_w, safe = weight_total(w, nb)
    tw, c_mse, lo, hi = t(safe), t(2.0 / (safe * k)), t(eps), t(1 - eps)
    fused = (loss == BCE and act == SIGMOID) or (loss == NLL and act == SOFTMAX) or (loss == POISSON and act == EXP)
    out = delta if fused else g
    n = nb * k
    if loss == BCE:  # the loss's terms in loops of their own, which vectorize, then each row's sum
        for q in range(n):
            terms[q] = -bce_term(a[q], y[q], eps)
    elif loss == NLL:
        for q in range(n):
            terms[q] = -(np.float64(y[q]) * log_prob(a[q], eps)) if y[q] != zero else 0.0
    elif loss == POISSON:
        for q in range(n):
            terms[q] = poisson_term(a[q], y[q], eps)
    else:
        for q in range(n):
            terms[q] = sq_diff(a[q], y[q])
    total = 0.0
    correct = 0
    for i in range(nb):  # (each case its own loop: loops with a loop-invariant branch inside do not vectorize)
        ai = a[i * k:(i + 1) * k]
        yi = y[i * k:(i + 1) * k]
        oi = out[i * k:(i + 1) * k]
        wi = _weight(w, i, one)
        row = 0.0
        for j in range(k):
            row += terms[i * k + j]
        total += np.float64(wi) * row
        if fused or loss == QUADRATIC:
            for j in range(k):
                oi[j] = (ai[j] - yi[j]) * wi / tw
        elif loss == MSE:
            for j in range(k):
                oi[j] = (ai[j] - yi[j]) * wi * c_mse
        elif loss == BCE:
            for j in range(k):
                oi[j] = bce_slope(ai[j], yi[j], lo, hi, one) * wi / tw
        elif loss == POISSON:
            for j in range(k):
                oi[j] = poisson_slope(ai[j], yi[j], lo) * wi / tw
        else:
            for j in range(k):
                p = ai[j]
                oi[j] = -(yi[j] * wi) / ((lo if p < lo else p) * tw) if yi[j] != zero else zero
        if k == 1:
            correct += (ai[0] > 0.5) == (yi[0] > 0.5)
        else:
            best_a = 0
            best_y = 0
            for j in range(1, k):
                if ai[j] > ai[best_a]:
                    best_a = j
                if yi[j] > yi[best_y]:
                    best_y = j
            correct += best_a == best_y
    if not fused:
        if act == SOFTMAX:
            for i in range(nb):
                softmax_backward_row(a[i * k:(i + 1) * k], g[i * k:(i + 1) * k], delta[i * k:(i + 1) * k])
        else:  # (the ReLU family's f' from a: slope >= 0)
            act_backward_block(a, k, g, k, delta, k, nb, 0, k, act, slope)
    if loss == QUADRATIC:
        total /= 2 * safe
    elif loss == MSE:
        total /= safe * k
    else:
        total /= safe
    return total, total_w, correct
