"""Softmax, log-softmax and log-sum-exp kernels: every backend against the reference, gradients against
finite differences, and hypothesis properties at the numeric edges.

Documented behaviour checked here: -inf logits get probability 0 (log-probability -inf) without NaN; an
all -inf row is the limit of a row of equal values: softmax 1/k, log-softmax -log(k), logsumexp -inf.
"""
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

NEG_INF = -np.inf


def _logits(rng, shape, dtype, case):
    """Random logits: plain (scale 5), large (scale 1e4), with -inf entries, or with all -inf rows."""
    n, k = shape
    z = rng.standard_normal(shape) * (1e4 if case == "large" else 5.0)
    if case in ("neg_inf", "dead_rows"):
        z[rng.random(shape) < 0.3] = NEG_INF
        z[np.arange(n), rng.integers(0, k, n)] = rng.standard_normal(n)  # keep one finite entry per row
    if case == "dead_rows":
        z[:: 2] = NEG_INF  # every other row, including row 0
    return np.ascontiguousarray(z.astype(dtype))


CASES = ["plain", "large", "neg_inf", "dead_rows"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_matches_reference(compiled, ref, dtype, rng, shape, case):
    z = _logits(rng, shape, dtype, case)
    rtol = RTOL[dtype]
    tiny = float(np.finfo(dtype).tiny)  # probabilities that underflow to denormals have no relative accuracy
    p = compiled.softmax(z)
    assert_same_kind(p, z, "softmax")
    rp = ref.softmax(z)
    assert_close(p, rp, rtol, what="softmax", atol=tiny)
    lp = compiled.log_softmax(z)
    assert_same_kind(lp, z, "log_softmax")
    # log(sum) near 0 is ill-conditioned in the sum's rounding: absolute error ~ rtol, hence scale 1.
    rlp = ref.log_softmax(z)
    assert_close(lp, rlp, rtol, 1.0, "log_softmax")
    lse = compiled.logsumexp(z)
    assert lse.dtype == dtype and lse.shape == (shape[0],)
    m = np.max(z.astype(np.float64), axis=1)
    assert_close(lse, ref.logsumexp(z), rtol, np.where(np.isinf(m), 0, np.abs(m)) + 1, "logsumexp")

    da = randn(rng, shape, dtype)
    r64 = rp.astype(np.float64)
    # Backward passes subtract a row sum from each entry: scale by the size of both terms.
    terms = r64 * (np.abs(da) + np.sum(np.abs(r64 * da), axis=1, keepdims=True))
    got = compiled.softmax_backward(z, rp, da)
    assert_same_kind(got, z, "softmax_backward")
    assert_close(got, ref.softmax_backward(z, rp, da), rtol, terms, "softmax_backward", atol=tiny)
    terms = np.abs(da) + np.exp(rlp.astype(np.float64)) * np.sum(np.abs(da), axis=1, keepdims=True)
    got = compiled.log_softmax_backward(z, rlp, da)
    assert_same_kind(got, z, "log_softmax_backward")
    assert_close(got, ref.log_softmax_backward(z, rlp, da), rtol, terms, "log_softmax_backward")
    dl = randn(rng, (shape[0],), dtype)
    got = compiled.logsumexp_backward(z, dl)
    assert_same_kind(got, z, "logsumexp_backward")
    assert_close(got, ref.logsumexp_backward(z, dl), rtol, what="logsumexp_backward", atol=tiny)


@pytest.mark.parametrize("case", ["plain", "neg_inf", "dead_rows"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (128, 784)])
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, shape, case):
    z = _logits(rng, shape, np.float32, case)
    z64 = z.astype(np.float64)
    rtol = RTOL[np.dtype(np.float32)]
    tiny = float(np.finfo(np.float32).tiny)
    assert_close(compiled.softmax(z), ref.softmax(z64), rtol, what="softmax", atol=tiny)
    assert_close(compiled.log_softmax(z), ref.log_softmax(z64), rtol, 1.0, "log_softmax")
    m = np.max(z64, axis=1)
    assert_close(compiled.logsumexp(z), ref.logsumexp(z64), rtol, np.where(np.isinf(m), 0, np.abs(m)) + 1)


