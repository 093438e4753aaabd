"""The Numba backend loads from a warm on-disk cache without crashing.

A cached Numba function that is recursive crashed (segfault) when a second process loaded it from the
cache (numba issue 6061); the pairwise sum in kernels/numba/_math.py was rewritten with an explicit
stack for that reason. This test runs every kernel of ``fastnn.backend.KERNELS`` on the numba backend,
float32 and float64, in two processes one after the other with the same fresh ``NUMBA_CACHE_DIR``: the
first compiles and writes the cache, the second must load every kernel from it (no compilation) and exit 0.

Run by hand (prints each process's time and what was compiled or loaded):
    python tests/test_numba_cache.py [cache-dir]
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.sparse

HERE = os.path.dirname(os.path.abspath(__file__))


def _calls(dtype):
    """One call per kernel name of KERNELS, with small arguments of the given dtype (shapes as in tests/)."""
    from fastnn import backend
    from fastnn._kernels.reference import fused as F

    rng = np.random.default_rng(0)
    n, k = 5, 12

    def arr(*shape):
        return np.ascontiguousarray(rng.standard_normal(shape).astype(dtype))

    z, a, da, y = arr(n, k), arr(n, k), arr(n, k), rng.random((n, k)).astype(dtype)
    p = np.full((n, k), 1.0 / k, dtype=dtype)
    labels = rng.integers(0, k, n).astype(np.int64)
    alpha, w, b, x = arr(k), arr(7, k), arr(k), arr(n, 7)
    side = 6
    images = rng.random((n, side * side)).astype(dtype)
    sizes = np.array([7, 6, 3], dtype=np.int64)
    _, n_params = F.param_layout(sizes)
    order = rng.permutation(n).astype(np.int64)
    onehot = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    hyper = np.zeros(F.N_HYPER)
    hyper[[F.LR, F.MU, F.BETA1, F.BETA2, F.EPS, F.LOSS_EPS]] = 0.05, 0.9, 0.9, 0.999, 1e-8, 1e-7
    _, idx = backend.kernels("numpy").maxout(z, 3)
    csr = scipy.sparse.csr_matrix(np.where(x > 0.5, x, 0))
    params, state = arr(n_params), np.zeros((F.STATE_ROWS[F.ADAM], n_params), dtype=dtype)
    return {
        "dense_forward": lambda K: K.dense_forward(x, w, b),
        "dense_backward_input": lambda K: K.dense_backward_input(z, w),
        "dense_backward_params": lambda K: K.dense_backward_params(x, z),
        "csr_dense_forward": lambda K: K.csr_dense_forward(csr.data, csr.indices, csr.indptr, w, b),
        "csr_dense_backward_params": lambda K: K.csr_dense_backward_params(csr.data, csr.indices, csr.indptr, z, 7),
        "sigmoid": lambda K: K.sigmoid(z),
        "sigmoid_backward": lambda K: K.sigmoid_backward(z, a, da),
        "tanh": lambda K: K.tanh(z),
        "tanh_backward": lambda K: K.tanh_backward(z, a, da),
        "relu": lambda K: K.relu(z),
        "relu_backward": lambda K: K.relu_backward(z, a, da),
        "leaky_relu": lambda K: K.leaky_relu(z, 0.01),
        "leaky_relu_backward": lambda K: K.leaky_relu_backward(z, a, da, 0.01),
        "prelu": lambda K: K.prelu(z, alpha),
        "prelu_backward": lambda K: K.prelu_backward(z, alpha, da),
        "softplus": lambda K: K.softplus(z),
        "softplus_backward": lambda K: K.softplus_backward(z, a, da),
        "exp": lambda K: K.exp(z),
        "exp_backward": lambda K: K.exp_backward(z, a, da),
        "identity": lambda K: K.identity(z),
        "identity_backward": lambda K: K.identity_backward(z, a, da),
        "maxout": lambda K: K.maxout(z, 3),
        "maxout_backward": lambda K: K.maxout_backward(arr(n, k // 3), idx, 3),
        "softmax": lambda K: K.softmax(z),
        "log_softmax": lambda K: K.log_softmax(z),
        "logsumexp": lambda K: K.logsumexp(z),
        "softmax_backward": lambda K: K.softmax_backward(z, p, da),
        "log_softmax_backward": lambda K: K.log_softmax_backward(z, np.log(p), da),
        "logsumexp_backward": lambda K: K.logsumexp_backward(z, arr(n)),
        "quadratic_loss": lambda K: K.quadratic_loss(a, y),
        "quadratic_grad": lambda K: K.quadratic_grad(a, y),
        "mse_loss": lambda K: K.mse_loss(a, y),
        "mse_grad": lambda K: K.mse_grad(a, y),
        "bce_loss": lambda K: K.bce_loss(y, y, 1e-7),
        "bce_grad": lambda K: K.bce_grad(y, y, 1e-7),
        "bce_logits_loss": lambda K: K.bce_logits_loss(z, y),
        "bce_logits_grad": lambda K: K.bce_logits_grad(z, y),
        "nll_loss": lambda K: K.nll_loss(p, labels, 1e-7),
        "nll_grad": lambda K: K.nll_grad(p, labels, 1e-7),
        "softmax_nll_loss": lambda K: K.softmax_nll_loss(z, labels),
        "softmax_nll_grad": lambda K: K.softmax_nll_grad(z, labels),
        "sigmoid_bce_delta": lambda K: K.sigmoid_bce_delta(y, y),
        "softmax_nll_delta": lambda K: K.softmax_nll_delta(p, labels),
        "poisson_loss": lambda K: K.poisson_loss(np.abs(a), y, 1e-7),
        "poisson_grad": lambda K: K.poisson_grad(np.abs(a), y, 1e-7),
        "exp_poisson_delta": lambda K: K.exp_poisson_delta(np.abs(a), y),
        "sgd_step": lambda K: K.sgd_step(arr(k), arr(k), 0.1, 0.01),
        "momentum_step": lambda K: K.momentum_step(arr(k), arr(k), arr(k), 0.1, 0.9, 0.01, True),
        "adagrad_step": lambda K: K.adagrad_step(arr(k), arr(k), np.abs(arr(k)), 0.1, 0.01, 1e-10, 0.01, 3),
        "rmsprop_step": lambda K: K.rmsprop_step(arr(k), arr(k), np.abs(arr(k)), 0.01, 0.99, 1e-8, 0.01),
        "adadelta_step": lambda K: K.adadelta_step(arr(k), arr(k), np.abs(arr(k)), np.abs(arr(k)), 1.0, 0.9,
                                                   1e-6, 0.01),
        "adam_step": lambda K: K.adam_step(arr(k), arr(k), arr(k), np.abs(arr(k)), 1e-3, 0.9, 0.999, 1e-8, 0.01, 3),
        "adamw_step": lambda K: K.adamw_step(arr(k), arr(k), arr(k), np.abs(arr(k)), 1e-3, 0.9, 0.999, 1e-8, 0.01,
                                             3),
        "add_l2_grad": lambda K: K.add_l2_grad(arr(k), arr(k), 0.01),
        "add_l1_grad": lambda K: K.add_l1_grad(arr(k), arr(k), 0.01),
        # 300 elements: past the 128-element leaf, so the explicit-stack path of pairwise_sum runs
        "sum_squares": lambda K: K.sum_squares(arr(300)),
        "sum_abs": lambda K: K.sum_abs(arr(300)),
        "scale_inplace": lambda K: K.scale_inplace(arr(k), 0.5),
        "batchnorm_forward_train": lambda K: K.batchnorm_forward_train(z, np.ones(k, dtype), np.zeros(k, dtype),
                                                                       np.zeros(k, dtype), np.ones(k, dtype), 0.1,
                                                                       1e-5),
        "batchnorm_forward_eval": lambda K: K.batchnorm_forward_eval(z, np.ones(k, dtype), np.zeros(k, dtype),
                                                                     np.zeros(k, dtype), np.ones(k, dtype), 1e-5),
        "batchnorm_backward": lambda K: K.batchnorm_backward(da, z, np.ones(k, dtype), np.ones(k, dtype)),
        "dropout_forward": lambda K: K.dropout_forward(z, 0.3, 7),
        "dropout_backward": lambda K: K.dropout_backward(da, a),
        "augment_images": lambda K: K.augment_images(images, side, rng.random(n), rng.random(n), rng.random(n)),
        # every output activation and optimizer of the fused epoch shares one compiled signature per dtype
        "train_epoch": lambda K: K.train_epoch(x, onehot, order, params, state, sizes,
                                               np.array([F.TANH, F.SOFTMAX], dtype=np.int64), F.NLL, F.ADAM,
                                               hyper, 2, 0, 1 << 62),
        "predict_rows": lambda K: K.predict_rows(x, params, np.zeros(1, dtype), F.epoch_layout(sizes, 1),
                                                 sizes, np.array([F.TANH, F.SOFTMAX], dtype=np.int64),
                                                 np.ones(2, np.int64), np.zeros((2, 2)), np.zeros(2),
                                                 np.empty((n, 3), dtype)),
    }


def run_all(dtypes):
    """Call every kernel on the numba backend in each dtype; return a report of what Numba compiled/loaded."""
    started = time.perf_counter()
    import numba

    from fastnn import backend

    K = backend.kernels("numba")
    names = [name for concept in backend.KERNELS.values() for name in concept]
    for dtype in dtypes:
        calls = _calls(dtype)
        missing = sorted(set(names) - set(calls))
        assert not missing, f"no call recipe for kernels {missing}: add them to tests/test_numba_cache.py"
        for name in names:
            calls[name](K)
    # Every Numba dispatcher of the backend's modules (kernels and the helpers they call).
    import importlib

    hits, misses = {}, {}
    kernels = sorted(f"{concept}.{name}" for concept, names in backend.KERNELS.items() for name in names
                     if isinstance(getattr(K, name), numba.core.registry.CPUDispatcher))
    # train_epoch is plain Python that runs its compiled per-thread worker: that worker must load too.
    assert isinstance(importlib.import_module("fastnn._kernels.numba.fused").train_epoch_worker,
                      numba.core.registry.CPUDispatcher)
    kernels.append("fused.train_epoch_worker")
    for concept in list(backend.KERNELS) + ["_math"]:
        module = importlib.import_module(f"fastnn._kernels.numba.{concept}")
        for attr, obj in vars(module).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.__module__ == module.__name__:
                stats = obj.stats
                key = f"{concept}.{attr}"
                if sum(stats.cache_hits.values()):
                    hits[key] = sum(stats.cache_hits.values())
                if sum(stats.cache_misses.values()):
                    misses[key] = sum(stats.cache_misses.values())
    return {"kernels": len(names), "compiled_kernels": kernels, "seconds": round(time.perf_counter() - started, 2),
            "cache_hits": hits, "cache_misses": misses}


def _run_process(cache_dir, dtypes):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "test_numba_cache.py"), "--worker", *dtypes], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"exit code {proc.returncode} (-11 is a segfault) with NUMBA_CACHE_DIR={cache_dir}\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_numba_kernel_loads_from_a_warm_cache():
    # float32 only: compiling every kernel cold takes ~30 s per dtype here, and float64 runs the same code
    # (`python tests/test_numba_cache.py` checks both dtypes).
    dtypes = ["float32"]
    with tempfile.TemporaryDirectory(prefix="fastnn-cache-test-") as cache_dir:
        cold = _run_process(cache_dir, dtypes)
        assert cold["cache_misses"], "the first process compiled nothing: the cache directory was not fresh"
        warm = _run_process(cache_dir, dtypes)
        # The second process must really load from the cache (the case that crashed), not recompile.
        assert not warm["cache_misses"], f"recompiled in the warm process: {warm['cache_misses']}"
        # Every compiled kernel came from the cache (helpers inlined into them are never loaded themselves).
        not_loaded = [name for name in warm["compiled_kernels"] if warm["cache_hits"].get(name, 0) < len(dtypes)]
        assert not not_loaded, f"kernels not loaded from the cache: {not_loaded}"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(run_all([np.dtype(name) for name in sys.argv[2:]])))
    else:
        cache_dir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="fastnn-cache-")
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            report = _run_process(cache_dir, ["float32", "float64"])
            print(f"{label}: process {time.perf_counter() - t0:.1f} s (kernels {report['seconds']} s), "
                  f"compiled {len(report['cache_misses'])} functions, loaded {len(report['cache_hits'])} from cache")
        print("cache:", cache_dir)
