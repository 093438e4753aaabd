"""Layers: thin objects that hold parameters and call the kernels of the current backend.

Every layer has ``forward(x, training=False) -> y`` and ``backward(grad) -> grad_input`` over 2-D arrays
(rows are samples), plus ``params`` (the trainable arrays, updated in place by the optimizers) and
``grads`` (their gradients after the last ``backward``, same shapes). ``backward`` uses what the last
``forward`` cached, so call ``forward(x, training=True)`` first. All arithmetic goes through
``fastnn.backend.kernels()``, looked up at every call, so switching the backend between calls (or
per model, see ``Sequential(backend=...)``) takes effect at once.

Parameters are created in float64 and cast by ``Sequential`` to the model dtype (or ``layer.astype``).
``get_weights`` order: Dense/Maxout ``W`` (n_in, n_out[*pieces]) then ``b``; PReLU ``alpha`` (n,);
BatchNorm ``gamma``, ``beta`` (trainable) then ``running_mean``, ``running_var`` (buffers).
"""
import math
import numbers

import numpy as np

from ._checks import check_sparse, is_sparse
from ._kernels.reference import fused as _fused_spec
from .backend import kernels
from .init import get_rng, initialize

__all__ = [
    "Layer", "Dense", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "Softplus", "Identity", "Softmax",
    "Maxout", "Dropout", "BatchNorm", "LAYERS", "layer_from_config",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_input(x, dtype, width=None, layer=None):
    """x as a C-contiguous 2-D array of ``dtype`` (no copy when it already is one)."""
    if not (isinstance(x, np.ndarray) and x.dtype == dtype and x.flags.c_contiguous):
        x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"{layer!r} expects a 2-D array (n_samples, n_features), got {x.ndim}-D with shape {x.shape}")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{layer!r} expects {width} input features, got an array of shape {x.shape}")
    return x


def _float_dtype(x):
    dtype = getattr(x, "dtype", None)
    return dtype if dtype in _FLOATS else np.dtype(np.float64)


