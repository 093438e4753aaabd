"""The command line: ``python -m fastnn train ...``, ``python -m fastnn demo`` and
``python -m fastnn export model.npz model.onnx``.

Exit status: 0 on success, 2 for a bad option (one line on stderr, as argparse does), 1 when training
itself fails (e.g. it diverged), a data, model or checkpoint file is bad or missing, or an optional
package is not installed, 130 on Ctrl-C.

Progress is reported per epoch; ``--progress batch`` also redraws the line as the batches of an epoch are
applied, from the compiled epoch's progress counter (``Callback.on_progress``), so it costs nothing.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["main", "build_parser"]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "softplus", "identity")
OUTPUTS = ("auto", "sigmoid", "softmax", "identity", "exp")
LOSSES = ("cross_entropy", "quadratic", "mse", "log_likelihood", "poisson")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
INITS = ("normalized", "large", "xavier", "he")
DATASETS = ("mnist", "fashion-mnist")
TABLE_FILES = (".csv", ".tsv", ".txt", ".npz")  # --data files: CSV text, or NumPy archives of X and y
TASKS = ("classification", "regression")
# Default learning rate per optimizer: the seeds' eta 0.5 for SGD with cross-entropy, else the usual.
DEFAULT_LR = {"sgd": 0.5, "adam": 0.001, "adamw": 0.001, "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``fastnn train: error: ... (see --help)``, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class _Formatter(argparse.HelpFormatter):
    """Appends "(default: ...)" to options whose help does not state a default and whose default means something."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or not action.option_strings or any(action.default is v for v in (None, False, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


# --- argument types: each raises ArgumentTypeError, which argparse turns into one line and status 2 ---


def _layer_sizes(text):
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 784,30,10, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two sizes >= 1 like 784,30,10, got {text!r}")
    return sizes


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _batch_size(text):
    if text.lower() == "full":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'full', got {text!r}") from None


def _number(low=None, high=None, low_open=False, high_open=True):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        bad = not math.isfinite(value)
        if low is not None:
            bad |= value <= low if low_open else value < low
        if high is not None:
            bad |= value >= high if high_open else value > high
        if bad:
            lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}, "
            hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
            raise argparse.ArgumentTypeError(f"expected a number in {lo}{hi}, got {text!r}")
        return value

    return parse


def _data(text):
    if text.lower() in DATASETS:
        return text.lower()
    if os.path.isdir(text) or (os.path.isfile(text) and text.lower().endswith(TABLE_FILES)):
        return text
    missing = " (no such file)" if text.lower().endswith(TABLE_FILES) else ""
    raise argparse.ArgumentTypeError(
        f"expected mnist, fashion-mnist or a directory of IDX files, or a .csv/.tsv/.txt/.npz file, got {text!r}{missing}")


def _column(text):
    """A --target column: an integer index (e.g. 0 or -1) or a name."""
    try:
        return int(text)
    except ValueError:
        return text


def _delimiter(text):
    text = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(text) != 1:
        raise argparse.ArgumentTypeError(f"expected one character (or 'tab'), got {text!r}")
    return text


def _writable_file(text):
    directory = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"directory {directory} does not exist (for {text!r})")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a file name")
    return text


# --- the parser ---------------------------------------------------------------------------------------


