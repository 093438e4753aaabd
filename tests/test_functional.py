"""fastnn.functional: shapes and axes, dtype rules, contiguity, and the validation messages (table-driven),
on every backend."""
import numpy as np
import pytest
import scipy.special

import fastnn
import fastnn.functional as F
from fastnn import _checks, backend
from kernel_helpers import BACKENDS, load


@pytest.fixture(params=BACKENDS)
def on_backend(request):
    """Run the test once per backend, inside fastnn.use_backend. Tests without it (the table of error
    messages, which the Python layer produces before any kernel runs) run once on the default backend."""
    load(request.param)
    with fastnn.use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(3)


# -- any shape, any axis ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4), (1, 1, 1, 6)])
def test_softmax_family_any_shape_and_axis(on_backend, rng, shape):
    x = rng.standard_normal(shape)
    for axis in range(-len(shape), len(shape)):
        np.testing.assert_allclose(F.softmax(x, axis), scipy.special.softmax(x, axis=axis), rtol=1e-12)
        np.testing.assert_allclose(F.log_softmax(x, axis), scipy.special.log_softmax(x, axis=axis), rtol=1e-12)
        lse = F.logsumexp(x, axis)
        np.testing.assert_allclose(lse, scipy.special.logsumexp(x, axis=axis), rtol=1e-12)
        assert np.shape(lse) == shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
        kept = F.logsumexp(x, axis, keepdims=True)
        assert kept.shape == tuple(1 if i == axis % len(shape) else s for i, s in enumerate(shape))
        assert F.softmax(x, axis).flags.c_contiguous


def test_logsumexp_of_1d_is_a_scalar_of_the_input_dtype(on_backend):
    v = F.logsumexp(np.array([0.0, 0.0], dtype=np.float32))
    assert np.ndim(v) == 0 and v.dtype == np.float32 and v == pytest.approx(np.log(2))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_softmax_family_backward_along_an_axis(on_backend, rng, axis):
    z = rng.standard_normal((3, 4, 5))
    g = rng.standard_normal((3, 4, 5))
    moved = lambda a: np.ascontiguousarray(np.moveaxis(a, axis, -1))  # noqa: E731
    back = lambda a: np.moveaxis(a, -1, axis)  # noqa: E731
    np.testing.assert_allclose(F.softmax_backward(z, g, axis=axis), back(F.softmax_backward(moved(z), moved(g))),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax_backward(z, g, axis=axis),
                               back(F.log_softmax_backward(moved(z), moved(g))), rtol=1e-12, atol=1e-15)
    gl = rng.standard_normal(F.logsumexp(z, axis).shape)
    want = np.expand_dims(gl, axis) * scipy.special.softmax(z, axis=axis)
    np.testing.assert_allclose(F.logsumexp_backward(z, gl, axis=axis), want, rtol=1e-12)
    # keepdims-shaped grad is accepted too
    np.testing.assert_allclose(F.logsumexp_backward(z, np.expand_dims(gl, axis), axis=axis), want, rtol=1e-12)


def test_backward_with_and_without_forward_output(on_backend, rng):
    z = rng.standard_normal((4, 6))
    g = rng.standard_normal((4, 6))
    np.testing.assert_allclose(F.softmax_backward(z, g), F.softmax_backward(z, g, a=F.softmax(z)), rtol=1e-14)
    np.testing.assert_allclose(F.log_softmax_backward(z, g), F.log_softmax_backward(z, g, a=F.log_softmax(z)),
                               rtol=1e-14)
    for name in ("sigmoid", "tanh", "relu", "softplus", "exp", "identity"):
        fwd, bwd = getattr(F, name), getattr(F, name + "_backward")
        np.testing.assert_allclose(bwd(z, g), bwd(z, g, fwd(z)), rtol=1e-14, err_msg=name)
    np.testing.assert_allclose(F.leaky_relu_backward(z, g, slope=0.2),
                               F.leaky_relu_backward(z, g, F.leaky_relu(z, 0.2), slope=0.2), rtol=1e-14)


