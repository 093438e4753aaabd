"""One training epoch of a stack of Dense layers in one call, in Cython (spec: kernels/reference/fused.py).

Same signature, flat layout, codes and arithmetic as the reference (read its docstring). Buffers (the
gathered batch rows, every layer's output, two delta buffers, the flat gradient) are allocated once at
the top of the call; the loop over mini-batches runs without the GIL and allocates nothing. Products of at
least ``gemm_min`` multiply-adds go to SciPy's BLAS (sgemm/dgemm on the row-major arrays), smaller ones
are plain loops. Plain SGD (no weight decay, no penalties) folds the weight update into the gradient
product, W += -lr * A^T delta (one gemm with beta = 1), saving a pass over the weights per step; it then
differs from the reference only in BLAS's rounding of that expression. Arithmetic is in the parameter
dtype; losses accumulate in float64. With ``hyper[9]`` (flush_denormals) set, subnormals are flushed to
zero (x86 FTZ/DAZ) in this thread for the duration of the call, and the previous mode is restored.
"""
import numpy as np

include "_common.pxi"

from libc.math cimport isfinite, pow
from libc.string cimport memcpy

cdef extern from *:
    """
    /* Adam's update of n elements, each operation rounded in the element type in the reference's order:
       m = b1 m + (1 - b1) d; v = b2 v + (1 - b2) d d; p -= step_size (m / (sqrt(v) / bc2 + eps)).
       Written with SSE2 because GCC keeps sqrtf a call (for errno, even under the module's
       no-math-errno pragma) and so never vectorizes the plain loop: batch-128 epochs were 25% slower. */
    #include <math.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    static inline void fnn_adam_f(float *p, const float *g, float *m, float *v, Py_ssize_t n, float b1,
                                  float b2, float om1, float om2, float ss, float bc2, float eps) {
        Py_ssize_t q = 0;
    #if defined(__SSE2__)
        const __m128 B1 = _mm_set1_ps(b1), B2 = _mm_set1_ps(b2), OM1 = _mm_set1_ps(om1);
        const __m128 OM2 = _mm_set1_ps(om2), SS = _mm_set1_ps(ss), BC2 = _mm_set1_ps(bc2), EPS = _mm_set1_ps(eps);
        for (; q + 4 <= n; q += 4) {
            __m128 d = _mm_loadu_ps(g + q);
            __m128 mq = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + q), B1), _mm_mul_ps(OM1, d));
            __m128 vq = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + q), B2), _mm_mul_ps(OM2, _mm_mul_ps(d, d)));
            _mm_storeu_ps(m + q, mq);
            _mm_storeu_ps(v + q, vq);
            __m128 den = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vq), BC2), EPS);
            _mm_storeu_ps(p + q, _mm_sub_ps(_mm_loadu_ps(p + q), _mm_mul_ps(SS, _mm_div_ps(mq, den))));
        }
    #endif
        for (; q < n; q++) {
            float d = g[q];
            float mq = m[q] * b1 + om1 * d;
            float vq = v[q] * b2 + om2 * (d * d);
            m[q] = mq;
            v[q] = vq;
            p[q] = p[q] - ss * (mq / (sqrtf(vq) / bc2 + eps));
        }
    }

    static inline void fnn_adam_d(double *p, const double *g, double *m, double *v, Py_ssize_t n, double b1,
                                  double b2, double om1, double om2, double ss, double bc2, double eps) {
        Py_ssize_t q = 0;
    #if defined(__SSE2__)
        const __m128d B1 = _mm_set1_pd(b1), B2 = _mm_set1_pd(b2), OM1 = _mm_set1_pd(om1);
        const __m128d OM2 = _mm_set1_pd(om2), SS = _mm_set1_pd(ss), BC2 = _mm_set1_pd(bc2), EPS = _mm_set1_pd(eps);
        for (; q + 2 <= n; q += 2) {
            __m128d d = _mm_loadu_pd(g + q);
            __m128d mq = _mm_add_pd(_mm_mul_pd(_mm_loadu_pd(m + q), B1), _mm_mul_pd(OM1, d));
            __m128d vq = _mm_add_pd(_mm_mul_pd(_mm_loadu_pd(v + q), B2), _mm_mul_pd(OM2, _mm_mul_pd(d, d)));
            _mm_storeu_pd(m + q, mq);
            _mm_storeu_pd(v + q, vq);
            __m128d den = _mm_add_pd(_mm_div_pd(_mm_sqrt_pd(vq), BC2), EPS);
            _mm_storeu_pd(p + q, _mm_sub_pd(_mm_loadu_pd(p + q), _mm_mul_pd(SS, _mm_div_pd(mq, den))));
        }
    #endif
        for (; q < n; q++) {
            double d = g[q];
            double mq = m[q] * b1 + om1 * d;
            double vq = v[q] * b2 + om2 * (d * d);
            m[q] = mq;
            v[q] = vq;
            p[q] = p[q] - ss * (mq / (sqrt(vq) / bc2 + eps));
        }
    }

    /* The SSE control register's flush-to-zero and denormals-are-zero bits (x86-64 only; else no-ops). */
    #if defined(__x86_64__) || defined(_M_X64)
    #include <xmmintrin.h>
    static inline unsigned int fnn_get_fpmode(void) { return _mm_getcsr(); }
    static inline void fnn_set_fpmode(unsigned int m) { _mm_setcsr(m); }
    #else
    static inline unsigned int fnn_get_fpmode(void) { return 0; }
    static inline void fnn_set_fpmode(unsigned int m) { (void)m; }
    #endif
    #define FNN_FTZ_DAZ 0x8040u
    """
    void fnn_adam_f(float*, const float*, float*, float*, Py_ssize_t, float, float, float, float, float, float,
                    float) noexcept nogil
    void fnn_adam_d(double*, const double*, double*, double*, Py_ssize_t, double, double, double, double, double,
                    double, double) noexcept nogil
    unsigned int fnn_get_fpmode() noexcept nogil
    void fnn_set_fpmode(unsigned int) noexcept nogil
    unsigned int FNN_FTZ_DAZ