def _add_common(p, epochs):
    """Options shared by train and demo."""
    p.add_argument("--epochs", type=_positive_int, default=epochs, metavar="N",
                   help="passes over the training data (default: %(default)s)")
    p.add_argument("--backend", choices=("numpy", "numba", "cython"), default=None,
                   help="kernel backend (default: cython when built, else numpy; env FASTNN_BACKEND)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="floating-point type of data, weights and arithmetic (default: %(default)s)")
    p.add_argument("--seed", type=_nonnegative_int, default=0,
                   help="seed of the initial weights, shuffling, dropout and augmentation (default: %(default)s)")
    p.add_argument("--limit", type=_positive_int, default=None, metavar="N",
                   help="train on the first N training samples only (default: all of them)")
    p.add_argument("--test-limit", type=_positive_int, default=None, metavar="N",
                   help="evaluate on the first N test samples only (default: all of them)")
    p.add_argument("--quiet", "-q", action="store_true", help="print only the final summary")
    p.add_argument("--progress", choices=("epoch", "batch"), default="epoch",
                   help="epoch: one line per epoch; batch: on a terminal, also redraw the line as the batches of an "
                   "epoch are applied (default: %(default)s)")


def build_parser():
    """The ``argparse`` parser of ``python -m fastnn`` (subcommands ``train``, ``demo`` and ``export``)."""
    from . import __version__

    parser = _Parser(
        prog="python -m fastnn",
        description="fastnn: train fully connected neural networks on the CPU (NumPy, Numba or Cython kernels).",
        epilog="Run `python -m fastnn train --help` for the training options.",
    )
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,demo,export}")

    train = sub.add_parser(
        "train",
        help="train a network on MNIST, Fashion-MNIST, a directory of IDX files or a CSV/.npz table",
        description="Train a fully connected network and report its test accuracy (or, with --task "
        "regression, its test mse, mae and r2). Data: `mnist` is the MNIST test set shipped with fastnn "
        "(8,000 train / 2,000 test) unless FASTNN_DATA names a directory of the full MNIST IDX files; "
        "`fashion-mnist` is /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist); a DIR "
        "holds train-/t10k- IDX files (plain or .gz); a .csv/.tsv/.txt file is a table of numeric features "
        "and a --target column (class labels may be text), a .npz file holds arrays X and y. A table is "
        "split at random (--seed) into training rows and --test-size test rows.",
        formatter_class=_Formatter,
    )
    train.add_argument("--data", type=_data, default="mnist", metavar="{mnist,fashion-mnist,DIR,FILE}",
                       help="the dataset")
    train.add_argument("--target", type=_column, default=None, metavar="COLUMN",
                       help="the target column of a CSV file: its name, or its index such as 0 or -1 (default: "
                       "the last column)")
    train.add_argument("--task", choices=TASKS, default="classification",
                       help="classification: each target value is a class; regression: numeric targets, an identity "
                       "output, the mse loss, and test mse, mae and r2 reported")
    train.add_argument("--delimiter", type=_delimiter, default=None, metavar="CHAR",
                       help="the field separator of a CSV file, or 'tab' (default: tab for .tsv, else a comma)")
    train.add_argument("--no-header", action="store_true", help="the CSV file has no header line")
    train.add_argument("--test-size", type=_number(0, 1, low_open=True), default=None, metavar="FRACTION",
                       help="the fraction of a CSV/.npz table held out as the test set (default: 0.2)")
    train.add_argument("--standardize", action="store_true",
                       help="train on features scaled to mean 0 and variance 1 (training-set statistics); the "
                       "scaling is then folded into the first layer, so the --save model takes unscaled features "
                       "(--checkpoint files hold the network as trained, on scaled features)")
    train.add_argument("--layers", type=_layer_sizes, default=None, metavar="SIZES",
                       help="layer sizes, comma-separated: inputs, hidden layers, outputs (default: the data's "
                       "features, 30, its classes; 784,30,10 for MNIST)")
    train.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid", help="hidden-layer activation")
    train.add_argument("--output", choices=OUTPUTS, default="auto",
                       help="output activation; auto: softmax for log_likelihood, exp for poisson, identity for "
                       "--task regression, else sigmoid")
    train.add_argument("--loss", choices=LOSSES, default=None,
                       help="cost function (default: cross_entropy; mse with --task regression; poisson: counts "
                       ">= 0, --task regression)")
    train.add_argument("--init", choices=INITS, default="normalized",
                       help="weight initialization: normalized N(0,1/n_in), large N(0,1), xavier, he")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="optimizer")
    train.add_argument("--lr", type=_number(0, None, low_open=True), default=None,
                       help="learning rate (default: 0.5 for sgd, 0.001 for adam/adamw/rmsprop, "
                       "0.01 for adagrad, 1.0 for adadelta)")
    train.add_argument("--momentum", type=_number(0, 1), default=0.0, help="SGD momentum, in [0, 1)")
    train.add_argument("--nesterov", action="store_true", help="Nesterov momentum (SGD with --momentum > 0)")
    train.add_argument("--batch-size", type=_batch_size, default=10, metavar="N",
                       help="mini-batch size; 1 is stochastic, 'full' is full-batch gradient descent")
    train.add_argument("--l1", type=_number(0), default=0.0, help="L1 strength lambda: adds lambda/n * sum|w| over the weights (not biases)")
    train.add_argument("--l2", type=_number(0), default=0.0, help="L2 strength lambda: adds lambda/(2n) * sum w^2 over the weights (not biases)")
    train.add_argument("--clip-norm", type=_number(0, None, low_open=True), default=None, metavar="NORM",
                       help="clip the global gradient norm to NORM before every step (default: no clipping)")
    train.add_argument("--dropout", type=_number(0, 1), default=0.0, metavar="P",
                       help="dropout probability after each hidden activation, in [0, 1)")
    train.add_argument("--batch-norm", action="store_true", help="batch normalization before each hidden activation")
    train.add_argument("--augment", action="store_true",
                       help="expand the training data each epoch with random shifts and rotations")
    train.add_argument("--max-shift", type=_nonnegative_int, default=2, metavar="PIXELS", help="largest shift with --augment")
    train.add_argument("--max-angle", type=_number(0, 180, high_open=False), default=10.0, metavar="DEGREES",
                       help="largest rotation with --augment")
    train.add_argument("--no-validate", action="store_true",
                       help="do not evaluate on the test set after every epoch (only at the end)")
    _add_common(train, epochs=30)
    train.set_defaults(parser=train)
    train.add_argument("--save", type=_writable_file, default=None, metavar="PATH",
                       help="save the trained model (architecture, weights, optimizer state) to PATH (.npz)")
    train.add_argument("--json", type=_writable_file, default=None, metavar="PATH",
                       help="write a JSON summary (options, per-epoch metrics, test result) to PATH")
    train.add_argument("--plot", type=_writable_file, default=None, metavar="PATH",
                       help="draw the learning curves (loss and accuracy per epoch) to PATH: .png, .svg or .pdf "
                       "(needs matplotlib: pip install \"fastnn-cpu[plot]\")")
    train.add_argument("--checkpoint", type=_writable_file, default=None, metavar="PATH",
                       help="save the model, optimizer and training state to PATH (.npz) every --checkpoint-every "
                       "epochs and after the last one, atomically (default: no checkpoints)")
    train.add_argument("--checkpoint-every", type=_positive_int, default=1, metavar="N",
                       help="epochs between checkpoints")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --checkpoint PATH up to --epochs in total, ending with the "
                       "weights of the uninterrupted run; give the options of the run that wrote it")

    demo = sub.add_parser(
        "demo",
        help="train a small network on the embedded MNIST digits and print its test accuracy",
        description="Train a 784-30-10 sigmoid network (cross-entropy, SGD eta 0.5, mini-batches of 10) on "
        "8,000 embedded MNIST digits, report its accuracy on 2,000 held-out digits and show three of them.",
        formatter_class=_Formatter,
    )
    _add_common(demo, epochs=10)
    demo.set_defaults(parser=demo)

    export = sub.add_parser(
        "export",
        help="write a saved model as an ONNX file",
        description="Write a model saved by fastnn (train --save, fastnn.save) as an ONNX file that ONNX Runtime "
        "or any other ONNX runtime runs: input 'input' (batch, features), output 'output' (batch, outputs), "
        "the model's dtype. Needs the onnx package: pip install \"fastnn-cpu[onnx]\".",
        formatter_class=_Formatter,
    )
    export.add_argument("model", help="the fastnn model file (.npz)")
    export.add_argument("output", type=_writable_file, help="the ONNX file to write (replaced atomically)")
    export.add_argument("--opset", type=_positive_int, default=17, help="the ONNX operator set version, 13 or newer")
    export.set_defaults(parser=export)
    return parser


