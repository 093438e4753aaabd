"""Export a trained ``Sequential`` to ONNX, to run it with ONNX Runtime or any other ONNX runtime.

The graph takes one input ``"input"`` of shape (batch, n_in) and gives one output ``"output"`` of shape
(batch, n_out), both of the model's dtype (float32 or float64), with a dynamic batch dimension. It is
the inference pass of ``model.predict``, layer by layer:

===============  =====================================================================================
fastnn layer     ONNX operators
===============  =====================================================================================
Dense            Gemm(x, W, b)
Maxout           Gemm, Reshape to (batch, n_out, pieces), ReduceMax over the pieces
Sigmoid          Sigmoid (float32); Reciprocal(1 + Exp(-x)) (float64)
Tanh, ReLU       Tanh, Relu
LeakyReLU        LeakyRelu(alpha=slope) (float32); Where(x > 0, x, x * slope) (float64)
PReLU            PRelu(x, alpha) with the learned slopes (float32); Where(x > 0, x, x * alpha) (float64)
Softplus         Softplus (float32); Relu(x) + log1p(Exp(-Abs(x))) from Log, Div, Where (float64)
Exp              Exp
Identity         Identity
Softmax          Softmax(axis=-1)
BatchNorm        (x - running_mean) * (gamma / sqrt(running_var + eps)) + beta: Sub, Mul, Add
Dropout          nothing (the identity at inference)
===============  =====================================================================================

Why some float64 layers are written out: ONNX Runtime's CPU provider has no float64 Softplus, runs
float64 LeakyRelu and PRelu only at opsets 16 to 18 (ONNX Runtime 1.32), and its float64 Sigmoid (0.5 + 0.5 tanh(x/2)) loses the relative precision of small outputs (0 for x = -40,
whose sigmoid is 4e-18); the chains above keep float64 results within a few ulp of ``predict``. ONNX
stores BatchNormalization's epsilon as a float32 attribute, so BatchNorm is written in its inference
form, with the scale computed here in the model's dtype as fastnn computes it.

Needs the optional ``onnx`` package (``pip install "fastnn-cpu[onnx]"``, which also installs
onnxruntime), imported only when a model is exported.
"""
import itertools

import numpy as np

from . import layers as _layers
from ._optional import require
from .io import atomic_write, check_output_path

__all__ = ["export_onnx", "build_onnx", "DEFAULT_OPSET", "MIN_OPSET", "INPUT_NAME", "OUTPUT_NAME"]

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Softmax over the last axis alone (axis=-1) needs opset 13
INPUT_NAME, OUTPUT_NAME = "input", "output"


class _Graph:
    """Nodes and initializers of the graph being built, in the model's dtype."""

    def __init__(self, onnx, dtype, opset):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.dtype, self.opset = dtype, opset
        self.nodes, self.initializers = [], []
        self._count = itertools.count()

    def constant(self, name, value, dtype=None):
        """An initializer holding ``value`` (the model's dtype unless ``dtype`` says otherwise); its name."""
        array = np.asarray(value, dtype=dtype or self.dtype)
        self.initializers.append(self.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, prefix, **attributes):
        """Append node ``op`` (named after the layer ``prefix``) reading ``inputs``; return its output name."""
        name = f"{prefix}/{op}_{next(self._count)}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [name], name=name, **attributes))
        return name

    @property
    def double(self):
        return self.dtype == np.float64


# --- one function per layer type: (graph, layer, input name, prefix) -> output name ----------------------


def _dense(g, layer, x, prefix):
    return g.node("Gemm", [x, g.constant(f"{prefix}.W", layer.W), g.constant(f"{prefix}.b", layer.b)], prefix)


def _maxout(g, layer, x, prefix):
    z = _dense(g, layer, x, prefix)
    # Unit j is the max over columns j*pieces ... j*pieces + pieces-1 (fastnn's layout); 0 keeps the batch size.
    shape = g.constant(f"{prefix}.shape", [0, layer.n_out, layer.pieces], dtype=np.int64)
    grouped = g.node("Reshape", [z, shape], prefix)
    if g.opset >= 18:  # the axes became an input in opset 18
        return g.node("ReduceMax", [grouped, g.constant(f"{prefix}.axes", [2], dtype=np.int64)], prefix, keepdims=0)
    return g.node("ReduceMax", [grouped], prefix, axes=[2], keepdims=0)


def _sigmoid(g, layer, x, prefix):
    if not g.double:
        return g.node("Sigmoid", [x], prefix)
    one = g.constant(f"{prefix}.one", 1.0)
    return g.node("Reciprocal", [g.node("Add", [one, g.node("Exp", [g.node("Neg", [x], prefix)], prefix)], prefix)], prefix)


def _softplus(g, layer, x, prefix):
    if not g.double:
        return g.node("Softplus", [x], prefix)
    # max(x, 0) + log1p(u) with u = exp(-|x|) in (0, 1], as fastnn computes it. ONNX has no log1p:
    # log1p(u) = log(w) * u / (w - 1) with w = 1 + u (exact to a few ulp, Goldberg 1991), u where w == 1.
    one, zero = g.constant(f"{prefix}.one", 1.0), g.constant(f"{prefix}.zero", 0.0)
    u = g.node("Exp", [g.node("Neg", [g.node("Abs", [x], prefix)], prefix)], prefix)
    w = g.node("Add", [one, u], prefix)
    d = g.node("Sub", [w, one], prefix)
    ratio = g.node("Mul", [g.node("Log", [w], prefix), g.node("Div", [u, d], prefix)], prefix)
    log1p = g.node("Where", [g.node("Equal", [d, zero], prefix), u, ratio], prefix)
    return g.node("Add", [g.node("Relu", [x], prefix), log1p], prefix)


