"""Inference: ``model.predict`` (the compiled forward pass) against PyTorch and ONNX Runtime, groups
``predict-<network>-<rows>`` (bench/inference.py's implementations, which print the ratios of one run).
With timing disabled (the normal ``pytest bench``) each member predicts once, and every member's output is
checked against fastnn's numba backend."""
import numpy as np
import pytest

import inference

_CALLERS = {}


@pytest.mark.parametrize("impl", ["fastnn-numba", "fastnn-cython", "torch", "onnxruntime"])
@pytest.mark.parametrize("rows", inference.ROWS)
@pytest.mark.parametrize("network", list(inference.NETWORKS))
def test_predict(benchmark, network, rows, impl):
    if network not in _CALLERS:
        _CALLERS[network] = inference.callers(inference.NETWORKS[network], 2)
    fn, why = _CALLERS[network][impl]
    if fn is None:
        pytest.skip(why)
    X = np.random.default_rng(0).random((rows, inference.NETWORKS[network][0])).astype(np.float32)
    np.testing.assert_allclose(fn(X), _CALLERS[network]["fastnn-numba"][0](X), rtol=1e-4, atol=1e-6)
    benchmark.group = f"predict-{network}-{rows}"
    benchmark.pedantic(fn, args=(X,), rounds=1 if benchmark.disabled else 20, iterations=1 if rows > 1 else 100)
