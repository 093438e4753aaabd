"""The compiled epoch on everything fit offers, against the reference and the step-by-step engine.

- Every backend's ``train_epoch`` equals the reference's (kernels/reference/fused.py, composed of the
  reference per-layer kernels) for every optimizer x every loss with the output activations that make
  sense for it, each case also with one of the options (dropout, BatchNorm, PReLU, Maxout hidden and
  output, BatchNorm after Maxout, clip_norm, augmentation, sample weights), cycled so that every option
  meets every optimizer, on 1, 2 and 3 threads, two epochs.
- fit's compiled engine equals its step-by-step engine (use_fused=False) on every backend; both are
  compared with an independent computation of the sample-weighted loss (torch autograd); class weights
  "balanced" equal scikit-learn's; fit says once, naming the reason, when it cannot compile, and History
  says which engine ran; progress reaches callbacks from the compiled epoch; Ctrl-C stops it after the
  batch under way with the weights and optimizer state of that step.

Tolerances after two epochs (10 updates of a network of 7-37-21-3), relative to the largest |parameter|:
float64 1e-10 (observed <= 2e-13: BLAS vs loop summation orders), float32 2e-4 (observed <= 2e-6; Adam
and Adagrad turn a 1-ulp difference in a small gradient into a larger step difference).
"""
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import Sequential, losses, optim
from fastnn import layers as L
from fastnn._kernels import constants as C
from fastnn._kernels.reference import fused as F
from fastnn.augment import Augment
from fastnn.training import Callback, TrainingInterrupted
from kernel_helpers import DTYPES, assert_close, load

RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-10}

OPTIMIZERS = {"sgd": F.SGD, "momentum": F.MOMENTUM, "nesterov": F.NESTEROV, "adam": F.ADAM, "adamw": F.ADAMW,
              "adagrad": F.ADAGRAD, "rmsprop": F.RMSPROP, "adadelta": F.ADADELTA}
# (loss, output activation): every loss with the outputs that make sense for it
OUTPUTS = {
    "quadratic-identity": (F.QUADRATIC, F.IDENTITY), "quadratic-sigmoid": (F.QUADRATIC, F.SIGMOID),
    "quadratic-softplus": (F.QUADRATIC, F.SOFTPLUS), "quadratic-leaky": (F.QUADRATIC, F.LEAKY_RELU),
    "mse-identity": (F.MSE, F.IDENTITY), "mse-tanh": (F.MSE, F.TANH), "mse-softmax": (F.MSE, F.SOFTMAX),
    "mse-relu": (F.MSE, F.RELU), "bce-sigmoid": (F.BCE, F.SIGMOID), "bce-softmax": (F.BCE, F.SOFTMAX),
    "nll-softmax": (F.NLL, F.SOFTMAX), "nll-sigmoid": (F.NLL, F.SIGMOID),
}
OPTIONS = ["plain", "dropout", "batch-norm", "prelu", "maxout", "maxout-output", "clip", "augment", "weights"]


def hyper(opt, clip=0.0, penalties=True):
    h = np.zeros(F.N_HYPER)
    h[[F.LR, F.MU, F.BETA1, F.BETA2, F.EPS, F.LOSS_EPS]] = 0.05, 0.9, 0.9, 0.999, 1e-8, 1e-12
    h[[F.ALPHA, F.RHO, F.LR_DECAY, F.CLIP_NORM]] = 0.99, 0.9, 0.01, clip
    # rates at which two epochs change the weights visibly but calmly (adaptive methods take steps of about
    # lr whatever the gradient's size, so theirs are smaller; Adadelta's lr is a factor, torch's default 1)
    h[F.LR] = {F.ADAM: 0.01, F.ADAMW: 0.01, F.RMSPROP: 0.002, F.ADADELTA: 1.0}.get(opt, 0.05)
    if opt == F.ADADELTA:
        h[F.EPS] = 1e-6
    if penalties:
        h[[F.WEIGHT_DECAY, F.L2, F.L1]] = 0.01, 0.003, 0.002
    return h


