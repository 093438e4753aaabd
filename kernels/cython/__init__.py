"""The Cython backend: the reference kernels as compiled extension modules, same names and signatures."""
