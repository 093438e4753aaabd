"""fastnn's scikit-learn estimators: parallel searches and the drop-in speed-up over scikit-learn's MLP.

- ``gridsearch-8fits-<rows>``: ``GridSearchCV(fastnn.MLPClassifier(...), 4 settings, cv=2)`` -- 8 fits of
  784-h-10 on Fashion-MNIST rows -- with ``n_jobs=1`` (one process; the fused epoch on every core) and
  ``n_jobs=2`` (two loky workers, each held to one thread by ``fastnn.threads``). Issue 12 asks for n_jobs=2
  to be >= 1.6x faster on 2 cores: the ratio of the two means.
- ``mlp-784-100-10-adam-b200-10ep``: ``fit`` of ``fastnn.MLPClassifier`` and of
  ``sklearn.neural_network.MLPClassifier`` with the same parameters (784-100-10 ReLU, Adam, batch 200,
  10 epochs, float32 Fashion-MNIST); ``extra_info`` holds each one's test accuracy. Issue 12 asks for
  fastnn >= 5x faster. ``...-float64``: the same on float64 X, which both train in float64 (what
  scikit-learn users with float64 data get unless they pass ``dtype="float32"``).
- ``mlp-small-<dataset>-100ep``: the same two on scikit-learn's bundled ``load_digits`` (1,797 x 64) and
  ``load_breast_cancer`` (569 x 30), scaled to [0, 1], 100 hidden units, 100 epochs: data this small trains
  its epochs on one thread (``fastnn.fused.EPOCH_PARALLEL_MIN``).
- ``mlp-lbfgs-digits``: ``solver="lbfgs"`` on ``load_digits`` (64-32-10, at most 200 iterations): SciPy's
  L-BFGS-B over the same objective from the same weights, so both take the same iterations; fastnn's
  objective and gradient come from its layer kernels, scikit-learn's from NumPy.
- ``mlp-poisson-diabetes-100ep``: ``MLPRegressor(loss="poisson")`` of the two on scikit-learn's bundled
  ``load_diabetes`` (442 x 10, standardized; target / 100), 100 hidden units, Adam, 100 epochs: an exp output
  on half the Poisson deviance.
- ``mlp-sparse-<data>-5ep``: ``fit`` on a ``scipy.sparse`` CSR X (784-100-10, Adam, batch 200, 5 epochs) of
  fastnn (``csr``; layer 0 multiplies the stored values only) and scikit-learn (``sklearn-csr``), and fastnn's
  fit of the same X dense (``dense``): on the embedded MNIST test set (8,000 of its rows, 19% of the pixels
  nonzero) and on 20,000 Fashion-MNIST rows (50% nonzero).
- ``partial-fit-<rows>``: ``partial_fit`` of the two, 784-100-10 Adam, over 10,000 Fashion-MNIST rows in
  chunks of 200 or 2,000 rows (one epoch of one or ten batches each; what ``dask_ml.wrappers.Incremental``
  calls per block): each call's own work (checks, setting up the epoch) weighs as much as its training.

With timing disabled (the normal ``pytest bench``) every body runs once on a few hundred rows.
"""
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.preprocessing import StandardScaler

import e2e
import fastnn
from fastnn.datasets import load_embedded_mnist
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

SEARCH_ROWS = 10_000  # rows the 8 fits share (each trains on half of them)
SMOKE_ROWS = 300


def _data(rows):
    (X, y), (X_test, y_test), source = e2e.subset(e2e.load_data("float32"), rows)
    return X, y, X_test, y_test, source


