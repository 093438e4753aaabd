"""Seconds per training epoch of the fused kernel (train_epoch) in each backend, next to a plain NumPy loop.

Run from the repository root:

    .venv/bin/python bench/fused_epoch_timing.py                 # 784-30-10 and 784-100-10, float32
    .venv/bin/python bench/fused_epoch_timing.py --dtype float64 --repeats 5 --threads 2
    .venv/bin/python bench/fused_epoch_timing.py --epoch-threads 1,2 --gemm-min 0   # the epoch on 1 and 2 threads
    .venv/bin/python bench/fused_epoch_timing.py --fit cython   # also time Sequential.fit
    .venv/bin/python bench/fused_epoch_timing.py --products     # BLAS vs hand-written loops per product
    .venv/bin/python bench/fused_epoch_timing.py --denormals    # float32 Adam with and without flushing

Data: full Fashion-MNIST (60,000 x 784) from /usr/share/datasets/fashion-mnist when it is there, else
random data of the same shape. Network: sigmoid hidden layer, sigmoid output with binary cross-entropy
(one-hot targets), SGD lr 0.5, batch 10, one epoch in a fresh random order each repeat. Each row shows
the best and median of ``--repeats`` epochs after a warm-up call on 200 rows (JIT compile excluded). The BLAS
thread count of every loaded BLAS (NumPy's and SciPy's OpenBLAS) is set with threadpoolctl.

``T=`` rows: the compiled epoch split across that many of its own threads (kernels/reference/fused.py,
"Threads"); BLAS then runs on one thread whatever ``--threads`` says (as fastnn.fused does).
``gemm_min`` rows: the compiled backends call BLAS for products of at least that many multiply-adds and
hand-written loops below it; 0 = always BLAS, "inf" = always loops. ``--products`` times the Numba
backend's product helper alone, both ways, on the shapes of these epochs and smaller ones (the crossover).
"""
import argparse
import gzip
import os
import statistics
import sys
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist"
NEVER = 1 << 62


def load(dtype):
    """Training images scaled to [0, 1] and one-hot labels; random data if the files are missing."""
    def idx(path):
        with gzip.open(path) as f:
            raw = f.read()
        ndim = raw[3]
        shape = np.frombuffer(raw, ">u4", ndim, 4).astype(int)
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)

    images = os.path.join(DATA, "train-images-idx3-ubyte.gz")
    if os.path.exists(images):
        x = (idx(images).reshape(60000, 784) / 255.0).astype(dtype)
        labels = idx(os.path.join(DATA, "train-labels-idx1-ubyte.gz")).astype(np.int64)
        source = "Fashion-MNIST"
    else:
        rng = np.random.default_rng(1)
        x = rng.random((60000, 784)).astype(dtype)
        labels = rng.integers(0, 10, 60000)
        source = "random data (Fashion-MNIST not found)"
    return x, np.eye(10, dtype=dtype)[labels], source


def numpy_loop(x, y, order, layers, lr, batch_size):
    """The plain NumPy per-batch loop: vectorized forward, backward and SGD step per mini-batch."""
    t = x.dtype.type
    lr = t(lr)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        acts = [x[idx]]
        for w, b in layers:
            acts.append(1 / (1 + np.exp(-(acts[-1] @ w + b))))
        delta = (acts[-1] - y[idx]) / t(len(idx))
        for l in range(len(layers) - 1, -1, -1):
            w, b = layers[l]
            gw, gb = acts[l].T @ delta, delta.sum(axis=0)
            if l:
                delta = (delta @ w.T) * (acts[l] * (1 - acts[l]))
            w -= lr * gw
            b -= lr * gb


def products(dtype):
    """Nanoseconds per call of out = a @ b in the Numba backend: np.dot (BLAS) against the loops."""
    from numba import njit

    from fastnn._kernels.numba import fused as nb

    @njit
    def repeat(a, b, out, gemm_min, times):
        for _ in range(times):
            nb.matmul(a, b, out, gemm_min)

    rng = np.random.default_rng(0)
    print(f"\nout = a (m, k) @ b (k, n), {np.dtype(dtype)}, Numba backend")
    print(f"{'m x k x n':<16}{'BLAS ns':>10}{'loops ns':>10}{'loops / BLAS':>14}")
    for m, k, n in [(10, 784, 30), (10, 784, 100), (10, 30, 10), (10, 100, 10), (10, 10, 10), (10, 5, 3),
                    (1, 784, 30), (1, 30, 10), (128, 784, 100)]:
        a, b = rng.random((m, k)).astype(dtype), rng.random((k, n)).astype(dtype)
        out = np.empty((m, n), dtype=dtype)
        times = max(10, int(2e8 / (m * k * n)))
        cost = []
        for gm in (0, NEVER):
            repeat(a, b, out, gm, 1)
            t0 = time.perf_counter()
            repeat(a, b, out, gm, times)
            cost.append((time.perf_counter() - t0) / times * 1e9)
        print(f"{f'{m} x {k} x {n}':<16}{cost[0]:10.0f}{cost[1]:10.0f}{cost[1] / cost[0]:13.1f}x")


