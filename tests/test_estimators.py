"""fastnn.MLPClassifier / MLPRegressor against scikit-learn's MLP and scikit-learn's contracts."""
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import (load_breast_cancer, load_diabetes, load_digits, make_multilabel_classification,
                              make_regression)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight

import fastnn
from fastnn.datasets import load_embedded_mnist

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, random_state=0, stratify=y)


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _diabetes():
    """load_diabetes: 442 rows, 10 standardized features, a positive target (disease progression) / 100."""
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y / 100, random_state=0)
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _mnist():
    (X_train, y_train), (X_test, y_test) = load_embedded_mnist()
    return X_train, X_test, y_train, y_test


@pytest.mark.parametrize(
    "data, params, tolerance, seeds",
    [
        (_digits, dict(hidden_layer_sizes=(64,), max_iter=60), 0.03, (0, 1)),  # 450 test digits
        (_breast_cancer, dict(hidden_layer_sizes=(32,), max_iter=60), 0.04, (0, 1)),  # 143 test samples
        (_mnist, dict(hidden_layer_sizes=(100,), max_iter=5, batch_size=100), 0.02, (0,)),  # 2,000 test digits
    ],
    ids=["digits", "breast_cancer", "mnist"],
)
def test_accuracy_matches_scikit_learn(data, params, tolerance, seeds):
    X_train, X_test, y_train, y_test = data()
    scores = {}
    for name, cls in (("fastnn", fastnn.MLPClassifier), ("sklearn", SkMLPClassifier)):
        scores[name] = [cls(random_state=seed, **params).fit(X_train, y_train).score(X_test, y_test)
                        for seed in seeds]
    assert min(scores["fastnn"]) > 0.85, scores
    assert abs(np.mean(scores["fastnn"]) - np.mean(scores["sklearn"])) <= tolerance, scores


def _blobs(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 5)) + 2.0 * np.eye(3, 5)[y]
    return X, y


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([-7, 3, 11]), None],
                         ids=["str", "int", "bool"])
def test_any_label_type(labels):
    X, y = _blobs()
    if labels is None:  # bools: two classes
        y_user, y_int = (y == 1), (y == 1).astype(int)
    else:
        y_user, y_int = labels[y], y
    params = dict(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.05, random_state=0)
    est = fastnn.MLPClassifier(**params).fit(X, y_user)
    reference = fastnn.MLPClassifier(**params).fit(X, y_int)
    np.testing.assert_array_equal(est.classes_, np.unique(y_user))
    predicted = est.predict(X)
    assert predicted.dtype == np.asarray(y_user).dtype
    np.testing.assert_array_equal(predicted, est.classes_[reference.predict(X) if labels is None else
                                                           reference.predict(X)])
    np.testing.assert_array_equal(est.predict_proba(X), reference.predict_proba(X))
    assert est.score(X, y_user) > 0.8