def _time_fits(benchmark, group, make, X, y, rounds=5, warmup=1):
    """Time ``make().fit(X, y)`` over ``rounds`` after ``warmup`` rounds (one round, no warm-up, when timing is
    disabled), scikit-learn's ConvergenceWarning silenced; returns the last fitted model."""
    models = []

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            models.append(make().fit(X, y))

    benchmark.group = group
    benchmark.pedantic(fit, rounds=1 if benchmark.disabled else rounds, iterations=1,
                       warmup_rounds=0 if benchmark.disabled else warmup)
    return models[-1]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_jobs(benchmark, n_jobs):
    rows = SMOKE_ROWS if benchmark.disabled else SEARCH_ROWS
    X, y, _, _, source = _data(rows)
    grid = {"hidden_layer_sizes": [(64,), (100,)], "alpha": [1e-4, 1e-3]}
    est = fastnn.MLPClassifier(max_iter=5, tol=0.0, random_state=0)
    search = GridSearchCV(est, grid, cv=2, n_jobs=n_jobs)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)

    if not benchmark.disabled:
        run()  # starts the loky workers and loads fastnn in them
    benchmark.group = f"gridsearch-8fits-{rows}"
    benchmark.extra_info.update(n_jobs=n_jobs, fits=8, data=source, rows=rows)
    benchmark.pedantic(run, rounds=1 if benchmark.disabled else 3, iterations=1)
    assert len(search.cv_results_["params"]) == 4


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mlp_fashion_mnist(benchmark, dtype, impl):
    X, y, X_test, y_test, source = _data(SMOKE_ROWS if benchmark.disabled else 60_000)
    X, X_test = X.astype(dtype), X_test.astype(dtype)  # both libraries train in X's dtype
    cls = fastnn.MLPClassifier if impl == "fastnn" else SkMLPClassifier
    params = dict(hidden_layer_sizes=(100,), solver="adam", batch_size=200, max_iter=1 if benchmark.disabled else 10,
                  tol=0.0, n_iter_no_change=1000, random_state=0)
    group = "mlp-784-100-10-adam-b200-10ep" + ("" if dtype == "float32" else "-float64")
    model = _time_fits(benchmark, group, lambda: cls(**params), X, y, rounds=3, warmup=0)
    benchmark.extra_info.update(impl=impl, data=source, rows=X.shape[0], epochs=model.n_iter_,
                                test_accuracy=float(model.score(X_test, y_test)))
    assert model.n_iter_ == params["max_iter"]


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
@pytest.mark.parametrize("dataset", ["digits", "breast_cancer"])
def test_mlp_small_data(benchmark, dataset, impl):
    X, y = (load_digits if dataset == "digits" else load_breast_cancer)(return_X_y=True)
    X = (X / X.max()).astype("float32")
    cls = fastnn.MLPClassifier if impl == "fastnn" else SkMLPClassifier
    params = dict(max_iter=2 if benchmark.disabled else 100, tol=0.0, n_iter_no_change=1000, random_state=0)
    model = _time_fits(benchmark, f"mlp-small-{dataset}-100ep", lambda: cls(**params), X, y)
    benchmark.extra_info.update(impl=impl, rows=X.shape[0], train_accuracy=float(model.score(X, y)))
    assert model.n_iter_ == params["max_iter"]


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
def test_mlp_poisson(benchmark, impl):
    X, y = load_diabetes(return_X_y=True)
    X, y = StandardScaler().fit_transform(X), y / 100
    cls = fastnn.MLPRegressor if impl == "fastnn" else SkMLPRegressor
    params = dict(loss="poisson", max_iter=2 if benchmark.disabled else 100, tol=0.0, n_iter_no_change=1000,
                  random_state=0)
    model = _time_fits(benchmark, "mlp-poisson-diabetes-100ep", lambda: cls(**params), X, y)
    benchmark.extra_info.update(impl=impl, train_r2=float(model.score(X, y)), loss=model.loss_)
    assert model.n_iter_ == params["max_iter"] and model.out_activation_ == "exp"
    assert (model.predict(X) > 0).all()


@pytest.mark.parametrize("impl", ["csr", "dense", "sklearn-csr"])
@pytest.mark.parametrize("data", ["mnist", "fashion-mnist"])
def test_mlp_sparse(benchmark, data, impl):
    if data == "mnist":
        (X, y), _ = load_embedded_mnist()
        source = "embedded MNIST (fastnn.datasets)"
    else:
        X, y, _, _, source = _data(20_000)
    if benchmark.disabled:
        X, y = X[:SMOKE_ROWS], y[:SMOKE_ROWS]
    X = X if impl == "dense" else scipy.sparse.csr_matrix(X)
    cls = SkMLPClassifier if impl == "sklearn-csr" else fastnn.MLPClassifier
    params = dict(hidden_layer_sizes=(100,), batch_size=200, max_iter=1 if benchmark.disabled else 5, tol=0.0,
                  n_iter_no_change=1000, random_state=0)
    model = _time_fits(benchmark, f"mlp-sparse-{data}-5ep", lambda: cls(**params), X, y)
    density = X.nnz / np.prod(X.shape) if impl != "dense" else np.count_nonzero(X) / X.size
    benchmark.extra_info.update(impl=impl, data=source, rows=X.shape[0], density=round(float(density), 3),
                                train_accuracy=float(model.score(X, y)))
    assert model.n_iter_ == params["max_iter"]


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
@pytest.mark.parametrize("chunk", [200, 2000])
def test_partial_fit_chunks(benchmark, chunk, impl):
    rows = SMOKE_ROWS if benchmark.disabled else 10_000
    chunk = min(chunk, rows)
    X, y, _, _, source = _data(rows)
    cls = fastnn.MLPClassifier if impl == "fastnn" else SkMLPClassifier
    model = cls(hidden_layer_sizes=(100,), random_state=0).partial_fit(X[:chunk], y[:chunk], classes=list(range(10)))

    def chunks():
        for start in range(0, rows, chunk):
            model.partial_fit(X[start:start + chunk], y[start:start + chunk])

    benchmark.group = f"partial-fit-{chunk}"
    rounds, warmup = (1, 0) if benchmark.disabled else (5, 1)
    benchmark.pedantic(chunks, rounds=rounds, iterations=1, warmup_rounds=warmup)
    benchmark.extra_info.update(impl=impl, data=source, rows=rows, chunk=chunk)
    assert model.n_iter_ == 1 and model.t_ == chunk + (rounds + warmup) * rows


@pytest.mark.parametrize("impl", ["fastnn", "sklearn"])
def test_mlp_lbfgs(benchmark, impl):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    cls = fastnn.MLPClassifier if impl == "fastnn" else SkMLPClassifier
    params = dict(solver="lbfgs", hidden_layer_sizes=(32,), max_iter=3 if benchmark.disabled else 200, random_state=0)
    model = _time_fits(benchmark, "mlp-lbfgs-digits", lambda: cls(**params), X, y)
    benchmark.extra_info.update(impl=impl, iterations=model.n_iter_, loss=model.loss_)
    assert 1 <= model.n_iter_ <= params["max_iter"]
    assert model.score(X, y) > (0.3 if benchmark.disabled else 0.99)  # (3 iterations when smoke-tested)
