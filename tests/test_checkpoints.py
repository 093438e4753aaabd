"""Checkpoints during fit and resuming: a run resumed from a checkpoint ends with bit-identical weights to
the uninterrupted run with the same seed (same backend), on the fused and the layer-by-layer paths."""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, optim
from fastnn.layers import Dense, Dropout, ReLU, Softmax
from fastnn.training import Callback, TrainingDiverged

BACKENDS = ["numpy", "numba", "cython"]
# fused: one compiled call per epoch; dropout: the same with a Dropout layer, whose masks' seeds come from
# fit's Generator; unfused: the dropout model forced layer by layer.
CASES = ["fused", "dropout", "unfused"]


def data():
    g = np.random.default_rng(21)
    return g.normal(size=(90, 5)), g.integers(0, 3, size=90)


def model(case, backend, dtype="float32"):
    layers = [Dense(5, 12), ReLU()] + ([Dropout(0.25)] if case != "fused" else []) + [Dense(12, 3), Softmax()]
    return Sequential(layers, dtype=dtype, backend=backend, seed=7)


def fit_args(case, **changes):
    args = dict(loss="log_likelihood", epochs=6, batch_size=16, seed=5, verbose=0, l2=0.1, use_fused=case != "unfused")
    args.update(changes)
    return args


def uninterrupted(case, backend, dtype="float32"):
    X, y = data()
    m = model(case, backend, dtype)
    m.fit(X, y, optimizer=optim.Adam(0.01), **fit_args(case))
    assert (m.fused_runner is not None) == (case != "unfused")
    return m


def assert_identical(a, b):
    for u, v in zip(a.get_weights(), b.get_weights()):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)
    for s, t in zip(a.optimizer.state, b.optimizer.state):
        for name in s:
            np.testing.assert_array_equal(s[name], t[name])
    assert a.optimizer.iterations == b.optimizer.iterations


class Crash(Callback):
    """Raises in on_epoch_end of 0-based epoch ``at``: training stops before that epoch is checkpointed."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_resumed_from_a_checkpoint_equals_uninterrupted(tmp_path, backend, case, dtype):
    X, y = data()
    path = tmp_path / "ckpt.npz"
    crashed = model(case, backend, dtype)
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(X, y, optimizer=optim.Adam(0.01), checkpoint=path, checkpoint_every=2, callbacks=[Crash(4)],
                    **fit_args(case))
    resumed = fastnn.load(path, backend=backend)
    assert resumed.training_state["epoch"] == 4  # epochs 1-4 done; the 5th ran but was not checkpointed
    history = resumed.fit(X, y, resume=True, **fit_args(case))
    assert history.epoch == [4, 5]
    assert (resumed.fused_runner is not None) == (case != "unfused")
    assert_identical(resumed, uninterrupted(case, backend, dtype))


@pytest.mark.parametrize("case", CASES)
def test_resuming_in_memory_equals_uninterrupted(case):
    X, y = data()
    m = model(case, "cython")
    m.fit(X, y, optimizer=optim.Adam(0.01), **fit_args(case, epochs=2))
    assert m.training_state["epoch"] == 2
    m.fit(X, y, resume=True, **fit_args(case))
    assert_identical(m, uninterrupted(case, "cython"))


def test_checkpoints_every_k_epochs_and_after_the_last(tmp_path, monkeypatch):
    X, y = data()
    saved = []
    real_save = fastnn.io.save

    def recording_save(m, path, optimizer=None):
        saved.append((os.fspath(path), m.training_state["epoch"]))
        real_save(m, path, optimizer)

    monkeypatch.setattr(fastnn.io, "save", recording_save)
    path = str(tmp_path / "ckpt.npz")
    m = model("fused", "numpy")
    m.fit(X, y, optimizer=optim.SGD(0.1, momentum=0.9), checkpoint=path, checkpoint_every=2,
          **fit_args("fused", epochs=5))
    assert saved == [(path, 2), (path, 4), (path, 5)]
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary files left
    loaded = fastnn.load(path)
    state = loaded.training_state
    assert state["epoch"] == 5 and state["n_samples"] == 90 and state["batch_size"] == 16 and state["shuffle"]
    assert state["rng"]["bit_generator"] == "PCG64"
    assert loaded.optimizer.iterations == 5 * 6 and loaded.loss.name == "log_likelihood"
    assert_identical(loaded, m)


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from test_checkpoints import data, fit_args, model
    from fastnn import optim
    from fastnn.training import Callback

    class Die(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                os.kill(os.getpid(), signal.SIGKILL)

    case, path = sys.argv[2], sys.argv[3]
    X, y = data()
    model(case, "cython").fit(X, y, optimizer=optim.Adam(0.01), checkpoint=path, callbacks=[Die()], **fit_args(case))
""")


