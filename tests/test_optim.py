"""Optimizer kernels (in place): the first two steps against the update rules written out by hand with
small scalars, compiled backends against the reference, and torch.optim when torch is installed."""
import math

import numpy as np
import pytest

from kernel_helpers import RTOL, assert_close

P0 = [1.0, -2.0]
GRADS = [[0.5, -0.25], [-1.0, 0.5]]  # the gradients of step 1 and step 2


# -- the update rules, one scalar parameter at a time, as in the papers / torch docs -----------------------
# Each yields (p, *state) after every step.


def hand_sgd(p, grads, lr, wd):
    for g in grads:
        d = g + wd * p
        p = p - lr * d
        yield (p,)


def hand_momentum(p, grads, lr, mu, wd, nesterov):
    buf = 0.0
    for g in grads:
        d = g + wd * p
        buf = mu * buf + d  # first step: buf = d
        p = p - lr * (d + mu * buf if nesterov else buf)
        yield p, buf


def hand_adagrad(p, grads, lr, lr_decay, eps, wd):
    total = 0.0
    for step, g in enumerate(grads, 1):
        d = g + wd * p
        total = total + d * d
        clr = lr / (1 + (step - 1) * lr_decay)
        p = p - clr * d / (math.sqrt(total) + eps)
        yield p, total


def hand_rmsprop(p, grads, lr, alpha, eps, wd):
    sq = 0.0
    for g in grads:
        d = g + wd * p
        sq = alpha * sq + (1 - alpha) * d * d
        p = p - lr * d / (math.sqrt(sq) + eps)
        yield p, sq


def hand_adadelta(p, grads, lr, rho, eps, wd):
    sq, acc = 0.0, 0.0
    for g in grads:
        d = g + wd * p
        sq = rho * sq + (1 - rho) * d * d
        delta = math.sqrt(acc + eps) / math.sqrt(sq + eps) * d
        acc = rho * acc + (1 - rho) * delta * delta
        p = p - lr * delta
        yield p, sq, acc


def hand_adam(p, grads, lr, b1, b2, eps, wd, decoupled):
    m, v = 0.0, 0.0
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * wd)  # AdamW: shrink p, the gradient is not decayed
            d = g
        else:
            d = g + wd * p  # Adam: L2 added to the gradient
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        yield p, m, v


# name -> (kernel call(k, p, g, state, step), number of state arrays, hand rule(p, grads, wd))
OPTIMIZERS = {
    "sgd": (lambda k, p, g, s, t, wd: k.sgd_step(p, g, 0.1, wd), 0, lambda p, gs, wd: hand_sgd(p, gs, 0.1, wd)),
    "momentum": (lambda k, p, g, s, t, wd: k.momentum_step(p, g, s[0], 0.1, 0.9, wd, False), 1,
                 lambda p, gs, wd: hand_momentum(p, gs, 0.1, 0.9, wd, False)),
    "nesterov": (lambda k, p, g, s, t, wd: k.momentum_step(p, g, s[0], 0.1, 0.9, wd, True), 1,
                 lambda p, gs, wd: hand_momentum(p, gs, 0.1, 0.9, wd, True)),
    "adagrad": (lambda k, p, g, s, t, wd: k.adagrad_step(p, g, s[0], 0.1, 0.5, 1e-10, wd, t), 1,
                lambda p, gs, wd: hand_adagrad(p, gs, 0.1, 0.5, 1e-10, wd)),
    "rmsprop": (lambda k, p, g, s, t, wd: k.rmsprop_step(p, g, s[0], 0.01, 0.99, 1e-8, wd), 1,
                lambda p, gs, wd: hand_rmsprop(p, gs, 0.01, 0.99, 1e-8, wd)),
    "adadelta": (lambda k, p, g, s, t, wd: k.adadelta_step(p, g, s[0], s[1], 1.0, 0.9, 1e-6, wd), 2,
                 lambda p, gs, wd: hand_adadelta(p, gs, 1.0, 0.9, 1e-6, wd)),
    "adam": (lambda k, p, g, s, t, wd: k.adam_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 1e-8, wd, t), 2,
             lambda p, gs, wd: hand_adam(p, gs, 0.1, 0.9, 0.999, 1e-8, wd, False)),
    "adamw": (lambda k, p, g, s, t, wd: k.adamw_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 1e-8, wd, t), 2,
              lambda p, gs, wd: hand_adam(p, gs, 0.1, 0.9, 0.999, 1e-8, wd, True)),
}