# --- progress -----------------------------------------------------------------------------------------


def _make_progress(stream, quiet, per_batch=False):
    """A fit callback printing one line per epoch: a bar of the epochs done, seconds, samples/s, training
    loss and accuracy, test loss and accuracy. With ``per_batch`` on a terminal, the line is also redrawn
    with a carriage return as the epoch's batches are applied (``on_progress``)."""
    from .training import Callback

    tty = hasattr(stream, "isatty") and stream.isatty()

    class Progress(Callback):
        width = 20

        def on_train_begin(self, logs=None):
            logs = logs or {}
            self.epochs = logs.get("epochs", 0)
            self.samples = logs.get("samples", 0)
            self.batches = logs.get("batches", 0)
            self.tty = tty

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_start = time.perf_counter()

        def _head(self, done):
            """``epoch  3/30 [===       ]`` with ``done`` epochs (a float) of the total filled."""
            filled = int(round(self.width * done / self.epochs)) if self.epochs else self.width
            k = str(self.epoch + 1).rjust(len(str(self.epochs)))
            return f"epoch {k}/{self.epochs} [" + "=" * filled + " " * (self.width - filled) + "]"

        def on_epoch_end(self, epoch, logs=None):
            if quiet:
                return
            logs = logs or {}
            seconds = logs.get("seconds") or (time.perf_counter() - self.epoch_start)
            rate = self.samples / seconds if seconds > 0 else float("nan")
            parts = [self._head(epoch + 1), f"{seconds:6.2f}s", f"{rate:9,.0f} samples/s",
                     f"loss {logs.get('loss', float('nan')):.4f}"]
            if _finite(logs.get("accuracy")):
                parts.append(f"acc {logs['accuracy']:.4f}")
            if logs.get("val_loss") is not None:
                parts.append(f"test loss {logs['val_loss']:.4f}")
            if _finite(logs.get("val_accuracy")):
                parts.append(f"test acc {logs['val_accuracy']:.4f}")
            # \r plus clear-to-end-of-line replaces a partial bar drawn by on_progress.
            stream.write(("\r\x1b[K" if self.tty else "") + "  ".join(parts) + "\n")
            stream.flush()

    class BatchProgress(Progress):
        def on_progress(self, epoch, batches_done, logs=None):
            if not self.batches:
                return
            fraction = batches_done / self.batches
            elapsed = time.perf_counter() - self.epoch_start
            rate = fraction * self.samples / elapsed if elapsed > 0 else 0.0
            stream.write(f"\r{self._head(self.epoch + fraction)} {fraction:4.0%} of epoch  {rate:9,.0f} samples/s")
            stream.flush()

    return BatchProgress() if per_batch and tty and not quiet else Progress()


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


