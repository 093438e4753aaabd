"""One training epoch of a stack of Dense layers in one call, in Cython (spec: kernels/reference/fused.py).

Same signature, flat layout, codes and arithmetic as the reference (read its docstring, "Threads" too).
``train_epoch`` runs ``train_epoch_worker`` on ``n_threads`` threads (kernels/workers.py); each worker
allocates its buffers (the gathered batch rows, its own copies of the parameters it owns, their gradient
and state) once at the top, then loops over the mini-batches without the GIL, allocating nothing, meeting
the other threads at the barriers the reference describes. Products go to the hand-written AVX-512 kernels
of small_gemm.h for batches up to SMALL_BATCH rows (where the CPU has them), else to SciPy's BLAS
(sgemm/dgemm on the row-major blocks); below ``gemm_min`` multiply-adds they are plain loops. Plain SGD (no
weight decay, no penalties) folds the weight update into the gradient product, W += -lr * A^T delta (one
product with beta = 1), saving a pass over the weights per step; it then differs from the reference only
in the rounding of that expression. Arithmetic is in the parameter dtype; losses accumulate in float64.
With ``hyper[9]`` (flush_denormals) set, subnormals are flushed to zero (x86 FTZ/DAZ) in each thread for
the duration of the call, and the previous mode is restored.
"""
import numpy as np

from fastnn._kernels import workers as _workers
from fastnn._kernels.reference import fused as _ref

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
    LEAKY_RELU = 5
    SOFTPLUS = 6
    PRELU = 7
cdef enum:
    BCE = 0
    NLL = 1
    QUADRATIC = 2
cdef enum:
    SGD = 0
    MOMENTUM = 1
    NESTEROV = 2
    ADAM = 3


cdef extern from *:
    """
    /* The barrier of the threads of one epoch, over the int64 array sync laid out by kernels/workers.py
       (COUNT 0, SENSE 8, ABORT 16): sense-reversing, so it can be reused at once. Waiters spin with
       pause for ~13 us (512 pauses on Zen 4), then yield the core: when another process holds the other
       core, spinning would burn the time slice the late thread needs. Returns nonzero when a thread asked
       everyone to stop. */
    #include <sched.h>
    /* Ask for rows (given by index) to be brought into this core's caches: the next batch's shuffled rows
       are then on their way while this batch computes (measured: 784-30-10, batch 10, two threads, an
       epoch in shuffled order took 0.059 s against 0.048 s in sequential order; prefetched, 0.05 s). */
    static inline void fnn_prefetch_rows(const char *base, const int64_t *rows, Py_ssize_t count,
                                         Py_ssize_t row_bytes) {
        for (Py_ssize_t i = 0; i < count; i++) {
            const char *r = base + rows[i] * row_bytes;
            for (Py_ssize_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(r + b, 0, 3);
        }
    }
    #if defined(__x86_64__) || defined(__i386__)
    #include <immintrin.h>
    #define FNN_PAUSE() _mm_pause()
    #else
    #define FNN_PAUSE() ((void)0)
    #endif
    static inline int fnn_barrier(int64_t *sync, Py_ssize_t n_threads, int64_t *sense) {
        if (n_threads <= 1) return 0;
        int64_t s = 1 - *sense;
        *sense = s;
        if (__atomic_add_fetch(&sync[0], 1, __ATOMIC_ACQ_REL) == n_threads) {
            __atomic_store_n(&sync[0], 0, __ATOMIC_RELAXED);
            __atomic_store_n(&sync[8], s, __ATOMIC_RELEASE);
        } else {
            long spins = 0;
            while (__atomic_load_n(&sync[8], __ATOMIC_ACQUIRE) != s) {
                if (__atomic_load_n(&sync[16], __ATOMIC_RELAXED)) return 1;
                if (++spins < 512) FNN_PAUSE(); else sched_yield();
            }
        }
        return __atomic_load_n(&sync[16], __ATOMIC_RELAXED) != 0;
    }

    """
    int fnn_barrier(int64_t*, Py_ssize_t, int64_t*) noexcept nogil
    void fnn_prefetch_rows(const char*, const int64_t*, Py_ssize_t, Py_ssize_t) noexcept nogil

