"""Loss values and gradients, in Cython (the spec, with the formulas and sample weights:
kernels/reference/losses.py).

``a`` are network outputs, ``y`` targets of the same shape (n, k), ``labels`` int64 class indices (n,), ``w``
optional per-row weights (n,) (converted to a's dtype). Each loss's per-element formula is _loss.pxi's,
shared with the fused epoch's output layer. Values are accumulated in float64 and returned as Python floats:
terms are computed in float64 (after the same float32 steps as the reference), weighted, into a block buffer
that is summed with 8 accumulators; bce and poisson take their logs with _loss.pxi's branch-free float64
log, which vectorizes. Gradients are arrays of the input dtype, computed in that dtype in the reference's
order, so that without weights they are what they were before weights existed, to the bit.
"""
import numpy as np

include "_common.pxi"
include "_constants.pxi"
include "_softmax.pxi"
include "_loss.pxi"


cdef object row_weights(object w, Py_ssize_t n, object dtype):
    """w as a C-contiguous (n,) array of the dtype; an empty one for None (no weights)."""
    if w is None:
        return np.empty(0, dtype)
    w = np.ascontiguousarray(w, dtype=dtype)
    if w.shape != (n,):
        raise ValueError(f"w must hold one weight per row, shape ({n},), got {w.shape}")
    return w


cdef void weighted_grad(const floating* a, const floating* y, const int64_t* labels, const floating* w,
                        Py_ssize_t n, Py_ssize_t k, long loss, double eps, floating* out) noexcept nogil:
    """out = dC/da of the weighted mean loss (_loss.pxi's loss_grad), against targets y or, when y is NULL,
    the one-hot rows of labels."""
    cdef Py_ssize_t i, j
    cdef double safe
    cdef floating wi = 1, tw, c_mse, lo = <floating>eps, hi = <floating>(1 - eps)
    weight_total(w, n, &safe)
    tw = <floating>safe
    c_mse = <floating>(2.0 / (safe * k))
    if y != NULL:
        grad_rows(loss, a, y, w, n, k, tw, c_mse, lo, hi, out)
        return
    for i in range(n):
        if w != NULL:
            wi = w[i]
        for j in range(k):
            out[i * k + j] = loss_grad(loss, a[i * k + j], 1 if j == labels[i] else 0, wi, tw, c_mse, lo, hi)


cdef object _loss(const floating[:, ::1] a, const floating[:, ::1] y, w, long loss, double eps):
    """The weighted mean loss of a against y (the per-row sum over k columns, divided by 2 W for QUADRATIC,
    W k for MSE, W for BCE and POISSON) as a Python float; NaN for no rows."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1]
    cdef double safe, total = 0
    check_same_2d(n, k, y.shape[0], y.shape[1])
    cdef const floating[::1] wv = row_weights(w, n, np.float32 if floating is float else np.float64)
    if n == 0:
        return float("nan")
    cdef const floating* wp = &wv[0] if wv.shape[0] else NULL
    with nogil:
        if k:
            total = weighted_sum(&a[0, 0], &y[0, 0], wp, n, k, loss, eps)
        weight_total(wp, n, &safe)
    return mean_loss(total, safe, k, loss)


cdef object _grad(const floating[:, ::1] a, y, labels, w, long loss, double eps):
    """dC/da as a new array, against the targets y (n, k) or, when y is None, the labels (n,)."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1]
    cdef const floating[:, ::1] yv
    cdef const int64_t[::1] lv
    cdef const floating* yp = NULL
    cdef const int64_t* lp = NULL
    if y is not None:
        yv = y
        check_same_2d(n, k, yv.shape[0], yv.shape[1])
    else:
        lv = labels
        check_labels(lv, n, k)
    cdef const floating[::1] wv = row_weights(w, n, np.float32 if floating is float else np.float64)
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    if n * k == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* wp = &wv[0] if wv.shape[0] else NULL
    if y is not None:
        yp = &yv[0, 0]
    else:
        lp = &lv[0]
    with nogil:
        weighted_grad(&a[0, 0], yp, lp, wp, n, k, loss, eps, &o[0, 0])
    return out


