"""fastnn.threads: the BLAS (and Numba) thread counts change as asked, as threadpoolctl reports them, and
come back after a ``use_num_threads`` block."""
import os
import sys

import numba
import pytest
import scipy.linalg.cython_blas  # noqa: F401  (SciPy's OpenBLAS: the one numba and cython call)
import threadpoolctl

from fastnn import threads


def blas_counts():
    """{library path: num_threads} of every BLAS library threadpoolctl sees."""
    return {i["filepath"]: i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture(autouse=True)
def restore_threads():
    """Put every BLAS library's and Numba's thread count back after each test."""
    before = blas_counts()
    numba = sys.modules.get("numba")
    numba_before = numba.get_num_threads() if numba else None
    yield
    controller = threadpoolctl.ThreadpoolController()
    for lib in controller.select(user_api="blas").lib_controllers:
        if lib.filepath in before:
            lib.set_num_threads(before[lib.filepath])
    if numba_before is not None:
        numba.set_num_threads(numba_before)


def test_scipy_blas_is_among_the_libraries():
    # numba's np.dot and the cython kernels use SciPy's OpenBLAS; a limit that missed it would do nothing.
    assert any("scipy" in path for path in blas_counts()), blas_counts()


def test_set_num_threads_sets_every_blas_library():
    threads.set_num_threads(1)
    counts = blas_counts()
    assert counts and set(counts.values()) == {1}, counts
    assert threads.get_num_threads() == 1


def test_get_num_threads_reports_the_largest_count():
    assert threads.get_num_threads() == max(blas_counts().values())


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores for OpenBLAS to run 2 threads")
def test_use_num_threads_restores_the_previous_counts():
    threads.set_num_threads(2)
    before = blas_counts()
    assert set(before.values()) == {2}, before
    with threads.use_num_threads(1) as n:
        assert n == 1
        assert set(blas_counts().values()) == {1}
        assert threads.get_num_threads() == 1
    assert blas_counts() == before


def test_use_num_threads_restores_after_an_exception():
    threads.set_num_threads(1)
    before = blas_counts()
    with pytest.raises(RuntimeError):
        with threads.use_num_threads(2):
            raise RuntimeError("inside the block")
    assert blas_counts() == before


def test_numba_pool_follows_when_numba_is_loaded():
    threads.set_num_threads(1)
    assert numba.get_num_threads() == 1
    # More than Numba's pool size is capped for Numba only (numba.set_num_threads would raise).
    threads.set_num_threads(numba.config.NUMBA_NUM_THREADS + 3)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    threads.set_num_threads(1)
    with threads.use_num_threads(numba.config.NUMBA_NUM_THREADS):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None, True])
def test_invalid_counts_are_rejected(bad):
    before = blas_counts()
    with pytest.raises(ValueError, match="int >= 1"):
        threads.set_num_threads(bad)
    with pytest.raises(ValueError, match="int >= 1"):
        with threads.use_num_threads(bad):
            pass
    assert blas_counts() == before


def test_missing_threadpoolctl_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # `import threadpoolctl` now raises ImportError
    with pytest.raises(ImportError, match="pip install threadpoolctl"):
        threads.set_num_threads(1)
    with pytest.raises(ImportError, match="pip install threadpoolctl"):
        threads.get_num_threads()
