"""The command line: `python -m fastnn train|demo`."""
import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.datasets import load_breast_cancer, load_diabetes

import fastnn
from fastnn.cli import build_parser, main, run_train
from fastnn.datasets import load_embedded_mnist


def run_module(*args):
    """`python -m fastnn ARGS` in a subprocess: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def train_options():
    """Every long option of `train` (help aside)."""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    return {s for action in train._actions for s in action.option_strings if s.startswith("--")} - {"--help"}


def test_train_help_gives_every_option_a_text():
    status, out, err = run_module("train", "--help")
    assert status == 0 and err == ""
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        assert action.help, action.option_strings
    text = " ".join(out.split())
    assert "passes over the training data (default: 30)" in text and "(default: sgd)" in text  # defaults shown


def write_idx_dir(path, n_train=300, n_test=100):
    """The embedded digits rewritten as a full MNIST-layout directory (what --data DIR reads)."""
    (X_tr, y_tr), (X_te, y_te) = load_embedded_mnist("float64")
    for prefix, X, y in (("train", X_tr[:n_train], y_tr[:n_train]), ("t10k", X_te[:n_test], y_te[:n_test])):
        images = np.rint(X * 255).astype(np.uint8).reshape(-1, 28, 28)
        (path / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y.astype(np.uint8)))
    return path


def test_every_train_option_reaches_the_run(tmp_path, capsys, monkeypatch):
    """One run with every option away from its default, fit spied on: each option must show in the model,
    in fit's arguments or in the files and lines it writes. A new option without a check here fails."""
    from fastnn import layers as L
    from fastnn.network import Sequential

    calls = []
    real_fit = Sequential.fit

    def spy(self, X, y, **kwargs):
        calls.append((self, X, kwargs))
        return real_fit(self, X, y, **kwargs)

    monkeypatch.setattr(Sequential, "fit", spy)
    data = write_idx_dir(tmp_path)
    paths = {name: str(tmp_path / f"{name}.{ext}") for name, ext in (("model", "npz"), ("summary", "json"),
                                                                      ("ckpt", "npz"))}
    argv = ["train", "--data", str(data), "--layers", "784,7,5,10", "--activation", "tanh", "--output", "identity",
            "--loss", "quadratic", "--init", "xavier", "--optimizer", "sgd", "--lr", "0.3", "--momentum", "0.5",
            "--nesterov", "--batch-size", "7", "--l1", "0.01", "--l2", "0.02", "--clip-norm", "3", "--dropout",
            "0.1", "--batch-norm", "--augment", "--max-shift", "1", "--max-angle", "5", "--no-validate",
            "--epochs", "2", "--backend", "numpy", "--dtype", "float64", "--seed", "9", "--limit", "60",
            "--test-limit", "20", "--quiet", "--progress", "batch", "--save", paths["model"], "--json",
            paths["summary"], "--checkpoint", paths["ckpt"], "--checkpoint-every", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (model, X, kw), = calls
    dense = [layer for layer in model.layers if isinstance(layer, L.Dense)]
    checks = {
        "--data": X.shape == (60, 784) and json.loads(open(paths["summary"]).read())["data"].endswith(str(data)),
        "--layers": [(d.n_in, d.n_out) for d in dense] == [(784, 7), (7, 5), (5, 10)],
        "--activation": sum(isinstance(layer, L.Tanh) for layer in model.layers) == 2,
        "--output": isinstance(model.layers[-1], L.Identity),
        "--loss": kw["loss"] == "quadratic",
        "--init": {d.init for d in dense} == {"xavier"},
        "--optimizer": type(kw["optimizer"]).__name__ == "SGD",
        "--lr": kw["optimizer"].lr == 0.3,
        "--momentum": kw["optimizer"].momentum == 0.5,
        "--nesterov": kw["optimizer"].nesterov is True,
        "--batch-size": kw["batch_size"] == 7,
        "--l1": kw["l1"] == 0.01,
        "--l2": kw["l2"] == 0.02,
        "--clip-norm": kw["clip_norm"] == 3.0,
        "--dropout": [layer.p for layer in model.layers if isinstance(layer, L.Dropout)] == [0.1, 0.1],
        "--batch-norm": sum(isinstance(layer, L.BatchNorm) for layer in model.layers) == 2,
        "--augment": kw["augment"] is not None,
        "--max-shift": kw["augment"].max_shift == 1,
        "--max-angle": kw["augment"].max_angle_deg == 5.0,
        "--no-validate": kw["validation_data"] is None,
        "--epochs": kw["epochs"] == 2 and len(model.training_state and [0]) == 1,
        "--backend": model.backend == "numpy",
        "--dtype": model.dtype == np.float64,
        "--seed": kw["seed"] == 9,
        "--limit": len(X) == 60,
        "--test-limit": re.fullmatch(r"test accuracy 0\.\d{4} \(\d+/20\).*\n", out) is not None,
        "--quiet": out.count("\n") == 1,
        "--save": all((a == b).all() for a, b in zip(fastnn.load(paths["model"]).get_weights(), model.get_weights())),
        "--json": len(json.loads(open(paths["summary"]).read())["history"]["loss"]) == 2,
        "--checkpoint": kw["checkpoint"] == paths["ckpt"] and fastnn.load(paths["ckpt"]).training_state["epoch"] == 2,
        "--checkpoint-every": kw["checkpoint_every"] == 2,
    }
    # --resume: go on from the checkpoint to 3 epochs in all
    calls.clear()
    epochs = argv.index("--epochs") + 1
    assert main(argv[:epochs] + ["3"] + argv[epochs + 1:] + ["--resume"]) == 0
    checks["--resume"] = calls[0][2]["resume"] is True and json.loads(open(paths["summary"]).read())[
        "resumed_after_epoch"] == 2
    # --progress batch: on a terminal, a line redrawn after every batch (so fit goes layer by layer)
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    calls.clear()
    terminal = Terminal()
    run_train(build_parser().parse_args(["train", "--data", str(data), "--epochs", "1", "--limit", "30",
                                         "--backend", "numpy", "--progress", "batch"]), out=terminal)
    # (the progress counter of the compiled epoch: fit stays compiled)
    checks["--progress"] = "100% of epoch" in terminal.getvalue() and calls[0][0].fused_runner is not None
    # a table: a headerless ';'-separated CSV whose numeric target is column 0, a regression
    rng = np.random.default_rng(3)
    table = np.column_stack([rng.normal(size=40), rng.normal(50, 10, size=(40, 3))])
    csv = tmp_path / "table.csv"
    csv.write_text("\n".join(";".join(f"{v:.6f}" for v in row) for row in table) + "\n")
    calls.clear()
    plot = tmp_path / "curves.png"
    assert main(["train", "--data", str(csv), "--target", "0", "--delimiter", ";", "--no-header", "--task",
                 "regression", "--test-size", "0.25", "--standardize", "--epochs", "2", "--backend", "numpy",
                 "--plot", str(plot), "--quiet", "--json", paths["summary"]]) == 0
    (model, X, kw), = calls
    summary = json.loads(open(paths["summary"]).read())
    checks["--target"] = summary["target"] == "column 1" and X.shape[1] == 3  # (columns numbered from 1)
    checks["--delimiter"] = X.shape[1] == 3  # three features split off each line
    checks["--no-header"] = summary["n_train"] + summary["n_test"] == 40  # no line taken as a header
    checks["--test-size"] = summary["n_test"] == 10
    checks["--task"] = kw["loss"] == "mse" and isinstance(model.layers[-1], L.Identity)
    checks["--standardize"] = summary["standardized"] and abs(float(np.mean(X[:, 0]))) < 1e-6  # (features ~50)
    checks["--plot"] = plot.exists() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(checks) == train_options(), "options without a check here: " + str(train_options() - set(checks))
    assert [option for option, ok in checks.items() if not ok] == []


def test_top_level_help_and_no_command():
    status, out, _ = run_module("--help")
    assert status == 0 and "train" in out and "demo" in out
    status, _, err = run_module()
    assert status == 2 and "usage" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
        (["train", "--layers", "784,x,10"], "argument --layers: expected comma-separated integers"),
        (["train", "--lr", "0"], "argument --lr: expected a number in (0, inf), got '0'"),
        (["train", "--batch-size", "-3"], "argument --batch-size: expected a positive integer or 'full'"),
        (["train", "--dropout", "1"], "argument --dropout: expected a number in [0, 1), got '1'"),
        (["train", "--data", "no-such-dataset"], "expected mnist, fashion-mnist or a directory"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--save", "/no/such/dir/model.npz"], "directory /no/such/dir does not exist"),
    ],
)
def test_bad_option_one_line_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("python -m fastnn train: error: ")
    assert message in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "784,30,5"], "--layers ends with 5 outputs but the data has 10 classes"),
        (["--layers", "100,10"], "--layers starts with 100 inputs but the data has 784 features"),
        (["--optimizer", "adam", "--momentum", "0.9"], "--momentum and --nesterov apply to --optimizer sgd only"),
        (["--nesterov"], "--nesterov needs --momentum > 0"),
        (["--resume"], "--resume needs --checkpoint PATH, the checkpoint to continue from"),
    ],
)
def test_semantic_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "1", "--limit", "20", "--quiet", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_bad_option_from_the_real_command():
    status, out, err = run_module("train", "--activation", "swish")
    assert status == 2 and out == ""
    assert err.strip().count("\n") == 0 and "invalid choice: 'swish'" in err