@pytest.mark.parametrize("case", ["fused", "dropout"])
def test_a_checkpoint_survives_a_killed_training_process(tmp_path, case):
    # A real crash: the child SIGKILLs itself in the 4th epoch; the parent resumes from the checkpoint of
    # epoch 3 and must land exactly where an uninterrupted run (in this process) lands.
    path = tmp_path / "ckpt.npz"
    proc = subprocess.run([sys.executable, "-c", CHILD, os.path.dirname(__file__), case, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    X, y = data()
    resumed = fastnn.load(path, backend="cython")
    assert resumed.training_state["epoch"] == 3
    resumed.fit(X, y, resume=True, **fit_args(case))
    assert (resumed.fused_runner is not None) == (case != "unfused")
    assert_identical(resumed, uninterrupted(case, "cython"))


def test_resume_checks_that_it_can_be_exact():
    X, y = data()
    m = model("fused", "numpy")
    m.fit(X, y, optimizer=optim.SGD(0.1), **fit_args("fused", epochs=3))
    for changes, match in [
        ({"batch_size": 32}, "the recorded run used batch_size=16, this fit uses 32"),
        ({"shuffle": False}, "the recorded run used shuffle=True, this fit uses False"),
        ({"epochs": 2}, "epochs=2 is the total number of epochs when resuming, but 3 are already done"),
    ]:
        with pytest.raises(ValueError, match=match):
            m.fit(X, y, resume=True, **fit_args("fused", **changes))
    with pytest.raises(ValueError, match="the recorded run used n_samples=90, X has 60"):
        m.fit(X[:60], y[:60], resume=True, **fit_args("fused"))
    assert len(m.fit(X, y, resume=True, **fit_args("fused", epochs=3))) == 0  # nothing left to do
    with pytest.raises(ValueError, match="resume=True needs the training state"):
        model("fused", "numpy").fit(X, y, resume=True, **fit_args("fused"))


def test_no_resume_after_a_failed_or_interrupted_epoch():
    X, y = data()
    m = model("dropout", "numpy")
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, callbacks=[Crash(1)], **fit_args("dropout"))
    assert m.training_state["epoch"] == 2  # the weights are those after epoch 2: consistent
    m2 = Sequential([Dense(5, 3)], seed=0)
    with pytest.raises(TrainingDiverged):
        m2.fit(X * 1e3, np.eye(3)[y] * 1e3, optimizer=optim.SGD(10.0), loss="quadratic", epochs=20, verbose=0)
    assert m2.training_state is None
    with pytest.raises(ValueError, match="resume=True needs the training state"):
        m2.fit(X, y, resume=True, **fit_args("fused"))


def test_progress_counts_epochs_of_the_whole_run(capsys):
    X, y = data()
    m = model("fused", "numpy")
    m.fit(X, y, **fit_args("fused", epochs=2))
    m.fit(X, y, resume=True, **fit_args("fused", epochs=4, verbose=1))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 3/4", "Epoch 4/4"]


@pytest.mark.parametrize("schedule", [lambda: optim.StepLR(step_size=2, gamma=0.5),
                                      lambda: optim.ReduceLROnPlateau("loss", factor=0.5, patience=1)])
def test_learning_rate_schedules_resume_where_they_were(tmp_path, schedule):
    X, y = data()
    straight = model("fused", "cython")
    history = straight.fit(X, y, optimizer=optim.SGD(0.5, momentum=0.9), callbacks=[schedule()], **fit_args("fused"))
    assert len(set(history.lr)) > 1  # the schedule did change the rate
    path = tmp_path / "ckpt.npz"
    with pytest.raises(KeyboardInterrupt):
        model("fused", "cython").fit(X, y, optimizer=optim.SGD(0.5, momentum=0.9), checkpoint=path,
                                     callbacks=[schedule(), Crash(3)], **fit_args("fused"))
    resumed = fastnn.load(path)
    assert resumed.training_state["callbacks"][0]["type"] == type(schedule()).__name__
    with pytest.raises(ValueError, match=r"the recorded run had the schedules \['\w+'\], this fit has \[\]"):
        resumed.fit(X, y, resume=True, **fit_args("fused"))
    rest = resumed.fit(X, y, resume=True, callbacks=[schedule()], **fit_args("fused"))
    assert rest.lr == history.lr[3:]
    assert_identical(resumed, straight)
