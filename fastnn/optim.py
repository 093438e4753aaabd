"""Optimizers, gradient clipping and learning-rate schedules.

Optimizers follow ``torch.optim`` (the kernels in ``kernels/reference/optim.py`` state the exact update
rules) and keep one state per parameter, created on the first ``step`` in the parameter's dtype. Each
update is one kernel call on the flattened 1-D view of a parameter (an in-place update of the model's
array). ``weight_decay`` applies to every parameter, biases included, as in torch (it is L2 added to
the gradient, except in AdamW where it is decoupled); ``fit(l1=..., l2=...)`` is the weights-only
regularization of the seeds.

Schedules are callbacks: pass them to ``fit(callbacks=[...])``; each sets ``model.optimizer.lr`` at the
end of every epoch from the number of epochs completed, ``t``, and the learning rate at the start of
training, ``base_lr``:

- ``StepLR(step_size, gamma=0.1)``: ``base_lr * gamma ** (t // step_size)``
- ``ExponentialLR(gamma)``: ``base_lr * gamma ** t``
- ``CosineAnnealingLR(T_max, eta_min=0)``: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``
  (periodic: after T_max epochs the rate rises again, as in torch's closed form)
- ``ReduceLROnPlateau(monitor="val_loss", factor=0.1, patience=10, ...)``: multiply by ``factor`` when
  the monitored metric has not improved for ``patience`` epochs in a row.
"""
import math
import numbers

import numpy as np

from .backend import kernels
from .training import Callback, _monitor_mode, _monitored

__all__ = [
    "Optimizer", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "OPTIMIZERS", "get",
    "clip_grad_norm", "global_norm", "LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR",
    "ReduceLROnPlateau",
]


def _flat(a):
    """1-D view of a C-contiguous array (a copy only if it is not contiguous, which the kernels never return)."""
    return a.reshape(-1) if a.flags.c_contiguous else np.ascontiguousarray(a).reshape(-1)


