# The optimizers' update rules (torch.optim's, kernels/reference/optim.py), the penalties' gradients and the
# sums of squares, as block kernels written once: optim.pyx's public kernels call them on a whole array,
# fused.pyx on the parameters a thread owns. A block is the elements lo + i * stride + j, i < rows, j < width,
# of flat buffers (a block whose rows lie back to back is one row). Every operation is in the parameter
# dtype, in the reference's order, on scalars computed in float64 as the reference does and rounded once to
# the dtype (``step_constants``), so the public kernels give the reference's bits. Each rule is its own
# branch-free loop over a block's rows, in C below, compiled for the baseline, AVX2 and AVX-512 like the
# activations' loops (FNN_MULTIVERSION), whose wider registers their divisions and square roots need. All
# versions round the same (no FMA: _common.pxi), so every CPU gets the reference's bits.
# Needs _common.pxi and _constants.pxi included first.

from libc.math cimport pow

cdef extern from *:
    """
    /* Slots of the step constants (an array of the parameter dtype that step_constants fills). */
    enum { FNN_C_LR, FNN_C_MU, FNN_C_WD, FNN_C_B1, FNN_C_OMB1, FNN_C_B2, FNN_C_OMB2, FNN_C_EPS, FNN_C_STEP_SIZE,
           FNN_C_BC2, FNN_C_SHRINK, FNN_C_DECAY, FNN_C_OMD, FNN_C_FACTOR, FNN_N_STEP };

    /* One update of a block of parameters p (rows of n, row i at i * stride) from their gradient g times
       c[FNN_C_FACTOR], s0 and s1 the rule's state (laid out as p; unused ones may be NULL). decay: add
       wd * p to the gradient; variant: Nesterov's update (momentum), AdamW's shrink of p by c[FNN_C_SHRINK]
       first (Adam). CONSTANTS declares the other constants the rule reads, as locals before its loops. */
    #define FNN_STEP_RULE(NAME, S, T, CONSTANTS, ...)                                                          \
    FNN_MULTIVERSION(fnn_##NAME##_##S, (T *p, const T *g, T *s0, T *s1, Py_ssize_t rows, Py_ssize_t n,         \
                                        Py_ssize_t stride, const T *c, int decay, int variant),                \
                     (p, g, s0, s1, rows, n, stride, c, decay, variant),                                       \
        const T f = c[FNN_C_FACTOR], wd = c[FNN_C_WD];                                                         \
        CONSTANTS                                                                                              \
        (void)s0; (void)s1; (void)variant;                                                                     \
        for (Py_ssize_t i = 0; i < rows; i++)                                                                  \
            for (Py_ssize_t j = i * stride; j < i * stride + n; j++) {                                         \
                T pv = p[j], d = g[j] * f;                                                                     \
                __VA_ARGS__                                                                                    \
            })
    #define FNN_DECAYED d = decay ? d + wd * pv : d;
    #define FNN_RATE(T) const T lr = c[FNN_C_LR];
    #define FNN_SQUARES(T) const T lr = c[FNN_C_LR], eps = c[FNN_C_EPS], rho = c[FNN_C_DECAY], omr = c[FNN_C_OMD];
    #define FNN_MOMENTS(T) const T b1 = c[FNN_C_B1], omb1 = c[FNN_C_OMB1], b2 = c[FNN_C_B2], omb2 = c[FNN_C_OMB2], \
        step_size = c[FNN_C_STEP_SIZE], bc2 = c[FNN_C_BC2], eps = c[FNN_C_EPS], shrink = c[FNN_C_SHRINK];

    #define FNN_STEP_RULES(T, S, SQRT)                                                                         \
    FNN_STEP_RULE(sgd, S, T, FNN_RATE(T), FNN_DECAYED p[j] = pv - lr * d;)                                     \
    FNN_STEP_RULE(momentum, S, T, FNN_RATE(T) const T mu = c[FNN_C_MU];, FNN_DECAYED                           \
        T b = s0[j] * mu + d;                                                                                  \
        s0[j] = b;                                                                                             \
        p[j] = pv - lr * (variant ? d + mu * b : b);)                                                          \
    FNN_STEP_RULE(adam, S, T, FNN_MOMENTS(T),                                                                  \
        pv = variant ? pv * shrink : pv;                                                                       \
        FNN_DECAYED                                                                                            \
        T m = s0[j] * b1 + omb1 * d;                                                                           \
        T v = s1[j] * b2 + omb2 * (d * d);                                                                     \
        s0[j] = m;                                                                                             \
        s1[j] = v;                                                                                             \
        p[j] = pv - step_size * (m / (SQRT(v) / bc2 + eps));)                                                  \
    FNN_STEP_RULE(adagrad, S, T, FNN_RATE(T) const T eps = c[FNN_C_EPS];, FNN_DECAYED                          \
        T s = s0[j] + d * d;                                                                                   \
        s0[j] = s;                                                                                             \
        p[j] = pv - lr * (d / (SQRT(s) + eps));)                                                               \
    FNN_STEP_RULE(rmsprop, S, T, FNN_SQUARES(T), FNN_DECAYED                                                   \
        T s = s0[j] * rho + omr * (d * d);                                                                     \
        s0[j] = s;                                                                                             \
        p[j] = pv - lr * (d / (SQRT(s) + eps));)                                                               \
    FNN_STEP_RULE(adadelta, S, T, FNN_SQUARES(T), FNN_DECAYED                                                  \
        T s = s0[j] * rho + omr * (d * d);                                                                     \
        s0[j] = s;                                                                                             \
        T delta = SQRT(s1[j] + eps) / SQRT(s + eps) * d;                                                       \
        s1[j] = s1[j] * rho + omr * (delta * delta);                                                           \
        p[j] = pv - lr * delta;)

    FNN_STEP_RULES(float, f, sqrtf)
    FNN_STEP_RULES(double, d, sqrt)
    """
    enum:
        C_LR "FNN_C_LR"
        C_MU "FNN_C_MU"
        C_WD "FNN_C_WD"
        C_B1 "FNN_C_B1"
        C_OMB1 "FNN_C_OMB1"
        C_B2 "FNN_C_B2"
        C_OMB2 "FNN_C_OMB2"
        C_EPS "FNN_C_EPS"
        C_STEP_SIZE "FNN_C_STEP_SIZE"
        C_BC2 "FNN_C_BC2"
        C_SHRINK "FNN_C_SHRINK"
        C_DECAY "FNN_C_DECAY"
        C_OMD "FNN_C_OMD"
        C_FACTOR "FNN_C_FACTOR"
        N_STEP "FNN_N_STEP"
    void fnn_sgd_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                   int) noexcept nogil
    void fnn_sgd_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                   int) noexcept nogil
    void fnn_momentum_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                        int) noexcept nogil
    void fnn_momentum_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                        int) noexcept nogil
    void fnn_adam_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                    int) noexcept nogil
    void fnn_adam_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                    int) noexcept nogil
    void fnn_adagrad_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                       int) noexcept nogil
    void fnn_adagrad_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                       int) noexcept nogil
    void fnn_rmsprop_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                       int) noexcept nogil
    void fnn_rmsprop_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                       int) noexcept nogil
    void fnn_adadelta_f(float*, const float*, float*, float*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float*, int,
                        int) noexcept nogil
    void fnn_adadelta_d(double*, const double*, double*, double*, Py_ssize_t, Py_ssize_t, Py_ssize_t, const double*, int,
                        int) noexcept nogil


