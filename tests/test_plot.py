"""Learning curves: fastnn.plot.learning_curves and History.plot."""
import math
import os
import sys

import matplotlib.image
import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optim
from fastnn.layers import Dense, Identity, Sigmoid, Softmax
from fastnn.plot import learning_curves
from fastnn.training import History


@pytest.fixture(scope="module")
def classes_history():
    gen = np.random.default_rng(0)
    X = gen.normal(size=(200, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    model = Sequential([Dense(4, 8), Sigmoid(), Dense(8, 3), Softmax()], "float64", seed=0)
    return model.fit(X[:150], y[:150], loss="log_likelihood", optimizer=optim.Adam(0.05), epochs=8, batch_size=16,
                     validation_data=(X[150:], y[150:]), verbose=0, seed=0)


def _lines(ax):
    """{label: (x, y)} of the data lines of an axes."""
    return {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}


def test_png_of_loss_and_accuracy(tmp_path, classes_history):
    h = classes_history
    fig = learning_curves(h, tmp_path / "curves.png", title="blobs")
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(tmp_path / "curves.png").shape
    assert (width, height) == (1152, 432)  # two 4.8 x 3.6 inch panels at 120 dpi
    loss_ax, acc_ax = fig.axes
    epochs = list(range(1, 9))
    best = int(np.argmin(h.val_loss)) + 1
    lines = _lines(loss_ax)
    assert lines["training"] == (epochs, h.loss) and lines["validation"] == (epochs, h.val_loss)
    assert lines[f"lowest validation loss (epoch {best})"][0] == [best, best]
    assert loss_ax.get_yscale() == "log" and loss_ax.get_ylabel() == "loss"
    lines = _lines(acc_ax)
    assert lines["training"] == (epochs, h.accuracy) and lines["validation"] == (epochs, h.val_accuracy)
    assert acc_ax.get_yscale() == "linear" and fig.get_suptitle() == "blobs"
    assert os.listdir(tmp_path) == ["curves.png"]


def test_history_plot_and_dicts_draw_the_same(tmp_path, classes_history):
    fig = classes_history.plot(tmp_path / "a.svg")
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    from_dict = learning_curves(classes_history.to_dict())
    for a, b in zip(fig.axes, from_dict.axes):
        assert _lines(a) == _lines(b)
    assert classes_history.plot() is not None and len(os.listdir(tmp_path)) == 1  # no path: nothing written


def test_regression_draws_the_loss_only():
    X = np.random.default_rng(1).normal(size=(50, 2))
    model = Sequential([Dense(2, 1), Identity()], "float64", seed=0)
    history = model.fit(X, X.sum(axis=1) + 3, loss="mse", optimizer="sgd", epochs=40, verbose=0, seed=0)
    fig = history.plot()
    (ax,) = fig.axes
    assert list(_lines(ax)) == ["training"]  # no validation data, no accuracy panel
    assert len(ax.get_lines()[0].get_xdata()) == 40


def test_epochs_of_a_resumed_run_keep_their_numbers():
    history = History()
    for epoch, loss in ((4, 0.5), (5, 0.4), (6, math.nan)):
        history.append(epoch, {"loss": loss, "accuracy": math.nan})
    (ax,) = learning_curves(history).axes
    assert list(ax.get_lines()[0].get_xdata()) == [5, 6, 7]


def test_bad_arguments_write_nothing(tmp_path, classes_history, monkeypatch):
    with pytest.raises(ValueError, match=r"path=.*curves\.txt.: the file name must end in one of .*\.png"):
        learning_curves(classes_history, tmp_path / "curves.txt")
    with pytest.raises(ValueError, match="directory .*nowhere does not exist"):
        learning_curves(classes_history, tmp_path / "nowhere" / "c.png")
    with pytest.raises(ValueError, match="history holds no epochs to plot"):
        learning_curves(History())
    with pytest.raises(TypeError, match="history must be a fastnn.training.History or a dict of lists, got list"):
        learning_curves([0.3, 0.2])
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'needs the matplotlib package, which is not installed: pip install "fastnn-cpu\[plot\]"'):
        fastnn.plot.learning_curves(classes_history, tmp_path / "c.png")
    assert os.listdir(tmp_path) == []
