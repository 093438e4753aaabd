"""scikit-learn estimators on fastnn: :class:`MLPClassifier` and :class:`MLPRegressor`.

They take the place of ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor`` by changing the import:
the same parameters where the concept exists, the same fitted attributes (``classes_``, ``coefs_``,
``intercepts_``, ``loss_curve_``, ``n_iter_`` ...), ``partial_fit``, ``Pipeline``/``GridSearchCV``/``clone``/
pickling, pandas frames and scipy.sparse input, any label type. Training runs in ``Sequential.fit`` (on the
compiled epoch where it applies), one call per ``fit`` over all epochs; scikit-learn's stopping rule
(``tol``, ``n_iter_no_change``, ``early_stopping``) and learning-rate schedules run as an epoch callback.

How scikit-learn's model maps onto fastnn's (``fit`` of both minimizes the same objective):

- hidden layers ``Dense`` + activation (``"logistic"`` is ``Sigmoid``), optionally ``BatchNorm`` before and
  ``Dropout`` after (``batch_norm``, ``dropout``); outputs: softmax + log-likelihood for several classes,
  one sigmoid unit + cross-entropy for two, sigmoid units + cross-entropy per label for multi-label ``y``,
  identity + the quadratic loss (1/2 mean over samples of the squared error, summed over outputs) for
  regression;
- initial weights and biases as scikit-learn draws them: uniform in +-sqrt(f / (fan_in + fan_out)),
  f = 2 for ``"logistic"``, 6 otherwise;
- ``alpha``: scikit-learn adds alpha/2 ||W||^2 / (the batch's weight sum) to each batch's loss; fastnn's
  ``l2`` is lambda/(2n) with n the training-set size, so ``l2 = alpha * n / (batch_size * mean weight)``
  (equal for every full batch; the last, smaller batch of an epoch gets the penalty of a full one);
- ``solver``: ``"sgd"`` is ``optim.SGD`` (``momentum``, ``nesterovs_momentum``), ``"adam"`` ``optim.Adam``
  (``beta_1``, ``beta_2``, ``epsilon``), fastnn adds ``"adamw"``, ``"rmsprop"``, ``"adagrad"``,
  ``"adadelta"``; the rules are torch.optim's (scikit-learn's differ in where epsilon enters Adam, and
  scale SGD momentum by the current rate). ``"lbfgs"`` is scikit-learn's: SciPy's L-BFGS-B on the objective
  over all the rows (its value and gradient from the layers' kernels), which takes scikit-learn's steps.
- ``warm_start`` and ``partial_fit`` keep the optimizer's state (scikit-learn's ``warm_start`` resets Adam's
  moments, its issue 6091) and continue the shuffling generator, so two warm fits of k epochs are one
  fit of 2k.

scikit-learn is an optional dependency: ``pip install "fastnn-cpu[sklearn]"``.
"""
import contextlib
import functools
import numbers
import warnings

import numpy as np
import scipy.optimize

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:
    raise ImportError(
        'fastnn.MLPClassifier and fastnn.MLPRegressor need scikit-learn: pip install "fastnn-cpu[sklearn]"'
    ) from None
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import backend as _backend
from ._checks import check_in_range
from . import engine as _engine
from . import io as _io
from . import losses as _losses
from . import optim as _optim
from . import threads as _threads
from .layers import BatchNorm, Dense, Dropout, Exp, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from .network import Sequential
from .training import Callback

__all__ = ["MLPClassifier", "MLPRegressor"]

ACTIVATIONS = {"identity": Identity, "logistic": Sigmoid, "tanh": Tanh, "relu": ReLU, "leaky_relu": LeakyReLU,
               "softplus": Softplus}
_OPTIMIZERS = {
    "sgd": lambda e: _optim.SGD(e.learning_rate_init, momentum=e.momentum,
                                nesterov=bool(e.nesterovs_momentum and e.momentum > 0)),
    "adam": lambda e: _optim.Adam(e.learning_rate_init, betas=(e.beta_1, e.beta_2), eps=e.epsilon),
    "adamw": lambda e: _optim.AdamW(e.learning_rate_init, betas=(e.beta_1, e.beta_2), eps=e.epsilon),
    "rmsprop": lambda e: _optim.RMSprop(e.learning_rate_init, eps=e.epsilon),
    "adagrad": lambda e: _optim.Adagrad(e.learning_rate_init, eps=e.epsilon),
    "adadelta": lambda e: _optim.Adadelta(e.learning_rate_init, eps=e.epsilon),
}
_MIN_ADAPTIVE_LR = 1e-6  # learning_rate="adaptive" stops once the rate is this small (scikit-learn's)


