"""The user-facing kernels, checked and dispatched to the current backend (``fastnn.backend.kernels()``).

Every function validates its arguments first (see :mod:`fastnn._checks`: NaN, infinities, dtypes,
shapes, label ranges), so a bad input raises a ``ValueError``/``TypeError`` naming the argument before
any kernel runs, on every backend alike. Then it reshapes to the 2-D row layout the kernels use, calls
the kernel of the backend in use (:func:`fastnn.set_backend`, :func:`fastnn.use_backend`) and gives the
result back in the caller's shape.

Dtypes: float32 and float64 inputs give outputs of the same dtype, computed in that dtype. Any other
numeric input -- bool, integers, float16, Python lists and scalars -- is converted to float64. When a
call takes several float arrays (targets, weights, gradients), they are converted to one common dtype:
float64 if any NumPy float64 array is among them, else float32 if any float32 array is, else float64
(lists, scalars and integer arrays do not take part, so ``softmax_cross_entropy(z32, [0, 2])`` stays
float32). Loss values are Python floats accumulated in float64. Outputs are new C-contiguous arrays;
Fortran-ordered or strided inputs are accepted (copied to C order first).

Shapes:

- softmax, log_softmax, logsumexp and their backward passes take any array of at least one dimension
  and work along ``axis`` (default -1): the axis is moved last and the rest flattened into rows.
  ``-inf`` entries are allowed (probability 0); NaN and ``+inf`` are refused. An all ``-inf`` slice
  gives the uniform distribution 1/k, log-softmax -log(k) and logsumexp -inf (the limit of equal
  values), never NaN.
- Element-wise activations take any shape (0-d included). ``prelu`` and ``maxout`` work on the last axis.
- Losses on (outputs, targets) take 1-D (n,) -- one output per sample -- or 2-D (n, k) arrays of the same
  shape; the label losses take (n, k) outputs and (n,) integer labels.
- dense_forward / dense_backward take x (n, n_in), w (n_in, n_out), b (n_out,).
"""
import numbers

import numpy as np

from . import backend
from ._checks import (
    check_array,
    check_axis,
    check_choice,
    check_consistent_length,
    check_in_range,
    check_labels,
    check_same_shape,
    check_scalar,
    result_dtype,
)

__all__ = [
    "softmax", "log_softmax", "logsumexp", "softmax_backward", "log_softmax_backward", "logsumexp_backward",
    "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "softplus", "exp", "identity", "maxout",
    "sigmoid_backward", "tanh_backward", "relu_backward", "leaky_relu_backward", "prelu_backward",
    "softplus_backward", "exp_backward", "identity_backward", "maxout_backward", "derivative", "activation",
    "activation_backward", "ACTIVATIONS", "ELEMENTWISE",
    "quadratic", "quadratic_grad", "mse", "mse_grad", "binary_cross_entropy", "binary_cross_entropy_grad",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_grad", "nll", "nll_grad",
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sigmoid_bce_delta", "softmax_nll_delta",
    "poisson", "poisson_grad", "exp_poisson_delta", "loss", "loss_grad", "LOSSES",
    "dense_forward", "dense_backward",
]


def _k():
    return backend.kernels()


# --------------------------------------------------------------------------------------------------
# Softmax family: any shape, any axis.


def _rows(z, axis):
    """Move ``axis`` last and flatten the others: (2-D C-contiguous rows, moved shape, normalized axis)."""
    axis = check_axis(axis, z.ndim)
    moved = np.moveaxis(z, axis, -1)
    return np.ascontiguousarray(moved.reshape(-1, moved.shape[-1])), moved.shape, axis


def _unrows(out, moved_shape, axis):
    return np.ascontiguousarray(np.moveaxis(out.reshape(moved_shape), -1, axis))


def _logits(x, name, dtype=None):
    return check_array(x, name, min_ndim=1, allow_neg_inf=True, dtype=dtype)


