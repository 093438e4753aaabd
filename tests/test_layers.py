"""Layers: forward values against closed forms, backward against central finite differences (float64),
dtype handling, Dropout/BatchNorm behaviour, and dispatch to the backend's kernels at call time."""
import types

import numpy as np
import pytest

import fastnn.layers as L
from fastnn import backend
from kernel_helpers import numeric_grad


@pytest.fixture
def gen():
    return np.random.default_rng(12345)


def make(name, width):
    """One instance of every layer type with input width ``width`` (float64)."""
    return {
        "Dense": lambda: L.Dense(width, 4, rng=1),
        "Maxout": lambda: L.Maxout(width, 3, pieces=3, rng=1),
        "Sigmoid": L.Sigmoid,
        "Tanh": L.Tanh,
        "ReLU": L.ReLU,
        "LeakyReLU": lambda: L.LeakyReLU(0.2),
        "PReLU": lambda: L.PReLU(width, alpha_init=0.3),
        "Softplus": L.Softplus,
        "Exp": L.Exp,
        "Identity": L.Identity,
        "Softmax": L.Softmax,
        "Dropout": lambda: L.Dropout(0.4, seed=3),
        "BatchNorm": lambda: L.BatchNorm(width),
    }[name]()


ALL = sorted(L.LAYERS)


@pytest.mark.parametrize("name", ALL)
def test_backward_matches_finite_differences(name, gen):
    width = 5
    layer = make(name, width)
    if layer.params:
        # Non-trivial parameters (BatchNorm starts at gamma=1, beta=0; PReLU at a constant slope).
        for p in layer.params:
            p[...] = gen.normal(size=p.shape)
    x = gen.normal(size=(6, width))
    out_width = layer.forward(x, True).shape[1]
    upstream = gen.normal(size=(6, out_width))

    def objective():
        if isinstance(layer, L.Dropout):
            layer.rng = np.random.default_rng(99)  # the same mask at every evaluation
        return float(np.sum(layer.forward(x, True) * upstream))

    objective()
    dx = layer.backward(upstream)
    grads = [g.copy() for g in layer.grads]
    np.testing.assert_allclose(dx, numeric_grad(objective, x), rtol=1e-6, atol=1e-8)
    assert len(grads) == len(layer.params)
    for p, g in zip(layer.params, grads):
        assert g.shape == p.shape
        np.testing.assert_allclose(g, numeric_grad(objective, p), rtol=1e-6, atol=1e-8)


