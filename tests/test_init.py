"""Initializers: the statistics of what they draw (not just shapes), seeding and errors."""
import numpy as np
import pytest

from fastnn import Sequential
from fastnn.init import INITIALIZERS, get_rng, initialize
from fastnn.layers import Dense, Maxout, Sigmoid

N_IN, N_OUT = 400, 300  # 120,000 weights: sample mean/std within ~1% of their targets


def _stats(init):
    w, b = initialize(init, N_IN, N_OUT, np.random.default_rng(1))
    return w, b


def test_large_is_standard_normal_for_weights_and_biases():
    w, b = _stats("large")
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01
    big_b = initialize("large", 2, 20000, 2)[1]
    assert abs(big_b.mean()) < 0.03 and abs(big_b.std() - 1.0) < 0.02


def test_normalized_scales_weights_by_sqrt_fan_in_but_not_biases():
    w, _ = _stats("normalized")
    assert abs(w.std() - 1 / np.sqrt(N_IN)) < 0.01 / np.sqrt(N_IN)
    assert abs(w.mean()) < 0.01 / np.sqrt(N_IN) * 3
    big_b = initialize("normalized", 784, 20000, 2)[1]
    assert abs(big_b.std() - 1.0) < 0.02  # biases stay N(0, 1), as in the seeds


def test_xavier_is_glorot_uniform_with_zero_biases():
    w, b = _stats("xavier")
    a = np.sqrt(6 / (N_IN + N_OUT))
    assert w.min() >= -a and w.max() <= a
    assert w.min() < -0.99 * a and w.max() > 0.99 * a  # fills the whole interval
    assert abs(w.std() - a / np.sqrt(3)) < 0.01 * a  # uniform's std
    # uniform, not normal: a quarter of the mass in each quarter of the interval
    hist, _ = np.histogram(w, bins=4, range=(-a, a))
    np.testing.assert_allclose(hist / w.size, 0.25, atol=0.01)
    assert not b.any()


def test_xavier_normal_and_he_variants():
    w, b = _stats("xavier_normal")
    assert abs(w.std() - np.sqrt(2 / (N_IN + N_OUT))) < 0.01 * np.sqrt(2 / (N_IN + N_OUT))
    w, b = _stats("he")
    assert abs(w.std() - np.sqrt(2 / N_IN)) < 0.01 * np.sqrt(2 / N_IN)
    assert abs(w.mean()) < 0.01 and not b.any()
    w, b = _stats("he_uniform")
    assert abs(w.max() - np.sqrt(6 / N_IN)) < 0.01 and abs(w.std() - np.sqrt(2 / N_IN)) < 0.01 * np.sqrt(2 / N_IN)


@pytest.mark.parametrize("init", sorted(INITIALIZERS))
def test_shapes_dtypes_and_seeding(init):
    w, b = initialize(init, 5, 3, 7)
    assert w.shape == (5, 3) and b.shape == (3,) and w.dtype == b.dtype == np.float64
    assert w.flags.c_contiguous
    w2, b2 = initialize(init, 5, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(b, b2)


def test_dense_uses_its_init_and_float32_model_rounds_the_same_draws():
    m64 = Sequential([Dense(20, 10, init="large"), Sigmoid()], dtype="float64", seed=3)
    m32 = Sequential([Dense(20, 10, init="large"), Sigmoid()], dtype="float32", seed=3)
    w64, w32 = m64.get_weights(), m32.get_weights()
    assert w32[0].dtype == np.float32 and w64[0].dtype == np.float64
    np.testing.assert_array_equal(w32[0], w64[0].astype(np.float32))
    assert abs(w64[0].std() - 1) < 0.2  # "large", not "normalized" (which would be ~0.22)


def test_sequential_seed_makes_models_reproducible_and_seeds_differ():
    def build(seed):
        return Sequential([Dense(8, 6), Sigmoid(), Maxout(6, 4, pieces=3), Dense(4, 2)], seed=seed).get_weights()

    a, b, c = build(0), build(0), build(1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_custom_callable_and_errors():
    def ones(n_in, n_out, rng):
        return np.ones((n_in, n_out)), np.full(n_out, 2.0)

    w, b = initialize(ones, 3, 2)
    assert (w == 1).all() and (b == 2).all()
    with pytest.raises(ValueError, match="unknown initializer 'glorot'"):
        initialize("glorot", 3, 2)
    with pytest.raises(ValueError, match="returned shapes"):
        initialize(lambda i, o, r: (np.ones((o, i)), np.ones(o)), 3, 2)
    with pytest.raises(TypeError, match="rng must be"):
        get_rng("seed")
    with pytest.raises(ValueError, match="n_in must be a positive integer"):
        Dense(0, 3)