def softmax(x, axis=-1):
    """Softmax along ``axis``: exp(x) / sum(exp(x)), shifted by the maximum (exact for any finite x).

    Parameters
    ----------
    x : array_like, shape (..., k, ...), at least 1-D
        Logits; ``-inf`` allowed (probability 0), NaN and ``+inf`` refused.
    axis : int
        The axis that sums to 1.

    Returns
    -------
    ndarray, same shape and float dtype as ``x``
        Probabilities in [0, 1]; an all ``-inf`` slice gives 1/k.
    """
    z = _logits(x, "x")
    z2, shape, axis = _rows(z, axis)
    return _unrows(_k().softmax(z2), shape, axis)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, as (x - max) - log(sum(exp(x - max))): exact for large logits.

    Same shapes, dtypes and ``-inf`` rules as :func:`softmax`; values are <= 0 (``-inf`` where x is
    ``-inf``, -log(k) on an all ``-inf`` slice).
    """
    z = _logits(x, "x")
    z2, shape, axis = _rows(z, axis)
    return _unrows(_k().log_softmax(z2), shape, axis)


def logsumexp(x, axis=-1, keepdims=False):
    """log(sum(exp(x))) along ``axis``.

    Parameters
    ----------
    x : array_like, at least 1-D
        ``-inf`` allowed; NaN and ``+inf`` refused.
    axis : int
    keepdims : bool
        Keep the reduced axis with size 1.

    Returns
    -------
    ndarray of x's float dtype, shape ``x.shape`` without ``axis`` (a NumPy scalar for 1-D input unless
    ``keepdims``). ``-inf`` for an all ``-inf`` slice; always >= the slice maximum.
    """
    z = _logits(x, "x")
    z2, shape, axis = _rows(z, axis)
    out = _k().logsumexp(z2).reshape(shape[:-1])
    if keepdims:
        return np.ascontiguousarray(np.expand_dims(out, axis))
    return out[()] if out.ndim == 0 else out


def softmax_backward(z, grad, a=None, axis=-1):
    """Vector-Jacobian product of :func:`softmax`: a * (grad - sum(a * grad)) along ``axis``.

    z, grad (and a = softmax(z), computed when not given) share one shape; returns dL/dz of that shape.
    """
    dt = result_dtype(z, grad, a)
    z = _logits(z, "z", dt)
    grad = check_array(grad, "grad", dtype=dt)
    check_same_shape(z, grad, "z", "grad")
    z2, shape, axis = _rows(z, axis)
    g2 = _rows(grad, axis)[0]
    k = _k()
    if a is None:
        a2 = k.softmax(z2)
    else:
        a = check_array(a, "a", dtype=dt)
        check_same_shape(z, a, "z", "a")
        check_in_range(a, "a", 0.0, 1.0, "probabilities")
        a2 = _rows(a, axis)[0]
    return _unrows(k.softmax_backward(z2, a2, g2), shape, axis)


def log_softmax_backward(z, grad, a=None, axis=-1):
    """Vector-Jacobian product of :func:`log_softmax`: grad - exp(a) * sum(grad) along ``axis``.

    ``a`` = log_softmax(z) (computed when not given; may hold ``-inf``). Returns dL/dz, z's shape.
    """
    dt = result_dtype(z, grad, a)
    z = _logits(z, "z", dt)
    grad = check_array(grad, "grad", dtype=dt)
    check_same_shape(z, grad, "z", "grad")
    z2, shape, axis = _rows(z, axis)
    g2 = _rows(grad, axis)[0]
    k = _k()
    if a is None:
        a2 = k.log_softmax(z2)
    else:
        a = check_array(a, "a", allow_neg_inf=True, dtype=dt)
        check_same_shape(z, a, "z", "a")
        a2 = _rows(a, axis)[0]
    return _unrows(k.log_softmax_backward(z2, a2, g2), shape, axis)


def logsumexp_backward(z, grad, axis=-1):
    """Gradient of :func:`logsumexp`: grad * softmax(z) along ``axis``.

    ``grad`` has the shape of logsumexp's output (z's shape without ``axis``, or with it kept as size 1).
    Finite wherever z is (also at ``-inf`` entries, which get 0: PyTorch issue 31829).
    """
    dt = result_dtype(z, grad)
    z = _logits(z, "z", dt)
    grad = check_array(grad, "grad", dtype=dt)
    axis = check_axis(axis, z.ndim)
    reduced = z.shape[:axis] + z.shape[axis + 1:]
    kept = z.shape[:axis] + (1,) + z.shape[axis + 1:]
    if grad.shape not in (reduced, kept):
        raise ValueError(
            f"Found input variables with inconsistent shapes: grad {grad.shape} and logsumexp(z) {reduced}; "
            f"expected grad of shape {reduced} (or {kept} with keepdims)."
        )
    z2, shape, axis = _rows(z, axis)
    g1 = np.ascontiguousarray(grad.reshape(-1))
    return _unrows(_k().logsumexp_backward(z2, g1), shape, axis)


# --------------------------------------------------------------------------------------------------
# Activations.


def _flat2d(x):
    """Any shape -> 2-D view (rows, last axis); 0-d and 1-D become one row."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    return x.reshape(-1, x.shape[-1])


