"""Loss functions by name and the targets they take (``accuracy`` lives in :mod:`fastnn.metrics`).

Every loss is a mean over the n samples of a batch (the kernels' conventions, see
``kernels/reference/losses.py``), so gradients are already divided by n:

===============================  =====================================================  ==================
name                             C                                                      output layer
===============================  =====================================================  ==================
``"quadratic"``                  1/(2n) sum_x ||y - a||^2  (Nielsen's quadratic cost)   any
``"mse"``                        mean over all n*k elements of (y - a)^2 (Keras's mse)  any
``"cross_entropy"``              -1/n sum_x sum_j [y ln a + (1-y) ln(1-a)]  (binary,    Sigmoid
                                 per output unit; a clipped to [eps, 1-eps])
``"log_likelihood"`` (alias      -1/n sum_x ln a[label]  (a clipped below at eps)       Softmax
``"categorical_cross_entropy"``)
``"poisson"``                    1/n sum_x sum_j [a - y + y ln(y / a)]  (half the       Exp
                                 Poisson deviance, scikit-learn's; y >= 0; a clipped
                                 below at eps, y ln(y / a) = 0 where y = 0)
===============================  =====================================================  ==================

eps is 1e-7 for float32 and 1e-12 for float64. When the last layer is ``Sigmoid`` with
``"cross_entropy"``, ``Softmax`` with ``"log_likelihood"`` or ``Exp`` with ``"poisson"``, the network skips that layer's backward
pass and starts backpropagation from the fused delta ``(a - y) / n``, which never divides by a.

Targets: integer class labels of shape (n,) or one-hot rows (n, k) for every loss; float targets of
shape (n, k) (or (n,) when k = 1) for the quadratic, mse, cross-entropy and Poisson losses.
"""
import numpy as np

from ._checks import check_array, check_in_range, check_labels
from .backend import kernels
from .metrics import accuracy, count_correct  # noqa: F401  (fit's training accuracy: with the other metrics)

__all__ = ["Loss", "Quadratic", "MSE", "CrossEntropy", "LogLikelihood", "Poisson", "LOSSES", "get", "accuracy",
           "penalty_coefficients", "count_correct"]


def _eps(dtype):
    return 1e-7 if np.dtype(dtype) == np.float32 else 1e-12


def _is_integer(y):
    return np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_


def _one_hot_labels(y):
    """Row labels if every row of the 2-D array y is one-hot (one 1, the rest 0), else None."""
    if y.ndim != 2 or y.shape[1] < 2:
        return None
    ones = y == 1
    if np.all(ones | (y == 0)) and np.all(ones.sum(axis=1) == 1):
        return np.argmax(y, axis=1).astype(np.int64)
    return None


def _binary_labels(column):
    """column as int64 labels when every value is 0 or 1, else None."""
    if np.all((column == 0) | (column == 1)):
        return column.astype(np.int64)
    return None