def test_tiny_train_run_saves_model_and_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    model_path, summary_path = tmp_path / "model.npz", tmp_path / "summary.json"
    status = main([
        "train", "--data", "mnist", "--layers", "784,20,10", "--epochs", "2", "--limit", "1000",
        "--test-limit", "500", "--batch-size", "10", "--lr", "0.5", "--backend", "numpy", "--dtype", "float64",
        "--seed", "3", "--save", str(model_path), "--json", str(summary_path),
    ])
    assert status == 0
    out = capsys.readouterr().out
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2
    assert re.search(r"epoch 2/2 \[=+\] .*samples/s  loss \d\.\d{4}  acc 0\.\d{4}  test loss .* test acc 0\.\d{4}", out)
    summary = json.loads(summary_path.read_text())
    assert summary["n_train"] == 1000 and summary["n_test"] == 500
    assert summary["layers"] == [784, 20, 10] and summary["dtype"] == "float64" and summary["backend"] == "numpy"
    assert len(summary["history"]["loss"]) == 2
    assert summary["history"]["loss"][1] < summary["history"]["loss"][0]
    # 1,000 digits and 2 epochs already beat chance (0.1) by far.
    assert summary["test"]["accuracy"] > 0.6
    assert f"test accuracy {summary['test']['accuracy']:.4f}" in out

    model = fastnn.load(model_path)
    _, (X_test, y_test) = load_embedded_mnist("float64")
    result = model.evaluate(X_test[:500], y_test[:500], loss="cross_entropy")
    assert result["accuracy"] == pytest.approx(summary["test"]["accuracy"])
    assert result["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-12)


def idx_bytes(array):
    """The IDX encoding of a uint8 array."""
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape) + array.tobytes()


