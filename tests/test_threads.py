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


# -- the fused epoch's threads inside parallel engines ---------------------------------------------------------


@pytest.fixture
def eight_cores(monkeypatch):
    """A process that may use 8 cores and whose BLAS imposes nothing, so each limit is seen alone."""
    monkeypatch.setattr(threads, "_cores", lambda: 8)
    monkeypatch.setattr(threads, "_blas_threads", lambda: None)
    for name in threads.THREAD_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "_requested", None)


def test_fused_threads_use_every_core_without_limits(eight_cores):
    assert threads.fused_threads() == 8


@pytest.mark.parametrize("name", ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"])
def test_fused_threads_honour_the_environment(eight_cores, monkeypatch, name):
    monkeypatch.setenv(name, "3")
    assert threads.fused_threads() == 3
    monkeypatch.setenv(name, "1,1")  # OpenMP's list form: the outer level counts
    assert threads.fused_threads() == 1
    monkeypatch.setenv(name, "not a number")
    assert threads.fused_threads() == 8


def test_an_explicit_request_wins_over_the_environment(eight_cores, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with threads.use_num_threads(2):
        assert threads.fused_threads() == 2


def test_fused_threads_honour_threadpoolctl_limits(monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_cores", lambda: 8)
    for name in threads.THREAD_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    threads.set_num_threads(2)
    monkeypatch.setattr(threads, "_requested", None)
    assert threads.fused_threads() == 2  # BLAS's own count
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        assert threads.fused_threads() == 1
    with threads.use_num_threads(2):  # a request, then a threadpoolctl limit inside it: the limit holds
        with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
            assert threads.fused_threads() == 1


def test_fused_threads_follow_cpu_affinity_and_cgroup_quota(monkeypatch):
    monkeypatch.setattr(threads, "_requested", None)
    monkeypatch.setattr(threads, "_blas_threads", lambda: None)
    for name in threads.THREAD_LIMIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert threads.fused_threads() == 1
    finally:
        os.sched_setaffinity(0, before)
    assert threads.fused_threads() == min(len(before), threads._cgroup_quota() or len(before))
    monkeypatch.setattr(threads, "_quota", [1])  # a container granted one core's worth of CPU time
    assert threads.fused_threads() == 1


def test_a_dask_worker_with_several_threads_shares_its_cores(eight_cores, monkeypatch):
    class Worker:
        class state:
            nthreads = 4

    fake = type(sys)("distributed")
    fake.get_worker = lambda: Worker
    monkeypatch.setitem(sys.modules, "distributed", fake)
    assert threads.fused_threads() == 2  # 8 cores, 4 tasks side by side

    def outside():
        raise ValueError("No worker found")

    fake.get_worker = outside
    assert threads.fused_threads() == 8


@pytest.mark.parametrize("inner, expected", [(None, 1), (2, 2)])
def test_loky_workers_get_their_share_of_the_cores(inner, expected):
    import joblib
    if len(os.sched_getaffinity(0)) != 2:
        pytest.fail("this test counts on the project machine's 2 cores")
    # n_jobs=2 on 2 cores: joblib's default inner limit is 2 // 2 = 1 thread per worker
    with joblib.parallel_config(backend="loky", inner_max_num_threads=inner):
        got = joblib.Parallel(n_jobs=2)(joblib.delayed(threads.fused_threads)() for _ in range(2))
    assert got == [expected, expected]


# -- threadpoolctl's view of the libraries: kept while none is loaded ----------------------------------------


def fresh_library(tmp_path):
    """A shared library this process has not loaded yet: a copy of libm under a new name."""
    import ctypes.util

    found = ctypes.util.find_library("m")
    source = next(p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                              f"/lib64/{found}", f"/usr/lib64/{found}") if os.path.exists(p))
    target = tmp_path / "libfastnn_test_copy.so"
    target.write_bytes(open(source, "rb").read())
    return str(target)


def test_loader_generation_counts_libraries_loaded(tmp_path):
    import ctypes

    before = threads.loader_generation()
    assert before is not None and before[0] > 0  # glibc (the project machine): every process loads some
    assert threads.loader_generation() == before  # nothing loaded meanwhile
    ctypes.CDLL(fresh_library(tmp_path))
    assert threads.loader_generation()[0] > before[0]


def test_thread_calls_reuse_the_view_until_a_library_is_loaded(tmp_path, monkeypatch):
    import ctypes

    made = []
    real = threads._controller

    def counting():
        made.append(1)
        return real()
    monkeypatch.setattr(threads, "_controller", counting)
    threads.get_num_threads()  # (may make one: libraries were loaded since the last)
    made.clear()
    threads.set_num_threads(1)
    with threads.use_num_threads(1):
        threads.get_num_threads()
    with threads.single_threaded_blas():
        pass
    assert made == []  # no library loaded: the same view throughout
    ctypes.CDLL(fresh_library(tmp_path))
    threads.set_num_threads(1)
    assert made == [1]  # a library loaded: looked again (it could have been a BLAS)
    assert set(blas_counts().values()) == {1}


def test_without_a_loader_count_the_view_is_made_every_time(monkeypatch):
    made = []
    real = threads._controller
    monkeypatch.setattr(threads, "_controller", lambda: made.append(1) or real())
    monkeypatch.setattr(threads, "loader_generation", lambda: None)  # not glibc
    threads.set_num_threads(1)
    threads.get_num_threads()
    assert made == [1, 1]