class Loss:
    """Base class. ``prepare`` turns user targets into the array ``value``/``grad``/``delta`` take."""

    name = None
    fused_with = None  # name of the output layer class whose fused delta this loss has
    needs_labels = False  # True: targets are int64 labels (n,); False: float rows (n, k)

    def prepare(self, y, n_out, dtype, name="y"):
        """Return ``(targets, labels)``: the array this loss takes, and int64 labels (n,) for accuracy
        (None when the targets are not classes). ``name`` is the argument named in error messages."""
        try:
            y = np.asarray(y)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"argument {name!r} could not be converted to an array of targets: {exc}") from None
        if y.ndim not in (1, 2):
            raise ValueError(
                f"Expected labels of shape (n,) or target rows of shape (n, {n_out}) for argument {name!r}, "
                f"got shape {y.shape}"
            )
        if self.needs_labels:
            return self._prepare_labels(y, n_out, name)
        return self._prepare_rows(y, n_out, dtype, name)

    def _prepare_labels(self, y, n_out, name):
        if y.ndim == 1:
            labels = check_labels(y, n_out, name=name)
        else:
            if y.shape[1] != n_out:
                raise ValueError(f"one-hot {name!r} has {y.shape[1]} columns but the network has {n_out} outputs")
            rows = check_array(y, name, ndim=2)
            labels = _one_hot_labels(rows)
            if labels is None:
                bad = ~(((rows == 0) | (rows == 1)).all(axis=1) & ((rows == 1).sum(axis=1) == 1))
                row = int(np.argmax(bad))
                raise ValueError(
                    f"the {self.name} loss needs integer class labels or one-hot rows (one 1, the rest 0) "
                    f"in {name!r}; row {row} is {rows[row].tolist()}"
                )
        return labels, labels

    def _prepare_rows(self, y, n_out, dtype, name):
        if y.ndim == 1 and _is_integer(y) and n_out > 1:
            labels = check_labels(y, n_out, name=name)
            rows = np.zeros((y.shape[0], n_out), dtype=dtype)
            rows[np.arange(y.shape[0]), labels] = 1
            return rows, labels
        rows = check_array(y, name, ndim=(1, 2), dtype=dtype)
        if rows.ndim == 1:
            if n_out != 1:
                raise ValueError(
                    f"float targets {name!r} of shape {rows.shape} need a network with 1 output, this one has "
                    f"{n_out}; pass integer labels or rows of shape (n, {n_out})"
                )
            rows = rows.reshape(-1, 1)
        if rows.shape[1] != n_out:
            raise ValueError(f"targets {name!r} have {rows.shape[1]} columns but the network has {n_out} outputs")
        labels = _one_hot_labels(rows) if n_out > 1 else _binary_labels(rows[:, 0])
        return rows, labels

    def value(self, a, targets, w=None):
        """The loss (Python float, accumulated in float64) of outputs a (n, k) against prepared targets;
        with per-row weights w (n,) of a's dtype, their weighted mean (kernels/reference/losses.py)."""
        raise NotImplementedError

    def grad(self, a, targets, w=None):
        """dC/da, shape (n, k), dtype of a."""
        raise NotImplementedError

    def delta(self, a, targets, w=None):
        """Fused dC/dz for the matching output layer (``fused_with``), from its output a."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}()"


class Quadratic(Loss):
    name = "quadratic"

    def value(self, a, targets, w=None):
        return kernels().quadratic_loss(a, targets, w)

    def grad(self, a, targets, w=None):
        return kernels().quadratic_grad(a, targets, w)


class MSE(Loss):
    name = "mse"

    def value(self, a, targets, w=None):
        return kernels().mse_loss(a, targets, w)

    def grad(self, a, targets, w=None):
        return kernels().mse_grad(a, targets, w)


class CrossEntropy(Loss):
    """Binary cross-entropy summed over output units (Nielsen's cross-entropy cost), for sigmoid outputs."""

    name = "cross_entropy"
    fused_with = "Sigmoid"

    def prepare(self, y, n_out, dtype, name="y"):
        targets, labels = super().prepare(y, n_out, dtype, name)
        check_in_range(targets, name, 0.0, 1.0, what="cross-entropy targets")
        return targets, labels

    def value(self, a, targets, w=None):
        return kernels().bce_loss(a, targets, _eps(a.dtype), w)

    def grad(self, a, targets, w=None):
        return kernels().bce_grad(a, targets, _eps(a.dtype), w)

    def delta(self, a, targets, w=None):
        return kernels().sigmoid_bce_delta(a, targets, w)


class LogLikelihood(Loss):
    """Negative log-likelihood of the true class, for softmax outputs (categorical cross-entropy)."""

    name = "log_likelihood"
    fused_with = "Softmax"
    needs_labels = True

    def value(self, a, targets, w=None):
        return kernels().nll_loss(a, targets, _eps(a.dtype), w)

    def grad(self, a, targets, w=None):
        return kernels().nll_grad(a, targets, _eps(a.dtype), w)

    def delta(self, a, targets, w=None):
        return kernels().softmax_nll_delta(a, targets, w)


class Poisson(Loss):
    """Half the Poisson deviance summed over output units (scikit-learn's ``MLPRegressor(loss="poisson")``), for
    positive outputs such as ``Exp``'s; targets are counts or rates >= 0."""

    name = "poisson"
    fused_with = "Exp"

    def prepare(self, y, n_out, dtype, name="y"):
        targets, labels = super().prepare(y, n_out, dtype, name)
        check_in_range(targets, name, 0.0, np.inf, what="Poisson targets (counts or rates)")
        return targets, None

    def value(self, a, targets, w=None):
        return kernels().poisson_loss(a, targets, _eps(a.dtype), w)

    def grad(self, a, targets, w=None):
        return kernels().poisson_grad(a, targets, _eps(a.dtype), w)

    def delta(self, a, targets, w=None):
        return kernels().exp_poisson_delta(a, targets, w)


LOSSES = {
    "quadratic": Quadratic,
    "mse": MSE,
    "cross_entropy": CrossEntropy,
    "binary_cross_entropy": CrossEntropy,
    "log_likelihood": LogLikelihood,
    "categorical_cross_entropy": LogLikelihood,
    "poisson": Poisson,
}


def get(loss):
    """A loss object from a name in ``LOSSES`` or a ``Loss`` instance (returned as is)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss):
        return loss()
    if isinstance(loss, str) and loss.lower() in LOSSES:
        return LOSSES[loss.lower()]()
    raise ValueError(f"unknown loss {loss!r}; valid losses are {', '.join(LOSSES)}")


def penalty_coefficients(l1, l2, n):
    """The coefficients fit adds to the weight gradients for its ``l1``/``l2`` over a training set of n
    rows: (l1 / n, l2 / n) (the seeds' convention: C = C0 + l2/(2n) sum w^2 + l1/n sum |w|)."""
    return l1 / n, l2 / n

