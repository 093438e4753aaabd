"""What ``Sequential.fit`` reports and how it can be steered: History, callbacks, early stopping.

Callbacks follow Keras's protocol: ``set_model(model)``, then ``on_train_begin(logs)`` (logs:
``epochs``, ``samples``, ``batches`` per epoch), ``on_epoch_begin(epoch, logs)``,
``on_train_batch_end(batch, logs)`` (alias ``on_batch_end``), ``on_epoch_end(epoch, logs)`` and
``on_train_end(logs)``; a callback stops training by setting ``model.stop_training = True`` (checked
after each epoch). ``epoch`` and ``batch`` are 0-based. ``logs``
at epoch end holds ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` (when there is validation
data), ``seconds`` and ``lr``.
"""
import math
import sys

import numpy as np

__all__ = [
    "History", "Callback", "EarlyStopping", "ProgressLogger", "TrainingDiverged", "TrainingInterrupted",
    "generator_state", "generator_from_state",
]

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "lr")


class TrainingDiverged(FloatingPointError):
    """Training produced a non-finite loss or gradient. The model keeps its last finite weights.

    Attributes: ``epoch`` and ``batch`` (1-based, where it happened; ``batch`` is None when the weights
    were found non-finite at the end of the epoch although every batch's loss was finite) and ``history``
    (the epochs completed in this fit).
    """

    def __init__(self, message, epoch, batch, history):
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``fit`` after the batch under way. The model keeps the weights of that step and the
    matching optimizer state. Attributes: ``epoch`` (1-based), ``batch`` (the batches of that epoch
    applied) and ``history`` (the epochs completed in this fit)."""

    def __init__(self, message, epoch, batch, history):
        super().__init__(message)
        self.epoch, self.batch, self.history = epoch, batch, history


class History:
    """Per-epoch metrics of one ``fit``, as lists indexed by epoch (0-based).

    ``loss``/``accuracy`` are means over the epoch's mini-batches (weighted by batch size) of the training
    objective (data loss plus the L1/L2 penalty) and accuracy, measured as training went (with dropout
    active), as Keras reports them. ``val_loss``/``val_accuracy`` are measured on the validation data
    after the epoch (data loss only) and are empty without validation data. Accuracy is NaN when the
    targets are not classes. ``seconds`` is the wall time of each epoch, ``lr`` the learning rate used.
    ``engine`` says how the epochs ran: ``"compiled"`` (one kernel call each) or ``"step"`` (batch by
    batch in Python), and ``reason`` why not compiled (None when they were, or when fit was asked to).
    """

    def __init__(self, engine=None, reason=None):
        self.history = {name: [] for name in METRICS}
        self.epoch = []
        self.engine, self.reason = engine, reason

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for name in METRICS:
            if name in logs:
                self.history[name].append(logs[name])

    def __getattr__(self, name):
        if name in METRICS:
            return self.__dict__["history"][name]
        raise AttributeError(name)

    def __len__(self):
        return len(self.epoch)

    def plot(self, path=None, title=None):
        """Draw the learning curves (and save them to ``path``): see :func:`fastnn.plot.learning_curves`."""
        from .plot import learning_curves

        return learning_curves(self, path, title)

    def to_dict(self):
        """Plain lists, JSON-serialisable (NaN becomes None)."""
        clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return {name: [clean(v) for v in values] for name, values in self.history.items()}

    def __repr__(self):
        last = {k: v[-1] for k, v in self.history.items() if v}
        return f"History(epochs={len(self)}, last={last})"


class Callback:
    """Base class; override any of the hooks. ``self.model`` is the model being trained."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        """After every training step; logs: ``size`` (samples in the batch) and ``loss`` (its objective).
        A callback that overrides it (or its alias ``on_batch_end``, as in Keras) runs Python after every
        batch, so fit trains step by step (and says so); to follow progress, use ``on_progress``."""
        self.on_batch_end(batch, logs)

    def on_batch_end(self, batch, logs=None):
        """Alias of ``on_train_batch_end`` (Keras's older name)."""

    def on_progress(self, epoch, batches_done, logs=None):
        """The batches of the epoch applied so far (logs: ``batches``, per epoch): after every batch in
        the step-by-step engine, and from the compiled epoch every 50 ms or so while it runs (so not for
        every batch); costs the compiled epoch nothing."""

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs, monitor, who):
    value = (logs or {}).get(monitor)
    if value is None:
        available = ", ".join(k for k in METRICS if k in (logs or {}) and k not in ("seconds", "lr"))
        hint = " (pass validation_data=... to fit)" if monitor.startswith("val_") else ""
        raise ValueError(f"{who} monitors {monitor!r}, which fit does not report{hint}; available: {available}")
    return value


