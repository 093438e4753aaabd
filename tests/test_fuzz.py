"""Fuzzing the public API: random shapes, dtypes and values must give a result or a documented exception.

hypothesis drives ``Sequential`` (construction, fit, predict, evaluate) and the functional API on each
backend. The only outcomes allowed are a result or ``ValueError`` / ``TypeError`` (bad input) /
``TrainingDiverged`` (numeric fault during fit). Anything else -- an ``IndexError`` from a kernel, a
``RuntimeWarning`` (errors under this suite's conftest), a segfault that ends the run -- fails. On top:

- a model is never left with non-finite weights, and ``predict`` never returns NaN or inf;
- the functional API returns no NaN for finite inputs of moderate size (|x| <= 1e3; beyond that IEEE
  overflow to inf, or inf - inf = NaN in a matrix product, is the documented arithmetic).

Bounded: 100 examples per test and backend, derandomized (the same examples every run): 5 s with a
warm Numba cache; run alone with a cold one, Numba's first compilations add about 15 s.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn import Sequential, optim, use_backend
from fastnn import functional as F
from fastnn.layers import (
    BatchNorm, Dense, Dropout, Identity, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh,
)
from fastnn.training import TrainingDiverged

DOCUMENTED = (ValueError, TypeError, TrainingDiverged)
BACKENDS = ["numpy", "numba", "cython"]
FUZZ = settings(
    max_examples=100, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-310, 1e4, -1e4, 3e38, -3e38, 1e300, -1e300,
         float("nan"), float("inf"), float("-inf")]
NUMERIC = [np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_]
ODD = ["complex", "object", "str", "datetime"]


def odd_array(kind, shape):
    size = int(np.prod(shape))
    if kind == "complex":
        return np.full(shape, 1 + 2j)
    if kind == "object":
        return np.array(([1.0, None, "a"] * (size + 1))[:size], dtype=object).reshape(shape)
    if kind == "str":
        return np.full(shape, "1.5")
    return np.full(shape, np.datetime64("2024-01-01"))


@st.composite
def arrays(draw, shape=None, moderate=False, kinds=None):
    """An array of a random (or given) shape, dtype and values: edge values, NaN, inf, huge, tiny."""
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    kind = draw(st.sampled_from(kinds or NUMERIC + ODD))
    if kind in ODD:
        return odd_array(kind, shape)
    dtype = np.dtype(kind)
    if dtype.kind == "f":
        if moderate:
            elements = st.floats(-1e3, 1e3, width=dtype.itemsize * 8)
        else:
            elements = st.one_of(st.sampled_from(EDGES), st.floats(-10, 10)).map(float)
        with np.errstate(over="ignore", under="ignore"):
            base = draw(hnp.arrays(np.float64, shape, elements=elements))
            return base.astype(dtype)
    return draw(hnp.arrays(dtype, shape))


# -- the network API --------------------------------------------------------------------------------------

ACTIVATIONS = [Sigmoid, Tanh, ReLU, Softplus, Identity, lambda: LeakyReLU(0.1)]


@st.composite
def models(draw, backend):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    n_in = draw(st.integers(1, 4))
    layers, width = [], n_in
    for _ in range(draw(st.integers(1, 3))):
        out = draw(st.integers(1, 4))
        if draw(st.booleans()) and out >= 1:
            layers.append(Dense(width, out, init=draw(st.sampled_from(["normalized", "xavier", "he", "large"]))))
        else:
            layers.append(Maxout(width, out, pieces=2))
        width = out
        extra = draw(st.sampled_from(["act", "act", "prelu", "batchnorm", "dropout", "none"]))
        if extra == "act":
            layers.append(draw(st.sampled_from(ACTIVATIONS))())
        elif extra == "prelu":
            layers.append(PReLU(width))
        elif extra == "batchnorm":
            layers.append(BatchNorm(width))
        elif extra == "dropout":
            layers.append(Dropout(draw(st.sampled_from([0.0, 0.3, 0.9]))))
    output = draw(st.sampled_from(["softmax", "sigmoid", "identity", "none"]))
    if output == "softmax":
        layers.append(Softmax())
    elif output == "sigmoid":
        layers.append(Sigmoid())
    elif output == "identity":
        layers.append(Identity())
    return Sequential(layers, dtype=dtype, backend=backend, seed=draw(st.integers(0, 3))), n_in, width


@st.composite
def inputs_for(draw, n_in):
    """Mostly X of shape (n, n_in) with moderate values, sometimes edge values, sometimes anything."""
    choice = draw(st.integers(0, 9))
    n = draw(st.integers(1, 12))
    if choice < 6:
        return draw(arrays(shape=(n, n_in), moderate=True, kinds=[np.float32, np.float64, np.int8, np.float16]))
    if choice < 8:
        return draw(arrays(shape=(n, n_in), kinds=NUMERIC))
    return draw(arrays())


@st.composite
def targets_for(draw, loss, n, n_out):
    """Mostly targets this loss accepts, sometimes nearly so (labels -1 or n_out, values outside [0, 1])."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.one_of(arrays(), arrays(shape=(n, n_out)), arrays(shape=(n,)),
                              hnp.arrays(np.int64, (n,), elements=st.integers(-1, n_out))))
    if loss == "log_likelihood" or draw(st.booleans()):
        labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, n_out - 1)))
        return np.eye(n_out)[labels] if draw(st.booleans()) else labels
    if loss == "cross_entropy":
        return draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(0, 1)))
    return draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(-1e3, 1e3)))