def test_pandas_feature_names_are_kept_and_checked():
    X, y = _blobs()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    est = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(frame, pd.Series(y))
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(frame)
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X)
    renamed = frame.rename(columns={"f0": "other"})
    with pytest.raises(ValueError, match="feature names should match those that were passed during fit"):
        est.predict(renamed)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_equals_dense_input(fmt):
    rng = np.random.default_rng(0)
    X = scipy.sparse.random(150, 40, density=0.15, random_state=0, format="csr") * 3
    y = np.asarray(X[:, :5].sum(axis=1)).ravel() > np.median(np.asarray(X[:, :5].sum(axis=1)))
    params = dict(hidden_layer_sizes=(16,), max_iter=20, random_state=0, tol=0.0)
    sparse = fastnn.MLPClassifier(**params).fit(X.asformat(fmt), y)
    dense = fastnn.MLPClassifier(**params).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-9)
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sparse.predict_proba(X), dense.predict_proba(X.toarray()), rtol=1e-8, atol=1e-12)
    assert rng is not None and sparse.score(X, y) == dense.score(X.toarray(), y)
    bad = X.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        sparse.predict(bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fastnn.MLPClassifier().fit(bad, y)
    lbfgs = dict(params, solver="lbfgs", max_iter=8)  # its whole-data pass takes sparse X too
    sparse = fastnn.MLPClassifier(**lbfgs).fit(X.asformat(fmt), y)
    dense = fastnn.MLPClassifier(**lbfgs).fit(X.toarray(), y)
    assert sparse.n_iter_ == dense.n_iter_ == 8
    for a, b in zip(sparse.coefs_ + sparse.intercepts_, dense.coefs_ + dense.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)


def test_multilabel_classification():
    X, Y = make_multilabel_classification(n_samples=300, n_features=10, n_classes=4, random_state=0)
    params = dict(hidden_layer_sizes=(32,), max_iter=200, random_state=0)
    est = fastnn.MLPClassifier(**params).fit(X[:200], Y[:200])
    reference = SkMLPClassifier(**params).fit(X[:200], Y[:200])
    assert est.out_activation_ == reference.out_activation_ == "logistic" and est.n_outputs_ == 4
    np.testing.assert_array_equal(est.classes_, reference.classes_)
    proba = est.predict_proba(X)
    assert proba.shape == (300, 4) and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(est.predict(X), (proba > 0.5).astype(int))
    # per-label accuracy on the held-out rows, and the training loss (binary cross-entropy summed over labels)
    held_out = [(model.predict(X[200:]) == Y[200:]).mean() for model in (est, reference)]
    assert held_out[0] > 0.7 and abs(held_out[0] - held_out[1]) <= 0.03, held_out
    np.testing.assert_allclose(est.loss_curve_[-1], reference.loss_curve_[-1], rtol=0.05)
    np.testing.assert_array_equal(est.decision_function(X) > 0, est.predict(X) == 1)


def test_multioutput_regression():
    X, Y = make_regression(n_samples=300, n_features=6, n_targets=3, noise=1.0, random_state=0)
    Y = Y / Y.std(axis=0)
    est = fastnn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, Y)
    assert est.predict(X).shape == (300, 3) and est.out_activation_ == "identity"
    assert est.score(X, Y) > 0.95
    single = fastnn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, Y[:, 0])
    assert single.predict(X).shape == (300,)


def _regression():
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    return X, X[:20], y / 100, y[:20] / 100


