"""Activation kernels: every backend against the NumPy reference, gradients against finite differences,
and hypothesis properties of sigmoid and softplus at the numeric edges."""
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
    away_from_zero,
    load,
    numeric_grad,
    randn,
)

# name -> (forward(k, z), backward(k, z, a, da)); leaky_relu with two slopes, one of them not tiny.
ELEMENTWISE = {
    "sigmoid": (lambda k, z: k.sigmoid(z), lambda k, z, a, da: k.sigmoid_backward(z, a, da)),
    "tanh": (lambda k, z: k.tanh(z), lambda k, z, a, da: k.tanh_backward(z, a, da)),
    "relu": (lambda k, z: k.relu(z), lambda k, z, a, da: k.relu_backward(z, a, da)),
    "leaky_relu_0.01": (lambda k, z: k.leaky_relu(z, 0.01), lambda k, z, a, da: k.leaky_relu_backward(z, a, da, 0.01)),
    "leaky_relu_0.3": (lambda k, z: k.leaky_relu(z, 0.3), lambda k, z, a, da: k.leaky_relu_backward(z, a, da, 0.3)),
    "softplus": (lambda k, z: k.softplus(z), lambda k, z, a, da: k.softplus_backward(z, a, da)),
    "exp": (lambda k, z: k.exp(z), lambda k, z, a, da: k.exp_backward(z, a, da)),
    "identity": (lambda k, z: k.identity(z), lambda k, z, a, da: k.identity_backward(z, a, da)),
}
# Values at the edges: huge, tiny, exactly 0 (the kink), just around 0, and where exp over/underflows.
EDGES = [-1e4, -800.0, -100.0, -50.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 50.0, 100.0, 800.0, 1e4]


def _inputs(rng, shape, dtype):
    z = randn(rng, shape, dtype, 4.0)
    return z, randn(rng, shape, dtype)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", SHAPES)
def test_compiled_matches_reference(compiled, ref, dtype, rng, name, shape):
    fwd, bwd = ELEMENTWISE[name]
    z, da = _inputs(rng, shape, dtype)
    a = fwd(compiled, z)
    assert_same_kind(a, z, name)
    # Element-wise: pure relative error (each value is a few roundings of its own input).
    assert_close(a, fwd(ref, z), RTOL[dtype], what=name)
    ra = fwd(ref, z)
    dz = bwd(compiled, z, ra, da)
    assert_same_kind(dz, z, name + "_backward")
    # 1 - a^2 and a (1 - a) cancel: their absolute error scales with |da|, not with the result.
    assert_close(dz, bwd(ref, z, ra, da), RTOL[dtype], np.abs(da), name + "_backward")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_compiled_matches_reference_at_edges(compiled, ref, dtype, name):
    z = np.array([EDGES], dtype=dtype)
    da = np.ones_like(z)
    fwd, bwd = ELEMENTWISE[name]
    rtol = RTOL[dtype]
    tiny = float(np.finfo(dtype).tiny)  # results that underflow into denormals carry no relative accuracy
    assert_close(fwd(compiled, z), fwd(ref, z), rtol, what=name, atol=tiny)
    ra = fwd(ref, z)
    assert_close(bwd(compiled, z, ra, da), bwd(ref, z, ra, da), rtol, 1.0, name + "_backward", atol=tiny)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (128, 784)])
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, name, shape):
    fwd, bwd = ELEMENTWISE[name]
    z, da = _inputs(rng, shape, np.float32)
    z64, da64 = z.astype(np.float64), da.astype(np.float64)
    rtol = RTOL[np.dtype(np.float32)]
    assert_close(fwd(compiled, z), fwd(ref, z64), rtol, what=name)
    a32 = fwd(compiled, z)
    # Backward from the float32 forward output: a's own rounding (~6e-8) is amplified by the cancellation
    # in 1 - a^2 / a (1 - a) to an absolute error of that order times |da|.
    assert_close(bwd(compiled, z, a32, da), bwd(ref, z64, fwd(ref, z64), da64), rtol, np.abs(da64), name)


@pytest.mark.parametrize("shape", SHAPES)
def test_prelu_compiled_matches_reference(compiled, ref, dtype, rng, shape):
    z, da = _inputs(rng, shape, dtype)
    alpha = np.ascontiguousarray(rng.uniform(-0.5, 0.5, shape[1]).astype(dtype))
    a = compiled.prelu(z, alpha)
    assert_same_kind(a, z, "prelu")
    assert_close(a, ref.prelu(z, alpha), RTOL[dtype], what="prelu")
    dz, dalpha = compiled.prelu_backward(z, alpha, da)
    rdz, rdalpha = ref.prelu_backward(z, alpha, da)
    assert dz.dtype == dalpha.dtype == dtype and dalpha.shape == (shape[1],)
    assert_close(dz, rdz, RTOL[dtype], what="prelu dz")
    # dalpha sums da * z over the batch: scale = sum |da * z|.
    scale = np.sum(np.abs(da.astype(np.float64) * z), axis=0)
    assert_close(dalpha, rdalpha, RTOL[dtype], scale, "prelu dalpha")