# --- building and running -------------------------------------------------------------------------------


def _activation(name, width):
    from . import layers

    return {
        "sigmoid": layers.Sigmoid, "tanh": layers.Tanh, "relu": layers.ReLU, "softplus": layers.Softplus,
        "identity": layers.Identity, "softmax": layers.Softmax, "exp": layers.Exp,
        "leaky_relu": lambda: layers.LeakyReLU(0.01), "prelu": lambda: layers.PReLU(width),
    }[name]()


def build_model(sizes, activation="sigmoid", output="sigmoid", init="normalized", dropout=0.0,
                batch_norm=False, dtype="float32", seed=0, backend=None):
    """A ``Sequential`` of Dense layers of ``sizes`` with ``activation`` between them (optionally batch
    norm before it and dropout after it) and ``output`` after the last one; weights drawn from ``seed``."""
    from . import layers
    from .network import Sequential

    stack = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        stack.append(layers.Dense(n_in, n_out, init=init))
        if i == len(sizes) - 2:
            stack.append(_activation(output, n_out))
            break
        if batch_norm:
            stack.append(layers.BatchNorm(n_out))
        stack.append(_activation(activation, n_out))
        if dropout > 0:
            stack.append(layers.Dropout(dropout))
    return Sequential(stack, dtype=dtype, backend=backend, seed=seed)


def _load_data(args):
    """``((X_train, y_train), (X_test, y_test))`` and a ``Dataset`` describing a table (None for images)."""
    from . import datasets

    name, dtype = args.data, args.dtype
    if name == "embedded":
        return datasets.load_embedded_mnist(dtype), "embedded MNIST test set (8,000 train / 2,000 test)", None
    if name == "mnist":
        directory = os.environ.get("FASTNN_DATA")
        source = f"MNIST, {directory}" if directory else "embedded MNIST test set (8,000 train / 2,000 test)"
        return datasets.load_mnist(dtype=dtype), source, None
    if name == "fashion-mnist":
        return datasets.load_fashion_mnist(dtype=dtype), f"Fashion-MNIST, {datasets.FASHION_MNIST_DIR}", None
    if not name.lower().endswith(TABLE_FILES):
        return datasets.load_idx_directory(name, dtype=dtype), name, None
    if name.lower().endswith(".npz"):
        table = datasets.load_npz(name, task=args.task, dtype=dtype)
    else:
        delimiter = args.delimiter or ("\t" if name.lower().endswith(".tsv") else ",")
        target = -1 if args.target is None else args.target
        table = datasets.load_csv(name, target=target, delimiter=delimiter, header=not args.no_header,
                                  task=args.task, dtype=dtype)
    test_size = 0.2 if args.test_size is None else args.test_size
    split = datasets.split_train_test(table.X, table.y, test_size, seed=args.seed)
    return split, f"{name}, target {table.target_name!r}, {test_size:.0%} held out for testing", table


