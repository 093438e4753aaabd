"""torch.optim as the independent reference of fastnn's optimizers (one place for every test that needs it).

fastnn's optimizer classes take torch's hyperparameter names and keep torch's state names, so the torch
optimizer of a fastnn one is ``torch.optim.<same class>(params, **opt.get_config())`` on the single-tensor
path (``foreach=False``, the one fastnn's kernels follow). torch is installed by ``make test``; without it
these tests skip, which fails the run (tests/skip_policy.py).
"""
import numpy as np
import pytest

from fastnn import optim

# One of each optimizer fastnn has, with non-default hyperparameters where that changes the rule.
OPTIMIZERS = {
    "sgd": lambda: optim.SGD(0.1),
    "sgd-weight-decay": lambda: optim.SGD(0.1, weight_decay=0.05),
    "momentum": lambda: optim.SGD(0.05, momentum=0.9),
    "nesterov": lambda: optim.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "adagrad": lambda: optim.Adagrad(0.1, lr_decay=0.01, weight_decay=0.01),
    "adadelta": lambda: optim.Adadelta(1.0, rho=0.95, weight_decay=0.01),
    "rmsprop": lambda: optim.RMSprop(0.01, alpha=0.9, weight_decay=0.01),
    "adam": lambda: optim.Adam(0.01, betas=(0.8, 0.99), weight_decay=0.01),
    "adamw": lambda: optim.AdamW(0.01, weight_decay=0.1),
}


def require_torch():
    """The torch module; a skip (so a failure, unless allow-listed) naming the install when it is missing."""
    return pytest.importorskip("torch", reason="torch is not installed (`make torch`: pip install torch==2.13.0)")


def torch_optimizer(opt, params):
    """The torch.optim optimizer with ``opt``'s class and hyperparameters, over the torch tensors ``params``."""
    torch = require_torch()
    return getattr(torch.optim, type(opt).__name__)(params, **opt.get_config(), foreach=False)


def torch_state(torch_opt, param, name):
    """The state array ``name`` (fastnn's name, which is torch's) of ``param`` as a flat float64 array."""
    return torch_opt.state[param][name].detach().numpy().reshape(-1).astype(np.float64)