OPTIMIZERS = [
    lambda lr: optim.SGD(lr), lambda lr: optim.SGD(lr, momentum=0.9, nesterov=True), lambda lr: optim.Adam(lr),
    lambda lr: optim.AdamW(lr), lambda lr: optim.RMSprop(lr), lambda lr: optim.Adagrad(lr), lambda lr: optim.Adadelta(lr),
]


def check_model_is_sane(model):
    for w in model.get_weights():
        assert np.isfinite(w).all(), "the model was left with non-finite weights"


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(data=st.data())
def test_network_api_gives_a_result_or_a_documented_error(backend, data):
    model, n_in, n_out = data.draw(models(backend))
    X = data.draw(inputs_for(n_in))
    n = X.shape[0] if X.ndim else 1
    loss = data.draw(st.sampled_from(["quadratic", "mse", "cross_entropy", "log_likelihood"]))
    y = data.draw(targets_for(loss, n, n_out))
    lr = data.draw(st.sampled_from([1e-3, 0.1, 10.0, 1e6, 1e30]))
    optimizer = data.draw(st.sampled_from(OPTIMIZERS))(lr)
    batch_size = data.draw(st.one_of(st.integers(1, 14), st.none(), st.sampled_from([20, 10**30, 0, 2.5])))
    kwargs = dict(loss=loss, optimizer=optimizer, batch_size=batch_size, verbose=0,
                  epochs=data.draw(st.integers(0, 2)), use_fused=data.draw(st.booleans()),
                  seed=data.draw(st.integers(0, 2**32)), shuffle=data.draw(st.booleans()),
                  l2=data.draw(st.sampled_from([0.0, 0.0, 1.0])),
                  clip_norm=data.draw(st.sampled_from([None, None, 1.0])))
    for op in data.draw(st.lists(st.sampled_from(["fit", "predict", "evaluate"]), min_size=1, max_size=3)):
        try:
            if op == "fit":
                history = model.fit(X, y, **kwargs)
                assert len(history) == kwargs["epochs"] or model.stop_training
            elif op == "predict":
                out = model.predict(X)
                assert out.shape == (n, n_out) and out.dtype == model.dtype
                assert np.isfinite(out).all()
            else:
                result = model.evaluate(X, y, loss=loss)
                assert not np.isnan(result["loss"])
            event(f"{op}: result")
        except DOCUMENTED as exc:
            event(f"{op}: {type(exc).__name__}: {str(exc)[:60]}")
        check_model_is_sane(model)


# -- the functional API -----------------------------------------------------------------------------------

# name -> how many array arguments, and extra keyword arguments to draw
FUNCTIONS = {
    "softmax": 1, "log_softmax": 1, "logsumexp": 1, "sigmoid": 1, "tanh": 1, "relu": 1, "leaky_relu": 1,
    "softplus": 1, "identity": 1,
    "softmax_backward": 2, "log_softmax_backward": 2, "logsumexp_backward": 2, "sigmoid_backward": 2,
    "tanh_backward": 2, "relu_backward": 2, "leaky_relu_backward": 2, "softplus_backward": 2,
    "identity_backward": 2, "prelu": 2, "prelu_backward": 3, "maxout": 1, "maxout_backward": 2,
    "quadratic": 2, "quadratic_grad": 2, "mse": 2, "mse_grad": 2, "binary_cross_entropy": 2,
    "binary_cross_entropy_grad": 2, "binary_cross_entropy_with_logits": 2,
    "binary_cross_entropy_with_logits_grad": 2, "nll": "labels", "nll_grad": "labels",
    "softmax_cross_entropy": "labels", "softmax_cross_entropy_grad": "labels", "sigmoid_bce_delta": 2,
    "softmax_nll_delta": "labels", "dense_forward": 3, "dense_backward": 3,
}
LABEL_FUNCTIONS = {name for name, arity in FUNCTIONS.items() if arity == "labels"}


