"""Dense layer kernels: Y = X @ W + b and its gradients, on every backend."""
import numpy as np
import pytest

from kernel_helpers import RTOL, SHAPES, assert_close, assert_grad, assert_same_kind, load, numeric_grad, randn

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


# The compiled backends choose per product between the hand-written AVX-512 products (batches up to 512
# rows within a work and size limit; dense_backward_input: 2 to 16 rows), BLAS gemv (a product with a
# single row or column) and BLAS gemm (kernels/cython/dense.pyx's docstring): shapes on each side of each
# limit, with ragged widths (not multiples of the 16 float32 / 8 float64 lanes, 6-row blocks or panels).
PATH_CASES = [
    (2, 33, 17), (6, 100, 17), (7, 15, 100), (16, 33, 17), (17, 100, 33), (100, 15, 100),
    (512, 100, 33),  # hand-written (dx: up to 16 rows, then gemm)
    (8, 600, 300),  # x.T @ dy: hand-written in float32 (720 KB), gemm in float64 (1.4 MB)
    (256, 300, 200),  # too much work for the hand-written kernels: gemm
    (1, 17, 33), (2, 33, 1), (15, 1, 15), (33, 17, 1), (512, 1, 17),  # gemv (but x.T @ dy at 1 row)
    (513, 33, 17), (513, 1, 100), (700, 100, 15),  # more than 512 rows: gemm (and gemv)
]


def _check_all(k, ref, x, w, b, dy, rtol, what=""):
    """k's three dense kernels against the reference on these operands (float64 scales, as above)."""
    ax, aw, ady = np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)), np.abs(dy.astype(np.float64))
    d = lambda a: a.astype(np.float64)  # noqa: E731 -- the reference in float64 (exact for float32 input)
    y = k.dense_forward(x, w, b)
    assert_same_kind(y, x, "dense_forward")
    assert_close(y, ref.dense_forward(d(x), d(w), d(b)), rtol, ax @ aw + np.abs(d(b)), f"dense_forward {what}")
    dx = k.dense_backward_input(dy, w)
    assert_same_kind(dx, dy, "dense_backward_input")
    assert_close(dx, ref.dense_backward_input(d(dy), d(w)), rtol, ady @ aw.T, f"dense_backward_input {what}")
    dw, db = k.dense_backward_params(x, dy)
    rdw, rdb = ref.dense_backward_params(d(x), d(dy))
    assert dw.dtype == db.dtype == x.dtype and dw.flags.c_contiguous and db.shape == (w.shape[1],)
    assert_close(dw, rdw, rtol, ax.T @ ady, f"dense_backward_params dw {what}")
    assert_close(db, rdb, rtol, ady.sum(axis=0), f"dense_backward_params db {what}")


@pytest.mark.parametrize("n,n_in,n_out", PATH_CASES)
def test_compiled_small_and_blas_paths_match_reference(compiled, ref, dtype, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, dtype)
    dy = randn(rng, (n, n_out), dtype)
    _check_all(compiled, ref, x, w, b, dy, RTOL[dtype], f"{n}x{n_in}x{n_out}")


@pytest.mark.parametrize("n,n_in,n_out", [(10, 784, 30), (16, 784, 100), (17, 784, 100), (256, 512, 512)])
def test_compiled_benchmark_shapes_match_reference(compiled, ref, dtype, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, dtype)
    dy = randn(rng, (n, n_out), dtype)
    _check_all(compiled, ref, x, w, b, dy, RTOL[dtype], f"{n}x{n_in}x{n_out}")


@pytest.mark.parametrize("n,n_in,n_out", [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0), (1, 0, 0), (3, 0, 1),
                                          (16, 0, 2), (600, 0, 3), (0, 7, 600), (700, 5, 0)])