def test_values_by_hand(bk, dtype):
    z = np.array([[0.0, np.log(3.0)], [1.0, 1.0], [NEG_INF, 2.0], [NEG_INF, NEG_INF]], dtype=dtype)
    p = bk.softmax(z)
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]], rtol=1e-6)
    assert p[2, 0] == 0  # exactly
    lp = bk.log_softmax(z)
    np.testing.assert_allclose(lp, [[np.log(0.25), np.log(0.75)], [-np.log(2)] * 2, [NEG_INF, 0.0], [-np.log(2)] * 2],
                               rtol=1e-6)
    lse = bk.logsumexp(z)
    np.testing.assert_allclose(lse, [np.log(4.0), 1 + np.log(2.0), 2.0, NEG_INF], rtol=1e-6)


@pytest.mark.parametrize("value", [0.0, -3.5, 1e4, -1e4, NEG_INF])
def test_single_column(bk, dtype, value):
    # One class: probability 1, log-probability 0, logsumexp = the logit (an all -inf row included).
    z = np.full((3, 1), value, dtype=dtype)
    np.testing.assert_array_equal(bk.softmax(z), np.ones((3, 1)))
    np.testing.assert_array_equal(bk.log_softmax(z), np.zeros((3, 1)))
    np.testing.assert_array_equal(bk.logsumexp(z), np.full(3, value))
    np.testing.assert_array_equal(bk.logsumexp_backward(z, np.full(3, 2.0, dtype=dtype)), np.full((3, 1), 2.0))


# -- finite differences (float64, every backend) --------------------------------------------------------


@pytest.mark.parametrize("case", ["plain", "neg_inf"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (4, 5), (6, 1)])
def test_backward_matches_finite_differences(bk, rng, shape, case):
    z = _logits(rng, shape, np.float64, case)
    # Perturbing a -inf entry leaves it -inf, so its numeric gradient is 0: the analytic one must be too.
    live = np.isfinite(z)
    da = np.where(live, rng.standard_normal(shape), 0.0)  # -inf log-probabilities do not enter the sum
    f = lambda: float(np.sum(bk.softmax(z) * da))  # noqa: E731
    assert_grad(bk.softmax_backward(z, bk.softmax(z), da), numeric_grad(f, z), "softmax")
    f = lambda: float(np.sum(np.where(live, bk.log_softmax(z), 0.0) * da))  # noqa: E731
    assert_grad(bk.log_softmax_backward(z, bk.log_softmax(z), da), numeric_grad(f, z), "log_softmax")
    dl = rng.standard_normal(shape[0])
    f = lambda: float(np.sum(bk.logsumexp(z) * dl))  # noqa: E731
    assert_grad(bk.logsumexp_backward(z, dl), numeric_grad(f, z), "logsumexp")


# -- hypothesis properties --------------------------------------------------------------------------------

SETTINGS = settings(max_examples=40, deadline=None)
PAIRS = [(b, d) for b in BACKENDS for d in (np.float32, np.float64)]


@st.composite
def logit_rows(draw, dtype, bound=None):
    """2-D logits: huge (up to half the float maximum, so that any difference of two logits is finite),
    +-1e4, tiny, -inf entries, and whole rows made all-equal or all -inf; one column included."""
    dtype = np.dtype(dtype)
    width = 32 if dtype == np.float32 else 64
    big = float(dtype.type(float(np.finfo(dtype).max) / 2)) if bound is None else bound
    small = float(dtype.type(1e-30))
    elements = st.one_of(
        st.floats(-big, big, width=width),
        st.floats(-30, 30, width=width),
        st.sampled_from([NEG_INF, NEG_INF, -1e4, 1e4, 0.0, big, -big]),
        st.floats(-small, small, width=width),
    )
    z = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, max_side=8), elements=elements))
    modes = draw(st.lists(st.sampled_from(["keep", "keep", "equal", "dead"]), min_size=z.shape[0],
                          max_size=z.shape[0]))
    for i, mode in enumerate(modes):
        if mode == "equal":
            z[i] = z[i, 0] if np.isfinite(z[i, 0]) else 1.5
        elif mode == "dead":
            z[i] = NEG_INF
    return np.ascontiguousarray(z)


