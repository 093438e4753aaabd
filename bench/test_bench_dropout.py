"""Inverted dropout forward (mask from the counter-based generator) and backward, p = 0.5.

Shapes (batch, width): 100 units at batch 128, 512 at batch 1024.
"""
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("dropout_forward", "dropout_backward"), [(128, 100), (1024, 512)], extra_f64=[(128, 100)])


def _args(kernel, shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    if kernel == "dropout_forward":
        return x, 0.5, 12345
    from fastnn._kernels.reference.dropout import dropout_forward

    return x, dropout_forward(x, 0.5, 12345)[1]


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    run_kernel(benchmark, backend, kernel, _args(kernel, shape, dtype, rng), shape, dtype)
