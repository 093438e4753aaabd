"""The command line: `python -m fastnn train|demo`."""
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn.cli import build_parser, main, run_train
from fastnn.datasets import load_embedded_mnist


def run_module(*args):
    """`python -m fastnn ARGS` in a subprocess: (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_train_help_documents_every_option():
    status, out, err = run_module("train", "--help")
    assert status == 0 and err == ""
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    options = [s for action in train._actions for s in action.option_strings if s.startswith("--")]
    assert len(options) > 25
    for option in options:
        assert option in out, option
    for action in train._actions:  # every option has a help text
        assert action.help, action.option_strings
    for name in ("--data", "--layers", "--activation", "--loss", "--optimizer", "--lr", "--batch-size",
                 "--epochs", "--backend", "--dtype", "--seed", "--save", "--json", "--limit"):
        assert name in options


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
    # The embedded digits rewritten as a full MNIST-layout directory (what --data DIR reads).
    (X_tr, y_tr), (X_te, y_te) = load_embedded_mnist("float64")
    for prefix, X, y in (("train", X_tr[:300], y_tr[:300]), ("t10k", X_te[:100], y_te[:100])):
        images = np.rint(X * 255).astype(np.uint8).reshape(-1, 28, 28)
        (tmp_path / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(y.astype(np.uint8)))
    assert main(["train", "--data", str(tmp_path), "--epochs", "1", "--backend", "numpy", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and re.match(r"test accuracy 0\.\d{4} \(\d+/100\)", out)


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
