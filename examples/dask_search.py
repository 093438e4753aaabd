"""A hyper-parameter search of fastnn.MLPClassifier on Fashion-MNIST, on a Dask cluster.

Without ``--scheduler`` it starts a LocalCluster of worker processes on this machine; with
``--scheduler tcp://host:8786`` it uses the cluster behind that scheduler (start one with
``dask scheduler`` on one machine and ``dask worker tcp://host:8786`` on each of the others; every worker
needs fastnn installed). The fits of ``GridSearchCV`` go to the workers through joblib's dask backend; each
worker trains on its own share of its machine's cores (fastnn.threads reads the limit Dask sets).

    python examples/dask_search.py [--workers 2] [--rows 10000] [--epochs 10]
    python examples/dask_search.py --scheduler tcp://10.0.0.5:8786 --rows 60000
    python examples/dask_search.py --data mnist      # the embedded MNIST digits instead

Fashion-MNIST comes from Debian: `apt-get install dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
"""
import argparse
import time
import warnings

import fastnn
from fastnn import datasets

GRID = {"hidden_layer_sizes": [(64,), (128,)], "alpha": [1e-4, 1e-2], "learning_rate_init": [1e-3, 3e-3]}


def search(X, y, epochs, cv):
    """A fitted GridSearchCV over GRID (run it inside ``joblib.parallel_backend("dask")``)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    est = fastnn.MLPClassifier(max_iter=epochs, batch_size=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of epochs, on purpose
        return GridSearchCV(est, GRID, cv=cv, refit=True).fit(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (no --scheduler)")
    parser.add_argument("--data", default="fashion-mnist", help="fashion-mnist (default), mnist or an IDX directory")
    parser.add_argument("--rows", type=int, default=10_000, help="training rows to search on")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cv", type=int, default=3)
    args = parser.parse_args(argv)

    import joblib
    from distributed import Client, LocalCluster

    if args.data == "fashion-mnist":
        (X, y), (X_test, y_test) = datasets.load_fashion_mnist()
    else:
        (X, y), (X_test, y_test) = datasets.load_mnist(None if args.data == "mnist" else args.data)
    X, y = X[:args.rows], y[:args.rows]
    if args.scheduler:
        cluster, client = None, Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    try:
        workers = client.run(fastnn.threads.fused_threads)
        print(f"cluster  {len(workers)} workers, fastnn threads per worker: {sorted(workers.values())}")
        print(f"data     {X.shape[0]:,} training rows, {X_test.shape[0]:,} test rows, {X.shape[1]} features")
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            result = search(X, y, args.epochs, args.cv)
        seconds = time.perf_counter() - start
        print(f"search   {len(result.cv_results_['params'])} settings x {args.cv} folds + refit in {seconds:.1f} s")
        order = result.cv_results_["rank_test_score"].argsort()
        for i in order:
            params = result.cv_results_["params"][i]
            print(f"  {result.cv_results_['mean_test_score'][i]:.4f}  {params}")
        print(f"best     {result.best_params_}: test accuracy {result.score(X_test, y_test):.4f}")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return 0


if __name__ == "__main__":  # worker processes re-import this file: the guard keeps them from starting clusters
    raise SystemExit(main())
