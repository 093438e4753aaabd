"""Element-wise activations forward and backward: sigmoid, tanh, ReLU, softplus.

Shapes (batch, width): a 30-unit hidden layer at batch 10, 100 units at batch 128, 512 at batch 1024.
"""
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

NAMES = ("sigmoid", "tanh", "relu", "softplus")
KERNELS = [k for name in NAMES for k in (name, name + "_backward")]
CASES = cases(KERNELS, [(10, 30), (128, 100), (1024, 512)], extra_f64=[(128, 100)])


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_activation(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    if kernel.endswith("_backward"):
        forward = getattr(__import__("fastnn._kernels.reference.activations", fromlist=["x"]), kernel[:-9])
        args = (z, forward(z), rng.standard_normal(shape).astype(dtype))
    else:
        args = (z,)
    run_kernel(benchmark, backend, kernel, args, shape, dtype)
