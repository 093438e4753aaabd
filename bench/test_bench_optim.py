"""Optimizer steps, in place on one flat parameter vector: SGD, SGD with momentum, Adam.

Sizes: the parameter counts of the end-to-end configurations, 784-30-10 (23,860), 784-100-10
(79,510) and 784-512-512-10 (669,706). The same arrays are stepped again every round (values drift,
which does not change the work).
"""
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("sgd_step", "momentum_step", "adam_step"), [(23860,), (79510,), (669706,)], extra_f64=[(79510,)])


def _args(kernel, shape, dtype, rng):
    p = rng.standard_normal(shape).astype(dtype)
    g = (1e-3 * rng.standard_normal(shape)).astype(dtype)
    if kernel == "sgd_step":
        return p, g, 0.01, 0.0
    if kernel == "momentum_step":
        return p, g, g.copy(), 0.01, 0.9, 0.0, False
    return p, g, g.copy(), (g * g), 1e-3, 0.9, 0.999, 1e-8, 0.0, 10


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_optimizer_step(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    run_kernel(benchmark, backend, kernel, _args(kernel, shape, dtype, rng), shape, dtype)
