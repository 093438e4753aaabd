"""Image augmentation: per-sample rotation and shift of 28 x 28 images with bilinear interpolation.

Shapes (batch, pixels): batch 10 and 128 of 784-pixel images.
"""
import pytest

from kernel_bench import BACKENDS, KERNEL_MARK, case_ids, cases, run_kernel

pytestmark = KERNEL_MARK

CASES = cases(("augment_images",), [(10, 784), (128, 784)], extra_f64=[(128, 784)])


@pytest.mark.parametrize("case", CASES, ids=case_ids)
@pytest.mark.parametrize("backend", BACKENDS)
def test_augment(benchmark, backend, case, rng):
    kernel, shape, dtype = case
    n = shape[0]
    x = rng.random(shape).astype(dtype)
    dx, dy = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
    angle = rng.uniform(-0.2, 0.2, n)
    run_kernel(benchmark, backend, kernel, (x, 28, dx, dy, angle), shape, dtype)
