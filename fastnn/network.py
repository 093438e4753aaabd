"""``Sequential``: a stack of layers with fit / predict / evaluate.

Regularization convention (the seeds', Nielsen's ``network2``): with ``n`` the number of training
samples given to ``fit``,

- L2: C = C0 + l2 / (2n) * sum(w^2), so each step adds (l2 / n) * w to the weight gradient
  (the seeds' "weight decay" factor 1 - eta * l2 / n with plain SGD);
- L1: C = C0 + l1 / n * sum(|w|), adding (l1 / n) * sign(w).

They apply to weights only (``W`` of Dense and Maxout layers), never to biases, PReLU slopes or
BatchNorm's gamma/beta. C0 is the mean loss over the batch, so the penalty's weight per step does not
depend on the batch size. ``evaluate`` reports the data loss C0 alone.

Reproducibility: one ``numpy.random.Generator`` made from ``fit(seed=...)`` draws, per epoch, the
shuffling permutation, then per batch the augmentation parameters and each Dropout layer's mask seed
(in layer order). The three backends therefore see the same batches and masks, and with float64 they
follow the same trajectory up to rounding. ``Sequential(seed=...)`` draws the initial weights from
one Generator in layer order.

Bit-identical results need the same seed, data, backend, dtype, BLAS thread count (OpenBLAS splits large
products between threads differently), fused or layer-by-layer path, and library versions/CPU; then two
runs, in one process or two, give the same bits (tests/test_numeric_faults.py). A checkpoint
(``fit(..., checkpoint=path)``) stores the Generator's state with the weights and optimizer, so
``fastnn.load(path).fit(..., resume=True)`` continues bit-identically (tests/test_checkpoints.py).

Inputs are checked before any kernel runs (``ValueError``/``TypeError`` naming the argument); X of any
real dtype and layout is converted once to the model dtype, C-contiguous. ``predict``/``evaluate``
raise ``ValueError`` rather than return a non-finite output; ``fit`` raises ``TrainingDiverged``.
"""
import contextlib
import math
import time
import warnings

import numpy as np

from . import engine as _engine
from . import predict as _predict
from . import io as _io
from . import backend as _backend
from . import losses as _losses
from . import metrics as _metrics
from . import optim as _optim
from ._checks import (FLOAT_DTYPES, check_array, check_consistent_length, check_finite, check_scalar, check_sparse,
                      is_sparse)
from ._kernels import constants as _constants
from ._kernels.reference import fused as _fused_spec
from .init import get_rng
from . import layers as _layers
from .layers import BatchNorm, Dense, Dropout, Layer
from .training import (History, ProgressLogger, TrainingDiverged, TrainingInterrupted, generator_from_state,
                       generator_state)

__all__ = ["Sequential"]


def _sample_weights(sample_weight, class_weight, labels, n_classes, n, dtype):
    """fit's per-row weights of the model dtype from ``sample_weight`` times ``class_weight`` (the one place
    they are checked and combined), or None when neither is given."""
    if sample_weight is None and class_weight is None:
        return None
    w = np.ones(n)
    if sample_weight is not None:
        w = check_array(sample_weight, "sample_weight", ndim=1, dtype=np.float64)
        check_consistent_length(np.empty((n, 0)), w, names=("X", "sample_weight"))
        if (w < 0).any():
            raise ValueError(f"sample_weight must be >= 0; found {w[w < 0][0]} at index {int(np.argmax(w < 0))}")
    if class_weight is not None:
        if labels is None:
            raise ValueError("class_weight needs class targets (integer labels or one-hot rows) in y")
        counts = np.bincount(labels, minlength=n_classes)
        if isinstance(class_weight, str) and class_weight == "balanced":
            # scikit-learn's compute_class_weight("balanced", classes=the classes present, y)
            per_class = n / (np.count_nonzero(counts) * np.maximum(counts, 1))
        elif isinstance(class_weight, dict):
            per_class = np.ones(n_classes)
            for label, value in class_weight.items():
                if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_classes:
                    raise ValueError(f"class_weight has the key {label!r}; expected class labels in [0, {n_classes})")
                per_class[label] = check_scalar(value, f"class_weight[{label}]", min_val=0.0)
        else:
            raise ValueError(f"class_weight must be a dict {{label: weight}}, 'balanced' or None, got {class_weight!r}")
        w = w * per_class[labels]
    if not w.sum() > 0:
        raise ValueError("the sample weights (sample_weight times class_weight) sum to 0: nothing to learn from")
    return w.astype(dtype)


