# Softmax of one row and its vector-Jacobian product, written once: softmax.pyx's public kernels, losses.pyx's
# softmax_nll_grad and the output layer of the fused epoch (output_block) call them. Needs _common.pxi.


cdef inline void softmax_row(const floating* z, floating* out, Py_ssize_t k) noexcept nogil:
    """out = softmax(z) of one row of k >= 1 (out may be z): exp(z - max) (an all -inf row gives the uniform
    distribution), divided by its sum, which is accumulated in float64 and rounded to the dtype."""
    cdef Py_ssize_t j
    cdef floating total
    exp_shifted(z, out, k)
    total = <floating>row_sum(out, k)
    for j in range(k):
        out[j] = out[j] / total


cdef inline void softmax_backward_row(const floating* a, const floating* da, floating* out,
                                      Py_ssize_t k) noexcept nogil:
    """out = a * (da - sum(a * da)) for one row (the sum accumulated in float64; out may be da)."""
    cdef Py_ssize_t j
    cdef floating s = <floating>row_dot(a, da, k)
    for j in range(k):
        out[j] = a[j] * (da[j] - s)
