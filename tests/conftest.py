"""Fixtures for the kernel tests: every kernel test runs on all three backends and both dtypes.

A backend that fails to import makes its tests FAIL (CI builds all three), never skip; any other skip
fails the run too unless tests/allowed_skips.txt allows it (skip_policy.py). Tolerances and numeric
helpers are in kernel_helpers.py.
"""
import os
import tempfile

# A fresh Numba cache per run unless the caller chose one: the on-disk cache goes stale across modules
# (numba issue 8926). Must happen before numba is imported.
os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="fastnn-test-numba-"))
# scikit-learn's common check check_array_api_input runs (instead of skipping) only when SciPy was imported
# with its array API support on (tests/test_sklearn_checks.py).
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastnn import backend  # noqa: E402
from kernel_helpers import BACKENDS, COMPILED, DTYPES, load  # noqa: E402
from skip_policy import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401  (hooks)


def pytest_configure(config):
    # A kernel that overflows or divides by zero on the way (e.g. a naive exp(z)) fails its test, even
    # when the result happens to come out right.
    config.addinivalue_line("filterwarnings", "error::RuntimeWarning")


@pytest.fixture(params=BACKENDS)
def bk(request):
    """Each backend's kernel namespace in turn (numpy, numba, cython)."""
    return load(request.param)


@pytest.fixture(params=COMPILED)
def compiled(request):
    """Each compiled backend's kernel namespace (numba, cython)."""
    return load(request.param)


@pytest.fixture
def ref():
    """The NumPy reference kernels: the spec."""
    return backend.kernels("numpy")


@pytest.fixture(params=DTYPES, ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def restore_backend():
    """Put the global backend and the thread-local stack back after a test that changes them."""
    saved = backend._global["name"]
    stack = list(getattr(backend._state, "stack", []) or [])
    yield
    backend._global["name"] = saved
    backend._state.stack = stack


