"""Dense layer kernels: forward Y = X @ W + b, backward dX = dY @ W.T and (dW, db) = (X.T @ dY, sum dY).

Shapes (batch, n_in, n_out): the first layers of the end-to-end configurations at batch 10 and 128, a
1024-row batch into 512 units, and the 512 x 512 hidden layer of configuration (d) at batch 256.
"""
import pytest

from kernel_bench import BACKENDS, F32, F64, KERNEL_MARK, case_ids, run_kernel

pytestmark = KERNEL_MARK

SHAPES = [(10, 784, 30), (10, 784, 100), (128, 784, 100), (256, 512, 512), (1024, 784, 512)]
CASES = [(k, s, F32) for k in ("dense_forward", "dense_backward_input", "dense_backward_params") for s in SHAPES]
CASES += [(k, (128, 784, 100), F64) for k in ("dense_forward", "dense_backward_input", "dense_backward_params")]


def _args(kernel, shape, dtype, rng):
    n, n_in, n_out = shape
    x = rng.standard_normal((n, n_in)).astype(dtype)
    w = (rng.standard_normal((n_in, n_out)) / n_in**0.5).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dy = rng.standard_normal((n, n_out)).astype(dtype)
    return {"dense_forward": (x, w, b), "dense_backward_input": (dy, w), "dense_backward_params": (x, dy)}[kernel]


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dense(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    run_kernel(benchmark, backend, kernel, _args(kernel, shape, dtype, rng), shape, dtype)