@pytest.mark.parametrize("pieces", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
def test_maxout_compiled_matches_reference(compiled, ref, dtype, rng, shape, pieces):
    n, units = shape
    z = randn(rng, (n, units * pieces), dtype)
    a, idx = compiled.maxout(z, pieces)
    ra, ridx = ref.maxout(z, pieces)
    assert a.dtype == dtype and a.shape == (n, units) and idx.dtype == np.int64
    np.testing.assert_array_equal(a, ra)  # a selection: exact
    np.testing.assert_array_equal(idx, ridx)
    da = randn(rng, (n, units), dtype)
    dz = compiled.maxout_backward(da, ridx, pieces)
    assert dz.dtype == dtype and dz.shape == z.shape
    np.testing.assert_array_equal(dz, ref.maxout_backward(da, ridx, pieces))


def test_maxout_ties_take_the_first_piece(bk, dtype):
    z = np.array([[1.0, 1.0, 0.0, 2.0, 2.0, 2.0, -1.0, 3.0, 3.0]], dtype=dtype)
    a, idx = bk.maxout(z, 3)
    np.testing.assert_array_equal(a, [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(idx, [[0, 0, 1]])
    dz = bk.maxout_backward(np.array([[1.0, 2.0, 3.0]], dtype=dtype), idx, 3)
    np.testing.assert_array_equal(dz, [[1, 0, 0, 2, 0, 0, 0, 3, 0]])


def test_kinks_take_the_left_derivative(bk, dtype):
    # At z == 0: relu' = 0 (as PyTorch), leaky_relu' = slope, prelu' = alpha.
    z = np.zeros((1, 2), dtype=dtype)
    da = np.ones_like(z)
    np.testing.assert_array_equal(bk.relu_backward(z, bk.relu(z), da), [[0, 0]])
    np.testing.assert_array_equal(bk.leaky_relu_backward(z, bk.leaky_relu(z, 0.25), da, 0.25), [[0.25, 0.25]])
    alpha = np.array([0.5, -0.25], dtype=dtype)
    dz, dalpha = bk.prelu_backward(z, alpha, da)
    np.testing.assert_array_equal(dz, [[0.5, -0.25]])
    np.testing.assert_array_equal(dalpha, [0, 0])


def test_values_by_hand(bk, dtype):
    z = np.array([[-2.0, 0.0, 3.0]], dtype=dtype)
    t = dtype.type
    np.testing.assert_array_equal(bk.relu(z), [[0, 0, 3]])
    np.testing.assert_allclose(bk.leaky_relu(z, 0.1), [[-0.2, 0, 3]], rtol=1e-6)
    np.testing.assert_allclose(bk.prelu(z, np.array([0.5, 0.5, 0.5], dtype)), [[-1, 0, 3]], rtol=1e-6)
    np.testing.assert_allclose(bk.sigmoid(z), [[1 / (1 + np.exp(2)), 0.5, 1 / (1 + np.exp(-3))]], rtol=1e-6)
    np.testing.assert_allclose(bk.softplus(z), [[np.log1p(np.exp(-2)), np.log(2), 3 + np.log1p(np.exp(-3))]], rtol=1e-6)
    np.testing.assert_allclose(bk.tanh(z), np.tanh(z.astype(np.float64)), rtol=1e-6)
    assert bk.identity(z).dtype == dtype and bk.identity(z)[0, 2] == t(3)


# -- tanh: the float32 rational kernel of both compiled backends, and the Cython fast path ----------------

# 9.010914 is the smallest float32 whose tanh rounds to 1 (the kernels stop using their formula there).
TANH_SAT32 = 9.010914


def _tanh_edges(dtype):
    info = np.finfo(dtype)
    v = [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal),
         float(info.tiny), -float(info.tiny), 1e-30, -1e-30, 1e-8, -1e-8, 0.5, -0.625, 1.0, 4.5, -8.5,
         np.nextafter(np.float32(TANH_SAT32), np.float32(0)), TANH_SAT32, -TANH_SAT32, 9.5, 19.0, -20.0, 1e4,
         1e30, float(info.max), -float(info.max)]
    return np.array(v, dtype=dtype)


def _check_tanh_exact_edges(got, z):
    """NaN where z is NaN, the sign of z everywhere (tanh(-0) = -0), x itself for tiny x and +-1 where the
    exact value rounds to +-1."""
    expected = np.tanh(z.astype(np.float64)).astype(z.dtype)  # correctly rounded, as NumPy's float32 need not be
    assert np.array_equal(np.isnan(got), np.isnan(z))
    ok = ~np.isnan(z)
    assert np.array_equal(np.signbit(got[ok]), np.signbit(z[ok]))
    exact = ok & ((np.abs(z) < 1e-20) | (np.abs(expected) == 1))
    np.testing.assert_array_equal(got[exact], expected[exact])


def test_tanh_edges(compiled, dtype, rng):
    z = _tanh_edges(dtype)
    for arr in (z[None, :], z[:, None], z[None, :1]):  # the scalar tail of the loops, and one element
        arr = np.ascontiguousarray(arr)
        got = compiled.tanh(arr)
        _check_tanh_exact_edges(got, arr)
        assert_close(got, np.tanh(arr), RTOL[dtype], what="tanh edges", atol=float(np.finfo(dtype).tiny))
    # Among random values, at every offset of a 16-wide vector and in the tail.
    big = randn(rng, (3, 77), dtype, 4.0)
    flat = big.reshape(-1)
    flat[rng.permutation(flat.size)[: z.size]] = z
    got = compiled.tanh(big)
    _check_tanh_exact_edges(got, big)
    assert_close(got, np.tanh(big), RTOL[dtype], what="tanh edges among others", atol=float(np.finfo(dtype).tiny))


def _ulp32_errors(got, x):
    """|got - tanh(x)| in ulps of the float32 binade of the exact value (tanh in float64 is exact enough)."""
    exact = np.tanh(x.astype(np.float64))
    return np.abs(got.astype(np.float64) - exact) / 2.0 ** (np.floor(np.log2(np.abs(exact))) - 23)


def test_tanh_float32_within_2_ulp(compiled):
    # Exhaustively (all 1.1e9 positive float32 below 9.010914), the error is at most 1.78 ulp with FMA and
    # 1.93 without; here every 211th float32 from 2^-30 to 10 (1.3 million values), and their negatives.
    bits = np.arange(np.float32(2.0**-30).view(np.uint32), np.float32(TANH_SAT32 + 1).view(np.uint32), 211,
                     dtype=np.uint32)
    x = bits.view(np.float32).reshape(1, -1)
    got = compiled.tanh(x)
    err = _ulp32_errors(got, x)
    i = int(np.argmax(err))
    assert err[0, i] <= 2.0, f"tanh({x[0, i]!r}) = {got[0, i]!r}: {err[0, i]:.3f} ulp"
    assert (got <= 1).all()
    np.testing.assert_array_equal(compiled.tanh(-x), -got)  # odd, bit for bit


def test_tanh_cython_any_buffer():
    """The C-API fast path (C-contiguous 2-D ndarrays) and the memoryview path agree bit for bit, and the
    memoryview path still takes other buffers and refuses what it refused."""
    cy = load("cython")
    for dt in (np.float32, np.float64):
        z = (4 * np.random.default_rng(1).standard_normal((5, 37))).astype(dt)
        z[0, :3] = [np.nan, -0.0, np.inf]
        fast = cy.tanh(z)
        assert_same_kind(fast, z, "tanh")
        frozen = z.copy()
        frozen.flags.writeable = False

        class Sub(np.ndarray):
            pass

        for other in (memoryview(z), frozen, z.view(Sub)):
            out = cy.tanh(other)
            assert type(out) is np.ndarray and out.dtype == dt
            np.testing.assert_array_equal(out, fast)
        assert cy.tanh(np.empty((0, 4), dt)).shape == (0, 4)
        with pytest.raises(ValueError):
            cy.tanh(z[:, ::2])
        with pytest.raises((TypeError, ValueError)):
            cy.tanh(z[0])
    with pytest.raises((TypeError, ValueError)):
        cy.tanh(np.ones((2, 2), dtype=np.int64))


# -- finite differences (float64, every backend) --------------------------------------------------------


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(1, 1), (4, 5), (1, 7), (6, 1)])
def test_backward_matches_finite_differences(bk, rng, name, shape):
    fwd, bwd = ELEMENTWISE[name]
    z = away_from_zero(rng, shape, np.float64)  # no kink within a step of any point
    da = randn(rng, shape, np.float64)
    numeric = numeric_grad(lambda: float(np.sum(fwd(bk, z) * da)), z)
    assert_grad(bwd(bk, z, fwd(bk, z), da), numeric, name)


