"""NaN and infinity propagation: the compiled kernels give NaN exactly where the NumPy reference does.

A diverged network must not look finite: a kernel that maps NaN to a number (exp(NaN) = 0 gave
sigmoid(NaN) = 0 and tanh(NaN) = -1 in an earlier Numba backend) hides the divergence from every later
check. The functional API rejects NaN inputs, so these tests call the kernels directly. Each compares
a compiled backend with the reference through ``assert_close``, which requires equal NaN masks and equal
infinities, and the usual tolerances elsewhere. Inputs mix NaN and +-inf with ordinary values, at
positions inside and after the SIMD-width blocks of a loop. Where the reference itself computes
inf - inf or inf * 0 (and so returns NaN with a RuntimeWarning), the warning is silenced for the
reference only: its NaN is the value the compiled backends must match.
"""
import numpy as np
import pytest

from kernel_helpers import RTOL, assert_close

from fastnn import backend

ROWS, COLS = 7, 37  # 259 elements: full vector blocks plus a tail, in both dtypes


def _edges(dtype):
    """Every special value, and values where exp and tanh change branch or over/underflow."""
    info = np.finfo(dtype)
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 0.625, -0.625, 1.0, -1.0,
                     20.0, -20.0, 88.0, -88.0, 100.0, -100.0, 800.0, -800.0, 1e4, -1e4, float(info.max),
                     -float(info.max), float(info.tiny), -float(info.tiny), np.nan], dtype=dtype)


def _sprinkle(rng, x, frac, values=(np.nan,)):
    """A copy of x with about ``frac`` of its elements replaced by a random choice of ``values``."""
    x = x.copy()
    hit = rng.random(x.shape) < frac
    x[hit] = rng.choice(np.array(values, dtype=x.dtype), size=int(hit.sum()))
    return x


def _logits(rng, dtype, specials=(np.nan, np.inf, -np.inf)):
    """(ROWS + 1, COLS) array: random values with specials sprinkled in, and a last row of edge values."""
    z = (4.0 * rng.standard_normal((ROWS, COLS))).astype(dtype)
    z = _sprinkle(rng, z, 0.15, specials)
    edge = np.resize(_edges(dtype), COLS)
    if np.inf not in specials:
        edge = np.where(np.isinf(edge), np.nan, edge)
    return np.ascontiguousarray(np.vstack([z, edge[None, :]]))


def _ref(fn, *args):
    """Call a reference kernel, letting it produce NaN from inf - inf etc. without a RuntimeWarning."""
    with np.errstate(invalid="ignore", over="ignore"):
        return fn(*args)


def _check(actual, expected, dtype, what, scale=0.0):
    tiny = float(np.finfo(dtype).tiny)  # subnormal results carry no relative accuracy
    if isinstance(expected, float):
        assert isinstance(actual, float), f"{what}: {type(actual)} is not a Python float"
        actual, expected = np.array([actual]), np.array([expected])
    assert_close(actual, expected, RTOL[np.dtype(dtype)], scale, what, atol=tiny)


def _numba_helpers():
    """Loops over the scalar helpers of the Numba backend, compiled here (no cache)."""
    import numba

    backend.kernels("numba")  # prepares NUMBA_CACHE_DIR before _math (cache=True) is imported
    from fastnn._kernels.numba import _math

    def make(helper):
        @numba.njit(error_model="numpy")
        def loop(x):
            out = np.empty_like(x)
            for i in range(x.size):
                out[i] = helper(x[i])
            return out
        return loop

    return {"exp": (make(_math.exp), np.exp), "tanh": (make(_math.tanh), np.tanh),
            "log": (make(_math.log), np.log), "log1p": (make(_math.log1p), np.log1p)}, _math


@pytest.mark.parametrize("name", ["exp", "tanh", "log", "log1p"])
def test_numba_scalar_helpers_match_numpy_at_special_values(dtype, rng, name):
    helpers, _ = _numba_helpers()
    mine, theirs = helpers[name]
    # Special values alone (scalar tail of the loop) and among random values (vectorized body).
    edges = np.concatenate([_edges(dtype), np.array([-1.0, -2.0, 2.0, -0.999, 1e-30], dtype=dtype)])
    mixed = _sprinkle(rng, (3.0 * rng.standard_normal(301)).astype(dtype), 0.2, tuple(edges[:3]))
    for x in (edges, mixed, edges[:1]):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            expected = theirs(x)
        _check(mine(x), expected, dtype, f"{name}")


