"""The fused training epoch (kernels/*/fused) and its runner (fastnn/fused.py).

The reference equals a plain loop over the per-layer reference kernels (as Sequential.fit's layer-by-layer
path computes, with its loss values, penalties and accuracy), and the numba and cython backends equal the
reference, for every activation, output/loss and optimizer code, with and without penalties, BLAS and
hand-written products, short last batches; divergence stops before the bad batch; flushing subnormals is
confined to the call. The runner equals Sequential.fit epoch for epoch and declines what it cannot fuse.

Tolerances after two epochs (6 updates of a small network), relative to the largest |parameter|:
FUSED_RTOL float64 2e-12, float32 2e-5; PARAMS_RTOL (the deeper networks with BatchNorm, Dropout, PReLU,
Maxout, LeakyReLU, Softplus) float64 1e-12, float32 2e-4. Observed by this suite, with and without
FASTNN_PORTABLE: FUSED_RTOL's comparisons float64 <= 3.9e-14 (51x below), float32 <= 1.7e-5 (Adam is the
largest: m / sqrt(v) turns a 1-ulp difference in a small gradient into a larger step difference);
PARAMS_RTOL's float64 <= 1.4e-14 (71x), float32 <= 3.1e-6 (65x). The backends differ from the reference
only in rounding: BLAS or loop summation order, their own exp/tanh.
"""
import re

import numpy as np
import pytest

from fastnn import Sequential, fused, losses, optim
from fastnn import layers as L
from fastnn._kernels.reference import fused as F
from kernel_helpers import DTYPES, assert_close, load

OUTPUTS = {  # (output activation, loss)
    "sigmoid-bce": (F.SIGMOID, F.BCE),
    "softmax-nll": (F.SOFTMAX, F.NLL),
    "identity-quadratic": (F.IDENTITY, F.QUADRATIC),
    "sigmoid-quadratic": (F.SIGMOID, F.QUADRATIC),
    "exp-poisson": (F.EXP, F.POISSON),
    "softplus-poisson": (F.SOFTPLUS, F.POISSON),
}
OPTS = {"sgd": F.SGD, "momentum": F.MOMENTUM, "nesterov": F.NESTEROV, "adam": F.ADAM}
HIDDEN = {"sigmoid-tanh": (F.SIGMOID, F.TANH), "relu-identity": (F.RELU, F.IDENTITY)}
NEVER = 1 << 62  # gemm_min that keeps every product in the hand-written loops
FUSED_RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 2e-12}
PARAMS_RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-12}


def hyper(penalties=True, loss_eps=1e-7):
    h = np.zeros(F.N_HYPER)
    h[[F.LR, F.MU, F.BETA1, F.BETA2, F.EPS, F.LOSS_EPS]] = 0.05, 0.9, 0.9, 0.999, 1e-8, loss_eps
    if penalties:
        h[[F.WEIGHT_DECAY, F.L2, F.L1]] = 0.01, 0.003, 0.002
    return h


def problem(rng, dtype, sizes, out_act, loss, opt, n=11, scale=0.4):
    """Data, targets, a shuffled order, flat parameters (normal, sd ``scale``) and zero optimizer state."""
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == F.NLL:
        y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    elif loss == F.POISSON:
        y = rng.poisson(1.0, (n, sizes[-1])).astype(dtype)
    elif out_act == F.SIGMOID:
        y = rng.random((n, sizes[-1])).astype(dtype)
    else:
        y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    _, n_params = F.param_layout(sizes)
    params = (scale * rng.standard_normal(n_params)).astype(dtype)
    state = np.zeros((F.STATE_ROWS[opt], n_params), dtype=dtype)
    return x, y, rng.permutation(n).astype(np.int64), params, state


# -- the per-layer path, written out with the reference kernels of each concept ----------------------------