def test_forward_closed_forms(gen):
    x = gen.normal(size=(4, 6)) * 3
    np.testing.assert_allclose(L.Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(L.Tanh().forward(x), np.tanh(x), rtol=1e-14)
    np.testing.assert_array_equal(L.ReLU().forward(x), np.maximum(x, 0))
    np.testing.assert_allclose(L.LeakyReLU(0.1).forward(x), np.where(x > 0, x, 0.1 * x), rtol=1e-15)
    np.testing.assert_allclose(L.Softplus().forward(x), np.log1p(np.exp(x)), rtol=1e-13)
    np.testing.assert_allclose(L.Exp().forward(x), np.exp(x), rtol=1e-14)
    np.testing.assert_array_equal(L.Identity().forward(x), x)
    s = L.Softmax().forward(x)
    np.testing.assert_allclose(s, np.exp(x) / np.exp(x).sum(axis=1, keepdims=True), rtol=1e-13)
    d = L.Dense(6, 3, rng=0)
    np.testing.assert_allclose(d.forward(x), x @ d.W + d.b, rtol=1e-13)
    p = L.PReLU(6, alpha_init=0.25)
    p.params[0][:] = np.arange(6) / 10
    np.testing.assert_allclose(p.forward(x), np.where(x > 0, x, np.arange(6) / 10 * x), rtol=1e-15)


def test_maxout_takes_max_over_adjacent_pieces(gen):
    m = L.Maxout(6, 2, pieces=3, rng=0)
    assert m.W.shape == (6, 6) and m.b.shape == (6,)
    x = gen.normal(size=(5, 6))
    z = x @ m.W + m.b
    np.testing.assert_allclose(m.forward(x), z.reshape(5, 2, 3).max(axis=2), rtol=1e-13)


def test_batchnorm_normalizes_in_training_and_uses_running_stats_in_inference(gen):
    bn = L.BatchNorm(3, momentum=0.5)
    x = gen.normal(loc=[1, -2, 5], scale=[1, 3, 0.5], size=(200, 3))
    y = bn.forward(x, training=True)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), 1, rtol=1e-4)  # eps=1e-5 inside the sqrt
    # running = 0.5 * initial + 0.5 * batch statistic (unbiased variance)
    np.testing.assert_allclose(bn.buffers[0], 0.5 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers[1], 0.5 + 0.5 * x.var(axis=0, ddof=1), rtol=1e-12)
    rm, rv = bn.buffers
    expected = (x - rm) / np.sqrt(rv + 1e-5)
    np.testing.assert_allclose(bn.forward(x, training=False), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 samples"):
        bn.forward(x[:1], training=True)
    assert [n for n, _ in bn.state_arrays()] == ["gamma", "beta", "running_mean", "running_var"]


def test_dropout_masks_scales_and_is_identity_in_inference(gen):
    x = np.ones((400, 250))
    drop = L.Dropout(0.3, seed=0)
    assert drop.forward(x, training=False) is x
    y = drop.forward(x, training=True)
    zero = y == 0
    assert abs(zero.mean() - 0.3) < 0.01
    np.testing.assert_allclose(y[~zero], 1 / 0.7, rtol=1e-15)
    y2 = drop.forward(x, training=True)  # a new mask each call
    assert not np.array_equal(zero, y2 == 0)
    # reproducible from the seed
    np.testing.assert_array_equal(L.Dropout(0.3, seed=0).forward(x, True), y)
    g = gen.normal(size=x.shape)
    np.testing.assert_array_equal(drop.backward(g), g * (y2 / x))
    assert L.Dropout(0.0).forward(x, training=True) is x
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        L.Dropout(1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ALL)
def test_dtype_is_kept_end_to_end(name, dtype, gen):
    layer = make(name, 5).astype(dtype)
    x = gen.normal(size=(4, 5)).astype(dtype)
    y = layer.forward(x, True)
    assert y.dtype == dtype and y.flags.c_contiguous
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == dtype
    assert all(g.dtype == dtype for g in layer.grads)


def test_parametric_layers_convert_inputs_and_check_widths():
    d = L.Dense(3, 2, rng=0).astype(np.float32)
    x = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    assert d.forward(x).dtype == np.float32
    with pytest.raises(ValueError, match="expects 3 input features"):
        d.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="2-D"):
        d.forward(np.zeros(3))
    with pytest.raises(ValueError, match="must have shape"):
        d.set_state_arrays([np.zeros((2, 3)), np.zeros(2)])


def test_config_round_trip_rebuilds_each_layer():
    for name in ALL:
        layer = make(name, 5)
        again = L.layer_from_config(name, layer.get_config())
        assert type(again) is type(layer) and again.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="unknown layer type 'Conv2D'"):
        L.layer_from_config("Conv2D", {})


class _Recorder:
    """A stand-in for fastnn.backend.kernels: serves the reference kernels and records each call."""

    def __init__(self):
        self.calls = []
        self.served = 0

    def __call__(self, name=None):
        self.served += 1
        ref = backend.kernels("numpy")
        ns = types.SimpleNamespace()
        for concept in backend.KERNELS.values():
            for kernel in concept:
                fn = getattr(ref, kernel)
                setattr(ns, kernel, (lambda f, k: lambda *a, **kw: (self.calls.append(k), f(*a, **kw))[1])(fn, kernel))
        return ns


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Dense", ["dense_forward", "dense_backward_params", "dense_backward_input"]),
        ("Maxout", ["dense_forward", "maxout", "maxout_backward", "dense_backward_params", "dense_backward_input"]),
        ("Sigmoid", ["sigmoid", "sigmoid_backward"]),
        ("Softmax", ["softmax", "softmax_backward"]),
        ("LeakyReLU", ["leaky_relu", "leaky_relu_backward"]),
        ("PReLU", ["prelu", "prelu_backward"]),
        ("Dropout", ["dropout_forward", "dropout_backward"]),
        ("BatchNorm", ["batchnorm_forward_train", "batchnorm_backward"]),
    ],
)
def test_layers_compute_through_the_kernels_looked_up_at_call_time(name, expected, monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(L, "kernels", recorder)
    layer = make(name, 5)
    y = layer.forward(np.ones((3, 5)) * 0.5, True)
    layer.backward(np.ones_like(y))
    assert recorder.calls == expected
    assert recorder.served >= 2  # looked up again for backward, not cached at construction
