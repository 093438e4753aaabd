"""How many threads fastnn uses: its fused training epoch, the BLAS libraries behind every matrix product,
and Numba's pool.

The fused epoch (:mod:`fastnn.fused`, what ``fit`` runs by default) splits each mini-batch's work across
its own threads, every thread calling BLAS on one thread for its share (kernels/reference/fused.py,
"Threads"). It uses :func:`fused_threads` of them: the ``n`` of the last :func:`set_num_threads`, else
the cores this process may run on, within the share that a parallel engine (joblib, Dask, threadpoolctl
limits, ``OMP_NUM_THREADS``) grants it; ``fastnn.fused`` then uses fewer for batches too small to share.

The other kernels are single-threaded loops around BLAS calls, so there the threads that matter are
BLAS's. Two OpenBLAS copies are usually loaded: NumPy's (the ``numpy`` backend's ``@``) and SciPy's (Numba's
``np.dot`` and the Cython kernels' ``scipy.linalg.cython_blas``). :func:`set_num_threads` sets every BLAS
library loaded in the process, after importing ``scipy.linalg.cython_blas`` so that SciPy's copy is among
them, and Numba's thread count when Numba is loaded, through ``threadpoolctl`` (a dependency of fastnn:
the fused epoch needs it to keep BLAS on one thread inside its own threads; should it be missing, the
functions raise ImportError saying so and the fused epoch runs on one thread). It does not touch OpenMP
libraries (PyTorch's, for one) or the environment (``OPENBLAS_NUM_THREADS``, ``OPENBLAS_CORETYPE`` ...
keep working as OpenBLAS documents).

Default (:data:`DEFAULT_NUM_THREADS` = None): fastnn changes no BLAS setting until you call
:func:`set_num_threads` (OpenBLAS keeps its default of one thread per core), and the fused epoch uses every
core this process may run on. Measured on the project machine (2 cores, BENCHMARKS.md, paired 1- and
2-thread epochs of the same trainer): the fused epoch on 2 threads was faster in every pair, 1.6x at
batch 10 (784-30-10), 1.5x at batch 128 (784-100-10, Adam), 1.8x at batch 256 (784-512-512-10).

When other processes compete for the cores (several trainings at once, a shared server), threads that
meet at a barrier every few microseconds wait whenever one of them is descheduled: the fused epoch's
threads as much as OpenBLAS's (the cython epoch spins ~13 us at a barrier before it yields the core, the
numba one ``_SPINS`` pause instructions, kernels/numba/fused.py). There, ``fastnn.set_num_threads(1)``
gives steady times (measured, cython, 784-30-10 at batch 10: 0.08 s per epoch on 1 thread and 0.11-0.12 s
on 2 while another process kept a core busy; 0.05-0.08 s on 2 when the machine was quiet).
"""
import contextlib
import ctypes
import importlib
import os
import sys

__all__ = ["set_num_threads", "get_num_threads", "use_num_threads", "fused_threads", "single_threaded_blas",
           "DEFAULT_NUM_THREADS", "THREAD_LIMIT_VARIABLES"]

# None = leave the BLAS library's default (one thread per core); see the module docstring for the figures
# (`python bench/report.py --threads 1,2`) behind this choice.
DEFAULT_NUM_THREADS = None

_requested = DEFAULT_NUM_THREADS  # the n of the last set_num_threads / enclosing use_num_threads
# threadpoolctl's view of the loaded BLAS libraries (a scan of them: 2-3 ms), and the loader's count of the
# libraries loaded and unloaded when it was made: it is made anew when that count changes.
_blas_pools = None
_pools_generation = None


def _controller():
    """A threadpoolctl controller that sees SciPy's OpenBLAS as well as NumPy's."""
    ThreadpoolController = _threadpoolctl()
    import numpy  # noqa: F401  (loads NumPy's BLAS)

    try:
        importlib.import_module("scipy.linalg.cython_blas")  # SciPy's own OpenBLAS, used by numba and cython
    except ImportError:
        pass
    return ThreadpoolController()


