"""How fast the matrix products of each configuration run on their own: the limit the compiled epoch meets.

    .venv/bin/python bench/product_rates.py                  # float32, the shares of 2 threads
    .venv/bin/python bench/product_rates.py --threads 1 --dtype float64

For configurations (a)-(d) of bench/e2e.py, every product one thread computes per batch when the epoch is
split across ``--threads`` (each thread owns a share of every layer's units, kernels/reference/fused.py's
``thread_shares``; the largest share is timed): the forward product of each layer, its weight gradient
and, past the first layer, the gradient of its input. Each is timed three ways on one thread: the
hand-written AVX-512 product (kernels/cython/small_gemm.h, called from a Numba loop, so no call overhead
from Python) on operands that stay in the caches (``hot``); the first layer's forward product also on new
rows every batch, taken from the whole 60,000-row training set in shuffled order as an epoch takes them
(``fresh rows``: what it costs when they were not prefetched), and so again with each batch's rows first
asked for all at once, as the epoch's ``gather`` does in a batch over ``PREFETCH_BYTES`` (``fresh rows asked
for first``, the requests included: its excess over ``hot`` is what bringing the rows in costs the
thread); and NumPy's BLAS (one thread; a b^T, the
input gradients, only there: the epoch gives those to BLAS). Rates are GFLOP/s and their share of the same run's one-thread FMA peak
(bench/peak.py). The last column of the summary is the configuration's whole epoch at the products' rates
(the sum of its products' best times, both threads working): no epoch can beat it.
"""
import argparse
import os
import sys
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e  # noqa: E402
import peak  # noqa: E402
from fastnn._kernels.numba import _small_gemm as S  # noqa: E402
from fastnn._kernels.numba._sync import prefetch_rows  # noqa: E402
from fastnn._kernels.reference.fused import thread_shares  # noqa: E402


@njit(cache=True)
def _repeat_rows(reps, trans_a, m, n, k, rows, b, ldb, c, ldc):
    for _ in range(reps):
        S.small_rows(trans_a, m, n, k, 1.0, rows, b, ldb, 0.0, c, ldc)


@njit(cache=True)
def _repeat_fresh(trans_a, m, n, k, all_rows, batches, b, ldb, c, ldc):
    """One product per batch of rows, the batches one after another (each batch's rows are new)."""
    for i in range(batches):
        rows = all_rows[i * (k if trans_a else m):(i + 1) * (k if trans_a else m)]
        S.small_rows(trans_a, m, n, k, 1.0, rows, b, ldb, 0.0, c, ldc)


@njit(cache=True)
def _repeat_fresh_burst(m, n, k, X, order, all_rows, batches, b, ldb, c, ldc):
    """As _repeat_fresh (rows in place, not transposed), each batch's rows first asked for all at once (into
    L1), as the epoch's gather does for a batch over PREFETCH_BYTES."""
    for i in range(batches):
        prefetch_rows(X, order, i * m, (i + 1) * m, True)
        S.small_rows(False, m, n, k, 1.0, all_rows[i * m:(i + 1) * m], b, ldb, 0.0, c, ldc)


@njit(cache=True)
def _repeat_strided(reps, trans_a, m, n, k, a, lda, b, ldb, c, ldc):
    for _ in range(reps):
        S.small(trans_a, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)


def products(config, threads):
    """(name, m, n, k, kind) of one thread's products per batch: kind "rows" (the input rows, read in place
    through their addresses), "rows_t" (their transpose: the first layer's weight gradient), "nn"/"tn"
    (strided) or "nt" (a b^T: always BLAS in the epoch)."""
    sizes, batch = config.sizes, config.batch
    shares = thread_shares(sizes, threads)
    own = [int(max(shares[t + 1, w] - shares[t, w] for t in range(threads))) for w in range(len(sizes))]
    out = []
    for l in range(len(sizes) - 1):
        n_in, units = sizes[l], own[l + 1]
        first = l == 0
        out.append((f"L{l} forward", batch, units, n_in, "rows" if first else "nn"))
        if first:
            out.append((f"L{l} weight gradient", n_in, units, batch, "rows_t"))
        else:  # a deeper layer's gradients go by the thread's rows (input units)
            out.append((f"L{l} weight gradient", own[l], sizes[l + 1], batch, "tn"))
            out.append((f"L{l} input gradient", batch, own[l], sizes[l + 1], "nt"))
    return out


def best_seconds(fn, budget=0.15, repeats=5):
    """Seconds per call of fn(reps) (which makes reps calls), the best of ``repeats`` timings."""
    fn(1)
    reps = max(1, int(budget / max(_timed(fn, 1), 1e-7) / repeats))
    return min(_timed(fn, reps) for _ in range(repeats)) / reps


def _timed(fn, reps):
    start = time.perf_counter()
    fn(reps)
    return time.perf_counter() - start


