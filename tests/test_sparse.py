"""Sparse input: the CSR product kernels against the dense ones, the Dense layer, and Sequential on CSR/CSC X."""
import tracemalloc

import numpy as np
import pytest
import scipy.sparse

import fastnn
from fastnn import Sequential, optim
from fastnn.layers import Dense, Dropout, Maxout, ReLU, Sigmoid, Softmax
from kernel_helpers import RTOL, assert_close, assert_grad, load, numeric_grad

# (n, n_in, n_out, density): one row, one column, one output, empty rows, an MNIST-like batch, outputs past
# small_sparse.h's 128 float columns a pass.
SHAPES = [(1, 1, 1, 1.0), (1, 13, 5, 0.5), (7, 1, 3, 0.6), (7, 13, 1, 0.3), (9, 40, 17, 0.0), (128, 784, 30, 0.05),
          (20, 60, 150, 0.3)]


def _csr(rng, n, n_in, density, dtype, index=np.int32):
    x = scipy.sparse.random(n, n_in, density=density, format="csr", random_state=rng, dtype=np.float64)
    x.data = rng.standard_normal(x.data.shape)
    x = x.astype(dtype)
    x.indices, x.indptr = x.indices.astype(index), x.indptr.astype(index)
    return x


@pytest.mark.parametrize("index", [np.int32, np.int64], ids=["i32", "i64"])
@pytest.mark.parametrize("n, n_in, n_out, density", SHAPES)
def test_sparse_kernels_match_the_dense_kernels(bk, dtype, rng, n, n_in, n_out, density, index):
    x = _csr(rng, n, n_in, density, dtype, index)
    dense = np.ascontiguousarray(x.toarray())
    w = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    dy = rng.standard_normal((n, n_out)).astype(dtype)
    rtol = RTOL[np.dtype(dtype)]
    y = bk.csr_dense_forward(x.data, x.indices, x.indptr, w, b)
    assert y.dtype == dtype and y.flags.c_contiguous
    # the dense kernel of the same backend, and the float64 product: within the size of the summed terms
    scale = np.abs(dense.astype(np.float64)) @ np.abs(w.astype(np.float64)) + np.abs(b)
    assert_close(y, bk.dense_forward(dense, w, b), rtol, scale, "forward vs dense")
    assert_close(y, dense.astype(np.float64) @ w.astype(np.float64) + b, rtol, scale, "forward vs float64")
    dw, db = bk.csr_dense_backward_params(x.data, x.indices, x.indptr, dy, n_in)
    dw_dense, db_dense = bk.dense_backward_params(dense, dy)
    scale_w = np.abs(dense.T.astype(np.float64)) @ np.abs(dy.astype(np.float64))
    assert dw.dtype == dtype and db.dtype == dtype
    assert_close(dw, dw_dense, rtol, scale_w, "dW vs dense")
    assert_close(dw, dense.T.astype(np.float64) @ dy.astype(np.float64), rtol, scale_w, "dW vs float64")
    assert_close(db, db_dense, rtol, np.abs(dy).sum(axis=0), "db vs dense")


def test_duplicate_and_unsorted_indices_add_up(bk, dtype, rng):
    # row 0 stores column 2 twice and its columns out of order; row 1 is empty
    data = np.array([1.5, -2.0, 0.25, 3.0], dtype=dtype)
    indices = np.array([2, 0, 2, 1], dtype=np.int32)
    indptr = np.array([0, 3, 3, 4], dtype=np.int32)
    dense = scipy.sparse.csr_matrix((data, indices, indptr), shape=(3, 3)).toarray()
    assert dense[0, 2] == 1.75
    w = rng.standard_normal((3, 4)).astype(dtype)
    b = np.zeros(4, dtype)
    dy = rng.standard_normal((3, 4)).astype(dtype)
    rtol = RTOL[np.dtype(dtype)]
    assert_close(bk.csr_dense_forward(data, indices, indptr, w, b), dense @ w, rtol, np.abs(dense) @ np.abs(w))
    dw, _ = bk.csr_dense_backward_params(data, indices, indptr, dy, 3)
    assert_close(dw, dense.T @ dy, rtol, np.abs(dense.T) @ np.abs(dy))