def case(rng, dtype, loss, out_act, opt, option, n=23):
    """Arguments of train_epoch for one option on a 7-37-21-3 network (36 inputs with augmentation)."""
    sizes = np.array([36 if option == "augment" else 7, 37, 21, 3], np.int64)
    acts = np.array([F.RELU, F.PRELU if option == "prelu" else F.TANH, out_act], np.int64)
    pieces = np.array({"maxout": [2, 3, 1], "maxout-output": [1, 1, 2]}.get(option, [1, 1, 1]), np.int64)
    norm = np.array([[0.1, 1e-3], [0.2, 1e-3], [0, 0]]) if option in ("batch-norm", "maxout") else None
    drop = np.array([0.2, 0.1, 0.0]) if option in ("dropout", "maxout") else None
    slopes = np.array([0.0, 0.0, 0.1])
    gammas, _, _, n_running = F.norm_layout(sizes, norm, pieces)
    _, n_params = F.prelu_layout(sizes, acts, norm, pieces)
    x = rng.standard_normal((n, int(sizes[0]))).astype(dtype)
    if loss == F.NLL:
        y = np.eye(3, dtype=dtype)[rng.integers(0, 3, n)]
    elif loss == F.BCE:
        y = rng.random((n, 3)).astype(dtype)
    else:
        y = rng.standard_normal((n, 3)).astype(dtype)
    params = (0.3 * rng.standard_normal(n_params)).astype(dtype)
    for l in np.flatnonzero(gammas >= 0):
        params[gammas[l]:gammas[l] + sizes[l + 1]] += 1
    offsets, _ = F.param_layout(sizes, pieces)
    for l in np.flatnonzero(pieces > 1):
        # pieces a bias of 0.5 apart: a Maxout unit's winner is a discontinuity, and a near-tie decided one
        # way in float32 by one implementation's rounding and the other way by another's would move the run
        width = int(sizes[l + 1] * pieces[l])
        params[offsets[l, 1]:offsets[l, 1] + width] += 0.5 * (np.arange(width) % pieces[l])
    state = np.full((F.STATE_ROWS[opt], n_params), 0.1 if opt == F.ADAGRAD else 0.0, dtype)
    running = np.concatenate([np.r_[np.zeros(s), np.ones(s)] for s, row in zip(sizes[1:], norm if norm is not None
                                                                                 else ()) if row[1] > 0] or
                             [np.zeros(0)]).astype(dtype)
    assert running.size == n_running
    weights = rng.random(n).astype(dtype) if option == "weights" else None
    augment = None
    if option == "augment":
        augment = (6, np.column_stack([rng.integers(-2, 3, n), rng.integers(-2, 3, n), rng.uniform(-0.3, 0.3, n)]))
    seeds = rng.integers(0, 2**63, size=(5, 3))
    h = hyper(opt, clip=0.05 if option == "clip" else 0.0, penalties=option != "augment")
    if norm is not None:
        # The bias before a BatchNorm has a gradient of exactly 0 but for rounding; an adaptive optimizer with
        # eps 1e-8 turns that rounding into full steps, and float32 runs then drift apart like float32 and
        # float64 runs of the reference itself (10-30%): a larger eps keeps the comparison meaningful.
        h[F.EPS] = 1e-3
    return (x, y, rng.permutation(n).astype(np.int64), params, state, sizes, acts, loss, opt, h, 5, drop, seeds, norm,
            running, slopes, pieces, weights, augment)


def two_epochs(kernel, args, n_threads):
    """Two epochs of ``kernel`` on copies of the arguments' state; returns (results, params, state, running)."""
    x, y, order, params, state, sizes, acts, loss, opt, h, batch, drop, seeds, norm, running, slopes, pieces, \
        weights, augment = args
    params, state, running = params.copy(), state.copy(), running.copy()
    results = [kernel(x, y, order, params, state, sizes, acts, loss, opt, h, batch, 5 * e, 0, n_threads, drop, seeds,
                      norm, running, slopes, pieces, weights, augment) for e in range(2)]
    return results, params, state, running