def _forward(kname, x, *params):
    z = check_array(x, "x")
    return getattr(_k(), kname)(_flat2d(z), *params).reshape(z.shape)


def _backward(kname, z, grad, a, *params):
    dt = result_dtype(z, grad, a)
    z = check_array(z, "z", dtype=dt)
    grad = check_array(grad, "grad", dtype=dt)
    check_same_shape(z, grad, "z", "grad")
    k = _k()
    z2 = _flat2d(z)
    if a is None:
        a2 = getattr(k, kname)(z2, *params)
    else:
        a = check_array(a, "a", dtype=dt)
        check_same_shape(z, a, "z", "a")
        a2 = _flat2d(a)
    return getattr(k, kname + "_backward")(z2, a2, _flat2d(grad), *params).reshape(z.shape)


def _slope(slope):
    return check_scalar(slope, "slope")


def sigmoid(x):
    """1 / (1 + exp(-x)) element-wise, without overflow; any shape, x's float dtype."""
    return _forward("sigmoid", x)


def tanh(x):
    """tanh(x) element-wise; any shape, x's float dtype."""
    return _forward("tanh", x)


def relu(x):
    """max(x, 0) element-wise; any shape, x's float dtype."""
    return _forward("relu", x)


def leaky_relu(x, slope=0.01):
    """x where x > 0, else slope * x, element-wise; ``slope`` a finite float."""
    return _forward("leaky_relu", x, _slope(slope))


def softplus(x):
    """log(1 + exp(x)) element-wise as max(x, 0) + log1p(exp(-|x|)): no overflow; any shape."""
    return _forward("softplus", x)


def exp(x):
    """e^x element-wise (a Poisson regression's output); overflows to inf past ~88.7 in float32."""
    return _forward("exp", x)


def identity(x):
    """A C-contiguous copy of x (as a float array); any shape."""
    return _forward("identity", x)


def sigmoid_backward(z, grad, a=None):
    """grad * sigmoid'(z), using a = sigmoid(z) (computed when not given); z's shape and dtype."""
    return _backward("sigmoid", z, grad, a)


def tanh_backward(z, grad, a=None):
    """grad * (1 - tanh(z)^2), using a = tanh(z) when given."""
    return _backward("tanh", z, grad, a)


def relu_backward(z, grad, a=None):
    """grad where z > 0, else 0 (0 at z == 0, as PyTorch)."""
    return _backward("relu", z, grad, a)


def leaky_relu_backward(z, grad, a=None, slope=0.01):
    """grad where z > 0, else slope * grad."""
    return _backward("leaky_relu", z, grad, a, _slope(slope))


def softplus_backward(z, grad, a=None):
    """grad * sigmoid(z)."""
    return _backward("softplus", z, grad, a)


def exp_backward(z, grad, a=None):
    """grad * e^z, using a = e^z when given."""
    return _backward("exp", z, grad, a)


def identity_backward(z, grad, a=None):
    """A copy of grad (z's shape and dtype)."""
    return _backward("identity", z, grad, a)


