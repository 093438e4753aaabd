"""Loss values and gradients: binary cross-entropy on probabilities, softmax log-likelihood on logits.

Shapes (batch, classes): 10 outputs at batch 10, 128 and 1024.
"""
import numpy as np
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("bce_loss", "bce_grad", "softmax_nll_loss", "softmax_nll_grad"), [(10, 10), (128, 10), (1024, 10)],
              extra_f64=[(128, 10)])


def _args(kernel, shape, dtype, rng):
    n, k = shape
    labels = rng.integers(0, k, n).astype(np.int64)
    if kernel.startswith("bce"):
        a = rng.uniform(0.01, 0.99, shape).astype(dtype)
        y = np.eye(k, dtype=dtype)[labels]
        return a, y, 1e-7 if dtype == np.float32 else 1e-12
    return (3 * rng.standard_normal(shape)).astype(dtype), labels


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_loss(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    run_kernel(benchmark, backend, kernel, _args(kernel, shape, dtype, rng), shape, dtype)