def test_hand_rules_by_hand():
    """The scalar rules above, for p = 1 and gradients 0.5 then -1 (lr 0.1, no decay), worked on paper."""
    assert [s[0] for s in hand_sgd(1.0, [0.5, -1.0], 0.1, 0.0)] == pytest.approx([0.95, 1.05])
    # buf 0.5 -> p 0.95; buf 0.9 * 0.5 - 1 = -0.55 -> p 0.95 + 0.055
    assert [s[0] for s in hand_momentum(1.0, [0.5, -1.0], 0.1, 0.9, 0.0, False)] == pytest.approx([0.95, 1.005])
    # p 1 - 0.1 (0.5 + 0.45) = 0.905; then 0.905 - 0.1 (-1 + 0.9 * -0.55) = 1.0545
    assert [s[0] for s in hand_momentum(1.0, [0.5, -1.0], 0.1, 0.9, 0.0, True)] == pytest.approx([0.905, 1.0545])
    # with weight decay 0.1: d = 0.5 + 0.1 = 0.6 -> 0.94; d = -1 + 0.094 -> 0.94 + 0.0906
    assert [s[0] for s in hand_sgd(1.0, [0.5, -1.0], 0.1, 0.1)] == pytest.approx([0.94, 1.0306])
    # sum 0.25 -> p 1 - 0.1 * 0.5 / 0.5 = 0.9; sum 1.25, lr 0.1 / 1.5 -> 0.9 + (0.1 / 1.5) / sqrt(1.25)
    assert [s[0] for s in hand_adagrad(1.0, [0.5, -1.0], 0.1, 0.5, 0.0, 0.0)] == pytest.approx(
        [0.9, 0.9 + 0.1 / 1.5 / math.sqrt(1.25)])
    # Adam's first step moves every coordinate by lr (bias-corrected m / sqrt(v) = sign(g)).
    assert next(hand_adam(1.0, [0.5], 0.1, 0.9, 0.999, 0.0, 0.0, False))[0] == pytest.approx(0.9)
    # AdamW with decay 0.1: p * (1 - 0.01) = 0.99, then - 0.1.
    assert next(hand_adam(1.0, [0.5], 0.1, 0.9, 0.999, 0.0, 0.1, True))[0] == pytest.approx(0.89)


@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no_decay", "decay"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_first_two_steps_match_hand_computed(bk, dtype, name, wd):
    call, n_state, hand = OPTIMIZERS[name]
    p = np.array(P0, dtype=dtype)
    state = [np.zeros(2, dtype=dtype) for _ in range(n_state)]
    expected = [list(hand(p0, [g[i] for g in GRADS], wd)) for i, p0 in enumerate(P0)]  # per element, per step
    for step, g_list in enumerate(GRADS, 1):
        g = np.array(g_list, dtype=dtype)
        g_before = g.copy()
        assert call(bk, p, g, state, step, wd) is None  # in place
        np.testing.assert_array_equal(g, g_before)  # the gradient is never modified
        want = np.array([expected[i][step - 1] for i in range(2)])  # (2 elements, 1 + n_state)
        rtol = RTOL[dtype]
        assert_close(p, want[:, 0], rtol, np.abs(want[:, 0]).max(), f"{name} step {step} p")
        for j, s in enumerate(state):
            assert s.dtype == dtype
            assert_close(s, want[:, 1 + j], rtol, np.abs(want[:, 1 + j]).max(), f"{name} step {step} state {j}")


@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("size", [1, 7, 13, 784 * 30 + 1])
def test_compiled_matches_reference(compiled, ref, dtype, rng, name, wd, size):
    call, n_state, _ = OPTIMIZERS[name]
    p0 = rng.standard_normal(size).astype(dtype)
    runs = {}
    for label, k in (("ref", ref), ("compiled", compiled)):
        p = p0.copy()
        state = [np.zeros(size, dtype=dtype) for _ in range(n_state)]
        g_rng = np.random.default_rng(7)
        for step in range(1, 4):
            call(k, p, g_rng.standard_normal(size).astype(dtype), state, step, wd)
        runs[label] = [p] + state
    for j, (got, want) in enumerate(zip(runs["compiled"], runs["ref"])):
        assert_close(got, want, RTOL[dtype], np.abs(want).max(), f"{name} array {j}")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_float32_matches_float64_reference(compiled, ref, rng, name):
    call, n_state, _ = OPTIMIZERS[name]
    size = 257
    p32 = rng.standard_normal(size).astype(np.float32)
    grads = [rng.standard_normal(size).astype(np.float32) for _ in range(3)]
    p64 = p32.astype(np.float64)
    s32 = [np.zeros(size, np.float32) for _ in range(n_state)]
    s64 = [np.zeros(size, np.float64) for _ in range(n_state)]
    for step, g in enumerate(grads, 1):
        call(compiled, p32, g, s32, step, 0.01)
        call(ref, p64, g.astype(np.float64), s64, step, 0.01)
    for j, (got, want) in enumerate(zip([p32] + s32, [p64] + s64)):
        assert_close(got, want, RTOL[np.dtype(np.float32)], np.abs(want).max(), f"{name} array {j}")


