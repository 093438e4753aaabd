"""The compiled forward pass: ``Sequential.predict`` as one kernel call (``kernels/*/inference``).

``predictor(model)`` returns a :class:`Predictor` for a model the kernel can run — every stack the compiled
epoch trains, in inference mode (BatchNorm with its running statistics, no dropout), plus a PReLU or
BatchNorm on the output layer and Dropout anywhere — or None (``predict`` then runs layer by layer). The
model's parameters are read where they are: the layers hold views of one flat buffer (:mod:`fastnn.flat`,
shared with the compiled epoch), so a call costs one check that no array was replaced, the call itself
and the output's allocation; batches of many rows are split across ``fastnn.threads.fused_threads()``
threads (each runs the kernel on its rows, releasing the GIL).
"""
import threading
import warnings

import numpy as np

from . import flat as _flat
from . import fused as _fused
from . import threads as _threads
from ._kernels.reference import fused as _layout

__all__ = ["Predictor", "predictor", "PARALLEL_ROWS"]

# Rows from which a forward pass is split across threads (each thread then has at least this many half).
PARALLEL_ROWS = 2048


class Predictor:
    """The compiled forward pass of one model (made by :func:`predictor`)."""

    def __init__(self, model, stack):
        self.model, self.stack = model, stack
        self.layout = _layout.epoch_layout(stack.sizes, 1, stack.acts, None, stack.norm, stack.pieces)
        self.n_out = int(stack.sizes[-1])
        self.flat = _flat.flat_params(model, stack)

    def __call__(self, X, kernels):
        """The output for X (n, n_in), C-contiguous of the model dtype, by the backend ``kernels`` (a
        namespace of :func:`fastnn.backend.kernels`); returns ``(out, bad_row)``, bad_row the first row whose
        output is not finite, or -1."""
        st = self.stack
        if self.model._flat is not self.flat:  # the compiled epoch packed another layout since
            self.flat = _flat.flat_params(self.model, st)
        flat = self.flat
        flat.check()
        out = np.empty((X.shape[0], self.n_out), dtype=X.dtype)
        kernel = kernels.predict_rows
        args = (flat.params, flat.running, self.layout, st.sizes, st.acts, st.pieces, st.norm, st.slopes)
        n_threads = 1
        if X.shape[0] >= 2 * PARALLEL_ROWS and kernels.name != "numpy":  # (counting threads costs ~10 us)
            n_threads = min(_threads.fused_threads(), X.shape[0] // PARALLEL_ROWS)
        if n_threads <= 1:
            return out, kernel(X, *args, out)
        bounds = [X.shape[0] * t // n_threads for t in range(n_threads + 1)]
        bad = [-1] * n_threads

        def part(t):
            lo, hi = bounds[t], bounds[t + 1]
            row = kernel(X[lo:hi], *args, out[lo:hi])
            bad[t] = row + lo if row >= 0 else -1

        with _threads.single_threaded_blas():
            workers = [threading.Thread(target=part, args=(t,)) for t in range(1, n_threads)]
            for w in workers:
                w.start()
            part(0)
            for w in workers:
                w.join()
        return out, next((b for b in bad if b >= 0), -1)


def predictor(model):
    """A :class:`Predictor` for ``model``, kept on it while its layers stay the same, or None when the compiled
    forward pass cannot run it (then ``predict`` goes layer by layer)."""
    cached = getattr(model, "_predictor", None)
    if cached is not None and cached[0] == [id(layer) for layer in model.layers]:
        return cached[1]
    stack, reason = _fused._parse(model, inference=True)
    made = Predictor(model, stack) if stack is not None else None
    if made is None:  # said once per model (and layer list): the result is the same, only slower
        warnings.warn(f"predict runs layer by layer, not in the compiled forward pass: {reason}", UserWarning,
                      stacklevel=4)
    model._predictor = ([id(layer) for layer in model.layers], made)
    return made