def test_neg_inf_and_all_neg_inf_slices(on_backend):
    x = np.array([[-np.inf, 0.0], [-np.inf, -np.inf]])
    np.testing.assert_array_equal(F.softmax(x), [[0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(F.log_softmax(x), [[-np.inf, 0.0], [-np.log(2), -np.log(2)]])
    np.testing.assert_array_equal(F.logsumexp(x), [0.0, -np.inf])
    assert np.isfinite(F.logsumexp_backward(x, np.ones(2))).all()


@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4)])
def test_elementwise_activations_any_shape(on_backend, rng, shape):
    z = rng.standard_normal(shape)
    s = 1 / (1 + np.exp(-z))
    cases = {
        "sigmoid": (F.sigmoid(z), s, F.derivative("sigmoid", z), s * (1 - s)),
        "tanh": (F.tanh(z), np.tanh(z), F.derivative("tanh", z), 1 - np.tanh(z) ** 2),
        "relu": (F.relu(z), np.maximum(z, 0), F.derivative("relu", z), (z > 0).astype(float)),
        "leaky_relu": (F.leaky_relu(z, 0.1), np.where(z > 0, z, 0.1 * z), F.derivative("leaky_relu", z, slope=0.1),
                       np.where(z > 0, 1.0, 0.1)),
        "softplus": (F.softplus(z), np.logaddexp(0, z), F.derivative("softplus", z), s),
        "exp": (F.exp(z), np.exp(z), F.derivative("exp", z), np.exp(z)),
        "identity": (F.identity(z), z, F.derivative("identity", z), np.ones(shape)),
    }
    for name, (got, want, dgot, dwant) in cases.items():
        assert np.shape(got) == shape and np.shape(dgot) == shape, name
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(dgot, dwant, rtol=1e-12, err_msg=name)


def test_leaky_relu_default_slope(on_backend):
    np.testing.assert_allclose(F.leaky_relu([-2.0, 3.0]), [-0.02, 3.0])


def test_prelu_any_shape_scalar_or_vector_alpha(on_backend, rng):
    z = rng.standard_normal((2, 3, 4))
    alpha = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(F.prelu(z, alpha), np.where(z > 0, z, alpha * z), rtol=1e-14)
    np.testing.assert_allclose(F.prelu(z, 0.25), np.where(z > 0, z, 0.25 * z), rtol=1e-14)
    g = rng.standard_normal(z.shape)
    dz, dalpha = F.prelu_backward(z, g, alpha)
    np.testing.assert_allclose(dz, np.where(z > 0, g, alpha * g), rtol=1e-14)
    np.testing.assert_allclose(dalpha, np.sum(np.where(z <= 0, g * z, 0), axis=(0, 1)), rtol=1e-12)
    assert F.prelu_backward(z, g, 0.25)[1].shape == (4,)
    np.testing.assert_allclose(F.derivative("prelu", z, alpha=alpha), np.where(z > 0, 1.0, alpha * np.ones_like(z)))


def test_maxout_any_shape(on_backend, rng):
    z = rng.standard_normal((2, 3, 6))
    a, idx = F.maxout(z, 3, return_indices=True)
    assert a.shape == idx.shape == (2, 3, 2) and idx.dtype == np.int64
    np.testing.assert_array_equal(a, z.reshape(2, 3, 2, 3).max(axis=-1))
    np.testing.assert_array_equal(F.maxout(z, 3), a)
    g = rng.standard_normal((2, 3, 2))
    dz = F.maxout_backward(z, g, 3)
    np.testing.assert_array_equal(dz, F.maxout_backward(z, g, 3, idx))
    want = np.zeros((2, 3, 2, 3))
    np.put_along_axis(want, idx[..., None], g[..., None], axis=-1)
    np.testing.assert_array_equal(dz, want.reshape(2, 3, 6))


