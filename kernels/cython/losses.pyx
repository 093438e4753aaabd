"""Loss values and gradients, in Cython (the spec, with the formulas: kernels/reference/losses.py).

``a`` are network outputs, ``y`` targets of the same shape (n, k), ``labels`` int64 class indices (n,).
Values are accumulated in float64 and returned as Python floats: terms are computed in float64 (after the
same float32 steps as the reference) into a block buffer that is summed with 8 accumulators. Gradients
are arrays of the input dtype, computed in that dtype in the reference's order.
"""
import numpy as np
from libc.math cimport log1p

include "_common.pxi"



def quadratic_loss(const floating[:, ::1] a, const floating[:, ::1] y):
    """C = 1/(2n) sum ||y - a||^2 (a - y taken in the input dtype, then squared and summed in float64)."""
    cdef Py_ssize_t n = a.shape[0], size = a.shape[0] * a.shape[1], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double total = 0, d
    check_same_2d(n, a.shape[1], y.shape[0], y.shape[1])
    if size == 0:
        return total / (2 * n) if n else float("nan")
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            for t in range(m):
                d = <double>(ap[start + t] - yp[start + t])
                buf[t] = d * d
            total += fnn_sum(buf, m)
    return total / (2 * n)


cdef object diff_over_n(const floating[:, ::1] a, const floating[:, ::1] y):
    """(a - y) / n in the input dtype."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    cdef floating fn = <floating>a.shape[0]
    check_same_2d(a.shape[0], a.shape[1], y.shape[0], y.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = (ap[t] - yp[t]) / fn
    return out


def quadratic_grad(const floating[:, ::1] a, const floating[:, ::1] y):
    """dC/da = (a - y) / n."""
    return diff_over_n(a, y)


def mse_loss(const floating[:, ::1] a, const floating[:, ::1] y):
    """C = mean over all elements of (y - a)^2."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double total = 0, d
    check_same_2d(a.shape[0], a.shape[1], y.shape[0], y.shape[1])
    if size == 0:
        return float("nan")
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            for t in range(m):
                d = <double>(ap[start + t] - yp[start + t])
                buf[t] = d * d
            total += fnn_sum(buf, m)
    return total / size


def mse_grad(const floating[:, ::1] a, const floating[:, ::1] y):
    """dC/da = 2 (a - y) / (n k), as (a - y) * dtype(2 / size)."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    check_same_2d(a.shape[0], a.shape[1], y.shape[0], y.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating scale = <floating>(2.0 / size)
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            op[t] = (ap[t] - yp[t]) * scale
    return out


def bce_loss(const floating[:, ::1] a, const floating[:, ::1] y, double eps):
    """C = -1/n sum [y ln a + (1-y) ln(1-a)], a clipped to [eps, 1-eps], all in float64."""
    cdef Py_ssize_t n = a.shape[0], size = a.shape[0] * a.shape[1], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double total = 0, c, yv, hi = 1 - eps
    check_same_2d(n, a.shape[1], y.shape[0], y.shape[1])
    if size == 0:
        return -total / n if n else float("nan")
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            for t in range(m):
                c = ap[start + t]
                c = eps if c < eps else c
                c = hi if c > hi else c
                yv = yp[start + t]
                buf[t] = yv * log(c) + (1 - yv) * log1p(-c)
            total += fnn_sum(buf, m)
    return -total / n


def bce_grad(const floating[:, ::1] a, const floating[:, ::1] y, double eps):
    """dC/da = (c - y) / (c (1 - c)) / n with c = a clipped to [eps, 1 - eps], in the input dtype."""
    cdef Py_ssize_t size = a.shape[0] * a.shape[1], t
    cdef floating lo = <floating>eps, hi = <floating>(1 - eps), fn = <floating>a.shape[0], c
    check_same_2d(a.shape[0], a.shape[1], y.shape[0], y.shape[1])
    out = np.empty((a.shape[0], a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    if size == 0:
        return out
    cdef floating[:, ::1] o = out
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    cdef floating* op = &o[0, 0]
    with nogil:
        for t in range(size):
            c = ap[t]
            c = lo if c < lo else c
            c = hi if c > hi else c
            op[t] = (c - yp[t]) / (c * (<floating>1 - c)) / fn
    return out


def bce_logits_loss(const floating[:, ::1] z, const floating[:, ::1] y):
    """BCE on logits, max(z,0) - z y + log1p(exp(-|z|)), summed in float64 / n."""
    cdef Py_ssize_t n = z.shape[0], size = z.shape[0] * z.shape[1], blk, start, t, m
    cdef double buf[BLOCK]
    cdef double sp[BLOCK]
    cdef double total = 0, v
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


def nll_loss(const floating[:, ::1] a, const int64_t[::1] labels, double eps):
    """C = -1/n sum ln a[label], a clipped below at eps (a are probabilities)."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef double total = 0, p
    check_labels(labels, n, a.shape[1])
    with nogil:
        for i in range(n):
            p = a[i, labels[i]]
            total += log(eps if p < eps else p)
    return -total / n if n else float("nan")


def nll_grad(const floating[:, ::1] a, const int64_t[::1] labels, double eps):
    """Zero except -1 / (max(a[label], eps) n) at each row's label."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef floating lo = <floating>eps, fn = <floating>n, p
    check_labels(labels, n, a.shape[1])
    out = np.zeros((n, a.shape[1]), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] g = out
    with nogil:
        for i in range(n):
            p = a[i, labels[i]]
            g[i, labels[i]] = <floating>-1 / ((lo if p < lo else p) * fn)
    return out


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
    cdef Py_ssize_t n = z.shape[0], k = z.shape[1], i, j
    cdef floating total, fn = <floating>n
    check_labels(labels, n, k)
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    with nogil:
        for i in range(n):
            exp_shifted(&z[i, 0], &o[i, 0], k)
            total = <floating>row_sum(&o[i, 0], k)
            for j in range(k):
                o[i, j] = o[i, j] / total
            o[i, labels[i]] -= <floating>1
            for j in range(k):
                o[i, j] = o[i, j] / fn
    return out


def sigmoid_bce_delta(const floating[:, ::1] a, const floating[:, ::1] y):
    """Gradient of bce(sigmoid(z), y) with respect to z, from a = sigmoid(z): (a - y) / n."""
    return diff_over_n(a, y)


def softmax_nll_delta(const floating[:, ::1] a, const int64_t[::1] labels):
    """Gradient of nll(softmax(z), labels) with respect to z, from a = softmax(z): (a - onehot) / n."""
    cdef Py_ssize_t n = a.shape[0], k = a.shape[1], i, j
    cdef floating fn = <floating>n
    check_labels(labels, n, k)
    out = np.empty((n, k), dtype=np.float32 if floating is float else np.float64)
    cdef floating[:, ::1] o = out
    with nogil:
        for i in range(n):
            for j in range(k):
                o[i, j] = a[i, j]
            o[i, labels[i]] -= <floating>1
            for j in range(k):
                o[i, j] = o[i, j] / fn
    return out
