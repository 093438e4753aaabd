"""fastnn: fast neural-network training on the CPU.

Kernels exist in three backends with one meaning -- ``numpy`` (the reference), ``numba`` and ``cython``
-- switchable at run time with :func:`set_backend` or the :func:`use_backend` context manager.

A network in a few lines::

    import fastnn
    from fastnn.layers import Dense, Sigmoid
    model = fastnn.Sequential([Dense(784, 30), Sigmoid(), Dense(30, 10), Sigmoid()], seed=0)
    history = model.fit(X, y, loss="cross_entropy", optimizer=fastnn.optim.SGD(0.5), epochs=3, batch_size=10)
    fastnn.save(model, "model.npz")
    fastnn.export_onnx(model, "model.onnx")

The other submodules (``fastnn.datasets``, ``fastnn.functional``, ``fastnn.callbacks``, ``fastnn.plot``,
``fastnn.onnx``, ``fastnn.augment``, ``fastnn.cli``, ``fastnn.estimators``) are attributes of the package
too, imported on first use (PEP 562), so ``import fastnn`` stays quick and imports neither numba nor the
optional packages. ``fastnn.MLPClassifier`` and ``fastnn.MLPRegressor`` (:mod:`fastnn.estimators`) are
scikit-learn estimators; they load scikit-learn on first use (``pip install "fastnn-cpu[sklearn]"``).
"""
__version__ = "0.1.0"

from .backend import available_backends, get_backend, set_backend, use_backend
from .threads import get_num_threads, set_num_threads, use_num_threads  # noqa: E402
from . import init, layers, losses, metrics, optim, training  # noqa: E402
from .io import load, save  # noqa: E402
from .network import Sequential  # noqa: E402

# Submodules imported on first attribute access, and top-level names they provide.
_LAZY_MODULES = ("augment", "callbacks", "cli", "datasets", "estimators", "functional", "onnx", "plot")
_LAZY_NAMES = {"export_onnx": "onnx", "MLPClassifier": "estimators", "MLPRegressor": "estimators"}


def __getattr__(name):
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_MODULES) | set(_LAZY_NAMES))


__all__ = [
    "get_num_threads",
    "set_num_threads",
    "use_num_threads",
    "available_backends", "get_backend", "set_backend", "use_backend", "__version__",
    "Sequential", "save", "load", "export_onnx", "MLPClassifier", "MLPRegressor", "init", "layers", "losses",
    "metrics", "optim", "training", *_LAZY_MODULES,
]