class _UsageError(Exception):
    """A semantic error in the options, found after parsing: reported like argparse's, status 2."""


def _check_options(args, n_features, n_outputs, table):
    """Refuse option combinations that cannot work, before any training (a _UsageError: exit status 2)."""
    if args.layers[0] != n_features:
        raise _UsageError(f"--layers starts with {args.layers[0]} inputs but the data has {n_features} features")
    if args.layers[-1] != n_outputs:
        outputs = f"{n_outputs} classes" if args.task == "classification" else f"{n_outputs} target column(s)"
        raise _UsageError(f"--layers ends with {args.layers[-1]} outputs but the data has {outputs}")
    if table is None:
        for option, value in (("--target", args.target), ("--delimiter", args.delimiter),
                              ("--no-header", args.no_header or None), ("--test-size", args.test_size)):
            if value is not None:
                raise _UsageError(f"{option} applies to a CSV or .npz file given with --data")
        if args.task == "regression":
            raise _UsageError(f"--task regression needs numeric targets from a CSV or .npz file; {args.data} holds classes")
    elif args.data.lower().endswith(".npz") and (args.target is not None or args.delimiter or args.no_header):
        raise _UsageError("--target, --delimiter and --no-header apply to CSV files; a .npz file holds arrays X and y")
    if args.task == "regression" and args.loss in ("cross_entropy", "log_likelihood"):
        raise _UsageError(f"--loss {args.loss} is for classes; with --task regression use --loss mse, quadratic or "
                          "poisson")
    if args.loss == "poisson" and args.task != "regression":
        raise _UsageError("--loss poisson is for counts: use it with --task regression")
    if args.optimizer != "sgd" and (args.momentum or args.nesterov):
        raise _UsageError("--momentum and --nesterov apply to --optimizer sgd only")
    if args.nesterov and not args.momentum:
        raise _UsageError("--nesterov needs --momentum > 0")
    if args.output == "softmax" and args.loss == "cross_entropy":
        raise _UsageError("--loss cross_entropy is the binary cross-entropy of sigmoid outputs; "
                          "with --output softmax use --loss log_likelihood")
    if args.resume and not args.checkpoint:
        raise _UsageError("--resume needs --checkpoint PATH, the checkpoint to continue from")


def _standardize(X_train, X_test):
    """Features scaled by the training rows' mean and standard deviation (1 where a feature is constant):
    ``(X_train', X_test', mean, scale)``, computed in float64 and returned in X's dtype."""
    mean = X_train.mean(axis=0, dtype=np.float64)
    scale = X_train.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    scaled = [((X - mean) / scale).astype(X.dtype) for X in (X_train, X_test)]
    return scaled[0], scaled[1], mean, scale


def _fold_standardization(model, mean, scale):
    """Make ``model`` take unscaled features: its first layer (Dense) absorbs x -> (x - mean) / scale,
    W <- W / scale[:, None] and b <- b - (mean / scale) @ W (in float64, then the model's dtype)."""
    W, b = (p.astype(np.float64) for p in model.layers[0].params)
    model.layers[0].set_state_arrays([W / scale[:, None], b - (mean / scale) @ W])


