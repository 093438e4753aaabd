"""The fused training path: a whole epoch of a supported model in one kernel call (``kernels/*/fused``).

``plan(model, loss, optimizer, l1, l2)`` returns a :class:`FusedRunner` when the model, loss and optimizer
are all supported, else None (then ``Sequential.fit`` trains layer by layer). Supported:

- layers: ``Dense`` (or, in hidden layers, ``Maxout``), each optionally followed by one ``Sigmoid``,
  ``Tanh``, ``ReLU`` or ``Identity`` (``Softmax`` only at the end; ``LeakyReLU`` with a slope >= 0,
  ``Softplus`` and ``PReLU`` in hidden layers), then, in hidden layers, optionally one ``Dropout`` (its
  masks are the ones the layer-by-layer path draws: the seeds come from fit's generator in the same order);
- loss + output: ``cross_entropy`` after ``Sigmoid``, ``log_likelihood`` after ``Softmax`` (both with the
  fused delta (a - y)/n, as fit uses), ``quadratic`` after any element-wise output;
- optimizer: ``SGD`` (plain, momentum, Nesterov) and ``Adam`` (not AdamW), any ``weight_decay``;
- ``BatchNorm`` directly after a hidden ``Dense`` layer (before its activation);
- ``l1``/``l2`` penalties on weights; no gradient clipping or augmentation, no Dropout or BatchNorm on
  the input or the output.

The runner packs every parameter into one flat buffer (and the optimizer state into one (k, P) array) and
makes the layers' ``W``/``b`` arrays and the optimizer's state arrays views into them, so nothing is copied
between epochs and the layer-by-layer path, ``get_weights``, ``save`` and ``state_dict`` keep working on
the same memory. An epoch then runs every mini-batch (in the order fit drew), forward, backward and update
in one call, and returns what fit's History needs. Set the environment variable ``FASTNN_FUSED=0`` to
turn the fused path off everywhere.

The compiled backends split each batch's work across threads (:meth:`FusedRunner.n_threads`:
:func:`fastnn.threads.fused_threads`, fewer for small batches), each calling BLAS on one thread.
"""
import contextlib
import os

import numpy as np

from . import backend as _backend
from . import layers as _layers
from . import losses as _losses
from . import optim as _optim
from . import threads as _threads
from ._kernels.reference import fused as _codes

__all__ = ["plan", "FusedRunner", "GEMM_MIN", "PARALLEL_MIN"]

# Products of at least this many multiply-adds go to BLAS, smaller ones to hand-written loops. Measured
# on the project machine (Zen4, SciPy's OpenBLAS 0.3.30 with its small-matrix kernels) with
# `python bench/fused_epoch_timing.py --products`: BLAS was faster at every size tried, from 1.5x at
# 10 x 5 x 3 (70 ns against 109 ns) to 5x at 10 x 784 x 30, and whole epochs with loops only were 3-4x
# slower; so 0. (The loops remain for BLAS libraries without fast small-matrix paths.)
GEMM_MIN = 0

# The epoch uses n threads only when each gets at least this many multiply-adds per mini-batch
# (batch size x sum of the layers' n_in x n_out). Measured on the project machine (2 cores, cython,
# float32, batch 10, microseconds per step on 1 / 2 threads): 16-16-16 (5,120 per batch) 3.3 / 3.4,
# 64-32-10 (23,680) 4.1 / 3.3, 256-32-10 (85,120) 6.1 / 5.0, 784-8-10 (63,520) 10.8 / 9.4: the barriers
# (~0.5 us each) cost about what a split saves near 10,000 per thread. 784-h-10 rows:
# `python bench/fused_epoch_timing.py --hidden 8 --epoch-threads 1,2 --gemm-min 0`.
PARALLEL_MIN = 10_000

_ACTS = {
    _layers.Identity: _codes.IDENTITY,
    _layers.Sigmoid: _codes.SIGMOID,
    _layers.Tanh: _codes.TANH,
    _layers.ReLU: _codes.RELU,
    _layers.Softmax: _codes.SOFTMAX,
    _layers.LeakyReLU: _codes.LEAKY_RELU,
    _layers.Softplus: _codes.SOFTPLUS,
    _layers.PReLU: _codes.PRELU,
}


class _Stack:
    """What ``_parse`` found: per Dense/Maxout layer its widths, codes and companions (model order)."""

    def __init__(self):
        self.sizes, self.dense, self.pieces, self.acts, self.slopes, self.drop = [], [], [], [], [], []
        self.norms, self.prelus = [], []  # the BatchNorm / PReLU layer of each Dense layer, or None