def test_activation_and_loss_registries(on_backend, rng):
    z = rng.standard_normal((3, 4))
    for name in F.ELEMENTWISE:
        params = {"alpha": 0.2} if name == "prelu" else {}
        assert np.array_equal(F.activation(name, z, **params), getattr(F, name)(z, **params))
    np.testing.assert_array_equal(F.activation("maxout", z, pieces=2), F.maxout(z, 2))
    g = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(F.activation_backward("tanh", z, g), F.tanh_backward(z, g))
    np.testing.assert_array_equal(F.activation_backward("prelu", z, g, alpha=0.2)[1], F.prelu_backward(z, g, 0.2)[1])
    a = F.sigmoid(z)
    y = (rng.random((3, 4)) > 0.5).astype(float)
    for name in ("quadratic", "mse", "binary_cross_entropy"):
        assert F.loss(name, a, y) == getattr(F, name)(a, y)
        np.testing.assert_array_equal(F.loss_grad(name, a, y), getattr(F, name + "_grad")(a, y))
    labels = [0, 3, 1]
    assert F.loss("softmax_cross_entropy", z, labels) == F.softmax_cross_entropy(z, labels)
    counts = rng.poisson(2.0, (3, 4)).astype(float)
    assert F.loss("poisson", np.exp(z), counts) == F.poisson(np.exp(z), counts)
    np.testing.assert_array_equal(F.loss_grad("poisson", np.exp(z), counts), F.poisson_grad(np.exp(z), counts))


def test_poisson_checks_its_arguments(on_backend):
    with pytest.raises(ValueError, match=r"'y' must contain Poisson targets \(counts or rates\).*-1.0"):
        F.poisson([[1.0, 2.0]], [[-1.0, 2.0]])
    with pytest.raises(ValueError, match=r"'a' must contain Poisson rates.*-0.5"):
        F.poisson_grad([[1.0, -0.5]], [[1.0, 2.0]])
    # a rate of 0: clipped at eps (default: the dtype's machine epsilon), so the loss stays finite
    assert F.poisson([[0.0]], [[2.0]]) == pytest.approx(-2 + 2 * np.log(2 / np.finfo(float).eps))
    np.testing.assert_allclose(F.exp_poisson_delta([3.0, 1.0], [1.0, 1.0]), [1.0, 0.0])


# -- losses: shapes and conventions ------------------------------------------------------------------------


def test_losses_accept_one_output_per_sample(on_backend, rng):
    a = rng.uniform(0.1, 0.9, 6)
    y = (rng.random(6) > 0.5).astype(float)
    for name in ("quadratic", "mse", "binary_cross_entropy", "binary_cross_entropy_with_logits"):
        loss, grad = F.LOSSES[name]
        assert loss(a, y) == pytest.approx(loss(a[:, None], y[:, None]), rel=1e-14)
        g = grad(a, y)
        assert g.shape == (6,)
        np.testing.assert_allclose(g, grad(a[:, None], y[:, None])[:, 0], rtol=1e-14)


def test_loss_values_follow_the_reference_conventions(on_backend):
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([[0.0, 2.0], [3.0, 2.0]])
    assert F.quadratic(a, y) == pytest.approx(5 / 4)  # 1/(2n) sum ||y - a||^2
    assert F.mse(a, y) == pytest.approx(5 / 4)  # mean over all 4 elements
    z = np.array([[0.0, 0.0]])
    assert F.softmax_cross_entropy(z, [1]) == pytest.approx(np.log(2))
    np.testing.assert_allclose(F.softmax_cross_entropy_grad(z, [1]), [[0.5, -0.5]])
    p = np.array([[0.25, 0.75]])
    assert F.nll(p, [1]) == pytest.approx(-np.log(0.75))
    assert F.binary_cross_entropy_with_logits(np.zeros(1), np.ones(1)) == pytest.approx(np.log(2))
    assert isinstance(F.mse(a, y), float)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_default_eps_keeps_probability_losses_finite(on_backend, dt):
    a = np.array([[0.0, 1.0]], dtype=dt)
    y = np.array([[1.0, 0.0]], dtype=dt)
    eps = float(np.finfo(dt).eps)
    assert F.binary_cross_entropy(a, y) == pytest.approx(-2 * np.log(eps), rel=1e-3)  # two wrong outputs, n = 1
    assert np.isfinite(F.binary_cross_entropy_grad(a, y)).all()
    assert F.nll(a, [0]) == pytest.approx(-np.log(eps), rel=1e-6)
    assert np.isfinite(F.nll_grad(a, [0])).all()