def _load_checkpoint(args, fresh, optimizer, backend):
    """The model of ``--checkpoint`` for ``--resume``, with its optimizer state and training state.

    It must hold the network, dtype, loss and optimizer settings that the options describe (``fresh``
    and ``optimizer`` are built from them): a resumed run is exact only when it goes on as the run that
    wrote the checkpoint did. Options the file does not record (--l1, --l2, --clip-norm, --augment...)
    cannot be checked; fit checks the number of samples and --batch-size."""
    import fastnn

    from . import losses

    path = args.checkpoint
    if not os.path.exists(path):
        raise FileNotFoundError(f"--resume: there is no checkpoint {path} to continue from")
    model = fastnn.load(path, backend=backend)
    hint = f"; resume with the options of the run that wrote {path}"
    saved, given = [repr(layer) for layer in model.layers], [repr(layer) for layer in fresh.layers]
    if saved != given:
        at = next((i for i, (a, b) in enumerate(zip(saved, given)) if a != b), min(len(saved), len(given)))
        raise _UsageError(
            f"--resume: the checkpoint's network differs from the options' at layer {at}: "
            f"{saved[at] if at < len(saved) else 'nothing'} in the checkpoint, "
            f"{given[at] if at < len(given) else 'nothing'} from the options{hint}"
        )
    if model.dtype != fresh.dtype:
        raise _UsageError(f"--resume: the checkpoint is {model.dtype.name}, the options say --dtype {args.dtype}{hint}")
    loss = losses.get(args.loss).name
    if model.loss is None or model.loss.name != loss:
        saved_loss = model.loss.name if model.loss is not None else "none"
        raise _UsageError(f"--resume: the checkpoint was trained with loss {saved_loss}, the options say {loss}{hint}")
    want = optimizer.state_dict()
    have = model.optimizer.state_dict() if model.optimizer is not None else {"type": "none", "config": {}}
    if (have["type"], have["config"]) != (want["type"], want["config"]):
        raise _UsageError(
            f"--resume: the checkpoint's optimizer is {have['type']} {have['config']}, the options give "
            f"{want['type']} {want['config']}{hint}"
        )
    return model