def layer_by_layer_epoch(ref, x, y, order, weights, biases, states, acts, loss, opt, h, batch_size, step):
    """One epoch as Sequential.fit's layer-by-layer path does it: separate (W, b) arrays, the loss values of
    fastnn.losses plus the penalties, per-array optimizer steps. Returns (objective sum, correct rows)."""
    forward = {F.IDENTITY: ref.identity, F.SIGMOID: ref.sigmoid, F.TANH: ref.tanh, F.RELU: ref.relu,
               F.SOFTPLUS: ref.softplus, F.EXP: ref.exp}
    backward = {F.IDENTITY: ref.identity_backward, F.SIGMOID: ref.sigmoid_backward,
                F.TANH: ref.tanh_backward, F.RELU: ref.relu_backward, F.SOFTPLUS: ref.softplus_backward,
                F.EXP: ref.exp_backward}
    lr, mu, beta1, beta2, eps, wd, l2, l1, loss_eps = (float(v) for v in h[:F.FLUSH_DENORMALS])
    total, correct = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        labels = np.argmax(yb, axis=1).astype(np.int64)
        zs, outs = [], [xb]
        for l, (w, b) in enumerate(zip(weights, biases)):
            z = ref.dense_forward(outs[-1], w, b)
            zs.append(z)
            outs.append(ref.softmax(z) if acts[l] == F.SOFTMAX else forward[acts[l]](z))
        z, a = zs[-1], outs[-1]
        if loss == F.BCE:
            value = ref.bce_loss(a, yb, loss_eps)
            delta = ref.sigmoid_bce_delta(a, yb)
        elif loss == F.NLL:
            value = ref.nll_loss(a, labels, loss_eps)
            delta = ref.softmax_nll_delta(a, labels)
        elif loss == F.POISSON:
            value = ref.poisson_loss(a, yb, loss_eps)
            delta = (ref.exp_poisson_delta(a, yb) if acts[-1] == F.EXP
                     else backward[acts[-1]](z, a, ref.poisson_grad(a, yb, loss_eps)))
        else:
            value = ref.quadratic_loss(a, yb)
            delta = backward[acts[-1]](z, a, ref.quadratic_grad(a, yb))
        value += l2 / 2 * sum(ref.sum_squares(w.reshape(-1)) for w in weights)
        value += l1 * sum(ref.sum_abs(w.reshape(-1)) for w in weights)
        total += value * len(idx)
        correct += int(np.sum(np.argmax(a, axis=1) == labels))
        grads = [None] * len(weights)
        for l in range(len(weights) - 1, -1, -1):
            gw, gb = ref.dense_backward_params(outs[l], delta)
            if l2:
                ref.add_l2_grad(gw, weights[l], l2)
            if l1:
                ref.add_l1_grad(gw, weights[l], l1)
            grads[l] = (gw, gb)
            if l:
                delta = backward[acts[l - 1]](zs[l - 1], outs[l], ref.dense_backward_input(delta, weights[l]))
        step += 1
        for l in range(len(weights)):
            for k, (p, g) in enumerate(zip((weights[l], biases[l]), grads[l])):
                p, g = p.reshape(-1), g.reshape(-1)
                s = [row.reshape(-1) for row in states[l][k]]
                if opt == F.SGD:
                    ref.sgd_step(p, g, lr, wd)
                elif opt in (F.MOMENTUM, F.NESTEROV):
                    ref.momentum_step(p, g, s[0], lr, mu, wd, opt == F.NESTEROV)
                else:
                    ref.adam_step(p, g, s[0], s[1], lr, beta1, beta2, eps, wd, step)
    return total, correct


def split(flat, sizes):
    """Copies of the per-layer (W, b) arrays of a flat buffer."""
    offsets, _ = F.param_layout(sizes)
    ws = [flat[w0:b0].reshape(sizes[l], sizes[l + 1]).copy() for l, (w0, b0) in enumerate(offsets)]
    bs = [flat[b0:b0 + sizes[l + 1]].copy() for l, (_, b0) in enumerate(offsets)]
    return ws, bs