@pytest.mark.parametrize(
    "make, data, params, weighted",
    [
        (SkMLPClassifier, _digits, dict(hidden_layer_sizes=(32,), max_iter=15), False),
        (SkMLPClassifier, _breast_cancer, dict(hidden_layer_sizes=(16, 8), activation="tanh", max_iter=12), True),
        (SkMLPClassifier, _digits, dict(hidden_layer_sizes=(8,), max_fun=4), False),  # stopped by max_fun
        (SkMLPRegressor, _regression, dict(hidden_layer_sizes=(16,), max_iter=40, alpha=1e-2), True),
        (SkMLPRegressor, _diabetes, dict(loss="poisson", hidden_layer_sizes=(16,), max_iter=30), True),
    ],
    ids=["digits", "breast_cancer-weighted", "max_fun", "regression-weighted", "poisson-weighted"],
)
def test_lbfgs_follows_scikit_learns_iterates(make, data, params, weighted):
    X, X_test, y, _ = data()
    weights = np.random.default_rng(0).uniform(0, 2, len(y)) if weighted else None
    params = dict(solver="lbfgs", random_state=0, **params)
    ours = (fastnn.MLPClassifier if make is SkMLPClassifier else fastnn.MLPRegressor)(**params)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge"):
        ours.fit(X, y, sample_weight=weights)
    with pytest.warns(ConvergenceWarning):
        theirs = make(**params).fit(X, y, sample_weight=weights)
    # the same objective and gradient from the same initial weights: L-BFGS-B takes the same steps
    assert ours.n_iter_ == theirs.n_iter_ == params.get("max_iter", theirs.n_iter_)
    assert theirs.n_iter_ < 200  # (the max_fun case: stopped by max_fun, before max_iter)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-10)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.predict(X_test), theirs.predict(X_test), rtol=0, atol=1e-9)
    assert not hasattr(ours, "loss_curve_") and not hasattr(theirs, "loss_curve_")
    ours.set_params(warm_start=True, max_iter=5, max_fun=15000)  # goes on from its weights, as scikit-learn's
    theirs.set_params(warm_start=True, max_iter=5, max_fun=15000)
    ours.fit(X, y, sample_weight=weights), theirs.fit(X, y, sample_weight=weights)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-9)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_poisson_regression_matches_scikit_learn(backend):
    """loss="poisson": an exp output (the log link) trained on half the Poisson deviance, as scikit-learn's. From
    the same initial weights Adam's run differs only in the order of the shuffles, so the training fit, the
    loss curve and the held-out R^2 (noisy on 111 rows: 0.07-0.27 over seeds, for both) agree within noise."""
    X, X_test, y, y_test = _diabetes()
    params = dict(loss="poisson", hidden_layer_sizes=(16,), max_iter=100, learning_rate_init=0.01, alpha=1e-2,
                  random_state=0)
    ours = fastnn.MLPRegressor(backend=backend, **params).fit(X, y)
    theirs = SkMLPRegressor(**params).fit(X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    assert isinstance(ours.model_.layers[-1], fastnn.layers.Exp)
    train = [model.score(X, y) for model in (ours, theirs)]
    assert train[0] > 0.6 and abs(train[0] - train[1]) < 0.02, train
    held_out = [model.score(X_test, y_test) for model in (ours, theirs)]
    assert held_out[0] > 0 and abs(held_out[0] - held_out[1]) < 0.05, held_out
    assert (ours.predict(X_test) > 0).all()
    # the curve is the penalized mean Poisson loss, as scikit-learn's
    np.testing.assert_allclose(ours.loss_curve_[-1], theirs.loss_curve_[-1], rtol=0.02)
    assert ours.loss_curve_[0] > 2 * ours.loss_curve_[-1]


def test_poisson_regression_needs_nonnegative_targets():
    X, _, y, _ = _diabetes()
    negative = y.copy()
    negative[5] = -0.5
    with pytest.raises(ValueError, match=r"'y' must contain counts or rates for loss='poisson'.*-0.5 at index 5"):
        fastnn.MLPRegressor(loss="poisson", max_iter=2).fit(X, negative)
    est = fastnn.MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), random_state=0).partial_fit(X, y)
    before = [w.copy() for w in est.coefs_]
    with pytest.raises(ValueError, match=r"counts or rates for loss='poisson'.*-0.5 at index 5"):
        est.partial_fit(X, negative)
    for a, b in zip(est.coefs_, before):  # nothing trained on the bad chunk
        np.testing.assert_array_equal(a, b)
    # zeros are fine (counts), and squared_error still takes negative targets
    zeros = np.where(y > 1.5, y, 0.0)
    assert (fastnn.MLPRegressor(loss="poisson", max_iter=5, random_state=0).fit(X, zeros).predict(X) > 0).all()
    fastnn.MLPRegressor(max_iter=2).fit(X, negative)


