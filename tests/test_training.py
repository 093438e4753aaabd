"""The training loop: History, callbacks, early stopping, schedules in fit, divergence, batching,
reproducibility, augmentation hooks, and the seeds' slow-learning neuron."""
import math
import time

import numpy as np
import pytest

from fastnn import Sequential, optim
from fastnn.augment import Augment
from fastnn.layers import Dense, Dropout, Identity, ReLU, Sigmoid, Softmax
from fastnn.training import Callback, EarlyStopping, History, TrainingDiverged


@pytest.fixture
def gen():
    return np.random.default_rng(99)


@pytest.fixture
def blobs(gen):
    """Three separable Gaussian blobs in 2-D: 90 training and 30 validation samples."""
    centres = np.array([[0, 3], [3, -2], [-3, -2]], dtype=float)
    y = np.repeat(np.arange(3), 40)
    X = centres[y] + gen.normal(scale=0.7, size=(120, 2))
    order = gen.permutation(120)
    X, y = X[order], y[order]
    return (X[:90], y[:90]), (X[90:], y[90:])


def small(seed=0, dtype="float64"):
    return Sequential([Dense(2, 8), Sigmoid(), Dense(8, 3), Softmax()], dtype=dtype, seed=seed)


# -- the seeds' slow-learning neuron ------------------------------------------------------------------


class OutputRecorder(Callback):
    """Records the neuron's output after every epoch and stops once it is below 0.1."""

    def __init__(self, X):
        self.X, self.outputs = X, []

    def on_epoch_end(self, epoch, logs=None):
        self.outputs.append(float(self.model.predict(self.X)[0, 0]))
        if self.outputs[-1] < 0.1:
            self.model.stop_training = True


def neuron(w, b):
    model = Sequential([Dense(1, 1), Sigmoid()], dtype="float64")
    model.set_weights([np.array([[w]]), np.array([b])])
    return model


def epochs_to_learn(loss, w, b, limit=1000):
    X, y = np.ones((1, 1)), np.zeros((1, 1))
    model = neuron(w, b)
    recorder = OutputRecorder(X)
    model.fit(X, y, loss=loss, optimizer=optim.SGD(0.15), epochs=limit, batch_size=1, callbacks=[recorder], verbose=0)
    return len(recorder.outputs), recorder.outputs


def test_slow_learning_neuron_starts_where_the_seeds_say():
    X = np.ones((1, 1))
    assert round(float(neuron(0.6, 0.9).predict(X)[0, 0]), 2) == 0.82
    assert round(float(neuron(2.0, 2.0).predict(X)[0, 0]), 2) == 0.98


def test_quadratic_cost_learns_slowly_from_saturation_cross_entropy_does_not():
    # Measured (float64, eta 0.15): quadratic from w=b=2 needs 469 epochs to reach output < 0.1,
    # cross-entropy 50; from w=0.6, b=0.9: 273 versus 41.
    quad_epochs, quad = epochs_to_learn("quadratic", 2.0, 2.0)
    ce_epochs, ce = epochs_to_learn("cross_entropy", 2.0, 2.0)
    assert ce_epochs <= 60
    assert quad_epochs >= 5 * ce_epochs
    assert 0.98 - quad[29] < 0.01  # quadratic: almost flat for the first 30 epochs (sigma' ~ 0.018)
    assert ce[29] < 0.5  # cross-entropy: already far down
    quad_easy, _ = epochs_to_learn("quadratic", 0.6, 0.9)
    assert quad_easy < quad_epochs  # the unsaturated start learns faster under the quadratic cost


# -- History and logging ------------------------------------------------------------------------------


def test_history_records_every_epoch(blobs):
    (X, y), val = blobs
    start = time.perf_counter()
    history = small().fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.5), epochs=4, batch_size=16,
                          validation_data=val, seed=0, verbose=0)
    wall = time.perf_counter() - start
    assert isinstance(history, History) and len(history) == 4 and history.epoch == [0, 1, 2, 3]
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds", "lr"):
        assert len(getattr(history, name)) == 4, name
    assert history.loss[-1] < history.loss[0]
    assert history.val_accuracy[-1] >= 0.9
    # each epoch's own wall time: positive, and together no more than the whole fit took
    assert all(s > 0 for s in history.seconds) and sum(history.seconds) <= wall, (history.seconds, wall)
    assert history.lr == [0.5] * 4