cdef void step_constants(long opt, const double* hyper, long long step, double factor,
                         floating* c) noexcept nogil:
    """Fill c (N_STEP,) for one step of optimizer ``opt``: hyper (N_HYPER,) kernels/constants.py's slots;
    step: the 1-based count of updates including this one; factor: the gradient-clipping factor (1: none).
    Adam's bias corrections, Adagrad's decayed rate and AdamW's shrink factor as the reference computes
    them (Python floats: C doubles, pow)."""
    cdef double lr = hyper[LR], wd = hyper[WEIGHT_DECAY], b1 = hyper[BETA1], b2 = hyper[BETA2], decay
    c[C_LR] = <floating>(lr / (1 + (step - 1) * hyper[LR_DECAY])) if opt == ADAGRAD else <floating>lr
    c[C_MU] = <floating>hyper[MU]
    c[C_WD] = <floating>wd
    c[C_EPS] = <floating>hyper[EPS]
    c[C_FACTOR] = <floating>factor
    c[C_B1] = <floating>b1
    c[C_OMB1] = <floating>(1 - b1)
    c[C_B2] = <floating>b2
    c[C_OMB2] = <floating>(1 - b2)
    c[C_STEP_SIZE] = c[C_BC2] = 0
    if opt == ADAM or opt == ADAMW:
        c[C_STEP_SIZE] = <floating>(lr / (1 - pow(b1, <double>step)))
        c[C_BC2] = <floating>sqrt(1 - pow(b2, <double>step))
    c[C_SHRINK] = <floating>(1 - lr * wd)
    decay = hyper[ALPHA] if opt == RMSPROP else hyper[RHO]
    c[C_DECAY] = <floating>decay
    c[C_OMD] = <floating>(1 - decay)


