# Shared by the Cython kernels through `include "_common.pxi"` (a .pxd cannot be cimported here: the
# modules are built as fastnn._kernels.cython.* from kernels/cython/, so Cython cannot find it by name).
#
# What is here, and why:
# - exp, log1p on [0, 1], tanh and sigmoid as branch-free C so that GCC vectorizes the loops that call
#   them. libm's expf is one call per element and was 8x slower than NumPy's SIMD exp on 128 x 784
#   float32. They are Cephes' approximations (Moshier), within 2.3 ulp (measured), with exact handling
#   of -inf (0), +inf (inf), NaN (NaN), overflow and subnormal results. The whole-array loops over them
#   are also compiled for AVX2 and AVX-512 and picked by the CPU at load time (bit-identical results;
#   FASTNN_PORTABLE=1 keeps the SSE2 baseline, see cpu_dispatch.h and `simd_path()` below).
# - row sums with 8 accumulators (as NumPy's pairwise sum does inside a block): float32 rows are summed
#   in float64. Row maxima with 8 lanes. Column sums are plain loops over rows, which is NumPy's order.
# - a row-major GEMM on SciPy's column-major BLAS.
#
# Pitfall: Cython writes an integer literal next to a float as a C double (`1 - a` becomes `1.0 - a`),
# which silently computes float32 kernels in float64. Write `<floating>1 - a` in float arithmetic.
from cython cimport floating
# (No libc exp: the kernels take fnn_exp below, and activations.pyx's public ``exp`` has the name.)
from libc.math cimport INFINITY, expf, fabs, fabsf, log, log1p, log1pf, logf, sqrt, sqrtf
from libc.stdint cimport int64_t, uint64_t
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef enum:
    BLOCK = 256  # float64 terms buffered on the stack by loss sums, then summed with fnn_sum

