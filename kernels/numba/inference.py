"""The forward pass of a whole model in inference mode, in one call (Numba); semantics of
kernels/reference/inference.py.

A driver over this backend's block kernels (the ones the compiled epoch and the public per-layer kernels
use): per chunk of at most INFER_CHUNK rows, each layer's product (the hand-written products or BLAS,
kernels/numba/dense.py), bias and activation in one pass where it can, maxout, inference-mode batch norm
(``bn_eval_block``), the output's softmax per row; two workspace buffers take turns as a layer's input and
output, and the output's rows go to ``out``. Compiled ``nogil``: callers may run slices of the rows on
threads of their own.
"""
import numpy as np
from numba import njit

from ..constants import (IDENTITY, INFER_CHUNK, LAY_ALPHA, LAY_B, LAY_GAMMA, LAY_LD, LAY_LDM, LAY_RUNNING, LAY_W,
                         LAY_WIDTH, PRELU, SOFTMAX)
from .activations import act_block, maxout_block, prelu_block
from .dense import product
from .norm import bn_eval_block
from .softmax import softmax_row


@njit(cache=True, error_model="numpy")
def _layer(l, nb, a, lda, buf, other, params, running, layout, sizes, acts, pieces, norm, slopes, scratch):
    """Layer l on nb rows of a (rows of lda) into buf, rows of LD[l + 1] (a Maxout layer's product goes to
    other first)."""
    t = buf.dtype.type
    width, k, units = layout[LAY_WIDTH, l], pieces[l], sizes[l + 1]
    ld, ldm = layout[LAY_LD, l + 1], layout[LAY_LDM, l]
    zp, ldp = (other, ldm) if k > 1 else (buf, ld)
    product(False, False, nb, width, sizes[l], a, lda, params[layout[LAY_W, l]:], width, zp, ldp, 0)
    bias = params[layout[LAY_B, l]:layout[LAY_B, l] + width]
    act, slope, g0, r0 = acts[l], t(slopes[l]), layout[LAY_GAMMA, l], layout[LAY_RUNNING, l]
    if k == 1 and g0 < 0 and act != PRELU and act != SOFTMAX:  # bias and activation in one pass
        act_block(buf, ld, buf, ld, nb, 0, units, act, slope, bias, True)
        return
    act_block(zp, ldp, zp, ldp, nb, 0, width, IDENTITY, slope, bias, True)
    if k > 1:
        maxout_block(zp, ldp, buf, ld, nb, 0, units, k, pieces[:0], False)
    if g0 >= 0:
        bn_eval_block(buf, ld, buf, ld, nb, 0, units, params[g0:g0 + units], params[g0 + units:g0 + 2 * units],
                      running[r0:r0 + units], running[r0 + units:r0 + 2 * units], t(norm[l, 1]), scratch)
    if act == SOFTMAX:
        for i in range(nb):
            row = buf[i * ld:i * ld + units]
            softmax_row(row, row)
    elif act == PRELU:
        a0 = layout[LAY_ALPHA, l]
        prelu_block(buf, ld, buf, ld, nb, 0, units, params[a0:a0 + units])
    else:
        act_block(buf, ld, buf, ld, nb, 0, units, act, slope, bias, False)


@njit(cache=True, nogil=True, error_model="numpy")
def predict_rows(x, params, running, layout, sizes, acts, pieces, norm, slopes, out):
    """out (n, sizes[-1]) = the model's output for x (n, sizes[0]); returns the first row whose output is not
    finite, or -1. layout: ``epoch_layout(sizes, 1, acts, None, norm, pieces)``; the rest as ``train_epoch``."""
    n, n_layers, n_out = x.shape[0], sizes.shape[0] - 1, sizes[-1]
    width = max(layout[LAY_LD, 1:n_layers + 1].max(), layout[LAY_LDM, :n_layers].max())
    chunk = min(n, INFER_CHUNK)
    bufs = np.empty((3, chunk * width), dtype=params.dtype)  # a layer's input and output, a Maxout's product
    scratch = np.empty(width, dtype=params.dtype)
    xf = x.reshape(x.size)
    for c0 in range(0, n, chunk):
        nb = min(chunk, n - c0)
        a, lda = xf[c0 * sizes[0]:], sizes[0]
        for l in range(n_layers):
            buf = bufs[l % 2]
            _layer(l, nb, a, lda, buf, bufs[2], params, running, layout, sizes, acts, pieces, norm, slopes, scratch)
            a, lda = buf, layout[LAY_LD, l + 1]
        for i in range(nb):
            out[c0 + i, :] = a[i * lda:i * lda + n_out]
    for i in range(n):
        for j in range(n_out):
            if not np.isfinite(out[i, j]):
                return i
    return -1