class Layer:
    """Base class. Subclasses set ``params``, ``param_names``, and optionally ``buffers``/``buffer_names``.

    ``regularized`` lists the indices into ``params`` that L1/L2 penalties apply to (weights, not biases).
    ``n_in``/``n_out`` are None for layers that keep the width of their input.
    """

    param_names = ()
    buffer_names = ()
    regularized = ()
    n_in = None
    n_out = None

    def __init__(self):
        self.params = []
        self.grads = []
        self.buffers = []

    @property
    def dtype(self):
        arrays = self.params + self.buffers
        return arrays[0].dtype if arrays else None

    def astype(self, dtype):
        """Cast parameters and buffers to ``dtype`` (float32 or float64), in place on the layer; returns self."""
        dtype = np.dtype(dtype)
        if dtype not in _FLOATS:
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.params = [np.ascontiguousarray(p, dtype=dtype) for p in self.params]
        self.buffers = [np.ascontiguousarray(b, dtype=dtype) for b in self.buffers]
        self.grads = []
        return self

    def reset_parameters(self, rng=None):
        """Re-draw the parameters (layers without random parameters reset to their initial values)."""

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def state_arrays(self):
        """``[(name, array)]`` of parameters then buffers: what ``get_weights`` returns for this layer."""
        return list(zip(self.param_names, self.params)) + list(zip(self.buffer_names, self.buffers))

    def set_state_arrays(self, arrays):
        """Copy ``arrays`` (same order and shapes as ``state_arrays``) into the layer, in place."""
        own = self.params + self.buffers
        if len(arrays) != len(own):
            raise ValueError(f"{self!r} holds {len(own)} arrays, got {len(arrays)}")
        for (name, dst), src in zip(self.state_arrays(), arrays):
            src = np.asarray(src)
            if src.shape != dst.shape:
                raise ValueError(f"{self!r}: {name} must have shape {dst.shape}, got {src.shape}")
            if not np.issubdtype(src.dtype, np.number) or np.issubdtype(src.dtype, np.complexfloating):
                raise ValueError(f"{self!r}: {name} must be real numbers, got dtype {src.dtype}")
            dst[...] = src

    def get_config(self):
        """The constructor arguments, JSON-serialisable (``type(self)(**config)`` rebuilds the layer)."""
        return {}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Dense(Layer):
    """Fully connected: ``y = x @ W + b``; x (n, n_in) -> y (n, n_out).

    ``init`` names an initializer from :mod:`fastnn.init` (default ``"normalized"``) or is a callable;
    ``rng`` (None, int seed or Generator) draws the initial weights.
    """

    param_names = ("W", "b")
    regularized = (0,)

    def __init__(self, n_in, n_out, init="normalized", rng=None):
        super().__init__()
        self.n_in, self.n_out = _positive_int(n_in, "n_in"), _positive_int(n_out, "n_out")
        self.init = init
        self.reset_parameters(rng)

    def _fan_out(self):
        return self.n_out

    def reset_parameters(self, rng=None):
        dtype = self.dtype or np.float64
        w, b = initialize(self.init, self.n_in, self._fan_out(), rng)
        self.params = [w.astype(dtype), b.astype(dtype)]
        self.grads = []

    @property
    def W(self):
        return self.params[0]

    @property
    def b(self):
        return self.params[1]

    def forward(self, x, training=False):
        """x @ W + b for x (n, n_in): a dense array, or a scipy.sparse matrix (any format, used as CSR, never
        made dense: the sparse kernels' work follows its stored values)."""
        self._x = x = self._input(x)
        return self._product(x)

    def backward(self, grad, need_input_grad=True):
        """Set ``grads = [dW, db]``; return dL/dx (n, n_in), or None when ``need_input_grad`` is False."""
        self.grads = self._param_grads(grad)
        return kernels().dense_backward_input(grad, self.params[0]) if need_input_grad else None

    def _input(self, x):
        if is_sparse(x):
            x = check_sparse(x, "x", self.params[0].dtype, finite=False)
            if x.shape[1] != self.n_in:
                raise ValueError(f"{self!r} expects {self.n_in} input features, got a sparse matrix of shape {x.shape}")
            return x
        return _as_input(x, self.params[0].dtype, self.n_in, self)

    def _product(self, x):
        """x @ W + b (n, n_out * pieces) for an input that ``_input`` returned."""
        k = kernels()
        if is_sparse(x):
            return k.csr_dense_forward(x.data, x.indices, x.indptr, self.params[0], self.params[1])
        return k.dense_forward(x, self.params[0], self.params[1])

    def _param_grads(self, dz):
        """[dW, db] from dC/d(x @ W + b) and the input of the last forward."""
        k = kernels()
        x = self._x
        if is_sparse(x):
            return list(k.csr_dense_backward_params(x.data, x.indices, x.indptr, dz, self.n_in))
        return list(k.dense_backward_params(x, dz))

    def get_config(self):
        return {"n_in": self.n_in, "n_out": self.n_out, "init": self.init if isinstance(self.init, str) else "custom"}


class Maxout(Dense):
    """Maxout (Goodfellow et al. 2013): a Dense layer to ``n_out * pieces`` units, then the max of each
    group of ``pieces`` adjacent columns. W has shape (n_in, n_out * pieces), b (n_out * pieces,).
    """

    def __init__(self, n_in, n_out, pieces=2, init="normalized", rng=None):
        self.pieces = _positive_int(pieces, "pieces")
        super().__init__(n_in, n_out, init=init, rng=rng)

    def _fan_out(self):
        return self.n_out * self.pieces

    def forward(self, x, training=False):
        self._x = x = self._input(x)
        a, self._idx = kernels().maxout(self._product(x), self.pieces)
        return a

    def backward(self, grad, need_input_grad=True):
        k = kernels()
        dz = k.maxout_backward(grad, self._idx, self.pieces)
        self.grads = self._param_grads(dz)
        return k.dense_backward_input(dz, self.params[0]) if need_input_grad else None

    def get_config(self):
        config = super().get_config()
        config["pieces"] = self.pieces
        return {k: config[k] for k in ("n_in", "n_out", "pieces", "init")}