def test_lbfgs_trains_every_network_and_has_no_partial_fit():
    X_train, X_test, y_train, y_test = _digits()
    for options in (dict(dtype="float32"), dict(batch_norm=True), dict(activation="softplus")):
        est = fastnn.MLPClassifier(solver="lbfgs", hidden_layer_sizes=(32,), max_iter=60, random_state=0, **options)
        assert est.fit(X_train, y_train).score(X_test, y_test) > 0.9, options
    est = fastnn.MLPClassifier(solver="lbfgs")
    assert not hasattr(est, "partial_fit") and hasattr(fastnn.MLPRegressor(), "partial_fit")
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as error:
        est.partial_fit(X_train, y_train, classes=range(10))
    assert str(error.value.__cause__) == ("partial_fit is only available for stochastic optimizers. lbfgs is not "
                                          "stochastic.")
    with pytest.raises(ValueError, match="dropout needs a stochastic solver: solver='lbfgs' minimizes one"):
        fastnn.MLPClassifier(solver="lbfgs", dropout=0.2).fit(X_train, y_train)


def test_class_weight_is_sample_weight_per_class():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), max_iter=20, random_state=0)
    weights = {0: 3.0, 1: 1.0, 2: 0.5}
    by_class = fastnn.MLPClassifier(class_weight=weights, **params).fit(X, y)
    by_sample = fastnn.MLPClassifier(**params).fit(X, y, sample_weight=np.array([weights[c] for c in y]))
    np.testing.assert_array_equal(by_class.predict_proba(X), by_sample.predict_proba(X))
    balanced = fastnn.MLPClassifier(class_weight="balanced", **params).fit(X[:90], y[:90])
    reference = fastnn.MLPClassifier(**params).fit(X[:90], y[:90], sample_weight=compute_sample_weight("balanced", y[:90]))
    np.testing.assert_array_equal(balanced.predict_proba(X), reference.predict_proba(X))
    unweighted = fastnn.MLPClassifier(**params).fit(X, y)
    assert not np.array_equal(by_class.predict_proba(X), unweighted.predict_proba(X))


def test_zero_sample_weights_equal_leaving_the_samples_out():
    # one full batch, no shuffling: the weighted mean over the batch is the mean over the kept samples
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), max_iter=15, random_state=0, shuffle=False, tol=0.0)  # batch "auto": all
    weights = np.where(np.arange(120) % 3 == 0, 0.0, 1.0)
    weighted = fastnn.MLPClassifier(**params).fit(X, y, sample_weight=weights)
    kept = fastnn.MLPClassifier(**params).fit(X[weights > 0], y[weights > 0])
    np.testing.assert_allclose(weighted.predict_proba(X), kept.predict_proba(X), rtol=1e-9, atol=1e-12)


def test_partial_fit_over_chunks_equals_fit_with_the_same_batches():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=20, shuffle=False)
    whole = fastnn.MLPClassifier(max_iter=1, **params).fit(X, y)
    chunked = fastnn.MLPClassifier(**params)
    for lo in range(0, 120, 20):
        chunked.partial_fit(X[lo:lo + 20], y[lo:lo + 20], classes=[0, 1, 2])
    for a, b in zip(chunked.coefs_ + chunked.intercepts_, whole.coefs_ + whole.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert chunked.n_iter_ == 1 and len(chunked.loss_curve_) == 6


def test_repeated_partial_fit_equals_fit_and_warm_start_continues():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), random_state=0, batch_size=16, tol=0.0, n_iter_no_change=100)
    whole = fastnn.MLPClassifier(max_iter=6, **params).fit(X, y)
    partial = fastnn.MLPClassifier(**params)
    for _ in range(6):
        partial.partial_fit(X, y, classes=np.unique(y))
    warm = fastnn.MLPClassifier(max_iter=3, warm_start=True, **params).fit(X, y).fit(X, y)
    for est in (partial, warm):
        np.testing.assert_allclose(est.loss_curve_, whole.loss_curve_, rtol=1e-12)
        for a, b in zip(est.coefs_, whole.coefs_):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    cold = fastnn.MLPClassifier(max_iter=3, **params).fit(X, y).fit(X, y)  # no warm start: starts again
    np.testing.assert_array_equal(cold.coefs_[0], fastnn.MLPClassifier(max_iter=3, **params).fit(X, y).coefs_[0])


