# The losses' per-element formulas, written once: losses.pyx's public kernels and the fused epoch's output layer
# (_output.pxi) use them (semantics and sample weights: kernels/reference/losses.py). Needs _common.pxi and
# _constants.pxi included first.

from libc.math cimport NAN

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

    /* A bce term y ln(c) + (1 - y) ln(1 - c), c = a clipped to [eps, 1 - eps] as np.clip (NaN stays NaN). */
    static inline double fnn_bce_term(double a, double y, double eps) {
        double c = a < eps ? eps : a;
        c = c > 1.0 - eps ? 1.0 - eps : c;
        return y * fnn_log_plus(c, 0.0) + (1.0 - y) * fnn_log1p_any(-c);
    }

    /* A poisson term a - y + y ln(y / c), c = max(a, eps) as np.maximum (NaN stays NaN); y ln(y / c) is
       taken as its limit 0 where y = 0 (selected after, so the loop stays branch-free). */
    static inline double fnn_poisson_term(double a, double y, double eps) {
        double c = a < eps ? eps : a;
        double yl = y * fnn_log_plus(y / c, 0.0);
        return (a - y) + (y != 0.0 ? yl : 0.0);
    }

    /* The LOSS terms (fnn_LOSS_term) of n elements, SIMD-dispatched as _common.pxi's array kernels. */
    #define FNN_LOSS_TERMS(T, S, LOSS)                                                                      \
    FNN_MULTIVERSION(fnn_##LOSS##_terms_##S, (const T *a, const T *y, double eps, double *out, Py_ssize_t n), \
                     (a, y, eps, out, n),                                                                   \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_##LOSS##_term(a[i], y[i], eps);)
    FNN_LOSS_TERMS(float, f, bce)
    FNN_LOSS_TERMS(double, d, bce)
    FNN_LOSS_TERMS(float, f, poisson)
    FNN_LOSS_TERMS(double, d, poisson)
    """
    double fnn_bce_term(double, double, double) noexcept nogil
    void fnn_bce_terms_f(const float*, const float*, double, double*, Py_ssize_t) noexcept nogil
    void fnn_bce_terms_d(const double*, const double*, double, double*, Py_ssize_t) noexcept nogil
    void fnn_poisson_terms_f(const float*, const float*, double, double*, Py_ssize_t) noexcept nogil
    void fnn_poisson_terms_d(const double*, const double*, double, double*, Py_ssize_t) noexcept nogil


cdef inline double sq_diff(floating a, floating t) noexcept nogil:
    """(a - t)^2 in float64, the difference taken in the input dtype."""
    cdef double d = <double>(a - t)
    return d * d


cdef inline double log_prob(floating a, double eps) noexcept nogil:
    """ln max(a, eps) in float64 (as np.maximum: a NaN stays NaN)."""
    cdef double p = a
    return log(eps if p < eps else p)


cdef inline floating loss_grad(long loss, floating a, floating t, floating wi, floating tw, floating c_mse,
                               floating lo, floating hi) noexcept nogil:
    """dC/da at one element of the weighted mean loss (row weight wi, W = tw, in the dtype): w (a - t) / W
    (QUADRATIC, and the fused deltas of BCE + sigmoid, NLL + softmax and POISSON + exp, from their output a),
    w (a - t) c_mse (MSE, c_mse = 2 / (W k)), w (c - t) / (c (1 - c)) / W (BCE, c = a clipped to [lo, hi]),
    w (c - t) / c / W (POISSON, c = max(a, lo)) or, where t != 0, -t w / (max(a, lo) W) (NLL)."""
    cdef floating c
    if loss == MSE:
        return (a - t) * wi * c_mse
    if loss == BCE:
        c = lo if a < lo else a
        c = hi if c > hi else c
        return (c - t) / (c * (<floating>1 - c)) * wi / tw
    if loss == POISSON:
        c = lo if a < lo else a
        return (c - t) / c * wi / tw
    if loss == NLL:
        return -(t * wi) / ((lo if a < lo else a) * tw) if t != 0 else 0
    return (a - t) * wi / tw


cdef inline void grad_rows(long loss, const floating* a, const floating* t, const floating* w, Py_ssize_t n,
                           Py_ssize_t k, floating tw, floating c_mse, floating lo, floating hi,
                           floating* out) noexcept nogil:
    """out = loss_grad over n contiguous rows of k (a against t, row weights w or NULL): one loop per loss,
    its formula's branches resolved, so that the compiler vectorizes each."""
    if loss == QUADRATIC:
        _grad_rows(QUADRATIC, a, t, w, n, k, tw, c_mse, lo, hi, out)
    elif loss == MSE:
        _grad_rows(MSE, a, t, w, n, k, tw, c_mse, lo, hi, out)
    elif loss == BCE:
        _grad_rows(BCE, a, t, w, n, k, tw, c_mse, lo, hi, out)
    elif loss == POISSON:
        _grad_rows(POISSON, a, t, w, n, k, tw, c_mse, lo, hi, out)
    else:
        _grad_rows(NLL, a, t, w, n, k, tw, c_mse, lo, hi, out)


cdef inline void _grad_rows(long loss, const floating* a, const floating* t, const floating* w, Py_ssize_t n,
                            Py_ssize_t k, floating tw, floating c_mse, floating lo, floating hi,
                            floating* out) noexcept nogil:
    cdef Py_ssize_t i, j
    if w == NULL:
        for j in range(n * k):
            out[j] = loss_grad(loss, a[j], t[j], 1, tw, c_mse, lo, hi)
    else:
        for i in range(n):
            for j in range(i * k, (i + 1) * k):
                out[j] = loss_grad(loss, a[j], t[j], w[i], tw, c_mse, lo, hi)


cdef inline double weight_total(const floating* w, Py_ssize_t n, double* safe) noexcept nogil:
    """W: the float64 sum of the weights, or n without them (w NULL); ``safe`` receives W with a zero sum of
    weights counted as 1 (such a batch then has loss and gradient 0)."""
    cdef double total
    if w == NULL:
        safe[0] = n
        return n
    total = row_sum(w, n)
    safe[0] = total if total != 0 else 1.0
    return total


cdef inline bint is_right(const floating* a, const floating* t, Py_ssize_t k) noexcept nogil:
    """Whether a row is classified right: argmax (first on ties) against the target's, or a > 0.5 for one
    unit."""
    cdef Py_ssize_t j, best_a = 0, best_t = 0
    cdef floating top_a = a[0], top_t = t[0]
    if k == 1:
        return (a[0] > 0.5) == (t[0] > 0.5)
    for j in range(1, k):  # (selects, not branches: which unit wins is data, a branch would guess it wrong)
        best_a = j if a[j] > top_a else best_a
        top_a = a[j] if a[j] > top_a else top_a
        best_t = j if t[j] > top_t else best_t
        top_t = t[j] if t[j] > top_t else top_t
    return best_a == best_t


cdef inline void log_terms(long loss, const floating* a, const floating* y, double eps, double* out,
                           Py_ssize_t n) noexcept nogil:
    """out = the float64 terms of BCE or POISSON (fnn_bce_term, fnn_poisson_term) of n elements."""
    if floating is float:
        if loss == BCE:
            fnn_bce_terms_f(a, y, eps, out, n)
        else:
            fnn_poisson_terms_f(a, y, eps, out, n)
    else:
        if loss == BCE:
            fnn_bce_terms_d(a, y, eps, out, n)
        else:
            fnn_poisson_terms_d(a, y, eps, out, n)


cdef double weighted_sum(const floating* a, const floating* y, const floating* w, Py_ssize_t n, Py_ssize_t k,
                         long loss, double eps) noexcept nogil:
    """sum_i w_i sum_j term(a_ij, y_ij) in float64 (w NULL: no weights): QUADRATIC and MSE sq_diff, BCE and
    POISSON their log terms (``log_terms``, SIMD-dispatched), NLL y log max(a, eps) where y != 0. The terms of
    the flat (n, k) arrays go in blocks of BLOCK, each block weighted and summed with 8 accumulators."""
    cdef double buf[BLOCK]
    cdef double total = 0
    cdef Py_ssize_t size = n * k, blk, start, t, m, i, j
    for blk in range((size + BLOCK - 1) // BLOCK):
        start = blk * BLOCK
        m = min(BLOCK, size - start)
        if loss == BCE or loss == POISSON:
            log_terms(loss, a + start, y + start, eps, buf, m)
        elif loss == NLL:
            for t in range(m):
                buf[t] = <double>y[start + t] * log_prob(a[start + t], eps) if y[start + t] != 0 else 0
        else:
            for t in range(m):
                buf[t] = sq_diff(a[start + t], y[start + t])
        if w != NULL:
            i = start // k
            j = start % k
            for t in range(m):
                buf[t] = buf[t] * w[i]
                j += 1
                if j == k:
                    i += 1
                    j = 0
        total += fnn_sum(buf, m)
    return total


cdef inline double mean_loss(double total, double safe, Py_ssize_t k, long loss) noexcept nogil:
    """The weighted mean loss from weighted_sum's total: / (2 W) for QUADRATIC, / (W k) for MSE (NaN for no
    columns), / W for POISSON (its terms are the deviance's), -total / W for BCE and NLL (their terms are
    log-likelihoods); safe: weight_total's."""
    if loss == QUADRATIC:
        return total / (2 * safe)
    if loss == MSE:
        return total / (safe * k) if k else NAN
    if loss == POISSON:
        return total / safe
    return -total / safe
