"""The forward pass of a whole model in inference mode, in one call (Cython); semantics of
kernels/reference/inference.py.

A driver over this backend's block kernels (the .pxi files the compiled epoch and the public per-layer kernels
use): per chunk of at most INFER_CHUNK rows, each layer's product (_dense.pxi: the hand-written products or
BLAS), bias and activation in one pass where it can, maxout, inference-mode batch norm (``bn_eval_block``),
the output's softmax per row; two workspace buffers take turns as a layer's input and output, and the
output's rows go to ``out``. The loop runs without the GIL: callers may run slices of the rows on threads of
their own.
"""
import numpy as np

include "_common.pxi"
include "_constants.pxi"
include "_act.pxi"
include "_softmax.pxi"
include "_norm.pxi"
include "_dense.pxi"

from libc.math cimport isfinite


cdef void layer(Py_ssize_t l, Py_ssize_t nb, const floating* a, Py_ssize_t lda, floating* buf, floating* other,
                const floating* params, const floating* running, const int64_t[:, ::1] layout,
                const int64_t[::1] sizes, const int64_t[::1] acts, const int64_t[::1] pieces,
                const double[:, ::1] norm, const double[::1] slopes, floating* scratch) noexcept nogil:
    """Layer l on nb rows of a (rows of lda) into buf, rows of LD[l + 1] (a Maxout layer's product goes to other
    first)."""
    cdef Py_ssize_t width = layout[LAY_WIDTH, l], k = pieces[l], units = sizes[l + 1], ld = layout[LAY_LD, l + 1]
    cdef Py_ssize_t g0 = layout[LAY_GAMMA, l], r0 = layout[LAY_RUNNING, l], i
    cdef floating* zp = other if k > 1 else buf
    cdef Py_ssize_t ldp = layout[LAY_LDM, l] if k > 1 else ld
    cdef const floating* bias = params + layout[LAY_B, l]
    cdef long act = acts[l]
    cdef floating slope = <floating>slopes[l]
    product(False, False, nb, width, sizes[l], 1, a, lda, params + layout[LAY_W, l], width, 0, zp, ldp, 0)
    if k == 1 and g0 < 0 and act != PRELU and act != SOFTMAX:  # bias and activation in one pass
        act_block(buf, ld, buf, ld, nb, 0, units, act, slope, bias)
        return
    act_block(zp, ldp, zp, ldp, nb, 0, width, IDENTITY, slope, bias)
    if k > 1:
        maxout_block(zp, ldp, buf, ld, nb, 0, units, k, NULL)
    if g0 >= 0:
        bn_eval_block(buf, ld, buf, ld, nb, 0, units, params + g0, params + g0 + units, running + r0,
                      running + r0 + units, <floating>norm[l, 1], scratch)
    if act == SOFTMAX:
        softmax_rows(buf, ld, buf, ld, units, nb)
    elif act == PRELU:
        prelu_block(buf, ld, buf, ld, nb, 0, units, params + layout[LAY_ALPHA, l])
    else:
        act_block(buf, ld, buf, ld, nb, 0, units, act, slope, <floating*>NULL)


def predict_rows(const floating[:, ::1] x, const floating[::1] params, const floating[::1] running,
                 const int64_t[:, ::1] layout, const int64_t[::1] sizes, const int64_t[::1] acts,
                 const int64_t[::1] pieces, const double[:, ::1] norm, const double[::1] slopes,
                 floating[:, ::1] out):
    """out (n, sizes[-1]) = the model's output for x (n, sizes[0]); returns the first row whose output is not
    finite, or -1. layout: ``epoch_layout(sizes, 1, acts, None, norm, pieces)``; the rest as ``train_epoch``."""
    cdef Py_ssize_t n = x.shape[0], n_layers = sizes.shape[0] - 1, n_out = sizes[n_layers], c0 = 0, nb, l, i, j, lda
    cdef Py_ssize_t bad = -1
    if (layout.shape[0] != N_LAYOUT or layout.shape[1] < n_layers + 1 or len(acts) != n_layers
            or len(pieces) != n_layers or norm.shape[0] != n_layers or len(slopes) != n_layers):
        raise ValueError("layout must be epoch_layout(sizes, 1, acts, None, norm, pieces), with one entry per layer")
    if x.shape[1] != sizes[0] or out.shape[0] != n or out.shape[1] != n_out:
        raise ValueError(f"x must be (n, {sizes[0]}) and out (n, {n_out})")
    if params.shape[0] != layout[LAY_TOTAL, TOTAL_PARAMS] or running.shape[0] < layout[LAY_TOTAL, TOTAL_RUNNING]:
        raise ValueError("params or running do not match the layout")
    cdef Py_ssize_t width = 0
    for l in range(n_layers):  # (a loop: np.max of two slices cost ~5 us, a third of a one-row call)
        width = max(width, layout[LAY_LD, l + 1], layout[LAY_LDM, l])
    cdef Py_ssize_t chunk = min(n, INFER_CHUNK)
    if n == 0:
        return -1
    # a layer's input and output, taking turns, and a Maxout layer's product; batch norm's scratch
    cdef floating[::1] work = np.empty(3 * chunk * width + width, np.float32 if floating is float else np.float64)
    cdef floating* bufs = &work[0]
    cdef const floating* a
    with nogil:
        while c0 < n:
            nb = min(chunk, n - c0)
            a = &x[c0, 0]
            lda = sizes[0]
            for l in range(n_layers):
                layer(l, nb, a, lda, bufs + (l % 2) * chunk * width, bufs + 2 * chunk * width, &params[0],
                      &running[0], layout, sizes, acts, pieces, norm, slopes, bufs + 3 * chunk * width)
                a = bufs + (l % 2) * chunk * width
                lda = layout[LAY_LD, l + 1]
            for i in range(nb):
                for j in range(n_out):
                    out[c0 + i, j] = a[i * lda + j]
            c0 += nb
        for i in range(n):
            for j in range(n_out):
                if bad < 0 and not isfinite(out[i, j]):
                    bad = i
    return bad