# Codes: the same values as the module constants of kernels/reference/fused.py.
cdef enum:
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    SOFTMAX = 4
cdef enum:
    BCE = 0
    NLL = 1
    QUADRATIC = 2
cdef enum:
    SGD = 0
    MOMENTUM = 1
    NESTEROV = 2
    ADAM = 3


cdef inline void _matmul(const floating* a, const floating* b, floating* out, Py_ssize_t m, Py_ssize_t k,
                         Py_ssize_t n, long long gemm_min) noexcept nogil:
    """out (m, n) = a (m, k) @ b (k, n)."""
    cdef Py_ssize_t i, p, j
    cdef floating av
    if m * k * n >= gemm_min:
        gemm_rm(False, False, <int>m, <int>n, <int>k, 1, a, <int>k, b, <int>n, 0, out, <int>n)
        return
    for i in range(m * n):
        out[i] = 0
    for p in range(k):
        for i in range(m):
            av = a[i * k + p]
            for j in range(n):
                out[i * n + j] += av * b[p * n + j]


cdef inline void _matmul_tn(const floating* a, const floating* b, floating* out, Py_ssize_t m, Py_ssize_t k,
                            Py_ssize_t n, long long gemm_min) noexcept nogil:
    """out (k, n) = a (m, k).T @ b (m, n)."""
    cdef Py_ssize_t i, p, j
    cdef floating av
    if m * k * n >= gemm_min:
        gemm_rm(True, False, <int>k, <int>n, <int>m, 1, a, <int>k, b, <int>n, 0, out, <int>n)
        return
    for p in range(k):
        for j in range(n):
            out[p * n + j] = 0
        for i in range(m):
            av = a[i * k + p]
            for j in range(n):
                out[p * n + j] += av * b[i * n + j]


cdef inline void _sgd_weights(const floating* a, const floating* d, floating* w, floating* scratch,
                              Py_ssize_t m, Py_ssize_t k, Py_ssize_t n, floating lr,
                              long long gemm_min) noexcept nogil:
    """Plain SGD on w (k, n) with gradient a (m, k).T @ d (m, n): w = w - lr * g.

    With BLAS this is one gemm, w = -lr a.T d + 1 w, and the gradient is never stored; the loops store it
    in ``scratch`` (k, n) and update as sgd_step does.
    """
    cdef Py_ssize_t q
    if m * k * n >= gemm_min:
        gemm_rm(True, False, <int>k, <int>n, <int>m, -lr, a, <int>k, d, <int>n, 1, w, <int>n)
        return
    _matmul_tn(a, d, scratch, m, k, n, gemm_min)
    for q in range(k * n):
        w[q] = w[q] - lr * scratch[q]


cdef inline void _matmul_nt(const floating* a, const floating* b, floating* out, Py_ssize_t m, Py_ssize_t n,
                            Py_ssize_t k, long long gemm_min) noexcept nogil:
    """out (m, k) = a (m, n) @ b (k, n).T."""
    cdef Py_ssize_t i, p, j
    cdef floating s
    if m * k * n >= gemm_min:
        gemm_rm(False, True, <int>m, <int>k, <int>n, 1, a, <int>n, b, <int>n, 0, out, <int>k)
        return
    for i in range(m):
        for p in range(k):
            s = 0
            for j in range(n):
                s = s + a[i * n + j] * b[p * n + j]
            out[i * k + p] = s