def test_empty_dimensions(bk, ref, dtype, rng, n, n_in, n_out):
    x, w, b = _args(rng, n, n_in, n_out, dtype)
    dy = randn(rng, (n, n_out), dtype)
    y = bk.dense_forward(x, w, b)
    np.testing.assert_array_equal(y, ref.dense_forward(x, w, b))  # b in every row when n_in == 0
    assert y.dtype == dtype and y.flags.c_contiguous
    dx = bk.dense_backward_input(dy, w)
    np.testing.assert_array_equal(dx, np.zeros((n, n_in), dtype))
    assert dx.dtype == dtype and dx.flags.c_contiguous
    dw, db = bk.dense_backward_params(x, dy)
    np.testing.assert_array_equal(dw, np.zeros((n_in, n_out), dtype))  # no rows: zeros, not garbage
    np.testing.assert_array_equal(db, ref.dense_backward_params(x, dy)[1])
    assert dw.dtype == db.dtype == dtype and dw.flags.c_contiguous


@pytest.mark.parametrize("n,n_in,n_out", [(1, 17, 33), (7, 15, 100), (16, 33, 17), (100, 15, 100), (513, 33, 17),
                                          (33, 17, 1), (600, 1, 5), (9, 1, 40)])
def test_outputs_overwrite_recycled_nan_memory(compiled, ref, dtype, rng, n, n_in, n_out):
    """Outputs start as np.empty memory, which may hold NaN (here: just freed buffers full of NaN, which the
    allocator tends to hand out again): every product must overwrite, not accumulate into, its output."""
    x, w, b = _args(rng, n, n_in, n_out, dtype)
    dy = randn(rng, (n, n_out), dtype)
    size = max(n, n_in, n_out) ** 2 + 64
    for _ in range(3):
        poison = [np.full(size, np.nan, dtype) for _ in range(4)]
        del poison
        _check_all(compiled, ref, x, w, b, dy, RTOL[dtype], "after NaN garbage")


@pytest.mark.parametrize("n", [7, 600])
def test_cython_rejects_non_contiguous_inputs(rng, n):
    k = load("cython")
    x, w, b = _args(rng, n, 26, 10, np.float64)
    dy = randn(rng, (n, 10), np.float64)
    with pytest.raises(ValueError, match="contiguous"):
        k.dense_forward(x[:, ::2], w[::2], b)
    with pytest.raises(ValueError, match="contiguous"):
        k.dense_forward(x[:, :13], np.asfortranarray(w[:13]), b)
    with pytest.raises(ValueError, match="contiguous"):
        k.dense_backward_input(dy[:, ::2], w[:, ::2])
    with pytest.raises(ValueError, match="contiguous"):
        k.dense_backward_params(x[:, ::2], dy)


@pytest.mark.filterwarnings("ignore:np.dot\\(\\) is faster on contiguous arrays")
@pytest.mark.parametrize("n", [1, 7, 16, 17, 600])
def test_numba_non_contiguous_inputs_are_read_correctly(ref, rng, n):
    """Numba compiles a version for strided inputs of dense_forward and dense_backward_input (the
    hand-written products then read C-ordered copies): results as for contiguous inputs."""
    k = load("numba")
    x = randn(rng, (n, 26), np.float64)[:, ::2]
    w = np.asfortranarray(randn(rng, (13, 10), np.float64, 0.1))
    b = randn(rng, (20,), np.float64)[::2]
    dy = randn(rng, (n, 20), np.float64)[:, ::2]
    rtol = RTOL[np.dtype(np.float64)]
    ax, aw, ady = np.abs(x), np.abs(w), np.abs(dy)
    assert_close(k.dense_forward(x, w, b), ref.dense_forward(x, w, b), rtol, ax @ aw + np.abs(b), "forward")
    assert_close(k.dense_backward_input(dy, w), ref.dense_backward_input(dy, w), rtol, ady @ aw.T, "dx")


@pytest.mark.parametrize("n", [7, 600])
def test_compiled_reject_mismatched_shapes(compiled, rng, n):
    x, w, b = _args(rng, n, 13, 10, np.float64)
    dy = randn(rng, (n, 10), np.float64)
    with pytest.raises(ValueError):
        compiled.dense_forward(x, w[:12].copy(), b)
    with pytest.raises(ValueError):
        compiled.dense_forward(x, w, b[:9].copy())
    with pytest.raises(ValueError):
        compiled.dense_backward_input(dy, w[:, :9].copy())
    with pytest.raises(ValueError):
        compiled.dense_backward_params(x[:-1].copy(), dy)
