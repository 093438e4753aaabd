"""The compiled epoch: a whole epoch of a model in one kernel call (``kernels/*/fused``'s ``train_epoch``).

``plan(model, loss, optimizer, l1, l2, clip_norm=None, augment=None)`` returns ``(runner, None)`` when the
compiled epoch can train the model, else ``(None, reason)`` with a sentence naming what it cannot take
(``Sequential.fit`` then trains step by step and warns once with that reason). It takes:

- layers: ``Dense`` or ``Maxout``, each optionally followed by one ``BatchNorm`` (hidden layers), one
  activation (``Sigmoid``, ``Tanh``, ``ReLU``, ``LeakyReLU`` with a slope >= 0, ``Softplus``, ``Exp``,
  ``Identity``; ``Softmax`` only last; ``PReLU`` in hidden layers) and one ``Dropout`` (hidden layers);
- every loss of :mod:`fastnn.losses` with any output activation (``cross_entropy`` after ``Sigmoid``,
  ``log_likelihood`` after ``Softmax`` and ``poisson`` after ``Exp`` use the fused delta (a - y)/n, as the
  step-by-step path does);
- every optimizer of :mod:`fastnn.optim`, with any ``weight_decay``; ``l1``/``l2``; ``clip_norm``;
  ``augment`` given as a :class:`fastnn.augment.Augment` (a Python callable cannot run inside the
  compiled epoch); sample weights.

The runner packs every parameter into one flat buffer (and the optimizer state into one (k, P) array) and
makes the layers' arrays and the optimizer's state arrays views into them, so nothing is copied between
epochs and the step-by-step path, ``get_weights``, ``save`` and ``state_dict`` keep working on the same
memory. The kernel runs in a thread of its own while the calling thread waits, reports progress (the
batches the epoch has applied, ``control[DONE]``) and turns Ctrl-C into a stop request the epoch honours
after the batch under way (:mod:`fastnn.engine`). Set the environment variable ``FASTNN_FUSED=0`` to turn
the compiled epoch off everywhere.

The compiled backends split each batch's work across threads (:meth:`FusedRunner.n_threads`:
:func:`fastnn.threads.fused_threads`, fewer for small batches), each calling BLAS on one thread.
"""
import contextlib
import os

import numpy as np

from . import backend as _backend
from . import engine as _engine
from . import layers as _layers
from . import losses as _losses
from . import optim as _optim
from . import flat as _flat
from . import threads as _threads
from ._checks import is_sparse
from ._kernels import constants as _c
from ._kernels import workers as _workers

__all__ = ["plan", "FusedRunner", "GEMM_MIN", "PARALLEL_MIN", "EPOCH_PARALLEL_MIN"]

# Products of at least this many multiply-adds go to BLAS (or the hand-written products), smaller ones to
# plain loops. Measured on the project machine (Zen4, SciPy's OpenBLAS 0.3.30 with its small-matrix kernels)
# with `python bench/fused_epoch_timing.py --products`: BLAS was faster at every size tried, from 1.5x at
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

# ... and only when the whole epoch has at least this many (rows x sum of n_in x n_out): waking the kept
# second thread and meeting it at the epoch's first and last barriers costs ~0.2-0.35 ms an epoch, more than
# a second core saves on less work. Measured on the project machine (cython, float32; BENCHMARKS.md, "Epochs
# too small for two threads"): one batch of 200 rows of 784-100-10 (15.9 M) 0.78 ms on 1 thread, 1.00 on
# 2; MLPClassifier on load_digits (13.3 M an epoch) 123 ms against 164 for 100 epochs. Such an epoch also runs
# in fit's own thread rather than a kept one (``FusedRunner.run_epoch``).
EPOCH_PARALLEL_MIN = 20_000_000

# How often the waiting caller reads the epoch's progress and looks for Ctrl-C (seconds).
POLL_SECONDS = 0.05

