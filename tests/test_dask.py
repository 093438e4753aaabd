"""fastnn's estimators on a real Dask cluster: two worker processes on this machine (distributed.LocalCluster).

(1) a hyper-parameter search under ``joblib.parallel_backend("dask")``: the fits run on the workers;
(2) data in chunks (a dask.array): ``dask_ml.wrappers.Incremental`` and ``HyperbandSearchCV`` train through
``partial_fit``, one block at a time.
"""
import warnings

import dask
import dask.array as da
import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import fastnn

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # start-up chatter of distributed (ports, deprecations)
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
        with cluster, Client(cluster) as dask_client:
            yield dask_client


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 12)) + 2.0 * np.eye(3, 12)[y]
    return X, y


def test_workers_train_on_their_share_of_the_cores(client):
    # Dask's nanny starts each worker with OMP_NUM_THREADS=1: two fused epochs do not fight for 2 cores
    shares = client.run(fastnn.threads.fused_threads)
    assert sorted(shares.values()) == [1, 1]


def test_grid_search_runs_on_the_workers(client):
    X, y = _data()
    grid = {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1e-1]}
    est = fastnn.MLPClassifier(max_iter=15, learning_rate_init=0.01, random_state=0)
    with joblib.parallel_backend("dask"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            on_dask = GridSearchCV(est, grid, cv=3).fit(X, y)
    local = GridSearchCV(est, grid, cv=3, n_jobs=1).fit(X, y)
    assert on_dask.best_params_ == local.best_params_
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"],
                               atol=1 / 200)  # a fit may round differently on 1 thread than on 2
    assert on_dask.best_score_ > 0.8
    # the fits ran in the worker processes: each of them now holds fastnn's compiled kernels
    loaded = client.run(lambda: "fastnn.estimators" in __import__("sys").modules)
    assert all(loaded.values())


def test_incremental_trains_block_by_block_like_partial_fit(client):
    from dask_ml.wrappers import Incremental

    X, y = _data()
    dX, dy = da.from_array(X, chunks=(100, 12)), da.from_array(y, chunks=100)
    params = dict(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0, batch_size=50)
    model = Incremental(fastnn.MLPClassifier(**params), shuffle_blocks=False)
    model.fit(dX, dy, classes=[0, 1, 2])
    local = fastnn.MLPClassifier(**params)
    for lo in range(0, 600, 100):
        local.partial_fit(X[lo:lo + 100], y[lo:lo + 100], classes=[0, 1, 2])
    trained = model.estimator_
    assert trained.n_iter_ == 1 and len(trained.loss_curve_) == 6
    for a, b in zip(trained.coefs_ + trained.intercepts_, local.coefs_ + local.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    predicted = model.predict(dX)
    assert isinstance(predicted, da.Array)
    assert (predicted.compute() == y).mean() > 0.8


def test_hyperband_search_over_a_chunked_array(client):
    from dask_ml.model_selection import HyperbandSearchCV

    X, y = _data(800, seed=1)
    dX, dy = da.from_array(X, chunks=(100, 12)), da.from_array(y, chunks=100)
    params = {"hidden_layer_sizes": [(4,), (16,), (32,)], "learning_rate_init": [1e-3, 1e-2, 5e-2]}
    search = HyperbandSearchCV(fastnn.MLPClassifier(random_state=0), params, max_iter=9, random_state=0)
    # dask-ml 2025.1's search calls dask.persist inside the client's event loop, where dask >= 2025 refuses
    # the default client ("asynchronous Client in a synchronous context"); named as the scheduler, the
    # client persists the data on the workers itself
    with dask.config.set(scheduler=client.get):
        search.fit(dX, dy, classes=[0, 1, 2])
    assert search.best_score_ > 0.8
    assert isinstance(search.best_estimator_, fastnn.MLPClassifier)
    assert search.metadata_["n_models"] == len(search.cv_results_["params"]) > 1