def test_label_forms(on_backend, rng):
    z = rng.standard_normal((3, 4))
    want = F.softmax_cross_entropy(z, np.array([0, 3, 1]))
    assert F.softmax_cross_entropy(z, [0, 3, 1]) == want
    assert F.softmax_cross_entropy(z, np.array([0, 3, 1], dtype=np.uint8)) == want
    assert F.softmax_cross_entropy(z, np.array([0.0, 3.0, 1.0])) == want  # whole-number floats


def test_dense_forward_and_backward(on_backend, rng):
    x = rng.standard_normal((5, 3))
    w = rng.standard_normal((3, 2))
    b = rng.standard_normal(2)
    np.testing.assert_allclose(F.dense_forward(x, w, b), x @ w + b, rtol=1e-12)
    np.testing.assert_allclose(F.dense_forward(x, w), x @ w, rtol=1e-12)
    g = rng.standard_normal((5, 2))
    dx, dw, db = F.dense_backward(x, w, g)
    np.testing.assert_allclose(dx, g @ w.T, rtol=1e-12)
    np.testing.assert_allclose(dw, x.T @ g, rtol=1e-12)
    np.testing.assert_allclose(db, g.sum(axis=0), rtol=1e-12)


# -- dtypes and memory layout --------------------------------------------------------------------------------

DTYPE_CASES = [
    (np.float32, np.float32),
    (np.float64, np.float64),
    (np.float16, np.float64),
    (np.int64, np.float64),
    (np.int32, np.float64),
    (np.uint8, np.float64),
    (np.bool_, np.float64),
]
ONE_ARG = {
    "softmax": F.softmax, "log_softmax": F.log_softmax, "logsumexp": F.logsumexp, "sigmoid": F.sigmoid,
    "tanh": F.tanh, "relu": F.relu, "leaky_relu": F.leaky_relu, "softplus": F.softplus, "identity": F.identity,
    "maxout": lambda x: F.maxout(x, 2), "prelu": lambda x: F.prelu(x, 0.1),
    "derivative": lambda x: F.derivative("tanh", x), "sigmoid_backward": lambda x: F.sigmoid_backward(x, x),
    "softmax_backward": lambda x: F.softmax_backward(x, x),
}


@pytest.mark.parametrize("in_dtype,out_dtype", DTYPE_CASES)
def test_output_dtype(on_backend, in_dtype, out_dtype):
    x = np.array([[1, 0, 1, 1], [0, 1, 1, 0]]).astype(in_dtype)
    for name, fn in ONE_ARG.items():
        out = fn(x)
        assert out.dtype == out_dtype, f"{name}({in_dtype.__name__}) gave {out.dtype}"


def test_lists_and_scalars_become_float64(on_backend):
    assert F.softmax([1, 2, 3]).dtype == np.float64
    assert F.sigmoid(2).dtype == np.float64


def test_mixed_dtypes_promote_like_numpy(on_backend, rng):
    x32 = rng.standard_normal((4, 3)).astype(np.float32)
    w32 = rng.standard_normal((3, 2)).astype(np.float32)
    assert F.dense_forward(x32, w32).dtype == np.float32
    assert F.dense_forward(x32, w32.astype(np.float64)).dtype == np.float64
    x_u8 = np.arange(12, dtype=np.uint8).reshape(4, 3)
    assert F.dense_forward(x_u8, w32).dtype == np.float32  # integer inputs do not vote
    z32 = x32
    assert F.softmax_cross_entropy_grad(z32, [0, 1, 2, 0]).dtype == np.float32  # labels are int64 whatever
    y_int = np.eye(3, dtype=np.int64)[[0, 1, 2, 0]]
    assert F.quadratic_grad(z32, y_int).dtype == np.float32
    assert F.sigmoid_backward(z32, np.ones((4, 3))).dtype == np.float64


