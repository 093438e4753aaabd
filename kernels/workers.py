"""Run one compiled worker function on several threads at once, for the fused epoch (kernels/*/fused).

The compiled backends split each mini-batch's work across threads (see kernels/reference/fused.py,
"Threads"): every thread runs the same worker, ``worker(tid, n_threads, control, *args)``, over the whole
epoch, and the threads meet at barriers inside it. Workers release the GIL (Cython ``nogil``, Numba
``nogil=True``), so Python threads run them in parallel; thread 0 is the caller's own. For the call each
thread keeps to its own part of the cores the process may use (``own_cores``), so that no two share one.

The threads are kept from one epoch to the next (``start``): starting a Python thread costs ~0.1 ms, and an
epoch of a few batches (a search's short fits, ``partial_fit`` on a chunk) started two of them.

``control`` is the int64 array of kernels/constants.py (COUNT, SENSE, ABORT, STOP, DECIDED, DONE,
STATUS, each on its own cache line): the barrier's state, and the channel between the epoch and its
caller. ``control[ABORT]`` != 0 makes every waiting thread return from its barrier and leave its epoch:
set when a worker raised, so that the others do not wait for it forever.
"""
import contextlib
import os
import threading
import warnings

import numpy as np

from .constants import (ABORT, ALIGN, CONTROL_SIZE, COUNT, DECIDED, DONE, LAY_TOTAL, SENSE, STATUS, TOTAL_PARAMS,
                        TOTAL_RUNNING, TOTAL_SHARED)
from .reference import fused as _ref

__all__ = ["run", "run_epoch", "new_control", "core_parts", "own_cores", "say_unpinned", "start"]


def new_control():
    """A zeroed control array for one epoch (the caller may set STOP in it while the epoch runs)."""
    return np.zeros(CONTROL_SIZE, dtype=np.int64)


def core_parts(n_threads):
    """The cores the calling thread may run on, dealt out to ``n_threads`` threads (thread t gets every
    n_threads-th of them, from the t-th), and None; or None and why that cannot be done (fewer cores than
    threads, no CPU affinity on this platform)."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, "this platform does not let a thread choose its cores (os.sched_getaffinity)"
    if len(cores) < n_threads:
        return None, f"{n_threads} threads on {len(cores)} cores"
    return [set(cores[t::n_threads]) for t in range(n_threads)], None


_said = set()  # the reasons for unpinned threads already said in this process
_said_lock = threading.Lock()  # (every thread of an epoch may find the same reason)


def say_unpinned(why):
    """Warn once per process and reason that an epoch's threads run where the OS puts them: the results are
    the same, but two threads can then share a core and wait for each other at every barrier."""
    with _said_lock:
        if why in _said:
            return
        _said.add(why)
    warnings.warn(f"fastnn's fused epoch runs its threads where the OS puts them, not each on cores of its "
                  f"own: {why} (the results are the same; short epochs may be slower)", UserWarning, stacklevel=2)


@contextlib.contextmanager
def own_cores(parts, tid):
    """Keep the calling thread on its part of the cores (``core_parts``) inside the block, its own mask
    after it. Threads of one epoch meet at a barrier every few microseconds, and Linux often starts two new
    threads on one core (a woken thread goes to its waker's core): until its balancer moved one, each would
    wait for the other at every barrier, which can double a short epoch (BENCHMARKS.md). Where the mask
    cannot be set (the cores allowed changed meanwhile), the thread runs where the OS puts it."""
    before = None
    if parts is not None:
        try:
            mask = os.sched_getaffinity(0)
            os.sched_setaffinity(0, parts[tid])
            before = mask
        except OSError as exc:
            say_unpinned(f"the OS refused a thread's cores ({exc})")
    try:
        yield
    finally:
        if before is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, before)


class Handle:
    """A call running in a kept thread (``start``)."""

    def __init__(self):
        self._finished = threading.Event()

    def wait(self, timeout=None):
        """Wait for the call to return (at most ``timeout`` seconds); whether it has."""
        return self._finished.wait(timeout)

    def done(self):
        return self._finished.is_set()


class _Helper:
    """A thread that runs the calls given to it one after another, waiting in between."""

    def __init__(self):
        self._wake = threading.Semaphore(0)
        self._job = None
        threading.Thread(target=self._serve, name="fastnn-helper", daemon=True).start()

    def give(self, call, handle):
        self._job = (call, handle)
        self._wake.release()

    def _serve(self):
        while True:
            self._wake.acquire()
            call, handle = self._job
            self._job = None
            served = False
            try:
                call()  # (the callers' calls catch what they raise; should one not, this thread ends)
                served = True
            finally:
                keep = served and _put_back(self)
                handle._finished.set()
            if not keep:
                return


_idle = []  # helpers waiting for a call
_idle_lock = threading.Lock()
MAX_IDLE = max(4, 2 * (os.cpu_count() or 1))  # more idle than this end instead of waiting


def _put_back(helper):
    with _idle_lock:
        if len(_idle) >= MAX_IDLE:
            return False
        _idle.append(helper)
        return True


def _forget_helpers():
    """In a forked child: the parent's threads are not there (and the lock may have been held)."""
    global _idle_lock
    _idle_lock = threading.Lock()
    _idle.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_helpers)


def start(call):
    """Run ``call()`` (which must not raise) in a kept thread: an idle one, or a new one when none is idle
    (epochs of several models may run at once). Returns its ``Handle``."""
    with _idle_lock:
        helper = _idle.pop() if _idle else None
    helper = helper or _Helper()
    handle = Handle()
    helper.give(call, handle)
    return handle