@pytest.mark.parametrize("penalties", [False, True], ids=["plain", "penalties"])
@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("opt", OPTS.values(), ids=OPTS.keys())
@pytest.mark.parametrize("output", OUTPUTS.values(), ids=OUTPUTS.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_reference_equals_layer_by_layer(ref, rng, dtype, output, opt, hidden, penalties):
    sizes = np.array([6, 5, 4, 3], dtype=np.int64)
    acts = np.array([*hidden, output[0]], dtype=np.int64)
    loss, h, batch = output[1], hyper(penalties), 4
    x, y, order, params, state = problem(rng, dtype, sizes, output[0], loss, opt)
    ws, bs = split(params, sizes)
    states = [[np.zeros((len(state),) + w.shape, dtype), np.zeros((len(state),) + b.shape, dtype)]
              for w, b in zip(ws, bs)]
    for epoch in range(2):
        step = epoch * 3  # ceil(11 / 4) updates per epoch
        got = F.train_epoch(x, y, order, params, state, sizes, acts, loss, opt, h, batch, step, 0)
        expected = layer_by_layer_epoch(ref, x, y, order, ws, bs, states, acts, loss, opt, h, batch, step)
        assert got[1:3] == (expected[1], 3)
        assert_close(got[0], expected[0], 1e-12, what="objective sum")
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    ews, ebs = split(params, sizes)
    for l in range(len(ws)):
        assert_close(ews[l], ws[l], rtol, scale=np.abs(ws[l]).max(), what=f"W{l}")
        assert_close(ebs[l], bs[l], rtol, scale=np.abs(bs[l]).max(), what=f"b{l}")


# Threads split every layer's units on multiples of 16 (kernels/reference/fused.py "Threads"): with the
# widths below, 2 threads split 37 as 16 + 21, 21 as 16 + 5 and 3 as 0 + 3, and 3 threads split 37 as
# 16 + 16 + 5, so uneven and empty shares are both exercised.
@pytest.mark.parametrize("n_threads", [1, 2, 3], ids=["t1", "t2", "t3"])
@pytest.mark.parametrize("gemm_min", [0, NEVER], ids=["blas", "loops"])
@pytest.mark.parametrize("penalties", [False, True], ids=["plain", "penalties"])
@pytest.mark.parametrize("hidden", HIDDEN.values(), ids=HIDDEN.keys())
@pytest.mark.parametrize("opt", OPTS.values(), ids=OPTS.keys())
@pytest.mark.parametrize("output", OUTPUTS.values(), ids=OUTPUTS.keys())
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_compiled_equals_reference(compiled, rng, dtype, output, opt, hidden, penalties, gemm_min, n_threads):
    sizes = np.array([7, 37, 21, 3], dtype=np.int64)
    acts = np.array([*hidden, output[0]], dtype=np.int64)
    loss, h, batch = output[1], hyper(penalties), 4
    x, y, order, params, state = problem(rng, dtype, sizes, output[0], loss, opt, scale=0.15)
    x0, y0 = x.copy(), y.copy()
    p_ref, s_ref = params.copy(), state.copy()
    rtol = FUSED_RTOL[np.dtype(dtype)]
    for epoch in range(2):
        step = epoch * 3
        got = compiled.train_epoch(x, y, order, params, state, sizes, acts, loss, opt, h, batch, step, gemm_min,
                                   n_threads)
        expected = F.train_epoch(x, y, order, p_ref, s_ref, sizes, acts, loss, opt, h, batch, step, 0)
        assert [type(v) for v in got] == [float, int, int, float]
        assert got[2] == expected[2] == 3
        assert_close(got[3], expected[3], rtol, what="last batch objective")
        assert abs(got[1] - expected[1]) <= (0 if dtype == np.float64 else 1), "correct rows"
        assert_close(got[0], expected[0], rtol, what="objective sum")
    assert params.dtype == dtype and state.dtype == dtype
    assert_close(params, p_ref, rtol, scale=np.abs(p_ref).max(), what="parameters")
    if state.size:
        for k in range(len(state)):
            assert_close(state[k], s_ref[k], rtol, scale=np.abs(s_ref[k]).max(), what=f"state row {k}")
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("sizes,batch", [([5, 3], 4), ([5, 4, 3], 1), ([5, 4, 3], 50)],
                         ids=["no-hidden", "batch-1", "one-batch"])
def test_shapes_single_layer_batch_one_and_one_batch(backend_name, rng, sizes, batch):
    """One Dense layer only, online updates (batch 1), and a batch larger than the data."""
    bk = load(backend_name)
    sizes = np.array(sizes, dtype=np.int64)
    acts = np.array([F.TANH] * (len(sizes) - 2) + [F.SOFTMAX], dtype=np.int64)
    x, y, order, params, state = problem(rng, np.float64, sizes, F.SOFTMAX, F.NLL, F.MOMENTUM, n=9)
    p_ref, s_ref = params.copy(), state.copy()
    got = bk.train_epoch(x, y, order, params, state, sizes, acts, F.NLL, F.MOMENTUM, hyper(), batch, 0, 0)
    expected = F.train_epoch(x, y, order, p_ref, s_ref, sizes, acts, F.NLL, F.MOMENTUM, hyper(), batch, 0, 0)
    assert_close(params, p_ref, 1e-10, scale=np.abs(p_ref).max(), what="parameters")
    assert_close(got[0], expected[0], 1e-10, what="objective sum")
    assert got[1:3] == expected[1:3]
    assert_close(got[3], expected[3], 1e-10, what="last batch objective")


def test_epochs_continue_exactly(rng):
    """Two calls with the running step count equal one call over both orders (Adam's bias correction)."""
    sizes = np.array([4, 6, 2], dtype=np.int64)
    acts = np.array([F.RELU, F.SIGMOID], dtype=np.int64)
    x, y, order, params, state = problem(rng, np.float64, sizes, F.SIGMOID, F.BCE, F.ADAM, n=12)
    both = np.concatenate([order, order[::-1]])
    p2, s2 = params.copy(), state.copy()
    first = F.train_epoch(x, y, order, params, state, sizes, acts, F.BCE, F.ADAM, hyper(), 3, 0, 0)
    second = F.train_epoch(x, y, order[::-1].copy(), params, state, sizes, acts, F.BCE, F.ADAM, hyper(), 3, 4, 0)
    whole = F.train_epoch(x, y, both, p2, s2, sizes, acts, F.BCE, F.ADAM, hyper(), 3, 0, 0)
    np.testing.assert_array_equal(params, p2)
    np.testing.assert_array_equal(state, s2)
    assert first[0] + second[0] == pytest.approx(whole[0], rel=1e-14)
    assert (first[1] + second[1], first[2] + second[2]) == whole[1:3] and whole[2] == 8
    assert second[3] == whole[3]


def test_loss_is_summed_over_samples(rng):
    """The return value is the sum of per-sample losses at the parameters each batch saw (lr 0: fixed)."""
    sizes = np.array([3, 2], dtype=np.int64)
    acts = np.array([F.IDENTITY], dtype=np.int64)
    x, y, order, params, state = problem(rng, np.float64, sizes, F.IDENTITY, F.QUADRATIC, F.SGD, n=7)
    h = hyper(False)
    h[F.LR] = 0.0
    w, b = params[:6].reshape(3, 2), params[6:]
    expected = 0.5 * np.sum((x @ w + b - y) ** 2)
    got, _, updates, _ = F.train_epoch(x, y, order, params, state, sizes, acts, F.QUADRATIC, F.SGD, h, 3, 0, 0)
    assert got == pytest.approx(expected, rel=1e-13)
    assert updates == 3


def test_param_layout():
    offsets, total = F.param_layout([4, 3, 2])
    np.testing.assert_array_equal(offsets, [[0, 12], [15, 21]])
    assert total == 4 * 3 + 3 + 3 * 2 + 2


@pytest.mark.parametrize("hidden", [F.IDENTITY, F.RELU, F.SIGMOID, F.TANH],
                         ids=["identity", "relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
def test_divergence_stops_before_the_bad_batch(backend_name, hidden, rng):
    """A non-finite batch objective ends the epoch: that batch is not applied, nor counted. (Every
    activation must pass NaN on, as NumPy's do, or it would hide the NaN from the loss.)"""
    bk = load(backend_name)
    sizes = np.array([3, 4, 2], dtype=np.int64)
    acts = np.array([hidden, F.IDENTITY], dtype=np.int64)
    x, y, order, params, state = problem(rng, np.float64, sizes, F.IDENTITY, F.QUADRATIC, F.SGD, n=12)
    x[order[7]] = np.nan  # in the third batch of 3
    before = params.copy()
    # the first two batches alone: their objective sum and correct rows are what the epoch reports
    ref_total, ref_correct, _, _ = F.train_epoch(x, y, order[:6], before, state.copy(), sizes, acts, F.QUADRATIC,
                                                 F.SGD, hyper(False), 3, 0, 0)
    total, correct, updates, last = bk.train_epoch(x, y, order, params, state, sizes, acts, F.QUADRATIC,
                                                   F.SGD, hyper(False), 3, 0, 0)
    assert updates == 2 and np.isnan(last)
    assert correct == ref_correct and total == pytest.approx(ref_total, rel=1e-12)
    assert_close(params, before, 1e-12, scale=np.abs(before).max(), what="parameters after two batches")


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
def test_saturated_bce_is_clipped_and_single_output_accuracy(backend_name):
    """The reported BCE clips a to [eps, 1 - eps] as fastnn.losses does; one output counts a > 0.5 as 1."""
    bk = load(backend_name)
    sizes = np.array([2, 1], dtype=np.int64)
    acts = np.array([F.SIGMOID], dtype=np.int64)
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    y = np.array([[0.0], [0.0], [1.0]])  # z = 100: a = 1.0 exactly, wrong; z = -1: right; z = 0: a = 0.5, wrong
    params = np.array([100.0, -1.0, 0.0])
    h = hyper(False, loss_eps=1e-12)
    h[F.LR] = 0.0
    total, correct, updates, last = bk.train_epoch(x, y, np.arange(3), params, np.zeros((0, 3)), sizes, acts,
                                                   F.BCE, F.SGD, h, 3, 0, 0)
    assert last == pytest.approx(total / 3, rel=1e-15)  # one batch: its mean objective
    a = 1 / (1 + np.exp([-100.0, 1.0, 0.0]))
    expected = -np.log1p(-(1 - 1e-12)) - np.log1p(-a[1]) - np.log(0.5)
    assert total == pytest.approx(expected, rel=1e-12)
    assert (correct, updates) == (1, 1)


# -- fastnn.fused: the runner that Sequential.fit calls, against fit's layer-by-layer path -----------------

MODELS = {
    "sigmoid-bce-sgd": (lambda: [L.Dense(6, 5), L.Sigmoid(), L.Dense(5, 3), L.Sigmoid()], "cross_entropy",
                        lambda: optim.SGD(lr=0.5), 0.0, 0.0),
    "relu-softmax-adam-l2": (lambda: [L.Dense(6, 5), L.ReLU(), L.Dense(5, 4), L.Tanh(), L.Dense(4, 3),
                                      L.Softmax()],
                             "log_likelihood", lambda: optim.Adam(lr=0.01, weight_decay=0.01), 0.0, 0.5),
    "linear-quadratic-nesterov-l1": (lambda: [L.Dense(6, 4), L.Dense(4, 3)], "quadratic",
                                     lambda: optim.SGD(lr=0.05, momentum=0.9, nesterov=True), 0.3, 0.0),
}


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("case", MODELS.values(), ids=MODELS.keys())
def test_runner_equals_fit(backend_name, case, rng):
    """Epochs through the runner equal Sequential.fit's layer-by-layer epochs: weights, History's loss and
    accuracy, optimizer state and step count (float64; the same seeded permutations)."""
    make_layers, loss_name, make_opt, l1, l2 = case
    x = rng.standard_normal((23, 6))
    labels = rng.integers(0, 3, 23)
    ref_model = Sequential(make_layers(), dtype="float64", backend=backend_name, seed=3)
    model = Sequential(make_layers(), dtype="float64", backend=backend_name, seed=3)
    opt = make_opt()
    history = ref_model.fit(x, labels, loss=loss_name, optimizer=make_opt(), epochs=3, batch_size=4, seed=7,
                            l1=l1, l2=l2, verbose=0)
    loss = losses.get(loss_name)
    targets, _ = loss.prepare(labels, 3, np.float64)
    runner, reason = fused.plan(model, loss, opt, l1, l2)
    assert runner is not None and reason is None
    order_rng = np.random.default_rng(7)  # fit's generator: a permutation per epoch (no dropout draws)
    with model._scope():
        for epoch in range(3):
            total, correct, updates, status, _ = runner.run_epoch(x, targets, order_rng.permutation(23), 4,
                                                                  (None, np.zeros((6, 0), np.int64)))
            assert updates == 6 and status == F.STATUS_DONE
            assert total / 23 == pytest.approx(history.loss[epoch], rel=1e-10)
            assert correct / 23 == history.accuracy[epoch]
    for got, expected in zip(model.get_weights(), ref_model.get_weights()):
        assert_close(got, expected, 1e-10, scale=np.abs(expected).max(), what="weights")
    assert opt.iterations == ref_model.optimizer.iterations == 18
    for got, expected in zip(opt.state_dict()["state"], ref_model.optimizer.state_dict()["state"]):
        for name in expected:
            assert_close(got[name], expected[name], 1e-10, scale=np.abs(expected[name]).max(), what=name)


def test_runner_shares_memory_and_repacks(rng):
    """Layers and optimizer hold views of the flat buffers; arrays replaced between epochs are adopted."""
    model = Sequential([L.Dense(4, 3), L.Tanh(), L.Dense(3, 2), L.Sigmoid()], dtype="float32", seed=0)
    opt = optim.SGD(lr=0.1, momentum=0.5)
    runner, _ = fused.plan(model, losses.get("cross_entropy"), opt)
    assert all(np.shares_memory(p, runner.params) for p in model.params())
    x = rng.standard_normal((8, 4)).astype(np.float32)
    y = (rng.random((8, 2)) > 0.5).astype(np.float32)
    no_draws = (None, np.zeros((3, 0), np.int64))
    runner.run_epoch(x, y, None, 3, no_draws)
    assert all(np.shares_memory(s["momentum_buffer"], runner.state) for s in opt.state)
    np.testing.assert_array_equal(model.layers[0].W.reshape(-1), runner.params[:12])
    new_w = np.ones((4, 3), dtype=np.float32)
    model.layers[0].params[0] = new_w  # replaced, not written in place
    opt.reset()
    runner.run_epoch(x, y, None, 8, (None, np.zeros((1, 0), np.int64)))
    assert model.layers[0].params[0] is not new_w and np.shares_memory(model.layers[0].W, runner.params)
    assert opt.iterations == 1 and not np.array_equal(model.layers[0].W, new_w)


@pytest.mark.parametrize("model_layers,loss_name,opt", [
    ([L.Dense(4, 3), L.Softmax()], "cross_entropy", optim.SGD(lr=0.1)),       # BCE through softmax's Jacobian
    ([L.Dense(4, 3), L.Sigmoid()], "mse", optim.SGD(lr=0.1)),
    ([L.Dense(4, 3), L.Sigmoid()], "cross_entropy", optim.AdamW()),
    ([L.Dense(4, 3), L.Sigmoid()], "cross_entropy", optim.RMSprop()),
], ids=["bce-softmax", "mse", "adamw", "rmsprop"])
def test_plan_takes_every_loss_and_optimizer(model_layers, loss_name, opt):
    model = Sequential(model_layers, dtype="float64")
    runner, reason = fused.plan(model, losses.get(loss_name), opt)
    assert runner is not None and reason is None


@pytest.mark.parametrize("model_layers,reason", [
    ([L.Dense(4, 3), L.Dropout(0.5), L.Sigmoid()], r"layer 2 \(Sigmoid\) follows a Dropout"),
    ([L.Sigmoid(), L.Dense(4, 3)], r"layer 0 \(Sigmoid\) comes before any Dense layer"),
    ([L.Dense(4, 3), L.Sigmoid(), L.Tanh()], r"layer 2 \(Tanh\) follows an activation"),
    ([L.Dense(4, 3), L.Softmax(), L.Dense(3, 2)], "Softmax before the output layer"),
], ids=["dropout-before-activation", "act-first", "two-acts", "inner-softmax"])
def test_plan_names_what_it_cannot_compile(model_layers, reason):
    model = Sequential(model_layers, dtype="float64")
    runner, why = fused.plan(model, losses.get("quadratic"), optim.SGD(lr=0.1))
    assert runner is None and re.search(reason, why)


def test_plan_takes_clipping_and_augment_but_no_callable_and_not_when_turned_off(monkeypatch):
    from fastnn.augment import Augment

    model = Sequential([L.Dense(4, 3), L.Sigmoid()], dtype="float64")
    args = (model, losses.get("cross_entropy"), optim.SGD(lr=0.1))
    assert fused.plan(*args)[0] is not None
    assert fused.plan(*args, clip_norm=1.0)[0] is not None
    assert fused.plan(*args, augment=Augment(side=2))[0] is not None
    assert fused.plan(*args, augment=lambda xb, rng: xb) == (None, "augment is a Python callable, not a "
                                                                  "fastnn.augment.Augment")
    monkeypatch.setenv("FASTNN_FUSED", "0")
    assert fused.plan(*args) == (None, "the environment variable FASTNN_FUSED is 0")


@pytest.mark.parametrize("backend_name", ["numba", "cython"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_flush_denormals_during_the_call_only(backend_name, dtype):
    """With flush_denormals, a subnormal update result becomes 0; without, it is kept; and the caller's
    floating-point mode is the same afterwards (NumPy still makes subnormals)."""
    bk = load(backend_name)
    tiny = np.finfo(dtype).tiny  # the smallest normal float; b = 2 tiny, b - 0.75 b = tiny / 2 is subnormal
    sizes = np.array([1, 1], dtype=np.int64)
    acts = np.array([F.IDENTITY], dtype=np.int64)
    x = np.zeros((1, 1), dtype=dtype)
    y = np.zeros((1, 1), dtype=dtype)
    results = []
    for flush in (0.0, 1.0):
        params = np.array([0.0, 2 * tiny], dtype=dtype)
        h = hyper(False)
        h[F.LR] = 0.75
        h[F.FLUSH_DENORMALS] = flush
        bk.train_epoch(x, y, np.zeros(1, np.int64), params, np.zeros((0, 2), dtype), sizes, acts, F.QUADRATIC,
                       F.SGD, h, 1, 0, 0)
        results.append(params[1])
        assert dtype.type(tiny) * dtype.type(0.25) != 0  # the caller's mode was restored
    assert results[0] == dtype.type(tiny / 2) and results[1] == 0


@pytest.mark.parametrize("output", [(F.SIGMOID, F.BCE), (F.SOFTMAX, F.NLL)], ids=["bce", "nll"])
@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
def test_nan_output_is_not_clipped_away(backend_name, output, rng):
    """The loss clipping (a to [eps, 1 - eps]) must keep NaN as NaN, so divergence is seen."""
    bk = load(backend_name)
    sizes = np.array([3, 2], dtype=np.int64)
    acts = np.array([output[0]], dtype=np.int64)
    x, y, order, params, state = problem(rng, np.float64, sizes, output[0], output[1], F.SGD, n=4)
    params[-1] = np.nan  # the bias of output unit 1
    before = params.copy()
    total, correct, updates, last = bk.train_epoch(x, y, order, params, state, sizes, acts, output[1], F.SGD,
                                                   hyper(False), 2, 0, 0)
    assert (total, correct, updates) == (0.0, 0, 0) and np.isnan(last)
    np.testing.assert_array_equal(params, before)


def _two_epochs_match_reference(compiled, x, y, order, params, state, running, sizes, acts, opt, h, n_threads, rtol,
                                drop, seeds, norm, pieces=None):
    """Two epochs (NLL, batches of 5 over 23 rows) of the compiled kernel in place and of the reference on
    copies, from the same start. Compares the objective sums, then params, running statistics and
    optimizer state; returns the reference's (params, state, running)."""
    p_ref, s_ref, r_ref = params.copy(), state.copy(), running.copy()
    for epoch in range(2):
        got = compiled.train_epoch(x, y, order, params, state, sizes, acts, F.NLL, opt, h, 5, epoch * 5, 0,
                                   n_threads, drop, seeds, norm, running, None, pieces)
        expected = F.train_epoch(x, y, order, p_ref, s_ref, sizes, acts, F.NLL, opt, h, 5, epoch * 5, 0, 1, drop,
                                 seeds, norm, r_ref, None, pieces)
        assert got[2] == expected[2] == 5
        assert_close(got[0], expected[0], rtol, what="objective sum")
    assert_close(params, p_ref, rtol, scale=np.abs(p_ref).max(), what="params")
    assert_close(running, r_ref, rtol, scale=np.abs(r_ref).max(), what="running statistics")
    if state.size:
        assert_close(state, s_ref, rtol, scale=np.abs(s_ref).max(), what="optimizer state")
    return p_ref, s_ref, r_ref


@pytest.mark.parametrize("n_threads", [1, 2, 3], ids=["t1", "t2", "t3"])
@pytest.mark.parametrize("opt", [F.SGD, F.ADAM], ids=["sgd", "adam"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_compiled_dropout_and_batch_norm_equal_reference(compiled, rng, dtype, opt, n_threads):
    """Dropout masks (same seeds), BatchNorm (gamma, beta, running statistics) and their backward passes,
    split across threads, against the reference kernel."""
    sizes = np.array([7, 37, 21, 3], dtype=np.int64)
    acts = np.array([F.RELU, F.SIGMOID, F.SOFTMAX], dtype=np.int64)
    drop = np.array([0.3, 0.2, 0.0])
    norm = np.array([[0.1, 1e-5], [0.3, 1e-3], [0.0, 0.0]])
    gammas, runs, n_params, n_running = F.norm_layout(sizes, norm)
    x, y, order, _, _ = problem(rng, dtype, sizes, F.SOFTMAX, F.NLL, opt, n=23)
    params = (0.15 * rng.standard_normal(n_params)).astype(dtype)
    params[gammas[0]:gammas[0] + 37] += 1  # gamma near 1
    state = np.zeros((F.STATE_ROWS[opt], n_params), dtype)
    running = np.concatenate([np.zeros(37), np.ones(37), np.zeros(21), np.ones(21)]).astype(dtype)
    assert running.size == n_running
    h = hyper(False)
    h[F.EPS] = 1e-3  # see test_fused_fit_with_batch_norm_equals_layer_by_layer (test_fit_fused.py)
    seeds = rng.integers(0, 2**63, size=(5, 3))
    p_ref, s_ref, r_ref = _two_epochs_match_reference(compiled, x, y, order, params, state, running, sizes, acts,
                                                      opt, h, n_threads, PARAMS_RTOL[np.dtype(dtype)], drop,
                                                      seeds, norm)
    # the masks are drawn: without dropout the parameters end elsewhere
    other = params.copy()
    F.train_epoch(x, y, order, other, state.copy(), sizes, acts, F.NLL, opt, h, 5, 10, 0, 1, None, None, norm,
                  running.copy())
    p2 = p_ref.copy()
    F.train_epoch(x, y, order, p2, s_ref.copy(), sizes, acts, F.NLL, opt, h, 5, 10, 0, 1, drop, seeds, norm,
                  r_ref.copy())
    assert not np.allclose(other, p2)


@pytest.mark.parametrize("n_threads", [1, 2], ids=["t1", "t2"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_compiled_leaky_relu_and_softplus_equal_reference(compiled, rng, dtype, n_threads):
    sizes = np.array([7, 37, 21, 3], dtype=np.int64)
    acts = np.array([F.LEAKY_RELU, F.SOFTPLUS, F.SIGMOID], dtype=np.int64)
    slopes = np.array([0.2, 0.0, 0.0])
    x, y, order, params, state = problem(rng, dtype, sizes, F.SIGMOID, F.BCE, F.ADAM, scale=0.3)
    x[:3] *= 40  # saturated units: Softplus' gradient far below 2^-10 and near 1
    p_ref, s_ref = params.copy(), state.copy()
    h = hyper(True)
    for epoch in range(2):
        got = compiled.train_epoch(x, y, order, params, state, sizes, acts, F.BCE, F.ADAM, h, 4, epoch * 3, 0,
                                   n_threads, None, None, None, None, slopes)
        expected = F.train_epoch(x, y, order, p_ref, s_ref, sizes, acts, F.BCE, F.ADAM, h, 4, epoch * 3, 0, 1, None,
                                 None, None, None, slopes)
        assert got[2] == expected[2] == 3
        assert_close(got[0], expected[0], FUSED_RTOL[np.dtype(dtype)], what="objective sum")
    assert_close(params, p_ref, PARAMS_RTOL[np.dtype(dtype)], scale=np.abs(p_ref).max(), what="params")
    # Softplus on the output layer too (its f' from the output a, through the quadratic loss's gradient)
    acts = np.array([F.RELU, F.RELU, F.SOFTPLUS], dtype=np.int64)
    got = compiled.train_epoch(x, y, order, params, state, sizes, acts, F.QUADRATIC, F.ADAM, h, 4, 6, 0, n_threads)
    expected = F.train_epoch(x, y, order, p_ref, s_ref, sizes, acts, F.QUADRATIC, F.ADAM, h, 4, 6, 0, 1)
    assert got[2] == expected[2] == 3
    assert_close(got[0], expected[0], FUSED_RTOL[np.dtype(dtype)], what="objective sum, Softplus output")
    assert_close(params, p_ref, PARAMS_RTOL[np.dtype(dtype)], scale=np.abs(p_ref).max(), what="params")


@pytest.mark.parametrize("n_threads", [1, 2, 3], ids=["t1", "t2", "t3"])
@pytest.mark.parametrize("opt,penalties", [(F.SGD, False), (F.ADAM, True)], ids=["sgd", "adam-penalties"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_compiled_prelu_and_maxout_equal_reference(compiled, rng, dtype, opt, penalties, n_threads):
    """Maxout layers first and deeper (their product columns split by units), PReLU slopes (learned, owned
    like a bias) after a Maxout, a Dense + BatchNorm and before a Dropout, against the reference kernel."""
    sizes = np.array([7, 37, 21, 9, 3], dtype=np.int64)
    acts = np.array([F.PRELU, F.IDENTITY, F.PRELU, F.SOFTMAX], dtype=np.int64)
    pieces = np.array([3, 2, 1, 1], dtype=np.int64)
    drop = np.array([0.2, 0.0, 0.1, 0.0])
    norm = np.array([[0, 0], [0, 0], [0.1, 1e-3], [0, 0]], dtype=np.float64)
    gammas, _, _, n_running = F.norm_layout(sizes, norm, pieces)
    alphas, n_params = F.prelu_layout(sizes, acts, norm, pieces)
    x, y, order, _, _ = problem(rng, dtype, sizes, F.SOFTMAX, F.NLL, opt, n=23)
    params = (0.3 * rng.standard_normal(n_params)).astype(dtype)
    params[gammas[2]:gammas[2] + 9] += 1
    params[alphas[0]:alphas[0] + 37] = rng.uniform(-0.5, 0.5, 37)  # negative slopes too
    params[alphas[2]:alphas[2] + 9] = 0.25
    state = np.zeros((F.STATE_ROWS[opt], n_params), dtype)
    running = np.concatenate([np.zeros(9), np.ones(9)]).astype(dtype)
    assert running.size == n_running
    h = hyper(penalties)
    h[F.EPS] = 1e-3  # see test_fused_fit_with_batch_norm_equals_layer_by_layer (test_fit_fused.py)
    seeds = rng.integers(0, 2**63, size=(5, 4))
    start = params.copy()
    _two_epochs_match_reference(compiled, x, y, order, params, state, running, sizes, acts, opt, h, n_threads,
                                PARAMS_RTOL[np.dtype(dtype)], drop, seeds, norm, pieces)
    for l, n in ((0, 37), (2, 9)):  # the slopes learned (those of units that were negative somewhere)
        assert np.count_nonzero(params[alphas[l]:alphas[l] + n] != start[alphas[l]:alphas[l] + n]) > n // 2


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
@pytest.mark.parametrize("acts,pieces,norm,what", [
    ([F.RELU, F.PRELU], [1, 1], None, "PReLU on the output"),
    ([F.RELU, F.SIGMOID], [0, 1], None, "pieces must be >= 1"),
], ids=["prelu-output", "zero-pieces"])
def test_unsupported_layer_options_are_refused(backend_name, acts, pieces, norm, what, rng):
    sizes = np.array([4, 6, 2], dtype=np.int64)
    pieces = np.array(pieces, dtype=np.int64)
    _, n_params = F.param_layout(sizes, np.maximum(pieces, 1))
    x, y, order, _, state = problem(rng, np.float64, sizes, F.SIGMOID, F.BCE, F.SGD)
    params = np.zeros(n_params + 6)
    with pytest.raises(ValueError, match=what):
        load(backend_name).train_epoch(x, y, order, params, state, sizes, np.array(acts, dtype=np.int64), F.BCE,
                                       F.SGD, hyper(False), 4, 0, 0, 1, None, None,
                                       None if norm is None else np.array(norm, dtype=np.float64), None, None, pieces)


def test_numba_unowned_views_are_the_array():
    """The numba worker's views that count no references (kernels/numba/_sync.py's ``unowned``) read and write
    the array itself, slices of them too, for the dtypes and layouts the worker gives them."""
    from numba import njit

    from fastnn._kernels.numba._sync import unowned

    @njit
    def fill(a, b):
        v, rows = unowned(a), unowned(b)
        part = v[2:5]
        for i in range(part.shape[0]):
            part[i] = i + 1
        return v[3] + rows[1][2]

    for dtype in (np.float32, np.float64):
        a, b = np.zeros(6, dtype), np.arange(12, dtype=np.int64).reshape(3, 4)
        assert fill(a, b) == 2 + 6
        np.testing.assert_array_equal(a, [0, 0, 1, 2, 3, 0])