@pytest.mark.parametrize("layout", ["fortran", "strided", "reversed", "transposed"])
def test_non_contiguous_inputs(on_backend, rng, layout):
    base = rng.standard_normal((6, 8))
    x = {
        "fortran": np.asfortranarray(base),
        "strided": rng.standard_normal((6, 16))[:, ::2],
        "reversed": base[::-1, ::-1],
        "transposed": rng.standard_normal((8, 6)).T,
    }[layout]
    assert not x.flags.c_contiguous
    c = np.ascontiguousarray(x)
    for name, fn in ONE_ARG.items():
        out = fn(x)
        np.testing.assert_array_equal(out, fn(c), err_msg=name)
        assert out.flags.c_contiguous, name
    w = np.asfortranarray(rng.standard_normal((8, 3)))
    np.testing.assert_allclose(F.dense_forward(x, w), c @ w, rtol=1e-12)
    np.testing.assert_allclose(F.softmax_cross_entropy_grad(x, [0, 1, 2, 3, 4, 5]),
                               F.softmax_cross_entropy_grad(c, [0, 1, 2, 3, 4, 5]), rtol=1e-14)


def test_inputs_are_not_modified(on_backend, rng):
    x = rng.standard_normal((3, 4))
    before = x.copy()
    for fn in ONE_ARG.values():
        fn(x)
    F.softmax_cross_entropy_grad(x, [0, 1, 2])
    F.dense_backward(x, np.ones((4, 2)), np.ones((3, 2)))
    np.testing.assert_array_equal(x, before)


def test_same_results_on_every_backend(on_backend, rng):
    x = rng.standard_normal((7, 13))
    with fastnn.use_backend("numpy"):
        want = F.log_softmax(x, axis=0), F.softplus(x), F.softmax_cross_entropy_grad(x, np.arange(7) % 13)
    got = F.log_softmax(x, axis=0), F.softplus(x), F.softmax_cross_entropy_grad(x, np.arange(7) % 13)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


# -- validation: table-driven --------------------------------------------------------------------------------

