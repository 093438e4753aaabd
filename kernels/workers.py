"""Run one compiled worker function on several threads at once, for the fused epoch (kernels/*/fused).

The compiled backends split each mini-batch's work across threads (see kernels/reference/fused.py,
"Threads"): every thread runs the same worker, ``worker(tid, n_threads, sync, *args)``, over the whole
epoch, and the threads meet at barriers inside it. Workers release the GIL (Cython ``nogil``, Numba
``nogil=True``), so Python threads run them in parallel; thread 0 is the caller's own.

``sync`` is an int64 array the workers' barriers use: ``sync[COUNT]`` counts the threads that arrived,
``sync[SENSE]`` flips when the last one arrives, and ``sync[ABORT]`` != 0 makes every waiting thread
return from its barrier and leave its epoch: set when a worker raised, so that the others do not wait
for it forever. The slots sit 64 bytes apart (one cache line each), so a waiting thread's reads of
SENSE do not contend with the arrivals' writes to COUNT.
"""
import threading

import numpy as np

from .reference import fused as _ref

__all__ = ["COUNT", "SENSE", "ABORT", "SYNC_SIZE", "run", "run_epoch"]

COUNT, SENSE, ABORT = 0, 8, 16
SYNC_SIZE = 24


def run(worker, n_threads, args):
    """``worker(tid, n_threads, sync, *args)`` on ``n_threads`` threads; returns thread 0's result.

    n_threads: int >= 1 (1 runs the worker in the calling thread only). Re-raises the first exception a
    worker raised, after every thread has finished.
    """
    n_threads = int(n_threads)
    sync = np.zeros(SYNC_SIZE, dtype=np.int64)
    if n_threads == 1:
        return worker(0, 1, sync, *args)
    results = [None] * n_threads
    errors = []

    def body(tid):
        try:
            results[tid] = worker(tid, n_threads, sync, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors.append(exc)
            sync[ABORT] = 1

    threads = [threading.Thread(target=body, args=(tid,), name=f"fastnn-epoch-{tid}", daemon=True)
               for tid in range(1, n_threads)]
    for thread in threads:
        thread.start()
    body(0)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results[0]


def run_epoch(worker, x, y, order, params, state, sizes, acts, loss, opt, hyper, batch_size, step, gemm_min,
              n_threads=1, drop=None, seeds=None, norm=None, running=None, slopes=None, pieces=None):
    """A compiled backend's ``train_epoch`` (kernels/reference/fused.py's arguments and results): makes the
    threads' shared workspace and runs ``worker`` (its ``train_epoch_worker``) on ``n_threads`` threads.

    The scalars are passed as Python ints, so that Numba compiles one signature per dtype whatever integer
    types the caller used; a worker gets a one-element ``running`` when the model has no batch norm, and
    every offset in one table (kernels/reference/fused.py's ``epoch_layout``), made here once.
    """
    drop, seeds, norm, slopes, pieces = _ref.layer_options(len(sizes) - 1, drop, seeds, norm, slopes, pieces)
    _ref.check_options(sizes, acts, drop, norm, slopes, pieces)
    dtype = np.asarray(params).dtype
    layout = _ref.epoch_layout(sizes, batch_size, acts, drop, norm, pieces)
    n_params, n_running, n_shared = (int(v) for v in layout[_ref.LAY_TOTAL, :3])
    if len(params) != n_params or (n_running and (running is None or len(running) < n_running)):
        raise ValueError(f"params has {len(params)} elements and running "
                         f"{0 if running is None else len(running)}; these layers need {n_params} and {n_running}")
    running = np.zeros(1, dtype) if running is None or len(running) == 0 else running
    shared = np.empty(n_shared + 16, dtype=dtype)  # (16 more: the workers start it on a 64-byte boundary)
    partials = np.zeros(2 * int(n_threads))
    return run(worker, n_threads, (partials, shared, layout, x, y, order, params, state, sizes, acts, int(loss),
                                   int(opt), hyper, int(batch_size), int(step), int(gemm_min), drop, seeds, norm,
                                   running, slopes, pieces))