def test_same_random_state_same_model_and_the_compiled_epoch_ran():
    X, y = _blobs()
    models = [fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=seed).fit(X, y)
              for seed in (3, 3, 4)]
    for a, b in zip(models[0].coefs_, models[1].coefs_):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(models[0].coefs_[0], models[2].coefs_[0])
    assert models[0].model_.fused_runner is not None


def test_pickle_round_trip_predicts_and_trains_identically():
    X, y = _blobs()
    est = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0, dtype="float32").fit(X, y)
    data = pickle.dumps(est)
    assert b"FusedRunner" not in data
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(again.classes_, est.classes_)
    assert again.get_params() == est.get_params()
    est.partial_fit(X, y)
    again.partial_fit(X, y)  # the optimizer's state and the shuffling generator came along
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = _blobs(300)
    est = fastnn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=200, early_stopping=True, n_iter_no_change=3,
                               learning_rate_init=0.05, random_state=0, validation_fraction=0.2).fit(X, y)
    assert est.best_loss_ is None and len(est.validation_scores_) == est.n_iter_ < 200
    assert est.best_validation_score_ == max(est.validation_scores_)
    _, X_val, _, y_val = train_test_split(X, y, random_state=np.random.RandomState(0), test_size=0.2, stratify=y)
    assert np.isin(y_val, [0, 1, 2]).all() and len(np.unique(y_val)) == 3


def test_validation_accuracy_is_scikit_learns_accuracy_score():
    X, y = _blobs(300)
    Y = np.eye(3, dtype=int)[y] | (X[:, 3:4] > 0)  # multi-label: the class and one more label
    weights = np.random.default_rng(1).uniform(0, 2, len(y))
    for targets in (y, Y):
        est = fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, targets)
        encoded = np.searchsorted(est.classes_, targets) if targets.ndim == 1 else targets
        decided = est._decide(est.model_.predict(X))
        assert 0.0 < accuracy_score(encoded, decided) < 1.0  # some rows right, some wrong
        for w in (None, weights):
            assert est._score_encoded(X, encoded, w) == pytest.approx(
                accuracy_score(encoded, decided, sample_weight=w), rel=1e-14, abs=0)


def test_pipeline_in_grid_search_and_estimator_api():
    X, y = _blobs(150)
    pipe = make_pipeline(StandardScaler(), fastnn.MLPClassifier(max_iter=20, learning_rate_init=0.05, random_state=0))
    search = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                                 "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.8 and len(search.cv_results_["params"]) == 4
    est = fastnn.MLPClassifier(hidden_layer_sizes=(5, 3), solver="sgd", dropout=0.1)
    assert clone(est).get_params() == est.get_params()
    assert est.set_params(alpha=0.5).alpha == 0.5
    assert is_classifier(est) and is_regressor(fastnn.MLPRegressor()) and not is_regressor(est)
    assert "MLPClassifier" in est._repr_html_()


def test_X_is_scanned_for_nan_once(monkeypatch):
    """scikit-learn's validate_data scans X for NaN and infinities; the network then does not scan it again."""
    from fastnn import network

    scans = []
    monkeypatch.setattr(network, "check_finite", lambda arr, name, **kw: scans.append(name))
    X, y = _blobs()
    est = fastnn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    est.predict_proba(X)
    assert scans == []
    est.model_.predict(X)
    assert scans == ["X"]  # (Sequential's own check, as called directly)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(bad)


