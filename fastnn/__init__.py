"""fastnn: fast neural-network training on the CPU.

Kernels exist in three backends with one meaning -- ``numpy`` (the reference), ``numba`` and ``cython``
-- switchable at run time with :func:`set_backend` or the :func:`use_backend` context manager.

A network in a few lines::

    import fastnn
    from fastnn.layers import Dense, Sigmoid
    model = fastnn.Sequential([Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid()], seed=0)
    history = model.fit(X, y, loss="cross_entropy", optimizer=fastnn.optim.SGD(0.5), epochs=3, batch_size=10)
    fastnn.save(model, "model.npz")

``fastnn.MLPClassifier`` and ``fastnn.MLPRegressor`` (:mod:`fastnn.estimators`) are scikit-learn estimators;
they load scikit-learn on first use, so ``import fastnn`` does not (``pip install "fastnn-cpu[sklearn]"``).
"""
__version__ = "0.1.0"

from .backend import available_backends, get_backend, set_backend, use_backend
from .threads import get_num_threads, set_num_threads, use_num_threads  # noqa: E402
from . import init, layers, losses, optim, training  # noqa: E402
from .io import load, save  # noqa: E402
from .network import Sequential  # noqa: E402

__all__ = [
    "get_num_threads",
    "set_num_threads",
    "use_num_threads",
    "available_backends", "get_backend", "set_backend", "use_backend", "__version__",
    "Sequential", "save", "load", "init", "layers", "losses", "optim", "training",
]

_LAZY = {"MLPClassifier": "estimators", "MLPRegressor": "estimators"}


def __getattr__(name):
    """fastnn.MLPClassifier / MLPRegressor: imported on first access (they need scikit-learn)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
