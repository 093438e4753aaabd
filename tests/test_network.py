"""Sequential: gradients (whole network and one SGD step) against finite differences, weights layout,
predict/evaluate, the same trajectory on every backend, and real learning on the embedded MNIST data."""
import os

import numpy as np
import pytest

from fastnn import Sequential, backend, optim
from fastnn.augment import Augment
from fastnn.layers import (
    BatchNorm, Dense, Dropout, Identity, Layer, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh,
)
from kernel_helpers import numeric_grad


@pytest.fixture
def gen():
    return np.random.default_rng(2024)


def every_layer_network(last, n_out):
    """A small float64 network holding every layer type once, ending with ``last``."""
    layers = [
        Dense(6, 8), BatchNorm(8), PReLU(8), Dense(8, 8), Tanh(), Dense(8, 7), Dropout(0.3, seed=0),
        LeakyReLU(0.1), Maxout(7, 6, pieces=2), Softplus(), Dense(6, 6), ReLU(), Dense(6, 5), Identity(),
        Dense(5, n_out), last,
    ]
    model = Sequential(layers, dtype="float64", seed=11)
    bn, prelu = layers[1], layers[2]
    bn.params[0][:] = np.linspace(0.5, 1.5, 8)  # gamma != 1 and beta != 0, so their gradients matter
    bn.params[1][:] = np.linspace(-0.3, 0.3, 8)
    prelu.params[0][:] = np.linspace(0.1, 0.4, 8)
    return model


@pytest.mark.parametrize(
    "last, loss", [(Softmax(), "log_likelihood"), (Sigmoid(), "cross_entropy"), (Softmax(), "quadratic"),
                   (Identity(), "mse")],
    ids=["softmax-nll-fused", "sigmoid-bce-fused", "softmax-quadratic", "identity-mse"],
)
def test_whole_network_gradient_matches_finite_differences(last, loss, gen):
    model = every_layer_network(last, 4)
    X = gen.normal(size=(9, 6))
    y = gen.integers(0, 4, size=9)
    drop = model.layers[6]

    def objective():
        drop.rng = np.random.default_rng(5)  # the same dropout mask at every evaluation
        return model.loss_and_grads(X, y, loss)[0]

    drop.rng = np.random.default_rng(5)
    _, grads = model.loss_and_grads(X, y, loss)
    params = model.params()
    assert len(grads) == len(params) == 17
    for i, (p, g) in enumerate(zip(params, grads)):
        # atol relative to the largest gradient entry: through 16 layers the FD rounding noise is ~1e-8
        atol = 1e-10 + 1e-6 * np.max(np.abs(g))  # (the bias before BatchNorm has gradient 0)
        np.testing.assert_allclose(g, numeric_grad(objective, p), rtol=1e-5, atol=atol, err_msg=f"param {i}")


