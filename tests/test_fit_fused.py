"""fit's fused path (one compiled call per epoch) equals the layer-by-layer path, on every backend."""
import warnings

import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn.layers import Dense, ReLU, Sigmoid, Softmax

# The LeakyReLU/Softplus and Maxout/PReLU runs below: fused against layer by layer after 3 epochs, on 1 and
# 2 threads. Bounds on |a - b| <= rtol (1 + |b|) for weights and optimizer state, |a - b| <= rtol |b| for the
# epoch losses. Measured by this suite, with and without FASTNN_PORTABLE: weights float64 <= 3.3e-15,
# float32 <= 2.1e-6; losses float64 <= 3.7e-16, float32 <= 7.8e-8; the bounds are 49-81x those.
WEIGHTS_RTOL = {"float64": 2e-13, "float32": 1e-4}
LOSS_RTOL = {"float64": 3e-14, "float32": 5e-6}


def _model(out, dtype):
    hidden = Sigmoid() if out == "sigmoid" else ReLU()
    last = Sigmoid() if out == "sigmoid" else Softmax()
    return Sequential([Dense(12, 9), hidden, Dense(9, 4), last], dtype=dtype, seed=3)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize(
    "out, loss, make_opt",
    [
        ("sigmoid", "cross_entropy", lambda: optim.SGD(0.5)),
        ("softmax", "log_likelihood", lambda: optim.SGD(0.1, momentum=0.9, nesterov=True)),
        ("softmax", "log_likelihood", lambda: optim.Adam(1e-2)),
        ("sigmoid", "quadratic", lambda: optim.SGD(1.0, momentum=0.5)),
    ],
)
def test_fused_fit_equals_layer_by_layer(backend, out, loss, make_opt):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((53, 12))
    y = rng.integers(0, 4, size=53)
    runs = []
    for use_fused in (True, False):
        model = _model(out, "float64")
        model.backend = backend
        history = model.fit(X, y, loss=loss, optimizer=make_opt(), epochs=2, batch_size=10, seed=1,
                            l2=0.1, verbose=0, use_fused=use_fused)
        assert (model.fused_runner is not None) == use_fused
        runs.append((model.get_weights(), history.loss, history.accuracy))
    (w_fused, loss_fused, acc_fused), (w_plain, loss_plain, acc_plain) = runs
    for a, b in zip(w_fused, w_plain):
        # float64, 12 updates: rounding differences only (BLAS vs loops, folded SGD update).
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loss_fused, loss_plain, rtol=1e-10)
    assert acc_fused == acc_plain


@pytest.mark.parametrize("layers, compiled", [
    (lambda L: [Dense(5, 4), ReLU(), Dense(4, 2), L.PReLU(2)], False),  # PReLU output
    (lambda L: [Dense(5, 4), ReLU(), L.Maxout(4, 2, pieces=2), Sigmoid()], True),  # Maxout output
    (lambda L: [L.Maxout(5, 4, pieces=2), L.BatchNorm(4), ReLU(), Dense(4, 2), Sigmoid()], True),  # BatchNorm after it
    (lambda L: [Dense(5, 4), ReLU(), Dense(4, 2), L.Softplus()], True),  # Softplus output
    (lambda L: [Dense(5, 4), ReLU(), Dense(4, 2), L.Exp()], True),  # Exp output
], ids=["prelu-output", "maxout-output", "maxout-batch-norm", "softplus-output", "exp-output"])
def test_which_models_the_compiled_epoch_takes(layers, compiled):
    from fastnn import layers as L

    model = Sequential(layers(L), dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((20, 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, np.eye(2)[np.arange(20) % 2], loss="quadratic", optimizer=optim.SGD(0.1), epochs=1, verbose=0)
    assert (model.fused_runner is not None) == compiled
    assert len([w for w in caught if "step by step" in str(w.message)]) == (0 if compiled else 1)


@pytest.fixture
def split_small_batches(monkeypatch):
    """Let the fused epoch split even these small batches and epochs across threads."""
    from fastnn import fused

    monkeypatch.setattr(fused, "PARALLEL_MIN", 1)
    monkeypatch.setattr(fused, "EPOCH_PARALLEL_MIN", 0)


def _fit_three_ways(make_model, backend, X, y, make_opt, **fit_args):
    """Fit layer by layer, then fused on 1 and on 2 threads, each from the same start (numpy: fused on 1
    thread only, since its reference epoch always runs on one).

    Returns [(weights, optimizer state arrays, history)] in that order.
    """
    from fastnn import use_num_threads

    runs = []
    ways = ((False, 1), (True, 1)) if backend == "numpy" else ((False, 1), (True, 1), (True, 2))
    for use_fused, n_threads in ways:
        model = make_model()
        model.backend = backend
        opt = make_opt()
        with use_num_threads(n_threads):
            history = model.fit(X, y, optimizer=opt, use_fused=use_fused, verbose=0, **fit_args)
        assert (model.fused_runner is not None) == use_fused
        runs.append((model.get_weights(), [a for s in opt.state for a in s.values()], history))
    return runs


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("hidden", [Sigmoid, ReLU], ids=["sigmoid", "relu"])
def test_fused_fit_with_dropout_equals_layer_by_layer(backend, hidden, split_small_batches):
    """Dropout in the fused epoch draws the layer-by-layer path's masks (seeds from fit's generator, in
    its order) and backpropagates through them; on 1 and 2 threads."""
    from fastnn.layers import Dropout

    rng = np.random.default_rng(0)
    X = rng.standard_normal((61, 12))
    y = rng.integers(0, 4, size=61)
    runs = _fit_three_ways(
        lambda: Sequential([Dense(12, 40), hidden(), Dropout(0.3), Dense(40, 20), hidden(), Dropout(0.5),
                            Dense(20, 4), Softmax()], dtype="float64", seed=3),
        backend, X, y, lambda: optim.Adam(1e-2), loss="log_likelihood", epochs=3, batch_size=8, seed=2)
    (weights0, _, history0) = runs[0]
    for weights, _, history in runs[1:]:
        for a, b in zip(weights, weights0):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=1e-10)
        assert history.accuracy == history0.accuracy
    # and the masks matter: without dropout the weights differ
    model = Sequential([Dense(12, 40), hidden(), Dense(40, 20), hidden(), Dense(20, 4), Softmax()],
                       dtype="float64", seed=3)
    model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(1e-2), epochs=3, batch_size=8, seed=2, verbose=0)
    assert not np.allclose(model.get_weights()[0], weights0[0])


