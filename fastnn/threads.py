"""How many threads fastnn's kernels use: the BLAS libraries behind every matrix product, and Numba's pool.

fastnn's kernels are single-threaded loops around BLAS calls, so the threads that matter are BLAS's.
Two OpenBLAS copies are usually loaded: NumPy's (the ``numpy`` backend's ``@``) and SciPy's (Numba's
``np.dot`` and the Cython kernels' ``scipy.linalg.cython_blas``). :func:`set_num_threads` sets every BLAS
library loaded in the process, after importing ``scipy.linalg.cython_blas`` so that SciPy's copy is among
them, and Numba's thread count when Numba is loaded. It needs ``threadpoolctl`` (a soft dependency,
installed with the ``test`` and ``bench`` extras, or ``pip install threadpoolctl``); without it the
functions raise ImportError saying so. It does not touch OpenMP libraries (PyTorch's, for one) or the
environment (``OPENBLAS_NUM_THREADS``, ``OPENBLAS_CORETYPE`` ... keep working as OpenBLAS documents).

Default (:data:`DEFAULT_NUM_THREADS` = None): fastnn changes nothing until you call
:func:`set_num_threads`, so OpenBLAS keeps its own default of one thread per core, and its own rule that
small products run on one thread. Measured on the project machine (2 cores, BENCHMARKS.md "Threads"):

- mini-batch 10 (784-30-10, 784-100-10): the same seconds per epoch with 1 and 2 threads (OpenBLAS runs
  those products on one thread whatever the setting);
- 784-512-512-10 at batch 256: 2 threads 1.8x faster than 1, even while another job held a core;
- 784-100-10 at batch 128: 2 threads 1.3x faster on a quiet machine, but 2.1x *slower* than 1 while
  another process kept a core busy (OpenBLAS's threads wait for each other and one of them is descheduled).

So on a machine of your own keep the default; when other processes compete for the cores (several
trainings at once, a shared server), ``fastnn.set_num_threads(1)`` gives steady times for small and
medium layers.
"""
import contextlib
import importlib
import sys

__all__ = ["set_num_threads", "get_num_threads", "use_num_threads", "DEFAULT_NUM_THREADS"]

# None = leave the BLAS library's default (one thread per core); see the module docstring for the figures
# (`python bench/report.py --threads 1,2`) behind this choice.
DEFAULT_NUM_THREADS = None


def _controller():
    """A threadpoolctl controller that sees SciPy's OpenBLAS as well as NumPy's."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        raise ImportError(
            "fastnn's thread control needs threadpoolctl: `pip install threadpoolctl` (or set "
            "OPENBLAS_NUM_THREADS before starting Python)"
        ) from None
    import numpy  # noqa: F401  (loads NumPy's BLAS)

    try:
        importlib.import_module("scipy.linalg.cython_blas")  # SciPy's own OpenBLAS, used by numba and cython
    except ImportError:
        pass
    return ThreadpoolController()


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an int >= 1, got {n!r}")
    return n


def _blas(controller):
    return controller.select(user_api="blas")


def get_num_threads():
    """The number of threads the loaded BLAS libraries use (the largest, should they differ): int >= 1."""
    pools = _blas(_controller()).lib_controllers
    if not pools:
        return 1
    return max(int(pool.num_threads) for pool in pools)


def set_num_threads(n):
    """Use ``n`` threads (int >= 1) in every loaded BLAS library, and in Numba's pool when Numba is loaded.

    Lasts until the next call (see :func:`use_num_threads` for a block). Numba accepts at most
    ``numba.config.NUMBA_NUM_THREADS`` (the core count unless set in the environment); a larger ``n``
    is capped there for Numba only. Returns None.
    """
    n = _check(n)
    _blas(_controller()).limit(limits=n)
    _set_numba(n)


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
    n = _check(n)
    limiter = _blas(_controller()).limit(limits=n)
    numba_before = _set_numba(n)
    try:
        yield n
    finally:
        limiter.restore_original_limits()
        if numba_before is not None:
            sys.modules["numba"].set_num_threads(numba_before)