class _SlowBatches(Callback):
    """Sleeps after every batch: an epoch then takes at least n_batches * PAUSE seconds."""

    PAUSE = 0.02

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(self.PAUSE)


def test_history_seconds_are_each_epochs_wall_time(blobs):
    """Epoch k's seconds cover its batches (at least their sleeps) but not the epochs before it."""
    (X, y), _ = blobs
    n_batches = math.ceil(len(X) / 32)
    start = time.perf_counter()
    history = small().fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.5), epochs=3, batch_size=32,
                          callbacks=[_SlowBatches()], verbose=0)
    wall = time.perf_counter() - start
    assert all(s >= n_batches * _SlowBatches.PAUSE for s in history.seconds), history.seconds
    assert sum(history.seconds) <= wall, (history.seconds, wall)
    assert history.to_dict()["val_loss"] == history.val_loss


def test_training_loss_is_the_epoch_mean_and_validation_loss_is_evaluate(blobs):
    (X, y), (Xv, yv) = blobs
    model = small()
    history = model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.1), epochs=1, batch_size=None,
                        validation_data=(Xv, yv), verbose=0)
    # full batch: one step, so the epoch loss is the loss before that step
    model2 = small()
    assert history.loss[0] == pytest.approx(model2.evaluate(X, y, loss="log_likelihood")["loss"], rel=1e-12)
    assert history.val_loss[0] == model.evaluate(Xv, yv)["loss"]


def test_accuracy_is_nan_for_non_class_targets(gen):
    X = gen.normal(size=(20, 3))
    history = Sequential([Dense(3, 2), Identity()], "float64", seed=0).fit(
        X, X[:, :2] * 0.3, loss="mse", optimizer="sgd", epochs=1, verbose=0)
    assert math.isnan(history.accuracy[0])
    assert history.to_dict()["accuracy"] == [None]


def test_verbose_prints_one_line_per_epoch(blobs, capsys):
    (X, y), val = blobs
    small().fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.5), epochs=2, batch_size=30,
                validation_data=val, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - ") and lines[1].startswith("Epoch 2/2 - ")
    assert "samples/s" in lines[0] and "loss: " in lines[0] and "val_accuracy: " in lines[0]
    small().fit(X, y, loss="log_likelihood", epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


# -- batching, seeds, resuming --------------------------------------------------------------------------


def test_batch_size_none_is_full_batch_and_one_is_stochastic(blobs):
    (X, y), _ = blobs
    model = small()
    model.fit(X, y, loss="quadratic", optimizer=optim.SGD(0.1), epochs=3, batch_size=None, verbose=0)
    assert model.optimizer.iterations == 3
    model = small()
    model.fit(X, y, loss="quadratic", optimizer=optim.SGD(0.1), epochs=1, batch_size=1, verbose=0)
    assert model.optimizer.iterations == 90
    model = small()
    model.fit(X, y, loss="quadratic", optimizer=optim.SGD(0.1), epochs=1, batch_size=32, verbose=0)
    assert model.optimizer.iterations == 3  # 32 + 32 + 26


def test_same_seed_same_weights_other_seed_other_weights(blobs):
    (X, y), _ = blobs

    def run(seed, shuffle=True):
        model = Sequential([Dense(2, 8), ReLU(), Dropout(0.3), Dense(8, 3), Softmax()], "float64", seed=0)
        model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.2), epochs=2, batch_size=8, seed=seed,
                  shuffle=shuffle, verbose=0)
        return model.get_weights()

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_fit_without_optimizer_resumes_with_the_models_optimizer(blobs):
    (X, y), _ = blobs
    straight = small()
    straight.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=2, batch_size=16, shuffle=False,
                 verbose=0)
    resumed = small()
    resumed.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=1, batch_size=16, shuffle=False,
                verbose=0)
    opt = resumed.optimizer
    resumed.fit(X, y, loss="log_likelihood", epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert resumed.optimizer is opt and opt.iterations == 12
    for u, v in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_augment_is_called_on_every_batch_with_the_fit_generator(blobs):
    (X, y), _ = blobs
    calls = []

    def augment(xb, rng):
        calls.append((xb.shape, rng))
        return xb + rng.normal(scale=0.01, size=xb.shape)

    model = small()
    model.fit(X, y, loss="log_likelihood", epochs=2, batch_size=30, augment=augment, seed=5, verbose=0)
    assert [shape for shape, _ in calls] == [(30, 2)] * 6
    assert len({id(rng) for _, rng in calls}) == 1 and isinstance(calls[0][1], np.random.Generator)
    with pytest.raises(ValueError, match="augment must return an array of shape"):
        small().fit(X, y, loss="log_likelihood", augment=lambda xb, rng: xb[:1], verbose=0)


def test_augment_class_on_images_changes_training_reproducibly(gen):
    X = gen.random((40, 784)).astype(np.float32)
    y = gen.integers(0, 10, 40)

    def run(augment):
        model = Sequential([Dense(784, 10), Softmax()], seed=0)
        model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.1), epochs=1, batch_size=10, seed=3,
                  augment=augment, verbose=0)
        return model.get_weights()[0]

    plain, aug1, aug2 = run(None), run(Augment(max_shift=2, max_angle_deg=10)), run(Augment(2, 10))
    np.testing.assert_array_equal(aug1, aug2)
    assert not np.allclose(plain, aug1)