def _alpha(alpha, width, dt):
    if np.ndim(alpha) == 0:
        alpha = check_scalar(alpha.item() if isinstance(alpha, (np.ndarray, np.generic)) else alpha, "alpha")
        return np.full(width, alpha, dtype=dt)
    alpha = check_array(alpha, "alpha", ndim=1, dtype=dt)
    if alpha.shape != (width,):
        raise ValueError(
            f"alpha must have shape ({width},), one slope per feature on the last axis of the input; "
            f"got shape {alpha.shape}."
        )
    return alpha


def prelu(x, alpha):
    """Parametric ReLU: x where x > 0, else alpha * x, with one slope per feature (last axis).

    Parameters
    ----------
    x : array_like, shape (..., k), at least 1-D
    alpha : float or array_like, shape (k,)
        A scalar is used for every feature.

    Returns
    -------
    ndarray, shape of x, dtype: the common float dtype of x and alpha.
    """
    dt = result_dtype(x, alpha)
    z = check_array(x, "x", min_ndim=1, dtype=dt)
    alpha = _alpha(alpha, z.shape[-1], dt)
    return _k().prelu(_flat2d(z), alpha).reshape(z.shape)


def prelu_backward(z, grad, alpha):
    """Gradients of :func:`prelu`: ``(dz, dalpha)``, dz of z's shape and dalpha of shape (k,).

    dalpha sums grad * z over every row where z <= 0 (also when ``alpha`` was given as a scalar).
    """
    dt = result_dtype(z, grad, alpha)
    z = check_array(z, "z", min_ndim=1, dtype=dt)
    grad = check_array(grad, "grad", dtype=dt)
    check_same_shape(z, grad, "z", "grad")
    alpha = _alpha(alpha, z.shape[-1], dt)
    dz, dalpha = _k().prelu_backward(_flat2d(z), alpha, _flat2d(grad))
    return dz.reshape(z.shape), dalpha


def _pieces(pieces, width):
    pieces = check_scalar(pieces, "pieces", numbers.Integral, min_val=1)
    if width % pieces:
        raise ValueError(
            f"maxout needs the last axis of the input to be a multiple of pieces={pieces} (units * pieces); "
            f"got width {width}."
        )
    return pieces


def maxout(x, pieces, return_indices=False):
    """Maxout: the maximum over groups of ``pieces`` adjacent entries of the last axis.

    Parameters
    ----------
    x : array_like, shape (..., units * pieces), at least 1-D
    pieces : int >= 1
    return_indices : bool
        Also return the winning piece per unit (int64, first on ties), for :func:`maxout_backward`.

    Returns
    -------
    a : ndarray, shape (..., units), x's float dtype
    idx : ndarray of int64, shape (..., units), only if ``return_indices``
    """
    z = check_array(x, "x", min_ndim=1)
    pieces = _pieces(pieces, z.shape[-1])
    a, idx = _k().maxout(_flat2d(z), pieces)
    shape = z.shape[:-1] + (z.shape[-1] // pieces,)
    a = a.reshape(shape)
    return (a, idx.reshape(shape)) if return_indices else a


def maxout_backward(z, grad, pieces, idx=None):
    """Route grad (..., units) to the winning pieces; returns dz of z's shape (..., units * pieces).

    ``idx`` is the index array from ``maxout(z, pieces, return_indices=True)``, recomputed when not given.
    """
    dt = result_dtype(z, grad)
    z = check_array(z, "z", min_ndim=1, dtype=dt)
    pieces = _pieces(pieces, z.shape[-1])
    grad = check_array(grad, "grad", dtype=dt)
    shape = z.shape[:-1] + (z.shape[-1] // pieces,)
    if grad.shape != shape:
        raise ValueError(
            f"Found input variables with inconsistent shapes: grad {grad.shape} and maxout(z) {shape}; "
            f"expected grad of shape {shape}."
        )
    k = _k()
    if idx is None:
        idx2 = k.maxout(_flat2d(z), pieces)[1]
    else:
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"argument 'idx' must be an integer array (int64); got dtype {idx.dtype}")
        if idx.shape != shape:
            raise ValueError(f"argument 'idx' must have shape {shape}; got shape {idx.shape}.")
        if ((idx < 0) | (idx >= pieces)).any():
            raise ValueError(f"argument 'idx' must hold piece indices in [0, {pieces}).")
        idx2 = np.ascontiguousarray(idx.reshape(-1, shape[-1]), dtype=np.int64)
    return k.maxout_backward(_flat2d(grad), idx2, pieces).reshape(z.shape)


ELEMENTWISE = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "softplus", "exp", "identity")
ACTIVATIONS = ELEMENTWISE + ("maxout",)


