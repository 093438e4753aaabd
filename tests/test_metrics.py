"""evaluate's metrics by kind of target, checked against scikit-learn's metric functions."""
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from fastnn import Sequential, metrics, optim
from fastnn.layers import Dense, Identity, Sigmoid, Softmax, Tanh


@pytest.fixture
def gen():
    return np.random.default_rng(7)


@pytest.mark.parametrize("k", [1, 3])
def test_regression_metrics_equal_sklearn(gen, k):
    targets = gen.normal(size=(50, k)) * 3 + 1
    a = targets + gen.normal(size=(50, k))
    assert metrics.mean_squared_error(a, targets) == pytest.approx(skm.mean_squared_error(targets, a), rel=1e-14)
    assert metrics.mean_absolute_error(a, targets) == pytest.approx(skm.mean_absolute_error(targets, a), rel=1e-14)
    assert metrics.r2_score(a, targets) == pytest.approx(skm.r2_score(targets, a), rel=1e-14)


def test_r2_of_constant_columns_follows_sklearn(gen):
    targets = np.column_stack([np.full(10, 2.0), np.full(10, 5.0), gen.normal(size=10)])
    a = targets.copy()
    a[:, 1] += 0.5  # a constant column predicted wrongly scores 0, predicted exactly 1
    a[:, 2] += gen.normal(size=10) * 0.1
    assert metrics.r2_score(a, targets) == pytest.approx(skm.r2_score(targets, a), rel=1e-14)
    assert math.isnan(metrics.r2_score(a[:1], targets[:1]))


def test_accuracy_and_elementwise_accuracy_equal_sklearn(gen):
    a = gen.random((40, 4))
    labels = gen.integers(0, 4, 40)
    assert metrics.accuracy(a, labels) == pytest.approx(skm.accuracy_score(labels, a.argmax(axis=1)))
    indicators = (gen.random((40, 4)) < 0.4).astype(float)
    # Element-wise accuracy is 1 - the Hamming loss (scikit-learn's accuracy_score is subset accuracy).
    expected = 1 - skm.hamming_loss(indicators, (a > 0.5).astype(float))
    assert metrics.multilabel_accuracy(a, indicators) == pytest.approx(expected, rel=1e-14)
    assert expected != skm.accuracy_score(indicators, (a > 0.5).astype(float))


def test_evaluate_reports_accuracy_for_classes(gen):
    X = gen.normal(size=(60, 5))
    y = gen.integers(0, 3, 60)
    model = Sequential([Dense(5, 3), Softmax()], "float64", seed=0)
    result = model.evaluate(X, y, loss="log_likelihood")
    assert set(result) == {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, model.predict(X).argmax(axis=1)))


def test_evaluate_reports_elementwise_accuracy_for_multilabel_targets(gen):
    X = gen.normal(size=(60, 5))
    Y = (gen.random((60, 4)) < 0.5).astype(float)
    Y[0] = [1, 1, 0, 0]  # not one-hot: several labels per row
    model = Sequential([Dense(5, 4), Sigmoid()], "float64", seed=0)
    result = model.evaluate(X, Y, loss="cross_entropy")
    assert set(result) == {"loss", "accuracy"}
    expected = 1 - skm.hamming_loss(Y, (model.predict(X) > 0.5).astype(float))
    assert result["accuracy"] == pytest.approx(expected, rel=1e-14)
    # fit's validation accuracy is evaluate's, so it is no longer NaN for such targets
    history = model.fit(X, Y, loss="cross_entropy", optimizer=optim.SGD(0.5), epochs=2, validation_data=(X, Y),
                        verbose=0, seed=0)
    assert history.val_accuracy[-1] == pytest.approx(model.evaluate(X, Y)["accuracy"])


@pytest.mark.parametrize("k", [1, 2])
def test_evaluate_reports_mse_mae_r2_for_regression(gen, k):
    X = gen.normal(size=(80, 4))
    Y = np.column_stack([X @ gen.normal(size=4) + 0.1 * gen.normal(size=80) for _ in range(k)])
    y = Y[:, 0] if k == 1 else Y
    model = Sequential([Dense(4, 8), Tanh(), Dense(8, k), Identity()], "float64", seed=0)
    model.fit(X, y, loss="mse", optimizer=optim.Adam(0.01), epochs=30, batch_size=16, verbose=0, seed=0)
    result = model.evaluate(X, y)
    assert set(result) == {"loss", "mse", "mae", "r2"}
    a = model.predict(X)
    assert result["mse"] == pytest.approx(skm.mean_squared_error(Y, a), rel=1e-12)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(Y, a), rel=1e-12)
    assert result["r2"] == pytest.approx(skm.r2_score(Y, a), rel=1e-12)
    assert result["loss"] == pytest.approx(result["mse"], rel=1e-12)  # the mse loss is the mse metric
    assert result["r2"] > 0.8  # it learned the linear map


def test_quadratic_loss_on_regression_targets_still_reports_regression_metrics(gen):
    X = gen.normal(size=(30, 2))
    y = X.sum(axis=1) * 2.5
    model = Sequential([Dense(2, 1), Identity()], "float64", seed=0)
    result = model.evaluate(X, y, loss="quadratic")
    assert result["loss"] == pytest.approx(result["mse"] / 2, rel=1e-12)  # 1/(2n) sum vs 1/n sum
    assert result["r2"] == pytest.approx(skm.r2_score(y, model.predict(X)[:, 0]), rel=1e-12)
