# What the threads of one fused epoch need beyond arithmetic: the barrier they meet at over the control array
# (kernels/constants.py's COUNT, SENSE, ABORT, STOP, DECIDED, DONE, STATUS; kernels/numba/_sync.py is the same
# in Numba), prefetching the next batch's rows, and the SSE control register (flushing subnormals). Needs
# _constants.pxi included first.

cdef extern from *:
    """
    #include <sched.h>
    #if defined(__x86_64__) || defined(__i386__)
    #include <immintrin.h>
    #define FNN_PAUSE() _mm_pause()
    #else
    #define FNN_PAUSE() ((void)0)
    #endif
    static inline int64_t fnn_add_acq_rel(int64_t *p, int64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_ACQ_REL); }
    static inline int64_t fnn_load_acquire(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
    static inline int64_t fnn_load_relaxed(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    static inline void fnn_store_release(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
    static inline void fnn_store_relaxed(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
    static inline void fnn_pause(void) { FNN_PAUSE(); }

    /* The SSE control register's flush-to-zero and denormals-are-zero bits (x86-64 only; else no-ops). */
    #if defined(__x86_64__) || defined(_M_X64)
    #include <xmmintrin.h>
    static inline unsigned int fnn_get_fpmode(void) { return _mm_getcsr(); }
    static inline void fnn_set_fpmode(unsigned int m) { _mm_setcsr(m); }
    #else
    static inline unsigned int fnn_get_fpmode(void) { return 0; }
    static inline void fnn_set_fpmode(unsigned int m) { (void)m; }
    #endif
    #define FNN_FTZ_DAZ 0x8040u
    """
    int64_t fnn_add_acq_rel(int64_t*, int64_t) noexcept nogil
    int64_t fnn_load_acquire(const int64_t*) noexcept nogil
    int64_t fnn_load_relaxed(const int64_t*) noexcept nogil
    void fnn_store_release(int64_t*, int64_t) noexcept nogil
    void fnn_store_relaxed(int64_t*, int64_t) noexcept nogil
    void fnn_pause() noexcept nogil
    int sched_yield() noexcept nogil
    void __builtin_prefetch(const void*, int, int) noexcept nogil
    unsigned int fnn_get_fpmode() noexcept nogil
    void fnn_set_fpmode(unsigned int) noexcept nogil
    unsigned int FNN_FTZ_DAZ


cdef inline void prefetch_rows(const char* base, const int64_t* rows, Py_ssize_t count, Py_ssize_t row_bytes,
                               bint into_l1) noexcept nogil:
    """Ask for rows (given by index) to be brought into this core's L1 or L2 (locality 3 or 2): the next
    batch's shuffled rows are then on their way while this batch computes."""
    cdef Py_ssize_t i, b
    cdef const char* r
    for i in range(count):
        r = base + rows[i] * row_bytes
        if into_l1:  # (the locality must be a constant)
            for b in range(0, row_bytes, 64):
                __builtin_prefetch(r + b, 0, 3)
        else:
            for b in range(0, row_bytes, 64):
                __builtin_prefetch(r + b, 0, 2)


cdef bint barrier(int64_t* control, Py_ssize_t n_threads, int64_t* sense) noexcept nogil:
    """The barrier of the threads of one epoch: sense-reversing, so it can be reused at once; ``sense`` is the
    calling thread's own. The last thread to arrive copies STOP to DECIDED, so that all of them read the same
    stop decision until the next barrier. Waiters spin with pause SPIN_PAUSES times, then yield the core:
    when another process holds the other core, spinning would burn the time slice the late thread needs.
    Returns True when a thread failed (ABORT)."""
    cdef int64_t s
    cdef long spins = 0
    if n_threads <= 1:
        return False
    s = 1 - sense[0]
    sense[0] = s
    if fnn_add_acq_rel(&control[COUNT], 1) == n_threads:
        fnn_store_relaxed(&control[COUNT], 0)
        fnn_store_relaxed(&control[DECIDED], fnn_load_relaxed(&control[STOP]))  # every thread leaves with this
        fnn_store_release(&control[SENSE], s)
    else:
        while fnn_load_acquire(&control[SENSE]) != s:
            if fnn_load_relaxed(&control[ABORT]) != 0:
                return True
            spins += 1
            if spins < SPIN_PAUSES:
                fnn_pause()
            else:
                sched_yield()
    return fnn_load_relaxed(&control[ABORT]) != 0


cdef inline bint stop_decided(int64_t* control, Py_ssize_t n_threads) noexcept nogil:
    """Whether the epoch's caller asked it to stop: read by every thread after its batch's last barrier
    (DECIDED, the same for all of them), or, alone, straight from STOP."""
    return fnn_load_relaxed(&control[DECIDED if n_threads > 1 else STOP]) != 0


cdef inline bint aborted(int64_t* control) noexcept nogil:
    """Whether a thread of the epoch failed (ABORT)."""
    return fnn_load_relaxed(&control[ABORT]) != 0


cdef inline void publish(int64_t* control, Py_ssize_t slot, int64_t value) noexcept nogil:
    """control[slot] = value, an atomic store (the caller polls DONE and STATUS)."""
    fnn_store_relaxed(&control[slot], value)
