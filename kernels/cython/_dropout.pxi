# Inverted dropout as block kernels (blocks as in _act.pxi), written once: dropout.pyx's public kernels call
# them on whole arrays, fused.pyx on its share of a layer's columns. Element (i, j) of an (nb, n_cols) layer
# is draw i * n_cols + j + 1 of _common.pxi's counter generator (kernels/reference/dropout.py), so the masks
# are bit-identical to the reference's whatever the blocks. Needs _common.pxi.

cdef extern from *:
    """
    /* mask_t = u(first + t) >= p ? scale : 0, y_t = x_t * mask_t over one row. Multiversioned
       (FNN_MULTIVERSION): the 64-bit multiplies of the generator vectorize only with AVX-512 (vpmullq), 20x
       faster than scalar code. */
    #define FNN_DROPOUT(T, S)                                                                          \
    FNN_MULTIVERSION(fnn_dropout_##S, (const T *x, T *y, T *mask, Py_ssize_t n, uint64_t seed, uint64_t first, \
                                       double p, T scale), (x, y, mask, n, seed, first, p, scale),    \
        for (Py_ssize_t i = 0; i < n; i++) {                                                           \
            T m = fnn_splitmix_uniform(seed, first + (uint64_t)i) >= p ? scale : (T)0;                 \
            mask[i] = m;                                                                               \
            y[i] = x[i] * m;                                                                           \
        })
    FNN_DROPOUT(float, f)
    FNN_DROPOUT(double, d)
    """
    void fnn_dropout_f(const float*, float*, float*, Py_ssize_t, uint64_t, uint64_t, double, float) noexcept nogil
    void fnn_dropout_d(const double*, double*, double*, Py_ssize_t, uint64_t, uint64_t, double,
                       double) noexcept nogil


cdef void dropout_block(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd, floating* mask,
                        Py_ssize_t ldm, Py_ssize_t nb, Py_ssize_t c0, Py_ssize_t c1, Py_ssize_t n_cols, double p,
                        uint64_t seed) noexcept nogil:
    """Inverted dropout of columns c0 .. c1 of an (nb, n_cols) layer: mask = dtype(1 / (1 - p)) where the
    element's draw is >= p, else 0, and dst = src * mask (dst may be src)."""
    cdef Py_ssize_t i
    cdef floating scale = <floating>(1.0 / (1.0 - p))
    cdef uint64_t first
    if c1 <= c0:
        return
    for i in range(nb):
        first = <uint64_t>(i * n_cols + c0 + 1)  # the draw of element (i, c0)
        if floating is float:
            fnn_dropout_f(src + i * lds + c0, dst + i * ldd + c0, mask + i * ldm + c0, c1 - c0, seed, first, p,
                          scale)
        else:
            fnn_dropout_d(src + i * lds + c0, dst + i * ldd + c0, mask + i * ldm + c0, c1 - c0, seed, first, p,
                          scale)


cdef void mask_block(const floating* d, Py_ssize_t ldd, const floating* mask, Py_ssize_t ldm, floating* out,
                     Py_ssize_t ldo, Py_ssize_t nb, Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """out = d * mask on columns c0 .. c1 (dropout's backward pass; out may be d)."""
    cdef Py_ssize_t i, j
    cdef const floating* di
    cdef const floating* mi
    cdef floating* oi
    for i in range(nb):
        di = d + i * ldd
        mi = mask + i * ldm
        oi = out + i * ldo
        for j in range(c0, c1):
            oi[j] = di[j] * mi[j]
