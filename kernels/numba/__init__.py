"""The Numba backend: the reference kernels compiled with numba.njit, same names and signatures."""