@pytest.mark.parametrize("shape", [(1, 1), (4, 5), (6, 1)])
def test_prelu_gradients_match_finite_differences(bk, rng, shape):
    z = away_from_zero(rng, shape, np.float64)
    alpha = rng.uniform(-0.5, 0.5, shape[1])
    da = randn(rng, shape, np.float64)
    loss = lambda: float(np.sum(bk.prelu(z, alpha) * da))  # noqa: E731
    dz, dalpha = bk.prelu_backward(z, alpha, da)
    assert_grad(dz, numeric_grad(loss, z), "prelu dz")
    assert_grad(dalpha, numeric_grad(loss, alpha), "prelu dalpha")


@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_maxout_backward_matches_finite_differences(bk, rng, pieces):
    n, units = 4, 2
    # Distinct values 0.25 apart: no tie within a finite-difference step.
    z = np.ascontiguousarray((rng.permutation(n * units * pieces) * 0.25 - 2.0).reshape(n, units * pieces))
    da = randn(rng, (n, units), np.float64)
    numeric = numeric_grad(lambda: float(np.sum(bk.maxout(z, pieces)[0] * da)), z)
    _, idx = bk.maxout(z, pieces)
    assert_grad(bk.maxout_backward(da, idx, pieces), numeric, "maxout")