_ACTS = {
    _layers.Identity: _c.IDENTITY,
    _layers.Sigmoid: _c.SIGMOID,
    _layers.Tanh: _c.TANH,
    _layers.ReLU: _c.RELU,
    _layers.Softmax: _c.SOFTMAX,
    _layers.LeakyReLU: _c.LEAKY_RELU,
    _layers.Softplus: _c.SOFTPLUS,
    _layers.Exp: _c.EXP,
    _layers.PReLU: _c.PRELU,
}
_LOSSES = {_losses.CrossEntropy: _c.BCE, _losses.LogLikelihood: _c.NLL, _losses.Quadratic: _c.QUADRATIC,
           _losses.MSE: _c.MSE, _losses.Poisson: _c.POISSON}
_OPTIMIZERS = {_optim.Adam: _c.ADAM, _optim.AdamW: _c.ADAMW, _optim.Adagrad: _c.ADAGRAD, _optim.RMSprop: _c.RMSPROP,
               _optim.Adadelta: _c.ADADELTA}


class _Stack:
    """What ``_parse`` found: per Dense/Maxout layer its widths, codes and companions (model order)."""

    def __init__(self):
        self.sizes, self.dense, self.pieces, self.acts, self.slopes, self.drop = [], [], [], [], [], []
        self.norms, self.prelus = [], []  # the BatchNorm / PReLU layer of each Dense layer, or None

    def add_dense(self, layer):
        if not self.dense:
            self.sizes.append(layer.n_in)
        self.sizes.append(layer.n_out)
        self.dense.append(layer)
        self.pieces.append(layer.pieces if isinstance(layer, _layers.Maxout) else 1)
        self.acts.append(_c.IDENTITY)
        self.slopes.append(0.0)
        self.drop.append(0.0)
        self.norms.append(None)
        self.prelus.append(None)


def _name(i, layer):
    return f"layer {i} ({type(layer).__name__})"


def _parse(model, inference=False):
    """``(stack, None)`` for a stack the compiled epoch takes, else ``(None, reason)``. With ``inference``,
    the stack the compiled forward pass takes: Dropout (the identity then) anywhere, BatchNorm (its
    running statistics) and PReLU on the output layer too."""
    st = _Stack()
    stage = None  # what the current Dense layer has had after it: None, "norm", "act", "drop"
    for i, layer in enumerate(model.layers):
        kind = type(layer)
        if inference and kind is _layers.Dropout:
            continue
        if kind in (_layers.Dense, _layers.Maxout):
            st.add_dense(layer)
            stage = "dense"
        elif stage is None:
            return None, f"{_name(i, layer)} comes before any Dense layer"
        elif kind is _layers.BatchNorm and stage == "dense":
            st.norms[-1] = layer
            stage = "norm"
        elif kind in _ACTS and stage in ("dense", "norm"):
            if kind is _layers.LeakyReLU and not layer.slope >= 0 and not inference:
                return None, f"{_name(i, layer)} has a negative slope"
            st.acts[-1] = _ACTS[kind]
            st.slopes[-1] = layer.slope if kind is _layers.LeakyReLU else 0.0
            st.prelus[-1] = layer if kind is _layers.PReLU else None
            stage = "act"
        elif kind is _layers.Dropout and stage in ("dense", "norm", "act"):
            st.drop[-1] = layer.p
            stage = "drop"
        elif kind in _ACTS or kind in (_layers.BatchNorm, _layers.Dropout):
            after = {"dense": "a Dense layer", "norm": "a BatchNorm", "act": "an activation", "drop": "a Dropout"}
            return None, (f"{_name(i, layer)} follows {after[stage]}: the compiled epoch takes Dense, then at most "
                          "one BatchNorm, one activation and one Dropout, in that order")
        else:
            return None, f"{_name(i, layer)} is not a fastnn layer the compiled epoch knows"
    if not st.dense:
        return None, "the model has no Dense layer"
    for what, found in (("Softmax before the output layer", _c.SOFTMAX in st.acts[:-1]),
                        ("Dropout on the output layer", st.drop[-1] != 0),
                        ("BatchNorm on the output layer", st.norms[-1] is not None and not inference),
                        ("PReLU on the output layer", st.acts[-1] == _c.PRELU and not inference)):
        if found:
            return None, what
    st.sizes, st.acts, st.pieces = (np.array(a, dtype=np.int64) for a in (st.sizes, st.acts, st.pieces))
    st.slopes, st.drop = np.array(st.slopes, dtype=np.float64), np.array(st.drop, dtype=np.float64)
    # (momentum, eps) per layer, eps = 0 where there is no BatchNorm (kernels/reference/fused.py)
    st.norm = np.array([(bn.momentum, bn.eps) if bn is not None else (0.0, 0.0) for bn in st.norms], dtype=np.float64)
    return st, None


