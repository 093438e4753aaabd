"""The CPU-specific paths of the compiled backends and the switch FASTNN_PORTABLE=1 that turns them off.

On an AVX-512 machine the compiled backends call small_gemm.h's AVX-512 products for small batches and
run the x86-64-v4 clones of the Cython element-wise loops; FASTNN_PORTABLE=1 (read when a backend loads)
makes them use BLAS and the SSE2 baseline instead, so that CI on one machine tests both. ``make test``
runs the kernel and fused tests a second time under FASTNN_PORTABLE=1; this file is in both runs and
checks that the paths really are the ones the environment asks for, against the CPU's flags as Linux
reports them (/proc/cpuinfo, independent of fastnn's own checks).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fastnn import backend

PORTABLE = os.environ.get("FASTNN_PORTABLE", "") not in ("", "0")
# x86-64 micro-architecture levels (the x86-64 psABI), by the /proc/cpuinfo flags they need.
V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}
V4_FLAGS = V3_FLAGS | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    raise AssertionError("/proc/cpuinfo lists no flags")


def expected_paths(portable):
    """What cpu_paths("cython") must say on this CPU, with or without FASTNN_PORTABLE."""
    flags = cpu_flags()
    if portable:
        level, tanh, products = "baseline", "baseline", False
    else:
        level = "x86-64-v4" if V4_FLAGS <= flags else "x86-64-v3" if V3_FLAGS <= flags else "baseline"
        tanh = "avx512-fma" if {"avx512f", "fma"} <= flags else "avx2-fma" if {"avx2", "fma"} <= flags else "baseline"
        products = "avx512f" in flags
    return level, tanh, products


def check_paths(paths, portable):
    level, tanh, products = expected_paths(portable)
    assert set(paths["cython"]["elementwise"].values()) == {level}, paths
    assert paths["cython"]["tanh_float32"] == tanh, paths
    assert paths["cython"]["avx512_products"] is products, paths
    assert paths["numba"]["avx512_products"] is products, paths
    assert paths["numpy"] == {}


def test_paths_follow_the_cpu_and_the_environment():
    """In this run's process: the portable paths when FASTNN_PORTABLE=1, else the widest this CPU has."""
    check_paths({name: backend.cpu_paths(name) for name in backend.BACKENDS}, PORTABLE)


SCRIPT = """
import json, sys
import numpy as np
from fastnn import backend
paths = {name: backend.cpu_paths(name) for name in backend.BACKENDS}
rng = np.random.default_rng(0)
results = {}


def optimizer_steps(k, g, dtype):
    # Three steps of every rule (with weight decay, Nesterov and AdamW's shrink) from the same start: the
    # parameters and every state array after them.
    n = g.size
    rules = [("sgd_step", 0, (0.1, 0.01)), ("momentum_step", 1, (0.1, 0.9, 0.01, True)),
             ("adagrad_step", 1, (0.1, 0.01, 1e-10, 0.01)), ("rmsprop_step", 1, (0.01, 0.99, 1e-8, 0.01)),
             ("adadelta_step", 2, (1.0, 0.9, 1e-6, 0.01)), ("adam_step", 2, (1e-3, 0.9, 0.999, 1e-8, 0.01)),
             ("adamw_step", 2, (1e-3, 0.9, 0.999, 1e-8, 0.01))]
    outs = []
    for name, n_state, hyper in rules:
        p = np.linspace(-1, 1, n).astype(dtype)
        state = [np.full(n, 0.5 * i, dtype) for i in range(n_state)]
        for step in (1, 2, 3):
            extra = (step,) if name in ("adagrad_step", "adam_step", "adamw_step") else ()
            getattr(k, name)(p, g * step, *state, *hyper, *extra)
        outs += [a.astype(np.float64).tolist() for a in (p, *state)]
    return outs


for dtype in ("float32", "float64"):
    z = (8 * rng.standard_normal((37, 301))).astype(dtype)
    k = backend.kernels("cython")
    outs = [k.sigmoid(z), k.softplus(z), k.softmax(z), k.bce_logits_loss(z, (z > 0).astype(dtype)),
            k.dropout_forward(z, 0.3, 7)[0], k.dense_forward(z[:10, :30].copy(), z[:30, :20].copy(), z[0, :20].copy()),
            k.tanh(z)]
    results[dtype] = [np.asarray(o, np.float64).tolist() for o in outs] + optimizer_steps(k, z.ravel(), dtype)
print(json.dumps({"paths": paths, "results": results}))
"""


def run_with(portable):
    env = dict(os.environ, FASTNN_PORTABLE="1" if portable else "0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def split(results):
    """SCRIPT's results of one dtype: (the first five, the product and tanh, the optimizers' arrays)."""
    arrays = [np.array(r) for r in results]
    return arrays[:5], arrays[5:7], arrays[7:]


def test_portable_switch_changes_the_paths_and_not_the_results():
    """Two processes, FASTNN_PORTABLE=1 and =0: each takes its paths, and the element-wise results are
    bit-identical (the clones compute the same operations in the same order) except float32 tanh (FMA on
    AVX2/AVX-512: within 2 ulp of the baseline) and the product (BLAS or small_gemm.h: summation order). The
    optimizers' rules too: three steps of each, parameters and state."""
    portable, native = run_with(True), run_with(False)
    check_paths(portable["paths"], True)
    check_paths(native["paths"], False)
    for dtype, eps in (("float32", np.finfo(np.float32).eps), ("float64", np.finfo(np.float64).eps)):
        same_p, (dense_p, tanh_p), steps_p = split(portable["results"][dtype])
        same_n, (dense_n, tanh_n), steps_n = split(native["results"][dtype])
        same_p, same_n = same_p + steps_p, same_n + steps_n
        for i, (a, b) in enumerate(zip(same_p, same_n)):
            np.testing.assert_array_equal(a, b, err_msg=f"{dtype} result {i}")
        np.testing.assert_allclose(tanh_p, tanh_n, rtol=2 * eps, atol=0)
        np.testing.assert_allclose(dense_p, dense_n, rtol=0, atol=50 * eps * np.abs(dense_n).max())


@pytest.mark.parametrize("value, portable", [("1", True), ("0", False), ("", False), ("yes", True)])
def test_portable_values(value, portable):
    """Only an unset, empty or "0" FASTNN_PORTABLE keeps the CPU-specific paths."""
    code = "from fastnn import backend; import json; print(json.dumps(backend.cpu_paths('cython')))"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, FASTNN_PORTABLE=value),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    paths = json.loads(proc.stdout)
    assert paths["tanh_float32"] == expected_paths(portable)[1]
    assert set(paths["elementwise"].values()) == {expected_paths(portable)[0]}