def activation(name, x, **params):
    """Apply the activation called ``name`` (one of ``ACTIVATIONS``); ``params``: slope, alpha, pieces."""
    check_choice("activation", name, ACTIVATIONS)
    return globals()[name](x, **params)


def activation_backward(name, z, grad, a=None, **params):
    """The backward pass of activation ``name``; for prelu returns ``(dz, dalpha)``, as prelu_backward.

    ``a`` is the forward output (ignored by prelu; for maxout pass ``idx=`` instead).
    """
    check_choice("activation", name, ACTIVATIONS)
    if name == "prelu":
        return prelu_backward(z, grad, **params)
    if name == "maxout":
        return maxout_backward(z, grad, **params)
    return globals()[name + "_backward"](z, grad, a, **params)


def derivative(name, z, **params):
    """f'(z) element-wise for the element-wise activation ``name`` (one of ``ELEMENTWISE``).

    ``params``: ``slope`` for leaky_relu, ``alpha`` for prelu. Returns z's shape and float dtype;
    at the kink of relu-like functions the left derivative (0 for relu, slope/alpha for the leaky ones).
    """
    check_choice("activation", name, ELEMENTWISE)
    z = check_array(z, "z")
    ones = np.ones_like(z)
    if name == "prelu":
        return prelu_backward(z, ones, **params)[0]
    return globals()[name + "_backward"](z, ones, None, **params)


# --------------------------------------------------------------------------------------------------
# Losses (conventions of kernels/reference/losses.py: n = rows; values are Python floats).


def _outputs_targets(a, y, a_name="a", y_name="y", probabilities=False, targets01=False, counts=False):
    dt = result_dtype(a, y)
    a = check_array(a, a_name, ndim=(1, 2), dtype=dt)
    y = check_array(y, y_name, ndim=(1, 2), dtype=dt)
    check_consistent_length(a, y, names=(a_name, y_name))
    check_same_shape(a, y, a_name, y_name)
    if probabilities:
        check_in_range(a, a_name, 0.0, 1.0, "probabilities")
    if targets01:
        check_in_range(y, y_name, 0.0, 1.0, "targets")
    if counts:
        check_in_range(a, a_name, 0.0, np.inf, "Poisson rates")
        check_in_range(y, y_name, 0.0, np.inf, "Poisson targets (counts or rates)")
    shape = a.shape
    if a.ndim == 1:  # n samples with one output each
        a, y = a.reshape(-1, 1), y.reshape(-1, 1)
    return a, y, shape


def _outputs_labels(a, labels, a_name, probabilities=False):
    a = check_array(a, a_name, ndim=2, allow_neg_inf=not probabilities)
    if probabilities:
        check_in_range(a, a_name, 0.0, 1.0, "probabilities")
    labels = check_labels(labels, a.shape[1], "labels", n_samples=a.shape[0])
    return a, labels


def _eps(eps, dtype):
    if eps is None:
        return float(np.finfo(dtype).eps)
    return check_scalar(eps, "eps", min_val=0.0, max_val=0.5, include_boundaries="right")


def quadratic(a, y):
    """Quadratic cost 1/(2n) sum ||y - a||^2 (Nielsen's), a and y of shape (n,) or (n, k); a float."""
    a, y, _ = _outputs_targets(a, y)
    return _k().quadratic_loss(a, y)


def quadratic_grad(a, y):
    """dC/da of :func:`quadratic`: (a - y) / n, shape and dtype of a."""
    a, y, shape = _outputs_targets(a, y)
    return _k().quadratic_grad(a, y).reshape(shape)


