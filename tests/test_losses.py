"""Loss kernels (values and gradients): every backend against the reference, gradients against finite
differences, hypothesis properties of the cross-entropies at the numeric edges (Keras issue 198)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kernel_helpers import (
    BACKENDS,
    RTOL,
    SHAPES,
    assert_close,
    assert_grad,
    assert_same_kind,
    load,
    numeric_grad,
    randn,
)

EPS = 1e-7  # the probability clip used in these tests (bce, nll, poisson)


def _data(rng, shape, dtype):
    """Outputs a, targets y (soft, in [0, 1]), probabilities, logits and int64 labels for one shape; Poisson
    rates (positive outputs) and counts (targets, a third of them 0)."""
    n, k = shape
    return dict(
        rate=np.ascontiguousarray(rng.uniform(0.05, 6.0, shape).astype(dtype)),
        counts=np.ascontiguousarray(rng.poisson(1.2, shape).astype(dtype)),
        a=np.ascontiguousarray(rng.uniform(0.01, 0.99, shape).astype(dtype)),
        y=np.ascontiguousarray(rng.uniform(0, 1, shape).astype(dtype)),
        z=randn(rng, shape, dtype, 3.0),
        labels=rng.integers(0, k, n).astype(np.int64),
        p=np.ascontiguousarray(rng.dirichlet(np.ones(k), n).astype(dtype)),
    )


# name -> (loss(k, d), grad(k, d), first argument): the grad is with respect to d[first argument].
LOSSES = {
    "quadratic": (lambda k, d: k.quadratic_loss(d["a"], d["y"]), lambda k, d: k.quadratic_grad(d["a"], d["y"]), "a"),
    "mse": (lambda k, d: k.mse_loss(d["a"], d["y"]), lambda k, d: k.mse_grad(d["a"], d["y"]), "a"),
    "bce": (lambda k, d: k.bce_loss(d["a"], d["y"], EPS), lambda k, d: k.bce_grad(d["a"], d["y"], EPS), "a"),
    "bce_logits": (lambda k, d: k.bce_logits_loss(d["z"], d["y"]), lambda k, d: k.bce_logits_grad(d["z"], d["y"]), "z"),
    "nll": (lambda k, d: k.nll_loss(d["p"], d["labels"], EPS), lambda k, d: k.nll_grad(d["p"], d["labels"], EPS), "p"),
    "softmax_nll": (lambda k, d: k.softmax_nll_loss(d["z"], d["labels"]),
                    lambda k, d: k.softmax_nll_grad(d["z"], d["labels"]), "z"),
    "poisson": (lambda k, d: k.poisson_loss(d["rate"], d["counts"], EPS),
                lambda k, d: k.poisson_grad(d["rate"], d["counts"], EPS), "rate"),
}
DELTAS = {
    "sigmoid_bce_delta": lambda k, d: k.sigmoid_bce_delta(d["a"], d["y"]),
    "softmax_nll_delta": lambda k, d: k.softmax_nll_delta(d["p"], d["labels"]),
    "exp_poisson_delta": lambda k, d: k.exp_poisson_delta(d["rate"], d["counts"]),
}


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_matches_reference(compiled, ref, dtype, rng, name, shape):
    loss, grad, first = LOSSES[name]
    d = _data(rng, shape, dtype)
    value = loss(compiled, d)
    assert isinstance(value, float), f"{name}: loss must be a Python float, got {type(value)}"
    # Every loss is a sum of non-negative terms accumulated in float64: relative error only.
    assert_close(value, loss(ref, d), RTOL[dtype], what=name)
    g = grad(compiled, d)
    assert_same_kind(g, d[first], name + " grad")
    expected = grad(ref, d)
    # sigmoid(z) - y and softmax(z) - onehot cancel: absolute error up to rtol * max|grad|.
    assert_close(g, expected, RTOL[dtype], np.max(np.abs(expected)), name + " grad")


@pytest.mark.parametrize("name", DELTAS)
@pytest.mark.parametrize("shape", SHAPES)
def test_deltas_compiled_match_reference(compiled, ref, dtype, rng, name, shape):
    d = _data(rng, shape, dtype)
    got = DELTAS[name](compiled, d)
    assert_same_kind(got, d["a"], name)
    expected = DELTAS[name](ref, d)
    assert_close(got, expected, RTOL[dtype], np.max(np.abs(expected)), name)


# name -> (loss(k, d, w) or None, grad(k, d, w), first argument): the kernels that take per-row sample weights w.
WEIGHTED = {
    "quadratic": (lambda k, d, w: k.quadratic_loss(d["a"], d["y"], w),
                  lambda k, d, w: k.quadratic_grad(d["a"], d["y"], w), "a"),
    "mse": (lambda k, d, w: k.mse_loss(d["a"], d["y"], w), lambda k, d, w: k.mse_grad(d["a"], d["y"], w), "a"),
    "bce": (lambda k, d, w: k.bce_loss(d["a"], d["y"], EPS, w), lambda k, d, w: k.bce_grad(d["a"], d["y"], EPS, w),
            "a"),
    "nll": (lambda k, d, w: k.nll_loss(d["p"], d["labels"], EPS, w),
            lambda k, d, w: k.nll_grad(d["p"], d["labels"], EPS, w), "p"),
    "poisson": (lambda k, d, w: k.poisson_loss(d["rate"], d["counts"], EPS, w),
                lambda k, d, w: k.poisson_grad(d["rate"], d["counts"], EPS, w), "rate"),
    "sigmoid_bce_delta": (None, lambda k, d, w: k.sigmoid_bce_delta(d["a"], d["y"], w), "a"),
    "softmax_nll_delta": (None, lambda k, d, w: k.softmax_nll_delta(d["p"], d["labels"], w), "p"),
    "exp_poisson_delta": (None, lambda k, d, w: k.exp_poisson_delta(d["rate"], d["counts"], w), "rate"),
}


@pytest.mark.parametrize("name", WEIGHTED)
@pytest.mark.parametrize("shape", SHAPES)
def test_weighted_compiled_match_reference(compiled, ref, dtype, rng, name, shape):
    """Sample weights (some of them 0), and a batch whose weights are all 0 (loss and gradient 0), against the
    reference; weights of 1 give what no weights give, to the bit."""
    loss, grad, first = WEIGHTED[name]
    d = _data(rng, shape, dtype)
    w = rng.uniform(0, 2, shape[0]).astype(dtype)
    w[::3] = 0
    for weights in (w, np.zeros_like(w)):
        if loss is not None:
            assert_close(loss(compiled, d, weights), loss(ref, d, weights), RTOL[dtype], what=name)
        expected = grad(ref, d, weights)
        assert_close(grad(compiled, d, weights), expected, RTOL[dtype], np.max(np.abs(expected)), name + " grad")
    ones = np.ones(shape[0], dtype)
    if loss is not None:
        assert loss(compiled, d, ones) == loss(compiled, d, None)
    np.testing.assert_array_equal(grad(compiled, d, ones), grad(compiled, d, None))


@pytest.mark.parametrize("name", [key for key, (loss, _, _) in WEIGHTED.items() if loss is not None])
def test_weighted_grad_matches_finite_differences(bk, rng, name):
    loss, grad, first = WEIGHTED[name]
    d = _data(rng, (5, 3), np.float64)
    d["a"] = np.ascontiguousarray(rng.uniform(0.05, 0.95, (5, 3)))  # away from the clip
    d["p"] = np.ascontiguousarray(rng.uniform(0.05, 0.95, (5, 3)))
    w = rng.uniform(0, 2, 5)
    assert_grad(grad(bk, d, w), numeric_grad(lambda: loss(bk, d, w), d[first]), name)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (128, 784)])
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, name, shape):
    loss, grad, _ = LOSSES[name]
    d32 = _data(rng, shape, np.float32)
    d64 = {key: (v.astype(np.float64) if v.dtype == np.float32 else v) for key, v in d32.items()}
    rtol = RTOL[np.dtype(np.float32)]
    assert_close(loss(compiled, d32), loss(ref, d64), rtol, what=name)
    expected = grad(ref, d64)
    assert_close(grad(compiled, d32), expected, rtol, np.max(np.abs(expected)), name + " grad")


def test_values_by_hand(bk, dtype):
    a = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=dtype)
    y = np.array([[0.0, 2.0], [3.0, 2.0]], dtype=dtype)
    # squared errors 1 + 0 + 0 + 4 = 5; n = 2 rows, 4 elements
    assert bk.quadratic_loss(a, y) == pytest.approx(5 / (2 * 2))
    np.testing.assert_allclose(bk.quadratic_grad(a, y), [[0.5, 0.0], [0.0, 1.0]], rtol=1e-6)
    assert bk.mse_loss(a, y) == pytest.approx(5 / 4)
    np.testing.assert_allclose(bk.mse_grad(a, y), [[0.5, 0.0], [0.0, 1.0]], rtol=1e-6)
    half = np.array([[0.5]], dtype=dtype)
    one = np.array([[1.0]], dtype=dtype)
    assert bk.bce_loss(half, one, EPS) == pytest.approx(np.log(2))
    np.testing.assert_allclose(bk.bce_grad(half, one, EPS), [[-2.0]], rtol=1e-6)  # (0.5 - 1) / 0.25
    zero = np.zeros((1, 1), dtype=dtype)
    assert bk.bce_logits_loss(zero, one) == pytest.approx(np.log(2))
    np.testing.assert_allclose(bk.bce_logits_grad(zero, one), [[-0.5]], rtol=1e-6)
    p = np.array([[0.25, 0.75]], dtype=dtype)
    labels = np.array([1], dtype=np.int64)
    assert bk.nll_loss(p, labels, EPS) == pytest.approx(-np.log(0.75), rel=1e-6)
    np.testing.assert_allclose(bk.nll_grad(p, labels, EPS), [[0.0, -1 / 0.75]], rtol=1e-6)
    z = np.zeros((1, 2), dtype=dtype)
    labels0 = np.array([0], dtype=np.int64)
    assert bk.softmax_nll_loss(z, labels0) == pytest.approx(np.log(2))
    np.testing.assert_allclose(bk.softmax_nll_grad(z, labels0), [[-0.5, 0.5]], rtol=1e-6)
    np.testing.assert_allclose(bk.softmax_nll_delta(p, labels), [[0.25, -0.25]], rtol=1e-6)
    np.testing.assert_allclose(bk.sigmoid_bce_delta(p, np.array([[0.0, 1.0]], dtype)), [[0.25, -0.25]], rtol=1e-6)
    # Poisson: (2 - 0) + (0.5 - 1 + ln(1 / 0.5)) over 1 row; gradient 1 - y / a
    rate, counts = np.array([[2.0, 0.5]], dtype=dtype), np.array([[0.0, 1.0]], dtype=dtype)
    assert bk.poisson_loss(rate, counts, EPS) == pytest.approx(1.5 + np.log(2), rel=1e-6)
    np.testing.assert_allclose(bk.poisson_grad(rate, counts, EPS), [[1.0, -1.0]], rtol=1e-6)
    np.testing.assert_allclose(bk.exp_poisson_delta(rate, counts), [[2.0, -0.5]], rtol=1e-6)


def test_poisson_is_half_scikit_learns_mean_poisson_deviance(bk, dtype, rng):
    """An independent reference: scikit-learn's mean_poisson_deviance (2 mean(y ln(y/a) - y + a), one output
    at a time), halved and summed over the outputs, with and without sample weights."""
    from sklearn.metrics import mean_poisson_deviance

    d = _data(rng, (40, 3), dtype)
    w = rng.uniform(0, 2, 40).astype(dtype)
    for weights in (None, w):
        expected = sum(mean_poisson_deviance(d["counts"][:, j].astype(np.float64), d["rate"][:, j].astype(np.float64),
                                             sample_weight=weights) / 2 for j in range(3))
        assert bk.poisson_loss(d["rate"], d["counts"], EPS, weights) == pytest.approx(expected, rel=RTOL[dtype])


def test_clipping_keeps_loss_and_grad_finite(bk, dtype):
    # Keras issue 198: log(0) once a prediction is exactly right or exactly wrong.
    eps = float(np.finfo(dtype).eps)
    a = np.array([[0.0, 1.0, 0.0, 1.0]], dtype=dtype)
    y = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    value = bk.bce_loss(a, y, eps)
    assert np.isfinite(value) and value == pytest.approx(-2 * np.log(eps), rel=1e-3)
    g = bk.bce_grad(a, y, eps)
    assert np.isfinite(g).all()
    assert g[0, 2] < 0 < g[0, 3]  # pushes the wrong predictions the right way
    p = np.array([[0.0, 1.0]], dtype=dtype)
    labels = np.array([0], dtype=np.int64)
    assert bk.nll_loss(p, labels, eps) == pytest.approx(-np.log(eps), rel=1e-6)
    assert np.isfinite(bk.nll_grad(p, labels, eps)).all()
    # Poisson: a rate of exactly 0 where the count is 0 costs nothing; where it is 2, ln(2 / eps) each.
    rate = np.array([[0.0, 0.0, 1.0]], dtype=dtype)
    counts = np.array([[0.0, 2.0, 0.0]], dtype=dtype)
    assert bk.poisson_loss(rate, counts, eps) == pytest.approx(-2 + 2 * np.log(2 / eps) + 1, rel=1e-6)
    g = bk.poisson_grad(rate, counts, eps)
    assert np.isfinite(g).all() and g[0, 1] < 0 < g[0, 2]


def _bce_edge_cases(dtype):
    """(a, y, eps): NaN in a or y, a at 0 and 1 with eps = 0 (log 0 = -inf: the loss is inf, or NaN from
    0 * -inf, as in the reference), subnormal and tiny a, a next to 1, +-inf clipped, and a huge eps."""
    info = np.finfo(dtype)
    below1 = float(np.nextafter(dtype.type(1), dtype.type(0)))
    sub, tiny = float(info.smallest_subnormal), float(info.tiny)
    return [
        ([0.3, np.nan, 0.6], [1.0, 0.0, 0.5], 1e-7),
        ([0.3, 0.2, 0.6], [1.0, np.nan, 0.5], 1e-7),
        ([0.0, 1.0], [0.0, 1.0], 0.0),
        ([0.0, 1.0], [1.0, 0.0], 0.0),
        ([0.0, 1.0], [1.0, 0.0], 1e-7),
        ([sub, 2 * tiny, tiny / 3], [0.3, 1.0, 0.5], 0.0),
        ([below1, 1e-5, 3e-12], [0.0, 0.0, 0.0], 0.0),
        ([below1, 1e-5, 3e-12], [1.0, 0.25, 1.0], 1e-300),
        ([np.inf, -np.inf, 0.5], [1.0, 0.0, 1.0], 1e-7),
        ([0.1, 0.9], [1.0, 0.0], 0.75),
    ]


def test_bce_loss_edges_match_reference(compiled, ref, dtype, rng):
    for a_row, y_row, eps in _bce_edge_cases(dtype):
        a, y = np.array([a_row], dtype=dtype), np.array([y_row], dtype=dtype)
        # Also inside a larger array (the vectorized loop body, then its tail): tile the row.
        a_big = np.ascontiguousarray(np.tile(a, (5, 13)))
        y_big = np.ascontiguousarray(np.tile(y, (5, 13)))
        for aa, yy in ((a, y), (a_big, y_big)):
            with np.errstate(divide="ignore", invalid="ignore"):  # the reference's own log(0) and 0 * inf
                expected = ref.bce_loss(aa, yy, eps)
            got = compiled.bce_loss(aa, yy, eps)
            assert isinstance(got, float)
            assert_close(got, expected, RTOL[np.dtype(np.float64)], what=f"bce_loss({a_row}, {y_row}, {eps})")


def test_bce_loss_logs_to_an_ulp(compiled, dtype, rng):
    """One term at a time, y = 1 (log a) and y = 0 (log(1 - a)), over [smallest normal, 1): each within
    2 ulp of NumPy's log / log1p (float64 terms: fdlibm's log is within 1 ulp)."""
    lo = np.log10(np.finfo(dtype).tiny)
    a = np.concatenate([10.0 ** rng.uniform(lo, 0, 300), rng.uniform(0, 1, 200), [0.5, 0.75, 1e-4]]).astype(dtype)
    a = a[(a > 0) & (a < 1)]
    one, zero = np.ones((1, 1), dtype), np.zeros((1, 1), dtype)
    for v in a:
        c = np.array([[v]], dtype=dtype)
        for y, exact in ((one, -np.log(float(v))), (zero, -np.log1p(-float(v)))):
            got = compiled.bce_loss(c, y, 0.0)
            assert abs(got - exact) <= 4.5e-16 * abs(exact), (float(v), float(y[0, 0]), got, exact)


# -- finite differences (float64, every backend) --------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (5, 1), (1, 6)])
def test_grad_matches_finite_differences(bk, rng, name, shape):
    loss, grad, first = LOSSES[name]
    d = _data(rng, shape, np.float64)
    d["a"] = np.ascontiguousarray(rng.uniform(0.05, 0.95, shape))  # away from the clip
    d["p"] = np.ascontiguousarray(rng.uniform(0.05, 0.95, shape))
    assert_grad(grad(bk, d), numeric_grad(lambda: loss(bk, d), d[first]), name)


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (5, 1)])
def test_fused_deltas_are_gradients_through_the_output_layer(bk, rng, shape):
    d = _data(rng, shape, np.float64)
    z = d["z"]
    f = lambda: bk.bce_loss(bk.sigmoid(z), d["y"], 1e-300)  # noqa: E731
    assert_grad(bk.sigmoid_bce_delta(bk.sigmoid(z), d["y"]), numeric_grad(f, z), "sigmoid_bce_delta")
    f = lambda: bk.nll_loss(bk.softmax(z), d["labels"], 1e-300)  # noqa: E731
    assert_grad(bk.softmax_nll_delta(bk.softmax(z), d["labels"]), numeric_grad(f, z), "softmax_nll_delta")
    f = lambda: bk.poisson_loss(bk.exp(z), d["counts"], 1e-300)  # noqa: E731
    assert_grad(bk.exp_poisson_delta(bk.exp(z), d["counts"]), numeric_grad(f, z), "exp_poisson_delta")


# -- hypothesis: the cross-entropies at the numeric edges --------------------------------------------------

SETTINGS = settings(max_examples=40, deadline=None)
PAIRS = [(b, d) for b in BACKENDS for d in (np.float32, np.float64)]


def _floats(dt, bound):
    width = 32 if np.dtype(dt) == np.float32 else 64
    small = float(np.dtype(dt).type(1e-30))
    return st.one_of(
        st.floats(-bound, bound, width=width),
        st.floats(-30, 30, width=width),
        st.sampled_from([-bound, bound, -1e4, 1e4, 0.0]),
        st.floats(-small, small, width=width),
    )


def _bound(dt):
    # Huge but "meaningful": float32 up to its maximum; float64 up to 1e300, so a sum of 64 terms stays finite.
    return float(np.finfo(np.float32).max) if np.dtype(dt) == np.float32 else 1e300


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_bce_with_logits_properties(name, dt, data):
    k = load(name)
    shapes = hnp.array_shapes(min_dims=2, max_dims=2, max_side=8)
    z = data.draw(hnp.arrays(dt, shapes, elements=_floats(dt, _bound(dt))))
    y = data.draw(hnp.arrays(dt, z.shape, elements=st.sampled_from([0.0, 1.0, 0.5, 0.25])))
    n = z.shape[0]
    value = k.bce_logits_loss(z, y)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(load("numpy").bce_logits_loss(z, y), rel=RTOL[np.dtype(dt)])
    g = k.bce_logits_grad(z, y)
    assert g.dtype == dt and np.isfinite(g).all()
    assert (np.abs(g) <= (1 + 4 * np.finfo(dt).eps) / n).all()
    # Where |z| is moderate it is the cross-entropy of sigmoid(z), computed in float64.
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    if np.all(np.abs(z64) < 20):
        s = 1 / (1 + np.exp(-z64))
        direct = -np.sum(y64 * np.log(s) + (1 - y64) * np.log(1 - s)) / n
        assert value == pytest.approx(direct, rel=1e-5, abs=1e-6)


@st.composite
def _logits_and_labels(draw, dt):
    dt = np.dtype(dt)
    width = 32 if dt == np.float32 else 64
    # Each row's loss is at most the spread of its logits (2 * big); the sum over at most 8 rows must stay
    # finite in float64 (the float64 mean of values near the maximum overflows in the sum, legitimately).
    big = float(dt.type(float(np.finfo(dt).max) / 32))
    elements = st.one_of(_floats(dt, big), st.just(-np.inf))
    z = draw(hnp.arrays(dt, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=elements))
    labels = np.array(draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0])),
                      dtype=np.int64)
    rows = np.arange(z.shape[0])
    # The label's own logit is finite (else the loss is +inf by definition): -inf elsewhere is a masked class.
    fallback = dt.type(draw(st.floats(-5, 5, width=width)))
    z[rows, labels] = np.where(np.isfinite(z[rows, labels]), z[rows, labels], fallback)
    if draw(st.booleans()):
        z[0] = z[0, labels[0]]  # an all-equal row
    return np.ascontiguousarray(z), labels


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_softmax_cross_entropy_properties(name, dt, data):
    k = load(name)
    z, labels = data.draw(_logits_and_labels(dt))
    n, width = z.shape
    eps = float(np.finfo(dt).eps)
    value = k.softmax_nll_loss(z, labels)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(load("numpy").softmax_nll_loss(z, labels), rel=RTOL[np.dtype(dt)], abs=1e-12)
    if np.all(z[0] == z[0, 0]) and n == 1:
        assert value == pytest.approx(np.log(width), rel=1e-6)
    g = k.softmax_nll_grad(z, labels)
    assert g.dtype == dt and np.isfinite(g).all()
    assert (np.abs(g) <= (1 + 4 * eps) / n).all()
    np.testing.assert_allclose(g.sum(axis=1, dtype=np.float64), 0.0, atol=4 * width * eps / n)
    assert (g[np.isneginf(z)] == 0).all()  # masked classes get no gradient
    rows = np.arange(n)
    assert (g[rows, labels] <= 0).all()


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_probability_losses_never_nan(name, dt, data):
    """bce and nll on probabilities that hit 0 and 1 exactly: finite thanks to the clip."""
    k = load(name)
    eps = float(np.finfo(dt).eps)
    probs = st.one_of(st.sampled_from([0.0, 1.0, 0.5]), st.floats(0, 1, width=32 if np.dtype(dt) == np.float32 else 64))
    a = data.draw(hnp.arrays(dt, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=probs))
    y = data.draw(hnp.arrays(dt, a.shape, elements=st.sampled_from([0.0, 1.0, 0.5])))
    n = a.shape[0]
    value = k.bce_loss(a, y, eps)
    assert np.isfinite(value) and value >= -1e-12
    assert value <= -np.log(eps) * a.shape[1] * (1 + 1e-6)  # each term is at most -log(eps)
    g = k.bce_grad(a, y, eps)
    assert np.isfinite(g).all()
    labels = np.array(data.draw(st.lists(st.integers(0, a.shape[1] - 1), min_size=n, max_size=n)), dtype=np.int64)
    value = k.nll_loss(a, labels, eps)
    assert np.isfinite(value) and 0 <= value <= -np.log(eps) * (1 + 1e-6)
    g = k.nll_grad(a, labels, eps)
    assert np.isfinite(g).all() and (g <= 0).all()