cdef extern from *:
    """
    /* Value-safe code-generation settings for the rest of this module:
       - no-trapping-math (clang's default): without it GCC does not if-convert a select after a float
         compare (which could raise FE_INVALID), so no loop with a select or an exp would vectorize;
       - fp-contract=off: never fuse a * b + c into an FMA, so every build and every CPU (including the
         AVX2/AVX-512 clones below and FASTNN_NATIVE=1 builds) rounds exactly as the reference does.
       (-fno-math-errno, which loops calling sqrt need, only works on the command line.) */
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC optimize ("no-trapping-math", "fp-contract=off")
    #endif
    #include <math.h>
    #include <stdint.h>
    #include <string.h>
    #include "cpu_dispatch.h"

    static inline int32_t fnn_f2i(float f) { int32_t i; memcpy(&i, &f, 4); return i; }
    static inline float fnn_i2f(int32_t i) { float f; memcpy(&f, &i, 4); return f; }
    static inline int64_t fnn_d2i(double d) { int64_t i; memcpy(&i, &d, 8); return i; }
    static inline double fnn_i2d(int64_t i) { double d; memcpy(&d, &i, 8); return d; }

    /* Dropout's counter generator (kernels/reference/dropout.py): u_i in [0, 1), the top 53 bits of
       splitmix64(seed + i * golden), i = 1, 2, ... */
    static inline double fnn_splitmix_uniform(uint64_t seed, uint64_t i) {
        uint64_t z = seed + i * UINT64_C(0x9E3779B97F4A7C15);
        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        z = z ^ (z >> 31);
        return (double)(int64_t)(z >> 11) * (1.0 / 9007199254740992.0);  /* < 2^53: exact */
    }

    /* exp(x) = 2^n e^r, n = round(x / ln 2), |r| <= ln2 / 2 (Cephes expf polynomial). n comes from the
       1.5 * 2^23 rounding trick; 2^n is applied as two halves so subnormal results round once, right.
       The clamps keep NaN (comparisons with NaN are false) and send -inf to 0 and +inf to inf. */
    static inline float fnn_expf(float x) {
        x = x < -104.0f ? -104.0f : x;
        x = x > 89.0f ? 89.0f : x;
        float t = x * 1.44269504088896341f + 12582912.0f;
        float n = t - 12582912.0f;
        int32_t ni = fnn_f2i(t) - 0x4B400000;
        float r = x - n * 0.693359375f;
        r = r + n * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        p = p * (r * r) + r + 1.0f;
        int32_t n1 = ni >> 1;
        return (p * fnn_i2f((n1 + 127) << 23)) * fnn_i2f((ni - n1 + 127) << 23);
    }

    /* Double precision: Cephes exp's Pade form 1 + 2 r P(r^2) / (Q(r^2) - r P(r^2)). floor(n / 2) is
       taken with a logical shift of n + 2048 >= 0 (SSE2 has no 64-bit arithmetic shift). */
    static inline double fnn_exp(double x) {
        x = x < -746.0 ? -746.0 : x;
        x = x > 710.0 ? 710.0 : x;
        double t = x * 1.4426950408889634073599 + 6755399441055744.0;
        double n = t - 6755399441055744.0;
        int64_t ni = fnn_d2i(t) - INT64_C(0x4338000000000000);
        double r = x - n * 6.93145751953125e-1;
        r = r - n * 1.42860682030941723212e-6;
        double z = r * r;
        double px = ((1.26177193074810590878e-4 * z + 3.02994407707441961300e-2) * z
                     + 9.99999999999999999910e-1) * r;
        double q = ((3.00198505138664455042e-6 * z + 2.52448340349684104192e-3) * z
                    + 2.27265548208155028766e-1) * z + 2.00000000000000000009e0;
        double e = 1.0 + 2.0 * (px / (q - px));
        int64_t n1 = (int64_t)((uint64_t)(ni + 2048) >> 1) - 1024;
        return (e * fnn_i2d((int64_t)((uint64_t)(n1 + 1023) << 52)))
               * fnn_i2d((int64_t)((uint64_t)(ni - n1 + 1023) << 52));
    }

    /* log(1 + x) for 0 <= x <= 1 (softplus and BCE-with-logits take it of exp(-|z|)):
       2 atanh(s), s = x / (2 + x) <= 1/3, by its series; truncation below half an ulp. */
    static inline float fnn_log1p_unitf(float x) {
        float s = x / (2.0f + x);
        float w = s * s;
        float p = 1.0f / 13.0f;
        p = p * w + 1.0f / 11.0f;
        p = p * w + 1.0f / 9.0f;
        p = p * w + 1.0f / 7.0f;
        p = p * w + 1.0f / 5.0f;
        p = p * w + 1.0f / 3.0f;
        return 2.0f * (s + s * (w * p));
    }

    static inline double fnn_log1p_unit(double x) {
        double s = x / (2.0 + x);
        double w = s * s;
        double p = 1.0 / 31.0;
        p = p * w + 1.0 / 29.0;
        p = p * w + 1.0 / 27.0;
        p = p * w + 1.0 / 25.0;
        p = p * w + 1.0 / 23.0;
        p = p * w + 1.0 / 21.0;
        p = p * w + 1.0 / 19.0;
        p = p * w + 1.0 / 17.0;
        p = p * w + 1.0 / 15.0;
        p = p * w + 1.0 / 13.0;
        p = p * w + 1.0 / 11.0;
        p = p * w + 1.0 / 9.0;
        p = p * w + 1.0 / 7.0;
        p = p * w + 1.0 / 5.0;
        p = p * w + 1.0 / 3.0;
        return 2.0 * (s + s * (w * p));
    }

    /* tanh(|x|): Cephes' odd polynomial (float) / rational (double) below 0.625, else
       (e - 1) / (e + 1) with e = exp(2|x|), |x| clamped where tanh rounds to 1 (so e stays finite);
       the rational's and the quotient's numerators and denominators are selected first, so there is
       one division. x's sign is copied last (tanh(-0.0) = -0.0, NaN stays NaN). */
    static inline float fnn_tanhf(float x) {
        float ax = fabsf(x);
        float z = x * x;
        float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                        + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * ax + ax;
        float e = fnn_expf(2.0f * (ax > 10.0f ? 10.0f : ax));
        float big = (e - 1.0f) / (e + 1.0f);
        return copysignf(ax < 0.625f ? small : big, x);
    }

    static inline double fnn_tanh(double x) {
        double ax = fabs(x);
        double s = x * x;
        double p = (-9.64399179425052238628e-1 * s - 9.92877231001918586564e1) * s - 1.61468768441708447952e3;
        double q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s
                   + 4.84406305325125486048e3;
        double e = fnn_exp(2.0 * (ax > 20.0 ? 20.0 : ax));
        int sm = ax < 0.625;
        double num = sm ? ax * q + ax * s * p : e - 1.0;
        double den = sm ? q : e + 1.0;
        return copysign(num / den, x);
    }

    /* c ? a : b on values already computed: a select GCC vectorizes (a Cython conditional expression
       becomes an if/else whose loads and products only happen in one arm, which it does not). */
    static inline float fnn_self(int c, float a, float b) { return c ? a : b; }
    static inline double fnn_seld(int c, double a, double b) { return c ? a : b; }

    /* 1 / (1 + exp(-z)) as the reference: e = exp(-|z|), then 1/(1+e) or e/(1+e); one division. */
    static inline float fnn_sigmoidf(float z) {
        float e = fnn_expf(-fabsf(z));
        return (z >= 0.0f ? 1.0f : e) / (1.0f + e);
    }

    static inline double fnn_sigmoid(double z) {
        double e = fnn_exp(-fabs(z));
        return (z >= 0.0 ? 1.0 : e) / (1.0 + e);
    }

    /* Whole-array loops of the transcendental kernels, compiled for the x86-64 baseline (SSE2),
       x86-64-v3 (AVX2) and x86-64-v4 (AVX-512) and chosen by the CPU when the module loads
       (FNN_MULTIVERSION, cpu_dispatch.h; the baseline on any CPU under FASTNN_PORTABLE=1).
       The same operations run in the same order in every version, without FMA (fp-contract=off
       above), so all give bit-identical results; the wide ones are 3-5x faster. */
    #define FNN_ARRAY_KERNELS(T, S, EXP, SIGMOID, TANH, LOG1P_UNIT, ABS)                                  \
    /* out = exp(z - shift) */                                                                          \
    FNN_MULTIVERSION(fnn_exp_shift_##S, (const T *z, T shift, T *out, Py_ssize_t n), (z, shift, out, n), \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = EXP(z[i] - shift);)                                 \
    FNN_MULTIVERSION(fnn_sigmoid_##S, (const T *z, T *out, Py_ssize_t n), (z, out, n),                  \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = SIGMOID(z[i]);)                                     \
    /* out = da * sigmoid(z) */                                                                         \
    FNN_MULTIVERSION(fnn_mul_sigmoid_##S, (const T *da, const T *z, T *out, Py_ssize_t n), (da, z, out, n), \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = da[i] * SIGMOID(z[i]);)                             \
    FNN_MULTIVERSION(fnn_tanh_##S, (const T *z, T *out, Py_ssize_t n), (z, out, n),                     \
        for (Py_ssize_t i = 0; i < n; i++) out[i] = TANH(z[i]);)                                        \
    /* out = max(z, 0) + log1p(exp(-|z|)) */                                                            \
    FNN_MULTIVERSION(fnn_softplus_##S, (const T *z, T *out, Py_ssize_t n), (z, out, n),                 \
        for (Py_ssize_t i = 0; i < n; i++) {                                                            \
            T v = z[i];                                                                                 \
            out[i] = (v > 0 ? v : (T)0) + LOG1P_UNIT(EXP(-ABS(v)));                                     \
        })

    FNN_ARRAY_KERNELS(float, f, fnn_expf, fnn_sigmoidf, fnn_tanhf, fnn_log1p_unitf, fabsf)
    FNN_ARRAY_KERNELS(double, d, fnn_exp, fnn_sigmoid, fnn_tanh, fnn_log1p_unit, fabs)

    /* Row reductions over a contiguous row of k >= 0 (max: k >= 1) elements. The sums are in float64, of
       TERM(j) in eight running sums combined ((0 + 1) + (2 + 3)) + ((4 + 5) + (6 + 7)), then the last k % 8
       (one chain of float64 adds would take 4 cycles a term); float32 products are exact in double. */
    #define FNN_ROW_SUM(TERM) \
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0; \
        Py_ssize_t j = 0; \
        for (; j + 8 <= k; j += 8) { \
            a0 += TERM(j); a1 += TERM(j + 1); a2 += TERM(j + 2); a3 += TERM(j + 3); \
            a4 += TERM(j + 4); a5 += TERM(j + 5); a6 += TERM(j + 6); a7 += TERM(j + 7); \
        } \
        double s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)); \
        for (; j < k; j++) s += TERM(j); \
        return s;
    #define FNN_VALUE(j) ((double)p[j])
    #define FNN_ABS_VALUE(j) fabs((double)p[j])
    #define FNN_PRODUCT(j) ((double)a[j] * b[j])
    static inline double fnn_sumf(const float *p, Py_ssize_t k) { FNN_ROW_SUM(FNN_VALUE) }
    static inline double fnn_sum(const double *p, Py_ssize_t k) { FNN_ROW_SUM(FNN_VALUE) }
    static inline double fnn_abs_sumf(const float *p, Py_ssize_t k) { FNN_ROW_SUM(FNN_ABS_VALUE) }
    static inline double fnn_abs_sum(const double *p, Py_ssize_t k) { FNN_ROW_SUM(FNN_ABS_VALUE) }
    static inline double fnn_dotf(const float *a, const float *b, Py_ssize_t k) { FNN_ROW_SUM(FNN_PRODUCT) }
    static inline double fnn_dot(const double *a, const double *b, Py_ssize_t k) { FNN_ROW_SUM(FNN_PRODUCT) }

    static inline float fnn_maxf(const float *p, Py_ssize_t k) {
        float m[8];
        Py_ssize_t j = 0, l;
        for (l = 0; l < 8; l++) m[l] = p[0];
        for (; j + 8 <= k; j += 8)
            for (l = 0; l < 8; l++) m[l] = p[j + l] > m[l] ? p[j + l] : m[l];
        for (; j < k; j++) m[0] = p[j] > m[0] ? p[j] : m[0];
        for (l = 1; l < 8; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
        return m[0];
    }

    static inline double fnn_max(const double *p, Py_ssize_t k) {
        double m[8];
        Py_ssize_t j = 0, l;
        for (l = 0; l < 8; l++) m[l] = p[0];
        for (; j + 8 <= k; j += 8)
            for (l = 0; l < 8; l++) m[l] = p[j + l] > m[l] ? p[j + l] : m[l];
        for (; j < k; j++) m[0] = p[j] > m[0] ? p[j] : m[0];
        for (l = 1; l < 8; l++) m[0] = m[l] > m[0] ? m[l] : m[0];
        return m[0];
    }
    """
    int fnn_simd_level() noexcept nogil
    double fnn_splitmix_uniform(uint64_t, uint64_t) noexcept nogil
    float fnn_expf(float) noexcept nogil
    double fnn_exp(double) noexcept nogil
    float fnn_log1p_unitf(float) noexcept nogil
    double fnn_log1p_unit(double) noexcept nogil
    float fnn_tanhf(float) noexcept nogil
    float fnn_sigmoidf(float) noexcept nogil
    float fnn_self(int, float, float) noexcept nogil
    double fnn_seld(int, double, double) noexcept nogil
    double fnn_sigmoid(double) noexcept nogil
    double fnn_tanh(double) noexcept nogil
    void fnn_exp_shift_f(const float*, float, float*, Py_ssize_t) noexcept nogil
    void fnn_exp_shift_d(const double*, double, double*, Py_ssize_t) noexcept nogil
    void fnn_sigmoid_f(const float*, float*, Py_ssize_t) noexcept nogil
    void fnn_sigmoid_d(const double*, double*, Py_ssize_t) noexcept nogil
    void fnn_mul_sigmoid_f(const float*, const float*, float*, Py_ssize_t) noexcept nogil
    void fnn_mul_sigmoid_d(const double*, const double*, double*, Py_ssize_t) noexcept nogil
    void fnn_tanh_f(const float*, float*, Py_ssize_t) noexcept nogil
    void fnn_tanh_d(const double*, double*, Py_ssize_t) noexcept nogil
    void fnn_softplus_f(const float*, float*, Py_ssize_t) noexcept nogil
    void fnn_softplus_d(const double*, double*, Py_ssize_t) noexcept nogil
    double fnn_sumf(const float*, Py_ssize_t) noexcept nogil
    double fnn_sum(const double*, Py_ssize_t) noexcept nogil
    double fnn_abs_sumf(const float*, Py_ssize_t) noexcept nogil
    double fnn_abs_sum(const double*, Py_ssize_t) noexcept nogil
    double fnn_dotf(const float*, const float*, Py_ssize_t) noexcept nogil
    double fnn_dot(const double*, const double*, Py_ssize_t) noexcept nogil
    float fnn_maxf(const float*, Py_ssize_t) noexcept nogil
    double fnn_max(const double*, Py_ssize_t) noexcept nogil


