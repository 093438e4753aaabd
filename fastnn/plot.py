"""Learning curves of a training run, drawn with matplotlib (the optional ``plot`` extra).

``learning_curves(history, "curves.png")`` (or ``history.plot("curves.png")``) draws the loss per epoch
and, when the targets are classes, the accuracy, each for the training data and the validation data,
with the epoch of the lowest validation loss marked. The figure is a plain ``matplotlib.figure.Figure``
(no pyplot state, no backend chosen), so it works in scripts, threads and notebooks alike.
"""
import math
import os

from ._optional import require
from .io import atomic_write, check_output_path

__all__ = ["learning_curves"]

_SERIES = (("", "training", "C0", "o"), ("val_", "validation", "C1", "s"))


def _curves(history):
    """{metric: list of floats (NaN for missing)} and the 1-based epoch numbers of ``history``."""
    if hasattr(history, "history") and hasattr(history, "epoch"):  # a fastnn.training.History
        curves, epochs = history.history, [e + 1 for e in history.epoch]
    elif isinstance(history, dict):  # History.to_dict() or the "history" of the CLI's --json summary
        curves = history
        epochs = list(range(1, len(history.get("loss") or []) + 1))
    else:
        raise TypeError(f"history must be a fastnn.training.History or a dict of lists, got {type(history).__name__}")
    clean = {k: [math.nan if v is None else float(v) for v in (values or [])] for k, values in curves.items()}
    return clean, epochs


def _plain(value, position=None):
    """A log axis label as a plain number: 0.3, 3000 (not 3e-01, 3 x 10^3)."""
    return f"{value:g}"


def _plain_235(value, position=None):
    """Minor log-axis labels at 2, 3 and 5 x 10^k only."""
    return _plain(value) if value > 0 and f"{value:e}"[0] in "235" else ""


def _finite(values):
    return any(math.isfinite(v) for v in values)


def learning_curves(history, path=None, title=None):
    """Plot training and validation loss (and accuracy, for class targets) against the epoch.

    Parameters
    ----------
    history : fastnn.training.History or dict
        What ``fit`` returned, or a dict of per-epoch lists (``History.to_dict()``, or the ``"history"``
        of ``python -m fastnn train --json``).
    path : str, os.PathLike or None
        Save the figure there, atomically; the format follows the extension (``.png``, ``.svg``,
        ``.pdf``, ...). None: only return the figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    require("matplotlib", "plot", "fastnn.plot.learning_curves")
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    if path is not None:
        path = check_output_path(path, "path")
        fmt = os.path.splitext(path)[1][1:].lower()
        supported = Figure().canvas.get_supported_filetypes()
        if fmt not in supported:
            raise ValueError(f"path={path!r}: the file name must end in one of "
                             f"{', '.join('.' + ext for ext in sorted(supported))} (the image format)")
    curves, epochs = _curves(history)
    if not epochs:
        raise ValueError("history holds no epochs to plot")
    metrics = ["loss"] + [m for m in ("accuracy",) if _finite(curves.get(m, [])) or _finite(curves.get("val_" + m, []))]

    fig = Figure(figsize=(4.8 * len(metrics), 3.6), layout="constrained")
    for ax, metric in zip(fig.subplots(1, len(metrics), squeeze=False)[0], metrics):
        drawn = []
        for prefix, label, color, marker in _SERIES:
            values = curves.get(prefix + metric, [])
            if _finite(values):
                ax.plot(epochs[:len(values)], values, color=color, marker=marker if len(epochs) <= 30 else None,
                        markersize=3.5, label=label)
                drawn += [v for v in values if math.isfinite(v)]
        if metric == "loss" and min(drawn) > 0:
            ax.set_yscale("log")  # losses fall by decades: the late epochs stay readable
            ax.yaxis.set_major_formatter(FuncFormatter(_plain))
            # Label the ticks between the powers of 10 as far as room allows: all, 2/3/5 x 10^k, none.
            span = max(drawn) / min(drawn)
            minor = FuncFormatter(_plain) if span < 10 else FuncFormatter(_plain_235) if span < 100 else NullFormatter()
            ax.yaxis.set_minor_formatter(minor)
        val_loss = curves.get("val_loss", [])
        if _finite(val_loss):  # the epoch ModelCheckpoint(save_best_only=True) or EarlyStopping would keep
            best = min((v, e) for e, v in zip(epochs, val_loss) if math.isfinite(v))[1]
            ax.axvline(best, color="0.5", linestyle=":", linewidth=1,
                       label=f"lowest validation loss (epoch {best})" if metric == "loss" else None)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    if path is not None:
        with atomic_write(path) as f:
            fig.savefig(f, format=fmt, dpi=120)
    return fig
