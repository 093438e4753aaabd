"""Bad input gets a clear error before any kernel runs: one table, one row per case.

Every row is ``(call, exception type, message fragment)``. The test runs the call with every backend's
kernels replaced by a tripwire that fails the test if any kernel is reached, so each row also proves the
check happens in the Python layer, before the compiled code could crash or compute garbage. CLI rows
assert exit status 2 and exactly one line on stderr (raised here as ``CLIUsageError`` carrying the line).
"""
import contextlib
import io

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, backend, optim
from fastnn import functional as F
from fastnn.cli import main
from fastnn.layers import BatchNorm, Dense, Dropout, LeakyReLU, PReLU, ReLU, Sigmoid, Softmax, layer_from_config

G = np.random.default_rng(5)
X = G.normal(size=(12, 3))
Y = np.arange(12) % 2  # labels of a 2-class model
ROWS = np.eye(2)[Y]  # the same as one-hot rows


def net():
    """3 -> 4 -> 2 softmax network."""
    return Sequential([Dense(3, 4), Sigmoid(), Dense(4, 2), Softmax()], seed=0)


def sig():
    """3 -> 2 sigmoid network (for cross-entropy targets)."""
    return Sequential([Dense(3, 2), Sigmoid()], seed=0)


def fit(model=net, x=X, y=Y, **kwargs):
    kwargs = {"loss": "log_likelihood", "verbose": 0, **kwargs}
    return lambda: model().fit(x, y, **kwargs)


def with_nan(a, where=(1, 0), value=np.nan):
    a = np.array(a, dtype=float)
    a[where] = value
    return a


def lr_set_to(value):
    opt = optim.SGD(0.1)
    opt.lr = value  # changed on the object after it was checked
    return opt


class CLIUsageError(Exception):
    """``main`` exited with status 2 and one line on stderr: the message is that line."""


def cli(*argv):
    def run():
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                status = main(list(argv))
            except SystemExit as exc:
                status = exc.code
        text = err.getvalue()
        assert status == 2, f"exit status {status}, stderr {text!r}"
        assert text.count("\n") == 1 and text.endswith("\n"), f"not one line: {text!r}"
        assert out.getvalue() == "", out.getvalue()
        raise CLIUsageError(text)

    return run


T = ["train", "--epochs", "1", "--limit", "20", "--test-limit", "20", "--quiet"]