def _parse(model):
    """A :class:`_Stack` of a supported stack of layers, else None."""
    st = _Stack()
    # After a Dense layer: one BatchNorm at most, then one activation at most, then one Dropout at most.
    # After a Maxout layer: no BatchNorm (its place is before the max).
    norm_allowed = act_allowed = drop_allowed = False
    for layer in model.layers:
        kind = type(layer)
        if kind in (_layers.Dense, _layers.Maxout):
            if st.dense and st.sizes[-1] != layer.n_in:
                return None
            if not st.dense:
                st.sizes.append(layer.n_in)
            st.sizes.append(layer.n_out)
            st.dense.append(layer)
            st.pieces.append(layer.pieces if kind is _layers.Maxout else 1)
            st.acts.append(_codes.IDENTITY)
            st.slopes.append(0.0)
            st.drop.append(0.0)
            st.norms.append(None)
            st.prelus.append(None)
            norm_allowed = kind is _layers.Dense
            act_allowed = drop_allowed = True
        elif kind is _layers.BatchNorm and norm_allowed and layer.n_in == st.sizes[-1]:
            st.norms[-1] = layer
            norm_allowed = False
        elif (kind in _ACTS and act_allowed and not (kind is _layers.LeakyReLU and not layer.slope >= 0)
              and not (kind is _layers.PReLU and layer.n_in != st.sizes[-1])):
            st.acts[-1] = _ACTS[kind]
            st.slopes[-1] = layer.slope if kind is _layers.LeakyReLU else 0.0
            st.prelus[-1] = layer if kind is _layers.PReLU else None
            norm_allowed = act_allowed = False
        elif kind is _layers.Dropout and drop_allowed:
            st.drop[-1] = layer.p
            norm_allowed = act_allowed = drop_allowed = False
        else:
            return None
    if (not st.dense or _codes.SOFTMAX in st.acts[:-1] or st.acts[-1] in _codes.HIDDEN_ONLY or st.drop[-1] != 0
            or st.norms[-1] is not None or st.pieces[-1] != 1):
        return None
    st.sizes, st.acts, st.pieces = (np.array(a, dtype=np.int64) for a in (st.sizes, st.acts, st.pieces))
    st.slopes, st.drop = np.array(st.slopes, dtype=np.float64), np.array(st.drop, dtype=np.float64)
    return st


def _loss_code(loss, out_act):
    kind = type(loss)
    if kind is _losses.CrossEntropy and out_act == _codes.SIGMOID:
        return _codes.BCE
    if kind is _losses.LogLikelihood and out_act == _codes.SOFTMAX:
        return _codes.NLL
    if kind is _losses.Quadratic and out_act != _codes.SOFTMAX:
        return _codes.QUADRATIC
    return None


def _optimizer_code(optimizer):
    kind = type(optimizer)
    if kind is _optim.SGD:
        if not optimizer.momentum:
            return _codes.SGD
        return _codes.NESTEROV if optimizer.nesterov else _codes.MOMENTUM
    if kind is _optim.Adam:
        return _codes.ADAM
    return None


def plan(model, loss, optimizer, l1=0.0, l2=0.0, *, clip_norm=None, augment=None):
    """A :class:`FusedRunner` for training ``model`` with ``loss`` and ``optimizer``, or None.

    ``loss`` and ``optimizer`` are objects (``fastnn.losses.get`` / ``fastnn.optim.get`` of what fit got);
    ``l1``/``l2`` are fit's lambdas (divided by the training-set size at each epoch). None when anything
    is unsupported (see the module docstring), when ``clip_norm`` or ``augment`` is set, or when the
    environment variable ``FASTNN_FUSED`` is ``0``.
    """
    if os.environ.get("FASTNN_FUSED", "").strip() == "0" or clip_norm is not None or augment is not None:
        return None
    stack = _parse(model)
    if stack is None:
        return None
    loss_code = _loss_code(loss, int(stack.acts[-1]))
    opt_code = _optimizer_code(optimizer)
    if loss_code is None or opt_code is None:
        return None
    return FusedRunner(model, stack, loss, loss_code, optimizer, opt_code, l1, l2)


