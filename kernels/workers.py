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

__all__ = ["COUNT", "SENSE", "ABORT", "SYNC_SIZE", "run"]

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