def has_nan(result):
    if isinstance(result, tuple):
        return any(has_nan(r) for r in result)
    return bool(np.isnan(np.asarray(result, dtype=np.float64)).any())


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(data=st.data())
def test_functional_api_gives_a_result_or_a_documented_error(backend, data):
    name = data.draw(st.sampled_from(sorted(FUNCTIONS)))
    moderate = data.draw(st.booleans())
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    same = data.draw(st.booleans())  # most arguments of one shape, to get past the shape checks

    def array():
        return data.draw(arrays(shape=shape if same else None, moderate=moderate,
                                kinds=[np.float32, np.float64, np.int8] if moderate else None))

    if name in LABEL_FUNCTIONS:
        rows = data.draw(st.integers(0, 4))
        args = [data.draw(arrays(shape=(rows, 3) if same else None, moderate=moderate,
                                 kinds=[np.float32, np.float64] if moderate else None)),
                data.draw(hnp.arrays(np.int64, (rows,), elements=st.integers(-1, 3)))]
    else:
        args = [array() for _ in range(FUNCTIONS[name])]
    kwargs = {}
    if name.startswith("maxout"):
        kwargs["pieces"] = data.draw(st.sampled_from([1, 2, 3, 0, -1, 2.5]))
    if name.startswith("leaky_relu"):
        kwargs["slope"] = data.draw(st.sampled_from([0.01, 0.0, -1.0, float("nan")]))
    if name in ("softmax", "log_softmax", "logsumexp"):
        kwargs["axis"] = data.draw(st.integers(-3, 3))
    finite_inputs = moderate and all(np.isfinite(a).all() for a in args if a.dtype.kind == "f")
    with use_backend(backend):
        try:
            result = getattr(F, name)(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            event(f"{type(exc).__name__}")
            return
    event("result" + (" (finite inputs)" if finite_inputs else ""))
    if finite_inputs and not (name.startswith("leaky_relu") and kwargs["slope"] != kwargs["slope"]):
        assert not has_nan(result), f"{name} returned NaN for finite inputs"


# -- valid inputs must succeed ------------------------------------------------------------------------------
# The tests above accept a documented error for any input; these draw only inputs the API documents as
# valid and require that every one of them (the stated share: 100%) gives a result, finite and shaped right.


@st.composite
def valid_fits(draw, backend):
    """A model, data of its shape with moderate values, targets its loss accepts, a small learning rate and
    a batch size that leaves no BatchNorm batch of one."""
    model, n_in, n_out = draw(models(backend))
    last = model.layers[-1]
    if isinstance(last, Softmax):
        loss = "log_likelihood"
    elif isinstance(last, Sigmoid):
        loss = "cross_entropy"
    else:
        loss = draw(st.sampled_from(["quadratic", "mse"]))
    n = draw(st.integers(2, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    X = draw(hnp.arrays(dtype, (n, n_in), elements=st.floats(-3, 3, width=np.dtype(dtype).itemsize * 8)))
    if loss == "log_likelihood" or (loss == "cross_entropy" and draw(st.booleans())):
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, n_out - 1)))
        if n_out == 1 and loss == "cross_entropy":
            y = y.reshape(n, 1).astype(np.float64)
    elif loss == "cross_entropy":
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(0, 1)))
    else:
        y = draw(hnp.arrays(np.float64, (n, n_out), elements=st.floats(-1, 1)))
    batch_size = draw(st.one_of(st.none(), st.integers(1, 14)))
    if any(isinstance(layer, BatchNorm) for layer in model.layers):
        size = n if batch_size is None else min(batch_size, n)
        if size == 1 or n % size == 1:
            batch_size = None  # BatchNorm needs at least 2 samples in every batch
    kwargs = dict(loss=loss, optimizer=draw(st.sampled_from(OPTIMIZERS))(draw(st.sampled_from([1e-3, 1e-2]))),
                  batch_size=batch_size, epochs=draw(st.integers(1, 2)), use_fused=draw(st.booleans()),
                  seed=draw(st.integers(0, 2**32)), l2=draw(st.sampled_from([0.0, 1.0])),
                  clip_norm=draw(st.sampled_from([None, 1.0])), verbose=0)
    return model, X, y, n_out, kwargs


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(data=st.data())
def test_valid_fits_all_succeed_with_finite_results(backend, data):
    model, X, y, n_out, kwargs = data.draw(valid_fits(backend))
    history = model.fit(X, y, **kwargs)
    assert len(history) == kwargs["epochs"] and np.isfinite(history.loss).all()
    check_model_is_sane(model)
    out = model.predict(X)
    assert out.shape == (len(X), n_out) and out.dtype == model.dtype and np.isfinite(out).all()
    result = model.evaluate(X, y, loss=kwargs["loss"])
    assert np.isfinite(result["loss"])
    # classes and multi-label rows: an accuracy in [0, 1]; other targets: regression metrics, finite
    if "accuracy" in result:
        assert 0 <= result["accuracy"] <= 1
    else:
        assert all(np.isfinite(result[k]) or k == "r2" for k in ("mse", "mae", "r2"))