def _optimizer_code(optimizer):
    kind = type(optimizer)
    if kind is _optim.SGD:
        if not optimizer.momentum:
            return _c.SGD
        return _c.NESTEROV if optimizer.nesterov else _c.MOMENTUM
    return _OPTIMIZERS.get(kind)


def plan(model, loss, optimizer, l1=0.0, l2=0.0, *, clip_norm=None, augment=None):
    """``(FusedRunner, None)`` for training ``model`` with ``loss`` and ``optimizer``, or ``(None, reason)``.

    ``loss`` and ``optimizer`` are objects (``fastnn.losses.get`` / ``fastnn.optim.get`` of what fit got);
    ``l1``/``l2`` are fit's lambdas (divided by the training-set size at each epoch); ``clip_norm`` fit's;
    ``augment`` None or a :class:`fastnn.augment.Augment` (any other callable is a reason).
    """
    if os.environ.get("FASTNN_FUSED", "").strip() == "0":
        return None, "the environment variable FASTNN_FUSED is 0"
    if augment is not None and _engine.compiled_augment(augment) is None:
        return None, "augment is a Python callable, not a fastnn.augment.Augment"
    stack, reason = _parse(model)
    if stack is None:
        return None, reason
    if augment is not None and augment.side * augment.side != stack.sizes[0]:
        return None, f"Augment(side={augment.side}) does not fit the model's {stack.sizes[0]} inputs"
    loss_code = _LOSSES.get(type(loss))
    if loss_code is None:
        return None, f"the loss {type(loss).__name__} is not one of fastnn's"
    opt_code = _optimizer_code(optimizer)
    if opt_code is None:
        return None, f"the optimizer {type(optimizer).__name__} is not one of fastnn's"
    return FusedRunner(model, stack, loss, loss_code, optimizer, opt_code, l1, l2, clip_norm, augment), None