def _row_info(z):
    dead = np.all(z == NEG_INF, axis=1)
    return dead, np.isneginf(z) & ~dead[:, None]


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_softmax_properties(name, dt, data):
    k = load(name)
    z = data.draw(logit_rows(dt))
    n, width = z.shape
    eps = float(np.finfo(dt).eps)
    p = k.softmax(z)
    assert p.dtype == dt and p.shape == z.shape
    assert not np.isnan(p).any()
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_allclose(p.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=2 * width * eps)
    dead, masked = _row_info(z)
    assert (p[masked] == 0).all()  # -inf entries: probability exactly 0
    np.testing.assert_allclose(p[dead], 1.0 / width, rtol=2 * eps)  # all -inf rows: uniform
    equal = np.all(z == z[:, :1], axis=1) & ~dead
    np.testing.assert_allclose(p[equal], 1.0 / width, rtol=4 * eps)
    rows = np.arange(n)
    assert (p[rows, np.argmax(z, axis=1)] >= p.max(axis=1) * (1 - 2 * eps)).all()  # the largest logit wins
    tiny = float(np.finfo(dt).tiny)
    assert_close(p, load("numpy").softmax(z), RTOL[np.dtype(dt)], atol=tiny)


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_log_softmax_properties(name, dt, data):
    k = load(name)
    z = data.draw(logit_rows(dt))
    n, width = z.shape
    eps = float(np.finfo(dt).eps)
    lp = k.log_softmax(z)
    assert lp.dtype == dt and not np.isnan(lp).any()
    assert (lp <= 0).all()
    dead, masked = _row_info(z)
    assert (lp[masked] == NEG_INF).all()
    assert np.isfinite(lp[~masked]).all()  # finite wherever the logit is (differences never overflow here)
    np.testing.assert_allclose(lp[dead], -np.log(width), rtol=4 * eps)
    # The largest logit has probability >= 1/k.
    assert (lp.max(axis=1) >= -np.log(width) - 4 * eps * (1 + np.log(width))).all()
    # exp(log_softmax) is softmax.
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)), k.softmax(z), rtol=0, atol=8 * width * eps)


@pytest.mark.parametrize("name,dt", PAIRS)
@SETTINGS
@given(data=st.data())
def test_logsumexp_properties(name, dt, data):
    k = load(name)
    z = data.draw(logit_rows(dt))
    n, width = z.shape
    eps = float(np.finfo(dt).eps)
    lse = k.logsumexp(z)
    assert lse.dtype == dt and lse.shape == (n,) and not np.isnan(lse).any()
    m = z.max(axis=1)
    assert (lse >= m).all()  # exactly: the max term contributes exp(0) = 1 to the sum
    live = np.isfinite(m)
    m64 = m[live].astype(np.float64)
    assert (lse[live] <= m64 + np.log(width) * (1 + 4 * eps) + 2 * eps * np.abs(m64)).all()
    dead, _ = _row_info(z)
    assert (lse[dead] == NEG_INF).all()
    assert np.isfinite(lse[~dead]).all()
    equal = np.all(z == z[:, :1], axis=1) & ~dead
    v = z[equal, 0].astype(np.float64)
    np.testing.assert_allclose(lse[equal], v + np.log(width), rtol=4 * eps, atol=4 * eps)
    # PyTorch issue 31829: the gradient is finite wherever the value is (and at -inf entries it is 0);
    # an all -inf row gets the uniform limit, also finite.
    g = k.logsumexp_backward(z, np.ones(n, dtype=dt))
    assert g.dtype == dt and np.isfinite(g).all()
    assert (g[np.isneginf(z) & ~dead[:, None]] == 0).all()
    np.testing.assert_allclose(g.sum(axis=1, dtype=np.float64), 1.0, rtol=0, atol=2 * width * eps)


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_log_softmax_float32_exact_for_1e4_logits(name, data):
    """Large float32 logits: (z - max) - log(sum(exp(z - max))) keeps full precision, where
    z - logsumexp(z) would lose ~1e-3 (the spacing of float32 numbers near 1e4)."""
    k = load(name)
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8))
    offsets = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-20, 20, width=32)))
    sign = data.draw(st.sampled_from([1.0, -1.0]))
    z = np.ascontiguousarray((np.float32(sign * 1e4) + offsets).astype(np.float32))
    expected = load("numpy").log_softmax(z.astype(np.float64))  # the same float32 values, in float64
    got = k.log_softmax(z)
    assert got.dtype == np.float32
    # A few float32 roundings of values of size |expected| and of log(sum) (<= log 8): 1e-6 * (1 + |x|).
    err = np.abs(got.astype(np.float64) - expected)
    assert (err <= 1e-6 * (1 + np.abs(expected))).all(), f"max error {err.max():.3g}"