def denormals(x, y, backend, epochs):
    """Per-epoch seconds of 784-100-10 ReLU + softmax, Adam lr 1e-3, batch 128, with and without flushing
    subnormals, and how many optimizer-state entries are subnormal after each epoch."""
    from fastnn._kernels.reference import fused as ref

    train_epoch = __import__(f"fastnn._kernels.{backend}.fused", fromlist=["train_epoch"]).train_epoch
    sizes = np.array([784, 100, 10], dtype=np.int64)
    acts = np.array([ref.RELU, ref.SOFTMAX], dtype=np.int64)
    offsets, n_params = ref.param_layout(sizes)
    tiny = np.finfo(x.dtype).tiny
    print(f"\n784-100-10 ReLU + softmax, Adam lr 1e-3, batch 128, {x.dtype}, {backend}")
    for flush in (0.0, 1.0):
        rng = np.random.default_rng(0)
        params = np.zeros(n_params, dtype=x.dtype)
        for l, (w0, b0) in enumerate(offsets):  # He-normal weights, zero biases
            params[w0:b0] = rng.standard_normal(b0 - w0) * np.sqrt(2 / sizes[l])
        state = np.zeros((2, n_params), dtype=x.dtype)
        hyper = np.zeros(ref.N_HYPER)
        hyper[[ref.LR, ref.BETA1, ref.BETA2, ref.EPS, ref.LOSS_EPS, ref.FLUSH_DENORMALS]] = (
            1e-3, 0.9, 0.999, 1e-8, 1e-7, flush)
        step = 0
        for epoch in range(epochs):
            order = rng.permutation(x.shape[0]).astype(np.int64)
            t0 = time.perf_counter()
            total, correct, updates, _ = train_epoch(x, y, order, params, state, sizes, acts, ref.NLL, ref.ADAM,
                                                     hyper, 128, step, 0)
            seconds = time.perf_counter() - t0
            step += updates
            subnormal = int(np.count_nonzero((np.abs(state) < tiny) & (state != 0)))
            print(f"flush={int(flush)} epoch {epoch + 1}: {seconds:.3f} s, loss {total / x.shape[0]:.4f}, "
                  f"accuracy {correct / x.shape[0]:.4f}, subnormal state entries {subnormal}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--hidden", default="30,100", help="comma-separated hidden widths (default 30,100)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per row (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--gemm-min", default="0,inf", help="gemm_min values for the compiled backends")
    parser.add_argument("--epoch-threads", default="1,2", help="threads of the compiled epoch (default 1,2)")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--fit", default="", help="also time Sequential.fit with these backends, e.g. cython")
    parser.add_argument("--products", action="store_true", help="only time BLAS against loops per product")
    parser.add_argument("--denormals", action="store_true", help="only time float32 Adam with/without flushing")
    parser.add_argument("--epochs", type=int, default=6, help="epochs for --denormals (default 6)")
    parser.add_argument("--backend", default="cython", help="backend for --denormals (default cython)")
    args = parser.parse_args(argv)

    import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's OpenBLAS first, so threadpoolctl sees it)
    from threadpoolctl import threadpool_info, threadpool_limits

    import fastnn
    from fastnn._kernels.reference import fused as ref

    threadpool_limits(args.threads)
    dtype = np.dtype(args.dtype)
    if args.products:
        products(dtype)
        return 0
    x, y, source = load(dtype)
    labels = np.argmax(y, axis=1)
    if args.denormals:
        denormals(x, y, args.backend, args.epochs)
        return 0
    backends = {}
    for name in ("numpy", "numba", "cython"):
        try:
            backends[name] = __import__(f"fastnn._kernels.{ {'numpy': 'reference'}.get(name, name)}.fused",
                                        fromlist=["train_epoch"]).train_epoch
        except ImportError as exc:
            print(f"# {name}: not available ({exc})")
    blas = ", ".join(sorted({f"{i['internal_api']} {i['version']} {i.get('architecture', '')} "
                             f"x{i['num_threads']}" for i in threadpool_info()}))
    print(f"# fastnn {fastnn.__version__}, numpy {np.__version__}, {os.cpu_count()} cpus, BLAS: {blas}")
    print(f"# data: {source}, {x.shape[0]} x {x.shape[1]} {dtype}; sigmoid + BCE, SGD lr 0.5, "
          f"batch {args.batch}; best / median of {args.repeats} epochs")
    if args.fit:
        print(f"# Sequential.fit rows: fit as it is (FASTNN_FUSED={os.environ.get('FASTNN_FUSED', 'unset')})")
    gemm_mins = [NEVER if g == "inf" else int(g) for g in args.gemm_min.split(",")]
    rng = np.random.default_rng(0)
    for hidden in (int(h) for h in args.hidden.split(",")):
        sizes = np.array([784, hidden, 10], dtype=np.int64)
        acts = np.array([ref.SIGMOID, ref.SIGMOID], dtype=np.int64)
        _, n_params = ref.param_layout(sizes)
        init = (rng.standard_normal(n_params) / np.sqrt(784)).astype(dtype)
        hyper = np.zeros(ref.N_HYPER)
        hyper[ref.LR] = 0.5
        hyper[ref.LOSS_EPS] = 1e-7 if dtype == np.float32 else 1e-12
        hyper[ref.FLUSH_DENORMALS] = 1.0  # as fastnn.fused's runner does
        rows = []

        def timed(label, run):
            run(np.arange(200, dtype=np.int64))  # warm-up: compile, caches
            times, losses = [], []
            for _ in range(args.repeats):
                order = rng.permutation(x.shape[0]).astype(np.int64)
                t0 = time.perf_counter()
                loss = run(order)
                times.append(time.perf_counter() - t0)
                losses.append(loss)
            rows.append((label, min(times), statistics.median(times), losses[-1]))

        epoch_threads = [int(t) for t in args.epoch_threads.split(",")]
        for name, fn in backends.items():
            for gm in gemm_mins if name != "numpy" else [0]:
                for n_threads in epoch_threads if name != "numpy" else [1]:
                    params = init.copy()
                    state = np.zeros((0, n_params), dtype=dtype)
                    label = f"fused {name}" + ("" if name == "numpy" else
                                               f" T={n_threads} gemm_min={'inf' if gm == NEVER else gm}")

                    def run(order, fn=fn, gm=gm, params=params, state=state, n_threads=n_threads):
                        with threadpool_limits(1 if n_threads > 1 else args.threads, user_api="blas"):
                            return fn(x, y, order, params, state, sizes, acts, ref.BCE, ref.SGD, hyper, args.batch,
                                      0, gm, n_threads)[0] / len(order)

                    timed(label, run)
        params = init.copy()
        layers = [(params[w0:b0].reshape(sizes[l], sizes[l + 1]), params[b0:b0 + sizes[l + 1]])
                  for l, (w0, b0) in enumerate(ref.param_layout(sizes)[0])]
        timed("plain NumPy per-batch loop", lambda order: numpy_loop(x, y, order, layers, 0.5, args.batch))
        if args.fit:
            for name in args.fit.split(","):
                model = fastnn.Sequential([fastnn.layers.Dense(784, hidden), fastnn.layers.Sigmoid(),
                                           fastnn.layers.Dense(hidden, 10), fastnn.layers.Sigmoid()],
                                          dtype=dtype, backend=name)
                opt = fastnn.optim.SGD(lr=0.5)

                def fit_epoch(order, model=model, opt=opt):
                    n = len(order) if len(order) < x.shape[0] else x.shape[0]
                    h = model.fit(x[:n], labels[:n], loss="cross_entropy", optimizer=opt, epochs=1,
                                  batch_size=args.batch, seed=int(order[0]), verbose=0)
                    return h.loss[-1]

                timed(f"Sequential.fit {name}", fit_epoch)
        base = next(r[1] for r in rows if r[0] == "plain NumPy per-batch loop")
        print(f"\n784-{hidden}-10 {dtype}")
        print(f"{'path':<36}{'best s':>8}{'median s':>10}{'vs NumPy loop':>15}{'loss/sample':>13}")
        for label, best, med, loss in rows:
            shown = "" if loss is None else f"{loss:.4f}"
            print(f"{label:<36}{best:8.3f}{med:10.3f}{base / best:14.2f}x{shown:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
