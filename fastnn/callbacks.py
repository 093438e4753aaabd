"""Callbacks for ``Sequential.fit``, all in one place as in ``keras.callbacks``: ``CSVLogger`` and
``ModelCheckpoint`` (here), ``EarlyStopping``, ``ProgressLogger`` and the ``Callback`` base class (from
:mod:`fastnn.training`) and the learning-rate schedules (from :mod:`fastnn.optim`).

Both write their files atomically (:func:`fastnn.io.atomic_write`): after every epoch the file on disk
is complete, old or new, even if the process is killed. Neither overrides a per-batch hook, so ``fit``
keeps its fused path (one compiled call per epoch).
"""
import csv
import math
import os

from .io import atomic_write, check_output_path, save
from .optim import CosineAnnealingLR, ExponentialLR, ReduceLROnPlateau, StepLR
from .training import METRICS, Callback, EarlyStopping, ProgressLogger, _monitor_mode, _monitored

__all__ = [
    "Callback", "CSVLogger", "ModelCheckpoint", "EarlyStopping", "ProgressLogger",
    "StepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau",
]


class CSVLogger(Callback):
    """Write one CSV row per epoch to ``path``: ``epoch`` (1-based, as the progress lines count) and every
    value ``fit`` reports at the end of an epoch (``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``,
    ``seconds``, ``lr``), floats at full precision (``nan`` where there is none).

    The file is rewritten whole, atomically, after every epoch. With ``append=True`` the rows of an
    existing file are kept and new rows follow them, in its columns (to log a resumed run in one file).
    """

    def __init__(self, path, separator=",", append=False):
        self.path = check_output_path(path, "path")
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a single character, got {separator!r}")
        self.separator, self.append = separator, bool(append)

    def on_train_begin(self, logs=None):
        self.columns, self.rows = None, []
        if self.append and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as f:
                table = [row for row in csv.reader(f, delimiter=self.separator) if row]
            if table:
                self.columns, self.rows = table[0], table[1:]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.columns is None:
            self.columns = ["epoch", *logs]
        self.rows.append([epoch + 1, *(logs.get(name, "") for name in self.columns[1:])])
        with atomic_write(self.path, "w", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator, lineterminator="\n")
            writer.writerow(self.columns)
            writer.writerows(self.rows)


class ModelCheckpoint(Callback):
    """Save the model with :func:`fastnn.save` (atomically) at the end of an epoch.

    With ``save_best_only`` (the default) only when ``monitor`` improved on its best value so far
    (``mode`` "min", "max", or "auto": max for names containing "acc", else min), so ``path`` ends up
    holding the best model of the run; otherwise after every epoch. ``path`` may hold format fields:
    ``{epoch}`` (1-based) and any metric, e.g. ``"model-{epoch:02d}-{val_loss:.4f}.npz"``.

    The file holds the weights, the optimizer state and the training state as ``fit(checkpoint=...)``
    writes them. After training, ``best`` is the best value seen and ``best_epoch`` its 0-based epoch
    (None when nothing was saved for being best).
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto"):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
        self.path = os.fspath(path)
        try:  # the template, tried with every value fit reports
            example = self.path.format(epoch=1, **dict.fromkeys(METRICS, 0.0))
        except (KeyError, AttributeError, IndexError, ValueError) as exc:
            raise ValueError(f"path={self.path!r} is not a template of epoch and {', '.join(METRICS)} "
                             f"({type(exc).__name__}: {exc})") from None
        check_output_path(example, "path")
        self.monitor, self.save_best_only = monitor, bool(save_best_only)
        self.mode = _monitor_mode(monitor, mode)
        self.best = self.best_epoch = None

    def on_train_begin(self, logs=None):
        self.best = self.best_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if not self._improved(value):
                return
            self.best, self.best_epoch = value, epoch
        save(self.model, self.path.format(epoch=epoch + 1, **logs))

    def _improved(self, value):
        if math.isnan(value):
            return False
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