class EarlyStopping(Callback):
    """Stop after ``patience`` epochs in a row (at least 1) in which ``monitor`` did not improve on its
    best value by more than ``min_delta`` (Keras's rule).

    ``mode`` "auto" maximizes metrics whose name contains "acc" and minimizes the others. With
    ``restore_best_weights``, the model ends with the weights of its best epoch. After training,
    ``stopped_epoch`` is the 0-based epoch at which it stopped (None if it did not) and ``best_epoch``
    the epoch with the best value.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, restore_best_weights=False, mode="auto"):
        if patience < 0 or min_delta < 0:
            raise ValueError("patience and min_delta must be >= 0")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.restore_best_weights = bool(restore_best_weights)
        self.mode = _monitor_mode(monitor, mode)

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.best_weights = None, None, None
        self.wait, self.stopped_epoch = 0, None

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if not math.isnan(value) and self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class ProgressLogger(Callback):
    """One line per epoch: ``Epoch 3/10 - 1.20s - 6667 samples/s - loss: 0.3124 - accuracy: 0.9012 ...``."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_train_begin(self, logs=None):
        self.epochs = (logs or {}).get("epochs")
        self.samples = (logs or {}).get("samples", 0)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = logs.get("seconds", 0.0)
        parts = [f"Epoch {epoch + 1}/{self.epochs}", f"{seconds:.2f}s"]
        if seconds > 0:
            parts.append(f"{self.samples / seconds:.0f} samples/s")
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            value = logs.get(name)
            if value is not None and not (name.endswith("accuracy") and math.isnan(value)):
                parts.append(f"{name}: {value:.4f}")
        print(" - ".join(parts), file=self.stream or sys.stdout, flush=True)


# -- the random state of a run, as JSON (checkpoints) --------------------------------------------------------

# Bit generators a checkpoint may name: looked up in this table, never by a name taken from a file.
_BIT_GENERATORS = {cls.__name__: cls for cls in (
    np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64)}
_STATE_DTYPES = ("uint32", "uint64")


def _to_json(value):
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_json(value):
    if isinstance(value, dict):
        if set(value) == {"array", "dtype"}:
            if value["dtype"] not in _STATE_DTYPES:
                raise ValueError(f"unexpected dtype {value['dtype']!r} in a generator state")
            return np.array(value["array"], dtype=value["dtype"])
        return {k: _from_json(v) for k, v in value.items()}
    return value


def generator_state(rng):
    """The state of ``rng`` (a ``numpy.random.Generator``) as JSON-serialisable plain data."""
    state = rng.bit_generator.state
    if state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"cannot record the state of a {state.get('bit_generator')!r} generator")
    return _to_json(state)


def generator_from_state(state):
    """A new ``numpy.random.Generator`` in the state :func:`generator_state` recorded.

    Raises ValueError for anything that is not such a state (the bit generator is chosen from a fixed
    table of NumPy's: PCG64, PCG64DXSM, MT19937, Philox, SFC64).
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"not a random generator state (bit generator {name!r})")
    bit_generator = _BIT_GENERATORS[name]()
    try:
        bit_generator.state = _from_json(state)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"invalid {name} state ({exc})") from None
    return np.random.Generator(bit_generator)