def test_numba_shift_max_keeps_the_nan_of_a_row_of_minus_inf(dtype):
    """The one case where the softmax family cannot rely on exp(NaN - m) to spread the NaN."""
    _, _math = _numba_helpers()
    for k in (1, 2, 15, 16, 17, 40):
        for pos in range(k):
            row = np.full(k, -np.inf, dtype=dtype)
            row[pos] = np.nan
            assert np.isnan(_math.shift_max(row)), (k, pos)
        row = np.full(k, -np.inf, dtype=dtype)
        assert _math.shift_max(row) == -np.inf
        row = np.arange(k, dtype=dtype)
        assert _math.shift_max(row) == k - 1


# Element-wise activations: name -> (forward(k, z), backward(k, z, a, da)).
ELEMENTWISE = {
    "sigmoid": (lambda k, z: k.sigmoid(z), lambda k, z, a, da: k.sigmoid_backward(z, a, da)),
    "tanh": (lambda k, z: k.tanh(z), lambda k, z, a, da: k.tanh_backward(z, a, da)),
    "relu": (lambda k, z: k.relu(z), lambda k, z, a, da: k.relu_backward(z, a, da)),
    "leaky_relu": (lambda k, z: k.leaky_relu(z, 0.1), lambda k, z, a, da: k.leaky_relu_backward(z, a, da, 0.1)),
    "softplus": (lambda k, z: k.softplus(z), lambda k, z, a, da: k.softplus_backward(z, a, da)),
    "identity": (lambda k, z: k.identity(z), lambda k, z, a, da: k.identity_backward(z, a, da)),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_forward_nan_and_inf(compiled, ref, dtype, rng, name):
    fwd, _ = ELEMENTWISE[name]
    z = _logits(rng, dtype)
    _check(fwd(compiled, z), _ref(fwd, ref, z), dtype, name)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_forward_single_values(compiled, ref, dtype, name):
    # One element per call: the scalar (non-vectorized) path of each loop.
    fwd, _ = ELEMENTWISE[name]
    for v in _edges(dtype):
        z = np.array([[v]], dtype=dtype)
        _check(fwd(compiled, z), _ref(fwd, ref, z), dtype, f"{name}({v})")


def test_known_values(compiled, dtype):
    """The values of the original bug report, and the limits at +-inf, spelled out."""
    z = np.array([[np.nan, np.inf, -np.inf]], dtype=dtype)
    np.testing.assert_array_equal(compiled.sigmoid(z), [[np.nan, 1.0, 0.0]])
    np.testing.assert_array_equal(compiled.tanh(z), [[np.nan, 1.0, -1.0]])
    np.testing.assert_array_equal(compiled.softplus(z), [[np.nan, np.inf, 0.0]])


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("where", ["z", "a", "da", "all"])
def test_activation_backward_nan(compiled, ref, dtype, rng, name, where):
    """NaN in each argument of the backward pass in turn (a is the reference forward output of z)."""
    fwd, bwd = ELEMENTWISE[name]
    z = _logits(rng, dtype, (np.inf, -np.inf) if where in ("a", "da") else (np.nan, np.inf, -np.inf))
    a = _ref(fwd, ref, z)
    da = rng.standard_normal(z.shape).astype(dtype)
    if where in ("a", "all"):
        a = _sprinkle(rng, a, 0.15)
    if where in ("da", "all"):
        da = _sprinkle(rng, da, 0.15)
    # 1 - a^2 and a (1 - a) cancel: absolute error scales with |da| (as in test_activations.py).
    _check(bwd(compiled, z, a, da), _ref(bwd, ref, z, a, da), dtype, f"{name}_backward", np.abs(da))


@pytest.mark.parametrize("z_has_nan", [False, True])
def test_prelu_nan_and_inf(compiled, ref, dtype, rng, z_has_nan):
    """NaN in alpha and da (and +-inf in z); then NaN in z too, which the reference treats as z > 0."""
    z = _logits(rng, dtype, (np.nan, np.inf, -np.inf) if z_has_nan else (np.inf, -np.inf))
    if not z_has_nan:
        z[np.isnan(z)] = -np.inf
    alpha = _sprinkle(rng, rng.random(COLS).astype(dtype), 0.1)
    da = _sprinkle(rng, rng.standard_normal(z.shape).astype(dtype), 0.1)
    _check(compiled.prelu(z, alpha), _ref(ref.prelu, z, alpha), dtype, "prelu")
    dz, dalpha = compiled.prelu_backward(z, alpha, da)
    rdz, rdalpha = _ref(ref.prelu_backward, z, alpha, da)
    _check(dz, rdz, dtype, "prelu dz")
    # dalpha is a column sum (NumPy's order in both compiled backends): same NaN/inf pattern, close values.
    with np.errstate(over="ignore", invalid="ignore"):
        terms = np.abs(z.astype(np.float64) * da)
        scale = np.minimum(np.sum(np.where(np.isfinite(terms), terms, 0), axis=0), 1e300)  # |e| + scale finite
    _check(dalpha, rdalpha, dtype, "prelu dalpha", scale)


@pytest.mark.parametrize("pieces", [1, 2, 3, 5])
def test_maxout_nan(compiled, ref, dtype, rng, pieces):
    # Reference: np.argmax picks the first NaN of a group, so the group's output is NaN.
    z = _logits(rng, dtype)[:, : (COLS // pieces) * pieces].copy()
    a, idx = compiled.maxout(z, pieces)
    ra, ridx = ref.maxout(z, pieces)
    _check(a, ra, dtype, "maxout")
    np.testing.assert_array_equal(idx, ridx)
    da = _sprinkle(rng, rng.standard_normal(ra.shape).astype(dtype), 0.2)
    np.testing.assert_array_equal(compiled.maxout_backward(da, ridx, pieces), ref.maxout_backward(da, ridx, pieces))


# Softmax family. Rows of several lengths (below, at and past a vector width, and past the 128-element
# leaf of the pairwise sum), with NaN at the first, second, eighth, middle and last position, among
# finite values ("finite", with some -inf mixed in), or among -inf only ("neginf": the row must be NaN,
# not the uniform distribution of an all -inf row); all-NaN and NaN-free rows as controls. "posinf"
# rows are outside the documented input domain; the reference gives NaN for them (inf - inf), and so
# must the compiled kernels.
LENGTHS = [1, 2, 5, 8, 16, 17, 37, 300]
KINDS = ["finite", "neginf", "posinf"]


def _softmax_rows(rng, dtype, k, kind):
    rows = []
    for pos in sorted({0, min(1, k - 1), min(7, k - 1), k // 2, k - 1}):
        if kind == "finite":
            r = (3.0 * rng.standard_normal(k)).astype(dtype)
            r[pos] = np.nan
            rows.append(r)
            r = np.where(rng.random(k) < 0.5, -np.inf, 3.0 * rng.standard_normal(k)).astype(dtype)
            r[min(pos + 1, k - 1) if pos == 0 else 0] = 1.0  # at least one finite value besides the NaN
            r[pos] = np.nan
            rows.append(r)
        elif kind == "neginf":
            r = np.full(k, -np.inf, dtype=dtype)
            r[pos] = np.nan
            rows.append(r)
        else:
            r = (3.0 * rng.standard_normal(k)).astype(dtype)
            r[pos] = np.inf
            rows.append(r)
    rows.append(np.full(k, np.nan, dtype=dtype))
    rows.append(np.full(k, -np.inf, dtype=dtype))
    rows.append((3.0 * rng.standard_normal(k)).astype(dtype))
    return np.ascontiguousarray(np.vstack(rows))


SOFTMAX_FAMILY = {
    "softmax": lambda k, z, d: k.softmax(z),
    "log_softmax": lambda k, z, d: k.log_softmax(z),
    "logsumexp": lambda k, z, d: k.logsumexp(z),
    "logsumexp_backward": lambda k, z, d: k.logsumexp_backward(z, d),
    "softmax_nll_loss": lambda k, z, d: k.softmax_nll_loss(z, np.zeros(z.shape[0], dtype=np.int64)),
    "softmax_nll_grad": lambda k, z, d: k.softmax_nll_grad(z, np.zeros(z.shape[0], dtype=np.int64)),
}


@pytest.mark.parametrize("k", LENGTHS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
def test_softmax_family_nan(compiled, ref, dtype, rng, k, kind, name):
    z = _softmax_rows(rng, dtype, k, kind)
    fn = SOFTMAX_FAMILY[name]
    d = rng.standard_normal(z.shape[0]).astype(dtype)
    _check(fn(compiled, z, d), _ref(fn, ref, z, d), dtype, f"{name} k={k}")


@pytest.mark.parametrize("k", LENGTHS)
@pytest.mark.parametrize("where", ["a", "da"])
def test_softmax_family_backward_nan(compiled, ref, dtype, rng, k, where):
    z = (3.0 * rng.standard_normal((9, k))).astype(dtype)
    p, logp = ref.softmax(z), ref.log_softmax(z)
    da = rng.standard_normal(z.shape).astype(dtype)
    dl = rng.standard_normal(z.shape[0]).astype(dtype)
    if where == "a":
        p, logp = _sprinkle(rng, p, 0.1), _sprinkle(rng, logp, 0.1)
    else:
        da, dl = _sprinkle(rng, da, 0.1), _sprinkle(rng, dl, 0.3)
    scale = np.sum(np.abs(da), axis=1, keepdims=True)  # the row sums cancel
    _check(compiled.softmax_backward(z, p, da), ref.softmax_backward(z, p, da), dtype, "softmax_backward", scale)
    _check(compiled.log_softmax_backward(z, logp, da), ref.log_softmax_backward(z, logp, da), dtype,
           "log_softmax_backward", scale)
    _check(compiled.logsumexp_backward(z, dl), ref.logsumexp_backward(z, dl), dtype, "logsumexp_backward")


# Losses: NaN in the outputs/logits, and separately in the targets. Inputs live where each loss is
# defined (probabilities in (0, 1), targets in [0, 1]) except for the NaN (and +-inf logits).
EPS = 1e-7


def _loss_inputs(rng, dtype, nan_in):
    n, k = 9, 13
    z = (3.0 * rng.standard_normal((n, k))).astype(dtype)
    a = rng.uniform(0.0, 1.0, (n, k)).astype(dtype)
    p = backend.kernels("numpy").softmax(z)
    y = rng.uniform(0.0, 1.0, (n, k)).astype(dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    if nan_in == "outputs":
        z = _sprinkle(rng, z, 0.1, (np.nan, np.inf, -np.inf))
        z[0, labels[0]] = np.nan  # a NaN on a labelled entry and one off it, for nll
        z[1, (labels[1] + 1) % k] = np.nan
        a, p = _sprinkle(rng, a, 0.1), _sprinkle(rng, p, 0.1)
        a[0, labels[0]] = p[0, labels[0]] = np.nan
        a[1, (labels[1] + 1) % k] = p[1, (labels[1] + 1) % k] = np.nan
    else:
        y = _sprinkle(rng, y, 0.1)
    return dict(z=np.ascontiguousarray(z), a=np.ascontiguousarray(a), p=np.ascontiguousarray(p),
                y=np.ascontiguousarray(y), labels=labels)


LOSSES = {
    "quadratic_loss": lambda k, d: k.quadratic_loss(d["a"], d["y"]),
    "quadratic_grad": lambda k, d: k.quadratic_grad(d["a"], d["y"]),
    "mse_loss": lambda k, d: k.mse_loss(d["a"], d["y"]),
    "mse_grad": lambda k, d: k.mse_grad(d["a"], d["y"]),
    "bce_loss": lambda k, d: k.bce_loss(d["a"], d["y"], EPS),
    "bce_grad": lambda k, d: k.bce_grad(d["a"], d["y"], EPS),
    "bce_logits_loss": lambda k, d: k.bce_logits_loss(d["z"], d["y"]),
    "bce_logits_grad": lambda k, d: k.bce_logits_grad(d["z"], d["y"]),
    "nll_loss": lambda k, d: k.nll_loss(d["p"], d["labels"], EPS),
    "nll_grad": lambda k, d: k.nll_grad(d["p"], d["labels"], EPS),
    "softmax_nll_loss": lambda k, d: k.softmax_nll_loss(d["z"], d["labels"]),
    "softmax_nll_grad": lambda k, d: k.softmax_nll_grad(d["z"], d["labels"]),
    "sigmoid_bce_delta": lambda k, d: k.sigmoid_bce_delta(d["a"], d["y"]),
    "softmax_nll_delta": lambda k, d: k.softmax_nll_delta(d["p"], d["labels"]),
}


NO_TARGETS = ("nll_loss", "nll_grad", "softmax_nll_loss", "softmax_nll_grad", "softmax_nll_delta")


@pytest.mark.parametrize(("name", "nan_in"), [(name, "outputs") for name in LOSSES]
                         + [(name, "targets") for name in LOSSES if name not in NO_TARGETS])
def test_loss_nan(compiled, ref, dtype, rng, name, nan_in):
    d = _loss_inputs(rng, dtype, nan_in)
    expected = _ref(LOSSES[name], ref, d)
    # Guard against a vacuous test: these inputs do make the reference NaN somewhere.
    assert np.isnan(expected).any(), f"{name}: the reference has no NaN for these inputs"
    _check(LOSSES[name](compiled, d), expected, dtype, name)


def test_loss_values_with_single_nan(compiled, dtype):
    """nll_loss is NaN exactly when the labelled probability is NaN (as np.maximum(NaN, eps) is NaN);
    softmax_nll_loss whenever any logit of the row is NaN (log-softmax shifts by the row max)."""
    p = np.array([[0.2, 0.3, 0.5]], dtype=dtype)
    for j in range(3):
        q = p.copy()
        q[0, j] = np.nan
        for label in range(3):
            labels = np.array([label], dtype=np.int64)
            assert np.isnan(compiled.nll_loss(q, labels, EPS)) == (j == label), (j, label)
            assert np.isnan(compiled.nll_grad(q, labels, EPS)).any() == (j == label), (j, label)
            assert np.isnan(compiled.softmax_nll_loss(q, labels)), (j, label)
            assert np.isnan(compiled.softmax_nll_grad(q, labels)).all(), (j, label)
