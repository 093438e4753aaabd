"""Choosing the kernel backend, and the registry of kernels by name.

Three backends hold the same kernels with one signature each: ``numpy`` (the reference), ``numba`` and
``cython``. A backend is loaded on first use, so ``import fastnn`` does not import numba.
"""
import contextlib
import importlib
import importlib.util
import os
import threading
import types

BACKENDS = ("numpy", "numba", "cython")

# Concept module -> the kernels it defines. Every backend must provide all of them.
KERNELS = {
    "dense": ("dense_forward", "dense_backward_input", "dense_backward_params"),
    "sparse": ("csr_dense_forward", "csr_dense_backward_params"),
    "activations": (
        "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "relu", "relu_backward",
        "leaky_relu", "leaky_relu_backward", "prelu", "prelu_backward", "softplus",
        "softplus_backward", "exp", "exp_backward", "identity", "identity_backward", "maxout", "maxout_backward",
    ),
    "softmax": (
        "softmax", "log_softmax", "logsumexp", "softmax_backward", "log_softmax_backward",
        "logsumexp_backward",
    ),
    "losses": (
        "quadratic_loss", "quadratic_grad", "mse_loss", "mse_grad", "bce_loss", "bce_grad",
        "bce_logits_loss", "bce_logits_grad", "nll_loss", "nll_grad", "softmax_nll_loss",
        "softmax_nll_grad", "sigmoid_bce_delta", "softmax_nll_delta", "poisson_loss", "poisson_grad",
        "exp_poisson_delta",
    ),
    "optim": (
        "sgd_step", "momentum_step", "adagrad_step", "rmsprop_step", "adadelta_step", "adam_step",
        "adamw_step", "add_l2_grad", "add_l1_grad", "sum_squares", "sum_abs", "scale_inplace",
    ),
    "norm": ("batchnorm_forward_train", "batchnorm_forward_eval", "batchnorm_backward"),
    "dropout": ("dropout_forward", "dropout_backward"),
    "augment": ("augment_images",),
    "fused": ("train_epoch",),
    "inference": ("predict_rows",),
}

_PACKAGES = {"numpy": "reference", "numba": "numba", "cython": "cython"}
_loaded = {}
_state = threading.local()
_global = {"name": os.environ.get("FASTNN_BACKEND", "").strip().lower() or None}


def _check_name(name):
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends are {', '.join(BACKENDS)}")
    return name.lower()


def _kernels_directory():
    """Where fastnn._kernels' files are (in a checkout installed in place, its kernels/ folder), found without
    importing the package: Numba caches beside the sources there when it may write."""
    return os.path.dirname(importlib.util.find_spec("fastnn._kernels").origin)


def _prepare_numba():
    """Give Numba a writable cache before it is imported (read-only installs cannot cache)."""
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    if not os.access(_kernels_directory(), os.W_OK):
        import tempfile

        cache = os.path.join(os.path.expanduser("~"), ".cache", "fastnn-numba")
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError:
            cache = tempfile.mkdtemp(prefix="fastnn-numba-")
        os.environ["NUMBA_CACHE_DIR"] = cache


def kernels(name=None):
    """Return the namespace of kernels of backend ``name`` (default: the current backend).

    The namespace has one attribute per kernel listed in ``KERNELS``, e.g. ``kernels("numba").softmax``.
    """
    name = get_backend() if name is None else _check_name(name)
    if name not in _loaded:
        if name == "numba":
            _prepare_numba()
        if name in ("numba", "cython"):
            import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS, used by both compiled backends)
        package = "fastnn._kernels." + _PACKAGES[name]
        namespace = types.SimpleNamespace(name=name)
        for concept, names in KERNELS.items():
            try:
                module = importlib.import_module(f"{package}.{concept}")
            except ImportError as exc:
                raise ImportError(
                    f"fastnn backend {name!r} is not available: cannot import {package}.{concept} ({exc}). "
                    "For the cython backend, build the extensions with `pip install -e .` or `make build`."
                ) from exc
            for kernel in names:
                setattr(namespace, kernel, getattr(module, kernel))
        _loaded[name] = namespace
    return _loaded[name]


def available_backends():
    """The backends that load on this installation, in the order of ``BACKENDS``."""
    found = []
    for name in BACKENDS:
        try:
            kernels(name)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def _default():
    try:
        kernels("cython")
        return "cython"
    except ImportError:
        return "numpy"


def get_backend():
    """The name of the backend in use in this thread: the innermost ``use_backend`` block, else the global one."""
    local = getattr(_state, "stack", None)
    if local:
        return local[-1]
    if _global["name"] is None:
        _global["name"] = _default()
    elif _global["name"] not in BACKENDS:
        bad, _global["name"] = _global["name"], None
        raise ValueError(f"FASTNN_BACKEND={bad!r} is not a backend; valid backends are {', '.join(BACKENDS)}")
    return _global["name"]


def set_backend(name):
    """Set the global backend: ``"numpy"`` (reference), ``"numba"`` or ``"cython"``.

    The default is ``cython`` when its extensions are built (no compile latency), else ``numpy``;
    the environment variable ``FASTNN_BACKEND`` overrides it at import.
    """
    name = _check_name(name)
    kernels(name)
    _global["name"] = name


@contextlib.contextmanager
def use_backend(name):
    """Context manager: use backend ``name`` in this thread for the duration of the block."""
    name = _check_name(name)
    kernels(name)
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(name)
    try:
        yield kernels(name)
    finally:
        stack.pop()


def cpu_paths(name):
    """The CPU-specific code backend ``name`` runs in this process, as a dict.

    ``"avx512_products"``: whether small products use the hand-written AVX-512 kernels
    (kernels/cython/small_gemm.h) rather than BLAS (numba and cython); ``"elementwise"``: the loops each
    Cython module runs, ``"x86-64-v4"``, ``"x86-64-v3"`` or ``"baseline"`` (cython); ``"tanh_float32"``: the
    float32 tanh loop, ``"avx512-fma"``, ``"avx2-fma"`` or ``"baseline"`` (cython). The numpy backend has
    none. The environment variable ``FASTNN_PORTABLE=1``, read when a backend loads, turns all of them to
    BLAS and the baseline on any CPU (CI runs the tests both ways).
    """
    name = _check_name(name)
    kernels(name)
    if name == "numba":
        from ._kernels.numba import _small_gemm

        return {"avx512_products": bool(_small_gemm.has_avx512())}
    if name == "cython":
        package = "fastnn._kernels.cython."
        modules = {concept: importlib.import_module(package + concept) for concept in KERNELS if concept != "augment"}
        return {
            "avx512_products": bool(modules["dense"].uses_small_products()),
            "elementwise": {concept: module.simd_path() for concept, module in modules.items()},
            "tanh_float32": modules["activations"].tanh_float32_path(),
        }
    return {}