def _store(estimator, arguments):
    """Keep every __init__ argument as an attribute of the same name (scikit-learn's convention)."""
    for name, value in arguments.items():
        if name != "self":
            setattr(estimator, name, value)


@functools.cache
def _param_names(cls):
    return cls._get_param_names()


def _pack(arrays):
    """The arrays, flattened into one float64 vector (L-BFGS-B's)."""
    return np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float64)


def _unpack(x, arrays):
    """Copy the float64 vector x back into the arrays (in place, in their own dtype)."""
    start = 0
    for a in arrays:
        a[...] = x[start:start + a.size].reshape(a.shape)
        start += a.size


def _stochastic(estimator):
    """partial_fit's condition (scikit-learn's): a solver that trains in steps."""
    if estimator.solver == "lbfgs":
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. {estimator.solver} is not "
                             "stochastic.")
    return True


def _check_sortable(labels, name):
    """Labels in an object array must sort together (finding the classes sorts them): ValueError naming
    ``name`` and the types mixed, where NumPy would raise a TypeError from inside its sort."""
    if labels.dtype != object:
        return
    try:
        found = set(labels.ravel().tolist())
    except TypeError:  # unhashable labels (lists): scikit-learn's target checks say what is wrong
        return
    try:
        sorted(found)
    except TypeError:
        kinds = ", ".join(sorted({type(label).__name__ for label in found}))
        raise ValueError(f"{name} mixes labels of the types {kinds}, which cannot be sorted together; use labels "
                         "of one kind (all strings or all numbers)") from None


def _labels_in(y):
    """y's labels, sorted: ``np.unique``, or scikit-learn's ``unique_labels`` for an object array (which
    refuses a mix of strings and numbers)."""
    return unique_labels(y) if y.dtype == object else np.unique(y)