cdef inline void step_rows(long opt, floating* p, const floating* g, floating* s0, floating* s1, Py_ssize_t rows,
                           Py_ssize_t n, Py_ssize_t stride, const floating* c, int decay, int variant) noexcept nogil:
    """The rule of ``opt`` (FNN_STEP_RULES) on rows of n elements, row i at i * stride."""
    if floating is float:
        if opt == SGD:
            fnn_sgd_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == MOMENTUM or opt == NESTEROV:
            fnn_momentum_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == ADAM or opt == ADAMW:
            fnn_adam_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == ADAGRAD:
            fnn_adagrad_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == RMSPROP:
            fnn_rmsprop_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
        else:
            fnn_adadelta_f(p, g, s0, s1, rows, n, stride, c, decay, variant)
    else:
        if opt == SGD:
            fnn_sgd_d(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == MOMENTUM or opt == NESTEROV:
            fnn_momentum_d(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == ADAM or opt == ADAMW:
            fnn_adam_d(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == ADAGRAD:
            fnn_adagrad_d(p, g, s0, s1, rows, n, stride, c, decay, variant)
        elif opt == RMSPROP:
            fnn_rmsprop_d(p, g, s0, s1, rows, n, stride, c, decay, variant)
        else:
            fnn_adadelta_d(p, g, s0, s1, rows, n, stride, c, decay, variant)


cdef enum:
    VECTOR_BYTES = 64  # an AVX-512 register: step_block's rows are stepped in place in whole ones
    GATHERED = 256  # elements per buffer of step_tails


cdef void step_block(long opt, floating* p, const floating* g, floating* s0, floating* s1, Py_ssize_t lo,
                     Py_ssize_t rows, Py_ssize_t width, Py_ssize_t stride, const floating* c) noexcept nogil:
    """One update of the block's elements of p from their gradient g times c[C_FACTOR]; s0, s1: the
    optimizer's state rows (momentum buffer; Adam's m, v; Adagrad's sum; RMSprop's square average;
    Adadelta's square average and accumulated delta), NULL where it has none. Weight decay adds wd * p to
    the gradient, except in AdamW, which shrinks p by c[C_SHRINK] first. Rows of a width that is not whole
    vectors (a thread's columns of W_0, 52 of 100) leave their last elements to ``step_tails``: stepped
    in place, each row would end in the rules' scalar loop (GCC has no masked tails on x86), one square root
    and two divisions at a time."""
    cdef int decay = c[C_WD] != 0 and opt != ADAMW
    cdef int variant = opt == NESTEROV or (opt == ADAMW and c[C_WD] != 0)
    cdef Py_ssize_t whole = width
    if rows <= 0 or width <= 0:
        return
    if width == stride:
        width *= rows
        rows = 1
        whole = width
    elif rows > 1:
        whole = width - width % (VECTOR_BYTES // sizeof(floating))
    if whole > 0:
        step_rows(opt, p + lo, g + lo, s0 + lo if s0 != NULL else NULL, s1 + lo if s1 != NULL else NULL, rows,
                  whole, stride, c, decay, variant)
    if whole < width:
        step_tails(opt, p, g, s0, s1, lo + whole, rows, width - whole, stride, c, decay, variant)


cdef void step_tails(long opt, floating* p, const floating* g, floating* s0, floating* s1, Py_ssize_t lo,
                     Py_ssize_t rows, Py_ssize_t t, Py_ssize_t stride, const floating* c, int decay,
                     int variant) noexcept nogil:
    """The rule on t < GATHERED elements of each row (lo + i * stride ...): gathered, some rows at a time,
    into contiguous buffers, stepped there as one row, and put back (the same operations on each element:
    the same bits)."""
    cdef floating bp[GATHERED]
    cdef floating bg[GATHERED]
    cdef floating b0[GATHERED]
    cdef floating b1[GATHERED]
    cdef Py_ssize_t per = GATHERED // t, r0 = 0, r1, i, j, q, k
    while r0 < rows:
        r1 = min(rows, r0 + per)
        for i in range(r0, r1):
            for j in range(t):
                q, k = lo + i * stride + j, (i - r0) * t + j
                bp[k] = p[q]
                bg[k] = g[q]
                if s0 != NULL:
                    b0[k] = s0[q]
                if s1 != NULL:
                    b1[k] = s1[q]
        step_rows(opt, bp, bg, b0 if s0 != NULL else NULL, b1 if s1 != NULL else NULL, 1, (r1 - r0) * t, 0, c,
                  decay, variant)
        for i in range(r0, r1):
            for j in range(t):
                q, k = lo + i * stride + j, (i - r0) * t + j
                p[q] = bp[k]
                if s0 != NULL:
                    s0[q] = b0[k]
                if s1 != NULL:
                    s1[q] = b1[k]
        r0 = r1


cdef void penalize_block(const floating* p, floating* g, Py_ssize_t lo, Py_ssize_t rows, Py_ssize_t width,
                         Py_ssize_t stride, floating l2, floating l1, bint l2_on, bint l1_on, double* squares,
                         double* absolute) noexcept nogil:
    """g += l2 * p (with l2_on), then g += l1 * sign(p) (with l1_on; np.sign: 0 at 0, NaN at NaN) on the
    block (add_l2_grad, add_l1_grad); adds sum p^2 and sum |p| over the block, in float64 (row_dot's and
    row_abs_sum's order, row by row), to ``squares`` and ``absolute`` (the penalty values)."""
    cdef Py_ssize_t i, j, q
    cdef floating v
    cdef double sq = 0, ab = 0
    if rows <= 0 or width <= 0:
        return
    if width == stride:
        width *= rows
        rows = 1
    for i in range(rows):
        q = lo + i * stride
        if l2_on:
            sq += row_dot(p + q, p + q, width)
            for j in range(q, q + width):
                g[j] = g[j] + l2 * p[j]
        if l1_on:
            ab += row_abs_sum(p + q, width)
            for j in range(q, q + width):
                v = p[j]
                g[j] = g[j] + l1 * vsel(v > 0, <floating>1, vsel(v < 0, <floating>-1, vsel(v == 0, <floating>0, v)))
    squares[0] += sq
    absolute[0] += ab


cdef double sumsq_block(const floating* x, Py_ssize_t lo, Py_ssize_t rows, Py_ssize_t width,
                        Py_ssize_t stride) noexcept nogil:
    """sum(x^2) over the block, accumulated in float64 (row_dot's order)."""
    cdef Py_ssize_t i
    cdef double total = 0
    if rows <= 0 or width <= 0:
        return 0
    if width == stride:
        width *= rows
        rows = 1
    for i in range(rows):
        total += row_dot(x + lo + i * stride, x + lo + i * stride, width)
    return total
