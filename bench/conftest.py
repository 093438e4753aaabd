"""Shared set-up of the benchmarks (pytest-benchmark).

``pytest bench`` (pyproject's addopts disable timing) runs every benchmark body once as a smoke test
(a skip fails it unless tests/allowed_skips.txt allows it),
on a tiny subset for the end-to-end ones; ``make bench`` (``--benchmark-enable --benchmark-only``)
measures. Kernel benchmarks put the three backends of one kernel and shape in one group, e.g.
``softmax-128x784-float32``, so pytest-benchmark prints them as one table. ``FASTNN_BENCH_THREADS=1``
runs everything with one BLAS (and torch) thread instead of the libraries' defaults (one per core).
"""
import os
import sys
import tempfile

# A fresh Numba cache unless the caller chose one: the on-disk cache goes stale across modules (numba
# issue 8926). Must happen before numba is imported.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="fastnn-bench-numba-"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # e2e.py and kernel_bench.py, next to this file
sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
# A skip fails the run unless tests/allowed_skips.txt allows it (torch, scikit-learn and JAX are installed by
# `make test`, so their benchmarks must run too).
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401  (hooks)


def pytest_configure(config):
    # FASTNN_BENCH_THREADS=n: n BLAS (and torch) threads for the whole run; unset = the libraries' defaults.
    threads = os.environ.get("FASTNN_BENCH_THREADS", "").strip()
    if threads:
        import e2e

        e2e.set_threads(int(threads))


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a measured run, the end-to-end ratios (fastnn vs torch and the NumPy reference) and GFLOP/s."""
    results = getattr(config, "_fastnn_e2e", None)
    if not results:
        return
    import e2e

    tr = terminalreporter
    tr.section("fastnn end-to-end summary (mean seconds per epoch; ratios = other / fastnn)")
    rates = getattr(config, "_fastnn_matmul", {})
    if rates:
        tr.write_line("matmul rate (NumPy, 2048^2): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in sorted(rates.items())))
    for (key, dtype), row in sorted(results.items()):
        cfg = e2e.CONFIGS[key]
        rate = rates.get(dtype)
        parts = []
        for impl, seconds in row.items():
            share = f", {cfg.flops_per_epoch() / seconds / 1e9 / rate:.0%} of matmul" if rate and impl in ("numba", "cython", "torch", "jax") else ""
            parts.append(f"{impl} {seconds:.3f} s{share}")
        tr.write_line(f"{cfg.label} {dtype}: " + "; ".join(parts))
        for ours in ("numba", "cython"):
            if ours in row:
                vs = [f"{row[o] / row[ours]:.1f}x vs {o}" for o in ("torch", "jax", "numpy", "numpy-loop", "sklearn") if o in row]
                if vs:
                    tr.write_line(f"    fastnn {ours}: " + ", ".join(vs))
