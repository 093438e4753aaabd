"""A model's parameters in one flat buffer, the layers holding views of it: what compiled code reads.

The compiled epoch (:mod:`fastnn.fused`) and the compiled forward pass (:mod:`fastnn.predict`) take every
Dense (or Maxout) layer's W (row-major) then b, layer after layer, then every BatchNorm's gamma and beta,
then every PReLU's alpha, in one array (kernels/reference/fused.py's ``param_layout``, ``norm_layout`` and
``prelu_layout``), and the BatchNorm layers' running statistics in another. :func:`flat_params` packs them
once per model and layout and makes the layers' arrays views of the buffers, so that both read the same
memory the layers (and ``get_weights``, ``save``, the step-by-step engine) do, with nothing copied per
call; arrays replaced since (``set_weights``, a reset) are packed again by :meth:`FlatParams.check`.
"""
import numpy as np

from ._kernels.reference import fused as _layout

__all__ = ["FlatParams", "flat_params"]


class FlatParams:
    """The flat ``params`` (P,) and ``running`` (R,) buffers of a stack (fastnn.fused's ``_Stack``)."""

    def __init__(self, model, stack, key):
        self.key = key
        sizes, pieces, norm = stack.sizes, stack.pieces, stack.norm
        offsets, _ = _layout.param_layout(sizes, pieces)
        gammas, runs, _, n_running = _layout.norm_layout(sizes, norm, pieces)
        alphas, n_params = _layout.prelu_layout(sizes, stack.acts, norm, pieces)
        self.params = np.empty(n_params, dtype=model.dtype)
        self.running = np.empty(n_running, dtype=model.dtype)
        # (layer, its parameters' (lo, hi) in params, its buffers' (lo, hi) in running), in model order
        spans = {}
        for l, (layer, (w0, b0)) in enumerate(zip(stack.dense, offsets)):
            n = int(sizes[l + 1])
            spans[id(layer)] = (layer, [(w0, b0), (b0, b0 + n * int(pieces[l]))], [])
            bn = stack.norms[l]
            if bn is not None:
                g, r = int(gammas[l]), int(runs[l])
                spans[id(bn)] = (bn, [(g, g + n), (g + n, g + 2 * n)], [(r, r + n), (r + n, r + 2 * n)])
            if stack.prelus[l] is not None:
                a = int(alphas[l])
                spans[id(stack.prelus[l])] = (stack.prelus[l], [(a, a + n)], [])
        self.bound = [spans[id(layer)] for layer in model.layers if id(layer) in spans]
        self.views = [([self.params[lo:hi].reshape(np.shape(layer.params[i])) for i, (lo, hi) in enumerate(ps)],
                       [self.running[lo:hi] for lo, hi in bs]) for layer, ps, bs in self.bound]
        self.bind()

    def bind(self):
        """Copy the layers' current arrays into the buffers and make the layers hold views of them."""
        for (layer, _, _), (params, buffers) in zip(self.bound, self.views):
            for view, own in zip(params + buffers, layer.params + layer.buffers):
                view[...] = own
            layer.params = list(params)
            if buffers:
                layer.buffers = list(buffers)

    def ranges(self):
        """(lo, hi) of every parameter in the flat layout, in ``model.params()`` order (W0, b0, ...)."""
        return [r for _, ps, _ in self.bound for r in ps]

    def check(self):
        """Pack again whatever was replaced since the last call (a reset, ``set_weights``, a load)."""
        if any(len(layer.params) != len(params) or any(a is not b for a, b in zip(layer.params, params))
               or (buffers and any(a is not b for a, b in zip(layer.buffers, buffers)))
               for (layer, _, _), (params, buffers) in zip(self.bound, self.views)):
            self.bind()


def flat_params(model, stack):
    """The model's :class:`FlatParams` for this stack's layout: the one it has when the layout is the same
    (the compiled epoch and the forward pass then share it), else a new one."""
    key = (tuple(int(s) for s in stack.sizes), tuple(int(k) for k in stack.pieces),
           tuple(id(layer) for layer in stack.dense), tuple(id(b) if b is not None else 0 for b in stack.norms),
           tuple(id(p) if p is not None else 0 for p in stack.prelus), model.dtype.str)
    flat = getattr(model, "_flat", None)
    if flat is None or flat.key != key:
        flat = model._flat = FlatParams(model, stack, key)
    return flat
