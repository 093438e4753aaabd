"""Numeric faults: divergence stops with an error naming epoch and batch and keeps the last finite weights;
predict never returns NaN/inf; same seed + backend + thread count gives bit-identical weights.

Every test runs on all three backends, and the training ones on both the fused path (one compiled call
per epoch) and the layer-by-layer path.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastnn import Sequential, optim, threads
from fastnn.layers import Dense, Dropout, Identity, ReLU, Sigmoid, Softmax, Tanh
from fastnn.training import TrainingDiverged

BACKENDS = ["numpy", "numba", "cython"]
PATHS = pytest.mark.parametrize("use_fused", [True, False], ids=["fused", "layer-by-layer"])
MESSAGE = re.compile(r"training diverged at epoch (\d+), batch (\d+) of (\d+): the loss is (nan|inf)\. Training stopped")


def weights_equal(a, b):
    return len(a) == len(b) and all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(a, b))


def fit_path(model, X, y, use_fused, **kwargs):
    args = dict(verbose=0, use_fused=use_fused)
    args.update(kwargs)
    try:
        return model.fit(X, y, **args)
    finally:
        assert (model.fused_runner is not None) == use_fused


@pytest.mark.parametrize("backend", BACKENDS)
@PATHS
def test_too_high_a_learning_rate_stops_naming_epoch_and_batch(backend, use_fused):
    g = np.random.default_rng(0)
    X = g.normal(size=(64, 4)) * 10
    y = g.normal(size=(64, 1)) * 100
    model = Sequential([Dense(4, 16, init="large"), Tanh(), Dense(16, 1, init="large"), Identity()],
                       dtype="float32", backend=backend, seed=0)
    with pytest.raises(TrainingDiverged) as info:
        fit_path(model, X, y, use_fused, loss="quadratic", optimizer=optim.SGD(50.0, momentum=0.9), epochs=50,
                 batch_size=8, seed=0)
    err = info.value
    match = MESSAGE.search(str(err))
    assert match, str(err)
    assert (int(match[1]), int(match[2]), int(match[3])) == (err.epoch, err.batch, 8)
    assert "the model keeps its last finite weights" in str(err)
    assert len(err.history) == err.epoch - 1  # the epochs completed before it
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert all(np.isfinite(a).all() for s in model.optimizer.state for a in s.values())
    assert model.training_state is None  # the weights are mid-epoch: nothing to resume from
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@PATHS
def test_the_model_keeps_exactly_the_weights_from_before_the_bad_batch(backend, use_fused):
    # The second batch holds a sample whose output overflows float32 (1e10 * 1e30): its loss is inf. The
    # first batch is fine, so the model must end with exactly the weights one step on the first batch gives.
    X = np.array([[1.0], [0.5], [1e30], [1.0], [2.0], [1.0]])
    y = np.zeros((6, 1))

    def model():
        m = Sequential([Dense(1, 1), Identity()], dtype="float32", backend=backend)
        m.set_weights([np.array([[1e10]]), np.array([0.0])])
        return m

    diverged = model()
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2 of 3: the loss is inf") as info:
        fit_path(diverged, X, y, use_fused, loss="quadratic", optimizer=optim.Adam(0.1), epochs=3, batch_size=2,
                 shuffle=False)
    assert "(from before batch 2)" in str(info.value)
    assert (info.value.epoch, info.value.batch) == (1, 2)
    one_step = model()
    fit_path(one_step, X[:2], y[:2], use_fused, loss="quadratic", optimizer=optim.Adam(0.1), epochs=1, batch_size=2,
             shuffle=False)
    assert not weights_equal(one_step.get_weights(), model().get_weights())  # the step did change them
    assert weights_equal(diverged.get_weights(), one_step.get_weights())
    assert diverged.optimizer.iterations == 1
    np.testing.assert_array_equal(diverged.optimizer.state[0]["exp_avg"], one_step.optimizer.state[0]["exp_avg"])


@pytest.mark.parametrize("backend", BACKENDS)
@PATHS
def test_weights_that_overflow_on_the_last_step_are_caught_at_the_end_of_the_epoch(backend, use_fused):
    # One full batch: its loss (from the starting weights) is finite, but the step it takes overflows the
    # weights to inf. No later loss would see it; the end-of-epoch check does and restores the start.
    g = np.random.default_rng(1)
    X = g.normal(size=(10, 3)) * 100
    y = g.normal(size=(10, 2)) * 100
    model = Sequential([Dense(3, 2), Identity()], dtype="float32", backend=backend, seed=0)
    start = model.get_weights()
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 1, one of its 1 batches: the weights are "
                                               r"no longer finite at the end of the epoch") as info:
        fit_path(model, X, y, use_fused, loss="quadratic", optimizer=optim.SGD(3e38), epochs=2, batch_size=None)
    assert info.value.batch is None and info.value.epoch == 1
    assert "from the start of epoch 1; the optimizer state is restored too" in str(info.value)
    assert weights_equal(model.get_weights(), start)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_and_evaluate_never_return_nan_or_inf(backend):
    model = Sequential([Dense(2, 3), ReLU(), Dense(3, 2), Softmax()], dtype="float32", backend=backend)
    model.set_weights([np.full((2, 3), 1e20), np.zeros(3), np.array([[1e10, -1e10]] * 3), np.zeros(2)])
    X = np.array([[1.0, 1.0], [1e20, 1e20], [0.5, 0.5]])  # row 1: 2e40 overflows float32: inf - inf = NaN
    with pytest.raises(ValueError, match=r"the model's output for row 1 of 'X' is nan \(not finite\): values overflow "
                                         r"float32 inside the network. Scale the inputs or use dtype='float64'"):
        model.predict(X)
    with pytest.raises(ValueError, match="row 1 of 'X'"):
        model.evaluate(X, [0, 1, 0], loss="log_likelihood")
    with pytest.raises(ValueError, match="row 0 of 'X_val'"):
        model.fit(X[[0, 2]], [0, 1], loss="log_likelihood", optimizer=optim.SGD(1e-30), verbose=0,
                  validation_data=(X[[1]], [0]))
    as64 = Sequential([Dense(2, 3), ReLU(), Dense(3, 2), Softmax()], dtype="float64", backend=backend)
    as64.set_weights(model.get_weights())
    assert np.isfinite(as64.predict(X)).all()  # the remedy the message gives


# -- reproducibility --------------------------------------------------------------------------------------

def run(backend, dtype, use_fused, dropout=False, seed=3):
    # Big enough that OpenBLAS splits its products between threads (at 1 vs 2 threads the weights differ
    # here in the last bits), small enough to take a fraction of a second.
    g = np.random.default_rng(11)
    X = g.normal(size=(512, 784))
    y = g.integers(0, 4, size=512)
    hidden = [Dense(784, 128), ReLU()] + ([Dropout(0.3)] if dropout else []) + [Dense(128, 64), Sigmoid()]
    model = Sequential(hidden + [Dense(64, 4), Softmax()], dtype=dtype, backend=backend, seed=seed)
    fit_path(model, X, y, use_fused, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=1, batch_size=128,
             seed=seed, l2=0.5)
    return model.get_weights()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ["fused", "layer-by-layer", "dropout"])
def test_same_seed_same_backend_same_threads_gives_bit_identical_weights(backend, dtype, case):
    use_fused, dropout = case == "fused", case == "dropout"
    for n in (1, 2):
        with threads.use_num_threads(n):
            first = run(backend, dtype, use_fused, dropout)
            second = run(backend, dtype, use_fused, dropout)
        assert weights_equal(first, second), n
    assert not weights_equal(first, run(backend, dtype, use_fused, dropout, seed=4))


CASES = [("numpy", "dropout"), ("numba", "fused"), ("cython", "layer-by-layer")]
SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    sys.path.insert(0, sys.argv[1])
    from test_numeric_faults import CASES, digest
    print(json.dumps([digest(backend, case) for backend, case in CASES]))
""")


def digest(backend, case):
    weights = run(backend, "float32", case == "fused", case == "dropout")
    return hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()


def test_bit_identical_across_processes():
    proc = subprocess.run([sys.executable, "-c", SCRIPT, os.path.dirname(__file__)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [digest(backend, case) for backend, case in CASES]
