"""Numeric helpers and tolerances for the kernel tests (fixtures live in conftest.py).

Tolerances (why these numbers): a compiled kernel may round differently from NumPy (another libm, another
summation order, fused multiply-add), so results agree to a few units in the last place, not bit for bit.
We allow ``rtol`` = 1e-12 for float64 (~4500 ulp of 2.2e-16: room for sums of 784 terms) and 1e-5 for
float32 (~80 ulp of 1.2e-7). Where a value is a difference or a sum of larger terms (a dot product, a
mean-centred value, 1 - a^2), its absolute error scales with those terms, not with the result, which
may be ~0; there ``atol = rtol * scale`` with ``scale`` the magnitude of the terms (e.g. |x| @ |w| for a
matrix product, or the largest |value| of the result). Element-wise kernels use ``scale = 0`` unless a
test says otherwise: pure relative error.
"""
import numpy as np
import pytest

from fastnn import backend

BACKENDS = backend.BACKENDS
COMPILED = ("numba", "cython")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
# 1 x 1, one row, one column, odd sizes (no multiple of a SIMD width), and an MNIST-sized batch.
SHAPES = [(1, 1), (1, 13), (7, 1), (7, 13), (128, 784)]
SMALL_SHAPES = [(1, 1), (1, 13), (7, 1), (7, 13)]
# Finite differences: central, float64, eps 1e-6 (torch.autograd.gradcheck's). The truncation error is
# O(eps^2) ~ 1e-12 and the rounding error ~ 1e-16 / eps ~ 1e-10 relative to the function's size, so the
# gradient must agree to rtol 1e-6 / atol 1e-8 (torch's gradcheck allows 1e-3 / 1e-5).
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-8


def load(name):
    """The kernel namespace of backend ``name``; an import failure fails the test (never a skip)."""
    try:
        return backend.kernels(name)
    except ImportError as exc:
        pytest.fail(f"backend {name!r} failed to import (CI builds all three backends): {exc}", pytrace=False)


def assert_close(actual, expected, rtol, scale=0.0, what="", atol=0.0):
    """Assert |actual - expected| <= rtol * (|expected| + scale) + atol element-wise.

    Also asserts equal shapes, and that infinities and NaNs sit in the same places with the same sign.
    ``scale`` is a scalar or an array broadcastable to ``expected`` (the size of the summed terms).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    nonfinite = ~np.isfinite(e)
    assert np.array_equal(np.isnan(a), np.isnan(e)), f"{what}: NaN in different places"
    assert np.array_equal(a[nonfinite & ~np.isnan(e)], e[nonfinite & ~np.isnan(e)]), f"{what}: inf mismatch"
    assert np.isfinite(a[~nonfinite]).all(), f"{what}: non-finite values where the reference is finite"
    bound = rtol * (np.abs(e) + scale) + atol
    err = np.abs(np.where(nonfinite, 0.0, a) - np.where(nonfinite, 0.0, e))
    bad = err > np.broadcast_to(bound, e.shape)
    if bad.any():
        i = np.unravel_index(np.argmax(np.where(bad, err / np.maximum(bound, 1e-300), 0)), e.shape)
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {e.size} elements differ beyond rtol={rtol:g} (scale {np.max(scale):g}); "
            f"worst at {i}: got {a[i]!r}, expected {e[i]!r}, |diff| {err[i]:.3g} > "
            f"bound {np.broadcast_to(bound, e.shape)[i]:.3g}"
        )


def assert_same_kind(out, like, what=""):
    """The kernel's output: same float dtype as the input, C-contiguous, and a new array."""
    assert out.dtype == like.dtype, f"{what}: dtype {out.dtype} != input dtype {like.dtype}"
    assert out.flags.c_contiguous, f"{what}: output is not C-contiguous"
    assert not np.shares_memory(out, like), f"{what}: output aliases its input (kernels return new arrays)"


def numeric_grad(f, x, eps=FD_EPS):
    """Central finite differences of the scalar function ``f`` at the float64 array ``x`` (same shape).

    ``x`` is perturbed in place one element at a time and restored.
    """
    assert x.dtype == np.float64
    g = np.zeros_like(x)
    flat = x.reshape(-1)
    gf = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gf[i] = (up - down) / (2 * eps)
    return g


def assert_grad(analytic, numeric, what=""):
    """Analytic gradient vs central differences: rtol FD_RTOL with atol FD_ATOL * (1 + max|numeric|)."""
    analytic = np.asarray(analytic, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    atol = FD_ATOL * (1 + np.max(np.abs(numeric)))
    np.testing.assert_allclose(analytic, numeric, rtol=FD_RTOL, atol=atol, err_msg=what)


def randn(rng, shape, dtype, scale=1.0):
    """Standard normal draws (float64) rounded to ``dtype``, C-contiguous."""
    return np.ascontiguousarray((scale * rng.standard_normal(shape)).astype(dtype))


def away_from_zero(rng, shape, dtype, gap=1e-2):
    """Normal draws with |value| >= gap, so kinks at 0 (ReLU-like) are never within a finite-difference step."""
    z = rng.standard_normal(shape)
    z = np.where(np.abs(z) < gap, np.sign(z + 1e-300) * gap + z, z)
    return np.ascontiguousarray(z.astype(dtype))