cdef inline void _bias_act(floating* z, const floating* b, Py_ssize_t nb, Py_ssize_t n, long act) noexcept nogil:
    """z = f(z + b) in place, f element-wise; one loop per activation so that GCC vectorizes it."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating zero = 0
    for i in range(nb):
        if act == SIGMOID:
            for j in range(n):
                z[i * n + j] = vsigmoid(z[i * n + j] + b[j])
        elif act == TANH:
            for j in range(n):
                z[i * n + j] = vtanh(z[i * n + j] + b[j])
        elif act == RELU:
            for j in range(n):
                v = z[i * n + j] + b[j]
                z[i * n + j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        else:
            for j in range(n):
                z[i * n + j] = z[i * n + j] + b[j]


cdef inline void _act_backward(const floating* a, floating* d, Py_ssize_t size, long act) noexcept nogil:
    """d = d * f'(z) in place, from the activation's output a."""
    cdef Py_ssize_t q
    cdef floating v
    if act == SIGMOID:
        for q in range(size):
            v = a[q]
            d[q] = d[q] * (v * (<floating>1 - v))
    elif act == TANH:
        for q in range(size):
            v = a[q]
            d[q] = d[q] * (<floating>1 - v * v)
    elif act == RELU:
        for q in range(size):
            d[q] = d[q] if a[q] > 0 else 0


cdef double _output(floating* z, const floating* b, const floating* y, Py_ssize_t nb, Py_ssize_t n, long act,
                    long loss, floating* delta, double loss_eps, long long* correct) noexcept nogil:
    """Output layer in place: z = act(z + b); delta = dC/dz of the mean loss.

    Returns the sum of the per-sample data losses as fastnn.losses defines them (float64) and adds the
    number of rows whose prediction matches the target to ``correct``.
    """
    cdef Py_ssize_t i, j, best_a, best_y
    cdef floating v, t, e, s, mx, a, num
    cdef floating nf = <floating>nb
    cdef floating zero = 0
    cdef double total = 0, a64, t64, d64
    cdef floating* zi
    cdef const floating* yr
    for i in range(nb):
        zi = z + i * n
        yr = y + i * n
        if act == SOFTMAX:
            for j in range(n):
                zi[j] = zi[j] + b[j]
            mx = zi[0]
            for j in range(n):
                mx = zi[j] if zi[j] > mx else mx
            s = 0
            for j in range(n):
                # an all -inf row is the limit of equal logits: uniform (see kernels/reference/softmax.py)
                v = vexp(zi[j] - mx) if mx != -INFINITY else 1
                zi[j] = v
                s = s + v
            for j in range(n):
                zi[j] = zi[j] / s
        else:
            for j in range(n):
                v = zi[j] + b[j]
                if act == SIGMOID:
                    e = vexp(-vabs(v))
                    num = 1 if v >= 0 else e
                    v = num / (<floating>1 + e)
                elif act == TANH:
                    v = vtanh(v)
                elif act == RELU:
                    v = zero if v < zero else v
                zi[j] = v
        for j in range(n):
            a = zi[j]
            t = yr[j]
            delta[i * n + j] = (a - t) / nf
            if loss == QUADRATIC:
                d64 = <double>(a - t)
                total += d64 * d64
            elif loss == BCE:
                # bce_loss: a clipped to [eps, 1 - eps] (NaN stays NaN, as np.clip); a term with a zero
                # factor adds exactly 0
                a64 = a
                a64 = loss_eps if a64 < loss_eps else (1.0 - loss_eps if a64 > 1.0 - loss_eps else a64)
                t64 = t
                if t != 0:
                    total -= t64 * log(a64)
                if t != 1:
                    total -= (1.0 - t64) * log1p(-a64)
            elif t != 0:
                a64 = a
                total -= <double>t * log(loss_eps if a64 < loss_eps else a64)
        if n == 1:
            correct[0] += (zi[0] > 0.5) == (yr[0] > 0.5)
        else:
            best_a = 0
            best_y = 0
            for j in range(1, n):
                if zi[j] > zi[best_a]:
                    best_a = j
                if yr[j] > yr[best_y]:
                    best_y = j
            correct[0] += best_a == best_y
    if loss == QUADRATIC:
        total /= 2
        _act_backward(z, delta, nb * n, act)
    return total


cdef void _penalize(floating* params, floating* grads, Py_ssize_t lo, Py_ssize_t hi, floating l2c,
                    floating l1c, double l2, double l1, double* squares, double* absolute) noexcept nogil:
    """grads[lo:hi] += l2 * p, then += l1 * sign(p) (add_l2_grad, add_l1_grad), for the weights in lo:hi;
    adds sum p^2 and sum |p| (float64) to ``squares`` / ``absolute`` for the penalty values."""
    cdef Py_ssize_t q
    cdef floating p, sgn
    cdef double sq = 0, ab = 0
    if l2 != 0:
        for q in range(lo, hi):
            p = params[q]
            sq += <double>p * <double>p
            grads[q] = grads[q] + l2c * p
    if l1 != 0:
        for q in range(lo, hi):
            p = params[q]
            ab += fabs(<double>p)
            sgn = 1 if p > 0 else (-1 if p < 0 else (0 if p == 0 else p))
            grads[q] = grads[q] + l1c * sgn
    squares[0] += sq
    absolute[0] += ab


cdef void _step(floating* params, floating* grads, floating* s0, floating* s1, Py_ssize_t size, long opt,
                floating lr, floating mu, floating wd, floating b1, floating b2, floating om_b1,
                floating om_b2, floating step_size, floating bc2, floating eps) noexcept nogil:
    """One optimizer step over the whole flat buffer (torch semantics, see kernels/reference/optim.py)."""
    cdef Py_ssize_t q
    cdef floating d, bq
    if wd != 0:
        for q in range(size):
            grads[q] = grads[q] + wd * params[q]
    if opt == SGD:
        for q in range(size):
            params[q] = params[q] - lr * grads[q]
    elif opt == ADAM:
        if floating is float:
            fnn_adam_f(params, grads, s0, s1, size, b1, b2, om_b1, om_b2, step_size, bc2, eps)
        else:
            fnn_adam_d(params, grads, s0, s1, size, b1, b2, om_b1, om_b2, step_size, bc2, eps)
    elif opt == NESTEROV:
        for q in range(size):
            d = grads[q]
            bq = s0[q] * mu + d
            s0[q] = bq
            params[q] = params[q] - lr * (d + mu * bq)
    else:
        for q in range(size):
            bq = s0[q] * mu + grads[q]
            s0[q] = bq
            params[q] = params[q] - lr * bq


def train_epoch(const floating[:, ::1] x, const floating[:, ::1] y, const int64_t[::1] order,
                floating[::1] params, floating[:, ::1] state, const int64_t[::1] sizes,
                const int64_t[::1] acts, long loss, long opt, const double[::1] hyper,
                Py_ssize_t batch_size, long long step, long long gemm_min):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    The same arguments and results as kernels/reference/fused.py's ``train_epoch``.
    """
    cdef Py_ssize_t n_layers = sizes.shape[0] - 1, m = order.shape[0], P = params.shape[0]
    cdef Py_ssize_t l, i, j, at, maxw, start, nb, cur, n_in, n_out
    dtype = np.float32 if floating is float else np.float64
    woff_a = np.empty(n_layers, dtype=np.int64)
    boff_a = np.empty(n_layers, dtype=np.int64)
    aoff_a = np.empty(n_layers + 2, dtype=np.int64)
    cdef int64_t[::1] woff = woff_a, boff = boff_a, aoff = aoff_a
    at = 0
    maxw = 1
    aoff[0] = 0
    for l in range(n_layers):
        woff[l] = at
        at += sizes[l] * sizes[l + 1]
        boff[l] = at
        at += sizes[l + 1]
        maxw = max(maxw, sizes[l + 1])
    for l in range(n_layers + 1):
        aoff[l + 1] = aoff[l] + batch_size * sizes[l]
    cdef floating[::1] abuf = np.empty(aoff[n_layers + 1], dtype=dtype)
    cdef floating[::1] ybuf = np.empty(batch_size * sizes[n_layers], dtype=dtype)
    cdef Py_ssize_t n_y = sizes[n_layers]
    cdef floating[:, ::1] dbuf = np.empty((2, batch_size * maxw), dtype=dtype)
    cdef floating[::1] grads = np.empty(max(P, 1), dtype=dtype)
    cdef floating* pp = &params[0]
    cdef floating* gp = &grads[0]
    cdef floating* ab = &abuf[0]
    cdef floating* s0 = &state[0, 0] if state.shape[0] > 0 else NULL
    cdef floating* s1 = &state[1, 0] if state.shape[0] > 1 else NULL
    cdef floating* ain
    cdef floating* aout = NULL
    cdef floating* delta
    cdef floating* nd = NULL
    cdef floating lr = <floating>hyper[0], mu = <floating>hyper[1], b1 = <floating>hyper[2]
    cdef floating b2 = <floating>hyper[3], eps = <floating>hyper[4], wd = <floating>hyper[5]
    cdef floating l2c = <floating>hyper[6], l1c = <floating>hyper[7]
    cdef double l2 = hyper[6], l1 = hyper[7], loss_eps = hyper[8]
    cdef bint flush = hyper[9] != 0
    cdef bint penalized = l2 != 0 or l1 != 0
    # Plain SGD updates the weights inside the gradient product (see the module docstring).
    cdef bint fold = opt == SGD and hyper[5] == 0 and not penalized
    cdef unsigned int fpmode
    cdef floating om_b1 = <floating>(1 - hyper[2]), om_b2 = <floating>(1 - hyper[3])
    cdef floating step_size = 0, bc2 = 0
    cdef double total = 0, value = 0, squares, absolute
    cdef long long correct = 0, right, updates = 0
    start = 0
    with nogil:
        # Subnormal moments of dead units made float32 Adam ~15% slower: flush them for this loop only.
        fpmode = fnn_get_fpmode()
        if flush:
            fnn_set_fpmode(fpmode | FNN_FTZ_DAZ)
        while start < m:
            nb = min(batch_size, m - start)
            n_in = sizes[0]
            # Gather the batch's rows (targets too: their cache misses then overlap with those of x).
            for i in range(nb):
                memcpy(ab + i * n_in, &x[order[start + i], 0], n_in * sizeof(floating))
                memcpy(&ybuf[i * n_y], &y[order[start + i], 0], n_y * sizeof(floating))
            for l in range(n_layers):
                n_in = sizes[l]
                n_out = sizes[l + 1]
                ain = ab + aoff[l]
                aout = ab + aoff[l + 1]
                _matmul(ain, pp + woff[l], aout, nb, n_in, n_out, gemm_min)
                if l < n_layers - 1:
                    _bias_act(aout, pp + boff[l], nb, n_out, acts[l])
            cur = 0
            delta = &dbuf[0, 0]
            right = 0
            value = _output(aout, pp + boff[n_layers - 1], &ybuf[0], nb, n_y,
                            acts[n_layers - 1], loss, delta, loss_eps, &right) / nb
            # The batch's objective as fit reports it: mean data loss plus the penalties at these weights
            # (known only after the penalty pass below; without penalties, checked before any update).
            if not penalized and not isfinite(value):
                break  # this batch is not applied; the caller reports divergence at batch `updates`
            for l in range(n_layers - 1, -1, -1):
                n_in = sizes[l]
                n_out = sizes[l + 1]
                ain = ab + aoff[l]
                if l > 0:  # the delta of the layer below, from W before this step updates it
                    cur = 1 - cur
                    nd = &dbuf[cur, 0]
                    _matmul_nt(delta, pp + woff[l], nd, nb, n_out, n_in, gemm_min)
                for j in range(n_out):
                    gp[boff[l] + j] = 0
                for i in range(nb):
                    for j in range(n_out):
                        gp[boff[l] + j] = gp[boff[l] + j] + delta[i * n_out + j]
                if fold:
                    _sgd_weights(ain, delta, pp + woff[l], gp + woff[l], nb, n_in, n_out, lr, gemm_min)
                    for j in range(n_out):
                        pp[boff[l] + j] = pp[boff[l] + j] - lr * gp[boff[l] + j]
                else:
                    _matmul_tn(ain, delta, gp + woff[l], nb, n_in, n_out, gemm_min)
                if l > 0:
                    _act_backward(ain, nd, nb * n_in, acts[l - 1])
                    delta = nd
            if penalized:
                squares = 0
                absolute = 0
                for l in range(n_layers):
                    _penalize(pp, gp, woff[l], boff[l], l2c, l1c, l2, l1, &squares, &absolute)
                if l2 != 0:
                    value += l2 / 2 * squares
                if l1 != 0:
                    value += l1 * absolute
                if not isfinite(value):
                    break
            total += value * nb
            correct += right
            step += 1
            updates += 1
            start += nb
            if fold:
                continue
            if opt == ADAM:
                step_size = <floating>(hyper[0] / (1 - pow(hyper[2], <double>step)))
                bc2 = <floating>sqrt(1 - pow(hyper[3], <double>step))
            _step(pp, gp, s0, s1, P, opt, lr, mu, wd, b1, b2, om_b1, om_b2, step_size, bc2, eps)
        fnn_set_fpmode(fpmode)
    return total, correct, updates, value
