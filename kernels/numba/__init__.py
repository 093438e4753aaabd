"""The Numba backend: the reference kernels compiled with numba.njit, same names and signatures."""
import warnings

from numba.core.errors import NumbaIRAssumptionWarning

# Numba's pedantic IR check misreads the phi variables of _math.tanh (inlined at Numba's level, so that its
# loops vectorize) once a kernel that inlines it is inlined in turn; the compiled code is right (the kernels'
# tests compare every result with the reference). Only that message is silenced.
warnings.filterwarnings("ignore", message=r"variable '.*_tanh_overload.*' is not in scope",
                        category=NumbaIRAssumptionWarning)