def _threadpoolctl():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise ImportError(
            "fastnn's thread control needs threadpoolctl: `pip install threadpoolctl` (or set "
            "OPENBLAS_NUM_THREADS before starting Python)"
        ) from None
    return ThreadpoolController


def _pools():
    """threadpoolctl's controller of every loaded BLAS library, made anew only when a shared library was
    loaded or unloaded since the last one (a BLAS may have come or gone)."""
    global _blas_pools, _pools_generation
    _threadpoolctl()
    generation = loader_generation()
    if _blas_pools is None or generation is None or generation != _pools_generation:
        _blas_pools, _pools_generation = _blas(_controller()), generation
    return _blas_pools


class _PhdrInfo(ctypes.Structure):  # the head of glibc's struct dl_phdr_info (<link.h>)
    _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p), ("phdr", ctypes.c_void_p),
                ("phnum", ctypes.c_uint16), ("adds", ctypes.c_ulonglong), ("subs", ctypes.c_ulonglong)]


_PHDR_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_PhdrInfo), ctypes.c_size_t, ctypes.c_void_p)


def _make_generation_reader():
    """A function returning glibc's (libraries loaded, unloaded) counts since the process started, read by
    dl_iterate_phdr from its first entry; or one returning None where there is no such count."""
    try:
        iterate = ctypes.CDLL(None).dl_iterate_phdr
    except (AttributeError, OSError, TypeError):  # not glibc (macOS, Windows, musl without the symbol)
        return lambda: None
    iterate.argtypes, iterate.restype = [_PHDR_CALLBACK, ctypes.c_void_p], ctypes.c_int
    counts = []

    @_PHDR_CALLBACK
    def first(info, size, data):
        if size >= _PhdrInfo.subs.offset + ctypes.sizeof(ctypes.c_ulonglong):  # (glibc >= 2.4)
            counts.append((info.contents.adds, info.contents.subs))
        return 1  # stop after the first entry: every entry carries the same counts

    def read():
        counts.clear()
        iterate(first, None)
        return counts[0] if counts else None
    read.callback = first  # (kept alive with the reader)
    return read


loader_generation = _make_generation_reader()
loader_generation.__doc__ = ("(libraries loaded, libraries unloaded) by the dynamic loader since the process "
                             "started (glibc's dl_iterate_phdr), or None where it keeps no such count.")


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an int >= 1, got {n!r}")
    return n


def _blas(controller):
    return controller.select(user_api="blas")


def get_num_threads():
    """The number of threads the loaded BLAS libraries use (the largest, should they differ): int >= 1."""
    pools = _pools().lib_controllers
    if not pools:
        return 1
    return max(int(pool.num_threads) for pool in pools)


def set_num_threads(n):
    """Use ``n`` threads (int >= 1) in every loaded BLAS library, and in Numba's pool when Numba is loaded.

    Lasts until the next call (see :func:`use_num_threads` for a block). Numba accepts at most
    ``numba.config.NUMBA_NUM_THREADS`` (the core count unless set in the environment); a larger ``n``
    is capped there for Numba only. Returns None.
    """
    global _requested
    n = _check(n)
    _pools().limit(limits=n)
    _set_numba(n)
    _requested = n


def _set_numba(n):
    numba = sys.modules.get("numba")
    if numba is None:
        return None
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    return previous


@contextlib.contextmanager
def use_num_threads(n):
    """Context manager: ``n`` threads for BLAS (and Numba) inside the block; the previous counts after it."""
    global _requested
    n = _check(n)
    limiter = _pools().limit(limits=n)
    numba_before = _set_numba(n)
    requested_before, _requested = _requested, n
    try:
        yield n
    finally:
        _requested = requested_before
        limiter.restore_original_limits()
        if numba_before is not None:
            sys.modules["numba"].set_num_threads(numba_before)


