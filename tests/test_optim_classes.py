"""Optimizer classes, gradient clipping and learning-rate schedules (fastnn.optim).

Updates are checked against torch.optim itself (tests/torch_reference.py) over several steps, in float64,
parameters and optimizer state.
"""
import math
import types

import numpy as np
import pytest

from fastnn import optim
from torch_reference import require_torch, torch_optimizer, torch_state


@pytest.fixture
def gen():
    return np.random.default_rng(7)


def _problem(gen):
    params = [gen.normal(size=(4, 3)), gen.normal(size=3)]
    grads = [[gen.normal(size=p.shape) for p in params] for _ in range(4)]
    return params, grads


CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9}),
    ("Adadelta", {"lr": 1.0, "rho": 0.95}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_updates_equal_torch_optim(name, kw, gen):
    torch = require_torch()
    params, grad_seq = _problem(gen)
    opt = getattr(optim, name)(**kw)
    tensors = [torch.from_numpy(p.copy()).requires_grad_(True) for p in params]
    reference = torch_optimizer(opt, tensors)
    work = [p.copy() for p in params]
    for grads in grad_seq:
        opt.step(work, grads)
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        reference.step()
    assert opt.iterations == len(grad_seq)
    for i, (got, t) in enumerate(zip(work, tensors)):
        # float64, 4 steps: rounding only; measured over 5 seeds <= 5.5e-14 relative (parameters) and
        # 3.2e-15 (state), so rtol 1e-12 (18x).
        np.testing.assert_allclose(got, t.detach().numpy(), rtol=1e-12, atol=1e-15)
        for state in opt.state_names:
            np.testing.assert_allclose(opt.state[i][state], torch_state(reference, t, state), rtol=1e-12,
                                       atol=1e-15, err_msg=state)


@pytest.mark.parametrize("name, kw", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_state_dict_resumes_exactly(name, kw, gen):
    params, grad_seq = _problem(gen)
    straight = getattr(optim, name)(**kw)
    a = [p.copy() for p in params]
    for grads in grad_seq:
        straight.step(a, grads)

    first = getattr(optim, name)(**kw)
    b = [p.copy() for p in params]
    for grads in grad_seq[:2]:
        first.step(b, grads)
    saved = first.state_dict()
    for s in saved["state"]:  # the state dict is a copy: changing it does not touch the optimizer
        for arr in s.values():
            arr += 1.0
    saved = first.state_dict()
    second = getattr(optim, name)(lr=123.0) if name != "SGD" else optim.SGD(lr=123.0, momentum=kw.get("momentum", 0))
    second.load_state_dict(saved)
    assert second.lr == kw["lr"] and second.iterations == 2
    for grads in grad_seq[2:]:
        second.step(b, grads)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_optimizer_keeps_state_per_parameter_and_refuses_other_shapes(gen):
    opt = optim.Adam(lr=0.1)
    p = [np.zeros(3), np.zeros((2, 2))]
    opt.step(p, [np.ones(3), -np.ones((2, 2))])
    assert len(opt.state) == 2 and opt.state[0]["exp_avg"].shape == (3,) and opt.state[1]["exp_avg"].shape == (4,)
    np.testing.assert_allclose(p[0], -0.1, rtol=1e-6)  # Adam's first step is lr * sign(g)
    np.testing.assert_allclose(p[1], 0.1, rtol=1e-6)
    with pytest.raises(ValueError, match="other shapes"):
        opt.step([np.zeros(4)], [np.ones(4)])
    with pytest.raises(ValueError, match="state is for a Adam"):
        optim.SGD(0.1).load_state_dict(opt.state_dict())
    opt.reset()
    opt.step([np.zeros(4)], [np.ones(4)])  # a reset optimizer binds to new parameters


def test_float32_parameters_get_float32_state():
    opt = optim.RMSprop(lr=0.01)
    p = [np.ones(5, dtype=np.float32)]
    opt.step(p, [np.ones(5, dtype=np.float32)])
    assert p[0].dtype == np.float32 and opt.state[0]["square_avg"].dtype == np.float32


def test_get_by_name_and_hyperparameter_errors():
    assert isinstance(optim.get("adam"), optim.Adam) and optim.get("adam").lr == 0.001
    assert optim.get("sgd").lr == 0.01 and optim.get("SGD", lr=0.5).lr == 0.5
    assert optim.AdamW().weight_decay == 0.01
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optim.get("lbfgs")
    with pytest.raises(ValueError, match="lr must be"):
        optim.SGD(0)
    with pytest.raises(ValueError, match="lr must be"):
        optim.Adam(lr=float("nan"))
    with pytest.raises(ValueError, match="nesterov=True needs momentum"):
        optim.SGD(0.1, nesterov=True)
    with pytest.raises(ValueError, match="beta2"):
        optim.Adam(betas=(0.9, 1.0))


def test_clip_grad_norm_scales_to_the_limit_and_leaves_small_gradients(gen):
    grads = [np.array([3.0, 0.0]), np.array([[0.0, 4.0]])]  # global norm 5
    norm = optim.clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert optim.global_norm(grads) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(grads[0], [0.6, 0.0], rtol=1e-5)
    small = [np.array([0.3, 0.4])]
    assert optim.clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small[0], [0.3, 0.4])
    g32 = [np.full(4, 10, dtype=np.float32)]
    optim.clip_grad_norm(g32, 2.0)
    assert g32[0].dtype == np.float32 and optim.global_norm(g32) == pytest.approx(2.0, rel=1e-5)


def _run_schedule(schedule, epochs, lr=1.0, values=None):
    model = types.SimpleNamespace(optimizer=optim.SGD(lr), stop_training=False)
    schedule.set_model(model)
    schedule.on_train_begin({})
    lrs = [model.optimizer.lr]
    for e in range(epochs):
        schedule.on_epoch_end(e, {"val_loss": values[e]} if values else {})
        lrs.append(model.optimizer.lr)
    return lrs


def test_schedules_follow_their_formulas():
    assert _run_schedule(optim.StepLR(step_size=3, gamma=0.5), 7) == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    np.testing.assert_allclose(_run_schedule(optim.ExponentialLR(0.9), 5, lr=0.2), 0.2 * 0.9 ** np.arange(6))
    lrs = _run_schedule(optim.CosineAnnealingLR(T_max=4, eta_min=0.1), 8)
    expected = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(9)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    assert lrs[4] == pytest.approx(0.1) and lrs[8] == pytest.approx(1.0)


def test_reduce_on_plateau_waits_patience_epochs_then_cools_down():
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]
    sched = optim.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0, cooldown=1, min_lr=0.2)
    lrs = _run_schedule(sched, len(values), values=values)
    # epochs 2,3 do not improve -> halve after epoch 3; one cooldown epoch (4), then 5,6 -> halve after 6
    assert lrs == [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2]
    with pytest.raises(ValueError, match="val_loss"):
        _run_schedule(optim.ReduceLROnPlateau(), 1, values=None)