class _BaseMLP(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, the training loop."""

    _parameter_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(numbers.Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions(set(_OPTIMIZERS) | {"lbfgs"})],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(numbers.Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "power_t": [Interval(numbers.Real, 0, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],  # torch's SGD: momentum < 1
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "beta_1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta_2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_fun": [Interval(numbers.Integral, 1, None, closed="left")],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "dtype": [StrOptions({"float32", "float64"}), None],
        "backend": [StrOptions({"numpy", "numba", "cython"}), None],
        "n_threads": [Interval(numbers.Integral, 1, None, closed="left"), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False, dtype=None,
                 backend=None, n_threads=None):
        _store(self, locals())

    # -- fitted attributes read from the network -------------------------------------------------------------

    @property
    def coefs_(self):
        """The weight matrices of the Dense layers, (n_in, n_out) each: the network's own arrays."""
        return [layer.params[0] for layer in self.model_.layers if isinstance(layer, Dense)]

    @property
    def intercepts_(self):
        """The biases of the Dense layers: the network's own arrays."""
        return [layer.params[1] for layer in self.model_.layers if isinstance(layer, Dense)]

    # -- training ------------------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features; array-like or scipy.sparse) and y.

        ``sample_weight`` (n_samples,) of non-negative numbers weighs each sample's loss (each batch's loss
        is its weighted mean). Returns self.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        layers = self._hidden_sizes()
        first = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        X, targets, cw_labels = self._validate_input(X, y, first, incremental, classes)
        weights = self._weights(sample_weight, X, cw_labels, incremental)
        if first:
            self._random_state = check_random_state(self.random_state)
            self._initialize(X.shape[1], layers, X.dtype)
        if self.solver == "lbfgs":
            return self._fit_lbfgs(X, targets, weights)
        X_val = y_val = w_val = None
        if self.early_stopping:
            split = [X, targets] + ([weights] if weights is not None else [])
            stratify = targets if self._stratify() else None
            parts = train_test_split(*split, random_state=self._random_state, test_size=self.validation_fraction,
                                     stratify=stratify)
            X, X_val, targets, y_val = parts[:4]
            weights, w_val = (parts[4], parts[5]) if weights is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
        n = X.shape[0]
        batch_size = self._batch_size(n)
        l2 = self._l2(n, batch_size, weights)
        monitor = _Monitor(self, incremental, n, (X_val, y_val, w_val) if self.early_stopping else None)
        extra = {} if weights is None else {"sample_weight": weights}
        with self._threads():
            optimizer = self._make_optimizer() if self.model_.optimizer is None else self.model_.optimizer
            self.model_.fit(X, targets, loss=self._loss, optimizer=optimizer,
                            epochs=1 if incremental else self.max_iter, batch_size=batch_size, shuffle=self.shuffle,
                            seed=self._rng, l2=l2, callbacks=[monitor], verbose=0, check_input=False, **extra)
        if self.early_stopping and monitor.best_weights is not None:
            self.model_.set_weights(monitor.best_weights)
        if not incremental and not monitor.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the optimization "
                          "hasn't converged yet.", ConvergenceWarning)
        return self

    def _fit_lbfgs(self, X, targets, weights):
        """scikit-learn's ``solver="lbfgs"``: SciPy's L-BFGS-B over the whole training set's objective (the
        mean loss plus alpha/2 ||W||^2 over the weight sum), its value and gradient from the layers' kernels
        (the step-by-step engine's pass over one batch of every row)."""
        if self.dropout:
            raise ValueError("dropout needs a stochastic solver: solver='lbfgs' minimizes one deterministic "
                             "objective; use solver='adam' or 'sgd', or dropout=0")
        model, n = self.model_, X.shape[0]
        loss = _losses.get(self._loss)
        rows, _ = loss.prepare(targets, self._n_outputs, model.dtype)
        w = None if weights is None else weights.astype(model.dtype)
        _, l2 = _losses.penalty_coefficients(0.0, self._l2(n, n, weights), n)  # all the rows are one batch
        batch = _engine.StepEpochs(model, loss, None, 0.0, 0.0, None, None, [])
        params, seeds = model.params(), np.zeros(0, np.int64)

        def objective(x):
            _unpack(x, params)
            value, _ = batch.objective_and_grads(_backend.kernels(), X, rows, w, seeds, 0.0, l2)
            return value, _pack(model.grads())

        with self._threads(), model._scope(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = scipy.optimize.minimize(
                objective, _pack(params), method="L-BFGS-B", jac=True,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                         **_get_additional_lbfgs_options_dict("iprint", 1 if self.verbose else -1)})
        _unpack(result.x, params)
        self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
        self.loss_ = float(result.fun)
        return self

    def _l2(self, n, batch_size, weights):
        """fit's ``l2`` for scikit-learn's alpha/2 ||W||^2 over each batch's weight sum, on n rows (module
        docstring): alpha n / (batch size x mean weight)."""
        mean_weight = 1.0 if weights is None else float(np.mean(weights))
        return self.alpha * n / (batch_size * mean_weight) if mean_weight > 0 else 0.0

    def _threads(self):
        """The thread limit training runs under: ``n_threads`` when set (``fastnn.use_num_threads``)."""
        return _threads.use_num_threads(self.n_threads) if self.n_threads else contextlib.nullcontext()

    def _check_params(self):
        """scikit-learn's parameter validation, unless every parameter is the object it was at the last
        validation that passed (so partial_fit validates once per set_params, not for every chunk)."""
        params = {name: getattr(self, name) for name in _param_names(type(self))}
        checked = getattr(self, "_checked_params", None)
        if checked is None or checked.keys() != params.keys() or any(params[k] is not v for k, v in checked.items()):
            self._validate_params()
            self._checked_params = params

    def _hidden_sizes(self):
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if not hasattr(sizes, "__iter__") else list(sizes)
        if any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _model_dtype(self, X_dtype):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X_dtype == np.float32 else np.dtype(np.float64)

    def _validate_X(self, X, reset):
        """X checked (and converted once) for the network; feature names and counts as scikit-learn checks them."""
        dtype = self._model_dtype(getattr(X, "dtype", None)) if reset else self.model_.dtype
        return validate_data(self, X, accept_sparse=["csr", "csc"], dtype=dtype, reset=reset)

    def _weights(self, sample_weight, X, labels, incremental):
        """Per-sample weights (float64) from sample_weight times class_weight, or None."""
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        class_weight = getattr(self, "class_weight", None)
        if class_weight is not None:
            if incremental and class_weight == "balanced":
                raise ValueError("class_weight='balanced' is not supported by partial_fit (each chunk would weigh "
                                 "its own class counts); pass a dict, e.g. from "
                                 "sklearn.utils.class_weight.compute_class_weight over all the data")
            per_sample = compute_sample_weight(class_weight, labels)
            weights = per_sample if weights is None else weights * per_sample
        return weights

    def _batch_size(self, n):
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n))

    def _initialize(self, n_features, hidden, dtype):
        """A new network with scikit-learn's initial weights, its optimizer and the shuffling generator."""
        sizes = [n_features] + hidden + [self._n_outputs]
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Dense(n_in, n_out, init="zeros"))
            if i + 1 < len(sizes) - 1:
                if self.batch_norm:
                    layers.append(BatchNorm(n_out))
                layers.append(ACTIVATIONS[self.activation]())
                if self.dropout:
                    layers.append(Dropout(self.dropout))
        layers.append(self._output_layer())
        self.model_ = Sequential(layers, dtype=dtype, backend=self.backend)
        # scikit-learn's _init_coef: uniform in +-sqrt(f / (fan_in + fan_out)) for weights and biases alike
        factor = 2.0 if self.activation == "logistic" else 6.0
        for layer in (layer for layer in layers if isinstance(layer, Dense)):
            bound = np.sqrt(factor / (layer.n_in + layer.n_out))
            w = self._random_state.uniform(-bound, bound, (layer.n_in, layer.n_out))
            b = self._random_state.uniform(-bound, bound, layer.n_out)
            layer.set_state_arrays([w, b])
        self._rng = np.random.default_rng(self._random_state.randint(np.iinfo(np.int32).max))
        self.n_layers_ = len(sizes)
        self.n_outputs_ = self._n_outputs
        self.n_iter_, self.t_ = 0, 0
        if self.solver == "lbfgs":  # (scikit-learn's lbfgs keeps no loss curve or best loss)
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
        else:
            self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf

    def _make_optimizer(self):
        return _OPTIMIZERS[self.solver](self)

    def _network_output(self, X):
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return self.model_.predict(X, check_input=False)  # (validate_data has checked X for NaN)

    # -- pickling: the network as fastnn's model format (arrays and a JSON header), no runner state ---------

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ may return __dict__ itself
        model = state.pop("model_", None)
        if model is not None:
            state["model_"] = _io.to_arrays(model)
        return state

    def __setstate__(self, state):
        model = state.pop("model_", None)
        super().__setstate__(state)
        if model is not None:
            self.model_ = _io.from_arrays(*model, backend=state.get("backend"), name="a pickled fastnn estimator")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class _Monitor(Callback):
    """scikit-learn's end of epoch, as a fastnn callback: ``loss_curve_``, ``n_iter_``, the stopping rule
    (``tol`` / ``n_iter_no_change`` on the training loss, or on the validation score with
    ``early_stopping``), ``learning_rate`` schedules of ``solver="sgd"``, ``verbose`` lines."""

    def __init__(self, estimator, incremental, n_samples, validation):
        self.est, self.incremental, self.n_samples, self.validation = estimator, incremental, n_samples, validation
        self.stopped = False
        self.best_weights = None
        estimator.n_iter_ = 0

    def on_epoch_end(self, epoch, logs=None):
        est = self.est
        est.n_iter_ += 1
        est.t_ += self.n_samples
        est.loss_ = float(logs["loss"])
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {est.loss_:.8f}")
        improved_by_tol = self._update_scores()
        est._no_improvement_count = 0 if improved_by_tol else est._no_improvement_count + 1
        optimizer = self.model.optimizer
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            optimizer.lr = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            message = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if est.solver == "sgd" and est.learning_rate == "adaptive" and optimizer.lr > _MIN_ADAPTIVE_LR:
                optimizer.lr /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {optimizer.lr:f}")
                return
            if est.verbose:
                print(message)
            self.stopped = True
            self.model.stop_training = True

    def _update_scores(self):
        """Record this epoch's loss or validation score; whether it beat the best by more than tol."""
        est = self.est
        if self.validation is None:
            improved = est.loss_curve_[-1] <= est.best_loss_ - est.tol
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])
            return improved
        X_val, y_val, w_val = self.validation
        score = est._score_encoded(X_val, y_val, w_val)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        improved = score >= est.best_validation_score_ + est.tol
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            self.best_weights = self.model.get_weights()
        return improved


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier on fastnn: a drop-in for ``sklearn.neural_network.MLPClassifier``.

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default=(100,)
        The widths of the hidden layers.
    activation : {"relu", "identity", "logistic", "tanh", "leaky_relu", "softplus"}, default="relu"
        The hidden layers' activation (``leaky_relu`` and ``softplus`` are fastnn's additions).
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop", "adagrad", "adadelta"}, default="adam"
        The optimizer (torch.optim's rules); ``"sgd"`` and ``"adam"`` train on the compiled epoch; ``"lbfgs"``
        is SciPy's L-BFGS-B on the whole training set (no mini-batches, no ``partial_fit``).
    alpha : float >= 0, default=1e-4
        L2 penalty (scikit-learn's: alpha/2 ||W||^2 divided by each batch's weight sum).
    batch_size : int or "auto", default="auto"
        ``min(200, n_samples)`` for "auto".
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        The schedule for ``solver="sgd"`` (as scikit-learn's).
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, momentum,
    nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, n_iter_no_change, max_fun
        As in scikit-learn (``validation_fraction`` is stratified by class; ``momentum`` < 1).
    dropout : float in [0, 1), default=0.0
        Dropout probability after each hidden activation.
    batch_norm : bool, default=False
        Batch normalization before each hidden activation.
    dtype : {"float32", "float64"} or None, default=None
        The network's float type; None follows X: float32 stays float32, everything else is float64 (as
        scikit-learn's MLP computes).
    backend : {"numpy", "numba", "cython"} or None, default=None
        fastnn's kernels; None follows ``fastnn.get_backend()``.
    n_threads : int or None, default=None
        Threads for training and BLAS (``fastnn.use_num_threads``); None: fastnn's default (the cores the
        process may use, within any limit that joblib, Dask or threadpoolctl sets).
    class_weight : dict, "balanced" or None, default=None
        Weights per class label (multiplying ``sample_weight``); "balanced" is
        n_samples / (n_classes * count(label)).

    Attributes
    ----------
    classes_, coefs_, intercepts_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, n_iter_, t_, n_layers_, n_outputs_, out_activation_, n_features_in_,
    feature_names_in_
        As scikit-learn's. ``model_`` is the trained ``fastnn.Sequential``.
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [dict, StrOptions({"balanced"}), None]}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False, dtype=None,
                 backend=None, n_threads=None, class_weight=None):
        _store(self, locals())

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing the network and its optimizer; returns self.

        ``classes`` (every label y may ever hold) is required on the first call; later labels must be
        among them.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _validate_input(self, X, y, first, incremental, classes):
        """(X, the targets fit takes, the labels class_weight reads); sets classes_ when they are new."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True,
                             dtype=self._model_dtype(getattr(X, "dtype", None)) if first else self.model_.dtype,
                             reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        _check_sortable(y, "y")
        if classes is not None:
            _check_sortable(np.asarray(classes, dtype=object), "classes")
        if first or not incremental:
            check_classification_targets(y)
            multilabel = type_of_target(y) == "multilabel-indicator"
        else:  # a later chunk: single-label targets are 1-D, their labels checked against classes_ below
            multilabel = y.ndim == 2 if not self._multilabel else type_of_target(y) == "multilabel-indicator"
        if first:
            if incremental and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            known = unique_labels(classes if classes is not None else y)
            if multilabel:
                known = np.arange(y.shape[1])
            if not multilabel and len(known) < 2:
                raise ValueError(f"y has 1 class ({known[0]!r}); a classifier needs samples of at least 2 classes")
            self.classes_, self._multilabel = known, multilabel
            self._n_outputs = y.shape[1] if multilabel else (1 if len(known) == 2 else len(known))
            self.out_activation_ = "softmax" if self._n_outputs > 1 and not multilabel else "logistic"
            self._loss = "log_likelihood" if self.out_activation_ == "softmax" else "cross_entropy"
        elif incremental and classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to partial_fit, was: "
                             f"{self.classes_!r}")
        if multilabel != self._multilabel or (multilabel and y.shape[1] != self._n_outputs):
            raise ValueError(f"y is {type_of_target(y)} with shape {y.shape}, but this model was fit on "
                             f"{'multi-label' if self._multilabel else 'single-label'} targets")
        if multilabel:
            return X, y, y
        seen = _labels_in(y)
        unknown = np.setdiff1d(seen, self.classes_)
        if unknown.size:
            if self.warm_start and not incremental:
                raise ValueError("warm_start can only be used where `y` has the same classes as in the previous "
                                 f"call to fit. Previously got {self.classes_}, `y` has {seen}")
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                             f"'y' has {seen}.")
        return X, np.searchsorted(self.classes_, y).astype(np.int64), y

    def _stratify(self):
        return not self._multilabel

    def _output_layer(self):
        return Softmax() if self.out_activation_ == "softmax" else Sigmoid()

    def _score_encoded(self, X, targets, weights):
        """Accuracy of the network on encoded targets (validation during early stopping), as scikit-learn's
        ``accuracy_score``: the (weighted) share of rows whose labels are all right; without its checks of
        the targets, which fit has made, and which cost more than a small validation set's forward pass."""
        right = self._decide(self.model_.predict(X)) == targets
        return float(np.average(right.all(axis=1) if right.ndim == 2 else right, weights=weights))

    def _decide(self, out):
        """Encoded predictions from the network's output: class indices, or a 0/1 indicator (multi-label)."""
        if self._multilabel:
            return (out > 0.5).astype(np.int64)
        if out.shape[1] == 1:
            return (out[:, 0] > 0.5).astype(np.int64)
        return np.argmax(out, axis=1)

    def predict(self, X):
        """The predicted labels (n_samples,), or a 0/1 indicator (n_samples, n_labels) for multi-label y."""
        decided = self._decide(self._network_output(X))
        return decided if self._multilabel else self.classes_[decided]

    def predict_proba(self, X):
        """Probabilities (n_samples, n_classes) in the order of ``classes_`` (per label for multi-label y)."""
        out = self._network_output(X)
        if out.shape[1] == 1 and not self._multilabel:
            return np.hstack([1 - out, out])
        return out

    def decision_function(self, X):
        """The output layer's input (logits): (n_samples,) for two classes (> 0 predicts ``classes_[1]``),
        (n_samples, n_classes) for more (the largest predicts) and per label for multi-label y (> 0: 1)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        hidden = Sequential(self.model_.layers[:-1], dtype=self.model_.dtype, backend=self.model_.backend)
        out = hidden.predict(X)
        return out[:, 0] if out.shape[1] == 1 and not self._multilabel else out

    def predict_log_proba(self, X):
        """log(predict_proba(X)); -inf where a probability is 0."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor on fastnn: a drop-in for ``sklearn.neural_network.MLPRegressor``.

    Parameters are those of :class:`MLPClassifier` (without ``class_weight``), after ``loss``:
    ``"squared_error"`` (half the squared error, with a linear output) or ``"poisson"`` (half the Poisson
    deviance, with an exponential output: the log link; y >= 0), as scikit-learn's. y may have several
    columns (multi-output).
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000, dropout=0.0, batch_norm=False,
                 dtype=None, backend=None, n_threads=None):
        _store(self, locals())

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the network and its optimizer; returns self."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_input(self, X, y, first, incremental, classes):
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"], multi_output=True, y_numeric=True,
                             dtype=self._model_dtype(getattr(X, "dtype", None)) if first else self.model_.dtype,
                             reset=first)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        poisson = self.loss == "poisson" if first else self.out_activation_ == "exp"
        if poisson:
            check_in_range(y, "y", 0.0, np.inf, what="counts or rates for loss='poisson'")
        if first:
            self._n_outputs = n_outputs
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
            self._loss = "poisson" if self.loss == "poisson" else "quadratic"
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s), but this model was fit on {self.n_outputs_}")
        return X, y, None

    def _stratify(self):
        return False

    def _output_layer(self):
        return Exp() if self.out_activation_ == "exp" else Identity()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = self.loss == "poisson"  # as scikit-learn's PoissonRegressor
        return tags

    def _score_encoded(self, X, targets, weights):
        return r2_score(targets, self._predict_values(self.model_.predict(X)), sample_weight=weights)

    @staticmethod
    def _predict_values(out):
        return out[:, 0] if out.shape[1] == 1 else out

    def predict(self, X):
        """Predictions (n_samples,) for one output, (n_samples, n_outputs) for several."""
        return self._predict_values(self._network_output(X))