class FusedRunner:
    """Runs fused epochs for one model + loss + optimizer (made by :func:`plan`).

    ``params`` (P,) holds every Dense (or Maxout) layer's W (row-major) then b, layer after layer, then every
    BatchNorm's gamma and beta, then every PReLU's alpha; ``state`` (k, P) the optimizer's arrays in the same layout (SGD with
    momentum: the momentum buffer; Adam: exp_avg, then exp_avg_sq); ``running`` the BatchNorm layers'
    running mean and variance. The model's and the optimizer's arrays are views into them.

    ``flush_denormals`` (default True): the compiled kernels flush subnormal floats to zero during the
    epoch (x86 FTZ/DAZ, this thread only, restored afterwards). Measured with
    ``python bench/fused_epoch_timing.py --denormals`` (float32 Adam, 784-100-10 ReLU + softmax, batch
    128, cython): epochs went from 0.28 s to 0.31-0.32 s once ~4,500 moments of dead units had become
    subnormal; with flushing they stayed at 0.28 s, with the same loss and accuracy to 4 decimals.
    """

    flush_denormals = True

    def __init__(self, model, stack, loss, loss_code, optimizer, opt_code, l1, l2):
        self.model, self.dense, self.sizes, self.acts = model, stack.dense, stack.sizes, stack.acts
        self.slopes, self.drop, self.pieces = stack.slopes, stack.drop, stack.pieces
        # (momentum, eps) per layer, eps = 0 where there is no BatchNorm (kernels/reference/fused.py)
        self.norm = np.array([(bn.momentum, bn.eps) if bn is not None else (0.0, 0.0) for bn in stack.norms],
                             dtype=np.float64)
        self.loss, self.loss_code = loss, loss_code
        self.optimizer, self.opt_code = optimizer, opt_code
        self.l1, self.l2 = float(l1), float(l2)
        self.dtype = model.dtype
        sizes = self.sizes
        self.offsets, _ = _codes.param_layout(sizes, self.pieces)
        gammas, runs, _, n_running = _codes.norm_layout(sizes, self.norm, self.pieces)
        alphas, n_params = _codes.prelu_layout(sizes, self.acts, self.norm, self.pieces)
        self.params = np.empty(n_params, dtype=self.dtype)
        self.running = np.empty(n_running, dtype=self.dtype)
        self.state = np.zeros((_codes.STATE_ROWS[opt_code], n_params), dtype=self.dtype)
        # (layer, its parameters' (lo, hi) in params, its buffers' (lo, hi) in running), in model order
        spans = {}
        for l, (layer, (w0, b0)) in enumerate(zip(self.dense, self.offsets)):
            n = int(sizes[l + 1])
            spans[id(layer)] = (layer, [(w0, b0), (b0, b0 + n * int(self.pieces[l]))], [])
            bn = stack.norms[l]
            if bn is not None:
                g, r = int(gammas[l]), int(runs[l])
                spans[id(bn)] = (bn, [(g, g + n), (g + n, g + 2 * n)], [(r, r + n), (r + n, r + 2 * n)])
            if stack.prelus[l] is not None:
                a = int(alphas[l])
                spans[id(stack.prelus[l])] = (stack.prelus[l], [(a, a + n)], [])
        self._bound = [spans[id(layer)] for layer in model.layers if id(layer) in spans]
        self._views = [([self.params[lo:hi].reshape(np.shape(layer.params[i]))
                         for i, (lo, hi) in enumerate(ps)],
                        [self.running[lo:hi] for lo, hi in bs]) for layer, ps, bs in self._bound]
        self._targets = (None, None)
        self._state_views = None
        self.last_objective = None
        self._bind_params()

    def _bind_params(self):
        """Copy the layers' current parameters (and BatchNorm's running statistics) into the flat buffers
        and make the layers hold views of them."""
        for (layer, _, _), (params, buffers) in zip(self._bound, self._views):
            for view, own in zip(params + buffers, layer.params + layer.buffers):
                view[...] = own
            layer.params = list(params)
            if buffers:
                layer.buffers = list(buffers)

    def _ranges(self):
        """(lo, hi) of every parameter in the flat layout, in ``model.params()`` order (W0, b0, ...)."""
        return [r for _, ps, _ in self._bound for r in ps]

    def _bind_state(self):
        """Adopt the optimizer's state (zeros if it has none yet) and make its arrays views of ``state``."""
        names = self.optimizer.state_names
        own = self.optimizer.state
        ranges = self._ranges()
        mismatch = own and (len(own) != len(ranges) or any(
            s[n].size != hi - lo for s, (lo, hi) in zip(own, ranges) for n in names))
        if mismatch:
            raise ValueError(f"{type(self.optimizer).__name__} state does not match the model's parameters")
        views = []
        for i, (lo, hi) in enumerate(ranges):
            entry = {}
            for k, name in enumerate(names):
                view = self.state[k, lo:hi]
                view[...] = own[i][name].reshape(-1) if own else 0
                entry[name] = view
            views.append(entry)
        self.optimizer.state = views
        self._state_views = views

    def _check_bound(self):
        """Re-pack whatever was replaced since the last epoch (a reset, set of new arrays, loaded state)."""
        if any(len(layer.params) != len(params) or any(a is not b for a, b in zip(layer.params, params))
               or (buffers and any(a is not b for a, b in zip(layer.buffers, buffers)))
               for (layer, _, _), (params, buffers) in zip(self._bound, self._views)):
            self._bind_params()
        if self.state.shape[0] and self.optimizer.state is not self._state_views:
            self._bind_state()

    def _hyper(self, n):
        opt = self.optimizer
        h = np.zeros(_codes.N_HYPER)
        h[_codes.LR] = opt.lr
        h[_codes.WEIGHT_DECAY] = opt.weight_decay
        if self.opt_code in (_codes.MOMENTUM, _codes.NESTEROV):
            h[_codes.MU] = opt.momentum
        if self.opt_code == _codes.ADAM:
            h[_codes.BETA1], h[_codes.BETA2] = opt.betas
            h[_codes.EPS] = opt.eps
        h[_codes.L2] = self.l2 / n
        h[_codes.L1] = self.l1 / n
        h[_codes.LOSS_EPS] = _losses._eps(self.dtype)
        h[_codes.FLUSH_DENORMALS] = 1.0 if self.flush_denormals else 0.0
        return h

    def _target_rows(self, targets):
        """The (n, k) float rows the kernel takes: log_likelihood's int labels become one-hot, once per fit."""
        if self._targets[0] is targets:
            return self._targets[1]
        if targets.ndim == 1:
            rows = np.zeros((targets.shape[0], int(self.sizes[-1])), dtype=self.dtype)
            rows[np.arange(targets.shape[0]), targets] = 1
        else:
            rows = np.ascontiguousarray(targets, dtype=self.dtype)
        self._targets = (targets, rows)
        return rows

    def n_threads(self, batch_size):
        """Threads an epoch with this batch size runs on: :func:`fastnn.threads.fused_threads`, fewer when
        the batches are too small to share (``PARALLEL_MIN``), 1 on the numpy backend."""
        if _backend.get_backend() == "numpy":
            return 1
        work = int(batch_size) * int(np.sum(self.sizes[:-1] * self.sizes[1:] * self.pieces))
        return int(max(1, min(_threads.fused_threads(), work // PARALLEL_MIN)))

    def _seeds(self, n_batches, rng):
        """Every batch's dropout seed per layer, int64 (n_batches, L): drawn from ``rng`` in the order fit's
        layer-by-layer path draws them (per batch, each Dropout layer with p > 0 in turn)."""
        seeds = np.zeros((n_batches, len(self.acts)), dtype=np.int64)
        dropped = np.flatnonzero(self.drop > 0)
        if dropped.size:
            if rng is None:
                raise ValueError("a model with Dropout needs rng (a numpy Generator) for its masks")
            seeds[:, dropped] = rng.integers(0, 2**63, size=(n_batches, dropped.size))
        return seeds

    def run_epoch(self, X, targets, order, batch_size, rng=None):
        """Train one epoch; return ``(objective_sum, n_correct, n_updates)`` as the kernel defines them.

        X: (n, n_in) array of the model dtype; targets: what ``loss.prepare`` returned for the training
        data; order: int permutation of range(n), or None for the natural order; batch_size: int;
        rng: the numpy Generator the Dropout masks' seeds are drawn from (models with Dropout only).
        ``objective_sum / n`` is History's ``loss``, ``n_correct / n`` its ``accuracy`` (when the
        targets are classes). ``n_updates`` < ceil(n / batch_size) means the batch of that index had a
        non-finite objective and was not applied (training diverged); ``last_objective`` then holds that
        value (NaN or inf) for the message. ``optimizer.iterations`` advances by ``n_updates``. Call
        inside the model's backend scope (fit does).
        """
        X = np.ascontiguousarray(X, dtype=self.dtype)
        n = X.shape[0]
        order = np.arange(n, dtype=np.int64) if order is None else np.ascontiguousarray(order, dtype=np.int64)
        self._check_bound()
        y = self._target_rows(targets)
        k = _backend.kernels()
        if self.running.size and (n % int(batch_size) == 1 or int(batch_size) == 1):
            raise ValueError(  # as BatchNorm.forward says it
                "BatchNorm needs at least 2 samples per batch in training, got 1; "
                "choose a batch_size that leaves no batch of one sample"
            )
        n_threads = self.n_threads(batch_size)
        seeds = self._seeds(-(-n // int(batch_size)), rng)
        with _threads.single_threaded_blas() if n_threads > 1 else contextlib.nullcontext(True) as blas_limited:
            total, correct, updates, last = k.train_epoch(
                X, y, order, self.params, self.state, self.sizes, self.acts, self.loss_code, self.opt_code,
                self._hyper(n), int(batch_size), int(self.optimizer.iterations), GEMM_MIN,
                n_threads if blas_limited else 1, self.drop, seeds, self.norm, self.running, self.slopes,
                self.pieces,
            )
        self.optimizer.iterations += int(updates)
        self.last_objective = float(last)
        return float(total), int(correct), int(updates)
