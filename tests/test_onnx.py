"""ONNX export: every layer type and whole stacks, run in ONNX Runtime and compared with model.predict.

Tolerances: rtol 1e-5 (float32) and 1e-12 (float64). An activation alone is compared element by element
with no absolute tolerance in float64 (the exported float64 chains keep relative precision in the
tails), and in float32 with atol = rtol: ONNX Runtime's float32 Sigmoid is accurate to ~2e-7 in
absolute terms only (1.8e-8 comes out as 8.9e-8). After a Dense layer the outputs are sums of larger
terms, so atol = rtol x the largest output (the project's convention for sums).
"""
import os
import subprocess
import sys

import numpy as np
import onnx  # the onnx extra is installed by `make test`: missing, these tests fail rather than skip
import onnxruntime as ort
import pytest

import fastnn
from fastnn.layers import (
    BatchNorm, Dense, Dropout, Exp, Identity, Layer, LeakyReLU, Maxout, PReLU, ReLU, Sigmoid, Softmax, Softplus,
    Tanh,
)
from fastnn.onnx import DEFAULT_OPSET, MIN_OPSET, export_onnx

RTOL = {"float32": 1e-5, "float64": 1e-12}
DTYPES = ("float32", "float64")
BATCHES = (1, 4096)

# The layers that keep their input's width, each made for a width n.
ACTIVATIONS = {
    "Sigmoid": lambda n: Sigmoid(), "Tanh": lambda n: Tanh(), "ReLU": lambda n: ReLU(),
    "LeakyReLU": lambda n: LeakyReLU(0.2), "PReLU": PReLU, "Softplus": lambda n: Softplus(),
    "Exp": lambda n: Exp(), "Identity": lambda n: Identity(), "Softmax": lambda n: Softmax(), "Dropout": lambda n: Dropout(0.5),
    "BatchNorm": BatchNorm,
}
# Every layer type after a Dense layer of 8 units (Dense and Maxout are the first layer themselves).
LAYER_MODELS = {
    "Dense": lambda: [Dense(6, 8)],
    "Maxout": lambda: [Maxout(6, 8, pieces=3)],
    **{name: (lambda make=make: [Dense(6, 8), make(8)]) for name, make in ACTIVATIONS.items()},
}


def _randomize(model, rng):
    """Give every parameter and buffer non-default values (BatchNorm variances positive, slopes varied)."""
    arrays = []
    for layer in model.layers:
        for name, a in layer.state_arrays():
            values = rng.normal(size=a.shape)
            arrays.append(np.abs(values) + 0.05 if name == "running_var" else values)
    model.set_weights(arrays)
    return model


def _session(path):
    return ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])


def _run(path, X):
    return _session(path).run(["output"], {"input": X})[0]


def _assert_matches(got, want, dtype, atol_scale):
    assert got.dtype == want.dtype == np.dtype(dtype)
    assert got.shape == want.shape
    rtol = RTOL[dtype]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * atol_scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYER_MODELS))
def test_every_layer_type_after_dense(tmp_path, name, dtype):
    rng = np.random.default_rng(1)
    model = _randomize(fastnn.Sequential(LAYER_MODELS[name](), dtype=dtype), rng)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    session = _session(path)
    for batch in BATCHES:
        X = (rng.normal(size=(batch, 6)) * 2).astype(dtype)
        want = model.predict(X)
        got = session.run(["output"], {"input": X})[0]
        _assert_matches(got, want, dtype, np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - {"PReLU", "BatchNorm"}))