def test_bad_input_names_the_problem():
    X, y = _blobs()
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        fastnn.MLPClassifier().partial_fit(X, y)
    est = fastnn.MLPClassifier(hidden_layer_sizes=(4,)).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        est.partial_fit(X[:3], [0, 1, 5])
    with pytest.raises(ValueError, match="is not the same as on last call to partial_fit"):
        est.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match=r"`y` has classes not in `self.classes_`"):
        est.partial_fit(X[:3], [0.0, 0.5, 1.0])  # continuous targets in a later chunk
    with pytest.raises(ValueError, match=r"y is multiclass-multioutput with shape \(3, 2\), but this model was fit "
                                         "on single-label targets"):
        est.partial_fit(X[:3], [[0, 1], [1, 2], [2, 0]])
    mixed = np.array(["a", 1, "a", 1], dtype=object)  # NumPy cannot sort these: a TypeError from inside it
    with pytest.raises(ValueError, match="y mixes labels of the types int, str, which cannot be sorted together"):
        fastnn.MLPClassifier().fit(X[:4], mixed)
    with pytest.raises(ValueError, match="classes mixes labels of the types NoneType, int"):
        fastnn.MLPClassifier().partial_fit(X[:4], [0, 1, 0, 1], classes=[0, 1, None])
    with pytest.raises(ValueError, match="y mixes labels of the types int, str"):
        fastnn.MLPClassifier().partial_fit(X[:4], ["a", "b", "a", "b"], classes=["a", "b"]).partial_fit(X[:4], mixed)
    for name, value in (("alpha", -1.0), ("solver", "newton")):  # set between chunks: validated again
        with pytest.raises(ValueError, match=f"'{name}' parameter of MLPClassifier must be"):
            est.set_params(**{name: value}).partial_fit(X, y)
        est.set_params(alpha=0.0001, solver="adam")
    assert est.partial_fit(X, y).n_iter_ == 1  # valid again
    with pytest.raises(ValueError, match="'alpha' parameter of MLPClassifier must be a float in the range"):
        fastnn.MLPClassifier(alpha=-1).fit(X, y)
    with pytest.raises(ValueError, match="'solver' parameter of MLPClassifier must be a str among"):
        fastnn.MLPClassifier(solver="newton").fit(X, y)
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by partial_fit"):
        fastnn.MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="Unknown label type"):
        fastnn.MLPClassifier().fit(X, np.linspace(0, 1, 120))
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        fastnn.MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


@pytest.mark.parametrize("solver", ["sgd", "adamw", "rmsprop", "adagrad", "adadelta"])
def test_every_solver_learns(solver):
    X, y = _blobs()
    rates = {"sgd": 0.1, "adamw": 0.01, "rmsprop": 0.01, "adagrad": 0.1, "adadelta": 1.0}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="fit trains step by step")  # only sgd/adam are compiled
        est = fastnn.MLPClassifier(hidden_layer_sizes=(16,), solver=solver, learning_rate_init=rates[solver],
                                   max_iter=150, random_state=0, batch_norm=True).fit(X, y)
    assert est.score(X, y) > 0.7  # 3 classes


def test_sgd_learning_rate_schedules():
    X, y = _blobs()
    params = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=0.1, max_iter=30, random_state=0)
    inv = fastnn.MLPClassifier(learning_rate="invscaling", power_t=0.5, **params).fit(X, y)
    assert inv.model_.optimizer.lr == pytest.approx(0.1 / (inv.t_ + 1) ** 0.5)
    adaptive = fastnn.MLPClassifier(learning_rate="adaptive", tol=10.0, n_iter_no_change=1, **params).fit(X, y)
    # every 2 epochs without an improvement of 10 the rate is divided by 5, until it falls below 1e-6
    assert adaptive.model_.optimizer.lr < 1e-6 * 5 and adaptive.n_iter_ < 30


def test_import_fastnn_does_not_import_sklearn_and_a_missing_sklearn_names_the_extra():
    code = ("import sys, fastnn; assert 'sklearn' not in sys.modules\n"
            "sys.modules['sklearn'] = None\n"
            "try:\n    fastnn.MLPClassifier\nexcept ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert 'pip install "fastnn-cpu[sklearn]"' in out


def test_convergence_warning_and_verbose(capsys):
    X, y = _blobs()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(2\\) reached"):
        fastnn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True, random_state=0).fit(X, y)
    assert capsys.readouterr().out.startswith("Iteration 1, loss = ")
