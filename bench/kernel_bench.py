"""Helpers of the kernel benchmarks: the cases, the backend loader, and the timed call of one kernel."""
import numpy as np
import pytest

from fastnn import backend

BACKENDS = ("numpy", "numba", "cython")
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
# Kernel calls take microseconds to milliseconds: a quarter second of rounds per member is plenty and
# keeps `make bench` within minutes on two cores.
KERNEL_MARK = pytest.mark.benchmark(max_time=0.25, min_rounds=5)


def shape_id(shape):
    return "x".join(str(s) for s in shape)


def cases(kernels, shapes, extra_f64=()):
    """(kernel, shape, dtype) for every kernel: float32 at every shape, float64 at the shapes in extra_f64."""
    return [(k, s, F32) for k in kernels for s in shapes] + [(k, s, F64) for k in kernels for s in extra_f64]


def case_ids(case):
    kernel, shape, dtype = case
    return f"{kernel}-{shape_id(shape)}-{dtype.name}"


def load_backend(name):
    """The kernel namespace of backend ``name``; skip (not fail) when it is not built: tests/ checks that."""
    try:
        return backend.kernels(name)
    except ImportError as exc:
        pytest.skip(f"backend {name!r} not available: {exc}")


def run_kernel(benchmark, backend_name, kernel, args, shape, dtype):
    """Time ``kernels(backend_name).<kernel>(*args)`` in group ``<kernel>-<shape>-<dtype>``.

    The kernel is called once first, so Numba's JIT compile (and first-touch page faults) are not timed.
    """
    fn = getattr(load_backend(backend_name), kernel)
    fn(*args)
    benchmark.group = f"{kernel}-{shape_id(shape)}-{dtype.name}"
    benchmark.extra_info.update(backend=backend_name, kernel=kernel, shape=list(shape), dtype=dtype.name)
    return benchmark(fn, *args)