def _check(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float if it is a finite real number in the interval; else TypeError/ValueError naming it."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "(-inf, " if low is None else ("(" if low_open else "[") + f"{low:g}, "
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name} must be a finite number in {lo}{hi}, got {value!r}")
    return value


class Optimizer:
    """Base class: ``step(params, grads)`` updates every parameter in place from its gradient.

    ``state[i]`` is a dict of arrays for parameter i; ``iterations`` counts the steps taken.
    Subclasses list their hyperparameters in ``hyper`` and state arrays in ``state_names``.
    """

    hyper = ("lr", "weight_decay")
    state_names = ()

    def __init__(self, lr, weight_decay=0.0):
        self.lr = _check("lr", lr, 0, low_open=True)
        self.weight_decay = _check("weight_decay", weight_decay, 0)
        self.reset()

    def reset(self):
        """Forget the state (moments, accumulators) and the step count."""
        self.state, self.iterations, self._shapes = [], 0, None

    def get_config(self):
        return {name: getattr(self, name) for name in self.hyper}

    def _new_state(self, p):
        return {name: np.zeros(p.size, dtype=p.dtype) for name in self.state_names}

    def _bind(self, params):
        shapes = tuple((p.shape, p.dtype) for p in params)
        if self._shapes == shapes:
            return
        if self._shapes is not None:
            raise ValueError(
                f"this {type(self).__name__} was used with parameters of other shapes or dtypes; "
                "use a new optimizer (or call reset()) for another model"
            )
        if not self.state:
            self.state = [self._new_state(p) for p in params]
        if len(self.state) != len(params) or any(
            s[n].size != p.size for s, p in zip(self.state, params) for n in self.state_names
        ):
            raise ValueError(f"{type(self).__name__} state does not match the model's parameters")
        for s, p in zip(self.state, params):
            for n in self.state_names:
                s[n] = np.ascontiguousarray(s[n], dtype=p.dtype).reshape(-1)
        self._shapes = shapes

    def step(self, params, grads):
        """Apply one update. params and grads: equal-length lists of arrays of matching shapes."""
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} parameters but {len(grads)} gradients")
        self._bind(params)
        self.iterations += 1
        k = kernels()
        for p, g, s in zip(params, grads, self.state):
            self._update(k, _flat(p), _flat(g), s)

    def _update(self, k, p, g, state):
        raise NotImplementedError

    def state_dict(self):
        """A copy of everything needed to resume: type, hyperparameters, step count and state arrays."""
        return {
            "type": type(self).__name__,
            "config": self.get_config(),
            "iterations": self.iterations,
            "state": [{n: s[n].copy() for n in self.state_names} for s in self.state],
        }

    def load_state_dict(self, state_dict):
        """Restore from ``state_dict()`` output (arrays are copied; shapes are checked on the next step)."""
        if state_dict.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {state_dict.get('type')}, not a {type(self).__name__}")
        for name, value in state_dict.get("config", {}).items():
            if name not in self.hyper:
                raise ValueError(f"unknown {type(self).__name__} hyperparameter {name!r}")
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        states = state_dict.get("state", [])
        for s in states:
            if set(s) != set(self.state_names):
                raise ValueError(f"{type(self).__name__} state needs arrays {self.state_names}, got {tuple(s)}")
        self.state = [{n: np.array(s[n], copy=True).reshape(-1) for n in self.state_names} for s in states]
        self.iterations = int(state_dict.get("iterations", 0))
        self._shapes = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``; with ``momentum`` > 0, torch's heavy-ball (or
    ``nesterov``) momentum with a velocity buffer per parameter."""

    hyper = ("lr", "momentum", "nesterov", "weight_decay")

    def __init__(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.momentum = _check("momentum", momentum, 0, 1, high_open=True)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        super().__init__(lr, weight_decay)

    @property
    def state_names(self):
        return ("momentum_buffer",) if self.momentum else ()

    def _update(self, k, p, g, state):
        if self.momentum:
            k.momentum_step(p, g, state["momentum_buffer"], self.lr, self.momentum, self.weight_decay, self.nesterov)
        else:
            k.sgd_step(p, g, self.lr, self.weight_decay)


class Adagrad(Optimizer):
    """Adagrad: per-element learning rates from the sum of squared gradients (torch defaults)."""

    hyper = ("lr", "lr_decay", "eps", "weight_decay", "initial_accumulator_value")
    state_names = ("sum",)

    def __init__(self, lr=0.01, lr_decay=0.0, eps=1e-10, weight_decay=0.0, initial_accumulator_value=0.0):
        self.lr_decay = _check("lr_decay", lr_decay, 0)
        self.eps = _check("eps", eps, 0, low_open=True)
        self.initial_accumulator_value = _check("initial_accumulator_value", initial_accumulator_value, 0)
        super().__init__(lr, weight_decay)

    def _new_state(self, p):
        return {"sum": np.full(p.size, self.initial_accumulator_value, dtype=p.dtype)}

    def _update(self, k, p, g, state):
        k.adagrad_step(p, g, state["sum"], self.lr, self.lr_decay, self.eps, self.weight_decay, self.iterations)


class RMSprop(Optimizer):
    """RMSprop: divide by a running RMS of the gradient (torch defaults; no momentum or centering)."""

    hyper = ("lr", "alpha", "eps", "weight_decay")
    state_names = ("square_avg",)

    def __init__(self, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
        self.alpha = _check("alpha", alpha, 0, 1)
        self.eps = _check("eps", eps, 0, low_open=True)
        super().__init__(lr, weight_decay)

    def _update(self, k, p, g, state):
        k.rmsprop_step(p, g, state["square_avg"], self.lr, self.alpha, self.eps, self.weight_decay)


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) with torch's extra ``lr`` factor (default 1.0)."""

    hyper = ("lr", "rho", "eps", "weight_decay")
    state_names = ("square_avg", "acc_delta")

    def __init__(self, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
        self.rho = _check("rho", rho, 0, 1)
        self.eps = _check("eps", eps, 0, low_open=True)
        super().__init__(lr, weight_decay)

    def _update(self, k, p, g, state):
        k.adadelta_step(p, g, state["square_avg"], state["acc_delta"], self.lr, self.rho, self.eps, self.weight_decay)


class Adam(Optimizer):
    """Adam with bias correction (torch defaults); ``weight_decay`` is L2 added to the gradient."""

    hyper = ("lr", "betas", "eps", "weight_decay")
    state_names = ("exp_avg", "exp_avg_sq")
    _kernel = "adam_step"

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        b1, b2 = betas
        self.betas = (_check("beta1", b1, 0, 1, high_open=True), _check("beta2", b2, 0, 1, high_open=True))
        self.eps = _check("eps", eps, 0, low_open=True)
        super().__init__(lr, weight_decay)

    def get_config(self):
        config = super().get_config()
        config["betas"] = list(self.betas)
        return config

    def _update(self, k, p, g, state):
        b1, b2 = self.betas
        getattr(k, self._kernel)(
            p, g, state["exp_avg"], state["exp_avg_sq"], self.lr, b1, b2, self.eps, self.weight_decay, self.iterations
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` each step."""

    _kernel = "adamw_step"

    def __init__(self, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(lr, betas, eps, weight_decay)


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "adadelta": Adadelta, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(optimizer, **kwargs):
    """An optimizer from a name in ``OPTIMIZERS`` (SGD's default lr is 0.01) or an instance (returned as is)."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        cls = OPTIMIZERS[optimizer.lower()]
        if cls is SGD:
            kwargs.setdefault("lr", 0.01)
        return cls(**kwargs)
    raise ValueError(f"unknown optimizer {optimizer!r}; valid optimizers are {', '.join(OPTIMIZERS)}")


def global_norm(grads):
    """sqrt of the sum of squares of every gradient, accumulated in float64 (Python float)."""
    k = kernels()
    return math.sqrt(sum(k.sum_squares(_flat(g)) for g in grads))


def clip_grad_norm(grads, max_norm):
    """Scale every gradient in place by ``max_norm / (norm + 1e-6)`` when their global norm exceeds
    ``max_norm`` (as ``torch.nn.utils.clip_grad_norm_``). Returns the norm before clipping."""
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        k = kernels()
        factor = max_norm / (norm + 1e-6)
        for g in grads:
            k.scale_inplace(_flat(g), factor)
    return norm


class LRScheduler(Callback):
    """Base class of the epoch-wise schedules: ``lr_at(t)`` is the rate after t completed epochs.

    The first training run records ``base_lr`` from the optimizer; the epoch count continues across
    further ``fit`` calls with the same schedule object (resuming).
    """

    def __init__(self):
        self.base_lr = None
        self.last_epoch = 0

    def on_train_begin(self, logs=None):
        if self.model.optimizer is None:
            raise ValueError(f"{type(self).__name__} needs a model with an optimizer")
        if self.base_lr is None:
            self.base_lr = self.model.optimizer.lr

    def on_epoch_end(self, epoch, logs=None):
        self.last_epoch += 1
        self.model.optimizer.lr = self.lr_at(self.last_epoch)

    def lr_at(self, t):
        raise NotImplementedError

    # Recorded in checkpoints (fit's training state) so that fit(..., resume=True) continues the schedule.
    _state = ("base_lr", "last_epoch")

    def state_dict(self):
        """The schedule's progress, JSON-serialisable."""
        return {name: getattr(self, name) for name in self._state}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` output."""
        if not isinstance(state, dict) or set(state) != set(self._state):
            raise ValueError(f"{type(self).__name__} state needs the keys {self._state}, got {state!r}")
        for name in self._state:
            value = state[name]
            counter = name in ("last_epoch", "wait", "cooldown_counter")
            ok = (isinstance(value, int) and value >= 0) if counter else (
                value is None or (isinstance(value, numbers.Real) and not math.isnan(value)))
            if isinstance(value, bool) or not ok:
                raise ValueError(f"{type(self).__name__} state {name!r} is {value!r}")
        for name in self._state:
            setattr(self, name, state[name])


class StepLR(LRScheduler):
    """``base_lr * gamma ** (t // step_size)``."""

    def __init__(self, step_size, gamma=0.1):
        super().__init__()
        if isinstance(step_size, bool) or int(step_size) != step_size or step_size < 1:
            raise ValueError(f"step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), _check("gamma", gamma, 0, low_open=True)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(LRScheduler):
    """``base_lr * gamma ** t``."""

    def __init__(self, gamma):
        super().__init__()
        self.gamma = _check("gamma", gamma, 0, low_open=True)

    def lr_at(self, t):
        return self.base_lr * self.gamma**t


class CosineAnnealingLR(LRScheduler):
    """``eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``."""

    def __init__(self, T_max, eta_min=0.0):
        super().__init__()
        if isinstance(T_max, bool) or int(T_max) != T_max or T_max < 1:
            raise ValueError(f"T_max must be a positive integer, got {T_max!r}")
        self.T_max, self.eta_min = int(T_max), _check("eta_min", eta_min, 0)

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rate by ``factor`` (down to ``min_lr``) after ``patience`` epochs in a row without an
    improvement of ``monitor`` by more than ``min_delta``; the ``cooldown`` epochs after a reduction are
    not counted (an improvement during them still sets the best value)."""

    def __init__(
        self, monitor="val_loss", factor=0.1, patience=10, min_delta=1e-4, cooldown=0, min_lr=0.0, mode="auto"
    ):
        super().__init__()
        self.monitor = monitor
        self.factor = _check("factor", factor, 0, 1, low_open=True, high_open=True)
        self.patience, self.cooldown = int(patience), int(cooldown)
        self.min_delta, self.min_lr = _check("min_delta", min_delta, 0), _check("min_lr", min_lr, 0)
        self.mode = _monitor_mode(monitor, mode)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    _state = LRScheduler._state + ("best", "wait", "cooldown_counter")

    def _improved(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        value = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        self.last_epoch += 1
        in_cooldown = self.cooldown_counter > 0
        if in_cooldown:
            self.cooldown_counter -= 1
        if not math.isnan(value) and self._improved(value):
            self.best, self.wait = value, 0
        elif not in_cooldown:
            self.wait += 1
            if self.wait >= self.patience:
                optimizer = self.model.optimizer
                if optimizer.lr > self.min_lr:
                    optimizer.lr = max(optimizer.lr * self.factor, self.min_lr)
                    self.cooldown_counter = self.cooldown
                self.wait = 0
