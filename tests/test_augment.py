"""Image augmentation kernel (rotation + shift, bilinear): exact cases by hand and every backend against
the reference."""
import numpy as np
import pytest

from kernel_helpers import RTOL, assert_close, assert_same_kind


def _params(rng, n, shift=3.0, max_angle=0.5):
    return (rng.uniform(-shift, shift, n), rng.uniform(-shift, shift, n), rng.uniform(-max_angle, max_angle, n))


def _images(rng, n, side, dtype):
    return np.ascontiguousarray(rng.uniform(-1, 1, (n, side * side)).astype(dtype))


@pytest.mark.parametrize("n,side", [(1, 1), (1, 5), (7, 5), (3, 8), (32, 28)])
def test_compiled_matches_reference(compiled, ref, dtype, rng, n, side):
    x = _images(rng, n, side, dtype)
    dx, dy, angle = _params(rng, n)
    out = compiled.augment_images(x, side, dx, dy, angle)
    assert_same_kind(out, x, "augment_images")
    assert out.shape == x.shape
    # A sum of four non-negative bilinear weights times pixels: absolute error scales with max |pixel|.
    assert_close(out, ref.augment_images(x, side, dx, dy, angle), RTOL[dtype], np.abs(x).max(), "augment")


def test_compiled_float32_matches_float64_reference(compiled, ref, rng):
    x = _images(rng, 16, 28, np.float32)
    dx, dy, angle = _params(rng, 16)
    expected = ref.augment_images(x.astype(np.float64), 28, dx, dy, angle)
    assert_close(compiled.augment_images(x, 28, dx, dy, angle), expected, RTOL[np.dtype(np.float32)], 1.0)


def test_identity_transform_is_exact(bk, dtype, rng):
    x = _images(rng, 4, 7, dtype)
    zero = np.zeros(4)
    np.testing.assert_array_equal(bk.augment_images(x, 7, zero, zero, zero), x)


def test_integer_shifts_move_pixels(bk, dtype, rng):
    side = 5
    x = _images(rng, 2, side, dtype)
    img = x.reshape(2, side, side)
    # sample 0: one column right; sample 1: two rows down. Pixels from outside are 0.
    out = bk.augment_images(x, side, np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.zeros(2)).reshape(2, side, side)
    right = np.zeros((side, side), dtype=dtype)
    right[:, 1:] = img[0, :, :-1]
    down = np.zeros((side, side), dtype=dtype)
    down[2:, :] = img[1, :-2, :]
    np.testing.assert_array_equal(out[0], right)
    np.testing.assert_array_equal(out[1], down)


def test_quarter_turn_is_rot90(bk, dtype, rng):
    side = 6
    x = _images(rng, 1, side, dtype)
    out = bk.augment_images(x, side, np.zeros(1), np.zeros(1), np.array([np.pi / 2])).reshape(side, side)
    # out[r, c] = img[c, side - 1 - r]: np.rot90 (counter-clockwise); cos(pi/2) = 6e-17 leaves ~1e-16 blur.
    atol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, np.rot90(x.reshape(side, side)), rtol=0, atol=atol)


def test_samples_are_independent(bk, dtype, rng):
    x = _images(rng, 3, 8, dtype)
    dx, dy, angle = _params(rng, 3)
    batch = bk.augment_images(x, 8, dx, dy, angle)
    for i in range(3):
        one = bk.augment_images(np.ascontiguousarray(x[i:i + 1]), 8, dx[i:i + 1], dy[i:i + 1], angle[i:i + 1])
        np.testing.assert_array_equal(batch[i:i + 1], one)
