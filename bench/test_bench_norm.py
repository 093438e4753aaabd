"""Batch normalization: training-mode forward (batch statistics, running averages) and backward.

Shapes (batch, features): 100 features at batch 128, 512 at batch 1024.
"""
import numpy as np
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("batchnorm_forward_train", "batchnorm_backward"), [(128, 100), (1024, 512)], extra_f64=[(128, 100)])


def _args(kernel, shape, dtype, rng):
    n, k = shape
    x = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, k).astype(dtype)
    beta = rng.standard_normal(k).astype(dtype)
    if kernel == "batchnorm_forward_train":
        return x, gamma, beta, np.zeros(k, dtype), np.ones(k, dtype), 0.1, 1e-5
    from fastnn._kernels.reference.norm import batchnorm_forward_train

    _, xhat, inv_std = batchnorm_forward_train(x, gamma, beta, np.zeros(k, dtype), np.ones(k, dtype), 0.1, 1e-5)
    return rng.standard_normal(shape).astype(dtype), xhat, gamma, inv_std


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_batchnorm(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    run_kernel(benchmark, backend, kernel, _args(kernel, shape, dtype, rng), shape, dtype)
