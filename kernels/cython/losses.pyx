"""Loss values and gradients, in Cython (the spec, with the formulas: kernels/reference/losses.py).

``a`` are network outputs, ``y`` targets of the same shape (n, k), ``labels`` int64 class indices (n,).
Values are accumulated in float64 and returned as Python floats: terms are computed in float64 (after the
same float32 steps as the reference) into a block buffer that is summed with 8 accumulators. Gradients
are arrays of the input dtype, computed in that dtype in the reference's order. bce_loss takes its logs
with a branch-free float64 log (below) that vectorizes, instead of libm's log and log1p per element.
"""
import numpy as np

include "_common.pxi"

cdef extern from *:
    """
    /* log(w) + c for w > 0, c a small correction (0 for a plain log); w = 0 gives -inf, w < 0 NaN, +inf
       and NaN pass through. fdlibm's log (e_log.c, error below 1 ulp) without
       its branches, so that loops over it vectorize: w = 2^k m, m in [sqrt(2)/2, sqrt(2)), f = m - 1,
       s = f / (2 + f), log w = k ln2 + f - (f^2/2 - s (f^2/2 + R(s^2))). Subnormal w are scaled by 2^54
       first. k becomes a double through its bits (2^52 + e, exact) as SSE2 and AVX2 cannot convert int64.
       The same as kernels/numba/_math.py's _log_plus. */
    static inline double fnn_log_plus(double w, double c) {
        int sub = w < 2.2250738585072014e-308;
        int64_t bits = fnn_d2i(sub ? w * 18014398509481984.0 : w);
        double m = fnn_i2d((bits & INT64_C(0x000FFFFFFFFFFFFF)) | INT64_C(0x3FF0000000000000));
        double k = fnn_i2d((int64_t)((uint64_t)bits >> 52) | INT64_C(0x4330000000000000)) - 4503599627371519.0;
        int big = m > 1.4142135623730951;
        m = big ? 0.5 * m : m;
        k = k + (big ? 1.0 : 0.0) - (sub ? 54.0 : 0.0);
        double f = m - 1.0, s = f / (2.0 + f), z = s * s, z2 = z * z;
        double r = z2 * (3.999999999940941908e-01 + z2 * (2.222219843214978396e-01 + z2 * 1.531383769920937332e-01))
                   + z * (6.666666666666735130e-01 + z2 * (2.857142874366239149e-01
                          + z2 * (1.818357216161805012e-01 + z2 * 1.479819860511658591e-01)));
        double hfsq = 0.5 * f * f;
        double res = k * 6.93147180369123816490e-01
                     - ((hfsq - (s * (hfsq + r) + (k * 1.90821492927058770002e-10 + c))) - f);
        res = w < INFINITY ? res : w;
        return w > 0.0 ? res : (w == 0.0 ? -INFINITY : NAN);
    }

    /* log(1 + x): log of w = 1 + x, plus the part of x that 1 + x lost, relative to w. */
    static inline double fnn_log1p_any(double x) {
        double w = 1.0 + x;
        double c = (x - (w - 1.0)) / w;
        return fnn_log_plus(w, w > 0.0 && w < INFINITY ? c : 0.0);
    }

    /* bce terms y ln(a) + (1 - y) ln(1 - a), a clipped to [eps, 1 - eps] as np.clip (NaN stays NaN);
       SIMD-dispatched as _common.pxi's array kernels. */
    #define FNN_BCE_TERMS(T, S)                                                                             \
    FNN_MULTIVERSION(fnn_bce_terms_##S, (const T *a, const T *y, double eps, double *out, Py_ssize_t n),    \
                     (a, y, eps, out, n),                                                                   \
        double hi = 1.0 - eps;                                                                              \
        for (Py_ssize_t i = 0; i < n; i++) {                                                                \
            double c = a[i], yv = y[i];                                                                     \
            c = c < eps ? eps : c;                                                                          \
            c = c > hi ? hi : c;                                                                            \
            out[i] = yv * fnn_log_plus(c, 0.0) + (1.0 - yv) * fnn_log1p_any(-c);                            \
        })
    FNN_BCE_TERMS(float, f)
    FNN_BCE_TERMS(double, d)
    """
    void fnn_bce_terms_f(const float*, const float*, double, double*, Py_ssize_t) noexcept nogil
    void fnn_bce_terms_d(const double*, const double*, double, double*, Py_ssize_t) noexcept nogil


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
    cdef Py_ssize_t n = a.shape[0], size = a.shape[0] * a.shape[1], blk, start, m
    cdef double buf[BLOCK]
    cdef double total = 0
    check_same_2d(n, a.shape[1], y.shape[0], y.shape[1])
    if size == 0:
        return -total / n if n else float("nan")
    cdef const floating* ap = &a[0, 0]
    cdef const floating* yp = &y[0, 0]
    with nogil:
        for blk in range((size + BLOCK - 1) // BLOCK):
            start = blk * BLOCK
            m = min(BLOCK, size - start)
            if floating is float:
                fnn_bce_terms_f(ap + start, yp + start, eps, buf, m)
            else:
                fnn_bce_terms_d(ap + start, yp + start, eps, buf, m)
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
