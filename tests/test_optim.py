"""Optimizer kernels (in place): the first steps against values worked out on paper, compiled backends
against the reference, and every backend against torch.optim (parameters and state, five steps)."""
import math

import numpy as np
import pytest

from kernel_helpers import RTOL, assert_close
from torch_reference import require_torch, torch_state

# name -> (kernel call(k, p, g, state, step, wd), number of state arrays)
OPTIMIZERS = {
    "sgd": (lambda k, p, g, s, t, wd: k.sgd_step(p, g, 0.1, wd), 0),
    "momentum": (lambda k, p, g, s, t, wd: k.momentum_step(p, g, s[0], 0.1, 0.9, wd, False), 1),
    "nesterov": (lambda k, p, g, s, t, wd: k.momentum_step(p, g, s[0], 0.1, 0.9, wd, True), 1),
    "adagrad": (lambda k, p, g, s, t, wd: k.adagrad_step(p, g, s[0], 0.1, 0.5, 1e-10, wd, t), 1),
    "rmsprop": (lambda k, p, g, s, t, wd: k.rmsprop_step(p, g, s[0], 0.01, 0.99, 1e-8, wd), 1),
    "adadelta": (lambda k, p, g, s, t, wd: k.adadelta_step(p, g, s[0], s[1], 1.0, 0.9, 1e-6, wd), 2),
    "adam": (lambda k, p, g, s, t, wd: k.adam_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 1e-8, wd, t), 2),
    "adamw": (lambda k, p, g, s, t, wd: k.adamw_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 1e-8, wd, t), 2),
}

# Worked on paper: p = 1, the gradient 0.5 and then -1, lr 0.1, eps 0 -> p after each step (and the state).
ON_PAPER = {
    "sgd": (lambda k, p, g, s, t: k.sgd_step(p, g, 0.1, 0.0), 0, [0.95, 1.05]),
    # d = 0.5 + 0.1 -> 0.94; d = -1 + 0.094 -> 0.94 + 0.0906
    "sgd-decay": (lambda k, p, g, s, t: k.sgd_step(p, g, 0.1, 0.1), 0, [0.94, 1.0306]),
    # buf 0.5 -> p 0.95; buf 0.9 * 0.5 - 1 = -0.55 -> p 0.95 + 0.055
    "momentum": (lambda k, p, g, s, t: k.momentum_step(p, g, s[0], 0.1, 0.9, 0.0, False), 1, [0.95, 1.005],
                 [0.5, -0.55]),
    # p 1 - 0.1 (0.5 + 0.45) = 0.905; then 0.905 - 0.1 (-1 + 0.9 * -0.55) = 1.0545
    "nesterov": (lambda k, p, g, s, t: k.momentum_step(p, g, s[0], 0.1, 0.9, 0.0, True), 1, [0.905, 1.0545],
                 [0.5, -0.55]),
    # sum 0.25 -> p 1 - 0.1 * 0.5 / 0.5 = 0.9; sum 1.25, lr 0.1 / (1 + 0.5) -> 0.9 + (0.1 / 1.5) / sqrt(1.25)
    "adagrad": (lambda k, p, g, s, t: k.adagrad_step(p, g, s[0], 0.1, 0.5, 0.0, 0.0, t), 1,
                [0.9, 0.9 + 0.1 / 1.5 / math.sqrt(1.25)], [0.25, 1.25]),
    # v = 0.01 * 0.25 -> |g| / sqrt(v) = 10: p 1 - 0.1 * 10 = 0
    "rmsprop": (lambda k, p, g, s, t: k.rmsprop_step(p, g, s[0], 0.1, 0.99, 0.0, 0.0), 1, [0.0], [0.0025]),
    # v = 0.1 * 0.25; step sqrt(0 + eps) / sqrt(v + eps) * 0.5 with eps 1e-6; u = 0.1 * step^2
    "adadelta": (lambda k, p, g, s, t: k.adadelta_step(p, g, s[0], s[1], 1.0, 0.9, 1e-6, 0.0), 2,
                 [1 - 0.5e-3 / math.sqrt(0.025 + 1e-6)], [0.025], [0.1 * (0.5e-3 / math.sqrt(0.025 + 1e-6)) ** 2]),
    # Adam's first step moves every coordinate by lr (bias-corrected m / sqrt(v) = sign(g)).
    "adam": (lambda k, p, g, s, t: k.adam_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 0.0, 0.0, t), 2, [0.9],
             [0.05], [0.00025]),
    # AdamW with decay 0.1: p * (1 - 0.01) = 0.99, then - 0.1.
    "adamw": (lambda k, p, g, s, t: k.adamw_step(p, g, s[0], s[1], 0.1, 0.9, 0.999, 0.0, 0.1, t), 2, [0.89],
              [0.05], [0.00025]),
}


