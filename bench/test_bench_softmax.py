"""Softmax, log-softmax and log-sum-exp along the last axis.

Shapes (batch, width): 10-class outputs at batch 10, 128 and 1024, and wide rows (128 x 784, 1024 x 512).
"""
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("softmax", "log_softmax", "logsumexp"), [(10, 10), (128, 10), (1024, 10), (128, 784), (1024, 512)],
              extra_f64=[(128, 10)])


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    z = (5 * rng.standard_normal(shape)).astype(dtype)
    run_kernel(benchmark, backend, kernel, (z,), shape, dtype)