# (id, call, exception, fragment of the message)
CASES = [
    # -- fit: X ------------------------------------------------------------------------------------------
    ("fit-X-1d", fit(x=X[:, 0]), ValueError, "Expected 2D array, got 1D array instead (argument 'X', shape (12,))"),
    ("fit-X-3d", fit(x=X[:, :, None]), ValueError, "Expected 2D array, got 3D array instead (argument 'X'"),
    ("fit-X-features", fit(x=X[:, :2]), ValueError, "X has 2 features, but the model expects 3"),
    ("fit-X-empty", fit(x=X[:0], y=Y[:0]), ValueError, "Found array with 0 sample(s) (shape=(0, 3))"),
    ("fit-X-no-features", fit(x=np.zeros((12, 0))), ValueError, "0 feature(s)"),
    ("fit-X-object", fit(x=X.astype(object)), TypeError, "argument 'X' must be a numeric array"),
    ("fit-X-str", fit(x=X.astype(str)), TypeError, "got dtype <U"),
    ("fit-X-complex", fit(x=X + 1j), TypeError, "argument 'X' must be a real-valued array"),
    ("fit-X-None", fit(x=None), TypeError, "argument 'X' must be a numeric array"),
    ("fit-X-ragged", fit(x=[[1, 2, 3], [1, 2]]), ValueError, "argument 'X' could not be converted"),
    ("fit-X-nan", fit(x=with_nan(X)), ValueError, "Argument 'X' must not contain NaN; found NaN at index (1, 0)"),
    ("fit-X-inf", fit(x=with_nan(X, value=np.inf)), ValueError, "'X' must be finite; found +inf at index (1, 0)"),
    ("fit-X-neginf", fit(x=with_nan(X, value=-np.inf)), ValueError, "found -inf at index (1, 0)"),
    ("fit-X-float32-overflow", fit(x=with_nan(X, value=1e300)), ValueError,
     "value too large for dtype('float32')"),
    # -- fit: y ------------------------------------------------------------------------------------------
    ("fit-length", fit(y=Y[:5]), ValueError, "inconsistent numbers of samples: [12, 5] (X: 12, y: 5)"),
    ("fit-y-empty", fit(y=Y[:0]), ValueError, "Found array with 0 sample(s) (shape=(0,))"),
    ("fit-y-3d", fit(y=ROWS[:, :, None]), ValueError, "Expected labels of shape (n,) or target rows of shape (n, 2)"),
    ("fit-y-0d", fit(y=np.int64(1)), ValueError, "got shape ()"),
    ("fit-y-object", fit(y=Y.astype(object)), TypeError, "argument 'y' must hold integer class indices (int64); got dtype object"),
    ("fit-y-str", fit(y=Y.astype(str), loss="quadratic"), TypeError, "argument 'y' must be a numeric array"),
    ("fit-labels-too-big", fit(y=Y + 1), ValueError,
     "'y' contains values out of range for 2 classes: found 2 at index 1; expected class indices in [0, 2)"),
    ("fit-labels-negative", fit(y=Y - 1), ValueError, "'y' contains negative values: found -1 at index 0"),
    ("fit-labels-not-integer", fit(y=Y + 0.5), ValueError, "must hold integer class indices; found non-integer value 0.5"),
    ("fit-labels-nan", fit(y=with_nan(Y, 3)), ValueError, "found non-integer value nan at index 3"),
    ("fit-labels-quadratic", fit(y=Y + 3, loss="quadratic"), ValueError, "out of range for 2 classes"),
    ("fit-not-one-hot", fit(y=np.full((12, 2), 0.5)), ValueError,
     "needs integer class labels or one-hot rows (one 1, the rest 0) in 'y'; row 0 is [0.5, 0.5]"),
    ("fit-two-hot", fit(y=np.ones((12, 2))), ValueError, "row 0 is [1.0, 1.0]"),
    ("fit-one-hot-width", fit(y=np.eye(3)[Y]), ValueError, "one-hot 'y' has 3 columns but the network has 2 outputs"),
    ("fit-y-nan-rows", fit(y=with_nan(ROWS), loss="quadratic"), ValueError, "'y' must not contain NaN"),
    ("fit-y-inf-rows", fit(y=with_nan(ROWS, value=np.inf), loss="mse"), ValueError, "'y' must be finite; found +inf"),
    ("fit-bce-above-1", fit(sig, y=ROWS * 2, loss="cross_entropy"), ValueError,
     "'y' must contain cross-entropy targets in [0, 1]; found 2.0 at index (0, 0)"),
    ("fit-bce-negative", fit(sig, y=ROWS - 0.5, loss="cross_entropy"), ValueError, "found -0.5 at index (0, 1)"),
    ("fit-float-targets-width", fit(y=np.full(12, 0.5), loss="quadratic"), ValueError,
     "float targets 'y' of shape (12,) need a network with 1 output, this one has 2"),
    # -- fit: hyperparameters and names ------------------------------------------------------------------
    ("fit-unknown-loss", fit(loss="hinge"), ValueError, "unknown loss 'hinge'; valid losses are quadratic"),
    ("fit-unknown-optimizer", fit(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'; valid optimizers are sgd"),
    ("fit-lr-zero", lambda: net().fit(X, Y, optimizer=optim.SGD(0)), ValueError,
     "lr must be a finite number in (0, inf), got 0.0"),
    ("SGD-lr-negative", lambda: optim.SGD(-0.1), ValueError, "lr must be a finite number in (0, inf), got -0.1"),
    ("Adam-lr-nan", lambda: optim.Adam(float("nan")), ValueError, "lr must be a finite number in (0, inf), got nan"),
    ("RMSprop-lr-inf", lambda: optim.RMSprop(float("inf")), ValueError, "got inf"),
    ("SGD-lr-str", lambda: optim.SGD("fast"), TypeError, "lr must be a real number, got str 'fast'"),
    ("get-lr-zero", lambda: optim.get("adam", lr=0), ValueError, "lr must be a finite number in (0, inf)"),
    ("fit-lr-changed-to-nan", fit(optimizer=lr_set_to(float("nan"))), ValueError, "optimizer.lr == nan, must be finite"),
    ("fit-lr-changed-to-negative", fit(optimizer=lr_set_to(-1.0)), ValueError, "optimizer.lr == -1.0, must be > 0.0"),
    ("SGD-momentum-1", lambda: optim.SGD(0.1, momentum=1.0), ValueError, "momentum must be a finite number in [0, 1)"),
    ("Adam-beta2", lambda: optim.Adam(betas=(0.9, 1.0)), ValueError, "beta2 must be a finite number in [0, 1)"),
    ("Adam-eps-0", lambda: optim.Adam(eps=0), ValueError, "eps must be a finite number in (0, inf)"),
    ("fit-batch-0", fit(batch_size=0), ValueError, "batch_size == 0, must be >= 1"),
    ("fit-batch-negative", fit(batch_size=-8), ValueError, "batch_size == -8, must be >= 1"),
    ("fit-batch-float", fit(batch_size=2.5), TypeError, "batch_size must be an instance of int, not float"),
    ("fit-batch-nan", fit(batch_size=float("nan")), TypeError, "batch_size must be an instance of int, not float"),
    ("fit-batch-inf", fit(batch_size=float("inf")), TypeError, "batch_size must be an instance of int"),
    ("fit-batch-str", fit(batch_size="32"), TypeError, "batch_size must be an instance of int, not str"),
    ("fit-epochs-negative", fit(epochs=-1), ValueError, "epochs == -1, must be >= 0"),
    ("fit-l2-nan", fit(l2=float("nan")), ValueError, "l2 == nan, must be finite"),
    ("fit-clip-0", fit(clip_norm=0.0), ValueError, "clip_norm == 0.0, must be > 0.0"),
    ("fit-seed-negative", fit(seed=-1), ValueError, "seed must be None, an int >= 0 or a numpy.random.Generator, got -1"),
    ("fit-seed-str", fit(seed="abc"), TypeError, "seed must be None, an int seed or a numpy.random.Generator, got str"),
    ("fit-augment", fit(augment=3), TypeError, "augment must be callable"),
    ("fit-batchnorm-batch-of-1", fit(lambda: Sequential([Dense(3, 4), BatchNorm(4), Dense(4, 2), Softmax()]),
                                     batch_size=11), ValueError,
     "BatchNorm needs at least 2 samples per batch in training, but batch_size=11 with 12 samples leaves a batch of 1"),
    ("fit-val-pair", fit(validation_data=(X,)), ValueError, "validation_data must be a pair (X_val, y_val)"),
    ("fit-val-nan", fit(validation_data=(with_nan(X), Y)), ValueError, "Argument 'X_val' must not contain NaN"),
    ("fit-val-length", fit(validation_data=(X, Y[:3])), ValueError, "(X_val: 12, y_val: 3)"),
    ("fit-val-labels", fit(validation_data=(X, Y + 5)), ValueError, "'y_val' contains values out of range for 2 classes"),
    ("fit-checkpoint-dir", fit(checkpoint="/no/such/dir/ck.npz"), ValueError,
     "checkpoint='/no/such/dir/ck.npz': directory /no/such/dir does not exist"),
    ("fit-checkpoint-type", fit(checkpoint=3), TypeError, "checkpoint must be a file path (str or os.PathLike), got int"),
    ("fit-checkpoint-every-0", fit(checkpoint_every=0), ValueError, "checkpoint_every == 0, must be >= 1"),
    ("fit-resume-nothing", fit(resume=True), ValueError, "resume=True needs the training state of an earlier run"),
    # -- predict -----------------------------------------------------------------------------------------
    ("predict-1d", lambda: net().predict(X[0]), ValueError,
     "Expected 2D array, got 1D array instead (argument 'X', shape (3,)). Reshape your data"),
    ("predict-features", lambda: net().predict(X[:, :2]), ValueError, "X has 2 features, but the model expects 3"),
    ("predict-nan", lambda: net().predict(with_nan(X)), ValueError, "found NaN at index (1, 0)"),
    ("predict-inf", lambda: net().predict(with_nan(X, value=np.inf)), ValueError, "found +inf at index (1, 0)"),
    ("predict-empty", lambda: net().predict(np.zeros((0, 3))), ValueError, "Found array with 0 sample(s)"),
    ("predict-object", lambda: net().predict(X.astype(object)), TypeError,
     "argument 'X' must be a numeric array (any real dtype, converted to float32); got dtype object"),
    ("predict-bytes", lambda: net().predict(X.astype("S4")), TypeError, "got dtype |S4"),
    ("predict-batch-0", lambda: net().predict(X, batch_size=0), ValueError, "batch_size == 0, must be >= 1"),
    ("predict-batch-float", lambda: net().predict(X, batch_size=1.5), TypeError, "batch_size must be an instance of int"),
    # -- evaluate ----------------------------------------------------------------------------------------
    ("evaluate-no-loss", lambda: net().evaluate(X, Y), ValueError, "no loss given and the model has not been fit"),
    ("evaluate-unknown-loss", lambda: net().evaluate(X, Y, loss="hinge"), ValueError, "unknown loss 'hinge'"),
    ("evaluate-length", lambda: net().evaluate(X, Y[:3], loss="log_likelihood"), ValueError,
     "inconsistent numbers of samples: [12, 3]"),
    ("evaluate-labels", lambda: net().evaluate(X, Y + 2, loss="log_likelihood"), ValueError, "out of range for 2 classes"),
    ("evaluate-negative", lambda: net().evaluate(X, -Y, loss="log_likelihood"), ValueError, "contains negative values"),
    ("evaluate-y-nan", lambda: net().evaluate(X, with_nan(ROWS), loss="quadratic"), ValueError, "'y' must not contain NaN"),
    ("evaluate-X-nan", lambda: net().evaluate(with_nan(X), Y, loss="quadratic"), ValueError, "'X' must not contain NaN"),
    ("evaluate-features", lambda: net().evaluate(X[:, :1], Y, loss="quadratic"), ValueError, "X has 1 features"),
    ("evaluate-bce", lambda: sig().evaluate(X, ROWS + 1, loss="cross_entropy"), ValueError,
     "cross-entropy targets in [0, 1]; found 2.0"),
    ("evaluate-y-str", lambda: net().evaluate(X, Y.astype(str), loss="quadratic"), TypeError, "must be a numeric array"),
    # -- Sequential construction and layers ----------------------------------------------------------------
    ("Sequential-empty", lambda: Sequential([]), ValueError, "Sequential needs at least one layer, got an empty list"),
    ("Sequential-not-a-list", lambda: Sequential(5), TypeError, "layers must be a list of fastnn.layers.Layer, got int"),
    ("Sequential-not-a-layer", lambda: Sequential([Dense(3, 4), "relu"]), TypeError,
     "layer 1 is a str, not a fastnn.layers.Layer"),
    ("Sequential-mismatch", lambda: Sequential([Dense(3, 4), ReLU(), Dense(5, 2)]), ValueError,
     "layer 2 (Dense(n_in=5, n_out=2, init='normalized')) expects 5 inputs but the layers before it give 4"),
    ("Sequential-prelu-mismatch", lambda: Sequential([Dense(3, 4), PReLU(3)]), ValueError,
     "expects 3 inputs but the layers before it give 4"),
    ("Sequential-dtype", lambda: Sequential([Dense(3, 4)], dtype="float16"), ValueError,
     "dtype must be 'float32' or 'float64', got 'float16'"),
    ("Sequential-same-layer", lambda: (lambda d: Sequential([d, d]))(Dense(3, 3)), ValueError,
     "the same layer object appears twice"),
    ("Sequential-seed", lambda: Sequential([Dense(3, 4)], seed=-2), ValueError, "seed must be None, an int >= 0"),
    ("Dense-zero", lambda: Dense(0, 3), ValueError, "n_in must be a positive integer, got 0"),
    ("Dense-float", lambda: Dense(3, 2.5), ValueError, "n_out must be a positive integer, got 2.5"),
    ("Dropout-1", lambda: Dropout(1.0), ValueError, "Dropout probability p must be in [0, 1), got 1.0"),
    ("Dropout-negative", lambda: Dropout(-0.1), ValueError, "Dropout probability p must be in [0, 1), got -0.1"),
    ("Dropout-nan", lambda: Dropout(float("nan")), ValueError, "Dropout probability p must be in [0, 1), got nan"),
    ("Dropout-str", lambda: Dropout("half"), TypeError, "p must be a real number, got str 'half'"),
    ("LeakyReLU-nan", lambda: LeakyReLU(float("nan")), ValueError, "slope must be finite, got nan"),
    ("BatchNorm-momentum", lambda: BatchNorm(3, momentum=2.0), ValueError, "BatchNorm momentum must be in [0, 1], got 2.0"),
    # -- unknown names -----------------------------------------------------------------------------------
    ("unknown-initializer", lambda: Dense(3, 4, init="glorot"), ValueError,
     "unknown initializer 'glorot'; valid initializers are large, normalized, xavier"),
    ("unknown-layer", lambda: layer_from_config("Conv2D", {}), ValueError,
     "unknown layer type 'Conv2D'; known layers are Dense"),
    ("unknown-optimizer", lambda: optim.get("lbfgs"), ValueError, "unknown optimizer 'lbfgs'"),
    ("unknown-backend-set", lambda: fastnn.set_backend("cuda"), ValueError,
     "unknown backend 'cuda'; valid backends are numpy, numba, cython"),
    ("unknown-backend-use", lambda: fastnn.use_backend("torch").__enter__(), ValueError, "unknown backend 'torch'"),
    ("unknown-backend-model", lambda: Sequential([Dense(3, 4)], backend="gpu"), ValueError, "unknown backend 'gpu'"),
    ("unknown-backend-load", lambda: fastnn.load("/no/such/model.npz", backend="gpu"), ValueError,
     "unknown backend 'gpu'"),
    ("unknown-loss-functional", lambda: F.loss("hinge", [0.5], [1.0]), ValueError, "Unknown loss 'hinge'. Valid loss"),
    ("unknown-activation", lambda: F.activation("swish", [1.0]), ValueError, "Unknown activation 'swish'"),
    # -- the functional API ------------------------------------------------------------------------------
    ("F-softmax-str", lambda: F.softmax(np.array(["a", "b"])), TypeError, "argument 'x' must be a numeric array"),
    ("F-softmax-nan", lambda: F.softmax([[1.0, np.nan]]), ValueError, "found NaN at index (0, 1)"),
    ("F-softmax-posinf", lambda: F.softmax([[1.0, np.inf]]), ValueError, "found +inf at index (0, 1)"),
    ("F-softmax-empty", lambda: F.softmax(np.zeros((2, 0))), ValueError, "0 feature(s)"),
    ("F-softmax-0d", lambda: F.softmax(1.0), ValueError, "Expected at least 1D array, got 0D array"),
    ("F-softmax-axis", lambda: F.softmax(np.ones((2, 3)), axis=2), ValueError, "axis"),
    ("F-sigmoid-object", lambda: F.sigmoid(np.array([1, None], dtype=object)), TypeError, "must be a numeric array"),
    ("F-sigmoid-complex", lambda: F.sigmoid(np.ones(2, complex)), TypeError, "real-valued array"),
    ("F-relu-inf", lambda: F.relu([1.0, -np.inf]), ValueError, "found -inf at index 1"),
    ("F-leaky-slope", lambda: F.leaky_relu([1.0], slope=float("nan")), ValueError, "slope == nan, must be finite"),
    ("F-maxout-pieces", lambda: F.maxout(np.ones((2, 5)), 2), ValueError, "multiple of pieces=2"),
    ("F-backward-shapes", lambda: F.sigmoid_backward(np.ones((2, 3)), np.ones((3, 2))), ValueError,
     "inconsistent shapes: z (2, 3) and grad (3, 2)"),
    ("F-nll-too-big", lambda: F.nll(np.full((2, 3), 1 / 3), [0, 3]), ValueError,
     "'labels' contains values out of range for 3 classes: found 3 at index 1"),
    ("F-nll-negative", lambda: F.nll(np.full((2, 3), 1 / 3), [0, -1]), ValueError,
     "'labels' contains negative values: found -1 at index 1"),
    ("F-nll-length", lambda: F.nll(np.full((2, 3), 1 / 3), [0, 1, 2]), ValueError, "inconsistent numbers of samples: [2, 3]"),
    ("F-nll-not-probabilities", lambda: F.nll([[0.5, 1.5]], [0]), ValueError, "'a' must contain probabilities in [0, 1]"),
    ("F-sce-one-hot", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.eye(3)[:2]), ValueError,
     "Expected 1D array of labels, got 2D array instead (argument 'labels', shape (2, 3))"),
    ("F-sce-float-labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), [0.5, 1]), ValueError, "non-integer value 0.5"),
    ("F-sce-str-labels", lambda: F.softmax_cross_entropy(np.zeros((2, 3)), ["a", "b"]), TypeError,
     "'labels' must hold integer class indices"),
    ("F-bce-targets", lambda: F.binary_cross_entropy([0.5, 0.5], [0.0, 2.0]), ValueError,
     "'y' must contain targets in [0, 1]; found 2.0 at index 1"),
    ("F-bce-logits-targets", lambda: F.binary_cross_entropy_with_logits([3.0, -1.0], [-0.1, 1.0]), ValueError,
     "targets in [0, 1]; found -0.1"),
    ("F-quadratic-length", lambda: F.quadratic(np.zeros(3), np.zeros(4)), ValueError,
     "inconsistent numbers of samples: [3, 4] (a: 3, y: 4)"),
    ("F-quadratic-shape", lambda: F.quadratic(np.zeros((3, 2)), np.zeros((3, 1))), ValueError,
     "inconsistent shapes: a (3, 2) and y (3, 1)"),
    ("F-quadratic-3d", lambda: F.quadratic(np.zeros((3, 2, 1)), np.zeros((3, 2, 1))), ValueError, "Expected 1D or 2D array"),
    ("F-dense-features", lambda: F.dense_forward(np.zeros((2, 3)), np.zeros((4, 2))), ValueError,
     "x has 3 features, but w expects 4 input features"),
    ("F-dense-1d", lambda: F.dense_forward(np.zeros(3), np.zeros((3, 2))), ValueError, "argument 'x', shape (3,)"),
    ("F-dense-bias", lambda: F.dense_forward(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(3)), ValueError,
     "b must have shape (2,)"),
    ("F-dense-backward", lambda: F.dense_backward(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros((5, 2))), ValueError,
     "(x: 2, grad: 5)"),
    # -- the command line: exit status 2 and one line -----------------------------------------------------
    ("cli-lr-zero", cli(*T, "--lr", "0"), CLIUsageError, "argument --lr: expected a number in (0, inf), got '0'"),
    ("cli-lr-nan", cli(*T, "--lr", "nan"), CLIUsageError, "argument --lr: expected a number in (0, inf), got 'nan'"),
    ("cli-batch-0", cli(*T, "--batch-size", "0"), CLIUsageError, "argument --batch-size: expected a positive integer or 'full'"),
    ("cli-epochs-0", cli("train", "--epochs", "0"), CLIUsageError, "argument --epochs: expected a positive integer, got '0'"),
    ("cli-dropout-1", cli(*T, "--dropout", "1"), CLIUsageError, "argument --dropout: expected a number in [0, 1), got '1'"),
    ("cli-seed-negative", cli(*T, "--seed", "-1"), CLIUsageError, "argument --seed: expected an integer >= 0, got '-1'"),
    ("cli-activation", cli(*T, "--activation", "swish"), CLIUsageError, "argument --activation: invalid choice: 'swish'"),
    ("cli-loss", cli(*T, "--loss", "hinge"), CLIUsageError, "argument --loss: invalid choice: 'hinge'"),
    ("cli-optimizer", cli(*T, "--optimizer", "lbfgs"), CLIUsageError, "argument --optimizer: invalid choice: 'lbfgs'"),
    ("cli-init", cli(*T, "--init", "glorot"), CLIUsageError, "argument --init: invalid choice: 'glorot'"),
    ("cli-backend", cli(*T, "--backend", "cuda"), CLIUsageError, "argument --backend: invalid choice: 'cuda'"),
    ("cli-dtype", cli(*T, "--dtype", "float16"), CLIUsageError, "argument --dtype: invalid choice: 'float16'"),
    ("cli-layers-text", cli(*T, "--layers", "784,x,10"), CLIUsageError, "argument --layers: expected comma-separated integers"),
    ("cli-layers-inputs", cli(*T, "--layers", "100,10"), CLIUsageError,
     "--layers starts with 100 inputs but the data has 784 features"),
    ("cli-layers-outputs", cli(*T, "--layers", "784,30,5"), CLIUsageError,
     "--layers ends with 5 outputs but the data has 10 classes"),
    ("cli-data", cli(*T, "--data", "no-such-dataset"), CLIUsageError, "expected mnist, fashion-mnist or a directory"),
    ("cli-unknown-option", cli(*T, "--bogus"), CLIUsageError, "unrecognized arguments: --bogus"),
    ("cli-batchnorm-batch-of-1", cli(*T, "--limit", "21", "--batch-size", "10", "--batch-norm"), CLIUsageError,
     "BatchNorm needs at least 2 samples per batch in training, but batch_size=10 with 21 samples leaves a batch of 1"),
]


class Tripwire:
    """Stands in for a backend's kernel namespace: touching any kernel fails the test."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, kernel):
        raise AssertionError(f"kernel {self._name}.{kernel} ran before the input was rejected")


@pytest.fixture
def no_kernels(monkeypatch, restore_backend):
    """Every backend's kernels replaced by tripwires (loaded first, so the import itself still works)."""
    for name in backend.available_backends():
        monkeypatch.setitem(backend._loaded, name, Tripwire(name))


@pytest.mark.parametrize("call, error, fragment", [pytest.param(*row[1:], id=row[0]) for row in CASES])
def test_bad_input_is_rejected_before_any_kernel_with_a_clear_message(no_kernels, call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)
