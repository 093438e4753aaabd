# Batch normalization as block kernels on columns c0 .. c1 (blocks as in _act.pxi), written once: norm.pyx's
# public kernels call them on whole arrays, fused.pyx on its share of a layer's units.
# Column statistics are summed in the input dtype over the rows in order (NumPy's order for an axis-0 sum
# of several columns) and every element-wise step repeats kernels/reference/norm.py's operations in its
# order, so the public kernels give the reference's bits (for more than one column).


cdef inline void column_sums(const floating* x, Py_ssize_t ld, Py_ssize_t nb, Py_ssize_t c0, Py_ssize_t c1,
                             floating* out) noexcept nogil:
    """out[c0:c1] = the sums over rows 0 .. nb of columns c0 .. c1 of x (rows of ld), in row order."""
    cdef Py_ssize_t i, j
    cdef const floating* xi
    for j in range(c0, c1):
        out[j] = 0
    for i in range(nb):
        xi = x + i * ld
        for j in range(c0, c1):
            out[j] = out[j] + xi[j]


cdef void bn_forward_block(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd, Py_ssize_t nb,
                           Py_ssize_t c0, Py_ssize_t c1, const floating* gamma, const floating* beta,
                           floating* running_mean, floating* running_var, floating momentum, floating eps,
                           floating* xhat, Py_ssize_t ldx, floating* inv_std, floating* mean) noexcept nogil:
    """Batch norm of columns c0 .. c1 of src into dst (may be src): keeps xhat (rows of ldx) and inv_std for
    the backward pass, and updates the running statistics with the batch mean and the unbiased variance.
    gamma .. inv_std and the scratch ``mean`` are indexed by column; xhat holds x - mean on the way, dst
    (x - mean)^2."""
    cdef Py_ssize_t i, j
    cdef floating tn = <floating>nb, keep = <floating>1 - momentum, c, var
    cdef floating unbias = <floating>(<double>nb / max(nb - 1, 1))
    cdef const floating* si
    cdef floating* hi
    cdef floating* di
    if c1 <= c0:
        return
    column_sums(src, lds, nb, c0, c1, mean)
    for j in range(c0, c1):
        mean[j] = mean[j] / tn
    for i in range(nb):
        si = src + i * lds
        hi = xhat + i * ldx
        di = dst + i * ldd
        for j in range(c0, c1):
            c = si[j] - mean[j]
            hi[j] = c
            di[j] = c * c
    column_sums(dst, ldd, nb, c0, c1, inv_std)  # the sums of squares, for now
    for j in range(c0, c1):
        var = inv_std[j] / tn
        inv_std[j] = <floating>1 / vsqrt(var + eps)
        running_mean[j] = running_mean[j] * keep + momentum * mean[j]
        running_var[j] = running_var[j] * keep + momentum * (var * unbias)
    for i in range(nb):
        hi = xhat + i * ldx
        di = dst + i * ldd
        for j in range(c0, c1):
            c = hi[j] * inv_std[j]
            hi[j] = c
            di[j] = gamma[j] * c + beta[j]


cdef void bn_backward_block(const floating* d, Py_ssize_t ldd, floating* out, Py_ssize_t ldo, Py_ssize_t nb,
                            Py_ssize_t c0, Py_ssize_t c1, const floating* xhat, Py_ssize_t ldx,
                            const floating* gamma, const floating* inv_std, floating* dgamma,
                            floating* dbeta) noexcept nogil:
    """out = dC/dx of columns c0 .. c1 from d = dC/dy of the training-mode batch norm's output (out may be
    d); dgamma and dbeta (indexed by column) receive their gradients."""
    cdef Py_ssize_t i, j
    cdef floating tn = <floating>nb
    cdef const floating* di
    cdef const floating* hi
    cdef floating* oi
    for j in range(c0, c1):
        dbeta[j] = 0
        dgamma[j] = 0
    for i in range(nb):
        di = d + i * ldd
        hi = xhat + i * ldx
        for j in range(c0, c1):
            dbeta[j] = dbeta[j] + di[j]
            dgamma[j] = dgamma[j] + di[j] * hi[j]
    for i in range(nb):
        di = d + i * ldd
        hi = xhat + i * ldx
        oi = out + i * ldo
        for j in range(c0, c1):
            oi[j] = (gamma[j] * inv_std[j] / tn) * ((tn * di[j] - dbeta[j]) - hi[j] * dgamma[j])


cdef void bn_eval_block(const floating* src, Py_ssize_t lds, floating* dst, Py_ssize_t ldd, Py_ssize_t nb,
                        Py_ssize_t c0, Py_ssize_t c1, const floating* gamma, const floating* beta,
                        const floating* running_mean, const floating* running_var, floating eps,
                        floating* scale) noexcept nogil:
    """Inference-mode batch norm of columns c0 .. c1: dst = (src - running_mean) * (gamma / sqrt(running_var +
    eps)) + beta (dst may be src; ``scale``: scratch indexed by column)."""
    cdef Py_ssize_t i, j
    cdef const floating* si
    cdef floating* di
    for j in range(c0, c1):
        scale[j] = gamma[j] * (<floating>1 / vsqrt(running_var[j] + eps))
    for i in range(nb):
        si = src + i * lds
        di = dst + i * ldd
        for j in range(c0, c1):
            di[j] = (si[j] - running_mean[j]) * scale[j] + beta[j]