ELEMENTWISE = ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]
LOSSES = ["quadratic", "mse", "binary_cross_entropy", "binary_cross_entropy_with_logits"]


@st.composite
def valid_calls(draw):
    """(name, args, kwargs, expected shape: a tuple, or None for a Python float) of a valid functional-API call."""
    moderate = st.floats(-30, 30)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(["elementwise", "backward", "softmax", "loss", "grad", "labels", "dense"]))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    x = draw(hnp.arrays(np.float64, shape, elements=moderate)).astype(dtype)
    if kind == "elementwise":
        return draw(st.sampled_from(ELEMENTWISE)), [x], {}, shape
    if kind == "backward":
        grad = draw(hnp.arrays(np.float64, shape, elements=moderate)).astype(dtype)
        return draw(st.sampled_from(ELEMENTWISE)) + "_backward", [x, grad], {}, shape
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    if kind == "softmax":
        name = draw(st.sampled_from(["softmax", "log_softmax", "logsumexp"]))
        expected = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:] if name == "logsumexp" else shape
        return name, [x], {"axis": axis}, expected
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    z = draw(hnp.arrays(np.float64, (rows, cols), elements=moderate)).astype(dtype)
    probabilities = (1 / (1 + np.exp(-z.astype(np.float64)))).clip(1e-3, 1 - 1e-3).astype(dtype)
    targets = draw(hnp.arrays(np.float64, (rows, cols), elements=st.floats(0, 1))).astype(dtype)
    if kind in ("loss", "grad"):
        name = draw(st.sampled_from(LOSSES))
        a = probabilities if name == "binary_cross_entropy" else z
        return name + ("_grad" if kind == "grad" else ""), [a, targets], {}, None if kind == "loss" else (rows, cols)
    if kind == "labels":
        labels = draw(hnp.arrays(np.int64, (rows,), elements=st.integers(0, cols - 1)))
        name = draw(st.sampled_from(["nll", "nll_grad", "softmax_cross_entropy", "softmax_cross_entropy_grad"]))
        a = probabilities / probabilities.sum(axis=1, keepdims=True) if name.startswith("nll") else z
        return name, [a, labels], {}, (rows, cols) if name.endswith("_grad") else None
    w = draw(hnp.arrays(np.float64, (cols, shape[0]), elements=moderate)).astype(dtype)
    b = draw(hnp.arrays(np.float64, (shape[0],), elements=moderate)).astype(dtype)
    return "dense_forward", [z, w, b], {}, (rows, shape[0])


@pytest.mark.parametrize("backend", BACKENDS)
@FUZZ
@given(call=valid_calls())
def test_valid_functional_calls_all_succeed_with_finite_results(backend, call):
    name, args, kwargs, expected = call
    with use_backend(backend):
        result = getattr(F, name)(*args, **kwargs)
    if expected is None:
        assert isinstance(result, float) and np.isfinite(result), (name, result)
    else:
        assert np.shape(result) == expected, (name, np.shape(result), expected)
        assert np.asarray(result).dtype == args[0].dtype and np.isfinite(result).all(), name