def run_train(args, out=sys.stdout):
    """Train as ``args`` (from :func:`build_parser`) says, printing progress to ``out``; returns the
    summary dict (what ``--json`` writes)."""
    import fastnn

    from . import optim
    from ._optional import require
    from .augment import Augment

    backend = args.backend or fastnn.get_backend()
    if args.plot:  # before training, not after it
        require("matplotlib", "plot", "--plot")
    (train, test), source, table = _load_data(args)
    X_train, y_train = train
    X_test, y_test = test
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    if args.test_limit:
        X_test, y_test = X_test[: args.test_limit], y_test[: args.test_limit]
    regression = args.task == "regression"
    if regression:
        n_outputs = 1 if y_train.ndim == 1 else y_train.shape[1]
    else:
        n_outputs = len(table.classes) if table is not None else int(max(y_train.max(), y_test.max())) + 1
    args.loss = args.loss or ("mse" if regression else "cross_entropy")
    args.layers = args.layers or [X_train.shape[1], 30, n_outputs]
    _check_options(args, X_train.shape[1], n_outputs, table)
    raw_X_test = X_test
    if args.standardize:
        X_train, X_test, mean, scale = _standardize(X_train, X_test)

    output = args.output
    if output == "auto":
        output = {"log_likelihood": "softmax", "poisson": "exp"}.get(args.loss, "identity" if regression else "sigmoid")
    model = build_model(args.layers, args.activation, output, args.init, args.dropout, args.batch_norm,
                        args.dtype, args.seed, backend)
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    if args.optimizer == "sgd":
        optimizer = optim.SGD(lr, momentum=args.momentum, nesterov=args.nesterov)
    else:
        optimizer = optim.get(args.optimizer, lr=lr)
    resumed_at = None
    if args.resume:
        model = _load_checkpoint(args, model, optimizer, backend)
        optimizer = None  # fit goes on with the checkpoint's optimizer and its state (momenta, moments)
        resumed_at = model.training_state["epoch"] if model.training_state else None
    augment = Augment(args.max_shift, args.max_angle) if args.augment else None

    arch = "-".join(str(s) for s in args.layers)
    batch = "full" if args.batch_size is None else args.batch_size
    extras = [f"l1 {args.l1:g}"] if args.l1 else []
    extras += [f"l2 {args.l2:g}"] if args.l2 else []
    extras += [f"clip norm {args.clip_norm:g}"] if args.clip_norm else []
    extras += [f"dropout {args.dropout:g}"] if args.dropout else []
    extras += ["batch norm"] if args.batch_norm else []
    extras += [repr(augment)] if augment else []
    if regression:
        targets = "a regression target" if n_outputs == 1 else f"{n_outputs} regression targets"
    else:
        labels = table.classes if table is not None else ()
        targets = f"{n_outputs} classes" + (f" ({', '.join(map(str, labels))})" if 0 < len(labels) <= 10 else "")
    if not args.quiet:
        print(f"data     {source}: {len(X_train):,} train, {len(X_test):,} test, {X_train.shape[1]} features"
              + (" (standardized)" if args.standardize else "") + f", {targets}", file=out)
        print(f"network  {arch} {args.activation}/{output}, {args.init} init, {args.loss} loss, "
              f"{args.optimizer} lr {lr:g}" + (f" momentum {args.momentum:g}" if args.momentum else "")
              + (" nesterov" if args.nesterov else "") + f", batch {batch}"
              + (", " + ", ".join(extras) if extras else ""), file=out)
        print(f"engine   backend {backend}, {args.dtype}, seed {args.seed}, {args.epochs} epoch"
              + ("s" if args.epochs != 1 else "")
              + (f", resuming after epoch {resumed_at} from {args.checkpoint}" if resumed_at is not None else "")
              + (f", checkpoint {args.checkpoint}" if args.checkpoint and not args.resume else ""), file=out)

    fit_kwargs = dict(
        loss=args.loss, optimizer=optimizer, epochs=args.epochs, batch_size=args.batch_size,
        validation_data=None if args.no_validate else (X_test, y_test), seed=args.seed,
        callbacks=[_make_progress(out, args.quiet, args.progress == "batch")], verbose=0,
    )
    if args.checkpoint:
        fit_kwargs.update(checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume)
    if args.l1:
        fit_kwargs["l1"] = args.l1
    if args.l2:
        fit_kwargs["l2"] = args.l2
    if augment is not None:
        fit_kwargs["augment"] = augment
    if args.clip_norm is not None:
        fit_kwargs["clip_norm"] = args.clip_norm
    start = time.perf_counter()
    history = model.fit(X_train, y_train, **fit_kwargs)
    seconds = time.perf_counter() - start
    if args.standardize:
        _fold_standardization(model, mean, scale)
    result = model.evaluate(raw_X_test, y_test, loss=args.loss)
    if regression:
        score = f"test mse {result['mse']:.4g}, mae {result['mae']:.4g}, r2 {result['r2']:.4f}"
    else:
        correct = int(round(result["accuracy"] * len(X_test)))
        score = f"test accuracy {result['accuracy']:.4f} ({correct:,}/{len(X_test):,}), test loss {result['loss']:.4f}"
    epoch_seconds = sum(history.seconds) if history.seconds else seconds
    print(f"{score}; {len(history)} epoch{'s' if len(history) != 1 else ''} in {seconds:.1f}s "
          f"({len(X_train) * len(history) / epoch_seconds:,.0f} samples/s training, backend {backend}, {args.dtype})",
          file=out)

    if getattr(args, "show_digits", 0):
        print(_ascii_digits(X_test[: args.show_digits], y_test, model.predict(X_test[: args.show_digits])), file=out)
    if args.save:
        fastnn.save(model, args.save)
        if not args.quiet:
            print(f"saved model to {args.save}" + (" (it takes unscaled features)" if args.standardize else ""), file=out)
    if args.plot:
        history.plot(args.plot, title=f"{arch} {args.activation}/{output}, {args.optimizer}, {os.path.basename(args.data)}")
        if not args.quiet:
            print(f"wrote learning curves to {args.plot}", file=out)
    summary = {
        "fastnn_version": fastnn.__version__,
        "data": source,
        "task": args.task,
        "target": table.target_name if table is not None else None,
        "classes": [str(c) for c in table.classes] if table is not None and table.classes is not None else None,
        "standardized": args.standardize,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "layers": args.layers,
        "activation": args.activation,
        "output": output,
        "loss": args.loss,
        "init": args.init,
        "optimizer": args.optimizer,
        "lr": lr,
        "momentum": args.momentum,
        "nesterov": args.nesterov,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "l1": args.l1,
        "l2": args.l2,
        "clip_norm": args.clip_norm,
        "dropout": args.dropout,
        "batch_norm": args.batch_norm,
        "augment": {"max_shift": augment.max_shift, "max_angle_deg": augment.max_angle_deg} if augment else None,
        "backend": backend,
        "dtype": args.dtype,
        "seed": args.seed,
        "history": history.to_dict(),
        "test": {name: float(value) for name, value in result.items()},
        "seconds": seconds,
        "saved_model": args.save,
        # Whether fit ran each epoch as one compiled call (fastnn.fused) or layer by layer.
        "fused": getattr(model, "fused_runner", None) is not None,
        "checkpoint": args.checkpoint,
        "resumed_after_epoch": resumed_at,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2, allow_nan=False, default=_json_default)
            f.write("\n")
        if not args.quiet:
            print(f"wrote summary to {args.json}", file=out)
    return summary