def time_product(m, n, k, kind, dtype, X, rng):
    """{"hand": s, "fresh": s, "burst": s, "blas": s} for one product (None where it does not apply); the
    hand-written product's result is checked against NumPy's, so what was timed computed the product."""
    ld = n + 7  # a thread's block inside a wider array, as in the epoch
    b = rng.standard_normal((k, ld)).astype(dtype)
    c = np.full((m, ld), np.nan, dtype)
    result = {"hand": None, "fresh": None, "burst": None}
    hand = S.AVAILABLE and S.cpu_has_avx512()  # else only BLAS (the portable path's products)
    if kind in ("rows", "rows_t") and hand:
        count = k if kind == "rows_t" else m
        t = kind == "rows_t"
        idx = rng.permutation(len(X))
        rows = np.array([X[i].ctypes.data for i in idx[:count]], np.int64)
        result["hand"] = best_seconds(lambda r: _repeat_rows(r, t, m, n, k, rows, b.ravel(), ld, c.ravel(), ld))
        a = X[idx[:count]].T if t else X[idx[:count]]
        _check(c[:, :n], a @ b[:, :n], k)
        if not t:  # every batch new rows, as the epoch's first product reads them
            batches = len(X) // count
            all_rows = np.array([X[i].ctypes.data for i in idx[:batches * count]], np.int64)
            _repeat_fresh(t, m, n, k, all_rows, 1, b.ravel(), ld, c.ravel(), ld)
            start = time.perf_counter()
            _repeat_fresh(t, m, n, k, all_rows, batches, b.ravel(), ld, c.ravel(), ld)
            result["fresh"] = (time.perf_counter() - start) / batches
            order = rng.permutation(len(X))[:batches * count]  # (a new epoch's order)
            all_rows = np.array([X[i].ctypes.data for i in order], np.int64)
            args = (m, n, k, X, order, all_rows)
            _repeat_fresh_burst(*args, 1, b.ravel(), ld, c.ravel(), ld)
            start = time.perf_counter()
            _repeat_fresh_burst(*args, batches, b.ravel(), ld, c.ravel(), ld)
            result["burst"] = (time.perf_counter() - start) / batches
    elif kind in ("rows", "rows_t"):
        a = X[rng.permutation(len(X))[:m if kind == "rows" else k]]
        a = a.T if kind == "rows_t" else a
    elif kind == "nt":  # the epoch gives a b^T to BLAS
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((n, k)).astype(dtype)
    elif not hand:
        a = rng.standard_normal((k, m) if kind == "tn" else (m, k)).astype(dtype)
        a = a.T if kind == "tn" else a
    else:
        t = kind == "tn"
        a = rng.standard_normal((k, m) if t else (m, k)).astype(dtype)
        result["hand"] = best_seconds(
            lambda r: _repeat_strided(r, t, m, n, k, a.ravel(), a.shape[1], b.ravel(), ld, c.ravel(), ld))
        a = a.T if t else a
        _check(c[:, :n], a @ b[:, :n], k)
    bb = b.T if kind == "nt" else b[:, :n]
    out = np.empty((m, n), dtype)
    result["blas"] = best_seconds(lambda r: [np.matmul(a, bb, out=out) for _ in range(r)])
    return result


def _check(got, want, k):
    scale = np.abs(want).max() + 1
    if not np.all(np.abs(got - want) <= 4 * k * np.finfo(got.dtype).eps * scale):
        raise RuntimeError("the hand-written product did not compute the product")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="the epoch's threads whose shares are timed")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--configs", default="abcd")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    peak1 = peak.run(threads=(1,), dtypes=(args.dtype,))[0]["gflops"] * 1e9
    (X, _), _, _ = e2e.load_data(args.dtype)
    X = np.ascontiguousarray(X)
    rng = np.random.default_rng(0)
    print(f"one-thread FMA peak {peak1 / 1e9:.1f} GFLOP/s ({args.dtype}); shares of {args.threads} thread(s)\n")
    print("| config | product | m x n x k | hand-written, hot | hand-written, fresh rows | hand-written, fresh rows "
          "asked for first | BLAS (1 thread) |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    with threadpool_limits(1):
        for key in args.configs:
            config = e2e.CONFIGS[key]
            total = 0.0
            for name, m, n, k, kind in products(config, args.threads):
                times = time_product(m, n, k, kind, dtype, X, rng)
                flops = 2.0 * m * n * k

                def cell(s):
                    return "–" if s is None else f"{s * 1e6:.1f} µs, {flops / s / peak1:.0%}"
                print(f"| {key} | {name} | {m} x {n} x {k} | {cell(times['hand'])} | {cell(times['fresh'])} | "
                      f"{cell(times['burst'])} | {cell(times['blas'])} |")
                total += min(s for s in (times["hand"], times["blas"]) if s is not None)
            batches = -(-e2e.N_TRAIN // config.batch)
            summary.append((key, total * batches, config.flops_per_epoch() / args.threads / total / batches / peak1))
    print("\n| config | epoch at the products' best rates (s) | share of the FMA peak |")
    print("|---|---|---|")
    for key, seconds, share in summary:
        print(f"| {key} | {seconds:.3f} | {share:.0%} |")


if __name__ == "__main__":
    main()