OK2 = np.ones((3, 4)) / 4
NAN = np.array([[0.0, np.nan]])
ERRORS = [
    # (call, exception type, message fragment)
    (lambda: F.softmax(NAN), ValueError, "Input contains NaN"),
    (lambda: F.softmax(NAN), ValueError, "'x'"),
    (lambda: F.softmax([[1.0, np.inf]]), ValueError, "found +inf at index (0, 1)"),
    (lambda: F.log_softmax([np.inf]), ValueError, "Input contains infinity"),
    (lambda: F.logsumexp([[np.nan, -np.inf]]), ValueError, "Input contains NaN"),
    (lambda: F.sigmoid([1.0, -np.inf]), ValueError, "found -inf at index 1"),
    (lambda: F.relu(np.array([np.nan], dtype=np.float32)), ValueError, "Input contains NaN"),
    (lambda: F.softmax(np.array(1.0)), ValueError, "Expected at least 1D array, got 0D array instead"),
    (lambda: F.softmax(np.zeros((0, 3))), ValueError, "Found array with 0 sample(s) (shape=(0, 3))"),
    (lambda: F.softmax(np.zeros((3, 0))), ValueError, "Found array with 0 feature(s)"),
    (lambda: F.sigmoid([]), ValueError, "while a minimum of 1 is required"),
    (lambda: F.softmax(np.ones((2, 3)), axis=2), ValueError, "axis 2 is out of bounds for array of dimension 2"),
    (lambda: F.softmax(np.ones((2, 3)), axis=1.0), TypeError, "axis must be an instance of int"),
    (lambda: F.softmax(np.array(["a", "b"])), TypeError, "got dtype <U1"),
    (lambda: F.sigmoid(np.array([1, None], dtype=object)), TypeError, "must be a numeric array"),
    (lambda: F.tanh(np.array([1 + 2j])), TypeError, "complex"),
    (lambda: F.relu([[1, 2], [3]]), ValueError, "could not be converted to a numeric array"),
    (lambda: F.sigmoid_backward(np.ones((2, 3)), np.ones((2, 4))), ValueError,
     "inconsistent shapes: z (2, 3) and grad (2, 4)"),
    (lambda: F.logsumexp_backward(np.ones((2, 3)), np.ones(3)), ValueError, "expected grad of shape (2,)"),
    (lambda: F.leaky_relu([1.0], slope="a"), TypeError, "slope must be an instance of float, not str"),
    (lambda: F.leaky_relu([1.0], slope=float("nan")), ValueError, "slope == nan, must be finite"),
    (lambda: F.prelu(np.ones((2, 3)), np.ones(2)), ValueError, "alpha must have shape (3,)"),
    (lambda: F.maxout(np.ones((2, 7)), 2), ValueError, "multiple of pieces=2"),
    (lambda: F.maxout(np.ones((2, 6)), 0), ValueError, "pieces == 0, must be >= 1"),
    (lambda: F.maxout(np.ones((2, 6)), 2.0), TypeError, "pieces must be an instance of int"),
    (lambda: F.maxout_backward(np.ones((2, 6)), np.ones((2, 3)), 2, idx=np.full((2, 3), 2)), ValueError,
     "piece indices in [0, 2)"),
    (lambda: F.derivative("swish", [1.0]), ValueError,
     "Unknown activation 'swish'. Valid activation values are: 'sigmoid', 'tanh', 'relu'"),
    (lambda: F.activation("gelu", [1.0]), ValueError, "'maxout'"),
    (lambda: F.loss("hinge", OK2, OK2), ValueError, "Valid loss values are: 'quadratic', 'mse'"),
    (lambda: F.nll(OK2, [0, 1, 4]), ValueError, "out of range for 4 classes: found 4 at index 2; expected class "
                                                "indices in [0, 4)"),
    (lambda: F.nll(OK2, [0, -1, 2]), ValueError, "contains negative values: found -1 at index 1"),
    (lambda: F.softmax_cross_entropy(OK2, [0, 1, 2, 3]), ValueError,
     "Found input variables with inconsistent numbers of samples: [3, 4]"),
    (lambda: F.softmax_cross_entropy(OK2, [0, 1.5, 2]), ValueError, "found non-integer value 1.5 at index 1"),
    (lambda: F.softmax_cross_entropy(OK2, ["a", "b", "c"]), TypeError, "integer class indices"),
    (lambda: F.softmax_cross_entropy(OK2, [[0], [1], [2]]), ValueError, "Expected 1D array of labels, got 2D"),
    (lambda: F.softmax_cross_entropy(np.ones(4), [0]), ValueError, "Expected 2D array, got 1D array instead"),
    (lambda: F.softmax_cross_entropy(np.ones((3, 4)), []), ValueError, "Found array with 0 sample(s)"),
    (lambda: F.nll(OK2 * 5, [0, 1, 2]), ValueError, "'a' must contain probabilities in [0, 1]; found 1.25"),
    (lambda: F.binary_cross_entropy(OK2, OK2 * 5), ValueError, "'y' must contain targets in [0, 1]"),
    (lambda: F.binary_cross_entropy(OK2, OK2, eps=1.0), ValueError, "eps == 1.0, must be <= 0.5"),
    (lambda: F.mse(np.ones((3, 4)), np.ones((4, 4))), ValueError,
     "Found input variables with inconsistent numbers of samples: [3, 4] (a: 3, y: 4)"),
    (lambda: F.mse(np.ones((3, 4)), np.ones((3, 5))), ValueError, "inconsistent shapes: a (3, 4) and y (3, 5)"),
    (lambda: F.quadratic(np.ones((2, 2, 2)), np.ones((2, 2, 2))), ValueError, "Expected 1D or 2D array, got 3D"),
    (lambda: F.dense_forward(np.ones(3), np.ones((3, 2))), ValueError, "Expected 2D array, got 1D array instead"),
    (lambda: F.dense_forward(np.ones((4, 5)), np.ones((3, 2))), ValueError, "x has 5 features, but w expects 3"),
    (lambda: F.dense_forward(np.ones((4, 3)), np.ones((3, 2)), np.ones(3)), ValueError, "b must have shape (2,)"),
    (lambda: F.dense_backward(np.ones((4, 3)), np.ones((3, 2)), np.ones((5, 2))), ValueError,
     "inconsistent numbers of samples: [4, 5]"),
    (lambda: F.dense_backward(np.ones((4, 3)), np.ones((3, 2)), np.ones((4, 3))), ValueError,
     "grad has 3 columns, but w has 2 outputs"),
    (lambda: F.dense_forward(np.ones((4, 3)), np.full((3, 2), np.nan)), ValueError,
     "Argument 'w' must not contain NaN"),
]


