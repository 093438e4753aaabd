"""The NumPy reference backend: the meaning of every kernel (see fastnn.backend.KERNELS for the list)."""