# -- callbacks and schedules ----------------------------------------------------------------------------


def test_early_stopping_stops_after_patience_and_restores_best(blobs):
    (X, y), val = blobs
    model = small()
    # min_delta larger than any possible improvement: epoch 0 sets the best, then nothing improves
    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=100.0, restore_best_weights=True)
    best = {}

    class Spy(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                best["w"] = self.model.get_weights()

    history = model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.5), epochs=20, batch_size=16,
                        validation_data=val, callbacks=[Spy(), stopper], verbose=0)
    assert len(history) == 3 and stopper.stopped_epoch == 2 and stopper.best_epoch == 0
    for u, v in zip(model.get_weights(), best["w"]):
        np.testing.assert_array_equal(u, v)


def test_early_stopping_counts_only_epochs_without_improvement():
    stopper = EarlyStopping(monitor="val_accuracy", patience=2)
    model = small()
    stopper.set_model(model)
    stopper.on_train_begin({})
    for epoch, acc in enumerate([0.5, 0.6, 0.6, 0.7, 0.7, 0.65]):
        stopper.on_epoch_end(epoch, {"val_accuracy": acc})
        if model.stop_training:
            break
    assert stopper.mode == "max" and stopper.stopped_epoch == 5 and stopper.best == 0.7


def test_early_stopping_without_validation_data_says_what_to_do(blobs):
    (X, y), _ = blobs
    with pytest.raises(ValueError, match="validation_data"):
        small().fit(X, y, loss="log_likelihood", epochs=2, callbacks=[EarlyStopping()], verbose=0)


def test_step_schedule_inside_fit(blobs):
    (X, y), _ = blobs
    history = small().fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.8), epochs=5, batch_size=45,
                          callbacks=[optim.StepLR(step_size=2, gamma=0.5)], verbose=0)
    assert history.lr == [0.8, 0.8, 0.4, 0.4, 0.2]


def test_clip_norm_bounds_every_step(blobs):
    (X, y), _ = blobs
    model = small()
    w0 = np.concatenate([w.ravel() for w in model.get_weights()])
    model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(1.0), epochs=1, batch_size=None, clip_norm=0.01,
              verbose=0)
    w1 = np.concatenate([w.ravel() for w in model.get_weights()])
    assert np.linalg.norm(w1 - w0) <= 0.01 + 1e-9


# -- divergence ------------------------------------------------------------------------------------------