@pytest.mark.parametrize(
    "layers",
    [
        lambda D: [D(0.2), Dense(5, 4), ReLU(), Dense(4, 2), Softmax()],  # on the input
        lambda D: [Dense(5, 4), ReLU(), Dense(4, 2), Softmax(), D(0.2)],  # on the output
        lambda D: [Dense(5, 4), D(0.2), ReLU(), Dense(4, 2), Softmax()],  # before the activation
        lambda D: [Dense(5, 4), ReLU(), D(0.2), D(0.2), Dense(4, 2), Softmax()],  # twice
    ],
    ids=["input", "output", "before-activation", "twice"],
)
def test_fused_path_declines_other_dropout_placements(layers):
    from fastnn.layers import Dropout

    model = Sequential(layers(Dropout), dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((20, 5))
    with pytest.warns(UserWarning, match="Dropout"):
        model.fit(X, np.arange(20) % 2, loss="log_likelihood", optimizer=optim.SGD(0.1), epochs=1, verbose=0)
    assert model.fused_runner is None


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
# Adam's eps is large here on purpose: a bias feeding a BatchNorm has a gradient of pure rounding noise
# (the normalization removes it), which Adam with eps 1e-8 would turn into full-size steps that differ
# between implementations; that bias does not change the network's output either way.
@pytest.mark.parametrize("make_opt", [lambda: optim.SGD(0.1), lambda: optim.Adam(1e-2, eps=1e-3, weight_decay=0.01)],
                         ids=["sgd", "adam"])
def test_fused_fit_with_batch_norm_equals_layer_by_layer(backend, make_opt, split_small_batches):
    """BatchNorm in the fused epoch: the same weights, gamma, beta, running statistics, optimizer state and
    history as the layer-by-layer path, on 1 and 2 threads."""
    from fastnn.layers import BatchNorm, Dropout

    rng = np.random.default_rng(1)
    X = rng.standard_normal((62, 12))
    y = rng.integers(0, 4, size=62)
    runs = _fit_three_ways(
        lambda: Sequential([Dense(12, 40), BatchNorm(40), ReLU(), Dropout(0.2), Dense(40, 20), BatchNorm(20, 0.3),
                            Sigmoid(), Dense(20, 4), Softmax()], dtype="float64", seed=3),
        backend, X, y, make_opt, loss="log_likelihood", epochs=3, batch_size=8, seed=2, l2=0.01)
    arrays0, history0 = runs[0][0] + runs[0][1], runs[0][2]
    assert len(arrays0) == len(runs[1][0] + runs[1][1])
    for weights, state, history in runs[1:]:
        for a, b in zip(weights + state, arrays0):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=1e-10)
        assert history.accuracy == history0.accuracy