def mse(a, y):
    """Mean squared error over all elements, mean((y - a)^2); a float."""
    a, y, _ = _outputs_targets(a, y)
    return _k().mse_loss(a, y)


def mse_grad(a, y):
    """dC/da of :func:`mse`: 2 (a - y) / (n k)."""
    a, y, shape = _outputs_targets(a, y)
    return _k().mse_grad(a, y).reshape(shape)


def binary_cross_entropy(a, y, eps=None):
    """-1/n sum [y ln a + (1 - y) ln(1 - a)] for probabilities a in [0, 1] and targets y in [0, 1].

    ``a`` is clipped to [eps, 1 - eps] so 0 and 1 give a finite loss (Keras issue 198); ``eps`` defaults
    to the machine epsilon of the dtype (1.19e-7 for float32, 2.2e-16 for float64). Prefer
    :func:`binary_cross_entropy_with_logits` when the logits are at hand.
    """
    a, y, _ = _outputs_targets(a, y, probabilities=True, targets01=True)
    return _k().bce_loss(a, y, _eps(eps, a.dtype))


def binary_cross_entropy_grad(a, y, eps=None):
    """dC/da of :func:`binary_cross_entropy` (with the same clipping): (a - y) / (a (1 - a)) / n."""
    a, y, shape = _outputs_targets(a, y, probabilities=True, targets01=True)
    return _k().bce_grad(a, y, _eps(eps, a.dtype)).reshape(shape)


def binary_cross_entropy_with_logits(z, y):
    """Binary cross-entropy of sigmoid(z) computed from logits z: exact and finite for any finite z."""
    z, y, _ = _outputs_targets(z, y, "z", "y", targets01=True)
    return _k().bce_logits_loss(z, y)


def binary_cross_entropy_with_logits_grad(z, y):
    """dC/dz of :func:`binary_cross_entropy_with_logits`: (sigmoid(z) - y) / n."""
    z, y, shape = _outputs_targets(z, y, "z", "y", targets01=True)
    return _k().bce_logits_grad(z, y).reshape(shape)


def nll(a, labels, eps=None):
    """Negative log-likelihood -1/n sum ln a[i, labels[i]] of probabilities a (n, k), labels (n,).

    Probabilities are clipped below at ``eps`` (default: machine epsilon of the dtype), so a zero
    probability gives a large finite loss.
    """
    a, labels = _outputs_labels(a, labels, "a", probabilities=True)
    return _k().nll_loss(a, labels, _eps(eps, a.dtype))


def nll_grad(a, labels, eps=None):
    """dC/da of :func:`nll`: -1 / (n a[i, label]) at the label, 0 elsewhere; shape (n, k)."""
    a, labels = _outputs_labels(a, labels, "a", probabilities=True)
    return _k().nll_grad(a, labels, _eps(eps, a.dtype))


def softmax_cross_entropy(z, labels):
    """Cross-entropy of softmax(z) against integer labels, from logits z (n, k) via log-softmax.

    ``-inf`` logits are allowed (masked classes); the loss is ``inf`` if a label's logit is ``-inf``.
    """
    z, labels = _outputs_labels(z, labels, "z")
    return _k().softmax_nll_loss(z, labels)


def softmax_cross_entropy_grad(z, labels):
    """dC/dz of :func:`softmax_cross_entropy`: (softmax(z) - onehot(labels)) / n, shape (n, k)."""
    z, labels = _outputs_labels(z, labels, "z")
    return _k().softmax_nll_grad(z, labels)


def sigmoid_bce_delta(a, y):
    """Fused output delta of a sigmoid layer under binary cross-entropy, from a = sigmoid(z): (a - y) / n."""
    a, y, shape = _outputs_targets(a, y, probabilities=True, targets01=True)
    return _k().sigmoid_bce_delta(a, y).reshape(shape)


def softmax_nll_delta(a, labels):
    """Fused output delta of a softmax layer under NLL, from a = softmax(z) (n, k): (a - onehot) / n."""
    a, labels = _outputs_labels(a, labels, "a", probabilities=True)
    return _k().softmax_nll_delta(a, labels)