def test_diverging_training_stops_naming_epoch_and_batch_and_keeps_finite_weights(gen):
    X = gen.normal(size=(64, 4)) * 10
    y = gen.normal(size=(64, 1)) * 100
    model = Sequential([Dense(4, 16, init="large"), ReLU(), Dense(16, 1, init="large")], dtype="float32", seed=0)
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch \d+, batch \d+ of 8") as info:
        model.fit(X, y, loss="quadratic", optimizer=optim.SGD(5.0, momentum=0.5), epochs=50, batch_size=8,
                  verbose=0)
    err = info.value
    assert isinstance(err, FloatingPointError) and err.epoch >= 1 and 1 <= err.batch <= 8
    assert len(err.history) == err.epoch - 1
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert "last finite weights" in str(err)
    assert all(np.isfinite(s["momentum_buffer"]).all() for s in model.optimizer.state)
    # the message names the epoch and batch it reports as attributes
    assert f"epoch {err.epoch}, batch {err.batch} of 8" in str(err)


# -- argument checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"epochs": -1}, ValueError, "epochs"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"loss": "hinge"}, ValueError, "unknown loss 'hinge'"),
        ({"optimizer": "lbfgs"}, ValueError, "unknown optimizer"),
        ({"l2": -0.1}, ValueError, "l2"),
        ({"clip_norm": 0}, ValueError, "clip_norm"),
        ({"augment": 3}, TypeError, "augment must be callable"),
        ({"validation_data": (np.zeros((3, 2)),)}, ValueError, "validation_data must be a pair"),
        ({"validation_data": (np.zeros((3, 2)), [0, 1, 5])}, ValueError, "out of range for 3 classes"),
    ],
)
def test_fit_rejects_bad_arguments(blobs, kwargs, error, match):
    (X, y), _ = blobs
    args = {"loss": "log_likelihood", "verbose": 0, **kwargs}
    with pytest.raises(error, match=match):
        small().fit(X, y, **args)


def test_fit_rejects_bad_targets(blobs):
    (X, y), _ = blobs
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        small().fit(X, y[:-1], loss="log_likelihood", verbose=0)
    with pytest.raises(ValueError, match="one-hot"):
        small().fit(X, np.full((90, 3), 0.5), loss="log_likelihood", verbose=0)
    with pytest.raises(ValueError, match="cross-entropy targets"):
        small().fit(X, np.full((90, 3), 2.0), loss="cross_entropy", verbose=0)
    with pytest.raises(ValueError, match="Input contains NaN"):
        small().fit(np.where(X > 2, np.nan, X), y, loss="log_likelihood", verbose=0)


def test_non_finite_loss_from_finite_weights_keeps_those_weights():
    model = Sequential([Dense(1, 1), Identity()], dtype="float32")
    model.set_weights([np.array([[1e10]]), np.array([0.0])])
    X = np.array([[1.0], [1.0], [1e30], [1.0]])  # the second batch overflows float32: output inf
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 2 of 2: the loss is inf") as info:
        model.fit(X, np.zeros(4), loss="quadratic", optimizer=optim.SGD(1e-30), epochs=3, batch_size=2,
                  shuffle=False, verbose=0)
    assert "from before batch 2" in str(info.value)
    assert model.optimizer.iterations == 1  # batch 1 was applied, batch 2 was not
    assert np.isfinite(model.get_weights()[0]).all()


def test_batch_callbacks_see_every_step(blobs):
    (X, y), _ = blobs
    seen = []

    class PerBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((batch, logs["size"], logs["loss"]))

    class KerasName(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(("keras", batch))

    small().fit(X, y, loss="log_likelihood", epochs=2, batch_size=40, callbacks=[PerBatch()], verbose=0)
    assert [(b, size) for b, size, _ in seen] == [(0, 40), (1, 40), (2, 10)] * 2
    assert all(math.isfinite(value) for _, _, value in seen)
    seen.clear()
    small().fit(X, y, loss="log_likelihood", epochs=1, batch_size=40, callbacks=[KerasName()], verbose=0)
    assert seen == [("keras", 0), ("keras", 1), ("keras", 2)]