@pytest.mark.parametrize(
    "layers, loss",
    [
        (lambda: [Dense(5, 4), Sigmoid(), Dense(4, 3), Sigmoid()], "quadratic"),
        (lambda: [Dense(5, 4), Sigmoid(), Dense(4, 3), Sigmoid()], "cross_entropy"),
        (lambda: [Dense(5, 4), Tanh(), Dense(4, 3), Softmax()], "log_likelihood"),
        (lambda: [Dense(5, 4), ReLU(), Dense(4, 3)], "mse"),
    ],
    ids=["quadratic", "cross_entropy", "log_likelihood", "mse"],
)
@pytest.mark.parametrize("l2", [0.0, 0.7])
def test_one_sgd_step_equals_finite_difference_gradient_of_evaluate(layers, loss, l2, gen):
    X = gen.normal(size=(12, 5))
    y = gen.integers(0, 3, size=12)
    model = Sequential(layers(), dtype="float64", seed=1)
    w0 = model.get_weights()
    lr = 0.1
    model.fit(X, y, loss=loss, optimizer=optim.SGD(lr), epochs=1, batch_size=None, shuffle=False, l2=l2, verbose=0)
    step = [(a - b) / lr for a, b in zip(w0, model.get_weights())]

    probe = Sequential(layers(), dtype="float64")
    probe.set_weights(w0)
    probe.predict(X)  # the compiled forward pass makes the layers' arrays views of its buffer: perturb those
    n = X.shape[0]
    weights = [probe.layers[0].params[0], probe.layers[2].params[0]]

    def objective():
        # evaluate's loss plus the L2 convention: l2 / (2n) * sum of squared weights (not biases)
        return probe.evaluate(X, y, loss=loss)["loss"] + l2 / (2 * n) * sum(float(np.sum(w * w)) for w in weights)

    for i, p in enumerate(probe.params()):
        np.testing.assert_allclose(step[i], numeric_grad(objective, p), rtol=1e-6, atol=1e-9, err_msg=f"param {i}")
    if l2:  # biases are not decayed: their step is the data gradient alone
        probe.set_weights(w0)
        plain = Sequential(layers(), dtype="float64")
        plain.set_weights(w0)
        plain.fit(X, y, loss=loss, optimizer=optim.SGD(lr), epochs=1, batch_size=None, shuffle=False, verbose=0)
        np.testing.assert_allclose(plain.get_weights()[1], model.get_weights()[1], rtol=1e-14)
        assert not np.allclose(plain.get_weights()[0], model.get_weights()[0], rtol=1e-6)


def test_l1_adds_lambda_over_n_sign_of_weights_only(gen):
    X = gen.normal(size=(8, 3))
    y = gen.normal(size=(8, 2))
    layers = lambda: [Dense(3, 2, init="large")]  # noqa: E731
    a, b = Sequential(layers(), "float64", seed=0), Sequential(layers(), "float64", seed=0)
    w0 = a.get_weights()
    a.fit(X, y, loss="quadratic", optimizer=optim.SGD(0.5), epochs=1, batch_size=None, verbose=0)
    b.fit(X, y, loss="quadratic", optimizer=optim.SGD(0.5), epochs=1, batch_size=None, l1=2.0, verbose=0)
    np.testing.assert_allclose(b.get_weights()[0], a.get_weights()[0] - 0.5 * 2.0 / 8 * np.sign(w0[0]), rtol=1e-13)
    np.testing.assert_allclose(b.get_weights()[1], a.get_weights()[1], rtol=1e-14)


