"""The forward pass of a whole model in inference mode, in one call (the compiled ``predict``).

The model is the stack of kernels/reference/fused.py's ``train_epoch`` (``sizes``, ``acts``, ``pieces``,
``norm``, ``slopes`` and the flat ``params`` / ``running`` of its layout, made by ``epoch_layout``), read
in inference mode: a BatchNorm normalizes with its running statistics (``batchnorm_forward_eval``, on any
layer, the output's too), there is no dropout, and a PReLU may be the output's activation. It is composed
of the reference per-layer kernels, so it equals ``Sequential.predict``'s layer-by-layer pass.
"""
import numpy as np

from ..constants import LAY_ALPHA, LAY_B, LAY_GAMMA, LAY_RUNNING, LAY_W, LAY_WIDTH, LEAKY_RELU, PRELU, SOFTMAX
from . import activations as _act
from . import dense as _dense
from . import norm as _norm
from .softmax import softmax


def predict_rows(x, params, running, layout, sizes, acts, pieces, norm, slopes, out):
    """out (n, sizes[-1]) = the model's output for x (n, sizes[0]); returns the first row whose output is not
    finite, or -1. layout: ``epoch_layout(sizes, 1, acts, None, norm, pieces)``; the rest as ``train_epoch``."""
    a = x
    for l in range(len(sizes) - 1):
        n_in, width, units = int(sizes[l]), int(layout[LAY_WIDTH, l]), int(sizes[l + 1])
        w0, b0 = int(layout[LAY_W, l]), int(layout[LAY_B, l])
        z = _dense.dense_forward(a, params[w0:b0].reshape(n_in, width), params[b0:b0 + width])
        if pieces[l] > 1:
            z, _ = _act.maxout(z, int(pieces[l]))
        g0, r0 = int(layout[LAY_GAMMA, l]), int(layout[LAY_RUNNING, l])
        if g0 >= 0:
            z = _norm.batchnorm_forward_eval(z, params[g0:g0 + units], params[g0 + units:g0 + 2 * units],
                                             running[r0:r0 + units], running[r0 + units:r0 + 2 * units],
                                             float(norm[l][1]))
        if acts[l] == SOFTMAX:
            a = softmax(z)
        elif acts[l] == LEAKY_RELU:
            a = _act.leaky_relu(z, float(slopes[l]))
        elif acts[l] == PRELU:
            a0 = int(layout[LAY_ALPHA, l])
            a = _act.prelu(z, params[a0:a0 + units])
        else:
            a = _act.FORWARD[int(acts[l])](z)
    out[...] = a
    bad = ~np.isfinite(out).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else -1