class _Elementwise(Layer):
    """An activation ``a = f(z)`` with kernels ``<name>(z)`` and ``<name>_backward(z, a, da)``."""

    kernel = None

    def forward(self, x, training=False):
        z = _as_input(x, _float_dtype(x), None, self)
        self._z = z
        self._a = getattr(kernels(), self.kernel)(z)
        return self._a

    def backward(self, grad):
        return getattr(kernels(), self.kernel + "_backward")(self._z, self._a, grad)


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-z))."""

    kernel = "sigmoid"


class Tanh(_Elementwise):
    """tanh(z)."""

    kernel = "tanh"


class ReLU(_Elementwise):
    """max(z, 0); derivative 0 at z = 0."""

    kernel = "relu"


class Softplus(_Elementwise):
    """log(1 + exp(z)), the smooth ReLU."""

    kernel = "softplus"


class Exp(_Elementwise):
    """e^z: the log link of a Poisson regression's output (pair it with the ``"poisson"`` loss)."""

    kernel = "exp"


class Identity(_Elementwise):
    """a = z (a linear output layer)."""

    kernel = "identity"


class Softmax(_Elementwise):
    """Row-wise softmax exp(z) / sum(exp(z)) (an output layer; pair it with the log-likelihood loss)."""

    kernel = "softmax"


class LeakyReLU(Layer):
    """z where z > 0, ``slope * z`` elsewhere (fixed slope, default 0.01)."""

    def __init__(self, slope=0.01):
        super().__init__()
        self.slope = _finite(slope, "slope")

    def forward(self, x, training=False):
        z = _as_input(x, _float_dtype(x), None, self)
        self._z = z
        self._a = kernels().leaky_relu(z, self.slope)
        return self._a

    def backward(self, grad):
        return kernels().leaky_relu_backward(self._z, self._a, grad, self.slope)

    def get_config(self):
        return {"slope": self.slope}