PREDICT_BATCH = 4096  # rows per forward pass in predict/evaluate: bounds memory on big inputs


class Sequential:
    """A feed-forward network: ``layers`` applied in order.

    Parameters
    ----------
    layers : list of fastnn.layers.Layer
        Consecutive widths must agree (e.g. ``Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid()``).
    dtype : "float32" or "float64"
        Parameters, activations and gradients use this dtype end to end; inputs are converted once.
    backend : None or "numpy", "numba", "cython"
        Kernels for this model; None follows the global backend (:func:`fastnn.set_backend`).
    seed : None or int
        If given, re-draw every layer's initial parameters from ``numpy.random.default_rng(seed)``.

    Attributes
    ----------
    optimizer : fastnn.optim.Optimizer or None
        The optimizer of the last ``fit`` (or loaded by :func:`fastnn.load`); ``fit(optimizer=None)``
        resumes with it.
    loss : fastnn.losses.Loss or None
        The loss of the last ``fit``; the default of ``evaluate``.
    """

    def __init__(self, layers, dtype="float32", backend=None, seed=None):
        if isinstance(layers, Layer):
            layers = [layers]
        try:
            layers = list(layers)
        except TypeError:
            raise TypeError(f"layers must be a list of fastnn.layers.Layer, got {type(layers).__name__}") from None
        if not layers:
            raise ValueError("Sequential needs at least one layer, got an empty list")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} is a {type(layer).__name__}, not a fastnn.layers.Layer")
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError("the same layer object appears twice; create a new layer for each position")
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in FLOAT_DTYPES:
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.layers = layers
        self.backend = backend
        if seed is not None:
            rng = get_rng(seed, "seed")
            for layer in layers:
                layer.reset_parameters(rng)
        for layer in layers:
            layer.astype(self.dtype)
        self.n_in, self.n_out = self._widths()
        self.optimizer = None
        self.loss = None
        self.stop_training = False
        # Where the last fit stopped (epochs done, the Generator's state...): what fit(resume=True) and a
        # checkpoint need. None while an epoch is under way or after a failure (the weights would not match).
        self.training_state = None

    # -- structure -------------------------------------------------------------------------------------

    def _widths(self):
        first, width = None, None
        for i, layer in enumerate(self.layers):
            if layer.n_in is None:
                continue
            if width is not None and layer.n_in != width:
                raise ValueError(
                    f"layer {i} ({layer!r}) expects {layer.n_in} inputs but the layers before it give {width}"
                )
            first = layer.n_in if first is None else first
            width = layer.n_out
        return first, width

    @property
    def backend(self):
        """The backend name of this model, or None to follow the global backend."""
        return self._backend

    @backend.setter
    def backend(self, name):
        if name is not None:
            name = _backend._check_name(name)
            _backend.kernels(name)  # fail now, with the install hint, if it cannot load
        self._backend = name

    def _scope(self):
        return _backend.use_backend(self._backend) if self._backend else contextlib.nullcontext()

    def params(self):
        """The trainable arrays, in layer order (the optimizer updates them in place)."""
        return [p for layer in self.layers for p in layer.params]

    def grads(self):
        """The gradients from the last backward pass, matching ``params()``."""
        return [g for layer in self.layers for g in layer.grads]

    def count_params(self):
        """The number of trainable scalars."""
        return sum(p.size for p in self.params())

    def get_weights(self):
        """Copies of every layer's arrays in layer order (Dense: W (n_in, n_out), then b (n_out,);
        BatchNorm: gamma, beta, running_mean, running_var; PReLU: alpha)."""
        return [a.copy() for layer in self.layers for _, a in layer.state_arrays()]

    def set_weights(self, weights):
        """Copy ``weights`` (the layout of ``get_weights``) into the model, converting to its dtype."""
        weights = list(weights)
        expected = sum(len(layer.state_arrays()) for layer in self.layers)
        if len(weights) != expected:
            raise ValueError(f"this model holds {expected} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.state_arrays())
            arrays = [
                check_array(w, f"weights[{i + j}]", min_ndim=1, allow_empty=True)
                for j, w in enumerate(weights[i:i + n])
            ]
            layer.set_state_arrays(arrays)
            i += n

    def summary(self):
        """A text table of the layers, their output widths and parameter counts."""
        rows = [f"Sequential(dtype={self.dtype.name}, backend={self._backend or 'global'})"]
        width = self.n_in
        for i, layer in enumerate(self.layers):
            width = layer.n_out if layer.n_out is not None else width
            count = sum(p.size for p in layer.params)
            rows.append(f"  {i:>2}  {layer!r:<44} out={width!s:<6} params={count}")
        rows.append(f"  total params: {self.count_params()}")
        return "\n".join(rows)

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential([{inner}], dtype={self.dtype.name!r}, backend={self._backend!r})"

    # -- passes ----------------------------------------------------------------------------------------

    def _check_X(self, X, name="X", finite=True):
        if (type(X) is np.ndarray and X.dtype == self.dtype and X.ndim == 2 and X.flags.c_contiguous
                and X.shape[0] > 0 and X.shape[1] == self.n_in):
            if finite:
                check_finite(X, name)  # already what the kernels take: the one O(n) check left
            return X
        # scipy.sparse input stays sparse (CSR of the model dtype): the first Dense layer multiplies it
        # with the sparse kernels, so 10^5 features cost what their stored values cost.
        if is_sparse(X):
            if not isinstance(self.layers[0], Dense):
                raise TypeError(f"a sparse {name} needs a Dense or Maxout first layer (the layer that multiplies "
                                f"it), this model starts with {self.layers[0]!r}; pass {name}.toarray()")
            X = check_sparse(X, name, self.dtype)
        else:
            X = check_array(X, name, ndim=2, dtype=self.dtype)
        if self.n_in is not None and X.shape[1] != self.n_in:
            raise ValueError(f"{name} has {X.shape[1]} features, but the model expects {self.n_in}")
        return X

    def _forward(self, x, training, seeds=None):
        """The layers in order; in training, ``seeds`` (if given) are the mask seeds of the Dropout layers
        with p > 0, in order (fit draws them, :func:`fastnn.engine.epoch_draws`)."""
        k = 0
        for layer in self.layers:
            if seeds is not None and isinstance(layer, Dropout) and layer.p > 0:
                x = layer.forward(x, training, seeds[k])
                k += 1
            else:
                x = layer.forward(x, training)
        return x

    def _backward(self, grad, skip_last):
        """Backpropagate grad (dC/d output, or the fused dC/dz of the last layer when ``skip_last``)."""
        layers = self.layers[:-1] if skip_last else self.layers
        for i in range(len(layers) - 1, -1, -1):
            layer = layers[i]
            if i == 0 and isinstance(layer, Dense):
                layer.backward(grad, need_input_grad=False)  # nobody needs dC/dX
            else:
                grad = layer.backward(grad)

    def predict(self, X, batch_size=None, check_input=True):
        """The last layer's output for X (n, n_in), in inference mode: array (n, n_out) of the model dtype.

        X is converted to the model dtype (any real numeric dtype, any memory order; no copy when it
        already is a C-contiguous array of it), or, for a scipy.sparse X, to CSR. A model of fastnn's
        layers runs as one compiled forward pass (:mod:`fastnn.predict`: chunks of 256 rows, several
        threads for many rows); otherwise layer by layer, ``batch_size`` (int >= 1, default 4096) rows per
        pass. Raises ``ValueError`` if the output is not finite (values that overflow the model dtype inside
        the network), never returns NaN. ``check_input=False`` skips the scan of X for NaN and infinities
        (the one check that reads every element) when X is already a C-contiguous array of the model dtype:
        for callers that have just made that check themselves (scikit-learn's ``check_input``); a NaN in X
        then gives an unspecified result.
        """
        X = self._check_X(X, finite=check_input)
        return self._predict(X, batch_size, "X")

    def _predict(self, X, batch_size, name):
        step = PREDICT_BATCH if batch_size is None else check_scalar(batch_size, "batch_size", int, min_val=1)
        compiled = None if is_sparse(X) else _predict.predictor(self)
        backend = self._backend or _backend.get_backend()
        if compiled is not None and backend != "numpy":  # (compiled kernels raise no NumPy warnings)
            out, row = compiled(X, _backend.kernels(backend))
        else:
            # Overflow is reported below, once, as an error naming the row (not as RuntimeWarnings on the way).
            with self._scope(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if compiled is not None:
                    out, row = compiled(X, _backend.kernels(backend))
                elif X.shape[0] <= step:
                    out = self._forward(X, False)
                else:
                    out = np.concatenate([self._forward(X[i:i + step], False) for i in range(0, X.shape[0], step)])
            if compiled is None:
                bad = ~np.isfinite(out).all(axis=1)
                row = int(np.argmax(bad)) if bad.any() else -1
        if row >= 0:
            value = out[row][~np.isfinite(out[row])][0]
            raise ValueError(
                f"the model's output for row {row} of {name!r} is {value} (not finite): values overflow "
                f"{self.dtype.name} inside the network. Scale the inputs or use dtype='float64'."
            )
        return out

    def evaluate(self, X, y, loss=None, batch_size=None):
        """Loss (data term only, no L1/L2 penalty) and the metrics that fit the targets, on (X, y).

        ``loss`` defaults to the loss of the last ``fit``. Returns ``{"loss", "accuracy"}`` for class
        targets (the fraction of correct argmax predictions, or ``output > 0.5`` for one output) and for
        multi-label 0/1 rows (the fraction of correct elements); ``{"loss", "mse", "mae", "r2"}`` for
        other targets (regression). See :mod:`fastnn.metrics`. Inputs are checked as in ``fit``.
        """
        result = self._evaluate(X, y, loss, batch_size, ("X", "y"))
        if "r2" in result:
            del result["accuracy"]  # kept by _evaluate only for fit's val_accuracy (NaN)
        return result

    def _evaluate(self, X, y, loss, batch_size, names):
        loss = self._get_loss(loss)
        X = self._check_X(X, names[0])
        targets, labels = loss.prepare(y, self.n_out if self.n_out is not None else X.shape[1], self.dtype,
                                       name=names[1])
        check_consistent_length(X, targets, names=names)
        a = self._predict(X, batch_size, names[0])
        with self._scope():
            value = loss.value(a, targets)
        return {"loss": value, "accuracy": float("nan"), **_metrics.report(a, targets, labels)}

    def loss_and_grads(self, X, y, loss=None, training=True):
        """One forward and backward pass over (X, y) without updating anything.

        Returns ``(loss_value, grads)``: the mean data loss (float) and copies of the gradients of it
        with respect to ``params()``, in that order. ``training`` selects the forward mode (Dropout masks
        and BatchNorm batch statistics when True; BatchNorm cannot backpropagate in inference mode).
        Useful for gradient checks.
        """
        loss = self._get_loss(loss)
        X = self._check_X(X)
        check_consistent_length(X, y, names=("X", "y"))
        n_out = self.n_out if self.n_out is not None else X.shape[1]
        targets, _ = loss.prepare(y, n_out, self.dtype)
        fused = loss.fused_with is not None and isinstance(self.layers[-1], getattr(_layers, loss.fused_with))
        with self._scope():
            a = self._forward(X, training)
            value = loss.value(a, targets)
            self._backward(loss.delta(a, targets) if fused else loss.grad(a, targets), fused)
        return value, [g.copy() for g in self.grads()]

    def _get_loss(self, loss):
        if loss is None:
            if self.loss is None:
                raise ValueError("no loss given and the model has not been fit; pass loss=...")
            return self.loss
        return _losses.get(loss)

    # -- training --------------------------------------------------------------------------------------

    def fit(
        self,
        X,
        y,
        loss=None,
        optimizer=None,
        epochs=1,
        batch_size=32,
        validation_data=None,
        shuffle=True,
        seed=None,
        l1=0.0,
        l2=0.0,
        callbacks=(),
        verbose=1,
        augment=None,
        clip_norm=None,
        use_fused=True,
        checkpoint=None,
        checkpoint_every=1,
        resume=False,
        sample_weight=None,
        class_weight=None,
        check_input=True,
    ):
        """Train by mini-batch gradient descent; return a :class:`fastnn.training.History`.

        Every argument is checked before any kernel runs (``ValueError``/``TypeError`` naming it).

        Parameters
        ----------
        X : array (n, n_in)
            Training inputs, converted once to the model dtype (any real numeric dtype -- bool, integers,
            float16/32/64 -- and any memory order; NaN and infinities are refused).
        y : array (n,) of int labels, (n, n_out) one-hot or float targets
            See :mod:`fastnn.losses` for what each loss accepts.
        loss : str, Loss or None
            ``"quadratic"``, ``"mse"``, ``"cross_entropy"``, ``"log_likelihood"`` (alias
            ``"categorical_cross_entropy"``). None resumes with ``self.loss`` when the model has one
            (after a fit or a load), else ``"quadratic"``.
        optimizer : str, Optimizer or None
            None resumes with ``self.optimizer`` when the model has one, else ``SGD(lr=0.01)``.
        epochs : int
            The number of epochs to train; with ``resume=True``, the total number of epochs of the run
            (Keras's ``epochs`` with ``initial_epoch``): training goes on from the epoch it stopped at.
        batch_size : int or None
            Samples per step; None is full-batch gradient descent, 1 is stochastic. The last batch
            of an epoch may be smaller; a batch size larger than n means one batch of n.
        validation_data : (X_val, y_val) or None
            Evaluated after each epoch into ``val_loss``/``val_accuracy``.
        shuffle : bool
            Reshuffle the samples each epoch.
        seed : None, int or Generator
            Seeds shuffling, dropout masks and augmentation (one Generator for all). Ignored with
            ``resume=True``: the Generator continues from the saved state.
        l1, l2 : float
            Regularization strengths lambda (see the module docstring: lambda/n, weights only).
        callbacks : iterable of Callback
            E.g. ``EarlyStopping``, learning-rate schedules from :mod:`fastnn.optim`; a callback's
            ``on_progress(epoch, batches_done, logs)`` follows the batches as they are applied.
        verbose : int
            0 silent, >= 1 one progress line per epoch.
        augment : Augment, callable or None
            ``fastnn.augment.Augment()`` (runs inside the compiled epoch), or any ``augment(x_batch, rng)
            -> x_batch'`` (a Python callable: training then runs step by step), applied to every batch.
        clip_norm : float or None
            Clip the global gradient norm to this value before every step.
        use_fused : bool
            Run each epoch as one compiled call (:mod:`fastnn.fused`) when fastnn can compile everything
            this fit asks for -- every built-in layer, loss, optimizer and option -- which it then says
            in ``History.engine``; the result equals the step-by-step engine within rounding. When it
            cannot (a layer or loss written in Python, an ``augment`` callable, a callback that runs after
            every batch), fit warns once, naming the reason, and trains step by step. False forces the
            step-by-step engine (no warning); so does the environment variable ``FASTNN_FUSED=0``.
        checkpoint : str, os.PathLike or None
            Save the model (:func:`fastnn.save`, atomically), its optimizer and the training state needed
            to resume (epochs done, the Generator's state, batch size, shuffle) to this file every
            ``checkpoint_every`` epochs and after the last epoch.
        checkpoint_every : int >= 1
        resume : bool
            Go on from ``self.training_state``: the state a checkpoint file (``fastnn.load``) or the
            previous ``fit`` of this model recorded. Training then continues exactly as the uninterrupted
            run would have (same data, same backend: bit-identical weights). ``batch_size`` and
            ``shuffle`` must be those of the recorded run, and ``callbacks`` must hold learning-rate
            schedules of the same types in the same order (their progress is restored). Other callbacks
            (``EarlyStopping``) start afresh.
        sample_weight : array (n,) of non-negative numbers, or None
            Each batch's loss becomes the weighted mean sum_i w_i C_i / sum_i w_i over its rows (as
            scikit-learn's MLP and torch's weighted ``reduction="mean"``; a batch whose weights sum to 0
            has gradient 0); History's ``loss`` is the weighted mean over the epoch, ``accuracy`` stays
            unweighted.
        class_weight : dict, "balanced" or None
            Weights per class label (0 .. k-1) that multiply ``sample_weight``; ``"balanced"`` is
            n / (k * count(label)), as scikit-learn computes it. Needs class targets.
        check_input : bool
            False skips the scan of X for NaN and infinities (the one check that reads every element)
            when X is already a C-contiguous array of the model dtype: for callers that have just made
            that check themselves, as ``fastnn.MLPClassifier`` after scikit-learn's ``validate_data``
            (a NaN in X then gives an unspecified result).

        Raises
        ------
        fastnn.training.TrainingDiverged
            (a ``FloatingPointError``) when a batch's loss (or, with ``clip_norm``, its gradient norm) is
            NaN or infinite. It names the epoch and batch; that batch's update is not applied, so the
            model keeps the weights it had before it when they are finite. If an earlier step already
            made them non-finite (the loss is checked every batch, the weights at the end of every
            epoch), the model and its optimizer go back to their state at the start of that epoch; the
            message says which.
        fastnn.training.TrainingInterrupted
            (a ``KeyboardInterrupt``) on Ctrl-C: training stops after the batch under way, so the model
            keeps the weights of its last completed step with the matching optimizer state; the
            exception names the epoch and batch.
        """
        X = self._check_X(X, finite=check_input)
        n = X.shape[0]
        loss = _losses.get(loss if loss is not None else (self.loss or "quadratic"))
        n_out = self.n_out if self.n_out is not None else X.shape[1]
        targets, labels = loss.prepare(y, n_out, self.dtype)
        check_consistent_length(X, targets, names=("X", "y"))
        weights = _sample_weights(sample_weight, class_weight, labels, n_out, n, self.dtype)
        val = self._prepare_validation(validation_data, loss)
        epochs = check_scalar(epochs, "epochs", int, min_val=0)
        batch_size = n if batch_size is None else check_scalar(batch_size, "batch_size", int, min_val=1)
        batch_size = min(batch_size, n)  # one batch of n; keeps the kernels' int64 arguments in range
        l1 = check_scalar(l1, "l1", min_val=0.0)
        l2 = check_scalar(l2, "l2", min_val=0.0)
        if clip_norm is not None:
            clip_norm = check_scalar(clip_norm, "clip_norm", min_val=0.0, include_boundaries="neither")
        if augment is not None and not callable(augment):
            raise TypeError(f"augment must be callable as augment(x_batch, rng), got {type(augment).__name__}")
        if augment is not None and is_sparse(X):
            raise ValueError("augment transforms dense images, but X is sparse; pass X.toarray() or no augment")
        if optimizer is None:
            optimizer = self.optimizer if self.optimizer is not None else _optim.SGD(lr=0.01)
        optimizer = _optim.get(optimizer)
        # The rate may have been changed on the object since it was made.
        check_scalar(optimizer.lr, "optimizer.lr", min_val=0.0, include_boundaries="neither")
        n_batches = math.ceil(n / batch_size)
        norms = [(1.0, 1.0)] if any(isinstance(layer, BatchNorm) for layer in self.layers) else None
        _fused_spec.check_batches(n, batch_size, norms)
        if checkpoint is not None:
            checkpoint = _io.check_output_path(checkpoint, "checkpoint")
        checkpoint_every = check_scalar(checkpoint_every, "checkpoint_every", int, min_val=1)
        callbacks = list(callbacks)
        # Callbacks whose progress a checkpoint records (learning-rate schedules), in order.
        stateful = [cb for cb in callbacks if callable(getattr(cb, "state_dict", None))]
        if resume:
            initial_epoch, rng = self._resume_state(epochs, n, batch_size, shuffle, stateful)
        else:
            initial_epoch, rng = 0, get_rng(seed, "seed")
        self.optimizer = optimizer
        self.loss = loss
        if verbose:
            callbacks.append(ProgressLogger())
        for cb in callbacks:
            cb.set_model(self)
        # Planned before params() is taken: the compiled epoch makes the layers' arrays views into its buffer.
        engine, reason = _engine.choose(self, loss, optimizer, l1, l2, clip_norm, augment, callbacks, use_fused)
        if reason is not None:
            warnings.warn(f"fit trains step by step, not in the compiled epoch: {reason}", UserWarning, stacklevel=2)
        self.fused_runner = engine if engine.engine == "compiled" else None
        history = History(engine=engine.engine, reason=reason)
        progress = _engine.Progress(callbacks, n_batches)
        n_drop = sum(1 for layer in self.layers if isinstance(layer, Dropout) and layer.p > 0)
        compiled_augment = _engine.compiled_augment(augment)
        weight_total = n if weights is None else float(np.sum(weights, dtype=np.float64))
        self.stop_training = False
        settings = {"n_samples": n, "batch_size": batch_size, "shuffle": bool(shuffle)}

        with self._scope(), np.errstate(over="ignore", invalid="ignore", divide="ignore"), progress.catch_interrupt():
            for cb in callbacks:
                cb.on_train_begin({"epochs": epochs, "samples": n, "batches": n_batches,
                                   "initial_epoch": initial_epoch})
            for epoch in range(initial_epoch, epochs):
                self.training_state = None  # the weights are mid-epoch until it ends
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                progress.start_epoch(epoch)
                start = time.perf_counter()
                # Restored if a batch leaves non-finite weights (checking every step would cost a pass).
                snapshot = (self.get_weights(), self.optimizer.state_dict())
                lr = self.optimizer.lr
                order = rng.permutation(n) if shuffle else None
                draws = None
                if augment is None or compiled_augment is not None:
                    draws = _engine.epoch_draws(rng, n, batch_size, compiled_augment, n_drop)
                if engine.engine == "compiled":
                    result = engine.run_epoch(X, targets, order, batch_size, draws, weights, progress)
                else:
                    result = engine.run_epoch(X, targets, labels, order, batch_size, draws, rng, weights, progress)
                loss_sum, correct, done, status, last = result
                if status == _constants.STATUS_STOPPED:
                    self.training_state = None
                    raise TrainingInterrupted(
                        f"training interrupted at epoch {epoch + 1}, after batch {done} of {n_batches}; the model "
                        f"keeps the weights of that step (and the matching optimizer state)", epoch + 1, done, history)
                if status != _constants.STATUS_DONE:
                    what = "the gradient norm" if status == _constants.STATUS_NORM else "the loss"
                    self._diverged(f"{what} is {last}", epoch, done, n_batches, snapshot, history)
                if not self._weights_finite():
                    self._diverged("the weights are no longer finite at the end of the epoch", epoch, None,
                                   n_batches, snapshot, history)
                self.training_state = {"epoch": epoch + 1, "rng": generator_state(rng), **settings}
                logs = {"loss": loss_sum / weight_total if weight_total else float("nan"),
                        "accuracy": correct / n if labels is not None else float("nan")}
                if val is not None:
                    result = self._evaluate(val[0], val[1], loss, None, ("X_val", "y_val"))
                    logs["val_loss"], logs["val_accuracy"] = result["loss"], result["accuracy"]
                logs["seconds"] = time.perf_counter() - start
                logs["lr"] = lr
                history.append(epoch, logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
                self.training_state["callbacks"] = [
                    {"type": type(cb).__name__, "state": cb.state_dict()} for cb in stateful]
                last_epoch = epoch + 1 == epochs or self.stop_training
                if checkpoint is not None and ((epoch + 1) % checkpoint_every == 0 or last_epoch):
                    _io.save(self, checkpoint)
                if self.stop_training:
                    break
            for cb in callbacks:
                cb.on_train_end({})
        return history

    def _resume_state(self, epochs, n, batch_size, shuffle, stateful):
        """(initial_epoch, Generator) from ``self.training_state``, checked against this fit's arguments;
        restores the recorded state of the ``stateful`` callbacks (learning-rate schedules)."""
        state = self.training_state
        if state is None:
            raise ValueError(
                "resume=True needs the training state of an earlier run: load a checkpoint written by "
                "fit(..., checkpoint=path) with fastnn.load, or resume the model that last ran fit (and "
                "completed an epoch)"
            )
        done = state["epoch"]
        if epochs < done:
            raise ValueError(
                f"epochs={epochs} is the total number of epochs when resuming, but {done} are already done"
            )
        for name, value in (("n_samples", n), ("batch_size", batch_size), ("shuffle", bool(shuffle))):
            if state.get(name) is not None and state[name] != value:
                what = "X has" if name == "n_samples" else "this fit uses"
                raise ValueError(
                    f"cannot resume exactly: the recorded run used {name}={state[name]!r}, {what} {value!r}"
                )
        recorded = state.get("callbacks") or []
        kinds = [entry["type"] for entry in recorded]
        given = [type(cb).__name__ for cb in stateful]
        if kinds != given:
            raise ValueError(
                f"cannot resume exactly: the recorded run had the schedules {kinds}, this fit has {given}; pass "
                f"callbacks of the same types in the same order (their progress is restored from the record)"
            )
        for cb, entry in zip(stateful, recorded):
            cb.load_state_dict(entry["state"])
        return done, generator_from_state(state["rng"])

    def _weights_finite(self):
        k = _backend.kernels()
        return all(math.isfinite(k.sum_squares(a.reshape(-1))) for layer in self.layers for _, a in layer.state_arrays())

    def _prepare_validation(self, validation_data, loss):
        if validation_data is None:
            return None
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        Xv = self._check_X(Xv, "X_val")
        tv, _ = loss.prepare(yv, self.n_out if self.n_out is not None else Xv.shape[1], self.dtype, name="y_val")
        check_consistent_length(Xv, tv, names=("X_val", "y_val"))
        return Xv, yv

    def _augmented(self, augment, xb, rng):
        out = augment(xb, rng)
        if not isinstance(out, np.ndarray) or out.shape != xb.shape:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(f"augment must return an array of shape {xb.shape}, got {got}")
        if out.dtype != self.dtype or not out.flags.c_contiguous:
            out = np.ascontiguousarray(out, dtype=self.dtype)
        return out

    def _diverged(self, what, epoch, batch, n_batches, snapshot, history):
        """Stop training: keep the current weights if finite, else the epoch's starting weights.

        ``batch`` is the 0-based batch whose loss was not finite, or None when the weights were found
        non-finite at the end of the epoch.
        """
        self.training_state = None
        kept = f"from before batch {batch + 1}" if batch is not None else None
        if batch is None or not self._weights_finite():
            weights, optimizer_state = snapshot
            self.set_weights(weights)
            self.optimizer.load_state_dict(optimizer_state)
            kept = f"from the start of epoch {epoch + 1}; the optimizer state is restored too"
        where = f"batch {batch + 1} of {n_batches}" if batch is not None else f"one of its {n_batches} batches"
        raise TrainingDiverged(
            f"training diverged at epoch {epoch + 1}, {where}: {what}. Training stopped; "
            f"the model keeps its last finite weights ({kept}). Try a smaller learning rate, clip_norm=..., "
            f"or the cross-entropy loss for sigmoid/softmax outputs.",
            epoch + 1,
            None if batch is None else batch + 1,
            history,
        )
