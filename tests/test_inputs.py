"""Inputs that are valid but unusual work, with the documented conversion rule.

Rule (fit / predict / evaluate): X may have any real numeric dtype (bool, signed/unsigned integers,
float16/32/64) and any memory layout (Fortran order, strided views, negative strides, lists); it is
converted once to the model's dtype as a C-contiguous array. Labels may be any integer or bool dtype or
whole-number floats (converted to int64); float targets are converted to the model's dtype. So a call
gives bit-identical results to the same call with ``np.ascontiguousarray(X, model.dtype)``.
"""
import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn import functional as F
from fastnn.layers import Dense, Dropout, Sigmoid, Softmax

BACKENDS = ["numpy", "numba", "cython"]


@pytest.fixture
def data():
    g = np.random.default_rng(8)
    X = g.normal(size=(30, 4))
    y = g.integers(0, 3, size=30)
    return X, y


def net(backend, dtype="float32", dropout=False):
    layers = [Dense(4, 6), Sigmoid()] + ([Dropout(0.2)] if dropout else []) + [Dense(6, 3), Softmax()]
    return Sequential(layers, dtype=dtype, backend=backend, seed=2)


def trained(backend, X, y, dtype="float32", use_fused=True, **kwargs):
    model = net(backend, dtype)
    args = dict(loss="log_likelihood", optimizer=optim.SGD(0.3), epochs=2, batch_size=7, seed=1, verbose=0)
    args.update(kwargs)
    model.fit(X, y, use_fused=use_fused, **args)
    return model


def same(a, b):
    return all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights()))


def layouts(X):
    """X in unusual memory layouts, each equal in value to X."""
    wide = np.zeros((X.shape[0] * 2, X.shape[1] * 3))
    wide[::2, ::3] = X
    reversed_ = np.ascontiguousarray(X[::-1])[::-1]
    return {
        "fortran": np.asfortranarray(X),
        "strided": wide[::2, ::3],
        "negative-strides": reversed_,
        "list": X.tolist(),
        "readonly": np.frombuffer(X.tobytes(), dtype=X.dtype).reshape(X.shape),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "layer-by-layer"])
def test_any_memory_layout_trains_and_predicts_as_c_order(backend, use_fused, data):
    X, y = data
    reference = trained(backend, X, y, use_fused=use_fused)
    assert (reference.fused_runner is not None) == use_fused
    for name, Xu in layouts(X).items():
        assert not isinstance(Xu, np.ndarray) or not Xu.flags.c_contiguous or not Xu.flags.writeable, name
        model = trained(backend, Xu, y, use_fused=use_fused)
        assert same(model, reference), name
        np.testing.assert_array_equal(model.predict(Xu), reference.predict(X), err_msg=name)
        assert model.evaluate(Xu, y) == reference.evaluate(X, y), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_other_dtypes_are_converted_to_the_model_dtype(backend, dtype, data):
    X, y = data
    for source in (np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_):
        Xs = (X * 3).astype(source)
        exact = np.ascontiguousarray(Xs, dtype=dtype)  # the documented rule
        model, reference = trained(backend, Xs, y, dtype), trained(backend, exact, y, dtype)
        assert same(model, reference), source
        out = model.predict(Xs)
        assert out.dtype == np.dtype(dtype) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, reference.predict(exact))


@pytest.mark.parametrize("backend", BACKENDS)
def test_label_and_target_encodings_train_identically(backend, data):
    X, y = data
    reference = trained(backend, X, y)
    for labels in (y.astype(np.int32), y.astype(np.uint8), y.astype(np.float64), y.tolist(),
                   np.eye(3)[y], np.eye(3, dtype=np.int8)[y], np.eye(3, dtype=np.float32)[y][::-1][::-1]):
        assert same(trained(backend, X, labels), reference)
    bools = (y == 1)
    binary = Sequential([Dense(4, 1), Sigmoid()], backend=backend, seed=0)
    twin = Sequential([Dense(4, 1), Sigmoid()], backend=backend, seed=0)
    binary.fit(X, bools, loss="cross_entropy", epochs=1, batch_size=7, seed=0, verbose=0)
    twin.fit(X, bools.astype(np.float32).reshape(-1, 1), loss="cross_entropy", epochs=1, batch_size=7, seed=0, verbose=0)
    assert same(binary, twin)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "layer-by-layer"])