cdef inline floating vsel(bint c, floating a, floating b) noexcept nogil:
    """c ? a : b, both already evaluated: vectorizable (see fnn_self)."""
    if floating is float:
        return fnn_self(c, a, b)
    else:
        return fnn_seld(c, a, b)


cdef inline floating vexp(floating x) noexcept nogil:
    """exp(x), vectorizable, in the precision of x."""
    if floating is float:
        return fnn_expf(x)
    else:
        return fnn_exp(x)


cdef inline floating vlog1p_unit(floating x) noexcept nogil:
    """log(1 + x) for 0 <= x <= 1, vectorizable."""
    if floating is float:
        return fnn_log1p_unitf(x)
    else:
        return fnn_log1p_unit(x)


cdef inline floating vtanh(floating x) noexcept nogil:
    if floating is float:
        return fnn_tanhf(x)
    else:
        return fnn_tanh(x)


cdef inline floating vabs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating vsqrt(floating x) noexcept nogil:
    """Correctly rounded square root in the precision of x (as NumPy's)."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating vlog(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating vsigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)) without overflow, vectorizable, in the reference's order of operations."""
    if floating is float:
        return fnn_sigmoidf(z)
    else:
        return fnn_sigmoid(z)


cdef inline void exp_shift_array(const floating* z, floating shift, floating* out, Py_ssize_t n) noexcept nogil:
    """out = exp(z - shift) over n contiguous elements (SIMD-dispatched)."""
    if floating is float:
        fnn_exp_shift_f(z, shift, out, n)
    else:
        fnn_exp_shift_d(z, shift, out, n)