@pytest.mark.parametrize("name", ON_PAPER)
def test_first_steps_worked_on_paper(bk, dtype, name):
    """The kernels in place on p = 1 against the values worked out above; the gradient is left alone."""
    call, n_state, p_steps, *state_steps = ON_PAPER[name]
    p = np.ones(1, dtype=dtype)
    state = [np.zeros(1, dtype=dtype) for _ in range(n_state)]
    for step, (g0, want) in enumerate(zip([0.5, -1.0], p_steps), 1):
        g = np.array([g0], dtype=dtype)
        assert call(bk, p, g, state, step) is None  # in place
        assert g[0] == g0 and p.dtype == dtype  # the gradient is never modified
        assert p[0] == pytest.approx(want, rel=RTOL[dtype], abs=RTOL[dtype]), f"{name} step {step}"
        for s, values in zip(state, state_steps):
            assert s.dtype == dtype
            assert s[0] == pytest.approx(values[step - 1], rel=RTOL[dtype]), f"{name} step {step} state"


@pytest.mark.parametrize("wd", [0.0, 0.01])
@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("size", [1, 7, 13, 784 * 30 + 1])
def test_compiled_matches_reference(compiled, ref, dtype, rng, name, wd, size):
    call, n_state = OPTIMIZERS[name]
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
    call, n_state = OPTIMIZERS[name]
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


# -- torch.optim ------------------------------------------------------------------------------------------

TORCH_CASES = {
    # name -> (torch optimizer factory(params, wd), our kernel call, torch's names of the state arrays)
    "SGD": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, weight_decay=wd, foreach=False), OPTIMIZERS["sgd"][0], ()),
    "SGD-momentum": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=wd, foreach=False),
                     OPTIMIZERS["momentum"][0], ("momentum_buffer",)),
    "SGD-nesterov": (lambda t, ps, wd: t.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=wd,
                                                   foreach=False), OPTIMIZERS["nesterov"][0], ("momentum_buffer",)),
    "Adagrad": (lambda t, ps, wd: t.optim.Adagrad(ps, lr=0.1, lr_decay=0.5, eps=1e-10, weight_decay=wd,
                                                  foreach=False), OPTIMIZERS["adagrad"][0], ("sum",)),
    "Adadelta": (lambda t, ps, wd: t.optim.Adadelta(ps, lr=1.0, rho=0.9, eps=1e-6, weight_decay=wd, foreach=False),
                 OPTIMIZERS["adadelta"][0], ("square_avg", "acc_delta")),
    "RMSprop": (lambda t, ps, wd: t.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=wd, foreach=False),
                OPTIMIZERS["rmsprop"][0], ("square_avg",)),
    "Adam": (lambda t, ps, wd: t.optim.Adam(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, foreach=False),
             OPTIMIZERS["adam"][0], ("exp_avg", "exp_avg_sq")),
    "AdamW": (lambda t, ps, wd: t.optim.AdamW(ps, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd,
                                              foreach=False), OPTIMIZERS["adamw"][0], ("exp_avg", "exp_avg_sq")),
}


@pytest.mark.parametrize("wd", [0.0, 0.1], ids=["no_decay", "decay"])
@pytest.mark.parametrize("name", TORCH_CASES)
def test_matches_torch_optim(bk, dtype, rng, name, wd):
    torch = require_torch()
    make, call, state_names = TORCH_CASES[name]
    size = 11
    p0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(5)]
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = make(torch, [param], wd)
    p = p0.copy()
    state = [np.zeros(size, dtype=dtype) for _ in state_names]
    for step, g in enumerate(grads, 1):
        param.grad = torch.from_numpy(g.copy())
        opt.step()
        call(bk, p, g, state, step, wd)
        want = param.detach().numpy()
        assert_close(p, want, RTOL[dtype], np.abs(want).max(), f"{name} step {step}")
        for s, state_name in zip(state, state_names):
            want = torch_state(opt, param, state_name)
            assert_close(s, want, RTOL[dtype], np.abs(want).max(), f"{name} step {step} {state_name}")