class PReLU(Layer):
    """Leaky ReLU with a learned slope per feature: ``alpha`` of shape (n,), initially ``alpha_init``.

    ``alpha`` is a parameter but not a weight: L1/L2 penalties do not apply to it.
    """

    param_names = ("alpha",)

    def __init__(self, n, alpha_init=0.25):
        super().__init__()
        self.n_in = self.n_out = _positive_int(n, "n")
        self.alpha_init = _finite(alpha_init, "alpha_init")
        self.reset_parameters()

    def reset_parameters(self, rng=None):
        self.params = [np.full(self.n_in, self.alpha_init, dtype=self.dtype or np.float64)]
        self.grads = []

    def forward(self, x, training=False):
        z = _as_input(x, self.params[0].dtype, self.n_in, self)
        self._z = z
        return kernels().prelu(z, self.params[0])

    def backward(self, grad):
        dz, dalpha = kernels().prelu_backward(self._z, self.params[0], grad)
        self.grads = [dalpha]
        return dz

    def get_config(self):
        return {"n": self.n_in, "alpha_init": self.alpha_init}


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest by
    1/(1-p); at inference, the identity. 0 <= p < 1.

    Each training forward draws the kernel's mask seed from ``self.rng`` (a Generator made from ``seed``);
    ``Sequential.fit`` swaps in its own seeded Generator so a run is reproducible on every backend.
    """

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        p = _finite(p, "p", range_checked=True)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability p must be in [0, 1), got {p}")
        self.p = p
        self.rng = get_rng(seed)
        self._mask = None

    def reset_parameters(self, rng=None):
        if rng is not None:
            self.rng = np.random.default_rng(get_rng(rng).integers(0, 2**63))

    def forward(self, x, training=False, seed=None):
        """Inverted dropout in training (the mask from ``seed``, else from a seed drawn from ``self.rng``);
        the identity at inference."""
        x = _as_input(x, _float_dtype(x), None, self)
        if not training or self.p == 0.0:
            self._mask = None
            return x
        # Seeds below 2**63 fit a signed 64-bit integer in every backend.
        seed = int(self.rng.integers(0, 2**63)) if seed is None else int(seed)
        y, self._mask = kernels().dropout_forward(x, self.p, seed)
        return y

    def backward(self, grad):
        if self._mask is None:
            return grad
        return kernels().dropout_backward(grad, self._mask)

    def get_config(self):
        return {"p": self.p}


class BatchNorm(Layer):
    """Batch normalization over the batch axis (as ``torch.nn.BatchNorm1d``) of an (n, k) input.

    Training normalizes with batch statistics (n >= 2) and updates the running statistics in place with
    ``momentum``; inference uses the running statistics. gamma starts at 1, beta at 0.
    """

    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")

    def __init__(self, n, momentum=0.1, eps=1e-5):
        super().__init__()
        self.n_in = self.n_out = _positive_int(n, "n")
        self.momentum = _finite(momentum, "momentum", range_checked=True)
        self.eps = _finite(eps, "eps")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1], got {momentum}")
        if not self.eps > 0:
            raise ValueError(f"BatchNorm eps must be > 0, got {eps}")
        self.reset_parameters()

    def reset_parameters(self, rng=None):
        dtype = self.dtype or np.float64
        n = self.n_in
        self.params = [np.ones(n, dtype), np.zeros(n, dtype)]
        self.buffers = [np.zeros(n, dtype), np.ones(n, dtype)]
        self.grads = []

    def forward(self, x, training=False):
        x = _as_input(x, self.params[0].dtype, self.n_in, self)
        gamma, beta = self.params
        running_mean, running_var = self.buffers
        k = kernels()
        if not training:
            self._cache = None
            return k.batchnorm_forward_eval(x, gamma, beta, running_mean, running_var, self.eps)
        _fused_spec.check_batches(x.shape[0], max(x.shape[0], 1), [(self.momentum, self.eps)])
        y, xhat, inv_std = k.batchnorm_forward_train(x, gamma, beta, running_mean, running_var, self.momentum, self.eps)
        self._cache = (xhat, inv_std)
        return y

    def backward(self, grad):
        if getattr(self, "_cache", None) is None:
            raise RuntimeError("BatchNorm.backward needs a preceding forward(x, training=True)")
        xhat, inv_std = self._cache
        dx, dgamma, dbeta = kernels().batchnorm_backward(grad, xhat, self.params[0], inv_std)
        self.grads = [dgamma, dbeta]
        return dx

    def get_config(self):
        return {"n": self.n_in, "momentum": self.momentum, "eps": self.eps}


def _finite(value, name, range_checked=False):
    """A real-number argument as a float: TypeError for non-numbers, ValueError for NaN/inf unless the
    caller's own range check reports them (``range_checked``)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not range_checked and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


LAYERS = {
    cls.__name__: cls
    for cls in (Dense, Sigmoid, Tanh, ReLU, LeakyReLU, PReLU, Softplus, Exp, Identity, Softmax, Maxout, Dropout,
                BatchNorm)
}


def layer_from_config(name, config):
    """Rebuild a layer from its class name and ``get_config()`` (used by :func:`fastnn.load`)."""
    if name not in LAYERS:
        raise ValueError(f"unknown layer type {name!r}; known layers are {', '.join(LAYERS)}")
    config = dict(config)
    if config.get("init") == "custom":
        config["init"] = "zeros"  # the weights are loaded next; the original callable is not stored
    try:
        return LAYERS[name](**config)
    except TypeError as exc:
        raise ValueError(f"bad configuration for layer {name}: {config!r} ({exc})") from exc
