"""fastnn's kernels in three backends, installed as ``fastnn._kernels``.

``reference`` is plain NumPy and defines the meaning of every kernel; ``numba`` and ``cython`` hold the
same functions with the same signatures. Import them through ``fastnn.backend``, never directly as a
top-level ``kernels`` package.
"""
