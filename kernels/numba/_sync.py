"""What the threads of one fused epoch need beyond arithmetic (Numba): the barrier they meet at, the atomics
it is made of (LLVM intrinsics: Numba has none), the SSE control register (flushing subnormals), prefetch
and the spin-wait hint. The functions are declared by name or written as intrinsics, so the compiled code
caches (no addresses in it).
"""
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..constants import ABORT, COUNT, DECIDED, SENSE, SPIN_PAUSES, STOP

X86_64 = platform.machine().lower() in ("x86_64", "amd64")

if X86_64:
    def _mxcsr_call(builder, name, ptr):
        i8p = ir.IntType(8).as_pointer()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
        builder.call(fn, [builder.bitcast(ptr, i8p)])

    @intrinsic
    def get_mxcsr(typingctx):
        """The SSE control/status register of this thread (llvm.x86.sse.stmxcsr)."""
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", ptr)
            return builder.load(ptr)
        return types.uint32(), codegen

    @intrinsic
    def set_mxcsr(typingctx, value):
        """Load the SSE control/status register of this thread (llvm.x86.sse.ldmxcsr)."""
        def codegen(context, builder, signature, args):
            ptr = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], ptr)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", ptr)
            return context.get_dummy_value()
        return types.void(types.uint32), codegen

    @intrinsic
    def prefetch(typingctx, arr, index, into_l1):
        """Ask for the cache line of arr[index] to be brought into this core's L1 (``into_l1``) or L2
        (llvm.prefetch, locality 3 or 2, as the Cython backend's __builtin_prefetch)."""
        def codegen(context, builder, signature, args):
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                "llvm.prefetch.p0")
            ptr = builder.bitcast(_element_pointer(context, builder, signature, args), i8p)
            l1 = context.cast(builder, args[2], signature.args[2], types.boolean)
            with builder.if_else(l1) as (then, otherwise):  # (the locality must be a constant)
                with then:
                    builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
                with otherwise:
                    builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
            return context.get_dummy_value()
        return types.void(arr, index, into_l1), codegen

    @intrinsic
    def _pause(typingctx):
        """The spin-wait hint (llvm.x86.sse2.pause): frees the core's resources for its sibling thread."""
        def codegen(context, builder, signature, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
            return context.get_dummy_value()
        return types.void(), codegen
else:  # no MXCSR: flushing is a no-op; no pause instruction either
    @njit(cache=True, error_model="numpy")
    def get_mxcsr():
        return np.uint32(0)

    @njit(cache=True, error_model="numpy")
    def set_mxcsr(value):
        pass

    @njit(cache=True, error_model="numpy")
    def prefetch(arr, index, into_l1):
        pass

    @njit(cache=True, error_model="numpy")
    def _pause():
        pass


@intrinsic
def unowned(typingctx, arr):
    """A view of the whole array ``arr`` that holds no reference to its memory (a NULL meminfo, as
    numba.carray's): Numba then counts no references for it or for the slices taken of it, where each
    view of a counted array costs two atomic operations (~17% of a batch-10 epoch went to them). The
    caller keeps ``arr`` alive while the view is used, and the view must not leave the compiled code."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(signature.return_type)(context, builder)
        context.populate_array(out, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize,
                               meminfo=None)
        return out._getvalue()
    return arr(arr), codegen


@njit(cache=True, error_model="numpy")
def keep_alive(owners):
    """Nothing: a use that keeps ``owners`` (and so the memory of ``unowned`` views into them) alive until
    this call."""
    return None


@njit(cache=True, error_model="numpy")
def prefetch_rows(a, order, lo, hi, into_l1):
    """Ask for every cache line of rows order[lo:hi] of the 2-D array a to be brought into this core's L1
    (``into_l1``) or L2 (the Cython backend's prefetch_rows)."""
    step = 64 // a.itemsize
    for i in range(lo, hi):
        row = a[order[i]]
        for j in range(0, a.shape[1], step):
            prefetch(row, j, into_l1)


# -- atomics on elements of an int64 array, and the threads' barrier ------------------------------------


def _element_pointer(context, builder, signature, args):
    """Pointer to ``args[0][args[1]]`` (an array and an integer index, no wraparound)."""
    arrty, idxty = signature.args[0], signature.args[1]
    ary = context.make_array(arrty)(context, builder, args[0])
    index = context.cast(builder, args[1], idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [index], wraparound=False)


def _check_int64_array(arr, index):
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and isinstance(index, types.Integer)


@intrinsic
def _atomic_add(typingctx, arr, index, value):
    """arr[index] += value as one atomic acquire-release operation; returns the new value."""
    if not (_check_int64_array(arr, index) and isinstance(value, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature, args)
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.add(builder.atomic_rmw("add", ptr, v, "acq_rel"), v)
    return types.int64(arr, index, value), codegen


def _make_load(ordering):
    @intrinsic
    def load(typingctx, arr, index):
        if not _check_int64_array(arr, index):
            return None

        def codegen(context, builder, signature, args):
            return builder.load_atomic(_element_pointer(context, builder, signature, args), ordering, 8)
        return types.int64(arr, index), codegen
    load.__doc__ = f"arr[index], an atomic load ({ordering})."
    return load


def _make_store(ordering):
    @intrinsic
    def store(typingctx, arr, index, value):
        if not (_check_int64_array(arr, index) and isinstance(value, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            v = context.cast(builder, args[2], signature.args[2], types.int64)
            builder.store_atomic(v, _element_pointer(context, builder, signature, args), ordering, 8)
            return context.get_dummy_value()
        return types.void(arr, index, value), codegen
    store.__doc__ = f"arr[index] = value, an atomic store ({ordering})."
    return store


_load_acquire = _make_load("acquire")
_load_relaxed = _make_load("monotonic")  # LLVM's name for C's relaxed
_store_release = _make_store("release")
_store_relaxed = _make_store("monotonic")


@intrinsic
def _sched_yield(typingctx):
    """libc's sched_yield(): give the core to another runnable thread. Declared by name (resolved in the
    process at load time), so the compiled code still caches."""
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.call(fn, [])
    return types.int32(), codegen


@njit(cache=True, error_model="numpy")
def barrier(sync, n_threads, sense):
    """The barrier of the threads of one epoch (kernels/cython/fused.pyx's fnn_barrier), over the int64
    control array (kernels/constants.py's COUNT, SENSE, ABORT, STOP, DECIDED): sense-reversing, so it can
    be reused at once; ``sense`` is the calling thread's 1-element int64 array. The last thread to arrive
    copies STOP to DECIDED, so that all of them read the same stop decision until the next barrier.
    Waiters spin with pause SPIN_PAUSES times, then yield the core: when another process holds the other
    core, spinning would burn the time slice the late thread needs. Returns True when a thread failed
    (ABORT)."""
    if n_threads <= 1:
        return False
    s = 1 - sense[0]
    sense[0] = s
    if _atomic_add(sync, COUNT, 1) == n_threads:
        _store_relaxed(sync, COUNT, 0)
        _store_relaxed(sync, DECIDED, _load_relaxed(sync, STOP))  # every thread leaves with this decision
        _store_release(sync, SENSE, s)
    else:
        spins = 0
        while _load_acquire(sync, SENSE) != s:
            if _load_relaxed(sync, ABORT) != 0:
                return True
            spins += 1
            if spins < SPIN_PAUSES:
                _pause()
            else:
                _sched_yield()
    return _load_relaxed(sync, ABORT) != 0


@njit(cache=True, error_model="numpy")
def stop_decided(sync, n_threads):
    """Whether the epoch's caller asked it to stop: read by every thread after its batch's last barrier
    (DECIDED, the same for all of them), or, alone, straight from STOP."""
    return _load_relaxed(sync, DECIDED if n_threads > 1 else STOP) != 0


@njit(cache=True, error_model="numpy")
def aborted(sync):
    """Whether a thread of the epoch failed (ABORT)."""
    return _load_relaxed(sync, ABORT) != 0


@njit(cache=True, error_model="numpy")
def publish(sync, slot, value):
    """sync[slot] = value, an atomic store (the caller polls DONE and STATUS)."""
    _store_relaxed(sync, slot, value)