# Environment variables through which parallel engines tell a worker process its share of the cores:
# joblib/loky set them all to inner_max_num_threads (cores // n_jobs) in their workers, Dask's nanny sets
# OMP_NUM_THREADS (and the BLAS ones) to 1 in the workers it starts.
THREAD_LIMIT_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def fused_threads():
    """Threads the fused epoch may use (int >= 1).

    After :func:`set_num_threads` (or inside :func:`use_num_threads`) its n, unless a ``threadpoolctl``
    limit made later holds BLAS to fewer. Otherwise the cores this process may use, capped by what the
    parallel engine it runs in grants it, so that workers that train side by side do not oversubscribe
    the cores (a barrier-synchronised epoch waits for any descheduled thread):

    - the cores of the process's CPU affinity, and of its cgroup's CPU quota (containers);
    - ``OMP_NUM_THREADS`` (and ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``), read at every call:
      joblib's loky workers get cores // n_jobs there (``inner_max_num_threads``), Dask's workers 1;
    - ``threadpoolctl`` limits in force (``threadpool_limits(1)``, which joblib applies too): the thread
      count BLAS reports now;
    - one thread when the process's cores are shared by tasks running side by side in it: a Dask worker
      with several threads (each task gets cores // threads).

    The count does not follow the machine's momentary load (it would make results depend on it: the
    epoch's float rounding depends on its thread count); on a busy machine use ``set_num_threads(1)``.
    """
    if _requested is not None:
        return max(1, min(_requested, _blas_threads() or _requested))
    limits = [_cores(), _blas_threads(), _env_limit(), _dask_share()]
    return max(1, min(limit for limit in limits if limit))


def _cores():
    """The cores this process may run on: its CPU affinity, capped by its cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return min(cores, quota) if quota else cores


_quota = []  # the cgroup quota, read once per process


def _cgroup_quota():
    """ceil(quota / period) of /sys/fs/cgroup/cpu.max, or None when unlimited or unreadable."""
    if not _quota:
        value = None
        try:
            with open("/sys/fs/cgroup/cpu.max") as f:
                quota, period = f.read().split()[:2]
            if quota != "max":
                value = max(1, -(-int(quota) // int(period)))
        except (OSError, ValueError):
            pass
        _quota.append(value)
    return _quota[0]


def _env_limit():
    """The smallest positive integer among THREAD_LIMIT_VARIABLES, or None."""
    found = []
    for name in THREAD_LIMIT_VARIABLES:
        try:
            value = int(os.environ.get(name, "").split(",")[0])  # OpenMP allows a list per nesting level
        except ValueError:
            continue
        if value >= 1:
            found.append(value)
    return min(found) if found else None


def _blas_threads():
    """The threads the loaded BLAS libraries use now (the fewest, should they differ), or None without
    threadpoolctl: a ``threadpool_limits`` block shows here."""
    try:
        pools = _pools()
    except ImportError:
        return None
    counts = [int(pool.num_threads) for pool in pools.lib_controllers]
    return min(counts) if counts else None


def _dask_share():
    """cores // threads of the Dask worker this task runs on (at least 1), or None outside one."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        nthreads = distributed.get_worker().state.nthreads
    except (ValueError, AttributeError):  # not inside a task of a worker
        return None
    return max(1, _cores() // max(1, int(nthreads)))


@contextlib.contextmanager
def single_threaded_blas():
    """Context manager: every loaded BLAS on one thread inside the block, as before after it.

    For code whose own threads each call BLAS (the fused epoch): a multi-threaded BLAS called from two
    threads at once would queue them on its one thread pool. Yields True, or False (changing nothing)
    when threadpoolctl is not installed; the caller then must not call BLAS from several threads.
    Costs ~10 us per use, but ~3 ms when a shared library was loaded since the last (threadpoolctl then
    inspects the loaded libraries again).
    """
    try:
        pools = _pools()
    except ImportError:
        yield False
        return
    limiter = pools.limit(limits=1)
    try:
        yield True
    finally:
        limiter.restore_original_limits()