def test_activation_alone_over_its_whole_range(tmp_path, name, dtype):
    """Inputs from -40 to 40 reach the activation directly: the tails (sigmoid(-40) = 4e-18) count."""
    model = fastnn.Sequential([ACTIVATIONS[name](5)], dtype=dtype)
    path = tmp_path / "m.onnx"
    export_onnx(model, path)
    grid = np.linspace(-40, 40, 4096 * 5).reshape(4096, 5).astype(dtype)
    for X in (grid, grid[:1] / 7):
        want = model.predict(X)
        got = _run(path, X)
        _assert_matches(got, want, dtype, 1.0 if dtype == "float32" else 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_and_batchnorm_alone_keep_relative_precision(tmp_path, dtype):
    rng = np.random.default_rng(2)
    for layer in (PReLU(5), BatchNorm(5)):
        model = _randomize(fastnn.Sequential([layer], dtype=dtype), rng)
        export_onnx(model, tmp_path / "m.onnx")
        X = rng.normal(size=(4096, 5)).astype(dtype) * 3
        want = model.predict(X)
        # BatchNorm's (x - mean) * scale + beta is a sum: atol from the size of its terms.
        scale = 0.0 if isinstance(layer, PReLU) else np.abs(want).max()
        _assert_matches(_run(tmp_path / "m.onnx", X), want, dtype, scale)


def _every_layer_stack(dtype, seed=3):
    layers = [
        Dense(20, 16), BatchNorm(16), PReLU(16), Dropout(0.2), Maxout(16, 12, pieces=3), LeakyReLU(0.05),
        Dense(12, 10), Softplus(), Dense(10, 10), Tanh(), Dense(10, 8), ReLU(), Dense(8, 6), Sigmoid(),
        Dense(6, 5), Identity(), Dense(5, 4), Softmax(),
    ]
    return _randomize(fastnn.Sequential(layers, dtype=dtype), np.random.default_rng(seed))


@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_of_every_layer_type(tmp_path, dtype):
    model = _every_layer_stack(dtype)
    path = tmp_path / "stack.onnx"
    proto = export_onnx(model, path)
    ops = {node.op_type for node in proto.graph.node}
    assert {"Gemm", "Reshape", "ReduceMax", "Tanh", "Relu", "Identity", "Softmax"} <= ops
    session = _session(path)
    rng = np.random.default_rng(4)
    for batch in BATCHES:
        X = rng.normal(size=(batch, 20)).astype(dtype)
        want = model.predict(X)
        got = session.run(["output"], {"input": X})[0]
        _assert_matches(got, want, dtype, np.abs(want).max())
        assert np.array_equal(got.argmax(axis=1), want.argmax(axis=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_trained_mnist_network(tmp_path, dtype):
    """A network trained by fit (BatchNorm running statistics from training), then saved and loaded."""
    (X, y), (X_test, _) = fastnn.datasets.load_mnist(dtype=dtype)
    model = fastnn.Sequential([Dense(784, 32), BatchNorm(32), ReLU(), Dropout(0.1), Dense(32, 10), Softmax()],
                              dtype=dtype, seed=0)
    model.fit(X[:2000], y[:2000], loss="log_likelihood", optimizer=fastnn.optim.Adam(1e-3), epochs=1,
              batch_size=50, seed=0, verbose=0)
    fastnn.save(model, tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    export_onnx(loaded, tmp_path / "m.onnx")
    for batch in BATCHES:
        Xb = np.resize(X_test, (batch, 784)).astype(dtype)
        want = model.predict(Xb)
        _assert_matches(_run(tmp_path / "m.onnx", Xb), want, dtype, np.abs(want).max())


@pytest.mark.parametrize("opset", [MIN_OPSET, DEFAULT_OPSET, 18, "newest"])
def test_opsets(tmp_path, opset):
    """Opset 18 moved ReduceMax's axes to an input; every opset from 13 to onnx's newest works."""
    opset = onnx.defs.onnx_opset_version() if opset == "newest" else opset
    for dtype in DTYPES:
        model = _every_layer_stack(dtype)
        proto = export_onnx(model, tmp_path / "m.onnx", opset=opset)
        assert [(o.domain, o.version) for o in proto.opset_import] == [("", opset)]
        X = np.random.default_rng(5).normal(size=(64, 20)).astype(dtype)
        want = model.predict(X)
        _assert_matches(_run(tmp_path / "m.onnx", X), want, dtype, np.abs(want).max())


@pytest.mark.parametrize("dtype", DTYPES)
def test_graph_interface(tmp_path, dtype):
    """One input and one output of the model's dtype, the batch dimension dynamic; the file passes the checker."""
    model = fastnn.Sequential([Dense(7, 3), Sigmoid()], dtype=dtype, seed=0)
    export_onnx(model, tmp_path / "m.onnx")
    loaded = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(loaded, full_check=True)
    elem = onnx.TensorProto.FLOAT if dtype == "float32" else onnx.TensorProto.DOUBLE
    (inp,), (out,) = loaded.graph.input, loaded.graph.output
    assert inp.name == "input" and out.name == "output"
    assert inp.type.tensor_type.elem_type == out.type.tensor_type.elem_type == elem
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert dims(inp) == ["batch", 7] and dims(out) == ["batch", 3]
    session = _session(tmp_path / "m.onnx")
    expected = "tensor(float)" if dtype == "float32" else "tensor(double)"
    assert session.get_inputs()[0].type == session.get_outputs()[0].type == expected
    assert session.get_inputs()[0].shape == ["batch", 7]
    with pytest.raises(Exception, match="(?i)type|double|float"):  # the other dtype is refused
        session.run(None, {"input": np.zeros((2, 7), "float64" if dtype == "float32" else "float32")})


def test_dropout_only_model_is_the_identity(tmp_path):
    model = fastnn.Sequential([Dropout(0.5)], dtype="float64")
    export_onnx(model, tmp_path / "m.onnx")
    X = np.random.default_rng(6).normal(size=(5, 3))
    np.testing.assert_array_equal(_run(tmp_path / "m.onnx", X), X)


class Swish(Layer):
    """A user-defined layer fastnn does not know."""

    def forward(self, x, training=False):
        return x / (1 + np.exp(-x))


class MyDense(Dense):
    """A subclass of a known layer may compute anything: refused too."""


@pytest.mark.parametrize("layer, name", [(Swish(), "Swish"), (MyDense(4, 4), "MyDense")])
def test_unknown_layer_is_refused_and_nothing_written(tmp_path, layer, name):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old content")
    model = fastnn.Sequential([Dense(4, 4), ReLU(), layer])
    with pytest.raises(TypeError, match=rf"cannot export layer 2 \({name}\(.*\)\) to ONNX: .*{name} is not a fastnn "
                       r"layer type; export_onnx writes only Dense, Maxout"):
        export_onnx(model, path)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["m.onnx"]  # no temporary file left behind


def test_bad_arguments(tmp_path):
    model = fastnn.Sequential([Dense(4, 4)])
    with pytest.raises(ValueError, match=r"opset must be an integer in \[13, \d+\]"):
        export_onnx(model, tmp_path / "m.onnx", opset=12)
    with pytest.raises(ValueError, match="opset must be an integer"):
        export_onnx(model, tmp_path / "m.onnx", opset=17.0)
    with pytest.raises(TypeError, match="model must be a fastnn.Sequential, got list"):
        export_onnx([Dense(4, 4)], tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="path=.*: directory .*no-such-dir does not exist"):
        export_onnx(model, tmp_path / "no-such-dir" / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r'needs the onnx package, which is not installed: pip install "fastnn-cpu\[onnx\]"'):
        fastnn.export_onnx(fastnn.Sequential([Dense(2, 2)]), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_export_command(tmp_path):
    (X, y), (X_test, _) = fastnn.datasets.load_mnist()
    model = fastnn.Sequential([Dense(784, 16), Tanh(), Dense(16, 10), Softmax()], seed=0)
    fastnn.save(model, tmp_path / "m.npz")
    proc = subprocess.run([sys.executable, "-m", "fastnn", "export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx"),
                           "--opset", "18"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"exported {tmp_path / 'm.npz'} to {tmp_path / 'm.onnx'}: 784 -> 10, float32, opset 18")
    want = model.predict(X_test)
    _assert_matches(_run(tmp_path / "m.onnx", X_test), want, "float32", np.abs(want).max())


@pytest.mark.parametrize("args, message", [
    (["missing.npz", "out.onnx"], "missing.npz"),
    (["bad.npz", "out.onnx"], "not a fastnn model file"),
])
def test_export_command_errors(tmp_path, args, message):
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    proc = subprocess.run([sys.executable, "-m", "fastnn", "export", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("python -m fastnn export: error: ") and message in proc.stderr
    assert not (tmp_path / "out.onnx").exists()
