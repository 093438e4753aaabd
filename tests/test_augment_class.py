"""fastnn.augment.Augment: the random parameters it draws and the images it makes."""
import math

import numpy as np
import pytest

from fastnn import use_backend
from fastnn.augment import Augment
from fastnn.datasets import load_mnist
from kernel_helpers import load


@pytest.fixture(scope="module")
def digits():
    (X, y), _ = load_mnist()
    return X[:64], y[:64]


def test_draw_statistics():
    aug = Augment(max_shift=2, max_angle_deg=10.0)
    n = 50_000
    dx, dy, angle = aug.draw(n, np.random.default_rng(0))
    for shift in (dx, dy):
        assert shift.dtype == np.float64 and shift.shape == (n,)
        np.testing.assert_array_equal(shift, np.round(shift))
        values, counts = np.unique(shift, return_counts=True)
        np.testing.assert_array_equal(values, [-2, -1, 0, 1, 2])  # both ends included
        # Uniform: each of the 5 values has probability 0.2 (binomial sd ~0.0018 at n=50,000).
        np.testing.assert_allclose(counts / n, 0.2, atol=0.01)
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 0.02  # independent draws
    limit = math.radians(10.0)
    assert angle.dtype == np.float64
    assert -limit <= angle.min() and angle.max() <= limit
    assert angle.min() < -0.99 * limit and angle.max() > 0.99 * limit  # radians, not degrees
    assert abs(angle.mean()) < 0.01 * limit
    np.testing.assert_allclose(angle.var(), limit**2 / 3, rtol=0.03)  # variance of U(-a, a)


def test_zero_ranges_draw_nothing_random():
    dx, dy, angle = Augment(max_shift=0, max_angle_deg=0).draw(100, np.random.default_rng(1))
    assert not dx.any() and not dy.any() and not angle.any()


def test_identity_transform_returns_equal_new_array(digits):
    X, _ = digits
    with use_backend("numpy"):
        out = Augment(max_shift=0, max_angle_deg=0)(X, np.random.default_rng(0))
    assert out is not X and out.dtype == X.dtype
    np.testing.assert_array_equal(out, X)


def test_seeded_reproducibility(digits):
    X, _ = digits
    aug = Augment()
    with use_backend("numpy"):
        a = aug(X, np.random.default_rng(42))
        b = aug(X, np.random.default_rng(42))
        c = aug(X, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shifted_digit_equals_np_roll_on_interior(digits, dtype):
    X = digits[0].astype(dtype)
    k = 3
    aug = Augment(max_shift=k, max_angle_deg=0.0)
    dx, dy, _ = aug.draw(len(X), np.random.default_rng(7))
    with use_backend("numpy"):
        out = aug(X, np.random.default_rng(7))  # the same draws as above
    assert out.dtype == dtype
    assert len(set(zip(dx, dy))) > 10  # the test sees many different shifts
    for image, shifted, sx, sy in zip(X, out, dx.astype(int), dy.astype(int)):
        rolled = np.roll(image.reshape(28, 28), (sy, sx), axis=(0, 1))
        got = shifted.reshape(28, 28)
        np.testing.assert_array_equal(got[k:-k, k:-k], rolled[k:-k, k:-k])
        # Pixels shifted in from outside the image are 0, not wrapped around as np.roll does.
        if sx > 0:
            assert not got[:, :sx].any()
        if sy < 0:
            assert not got[sy:, :].any()


def test_rotation_keeps_the_digit_centred(digits):
    X, _ = digits
    with use_backend("numpy"):
        out = Augment(max_shift=0, max_angle_deg=15.0)(X, np.random.default_rng(3))
    assert not np.array_equal(out, X)
    # A rotation about the centre moves ink but keeps its centre of mass and (bilinear) roughly its total.
    coords = np.arange(28.0)
    for before, after in zip(X.reshape(-1, 28, 28), out.reshape(-1, 28, 28)):
        np.testing.assert_allclose(after.sum(), before.sum(), rtol=0.1)
        for axis in (0, 1):
            com_b = (before.sum(axis=1 - axis) * coords).sum() / before.sum()
            com_a = (after.sum(axis=1 - axis) * coords).sum() / after.sum()
            assert abs(com_a - com_b) < 1.0


@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_compiled_backends_make_the_same_images(digits, backend):
    X, _ = digits
    load(backend)  # a backend that does not import fails the test (CI builds all three), never skips
    with use_backend(backend):
        got = Augment()(X, np.random.default_rng(5))
    with use_backend("numpy"):
        want = Augment()(X, np.random.default_rng(5))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
        Augment(max_shift=-1)
    with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
        Augment(max_shift=1.5)
    with pytest.raises(ValueError, match=r"max_angle_deg must be in \[0, 180\]"):
        Augment(max_angle_deg=-5)
    aug = Augment()
    with pytest.raises(ValueError, match=r"expects images of shape \(n, 784\), got \(2, 100\)"):
        aug(np.zeros((2, 100)), np.random.default_rng(0))
    with pytest.raises(ValueError, match="float32 or float64 images, got uint8"):
        aug(np.zeros((2, 784), dtype=np.uint8), np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        aug(np.zeros((2, 784)), 0)
