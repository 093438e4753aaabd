# Activations as block kernels, each formula written once: activations.pyx's public kernels call them on a
# whole array, fused.pyx on its share of a layer's columns (and losses.pyx's output_block on the output).
# Needs _common.pxi and _constants.pxi included first.
#
# A block is given by a pointer to its array's first row, that array's row length (ld), the rows nb and
# the columns c0 .. c1: element (i, j) is at i * ld + j. Blocks whose rows lie back to back are treated as
# one long row. The transcendental activations (sigmoid, tanh, softplus, exp) go through the CPU-dispatched
# whole-row loops of _common.pxi (and the float32 tanh below), a bias being added in a first pass over the
# row; the others are single loops that GCC vectorizes.

cdef extern from *:
    """
    /* float32 tanh. vtanh's float formula computes an exp and a polynomial and selects, ~3x the time of
       NumPy's SIMD tanh; this one is a single branch-free formula. With t = 2 tanh(|x| / 2), the doubling
       formula gives tanh|x| = t / (1 + v), v = (t / 2)^2, and damps the error of t by 1 / cosh x, so t
       needs only a low-degree rational: t = |x| + |x| s K(s), s = x^2, K a (2, 3) minimax rational (error
       of t after the damping below 8e-9 relative; fitted for this file). The quotient is taken as t - a v,
       a = t / (1 + v), so that the rounding of 1 + v only reaches a small term. Two divisions and ~16
       other operations, no table: GCC vectorizes the loop. At |x| >= 9.010914 (and +-inf) tanh rounds to
       1, where the formula is not used (it would be NaN at inf). NaN propagates; the sign is copied last
       (tanh(-0) = -0); a tiny x gives x exactly. Exhaustively over float32: at most 1.78 ulp from the
       exact value with FMA, 1.93 without (NumPy's: 1.37). */
    #define FNN_TANHF_BODY(MADD)                                                                        \
        float ax = fabsf(x), s = ax * ax;                                                               \
        float k = MADD(MADD(-1.2288806e-06f, s, -0.0010923006f), s, -0.0833333f)                        \
                  / MADD(MADD(MADD(1.2288806e-06f, s, 0.001206553f), s, 0.113107175f), s, 1.0f);        \
        float t = MADD(ax * s, k, ax), q = 0.25f * t, v = q * t;                                        \
        float a = t / MADD(q, t, 1.0f);                                                                 \
        return copysignf(ax >= 9.010914f ? 1.0f : MADD(-a, v, t), x);
    #define FNN_MADDF_FUSED(a, b, c) __builtin_fmaf((a), (b), (c))
    #define FNN_MADDF_PLAIN(a, b, c) ((a) * (b) + (c))
    static inline float fnn_tanhf_fused(float x) { FNN_TANHF_BODY(FNN_MADDF_FUSED) }
    static inline float fnn_tanhf_plain(float x) { FNN_TANHF_BODY(FNN_MADDF_PLAIN) }

    /* With FMA (fewer operations, one rounding per a * b + c) on the CPUs that have it, picked at run
       time: AVX-512 (16 lanes) or AVX2; elsewhere, and under FASTNN_PORTABLE=1, the baseline loop
       without FMA (fp-contract=off, see _common.pxi), whose results differ from the FMA ones by an ulp at
       times. */
    #ifdef FNN_HAS_CLONES
    __attribute__((target("avx512f,fma"))) static void fnn_tanhf_avx512(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_fused(z[i]);
    }
    __attribute__((target("avx2,fma"))) static void fnn_tanhf_avx2(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_fused(z[i]);
    }
    #endif

    static void fnn_tanhf_baseline(const float *z, float *out, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) out[i] = fnn_tanhf_plain(z[i]);
    }

    /* The loop for this CPU and FASTNN_PORTABLE (read when the module loaded), chosen at the first call. */
    typedef void (*fnn_tanhf_loop)(const float *, float *, Py_ssize_t);
    static fnn_tanhf_loop fnn_tanhf_choose(void) {
    #ifdef FNN_HAS_CLONES
        if (!fnn_portable()) {
            __builtin_cpu_init();
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
                return fnn_tanhf_avx512;
            if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                return fnn_tanhf_avx2;
        }
    #endif
        return fnn_tanhf_baseline;
    }

    static fnn_tanhf_loop fnn_tanhf_array_loop = NULL;

    static void fnn_tanhf_array(const float *z, float *out, Py_ssize_t n) {
        if (fnn_tanhf_array_loop == NULL) fnn_tanhf_array_loop = fnn_tanhf_choose();
        fnn_tanhf_array_loop(z, out, n);
    }

    /* Which loop runs: 0 baseline, 1 AVX2 + FMA, 2 AVX-512 + FMA. */
    FNN_UNUSED static int fnn_tanhf_path(void) {
        fnn_tanhf_loop loop = fnn_tanhf_choose();
    #ifdef FNN_HAS_CLONES
        if (loop == fnn_tanhf_avx512) return 2;
        if (loop == fnn_tanhf_avx2) return 1;
    #endif
        return 0;
    }
    """
    void fnn_tanhf_array(const float*, float*, Py_ssize_t) noexcept nogil
    int fnn_tanhf_path() noexcept nogil


