"""The metrics ``Sequential.evaluate`` reports, chosen by the kind of target.

=========================================  ==================================================================
targets                                    metrics
=========================================  ==================================================================
classes: integer labels, one-hot rows,     ``accuracy``: the fraction of rows whose argmax (or ``a > 0.5`` for
or 0/1 values for a single output          a single output) is the label
multi-label indicators: 0/1 rows that are  ``accuracy``: the fraction of elements with ``(a > 0.5) == y``
not one-hot (several classes per row)      (element-wise, as Keras's ``binary_accuracy``)
anything else (regression)                 ``mse``, ``mae``, ``r2`` (as scikit-learn's ``mean_squared_error``,
                                           ``mean_absolute_error``, ``r2_score``, averaged over the outputs)
=========================================  ==================================================================

Every function takes the model's outputs first, as the losses do: ``metric(a, targets)``, with ``a``
and ``targets`` of shape (n, k) (``accuracy`` takes int64 labels of shape (n,)). Sums accumulate in
float64; results are Python floats, NaN for no rows.
"""
import numpy as np

__all__ = ["accuracy", "count_correct", "multilabel_accuracy", "mean_squared_error", "mean_absolute_error", "r2_score",
           "is_indicator", "report"]


def count_correct(a, labels):
    """The rows whose prediction equals ``labels`` (int64 (n,)): the argmax of each row of a (the first on
    ties), or ``a > 0.5`` when a has a single column, as the compiled epoch counts them."""
    predicted = (a[:, 0] > 0.5) if a.shape[1] == 1 else np.argmax(a, axis=1)
    return int(np.count_nonzero(predicted == labels))


def accuracy(a, labels):
    """Fraction of rows whose prediction equals ``labels`` (``count_correct``). A Python float (NaN for no
    rows)."""
    if labels.shape[0] == 0:
        return float("nan")
    return count_correct(a, labels) / labels.shape[0]


def is_indicator(targets):
    """True when every target is 0 or 1: multi-label indicator rows (when they are not class labels)."""
    return targets.size > 0 and bool(np.all((targets == 0) | (targets == 1)))


def multilabel_accuracy(a, targets):
    """Fraction of elements where ``a > 0.5`` equals the 0/1 ``targets`` (both (n, k))."""
    if targets.size == 0:
        return float("nan")
    return float(np.count_nonzero((a > 0.5) == (targets == 1))) / targets.size


def _errors(a, targets):
    return np.asarray(targets, dtype=np.float64) - np.asarray(a, dtype=np.float64)


def mean_squared_error(a, targets):
    """Mean over all elements of ``(targets - a)**2``."""
    return float(np.mean(np.square(_errors(a, targets)))) if targets.size else float("nan")


def mean_absolute_error(a, targets):
    """Mean over all elements of ``|targets - a|``."""
    return float(np.mean(np.abs(_errors(a, targets)))) if targets.size else float("nan")


def r2_score(a, targets):
    """Coefficient of determination 1 - SS_res / SS_tot per output column, averaged over the columns.

    A constant target column (SS_tot = 0) scores 1.0 when predicted exactly and 0.0 otherwise, as in
    scikit-learn's ``r2_score`` (``force_finite=True``). NaN for fewer than 2 rows.
    """
    targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    if targets.shape[0] < 2:
        return float("nan")
    ss_res = np.sum(np.square(_errors(a, targets).reshape(targets.shape)), axis=0)
    ss_tot = np.sum(np.square(targets - targets.mean(axis=0)), axis=0)
    constant = ss_tot == 0
    scores = np.where(constant, np.where(ss_res == 0, 1.0, 0.0), 1.0 - ss_res / np.where(constant, 1.0, ss_tot))
    return float(np.mean(scores))


def report(a, targets, labels):
    """The metrics for outputs ``a`` against prepared ``targets``: ``{"accuracy": ...}`` when ``labels``
    (int64 class labels, or None) are given or the targets are 0/1 indicators, else ``mse``, ``mae``
    and ``r2``."""
    if labels is not None:
        return {"accuracy": accuracy(a, labels)}
    if is_indicator(targets):
        return {"accuracy": multilabel_accuracy(a, targets)}
    with np.errstate(over="ignore", invalid="ignore"):  # targets near the float64 limit: inf, as the loss
        return {"mse": mean_squared_error(a, targets), "mae": mean_absolute_error(a, targets),
                "r2": r2_score(a, targets)}