# -- regularization and norm helpers -----------------------------------------------------------------------


def test_penalty_helpers_by_hand(bk, dtype):
    p = np.array([1.0, -2.0, 0.0], dtype=dtype)
    g = np.array([0.5, 0.5, 0.5], dtype=dtype)
    bk.add_l2_grad(g, p, 0.1)
    np.testing.assert_allclose(g, [0.6, 0.3, 0.5], rtol=1e-6)
    g = np.array([0.5, 0.5, 0.5], dtype=dtype)
    bk.add_l1_grad(g, p, 0.1)
    np.testing.assert_allclose(g, [0.6, 0.4, 0.5], rtol=1e-6)  # sign(0) = 0
    assert bk.sum_squares(p) == 5.0 and isinstance(bk.sum_squares(p), float)
    assert bk.sum_abs(p) == 3.0 and isinstance(bk.sum_abs(p), float)
    bk.scale_inplace(p, 0.5)
    np.testing.assert_array_equal(p, np.array([0.5, -1.0, 0.0], dtype=dtype))


@pytest.mark.parametrize("size", [1, 7, 13, 784 * 30 + 1])
def test_penalty_helpers_compiled_match_reference(compiled, ref, dtype, rng, size):
    p = rng.standard_normal(size).astype(dtype)
    g = rng.standard_normal(size).astype(dtype)
    for fn in ("add_l2_grad", "add_l1_grad"):
        a, b = g.copy(), g.copy()
        getattr(compiled, fn)(a, p, 0.01)
        getattr(ref, fn)(b, p, 0.01)
        assert_close(a, b, RTOL[dtype], np.abs(b).max(), fn)
    # Accumulated in float64 whatever the dtype (float32 products are exact in float64): float64
    # tolerance for both dtypes. A float32 accumulator would be ~1e-5 off at this size.
    for fn in ("sum_squares", "sum_abs"):
        value = getattr(compiled, fn)(p)
        assert isinstance(value, float)
        assert value == pytest.approx(getattr(ref, fn)(p), rel=1e-12)
    a, b = p.copy(), p.copy()
    compiled.scale_inplace(a, 0.3)
    ref.scale_inplace(b, 0.3)
    assert_close(a, b, RTOL[dtype], what="scale_inplace")


# -- torch.optim, when installed ---------------------------------------------------------------------------

TORCH_CASES = {
    # name -> (torch optimizer factory(params, wd), our kernel call, number of state arrays)
    "SGD": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, weight_decay=wd, foreach=False),
            OPTIMIZERS["sgd"][0], 0),
    "SGD-momentum": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=wd, foreach=False),
                     OPTIMIZERS["momentum"][0], 1),
    "SGD-nesterov": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=wd,
                                                   foreach=False), OPTIMIZERS["nesterov"][0], 1),
    "Adagrad": (lambda t, ps, wd: t.optim.Adagrad(ps, lr=0.1, lr_decay=0.5, eps=1e-10, weight_decay=wd,
                                                  foreach=False), OPTIMIZERS["adagrad"][0], 1),
    "Adadelta": (lambda t, ps, wd: t.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-6, weight_decay=wd, foreach=False),
                 OPTIMIZERS["adadelta"][0], 2),
    "RMSprop": (lambda t, ps, wd: t.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=wd, foreach=False),
                OPTIMIZERS["rmsprop"][0], 1),
    "Adam": (lambda t, ps, wd: t.optim.Adam(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False),
             OPTIMIZERS["adam"][0], 2),
    "AdamW": (lambda t, ps, wd: t.optim.AdamW(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                                              foreach=False), OPTIMIZERS["adamw"][0], 2),
}


@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no_decay", "decay"])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch_optim(bk, dtype, rng, name, wd):
    torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")
    make, call, n_state = TORCH_CASES[name]
    size = 11
    p0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(5)]
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = make(torch, [param], wd)
    p = p0.copy()
    state = [np.zeros(size, dtype=dtype) for _ in range(n_state)]
    for step, g in enumerate(grads, 1):
        param.grad = torch.from_numpy(g.copy())
        opt.step()
        call(bk, p, g, state, step, wd)
        want = param.detach().numpy()
        assert_close(p, want, RTOL[dtype], np.abs(want).max(), f"{name} step {step}")

