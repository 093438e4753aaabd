"""Dense layer kernels: Y = X @ W + b and its gradients, on every backend."""
import numpy as np
import pytest

from kernel_helpers import RTOL, SHAPES, assert_close, assert_grad, assert_same_kind, numeric_grad, randn

# (n, n_in) from the shared shapes, each with a few output widths (1 = a single output unit).
CASES = [(n, n_in, n_out) for (n, n_in) in SHAPES for n_out in ((1, 10) if n_in < 784 else (30,))]


def _args(rng, n, n_in, n_out, dtype):
    return randn(rng, (n, n_in), dtype), randn(rng, (n_in, n_out), dtype, 0.1), randn(rng, (n_out,), dtype)


def test_forward_by_hand(bk, dtype):
    x = np.array([[1.0, 2.0]], dtype=dtype)
    w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 3.0]], dtype=dtype)
    b = np.array([0.5, 0.0, -1.0], dtype=dtype)
    y = bk.dense_forward(x, w, b)
    np.testing.assert_array_equal(y, np.array([[1.5, 2.0, 7.0]], dtype=dtype))
    assert_same_kind(y, x, "dense_forward")


@pytest.mark.parametrize("n,n_in,n_out", CASES)
def test_compiled_matches_reference(compiled, ref, dtype, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, dtype)
    dy = randn(rng, (n, n_out), dtype)
    rtol = RTOL[dtype]
    # atol: each output is a sum of n_in (or n) products; its rounding error scales with the sum of the
    # magnitudes of the terms, so scale = |x| @ |w| + |b| (resp. |dy| @ |w|.T, |x|.T @ |dy|, sum |dy|).
    ax, aw, ady = np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), np.abs(dy.astype(np.float64))
    y = compiled.dense_forward(x, w, b)
    assert_same_kind(y, x, "dense_forward")
    assert_close(y, ref.dense_forward(x, w, b), rtol, ax @ aw + np.abs(b), "dense_forward")
    dx = compiled.dense_backward_input(dy, w)
    assert_same_kind(dx, dy, "dense_backward_input")
    assert_close(dx, ref.dense_backward_input(dy, w), rtol, ady @ aw.T, "dense_backward_input")
    dw, db = compiled.dense_backward_params(x, dy)
    rdw, rdb = ref.dense_backward_params(x, dy)
    assert dw.dtype == db.dtype == dtype and dw.flags.c_contiguous and db.shape == (n_out,)
    assert_close(dw, rdw, rtol, ax.T @ ady, "dense_backward_params dw")
    assert_close(db, rdb, rtol, ady.sum(axis=0), "dense_backward_params db")


@pytest.mark.parametrize("n,n_in,n_out", [(1, 1, 1), (7, 13, 10), (128, 784, 30)])
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, np.float32)
    dy = randn(rng, (n, n_out), np.float32)
    d = lambda a: a.astype(np.float64)  # noqa: E731 -- float32 values are exact in float64
    ax, aw, ady = np.abs(d(x)), np.abs(d(w)), np.abs(d(dy))
    rtol = RTOL[np.dtype(np.float32)]
    assert_close(compiled.dense_forward(x, w, b), ref.dense_forward(d(x), d(w), d(b)), rtol, ax @ aw + np.abs(d(b)))
    assert_close(compiled.dense_backward_input(dy, w), ref.dense_backward_input(d(dy), d(w)), rtol, ady @ aw.T)
    dw, db = compiled.dense_backward_params(x, dy)
    rdw, rdb = ref.dense_backward_params(d(x), d(dy))
    assert_close(dw, rdw, rtol, ax.T @ ady)
    assert_close(db, rdb, rtol, ady.sum(axis=0))


@pytest.mark.parametrize("n,n_in,n_out", [(1, 1, 1), (3, 4, 5), (1, 6, 2), (5, 1, 3)])
def test_gradients_match_finite_differences(bk, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, np.float64)
    dy = randn(rng, (n, n_out), np.float64)
    loss = lambda: float(np.sum(bk.dense_forward(x, w, b) * dy))  # noqa: E731
    dw, db = bk.dense_backward_params(x, dy)
    assert_grad(bk.dense_backward_input(dy, w), numeric_grad(loss, x), "dx")
    assert_grad(dw, numeric_grad(loss, w), "dW")
    assert_grad(db, numeric_grad(loss, b), "db")


def test_inputs_are_not_modified(bk, dtype, rng):
    x, w, b = _args(rng, 7, 13, 10, dtype)
    dy = randn(rng, (7, 10), dtype)
    copies = [a.copy() for a in (x, w, b, dy)]
    bk.dense_forward(x, w, b)
    bk.dense_backward_input(dy, w)
    bk.dense_backward_params(x, dy)
    for before, after in zip(copies, (x, w, b, dy)):
        np.testing.assert_array_equal(before, after)