cdef extern from "small_gemm.h":
    int fnn_has_avx512() noexcept nogil
    void fnn_small_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float*, Py_ssize_t, Py_ssize_t, const float*,
                     Py_ssize_t, float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double*, Py_ssize_t, Py_ssize_t,
                     const double*, Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_nn_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float**, const float*, Py_ssize_t,
                             float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_tn_f(Py_ssize_t, Py_ssize_t, Py_ssize_t, float, const float**, const float*, Py_ssize_t,
                             float, float*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_nn_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double**, const double*,
                             Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil
    void fnn_small_rows_tn_d(Py_ssize_t, Py_ssize_t, Py_ssize_t, double, const double**, const double*,
                             Py_ssize_t, double, double*, Py_ssize_t) noexcept nogil


cdef inline void _rows_product(bint ta, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                               const floating** rows, const floating* b, Py_ssize_t ldb, floating beta,
                               floating* c, Py_ssize_t ldc) noexcept nogil:
    """The hand-written product with A given by row pointers (small_gemm.h's _rows_ variants)."""
    if m <= 0 or n <= 0:
        return
    if floating is float:
        if ta:
            fnn_small_rows_tn_f(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
        else:
            fnn_small_rows_nn_f(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
    else:
        if ta:
            fnn_small_rows_tn_d(m, n, k, alpha, rows, b, ldb, beta, c, ldc)
        else:
            fnn_small_rows_nn_d(m, n, k, alpha, rows, b, ldb, beta, c, ldc)

cdef enum:
    # Batches up to this size use the hand-written products where the CPU has AVX-512. Measured with
    # OpenBLAS 0.3.30's Haswell kernels (OPENBLAS_CORETYPE=Haswell, as on the project machine), one epoch,
    # 1 / 2 threads: 784-100-10 Adam batch 128 0.26 / 0.15 s with BLAS, 0.20 / 0.12 s hand-written;
    # 784-512-512-10 batch 256 1.87 / 1.24 s against 1.74 / 0.93 s.
    SMALL_BATCH = 512
    SMALL_NT = 8192  # A B^T products below this many multiply-adds run as loops (a BLAS call costs more)


cdef inline void _gemm(bint ta, bint tb, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb, floating beta,
                       floating* c, Py_ssize_t ldc, long long gemm_min) noexcept nogil:
    """Row-major c (m, n) = alpha op(a) op(b) + beta c on blocks of row-major arrays (ld* = row lengths).

    Products of at least ``gemm_min`` multiply-adds go to BLAS; smaller ones are loops that sum over k in
    order. beta is 0 (c is overwritten, even if it held NaN) or 1.
    """
    cdef Py_ssize_t i, j, p
    cdef floating s, av, bv
    if m <= 0 or n <= 0:
        return
    if m * n * k >= gemm_min:
        if not tb and (k if ta else m) <= SMALL_BATCH and fnn_has_avx512():
            if floating is float:
                fnn_small_f(m, n, k, alpha, a, 1 if ta else lda, lda if ta else 1, b, ldb, beta, c, ldc)
            else:
                fnn_small_d(m, n, k, alpha, a, 1 if ta else lda, lda if ta else 1, b, ldb, beta, c, ldc)
            return
        if not tb or m * n * k >= SMALL_NT:
            gemm_rm(ta, tb, <int>m, <int>n, <int>k, alpha, a, <int>lda, b, <int>ldb, beta, c, <int>ldc)
            return
    for i in range(m):
        for j in range(n):
            s = 0
            for p in range(k):
                av = a[p * lda + i] if ta else a[i * lda + p]
                bv = b[j * ldb + p] if tb else b[p * ldb + j]
                s = s + av * bv
            c[i * ldc + j] = alpha * s if beta == 0 else c[i * ldc + j] + alpha * s


cdef inline void _act_columns(floating* z, Py_ssize_t nb, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t c1,
                              long act, floating slope) noexcept nogil:
    """z[:, c0:c1] = f(z) in place (z is (nb, n)); ``slope``: LeakyReLU's."""
    cdef Py_ssize_t i, j
    cdef floating zero = 0, v
    for i in range(nb):
        if act == LEAKY_RELU:
            for j in range(c0, c1):
                v = z[i * n + j]
                z[i * n + j] = v if v > zero else slope * v  # NaN stays NaN
        elif act == SOFTPLUS:  # max(z, 0) + log1p(exp(-|z|)), as kernels/reference/activations.py
            for j in range(c0, c1):
                v = z[i * n + j]
                z[i * n + j] = (v if v > zero else zero) + vlog1p_unit(vexp(-vabs(v)))
        if act == SIGMOID:
            for j in range(c0, c1):
                z[i * n + j] = vsigmoid(z[i * n + j])
        elif act == TANH:
            for j in range(c0, c1):
                z[i * n + j] = vtanh(z[i * n + j])
        elif act == RELU:
            for j in range(c0, c1):
                z[i * n + j] = zero if z[i * n + j] < zero else z[i * n + j]


cdef inline void _bias_act(floating* z, const floating* b, Py_ssize_t nb, Py_ssize_t n, Py_ssize_t c0,
                           Py_ssize_t c1, long act, floating slope) noexcept nogil:
    """z[:, c0:c1] = f(z + b) in place (z is (nb, n)), f element-wise (``slope``: LeakyReLU's); one loop per
    activation so that GCC vectorizes it."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating zero = 0
    if act == LEAKY_RELU or act == SOFTPLUS:
        for i in range(nb):
            for j in range(c0, c1):
                z[i * n + j] = z[i * n + j] + b[j]
        _act_columns(z, nb, n, c0, c1, act, slope)
        return
    for i in range(nb):
        if act == SIGMOID:
            for j in range(c0, c1):
                z[i * n + j] = vsigmoid(z[i * n + j] + b[j])
        elif act == TANH:
            for j in range(c0, c1):
                z[i * n + j] = vtanh(z[i * n + j] + b[j])
        elif act == RELU:
            for j in range(c0, c1):
                v = z[i * n + j] + b[j]
                z[i * n + j] = zero if v < zero else v  # NaN stays NaN, as np.maximum
        else:
            for j in range(c0, c1):
                z[i * n + j] = z[i * n + j] + b[j]


cdef void _bn_forward(floating* z, Py_ssize_t nb, Py_ssize_t ld, Py_ssize_t c0, Py_ssize_t c1,
                      const floating* gamma, const floating* beta, floating* rmean, floating* rvar, floating mom,
                      floating eps, floating* xhat, floating* inv_std) noexcept nogil:
    """Batch norm of columns c0:c1 of z (nb, ld) in place, as batchnorm_forward_train: keeps xhat (nb, ld)
    and inv_std (ld,) for the backward pass and updates the running statistics."""
    cdef Py_ssize_t i, j
    cdef floating n = <floating>nb, one = 1, c, mean, var, ratio = <floating>(<double>nb / max(nb - 1, 1))
    for j in range(c0, c1):
        mean = 0
        for i in range(nb):
            mean = mean + z[i * ld + j]
        mean = mean / n
        var = 0
        for i in range(nb):
            c = z[i * ld + j] - mean
            var = var + c * c
        var = var / n
        inv_std[j] = one / (sqrt(var + eps) if floating is double else sqrtf(var + eps))
        for i in range(nb):
            xhat[i * ld + j] = (z[i * ld + j] - mean) * inv_std[j]
            z[i * ld + j] = gamma[j] * xhat[i * ld + j] + beta[j]
        rmean[j] = rmean[j] * (one - mom)
        rmean[j] = rmean[j] + mom * mean
        rvar[j] = rvar[j] * (one - mom)
        rvar[j] = rvar[j] + mom * (var * ratio)


cdef void _bn_backward(floating* d, Py_ssize_t nb, Py_ssize_t ld, Py_ssize_t c0, Py_ssize_t c1,
                       const floating* xhat, const floating* inv_std, const floating* gamma, floating* dgamma,
                       floating* dbeta) noexcept nogil:
    """d (nb, ld) = dC/dy of the batch norm's output on columns c0:c1, in place to dC/dx
    (batchnorm_backward); dgamma, dbeta (indexed by column) receive their gradients."""
    cdef Py_ssize_t i, j
    cdef floating n = <floating>nb, sb, sg, scale
    for j in range(c0, c1):
        sb = 0
        sg = 0
        for i in range(nb):
            sb = sb + d[i * ld + j]
            sg = sg + d[i * ld + j] * xhat[i * ld + j]
        dbeta[j] = sb
        dgamma[j] = sg
        scale = gamma[j] * inv_std[j] / n
        for i in range(nb):
            d[i * ld + j] = scale * (n * d[i * ld + j] - sb - xhat[i * ld + j] * sg)


cdef inline void _act_backward(const floating* a, floating* d, Py_ssize_t nb, Py_ssize_t n, Py_ssize_t c0,
                               Py_ssize_t c1, long act, floating slope) noexcept nogil:
    """d[:, c0:c1] = d * f'(z) in place (a, d are (nb, n)), from the activation's output a: LeakyReLU
    (slope >= 0) has z > 0 exactly where a > 0; Softplus' sigmoid(z) = 1 - exp(-a), in float64 (its
    series below 2^-10, where 1 - exp(-a) would cancel)."""
    cdef Py_ssize_t i, q
    cdef floating v
    cdef double ad
    for i in range(nb):
        if act == LEAKY_RELU:
            for q in range(i * n + c0, i * n + c1):
                d[q] = d[q] if a[q] > 0 else slope * d[q]
        elif act == SOFTPLUS:
            for q in range(i * n + c0, i * n + c1):
                ad = a[q]
                d[q] = d[q] * <floating>(ad * (1.0 - ad * (0.5 - ad / 6.0)) if ad < 0.0009765625
                                         else 1.0 - fnn_exp(-ad))
        if act == SIGMOID:
            for q in range(i * n + c0, i * n + c1):
                v = a[q]
                d[q] = d[q] * (v * (<floating>1 - v))
        elif act == TANH:
            for q in range(i * n + c0, i * n + c1):
                v = a[q]
                d[q] = d[q] * (<floating>1 - v * v)
        elif act == RELU:
            for q in range(i * n + c0, i * n + c1):
                d[q] = d[q] if a[q] > 0 else 0


cdef void _prelu_columns(floating* z, floating* zin, const floating* alpha, Py_ssize_t nb, Py_ssize_t n,
                         Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """PReLU of z[:, c0:c1] in place (z, zin are (nb, n)), keeping its input in zin for the backward pass."""
    cdef Py_ssize_t i, j
    cdef floating v
    for i in range(nb):
        for j in range(c0, c1):
            v = z[i * n + j]
            zin[i * n + j] = v
            z[i * n + j] = v if v > 0 else alpha[j] * v  # NaN stays NaN, as np.where(z > 0, z, alpha z)


cdef void _prelu_backward(const floating* zin, floating* d, const floating* alpha, floating* dalpha,
                          Py_ssize_t nb, Py_ssize_t n, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """d[:, c0:c1] = dC/dz in place from dC/da and PReLU's input zin (prelu_backward); dalpha[c0:c1] =
    sum over the batch of d * z where z <= 0."""
    cdef Py_ssize_t i, j
    cdef floating v, dv
    for j in range(c0, c1):
        dalpha[j] = 0
    for i in range(nb):
        for j in range(c0, c1):
            v = zin[i * n + j]
            dv = d[i * n + j]
            if v <= 0:
                dalpha[j] = dalpha[j] + dv * v
                d[i * n + j] = alpha[j] * dv


cdef inline Py_ssize_t _winner(const floating* g, Py_ssize_t k) noexcept nogil:
    """Index of the largest of g[0:k], the first on ties; the first NaN if any (as np.argmax)."""
    cdef Py_ssize_t p, best = 0
    for p in range(1, k):
        if g[p] > g[best] or (g[p] != g[p] and g[best] == g[best]):
            best = p
    return best


cdef void _maxout_columns(const floating* pre, Py_ssize_t ldp, floating* out, Py_ssize_t ldo, Py_ssize_t nb,
                          Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t k) noexcept nogil:
    """out[:, u0:u1] = the max of each unit's k adjacent product columns of pre (maxout)."""
    cdef Py_ssize_t i, j
    for i in range(nb):
        for j in range(u0, u1):
            out[i * ldo + j] = pre[i * ldp + j * k + _winner(pre + i * ldp + j * k, k)]


cdef void _maxout_backward(floating* pre, Py_ssize_t ldp, const floating* d, Py_ssize_t ldd, Py_ssize_t nb,
                           Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t k) noexcept nogil:
    """Route dC/da of units u0:u1 (d) to their winning product columns, in place of the product pre
    (maxout_backward): the winner is found again from pre, then pre's k columns become the delta."""
    cdef Py_ssize_t i, j, p, won
    cdef floating* g
    for i in range(nb):
        for j in range(u0, u1):
            g = pre + i * ldp + j * k
            won = _winner(g, k)
            for p in range(k):
                g[p] = d[i * ldd + j] if p == won else 0


cdef double _output(floating* z, const floating* y, Py_ssize_t nb, Py_ssize_t n, long act,
                    long loss, floating* delta, double loss_eps, long long* correct) noexcept nogil:
    """Output layer in place: z = act(z) (z holds x W + b); delta = dC/dz of the mean loss.

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
                v = zi[j]
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
        _act_backward(z, delta, nb, n, 0, n, act, 0)
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



cdef inline void _copy_range(const floating* src, floating* dst, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    if hi > lo:
        memcpy(dst + lo, src + lo, (hi - lo) * sizeof(floating))


cdef inline void _step_range(floating* pp, floating* gp, floating* s0, floating* s1, Py_ssize_t lo,
                             Py_ssize_t hi, long opt, floating lr, floating mu, floating wd, floating b1,
                             floating b2, floating om_b1, floating om_b2, floating step_size, floating bc2,
                             floating eps) noexcept nogil:
    """_step on the flat elements lo:hi (state rows that do not exist stay NULL)."""
    if hi <= lo:
        return
    _step(pp + lo, gp + lo, s0 + lo if s0 != NULL else NULL, s1 + lo if s1 != NULL else NULL, hi - lo, opt,
          lr, mu, wd, b1, b2, om_b1, om_b2, step_size, bc2, eps)


def train_epoch_worker(Py_ssize_t tid, Py_ssize_t n_threads, int64_t[::1] sync, double[::1] partials,
                       floating[::1] shared, const int64_t[:, ::1] layout, const floating[:, ::1] x,
                       const floating[:, ::1] y, const int64_t[::1] order, floating[::1] params,
                       floating[:, ::1] state, const int64_t[::1] sizes, const int64_t[::1] acts, long loss, long opt,
                       const double[::1] hyper, Py_ssize_t batch_size, long long step, long long gemm_min,
                       const double[::1] drop, const int64_t[:, ::1] seeds, const double[:, ::1] norm,
                       floating[::1] running, const double[::1] slopes, const int64_t[::1] pieces):
    """Thread ``tid``'s part of one epoch of ``n_threads``; returns what ``train_epoch`` returns.

    sync: int64 (kernels.workers.SYNC_SIZE,) barrier state; partials: float64 (2 n_threads,) the penalty
    sums of each thread; shared: (shared_size(sizes, batch_size, drop, norm, acts, pieces),) workspace of the
    parameter dtype; layout: ``epoch_layout(sizes, batch_size, acts, drop, norm, pieces)``; the rest as
    ``train_epoch`` (drop, seeds, norm, slopes, pieces not None and checked by ``check_options``; running
    at least one element). Every thread must be given the same arrays (see "Threads" in
    kernels/reference/fused.py).
    """
    cdef Py_ssize_t n_layers = sizes.shape[0] - 1, m = order.shape[0], P = params.shape[0]
    cdef Py_ssize_t l, i, j, t, at, start, nb, n_in, n_out, c0, c1, r0, r1, u0, u1, kp, n_y = sizes[n_layers]
    cdef Py_ssize_t k_state = state.shape[0]
    dtype = np.float32 if floating is float else np.float64
    lay = np.asarray(layout)
    if lay.shape[0] != _ref.N_LAYOUT or lay.shape[1] < n_layers + 1:
        raise ValueError("layout must be epoch_layout(sizes, ...)")
    if shared.shape[0] < lay[_ref.LAY_TOTAL, 2] + 16:
        raise ValueError("the shared workspace is smaller than shared_size(sizes, batch_size, drop, norm, acts, "
                         "pieces)")
    if P != lay[_ref.LAY_TOTAL, 0] or running.shape[0] < lay[_ref.LAY_TOTAL, 1]:
        raise ValueError("params or running do not match epoch_layout(sizes, ...)")
    if lay[_ref.LAY_TOTAL, 1] and (m % batch_size == 1 or batch_size == 1):
        raise ValueError("BatchNorm needs at least 2 samples per batch in training, got 1")
    if np.any(np.asarray(drop) > 0) and (seeds.shape[0] < (m + batch_size - 1) // batch_size
                                         or seeds.shape[1] != n_layers):
        raise ValueError("seeds must be (number of batches, layers)")
    if sync.shape[0] < 17 or partials.shape[0] < 2 * n_threads or not 0 <= tid < n_threads:
        raise ValueError("bad thread arguments")
    # The offsets (kernels/reference/fused.py's epoch_layout); the workspace's from its first 64-byte boundary.
    cdef const int64_t[::1] woff = lay[_ref.LAY_W], boff = lay[_ref.LAY_B], wid = lay[_ref.LAY_WIDTH]
    cdef const int64_t[::1] goff = lay[_ref.LAY_GAMMA], roff = lay[_ref.LAY_RUNNING]
    cdef const int64_t[::1] aoff = lay[_ref.LAY_ALPHA], ld = lay[_ref.LAY_LD], ldm = lay[_ref.LAY_LDM]
    cdef const int64_t[::1] zoff = lay[_ref.LAY_Z], doff = lay[_ref.LAY_D], poff = lay[_ref.LAY_DROP]
    cdef const int64_t[::1] hoff = lay[_ref.LAY_NORM], ioff = lay[_ref.LAY_PRELU], moff = lay[_ref.LAY_MAX]
    # This thread's units of every width w = 0 .. L (``split``): [own0[w], own1[w]). Layer l's own output
    # units are those of width l + 1, its product columns pieces[l] times them, its own rows those of width l.
    own_a = np.array([[_ref.split(sizes[w], t, n_threads) for w in range(n_layers + 1)] for t in (tid, tid + 1)],
                     dtype=np.int64)
    cdef const int64_t[::1] own0 = own_a[0], own1 = own_a[1]
    cdef floating* zs = &shared[0] + (64 - (<size_t>&shared[0]) % 64) % 64 // sizeof(floating)
    cdef floating* rp = &running[0]
    cdef floating keep_scale
    cdef floating* zr
    cdef floating* pr
    cdef floating* mr
    cdef uint64_t seed
    cdef Py_ssize_t batch = 0
    # This thread's own: the gathered batch, its targets, a copy of the output layer and its delta, and
    # its own copies of the parameter, gradient and state layouts. Of the parameters it uses its copy for
    # what it alone reads and writes (its columns of W_0, its share of every bias): written back at the
    # end, they are kept off the cache lines the other threads write (W_0's rows are not line-aligned).
    cdef floating[::1] xbuf = np.empty(batch_size * sizes[0], dtype=dtype)
    cdef floating[::1] ybuf = np.empty(batch_size * n_y, dtype=dtype)
    cdef floating[::1] obuf = np.empty(batch_size * n_y, dtype=dtype)
    cdef floating[::1] dbuf = np.empty(batch_size * n_y, dtype=dtype)
    own_params = np.array(params, dtype=dtype)
    own_state = np.array(state, dtype=dtype)
    cdef floating[::1] qbuf = own_params
    cdef floating[::1] gbuf = np.zeros(max(P, 1), dtype=dtype)
    cdef floating[:, ::1] sbuf = own_state
    cdef floating* xb = &xbuf[0]
    # Batch rows read in place by the hand-written products (no copy) when every layer-0 product uses them.
    cdef bint in_place = fnn_has_avx512() and batch_size <= SMALL_BATCH and gemm_min <= 0
    rows_buf = np.zeros(batch_size, dtype=np.uintp)
    cdef size_t[::1] rows_view = rows_buf
    cdef const floating** xrows = <const floating**>&rows_view[0]
    cdef floating* yb = &ybuf[0]
    cdef floating* ob = &obuf[0]
    cdef floating* pp = &params[0]
    cdef floating* pq = &qbuf[0]
    cdef floating* gq = &gbuf[0]
    cdef floating* s0 = &sbuf[0, 0] if k_state > 0 else NULL
    cdef floating* s1 = &sbuf[1, 0] if k_state > 1 else NULL
    cdef int64_t* sp = &sync[0]
    cdef int64_t sense = 0
    cdef const floating* ain
    cdef floating* delta
    cdef floating* nd
    cdef Py_ssize_t ldd
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
                if in_place:
                    xrows[i] = &x[order[start + i], 0]
                else:
                    memcpy(xb + i * n_in, &x[order[start + i], 0], n_in * sizeof(floating))
                memcpy(yb + i * n_y, &y[order[start + i], 0], n_y * sizeof(floating))
            if start + nb < m and batch_size <= 32:  # (large batches would evict this one)
                at = min(batch_size, m - start - nb)
                fnn_prefetch_rows(<const char*>&x[0, 0], &order[start + nb], at, n_in * sizeof(floating))
                fnn_prefetch_rows(<const char*>&y[0, 0], &order[start + nb], at, n_y * sizeof(floating))
            # Forward: this thread's columns of every layer, then wait for the others' columns.
            for l in range(n_layers):
                n_in = sizes[l]
                n_out = wid[l]
                kp = pieces[l]
                ain = xb if l == 0 else zs + zoff[l - 1]
                u0 = own0[l + 1]  # this thread's units
                u1 = own1[l + 1]
                c0 = kp * u0  # and their product columns
                c1 = kp * u1
                zr = zs + (moff[l] if kp > 1 else zoff[l])  # where the product goes
                at = ldm[l] if kp > 1 else ld[l + 1]
                if l == 0 and in_place:
                    _rows_product(False, nb, c1 - c0, n_in, 1, xrows, pq + woff[0] + c0, n_out, 0, zr + c0, at)
                else:
                    _gemm(False, False, nb, c1 - c0, n_in, 1, ain, ld[l], (pq if l == 0 else pp) + woff[l] + c0,
                          n_out, 0, zr + c0, at, gemm_min)
                # (the output layer's bias too, before the barrier: its owner updates it after)
                if kp == 1 and goff[l] < 0 and acts[l] != PRELU:  # bias and activation in one pass
                    _bias_act(zr, pq + boff[l], nb, at, c0, c1, acts[l] if l < n_layers - 1 else IDENTITY,
                              <floating>slopes[l])
                else:  # bias, then maxout or batch norm, then the activation
                    _bias_act(zr, pq + boff[l], nb, at, c0, c1, IDENTITY, 0)
                    if kp > 1:
                        _maxout_columns(zr, at, zs + zoff[l], ld[l + 1], nb, u0, u1, kp)
                    if goff[l] >= 0:
                        _bn_forward(zr, nb, at, c0, c1, pq + goff[l], pq + goff[l] + n_out, rp + roff[l],
                                    rp + roff[l] + n_out, <floating>norm[l, 0], <floating>norm[l, 1], zs + hoff[l],
                                    zs + hoff[l] + batch_size * at)
                    if acts[l] == PRELU:
                        _prelu_columns(zs + zoff[l], zs + ioff[l], pq + aoff[l], nb, ld[l + 1], u0, u1)
                    else:
                        _act_columns(zs + zoff[l], nb, ld[l + 1], u0, u1, acts[l], <floating>slopes[l])
                n_out = sizes[l + 1]
                c0 = u0
                c1 = u1
                if drop[l] > 0:  # inverted dropout of this thread's columns (kernels/reference/dropout.py)
                    keep_scale = <floating>(1.0 / (1.0 - drop[l]))
                    seed = <uint64_t>seeds[batch, l]
                    for i in range(nb):
                        zr = zs + zoff[l] + i * ld[l + 1]
                        pr = zs + poff[l] + i * ld[l + 1]
                        mr = pr + batch_size * ld[l + 1]
                        for j in range(c0, c1):
                            pr[j] = zr[j]
                            mr[j] = keep_scale if fnn_splitmix_uniform(
                                seed, <uint64_t>(i * n_out + j + 1)) >= drop[l] else 0
                            zr[j] = zr[j] * mr[j]
                if fnn_barrier(sp, n_threads, &sense):
                    break
            if sp[16]:
                break
            # The whole output layer in every thread (a few hundred values): no barrier needed after it.
            for i in range(nb):
                memcpy(ob + i * n_y, zs + zoff[n_layers - 1] + i * ld[n_layers], n_y * sizeof(floating))
            right = 0
            value = _output(ob, yb, nb, n_y, acts[n_layers - 1], loss, &dbuf[0], loss_eps, &right) / nb
            # The batch's objective as fit reports it: mean data loss plus the penalties at these weights
            # (known only after the penalty pass below; without penalties, checked before any update).
            if not penalized and not isfinite(value):
                break  # this batch is not applied; the caller reports divergence at batch `updates`
            delta = &dbuf[0]
            ldd = n_y
            for l in range(n_layers - 1, -1, -1):
                n_in = sizes[l]
                n_out = wid[l]
                c0 = pieces[l] * own0[l + 1]
                c1 = pieces[l] * own1[l + 1]
                for j in range(c0, c1):
                    gq[boff[l] + j] = 0
                for i in range(nb):
                    for j in range(c0, c1):
                        gq[boff[l] + j] = gq[boff[l] + j] + delta[i * ldd + j]
                if l == 0 and in_place:  # weights by columns: the ones this thread's forward used
                    _rows_product(True, n_in, c1 - c0, nb, -lr if fold else 1, xrows, delta + c0, ldd,
                                  1 if fold else 0, (pq if fold else gq) + woff[0] + c0, n_out)
                elif l == 0:
                    if fold:
                        _gemm(True, False, n_in, c1 - c0, nb, -lr, xb, n_in, delta + c0, ldd, 1,
                              pq + woff[0] + c0, n_out, gemm_min)
                    else:
                        _gemm(True, False, n_in, c1 - c0, nb, 1, xb, n_in, delta + c0, ldd, 0,
                              gq + woff[0] + c0, n_out, gemm_min)
                else:  # weights by rows: this thread's units of the layer below, whose delta it computes
                    ain = zs + zoff[l - 1]
                    nd = zs + doff[l]
                    r0 = own0[l]
                    r1 = own1[l]
                    # the delta below, from W before this step updates it
                    _gemm(False, True, nb, r1 - r0, n_out, 1, delta, ldd, pp + woff[l] + r0 * n_out, n_out, 0,
                          nd + r0, ld[l], gemm_min)
                    if fold:
                        _gemm(True, False, r1 - r0, n_out, nb, -lr, ain + r0, ld[l], delta, ldd, 1,
                              pp + woff[l] + r0 * n_out, n_out, gemm_min)
                    else:
                        _gemm(True, False, r1 - r0, n_out, nb, 1, ain + r0, ld[l], delta, ldd, 0,
                              gq + woff[l] + r0 * n_out, n_out, gemm_min)
                    if drop[l - 1] > 0:  # through the dropout, then f' at the activations before it
                        for i in range(nb):
                            mr = zs + poff[l - 1] + (batch_size + i) * ld[l]
                            for j in range(r0, r1):
                                nd[i * ld[l] + j] = nd[i * ld[l] + j] * mr[j]
                        ain = zs + poff[l - 1]
                    if acts[l - 1] == PRELU:
                        _prelu_backward(zs + ioff[l - 1], nd, pq + aoff[l - 1], gq + aoff[l - 1], nb, ld[l], r0, r1)
                        if fold:
                            for j in range(r0, r1):
                                pq[aoff[l - 1] + j] = pq[aoff[l - 1] + j] - lr * gq[aoff[l - 1] + j]
                    else:
                        _act_backward(ain, nd, nb, ld[l], r0, r1, acts[l - 1], <floating>slopes[l - 1])
                    if goff[l - 1] >= 0:  # through the batch norm: dC/dz, and gamma's and beta's gradients
                        _bn_backward(nd, nb, ld[l], r0, r1, zs + hoff[l - 1], zs + hoff[l - 1] + batch_size * ld[l],
                                     pq + goff[l - 1], gq + goff[l - 1], gq + goff[l - 1] + n_in)
                        if fold:
                            for j in range(r0, r1):
                                pq[goff[l - 1] + j] = pq[goff[l - 1] + j] - lr * gq[goff[l - 1] + j]
                                at = goff[l - 1] + n_in + j  # beta
                                pq[at] = pq[at] - lr * gq[at]
                    if pieces[l - 1] > 1:  # to the winning product columns: the Maxout layer's delta
                        _maxout_backward(zs + moff[l - 1], ldm[l - 1], nd, ld[l], nb, r0, r1, pieces[l - 1])
                        delta = zs + moff[l - 1]
                        ldd = ldm[l - 1]
                    else:
                        delta = nd
                        ldd = ld[l]
                if fold:
                    for j in range(c0, c1):
                        pq[boff[l] + j] = pq[boff[l] + j] - lr * gq[boff[l] + j]
                if l >= 2 and fnn_barrier(sp, n_threads, &sense):  # rows of the next layer need all of D_l
                    break
            if sp[16]:
                break
            if penalized:
                squares = 0
                absolute = 0
                for l in range(n_layers):
                    n_in = sizes[l]
                    n_out = wid[l]
                    if l == 0:
                        c0 = pieces[0] * own0[1]
                        c1 = pieces[0] * own1[1]
                        for i in range(n_in):
                            _penalize(pq, gq, woff[0] + i * n_out + c0, woff[0] + i * n_out + c1, l2c, l1c,
                                      l2, l1, &squares, &absolute)
                    else:
                        r0 = own0[l]
                        r1 = own1[l]
                        _penalize(pp, gq, woff[l] + r0 * n_out, woff[l] + r1 * n_out, l2c, l1c, l2, l1,
                                  &squares, &absolute)
                partials[2 * tid] = squares
                partials[2 * tid + 1] = absolute
                if fnn_barrier(sp, n_threads, &sense):
                    break
                squares = 0
                absolute = 0
                for t in range(n_threads):
                    squares += partials[2 * t]
                    absolute += partials[2 * t + 1]
                if l2 != 0:
                    value += l2 / 2 * squares
                if l1 != 0:
                    value += l1 * absolute
                if not isfinite(value):
                    break
            total += value * nb
            correct += right
            batch += 1
            step += 1
            updates += 1
            start += nb
            if fold:
                continue
            if opt == ADAM:
                step_size = <floating>(hyper[0] / (1 - pow(hyper[2], <double>step)))
                bc2 = <floating>sqrt(1 - pow(hyper[3], <double>step))
            for l in range(n_layers):
                n_in = sizes[l]
                n_out = wid[l]
                u0 = own0[l + 1]
                u1 = own1[l + 1]
                c0 = pieces[l] * u0
                c1 = pieces[l] * u1
                if l > 0:
                    r0 = own0[l]
                    r1 = own1[l]
                    _step_range(pp, gq, s0, s1, woff[l] + r0 * n_out, woff[l] + r1 * n_out, opt, lr, mu, wd,
                                b1, b2, om_b1, om_b2, step_size, bc2, eps)
                elif c1 - c0 == n_out:
                    _step_range(pq, gq, s0, s1, woff[0], boff[0], opt, lr, mu, wd, b1, b2, om_b1, om_b2,
                                step_size, bc2, eps)
                else:
                    for i in range(n_in):
                        _step_range(pq, gq, s0, s1, woff[0] + i * n_out + c0, woff[0] + i * n_out + c1, opt, lr,
                                    mu, wd, b1, b2, om_b1, om_b2, step_size, bc2, eps)
                _step_range(pq, gq, s0, s1, boff[l] + c0, boff[l] + c1, opt, lr, mu, wd, b1, b2, om_b1, om_b2,
                            step_size, bc2, eps)
                if goff[l] >= 0:  # (never on a Maxout layer: c0, c1, n_out count units)
                    _step_range(pq, gq, s0, s1, goff[l] + c0, goff[l] + c1, opt, lr, mu, wd, b1, b2, om_b1, om_b2,
                                step_size, bc2, eps)
                    _step_range(pq, gq, s0, s1, goff[l] + n_out + c0, goff[l] + n_out + c1, opt, lr, mu, wd, b1,
                                b2, om_b1, om_b2, step_size, bc2, eps)
                if aoff[l] >= 0:
                    _step_range(pq, gq, s0, s1, aoff[l] + u0, aoff[l] + u1, opt, lr, mu, wd, b1, b2, om_b1, om_b2,
                                step_size, bc2, eps)
        fnn_set_fpmode(fpmode)
        # Write back what this thread owned: its parameters kept in its own copy, its share of the state.
        for l in range(n_layers):
            n_in = sizes[l]
            n_out = wid[l]
            u0 = own0[l + 1]
            u1 = own1[l + 1]
            c0 = pieces[l] * u0
            c1 = pieces[l] * u1
            if l == 0:
                for i in range(n_in):
                    _copy_range(pq, pp, woff[0] + i * n_out + c0, woff[0] + i * n_out + c1)
                    for t in range(k_state):
                        _copy_range(&sbuf[t, 0], &state[t, 0], woff[0] + i * n_out + c0, woff[0] + i * n_out + c1)
            else:
                r0 = own0[l]
                r1 = own1[l]
                for t in range(k_state):
                    _copy_range(&sbuf[t, 0], &state[t, 0], woff[l] + r0 * n_out, woff[l] + r1 * n_out)
            _copy_range(pq, pp, boff[l] + c0, boff[l] + c1)
            for t in range(k_state):
                _copy_range(&sbuf[t, 0], &state[t, 0], boff[l] + c0, boff[l] + c1)
            if goff[l] >= 0:  # gamma, then beta
                _copy_range(pq, pp, goff[l] + c0, goff[l] + c1)
                _copy_range(pq, pp, goff[l] + n_out + c0, goff[l] + n_out + c1)
                for t in range(k_state):
                    _copy_range(&sbuf[t, 0], &state[t, 0], goff[l] + c0, goff[l] + c1)
                    _copy_range(&sbuf[t, 0], &state[t, 0], goff[l] + n_out + c0, goff[l] + n_out + c1)
            if aoff[l] >= 0:  # PReLU's alpha
                _copy_range(pq, pp, aoff[l] + u0, aoff[l] + u1)
                for t in range(k_state):
                    _copy_range(&sbuf[t, 0], &state[t, 0], aoff[l] + u0, aoff[l] + u1)
    return total, correct, updates, value


def train_epoch(x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min,
                n_threads=1, drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None):
    """Train one epoch in place; return ``(objective_sum, n_correct, n_updates, last_objective)``.

    The same arguments and results as kernels/reference/fused.py's ``train_epoch``; ``n_threads`` > 1
    splits each batch across that many threads (its "Threads").
    """
    return _workers.run_epoch(train_epoch_worker, x, y, order, params, state, sizes, acts, loss, opt, hyper,
                              batch_size, step, gemm_min, n_threads, drop, seeds, norm, running, slopes, pieces)