class FusedRunner:
    """Runs compiled epochs for one model + loss + optimizer (made by :func:`plan`).

    ``params`` (P,) and ``running`` are the model's flat buffers (:mod:`fastnn.flat`, shared with the
    compiled forward pass); ``state`` (k, P) holds the optimizer's arrays in the same layout
    (kernels/reference/fused.py). The model's and the optimizer's arrays are views into them.

    ``flush_denormals`` (default True): the compiled kernels flush subnormal floats to zero during the
    epoch (x86 FTZ/DAZ, this thread only, restored afterwards). Measured with
    ``python bench/fused_epoch_timing.py --denormals`` (float32 Adam, 784-100-10 ReLU + softmax, batch
    128, cython): epochs went from 0.28 s to 0.31-0.32 s once ~4,500 moments of dead units had become
    subnormal; with flushing they stayed at 0.28 s, with the same loss and accuracy to 4 decimals.
    """

    flush_denormals = True
    engine = "compiled"

    def __init__(self, model, stack, loss, loss_code, optimizer, opt_code, l1, l2, clip_norm=None, augment=None):
        self.model, self.dense, self.sizes, self.acts = model, stack.dense, stack.sizes, stack.acts
        self.slopes, self.drop, self.pieces, self.norm = stack.slopes, stack.drop, stack.pieces, stack.norm
        self.loss, self.loss_code = loss, loss_code
        self.optimizer, self.opt_code = optimizer, opt_code
        self.l1, self.l2 = float(l1), float(l2)
        self.clip_norm = 0.0 if clip_norm is None else float(clip_norm)
        self.augment = augment
        self.dtype = model.dtype
        self.flat = _flat.flat_params(model, stack)
        self.state = np.zeros((_c.STATE_ROWS[opt_code], self.flat.params.shape[0]), dtype=self.dtype)
        self._targets = (None, None)
        self._state_views = None
        self.control = _workers.new_control()

    @property
    def params(self):
        return self.flat.params

    @property
    def running(self):
        return self.flat.running

    def _bind_state(self):
        """Adopt the optimizer's state (its initial state if it has none yet) and make its arrays views of
        ``state``."""
        names = self.optimizer.state_names
        ranges = self.flat.ranges()
        own = self.optimizer.state or [self.optimizer._new_state(self.params[lo:hi]) for lo, hi in ranges]
        if len(own) != len(ranges) or any(s[n].size != hi - lo for s, (lo, hi) in zip(own, ranges) for n in names):
            raise ValueError(f"{type(self.optimizer).__name__} state does not match the model's parameters")
        views = []
        for i, (lo, hi) in enumerate(ranges):
            entry = {}
            for k, name in enumerate(names):
                view = self.state[k, lo:hi]
                view[...] = own[i][name].reshape(-1)
                entry[name] = view
            views.append(entry)
        self.optimizer.state = views
        self._state_views = views

    def _check_bound(self):
        """Re-pack whatever was replaced since the last epoch (a reset, set of new arrays, loaded state)."""
        self.flat.check()
        if self.state.shape[0] and self.optimizer.state is not self._state_views:
            self._bind_state()

    def _hyper(self, n):
        """The kernel's float64 hyperparameters (kernels/constants.py's slots) for a training set of n rows."""
        opt = self.optimizer
        h = np.zeros(_c.N_HYPER)
        h[_c.LR] = opt.lr
        h[_c.WEIGHT_DECAY] = opt.weight_decay
        h[_c.MU] = getattr(opt, "momentum", 0.0)
        if hasattr(opt, "betas"):
            h[_c.BETA1], h[_c.BETA2] = opt.betas
        h[_c.EPS] = getattr(opt, "eps", 0.0)
        h[_c.ALPHA] = getattr(opt, "alpha", 0.0)
        h[_c.RHO] = getattr(opt, "rho", 0.0)
        h[_c.LR_DECAY] = getattr(opt, "lr_decay", 0.0)
        h[_c.L1], h[_c.L2] = _losses.penalty_coefficients(self.l1, self.l2, n)
        h[_c.LOSS_EPS] = _losses._eps(self.dtype)
        h[_c.FLUSH_DENORMALS] = 1.0 if self.flush_denormals else 0.0
        h[_c.CLIP_NORM] = self.clip_norm
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

    def multiply_adds(self, rows):
        """The layers' products' multiply-adds for ``rows`` rows: rows x the sum of n_in x n_out (x pieces)."""
        return int(rows) * int(np.sum(self.sizes[:-1] * self.sizes[1:] * self.pieces))

    def small_epoch(self, n_rows):
        """Whether an epoch of ``n_rows`` rows is under ``EPOCH_PARALLEL_MIN``: one thread, fit's own."""
        return self.multiply_adds(n_rows) < EPOCH_PARALLEL_MIN

    def n_threads(self, batch_size, n_rows):
        """Threads an epoch of ``n_rows`` rows in batches of ``batch_size`` runs on:
        :func:`fastnn.threads.fused_threads`, fewer when the batches are too small to share
        (``PARALLEL_MIN``), 1 when the whole epoch is (``small_epoch``) and on the numpy backend."""
        if _backend.get_backend() == "numpy" or self.small_epoch(n_rows):
            return 1
        return int(max(1, min(_threads.fused_threads(), self.multiply_adds(batch_size) // PARALLEL_MIN)))

    def run_epoch(self, X, targets, order, batch_size, draws, weights=None, progress=None):
        """Train one epoch; return ``(objective_sum, n_correct, n_updates, status, last)`` as the kernel
        defines them (kernels/reference/fused.py), status one of kernels/constants.py's STATUS_ codes.

        X: (n, n_in) array of the model dtype, or a scipy.sparse CSR matrix of it; targets: what ``loss.prepare`` returned for the training
        data; order: int permutation of range(n), or None for the natural order; batch_size: int; draws:
        the epoch's random numbers (:func:`fastnn.engine.epoch_draws`: augmentation table and dropout
        seeds); weights: (n,) sample weights of the model dtype or None; progress: None or an object with
        ``update(batches_done)`` and ``interrupted`` (:class:`fastnn.engine.Progress`), polled while the
        kernel runs in a thread of its own; an epoch under ``EPOCH_PARALLEL_MIN`` multiply-adds runs in this
        thread instead (handing it to a kept thread and waking this one after cost ~0.2 ms, more than
        the epoch's work), so a Ctrl-C during it stops the next epoch before its first batch.
        ``optimizer.iterations`` advances by the updates applied. Call inside the model's backend scope (fit
        does).
        """
        if progress is not None and progress.interrupted:  # Ctrl-C came between epochs, or in a short one
            return 0.0, 0, 0, _c.STATUS_STOPPED, 0.0
        sparse = None
        if is_sparse(X):  # (CSR of the model dtype: fit checked it) the kernel reads the stored values only
            sparse, X = (X.data, X.indices, X.indptr), None
            n = sparse[2].shape[0] - 1
        else:
            X = np.ascontiguousarray(X, dtype=self.dtype)
            n = X.shape[0]
        order = np.arange(n, dtype=np.int64) if order is None else np.ascontiguousarray(order, dtype=np.int64)
        self._check_bound()
        y = self._target_rows(targets)
        k = _backend.kernels()
        n_threads = self.n_threads(batch_size, order.shape[0])
        table, drawn = draws
        augment = None if table is None else (self.augment.side, table)
        seeds = np.zeros((drawn.shape[0], len(self.acts)), dtype=np.int64)  # per batch, per layer
        seeds[:, np.flatnonzero(self.drop > 0)] = drawn
        self.control[_c.STOP] = 0
        with _threads.single_threaded_blas() if n_threads > 1 else contextlib.nullcontext(True) as blas_limited:
            args = (X, y, order, self.params, self.state, self.sizes, self.acts, self.loss_code, self.opt_code,
                    self._hyper(n), int(batch_size), int(self.optimizer.iterations), GEMM_MIN,
                    n_threads if blas_limited else 1, self.drop, seeds, self.norm, self.running, self.slopes,
                    self.pieces, weights, augment, self.control, sparse)
            short = self.small_epoch(n)
            total, correct, updates, last = _call_polling(k.train_epoch, args, self.control,
                                                          None if short else progress)
        if short and progress is not None:
            progress.update(int(self.control[_c.DONE]))
        self.optimizer.iterations += int(updates)
        return float(total), int(correct), int(updates), int(self.control[_c.STATUS]), float(last)


def _call_polling(kernel, args, control, progress):
    """kernel(*args) in a thread of its own while this thread reports control[DONE] to ``progress`` and
    passes a Ctrl-C on as control[STOP] (without progress: in this thread)."""
    if progress is None:
        return kernel(*args)
    outcome = []
    errstate = np.geterr()  # (thread-local: the reference backend's NumPy warnings as the caller has them)

    def body():
        try:
            with np.errstate(**errstate):
                outcome.append((True, kernel(*args)))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append((False, exc))

    progress.control = control
    running = _workers.start(body)
    try:
        finished = False
        while not finished:
            finished = running.wait(POLL_SECONDS)
            if progress.interrupted:
                control[_c.STOP] = 1
            progress.update(int(control[_c.DONE]))
    finally:
        progress.control = None
        if not running.done():  # an exception in this thread (a second Ctrl-C): let the epoch end first
            control[_c.STOP] = 1
            running.wait()
    ok, result = outcome[0]
    if not ok:
        raise result
    progress.update(int(control[_c.DONE]))
    return result