@pytest.mark.parametrize("bad", ["index too large", "negative index", "decreasing indptr", "indptr end"])
def test_kernels_refuse_a_broken_structure(bk, bad):
    data = np.ones(3)
    indices = np.array([0, 1, 2], dtype=np.int64)
    indptr = np.array([0, 2, 3], dtype=np.int64)
    if bad == "index too large":
        indices[2] = 3
    elif bad == "negative index":
        indices[0] = -1
    elif bad == "decreasing indptr":
        indptr = np.array([0, 3, 2, 3], dtype=np.int64)
    else:
        indptr[-1] = 2
    w, b, dy = np.ones((3, 2)), np.zeros(2), np.ones((indptr.size - 1, 2))
    with pytest.raises(ValueError):
        bk.csr_dense_forward(data, indices, indptr, w, b)
    with pytest.raises(ValueError):
        bk.csr_dense_backward_params(data, indices, indptr, dy, 3)


def test_weight_gradient_matches_finite_differences(bk, rng):
    x = _csr(rng, 6, 9, 0.4, np.float64)
    w = rng.standard_normal((9, 4))
    b = rng.standard_normal(4)
    target = rng.standard_normal((6, 4))

    def loss():  # 1/2 ||X W + b - t||^2: dC/dy = y - t
        return 0.5 * float(np.sum((bk.csr_dense_forward(x.data, x.indices, x.indptr, w, b) - target) ** 2))

    dy = bk.csr_dense_forward(x.data, x.indices, x.indptr, w, b) - target
    dw, db = bk.csr_dense_backward_params(x.data, x.indices, x.indptr, dy, 9)
    assert_grad(dw, numeric_grad(loss, w), "dW")
    assert_grad(db, numeric_grad(loss, b), "db")


@pytest.mark.parametrize("layer", ["Dense", "Maxout"])
def test_layers_take_sparse_input(on_backend, dtype, rng, layer):
    make = (lambda: Dense(30, 8, rng=1)) if layer == "Dense" else (lambda: Maxout(30, 4, pieces=2, rng=1))
    sparse_layer, dense_layer = make().astype(dtype), make().astype(dtype)
    x = _csr(rng, 11, 30, 0.2, dtype)
    grad = rng.standard_normal((11, sparse_layer.n_out)).astype(dtype)
    rtol = 10 * RTOL[np.dtype(dtype)]
    out = sparse_layer.forward(scipy.sparse.csc_matrix(x), training=True)
    np.testing.assert_allclose(out, dense_layer.forward(x.toarray(), training=True), rtol=rtol, atol=rtol)
    dx = sparse_layer.backward(grad)
    np.testing.assert_allclose(dx, dense_layer.backward(grad), rtol=rtol, atol=rtol)
    for got, want in zip(sparse_layer.grads, dense_layer.grads):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
    with pytest.raises(ValueError, match="expects 30 input features"):
        sparse_layer.forward(_csr(rng, 2, 29, 0.5, dtype))


@pytest.fixture(params=["numpy", "numba", "cython"])
def on_backend(request):
    load(request.param)
    with fastnn.use_backend(request.param):
        yield request.param


def _net(n_in, backend, dtype="float64"):
    return Sequential([Dense(n_in, 16), ReLU(), Dropout(0.1), Dense(16, 3), Softmax()], seed=0, backend=backend,
                      dtype=dtype)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_sequential_on_sparse_equals_dense(rng, backend, fmt):
    x = _csr(rng, 120, 50, 0.1, np.float64)
    y = rng.integers(0, 3, 120)
    runs = []
    for X in (x.asformat(fmt), x.toarray()):
        model = _net(50, backend)
        history = model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(1e-2), epochs=3, batch_size=16,
                            seed=0, verbose=0, use_fused=False)
        runs.append((history.loss, model.get_weights(), model.predict(X), model.evaluate(X, y)))
    (loss_s, w_s, p_s, e_s), (loss_d, w_d, p_d, e_d) = runs
    np.testing.assert_allclose(loss_s, loss_d, rtol=1e-10)
    for a, b in zip(w_s, w_d):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p_s, p_d, rtol=1e-9, atol=1e-12)
    assert e_s["accuracy"] == e_d["accuracy"]
    np.testing.assert_allclose(e_s["loss"], e_d["loss"], rtol=1e-10)