def test_weights_layout_copies_and_set_weights_checks():
    model = Sequential([Dense(4, 3), BatchNorm(3), PReLU(3), Dense(3, 2), Softmax()], seed=0)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(4, 3), (3,), (3,), (3,), (3,), (3,), (3,), (3, 2), (2,)]
    weights = model.get_weights()
    weights[0][:] = 7  # a copy
    assert not (model.get_weights()[0] == 7).all()
    model.set_weights(weights)
    assert (model.layers[0].W == 7).all() and model.layers[0].W.dtype == np.float32
    with pytest.raises(ValueError, match="holds 9 weight arrays, got 8"):
        model.set_weights(weights[:-1])
    weights[0] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"W must have shape \(4, 3\)"):
        model.set_weights(weights)
    weights[0] = np.full((4, 3), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        model.set_weights(weights)
    assert model.count_params() == 4 * 3 + 3 + 3 + 3 + 3 + 3 * 2 + 2
    assert "total params: 32" in model.summary()


def test_predict_and_evaluate(gen):
    model = Sequential([Dense(5, 4), Sigmoid(), Dense(4, 3), Softmax()], dtype="float32", seed=0)
    X = gen.normal(size=(50, 5))  # float64 input -> converted once to the model dtype
    out = model.predict(X)
    assert out.shape == (50, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(model.predict(X, batch_size=7), out)
    y = gen.integers(0, 3, size=50)
    result = model.evaluate(X, y, loss="log_likelihood")
    assert set(result) == {"loss", "accuracy"}
    expected = -np.mean(np.log(out[np.arange(50), y].astype(np.float64)))
    assert result["loss"] == pytest.approx(expected, rel=1e-6)
    assert result["accuracy"] == np.mean(out.argmax(axis=1) == y)
    onehot = np.eye(3)[y]
    assert model.evaluate(X, onehot, loss="categorical_cross_entropy") == result
    with pytest.raises(ValueError, match="no loss given"):
        model.evaluate(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but the model expects 5"):
        model.predict(X[:, :4])
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        model.evaluate(X, y[:-1], loss="quadratic")
    with pytest.raises(ValueError, match="Input contains NaN"):
        model.predict(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="not finite"):  # unscanned, still no NaN returned
        model.predict(np.full((2, 5), np.nan, dtype=model.dtype), check_input=False)


def test_integer_labels_and_one_hot_targets_train_identically(gen):
    X = gen.normal(size=(30, 4))
    y = gen.integers(0, 3, size=30)
    runs = []
    for targets in (y, np.eye(3)[y]):
        m = Sequential([Dense(4, 5), Sigmoid(), Dense(5, 3), Sigmoid()], "float64", seed=0)
        m.fit(X, targets, loss="cross_entropy", optimizer=optim.SGD(0.3), epochs=2, batch_size=4, seed=1, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_constructor_checks():
    with pytest.raises(ValueError, match="expects 20 inputs but the layers before it give 30"):
        Sequential([Dense(784, 30), Sigmoid(), Dense(20, 10)])
    with pytest.raises(ValueError, match="dtype must be"):
        Sequential([Dense(2, 2)], dtype="float16")
    with pytest.raises(TypeError, match="not a fastnn.layers.Layer"):
        Sequential([Dense(2, 2), "relu"])
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        Sequential([Dense(2, 2)], backend="jax")
    d = Dense(2, 2)
    with pytest.raises(ValueError, match="appears twice"):
        Sequential([d, d])


class _Twice(Layer):
    """A layer fastnn does not know: its model runs layer by layer."""

    def forward(self, x, training=False):
        return 2 * x


def test_per_model_backend_overrides_the_global_one(monkeypatch):
    import fastnn.layers as L

    seen = []
    real = backend.kernels

    def spy(name=None):
        seen.append(backend.get_backend())
        return real("numpy")

    for name in ("numpy", "cython"):  # the compiled forward pass's kernel of each backend
        namespace = backend.kernels(name)
        monkeypatch.setattr(namespace, "predict_rows", lambda *a, _n=name, _r=namespace.predict_rows:
                            (seen.append(_n), _r(*a))[1])
    monkeypatch.setattr(L, "kernels", spy)  # the layers' kernels (layer by layer)
    for layers in ([Dense(3, 2), Sigmoid()], [Dense(3, 2), _Twice(), Sigmoid()]):
        model = Sequential(layers, backend="numpy")
        with backend.use_backend("cython"):
            seen.clear()
            model.predict(np.ones((2, 3)))
            assert seen and set(seen) == {"numpy"}
            model.backend = None  # follow the global (here: the enclosing use_backend) again
            seen.clear()
            model.predict(np.ones((2, 3)))
            assert seen and set(seen) == {"cython"}



def test_predict_says_once_why_it_runs_layer_by_layer():
    import warnings

    slow = Sequential([Dense(3, 2), _Twice(), Sigmoid()], dtype="float64")
    with pytest.warns(UserWarning, match=r"predict runs layer by layer.*_Twice"):
        first = slow.predict(np.ones((2, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(slow.predict(np.ones((2, 3))), first)  # said once
        Sequential([Dense(3, 2), Sigmoid()], dtype="float64").predict(np.ones((2, 3)))  # compiled: silent

# -- the same trajectory on every backend ----------------------------------------------------------------

# Bounds on max |w_backend - w_numpy| / max |w_numpy| per weight array after one epoch, each ~50-90x the
# worst measured by this suite with and without FASTNN_PORTABLE (in brackets). A compiled kernel may round
# differently in the last bit (another summation order, FMA); smooth networks keep that at rounding level,
# but a flipped ReLU kink or maxout argmax, and Adam's sign-like first steps on parameters whose gradient
# is rounding noise (a bias just before BatchNorm), amplify it chaotically: "all-adam" ends ~1e4 times
# further apart than "all-sgd", and in float32 it differed by 0.4 after 30 steps, so it is checked in
# float64 only.
TRAJECTORY_RTOL = {
    ("sigmoid", "float64"): 5e-14,  # (9.4e-16)
    ("sigmoid", "float32"): 2e-5,  # (3.7e-7)
    ("all-sgd", "float64"): 1e-13,  # (1.5e-15)
    ("all-sgd", "float32"): 1e-4,  # (1.1e-6)
    ("all-adam", "float64"): 2e-9,  # (2.7e-11)
}


def _all_layers():
    return [Dense(784, 32), ReLU(), BatchNorm(32), Dropout(0.2), Maxout(32, 16, pieces=2), PReLU(16), Dense(16, 16),
            Tanh(), Dense(16, 16), LeakyReLU(0.05), Dense(16, 16), Softplus(), Dense(16, 10), Softmax()]


TRAJECTORIES = {
    # name: (layers, loss, optimizer, training samples, extra fit arguments)
    "sigmoid": (lambda: [Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid()], "cross_entropy",
                lambda: optim.SGD(0.5), 1000, {}),
    "all-sgd": (_all_layers, "log_likelihood", lambda: optim.SGD(0.05, momentum=0.9), 200,
                {"l1": 0.01, "l2": 0.1, "clip_norm": 0.5, "augment": Augment(max_shift=2, max_angle_deg=10)}),
    "all-adam": (_all_layers, "log_likelihood", lambda: optim.Adam(0.003), 300, {"l2": 0.1, "clip_norm": 5.0}),
}


@pytest.mark.parametrize("net, dtype", TRAJECTORY_RTOL)
def test_backends_follow_the_same_trajectory(net, dtype, mnist):
    missing = [b for b in ("numba", "cython") if b not in backend.available_backends()]
    if missing:
        pytest.fail(f"backends {missing} do not load (CI builds all three)", pytrace=False)
    (X, y), _ = mnist
    layers, loss, opt, n, extra = TRAJECTORIES[net]
    results = {}
    for bk in ("numpy", "numba", "cython"):
        model = Sequential(layers(), dtype=dtype, backend=bk, seed=3)
        model.fit(X[:n], y[:n], loss=loss, optimizer=opt(), epochs=1, batch_size=10, seed=4, verbose=0, **extra)
        results[bk] = model.get_weights()
    rtol = TRAJECTORY_RTOL[net, dtype]
    for bk in ("numba", "cython"):
        for i, (got, ref) in enumerate(zip(results[bk], results["numpy"])):
            assert got.dtype == ref.dtype == np.dtype(dtype)
            err = np.max(np.abs(got.astype(np.float64) - ref)) / np.max(np.abs(ref))
            assert err <= rtol, f"{bk} {dtype} array {i}: max error {err:.2e} of max |w| > {rtol}"


# -- real learning ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist():
    """The embedded MNIST split (8,000 train / 2,000 test), float32, whatever FASTNN_DATA says."""
    from fastnn.datasets import load_mnist

    saved = os.environ.pop("FASTNN_DATA", None)
    try:
        return load_mnist()
    finally:
        if saved is not None:
            os.environ["FASTNN_DATA"] = saved


def test_mnist_784_30_10_learns(mnist):
    """The seeds' network: sigmoid, cross-entropy, SGD eta 0.5, batch 10. Measured 0.9405 test accuracy
    after 3 epochs with these seeds (0.934-0.9445 over seeds 0-5, every backend); we assert 0.92."""
    (X, y), (Xt, yt) = mnist
    model = Sequential([Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid()], dtype="float32", seed=0)
    history = model.fit(X, y, loss="cross_entropy", optimizer=optim.SGD(0.5), epochs=3, batch_size=10, seed=0,
                        validation_data=(Xt, yt), verbose=0)
    result = model.evaluate(Xt, yt)
    assert result["accuracy"] >= 0.92
    assert history.val_accuracy[-1] == result["accuracy"]
    assert history.loss[0] > history.loss[-1]