def test_train_on_a_directory_of_idx_files(tmp_path, capsys):
    write_idx_dir(tmp_path)
    assert main(["train", "--data", str(tmp_path), "--epochs", "3", "--backend", "numpy", "--quiet"]) == 0
    out = capsys.readouterr().out
    match = re.fullmatch(r"test accuracy (0\.\d{4}) \((\d+)/100\).*\n", out)
    assert match, out
    # 784-30-10, three epochs on 300 digits: measured 0.75 (seeds 0-4: 0.71-0.82); chance is 0.1, and labels
    # read out of step with their images would stay near it.
    assert float(match.group(1)) >= 0.6 and int(match.group(2)) == round(100 * float(match.group(1)))


def test_demo_runs_and_reports_accuracy(capsys):
    assert main(["demo", "--epochs", "1", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "embedded MNIST test set" in out and "784-30-10" in out
    accuracy = float(re.search(r"test accuracy (0\.\d+) \(", out).group(1))
    assert accuracy > 0.85  # one epoch of the seeds' network on 8,000 digits: 0.914 measured
    assert out.count("predicted ") == 3


def test_demo_from_the_real_command():
    status, out, err = run_module("demo", "--epochs", "1", "--backend", "numpy")
    assert status == 0, err
    assert "test accuracy" in out


def test_diverging_training_exits_1_with_one_line(capsys):
    status = main(["train", "--activation", "relu", "--init", "large", "--output", "identity", "--loss", "quadratic",
                   "--lr", "1e30", "--epochs", "1", "--limit", "200", "--backend", "numpy", "--quiet"])
    assert status == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("python -m fastnn train: error: training diverged at epoch 1, batch ")


def test_bad_data_file_exits_1_naming_the_file(tmp_path, capsys):
    for prefix in ("train", "t10k"):
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((5, 28, 28), dtype=np.uint8))[:-7])
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)))
    assert main(["train", "--data", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "train-images-idx3-ubyte: truncated: header says 5x28x28 ubyte elements = 3,920 data bytes, found 3,913" in err


# --- progress and the fused path, checkpoints and --resume ---------------------------------------------

SMALL = ["--limit", "300", "--test-limit", "100", "--backend", "numpy", "--seed", "4"]


@pytest.fixture
def fitted(monkeypatch):
    """The models Sequential.fit ran on, in order (to read ``fused_runner``, as tests/test_fit_fused.py does)."""
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.delenv("FASTNN_FUSED", raising=False)
    models = []
    real_fit = fastnn.Sequential.fit

    def spy(self, *args, **kwargs):
        models.append(self)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(fastnn.Sequential, "fit", spy)
    return models


class Terminal(io.StringIO):
    """An output stream that says it is a terminal, as a console's stdout does."""

    def isatty(self):
        return True


def test_default_progress_is_per_epoch_and_fit_takes_the_fused_path(fitted, tmp_path, capsys):
    summary_path = tmp_path / "summary.json"
    assert main(["train", "--epochs", "2", *SMALL, "--json", str(summary_path)]) == 0
    [model] = fitted
    assert model.fused_runner is not None  # one compiled call per epoch
    assert json.loads(summary_path.read_text())["fused"] is True
    out = capsys.readouterr().out
    assert "\r" not in out
    assert [line[:9] for line in out.splitlines() if line.startswith("epoch ")] == ["epoch 1/2", "epoch 2/2"]


def test_default_progress_on_a_terminal_still_takes_the_fused_path(fitted):
    terminal = Terminal()
    summary = run_train(build_parser().parse_args(["train", "--epochs", "1", *SMALL]), terminal)
    assert fitted[0].fused_runner is not None and summary["fused"]
    assert "% of epoch" not in terminal.getvalue()


def test_progress_batch_redraws_as_the_batches_are_applied_on_a_terminal(fitted):
    terminal = Terminal()
    args = build_parser().parse_args(["train", "--epochs", "2", *SMALL, "--batch-size", "50", "--progress", "batch"])
    summary = run_train(args, terminal)
    assert fitted[0].fused_runner is not None and summary["fused"]  # progress costs the compiled epoch nothing
    out = terminal.getvalue()
    # redraws while the epoch runs (polled: how many depends on its speed), the last at 100%, then the epoch's
    # line replaces them
    assert out.count("100% of epoch") == 2 and out.count("\r\x1b[Kepoch ") == 2
    assert re.search(r"\repoch 1/2 \[=+ +\] 100% of epoch .* samples/s\r\x1b\[Kepoch 1/2 \[=+ *\] .* loss \d", out)
    assert re.search(r"\r\x1b\[Kepoch 2/2 \[=+\] .* test acc 0\.\d{4}\n", out)


def test_progress_batch_without_a_terminal_draws_nothing_extra_and_stays_fused(fitted, capsys):
    assert main(["train", "--epochs", "1", *SMALL, "--progress", "batch"]) == 0
    assert fitted[0].fused_runner is not None
    assert "% of epoch" not in capsys.readouterr().out


@pytest.mark.parametrize("options", [["--momentum", "0.9"], ["--optimizer", "adam", "--dropout", "0.2"]],
                         ids=["sgd-momentum", "adam-dropout"])
def test_a_resumed_run_ends_with_the_weights_of_the_uninterrupted_run(fitted, tmp_path, capsys, options):
    common = ["train", *SMALL, "--layers", "784,16,10", *options]
    straight, checkpoint, resumed = tmp_path / "straight.npz", tmp_path / "ckpt.npz", tmp_path / "resumed.npz"
    assert main([*common, "--epochs", "3", "--save", str(straight)]) == 0
    assert main([*common, "--epochs", "1", "--checkpoint", str(checkpoint)]) == 0
    assert fastnn.load(checkpoint).training_state["epoch"] == 1
    capsys.readouterr()
    assert main([*common, "--epochs", "3", "--checkpoint", str(checkpoint), "--resume", "--save", str(resumed)]) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1 from" in out
    assert [line[:9] for line in out.splitlines() if line.startswith("epoch ")] == ["epoch 2/3", "epoch 3/3"]
    assert fitted[0].fused_runner is not None  # both fused, Dropout included
    assert fitted[-1].fused_runner is not None

    a, b, c = fastnn.load(straight), fastnn.load(resumed), fastnn.load(checkpoint)
    assert a.training_state["epoch"] == b.training_state["epoch"] == c.training_state["epoch"] == 3
    assert a.optimizer.iterations == b.optimizer.iterations == 3 * 30
    for u, v, w in zip(a.get_weights(), b.get_weights(), c.get_weights()):
        np.testing.assert_array_equal(u, v)  # bit-identical, as fit(resume=True) guarantees
        np.testing.assert_array_equal(u, w)  # the checkpoint after the last epoch is the final model
    for s, t in zip(a.optimizer.state, b.optimizer.state):
        for name in s:
            np.testing.assert_array_equal(s[name], t[name])


@pytest.mark.parametrize(
    "changes, status, message",
    [
        (["--layers", "784,20,10"], 2, "--resume: the checkpoint's network differs from the options' at layer 0: "
                                       "Dense(n_in=784, n_out=16, init='normalized') in the checkpoint, "
                                       "Dense(n_in=784, n_out=20, init='normalized') from the options"),
        (["--lr", "0.1"], 2, "--resume: the checkpoint's optimizer is SGD {'lr': 0.5,"),
        (["--loss", "quadratic"], 2,
         "--resume: the checkpoint was trained with loss cross_entropy, the options say quadratic"),
        (["--dtype", "float64"], 2, "--resume: the checkpoint is float32, the options say --dtype float64"),
        (["--batch-size", "20"], 2, "cannot resume exactly: the recorded run used batch_size=10, this fit uses 20"),
        (["--limit", "200"], 2, "cannot resume exactly: the recorded run used n_samples=300"),
        (["--checkpoint", "OTHER"], 1, "--resume: there is no checkpoint"),
    ],
)
def test_resume_refuses_what_would_not_continue_the_run(tmp_path, capsys, monkeypatch, changes, status, message):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    checkpoint = str(tmp_path / "ckpt.npz")
    assert main(["train", *SMALL, "--layers", "784,16,10", "--epochs", "1", "--checkpoint", checkpoint, "-q"]) == 0
    capsys.readouterr()
    changes = [str(tmp_path / "other.npz") if c == "OTHER" else c for c in changes]
    args = ["train", *SMALL, "--layers", "784,16,10", "--epochs", "2", "--checkpoint", checkpoint, "--resume", "-q",
            *changes]
    if status == 2:
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
    else:
        assert main(args) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


# --- tables of your own (CSV, .npz), regression, --plot -------------------------------------------------


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture(scope="module")
def cancer_csv(tmp_path_factory):
    """scikit-learn's breast cancer data as a CSV file with text labels (written here, never downloaded)."""
    data = load_breast_cancer()
    rows = [x + [data.target_names[t]] for x, t in zip(data.data.tolist(), data.target)]
    return _write_csv(tmp_path_factory.mktemp("data") / "cancer.csv", list(data.feature_names) + ["diagnosis"], rows)


@pytest.fixture(scope="module")
def diabetes_csv(tmp_path_factory):
    data = load_diabetes()
    rows = [[t] + x for x, t in zip(data.data.tolist(), data.target.tolist())]  # the target first
    return _write_csv(tmp_path_factory.mktemp("data") / "diabetes.csv", ["progression"] + list(data.feature_names), rows)


def test_csv_classification_with_text_labels_and_standardized_features(cancer_csv, tmp_path, capsys):
    model_path, summary_path, plot_path = tmp_path / "m.npz", tmp_path / "s.json", tmp_path / "curves.png"
    status = main(["train", "--data", cancer_csv, "--target", "diagnosis", "--standardize", "--epochs", "8",
                   "--save", str(model_path), "--json", str(summary_path), "--plot", str(plot_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data     {cancer_csv}, target 'diagnosis', 20% held out for testing: 455 train, 114 "
                          "test, 30 features (standardized), 2 classes (benign, malignant)\n"
                          "network  30-30-2 sigmoid/sigmoid, normalized init, cross_entropy loss, sgd lr 0.5")
    assert f"saved model to {model_path} (it takes unscaled features)" in out
    assert f"wrote learning curves to {plot_path}" in out
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(summary_path.read_text())
    assert summary["task"] == "classification" and summary["target"] == "diagnosis"
    assert summary["classes"] == ["benign", "malignant"] and summary["standardized"] is True
    assert summary["test"]["accuracy"] > 0.93
    # The saved model takes the raw features and reproduces the reported test result on the held-out rows.
    table = fastnn.datasets.load_csv(cancer_csv, target="diagnosis")
    _, (X_test, y_test) = fastnn.datasets.split_train_test(table.X, table.y, 0.2, seed=0)
    result = fastnn.load(model_path).evaluate(X_test, y_test)
    assert result["accuracy"] == summary["test"]["accuracy"]
    assert result["loss"] == pytest.approx(summary["test"]["loss"], rel=1e-12)
    assert abs(X_test).max() > 1000  # really unscaled


def test_csv_regression_reports_mse_mae_r2(diabetes_csv, tmp_path, capsys):
    model_path = tmp_path / "m.npz"
    status = main(["train", "--data", diabetes_csv, "--target", "0", "--task", "regression", "--activation", "relu",
                   "--optimizer", "adam", "--lr", "0.01", "--epochs", "60", "--test-size", "0.25", "--seed", "2",
                   "--save", str(model_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert ("10 features, a regression target\nnetwork  10-30-1 relu/identity, normalized init, mse loss, adam "
            "lr 0.01, batch 10\n") in out
    match = re.search(r"^test mse ([\d.]+), mae ([\d.]+), r2 ([\d.]+); 60 epochs", out, re.M)
    assert match, out
    table = fastnn.datasets.load_csv(diabetes_csv, target=0, task="regression")
    _, (X_test, y_test) = fastnn.datasets.split_train_test(table.X, table.y, 0.25, seed=2)
    assert len(y_test) == 111
    predicted = fastnn.load(model_path).predict(X_test)[:, 0]
    mse, mae, r2 = (float(g) for g in match.groups())
    assert mse == pytest.approx(sk_metrics.mean_squared_error(y_test, predicted), rel=1e-3)
    assert mae == pytest.approx(sk_metrics.mean_absolute_error(y_test, predicted), rel=1e-3)
    assert r2 == pytest.approx(sk_metrics.r2_score(y_test, predicted), abs=1e-4)
    assert r2 > 0.3  # it learned something (a linear model reaches about 0.45-0.5 on this data)


def test_csv_poisson_regression(diabetes_csv, tmp_path, capsys):
    """--loss poisson: an exp output by default (a Poisson regression's log link); the saved model's predictions
    are positive and its test R^2 is the reported one."""
    model_path = tmp_path / "m.npz"
    status = main(["train", "--data", diabetes_csv, "--target", "0", "--task", "regression", "--activation", "relu",
                   "--loss", "poisson", "--optimizer", "adam", "--lr", "0.001", "--epochs", "100", "--test-size", "0.25",
                   "--seed", "2", "--standardize", "--save", str(model_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "network  10-30-1 relu/exp, normalized init, poisson loss, adam lr 0.001, batch 10\n" in out
    r2 = float(re.search(r"^test mse [\d.]+, mae [\d.]+, r2 ([\d.]+); 100 epochs", out, re.M).group(1))
    table = fastnn.datasets.load_csv(diabetes_csv, target=0, task="regression")
    _, (X_test, y_test) = fastnn.datasets.split_train_test(table.X, table.y, 0.25, seed=2)
    model = fastnn.load(model_path)
    assert isinstance(model.layers[-1], fastnn.layers.Exp) and model.loss.name == "poisson"
    predicted = model.predict(X_test)[:, 0]
    assert (predicted > 0).all()
    assert r2 == pytest.approx(sk_metrics.r2_score(y_test, predicted), abs=1e-4)
    assert r2 > 0.2  # it learned something: 0.26-0.42 over the seeds 0-4 of this split


def test_npz_data(tmp_path, capsys):
    data = load_breast_cancer()
    np.savez(tmp_path / "c.npz", X=data.data, y=data.target)
    assert main(["train", "--data", str(tmp_path / "c.npz"), "--standardize", "--epochs", "2", "--quiet"]) == 0
    assert re.match(r"test accuracy 0\.9\d{3} \(\d+/114\)", capsys.readouterr().out)


@pytest.mark.parametrize("case, lines, message", [
    ("text", ["a,b,y", "1,2,0", "3,x,1"], ", line 3, column 2 ('b'): 'x' is not a number"),
    ("missing", ["a,b,y", "1,2,0", "3,,1"], ", line 3, column 2 ('b'): missing value ''"),
    ("ragged", ["a,b,y", "1,2,0", "3,1"], ", line 3: 2 fields, expected 3 as on line 1 (the header)"),
    ("one-class", ["a,b,y", "1,2,0", "3,4,0"], ", column 3 ('y', the target): every one of the 2 rows has the class 0"),
    ("target", ["a,b,y", "1,2,0", "3,4,1"], ": no column named 'label'; the 3 columns are 'a', 'b', 'y'"),
])
def test_bad_csv_exits_1_naming_file_line_column_and_writes_nothing(tmp_path, capsys, case, lines, message):
    data = tmp_path / "bad.csv"
    data.write_text("\n".join(lines) + "\n")
    target = ["--target", "label"] if case == "target" else []
    outputs = ["--save", str(tmp_path / "m.npz"), "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "c.png"),
               "--checkpoint", str(tmp_path / "ck.npz")]
    assert main(["train", "--data", str(data), *target, "--test-size", "0.5", *outputs]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"python -m fastnn train: error: {data}{message}")
    assert err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["bad.csv"]


@pytest.mark.parametrize("args, message", [
    (["--target", "y"], "--target applies to a CSV or .npz file given with --data"),
    (["--task", "regression"], "--task regression needs numeric targets from a CSV or .npz file; mnist holds classes"),
    (["--test-size", "0.3"], "--test-size applies to a CSV or .npz file given with --data"),
    (["--data", "DIABETES", "--task", "regression", "--loss", "log_likelihood"],
     "--loss log_likelihood is for classes; with --task regression use --loss mse, quadratic or poisson"),
    (["--data", "CANCER", "--loss", "poisson"], "--loss poisson is for counts: use it with --task regression"),
    (["--data", "DIABETES", "--task", "regression", "--layers", "10,5,2"],
     "--layers ends with 2 outputs but the data has 1 target column(s)"),
    (["--data", "CANCER", "--layers", "784,30,10"], "--layers starts with 784 inputs but the data has 30 features"),
    (["--data", "NPZ", "--target", "y"], "--target, --delimiter and --no-header apply to CSV files; a .npz file holds"),
    (["--data", "missing.csv"], "or a .csv/.tsv/.txt/.npz file, got 'missing.csv' (no such file)"),
    (["--delimiter", ";;"], "argument --delimiter: expected one character (or 'tab'), got ';;'"),
    (["--test-size", "1"], "argument --test-size: expected a number in (0, 1), got '1'"),
])
def test_table_option_errors_exit_2(args, message, capsys, cancer_csv, diabetes_csv, tmp_path):
    np.savez(tmp_path / "d.npz", X=np.zeros((4, 2)), y=[0, 1, 0, 1])
    files = {"DIABETES": diabetes_csv, "CANCER": cancer_csv, "NPZ": str(tmp_path / "d.npz")}
    args = [files.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "1", "--quiet", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m fastnn train: error: ") and message in err and err.count("\n") == 1


def test_plot_without_matplotlib_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["train", "--epochs", "1", "--limit", "50", "--plot", str(tmp_path / "c.png"),
                 "--save", str(tmp_path / "m.npz")]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ('python -m fastnn train: error: --plot needs the matplotlib package, which is not installed: '
                   'pip install "fastnn-cpu[plot]"\n')
    assert os.listdir(tmp_path) == []