def run(worker, n_threads, control, args):
    """``worker(tid, n_threads, control, *args)`` on ``n_threads`` threads; returns thread 0's result.

    n_threads: int >= 1 (1 runs the worker in the calling thread only). Re-raises the first exception a
    worker raised, after every thread has finished.
    """
    n_threads = int(n_threads)
    if n_threads == 1:
        return worker(0, 1, control, *args)
    results = [None] * n_threads
    errors = []
    parts, why = core_parts(n_threads)
    if why is not None:
        say_unpinned(why)

    def body(tid):
        try:
            with own_cores(parts, tid):
                results[tid] = worker(tid, n_threads, control, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)
            control[ABORT] = 1

    others = [start(lambda tid=tid: body(tid)) for tid in range(1, n_threads)]
    body(0)
    for handle in others:
        handle.wait()
    if errors:
        raise errors[0]
    return results[0]


_TABLES = {}  # (options) -> (layout, ranges, shares); the workers only read them
_TABLES_KEPT = 64


def _epoch_tables(sizes, batch_size, acts, drop, norm, slopes, pieces, loss, opt, augmenting, n_threads):
    """``check_options``, then ``(epoch_layout, epoch_ranges, thread_shares)``: made on the first epoch with
    these options and kept for the next ones (every epoch of a fit has the same)."""
    arrays = [np.asarray(a) for a in (sizes, acts, drop, norm, slopes, pieces)]
    key = (batch_size, loss, opt, augmenting, n_threads, *((a.dtype.str, a.shape, a.tobytes()) for a in arrays))
    tables = _TABLES.get(key)
    if tables is None:
        _ref.check_options(sizes, acts, drop, norm, slopes, pieces, loss, opt)
        layout = _ref.epoch_layout(sizes, batch_size, acts, drop, norm, pieces, augmenting)
        tables = (layout, _ref.epoch_ranges(sizes, layout, n_threads), _ref.thread_shares(sizes, n_threads))
        if len(_TABLES) >= _TABLES_KEPT:
            _TABLES.clear()
        _TABLES[key] = tables
    return tables


def run_epoch(worker, x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min,
              n_threads=1, drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None, weights=None,
              augment=None, control=None, sparse=None):
    """A compiled backend's ``train_epoch`` (kernels/reference/fused.py's arguments and results): checks the
    options, makes the threads' shared workspace, takes their tables (``_epoch_tables``) and runs ``worker``
    (its ``train_epoch_worker``) on ``n_threads`` threads.

    The scalars are passed as Python ints, so that Numba compiles one signature per dtype whatever integer
    types the caller used; a worker gets a one-element ``running`` when the model has no batch norm, an
    empty ``weights`` without sample weights, an empty (0, 3) table without augmentation, and x's CSR
    arrays (``sparse``; data, int64 indices and indptr, x then (0, n_in)) or three empty arrays.
    """
    n_layers, n_threads = len(sizes) - 1, int(n_threads)
    drop, seeds, norm, slopes, pieces = _ref.layer_options(n_layers, drop, seeds, norm, slopes, pieces)
    layout, ranges, shares = _epoch_tables(sizes, int(batch_size), acts, drop, norm, slopes, pieces, int(loss),
                                           int(opt), augment is not None, n_threads)
    _ref.check_batches(len(order), int(batch_size), norm)
    dtype = np.asarray(params).dtype
    n_params, n_running, n_shared = (int(layout[LAY_TOTAL, k]) for k in (TOTAL_PARAMS, TOTAL_RUNNING, TOTAL_SHARED))
    if len(params) != n_params or (n_running and (running is None or len(running) < n_running)):
        raise ValueError(f"params has {len(params)} elements and running "
                         f"{0 if running is None else len(running)}; these layers need {n_params} and {n_running}")
    running = np.zeros(1, dtype) if running is None or len(running) == 0 else running
    weights = np.empty(0, dtype) if weights is None else np.ascontiguousarray(weights, dtype=dtype)
    side, table = (0, np.empty((0, 3))) if augment is None else augment
    table = np.ascontiguousarray(table, dtype=np.float64)
    if sparse is None:
        csr = (np.empty(0, dtype), np.empty(0, np.int64), np.empty(0, np.int64))
    else:
        if augment is not None:
            raise ValueError("augmentation needs dense rows (images), not a sparse x")
        csr = (np.ascontiguousarray(sparse[0], dtype), *(np.ascontiguousarray(a, np.int64) for a in sparse[1:]))
        x = np.empty((0, int(sizes[0])), dtype)
    if control is None:
        control = new_control()
    if control.dtype != np.int64 or control.shape != (CONTROL_SIZE,):
        raise ValueError(f"control must be an int64 array of {CONTROL_SIZE} elements")
    control[[COUNT, SENSE, ABORT, DECIDED, DONE, STATUS]] = 0
    shared = np.empty(n_shared + ALIGN, dtype=dtype)  # (ALIGN more: the workers start it on a 64-byte boundary)
    args = (np.zeros(3 * n_threads), shared, layout, ranges, shares, x, y, order, params, state, sizes, acts, int(loss),
            int(opt), hyper, int(batch_size), int(step), int(gemm_min), drop, seeds, norm, running, slopes, pieces,
            weights, table, int(side), *csr)
    return run(worker, n_threads, control, args)
