# The output layer of the fused epoch: its activation, weighted loss, delta and correct count in one block
# kernel, composed of the activations' (_act.pxi, _softmax.pxi) and the losses' (_loss.pxi) formulas. Needs
# those included first.


cdef double output_block(const floating* z, Py_ssize_t ldz, floating* a, const floating* y, const floating* w,
                         Py_ssize_t nb, Py_ssize_t k, long act, long loss, double eps, floating slope,
                         floating* delta, floating* g, double* weight, long long* correct) noexcept nogil:
    """The output layer of a batch, all its k units: a = act(z), the weighted data loss, delta = dC/dz and the
    rows classified right (added to ``correct``).

    z: the activation's input, rows of ldz (kept); a, y, delta, g: (nb, k) contiguous (g: scratch for dC/da);
    w: the batch's row weights, or NULL; eps: BCE's, NLL's and POISSON's clipping; slope: LeakyReLU's; act: any
    code but PRELU. Returns the weighted mean data loss sum_i w_i C_i / W (float64: weighted_sum and mean_loss,
    as the public losses) and puts W in ``weight``. BCE after SIGMOID, NLL after SOFTMAX and POISSON after EXP
    give the fused delta w (a - y) / W; other pairings the loss's gradient through the activation's backward
    pass.
    """
    cdef Py_ssize_t i
    cdef double safe
    cdef bint fused = ((loss == BCE and act == SIGMOID) or (loss == NLL and act == SOFTMAX)
                       or (loss == POISSON and act == EXP))
    cdef long rule = QUADRATIC if fused else loss
    cdef floating* out = delta if fused else g
    cdef floating lo = <floating>eps, hi = <floating>(1 - eps), tw, c_mse
    if act == SOFTMAX:
        softmax_rows(z, ldz, a, k, k, nb)
    else:
        act_block(z, ldz, a, k, nb, 0, k, act, slope, <floating*>NULL)
    weight[0] = weight_total(w, nb, &safe)
    tw = <floating>safe
    c_mse = <floating>(2.0 / (safe * k))
    grad_rows(rule, a, y, w, nb, k, tw, c_mse, lo, hi, out)
    for i in range(nb):
        correct[0] += is_right(a + i * k, y + i * k, k)
    if not fused:
        if act == SOFTMAX:
            for i in range(nb):
                softmax_backward_row(a + i * k, g + i * k, delta + i * k, k)
        else:  # (the ReLU family's f' from a: slope >= 0)
            act_backward_block(a, k, g, k, delta, k, nb, 0, k, act, slope)
    return mean_loss(weighted_sum(a, y, w, nb, k, loss, eps), safe, k, loss)
