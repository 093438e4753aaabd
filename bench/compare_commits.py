"""One version of fastnn against another: bench/e2e.py's fastnn trainers (configurations a-d, float32, full
Fashion-MNIST, cython and numba) in two built checkouts, round by round in turn so both see the same load.

    git worktree add /tmp/base <commit> && (cd /tmp/base && make build)
    .venv/bin/python bench/compare_commits.py --compare /tmp/base . --rounds 2 --threads 1,2

prints a markdown table of the best epoch per cell and new/base. ``--estimator`` adds four cells of
``fastnn.MLPClassifier`` fits (whole ``fit`` calls, best of the rounds): ``estimator/fit-60k``, 784-100-10
Adam batch 200 for 10 epochs on the 60,000 rows (bench/test_bench_sklearn.py's fit), and
``estimator/8-fits-5k``, eight fits of 5 epochs on 5,000 rows, 64 and 100 hidden units in turn (the fits
of its grid search); and two of little data, whose epochs are under ``fastnn.fused.EPOCH_PARALLEL_MIN``:
``estimator/digits-100ep``, 100 epochs of 64-100-10 on scikit-learn's ``load_digits`` (1,797 rows), and
``estimator/partial-fit-200``, 50 ``partial_fit`` calls of 200 Fashion-MNIST rows each. Each checkout runs
in a child process of its own ``.venv/bin/python``
(``compare_commits.py --child ROOT THREADS [--estimator]`` prints one JSON line).
"""
import argparse
import json
import os
import subprocess
import sys
import time

BACKENDS, CONFIGS = ("cython", "numba"), "abcd"


def time_checkout(root, threads, estimator=False):
    """{"backend/config": best epoch seconds} of the checkout ``root`` (run in its own interpreter), and with
    ``estimator`` the seconds of the estimator cells."""
    sys.path.insert(0, os.path.join(root, "bench"))
    import e2e

    (X, y), _, _ = e2e.load_data("float32")
    e2e.set_threads(threads)
    best = {}
    for backend in BACKENDS:
        for key in CONFIGS:
            config = e2e.CONFIGS[key]
            e2e.warm_up(backend, config, "float32")
            trainer = e2e.make_trainer(backend, config, X, y)
            _, epochs = e2e.time_epochs(trainer, 2 if key == "d" else 3)
            best[f"{backend}/{key}"] = min(epochs)
    if estimator:
        best.update(time_estimator(X, y))
    return best


def time_estimator(X, y):
    """Seconds of the estimator cells (see the module docstring)."""
    import warnings

    import fastnn

    def timed(call):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (ConvergenceWarning: max_iter reached)
            start = time.perf_counter()
            call()
            return time.perf_counter() - start

    def fit(rows, epochs, hidden, batch_size="auto"):
        model = fastnn.MLPClassifier(hidden_layer_sizes=(hidden,), batch_size=batch_size, max_iter=epochs, tol=0.0,
                                     n_iter_no_change=1000, random_state=0)
        return timed(lambda: model.fit(X[:rows], y[:rows]))

    def digits():
        from sklearn.datasets import load_digits

        X_digits, y_digits = load_digits(return_X_y=True)
        model = fastnn.MLPClassifier(max_iter=100, tol=0.0, n_iter_no_change=1000, random_state=0)
        return timed(lambda: model.fit((X_digits / 16).astype("float32"), y_digits))

    def partial_fits():
        model = fastnn.MLPClassifier(random_state=0)
        model.partial_fit(X[:200], y[:200], classes=list(range(10)))
        return timed(lambda: [model.partial_fit(X[200 * i:200 * (i + 1)], y[200 * i:200 * (i + 1)])
                              for i in range(50)])

    fit(2000, 1, 100)  # compiled kernels loaded
    return {"estimator/fit-60k": fit(len(X), 10, 100, 200),
            "estimator/8-fits-5k": sum(fit(5000, 5, hidden) for hidden in (64, 100) * 4),
            "estimator/digits-100ep": min(digits() for _ in range(3)),
            "estimator/partial-fit-200": min(partial_fits() for _ in range(3))}


def run_child(root, threads, estimator=False):
    python = os.path.join(root, ".venv", "bin", "python")
    out = subprocess.run([python, os.path.abspath(__file__), "--child", root, str(threads)]
                         + (["--estimator"] if estimator else []), cwd=root,
                         env=dict(os.environ, PYTHONPATH=""), capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{root}: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, metavar=("BASE", "NEW"), help="two built checkouts")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "THREADS"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--estimator", action="store_true", help="add the MLPClassifier fit cells")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(time_checkout(os.path.abspath(args.child[0]), int(args.child[1]), args.estimator)))
        return
    if not args.compare:
        parser.error("--compare BASE NEW is needed")
    trees = [os.path.abspath(tree) for tree in args.compare]
    threads = [int(t) for t in args.threads.split(",")]
    best = {}
    for _ in range(args.rounds):
        for t in threads:
            for tree in trees:
                for cell, seconds in run_child(tree, t, args.estimator).items():
                    best[tree, t, cell] = min(best.get((tree, t, cell), float("inf")), seconds)
    base, new = trees
    print("| threads | cell | base s | new s | new/base |\n|---|---|---|---|---|")
    cells = [f"{b}/{k}" for b in BACKENDS for k in CONFIGS]
    if args.estimator:
        cells += [f"estimator/{c}" for c in ("fit-60k", "8-fits-5k", "digits-100ep", "partial-fit-200")]
    for t in threads:
        for cell in cells:
            b, n = best[base, t, cell], best[new, t, cell]
            print(f"| {t} | {cell} | {b:.4f} | {n:.4f} | {n / b:.3f} |")


if __name__ == "__main__":
    main()
