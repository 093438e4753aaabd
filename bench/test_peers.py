"""The peers compute what fastnn computes: from the same initial weights, in the same order of rows, one
epoch of e2e.py's JAX trainer (and of its PyTorch trainer) ends at fastnn's weights, for every
configuration and both dtypes. So the benchmarks compare the same arithmetic."""
import numpy as np
import pytest

import e2e

ROWS = 600  # (a) and (b): 60 steps; (c): 4 full batches and one of 88 rows; (d): 2 full and one of 88
TOLERANCE = {"float32": {"rtol": 1e-4, "atol": 1e-5}, "float64": {"rtol": 1e-10, "atol": 1e-12}}


def after_one_epoch(trainer_class, key, dtype, backend=None):
    """(start, end) weights of one epoch of ``trainer_class`` from e2e.initial_weights in a fixed order."""
    config = e2e.CONFIGS[key]
    (X, y), _, _ = e2e.subset(e2e.load_data(dtype), ROWS)
    start = e2e.initial_weights(config, dtype, seed=3)
    args = (backend, config, X, y) if backend else (config, X, y)
    trainer = trainer_class(*args, weights=start)
    trainer.epoch(np.random.default_rng(1).permutation(ROWS))
    return [a for layer in start for a in layer], trainer.weights()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("key", sorted(e2e.CONFIGS))
@pytest.mark.parametrize("peer", ["jax", "torch"])
def test_peer_epoch_matches_fastnn(peer, key, dtype):
    reason = e2e.available(peer)
    if reason:
        pytest.skip(reason)
    trainer_class = {"jax": e2e.JaxTrainer, "torch": e2e.TorchTrainer}[peer]
    start, theirs = after_one_epoch(trainer_class, key, dtype)
    _, ours = after_one_epoch(e2e.FastnnTrainer, key, dtype, backend="cython")
    assert [a.shape for a in theirs] == [a.shape for a in ours]
    assert all(a.dtype == np.dtype(dtype) for a in theirs)
    moved = max(np.max(np.abs(a - b)) for a, b in zip(start, ours))
    assert moved > 50 * TOLERANCE[dtype]["atol"]  # the epoch changed the weights well beyond the tolerance
    for a, b in zip(theirs, ours):
        np.testing.assert_allclose(a, b, **TOLERANCE[dtype])


def test_jax_compiles_ahead_of_time():
    reason = e2e.available("jax")
    if reason:
        pytest.skip(reason)
    config = e2e.CONFIGS["c"]
    (X, y), _, _ = e2e.subset(e2e.load_data("float32"), ROWS)
    trainer = e2e.JaxTrainer(config, X, y)
    assert trainer.compile_seconds > 0
    wall, epoch = trainer.epoch()
    assert wall == epoch > 0
    assert np.isfinite(float(trainer.loss))
    assert 0.0 <= trainer.accuracy(X, y) <= 1.0
