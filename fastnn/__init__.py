"""fastnn: fast neural-network training on the CPU.

Kernels exist in three backends with one meaning -- ``numpy`` (the reference), ``numba`` and ``cython``
-- switchable at run time with :func:`set_backend` or the :func:`use_backend` context manager.
"""
from .backend import available_backends, get_backend, set_backend, use_backend

__version__ = "0.1.0"

__all__ = ["available_backends", "get_backend", "set_backend", "use_backend", "__version__"]