@pytest.mark.parametrize("call,exc,fragment", ERRORS, ids=[f"{i}-{e[2][:30]}" for i, e in enumerate(ERRORS)])
def test_errors(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_errors_are_raised_before_any_kernel_runs(monkeypatch, on_backend):
    ns = backend.kernels(on_backend)

    def forbidden(*args, **kwargs):
        raise AssertionError("a kernel ran on invalid input")

    for names in backend.KERNELS.values():
        for name in names:
            monkeypatch.setattr(ns, name, forbidden)
    for call, exc, fragment in ERRORS:
        with pytest.raises(exc, match=None) as info:
            call()
        assert fragment in str(info.value)


def test_neg_inf_is_allowed_only_where_documented(on_backend):
    assert F.softmax([-np.inf, 0.0])[0] == 0
    assert F.softmax_cross_entropy([[-np.inf, 0.0]], [1]) == 0.0
    with pytest.raises(ValueError, match="found -inf"):
        F.softplus([-np.inf])


# -- the helpers themselves (the network layer imports them) -------------------------------------------------


def test_check_helpers_directly():
    out = _checks.check_array(np.asfortranarray(np.ones((2, 3), dtype=np.float32)), "x", 2)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert _checks.check_array([[-np.inf]], "x", 2, allow_neg_inf=True)[0, 0] == -np.inf
    assert _checks.check_array(np.ones(3), "x", dtype=np.float32).dtype == np.float32
    with pytest.raises(ValueError, match=r"Input contains infinity .*'big'"):
        _checks.check_array([1e300], "big", dtype=np.float32)  # overflows float32
    labels = _checks.check_labels([2, 0, 1], 3, "y")
    assert labels.dtype == np.int64 and labels.flags.c_contiguous
    _checks.check_consistent_length(np.ones(3), None, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[3, 4\]"):
        _checks.check_consistent_length(np.ones(3), np.ones(4))
    assert _checks.check_choice("optimizer", "adam", ("sgd", "adam")) == "adam"
    with pytest.raises(ValueError, match="Unknown optimizer 'adm'. Valid optimizer values are: 'sgd', 'adam'."):
        _checks.check_choice("optimizer", "adm", ("sgd", "adam"))
    with pytest.raises(ValueError, match="Unknown optimizer"):
        _checks.check_choice("optimizer", ["unhashable"], {"sgd", "adam"})
    assert _checks.check_scalar(3, "epochs", int, min_val=1) == 3
    with pytest.raises(TypeError, match="epochs must be an instance of int, not bool"):
        _checks.check_scalar(True, "epochs", int)
    with pytest.raises(ValueError, match=r"p == 1.0, must be < 1"):
        _checks.check_scalar(1.0, "p", min_val=0, max_val=1, include_boundaries="left")
    assert _checks.result_dtype(np.ones(1, np.float32), [1.0], 3) == np.float32
    assert _checks.result_dtype(np.ones(1, np.int64)) == np.float64