def quadratic_loss(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """C = sum_i w_i ||y_i - a_i||^2 / (2 W) (1/(2n) sum ||y - a||^2 without weights)."""
    return _loss(a, y, w, QUADRATIC, 0)


def quadratic_grad(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """dC/da = w (a - y) / W ((a - y) / n without weights)."""
    return _grad(a, y, None, w, QUADRATIC, 0)


def mse_loss(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """C = the weighted mean over rows of the mean over columns of (y - a)^2."""
    return _loss(a, y, w, MSE, 0)


def mse_grad(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """dC/da = w (a - y) 2 / (W k), as (a - y) * w * dtype(2 / (W k))."""
    return _grad(a, y, None, w, MSE, 0)


def bce_loss(const floating[:, ::1] a, const floating[:, ::1] y, double eps, w=None):
    """C = -1/W sum_i w_i sum_j [y ln a + (1-y) ln(1-a)], a clipped to [eps, 1-eps], all in float64."""
    return _loss(a, y, w, BCE, eps)


def bce_grad(const floating[:, ::1] a, const floating[:, ::1] y, double eps, w=None):
    """dC/da = w (c - y) / (c (1 - c)) / W with c = a clipped to [eps, 1 - eps], in the input dtype."""
    return _grad(a, y, None, w, BCE, eps)


def poisson_loss(const floating[:, ::1] a, const floating[:, ::1] y, double eps, w=None):
    """C = 1/W sum_i w_i sum_j [a - y + y ln(y / c)], c = max(a, eps), y ln(y / c) = 0 where y = 0 (half the
    Poisson deviance), all in float64."""
    return _loss(a, y, w, POISSON, eps)


def poisson_grad(const floating[:, ::1] a, const floating[:, ::1] y, double eps, w=None):
    """dC/da = w (c - y) / c / W with c = max(a, eps), in the input dtype."""
    return _grad(a, y, None, w, POISSON, eps)


def bce_logits_loss(const floating[:, ::1] z, const floating[:, ::1] y):
    """BCE on logits, max(z,0) - z y + log1p(exp(-|z|)), summed in float64 / n."""
    cdef Py_ssize_t n = z.shape[0], size = z.shape[0] * z.shape[1], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double sp[BLOCK]
    cdef double total = 0
    check_same_2d(n, z.shape[1], y.shape[0], y.shape[1])
    if size == 0:
        return total / n if n else float("nan")
    cdef const floating* zp = &z[0, 0]
    cdef const floating* yp = &y[0, 0]
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            for t in range(m):
                buf[t] = zp[start + t]
            softplus_array(buf, sp, m)  # max(z,0) + log1p(exp(-|z|)), in float64
            for t in range(m):
                buf[t] = sp[t] - buf[t] * <double>yp[start + t]
            total += fnn_sum(buf, m)
    return total / n


def bce_logits_grad(const floating[:, ::1] z, const floating[:, ::1] y):
    """dC/dz = (sigmoid(z) - y) / n."""
    cdef Py_ssize_t size = z.shape[0] * z.shape[1], t
    cdef floating fn = <floating>z.shape[0]
    check_same_2d(z.shape[0], z.shape[1], y.shape[0], y.shape[1])
    out = np.empty((z.shape[0], z.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* zp = &z[0, 0]
    cdef const floating* yp = &y[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        sigmoid_array(zp, op, size)
        for t in range(size):
            op[t] = (op[t] - yp[t]) / fn
    return out


def nll_loss(const floating[:, ::1] a, const int64_t[::1] labels, double eps, w=None):
    """C = -1/W sum_i w_i ln max(a[i, labels[i]], eps) (a are probabilities)."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef double total = 0, safe
    check_labels(labels, n, a.shape[1])
    cdef const floating[::1] wv = row_weights(w, n, np.float32 if floating is float else np.float64)
    if n == 0:
        return float("nan")
    cdef const floating* wp = &wv[0] if wv.shape[0] else NULL
    with nogil:
        for i in range(n):
            total += (<double>wp[i] if wp != NULL else 1.0) * log_prob(a[i, labels[i]], eps)
        weight_total(wp, n, &safe)
    return mean_loss(total, safe, 1, NLL)


def nll_grad(const floating[:, ::1] a, const int64_t[::1] labels, double eps, w=None):
    """Zero except -w / (max(a[label], eps) W) at each row's label."""
    return _grad(a, None, labels, w, NLL, eps)


def softmax_nll_loss(const floating[:, ::1] z, const int64_t[::1] labels):
    """NLL of softmax(z) via log-softmax, all in float64 (z is widened first)."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef double total = 0, m
    check_labels(labels, n, k)
    if n == 0:
        return float("nan")
    scratch = np.empty(k, dtype=np.float64)
    cdef double[::1] e = scratch
    with nogil:
        for i in range(n):
            m = row_max(&z[i, 0], k)
            if m == -INFINITY:
                # Shifted row of zeros: log-probability 0 - log(k).
                total += -log(<double>k)
                continue
            for j in range(k):
                e[j] = z[i, j]
            exp_shift_array(&e[0], m, &e[0], k)
            total += (<double>z[i, labels[i]] - m) - log(fnn_sum(&e[0], k))
    return -total / n


def softmax_nll_grad(const floating[:, ::1] z, const int64_t[::1] labels):
    """dC/dz = (softmax(z) - onehot) / n, softmax in the input dtype."""
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1]
    check_labels(labels, n, k)
    probabilities = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    if n * k == 0:
        return probabilities
    cdef floating[:, ::1] p = probabilities
    with nogil:
        softmax_rows(&z[0, 0], k, &p[0, 0], k, k, n)
    return softmax_nll_delta(probabilities, labels)


def sigmoid_bce_delta(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): w (a - y) / W."""
    return _grad(a, y, None, w, QUADRATIC, 0)


def exp_poisson_delta(const floating[:, ::1] a, const floating[:, ::1] y, w=None):
    """Gradient of poisson(exp(z), y) with respect to z, from a = exp(z): w (a - y) / W."""
    return _grad(a, y, None, w, QUADRATIC, 0)


def softmax_nll_delta(const floating[:, ::1] a, const int64_t[::1] labels, w=None):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): w (a - onehot) / W."""
    return _grad(a, None, labels, w, QUADRATIC, 0)