def _batchnorm(g, layer, x, prefix):
    gamma, beta = layer.params
    mean, var = layer.buffers
    t = layer.dtype.type
    scale = gamma * (t(1) / np.sqrt(var + t(layer.eps)))  # fastnn's batchnorm_forward_eval, term by term
    centred = g.node("Sub", [x, g.constant(f"{prefix}.running_mean", mean)], prefix)
    scaled = g.node("Mul", [centred, g.constant(f"{prefix}.scale", scale)], prefix)
    return g.node("Add", [scaled, g.constant(f"{prefix}.beta", beta)], prefix)


def _negative_slope(g, x, slope, prefix):
    """x where x > 0, slope * x elsewhere (fastnn's formula), for float64 graphs."""
    zero = g.constant(f"{prefix}.zero", 0.0)
    return g.node("Where", [g.node("Greater", [x, zero], prefix), x, g.node("Mul", [x, slope], prefix)], prefix)


def _leaky_relu(g, layer, x, prefix):
    if g.double:
        return _negative_slope(g, x, g.constant(f"{prefix}.slope", layer.slope), prefix)
    return g.node("LeakyRelu", [x], prefix, alpha=layer.slope)


def _prelu(g, layer, x, prefix):
    alpha = g.constant(f"{prefix}.alpha", layer.params[0])
    return _negative_slope(g, x, alpha, prefix) if g.double else g.node("PRelu", [x, alpha], prefix)


def _simple(op, **attributes):
    def convert(g, layer, x, prefix):
        return g.node(op, [x], prefix, **attributes)

    return convert


_CONVERTERS = {
    _layers.Dense: _dense,
    _layers.Maxout: _maxout,
    _layers.Sigmoid: _sigmoid,
    _layers.Tanh: _simple("Tanh"),
    _layers.ReLU: _simple("Relu"),
    _layers.LeakyReLU: _leaky_relu,
    _layers.PReLU: _prelu,
    _layers.Softplus: _softplus,
    _layers.Exp: _simple("Exp"),
    _layers.Identity: _simple("Identity"),
    _layers.Softmax: _simple("Softmax", axis=-1),
    _layers.BatchNorm: _batchnorm,
    _layers.Dropout: None,  # the identity at inference: no node
}


def _converter(i, layer):
    # Exact types only: a subclass (even of Dense) may compute something else in its forward.
    kind = type(layer)
    if kind not in _CONVERTERS:
        known = ", ".join(cls.__name__ for cls in _CONVERTERS)
        raise TypeError(
            f"cannot export layer {i} ({layer!r}) to ONNX: {kind.__module__}.{kind.__qualname__} is not a fastnn "
            f"layer type; export_onnx writes only {known}"
        )
    return _CONVERTERS[kind]


def build_onnx(model, opset=DEFAULT_OPSET):
    """The ONNX ``ModelProto`` of ``model``'s inference pass, checked with ``onnx.checker``; see
    :func:`export_onnx`, which writes it to a file."""
    from . import __version__
    from .network import Sequential

    onnx = require("onnx", "onnx", "fastnn.export_onnx")
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a fastnn.Sequential, got {type(model).__name__}")
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"opset must be an integer in [{MIN_OPSET}, {latest}] (this onnx's newest), got {opset!r}")
    converters = [_converter(i, layer) for i, layer in enumerate(model.layers)]  # refuse before building

    g = _Graph(onnx, model.dtype, int(opset))
    x = INPUT_NAME
    for i, (layer, convert) in enumerate(zip(model.layers, converters)):
        if convert is not None:
            x = convert(g, layer, x, f"layers.{i}")
    if x == INPUT_NAME:  # only Dropout layers: the output is the input
        x = g.node("Identity", [x], "output")
    g.nodes[-1].output[0] = OUTPUT_NAME  # x, the last node's output: nothing reads it

    elem = onnx.helper.np_dtype_to_tensor_dtype(model.dtype)
    graph = onnx.helper.make_graph(
        g.nodes, "fastnn",
        [onnx.helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", model.n_in or "features"])],
        [onnx.helper.make_tensor_value_info(OUTPUT_NAME, elem, ["batch", model.n_out or "features"])],
        g.initializers,
    )
    opsets = [onnx.helper.make_opsetid("", int(opset))]
    proto = onnx.helper.make_model(
        graph, opset_imports=opsets, producer_name="fastnn", producer_version=__version__,
        doc_string=repr(model),
        # The oldest IR version that carries this opset, so older runtimes read the file too.
        ir_version=onnx.helper.find_min_ir_version_for(opsets),
    )
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, opset=DEFAULT_OPSET):
    """Write ``model``'s inference pass (what ``model.predict`` computes) to ``path`` as an ONNX model.

    Parameters
    ----------
    model : fastnn.Sequential
        Any stack of fastnn's layer types (see the table in :mod:`fastnn.onnx`), float32 or float64.
    path : str or os.PathLike
        The ``.onnx`` file to write, atomically (as :func:`fastnn.save`): nothing is written when the
        export fails.
    opset : int
        The ONNX operator set version, 13 or newer (default 17).

    Returns
    -------
    onnx.ModelProto
        The model written, already checked with ``onnx.checker.check_model(..., full_check=True)``.
        Its input ``"input"`` is (batch, n_in) and its output ``"output"`` (batch, n_out), of the model's
        dtype; the batch dimension is dynamic.

    Raises
    ------
    TypeError
        When a layer is not one of fastnn's own layer types (a user-defined ``Layer`` subclass), naming it.
    ImportError
        When the ``onnx`` package is missing (``pip install "fastnn-cpu[onnx]"``).
    """
    path = check_output_path(path, "path")
    proto = build_onnx(model, opset)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return proto