def test_sparse_nan_and_inf_are_refused_naming_the_argument():
    model = _net(4, "numpy")
    x = scipy.sparse.csr_matrix(np.array([[0, 1.0, 0, 0], [0, 0, np.nan, 2.0]]))
    with pytest.raises(ValueError, match=r"Input contains NaN. Argument 'X' \(sparse\) must not contain NaN; "
                                         r"found NaN at index \(1, 2\)"):
        model.predict(x)
    x.data[2] = np.inf
    x.data[1] = 5.0
    with pytest.raises(ValueError, match=r"Argument 'X' \(sparse\) must be finite; found inf at index \(1, 3\)"):
        model.evaluate(x, [0, 1], loss="log_likelihood")
    with pytest.raises(ValueError, match="Argument 'X_val'"):
        model.fit(np.ones((2, 4)), [0, 1], loss="log_likelihood", validation_data=(x, [0, 1]), verbose=0,
                  use_fused=False)


def test_sparse_input_errors_name_the_problem():
    model = _net(4, "numpy")
    with pytest.raises(ValueError, match="X has 5 features, but the model expects 4"):
        model.predict(scipy.sparse.csr_matrix(np.ones((2, 5))))
    with pytest.raises(ValueError, match="0 sample"):
        model.predict(scipy.sparse.csr_matrix((0, 4)))
    with pytest.raises(TypeError, match="complex"):
        model.predict(scipy.sparse.csr_matrix(np.ones((2, 4), dtype=complex)))
    broken = scipy.sparse.csr_matrix(np.eye(4))
    broken.indices[1] = 7
    with pytest.raises(ValueError, match="argument 'X' is not a valid sparse matrix"):
        model.predict(broken)
    first_dropout = Sequential([Dropout(0.1), Dense(4, 2), Sigmoid()])
    with pytest.raises(TypeError, match="needs a Dense or Maxout first layer"):
        first_dropout.predict(scipy.sparse.csr_matrix(np.eye(4)))


def test_text_like_data_with_1e5_features_trains_without_densifying(rng):
    # 2,000 documents x 100,000 terms, ~30 terms each: 60,000 stored values. Dense float32 X would take
    # 800 MB, one dense batch of 256 rows 102 MB. What fit needs besides is ~10 arrays the size of W
    # (100,000 x 8 float32, 3.2 MB): W, its gradient, Adam's two moments, the epoch's weight snapshot ...
    n, n_in = 2_000, 100_000
    y = rng.integers(0, 2, n)
    # 25 terms from the whole vocabulary, 5 from a block of 100 terms that belongs to the document's class
    cols = np.hstack([rng.integers(0, n_in, size=(n, 25)), 100 * y[:, None] + rng.integers(0, 100, size=(n, 5))])
    X = scipy.sparse.csr_matrix((np.ones(n * 30, np.float32), cols.ravel(), np.arange(0, n * 30 + 1, 30)),
                                shape=(n, n_in))
    X.sum_duplicates()
    model = Sequential([Dense(n_in, 8), ReLU(), Dense(8, 2), Softmax()], seed=0)
    tracemalloc.start()
    try:
        history = model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(1e-2), epochs=3, batch_size=256,
                            seed=0, verbose=0, use_fused=False)
        accuracy = model.evaluate(X, y)["accuracy"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 60e6, f"peak {peak / 1e6:.1f} MB: something made X (or a batch of it) dense"
    assert history.loss[-1] < history.loss[0]
    assert accuracy > 0.9
