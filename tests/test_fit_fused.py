"""fit's fused path (one compiled call per epoch) equals the layer-by-layer path, on every backend."""
import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn.layers import Dense, ReLU, Sigmoid, Softmax


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


def test_fused_path_declines_unsupported_models():
    from fastnn.layers import Dropout

    model = Sequential([Dense(5, 4), ReLU(), Dropout(0.5), Dense(4, 2), Softmax()], dtype="float64", seed=0)
    X = np.random.default_rng(0).standard_normal((20, 5))
    model.fit(X, np.arange(20) % 2, loss="log_likelihood", optimizer=optim.SGD(0.1), epochs=1, verbose=0)
    assert model.fused_runner is None
