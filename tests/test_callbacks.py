"""CSVLogger and ModelCheckpoint (fastnn.callbacks)."""
import csv
import math
import os

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optim
from fastnn.callbacks import Callback, CSVLogger, EarlyStopping, ModelCheckpoint, StepLR
from fastnn.layers import Dense, ReLU, Softmax


@pytest.fixture(scope="module")
def data():
    (X, y), (X_test, y_test) = fastnn.datasets.load_mnist()
    return (X[:1000], y[:1000]), (X_test[:500], y_test[:500])


def net(seed=0):
    return Sequential([Dense(784, 16), ReLU(), Dense(16, 10), Softmax()], seed=seed)


def train(model, data, callbacks, epochs=5, lr=0.02):
    (X, y), val = data
    return model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(lr), epochs=epochs, batch_size=25,
                     validation_data=val, seed=1, verbose=0, callbacks=callbacks)


class WeightRecorder(Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_csv_logger_writes_every_epoch_of_history(tmp_path, data):
    path = tmp_path / "log.csv"
    seen = []

    class Peek(Callback):  # the file on disk after each epoch, read by the next callback
        def on_epoch_end(self, epoch, logs=None):
            seen.append(len(read_csv(path)[1]))

    model = net()
    history = train(model, data, [CSVLogger(path), Peek()])
    assert model.fused_runner is not None  # no per-batch hook: fit kept its fused path
    header, rows = read_csv(path)
    assert header == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "lr"]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]
    for j, name in enumerate(header[1:], start=1):
        assert [float(r[j]) for r in rows] == getattr(history, name)  # full precision
    assert seen == [1, 2, 3, 4, 5]  # complete after every epoch
    assert os.listdir(tmp_path) == ["log.csv"]  # no temporary files left


def test_csv_logger_append_and_separator(tmp_path, data):
    path = tmp_path / "log.tsv"
    train(net(), data, [CSVLogger(path, separator="\t")], epochs=2)
    train(net(), data, [CSVLogger(path, separator="\t", append=True)], epochs=3)
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0][:2] == ["epoch", "loss"] and [r[0] for r in rows[1:]] == ["1", "2", "1", "2", "3"]
    train(net(), data, [CSVLogger(path, separator="\t")], epochs=1)  # append=False starts afresh
    assert len(open(path).read().splitlines()) == 2


def test_csv_logger_writes_nan_for_regression_accuracy(tmp_path):
    X = np.random.default_rng(0).normal(size=(40, 3))
    model = Sequential([Dense(3, 1)], "float64", seed=0)
    model.fit(X, X.sum(axis=1), loss="mse", optimizer="sgd", epochs=2, verbose=0, callbacks=[CSVLogger(tmp_path / "r.csv")])
    header, rows = read_csv(tmp_path / "r.csv")
    assert header == ["epoch", "loss", "accuracy", "seconds", "lr"]
    assert all(math.isnan(float(r[2])) for r in rows)


def test_model_checkpoint_keeps_the_best_epoch(tmp_path, data):
    best = ModelCheckpoint(tmp_path / "best.npz")  # monitor val_loss, save_best_only
    recorder = WeightRecorder()
    history = train(net(), data, [recorder, best], epochs=6, lr=0.05)
    losses = history.val_loss
    expected = int(np.argmin(losses))
    assert expected < 5, "the run should overfit so that the best epoch is not the last one"
    assert best.best_epoch == expected and best.best == losses[expected]
    saved = fastnn.load(tmp_path / "best.npz")
    for a, b in zip(saved.get_weights(), recorder.weights[expected]):
        np.testing.assert_array_equal(a, b)
    assert saved.training_state["epoch"] == expected + 1
    _, val = data
    assert saved.evaluate(*val)["loss"] == pytest.approx(losses[expected], rel=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["best.npz"]


def test_model_checkpoint_max_mode_and_every_epoch_templates(tmp_path, data):
    by_acc = ModelCheckpoint(tmp_path / "acc.npz", monitor="val_accuracy")
    every = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.4f}.npz"), save_best_only=False)
    history = train(net(), data, [by_acc, every], epochs=3)
    assert by_acc.mode == "max" and by_acc.best == max(history.val_accuracy)
    expected = sorted(f"m-{e + 1:02d}-{v:.4f}.npz" for e, v in enumerate(history.val_loss))
    assert sorted(f for f in os.listdir(tmp_path) if f.startswith("m-")) == expected


def test_model_checkpoint_errors(tmp_path, data):
    with pytest.raises(ValueError, match="path=.*: directory .*nowhere does not exist"):
        ModelCheckpoint(tmp_path / "nowhere" / "m.npz")
    for template, error in (("{val_los:.3f}", "KeyError: 'val_los'"), ("{loss:d}", "ValueError: Unknown format code 'd'")):
        with pytest.raises(ValueError, match=rf"path=.* is not a template of epoch and loss, accuracy, .*\({error}"):
            ModelCheckpoint(str(tmp_path / f"m-{template}.npz"))
    with pytest.raises(ValueError, match="mode must be 'auto', 'min' or 'max'"):
        ModelCheckpoint(tmp_path / "m.npz", mode="best")
    (X, y), _ = data
    with pytest.raises(ValueError, match=r"ModelCheckpoint monitors 'val_loss', which fit does not report \(pass validation_data"):
        net().fit(X, y, loss="log_likelihood", epochs=1, verbose=0, callbacks=[ModelCheckpoint(tmp_path / "m.npz")])
    with pytest.raises(ValueError, match="directory .*nowhere does not exist"):
        CSVLogger(tmp_path / "nowhere" / "log.csv")
    with pytest.raises(ValueError, match="separator must be a single character"):
        CSVLogger(tmp_path / "log.csv", separator="||")
    assert os.listdir(tmp_path) == []


def test_callbacks_module_gathers_every_callback():
    import fastnn.optim
    import fastnn.training

    assert fastnn.callbacks.EarlyStopping is fastnn.training.EarlyStopping is EarlyStopping
    assert fastnn.callbacks.StepLR is fastnn.optim.StepLR is StepLR
    for name in fastnn.callbacks.__all__:
        assert issubclass(getattr(fastnn.callbacks, name), Callback)