def test_a_single_sample(backend, use_fused, data):
    X, y = data
    model = trained(backend, X[:1], y[:1], use_fused=use_fused, epochs=3)
    assert model.optimizer.iterations == 3
    assert all(np.isfinite(w).all() for w in model.get_weights())
    out = model.predict(X[:1])
    assert out.shape == (1, 3)
    np.testing.assert_allclose(out.sum(), 1, rtol=1e-6)
    result = model.evaluate(X[:1], y[:1])
    assert result["accuracy"] in (0.0, 1.0) and np.isfinite(result["loss"])
    one_feature = Sequential([Dense(1, 1)], backend=backend, seed=0)
    one_feature.fit([[2.0]], [[1.0]], loss="quadratic", epochs=2, verbose=0)
    assert one_feature.predict([[2.0]]).shape == (1, 1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "layer-by-layer"])
def test_batch_size_larger_than_the_data_is_one_full_batch(backend, use_fused, data):
    X, y = data
    full = trained(backend, X, y, use_fused=use_fused, batch_size=None)
    for batch_size in (30, 31, 1000, 10**30):
        model = trained(backend, X, y, use_fused=use_fused, batch_size=batch_size)
        assert model.optimizer.iterations == 2, batch_size
        assert same(model, full), batch_size
    big = net(backend)
    np.testing.assert_array_equal(big.predict(X, batch_size=10**30), big.predict(X))
    # One row at a time goes through other BLAS paths (gemv), which may round differently in the last bit.
    np.testing.assert_allclose(big.predict(X, batch_size=1), big.predict(X), rtol=1e-6)


def test_dropout_model_takes_unusual_layouts_too(data):
    X, y = data
    a = net("numpy", dropout=True)
    b = net("numpy", dropout=True)
    a.fit(X, y, loss="log_likelihood", epochs=2, batch_size=5, seed=0, verbose=0)
    b.fit(np.asfortranarray(X).astype(np.float16).astype(np.float64), y, loss="log_likelihood", epochs=2,
          batch_size=5, seed=0, verbose=0)
    c = net("numpy", dropout=True)
    c.fit(X.astype(np.float16), y, loss="log_likelihood", epochs=2, batch_size=5, seed=0, verbose=0)
    assert same(b, c) and not same(a, c)  # float16 rounding is the only difference from a


@pytest.mark.parametrize("backend", BACKENDS)
def test_functional_api_takes_unusual_layouts_and_dtypes(backend, data, restore_backend):
    import fastnn

    X, _ = data
    fastnn.set_backend(backend)
    ints = (X * 10).astype(np.int16)
    np.testing.assert_array_equal(F.softmax(np.asfortranarray(X)), F.softmax(X))
    np.testing.assert_array_equal(F.softmax(X[:, ::-1]), F.softmax(np.ascontiguousarray(X[:, ::-1])))
    assert F.sigmoid(ints).dtype == np.float64  # integers -> float64 in the functional API
    np.testing.assert_array_equal(F.sigmoid(ints), F.sigmoid(ints.astype(np.float64)))
    assert F.relu(X.astype(np.float16)).dtype == np.float64
    w = np.asfortranarray(np.ones((4, 2), np.float32))
    assert F.dense_forward(X.astype(np.float32)[::2], w).dtype == np.float32
    assert F.softmax(X[:1, :1]).shape == (1, 1) and F.softmax(X[:1, :1])[0, 0] == 1