def _ascii_digits(X, y, outputs):
    """Test digits side by side as text (every second pixel), each captioned with the prediction."""
    shades = " .:-=+*#%@"
    blocks = []
    for x, label, out in zip(X, y, outputs):
        img = x.reshape(28, 28)[::2, ::2]
        rows = ["".join(shades[min(9, int(v * 10))] * 2 for v in row) for row in img]
        caption = f"predicted {int(out.argmax())}, label {int(label)}"
        blocks.append([caption.ljust(28)] + rows)
    return "\n".join("   ".join(parts) for parts in zip(*blocks))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {value!r}")


def _demo_args(args):
    """The demo as train options: 784-30-10 sigmoid, cross-entropy, SGD 0.5, batch 10, embedded MNIST."""
    values = dict(
        data="mnist", layers=[784, 30, 10], activation="sigmoid", output="sigmoid", loss="cross_entropy",
        init="normalized", optimizer="sgd", lr=0.5, momentum=0.0, nesterov=False, batch_size=10, l1=0.0,
        l2=0.0, clip_norm=None, dropout=0.0, batch_norm=False, augment=False, max_shift=2, max_angle=10.0, no_validate=False,
        save=None, json=None, checkpoint=None, checkpoint_every=1, resume=False, show_digits=3,
        target=None, task="classification", delimiter=None, no_header=False, test_size=None, standardize=False,
        plot=None,
    )
    values.update(vars(args))
    values["data"] = "embedded"  # even when FASTNN_DATA names a directory
    return argparse.Namespace(**values)


def run_export(args, out=sys.stdout):
    """Write the model file ``args.model`` as the ONNX file ``args.output``; print one line about it."""
    import fastnn

    model = fastnn.load(args.model)
    proto = fastnn.export_onnx(model, args.output, opset=args.opset)
    print(f"exported {args.model} to {args.output}: {model.n_in} -> {model.n_out}, {model.dtype.name}, opset "
          f"{args.opset}, {len(model.layers)} layers as {len(proto.graph.node)} ONNX nodes, "
          f"{os.path.getsize(args.output):,} bytes", file=out)


def main(argv=None):
    """Entry point of ``python -m fastnn`` and the ``fastnn`` script; returns the exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        parser.print_help(sys.stderr)
        return 2
    if unknown:  # reported by the subcommand, so the hint points at its --help
        args.parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    sub = args.parser
    if args.command == "demo":
        args = _demo_args(args)
    from .datasets import DataFileError, IDXError
    from .io import ModelFileError
    from .training import TrainingDiverged

    try:
        (run_export if args.command == "export" else run_train)(args, sys.stdout)
    except (IDXError, DataFileError, ModelFileError, FileNotFoundError) as exc:  # before ValueError: all ValueErrors
        print(f"{sub.prog}: error: {exc}", file=sys.stderr)
        return 1
    except TrainingDiverged as exc:
        print(f"{sub.prog}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # e.g. --backend cython without built extensions
        print(f"{sub.prog}: error: {exc}", file=sys.stderr)
        return 1
    except (_UsageError, ValueError) as exc:
        # ValueError: a combination of options the library refuses (e.g. FASTNN_BACKEND names no backend).
        sub.error(str(exc))
    except KeyboardInterrupt:
        print(f"\n{sub.prog}: interrupted", file=sys.stderr)
        return 130
    return 0