cdef inline void tanh_any(const floating* z, floating* out, Py_ssize_t n) noexcept nogil:
    """out = tanh(z) over n contiguous elements (out may be z): the float32 rational above, _common.pxi's
    tanh in float64."""
    if floating is float:
        fnn_tanhf_array(z, out, n)
    else:
        tanh_array(z, out, n)


cdef inline double softplus_slope(double a) noexcept nogil:
    """softplus'(z) = sigmoid(z) from the output a = softplus(z) > 0, in float64: 1 - exp(-a), or its series
    a (1 - a/2 + a^2/6) below 2^-10, where 1 - exp(-a) would cancel."""
    return vsel(a < 0.0009765625, a * (1.0 - a * (0.5 - a / 6.0)), 1.0 - fnn_exp(-a))


cdef void act_block(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd, Py_ssize_t nb,
                    Py_ssize_t c0, Py_ssize_t c1, long act, floating slope, const floating* bias) noexcept nogil:
    """dst = f(src (+ bias[c0:c1] when bias is not NULL)) on the block (dst may be src): IDENTITY, SIGMOID,
    TANH, RELU (max(v, 0), as np.maximum: NaN stays, -0.0 gives 0), LEAKY_RELU (``slope``), SOFTPLUS
    (max(v, 0) + log1p(exp(-|v|))) or EXP (e^v: inf past the dtype's range, as np.exp)."""
    cdef Py_ssize_t i, j, w = c1 - c0
    cdef bint has_bias = bias != NULL
    cdef const floating* s
    cdef const floating* b = bias + c0 if has_bias else NULL
    cdef floating* d
    cdef floating v
    if w <= 0 or nb <= 0:
        return
    if not has_bias and lds == w and ldd == w:
        w *= nb
        nb = 1
    for i in range(nb):
        s = src + i * lds + c0
        d = dst + i * ldd + c0
        if act == SIGMOID or act == TANH or act == SOFTPLUS or act == EXP:
            if has_bias:
                for j in range(w):
                    d[j] = s[j] + b[j]
                s = d
            if act == SIGMOID:
                sigmoid_array(s, d, w)
            elif act == TANH:
                tanh_any(s, d, w)
            elif act == SOFTPLUS:
                softplus_array(s, d, w)
            else:  # softmax's exp loop: v - 0 is v exactly (-0, inf and NaN too), so this is e^v
                exp_shift_array(s, 0, d, w)
        elif act == RELU:
            for j in range(w):
                v = s[j] + b[j] if has_bias else s[j]
                d[j] = 0 if v <= 0 else v
        elif act == LEAKY_RELU:
            for j in range(w):
                v = s[j] + b[j] if has_bias else s[j]
                d[j] = v if v > 0 else slope * v  # NaN stays NaN
        else:
            for j in range(w):
                d[j] = s[j] + b[j] if has_bias else s[j]


cdef void act_backward_block(const floating* src, Py_ssize_t lds, const floating* d, Py_ssize_t ldd,
                             floating* out, Py_ssize_t ldo, Py_ssize_t nb, Py_ssize_t c0, Py_ssize_t c1, long act,
                             floating slope) noexcept nogil:
    """out = d * f' on the block (out may be d): f' from the output a = src for SIGMOID (a (1 - a)), TANH
    (1 - a^2), SOFTPLUS (``softplus_slope``, the product in float64, rounded once) and EXP (a itself); for
    RELU and LEAKY_RELU src may be z or (slope >= 0) a, which are > 0 at the same places."""
    cdef Py_ssize_t i, j, w = c1 - c0
    cdef const floating* s
    cdef const floating* di
    cdef floating* o
    cdef floating v, g
    if w <= 0 or nb <= 0:
        return
    if lds == w and ldd == w and ldo == w:
        w *= nb
        nb = 1
    for i in range(nb):
        s = src + i * lds + c0
        di = d + i * ldd + c0
        o = out + i * ldo + c0
        if act == SIGMOID:
            for j in range(w):
                v = s[j]
                o[j] = di[j] * (v * (<floating>1 - v))
        elif act == TANH:
            for j in range(w):
                v = s[j]
                o[j] = di[j] * (<floating>1 - v * v)
        elif act == RELU:
            for j in range(w):
                g = di[j]  # loaded unconditionally, so the select vectorizes
                o[j] = g if s[j] > 0 else 0
        elif act == LEAKY_RELU:
            for j in range(w):
                g = di[j]
                o[j] = g if s[j] > 0 else slope * g
        elif act == SOFTPLUS:
            for j in range(w):
                o[j] = <floating>(<double>di[j] * softplus_slope(s[j]))
        elif act == EXP:
            for j in range(w):
                o[j] = di[j] * s[j]
        elif o != di:
            for j in range(w):
                o[j] = di[j]


