"""End-to-end training: seconds per epoch on full Fashion-MNIST, fastnn against PyTorch, JAX and scikit-learn.

Groups ``epoch-<config>-<sizes>-<dtype>``, members numba, cython, numpy (fastnn's reference backend),
numpy-loop (a hand-written NumPy loop), torch, sklearn and jax (each skipped when not installed, with the
reason "<package> not installed (bench extra)": they are in the optional ``bench`` extra; JAX uses every
CPU of the process whatever FASTNN_BENCH_THREADS says, and its compile is outside the timed rounds).
The four configurations are those of issue 4 (see e2e.CONFIGS). Also ``matmul-2048-<dtype>``: NumPy's
matrix-multiply rate, the yardstick of the GFLOP/s shares printed in the summary at the end of a measured
run. With timing disabled (the normal ``pytest bench``), every body runs once on 300 rows.
"""
import numpy as np
import pytest

import e2e

SMOKE_ROWS = 300
ROUNDS = 2  # epochs timed per member, each a whole epoch (warm-up and JIT compile excluded); keeps make bench short


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_rate(benchmark, dtype, request):
    size = 256 if benchmark.disabled else 2048
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)).astype(dtype), rng.random((size, size)).astype(dtype)
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    benchmark.group = f"matmul-{size}-{dtype}"
    benchmark.extra_info["flops"] = 2 * size**3
    benchmark.pedantic(np.matmul, args=(a, b), kwargs={"out": out}, rounds=5, iterations=1)
    if not benchmark.disabled:
        rate = 2 * size**3 / benchmark.stats.stats.min / 1e9
        benchmark.extra_info["gflops"] = rate
        if not hasattr(request.config, "_fastnn_matmul"):
            request.config._fastnn_matmul = {}
        request.config._fastnn_matmul[dtype] = rate
    np.testing.assert_allclose(out[:2, :2], (a[:2] @ b[:, :2]), rtol=1e-4)


@pytest.mark.parametrize("impl", e2e.IMPLS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("key", sorted(e2e.CONFIGS))
def test_epoch(benchmark, key, dtype, impl, request):
    reason = e2e.available(impl)
    if reason:
        pytest.skip(reason)
    config = e2e.CONFIGS[key]
    data = e2e.load_data(dtype)
    if benchmark.disabled:
        data = e2e.subset(data, SMOKE_ROWS)
    (X, y), _, source = data
    if not benchmark.disabled:
        e2e.warm_up(impl, config, dtype)
    trainer = e2e.make_trainer(impl, config, X, y)
    benchmark.group = f"epoch-{key}-{config.name}-{dtype}"
    benchmark.extra_info.update(config=config.label, impl=impl, data=source, rows=X.shape[0],
                                flops_per_epoch=config.flops_per_epoch(X.shape[0]))
    epoch_seconds = []
    benchmark.pedantic(lambda: epoch_seconds.append(trainer.epoch()[1]), rounds=ROUNDS, iterations=1)
    if impl in e2e.FASTNN:
        # fit must take the fused one-call-per-epoch path for every configuration here.
        assert trainer.fused, f"{impl}: fit did not use the fused epoch for {config.label}"
        benchmark.extra_info["epoch_seconds_in_fit"] = min(epoch_seconds)
    if not benchmark.disabled:
        if not hasattr(request.config, "_fastnn_e2e"):
            request.config._fastnn_e2e = {}
        request.config._fastnn_e2e.setdefault((key, dtype), {})[impl] = benchmark.stats.stats.mean