def test_fused_batch_norm_refuses_a_batch_of_one():
    from fastnn.layers import BatchNorm

    model = Sequential([Dense(3, 4), BatchNorm(4), ReLU(), Dense(4, 2), Softmax()], dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((9, 3))
    weights = model.get_weights()
    with pytest.raises(ValueError, match="at least 2 samples per batch"):
        model.fit(X, np.arange(9) % 2, loss="log_likelihood", optimizer=optim.SGD(0.1), batch_size=4, verbose=0)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_fit_with_leaky_relu_and_softplus_equals_layer_by_layer(backend, dtype, split_small_batches):
    """LeakyReLU (slope >= 0) and Softplus hidden layers in the fused epoch, on 1 and 2 threads."""
    from fastnn.layers import LeakyReLU, Softplus

    rng = np.random.default_rng(4)
    X = rng.standard_normal((45, 12))
    y = rng.integers(0, 4, size=45)
    runs = _fit_three_ways(
        lambda: Sequential([Dense(12, 40), LeakyReLU(0.1), Dense(40, 20), Softplus(), Dense(20, 4), Softmax()],
                           dtype=dtype, seed=3),
        backend, X, y, lambda: optim.SGD(0.2, momentum=0.5), loss="log_likelihood", epochs=3, batch_size=8, seed=2)
    rtol = WEIGHTS_RTOL[dtype]
    (weights0, _, history0) = runs[0]
    for weights, _, history in runs[1:]:
        for a, b in zip(weights, weights0):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=LOSS_RTOL[dtype])


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["Exp", "Softplus"])
def test_fused_fit_with_the_poisson_loss_equals_layer_by_layer(backend, dtype, output, split_small_batches):
    """The Poisson loss after an Exp output (its fused delta) and after a Softplus one (its gradient through the
    activation), an Exp hidden layer too, on counts of two outputs, on 1 and 2 threads."""
    from fastnn import layers as L

    rng = np.random.default_rng(6)
    X = rng.standard_normal((45, 12))
    y = rng.poisson(np.exp(0.3 * X[:, :2]), size=(45, 2)).astype(dtype)
    runs = _fit_three_ways(
        lambda: Sequential([Dense(12, 40), ReLU(), Dense(40, 20), L.Tanh(), Dense(20, 8), L.Exp(), Dense(8, 2),
                            getattr(L, output)()], dtype=dtype, seed=3),
        backend, X, y, lambda: optim.Adam(1e-2), loss="poisson", epochs=3, batch_size=8, seed=2, l2=0.01)
    rtol = WEIGHTS_RTOL[dtype]
    (weights0, _, history0) = runs[0]
    assert history0.loss[-1] < history0.loss[0]
    for weights, _, history in runs[1:]:
        for a, b in zip(weights, weights0):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=LOSS_RTOL[dtype])


def test_fused_path_declines_leaky_relu_with_a_negative_slope():
    from fastnn.layers import LeakyReLU

    X = np.random.default_rng(0).standard_normal((20, 5))
    model = Sequential([Dense(5, 4), LeakyReLU(-0.5), Dense(4, 2), Softmax()], dtype="float64", seed=0)
    with pytest.warns(UserWarning, match="negative slope"):
        model.fit(X, np.arange(20) % 2, loss="log_likelihood", optimizer=optim.SGD(0.1), epochs=1, verbose=0)
    assert model.fused_runner is None


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_fit_with_maxout_and_prelu_equals_layer_by_layer(backend, dtype, split_small_batches):
    """Maxout layers (first and deeper) and PReLU slopes (learned per unit; after a Maxout, after a
    BatchNorm, before a Dropout) in the fused epoch, on 1 and 2 threads; optimizer state included."""
    from fastnn.layers import BatchNorm, Dropout, Maxout, PReLU

    rng = np.random.default_rng(5)
    X = rng.standard_normal((45, 12))
    y = rng.integers(0, 4, size=45)
    runs = _fit_three_ways(
        lambda: Sequential([Maxout(12, 40, pieces=3), PReLU(40), Dropout(0.2), Maxout(40, 20, pieces=2),
                            Dense(20, 16), BatchNorm(16), PReLU(16, alpha_init=-0.1), Dense(16, 4), Softmax()],
                           dtype=dtype, seed=3),
        backend, X, y, lambda: optim.Adam(1e-2, eps=1e-3, weight_decay=0.01), loss="log_likelihood", epochs=3,
        batch_size=8, seed=2, l2=0.01)
    rtol = WEIGHTS_RTOL[dtype]
    arrays0, history0 = runs[0][0] + runs[0][1], runs[0][2]
    for weights, state, history in runs[1:]:
        assert len(weights + state) == len(arrays0)
        for a, b in zip(weights + state, arrays0):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=LOSS_RTOL[dtype])


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_batches_past_the_prefetch_limit_equal_layer_by_layer(backend):
    """A batch of rows too large to prefetch a batch ahead (PREFETCH_BYTES) has its own rows asked for as it
    starts (first layer reading them in place): the same training, on 1 and 2 threads."""
    from fastnn._kernels.constants import PREFETCH_BYTES

    rng = np.random.default_rng(0)
    n_in, batch = 1200, 90
    assert batch * (n_in + 3) * 8 > PREFETCH_BYTES
    X = rng.standard_normal((250, n_in))
    y = rng.integers(0, 3, size=250)
    runs = _fit_three_ways(lambda: Sequential([Dense(n_in, 20), ReLU(), Dense(20, 3), Softmax()], dtype="float64",
                                              seed=3),
                           backend, X, y, lambda: optim.Adam(1e-3), loss="log_likelihood", epochs=2,
                           batch_size=batch, seed=1)
    (weights0, _, history0) = runs[0]
    for weights, _, history in runs[1:]:
        for a, b in zip(weights, weights0):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(history.loss, history0.loss, rtol=1e-10)