cdef void prelu_block(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd, Py_ssize_t nb,
                      Py_ssize_t c0, Py_ssize_t c1, const floating* alpha) noexcept nogil:
    """dst = PReLU(src) on the block: src where src > 0, else alpha[j] * src (src may be dst; NaN stays NaN,
    as np.where(z > 0, z, alpha z))."""
    cdef Py_ssize_t i, j
    cdef const floating* s
    cdef floating* d
    cdef floating v, av
    for i in range(nb):
        s = src + i * lds
        d = dst + i * ldd
        for j in range(c0, c1):
            v = s[j]
            av = alpha[j] * v  # (computed unconditionally, so the select vectorizes)
            d[j] = v if v > 0 else av


cdef void prelu_backward_block(const floating* z, Py_ssize_t ldz, const floating* d, Py_ssize_t ldd,
                               floating* out, Py_ssize_t ldo, Py_ssize_t nb, Py_ssize_t c0, Py_ssize_t c1,
                               const floating* alpha, floating* dalpha) noexcept nogil:
    """out = dC/dz from d = dC/da of PReLU's input z on the block (out may be d); dalpha[c0:c1] = the sum
    over the rows, in order, of d * z where z <= 0 (a NaN z takes d and adds nothing, as the reference)."""
    cdef Py_ssize_t i, j
    cdef const floating* zi
    cdef const floating* di
    cdef floating* o
    cdef floating v, g, ag, gv
    for j in range(c0, c1):
        dalpha[j] = 0
    for i in range(nb):
        zi = z + i * ldz
        di = d + i * ldd
        o = out + i * ldo
        for j in range(c0, c1):
            v = zi[j]
            g = di[j]
            ag = alpha[j] * g
            gv = g * v
            dalpha[j] += gv if v <= 0 else 0
            o[j] = ag if v <= 0 else g


cdef inline Py_ssize_t winner(const floating* g, Py_ssize_t k) noexcept nogil:
    """Index of the largest of g[0:k], the first on ties; the first NaN if any (as np.argmax)."""
    cdef Py_ssize_t p, best = 0
    for p in range(1, k):
        if g[p] > g[best] or (g[p] != g[p] and g[best] == g[best]):
            best = p
    return best


cdef void maxout_block(const floating* pre, Py_ssize_t ldp, floating* out, Py_ssize_t ldo, Py_ssize_t nb,
                       Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t k, int64_t* idx) noexcept nogil:
    """out[:, u0:u1] = the max of each unit's k adjacent columns of pre; the winners go to idx (rows of ldo)
    unless it is NULL."""
    cdef Py_ssize_t i, j, won
    for i in range(nb):
        for j in range(u0, u1):
            won = winner(pre + i * ldp + j * k, k)
            out[i * ldo + j] = pre[i * ldp + j * k + won]
            if idx != NULL:
                idx[i * ldo + j] = won


cdef void maxout_backward_block(const floating* d, Py_ssize_t ldd, floating* out, Py_ssize_t ldp, Py_ssize_t nb,
                                Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t k, const floating* won_from,
                                const int64_t* idx) noexcept nogil:
    """Route dC/da of units u0:u1 (d) to their winning columns of out (rows of ldp; the others 0): the winner
    is idx[i * ldd + j], or, when won_from is not NULL, found again from the product kept there (then out
    may be won_from: the product is overwritten by its delta)."""
    cdef Py_ssize_t i, j, p, won
    cdef floating* g
    cdef floating dj
    for i in range(nb):
        for j in range(u0, u1):
            won = winner(won_from + i * ldp + j * k, k) if won_from != NULL else idx[i * ldd + j]
            g = out + i * ldp + j * k
            dj = d[i * ldd + j]
            for p in range(k):
                g[p] = dj if p == won else 0
