# Softmax of rows and its vector-Jacobian product, written once: softmax.pyx's public kernels, losses.pyx's
# softmax_nll_grad, inference.pyx and the output layer of the fused epoch (output_block) call them. Needs
# _common.pxi.


cdef inline void softmax_rows(const floating* z, Py_ssize_t ldz, floating* out, Py_ssize_t ldo, Py_ssize_t k,
                              Py_ssize_t n) noexcept nogil:
    """out = softmax of n rows of k >= 1 (rows ldz and ldo apart; out may be z): exp(z - max) (an all -inf row
    gives the uniform distribution), divided by the row's sum, which is accumulated in float64 and rounded to
    the dtype. The shifted rows are written first, then exponentiated in one call when out's rows are
    contiguous (a call per row of a few units would leave most of each vector empty)."""
    cdef Py_ssize_t i, j
    cdef floating m, total
    for i in range(n):
        m = row_max(z + i * ldz, k)
        for j in range(k):  # (an all -inf row: exp(0) = 1 everywhere)
            out[i * ldo + j] = z[i * ldz + j] - m if m != -INFINITY else 0
    if ldo == k:
        exp_shift_array(out, 0, out, n * k)
    else:
        for i in range(n):
            exp_shift_array(out + i * ldo, 0, out + i * ldo, k)
    for i in range(n):
        total = <floating>row_sum(out + i * ldo, k)
        for j in range(k):
            out[i * ldo + j] = out[i * ldo + j] / total


cdef inline void softmax_backward_row(const floating* a, const floating* da, floating* out,
                                      Py_ssize_t k) noexcept nogil:
    """out = a * (da - sum(a * da)) for one row (the sum accumulated in float64; out may be da)."""
    cdef Py_ssize_t j
    cdef floating s = <floating>row_dot(a, da, k)
    for j in range(k):
        out[j] = a[j] * (da[j] - s)