# -- hypothesis: sigmoid and softplus at the numeric edges ------------------------------------------------


def _finite_arrays(dtype, max_value=None):
    fmax = float(np.finfo(dtype).max) if max_value is None else max_value
    width = 32 if dtype == np.float32 else 64
    small = float(dtype.type(1e-30))  # hypothesis wants bounds representable in the width
    elements = st.one_of(
        st.floats(-fmax, fmax, width=width),
        st.sampled_from([-fmax, fmax, -1e4, 1e4, 0.0, -0.0]),
        st.floats(-small, small, width=width),
    )
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, max_side=6), elements=elements)


SETTINGS = settings(max_examples=40, deadline=None)
CASES = [(b, d) for b in BACKENDS for d in (np.float32, np.float64)]


@pytest.mark.parametrize("name,dt", CASES)
@SETTINGS
@given(data=st.data())
def test_sigmoid_properties(name, dt, data):
    k = load(name)
    z = data.draw(_finite_arrays(np.dtype(dt)))
    a = k.sigmoid(z)
    assert a.dtype == dt and not np.isnan(a).any()
    assert ((a >= 0) & (a <= 1)).all()
    assert (a[z >= 0] >= 0.5).all() and (a[z <= 0] <= 0.5).all()
    eps = float(np.finfo(dt).eps)
    # sigmoid(-z) = 1 - sigmoid(z), to rounding.
    np.testing.assert_allclose(k.sigmoid(np.ascontiguousarray(-z)), 1 - a, rtol=0, atol=2 * eps)
    # Monotone: sorting a row sorts its image.
    s = np.ascontiguousarray(np.sort(z, axis=1))
    assert (np.diff(k.sigmoid(s), axis=1) >= 0).all()
    # Saturation is exact, and the reference agrees (relative error, except in the denormal range).
    assert (a[z >= 40] == 1).all()
    assert_close(a, load("numpy").sigmoid(z), RTOL[np.dtype(dt)], atol=float(np.finfo(dt).tiny))
    g = k.sigmoid_backward(z, a, np.ones_like(z))
    assert np.isfinite(g).all() and (g >= 0).all() and (g <= 0.25).all()


@pytest.mark.parametrize("name,dt", CASES)
@SETTINGS
@given(data=st.data())
def test_softplus_properties(name, dt, data):
    k = load(name)
    z = data.draw(_finite_arrays(np.dtype(dt)))
    a = k.softplus(z)
    assert a.dtype == dt and np.isfinite(a).all()  # finite up to the float maximum: no exp(z) overflow
    z64 = z.astype(np.float64)
    assert (a >= np.maximum(z, 0)).all() and (a >= 0).all()
    eps = float(np.finfo(dt).eps)
    assert (a - np.maximum(z64, 0) <= np.log(2) * (1 + 2 * eps) + eps * np.abs(z64)).all()
    # softplus(z) - softplus(-z) = z, to rounding of the larger operand.
    b = k.softplus(np.ascontiguousarray(-z)).astype(np.float64)
    np.testing.assert_array_less(np.abs(a - b - z64), 4 * eps * (np.abs(z64) + 1))
    assert_close(a, load("numpy").softplus(z), RTOL[np.dtype(dt)], atol=float(np.finfo(dt).tiny))
    g = k.softplus_backward(z, a, np.ones_like(z))
    assert np.isfinite(g).all() and ((g >= 0) & (g <= 1)).all()
