"""The backend registry: choosing a backend, and every backend providing every kernel with one signature."""
import importlib
import inspect
import threading

import numpy as np
import pytest

import fastnn
from fastnn import backend
from kernel_helpers import BACKENDS, COMPILED, load

ALL_KERNELS = [(concept, name) for concept, names in backend.KERNELS.items() for name in names]
PACKAGES = {"numpy": "reference", "numba": "numba", "cython": "cython"}


def test_backends_are_the_three():
    assert BACKENDS == ("numpy", "numba", "cython")


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_imports_and_is_available(name):
    # CI builds all three: a backend that does not load is a failure here, not a skip.
    ns = load(name)
    assert ns.name == name
    assert name in backend.available_backends()


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("concept,kernel", ALL_KERNELS)
def test_backend_provides_kernel(name, concept, kernel):
    ns = load(name)
    fn = getattr(ns, kernel, None)
    assert callable(fn), f"{name} backend has no callable {kernel}"
    # ...and it lives in the module of its concept (one module per concept, same layout in each backend).
    module = importlib.import_module(f"fastnn._kernels.{PACKAGES[name]}.{concept}")
    assert getattr(module, kernel) is fn


def _params(fn):
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", COMPILED)
@pytest.mark.parametrize("concept,kernel", ALL_KERNELS)
def test_compiled_kernel_has_reference_signature(name, concept, kernel):
    reference = getattr(backend.kernels("numpy"), kernel)
    fn = getattr(load(name), kernel)
    try:
        got = _params(fn)
    except (TypeError, ValueError):  # some compiled callables expose no signature at all
        code = getattr(fn, "__code__", None)
        if code is None:
            pytest.fail(f"{name}.{kernel} exposes no signature to inspect")
        got = [(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty)
               for n in code.co_varnames[: code.co_argcount]]
    want = _params(reference)
    assert [p[0] for p in got] == [p[0] for p in want], f"{name}.{kernel}{inspect.signature(fn)} vs reference"
    assert got == want


def test_set_and_get_backend(restore_backend):
    for name in BACKENDS:
        fastnn.set_backend(name)
        assert fastnn.get_backend() == name
        assert backend.kernels() is backend.kernels(name)
    fastnn.set_backend("NumPy")  # names are case-insensitive
    assert fastnn.get_backend() == "numpy"


def test_use_backend_nests_and_restores(restore_backend):
    fastnn.set_backend("numpy")
    with fastnn.use_backend("numba") as ns:
        assert ns is backend.kernels("numba")
        assert fastnn.get_backend() == "numba"
        with fastnn.use_backend("cython"):
            assert fastnn.get_backend() == "cython"
        assert fastnn.get_backend() == "numba"
    assert fastnn.get_backend() == "numpy"


def test_use_backend_restores_after_an_exception(restore_backend):
    fastnn.set_backend("numpy")
    with pytest.raises(RuntimeError, match="boom"):
        with fastnn.use_backend("numba"):
            raise RuntimeError("boom")
    assert fastnn.get_backend() == "numpy"


def test_use_backend_is_local_to_its_thread(restore_backend):
    fastnn.set_backend("numpy")
    seen = []
    with fastnn.use_backend("numba"):
        t = threading.Thread(target=lambda: seen.append(fastnn.get_backend()))
        t.start()
        t.join()
        assert fastnn.get_backend() == "numba"
    assert seen == ["numpy"]


@pytest.mark.parametrize("call", [fastnn.set_backend, backend.kernels, lambda n: fastnn.use_backend(n).__enter__()])
@pytest.mark.parametrize("bad", ["torch", "", "num py", 3])
def test_unknown_backend_lists_valid_ones(restore_backend, call, bad):
    before = fastnn.get_backend()
    with pytest.raises(ValueError, match=r"unknown backend .*valid backends are numpy, numba, cython"):
        call(bad)
    assert fastnn.get_backend() == before


def test_bad_environment_variable_lists_valid_ones(restore_backend):
    backend._global["name"] = "tensorflow"  # what FASTNN_BACKEND=tensorflow leaves at import
    with pytest.raises(ValueError, match=r"FASTNN_BACKEND='tensorflow' is not a backend; valid backends are "
                                         r"numpy, numba, cython"):
        fastnn.get_backend()


def test_default_is_cython_when_built(restore_backend):
    backend._global["name"] = None
    assert fastnn.get_backend() == "cython"


def test_functional_dispatches_to_current_backend(restore_backend, monkeypatch):
    import fastnn.functional as F

    calls = []
    for name in BACKENDS:
        ns = load(name)
        real = ns.softmax
        monkeypatch.setattr(ns, "softmax", lambda z, _real=real, _n=name: calls.append(_n) or _real(z))
    x = np.zeros((2, 3))
    fastnn.set_backend("numpy")
    F.softmax(x)
    with fastnn.use_backend("numba"):
        F.softmax(x)
        with fastnn.use_backend("cython"):
            F.softmax(x)
    assert calls == ["numpy", "numba", "cython"]


def test_numba_caches_beside_writable_kernels_else_in_the_home_cache(monkeypatch, tmp_path):
    """A writable install (or checkout) keeps Numba's cache beside the kernels' sources; a read-only one
    gets ~/.cache/fastnn-numba; NUMBA_CACHE_DIR, when set, is left alone."""
    import os

    kernels = backend._kernels_directory()
    assert os.path.isfile(os.path.join(kernels, "numba", "fused.py"))  # the real package, not a guess
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    backend._prepare_numba()
    assert "NUMBA_CACHE_DIR" not in os.environ  # this checkout's kernels/ is writable
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if path == kernels else real_access(path, mode))
    backend._prepare_numba()
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / ".cache" / "fastnn-numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere")
    backend._prepare_numba()
    assert os.environ["NUMBA_CACHE_DIR"] == "/elsewhere"