cdef inline void sigmoid_array(const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fnn_sigmoid_f(z, out, n)
    else:
        fnn_sigmoid_d(z, out, n)


cdef inline void mul_sigmoid_array(const floating* da, const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    """out = da * sigmoid(z)."""
    if floating is float:
        fnn_mul_sigmoid_f(da, z, out, n)
    else:
        fnn_mul_sigmoid_d(da, z, out, n)


cdef inline void tanh_array(const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    if floating is float:
        fnn_tanh_f(z, out, n)
    else:
        fnn_tanh_d(z, out, n)


cdef inline void softplus_array(const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    """out = max(z, 0) + log1p(exp(-|z|))."""
    if floating is float:
        fnn_softplus_f(z, out, n)
    else:
        fnn_softplus_d(z, out, n)


cdef inline double row_sum(const floating* p, Py_ssize_t k) noexcept nogil:
    """Sum of a contiguous row, accumulated in float64."""
    if floating is float:
        return fnn_sumf(p, k)
    else:
        return fnn_sum(p, k)


cdef inline double row_abs_sum(const floating* p, Py_ssize_t k) noexcept nogil:
    """Sum of |p[j]| over a contiguous row, accumulated in float64."""
    if floating is float:
        return fnn_abs_sumf(p, k)
    else:
        return fnn_abs_sum(p, k)


cdef inline double row_dot(const floating* a, const floating* b, Py_ssize_t k) noexcept nogil:
    """Sum of a[j] * b[j] over a row, accumulated in float64."""
    if floating is float:
        return fnn_dotf(a, b, k)
    else:
        return fnn_dot(a, b, k)


cdef inline floating row_max(const floating* p, Py_ssize_t k) noexcept nogil:
    """Maximum of a contiguous row of k >= 1 elements, for shifting the softmax family.

    The fast loop may skip a NaN; that only matters when the result is -inf (any other max makes the
    row's exp sum NaN anyway), so only then is the row scanned for NaN, as the reference's np.max sees it.
    """
    cdef floating m
    cdef Py_ssize_t j
    if floating is float:
        m = fnn_maxf(p, k)
    else:
        m = fnn_max(p, k)
    if m == -INFINITY:
        for j in range(k):
            if p[j] != p[j]:
                return p[j]
    return m


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                         const floating* a, int lda, const floating* b, int ldb, floating beta,
                         floating* c, int ldc) noexcept nogil:
    """Row-major C (m x n) = alpha op(A) op(B) + beta C, where lda/ldb/ldc are row lengths.

    A row-major matrix is its transpose in column-major order, so this asks the column-major BLAS for
    C^T = op(B)^T op(A)^T, i.e. the operands swapped with the same transpose flags.
    """
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef Py_ssize_t i, size
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        # No products: C = beta C (BLAS does the same, but wants leading dimensions >= 1).
        size = <Py_ssize_t>m * n
        for i in range(size):
            c[i] = 0 if beta == 0 else beta * c[i]
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef inline int check_same_2d(Py_ssize_t n1, Py_ssize_t k1, Py_ssize_t n2, Py_ssize_t k2) except -1:
    """Refuse arrays whose shapes differ (a loop over one would read or write past the other)."""
    if n1 != n2 or k1 != k2:
        raise ValueError(f"operands could not be broadcast together with shapes ({n1},{k1}) ({n2},{k2})")
    return 0


cdef inline int check_len(Py_ssize_t got, Py_ssize_t want, str what) except -1:
    if got != want:
        raise ValueError(f"{what} has length {got}, expected {want}")
    return 0


cdef inline int check_labels(const int64_t[::1] labels, Py_ssize_t n, Py_ssize_t k) except -1:
    """labels must be n class indices in [0, k) (they index rows of k columns)."""
    cdef Py_ssize_t i
    check_len(labels.shape[0], n, "labels")
    for i in range(n):
        if labels[i] < 0 or labels[i] >= k:
            raise IndexError(f"label {labels[i]} is out of bounds for {k} classes")
    return 0


SIMD_PATHS = ("baseline", "x86-64-v3", "x86-64-v4")  # by fnn_simd_level(): SSE2, AVX2, AVX-512
fnn_simd_level()  # FASTNN_PORTABLE and the CPU are read once, when the module loads


def simd_path():
    """The element-wise loops this module runs: ``"x86-64-v4"`` (AVX-512), ``"x86-64-v3"`` (AVX2) or
    ``"baseline"`` (SSE2: CPUs without AVX2, non-Linux builds, or FASTNN_PORTABLE=1)."""
    return SIMD_PATHS[fnn_simd_level()]