def poisson(a, y, eps=None):
    """Half the Poisson deviance 1/n sum [a - y + y ln(y / a)] of rates a >= 0 against counts y >= 0
    (scikit-learn's ``MLPRegressor(loss="poisson")``; y ln(y / a) = 0 where y = 0).

    ``a`` is clipped below at ``eps`` (default: machine epsilon of the dtype), so a rate of 0 where the count
    is not gives a large finite loss.
    """
    a, y, _ = _outputs_targets(a, y, counts=True)
    return _k().poisson_loss(a, y, _eps(eps, a.dtype))


def poisson_grad(a, y, eps=None):
    """dC/da of :func:`poisson` (with the same clipping): (a - y) / (a n)."""
    a, y, shape = _outputs_targets(a, y, counts=True)
    return _k().poisson_grad(a, y, _eps(eps, a.dtype)).reshape(shape)


def exp_poisson_delta(a, y):
    """Fused output delta of an exp layer under the Poisson loss, from a = exp(z): (a - y) / n."""
    a, y, shape = _outputs_targets(a, y, counts=True)
    return _k().exp_poisson_delta(a, y).reshape(shape)


LOSSES = {
    "quadratic": (quadratic, quadratic_grad),
    "mse": (mse, mse_grad),
    "binary_cross_entropy": (binary_cross_entropy, binary_cross_entropy_grad),
    "binary_cross_entropy_with_logits": (binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_grad),
    "nll": (nll, nll_grad),
    "softmax_cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_grad),
    "poisson": (poisson, poisson_grad),
}


def loss(name, a, y, **params):
    """The value of loss ``name`` (one of ``LOSSES``) as a Python float."""
    return LOSSES[check_choice("loss", name, tuple(LOSSES))][0](a, y, **params)


def loss_grad(name, a, y, **params):
    """The gradient of loss ``name`` with respect to its first argument."""
    return LOSSES[check_choice("loss", name, tuple(LOSSES))][1](a, y, **params)


# --------------------------------------------------------------------------------------------------
# Dense layer.


def _dense_args(x, w, extra=None):
    dt = result_dtype(x, w, extra)
    x = check_array(x, "x", ndim=2, dtype=dt)
    w = check_array(w, "w", ndim=2, dtype=dt)
    if x.shape[1] != w.shape[0]:
        raise ValueError(
            f"x has {x.shape[1]} features, but w expects {w.shape[0]} input features "
            f"(x.shape={x.shape}, w.shape={w.shape})."
        )
    return x, w, dt


def dense_forward(x, w, b=None):
    """x @ w + b.

    Parameters
    ----------
    x : array_like, shape (n, n_in)
    w : array_like, shape (n_in, n_out)
    b : array_like, shape (n_out,), optional (zeros)

    Returns
    -------
    ndarray, shape (n, n_out), the common float dtype of x, w and b.
    """
    x, w, dt = _dense_args(x, w, b)
    if b is None:
        b = np.zeros(w.shape[1], dtype=dt)
    else:
        b = check_array(b, "b", ndim=1, dtype=dt)
        if b.shape != (w.shape[1],):
            raise ValueError(f"b must have shape ({w.shape[1]},), one bias per output of w; got shape {b.shape}.")
    return _k().dense_forward(x, w, b)


def dense_backward(x, w, grad):
    """Gradients of :func:`dense_forward` for the upstream gradient grad = dL/dy (n, n_out).

    Returns
    -------
    dx : ndarray (n, n_in)
    dw : ndarray (n_in, n_out)
    db : ndarray (n_out,)
    """
    x, w, dt = _dense_args(x, w, grad)
    grad = check_array(grad, "grad", ndim=2, dtype=dt)
    check_consistent_length(x, grad, names=("x", "grad"))
    if grad.shape[1] != w.shape[1]:
        raise ValueError(
            f"grad has {grad.shape[1]} columns, but w has {w.shape[1]} outputs (grad.shape={grad.shape}, "
            f"w.shape={w.shape})."
        )
    k = _k()
    dw, db = k.dense_backward_params(x, grad)
    return k.dense_backward_input(grad, w), dw, db