def assert_runs_equal(got, expected, rtol):
    for a, b in zip(got[0], expected[0]):
        assert a[2] == b[2] == 5, "updates"
        assert_close(a[0], b[0], rtol, what="objective sum")
    for what, a, b in zip(("params", "optimizer state", "running statistics"), got[1:], expected[1:]):
        if b.size:
            assert_close(a, b, rtol, scale=np.abs(b).max(), what=what)


@pytest.mark.parametrize("output", OUTPUTS.values(), ids=OUTPUTS.keys())
@pytest.mark.parametrize("opt", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_compiled_epoch_equals_reference(compiled, dtype, opt, output):
    i = list(OPTIMIZERS.values()).index(opt)
    j = list(OUTPUTS.values()).index(output)
    option = OPTIONS[(i + j) % len(OPTIONS)]  # every option meets every optimizer
    rng = np.random.default_rng(1000 * i + j)
    args = case(rng, dtype, output[0], output[1], opt, option)
    expected = two_epochs(F.train_epoch, args, 1)
    for n_threads in (1, 2, 3):
        assert_runs_equal(two_epochs(compiled.train_epoch, args, n_threads), expected, RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_with_every_thread_count(compiled, option):
    """Each option alone (float64, Adam, softmax + NLL) on 1, 2 and 3 threads."""
    args = case(np.random.default_rng(7), np.float64, F.NLL, F.SOFTMAX, F.ADAM, option)
    expected = two_epochs(F.train_epoch, args, 1)
    for n_threads in (1, 2, 3):
        assert_runs_equal(two_epochs(compiled.train_epoch, args, n_threads), expected, 1e-10)


def test_backends_use_the_shared_constants():
    """Each backend's compiled epoch was built with kernels/constants.py's values (Cython: the generated
    _constants.pxi)."""
    import importlib

    expected = C.constants()
    for name in ("numba", "cython"):
        got = importlib.import_module(f"fastnn._kernels.{name}.fused").constants()
        assert {k: got.get(k) for k in expected} == expected, name


def test_stop_request_ends_the_epoch_after_the_batch_under_way(compiled):
    """control[STOP] set before the call: the first batch is applied whole, then the epoch ends."""
    args = case(np.random.default_rng(3), np.float64, F.NLL, F.SOFTMAX, F.ADAM, "plain")
    control = np.zeros(C.CONTROL_SIZE, np.int64)
    control[C.STOP] = 1
    x, y, order, params, state, sizes, acts, loss, opt, h, batch, drop, seeds, norm, running, slopes, pieces, w, \
        augment = args
    p1, s1 = params.copy(), state.copy()
    got = compiled.train_epoch(x, y, order, p1, s1, sizes, acts, loss, opt, h, batch, 0, 0, 2, control=control)
    p2, s2 = params.copy(), state.copy()
    F.train_epoch(x, y, order[:batch], p2, s2, sizes, acts, loss, opt, h, batch, 0, 0)
    assert got[2] == 1 and control[C.STATUS] == C.STATUS_STOPPED and control[C.DONE] == 1
    assert_close(p1, p2, 1e-12, scale=np.abs(p2).max(), what="params after one batch")
    assert_close(s1, s2, 1e-12, scale=np.abs(s2).max(), what="state after one batch")


# -- fit: the two engines, the warning, weights -------------------------------------------------------------

FIT_CASES = {
    "adagrad-mse-identity": (lambda: [L.Dense(6, 16), L.Tanh(), L.Dense(16, 3)], "mse", lambda: optim.Adagrad(0.1),
                             {}),
    "rmsprop-bce-clip": (lambda: [L.Dense(6, 16), L.ReLU(), L.Dense(16, 3), L.Sigmoid()], "cross_entropy",
                         lambda: optim.RMSprop(0.01), {"clip_norm": 0.5}),
    "adadelta-nll-weights": (lambda: [L.Dense(6, 16), L.BatchNorm(16), L.ReLU(), L.Dense(16, 3), L.Softmax()],
                             "log_likelihood", lambda: optim.Adadelta(), {"class_weight": "balanced"}),
    "adamw-maxout-dropout": (lambda: [L.Maxout(6, 16, pieces=2), L.BatchNorm(16), L.Dropout(0.3), L.Dense(16, 3),
                                      L.Softmax()], "log_likelihood", lambda: optim.AdamW(0.01), {"l2": 0.5}),
    "nesterov-quadratic-maxout-out": (lambda: [L.Dense(6, 16), L.PReLU(16), L.Maxout(16, 3, pieces=3)], "quadratic",
                                      lambda: optim.SGD(0.05, momentum=0.9, nesterov=True), {"l1": 0.1}),
}


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("case_name", FIT_CASES)
def test_fit_compiled_equals_step_by_step(backend_name, case_name):
    make_layers, loss, make_opt, extra = FIT_CASES[case_name]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((53, 6))
    y = rng.integers(0, 3, 53)
    if "weights" in case_name:
        extra = dict(extra, sample_weight=rng.random(53))
    runs = []
    for use_fused in (True, False):
        model = Sequential(make_layers(), dtype="float64", backend=backend_name, seed=3)
        with warnings.catch_warnings():
            # the compiled epoch takes all of these: no fallback warning
            warnings.filterwarnings("error", message="fit trains step by step")
            history = model.fit(X, y, loss=loss, optimizer=make_opt(), epochs=2, batch_size=10, seed=1, verbose=0,
                                use_fused=use_fused, **extra)
        assert history.engine == ("compiled" if use_fused else "step") and history.reason is None
        runs.append((model.get_weights(), history.loss, history.accuracy, model.optimizer.state_dict()))
    (w1, l1, a1, s1), (w2, l2, a2, s2) = runs
    for a, b in zip(w1, w2):
        assert_close(a, b, 1e-10, scale=np.abs(b).max(), what="weights")
    assert_close(np.array(l1), np.array(l2), 1e-10, what="History loss")
    assert a1 == a2
    assert s1["iterations"] == s2["iterations"] == 12
    for name in s2["state"][0] if s2["state"] else ():
        # one scale per kind of state: the bias before a BatchNorm has a gradient of 0 but for rounding
        scale = max(np.abs(s[name]).max() for s in s2["state"])
        for got, expected in zip(s1["state"], s2["state"]):
            assert_close(got[name], expected[name], 1e-10, scale=scale, what=name)


class _PerBatch(Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


class _Doubler(L.Layer):
    def forward(self, x, training=False):
        return 2 * x

    def backward(self, grad):
        return 2 * grad


@pytest.mark.parametrize("make, reason", [
    (lambda: dict(layers=[L.Dense(4, 3), _Doubler(), L.Sigmoid()]), r"layer 1 \(_Doubler\) is not a fastnn layer"),
    (lambda: dict(augment=lambda xb, rng: xb), "augment is a Python callable"),
    (lambda: dict(callbacks=[_PerBatch()]), r"_PerBatch runs Python after every batch"),
    (lambda: dict(layers=[L.Dense(4, 3), L.Sigmoid(), L.Dropout(0.5)]), "Dropout on the output layer"),
    (lambda: dict(layers=[L.Dense(4, 3), L.PReLU(3)]), "PReLU on the output layer"),
    (lambda: dict(layers=[L.Dense(4, 3), L.LeakyReLU(-0.5)]), "negative slope"),
], ids=["user-layer", "augment-callable", "batch-callback", "output-dropout", "output-prelu", "negative-slope"])
def test_fit_says_once_why_it_cannot_compile(make, reason):
    args = make()
    model = Sequential(args.pop("layers", [L.Dense(4, 3), L.Sigmoid()]), dtype="float64", backend="numba", seed=0)
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.warns(UserWarning, match=reason) as caught:
        history = model.fit(X, np.eye(3)[np.arange(20) % 3], loss="quadratic", optimizer=optim.SGD(0.1), epochs=3,
                            verbose=0, **args)
    assert len([w for w in caught if "step by step" in str(w.message)]) == 1  # once per fit, not per epoch
    assert history.engine == "step" and model.fused_runner is None and reason.split(" ")[-1] in history.reason


def test_no_warning_when_the_step_by_step_engine_is_asked_for():
    model = Sequential([L.Dense(4, 3), _Doubler(), L.Sigmoid()], dtype="float64", backend="numba", seed=0)
    X = np.random.default_rng(0).standard_normal((20, 4))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="fit trains step by step")
        history = model.fit(X, np.arange(20) % 3, loss="quadratic", epochs=1, verbose=0, use_fused=False)
    assert history.engine == "step" and history.reason is None


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("loss_name, out_layer", [("log_likelihood", L.Softmax), ("cross_entropy", L.Sigmoid),
                                                  ("mse", L.Identity)])
def test_sample_weighted_gradient_equals_torch(backend_name, loss_name, out_layer):
    """One full-batch SGD step (lr 1) with sample weights: the change of the weights is minus the gradient of
    torch's weighted mean loss sum_i w_i l_i / sum_i w_i, computed by autograd."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((9, 4))
    labels = rng.integers(0, 3, 9)
    w = rng.random(9)
    model = Sequential([L.Dense(4, 3), out_layer()], dtype="float64", backend=backend_name, seed=2)
    W0, b0 = (a.copy() for a in model.get_weights())
    y = labels if loss_name != "mse" else np.eye(3)[labels]
    model.fit(X, y, loss=loss_name, optimizer=optim.SGD(1.0), epochs=1, batch_size=9, shuffle=False,
              sample_weight=w, verbose=0)
    tw, tb = (torch.tensor(a, requires_grad=True) for a in (W0, b0))
    z = torch.tensor(X) @ tw + tb
    if loss_name == "log_likelihood":
        per_row = torch.nn.functional.cross_entropy(z, torch.tensor(labels), reduction="none")
    elif loss_name == "cross_entropy":
        per_row = torch.nn.functional.binary_cross_entropy_with_logits(
            z, torch.tensor(np.eye(3)[labels]), reduction="none").sum(dim=1)
    else:
        per_row = ((z - torch.tensor(np.eye(3)[labels])) ** 2).mean(dim=1)
    tw_ = torch.tensor(w)
    ((per_row * tw_).sum() / tw_.sum()).backward()
    W1, b1 = model.get_weights()
    assert_close(W0 - W1, tw.grad.numpy(), 1e-12, scale=np.abs(tw.grad.numpy()).max(), what="dW")
    assert_close(b0 - b1, tb.grad.numpy(), 1e-12, scale=np.abs(tb.grad.numpy()).max(), what="db")


def test_balanced_class_weights_are_scikit_learns():
    from sklearn.utils.class_weight import compute_class_weight

    from fastnn.network import _sample_weights

    labels = np.array([0, 0, 0, 2, 2, 1, 0, 2, 0])
    w = _sample_weights(None, "balanced", labels, 4, 9, np.float64)
    expected = compute_class_weight("balanced", classes=np.unique(labels), y=labels)
    np.testing.assert_allclose(w, expected[np.searchsorted(np.unique(labels), labels)], rtol=1e-15)
    both = _sample_weights(np.arange(1.0, 10.0), {0: 2.0}, labels, 4, 9, np.float64)
    np.testing.assert_array_equal(both, np.arange(1.0, 10.0) * np.where(labels == 0, 2.0, 1.0))


def test_unit_weights_change_nothing():
    X = np.random.default_rng(1).standard_normal((31, 5))
    y = np.arange(31) % 3
    runs = []
    for w in (None, np.ones(31)):
        model = Sequential([L.Dense(5, 8), L.ReLU(), L.Dense(8, 3), L.Softmax()], dtype="float32", backend="numba",
                           seed=0)
        h = model.fit(X, y, loss="log_likelihood", optimizer="adam", epochs=2, batch_size=4, seed=0, verbose=0,
                      sample_weight=w)
        runs.append((model.get_weights(), h.loss))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("kwargs, match", [
    (dict(sample_weight=-np.ones(10)), "sample_weight must be >= 0"),
    (dict(sample_weight=np.ones(9)), "inconsistent numbers of samples"),
    (dict(sample_weight=np.zeros(10)), "sum to 0"),
    (dict(class_weight={5: 1.0}), r"class_weight has the key 5"),
    (dict(class_weight="even"), "class_weight must be"),
])
def test_bad_weights_are_refused_before_training(kwargs, match):
    model = Sequential([L.Dense(2, 3), L.Softmax()], dtype="float64", backend="numba", seed=0)
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        model.fit(np.ones((10, 2)), np.arange(10) % 3, loss="log_likelihood", verbose=0, **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_class_weight_needs_classes():
    model = Sequential([L.Dense(2, 1)], dtype="float64", backend="numba", seed=0)
    with pytest.raises(ValueError, match="class_weight needs class targets"):
        model.fit(np.ones((4, 2)), np.array([0.5, 0.1, 0.2, 0.3]), loss="mse", class_weight="balanced", verbose=0)


def test_compiled_augmentation_equals_step_by_step():
    """An Augment runs inside the compiled epoch on the same images as the step-by-step engine."""
    X = np.random.default_rng(0).random((40, 64))
    y = np.arange(40) % 4
    runs = []
    for use_fused in (True, False):
        model = Sequential([L.Dense(64, 20), L.ReLU(), L.Dropout(0.2), L.Dense(20, 4), L.Softmax()], dtype="float64",
                           backend="numba", seed=0)
        h = model.fit(X, y, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=2, batch_size=8, seed=4,
                      augment=Augment(max_shift=2, max_angle_deg=20, side=8), use_fused=use_fused, verbose=0)
        assert h.engine == ("compiled" if use_fused else "step")
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert_close(a, b, 1e-10, scale=np.abs(b).max(), what="weights")


# -- progress and Ctrl-C -------------------------------------------------------------------------------------

class _Counter(Callback):
    def __init__(self):
        self.seen = []

    def on_progress(self, epoch, batches_done, logs=None):
        self.seen.append((epoch, batches_done, logs["batches"]))


def test_progress_reaches_callbacks_from_the_compiled_epoch():
    X = np.random.default_rng(0).standard_normal((2000, 10))
    model = Sequential([L.Dense(10, 32), L.ReLU(), L.Dense(32, 2), L.Softmax()], dtype="float64", backend="numba",
                       seed=0)
    counter = _Counter()
    history = model.fit(X, np.arange(2000) % 2, loss="log_likelihood", epochs=2, batch_size=1, verbose=0,
                        callbacks=[counter])
    assert history.engine == "compiled"
    for epoch in (0, 1):
        counts = [done for e, done, total in counter.seen if e == epoch]
        assert counts == sorted(counts) and counts[-1] == 2000  # increasing, ending at the last batch
    assert {total for _, _, total in counter.seen} == {2000}


class _InterruptAt(Callback):
    """Sends this process SIGINT once the second epoch has applied ``at`` batches (as Ctrl-C would)."""

    def __init__(self, at):
        self.at, self.sent = at, None

    def on_progress(self, epoch, batches_done, logs=None):
        if epoch == 1 and batches_done >= self.at and self.sent is None:
            self.sent = batches_done
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("use_fused", [True, False], ids=["compiled", "step"])
def test_ctrl_c_stops_after_the_batch_under_way(use_fused):
    """Ctrl-C in the second epoch: fit raises TrainingInterrupted naming the epoch and batch, soon after the
    signal (long before the epoch's end), and the model holds exactly the weights and Adam state of
    training up to that batch (replayed with the reference kernel on the same batches)."""
    n, batch = 40000, 2  # 20,000 batches an epoch, long enough to be interrupted in the middle
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 32))
    labels = rng.integers(0, 3, n)
    make = lambda: Sequential([L.Dense(32, 64), L.Tanh(), L.Dense(64, 3), L.Softmax()], dtype="float64",  # noqa: E731
                              backend="numba", seed=1)
    model = make()
    stopper = _InterruptAt(100)
    with pytest.raises(TrainingInterrupted, match=r"epoch 2, after batch \d+ of 20000") as info:
        model.fit(X, labels, loss="log_likelihood", optimizer=optim.Adam(1e-3), epochs=3, batch_size=batch, seed=9,
                  callbacks=[stopper], verbose=0, use_fused=use_fused)
    done = info.value.batch
    assert info.value.epoch == 2 and stopper.sent <= done < 10000
    assert model.optimizer.iterations == 20000 + done and model.training_state is None
    # the replay: fit's first permutation, then the first `done` batches of its second
    replay = make()
    order_rng = np.random.default_rng(9)
    opt = optim.Adam(1e-3)
    replay.fit(X, labels, loss="log_likelihood", optimizer=opt, epochs=1, batch_size=batch, seed=order_rng, verbose=0)
    runner, _ = fastnn.fused.plan(replay, losses.get("log_likelihood"), opt)
    targets = np.eye(3)[labels]
    order = order_rng.permutation(n)[:done * batch]
    with replay._scope():
        runner.run_epoch(X, targets, order, batch, (None, np.zeros((done, 0), np.int64)))
    for a, b in zip(model.get_weights(), replay.get_weights()):
        assert_close(a, b, 1e-12, scale=np.abs(b).max(), what="weights")
    for a, b in zip(model.optimizer.state_dict()["state"], opt.state_dict()["state"]):
        for name in b:
            assert_close(a[name], b[name], 1e-12, scale=np.abs(b[name]).max(), what=name)


class _InterruptAfterFirstEpoch(Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("use_fused", [True, False], ids=["compiled", "step"])
def test_ctrl_c_during_a_short_epoch_stops_before_the_next(use_fused):
    """A short epoch (under fused.EPOCH_PARALLEL_MIN multiply-adds) runs in fit's own thread, where a Ctrl-C
    is seen only when the call returns: fit then stops before the next epoch's first batch, with the
    weights of the epochs done, as the step-by-step engine does."""
    rng = np.random.default_rng(0)
    X, labels = rng.standard_normal((200, 16)), rng.integers(0, 3, 200)
    make = lambda: Sequential([L.Dense(16, 32), L.Tanh(), L.Dense(32, 3), L.Softmax()], dtype="float64",  # noqa: E731
                              backend="cython", seed=1)
    fit_args = dict(loss="log_likelihood", batch_size=20, seed=9, verbose=0, use_fused=use_fused)
    model = make()
    assert 200 * (16 * 32 + 32 * 3) < fastnn.fused.EPOCH_PARALLEL_MIN
    with pytest.raises(TrainingInterrupted, match=r"epoch 2, after batch 0 of 10"):
        model.fit(X, labels, optimizer=optim.Adam(1e-3), epochs=3, callbacks=[_InterruptAfterFirstEpoch()], **fit_args)
    once = make()
    once.fit(X, labels, optimizer=optim.Adam(1e-3), epochs=1, **fit_args)
    for a, b in zip(model.get_weights(), once.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_short_epoch_runs_in_fits_own_thread(monkeypatch):
    """Only an epoch of at least fused.EPOCH_PARALLEL_MIN multiply-adds is handed to a kept thread."""
    from fastnn._kernels import workers

    handed = []
    original = workers.start
    monkeypatch.setattr(workers, "start", lambda call: handed.append(call) or original(call))
    rng = np.random.default_rng(0)
    for n, threads in ((200, 0), (300, 1)):  # 200 or 300 rows of 784-100-10: 15.9 M or 23.8 M an epoch
        model = Sequential([L.Dense(784, 100), L.ReLU(), L.Dense(100, 10), L.Softmax()], backend="cython", seed=1)
        handed.clear()
        with fastnn.use_num_threads(1):
            model.fit(rng.random((n, 784)), rng.integers(0, 10, n), loss="log_likelihood", optimizer=optim.Adam(1e-3),
                      epochs=1, batch_size=200, verbose=0)
        assert len(handed) == threads


def test_ctrl_c_in_a_real_process(tmp_path):
    """A training process gets SIGINT from outside while it runs the compiled epoch: it stops with
    TrainingInterrupted in that epoch and exits normally."""
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys
        import numpy as np
        from fastnn import Sequential, layers as L
        from fastnn.training import Callback, TrainingInterrupted

        class Ready(Callback):
            def on_progress(self, epoch, done, logs=None):
                if epoch == 0 and done > 0:
                    print("ready", flush=True)

        X = np.random.default_rng(0).standard_normal((200000, 32))
        model = Sequential([L.Dense(32, 64), L.ReLU(), L.Dense(64, 2), L.Softmax()], backend="numba", seed=0)
        try:
            model.fit(X, np.arange(200000) % 2, loss="log_likelihood", epochs=1000, batch_size=1, verbose=0,
                      callbacks=[Ready()])
        except TrainingInterrupted as exc:
            print("interrupted", exc.epoch, exc.batch, model.optimizer.iterations, flush=True)
    """))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    word, epoch, batch, iterations = out.split()[-4:]
    assert word == "interrupted" and int(epoch) <= 2 and int(iterations) == (int(epoch) - 1) * 200000 + int(batch)


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_sparse_input_in_the_compiled_epoch(backend_name, dtype, monkeypatch):
    """A CSR X trains in the compiled epoch (layer 0 multiplies the stored values only) and equals the dense
    X's compiled run, on 1 and 2 threads."""
    import scipy.sparse

    from fastnn import fused, use_num_threads

    monkeypatch.setattr(fused, "EPOCH_PARALLEL_MIN", 0)  # two threads even for these 740,000 multiply-adds

    X = scipy.sparse.random(61, 300, density=0.05, random_state=2, format="csr", dtype=np.float64)
    y = np.random.default_rng(2).integers(0, 3, 61)
    runs = []
    for data, n_threads in ((X.toarray(), 1), (X, 1), (X, 2)):
        model = Sequential([L.Dense(300, 40), L.ReLU(), L.Dense(40, 3), L.Softmax()], dtype=dtype,
                           backend=backend_name, seed=0)
        with use_num_threads(n_threads):
            history = model.fit(data, y, loss="log_likelihood", optimizer=optim.Adam(0.01), epochs=2, batch_size=8,
                                 seed=1, verbose=0)
        assert history.engine == "compiled"
        runs.append(model.get_weights())
    rtol = RTOL[np.dtype(dtype)]
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert_close(a, b, rtol, scale=np.abs(b).max(), what="weights")


@pytest.mark.parametrize("backend_name", ["numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("threads", [1, 2])
def test_weights_past_the_hand_written_products_limit(backend_name, dtype, threads, monkeypatch):
    """W_0 of 700 x 240 is over SMALL_PANEL_BYTES on one thread (BLAS, rows copied), float32 under it on two
    (hand-written, rows read in place): the compiled epoch equals the step-by-step one either way."""
    monkeypatch.setattr(fastnn.fused, "EPOCH_PARALLEL_MIN", 0)  # two threads even for an epoch of 16.4 M
    assert 700 * 240 * 4 > C.SMALL_PANEL_BYTES >= 700 * 120 * 4
    rng = np.random.default_rng(5)
    X = rng.random((96, 700)).astype(dtype)
    y = rng.integers(0, 10, 96)
    runs = []
    for use_fused in (True, False):
        model = Sequential([L.Dense(700, 240), L.ReLU(), L.Dense(240, 10), L.Softmax()], dtype=dtype,
                           backend=backend_name, seed=2)
        with fastnn.use_num_threads(threads):
            history = model.fit(X, y, loss="log_likelihood", optimizer=optim.SGD(0.05, momentum=0.9), epochs=2,
                                batch_size=32, seed=1, verbose=0, use_fused=use_fused)
        assert history.engine == ("compiled" if use_fused else "step")
        runs.append(model.get_weights())
    for got, expected in zip(*runs):
        assert_close(got, expected, RTOL[np.dtype(dtype)], scale=np.abs(expected).max(), what="weights")
